//! What netc says and does about an apply that has not ended: one waiting for `netc
//! confirm`, or one a crash or a signal cut short (its [`Journal`] is still there). `netc
//! confirm` keeps it; `netc rollback` undoes it (carefully); the `--confirm` timer is a
//! detached `netc rollback --at-deadline`.

use std::path::Path;
use std::time::Duration;

use netc::live::exec::System;
use netc::live::journal::{Journal, Mark, Planned, StepState};
use netc::live::netlink::Kernel;
use netc::live::rollback::{self, Outcome as Undo};
use netc::live::state::{self, State};
use netc::live::vet;

use super::exit::{CliError, CliResult, Outcome};
use super::live::{absolute, clean_temps, detail, lock, say};

/// Reads the journal for a read-only command and says what it finds.
pub fn status(state: &State, root: &Path) -> Option<Journal> {
    match state.journal() {
        Err(d) => {
            say(d);
            None
        }
        Ok(None) => None,
        Ok(Some(j)) => {
            if j.applied() {
                say(waiting_text(&j, state));
            } else if state.busy() {
                let done = j.carried().len();
                say(format!(
                    "an apply to {} is running now ({done} of its {} steps so far)",
                    j.header.host,
                    j.header.steps.len()
                ));
            } else {
                interrupted(&j);
                if let Err(e) = vet::vet(&j.header, root) {
                    say(format!("and netc will not run that journal: {e}"));
                }
            }
            Some(j)
        }
    }
}

/// Says that an apply was cut short and what it did.
pub fn interrupted(j: &Journal) {
    let carried = j.carried();
    say(format!(
        "an apply to {} was interrupted (started {}); of its {} steps, it did these:",
        j.header.host,
        state::when(j.header.started, state::now()),
        j.header.steps.len()
    ));
    for (i, s) in &carried {
        let maybe = if *s == StepState::Maybe {
            " (begun: may or may not have happened)"
        } else {
            ""
        };
        detail(format!("{}{maybe}", j.header.steps[*i].step));
    }
    if carried.is_empty() {
        say("(none: it stopped before its first change)");
    }
    say("`netc apply` finishes it (to the topology); `netc rollback` undoes it");
}

fn waiting_text(j: &Journal, state: &State) -> String {
    let now = state::now();
    let Some(deadline) = j.deadline() else {
        return format!(
            "an apply to {} has ended but its journal remains",
            j.header.host
        );
    };
    let at = state::when(deadline, now);
    if state.timer_alive() {
        format!(
            "an apply to {} is waiting for `netc confirm`; its timer undoes it at {at}",
            j.header.host
        )
    } else {
        format!(
            "an apply to {} is waiting for `netc confirm`, but its timer is not running (the \
             machine restarted, or it was killed): nothing undoes it by itself (deadline {at}). \
             `netc rollback` undoes it, `netc confirm` keeps it",
            j.header.host
        )
    }
}

/// The refusal while an apply waits for `netc confirm`.
pub fn waiting(j: &Journal, state: &State) -> CliError {
    CliError::user(format!(
        "{}; confirm or roll it back first",
        waiting_text(j, state)
    ))
}

/// Says how an undo went.
pub fn report(u: &Undo, what: &str) {
    for step in &u.undone {
        detail(format!("undone: {step}"));
    }
    for s in &u.skipped {
        say(format!("NOT undone: {s}"));
    }
    for e in &u.errors {
        say(format!("undo FAILED: {e}"));
    }
    if u.as_before() {
        say(format!(
            "rolled back {what}; the host is as it was before the apply"
        ));
    } else {
        say(format!(
            "rolled back {what} except the above: the host is NOT as it was; look at it"
        ));
    }
}

/// Starts `netc rollback --at-deadline` in its own session, so that it outlives this
/// process, its terminal and the SSH connection. It inherits the timer's lock, which shows
/// it lives.
pub fn spawn_timer(root: &Path, id: &str, state: &State) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let mut held = None;
    for _ in 0..50 {
        // An earlier timer may still be noticing that its apply is over.
        match state.timer_lock() {
            Ok(f) => {
                held = Some(f);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let held = held.ok_or_else(|| std::io::Error::other("another rollback timer is waiting"))?;
    let fd = held.as_raw_fd();
    let exe = std::env::current_exe()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.log_path())?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["rollback", "--at-deadline", "--id", id, "--root"])
        .arg(root)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid and fcntl are async-signal-safe and touch no memory of the parent; the
    // lock's descriptor stays open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::setsid()?;
            let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            Ok(())
        });
    }
    cmd.spawn().map(|_| ())
}

