//! `/etc/keepalived/keepalived.conf`: one VRRP instance per VIP and address family, the
//! two families of a VIP in one sync group (they fail over together).

use askama::Template;

use crate::model::{Family, Host, Preempt, Topology};

#[derive(Template)]
#[template(path = "keepalived.conf", escape = "none")]
pub(super) struct Keepalived<'a> {
    source: &'a str,
    host: &'a str,
    scripts: Vec<Script>,
    /// One per VIP with both families: its instances move together.
    groups: Vec<(String, Vec<String>)>,
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
    /// The `virtual_ipaddress` line: an IPv6 VIP is never preferred as a source address
    /// (`preferred_lft 0`), so the host's own traffic keeps its own address across failover.
    address: String,
    /// `nopreempt` or `preempt_delay N`.
    preempt: Option<String>,
    track: Option<String>,
}

pub(super) fn keepalived<'a>(topo: &'a Topology, host: &'a Host) -> Keepalived<'a> {
    let mut scripts = Vec::new();
    let mut instances: Vec<Instance> = Vec::new();
    let mut groups = Vec::new();
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
        let preempt = match vip.preempt {
            Preempt::Yes => None,
            Preempt::Delay(s) => Some(format!("preempt_delay {s}")),
            Preempt::No => Some("nopreempt".to_string()),
        };
        let first = instances.len();
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
                address: match family {
                    Family::V4 => format!("{address} dev {}", bridge.name),
                    Family::V6 => format!("{address} dev {} preferred_lft 0", bridge.name),
                },
                preempt: preempt.clone(),
                track: track.clone(),
            });
        }
        if instances.len() - first > 1 {
            let names = instances[first..].iter().map(|i| i.name.clone()).collect();
            groups.push((vip.name.clone(), names));
        }
    }
    Keepalived {
        source: &topo.source,
        host: &host.name,
        scripts,
        groups,
        instances,
    }
}
