//! netc's state on a host, in `<root>/var/lib/netc` (mode 0700): the lock that orders apply,
//! confirm and rollback; the apply [`Journal`]; the timer's lock, held for as long as a
//! `--confirm` timer lives; the records of what netc loaded into the firewall; the timer's
//! log.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use super::install;
use super::journal::{Damaged, Journal};
use crate::model::Family;

/// The state directory.
pub struct State {
    pub dir: PathBuf,
}

impl State {
    /// The state directory of a root: `<root>/var/lib/netc`.
    pub fn of_root(root: &Path) -> State {
        State {
            dir: root.join("var/lib/netc"),
        }
    }

    /// Creates the directory (0700) if it is missing; narrows a wider one.
    pub fn ensure(&self) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("journal")
    }

    /// Where netc records the iptables chains it loaded, per family.
    pub fn iptables_record(&self, family: Family) -> PathBuf {
        let v = match family {
            Family::V4 => "v4",
            Family::V6 => "v6",
        };
        self.dir.join(format!("iptables-{v}.json"))
    }

    /// What netc before the journal kept for an apply waiting for `netc confirm`.
    pub fn legacy_pending(&self) -> Option<PathBuf> {
        let p = self.dir.join("pending.json");
        p.exists().then_some(p)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("rollback.log")
    }

    /// Holds the state lock until the returned file is dropped.
    pub fn lock(&self) -> io::Result<fs::File> {
        self.ensure()?;
        let f = self.lock_file("lock")?;
        rustix::fs::flock(f.as_fd(), FlockOperation::LockExclusive)?;
        Ok(f)
    }

    fn lock_file(&self, name: &str) -> io::Result<fs::File> {
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(name))
    }

    /// The timer's lock, taken: a process that keeps this file open (the timer, which
    /// inherits it) shows that a timer lives.
    pub fn timer_lock(&self) -> io::Result<fs::File> {
        self.ensure()?;
        let f = self.lock_file("timer.lock")?;
        rustix::fs::flock(f.as_fd(), FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| io::Error::other("a rollback timer is already waiting"))?;
        Ok(f)
    }

    /// Whether another netc command holds the state lock now (an apply in progress).
    pub fn busy(&self) -> bool {
        let Ok(f) = self.lock_file("lock") else {
            return false;
        };
        rustix::fs::flock(f.as_fd(), FlockOperation::NonBlockingLockShared).is_err()
    }

    /// Whether a `--confirm` timer is alive (it holds the timer's lock).
    pub fn timer_alive(&self) -> bool {
        let Ok(f) = self.lock_file("timer.lock") else {
            return false;
        };
        rustix::fs::flock(f.as_fd(), FlockOperation::NonBlockingLockShared).is_err()
    }

    /// The journal of an apply that has not ended, if any.
    pub fn journal(&self) -> Result<Option<Journal>, Damaged> {
        Journal::load(&self.journal_path())
    }

    /// Sets a journal netc cannot read aside (`journal.damaged-<stamp>`), for a person.
    pub fn set_aside(&self) -> io::Result<PathBuf> {
        let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
        let to = self.dir.join(format!("journal.damaged-{stamp}"));
        fs::rename(self.journal_path(), &to)?;
        Ok(to)
    }

    /// Removes what killed runs left in the state directory and in `dirs`.
    pub fn clean_temps<'a>(
        &self,
        dirs: impl IntoIterator<Item = &'a Path>,
    ) -> io::Result<Vec<PathBuf>> {
        let mut removed = install::clean_temps(&self.dir)?;
        for d in dirs {
            removed.extend(install::clean_temps(d)?);
        }
        Ok(removed)
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A moment for people: local time, and how far it is from `now`
/// (`2026-05-14 10:15:00 CEST, in 1 min 30 s`).
pub fn when(epoch: i64, now: i64) -> String {
    let local = jiff::Timestamp::from_second(epoch)
        .map(|t| {
            t.to_zoned_datetime(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        })
        .unwrap_or_else(|_| format!("{epoch} s after 1970"));
    let span = |s: i64| match s {
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{s} s"),
    };
    match epoch - now {
        d if d > 0 => format!("{local}, in {}", span(d)),
        0 => format!("{local}, now"),
        d => format!("{local}, {} ago", span(-d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_local_time_with_what_remains() {
        let t = 1_800_000_000;
        let s = when(t, t - 90);
        assert!(s.ends_with(", in 1 min 30 s"), "{s}");
        assert!(s.starts_with("2027-01-1"), "{s}");
        assert!(when(t, t + 7200).ends_with(", 2 h 0 min ago"));
        assert!(when(t, t).ends_with(", now"));
    }

    #[test]
    fn the_state_directory_is_private_and_the_timer_lock_shows_a_live_timer() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::of_root(dir.path());
        s.ensure().unwrap();
        let mode = fs::metadata(&s.dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(!s.timer_alive());
        let held = s.timer_lock().unwrap();
        assert!(s.timer_alive());
        drop(held);
        assert!(!s.timer_alive());
    }
}
