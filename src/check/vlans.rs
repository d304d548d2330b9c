//! VLANs: ids, names, roles, prefixes and gateways.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::Checker;
use super::values::{self, misplaced, number};
use crate::diag::{Code, Diag, did_you_mean};
use crate::model::{Family, Role, Subnet, Vlan};
use crate::source::Span;
use crate::syntax::ast::{self, Text};

impl Checker<'_> {
    pub(super) fn vlans(&mut self, vlans: &[ast::Vlan]) -> Vec<Vlan> {
        let mut roles: HashMap<Role, Span> = HashMap::new();
        let mut order = Vec::new();
        for v in vlans {
            let id = number(&v.id, "VLAN id", 1, 4094, Code::VlanIdRange);
            let Some(id) = self.ok(id).map(|n| n as u16) else {
                self.broken_vlans.insert(v.id.value.clone());
                continue;
            };
            if let Some((_, first)) = self.vlans.get(&id) {
                let d = Diag::repeated(
                    Code::DuplicateVlan,
                    format!("VLAN {id} is declared twice"),
                    "declared",
                    v.id.span,
                    *first,
                )
                .help("merge the two blocks or change one id");
                self.emit(d);
                continue;
            }
            let role = self.single(&v.roles, "role", |r| r.span).cloned();
            let role = role.and_then(|r| self.role(&r, &mut roles));
            let before = self.error_count();
            let subnets = self.subnets(&v.prefixes);
            if self.error_count() > before {
                self.incomplete_vlans.insert(id);
            }
            let mtu = self.single(&v.mtus, "mtu", |t| t.span).cloned();
            let mtu = mtu.and_then(|t| self.mtu(&t));
            let vlan = Vlan {
                id,
                name: v.name.value.clone(),
                role,
                subnets,
                mtu,
            };
            self.vlans.insert(id, (vlan, v.id.span));
            order.push(id);
        }
        order.iter().map(|id| self.vlans[id].0.clone()).collect()
    }

    pub(super) fn role(&mut self, t: &Text, seen: &mut HashMap<Role, Span>) -> Option<Role> {
        let Some(role) = Role::from_name(&t.value) else {
            self.unknown_role(t);
            return None;
        };
        if let Some(first) = seen.insert(role, t.span) {
            let d = Diag::new(
                Code::DuplicateRole,
                format!("two VLANs have role `{}`", t.value),
            )
            .label(t.span, "second VLAN with this role")
            .label(first, "first VLAN with this role")
            .help("agents find their bridges by role, so each role names one VLAN");
            self.emit(d);
            return None;
        }
        Some(role)
    }

    pub(super) fn unknown_role(&mut self, t: &Text) {
        let names = Role::ALL.map(Role::name);
        let d = Diag::new(
            Code::UnknownRole,
            format!("`{}` is not a VLAN role", t.value),
        )
        .label(t.span, "unknown role")
        .help(
            did_you_mean(&t.value, names)
                .unwrap_or_else(|| format!("roles are {}", names.join(", "))),
        );
        self.emit(d);
    }

    pub(super) fn subnets(&mut self, prefixes: &[ast::Prefix]) -> Vec<Subnet> {
        let mut subnets: Vec<(Subnet, Span)> = Vec::new();
        for p in prefixes {
            let Some(net) = self.ok(values::prefix(&p.net)) else {
                continue;
            };
            let family = Family::of_net(&net);
            if let Some((_, first)) = subnets
                .iter()
                .find(|(s, _)| Family::of_net(&s.net) == family)
            {
                let d = Diag::new(
                    Code::DuplicateFamily,
                    format!("a second {} prefix", family.name()),
                )
                .label(p.net.span, "second prefix of this family")
                .label(*first, "first one")
                .help("a VLAN has at most one IPv4 and one IPv6 prefix");
                self.emit(d);
                continue;
            }
            let gateway = p.gateway.as_ref().and_then(|g| self.gateway(g, net));
            subnets.push((Subnet { net, gateway }, p.net.span));
        }
        subnets.into_iter().map(|(s, _)| s).collect()
    }

    pub(super) fn gateway(&mut self, t: &Text, net: IpNet) -> Option<IpAddr> {
        let gw = self.ok(values::address(t))?;
        if Family::of(&gw) != Family::of_net(&net) {
            let d = Diag::new(
                Code::AddressFamily,
                format!(
                    "gateway {gw} is {} but the prefix is {}",
                    Family::of(&gw).name(),
                    Family::of_net(&net).name()
                ),
            )
            .label(t.span, "wrong address family")
            .help("write a gateway of the prefix's family");
            self.emit(d);
            return None;
        }
        let subnet = Subnet { net, gateway: None };
        match misplaced(gw, &subnet) {
            None => Some(gw),
            Some((code, msg)) => {
                let code = if code == Code::AddressOutsidePrefix {
                    Code::GatewayOutsidePrefix
                } else {
                    code
                };
                let d = Diag::new(code, format!("gateway {msg}"))
                    .label(t.span, "not a usable address of the prefix")
                    .help(format!("a gateway is a host address inside {net}"));
                self.emit(d);
                None
            }
        }
    }
}
