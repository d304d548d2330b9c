//! CloudStack agents: the site's defaults, each agent's devices, its management servers
//! and the path to them.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::values::{AGENT_NIC_PREFIXES, IFNAME_MAX, number};
use super::{Checker, Defaults, HostCx, list_or_none};
use crate::diag::{Code, Diag, did_you_mean};
use crate::model::{Agent, BridgeType, Device, Family, Host, Role, Vlan};
use crate::source::Span;
use crate::syntax::ast::{self, Text};

impl Checker<'_> {
    pub(super) fn agent_defaults(&mut self, agents: &[ast::AgentDefaults]) -> Defaults {
        let mut out = Defaults {
            port: 8250,
            bridge_type: BridgeType::Native,
            connect: Family::V4,
            devices: BTreeMap::from([
                (Device::Private, (Role::Management, None)),
                (Device::Public, (Role::Public, None)),
                (Device::Guest, (Role::Guest, None)),
                (Device::Storage, (Role::Storage, None)),
            ]),
            servers: None,
        };
        let Some(a) = self.single(agents, "agent", |a| a.span) else {
            return out;
        };
        out.servers = self.single(&a.servers, "servers", |s| s[0].1.span).cloned();
        if let Some(p) = self.single(&a.ports, "port", |p| p.span).cloned() {
            let port = number(&p, "port", 1, 65535, Code::PortRange);
            out.port = self.ok(port).map_or(out.port, |p| p as u16);
        }
        if let Some(t) = self
            .single(&a.bridge_types, "bridge-type", |t| t.span)
            .cloned()
        {
            match t.value.as_str() {
                "native" => out.bridge_type = BridgeType::Native,
                "openvswitch" => {
                    let d = Diag::new(
                        Code::UnknownSetting,
                        "netc does not build Open vSwitch bridges",
                    )
                    .label(
                        t.span,
                        "the interfaces file has Linux bridges (`bridge_ports`)",
                    )
                    .help("write `bridge-type native`: the agent must use the bridges netc builds");
                    self.emit(d);
                }
                _ => self.unknown_setting(&t, "bridge type", &["native"]),
            }
        }
        if let Some(t) = self.single(&a.connects, "connect", |t| t.span).cloned() {
            match t.value.as_str() {
                "ipv4" => out.connect = Family::V4,
                "ipv6" => out.connect = Family::V6,
                _ => self.unknown_setting(&t, "address family", &["ipv4", "ipv6"]),
            }
        }
        for device in Device::ALL {
            let set: Vec<_> = a
                .devices
                .iter()
                .filter(|(d, _)| d.value == device)
                .collect();
            let Some((_, role)) = self
                .single(&set, device.keyword(), |(d, _)| d.span)
                .copied()
            else {
                continue;
            };
            match Role::from_name(&role.value) {
                Some(r) => {
                    out.devices.insert(device, (r, Some(role.span)));
                }
                None => self.unknown_role(role),
            }
        }
        out
    }

    pub(super) fn unknown_setting(&mut self, t: &Text, what: &str, choices: &[&str]) {
        let d = Diag::new(
            Code::UnknownSetting,
            format!("`{}` is not a known {what}", t.value),
        )
        .label(t.span, format!("expected {}", choices.join(" or ")))
        .help(
            did_you_mean(&t.value, choices.iter().copied())
                .unwrap_or_else(|| format!("write one of: {}", choices.join(", "))),
        );
        self.emit(d);
    }

    /// Resolves each agent's device keys and its management servers.
    pub(super) fn agents(
        &mut self,
        ast_hosts: &[ast::Host],
        hosts: &mut [HostCx],
        defaults: &Defaults,
        vips: &[ast::Vip],
    ) {
        let (private_role, _) = defaults.devices[&Device::Private];
        let mgmt_vlan = self.vlan_with_role(private_role).map(|v| v.id);
        let any_agent = ast_hosts.iter().any(|h| !h.agent.is_empty());
        let servers = match (mgmt_vlan, &defaults.servers) {
            (Some(vlan), Some(list)) if any_agent => {
                self.stated_servers(hosts, vlan, defaults.connect, list, vips)
            }
            (Some(vlan), None) if any_agent => {
                self.management_servers(hosts, vlan, defaults.connect)
            }
            _ => Vec::new(),
        };
        let first_agent = ast_hosts
            .iter()
            .find_map(|h| h.agent.first().map(|a| (a.span, &h.name.value)));
        if let Some((span, name)) = first_agent
            && !hosts.iter().any(|h| h.model.management_server)
        {
            let d = Diag::new(
                Code::NoManagementServer,
                "there are agents but no management server",
            )
            .label(span, format!("`{name}` is an agent"))
            .help("mark the hosts running cloudstack-management with `management-server`");
            self.emit(d);
        }
        let index: HashMap<Span, usize> = hosts
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name_span, i))
            .collect();
        for h in ast_hosts {
            let Some(cx) = index.get(&h.name.span).map(|&i| &mut hosts[i]) else {
                continue;
            };
            let Some(stmt) = self.single(&h.agent, "agent", |a| a.span).cloned() else {
                continue;
            };
            let devices = self.devices(cx, &stmt, defaults);
            if let Some(vlan) = mgmt_vlan {
                self.management_path(cx, vlan, defaults.connect, stmt.span);
            }
            let (Some(private), Some(public), Some(guest)) = (
                devices.get(&Device::Private),
                devices.get(&Device::Public),
                devices.get(&Device::Guest),
            ) else {
                continue;
            };
            self.guest_bridge_names(cx, &[(Device::Public, public), (Device::Guest, guest)]);
            cx.model.agent = Some(Agent {
                servers: servers.clone(),
                port: defaults.port,
                private_device: private.clone(),
                public_device: public.clone(),
                guest_device: guest.clone(),
                storage_device: devices.get(&Device::Storage).cloned(),
                bridge_type: defaults.bridge_type,
            });
        }
    }

    /// The bridge of each device key of one agent: named in its `agent { … }`, or found by
    /// the device's VLAN role.
    fn devices(
        &mut self,
        cx: &HostCx,
        stmt: &ast::AgentHost,
        defaults: &Defaults,
    ) -> BTreeMap<Device, String> {
        let mut devices: BTreeMap<Device, String> = BTreeMap::new();
        for device in Device::ALL {
            let set: Vec<_> = stmt
                .devices
                .iter()
                .filter(|(d, _)| d.value == device)
                .collect();
            if let Some((_, bridge)) = self
                .single(&set, device.keyword(), |(d, _)| d.span)
                .copied()
            {
                if cx.bridge_spans.contains_key(&bridge.value) {
                    devices.insert(device, bridge.value.clone());
                } else {
                    self.unknown_bridge(&cx.model, bridge);
                }
                continue;
            }
            let (role, role_span) = defaults.devices[&device];
            let Some(vlan) = self.vlan_with_role(role).map(|v| v.id) else {
                // Like the agent itself, an unmapped public/guest device falls back to the
                // private one; an explicit mapping must resolve.
                let fallback = devices.get(&Device::Private).cloned();
                match fallback {
                    // storage.network.device is optional: without a storage VLAN, no key.
                    _ if role_span.is_none() && device == Device::Storage => {}
                    Some(private) if role_span.is_none() && device != Device::Private => {
                        devices.insert(device, private);
                    }
                    // The private device failed: that is reported already.
                    None if role_span.is_none() && device != Device::Private => {}
                    _ => self.role_without_vlan(device, role, role_span, stmt.span),
                }
                continue;
            };
            match cx.model.bridge_on(vlan) {
                Some(b) => {
                    devices.insert(device, b.name.clone());
                }
                None if cx.incomplete_on(vlan) => {}
                // An agent off the storage VLAN sends storage traffic the private way.
                None if device == Device::Storage && role_span.is_none() => {}
                None => self.agent_missing_bridge(cx, stmt, device, (vlan, role, role_span)),
            }
        }
        devices
    }

    fn agent_missing_bridge(
        &mut self,
        cx: &HostCx,
        stmt: &ast::AgentHost,
        device: Device,
        (vlan, role, role_span): (u16, Role, Option<Span>),
    ) {
        let mut d = Diag::new(
            Code::AgentMissingBridge,
            format!(
                "agent `{}` has no bridge on VLAN {vlan} for `{}.network.device`",
                cx.model.name,
                device.keyword()
            ),
        )
        .label(
            stmt.span,
            format!(
                "`{}` is VLAN {vlan}'s role `{}`",
                device.keyword(),
                role.name()
            ),
        );
        if let Some(s) = role_span {
            d = d.label(s, "mapped here");
        }
        d = d.help(format!(
            "add a bridge on VLAN {vlan} to `{}`, or name one with `agent {{ {} <bridge> }}`",
            cx.model.name,
            device.keyword()
        ));
        self.emit(d);
    }

    pub(super) fn vlan_with_role(&self, role: Role) -> Option<&Vlan> {
        self.vlans
            .values()
            .map(|(v, _)| v)
            .find(|v| v.role == Some(role))
    }

    pub(super) fn unknown_bridge(&mut self, host: &Host, t: &Text) {
        let names: Vec<&str> = host.bridges.iter().map(|b| b.name.as_str()).collect();
        let d = Diag::new(
            Code::UnknownBridge,
            format!("host `{}` has no bridge `{}`", host.name, t.value),
        )
        .label(t.span, "not a bridge of this host")
        .help(
            did_you_mean(&t.value, names.iter().copied())
                .unwrap_or_else(|| format!("its bridges: {}", list_or_none(&names))),
        );
        self.emit(d);
    }

    pub(super) fn role_without_vlan(
        &mut self,
        device: Device,
        role: Role,
        role_span: Option<Span>,
        agent: Span,
    ) {
        let span = role_span.unwrap_or(agent);
        let how = if role_span.is_some() {
            "mapped"
        } else {
            "by default mapped"
        };
        let d = Diag::new(
            Code::NoVlanWithRole,
            format!("no VLAN has role `{}`", role.name()),
        )
        .label(
            span,
            format!("`{}` is {how} to role `{}`", device.keyword(), role.name()),
        )
        .help(format!(
            "give a VLAN `role {}`, or map `{}` to another role in the site's `agent` block",
            role.name(),
            device.keyword()
        ));
        self.emit(d);
    }

    /// The management servers' addresses agents connect to, in topology order.
    pub(super) fn management_servers(
        &mut self,
        hosts: &[HostCx],
        vlan: u16,
        family: Family,
    ) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for cx in hosts.iter().filter(|c| c.model.management_server) {
            match cx.model.bridge_on(vlan).and_then(|b| b.address(family)) {
                Some(a) => out.push(a.net.addr()),
                None if cx.incomplete_on(vlan) => {}
                None => {
                    let d = Diag::new(
                        Code::NoManagementPath,
                        format!("management server `{}` has no {} address on VLAN {vlan}", cx.model.name, family.name()),
                    )
                    .label(cx.name_span, "agents could not reach this server")
                    .help(format!(
                        "add a bridge with an {} address on VLAN {vlan}, or set `connect` in the site's `agent` block",
                        family.name()
                    ));
                    self.emit(d);
                }
            }
        }
        out
    }

    /// An agent reaches the servers on the management VLAN, or through its default route.
    pub(super) fn management_path(&mut self, cx: &HostCx, vlan: u16, family: Family, agent: Span) {
        // A rejected bridge or address on the VLAN, or on one with a gateway of the family
        // (a default route), may be the path.
        let gateway = |v: &u16| {
            self.vlans
                .get(v)
                .and_then(|(vlan, _)| vlan.subnet(family))
                .is_some_and(|s| s.gateway.is_some())
        };
        if cx.incomplete_on(vlan) || cx.incomplete_vlans.iter().any(gateway) {
            return;
        }
        let direct = cx
            .model
            .bridge_on(vlan)
            .and_then(|b| b.address(family))
            .is_some();
        let routed = cx
            .model
            .bridges
            .iter()
            .filter_map(|b| b.address(family))
            .any(|a| a.gateway.is_some());
        if !direct && !routed {
            let d = Diag::new(
                Code::NoManagementPath,
                format!(
                    "agent `{}` cannot reach the management servers",
                    cx.model.name
                ),
            )
            .label(
                agent,
                format!(
                    "has no {} address on VLAN {vlan} and no {} default route",
                    family.name(),
                    family.name()
                ),
            )
            .help(format!(
                "give `{}` an {} address on VLAN {vlan}",
                cx.model.name,
                family.name()
            ));
            self.emit(d);
        }
    }

    /// CloudStack names the bridges of the VLANs it tags on a public or guest device
    /// `br<nic>-<vlan>`, after the NIC or bond under the device's bridge: warn when that
    /// cannot fit for VLAN 4094, naming the traffic and the bridge it is about.
    pub(super) fn guest_bridge_names(&mut self, cx: &HostCx, devices: &[(Device, &String)]) {
        let mut warned: Vec<&str> = Vec::new();
        for (_, name) in devices {
            let Some(b) = cx.model.bridges.iter().find(|b| &&b.name == name) else {
                continue;
            };
            let longest = format!("br{}-4094", b.nic);
            if longest.len() <= IFNAME_MAX || warned.contains(&b.nic.as_str()) {
                continue;
            }
            warned.push(&b.nic);
            // Every device key whose bridge is on this NIC.
            let on_nic: Vec<Device> = devices
                .iter()
                .filter(|(_, n)| {
                    cx.model
                        .bridges
                        .iter()
                        .any(|x| &&x.name == n && x.nic == b.nic)
                })
                .map(|(d, _)| *d)
                .collect();
            let traffic: Vec<&str> = on_nic.iter().map(|d| d.keyword()).collect();
            let keys: Vec<String> = on_nic
                .iter()
                .map(|d| format!("{}.network.device", d.keyword()))
                .collect();
            let span = cx.bridge_spans[&b.name].0;
            let room = IFNAME_MAX - "br-4094".len();
            let d = Diag::new(
                Code::GuestBridgeNameTooLong,
                format!(
                    "CloudStack's {} VLAN bridges on `{}` may not fit in 15 bytes",
                    traffic.join(" and "),
                    b.nic
                ),
            )
            .label(
                span,
                format!(
                    "{} traffic of `{}` ({}) rides on `{}`, on `{}`",
                    traffic.join(" and "),
                    cx.model.name,
                    keys.join(", "),
                    b.name,
                    b.nic
                ),
            )
            .help(format!(
                "CloudStack names the bridges of the VLANs it tags `br<nic>-<vlan>`: `{longest}` \
                 is {} bytes; rename `{}` to at most {room} bytes (a udev or .link rule) keeping \
                 a prefix the agent recognises ({})",
                longest.len(),
                b.nic,
                AGENT_NIC_PREFIXES.join(", ")
            ));
            self.emit(d);
        }
    }

    /// `servers …`: host= in the order stated, each a management server or a VIP.
    pub(super) fn stated_servers(
        &mut self,
        hosts: &[HostCx],
        vlan: u16,
        family: Family,
        list: &[(bool, Text)],
        vips: &[ast::Vip],
    ) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for (is_vip, t) in list {
            let addr = if *is_vip {
                self.server_vip(t, family, vips)
            } else {
                self.server_host(t, hosts, vlan, family)
            };
            match addr {
                Some(a) if out.contains(&a) => {
                    let d = Diag::new(Code::DuplicateMember, format!("{a} is listed twice"))
                        .label(t.span, "already in `servers`")
                        .help("list each server once");
                    self.emit(d);
                }
                Some(a) => out.push(a),
                None => {}
            }
        }
        out
    }

    fn server_vip(&mut self, t: &Text, family: Family, vips: &[ast::Vip]) -> Option<IpAddr> {
        let Some(vip) = vips.iter().find(|v| v.name.value == t.value) else {
            let names = vips.iter().map(|v| v.name.value.as_str());
            let d = Diag::new(Code::UnknownHost, format!("there is no VIP `{}`", t.value))
                .label(t.span, "not a VIP of this topology")
                .help(did_you_mean(&t.value, names).unwrap_or_else(|| {
                    "`vip NAME` names a `vip` block; a management server is named alone".into()
                }));
            self.emit(d);
            return None;
        };
        let parsed: Vec<Option<IpAddr>> =
            vip.addresses.iter().map(|a| a.value.parse().ok()).collect();
        let addr = parsed
            .iter()
            .flatten()
            .copied()
            .find(|a| Family::of(a) == family);
        // An address that does not parse is reported with the VIP: it may be the one.
        let rejected = parsed.iter().any(Option::is_none);
        if addr.is_none() && !vip.addresses.is_empty() && !rejected {
            let d = Diag::new(
                Code::NoManagementPath,
                format!("VIP `{}` has no {} address", t.value, family.name()),
            )
            .label(t.span, format!("agents connect over {}", family.name()))
            .help("give the VIP an address of that family, or set `connect`");
            self.emit(d);
        }
        addr
    }

    fn server_host(
        &mut self,
        t: &Text,
        hosts: &[HostCx],
        vlan: u16,
        family: Family,
    ) -> Option<IpAddr> {
        let Some(cx) = hosts.iter().find(|h| h.model.name == t.value) else {
            self.unknown_host(t, hosts);
            return None;
        };
        if !cx.model.management_server {
            let d = Diag::new(
                Code::NoManagementServer,
                format!("`{}` is not a management server", t.value),
            )
            .label(t.span, "not marked `management-server`")
            .help(format!(
                "mark `{}` `management-server`, or name a VIP with `vip NAME`",
                t.value
            ));
            self.emit(d);
            return None;
        }
        let found = self.management_servers(std::slice::from_ref(cx), vlan, family);
        found.first().copied()
    }
}
