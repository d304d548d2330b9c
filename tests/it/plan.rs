//! `netc plan` is read-only and says what apply would do, as text or JSON: ginkgo (the
//! published host) in a namespace, first without its NICs (a conflict: exit 1), then with
//! them (changes: exit 2). `apply.rs` shows that a matching host plans to nothing.

use std::fs;

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
fn plan_reports_conflicts_and_changes_and_writes_nothing() {
    if !available("netc plan", &["iptables-save", "ip6tables-save"]) {
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
    let agent_text = "#Mon Nov 23 2026\nguid=1234\nzone=1\nhost=172.19.168.23,172.19.168.21@roundrobin\nprivate.network.device=cloudbr0\n";
    fs::write(&agent_file, agent_text).unwrap();
    let ns = Netns::new("plan");

    let o = plan(&ns, &host_root, "ginkgo", "text");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("  refused: NIC enp3s0f0 does not exist on this host"),
        "{}",
        stdout(&o)
    );

    for nic in ["enp3s0f0", "ens1f0np0"] {
        ns.ok(&[
            "ip",
            "link",
            "add",
            nic,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{nic}p"),
        ]);
    }
    let o = plan(&ns, &host_root, "ginkgo", "json");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let p: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let network = p["network"].as_array().unwrap();
    assert!(
        network.contains(&serde_json::json!({"op": "add-link", "name": "ens1f0np0.134", "kind": {"type": "vlan", "parent": "ens1f0np0", "id": 134}})),
        "{p}"
    );
    assert!(
        network.contains(&serde_json::json!({"op": "add-route", "dev": "br134", "gateway": "2620:101:f000:4901::1", "proto": 78})),
        "{p}"
    );
    assert_eq!(p["files"].as_array().unwrap().len(), 4, "{p}");
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
    assert_eq!(ns.ok(&["ip", "-br", "link", "show", "type", "bridge"]), "");

    let o = plan(&ns, &host_root, "ginko", "text");
    assert_exit(&o, 1, "did you mean `ginkgo`?");
}
