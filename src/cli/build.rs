//! `netc check` and `netc build`: compile a topology, report every problem, render every
//! host's files into the output tree (or compare them with it).

use std::path::Path;

use netc::config::Settings;
use netc::{Compiled, output, render};

use super::DiagFormat;
use super::exit::{CliError, CliResult, Outcome};
use super::load::{Shown, counts, load, report_as, settings_as, unknown_host};

pub fn check(file: &Path, shown: Shown) -> CliResult {
    let (compiled, _) = checked(file, shown)?;
    eprintln!("{}: ok ({})", compiled.source.name, counts(&compiled));
    Ok(Outcome::Done)
}

/// The topology and its settings, every problem of both reported in one report: netc.toml's
/// hosts are checked against the topology here too, not only by a remote plan or apply.
fn checked(file: &Path, shown: Shown) -> Result<(Compiled, Settings), CliError> {
    let compiled = load(file)?;
    let settings = settings_as(file, shown)?;
    let unknown = unknown_host(&compiled, &settings);
    let also = unknown.as_ref().map(|(s, d)| (s, std::slice::from_ref(d)));
    if !report_as(&compiled, shown, also) || unknown.is_some() {
        return Err(CliError::Reported);
    }
    Ok((compiled, settings))
}

pub fn build(file: &Path, dir: &Path, check_only: bool, shown: Shown) -> CliResult {
    let nothing_written = || eprintln!("nothing written to {}", dir.display());
    let (compiled, settings) = checked(file, shown).inspect_err(|_| nothing_written())?;
    let topology = compiled.topology.as_ref().expect("no errors, so a model");
    let files = output::with_marker(render::tree(topology, settings.firewall.target));
    if check_only {
        let diffs = output::compare(dir, &files).map_err(CliError::io)?;
        if diffs.is_empty() {
            eprintln!("{} is up to date ({} files)", dir.display(), files.len());
            return Ok(Outcome::Done);
        }
        eprintln!(
            "{} is stale; run `netc build {}`:",
            dir.display(),
            file.display()
        );
        for d in diffs {
            // stdout holds the JSON document with --format json: the list goes beside it.
            match shown.format {
                DiagFormat::Json => eprintln!("{d}"),
                _ => println!("{d}"),
            }
        }
        return Err(CliError::Reported);
    }
    output::write(dir, &files).map_err(CliError::io)?;
    eprintln!(
        "wrote {} files for {} hosts to {}",
        files.len() - 1,
        topology.hosts.len(),
        dir.display()
    );
    Ok(Outcome::Done)
}
