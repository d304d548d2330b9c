//! Firewalls: chain names, ports, allowed sources, the hosts each is on, and lints on them.

use std::collections::{BTreeSet, HashMap};

use ipnet::IpNet;

use super::values::{self, CHAIN_MAX, bad_identifier, number};
use super::{Checker, HostCx, cover};
use crate::diag::{Code, Diag};
use crate::model::{AllowedSource, BUILTIN_CHAINS, Family, Policy, PortRange, PortSet, Protocol};
use crate::source::Span;
use crate::syntax::ast::{self, Allow, Text};

impl Checker<'_> {
    pub(super) fn policies(
        &mut self,
        firewalls: &[ast::Firewall],
        hosts: &[HostCx],
    ) -> Vec<Policy> {
        let mut out = Vec::new();
        let mut chains: HashMap<String, Span> = HashMap::new();
        for fw in firewalls {
            let chain_ok = self.chain_name(&fw.name, &mut chains);
            if fw.ports.is_empty() {
                let d = Diag::new(
                    Code::MissingSetting,
                    format!("firewall `{}` has no `ports`", fw.name.value),
                )
                .label(fw.name.span, "needs a `ports` statement")
                .help("list the service ports it protects, e.g. `ports tcp 16509, 16514`");
                self.emit(d);
            }
            let ports = self.ports(&fw.ports);
            let sources = self.sources(&fw.allows);
            let on = self.single(&fw.on, "on", |names| names[0].span).cloned();
            let targets: BTreeSet<String> = match on {
                Some(names) => names
                    .iter()
                    .filter(|n| {
                        let known = hosts.iter().any(|h| h.model.name == n.value);
                        if !known {
                            self.unknown_host(n, hosts);
                        }
                        known
                    })
                    .map(|n| n.value.clone())
                    .collect(),
                None => hosts
                    .iter()
                    .filter(|h| h.model.is_cloudstack())
                    .map(|h| h.model.name.clone())
                    .collect(),
            };
            if targets.is_empty() {
                let d = Diag::new(
                    Code::RuleNeverMatches,
                    format!("firewall `{}` is on no host", fw.name.value),
                )
                .label(fw.name.span, "renders nowhere")
                .help("mark hosts `management-server` or `agent`, or name them with `on`");
                self.emit(d);
            }
            if chain_ok {
                out.push(Policy {
                    chain: fw.name.value.clone(),
                    ports,
                    sources,
                    hosts: targets,
                });
            }
        }
        self.shared_ports(firewalls, &out);
        out
    }

    /// A port protected by two chains on one host needs a source allowed by both: warn.
    pub(super) fn shared_ports(&mut self, firewalls: &[ast::Firewall], policies: &[Policy]) {
        // (protocol, range, policy index, span), in source order.
        let mut seen: Vec<(Protocol, PortRange, usize, Span)> = Vec::new();
        for (i, p) in policies.iter().enumerate() {
            let Some(fw) = firewalls.iter().find(|f| f.name.value == p.chain) else {
                continue;
            };
            for stmt in &fw.ports {
                for t in &stmt.numbers {
                    let Ok(range) = port_range(t) else { continue };
                    let clash = seen.iter().find(|(proto, r, j, _)| {
                        *proto == stmt.protocol
                            && r.overlaps(&range)
                            && *j != i
                            && !p.hosts.is_disjoint(&policies[*j].hosts)
                    });
                    if let Some(&(_, other_range, j, span)) = clash {
                        let other = &policies[j];
                        let shared = PortRange {
                            first: range.first.max(other_range.first),
                            last: range.last.min(other_range.last),
                        };
                        let d = Diag::new(
                            Code::PortCollision,
                            format!("{} {shared} is protected by `{}` and `{}`", stmt.protocol.keyword(), other.chain, p.chain),
                        )
                        .label(t.span, format!("also in `{}`", p.chain))
                        .label(span, format!("in `{}`", other.chain))
                        .help("on hosts with both chains a source must be allowed by both; list the port in one firewall");
                        self.emit(d);
                    }
                    seen.push((stmt.protocol, range, i, t.span));
                }
            }
        }
    }

    pub(super) fn chain_name(&mut self, t: &Text, chains: &mut HashMap<String, Span>) -> bool {
        let why = if let Some(why) = bad_identifier(&t.value) {
            Some((Code::BadName, why))
        } else if BUILTIN_CHAINS.contains(&t.value.as_str()) {
            Some((
                Code::BadName,
                "a built-in chain: netc owns its own chain and jumps to it from INPUT".into(),
            ))
        } else if t.value.len() > CHAIN_MAX {
            Some((
                Code::ChainNameTooLong,
                format!("{} bytes; iptables allows {CHAIN_MAX}", t.value.len()),
            ))
        } else {
            None
        };
        if let Some((code, why)) = why {
            let d = Diag::new(code, format!("`{}` cannot be a chain name", t.value))
                .label(t.span, why)
                .help(format!(
                    "name the chain with up to {CHAIN_MAX} letters, digits, `-` or `_`"
                ));
            self.emit(d);
            return false;
        }
        if let Some(first) = chains.insert(t.value.clone(), t.span) {
            let d = Diag::repeated(
                Code::DuplicateChain,
                format!("firewall `{}` is declared twice", t.value),
                "declared",
                t.span,
                first,
            )
            .help("merge the two blocks: each firewall is one chain");
            self.emit(d);
            return false;
        }
        true
    }

    pub(super) fn ports(&mut self, ports: &[ast::Ports]) -> Vec<PortSet> {
        let mut out: Vec<PortSet> = Vec::new();
        let mut seen: Vec<(Protocol, PortRange, Span)> = Vec::new();
        for p in ports {
            let mut list = Vec::new();
            for t in &p.numbers {
                let Some(range) = self.ok(port_range(t)) else {
                    continue;
                };
                let first = seen
                    .iter()
                    .find(|(proto, r, _)| *proto == p.protocol && r.overlaps(&range));
                if let Some(&(_, other, first)) = first {
                    let what = if other == range && range.first == range.last {
                        format!("{} port {range} is listed twice", p.protocol.keyword())
                    } else {
                        format!("{} ports {range} and {other} overlap", p.protocol.keyword())
                    };
                    let d = Diag::repeated(Code::DuplicatePort, what, "listed", t.span, first)
                        .help("list each port once");
                    self.emit(d);
                    continue;
                }
                seen.push((p.protocol, range, t.span));
                self.port_lints(p.protocol, range, t.span);
                list.push(range);
            }
            if let Some(first) = p.numbers.first().filter(|_| !list.is_empty()) {
                out.push(PortSet {
                    protocol: p.protocol,
                    ports: list,
                    line: self.line(first.span),
                });
            }
        }
        out
    }

    /// Warnings about one protected port or range: a well-known service in it, or the
    /// kernel's ephemeral range.
    fn port_lints(&mut self, protocol: Protocol, range: PortRange, span: Span) {
        for &(of, port, service) in &WELL_KNOWN {
            if range.contains(port) && of.is_none_or(|p| p == protocol) {
                let d = Diag::new(
                    Code::WellKnownPort,
                    format!("{} {port} is {service}", protocol.keyword()),
                )
                .label(span, "a well-known service port")
                .help("only the allowed sources will reach it: make sure that is meant");
                self.emit(d);
            }
        }
        let (lo, hi) = EPHEMERAL;
        if range.first <= hi && lo <= range.last {
            let d = Diag::new(
                Code::EphemeralPort,
                format!(
                    "{} {range} is in the kernel's ephemeral port range ({lo}–{hi})",
                    protocol.keyword()
                ),
            )
            .label(
                span,
                "the kernel also hands these ports to outgoing connections",
            )
            .help(
                "a service on such a port usually picked it at random and may take another \
                 after a restart, and may find it in use: protect the service's fixed port, or \
                 reserve it (sysctl net.ipv4.ip_local_reserved_ports). netc rejects only new \
                 connections, so replies to the host's own connections still pass",
            );
            self.emit(d);
        }
    }

    pub(super) fn sources(&mut self, allows: &[Allow]) -> Vec<AllowedSource> {
        let mut out: Vec<(AllowedSource, Span)> = Vec::new();
        for a in allows {
            match a {
                Allow::Prefix(t) => {
                    if let Some(net) = self.ok(values::source(t)) {
                        out.push((
                            AllowedSource {
                                net,
                                line: self.line(t.span),
                            },
                            t.span,
                        ));
                    }
                }
                Allow::Vlan(t) => {
                    let Some(vlan) = self.vlan_ref(t).cloned() else {
                        continue;
                    };
                    // A VLAN whose prefix was rejected has an error already.
                    if vlan.subnets.is_empty() && !self.incomplete_vlans.contains(&vlan.id) {
                        let d = Diag::new(
                            Code::VlanWithoutPrefix,
                            format!("VLAN {} has no prefix to allow", vlan.id),
                        )
                        .label(t.span, "this VLAN has no `prefix`")
                        .help("add a `prefix` to the VLAN, or allow its prefix literally");
                        self.emit(d);
                    }
                    for s in &vlan.subnets {
                        out.push((
                            AllowedSource {
                                net: s.net,
                                line: self.line(t.span),
                            },
                            t.span,
                        ));
                    }
                }
            }
        }
        for (s, span) in out.iter().filter(|(s, _)| s.net.prefix_len() == 0) {
            let family = Family::of_net(&s.net).name();
            let d = Diag::new(
                Code::RuleNeverMatches,
                format!("{} allows every {family} source", s.net),
            )
            .label(*span, format!("every {family} packet RETURNs here"))
            .help(format!(
                "this chain's REJECT rules can never match {family} traffic; is that meant?"
            ));
            self.emit(d);
        }
        let nets: Vec<IpNet> = out.iter().map(|(s, _)| s.net).collect();
        for (i, by) in cover::covered(&nets) {
            let (covered, span) = &out[i];
            let (cover, cover_span) = &out[by];
            let what = if covered.net == cover.net {
                "already allowed"
            } else {
                "already covered"
            };
            let d = Diag::new(
                Code::CoveredSource,
                format!("{} is {what} by {}", covered.net, cover.net),
            )
            .label(*span, "this source adds nothing")
            .label(*cover_span, format!("{} allowed here", cover.net))
            .help("remove the narrower (or repeated) `allow`");
            self.emit(d);
        }
        out.into_iter().map(|(s, _)| s).collect()
    }
}

