//! Every rendered artefact is accepted by the tool that reads it: iptables-restore (nft and
//! legacy backends), keepalived -t, ifquery / ifup -n, and a Java-properties reading of
//! agent.properties. Runs for every host of csc.csn and of every valid fixture.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use netc::config::Target;
use netc::model::Topology;
use netc::render;

use crate::netns::{Netns, available, which};
use crate::support::*;

/// Every valid topology with its rendered tree.
fn trees() -> Vec<(String, Topology, BTreeMap<PathBuf, String>)> {
    valid_topologies()
        .iter()
        .map(|p| {
            let topo = compile(p).topology.expect("valid");
            let tree = render::tree(&topo, Target::Both);
            (stem(p), topo, tree)
        })
        .collect()
}

fn file<'a>(tree: &'a BTreeMap<PathBuf, String>, host: &str, rel: &str) -> Option<&'a String> {
    tree.get(&Path::new(host).join(rel))
}

/// Lines that define netc's chains in `text`: their declarations (counters are [0:0] after a
/// fresh load) and rules, in order. `chains_of` names the chains (the rendered file).
fn rule_lines<'a>(text: &'a str, chains_of: &str) -> Vec<&'a str> {
    let chains: Vec<&str> = chains_of
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let ours = |l: &str| {
        let name = l
            .trim_start_matches(':')
            .trim_start_matches("-A ")
            .split_whitespace()
            .next()
            .unwrap_or("");
        chains.contains(&name)
    };
    text.lines()
        .filter(|l| (l.starts_with("-A ") || l.starts_with(':')) && ours(l))
        .collect()
}

#[test]
fn iptables_restore_accepts_and_save_reads_back_the_same_rules() {
    // Both backends where installed (Debian's iptables package ships both).
    let backends: Vec<&str> = ["nft", "legacy"]
        .into_iter()
        .filter(|b| which(&format!("iptables-{b}-restore")).is_some())
        .collect();
    if !available(
        "iptables_restore",
        &["iptables-nft-restore", "ip6tables-nft-restore"],
    ) {
        return;
    }
    let mut loaded = 0;
    for (topo_name, topo, tree) in trees() {
        for host in &topo.hosts {
            for backend in &backends {
                for (file_name, tool) in [("netc.v4", "iptables"), ("netc.v6", "ip6tables")] {
                    let text =
                        file(&tree, &host.name, &format!("etc/iptables/{file_name}")).unwrap();
                    let ns = Netns::new("ipt");
                    let restore = format!("{tool}-{backend}-restore");
                    let o = ns.run_stdin(&[&restore, "--noflush"], text);
                    assert!(
                        o.status.success(),
                        "{topo_name}/{}/{file_name}: {restore} failed: {}",
                        host.name,
                        String::from_utf8_lossy(&o.stderr)
                    );
                    let saved = ns.ok(&[&format!("{tool}-{backend}-save"), "-t", "filter"]);
                    assert_eq!(
                        rule_lines(&saved, text),
                        rule_lines(text, text),
                        "{topo_name}/{}/{file_name} read back differently with {backend}",
                        host.name
                    );
                    loaded += 1;
                }
            }
        }
    }
    assert!(loaded >= 2 * 8, "only {loaded} files loaded");
}

