//! The command line: exit codes, `build --check`, atomic output, I/O errors.

use std::fs;

use crate::support::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn committed_out_is_up_to_date() {
    let o = netc(&["build", "topology/csc.csn", "--check"], &root());
    assert!(
        o.status.success(),
        "out/ is stale; run `netc build topology/csc.csn`:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn check_reports_ok_and_warnings_with_exit_0() {
    let o = netc(&["check", "topology/csc.csn"], &root());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("netc::guest-bridge-name-too-long"), "{err}");
    assert!(
        err.contains("topology/csc.csn: ok (0 errors, 1 warning)"),
        "{err}"
    );
}

#[test]
fn check_with_errors_exits_1_and_names_every_error() {
    let o = netc(&["check", "tests/fixtures/many-errors.csn"], &root());
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for code in [
        "netc::unknown-vlan",
        "netc::unknown-nic",
        "netc::duplicate-address",
        "netc::port-range",
    ] {
        assert!(err.contains(code), "{code} missing in:\n{err}");
    }
    assert!(err.contains("4 errors"), "{err}");
}

#[test]
fn build_then_check_then_stale() {
    let dir = tmp();
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    let o = netc(&["build", "topology/csc.csn", "-o", out_s], &root());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        read_tree(&out),
        read_tree(&root().join("out")),
        "build output equals the committed out/"
    );

    let o = netc(
        &["build", "topology/csc.csn", "-o", out_s, "--check"],
        &root(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    fs::write(out.join("ginkgo/etc/iptables/netc.v4"), "edited by hand\n").unwrap();
    fs::remove_file(out.join("biloba/etc/network/interfaces")).unwrap();
    fs::write(out.join("stray"), "x").unwrap();
    let before = read_tree(&out);
    let o = netc(
        &["build", "topology/csc.csn", "-o", out_s, "--check"],
        &root(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        "missing  biloba/etc/network/interfaces\nchanged  ginkgo/etc/iptables/netc.v4\nextra    stray\n"
    );
    assert_eq!(read_tree(&out), before, "--check writes nothing");

    // A real build replaces the tree as a whole: the stray file goes too.
    let o = netc(&["build", "topology/csc.csn", "-o", out_s], &root());
    assert!(o.status.success());
    assert_eq!(read_tree(&out), read_tree(&root().join("out")));
}

#[test]
fn build_refuses_to_replace_a_directory_it_did_not_write() {
    let dir = tmp();
    let precious = dir.path().join("etc");
    fs::create_dir(&precious).unwrap();
    fs::write(precious.join("passwd"), "root:x:0:0\n").unwrap();
    let o = netc(
        &[
            "build",
            "topology/csc.csn",
            "-o",
            precious.to_str().unwrap(),
        ],
        &root(),
    );
    assert_exit(&o, 2, "refusing to replace");
    assert_eq!(
        read_tree(&precious),
        vec![("passwd".to_string(), b"root:x:0:0\n".to_vec())]
    );
}

#[test]
fn io_errors_exit_2_with_a_message() {
    let dir = tmp();
    let o = netc(&["check", "no/such/file.csn"], &root());
    assert_exit(&o, 2, "cannot read no/such/file.csn");

    let o = netc(&["build", "topology"], &root());
    assert_exit(&o, 2, "cannot read topology");

    // Output below a regular file: the directory cannot be created.
    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    let target = file.join("out");
    let o = netc(
        &["build", "topology/csc.csn", "-o", target.to_str().unwrap()],
        &root(),
    );
    assert_exit(&o, 2, "netc: cannot inspect");
}

#[test]
fn bad_command_line_exits_1() {
    let o = netc(&["frobnicate"], &root());
    assert_eq!(o.status.code(), Some(1));
    let o = netc(&["build"], &root());
    assert_exit(&o, 1, "<FILE>");
    let o = netc(&["--help"], &root());
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("Examples:"));
}

fn query(host: &str, from: &str, port: &str) -> std::process::Output {
    let args = [
        "query",
        "topology/csc.csn",
        "--host",
        host,
        "--from",
        from,
        "--port",
        port,
    ];
    netc(&args, &root())
}

/// Exit status 0 accept, 3 reject (the one table in src/cli/exit.rs), and the deciding line.
#[test]
fn query_names_the_deciding_line_and_exits_by_verdict() {
    let o = query("biloba", "198.51.100.7", "16509");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    insta::assert_snapshot!("query-reject", stdout(&o));
    let o = query("biloba", "fd74:6b6a:8eca:4902::99", "16509");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    insta::assert_snapshot!("query-accept", stdout(&o));
}

#[test]
fn query_mistakes_exit_1_and_say_why() {
    let o = query("bilobo", "::1", "1");
    assert_exit(&o, 1, "did you mean `biloba`?");
    // Another case is the closest name, however long.
    let o = query("CHAMOMILE", "::1", "1");
    assert_exit(&o, 1, "did you mean `chamomile`?");
    // No close name: the hosts are listed, and no line ends in a space.
    let o = query("riboflavin", "::1", "1");
    assert_exit(
        &o,
        1,
        "there is no host `riboflavin` in topology/csc.csn; its hosts: `biloba`, `ginkgo`, `chamomile`\n",
    );
    assert!(!stderr(&o).contains(" \n"), "{}", stderr(&o));
    // Ports are 1–65535, as in the language.
    for port in ["0", "65536", "-1", "x"] {
        let o = query("biloba", "::1", port);
        assert_exit(&o, 1, "--port");
    }
    let o = query("biloba", "::1", "65535");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let o = netc(&["completions", "bash"], &root());
    assert!(o.status.success());
    let script = stdout(&o);
    assert!(
        script.contains("query") && script.contains("--check"),
        "{script}"
    );
    let check = std::process::Command::new("bash")
        .args(["-n", "-c", &script])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let o = netc(&["man"], &root());
    assert!(o.status.success());
    assert!(stdout(&o).contains(".TH netc 1"), "{}", stdout(&o));
}

#[test]
fn every_spelling_of_the_topology_path_builds_the_same_files() {
    let dir = tmp();
    let topology = root().join("topology/csc.csn");
    for (i, (spelling, cwd)) in [
        ("./topology/csc.csn", root()),
        (topology.to_str().unwrap(), dir.path().to_path_buf()),
        ("../topology/csc.csn", root().join("src")),
    ]
    .into_iter()
    .enumerate()
    {
        let out = dir.path().join(format!("out{i}"));
        let o = netc(&["build", spelling, "-o", out.to_str().unwrap()], &cwd);
        assert!(o.status.success(), "{spelling}: {}", stderr(&o));
        assert_eq!(
            read_tree(&out),
            read_tree(&root().join("out")),
            "{spelling} builds the committed out/"
        );
    }
}
