//! The kernel over rtnetlink: read links, addresses and the routes through gateways, and one
//! method per change netc makes (create, mark or delete a link, set its master or state, add
//! or delete an address or a route).
//!
//! rtnetlink is async; a current-thread tokio runtime drives it, one request at a time.

use std::io;
use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressProtocol,
};
use rtnetlink::packet_route::link::{
    AfSpecInet6, AfSpecUnspec, BondLacpRate, BondMode as KernelBondMode, BondXmitHashPolicy,
    InfoBond, InfoData, InfoKind, InfoVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol,
};
use rtnetlink::{Handle, LinkBond, LinkBridge, LinkUnspec, LinkVlan, RouteMessageBuilder};

use ipnet::IpNet;

use super::net::{ALIAS, BondSpec, LinkKind, LiveAddr, LiveKind, LiveLink, LiveNet, LiveRoute};
use crate::model::BondMode;

pub struct Kernel {
    runtime: tokio::runtime::Runtime,
    handle: Handle,
    /// Requests the kernel accepted (changes made), since [`Kernel::open`].
    pub writes: usize,
}

fn err(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => match m.to_io() {
            e if e.raw_os_error().is_some() => e,
            _ => io::Error::other(m.to_string()),
        },
        other => io::Error::other(other.to_string()),
    }
}

