//! Crash safety. apply is killed at every point that matters — strace delivers SIGKILL on
//! entering the Nth `sendto` (every netlink request), `renameat`, `write` or `clone3` of
//! netc's own thread, for every N until an apply runs to its end — then recovered, by
//! `netc rollback` (even N) or `netc apply` (odd N). After each recovery the host is exactly
//! one of the two states (the one before, the one the topology wants), the journal is gone,
//! and no temporary file is left. Also: `--confirm` is armed before the first change, and
//! SIGHUP, SIGINT and SIGTERM during apply undo what it did.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Output;

use crate::apply::{Host, ready, wait_for};
use crate::netns::available;
use crate::support::*;

/// The change killed and recovered: a new VLAN and bridge (a link netc creates and marks),
/// an address changed under a default route, a new allowed source (a chain rewrite), files.
fn topologies(h: &Host) {
    let v1 = fs::read_to_string(h.dir.path().join("topology.csn")).unwrap();
    fs::write(h.dir.path().join("v1.csn"), &v1).unwrap();
    let br600 = "    bridge br600 vlan 600 on eno1 {\n        address 203.0.113.23\n    }\n";
    let br134 = "        address 198.51.100.23                # illustrative\n    }\n";
    let v2 = v1
        .replacen(
            "vlan 134 \"",
            "vlan 600 \"backup\" {\n    prefix 203.0.113.0/24\n}\n\nvlan 134 \"",
            1,
        )
        .replacen(br134, &format!("{br134}{br600}"), 1)
        .replacen("address 198.51.100.23", "address 198.51.100.24", 1)
        .replacen("allow vlan 529", "allow vlan 529\n    allow 203.0.113.9", 1);
    assert_ne!(v1, v2);
    fs::write(h.dir.path().join("v2.csn"), v2).unwrap();
}

/// A large policy killed and recovered: v1 matches 40 IPv4 and 40 IPv6 sources with two
/// ipsets; v2 has another source in each (two swaps) and a plain allowed source (both chains
/// rewritten). (Both keep both sets: a set netc's rules stop matching stays in the kernel by
/// design, so a v2 without it would not return to v1's state.)
fn ipset_topologies(h: &Host) {
    let base = fs::read_to_string(h.dir.path().join("topology.csn")).unwrap();
    let many: String = (1..=40)
        .map(|i| format!("    allow 198.18.0.{i}\n    allow 2001:db8:5:{i:x}::/64\n"))
        .collect();
    let with = |sources: &str| {
        base.replacen(
            "    allow vlan 529\n",
            &format!("    allow vlan 529\n{sources}"),
            1,
        )
    };
    let other = many
        .replace("198.18.0.40\n", "198.18.1.40\n")
        .replace("2001:db8:5:28::/64", "2001:db8:6:28::/64");
    let v2 = with(&format!("{other}    allow 203.0.113.9\n"));
    fs::write(h.dir.path().join("v1.csn"), with(&many)).unwrap();
    fs::write(h.dir.path().join("v2.csn"), v2).unwrap();
}

fn topology(h: &Host, version: &str) {
    fs::copy(
        h.dir.path().join(format!("{version}.csn")),
        h.dir.path().join("topology.csn"),
    )
    .unwrap();
}

/// The host as netc manages it: links (kind, master, mark, up), addresses, routes, netc's
/// firewall and files — without what changes by itself (link-local addresses, counters,
/// MAC addresses) and without backups. (eno1.600 stands in for the VLAN port netc would
/// create and delete; a veth it cannot delete, it stays up once up.)
fn state(h: &Host) -> String {
    let mut out = String::new();
    let links: serde_json::Value =
        serde_json::from_str(&h.ns.ok(&["ip", "-j", "-d", "link"])).unwrap();
    for l in links.as_array().unwrap() {
        let stand_in = l["ifname"] == "eno1.600";
        let up = !stand_in && l["flags"].as_array().unwrap().iter().any(|f| f == "UP");
        out += &format!(
            "link {} {} master={} alias={} up={up}\n",
            l["ifname"], l["linkinfo"]["info_kind"], l["master"], l["ifalias"]
        );
    }
    for line in h.ns.ok(&["ip", "-o", "addr"]).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words[3].starts_with("fe80") {
            out += &format!("addr {} {}\n", words[1], words[3]);
        }
    }
    for args in [
        &["ip", "route"][..],
        &["ip", "-6", "route"],
        &["iptables-save", "-t", "filter"],
        &["ip6tables-save", "-t", "filter"],
    ] {
        // (The kernel's own fe80::/64 routes come and go with carrier.)
        let own = |l: &&str| !l.starts_with('#') && !l.starts_with("fe80::/64");
        for line in h.ns.ok(args).lines().filter(own) {
            let line = line.split(" [").next().unwrap();
            out += &format!("{line}\n");
        }
    }
    // netc's ipsets, without the hash seed a new set draws (a swap brings another).
    let mut sets: Vec<String> =
        h.ns.run(&["ipset", "save"])
            .stdout
            .split(|&b| b == b'\n')
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .filter(|l| !l.is_empty())
            .map(|l| l.split(" initval ").next().unwrap().to_string())
            .collect();
    sets.sort();
    for line in sets {
        out += &format!("{line}\n");
    }
    for (rel, bytes) in read_tree(&h.root().join("etc")) {
        if !rel.contains(".netc-") {
            out += &format!("file {rel}\n{}\n", String::from_utf8_lossy(&bytes));
        }
    }
    out
}

