//! The checked topology: plain data, every reference resolved, every value in range.
//!
//! Nothing here knows about templates, files or netlink. Renderers and apply read this and
//! nothing else. Lists keep the order of the source file, which makes output deterministic.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub fn of_net(net: &IpNet) -> Family {
        Family::of(&net.addr())
    }

    /// Every name a family goes by, in one place.
    pub fn name(self) -> &'static str {
        self.pick("IPv4", "IPv6")
    }

    /// The short suffix of per-family names: `rules.v4`, `mariadb_v6`, `CHAIN_v4_24`.
    pub fn suffix(self) -> &'static str {
        self.pick("v4", "v6")
    }

    /// The keyword of the language (`connect ipv4`) and of nftables (`meta nfproto ipv4`).
    pub fn keyword(self) -> &'static str {
        self.pick("ipv4", "ipv6")
    }

    pub fn from_keyword(word: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.keyword() == word)
    }

    /// ifupdown's address family: `iface br0 inet6 static`.
    pub fn ifupdown(self) -> &'static str {
        self.pick("inet", "inet6")
    }

    /// The iptables command of the family: `iptables`, `ip6tables` (`-save`, `-restore`).
    pub fn iptables(self) -> &'static str {
        self.pick("iptables", "ip6tables")
    }

    /// nftables: the address selector (`ip saddr`) and the set element type.
    pub fn nft_selector(self) -> &'static str {
        self.pick("ip", "ip6")
    }

    pub fn nft_addr_type(self) -> &'static str {
        self.pick("ipv4_addr", "ipv6_addr")
    }

    fn pick(self, v4: &'static str, v6: &'static str) -> &'static str {
        match self {
            Family::V4 => v4,
            Family::V6 => v6,
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn keyword(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Device {
    Private,
    Public,
    Guest,
}

impl Device {
    pub const ALL: [Device; 3] = [Device::Private, Device::Public, Device::Guest];
    pub fn keyword(self) -> &'static str {
        match self {
            Device::Private => "private",
            Device::Public => "public",
            Device::Guest => "guest",
        }
    }
}

/// What a VLAN is for; the agent's device keys refer to VLANs by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Management,
    Guest,
    Public,
    Uplink,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Management, Role::Guest, Role::Public, Role::Uplink];

    pub fn name(self) -> &'static str {
        match self {
            Role::Management => "management",
            Role::Guest => "guest",
            Role::Public => "public",
            Role::Uplink => "uplink",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The source file as named on the command line (for "generated from" headers).
    pub source: String,
    pub vlans: Vec<Vlan>,
    pub hosts: Vec<Host>,
    pub vips: Vec<Vip>,
    pub policies: Vec<Policy>,
}

impl Topology {
    pub fn vlan(&self, id: u16) -> Option<&Vlan> {
        self.vlans.iter().find(|v| v.id == id)
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The VIPs `host` is a member of.
    pub fn vips_of<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Vip> + 'a {
        self.vips
            .iter()
            .filter(move |v| v.members.iter().any(|m| m.host == host))
    }

    /// The firewall policies that apply on `host`.
    pub fn policies_on<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Policy> + 'a {
        self.policies.iter().filter(move |p| p.hosts.contains(host))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vlan {
    pub id: u16,
    pub name: String,
    pub role: Option<Role>,
    /// At most one subnet per family.
    pub subnets: Vec<Subnet>,
}

impl Vlan {
    pub fn subnet(&self, family: Family) -> Option<&Subnet> {
        self.subnets
            .iter()
            .find(|s| Family::of_net(&s.net) == family)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub net: IpNet,
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub management_server: bool,
    pub agent: Option<Agent>,
    pub nics: Vec<String>,
    pub bridges: Vec<Bridge>,
}

impl Host {
    pub fn bridge_on(&self, vlan: u16) -> Option<&Bridge> {
        self.bridges.iter().find(|b| b.vlan == vlan)
    }

    pub fn is_cloudstack(&self) -> bool {
        self.management_server || self.agent.is_some()
    }
}

/// A bridge on the VLAN subinterface `<nic>.<vlan>`, with the host's addresses on that VLAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub name: String,
    pub vlan: u16,
    pub nic: String,
    /// The host's addresses with the VLAN's prefix length, at most one per family, in
    /// source order.
    pub addresses: Vec<Address>,
}

impl Bridge {
    /// The 802.1Q subinterface the bridge enslaves.
    pub fn port(&self) -> String {
        format!("{}.{}", self.nic, self.vlan)
    }

