//! Topologies in the grammar's shapes, written from fuzzer bytes: the structure-aware fuzz
//! target and the property tests (tests/it/property.rs) share this generator.
//!
//! Without `mistakes` every topology is valid by construction: the generator keeps each rule
//! the checker enforces (one bridge per VLAN, unique addresses inside their prefix, agents
//! with bridges for their device roles and a path to the management servers, one default
//! gateway per family, VIP members with an address of each VIP family, …). With `mistakes`
//! it puts in, now and then, one of the mistakes people make — a value out of range, host
//! bits, a reference to nothing, a repeated name, a missing `}` — while the rest of the file
//! stays intact, so the fuzzer's time goes to the checker, the renderers and fmt rather than
//! to syntax errors. The layout varies (blanks, tabs, line breaks, comments) for fmt.

use arbitrary::{Result, Unstructured};

/// A topology's text.
pub fn topology(u: &mut Unstructured, mistakes: bool) -> Result<String> {
    let mut g = Gen {
        u,
        mistakes,
        out: String::new(),
    };
    let site = Site::plan(&mut g)?;
    g.site(&site)?;
    Ok(g.out)
}

struct Gen<'a, 'b> {
    u: &'a mut Unstructured<'b>,
    mistakes: bool,
    out: String,
}

/// An IPv4 (`10.<i>.0.0/len`) or IPv6 (`fd00:<i>::/len`) prefix of VLAN number `i`.
#[derive(Clone, Copy)]
struct Net {
    v6: bool,
    i: usize,
    len: u8,
    gateway: bool,
}

impl Net {
    fn prefix(&self) -> String {
        match self.v6 {
            false => format!("10.{}.0.0/{}", self.i, self.len),
            true => format!("fd00:{}::/{}", self.i, self.len),
        }
    }

    /// The address at `offset` in the prefix (offsets stay below 30: every length fits).
    fn address(&self, offset: usize) -> String {
        match self.v6 {
            false => format!("10.{}.0.{offset}", self.i),
            true => format!("fd00:{}::{offset:x}", self.i),
        }
    }
}

struct Vlan {
    id: u16,
    role: Option<&'static str>,
    nets: Vec<Net>,
}

struct Bridge {
    name: String,
    vlan: usize,
    nic: usize,
    /// Addresses by family (v4 first), each at the host's offset.
    addresses: Vec<Net>,
}

struct Host {
    name: &'static str,
    server: bool,
    agent: bool,
    nics: Vec<&'static str>,
    bridges: Vec<Bridge>,
    /// `agent { <device> <bridge> }` overrides.
    devices: Vec<(&'static str, String)>,
}

struct Vip {
    vlan: usize,
    families: Vec<Net>,
    members: Vec<usize>,
    check: bool,
}

struct Firewall {
    name: &'static str,
    ports: Vec<(Option<&'static str>, Vec<u16>)>,
    allows: Vec<String>,
    on: Option<Vec<usize>>,
}

struct Site {
    vlans: Vec<Vlan>,
    connect_v6: bool,
    defaults: Option<Vec<(&'static str, &'static str)>>,
    hosts: Vec<Host>,
    vips: Vec<Vip>,
    firewalls: Vec<Firewall>,
}

const VLAN_IDS: [u16; 8] = [529, 425, 134, 1, 2, 10, 100, 4094];
const ROLES: [&str; 3] = ["guest", "public", "uplink"];
const HOSTS: [&str; 6] = ["biloba", "ginkgo", "chamomile", "h1", "web-2", "a"];
const NICS: [&str; 5] = ["eno1", "eno2", "enp3s0f0", "ens1f0np0", "eth0"];
const CHAINS: [&str; 3] = ["CLOUDSTACK-SERVICES", "DB", "web_1"];
const PORTS: [u16; 8] = [16509, 16514, 45335, 41047, 8250, 3306, 22, 65535];

impl Site {
    fn plan(g: &mut Gen) -> Result<Site> {
        let vlans = Site::vlans(g)?;
        let connect_v6 = match (vlans[0].nets.iter().any(|n| !n.v6), vlans[0].nets.len()) {
            (false, _) => true,
            (true, 2) => g.u.arbitrary()?,
            (true, _) => false,
        };
        // `connect ipv6` needs the site's `agent` block.
        let defaults = match connect_v6 || g.u.arbitrary()? {
            true => Some(Site::device_roles(g, &vlans)?),
            false => None,
        };
        let mut site = Site {
            vlans,
            connect_v6,
            defaults,
            hosts: Vec::new(),
            vips: Vec::new(),
            firewalls: Vec::new(),
        };
        site.hosts(g)?;
        site.vips(g)?;
        for i in 0..g.u.int_in_range(0..=2)? {
            let f = site.firewall(g, i)?;
            site.firewalls.push(f);
        }
        Ok(site)
    }

