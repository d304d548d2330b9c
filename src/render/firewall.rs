//! The firewall: netc's iptables chains (`netc.v4`, `netc.v6`) and the `inet netc` nftables
//! table, from text prepared once per policy and shared by every host it is on.

use std::net::IpAddr;

use askama::Template;
use ipnet::IpNet;

use crate::model::{Family, Host, Policy, PortRange, Topology};

/// `-m multiport` matches at most this many ports per rule.
pub const MULTIPORT_MAX: usize = 15;

/// The one nftables table netc owns (family `inet`).
pub const NFT_TABLE: &str = "netc";

/// Each policy's firewall text, formatted once and shared by every host the policy is on.
pub(super) struct Firewalls {
    chains: Vec<ChainText>,
}

pub(super) struct ChainText {
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
    pub(super) fn new(topo: &Topology) -> Firewalls {
        let chains = topo.policies.iter().map(ChainText::new).collect();
        Firewalls { chains }
    }

    /// The chains installed on `host`, in topology order.
    pub(super) fn on<'a>(&'a self, topo: &Topology, host: &Host) -> Vec<&'a ChainText> {
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
                    multiport_chunks(&set.ports)
                        .into_iter()
                        .map(|chunk| Reject {
                            protocol: set.protocol.keyword(),
                            ports: chunk
                                .iter()
                                .map(PortRange::iptables)
                                .collect::<Vec<_>>()
                                .join(","),
                        })
                })
                .collect(),
            sets,
            ports: p
                .ports
                .iter()
                .map(|set| Reject {
                    protocol: set.protocol.keyword(),
                    ports: set
                        .ports
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
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
    let (suffix, kind, selector) = (
        family.suffix(),
        family.nft_addr_type(),
        family.nft_selector(),
    );
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
                    (0, _) => format!("meta nfproto {}", family.keyword()),
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

/// `-m multiport` takes 15 ports a rule, a range counting as two.
fn multiport_chunks(ports: &[PortRange]) -> Vec<Vec<PortRange>> {
    let mut chunks: Vec<Vec<PortRange>> = Vec::new();
    let mut used = MULTIPORT_MAX;
    for r in ports {
        let cost = if r.first == r.last { 1 } else { 2 };
        if used + cost > MULTIPORT_MAX {
            chunks.push(Vec::new());
            used = 0;
        }
        chunks.last_mut().expect("pushed").push(*r);
        used += cost;
    }
    chunks
}

#[derive(Template)]
#[template(path = "iptables.rules", escape = "none")]
pub(super) struct Iptables<'a> {
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

pub(super) fn iptables<'a>(
    topo: &'a Topology,
    chains: &[&'a ChainText],
    family: Family,
) -> Iptables<'a> {
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
    let reject_with = match family {
        Family::V4 => "icmp-port-unreachable",
        Family::V6 => "icmp6-port-unreachable",
    };
    Iptables {
        source: &topo.source,
        family: family.name(),
        restore: family.iptables(),
        reject_with,
        chains,
    }
}

#[derive(Template)]
#[template(path = "netc.nft", escape = "none")]
pub(super) struct Nftables<'a> {
    source: &'a str,
    chains: &'a [&'a ChainText],
}

pub(super) fn nftables<'a>(topo: &'a Topology, chains: &'a [&'a ChainText]) -> Nftables<'a> {
    Nftables {
        source: &topo.source,
        chains,
    }
}
