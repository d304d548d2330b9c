//! The write-ahead journal of an apply, in `<root>/var/lib/netc/journal`.
//!
//! Before the first change, apply writes every planned step with its inverse (the header);
//! before and after each step it appends a mark. So at any point — a failed step, a signal,
//! `kill -9`, a power cut — the journal names what may be on the host: the steps marked done,
//! and the one begun but not marked done, which may or may not have happened. Recovery reads
//! it: `netc rollback` undoes those steps (carefully: [`super::rollback`]), `netc apply` goes
//! forward and carries them in its own journal.
//!
//! Format: one record per line, `<checksum, 8 hex digits> <JSON>`; the first is the
//! [`Header`] (with a format [`VERSION`]), the others [`Mark`]s. Each checksum is the CRC-32
//! of the previous record's checksum and this record's JSON, so a record changed, removed or
//! moved breaks the chain. The file is mode 0600 (it
//! holds the files' text, agent.properties' secrets among them), created whole through a
//! fsynced rename; each mark is one `write` and a `fdatasync`. A last line without its
//! newline is a record a crash cut short and is ignored; any other record that does not
//! match its checksum makes the journal [`Damaged`]: netc then runs nothing from it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::install::{self, Perm};
use super::step::Step;

/// The journal format this netc writes and reads.
pub const VERSION: u32 = 1;

/// A step with the step that undoes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    pub step: Step,
    pub undo: Step,
}

/// What an apply is about to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    /// Tells one apply's journal from another's (the timer checks it).
    pub id: String,
    pub host: String,
    /// Seconds since the epoch.
    pub started: i64,
    /// With `--confirm`: when the timer undoes the apply (seconds since the epoch).
    pub deadline: Option<i64>,
    pub steps: Vec<Planned>,
}

/// Progress, appended as it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mark {
    /// Step N is about to run.
    Begin(usize),
    /// Step N ran.
    Done(usize),
    /// Step N was undone (or found not done).
    Undone(usize),
    /// Every step ran; with `--confirm`, the (new) deadline.
    Applied { deadline: Option<i64> },
}

/// Where a step stands according to the marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    NotStarted,
    /// Begun and not marked done: it may or may not have happened.
    Maybe,
    Done,
    Undone,
}

/// A journal that cannot be trusted: netc will not act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    pub path: PathBuf,
    pub why: String,
}

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the apply journal {} is damaged ({}); netc will not act on it. See what the host \
             has with `netc plan`, then `netc confirm` to set the journal aside and keep the \
             host as it is",
            self.path.display(),
            self.why
        )
    }
}

pub struct Journal {
    pub path: PathBuf,
    pub header: Header,
    pub marks: Vec<Mark>,
    file: Option<fs::File>,
    /// The last record's checksum.
    last: u32,
}

/// The checksum of a record that follows one with checksum `previous`.
pub fn checksum(previous: u32, json: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&previous.to_be_bytes());
    h.update(json);
    h.finalize()
}

/// A record's line, and its checksum.
fn record(value: &impl Serialize, previous: u32) -> (Vec<u8>, u32) {
    let json = serde_json::to_vec(value).expect("plain data");
    let sum = checksum(previous, &json);
    let mut line = format!("{sum:08x} ").into_bytes();
    line.extend(json);
    line.push(b'\n');
    (line, sum)
}

impl Journal {
    /// Writes a new journal (replacing any) with `marks` already in it.
    pub fn create(path: &Path, header: Header, marks: &[Mark]) -> io::Result<Journal> {
        let (mut bytes, mut last) = record(&header, 0);
        for m in marks {
            let (line, sum) = record(m, last);
            bytes.extend(line);
            last = sum;
        }
        install::write_atomic(path, &bytes, Perm::mode(0o600))?;
        let mut j = Journal {
            path: path.to_path_buf(),
            header,
            marks: marks.to_vec(),
            file: None,
            last,
        };
        j.open()?;
        Ok(j)
    }

