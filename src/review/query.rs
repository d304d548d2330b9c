//! What happens to one packet on one host, and which line of the topology decided it.
//!
//! Mirrors the rendered rules: INPUT jumps to each chain in topology order; in a chain, an
//! allowed source RETURNs first (whatever the port), then each `ports` statement REJECTs its
//! ports; a packet that passes every chain goes back to INPUT untouched. The packet is the
//! first of a new connection: the REJECTs match only those (replies to the host's own
//! connections pass whatever their port).

use std::net::IpAddr;

use crate::model::{Protocol, Topology};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Returned to INPUT untouched (netc does not block it).
    Accept,
    /// REJECTed by a netc chain.
    Reject,
}

/// One step of the evaluation: a chain and what it did, with the deciding line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub chain: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An allowed source matched: RETURN (line of the `allow`).
    Allowed { source: ipnet::IpNet, line: usize },
    /// The port is listed: REJECT (line of the `ports` statement).
    Rejected { line: usize },
    /// Nothing in the chain matched: back to INPUT.
    NotProtected,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub verdict: Verdict,
    pub steps: Vec<Step>,
}

/// Evaluates a packet from `from` to `protocol`/`port` on `host` (which must exist).
pub fn query(topo: &Topology, host: &str, from: IpAddr, protocol: Protocol, port: u16) -> Trace {
    let mut steps = Vec::new();
    for p in topo.policies_on(host) {
        let allowed = p.sources.iter().find(|s| s.net.contains(&from));
        let listed = p
            .ports
            .iter()
            .find(|set| set.protocol == protocol && set.contains(port));
        let outcome = match (allowed, listed) {
            (Some(s), _) => Outcome::Allowed {
                source: s.net,
                line: s.line,
            },
            (None, Some(set)) => Outcome::Rejected { line: set.line },
            (None, None) => Outcome::NotProtected,
        };
        let rejected = matches!(outcome, Outcome::Rejected { .. });
        steps.push(Step {
            chain: p.chain.clone(),
            outcome,
        });
        if rejected {
            return Trace {
                verdict: Verdict::Reject,
                steps,
            };
        }
    }
    Trace {
        verdict: Verdict::Accept,
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        let text = r#"
vlan 1 "m" {
    role management
    prefix 192.0.2.0/24
}
host h {
    management-server
    agent
    nic eth0
    bridge br1 vlan 1 on eth0 {
        address 192.0.2.1
    }
}
firewall A {
    ports tcp 22, 80
    allow 198.51.100.0/24
}
firewall B {
    ports tcp 80
    allow 203.0.113.0/24
}
"#;
        crate::compile("t.csn", text.as_bytes()).topology.unwrap()
    }

    #[test]
    fn the_first_rejecting_chain_decides() {
        let t = topo();
        let q = |from: &str, port| query(&t, "h", from.parse().unwrap(), Protocol::Tcp, port);
        // Allowed by A, but B protects 80 too and does not allow it.
        let r = q("198.51.100.7", 80);
        assert_eq!(r.verdict, Verdict::Reject);
        assert_eq!(
            r.steps[1],
            Step {
                chain: "B".into(),
                outcome: Outcome::Rejected { line: 19 }
            }
        );
        assert_eq!(q("198.51.100.7", 22).verdict, Verdict::Accept);
        assert_eq!(
            q("203.0.113.7", 22).steps[0].outcome,
            Outcome::Rejected { line: 15 }
        );
        assert_eq!(q("203.0.113.7", 443).verdict, Verdict::Accept);
    }
}
