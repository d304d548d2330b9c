//! One change to a host, as plain data: planned together with its inverse before anything is
//! touched, written to the [`super::journal`] before it runs, carried out by [`super::exec`],
//! checked against the live host before a rollback undoes it ([`super::rollback`]).

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
    /// `iptables-restore --noflush` (or ip6tables-) with this input, then record at
    /// `record` the chains netc owns after it (so a chain netc renders no more is found and
    /// removed, whatever it was called).
    Iptables {
        family: Family,
        restore: String,
        chains: Vec<String>,
        record: PathBuf,
    },
    /// `ipset -exist restore` with this input: netc's sets, created or swapped.
    Ipset {
        restore: String,
    },
    /// Replace the `inet netc` table, in one transaction.
    Nft(NftLoad),
    /// Put `content` at `path` (`None`: remove it); reload what rereads it. Every new file
    /// was checked by the tool that reads it when the plan was made.
    File {
        kind: ArtefactKind,
        path: PathBuf,
        content: Option<String>,
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

/// How an [`NftLoad::Script`] starts: it replaces whatever `inet netc` table there is (the
/// first line makes sure there is one to delete).
pub const NFT_REPLACE: &str = "table inet netc\ndelete table inet netc\n";

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
