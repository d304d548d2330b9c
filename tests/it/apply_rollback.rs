//! `netc rollback` is a careful apply, not a replay: what changed during a `--confirm`
//! window is left as it is and listed (a VM port and an address on netc's new bridge, hand
//! edits of files); the journal is data that is vetted before anything runs from it;
//! symlinks stay symlinks; backups keep the files' modes and a rejected config never becomes
//! one; a damaged journal has a way out; a dead timer is said to be dead.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::apply::{Host, ready, wait_for};
use crate::support::*;

const BR600: &str = "    bridge br600 vlan 600 on eno1 {\n        address 203.0.113.23\n    }\n";
const BR134_END: &str = "        address 198.51.100.23                # illustrative\n    }\n";

/// A new VLAN and bridge for chamomile.
fn add_br600(h: &Host) {
    h.edit_topology(&[
        (
            "vlan 134 \"",
            "vlan 600 \"backup\" {\n    prefix 203.0.113.0/24\n}\n\nvlan 134 \"",
        ),
        (BR134_END, &format!("{BR134_END}{BR600}")),
    ]);
}

fn host(tag: &str) -> Host {
    let h = Host::new(tag);
    h.ns.ok(&[
        "ip", "link", "add", "eno1.600", "type", "veth", "peer", "name", "x9",
    ]);
    h
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Finding 4a: a VM port and an address added to netc's new bridge during the window.
#[test]
fn rollback_keeps_a_bridge_that_now_carries_a_vm() {
    if !ready() {
        return;
    }
    let h = host("rbvm");
    h.apply_ok(&[]);
    add_br600(&h);
    h.apply_ok(&["--confirm", "600"]);
    h.ns.ok(&[
        "ip", "link", "add", "vnet5", "type", "veth", "peer", "name", "vnet5p",
    ]);
    h.ns.ok(&["ip", "link", "set", "vnet5", "master", "br600"]);
    h.ns.ok(&["ip", "addr", "add", "203.0.113.77/24", "dev", "br600"]);
    let o = h.state_cmd("rollback", &[]);
    assert_exit(
        &o,
        1,
        "NOT undone: kept br600: it carries port vnet5, address 203.0.113.77/24",
    );
    assert!(
        stderr(&o).contains("the host is NOT as it was"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("as it was before the apply"),
        "{}",
        stderr(&o)
    );
    let br600 = h.ns.ok(&["ip", "-d", "link", "show", "master", "br600"]);
    assert!(
        br600.contains("vnet5") && br600.contains("eno1.600"),
        "{br600}"
    );
    assert!(
        h.ns.ok(&["ip", "addr", "show", "br600"])
            .contains("203.0.113.77/24")
    );
    // Files and the rest did go back.
    assert!(
        !fs::read_to_string(h.root().join("etc/network/interfaces"))
            .unwrap()
            .contains("br600")
    );
    assert!(!h.journal().exists());
}

/// Attack: during the window the new address and default route are put back by someone
/// else (as `ifup` does: without netc's protocol 78). They are theirs now: the rollback
/// leaves them, lists them and brings the old address back beside them.
#[test]
fn rollback_leaves_an_address_and_route_put_back_without_netcs_mark() {
    if !ready() {
        return;
    }
    let h = host("rbproto");
    h.apply_ok(&[]);
    h.edit_topology(&[("address 198.51.100.23", "address 198.51.100.24")]);
    h.apply_ok(&["--confirm", "600"]);
    for args in [
        &["ip", "addr", "del", "198.51.100.24/24", "dev", "br134"][..],
        &["ip", "addr", "add", "198.51.100.24/24", "dev", "br134"],
        &[
            "ip",
            "route",
            "replace",
            "default",
            "via",
            "198.51.100.1",
            "dev",
            "br134",
        ],
    ] {
        h.ns.ok(args);
    }
    let o = h.state_cmd("rollback", &[]);
    assert_exit(&o, 1, "the host is NOT as it was");
    for left in [
        "NOT undone: left `+ address 198.51.100.24/24 on br134`",
        "NOT undone: left `+ default route via 198.51.100.1 dev br134`",
    ] {
        assert!(stderr(&o).contains(left), "{left}: {}", stderr(&o));
    }
    let addrs = h.ns.ok(&["ip", "-4", "-o", "addr", "show", "br134"]);
    assert!(
        addrs.contains("198.51.100.24/24") && addrs.contains("198.51.100.23/24"),
        "{addrs}"
    );
    let routes = h.ns.ok(&["ip", "route", "show", "default"]);
    assert!(routes.contains("via 198.51.100.1 dev br134"), "{routes}");
    assert!(!h.journal().exists());
}

/// Finding 4b: hand edits of agent.properties and interfaces during the window stay; netc's
/// previous version goes beside them; a file nobody touched goes back.
#[test]
fn rollback_keeps_hand_edits_and_leaves_netcs_version_beside_them() {
    if !ready() {
        return;
    }
    let h = host("rbedit");
    let agent = h.root().join("etc/cloudstack/agent/agent.properties");
    fs::create_dir_all(agent.parent().unwrap()).unwrap();
    fs::write(&agent, "guid=1234\nzone=1\n").unwrap();
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o600)).unwrap();
    h.apply_ok(&[]);
    let etc = |rel: &str| h.root().join("etc").join(rel);
    let before: Vec<String> = [
        "network/interfaces",
        "cloudstack/agent/agent.properties",
        "keepalived/keepalived.conf",
    ]
    .iter()
    .map(|f| fs::read_to_string(etc(f)).unwrap())
    .collect();
    // chamomile's management address is in agent.properties (host=) and keepalived.conf.
    h.edit_topology(&[("address 172.19.168.23", "address 172.19.168.24")]);
    h.apply_ok(&["--confirm", "600"]);
    let mut text = fs::read_to_string(&agent).unwrap();
    text += "keystore.passphrase=s3cret\n";
    fs::write(&agent, &text).unwrap();
    let mut interfaces = fs::read_to_string(etc("network/interfaces")).unwrap();
    interfaces += "# hand edit\n";
    fs::write(etc("network/interfaces"), &interfaces).unwrap();

    let o = h.state_cmd("rollback", &[]);
    assert_exit(&o, 1, "edited since netc wrote it; the hand edit stays");
    assert_eq!(fs::read_to_string(&agent).unwrap(), text);
    assert_eq!(
        fs::read_to_string(etc("network/interfaces")).unwrap(),
        interfaces
    );
    let beside = |f: &str| fs::read_to_string(etc(&format!("{f}.netc-rollback"))).unwrap();
    assert_eq!(beside("network/interfaces"), before[0]);
    assert_eq!(beside("cloudstack/agent/agent.properties"), before[1]);
    assert_eq!(
        mode(&etc("cloudstack/agent/agent.properties.netc-rollback")),
        0o600
    );
    assert_eq!(
        fs::read_to_string(etc("keepalived/keepalived.conf")).unwrap(),
        before[2]
    );
    assert!(
        h.ns.ok(&["ip", "-br", "addr", "show", "br529"])
            .contains("172.19.168.23/27")
    );
}

