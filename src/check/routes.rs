//! Default routes: an address on a VLAN whose prefix has a gateway routes the host by
//! default. A host with several such VLANs of one family picks one with
//! `default-route vlan N`; the others' addresses then carry no route.

use std::collections::BTreeMap;

use super::{Checker, HostCx};
use crate::diag::{Code, Diag};
use crate::model::Family;
use crate::source::Span;
use crate::syntax::ast;

impl Checker<'_> {
    pub(super) fn default_routes(&mut self, h: &ast::Host, cx: &mut HostCx) {
        // The chosen VLANs, each with the span of its statement.
        let mut chosen: Vec<(u16, Span)> = Vec::new();
        for t in &h.default_routes {
            let Some(vlan) = self.vlan_ref(t).cloned() else {
                continue;
            };
            if let Some((_, first)) = chosen.iter().find(|(v, _)| *v == vlan.id) {
                let d = Diag::repeated(
                    Code::DuplicateSetting,
                    format!("`default-route vlan {}` is stated twice", vlan.id),
                    "stated",
                    t.span,
                    *first,
                )
                .help("keep one");
                self.emit(d);
                continue;
            }
            let routes = cx.gateway_spans.iter().any(|(v, _, _)| *v == vlan.id);
            if !routes {
                let why = if cx.model.bridge_on(vlan.id).is_none() {
                    format!("`{}` has no bridge on VLAN {}", h.name.value, vlan.id)
                } else if vlan.subnets.iter().all(|s| s.gateway.is_none()) {
                    format!("VLAN {} has no gateway", vlan.id)
                } else {
                    format!(
                        "`{}` has no address on VLAN {} of a family with a gateway",
                        h.name.value, vlan.id
                    )
                };
                let d = Diag::new(
                    Code::BadDefaultRoute,
                    format!("no default route via VLAN {}: {why}", vlan.id),
                )
                .label(t.span, "cannot route by default")
                .help("name a VLAN with a `gateway` on which the host has an address");
                self.emit(d);
                continue;
            }
            chosen.push((vlan.id, t.span));
        }
        let candidates: Vec<(u16, Family, Span)> = if h.default_routes.is_empty() {
            cx.gateway_spans.clone()
        } else {
            let by_choice = |v: &u16| chosen.iter().find(|(c, _)| c == v).map(|(_, s)| *s);
            cx.gateway_spans
                .iter()
                .filter_map(|(v, f, _)| by_choice(v).map(|s| (*v, *f, s)))
                .collect()
        };
        let mut first: BTreeMap<Family, (u16, Span)> = BTreeMap::new();
        for (vlan, family, span) in &candidates {
            let Some(&(other, other_span)) = first.get(family) else {
                first.insert(*family, (*vlan, *span));
                continue;
            };
            self.two_default_routes(h, *family, (*vlan, *span), (other, other_span));
        }
        // Only the chosen VLANs' addresses (every one, without a choice) carry the route.
        if !h.default_routes.is_empty() {
            for b in &mut cx.model.bridges {
                let keep = b.vlan.is_some_and(|v| chosen.iter().any(|(c, _)| *c == v));
                if !keep {
                    for a in &mut b.addresses {
                        a.gateway = None;
                    }
                }
            }
        }
    }

    fn two_default_routes(
        &mut self,
        h: &ast::Host,
        family: Family,
        (vlan, span): (u16, Span),
        (other, other_span): (u16, Span),
    ) {
        let chose = !h.default_routes.is_empty();
        let (label, help) = if chose {
            (
                format!("`default-route vlan {vlan}` also routes {}", family.name()),
                format!(
                    "keep one `default-route` per family: VLANs {other} and {vlan} both have an \
                     {} gateway",
                    family.name()
                ),
            )
        } else {
            (
                format!("VLAN {vlan} has a gateway, so this address routes by default"),
                format!(
                    "choose this host's default route: `default-route vlan {other}` or \
                     `default-route vlan {vlan}` in host `{}`",
                    h.name.value
                ),
            )
        };
        let d = Diag::new(
            Code::DuplicateDefaultGateway,
            format!(
                "host `{}` gets two {} default gateways",
                h.name.value,
                family.name()
            ),
        )
        .label(span, label)
        .label(other_span, format!("and so does VLAN {other}"))
        .help(help);
        self.emit(d);
    }
}
