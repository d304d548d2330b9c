//! Planning a live iptables change: only netc's chains, atomically, never a whole table.
//!
//! Input: the rendered rules file (netc.v4 or netc.v6: netc's chains, declared and filled),
//! the live `iptables-save -t filter` output, and the chains netc owned before (what it
//! recorded when it last loaded them, and what its installed rules file declares). Output:
//! nothing to do, or one payload for `iptables-restore --noflush`, which flushes only the
//! chains it declares (netc's own) and commits the whole table at once. Every other chain
//! and rule — libvirt's, CloudStack's — is left alone; INPUT gets exactly one jump to each
//! netc chain, first in INPUT; a chain netc owned and renders no more (a renamed firewall)
//! goes, with its INPUT jumps.

use std::collections::BTreeMap;

use crate::model::BUILTIN_CHAINS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What changes, one line each, for people.
    pub changes: Vec<String>,
    /// The `iptables-restore --noflush` input; `None` when the live table already matches.
    pub restore: Option<String>,
    /// The chains netc owns once the payload is loaded.
    pub chains: Vec<String>,
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

/// The chains (not the built-in ones) a rules text declares.
pub fn chains(rules: &str) -> Vec<String> {
    table(rules)
        .order
        .into_iter()
        .filter(|c| !BUILTIN_CHAINS.contains(&c.as_str()))
        .collect()
}

