//! `/etc/keepalived/keepalived.conf`: one VRRP instance per VIP and address family.

use askama::Template;

use crate::model::{Family, Host, Topology};

#[derive(Template)]
#[template(path = "keepalived.conf", escape = "none")]
pub(super) struct Keepalived<'a> {
    source: &'a str,
    host: &'a str,
    scripts: Vec<Script>,
    instances: Vec<Instance>,
}

struct Script {
    name: String,
    path: String,
    interval: u32,
}

struct Instance {
    name: String,
    state: &'static str,
    interface: String,
    router_id: u8,
    priority: u8,
    source: String,
    peers: Vec<String>,
    address: ipnet::IpNet,
    track: Option<String>,
}

pub(super) fn keepalived<'a>(topo: &'a Topology, host: &'a Host) -> Keepalived<'a> {
    let mut scripts = Vec::new();
    let mut instances = Vec::new();
    for vip in topo.vips_of(&host.name) {
        let track = vip.check.as_ref().map(|c| {
            let name = format!("check_{}", vip.name);
            scripts.push(Script {
                name: name.clone(),
                path: c.script.clone(),
                interval: c.interval,
            });
            name
        });
        let me = vip.member(&host.name).expect("vips_of");
        let bridge = host
            .bridge_on(vip.vlan)
            .expect("checked: members have a bridge on the VLAN");
        for address in &vip.addresses {
            let family = Family::of_net(address);
            let source = topo
                .vrrp_address(vip, &host.name, family)
                .expect("checked: members have an address of each VIP family");
            instances.push(Instance {
                name: format!("{}_{}", vip.name, family.suffix()),
                state: vip.initial_state(&host.name).keyword(),
                interface: bridge.name.clone(),
                router_id: vip.router_id,
                priority: me.priority,
                source: source.to_string(),
                peers: topo
                    .vrrp_peers(vip, &host.name, family)
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                address: *address,
                track: track.clone(),
            });
        }
    }
    Keepalived {
        source: &topo.source,
        host: &host.name,
        scripts,
        instances,
    }
}
