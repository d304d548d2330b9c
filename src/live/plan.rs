//! `netc plan`: what `apply` would change on a live host, read-only.
//!
//! Covers the host's network (links, ports, addresses, default routes: [`super::net`]), its
//! files (compared with the render), the live iptables chains (through `iptables-save`) and
//! netc's ipsets (`ipset save`, only on hosts that have them), the
//! `inet netc` table (over netlink: [`super::nftnl`]) and the owned agent.properties keys (merged, never replaced). Besides what people read, a plan
//! carries the [`Step`]s that `apply` runs, each with its inverse.

use std::path::PathBuf;

use serde::Serialize;

use super::install::read_text_opt;
use super::ipset;
use super::iptables;
use super::net::{self, NetOp};
use super::nftnl;
use super::probe::Live;
use super::properties::{self, KeyState};
use super::step::{NftLoad, Step};
use crate::config::Target;
use crate::model::{Family, Host, Topology};
use crate::render::{self, ArtefactKind, NftTable};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub host: String,
    /// Kernel changes, in the order apply makes them.
    pub network: Vec<NetOp>,
    /// Files to create or replace, as absolute paths on the host.
    pub files: Vec<FileChange>,
    /// Per family, the iptables changes.
    pub firewall: Vec<String>,
    /// Owned agent.properties keys that differ: (key, found, wanted).
    pub agent: Vec<AgentKey>,
    /// Conflicts that stop apply: netc will not resolve them on its own.
    pub refusals: Vec<String>,
    /// Things left as they are, worth knowing.
    pub notes: Vec<String>,
    /// What apply runs: each step with its inverse.
    #[serde(skip)]
    pub steps: Vec<(Step, Step)>,
    /// The rendered rules files, when iptables' tables live in nf_tables: once applied,
    /// netc records them with the ruleset's generation ([`super::left`]).
    #[serde(skip)]
    pub iptables_nft: Option<Vec<(Family, String)>>,
}

