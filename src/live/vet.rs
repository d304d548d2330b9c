//! A journal is data, not commands: before netc runs anything from one, every step must
//! touch only what netc manages — links not named like libvirt's or CloudStack's, each
//! kernel step paired with its exact inverse, addresses and routes netc did not add only
//! taken out to be put back (as the kernel's side effects are planned), files only at
//! netc's paths under the root, firewall payloads only about netc's own chains or its
//! `inet netc` table, records only in the state directory.

use std::path::Path;

use super::journal::{Header, Planned};
use super::net::{NetOp, PROTO, foreign_name};
use super::state::State;
use super::step::{NftLoad, Step};
use crate::model::BUILTIN_CHAINS;

/// Why the journal may not be run, if it may not.
pub fn vet(header: &Header, root: &Path) -> Result<(), String> {
    let state = State::of_root(root);
    for (i, p) in header.steps.iter().enumerate() {
        planned(p, root, &state).map_err(|why| format!("step {} ({}): {why}", i + 1, p.step))?;
        put_back(&header.steps, i).map_err(|why| format!("step {} ({}): {why}", i + 1, p.step))?;
    }
    Ok(())
}

/// An address or route that is not netc's (another protocol) is only ever taken out to be put
/// back: a removal is followed by the same addition, an addition preceded by the removal.
fn put_back(steps: &[Planned], i: usize) -> Result<(), String> {
    let Step::Net(op) = &steps[i].step else {
        return Ok(());
    };
    let position = |o: &NetOp| steps.iter().position(|p| p.step == Step::Net(o.clone()));
    let paired = match op {
        NetOp::DelAddr { proto, .. } | NetOp::DelRoute { proto, .. } if *proto != PROTO => {
            position(&op.inverse()) > Some(i)
        }
        NetOp::AddAddr { proto, .. } | NetOp::AddRoute { proto, .. } if *proto != PROTO => {
            let out = op.inverse();
            position(&out).is_some_and(|p| p < i)
        }
        _ => true,
    };
    if paired {
        Ok(())
    } else {
        Err("it touches an address or route that is not netc's without putting it back".into())
    }
}

fn planned(p: &Planned, root: &Path, state: &State) -> Result<(), String> {
    match (&p.step, &p.undo) {
        (Step::Net(op), Step::Net(undo)) => {
            if *undo != op.inverse() {
                return Err(format!("its undo ({undo}) is not its inverse"));
            }
            for name in links(op) {
                if foreign_name(name) {
                    return Err(format!("{name} is libvirt's or CloudStack's, not netc's"));
                }
            }
            Ok(())
        }
        (
            Step::File { kind, path, .. },
            Step::File {
                kind: k2, path: p2, ..
            },
        ) => {
            let managed = root.join(kind.path());
            let retired = kind.retired().map(|r| root.join(r));
            let known = *path == managed || retired.as_ref() == Some(path);
            if !known || p2 != path || k2 != kind {
                return Err(format!(
                    "{} is not where netc keeps its {kind:?} file ({})",
                    path.display(),
                    managed.display()
                ));
            }
            Ok(())
        }
        (
            Step::Iptables {
                family,
                restore,
                chains,
                record,
            },
            Step::Iptables {
                family: f2,
                restore: undo,
                chains: c2,
                record: r2,
            },
        ) => {
            if family != f2 || *record != state.iptables_record(*family) || r2 != record {
                return Err("its record is not netc's".into());
            }
            let owned: Vec<&String> = chains.iter().chain(c2).collect();
            iptables_payload(restore, &owned)?;
            iptables_payload(undo, &owned)
        }
        (Step::Nft(load), Step::Nft(undo)) => {
            // A batch is built from netc's own table; a script must be about it alone.
            for l in [load, undo] {
                if let NftLoad::Script(script) = l {
                    nft_script(script)?;
                }
            }
            Ok(())
        }
        (Step::Ipset { restore }, Step::Ipset { restore: undo }) => {
            ipset_payload(restore)?;
            ipset_payload(undo)
        }
        _ => Err("its undo is of another kind".into()),
    }
}

/// The links a kernel step names: those it changes, and a VLAN's parent.
fn links(op: &NetOp) -> Vec<&str> {
    let mut v = op.links();
    if let NetOp::AddLink { kind, .. } | NetOp::DelLink { kind, .. } = op
        && let super::net::LinkKind::Vlan { parent, .. } = kind
    {
        v.push(parent);
    }
    v
}

/// An iptables-restore payload that declares, fills, jumps to and deletes only `owned`
/// chains.
fn iptables_payload(payload: &str, owned: &[&String]) -> Result<(), String> {
    let ours = |c: &str| owned.iter().any(|o| *o == c) && !BUILTIN_CHAINS.contains(&c);
    for line in payload.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ok = match words[..] {
            ["*filter"] | ["COMMIT"] => true,
            [decl, "-", "[0:0]"] => decl.strip_prefix(':').is_some_and(ours),
            ["-X", c] => ours(c),
            ["-A" | "-D", "INPUT", "-j", c] | ["-I", "INPUT", _, "-j", c] => ours(c),
            ["-A", c, ..] => ours(c),
            _ => false,
        };
        if !ok {
            return Err(format!("`{line}` touches what is not netc's"));
        }
    }
    Ok(())
}

