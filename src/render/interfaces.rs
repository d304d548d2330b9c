//! `/etc/network/interfaces` for ifupdown: loopback, NICs, bonds (ifenslave), `<link>.<vlan>`
//! subinterfaces and bridges with their addresses, MTUs and default routes.

use askama::Template;

use crate::model::{Bond, Bridge, Family, Host, Topology};

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
    let manual =
        |name: &str, comment: Option<String>, options: Vec<(&'static str, String)>| IfaceBlock {
            comment,
            name: name.to_string(),
            stanzas: vec![Stanza {
                family: "inet",
                method: "manual",
                options,
            }],
        };
    let mtu = |mtu: Option<u16>| mtu.map(|m| ("mtu", m.to_string()));
    let mut blocks: Vec<IfaceBlock> = host
        .nics
        .iter()
        .map(|n| manual(&n.name, None, mtu(n.mtu).into_iter().collect()))
        .collect();
    for bond in &host.bonds {
        blocks.push(manual(&bond.name, None, bond_options(bond)));
    }
    for b in &host.bridges {
        let vlan_name = b.vlan.and_then(|v| topo.vlan(v)).map(|v| v.name.clone());
        let comment = match b.tag() {
            Some(_) => {
                let port = manual(&b.port(), vlan_name, mtu(b.mtu).into_iter().collect());
                blocks.push(port);
                None
            }
            None => vlan_name,
        };
        blocks.push(IfaceBlock {
            comment,
            name: b.name.clone(),
            stanzas: bridge_stanzas(b),
        });
    }
    Interfaces {
        source: &topo.source,
        blocks,
    }
}

/// ifenslave's options: the slaves, the mode and the settings that apply to it.
fn bond_options(bond: &Bond) -> Vec<(&'static str, String)> {
    let mut options = vec![
        ("bond-slaves", bond.slaves.join(" ")),
        ("bond-mode", bond.mode.name().to_string()),
        ("bond-miimon", bond.miimon.to_string()),
    ];
    let optional = [
        ("bond-lacp-rate", &bond.lacp_rate),
        ("bond-xmit-hash-policy", &bond.xmit_hash_policy),
        ("bond-primary", &bond.primary),
    ];
    for (key, value) in optional {
        options.extend(value.clone().map(|v| (key, v)));
    }
    options.extend(bond.mtu.map(|m| ("mtu", m.to_string())));
    options
}

/// The bridge options go in every stanza, as ifupdown's bridge hook reads whichever comes
/// first: the port, and the KVM guide's no STP, no forward delay and no wait at boot
/// (without `bridge_maxwait 0` bridge-utils may wait 32 s for the port). A bridge without
/// an IPv6 gateway also gets no router advertisements: its first stanza creates it (down)
/// and turns accept_ra and autoconf off before the bridge hook brings it up, so a user
/// VLAN's routers cannot hand the host an address and a default route there.
fn bridge_stanzas(b: &Bridge) -> Vec<Stanza> {
    let mut common = vec![
        ("bridge_ports", b.port()),
        ("bridge_stp", "off".to_string()),
        ("bridge_fd", "0".to_string()),
        ("bridge_maxwait", "0".to_string()),
    ];
    common.extend(b.mtu.map(|m| ("mtu", m.to_string())));
    let v6_gateway = b.address(Family::V6).is_some_and(|a| a.gateway.is_some());
    let no_ra = (!v6_gateway).then(|| {
        [
            (
                "pre-up",
                format!("ip link add {} type bridge 2>/dev/null || true", b.name),
            ),
            (
                "pre-up",
                format!(
                    "sysctl -q -e -w net.ipv6.conf.{0}.accept_ra=0 net.ipv6.conf.{0}.autoconf=0",
                    b.name
                ),
            ),
        ]
    });
    let mut stanzas: Vec<Stanza> = if b.addresses.is_empty() {
        vec![Stanza {
            family: "inet",
            method: "manual",
            options: common.clone(),
        }]
    } else {
        Family::ALL
            .into_iter()
            .filter_map(|f| b.address(f))
            .map(|a| {
                let mut options = common.clone();
                options.push(("address", a.net.to_string()));
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
    };
    if let Some(no_ra) = no_ra {
        stanzas[0].options.extend(no_ra);
    }
    stanzas
}
