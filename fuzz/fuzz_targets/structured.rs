//! Topologies in the grammar's shapes (fuzz/src/shapes.rs), now and then with one of the
//! mistakes people make: most inputs parse and many check, so the checker, the renderers,
//! the diagnostics' reports and fmt get the fuzzer's time, not the syntax errors. The
//! invariants are `netc_fuzz::properties`'.
#![no_main]

use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if let Ok(text) = netc_fuzz::shapes::topology(&mut u, true) {
        netc_fuzz::properties(text.as_bytes());
    }
});
