//! The review commands: `diff`, `query`, `graph` and `fmt`. They read topologies; only `fmt`
//! writes, and only the topology files it is given.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use netc::review::{diff as semantic, graph as picture, query as packet};
use netc::source::Source;
use netc::tool::{Tool, ToolError};

use super::exit::{CliError, CliResult, Outcome};
use super::load::{display_name, find_host, load, model, print_diag, report};
use super::{DiffFormat, GraphFormat, Proto};

pub fn diff(files: &[PathBuf], git: Option<&str>, format: DiffFormat) -> CliResult {
    let (old, new) = match (git, files) {
        (Some(rev), [file]) => {
            let spec = format!("{rev}:./{}", file.display());
            let bytes = Tool::new("git")
                .args(["show", &spec])
                .run()
                .map_err(|e| match e {
                    ToolError::Failed { stderr, .. } => CliError::user(format!(
                        "git show {rev}:{}: {}",
                        file.display(),
                        stderr.trim()
                    )),
                    other => CliError::user(other),
                })?;
            let old = netc::compile(&format!("{}@{rev}", display_name(file)), &bytes);
            (old, load(file)?)
        }
        (None, [old, new]) => (load(old)?, load(new)?),
        (Some(_), _) => {
            return Err(CliError::user(
                "with --git give one FILE (its committed version is the old one)",
            ));
        }
        (None, _) => {
            return Err(CliError::user(
                "give OLD and NEW topology files, or --git REV FILE",
            ));
        }
    };
    let (Some(o), Some(n)) = (old.topology.as_ref(), new.topology.as_ref()) else {
        report(&old);
        report(&new);
        return Err(CliError::Reported);
    };
    let d = semantic::diff(o, n);
    let text = match format {
        DiffFormat::Text => semantic::text(&d),
        DiffFormat::Markdown => semantic::markdown(&d),
        DiffFormat::Json => serde_json::to_string_pretty(&d).expect("plain data") + "\n",
    };
    print!("{text}");
    Ok(if d.is_empty() {
        Outcome::Done
    } else {
        Outcome::Changes
    })
}

pub fn graph(file: &Path, format: GraphFormat) -> CliResult {
    let compiled = model(file)?;
    let topology = compiled.topology.as_ref().expect("model() checked");
    let dot = picture::dot(topology);
    let bytes = match format {
        GraphFormat::Dot => dot.into_bytes(),
        GraphFormat::Svg => {
            Tool::new("dot")
                .arg("-Tsvg")
                .input(dot)
                .run()
                .map_err(|e| match e {
                    ToolError::Missing { .. } => CliError::io(
                        "cannot run Graphviz's `dot`; install graphviz, or use --format dot",
                    ),
                    other => CliError::io(other),
                })?
        }
    };
    std::io::stdout()
        .write_all(&bytes)
        .map_err(|e| CliError::io(format!("cannot write the graph: {e}")))?;
    Ok(Outcome::Done)
}

pub fn query(file: &Path, host: &str, from: IpAddr, port: u16, proto: Proto) -> CliResult {
    use packet::{Step, Verdict};
    let compiled = model(file)?;
    let topology = compiled.topology.as_ref().expect("model() checked");
    find_host(&compiled, host)?;
    let protocol = match proto {
        Proto::Tcp => netc::model::Protocol::Tcp,
        Proto::Udp => netc::model::Protocol::Udp,
    };
    let trace = packet::query(topology, host, from, protocol, port);
    let verdict = match trace.verdict {
        Verdict::Accept => "accept (returned to INPUT untouched)",
        Verdict::Reject => "reject",
    };
    let name = &compiled.source.name;
    println!(
        "{host}: {} {port} from {from}: {verdict}",
        protocol.keyword()
    );
    for Step { chain, outcome } in &trace.steps {
        let what = match outcome {
            packet::Outcome::Allowed { source, line } => {
                format!("RETURN: {source} is allowed ({name}:{line})")
            }
            packet::Outcome::Rejected { line } => {
                format!("REJECT: no allowed source matches; the port is listed ({name}:{line})")
            }
            packet::Outcome::NotProtected => "no rule matches: back to INPUT".to_string(),
        };
        println!("  {chain:<24} {what}");
    }
    if trace.steps.is_empty() {
        println!("  no netc chain on {host}");
    }
    Ok(match trace.verdict {
        Verdict::Accept => Outcome::Done,
        Verdict::Reject => Outcome::Rejected,
    })
}

pub fn fmt(files: &[PathBuf], check_only: bool) -> CliResult {
    let mut result = Ok(Outcome::Done);
    for file in files {
        let bytes = std::fs::read(file)
            .map_err(|e| CliError::io(format!("cannot read {}: {e}", file.display())))?;
        let Ok(text) = String::from_utf8(bytes.clone()) else {
            // Not text: the compiler's own diagnostic says where (netc::not-utf8).
            report(&netc::compile(&display_name(file), &bytes));
            result = Err(CliError::Reported);
            continue;
        };
        let formatted = match netc::syntax::layout::format(&text) {
            Ok(f) => f,
            Err(d) => {
                print_diag(&Source::new(display_name(file), text.as_str()), &d);
                result = Err(CliError::Reported);
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        if check_only {
            println!("{}", file.display());
            result = Err(CliError::Reported);
            continue;
        }
        // Atomic, keeping the file's mode and owner; no backup beside a file under review.
        use netc::live::install::{Backup, install};
        install(file, formatted.as_bytes(), Backup::Skip)
            .map_err(|e| CliError::io(format!("cannot rewrite {}: {e}", file.display())))?;
        eprintln!("formatted {}", file.display());
    }
    result
}
