//! Undoing what an apply did, carefully: a rollback is an apply, not a replay.
//!
//! Before each undo step it reads the host again and compares it with what the step left:
//! still as netc left it → undo it; already as before (never done, or undone by hand) →
//! nothing to do; anything else → someone changed it since, so it is left as it is and
//! reported. Files changed since keep the hand edit; netc's previous version goes beside them
//! (`<name>.netc-rollback`). A link netc created that now carries a port or an address netc
//! did not add (a VM's `vnet5`, a hand-added address) is kept, with the ports netc put in it
//! and its addresses and routes. The rollback says "as it was" only when nothing was left.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::exec::System;
use super::install::{self, Backup, Perm};
use super::ipset;
use super::iptables;
use super::journal::Planned;
use super::net::{ALIAS, LinkKind, LiveKind, LiveNet, NetOp};
use super::nftnl;
use super::probe;
use super::step::{NFT_REPLACE, NftLoad, Step};

/// How a rollback went.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Undo steps carried out.
    pub undone: Vec<String>,
    /// What was left as it is, and why.
    pub skipped: Vec<String>,
    pub errors: Vec<io::Error>,
}

impl Outcome {
    /// Whether the host is as it was before the apply.
    pub fn as_before(&self) -> bool {
        self.skipped.is_empty() && self.errors.is_empty()
    }
}

/// What the host shows of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// As the step left it.
    Done,
    /// As it was before the step.
    Before,
    /// Neither: changed since.
    Changed(String),
}

/// Undoes `done` (index in the journal, step), given in the order they ran, in reverse;
/// `maybe`: those begun and not marked done; `mark` records each step as undone (or found
/// not done).
pub fn undo(
    done: &[(usize, &Planned)],
    maybe: &[usize],
    sys: &mut System,
    mark: &mut dyn FnMut(usize) -> io::Result<()>,
) -> Outcome {
    let mut out = Outcome::default();
    let backup = std::mem::replace(&mut sys.backup, Backup::Skip);
    let kept = match sys.kernel.read() {
        Ok(net) => kept_links(done, &net),
        Err(e) => {
            out.errors.push(e);
            BTreeMap::new()
        }
    };
    for (link, why) in &kept {
        out.skipped.push(format!("kept {link}: {why}"));
    }
    let created: Vec<String> = done
        .iter()
        .filter_map(|(_, p)| match &p.step {
            Step::Net(NetOp::AddLink { name, .. }) => Some(name.clone()),
            _ => None,
        })
        .collect();
    for (i, p) in done.iter().rev() {
        if let Step::Net(op) = &p.step
            && touches(op, &kept)
        {
            continue;
        }
        match seen(p, &created, maybe.contains(i), sys) {
            Ok(Seen::Done) if let Some(why) = would_drop(&p.undo, sys) => {
                out.skipped.push(why);
                continue;
            }
            Ok(Seen::Done) => match p.undo.run(sys) {
                Ok(()) => out.undone.push(p.undo.to_string()),
                Err(e) => {
                    out.errors.push(e);
                    continue;
                }
            },
            Ok(Seen::Before) => {}
            Ok(Seen::Changed(why)) => {
                out.skipped.push(left_as_is(p, &why, &sys.root));
                continue;
            }
            Err(e) => {
                out.errors.push(e);
                continue;
            }
        }
        if let Err(e) = mark(*i) {
            out.errors.push(e);
        }
    }
    sys.backup = backup;
    out
}

/// Removing an IPv4 primary address makes the kernel drop the secondaries of its subnet:
/// the undo would take addresses someone added since. Why not, if so.
fn would_drop(undo: &Step, sys: &mut System) -> Option<String> {
    let Step::Net(NetOp::DelAddr { dev, net, .. }) = undo else {
        return None;
    };
    let live = sys.kernel.read().ok()?;
    let dropped: Vec<String> = live
        .dropped_with(dev, net)
        .iter()
        .map(|a| a.net.to_string())
        .collect();
    (!dropped.is_empty()).then(|| {
        format!(
            "kept {net} on {dev}: removing it would make the kernel drop {}, added since",
            dropped.join(", ")
        )
    })
}

