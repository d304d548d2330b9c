//! AST → model, reporting every problem at once.
//!
//! The checker never stops at the first mistake: each section resolves what it can, records a
//! diagnostic for what it cannot and carries on with the rest. A model is returned only when no
//! error was found; warnings travel with it.
//!
//! One mistake, one error: a diagnostic whose cause is an earlier one on the same object is
//! not reported. An object with an error is marked — a VLAN whose id or prefix was rejected
//! (`broken_vlans`, `incomplete_vlans`), a bridge with an error or on such a VLAN (the host is
//! then [`HostCx::incomplete_on`] that VLAN), a bridge that repeats another's VLAN or name
//! (skipped), a VIP address that was rejected (its family is not required of the members) —
//! and checks that depend on it skip it instead of reporting what the first error already
//! explains. An error on another object explains nothing: two mistakes are two errors.
//!
//! One file per part of the language, in the order they are checked: [`vlans`], [`hosts`],
//! [`agents`], [`vips`], [`firewall`]; [`values`] reads literals and [`cover`] finds allowed
//! sources that add nothing.

mod agents;
mod allow;
mod cover;
mod firewall;
mod hosts;
mod links;
mod routes;
mod values;
mod vips;
mod vlans;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use crate::diag::{Code, Diag, did_you_mean};
use crate::model::{BridgeType, Device, Family, Host, Role, Topology, Vlan};
use crate::source::{Source, Span};
use crate::syntax::ast::{self, Text};

pub use values::{CHAIN_MAX, IFNAME_MAX};

/// The result of checking: the model (only if there were no errors) and every diagnostic.
pub struct Checked {
    pub topology: Option<Topology>,
    pub diags: Vec<Diag>,
}

pub fn check(file: &ast::File, source: &Source) -> Checked {
    let mut cx = Checker::new(source, SUGGESTION_BUDGET);
    let vlans = cx.vlans(&file.vlans);
    let mut hosts = cx.hosts(&file.hosts);
    let defaults = cx.agent_defaults(&file.agents);
    cx.agents(&file.hosts, &mut hosts, &defaults, &file.vips);
    let vips = cx.vips(&file.vips, &hosts);
    let policies = cx.policies(&file.firewalls, &hosts);
    if file.hosts.is_empty() {
        // An empty topology would build an empty tree and wipe out/: never what was meant.
        let end = crate::source::end_of_code(&source.text);
        let d = Diag::new(Code::NoHosts, "the topology declares no hosts")
            .label(Span::new(end, end), "no `host` block in this file")
            .help("declare at least one `host NAME { ... }`; is this the right file?");
        cx.emit(d);
    }

    let mut diags = cx.diags;
    diags.sort_by_key(|d| (d.span(), d.code));
    diags.dedup();
    allow::apply(&mut diags, source);
    let ok = !diags.iter().any(Diag::is_error);
    Checked {
        topology: ok.then(|| Topology {
            source: source.name.clone(),
            vlans,
            hosts: hosts.into_iter().map(|h| h.model).collect(),
            vips,
            policies,
        }),
        diags,
    }
}

struct Checker<'a> {
    source: &'a Source,
    diags: Vec<Diag>,
    /// The errors among `diags` (counted as they come: asked after every host and VLAN).
    errors: usize,
    /// Valid VLANs by id, with the span of their id.
    vlans: BTreeMap<u16, (Vlan, Span)>,
    /// Every host address, for duplicate and VIP-collision checks.
    host_addrs: HashMap<IpAddr, (String, Span)>,
    /// VLAN ids as written whose declaration was rejected: references to them are not
    /// reported again.
    broken_vlans: HashSet<String>,
    /// VLANs with a rejected prefix: "no prefix of this family" would be a follow-on error.
    incomplete_vlans: HashSet<u16>,
    /// The help line for an unknown name, by what it names and the word: computed once per
    /// word, so a mistake repeated on many lines costs one search among the declared names.
    suggestions: HashMap<(&'static str, String), String>,
    /// What is left of [`SUGGESTION_BUDGET`].
    comparisons_left: usize,
}

