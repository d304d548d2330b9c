//! How a command ends, and the one table that turns that into an exit status.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done: built, checked, applied, nothing to change |
//! | 1 | a mistake in the topology, its settings or the command line; stale output with `--check`; an apply refused or failed (and rolled back) |
//! | 2 | changes (diff, plan, apply `--dry-run`); for every other command an I/O or internal error |
//! | 3 | query: the packet is rejected |
//!
//! Where 2 means "changes", an I/O error is 1: a script must never read an error as changes.

use std::process::ExitCode;

/// A command that ran to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// There are changes (diff, plan, apply --dry-run).
    Changes,
    /// The packet asked about is rejected (query).
    Rejected,
}

/// A command that could not do its work.
#[derive(Debug)]
pub enum CliError {
    /// A mistake by the user, said in this message.
    User(String),
    /// A mistake by the user, already reported (diagnostics, a list of stale files).
    Reported,
    /// Reading, writing or running something failed.
    Io(String),
}

impl CliError {
    pub fn user(message: impl std::fmt::Display) -> CliError {
        CliError::User(message.to_string())
    }

    pub fn io(message: impl std::fmt::Display) -> CliError {
        CliError::Io(message.to_string())
    }
}

pub type CliResult = Result<Outcome, CliError>;

/// Whether a command has the outcome "changes" (and so exit status 2 means changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reports {
    Status,
    Changes,
}

/// The exit status of a result: see the module comment.
pub fn status(result: &CliResult, reports: Reports) -> u8 {
    match (result, reports) {
        (Ok(Outcome::Done), _) => 0,
        (Ok(Outcome::Changes), _) => 2,
        (Ok(Outcome::Rejected), _) => 3,
        (Err(CliError::User(_) | CliError::Reported), _) => 1,
        (Err(CliError::Io(_)), Reports::Status) => 2,
        (Err(CliError::Io(_)), Reports::Changes) => 1,
    }
}

/// What a command that reports changes ended with, read back from its exit status (a
/// remote netc's, its messages already relayed): the table above backwards, None for a
/// status netc does not give.
pub fn read_back(status: i32) -> Option<CliResult> {
    match status {
        0 => Some(Ok(Outcome::Done)),
        1 => Some(Err(CliError::Reported)),
        2 => Some(Ok(Outcome::Changes)),
        _ => None,
    }
}

/// Says what went wrong, if it is not said yet, and exits with the status.
pub fn finish(result: CliResult, reports: Reports) -> ExitCode {
    if let Err(CliError::User(m) | CliError::Io(m)) = &result {
        // Not eprintln!: after SIGHUP the terminal is gone, and that must not panic.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "netc: {m}");
    }
    ExitCode::from(status(&result, reports))
}

/// Bad command-line use (clap's error), or `--help`/`--version` (clap's output, status 0).
pub fn usage(e: clap::Error) -> ExitCode {
    let code = if e.use_stderr() { 1 } else { 0 };
    let _ = e.print();
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_is_never_read_as_changes() {
        let io = Err(CliError::io("disk"));
        assert_eq!(status(&io, Reports::Status), 2);
        assert_eq!(status(&io, Reports::Changes), 1);
        assert_eq!(status(&Ok(Outcome::Changes), Reports::Changes), 2);
        assert_eq!(status(&Err(CliError::Reported), Reports::Status), 1);
        assert_eq!(status(&Ok(Outcome::Done), Reports::Changes), 0);
        assert_eq!(status(&Ok(Outcome::Rejected), Reports::Status), 3);
    }

    #[test]
    fn a_status_read_back_gives_the_same_status() {
        for code in 0..=255 {
            if let Some(r) = read_back(code) {
                assert_eq!(i32::from(status(&r, Reports::Changes)), code);
            }
        }
        assert!(read_back(3).is_none() && read_back(255).is_none());
        assert!(matches!(read_back(1), Some(Err(CliError::Reported))));
    }
}
