//! Carrying out one [`Step`] on the host: the kernel through [`Kernel`], the firewall through
//! iptables-restore, ipset's and nf_tables' netlink, files through [`install`], and keepalived's reload.
//! Also the check, when a plan is made, of every new file with the tool that will read it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::install::{self, Backup, Installed, Perm};
use super::ipsetnl;
use super::net::NetOp;
use super::netlink::Kernel;
use super::nftnl;
use super::step::{NftLoad, Step};
use crate::model::Family;
use crate::render::ArtefactKind;
use crate::tool::{Tool, ToolError};

/// What steps act on, and what they did beside the steps themselves.
pub struct System<'a> {
    pub kernel: &'a mut Kernel,
    /// What netc treats as `/` (`--root`): symlinks in its files are followed inside it.
    pub root: PathBuf,
    /// Where keepalived keeps its pid.
    pub keepalived_pid: PathBuf,
    /// Lines for the user about what happened beside the steps themselves.
    pub notes: Vec<String>,
    /// Firewall loads (iptables-restore, ipset restore, nftnl batches): kernel writes too.
    pub firewall_loads: usize,
    /// Of those, the transactions committed to nf_tables (each moves its generation by one):
    /// an iptables-nft restore, an nftnl batch.
    pub nf_commits: u32,
    pub files_written: usize,
    /// Whether a replaced file is kept as a backup: on apply, not on an undo (a rejected
    /// config is no backup).
    pub backup: Backup,
}

impl<'a> System<'a> {
    pub fn new(kernel: &'a mut Kernel, root: &Path) -> System<'a> {
        System {
            kernel,
            root: root.to_path_buf(),
            keepalived_pid: root.join("run/keepalived.pid"),
            notes: Vec::new(),
            firewall_loads: 0,
            nf_commits: 0,
            files_written: 0,
            backup: Backup::Keep,
        }
    }

    /// Changes made in the kernel: netlink requests and firewall loads.
    pub fn kernel_writes(&self) -> usize {
        self.kernel.writes + self.firewall_loads
    }
}

impl Step {
    pub fn run(&self, sys: &mut System) -> io::Result<()> {
        self.carry_out(sys)
            .map_err(|e| io::Error::new(e.kind(), format!("{self}: {e}")))
    }

