//! A host's network as the topology wants it and as the kernel has it, and the changes
//! between: links (bridges, bonds, 802.1Q subinterfaces, NICs), bridge and bond ports, MTUs,
//! addresses and default routes — and the kernel's side effects of those changes, planned as
//! steps of their own: removing an IPv4 primary address makes the kernel drop the
//! secondaries of its subnet (`promote_secondaries` is off by default) and, with the
//! device's last address, the routes through it; the plan takes such addresses and routes
//! out first and puts them back after, so the journal and the lockout guard see them.
//!
//! Pure data and decisions; [`super::netlink`] reads and writes the kernel.
//!
//! Ownership: netc marks what it creates — links with the alias [`ALIAS`], addresses and
//! routes with the protocol number [`PROTO`] — and removes only marked objects. Anything
//! else is used as found when it matches and reported when it is in the way. Links named
//! like libvirt's or CloudStack's (see [`foreign_name`]) are never created, changed or
//! removed.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::{Bond, BondMode, Bridge, Family, Host};

/// The alias (`ip link set X alias netc`) that marks a link netc created.
pub const ALIAS: &str = "netc";
/// The protocol number (`ip addr … proto 78`, `ip route … proto 78`) that marks an address
/// or a route netc added.
pub const PROTO: u8 = 78;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum LinkKind {
    Bridge,
    Vlan { parent: String, id: u16 },
    Bond(BondSpec),
}

/// What a bond is created with (the kernel takes these only while it has no slaves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BondSpec {
    pub mode: BondMode,
    pub miimon: u32,
    /// `slow` or `fast` (802.3ad).
    pub lacp_rate: Option<String>,
    /// The kernel's name (`layer3+4`).
    pub xmit_hash_policy: Option<String>,
}

impl BondSpec {
    pub fn of(bond: &Bond) -> BondSpec {
        BondSpec {
            mode: bond.mode,
            miimon: bond.miimon,
            lacp_rate: bond.lacp_rate.clone(),
            xmit_hash_policy: bond.xmit_hash_policy.clone(),
        }
    }
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkKind::Bridge => f.write_str("bridge"),
            LinkKind::Vlan { parent, id } => write!(f, "VLAN {id} on {parent}"),
            LinkKind::Bond(spec) => write!(f, "bond, {}", spec.mode.name()),
        }
    }
}

/// What the kernel says a link is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LiveKind {
    /// No kind: a physical NIC, loopback.
    #[default]
    Plain,
    Bridge,
    /// 802.1Q, with its parent link and VLAN id.
    Vlan {
        parent: String,
        id: u16,
    },
    /// A bond, with what it was created with.
    Bond(BondSpec),
    /// Any other kind, by the kernel's name for it (`veth`, `bond`, `macvlan`, …).
    Other(String),
}

impl fmt::Display for LiveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiveKind::Plain => f.write_str("plain"),
            LiveKind::Bridge => f.write_str("bridge"),
            LiveKind::Vlan { .. } => f.write_str("vlan"),
            LiveKind::Bond(_) => f.write_str("bond"),
            LiveKind::Other(name) => f.write_str(name),
        }
    }
}

/// A link as the kernel reports it, with indices already turned into names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveLink {
    pub name: String,
    pub kind: LiveKind,
    pub master: Option<String>,
    pub up: bool,
    pub alias: Option<String>,
    pub mtu: u32,
    /// IPv6 router advertisements: (accept_ra, autoconf); None without IPv6 on the link.
    pub ra: Option<(i32, i32)>,
}

impl LiveLink {
    pub fn owned(&self) -> bool {
        self.alias.as_deref() == Some(ALIAS)
    }

    /// The link as one netc could have made, if it is of such a kind.
    fn managed_kind(&self) -> Option<LinkKind> {
        match &self.kind {
            LiveKind::Bridge => Some(LinkKind::Bridge),
            LiveKind::Vlan { parent, id } => Some(LinkKind::Vlan {
                parent: parent.clone(),
                id: *id,
            }),
            LiveKind::Bond(spec) => Some(LinkKind::Bond(spec.clone())),
            _ => None,
        }
    }