/// An `ipset restore` payload that creates, fills, swaps and destroys only netc's sets: a
/// chain's `<CHAIN>_v4`/`_v6`, or the temporary `netc-swap-inet`/`inet6`.
fn ipset_payload(payload: &str) -> Result<(), String> {
    let ours = super::ipset::netc_set;
    for line in payload.lines().filter(|l| !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ok = match words[..] {
            ["create" | "add" | "del" | "flush" | "destroy", name, ..] => ours(name),
            ["swap", a, b] => ours(a) && ours(b),
            _ => false,
        };
        if !ok {
            return Err(format!("`{line}` is not about netc's ipsets"));
        }
    }
    Ok(())
}

/// An nft script about the `inet netc` table only.
fn nft_script(script: &str) -> Result<(), String> {
    for line in script.lines() {
        let top = !line.starts_with([' ', '\t']) && !line.trim().is_empty() && line.trim() != "}";
        let ok = matches!(
            line.trim_end(),
            "table inet netc" | "table inet netc {" | "delete table inet netc"
        );
        if top && !ok {
            return Err(format!("`{line}` is not about table inet netc"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::journal::VERSION;
    use crate::render::ArtefactKind;

    fn header(steps: Vec<Planned>) -> Header {
        Header {
            version: VERSION,
            id: "x".into(),
            host: "h".into(),
            started: 0,
            deadline: None,
            steps,
        }
    }

    fn net(op: NetOp) -> Planned {
        Planned {
            undo: Step::Net(op.inverse()),
            step: Step::Net(op),
        }
    }

    #[test]
    fn only_netc_objects_pass() {
        let root = Path::new("/r");
        let add = NetOp::AddLink {
            name: "br5".into(),
            kind: crate::live::net::LinkKind::Bridge,
        };
        assert_eq!(vet(&header(vec![net(add.clone())]), root), Ok(()));
        let foreign = NetOp::AddLink {
            name: "cloudVirBr529".into(),
            kind: crate::live::net::LinkKind::Bridge,
        };
        let e = vet(&header(vec![net(foreign)]), root).unwrap_err();
        assert!(
            e.contains("cloudVirBr529 is libvirt's or CloudStack's"),
            "{e}"
        );
        let mut mismatched = net(add);
        mismatched.undo = Step::Net(NetOp::SetUp {
            link: "eno1".into(),
            up: false,
        });
        assert!(
            vet(&header(vec![mismatched]), root)
                .unwrap_err()
                .contains("not its inverse")
        );
        let file = |path: &str| Step::File {
            kind: ArtefactKind::Interfaces,
            path: path.into(),
            content: None,
        };
        let ok = Planned {
            step: file("/r/etc/network/interfaces"),
            undo: file("/r/etc/network/interfaces"),
        };
        assert_eq!(vet(&header(vec![ok]), root), Ok(()));
        let outside = Planned {
            step: file("/etc/shadow"),
            undo: file("/etc/shadow"),
        };
        assert!(
            vet(&header(vec![outside]), root)
                .unwrap_err()
                .contains("/etc/shadow")
        );
    }

    #[test]
    fn firewall_payloads_stay_with_netc_objects() {
        let cs = "CS".to_string();
        let owned = [&cs];
        assert!(
            iptables_payload(
                "*filter\n:CS - [0:0]\n-A CS -j RETURN\n-I INPUT 1 -j CS\nCOMMIT\n",
                &owned
            )
            .is_ok()
        );
        assert!(iptables_payload("*filter\n:LIBVIRT_INP - [0:0]\nCOMMIT\n", &owned).is_err());
        assert!(iptables_payload("*filter\n-F INPUT\nCOMMIT\n", &owned).is_err());
        assert!(iptables_payload("*filter\n-A INPUT -j ACCEPT\nCOMMIT\n", &owned).is_err());
        assert!(
            nft_script(
                "table inet netc\ndelete table inet netc\ntable inet netc {\n\tchain x {\n\t}\n}\n"
            )
            .is_ok()
        );
        assert!(nft_script("flush ruleset\n").is_err());
        assert!(nft_script("delete table inet other\n").is_err());
    }

    #[test]
    fn what_is_not_netcs_is_only_taken_out_to_be_put_back() {
        let root = Path::new("/r");
        let del = NetOp::DelAddr {
            dev: "br5".into(),
            net: "10.0.5.9/24".parse().unwrap(),
            proto: 0,
        };
        let e = vet(&header(vec![net(del.clone())]), root).unwrap_err();
        assert!(e.contains("without putting it back"), "{e}");
        assert_eq!(
            vet(&header(vec![net(del.clone()), net(del.inverse())]), root),
            Ok(())
        );
        let e = vet(&header(vec![net(del.inverse())]), root).unwrap_err();
        assert!(e.contains("without putting it back"), "{e}");
        let ours = NetOp::DelAddr {
            dev: "br5".into(),
            net: "10.0.5.2/24".parse().unwrap(),
            proto: PROTO,
        };
        assert_eq!(vet(&header(vec![net(ours)]), root), Ok(()));
    }
}
