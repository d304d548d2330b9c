//! What netc left in iptables' tables when they live in nf_tables (iptables-nft): the rules
//! files its chains were restored from, and the ruleset's generation right after.
//!
//! nf_tables counts every committed change in one generation per network namespace. While it
//! is the same (same boot, same namespace), no one — an admin, libvirt, netc — has changed any
//! table since, so netc's chains still hold what it restored and plan need not run
//! iptables-save: it reads the generation over netlink instead. Any change anywhere moves the
//! generation, and plan reads the tables again. With iptables-legacy, whose tables nf_tables
//! does not see, nothing is recorded.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::install::{self, Backup};
use super::nfnetlink::Socket;
use super::state::State;
use crate::model::Family;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Left {
    /// The kernel's boot id and the network namespace: a generation counts in each anew.
    pub boot: String,
    pub netns: u64,
    /// The namespace's cookie (`SO_NETNS_COOKIE`): unlike its inode number, which a namespace
    /// made later in the same boot can be given again (a container restarted), never reused.
    #[serde(default)]
    pub cookie: Option<u64>,
    pub generation: u32,
    /// Per family, the rendered rules file netc's chains were made to match.
    pub rules: Vec<(Family, String)>,
}

impl Left {
    /// Whether netc left its `family` chains as `rendered` says.
    pub fn holds(&self, family: Family, rendered: &str) -> bool {
        self.rules
            .iter()
            .any(|(f, t)| *f == family && t == rendered)
    }
}

fn path(root: &Path) -> PathBuf {
    State::of_root(root).dir.join("iptables-left.json")
}

/// This boot, this network namespace, and the ruleset's generation now.
fn here() -> io::Result<(String, u64, u32)> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?;
    let netns = std::fs::metadata("/proc/thread-self/ns/net")?.ino();
    let generation = Socket::open()?.generation()?;
    Ok((boot.trim().to_string(), netns, generation))
}

/// The record under `root`, if nothing has changed any table since it was made. `cookie`:
/// this network namespace's, where the kernel tells it (the caller asks: see [`Left::cookie`]).
pub fn holding(root: &Path, cookie: Option<u64>) -> Option<Left> {
    let bytes = install::read_opt(&path(root)).ok()??;
    let left: Left = serde_json::from_slice(&bytes).ok()?;
    let (boot, netns, generation) = here().ok()?;
    let same = left.boot == boot && left.netns == netns && left.cookie == cookie;
    (same && left.generation == generation).then_some(left)
}

/// The ruleset's generation now, if nf_tables answers.
pub fn generation() -> Option<u32> {
    Socket::open().ok()?.generation().ok()
}

/// Records that netc's chains now hold `rules`, at the generation of this moment — if it is
/// `expected`: the generation before the plan read the tables, moved by netc's own loads
/// only. Otherwise someone changed a table while netc worked (perhaps netc's chains, after
/// it read or loaded them): nothing is recorded, any older record is removed, and the next
/// plan reads the tables. Returns whether it recorded.
pub fn record(
    root: &Path,
    rules: Vec<(Family, String)>,
    expected: Option<u32>,
    cookie: Option<u64>,
) -> io::Result<bool> {
    let (boot, netns, generation) = here()?;
    if expected != Some(generation) {
        install::remove_opt(&path(root))?;
        return Ok(false);
    }
    let left = Left {
        boot,
        netns,
        cookie,
        generation,
        rules,
    };
    let json = serde_json::to_vec(&left).expect("plain data");
    std::fs::create_dir_all(State::of_root(root).dir)?;
    install::install(&path(root), &json, Backup::Skip).map(|_| true)
}
