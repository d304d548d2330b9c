//! Generated topologies (bench/topology.rs: the peers' policy at N sources on H hosts): the
//! output has the expected size and shape, and a sample behaves right in a namespace. No
//! timing here: speed is measured by bench/run and benches/stages.rs.

use std::path::Path;

use netc::config::Target;
use netc::diag::Code;
use netc::render;
use netc::render::ipset::IPSET_MIN;

use crate::netns::available;
use crate::traffic::{Loader, check_firewall};

#[path = "../../bench/topology.rs"]
pub mod topology;

fn build(
    sources: usize,
    hosts: usize,
) -> (
    netc::Compiled,
    std::collections::BTreeMap<std::path::PathBuf, String>,
) {
    let c = netc::compile("gen.csn", topology::topology(sources, hosts).as_bytes());
    // The benchmark's ports are the seed's: 45335 and 41047 are in the ephemeral range.
    assert!(
        c.diags
            .iter()
            .all(|d| d.code == netc::diag::Code::EphemeralPort),
        "{:?}",
        c.diags.first()
    );
    let tree = render::tree(c.topology.as_ref().unwrap(), Target::Both);
    (c, tree)
}

fn file<'a>(
    tree: &'a std::collections::BTreeMap<std::path::PathBuf, String>,
    rel: &str,
) -> &'a str {
    &tree[&Path::new("h00001").join(rel)]
}

#[test]
fn rule_counts_do_not_grow_with_the_sources() {
    for n in [10, 62, 64, 1_000, 10_000] {
        let (_, tree) = build(n, 1);
        let returns = |rel: &str| {
            file(&tree, rel)
                .lines()
                .filter(|l| l.ends_with("-j RETURN"))
                .count()
        };
        // Below the threshold a rule per source; from it on, one rule matching an ipset.
        let per_family = |count: usize| if count < IPSET_MIN { count } else { 1 };
        assert_eq!(
            returns("etc/iptables/netc.v4"),
            per_family(n.div_ceil(2)),
            "N={n}"
        );
        assert_eq!(returns("etc/iptables/netc.v6"), per_family(n / 2), "N={n}");
        let members = tree
            .get(&Path::new("h00001").join("etc/iptables/ipsets"))
            .map_or(0, |t| t.lines().filter(|l| l.starts_with("add ")).count());
        assert_eq!(members, if n / 2 < IPSET_MIN { 0 } else { n }, "N={n}");
        let nft = file(&tree, "etc/nftables.d/netc.nft");
        let rules = nft
            .lines()
            .filter(|l| l.ends_with(" return") || l.ends_with(" reject"))
            .count();
        assert_eq!(rules, 3, "N={n}: the nft chain's rules do not grow with N");
        let elements: usize = nft
            .lines()
            .filter_map(|l| l.trim().strip_prefix("elements = { "))
            .map(|l| l.split(", ").count())
            .sum();
        assert_eq!(elements, n, "N={n}: every source is a set element");
    }
}

#[test]
fn every_host_gets_its_files() {
    let (c, tree) = build(10, 300);
    let topo = c.topology.unwrap();
    assert_eq!(topo.hosts.len(), 300);
    // interfaces, netc.v4, netc.v6, netc.nft, netc-firewall.service, agent.properties;
    // keepalived on the two VIP members.
    assert_eq!(tree.len(), 300 * 6 + 2);
}

/// 50k sources where every second one is inside the one before: the sweep finds all 25k
/// without comparing all pairs (quadratic would be over a billion comparisons).
#[test]
fn covered_sources_at_scale() {
    let mut text = topology::topology(0, 1);
    let allows: String = (0..25_000u32)
        .map(|i| {
            let (a, b) = (i >> 8, i & 255);
            format!("    allow 10.{a}.{b}.0/24\n    allow 10.{a}.{b}.7\n")
        })
        .collect();
    text = text.replace("    ports tcp", &format!("{allows}    ports tcp"));
    let c = netc::compile("covered.csn", text.as_bytes());
    assert_eq!(c.errors(), 0);
    let covered = c
        .diags
        .iter()
        .filter(|d| d.code == Code::CoveredSource)
        .count();
    assert_eq!(covered, 25_000);
}

/// A sample of a 2000-source policy's allowed sources and outsiders, through both loaders.
#[test]
fn generated_firewall_behaves() {
    if !available(
        "generated firewall",
        &["iptables-restore", "ip6tables-restore", "nft"],
    ) {
        return;
    }
    let (c, _) = build(2_000, 1);
    let topo = c.topology.unwrap();
    for loader in [Loader::Iptables, Loader::Nftables, Loader::Nftnl] {
        let tried = check_firewall(&topo, &topo.hosts[0], loader, 24);
        assert!(tried >= 6 * 24, "{tried}");
    }
}
