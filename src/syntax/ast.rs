//! The spanned syntax tree: what the file says, before any meaning is checked.
//!
//! Numbers, addresses and prefixes stay text here; the checker parses them so that each bad
//! value gets its own coded diagnostic instead of a generic syntax error.

pub use crate::model::{Device, Protocol};
pub use crate::source::Span;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

pub type Text = Spanned<String>;

#[derive(Debug, Default, Clone)]
pub struct File {
    pub vlans: Vec<Vlan>,
    pub hosts: Vec<Host>,
    pub vips: Vec<Vip>,
    pub firewalls: Vec<Firewall>,
    pub agents: Vec<AgentDefaults>,
}

#[derive(Debug, Clone)]
pub struct Vlan {
    pub id: Text,
    pub name: Text,
    pub roles: Vec<Text>,
    pub prefixes: Vec<Prefix>,
    pub mtus: Vec<Text>,
}

#[derive(Debug, Clone)]
pub struct Prefix {
    pub net: Text,
    pub gateway: Option<Text>,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: Text,
    /// Each `management-server` statement (more than one is a duplicate).
    pub management_server: Vec<Span>,
    /// Each `agent` statement, with its per-host device overrides.
    pub agent: Vec<AgentHost>,
    pub nics: Vec<Nic>,
    pub bonds: Vec<Bond>,
    pub bridges: Vec<Bridge>,
    /// Each `default-route vlan N`.
    pub default_routes: Vec<Text>,
}

#[derive(Debug, Clone)]
pub struct Nic {
    pub name: Text,
    pub mtu: Option<Text>,
}

#[derive(Debug, Clone)]
pub struct Bond {
    pub name: Text,
    pub slaves: Vec<Vec<Text>>,
    /// `mode`, `miimon`, … as (keyword, value).
    pub settings: Vec<(Text, Text)>,
    pub mtus: Vec<Text>,
}

#[derive(Debug, Clone)]
pub struct AgentHost {
    pub span: Span,
    pub devices: Vec<(Spanned<Device>, Text)>,
}

#[derive(Debug, Clone)]
pub struct Bridge {
    pub name: Text,
    /// `vlan N` or `untagged vlan N`; none: untagged, on no VLAN of the topology.
    pub vlan: Option<Text>,
    /// The bridge takes the link's untagged frames (no 802.1Q subinterface).
    pub untagged: bool,
    /// The NIC or bond it is on.
    pub nic: Text,
    pub addresses: Vec<Text>,
    /// The span of the whole header, for what is wrong with the bridge as a whole.
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Vip {
    pub name: Text,
    pub vlans: Vec<Text>,
    pub addresses: Vec<Text>,
    pub router_ids: Vec<Text>,
    pub members: Vec<Member>,
    pub checks: Vec<Check>,
    /// Each `nopreempt`.
    pub nopreempt: Vec<Span>,
    /// Each `preempt-delay N`.
    pub preempt_delays: Vec<Text>,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub host: Text,
    pub priority: Text,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub span: Span,
    pub script: Text,
    pub interval: Option<Text>,
}

#[derive(Debug, Clone)]
pub struct Firewall {
    pub name: Text,
    pub ports: Vec<Ports>,
    pub allows: Vec<Allow>,
    pub on: Vec<Vec<Text>>,
}

#[derive(Debug, Clone)]
pub struct Ports {
    pub protocol: Protocol,
    pub numbers: Vec<Text>,
}

#[derive(Debug, Clone)]
pub enum Allow {
    Vlan(Text),
    Prefix(Text),
}

#[derive(Debug, Clone)]
pub struct AgentDefaults {
    pub span: Span,
    pub ports: Vec<Text>,
    pub bridge_types: Vec<Text>,
    pub connects: Vec<Text>,
    /// Each `servers` statement: its items, `vip NAME` (true) or a host name.
    pub servers: Vec<Vec<(bool, Text)>>,
    pub devices: Vec<(Spanned<Device>, Text)>,
}
