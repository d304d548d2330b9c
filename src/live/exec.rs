//! Carrying out one [`Step`] on the host: the kernel through [`Kernel`], the firewall through
//! iptables-restore and nftnl, files through [`install`], and keepalived's reload. Also the
//! check, before anything is touched, of every new file with the tool that will read it.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::install::{self, Backup};
use super::net::NetOp;
use super::netlink::Kernel;
use super::nftnl;
use super::step::{NftLoad, Step};
use crate::model::Family;
use crate::render::ArtefactKind;
use crate::tool::{Tool, ToolError};

/// What steps act on: the kernel, and where keepalived keeps its pid.
pub struct System<'a> {
    pub kernel: &'a mut Kernel,
    pub keepalived_pid: std::path::PathBuf,
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
            Step::Net(op) => net(sys.kernel, op),
            Step::Iptables { family, restore } => iptables_restore(*family, restore),
            Step::Ipset { restore } => {
                Tool::new("ipset")
                    .args(["-exist", "restore"])
                    .input(restore.as_str())
                    .run()?;
                Ok(())
            }
            Step::Nft(load) => nft_load(load),
            Step::File {
                kind,
                path,
                content,
                check,
            } => {
                match content {
                    Some(text) => {
                        if *check {
                            check_file(*kind, path, text, &mut sys.notes)?;
                        }
                        if let Some(dir) = path.parent() {
                            fs::create_dir_all(dir)?;
                        }
                        install::install(path, text.as_bytes(), Backup::Keep)?;
                    }
                    None => install::remove_opt(path)?,
                }
                if kind.reloads() {
                    reload_keepalived(&sys.keepalived_pid, &mut sys.notes);
                }
                Ok(())
            }
        }
    }
}

fn net(kernel: &mut Kernel, op: &NetOp) -> io::Result<()> {
    match op {
        NetOp::AddLink { name, kind } => kernel.add_link(name, kind),
        NetOp::DelLink { name, .. } => kernel.del_link(name),
        NetOp::SetMaster { link, master, .. } => kernel.set_master(link, master.as_deref()),
        NetOp::SetUp { link, up } => kernel.set_up(link, *up),
        NetOp::AddAddr { dev, net, proto } => kernel.add_addr(dev, *net, *proto),
        NetOp::DelAddr { dev, net, .. } => kernel.del_addr(dev, *net),
        NetOp::AddRoute {
            dev,
            gateway,
            proto,
        } => kernel.add_route(dev, *gateway, *proto),
        NetOp::DelRoute {
            dev,
            gateway,
            proto,
        } => kernel.del_route(dev, *gateway, *proto),
    }
}

fn iptables_restore(family: Family, input: &str) -> io::Result<()> {
    let tool = format!("{}-restore", family.iptables());
    Tool::new(&tool).arg("--noflush").input(input).run()?;
    Ok(())
}

/// Loads the `inet netc` table: over netlink, or (an undo) with `nft -f`.
fn nft_load(load: &NftLoad) -> io::Result<()> {
    match load {
        NftLoad::Batch(table) => nftnl::load(table),
        NftLoad::Script(script) => {
            Tool::new("nft")
                .args(["-f", "-"])
                .input(script.as_str())
                .run()?;
            Ok(())
        }
        NftLoad::Delete => nftnl::delete(),
    }
}

/// Checks the files a plan installs with the tools that will read them, before anything is
/// touched: `iptables-restore --test`, `ipset restore` and `nft -c`, `ifquery --list`.
/// keepalived's config is checked when it is installed (`keepalived -t` wants the bridges to
/// exist). A tool that is not installed is a note, not an error.
///
/// The checks are independent: they run side by side, each in its own process.
pub fn validate(steps: &[(Step, Step)], notes: &mut Vec<String>) -> io::Result<()> {
    let files: Vec<(ArtefactKind, &Path, &str)> = steps
        .iter()
        .filter_map(|(step, _)| match step {
            Step::File {
                kind,
                path,
                content: Some(text),
                check: false,
            } => Some((*kind, path.as_path(), text.as_str())),
            _ => None,
        })
        .collect();
    // Rules that match netc's ipsets are checked with the sets: the new file, or the
    // current one beside the rules.
    let ipsets = files
        .iter()
        .find(|(k, _, _)| *k == ArtefactKind::Ipsets)
        .map(|(_, _, t)| t.to_string());
    let results: Vec<io::Result<Vec<String>>> = std::thread::scope(|s| {
        let checks: Vec<_> = files
            .iter()
            .map(|&(kind, path, text)| {
                let ipsets = ipsets.clone();
                s.spawn(move || {
                    let mut notes = Vec::new();
                    let sets =
                        ipsets.or_else(|| fs::read_to_string(path.with_file_name("ipsets")).ok());
                    check_with(kind, path, text, sets.as_deref(), &mut notes).map(|()| notes)
                })
            })
            .collect();
        checks
            .into_iter()
            .map(|c| c.join().expect("a check does not panic"))
            .collect()
    });
    for r in results {
        notes.extend(r?);
    }
    Ok(())
}

/// Runs the tool that reads a `kind` of file on `text` (for `path`), in its checking mode.
fn check_file(
    kind: ArtefactKind,
    path: &Path,
    text: &str,
    notes: &mut Vec<String>,
) -> io::Result<()> {
    check_with(kind, path, text, None, notes)
}

/// [`check_file`]; iptables rules that match sets are checked with `ipsets` loaded first,
/// in a network namespace of their own that vanishes with the check.
fn check_with(
    kind: ArtefactKind,
    path: &Path,
    text: &str,
    ipsets: Option<&str>,
    notes: &mut Vec<String>,
) -> io::Result<()> {
    let Some(checker) = kind.checker() else {
        return Ok(());
    };
    let mut file = tempfile::Builder::new().prefix("netc-check").tempfile()?;
    file.write_all(text.as_bytes())?;
    let mut sets = tempfile::Builder::new().prefix("netc-check").tempfile()?;
    // The tool to name in a rejection (`unshare` only makes the namespace).
    let mut shown: Option<&str> = checker
        .args
        .get(1)
        .copied()
        .filter(|_| checker.tool == "unshare");
    let restore = kind.family().map(|f| format!("{}-restore", f.iptables()));
    let tool = match (&restore, ipsets) {
        (Some(restore), Some(ipsets)) if text.contains(" --match-set ") => {
            sets.write_all(ipsets.as_bytes())?;
            shown = Some(restore.as_str());
            let script = format!("ipset restore < \"$1\"; exec {restore} --test < \"$2\"");
            Tool::new("unshare")
                .args(["--net", "sh", "-ec", &script, "sh"])
                .arg(sets.path())
                .arg(file.path())
        }
        _ if checker.stdin => Tool::new(checker.tool).args(checker.args).input(text),
        _ => Tool::new(checker.tool).args(checker.args).arg(file.path()),
    };
    match tool.run() {
        Ok(_) => Ok(()),
        Err(ToolError::Missing { tool }) => {
            notes.push(format!(
                "{tool} is not installed: {} was not checked",
                path.display()
            ));
            Ok(())
        }
        Err(ToolError::Failed {
            tool,
            status,
            stderr,
        }) => Err(io::Error::other(format!(
            "{} rejects the new {} (exit {}): {}",
            shown.unwrap_or(tool.as_str()),
            path.display(),
            status.unwrap_or(-1),
            stderr.trim()
        ))),
        Err(e) => Err(e.into()),
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
