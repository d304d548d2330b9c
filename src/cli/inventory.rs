//! `netc inventory`: the topology's hosts as an Ansible inventory, so that large sites can
//! drive `netc plan`/`apply --host` from Ansible (contrib/ansible/netc.yml) with its forks,
//! limits and reports.
//!
//! JSON for Ansible's `yaml` inventory plugin (save it as `*.json`): one group `netc` with
//! every host in rollout order ([`super::site::order`]), each with `netc_order` and
//! `netc_wave`; a child group per wave (`netc_wave_1`: hosts that wait for none; then each
//! VIP's master after its backups), and `netc_management_servers` / `netc_agents`.

use std::path::Path;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::exit::{CliResult, Outcome};
use super::load::model;
use super::site::{order, waves};

/// A map that keeps its order (Ansible keeps the inventory's host order).
struct Ordered<T>(Vec<(String, T)>);

impl<T: Serialize> Serialize for Ordered<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct Group {
    hosts: Ordered<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vars: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    children: Option<Ordered<Group>>,
}

impl Group {
    fn of(hosts: impl IntoIterator<Item = String>) -> Group {
        Group {
            hosts: Ordered(
                hosts
                    .into_iter()
                    .map(|h| (h, serde_json::json!({})))
                    .collect(),
            ),
            vars: None,
            children: None,
        }
    }
}

/// The inventory's JSON text.
pub fn inventory(topo: &netc::model::Topology) -> String {
    let order = order(topo);
    let waves = waves(&order);
    let hosts = waves
        .iter()
        .enumerate()
        .map(|(i, (h, w))| {
            let vars = serde_json::json!({"netc_order": i + 1, "netc_wave": w});
            (h.clone(), vars)
        })
        .collect();
    let last = waves.iter().map(|(_, w)| *w).max().unwrap_or(0);
    let mut children: Vec<(String, Group)> = (1..=last)
        .map(|w| {
            let members = waves
                .iter()
                .filter(|(_, x)| *x == w)
                .map(|(h, _)| h.clone());
            (format!("netc_wave_{w}"), Group::of(members))
        })
        .collect();
    let in_order = |pick: &dyn Fn(&netc::model::Host) -> bool| {
        let hosts = order
            .hosts
            .iter()
            .filter(|h| topo.host(h).is_some_and(pick));
        Group::of(hosts.cloned())
    };
    children.push((
        "netc_management_servers".into(),
        in_order(&|h| h.management_server),
    ));
    children.push(("netc_agents".into(), in_order(&|h| h.agent.is_some())));
    let netc = Group {
        hosts: Ordered(hosts),
        vars: Some(serde_json::json!({"netc_topology_name": topo.source})),
        children: Some(Ordered(children)),
    };
    let all = Ordered(vec![("netc".to_string(), netc)]);
    serde_json::to_string_pretty(&all).expect("plain data") + "\n"
}

pub fn print(file: &Path) -> CliResult {
    let compiled = model(file)?;
    print!(
        "{}",
        inventory(compiled.topology.as_ref().expect("model() checked"))
    );
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_in_rollout_order_with_their_waves() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topology/csc.csn");
        let compiled = netc::compile("topology/csc.csn", &std::fs::read(path).unwrap());
        let text = inventory(compiled.topology.as_ref().unwrap());
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let netc = &json["netc"];
        // Order is kept in the text (Ansible keeps it): ginkgo, chamomile, then biloba.
        let at = |h: &str| text.find(&format!("\"{h}\": {{\n")).unwrap();
        assert!(at("ginkgo") < at("chamomile") && at("chamomile") < at("biloba"));
        assert_eq!(netc["hosts"]["biloba"]["netc_wave"], 2);
        assert_eq!(netc["hosts"]["chamomile"]["netc_order"], 2);
        let wave = |n: u8| netc["children"][format!("netc_wave_{n}")]["hosts"].clone();
        assert_eq!(wave(1), serde_json::json!({"ginkgo": {}, "chamomile": {}}));
        assert_eq!(wave(2), serde_json::json!({"biloba": {}}));
        let servers = &netc["children"]["netc_management_servers"]["hosts"];
        assert_eq!(*servers, serde_json::json!({"chamomile": {}, "biloba": {}}));
    }
}
