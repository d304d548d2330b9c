//! `netc plan|apply --host H` from another machine: the same netc on H, reached over
//! [`ssh`](super::ssh), receives the topology's name on its command line and the topology
//! and netc.toml on stdin (never from a checkout on H), plans or applies there, and says so.
//!
//! One host's remote apply, each step its own SSH connection:
//! 1. `netc --version` ([`Reach::check_version`]): the same version on both ends, or a
//!    refusal naming both;
//! 2. `netc plan --format json`: nothing to do, refused (nothing changes), or changes;
//! 3. `netc apply --confirm S`: H arms its rollback timer and applies;
//! 4. `netc confirm` over a *new* connection (never a ControlMaster's): a change that cut
//!    the way in cannot be confirmed, and H's timer undoes it.
//!
//! The receiving end ([`serve`]) shields itself from its connection: a change that cuts the
//! connection must not stop it half-way (see [`Shield`]).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use serde::{Deserialize, Serialize};

use netc::Compiled;
use netc::config::{self, Settings};

use super::PlanFormat;
use super::exit::{self, CliError, CliResult, Outcome};
use super::load::{Shown, model, print_diag, report, settings, settings_error, unknown_host};
use super::ssh::{Out, Reach, SSH_FAILED};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a host is sent on stdin.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// The sender's netc version.
    pub netc: String,
    pub topology: String,
    /// netc.toml's text, if there is one.
    pub settings: Option<String>,
}

/// A topology and its settings received on stdin, compiled.
pub struct Received {
    pub compiled: Compiled,
    pub settings: Settings,
}

/// Everything a host needs, ready to send: the topology's name (for the command line) and
/// the bundle. Compiles first, so that mistakes are reported here, once.
pub struct Sending {
    pub name: String,
    pub bundle: Vec<u8>,
    pub compiled: Compiled,
    pub settings: Settings,
}

impl Sending {
    pub fn of(file: &Path) -> Result<Sending, CliError> {
        let compiled = model(file)?;
        let settings = settings(file)?;
        if let Some((source, d)) = unknown_host(&compiled, &settings) {
            print_diag(&source, &d);
            return Err(CliError::Reported);
        }
        let topology = compiled.topology.as_ref().expect("model() checked");
        let bundle = Bundle {
            netc: VERSION.to_string(),
            topology: compiled.source.text.to_string(),
            settings: settings.origin.as_ref().map(|o| o.text.clone()),
        };
        Ok(Sending {
            name: topology.source.clone(),
            bundle: serde_json::to_vec(&bundle).expect("plain data"),
            compiled,
            settings,
        })
    }

    pub fn reach(&self, host: &str) -> Reach {
        Reach::of(host, &self.settings)
    }
}

/// The receiving end: reads the bundle, then runs `run` on it (plan or apply, as on the host
/// itself) behind a [`Shield`]. `file` is the topology's name as the sender gave it.
pub fn serve(file: &Path, run: impl FnOnce(&Received) -> CliResult) -> CliResult {
    let shield = Shield::raise().map_err(|e| CliError::io(format!("cannot set up output: {e}")))?;
    let result = receive(file).and_then(|r| run(&r));
    // Said behind the shield, so that a lost connection cannot make saying it fail.
    let result = match result {
        Err(CliError::User(m) | CliError::Io(m)) => {
            eprintln!("netc: {m}");
            Err(CliError::Reported)
        }
        other => other,
    };
    shield.lower();
    result
}

fn receive(file: &Path) -> Result<Received, CliError> {
    let mut bytes = Vec::new();
    io::stdin()
        .take(1 << 30)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::io(format!("cannot read stdin: {e}")))?;
    let bundle: Bundle = serde_json::from_slice(&bytes).map_err(|e| {
        CliError::user(format!(
            "--stdin reads what netc sends over ssh (the topology and netc.toml as JSON), \
             not this: {e}; nothing changed"
        ))
    })?;
    if bundle.netc != VERSION {
        return Err(CliError::user(format!(
            "this host runs netc {VERSION}, the sender runs netc {}: install the same netc on \
             both; nothing changed",
            bundle.netc
        )));
    }
    let name = file.to_string_lossy();
    let compiled = netc::compile(&name, bundle.topology.as_bytes());
    // The sender compiled it already and said its warnings: only errors are news here.
    if compiled.topology.is_none() {
        report(&compiled);
        return Err(CliError::Reported);
    }
    let settings = match bundle.settings {
        None => Settings::default(),
        Some(text) => config::parse(config::FILE_NAME, &text)
            .map_err(|e| settings_error(e, Shown::default()))?,
    };
    Ok(Received { compiled, settings })
}

