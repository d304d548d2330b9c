//! AST → model, reporting every problem at once.
//!
//! The checker never stops at the first mistake: each section resolves what it can, records a
//! diagnostic for what it cannot and carries on with the rest. A model is returned only when no
//! error was found; warnings travel with it.

mod cover;
mod values;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::ast::{self, Allow, Device, Span, Text};
use crate::diag::{Code, Diag, Source, did_you_mean};
use crate::model::*;

pub use values::{CHAIN_MAX, IFNAME_MAX};
use values::{bad_hostname, bad_identifier, bad_ifname, misplaced, number};

/// The result of checking: the model (only if there were no errors) and every diagnostic.
pub struct Checked {
    pub topology: Option<Topology>,
    pub diags: Vec<Diag>,
}

pub fn check(file: &ast::File, source: &Source) -> Checked {
    let mut cx = Checker {
        source,
        diags: Vec::new(),
        vlans: BTreeMap::new(),
        host_addrs: HashMap::new(),
        broken_vlans: HashSet::new(),
        incomplete_vlans: HashSet::new(),
    };
    let vlans = cx.vlans(&file.vlans);
    let mut hosts = cx.hosts(&file.hosts);
    let defaults = cx.agent_defaults(&file.agents);
    cx.agents(&file.hosts, &mut hosts, &defaults);
    let vips = cx.vips(&file.vips, &hosts);
    let policies = cx.policies(&file.firewalls, &hosts);
    if file.hosts.is_empty() {
        // An empty topology would build an empty tree and wipe out/: never what was meant.
        let end = source.text.len();
        let d = Diag::new(Code::NoHosts, "the topology declares no hosts")
            .label(Span::new(end, end), "end of file")
            .help("declare at least one `host NAME { ... }`; is this the right file?");
        cx.emit(d);
    }

    let mut diags = cx.diags;
    diags.sort_by_key(|d| (d.span(), d.code));
    diags.dedup();
    let ok = !diags.iter().any(Diag::is_error);
    Checked {
        topology: ok.then(|| Topology {
            source: source.name.clone(),
            vlans,
            hosts: hosts.into_iter().map(|h| h.model).collect(),
            vips,
            policies,
        }),
        diags,
    }
}

struct Checker<'a> {
    source: &'a Source,
    diags: Vec<Diag>,
    /// Valid VLANs by id, with the span of their id.
    vlans: BTreeMap<u16, (Vlan, Span)>,
    /// Every host address, for duplicate and VIP-collision checks.
    host_addrs: HashMap<IpAddr, (String, Span)>,
    /// VLAN ids as written whose declaration was rejected: references to them are not
    /// reported again.
    broken_vlans: HashSet<String>,
    /// VLANs with a rejected prefix: "no prefix of this family" would be a follow-on error.
    incomplete_vlans: HashSet<u16>,
}

/// A host being checked: the model so far and the spans later checks point at.
struct HostCx {
    model: Host,
    name_span: Span,
    /// The host had an error already: checks for things it lacks would only repeat it.
    incomplete: bool,
    /// Bridge name → (span of its name, span of its VLAN).
    bridge_spans: HashMap<String, (Span, Span)>,
}

/// The site-wide agent settings, with defaults filled in.
struct Defaults {
    port: u16,
    bridge_type: BridgeType,
    connect: Family,
    /// Each device's role, with the span it was set at (None: the default).
    devices: BTreeMap<Device, (Role, Option<Span>)>,
}

