//! Reading a topology and its settings for a command, and printing diagnostics.

use std::io::IsTerminal;
use std::path::Path;

use netc::Compiled;
use netc::config::{self, Settings};
use netc::diag::Diag;
use netc::model::Host;
use netc::source::Source;

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
    match config::for_topology(file) {
        Ok(s) => Ok(s),
        Err(config::Error::Io(path, e)) => {
            Err(CliError::io(format!("cannot read {}: {e}", path.display())))
        }
        Err(config::Error::Invalid(invalid)) => {
            let (source, diag) = *invalid;
            print_diag(&source, &diag);
            Err(CliError::Reported)
        }
    }
}

/// The named host of a compiled topology, or a did-you-mean.
pub fn find_host<'a>(compiled: &'a Compiled, name: &str) -> Result<&'a Host, CliError> {
    let topology = compiled.topology.as_ref().expect("model() checked");
    topology.host(name).ok_or_else(|| {
        let names = topology.hosts.iter().map(|h| h.name.as_str());
        let hint = netc::diag::did_you_mean(name, names).unwrap_or_default();
        CliError::user(format!(
            "there is no host `{name}` in {} {hint}",
            compiled.source.name
        ))
    })
}

/// The file's name as given, without a leading `./`, so headers do not depend on spelling.
pub fn display_name(file: &Path) -> String {
    let s = file.to_string_lossy();
    s.strip_prefix("./").unwrap_or(&s).to_string()
}

/// Prints one diagnostic: coloured on a terminal, plain when piped or with NO_COLOR.
pub fn print_diag(source: &Source, d: &Diag) {
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
pub fn report(compiled: &Compiled) -> bool {
    for d in &compiled.diags {
        print_diag(&compiled.source, d);
    }
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