/// The lines two states do not share.
fn diff(want: &str, got: &str) -> String {
    let only = |a: &str, b: &str| -> Vec<String> {
        a.lines()
            .filter(|l| !b.lines().any(|m| m == *l))
            .map(String::from)
            .collect()
    };
    format!(
        "missing: {:?}\nunexpected: {:?}",
        only(want, got),
        only(got, want)
    )
}

/// Temporary files anywhere under `dir`.
fn temps(dir: &Path) -> Vec<String> {
    read_tree(dir)
        .into_iter()
        .map(|(rel, _)| rel)
        .filter(|rel| rel.contains(".netc-tmp-"))
        .collect()
}

/// `netc apply` under strace, killed on entering the `n`th `syscall`.
fn apply_killed(h: &Host, syscall: &str, n: usize, signal: &str, extra: &[&str]) -> Output {
    let root = h.root();
    let mut args = vec![
        "apply",
        "topology.csn",
        "--host",
        "chamomile",
        "--force-host",
        "--root",
        root.to_str().unwrap(),
    ];
    args.extend(extra);
    killed(h, &args, syscall, n, signal)
}

/// `netc ARGS` under strace, which delivers `signal` on entering the `n`th `syscall`.
fn killed(h: &Host, netc_args: &[&str], syscall: &str, n: usize, signal: &str) -> Output {
    let inject = format!("inject={syscall}:signal={signal}:when={n}");
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", &h.ns.name])
        .args(["strace", "-o", "/dev/null", "-e", &inject])
        .arg(env!("CARGO_BIN_EXE_netc"))
        .args(netc_args)
        .current_dir(h.dir.path())
        .env("NO_COLOR", "1")
        .env_remove("SSH_CONNECTION");
    c.output().unwrap()
}

/// Which netlink request of an apply of the current topology is its first change (1-based,
/// as [`killed`] counts the main thread's `sendto`s): found by tracing the apply for real,
/// under `--confirm`, then rolling it back.
fn first_change(h: &Host) -> usize {
    let out = h.dir.path().join("strace.out");
    let root = h.root();
    let o = std::process::Command::new("ip")
        .args(["netns", "exec", &h.ns.name])
        .args(["strace", "-o", out.to_str().unwrap(), "-e", "trace=sendto"])
        .arg(env!("CARGO_BIN_EXE_netc"))
        .args([
            "apply",
            "topology.csn",
            "--host",
            "chamomile",
            "--force-host",
        ])
        .args(["--confirm", "600", "--root"])
        .arg(&root)
        .current_dir(h.dir.path())
        .env_remove("SSH_CONNECTION")
        .output()
        .unwrap();
    assert_exit(&o, 0, "");
    assert_exit(
        &h.state_cmd("rollback", &[]),
        0,
        "as it was before the apply",
    );
    let calls = fs::read_to_string(&out).unwrap();
    let sends: Vec<&str> = calls.lines().filter(|l| l.starts_with("sendto")).collect();
    let change = |l: &&str| l.contains("nlmsg_type=RTM_NEW") || l.contains("nlmsg_type=RTM_DEL");
    1 + sends
        .iter()
        .position(change)
        .expect("the apply changes the kernel")
}

/// chamomile with a stand-in for br600's VLAN port, marked as netc's as the VLAN link netc
/// would create is: dropping br600 then removes it (and leaves the veth).
fn host(tag: &str) -> Host {
    host_with(tag, topologies)
}

