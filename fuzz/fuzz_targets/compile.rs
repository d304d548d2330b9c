//! Any bytes: parse and check must not panic, must position every diagnostic inside the
//! text, and must return a model only without errors. A model must render: the renderer's
//! `expect`s are the invariants the checker promises.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let compiled = netc::compile("fuzz.csn", data);
    let len = compiled.source.text.len();
    for d in &compiled.diags {
        for (span, _) in &d.labels {
            assert!(span.start <= span.end && span.end <= len, "{} at {span:?}", d.code);
        }
    }
    assert_eq!(compiled.topology.is_some(), compiled.errors() == 0);
    if let Some(topology) = &compiled.topology {
        let _ = netc::render::tree(topology, netc::config::Target::Both);
    }
});
