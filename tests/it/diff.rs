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
            "    allow vlan 529\n",
            "    allow 172.19.168.16/28\n    allow fd74:6b6a:8eca:4902:8000::/65\n    allow 172.19.168.0/28\n    allow fd74:6b6a:8eca:4902::/65\n",
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
                "    allow vlan 529\n",
                "    allow vlan 529\n    allow 203.0.113.0/24\n",
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
            .any(|a| a["ports"] == serde_json::json!([22]) && a["family"] == "IPv6"),
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
