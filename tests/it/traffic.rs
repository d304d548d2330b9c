//! The artefacts behave as the topology says, with real traffic between namespaces this test
//! creates (nothing leaves them):
//! - the firewall: allowed sources reach the service ports, others are REJECTed (refused at
//!   once, not dropped), and a non-service port stays open to everyone;
//! - keepalived: the higher priority holds the VIP, the other takes over on SIGTERM and
//!   SIGKILL and answers ping, and the first takes it back when it returns;
//! - interfaces: ifupdown itself brings the file up (veths stand in for the 802.1Q
//!   subinterfaces this kernel lacks) and the host answers on its addresses.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netc::config::Target;
use netc::model::{Family, Host, Protocol, Topology};
use netc::render;

use crate::netns::{Netns, Verdict, available, connect};
use crate::support::*;

fn topology(path: &Path) -> Topology {
    compile(path).topology.expect("valid topology")
}

fn rendered(topo: &Topology, host: &str, rel: &str) -> String {
    render::tree(topo, Target::Both)
        .remove(&Path::new(host).join(rel))
        .unwrap_or_else(|| panic!("{host}/{rel}"))
}

// --- firewall ---------------------------------------------------------------------------

const SERVER_V4: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x64, 0, 0, 0, 0, 0, 1);

/// Addresses that stand for "anyone else": the first not allowed by any policy is used.
const OUTSIDERS: [&str; 6] = [
    "198.18.7.7",
    "100.127.7.7",
    "203.0.113.250",
    "2001:db8:dead::7",
    "fd99:dead::7",
    "2001:db8:beef::7",
];

/// What the topology says should happen to TCP from `source` to `port` on `host`.
fn expected(topo: &Topology, host: &Host, source: IpAddr, port: u16) -> Verdict {
    for p in topo.policies_on(&host.name) {
        let protects = p
            .ports
            .iter()
            .any(|s| s.protocol == Protocol::Tcp && s.contains(port));
        if protects && !p.sources.iter().any(|s| s.net.contains(&source)) {
            return Verdict::Refused;
        }
    }
    Verdict::Connected
}

/// Sources to try on `host`: one inside each allowed prefix, and one outsider per family.
/// At most `cap` allowed sources per policy are sampled, spread over the list.
fn sample_sources(topo: &Topology, host: &Host, cap: usize) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    for p in topo.policies_on(&host.name) {
        let step = p.sources.len().div_ceil(cap).max(1);
        for s in p.sources.iter().step_by(step) {
            out.insert(inside(s.net));
        }
    }
    // Per policy and family, an address that policy does not allow (none if it allows /0).
    for p in topo.policies_on(&host.name) {
        for family in Family::ALL {
            let outsider = OUTSIDERS
                .iter()
                .map(|a| a.parse::<IpAddr>().unwrap())
                .filter(|a| Family::of(a) == family)
                .find(|a| !p.sources.iter().any(|s| s.net.contains(a)));
            out.extend(outsider);
        }
    }
    out
}

/// A host address inside `net` (the network address itself for /32 and /128).
fn inside(net: IpNet) -> IpAddr {
    if net.prefix_len() == net.max_prefix_len() {
        return net.addr();
    }
    if net.prefix_len() == 0 {
        // Anything is inside /0; `::` and 0.0.0.1 are not usable sources.
        let any = if net.addr().is_ipv4() {
            "198.18.100.1"
        } else {
            "2001:db8:100::1"
        };
        return any.parse().unwrap();
    }
    net.hosts().next().unwrap()
}

/// Which rendered firewall a test loads.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Loader {
    /// netc.v4 and netc.v6 as netc-firewall.service loads them (their ipsets first).
    Iptables,
    /// `nft -f netc.nft`.
    Nftables,
    /// The nftnl batch apply loads.
    Nftnl,
}