/// Word comparisons did-you-mean may make in one check: thousands of distinct unknown names
/// among thousands of declared ones would otherwise cost their product. Past the budget, an
/// unknown name's help lists the declared names (the first ten) without a guess.
const SUGGESTION_BUDGET: usize = 2_000_000;

/// A host being checked: the model so far and the spans later checks point at.
struct HostCx {
    model: Host,
    name_span: Span,
    /// VLANs on which a bridge of the host had an error (its VLAN, its addresses, a second
    /// bridge on the VLAN): checks for what the host lacks there would only repeat it.
    incomplete_vlans: HashSet<u16>,
    /// A bridge had an error that hides which VLAN it was meant for (an unknown VLAN,
    /// addresses on a bridge without one): what the host lacks on any VLAN may be that.
    incomplete_anywhere: bool,
    /// Bridge name → (span of its name, span of its VLAN).
    bridge_spans: HashMap<String, (Span, Span)>,
    /// Addresses on VLANs with a gateway of their family: (VLAN, family, address span).
    gateway_spans: Vec<(u16, Family, Span)>,
    /// NIC and bond name → span of its name.
    link_spans: HashMap<String, Span>,
}

impl HostCx {
    /// Whether an error on the host's bridges may explain what it lacks on `vlan`. (An
    /// error elsewhere, a NIC's MTU say, explains nothing it lacks: that is still reported.)
    fn incomplete_on(&self, vlan: u16) -> bool {
        self.incomplete_anywhere || self.incomplete_vlans.contains(&vlan)
    }
}

/// The site-wide agent settings, with defaults filled in.
struct Defaults {
    port: u16,
    bridge_type: BridgeType,
    connect: Family,
    /// Each device's role, with the span it was set at (None: the default).
    devices: BTreeMap<Device, (Role, Option<Span>)>,
    /// `servers …`: host= as stated (else the management servers in topology order).
    servers: Option<Vec<(bool, Text)>>,
}

impl<'a> Checker<'a> {
    /// A checker with nothing seen yet and `comparisons` for did-you-mean.
    fn new(source: &'a Source, comparisons: usize) -> Self {
        Checker {
            source,
            diags: Vec::new(),
            errors: 0,
            vlans: BTreeMap::new(),
            host_addrs: HashMap::new(),
            broken_vlans: HashSet::new(),
            incomplete_vlans: HashSet::new(),
            suggestions: HashMap::new(),
            comparisons_left: comparisons,
        }
    }

    fn emit(&mut self, diag: Diag) {
        self.errors += usize::from(diag.is_error());
        self.diags.push(diag);
    }

    fn error_count(&self) -> usize {
        self.errors
    }

    /// Records the error, if any, and returns the value.
    fn ok<T>(&mut self, r: Result<T, Diag>) -> Option<T> {
        r.map_err(|d| self.emit(d)).ok()
    }

