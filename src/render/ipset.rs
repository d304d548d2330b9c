//! Large iptables policies: allowed sources in netc's `hash:net` ipsets instead of a rule
//! each. A family's sources of one prefix length go into the chain's set of that family
//! (`<CHAIN>_v4`, `<CHAIN>_v6`) when there are at least [`IPSET_MIN`] of them; smaller groups
//! stay plain `-s` rules. The chain then matches the set with one rule
//! (`-m set --match-set <CHAIN>_v4 src -j RETURN`), so its rule count, and the cost per
//! packet, no longer grow with the number of sources. The sets are rendered to
//! `/etc/iptables/ipsets` for Debian's ipset-persistent, which restores them at boot before
//! the rules (its `10-ipset` plugin runs `ipset restore -exist`).

use std::net::IpAddr;

use crate::model::{Family, Policy, Topology};
use askama::Template;

/// From this many sources of one family and prefix length on, a set matches them. Measured
/// here (bench/ipset-threshold): a set costs a packet about what 40 to 50 non-matching rules
/// cost, and loading either takes a few ms up to hundreds of sources; from 32 on, the set's
/// cost is within noise of the rules' and stays flat while theirs grows with every source.
pub const IPSET_MIN: usize = 32;

/// One netc-owned `hash:net` set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipset {
    pub name: String,
    pub family: Family,
    /// Buckets to start with (a power of two, at least ipset's default 1024): the set does
    /// not grow its hash while it is loaded.
    pub hashsize: usize,
    /// At least ipset's default 65536, and twice the elements.
    pub maxelem: usize,
    /// Sorted, without repeats; a host prefix is written as its address (as `ipset save`).
    pub elements: Vec<String>,
}

/// A policy's sources of one family: those in large groups as the family's set, the rest
/// (in source order) as the text of plain rules.
pub(super) fn split(
    p: &Policy,
    family: Family,
    texts: Vec<String>,
) -> (Vec<String>, Option<Ipset>) {
    let mut counts = [0usize; 129];
    for s in p.sources_of(family) {
        counts[s.net.prefix_len() as usize] += 1;
    }
    if counts.iter().all(|&c| c < IPSET_MIN) {
        return (texts, None);
    }
    let mut plain = Vec::new();
    let mut members: Vec<(IpAddr, u8, String)> = Vec::new();
    for (s, text) in p.sources_of(family).zip(texts) {
        let len = s.net.prefix_len();
        // A /0 is every source of the family: a rule, never a set element.
        if counts[len as usize] < IPSET_MIN || len == 0 {
            plain.push(text);
            continue;
        }
        let mut text = text;
        if len == s.net.max_prefix_len() {
            // `192.0.2.7/32` → `192.0.2.7`, as `ipset save` writes a host.
            let slash = text.rfind('/').expect("a prefix has a length");
            text.truncate(slash);
        }
        members.push((s.net.network(), len, text));
    }
    members.sort_unstable_by_key(|m| (m.0, m.1));
    members.dedup_by(|a, b| (a.0, a.1) == (b.0, b.1));
    let n = members.len();
    let set = Ipset {
        name: format!("{}_{}", p.chain, family.suffix()),
        family,
        hashsize: n.next_power_of_two().max(1024),
        maxelem: (n * 2).next_power_of_two().max(65536),
        elements: members.into_iter().map(|(_, _, t)| t).collect(),
    };
    (plain, Some(set))
}

impl Ipset {
    /// `inet` or `inet6`: ipset's name of the family.
    pub fn family_name(&self) -> &'static str {
        self.family.ifupdown()
    }
}

#[derive(Template)]
#[template(path = "ipsets", escape = "none")]
pub(super) struct Ipsets<'a> {
    source: &'a str,
    sets: Vec<&'a Ipset>,
}

pub(super) fn ipsets<'a>(topo: &'a Topology, sets: Vec<&'a Ipset>) -> Ipsets<'a> {
    Ipsets {
        source: &topo.source,
        sets,
    }
}