    /// The first VLAN has role management; each other role at most once; at most one
    /// VLAN per family has a gateway.
    fn vlans(g: &mut Gen) -> Result<Vec<Vlan>> {
        let mut roles = ROLES.to_vec();
        let mut gateways = [false; 2];
        let mut vlans = Vec::new();
        let n = g.u.int_in_range(1..=4)?;
        for (i, &id) in VLAN_IDS.iter().enumerate().take(n) {
            let role = match i {
                0 => Some("management"),
                _ if roles.is_empty() || g.u.ratio(1, 4)? => None,
                _ => Some(roles.remove(g.u.choose_index(roles.len())?)),
            };
            let mut nets = Vec::new();
            let families = *g.u.choose(&[[true, false], [false, true], [true, true]])?;
            for (v6, wanted) in [false, true].into_iter().zip(families) {
                if !wanted {
                    continue;
                }
                let lens: &[u8] = if v6 {
                    &[48, 56, 64, 112]
                } else {
                    &[16, 20, 24, 27]
                };
                let gateway = !gateways[v6 as usize] && g.u.ratio(1, 3)?;
                gateways[v6 as usize] |= gateway;
                let len = *g.u.choose(lens)?;
                nets.push(Net {
                    v6,
                    i,
                    len,
                    gateway,
                });
            }
            vlans.push(Vlan { id, role, nets });
        }
        Ok(vlans)
    }

    /// `agent { … }` device mappings, each to a role some VLAN has.
    fn device_roles(g: &mut Gen, vlans: &[Vlan]) -> Result<Vec<(&'static str, &'static str)>> {
        let roles: Vec<&'static str> = vlans.iter().filter_map(|v| v.role).collect();
        let mut out = Vec::new();
        for device in ["private", "public", "guest"] {
            if g.u.ratio(1, 2)? {
                let role = match device {
                    "private" => "management",
                    _ => *g.u.choose(&roles)?,
                };
                out.push((device, role));
            }
        }
        Ok(out)
    }

    /// The role each device key is on.
    fn device_role(&self, device: &str) -> Option<&'static str> {
        let explicit = self.defaults.iter().flatten().find(|(d, _)| *d == device);
        let role = explicit.map(|(_, r)| *r).unwrap_or(match device {
            "private" => "management",
            "public" => "public",
            _ => "guest",
        });
        self.vlans
            .iter()
            .any(|v| v.role == Some(role))
            .then_some(role)
    }

