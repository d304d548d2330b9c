//! The command line: clap's definitions, and each command run by its own module —
//! [`build`] (check, build), [`review`] (diff, query, graph, fmt), [`live`] (plan, apply,
//! confirm, rollback). [`load`] reads topologies and prints diagnostics, [`exit`] turns every
//! result into an exit status, [`heap`] tunes memory for the compiler's short runs.

mod build;
pub mod exit;
pub mod heap;
mod live;
mod load;
mod review;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use exit::{CliError, CliResult, Outcome, Reports};

const EXAMPLES: &str = "\
Examples:
  netc check topology/csc.csn            report every problem, write nothing
  netc build topology/csc.csn            render out/<host>/etc/... for every host
  netc build topology/csc.csn -o /tmp/o  render somewhere else
  netc build topology/csc.csn --check    exit 1 if the committed out/ is stale (for CI)
  netc build topology/csc.csn --check --format github
                                         the same in a GitHub workflow: errors annotate the PR
  netc query topology/csc.csn --host biloba --from 198.51.100.7 --port 16509
                                         would the firewall let it in, and which line decides

Exit status: 0 ok, 1 a mistake in the topology or the command line (or stale output with
--check), 2 an I/O or internal error (for diff and plan: 2 changes, 1 any error; for query:
0 accept, 3 reject).";

#[derive(Parser)]
#[command(name = "netc", version, about = "Compile a CloudStack site's network topology into each host's config files", after_help = EXAMPLES)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Parse and check a topology; print every diagnostic; write nothing.
    Check {
        /// The topology file (.csn).
        file: PathBuf,
        #[command(flatten)]
        diagnostics: DiagArgs,
    },
    /// Check a topology and render every host's files into the output directory.
    ///
    /// The output directory is replaced as a whole, atomically: on any error it is left as it was.
    Build {
        /// The topology file (.csn).
        file: PathBuf,
        /// Where to write the tree `<host>/etc/...`.
        #[arg(short, long, default_value = "out")]
        output: PathBuf,
        /// Write nothing; exit 1 and list the files that differ if the output is stale.
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        diagnostics: DiagArgs,
    },
    /// What changes between two topologies, per host: links, addresses, routes, VIPs, agent
    /// keys, and firewall access gained and lost (computed on the policy, not the text).
    ///
    /// Exit status: 0 no semantic change, 2 changes, 1 error.
    Diff {
        /// OLD NEW, or with --git just FILE.
        #[arg(num_args = 1..=2, required = true)]
        files: Vec<PathBuf>,
        /// Compare FILE with its committed version at this git revision (e.g. HEAD, main).
        #[arg(long, value_name = "REV")]
        git: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: DiffFormat,
    },
    /// Draw the topology: hosts, NICs, VLAN subinterfaces, bridges, VLANs and VIPs.
    Graph {
        /// The topology file (.csn).
        file: PathBuf,
        /// DOT text, or SVG through Graphviz's `dot` (which must be installed).
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
    },
    /// What `apply` would change on this host, without changing anything: links, bridge
    /// ports, addresses and default routes (rtnetlink), the files, the live iptables chains
    /// and agent.properties' owned keys.
    ///
    /// Exit status: 0 no change, 2 changes, 1 error (or a conflict apply would refuse).
    Plan {
        /// The topology file (.csn).
        file: PathBuf,
        /// The host to plan for (it must be in the topology).
        #[arg(long)]
        host: String,
        /// Read the host's files under this directory instead of / (for tests and reviews).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: PlanFormat,
    },
    /// Make this host match the topology: the plan, carried out step by step; if a step
    /// fails, the steps already done are undone. Run as root on the host itself.
    ///
    /// Only what netc created is ever removed (links with the alias `netc`, addresses and
    /// routes with protocol 78); libvirt's and CloudStack's links are never touched. Run
    /// again on an unchanged host, it changes nothing.
    /// Exit status: 0 applied (or nothing to do), 1 refused or failed (and rolled back),
    /// 2 changes pending (--dry-run).
    Apply {
        /// The topology file (.csn), named as for `netc build` (file headers name it).
        file: PathBuf,
        /// The host to configure: this machine.
        #[arg(long)]
        host: String,
        /// Treat this directory as / for files and state (for tests and chroots).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Only print the plan (like `netc plan`).
        #[arg(long)]
        dry_run: bool,
        /// Apply even if it cuts off the SSH session this runs in ($SSH_CONNECTION).
        #[arg(long)]
        force: bool,
        /// Apply even though this machine's hostname is not --host.
        #[arg(long)]
        force_host: bool,
        /// Undo everything after SECONDS unless `netc confirm` runs first (a detached timer,
        /// so the undo happens even if this session dies).
        #[arg(long, value_name = "SECONDS")]
        confirm: Option<u64>,
    },
    /// Keep the apply that is waiting under --confirm.
    Confirm {
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// Undo the apply that is waiting under --confirm, now.
    Rollback {
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Wait for the deadline first, and do nothing if it was confirmed (the timer).
        #[arg(long, hide = true)]
        at_deadline: bool,
    },
    /// Rewrite topology files in the canonical layout, keeping every comment.
    Fmt {
        /// The topology files (.csn).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write nothing; list the files that are not formatted and exit 1 if any (for CI).
        #[arg(long)]
        check: bool,
    },
    /// Print a shell completion script (e.g. `netc completions bash > /etc/bash_completion.d/netc`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from these very definitions.
    Man,
    /// What netc's firewall does with one packet on one host, and which line decides it.
    ///
    /// Exit status: 0 accept, 3 reject, 1 a mistake (in the topology or the command line),
    /// 2 an I/O error.
    Query {
        /// The topology file (.csn).
        file: PathBuf,
        /// The host the packet arrives at.
        #[arg(long)]
        host: String,
        /// The packet's source address.
        #[arg(long)]
        from: std::net::IpAddr,
        /// The destination port (1–65535, as in the topology language).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        /// The protocol.
        #[arg(long, value_enum, default_value = "tcp")]
        proto: Proto,
    },
}

