//! The `inet netc` nftables table as data: named source sets, chains, and rules made of
//! matches and a verdict. `netc.nft` is rendered from it (each rule through its `Display`) and
//! `live::nftnl` builds its netlink batch from the same values, one function per kind of
//! match, so the text and the batch cannot drift.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::{Family, Policy, PortRange, Protocol};

/// The one nftables table netc owns (family `inet`).
pub const NFT_TABLE: &str = "netc";

/// The base chain that jumps to every policy's chain.
pub const NFT_INPUT: &str = "input";

/// The table of one host: its policies' sets and chains, in topology order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftTable {
    pub policies: Vec<NftPolicy>,
}

/// One policy's part of the table: its source sets and its chain. Built once per policy and
/// shared by every host it is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftPolicy {
    pub sets: Vec<NftSet>,
    pub chain: NftChain,
}

/// Sources of one family and prefix length: their network addresses in a hash set, matched
/// with the length's mask. A set per length keeps the rule count independent of the number
/// of sources, and hash sets load far faster than interval sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftSet {
    pub name: String,
    pub family: Family,
    /// The prefix length of every element.
    pub prefix_len: u8,
    /// The declared capacity: with a size the kernel picks a fixed-size hash, which loads
    /// about a fifth faster than the growing one (50k sources: 134 → 110 ms). Twice the
    /// elements, so a hand-added element still fits (and shows up as drift in plan).
    pub size: u32,
    /// Network addresses, longest prefixes' sets first, each sorted.
    pub elements: Vec<IpAddr>,
    /// The elements as netc.nft lists them (`a, b, c`), formatted once from `elements`.
    #[serde(skip)]
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftChain {
    pub name: String,
    pub rules: Vec<NftRule>,
}

