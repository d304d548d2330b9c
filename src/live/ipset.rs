//! Planning a live ipset change: netc's `hash:net` sets (rendered to etc/iptables/ipsets),
//! each created or replaced atomically, never another set.
//!
//! Input: the rendered ipsets file and the live `ipset save`, which have one format
//! (`create NAME TYPE OPTIONS…`, `add NAME ELEMENT`). A set that is missing is created with
//! its elements; a set whose elements differ is filled anew under a temporary name and
//! swapped in with `ipset swap` (the rules that match it see the old or the new set, never a
//! half-filled one), then the temporary set is destroyed. Both run in one `ipset -exist
//! restore`, before the iptables rules that match the sets. The undo destroys a created set
//! (after the rules no longer match it) or swaps the old elements back the same way.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use crate::model::Family;

/// The temporary set a swap fills, with the family's ipset name after it
/// (`netc-swap-inet`, `netc-swap-inet6`).
const SWAP: &str = "netc-swap-";

/// Whether `name` is one of netc's sets: a chain's `<CHAIN>_v4` or `_v6` (as render names
/// them), or a swap's temporary set.
pub fn netc_set(name: &str) -> bool {
    match name.strip_prefix(SWAP) {
        Some(family) => matches!(family, "inet" | "inet6"),
        None => Family::ALL.iter().any(|f| {
            name.strip_suffix(f.suffix())
                .is_some_and(|n| n.ends_with('_'))
        }),
    }
}

/// What a set is: its `create` line's words after the name, and its elements.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Set {
    options: Vec<String>,
    elements: BTreeSet<IpNet>,
    /// Elements whose `add` line says more (`nomatch`: the prefix is excluded, not matched;
    /// `timeout 30`: it goes by itself), with those words: never netc's.
    flagged: BTreeMap<IpNet, String>,
}

impl Set {
    /// `hash:net family inet`: what must agree for a swap.
    fn kind(&self) -> (Option<&str>, Option<&str>) {
        let ty = self.options.first().map(String::as_str);
        let family = self
            .options
            .windows(2)
            .find(|w| w[0] == "family")
            .map(|w| w[1].as_str());
        (ty, family.or(Some("inet")))
    }
}

/// The sets of an `ipset save` (or a rendered ipsets file), by name. Elements that are not
/// prefixes (other set types) are kept out: such a set differs in kind anyway.
fn sets(save: &str) -> BTreeMap<String, Set> {
    let mut out: BTreeMap<String, Set> = BTreeMap::new();
    for line in save.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("create"), Some(name)) => {
                let options = words.map(str::to_string).collect();
                out.insert(
                    name.to_string(),
                    Set {
                        options,
                        elements: BTreeSet::new(),
                        flagged: BTreeMap::new(),
                    },
                );
            }
            (Some("add"), Some(name)) => {
                let element = words.next().and_then(prefix);
                let rest = words.collect::<Vec<_>>().join(" ");
                if let (Some(set), Some(e)) = (out.get_mut(name), element) {
                    match rest.is_empty() {
                        true => set.elements.insert(e),
                        false => set.flagged.insert(e, rest).is_none(),
                    };
                }
            }
            _ => {}
        }
    }
    out
}

/// The sets an old ipsets file declared that a new one (if any) no longer does.
pub fn dropped(old: &str, new: Option<&str>) -> Vec<String> {
    let new = new.map(sets).unwrap_or_default();
    sets(old)
        .into_keys()
        .filter(|name| !new.contains_key(name))
        .collect()
}

/// Whether an `ipset save` has a set of this name.
pub fn exists(save: &str, name: &str) -> bool {
    sets(save).contains_key(name)
}