    fn hosts(&mut self, g: &mut Gen) -> Result<()> {
        let n = g.u.int_in_range(1..=HOSTS.len())?;
        for h in 0..n {
            let agent = g.u.arbitrary()?;
            let server = g.u.arbitrary()? || (h == 0 && agent);
            let host = self.host(g, h, agent, server)?;
            self.hosts.push(host);
        }
        // Agents need a management server.
        if self.hosts.iter().any(|h| h.agent) && !self.hosts.iter().any(|h| h.server) {
            self.hosts[0].server = true;
            let mgmt = self.vlans[0].nets.clone();
            let first = &mut self.hosts[0];
            match first.bridges.iter_mut().find(|b| b.vlan == 0) {
                Some(b) => b.addresses = mgmt,
                None => first.bridges.push(Bridge {
                    name: "br-mgmt".into(),
                    vlan: 0,
                    nic: 0,
                    addresses: mgmt,
                }),
            }
        }
        Ok(())
    }

    /// One host: agents have a bridge on each VLAN a device key maps to, and agents and
    /// management servers an address of every family on the management VLAN.
    fn host(&self, g: &mut Gen, h: usize, agent: bool, server: bool) -> Result<Host> {
        let mut nics = NICS.to_vec();
        let mut host_nics = Vec::new();
        for _ in 0..g.u.int_in_range(1..=3)? {
            host_nics.push(nics.remove(g.u.choose_index(nics.len())?));
        }
        let needed: Vec<&str> = ["private", "public", "guest"]
            .into_iter()
            .filter_map(|d| self.device_role(d))
            .collect();
        let mut bridges = Vec::new();
        for (i, vlan) in self.vlans.iter().enumerate() {
            let must =
                (agent && vlan.role.is_some_and(|r| needed.contains(&r))) || (server && i == 0);
            if !must && !g.u.arbitrary()? {
                continue;
            }
            let mut addresses = Vec::new();
            for net in &vlan.nets {
                if ((agent || server) && i == 0) || g.u.arbitrary()? {
                    addresses.push(*net);
                }
            }
            let name = match g.u.ratio(1, 4)? {
                true => format!("vmbr{i}"),
                false => format!("br{}", vlan.id),
            };
            let nic = g.u.choose_index(host_nics.len())?;
            bridges.push(Bridge {
                name,
                vlan: i,
                nic,
                addresses,
            });
        }
        let mut devices = Vec::new();
        if agent && g.u.ratio(1, 4)? && !bridges.is_empty() {
            let b = &bridges[g.u.choose_index(bridges.len())?];
            devices.push((*g.u.choose(&["public", "guest"])?, b.name.clone()));
        }
        Ok(Host {
            name: HOSTS[h],
            server,
            agent,
            nics: host_nics,
            bridges,
            devices,
        })
    }

    /// VIPs on a VLAN some hosts bridge, with families every member has an address of.
    fn vips(&mut self, g: &mut Gen) -> Result<()> {
        for _ in 0..g.u.int_in_range(0..=2)? {
            let vlan = g.u.choose_index(self.vlans.len())?;
            let eligible: Vec<usize> = (0..self.hosts.len())
                .filter(|&h| self.hosts[h].bridges.iter().any(|b| b.vlan == vlan))
                .collect();
            if eligible.is_empty() {
                continue;
            }
            let mut members: Vec<usize> = Vec::new();
            for &h in &eligible {
                if members.is_empty() || g.u.arbitrary()? {
                    members.push(h);
                }
            }
            let bridge = |h: usize| self.hosts[h].bridges.iter().find(|b| b.vlan == vlan);
            let families: Vec<Net> = (self.vlans[vlan].nets.iter())
                .filter(|n| {
                    members.iter().all(|&h| {
                        let b = bridge(h).expect("eligible");
                        b.addresses.iter().any(|a| a.v6 == n.v6)
                    })
                })
                .copied()
                .collect();
            if families.is_empty() {
                continue;
            }
            let check = g.u.arbitrary()?;
            self.vips.push(Vip {
                vlan,
                families,
                members,
                check,
            });
        }
        Ok(())
    }