/// Chains netc owned before and renders no more that are still live.
fn stale<'a>(want: &Table, have: &Table, before: &'a [String]) -> Vec<&'a String> {
    let mut out: Vec<&String> = Vec::new();
    for c in before {
        let gone = !want.chains.contains_key(c) && have.chains.contains_key(c);
        if gone && !BUILTIN_CHAINS.contains(&c.as_str()) && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The plan that makes `live` carry `rendered`'s chains, and drop those of `before` (the
/// chains netc owned) it renders no more.
pub fn plan(rendered: &str, live: &str, before: &[String]) -> Plan {
    let want = table(rendered);
    let have = table(live);
    let owned: Vec<&String> = want
        .order
        .iter()
        .filter(|c| !BUILTIN_CHAINS.contains(&c.as_str()))
        .collect();
    let stale = stale(&want, &have, before);
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
    let jumps = |chain: &str| {
        let jump = format!("-A INPUT -j {chain}");
        input.iter().filter(|r| **r == jump).count()
    };
    for chain in &stale {
        changes.push(format!(
            "remove chain {chain} (netc's, no longer rendered: {} rules, {} INPUT jumps)",
            have.chains[*chain].len(),
            jumps(chain)
        ));
        body.insert(0, format!(":{chain} - [0:0]"));
        body.extend((0..jumps(chain)).map(|_| format!("-D INPUT -j {chain}")));
        body.push(format!("-X {chain}"));
    }
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
    Plan {
        changes,
        restore,
        chains: owned.into_iter().cloned().collect(),
    }
}

/// The `--noflush` input that takes a table where [`plan`] was carried out (netc's chains as
/// rendered, one INPUT jump each; the stale ones of `owned_before` gone) back to `before`:
/// each chain as it was, or gone if it was not there, and INPUT's jumps to netc's chains
/// where they were: the apply's are taken out, and `before`'s put back at their places among
/// the other INPUT rules (which netc never touches).
pub fn undo(rendered: &str, before: &str, owned_before: &[String]) -> String {
    let want = table(rendered);
    let had = table(before);
    let owned: Vec<&String> = want
        .order
        .iter()
        .filter(|c| !BUILTIN_CHAINS.contains(&c.as_str()))
        .collect();
    let stale = stale(&want, &had, owned_before);
    let all: Vec<&String> = owned.iter().chain(&stale).copied().collect();
    let mut body: Vec<String> = all.iter().map(|c| format!(":{c} - [0:0]")).collect();
    for chain in &all {
        body.extend(had.chains.get(*chain).into_iter().flatten().cloned());
    }
    body.extend(owned.iter().map(|c| format!("-D INPUT -j {c}")));
    let (mut other, mut put_back) = (0, 0);
    for rule in had.chains.get("INPUT").into_iter().flatten() {
        match rule.strip_prefix("-A INPUT -j ") {
            Some(c) if all.iter().any(|a| *a == c) => {
                put_back += 1;
                body.push(format!("-I INPUT {} -j {c}", other + put_back));
            }
            _ => other += 1,
        }
    }
    for chain in owned.iter().filter(|c| !had.chains.contains_key(**c)) {
        body.push(format!("-X {chain}"));
    }
    format!("*filter\n{}\nCOMMIT\n", body.join("\n"))
}

/// Whether `live` still holds what loading `payload` (a [`plan`] or [`undo`] input) left:
/// every chain it declares with exactly its rules, every chain it deletes gone.
pub fn left_by(payload: &str, live: &str) -> bool {
    let p = table(payload);
    let have = table(live);
    let deleted: Vec<&str> = payload
        .lines()
        .filter_map(|l| l.strip_prefix("-X "))
        .map(str::trim)
        .collect();
    p.order.iter().all(|c| {
        if deleted.contains(&c.as_str()) {
            return !have.chains.contains_key(c);
        }
        have.chains.get(c) == Some(&p.chains[c])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str = "# generated\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:CS - [0:0]\n-A INPUT -j CS\n-A CS -s 192.0.2.0/24 -j RETURN\n-A CS -p tcp -m multiport --dports 16509 -j REJECT --reject-with icmp-port-unreachable\nCOMMIT\n";

    #[test]
    fn a_fresh_table_gets_the_chain_and_one_jump() {
        let live = "*filter\n:INPUT ACCEPT [5:300]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:LIBVIRT_INP - [0:0]\n-A INPUT -j LIBVIRT_INP\nCOMMIT\n";
        let p = plan(RENDERED, live, &[]);
        assert_eq!(
            p.restore.unwrap(),
            "*filter\n:CS - [0:0]\n-A CS -s 192.0.2.0/24 -j RETURN\n-A CS -p tcp -m multiport --dports 16509 -j REJECT --reject-with icmp-port-unreachable\n-I INPUT 1 -j CS\nCOMMIT\n"
        );
        assert_eq!(
            undo(RENDERED, live, &[]),
            "*filter\n:CS - [0:0]\n-D INPUT -j CS\n-X CS\nCOMMIT\n"
        );
        assert_eq!(
            p.changes,
            vec!["create chain CS (2 rules)", "add the INPUT jump to CS"]
        );
    }

    #[test]
    fn a_matching_table_needs_nothing() {
        let p = plan(RENDERED, RENDERED, &[]);
        assert_eq!(p.restore, None);
        assert!(p.changes.is_empty());
    }

    #[test]
    fn extra_jumps_go_and_a_changed_chain_is_restated() {
        let live = RENDERED
            .replace("-A INPUT -j CS\n", "-A INPUT -j CS\n-A INPUT -j CS\n")
            .replace("192.0.2.0/24", "192.0.2.0/25");
        let p = plan(RENDERED, &live, &[]);
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

    #[test]
    fn a_renamed_chain_replaces_the_old_one_and_the_undo_brings_it_back() {
        let renamed = RENDERED.replace("CS", "NEW");
        let p = plan(&renamed, RENDERED, &["CS".into()]);
        assert_eq!(
            p.changes,
            vec![
                "create chain NEW (2 rules)",
                "remove chain CS (netc's, no longer rendered: 2 rules, 1 INPUT jumps)",
                "add the INPUT jump to NEW"
            ]
        );
        let r = p.restore.unwrap();
        assert!(r.starts_with("*filter\n:CS - [0:0]\n:NEW - [0:0]\n"), "{r}");
        assert!(r.contains("-D INPUT -j CS\n-X CS\n"), "{r}");
        assert_eq!(p.chains, ["NEW"]);
        let after = renamed.clone();
        assert!(left_by(&r, &after));
        assert!(!left_by(&r, RENDERED));
        let u = undo(&renamed, RENDERED, &["CS".into()]);
        assert!(
            u.contains(":CS - [0:0]") && u.contains("-I INPUT 1 -j CS"),
            "{u}"
        );
        assert!(u.contains("-D INPUT -j NEW") && u.contains("-X NEW"), "{u}");
        assert!(left_by(&u, RENDERED));
        // A chain netc never owned is never removed.
        let p = plan(&renamed, RENDERED, &[]);
        assert!(!p.restore.unwrap().contains("-X CS"));
    }

    /// The undo puts netc's INPUT jumps back where they were among the other rules, in their
    /// order, whatever order the apply left them in.
    #[test]
    fn the_undo_puts_jumps_back_in_their_places() {
        let two = "*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A A -j RETURN\n-A B -j RETURN\nCOMMIT\n";
        let before = "*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n:LIBVIRT_INP - [0:0]\n\
                      -A INPUT -j LIBVIRT_INP\n-A INPUT -j B\n-A INPUT -p tcp -j ACCEPT\n-A INPUT -j A\n\
                      -A A -j RETURN\n-A B -j RETURN\nCOMMIT\n";
        let u = undo(two, before, &[]);
        assert!(
            u.ends_with("-D INPUT -j A\n-D INPUT -j B\n-I INPUT 2 -j B\n-I INPUT 4 -j A\nCOMMIT\n"),
            "{u}"
        );
    }
}