impl Plan {
    /// Nothing to do. (The steps are the truth; what people read follows from them.)
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    pub action: FileAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileAction {
    Create,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentKey {
    pub key: String,
    /// None: the key is missing.
    pub found: Option<String>,
    pub wanted: String,
}

pub fn plan(topo: &Topology, host: &Host, target: Target, live: &Live) -> std::io::Result<Plan> {
    let net = net::plan(host, live.net);
    let mut plan = Plan {
        host: host.name.clone(),
        steps: net
            .ops
            .iter()
            .map(|op| (Step::Net(op.clone()), Step::Net(op.inverse())))
            .collect(),
        network: net.ops,
        refusals: net.refusals,
        notes: net.notes,
        ..Plan::default()
    };
    let mut firewall_steps = Vec::new();
    let mut nft_rules = target.iptables().then(Vec::new);
    for artefact in render::host(topo, host, target) {
        let on_host: PathBuf = live.root.join(artefact.path());
        let old = read_text_opt(&on_host)?;
        let kind = artefact.kind;
        let file_step = |content: String, plan: &mut Plan| {
            // The new config is checked before it goes in; the old one comes back unchecked.
            let step = |content, check| Step::File {
                kind,
                path: on_host.clone(),
                content,
                check,
            };
            // keepalived's check needs the new bridges: it runs when the file is installed.
            let check_on_install = kind == ArtefactKind::Keepalived;
            plan.steps.push((
                step(Some(content), check_on_install),
                step(old.clone(), false),
            ));
        };
        match kind {
            ArtefactKind::AgentProperties => {
                agent_keys(host, old.as_deref(), &mut plan, file_step);
                continue;
            }
            ArtefactKind::Nft => {
                let current = old.as_deref() == Some(artefact.text.as_str());
                let table = render::nft_table(topo, host);
                firewall_steps.extend(nft(table, current, live, &mut plan)?);
            }
            ArtefactKind::Ipsets => {
                // Before the rules that match the sets (the undo runs after theirs).
                let p = ipset::plan(&artefact.text, &(live.ipset_save)()?);
                if let Some(restore) = p.restore {
                    firewall_steps.push((Step::Ipset { restore }, Step::Ipset { restore: p.undo }));
                }
                plan.firewall.extend(p.changes);
                plan.refusals.extend(p.refusals);
            }
            ArtefactKind::RulesV4 | ArtefactKind::RulesV6 => {
                let family = kind.family().expect("a rules file");
                let step =
                    iptables_chains(family, &artefact.text, live, &mut plan, &mut nft_rules)?;
                firewall_steps.extend(step);
            }
            ArtefactKind::Interfaces | ArtefactKind::Keepalived => {}
        }
        let action = match &old {
            None => FileAction::Create,
            Some(text) if *text != artefact.text => FileAction::Replace,
            Some(_) => continue,
        };
        plan.files.push(FileChange {
            path: format!("/{}", artefact.path()),
            action,
        });
        file_step(artefact.text, &mut plan);
    }
    // The live firewall last: the files that restore it at boot are in place by then.
    plan.steps.extend(firewall_steps);
    plan.iptables_nft = nft_rules;
    Ok(plan)
}

/// The live iptables chains of a family: restored when they differ from the rules file
/// (current or not). `nft_rules` collects the rules files while every table seen is
/// iptables-nft's (see [`super::left`]); iptables-save need not run when netc left the
/// chains so and no table has changed since.
fn iptables_chains(
    family: Family,
    rendered: &str,
    live: &Live,
    plan: &mut Plan,
    nft_rules: &mut Option<Vec<(Family, String)>>,
) -> std::io::Result<Option<(Step, Step)>> {
    let rules = (family, rendered.to_string());
    if live
        .iptables_left
        .is_some_and(|l| l.holds(family, rendered))
    {
        if let Some(r) = nft_rules {
            r.push(rules);
        }
        return Ok(None);
    }
    let saved = (live.iptables_save)(family)?;
    match nft_rules {
        Some(r) if saved.contains("(nf_tables)") => r.push(rules),
        _ => *nft_rules = None,
    }
    let p = iptables::plan(rendered, &saved);
    let changes = p.changes.iter().map(|c| format!("{}: {c}", family.name()));
    plan.firewall.extend(changes);
    Ok(p.restore.map(|restore| {
        let undo = iptables::undo(rendered, &saved);
        (
            Step::Iptables { family, restore },
            Step::Iptables {
                family,
                restore: undo,
            },
        )
    }))
}

/// agent.properties: only the owned keys, merged into the agent's own file.
fn agent_keys(
    host: &Host,
    current: Option<&str>,
    plan: &mut Plan,
    file_step: impl Fn(String, &mut Plan),
) {
    let agent = host
        .agent
        .as_ref()
        .expect("agent.properties is rendered for agents");
    let owned: Vec<(&str, String)> = agent.keys().into_iter().collect();
    let merged = properties::merge(current.unwrap_or_default(), &owned);
    if merged.changed() {
        file_step(merged.text, plan);
    }
    for ((key, state), (_, wanted)) in merged.keys.into_iter().zip(owned) {
        let found = match state {
            KeyState::Same => continue,
            KeyState::Drifted { found } => Some(found),
            KeyState::Added => None,
        };
        plan.agent.push(AgentKey { key, found, wanted });
    }
}

/// The nftables target: load the table when the kernel's differs from the batch netc would
/// send (read over netlink). When netc.nft is already current, the difference is a change
/// made by hand since netc loaded it: drift.
fn nft(
    table: NftTable,
    file_current: bool,
    live: &Live,
    plan: &mut Plan,
) -> std::io::Result<Option<(Step, Step)>> {
    let have = (live.nft_read)()?;
    let want = nftnl::Snapshot::of(&nftnl::batch(&table));
    let (change, undo) = match have {
        None => ("create table inet netc", NftLoad::Delete),
        Some(have) if have == want => return Ok(None),
        Some(_) => {
            // The undo puts back the table as nft lists it: it need not be netc's.
            let listing = (live.nft_list)()?.unwrap_or_default();
            let undo = format!("table inet netc\ndelete table inet netc\n{listing}");
            let change = if file_current {
                "reload table inet netc (changed since netc loaded it)"
            } else {
                "reload table inet netc"
            };
            (change, NftLoad::Script(undo))
        }
    };
    plan.firewall.push(change.to_string());
    Ok(Some((Step::Nft(NftLoad::Batch(table)), Step::Nft(undo))))
}

/// The plan for people.
pub fn text(p: &Plan) -> String {
    let mut out = if p.is_empty() {
        format!("{}: no changes\n", p.host)
    } else {
        format!("{}:\n", p.host)
    };
    if !p.network.is_empty() {
        out += "  network\n";
        for op in &p.network {
            out += &format!("    {op}\n");
        }
    }
    if !p.files.is_empty() {
        out += "  files\n";
        for f in &p.files {
            let mark = match f.action {
                FileAction::Create => '+',
                FileAction::Replace => '~',
            };
            out += &format!("    {mark} {}\n", f.path);
        }
    }
    if !p.firewall.is_empty() {
        out += "  firewall\n";
        for c in &p.firewall {
            out += &format!("    ~ {c}\n");
        }
    }
    if !p.agent.is_empty() {
        out += "  /etc/cloudstack/agent/agent.properties (owned keys only)\n";
        for k in &p.agent {
            match &k.found {
                Some(found) => {
                    out += &format!(
                        "    ~ {}: {found} → {} (changed since netc set it, or never set)\n",
                        k.key, k.wanted
                    )
                }
                None => out += &format!("    + {}={}\n", k.key, k.wanted),
            }
        }
    }
    for r in &p.refusals {
        out += &format!("  refused: {r}\n");
    }
    for n in &p.notes {
        out += &format!("  note: {n}\n");
    }
    out
}
