//! `netc apply` on a live host: a network namespace per test, veths as the host's NICs, a
//! scratch directory as its `/`. This kernel has no 802.1Q, so the VLAN subinterfaces are
//! veths made beforehand (apply uses a link it finds under the right name, and says so);
//! the VM test creates real VLANs with apply.
//!
//! The judges are the kernel (`ip -j`), `iptables-save`, the files, and `ip monitor` /
//! `nft monitor` for "changed nothing".

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::netns::{Netns, available};
use crate::support::*;

const TOOLS: &[&str] = &[
    "iptables-save",
    "ip6tables-save",
    "iptables-restore",
    "ip6tables-restore",
    "nft",
];

/// chamomile of the real topology, in a namespace.
pub(crate) struct Host {
    pub(crate) ns: Netns,
    pub(crate) dir: tempfile::TempDir,
}

impl Host {
    /// chamomile's NICs and VLAN ports as veths (peers `x0`, `x1`, …), and the topology.
    pub(crate) fn new(tag: &str) -> Host {
        let ns = Netns::new(tag);
        for (i, name) in ["eno1", "eno2", "eno1.529", "eno2.425", "eno2.134"]
            .iter()
            .enumerate()
        {
            ns.ok(&[
                "ip",
                "link",
                "add",
                name,
                "type",
                "veth",
                "peer",
                "name",
                &format!("x{i}"),
            ]);
        }
        let dir = tempfile::tempdir().unwrap();
        fs::copy(
            root().join("topology/csc.csn"),
            dir.path().join("topology.csn"),
        )
        .unwrap();
        Host { ns, dir }
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub(crate) fn edit_topology(&self, edits: &[(&str, &str)]) {
        let path = self.dir.path().join("topology.csn");
        let mut text = fs::read_to_string(&path).unwrap();
        for (old, new) in edits {
            assert!(text.contains(old), "the topology has no `{old}`");
            text = text.replacen(old, new, 1);
        }
        fs::write(path, text).unwrap();
    }

    /// netc in the host's namespace, in a private mount namespace where the VIP's check
    /// script exists (keepalived -t refuses a config whose script is missing).
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        let shell = format!("{}exec \"$0\" \"$@\"", self.scripts());
        c.args([
            "netns",
            "exec",
            &self.ns.name,
            "unshare",
            "-m",
            "sh",
            "-c",
            &shell,
        ])
        .arg(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(self.dir.path())
        .env("NO_COLOR", "1")
        .env_remove("SSH_CONNECTION");
        c
    }

    /// The shell commands that provide chamomile's check scripts (see [`Host::command`]).
    pub(crate) fn scripts(&self) -> String {
        let topo = compile(&self.dir.path().join("topology.csn"))
            .topology
            .expect("valid");
        let scratch = self.dir.path().join("scripts");
        crate::tools::provide_scripts(&topo, "chamomile", &scratch, "exit 0")
    }

    /// `netc <verb> topology.csn --host chamomile --root ROOT [extra]`.
    pub(crate) fn netc(&self, verb: &str, extra: &[&str]) -> Output {
        self.netc_command(verb, extra).output().unwrap()
    }

    /// The command [`Host::netc`] runs, for a test to add to (its environment).
    pub(crate) fn netc_command(&self, verb: &str, extra: &[&str]) -> Command {
        let root = self.root();
        let mut args = vec![
            verb,
            "topology.csn",
            "--host",
            "chamomile",
            "--root",
            root.to_str().unwrap(),
        ];
        if verb == "apply" {
            args.push("--force-host");
        }
        args.extend(extra);
        self.command(&args)
    }

    /// `netc <verb> --root ROOT [extra]` (confirm, rollback).
    pub(crate) fn state_cmd(&self, verb: &str, extra: &[&str]) -> Output {
        let root = self.root();
        let mut args = vec![verb, "--root", root.to_str().unwrap()];
        args.extend(extra);
        self.command(&args).output().unwrap()
    }

    pub(crate) fn apply_ok(&self, extra: &[&str]) -> String {
        let o = self.netc("apply", extra);
        assert_exit(&o, 0, "");
        stdout(&o)
    }

    /// The kernel's view, without what changes by itself (counters, timers, carrier).
    pub(crate) fn kernel(&self) -> String {
        self.ns.kernel()
    }

    /// `ip monitor` and `nft monitor` in the namespace, until [`Monitor::stop`].
    pub(crate) fn monitor(&self) -> Monitor {
        let spawn = |args: &[&str]| {
            Command::new("ip")
                .args(["netns", "exec", &self.ns.name])
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let m = Monitor {
            children: vec![
                spawn(&["ip", "monitor", "link", "address", "route"]),
                spawn(&["nft", "monitor"]),
            ],
        };
        std::thread::sleep(Duration::from_millis(300));
        m
    }

    pub(crate) fn journal(&self) -> PathBuf {
        self.root().join("var/lib/netc/journal")
    }

    /// Whether an apply waits for `netc confirm` (its journal has the `applied` mark).
    pub(crate) fn waiting(&self) -> bool {
        fs::read_to_string(self.journal()).is_ok_and(|j| j.contains("{\"applied\""))
    }
}

pub(crate) struct Monitor {
    children: Vec<Child>,
}

impl Monitor {
    /// Everything the monitors saw, less what the kernel does by itself: a link that came
    /// up in the apply before gets its IPv6 link-local address when its carrier settles,
    /// which can fall into this window.
    pub(crate) fn stop(self) -> String {
        std::thread::sleep(Duration::from_millis(300));
        let mut seen = String::new();
        for mut c in self.children {
            c.kill().unwrap();
            seen += &String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout);
        }
        let mut kept = Vec::new();
        let mut skip_next = false;
        for line in seen.lines() {
            if std::mem::take(&mut skip_next) && line.trim_start().starts_with("valid_lft") {
                continue;
            }
            if line.contains(" inet6 fe80::") && line.contains("scope link") {
                skip_next = true;
                continue;
            }
            // ... and the local route the kernel adds with it.
            if line.starts_with("local fe80::") && line.contains("table local proto kernel") {
                continue;
            }
            kept.push(line);
        }
        kept.join("\n")
    }
}

/// PATH with `dir` first: its programs stand in for the real ones.
fn path_first(dir: &Path) -> String {
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap())
}

