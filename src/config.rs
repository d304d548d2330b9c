//! Build settings from an optional `netc.toml` beside the topology file.
//!
//! ```toml
//! [firewall]
//! target = "iptables"   # "iptables" (default), "nftables" or "both"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::diag::{Code, Diag};
use crate::source::{Source, Span};

pub const FILE_NAME: &str = "netc.toml";

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub firewall: Firewall,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    #[serde(default)]
    pub target: Target,
}

/// Which firewall files a build renders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// netc.v4 / netc.v6 for iptables-restore --noflush (netc-firewall.service).
    #[default]
    Iptables,
    /// nftables.d/netc.nft: one owned `inet netc` table.
    Nftables,
    Both,
}

impl Target {
    pub fn iptables(self) -> bool {
        matches!(self, Target::Iptables | Target::Both)
    }
    pub fn nftables(self) -> bool {
        matches!(self, Target::Nftables | Target::Both)
    }
}

/// Why settings could not be loaded.
#[derive(Debug)]
pub enum Error {
    /// The file exists but cannot be read (an I/O error).
    Io(PathBuf, std::io::Error),
    /// The file is not valid: a diagnostic in that file.
    Invalid(Box<(Source, Diag)>),
}

/// The settings for the topology at `topology`: `netc.toml` in the same folder, if any.
pub fn for_topology(topology: &Path) -> Result<Settings, Error> {
    let folder = topology
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let path = folder.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&path.to_string_lossy(), &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(e) => Err(Error::Io(path, e)),
    }
}

/// Parses settings text; `name` is the file's name in diagnostics.
pub fn parse(name: &str, text: &str) -> Result<Settings, Error> {
    toml::from_str(text).map_err(|e| {
        let span = e.span().map(|r| Span::new(r.start, r.end)).unwrap_or_default();
        let d = Diag::new(Code::BadConfig, format!("{name}: {}", e.message()))
            .label(span, "here")
            .help("netc.toml has one table, `[firewall]`, with `target = \"iptables\" | \"nftables\" | \"both\"`");
        Error::Invalid(Box::new((Source::new(name, text), d)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_iptables() {
        assert_eq!(
            parse("netc.toml", "").unwrap().firewall.target,
            Target::Iptables
        );
        let s = parse("netc.toml", "[firewall]\ntarget = \"both\"\n").unwrap();
        assert!(s.firewall.target.iptables() && s.firewall.target.nftables());
    }

    #[test]
    fn mistakes_are_positioned() {
        let Err(Error::Invalid(e)) = parse("netc.toml", "[firewall]\ntarget = \"pf\"\n") else {
            panic!()
        };
        let d = &e.1;
        assert_eq!(d.code, Code::BadConfig);
        assert_eq!(d.span(), Span::new(20, 24));
        let Err(Error::Invalid(e)) = parse("netc.toml", "[firewal]\n") else {
            panic!()
        };
        let d = &e.1;
        assert_eq!(d.span(), Span::new(1, 8));
    }
}