    fn is_bridge(&self) -> bool {
        self.kind == LiveKind::Bridge
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveAddr {
    pub dev: String,
    pub net: IpNet,
    pub proto: u8,
    /// IPv4: a secondary address of its subnet (the kernel drops it with the primary).
    pub secondary: bool,
}

impl LiveAddr {
    /// Put there by the kernel itself: loopback, router advertisement, IPv6 link-local.
    pub fn kernel_made(&self) -> bool {
        let link_local = matches!(self.net, IpNet::V6(n) if n.addr().is_unicast_link_local());
        matches!(self.proto, 1..=3) || link_local
    }
}

/// A route through a gateway in the main table: the default route, or (`dst`) a static one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRoute {
    pub dev: String,
    /// `None`: the default route.
    pub dst: Option<IpNet>,
    pub gateway: IpAddr,
    pub proto: u8,
}

impl LiveRoute {
    pub fn is_default(&self) -> bool {
        self.dst.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveNet {
    pub links: Vec<LiveLink>,
    pub addrs: Vec<LiveAddr>,
    pub routes: Vec<LiveRoute>,
}

impl LiveNet {
    pub fn link(&self, name: &str) -> Option<&LiveLink> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The secondaries the kernel drops when `net` goes from `dev`: those of its subnet, if it
    /// is an IPv4 primary address there (`promote_secondaries` is off by default).
    pub fn dropped_with(&self, dev: &str, net: &IpNet) -> Vec<&LiveAddr> {
        let primary = net.addr().is_ipv4()
            && self
                .addrs
                .iter()
                .any(|a| a.dev == dev && a.net == *net && !a.secondary);
        self.addrs
            .iter()
            .filter(|a| primary && a.dev == dev && a.secondary && a.net != *net)
            .filter(|a| a.net.trunc() == net.trunc())
            .collect()
    }
}

/// One kernel change. Each has an exact inverse ([`NetOp::inverse`]), which is how apply
/// rolls back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum NetOp {
    /// Create a link, down, without a master, marked with [`ALIAS`].
    AddLink {
        name: String,
        kind: LinkKind,
    },
    DelLink {
        name: String,
        kind: LinkKind,
    },
    SetMaster {
        link: String,
        master: Option<String>,
        was: Option<String>,
    },
    SetUp {
        link: String,
        up: bool,
    },
    SetMtu {
        link: String,
        mtu: u32,
        was: u32,
    },
    /// `net.ipv6.conf.<link>.accept_ra` and `.autoconf`.
    SetRa {
        link: String,
        ra: (i32, i32),
        was: (i32, i32),
    },
    AddAddr {
        dev: String,
        net: IpNet,
        proto: u8,
    },
    DelAddr {
        dev: String,
        net: IpNet,
        proto: u8,
    },
    /// A route via `gateway` on `dev`: the default route, or to `dst`.
    AddRoute {
        dev: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dst: Option<IpNet>,
        gateway: IpAddr,
        proto: u8,
    },
    DelRoute {
        dev: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dst: Option<IpNet>,
        gateway: IpAddr,
        proto: u8,
    },
}

impl NetOp {
    /// The links the step makes, deletes or changes: a link, the master it gets or had, the
    /// device of an address or route (not a VLAN's parent).
    pub fn links(&self) -> Vec<&str> {
        match self {
            NetOp::AddLink { name, .. } | NetOp::DelLink { name, .. } => vec![name],
            NetOp::SetMaster { link, master, was } => [Some(link), master.as_ref(), was.as_ref()]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect(),
            NetOp::SetUp { link, .. } | NetOp::SetMtu { link, .. } | NetOp::SetRa { link, .. } => {
                vec![link]
            }
            NetOp::AddAddr { dev, .. }
            | NetOp::DelAddr { dev, .. }
            | NetOp::AddRoute { dev, .. }
            | NetOp::DelRoute { dev, .. } => vec![dev],
        }
    }

    pub fn inverse(&self) -> NetOp {
        use NetOp::*;
        match self.clone() {
            AddLink { name, kind } => DelLink { name, kind },
            DelLink { name, kind } => AddLink { name, kind },
            SetMaster { link, master, was } => SetMaster {
                link,
                master: was,
                was: master,
            },
            SetUp { link, up } => SetUp { link, up: !up },
            SetMtu { link, mtu, was } => SetMtu {
                link,
                mtu: was,
                was: mtu,
            },
            SetRa { link, ra, was } => SetRa {
                link,
                ra: was,
                was: ra,
            },
            AddAddr { dev, net, proto } => DelAddr { dev, net, proto },
            DelAddr { dev, net, proto } => AddAddr { dev, net, proto },
            AddRoute {
                dev,
                dst,
                gateway,
                proto,
            } => DelRoute {
                dev,
                dst,
                gateway,
                proto,
            },
            DelRoute {
                dev,
                dst,
                gateway,
                proto,
            } => AddRoute {
                dev,
                dst,
                gateway,
                proto,
            },
        }
    }
}

impl fmt::Display for NetOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |m: &Option<String>| m.clone().unwrap_or_else(|| "none".into());
        match self {
            NetOp::AddLink { name, kind } => write!(f, "+ link {name} ({kind})"),
            NetOp::DelLink { name, kind } => write!(f, "- link {name} ({kind})"),
            NetOp::SetMaster { link, master, was } => {
                write!(f, "~ {link}: master {} → {}", name(was), name(master))
            }
            NetOp::SetUp { link, up: true } => write!(f, "~ {link}: down → up"),
            NetOp::SetUp { link, up: false } => write!(f, "~ {link}: up → down"),
            NetOp::SetMtu { link, mtu, was } => write!(f, "~ {link}: mtu {was} → {mtu}"),
            NetOp::SetRa { link, ra, was } => write!(
                f,
                "~ {link}: IPv6 accept_ra {}, autoconf {} → {}, {}",
                was.0, was.1, ra.0, ra.1
            ),
            NetOp::AddAddr { dev, net, .. } => write!(f, "+ address {net} on {dev}"),
            NetOp::DelAddr { dev, net, .. } => write!(f, "- address {net} on {dev}"),
            NetOp::AddRoute {
                dev, dst, gateway, ..
            } => write!(f, "+ {} via {gateway} dev {dev}", route_name(dst)),
            NetOp::DelRoute {
                dev, dst, gateway, ..
            } => write!(f, "- {} via {gateway} dev {dev}", route_name(dst)),
        }
    }
}

