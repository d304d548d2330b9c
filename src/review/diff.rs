//! What changes between two topologies, per host, in meaning rather than text.
//!
//! Firewall access is compared as sets of addresses per (protocol, port): the addresses a
//! host accepts on a port are the intersection, over the chains listing the port, of each
//! chain's allowed sources (a port no chain lists is open to all). Reordering or splitting
//! prefixes changes no set, so it shows nothing. Everything else is compared in a canonical
//! order: the order of lines that mean the same (two addresses of a bridge or a VIP, the
//! members of a VIP) shows nothing either.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::addrset::Ranges;
use crate::model::{Agent, Bond, Family, Host, PortRange, Preempt, Protocol, Topology};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub hosts: Vec<HostDiff>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// What happened to a host, or to one thing of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Added,
    Removed,
    Changed,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Added => "added",
            Status::Removed => "removed",
            Status::Changed => "changed",
        }
    }

    /// `+`, `-` or `~` in front of a line.
    pub fn mark(self) -> char {
        match self {
            Status::Added => '+',
            Status::Removed => '-',
            Status::Changed => '~',
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostDiff {
    pub host: String,
    pub status: Status,
    /// Sources that can no longer reach ports (listed first: they break things).
    pub access_lost: Vec<Access>,
    pub access_gained: Vec<Access>,
    pub changes: Vec<Change>,
}

/// Addresses of one family that gain or lose a set of ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    /// The sources, or with `all_except` the only sources *not* concerned (shorter to read
    /// when a port becomes protected for everyone but a few prefixes).
    pub sources: Vec<String>,
    pub all_except: bool,
    pub family: &'static str,
    pub protocol: &'static str,
    /// Ports and ranges: `22`, `5900-6100`.
    pub ports: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: Status,
    /// What changed, e.g. `bridge br529 IPv4 address`.
    pub what: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

pub fn diff(old: &Topology, new: &Topology) -> Diff {
    // Keep the new topology's host order, then hosts only the old one has.
    let mut order: Vec<&str> = new.hosts.iter().map(|h| h.name.as_str()).collect();
    order.extend(
        old.hosts
            .iter()
            .map(|h| h.name.as_str())
            .filter(|n| new.host(n).is_none()),
    );
    let hosts = order
        .into_iter()
        .filter_map(|name| match (old.host(name), new.host(name)) {
            (Some(o), Some(n)) => {
                let (access_lost, access_gained) = access(old, o, new, n);
                let changes = host_changes(old, o, new, n);
                let changed =
                    !(access_lost.is_empty() && access_gained.is_empty() && changes.is_empty());
                changed.then(|| HostDiff {
                    host: name.into(),
                    status: Status::Changed,
                    access_lost,
                    access_gained,
                    changes,
                })
            }
            (None, Some(n)) => Some(whole(new, n, Status::Added)),
            (Some(o), None) => Some(whole(old, o, Status::Removed)),
            (None, None) => None,
        })
        .collect();
    Diff { hosts }
}

/// An added or removed host: everything it has, as one list.
fn whole(topo: &Topology, host: &Host, status: Status) -> HostDiff {
    let empty = Host {
        name: host.name.clone(),
        management_server: false,
        agent: None,
        nics: vec![],
        bonds: vec![],
        bridges: vec![],
    };
    let none = Topology {
        source: String::new(),
        vlans: vec![],
        hosts: vec![empty.clone()],
        vips: vec![],
        policies: vec![],
    };
    let mut changes = match status {
        Status::Added => host_changes(&none, &empty, topo, host),
        _ => host_changes(topo, host, &none, &empty),
    };
    for p in topo.policies_on(&host.name) {
        let value = format!("{} sources, {} port sets", p.sources.len(), p.ports.len());
        let (old, new) = if status == Status::Added {
            (None, Some(value))
        } else {
            (Some(value), None)
        };
        changes.push(Change {
            kind: status,
            what: format!("firewall chain {}", p.chain),
            old,
            new,
        });
    }
    HostDiff {
        host: host.name.clone(),
        status,
        access_lost: vec![],
        access_gained: vec![],
        changes,
    }
}

/// Collects the fields that differ.
#[derive(Default)]
struct Changes(Vec<Change>);

impl Changes {
    fn field(&mut self, what: String, old: Option<String>, new: Option<String>) {
        if old == new {
            return;
        }
        let kind = match (&old, &new) {
            (None, _) => Status::Added,
            (_, None) => Status::Removed,
            _ => Status::Changed,
        };
        self.0.push(Change {
            kind,
            what,
            old,
            new,
        });
    }
}

fn host_changes(ot: &Topology, o: &Host, nt: &Topology, n: &Host) -> Vec<Change> {
    let mut out = Changes::default();
    let flag = |b: bool, s: &str| b.then(|| s.to_string());
    out.field(
        "role".into(),
        flag(o.management_server, "management server"),
        flag(n.management_server, "management server"),
    );
    let names = |h: &Host| h.nics.iter().map(|n| n.name.clone()).collect::<Vec<_>>();
    for nic in union(&names(o), &names(n)) {
        let (on, nn) = (o.nic(&nic), n.nic(&nic));
        out.field(
            format!("nic {nic}"),
            on.map(|_| nic.clone()),
            nn.map(|_| nic.clone()),
        );
        out.field(
            format!("nic {nic} mtu"),
            on.and_then(|x| x.mtu).map(|m| m.to_string()),
            nn.and_then(|x| x.mtu).map(|m| m.to_string()),
        );
    }
    let bonds = |h: &Host| h.bonds.iter().map(|b| b.name.clone()).collect::<Vec<_>>();
    for bond in union(&bonds(o), &bonds(n)) {
        out.field(
            format!("bond {bond}"),
            o.bond(&bond).map(bond_line),
            n.bond(&bond).map(bond_line),
        );
    }
    bridges(&mut out, o, n);
    let (ov, nv) = (vip_lines(ot, o), vip_lines(nt, n));
    for name in union(
        &ov.keys().cloned().collect::<Vec<_>>(),
        &nv.keys().cloned().collect::<Vec<_>>(),
    ) {
        out.field(
            format!("VIP {name}"),
            ov.get(&name).cloned(),
            nv.get(&name).cloned(),
        );
    }
    let keys = |h: &Host| -> Vec<(&'static str, String)> {
        h.agent.as_ref().map(Agent::keys).unwrap_or_default()
    };
    let (ok, nk) = (keys(o), keys(n));
    let key_names: Vec<String> = union(
        &ok.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>(),
        &nk.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>(),
    );
    for key in key_names {
        let get = |k: &[(&str, String)]| k.iter().find(|(n, _)| *n == key).map(|(_, v)| v.clone());
        out.field(format!("agent.properties {key}"), get(&ok), get(&nk));
    }
    out.0
}

/// A bond as one line: what ifenslave is given.
fn bond_line(b: &Bond) -> String {
    let mut parts = vec![
        format!("slaves {}", b.slaves.join(" ")),
        format!("mode {}", b.mode.name()),
        format!("miimon {}", b.miimon),
    ];
    parts.extend(b.lacp_rate.as_ref().map(|v| format!("lacp-rate {v}")));
    parts.extend(
        b.xmit_hash_policy
            .as_ref()
            .map(|v| format!("xmit-hash-policy {v}")),
    );
    parts.extend(b.primary.as_ref().map(|v| format!("primary {v}")));
    parts.extend(b.mtu.map(|v| format!("mtu {v}")));
    parts.join(", ")
}

/// Bridges: their ports, MTUs, addresses and default routes.
fn bridges(out: &mut Changes, o: &Host, n: &Host) {
    let names: Vec<String> = union(
        &o.bridges.iter().map(|b| b.name.clone()).collect::<Vec<_>>(),
        &n.bridges.iter().map(|b| b.name.clone()).collect::<Vec<_>>(),
    );
    for name in names {
        let ob = o.bridges.iter().find(|b| b.name == name);
        let nb = n.bridges.iter().find(|b| b.name == name);
        out.field(
            format!("bridge {name}"),
            ob.map(|b| b.port()),
            nb.map(|b| b.port()),
        );
        out.field(
            format!("bridge {name} mtu"),
            ob.and_then(|b| b.mtu).map(|m| m.to_string()),
            nb.and_then(|b| b.mtu).map(|m| m.to_string()),
        );
        for family in Family::ALL {
            let (oa, na) = (
                ob.and_then(|b| b.address(family)),
                nb.and_then(|b| b.address(family)),
            );
            out.field(
                format!("bridge {name} {} address", family.name()),
                oa.map(|a| a.net.to_string()),
                na.map(|a| a.net.to_string()),
            );
            out.field(
                format!("{} default route via {name}", family.name()),
                oa.and_then(|a| a.gateway).map(|g| g.to_string()),
                na.and_then(|a| a.gateway).map(|g| g.to_string()),
            );
        }
    }
}

/// What `h` has of each VIP it is a member of, as one line each, in a canonical order (the
/// order of `address` and `member` lines in the source means nothing).
fn vip_lines(t: &Topology, h: &Host) -> BTreeMap<String, String> {
    t.vips_of(&h.name)
        .map(|v| {
            let me = v.member(&h.name).expect("vips_of");
            let mut addrs: Vec<(Family, String)> = v
                .addresses
                .iter()
                .map(|a| (Family::of_net(a), a.to_string()))
                .collect();
            addrs.sort();
            let mut peers: Vec<(Family, String)> = addrs
                .iter()
                .flat_map(|(f, _)| {
                    t.vrrp_peers(v, &h.name, *f)
                        .into_iter()
                        .map(move |p| (*f, p))
                })
                .map(|(f, p)| (f, p.to_string()))
                .collect();
            peers.sort();
            let preempt = match v.preempt {
                Preempt::Yes => String::new(),
                Preempt::Delay(s) => format!(", preempt after {s} s"),
                Preempt::No => ", nopreempt".to_string(),
            };
            let check = v
                .check
                .as_ref()
                .map(|c| format!(", check \"{}\" every {} s", c.script, c.interval))
                .unwrap_or_default();
            let text = format!(
                "{} on VLAN {}, router id {}, priority {}, {}{preempt}, peers {}{check}",
                addrs
                    .into_iter()
                    .map(|(_, a)| a)
                    .collect::<Vec<_>>()
                    .join(" "),
                v.vlan,
                v.router_id,
                me.priority,
                v.initial_state(&h.name).keyword(),
                peers
                    .into_iter()
                    .map(|(_, p)| p)
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            (v.name.clone(), text)
        })
        .collect()
}

/// Items of both lists, first list's order first.
fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = a.to_vec();
    out.extend(b.iter().filter(|x| !a.contains(x)).cloned());
    out
}

/// The addresses `host` accepts on `port`, per family: the intersection of the allowed
/// sources of every chain that protects it (everyone, when none does).
fn accepted(topo: &Topology, host: &Host, protocol: Protocol, port: u16) -> [Ranges; 2] {
    let mut out = Family::ALL.map(Ranges::full);
    for p in topo.policies_on(&host.name) {
        if p.ports
            .iter()
            .any(|s| s.protocol == protocol && s.contains(port))
        {
            for (i, f) in Family::ALL.into_iter().enumerate() {
                out[i] = out[i].intersect(&Ranges::of(p.sources_of(f).map(|s| &s.net)));
            }
        }
    }
    out
}

/// The ports where what a host accepts can change: the stretches between the bounds of
/// every protected range, on both sides. Within one stretch every port is treated alike.
fn stretches(ot: &Topology, o: &Host, nt: &Topology, n: &Host) -> Vec<(Protocol, PortRange)> {
    let mut bounds: BTreeSet<(Protocol, u32)> = BTreeSet::new();
    for (t, h) in [(ot, o), (nt, n)] {
        for p in t.policies_on(&h.name) {
            for set in &p.ports {
                for r in &set.ports {
                    bounds.insert((set.protocol, u32::from(r.first)));
                    bounds.insert((set.protocol, u32::from(r.last) + 1));
                }
            }
        }
    }
    let bounds: Vec<(Protocol, u32)> = bounds.into_iter().collect();
    bounds
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| {
            let range = PortRange {
                first: w[0].1 as u16,
                last: (w[1].1 - 1) as u16,
            };
            (w[0].0, range)
        })
        .collect()
}

/// (lost, gained) access on a host present in both topologies, grouped by equal source sets.
fn access(ot: &Topology, o: &Host, nt: &Topology, n: &Host) -> (Vec<Access>, Vec<Access>) {
    // (lost?, family, protocol, all except?, prefixes) → port ranges
    type Key = (bool, usize, Protocol, bool, Vec<String>);
    let mut groups: BTreeMap<Key, Vec<PortRange>> = BTreeMap::new();
    for (protocol, range) in stretches(ot, o, nt, n) {
        let b = accepted(ot, o, protocol, range.first);
        let a = accepted(nt, n, protocol, range.first);
        for (i, family) in Family::ALL.into_iter().enumerate() {
            for (lost, set) in [(true, b[i].minus(&a[i])), (false, a[i].minus(&b[i]))] {
                if set.is_empty() {
                    continue;
                }
                let direct = set.prefixes(family);
                let rest = Ranges::full(family).minus(&set).prefixes(family);
                let (except, sources) = if rest.len() < direct.len() {
                    (true, rest)
                } else {
                    (false, direct)
                };
                let ranges = groups
                    .entry((lost, i, protocol, except, sources))
                    .or_default();
                match ranges.last_mut() {
                    Some(last) if u32::from(last.last) + 1 == u32::from(range.first) => {
                        last.last = range.last
                    }
                    _ => ranges.push(range),
                }
            }
        }
    }
    let (mut lost, mut gained) = (Vec::new(), Vec::new());
    for ((is_lost, i, protocol, all_except, sources), ports) in groups {
        let row = Access {
            sources,
            all_except,
            family: Family::ALL[i].name(),
            protocol: protocol.keyword(),
            ports: ports.iter().map(ToString::to_string).collect(),
        };
        if is_lost {
            lost.push(row)
        } else {
            gained.push(row)
        }
    }
    (lost, gained)
}

// --- output --------------------------------------------------------------------------------

fn sources(a: &Access) -> String {
    match (a.all_except, a.sources.is_empty()) {
        (true, true) => "every source".to_string(),
        (true, false) => format!("every source except {}", a.sources.join(", ")),
        (false, _) => a.sources.join(", "),
    }
}

fn access_line(a: &Access) -> String {
    format!(
        "{} {} → {} {}",
        a.family,
        sources(a),
        a.protocol,
        a.ports.join(",")
    )
}

fn change_line(c: &Change) -> String {
    match (&c.old, &c.new) {
        (Some(o), Some(n)) => format!("{}: {o} → {n}", c.what),
        // `nic eno3` needs no `: eno3`.
        (None, Some(v)) | (Some(v), None) if c.what.ends_with(&format!(" {v}")) => c.what.clone(),
        (None, Some(n)) => format!("{}: {n}", c.what),
        (Some(o), None) => format!("{}: {o}", c.what),
        (None, None) => c.what.clone(),
    }
}

/// Plain text: a block per host; losses first.
pub fn text(d: &Diff) -> String {
    if d.is_empty() {
        return "no semantic change\n".into();
    }
    let mut out = String::new();
    for h in &d.hosts {
        out += &format!("{} ({})\n", h.host, h.status);
        for a in &h.access_lost {
            out += &format!("  - loses  {}\n", access_line(a));
        }
        for a in &h.access_gained {
            out += &format!("  + gains  {}\n", access_line(a));
        }
        for c in &h.changes {
            out += &format!("  {} {}\n", c.kind.mark(), change_line(c));
        }
    }
    out
}

/// Markdown for a pull-request comment: a summary line, losses called out, a table per host.
pub fn markdown(d: &Diff) -> String {
    if d.is_empty() {
        return "**netc diff:** no semantic change.\n".into();
    }
    let losing: Vec<&str> = d
        .hosts
        .iter()
        .filter(|h| !h.access_lost.is_empty())
        .map(|h| h.host.as_str())
        .collect();
    let mut out = format!(
        "**netc diff:** {} host{} change{}",
        d.hosts.len(),
        if d.hosts.len() == 1 { "" } else { "s" },
        if d.hosts.len() == 1 { "s" } else { "" }
    );
    if losing.is_empty() {
        out += "; no access is lost.\n";
    } else {
        out += &format!("; **access is lost on {}**.\n", losing.join(", "));
    }
    for h in &d.hosts {
        out += &format!("\n### {} ({})\n\n", h.host, h.status);
        if !(h.access_lost.is_empty() && h.access_gained.is_empty()) {
            out += "| access | sources | family | protocol | ports |\n|---|---|---|---|---|\n";
            let rows = h
                .access_lost
                .iter()
                .map(|a| ("**lost**", a))
                .chain(h.access_gained.iter().map(|a| ("gained", a)));
            for (kind, a) in rows {
                out += &format!(
                    "| {kind} | {} | {} | {} | {} |\n",
                    sources(a),
                    a.family,
                    a.protocol,
                    a.ports.join(", ")
                );
            }
            out += "\n";
        }
        if !h.changes.is_empty() {
            out += "| change | what | old | new |\n|---|---|---|---|\n";
            for c in &h.changes {
                let cell =
                    |v: &Option<String>| v.clone().map_or("".to_string(), |v| format!("`{v}`"));
                out += &format!(
                    "| {} | {} | {} | {} |\n",
                    c.kind,
                    c.what,
                    cell(&c.old),
                    cell(&c.new)
                );
            }
        }
    }
    out
}
