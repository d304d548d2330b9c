//! `netc plan|apply --host H` and `--all` over real OpenSSH. The three csc hosts are network
//! namespaces, each with its own hostname (a UTS namespace), its own root (a scratch folder,
//! named in the test's netc.toml) and a real `sshd` on port 22 inside it; a "bastion"
//! namespace runs netc as the admin would. Keys, host keys, known_hosts and the ssh_config
//! (`-F`, with ControlMaster on) are made by the test in a temporary folder; nothing touches
//! the machine's own sshd or ~/.ssh, and every sshd and timer dies with its namespace.
//!
//! The bastion reaches each host over an out-of-band link (`oob0`, 192.0.2.0/24, not in the
//! topology) or, like an admin on the management VLAN, over VLAN 529: each host's
//! `<nic>.529` port is a veth whose other end is in the bastion's bridge `sw529`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::netns::{Netns, available};
use crate::support::*;

const TOOLS: &[&str] = &[
    "sshd",
    "ssh",
    "ssh-keygen",
    "unshare",
    "ss",
    "iptables-save",
    "ip6tables-save",
    "iptables-restore",
    "ip6tables-restore",
];

const NETC: &str = env!("CARGO_BIN_EXE_netc");

/// How the bastion reaches the hosts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Oob,
    Vlan529,
}

struct SiteHost {
    name: String,
    ns: Netns,
    oob: String,
    management: String,
    sshd: Option<Child>,
}

