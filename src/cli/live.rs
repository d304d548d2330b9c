//! The commands that read or change the live host: plan, apply, confirm, rollback.

use std::path::Path;

use netc::live::apply::{self, Failure};
use netc::live::exec::{self, System};
use netc::live::guard::{self, Session};
use netc::live::left;
use netc::live::net::LiveNet;
use netc::live::netlink::Kernel;
use netc::live::nftnl;
use netc::live::plan::{self, Plan};
use netc::live::probe::{self, Live};
use netc::live::state::{self, Pending, State};

use super::PlanFormat;
use super::exit::{CliError, CliResult, Outcome};
use super::load::{find_host, model, settings};
use super::remote::Received;

/// Where a live command looks: the topology, the host, and the root of the host's files.
pub struct Target<'a> {
    pub file: &'a Path,
    pub host: &'a str,
    pub root: &'a Path,
    /// The topology and settings, when a remote netc sent them (then `file` is only a name).
    pub received: Option<&'a Received>,
}

impl<'a> Target<'a> {
    pub fn new(file: &'a Path, host: &'a str, root: &'a Path) -> Target<'a> {
        Target {
            file,
            host,
            root,
            received: None,
        }
    }
}

/// What apply needs beyond a plan.
pub struct ApplyOptions {
    pub dry_run: bool,
    pub force: bool,
    pub force_host: bool,
    pub confirm: Option<u64>,
}

/// Compiles, finds the host, reads the live state and plans.
fn make_plan(t: &Target) -> Result<(Plan, Kernel, LiveNet), CliError> {
    let loaded;
    let (compiled, settings) = match t.received {
        Some(r) => (&r.compiled, r.settings.clone()),
        None => {
            loaded = model(t.file)?;
            (&loaded, settings(t.file)?)
        }
    };
    let topology = compiled.topology.as_ref().expect("model() checked");
    let host = find_host(compiled, t.host)?;
    // What netc left in iptables-nft's tables, if no table changed since; else the two
    // iptables-save run while netc reads the network.
    let target = settings.firewall.target;
    let left = target.iptables().then(|| left::holding(t.root)).flatten();
    let saves = (target.iptables() && left.is_none()).then(probe::IptablesSaves::start);
    let iptables_save = |family| match &saves {
        Some(s) => s.take(family),
        None => probe::iptables_save(family),
    };
    let kernel = Kernel::open().map_err(|e| CliError::io(format!("cannot open rtnetlink: {e}")))?;
    let net = kernel
        .read()
        .map_err(|e| CliError::io(format!("cannot read links and addresses: {e}")))?;
    let live = Live {
        root: t.root,
        net: &net,
        iptables_save: &iptables_save,
        iptables_left: left.as_ref(),
        ipset_save: &probe::ipset_save,
        nft_read: &nftnl::read,
        nft_list: &probe::nft_list,
    };
    let plan = plan::plan(topology, host, settings.firewall.target, &live)
        .map_err(|e| CliError::io(format!("cannot read the live state: {e}")))?;
    Ok((plan, kernel, net))
}

fn changes(p: &Plan) -> Outcome {
    if p.is_empty() {
        Outcome::Done
    } else {
        Outcome::Changes
    }
}

pub fn plan(t: &Target, format: PlanFormat) -> CliResult {
    let (p, _, _) = make_plan(t)?;
    match format {
        PlanFormat::Text => print!("{}", plan::text(&p)),
        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(&p).expect("plain data")),
    }
    if !p.refusals.is_empty() {
        return Err(CliError::Reported);
    }
    Ok(changes(&p))
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

fn lock(state: &State) -> Result<std::fs::File, CliError> {
    state
        .lock()
        .map_err(|e| CliError::io(format!("cannot lock {}: {e}", state.dir.display())))
}

pub fn apply(t: &Target, o: &ApplyOptions) -> CliResult {
    let machine = hostname();
    if machine != t.host && !o.force_host && !o.dry_run {
        return Err(CliError::user(format!(
            "this machine is `{machine}`, not `{}`; apply runs on the host it configures \
             (--force-host if this is really {})",
            t.host, t.host
        )));
    }
    let state = State::of_root(t.root);
    // One apply, confirm or rollback at a time.
    let _lock = lock(&state)?;
    if let Some(p) = state.pending().map_err(CliError::io)? {
        return Err(CliError::user(format!(
            "an apply to {} is waiting for `netc confirm` (or it is undone at {}); confirm \
             or roll it back first",
            p.host,
            clock(p.deadline)
        )));
    }
    let (plan, mut kernel, net) = make_plan(t)?;
    print!("{}", plan::text(&plan));
    if !plan.refusals.is_empty() {
        return Err(CliError::user(
            "refusing to apply: resolve the conflicts above first; nothing changed",
        ));
    }
    if o.dry_run {
        return Ok(changes(&plan));
    }
    if plan.is_empty() {
        return Ok(Outcome::Done);
    }
    let mut notes = Vec::new();
    exec::validate(&plan.steps, &mut notes)
        .map_err(|e| CliError::user(format!("refusing to apply: {e}; nothing changed")))?;
    let session = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|v| Session::from_env(&v));
    if let Some(why) = session.and_then(|s| guard::lockout(&net, &plan.network, s)) {
        if !o.force {
            return Err(CliError::user(format!(
                "refusing to apply: {why}\n(--force to apply anyway, ideally with --confirm); \
                 nothing changed"
            )));
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
    let undo = result.map_err(|f| failed(&f))?;
    if let Some(rules) = plan.iptables_nft.clone()
        && let Err(e) = left::record(t.root, rules)
    {
        eprintln!("netc: note: cannot record the firewall's generation ({e})");
    }
    eprintln!(
        "netc: applied {} steps to {} ({} kernel writes)",
        plan.steps.len(),
        t.host,
        sys.kernel.writes
    );
    if let Some(seconds) = o.confirm {
        let pending = Pending {
            host: t.host.to_string(),
            deadline: state::now() + seconds,
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
    Ok(Outcome::Done)
}

/// Says which step failed and how the undo went.
fn failed(f: &Failure) -> CliError {
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
    CliError::Reported
}

fn clock(epoch: u64) -> String {
    format!("{epoch} (seconds since 1970; now {})", state::now())
}

fn report_undo(errors: &[std::io::Error]) -> CliResult {
    if errors.is_empty() {
        eprintln!("netc: rolled back; the host is as it was before the apply");
        return Ok(Outcome::Done);
    }
    eprintln!("netc: some of the rollback failed; check the host:");
    for e in errors {
        eprintln!("  {e}");
    }
    Err(CliError::Reported)
}

/// Starts `netc rollback --at-deadline` in its own session, so that it outlives this
/// process, its terminal and the SSH connection.
fn spawn_timer(root: &Path) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(State::of_root(root).dir.join("rollback.log"))?;
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

pub fn confirm(root: &Path) -> CliResult {
    let state = State::of_root(root);
    let _lock = lock(&state)?;
    match state.pending().map_err(CliError::io)? {
        Some(p) => {
            state.clear_pending().map_err(CliError::io)?;
            eprintln!("netc: confirmed the apply to {}; it stays", p.host);
            Ok(Outcome::Done)
        }
        None => Err(CliError::user(
            "nothing to confirm: no apply is waiting (too late, or never armed?)",
        )),
    }
}

/// Undo the apply that waits for confirmation: now, or (`at_deadline`, the detached timer)
/// when its deadline passes, if it is still waiting then.
pub fn rollback(root: &Path, at_deadline: bool) -> CliResult {
    let state = State::of_root(root);
    if at_deadline {
        loop {
            let Some(p) = state.pending().map_err(CliError::io)? else {
                return Ok(Outcome::Done); // confirmed
            };
            let now = state::now();
            if now >= p.deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs((p.deadline - now).min(1)));
        }
    }
    let _lock = lock(&state)?;
    let pending = match state.pending().map_err(CliError::io)? {
        Some(p) => p,
        None if at_deadline => return Ok(Outcome::Done), // confirmed just in time
        None => return Err(CliError::user("nothing to roll back: no apply is waiting")),
    };
    let mut kernel =
        Kernel::open().map_err(|e| CliError::io(format!("cannot open rtnetlink: {e}")))?;
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
