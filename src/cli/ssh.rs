//! Running netc on another machine through the system `ssh` client (OpenSSH), so that
//! ~/.ssh/config, ProxyJump, the agent, known_hosts and ControlMaster work as the admin set
//! them. How each host is reached comes from netc.toml ([`Reach::of`]); the remote command
//! line is built from shell-quoted words ([`quote`]); output is relayed line by line.

use std::io::{self, BufRead, Read, Write};
use std::process::{Command, Stdio};

use netc::config::Settings;

/// How the admin's machine reaches one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub host: String,
    /// The ssh client and its options.
    pub ssh: Vec<String>,
    /// `[user@]address`: by default the host's name (ssh_config may map it).
    pub dest: String,
    /// The netc command on the host, as shell words.
    pub netc: String,
    /// The host's root for files and state, when not `/`.
    pub root: Option<String>,
}

/// ssh's exit status for its own failures (the remote command's status otherwise).
pub const SSH_FAILED: i32 = 255;

/// What a remote command did.
#[derive(Debug)]
pub struct Ran {
    /// The remote command's exit status, [`SSH_FAILED`] when ssh itself failed, None if ssh
    /// died by a signal.
    pub status: Option<i32>,
    /// Its stdout, when captured.
    pub stdout: Vec<u8>,
    /// Its stderr (and ssh's own messages), also when relayed.
    pub stderr: String,
}

impl Ran {
    /// The last line ssh or the remote printed, to quote in a message.
    pub fn last_words(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(nothing on stderr)")
            .trim()
    }
}

/// Where a remote command's stdout goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out<'a> {
    /// Kept in [`Ran::stdout`].
    Capture,
    /// Printed on this stdout, each line after the prefix.
    Relay(&'a str),
}

impl Reach {
    /// How to reach `host` according to `settings` (netc.toml's `[ssh]` and `[hosts.NAME]`).
    pub fn of(host: &str, settings: &Settings) -> Reach {
        let own = settings.host(host);
        let netc = own
            .and_then(|h| h.netc.as_ref())
            .or(settings.ssh.netc.as_ref())
            .map_or("netc".to_string(), |n| n.get_ref().clone());
        Reach {
            host: host.to_string(),
            ssh: settings
                .ssh
                .command
                .as_ref()
                .map_or(vec!["ssh".to_string()], |c| c.get_ref().clone()),
            dest: own
                .and_then(|h| h.ssh.as_ref())
                .map_or(host.to_string(), |d| d.get_ref().clone()),
            netc,
            root: own
                .and_then(|h| h.root.as_ref())
                .map(|r| r.get_ref().clone()),
        }
    }

