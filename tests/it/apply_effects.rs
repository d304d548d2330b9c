//! What a change does beyond its own steps, and what guards it: the kernel's side effects of
//! replacing an IPv4 address (secondaries, a VIP, static routes) are planned and kept; the
//! lockout guard sees secondaries, VIPs, static routes, link-local sessions and bridge ports,
//! and `plan`/`--dry-run` say what it would refuse; keepalived's config is checked (with its
//! scripts) before any change and only keepalived is signalled; a renamed firewall leaves no
//! chain behind; one apply converges over a set of changes; counts are honest; `--confirm`
//! is bounded.

use std::fs;

use crate::apply::{Host, ready};
use crate::support::*;

/// chamomile's own bridges (biloba's come first in the topology).
const CHAMOMILE_BR529: &str =
    "bridge br529 vlan 529 on eno1 {\n        address fd74:6b6a:8eca:4902::23";
const CHAMOMILE_BR425: &str = "bridge br425 vlan 425 on eno2\n    bridge br134 vlan 134 on eno2 {\n        address 2620:101:f000:4901:c5c::149";
const CHAMOMILE_BR134: &str =
    "bridge br134 vlan 134 on eno2 {\n        address 2620:101:f000:4901:c5c::149";

/// chamomile applied, then br134 given what people add by hand: a secondary address, a
/// keepalived-style VIP (another secondary) and a static route through the subnet.
fn decorated(tag: &str) -> Host {
    let h = Host::new(tag);
    h.apply_ok(&[]);
    for addr in ["198.51.100.30/24", "198.51.100.31/24"] {
        h.ns.ok(&["ip", "addr", "add", addr, "dev", "br134"]);
    }
    h.ns.ok(&[
        "ip",
        "route",
        "add",
        "10.9.0.0/16",
        "via",
        "198.51.100.5",
        "dev",
        "br134",
    ]);
    h
}

fn v4(h: &Host) -> (String, String) {
    let addrs = h.ns.ok(&["ip", "-4", "-o", "addr", "show", "br134"]);
    let addrs: Vec<&str> = addrs
        .lines()
        .map(|l| l.split_whitespace().nth(3).unwrap())
        .collect();
    let routes = h.ns.ok(&["ip", "route", "show", "dev", "br134"]);
    (addrs.join(" "), routes)
}