/// Links netc created that carry something netc did not put there, with what; and the ports
/// netc put into them.
fn kept_links(done: &[(usize, &Planned)], net: &LiveNet) -> BTreeMap<String, String> {
    let ops: Vec<&NetOp> = done
        .iter()
        .filter_map(|(_, p)| match &p.step {
            Step::Net(op) => Some(op),
            _ => None,
        })
        .collect();
    let mut kept = BTreeMap::new();
    for op in &ops {
        let NetOp::AddLink { name, .. } = op else {
            continue;
        };
        let ours_in = |port: &str| {
            ops.iter().any(|o| matches!(o, NetOp::SetMaster { link, master: Some(m), .. } if link == port && m == name))
        };
        let ours_on = |net: &ipnet::IpNet| {
            ops.iter()
                .any(|o| matches!(o, NetOp::AddAddr { dev, net: n, .. } if dev == name && n == net))
        };
        let mut foreign: Vec<String> = net
            .links
            .iter()
            .filter(|l| l.master.as_deref() == Some(name) && !ours_in(&l.name))
            .map(|l| format!("port {}", l.name))
            .collect();
        foreign.extend(
            net.addrs
                .iter()
                .filter(|a| a.dev == *name && !a.kernel_made() && !ours_on(&a.net))
                .map(|a| format!("address {}", a.net)),
        );
        if !foreign.is_empty() {
            kept.insert(
                name.clone(),
                format!(
                    "it carries {} that netc did not add, so it stays (with what netc put in it)",
                    foreign.join(", ")
                ),
            );
        }
    }
    let ports: Vec<(String, String)> = ops
        .iter()
        .filter_map(|o| match o {
            NetOp::SetMaster {
                link,
                master: Some(m),
                ..
            } if kept.contains_key(m) => {
                Some((link.clone(), format!("netc's port of {m}, which stays")))
            }
            _ => None,
        })
        .collect();
    kept.extend(ports);
    kept
}

/// Whether a kernel step is about a kept link.
fn touches(op: &NetOp, kept: &BTreeMap<String, String>) -> bool {
    op.links().into_iter().any(|l| kept.contains_key(l))
}

/// What the host shows of a step. `created`: the links the steps being undone created;
/// `maybe`: the step was begun and not marked done.
fn seen(p: &Planned, created: &[String], maybe: bool, sys: &mut System) -> io::Result<Seen> {
    let (did, undid) = match (&p.step, &p.undo) {
        (Step::Net(op), Step::Net(undo)) => {
            let net = sys.kernel.read()?;
            if let Some(link) = gone(op, &net) {
                // A link netc made goes with its own undo; any other was removed by someone.
                return Ok(match created.iter().any(|c| c == link) {
                    true => Seen::Before,
                    false => Seen::Changed(format!("`{op}`: {link} is gone")),
                });
            }
            // A link a step marked done created carries netc's mark (only a crash between
            // creating and marking leaves it without): otherwise it is not netc's to delete.
            if let NetOp::AddLink { name, .. } = op
                && !maybe
                && holds(op, &net)
                && !net.link(name).is_some_and(|l| l.owned())
            {
                return Ok(Seen::Changed(format!(
                    "{name} does not carry netc's mark (alias {ALIAS})"
                )));
            }
            (holds(op, &net), holds(undo, &net))
        }
        (
            Step::File { path, content, .. },
            Step::File {
                content: before, ..
            },
        ) => {
            let now = install::read_opt(&install::resolve_in(&sys.root, path)?)?;
            let is = |c: &Option<String>| now.as_deref() == c.as_deref().map(str::as_bytes);
            (is(content), is(before))
        }
        (
            Step::Iptables {
                family, restore, ..
            },
            Step::Iptables { restore: undo, .. },
        ) => {
            let live = probe::iptables_save(*family)?;
            (
                iptables::left_by(restore, &live),
                iptables::left_by(undo, &live),
            )
        }
        (Step::Nft(load), Step::Nft(undo)) => (nft_holds(load)?, nft_holds(undo)?),
        (Step::Ipset { restore }, Step::Ipset { restore: undo }) => {
            let live = probe::ipset_save()?;
            (ipset::left_by(restore, &live), ipset::left_by(undo, &live))
        }
        _ => return Err(io::Error::other("a step and an undo of different kinds")),
    };
    Ok(match (did, undid) {
        (true, _) => Seen::Done,
        (false, true) => Seen::Before,
        (false, false) => Seen::Changed(changed(&p.step)),
    })
}