fn route_name(dst: &Option<IpNet>) -> String {
    match dst {
        None => "default route".into(),
        Some(d) => format!("route {d}"),
    }
}

/// Links libvirt and CloudStack create and own: `vnet*`, `virbr*`, `cloudVirBr*` and the
/// agent's `br<nic>-<vlan>` bridges.
pub fn foreign_name(name: &str) -> bool {
    let cloudstack_bridge = name.strip_prefix("br").is_some_and(|rest| {
        rest.rsplit_once('-').is_some_and(|(nic, vlan)| {
            !nic.is_empty() && !vlan.is_empty() && vlan.bytes().all(|b| b.is_ascii_digit())
        })
    });
    name.starts_with("vnet")
        || name.starts_with("virbr")
        || name.starts_with("cloudVirBr")
        || cloudstack_bridge
}

/// What it takes to make `live` carry `host`'s network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPlan {
    /// The changes, in an order the kernel accepts: removals, new links, ports, up, addresses,
    /// routes.
    pub ops: Vec<NetOp>,
    /// Conflicts netc will not resolve on its own (apply refuses while there are any).
    pub refusals: Vec<String>,
    /// Things left as they are, worth knowing.
    pub notes: Vec<String>,
}

#[derive(Default)]
struct Phases {
    remove_routes: Vec<NetOp>,
    remove_addrs: Vec<NetOp>,
    remove: Vec<NetOp>,
    create: Vec<NetOp>,
    ports: Vec<NetOp>,
    /// (depth: NIC or bond 0, subinterface 1, bridge 2; the change).
    mtu: Vec<(u8, NetOp)>,
    /// Router advertisements off, before the bridge comes up.
    ra: Vec<NetOp>,
    up: Vec<NetOp>,
    addrs: Vec<NetOp>,
    /// What the kernel would drop as a side effect, put back.
    readd: Vec<NetOp>,
    routes: Vec<NetOp>,
}

pub fn plan(host: &Host, live: &LiveNet) -> NetPlan {
    let mut p = NetPlan::default();
    let mut ph = Phases::default();
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    for nic in &host.nics {
        wanted.insert(nic.name.clone());
        match live.link(&nic.name) {
            None => p.refusals.push(format!(
                "NIC {} does not exist on this host (netc does not create NICs; `ip -br link` \
                 lists what there is)",
                nic.name
            )),
            Some(l) => {
                set_up(l, &mut ph);
                // A slave takes its bond's MTU.
                if host.bond_of(&nic.name).is_none() {
                    set_mtu(l, nic.mtu, 0, &mut ph);
                }
            }
        }
    }
    for b in &host.bonds {
        wanted.insert(b.name.clone());
        bond(b, live, &mut p, &mut ph);
    }
    for b in &host.bridges {
        wanted.insert(b.name.clone());
        if bridge(host, b, live, &mut p, &mut ph) {
            wanted.insert(b.port());
        }
    }
    addresses(host, live, &mut p, &mut ph);
    secondaries(live, &mut p, &mut ph);
    routes(host, live, &mut p, &mut ph);
    remove_links(live, &wanted, &mut p, &mut ph);
    p.ops = ph.in_order();
    p
}

impl Phases {
    /// The changes in an order the kernel accepts. MTUs: a link's before the links on it
    /// when raising, after them when lowering (so the undo, in reverse, works too).
    fn in_order(mut self) -> Vec<NetOp> {
        let raise = |op: &NetOp| matches!(op, NetOp::SetMtu { mtu, was, .. } if mtu > was);
        self.mtu
            .sort_by_key(|(depth, op)| if raise(op) { *depth } else { 2 - *depth });
        let mtu = self.mtu.into_iter().map(|(_, op)| op).collect();
        [
            self.remove_routes,
            self.remove_addrs,
            self.remove,
            self.create,
            self.ports,
            mtu,
            self.ra,
            self.up,
            self.addrs,
            self.readd,
            self.routes,
        ]
        .concat()
    }
}

fn set_up(l: &LiveLink, ph: &mut Phases) {
    if !l.up {
        ph.up.push(NetOp::SetUp {
            link: l.name.clone(),
            up: true,
        });
    }
}

/// The MTU the topology sets, if it sets one and the link has another. A link netc creates
/// in this plan (`live` None) starts at the kernel's 1500.
fn set_mtu_of(name: &str, live: Option<&LiveLink>, mtu: Option<u16>, depth: u8, ph: &mut Phases) {
    let Some(mtu) = mtu.map(u32::from) else {
        return;
    };
    let was = live.map_or(1500, |l| l.mtu);
    if was != mtu {
        ph.mtu.push((
            depth,
            NetOp::SetMtu {
                link: name.to_string(),
                mtu,
                was,
            },
        ));
    }
}