impl Kernel {
    pub fn open() -> io::Result<Kernel> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let handle = runtime.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection()?;
            tokio::spawn(connection);
            io::Result::Ok(handle)
        })?;
        Ok(Kernel {
            runtime,
            handle,
            writes: 0,
        })
    }

    /// Every link, every address and the routes through a gateway of the main table.
    pub fn read(&self) -> io::Result<LiveNet> {
        let h = &self.handle;
        self.runtime.block_on(async {
            let links: Vec<LinkMessage> =
                h.link().get().execute().try_collect().await.map_err(err)?;
            let addrs: Vec<AddressMessage> = h
                .address()
                .get()
                .execute()
                .try_collect()
                .await
                .map_err(err)?;
            let mut routes: Vec<RouteMessage> = Vec::new();
            for family in [
                RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
                RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
            ] {
                let found: Vec<RouteMessage> = h
                    .route()
                    .get(family)
                    .execute()
                    .try_collect()
                    .await
                    .map_err(err)?;
                routes.extend(found);
            }
            Ok(live(&links, &addrs, &routes))
        })
    }

    /// Runs one request; counts it as a write when the kernel accepted it.
    fn write<F: std::future::Future<Output = io::Result<()>>>(
        &mut self,
        request: impl FnOnce(Handle) -> F,
    ) -> io::Result<()> {
        let done = self.runtime.block_on(request(self.handle.clone()));
        if done.is_ok() {
            self.writes += 1;
        }
        done
    }

    /// Creates a link, down, without a master, and marks it with [`ALIAS`]. The kernel takes
    /// IFLA_IFALIAS only on a change, not at creation: the mark is a second request, and the
    /// link is deleted again if that fails.
    pub fn add_link(&mut self, name: &str, kind: &LinkKind) -> io::Result<()> {
        self.write(|h| async move {
            let message = match kind {
                LinkKind::Bridge => LinkBridge::new(name).build(),
                LinkKind::Vlan { parent, id } => {
                    let parent = index(&h, parent).await?;
                    LinkVlan::new(name, parent, *id).build()
                }
                LinkKind::Bond(spec) => bond_message(name, spec),
            };
            h.link()
                .add(message)
                .execute()
                .await
                .map_err(|e| match (err(e), kind) {
                    (e, LinkKind::Vlan { .. }) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                        io::Error::new(
                            e.kind(),
                            format!("{e} (does this kernel have 802.1Q? modprobe 8021q)"),
                        )
                    }
                    (e, _) => e,
                })?;
            let index = index(&h, name).await?;
            let mark = LinkUnspec::new_with_index(index).alias(ALIAS).build();
            if let Err(e) = h.link().change(mark).execute().await {
                let _ = h.link().del(index).execute().await;
                return Err(err(e));
            }
            Ok(())
        })
    }

    /// Marks an existing link with [`ALIAS`] (recovery: a crash came between creating a link
    /// and marking it).
    pub fn mark_link(&mut self, name: &str) -> io::Result<()> {
        self.write(|h| async move {
            let index = index(&h, name).await?;
            let mark = LinkUnspec::new_with_index(index).alias(ALIAS).build();
            h.link().change(mark).execute().await.map_err(err)
        })
    }

    pub fn del_link(&mut self, name: &str) -> io::Result<()> {
        self.write(|h| async move {
            let index = index(&h, name).await?;
            h.link().del(index).execute().await.map_err(err)
        })
    }

    /// Puts `link` into the bridge `master`, or (`None`) out of any.
    pub fn set_master(&mut self, link: &str, master: Option<&str>) -> io::Result<()> {
        self.write(|h| async move {
            let builder = LinkUnspec::new_with_index(index(&h, link).await?);
            let builder = match master {
                Some(m) => builder.controller(index(&h, m).await?),
                None => builder.nocontroller(),
            };
            h.link()
                .change(builder.build())
                .execute()
                .await
                .map_err(err)
        })
    }

    pub fn set_mtu(&mut self, link: &str, mtu: u32) -> io::Result<()> {
        self.write(|h| async move {
            let builder = LinkUnspec::new_with_index(index(&h, link).await?).mtu(mtu);
            h.link()
                .change(builder.build())
                .execute()
                .await
                .map_err(err)
        })
    }

    /// IPv6 router advertisements of a link: `net.ipv6.conf.<link>.accept_ra` and
    /// `.autoconf`. The kernel reports them over rtnetlink but takes them only through
    /// /proc/sys (of the caller's network namespace).
    pub fn set_ra(&mut self, link: &str, (accept_ra, autoconf): (i32, i32)) -> io::Result<()> {
        if link.contains('/') || link == "." || link == ".." {
            return Err(io::Error::other(format!("{link} is not a link name")));
        }
        let dir = std::path::Path::new("/proc/sys/net/ipv6/conf").join(link);
        std::fs::write(dir.join("accept_ra"), format!("{accept_ra}\n"))?;
        std::fs::write(dir.join("autoconf"), format!("{autoconf}\n"))?;
        self.writes += 1;
        Ok(())
    }

    pub fn set_up(&mut self, link: &str, up: bool) -> io::Result<()> {
        self.write(|h| async move {
            let builder = LinkUnspec::new_with_index(index(&h, link).await?);
            let builder = if up { builder.up() } else { builder.down() };
            h.link()
                .change(builder.build())
                .execute()
                .await
                .map_err(err)
        })
    }

    /// Adds an address marked with the protocol number `proto`.
    pub fn add_addr(&mut self, dev: &str, net: IpNet, proto: u8) -> io::Result<()> {
        self.write(|h| async move {
            let index = index(&h, dev).await?;
            let mut request = h.address().add(index, net.addr(), net.prefix_len());
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Protocol(AddressProtocol::from(proto)));
            request.execute().await.map_err(err)
        })
    }

    pub fn del_addr(&mut self, dev: &str, net: IpNet) -> io::Result<()> {
        self.write(|h| async move {
            let index = index(&h, dev).await?;
            let found: Vec<AddressMessage> = h
                .address()
                .get()
                .set_link_index_filter(index)
                .set_address_filter(net.addr())
                .set_prefix_length_filter(net.prefix_len())
                .execute()
                .try_collect()
                .await
                .map_err(err)?;
            let Some(message) = found.into_iter().next() else {
                return Err(io::Error::other(format!("{net} is not on {dev}")));
            };
            h.address().del(message).execute().await.map_err(err)
        })
    }

    /// Adds a route (the default one, or to `dst`) via `gateway` on `dev`, marked with
    /// `proto`.
    pub fn add_route(
        &mut self,
        dev: &str,
        dst: Option<IpNet>,
        gateway: IpAddr,
        proto: u8,
    ) -> io::Result<()> {
        self.write(|h| async move {
            let route = route_message(index(&h, dev).await?, dst, gateway, proto);
            h.route().add(route).execute().await.map_err(err)
        })
    }

    pub fn del_route(
        &mut self,
        dev: &str,
        dst: Option<IpNet>,
        gateway: IpAddr,
        proto: u8,
    ) -> io::Result<()> {
        self.write(|h| async move {
            let route = route_message(index(&h, dev).await?, dst, gateway, proto);
            h.route().del(route).execute().await.map_err(err)
        })
    }
}

