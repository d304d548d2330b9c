//! netc's state on a host, in `<root>/var/lib/netc`: the lock that orders apply, confirm and
//! the rollback timer, and the apply that waits for `netc confirm`.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::install::{self, Backup};
use super::step::Step;

/// An apply waiting for `netc confirm`: what undoes it, and by when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub host: String,
    /// Seconds since the epoch after which the timer undoes the apply.
    pub deadline: u64,
    pub undo: Vec<Step>,
}

/// The state directory: `pending.json` and the lock.
pub struct State {
    pub dir: PathBuf,
}

impl State {
    /// The state directory of a root: `<root>/var/lib/netc`.
    pub fn of_root(root: &std::path::Path) -> State {
        State {
            dir: root.join("var/lib/netc"),
        }
    }

    fn pending_path(&self) -> PathBuf {
        self.dir.join("pending.json")
    }

    /// Holds the state lock until the returned file is dropped.
    pub fn lock(&self) -> io::Result<fs::File> {
        fs::create_dir_all(&self.dir)?;
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("lock"))?;
        rustix::fs::flock(f.as_fd(), rustix::fs::FlockOperation::LockExclusive)?;
        Ok(f)
    }

    pub fn pending(&self) -> io::Result<Option<Pending>> {
        match install::read_opt(&self.pending_path())? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::other(format!("{}: {e}", self.pending_path().display()))),
            None => Ok(None),
        }
    }

    pub fn set_pending(&self, p: &Pending) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let json = serde_json::to_vec_pretty(p).expect("plain data");
        install::install(&self.pending_path(), &json, Backup::Skip).map(|_| ())
    }

    pub fn clear_pending(&self) -> io::Result<()> {
        install::remove_opt(&self.pending_path())
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
