//! Reading the live state that is not the network: the firewall as iptables-save and nft
//! list it (the `inet netc` table itself is read over netlink), and netc's files under the
//! host's root. [`Live`] bundles the readers so that
//! the planner can be given others in tests.

use std::io;
use std::path::Path;

use super::left::Left;
use super::net::LiveNet;
use super::nftnl::Snapshot;
use super::state::State;
use crate::model::Family;
use crate::render::NFT_TABLE;
use crate::tool::Tool;

/// Where the live state comes from: the filesystem under `root`, the network, and the
/// firewall as `iptables-save -t filter` prints it, per family.
pub struct Live<'a> {
    pub root: &'a Path,
    pub net: &'a LiveNet,
    pub iptables_save: &'a dyn Fn(Family) -> io::Result<String>,
    /// What netc left in iptables-nft's tables, if no table changed since ([`super::left`]):
    /// then iptables-save need not run for a family whose rules are still the same.
    pub iptables_left: Option<&'a Left>,
    /// `ipset save`, read only when the host has netc ipsets.
    pub ipset_save: &'a dyn Fn() -> io::Result<String>,
    /// The `inet netc` table as read over netlink ([`super::nftnl::read`]); `None` when
    /// there is no such table.
    pub nft_read: &'a dyn Fn() -> io::Result<Option<Snapshot>>,
    /// `nft list table inet netc`, read only to undo a change to a table that exists.
    pub nft_list: &'a dyn Fn() -> io::Result<Option<String>>,
    /// Where netc keeps what it recorded of the firewall it loaded.
    pub state: &'a State,
}

/// `iptables-save -t filter` (or ip6tables-save).
pub fn iptables_save(family: Family) -> io::Result<String> {
    let tool = format!("{}-save", family.iptables());
    Ok(Tool::new(&tool).args(["-t", "filter"]).text()?)
}

/// `iptables-save` of both families, started at once on their own threads: the tools run
/// side by side while netc reads the rest of the host, and [`Self::take`] waits for one.
pub struct IptablesSaves {
    running: std::sync::Mutex<Vec<(Family, std::thread::JoinHandle<io::Result<String>>)>>,
}

impl IptablesSaves {
    pub fn start() -> IptablesSaves {
        let running = Family::ALL
            .into_iter()
            .map(|f| (f, std::thread::spawn(move || iptables_save(f))))
            .collect();
        IptablesSaves {
            running: std::sync::Mutex::new(running),
        }
    }

    /// The family's save (run again if it was taken before).
    pub fn take(&self, family: Family) -> io::Result<String> {
        let handle = {
            let mut running = self.running.lock().expect("not poisoned");
            let i = running.iter().position(|(f, _)| *f == family);
            i.map(|i| running.remove(i).1)
        };
        match handle {
            Some(h) => h.join().expect("iptables-save's thread does not panic"),
            None => iptables_save(family),
        }
    }
}

/// `ipset save`: every set, in the format of an ipset restore file.
pub fn ipset_save() -> io::Result<String> {
    Ok(Tool::new("ipset").arg("save").text()?)
}

/// `nft list table inet netc`, or `None` when there is no such table.
pub fn nft_list() -> io::Result<Option<String>> {
    let tables = Tool::new("nft").args(["list", "tables", "inet"]).text()?;
    let ours = format!("table inet {NFT_TABLE}");
    if !tables.lines().any(|l| l.trim() == ours) {
        return Ok(None);
    }
    let listing = Tool::new("nft")
        .args(["list", "table", "inet", NFT_TABLE])
        .text()?;
    Ok(Some(listing))
}
