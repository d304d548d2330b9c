//! What changes between two topologies, per host, in meaning rather than text.
//!
//! Firewall access is compared as sets of addresses per (protocol, port): the addresses a
//! host accepts on a port are the intersection, over the chains listing the port, of each
//! chain's allowed sources (a port no chain lists is open to all). Reordering or splitting
//! prefixes changes no set, so it shows nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use serde::Serialize;

use crate::model::{Agent, Family, Host, Protocol, Topology};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub hosts: Vec<HostDiff>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostDiff {
    pub host: String,
    /// "added", "removed" or "changed".
    pub status: &'static str,
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
    pub ports: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// "added", "removed" or "changed".
    pub kind: &'static str,
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
                    status: "changed",
                    access_lost,
                    access_gained,
                    changes,
                })
            }
            (None, Some(n)) => Some(whole(new, n, "added")),
            (Some(o), None) => Some(whole(old, o, "removed")),
            (None, None) => None,
        })
        .collect();
    Diff { hosts }
}

/// An added or removed host: everything it has, as one list.
fn whole(topo: &Topology, host: &Host, status: &'static str) -> HostDiff {
    let empty = Host {
        name: host.name.clone(),
        management_server: false,
        agent: None,
        nics: vec![],
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
        "added" => host_changes(&none, &empty, topo, host),
        _ => host_changes(topo, host, &none, &empty),
    };
    for p in topo.policies_on(&host.name) {
        let value = format!("{} sources, {} port sets", p.sources.len(), p.ports.len());
        let (old, new) = if status == "added" {
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

fn host_changes(ot: &Topology, o: &Host, nt: &Topology, n: &Host) -> Vec<Change> {
    let mut out = Vec::new();
    let mut field = |what: String, old: Option<String>, new: Option<String>| {
        if old != new {
            let kind = match (&old, &new) {
                (None, _) => "added",
                (_, None) => "removed",
                _ => "changed",
            };
            out.push(Change {
                kind,
                what,
                old,
                new,
            });
        }
    };
    let flag = |b: bool, s: &str| b.then(|| s.to_string());
    field(
        "role".into(),
        flag(o.management_server, "management server"),
        flag(n.management_server, "management server"),
    );
    for nic in union(&o.nics, &n.nics) {
        field(
            format!("nic {nic}"),
            o.nics.contains(&nic).then(|| nic.clone()),
            n.nics.contains(&nic).then(|| nic.clone()),
        );
    }
    let bridges: Vec<String> = union(
        &o.bridges.iter().map(|b| b.name.clone()).collect::<Vec<_>>(),
        &n.bridges.iter().map(|b| b.name.clone()).collect::<Vec<_>>(),
    );
    for name in bridges {
        let ob = o.bridges.iter().find(|b| b.name == name);
        let nb = n.bridges.iter().find(|b| b.name == name);
        field(
            format!("bridge {name}"),
            ob.map(|b| b.port()),
            nb.map(|b| b.port()),
        );
        for family in Family::ALL {
            let (oa, na) = (
                ob.and_then(|b| b.address(family)),
                nb.and_then(|b| b.address(family)),
            );
            field(
                format!("bridge {name} {} address", family.name()),
                oa.map(|a| a.net.to_string()),
                na.map(|a| a.net.to_string()),
            );
            field(
                format!("{} default route via {name}", family.name()),
                oa.and_then(|a| a.gateway).map(|g| g.to_string()),
                na.and_then(|a| a.gateway).map(|g| g.to_string()),
            );
        }
    }
    let vip_lines = |t: &Topology, h: &Host| -> BTreeMap<String, String> {
        t.vips_of(&h.name)
            .map(|v| {
                let me = v
                    .members
                    .iter()
                    .find(|m| m.host == h.name)
                    .expect("vips_of");
                let state = if v.members[0].host == h.name {
                    "MASTER"
                } else {
                    "BACKUP"
                };
                let addrs: Vec<String> = v.addresses.iter().map(|a| a.to_string()).collect();
                // The unicast peers: the other members' addresses on the VIP's VLAN.
                let peers: Vec<String> = v
                    .members
                    .iter()
                    .filter(|m| m.host != h.name)
                    .filter_map(|m| t.host(&m.host)?.bridge_on(v.vlan))
                    .flat_map(|b| b.addresses.iter().map(|a| a.net.addr().to_string()))
                    .collect();
                let text = format!(
                    "{} on VLAN {}, router id {}, priority {}, {state}, peers {}",
                    addrs.join(" "),
                    v.vlan,
                    v.router_id,
                    me.priority,
                    peers.join(" ")
                );
                (v.name.clone(), text)
            })
            .collect()
    };
    let (ov, nv) = (vip_lines(ot, o), vip_lines(nt, n));
    for name in union(
        &ov.keys().cloned().collect::<Vec<_>>(),
        &nv.keys().cloned().collect::<Vec<_>>(),
    ) {
        field(
            format!("VIP {name}"),
            ov.get(&name).cloned(),
            nv.get(&name).cloned(),
        );
    }
    let (ok, nk) = (
        o.agent.as_ref().map(Agent::keys),
        n.agent.as_ref().map(Agent::keys),
    );
    if let Some(names) = ok
        .as_ref()
        .or(nk.as_ref())
        .map(|k| k.clone().map(|(key, _)| key))
    {
        for (i, key) in names.into_iter().enumerate() {
            let get = |k: &Option<[(&str, String); 6]>| k.as_ref().map(|k| k[i].1.clone());
            field(format!("agent.properties {key}"), get(&ok), get(&nk));
        }
    }
    out
}

/// Items of both lists, first list's order first.
fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = a.to_vec();
    out.extend(b.iter().filter(|x| !a.contains(x)).cloned());
    out
}

// --- access as address sets ----------------------------------------------------------------

/// Sorted, disjoint, inclusive ranges of addresses of one family (IPv4 as u128 too).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ranges(Vec<(u128, u128)>);

impl Ranges {
    fn full(family: Family) -> Ranges {
        Ranges(vec![(0, max(family))])
    }

    fn of<'a>(nets: impl Iterator<Item = &'a IpNet>) -> Ranges {
        let mut v: Vec<(u128, u128)> = nets
            .map(|n| (bits(n.network()), bits(n.broadcast())))
            .collect();
        v.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
        for (s, e) in v {
            match out.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        Ranges(out)
    }

    fn intersect(&self, other: &Ranges) -> Ranges {
        let (mut i, mut j, mut out) = (0, 0, Vec::new());
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let (s, e) = (a.0.max(b.0), a.1.min(b.1));
            if s <= e {
                out.push((s, e));
            }
            if a.1 < b.1 { i += 1 } else { j += 1 }
        }
        Ranges(out)
    }

    fn minus(&self, other: &Ranges) -> Ranges {
        let mut out = Vec::new();
        let mut j = 0;
        for &(start, end) in &self.0 {
            while j < other.0.len() && other.0[j].1 < start {
                j += 1;
            }
            // Walk the ranges of `other` that overlap [start, end], keeping the gaps.
            let (mut s, mut covered, mut k) = (start, false, j);
            while k < other.0.len() && other.0[k].0 <= end {
                let (os, oe) = other.0[k];
                if os > s {
                    out.push((s, os - 1));
                }
                if oe >= end {
                    covered = true;
                    break;
                }
                s = oe + 1;
                k += 1;
            }
            if !covered {
                out.push((s, end));
            }
        }
        Ranges(out)
    }

    fn prefixes(&self, family: Family) -> Vec<String> {
        let mut out = Vec::new();
        for &(s, e) in &self.0 {
            match family {
                Family::V4 => out.extend(
                    Ipv4Subnets::new(Ipv4Addr::from(s as u32), Ipv4Addr::from(e as u32), 0)
                        .map(|n| n.to_string()),
                ),
                Family::V6 => out.extend(
                    Ipv6Subnets::new(Ipv6Addr::from(s), Ipv6Addr::from(e), 0)
                        .map(|n| n.to_string()),
                ),
            }
        }
        out
    }
}

fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn max(family: Family) -> u128 {
    match family {
        Family::V4 => u32::MAX as u128,
        Family::V6 => u128::MAX,
    }
}

/// The addresses `host` accepts on each protected (protocol, port), per family.
fn accepted(topo: &Topology, host: &Host) -> BTreeMap<(Protocol, u16), [Ranges; 2]> {
    let mut out: BTreeMap<(Protocol, u16), [Ranges; 2]> = BTreeMap::new();
    for p in topo.policies_on(&host.name) {
        let allowed = Family::ALL.map(|f| Ranges::of(p.sources_of(f).map(|s| &s.net)));
        for set in &p.ports {
            for &port in &set.ports {
                let entry = out
                    .entry((set.protocol, port))
                    .or_insert_with(|| Family::ALL.map(Ranges::full));
                for i in 0..2 {
                    entry[i] = entry[i].intersect(&allowed[i]);
                }
            }
        }
    }
    out
}

/// (lost, gained) access on a host present in both topologies, grouped by equal source sets.
fn access(ot: &Topology, o: &Host, nt: &Topology, n: &Host) -> (Vec<Access>, Vec<Access>) {
    let (before, after) = (accepted(ot, o), accepted(nt, n));
    let keys: BTreeSet<(Protocol, u16)> = before.keys().chain(after.keys()).copied().collect();
    // (lost?, family, protocol, all except?, prefixes) → ports
    type Key = (bool, usize, Protocol, bool, Vec<String>);
    let mut groups: BTreeMap<Key, Vec<u16>> = BTreeMap::new();
    for key in keys {
        let full = Family::ALL.map(Ranges::full);
        let b = before.get(&key).unwrap_or(&full);
        let a = after.get(&key).unwrap_or(&full);
        for (i, family) in Family::ALL.into_iter().enumerate() {
            for (lost, set) in [(true, b[i].minus(&a[i])), (false, a[i].minus(&b[i]))] {
                if !set.0.is_empty() {
                    let direct = set.prefixes(family);
                    let rest = Ranges::full(family).minus(&set).prefixes(family);
                    let (except, sources) = if rest.len() < direct.len() {
                        (true, rest)
                    } else {
                        (false, direct)
                    };
                    groups
                        .entry((lost, i, key.0, except, sources))
                        .or_default()
                        .push(key.1);
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
            ports,
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
    let ports: Vec<String> = a.ports.iter().map(u16::to_string).collect();
    format!(
        "{} {} → {} {}",
        a.family,
        sources(a),
        a.protocol,
        ports.join(",")
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
            let mark = match c.kind {
                "added" => '+',
                "removed" => '-',
                _ => '~',
            };
            out += &format!("  {mark} {}\n", change_line(c));
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
                let ports: Vec<String> = a.ports.iter().map(u16::to_string).collect();
                out += &format!(
                    "| {kind} | {} | {} | {} | {} |\n",
                    sources(a),
                    a.family,
                    a.protocol,
                    ports.join(", ")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &[(u128, u128)]) -> Ranges {
        Ranges(v.to_vec())
    }

    #[test]
    fn range_arithmetic() {
        let a = r(&[(0, 10), (20, 30)]);
        let b = r(&[(5, 22), (25, 25)]);
        assert_eq!(a.minus(&b), r(&[(0, 4), (23, 24), (26, 30)]));
        assert_eq!(a.intersect(&b), r(&[(5, 10), (20, 22), (25, 25)]));
        assert_eq!(b.minus(&a), r(&[(11, 19)]));
        assert_eq!(a.minus(&a), r(&[]));
        let full = Ranges::full(Family::V6);
        assert_eq!(full.minus(&full), r(&[]));
        assert_eq!(r(&[(0, 10)]).minus(&r(&[(0, 10)])), r(&[]));
    }

    #[test]
    fn split_prefixes_are_the_same_set() {
        let a: Vec<IpNet> = vec!["192.0.2.0/24".parse().unwrap()];
        let b: Vec<IpNet> = vec![
            "192.0.2.128/25".parse().unwrap(),
            "192.0.2.0/25".parse().unwrap(),
        ];
        assert_eq!(Ranges::of(a.iter()), Ranges::of(b.iter()));
        assert_eq!(
            Ranges::of(a.iter()).prefixes(Family::V4),
            vec!["192.0.2.0/24"]
        );
    }
}
