//! The commands that read or change the live host: plan and apply (confirm and rollback are
//! in [`super::recover`]).
//!
//! Apply's order: lock; set signals to "stop between steps"; read any journal an earlier apply
//! left (waiting for `netc confirm`: refuse; interrupted: say what it did and carry it); plan;
//! refuse on conflicts or the lockout guard; write the journal; arm the `--confirm` timer; only
//! then change the host, one journaled step at a time.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use netc::live::apply;
use netc::live::exec::System;
use netc::live::guard::{self, Session};
use netc::live::journal::{Header, Journal, Mark, Planned, StepState, VERSION};
use netc::live::left;
use netc::live::net::{LiveNet, NetOp};
use netc::live::netlink::Kernel;
use netc::live::nftnl;
use netc::live::plan::{self, Plan};
use netc::live::probe::{self, Live};
use netc::live::state::{self, State};
use netc::live::vet;
use netc::render::ArtefactKind;

use super::PlanFormat;
use super::exit::{CliError, CliResult, Outcome};
use super::load::{find_host, model, settings};
use super::recover;
use super::remote::Received;

/// Where a live command looks: the topology, the host, and the root of the host's files.
pub struct Target<'a> {
    pub file: &'a Path,
    pub host: &'a str,
    pub root: std::path::PathBuf,
    /// The topology and settings, when a remote netc sent them (then `file` is only a name).
    pub received: Option<&'a Received>,
}

impl<'a> Target<'a> {
    pub fn new(file: &'a Path, host: &'a str, root: &Path) -> Target<'a> {
        Target {
            file,
            host,
            root: absolute(root),
            received: None,
        }
    }
}

/// `root` as an absolute path: the journal names files by it, and a later command (or the
/// timer) may run from another directory.
pub fn absolute(root: &Path) -> std::path::PathBuf {
    std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf())
}

/// What apply needs beyond a plan.
pub struct ApplyOptions {
    pub dry_run: bool,
    pub force: bool,
    pub force_host: bool,
    pub confirm: Option<u64>,
}

/// A line for the user on stderr; never fails (the terminal may be gone: SIGHUP).
pub fn say(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "netc: {line}");
}

/// An indented line under the last [`say`]; never fails.
pub fn detail(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "  {line}");
}

/// Text for stdout, in one write; never fails.
fn show(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Compiles, finds the host, reads the live state and plans. Links an interrupted apply
/// created are netc's even if the crash came before their mark.
fn make_plan(t: &Target, journal: Option<&Journal>) -> Result<(Plan, Kernel, LiveNet), CliError> {
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
    // The generation first: whatever changes a table after this moment moves it.
    let generation = target.iptables().then(left::generation).flatten();
    let left = target
        .iptables()
        .then(|| left::holding(&t.root, netns_cookie()))
        .flatten();
    let saves = (target.iptables() && left.is_none()).then(probe::IptablesSaves::start);
    let iptables_save = |family| match &saves {
        Some(s) => s.take(family),
        None => probe::iptables_save(family),
    };
    let kernel = Kernel::open().map_err(|e| CliError::io(format!("cannot open rtnetlink: {e}")))?;
    let mut net = kernel
        .read()
        .map_err(|e| CliError::io(format!("cannot read links and addresses: {e}")))?;
    for name in unmarked_links(journal, &net) {
        if let Some(l) = net.links.iter_mut().find(|l| l.name == name) {
            l.alias = Some(netc::live::net::ALIAS.into());
        }
    }
    let state = State::of_root(&t.root);
    let live = Live {
        root: &t.root,
        net: &net,
        iptables_save: &iptables_save,
        iptables_left: left.as_ref(),
        ipset_save: &probe::ipset_save,
        nft_read: &nftnl::read,
        nft_list: &probe::nft_list,
        state: &state,
    };
    let mut plan = plan::plan(topology, host, settings.firewall.target, &live)
        .map_err(|e| CliError::io(format!("cannot read the live state: {e}")))?;
    plan.lockout = lockout(&net, &plan);
    plan.generation = generation;
    Ok((plan, kernel, net))
}

/// This network namespace's cookie (`SO_NETNS_COOKIE`, Linux 5.14): unique for the boot and
/// never given to another namespace, as its inode number can be. `None` where the kernel does
/// not know it.
fn netns_cookie() -> Option<u64> {
    use std::os::fd::AsRawFd;
    let socket = rustix::net::socket(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .ok()?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the descriptor is open for the call; the kernel writes at most `len` bytes into
    // `cookie`, which lives across it.
    let ok = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    } == 0;
    (ok && len as usize == std::mem::size_of::<u64>()).then_some(cookie)
}

/// Links an interrupted apply created (or began to) that carry no mark yet.
fn unmarked_links(journal: Option<&Journal>, net: &LiveNet) -> Vec<String> {
    let Some(j) = journal else {
        return Vec::new();
    };
    j.carried()
        .into_iter()
        .filter_map(|(i, _)| match &j.header.steps[i].step {
            netc::live::step::Step::Net(NetOp::AddLink { name, .. }) => Some(name.clone()),
            _ => None,
        })
        .filter(|name| net.link(name).is_some_and(|l| l.alias.is_none()))
        .collect()
}

/// What the lockout guard refuses for the session in `$SSH_CONNECTION`, if any.
fn lockout(net: &LiveNet, plan: &Plan) -> Option<String> {
    let value = std::env::var("SSH_CONNECTION").ok()?;
    match Session::from_env(&value) {
        Ok(s) => guard::lockout(net, &plan.network, &s),
        Err(e) => (!plan.network.is_empty())
            .then(|| format!("{e}, so the guard cannot tell what this session needs")),
    }
}

fn changes(p: &Plan) -> Outcome {
    if p.is_empty() {
        Outcome::Done
    } else {
        Outcome::Changes
    }
}

pub fn plan(t: &Target, format: PlanFormat) -> CliResult {
    let state = State::of_root(&t.root);
    let journal = recover::status(&state, &t.root);
    let (p, _, _) = make_plan(t, journal.as_ref())?;
    match format {
        PlanFormat::Text => show(&plan::text(&p)),
        PlanFormat::Json => show(&format!(
            "{}\n",
            serde_json::to_string_pretty(&p).expect("plain data")
        )),
    }
    if !p.refusals.is_empty() || p.lockout.is_some() {
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

pub fn lock(state: &State) -> Result<std::fs::File, CliError> {
    state
        .lock()
        .map_err(|e| CliError::io(format!("cannot lock {}: {e}", state.dir.display())))
}

/// SIGHUP (the SSH session dropping), SIGINT and SIGTERM no longer end netc: they raise the
/// returned flag, and apply stops between steps and undoes what it did.
fn stop_on_signals() -> Result<Arc<AtomicBool>, CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| CliError::io(format!("cannot catch signal {signal}: {e}")))?;
    }
    Ok(stop)
}

