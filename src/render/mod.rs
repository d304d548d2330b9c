//! Model → the text of each host's files, one askama template per artefact (`templates/`).
//!
//! Decisions live in Rust (which stanzas a bridge gets, how ports are chunked); templates only
//! lay the prepared values out. [`ArtefactKind`] says, for each kind of file, where it lives on
//! a host, which tool reads it (and so checks it) and what must reload it.

mod agent;
mod boot;
mod firewall;
mod interfaces;
pub mod ipset;
mod keepalived;
pub mod nftables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use askama::Template;
use serde::{Deserialize, Serialize};

use crate::config::Target;
use crate::model::{Family, Host, Topology};

pub use firewall::MULTIPORT_MAX;
pub use nftables::{NFT_TABLE, NftTable};

/// Every kind of file netc renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtefactKind {
    /// ifupdown's `/etc/network/interfaces`.
    Interfaces,
    /// ipset-persistent's sets of large policies, loaded before the rules that match them.
    Ipsets,
    /// netc's iptables chains, for `iptables-restore --noflush` (not a whole table).
    RulesV4,
    RulesV6,
    /// The `inet netc` nftables table.
    Nft,
    /// `netc-firewall.service`: loads the firewall at boot.
    FirewallUnit,
    Keepalived,
    /// The owned keys of CloudStack's agent.properties (merged into the agent's file).
    AgentProperties,
}

/// How a tool that reads a file checks it without acting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checker {
    pub tool: &'static str,
    pub args: &'static [&'static str],
    /// The file goes to the tool's stdin (else its path is the last argument).
    pub stdin: bool,
}

impl ArtefactKind {
    pub const ALL: [ArtefactKind; 8] = [
        ArtefactKind::Interfaces,
        ArtefactKind::Ipsets,
        ArtefactKind::RulesV4,
        ArtefactKind::RulesV6,
        ArtefactKind::Nft,
        ArtefactKind::FirewallUnit,
        ArtefactKind::Keepalived,
        ArtefactKind::AgentProperties,
    ];

    /// Where netc rendered the iptables rules before they became chains-only files: a file
    /// there that netc generated is netfilter-persistent's, which loads it without
    /// `--noflush` (deleting every foreign chain), so apply removes it.
    pub const RETIRED: [&'static str; 2] = ["etc/iptables/rules.v4", "etc/iptables/rules.v6"];

    /// For a rules file, where netc rendered it before: see [`ArtefactKind::RETIRED`].
    pub fn retired(self) -> Option<&'static str> {
        match self {
            ArtefactKind::RulesV4 => Some(ArtefactKind::RETIRED[0]),
            ArtefactKind::RulesV6 => Some(ArtefactKind::RETIRED[1]),
            _ => None,
        }
    }

    /// Where the file lives on a host, relative to `/`.
    pub fn path(self) -> &'static str {
        match self {
            ArtefactKind::Interfaces => "etc/network/interfaces",
            ArtefactKind::Ipsets => "etc/iptables/ipsets",
            ArtefactKind::RulesV4 => "etc/iptables/netc.v4",
            ArtefactKind::RulesV6 => "etc/iptables/netc.v6",
            ArtefactKind::Nft => "etc/nftables.d/netc.nft",
            ArtefactKind::FirewallUnit => "etc/systemd/system/netc-firewall.service",
            ArtefactKind::Keepalived => "etc/keepalived/keepalived.conf",
            ArtefactKind::AgentProperties => "etc/cloudstack/agent/agent.properties",
        }
    }

    /// The kind of the file at `path` (relative to a host's `/`), if netc renders it.
    pub fn of_path(path: &Path) -> Option<ArtefactKind> {
        ArtefactKind::ALL
            .into_iter()
            .find(|k| Path::new(k.path()) == path)
    }

    /// The iptables rules file of a family.
    pub fn rules(family: Family) -> ArtefactKind {
        match family {
            Family::V4 => ArtefactKind::RulesV4,
            Family::V6 => ArtefactKind::RulesV6,
        }
    }

    /// For an iptables rules file, its family.
    pub fn family(self) -> Option<Family> {
        match self {
            ArtefactKind::RulesV4 => Some(Family::V4),
            ArtefactKind::RulesV6 => Some(Family::V6),
            _ => None,
        }
    }

    /// The tool that reads the file, in the mode that only checks it. keepalived's check
    /// needs the interfaces it names to exist.
    pub fn checker(self) -> Option<Checker> {
        let (tool, args, stdin): (_, &'static [&'static str], _) = match self {
            ArtefactKind::Interfaces => ("ifquery", &["--list", "-i"], false),
            // A real restore, in a network namespace of its own that vanishes with it.
            ArtefactKind::Ipsets => ("unshare", &["--net", "ipset", "restore"], true),
            ArtefactKind::RulesV4 => ("iptables-restore", &["--test"], true),
            ArtefactKind::RulesV6 => ("ip6tables-restore", &["--test"], true),
            ArtefactKind::Nft => ("nft", &["-c", "-f"], false),
            ArtefactKind::Keepalived => ("keepalived", &["-t", "-f"], false),
            // systemd-analyze verify wants a file named *.service (the tests run it).
            ArtefactKind::AgentProperties | ArtefactKind::FirewallUnit => return None,
        };
        Some(Checker { tool, args, stdin })
    }

    /// Whether a running service rereads the file when it changes (keepalived does on SIGHUP).
    pub fn reloads(self) -> bool {
        self == ArtefactKind::Keepalived
    }
}