/// Whether the `inet netc` table is as loading `load` leaves it.
fn nft_holds(load: &NftLoad) -> io::Result<bool> {
    Ok(match load {
        NftLoad::Batch(table) => nftnl::read()? == Some(nftnl::Snapshot::of(&nftnl::batch(table))),
        NftLoad::Delete => nftnl::read()?.is_none(),
        NftLoad::Script(script) => {
            let listing = probe::nft_list()?;
            let old = script.strip_prefix(NFT_REPLACE);
            old.is_some_and(|o| listing.as_deref().unwrap_or("") == o)
        }
    })
}

/// The link a step sets the master or state of, when it no longer exists.
fn gone<'a>(op: &'a NetOp, net: &LiveNet) -> Option<&'a str> {
    match op {
        NetOp::SetMaster { link, .. }
        | NetOp::SetUp { link, .. }
        | NetOp::SetMtu { link, .. }
        | NetOp::SetRa { link, .. }
            if net.link(link).is_none() =>
        {
            Some(link)
        }
        _ => None,
    }
}

/// Whether the host shows what a kernel step leaves.
fn holds(op: &NetOp, net: &LiveNet) -> bool {
    match op {
        NetOp::AddLink { name, kind } => net.link(name).is_some_and(|l| match (kind, &l.kind) {
            (LinkKind::Bridge, LiveKind::Bridge) => true,
            (LinkKind::Vlan { parent, id }, LiveKind::Vlan { parent: p, id: i }) => {
                (parent, id) == (p, i)
            }
            (LinkKind::Bond(spec), LiveKind::Bond(s)) => spec.mode == s.mode,
            _ => false,
        }),
        NetOp::DelLink { name, .. } => net.link(name).is_none(),
        NetOp::SetMaster { link, master, .. } => {
            net.link(link).is_some_and(|l| l.master == *master)
        }
        NetOp::SetUp { link, up } => net.link(link).is_some_and(|l| l.up == *up),
        NetOp::SetMtu { link, mtu, .. } => net.link(link).is_some_and(|l| l.mtu == *mtu),
        NetOp::SetRa { link, ra, .. } => net.link(link).is_some_and(|l| l.ra == Some(*ra)),
        // Added with its protocol: the same address put back by someone else (ifup, by hand)
        // is theirs, not what netc left.
        NetOp::AddAddr { dev, net: n, proto } => net
            .addrs
            .iter()
            .any(|a| a.dev == *dev && a.net == *n && a.proto == *proto),
        NetOp::DelAddr { dev, net: n, .. } => {
            !net.addrs.iter().any(|a| a.dev == *dev && a.net == *n)
        }
        NetOp::AddRoute {
            dev,
            dst,
            gateway,
            proto,
        } => net
            .routes
            .iter()
            .any(|r| r.dev == *dev && r.dst == *dst && r.gateway == *gateway && r.proto == *proto),
        NetOp::DelRoute {
            dev, dst, gateway, ..
        } => !net
            .routes
            .iter()
            .any(|r| r.dev == *dev && r.dst == *dst && r.gateway == *gateway),
    }
}

