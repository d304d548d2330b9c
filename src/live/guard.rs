//! The lockout guard: would a change cut off the SSH session that runs it?

use std::net::IpAddr;

use super::net::{LiveNet, NetOp};
use crate::model::Family;

/// The local end of an SSH session (`$SSH_CONNECTION` = client port server port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub client: IpAddr,
    pub server: IpAddr,
}

impl Session {
    pub fn from_env(value: &str) -> Option<Session> {
        let mut words = value.split_whitespace();
        let client = words.next()?.parse().ok()?;
        let server = words.nth(1)?.parse().ok()?;
        Some(Session { client, server })
    }
}

/// Why `ops` would cut `session` off, if they would: they remove the address it connects
/// to, or the link or default route its replies leave by.
pub fn lockout(live: &LiveNet, ops: &[NetOp], session: Session) -> Option<String> {
    let family = Family::of(&session.client);
    // The way out: the most specific connected subnet, else the default route.
    let connected = live
        .addrs
        .iter()
        .filter(|a| a.net.trunc().contains(&session.client))
        .max_by_key(|a| a.net.prefix_len())
        .map(|a| (a.dev.as_str(), None));
    let default = || {
        live.routes
            .iter()
            .find(|r| Family::of(&r.gateway) == family)
            .map(|r| (r.dev.as_str(), Some(r.gateway)))
    };
    let path = connected.or_else(default);
    for op in ops {
        let cut = match (op, path) {
            (NetOp::DelAddr { net, .. }, _) if net.addr() == session.server => true,
            (NetOp::DelLink { name, .. }, Some((dev, _))) => name == dev,
            (NetOp::SetUp { link, up: false }, Some((dev, _))) => link == dev,
            (NetOp::SetMaster { link, .. }, Some((dev, _))) => link == dev,
            (NetOp::DelRoute { dev, gateway, .. }, Some((d, Some(g)))) => dev == d && *gateway == g,
            _ => false,
        };
        if cut {
            return Some(format!(
                "this SSH session ({} → {}) depends on what this change removes: {op}",
                session.client, session.server
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::net::{LiveAddr, LiveRoute, PROTO};

    fn live() -> LiveNet {
        LiveNet {
            links: Vec::new(),
            addrs: vec![LiveAddr {
                dev: "br5".into(),
                net: "10.0.5.2/24".parse().unwrap(),
                proto: PROTO,
            }],
            routes: vec![LiveRoute {
                dev: "br5".into(),
                gateway: "10.0.5.1".parse().unwrap(),
                proto: PROTO,
            }],
        }
    }

    #[test]
    fn lockout_follows_the_session_address_and_path() {
        let live = live();
        let via_subnet = Session::from_env("10.0.5.77 50000 10.0.5.2 22").unwrap();
        let via_gateway = Session::from_env("203.0.113.7 50000 10.0.5.2 22").unwrap();
        let del_addr = NetOp::DelAddr {
            dev: "br5".into(),
            net: "10.0.5.2/24".parse().unwrap(),
            proto: PROTO,
        };
        let del_route = NetOp::DelRoute {
            dev: "br5".into(),
            gateway: "10.0.5.1".parse().unwrap(),
            proto: PROTO,
        };
        let down = NetOp::SetUp {
            link: "br5".into(),
            up: false,
        };
        assert!(lockout(&live, &[del_addr], via_subnet).is_some());
        assert!(lockout(&live, std::slice::from_ref(&down), via_subnet).is_some());
        assert!(lockout(&live, std::slice::from_ref(&del_route), via_subnet).is_none());
        assert!(lockout(&live, &[del_route], via_gateway).is_some());
        let other = NetOp::SetUp {
            link: "eno9".into(),
            up: false,
        };
        assert!(lockout(&live, &[other], via_gateway).is_none());
        assert_eq!(Session::from_env("garbage"), None);
    }
}