impl Checker<'_> {
    fn emit(&mut self, diag: Diag) {
        self.diags.push(diag);
    }

    fn error_count(&self) -> usize {
        self.diags.iter().filter(|d| d.is_error()).count()
    }

    /// Records the error, if any, and returns the value.
    fn ok<T>(&mut self, r: Result<T, Diag>) -> Option<T> {
        r.map_err(|d| self.emit(d)).ok()
    }

    /// Reports every statement after the first of a kind that may appear once.
    fn single<'t, T>(
        &mut self,
        items: &'t [T],
        what: &str,
        span: impl Fn(&T) -> Span,
    ) -> Option<&'t T> {
        for extra in items.iter().skip(1) {
            let d = Diag::new(Code::DuplicateSetting, format!("`{what}` is set twice"))
                .label(span(extra), "set again here")
                .label(span(&items[0]), "first set here")
                .help(format!("keep one `{what}` statement"));
            self.emit(d);
        }
        items.first()
    }

    /// Reports a missing required statement (which may be a list).
    fn required<T>(&mut self, items: &[T], what: &str, owner: &Text) {
        if items.is_empty() {
            let d = Diag::new(
                Code::MissingSetting,
                format!("`{}` has no `{what}`", owner.value),
            )
            .label(owner.span, format!("needs a `{what}` statement"))
            .help(format!(
                "add `{what} …` inside the block of `{}`",
                owner.value
            ));
            self.emit(d);
        }
    }

    fn vlan_ref(&mut self, t: &Text) -> Option<&Vlan> {
        let id = t
            .value
            .parse::<u16>()
            .ok()
            .filter(|id| self.vlans.contains_key(id));
        if id.is_none() && !self.broken_vlans.contains(&t.value) {
            let known: Vec<String> = self.vlans.keys().map(u16::to_string).collect();
            let mut d = Diag::new(Code::UnknownVlan, format!("there is no VLAN {}", t.value))
                .label(t.span, "not a VLAN of this topology");
            d = d.help(
                match did_you_mean(&t.value, known.iter().map(String::as_str)) {
                    Some(m) => m,
                    None => format!("declared VLANs: {}", list_or_none(&known)),
                },
            );
            self.emit(d);
        }
        id.map(|id| &self.vlans[&id].0)
    }

    fn line(&self, span: Span) -> usize {
        self.source.line_col(span.start).0
    }

    // --- VLANs -------------------------------------------------------------------------

    fn vlans(&mut self, vlans: &[ast::Vlan]) -> Vec<Vlan> {
        let mut roles: HashMap<Role, Span> = HashMap::new();
        let mut order = Vec::new();
        for v in vlans {
            let id = number(&v.id, "VLAN id", 1, 4094, Code::VlanIdRange);
            let Some(id) = self.ok(id).map(|n| n as u16) else {
                self.broken_vlans.insert(v.id.value.clone());
                continue;
            };
            if let Some((_, first)) = self.vlans.get(&id) {
                let d = Diag::new(Code::DuplicateVlan, format!("VLAN {id} is declared twice"))
                    .label(v.id.span, "declared again here")
                    .label(*first, "first declared here")
                    .help("merge the two blocks or change one id");
                self.emit(d);
                continue;
            }
            let role = self.single(&v.roles, "role", |r| r.span).cloned();
            let role = role.and_then(|r| self.role(&r, &mut roles));
            let before = self.error_count();
            let subnets = self.subnets(&v.prefixes);
            if self.error_count() > before {
                self.incomplete_vlans.insert(id);
            }
            let vlan = Vlan {
                id,
                name: v.name.value.clone(),
                role,
                subnets,
            };
            self.vlans.insert(id, (vlan, v.id.span));
            order.push(id);
        }
        order.iter().map(|id| self.vlans[id].0.clone()).collect()
    }

    fn role(&mut self, t: &Text, seen: &mut HashMap<Role, Span>) -> Option<Role> {
        let Some(role) = Role::from_name(&t.value) else {
            self.unknown_role(t);
            return None;
        };
        if let Some(first) = seen.insert(role, t.span) {
            let d = Diag::new(
                Code::DuplicateRole,
                format!("two VLANs have role `{}`", t.value),
            )
            .label(t.span, "second VLAN with this role")
            .label(first, "first VLAN with this role")
            .help("agents find their bridges by role, so each role names one VLAN");
            self.emit(d);
            return None;
        }
        Some(role)
    }

    fn unknown_role(&mut self, t: &Text) {
        let names = Role::ALL.map(Role::name);
        let d = Diag::new(
            Code::UnknownRole,
            format!("`{}` is not a VLAN role", t.value),
        )
        .label(t.span, "unknown role")
        .help(
            did_you_mean(&t.value, names)
                .unwrap_or_else(|| format!("roles are {}", names.join(", "))),
        );
        self.emit(d);
    }

    fn subnets(&mut self, prefixes: &[ast::Prefix]) -> Vec<Subnet> {
        let mut subnets: Vec<(Subnet, Span)> = Vec::new();
        for p in prefixes {
            let Some(net) = self.ok(values::prefix(&p.net)) else {
                continue;
            };
            let family = Family::of_net(&net);
            if let Some((_, first)) = subnets
                .iter()
                .find(|(s, _)| Family::of_net(&s.net) == family)
            {
                let d = Diag::new(
                    Code::DuplicateFamily,
                    format!("a second {} prefix", family.name()),
                )
                .label(p.net.span, "second prefix of this family")
                .label(*first, "first one")
                .help("a VLAN has at most one IPv4 and one IPv6 prefix");
                self.emit(d);
                continue;
            }
            let gateway = p.gateway.as_ref().and_then(|g| self.gateway(g, net));
            subnets.push((Subnet { net, gateway }, p.net.span));
        }
        subnets.into_iter().map(|(s, _)| s).collect()
    }

    fn gateway(&mut self, t: &Text, net: IpNet) -> Option<IpAddr> {
        let gw = self.ok(values::address(t))?;
        if Family::of(&gw) != Family::of_net(&net) {
            let d = Diag::new(
                Code::AddressFamily,
                format!(
                    "gateway {gw} is {} but the prefix is {}",
                    Family::of(&gw).name(),
                    Family::of_net(&net).name()
                ),
            )
            .label(t.span, "wrong address family")
            .help("write a gateway of the prefix's family");
            self.emit(d);
            return None;
        }
        let subnet = Subnet { net, gateway: None };
        match misplaced(gw, &subnet) {
            None => Some(gw),
            Some((code, msg)) => {
                let code = if code == Code::AddressOutsidePrefix {
                    Code::GatewayOutsidePrefix
                } else {
                    code
                };
                let d = Diag::new(code, format!("gateway {msg}"))
                    .label(t.span, "not a usable address of the prefix")
                    .help(format!("a gateway is a host address inside {net}"));
                self.emit(d);
                None
            }
        }
    }

    // --- hosts -------------------------------------------------------------------------

    fn hosts(&mut self, hosts: &[ast::Host]) -> Vec<HostCx> {
        let mut names: HashMap<String, Span> = HashMap::new();
        let mut out: Vec<HostCx> = Vec::new();
        for h in hosts {
            if let Some(why) = bad_hostname(&h.name.value) {
                let d = Diag::new(
                    Code::BadName,
                    format!("`{}` is not a valid host name", h.name.value),
                )
                .label(h.name.span, "not a host name")
                .help(why);
                self.emit(d);
                continue;
            }
            if let Some(first) = names.get(&h.name.value) {
                let d = Diag::new(
                    Code::DuplicateHost,
                    format!("host `{}` is declared twice", h.name.value),
                )
                .label(h.name.span, "declared again here")
                .label(*first, "first declared here")
                .help("merge the two blocks or rename one");
                self.emit(d);
                continue;
            }
            self.single(&h.management_server, "management-server", |s| *s);
            names.insert(h.name.value.clone(), h.name.span);
            let host = self.host(h);
            out.push(host);
        }
        out
    }

    fn host(&mut self, h: &ast::Host) -> HostCx {
        let before = self.error_count();
        // Every interface of the host (NICs, bridges, VLAN subinterfaces) shares one namespace.
        let mut names: HashMap<String, Span> = HashMap::new();
        let mut nics: Vec<String> = Vec::new();
        for nic in &h.nics {
            if self.own_interface_name(&nic.value, nic.span, &mut names) {
                nics.push(nic.value.clone());
            }
        }
        let mut cx = HostCx {
            model: Host {
                name: h.name.value.clone(),
                management_server: !h.management_server.is_empty(),
                agent: None,
                nics: nics.clone(),
                bridges: Vec::new(),
            },
            name_span: h.name.span,
            incomplete: false,
            bridge_spans: HashMap::new(),
        };
        let mut gateways: BTreeMap<Family, Span> = BTreeMap::new();
        let mut vlans_used: HashMap<u16, Span> = HashMap::new();
        for b in &h.bridges {
            self.own_interface_name(&b.name.value, b.name.span, &mut names);
            let vlan = self.vlan_ref(&b.vlan).cloned();
            let nic_ok = nics.contains(&b.nic.value);
            if !nic_ok {
                let mut d = Diag::new(
                    Code::UnknownNic,
                    format!("host `{}` has no NIC `{}`", h.name.value, b.nic.value),
                )
                .label(b.nic.span, "not a `nic` of this host");
                d = d.help(
                    match did_you_mean(&b.nic.value, nics.iter().map(String::as_str)) {
                        Some(m) => m,
                        None => format!("declare it with `nic {}` in the host block", b.nic.value),
                    },
                );
                self.emit(d);
            }
            let Some(vlan) = vlan else { continue };
            if let Some(first) = vlans_used.insert(vlan.id, b.vlan.span) {
                let d = Diag::new(
                    Code::DuplicateBridgeVlan,
                    format!(
                        "host `{}` has two bridges on VLAN {}",
                        h.name.value, vlan.id
                    ),
                )
                .label(b.vlan.span, "second bridge on this VLAN")
                .label(first, "first bridge on this VLAN")
                .help("a host has one bridge per VLAN");
                self.emit(d);
            }
            if nic_ok {
                let port = format!("{}.{}", b.nic.value, vlan.id);
                let span = Span::new(
                    b.vlan.span.start.min(b.nic.span.start),
                    b.nic.span.end.max(b.vlan.span.end),
                );
                self.interface_name(&port, span, &mut names);
            }
            let addresses = self.bridge_addresses(&h.name.value, b, &vlan, &mut gateways);
            // Kept even with a bad name or NIC (already reported, so no model comes out): later
            // checks then see the bridge and report no follow-on errors.
            cx.bridge_spans
                .insert(b.name.value.clone(), (b.name.span, b.vlan.span));
            cx.model.bridges.push(Bridge {
                name: b.name.value.clone(),
                vlan: vlan.id,
                nic: b.nic.value.clone(),
                addresses,
            });
        }
        cx.incomplete = self.error_count() > before;
        cx
    }

    /// Checks a NIC or bridge name as written and records it; false if it is unusable.
    fn own_interface_name(
        &mut self,
        name: &str,
        span: Span,
        names: &mut HashMap<String, Span>,
    ) -> bool {
        if let Some(why) = bad_ifname(name) {
            let d = Diag::new(
                Code::BadName,
                format!("`{name}` is not a valid interface name"),
            )
            .label(span, "not an interface name")
            .help(why);
            self.emit(d);
            return false;
        }
        self.interface_name(name, span, names)
    }

    /// Checks any interface name (also derived ones) and records it; false if it is unusable.
    fn interface_name(
        &mut self,
        name: &str,
        span: Span,
        names: &mut HashMap<String, Span>,
    ) -> bool {
        if name.len() > IFNAME_MAX {
            let d = Diag::new(
                Code::InterfaceNameTooLong,
                format!(
                    "interface name `{name}` is {} bytes, Linux allows {IFNAME_MAX}",
                    name.len()
                ),
            )
            .label(span, format!("`{name}` is too long"))
            .help("use a shorter name (the kernel's IFNAMSIZ is 16 bytes with the NUL)");
            self.emit(d);
            return false;
        }
        if let Some(first) = names.get(name) {
            let d = Diag::new(
                Code::DuplicateInterface,
                format!("interface `{name}` is declared twice on this host"),
            )
            .label(span, "declared again here")
            .label(*first, "first declared here")
            .help("each NIC, bridge and VLAN subinterface of a host needs its own name");
            self.emit(d);
            return false;
        }
        names.insert(name.to_string(), span);
        true
    }

    fn bridge_addresses(
        &mut self,
        host: &str,
        b: &ast::Bridge,
        vlan: &Vlan,
        gateways: &mut BTreeMap<Family, Span>,
    ) -> Vec<Address> {
        let mut out: Vec<(Address, Span)> = Vec::new();
        for t in &b.addresses {
            let Some(addr) = self.vlan_address(t, vlan, VlanAddressUse::Host) else {
                continue;
            };
            let family = Family::of(&addr);
            let subnet = vlan
                .subnet(family)
                .expect("vlan_address checked the family");
            if let Some((_, first)) = out.iter().find(|(a, _)| Family::of_net(&a.net) == family) {
                let d = Diag::new(
                    Code::DuplicateFamily,
                    format!("a second {} address on `{}`", family.name(), b.name.value),
                )
                .label(t.span, "second address of this family")
                .label(*first, "first one")
                .help("a bridge has at most one IPv4 and one IPv6 address");
                self.emit(d);
                continue;
            }
            if let Some((other, first)) = self.host_addrs.get(&addr) {
                let d = Diag::new(Code::DuplicateAddress, format!("{addr} is used twice"))
                    .label(t.span, format!("on `{host}` here"))
                    .label(*first, format!("already on `{other}` here"))
                    .help("every host address must be unique");
                self.emit(d);
                continue;
            }
            self.host_addrs.insert(addr, (host.to_string(), t.span));
            if subnet.gateway.is_some()
                && let Some(first) = gateways.insert(family, t.span)
            {
                let d = Diag::new(
                    Code::DuplicateDefaultGateway,
                    format!("host `{host}` gets two {} default gateways", family.name()),
                )
                .label(t.span, format!("VLAN {} has a gateway, so this address routes by default", vlan.id))
                .label(first, "and so does this one")
                .help("a host has one default route per family: drop the gateway from one VLAN's prefix");
                self.emit(d);
            }
            let net =
                IpNet::new(addr, subnet.net.prefix_len()).expect("the VLAN's prefix length fits");
            out.push((
                Address {
                    net,
                    gateway: subnet.gateway,
                },
                t.span,
            ));
        }
        out.into_iter().map(|(a, _)| a).collect()
    }

    /// An address that must lie in its VLAN's prefix (a host address or a VIP).
    fn vlan_address(&mut self, t: &Text, vlan: &Vlan, usage: VlanAddressUse) -> Option<IpAddr> {
        let addr = self.ok(values::address(t))?;
        let family = Family::of(&addr);
        let Some(subnet) = vlan.subnet(family) else {
            if self.incomplete_vlans.contains(&vlan.id) {
                return None;
            }
            let have: Vec<String> = vlan.subnets.iter().map(|s| s.net.to_string()).collect();
            let d = Diag::new(
                Code::AddressFamily,
                format!(
                    "{addr} is {} but VLAN {} has no {} prefix",
                    family.name(),
                    vlan.id,
                    family.name()
                ),
            )
            .label(t.span, "no prefix of this family on the VLAN")
            .help(format!(
                "VLAN {} has: {}; add a `prefix` of this family to it",
                vlan.id,
                list_or_none(&have)
            ));
            self.emit(d);
            return None;
        };
        if let Some((code, msg)) = misplaced(addr, subnet) {
            let code = match (code, usage) {
                (Code::AddressOutsidePrefix, VlanAddressUse::Vip) => Code::VipOutsideVlan,
                (code, _) => code,
            };
            let d = Diag::new(code, msg)
                .label(
                    t.span,
                    format!("not a usable host address of VLAN {}", vlan.id),
                )
                .help(format!("pick a free host address in {}", subnet.net));
            self.emit(d);
            return None;
        }
        Some(addr)
    }

    // --- agents ------------------------------------------------------------------------

    fn agent_defaults(&mut self, agents: &[ast::AgentDefaults]) -> Defaults {
        let mut out = Defaults {
            port: 8250,
            bridge_type: BridgeType::Native,
            connect: Family::V4,
            devices: BTreeMap::from([
                (Device::Private, (Role::Management, None)),
                (Device::Public, (Role::Public, None)),
                (Device::Guest, (Role::Guest, None)),
            ]),
        };
        let Some(a) = self.single(agents, "agent", |a| a.span) else {
            return out;
        };
        if let Some(p) = self.single(&a.ports, "port", |p| p.span).cloned() {
            let port = number(&p, "port", 1, 65535, Code::PortRange);
            out.port = self.ok(port).map_or(out.port, |p| p as u16);
        }
        if let Some(t) = self
            .single(&a.bridge_types, "bridge-type", |t| t.span)
            .cloned()
        {
            match t.value.as_str() {
                "native" => out.bridge_type = BridgeType::Native,
                "openvswitch" => {
                    let d = Diag::new(
                        Code::UnknownSetting,
                        "netc does not build Open vSwitch bridges",
                    )
                    .label(
                        t.span,
                        "the interfaces file has Linux bridges (`bridge_ports`)",
                    )
                    .help("write `bridge-type native`: the agent must use the bridges netc builds");
                    self.emit(d);
                }
                _ => self.unknown_setting(&t, "bridge type", &["native"]),
            }
        }
        if let Some(t) = self.single(&a.connects, "connect", |t| t.span).cloned() {
            match t.value.as_str() {
                "ipv4" => out.connect = Family::V4,
                "ipv6" => out.connect = Family::V6,
                _ => self.unknown_setting(&t, "address family", &["ipv4", "ipv6"]),
            }
        }
        for device in Device::ALL {
            let set: Vec<_> = a
                .devices
                .iter()
                .filter(|(d, _)| d.value == device)
                .collect();
            let Some((_, role)) = self
                .single(&set, device.keyword(), |(d, _)| d.span)
                .copied()
            else {
                continue;
            };
            match Role::from_name(&role.value) {
                Some(r) => {
                    out.devices.insert(device, (r, Some(role.span)));
                }
                None => self.unknown_role(role),
            }
        }
        out
    }

    fn unknown_setting(&mut self, t: &Text, what: &str, choices: &[&str]) {
        let d = Diag::new(
            Code::UnknownSetting,
            format!("`{}` is not a known {what}", t.value),
        )
        .label(t.span, format!("expected {}", choices.join(" or ")))
        .help(
            did_you_mean(&t.value, choices.iter().copied())
                .unwrap_or_else(|| format!("write one of: {}", choices.join(", "))),
        );
        self.emit(d);
    }

    /// Resolves each agent's device keys and its management servers.
    fn agents(&mut self, ast_hosts: &[ast::Host], hosts: &mut [HostCx], defaults: &Defaults) {
        let (private_role, _) = defaults.devices[&Device::Private];
        let mgmt_vlan = self.vlan_with_role(private_role).map(|v| v.id);
        let any_agent = ast_hosts.iter().any(|h| !h.agent.is_empty());
        let servers = match mgmt_vlan {
            Some(vlan) if any_agent => self.management_servers(hosts, vlan, defaults.connect),
            _ => Vec::new(),
        };
        let first_agent = ast_hosts
            .iter()
            .find_map(|h| h.agent.first().map(|a| (a.span, &h.name.value)));
        if let Some((span, name)) = first_agent
            && !hosts.iter().any(|h| h.model.management_server)
        {
            let d = Diag::new(
                Code::NoManagementServer,
                "there are agents but no management server",
            )
            .label(span, format!("`{name}` is an agent"))
            .help("mark the hosts running cloudstack-management with `management-server`");
            self.emit(d);
        }
        let index: HashMap<Span, usize> = hosts
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name_span, i))
            .collect();
        for h in ast_hosts {
            let Some(cx) = index.get(&h.name.span).map(|&i| &mut hosts[i]) else {
                continue;
            };
            let Some(stmt) = self.single(&h.agent, "agent", |a| a.span).cloned() else {
                continue;
            };
            let mut devices: BTreeMap<Device, String> = BTreeMap::new();
            for device in Device::ALL {
                let set: Vec<_> = stmt
                    .devices
                    .iter()
                    .filter(|(d, _)| d.value == device)
                    .collect();
                if let Some((_, bridge)) = self
                    .single(&set, device.keyword(), |(d, _)| d.span)
                    .copied()
                {
                    if cx.bridge_spans.contains_key(&bridge.value) {
                        devices.insert(device, bridge.value.clone());
                    } else {
                        self.unknown_bridge(&cx.model, bridge);
                    }
                    continue;
                }
                let (role, role_span) = defaults.devices[&device];
                let Some(vlan) = self.vlan_with_role(role).map(|v| v.id) else {
                    // Like the agent itself, an unmapped public/guest device falls back to
                    // the private one; an explicit mapping must resolve.
                    let fallback = devices.get(&Device::Private).cloned();
                    match fallback {
                        Some(private) if role_span.is_none() && device != Device::Private => {
                            devices.insert(device, private);
                        }
                        // The private device failed: that is reported already.
                        None if role_span.is_none() && device != Device::Private => {}
                        _ => self.role_without_vlan(device, role, role_span, stmt.span),
                    }
                    continue;
                };
                match cx.model.bridge_on(vlan) {
                    Some(b) => {
                        devices.insert(device, b.name.clone());
                    }
                    None if cx.incomplete => {}
                    None => {
                        let mut d = Diag::new(
                            Code::AgentMissingBridge,
                            format!(
                                "agent `{}` has no bridge on VLAN {vlan} for `{}.network.device`",
                                cx.model.name,
                                device.keyword()
                            ),
                        )
                        .label(
                            stmt.span,
                            format!(
                                "`{}` is VLAN {vlan}'s role `{}`",
                                device.keyword(),
                                role.name()
                            ),
                        );
                        if let Some(s) = role_span {
                            d = d.label(s, "mapped here");
                        }
                        d = d.help(format!(
                            "add a bridge on VLAN {vlan} to `{}`, or name one with `agent {{ {} <bridge> }}`",
                            cx.model.name,
                            device.keyword()
                        ));
                        self.emit(d);
                    }
                }
            }
            if let Some(vlan) = mgmt_vlan {
                self.management_path(cx, vlan, defaults.connect, stmt.span);
            }
            let (Some(private), Some(public), Some(guest)) = (
                devices.get(&Device::Private),
                devices.get(&Device::Public),
                devices.get(&Device::Guest),
            ) else {
                continue;
            };
            self.guest_bridge_names(cx, &[public, guest]);
            cx.model.agent = Some(Agent {
                servers: servers.clone(),
                port: defaults.port,
                private_device: private.clone(),
                public_device: public.clone(),
                guest_device: guest.clone(),
                bridge_type: defaults.bridge_type,
            });
        }
    }

    fn vlan_with_role(&self, role: Role) -> Option<&Vlan> {
        self.vlans
            .values()
            .map(|(v, _)| v)
            .find(|v| v.role == Some(role))
    }

    fn unknown_bridge(&mut self, host: &Host, t: &Text) {
        let names: Vec<&str> = host.bridges.iter().map(|b| b.name.as_str()).collect();
        let d = Diag::new(
            Code::UnknownBridge,
            format!("host `{}` has no bridge `{}`", host.name, t.value),
        )
        .label(t.span, "not a bridge of this host")
        .help(
            did_you_mean(&t.value, names.iter().copied())
                .unwrap_or_else(|| format!("its bridges: {}", list_or_none(&names))),
        );
        self.emit(d);
    }

    fn role_without_vlan(
        &mut self,
        device: Device,
        role: Role,
        role_span: Option<Span>,
        agent: Span,
    ) {
        let span = role_span.unwrap_or(agent);
        let how = if role_span.is_some() {
            "mapped"
        } else {
            "by default mapped"
        };
        let d = Diag::new(
            Code::UnknownRole,
            format!("no VLAN has role `{}`", role.name()),
        )
        .label(
            span,
            format!("`{}` is {how} to role `{}`", device.keyword(), role.name()),
        )
        .help(format!(
            "give a VLAN `role {}`, or map `{}` to another role in the site's `agent` block",
            role.name(),
            device.keyword()
        ));
        self.emit(d);
    }

    /// The management servers' addresses agents connect to, in topology order.
    fn management_servers(&mut self, hosts: &[HostCx], vlan: u16, family: Family) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for cx in hosts.iter().filter(|c| c.model.management_server) {
            match cx.model.bridge_on(vlan).and_then(|b| b.address(family)) {
                Some(a) => out.push(a.net.addr()),
                None if cx.incomplete => {}
                None => {
                    let d = Diag::new(
                        Code::NoManagementPath,
                        format!("management server `{}` has no {} address on VLAN {vlan}", cx.model.name, family.name()),
                    )
                    .label(cx.name_span, "agents could not reach this server")
                    .help(format!(
                        "add a bridge with an {} address on VLAN {vlan}, or set `connect` in the site's `agent` block",
                        family.name()
                    ));
                    self.emit(d);
                }
            }
        }
        out
    }

    /// An agent reaches the servers on the management VLAN, or through its default route.
    fn management_path(&mut self, cx: &HostCx, vlan: u16, family: Family, agent: Span) {
        if cx.incomplete {
            return;
        }
        let direct = cx
            .model
            .bridge_on(vlan)
            .and_then(|b| b.address(family))
            .is_some();
        let routed = cx
            .model
            .bridges
            .iter()
            .filter_map(|b| b.address(family))
            .any(|a| a.gateway.is_some());
        if !direct && !routed {
            let d = Diag::new(
                Code::NoManagementPath,
                format!(
                    "agent `{}` cannot reach the management servers",
                    cx.model.name
                ),
            )
            .label(
                agent,
                format!(
                    "has no {} address on VLAN {vlan} and no {} default route",
                    family.name(),
                    family.name()
                ),
            )
            .help(format!(
                "give `{}` an {} address on VLAN {vlan}",
                cx.model.name,
                family.name()
            ));
            self.emit(d);
        }
    }

    /// CloudStack names guest bridges `br<nic>-<vlan>`; warn when that cannot fit for VLAN 4094.
    fn guest_bridge_names(&mut self, cx: &HostCx, bridges: &[&String]) {
        let mut warned: Vec<&str> = Vec::new();
        for name in bridges {
            let Some(b) = cx.model.bridges.iter().find(|b| &&b.name == name) else {
                continue;
            };
            let longest = format!("br{}-4094", b.nic);
            if longest.len() <= IFNAME_MAX || warned.contains(&b.nic.as_str()) {
                continue;
            }
            warned.push(&b.nic);
            let span = cx.bridge_spans[&b.name].0;
            let d = Diag::new(
                Code::GuestBridgeNameTooLong,
                format!(
                    "CloudStack's guest bridges on `{}` may not fit in 15 bytes",
                    b.nic
                ),
            )
            .label(
                span,
                format!(
                    "guest traffic of `{}` rides on NIC `{}`",
                    cx.model.name, b.nic
                ),
            )
            .help(format!(
                "CloudStack names guest VLAN bridges `br<nic>-<vlan>`: `{longest}` is {} bytes; \
                 NIC names of up to 8 bytes (e.g. via a udev rename) avoid that",
                longest.len()
            ));
            self.emit(d);
        }
    }

    // --- VIPs --------------------------------------------------------------------------

    fn vips(&mut self, vips: &[ast::Vip], hosts: &[HostCx]) -> Vec<Vip> {
        let mut out = Vec::new();
        let mut router_ids: HashMap<(u16, u8), Span> = HashMap::new();
        let mut names: HashMap<String, Span> = HashMap::new();
        let mut vip_addrs: HashMap<IpAddr, Span> = HashMap::new();
        for v in vips {
            let name_ok = self.vip_name(&v.name, &mut names);
            self.required(&v.vlans, "vlan", &v.name);
            let vlan = self.single(&v.vlans, "vlan", |t| t.span).cloned();
            let vlan = vlan.and_then(|t| self.vlan_ref(&t).cloned());
            self.required(&v.router_ids, "router-id", &v.name);
            let router_id = self.single(&v.router_ids, "router-id", |t| t.span).cloned();
            let router_id = router_id.and_then(|t| {
                let n = number(&t, "virtual router id", 1, 255, Code::RouterIdRange);
                self.ok(n).map(|n| (n as u8, t.span))
            });
            self.required(&v.addresses, "address", &v.name);
            self.required(&v.members, "member", &v.name);
            let check = match self.single(&v.checks, "check", |c| c.span).cloned() {
                Some(c) => self.check_script(&c),
                None => Some(None),
            };
            let members = self.members(v, hosts, vlan.as_ref());
            let Some(vlan) = vlan else { continue };
            let addresses = self.vip_addresses(v, &vlan, &mut vip_addrs);
            if let Some((id, span)) = router_id
                && let Some(first) = router_ids.insert((vlan.id, id), span)
            {
                let d = Diag::new(
                    Code::DuplicateRouterId,
                    format!("virtual router id {id} is used twice on VLAN {}", vlan.id),
                )
                .label(span, "used again here")
                .label(first, "first used here")
                .help("VRRP tells routers on one VLAN apart by id: pick another id (1–255)");
                self.emit(d);
            }
            if let (true, Some((router_id, _)), Some(members), Some(check)) =
                (name_ok, router_id, members, check)
            {
                out.push(Vip {
                    name: v.name.value.clone(),
                    vlan: vlan.id,
                    addresses,
                    router_id,
                    members,
                    check,
                });
            }
        }
        out
    }

    fn vip_name(&mut self, t: &Text, names: &mut HashMap<String, Span>) -> bool {
        if let Some(why) = bad_identifier(&t.value) {
            let d = Diag::new(
                Code::BadName,
                format!("`{}` is not a valid VIP name", t.value),
            )
            .label(t.span, "not a VIP name")
            .help(why);
            self.emit(d);
            return false;
        }
        if let Some(first) = names.insert(t.value.clone(), t.span) {
            let d = Diag::new(
                Code::DuplicateSetting,
                format!("VIP `{}` is declared twice", t.value),
            )
            .label(t.span, "declared again here")
            .label(first, "first declared here")
            .help("VIP names become keepalived instance names and must be unique");
            self.emit(d);
            return false;
        }
        true
    }

    /// `Some(None)`: no check; `None`: a bad one (already reported).
    fn check_script(&mut self, c: &ast::Check) -> Option<Option<Check>> {
        let mut ok = true;
        if !c.script.value.starts_with('/') {
            let d = Diag::new(
                Code::BadName,
                format!("check script `{}` is not an absolute path", c.script.value),
            )
            .label(c.script.span, "keepalived runs scripts by absolute path")
            .help("write the full path, e.g. `/usr/local/bin/check-mariadb`");
            self.emit(d);
            ok = false;
        }
        let interval = match &c.interval {
            Some(t) => {
                let n = number(t, "check interval", 1, 3600, Code::BadNumber);
                self.ok(n).map(|n| n as u32)
            }
            None => Some(2),
        };
        match (ok, interval) {
            (true, Some(interval)) => Some(Some(Check {
                script: c.script.value.clone(),
                interval,
            })),
            _ => None,
        }
    }

    fn members(
        &mut self,
        v: &ast::Vip,
        hosts: &[HostCx],
        vlan: Option<&Vlan>,
    ) -> Option<Vec<Member>> {
        let mut out: Vec<(Member, Span)> = Vec::new();
        let mut ok = true;
        for m in &v.members {
            let priority = number(&m.priority, "priority", 1, 254, Code::PriorityRange);
            let priority = self.ok(priority).map(|p| p as u8);
            let Some(host) = hosts.iter().find(|h| h.model.name == m.host.value) else {
                self.unknown_host(&m.host, hosts);
                ok = false;
                continue;
            };
            if let Some((_, first)) = out.iter().find(|(o, _)| o.host == m.host.value) {
                let d = Diag::new(
                    Code::DuplicateMember,
                    format!("`{}` is a member twice", m.host.value),
                )
                .label(m.host.span, "listed again here")
                .label(*first, "first listed here")
                .help("list each member once");
                self.emit(d);
                ok = false;
                continue;
            }
            if let Some(vlan) = vlan {
                ok &= self.member_bridge(v, host, m, vlan);
            }
            let Some(priority) = priority else {
                ok = false;
                continue;
            };
            if let Some((other, _)) = out.iter().find(|(o, _)| o.priority == priority) {
                let d = Diag::new(
                    Code::DuplicatePriority,
                    format!(
                        "`{}` and `{}` have the same priority {priority}",
                        other.host, m.host.value
                    ),
                )
                .label(m.priority.span, "same priority as another member")
                .help(
                    "give each member its own priority so it is clear which one holds the address",
                );
                self.emit(d);
                ok = false;
            }
            if !host.model.management_server {
                let d = Diag::new(
                    Code::VipMemberNotManagementServer,
                    format!(
                        "VIP `{}` member `{}` is not a management server",
                        v.name.value, m.host.value
                    ),
                )
                .label(m.host.span, "not marked `management-server`")
                .help("the VIP fronts MariaDB on the management servers: is this the right host?");
                self.emit(d);
            }
            out.push((
                Member {
                    host: m.host.value.clone(),
                    priority,
                },
                m.host.span,
            ));
        }
        out.sort_by_key(|m| std::cmp::Reverse(m.0.priority));
        ok.then(|| out.into_iter().map(|(m, _)| m).collect())
    }

    /// A member needs a bridge on the VIP's VLAN, with an address of each of the VIP's families.
    fn member_bridge(&mut self, v: &ast::Vip, host: &HostCx, m: &ast::Member, vlan: &Vlan) -> bool {
        if host.incomplete || self.incomplete_vlans.contains(&vlan.id) {
            return false;
        }
        let bridge = host.model.bridge_on(vlan.id);
        let families: Vec<Family> = v
            .addresses
            .iter()
            .filter_map(|a| a.value.parse::<IpAddr>().ok())
            .map(|a| Family::of(&a))
            .collect();
        let missing = match bridge {
            None => Some(format!(
                "`{}` has no bridge on VLAN {}",
                m.host.value, vlan.id
            )),
            Some(b) => families.iter().find(|f| b.address(**f).is_none()).map(|f| {
                format!(
                    "`{}` has no {} address on `{}`",
                    m.host.value,
                    f.name(),
                    b.name
                )
            }),
        };
        let Some(msg) = missing else { return true };
        let d = Diag::new(Code::VipMemberWithoutBridge, format!("VIP `{}`: {msg}", v.name.value))
            .label(m.host.span, "cannot hold the VIP")
            .label(host.name_span, "host declared here")
            .help(format!(
                "keepalived needs a bridge on VLAN {} with an address of each VIP family (for unicast VRRP)",
                vlan.id
            ));
        self.emit(d);
        false
    }

    fn unknown_host(&mut self, t: &Text, hosts: &[HostCx]) {
        let names: Vec<&str> = hosts.iter().map(|h| h.model.name.as_str()).collect();
        let d = Diag::new(Code::UnknownHost, format!("there is no host `{}`", t.value))
            .label(t.span, "not a host of this topology")
            .help(
                did_you_mean(&t.value, names.iter().copied())
                    .unwrap_or_else(|| format!("declared hosts: {}", list_or_none(&names))),
            );
        self.emit(d);
    }

    fn vip_addresses(
        &mut self,
        v: &ast::Vip,
        vlan: &Vlan,
        seen: &mut HashMap<IpAddr, Span>,
    ) -> Vec<IpNet> {
        let mut out: Vec<(IpNet, Span)> = Vec::new();
        for t in &v.addresses {
            let Some(addr) = self.vlan_address(t, vlan, VlanAddressUse::Vip) else {
                continue;
            };
            let family = Family::of(&addr);
            if let Some((_, first)) = out.iter().find(|(a, _)| Family::of_net(a) == family) {
                let d = Diag::new(
                    Code::DuplicateFamily,
                    format!(
                        "a second {} address on VIP `{}`",
                        family.name(),
                        v.name.value
                    ),
                )
                .label(t.span, "second address of this family")
                .label(*first, "first one")
                .help("a VIP has at most one IPv4 and one IPv6 address");
                self.emit(d);
                continue;
            }
            if let Some((host, span)) = self.host_addrs.get(&addr) {
                let d = Diag::new(
                    Code::VipIsHostAddress,
                    format!("VIP {addr} is also an address of `{host}`"),
                )
                .label(t.span, "the virtual address")
                .label(*span, "the host's own address")
                .help("a VIP moves between hosts: it needs an address no host owns");
                self.emit(d);
                continue;
            }
            if let Some(first) = seen.insert(addr, t.span) {
                let d = Diag::new(
                    Code::DuplicateAddress,
                    format!("{addr} is used by two VIPs"),
                )
                .label(t.span, "used again here")
                .label(first, "first used here")
                .help("every VIP address must be unique");
                self.emit(d);
                continue;
            }
            let len = vlan.subnet(family).expect("checked").net.prefix_len();
            out.push((IpNet::new(addr, len).expect("VLAN prefix length"), t.span));
        }
        out.into_iter().map(|(a, _)| a).collect()
    }

    // --- firewall ----------------------------------------------------------------------

    fn policies(&mut self, firewalls: &[ast::Firewall], hosts: &[HostCx]) -> Vec<Policy> {
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
    fn shared_ports(&mut self, firewalls: &[ast::Firewall], policies: &[Policy]) {
        let mut first: HashMap<(Protocol, u16), (usize, Span)> = HashMap::new();
        for (i, p) in policies.iter().enumerate() {
            let Some(fw) = firewalls.iter().find(|f| f.name.value == p.chain) else {
                continue;
            };
            for stmt in &fw.ports {
                for t in &stmt.numbers {
                    let Ok(port) = t.value.parse::<u16>() else {
                        continue;
                    };
                    let Some(&(j, span)) = first.get(&(stmt.protocol, port)) else {
                        first.insert((stmt.protocol, port), (i, t.span));
                        continue;
                    };
                    let other = &policies[j];
                    if j == i || p.hosts.is_disjoint(&other.hosts) {
                        continue;
                    }
                    let d = Diag::new(
                        Code::PortCollision,
                        format!("{} {port} is protected by `{}` and `{}`", stmt.protocol.keyword(), other.chain, p.chain),
                    )
                    .label(t.span, format!("also in `{}`", p.chain))
                    .label(span, format!("in `{}`", other.chain))
                    .help("on hosts with both chains a source must be allowed by both; list the port in one firewall");
                    self.emit(d);
                }
            }
        }
    }

    fn chain_name(&mut self, t: &Text, chains: &mut HashMap<String, Span>) -> bool {
        const BUILTIN: [&str; 5] = ["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"];
        let why = if let Some(why) = bad_identifier(&t.value) {
            Some((Code::BadName, why))
        } else if BUILTIN.contains(&t.value.as_str()) {
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
            let d = Diag::new(
                Code::DuplicateChain,
                format!("firewall `{}` is declared twice", t.value),
            )
            .label(t.span, "declared again here")
            .label(first, "first declared here")
            .help("merge the two blocks: each firewall is one chain");
            self.emit(d);
            return false;
        }
        true
    }

    fn ports(&mut self, ports: &[ast::Ports]) -> Vec<PortSet> {
        let mut out: Vec<PortSet> = Vec::new();
        let mut seen: HashMap<(Protocol, u16), Span> = HashMap::new();
        for p in ports {
            let mut list = Vec::new();
            for t in &p.numbers {
                let n = number(t, "port", 1, 65535, Code::PortRange);
                let Some(port) = self.ok(n).map(|n| n as u16) else {
                    continue;
                };
                if let Some(first) = seen.insert((p.protocol, port), t.span) {
                    let d = Diag::new(
                        Code::DuplicatePort,
                        format!("{} port {port} is listed twice", p.protocol.keyword()),
                    )
                    .label(t.span, "listed again here")
                    .label(first, "first listed here")
                    .help("list each port once");
                    self.emit(d);
                    continue;
                }
                if let Some(service) = well_known(p.protocol, port) {
                    let d = Diag::new(
                        Code::PortCollision,
                        format!("{} {port} is {service}", p.protocol.keyword()),
                    )
                    .label(t.span, "a well-known service port")
                    .help("only the allowed sources will reach it: make sure that is meant");
                    self.emit(d);
                }
                list.push(port);
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

    fn sources(&mut self, allows: &[Allow]) -> Vec<AllowedSource> {
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
                    if vlan.subnets.is_empty() {
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

#[derive(Clone, Copy)]
enum VlanAddressUse {
    Host,
    Vip,
}

/// Services whose ports deserve a second look when a firewall protects them.
fn well_known(protocol: Protocol, port: u16) -> Option<&'static str> {
    Some(match (protocol, port) {
        (Protocol::Tcp, 22) => "SSH: a mistake in the allowed sources locks admins out",
        (_, 53) => "DNS",
        (Protocol::Tcp, 80 | 443) => "the web (nginx in front of the management server)",
        (Protocol::Tcp, 3306) => "MariaDB: its clients reach it through the VIP",
        (Protocol::Tcp, 8080) => "the management server's UI and API",
        _ => return None,
    })
}

fn list_or_none<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items
            .iter()
            .map(|s| format!("`{}`", s.as_ref()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