/// A new bond with its mode and the settings the kernel takes only before it has slaves.
fn bond_message(name: &str, spec: &BondSpec) -> LinkMessage {
    let mut bond = LinkBond::new(name)
        .mode(KernelBondMode::from(spec.mode.number()))
        .miimon(spec.miimon);
    if let Some(rate) = &spec.lacp_rate {
        let rate = if rate == "fast" {
            BondLacpRate::Fast
        } else {
            BondLacpRate::Slow
        };
        bond = bond.ad_lacp_rate(rate);
    }
    if let Some(policy) = &spec.xmit_hash_policy {
        let known = (0..=5u8)
            .map(BondXmitHashPolicy::from)
            .find(|p| p.to_string() == *policy);
        if let Some(p) = known {
            bond = bond.xmit_hash_policy(p);
        }
    }
    bond.build()
}

/// (accept_ra, autoconf) of a link, if it has IPv6.
fn router_advertisements(specs: &[AfSpecUnspec]) -> Option<(i32, i32)> {
    specs.iter().find_map(|s| match s {
        AfSpecUnspec::Inet6(inet6) => inet6.iter().find_map(|a| match a {
            AfSpecInet6::DevConf(conf) => Some((conf.accept_ra, conf.autoconf)),
            _ => None,
        }),
        _ => None,
    })
}

/// A bond's settings as the kernel reports them.
fn bond_spec(data: &[InfoBond]) -> BondSpec {
    let mut spec = BondSpec {
        mode: BondMode::BalanceRr,
        miimon: 0,
        lacp_rate: None,
        xmit_hash_policy: None,
    };
    for d in data {
        match d {
            InfoBond::Mode(m) => {
                let n = u8::from(*m);
                if let Some(mode) = BondMode::ALL.into_iter().find(|x| x.number() == n) {
                    spec.mode = mode;
                }
            }
            InfoBond::MiiMon(n) => spec.miimon = *n,
            InfoBond::AdLacpRate(r) => spec.lacp_rate = Some(r.to_string()),
            InfoBond::XmitHashPolicy(p) => spec.xmit_hash_policy = Some(p.to_string()),
            _ => {}
        }
    }
    spec
}

/// The index of the link called `name`.
async fn index(h: &Handle, name: &str) -> io::Result<u32> {
    let found: Vec<LinkMessage> = h
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_collect()
        .await
        .map_err(|e| io::Error::other(format!("link {name}: {}", err(e))))?;
    found
        .first()
        .map(|m| m.header.index)
        .ok_or_else(|| io::Error::other(format!("link {name} does not exist")))
}

fn route_message(index: u32, dst: Option<IpNet>, gateway: IpAddr, proto: u8) -> RouteMessage {
    match (gateway, dst) {
        (IpAddr::V4(g), dst) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .gateway(g)
                .output_interface(index)
                .protocol(RouteProtocol::from(proto));
            if let Some(IpNet::V4(d)) = dst {
                b = b.destination_prefix(d.network(), d.prefix_len());
            }
            b.build()
        }
        (IpAddr::V6(g), dst) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .gateway(g)
                .output_interface(index)
                .protocol(RouteProtocol::from(proto));
            if let Some(IpNet::V6(d)) = dst {
                b = b.destination_prefix(d.network(), d.prefix_len());
            }
            b.build()
        }
    }
}

