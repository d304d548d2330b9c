//! Reading a topology and its settings for a command, and printing diagnostics.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;

use netc::Compiled;
use netc::config::{self, Settings};
use netc::diag::Diag;
use netc::model::Host;
use netc::report::{DEFAULT_LIMIT, Format, Report};
use netc::source::Source;

use super::DiagFormat;
use super::exit::CliError;

/// Reads and compiles `file` (diagnostics are not printed yet).
pub fn load(file: &Path) -> Result<Compiled, CliError> {
    match std::fs::read(file) {
        Ok(bytes) => Ok(netc::compile(&display_name(file), &bytes)),
        Err(e) => Err(CliError::io(format!("cannot read {}: {e}", file.display()))),
    }
}

/// A topology that compiled without errors; otherwise its diagnostics, printed.
pub fn model(file: &Path) -> Result<Compiled, CliError> {
    let compiled = load(file)?;
    if compiled.topology.is_none() {
        report(&compiled);
        return Err(CliError::Reported);
    }
    Ok(compiled)
}

/// The build settings for `file` (its folder's netc.toml).
pub fn settings(file: &Path) -> Result<Settings, CliError> {
    settings_as(file, Shown::default())
}

/// The build settings for `file`; a mistake in them shown as `shown` says.
pub fn settings_as(file: &Path, shown: Shown) -> Result<Settings, CliError> {
    match config::for_topology(file) {
        Ok(s) => Ok(s),
        Err(config::Error::Io(path, e)) => {
            Err(CliError::io(format!("cannot read {}: {e}", path.display())))
        }
        Err(config::Error::Invalid(invalid)) => {
            let (source, diag) = *invalid;
            show(shown, &[(&source, std::slice::from_ref(&diag))]);
            Err(CliError::Reported)
        }
    }
}

/// The named host of a compiled topology, or a did-you-mean (the hosts, if none is close).
pub fn find_host<'a>(compiled: &'a Compiled, name: &str) -> Result<&'a Host, CliError> {
    let topology = compiled.topology.as_ref().expect("model() checked");
    topology.host(name).ok_or_else(|| {
        let names: Vec<&str> = topology.hosts.iter().map(|h| h.name.as_str()).collect();
        let hint = netc::diag::did_you_mean(name, names.iter().copied()).unwrap_or_else(|| {
            let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!("its hosts: {}", list.join(", "))
        });
        CliError::user(format!(
            "there is no host `{name}` in {}; {hint}",
            compiled.source.name
        ))
    })
}

/// The file's name as given, without a leading `./`, so headers do not depend on spelling.
pub fn display_name(file: &Path) -> String {
    let s = file.to_string_lossy();
    s.strip_prefix("./").unwrap_or(&s).to_string()
}

/// How diagnostics are shown: `check` and `build` take `--format` and `--max-errors`;
/// every other command shows text with the default limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shown {
    pub format: DiagFormat,
    /// `--max-errors`: 0 shows all; unset, [`DEFAULT_LIMIT`] (JSON: all).
    pub max_errors: Option<usize>,
}

/// Shows the diagnostics of some sources as one report: text on stderr (coloured on a
/// terminal, plain when piped or with NO_COLOR); JSON or GitHub annotations on stdout.
pub fn show(shown: Shown, parts: &[(&Source, &[Diag])]) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (format, default_limit) = match shown.format {
        DiagFormat::Text => (Format::Text { color }, DEFAULT_LIMIT),
        DiagFormat::Json => (Format::Json, 0),
        DiagFormat::Github => (Format::Github, DEFAULT_LIMIT),
    };
    let limit = shown.max_errors.unwrap_or(default_limit);
    let out: Box<dyn Write> = match format {
        Format::Text { .. } => Box::new(std::io::stderr().lock()),
        _ => Box::new(std::io::stdout().lock()),
    };
    let mut report = Report::new(BufWriter::new(out), format, limit);
    let written = parts
        .iter()
        .try_for_each(|(source, diags)| report.add(source, diags));
    // A closed pipe is the reader's choice; there is nobody left to tell.
    let _ = written.and_then(|()| report.finish().map(drop));
}

/// Prints one diagnostic (in text).
pub fn print_diag(source: &Source, d: &Diag) {
    show(Shown::default(), &[(source, std::slice::from_ref(d))]);
}

/// Prints every diagnostic; true if there were no errors.
pub fn report(compiled: &Compiled) -> bool {
    report_as(compiled, Shown::default())
}

/// Prints every diagnostic as `shown` says, then the counts (on stderr); true if there
/// were no errors.
pub fn report_as(compiled: &Compiled, shown: Shown) -> bool {
    show(shown, &[(&compiled.source, &compiled.diags)]);
    let errors = compiled.errors();
    if errors > 0 {
        eprintln!("{}: {}", compiled.source.name, counts(compiled));
    }
    errors == 0
}

pub fn counts(c: &Compiled) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}",
        plural(c.errors(), "error"),
        plural(c.warnings(), "warning")
    )
}
