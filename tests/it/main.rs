//! netc's one integration-test binary. Fixtures live in tests/fixtures; rendered output and
//! diagnostics are insta snapshots in tests/it/snapshots (review each change).

mod apply;
mod apply_crash;
mod apply_effects;
mod apply_iptables;
mod apply_rollback;
mod boot;
mod cli;
mod diagnostics;
mod diff;
mod fmt;
mod hostile;
mod netns;
mod nftnl;
mod plan;
mod property;
mod render;
mod reporting;
mod scale;
mod ssh;
mod support;
mod tools;
mod traffic;
mod vm;
