//! What changes between two topologies, per host, in meaning rather than text.
//!
//! Firewall access is compared as sets of addresses per (protocol, port): the addresses a
//! host accepts on a port are the intersection, over the chains listing the port, of each
//! chain's allowed sources (a port no chain lists is open to all). Reordering or splitting
//! prefixes changes no set, so it shows nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::addrset::Ranges;
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
    pub ports: Vec<u16>,
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
    for nic in union(&o.nics, &n.nics) {
        out.field(
            format!("nic {nic}"),
            o.nics.contains(&nic).then(|| nic.clone()),
            n.nics.contains(&nic).then(|| nic.clone()),
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
            out.field(format!("agent.properties {key}"), get(&ok), get(&nk));
        }
    }
    out.0
}

/// Bridges: their ports, addresses and default routes.
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

/// What `h` has of each VIP it is a member of, as one line each.
fn vip_lines(t: &Topology, h: &Host) -> BTreeMap<String, String> {
    t.vips_of(&h.name)
        .map(|v| {
            let me = v.member(&h.name).expect("vips_of");
            let addrs: Vec<String> = v.addresses.iter().map(|a| a.to_string()).collect();
            let peers: Vec<String> = v
                .addresses
                .iter()
                .flat_map(|a| t.vrrp_peers(v, &h.name, Family::of_net(a)))
                .map(|a| a.to_string())
                .collect();
            let text = format!(
                "{} on VLAN {}, router id {}, priority {}, {}, peers {}",
                addrs.join(" "),
                v.vlan,
                v.router_id,
                me.priority,
                v.initial_state(&h.name).keyword(),
                peers.join(" ")
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
                if !set.is_empty() {
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
