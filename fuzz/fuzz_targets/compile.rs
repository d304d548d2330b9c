//! Any bytes through parse, check, the diagnostics' reports, render and fmt: nothing may
//! panic, and the invariants of `netc_fuzz::properties` hold.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| netc_fuzz::properties(data));
