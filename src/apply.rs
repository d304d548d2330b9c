//! `netc apply`: carry out a [`crate::plan::Plan`] step by step, and undo the steps already
//! done when one fails; `--confirm` keeps the undo on disk and a detached timer runs it unless
//! `netc confirm` comes first.
//!
//! Every step is planned together with its inverse, before anything is touched, so the undo
//! never has to read state that the failed step may have left half-changed.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::install::{self, Backup};
use crate::model::Family;
use crate::net::NetOp;
use crate::netlink::Kernel;

/// One change to the host. Steps are plain data so that the undo can wait on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", content = "with", rename_all = "kebab-case")]
pub enum Step {
    Net(NetOp),
    /// `iptables-restore --noflush` (or ip6tables-) with this input.
    Iptables {
        family: Family,
        restore: String,
    },
    /// `nft -f` this script (one transaction), then record it and the table's listing at
    /// `record` ([`crate::plan::NftRecord`]).
    Nft {
        script: String,
        record: PathBuf,
    },
    /// Put `content` at `path` (`None`: remove it). keepalived's config: `check` it with
    /// `keepalived -t` first, and `reload` a running keepalived after.
    File {
        path: PathBuf,
        content: Option<String>,
        check: bool,
        reload: bool,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Net(op) => write!(f, "{op}"),
            Step::Iptables { family, .. } => write!(f, "restore netc's {} chains", family.name()),
            Step::Nft { .. } => write!(f, "load table inet netc"),
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

/// What steps act on: the kernel, and where keepalived keeps its pid.
pub struct System<'a> {
    pub kernel: &'a mut Kernel,
    pub keepalived_pid: PathBuf,
    /// Lines for the user about what happened beside the steps themselves.
    pub notes: Vec<String>,
}

impl Step {
    pub fn run(&self, sys: &mut System) -> io::Result<()> {
        self.carry_out(sys)
            .map_err(|e| io::Error::new(e.kind(), format!("{self}: {e}")))
    }

    fn carry_out(&self, sys: &mut System) -> io::Result<()> {
        match self {
            Step::Net(op) => sys.kernel.execute(op),
            Step::Iptables { family, restore } => iptables_restore(*family, restore),
            Step::Nft { script, record } => {
                pipe(Command::new("nft").args(["-f", "-"]), script)?;
                let r = crate::plan::NftRecord {
                    script: script.clone(),
                    listing: nft_list()?,
                };
                if let Some(dir) = record.parent() {
                    fs::create_dir_all(dir)?;
                }
                let json = serde_json::to_vec(&r).expect("plain data");
                install::install(record, &json, Backup::Skip).map(|_| ())
            }
            Step::File {
                path,
                content,
                check,
                reload,
            } => {
                match content {
                    Some(text) => {
                        if *check {
                            keepalived_check(text, &mut sys.notes)?;
                        }
                        if let Some(dir) = path.parent() {
                            fs::create_dir_all(dir)?;
                        }
                        install::install(path, text.as_bytes(), Backup::Keep)?;
                    }
                    None => match fs::remove_file(path) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    },
                }
                if *reload {
                    reload_keepalived(&sys.keepalived_pid, &mut sys.notes);
                }
                Ok(())
            }
        }
    }
}

fn iptables_restore(family: Family, input: &str) -> io::Result<()> {
    let tool = match family {
        Family::V4 => "iptables-restore",
        Family::V6 => "ip6tables-restore",
    };
    pipe(Command::new(tool).arg("--noflush"), input)
}

/// Runs `cmd` with `input` on stdin; its stderr is the error if it fails.
fn pipe(cmd: &mut Command, input: &str) -> io::Result<()> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// `nft list table inet netc`, or `None` when there is no such table.
pub fn nft_list() -> io::Result<Option<String>> {
    let o = Command::new("nft")
        .args(["list", "table", "inet", "netc"])
        .output()?;
    if o.status.success() {
        return Ok(Some(String::from_utf8_lossy(&o.stdout).into_owned()));
    }
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("No such file or directory") {
        Ok(None)
    } else {
        Err(io::Error::other(format!(
            "nft list table inet netc: {}",
            err.trim()
        )))
    }
}

