//! Bonds (their slaves and ifenslave settings) and MTUs: a VLAN's MTU cannot exceed the
//! MTU of the link its subinterface or bridge is on, and a bond's slaves take its MTU.

use std::collections::HashMap;

use super::values::number;
use super::{Checker, HostCx};
use crate::diag::{Code, Diag, did_you_mean};
use crate::model::{Bond, BondMode, Vlan};
use crate::source::Span;
use crate::syntax::ast::{self, Text};

/// ifenslave's `bond-xmit-hash-policy` values.
const XMIT_HASH_POLICIES: [&str; 5] = ["layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4"];
/// The kernel's MTU when nothing sets one.
const DEFAULT_MTU: u16 = 1500;

impl Checker<'_> {
    /// An MTU: 1280 (IPv6's minimum) to 65535.
    pub(super) fn mtu(&mut self, t: &Text) -> Option<u16> {
        let n = number(t, "MTU", 1280, 65535, Code::MtuRange);
        self.ok(n).map(|n| n as u16)
    }

    pub(super) fn bond(
        &mut self,
        cx: &mut HostCx,
        b: &ast::Bond,
        names: &mut HashMap<String, Span>,
    ) -> Option<Bond> {
        let name_ok = self.own_interface_name(&b.name.value, b.name.span, names);
        self.required(&b.slaves, "slaves", &b.name);
        let mtu = self.single(&b.mtus, "mtu", |t| t.span).cloned();
        let mtu = mtu.and_then(|t| self.mtu(&t));
        let mut slaves: Vec<String> = Vec::new();
        for t in b.slaves.iter().flatten() {
            let rejected =
                cx.model.bond(&t.value).is_none() && cx.link_spans.contains_key(&t.value);
            if cx.model.nic(&t.value).is_none() && rejected {
                // A NIC whose name was rejected (reported): not a slave, and no second error.
            } else if cx.model.nic(&t.value).is_none() {
                let nics = cx.model.nics.iter().map(|n| n.name.as_str());
                let d = Diag::new(
                    Code::UnknownNic,
                    format!("host `{}` has no NIC `{}`", cx.model.name, t.value),
                )
                .label(t.span, "not a `nic` of this host")
                .help(did_you_mean(&t.value, nics).unwrap_or_else(|| {
                    format!("declare it with `nic {}` in the host block", t.value)
                }));
                self.emit(d);
            } else if let Some(other) = cx.model.bond_of(&t.value).map(|o| o.name.clone()) {
                let d = Diag::new(
                    Code::BondSlave,
                    format!("`{}` is already a slave of bond `{other}`", t.value),
                )
                .label(t.span, "a NIC is the slave of one bond")
                .label(cx.link_spans[&other], "the other bond")
                .help("list each NIC in one bond");
                self.emit(d);
            } else if slaves.contains(&t.value) {
                let d = Diag::new(
                    Code::DuplicateInterface,
                    format!("`{}` is listed twice", t.value),
                )
                .label(t.span, "listed again here")
                .help("list each slave once");
                self.emit(d);
            } else {
                self.slave_mtu(cx, t, mtu, &b.name);
                slaves.push(t.value.clone());
            }
        }
        let settings = self.bond_settings(b, &slaves);
        cx.link_spans.insert(b.name.value.clone(), b.name.span);
        let (mode, miimon, lacp_rate, xmit_hash_policy, primary) = settings?;
        (name_ok && !slaves.is_empty()).then(|| Bond {
            name: b.name.value.clone(),
            slaves,
            mode,
            miimon,
            lacp_rate,
            xmit_hash_policy,
            primary,
            mtu,
        })
    }

    /// A slave's own `mtu` must be the bond's: the kernel gives slaves the bond's MTU.
    fn slave_mtu(&mut self, cx: &HostCx, t: &Text, bond_mtu: Option<u16>, bond: &Text) {
        let Some(nic_mtu) = cx.model.nic(&t.value).and_then(|n| n.mtu) else {
            return;
        };
        if Some(nic_mtu) != bond_mtu {
            let d = Diag::new(
                Code::MtuMismatch,
                format!(
                    "`{}` has MTU {nic_mtu}, but its bond `{}` has {}",
                    t.value,
                    bond.value,
                    bond_mtu.unwrap_or(DEFAULT_MTU)
                ),
            )
            .label(t.span, "the kernel gives a slave its bond's MTU")
            .label(cx.link_spans[&t.value], format!("MTU {nic_mtu} set here"))
            .help(format!(
                "set `mtu {nic_mtu}` on bond `{}` and drop it from the NIC",
                bond.value
            ));
            self.emit(d);
        }
    }

    /// mode, miimon, lacp-rate, xmit-hash-policy and primary, each valid for the mode.
    #[allow(clippy::type_complexity)]
    fn bond_settings(
        &mut self,
        b: &ast::Bond,
        slaves: &[String],
    ) -> Option<(
        BondMode,
        u32,
        Option<String>,
        Option<String>,
        Option<String>,
    )> {
        let before = self.error_count();
        let get = |key: &str| -> Vec<&(Text, Text)> {
            b.settings.iter().filter(|(k, _)| k.value == key).collect()
        };
        let mut mode = BondMode::ActiveBackup;
        if let Some((_, v)) = self.single(&get("mode"), "mode", |(k, _)| k.span).copied() {
            match BondMode::from_name(&v.value) {
                Some(m) => mode = m,
                None => {
                    let names = BondMode::ALL.map(BondMode::name);
                    self.unknown_setting(v, "bond mode", &names);
                }
            }
        }
        let mut miimon = 100;
        if let Some((_, v)) = self
            .single(&get("miimon"), "miimon", |(k, _)| k.span)
            .copied()
        {
            let n = number(v, "miimon", 0, 60_000, Code::BadNumber);
            miimon = self.ok(n).map_or(miimon, |n| n as u32);
        }
        let mut value = |key: &str, choices: &[&str], modes: &[BondMode]| -> Option<String> {
            let (k, v) = self.single(&get(key), key, |(k, _)| k.span).copied()?;
            if !modes.contains(&mode) {
                let names: Vec<&str> = modes.iter().map(|m| m.name()).collect();
                let d = Diag::new(
                    Code::UnknownSetting,
                    format!("`{key}` does not apply to bond mode {}", mode.name()),
                )
                .label(k.span, format!("for mode {} only", names.join(", ")))
                .help(format!("drop `{key}`, or change the bond's `mode`"));
                self.emit(d);
                return None;
            }
            if !choices.contains(&v.value.as_str()) {
                self.unknown_setting(v, key, choices);
                return None;
            }
            Some(v.value.clone())
        };
        let lacp_rate = value("lacp-rate", &["slow", "fast"], &[BondMode::Lacp]);
        let hash_modes = [BondMode::BalanceXor, BondMode::Lacp, BondMode::BalanceTlb];
        let xmit_hash_policy = value("xmit-hash-policy", &XMIT_HASH_POLICIES, &hash_modes);
        let slave_names: Vec<&str> = slaves.iter().map(String::as_str).collect();
        let primary_modes = [
            BondMode::ActiveBackup,
            BondMode::BalanceTlb,
            BondMode::BalanceAlb,
        ];
        let primary = value("primary", &slave_names, &primary_modes);
        (self.error_count() == before).then_some((
            mode,
            miimon,
            lacp_rate,
            xmit_hash_policy,
            primary,
        ))
    }

    /// A VLAN's MTU fits the link under it: a subinterface's cannot exceed its parent's,
    /// and an untagged bridge is the link's own MTU.
    pub(super) fn vlan_mtu(&mut self, cx: &HostCx, b: &ast::Bridge, vlan: &Vlan) {
        let Some(want) = vlan.mtu else { return };
        let host = &cx.model;
        let link = &b.nic.value;
        let have = host
            .nic(link)
            .map(|n| n.mtu)
            .or_else(|| host.bond(link).map(|b| b.mtu))
            .flatten()
            .unwrap_or(DEFAULT_MTU);
        // bridge-utils gives a bridge's `mtu` to its ports: an untagged bridge takes its
        // link's MTU instead (netc renders none for it).
        let fits = if b.untagged {
            want == have
        } else {
            want <= have
        };
        if fits {
            return;
        }
        let how = if b.untagged {
            "an untagged bridge has its link's MTU"
        } else {
            "a VLAN subinterface's MTU cannot exceed its parent's"
        };
        let mut d = Diag::new(
            Code::MtuMismatch,
            format!("VLAN {} has MTU {want}, but `{link}` has {have}", vlan.id),
        )
        .label(b.nic.span, how);
        if let Some(span) = cx.link_spans.get(link) {
            d = d.label(*span, format!("`{link}` declared here"));
        }
        let kind = if host.bond(link).is_some() {
            "bond"
        } else {
            "nic"
        };
        d = d.help(format!(
            "give `{link}` `mtu {want}` (`{kind} {link} … mtu {want}`), or lower VLAN {}'s",
            vlan.id
        ));
        self.emit(d);
    }
}

#[cfg(test)]
mod tests {
    /// A setting of other bond modes names the modes it is for.
    #[test]
    fn a_setting_of_another_mode_names_its_modes() {
        let text = "host h {\n    nic eth0\n    nic eth1\n    bond bond0 {\n        slaves eth0, eth1\n        xmit-hash-policy layer2\n    }\n}\n";
        let c = crate::compile("t.csn", text.as_bytes());
        let d = c
            .diags
            .iter()
            .find(|d| d.message.contains("does not apply"))
            .expect("reported");
        assert_eq!(
            d.message,
            "`xmit-hash-policy` does not apply to bond mode active-backup"
        );
        assert_eq!(
            d.labels[0].1,
            "for mode balance-xor, 802.3ad, balance-tlb only"
        );
    }
}
