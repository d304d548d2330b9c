//! The checked topology: plain data, every reference resolved, every value in range.
//!
//! Nothing here knows about templates, files or netlink. Renderers and apply read this and
//! nothing else. Lists keep the order of the source file, which makes output deterministic,
//! except where that order means nothing and is made canonical: the addresses of a bridge
//! and of a VIP (IPv4 first) and a VIP's members (by priority). Two sources that differ only
//! there give the same model, the same files and no diff.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

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

    /// The short suffix of per-family names: `netc.v4`, `mariadb_v6`, `CHAIN_v4_24`.
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
    Storage,
}

impl Device {
    pub const ALL: [Device; 4] = [
        Device::Private,
        Device::Public,
        Device::Guest,
        Device::Storage,
    ];
    pub fn keyword(self) -> &'static str {
        match self {
            Device::Private => "private",
            Device::Public => "public",
            Device::Guest => "guest",
            Device::Storage => "storage",
        }
    }
}

/// What a VLAN is for; the agent's device keys refer to VLANs by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Management,
    Guest,
    Public,
    Storage,
    Uplink,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Management,
        Role::Guest,
        Role::Public,
        Role::Storage,
        Role::Uplink,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Management => "management",
            Role::Guest => "guest",
            Role::Public => "public",
            Role::Storage => "storage",
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
    /// The MTU of the host links on this VLAN (subinterfaces and bridges); None: the kernel's.
    pub mtu: Option<u16>,
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
    pub nics: Vec<Nic>,
    pub bonds: Vec<Bond>,
    pub bridges: Vec<Bridge>,
}

impl Host {
    pub fn bridge_on(&self, vlan: u16) -> Option<&Bridge> {
        self.bridges.iter().find(|b| b.vlan == Some(vlan))
    }

    pub fn nic(&self, name: &str) -> Option<&Nic> {
        self.nics.iter().find(|n| n.name == name)
    }

    pub fn bond(&self, name: &str) -> Option<&Bond> {
        self.bonds.iter().find(|b| b.name == name)
    }

    /// The bond a NIC is a slave of.
    pub fn bond_of(&self, nic: &str) -> Option<&Bond> {
        self.bonds
            .iter()
            .find(|b| b.slaves.iter().any(|s| s == nic))
    }

    pub fn is_cloudstack(&self) -> bool {
        self.management_server || self.agent.is_some()
    }
}

/// A physical NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    /// None: netc leaves the MTU as it is.
    pub mtu: Option<u16>,
}

/// A Linux bond (ifenslave's `bond-*` options; created over rtnetlink by apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bond {
    pub name: String,
    /// NICs of the host, in source order.
    pub slaves: Vec<String>,
    pub mode: BondMode,
    /// Link monitoring interval, milliseconds.
    pub miimon: u32,
    /// 802.3ad only: `slow` or `fast`.
    pub lacp_rate: Option<String>,
    /// `layer2`, `layer2+3`, `layer3+4`, `encap2+3`, `encap3+4`.
    pub xmit_hash_policy: Option<String>,
    /// active-backup, balance-tlb and balance-alb: the slave preferred when up.
    pub primary: Option<String>,
    pub mtu: Option<u16>,
}

/// The kernel's bonding modes, by ifenslave's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BondMode {
    BalanceRr,
    ActiveBackup,
    BalanceXor,
    Broadcast,
    Lacp,
    BalanceTlb,
    BalanceAlb,
}

impl BondMode {
    pub const ALL: [BondMode; 7] = [
        BondMode::BalanceRr,
        BondMode::ActiveBackup,
        BondMode::BalanceXor,
        BondMode::Broadcast,
        BondMode::Lacp,
        BondMode::BalanceTlb,
        BondMode::BalanceAlb,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BondMode::BalanceRr => "balance-rr",
            BondMode::ActiveBackup => "active-backup",
            BondMode::BalanceXor => "balance-xor",
            BondMode::Broadcast => "broadcast",
            BondMode::Lacp => "802.3ad",
            BondMode::BalanceTlb => "balance-tlb",
            BondMode::BalanceAlb => "balance-alb",
        }
    }

    pub fn from_name(name: &str) -> Option<BondMode> {
        BondMode::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The kernel's number for the mode (IFLA_BOND_MODE).
    pub fn number(self) -> u8 {
        BondMode::ALL
            .iter()
            .position(|m| *m == self)
            .expect("in ALL") as u8
    }
}

