//! Diagnostics: a stable code, a severity, labelled spans and a help line.
//!
//! Every user mistake is one [`Diag`]; the parser and checker collect them all and
//! [`report`](crate::report) shows them, through miette, in one place.

use std::fmt;

use crate::source::Span;

macro_rules! codes {
    ($($variant:ident => $name:literal, $severity:ident;)*) => {
        /// Every diagnostic netc can report. The string form (`netc::unknown-vlan`) is stable:
        /// scripts and docs may rely on it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => concat!("netc::", $name),)* }
            }

            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }
        }
    };
}

codes! {
    NotUtf8 => "not-utf8", Error;
    Syntax => "syntax", Error;
    BadNumber => "bad-number", Error;
    BadAddress => "bad-address", Error;
    BadPrefix => "bad-prefix", Error;
    BadName => "bad-name", Error;
    MissingSetting => "missing-setting", Error;
    DuplicateSetting => "duplicate-setting", Error;
    UnknownVlan => "unknown-vlan", Error;
    UnknownHost => "unknown-host", Error;
    UnknownNic => "unknown-nic", Error;
    UnknownBridge => "unknown-bridge", Error;
    UnknownRole => "unknown-role", Error;
    UnknownSetting => "unknown-setting", Error;
    DuplicateVlan => "duplicate-vlan", Error;
    DuplicateHost => "duplicate-host", Error;
    DuplicateInterface => "duplicate-interface", Error;
    DuplicateAddress => "duplicate-address", Error;
    DuplicateRole => "duplicate-role", Error;
    DuplicateFamily => "duplicate-family", Error;
    DuplicateBridgeVlan => "duplicate-bridge-vlan", Error;
    VlanIdRange => "vlan-id-range", Error;
    InterfaceNameTooLong => "interface-name-too-long", Error;
    GuestBridgeNameTooLong => "guest-bridge-name-too-long", Warning;
    AddressWithPrefix => "address-with-prefix", Error;
    AddressOutsidePrefix => "address-outside-prefix", Error;
    AddressFamily => "address-family", Error;
    AddressIsNetwork => "address-is-network", Error;
    AddressIsBroadcast => "address-is-broadcast", Error;
    AddressIsGateway => "address-is-gateway", Error;
    HostBitsSet => "host-bits-set", Error;
    GatewayOutsidePrefix => "gateway-outside-prefix", Error;
    DuplicateDefaultGateway => "duplicate-default-gateway", Error;
    VipOutsideVlan => "vip-outside-vlan", Error;
    VipMemberWithoutBridge => "vip-member-without-bridge", Error;
    VipIsHostAddress => "vip-is-host-address", Error;
    DuplicateRouterId => "duplicate-router-id", Error;
    RouterIdRange => "router-id-range", Error;
    PriorityRange => "priority-range", Error;
    DuplicatePriority => "duplicate-priority", Error;
    DuplicateMember => "duplicate-member", Error;
    AgentMissingBridge => "agent-missing-bridge", Error;
    NoManagementPath => "no-management-path", Error;
    NoManagementServer => "no-management-server", Error;
    PortRange => "port-range", Error;
    DuplicatePort => "duplicate-port", Error;
    DuplicateChain => "duplicate-chain", Error;
    ChainNameTooLong => "chain-name-too-long", Error;
    CoveredSource => "covered-source", Warning;
    VlanWithoutPrefix => "vlan-without-prefix", Error;
    NoHosts => "no-hosts", Error;
    BadConfig => "bad-config", Error;
    VipMemberNotManagementServer => "vip-member-not-management-server", Warning;
    PortCollision => "port-collision", Warning;
    WellKnownPort => "well-known-port", Warning;
    DuplicateVip => "duplicate-vip", Error;
    NoVlanWithRole => "no-vlan-with-role", Error;
    RelativePath => "relative-path", Error;
    RuleNeverMatches => "rule-never-matches", Warning;
    EphemeralPort => "ephemeral-port", Warning;
    MtuRange => "mtu-range", Error;
    MtuMismatch => "mtu-mismatch", Error;
    BondSlave => "bond-slave", Error;
    DuplicateBridgePort => "duplicate-bridge-port", Error;
    BadDefaultRoute => "bad-default-route", Error;
    UnusedAllow => "unused-allow", Warning;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in the input: code, message, the spans it is about and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub code: Code,
    pub message: String,
    /// The first label is the primary one: the exact place of the mistake.
    pub labels: Vec<(Span, String)>,
    pub help: Option<String>,
}

impl Diag {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diag {
            code,
            message: message.into(),
            labels: Vec::new(),
            help: None,
        }
    }

    /// Something said twice: the later place (`again`, the line just written) is the primary
    /// label, the earlier one (`first`) the second: "declared again here", "first declared
    /// here".
    pub fn repeated(
        code: Code,
        message: impl Into<String>,
        verb: &str,
        again: Span,
        first: Span,
    ) -> Self {
        Diag::new(code, message)
            .label(again, format!("{verb} again here"))
            .label(first, format!("first {verb} here"))
    }

    pub fn label(mut self, span: Span, text: impl Into<String>) -> Self {
        self.labels.push((span, text.into()));
        self
    }

    pub fn help(mut self, text: impl Into<String>) -> Self {
        self.help = Some(text.into());
        self
    }

    pub fn severity(&self) -> Severity {
        self.code.severity()
    }

    pub fn is_error(&self) -> bool {
        self.severity() == Severity::Error
    }

    /// The primary span (where the mistake is).
    pub fn span(&self) -> Span {
        self.labels.first().map(|l| l.0).unwrap_or_default()
    }
}

/// `"did you mean `x`?"` for the candidate closest to `word`, if any is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate closest to `word` by edit distance (transpositions count once; one that
/// differs in ASCII case alone is closest), if it is close enough to be a plausible typo.
fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = word.chars().count();
    let limit = (len / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        // The distance is at least the difference in length: most candidates end here,
        // cheaply, so many unknown names against many known ones stay fast.
        .filter(|c| c.chars().count().abs_diff(len) <= limit)
        // Another case only (`BILOBA`) is the closest there is.
        .map(|c| match c.eq_ignore_ascii_case(word) {
            true => (0, c),
            false => (strsim::osa_distance(word, c), c),
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}