/// Linux's default `net.ipv4.ip_local_port_range`.
const EPHEMERAL: (u16, u16) = (32768, 60999);

/// Services whose ports deserve a second look when a firewall protects them: (protocol,
/// port, what); `None` for either protocol.
const WELL_KNOWN: [(Option<Protocol>, u16, &str); 6] = [
    (
        Some(Protocol::Tcp),
        22,
        "SSH: a mistake in the allowed sources locks admins out",
    ),
    (None, 53, "DNS"),
    (
        Some(Protocol::Tcp),
        80,
        "the web (nginx in front of the management server)",
    ),
    (
        Some(Protocol::Tcp),
        443,
        "the web (nginx in front of the management server)",
    ),
    (
        Some(Protocol::Tcp),
        3306,
        "MariaDB: its clients reach it through the VIP",
    ),
    (
        Some(Protocol::Tcp),
        8080,
        "the management server's UI and API",
    ),
];

/// `8250` or `5900-6100`: ports 1–65535, a range low to high.
fn port_range(t: &Text) -> Result<PortRange, Diag> {
    let (first, last) = match t.value.split_once('-') {
        Some((a, b)) => (a, b),
        None => (t.value.as_str(), t.value.as_str()),
    };
    let part = |s: &str, offset: usize| {
        let text = Text::new(
            s.to_string(),
            Span::new(t.span.start + offset, t.span.start + offset + s.len()),
        );
        number(&text, "port", 1, 65535, Code::PortRange).map(|n| n as u16)
    };
    let first_n = part(first, 0)?;
    let last_n = part(last, t.value.len() - last.len())?;
    if first_n > last_n {
        return Err(Diag::new(
            Code::PortRange,
            format!("port range {} runs backwards", t.value),
        )
        .label(t.span, "the first port is higher than the last")
        .help(format!("write `{last_n}-{first_n}`")));
    }
    Ok(PortRange {
        first: first_n,
        last: last_n,
    })
}
