//! The firewall: netc's iptables chains (`netc.v4`, `netc.v6`, and for large policies the
//! `ipsets` they match: [`super::ipset`]) and the `inet netc` nftables table
//! ([`super::nftables`]), from text prepared once per policy and shared by every host it is
//! on.

use askama::Template;

use super::ipset::{self, Ipset};
use super::nftables::{NftChain, NftPolicy, NftTable, input_chain};
use crate::model::{Family, Host, Policy, PortRange, Topology};

/// `-m multiport` matches at most this many ports per rule.
pub const MULTIPORT_MAX: usize = 15;

/// Each policy's firewall text, formatted once and shared by every host the policy is on.
pub(super) struct Firewalls {
    chains: Vec<ChainText>,
}

pub(super) struct ChainText {
    name: String,
    /// Sources per family matched by a rule each, in source order, each formatted once
    /// (`192.0.2.0/24`).
    v4: Vec<String>,
    v6: Vec<String>,
    /// Per family, the set that holds the sources of large groups.
    sets: Vec<Ipset>,
    /// iptables: per protocol, at most 15 ports a rule.
    multiport: Vec<Reject>,
    /// nftables: the policy's sets and chain, as data (the batch is built from it too).
    nft: NftPolicy,
}

struct Reject {
    protocol: &'static str,
    ports: String,
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
        let nft = NftPolicy::new(p, [&v4, &v6]);
        let (v4, set4) = ipset::split(p, Family::V4, v4);
        let (v6, set6) = ipset::split(p, Family::V6, v6);
        ChainText {
            name: p.chain.clone(),
            v4,
            v6,
            sets: set4.into_iter().chain(set6).collect(),
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
            nft,
        }
    }
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

/// The ipsets of a host's chains, in topology order.
pub(super) fn host_ipsets<'a>(chains: &[&'a ChainText]) -> Vec<&'a Ipset> {
    chains.iter().flat_map(|c| &c.sets).collect()
}

/// The nftables table of a host from its chains.
pub(super) fn nft_table(chains: &[&ChainText]) -> NftTable {
    NftTable {
        policies: chains.iter().map(|c| c.nft.clone()).collect(),
    }
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
    set: Option<&'a str>,
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
            set: c
                .sets
                .iter()
                .find(|s| s.family == family)
                .map(|s| s.name.as_str()),
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
    policies: Vec<&'a NftPolicy>,
    input: NftChain,
}

pub(super) fn nftables<'a>(topo: &'a Topology, chains: &[&'a ChainText]) -> Nftables<'a> {
    let policies: Vec<&NftPolicy> = chains.iter().map(|c| &c.nft).collect();
    Nftables {
        source: &topo.source,
        input: input_chain(policies.iter().copied()),
        policies,
    }
}