/// While a received plan or apply runs, its stdout and stderr go through pipes to threads
/// that forward them to the SSH connection and drop what cannot be delivered any more: a
/// write to a connection the change itself cut fails (and `print!` panics on it), which must
/// not stop an apply half-way. SIGHUP is ignored for the same reason.
pub struct Shield {
    /// The original stdout and stderr, put back by [`Shield::lower`].
    saved: [OwnedFd; 2],
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Shield {
    pub fn raise() -> io::Result<Shield> {
        use rustix::io::fcntl_dupfd_cloexec;
        use rustix::pipe::{PipeFlags, pipe_with};
        // SAFETY: setting a signal's disposition to "ignore" has no handler to race with.
        unsafe {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
        }
        let mut threads = Vec::new();
        let mut saved = Vec::new();
        for fd in [1, 2] {
            let original = if fd == 1 {
                fcntl_dupfd_cloexec(io::stdout(), 3)?
            } else {
                fcntl_dupfd_cloexec(io::stderr(), 3)?
            };
            let (read, write) = pipe_with(PipeFlags::CLOEXEC)?;
            if fd == 1 {
                rustix::stdio::dup2_stdout(&write)?;
            } else {
                rustix::stdio::dup2_stderr(&write)?;
            }
            let to = File::from(fcntl_dupfd_cloexec(&original, 3)?);
            threads.push(std::thread::spawn(move || forward(File::from(read), to)));
            saved.push(original);
        }
        let [out, err] = <[OwnedFd; 2]>::try_from(saved).expect("two");
        Ok(Shield {
            saved: [out, err],
            threads,
        })
    }

    /// Puts stdout and stderr back and waits until everything was forwarded (or dropped).
    pub fn lower(self) {
        let _ = io::stdout().flush();
        let [out, err] = &self.saved;
        let _ = rustix::stdio::dup2_stdout(out);
        let _ = rustix::stdio::dup2_stderr(err);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Copies until the pipe closes; after the first failed write, only drains it.
fn forward(mut from: File, mut to: File) {
    let mut buf = [0u8; 8192];
    let mut alive = true;
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => alive = alive && to.write_all(&buf[..n]).is_ok(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The name of this machine.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Refuses a remote plan on a machine that is not `host`: its ssh destination leads
/// elsewhere. (A remote apply refuses the same through apply's own hostname check.) So a
/// rollout stops before anything changes.
pub fn is_host(host: &str) -> Result<(), CliError> {
    let machine = hostname();
    if machine == host {
        return Ok(());
    }
    Err(CliError::user(format!(
        "this machine is `{machine}`, not `{host}`: the ssh destination for {host} leads \
         elsewhere (netc.toml's [hosts.{host}] ssh, or ssh_config); nothing changed"
    )))
}

/// `netc plan` on one host: its output as it prints it (text or JSON) and its exit status.
pub fn plan(file: &Path, host: &str, format: PlanFormat) -> CliResult {
    let sending = Sending::of(file)?;
    super::load::find_host(&sending.compiled, host)?;
    let remote = Remote::new(&sending, host);
    remote.reach.check_version().map_err(CliError::user)?;
    let format = match format {
        PlanFormat::Text => "text",
        PlanFormat::Json => "json",
    };
    let ran = remote
        .run_netc("plan", &["--format", format], Out::Relay(""), "")
        .map_err(CliError::io)?;
    if let Some(result) = ran.status.and_then(exit::read_back) {
        return result;
    }
    match ran.status {
        Some(SSH_FAILED) => Err(CliError::io(remote.reach.unreachable(&ran))),
        other => Err(CliError::io(format!(
            "netc on {host} ended with {}",
            status_words(other)
        ))),
    }
}

/// What the plan of one host said.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct HostPlan {
    pub host: String,
    /// True: apply has something to do (plan's exit status 2).
    #[serde(skip_deserializing)]
    pub changes: bool,
    pub network: Vec<serde_json::Value>,
    pub files: Vec<serde_json::Value>,
    pub firewall: Vec<String>,
    pub agent: Vec<AgentKey>,
    pub refusals: Vec<String>,
    /// What the host's lockout guard refuses for the session the plan ran in (`--force`
    /// overrides it).
    pub lockout: Option<String>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct AgentKey {
    pub key: String,
    pub found: Option<String>,
    pub wanted: String,
}

impl HostPlan {
    /// Whether apply would refuse: a conflict, or the lockout guard without `--force`.
    pub fn refused(&self, force: bool) -> bool {
        !self.refusals.is_empty() || (self.lockout.is_some() && !force)
    }

    /// Every reason apply would refuse, for people.
    pub fn refusal_lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.refusals.clone();
        if let Some(l) = &self.lockout {
            out.push(format!(
                "the lockout guard (apply --force overrides it): {l}"
            ));
        }
        out
    }

    /// What changed on the host by other hands since netc set it up: owned agent keys with
    /// another value, a hand-edited nftables table, and live firewall changes (chains,
    /// ipsets) while their file is already current.
    pub fn drift(&self) -> usize {
        let file_changes = |name: &str| {
            self.files
                .iter()
                .any(|f| f["path"].as_str().is_some_and(|p| p.ends_with(name)))
        };
        let firewall = self.firewall.iter().filter(|c| {
            c.contains("changed since netc loaded it")
                || (c.starts_with("ipset ") && !file_changes("ipsets"))
                || (c.starts_with("IPv4:") && !file_changes("netc.v4"))
                || (c.starts_with("IPv6:") && !file_changes("netc.v6"))
        });
        firewall.count() + self.agent.iter().filter(|k| k.found.is_some()).count()
    }
}

/// One host, reached over ssh, with what to send it.
pub struct Remote<'a> {
    pub reach: Reach,
    pub name: &'a str,
    pub bundle: &'a [u8],
}

impl<'a> Remote<'a> {
    pub fn new(sending: &'a Sending, host: &str) -> Remote<'a> {
        Remote {
            reach: sending.reach(host),
            name: &sending.name,
            bundle: &sending.bundle,
        }
    }

    fn host(&self) -> &str {
        &self.reach.host
    }

    /// `netc VERB --stdin --host H [ARGS] -- NAME` with the bundle; stdout as `out` says,
    /// stderr relayed after `prefix`.
    fn run_netc(
        &self,
        verb: &str,
        args: &[&str],
        out: Out,
        prefix: &str,
    ) -> io::Result<super::ssh::Ran> {
        let mut rest = vec!["--stdin", "--host", self.host()];
        rest.extend(args);
        // The name may start with `-` (a topology at the repository's top).
        rest.extend(["--", self.name]);
        let args = self.reach.args(verb, &rest);
        self.reach
            .run(false, &args, Some(self.bundle), out, Some(prefix))
    }

    /// Step 2: the host's plan (refusals included), or why there is none.
    pub fn plan(&self, prefix: &str) -> Result<HostPlan, String> {
        let ran = self
            .run_netc("plan", &["--format", "json"], Out::Capture, prefix)
            .map_err(|e| e.to_string())?;
        let parsed = || -> Result<HostPlan, String> {
            let mut p: HostPlan = serde_json::from_slice(&ran.stdout)
                .map_err(|e| format!("netc plan on {} did not print a plan: {e}", self.host()))?;
            // A plan the lockout guard refuses exits 1, but still has its changes.
            let steps = !(p.network.is_empty()
                && p.files.is_empty()
                && p.firewall.is_empty()
                && p.agent.is_empty());
            p.changes = ran.status == Some(2) || (p.lockout.is_some() && steps);
            Ok(p)
        };
        match ran.status {
            Some(0 | 2) => parsed(),
            // Refusals come with a plan; other errors with their message only.
            Some(1) if !ran.stdout.is_empty() => parsed(),
            Some(1) => Err(format!(
                "netc plan failed on {}: {}",
                self.host(),
                ran.last_words()
            )),
            Some(SSH_FAILED) => Err(self.reach.unreachable(&ran)),
            other => Err(format!(
                "netc plan on {} ended with {}",
                self.host(),
                status_words(other)
            )),
        }
    }

    /// Steps 3 and 4: apply under the host's rollback timer, then confirm over a new
    /// connection. The error says what happened and what the host does about it.
    pub fn apply_and_confirm(
        &self,
        confirm: u64,
        force: bool,
        progress: &dyn Fn(&str),
        prefix: &str,
    ) -> Result<(), String> {
        let host = self.host();
        let seconds = confirm.to_string();
        let mut args = vec!["--confirm", &seconds];
        if force {
            args.push("--force");
        }
        progress(&format!("applying; undone in {confirm} s unless confirmed"));
        let ran = self
            .run_netc("apply", &args, Out::Relay(prefix), prefix)
            .map_err(|e| e.to_string())?;
        let timer = format!("{host}'s timer undoes whatever was applied within {confirm} s");
        match ran.status {
            Some(0) => {}
            Some(1) => {
                return Err(format!(
                    "apply was refused or failed on {host} (above); {host} is as it was"
                ));
            }
            Some(SSH_FAILED) => {
                return Err(format!(
                    "lost the connection to {host} while applying ({}); not confirming: {timer}",
                    ran.last_words()
                ));
            }
            other => {
                return Err(format!(
                    "netc apply on {host} ended with {}; not confirming: {timer}",
                    status_words(other)
                ));
            }
        }
        progress("confirming over a new connection");
        let ran = self
            .reach
            .run(
                true,
                &self.reach.args("confirm", &[]),
                None,
                Out::Relay(prefix),
                Some(prefix),
            )
            .map_err(|e| e.to_string())?;
        match ran.status {
            Some(0) => Ok(()),
            Some(SSH_FAILED) => Err(format!(
                "cannot confirm: a new connection to {host} fails ({}), so the change cut the \
                 way in; {timer}",
                ran.last_words()
            )),
            Some(1) => Err(format!(
                "{host} had nothing to confirm: its timer (or someone's rollback) undid the \
                 apply already"
            )),
            other => Err(format!(
                "netc confirm on {host} ended with {}; {timer}",
                status_words(other)
            )),
        }
    }
}

pub fn status_words(status: Option<i32>) -> String {
    status.map_or("a signal".to_string(), |s| format!("exit status {s}"))
}

/// What a remote apply needs beyond the host.
pub struct RemoteApply {
    pub confirm: u64,
    pub force: bool,
}

/// The rollback timer of a remote apply when `--confirm` is not given, in seconds.
pub const DEFAULT_CONFIRM: u64 = 60;

/// `netc apply --host H` from another machine: version, plan, apply under the timer, confirm.
pub fn apply(file: &Path, host: &str, o: &RemoteApply) -> CliResult {
    let sending = Sending::of(file)?;
    super::load::find_host(&sending.compiled, host)?;
    let remote = Remote::new(&sending, host);
    let progress = |step: &str| eprintln!("{host}: {step}");
    progress(&format!("netc {VERSION} over ssh to {}", remote.reach.dest));
    remote
        .reach
        .check_version()
        .map_err(|e| CliError::user(format!("{e}; nothing changed")))?;
    let plan = remote
        .plan("")
        .map_err(|e| CliError::user(format!("{e}; nothing changed")))?;
    if plan.refused(o.force) {
        for r in plan.refusal_lines() {
            eprintln!("{host}: refused: {r}");
        }
        return Err(CliError::user(
            "refusing to apply: resolve the conflicts above first; nothing changed",
        ));
    }
    if !plan.changes {
        println!("{host}: no changes");
        return Ok(Outcome::Done);
    }
    remote
        .apply_and_confirm(o.confirm, o.force, &progress, "")
        .map_err(CliError::user)?;
    progress("confirmed");
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_what_changed_on_the_host_by_hand() {
        let mut p = HostPlan {
            firewall: vec![
                "IPv4: create chain X (3 rules)".into(),
                "reload table inet netc (changed since netc loaded it)".into(),
            ],
            agent: vec![
                AgentKey {
                    key: "port".into(),
                    found: Some("1".into()),
                    wanted: "8250".into(),
                },
                AgentKey {
                    key: "host".into(),
                    found: None,
                    wanted: "a".into(),
                },
            ],
            ..HostPlan::default()
        };
        assert_eq!(p.drift(), 3);
        // A new rules file explains the live change: not drift.
        p.files = vec![serde_json::json!({"path": "/etc/iptables/netc.v4", "action": "replace"})];
        assert_eq!(p.drift(), 2);
        // So does a new ipsets file for a set's change.
        p.firewall
            .push("ipset X_v4: swap in 40 prefixes (+1 −0)".into());
        assert_eq!(p.drift(), 3);
        p.files
            .push(serde_json::json!({"path": "/etc/iptables/ipsets", "action": "replace"}));
        assert_eq!(p.drift(), 2);
    }
}