    /// Reports every statement after the first of a kind that may appear once.
    fn single<'t, T>(
        &mut self,
        items: &'t [T],
        what: &str,
        span: impl Fn(&T) -> Span,
    ) -> Option<&'t T> {
        for extra in items.iter().skip(1) {
            let d = Diag::repeated(
                Code::DuplicateSetting,
                format!("`{what}` is set twice"),
                "set",
                span(extra),
                span(&items[0]),
            )
            .help(format!("keep one `{what}` statement"));
            self.emit(d);
        }
        items.first()
    }

    /// Reports a missing required statement (which may be a list).
    fn required<T>(&mut self, items: &[T], what: &str, owner: &Text) {
        if items.is_empty() {
            let d = Diag::new(
                Code::MissingSetting,
                format!("`{}` has no `{what}`", owner.value),
            )
            .label(owner.span, format!("needs a `{what}` statement"))
            .help(format!(
                "add `{what} …` inside the block of `{}`",
                owner.value
            ));
            self.emit(d);
        }
    }

    fn vlan_ref(&mut self, t: &Text) -> Option<&Vlan> {
        let id = t
            .value
            .parse::<u16>()
            .ok()
            .filter(|id| self.vlans.contains_key(id));
        if id.is_none() && !self.broken_vlans.contains(&t.value) {
            let help = self.suggest("VLANs", &t.value, |cx| {
                cx.vlans.keys().map(u16::to_string).collect()
            });
            let d = Diag::new(Code::UnknownVlan, format!("there is no VLAN {}", t.value))
                .label(t.span, "not a VLAN of this topology")
                .help(help);
            self.emit(d);
        }
        id.map(|id| &self.vlans[&id].0)
    }

    /// "did you mean `x`?" or the declared names (of `what`: "VLANs", "hosts"), once per word.
    fn suggest(
        &mut self,
        what: &'static str,
        word: &str,
        known: impl FnOnce(&Self) -> Vec<String>,
    ) -> String {
        let key = (what, word.to_string());
        if let Some(help) = self.suggestions.get(&key) {
            return help.clone();
        }
        // Past the budget every word gets the same line, kept under the empty word.
        let listed = (what, String::new());
        if let Some(help) = self
            .suggestions
            .get(&listed)
            .filter(|_| self.comparisons_left == 0)
        {
            return help.clone();
        }
        let known = known(self);
        let list = || format!("declared {what}: {}", list_or_none(&known));
        let (key, help) = match self.comparisons_left.checked_sub(known.len()) {
            Some(left) => {
                self.comparisons_left = left;
                let guess = did_you_mean(word, known.iter().map(String::as_str));
                (key, guess.unwrap_or_else(list))
            }
            None => {
                self.comparisons_left = 0;
                (listed, list())
            }
        };
        self.suggestions.insert(key, help.clone());
        help
    }

    fn line(&self, span: Span) -> usize {
        self.source.line_col(span.start).0
    }

    fn unknown_host(&mut self, t: &Text, hosts: &[HostCx]) {
        let help = self.suggest("hosts", &t.value, |_| {
            hosts.iter().map(|h| h.model.name.clone()).collect()
        });
        let d = Diag::new(Code::UnknownHost, format!("there is no host `{}`", t.value))
            .label(t.span, "not a host of this topology")
            .help(help);
        self.emit(d);
    }
}

/// "`a`, `b`, `c`" (the first ten, then how many more), or "none".
fn list_or_none<S: AsRef<str>>(items: &[S]) -> String {
    const SHOWN: usize = 10;
    if items.is_empty() {
        return "none".to_string();
    }
    let shown: Vec<String> = items
        .iter()
        .take(SHOWN)
        .map(|s| format!("`{}`", s.as_ref()))
        .collect();
    match items.len().saturating_sub(SHOWN) {
        0 => shown.join(", "),
        more => format!("{}, … and {more} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_are_cut_at_ten() {
        let names: Vec<String> = (0..25).map(|i| format!("h{i}")).collect();
        assert_eq!(
            list_or_none(&names),
            "`h0`, `h1`, `h2`, `h3`, `h4`, `h5`, `h6`, `h7`, `h8`, `h9`, … and 15 more"
        );
        assert_eq!(list_or_none(&names[..2]), "`h0`, `h1`");
        assert_eq!(list_or_none::<String>(&[]), "none");
    }

    /// Did-you-mean is bounded: past the budget of comparisons, unknown names get the list
    /// of declared ones, and each distinct word is looked up once.
    #[test]
    fn suggestions_are_cached_and_bounded() {
        let source = Source::new("t", "");
        let mut cx = Checker::new(&source, 5);
        let known = |_: &Checker| vec!["alpha".to_string(), "beta".to_string()];
        assert_eq!(cx.suggest("hosts", "alpah", known), "did you mean `alpha`?");
        assert_eq!(
            cx.suggest("hosts", "alpah", |_| unreachable!()),
            "did you mean `alpha`?"
        );
        assert_eq!(cx.suggest("hosts", "bet", known), "did you mean `beta`?");
        assert_eq!(cx.comparisons_left, 1);
        let listed = "declared hosts: `alpha`, `beta`";
        assert_eq!(cx.suggest("hosts", "alph", known), listed);
        assert_eq!(cx.suggest("hosts", "betta", |_| unreachable!()), listed);
    }
}