/// Recomputes each record's checksum after an edit, as someone who knows the format would.
fn reseal(journal: &str) -> String {
    let mut last = 0;
    journal
        .lines()
        .map(|l| {
            let json = &l[9..];
            last = netc::live::journal::checksum(last, json.as_bytes());
            format!("{last:08x} {json}\n")
        })
        .collect()
}

/// Finding 4c: a journal is data; one edited to name CloudStack's bridge or a path outside
/// the root is refused, sealed or not, and nothing runs.
#[test]
fn a_hand_edited_journal_is_refused_before_anything_runs() {
    if !ready() {
        return;
    }
    let h = host("rbvet");
    h.ns.ok(&["ip", "link", "add", "cloudVirBr529", "type", "bridge"]);
    h.apply_ok(&[]);
    add_br600(&h);
    h.apply_ok(&["--confirm", "600"]);
    let kernel = h.kernel();
    let journal = fs::read_to_string(h.journal()).unwrap();
    let root = h.root();
    let cases = [
        (
            journal.replace("\"br600\"", "\"cloudVirBr529\""),
            false,
            "does not match its checksum",
        ),
        (
            reseal(&journal.replace("\"br600\"", "\"cloudVirBr529\"")),
            true,
            "cloudVirBr529 is libvirt's or CloudStack's",
        ),
        (
            reseal(&journal.replace(
                &format!("{}/etc/network/interfaces", root.display()),
                "/etc/netc-test-outside",
            )),
            true,
            "is not where netc keeps its",
        ),
    ];
    for (text, sealed, why) in cases {
        fs::write(h.journal(), &text).unwrap();
        let o = h.state_cmd("rollback", &[]);
        assert_exit(&o, 1, why);
        if sealed {
            assert!(
                stderr(&o).contains("refusing to run the journal"),
                "{}",
                stderr(&o)
            );
        }
        let o = h.netc("apply", &[]);
        assert_exit(&o, 1, "");
        assert_eq!(h.kernel(), kernel, "nothing ran");
        assert!(!Path::new("/etc/netc-test-outside").exists());
    }
    // The way out: confirm keeps the host as it is.
    let o = h.state_cmd("confirm", &[]);
    assert_exit(&o, 0, "");
    h.apply_ok(&[]);
}

