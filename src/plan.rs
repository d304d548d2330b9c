//! `netc plan`: what `apply` would change on a live host, read-only.
//!
//! Covers the host's network (links, ports, addresses, default routes: [`crate::net`]), its
//! files (compared with the render), the live iptables chains (through `iptables-save`) and
//! the owned agent.properties keys (merged, never replaced). Besides what people read, a plan
//! carries the [`Step`]s that `apply` runs, each with its inverse.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::agent_properties::{self, KeyState};
use crate::apply::Step;
use crate::config::Target;
use crate::iptables_plan;
use crate::model::{Family, Host, Topology};
use crate::net::{self, LiveNet, NetOp};
use crate::render;

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
    /// "create" or "replace".
    pub action: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentKey {
    pub key: String,
    /// None: the key is missing.
    pub found: Option<String>,
    pub wanted: String,
}

/// Where the live state comes from: the filesystem under `root` and the firewall as
/// `iptables-save -t filter` prints it, per family.
pub struct Live<'a> {
    pub root: &'a Path,
    pub net: &'a LiveNet,
    pub iptables_save: &'a dyn Fn(Family) -> std::io::Result<String>,
    /// `nft list table inet netc`; `None` when there is no such table.
    pub nft_list: &'a dyn Fn() -> std::io::Result<Option<String>>,
    /// Where apply records what it loaded into nftables (see [`NftRecord`]).
    pub nft_record: &'a Path,
}

/// What the last apply loaded into the `inet netc` table and what the kernel listed after.
/// The table is current when both still hold: the render is the same and nobody changed the
/// table since (its listing is the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NftRecord {
    pub script: String,
    pub listing: Option<String>,
}

pub const AGENT_PROPERTIES: &str = "etc/cloudstack/agent/agent.properties";
pub const KEEPALIVED_CONF: &str = "etc/keepalived/keepalived.conf";
pub const NFT: &str = "etc/nftables.d/netc.nft";

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
    for artefact in render::host(topo, host, target) {
        let rel = artefact.path.to_string_lossy().into_owned();
        let on_host: PathBuf = live.root.join(&artefact.path);
        let old = read(&on_host)?;
        let file_step = |content: String, plan: &mut Plan| {
            let reload = rel == KEEPALIVED_CONF;
            // The new config is checked before it goes in; the old one comes back unchecked.
            let step = |content, check| Step::File {
                path: on_host.clone(),
                content,
                check,
                reload,
            };
            plan.steps
                .push((step(Some(content), reload), step(old.clone(), false)));
        };
        if rel == AGENT_PROPERTIES {
            let current = old.clone().unwrap_or_default();
            let agent = host
                .agent
                .as_ref()
                .expect("agent.properties is rendered for agents");
            let owned: Vec<(&str, String)> = agent.keys().into_iter().collect();
            let merged = agent_properties::merge(&current, &owned);
            if merged.changed() {
                file_step(merged.text, &mut plan);
            }
            for ((key, state), (_, wanted)) in merged.keys.into_iter().zip(owned) {
                let found = match state {
                    KeyState::Same => continue,
                    KeyState::Drifted { found } => Some(found),
                    KeyState::Added => None,
                };
                plan.agent.push(AgentKey { key, found, wanted });
            }
            continue;
        }
        if rel == NFT {
            let listing = (live.nft_list)()?;
            let record: Option<NftRecord> =
                read(live.nft_record)?.and_then(|t| serde_json::from_str(&t).ok());
            let change = match &record {
                _ if listing.is_none() => Some("create table inet netc"),
                Some(r) if r.listing != listing => {
                    Some("reload table inet netc (changed since netc loaded it)")
                }
                Some(r) if r.script == artefact.text => None,
                _ => Some("reload table inet netc"),
            };
            if let Some(change) = change {
                plan.firewall.push(change.to_string());
                let undo = format!(
                    "table inet netc\ndelete table inet netc\n{}",
                    listing.as_deref().unwrap_or("")
                );
                let step = |script| Step::Nft {
                    script,
                    record: live.nft_record.to_path_buf(),
                };
                firewall_steps.push((step(artefact.text.clone()), step(undo)));
            }
        }
        // The live firewall can differ from the rules file, whether or not the file is current.
        if let Some(family) = rules_family(&rel) {
            let saved = (live.iptables_save)(family)?;
            let p = iptables_plan::plan(&artefact.text, &saved);
            if let Some(restore) = p.restore {
                let undo = iptables_plan::undo(&artefact.text, &saved);
                firewall_steps.push((
                    Step::Iptables { family, restore },
                    Step::Iptables {
                        family,
                        restore: undo,
                    },
                ));
            }
            let changes = p
                .changes
                .into_iter()
                .map(|c| format!("{}: {c}", family.name()));
            plan.firewall.extend(changes);
        }
        let action = match &old {
            None => "create",
            Some(text) if *text != artefact.text => "replace",
            Some(_) => continue,
        };
        file_step(artefact.text, &mut plan);
        plan.files.push(FileChange {
            path: format!("/{rel}"),
            action,
        });
    }
    // The live firewall last: the files that restore it at boot are in place by then.
    plan.steps.extend(firewall_steps);
    Ok(plan)
}

fn rules_family(rel: &str) -> Option<Family> {
    match rel {
        "etc/iptables/rules.v4" => Some(Family::V4),
        "etc/iptables/rules.v6" => Some(Family::V6),
        _ => None,
    }
}

fn read(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        // Not there, or a file where a directory of the path should be: no such file.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
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
            let mark = if f.action == "create" { '+' } else { '~' };
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
