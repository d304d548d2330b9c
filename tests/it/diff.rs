//! `netc diff`: pairs of topologies with known semantic changes, and pairs with none.

use std::fs;
use std::path::Path;

use crate::support::*;

/// csc.csn with `edits` applied (each must match once).
fn variant(dir: &Path, name: &str, edits: &[(&str, &str)]) -> String {
    let mut text = fs::read_to_string(root().join("topology/csc.csn")).unwrap();
    for (old, new) in edits {
        assert_eq!(text.matches(old).count(), 1, "{old}");
        text = text.replacen(old, new, 1);
    }
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn reordering_and_splitting_prefixes_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let split = variant(
        dir.path(),
        "split.csn",
        &[(
            "(ephemeral-port)\n    allow vlan 529\n",
            "(ephemeral-port)\n    allow 172.19.168.16/28\n    allow fd74:6b6a:8eca:4902:8000::/65\n    allow 172.19.168.0/28\n    allow fd74:6b6a:8eca:4902::/65\n",
        )],
    );
    let o = netc(&["diff", "topology/csc.csn", &split], &root());
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "no semantic change\n");
    let o = netc(
        &[
            "diff",
            "topology/csc.csn",
            "topology/csc.csn",
            "--format",
            "markdown",
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "**netc diff:** no semantic change.\n");
}

