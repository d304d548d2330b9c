//! The `netc` command line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use netc::config::{self, Settings};
use netc::diag::{Diag, Source};
use netc::{Compiled, output, render};

#[path = "cli/live.rs"]
mod live;

const EXAMPLES: &str = "\
Examples:
  netc check topology/csc.csn            report every problem, write nothing
  netc build topology/csc.csn            render out/<host>/etc/... for every host
  netc build topology/csc.csn -o /tmp/o  render somewhere else
  netc build topology/csc.csn --check    exit 1 if the committed out/ is stale (for CI)
  netc query topology/csc.csn --host biloba --from 198.51.100.7 --port 16509
                                         would the firewall let it in, and which line decides

Exit status: 0 ok, 1 a mistake in the topology or the command line (or stale output with
--check), 2 an I/O or internal error.";

#[derive(Parser)]
#[command(name = "netc", version, about = "Compile a CloudStack site's network topology into each host's config files", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and check a topology; print every diagnostic; write nothing.
    Check {
        /// The topology file (.csn).
        file: PathBuf,
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
    Query {
        /// The topology file (.csn).
        file: PathBuf,
        /// The host the packet arrives at.
        #[arg(long)]
        host: String,
        /// The packet's source address.
        #[arg(long)]
        from: std::net::IpAddr,
        /// The destination port.
        #[arg(long)]
        port: u16,
        /// The protocol.
        #[arg(long, value_enum, default_value = "tcp")]
        proto: Proto,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PlanFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DiffFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum GraphFormat {
    Dot,
    Svg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Proto {
    Tcp,
    Udp,
}

/// Exit statuses: see EXAMPLES.
const USER_ERROR: u8 = 1;
const IO_ERROR: u8 = 2;

/// netc runs for milliseconds, and at 50k sources a third of a build was the kernel handing
/// out and zeroing 4 KiB pages one fault at a time. So: grow the heap in big steps (glibc's
/// top pad; large blocks from the heap, not mmap/munmap) and ask for transparent huge pages
/// on it (`madvise`: this kernel's THP mode is "madvise"). 50k sources: 7,100 → 420 faults,
/// 59 → 44 ms, peak RSS 23 → 26 MB; csc.csn unchanged (~4 ms). bench/run measures it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_heap() {
    const PAD: usize = 32 << 20; // glibc's largest M_MMAP_THRESHOLD
    // SAFETY: glibc calls on this process's own heap, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, PAD as i32);
        libc::mallopt(libc::M_TOP_PAD, PAD as i32);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        let start = libc::sbrk(0) as usize;
        // Grow the heap now (black_box: the compiler may drop a malloc that is only freed).
        libc::free(std::hint::black_box(libc::malloc(PAD / 2)));
        let end = libc::sbrk(0) as usize;
        let huge = 2 << 20;
        let from = (start + huge - 1) & !(huge - 1);
        if end > from {
            libc::madvise(from as *mut libc::c_void, end - from, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_heap() {}

fn main() -> ExitCode {
    tune_heap();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { USER_ERROR } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Check { file } => check(&file),
        Command::Build {
            file,
            output,
            check,
        } => build(&file, &output, check),
        Command::Graph { file, format } => graph(&file, format),
        Command::Fmt { files, check } => fmt(&files, check),
        Command::Plan {
            file,
            host,
            root,
            format,
        } => live::plan(
            &live::Target {
                file: &file,
                host: &host,
                root: &root,
            },
            format,
        ),
        Command::Apply {
            file,
            host,
            root,
            dry_run,
            force,
            force_host,
            confirm,
        } => live::apply(
            &live::Target {
                file: &file,
                host: &host,
                root: &root,
            },
            &live::ApplyOptions {
                dry_run,
                force,
                force_host,
                confirm,
            },
        ),
        Command::Confirm { root } => live::confirm(&root),
        Command::Rollback { root, at_deadline } => live::rollback(&root, at_deadline),
        Command::Diff { files, git, format } => diff(&files, git.as_deref(), format),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "netc", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            use clap::CommandFactory;
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => io_error(format!("cannot write the man page: {e}")),
            }
        }
        Command::Query {
            file,
            host,
            from,
            port,
            proto,
        } => query(&file, &host, from, port, proto),
    }
}

fn check(file: &Path) -> ExitCode {
    let Some(compiled) = load(file) else {
        return ExitCode::from(IO_ERROR);
    };
    if let Err(code) = settings(file) {
        return code;
    }
    let ok = report(&compiled);
    if ok {
        eprintln!("{}: ok ({})", compiled.source.name, counts(&compiled));
        ExitCode::SUCCESS
    } else {
        ExitCode::from(USER_ERROR)
    }
}

fn build(file: &Path, dir: &Path, check_only: bool) -> ExitCode {
    let Some(compiled) = load(file) else {
        return ExitCode::from(IO_ERROR);
    };
    let settings = match settings(file) {
        Ok(s) => s,
        Err(code) => {
            eprintln!("nothing written to {}", dir.display());
            return code;
        }
    };
    if !report(&compiled) {
        eprintln!("nothing written to {}", dir.display());
        return ExitCode::from(USER_ERROR);
    }
    let topology = compiled.topology.as_ref().expect("no errors, so a model");
    let files = output::with_marker(render::tree(topology, settings.firewall.target));
    if check_only {
        return match output::compare(dir, &files) {
            Ok(diffs) if diffs.is_empty() => {
                eprintln!("{} is up to date ({} files)", dir.display(), files.len());
                ExitCode::SUCCESS
            }
            Ok(diffs) => {
                eprintln!(
                    "{} is stale; run `netc build {}`:",
                    dir.display(),
                    file.display()
                );
                for d in diffs {
                    println!("{d}");
                }
                ExitCode::from(USER_ERROR)
            }
            Err(e) => io_error(e),
        };
    }
    match output::write(dir, &files) {
        Ok(()) => {
            eprintln!(
                "wrote {} files for {} hosts to {}",
                files.len() - 1,
                topology.hosts.len(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => io_error(e),
    }
}

fn fmt(files: &[PathBuf], check_only: bool) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for file in files {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => return io_error(format!("cannot read {}: {e}", file.display())),
        };
        let Ok(text) = String::from_utf8(bytes.clone()) else {
            // Not text: the compiler's own diagnostic says where (netc::not-utf8).
            report(&netc::compile(&display_name(file), &bytes));
            status = ExitCode::from(USER_ERROR);
            continue;
        };
        let formatted = match netc::fmt::format(&text) {
            Ok(f) => f,
            Err(d) => {
                print_diag(&Source::new(display_name(file), text.as_str()), &d);
                status = ExitCode::from(USER_ERROR);
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        if check_only {
            println!("{}", file.display());
            status = ExitCode::from(USER_ERROR);
            continue;
        }
        // Atomic, keeping the file's mode and owner; no backup beside a file under review.
        if let Err(e) =
            netc::install::install(file, formatted.as_bytes(), netc::install::Backup::Skip)
        {
            return io_error(format!("cannot rewrite {}: {e}", file.display()));
        }
        eprintln!("formatted {}", file.display());
    }
    status
}

/// Exit status of `diff` when there are changes (like `diff(1)` uses 1, but 1 is our error).
const CHANGES: u8 = 2;

fn diff(files: &[PathBuf], git: Option<&str>, format: DiffFormat) -> ExitCode {
    let (old, new) = match (git, files) {
        (Some(rev), [file]) => {
            let out = std::process::Command::new("git")
                .args(["show", &format!("{rev}:./{}", file.display())])
                .output();
            let bytes = match out {
                Ok(o) if o.status.success() => o.stdout,
                Ok(o) => {
                    eprintln!(
                        "netc: git show {rev}:{}: {}",
                        file.display(),
                        String::from_utf8_lossy(&o.stderr).trim()
                    );
                    return ExitCode::from(USER_ERROR);
                }
                Err(e) => return error_1(format!("cannot run git: {e}")),
            };
            let old = netc::compile(&format!("{}@{rev}", display_name(file)), &bytes);
            let Some(new) = load(file) else {
                return ExitCode::from(USER_ERROR);
            };
            (old, new)
        }
        (None, [old, new]) => {
            let (Some(old), Some(new)) = (load(old), load(new)) else {
                return ExitCode::from(USER_ERROR);
            };
            (old, new)
        }
        (Some(_), _) => {
            eprintln!("netc: with --git give one FILE (its committed version is the old one)");
            return ExitCode::from(USER_ERROR);
        }
        (None, _) => {
            eprintln!("netc: give OLD and NEW topology files, or --git REV FILE");
            return ExitCode::from(USER_ERROR);
        }
    };
    let (Some(o), Some(n)) = (old.topology.as_ref(), new.topology.as_ref()) else {
        report(&old);
        report(&new);
        return ExitCode::from(USER_ERROR);
    };
    let d = netc::diff::diff(o, n);
    let text = match format {
        DiffFormat::Text => netc::diff::text(&d),
        DiffFormat::Markdown => netc::diff::markdown(&d),
        DiffFormat::Json => serde_json::to_string_pretty(&d).expect("plain data") + "\n",
    };
    print!("{text}");
    if d.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CHANGES)
    }
}

fn graph(file: &Path, format: GraphFormat) -> ExitCode {
    use std::io::Write;
    let compiled = match model(file, IO_ERROR) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let topology = compiled.topology.as_ref().expect("model() checked");
    let dot = netc::graph::dot(topology);
    let bytes = match format {
        GraphFormat::Dot => dot.into_bytes(),
        GraphFormat::Svg => match svg(&dot) {
            Ok(svg) => svg,
            Err(e) => return io_error(e),
        },
    };
    match std::io::stdout().write_all(&bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => io_error(format!("cannot write the graph: {e}")),
    }
}

/// DOT → SVG through Graphviz's `dot`.
fn svg(dot: &str) -> Result<Vec<u8>, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run Graphviz's `dot` ({e}); install graphviz, or use --format dot")
        })?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(dot.as_bytes())
        .map_err(|e| format!("cannot feed `dot`: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`dot` failed: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`dot` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

fn query(file: &Path, host: &str, from: std::net::IpAddr, port: u16, proto: Proto) -> ExitCode {
    use netc::query::{Outcome, Verdict};
    let compiled = match model(file, IO_ERROR) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let topology = compiled.topology.as_ref().expect("model() checked");
    if let Err(code) = find_host(&compiled, host) {
        return code;
    }
    let protocol = match proto {
        Proto::Tcp => netc::model::Protocol::Tcp,
        Proto::Udp => netc::model::Protocol::Udp,
    };
    let trace = netc::query::query(topology, host, from, protocol, port);
    let verdict = match trace.verdict {
        Verdict::Accept => "accept (returned to INPUT untouched)",
        Verdict::Reject => "reject",
    };
    let name = &compiled.source.name;
    println!(
        "{host}: {} {port} from {from}: {verdict}",
        protocol.keyword()
    );
    for step in &trace.steps {
        let what = match &step.outcome {
            Outcome::Allowed { source, line } => {
                format!("RETURN: {source} is allowed ({name}:{line})")
            }
            Outcome::Rejected { line } => {
                format!("REJECT: no allowed source matches; the port is listed ({name}:{line})")
            }
            Outcome::NotProtected => "no rule matches: back to INPUT".to_string(),
        };
        println!("  {:<24} {what}", step.chain);
    }
    if trace.steps.is_empty() {
        println!("  no netc chain on {host}");
    }
    ExitCode::SUCCESS
}

/// For `diff` and `plan`, whose exit status 2 means "changes": every error is 1.
fn error_1(e: impl std::fmt::Display) -> ExitCode {
    io_error(e);
    ExitCode::from(USER_ERROR)
}

fn io_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("netc: {e}");
    ExitCode::from(IO_ERROR)
}

/// The build settings for `file` (its folder's netc.toml); on failure, a message and the
/// exit status.
fn settings(file: &Path) -> Result<Settings, ExitCode> {
    match config::for_topology(file) {
        Ok(s) => Ok(s),
        Err(config::Error::Io(path, e)) => {
            Err(io_error(format!("cannot read {}: {e}", path.display())))
        }
        Err(config::Error::Invalid(invalid)) => {
            let (source, diag) = *invalid;
            print_diag(&source, &diag);
            Err(ExitCode::from(USER_ERROR))
        }
    }
}

/// Reads and compiles `file`; `None` (after a message) if it cannot be read.
fn load(file: &Path) -> Option<Compiled> {
    match std::fs::read(file) {
        Ok(bytes) => Some(netc::compile(&display_name(file), &bytes)),
        Err(e) => {
            io_error(format!("cannot read {}: {e}", file.display()));
            None
        }
    }
}

/// A topology that compiled without errors, or the exit status after saying why: the file's
/// diagnostics (1), or that it cannot be read (`unreadable`: 2, or 1 where 2 means changes).
fn model(file: &Path, unreadable: u8) -> Result<Compiled, ExitCode> {
    let compiled = load(file).ok_or(ExitCode::from(unreadable))?;
    if compiled.topology.is_none() {
        report(&compiled);
        return Err(ExitCode::from(USER_ERROR));
    }
    Ok(compiled)
}

/// The named host of a compiled topology, or exit 1 with a did-you-mean.
fn find_host<'a>(compiled: &'a Compiled, name: &str) -> Result<&'a netc::model::Host, ExitCode> {
    let topology = compiled.topology.as_ref().expect("model() checked");
    topology.host(name).ok_or_else(|| {
        let names = topology.hosts.iter().map(|h| h.name.as_str());
        let hint = netc::diag::did_you_mean(name, names).unwrap_or_default();
        eprintln!(
            "netc: there is no host `{name}` in {} {hint}",
            compiled.source.name
        );
        ExitCode::from(USER_ERROR)
    })
}

/// The file's name as given, without a leading `./`, so headers do not depend on spelling.
fn display_name(file: &Path) -> String {
    let s = file.to_string_lossy();
    s.strip_prefix("./").unwrap_or(&s).to_string()
}

/// Prints one diagnostic: coloured on a terminal, plain when piped or with NO_COLOR.
fn print_diag(source: &Source, d: &Diag) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme);
    let mut text = String::new();
    if handler.render_report(&mut text, &source.report(d)).is_err() {
        text = format!("{}: {}", d.code, d.message);
    }
    eprintln!("{text}");
}

/// Prints every diagnostic; true if there were no errors.
fn report(compiled: &Compiled) -> bool {
    for d in &compiled.diags {
        print_diag(&compiled.source, d);
    }
    let errors = compiled.errors();
    if errors > 0 {
        eprintln!("{}: {}", compiled.source.name, counts(compiled));
    }
    errors == 0
}

fn counts(c: &Compiled) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}",
        plural(c.errors(), "error"),
        plural(c.warnings(), "warning")
    )
}