/// Finding 5: replacing br134's address keeps the secondaries, the VIP and the static
/// route (the kernel drops them with the primary), the plan says so, and a rollback brings
/// the old address back with them.
#[test]
fn replacing_an_address_keeps_secondaries_vips_and_static_routes() {
    if !ready() {
        return;
    }
    let h = decorated("effects");
    let (before, routes_before) = v4(&h);
    assert_eq!(before, "198.51.100.23/24 198.51.100.30/24 198.51.100.31/24");
    h.edit_topology(&[("address 198.51.100.23", "address 198.51.100.24")]);
    let o = h.netc("plan", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let plan = stdout(&o);
    for needle in [
        "198.51.100.30/24 on br134 (not netc's) shares 198.51.100.23/24's subnet",
        "route 10.9.0.0/16 via 198.51.100.5 dev br134 goes with the address",
        "+ address 198.51.100.31/24 on br134",
    ] {
        assert!(plan.contains(needle), "`{needle}`:\n{plan}");
    }
    h.apply_ok(&["--confirm", "600"]);
    let (after, routes) = v4(&h);
    assert_eq!(after, "198.51.100.24/24 198.51.100.30/24 198.51.100.31/24");
    assert!(routes.contains("10.9.0.0/16 via 198.51.100.5"), "{routes}");
    assert!(routes.contains("default via 198.51.100.1"), "{routes}");
    assert_eq!(h.netc("plan", &[]).status.code(), Some(0));
    assert_exit(
        &h.state_cmd("rollback", &[]),
        0,
        "as it was before the apply",
    );
    let (back, routes_back) = v4(&h);
    let sorted = |s: &str| {
        let mut v: Vec<&str> = s.split(' ').collect();
        v[1..].sort();
        v.join(" ")
    };
    assert_eq!(
        sorted(&back),
        before,
        "the old primary first, the others kept"
    );
    let lines = |s: &str| {
        let mut v: Vec<String> = s.lines().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(lines(&routes_back), lines(&routes_before));
}

fn ssh(h: &Host, session: &str, args: &[&str]) -> std::process::Output {
    let root = h.root();
    let mut all = args.to_vec();
    all.extend([
        "topology.csn",
        "--host",
        "chamomile",
        "--root",
        root.to_str().unwrap(),
    ]);
    if args[0] == "apply" {
        all.push("--force-host");
    }
    h.command(&all)
        .env("SSH_CONNECTION", session)
        .output()
        .unwrap()
}

/// Finding 6: the lockout guard counts secondaries, VIPs, static routes, link-local
/// sessions and the bridge's ports; plan and --dry-run say what it would refuse; a session
/// it cannot read is refused, not ignored.
#[test]
fn the_lockout_guard_sees_the_whole_path() {
    if !ready() {
        return;
    }
    let h = decorated("guard");
    let kernel = h.kernel();
    h.edit_topology(&[("address 198.51.100.23", "address 198.51.100.24")]);
    for (session, why) in [
        (
            "198.51.100.77 50022 198.51.100.30 22",
            "(198.51.100.77 → 198.51.100.30) depends on the address it connects to",
        ),
        (
            "203.0.113.7 50022 198.51.100.31 22",
            "(203.0.113.7 → 198.51.100.31) depends on",
        ),
        (
            "10.9.3.3 50022 172.19.168.23 22",
            "depends on the route its replies take",
        ),
        ("garbage", "does not parse"),
    ] {
        let o = ssh(&h, session, &["apply"]);
        assert_exit(&o, 1, why);
        assert_eq!(h.kernel(), kernel, "{session}: nothing changed");
        let o = ssh(&h, session, &["plan"]);
        assert_eq!(o.status.code(), Some(1), "{session}: {}", stdout(&o));
        assert!(
            stdout(&o).contains("refused by the lockout guard"),
            "{}",
            stdout(&o)
        );
        assert_exit(
            &ssh(&h, session, &["apply", "--dry-run"]),
            1,
            "apply would refuse",
        );
    }
    // A link-local session over br134 is not cut by an IPv4 change…
    let link_local = "fe80::77%br134 50022 fe80::aaaa%br134 22";
    let o = ssh(&h, link_local, &["plan"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    // …but is by a rename that deletes br134 and moves its port.
    h.edit_topology(&[(CHAMOMILE_BR134, &CHAMOMILE_BR134.replace("br134", "br135"))]);
    let o = ssh(&h, link_local, &["apply"]);
    assert_exit(&o, 1, "(fe80::77 → fe80::aaaa) depends on");
    assert_eq!(h.kernel(), kernel);
    // Sessions elsewhere are not in the way.
    let o = ssh(&h, "172.19.168.7 50022 172.19.168.23 22", &["apply"]);
    assert_exit(&o, 0, "applied");
}

/// Attack: a change that removes nothing on the session's way but adds a subnet holding the
/// client (a new VLAN's bridge) sends the replies out of that bridge instead: refused, as a
/// removal is. A server that reports an IPv4 session as IPv4-mapped IPv6 addresses is the
/// same session, not one the guard cannot place.
#[test]
fn the_lockout_guard_sees_a_subnet_that_would_divert_the_replies() {
    if !ready() {
        return;
    }
    let h = Host::new("divert");
    h.ns.ok(&[
        "ip", "link", "add", "eno1.600", "type", "veth", "peer", "name", "x9",
    ]);
    h.apply_ok(&[]);
    let kernel = h.kernel();
    let br600 = "    bridge br600 vlan 600 on eno1 {\n        address 10.0.0.23\n    }\n";
    h.edit_topology(&[
        (
            "vlan 134 \"",
            "vlan 600 \"backup\" {\n    prefix 10.0.0.0/8\n}\n\nvlan 134 \"",
        ),
        (
            "        address 198.51.100.23                # illustrative\n    }\n",
            &format!(
                "        address 198.51.100.23                # illustrative\n    }}\n{br600}"
            ),
        ),
    ]);
    // Today the replies to 10.1.2.3 leave by the default route on br134.
    for session in [
        "10.1.2.3 50022 198.51.100.23 22",
        "::ffff:10.1.2.3 50022 ::ffff:198.51.100.23 22",
    ] {
        let o = ssh(&h, session, &["plan"]);
        assert_eq!(o.status.code(), Some(1), "{session}: {}", stdout(&o));
        assert!(
            stdout(&o).contains(
                "(10.1.2.3 → 198.51.100.23) depends on the way its replies leave, which this \
                 change sends another way: + address 10.0.0.23/8 on br600"
            ),
            "{session}: {}",
            stdout(&o)
        );
        assert_exit(
            &ssh(&h, session, &["apply"]),
            1,
            "refusing to apply: this SSH session",
        );
        assert_eq!(h.kernel(), kernel, "{session}: nothing changed");
    }
    // A client outside the new subnet keeps its way: applied.
    let o = ssh(&h, "203.0.113.7 50022 198.51.100.23 22", &["apply"]);
    assert_exit(&o, 0, "applied");
    let way = h.ns.ok(&["ip", "route", "get", "10.1.2.3"]);
    assert!(way.contains("dev br600"), "{way}");
}

/// Finding 11: keepalived's config is checked, with its check scripts, when the plan is
/// made: a missing script is a refusal (plan exit 1), and apply changes nothing.
#[test]
fn keepalived_is_checked_before_any_change() {
    if !ready() || !crate::netns::available("keepalived", &["keepalived", "unshare"]) {
        return;
    }
    let h = Host::new("kacheck");
    let kernel = h.kernel();
    h.edit_topology(&[(
        "check \"/usr/bin/mysqladmin ping\"",
        "check \"/nonexistent/netc-check-mariadb\"",
    )]);
    let o = h.netc("plan", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("refused: keepalived rejects the new"),
        "{}",
        stdout(&o)
    );
    let o = h.netc("apply", &[]);
    assert_exit(&o, 1, "refusing to apply");
    assert_eq!(h.kernel(), kernel);
    assert!(!h.root().join("etc").exists());
    h.edit_topology(&[("/nonexistent/netc-check-mariadb", "/bin/true")]);
    assert_eq!(h.netc("plan", &[]).status.code(), Some(2));
}

/// Finding 7: a stale pid file gets nobody signalled.
#[test]
fn only_keepalived_is_sent_sighup() {
    if !ready() {
        return;
    }
    let h = Host::new("kapid");
    let mut bystander = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let run = h.root().join("run");
    fs::create_dir_all(&run).unwrap();
    fs::write(run.join("keepalived.pid"), format!("{}\n", bystander.id())).unwrap();
    let o = h.netc("apply", &[]);
    assert_exit(&o, 0, "not keepalived (a stale pid file)");
    assert!(
        !stderr(&o).contains("keepalived reloaded"),
        "{}",
        stderr(&o)
    );
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander lives"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

fn chains(h: &Host, tool: &str) -> String {
    h.ns.ok(&[tool, "-t", "filter"])
        .lines()
        .filter(|l| l.starts_with(':') || l.starts_with("-A INPUT"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Finding 8: a renamed firewall replaces its chain (found by netc's record, or by the rules
/// file it installed), with exactly one INPUT jump; a rollback brings the old one back.
#[test]
fn a_renamed_firewall_leaves_no_chain_behind() {
    if !ready() {
        return;
    }
    let h = Host::new("rename");
    h.apply_ok(&[]);
    let before = (chains(&h, "iptables-save"), chains(&h, "ip6tables-save"));
    h.edit_topology(&[("firewall CLOUDSTACK-SERVICES", "firewall CS-SVC")]);
    let o = h.netc("plan", &[]);
    assert!(
        stdout(&o).contains("IPv4: remove chain CLOUDSTACK-SERVICES (netc's, no longer rendered"),
        "{}",
        stdout(&o)
    );
    h.apply_ok(&["--confirm", "600"]);
    for tool in ["iptables-save", "ip6tables-save"] {
        let c = chains(&h, tool);
        assert!(!c.contains("CLOUDSTACK-SERVICES"), "{tool}: {c}");
        assert_eq!(c.matches("-A INPUT -j CS-SVC").count(), 1, "{tool}: {c}");
    }
    assert_eq!(h.netc("plan", &[]).status.code(), Some(0));
    assert_exit(
        &h.state_cmd("rollback", &[]),
        0,
        "as it was before the apply",
    );
    assert_eq!(
        (chains(&h, "iptables-save"), chains(&h, "ip6tables-save")),
        before
    );
    // Without netc's record (a host applied by an older netc), the installed rules file
    // still names netc's chain.
    for f in ["iptables-v4.json", "iptables-v6.json"] {
        fs::remove_file(h.root().join("var/lib/netc").join(f)).unwrap();
    }
    h.apply_ok(&[]);
    assert!(!chains(&h, "iptables-save").contains("CLOUDSTACK-SERVICES"));
    assert_eq!(h.netc("plan", &[]).status.code(), Some(0));
}

/// Finding 9: after each successful apply of a set of changes, `plan` has nothing to do.
#[test]
fn one_apply_converges() {
    if !ready() {
        return;
    }
    let h = Host::new("converge");
    h.ns.ok(&[
        "ip", "link", "add", "eno1.425", "type", "veth", "peer", "name", "x8",
    ]);
    h.apply_ok(&[]);
    let renamed = CHAMOMILE_BR529.replace("br529", "br530");
    let moved = CHAMOMILE_BR425.replacen("on eno2", "on eno1", 1);
    let steps: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "a source added",
            vec![("allow vlan 529", "allow vlan 529\n    allow 203.0.113.9")],
        ),
        (
            "a bridge renamed",
            vec![(CHAMOMILE_BR529, renamed.as_str())],
        ),
        (
            "a VLAN moved to another NIC",
            vec![(CHAMOMILE_BR425, moved.as_str())],
        ),
        (
            "an address changed",
            vec![("address 198.51.100.23", "address 198.51.100.24")],
        ),
        (
            "a chain renamed",
            vec![("firewall CLOUDSTACK-SERVICES", "firewall CS-SVC")],
        ),
        ("a source removed", vec![("\n    allow 203.0.113.9", "")]),
        (
            "a host left the VIP",
            vec![("    member chamomile priority 100\n", "")],
        ),
    ];
    for (what, edits) in steps {
        h.edit_topology(&edits);
        let o = h.netc("apply", &[]);
        assert_exit(&o, 0, "");
        assert!(
            stderr(&o).contains("applied"),
            "{what}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let o = h.netc("plan", &[]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "after {what}:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
    }
    assert!(!h.root().join("etc/keepalived/keepalived.conf").exists());
    assert!(!h.ns.ok(&["ip", "link"]).contains("br529"));
}

/// Finding 12: a firewall load is a kernel write; --confirm is bounded.
#[test]
fn counts_are_honest_and_confirm_is_bounded() {
    if !ready() {
        return;
    }
    let h = Host::new("counts");
    h.apply_ok(&[]);
    h.edit_topology(&[("allow vlan 529", "allow vlan 529\n    allow 203.0.113.9")]);
    let o = h.netc("apply", &[]);
    assert_exit(&o, 0, "(1 kernel writes, 1 files written)");
    for bad in ["0", "86401", "18446744073709551615"] {
        let o = h.netc("apply", &["--confirm", bad]);
        assert_exit(&o, 1, "--confirm");
        assert!(!h.journal().exists());
    }
}

/// Finding 8, for the other target: switching the firewall target removes what netc loaded
/// for the old one (chains or the `inet netc` table) and the files it generated for it.
#[test]
fn switching_the_firewall_target_leaves_nothing_of_the_other() {
    if !ready() {
        return;
    }
    let h = Host::new("target");
    h.apply_ok(&[]);
    let target = |t: &str| {
        fs::write(
            h.dir.path().join("netc.toml"),
            format!("[firewall]\ntarget = \"{t}\"\n"),
        )
        .unwrap()
    };
    let etc = h.root().join("etc");
    target("nftables");
    let out = h.apply_ok(&[]);
    assert!(out.contains("- /etc/iptables/netc.v4"), "{out}");
    assert!(!chains(&h, "iptables-save").contains("CLOUDSTACK"));
    assert!(!chains(&h, "ip6tables-save").contains("CLOUDSTACK"));
    assert!(!etc.join("iptables/netc.v4").exists());
    assert!(
        h.ns.ok(&["nft", "list", "tables"])
            .contains("table inet netc")
    );
    assert_eq!(h.netc("plan", &[]).status.code(), Some(0));
    target("iptables");
    let out = h.apply_ok(&[]);
    assert!(
        out.contains("delete table inet netc (no longer rendered)"),
        "{out}"
    );
    assert!(
        !h.ns
            .ok(&["nft", "list", "tables"])
            .contains("table inet netc")
    );
    assert!(!etc.join("nftables.d/netc.nft").exists());
    assert_eq!(
        chains(&h, "iptables-save")
            .matches("-A INPUT -j CLOUDSTACK-SERVICES")
            .count(),
        1
    );
    assert_eq!(h.netc("plan", &[]).status.code(), Some(0));
}

/// Attack: an ipset netc's rules stop matching stays in the kernel (by design) — when a
/// policy shrinks below the threshold and when the target becomes nftables — and apply says
/// so, naming the command that removes it, instead of leaving it unmentioned.
#[test]
fn an_ipset_netc_stops_matching_is_named() {
    if !ready() || !crate::netns::available("ipset apply", &["ipset", "unshare"]) {
        return;
    }
    let h = Host::new("unused-set");
    let many: String = (1..=40)
        .map(|i| format!("    allow 198.18.0.{i}\n"))
        .collect();
    let large = fs::read_to_string(h.dir.path().join("topology.csn"))
        .unwrap()
        .replacen(
            "    allow vlan 529\n",
            &format!("    allow vlan 529\n{many}"),
            1,
        );
    let small = fs::read_to_string(h.dir.path().join("topology.csn")).unwrap();
    let topology = |text: &str| fs::write(h.dir.path().join("topology.csn"), text).unwrap();
    let note = "ipset CLOUDSTACK-SERVICES_v4 is no longer matched by netc's rules; it stays in \
                the kernel until removed by hand (ipset destroy CLOUDSTACK-SERVICES_v4)";
    topology(&large);
    assert!(!h.apply_ok(&[]).contains("no longer matched"));
    topology(&small);
    let o = h.netc("plan", &[]);
    assert!(stdout(&o).contains(note), "{}", stdout(&o));
    assert!(h.apply_ok(&[]).contains(note));
    topology(&large);
    h.apply_ok(&[]);
    fs::write(
        h.dir.path().join("netc.toml"),
        "[firewall]\ntarget = \"nftables\"\n",
    )
    .unwrap();
    assert!(h.apply_ok(&[]).contains(note));
    // Removed by hand, it is not named again.
    h.ns.ok(&["ipset", "destroy", "CLOUDSTACK-SERVICES_v4"]);
    topology(&small);
    fs::remove_file(h.dir.path().join("netc.toml")).unwrap();
    assert!(!h.apply_ok(&[]).contains("no longer matched"));
}

/// Attack: the set an apply stops matching, removed by hand as that apply says, is made
/// again by the rollback before the rules that match it come back (they could not load
/// without it); kept, the rollback leaves it as it was.
#[test]
fn a_rollback_puts_back_the_set_removed_by_hand() {
    if !ready() || !crate::netns::available("ipset apply", &["ipset", "unshare"]) {
        return;
    }
    let h = Host::new("unused-set-back");
    let small = fs::read_to_string(h.dir.path().join("topology.csn")).unwrap();
    let many: String = (1..=40)
        .map(|i| format!("    allow 198.18.0.{i}\n"))
        .collect();
    h.edit_topology(&[(
        "    allow vlan 529\n",
        &format!("    allow vlan 529\n{many}"),
    )]);
    h.apply_ok(&[]);
    let elements = || {
        let save = h.ns.ok(&["ipset", "save"]);
        let mut v: Vec<String> = save
            .lines()
            .filter(|l| l.starts_with("add "))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let (sets, rules) = (elements(), h.ns.ok(&["iptables-save", "-t", "filter"]));
    fs::write(h.dir.path().join("topology.csn"), &small).unwrap();
    for destroy in [true, false] {
        h.apply_ok(&["--confirm", "600"]);
        if destroy {
            h.ns.ok(&["ipset", "destroy", "CLOUDSTACK-SERVICES_v4"]);
        }
        let o = h.state_cmd("rollback", &[]);
        assert_exit(&o, 0, "the host is as it was");
        assert_eq!(elements(), sets);
        let now = h.ns.ok(&["iptables-save", "-t", "filter"]);
        let strip = |s: &str| -> String { s.lines().filter(|l| !l.starts_with('#')).collect() };
        assert_eq!(strip(&now), strip(&rules));
    }
}
