//! The firewall's boot path, `netc-firewall.service`: run as systemd would run it, in a
//! namespace where libvirt and CloudStack already have chains, twice. Their chains stay,
//! netc's chains are as rendered with exactly one INPUT jump each, and the second run changes
//! nothing. netfilter-persistent gets no file from netc (it restores without --noflush).

use std::path::Path;

use netc::config::Target;
use netc::model::Topology;
use netc::render;

use crate::netns::{Netns, available};
use crate::support::*;

/// The unit's ExecStart commands for `host`, with every file of the host's tree written under
/// `root` and the commands pointed there.
pub(crate) fn boot_commands(
    topo: &Topology,
    host: &str,
    target: Target,
    root: &Path,
) -> Vec<String> {
    let tree = render::tree(topo, target);
    for (path, text) in &tree {
        if let Ok(rel) = path.strip_prefix(host) {
            let file = root.join(rel);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
    }
    let unit = &tree[&Path::new(host).join("etc/systemd/system/netc-firewall.service")];
    unit.lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .map(|c| c.replace(" /etc/", &format!(" {}/etc/", root.display())))
        .collect()
}

/// Runs the boot path in `ns` (each command as systemd would: one after the other, the first
/// failure stops it).
pub(crate) fn run_boot_path(ns: &Netns, commands: &[String]) {
    for c in commands {
        let o = ns.run(&["sh", "-c", c]);
        assert!(
            o.status.success(),
            "{c}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

const FOREIGN: &str = "*filter\n:LIBVIRT_INP - [0:0]\n:LIBVIRT_FWI - [0:0]\n:i-2-7-VM - [0:0]\n-A INPUT -j LIBVIRT_INP\n-A FORWARD -j LIBVIRT_FWI\n-A FORWARD -j i-2-7-VM\n-A LIBVIRT_INP -i virbr0 -p udp -m udp --dport 53 -j ACCEPT\n-A LIBVIRT_FWI -o virbr0 -j REJECT --reject-with icmp-port-unreachable\n-A i-2-7-VM -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n";

fn saved(ns: &Netns) -> String {
    let mut out = String::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        let text = ns.ok(&[tool, "-t", "filter"]);
        out += &text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .replace("[0:0]", "");
    }
    out
}

#[test]
fn the_boot_path_keeps_foreign_chains_and_changes_nothing_the_second_time() {
    if !available(
        "boot path",
        &["iptables-restore", "ip6tables-restore", "iptables"],
    ) {
        return;
    }
    let paths = valid_topologies();
    let mut checked = 0;
    for path in paths {
        let topo = compile(&path).topology.unwrap();
        for host in &topo.hosts {
            let what = format!("{}/{}", stem(&path), host.name);
            let tree = render::tree(&topo, Target::Both);
            assert!(
                !tree
                    .keys()
                    .any(|p| p.ends_with("rules.v4") || p.ends_with("rules.v6")),
                "{what}: a file for netfilter-persistent"
            );
            let ns = Netns::new("boot");
            for (tool, foreign) in [
                ("iptables-restore", FOREIGN.to_string()),
                ("ip6tables-restore", FOREIGN.replace("icmp-", "icmp6-")),
            ] {
                let o = ns.run_stdin(&[tool, "--noflush"], &foreign);
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            }
            let dir = tempfile::tempdir().unwrap();
            let commands = boot_commands(&topo, &host.name, Target::Iptables, dir.path());
            run_boot_path(&ns, &commands);
            let once = saved(&ns);
            run_boot_path(&ns, &commands);
            assert_eq!(
                saved(&ns),
                once,
                "{what}: the second run changed the firewall"
            );
            for line in FOREIGN.lines().filter(|l| l.starts_with("-A")) {
                let v6 = line.replace("icmp-", "icmp6-");
                let count = once.matches(&format!("{line}\n")).count()
                    + once.matches(&format!("{v6}\n")).count() * usize::from(v6 != line);
                assert_eq!(count, 2, "{what}: {line}\n{once}");
            }
            // netc's chains as rendered, and INPUT jumps to each once, first and in order.
            let chains: Vec<&str> = topo
                .policies_on(&host.name)
                .map(|p| p.chain.as_str())
                .collect();
            for (file, tool) in [("netc.v4", "iptables"), ("netc.v6", "ip6tables")] {
                let text = &tree[&Path::new(&host.name).join("etc/iptables").join(file)];
                let live = ns.ok(&[&format!("{tool}-save"), "-t", "filter"]);
                for line in text.lines().filter(|l| l.starts_with("-A ")) {
                    assert!(
                        live.contains(&format!("{line}\n")),
                        "{what}: {line}\n{live}"
                    );
                }
                let input: Vec<&str> = live
                    .lines()
                    .filter(|l| l.starts_with("-A INPUT "))
                    .collect();
                let mut want: Vec<String> =
                    chains.iter().map(|c| format!("-A INPUT -j {c}")).collect();
                want.push("-A INPUT -j LIBVIRT_INP".into());
                assert_eq!(input, want, "{what} ({tool})");
            }
            checked += 1;
        }
    }
    assert!(checked >= 8);
}

/// The old way, for contrast: a complete filter table restored as netfilter-persistent does
/// deletes the foreign chains. (The test above would see that.)
#[test]
fn a_complete_table_restored_without_noflush_deletes_foreign_chains() {
    if !available("boot path", &["iptables-restore"]) {
        return;
    }
    let ns = Netns::new("bootold");
    ns.run_stdin(&["iptables-restore", "--noflush"], FOREIGN);
    let complete = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:CS - [0:0]\n-A INPUT -j CS\nCOMMIT\n";
    ns.run_stdin(&["iptables-restore"], complete);
    assert!(!ns.ok(&["iptables-save"]).contains("LIBVIRT_INP"));
}

/// systemd reads every unit without complaint.
#[test]
fn systemd_accepts_every_unit() {
    if !available(
        "systemd-analyze verify",
        &["systemd-analyze", "iptables-restore", "nft"],
    ) {
        return;
    }
    for path in valid_topologies() {
        let topo = compile(&path).topology.unwrap();
        for target in [Target::Iptables, Target::Nftables, Target::Both] {
            for (file, text) in render::tree(&topo, target) {
                if !file.ends_with("netc-firewall.service") {
                    continue;
                }
                let dir = tempfile::tempdir().unwrap();
                let unit = dir.path().join("netc-firewall.service");
                std::fs::write(&unit, text).unwrap();
                let o = std::process::Command::new("systemd-analyze")
                    .args(["verify", unit.to_str().unwrap()])
                    .output()
                    .unwrap();
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(
                    o.status.success() && !err.contains("netc-firewall.service:"),
                    "{}: {err}",
                    file.display()
                );
            }
        }
    }
}