/// Finding 4d: a symlinked file stays a symlink through apply and rollback.
#[test]
fn symlinks_stay_symlinks() {
    if !ready() {
        return;
    }
    let h = host("rblink");
    let dir = h.root().join("etc/network");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("interfaces.site"), "# the site's\n").unwrap();
    std::os::unix::fs::symlink("interfaces.site", dir.join("interfaces")).unwrap();
    h.apply_ok(&[]);
    let is_link = || {
        fs::symlink_metadata(dir.join("interfaces"))
            .unwrap()
            .file_type()
            .is_symlink()
    };
    assert!(is_link());
    let applied = fs::read_to_string(dir.join("interfaces.site")).unwrap();
    assert!(applied.starts_with("# generated by netc"), "{applied}");
    add_br600(&h);
    h.apply_ok(&["--confirm", "600"]);
    assert!(is_link());
    let o = h.state_cmd("rollback", &[]);
    assert_exit(&o, 0, "as it was before the apply");
    assert!(is_link());
    assert_eq!(
        fs::read_to_string(dir.join("interfaces.site")).unwrap(),
        applied
    );
}

/// Attack: under `--root`, symlinks are the chroot's. An absolute one (as a chroot's
/// `/etc/keepalived/keepalived.conf -> /etc/keepalived/site.conf` is) leads to the file under
/// the root, a relative one climbs no higher than the root, and a folder that is a symlink
/// too: apply, plan and rollback never read or write the machine's own files beyond it.
#[test]
fn symlinks_under_another_root_stay_inside_it() {
    if !ready() {
        return;
    }
    let h = host("rbchroot");
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("site.conf");
    fs::write(&victim, "the machine's own\n").unwrap();
    let etc = h.root().join("etc");
    fs::create_dir_all(etc.join("keepalived")).unwrap();
    fs::create_dir_all(etc.join("network")).unwrap();
    // keepalived.conf -> <outside>/site.conf, as the chroot sees it: <root><outside>/site.conf.
    std::os::unix::fs::symlink(&victim, etc.join("keepalived/keepalived.conf")).unwrap();
    let inside = h.root().join(victim.strip_prefix("/").unwrap());
    fs::create_dir_all(inside.parent().unwrap()).unwrap();
    fs::write(&inside, "the chroot's own\n").unwrap();
    // interfaces -> ../../../../interfaces.real: `..` stops at the root.
    std::os::unix::fs::symlink(
        "../../../../interfaces.real",
        etc.join("network/interfaces"),
    )
    .unwrap();
    // etc/iptables -> /iptables (a folder).
    std::os::unix::fs::symlink("/iptables", etc.join("iptables")).unwrap();
    fs::create_dir_all(h.root().join("iptables")).unwrap();

    h.apply_ok(&["--confirm", "600"]);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "the machine's own\n");
    let generated = |p: &Path| {
        fs::read_to_string(p)
            .unwrap()
            .starts_with("# generated by netc")
    };
    assert!(generated(&inside));
    assert!(generated(&h.root().join("interfaces.real")));
    assert!(generated(&h.root().join("iptables/netc.v4")));
    let siblings: Vec<_> = fs::read_dir(outside.path()).unwrap().collect();
    assert_eq!(siblings.len(), 1, "no backup beside the machine's file");
    assert_eq!(h.netc("plan", &[]).status.code(), Some(0));
    let o = h.state_cmd("rollback", &[]);
    assert_exit(&o, 0, "as it was before the apply");
    assert_eq!(fs::read_to_string(&inside).unwrap(), "the chroot's own\n");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "the machine's own\n");
    assert!(!h.root().join("iptables/netc.v4").exists());
}

