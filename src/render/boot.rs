//! The firewall's boot path: `netc-firewall.service`, a systemd unit that loads netc's
//! chains with `iptables-restore --noflush` (and makes sure of one INPUT jump to each), or
//! netc's nftables table, at boot and whenever netfilter-persistent or nftables (re)load
//! theirs. netc renders no complete filter table: netfilter-persistent restores its files
//! without `--noflush`, which would delete libvirt's and CloudStack's chains.

use askama::Template;

use crate::config::Target;
use crate::model::{Family, Host, Topology};

use super::ArtefactKind;

#[derive(Template)]
#[template(path = "netc-firewall.service", escape = "none")]
pub(super) struct Unit<'a> {
    source: &'a str,
    /// Who else loads a firewall at boot, and what this unit loads, for the comment.
    owners: &'static str,
    what: &'static str,
    chains: String,
    after: &'static str,
    parts: Vec<&'static str>,
    commands: Vec<String>,
}

/// `ipsets`: the host's iptables rules match netc's ipsets, loaded first.
pub(super) fn unit<'a>(topo: &'a Topology, host: &Host, target: Target, ipsets: bool) -> Unit<'a> {
    let chains: Vec<&str> = topo
        .policies_on(&host.name)
        .map(|p| p.chain.as_str())
        .collect();
    let mut commands = Vec::new();
    let mut parts = Vec::new();
    if target.iptables() {
        parts.push("netfilter-persistent.service");
        if ipsets {
            // Before the rules that match them; `-exist`: sets already there (a reload) stay.
            commands.push(format!(
                "/usr/sbin/ipset -exist restore -file /{}",
                ArtefactKind::Ipsets.path()
            ));
        }
        for family in Family::ALL {
            let tool = family.iptables();
            let file = ArtefactKind::rules(family).path();
            commands.push(format!("/usr/sbin/{tool}-restore -w --noflush /{file}"));
            // Each inserted first: in reverse, so INPUT jumps to them in topology order.
            for chain in chains.iter().rev() {
                commands.push(format!(
                    "/bin/sh -c '{tool} -w -C INPUT -j {chain} 2>/dev/null || {tool} -w -I INPUT 1 -j {chain}'"
                ));
            }
        }
    }
    if target.nftables() {
        parts.push("nftables.service");
        commands.push(format!("/usr/sbin/nft -f /{}", ArtefactKind::Nft.path()));
    }
    Unit {
        source: &topo.source,
        what: match (target.iptables(), target.nftables()) {
            (true, true) => {
                "netc's chains alone (--noflush), one INPUT jump to each, and table inet netc"
            }
            (true, false) => "netc's chains alone (--noflush) and one INPUT jump to each",
            _ => "the `inet netc` table alone (nft -f replaces just that table)",
        },
        owners: match (target.iptables(), target.nftables()) {
            (true, true) => "netfilter-persistent or nftables",
            (true, false) => "netfilter-persistent",
            _ => "nftables.service",
        },
        chains: if chains.is_empty() {
            "no chains on this host".to_string()
        } else {
            chains.join(", ")
        },
        after: match (target.iptables(), target.nftables()) {
            (true, true) => "netfilter-persistent.service nftables.service",
            (true, false) => "netfilter-persistent.service",
            _ => "nftables.service",
        },
        parts,
        commands,
    }
}
