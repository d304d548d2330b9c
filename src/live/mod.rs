//! The live host: what `netc plan` reads and `netc apply` changes.
//!
//! The way of the data: [`plan`] compares the rendered files and the model with the live
//! host ([`net`] for links, ports, addresses and routes; [`iptables`] for netc's chains;
//! [`properties`] for the owned agent keys; [`probe`] reads the rest) and yields every change
//! as a [`step::Step`] with its inverse. [`apply`] writes them to the [`journal`] first, then
//! runs them through [`exec`] (the kernel by [`netlink`], files by [`install`]) and undoes
//! them on failure; [`rollback`] undoes carefully, on what the host shows now; [`vet`] checks
//! that a journal names only netc's objects before anything runs from it; [`guard`] refuses
//! changes that would cut off the SSH session; [`state`] keeps the lock, the journal and the
//! records of the firewall netc loaded.

pub mod apply;
pub mod exec;
pub mod guard;
pub mod install;
pub mod ipset;
pub mod ipsetnl;
pub mod iptables;
pub mod journal;
pub mod left;
pub mod net;
pub mod netlink;
pub mod nfnetlink;
pub mod nftnl;
pub mod plan;
pub mod probe;
pub mod properties;
pub mod retired;
pub mod rollback;
pub mod state;
pub mod step;
pub mod vet;