/// `10.0.0.1` (a host) or `10.0.0.0/8`.
pub(super) fn prefix(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// As `ipset save` writes it: a host prefix as its address.
fn element(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// What changes, one line each, for people.
    pub changes: Vec<String>,
    /// Sets of netc's names that are something else: apply refuses.
    pub refusals: Vec<String>,
    /// The `ipset -exist restore` input; `None` when every set matches.
    pub restore: Option<String>,
    /// The input that undoes `restore`.
    pub undo: String,
}

/// The plan that makes the live sets hold the rendered ones.
pub fn plan(rendered: &str, live: &str) -> Plan {
    let want = sets(rendered);
    let have = sets(live);
    let mut p = Plan::default();
    let (mut forward, mut undo) = (String::new(), String::new());
    for (name, set) in &want {
        match have.get(name) {
            None => {
                p.changes.push(format!(
                    "ipset {name}: create ({} prefixes)",
                    set.elements.len()
                ));
                fill(&mut forward, name, set);
                undo += &format!("destroy {name}\n");
            }
            Some(old) if old.kind() != set.kind() => p.refusals.push(format!(
                "ipset {name} exists as `{}`, netc's is `{}`: rename or remove it \
                 (`ipset destroy {name}` once no rule matches it)",
                old.options.join(" "),
                set.options.join(" ")
            )),
            Some(old) if old.elements == set.elements && old.flagged.is_empty() => {}
            Some(old) => {
                let added = set.elements.difference(&old.elements).count();
                let removed = old.elements.difference(&set.elements).count() + old.flagged.len();
                p.changes.push(format!(
                    "ipset {name}: swap in {} prefixes (+{added} −{removed})",
                    set.elements.len()
                ));
                swap(&mut forward, name, set);
                swap(&mut undo, name, old);
            }
        }
    }
    if !forward.is_empty() {
        p.restore = Some(forward);
        p.undo = undo;
    }
    p
}

/// The input that puts back, as `live` (`ipset save`) has them now, the sets of these names
/// that it has: created if they are gone by then (removed by hand once netc's rules no longer
/// matched them), their elements swapped in. The undo of an apply after which netc's rules no
/// longer match them: the rules it restores match them again.
pub fn kept(names: &[String], live: &str) -> Option<String> {
    let have = sets(live);
    let mut out = String::new();
    for (name, set) in names.iter().filter_map(|n| Some((n, have.get(n)?))) {
        out += &format!("create {name} {}\n", set.options.join(" "));
        swap(&mut out, name, set);
    }
    (!out.is_empty()).then_some(out)
}

/// `create` and `add` lines of a set.
fn fill(out: &mut String, name: &str, set: &Set) {
    *out += &format!("create {name} {}\n", set.options.join(" "));
    for e in &set.elements {
        *out += &format!("add {name} {}\n", element(e));
    }
    for (e, rest) in &set.flagged {
        *out += &format!("add {name} {} {rest}\n", element(e));
    }
}

/// Fills a temporary set and swaps it with `name`; the temporary one (then holding the old
/// elements) is destroyed. One left over by an interrupted apply is destroyed first (under
/// `-exist`, destroying a missing set is no error, and creating an existing one of other
/// options would keep the old one).
fn swap(out: &mut String, name: &str, set: &Set) {
    let (_, family) = set.kind();
    let tmp = format!("{SWAP}{}", family.unwrap_or("inet"));
    *out += &format!("destroy {tmp}\n");
    fill(out, &tmp, set);
    *out += &format!("swap {tmp} {name}\ndestroy {tmp}\n");
}

/// Whether `live` (`ipset save`) holds what loading `payload` (a [`plan`]'s restore or
/// undo) leaves: each set it ends with, with exactly its elements (flagged ones flagged,
/// whatever a timeout has counted down to); each it destroys, gone.
/// The temporary sets of a swap are left out: no rule of netc's matches them, and one that
/// could not be destroyed (someone else's rule matches it) is not a change netc made.
pub fn left_by(payload: &str, live: &str) -> bool {
    let mut end: BTreeMap<String, Option<BTreeSet<(IpNet, bool)>>> = BTreeMap::new();
    for line in payload.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["create", name, ..] => {
                end.insert(name.to_string(), Some(BTreeSet::new()));
            }
            ["add", name, e, ref rest @ ..] => {
                if let (Some(Some(set)), Some(e)) = (end.get_mut(name), prefix(e)) {
                    set.insert((e, !rest.is_empty()));
                }
            }
            ["destroy", name] => {
                end.insert(name.to_string(), None);
            }
            ["swap", a, b] => {
                let (x, y) = (end.remove(a).flatten(), end.remove(b).flatten());
                end.insert(a.to_string(), y);
                end.insert(b.to_string(), x);
            }
            _ => {}
        }
    }
    let have = sets(live);
    end.retain(|name, _| !name.starts_with(SWAP));
    end.iter().all(|(name, set)| match set {
        None => !have.contains_key(name),
        Some(elements) => have.get(name).is_some_and(|h| {
            let plain = h.elements.iter().map(|e| (*e, false));
            let flagged = h.flagged.keys().map(|e| (*e, true));
            plain.chain(flagged).collect::<BTreeSet<_>>() == *elements
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netcs_sets_are_known_by_name() {
        for ours in ["CS_v4", "CS_v6", "netc-swap-inet", "netc-swap-inet6"] {
            assert!(netc_set(ours), "{ours}");
        }
        for theirs in ["libvirt", "CSv4", "CS_v5", "netc-swap-inet7", "netc-swap-"] {
            assert!(!netc_set(theirs), "{theirs}");
        }
    }

    #[test]
    fn left_by_follows_creates_swaps_and_destroys() {
        let live = "create CS_v4 hash:net family inet\nadd CS_v4 10.0.0.0/8\n";
        let p = plan(RENDERED, live);
        let after =
            "create CS_v4 hash:net family inet\nadd CS_v4 10.0.0.1\nadd CS_v4 10.1.0.0/16\n";
        let restore = p.restore.unwrap();
        assert!(left_by(&restore, after));
        assert!(!left_by(&restore, live));
        assert!(left_by(&p.undo, live));
        let fresh = plan(RENDERED, "");
        assert!(left_by(&fresh.undo, ""));
        assert!(!left_by(&fresh.undo, after));
    }

    const RENDERED: &str = "# generated\ncreate CS_v4 hash:net family inet hashsize 1024 maxelem 65536\nadd CS_v4 10.0.0.1\nadd CS_v4 10.1.0.0/16\n";

    #[test]
    fn a_missing_set_is_created_and_its_undo_destroys_it() {
        let p = plan(
            RENDERED,
            "create other hash:ip family inet\nadd other 10.9.9.9\n",
        );
        assert_eq!(
            p.restore.as_deref(),
            Some(
                "create CS_v4 hash:net family inet hashsize 1024 maxelem 65536\nadd CS_v4 10.0.0.1\nadd CS_v4 10.1.0.0/16\n"
            )
        );
        assert_eq!(p.undo, "destroy CS_v4\n");
        assert_eq!(p.changes, vec!["ipset CS_v4: create (2 prefixes)"]);
    }

    #[test]
    fn the_same_elements_in_another_spelling_need_nothing() {
        let live = "create CS_v4 hash:net family inet hashsize 2048 maxelem 65536 bucketsize 12 initval 0x1\nadd CS_v4 10.1.0.0/16\nadd CS_v4 10.0.0.1/32\n";
        assert_eq!(plan(RENDERED, live), Plan::default());
    }

    #[test]
    fn other_elements_are_swapped_in_and_back() {
        let live = "create CS_v4 hash:net family inet hashsize 1024 maxelem 65536 initval 0x1\nadd CS_v4 10.0.0.1\nadd CS_v4 10.2.0.0/16\n";
        let p = plan(RENDERED, live);
        let r = p.restore.unwrap();
        assert!(
            r.starts_with(
                "destroy netc-swap-inet\ncreate netc-swap-inet hash:net family inet hashsize 1024"
            ) && r.contains("add netc-swap-inet 10.1.0.0/16\n")
                && r.ends_with("swap netc-swap-inet CS_v4\ndestroy netc-swap-inet\n"),
            "{r}"
        );
        assert!(
            p.undo.contains("add netc-swap-inet 10.2.0.0/16\n"),
            "{}",
            p.undo
        );
        assert!(p.undo.contains("initval 0x1"), "{}", p.undo);
        assert_eq!(p.changes, vec!["ipset CS_v4: swap in 2 prefixes (+1 −1)"]);
    }

    /// An exclusion (`nomatch`) or an element that times out is not netc's element: swapped
    /// out, and put back as it was by the undo.
    #[test]
    fn flagged_elements_are_swapped_out() {
        let live = "create CS_v4 hash:net family inet hashsize 1024 maxelem 65536\nadd CS_v4 10.0.0.1 nomatch\nadd CS_v4 10.1.0.0/16\n";
        let p = plan(RENDERED, live);
        assert_eq!(p.changes, vec!["ipset CS_v4: swap in 2 prefixes (+1 −1)"]);
        assert!(
            p.undo.contains("add netc-swap-inet 10.0.0.1 nomatch\n"),
            "{}",
            p.undo
        );
        assert!(left_by(&p.undo, live));
        assert!(!left_by(&p.restore.unwrap(), live));
        let timing = "create CS_v4 hash:net family inet timeout 60\nadd CS_v4 10.0.0.1 timeout 59\nadd CS_v4 10.1.0.0/16 timeout 59\n";
        let p = plan(RENDERED, timing);
        assert!(p.restore.is_some());
        assert!(left_by(&p.undo, &timing.replace("59", "12")));
    }

    #[test]
    fn kept_sets_are_made_again_as_they_are() {
        let live = "create CS_v4 hash:net family inet hashsize 1024 maxelem 65536\nadd CS_v4 10.0.0.1\ncreate X_v6 hash:net family inet6\n";
        let undo = kept(&["CS_v4".into(), "gone_v4".into()], live).unwrap();
        assert!(undo.starts_with("create CS_v4 hash:net family inet hashsize 1024 maxelem 65536\ndestroy netc-swap-inet\n"), "{undo}");
        assert!(left_by(&undo, live) && !left_by(&undo, ""));
        assert_eq!(kept(&["gone_v4".into()], live), None);
    }

    #[test]
    fn a_set_of_another_kind_under_netcs_name_is_refused() {
        let live = "create CS_v4 hash:ip family inet\n";
        let p = plan(RENDERED, live);
        assert_eq!(p.restore, None);
        assert!(p.refusals[0].starts_with("ipset CS_v4 exists as `hash:ip family inet`"));
        let live = "create CS_v4 hash:net family inet6\n";
        assert_eq!(plan(RENDERED, live).refusals.len(), 1);
    }
}
