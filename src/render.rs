//! Model → the text of each host's files, one askama template per artefact.
//!
//! Decisions live here in Rust (which stanzas a bridge gets, how ports are chunked); the
//! templates only lay the prepared values out.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use askama::Template;
use ipnet::IpNet;

use crate::config::Target;
use crate::model::*;

/// `-m multiport` matches at most this many ports per rule.
pub const MULTIPORT_MAX: usize = 15;

/// One file of a host's tree, relative to the host's root (`etc/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artefact {
    pub path: PathBuf,
    pub text: String,
}

/// Every file of every host, keyed by `<host>/etc/...`: the whole `out/` tree.
pub fn tree(topo: &Topology, target: Target) -> BTreeMap<PathBuf, String> {
    let firewalls = Firewalls::new(topo);
    topo.hosts
        .iter()
        .flat_map(|h| {
            files(topo, &firewalls, h, target)
                .into_iter()
                .map(|a| (PathBuf::from(&h.name).join(a.path), a.text))
        })
        .collect()
}

/// The files of one host.
pub fn host(topo: &Topology, host: &Host, target: Target) -> Vec<Artefact> {
    files(topo, &Firewalls::new(topo), host, target)
}

fn files(topo: &Topology, firewalls: &Firewalls, host: &Host, target: Target) -> Vec<Artefact> {
    let mut out = vec![artefact("etc/network/interfaces", interfaces(topo, host))];
    let chains = firewalls.on(topo, host);
    if target.iptables() {
        for family in Family::ALL {
            let name = match family {
                Family::V4 => "etc/iptables/rules.v4",
                Family::V6 => "etc/iptables/rules.v6",
            };
            out.push(artefact(name, iptables(topo, &chains, family)));
        }
    }
    if target.nftables() {
        let nft = Nftables {
            source: &topo.source,
            chains: &chains,
        };
        out.push(artefact("etc/nftables.d/netc.nft", nft));
    }
    if topo.vips_of(&host.name).next().is_some() {
        out.push(artefact(
            "etc/keepalived/keepalived.conf",
            keepalived(topo, host),
        ));
    }
    if let Some(agent) = &host.agent {
        out.push(artefact(
            "etc/cloudstack/agent/agent.properties",
            agent_properties(topo, agent),
        ));
    }
    out
}

fn artefact(path: &str, template: impl Template) -> Artefact {
    let mut text = template
        .render()
        .expect("templates only print plain values");
    text.push('\n');
    Artefact {
        path: PathBuf::from(path),
        text,
    }
}

// --- firewall text, prepared once per policy ------------------------------------------------

/// Each policy's firewall text, formatted once and shared by every host the policy is on.
struct Firewalls {
    chains: Vec<ChainText>,
}

struct ChainText {
    name: String,
    /// Sources per family, in source order, each formatted once (`192.0.2.0/24`).
    v4: Vec<String>,
    v6: Vec<String>,
    /// iptables: per protocol, at most 15 ports a rule.
    multiport: Vec<Reject>,
    /// nftables: one hash set per family and prefix length.
    sets: Vec<NftSet>,
    /// nftables: per protocol, every port in one anonymous set.
    ports: Vec<Reject>,
}

struct Reject {
    protocol: &'static str,
    ports: String,
}

/// Sources of one family and prefix length: their network addresses in a hash set, matched
/// with the length's mask. A set per length keeps the rule count independent of the number
/// of sources, and hash sets load far faster than interval sets. (`/0` needs no set.)
struct NftSet {
    name: String,
    kind: &'static str,
    /// The set's declared capacity: with a size the kernel picks a fixed-size hash, which
    /// loads about a fifth faster than the growing one (50k sources: 134 → 110 ms). Twice
    /// the elements, so a hand-added element still fits (and shows up as drift in plan).
    size: usize,
    matcher: String,
    elements: Option<String>,
}

impl Firewalls {
    fn new(topo: &Topology) -> Firewalls {
        let chains = topo.policies.iter().map(ChainText::new).collect();
        Firewalls { chains }
    }

    /// The chains installed on `host`, in topology order.
    fn on<'a>(&'a self, topo: &Topology, host: &Host) -> Vec<&'a ChainText> {
        topo.policies
            .iter()
            .zip(&self.chains)
            .filter(|(p, _)| p.hosts.contains(&host.name))
            .map(|(_, c)| c)
            .collect()
    }
}

