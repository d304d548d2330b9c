//! Settings from an optional `netc.toml` beside the topology file: how to build, and how
//! the admin's machine reaches each host for `plan`/`apply --host` over SSH.
//!
//! ```toml
//! [firewall]
//! target = "iptables"   # "iptables" (default), "nftables" or "both"
//!
//! [ssh]                 # optional
//! command = ["ssh", "-F", "/etc/netc/ssh_config"]   # the client and options (default ["ssh"])
//! netc = "sudo netc"    # the netc command on the hosts, as shell words (default "netc")
//!
//! [hosts.chamomile]     # optional, per host
//! ssh = "root@chamomile.example"   # the destination (default: the host's name)
//! netc = "/usr/local/bin/netc"
//! root = "/srv/chamomile"          # treat this folder as the host's / (tests, chroots)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Code, Diag};
use crate::source::{Source, Span};

pub const FILE_NAME: &str = "netc.toml";

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub firewall: Firewall,
    #[serde(default)]
    pub ssh: Ssh,
    /// Per host, by the host's name in the topology.
    #[serde(default)]
    pub hosts: BTreeMap<Spanned<String>, HostSettings>,
    /// The file's name and text, when there is a file (a remote plan or apply sends it).
    #[serde(skip)]
    pub origin: Option<Origin>,
}

/// Where settings came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub name: String,
    pub text: String,
}

/// How every host is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ssh {
    /// The ssh client and its options, before the destination.
    pub command: Option<Spanned<Vec<String>>>,
    /// The netc command on the hosts, as shell words.
    pub netc: Option<Spanned<String>>,
}

/// One host's own ways.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSettings {
    /// The ssh destination (`[user@]name`), if not the host's name.
    pub ssh: Option<Spanned<String>>,
    pub netc: Option<Spanned<String>>,
    /// An absolute path on the host to treat as its `/` (tests, chroots).
    pub root: Option<Spanned<String>>,
}

impl Settings {
    /// The settings of `host` (all defaults if netc.toml does not name it).
    pub fn host(&self, host: &str) -> Option<&HostSettings> {
        self.hosts.get(&Spanned::new(0..0, host.to_string()))
    }

    /// A `[hosts.NAME]` table whose NAME is not one of `hosts`, as a diagnostic.
    pub fn unknown_host<'a>(&self, hosts: impl Iterator<Item = &'a str> + Clone) -> Option<Diag> {
        let (name, _) = self
            .hosts
            .iter()
            .find(|(name, _)| !hosts.clone().any(|h| h == name.get_ref()))?;
        let span = Span::new(name.span().start, name.span().end);
        let hint = crate::diag::did_you_mean(name.get_ref(), hosts)
            .unwrap_or_else(|| "each [hosts.NAME] names a host of the topology".to_string());
        Some(
            Diag::new(
                Code::UnknownHost,
                format!(
                    "netc.toml names host `{}`, which the topology does not have",
                    name.get_ref()
                ),
            )
            .label(span, "no such host")
            .help(hint),
        )
    }
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

const HELP: &str = "netc.toml has the tables `[firewall]` (`target = \"iptables\" | \"nftables\" | \"both\"`), `[ssh]` (`command = [\"ssh\", ...]`, `netc = \"netc\"`) and `[hosts.NAME]` (`ssh = \"user@address\"`, `netc`, `root`)";

/// Parses settings text; `name` is the file's name in diagnostics.
pub fn parse(name: &str, text: &str) -> Result<Settings, Error> {
    let invalid = |span: std::ops::Range<usize>, message: &str, help: &str| {
        let d = Diag::new(Code::BadConfig, format!("{name}: {message}"))
            .label(Span::new(span.start, span.end), "here")
            .help(help);
        Error::Invalid(Box::new((Source::new(name, text), d)))
    };
    let mut settings: Settings = toml::from_str(text)
        .map_err(|e| invalid(e.span().unwrap_or_default(), e.message(), HELP))?;
    if let Some((span, message, help)) = settings.mistake() {
        return Err(invalid(span, message, help));
    }
    settings.origin = Some(Origin {
        name: name.to_string(),
        text: text.to_string(),
    });
    Ok(settings)
}

impl Settings {
    /// Values TOML accepts but netc cannot use: (span, message, help).
    fn mistake(&self) -> Option<(std::ops::Range<usize>, &'static str, &'static str)> {
        let empty = |c: &&Spanned<Vec<String>>| c.get_ref().first().is_none_or(|p| p.is_empty());
        if let Some(c) = self.ssh.command.as_ref().filter(empty) {
            return Some((
                c.span(),
                "the ssh command is empty",
                "name the client first: `command = [\"ssh\", \"-F\", \"ssh_config\"]`",
            ));
        }
        let per_host = self.hosts.values();
        let netcs = per_host.clone().filter_map(|h| h.netc.as_ref());
        if let Some(n) = self
            .ssh
            .netc
            .iter()
            .chain(netcs)
            .find(|n| n.get_ref().trim().is_empty())
        {
            return Some((
                n.span(),
                "the netc command is empty",
                "name netc on the host: `netc = \"/usr/local/bin/netc\"`",
            ));
        }
        for h in per_host {
            if let Some(d) = h.ssh.as_ref().filter(|d| {
                let d = d.get_ref();
                d.is_empty() || d.starts_with('-') || d.chars().any(char::is_whitespace)
            }) {
                return Some((
                    d.span(),
                    "not an ssh destination",
                    "a destination is `[user@]host` (options go in [ssh] command or ssh_config)",
                ));
            }
            if let Some(r) = h.root.as_ref().filter(|r| !r.get_ref().starts_with('/')) {
                return Some((
                    r.span(),
                    "the root is not an absolute path",
                    "root is a folder on the host, from /: `root = \"/srv/chroot\"`",
                ));
            }
        }
        None
    }
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

    #[test]
    fn ssh_and_hosts() {
        let text = "[ssh]\ncommand = [\"ssh\", \"-F\", \"c\"]\n[hosts.chamomile]\nssh = \"root@c.example\"\nroot = \"/srv/c\"\n";
        let s = parse("netc.toml", text).unwrap();
        let c = s.host("chamomile").unwrap();
        assert_eq!(c.ssh.as_ref().unwrap().get_ref(), "root@c.example");
        assert!(s.host("biloba").is_none());
        let d = s.unknown_host(["chamomile", "biloba"].into_iter());
        assert!(d.is_none());
        let d = s.unknown_host(["chamomle"].into_iter()).unwrap();
        assert_eq!(d.code, Code::UnknownHost);
        assert_eq!(&text[d.span().start..d.span().end], "chamomile");
        assert_eq!(d.help.as_deref(), Some("did you mean `chamomle`?"));
        assert_eq!(s.origin.unwrap().text, text);
    }

    #[test]
    fn unusable_values_are_positioned() {
        for (text, bad) in [
            (
                "[hosts.a]\nssh = \"-oProxyCommand=x\"\n",
                "\"-oProxyCommand=x\"",
            ),
            ("[hosts.a]\nssh = \"a b\"\n", "\"a b\""),
            ("[hosts.a]\nroot = \"srv\"\n", "\"srv\""),
            ("[ssh]\ncommand = []\n", "[]"),
            ("[ssh]\nnetc = \" \"\n", "\" \""),
            ("[hosts.a]\nport = 22\n", "port"),
        ] {
            let Err(Error::Invalid(e)) = parse("netc.toml", text) else {
                panic!("{text}")
            };
            let span = e.1.span();
            assert_eq!(&text[span.start..span.end], bad, "{text}");
        }
    }
}