impl Drop for SiteHost {
    fn drop(&mut self) {
        if let Some(mut c) = self.sshd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The csc site in namespaces; everything else in `dir`.
struct Site {
    hosts: Vec<SiteHost>,
    bastion: Netns,
    dir: tempfile::TempDir,
}

impl Site {
    /// The whole site, set up in order: keys, the bastion's switches, then each host's
    /// namespace, links, addresses and sshd (one sequence, so one function).
    fn new(tag: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A repository holding the topology, so headers name it `topology/csc.csn`.
        fs::create_dir_all(d.join("site/.git")).unwrap();
        fs::create_dir_all(d.join("site/topology")).unwrap();
        fs::copy(
            root().join("topology/csc.csn"),
            d.join("site/topology/csc.csn"),
        )
        .unwrap();
        keygen(&d.join("id"));
        fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        fs::create_dir_all("/run/sshd").unwrap(); // sshd's privilege separation folder

        let bastion = Netns::new(&format!("{tag}-b"));
        bastion.ok(&["ip", "link", "add", "sw529", "type", "bridge"]);
        bastion.ok(&["ip", "link", "add", "swoob", "type", "bridge"]);
        for sw in ["sw529", "swoob"] {
            bastion.ok(&["ip", "link", "set", sw, "up"]);
        }
        bastion.addr("sw529", "172.19.168.30/27");
        bastion.addr("swoob", "192.0.2.1/24");

        let topology = compile(&root().join("topology/csc.csn")).topology.unwrap();
        let mut hosts = Vec::new();
        let mut known = String::new();
        for (i, h) in topology.hosts.iter().enumerate() {
            let ns = Netns::new(&format!("{tag}-{i}"));
            let veth = |name: &str, peer: &str| {
                ns.ok(&[
                    "ip", "link", "add", name, "type", "veth", "peer", "name", peer,
                ])
            };
            let mut n = 0;
            let mut next = || {
                n += 1;
                format!("x{n}")
            };
            for nic in &h.nics {
                veth(&nic.name, &next());
            }
            let mut management = None;
            for b in &h.bridges {
                if b.vlan == Some(529) {
                    let peer = format!("m{i}");
                    ns.link(&b.port(), &bastion, &peer);
                    bastion.ok(&["ip", "link", "set", &peer, "master", "sw529"]);
                    let v4 = b.addresses.iter().find(|a| a.net.addr().is_ipv4());
                    management = v4.map(|a| a.net.addr().to_string());
                } else {
                    veth(&b.port(), &next());
                }
            }
            let oob = format!("192.0.2.{}", 10 + i);
            ns.link("oob0", &bastion, &format!("o{i}"));
            ns.addr("oob0", &format!("{oob}/24"));
            bastion.ok(&["ip", "link", "set", &format!("o{i}"), "master", "swoob"]);

            let hd = d.join(&h.name);
            fs::create_dir_all(&hd).unwrap();
            keygen(&hd.join("host_key"));
            let key = fs::read_to_string(hd.join("host_key.pub")).unwrap();
            known += &format!("{} {key}", h.name);
            let mut host = SiteHost {
                name: h.name.clone(),
                ns,
                oob,
                management: management.expect("a VLAN 529 address"),
                sshd: None,
            };
            host.start_sshd(d);
            hosts.push(host);
        }
        fs::write(d.join("known_hosts"), known).unwrap();
        let site = Site {
            hosts,
            bastion,
            dir,
        };
        site.reach(Via::Oob);
        site.settings(&[]);
        site
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn host(&self, name: &str) -> &SiteHost {
        self.hosts.iter().find(|h| h.name == name).unwrap()
    }

    /// The host's `/` for files and state.
    fn root(&self, name: &str) -> PathBuf {
        self.dir().join("roots").join(format!("{name} 'root'"))
    }

    /// The ssh_config: every host by its name, at its out-of-band or VLAN 529 address.
    fn reach(&self, via: Via) {
        let d = self.dir().display();
        let mut config = format!(
            "Host *\n  User root\n  IdentityFile {d}/id\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  \
             StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 10\n  \
             ControlMaster auto\n  ControlPath {d}/cm-%C\n  ControlPersist 30\n"
        );
        for h in &self.hosts {
            let address = match via {
                Via::Oob => &h.oob,
                Via::Vlan529 => &h.management,
            };
            config += &format!(
                "Host {}\n  HostName {address}\n  HostKeyAlias {}\n",
                h.name, h.name
            );
        }
        fs::write(self.dir().join("ssh_config"), config).unwrap();
    }

    /// netc.toml beside the topology: the ssh command, netc on the hosts, each host's root,
    /// and `netc` overrides per host.
    fn settings(&self, netc: &[(&str, &Path)]) {
        let mut toml = format!(
            "[ssh]\ncommand = [\"ssh\", \"-F\", \"{}\"]\nnetc = \"{NETC}\"\n",
            self.dir().join("ssh_config").display()
        );
        for h in &self.hosts {
            toml += &format!(
                "\n[hosts.{}]\nroot = \"{}\"\n",
                h.name,
                self.root(&h.name).display()
            );
            if let Some((_, path)) = netc.iter().find(|(n, _)| *n == h.name) {
                toml += &format!("netc = \"{}\"\n", path.display());
            }
        }
        fs::write(self.dir().join("site/topology/netc.toml"), toml).unwrap();
    }

    fn edit_topology(&self, old: &str, new: &str) {
        let path = self.dir().join("site/topology/csc.csn");
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(old), "the topology has no `{old}`");
        fs::write(path, text.replacen(old, new, 1)).unwrap();
    }

    /// netc in the bastion, from the site's checkout, as the admin runs it.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.bastion.name, NETC])
            .args(args)
            .current_dir(self.dir().join("site"))
            .env("HOME", self.dir())
            .env("NO_COLOR", "1")
            .env_remove("SSH_CONNECTION")
            .env_remove("SSH_AUTH_SOCK");
        c
    }

    fn netc(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// What a host has: its kernel's links, addresses, routes and filter table, and its
    /// files with their inodes and mtimes.
    fn state(&self, name: &str) -> State {
        use std::os::unix::fs::MetadataExt;
        let ns = &self.host(name).ns;
        let kernel = ns.kernel();
        let root = self.root(name);
        let files = if root.join("etc").exists() {
            read_tree(&root.join("etc"))
                .into_iter()
                .map(|(rel, bytes)| {
                    let m = fs::metadata(root.join("etc").join(&rel)).unwrap();
                    let mtime = m.mtime() * 1_000_000_000 + m.mtime_nsec();
                    (rel, bytes, m.ino(), mtime)
                })
                .collect()
        } else {
            Vec::new()
        };
        (kernel, files)
    }

    fn pending(&self, name: &str) -> PathBuf {
        self.root(name).join("var/lib/netc/journal")
    }

    fn rules(&self, name: &str) -> String {
        self.host(name).ns.ok(&["iptables-save", "-t", "filter"])
    }

    /// A script standing in for netc on a host.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir().join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

impl SiteHost {
    /// sshd on port 22 in the host's namespace, under the host's name (its own UTS
    /// namespace, so that apply's hostname check passes as on the real host).
    fn start_sshd(&mut self, d: &Path) {
        let hd = d.join(&self.name);
        let config = format!(
            "ListenAddress 0.0.0.0\nHostKey {h}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile none\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel VERBOSE\n",
            h = hd.display(),
            d = d.display()
        );
        fs::write(hd.join("sshd_config"), config).unwrap();
        let log = fs::File::create(hd.join("sshd.log")).unwrap();
        // The VIP's check script must exist for keepalived -t: in a private mount namespace,
        // inherited by every netc the sshd starts.
        let topo = compile(&d.join("site/topology/csc.csn"))
            .topology
            .expect("valid");
        let scripts =
            crate::tools::provide_scripts(&topo, &self.name, &hd.join("scripts"), "exit 0");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns.name,
                "unshare",
                "--uts",
                "-m",
                "sh",
                "-c",
            ])
            .arg(format!(
                "{scripts}hostname {} && exec /usr/sbin/sshd -D -e -f {}",
                self.name,
                hd.join("sshd_config").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.sshd = Some(child);
        wait_for(
            || self.ns.ok(&["ss", "-Hltn", "sport = :22"]).contains(":22"),
            "sshd to listen",
        );
    }

    fn stop_sshd(&mut self) {
        let mut c = self.sshd.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

/// A host's files and their text, without the backups apply leaves (`*.netc-old`).
fn texts(state: &State) -> Vec<(String, String)> {
    let files = state.1.iter().filter(|f| !f.0.contains(".netc-old"));
    files
        .map(|f| (f.0.clone(), String::from_utf8_lossy(&f.1).into_owned()))
        .collect()
}

fn keygen(path: &Path) {
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "netc-test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ready(test: &str) -> bool {
    available(test, TOOLS)
}

/// `a` is said before `b` in `text`.
fn before(text: &str, a: &str, b: &str) -> bool {
    matches!((text.find(a), text.find(b)), (Some(x), Some(y)) if x < y)
}

/// A host's kernel (links, addresses, routes, filter table) and files (path, bytes, inode,
/// mtime).
type State = (String, Vec<(String, Vec<u8>, u64, i64)>);

const ORDER: [&str; 3] = ["ginkgo", "chamomile", "biloba"];

/// One scenario from start to end (a site takes seconds to set up, so it is not split).
#[test]
fn apply_all_builds_every_host_in_order_and_a_second_run_has_nothing_to_do() {
    if !ready("netc apply --all") {
        return;
    }
    let site = Site::new("all");
    let o = site.netc(&["plan", "--all", "topology/csc.csn", "--parallel", "3"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    let table = stdout(&o);
    assert!(
        table.starts_with("HOST       STATUS   NETWORK  FILES  FIREWALL  AGENT  DRIFT\n"),
        "{table}"
    );
    for h in ORDER {
        assert!(table.contains(&format!("{h:<9}  changes")), "{table}");
    }
    // A host netc never set up has changes, not drift: its firewall changes come with
    // their rules files.
    assert_eq!(drift(&table), [0, 0, 0], "{table}");

    let o = site.netc(&["apply", "--all", "./topology/csc.csn"]);
    assert_exit(&o, 0, "");
    let err = stderr(&o);
    // Backups before the master: chamomile before biloba (mariadb's MASTER).
    assert!(
        before(&err, "[1/3] ginkgo: applying", "[2/3] chamomile: applying"),
        "{err}"
    );
    assert!(
        before(&err, "[2/3] chamomile: confirmed", "[3/3] biloba: applying"),
        "{err}"
    );
    for h in ORDER {
        assert!(
            stdout(&o).contains(&format!("{h:<9}  applied and confirmed")),
            "{}",
            stdout(&o)
        );
        assert!(!site.pending(h).exists(), "{h} is confirmed");
        let addrs = site.host(h).ns.ok(&["ip", "-br", "addr", "show", "br529"]);
        assert!(addrs.contains(&site.host(h).management), "{h}: {addrs}");
        let interfaces = fs::read_to_string(site.root(h).join("etc/network/interfaces")).unwrap();
        assert!(
            interfaces.starts_with("# generated by netc from topology/csc.csn;"),
            "{interfaces}"
        );
    }

    // Again, with the topology named by its absolute path from another folder: the headers
    // are the same, so nothing to do, and nothing done.
    let states: Vec<_> = ORDER.iter().map(|h| site.state(h)).collect();
    let absolute = site.dir().join("site/topology/csc.csn");
    let o = site
        .command(&["apply", "--all", absolute.to_str().unwrap()])
        .current_dir("/")
        .output()
        .unwrap();
    assert_exit(&o, 0, "no host has changes");
    let after: Vec<_> = ORDER.iter().map(|h| site.state(h)).collect();
    assert!(after == states, "the second run changed something");
    let o = site.netc(&["plan", "--host", "chamomile", "topology/csc.csn"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).starts_with("chamomile: no changes\n"),
        "{}",
        stdout(&o)
    );
    let o = site.netc(&["plan", "--all", "topology/csc.csn", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let hosts: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ORDER);
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .all(|h| h["changes"] == false)
    );
    let o = site.netc(&["apply", "--host", "biloba", "topology/csc.csn"]);
    assert_exit(&o, 0, "");
    assert_eq!(stdout(&o), "biloba: no changes\n");
    // One host with a change, from the bastion: applied under its timer and confirmed —
    // over a connection of its own even when the admin's ssh command names a ControlPath
    // (on ssh's command line, the first `-o` of an option wins).
    let toml = site.dir().join("site/topology/netc.toml");
    let admin = format!(
        "\", \"-o\", \"ControlPath={}/admin-%C\"]\n",
        site.dir().display()
    );
    let text = fs::read_to_string(&toml).unwrap();
    fs::write(&toml, text.replacen("\"]\n", &admin, 1)).unwrap();
    let log = site.dir().join("chamomile/sshd.log");
    let logins = || {
        let log = fs::read_to_string(&log).unwrap();
        log.matches("Accepted publickey").count()
    };
    let logged_in = logins();
    site.edit_topology("allow vlan 529", "allow vlan 529\n    allow 203.0.113.9");
    let o = site.netc(&[
        "apply",
        "--host",
        "chamomile",
        "topology/csc.csn",
        "--confirm",
        "30",
    ]);
    assert_exit(&o, 0, "chamomile: confirming over a new connection\n");
    assert!(
        stderr(&o).ends_with("chamomile: confirmed\n"),
        "{}",
        stderr(&o)
    );
    assert!(site.rules("chamomile").contains("203.0.113.9"));
    assert!(!site.pending("chamomile").exists());
    // The admin's ControlMaster, then the confirmation's own connection.
    assert_eq!(
        logins() - logged_in,
        2,
        "{}",
        fs::read_to_string(&log).unwrap()
    );
    assert!(
        !site.rules("ginkgo").contains("203.0.113.9"),
        "only chamomile"
    );
    // A rule added by hand to netc's chain, its rules file current: drift on that host only.
    site.host("chamomile").ns.ok(&[
        "iptables",
        "-A",
        "MANAGEMENT-SERVICES",
        "-s",
        "203.0.113.7",
        "-j",
        "RETURN",
    ]);
    let o = site.netc(&["plan", "--all", "topology/csc.csn"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(drift(&stdout(&o)), [0, 1, 0], "{}", stdout(&o));
    // A topology whose name starts with `-` (at the top of the repository) reaches the host
    // as a name, not an option: a plan (its headers name `-csc.csn`, so files change).
    let top = site.dir().join("site");
    fs::copy(top.join("topology/csc.csn"), top.join("-csc.csn")).unwrap();
    fs::copy(top.join("topology/netc.toml"), top.join("netc.toml")).unwrap();
    let o = site.netc(&["plan", "--host", "biloba", "./-csc.csn"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("~ /etc/network/interfaces"),
        "{}",
        stdout(&o)
    );
}

/// The DRIFT column of `plan --all`'s table, a number per host.
fn drift(table: &str) -> Vec<usize> {
    table
        .lines()
        .skip(1)
        .take(ORDER.len())
        .map(|row| row.split_whitespace().last().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_change_that_cuts_the_way_in_is_undone_by_the_timer_and_stops_the_rollout() {
    if !ready("netc apply --all, cut off") {
        return;
    }
    let site = Site::new("cut");
    assert_exit(&site.netc(&["apply", "--all", "topology/csc.csn"]), 0, "");
    // From now on the admin reaches the hosts on the management VLAN, and chamomile's
    // management address moves.
    site.reach(Via::Vlan529);
    site.edit_topology("address 172.19.168.23 ", "address 172.19.168.24 ");
    let chamomile = site.state("chamomile");
    let biloba = site.state("biloba");

    // Without --force, chamomile's lockout guard refuses in its plan, so the rollout is
    // refused before anything changes anywhere.
    let ginkgo = site.state("ginkgo");
    let o = site.netc(&["apply", "--all", "topology/csc.csn", "--confirm", "10"]);
    assert_exit(&o, 1, "refusing to roll out");
    let out = stdout(&o);
    assert!(out.contains("chamomile  refused"), "{out}");
    assert!(
        out.contains("chamomile: refused: the lockout guard") && out.contains("depends on"),
        "{out}"
    );
    assert!(site.state("ginkgo") == ginkgo, "ginkgo changed");
    assert!(site.state("chamomile") == chamomile, "chamomile changed");
    assert!(site.state("biloba") == biloba, "biloba changed");
    // A single-host apply says the same, and changes nothing.
    let o = site.netc(&["apply", "--host", "chamomile", "topology/csc.csn"]);
    assert_exit(&o, 1, "chamomile: refused: the lockout guard");
    assert!(site.state("chamomile") == chamomile, "chamomile changed");

    // With --force it is applied, the new connection that would confirm it fails (the
    // address is gone), and chamomile's timer undoes it. biloba is still not started.
    let o = site.netc(&[
        "apply",
        "--all",
        "topology/csc.csn",
        "--confirm",
        "10",
        "--force",
    ]);
    assert_exit(&o, 1, "chamomile");
    let out = stdout(&o);
    assert!(out.contains("ginkgo     applied and confirmed"), "{out}");
    assert!(out.contains("chamomile  FAILED: "), "{out}");
    assert!(out.contains("biloba     not started"), "{out}");
    wait_for(|| !site.pending("chamomile").exists(), "chamomile's timer");
    let log = fs::read_to_string(site.root("chamomile").join("var/lib/netc/rollback.log")).unwrap();
    assert!(log.contains("the host is as it was"), "{log}");
    assert_eq!(
        site.state("chamomile").0,
        chamomile.0,
        "chamomile's kernel is as it was"
    );
    assert!(
        texts(&site.state("chamomile")) == texts(&chamomile),
        "chamomile's files are as they were"
    );
    assert!(site.state("biloba") == biloba, "biloba was touched");
}

#[test]
fn the_local_netc_killed_mid_rollout_leaves_the_host_under_way_to_its_timer() {
    if !ready("netc apply --all, killed") {
        return;
    }
    let site = Site::new("kill");
    assert_exit(&site.netc(&["apply", "--all", "topology/csc.csn"]), 0, "");
    site.edit_topology("allow vlan 529", "allow vlan 529\n    allow 203.0.113.9");
    // chamomile's netc holds the connection open once its apply is done: the rollout is
    // then certainly between apply and confirm on chamomile.
    let held = site.dir().join("held");
    let hold = site.script(
        "hold-netc",
        &format!(
            "{NETC} \"$@\"\nrc=$?\nif [ \"$1\" = apply ]; then : > '{}'; sleep 600; fi\nexit $rc",
            held.display()
        ),
    );
    site.settings(&[("chamomile", &hold)]);
    let biloba = site.state("biloba");

    // Three at a time: ginkgo and chamomile start together; biloba (mariadb's MASTER) must
    // wait for chamomile (its backup), which never finishes.
    let mut admin = site.command(&[
        "apply",
        "--all",
        "topology/csc.csn",
        "--confirm",
        "8",
        "--parallel",
        "3",
    ]);
    admin.stdout(Stdio::null()).stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut admin, 0);
    let mut child = admin.spawn().unwrap();
    wait_for(|| held.exists(), "chamomile's apply");
    wait_for(
        || site.rules("ginkgo").contains("203.0.113.9") && !site.pending("ginkgo").exists(),
        "ginkgo confirmed",
    );
    assert!(site.pending("chamomile").exists(), "armed");
    assert!(site.rules("chamomile").contains("203.0.113.9"), "applied");
    let group = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process_group(group, rustix::process::Signal::KILL).unwrap();
    child.wait().unwrap();

    wait_for(|| !site.pending("chamomile").exists(), "chamomile's timer");
    assert!(!site.rules("chamomile").contains("203.0.113.9"), "undone");
    // ginkgo came first and stays confirmed; biloba was never touched.
    assert!(site.rules("ginkgo").contains("203.0.113.9"));
    assert!(!site.pending("ginkgo").exists());
    assert!(site.state("biloba") == biloba, "biloba was touched");
}

#[test]
fn another_version_and_an_unreachable_host_are_refused_before_anything_changes() {
    if !ready("netc apply --all, refused") {
        return;
    }
    let mut site = Site::new("refuse");
    let old = site.script("old-netc", "echo 'netc 0.0.1'");
    site.settings(&[("biloba", &old)]);
    site.hosts
        .iter_mut()
        .find(|h| h.name == "ginkgo")
        .unwrap()
        .stop_sshd();
    site.host("chamomile").ns.ok(&["ip", "link", "del", "eno2"]);
    let states: Vec<_> = ORDER.iter().map(|h| site.state(h)).collect();

    let o = site.netc(&["apply", "--all", "topology/csc.csn"]);
    assert_exit(
        &o,
        1,
        "refusing to roll out: a host above cannot be planned; nothing changed",
    );
    let out = stdout(&o);
    let ours = format!("netc {}", env!("CARGO_PKG_VERSION"));
    assert!(
        out.contains(&format!("biloba: biloba runs netc 0.0.1, this is {ours}")),
        "{out}"
    );
    assert!(
        out.contains("ginkgo: cannot reach ginkgo over ssh (ginkgo): "),
        "{out}"
    );
    assert!(out.contains("chamomile  refused  "), "{out}");
    assert!(
        out.contains("chamomile: refused: NIC eno2 does not exist on this host"),
        "{out}"
    );

    let o = site.netc(&["apply", "--host", "biloba", "topology/csc.csn"]);
    assert_exit(
        &o,
        1,
        &format!(
            "biloba runs netc 0.0.1, this is {ours}: install the same netc on both; nothing changed"
        ),
    );
    let o = site.netc(&["plan", "--host", "ginkgo", "topology/csc.csn"]);
    let refused = format!(
        "cannot reach ginkgo over ssh (ginkgo): ssh: connect to host {} port 22: \
         Connection refused",
        site.host("ginkgo").oob
    );
    assert_exit(&o, 1, &refused);
    // A shell that prints on stdout before the command runs (an echo in ~/.bashrc): said
    // as that, not as another version.
    let noisy = site.script(
        "noisy-netc",
        &format!("echo 'Welcome to biloba'; exec {NETC} \"$@\""),
    );
    site.settings(&[("biloba", &noisy)]);
    let o = site.netc(&["plan", "--host", "biloba", "topology/csc.csn"]);
    assert_exit(
        &o,
        1,
        "the shell on biloba prints `Welcome to biloba` before netc's own output",
    );
    // An ssh destination that leads to another machine (biloba, reached as chamomile).
    let config = fs::read_to_string(site.dir().join("ssh_config")).unwrap();
    let chamomile = format!(
        "HostName {}\n  HostKeyAlias chamomile",
        site.host("chamomile").oob
    );
    let biloba = format!(
        "HostName {}\n  HostKeyAlias biloba",
        site.host("biloba").oob
    );
    fs::write(
        site.dir().join("ssh_config"),
        config.replace(&chamomile, &biloba),
    )
    .unwrap();
    let o = site.netc(&["apply", "--host", "chamomile", "topology/csc.csn"]);
    assert_exit(
        &o,
        1,
        "this machine is `biloba`, not `chamomile`: the ssh destination for chamomile leads elsewhere",
    );
    let after: Vec<_> = ORDER.iter().map(|h| site.state(h)).collect();
    assert!(after == states, "something changed");
    assert!(!site.dir().join("roots").exists());
}

#[test]
fn the_ansible_playbook_reports_changed_and_ok_as_netc_says() {
    if !ready("ansible") || !available("ansible", &["ansible-playbook"]) {
        return;
    }
    let site = Site::new("ansible");
    let o = site.netc(&["inventory", "topology/csc.csn"]);
    assert_exit(&o, 0, "");
    fs::write(site.dir().join("site/inventory.json"), stdout(&o)).unwrap();
    let play = |extra: &[&str]| -> serde_json::Value {
        let d = site.dir();
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &site.bastion.name,
                "ansible-playbook",
                "-i",
            ])
            .arg(d.join("site/inventory.json"))
            .arg(root().join("contrib/ansible/netc.yml"))
            .args([
                "-e",
                &format!("netc={NETC}"),
                "-e",
                "netc_topology=topology/csc.csn",
            ])
            .args(extra)
            .current_dir(d.join("site"))
            .env("HOME", d)
            .env("ANSIBLE_HOME", d.join("ansible"))
            .env("ANSIBLE_LOCAL_TEMP", d.join("ansible/tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env_remove("SSH_CONNECTION")
            .output()
            .unwrap();
        recap(&stdout(&o)).unwrap_or_else(|| panic!("no PLAY RECAP: {}{}", stdout(&o), stderr(&o)))
    };
    let counts = |stats: &serde_json::Value, what: &str| -> Vec<i64> {
        ORDER
            .iter()
            .map(|h| stats[h][what].as_i64().unwrap_or(0))
            .collect()
    };
    // --check is plan only: every host has changes, none is applied.
    let stats = play(&["--check"]);
    assert_eq!(counts(&stats, "changed"), [1, 1, 1], "{stats}");
    assert!(!site.root("ginkgo").exists());
    let stats = play(&[]);
    assert_eq!(counts(&stats, "changed"), [1, 1, 1], "{stats}");
    assert_eq!(counts(&stats, "failed"), [0, 0, 0], "{stats}");
    for h in ORDER {
        assert!(!site.pending(h).exists(), "{h} confirmed");
    }
    let stats = play(&[]);
    assert_eq!(counts(&stats, "changed"), [0, 0, 0], "{stats}");
    assert_eq!(counts(&stats, "ok"), [1, 1, 1], "{stats}");
    // A host netc fails on is failed, and the playbook stops there.
    site.edit_topology("allow vlan 529", "allow vlan 529\n    allow 203.0.113.9");
    let old = site.script("old-netc", "echo 'netc 0.0.1'");
    site.settings(&[("ginkgo", &old)]);
    let stats = play(&[]);
    assert_eq!(counts(&stats, "failed")[0], 1, "{stats}");
    assert!(
        !site.rules("chamomile").contains("203.0.113.9"),
        "stopped at ginkgo"
    );
}

/// VIPs that chain deeper than the playbook's three waves: its first play refuses the
/// topology before any host is planned, instead of skipping the fourth wave in silence.
#[test]
fn the_ansible_playbook_refuses_a_wave_it_has_no_play_for() {
    use std::os::unix::fs::PermissionsExt;
    if !available("ansible, four waves", &["ansible-playbook"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut topo = "vlan 10 \"m\" {\n role management\n prefix 192.0.2.0/24\n}\n".to_string();
    let hosts = ["a", "b", "c", "d"];
    for (i, h) in hosts.iter().enumerate() {
        topo += &format!(
            "host {h} {{\n nic e0\n bridge br10 vlan 10 on e0 {{\n  address 192.0.2.{}\n }}\n}}\n",
            i + 1
        );
    }
    // a is b's master, b is c's, c is d's: d, c, b, a in waves 1 to 4.
    for (i, pair) in hosts.windows(2).enumerate() {
        topo += &format!(
            "vip v{i} {{\n vlan 10\n address 192.0.2.{}\n router-id {}\n member {} priority 150\n \
             member {} priority 100\n}}\n",
            20 + i,
            i + 1,
            pair[0],
            pair[1]
        );
    }
    fs::write(d.join("deep.csn"), topo).unwrap();
    let o = Command::new(NETC)
        .args(["inventory", "deep.csn"])
        .current_dir(d)
        .output()
        .unwrap();
    assert_exit(&o, 0, "");
    assert!(stdout(&o).contains("netc_wave_4"), "{}", stdout(&o));
    fs::write(d.join("inventory.json"), stdout(&o)).unwrap();
    // A stand-in netc: every host has changes, every apply succeeds.
    let netc = d.join("netc");
    let calls = d.join("calls");
    fs::write(
        &netc,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\n[ \"$1\" = plan ] && exit 2\nexit 0\n",
            calls.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&netc, fs::Permissions::from_mode(0o755)).unwrap();
    let o = Command::new("ansible-playbook")
        .arg("-i")
        .arg(d.join("inventory.json"))
        .arg(root().join("contrib/ansible/netc.yml"))
        .args(["-e", &format!("netc={}", netc.display())])
        .args(["-e", "netc_topology=deep.csn"])
        .current_dir(d)
        .env("HOME", d)
        .env("ANSIBLE_HOME", d.join("ansible"))
        .env("ANSIBLE_LOCAL_TEMP", d.join("ansible/tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    let stats = recap(&stdout(&o)).unwrap_or_else(|| panic!("no PLAY RECAP: {}", stdout(&o)));
    assert_eq!(stats["a"]["failed"], 1, "{stats}");
    assert!(
        stdout(&o).contains("a is in wave 4, and this playbook has plays for waves 1 to 3"),
        "{}",
        stdout(&o)
    );
    assert!(
        !calls.exists(),
        "netc ran: {}",
        fs::read_to_string(&calls).unwrap()
    );
}

/// Ansible's PLAY RECAP as `{host: {ok: N, changed: N, failed: N, ...}}`.
fn recap(out: &str) -> Option<serde_json::Value> {
    let (_, recap) = out.split_once("PLAY RECAP")?;
    let mut stats = serde_json::Map::new();
    for line in recap.lines().skip(1).filter(|l| l.contains(" : ")) {
        let (host, counts) = line.split_once(" : ").unwrap();
        let counts = counts.split_whitespace().filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), serde_json::json!(v.parse::<i64>().ok()?)))
        });
        stats.insert(host.trim().to_string(), counts.collect());
    }
    Some(stats.into())
}

#[test]
fn the_receiving_end_refuses_another_version_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let run = |stdin: &str| {
        use std::io::Write;
        let mut c = Command::new(NETC)
            .args(["apply", "--stdin", "--host", "chamomile", "--root"])
            .arg(dir.path())
            .arg("topology/csc.csn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    let topology = fs::read_to_string(root().join("topology/csc.csn")).unwrap();
    let bundle = serde_json::json!({"netc": "9.9.9", "topology": topology, "settings": null});
    let o = run(&bundle.to_string());
    assert_exit(
        &o,
        1,
        &format!(
            "this host runs netc {}, the sender runs netc 9.9.9: install the same netc on both; nothing changed",
            env!("CARGO_PKG_VERSION")
        ),
    );
    let o = run("vlan 529 \"x\" {}");
    assert_exit(&o, 1, "--stdin reads what netc sends over ssh");
    let bundle = serde_json::json!({"netc": env!("CARGO_PKG_VERSION"), "topology": "vlan 1 {", "settings": null});
    assert_exit(&run(&bundle.to_string()), 1, "netc::syntax");
    let bundle = serde_json::json!({"netc": env!("CARGO_PKG_VERSION"), "topology": topology, "settings": "[firewall]\ntarget = 3\n"});
    assert_exit(&run(&bundle.to_string()), 1, "netc::bad-config");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// The receiving end applies and arms its timer even when its connection is gone: its
/// stdout and stderr are pipes whose readers have closed (as when a change cuts the SSH
/// connection, or the admin's ssh dies), so every write fails.
#[test]
fn the_receiving_end_finishes_an_apply_whose_connection_is_gone() {
    if !ready("netc apply --stdin, output gone") {
        return;
    }
    use std::io::Write;
    // chamomile in a namespace, as the apply tests have it (check scripts provided).
    let h = crate::apply::Host::new("gone");
    let root = h.root();
    let topology = fs::read_to_string(crate::support::root().join("topology/csc.csn")).unwrap();
    let bundle = serde_json::json!({"netc": env!("CARGO_PKG_VERSION"), "topology": topology, "settings": null});
    let mut child = h
        .command(&[
            "apply",
            "--stdin",
            "--host",
            "chamomile",
            "--force-host",
            "--confirm",
            "600",
            "--root",
            root.to_str().unwrap(),
            "topology/csc.csn",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The readers go before netc writes anything (it reads all of stdin first).
    drop(child.stdout.take());
    drop(child.stderr.take());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(bundle.to_string().as_bytes()).unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(root.join("var/lib/netc/journal").exists(), "armed");
    assert!(
        h.ns.ok(&["ip", "-br", "addr"]).contains("172.19.168.23/27"),
        "applied"
    );
}

#[test]
fn a_host_in_netc_toml_that_the_topology_lacks_is_a_positioned_mistake() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(root().join("topology/csc.csn"), dir.path().join("csc.csn")).unwrap();
    fs::write(
        dir.path().join("netc.toml"),
        "[hosts.chamomle]\nssh = \"root@chamomile.example\"\n",
    )
    .unwrap();
    for args in [
        &["check", "csc.csn"][..],
        &["build", "csc.csn", "-o", "out"],
        &["build", "csc.csn", "--check", "-o", "out"],
        &["plan", "--all", "csc.csn"],
        &["apply", "--host", "ginkgo", "csc.csn"],
    ] {
        let o = netc(args, dir.path());
        assert_exit(&o, 1, "netc::unknown-host");
        let err = stderr(&o);
        assert!(err.contains("netc.toml:1:8"), "{err}");
        assert!(err.contains("did you mean `chamomile`?"), "{err}");
    }
    assert!(
        !dir.path().join("out").exists(),
        "a build with a mistake writes nothing"
    );
    // With the topology's own warnings, in the one JSON document check prints.
    let o = netc(&["check", "--format", "json", "csc.csn"], dir.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    let text = doc.to_string();
    assert!(text.contains("\"netc::unknown-host\""), "{text}");
    assert!(text.contains("netc::guest-bridge-name-too-long"), "{text}");
    fs::write(
        dir.path().join("netc.toml"),
        "[hosts.ginkgo]\nssh = \"-oProxyCommand=x\"\n",
    )
    .unwrap();
    let o = netc(&["plan", "--host", "ginkgo", "csc.csn"], dir.path());
    assert_exit(&o, 1, "netc::bad-config");
    assert!(
        stderr(&o).contains("not an ssh destination"),
        "{}",
        stderr(&o)
    );
}