impl ChainText {
    fn new(p: &Policy) -> ChainText {
        let text = |f| {
            p.sources_of(f)
                .map(|s| s.net.to_string())
                .collect::<Vec<_>>()
        };
        let (v4, v6) = (text(Family::V4), text(Family::V6));
        let sets = [(Family::V4, &v4), (Family::V6, &v6)]
            .into_iter()
            .flat_map(|(f, texts)| nft_sets(p, f, texts))
            .collect();
        ChainText {
            name: p.chain.clone(),
            v4,
            v6,
            multiport: p
                .ports
                .iter()
                .flat_map(|set| {
                    set.ports.chunks(MULTIPORT_MAX).map(|chunk| Reject {
                        protocol: set.protocol.keyword(),
                        ports: join(chunk, ","),
                    })
                })
                .collect(),
            sets,
            ports: p
                .ports
                .iter()
                .map(|set| Reject {
                    protocol: set.protocol.keyword(),
                    ports: join(&set.ports, ", "),
                })
                .collect(),
        }
    }
}

/// `texts` are the family's sources as formatted for iptables: a checked prefix has no host
/// bits, so the part before `/` is its network address, the set element.
fn nft_sets(p: &Policy, family: Family, texts: &[String]) -> Vec<NftSet> {
    // (length, network, its text), longest prefixes first (the most specific match is tried
    // first), then by address; one sort of a flat list is much cheaper than tree inserts.
    let mut all: Vec<(u8, IpAddr, &str)> = p
        .sources_of(family)
        .zip(texts)
        .map(|(s, text)| {
            let network = text.split_once('/').map_or(text.as_str(), |(a, _)| a);
            (s.net.prefix_len(), s.net.network(), network)
        })
        .collect();
    all.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    all.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
    let (suffix, kind, selector) = match family {
        Family::V4 => ("v4", "ipv4_addr", "ip"),
        Family::V6 => ("v6", "ipv6_addr", "ip6"),
    };
    all.chunk_by(|a, b| a.0 == b.0)
        .map(|group| {
            let (len, first, _) = group[0];
            let mask = IpNet::new(first, len).expect("a valid length").netmask();
            let full = len == IpNet::from(mask).max_prefix_len();
            NftSet {
                name: format!("{}_{suffix}_{len}", p.chain),
                kind,
                size: (group.len().max(32) * 2).next_power_of_two(),
                matcher: match (len, full) {
                    (0, _) => format!(
                        "meta nfproto {}",
                        if family == Family::V4 { "ipv4" } else { "ipv6" }
                    ),
                    (_, true) => format!("{selector} saddr"),
                    (_, false) => format!("{selector} saddr & {mask}"),
                },
                elements: (len > 0).then(|| {
                    let texts: Vec<&str> = group.iter().map(|(_, _, t)| *t).collect();
                    texts.join(", ")
                }),
            }
        })
        .collect()
}

fn join(ports: &[u16], sep: &str) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

// --- /etc/network/interfaces --------------------------------------------------------------

#[derive(Template)]
#[template(path = "interfaces", escape = "none")]
struct Interfaces<'a> {
    source: &'a str,
    blocks: Vec<IfaceBlock>,
}

/// An `auto` line and the interface's `iface` stanzas.
struct IfaceBlock {
    comment: Option<String>,
    name: String,
    stanzas: Vec<Stanza>,
}

struct Stanza {
    family: &'static str,
    method: &'static str,
    options: Vec<(&'static str, String)>,
}

fn interfaces<'a>(topo: &'a Topology, host: &Host) -> Interfaces<'a> {
    let manual = |name: &str, comment: Option<String>| IfaceBlock {
        comment,
        name: name.to_string(),
        stanzas: vec![Stanza {
            family: "inet",
            method: "manual",
            options: Vec::new(),
        }],
    };
    let mut blocks: Vec<IfaceBlock> = host.nics.iter().map(|n| manual(n, None)).collect();
    for b in &host.bridges {
        let vlan_name = topo.vlan(b.vlan).map(|v| v.name.clone());
        blocks.push(manual(&b.port(), vlan_name));
        blocks.push(IfaceBlock {
            comment: None,
            name: b.name.clone(),
            stanzas: bridge_stanzas(b),
        });
    }
    Interfaces {
        source: &topo.source,
        blocks,
    }
}

/// `bridge_ports` goes in every stanza, as ifupdown's bridge hook reads whichever comes first.
fn bridge_stanzas(b: &Bridge) -> Vec<Stanza> {
    let ports = ("bridge_ports", b.port());
    if b.addresses.is_empty() {
        return vec![Stanza {
            family: "inet",
            method: "manual",
            options: vec![ports],
        }];
    }
    Family::ALL
        .into_iter()
        .filter_map(|f| b.address(f))
        .map(|a| {
            let mut options = vec![ports.clone(), ("address", a.net.to_string())];
            if let Some(gw) = a.gateway {
                options.push(("gateway", gw.to_string()));
            }
            let family = match Family::of_net(&a.net) {
                Family::V4 => "inet",
                Family::V6 => "inet6",
            };
            Stanza {
                family,
                method: "static",
                options,
            }
        })
        .collect()
}