/// Finding 10: backups and state keep the originals' modes, and a rollback does not turn the
/// rejected config into the backup.
#[test]
fn backups_keep_modes_and_a_rollback_keeps_the_good_backup() {
    if !ready() {
        return;
    }
    let h = host("rbbak");
    let agent = h.root().join("etc/cloudstack/agent/agent.properties");
    fs::create_dir_all(agent.parent().unwrap()).unwrap();
    fs::write(&agent, "guid=1234\nkeystore.passphrase=s3cret\n").unwrap();
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o600)).unwrap();
    h.apply_ok(&[]);
    let backups = |name: &str| -> Vec<String> {
        let mut b: Vec<String> = fs::read_dir(agent.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("{name}.netc-old.")))
            .collect();
        b.sort();
        b
    };
    let first = backups("agent.properties");
    assert_eq!(first.len(), 1);
    let backup = agent.with_file_name(&first[0]);
    assert_eq!(mode(&backup), 0o600, "the backup of a 0600 file is 0600");
    assert_eq!(
        fs::read_to_string(&backup).unwrap(),
        "guid=1234\nkeystore.passphrase=s3cret\n"
    );
    h.edit_topology(&[("address 172.19.168.23", "address 172.19.168.24")]);
    h.apply_ok(&["--confirm", "600"]);
    let state = h.root().join("var/lib/netc");
    assert_eq!(mode(&state), 0o700);
    assert_eq!(
        mode(&h.journal()),
        0o600,
        "the journal holds the files' text"
    );
    assert_eq!(backups("agent.properties").len(), 2);
    let good = backups("agent.properties");
    assert_exit(
        &h.state_cmd("rollback", &[]),
        0,
        "as it was before the apply",
    );
    assert_eq!(
        backups("agent.properties"),
        good,
        "the rejected config is no backup"
    );
    assert_eq!(mode(&agent), 0o600);
}

/// Finding 12: a truncated journal says what to do, and `netc confirm` is the way out.
#[test]
fn a_truncated_journal_has_a_way_out() {
    if !ready() {
        return;
    }
    let h = host("rbtrunc");
    h.apply_ok(&[]);
    add_br600(&h);
    h.apply_ok(&["--confirm", "600"]);
    let text = fs::read(h.journal()).unwrap();
    fs::write(h.journal(), &text[..20]).unwrap();
    for o in [h.netc("apply", &[]), h.state_cmd("rollback", &[])] {
        assert_exit(
            &o,
            1,
            "is damaged (it ends before its header); netc will not act on it",
        );
        assert!(
            stderr(&o).contains("`netc confirm` to set the journal aside"),
            "{}",
            stderr(&o)
        );
    }
    let o = h.state_cmd("confirm", &[]);
    assert_exit(&o, 0, "set it aside as ");
    h.apply_ok(&[]);
}