/// The kernel's messages as [`LiveNet`]: indices become names.
fn live(links: &[LinkMessage], addrs: &[AddressMessage], routes: &[RouteMessage]) -> LiveNet {
    let names: std::collections::HashMap<u32, String> = links
        .iter()
        .filter_map(|l| {
            l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some((l.header.index, n.clone())),
                _ => None,
            })
        })
        .collect();
    let name_of = |index: u32| names.get(&index).cloned();
    LiveNet {
        links: links.iter().map(|l| link(l, &name_of)).collect(),
        addrs: addrs.iter().filter_map(|a| address(a, &name_of)).collect(),
        routes: routes.iter().filter_map(|r| route(r, &name_of)).collect(),
    }
}

fn link(l: &LinkMessage, name_of: &dyn Fn(u32) -> Option<String>) -> LiveLink {
    let mut link = LiveLink {
        up: l.header.flags.contains(LinkFlags::Up),
        ..LiveLink::default()
    };
    let (mut parent, mut kind, mut vlan_id, mut bond) = (None, None, None, None);
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::IfAlias(n) => link.alias = Some(n.clone()),
            LinkAttribute::Controller(m) => link.master = name_of(*m),
            LinkAttribute::Link(p) => parent = name_of(*p),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::AfSpecUnspec(specs) => link.ra = router_advertisements(specs),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(k) => kind = Some(k.clone()),
                        LinkInfo::Data(InfoData::Bond(data)) => bond = Some(bond_spec(data)),
                        LinkInfo::Data(InfoData::Vlan(data)) => {
                            vlan_id = data.iter().find_map(|d| match d {
                                InfoVlan::Id(id) => Some(*id),
                                _ => None,
                            });
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    link.kind = match (kind, parent, vlan_id) {
        (None, _, _) => LiveKind::Plain,
        (Some(InfoKind::Bridge), _, _) => LiveKind::Bridge,
        (Some(InfoKind::Vlan), Some(parent), Some(id)) => LiveKind::Vlan { parent, id },
        (Some(InfoKind::Bond), _, _) => LiveKind::Bond(bond.unwrap_or_else(|| bond_spec(&[]))),
        (Some(other), _, _) => LiveKind::Other(other.to_string()),
    };
    link
}

fn address(a: &AddressMessage, name_of: &dyn Fn(u32) -> Option<String>) -> Option<LiveAddr> {
    let dev = name_of(a.header.index)?;
    let mut addr = None;
    let mut proto = 0;
    for attr in &a.attributes {
        match attr {
            // IPv4: the local address; IPv6 has only IFA_ADDRESS.
            AddressAttribute::Local(ip) => addr = Some(*ip),
            AddressAttribute::Address(ip) if addr.is_none() => addr = Some(*ip),
            AddressAttribute::Protocol(p) => proto = u8::from(*p),
            _ => {}
        }
    }
    let net = IpNet::new(addr?, a.header.prefix_len).ok()?;
    let secondary = a.header.flags.contains(AddressHeaderFlags::Secondary);
    Some(LiveAddr {
        dev,
        net,
        proto,
        secondary,
    })
}

/// A route through a gateway in the main table.
fn route(r: &RouteMessage, name_of: &dyn Fn(u32) -> Option<String>) -> Option<LiveRoute> {
    let table = r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Table(t) => Some(*t),
        _ => None,
    });
    let table = table.unwrap_or(u32::from(r.header.table));
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let (mut gateway, mut dev, mut dst) = (None, None, None);
    for a in &r.attributes {
        match a {
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(IpAddr::V4(*g)),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => gateway = Some(IpAddr::V6(*g)),
            RouteAttribute::Oif(i) => dev = name_of(*i),
            RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = Some(IpAddr::V4(*d)),
            RouteAttribute::Destination(RouteAddress::Inet6(d)) => dst = Some(IpAddr::V6(*d)),
            _ => {}
        }
    }
    let len = r.header.destination_prefix_length;
    let dst = match dst {
        _ if len == 0 => None,
        Some(d) => Some(IpNet::new(d, len).ok()?),
        None => return None,
    };
    Some(LiveRoute {
        dev: dev?,
        dst,
        gateway: gateway?,
        proto: u8::from(r.header.protocol),
    })
}
