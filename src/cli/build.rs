//! `netc check` and `netc build`: compile a topology, report every problem, render every
//! host's files into the output tree (or compare them with it).

use std::path::Path;

use netc::{output, render};

use super::DiagFormat;
use super::exit::{CliError, CliResult, Outcome};
use super::load::{Shown, counts, load, report_as, settings_as, unknown_host};

pub fn check(file: &Path, shown: Shown) -> CliResult {
    let compiled = load(file)?;
    let settings = settings_as(file, shown)?;
    // netc.toml's hosts are checked against the topology here too, not only by a remote
    // plan or apply.
    let unknown = unknown_host(&compiled, &settings);
    let also = unknown.as_ref().map(|(s, d)| (s, std::slice::from_ref(d)));
    if !report_as(&compiled, shown, also) || unknown.is_some() {
        return Err(CliError::Reported);
    }
    eprintln!("{}: ok ({})", compiled.source.name, counts(&compiled));
    Ok(Outcome::Done)
}

pub fn build(file: &Path, dir: &Path, check_only: bool, shown: Shown) -> CliResult {
    let compiled = load(file)?;
    let nothing_written = || eprintln!("nothing written to {}", dir.display());
    let settings = settings_as(file, shown).inspect_err(|_| nothing_written())?;
    if !report_as(&compiled, shown, None) {
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