    fn firewall(&self, g: &mut Gen, i: usize) -> Result<Firewall> {
        let mut ports = Vec::new();
        let mut used: Vec<(bool, u16)> = Vec::new();
        for _ in 0..g.u.int_in_range(1..=2)? {
            let protocol = *g.u.choose(&[None, Some("tcp"), Some("udp")])?;
            let udp = protocol == Some("udp");
            let mut list = Vec::new();
            for _ in 0..g.u.int_in_range(1..=17)? {
                let port = match g.u.ratio(1, 2)? {
                    true => *g.u.choose(&PORTS)?,
                    false => g.u.int_in_range(1..=65535)?,
                };
                if !used.contains(&(udp, port)) {
                    used.push((udp, port));
                    list.push(port);
                }
            }
            ports.push((protocol, list));
        }
        let mut allows = Vec::new();
        for _ in 0..g.u.int_in_range(0..=6)? {
            allows.push(match g.u.int_in_range(0..=3)? {
                0 => format!(
                    "vlan {}",
                    self.vlans[g.u.choose_index(self.vlans.len())?].id
                ),
                1 => {
                    let len = g.u.int_in_range(0..=32u32)?;
                    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                    let net = std::net::Ipv4Addr::from(g.u.arbitrary::<u32>()? & mask);
                    format!("{net}/{len}")
                }
                2 => format!("2001:db8:{:x}::/48", g.u.arbitrary::<u16>()?),
                _ => format!("198.51.100.{}", g.u.arbitrary::<u8>()?),
            });
        }
        let on = match g.u.ratio(1, 3)? {
            true => Some(vec![g.u.choose_index(self.hosts.len())?]),
            false => None,
        };
        Ok(Firewall {
            name: CHAINS[i],
            ports,
            allows,
            on,
        })
    }
}

/// Offsets in a prefix: the gateway, each host's address, each VIP's.
const GATEWAY: usize = 1;
const HOST: usize = 2;
const VIP: usize = 20;

impl Gen<'_, '_> {
    /// True now and then, when mistakes are wanted.
    fn oops(&mut self, one_in: u32) -> Result<bool> {
        Ok(self.mistakes && self.u.ratio(1, one_in)?)
    }

    /// `good`, or now and then one of the `bad` values.
    fn value(&mut self, good: String, bad: &[&str]) -> Result<String> {
        // About one value in 60: a file has a mistake or two, and a quarter have none.
        Ok(match self.oops(60)? {
            true => self.u.choose(bad)?.to_string(),
            false => good,
        })
    }

    /// Whitespace between two words: mostly a blank; now and then a tab, a line break, a
    /// CR LF or a comment.
    fn blank(&mut self) -> Result<()> {
        let s = match self.u.int_in_range(0..=15)? {
            0 => "\t",
            1 => "\n",
            2 => "  ",
            3 => " # note\n",
            4 => "\r\n ",
            _ => " ",
        };
        self.out.push_str(s);
        Ok(())
    }