fn set_mtu(l: &LiveLink, mtu: Option<u16>, depth: u8, ph: &mut Phases) {
    set_mtu_of(&l.name, Some(l), mtu, depth, ph);
}

/// Refuses a name libvirt or CloudStack use; true if it is one.
fn refuse_foreign(name: &str, p: &mut NetPlan) -> bool {
    let foreign = foreign_name(name);
    if foreign {
        p.refusals.push(format!(
            "{name} is named like a libvirt or CloudStack link; netc does not manage those \
             (rename it in the topology)"
        ));
    }
    foreign
}

/// A bond: created where missing with its mode and settings, its slaves enslaved (each
/// down while it is), up, with its MTU.
fn bond(b: &Bond, live: &LiveNet, p: &mut NetPlan, ph: &mut Phases) {
    if refuse_foreign(&b.name, p) {
        return;
    }
    let spec = BondSpec::of(b);
    let found = live.link(&b.name);
    match found {
        None => {
            ph.create.push(NetOp::AddLink {
                name: b.name.clone(),
                kind: LinkKind::Bond(spec.clone()),
            });
            ph.up.push(NetOp::SetUp {
                link: b.name.clone(),
                up: true,
            });
        }
        Some(l) => match &l.kind {
            LiveKind::Bond(have) if have.mode != spec.mode => p.refusals.push(format!(
                "{} is a bond in mode {}, not {}; the kernel changes a bond's mode only without \
                 slaves (ifdown it, or ip link del {})",
                b.name,
                have.mode.name(),
                spec.mode.name(),
                b.name
            )),
            LiveKind::Bond(_) => set_up(l, ph),
            other => p.refusals.push(format!(
                "{} exists but is a {other} link, not a bond; netc does not change the kind of \
                 a link",
                b.name
            )),
        },
    }
    set_mtu_of(&b.name, found, b.mtu, 0, ph);
    for slave in &b.slaves {
        let Some(l) = live.link(slave) else { continue }; // refused with the NIC
        if l.master.as_deref() == Some(&b.name) {
            continue;
        }
        if l.up {
            // The bonding driver takes a slave that is down; it comes up again below.
            ph.ports.push(NetOp::SetUp {
                link: slave.clone(),
                up: false,
            });
            ph.up.push(NetOp::SetUp {
                link: slave.clone(),
                up: true,
            });
        }
        ph.ports.push(NetOp::SetMaster {
            link: slave.clone(),
            master: Some(b.name.clone()),
            was: l.master.clone(),
        });
    }
}

/// A bridge and its port (an 802.1Q subinterface, or the NIC or bond itself): created where
/// missing, the port enslaved, both up. False if netc refuses to manage them.
fn bridge(host: &Host, b: &Bridge, live: &LiveNet, p: &mut NetPlan, ph: &mut Phases) -> bool {
    let port = b.port();
    if refuse_foreign(&b.name, p) | refuse_foreign(&port, p) {
        return false;
    }
    let found = live.link(&b.name);
    match found {
        None => {
            ph.create.push(NetOp::AddLink {
                name: b.name.clone(),
                kind: LinkKind::Bridge,
            });
            ph.up.push(NetOp::SetUp {
                link: b.name.clone(),
                up: true,
            });
        }
        Some(l) if !l.is_bridge() => p.refusals.push(format!(
            "{} exists but is a {} link, not a bridge; netc does not change the kind of a link",
            b.name, l.kind
        )),
        Some(l) => set_up(l, ph),
    }
    set_mtu_of(&b.name, found, b.mtu, 2, ph);
    no_router_advertisements(b, found, ph);
    match b.tag() {
        Some(id) => vlan_port(host, b, id, live, p, ph),
        None => untagged_port(b, live, ph),
    }
    true
}

/// A tagged bridge's port, the 802.1Q subinterface `<link>.<id>`: created where missing (on
/// a NIC or bond that is there or planned), moved into the bridge, up.
fn vlan_port(host: &Host, b: &Bridge, id: u16, live: &LiveNet, p: &mut NetPlan, ph: &mut Phases) {
    let port = b.port();
    let Some(l) = live.link(&port) else {
        if live.link(&b.nic).is_some() || host.bond(&b.nic).is_some() {
            ph.create.push(NetOp::AddLink {
                name: port.clone(),
                kind: LinkKind::Vlan {
                    parent: b.nic.clone(),
                    id,
                },
            });
            ph.ports.push(NetOp::SetMaster {
                link: port.clone(),
                master: Some(b.name.clone()),
                was: None,
            });
            set_mtu_of(&port, None, b.mtu, 1, ph);
            ph.up.push(NetOp::SetUp {
                link: port,
                up: true,
            });
        } // else: refused with the NIC
        return;
    };
    match &l.kind {
        LiveKind::Vlan { parent, id: have } if (parent, *have) != (&b.nic, id) => {
            p.refusals.push(format!(
                "{port} is VLAN {have} on {parent}, not VLAN {id} on {}; netc does not change \
                 links it finds (delete it: ip link del {port})",
                b.nic
            ))
        }
        LiveKind::Vlan { .. } => {}
        other => p.notes.push(format!(
            "{port} is a {other} link, not an 802.1Q VLAN; netc uses it as {}'s port as it is",
            b.name
        )),
    }
    if l.master.as_deref() != Some(&b.name) {
        // Out of its old bridge first (that bridge may be going), then into this one: the
        // undo, in reverse, finds each bridge there when it needs it.
        if let Some(old) = &l.master {
            ph.remove.push(NetOp::SetMaster {
                link: port.clone(),
                master: None,
                was: Some(old.clone()),
            });
        }
        ph.ports.push(NetOp::SetMaster {
            link: port.clone(),
            master: Some(b.name.clone()),
            was: None,
        });
    }
    set_mtu(l, b.mtu, 1, ph);
    set_up(l, ph);
}

