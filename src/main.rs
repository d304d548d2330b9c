//! The `netc` command: read the arguments, run the command, exit with its status.
//!
//! Everything else is in `cli/` (one module per group of commands) and the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Args::try_parse() {
        Ok(args) => args,
        Err(e) => return cli::exit::usage(e),
    };
    if args.command.compiles() {
        cli::heap::tune();
    }
    let reports = args.command.reports();
    cli::exit::finish(cli::run(args.command), reports)
}
