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
    pub nics: Vec<Text>,
    pub bridges: Vec<Bridge>,
}

#[derive(Debug, Clone)]
pub struct AgentHost {
    pub span: Span,
    pub devices: Vec<(Spanned<Device>, Text)>,
}

#[derive(Debug, Clone)]
pub struct Bridge {
    pub name: Text,
    pub vlan: Text,
    pub nic: Text,
    pub addresses: Vec<Text>,
}

#[derive(Debug, Clone)]
pub struct Vip {
    pub name: Text,
    pub vlans: Vec<Text>,
    pub addresses: Vec<Text>,
    pub router_ids: Vec<Text>,
    pub members: Vec<Member>,
    pub checks: Vec<Check>,
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
    pub devices: Vec<(Spanned<Device>, Text)>,
}