/// Loads the firewall the way the host does at boot: netc-firewall.service's commands.
fn load(ns: &Netns, topo: &Topology, host: &Host, loader: Loader) {
    let target = match loader {
        Loader::Iptables => Target::Iptables,
        Loader::Nftables => Target::Nftables,
        Loader::Nftnl => {
            let table = render::nft_table(topo, host);
            ns.enter(|| netc::live::nftnl::load(&table)).unwrap();
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let commands = crate::boot::boot_commands(topo, &host.name, target, dir.path());
    crate::boot::run_boot_path(ns, &commands);
}

/// Loads a host's rules into a server namespace and tries every (source, port) pair.
pub(crate) fn check_firewall(topo: &Topology, host: &Host, loader: Loader, cap: usize) -> usize {
    let server = Netns::new("fws");
    let client = Netns::new("fwc");
    server.link("s0", &client, "c0");
    // REJECT answers with ICMP; the kernel's rate limit (a burst of 6, then 1/s per peer)
    // would make later SYNs wait for a retransmit, and so would the global ICMP budget (a
    // burst of 50) with hundreds of parallel attempts. The semantics are the same without.
    server.ok(&[
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.icmp_ratelimit=0",
        "net.ipv6.icmp.ratelimit=0",
        "net.ipv4.icmp_msgs_per_sec=1000000",
        "net.ipv4.icmp_msgs_burst=1000000",
    ]);
    server.addr("s0", &format!("{SERVER_V4}/32"));
    server.addr("s0", &format!("{SERVER_V6}/128"));
    client.ok(&[
        "ip",
        "route",
        "add",
        &format!("{SERVER_V4}/32"),
        "dev",
        "c0",
    ]);
    client.ok(&[
        "ip",
        "-6",
        "route",
        "add",
        &format!("{SERVER_V6}/128"),
        "dev",
        "c0",
    ]);
    let sources = sample_sources(topo, host, cap);
    for s in &sources {
        let (len, ip) = if s.is_ipv4() { (32, "-4") } else { (128, "-6") };
        client.addr("c0", &format!("{s}/{len}"));
        server.ok(&["ip", ip, "route", "add", &format!("{s}/{len}"), "dev", "s0"]);
    }
    load(&server, topo, host, loader);

    // Every TCP service port, plus one port no policy protects.
    let mut ports: BTreeSet<u16> = topo
        .policies_on(&host.name)
        .flat_map(|p| p.ports.iter().filter(|s| s.protocol == Protocol::Tcp))
        .flat_map(|s| s.ports.iter().flat_map(|r| [r.first, r.last]))
        .collect();
    let other = [22, 2222, 8022]
        .into_iter()
        .find(|p| !ports.contains(p))
        .unwrap();
    ports.insert(other);
    // Dual-stack listeners ([::] accepts IPv4 too); the kernel completes handshakes itself.
    let listeners: Vec<TcpListener> = server.enter(|| {
        ports
            .iter()
            .map(|p| TcpListener::bind(("::", *p)).unwrap())
            .collect()
    });

    // In parallel: over veth the first ICMPv6 error reaches the client while connect() still
    // holds the socket, so Linux refuses only on the SYN retransmit a second later. (Threads
    // inherit the namespace of the thread that spawns them.)
    let pairs: Vec<(IpAddr, u16)> = sources
        .iter()
        .flat_map(|s| ports.iter().map(move |p| (*s, *p)))
        .collect();
    let results: Vec<(IpAddr, u16, Verdict)> = client.enter(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = pairs
                .iter()
                .map(|&(source, port)| {
                    scope.spawn(move || {
                        let server = if source.is_ipv4() {
                            IpAddr::V4(SERVER_V4)
                        } else {
                            IpAddr::V6(SERVER_V6)
                        };
                        (source, port, connect(source, SocketAddr::new(server, port)))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    });
    let tried = results.len();
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|(source, port, got)| {
            let want = expected(topo, host, source, port);
            // `netc query` must agree with what the kernel did.
            let trace = netc::review::query::query(topo, &host.name, source, Protocol::Tcp, port);
            let said = match trace.verdict {
                netc::review::query::Verdict::Accept => Verdict::Connected,
                netc::review::query::Verdict::Reject => Verdict::Refused,
            };
            (got != want || said != got).then(|| {
                format!(
                    "{source} → port {port}: got {got:?}, want {want:?}, netc query says {said:?}"
                )
            })
        })
        .collect();
    drop(listeners);
    assert!(
        failures.is_empty(),
        "{}: {}",
        host.name,
        failures.join("\n")
    );
    // The run must have seen both outcomes on both families.
    let verdicts: BTreeSet<(bool, Verdict)> = sources
        .iter()
        .flat_map(|s| ports.iter().map(move |p| (s.is_ipv4(), *p, *s)))
        .map(|(v4, p, s)| (v4, expected(topo, host, s, p)))
        .collect();
    assert!(
        verdicts.len() == 4 || topo.policies_on(&host.name).count() == 0,
        "{verdicts:?}"
    );
    tried
}

fn check_firewall_of(path: &Path) {
    let topo = topology(path);
    let hosts = topo
        .hosts
        .iter()
        .filter(|h| topo.policies_on(&h.name).next().is_some());
    for loader in [Loader::Iptables, Loader::Nftables, Loader::Nftnl] {
        let tried: usize = hosts
            .clone()
            .map(|host| check_firewall(&topo, host, loader, usize::MAX))
            .sum();
        eprintln!(
            "{} ({loader:?}): {tried} connections behaved as the topology says",
            path.display()
        );
        assert!(tried > 0);
    }
}

/// The seed's own rule: only fd74:6b6a:8eca:4902::/64 (and 172.19.168.0/27, its IPv4 prefix)
/// reach 16509/16514/45335/41047/8250; port 22 stays open to all.
#[test]
fn csc_firewall_behaves() {
    if !available(
        "csc firewall",
        &["iptables-restore", "ip6tables-restore", "nft"],
    ) {
        return;
    }
    let topo = topology(&root().join("topology/csc.csn"));
    let biloba = topo.host("biloba").unwrap();
    let seed: IpNet = "fd74:6b6a:8eca:4902::/64".parse().unwrap();
    assert!(
        topo.policies_on("biloba")
            .any(|p| p.sources.iter().any(|s| s.net == seed))
    );
    let allowed: IpAddr = "fd74:6b6a:8eca:4902::1".parse().unwrap();
    let outsider: IpAddr = "2001:db8:dead::7".parse().unwrap();
    assert_eq!(expected(&topo, biloba, allowed, 16509), Verdict::Connected);
    assert_eq!(expected(&topo, biloba, outsider, 16509), Verdict::Refused);
    assert_eq!(expected(&topo, biloba, outsider, 22), Verdict::Connected);
    check_firewall_of(&root().join("topology/csc.csn"));
}

/// The host's own connections to someone the firewall does not allow, from a local port the
/// firewall protects (the kernel picks such ports from its ephemeral range: 41047 and 45335
/// are in it): the answers are replies, not new connections, and get through. A new
/// connection from that someone to the same port is still refused.
fn own_connections_from_protected_ports(topo: &Topology, host: &Host, loader: Loader) {
    let server = Netns::new("own");
    let outsider = Netns::new("out");
    server.link("s0", &outsider, "o0");
    let (far4, far6) = (
        Ipv4Addr::new(198, 18, 7, 7),
        "2001:db8:dead::7".parse::<Ipv6Addr>().unwrap(),
    );
    server.addr("s0", &format!("{SERVER_V4}/32"));
    server.addr("s0", &format!("{SERVER_V6}/128"));
    outsider.addr("o0", &format!("{far4}/32"));
    outsider.addr("o0", &format!("{far6}/128"));
    for (ns, dev, dest) in [
        (&server, "s0", far4.to_string() + "/32"),
        (&server, "s0", far6.to_string() + "/128"),
        (&outsider, "o0", format!("{SERVER_V4}/32")),
        (&outsider, "o0", format!("{SERVER_V6}/128")),
    ] {
        ns.ok(&["ip", "route", "add", &dest, "dev", dev]);
    }
    load(&server, topo, host, loader);
    let ports: BTreeSet<u16> = topo
        .policies_on(&host.name)
        .flat_map(|p| p.ports.iter().filter(|s| s.protocol == Protocol::Tcp))
        .flat_map(|s| s.ports.iter().map(|r| r.first))
        .collect();
    let listeners: Vec<TcpListener> =
        outsider.enter(|| vec![TcpListener::bind(("::", 8443)).unwrap()]);
    for &port in &ports {
        for (local, far) in [
            (IpAddr::V4(SERVER_V4), IpAddr::V4(far4)),
            (IpAddr::V6(SERVER_V6), IpAddr::V6(far6)),
        ] {
            let out = server
                .enter(|| connect_from(SocketAddr::new(local, port), SocketAddr::new(far, 8443)));
            assert_eq!(
                out,
                Verdict::Connected,
                "{}: {local}:{port} → {far}:8443 ({loader:?})",
                host.name
            );
            let back = outsider.enter(|| connect(far, SocketAddr::new(local, port)));
            assert_eq!(
                back,
                Verdict::Refused,
                "{}: new {far} → {local}:{port} ({loader:?})",
                host.name
            );
        }
    }
    drop(listeners);
}

/// Connects from a given local address and port.
fn connect_from(local: SocketAddr, dest: SocketAddr) -> Verdict {
    use socket2::{Domain, Socket, Type};
    let domain = if dest.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::STREAM, None).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.bind(&local.into()).unwrap();
    match socket.connect_timeout(&dest.into(), Duration::from_secs(5)) {
        Ok(()) => Verdict::Connected,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Verdict::Refused,
        Err(_) => Verdict::TimedOut,
    }
}

#[test]
fn replies_to_the_hosts_own_connections_pass_on_protected_ports() {
    if !available(
        "stateful rejects",
        &["iptables-restore", "ip6tables-restore", "nft"],
    ) {
        return;
    }
    let topo = topology(&root().join("topology/csc.csn"));
    for host in &topo.hosts {
        for loader in [Loader::Iptables, Loader::Nftables] {
            own_connections_from_protected_ports(&topo, host, loader);
        }
    }
}

/// Several allowed prefixes per family, more than 15 ports, two chains.
#[test]
fn firewall_with_many_sources_behaves() {
    if !available(
        "many-sources firewall",
        &["iptables-restore", "ip6tables-restore", "nft"],
    ) {
        return;
    }
    check_firewall_of(&fixture("ok/many-sources.csn"));
    check_firewall_of(&fixture("ok/lab.csn"));
    check_firewall_of(&root().join("topology/examples/advanced-zone.csn"));
}

/// A large policy: per family, a group of sources over the ipset threshold (in the iptables
/// target, a `hash:net` set matched by one rule) beside groups that stay plain rules.
#[test]
fn firewall_with_ipsets_behaves() {
    if !available(
        "ipset firewall",
        &["iptables-restore", "ip6tables-restore", "ipset", "nft"],
    ) {
        return;
    }
    let text = crate::scale::topology::topology(80, 1).replace(
        "firewall CLOUDSTACK-SERVICES {",
        "firewall CLOUDSTACK-SERVICES {\n    allow 198.51.100.0/24\n    allow 2001:db8:7::/48",
    );
    let c = netc::compile("large.csn", text.as_bytes());
    let topo = c.topology.expect("valid topology");
    let host = &topo.hosts[0];
    let rules = rendered(&topo, &host.name, "etc/iptables/netc.v4");
    assert!(rules.contains("-m set --match-set CLOUDSTACK-SERVICES_v4 src -j RETURN"));
    assert!(rules.contains("-s 198.51.100.0/24 -j RETURN"), "{rules}");
    let v6 = rendered(&topo, &host.name, "etc/iptables/netc.v6");
    assert!(
        v6.contains("--match-set CLOUDSTACK-SERVICES_v6 src") && v6.contains("-s 2001:db8:7::/48")
    );
    for loader in [Loader::Iptables, Loader::Nftables, Loader::Nftnl] {
        let tried = check_firewall(&topo, host, loader, usize::MAX);
        eprintln!("large policy ({loader:?}): {tried} connections behaved as the topology says");
    }
}

// --- keepalived -------------------------------------------------------------------------

/// One keepalived instance in its own namespace, killed on drop.
struct Keepalived {
    child: Child,
    dir: tempfile::TempDir,
}

impl Keepalived {
    /// keepalived for `host` of `topo` in `ns`. Its check scripts (in a private mount
    /// namespace) succeed while `health`/up exists, and log each run to `health`/runs.
    fn start(ns: &Netns, topo: &Topology, host: &str, config: &str, health: &Path) -> Keepalived {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("keepalived.conf");
        std::fs::write(&conf, config).unwrap();
        let path = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
        let body = format!("echo run >> {0}/runs\ntest -e {0}/up", health.display());
        let mounts = crate::tools::provide_scripts(topo, host, dir.path(), &body);
        let shell = format!(
            "{mounts}exec keepalived --vrrp --dont-fork --no-syslog -f {} -p {} -r {}",
            path("keepalived.conf"),
            path("k.pid"),
            path("v.pid")
        );
        let child = Command::new("ip")
            .args([
                "netns", "exec", &ns.name, "unshare", "-m", "sh", "-c", &shell,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Keepalived { child, dir }
    }

    /// A crash: SIGKILL the VRRP process first. (Killing the parent first would let the
    /// child shut down gracefully on its parent-death signal, sending priority 0.)
    fn crash(&mut self) {
        let vrrp = std::fs::read_to_string(self.dir.path().join("v.pid")).unwrap();
        let pid = rustix::process::Pid::from_raw(vrrp.trim().parse().unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(&mut self) {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn has_address(ns: &Netns, dev: &str, addr: &str) -> bool {
    ns.ok(&["ip", "-br", "addr", "show", "dev", dev])
        .split_whitespace()
        .any(|a| a.split('/').next() == Some(addr))
}

/// Waits until `pred` holds; returns how long it took.
fn wait_for(what: &str, limit: Duration, pred: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !pred() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// A node of the VRRP test: a namespace with the host's bridge on the VIP's VLAN, plugged
/// into a shared switch namespace.
fn vrrp_node(topo: &Topology, host: &str, vlan: u16, switch: &Netns, port: &str) -> Netns {
    let ns = Netns::new("vrrp");
    let bridge = topo.host(host).unwrap().bridge_on(vlan).unwrap();
    ns.ok(&["ip", "link", "add", &bridge.name, "type", "bridge"]);
    ns.link("eth0", switch, port);
    ns.ok(&["ip", "link", "set", "eth0", "master", &bridge.name]);
    switch.ok(&["ip", "link", "set", port, "master", "sw"]);
    ns.ok(&["ip", "link", "set", &bridge.name, "up"]);
    for a in &bridge.addresses {
        ns.addr(&bridge.name, &a.net.to_string());
    }
    ns
}

/// How often a node's check script has run.
fn runs(health: &Path) -> usize {
    std::fs::read_to_string(health.join("runs"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// csc.csn's VIP between two namespaces, with its MariaDB check and nopreempt: the higher
/// priority takes the VIP; its IPv6 VIP is never its source address; a failing check
/// ("MariaDB stopped") moves both addresses to the other member; once the check passes again,
/// and after a restart of keepalived, the old master does not take the VIP back; a crash of
/// the holder (SIGKILL) hands it over again. (One scenario, step by step: each step starts
/// from the state the one before left, so it stays one function.)
#[test]
fn keepalived_fails_over_on_a_failed_check_and_does_not_take_the_vip_back() {
    if !available("keepalived failover", &["keepalived", "ping", "unshare"]) {
        return;
    }
    let topo = topology(&root().join("topology/csc.csn"));
    let vip = &topo.vips[0];
    assert_eq!(
        vip.preempt,
        netc::model::Preempt::No,
        "csc.csn's VIP is nopreempt"
    );
    assert!(vip.check.is_some(), "csc.csn's VIP checks MariaDB");
    let (master, backup) = (&vip.members[0].host, &vip.members[1].host);
    let bridge = topo
        .host(master)
        .unwrap()
        .bridge_on(vip.vlan)
        .unwrap()
        .name
        .clone();
    let vip_of = |v4: bool| {
        vip.addresses
            .iter()
            .find(|a| a.addr().is_ipv4() == v4)
            .unwrap()
            .addr()
            .to_string()
    };
    let (vip4, vip6) = (vip_of(true), vip_of(false));

    let switch = Netns::new("sw");
    switch.ok(&["ip", "link", "add", "sw", "type", "bridge"]);
    switch.ok(&["ip", "link", "set", "sw", "up"]);
    let a = vrrp_node(&topo, master, vip.vlan, &switch, "pa");
    let b = vrrp_node(&topo, backup, vip.vlan, &switch, "pb");
    let client = Netns::new("cl");
    client.link("eth0", &switch, "pc");
    switch.ok(&["ip", "link", "set", "pc", "master", "sw"]);
    let subnet = topo.vlan(vip.vlan).unwrap().subnet(Family::V4).unwrap().net;
    client.addr(
        "eth0",
        &format!("{}/{}", subnet.hosts().last().unwrap(), subnet.prefix_len()),
    );

    let conf_a = rendered(&topo, master, "etc/keepalived/keepalived.conf");
    let conf_b = rendered(&topo, backup, "etc/keepalived/keepalived.conf");
    let holds = |ns: &Netns| has_address(ns, &bridge, &vip4) && has_address(ns, &bridge, &vip6);
    let free = |ns: &Netns| !has_address(ns, &bridge, &vip4) && !has_address(ns, &bridge, &vip6);
    let answers = || {
        client
            .run(&["ping", "-c", "1", "-W", "1", &vip4])
            .status
            .success()
    };
    let limit = Duration::from_secs(30);
    let (health_a, health_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(health_a.path().join("up"), "").unwrap();
    std::fs::write(health_b.path().join("up"), "").unwrap();

    let mut ka_a = Keepalived::start(&a, &topo, master, &conf_a, health_a.path());
    let election = wait_for("the master to take the VIP", limit, || holds(&a));
    let mut ka_b = Keepalived::start(&b, &topo, backup, &conf_b, health_b.path());
    wait_for("the backup's check to run", limit, || {
        runs(health_b.path()) >= 2
    });
    assert!(free(&b), "the backup took the VIP");
    wait_for("the VIP to answer ping", limit, answers);

    // The host's own IPv6 traffic on the VLAN leaves from its own address, not the VIP's.
    let own6 = topo
        .vrrp_address(vip, master, Family::V6)
        .unwrap()
        .to_string();
    let peer6 = topo
        .vrrp_address(vip, backup, Family::V6)
        .unwrap()
        .to_string();
    let route = a.ok(&["ip", "-6", "route", "get", &peer6]);
    assert!(route.contains(&format!("src {own6} ")), "{route}");

    // MariaDB stops on the master: its check fails, both addresses move.
    std::fs::remove_file(health_a.path().join("up")).unwrap();
    let check_failover = wait_for("failover after the check fails", limit, || {
        holds(&b) && free(&a)
    });
    wait_for("the VIP to answer from the backup", limit, answers);

    // MariaDB is back: the old master stays backup (nopreempt). Enough check runs for it to
    // leave FAULT (rise 2), then a few advert intervals in which it would have preempted.
    std::fs::write(health_a.path().join("up"), "").unwrap();
    let seen = runs(health_a.path());
    wait_for("the master's check to pass again", limit, || {
        runs(health_a.path()) >= seen + 3
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        holds(&b) && free(&a),
        "the recovered master took the VIP back"
    );

    // keepalived restarts on the old master: it still does not take the VIP.
    ka_a.terminate();
    drop(ka_a);
    let seen = runs(health_a.path());
    ka_a = Keepalived::start(&a, &topo, master, &conf_a, health_a.path());
    wait_for("the restarted master's check", limit, || {
        runs(health_a.path()) >= seen + 3
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        holds(&b) && free(&a),
        "the restarted master took the VIP back"
    );

    // A crash of the holder: the other takes over once adverts stop. (The dead node's
    // addresses stay on its bridge, as after a real crash.)
    let start = Instant::now();
    ka_b.crash();
    wait_for("failover after SIGKILL", limit, || holds(&a));
    let crash = start.elapsed();
    wait_for("the VIP to answer after the crash", limit, answers);
    ka_a.terminate();

    eprintln!(
        "keepalived ({master} → {backup}): election {election:.1?}, failed check → failover \
         {check_failover:.1?}, SIGKILL failover {crash:.1?}"
    );
}

// --- interfaces -------------------------------------------------------------------------

/// ifupdown brings a host's interfaces file up in a namespace; a peer on each VLAN reaches
/// the host's addresses; bridges, ports and default routes are as the topology says.
fn bring_up(topo: &Topology, host: &Host) {
    let h = Netns::new("ifh");
    let peer = Netns::new("ifp");
    // Duplicate address detection is the kernel's business, not the file's: without it ifup
    // does not wait a second or two per IPv6 address.
    h.ok(&[
        "sysctl",
        "-q",
        "-w",
        "net.ipv6.conf.all.accept_dad=0",
        "net.ipv6.conf.default.accept_dad=0",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("interfaces");
    std::fs::write(&file, rendered(topo, &host.name, "etc/network/interfaces")).unwrap();
    // veths named as the bridges' ports: the 802.1Q subinterfaces (ifupdown creates a VLAN
    // only when the name is missing, and this kernel has no 8021q) and the NICs an untagged
    // bridge is on. (Bonds need the bonding module: the VM test brings those up.)
    for (i, b) in host.bridges.iter().enumerate() {
        h.link(&b.port(), &peer, &format!("p{i}"));
    }
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let o = h.run(&[
        "ifup",
        "-a",
        "-i",
        file.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "{}: ifup: {}",
        host.name,
        String::from_utf8_lossy(&o.stderr)
    );

    for (i, b) in host.bridges.iter().enumerate() {
        let link = h.ok(&["ip", "-d", "link", "show", &b.port()]);
        assert!(
            link.contains(&format!("master {}", b.name)),
            "{}: {link}",
            b.port()
        );
        let bridge = h.ok(&["ip", "-d", "link", "show", &b.name]);
        assert!(
            bridge.contains("bridge ") && bridge.contains("state UP"),
            "{bridge}"
        );
        // The KVM guide's bridge: no STP, no forward delay.
        assert!(
            bridge.contains(" stp_state 0 ") && bridge.contains(" forward_delay 0 "),
            "{bridge}"
        );
        // No router advertisements on a bridge without an IPv6 gateway.
        let v6_gateway = b.address(Family::V6).is_some_and(|a| a.gateway.is_some());
        if !v6_gateway {
            for key in ["accept_ra", "autoconf"] {
                let v = h.ok(&["sysctl", "-n", &format!("net.ipv6.conf.{}.{key}", b.name)]);
                assert_eq!(v.trim(), "0", "{}: {} {key}", host.name, b.name);
            }
        }
        for a in &b.addresses {
            // The peer takes the last address of the subnet and pings the host.
            let subnet = a.net.trunc();
            let mine = subnet.hosts().last().unwrap();
            assert_ne!(mine, a.net.addr());
            peer.addr(&format!("p{i}"), &format!("{mine}/{}", subnet.prefix_len()));
            let target = a.net.addr().to_string();
            wait_for(
                &format!("{} to answer on {target}", host.name),
                Duration::from_secs(10),
                || {
                    peer.run(&["ping", "-c", "1", "-W", "1", &target])
                        .status
                        .success()
                },
            );
            if let Some(gw) = a.gateway {
                let flag = if gw.is_ipv4() { "-4" } else { "-6" };
                let routes = h.ok(&["ip", flag, "route", "show", "default"]);
                assert!(
                    routes.contains(&format!("default via {gw} dev {}", b.name)),
                    "{routes}"
                );
            }
        }
    }
}

#[test]
fn interfaces_come_up_with_ifupdown() {
    if !available("ifup in a namespace", &["ifup", "brctl", "ping"]) {
        return;
    }
    let topologies: Vec<Topology> = valid_topologies().iter().map(|p| topology(p)).collect();
    std::thread::scope(|s| {
        for topo in &topologies {
            // Bonds need the bonding module: the VM test brings those hosts up.
            for host in topo.hosts.iter().filter(|h| h.bonds.is_empty()) {
                s.spawn(move || bring_up(topo, host));
            }
        }
    });
}