pub(crate) fn ready() -> bool {
    available("netc apply", TOOLS)
}

/// (path, bytes, inode, mtime) of every file under `root`.
pub(crate) fn files(root: &Path) -> Vec<(String, Vec<u8>, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    read_tree(root)
        .into_iter()
        .map(|(rel, bytes)| {
            let m = fs::metadata(root.join(&rel)).unwrap();
            (
                rel,
                bytes,
                m.ino(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000,
            )
        })
        .collect()
}

#[test]
fn apply_builds_the_host_keeps_foreign_objects_and_then_changes_nothing() {
    if !ready() {
        return;
    }
    let h = Host::new("apply");
    // What libvirt, CloudStack and the agent have on a real host.
    let ns = &h.ns;
    ns.ok(&["ip", "link", "add", "cloudVirBr529", "type", "bridge"]);
    ns.ok(&["ip", "link", "add", "breno1-529", "type", "bridge"]);
    ns.ok(&[
        "ip", "link", "add", "vnet0", "type", "veth", "peer", "name", "vnet0p",
    ]);
    ns.ok(&["ip", "link", "set", "vnet0", "master", "cloudVirBr529"]);
    ns.ok(&["ip", "addr", "add", "10.1.1.1/24", "dev", "breno1-529"]);
    ns.run_stdin(
        &["iptables-restore", "--noflush"],
        "*filter\n:LIBVIRT_INP - [0:0]\n-A INPUT -j LIBVIRT_INP\n-A LIBVIRT_INP -i virbr0 -p udp -m udp --dport 53 -j ACCEPT\nCOMMIT\n",
    );
    // netc's old complete table for netfilter-persistent (it goes), and the site's own
    // IPv6 rules (they stay).
    let rules = h.root().join("etc/iptables");
    fs::create_dir_all(&rules).unwrap();
    let old_v4 = "# generated by netc from topology.csn; do not edit\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n";
    fs::write(rules.join("rules.v4"), old_v4).unwrap();
    fs::write(
        rules.join("rules.v6"),
        "# the site's own\n*filter\nCOMMIT\n",
    )
    .unwrap();
    let agent = h.root().join("etc/cloudstack/agent/agent.properties");
    fs::create_dir_all(agent.parent().unwrap()).unwrap();
    let agent_before = "#Mon Nov 23 2026\nguid=1234\nzone=1\nhost=172.19.168.23,172.19.168.21@roundrobin\nprivate.network.device=cloudbr0\n";
    fs::write(&agent, agent_before).unwrap();
    let foreign = |h: &Host| {
        let links =
            h.ns.ok(&["ip", "-o", "link", "show", "master", "cloudVirBr529"]);
        let addr = h.ns.ok(&["ip", "-br", "addr", "show", "breno1-529"]);
        let chain = h.ns.ok(&["iptables", "-S", "LIBVIRT_INP"]);
        (links.contains("vnet0"), addr.contains("10.1.1.1/24"), chain)
    };
    let foreign_before = foreign(&h);

    let out = h.apply_ok(&[]);
    assert!(out.contains("+ link br529 (bridge)"), "{out}");

    // The kernel carries chamomile: bridges marked as netc's, ports, addresses, routes.
    let link = |name: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(
            &h.ns.ok(&["ip", "-j", "-d", "link", "show", name]),
        )
        .unwrap()[0]
            .clone()
    };
    for (bridge, port) in [
        ("br529", "eno1.529"),
        ("br425", "eno2.425"),
        ("br134", "eno2.134"),
    ] {
        assert_eq!(link(bridge)["ifalias"], "netc", "{bridge}");
        assert_eq!(link(bridge)["linkinfo"]["info_kind"], "bridge");
        assert_eq!(link(port)["master"], bridge);
        assert!(
            link(port)["flags"].to_string().contains("\"UP\""),
            "{port} up"
        );
    }
    let addrs = h.ns.ok(&["ip", "addr", "show", "br134"]);
    // (iproute2 here does not print an address's protocol; the change test shows netc
    // finds its mark again: it removes the address it added.)
    assert!(addrs.contains("inet 198.51.100.23/24"), "{addrs}");
    let routes = h.ns.ok(&["ip", "route", "show", "default"]);
    assert!(
        routes.contains("default via 198.51.100.1 dev br134 proto 78"),
        "{routes}"
    );
    let routes6 = h.ns.ok(&["ip", "-6", "route", "show", "default"]);
    assert!(
        routes6.contains("default via 2620:101:f000:4901::1 dev br134 proto 78"),
        "{routes6}"
    );
    let save = h.ns.ok(&["iptables-save", "-t", "filter"]);
    assert!(save.contains("-A INPUT -j CLOUDSTACK-SERVICES"), "{save}");
    assert!(h.root().join("etc/network/interfaces").exists());
    assert!(out.contains("    - /etc/iptables/rules.v4\n"), "{out}");
    // No router advertisements on the bridges without an IPv6 gateway; br134 has one.
    for (bridge, want) in [("br529", "0"), ("br425", "0"), ("br134", "1")] {
        for key in ["accept_ra", "autoconf"] {
            let v =
                h.ns.ok(&["sysctl", "-n", &format!("net.ipv6.conf.{bridge}.{key}")]);
            assert_eq!(v.trim(), want, "{bridge} {key}");
        }
    }
    assert!(!rules.join("rules.v4").exists(), "netc's old table stays");
    assert!(rules.join("rules.v6").exists(), "the site's own rules went");
    assert!(rules.join("netc.v4").exists());

    // Nothing foreign moved; the agent's own keys and reordering stayed.
    assert_eq!(foreign(&h), foreign_before);
    let agent_after = fs::read_to_string(&agent).unwrap();
    assert!(agent_after.starts_with("#Mon Nov 23 2026\nguid=1234\nzone=1\nhost=172.19.168.23,172.19.168.21@roundrobin\nprivate.network.device=br529\n"), "{agent_after}");

    // Again: nothing to do, and provably nothing done.
    let kernel = h.kernel();
    let before = files(&h.root());
    let monitor = h.monitor();
    let o = h.netc("apply", &[]);
    let seen = monitor.stop();
    assert!(
        seen.trim().is_empty(),
        "the second apply changed the kernel:\n{seen}"
    );
    assert_exit(&o, 0, "");
    assert!(
        stdout(&o).starts_with("chamomile: no changes\n"),
        "{}",
        stdout(&o)
    );
    assert_eq!(files(&h.root()), before, "the second apply touched files");
    assert_eq!(h.kernel(), kernel);
    let o = h.netc("plan", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn apply_makes_exactly_the_planned_change() {
    if !ready() {
        return;
    }
    let h = Host::new("change");
    h.ns.ok(&[
        "ip", "link", "add", "eno1.600", "type", "veth", "peer", "name", "x9",
    ]);
    h.apply_ok(&[]);
    let br600 = "    bridge br600 vlan 600 on eno1 {\n        address 203.0.113.23\n    }\n";
    let chamomile_br134 = "        address 198.51.100.23                # illustrative\n    }\n";
    h.edit_topology(&[
        // A new VLAN and a bridge on it; a changed address; a new allowed source.
        (
            "vlan 134 \"",
            "vlan 600 \"backup\" {\n    prefix 203.0.113.0/24\n}\n\nvlan 134 \"",
        ),
        (chamomile_br134, &format!("{chamomile_br134}{br600}")),
        ("address 198.51.100.23", "address 198.51.100.24"),
        ("allow vlan 529", "allow vlan 529\n    allow 203.0.113.9"),
    ]);
    let o = h.netc("plan", &[]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    insta::assert_snapshot!("apply_change_plan", stdout(&o));

    h.apply_ok(&[]);
    let addrs = h.ns.ok(&["ip", "-br", "addr"]);
    assert!(
        addrs.contains("203.0.113.23/24") && addrs.contains("198.51.100.24/24"),
        "{addrs}"
    );
    assert!(!addrs.contains("198.51.100.23/24"), "{addrs}");
    let save = h.ns.ok(&["iptables-save", "-t", "filter"]);
    assert!(
        save.contains("-A CLOUDSTACK-SERVICES -s 203.0.113.9/32 -j RETURN"),
        "{save}"
    );
    assert!(
        h.ns.ok(&["ip", "route", "show", "default"])
            .contains("via 198.51.100.1 dev br134")
    );
    let o = h.netc("plan", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    // Dropping the bridge: netc made br600, but not its port (a veth here, where 802.1Q is
    // missing), so it leaves both.
    h.edit_topology(&[(br600, "")]);
    let out = h.apply_ok(&[]);
    assert!(
        out.contains(
            "br600 is no longer in the topology but still carries eno1.600; left in place"
        ),
        "{out}"
    );
}

#[test]
fn a_failing_step_rolls_back_everything_done_before_it() {
    if !ready() {
        return;
    }
    let h = Host::new("fail");
    let kernel = h.kernel();
    // keepalived.conf cannot be installed: a file is where its directory should be. By
    // then the network, the interfaces file and the rules files are done.
    fs::create_dir_all(h.root().join("etc")).unwrap();
    fs::write(h.root().join("etc/keepalived"), "in the way").unwrap();
    let o = h.netc("apply", &[]);
    assert_exit(&o, 1, "apply failed: step ");
    assert!(stderr(&o).contains(": install "), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the host is as it was before the apply"),
        "{}",
        stderr(&o)
    );
    assert!(
        !h.journal().exists(),
        "a failed apply that undid all leaves no journal"
    );
    assert_eq!(h.kernel(), kernel, "the kernel is as it was");
    assert!(!h.root().join("etc/network/interfaces").exists());
    assert!(!h.root().join("etc/iptables/netc.v4").exists());
}

#[test]
fn an_unconfirmed_apply_is_undone_by_the_timer_even_when_the_session_dies() {
    if !ready() {
        return;
    }
    let h = Host::new("confirm");
    h.apply_ok(&[]);
    let kernel = h.kernel();
    let interfaces = fs::read(h.root().join("etc/network/interfaces")).unwrap();
    h.edit_topology(&[("address 198.51.100.23", "address 198.51.100.24")]);

    // The "session": a process group that runs apply and then dies by SIGKILL.
    let root = h.root();
    let netc = env!("CARGO_BIN_EXE_netc");
    let mut session = Command::new("ip");
    session
        .args(["netns", "exec", &h.ns.name, "unshare", "-m", "sh", "-c"])
        .arg(format!(
            "{}{netc} apply topology.csn --host chamomile --force-host --root {} --confirm 2 && sleep 60",
            h.scripts(),
            root.display()
        ))
        .current_dir(h.dir.path())
        .env_remove("SSH_CONNECTION")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut session, 0);
    let mut child = session.spawn().unwrap();
    wait_for(|| h.waiting(), "the pending apply");
    assert!(h.ns.ok(&["ip", "-br", "addr"]).contains("198.51.100.24/24"));
    let group = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process_group(group, rustix::process::Signal::KILL).unwrap();
    child.wait().unwrap();

    wait_for(|| !h.journal().exists(), "the rollback");
    assert_eq!(h.kernel(), kernel, "undone");
    assert_eq!(
        fs::read(h.root().join("etc/network/interfaces")).unwrap(),
        interfaces
    );
    let log = fs::read_to_string(h.root().join("var/lib/netc/rollback.log")).unwrap();
    assert!(
        log.contains("rolled back the apply; the host is as it was before the apply"),
        "{log}"
    );

    // Confirmed in time: it stays, and the timer leaves it.
    let out = h.netc("apply", &["--confirm", "2"]);
    assert_exit(&out, 0, "run `netc confirm` within 2 s");
    let o = h
        .command(&["confirm", "--root", root.to_str().unwrap()])
        .output()
        .unwrap();
    assert_exit(&o, 0, "confirmed");
    std::thread::sleep(Duration::from_secs(4));
    assert!(h.ns.ok(&["ip", "-br", "addr"]).contains("198.51.100.24/24"));
    let o = h
        .command(&["confirm", "--root", root.to_str().unwrap()])
        .output()
        .unwrap();
    assert_exit(&o, 1, "nothing to confirm");
}

#[test]
fn the_lockout_guard_keeps_the_ssh_session_address() {
    if !ready() {
        return;
    }
    let h = Host::new("lockout");
    h.apply_ok(&[]);
    h.edit_topology(&[("address 198.51.100.23", "address 198.51.100.24")]);
    let kernel = h.kernel();
    let o = h
        .netc_command("apply", &[])
        .env("SSH_CONNECTION", "198.51.100.77 50022 198.51.100.23 22")
        .output()
        .unwrap();
    assert_exit(
        &o,
        1,
        "this SSH session (198.51.100.77 → 198.51.100.23) depends on",
    );
    assert_eq!(h.kernel(), kernel, "nothing changed");
    // A session over the other VLAN is not in the way.
    let o = h
        .netc_command("apply", &[])
        .env("SSH_CONNECTION", "172.19.168.7 50022 172.19.168.23 22")
        .output()
        .unwrap();
    assert_exit(&o, 0, "applied");
}

#[test]
fn apply_refuses_the_wrong_host_and_a_missing_nic() {
    if !ready() {
        return;
    }
    let h = Host::new("refuse");
    let root = h.root();
    let o = h
        .command(&[
            "apply",
            "topology.csn",
            "--host",
            "chamomile",
            "--root",
            root.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_exit(
        &o,
        1,
        ", not `chamomile`; apply runs on the host it configures",
    );
    h.ns.ok(&["ip", "link", "del", "eno2"]);
    let kernel = h.kernel();
    let o = h.netc("apply", &[]);
    assert_exit(&o, 1, "refusing to apply");
    assert!(
        stdout(&o).contains("refused: NIC eno2 does not exist on this host"),
        "{}",
        stdout(&o)
    );
    assert_eq!(h.kernel(), kernel);
    assert!(!root.join("etc").exists());
}

pub(crate) fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_nftables_target_loads_one_table_and_notices_hand_edits() {
    if !ready() {
        return;
    }
    let h = Host::new("nft");
    fs::write(
        h.dir.path().join("netc.toml"),
        "[firewall]\ntarget = \"nftables\"\n",
    )
    .unwrap();
    h.ns.ok(&[
        "nft",
        "add table inet other; add chain inet other c { type filter hook input priority 10; }",
    ]);
    // Undone, a first load deletes the table again (and leaves the other table alone).
    h.apply_ok(&["--confirm", "600"]);
    assert!(
        h.ns.ok(&["nft", "list", "tables"])
            .contains("table inet netc")
    );
    let rollback = |h: &Host| {
        let root = h.root();
        assert_exit(
            &h.command(&["rollback", "--root", root.to_str().unwrap()])
                .output()
                .unwrap(),
            0,
            "",
        );
    };
    rollback(&h);
    assert!(
        !h.ns
            .ok(&["nft", "list", "tables"])
            .contains("table inet netc")
    );
    let out = h.apply_ok(&[]);
    assert!(
        out.contains("  firewall\n    ~ create table inet netc\n"),
        "{out}"
    );
    let table = h.ns.ok(&["nft", "list", "table", "inet", "netc"]);
    assert!(table.contains("elements = { 172.19.168.0 }"), "{table}");
    assert!(
        h.ns.ok(&["nft", "list", "tables"])
            .contains("table inet other")
    );
    assert!(!h.ns.ok(&["iptables-save"]).contains("CLOUDSTACK"));

    let monitor = h.monitor();
    let o = h.netc("apply", &[]);
    let seen = monitor.stop();
    assert!(
        seen.trim().is_empty(),
        "the second apply changed the kernel:\n{seen}"
    );
    assert!(
        stdout(&o).starts_with("chamomile: no changes\n"),
        "{}",
        stdout(&o)
    );

    // A hand edit is drift: plan says so, apply puts the table back.
    h.ns.ok(&[
        "nft",
        "add element inet netc CLOUDSTACK-SERVICES_v4_27 { 10.0.0.0 }",
    ]);
    let o = h.netc("plan", &[]);
    assert!(
        stdout(&o).contains("~ reload table inet netc (changed since netc loaded it)"),
        "{}",
        stdout(&o)
    );
    // Undone, a reload puts back the table as it was, hand edit included.
    let edited = h.ns.ok(&["nft", "list", "table", "inet", "netc"]);
    h.apply_ok(&["--confirm", "600"]);
    assert_eq!(h.ns.ok(&["nft", "list", "table", "inet", "netc"]), table);
    rollback(&h);
    assert_eq!(h.ns.ok(&["nft", "list", "table", "inet", "netc"]), edited);
    h.apply_ok(&[]);
    assert_eq!(h.ns.ok(&["nft", "list", "table", "inet", "netc"]), table);
    let o = h.netc("plan", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn validation_runs_the_real_tools_on_the_new_files() {
    if !ready() {
        return;
    }
    use netc::live::exec::validate;
    use netc::live::step::Step;
    use netc::render::ArtefactKind;
    let file = |name: &str, text: &str| {
        let kind = match name {
            "netc.v4" => ArtefactKind::RulesV4,
            "interfaces" => ArtefactKind::Interfaces,
            "ipsets" => ArtefactKind::Ipsets,
            _ => ArtefactKind::Nft,
        };
        let step = Step::File {
            kind,
            path: PathBuf::from("/nowhere").join(name),
            content: Some(text.to_string()),
        };
        (step.clone(), step)
    };
    let ns = Netns::new("validate");
    let good = fs::read_to_string(root().join("out/chamomile/etc/iptables/netc.v4")).unwrap();
    let interfaces =
        fs::read_to_string(root().join("out/chamomile/etc/network/interfaces")).unwrap();
    ns.enter(|| {
        let mut notes = Vec::new();
        let steps = [file("netc.v4", &good), file("interfaces", &interfaces)];
        assert_eq!(validate(&steps, &mut notes), Vec::<String>::new());
        let broken = good.replace("--dports 16509", "--dports 99999");
        let e = validate(&[file("netc.v4", &broken)], &mut notes);
        assert!(
            e[0].starts_with("iptables-restore rejects the new /nowhere/netc.v4"),
            "{e:?}"
        );
        let e = validate(
            &[file("netc.nft", "table inet netc { chain x { bogus } }")],
            &mut notes,
        );
        assert!(e[0].starts_with("nft rejects"), "{e:?}");
        // Rules that match a set are checked with the new sets, in a namespace of their own.
        let sets = "create CS_v4 hash:net family inet\nadd CS_v4 10.0.0.1\n";
        let with_set = good.replace("-j REJECT", "-m set --match-set CS_v4 src -j REJECT");
        assert_eq!(
            validate(
                &[file("ipsets", sets), file("netc.v4", &with_set)],
                &mut notes
            ),
            Vec::<String>::new()
        );
        let e = validate(
            &[
                file("ipsets", &sets.replace("CS_v4", "OTHER")),
                file("netc.v4", &with_set),
            ],
            &mut notes,
        );
        assert!(e[0].starts_with("iptables-restore rejects"), "{e:?}");
        let e = validate(
            &[file(
                "ipsets",
                "create X hash:net family inet\nadd X 10.0.0.300\n",
            )],
            &mut notes,
        );
        assert!(
            e[0].starts_with("ipset rejects the new /nowhere/ipsets"),
            "{e:?}"
        );
    });
}

/// Jumbo frames on VLAN 529 (every host's link under it at 9000) and an untagged bridge on a
/// NIC: a failure mid-apply puts every MTU back and takes the bridge away; the apply that
/// succeeds sets them, turns router advertisements off on the new bridge, and a second one
/// has nothing to do.
#[test]
fn apply_sets_mtus_and_untagged_bridges_and_undoes_them() {
    if !ready() {
        return;
    }
    let h = Host::new("mtu");
    h.ns.ok(&[
        "ip", "link", "add", "eno3", "type", "veth", "peer", "name", "x8",
    ]);
    h.edit_topology(&[
        (
            "    prefix 172.19.168.0/27\n",
            "    prefix 172.19.168.0/27\n    mtu 9000\n",
        ),
        ("    nic eno1  # illustrative", "    nic eno1 mtu 9000"),
        ("    nic enp3s0f0\n", "    nic enp3s0f0 mtu 9000\n"),
        (
            "    nic eno1  # illustrative\n    nic eno2  # illustrative\n",
            "    nic eno1 mtu 9000\n    nic eno2\n    nic eno3\n    bridge cloudbr1 on eno3\n",
        ),
    ]);
    let mtu = |link: &str| -> u64 {
        let j: serde_json::Value =
            serde_json::from_str(&h.ns.ok(&["ip", "-j", "link", "show", link])).unwrap();
        j[0]["mtu"].as_u64().unwrap()
    };
    let kernel = h.kernel();
    fs::create_dir_all(h.root().join("etc")).unwrap();
    fs::write(h.root().join("etc/keepalived"), "in the way").unwrap();
    let o = h.netc("apply", &[]);
    assert_exit(&o, 1, "rolled back the ");
    assert_eq!(h.kernel(), kernel, "the kernel is as it was");
    for link in ["eno1", "eno1.529"] {
        assert_eq!(mtu(link), 1500, "{link} after the rollback");
    }
    fs::remove_file(h.root().join("etc/keepalived")).unwrap();

    let out = h.apply_ok(&[]);
    assert!(out.contains("~ eno1: mtu 1500 → 9000"), "{out}");
    for link in ["eno1", "eno1.529", "br529"] {
        assert_eq!(mtu(link), 9000, "{link}");
    }
    assert_eq!(mtu("eno2.134"), 1500);
    let port = h.ns.ok(&["ip", "-d", "link", "show", "eno3"]);
    assert!(port.contains("master cloudbr1"), "{port}");
    let ra =
        h.ns.ok(&["sysctl", "-n", "net.ipv6.conf.cloudbr1.accept_ra"]);
    assert_eq!(ra.trim(), "0");
    let o = h.netc("apply", &[]);
    assert!(
        stdout(&o).starts_with("chamomile: no changes\n"),
        "{}",
        stdout(&o)
    );
}

/// `netc apply` with an `ipset` first in PATH that logs its arguments, one run a line, and
/// runs the real one: the apply's output and the log.
fn apply_logging_ipset(h: &Host) -> (String, String) {
    let meddler = tempfile::tempdir().unwrap();
    let log = meddler.path().join("runs");
    let real = Command::new("sh")
        .args(["-c", "command -v ipset"])
        .output()
        .unwrap();
    let real = String::from_utf8(real.stdout).unwrap();
    let ipset = meddler.path().join("ipset");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
        log.display(),
        real.trim()
    );
    fs::write(&ipset, script).unwrap();
    fs::set_permissions(&ipset, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = h
        .netc_command("apply", &[])
        .env("PATH", path_first(meddler.path()))
        .output()
        .unwrap();
    assert_exit(&o, 0, "");
    (stdout(&o), fs::read_to_string(&log).unwrap_or_default())
}

/// A large policy (the iptables target): apply creates netc's ipsets before the rules that
/// match them, a second apply has nothing to do, a changed source is swapped into the set
/// without touching the chain, a rollback swaps the old elements back, and a hand edit of a
/// set is drift that apply repairs.
#[test]
fn large_policies_apply_as_ipsets_swapped_on_change() {
    if !ready() || !available("ipset apply", &["ipset", "unshare"]) {
        return;
    }
    let h = Host::new("ipset");
    large_policy(&h);
    // Undone, a first apply takes the rules off the sets before destroying them.
    h.apply_ok(&["--confirm", "600"]);
    assert!(
        h.ns.ok(&["ipset", "list", "-n"])
            .contains("CLOUDSTACK-SERVICES_v4")
    );
    let root = h.root();
    let rollback = || {
        let o = h
            .command(&["rollback", "--root", root.to_str().unwrap()])
            .output()
            .unwrap();
        assert_exit(&o, 0, "");
    };
    rollback();
    assert_eq!(h.ns.ok(&["ipset", "list", "-n"]), "");
    assert!(!h.ns.ok(&["iptables-save"]).contains("CLOUDSTACK"));
    let (out, ipset_runs) = apply_logging_ipset(&h);
    // The sets are loaded over netlink: the program checks the new rules with their sets (in
    // a scratch namespace), and loads nothing.
    assert!(
        ipset_runs.contains("restore") && !ipset_runs.contains("-exist restore"),
        "{ipset_runs}"
    );
    assert!(
        out.contains("    ~ ipset CLOUDSTACK-SERVICES_v4: create (40 prefixes)\n")
            && out.contains("    ~ ipset CLOUDSTACK-SERVICES_v6: create (41 prefixes)\n"),
        "{out}"
    );
    assert!(h.root().join("etc/iptables/ipsets").is_file());
    let sets = || h.ns.ok(&["ipset", "save"]);
    assert!(sets().contains("add CLOUDSTACK-SERVICES_v6 2001:db8:5:28::/64\n"));
    let v4 = h.ns.ok(&["iptables-save", "-t", "filter"]);
    assert!(v4.contains(
        "-A CLOUDSTACK-SERVICES -m set --match-set CLOUDSTACK-SERVICES_v4 src -j RETURN"
    ));
    assert!(
        !v4.contains("198.18.0.1"),
        "the large group is not rules: {v4}"
    );
    let o = h.netc("apply", &[]);
    assert!(
        stdout(&o).starts_with("chamomile: no changes\n"),
        "{}",
        stdout(&o)
    );

    h.edit_topology(&[("    allow 198.18.0.40\n", "    allow 198.18.1.40\n")]);
    // What an apply killed mid-swap leaves behind is cleared first.
    h.ns.ok(&[
        "ipset",
        "create",
        "netc-swap-inet",
        "hash:ip",
        "family",
        "inet6",
    ]);
    let out = h.apply_ok(&["--confirm", "600"]);
    assert!(
        out.contains("    ~ ipset CLOUDSTACK-SERVICES_v4: swap in 40 prefixes (+1 −1)\n")
            && !out.contains("chain"),
        "{out}"
    );
    let now = sets();
    assert!(
        now.contains("198.18.1.40") && !now.contains("198.18.0.40\n"),
        "{now}"
    );
    assert!(!now.contains("netc-swap"), "{now}");
    rollback();
    let back = sets();
    assert!(
        back.contains("198.18.0.40\n") && !back.contains("198.18.1.40"),
        "{back}"
    );

    h.apply_ok(&[]);
    h.ns.ok(&["ipset", "del", "CLOUDSTACK-SERVICES_v4", "198.18.0.7"]);
    let o = h.netc("plan", &[]);
    assert!(
        stdout(&o).contains("~ ipset CLOUDSTACK-SERVICES_v4: swap in 40 prefixes (+1 −0)"),
        "{}",
        stdout(&o)
    );
    h.apply_ok(&[]);
    assert!(sets().contains("add CLOUDSTACK-SERVICES_v4 198.18.0.7\n"));
    let o = h.netc("plan", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // The same prefix as an exclusion: the source is no longer allowed.
    h.ns.ok(&["ipset", "del", "CLOUDSTACK-SERVICES_v4", "198.18.0.7"]);
    h.ns.ok(&[
        "ipset",
        "add",
        "CLOUDSTACK-SERVICES_v4",
        "198.18.0.7",
        "nomatch",
    ]);
    let o = h.netc("plan", &[]);
    assert!(
        stdout(&o).contains("~ ipset CLOUDSTACK-SERVICES_v4: swap in 40 prefixes (+1 −1)"),
        "{}",
        stdout(&o)
    );
    h.apply_ok(&[]);
    assert!(sets().contains("add CLOUDSTACK-SERVICES_v4 198.18.0.7\n"));
}

/// 40 IPv4 hosts and 40 IPv6 /64s more in CLOUDSTACK-SERVICES: a set for each family.
fn large_policy(h: &Host) {
    let many4: String = (1..=40)
        .map(|i| format!("    allow 198.18.0.{i}\n"))
        .collect();
    let many6: String = (1..=40)
        .map(|i| format!("    allow 2001:db8:5:{i:x}::/64\n"))
        .collect();
    h.edit_topology(&[(
        "    allow vlan 529\n",
        &format!("    allow vlan 529\n{many4}{many6}"),
    )]);
}

/// A set under the swap's temporary name that someone else's rule matches cannot be
/// destroyed: apply stops there. The kernel would carry out the requests after a refused
/// one, filling that set and swapping it (with its own element) into netc's.
#[test]
fn a_temporary_set_in_use_stops_the_swap_before_anything_changes() {
    if !ready() || !available("ipset apply", &["ipset", "iptables"]) {
        return;
    }
    let h = Host::new("ipset-busy");
    large_policy(&h);
    h.apply_ok(&[]);
    let options = ["hashsize", "1024", "maxelem", "65536"];
    h.ns.ok(&[
        &[
            "ipset",
            "create",
            "netc-swap-inet",
            "hash:net",
            "family",
            "inet",
        ][..],
        &options,
    ]
    .concat());
    h.ns.ok(&["ipset", "add", "netc-swap-inet", "10.66.66.0/24"]);
    h.ns.ok(&[
        "iptables",
        "-A",
        "FORWARD",
        "-m",
        "set",
        "--match-set",
        "netc-swap-inet",
        "src",
        "-j",
        "ACCEPT",
    ]);
    let before = h.ns.ok(&["ipset", "save"]);
    h.edit_topology(&[("    allow 198.18.0.40\n", "    allow 198.18.1.40\n")]);
    let o = h.netc("apply", &[]);
    assert_exit(&o, 1, "the kernel refused destroying set netc-swap-inet");
    assert!(
        stderr(&o).contains("the host is as it was"),
        "{}",
        stderr(&o)
    );
    let after = h.ns.ok(&["ipset", "save"]);
    let elements = |save: &str| {
        let mut v: Vec<String> = save
            .lines()
            .filter(|l| l.starts_with("add "))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(elements(&after), elements(&before));
    assert!(!h.journal().exists());
}

/// With iptables-nft, apply records the ruleset's generation: a plan while no table has
/// changed since runs no iptables-save (here it would fail), and any change by anyone — a
/// foreign table, a hand edit of netc's chain — makes plan read the tables again, so the
/// edit is seen and apply repairs it.
#[test]
fn plan_reads_iptables_again_once_any_table_changed() {
    if !ready() {
        return;
    }
    let h = Host::new("left");
    h.apply_ok(&[]);
    if !h
        .ns
        .ok(&["iptables-save", "-t", "filter"])
        .contains("(nf_tables)")
    {
        eprintln!("SKIPPED plan_reads_iptables_again_once_any_table_changed: iptables-legacy");
        return;
    }
    assert!(h.root().join("var/lib/netc/iptables-left.json").is_file());
    let broken = tempfile::tempdir().unwrap();
    for tool in ["iptables-save", "ip6tables-save"] {
        let path = broken.path().join(tool);
        fs::write(&path, "#!/bin/sh\necho \"$0 must not run\" >&2\nexit 1\n").unwrap();
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        broken.path().display(),
        std::env::var("PATH").unwrap()
    );
    let plan_without_save = || {
        let root = h.root();
        let args = [
            "plan",
            "topology.csn",
            "--host",
            "chamomile",
            "--root",
            root.to_str().unwrap(),
        ];
        h.command(&args).env("PATH", &path).output().unwrap()
    };
    let o = plan_without_save();
    assert_exit(&o, 0, "");
    assert!(
        stdout(&o).starts_with("chamomile: no changes\n"),
        "{}",
        stdout(&o)
    );

    h.ns.ok(&["nft", "add", "table", "inet", "someone-else"]);
    let o = plan_without_save();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("must not run"),
        "{o:?}"
    );
    let o = h.netc("plan", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    h.ns.ok(&["iptables", "-A", "CLOUDSTACK-SERVICES", "-j", "ACCEPT"]);
    let o = h.netc("plan", &[]);
    assert!(
        stdout(&o).contains("~ IPv4: rewrite chain CLOUDSTACK-SERVICES (3 → 2 rules)"),
        "{}",
        stdout(&o)
    );
    h.apply_ok(&[]);
    assert!(!h.ns.ok(&["iptables-save"]).contains("-j ACCEPT"));
    let o = plan_without_save();
    assert_exit(&o, 0, "");

    // Attack: someone deletes netc's INPUT jump while an apply runs, after it read the
    // tables (here: when it checks the new interfaces file with ifquery). The generation
    // apply would record then already counts that change: nothing is recorded, and the next
    // plan reads the tables and sees the jump gone.
    let meddler = tempfile::tempdir().unwrap();
    let ifquery = meddler.path().join("ifquery");
    let real = crate::netns::which("ifquery").unwrap();
    fs::write(
        &ifquery,
        format!(
            "#!/bin/sh\niptables -w -D INPUT -j CLOUDSTACK-SERVICES 2>/dev/null\nexec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    fs::set_permissions(
        &ifquery,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    h.edit_topology(&[("address 198.51.100.23", "address 198.51.100.24")]);
    let o = h
        .netc_command("apply", &[])
        .env("PATH", path_first(meddler.path()))
        .output()
        .unwrap();
    assert_exit(&o, 0, "applied");
    assert!(
        !h.ns
            .ok(&["iptables-save"])
            .contains("-A INPUT -j CLOUDSTACK-SERVICES")
    );
    let o = h.netc("plan", &[]);
    assert!(
        stdout(&o).contains("~ IPv4: add the INPUT jump to CLOUDSTACK-SERVICES"),
        "{}",
        stdout(&o)
    );
    h.apply_ok(&[]);
    let o = plan_without_save();
    assert_exit(&o, 0, "");
}

/// Attack: the host's network namespace is made anew in the same boot (a container
/// restarted) and given the old one's inode number, as the kernel does with a freed one; its
/// fresh ruleset's generation soon passes the recorded one. netc's chains are not there, and
/// plan says so at every generation: the record names the namespace by its cookie, which is
/// never reused.
#[test]
fn a_namespace_made_anew_does_not_inherit_the_record() {
    if !ready() {
        return;
    }
    let h = Host::new("reborn");
    h.apply_ok(&[]);
    if !h
        .ns
        .ok(&["iptables-save", "-t", "filter"])
        .contains("(nf_tables)")
    {
        eprintln!("SKIPPED a_namespace_made_anew_does_not_inherit_the_record: iptables-legacy");
        return;
    }
    let name = &h.ns.name;
    for args in [["netns", "del", name], ["netns", "add", name]] {
        assert!(Command::new("ip").args(args).status().unwrap().success());
    }
    h.ns.ok(&["ip", "link", "set", "lo", "up"]);
    for (i, link) in ["eno1", "eno2", "eno1.529", "eno2.425", "eno2.134"]
        .iter()
        .enumerate()
    {
        let peer = format!("x{i}");
        h.ns.ok(&[
            "ip", "link", "add", link, "type", "veth", "peer", "name", &peer,
        ]);
    }
    // The old record, as if the new namespace had the old one's inode number.
    let record = h.root().join("var/lib/netc/iptables-left.json");
    let mut left: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&record).unwrap()).unwrap();
    let inode =
        std::os::unix::fs::MetadataExt::ino(&fs::metadata(format!("/run/netns/{name}")).unwrap());
    left["netns"] = inode.into();
    let recorded = left["generation"].as_u64().unwrap();
    fs::write(&record, left.to_string()).unwrap();
    for n in 0..recorded + 3 {
        let o = h.netc("plan", &[]);
        for chain in [
            "IPv4: create chain CLOUDSTACK-SERVICES",
            "IPv6: create chain",
        ] {
            assert!(
                stdout(&o).contains(chain),
                "{n} changes into the new namespace: {}",
                stdout(&o)
            );
        }
        h.ns.ok(&["iptables", "-N", &format!("SOMEONE{n}")]);
    }
}
