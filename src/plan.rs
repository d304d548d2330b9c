//! `netc plan`: what `apply` would change on a live host, read-only.
//!
//! Covers the host's files (compared with the render), the live iptables chains (through
//! `iptables-save`) and the owned agent.properties keys (merged, never replaced). Links,
//! addresses and routes (rtnetlink) are not planned yet.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::agent_properties::{self, KeyState};
use crate::config::Target;
use crate::iptables_plan;
use crate::model::{Family, Host, Topology};
use crate::render;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub host: String,
    /// Files to create or replace, as absolute paths on the host.
    pub files: Vec<FileChange>,
    /// Per family, the iptables changes.
    pub firewall: Vec<String>,
    /// Owned agent.properties keys that differ: (key, found, wanted).
    pub agent: Vec<AgentKey>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.firewall.is_empty() && self.agent.is_empty()
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
    pub iptables_save: &'a dyn Fn(Family) -> std::io::Result<String>,
}

pub const AGENT_PROPERTIES: &str = "etc/cloudstack/agent/agent.properties";

pub fn plan(topo: &Topology, host: &Host, target: Target, live: &Live) -> std::io::Result<Plan> {
    let mut plan = Plan {
        host: host.name.clone(),
        ..Plan::default()
    };
    for artefact in render::host(topo, host, target) {
        let rel = artefact.path.to_string_lossy().into_owned();
        let on_host: PathBuf = live.root.join(&artefact.path);
        if rel == AGENT_PROPERTIES {
            let current = read(&on_host)?.unwrap_or_default();
            let agent = host
                .agent
                .as_ref()
                .expect("agent.properties is rendered for agents");
            let owned: Vec<(&str, String)> = agent.keys().into_iter().collect();
            let merged = agent_properties::merge(&current, &owned);
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
        // The live firewall can differ from the rules file, whether or not the file is current.
        if let Some(family) = rules_family(&rel) {
            let saved = (live.iptables_save)(family)?;
            let p = iptables_plan::plan(&artefact.text, &saved);
            let changes = p
                .changes
                .into_iter()
                .map(|c| format!("{}: {c}", family.name()));
            plan.firewall.extend(changes);
        }
        let action = match read(&on_host)? {
            None => "create",
            Some(text) if text != artefact.text => "replace",
            Some(_) => continue,
        };
        plan.files.push(FileChange {
            path: format!("/{rel}"),
            action,
        });
    }
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The plan for people.
pub fn text(p: &Plan) -> String {
    if p.is_empty() {
        return format!("{}: no changes\n", p.host);
    }
    let mut out = format!("{}:\n", p.host);
    if !p.files.is_empty() {
        out += "  files\n";
        for f in &p.files {
            let mark = if f.action == "create" { '+' } else { '~' };
            out += &format!("    {mark} {}\n", f.path);
        }
    }
    if !p.firewall.is_empty() {
        out += "  firewall (iptables)\n";
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
    out
}