    /// `ssh … -- DEST 'netc' 'arg' …`. A `fresh` connection never goes through a
    /// ControlMaster's: it proves that a new connection gets in.
    pub fn command(&self, fresh: bool, args: &[String]) -> Command {
        let mut c = Command::new(&self.ssh[0]);
        c.args(&self.ssh[1..]);
        // After the admin's options (the first value of an option wins in OpenSSH), before
        // ssh_config's: notice a connection cut by a change within seconds, not hours.
        c.args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]);
        if fresh {
            // `-S` is the one way to name the control path that the admin's own options
            // (`-o ControlPath=…`, `-S …`) cannot win over: it replaces, where `-o` keeps
            // the first value.
            c.args(["-o", "ControlMaster=no", "-S", "none"]);
        }
        let words: Vec<String> = args.iter().map(|a| quote(a)).collect();
        c.arg("--")
            .arg(&self.dest)
            .arg(format!("{} {}", self.netc, words.join(" ")));
        c
    }

    /// The words after `netc` for a verb on this host: `--root` when it has one.
    pub fn args(&self, verb: &str, rest: &[&str]) -> Vec<String> {
        let mut args = vec![verb.to_string()];
        if let Some(root) = &self.root {
            args.extend(["--root".to_string(), root.clone()]);
        }
        args.extend(rest.iter().map(|s| s.to_string()));
        args
    }

    /// Runs `netc ARGS` on the host, feeding `input`; stderr is relayed after `prefix` (None:
    /// only kept).
    pub fn run(
        &self,
        fresh: bool,
        args: &[String],
        input: Option<&[u8]>,
        out: Out,
        prefix: Option<&str>,
    ) -> io::Result<Ran> {
        let mut child = self
            .command(fresh, args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run {}: {e}", self.ssh[0])))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (captured, said) = std::thread::scope(|s| {
            if let (Some(mut pipe), Some(bytes)) = (stdin, input) {
                // A remote that stops reading early says why on stderr and in its status.
                s.spawn(move || pipe.write_all(bytes));
            }
            let said = s.spawn(move || relay(stderr, prefix, &mut io::stderr()));
            let captured = match out {
                Out::Capture => {
                    let mut bytes = Vec::new();
                    let _ = { stdout }.read_to_end(&mut bytes);
                    bytes
                }
                Out::Relay(p) => {
                    relay(stdout, Some(p), &mut io::stdout());
                    Vec::new()
                }
            };
            (captured, said.join().unwrap_or_default())
        });
        let status = child.wait()?;
        Ok(Ran {
            status: status.code(),
            stdout: captured,
            stderr: said,
        })
    }

    /// Refuses unless the host runs this very netc version: the error says both, and that
    /// nothing changed. Also the first sign of an unreachable host.
    pub fn check_version(&self) -> Result<(), String> {
        let ran = self
            .run(false, &["--version".to_string()], None, Out::Capture, None)
            .map_err(|e| e.to_string())?;
        let ours = format!("netc {}", env!("CARGO_PKG_VERSION"));
        let stdout = String::from_utf8_lossy(&ran.stdout);
        let mut lines = stdout.lines().map(str::trim).filter(|l| !l.is_empty());
        let theirs = lines.next_back().unwrap_or_default();
        // A shell that prints before the command (an echo in ~/.bashrc) garbles every
        // answer read from stdout, the plan too: said as what it is.
        let noise = lines.next();
        match ran.status {
            Some(0) if noise.is_some() => Err(format!(
                "the shell on {} prints `{}` before netc's own output (~/.bashrc, \
                 /etc/bash.bashrc or a login script): netc reads its answers from that \
                 output, so make the shell print nothing when it runs a command",
                self.host,
                noise.unwrap_or_default()
            )),
            Some(0) if theirs == ours => Ok(()),
            Some(0) => Err(format!(
                "{} runs {}, this is {ours}: install the same netc on both",
                self.host,
                if theirs.is_empty() {
                    "something that prints no version"
                } else {
                    theirs
                }
            )),
            Some(SSH_FAILED) => Err(self.unreachable(&ran)),
            Some(127) => Err(format!(
                "{} has no `{}` ({}); install netc there or set `netc` in netc.toml",
                self.host,
                self.netc,
                ran.last_words()
            )),
            _ => Err(format!(
                "`{} --version` failed on {} ({})",
                self.netc,
                self.host,
                ran.last_words()
            )),
        }
    }

    /// Why ssh failed, in one line.
    pub fn unreachable(&self, ran: &Ran) -> String {
        format!(
            "cannot reach {} over ssh ({}): {}",
            self.host,
            self.dest,
            ran.last_words()
        )
    }
}

/// Copies `from` to `to` line by line after `prefix` (None: copies nothing), ignoring a `to`
/// that cannot be written; returns everything read (the last 64 KiB).
fn relay(from: impl Read, prefix: Option<&str>, to: &mut impl Write) -> String {
    let mut kept = String::new();
    for line in io::BufReader::new(from).split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        if let Some(p) = prefix {
            let _ = writeln!(to, "{p}{line}");
        }
        kept.push_str(&line);
        kept.push('\n');
        if kept.len() > 64 * 1024 {
            kept.drain(..kept.len() - 32 * 1024);
        }
    }
    kept
}

/// One word for the remote shell: as it is when it is plainly safe, else single-quoted.
pub fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(toml: &str) -> Reach {
        let settings = netc::config::parse("netc.toml", toml).unwrap();
        Reach::of("chamomile", &settings)
    }

    #[test]
    fn defaults_are_the_host_name_and_netc() {
        let r = reach("");
        assert_eq!(
            (r.ssh, r.dest.as_str(), r.netc.as_str(), r.root),
            (vec!["ssh".to_string()], "chamomile", "netc", None)
        );
        let r = reach(
            "[ssh]\ncommand = [\"ssh\", \"-F\", \"c\"]\nnetc = \"sudo netc\"\n\
             [hosts.chamomile]\nssh = \"root@c.example\"\nroot = \"/srv/x y\"\n",
        );
        assert_eq!(r.dest, "root@c.example");
        assert_eq!(r.netc, "sudo netc");
        let c = r.command(true, &r.args("confirm", &[]));
        let argv: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(c.get_program(), "ssh");
        assert_eq!(
            argv,
            [
                "-F",
                "c",
                "-o",
                "ServerAliveInterval=5",
                "-o",
                "ServerAliveCountMax=3",
                "-o",
                "ControlMaster=no",
                "-S",
                "none",
                "--",
                "root@c.example",
                "sudo netc confirm --root '/srv/x y'",
            ]
        );
        // An ordinary connection may share a ControlMaster's.
        let c = r.command(false, &r.args("plan", &[]));
        assert!(!c.get_args().any(|a| a == "-S"));
    }

    #[test]
    fn quoting_survives_the_remote_shell() {
        for word in ["plain", "a b", "it's", "$(reboot)", "", "`x`;y", "-x", "ü"] {
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("printf %s {}", quote(word))])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), word);
        }
        assert_eq!(quote("topology/csc.csn"), "topology/csc.csn");
    }
}
