//! Running a plan's steps as one change: in order, and when a step fails, the inverses of the
//! steps already done, in reverse. Every step was planned with its inverse before anything
//! was touched, so the undo never reads state that the failed step may have left half-changed.

use std::io;

use super::exec::System;
use super::step::Step;

/// A step that failed, and how the undo went.
#[derive(Debug)]
pub struct Failure {
    pub error: io::Error,
    /// Steps that were done and then undone.
    pub undone: usize,
    /// Undo steps that failed too: the host needs a look.
    pub undo_errors: Vec<io::Error>,
}

/// Runs `steps` (each with its inverse) in order. On success, the inverses of the steps run,
/// in the order that undoes them. On failure, that undo has already been run.
pub fn run(steps: &[(Step, Step)], sys: &mut System) -> Result<Vec<Step>, Failure> {
    let mut undo: Vec<Step> = Vec::new();
    for (step, inverse) in steps {
        if let Err(error) = step.run(sys) {
            undo.reverse();
            let undone = undo.len();
            let undo_errors = run_undo(&undo, sys);
            return Err(Failure {
                error,
                undone,
                undo_errors,
            });
        }
        undo.push(inverse.clone());
    }
    undo.reverse();
    Ok(undo)
}

/// Runs every undo step, on past failures too: leave as little changed as possible.
pub fn run_undo(undo: &[Step], sys: &mut System) -> Vec<io::Error> {
    undo.iter().filter_map(|s| s.run(sys).err()).collect()
}