    fn carry_out(&self, sys: &mut System) -> io::Result<()> {
        match self {
            Step::Net(op) => net(sys.kernel, op),
            Step::Iptables {
                family,
                restore,
                chains,
                record,
            } => {
                iptables_restore(*family, restore)?;
                sys.firewall_loads += 1;
                sys.nf_commits += 1;
                write_record(record, &serde_json::to_vec(chains).expect("plain data"))
            }
            // The sets an apply stops matching are kept: nothing to load.
            Step::Ipset { restore } if restore.is_empty() => Ok(()),
            Step::Ipset { restore } => {
                // Over netlink; an input it does not speak (an undo edited by hand) through
                // the tool.
                match ipsetnl::restore(restore) {
                    Ok(done) => done?,
                    Err(_) => {
                        Tool::new("ipset")
                            .args(["-exist", "restore"])
                            .input(restore.as_str())
                            .own_group()
                            .run()?;
                    }
                }
                sys.firewall_loads += 1;
                Ok(())
            }
            Step::Nft(load) => {
                nft_load(load)?;
                sys.firewall_loads += 1;
                sys.nf_commits += 1;
                Ok(())
            }
            Step::File {
                kind,
                path,
                content,
            } => file(sys, *kind, path, content.as_deref()),
        }
    }
}

fn file(
    sys: &mut System,
    kind: ArtefactKind,
    path: &Path,
    content: Option<&str>,
) -> io::Result<()> {
    let Some(text) = content else {
        install::remove_in(&sys.root, path)?;
        sys.files_written += 1;
        if kind.reloads() {
            sys.notes.push(format!(
                "{} is gone: stop keepalived where this host no longer serves a VIP",
                path.display()
            ));
        }
        return Ok(());
    };
    if let Some(dir) = install::resolve_in(&sys.root, path)?.parent() {
        fs::create_dir_all(dir)?;
    }
    if let Installed::Written { .. } =
        install::install_in(&sys.root, path, text.as_bytes(), sys.backup)?
    {
        sys.files_written += 1;
        if kind.reloads() {
            reload_keepalived(&sys.keepalived_pid, &mut sys.notes);
        }
    }
    Ok(())
}

fn net(kernel: &mut Kernel, op: &NetOp) -> io::Result<()> {
    match op {
        NetOp::AddLink { name, kind } => kernel.add_link(name, kind),
        NetOp::DelLink { name, .. } => kernel.del_link(name),
        NetOp::SetMaster { link, master, .. } => kernel.set_master(link, master.as_deref()),
        NetOp::SetUp { link, up } => kernel.set_up(link, *up),
        NetOp::SetMtu { link, mtu, .. } => kernel.set_mtu(link, *mtu),
        NetOp::SetRa { link, ra, .. } => kernel.set_ra(link, *ra),
        NetOp::AddAddr { dev, net, proto } => kernel.add_addr(dev, *net, *proto),
        NetOp::DelAddr { dev, net, .. } => kernel.del_addr(dev, *net),
        NetOp::AddRoute {
            dev,
            dst,
            gateway,
            proto,
        } => kernel.add_route(dev, *dst, *gateway, *proto),
        NetOp::DelRoute {
            dev,
            dst,
            gateway,
            proto,
        } => kernel.del_route(dev, *dst, *gateway, *proto),
    }
}

/// State netc keeps for itself: private, written atomically.
fn write_record(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    install::write_atomic(path, bytes, Perm::mode(0o600))
}

/// The one way netc loads iptables rules: `iptables-restore --noflush` (or ip6tables-).
fn iptables_restore(family: Family, input: &str) -> io::Result<()> {
    let tool = format!("{}-restore", family.iptables());
    Tool::new(&tool)
        .arg("--noflush")
        .input(input)
        .own_group()
        .run()?;
    Ok(())
}

/// The one way netc loads nftables: one nftnl batch (or, for an undo, `nft -f` of the
/// listing of a table that was not netc's as rendered).
fn nft_load(load: &NftLoad) -> io::Result<()> {
    match load {
        NftLoad::Batch(table) => nftnl::load(table),
        NftLoad::Script(script) => {
            Tool::new("nft")
                .args(["-f", "-"])
                .input(script.as_str())
                .own_group()
                .run()?;
            Ok(())
        }
        NftLoad::Delete => nftnl::delete(),
    }
}

/// Checks each file a plan installs with the tool that will read it: `iptables-restore
/// --test` (with netc's ipsets loaded first where the rules match them), `ipset restore`,
/// `nft -c`, `ifquery --list`, `keepalived -t` (in a throwaway network namespace holding the
/// interfaces it names, so before they exist; its check scripts must exist). Returns why
/// each rejected file is rejected; a tool that is not installed is a note. The checks are
/// independent: they run side by side, each in its own process.
pub fn validate(steps: &[(Step, Step)], notes: &mut Vec<String>) -> Vec<String> {
    let files: Vec<(ArtefactKind, &Path, &str)> = steps
        .iter()
        .filter_map(|(step, _)| match step {
            Step::File {
                kind,
                path,
                content: Some(text),
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
    let results: Vec<(io::Result<()>, Vec<String>)> = std::thread::scope(|s| {
        let checks: Vec<_> = files
            .iter()
            .map(|&(kind, path, text)| {
                let ipsets = ipsets.clone();
                s.spawn(move || {
                    let mut notes = Vec::new();
                    let sets =
                        ipsets.or_else(|| fs::read_to_string(path.with_file_name("ipsets")).ok());
                    let r = check_file(kind, path, text, sets.as_deref(), &mut notes);
                    (r, notes)
                })
            })
            .collect();
        checks
            .into_iter()
            .map(|c| c.join().expect("a check does not panic"))
            .collect()
    });
    let mut rejected = Vec::new();
    for (r, n) in results {
        notes.extend(n);
        if let Err(e) = r {
            rejected.push(e.to_string());
        }
    }
    rejected
}

/// Runs the tool that reads a `kind` of file on `text` (for `path`), in its checking mode;
/// iptables rules that match sets are checked with `ipsets` loaded first, in a network
/// namespace of their own that vanishes with the check.
fn check_file(
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
    let mut shown: &str = match checker.tool {
        "unshare" => checker.args.get(1).copied().unwrap_or("unshare"),
        tool => tool,
    };
    let restore = kind.family().map(|f| format!("{}-restore", f.iptables()));
    let tool = match (&restore, ipsets) {
        _ if kind == ArtefactKind::Keepalived => {
            if !installed("keepalived") {
                notes.push(format!(
                    "keepalived is not installed: {} was not checked",
                    path.display()
                ));
                return Ok(());
            }
            if !rustix::process::geteuid().is_root() {
                notes.push(format!(
                    "{} was not checked (keepalived -t needs root here)",
                    path.display()
                ));
                return Ok(());
            }
            keepalived_check(text, file.path())
        }
        (Some(restore), Some(ipsets)) if text.contains(" --match-set ") => {
            sets.write_all(ipsets.as_bytes())?;
            shown = restore.as_str();
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
        Err(ToolError::Failed { status, stderr, .. }) => Err(io::Error::other(format!(
            "{shown} rejects the new {} (exit {}): {}",
            path.display(),
            status.unwrap_or(-1),
            stderr.trim()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Whether a program is on PATH (or in /usr/sbin, /sbin).
fn installed(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| d.join(program).is_file())
}

/// `keepalived -t -f FILE` in a network namespace of its own where the interfaces the config
/// names exist (as bridges): the check needs them, and they may not exist yet.
fn keepalived_check(text: &str, file: &Path) -> Tool {
    let mut interfaces: Vec<&str> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            if matches!(pair[0], "interface" | "dev") && !interfaces.contains(&pair[1]) {
                interfaces.push(pair[1]);
            }
        }
    }
    // One `ip` for every link (a batch read from the shell's echo, a builtin): each
    // process costs the first apply its start-up.
    let script = "f=$1; shift; \
        { echo 'link set lo up'; for i in \"$@\"; do echo \"link add $i type bridge\"; done; } \
        | ip -b - || exit 97; exec keepalived -t -f \"$f\"";
    Tool::new("unshare")
        .args(["--net", "sh", "-c", script, "sh"])
        .arg(file)
        .args(interfaces)
}

/// The pid in keepalived's pid file, if that process is keepalived (a stale pid file may
/// name any process); otherwise why not.
fn keepalived_pid(pid_file: &Path) -> Result<rustix::process::Pid, String> {
    let text = fs::read_to_string(pid_file).map_err(|e| format!("{}: {e}", pid_file.display()))?;
    let pid = text
        .trim()
        .parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or(format!("{} holds no pid", pid_file.display()))?;
    let proc = PathBuf::from(format!("/proc/{}", pid.as_raw_nonzero()));
    let comm = fs::read_to_string(proc.join("comm")).unwrap_or_default();
    let exe = fs::read_link(proc.join("exe")).ok();
    let exe_name = exe
        .as_ref()
        .and_then(|e| e.file_name())
        .and_then(|n| n.to_str());
    if comm.trim() == "keepalived" || exe_name == Some("keepalived") {
        return Ok(pid);
    }
    Err(match comm.trim() {
        "" => format!(
            "{} names pid {pid:?}, which is not running",
            pid_file.display()
        ),
        other => format!(
            "{} names pid {}, which is `{other}`, not keepalived (a stale pid file)",
            pid_file.display(),
            pid.as_raw_nonzero()
        ),
    })
}

/// SIGHUP to a running keepalived (what `systemctl reload keepalived` does), and only to it.
fn reload_keepalived(pid_file: &Path, notes: &mut Vec<String>) {
    let sent = keepalived_pid(pid_file).and_then(|pid| {
        rustix::process::kill_process(pid, rustix::process::Signal::HUP)
            .map_err(|e| format!("SIGHUP to keepalived: {e}"))
    });
    match sent {
        Ok(()) => notes.push("keepalived reloaded".into()),
        Err(why) => notes.push(format!(
            "keepalived was not reloaded ({why}): start or reload it to use the new config"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_pid_file_signals_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("keepalived.pid");
        fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
        let e = keepalived_pid(&pid_file).unwrap_err();
        assert!(e.contains("not keepalived (a stale pid file)"), "{e}");
        fs::write(&pid_file, "garbage").unwrap();
        assert!(
            keepalived_pid(&pid_file)
                .unwrap_err()
                .contains("holds no pid")
        );
        let mut notes = Vec::new();
        reload_keepalived(&dir.path().join("missing"), &mut notes);
        assert!(
            notes[0].starts_with("keepalived was not reloaded"),
            "{notes:?}"
        );
    }
}