fn host_with(tag: &str, versions: fn(&Host)) -> Host {
    let h = Host::new(tag);
    h.ns.ok(&[
        "ip", "link", "add", "eno1.600", "type", "veth", "peer", "name", "x9",
    ]);
    h.ns.ok(&["ip", "link", "set", "eno1.600", "alias", "netc"]);
    versions(&h);
    h
}

fn kill_everywhere(syscall: &str) {
    if !ready() || !available("apply crash", &["strace"]) {
        return;
    }
    kill_everywhere_in(syscall, host(&format!("k{syscall}")));
}

/// Kills apply of `h`'s v1 → v2 and back at every `syscall`, recovering each time.
fn kill_everywhere_in(syscall: &str, h: Host) {
    topology(&h, "v1");
    h.apply_ok(&[]);
    let a = state(&h);
    topology(&h, "v2");
    h.apply_ok(&[]);
    let b = state(&h);
    assert!(a != b);
    topology(&h, "v1");
    h.apply_ok(&[]);
    assert!(state(&h) == a, "v2 → v1 converges to the first state");
    let mut at_v1 = true;
    let mut interrupted = 0;
    for n in 1.. {
        let (to, before, after) = if at_v1 {
            ("v2", &a, &b)
        } else {
            ("v1", &b, &a)
        };
        topology(&h, to);
        let o = apply_killed(&h, syscall, n, "KILL", &[]);
        if o.status.signal() != Some(9) {
            // No nth call: the apply ran to its end.
            assert_exit(&o, 0, "applied");
            assert!(state(&h) == *after, "{syscall} #{n}: ran to its end");
            assert!(n > 3, "{syscall}: only {n} calls");
            eprintln!(
                "{syscall}: killed at {} points, {interrupted} of them with a journal",
                n - 1
            );
            break;
        }
        let journal = h.journal().exists();
        interrupted += usize::from(journal);
        let what = format!(
            "{syscall} #{n} ({} → {to})",
            if at_v1 { "v1" } else { "v2" }
        );
        if n % 2 == 0 {
            let o = h.state_cmd("rollback", &[]);
            if journal {
                assert_exit(&o, 0, "was interrupted");
                assert!(stderr(&o).contains("as it was before the apply"), "{what}");
            } else {
                assert_exit(&o, 1, "nothing to roll back");
            }
            let now = state(&h);
            assert!(
                now == *before,
                "{what}: rolled back\n{}",
                diff(before, &now)
            );
        } else {
            let o = h.netc("apply", &[]);
            assert_exit(&o, 0, if journal { "was interrupted" } else { "" });
            let now = state(&h);
            assert!(now == *after, "{what}: went forward\n{}", diff(after, &now));
            at_v1 = !at_v1;
        }
        assert!(!h.journal().exists(), "{what}: the journal is gone");
        assert_eq!(temps(&h.root()), Vec::<String>::new(), "{what}");
    }
    assert!(
        interrupted > 0,
        "{syscall}: no kill came while a journal existed"
    );
}

#[test]
fn apply_killed_at_every_netlink_request_recovers_to_one_state() {
    kill_everywhere("sendto");
}

/// The same with ipsets: their requests go in one datagram after the one that clears a
/// leftover temporary set (a kill on entering either leaves
/// the sets as they were), and the journal's undo swaps or destroys what a kill left.
#[test]
fn apply_with_ipsets_killed_at_every_netlink_request_recovers_to_one_state() {
    if !ready() || !available("apply crash", &["strace", "ipset"]) {
        return;
    }
    kill_everywhere_in("sendto", host_with("kipset", ipset_topologies));
}

#[test]
fn apply_killed_at_every_rename_recovers_to_one_state() {
    kill_everywhere("renameat");
}

#[test]
fn apply_killed_at_every_write_recovers_to_one_state() {
    kill_everywhere("write");
}

#[test]
fn apply_killed_at_every_process_start_recovers_to_one_state() {
    kill_everywhere("clone3");
}