fn changed(step: &Step) -> String {
    match step {
        Step::Net(op) => format!("`{op}`: changed since netc made it"),
        Step::File { path, .. } => format!("{}: edited since netc wrote it", path.display()),
        Step::Iptables { family, .. } => {
            format!(
                "netc's {} chains: changed since netc loaded them",
                family.name()
            )
        }
        Step::Nft(_) => "table inet netc: changed since netc loaded it".into(),
        Step::Ipset { .. } => "netc's ipsets: changed since netc loaded them".into(),
    }
}

/// Says what is left, and for a file keeps netc's previous version beside the hand edit.
fn left_as_is(p: &Planned, why: &str, root: &Path) -> String {
    let Step::File {
        path,
        content: Some(before),
        ..
    } = &p.undo
    else {
        return format!("left {why}");
    };
    match keep_beside(root, path, before) {
        Ok(beside) => format!(
            "left {why}; the hand edit stays, and netc's previous version is at {}",
            beside.display()
        ),
        Err(e) => format!("left {why}; could not keep netc's previous version beside it: {e}"),
    }
}

fn keep_beside(root: &Path, path: &Path, before: &str) -> io::Result<std::path::PathBuf> {
    let real = install::resolve_in(root, path)?;
    let mut name = real.file_name().unwrap_or_default().to_os_string();
    name.push(".netc-rollback");
    let beside = real.with_file_name(name);
    let perm = std::fs::metadata(&real).map_or(Perm::mode(0o600), |m| {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        Perm {
            mode: m.permissions().mode() & 0o7777,
            owner: Some((m.uid(), m.gid())),
        }
    });
    install::write_atomic(&beside, before.as_bytes(), perm)?;
    Ok(beside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::net::{LiveAddr, LiveLink, PROTO};

    fn planned(op: NetOp) -> Planned {
        Planned {
            undo: Step::Net(op.inverse()),
            step: Step::Net(op),
        }
    }

    #[test]
    fn a_bridge_carrying_a_vm_port_or_a_hand_address_is_kept_with_its_port() {
        let steps = [
            planned(NetOp::AddLink {
                name: "br6".into(),
                kind: LinkKind::Bridge,
            }),
            planned(NetOp::SetMaster {
                link: "eno1.6".into(),
                master: Some("br6".into()),
                was: None,
            }),
            planned(NetOp::AddAddr {
                dev: "br6".into(),
                net: "10.6.0.2/24".parse().unwrap(),
                proto: PROTO,
            }),
        ];
        let done: Vec<(usize, &Planned)> = steps.iter().enumerate().collect();
        let link = |name: &str, master: Option<&str>| LiveLink {
            name: name.into(),
            master: master.map(Into::into),
            ..LiveLink::default()
        };
        let mut net = LiveNet {
            links: vec![link("br6", None), link("eno1.6", Some("br6"))],
            addrs: vec![LiveAddr {
                dev: "br6".into(),
                net: "10.6.0.2/24".parse().unwrap(),
                proto: PROTO,
                secondary: false,
            }],
            routes: Vec::new(),
        };
        assert!(kept_links(&done, &net).is_empty());
        net.links.push(link("vnet5", Some("br6")));
        let kept = kept_links(&done, &net);
        assert!(kept["br6"].contains("port vnet5"), "{kept:?}");
        assert!(kept.contains_key("eno1.6"));
        assert!(steps.iter().all(|p| match &p.step {
            Step::Net(op) => touches(op, &kept),
            _ => false,
        }));
        net.links.pop();
        net.addrs.push(LiveAddr {
            dev: "br6".into(),
            net: "10.6.0.9/24".parse().unwrap(),
            proto: 0,
            secondary: true,
        });
        assert!(kept_links(&done, &net)["br6"].contains("address 10.6.0.9/24"));
    }
}
