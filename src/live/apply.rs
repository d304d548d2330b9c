//! Running a plan's steps as one change, under the [`Journal`]: each step is marked begun
//! before it runs and done after, so a crash at any point leaves a journal that names what is
//! on the host. When a step fails, or a signal asks to stop (checked between steps), the
//! steps this run did are undone ([`rollback::undo`]: carefully, on what the host shows now).
//! Steps inherited from an interrupted apply (before `from`) are not undone here: the journal
//! keeps them for `netc rollback`.

use std::sync::atomic::{AtomicBool, Ordering};

use super::exec::System;
use super::journal::{Journal, Mark, Planned, StepState};
use super::rollback::{self, Outcome};

/// Why the steps stopped, and how the undo went.
#[derive(Debug)]
pub struct Failure {
    /// The step that failed, or the signal.
    pub why: String,
    pub undo: Outcome,
}

/// Runs the journal's steps from `from` on, in order, unless `stop` is raised between them.
pub fn run(
    journal: &mut Journal,
    from: usize,
    sys: &mut System,
    stop: &AtomicBool,
) -> Result<(), Failure> {
    let steps: Vec<Planned> = journal.header.steps.clone();
    for (i, p) in steps.iter().enumerate().skip(from) {
        let result = if stop.load(Ordering::SeqCst) {
            Err(format!(
                "{}: not run: a signal (SIGHUP, SIGINT or SIGTERM) asked netc to stop",
                p.step
            ))
        } else {
            journal
                .mark(Mark::Begin(i))
                .and_then(|()| p.step.run(sys))
                .and_then(|()| journal.mark(Mark::Done(i)))
                .map_err(|e| e.to_string())
        };
        if let Err(why) = result {
            let undo = undo_from(journal, from, &steps, sys);
            return Err(Failure {
                why: format!("step {} of {}: {why}", i + 1, steps.len()),
                undo,
            });
        }
    }
    Ok(())
}

/// Undoes, carefully, the steps from `from` on that are (or may be) on the host.
pub fn undo_from(
    journal: &mut Journal,
    from: usize,
    steps: &[Planned],
    sys: &mut System,
) -> Outcome {
    let done: Vec<(usize, &Planned)> = (from..steps.len())
        .filter(|i| matches!(journal.state(*i), StepState::Done | StepState::Maybe))
        .map(|i| (i, &steps[i]))
        .collect();
    let maybe: Vec<usize> = (from..steps.len())
        .filter(|i| journal.state(*i) == StepState::Maybe)
        .collect();
    rollback::undo(&done, &maybe, sys, &mut |i| journal.mark(Mark::Undone(i)))
}