    pub fn address(&self, family: Family) -> Option<&Address> {
        self.addresses
            .iter()
            .find(|a| Family::of_net(&a.net) == family)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The address with its VLAN's prefix length (e.g. `fd74:6b6a:8eca:4902::22/64`).
    pub net: IpNet,
    /// The VLAN's gateway of this family: this address carries the host's default route.
    pub gateway: Option<IpAddr>,
}

/// The owned network keys of CloudStack's agent.properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The management servers, in topology order.
    pub servers: Vec<IpAddr>,
    pub port: u16,
    pub private_device: String,
    pub public_device: String,
    pub guest_device: String,
    pub bridge_type: BridgeType,
}

impl Agent {
    /// The agent.properties keys netc owns, with their values, in file order.
    pub fn keys(&self) -> [(&'static str, String); 6] {
        let servers: Vec<String> = self.servers.iter().map(IpAddr::to_string).collect();
        [
            ("host", servers.join(",")),
            ("port", self.port.to_string()),
            ("private.network.device", self.private_device.clone()),
            ("public.network.device", self.public_device.clone()),
            ("guest.network.device", self.guest_device.clone()),
            ("network.bridge.type", self.bridge_type.name().to_string()),
        ]
    }
}

/// `network.bridge.type`. Only Linux bridges: they are what the interfaces file builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeType {
    Native,
}

impl BridgeType {
    pub fn name(self) -> &'static str {
        match self {
            BridgeType::Native => "native",
        }
    }
}

/// A keepalived virtual IP shared by member hosts on one VLAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    pub name: String,
    pub vlan: u16,
    /// With the VLAN's prefix length; at most one per family.
    pub addresses: Vec<IpNet>,
    pub router_id: u8,
    /// Highest priority first.
    pub members: Vec<Member>,
    pub check: Option<Check>,
}

impl Vip {
    /// The state a member starts in: the highest priority (members are sorted) is MASTER.
    pub fn initial_state(&self, host: &str) -> VrrpState {
        if self.members.first().is_some_and(|m| m.host == host) {
            VrrpState::Master
        } else {
            VrrpState::Backup
        }
    }

    pub fn member(&self, host: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.host == host)
    }
}

impl Topology {
    /// The address `host` speaks VRRP from for `vip`'s `family` instance: its address of that
    /// family on the VIP's VLAN.
    pub fn vrrp_address(&self, vip: &Vip, host: &str, family: Family) -> Option<IpAddr> {
        self.host(host)?
            .bridge_on(vip.vlan)?
            .address(family)
            .map(|a| a.net.addr())
    }

    /// The unicast peers of `host` in `vip`'s `family` instance: every other member's
    /// [`Topology::vrrp_address`], in member order.
    pub fn vrrp_peers(&self, vip: &Vip, host: &str, family: Family) -> Vec<IpAddr> {
        vip.members
            .iter()
            .filter(|m| m.host != host)
            .filter_map(|m| self.vrrp_address(vip, &m.host, family))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrrpState {
    Master,
    Backup,
}

impl VrrpState {
    /// keepalived's word for it.
    pub fn keyword(self) -> &'static str {
        match self {
            VrrpState::Master => "MASTER",
            VrrpState::Backup => "BACKUP",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub host: String,
    pub priority: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub script: String,
    pub interval: u32,
}

/// The chains iptables has built in: a policy's chain is never one of them, and netc never
/// declares, flushes or deletes them.
pub const BUILTIN_CHAINS: [&str; 5] = ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"];

/// A firewall chain: packets to `ports` are rejected unless they come from a `source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub chain: String,
    pub ports: Vec<PortSet>,
    /// Allowed sources, in source order, after expanding `allow vlan N`.
    pub sources: Vec<AllowedSource>,
    /// The hosts the chain is installed on.
    pub hosts: BTreeSet<String>,
}

impl Policy {
    pub fn sources_of(&self, family: Family) -> impl Iterator<Item = &AllowedSource> {
        self.sources
            .iter()
            .filter(move |s| Family::of_net(&s.net) == family)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// One `ports` statement: it becomes its own rule(s), so a verdict can name its line.
pub struct PortSet {
    pub protocol: Protocol,
    pub ports: Vec<u16>,
    /// 1-based line of the `ports` statement.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSource {
    pub net: IpNet,
    /// 1-based line of the `allow` statement it came from.
    pub line: usize,
}
