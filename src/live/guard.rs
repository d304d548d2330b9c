//! The lockout guard: would a change cut off the SSH session that runs it?
//!
//! The session is `$SSH_CONNECTION` (client, port, server, port; link-local addresses carry
//! their `%interface`). Its way back is found as the kernel would: the most specific of the
//! connected subnets and the routes through gateways (or, for a link-local client, its
//! interface). A change cuts it when it removes the server address — even for a moment, as
//! when a secondary address or a VIP is taken out and put back — or the connected subnet,
//! the route or the link its replies leave by, or a port of that link when it is a bridge;
//! or when it adds a subnet or route that would take the replies another way (more specific
//! than the one they take now, or as specific on another link).

use std::net::IpAddr;

use ipnet::IpNet;

use super::net::{LiveNet, LiveRoute, NetOp};

/// The two ends of an SSH session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub client: IpAddr,
    pub server: IpAddr,
    /// The interface of a link-local client (`fe80::1%br134`).
    pub scope: Option<String>,
}

impl Session {
    /// `$SSH_CONNECTION`: `client port server port`; an error says what does not parse.
    pub fn from_env(value: &str) -> Result<Session, String> {
        let bad =
            || format!("$SSH_CONNECTION (`{value}`) does not parse as `CLIENT PORT SERVER PORT`");
        let words: Vec<&str> = value.split_whitespace().collect();
        let [client, _, server, _] = words[..] else {
            return Err(bad());
        };
        let (client, scope) = scoped(client).ok_or_else(bad)?;
        let (server, server_scope) = scoped(server).ok_or_else(bad)?;
        Ok(Session {
            client,
            server,
            scope: scope.or(server_scope),
        })
    }
}

/// An address and its scope; an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, as some
/// servers report IPv4 clients of a dual-stack socket) is the IPv4 address it carries.
fn scoped(word: &str) -> Option<(IpAddr, Option<String>)> {
    let addr = |a: &str| a.parse::<IpAddr>().ok().map(|a| a.to_canonical());
    match word.split_once('%') {
        Some((a, scope)) if !scope.is_empty() => Some((addr(a)?, Some(scope.into()))),
        Some(_) => None,
        None => Some((addr(word)?, None)),
    }
}

/// The way the session's replies leave: a link, and the route when it is not a connected
/// subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Path<'a> {
    dev: &'a str,
    route: Option<&'a LiveRoute>,
}

/// The way the replies leave, and the prefix length that chose it (none for a link-local
/// client: its interface decides).
fn path<'a>(live: &'a LiveNet, s: &'a Session) -> Option<(Option<u8>, Path<'a>)> {
    if let Some(dev) = &s.scope {
        return Some((None, Path { dev, route: None }));
    }
    let family_of = |n: &IpNet| n.addr().is_ipv4() == s.client.is_ipv4();
    let connected = live
        .addrs
        .iter()
        .filter(|a| family_of(&a.net) && a.net.trunc().contains(&s.client))
        .map(|a| {
            (
                a.net.prefix_len(),
                Path {
                    dev: &a.dev,
                    route: None,
                },
            )
        });
    let routed = live
        .routes
        .iter()
        .filter(|r| r.gateway.is_ipv4() == s.client.is_ipv4())
        .filter(|r| r.dst.is_none_or(|d| d.contains(&s.client)))
        .map(|r| {
            let len = r.dst.map_or(0, |d| d.prefix_len());
            (
                len,
                Path {
                    dev: &r.dev,
                    route: Some(r),
                },
            )
        });
    // The most specific wins; a connected subnet before a route of the same length.
    connected
        .chain(routed)
        .fold(None, |best: Option<(u8, Path)>, (len, p)| match best {
            Some((b, _)) if b >= len => best,
            _ => Some((len, p)),
        })
        .map(|(len, p)| (Some(len), p))
}

/// Whether `op` adds a subnet or route that the kernel would prefer for the replies to
/// `client` over the way they take now (`len` long, `path`): one at least as specific that
/// leads another way — another link, another gateway, or on-link where a gateway was.
fn diverts(op: &NetOp, client: IpAddr, len: u8, path: &Path) -> bool {
    let (on, net, gateway) = match op {
        NetOp::AddAddr { dev, net, .. } => (dev, net.trunc(), None),
        NetOp::AddRoute {
            dev,
            dst: Some(d),
            gateway,
            ..
        } => (dev, *d, Some(*gateway)),
        _ => return false,
    };
    let same_way = on == path.dev && gateway == path.route.map(|r| r.gateway);
    !same_way && net.contains(&client) && net.prefix_len() >= len
}

