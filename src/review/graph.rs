//! Model → a picture: hosts, NICs, VLAN subinterfaces, bridges, VLANs and VIPs as Graphviz DOT.

use askama::Template;

use crate::model::{Family, Host, Topology, Vip, Vlan};

#[derive(Template)]
#[template(path = "graph.dot", escape = "none")]
struct Graph<'a> {
    source: &'a str,
    vlans: Vec<VlanNode>,
    hosts: Vec<HostCluster>,
    vips: Vec<VipNode>,
}

struct VlanNode {
    id: String,
    label: String,
}

struct HostCluster {
    name: String,
    label: String,
    nodes: Vec<Node>,
    edges: Vec<(String, String)>,
}

struct Node {
    id: String,
    label: String,
    style: &'static str,
}

struct VipNode {
    id: String,
    label: String,
    /// (bridge node id, priority label)
    members: Vec<(String, String)>,
}

/// DOT text. Names and labels come from the checked model: no quotes or backslashes.
pub fn dot(topo: &Topology) -> String {
    let graph = Graph {
        source: &topo.source,
        vlans: topo.vlans.iter().map(vlan).collect(),
        hosts: topo.hosts.iter().map(host).collect(),
        vips: topo.vips.iter().map(|v| vip(topo, v)).collect(),
    };
    let mut text = graph.render().expect("the template prints plain values");
    text.push('\n');
    text
}

fn vlan(v: &Vlan) -> VlanNode {
    let mut lines = vec![format!("VLAN {}", v.id), v.name.clone()];
    lines.extend(v.role.map(|r| format!("role {}", r.name())));
    lines.extend(v.subnets.iter().map(|s| s.net.to_string()));
    VlanNode {
        id: format!("vlan{}", v.id),
        label: lines.join("\\n"),
    }
}

/// A host's cluster: its NICs, VLAN subinterfaces and bridges, wired to the VLANs.
fn host(h: &Host) -> HostCluster {
    let mut roles = Vec::new();
    if h.management_server {
        roles.push("management server");
    }
    if h.agent.is_some() {
        roles.push("agent");
    }
    let id = |name: &str| format!("{}/{}", h.name, name);
    let mut nodes: Vec<Node> = h
        .nics
        .iter()
        .map(|n| Node {
            id: id(&n.name),
            label: match n.mtu {
                Some(m) => format!("{}\\nmtu {m}", n.name),
                None => n.name.clone(),
            },
            style: ", style=bold",
        })
        .collect();
    let mut edges = Vec::new();
    for bond in &h.bonds {
        let mut label = vec![bond.name.clone(), bond.mode.name().to_string()];
        label.extend(bond.mtu.map(|m| format!("mtu {m}")));
        nodes.push(Node {
            id: id(&bond.name),
            label: label.join("\\n"),
            style: ", style=\"bold,rounded\"",
        });
        for slave in &bond.slaves {
            edges.push((id(slave), id(&bond.name)));
        }
    }
    for b in &h.bridges {
        if b.tag().is_some() {
            nodes.push(Node {
                id: id(&b.port()),
                label: b.port(),
                style: ", style=dashed",
            });
            edges.push((id(&b.nic), id(&b.port())));
        }
        let mut label = vec![b.name.clone()];
        label.extend(b.addresses.iter().map(|a| a.net.to_string()));
        for a in &b.addresses {
            if let Some(gateway) = a.gateway {
                let family = Family::of_net(&a.net).suffix();
                label.push(format!("default {family} via {gateway}"));
            }
        }
        nodes.push(Node {
            id: id(&b.name),
            label: label.join("\\n"),
            style: ", style=rounded",
        });
        edges.push((id(&b.port()), id(&b.name)));
        if let Some(vlan) = b.vlan {
            edges.push((id(&b.name), format!("vlan{vlan}")));
        }
    }
    let label = match roles.is_empty() {
        true => h.name.clone(),
        false => format!("{} ({})", h.name, roles.join(", ")),
    };
    HostCluster {
        name: h.name.clone(),
        label,
        nodes,
        edges,
    }
}

fn vip(topo: &Topology, v: &Vip) -> VipNode {
    let mut label = vec![format!("VIP {}", v.name)];
    label.extend(v.addresses.iter().map(|a| a.to_string()));
    label.push(format!("router id {}", v.router_id));
    let members = v
        .members
        .iter()
        .filter_map(|m| {
            let bridge = topo.host(&m.host)?.bridge_on(v.vlan)?;
            Some((
                format!("{}/{}", m.host, bridge.name),
                format!("priority {}", m.priority),
            ))
        })
        .collect();
    VipNode {
        id: format!("vip:{}", v.name),
        label: label.join("\\n"),
        members,
    }
}
