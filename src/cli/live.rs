//! The commands that read or change the live host: plan, apply, confirm, rollback.

use std::path::Path;
use std::process::ExitCode;

use netc::apply::{self, Pending, State, System};
use netc::model::Family;
use netc::net::{self, LiveNet};
use netc::netlink::Kernel;
use netc::plan::Plan;

use crate::{CHANGES, PlanFormat, USER_ERROR, error_1, find_host, model, settings};

/// Where a live command looks: the topology, the host, and the root of the host's files.
pub struct Target<'a> {
    pub file: &'a Path,
    pub host: &'a str,
    pub root: &'a Path,
}

/// What apply needs beyond a plan.
pub struct ApplyOptions {
    pub dry_run: bool,
    pub force: bool,
    pub force_host: bool,
    pub confirm: Option<u64>,
}

/// The state directory of a root: `<root>/var/lib/netc`.
fn state(root: &Path) -> State {
    State {
        dir: root.join("var/lib/netc"),
    }
}

fn iptables_save(family: Family) -> std::io::Result<String> {
    let tool = match family {
        Family::V4 => "iptables-save",
        Family::V6 => "ip6tables-save",
    };
    let o = std::process::Command::new(tool)
        .args(["-t", "filter"])
        .output()?;
    if !o.status.success() {
        return Err(std::io::Error::other(format!(
            "{tool} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Compiles, finds the host, reads the live state and plans; on failure, the exit status.
fn make_plan(t: &Target) -> Result<(Plan, Kernel, LiveNet), ExitCode> {
    let compiled = model(t.file, USER_ERROR)?;
    let settings = settings(t.file).map_err(|_| ExitCode::from(USER_ERROR))?;
    let topology = compiled.topology.as_ref().expect("model() checked");
    let host = find_host(&compiled, t.host)?;
    let kernel = Kernel::open().map_err(|e| error_1(format!("cannot open rtnetlink: {e}")))?;
    let net = kernel
        .read()
        .map_err(|e| error_1(format!("cannot read links and addresses: {e}")))?;
    let live = netc::plan::Live {
        root: t.root,
        net: &net,
        iptables_save: &iptables_save,
        nft_list: &apply::nft_list,
        nft_record: &state(t.root).dir.join("nft.json"),
    };
    let plan = netc::plan::plan(topology, host, settings.firewall.target, &live)
        .map_err(|e| error_1(format!("cannot read the live state: {e}")))?;
    Ok((plan, kernel, net))
}

pub fn plan(t: &Target, format: PlanFormat) -> ExitCode {
    let (p, _, _) = match make_plan(t) {
        Ok(x) => x,
        Err(code) => return code,
    };
    match format {
        PlanFormat::Text => print!("{}", netc::plan::text(&p)),
        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(&p).expect("plain data")),
    }
    if !p.refusals.is_empty() {
        ExitCode::from(USER_ERROR)
    } else if p.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CHANGES)
    }
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

pub fn apply(t: &Target, o: &ApplyOptions) -> ExitCode {
    let machine = hostname();
    if machine != t.host && !o.force_host && !o.dry_run {
        return error_1(format!(
            "this machine is `{machine}`, not `{}`; apply runs on the host it configures \
             (--force-host if this is really {})",
            t.host, t.host
        ));
    }
    let state = state(t.root);
    // One apply, confirm or rollback at a time.
    let _lock = match state.lock() {
        Ok(l) => l,
        Err(e) => return error_1(format!("cannot lock {}: {e}", state.dir.display())),
    };
    match state.pending() {
        Ok(None) => {}
        Ok(Some(p)) => {
            return error_1(format!(
                "an apply to {} is waiting for `netc confirm` (or it is undone at {}); confirm \
                 or roll it back first",
                p.host,
                clock(p.deadline)
            ));
        }
        Err(e) => return error_1(e),
    }
    let (plan, mut kernel, net) = match make_plan(t) {
        Ok(x) => x,
        Err(code) => return code,
    };
    print!("{}", netc::plan::text(&plan));
    if !plan.refusals.is_empty() {
        eprintln!("netc: refusing to apply: resolve the conflicts above first; nothing changed");
        return ExitCode::from(USER_ERROR);
    }
    if o.dry_run {
        return if plan.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(CHANGES)
        };
    }
    if plan.is_empty() {
        return ExitCode::SUCCESS;
    }
    let mut notes = Vec::new();
    if let Err(e) = apply::validate(&plan.steps, &mut notes) {
        eprintln!("netc: refusing to apply: {e}; nothing changed");
        return ExitCode::from(USER_ERROR);
    }
    let session = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|v| net::Session::from_env(&v));
    if let Some(why) = session.and_then(|s| net::lockout(&net, &plan.network, s)) {
        if !o.force {
            eprintln!(
                "netc: refusing to apply: {why}\n(--force to apply anyway, ideally with \
                 --confirm); nothing changed"
            );
            return ExitCode::from(USER_ERROR);
        }
        eprintln!("netc: warning: {why} (--force)");
    }
    let mut sys = System {
        kernel: &mut kernel,
        keepalived_pid: t.root.join("run/keepalived.pid"),
        notes,
    };
    let result = apply::run(&plan.steps, &mut sys);
    for n in &sys.notes {
        eprintln!("netc: {n}");
    }
    let writes = sys.kernel.writes;
    let undo = match result {
        Ok(undo) => undo,
        Err(f) => {
            eprintln!("netc: apply failed: {}", f.error);
            if f.undo_errors.is_empty() {
                eprintln!(
                    "netc: rolled back the {} steps already done; the host is as it was",
                    f.undone
                );
            } else {
                eprintln!(
                    "netc: rolling back the {} steps already done ALSO FAILED; check the host:",
                    f.undone
                );
                for e in &f.undo_errors {
                    eprintln!("  {e}");
                }
            }
            return ExitCode::from(USER_ERROR);
        }
    };
    eprintln!(
        "netc: applied {} steps to {} ({writes} kernel writes)",
        plan.steps.len(),
        t.host
    );
    if let Some(seconds) = o.confirm {
        let pending = Pending {
            host: t.host.to_string(),
            deadline: apply::now() + seconds,
            undo,
        };
        if let Err(e) = state
            .set_pending(&pending)
            .and_then(|()| spawn_timer(t.root))
        {
            eprintln!("netc: cannot arm the rollback timer ({e}); rolling back now");
            let errors = apply::run_undo(&pending.undo, &mut sys);
            let _ = state.clear_pending();
            return report_undo(&errors);
        }
        eprintln!(
            "netc: run `netc confirm` within {seconds} s, or everything above is undone at {}",
            clock(pending.deadline)
        );
    }
    ExitCode::SUCCESS
}

fn clock(epoch: u64) -> String {
    format!("{epoch} (seconds since 1970; now {})", apply::now())
}

fn report_undo(errors: &[std::io::Error]) -> ExitCode {
    if errors.is_empty() {
        eprintln!("netc: rolled back; the host is as it was before the apply");
        return ExitCode::SUCCESS;
    }
    eprintln!("netc: some of the rollback failed; check the host:");
    for e in errors {
        eprintln!("  {e}");
    }
    ExitCode::from(USER_ERROR)
}

/// Starts `netc rollback --at-deadline` in its own session, so that it outlives this
/// process, its terminal and the SSH connection.
fn spawn_timer(root: &Path) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state(root).dir.join("rollback.log"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["rollback", "--at-deadline", "--root"])
        .arg(root)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| rustix::process::setsid().map(|_| ()).map_err(Into::into));
    }
    cmd.spawn().map(|_| ())
}

