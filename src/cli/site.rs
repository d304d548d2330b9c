//! The whole site: `netc plan --all` (one table of every host's pending changes and drift)
//! and `netc apply --all` (a rollout, one host at a time or `--parallel N`, in a safe
//! [`order`]). Every host is reached over ssh ([`super::remote`]), the admin's own machine
//! too, so that every confirmation proves a new connection gets in.
//!
//! A rollout first plans every host: one that cannot be reached, runs another netc version,
//! or has a conflict refuses the whole rollout before anything changes. Then hosts with
//! changes are applied and confirmed in order; the first failure stops it (hosts under way
//! finish; none is started), and a summary table ends it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use netc::model::Topology;

use super::PlanFormat;
use super::exit::{CliError, CliResult, Outcome};
use super::remote::{HostPlan, Remote, Sending};

/// The order of a rollout: hosts in topology order, except that each VIP's backups come
/// before its master (the MASTER keeps the address while its backups change, and a broken
/// backup never takes over from a changed master). `after[h]` lists the hosts that must be
/// done before `h` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub hosts: Vec<String>,
    pub after: BTreeMap<String, Vec<String>>,
    /// Set when VIPs ask for a cycle (two hosts each the other's backup): said, then
    /// broken in topology order.
    pub note: Option<String>,
}

pub fn order(topo: &Topology) -> Order {
    let mut after: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for vip in &topo.vips {
        let Some((master, backups)) = vip.members.split_first() else {
            continue;
        };
        let before = after.entry(master.host.clone()).or_default();
        for b in backups {
            if !before.contains(&b.host) {
                before.push(b.host.clone());
            }
        }
    }
    let mut left: Vec<&str> = topo.hosts.iter().map(|h| h.name.as_str()).collect();
    let mut hosts: Vec<String> = Vec::new();
    let mut note = None;
    while !left.is_empty() {
        let ready = |h: &&str| {
            after.get(*h).is_none_or(|b| {
                b.iter()
                    .all(|b| hosts.contains(b) || !left.contains(&b.as_str()))
            })
        };
        let i = match left.iter().position(ready) {
            Some(i) => i,
            None => {
                note.get_or_insert_with(|| {
                    format!(
                        "the VIPs of {} ask for each other's backups first; those hosts go in \
                         topology order",
                        left.join(", ")
                    )
                });
                0
            }
        };
        hosts.push(left.remove(i).to_string());
    }
    // A host taken to break a cycle must not wait for the others.
    if note.is_some() {
        for (i, h) in hosts.iter().enumerate() {
            if let Some(b) = after.get_mut(h) {
                b.retain(|b| hosts[..i].contains(b));
            }
        }
    }
    Order { hosts, after, note }
}

/// The wave of each host: 1 for hosts that wait for none, else one more than the latest
/// host it waits for. Hosts of one wave can change at the same time.
pub fn waves(order: &Order) -> Vec<(String, usize)> {
    let mut wave: BTreeMap<&str, usize> = BTreeMap::new();
    for h in &order.hosts {
        let w = order
            .after
            .get(h)
            .into_iter()
            .flatten()
            .filter_map(|b| wave.get(b.as_str()))
            .max()
            .map_or(1, |w| w + 1);
        wave.insert(h, w);
    }
    order
        .hosts
        .iter()
        .map(|h| (h.clone(), wave[h.as_str()]))
        .collect()
}