/// How `check` and `build` show diagnostics.
#[derive(clap::Args)]
pub struct DiagArgs {
    /// text: miette's report on stderr; json: one JSON document on stdout (code, severity,
    /// file, line, column, end, message, labels, help); github: GitHub Actions annotations
    /// on stdout, shown on the pull request's lines.
    #[arg(long, value_enum, default_value = "text")]
    format: DiagFormat,
    /// Show the first N errors and the first N warnings in full, then one line counting the
    /// rest per code; 0 shows all. Default: 20 (json: all).
    #[arg(long, value_name = "N")]
    max_errors: Option<usize>,
}

impl DiagArgs {
    fn shown(&self) -> load::Shown {
        load::Shown {
            format: self.format,
            max_errors: self.max_errors,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DiagFormat {
    #[default]
    Text,
    Json,
    Github,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DiffFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Svg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Command {
    /// Whether the command's exit status 2 means "changes" (see [`exit`]): diff and the
    /// live commands, where every error is 1.
    pub fn reports(&self) -> Reports {
        match self {
            Command::Diff { .. }
            | Command::Plan { .. }
            | Command::Apply { .. }
            | Command::Confirm { .. }
            | Command::Rollback { .. } => Reports::Changes,
            _ => Reports::Status,
        }
    }

    /// Whether the command is one short compile, worth tuning the heap for.
    pub fn compiles(&self) -> bool {
        matches!(self, Command::Build { .. } | Command::Check { .. })
    }
}

pub fn run(command: Command) -> CliResult {
    match command {
        Command::Check { file, diagnostics } => build::check(&file, diagnostics.shown()),
        Command::Build {
            file,
            output,
            check,
            diagnostics,
        } => build::build(&file, &output, check, diagnostics.shown()),
        Command::Graph { file, format } => review::graph(&file, format),
        Command::Fmt { files, check } => review::fmt(&files, check),
        Command::Diff { files, git, format } => review::diff(&files, git.as_deref(), format),
        Command::Query {
            file,
            host,
            from,
            port,
            proto,
        } => review::query(&file, &host, from, port, proto),
        Command::Plan {
            file,
            host,
            root,
            format,
        } => live::plan(&live::Target::new(&file, &host, &root), format),
        Command::Apply {
            file,
            host,
            root,
            dry_run,
            force,
            force_host,
            confirm,
        } => live::apply(
            &live::Target::new(&file, &host, &root),
            &live::ApplyOptions {
                dry_run,
                force,
                force_host,
                confirm,
            },
        ),
        Command::Confirm { root } => live::confirm(&root),
        Command::Rollback { root, at_deadline } => live::rollback(&root, at_deadline),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Args::command(), "netc", &mut std::io::stdout());
            Ok(Outcome::Done)
        }
        Command::Man => clap_mangen::Man::new(Args::command())
            .render(&mut std::io::stdout())
            .map(|()| Outcome::Done)
            .map_err(|e| CliError::io(format!("cannot write the man page: {e}"))),
    }
}
