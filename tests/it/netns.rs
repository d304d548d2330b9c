//! Network namespaces for tests: created per test, removed on drop, never touching the host's
//! own network. Tests that need them call [`available`] first: it skips with a printed
//! reason where the capability is truly missing, and fails under CI (which runs as root), so
//! a broken set-up cannot pass silently.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// True if namespace tests can run here; otherwise prints why (or panics under CI).
pub fn available(test: &str, tools: &[&str]) -> bool {
    let reason = if !rustix::process::geteuid().is_root() {
        Some("not root".to_string())
    } else {
        let missing = tools.iter().find(|t| which(t).is_none());
        missing.map(|t| format!("`{t}` is not installed (script/setup installs it)"))
    };
    match reason {
        None => true,
        Some(r) if std::env::var_os("CI").is_some() => panic!("{test}: cannot run under CI: {r}"),
        Some(r) => {
            eprintln!("SKIPPED {test}: {r}");
            false
        }
    }
}

pub fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace that lives as long as this value.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("netc-{tag}-{}-{n}", std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a command inside the namespace, feeding `stdin`.
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command inside the namespace; panics with its output if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "in {}: {args:?} failed: {}",
            self.name,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs `f` on a thread inside the namespace. Sockets created there stay in it.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(format!("/run/netns/{}", self.name)).unwrap();
                rustix::thread::move_into_link_name_space(
                    file.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }

    /// A veth pair between two namespaces, both ends up.
    pub fn link(&self, name: &str, other: &Netns, other_name: &str) {
        self.ok(&[
            "ip",
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            other_name,
            "netns",
            &other.name,
        ]);
        self.ok(&["ip", "link", "set", name, "up"]);
        other.ok(&["ip", "link", "set", other_name, "up"]);
    }

    /// The kernel's view — links, addresses, routes, the filter tables — without what
    /// changes by itself (counters, timers, carrier).
    pub fn kernel(&self) -> String {
        let mut out = String::new();
        for args in [
            &["ip", "-br", "link"][..],
            &["ip", "-br", "addr"],
            &["ip", "route"],
            &["ip", "-6", "route"],
            &["iptables-save", "-t", "filter"],
            &["ip6tables-save", "-t", "filter"],
        ] {
            let text = self.ok(args);
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                out += &line.replace("LOWERLAYERDOWN", "DOWN");
                out.push('\n');
            }
        }
        out
    }

    /// Adds an address without duplicate address detection (IPv6 is usable at once).
    pub fn addr(&self, dev: &str, cidr: &str) {
        let mut args = vec!["ip", "addr", "add", cidr, "dev", dev];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.ok(&args);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Stop anything still running inside, then remove the namespace.
        if let Ok(o) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                if let Some(pid) = pid.parse().ok().and_then(rustix::process::Pid::from_raw) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run_ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// How a TCP connection attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Connected,
    /// Refused at once: a TCP RST or an ICMP port unreachable (REJECT).
    Refused,
    /// No answer in time: silently dropped.
    TimedOut,
}

/// Connects from `source` to `dest` (from the current thread's namespace).
pub fn connect(source: IpAddr, dest: SocketAddr) -> Verdict {
    use socket2::{Domain, Socket, Type};
    let domain = if dest.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    // Long enough for a lost answer's retransmits; a correct run never waits for it.
    match socket.connect_timeout(&dest.into(), Duration::from_secs(5)) {
        Ok(()) => Verdict::Connected,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Verdict::Refused,
        Err(e)
            if e.kind() == std::io::ErrorKind::TimedOut
                || e.kind() == std::io::ErrorKind::WouldBlock =>
        {
            Verdict::TimedOut
        }
        Err(e) => panic!("connect {source} → {dest}: {e}"),
    }
}