/// Every match must hold for the verdict to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftRule {
    pub matches: Vec<NftMatch>,
    pub verdict: NftVerdict,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NftMatch {
    /// `meta nfproto ipv4`: every packet of a family.
    Family(Family),
    /// `ip saddr & 255.255.255.0 @set` (no mask for a full-length prefix): the source,
    /// masked to the set's prefix length, is in the named set.
    Source {
        family: Family,
        mask: Option<IpAddr>,
        set: String,
    },
    /// `ct state new`: the packet opens a connection (replies to the host's own connections
    /// are never rejected, whatever their port).
    New,
    /// `tcp dport { 16509, 16514 }`: the destination port is one of these.
    Ports { protocol: Protocol, ports: Vec<u16> },
    /// `tcp dport 5900-6100`: the destination port is in this range (two comparisons, as
    /// nft makes it, rather than an interval set).
    PortRange {
        protocol: Protocol,
        first: u16,
        last: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NftVerdict {
    /// Back to the calling chain, untouched.
    Return,
    /// icmpx port-unreachable (nft's plain `reject` in an inet table).
    Reject,
    Jump(String),
}

impl NftPolicy {
    /// `texts`: per family (IPv4, IPv6) the policy's sources formatted (`192.0.2.0/24`), in
    /// source order.
    pub fn new(p: &Policy, texts: [&[String]; 2]) -> NftPolicy {
        let mut sets = Vec::new();
        let mut rules = Vec::new();
        for (family, texts) in Family::ALL.into_iter().zip(texts) {
            let family_sets = sets_of(p, family, texts);
            // Longest prefixes first: the most specific match is tried first.
            rules.extend(family_sets.iter().map(|s| NftRule {
                matches: vec![NftMatch::Source {
                    family,
                    mask: s.mask(),
                    set: s.name.clone(),
                }],
                verdict: NftVerdict::Return,
            }));
            sets.extend(family_sets);
            // A /0 source allows the whole family: no set, just the family.
            if p.sources_of(family).any(|s| s.net.prefix_len() == 0) {
                rules.push(NftRule {
                    matches: vec![NftMatch::Family(family)],
                    verdict: NftVerdict::Return,
                });
            }
        }
        for set in &p.ports {
            rules.extend(port_rules(set.protocol, &set.ports));
        }
        NftPolicy {
            sets,
            chain: NftChain {
                name: p.chain.clone(),
                rules,
            },
        }
    }
}

/// The REJECT rules of one `ports` statement: its single ports in one rule, each range in a
/// rule of its own; only new connections.
fn port_rules(protocol: Protocol, ports: &[PortRange]) -> Vec<NftRule> {
    let reject = |m: NftMatch| NftRule {
        matches: vec![NftMatch::New, m],
        verdict: NftVerdict::Reject,
    };
    let singles: Vec<u16> = ports
        .iter()
        .filter(|r| r.first == r.last)
        .map(|r| r.first)
        .collect();
    let mut rules = Vec::new();
    if !singles.is_empty() {
        rules.push(reject(NftMatch::Ports {
            protocol,
            ports: singles,
        }));
    }
    for r in ports.iter().filter(|r| r.first != r.last) {
        rules.push(reject(NftMatch::PortRange {
            protocol,
            first: r.first,
            last: r.last,
        }));
    }
    rules
}

impl NftSet {
    /// The mask its rule applies to the source; none for full-length prefixes.
    pub fn mask(&self) -> Option<IpAddr> {
        let first = *self.elements.first().expect("sets are never empty");
        let net = IpNet::new(first, self.prefix_len).expect("a valid length");
        (self.prefix_len < net.max_prefix_len()).then(|| net.netmask())
    }
}

/// The family's sources in one set per prefix length (`/0` needs no set).
/// `texts` are the family's sources as formatted for iptables, in source order: a checked
/// prefix has no host bits, so the part before `/` is its network address, the element.
fn sets_of(p: &Policy, family: Family, texts: &[String]) -> Vec<NftSet> {
    // (length, network, its text), longest prefixes first, then by address; one sort of a
    // flat list is much cheaper than tree inserts.
    let mut all: Vec<(u8, IpAddr, &str)> = p
        .sources_of(family)
        .zip(texts)
        .map(|(s, text)| {
            let network = text.split_once('/').map_or(text.as_str(), |(a, _)| a);
            (s.net.prefix_len(), s.net.network(), network)
        })
        .filter(|(len, _, _)| *len > 0)
        .collect();
    all.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    all.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
    all.chunk_by(|a, b| a.0 == b.0)
        .map(|group| {
            let len = group[0].0;
            let elements: Vec<IpAddr> = group.iter().map(|(_, a, _)| *a).collect();
            let texts: Vec<&str> = group.iter().map(|(_, _, t)| *t).collect();
            NftSet {
                name: format!("{}_{}_{len}", p.chain, family.suffix()),
                family,
                prefix_len: len,
                size: (elements.len().max(32) * 2).next_power_of_two() as u32,
                elements,
                text: texts.join(", "),
            }
        })
        .collect()
}

impl NftTable {
    /// The base chain: hooked on input, priority filter (0), policy accept; it jumps to
    /// each policy's chain in order.
    pub fn input(&self) -> NftChain {
        input_chain(self.policies.iter())
    }
}

pub fn input_chain<'a>(policies: impl Iterator<Item = &'a NftPolicy>) -> NftChain {
    NftChain {
        name: NFT_INPUT.to_string(),
        rules: policies
            .map(|p| NftRule {
                matches: Vec::new(),
                verdict: NftVerdict::Jump(p.chain.name.clone()),
            })
            .collect(),
    }
}

impl fmt::Display for NftRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.matches {
            write!(f, "{m} ")?;
        }
        write!(f, "{}", self.verdict)
    }
}

impl fmt::Display for NftMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NftMatch::Family(family) => write!(f, "meta nfproto {}", family.keyword()),
            NftMatch::Source { family, mask, set } => {
                write!(f, "{} saddr", family.nft_selector())?;
                if let Some(mask) = mask {
                    write!(f, " & {mask}")?;
                }
                write!(f, " @{set}")
            }
            NftMatch::New => write!(f, "ct state new"),
            NftMatch::Ports { protocol, ports } => {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                write!(f, "{} dport {{ {} }}", protocol.keyword(), ports.join(", "))
            }
            NftMatch::PortRange {
                protocol,
                first,
                last,
            } => write!(f, "{} dport {first}-{last}", protocol.keyword()),
        }
    }
}

impl fmt::Display for NftVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NftVerdict::Return => write!(f, "return"),
            NftVerdict::Reject => write!(f, "reject"),
            NftVerdict::Jump(chain) => write!(f, "jump {chain}"),
        }
    }
}
