//! `netc plan` (read-only) against a namespace's live iptables and a scratch root; then the
//! host is brought in line with the apply groundwork (install, --noflush restore, agent
//! merge) and the plan must be empty.

use std::fs;

use netc::config::Target;

use crate::netns::{Netns, available};
use crate::support::*;

fn plan(ns: &Netns, root: &std::path::Path, host: &str, format: &str) -> std::process::Output {
    ns.run(&[
        env!("CARGO_BIN_EXE_netc"),
        "plan",
        root.join("../topology.csn").to_str().unwrap(),
        "--host",
        host,
        "--root",
        root.to_str().unwrap(),
        "--format",
        format,
    ])
}

#[test]
fn plan_reports_then_nothing_once_the_host_matches() {
    if !available(
        "netc plan",
        &["iptables-save", "ip6tables-save", "iptables-restore"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        root().join("topology/csc.csn"),
        dir.path().join("topology.csn"),
    )
    .unwrap();
    let host_root = dir.path().join("root");
    let agent_file = host_root.join("etc/cloudstack/agent/agent.properties");
    fs::create_dir_all(agent_file.parent().unwrap()).unwrap();
    let agent_text = "#Mon Nov 23 2026\nguid=1234\nzone=1\nhost=192.0.2.23,192.0.2.21@roundrobin\nprivate.network.device=cloudbr0\n";
    fs::write(&agent_file, agent_text).unwrap();
    let ns = Netns::new("plan");

    let o = plan(&ns, &host_root, "ginkgo", "json");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let p: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p["files"].as_array().unwrap().len(), 3, "{p}");
    assert_eq!(p["firewall"].as_array().unwrap().len(), 4, "{p}");
    let keys: Vec<&str> = p["agent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert!(
        !keys.contains(&"host"),
        "the agent's reordering is not drift: {keys:?}"
    );
    assert!(keys.contains(&"private.network.device"), "{keys:?}");
    // Plan wrote nothing.
    assert_eq!(fs::read_to_string(&agent_file).unwrap(), agent_text);
    assert!(!host_root.join("etc/network/interfaces").exists());

    // Make the host match, with the pieces apply will use.
    // Compiled under the name the CLI saw: the generated header names the topology as given.
    let name = host_root.join("../topology.csn");
    let bytes = fs::read(&name).unwrap();
    let topo = netc::compile(name.to_str().unwrap(), &bytes)
        .topology
        .unwrap();
    let ginkgo = topo.host("ginkgo").unwrap();
    for a in netc::render::host(&topo, ginkgo, Target::Iptables) {
        let target = host_root.join(&a.path);
        if a.path.ends_with("agent.properties") {
            let owned: Vec<(&str, String)> =
                ginkgo.agent.as_ref().unwrap().keys().into_iter().collect();
            let merged =
                netc::agent_properties::merge(&fs::read_to_string(&target).unwrap(), &owned);
            netc::install::install(&target, merged.text.as_bytes(), netc::install::Backup::Keep)
                .unwrap();
            continue;
        }
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        netc::install::install(&target, a.text.as_bytes(), netc::install::Backup::Keep).unwrap();
        let tool = match a.path.file_name().unwrap().to_str().unwrap() {
            "rules.v4" => ("iptables-save", "iptables-restore"),
            "rules.v6" => ("ip6tables-save", "ip6tables-restore"),
            _ => continue,
        };
        let live = ns.ok(&[tool.0, "-t", "filter"]);
        let payload = netc::iptables_plan::plan(&a.text, &live).restore.unwrap();
        let o = ns.run_stdin(&[tool.1, "--noflush"], &payload);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = plan(&ns, &host_root, "ginkgo", "text");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "ginkgo: no changes\n");
    // The agent's own keys and comments survived the merge.
    let merged = fs::read_to_string(&agent_file).unwrap();
    assert!(
        merged.starts_with(
            "#Mon Nov 23 2026\nguid=1234\nzone=1\nhost=192.0.2.23,192.0.2.21@roundrobin\n"
        ),
        "{merged}"
    );

    let o = plan(&ns, &host_root, "ginko", "text");
    assert_exit(&o, 1, "did you mean `ginkgo`?");
}