/// The nftables target: `nft -c` accepts it; it loads, and loads again over itself (the file
/// replaces its table atomically); its chains hold a constant number of rules.
#[test]
fn nft_accepts_and_reloads_every_table() {
    if !available("nft", &["nft"]) {
        return;
    }
    let mut checked = 0;
    for (topo_name, topo, tree) in trees() {
        for host in &topo.hosts {
            let what = format!("{topo_name}/{}", host.name);
            let text = file(&tree, &host.name, "etc/nftables.d/netc.nft").unwrap();
            let ns = Netns::new("nft");
            for args in [
                &["nft", "-c", "-f", "-"][..],
                &["nft", "-f", "-"],
                &["nft", "-f", "-"],
            ] {
                let o = ns.run_stdin(args, text);
                assert!(
                    o.status.success(),
                    "{what}: {args:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            let listed = ns.ok(&["nft", "list", "table", "inet", "netc"]);
            for p in topo.policies_on(&host.name) {
                let chain = ns.ok(&["nft", "list", "chain", "inet", "netc", &p.chain]);
                let rules = chain
                    .lines()
                    .filter(|l| l.contains(" return") || l.contains(" reject"))
                    .count();
                // One rule per family and prefix length of the sources; per `ports`
                // statement one for its single ports and one per range.
                let lengths: std::collections::BTreeSet<(bool, u8)> = p
                    .sources
                    .iter()
                    .map(|s| (s.net.addr().is_ipv4(), s.net.prefix_len()))
                    .collect();
                let port_rules: usize = p
                    .ports
                    .iter()
                    .map(|set| {
                        let ranges = set.ports.iter().filter(|r| r.first != r.last).count();
                        ranges + usize::from(ranges < set.ports.len())
                    })
                    .sum();
                assert_eq!(rules, lengths.len() + port_rules, "{what}: {chain}");
                assert!(
                    listed.contains(&format!("jump {}", p.chain)),
                    "{what}: {listed}"
                );
            }
            // No other table was created.
            let tables = ns.ok(&["nft", "list", "tables"]);
            assert_eq!(tables.trim(), "table inet netc", "{what}");
            checked += 1;
        }
    }
    assert!(checked >= 8);
}

#[test]
fn keepalived_accepts_every_config() {
    if !available("keepalived -t", &["keepalived"]) {
        return;
    }
    let mut checked = 0;
    for (topo_name, topo, tree) in trees() {
        for host in &topo.hosts {
            let Some(text) = file(&tree, &host.name, "etc/keepalived/keepalived.conf") else {
                continue;
            };
            let dir = tempfile::tempdir().unwrap();
            let conf = dir.path().join("keepalived.conf");
            std::fs::write(&conf, text).unwrap();
            let ns = Netns::new("ka");
            // keepalived -t fails unless the interfaces exist: create the bridges.
            for vip in topo.vips_of(&host.name) {
                let bridge = host.bridge_on(vip.vlan).unwrap();
                ns.ok(&["ip", "link", "add", &bridge.name, "type", "bridge"]);
            }
            let mut shell = provide_scripts(&topo, &host.name, dir.path(), "exit 0");
            shell += &format!("exec keepalived -t -f {}", conf.display());
            let o = ns.run(&["unshare", "-m", "sh", "-c", &shell]);
            // keepalived -t: 0 ok, 4/5 config error, 6 script security (DOMAIN.md).
            assert_eq!(
                o.status.code(),
                Some(0),
                "{topo_name}/{}: keepalived -t: {}{}",
                host.name,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} configs checked");
}

/// A tracked script must exist and be root's: the shell commands that provide each check
/// script of `host`'s VIPs (its program, the first word) running `body`, for a private mount
/// namespace: an overlay of a scratch directory on the script's folder, whose other files
/// stay visible.
pub(crate) fn provide_scripts(topo: &Topology, host: &str, scratch: &Path, body: &str) -> String {
    let mut shell = String::new();
    for (i, vip) in topo.vips_of(host).enumerate() {
        let Some(check) = &vip.check else { continue };
        let program = Path::new(check.script.split_whitespace().next().unwrap());
        if !program.parent().unwrap().is_dir() {
            continue; // a script meant to be missing (its folder does not exist either)
        }
        let dir = scratch.join(format!("scripts{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(program.file_name().unwrap());
        std::fs::write(&file, format!("#!/bin/sh\n{body}\n")).unwrap();
        set_mode(&file, 0o755);
        set_mode(&dir, 0o755);
        shell += &format!(
            "mount -t overlay overlay -o lowerdir={}:{1} {1} && ",
            dir.display(),
            program.parent().unwrap().display()
        );
    }
    shell
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// keepalived itself says a broken config is broken, so the test above can fail.
#[test]
fn keepalived_check_rejects_a_broken_config() {
    if !available("keepalived -t", &["keepalived"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(
        &conf,
        "vrrp_instance x {\n    interface nosuchif0\n    virtual_router_id 300\n}\n",
    )
    .unwrap();
    let ns = Netns::new("kabad");
    let o = ns.run(&["keepalived", "-t", "-f", conf.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
}

#[test]
fn ifupdown_reads_every_interfaces_file() {
    if !available("ifquery", &["ifquery", "ifup"]) {
        return;
    }
    for (topo_name, topo, tree) in trees() {
        for host in &topo.hosts {
            let text = file(&tree, &host.name, "etc/network/interfaces").unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("interfaces");
            std::fs::write(&path, text).unwrap();
            let p = path.to_str().unwrap();
            let what = format!("{topo_name}/{}", host.name);

            // Every interface is listed, in order.
            let list = run(&["ifquery", "-i", p, "--list"]);
            let mut expected = vec!["lo".to_string()];
            expected.extend(host.nics.iter().map(|n| n.name.clone()));
            expected.extend(host.bonds.iter().map(|b| b.name.clone()));
            for b in &host.bridges {
                if b.tag().is_some() {
                    expected.push(b.port());
                }
                expected.push(b.name.clone());
            }
            assert_eq!(
                list.lines().collect::<Vec<_>>(),
                expected,
                "{what}: ifquery --list"
            );

            // Each bridge has its port and addresses.
            for b in &host.bridges {
                let q = run(&["ifquery", "-i", p, &b.name]);
                assert!(
                    q.contains(&format!("bridge_ports: {}", b.port())),
                    "{what}: {q}"
                );
                for a in &b.addresses {
                    assert!(
                        q.contains(&format!("address: {}", a.net.addr())),
                        "{what}: {q}"
                    );
                    if let Some(gw) = a.gateway {
                        assert!(q.contains(&format!("gateway: {gw}")), "{what}: {q}");
                    }
                }
            }

            // ifup -n (no action): runs clean; its state goes to a scratch directory.
            let state = dir.path().join("state");
            std::fs::create_dir(&state).unwrap();
            let o = std::process::Command::new("ifup")
                .args(["-n", "-a", "-i", p, "--state-dir", state.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{what}: ifup -n: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

fn run(args: &[&str]) -> String {
    let o = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// agent.properties read the way java.util.Properties reads it: exactly the owned keys.
#[test]
fn agent_properties_hold_exactly_the_owned_keys() {
    let owned = [
        "host",
        "port",
        "private.network.device",
        "public.network.device",
        "guest.network.device",
        "storage.network.device",
        "network.bridge.type",
    ];
    let mut checked = 0;
    for (topo_name, topo, tree) in trees() {
        for host in &topo.hosts {
            let text = file(&tree, &host.name, "etc/cloudstack/agent/agent.properties");
            let (Some(text), Some(agent)) = (text, &host.agent) else {
                assert!(
                    text.is_none(),
                    "{topo_name}/{}: agent.properties on a non-agent",
                    host.name
                );
                continue;
            };
            let props = java_properties(text);
            let mut keys: Vec<&str> = agent.keys().iter().map(|(k, _)| *k).collect();
            assert!(keys.iter().all(|k| owned.contains(k)), "{keys:?}");
            keys.sort();
            assert_eq!(props.keys().map(String::as_str).collect::<Vec<_>>(), keys);
            assert_eq!(
                props.get("storage.network.device"),
                agent.storage_device.as_ref()
            );
            assert_eq!(props["private.network.device"], agent.private_device);
            assert_eq!(props["port"], agent.port.to_string());
            let servers: Vec<String> = agent.servers.iter().map(|s| s.to_string()).collect();
            assert_eq!(props["host"], servers.join(","));
            checked += 1;
        }
    }
    assert!(checked >= 6);
}

/// The subset of the java.util.Properties format a generated file may use, strictly: comment
/// lines (`#`, `!`), blank lines, `key=value` with no escapes, continuations or duplicates.
fn java_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        assert!(
            !line.ends_with('\\') && !line.contains("\\"),
            "escapes or continuation: {line}"
        );
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("no `=`: {line}"));
        assert!(
            !k.contains(' ') && !k.contains(':'),
            "key with separator characters: {k}"
        );
        assert!(
            out.insert(k.to_string(), v.to_string()).is_none(),
            "duplicate key {k}"
        );
    }
    out
}
