//! Properties of generated valid topologies (fuzz/src/shapes.rs, the structure-aware fuzz
//! target's generator, fed deterministic pseudo-random bytes): every one checks without
//! errors, every rendered file is accepted by the tool that reads it (iptables-restore and
//! ip6tables-restore --test, nft -c, ifquery), and `netc fmt` round-trips — idempotent,
//! with the same diagnostics and the same rendered files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use arbitrary::Unstructured;
use netc::config::Target;

use crate::netns::{Netns, available};

/// The fuzz targets' shared code: shapes (the generator) and properties (the invariants).
#[path = "../../fuzz/src/lib.rs"]
mod fuzz;

use fuzz::{properties, shapes};

/// The `n`th generated topology: `mistakes` as the fuzz target has them, or none.
pub fn generated(n: u64, mistakes: bool) -> String {
    let mut state = 0x2545_f491_4f6c_dd1d ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    shapes::topology(&mut Unstructured::new(&bytes), mistakes).expect("enough bytes")
}

const CASES: u64 = 60;

fn valid_trees() -> Vec<(String, BTreeMap<PathBuf, String>)> {
    (0..CASES)
        .map(|n| {
            let text = generated(n, false);
            let c = netc::compile("gen.csn", text.as_bytes());
            let Some(topo) = &c.topology else {
                let diags = crate::support::render_diags(&c);
                panic!("generated topology {n} has errors:\n{diags}\n{text}");
            };
            (text, netc::render::tree(topo, Target::Both))
        })
        .collect()
}

#[test]
fn generated_topologies_are_valid_and_fmt_round_trips() {
    let mut shapes = std::collections::BTreeSet::new();
    for (n, (text, tree)) in valid_trees().into_iter().enumerate() {
        let once = netc::syntax::layout::format(&text).unwrap();
        assert_eq!(
            netc::syntax::layout::format(&once).unwrap(),
            once,
            "{n}: fmt twice"
        );
        let again = netc::compile("gen.csn", once.as_bytes());
        let topo = again.topology.expect("formatted still valid");
        assert_eq!(
            netc::render::tree(&topo, Target::Both),
            tree,
            "{n}: fmt changed the output"
        );
        shapes.insert((topo.hosts.len(), topo.vips.len(), topo.policies.len()));
    }
    // The generator covers the language, not one shape: hosts, VIPs and firewalls vary.
    assert!(shapes.len() >= 10, "{shapes:?}");
}

/// With mistakes, most inputs still parse and many have one error only: the fuzzer's time
/// goes to the checker. Every input keeps the fuzz target's invariants.
#[test]
fn generated_mistakes_reach_the_checker() {
    let (mut parsed, mut valid) = (0, 0);
    for n in 0..CASES * 4 {
        let text = generated(n, true);
        let c = netc::compile("gen.csn", text.as_bytes());
        parsed += usize::from(!c.diags.iter().any(|d| d.code == netc::diag::Code::Syntax));
        valid += usize::from(c.topology.is_some());
        properties(text.as_bytes());
    }
    let total = (CASES * 4) as usize;
    assert!(parsed * 10 > total * 7, "{parsed} of {total} parse");
    assert!(
        valid * 10 < total * 9 && valid * 10 > total,
        "{valid} of {total} valid"
    );
}

#[test]
fn every_generated_file_is_accepted_by_its_tool() {
    let tools = [
        "iptables-restore",
        "ip6tables-restore",
        "nft",
        "ifquery",
        "ipset",
    ];
    if !available("generated files through their tools", &tools) {
        return;
    }
    let ns = Netns::new("prop");
    let dir = tempfile::tempdir().unwrap();
    let mut checked = BTreeMap::<String, usize>::new();
    for (n, (_, tree)) in valid_trees().into_iter().enumerate() {
        for (path, text) in &tree {
            let name = path.file_name().unwrap().to_str().unwrap();
            let args: &[&str] = match name {
                // Sets first (the path sorts before the rules that name them), as the boot
                // unit loads them; the rules files hold netc's chains only.
                "ipsets" => &["ipset", "-exist", "restore"],
                "netc.v4" => &["iptables-restore", "--test", "--noflush"],
                "netc.v6" => &["ip6tables-restore", "--test", "--noflush"],
                "netc.nft" => &["nft", "-c", "-f", "-"],
                "interfaces" => {
                    let file = dir.path().join("interfaces");
                    std::fs::write(&file, text).unwrap();
                    let o = std::process::Command::new("ifquery")
                        .args(["-i", file.to_str().unwrap(), "--list"])
                        .output()
                        .unwrap();
                    assert!(
                        o.status.success(),
                        "{n} {}: {}",
                        path.display(),
                        String::from_utf8_lossy(&o.stderr)
                    );
                    *checked.entry(name.to_string()).or_default() += 1;
                    continue;
                }
                _ => continue,
            };
            let o = ns.run_stdin(args, text);
            assert!(
                o.status.success(),
                "{n} {}: {args:?}: {}\n{text}",
                path.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            *checked.entry(name.to_string()).or_default() += 1;
        }
    }
    assert!(
        ["interfaces", "netc.nft", "netc.v4", "netc.v6"]
            .iter()
            .all(|name| checked.get(*name).is_some_and(|&n| n >= CASES as usize)),
        "{checked:?}"
    );
}
