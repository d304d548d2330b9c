//! Hosts: NICs, bridges on VLAN subinterfaces, interface names and addresses.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use super::values::{self, IFNAME_MAX, bad_hostname, bad_ifname, misplaced};
use super::{Checker, HostCx, list_or_none};
use crate::diag::{Code, Diag, did_you_mean};
use crate::model::{Address, Bridge, Family, Host, Vlan};
use crate::source::Span;
use crate::syntax::ast::{self, Text};

impl Checker<'_> {
    pub(super) fn hosts(&mut self, hosts: &[ast::Host]) -> Vec<HostCx> {
        let mut names: HashMap<String, Span> = HashMap::new();
        let mut out: Vec<HostCx> = Vec::new();
        for h in hosts {
            if let Some(why) = bad_hostname(&h.name.value) {
                let d = Diag::new(
                    Code::BadName,
                    format!("`{}` is not a valid host name", h.name.value),
                )
                .label(h.name.span, "not a host name")
                .help(why);
                self.emit(d);
                continue;
            }
            if let Some(first) = names.get(&h.name.value) {
                let d = Diag::repeated(
                    Code::DuplicateHost,
                    format!("host `{}` is declared twice", h.name.value),
                    "declared",
                    h.name.span,
                    *first,
                )
                .help("merge the two blocks or rename one");
                self.emit(d);
                continue;
            }
            self.single(&h.management_server, "management-server", |s| *s);
            names.insert(h.name.value.clone(), h.name.span);
            let host = self.host(h);
            out.push(host);
        }
        out
    }

    pub(super) fn host(&mut self, h: &ast::Host) -> HostCx {
        let before = self.error_count();
        let mut scope = HostScope::default();
        for nic in &h.nics {
            if self.own_interface_name(&nic.value, nic.span, &mut scope.names) {
                scope.nics.push(nic.value.clone());
            }
        }
        let mut cx = HostCx {
            model: Host {
                name: h.name.value.clone(),
                management_server: !h.management_server.is_empty(),
                agent: None,
                nics: scope.nics.clone(),
                bridges: Vec::new(),
            },
            name_span: h.name.span,
            incomplete: false,
            bridge_spans: HashMap::new(),
        };
        for b in &h.bridges {
            self.bridge(h, b, &mut cx, &mut scope);
        }
        cx.incomplete = self.error_count() > before || scope.on_incomplete_vlan;
        cx
    }

    /// One bridge of a host. The bridge is recorded even with an error (then no model comes
    /// out): later checks see it and report no follow-on errors about it.
    fn bridge(&mut self, h: &ast::Host, b: &ast::Bridge, cx: &mut HostCx, scope: &mut HostScope) {
        let spans = (b.name.span, b.vlan.span);
        if cx.bridge_spans.contains_key(&b.name.value) {
            // The same bridge written twice: one error; the copy is not checked further.
            self.interface_name(&b.name.value, b.name.span, &mut scope.names);
            return;
        }
        self.own_interface_name(&b.name.value, b.name.span, &mut scope.names);
        cx.bridge_spans.insert(b.name.value.clone(), spans);
        let vlan = self.vlan_ref(&b.vlan).cloned();
        let nic_ok = scope.nics.contains(&b.nic.value);
        if !nic_ok {
            let mut d = Diag::new(
                Code::UnknownNic,
                format!("host `{}` has no NIC `{}`", h.name.value, b.nic.value),
            )
            .label(b.nic.span, "not a `nic` of this host");
            d = d.help(
                match did_you_mean(&b.nic.value, scope.nics.iter().map(String::as_str)) {
                    Some(m) => m,
                    None => format!("declare it with `nic {}` in the host block", b.nic.value),
                },
            );
            self.emit(d);
        }
        let Some(vlan) = vlan else { return };
        if let Some(&first) = scope.vlans_used.get(&vlan.id) {
            let d = Diag::new(
                Code::DuplicateBridgeVlan,
                format!(
                    "host `{}` has two bridges on VLAN {}",
                    h.name.value, vlan.id
                ),
            )
            .label(b.vlan.span, "second bridge on this VLAN")
            .label(first, "first bridge on this VLAN")
            .help("a host has one bridge per VLAN");
            self.emit(d);
            // Its port `<nic>.<vlan>` and its addresses would be checked against the wrong
            // VLAN: errors about them would repeat this one.
            return;
        }
        scope.vlans_used.insert(vlan.id, b.vlan.span);
        scope.on_incomplete_vlan |= self.incomplete_vlans.contains(&vlan.id);
        if nic_ok {
            let port = format!("{}.{}", b.nic.value, vlan.id);
            let span = Span::new(
                b.vlan.span.start.min(b.nic.span.start),
                b.nic.span.end.max(b.vlan.span.end),
            );
            self.interface_name(&port, span, &mut scope.names);
        }
        let addresses = self.bridge_addresses(&h.name.value, b, &vlan, &mut scope.gateways);
        cx.model.bridges.push(Bridge {
            name: b.name.value.clone(),
            vlan: vlan.id,
            nic: b.nic.value.clone(),
            addresses,
        });
    }

    /// Checks a NIC or bridge name as written and records it; false if it is unusable.
    pub(super) fn own_interface_name(
        &mut self,
        name: &str,
        span: Span,
        names: &mut HashMap<String, Span>,
    ) -> bool {
        if let Some(why) = bad_ifname(name) {
            let d = Diag::new(
                Code::BadName,
                format!("`{name}` is not a valid interface name"),
            )
            .label(span, "not an interface name")
            .help(why);
            self.emit(d);
            return false;
        }
        self.interface_name(name, span, names)
    }

    /// Checks any interface name (also derived ones) and records it; false if it is unusable.
    pub(super) fn interface_name(
        &mut self,
        name: &str,
        span: Span,
        names: &mut HashMap<String, Span>,
    ) -> bool {
        if name.len() > IFNAME_MAX {
            let d = Diag::new(
                Code::InterfaceNameTooLong,
                format!(
                    "interface name `{name}` is {} bytes, Linux allows {IFNAME_MAX}",
                    name.len()
                ),
            )
            .label(span, format!("`{name}` is too long"))
            .help("use a shorter name (the kernel's IFNAMSIZ is 16 bytes with the NUL)");
            self.emit(d);
            return false;
        }
        if let Some(first) = names.get(name) {
            let d = Diag::repeated(
                Code::DuplicateInterface,
                format!("interface `{name}` is declared twice on this host"),
                "declared",
                span,
                *first,
            )
            .help("each NIC, bridge and VLAN subinterface of a host needs its own name");
            self.emit(d);
            return false;
        }
        names.insert(name.to_string(), span);
        true
    }

    pub(super) fn bridge_addresses(
        &mut self,
        host: &str,
        b: &ast::Bridge,
        vlan: &Vlan,
        gateways: &mut BTreeMap<Family, Span>,
    ) -> Vec<Address> {
        let mut out: Vec<(Address, Span)> = Vec::new();
        for t in &b.addresses {
            let Some(addr) = self.vlan_address(t, vlan, VlanAddressUse::Host) else {
                continue;
            };
            let family = Family::of(&addr);
            let subnet = vlan
                .subnet(family)
                .expect("vlan_address checked the family");
            if let Some((_, first)) = out.iter().find(|(a, _)| Family::of_net(&a.net) == family) {
                let d = Diag::new(
                    Code::DuplicateFamily,
                    format!("a second {} address on `{}`", family.name(), b.name.value),
                )
                .label(t.span, "second address of this family")
                .label(*first, "first one")
                .help("a bridge has at most one IPv4 and one IPv6 address");
                self.emit(d);
                continue;
            }
            if let Some((other, first)) = self.host_addrs.get(&addr) {
                let d = Diag::new(Code::DuplicateAddress, format!("{addr} is used twice"))
                    .label(t.span, format!("on `{host}` here"))
                    .label(*first, format!("already on `{other}` here"))
                    .help("every host address must be unique");
                self.emit(d);
                continue;
            }
            self.host_addrs.insert(addr, (host.to_string(), t.span));
            if subnet.gateway.is_some()
                && let Some(first) = gateways.insert(family, t.span)
            {
                let d = Diag::new(
                    Code::DuplicateDefaultGateway,
                    format!("host `{host}` gets two {} default gateways", family.name()),
                )
                .label(t.span, format!("VLAN {} has a gateway, so this address routes by default", vlan.id))
                .label(first, "and so does this one")
                .help("a host has one default route per family: drop the gateway from one VLAN's prefix");
                self.emit(d);
            }
            let net =
                IpNet::new(addr, subnet.net.prefix_len()).expect("the VLAN's prefix length fits");
            out.push((
                Address {
                    net,
                    gateway: subnet.gateway,
                },
                t.span,
            ));
        }
        out.into_iter().map(|(a, _)| a).collect()
    }

    /// An address that must lie in its VLAN's prefix (a host address or a VIP).
    pub(super) fn vlan_address(
        &mut self,
        t: &Text,
        vlan: &Vlan,
        usage: VlanAddressUse,
    ) -> Option<IpAddr> {
        let addr = self.ok(values::address(t))?;
        let family = Family::of(&addr);
        let Some(subnet) = vlan.subnet(family) else {
            if self.incomplete_vlans.contains(&vlan.id) {
                return None;
            }
            let have: Vec<String> = vlan.subnets.iter().map(|s| s.net.to_string()).collect();
            let d = Diag::new(
                Code::AddressFamily,
                format!(
                    "{addr} is {} but VLAN {} has no {} prefix",
                    family.name(),
                    vlan.id,
                    family.name()
                ),
            )
            .label(t.span, "no prefix of this family on the VLAN")
            .help(format!(
                "VLAN {} has: {}; add a `prefix` of this family to it",
                vlan.id,
                list_or_none(&have)
            ));
            self.emit(d);
            return None;
        };
        if let Some((code, msg)) = misplaced(addr, subnet) {
            let code = match (code, usage) {
                (Code::AddressOutsidePrefix, VlanAddressUse::Vip) => Code::VipOutsideVlan,
                (code, _) => code,
            };
            let d = Diag::new(code, msg)
                .label(
                    t.span,
                    format!("not a usable host address of VLAN {}", vlan.id),
                )
                .help(format!("pick a free host address in {}", subnet.net));
            self.emit(d);
            return None;
        }
        Some(addr)
    }
}

/// What the interfaces of one host share while they are checked.
#[derive(Default)]
pub(super) struct HostScope {
    /// Every interface of the host (NICs, bridges, VLAN subinterfaces): one namespace.
    names: HashMap<String, Span>,
    /// The NICs with a usable name.
    nics: Vec<String>,
    /// The address that gives the host its default route, per family.
    gateways: BTreeMap<Family, Span>,
    /// The VLANs that have a bridge, with the span of the first bridge's VLAN.
    vlans_used: HashMap<u16, Span>,
    /// A bridge is on a VLAN whose prefix was rejected: its addresses could not be checked,
    /// so checks of what the host lacks would only repeat that error.
    on_incomplete_vlan: bool,
}

#[derive(Clone, Copy)]
pub(super) enum VlanAddressUse {
    Host,
    Vip,
}