/// One file of a host's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artefact {
    pub kind: ArtefactKind,
    pub text: String,
}

impl Artefact {
    /// The file's path relative to the host's `/` (`etc/...`).
    pub fn path(&self) -> &'static str {
        self.kind.path()
    }
}

/// Every file of every host, keyed by `<host>/etc/...`: the whole `out/` tree.
pub fn tree(topo: &Topology, target: Target) -> BTreeMap<PathBuf, String> {
    let firewalls = firewall::Firewalls::new(topo);
    topo.hosts
        .iter()
        .flat_map(|h| {
            files(topo, &firewalls, h, target)
                .into_iter()
                .map(|a| (PathBuf::from(&h.name).join(a.path()), a.text))
        })
        .collect()
}

/// The files of one host, and with the nftables target its `inet netc` table as data (what
/// netc.nft says, for a netlink batch): the topology's firewall text is made once for both.
pub fn host(topo: &Topology, host: &Host, target: Target) -> (Vec<Artefact>, Option<NftTable>) {
    let firewalls = firewall::Firewalls::new(topo);
    let table = target
        .nftables()
        .then(|| firewall::nft_table(&firewalls.on(topo, host)));
    (files(topo, &firewalls, host, target), table)
}

/// The `inet netc` table of one host as data: what netc.nft says, for a netlink batch.
pub fn nft_table(topo: &Topology, host: &Host) -> NftTable {
    let firewalls = firewall::Firewalls::new(topo);
    firewall::nft_table(&firewalls.on(topo, host))
}

fn files(
    topo: &Topology,
    firewalls: &firewall::Firewalls,
    host: &Host,
    target: Target,
) -> Vec<Artefact> {
    let mut out = vec![artefact(
        ArtefactKind::Interfaces,
        interfaces::interfaces(topo, host),
    )];
    let chains = firewalls.on(topo, host);
    let sets = firewall::host_ipsets(&chains);
    let ipsets = target.iptables() && !sets.is_empty();
    if target.iptables() {
        if ipsets {
            out.push(artefact(ArtefactKind::Ipsets, ipset::ipsets(topo, sets)));
        }
        for family in Family::ALL {
            let rules = firewall::iptables(topo, &chains, family);
            out.push(artefact(ArtefactKind::rules(family), rules));
        }
    }
    if target.nftables() {
        out.push(artefact(
            ArtefactKind::Nft,
            firewall::nftables(topo, &chains),
        ));
    }
    out.push(artefact(
        ArtefactKind::FirewallUnit,
        boot::unit(topo, host, target, ipsets),
    ));
    if topo.vips_of(&host.name).next().is_some() {
        let conf = keepalived::keepalived(topo, host);
        out.push(artefact(ArtefactKind::Keepalived, conf));
    }
    if let Some(agent) = &host.agent {
        let properties = agent::agent_properties(topo, agent);
        out.push(artefact(ArtefactKind::AgentProperties, properties));
    }
    out
}

fn artefact(kind: ArtefactKind, template: impl Template) -> Artefact {
    let mut text = template
        .render()
        .expect("templates only print plain values");
    text.push('\n');
    Artefact { kind, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_its_path() {
        for kind in ArtefactKind::ALL {
            assert_eq!(ArtefactKind::of_path(Path::new(kind.path())), Some(kind));
        }
        assert_eq!(ArtefactKind::of_path(Path::new("etc/hosts")), None);
    }
}
