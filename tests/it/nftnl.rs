//! The nftnl batch against `nft -f`: for every host of every valid fixture, csc.csn, the
//! advanced zone and a
//! generated policy of 10,000 sources (several sets, lengths, ports, UDP, a /0), netc.nft
//! loaded by nft in one namespace and the batch loaded over netlink in another list the same
//! table, and reading either back over netlink gives what netc would send.

use std::path::Path;

use netc::config::Target;
use netc::live::nftnl::{self, Snapshot};
use netc::render;

use crate::netns::{Netns, available};
use crate::support::{compile, fixtures, root};

use crate::scale::topology;

fn topologies() -> Vec<netc::Compiled> {
    let mut all: Vec<netc::Compiled> = fixtures("ok").iter().map(|p| compile(p)).collect();
    all.push(compile(&root().join("topology/csc.csn")));
    // Port ranges, several chains.
    all.push(compile(&root().join("topology/examples/advanced-zone.csn")));
    all.push(netc::compile(
        "gen.csn",
        topology::topology(10_000, 1).as_bytes(),
    ));
    all
}

fn listing(ns: &Netns) -> String {
    ns.ok(&["nft", "list", "table", "inet", "netc"])
}

#[test]
fn the_batch_and_nft_f_load_the_same_table() {
    if !available("the_batch_and_nft_f_load_the_same_table", &["nft"]) {
        return;
    }
    for c in topologies() {
        let topo = c.topology.as_ref().unwrap();
        let tree = render::tree(topo, Target::Nftables);
        for host in &topo.hosts {
            let what = format!("{} {}", c.source.name, host.name);
            let text = &tree[&Path::new(&host.name).join("etc/nftables.d/netc.nft")];
            let table = render::nft_table(topo, host);
            let by_nft = Netns::new("nftf");
            let o = by_nft.run_stdin(&["nft", "-f", "-"], text);
            assert!(o.status.success(), "{what}: {o:?}");
            let by_netc = Netns::new("nftnl");
            by_netc.enter(|| nftnl::load(&table)).unwrap();
            assert_eq!(listing(&by_netc), listing(&by_nft), "{what}");
            let intended = Snapshot::of(&nftnl::batch(&table));
            assert_eq!(
                by_netc.enter(nftnl::read).unwrap().as_ref(),
                Some(&intended),
                "{what}"
            );
            assert_eq!(
                by_nft.enter(nftnl::read).unwrap().as_ref(),
                Some(&intended),
                "{what}"
            );
            // Loading again replaces the table in one transaction.
            by_netc.enter(|| nftnl::load(&table)).unwrap();
            assert_eq!(listing(&by_netc), listing(&by_nft), "{what}: reloaded");
        }
    }
}

/// Every kind of hand edit makes the table read back unlike what netc would load.
#[test]
fn hand_edits_read_back_as_different() {
    if !available("hand_edits_read_back_as_different", &["nft"]) {
        return;
    }
    let c = compile(&root().join("tests/fixtures/ok/lab.csn"));
    let topo = c.topology.as_ref().unwrap();
    let table = render::nft_table(topo, &topo.hosts[0]);
    let intended = Snapshot::of(&nftnl::batch(&table));
    let edits: [&[&str]; 9] = [
        &[
            "add",
            "element",
            "inet",
            "netc",
            "CLOUDSTACK-SERVICES_v4_32",
            "{ 192.0.2.99 }",
        ],
        &[
            "delete",
            "element",
            "inet",
            "netc",
            "CLOUDSTACK-SERVICES_v4_32",
            "{ 192.0.2.7 }",
        ],
        &[
            "insert",
            "rule",
            "inet",
            "netc",
            "CLOUDSTACK-SERVICES",
            "accept",
        ],
        &["add", "rule", "inet", "netc", "MONITORING", "counter"],
        &["add", "chain", "inet", "netc", "extra"],
        &["add", "set", "inet", "netc", "extra", "{ type ipv4_addr; }"],
        &["add", "table", "inet", "netc", "{ flags dormant; }"],
        &["add", "chain", "inet", "netc", "input", "{ policy drop; }"],
        &["flush", "chain", "inet", "netc", "MONITORING"],
    ];
    for edit in edits {
        let ns = Netns::new("nftedit");
        ns.enter(|| nftnl::load(&table)).unwrap();
        assert_eq!(ns.enter(nftnl::read).unwrap().as_ref(), Some(&intended));
        let mut args = vec!["nft"];
        args.extend_from_slice(edit);
        ns.ok(&args);
        let live = ns.enter(nftnl::read).unwrap();
        assert_ne!(live.as_ref(), Some(&intended), "{edit:?} went unnoticed");
    }
    // Gone is gone; deleting twice is fine.
    let ns = Netns::new("nftdel");
    ns.enter(|| nftnl::load(&table)).unwrap();
    ns.enter(nftnl::delete).unwrap();
    assert_eq!(ns.enter(nftnl::read).unwrap(), None);
    ns.enter(nftnl::delete).unwrap();
    assert!(!ns.ok(&["nft", "list", "tables"]).contains("netc"));
}

/// A batch the kernel refuses changes nothing, and the error says which object it refused.
#[test]
fn a_refused_batch_leaves_the_table_as_it_was() {
    if !available("a_refused_batch_leaves_the_table_as_it_was", &["nft"]) {
        return;
    }
    let c = compile(&root().join("tests/fixtures/ok/minimal.csn"));
    let topo = c.topology.as_ref().unwrap();
    let table = render::nft_table(topo, &topo.hosts[0]);
    let mut broken = table.clone();
    broken.policies[0].chain.rules[0].verdict =
        netc::render::nftables::NftVerdict::Jump("NO-SUCH-CHAIN".into());
    let ns = Netns::new("nftbad");
    ns.enter(|| nftnl::load(&table)).unwrap();
    let before = listing(&ns);
    let e = ns.enter(|| nftnl::load(&broken)).unwrap_err();
    assert!(
        e.to_string()
            .contains("refused a rule of chain CLOUDSTACK-SERVICES"),
        "{e}"
    );
    assert_eq!(listing(&ns), before);
}
