//! The live host: what `netc plan` reads and `netc apply` changes.
//!
//! The way of the data: [`plan`] compares the rendered files and the model with the live
//! host ([`net`] for links, ports, addresses and routes; [`iptables`] for netc's chains;
//! [`properties`] for the owned agent keys; [`probe`] reads the rest) and yields every change
//! as a [`step::Step`] with its inverse. [`apply`] runs the steps through [`exec`] (the
//! kernel by [`netlink`], files by [`install`]) and undoes them on failure; [`guard`] refuses
//! changes that would cut off the SSH session; [`state`] keeps the lock and the apply that
//! waits for `netc confirm`.

pub mod apply;
pub mod exec;
pub mod guard;
pub mod install;
pub mod ipset;
pub mod iptables;
pub mod left;
pub mod net;
pub mod netlink;
pub mod nfnetlink;
pub mod nftnl;
pub mod plan;
pub mod probe;
pub mod properties;
pub mod state;
pub mod step;