/// Removes the temporary files killed runs left in netc's directories.
pub fn clean_temps(state: &State, root: &Path) {
    let dirs: Vec<std::path::PathBuf> = ArtefactKind::ALL
        .iter()
        .filter_map(|k| root.join(k.path()).parent().map(Path::to_path_buf))
        .collect();
    match state.clean_temps(dirs.iter().map(|d| d.as_path())) {
        Ok(removed) => {
            for r in removed {
                say(format!(
                    "removed {}, left by a run that was killed",
                    r.display()
                ));
            }
        }
        Err(e) => say(format!("cannot clean temporary files: {e}")),
    }
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
    if o.dry_run {
        return dry_run(t);
    }
    let state = State::of_root(&t.root);
    // One apply, confirm or rollback at a time. (Waiting for it, Ctrl-C still ends netc.)
    let _lock = lock(&state)?;
    let stop = stop_on_signals()?;
    clean_temps(&state, &t.root);
    if let Some(p) = state.legacy_pending() {
        return Err(CliError::user(format!(
            "an older netc left {}: an apply it made waits for `netc confirm`, and its own \
             timer may still undo it. Let that timer run (or run that netc's confirm or \
             rollback), then remove the file",
            p.display()
        )));
    }
    let prior = state.journal().map_err(CliError::user)?;
    let inherited = match &prior {
        Some(j) if j.applied() => return Err(recover::waiting(j, &state)),
        Some(j) => {
            vet::vet(&j.header, &t.root).map_err(|e| {
                CliError::user(format!(
                    "refusing to run the journal {}: {e}",
                    j.path.display()
                ))
            })?;
            recover::interrupted(j);
            say("going forward to the topology (`netc rollback` would undo it instead)");
            j.carried()
        }
        None => Vec::new(),
    };
    let (plan, mut kernel, net) = make_plan(t, prior.as_ref())?;
    show(&plan::text(&plan));
    if !plan.refusals.is_empty() {
        return Err(CliError::user(
            "refusing to apply: resolve the conflicts above first; nothing changed",
        ));
    }
    if let Some(why) = &plan.lockout {
        if !o.force {
            return Err(CliError::user(format!(
                "refusing to apply: {why}\n(--force to apply anyway, ideally with --confirm); \
                 nothing changed"
            )));
        }
        say(format!("warning: {why} (--force)"));
    }
    if plan.is_empty() {
        if let Some(j) = prior {
            j.remove().map_err(CliError::io)?;
            say("the interrupted apply is complete: the host matches the topology");
        }
        return Ok(Outcome::Done);
    }
    let prior = prior.map(|j| (j, inherited));
    run(t, o, &state, plan, prior, &mut kernel, &net, &stop)
}

