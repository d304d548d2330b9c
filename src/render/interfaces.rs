//! `/etc/network/interfaces` for ifupdown: loopback, NICs, `<nic>.<vlan>` subinterfaces and
//! bridges with their addresses and default routes.

use askama::Template;

use crate::model::{Bridge, Family, Host, Topology};

#[derive(Template)]
#[template(path = "interfaces", escape = "none")]
pub(super) struct Interfaces<'a> {
    source: &'a str,
    blocks: Vec<IfaceBlock>,
}

/// An `auto` line and the interface's `iface` stanzas.
struct IfaceBlock {
    comment: Option<String>,
    name: String,
    stanzas: Vec<Stanza>,
}

struct Stanza {
    family: &'static str,
    method: &'static str,
    options: Vec<(&'static str, String)>,
}

pub(super) fn interfaces<'a>(topo: &'a Topology, host: &Host) -> Interfaces<'a> {
    let manual = |name: &str, comment: Option<String>| IfaceBlock {
        comment,
        name: name.to_string(),
        stanzas: vec![Stanza {
            family: "inet",
            method: "manual",
            options: Vec::new(),
        }],
    };
    let mut blocks: Vec<IfaceBlock> = host.nics.iter().map(|n| manual(n, None)).collect();
    for b in &host.bridges {
        let vlan_name = topo.vlan(b.vlan).map(|v| v.name.clone());
        blocks.push(manual(&b.port(), vlan_name));
        blocks.push(IfaceBlock {
            comment: None,
            name: b.name.clone(),
            stanzas: bridge_stanzas(b),
        });
    }
    Interfaces {
        source: &topo.source,
        blocks,
    }
}

/// `bridge_ports` goes in every stanza, as ifupdown's bridge hook reads whichever comes first.
fn bridge_stanzas(b: &Bridge) -> Vec<Stanza> {
    let ports = ("bridge_ports", b.port());
    if b.addresses.is_empty() {
        return vec![Stanza {
            family: "inet",
            method: "manual",
            options: vec![ports],
        }];
    }
    Family::ALL
        .into_iter()
        .filter_map(|f| b.address(f))
        .map(|a| {
            let mut options = vec![ports.clone(), ("address", a.net.to_string())];
            if let Some(gw) = a.gateway {
                options.push(("gateway", gw.to_string()));
            }
            Stanza {
                family: Family::of_net(&a.net).ifupdown(),
                method: "static",
                options,
            }
        })
        .collect()
}