    /// A statement on a line of its own (now and then after a blank line, or on the line
    /// before), and now and then a trailing comment.
    fn statement(&mut self, depth: usize, words: &[String]) -> Result<()> {
        match self.u.int_in_range(0..=9)? {
            0 => self.out.push(' '),
            1 => self.out.push_str("\n\n"),
            _ => self.out.push('\n'),
        }
        let indent = if self.u.ratio(1, 10)? { 1 } else { 4 * depth };
        self.out.push_str(&" ".repeat(indent));
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                self.blank()?;
            }
            self.out.push_str(w);
        }
        if self.u.ratio(1, 8)? {
            self.out.push_str("  # why\n");
        }
        if self.oops(1000)? {
            let junk = *self
                .u
                .choose(&["}", "{", "vlan", "@", "\"x", ",", "allow"])?;
            self.out.push_str(&format!(" {junk} "));
        }
        Ok(())
    }

    fn open(&mut self) -> Result<()> {
        if self.u.arbitrary()? {
            self.blank()?;
        }
        self.out.push('{');
        Ok(())
    }

    fn close(&mut self, depth: usize) -> Result<()> {
        if self.oops(400)? {
            return Ok(()); // a missing `}`
        }
        self.out.push('\n');
        self.out.push_str(&"    ".repeat(depth));
        self.out.push('}');
        Ok(())
    }

    fn site(&mut self, site: &Site) -> Result<()> {
        self.out.push_str("# generated\n");
        for (i, vlan) in site.vlans.iter().enumerate() {
            self.vlan(site, i, vlan)?;
        }
        if let Some(devices) = &site.defaults {
            self.defaults(site, devices)?;
        }
        for (h, host) in site.hosts.iter().enumerate() {
            self.host(site, h, host)?;
        }
        for (v, vip) in site.vips.iter().enumerate() {
            self.vip(site, v, vip)?;
        }
        for fw in &site.firewalls {
            self.firewall(site, fw)?;
        }
        self.out.push('\n');
        Ok(())
    }

    fn vlan(&mut self, site: &Site, i: usize, vlan: &Vlan) -> Result<()> {
        let first = site.vlans[0].id.to_string();
        let id = self.value(
            vlan.id.to_string(),
            &["0", "4095", "99999999999999999999", &first],
        )?;
        let name = *self
            .u
            .choose(&["\"csc-cloud management\"", "\"m\"", "\"\""])?;
        self.statement(0, &["vlan".into(), id, name.into()])?;
        self.open()?;
        if let Some(role) = vlan.role {
            let role = self.value(role.into(), &["managment", "storage"])?;
            self.statement(1, &["role".into(), role])?;
        }
        for net in &vlan.nets {
            let mut words = vec!["prefix".to_string()];
            let bits = format!("10.{i}.0.1/{}", net.len);
            words.push(self.value(net.prefix(), &[&bits, "10.0.0/24", "fd00::/129", "x"])?);
            if net.gateway {
                words.push("gateway".into());
                let gw = net.address(GATEWAY);
                words.push(self.value(gw, &["192.0.2.1", "10.0.0.0", "fd00:ff::1"])?);
            }
            self.statement(1, &words)?;
        }
        self.close(0)
    }

    fn defaults(&mut self, site: &Site, devices: &[(&str, &str)]) -> Result<()> {
        self.statement(0, &["agent".into()])?;
        self.open()?;
        if self.u.arbitrary()? {
            let port = self.value("8250".into(), &["0", "65536"])?;
            self.statement(1, &["port".into(), port])?;
        }
        if self.u.arbitrary()? {
            let kind = self.value("native".into(), &["openvswitch", "linux"])?;
            self.statement(1, &["bridge-type".into(), kind])?;
        }
        let family = if site.connect_v6 { "ipv6" } else { "ipv4" };
        let family = self.value(family.into(), &["ipv5"])?;
        self.statement(1, &["connect".into(), family])?;
        for (device, role) in devices {
            let role = self.value(role.to_string(), &["uplink", "nope"])?;
            self.statement(1, &[device.to_string(), role])?;
        }
        self.close(0)
    }

    fn host(&mut self, site: &Site, h: usize, host: &Host) -> Result<()> {
        let name = self.value(host.name.into(), &["-bad", "biloba", "a.b"])?;
        self.statement(0, &["host".into(), name])?;
        self.open()?;
        if host.server {
            self.statement(1, &["management-server".into()])?;
        }
        if host.agent {
            self.statement(1, &["agent".into()])?;
            if !host.devices.is_empty() || self.u.ratio(1, 8)? {
                self.open()?;
                for (device, bridge) in &host.devices {
                    let bridge = self.value(bridge.clone(), &["nosuch"])?;
                    self.statement(2, &[device.to_string(), bridge])?;
                }
                self.close(1)?;
            }
        }
        for nic in &host.nics {
            let nic = self.value(nic.to_string(), &["eth0.5", "averyveryverylongnic", "-x"])?;
            self.statement(1, &["nic".into(), nic])?;
        }
        for b in &host.bridges {
            self.bridge(site, h, host, b)?;
        }
        self.close(0)
    }

    fn bridge(&mut self, site: &Site, h: usize, host: &Host, b: &Bridge) -> Result<()> {
        let vlan = site.vlans[b.vlan].id.to_string();
        let words = vec![
            "bridge".to_string(),
            self.value(b.name.clone(), &["br.1", "bridge-name-too-long"])?,
            "vlan".into(),
            self.value(vlan, &["999", "529"])?,
            "on".into(),
            self.value(host.nics[b.nic].into(), &["nosuch"])?,
        ];
        self.statement(1, &words)?;
        if b.addresses.is_empty() && self.u.arbitrary()? {
            return Ok(());
        }
        self.open()?;
        for net in &b.addresses {
            let other = net.address(HOST);
            let addr = net.address(HOST + h);
            let with_len = format!("{addr}/{}", net.len);
            let addr = self.value(addr, &[&other, &with_len, "10.99.0.1", "fd00:99::1", "x"])?;
            self.statement(2, &["address".into(), addr])?;
        }
        self.close(1)
    }

    fn vip(&mut self, site: &Site, v: usize, vip: &Vip) -> Result<()> {
        let name = self.value(format!("vip{v}"), &["bad name", "vip0"])?;
        self.statement(0, &["vip".into(), name])?;
        self.open()?;
        let vlan = site.vlans[vip.vlan].id.to_string();
        let vlan = self.value(vlan, &["999"])?;
        self.statement(1, &["vlan".into(), vlan])?;
        for net in &vip.families {
            let host = net.address(HOST);
            let addr = self.value(net.address(VIP + v), &[&host, "10.99.0.1"])?;
            self.statement(1, &["address".into(), addr])?;
        }
        let id = self.value((1 + v).to_string(), &["0", "256", "1"])?;
        self.statement(1, &["router-id".into(), id])?;
        for (i, &m) in vip.members.iter().enumerate() {
            let host = self.value(site.hosts[m].name.into(), &["nosuch"])?;
            let priority = self.value((150 - 10 * i).to_string(), &["0", "255", "150"])?;
            self.statement(1, &["member".into(), host, "priority".into(), priority])?;
        }
        if vip.check {
            let script = self.value("\"/usr/local/bin/check\"".into(), &["\"check\""])?;
            let interval = self.value("2".into(), &["0", "99999"])?;
            self.statement(1, &["check".into(), script, "interval".into(), interval])?;
        }
        self.close(0)
    }

    fn firewall(&mut self, site: &Site, fw: &Firewall) -> Result<()> {
        let name = self.value(
            fw.name.into(),
            &["INPUT", "A-CHAIN-NAME-FAR-TOO-LONG-FOR-X", "a b"],
        )?;
        self.statement(0, &["firewall".into(), name])?;
        self.open()?;
        for (protocol, ports) in &fw.ports {
            let mut words = vec!["ports".to_string()];
            words.extend(protocol.map(String::from));
            for (i, port) in ports.iter().enumerate() {
                if i > 0 {
                    words.push(",".into());
                }
                words.push(self.value(port.to_string(), &["0", "65536", "16509"])?);
            }
            self.statement(1, &words)?;
        }
        for allow in &fw.allows {
            let allow = self.value(allow.clone(), &["10.0.0.1/8", "vlan 999", "::/0", "x"])?;
            let mut words = vec!["allow".to_string()];
            words.extend(allow.split(' ').map(String::from));
            self.statement(1, &words)?;
        }
        if let Some(on) = &fw.on {
            let mut words = vec!["on".to_string()];
            for (i, &h) in on.iter().enumerate() {
                if i > 0 {
                    words.push(",".into());
                }
                words.push(self.value(site.hosts[h].name.into(), &["nosuch"])?);
            }
            self.statement(1, &words)?;
        }
        self.close(0)
    }
}