/// Finding 12: when the timer is gone, the refusal says so instead of promising an undo, and
/// the deadline is local time.
#[test]
fn a_dead_timer_is_said_to_be_dead() {
    if !ready() {
        return;
    }
    let h = host("rbtimer");
    h.apply_ok(&[]);
    add_br600(&h);
    h.apply_ok(&["--confirm", "2"]);
    // Kill the timer: the `netc rollback --at-deadline` for this root.
    let root = h.root().to_string_lossy().into_owned();
    for entry in fs::read_dir("/proc").unwrap() {
        let path = entry.unwrap().path();
        let Ok(cmdline) = fs::read(path.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("--at-deadline") && cmdline.contains(&root) {
            let pid: i32 = path.file_name().unwrap().to_str().unwrap().parse().unwrap();
            let pid = rustix::process::Pid::from_raw(pid).unwrap();
            rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        }
    }
    wait_for(
        || {
            let o = h.netc("apply", &[]);
            stderr(&o).contains(" ago")
        },
        "the deadline to pass",
    );
    let o = h.netc("apply", &[]);
    assert_exit(&o, 1, "but its timer is not running");
    assert!(
        stderr(&o).contains("nothing undoes it by itself"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("1970"), "{}", stderr(&o));
    assert!(h.journal().exists(), "nothing undid it");
    assert_exit(
        &h.state_cmd("rollback", &[]),
        0,
        "as it was before the apply",
    );
}

/// The root given relative (and with a trailing slash) names the same journal as the
/// absolute one: a rollback from another directory finds and runs it.
#[test]
fn another_spelling_of_the_root_finds_the_same_journal() {
    if !ready() {
        return;
    }
    let h = host("rbpath");
    h.apply_ok(&[]);
    let kernel = h.kernel();
    add_br600(&h);
    let o = h
        .command(&[
            "apply",
            "topology.csn",
            "--host",
            "chamomile",
            "--force-host",
            "--root",
            "./root/",
            "--confirm",
            "600",
        ])
        .output()
        .unwrap();
    assert_exit(&o, 0, "run `netc confirm` within 600 s");
    let root = h.root();
    let o = h
        .command(&["rollback", "--root", root.to_str().unwrap()])
        .current_dir("/")
        .output()
        .unwrap();
    assert_exit(&o, 0, "as it was before the apply");
    assert_eq!(h.kernel(), kernel);
}

/// Finding 10: on a full disk the backup is not left empty (nor the file half-written): the
/// write fails before anything is renamed, and apply undoes what it did.
#[test]
fn a_full_disk_leaves_no_empty_backup() {
    if !ready() || !crate::netns::available("full disk", &["unshare", "md5sum"]) {
        return;
    }
    let h = host("rbfull");
    let root = h.root();
    let dir = root.join("etc/cloudstack/agent");
    let script = format!(
        "{scripts}set -e; cd {topo}; d={dir}; mkdir -p $d; mount -t tmpfs -o size=64k tmpfs $d; \
         yes '# a comment the agent keeps' | head -c 40000 > $d/agent.properties; \
         before=$(md5sum < $d/agent.properties); \
         set +e; {netc} apply topology.csn --host chamomile --force-host --root {root}; \
         echo \"rc=$?\"; \
         [ \"$(md5sum < $d/agent.properties)\" = \"$before\" ] && echo unchanged; \
         ls -a $d",
        dir = dir.display(),
        root = root.display(),
        netc = env!("CARGO_BIN_EXE_netc"),
        topo = h.dir.path().display(),
        scripts = h.scripts(),
    );
    let kernel = h.kernel();
    let o = h.ns.run(&["unshare", "-m", "sh", "-c", &script]);
    let out = stdout(&o);
    assert!(
        stderr(&o).contains("No space left on device"),
        "{}",
        stderr(&o)
    );
    assert!(out.contains("rc=1\nunchanged\n"), "{out}");
    let names: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "unchanged")
        .skip(1)
        .collect();
    assert_eq!(
        names,
        [".", "..", "agent.properties"],
        "no backup, no temporary file"
    );
    assert_eq!(h.kernel(), kernel, "undone");
}

/// A link someone deleted during the window is reported, not "undone" into an error or
/// passed over as if nothing happened.
#[test]
fn a_link_deleted_during_the_window_is_reported() {
    if !ready() {
        return;
    }
    let h = host("rbgone");
    h.apply_ok(&[]);
    add_br600(&h);
    h.apply_ok(&["--confirm", "600"]);
    h.ns.ok(&["ip", "link", "del", "eno1.600"]);
    let o = h.state_cmd("rollback", &[]);
    assert_exit(
        &o,
        1,
        "NOT undone: left `~ eno1.600: down → up`: eno1.600 is gone",
    );
    assert!(!stderr(&o).contains("undo FAILED"), "{}", stderr(&o));
    assert!(!h.ns.run(&["ip", "link", "show", "br600"]).status.success());
}

/// A sealed journal that names a bridge netc did not make (no mark) as one it made: the
/// rollback leaves that bridge.
#[test]
fn a_journal_cannot_make_netc_delete_an_unmarked_link() {
    if !ready() {
        return;
    }
    let h = host("rbmark");
    h.ns.ok(&["ip", "link", "add", "brhost", "type", "bridge"]);
    h.apply_ok(&[]);
    add_br600(&h);
    h.apply_ok(&["--confirm", "600"]);
    h.ns.ok(&["ip", "link", "set", "eno1.600", "nomaster"]);
    h.ns.ok(&["ip", "link", "set", "eno1.600", "master", "brhost"]);
    let journal = fs::read_to_string(h.journal()).unwrap();
    fs::write(
        h.journal(),
        reseal(&journal.replace("\"br600\"", "\"brhost\"")),
    )
    .unwrap();
    let o = h.state_cmd("rollback", &[]);
    assert_exit(&o, 1, "brhost does not carry netc's mark");
    assert!(h.ns.run(&["ip", "link", "show", "brhost"]).status.success());
}

/// An apply an older netc left waiting (its pending.json) is not run over.
#[test]
fn an_older_netcs_pending_apply_is_respected() {
    if !ready() {
        return;
    }
    let h = host("rblegacy");
    let state = h.root().join("var/lib/netc");
    fs::create_dir_all(&state).unwrap();
    fs::write(state.join("pending.json"), "{}").unwrap();
    let kernel = h.kernel();
    let o = h.netc("apply", &[]);
    assert_exit(&o, 1, "an older netc left");
    assert_eq!(h.kernel(), kernel);
    fs::remove_file(state.join("pending.json")).unwrap();
    h.apply_ok(&[]);
}