/// A bridge without an IPv6 gateway takes no router advertisements (a user VLAN's routers
/// must not give the host an address and a default route there): accept_ra and autoconf 0,
/// set before it comes up. A bridge netc creates in this plan starts with the kernel's 1, 1.
fn no_router_advertisements(b: &Bridge, live: Option<&LiveLink>, ph: &mut Phases) {
    let v6_gateway = b.address(Family::V6).is_some_and(|a| a.gateway.is_some());
    let was = match live {
        None => (1, 1),
        Some(l) => match l.ra {
            Some(ra) => ra,
            None => return, // no IPv6 on it
        },
    };
    if !v6_gateway && was != (0, 0) {
        ph.ra.push(NetOp::SetRa {
            link: b.name.clone(),
            ra: (0, 0),
            was,
        });
    }
}

/// An untagged bridge's port is the NIC or bond itself (made and set up with the host's
/// links): put it in the bridge.
fn untagged_port(b: &Bridge, live: &LiveNet, ph: &mut Phases) {
    let l = live.link(&b.nic);
    if l.is_none_or(|l| l.master.as_deref() != Some(&b.name)) {
        ph.ports.push(NetOp::SetMaster {
            link: b.nic.clone(),
            master: Some(b.name.clone()),
            was: l.and_then(|l| l.master.clone()),
        });
    }
}

fn addresses(host: &Host, live: &LiveNet, p: &mut NetPlan, ph: &mut Phases) {
    let mut wanted = BTreeSet::new();
    for b in &host.bridges {
        for a in &b.addresses {
            wanted.insert((b.name.as_str(), a.net));
            let found = live.addrs.iter().find(|l| l.net.addr() == a.net.addr());
            match found {
                Some(l) if l.dev == b.name && l.net == a.net => continue,
                Some(l) if l.proto != PROTO => {
                    p.refusals.push(format!(
                        "{} is already on {} as {}, and netc did not put it there; move it by \
                         hand (ip addr del {} dev {})",
                        a.net.addr(),
                        l.dev,
                        l.net,
                        l.net,
                        l.dev
                    ));
                    continue;
                }
                // netc's own, elsewhere or with another length: removed below, then added.
                _ => {}
            }
            ph.addrs.push(NetOp::AddAddr {
                dev: b.name.clone(),
                net: a.net,
                proto: PROTO,
            });
        }
    }
    for l in &live.addrs {
        if l.proto == PROTO && !wanted.contains(&(l.dev.as_str(), l.net)) {
            ph.remove_addrs.push(NetOp::DelAddr {
                dev: l.dev.clone(),
                net: l.net,
                proto: l.proto,
            });
        }
    }
}

fn routes(host: &Host, live: &LiveNet, p: &mut NetPlan, ph: &mut Phases) {
    let mut wanted = Vec::new();
    for b in &host.bridges {
        for a in &b.addresses {
            if let Some(gateway) = a.gateway {
                wanted.push((b.name.as_str(), gateway));
            }
        }
    }
    let defaults = || live.routes.iter().filter(|r| r.is_default());
    for (dev, gateway) in &wanted {
        let family = Family::of(gateway);
        let same = |r: &&LiveRoute| Family::of(&r.gateway) == family;
        if defaults().any(|r| r.dev == *dev && r.gateway == *gateway) {
            continue;
        }
        if let Some(other) = defaults().filter(same).find(|r| r.proto != PROTO) {
            p.refusals.push(format!(
                "the default {} route is via {} dev {}, and netc did not add it; delete it by \
                 hand (ip route del default via {}) for netc to route via {gateway} dev {dev}",
                family.name(),
                other.gateway,
                other.dev,
                other.gateway
            ));
            continue;
        }
        ph.routes.push(NetOp::AddRoute {
            dev: dev.to_string(),
            dst: None,
            gateway: *gateway,
            proto: PROTO,
        });
    }
    for r in &live.routes {
        let op = NetOp::DelRoute {
            dev: r.dev.clone(),
            dst: r.dst,
            gateway: r.gateway,
            proto: r.proto,
        };
        let ours = r.is_default() && r.proto == PROTO;
        if ours && !wanted.contains(&(r.dev.as_str(), r.gateway)) {
            ph.remove_routes.push(op);
        } else if r.gateway.is_ipv4() && ph.remove_addrs.iter().any(|a| removes_way_to(a, r)) {
            // The kernel drops an IPv4 route whose gateway loses its connected subnet (with
            // the device's last address), and does not bring it back: take it out first and
            // put it back (as it was) after.
            if !ours {
                p.notes.push(format!(
                    "{} goes with the address it leads through: it is taken out and put back",
                    route_name(&r.dst).replace("default route", "the default route")
                        + &format!(" via {} dev {}", r.gateway, r.dev)
                ));
            }
            ph.remove_routes.push(op);
            ph.routes.push(NetOp::AddRoute {
                dev: r.dev.clone(),
                dst: r.dst,
                gateway: r.gateway,
                proto: r.proto,
            });
        }
    }
}

