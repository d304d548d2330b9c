//! Virtual IPs: members, priorities, router ids, addresses and the health check.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::hosts::VlanAddressUse;
use super::values::{bad_identifier, number};
use super::{Checker, HostCx};
use crate::diag::{Code, Diag};
use crate::model::{Check, Family, Member, Preempt, Vip, Vlan};
use crate::source::Span;
use crate::syntax::ast::{self, Text};

impl Checker<'_> {
    pub(super) fn vips(&mut self, vips: &[ast::Vip], hosts: &[HostCx]) -> Vec<Vip> {
        let mut out = Vec::new();
        let mut router_ids: HashMap<(u16, u8), Span> = HashMap::new();
        let mut names: HashMap<String, Span> = HashMap::new();
        let mut vip_addrs: HashMap<IpAddr, Span> = HashMap::new();
        for v in vips {
            let name_ok = self.vip_name(&v.name, &mut names);
            self.required(&v.vlans, "vlan", &v.name);
            let vlan = self.single(&v.vlans, "vlan", |t| t.span).cloned();
            let vlan = vlan.and_then(|t| self.vlan_ref(&t).cloned());
            self.required(&v.router_ids, "router-id", &v.name);
            let router_id = self.single(&v.router_ids, "router-id", |t| t.span).cloned();
            let router_id = router_id.and_then(|t| {
                let n = number(&t, "virtual router id", 1, 255, Code::RouterIdRange);
                self.ok(n).map(|n| (n as u8, t.span))
            });
            self.required(&v.addresses, "address", &v.name);
            self.required(&v.members, "member", &v.name);
            let check = match self.single(&v.checks, "check", |c| c.span).cloned() {
                Some(c) => self.check_script(&c),
                None => Some(None),
            };
            let preempt = self.preempt(v);
            let addresses = vlan
                .as_ref()
                .map(|vlan| self.vip_addresses(v, vlan, &mut vip_addrs));
            // Members need an address of each family the VIP has — of its accepted addresses:
            // a rejected one is reported already.
            let families: Vec<Family> = addresses.iter().flatten().map(Family::of_net).collect();
            let members = self.members(v, hosts, vlan.as_ref().map(|l| (l, &families[..])));
            let (Some(vlan), Some(addresses)) = (vlan, addresses) else {
                continue;
            };
            if let Some((id, span)) = router_id
                && let Some(first) = router_ids.insert((vlan.id, id), span)
            {
                let d = Diag::repeated(
                    Code::DuplicateRouterId,
                    format!("virtual router id {id} is used twice on VLAN {}", vlan.id),
                    "used",
                    span,
                    first,
                )
                .help("VRRP tells routers on one VLAN apart by id: pick another id (1–255)");
                self.emit(d);
            }
            if let (true, Some((router_id, _)), Some(members), Some(check), Some(preempt)) =
                (name_ok, router_id, members, check, preempt)
            {
                out.push(Vip {
                    name: v.name.value.clone(),
                    vlan: vlan.id,
                    addresses,
                    router_id,
                    members,
                    check,
                    preempt,
                });
            }
        }
        out
    }

    pub(super) fn vip_name(&mut self, t: &Text, names: &mut HashMap<String, Span>) -> bool {
        if let Some(why) = bad_identifier(&t.value) {
            let d = Diag::new(
                Code::BadName,
                format!("`{}` is not a valid VIP name", t.value),
            )
            .label(t.span, "not a VIP name")
            .help(why);
            self.emit(d);
            return false;
        }
        if let Some(first) = names.insert(t.value.clone(), t.span) {
            let d = Diag::repeated(
                Code::DuplicateVip,
                format!("VIP `{}` is declared twice", t.value),
                "declared",
                t.span,
                first,
            )
            .help("VIP names become keepalived instance names and must be unique");
            self.emit(d);
            return false;
        }
        true
    }

    /// `nopreempt` or `preempt-delay N` (not both); `None`: a mistake (reported).
    pub(super) fn preempt(&mut self, v: &ast::Vip) -> Option<Preempt> {
        self.single(&v.nopreempt, "nopreempt", |s| *s);
        let delay = self
            .single(&v.preempt_delays, "preempt-delay", |t| t.span)
            .cloned();
        match (v.nopreempt.first(), delay) {
            (Some(no), Some(delay)) => {
                let d = Diag::new(
                    Code::DuplicateSetting,
                    format!(
                        "VIP `{}` has both `nopreempt` and `preempt-delay`",
                        v.name.value
                    ),
                )
                .label(delay.span, "a delay before preempting")
                .label(*no, "but never preempting")
                .help("keep one: `nopreempt` (never take the VIP back) or `preempt-delay SECONDS`");
                self.emit(d);
                None
            }
            (Some(_), None) => Some(Preempt::No),
            (None, Some(t)) => {
                let n = number(&t, "preempt delay", 0, 1000, Code::BadNumber);
                self.ok(n).map(|n| Preempt::Delay(n as u16))
            }
            (None, None) => Some(Preempt::Yes),
        }
    }

    /// `Some(None)`: no check; `None`: a bad one (already reported).
    pub(super) fn check_script(&mut self, c: &ast::Check) -> Option<Option<Check>> {
        let mut ok = true;
        let program = c.script.value.split_whitespace().next().unwrap_or("");
        if !program.starts_with('/') {
            let d = Diag::new(
                Code::RelativePath,
                format!("check script `{}` is not an absolute path", c.script.value),
            )
            .label(c.script.span, "keepalived runs scripts by absolute path")
            .help(
                "write the full path, e.g. `/usr/local/bin/check-mariadb` or \
                 `/usr/bin/mysqladmin ping`",
            );
            self.emit(d);
            ok = false;
        }
        let interval = match &c.interval {
            Some(t) => {
                let n = number(t, "check interval", 1, 3600, Code::BadNumber);
                self.ok(n).map(|n| n as u32)
            }
            None => Some(2),
        };
        match (ok, interval) {
            (true, Some(interval)) => Some(Some(Check {
                script: c.script.value.clone(),
                interval,
            })),
            _ => None,
        }
    }

    pub(super) fn members(
        &mut self,
        v: &ast::Vip,
        hosts: &[HostCx],
        vlan: Option<(&Vlan, &[Family])>,
    ) -> Option<Vec<Member>> {
        let mut out: Vec<(Member, Span)> = Vec::new();
        let mut ok = true;
        for m in &v.members {
            let priority = number(&m.priority, "priority", 1, 254, Code::PriorityRange);
            let priority = self.ok(priority).map(|p| p as u8);
            let Some(host) = hosts.iter().find(|h| h.model.name == m.host.value) else {
                self.unknown_host(&m.host, hosts);
                ok = false;
                continue;
            };
            if let Some((_, first)) = out.iter().find(|(o, _)| o.host == m.host.value) {
                let d = Diag::repeated(
                    Code::DuplicateMember,
                    format!("`{}` is a member twice", m.host.value),
                    "listed",
                    m.host.span,
                    *first,
                )
                .help("list each member once");
                self.emit(d);
                ok = false;
                continue;
            }
            if let Some((vlan, families)) = vlan {
                ok &= self.member_bridge(v, host, m, vlan, families);
            }
            let Some(priority) = priority else {
                ok = false;
                continue;
            };
            if let Some((other, _)) = out.iter().find(|(o, _)| o.priority == priority) {
                let d = Diag::new(
                    Code::DuplicatePriority,
                    format!(
                        "`{}` and `{}` have the same priority {priority}",
                        other.host, m.host.value
                    ),
                )
                .label(m.priority.span, "same priority as another member")
                .help(
                    "give each member its own priority so it is clear which one holds the address",
                );
                self.emit(d);
                ok = false;
            }
            if !host.model.management_server {
                let d = Diag::new(
                    Code::VipMemberNotManagementServer,
                    format!(
                        "VIP `{}` member `{}` is not a management server",
                        v.name.value, m.host.value
                    ),
                )
                .label(m.host.span, "not marked `management-server`")
                .help("the VIP fronts MariaDB on the management servers: is this the right host?");
                self.emit(d);
            }
            out.push((
                Member {
                    host: m.host.value.clone(),
                    priority,
                },
                m.host.span,
            ));
        }
        out.sort_by_key(|m| std::cmp::Reverse(m.0.priority));
        ok.then(|| out.into_iter().map(|(m, _)| m).collect())
    }

    /// A member needs a bridge on the VIP's VLAN, with an address of each of the VIP's
    /// `families`.
    pub(super) fn member_bridge(
        &mut self,
        v: &ast::Vip,
        host: &HostCx,
        m: &ast::Member,
        vlan: &Vlan,
        families: &[Family],
    ) -> bool {
        if host.incomplete_on(vlan.id) || self.incomplete_vlans.contains(&vlan.id) {
            return false;
        }
        let bridge = host.model.bridge_on(vlan.id);
        let missing = match bridge {
            None => Some(format!(
                "`{}` has no bridge on VLAN {}",
                m.host.value, vlan.id
            )),
            Some(b) => families.iter().find(|f| b.address(**f).is_none()).map(|f| {
                format!(
                    "`{}` has no {} address on `{}`",
                    m.host.value,
                    f.name(),
                    b.name
                )
            }),
        };
        let Some(msg) = missing else { return true };
        let d = Diag::new(Code::VipMemberWithoutBridge, format!("VIP `{}`: {msg}", v.name.value))
            .label(m.host.span, "cannot hold the VIP")
            .label(host.name_span, "host declared here")
            .help(format!(
                "keepalived needs a bridge on VLAN {} with an address of each VIP family (for unicast VRRP)",
                vlan.id
            ));
        self.emit(d);
        false
    }

    pub(super) fn vip_addresses(
        &mut self,
        v: &ast::Vip,
        vlan: &Vlan,
        seen: &mut HashMap<IpAddr, Span>,
    ) -> Vec<IpNet> {
        let mut out: Vec<(IpNet, Span)> = Vec::new();
        for t in &v.addresses {
            let Some(addr) = self.vlan_address(t, vlan, VlanAddressUse::Vip) else {
                continue;
            };
            let family = Family::of(&addr);
            if let Some((_, first)) = out.iter().find(|(a, _)| Family::of_net(a) == family) {
                let d = Diag::new(
                    Code::DuplicateFamily,
                    format!(
                        "a second {} address on VIP `{}`",
                        family.name(),
                        v.name.value
                    ),
                )
                .label(t.span, "second address of this family")
                .label(*first, "first one")
                .help("a VIP has at most one IPv4 and one IPv6 address");
                self.emit(d);
                continue;
            }
            if let Some((host, span)) = self.host_addrs.get(&addr) {
                let d = Diag::new(
                    Code::VipIsHostAddress,
                    format!("VIP {addr} is also an address of `{host}`"),
                )
                .label(t.span, "the virtual address")
                .label(*span, "the host's own address")
                .help("a VIP moves between hosts: it needs an address no host owns");
                self.emit(d);
                continue;
            }
            if let Some(first) = seen.insert(addr, t.span) {
                let d = Diag::repeated(
                    Code::DuplicateAddress,
                    format!("{addr} is used by two VIPs"),
                    "used",
                    t.span,
                    first,
                )
                .help("every VIP address must be unique");
                self.emit(d);
                continue;
            }
            let len = vlan.subnet(family).expect("checked").net.prefix_len();
            out.push((IpNet::new(addr, len).expect("VLAN prefix length"), t.span));
        }
        // The order of the lines does not matter: IPv4 first.
        out.sort_by_key(|(a, _)| Family::of_net(a));
        out.into_iter().map(|(a, _)| a).collect()
    }
}
