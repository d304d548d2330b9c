//! Hosts: NICs, bridges on NICs, bonds and their VLAN subinterfaces, interface names and
//! addresses. Bonds are in [`super::links`], MTUs and default routes in [`super::routes`].

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::values::{self, AGENT_NIC_PREFIXES, IFNAME_MAX, bad_hostname, bad_ifname, misplaced};
use super::{Checker, HostCx, list_or_none};
use crate::diag::{Code, Diag, did_you_mean};
use crate::model::{Address, Bridge, Family, Host, Nic, Vlan};
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
        // Every interface of the host (NICs, bonds, bridges, VLAN subinterfaces) shares one
        // namespace.
        let mut scope = HostScope::default();
        let mut cx = HostCx {
            model: Host {
                name: h.name.value.clone(),
                management_server: !h.management_server.is_empty(),
                agent: None,
                nics: Vec::new(),
                bonds: Vec::new(),
                bridges: Vec::new(),
            },
            name_span: h.name.span,
            incomplete_vlans: HashSet::new(),
            incomplete_anywhere: false,
            bridge_spans: HashMap::new(),
            gateway_spans: Vec::new(),
            link_spans: HashMap::new(),
        };
        for nic in &h.nics {
            if self.own_interface_name(&nic.name.value, nic.name.span, &mut scope.names) {
                let mtu = nic.mtu.as_ref().and_then(|t| self.mtu(t));
                cx.link_spans.insert(nic.name.value.clone(), nic.name.span);
                cx.model.nics.push(Nic {
                    name: nic.name.value.clone(),
                    mtu,
                });
            } else {
                // A rejected name (reported): bonds and bridges on it are not checked
                // against it, as on a bond with a mistake.
                cx.link_spans
                    .entry(nic.name.value.clone())
                    .or_insert(nic.name.span);
            }
        }
        for b in &h.bonds {
            if let Some(bond) = self.bond(&mut cx, b, &mut scope.names) {
                cx.model.bonds.push(bond);
            }
        }
        for b in &h.bridges {
            self.bridge(b, &mut cx, &mut scope);
        }
        self.default_routes(h, &mut cx);
        cx
    }

    /// One bridge of a host. The bridge is recorded even with an error (then no model comes
    /// out), and an error on it or a bridge left out marks its VLAN (or, if that is unknown,
    /// every VLAN) incomplete on the host: later checks report no follow-on errors about it.
    fn bridge(&mut self, b: &ast::Bridge, cx: &mut HostCx, scope: &mut HostScope) {
        let before = self.error_count();
        let bridges = cx.model.bridges.len();
        self.bridge_checked(b, cx, scope);
        let id = b.vlan.as_ref().and_then(|t| t.value.parse::<u16>().ok());
        let left_out = cx.model.bridges.len() == bridges;
        // On a VLAN whose prefix was rejected, its addresses could not be checked.
        let unchecked = id.is_some_and(|id| self.incomplete_vlans.contains(&id));
        if self.error_count() > before || left_out || unchecked {
            match id.filter(|id| self.vlans.contains_key(id)) {
                Some(id) => {
                    cx.incomplete_vlans.insert(id);
                }
                None => cx.incomplete_anywhere = true,
            }
        }
    }

    fn bridge_checked(&mut self, b: &ast::Bridge, cx: &mut HostCx, scope: &mut HostScope) {
        let vlan_span = b.vlan.as_ref().map_or(b.span, |t| t.span);
        if cx.bridge_spans.contains_key(&b.name.value) {
            // The same bridge written twice: one error; the copy is not checked further.
            self.interface_name(&b.name.value, b.name.span, &mut scope.names);
            return;
        }
        self.own_interface_name(&b.name.value, b.name.span, &mut scope.names);
        cx.bridge_spans
            .insert(b.name.value.clone(), (b.name.span, vlan_span));
        let vlan = b.vlan.as_ref().and_then(|t| self.vlan_ref(t).cloned());
        let link_ok = self.bridge_link(cx, b);
        if b.vlan.is_some() && vlan.is_none() {
            return; // an unknown VLAN: reported
        }
        if let Some(vlan) = &vlan
            && !self.one_bridge_per_vlan(&cx.model.name, vlan.id, vlan_span, scope)
        {
            // Its port `<link>.<vlan>` and its addresses would be checked against the
            // wrong VLAN: errors about them would repeat this one.
            return;
        }
        if link_ok {
            self.bridge_port(b, vlan.as_ref(), &mut scope.names, &mut scope.untagged);
            if let Some(vlan) = &vlan {
                self.vlan_mtu(cx, b, vlan);
            }
        }
        let addresses = match &vlan {
            Some(vlan) => self.bridge_addresses(cx, b, vlan),
            None => {
                self.addresses_without_vlan(b);
                Vec::new()
            }
        };
        cx.model.bridges.push(Bridge {
            name: b.name.value.clone(),
            vlan: vlan.as_ref().map(|v| v.id),
            tagged: !b.untagged,
            nic: b.nic.value.clone(),
            addresses,
            // An untagged bridge has its link's MTU (checked to be the VLAN's).
            mtu: vlan.as_ref().and_then(|v| v.mtu).filter(|_| !b.untagged),
        });
    }

    /// False (reported) if the host has a bridge on `vlan` already.
    fn one_bridge_per_vlan(
        &mut self,
        host: &str,
        vlan: u16,
        span: Span,
        scope: &mut HostScope,
    ) -> bool {
        if let Some(&first) = scope.vlans_used.get(&vlan) {
            let d = Diag::new(
                Code::DuplicateBridgeVlan,
                format!("host `{host}` has two bridges on VLAN {vlan}"),
            )
            .label(span, "second bridge on this VLAN")
            .label(first, "first bridge on this VLAN")
            .help("a host has one bridge per VLAN");
            self.emit(d);
            return false;
        }
        scope.vlans_used.insert(vlan, span);
        true
    }

    /// A bridge's link must be a NIC or bond of the host, and not a bond's slave.
    fn bridge_link(&mut self, cx: &HostCx, b: &ast::Bridge) -> bool {
        let host = &cx.model;
        let link = &b.nic.value;
        if host.bond(link).is_some() {
            return true;
        }
        if host.nic(link).is_none() && cx.link_spans.contains_key(link) {
            return false; // a NIC or bond with a mistake, reported with it
        }
        if host.nic(link).is_none() {
            let links: Vec<&str> = host
                .nics
                .iter()
                .map(|n| n.name.as_str())
                .chain(host.bonds.iter().map(|b| b.name.as_str()))
                .collect();
            let d = Diag::new(
                Code::UnknownNic,
                format!("host `{}` has no NIC or bond `{link}`", host.name),
            )
            .label(b.nic.span, "not a `nic` or `bond` of this host")
            .help(match did_you_mean(link, links.iter().copied()) {
                Some(m) => m,
                None => format!("declare it with `nic {link}` in the host block"),
            });
            self.emit(d);
            return false;
        }
        if let Some(bond) = host.bond_of(link) {
            let d = Diag::new(
                Code::BondSlave,
                format!("`{link}` is a slave of bond `{}`", bond.name),
            )
            .label(
                b.nic.span,
                "a bond's slave carries no bridge or VLAN of its own",
            )
            .label(cx.link_spans[&bond.name], "the bond")
            .help(format!("put the bridge on `{}`", bond.name));
            self.emit(d);
            return false;
        }
        true
    }

    /// The bridge's port: the `<link>.<vlan>` subinterface (its name must fit), or the link
    /// itself, which can be the port of one bridge only.
    fn bridge_port(
        &mut self,
        b: &ast::Bridge,
        vlan: Option<&Vlan>,
        names: &mut HashMap<String, Span>,
        untagged: &mut HashMap<String, Span>,
    ) {
        match vlan.filter(|_| !b.untagged) {
            Some(vlan) => {
                let port = format!("{}.{}", b.nic.value, vlan.id);
                let t = b.vlan.as_ref().expect("a tagged bridge has a VLAN");
                let span = Span::new(
                    t.span.start.min(b.nic.span.start),
                    b.nic.span.end.max(t.span.end),
                );
                if port.len() > IFNAME_MAX {
                    self.derived_name_too_long(&port, &b.nic.value, vlan.id, span);
                } else {
                    self.interface_name(&port, span, names);
                }
            }
            None => {
                if let Some(first) = untagged.insert(b.nic.value.clone(), b.nic.span) {
                    let d = Diag::repeated(
                        Code::DuplicateBridgePort,
                        format!("two bridges take the untagged frames of `{}`", b.nic.value),
                        "enslaved",
                        b.nic.span,
                        first,
                    )
                    .help(
                        "a link is the port of one bridge; put the other bridge on a VLAN \
                         (`vlan N on …`)",
                    );
                    self.emit(d);
                }
            }
        }
    }

    /// `<nic>.<vlan>` is derived, so the fix is a shorter NIC name.
    fn derived_name_too_long(&mut self, port: &str, nic: &str, vlan: u16, span: Span) {
        let room = IFNAME_MAX - (port.len() - nic.len());
        let d = Diag::new(
            Code::InterfaceNameTooLong,
            format!(
                "interface name `{port}` is {} bytes, Linux allows {IFNAME_MAX}",
                port.len()
            ),
        )
        .label(span, format!("`{nic}` and VLAN {vlan} make `{port}`"))
        .help(format!(
            "the name comes from the NIC's: rename `{nic}` to at most {room} bytes (a udev or \
             systemd .link rule) with a prefix CloudStack's agent recognises as a NIC ({}), \
             e.g. `eth{}`",
            AGENT_NIC_PREFIXES.join(", "),
            nic.bytes()
                .rfind(u8::is_ascii_digit)
                .map_or('0', char::from)
        ));
        self.emit(d);
    }

    /// Addresses need a VLAN's prefix.
    fn addresses_without_vlan(&mut self, b: &ast::Bridge) {
        if let Some(first) = b.addresses.first() {
            let d = Diag::new(
                Code::MissingSetting,
                format!("bridge `{}` has addresses but no VLAN", b.name.value),
            )
            .label(first.span, "whose prefix?")
            .label(b.span, "on no VLAN")
            .help(format!(
                "name the VLAN its untagged frames belong to: `bridge {} untagged vlan N on {}`",
                b.name.value, b.nic.value
            ));
            self.emit(d);
        }
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
            .help(format!(
                "use a shorter name (the kernel's IFNAMSIZ is 16 bytes with the NUL); a NIC \
                 renamed by a udev or .link rule must keep a prefix CloudStack's agent \
                 recognises ({})",
                AGENT_NIC_PREFIXES.join(", ")
            ));
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
        cx: &mut HostCx,
        b: &ast::Bridge,
        vlan: &Vlan,
    ) -> Vec<Address> {
        let host = cx.model.name.clone();
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
            self.host_addrs.insert(addr, (host.clone(), t.span));
            if subnet.gateway.is_some() {
                cx.gateway_spans.push((vlan.id, family, t.span));
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
        // The order of the lines does not matter: IPv4 first.
        out.sort_by_key(|(a, _)| Family::of_net(&a.net));
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
    /// Every interface of the host (NICs, bonds, bridges, VLAN subinterfaces): one namespace.
    names: HashMap<String, Span>,
    /// The VLANs that have a bridge, with the span of the first bridge's VLAN.
    vlans_used: HashMap<u16, Span>,
    /// The links whose untagged frames a bridge takes, with the span of that bridge's link.
    untagged: HashMap<String, Span>,
}

#[derive(Clone, Copy)]
pub(super) enum VlanAddressUse {
    Host,
    Vip,
}