// --- /etc/iptables/rules.v4, rules.v6 ----------------------------------------------------

#[derive(Template)]
#[template(path = "iptables.rules", escape = "none")]
struct Iptables<'a> {
    source: &'a str,
    family: &'static str,
    restore: &'static str,
    reject_with: &'static str,
    chains: Vec<IptChain<'a>>,
}

struct IptChain<'a> {
    name: &'a str,
    sources: &'a [String],
    rejects: &'a [Reject],
}

fn iptables<'a>(topo: &'a Topology, chains: &[&'a ChainText], family: Family) -> Iptables<'a> {
    let chains = chains
        .iter()
        .map(|c| IptChain {
            name: &c.name,
            sources: match family {
                Family::V4 => &c.v4,
                Family::V6 => &c.v6,
            },
            rejects: &c.multiport,
        })
        .collect();
    let (family, restore, reject_with) = match family {
        Family::V4 => ("IPv4", "iptables-restore", "icmp-port-unreachable"),
        Family::V6 => ("IPv6", "ip6tables-restore", "icmp6-port-unreachable"),
    };
    Iptables {
        source: &topo.source,
        family,
        restore,
        reject_with,
        chains,
    }
}

// --- /etc/nftables.d/netc.nft -------------------------------------------------------------

#[derive(Template)]
#[template(path = "netc.nft", escape = "none")]
struct Nftables<'a> {
    source: &'a str,
    chains: &'a [&'a ChainText],
}

// --- /etc/keepalived/keepalived.conf -------------------------------------------------------

#[derive(Template)]
#[template(path = "keepalived.conf", escape = "none")]
struct Keepalived<'a> {
    source: &'a str,
    host: &'a str,
    scripts: Vec<Script>,
    instances: Vec<Instance>,
}

struct Script {
    name: String,
    path: String,
    interval: u32,
}

struct Instance {
    name: String,
    state: &'static str,
    interface: String,
    router_id: u8,
    priority: u8,
    source: String,
    peers: Vec<String>,
    address: ipnet::IpNet,
    track: Option<String>,
}

fn keepalived<'a>(topo: &'a Topology, host: &'a Host) -> Keepalived<'a> {
    let mut scripts = Vec::new();
    let mut instances = Vec::new();
    for vip in topo.vips_of(&host.name) {
        let track = vip.check.as_ref().map(|c| {
            let name = format!("check_{}", vip.name);
            scripts.push(Script {
                name: name.clone(),
                path: c.script.clone(),
                interval: c.interval,
            });
            name
        });
        let me = vip
            .members
            .iter()
            .find(|m| m.host == host.name)
            .expect("vips_of");
        let bridge = host
            .bridge_on(vip.vlan)
            .expect("checked: members have a bridge on the VLAN");
        for address in &vip.addresses {
            let family = Family::of_net(address);
            let addr_on = |h: &str| {
                topo.host(h)
                    .and_then(|h| h.bridge_on(vip.vlan))
                    .and_then(|b| b.address(family))
                    .map(|a| a.net.addr().to_string())
                    .expect("checked: members have an address of each VIP family")
            };
            let suffix = match family {
                Family::V4 => "v4",
                Family::V6 => "v6",
            };
            instances.push(Instance {
                name: format!("{}_{suffix}", vip.name),
                // Members are sorted by priority: the first one holds the address.
                state: if vip.members[0].host == host.name {
                    "MASTER"
                } else {
                    "BACKUP"
                },
                interface: bridge.name.clone(),
                router_id: vip.router_id,
                priority: me.priority,
                source: addr_on(&host.name),
                peers: vip
                    .members
                    .iter()
                    .filter(|m| m.host != host.name)
                    .map(|m| addr_on(&m.host))
                    .collect(),
                address: *address,
                track: track.clone(),
            });
        }
    }
    Keepalived {
        source: &topo.source,
        host: &host.name,
        scripts,
        instances,
    }
}

// --- /etc/cloudstack/agent/agent.properties ------------------------------------------------

#[derive(Template)]
#[template(path = "agent.properties", escape = "none")]
struct AgentProperties<'a> {
    source: &'a str,
    keys: [(&'static str, String); 6],
}

fn agent_properties<'a>(topo: &'a Topology, agent: &'a Agent) -> AgentProperties<'a> {
    AgentProperties {
        source: &topo.source,
        keys: agent.keys(),
    }
}
