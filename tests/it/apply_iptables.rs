//! The live iptables plan (netc::iptables_plan) against real iptables in a namespace: only
//! netc's chains change, foreign chains survive, exactly one INPUT jump, and a second run on
//! an unchanged table writes nothing.

use netc::config::Target;
use netc::live::iptables::plan;
use netc::render;

use crate::netns::{Netns, available, which};
use crate::support::*;

/// A table libvirt and an admin left behind: foreign chains and rules netc must not touch.
const FOREIGN_V4: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:LIBVIRT_INP - [0:0]
:LIBVIRT_FWX - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -j LIBVIRT_INP
-A FORWARD -j LIBVIRT_FWX
-A LIBVIRT_INP -i virbr0 -p udp -m udp --dport 53 -j ACCEPT
-A LIBVIRT_FWX -i virbr0 -o virbr0 -j ACCEPT
COMMIT
";

fn lines_of<'a>(save: &'a str, chain: &str) -> Vec<&'a str> {
    save.lines()
        .filter(|l| l.starts_with(&format!("-A {chain} ")))
        .collect()
}

fn check(backend: &str, family: &str, rendered: &str) {
    let (restore, save) = match family {
        "v4" => (
            format!("iptables-{backend}-restore"),
            format!("iptables-{backend}-save"),
        ),
        _ => (
            format!("ip6tables-{backend}-restore"),
            format!("ip6tables-{backend}-save"),
        ),
    };
    let ns = Netns::new("apl");
    let o = ns.run_stdin(&[&restore], FOREIGN_V4);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = ns.ok(&[&save, "-t", "filter"]);
    let apply = |what: &str| {
        let live = ns.ok(&[&save, "-t", "filter"]);
        let p = plan(rendered, &live, &[]);
        if let Some(payload) = &p.restore {
            let o = ns.run_stdin(&[&restore, "--noflush"], payload);
            assert!(
                o.status.success(),
                "{what}: {}\n{payload}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        p
    };
    let first = apply("first apply");
    assert!(first.restore.is_some());
    let after = ns.ok(&[&save, "-t", "filter"]);
    // Foreign chains and rules are exactly as they were.
    for chain in ["LIBVIRT_INP", "LIBVIRT_FWX", "FORWARD"] {
        assert_eq!(
            lines_of(&after, chain),
            lines_of(&before, chain),
            "{backend} {family}: {chain}"
        );
    }
    assert!(after.contains("-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"));
    // netc's chains are the rendered ones, each jumped to once, ahead of the foreign rules.
    let input = lines_of(&after, "INPUT");
    for l in rendered.lines().filter(|l| l.starts_with("-A INPUT -j ")) {
        assert_eq!(
            input.iter().filter(|i| *i == &l).count(),
            1,
            "{backend} {family}: {l}"
        );
        let chain = l.trim_start_matches("-A INPUT -j ");
        assert_eq!(
            lines_of(&after, chain),
            lines_of(rendered, chain),
            "{backend} {family}: {chain}"
        );
    }
    assert!(
        input[0].starts_with("-A INPUT -j ") && !input[0].contains("LIBVIRT"),
        "{input:?}"
    );
    // Unchanged: no write at all.
    let again = apply("second apply");
    assert_eq!(
        again.restore, None,
        "{backend} {family}: {:?}",
        again.changes
    );
    // Drift: a duplicated jump and an edited rule are repaired, foreign rules still kept.
    let chain = rendered
        .lines()
        .find_map(|l| l.strip_prefix(':'))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    let tool = if family == "v4" {
        format!("iptables-{backend}")
    } else {
        format!("ip6tables-{backend}")
    };
    ns.ok(&[&tool, "-A", "INPUT", "-j", chain]);
    ns.ok(&[&tool, "-I", chain, "1", "-j", "ACCEPT"]);
    let fix = apply("repair");
    assert_eq!(fix.changes.len(), 2, "{:?}", fix.changes);
    let repaired = ns.ok(&[&save, "-t", "filter"]);
    assert_eq!(lines_of(&repaired, chain), lines_of(rendered, chain));
    assert_eq!(
        lines_of(&repaired, "LIBVIRT_INP"),
        lines_of(&before, "LIBVIRT_INP")
    );
    assert_eq!(apply("after repair").restore, None);
}

#[test]
fn iptables_plan_touches_only_netc_chains() {
    if !available(
        "iptables plan",
        &["iptables-nft-restore", "ip6tables-nft-restore"],
    ) {
        return;
    }
    let backends: Vec<&str> = ["nft", "legacy"]
        .into_iter()
        .filter(|b| which(&format!("iptables-{b}-restore")).is_some())
        .collect();
    for path in [root().join("topology/csc.csn"), fixture("ok/lab.csn")] {
        let topo = compile(&path).topology.unwrap();
        let tree = render::tree(&topo, Target::Iptables);
        let host = &topo.hosts[0].name;
        for backend in &backends {
            for (family, file) in [("v4", "netc.v4"), ("v6", "netc.v6")] {
                let rendered = &tree[&std::path::Path::new(host).join("etc/iptables").join(file)];
                check(backend, family, rendered);
            }
        }
    }
}
