//! The command line: clap's definitions, and each command run by its own module —
//! [`build`] (check, build), [`review`] (diff, query, graph, fmt), [`live`] (plan and apply on
//! this host), [`recover`] (confirm, rollback, and an apply that has not ended), [`remote`]
//! (plan and apply on another host over [`ssh`]), [`site`] (`--all`: every host, in a safe
//! order), [`inventory`] (for Ansible). [`load`] reads topologies and prints diagnostics,
//! [`exit`] turns every result into an exit status, [`heap`] tunes memory for the compiler's
//! short runs.

mod build;
pub mod exit;
pub mod heap;
mod inventory;
mod live;
mod load;
mod recover;
mod remote;
mod review;
mod site;
mod ssh;

use std::path::{Path, PathBuf};

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
    /// What `apply` would change on a host, without changing anything: links, bridge
    /// ports, addresses and default routes (rtnetlink), the files, the live iptables chains
    /// and agent.properties' owned keys.
    ///
    /// On the host itself (its hostname is HOST, or --local, or --root) it reads this
    /// machine; elsewhere it runs the same netc on HOST over ssh (see netc.toml's [ssh] and
    /// [hosts.NAME]). --all: every host, one table.
    ///
    /// Exit status: 0 no change, 2 changes, 1 error (or a conflict apply would refuse).
    Plan {
        #[command(flatten)]
        on: HostArgs,
        #[arg(long, value_enum, default_value = "text")]
        format: PlanFormat,
    },
    /// Make a host match the topology: the plan, carried out step by step; if a step fails,
    /// the steps already done are undone.
    ///
    /// On the host itself (its hostname is HOST, or --local, --root or --force-host) it
    /// changes this machine, as root. Elsewhere it reaches HOST over ssh: checks that HOST
    /// runs this netc version, plans, applies under HOST's rollback timer (--confirm,
    /// default 60 s) and confirms over a new connection, so that a change that cuts the way
    /// in is undone. --all: every host with changes, in a safe order, stopping at the first
    /// failure.
    ///
    /// Only what netc created is ever removed (links with the alias `netc`, addresses and
    /// routes with protocol 78); libvirt's and CloudStack's links are never touched. Run
    /// again on an unchanged host, it changes nothing.
    /// Exit status: 0 applied (or nothing to do), 1 refused or failed (and rolled back),
    /// 2 changes pending (--dry-run).
    Apply {
        #[command(flatten)]
        on: HostArgs,
        /// Only print the plan (like `netc plan`).
        #[arg(long, conflicts_with = "all")]
        dry_run: bool,
        /// Apply even if it cuts off the SSH session this runs in ($SSH_CONNECTION).
        #[arg(long)]
        force: bool,
        /// Apply here even though this machine's hostname is not --host (implies --local).
        #[arg(long, conflicts_with = "all")]
        force_host: bool,
        /// Undo everything after SECONDS (1 to 86400) unless `netc confirm` runs first (a
        /// detached timer, armed before the first change, so the undo happens even if this
        /// session dies).
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
        confirm: Option<u64>,
    },
    /// An Ansible inventory (JSON, for the `yaml` inventory plugin) of the topology's hosts,
    /// in rollout order, with groups per VIP wave: see contrib/ansible/.
    Inventory {
        /// The topology file (.csn).
        file: PathBuf,
    },
    /// Keep the apply that is waiting under --confirm.
    Confirm {
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// Undo, now, the apply that is waiting under --confirm or was interrupted: carefully,
    /// leaving (and listing) what changed since.
    Rollback {
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Wait for the deadline first, and do nothing if it was confirmed (the timer).
        #[arg(long, hide = true)]
        at_deadline: bool,
        /// The apply the timer is for (its journal's id).
        #[arg(long, hide = true, requires = "at_deadline")]
        id: Option<String>,
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

/// The host `plan` and `apply` act on, and where they run.
#[derive(clap::Args)]
pub struct HostArgs {
    /// The topology file (.csn).
    file: PathBuf,
    /// The host (it must be in the topology).
    #[arg(long, required_unless_present = "all")]
    host: Option<String>,
    /// Every host of the topology, over ssh: plan prints one table of pending changes and
    /// drift; apply changes every host with changes, VIP backups before their master, and
    /// stops at the first failure.
    #[arg(long, conflicts_with_all = ["host", "local", "root", "stdin"])]
    all: bool,
    /// With --all: how many hosts to plan or change at a time (still in order, still
    /// stopping at the first failure).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    parallel: u16,
    /// Act on this machine even though its hostname is not HOST (no ssh).
    #[arg(long)]
    local: bool,
    /// Treat this directory as / for the host's files and state (tests, reviews, chroots;
    /// implies --local).
    #[arg(long)]
    root: Option<PathBuf>,
    /// The topology and netc.toml come on stdin from a remote netc; FILE is their name.
    #[arg(long, hide = true)]
    stdin: bool,
}

impl HostArgs {
    /// The one host to act on and where, or None for --all. `here`: act on this machine
    /// whatever its name (apply --force-host); so do --local and --root.
    fn place(&self, here: bool) -> Option<(live::Target<'_>, Place)> {
        let host = self.host.as_deref().filter(|_| !self.all)?;
        let here = here || self.local || self.root.is_some();
        let root = self.root.as_deref().unwrap_or(Path::new("/"));
        let place = if self.stdin {
            Place::Received
        } else if here || remote::hostname() == host {
            Place::Here
        } else {
            Place::Ssh
        };
        Some((live::Target::new(&self.file, host, root), place))
    }
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

/// `netc plan`: here, for a remote netc (`--stdin`), over ssh, or for every host.
fn plan(on: &HostArgs, format: PlanFormat) -> CliResult {
    let Some((target, place)) = on.place(false) else {
        return site::plan(&on.file, format, on.parallel.into());
    };
    match place {
        Place::Here => live::plan(&target, format),
        Place::Received => remote::serve(target.file, |r| {
            remote::is_host(target.host)?;
            live::plan(
                &live::Target {
                    received: Some(r),
                    ..target
                },
                format,
            )
        }),
        Place::Ssh => remote::plan(target.file, target.host, format),
    }
}

/// `netc apply`: here, for a remote netc (`--stdin`), over ssh, or for every host.
fn apply(on: &HostArgs, options: &live::ApplyOptions) -> CliResult {
    let confirm = options.confirm.unwrap_or(remote::DEFAULT_CONFIRM);
    let Some((target, place)) = on.place(options.force_host) else {
        let rollout = site::Rollout {
            confirm,
            force: options.force,
            parallel: on.parallel.into(),
        };
        return site::apply(&on.file, &rollout);
    };
    match place {
        Place::Here => live::apply(&target, options),
        Place::Received => remote::serve(target.file, |r| {
            live::apply(
                &live::Target {
                    received: Some(r),
                    ..target
                },
                options,
            )
        }),
        Place::Ssh if options.dry_run => remote::plan(target.file, target.host, PlanFormat::Text),
        Place::Ssh => remote::apply(
            target.file,
            target.host,
            &remote::RemoteApply {
                confirm,
                force: options.force,
            },
        ),
    }
}

/// Where a plan or apply for a host runs.
enum Place {
    /// On this machine: it is the host, or was told to act as it.
    Here,
    /// On this machine, for a remote netc that sent the topology on stdin.
    Received,
    /// On the host, over ssh.
    Ssh,
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
        Command::Plan { on, format } => plan(&on, format),
        Command::Apply {
            on,
            dry_run,
            force,
            force_host,
            confirm,
        } => apply(
            &on,
            &live::ApplyOptions {
                dry_run,
                force,
                force_host,
                confirm,
            },
        ),
        Command::Inventory { file } => inventory::print(&file),
        Command::Confirm { root } => recover::confirm(&root),
        Command::Rollback {
            root,
            at_deadline,
            id,
        } => {
            let timer = at_deadline.then(|| id.unwrap_or_default());
            recover::rollback(&root, timer.as_deref())
        }
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