pub fn confirm(root: &Path) -> CliResult {
    let root = &absolute(root);
    let state = State::of_root(root);
    let _lock = lock(&state)?;
    clean_temps(&state, root);
    match state.journal() {
        Err(d) => {
            say(&d);
            let to = state.set_aside().map_err(CliError::io)?;
            say(format!(
                "set it aside as {}; the host stays as it is",
                to.display()
            ));
            Ok(Outcome::Done)
        }
        Ok(None) => Err(CliError::user(
            "nothing to confirm: no apply is waiting (too late, or never armed?)",
        )),
        Ok(Some(j)) if !j.applied() => {
            interrupted(&j);
            Err(CliError::user(
                "nothing to confirm: that apply never finished",
            ))
        }
        Ok(Some(j)) => {
            let host = j.header.host.clone();
            j.remove().map_err(CliError::io)?;
            say(format!("confirmed the apply to {host}; it stays"));
            Ok(Outcome::Done)
        }
    }
}

/// The timer: waits for the deadline of the apply `id`; nothing if it was confirmed, or
/// replaced by another apply, by then. True when it is time to roll back.
fn wait_for_deadline(state: &State, id: &str) -> bool {
    loop {
        let j = match state.journal() {
            Ok(Some(j)) if j.header.id == id => j,
            _ => return false,
        };
        let Some(deadline) = j.deadline() else {
            return false;
        };
        if state::now() >= deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Undoes the apply the journal names: now, or (`at_deadline`, the detached timer) at its
/// deadline, if it is still waiting then.
pub fn rollback(root: &Path, at_deadline: Option<&str>) -> CliResult {
    let root = &absolute(root);
    let state = State::of_root(root);
    if let Some(id) = at_deadline
        && !wait_for_deadline(&state, id)
    {
        return Ok(Outcome::Done);
    }
    let _lock = lock(&state)?;
    clean_temps(&state, root);
    let j = match state.journal().map_err(CliError::user)? {
        Some(j) if at_deadline.is_none_or(|id| j.header.id == id) => j,
        _ if at_deadline.is_some() => return Ok(Outcome::Done), // confirmed just in time
        _ => return Err(CliError::user("nothing to roll back: no apply is waiting")),
    };
    vet::vet(&j.header, root).map_err(|e| {
        CliError::user(format!(
            "refusing to run the journal {}: {e}",
            j.path.display()
        ))
    })?;
    if !j.applied() {
        interrupted(&j);
    }
    let mut kernel =
        Kernel::open().map_err(|e| CliError::io(format!("cannot open rtnetlink: {e}")))?;
    let mut sys = System::new(&mut kernel, root);
    say(format!(
        "rolling back the apply to {} ({} steps), carefully: what changed since is left",
        j.header.host,
        j.carried().len()
    ));
    let undo = undo_all(j, &mut sys);
    for n in &sys.notes {
        say(n);
    }
    report(&undo, "the apply");
    if undo.as_before() {
        Ok(Outcome::Done)
    } else {
        Err(CliError::Reported)
    }
}

/// Undoes every step the journal carries, then removes it.
fn undo_all(mut j: Journal, sys: &mut System) -> Undo {
    let steps: Vec<Planned> = j.header.steps.clone();
    let carried = j.carried();
    let done: Vec<(usize, &Planned)> = carried.iter().map(|(i, _)| (*i, &steps[*i])).collect();
    let maybe: Vec<usize> = carried
        .iter()
        .filter(|(_, s)| *s == StepState::Maybe)
        .map(|(i, _)| *i)
        .collect();
    let mut undo = rollback::undo(&done, &maybe, sys, &mut |i| j.mark(Mark::Undone(i)));
    if let Err(e) = j.remove() {
        undo.errors.push(e);
    }
    undo
}