#[test]
fn changes_are_reported_per_host_with_losses_first() {
    let dir = tempfile::tempdir().unwrap();
    let changed = variant(
        dir.path(),
        "changed.csn",
        &[
            (
                "(ephemeral-port)\n    allow vlan 529\n",
                "(ephemeral-port)\n    allow vlan 529\n    allow 203.0.113.0/24\n",
            ),
            ("address 172.19.168.23 ", "address 172.19.168.13 "),
            (
                "    ports tcp 16509, 16514, 45335, 41047, 8250",
                "    ports tcp 16509, 16514, 45335, 41047, 8250, 22",
            ),
            ("        address 198.51.100.22  # illustrative\n", ""),
            (
                "    nic eno2  # illustrative\n    bridge br529 vlan 529 on eno1 {\n        address fd74:6b6a:8eca:4902::21",
                "    nic eno2\n    nic eno3\n    bridge br529 vlan 529 on eno1 {\n        address fd74:6b6a:8eca:4902::21",
            ),
            (
                "member chamomile priority 100",
                "member chamomile priority 200",
            ),
        ],
    );
    let o = netc(
        &["diff", "topology/csc.csn", &changed, "--format", "markdown"],
        &root(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    insta::assert_snapshot!("diff-markdown", stdout(&o));
    let o = netc(&["diff", "topology/csc.csn", &changed], &root());
    insta::assert_snapshot!("diff-text", stdout(&o));
    let o = netc(
        &["diff", "topology/csc.csn", &changed, "--format", "json"],
        &root(),
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let hosts = json["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 3);
    // Port 22 is now protected: every source outside the management VLAN loses it.
    let biloba = &hosts.iter().find(|h| h["host"] == "biloba").unwrap();
    let lost = biloba["access_lost"].as_array().unwrap();
    assert!(
        lost.iter()
            .any(|a| a["ports"] == serde_json::json!(["22"]) && a["family"] == "IPv6"),
        "{lost:?}"
    );
}

#[test]
fn git_revision_is_the_old_side() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    git(&["init", "-q"]);
    fs::copy(root().join("topology/csc.csn"), dir.path().join("csc.csn")).unwrap();
    git(&["add", "csc.csn"]);
    git(&["commit", "-q", "-m", "site"]);
    let o = netc(&["diff", "--git", "HEAD", "csc.csn"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = fs::read_to_string(dir.path().join("csc.csn")).unwrap();
    fs::write(
        dir.path().join("csc.csn"),
        text.replace("router-id 51", "router-id 52"),
    )
    .unwrap();
    let o = netc(&["diff", "--git", "HEAD", "csc.csn"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("router id 51") && stdout(&o).contains("router id 52"),
        "{}",
        stdout(&o)
    );
    let o = netc(&["diff", "--git", "NOSUCHREV", "csc.csn"], dir.path());
    assert_eq!(o.status.code(), Some(1));
}

/// 2 means "changes" for diff, so an unreadable file must be 1.
#[test]
fn diff_errors_are_1_not_2() {
    let o = netc(&["diff", "topology/csc.csn", "no/such.csn"], &root());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = netc(
        &["diff", "topology/csc.csn", "tests/fixtures/err/syntax.csn"],
        &root(),
    );
    assert_eq!(o.status.code(), Some(1));
}

/// The example: two address lines swapped in a bridge and in the VIP render the same
/// files, so diff says nothing.
#[test]
fn swapped_address_lines_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let swapped = variant(
        dir.path(),
        "swapped.csn",
        &[
            (
                "        address fd74:6b6a:8eca:4902::21  # illustrative\n        address 172.19.168.21            # illustrative\n",
                "        address 172.19.168.21            # illustrative\n        address fd74:6b6a:8eca:4902::21  # illustrative\n",
            ),
            (
                "    address 172.19.168.20            # illustrative\n    address fd74:6b6a:8eca:4902::20  # illustrative\n",
                "    address fd74:6b6a:8eca:4902::20  # illustrative\n    address 172.19.168.20            # illustrative\n",
            ),
        ],
    );
    let o = netc(&["diff", "topology/csc.csn", &swapped], &root());
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "no semantic change\n");
}

/// A small deterministic generator (xorshift64*): the same reorderings on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// A statement with the lines of its block, if it has one (canonical layout: one statement
/// a line, four spaces an indent).
#[derive(Clone)]
struct Unit {
    head: String,
    body: Vec<Unit>,
}

fn units(lines: &[&str], indent: usize) -> Vec<Unit> {
    let pad = " ".repeat(indent);
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.trim().is_empty() || !line.starts_with(&pad) {
            continue;
        }
        if line.ends_with('{') {
            let close = format!("{pad}}}");
            let end = i + lines[i..].iter().position(|l| *l == close).unwrap();
            out.push(Unit {
                head: line.to_string(),
                body: units(&lines[i..end], indent + 4),
            });
            i = end + 1;
        } else {
            out.push(Unit {
                head: line.to_string(),
                body: Vec::new(),
            });
        }
    }
    out
}

fn write(units: &[Unit], indent: usize, out: &mut String) {
    for u in units {
        *out += &u.head;
        *out += "\n";
        if u.head.ends_with('{') {
            write(&u.body, indent + 4, out);
            *out += &format!("{}}}\n", " ".repeat(indent));
        }
    }
}

/// Swaps two statements of one randomly chosen block (or two blocks of the file).
fn swap_somewhere(units: &mut [Unit], rng: &mut Rng) {
    let blocks: Vec<usize> = (0..units.len())
        .filter(|i| !units[*i].body.is_empty())
        .collect();
    // Half the time here; otherwise one level down, if there is a block.
    if blocks.is_empty() || rng.below(2) == 0 {
        if units.len() >= 2 {
            let (a, b) = (rng.below(units.len()), rng.below(units.len()));
            units.swap(a, b);
        }
        return;
    }
    let i = blocks[rng.below(blocks.len())];
    swap_somewhere(&mut units[i].body, rng);
}

/// The property: two topologies that render byte-identical trees have an empty diff. Over
/// reorderings of the statements of every valid fixture, csc.csn and the example site.
#[test]
fn identical_renders_have_an_empty_diff() {
    use netc::config::Target;
    let paths = valid_topologies();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut same, mut tried) = (0, 0);
    for path in paths {
        let text = fs::read_to_string(&path).unwrap();
        let canonical = netc::syntax::layout::format(&text).unwrap();
        // Comments are not statements: drop them (and trailing ones).
        let plain: String = canonical
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| l.split("  #").next().unwrap().trim_end().to_string() + "\n")
            .collect();
        let lines: Vec<&str> = plain.lines().collect();
        let original = netc::compile("t.csn", plain.as_bytes());
        let old = original.topology.expect("valid");
        let old_tree = netc::render::tree(&old, Target::Both);
        for _ in 0..60 {
            let mut u = units(&lines, 0);
            for _ in 0..1 + rng.below(3) {
                swap_somewhere(&mut u, &mut rng);
            }
            let mut text = String::new();
            write(&u, 0, &mut text);
            let Some(new) = netc::compile("t.csn", text.as_bytes()).topology else {
                continue; // e.g. a VIP member moved before its host: not our concern here
            };
            tried += 1;
            if netc::render::tree(&new, Target::Both) != old_tree {
                continue;
            }
            same += 1;
            let d = netc::review::diff::diff(&old, &new);
            assert!(
                d.is_empty(),
                "{}: identical output, but diff says:\n{}\n--- reordered:\n{text}",
                path.display(),
                netc::review::diff::text(&d)
            );
        }
    }
    eprintln!("{tried} reorderings, {same} with identical output, each with an empty diff");
    assert!(same >= 50, "only {same} reorderings rendered the same");
}