/// Runs `f` on every item, `n` at a time; results in the items' order.
fn each<T: Sync, R: Send>(items: &[T], n: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..n.clamp(1, items.len().max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return done;
                        };
                        done.push((i, f(item)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a worker does not panic"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// One host's plan, or why there is none.
type Planned = Result<HostPlan, String>;

/// Plans every host, `parallel` at a time, in rollout order.
fn plan_all(sending: &Sending, order: &Order, parallel: usize) -> Vec<(String, Planned)> {
    let results = each(&order.hosts, parallel, |host| {
        let remote = Remote::new(sending, host);
        eprintln!("{host}: planning over ssh to {}", remote.reach.dest);
        let prefix = format!("[{host}] ");
        let planned = remote
            .reach
            .check_version()
            .and_then(|()| remote.plan(&prefix));
        planned.map(|mut p| {
            p.host = host.clone();
            p
        })
    });
    order.hosts.iter().cloned().zip(results).collect()
}

/// The table of `plan --all`: a row per host, then each error and refusal in full.
/// `force`: the lockout guard is overridden (apply --all --force).
pub fn table(plans: &[(String, Planned)], force: bool) -> String {
    let mut rows = vec![
        [
            "HOST", "STATUS", "NETWORK", "FILES", "FIREWALL", "AGENT", "DRIFT",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let mut said = String::new();
    for (host, planned) in plans {
        let row = match planned {
            Err(e) => {
                said += &format!("{host}: {e}\n");
                vec![host.clone(), "error".into()]
            }
            Ok(p) => {
                for r in p.refusal_lines() {
                    said += &format!("{host}: refused: {r}\n");
                }
                let status = if p.refused(force) {
                    "refused"
                } else if p.changes {
                    "changes"
                } else {
                    "no changes"
                };
                let counts = [
                    p.network.len(),
                    p.files.len(),
                    p.firewall.len(),
                    p.agent.len(),
                    p.drift(),
                ];
                let mut row = vec![host.clone(), status.to_string()];
                row.extend(counts.map(|n| n.to_string()));
                row
            }
        };
        rows.push(row);
    }
    columns(&rows) + &said
}

/// Rows as aligned columns.
fn columns(rows: &[Vec<String>]) -> String {
    let width = |c: usize| {
        rows.iter()
            .filter_map(|r| r.get(c))
            .map(|s| s.chars().count())
            .max()
    };
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = width(c).unwrap_or(0)))
            .collect();
        out += cells.join("  ").trim_end();
        out.push('\n');
    }
    out
}

/// What the plans say together; `force`: the lockout guard is overridden.
fn status(plans: &[(String, Planned)], force: bool) -> CliResult {
    let failed = |p: &Planned| p.as_ref().map_or(true, |p| p.refused(force));
    if plans.iter().any(|(_, p)| failed(p)) {
        Err(CliError::Reported)
    } else if plans
        .iter()
        .any(|(_, p)| p.as_ref().is_ok_and(|p| p.changes))
    {
        Ok(Outcome::Changes)
    } else {
        Ok(Outcome::Done)
    }
}

fn start(file: &Path) -> Result<(Sending, Order), CliError> {
    let sending = Sending::of(file)?;
    let order = order(sending.compiled.topology.as_ref().expect("model() checked"));
    if let Some(n) = &order.note {
        eprintln!("netc: note: {n}");
    }
    Ok((sending, order))
}

/// `netc plan --all`: exit 0 no host has changes, 2 some have, 1 any error or refusal.
pub fn plan(file: &Path, format: PlanFormat, parallel: usize) -> CliResult {
    let (sending, order) = start(file)?;
    let plans = plan_all(&sending, &order, parallel);
    match format {
        PlanFormat::Text => print!("{}", table(&plans, false)),
        PlanFormat::Json => {
            let json: Vec<serde_json::Value> = plans
                .iter()
                .map(|(host, p)| match p {
                    Ok(p) => serde_json::json!({"host": host, "changes": p.changes, "drift": p.drift(), "plan": p}),
                    Err(e) => serde_json::json!({"host": host, "error": e}),
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&json).expect("plain data")
            );
        }
    }
    status(&plans, false)
}

/// What `apply --all` needs beyond the topology.
pub struct Rollout {
    pub confirm: u64,
    pub force: bool,
    pub parallel: usize,
}

/// Where one host is in a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rolled {
    NoChanges,
    NotStarted,
    Running,
    Confirmed,
    Failed(String),
}

/// `netc apply --all`: plan every host; refuse unless every plan is clean; then apply the
/// hosts with changes in order and stop at the first failure.
pub fn apply(file: &Path, o: &Rollout) -> CliResult {
    let (sending, order) = start(file)?;
    let plans = plan_all(&sending, &order, o.parallel);
    print!("{}", table(&plans, o.force));
    if status(&plans, o.force).is_err() {
        eprintln!("netc: refusing to roll out: a host above cannot be planned; nothing changed");
        return Err(CliError::Reported);
    }
    let changes: Vec<&str> = plans
        .iter()
        .filter(|(_, p)| p.as_ref().is_ok_and(|p| p.changes))
        .map(|(h, _)| h.as_str())
        .collect();
    if changes.is_empty() {
        eprintln!("netc: no host has changes");
        return Ok(Outcome::Done);
    }
    let results = roll(&sending, &order, &changes, o);
    let mut rows = vec![["HOST", "RESULT"].map(String::from).to_vec()];
    for h in &order.hosts {
        let said = match results.get(h.as_str()) {
            None | Some(Rolled::NoChanges) => "no changes".to_string(),
            Some(Rolled::Confirmed) => "applied and confirmed".to_string(),
            Some(Rolled::NotStarted | Rolled::Running) => {
                "not started (the rollout stopped)".to_string()
            }
            Some(Rolled::Failed(e)) => format!("FAILED: {e}"),
        };
        rows.push(vec![h.clone(), said]);
    }
    print!("{}", columns(&rows));
    if results.values().any(|r| matches!(r, Rolled::Failed(_))) {
        Err(CliError::Reported)
    } else {
        Ok(Outcome::Done)
    }
}

/// Applies `changes` (hosts in rollout order), up to `o.parallel` at a time, each only once
/// the hosts it comes after are done; after a failure, starts no other.
fn roll<'a>(
    sending: &Sending,
    order: &'a Order,
    changes: &[&'a str],
    o: &Rollout,
) -> BTreeMap<&'a str, Rolled> {
    let mut results: BTreeMap<&str, Rolled> = order
        .hosts
        .iter()
        .map(|h| {
            let r = if changes.contains(&h.as_str()) {
                Rolled::NotStarted
            } else {
                Rolled::NoChanges
            };
            (h.as_str(), r)
        })
        .collect();
    let total = changes.len();
    let (tx, rx) = std::sync::mpsc::channel::<(&str, Rolled)>();
    std::thread::scope(|s| {
        let mut running = 0;
        let mut started = 0;
        let mut failed = false;
        loop {
            while !failed && running < o.parallel.max(1) {
                let done = |h: &String| {
                    matches!(
                        results.get(h.as_str()),
                        Some(Rolled::NoChanges | Rolled::Confirmed)
                    )
                };
                let next = changes.iter().find(|h| {
                    matches!(results[*h], Rolled::NotStarted)
                        && order.after.get(**h).is_none_or(|b| b.iter().all(done))
                });
                let Some(&host) = next else { break };
                results.insert(host, Rolled::Running);
                running += 1;
                started += 1;
                let tx = tx.clone();
                let n = started;
                s.spawn(move || {
                    let remote = Remote::new(sending, host);
                    let progress = |step: &str| eprintln!("[{n}/{total}] {host}: {step}");
                    let prefix = format!("[{host}] ");
                    let r = remote.apply_and_confirm(o.confirm, o.force, &progress, &prefix);
                    let r = match r {
                        Ok(()) => {
                            progress("confirmed");
                            Rolled::Confirmed
                        }
                        Err(e) => {
                            progress(&format!("FAILED: {e}"));
                            Rolled::Failed(e)
                        }
                    };
                    let _ = tx.send((host, r));
                });
            }
            if running == 0 {
                break;
            }
            let (host, r) = rx.recv().expect("a runner sends its result");
            running -= 1;
            failed |= matches!(r, Rolled::Failed(_));
            results.insert(host, r);
        }
    });
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(text: &str) -> Topology {
        let c = netc::compile("t.csn", text.as_bytes());
        assert_eq!(c.errors(), 0, "{:?}", c.diags);
        c.topology.unwrap()
    }

    const HOSTS: &str = "vlan 10 \"m\" {\n role management\n prefix 192.0.2.0/24\n}\n\
        host a {\n nic e0\n bridge br10 vlan 10 on e0 {\n address 192.0.2.1\n }\n}\n\
        host b {\n nic e0\n bridge br10 vlan 10 on e0 {\n address 192.0.2.2\n }\n}\n\
        host c {\n nic e0\n bridge br10 vlan 10 on e0 {\n address 192.0.2.3\n }\n}\n";

    #[test]
    fn backups_go_before_their_master() {
        let t = topo(&format!(
            "{HOSTS}vip v {{\n vlan 10\n address 192.0.2.9\n router-id 1\n member a priority 150\n member c priority 100\n}}\n"
        ));
        let o = order(&t);
        assert_eq!(o.hosts, ["b", "c", "a"]);
        assert_eq!(o.note, None);
        assert_eq!(
            waves(&o),
            [("b".into(), 1), ("c".into(), 1), ("a".into(), 2)]
        );
        // Without VIPs: topology order, one wave.
        let o = order(&topo(HOSTS));
        assert_eq!(o.hosts, ["a", "b", "c"]);
        assert!(waves(&o).iter().all(|(_, w)| *w == 1));
    }

    #[test]
    fn a_cycle_is_said_and_broken_in_topology_order() {
        let vip = |name: &str, id: u8, addr: &str, m: &str, b: &str| {
            format!(
                "vip {name} {{\n vlan 10\n address {addr}\n router-id {id}\n member {m} priority 150\n member {b} priority 100\n}}\n"
            )
        };
        let t = topo(&format!(
            "{HOSTS}{}{}",
            vip("v", 1, "192.0.2.9", "a", "b"),
            vip("w", 2, "192.0.2.10", "b", "a")
        ));
        let o = order(&t);
        assert_eq!(o.hosts, ["c", "a", "b"]);
        assert!(o.note.as_ref().unwrap().contains("a, b"), "{:?}", o.note);
        // Once broken, the first host waits for nobody; the second waits for it.
        assert_eq!(waves(&o)[1..], [("a".into(), 1), ("b".into(), 2)]);
    }

    #[test]
    fn the_table_counts_and_says_every_error() {
        let plans = vec![
            (
                "a".to_string(),
                Ok(HostPlan {
                    changes: true,
                    firewall: vec!["IPv4: add the INPUT jump to X".into()],
                    ..HostPlan::default()
                }),
            ),
            ("b".to_string(), Ok(HostPlan::default())),
            (
                "c".to_string(),
                Err("cannot reach c over ssh (c): refused".into()),
            ),
        ];
        assert_eq!(
            table(&plans, false),
            "HOST  STATUS      NETWORK  FILES  FIREWALL  AGENT  DRIFT\n\
             a     changes     0        0      1         0      1\n\
             b     no changes  0        0      0         0      0\n\
             c     error\n\
             c: cannot reach c over ssh (c): refused\n"
        );
        assert!(status(&plans, false).is_err());
        assert_eq!(status(&plans[..2], false).unwrap(), Outcome::Changes);
        assert_eq!(status(&plans[1..2], false).unwrap(), Outcome::Done);
    }

    /// A plan the host's lockout guard refuses stops a rollout before any change, unless
    /// `--force` overrides the guard.
    #[test]
    fn the_lockout_guard_refuses_the_rollout_unless_forced() {
        let plans = vec![(
            "a".to_string(),
            Ok(HostPlan {
                changes: true,
                lockout: Some("this SSH session depends on it".into()),
                ..HostPlan::default()
            }),
        )];
        assert!(table(&plans, false).contains("a     refused"));
        assert!(table(&plans, false).contains(
            "a: refused: the lockout guard (apply --force overrides it): this SSH session"
        ));
        assert!(status(&plans, false).is_err());
        assert_eq!(status(&plans, true).unwrap(), Outcome::Changes);
    }

    #[test]
    fn each_keeps_the_order() {
        let items: Vec<usize> = (0..20).collect();
        assert_eq!(
            each(&items, 3, |i| i * 2),
            items.iter().map(|i| i * 2).collect::<Vec<_>>()
        );
        assert!(each(&Vec::<usize>::new(), 3, |i| *i).is_empty());
    }
}