/// What a new, more specific subnet or route takes from the session.
const DIVERTS: &str = "the way its replies leave";

/// Why `ops` would cut `session` off, if they would.
pub fn lockout(live: &LiveNet, ops: &[NetOp], session: &Session) -> Option<String> {
    let (len, path) = match path(live, session) {
        Some((len, p)) => (len, Some(p)),
        None => (None, None),
    };
    let ports: Vec<&str> = match &path {
        Some(p) => live
            .links
            .iter()
            .filter(|l| l.master.as_deref() == Some(p.dev))
            .map(|l| l.name.as_str())
            .collect(),
        None => Vec::new(),
    };
    let cuts = |op: &NetOp| -> Option<&'static str> {
        if let NetOp::DelAddr { net, .. } = op
            && net.addr() == session.server
        {
            return Some("the address it connects to");
        }
        let p = path.as_ref()?;
        if len.is_some_and(|len| diverts(op, session.client, len, p)) {
            return Some(DIVERTS);
        }
        let on_path = |link: &str| link == p.dev;
        let port = |link: &str| ports.contains(&link);
        match op {
            NetOp::DelLink { name, .. } if on_path(name) => Some("the link its replies leave by"),
            NetOp::SetUp { link, up: false } if on_path(link) => {
                Some("the link its replies leave by")
            }
            NetOp::SetMaster { link, .. } if on_path(link) => Some("the link its replies leave by"),
            NetOp::DelLink { name, .. } if port(name) => {
                Some("a port of the bridge its replies leave by")
            }
            NetOp::SetUp { link, up: false } if port(link) => {
                Some("a port of the bridge its replies leave by")
            }
            NetOp::SetMaster { link, master, .. }
                if port(link) && master.as_deref() != Some(p.dev) =>
            {
                Some("a port of the bridge its replies leave by")
            }
            NetOp::DelRoute {
                dev, dst, gateway, ..
            } => {
                let r = p.route?;
                (r.dev == *dev && r.dst == *dst && r.gateway == *gateway)
                    .then_some("the route its replies take")
            }
            NetOp::DelAddr { dev, net, .. } if p.route.is_none() && on_path(dev) => net
                .trunc()
                .contains(&session.client)
                .then_some("the connected subnet its replies use"),
            _ => None,
        }
    };
    ops.iter().find_map(|op| {
        cuts(op).map(|what| {
            let does = match what {
                DIVERTS => "sends another way",
                _ => "removes",
            };
            format!(
                "this SSH session ({} → {}) depends on {what}, which this change {does}: {op}",
                session.client, session.server
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::net::{LiveAddr, LiveKind, LiveLink, PROTO};

    fn live() -> LiveNet {
        let addr = |net: &str, secondary| LiveAddr {
            dev: "br5".into(),
            net: net.parse().unwrap(),
            proto: PROTO,
            secondary,
        };
        LiveNet {
            links: vec![
                LiveLink {
                    name: "br5".into(),
                    kind: LiveKind::Bridge,
                    ..LiveLink::default()
                },
                LiveLink {
                    name: "eno1.5".into(),
                    master: Some("br5".into()),
                    ..LiveLink::default()
                },
            ],
            addrs: vec![addr("10.0.5.2/24", false), addr("10.0.5.9/24", true)],
            routes: vec![
                LiveRoute {
                    dev: "br5".into(),
                    dst: None,
                    gateway: "10.0.5.1".parse().unwrap(),
                    proto: PROTO,
                },
                LiveRoute {
                    dev: "br5".into(),
                    dst: Some("10.77.0.0/16".parse().unwrap()),
                    gateway: "10.0.5.254".parse().unwrap(),
                    proto: 4,
                },
            ],
        }
    }

    fn session(s: &str) -> Session {
        Session::from_env(s).unwrap()
    }

    #[test]
    fn lockout_follows_the_session_address_and_path() {
        let live = live();
        let via_subnet = session("10.0.5.77 50000 10.0.5.2 22");
        let via_gateway = session("203.0.113.7 50000 10.0.5.2 22");
        let to_secondary = session("203.0.113.7 50000 10.0.5.9 22");
        let via_static = session("10.77.3.3 50000 10.0.5.2 22");
        let del = |net: &str| NetOp::DelAddr {
            dev: "br5".into(),
            net: net.parse().unwrap(),
            proto: PROTO,
        };
        let del_route = |dst: Option<&str>, gw: &str| NetOp::DelRoute {
            dev: "br5".into(),
            dst: dst.map(|d| d.parse().unwrap()),
            gateway: gw.parse().unwrap(),
            proto: PROTO,
        };
        let down = |link: &str| NetOp::SetUp {
            link: link.into(),
            up: false,
        };
        assert!(lockout(&live, &[del("10.0.5.2/24")], &via_subnet).is_some());
        assert!(lockout(&live, &[down("br5")], &via_subnet).is_some());
        assert!(lockout(&live, &[del_route(None, "10.0.5.1")], &via_subnet).is_none());
        assert!(lockout(&live, &[del_route(None, "10.0.5.1")], &via_gateway).is_some());
        assert!(lockout(&live, &[down("eno9")], &via_gateway).is_none());
        // A secondary address, taken out to be put back, is still taken out.
        assert!(lockout(&live, &[del("10.0.5.9/24")], &to_secondary).is_some());
        // Replies through a static route.
        let r = lockout(
            &live,
            &[del_route(Some("10.77.0.0/16"), "10.0.5.254")],
            &via_static,
        );
        assert!(r.unwrap().contains("the route its replies take"));
        assert!(lockout(&live, &[del_route(None, "10.0.5.1")], &via_static).is_none());
        // A port of the bridge on the way.
        let unport = NetOp::DelLink {
            name: "eno1.5".into(),
            kind: crate::live::net::LinkKind::Bridge,
        };
        let r = lockout(&live, &[unport], &via_gateway).unwrap();
        assert!(r.contains("a port of the bridge"), "{r}");
        // On the session's own link, a subnet or route that holds the client and leads
        // another way: on-link where the replies went through a gateway, or another gateway.
        let add = |net: &str| NetOp::AddAddr {
            dev: "br5".into(),
            net: net.parse().unwrap(),
            proto: PROTO,
        };
        let add_route = |dst: &str, gw: &str| NetOp::AddRoute {
            dev: "br5".into(),
            dst: Some(dst.parse().unwrap()),
            gateway: gw.parse().unwrap(),
            proto: PROTO,
        };
        let r = lockout(&live, &[add("203.0.113.1/24")], &via_gateway).unwrap();
        assert!(r.contains("sends another way"), "{r}");
        let r = lockout(
            &live,
            &[add_route("203.0.113.0/24", "10.0.5.254")],
            &via_gateway,
        );
        assert!(r.unwrap().contains("sends another way"));
        // The same way, or a subnet the session already uses, made narrower: in the way of
        // nothing.
        let same = add_route("203.0.113.0/24", "10.0.5.1");
        assert!(lockout(&live, &[same], &via_gateway).is_none());
        assert!(lockout(&live, &[add("10.0.5.3/25")], &via_subnet).is_none());
    }

    #[test]
    fn link_local_sessions_parse_and_garbage_is_an_error() {
        let s = session("fe80::77%br5 5 fe80::aaaa%br5 22");
        assert_eq!(s.scope.as_deref(), Some("br5"));
        let live = live();
        let down = NetOp::SetUp {
            link: "br5".into(),
            up: false,
        };
        assert!(lockout(&live, &[down], &s).is_some());
        assert!(
            Session::from_env("garbage")
                .unwrap_err()
                .contains("does not parse")
        );
        assert!(Session::from_env("fe80::1% 5 fe80::2 22").is_err());
    }

    /// A VLAN id change makes a new port and deletes the old one, netc's, under the bridge
    /// the session uses: refused.
    #[test]
    fn a_vlan_id_change_under_the_session_bridge_is_refused() {
        use crate::live::net::plan;
        use crate::live::net::tests::{applied, host};
        let mut host = host();
        host.bridges[0].vlan = Some(6);
        let live = applied();
        let p = plan(&host, &live);
        assert!(p.refusals.is_empty(), "{p:?}");
        let r = lockout(&live, &p.ops, &session("10.0.5.77 5 10.0.5.2 22")).unwrap();
        assert!(
            r.contains("a port of the bridge its replies leave by"),
            "{r}"
        );
        assert!(r.contains("eno1.5"), "{r}");
    }
}
