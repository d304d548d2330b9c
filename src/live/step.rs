//! One change to a host, as plain data: planned together with its inverse before anything is
//! touched, kept on disk while an apply waits for `netc confirm`, carried out by
//! [`super::exec`].

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::net::NetOp;
use crate::model::Family;
use crate::render::{ArtefactKind, NftTable};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", content = "with", rename_all = "kebab-case")]
pub enum Step {
    Net(NetOp),
    /// `iptables-restore --noflush` (or ip6tables-) with this input.
    Iptables {
        family: Family,
        restore: String,
    },
    /// `ipset -exist restore` with this input: netc's sets, created or swapped.
    Ipset {
        restore: String,
    },
    /// Replace the `inet netc` table, in one transaction.
    Nft(NftLoad),
    /// Put `content` at `path` (`None`: remove it); `check` it first with the tool that
    /// reads it, where that needs the new network (keepalived); reload what rereads it.
    File {
        kind: ArtefactKind,
        path: PathBuf,
        content: Option<String>,
        check: bool,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Net(op) => write!(f, "{op}"),
            Step::Iptables { family, .. } => write!(f, "restore netc's {} chains", family.name()),
            Step::Ipset { .. } => write!(f, "restore netc's ipsets"),
            Step::Nft(NftLoad::Delete) => write!(f, "delete table inet netc"),
            Step::Nft(_) => write!(f, "load table inet netc"),
            Step::File {
                path,
                content: Some(_),
                ..
            } => write!(f, "install {}", path.display()),
            Step::File {
                path,
                content: None,
                ..
            } => write!(f, "remove {}", path.display()),
        }
    }
}

/// What goes into the `inet netc` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NftLoad {
    /// netc's table, as one nftnl batch ([`super::nftnl`]).
    Batch(NftTable),
    /// An `nft -f` script: the undo of a table that was not netc's as rendered (its
    /// listing, after deleting the table).
    Script(String),
    /// No table: the undo of creating it.
    Delete,
}
