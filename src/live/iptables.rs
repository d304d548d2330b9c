//! Planning a live iptables change: only netc's chains, atomically, never a whole table.
//!
//! Input: the rendered rules file (netc.v4 or netc.v6: netc's chains, declared and filled)
//! and the live `iptables-save -t filter` output. Output: nothing to do, or one payload for
//! `iptables-restore --noflush`, which flushes only the chains it declares (netc's own) and
//! commits the whole table at once. Every other chain and rule — libvirt's, CloudStack's —
//! is left alone; INPUT gets exactly one jump to each netc chain, first in INPUT.

use std::collections::BTreeMap;

use crate::model::BUILTIN_CHAINS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What changes, one line each, for people.
    pub changes: Vec<String>,
    /// The `iptables-restore --noflush` input; `None` when the live table already matches.
    pub restore: Option<String>,
}

/// A filter table as rule lines per chain, in order.
struct Table {
    chains: BTreeMap<String, Vec<String>>,
    /// Chains in declaration order.
    order: Vec<String>,
}

fn table(save: &str) -> Table {
    let mut t = Table {
        chains: BTreeMap::new(),
        order: Vec::new(),
    };
    let mut in_filter = false;
    for line in save.lines() {
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix('*') {
            in_filter = name == "filter";
        } else if !in_filter || line.starts_with('#') {
            continue;
        } else if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or("").to_string();
            if t.chains.insert(name.clone(), Vec::new()).is_none() {
                t.order.push(name);
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule.split_whitespace().next().unwrap_or("").to_string();
            t.chains.entry(chain).or_default().push(line.to_string());
        }
    }
    t
}

/// The plan that makes `live` carry `rendered`'s chains.
pub fn plan(rendered: &str, live: &str) -> Plan {
    let want = table(rendered);
    let have = table(live);
    let owned: Vec<&String> = want
        .order
        .iter()
        .filter(|c| !BUILTIN_CHAINS.contains(&c.as_str()))
        .collect();
    let mut changes = Vec::new();
    let mut body = Vec::new();
    let mut rewrite = false;
    for chain in &owned {
        let rules = &want.chains[*chain];
        match have.chains.get(*chain) {
            None => changes.push(format!("create chain {chain} ({} rules)", rules.len())),
            Some(live_rules) if live_rules != rules => changes.push(format!(
                "rewrite chain {chain} ({} → {} rules)",
                live_rules.len(),
                rules.len()
            )),
            Some(_) => {}
        }
        rewrite |= have.chains.get(*chain) != Some(rules);
    }
    // Declaring a chain in a --noflush restore flushes it: declare all of netc's chains when
    // any differs, so the payload states them whole.
    if rewrite {
        for chain in &owned {
            body.push(format!(":{chain} - [0:0]"));
        }
        for chain in &owned {
            body.extend(want.chains[*chain].iter().cloned());
        }
    }
    let input = have.chains.get("INPUT").cloned().unwrap_or_default();
    for (position, chain) in owned.iter().enumerate() {
        let jump = format!("-A INPUT -j {chain}");
        let count = input.iter().filter(|r| **r == jump).count();
        match count {
            0 => {
                changes.push(format!("add the INPUT jump to {chain}"));
                body.push(format!("-I INPUT {} -j {chain}", position + 1));
            }
            1 => {}
            n => {
                changes.push(format!("remove {} extra INPUT jumps to {chain}", n - 1));
                body.extend((1..n).map(|_| format!("-D INPUT -j {chain}")));
            }
        }
    }
    let restore = (!body.is_empty()).then(|| format!("*filter\n{}\nCOMMIT\n", body.join("\n")));
    Plan { changes, restore }
}

/// The `--noflush` input that takes a table where [`plan`] was carried out (netc's chains as
/// rendered, one INPUT jump each) back to `before`: each chain as it was, or gone if it was
/// not there, with as many INPUT jumps as there were (their positions are not restored).
pub fn undo(rendered: &str, before: &str) -> String {
    let want = table(rendered);
    let had = table(before);
    let owned: Vec<&String> = want
        .order
        .iter()
        .filter(|c| !BUILTIN_CHAINS.contains(&c.as_str()))
        .collect();
    let mut body: Vec<String> = owned.iter().map(|c| format!(":{c} - [0:0]")).collect();
    let input = had.chains.get("INPUT").cloned().unwrap_or_default();
    for chain in &owned {
        body.extend(had.chains.get(*chain).into_iter().flatten().cloned());
        let jump = format!("-A INPUT -j {chain}");
        match input.iter().filter(|r| **r == jump).count() {
            0 => body.push(format!("-D INPUT -j {chain}")),
            n => body.extend((1..n).map(|_| jump.clone())),
        }
    }
    for chain in owned.iter().filter(|c| !had.chains.contains_key(**c)) {
        body.push(format!("-X {chain}"));
    }
    format!("*filter\n{}\nCOMMIT\n", body.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str = "# generated\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:CS - [0:0]\n-A INPUT -j CS\n-A CS -s 192.0.2.0/24 -j RETURN\n-A CS -p tcp -m multiport --dports 16509 -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n";

    #[test]
    fn a_fresh_table_gets_the_chain_and_one_jump() {
        let live = "*filter\n:INPUT ACCEPT [5:300]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:LIBVIRT_INP - [0:0]\n-A INPUT -j LIBVIRT_INP\nCOMMIT\n";
        let p = plan(RENDERED, live);
        assert_eq!(
            p.restore.unwrap(),
            "*filter\n:CS - [0:0]\n-A CS -s 192.0.2.0/24 -j RETURN\n-A CS -p tcp -m multiport --dports 16509 -j REJECT --reject-with icmp-port-unreachable\n-I INPUT 1 -j CS\nCOMMIT\n"
        );
        assert_eq!(
            undo(RENDERED, live),
            "*filter\n:CS - [0:0]\n-D INPUT -j CS\n-X CS\nCOMMIT\n"
        );
        assert_eq!(
            p.changes,
            vec!["create chain CS (2 rules)", "add the INPUT jump to CS"]
        );
    }

    #[test]
    fn a_matching_table_needs_nothing() {
        let p = plan(RENDERED, RENDERED);
        assert_eq!(p.restore, None);
        assert!(p.changes.is_empty());
    }

    #[test]
    fn extra_jumps_go_and_a_changed_chain_is_restated() {
        let live = RENDERED
            .replace("-A INPUT -j CS\n", "-A INPUT -j CS\n-A INPUT -j CS\n")
            .replace("192.0.2.0/24", "192.0.2.0/25");
        let p = plan(RENDERED, &live);
        assert_eq!(
            p.changes,
            vec![
                "rewrite chain CS (2 → 2 rules)",
                "remove 1 extra INPUT jumps to CS"
            ]
        );
        let r = p.restore.unwrap();
        assert!(
            r.contains(":CS - [0:0]\n") && r.contains("-D INPUT -j CS\n") && !r.contains(":INPUT"),
            "{r}"
        );
    }
}