/// The kernel drops the secondaries of an IPv4 subnet with its primary address: for each
/// primary the plan removes, take the secondaries out first (any owner: a hand-added address,
/// keepalived's VIP) and put them back after the new addresses, in their order.
fn secondaries(live: &LiveNet, p: &mut NetPlan, ph: &mut Phases) {
    let removed: Vec<(String, IpNet)> = ph
        .remove_addrs
        .iter()
        .filter_map(|op| match op {
            NetOp::DelAddr { dev, net, .. } => Some((dev.clone(), *net)),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for (dev, net) in &removed {
        for a in live.dropped_with(dev, net) {
            if removed.contains(&(a.dev.clone(), a.net)) {
                continue;
            }
            if a.proto != PROTO {
                p.notes.push(format!(
                    "{} on {dev} (not netc's) shares {}'s subnet: the kernel drops it with                      {}, so it is taken out and put back",
                    a.net, net, net
                ));
            }
            out.push(NetOp::DelAddr {
                dev: a.dev.clone(),
                net: a.net,
                proto: a.proto,
            });
            ph.readd.push(NetOp::AddAddr {
                dev: a.dev.clone(),
                net: a.net,
                proto: a.proto,
            });
        }
    }
    out.append(&mut ph.remove_addrs);
    ph.remove_addrs = out;
}

/// Whether `op` deletes the address through which `route`'s gateway is reached.
pub fn removes_way_to(op: &NetOp, route: &LiveRoute) -> bool {
    matches!(op, NetOp::DelAddr { dev, net, .. } if *dev == route.dev && net.trunc().contains(&route.gateway))
}

/// Links netc created that the topology no longer has: unhook, down, delete — unless
/// something netc did not add hangs on them.
fn remove_links(live: &LiveNet, wanted: &BTreeSet<String>, p: &mut NetPlan, ph: &mut Phases) {
    let going = |l: &LiveLink| l.owned() && !wanted.contains(&l.name) && !foreign_name(&l.name);
    // Ports first, so no bridge goes while a port still points at it.
    let mut order: Vec<&LiveLink> = live.links.iter().filter(|l| going(l)).collect();
    // Subinterfaces, then bridges, then bonds (deleting a bond would take its VLANs along).
    order.sort_by_key(|l| match l.kind {
        LiveKind::Bridge => 1,
        LiveKind::Bond(_) => 2,
        _ => 0,
    });
    for l in order {
        let Some(kind) = l.managed_kind() else {
            p.notes.push(format!(
                "{} carries netc's mark but is a {} link; left alone",
                l.name, l.kind
            ));
            // Out of a bridge that goes, as its own step: the kernel would do it as a side
            // effect of the deletion, and the undo would not put it back.
            let master = l.master.as_deref().and_then(|m| live.link(m));
            if let Some(m) = master.filter(|m| going(m)) {
                ph.remove.push(NetOp::SetMaster {
                    link: l.name.clone(),
                    master: None,
                    was: Some(m.name.clone()),
                });
            }
            continue;
        };
        // A port the plan moves to another bridge is not in the way.
        let moving = |x: &LiveLink| {
            ph.remove.iter().any(
                |op| matches!(op, NetOp::SetMaster { link, master: None, .. } if *link == x.name),
            )
        };
        let foreign_ports: Vec<&str> = live
            .links
            .iter()
            .filter(|x| x.master.as_deref() == Some(&l.name) && !going(x) && !moving(x))
            .map(|x| x.name.as_str())
            .collect();
        let foreign_addrs: Vec<String> = live
            .addrs
            .iter()
            .filter(|a| a.dev == l.name && a.proto != PROTO && !a.kernel_made())
            .map(|a| a.net.to_string())
            .collect();
        if !foreign_ports.is_empty() || !foreign_addrs.is_empty() {
            p.notes.push(format!(
                "{} is no longer in the topology but still carries {}; left in place",
                l.name,
                [foreign_ports.join(", "), foreign_addrs.join(", ")]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        }
        if l.master.is_some() {
            ph.remove.push(NetOp::SetMaster {
                link: l.name.clone(),
                master: None,
                was: l.master.clone(),
            });
        }
        if l.up {
            ph.remove.push(NetOp::SetUp {
                link: l.name.clone(),
                up: false,
            });
        }
        ph.remove.push(NetOp::DelLink {
            name: l.name.clone(),
            kind,
        });
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::{Address, Bond, BondMode, Bridge, Nic};

    /// A host with one tagged bridge, br5 (VLAN 5 on eno1), and its default route.
    pub(in crate::live) fn host() -> Host {
        Host {
            name: "h".into(),
            management_server: false,
            agent: None,
            nics: vec![Nic {
                name: "eno1".into(),
                mtu: None,
            }],
            bonds: vec![],
            bridges: vec![Bridge {
                name: "br5".into(),
                vlan: Some(5),
                tagged: true,
                nic: "eno1".into(),
                addresses: vec![Address {
                    net: "10.0.5.2/24".parse().unwrap(),
                    gateway: Some("10.0.5.1".parse().unwrap()),
                }],
                mtu: None,
            }],
        }
    }

    fn link(name: &str, kind: LiveKind) -> LiveLink {
        LiveLink {
            name: name.into(),
            kind,
            up: true,
            mtu: 1500,
            ..LiveLink::default()
        }
    }

    /// The host as a first apply leaves it.
    pub(in crate::live) fn applied() -> LiveNet {
        LiveNet {
            links: vec![
                link("eno1", LiveKind::Plain),
                LiveLink {
                    alias: Some(ALIAS.into()),
                    ra: Some((0, 0)),
                    ..link("br5", LiveKind::Bridge)
                },
                LiveLink {
                    alias: Some(ALIAS.into()),
                    master: Some("br5".into()),
                    ..link(
                        "eno1.5",
                        LiveKind::Vlan {
                            parent: "eno1".into(),
                            id: 5,
                        },
                    )
                },
            ],
            addrs: vec![LiveAddr {
                dev: "br5".into(),
                net: "10.0.5.2/24".parse().unwrap(),
                proto: PROTO,
                secondary: false,
            }],
            routes: vec![LiveRoute {
                dev: "br5".into(),
                dst: None,
                gateway: "10.0.5.1".parse().unwrap(),
                proto: PROTO,
            }],
        }
    }

    fn lines(p: &NetPlan) -> Vec<String> {
        p.ops.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn an_applied_host_needs_nothing_and_every_op_undoes() {
        assert_eq!(plan(&host(), &applied()), NetPlan::default());
        // Router advertisements turned back on by hand: turned off again, nothing else.
        let mut drifted = applied();
        drifted.links[1].ra = Some((1, 0));
        assert_eq!(
            lines(&plan(&host(), &drifted)),
            ["~ br5: IPv6 accept_ra 1, autoconf 0 → 0, 0"]
        );
        let fresh = LiveNet {
            links: vec![link("eno1", LiveKind::Plain)],
            ..LiveNet::default()
        };
        let p = plan(&host(), &fresh);
        assert_eq!(
            lines(&p),
            [
                "+ link br5 (bridge)",
                "+ link eno1.5 (VLAN 5 on eno1)",
                "~ eno1.5: master none → br5",
                "~ br5: IPv6 accept_ra 1, autoconf 1 → 0, 0",
                "~ br5: down → up",
                "~ eno1.5: down → up",
                "+ address 10.0.5.2/24 on br5",
                "+ default route via 10.0.5.1 dev br5",
            ]
        );
        for op in &p.ops {
            assert_eq!(op.inverse().inverse(), *op);
        }
    }

    #[test]
    fn a_changed_address_takes_its_ipv4_route_out_and_back() {
        let mut h = host();
        h.bridges[0].addresses[0].net = "10.0.5.3/24".parse().unwrap();
        let mut live = applied();
        live.routes[0].proto = 3; // ifupdown's (proto boot): not netc's, kept as it was
        assert_eq!(
            lines(&plan(&h, &live)),
            [
                "- default route via 10.0.5.1 dev br5",
                "- address 10.0.5.2/24 on br5",
                "+ address 10.0.5.3/24 on br5",
                "+ default route via 10.0.5.1 dev br5",
            ]
        );
        assert!(matches!(
            plan(&h, &live).ops.last(),
            Some(NetOp::AddRoute { proto: 3, .. })
        ));
    }

    #[test]
    fn what_netc_did_not_make_is_never_removed_and_conflicts_refuse() {
        let mut live = applied();
        // Not netc's: an address, a default route elsewhere, and CloudStack's bridge.
        live.addrs[0].proto = 0;
        live.routes[0] = LiveRoute {
            dev: "eno1".into(),
            dst: None,
            gateway: "10.9.9.1".parse().unwrap(),
            proto: 3,
        };
        live.links.push(link("breno1-5", LiveKind::Bridge));
        let p = plan(&host(), &live);
        assert_eq!(p.ops, []);
        assert_eq!(p.refusals.len(), 1, "{p:?}");
        assert!(p.refusals[0].starts_with("the default IPv4 route is via 10.9.9.1 dev eno1"));

        let mut h = host();
        h.bridges[0].name = "virbr0".into();
        let p = plan(&h, &applied());
        assert!(
            p.refusals[0].starts_with("virbr0 is named like a libvirt or CloudStack link"),
            "{p:?}"
        );
        // br5 goes (netc made it), and nothing touches virbr0.
        assert!(
            lines(&p).contains(&"- link br5 (bridge)".to_string()),
            "{p:?}"
        );
    }

    /// The advanced zone's layout: a bond of two NICs with jumbo frames, an untagged bridge
    /// on it and a storage VLAN bridge.
    fn bonded() -> Host {
        let nic = |n: &str| Nic {
            name: n.into(),
            mtu: None,
        };
        Host {
            name: "kvm".into(),
            management_server: false,
            agent: None,
            nics: vec![nic("eno1"), nic("eno2")],
            bonds: vec![Bond {
                name: "bond0".into(),
                slaves: vec!["eno1".into(), "eno2".into()],
                mode: BondMode::Lacp,
                miimon: 100,
                lacp_rate: Some("fast".into()),
                xmit_hash_policy: None,
                primary: None,
                mtu: Some(9000),
            }],
            bridges: vec![
                Bridge {
                    name: "cloudbr0".into(),
                    vlan: Some(100),
                    tagged: false,
                    nic: "bond0".into(),
                    addresses: vec![],
                    mtu: None,
                },
                Bridge {
                    name: "br200".into(),
                    vlan: Some(200),
                    tagged: true,
                    nic: "bond0".into(),
                    addresses: vec![],
                    mtu: Some(9000),
                },
            ],
        }
    }

    #[test]
    fn a_bond_is_made_with_its_slaves_down_then_mtus_parents_first() {
        let fresh = LiveNet {
            links: vec![link("eno1", LiveKind::Plain), link("eno2", LiveKind::Plain)],
            ..LiveNet::default()
        };
        let p = plan(&bonded(), &fresh);
        assert_eq!(
            lines(&p),
            [
                "+ link bond0 (bond, 802.3ad)",
                "+ link cloudbr0 (bridge)",
                "+ link br200 (bridge)",
                "+ link bond0.200 (VLAN 200 on bond0)",
                "~ eno1: up → down",
                "~ eno1: master none → bond0",
                "~ eno2: up → down",
                "~ eno2: master none → bond0",
                "~ bond0: master none → cloudbr0",
                "~ bond0.200: master none → br200",
                "~ bond0: mtu 1500 → 9000",
                "~ bond0.200: mtu 1500 → 9000",
                "~ br200: mtu 1500 → 9000",
                "~ cloudbr0: IPv6 accept_ra 1, autoconf 1 → 0, 0",
                "~ br200: IPv6 accept_ra 1, autoconf 1 → 0, 0",
                "~ bond0: down → up",
                "~ eno1: down → up",
                "~ eno2: down → up",
                "~ cloudbr0: down → up",
                "~ br200: down → up",
                "~ bond0.200: down → up",
            ]
        );
        for op in &p.ops {
            assert_eq!(op.inverse().inverse(), *op);
        }
        // A bond found in another mode is refused, not changed.
        let mut live = fresh.clone();
        live.links.push(link(
            "bond0",
            LiveKind::Bond(BondSpec {
                mode: BondMode::ActiveBackup,
                miimon: 100,
                lacp_rate: None,
                xmit_hash_policy: None,
            }),
        ));
        let p = plan(&bonded(), &live);
        assert!(
            p.refusals[0].starts_with("bond0 is a bond in mode active-backup, not 802.3ad"),
            "{p:?}"
        );
    }

    #[test]
    fn a_primary_takes_the_secondaries_of_its_subnet_only() {
        let addr = |dev: &str, net: &str, secondary| LiveAddr {
            dev: dev.into(),
            net: net.parse().unwrap(),
            proto: 0,
            secondary,
        };
        let live = LiveNet {
            addrs: vec![
                addr("br5", "10.0.5.2/24", false),
                addr("br5", "10.0.5.9/24", true),
                addr("br5", "10.0.5.10/25", true),
                addr("br5", "10.0.6.9/24", true),
                addr("br6", "10.0.5.11/24", true),
            ],
            ..LiveNet::default()
        };
        let dropped = |dev, net: &str| -> Vec<String> {
            let net = net.parse().unwrap();
            let d = live.dropped_with(dev, &net);
            d.iter().map(|a| a.net.to_string()).collect()
        };
        assert_eq!(dropped("br5", "10.0.5.2/24"), ["10.0.5.9/24"]);
        assert!(dropped("br5", "10.0.5.9/24").is_empty());
        assert!(dropped("br6", "10.0.5.2/24").is_empty());
    }

    #[test]
    fn foreign_names() {
        for name in [
            "vnet0",
            "virbr0",
            "cloudVirBr529",
            "breno1-529",
            "brens1f0np0-4094",
        ] {
            assert!(foreign_name(name), "{name}");
        }
        for name in ["br529", "eno1.529", "br-x", "br5-"] {
            assert!(!foreign_name(name), "{name}");
        }
    }
}