/// Finding 3: a crash between creating a link and marking it does not lose it: the journal
/// names the link, and recovery marks it, so a later topology without it removes it.
#[test]
fn a_link_created_but_not_marked_stays_netcs() {
    if !ready() || !available("apply crash", &["strace"]) {
        return;
    }
    let h = host("mark");
    topology(&h, "v1");
    h.apply_ok(&[]);
    topology(&h, "v2");
    // Find the kill that leaves br600 made but without its mark.
    let mut found = false;
    for n in 5..60 {
        apply_killed(&h, "sendto", n, "KILL", &[]);
        let link = h.ns.run(&["ip", "-d", "link", "show", "br600"]);
        let unmarked = link.status.success() && !stdout(&link).contains("alias netc");
        if unmarked {
            found = true;
            // The topology without br600: the apply that goes forward removes it, as netc's.
            topology(&h, "v1");
            let o = h.netc("apply", &[]);
            assert_exit(
                &o,
                0,
                "marked br600 as netc's: the interrupted apply created it",
            );
            assert!(
                stdout(&o).contains("- link br600 (bridge)"),
                "{}",
                stdout(&o)
            );
            assert!(!h.ns.run(&["ip", "link", "show", "br600"]).status.success());
            assert_eq!(h.netc("plan", &[]).status.code(), Some(0));
            break;
        }
        let o = h.state_cmd("rollback", &[]);
        assert!(o.status.code().is_some(), "{}", stderr(&o));
    }
    assert!(found, "no kill left br600 unmarked");
}

/// Finding 1: with --confirm the journal and the timer come before the first change, so a
/// session killed mid-apply is still undone at the deadline.
#[test]
fn confirm_is_armed_before_the_first_change() {
    if !ready() || !available("apply crash", &["strace", "flock"]) {
        return;
    }
    let h = host("armed");
    topology(&h, "v1");
    h.apply_ok(&[]);
    let a = state(&h);
    topology(&h, "v2");
    // A few netlink requests past the first change: well inside the network steps.
    let n = first_change(&h) + 3;
    let o = apply_killed(&h, "sendto", n, "KILL", &["--confirm", "3"]);
    assert_eq!(o.status.signal(), Some(9), "{}", stderr(&o));
    assert!(state(&h) != a, "killed after a change");
    assert!(h.journal().exists());
    let timer = h.root().join("var/lib/netc/timer.lock");
    let probe = std::process::Command::new("flock")
        .args(["-n", timer.to_str().unwrap(), "true"])
        .status()
        .unwrap();
    assert!(!probe.success(), "the timer holds its lock: it lives");
    let o = h.netc("plan", &[]);
    assert!(stderr(&o).contains("was interrupted"), "{}", stderr(&o));
    wait_for(|| !h.journal().exists(), "the timer's rollback");
    assert!(state(&h) == a, "undone at the deadline");
    let log = fs::read_to_string(h.root().join("var/lib/netc/rollback.log")).unwrap();
    assert!(log.contains("as it was before the apply"), "{log}");
}

/// Finding 1: SIGHUP (the SSH session dropping), SIGINT (Ctrl-C) and SIGTERM during apply
/// stop it between steps and undo what it did.
#[test]
fn a_signal_during_apply_undoes_what_it_did() {
    if !ready() || !available("apply crash", &["strace"]) {
        return;
    }
    let h = host("signal");
    topology(&h, "v1");
    h.apply_ok(&[]);
    let a = state(&h);
    topology(&h, "v2");
    let n = first_change(&h) + 3;
    for signal in ["HUP", "INT", "TERM"] {
        let o = apply_killed(&h, "sendto", n, signal, &[]);
        assert_exit(&o, 1, "asked netc to stop");
        assert!(
            stderr(&o).contains("the host is as it was before the apply"),
            "{signal}: {}",
            stderr(&o)
        );
        assert!(
            stderr(&o).contains("  undone: "),
            "{signal}: something was done"
        );
        assert!(state(&h) == a, "{signal}");
        assert!(!h.journal().exists());
    }
}

/// A rollback killed at any netlink request is finished by the next one: the journal keeps
/// what it has undone.
#[test]
fn rollback_killed_anywhere_is_finished_by_the_next() {
    if !ready() || !available("apply crash", &["strace"]) {
        return;
    }
    let h = host("rbkill");
    topology(&h, "v1");
    h.apply_ok(&[]);
    let a = state(&h);
    topology(&h, "v2");
    let root = h.root();
    let rollback = ["rollback", "--root", root.to_str().unwrap()];
    for n in 1.. {
        h.apply_ok(&["--confirm", "600"]);
        let o = killed(&h, &rollback, "sendto", n, "KILL");
        if o.status.signal() != Some(9) {
            assert_exit(&o, 0, "as it was before the apply");
            assert!(state(&h) == a);
            assert!(n > 10, "only {n} requests");
            eprintln!("rollback: killed at {} points", n - 1);
            break;
        }
        let o = h.state_cmd("rollback", &[]);
        assert_exit(&o, 0, "as it was before the apply");
        let now = state(&h);
        assert!(now == a, "sendto #{n}:\n{}", diff(&a, &now));
    }
}