    fn open(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            self.file = Some(fs::OpenOptions::new().append(true).open(&self.path)?);
        }
        Ok(())
    }

    /// Appends a mark, on disk before this returns.
    pub fn mark(&mut self, m: Mark) -> io::Result<()> {
        self.open()?;
        let file = self.file.as_mut().expect("opened");
        let (line, sum) = record(&m, self.last);
        file.write_all(&line)?;
        file.sync_data()?;
        self.last = sum;
        self.marks.push(m);
        Ok(())
    }

    /// The journal at `path`, if there is one.
    pub fn load(path: &Path) -> Result<Option<Journal>, Damaged> {
        let damaged = |why: String| Damaged {
            path: path.to_path_buf(),
            why,
        };
        let bytes = match install::read_opt(path) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(e) => return Err(damaged(e.to_string())),
        };
        let (header, marks, last) = parse(&bytes).map_err(damaged)?;
        Ok(Some(Journal {
            path: path.to_path_buf(),
            header,
            marks,
            file: None,
            last,
        }))
    }

    pub fn state(&self, step: usize) -> StepState {
        let mut s = StepState::NotStarted;
        for m in &self.marks {
            match *m {
                Mark::Begin(n) if n == step => s = StepState::Maybe,
                Mark::Done(n) if n == step => s = StepState::Done,
                Mark::Undone(n) if n == step => s = StepState::Undone,
                _ => {}
            }
        }
        s
    }

    /// Whether every step ran (the apply waits for `netc confirm`, if it has a deadline).
    pub fn applied(&self) -> bool {
        self.marks.iter().any(|m| matches!(m, Mark::Applied { .. }))
    }

    /// When the timer undoes the apply: the last deadline stated.
    pub fn deadline(&self) -> Option<i64> {
        let restated = self.marks.iter().rev().find_map(|m| match m {
            Mark::Applied { deadline } => Some(*deadline),
            _ => None,
        });
        restated.unwrap_or(self.header.deadline)
    }

    /// The steps that may be on the host (done, or begun), in order.
    pub fn carried(&self) -> Vec<(usize, StepState)> {
        (0..self.header.steps.len())
            .map(|i| (i, self.state(i)))
            .filter(|(_, s)| matches!(s, StepState::Done | StepState::Maybe))
            .collect()
    }

    /// Removes the journal: nothing is pending any more.
    pub fn remove(self) -> io::Result<()> {
        install::remove_opt(&self.path)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// The header, marks and last checksum of a journal's bytes, or why they cannot be trusted.
fn parse(bytes: &[u8]) -> Result<(Header, Vec<Mark>, u32), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    // Only complete lines count: a crash can cut the last one short.
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    let mut last = 0;
    let mut records = complete.lines().enumerate().map(|(i, line)| {
        let (sum, json) = line
            .split_once(' ')
            .ok_or(format!("record {} has no checksum", i + 1))?;
        let expected = checksum(last, json.as_bytes());
        if u32::from_str_radix(sum, 16).ok() != Some(expected) {
            return Err(format!("record {} does not match its checksum", i + 1));
        }
        last = expected;
        Ok(json)
    });
    let first = records
        .next()
        .ok_or("it ends before its header".to_string())??;
    let version: serde_json::Value =
        serde_json::from_str(first).map_err(|e| format!("header: {e}"))?;
    if version["version"] != VERSION {
        return Err(format!(
            "format version {}, this netc reads {VERSION}",
            version["version"]
        ));
    }
    let header: Header = serde_json::from_str(first).map_err(|e| format!("header: {e}"))?;
    let mut marks = Vec::new();
    for r in records {
        let m: Mark = serde_json::from_str(r?).map_err(|e| format!("mark: {e}"))?;
        marks.push(m);
    }
    Ok((header, marks, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::net::NetOp;

    fn header() -> Header {
        let step = Step::Net(NetOp::SetUp {
            link: "br5".into(),
            up: true,
        });
        Header {
            version: VERSION,
            id: "1-2".into(),
            host: "h".into(),
            started: 1,
            deadline: Some(100),
            steps: vec![Planned {
                undo: step.clone(),
                step,
            }],
        }
    }

    #[test]
    fn marks_survive_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut j = Journal::create(&path, header(), &[]).unwrap();
        j.mark(Mark::Begin(0)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let loaded = Journal::load(&path).unwrap().unwrap();
        assert_eq!(loaded.state(0), StepState::Maybe);
        assert_eq!(loaded.carried(), [(0, StepState::Maybe)]);
        // A mark cut short by a crash.
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"1234abcd {\"do").unwrap();
        let loaded = Journal::load(&path).unwrap().unwrap();
        assert_eq!(loaded.marks, [Mark::Begin(0)]);
        assert_eq!(loaded.deadline(), Some(100));
    }

    #[test]
    fn a_changed_or_truncated_journal_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut j = Journal::create(&path, header(), &[Mark::Begin(0)]).unwrap();
        j.mark(Mark::Done(0)).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("br5", "br6")).unwrap();
        let e = Journal::load(&path).err().unwrap();
        assert!(e.why.contains("does not match its checksum"), "{e}");
        fs::write(&path, &text[..10]).unwrap();
        let e = Journal::load(&path).err().unwrap();
        assert!(e.why.contains("ends before its header"), "{e}");
        assert!(e.to_string().contains("netc confirm"), "{e}");
        let other = text.replacen("\"version\":1", "\"version\":9", 1);
        let sum = checksum(0, &other.lines().next().unwrap().as_bytes()[9..]);
        let first = other.lines().next().unwrap();
        fs::write(&path, format!("{sum:08x}{}\n", &first[8..])).unwrap();
        let e = Journal::load(&path).err().unwrap();
        assert!(e.why.contains("format version 9"), "{e}");
    }

    #[test]
    fn a_removed_mark_breaks_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut j = Journal::create(&path, header(), &[]).unwrap();
        j.mark(Mark::Begin(0)).unwrap();
        j.mark(Mark::Done(0)).unwrap();
        j.mark(Mark::Applied { deadline: None }).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let without_done = format!("{}\n{}\n{}\n", lines[0], lines[1], lines[3]);
        fs::write(&path, without_done).unwrap();
        let e = Journal::load(&path).err().unwrap();
        assert!(e.why.contains("record 3 does not match"), "{e}");
    }
}
