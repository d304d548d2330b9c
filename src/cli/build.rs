//! `netc check` and `netc build`: compile a topology, report every problem, render every
//! host's files into the output tree (or compare them with it).

use std::path::Path;

use netc::{output, render};

use super::exit::{CliError, CliResult, Outcome};
use super::load::{counts, load, report, settings};

pub fn check(file: &Path) -> CliResult {
    let compiled = load(file)?;
    settings(file)?;
    if !report(&compiled) {
        return Err(CliError::Reported);
    }
    eprintln!("{}: ok ({})", compiled.source.name, counts(&compiled));
    Ok(Outcome::Done)
}

pub fn build(file: &Path, dir: &Path, check_only: bool) -> CliResult {
    let compiled = load(file)?;
    let nothing_written = || eprintln!("nothing written to {}", dir.display());
    let settings = settings(file).inspect_err(|_| nothing_written())?;
    if !report(&compiled) {
        nothing_written();
        return Err(CliError::Reported);
    }
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
            println!("{d}");
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
