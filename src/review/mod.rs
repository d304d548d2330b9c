//! Tools for reviewing a topology and its changes; they read the model and change nothing.
//!
//! [`diff`] compares two topologies in meaning (firewall access as [`addrset`]s), [`query`]
//! follows one packet through a host's chains, [`graph`] draws the topology.

pub mod addrset;
pub mod diff;
pub mod graph;
pub mod query;