/// Checks the files a plan installs with the tools that will read them, before anything is
/// touched: `iptables-restore --test` / `ip6tables-restore --test`, `nft -c`, `ifquery
/// --list`. keepalived's config is checked when it is installed (`keepalived -t` wants the
/// bridges to exist). A tool that is not installed is a note, not an error.
pub fn validate(steps: &[(Step, Step)], notes: &mut Vec<String>) -> io::Result<()> {
    for (step, _) in steps {
        let Step::File {
            path,
            content: Some(text),
            ..
        } = step
        else {
            continue;
        };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let (tool, args): (&str, &[&str]) = match name {
            "rules.v4" => ("iptables-restore", &["--test"]),
            "rules.v6" => ("ip6tables-restore", &["--test"]),
            "netc.nft" => ("nft", &["-c", "-f"]),
            "interfaces" => ("ifquery", &["--list", "-i"]),
            _ => continue,
        };
        let mut file = tempfile::Builder::new().prefix("netc-check").tempfile()?;
        file.write_all(text.as_bytes())?;
        let mut cmd = Command::new(tool);
        cmd.args(args);
        if tool.ends_with("-restore") {
            cmd.stdin(fs::File::open(file.path())?);
        } else {
            cmd.arg(file.path());
        }
        match cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => notes.push(format!(
                "{tool} is not installed: {} was not checked",
                path.display()
            )),
            Err(e) => return Err(e),
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return Err(io::Error::other(format!(
                    "{tool} rejects the new {}: {}",
                    path.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                )));
            }
        }
    }
    Ok(())
}

/// `keepalived -t` on the new config, where keepalived is installed.
fn keepalived_check(text: &str, notes: &mut Vec<String>) -> io::Result<()> {
    let mut file = tempfile::Builder::new()
        .prefix("netc-keepalived")
        .tempfile()?;
    file.write_all(text.as_bytes())?;
    match Command::new("keepalived")
        .args(["-t", "-f"])
        .arg(file.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            notes.push("keepalived is not installed: its config was not checked".into());
            Ok(())
        }
        Err(e) => Err(e),
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(io::Error::other(format!(
            "keepalived -t rejects the config (exit {}): {}",
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
    }
}

/// SIGHUP to a running keepalived (what `systemctl reload keepalived` does).
fn reload_keepalived(pid_file: &Path, notes: &mut Vec<String>) {
    let pid = fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw);
    match pid.map(|p| rustix::process::kill_process(p, rustix::process::Signal::HUP)) {
        Some(Ok(())) => notes.push("keepalived reloaded".into()),
        _ => notes.push(format!(
            "keepalived is not running (no live pid in {}): start it to use the new config",
            pid_file.display()
        )),
    }
}

/// A step that failed, and how the undo went.
#[derive(Debug)]
pub struct Failure {
    pub error: io::Error,
    /// Steps that were done and then undone.
    pub undone: usize,
    /// Undo steps that failed too: the host needs a look.
    pub undo_errors: Vec<io::Error>,
}

/// Runs `steps` (each with its inverse) in order. On success, the inverses of the steps run,
/// in the order that undoes them. On failure, that undo has already been run.
pub fn run(steps: &[(Step, Step)], sys: &mut System) -> Result<Vec<Step>, Failure> {
    let mut undo: Vec<Step> = Vec::new();
    for (step, inverse) in steps {
        if let Err(error) = step.run(sys) {
            undo.reverse();
            let undone = undo.len();
            let undo_errors = run_undo(&undo, sys);
            return Err(Failure {
                error,
                undone,
                undo_errors,
            });
        }
        undo.push(inverse.clone());
    }
    undo.reverse();
    Ok(undo)
}

/// Runs every undo step, on past failures too: leave as little changed as possible.
pub fn run_undo(undo: &[Step], sys: &mut System) -> Vec<io::Error> {
    undo.iter().filter_map(|s| s.run(sys).err()).collect()
}

/// An apply waiting for `netc confirm`: what undoes it, and by when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub host: String,
    /// Seconds since the epoch after which the timer undoes the apply.
    pub deadline: u64,
    pub undo: Vec<Step>,
}

/// The state directory: `pending.json` and the lock that orders apply, confirm and the timer.
pub struct State {
    pub dir: PathBuf,
}

impl State {
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
        match fs::read(self.pending_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::other(format!("{}: {e}", self.pending_path().display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn set_pending(&self, p: &Pending) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let json = serde_json::to_vec_pretty(p).expect("plain data");
        install::install(&self.pending_path(), &json, Backup::Skip).map(|_| ())
    }

    pub fn clear_pending(&self) -> io::Result<()> {
        match fs::remove_file(self.pending_path()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
