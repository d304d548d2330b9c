//! What the fuzz targets share: [`shapes`] (topologies written from fuzzer bytes) and
//! [`properties`], the invariants every input must keep.

pub mod shapes;

use netc::config::Target;
use netc::report::{Format, Report};

/// The invariants of compiling any bytes, panicking where one is broken:
///
/// - every diagnostic is positioned inside the text, on character boundaries, and renders in
///   every format (text, JSON that parses, GitHub annotations);
/// - a model comes out exactly when there is no error, and it renders (the renderers'
///   `expect`s are the invariants the checker promises);
/// - `netc fmt` of text that parses is idempotent and changes neither the diagnostics nor
///   the rendered files.
pub fn properties(bytes: &[u8]) {
    let compiled = netc::compile("fuzz.csn", bytes);
    let text = &compiled.source.text;
    for d in &compiled.diags {
        for (span, _) in &d.labels {
            assert!(
                span.start <= span.end && span.end <= text.len(),
                "{} at {span:?}",
                d.code
            );
            assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
        }
    }
    for format in [Format::Text { color: false }, Format::Json, Format::Github] {
        let mut report = Report::new(Vec::new(), format, 3);
        report.add(&compiled.source, &compiled.diags).unwrap();
        let out = report.finish().unwrap();
        if format == Format::Json {
            serde_json::from_slice::<serde_json::Value>(&out).expect("the JSON report parses");
        }
    }
    assert_eq!(compiled.topology.is_some(), compiled.errors() == 0);
    let tree = compiled
        .topology
        .as_ref()
        .map(|t| netc::render::tree(t, Target::Both));
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(formatted) = netc::syntax::layout::format(text) else {
        return;
    };
    assert_eq!(
        netc::syntax::layout::format(&formatted).as_ref(),
        Ok(&formatted),
        "fmt is not idempotent"
    );
    let again = netc::compile("fuzz.csn", formatted.as_bytes());
    let said = |c: &netc::Compiled| -> Vec<(netc::diag::Code, String)> {
        c.diags
            .iter()
            .map(|d| (d.code, d.message.clone()))
            .collect()
    };
    assert_eq!(said(&again), said(&compiled), "fmt changed the diagnostics");
    let tree_again = again
        .topology
        .as_ref()
        .map(|t| netc::render::tree(t, Target::Both));
    assert_eq!(tree_again, tree, "fmt changed the rendered files");
}