/// A bridge on a NIC or bond: on its 802.1Q subinterface `<link>.<vlan>` (tagged), or on
/// the link itself (untagged), with the host's addresses on its VLAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub name: String,
    /// The VLAN whose network the bridge is on; None only for an untagged bridge without
    /// addresses (one that carries the VLANs CloudStack tags itself).
    pub vlan: Option<u16>,
    /// On the 802.1Q subinterface (else on the link itself).
    pub tagged: bool,
    /// The NIC or bond it is on.
    pub nic: String,
    /// The host's addresses with the VLAN's prefix length, at most one per family, IPv4
    /// first (the order of the source does not matter).
    pub addresses: Vec<Address>,
    /// The VLAN's MTU, for the subinterface and the bridge.
    pub mtu: Option<u16>,
}

impl Bridge {
    /// The link the bridge enslaves: the 802.1Q subinterface, or the NIC or bond itself.
    pub fn port(&self) -> String {
        match (self.tagged, self.vlan) {
            (true, Some(vlan)) => format!("{}.{}", self.nic, vlan),
            _ => self.nic.clone(),
        }
    }

    /// The 802.1Q id of the port, if it is a subinterface.
    pub fn tag(&self) -> Option<u16> {
        self.vlan.filter(|_| self.tagged)
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
    /// `host=`: the management servers (or VIPs) in the order the agent tries them.
    pub servers: Vec<IpAddr>,
    pub port: u16,
    pub private_device: String,
    pub public_device: String,
    pub guest_device: String,
    /// Only when a VLAN has role `storage` or the site maps `storage`.
    pub storage_device: Option<String>,
    pub bridge_type: BridgeType,
}

impl Agent {
    /// The agent.properties keys netc owns, with their values, in file order.
    pub fn keys(&self) -> Vec<(&'static str, String)> {
        let servers: Vec<String> = self.servers.iter().map(IpAddr::to_string).collect();
        let mut keys = vec![
            ("host", servers.join(",")),
            ("port", self.port.to_string()),
            ("private.network.device", self.private_device.clone()),
            ("public.network.device", self.public_device.clone()),
            ("guest.network.device", self.guest_device.clone()),
        ];
        if let Some(storage) = &self.storage_device {
            keys.push(("storage.network.device", storage.clone()));
        }
        keys.push(("network.bridge.type", self.bridge_type.name().to_string()));
        keys
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
    pub preempt: Preempt,
}

/// Whether a higher-priority member takes the VIP back from a lower one that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preempt {
    /// At once (keepalived's default).
    Yes,
    /// After this many seconds.
    Delay(u16),
    /// Never: the holder keeps the VIP until it fails.
    No,
}

impl Vip {
    /// The state a member starts in: with preemption, the highest priority (members are
    /// sorted) is MASTER; without (or delayed), every member starts BACKUP, as keepalived
    /// requires, and the election still goes by priority.
    pub fn initial_state(&self, host: &str) -> VrrpState {
        if self.preempt == Preempt::Yes && self.members.first().is_some_and(|m| m.host == host) {
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
    /// An absolute path, possibly followed by arguments (`/usr/bin/mysqladmin ping`).
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
    /// Single ports and ranges, in source order, none overlapping another.
    pub ports: Vec<PortRange>,
    /// 1-based line of the `ports` statement.
    pub line: usize,
}

impl PortSet {
    pub fn contains(&self, port: u16) -> bool {
        self.ports.iter().any(|r| r.contains(port))
    }
}

/// A port (`first == last`) or an inclusive range of ports (`5900-6100`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    /// iptables' spelling: `22`, `5900:6100`.
    pub fn iptables(&self) -> String {
        match self.first == self.last {
            true => self.first.to_string(),
            false => format!("{}:{}", self.first, self.last),
        }
    }
}

/// The language's and nftables' spelling: `22`, `5900-6100`.
impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.first == self.last {
            true => write!(f, "{}", self.first),
            false => write!(f, "{}-{}", self.first, self.last),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSource {
    pub net: IpNet,
    /// 1-based line of the `allow` statement it came from.
    pub line: usize,
}