/// `--dry-run`: the plan, as apply would print it, and its exit status.
fn dry_run(t: &Target) -> CliResult {
    let state = State::of_root(&t.root);
    let journal = recover::status(&state, &t.root);
    let (plan, _, _) = make_plan(t, journal.as_ref())?;
    show(&plan::text(&plan));
    if !plan.refusals.is_empty() || plan.lockout.is_some() {
        return Err(CliError::user(
            "apply would refuse: see above; nothing changed",
        ));
    }
    Ok(changes(&plan))
}

/// Journal first, then the timer, then the changes.
#[allow(clippy::too_many_arguments)]
fn run(
    t: &Target,
    o: &ApplyOptions,
    state: &State,
    plan: Plan,
    prior: Option<(Journal, Vec<(usize, StepState)>)>,
    kernel: &mut Kernel,
    net: &LiveNet,
    stop: &AtomicBool,
) -> CliResult {
    let (mut journal, from) = new_journal(t, o, state, &plan, prior)?;
    if o.confirm.is_some()
        && let Err(e) = recover::spawn_timer(&t.root, &journal.header.id, state)
    {
        let _ = journal.remove();
        return Err(CliError::io(format!(
            "cannot arm the rollback timer ({e}); nothing changed"
        )));
    }
    // The plan saw them as netc's; now the kernel does too.
    let live = kernel.read().unwrap_or_else(|_| net.clone());
    for name in unmarked_links(Some(&journal), &live) {
        match kernel.mark_link(&name) {
            Ok(()) => say(format!(
                "marked {name} as netc's: the interrupted apply created it"
            )),
            Err(e) => say(format!("cannot mark {name} as netc's: {e}")),
        }
    }
    let mut sys = System::new(kernel, &t.root);
    let result = apply::run(&mut journal, from, &mut sys, stop);
    for n in &sys.notes {
        say(n);
    }
    if let Err(f) = result {
        return failed(&f, journal, from);
    }
    let expected = plan.generation.map(|g| g.wrapping_add(sys.nf_commits));
    if let Some(rules) = plan.iptables_nft.clone()
        && let Err(e) = left::record(&t.root, rules, expected, netns_cookie())
    {
        say(format!(
            "note: cannot record the firewall's generation ({e})"
        ));
    }
    say(format!(
        "applied {} steps to {} ({} kernel writes, {} files written)",
        plan.steps.len(),
        t.host,
        sys.kernel_writes(),
        sys.files_written
    ));
    match o.confirm {
        Some(seconds) => {
            let deadline = state::now() + seconds as i64;
            journal
                .mark(Mark::Applied {
                    deadline: Some(deadline),
                })
                .map_err(CliError::io)?;
            say(format!(
                "run `netc confirm` within {seconds} s, or everything above is undone at {}",
                state::when(deadline, state::now())
            ));
        }
        None => journal.remove().map_err(CliError::io)?,
    }
    Ok(Outcome::Done)
}

/// The journal of this apply, on disk: the steps an interrupted apply may have left (with
/// their marks), then the plan's; and where the plan's begin.
fn new_journal(
    t: &Target,
    o: &ApplyOptions,
    state: &State,
    plan: &Plan,
    prior: Option<(Journal, Vec<(usize, StepState)>)>,
) -> Result<(Journal, usize), CliError> {
    let now = state::now();
    let (mut steps, mut marks) = (Vec::new(), Vec::new());
    if let Some((j, carried)) = &prior {
        for (i, s) in carried {
            marks.push(Mark::Begin(steps.len()));
            if *s == StepState::Done {
                marks.push(Mark::Done(steps.len()));
            }
            steps.push(j.header.steps[*i].clone());
        }
    }
    let from = steps.len();
    steps.extend(plan.steps.iter().map(|(step, undo)| Planned {
        step: step.clone(),
        undo: undo.clone(),
    }));
    let header = Header {
        version: VERSION,
        id: format!("{now}-{}", std::process::id()),
        host: t.host.to_string(),
        started: now,
        deadline: o.confirm.map(|s| now + s as i64),
        steps,
    };
    state.ensure().map_err(CliError::io)?;
    let journal = Journal::create(&state.journal_path(), header, &marks)
        .map_err(|e| CliError::io(format!("cannot write the journal: {e}; nothing changed")))?;
    Ok((journal, from))
}

/// Says which step failed (or which signal came) and how the undo went.
fn failed(f: &apply::Failure, journal: Journal, from: usize) -> CliResult {
    say(format!("apply failed: {}", f.why));
    recover::report(&f.undo, "the steps this apply did");
    if from == 0 && f.undo.as_before() {
        if let Err(e) = journal.remove() {
            say(format!("cannot remove the journal: {e}"));
        }
    } else {
        say(format!(
            "the journal {} still names what is on the host: `netc rollback` undoes it, \
             `netc apply` goes forward",
            journal.path.display()
        ));
    }
    Err(CliError::Reported)
}