pub fn confirm(root: &Path) -> ExitCode {
    let state = state(root);
    let _lock = match state.lock() {
        Ok(l) => l,
        Err(e) => return error_1(format!("cannot lock {}: {e}", state.dir.display())),
    };
    match state.pending() {
        Ok(Some(p)) => match state.clear_pending() {
            Ok(()) => {
                eprintln!("netc: confirmed the apply to {}; it stays", p.host);
                ExitCode::SUCCESS
            }
            Err(e) => error_1(e),
        },
        Ok(None) => error_1("nothing to confirm: no apply is waiting (too late, or never armed?)"),
        Err(e) => error_1(e),
    }
}

/// Undo the apply that waits for confirmation: now, or (`at_deadline`, the detached timer)
/// when its deadline passes, if it is still waiting then.
pub fn rollback(root: &Path, at_deadline: bool) -> ExitCode {
    let state = state(root);
    if at_deadline {
        loop {
            let deadline = match state.pending() {
                Ok(Some(p)) => p.deadline,
                Ok(None) => return ExitCode::SUCCESS, // confirmed
                Err(e) => return error_1(e),
            };
            let now = apply::now();
            if now >= deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs((deadline - now).min(1)));
        }
    }
    let _lock = match state.lock() {
        Ok(l) => l,
        Err(e) => return error_1(format!("cannot lock {}: {e}", state.dir.display())),
    };
    let pending: Pending = match state.pending() {
        Ok(Some(p)) => p,
        Ok(None) if at_deadline => return ExitCode::SUCCESS, // confirmed just in time
        Ok(None) => return error_1("nothing to roll back: no apply is waiting"),
        Err(e) => return error_1(e),
    };
    let mut kernel = match Kernel::open() {
        Ok(k) => k,
        Err(e) => return error_1(format!("cannot open rtnetlink: {e}")),
    };
    let mut sys = System {
        kernel: &mut kernel,
        keepalived_pid: root.join("run/keepalived.pid"),
        notes: Vec::new(),
    };
    eprintln!(
        "netc: rolling back the unconfirmed apply to {} ({} steps)",
        pending.host,
        pending.undo.len()
    );
    for step in &pending.undo {
        eprintln!("  {step}");
    }
    let errors = apply::run_undo(&pending.undo, &mut sys);
    if let Err(e) = state.clear_pending() {
        eprintln!("netc: cannot remove the pending apply: {e}");
    }
    report_undo(&errors)
}
