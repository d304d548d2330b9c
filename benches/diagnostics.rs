//! Reporting diagnostics at scale: compile and report, in-process, to a sink.
//! `cargo bench --bench diagnostics`. Targets (issue #15): 50,000 errors in under 1 s with
//! the error limit and under 3 s in full as JSON; the 6.6 MB file of 2,000 copies of
//! csc.csn (24,000 errors) in under 2 s. And 20,000 unknown host names among 2,000 hosts,
//! where did-you-mean would otherwise cost their product; again in a file that is not all
//! ASCII, where each column on that long line is counted in characters.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use netc::report::{DEFAULT_LIMIT, Format, Report};

const CSC: &str = include_str!("../topology/csc.csn");

/// csc.csn with `n` allowed sources that have host bits set: `n` errors.
fn host_bits(n: usize) -> String {
    let allows: String = (0..n)
        .map(|i| format!("    allow 10.{}.{}.1/24\n", i / 256 % 256, i % 256))
        .collect();
    // In the first firewall only: csc.csn has two that allow VLAN 529.
    CSC.replacen(
        "    allow vlan 529\n",
        &format!("    allow vlan 529\n{allows}"),
        1,
    )
}

/// csc.csn with 2,000 more hosts and a firewall on 20,000 names none of them has: 20,000
/// did-you-means among 2,003 hosts (bounded: past a budget, the declared names are listed).
fn unknown_hosts() -> String {
    let hosts: String = (0..2_000)
        .map(|i| format!("host node{i:04} {{\n    nic eth0\n}}\n"))
        .collect();
    let on: Vec<String> = (0..20_000).map(|i| format!("nodx{i:05}")).collect();
    format!(
        "{CSC}{hosts}firewall G {{\n    ports tcp 1\n    on {}\n}}\n",
        on.join(", ")
    )
}

/// Compiles and reports, as `netc check` does.
fn check(text: &str, format: Format, limit: usize) -> usize {
    let compiled = netc::compile("bench.csn", text.as_bytes());
    let mut report = Report::new(std::io::sink(), format, limit);
    report.add(&compiled.source, &compiled.diags).unwrap();
    report.finish().unwrap();
    compiled.errors()
}

fn reporting(c: &mut Criterion) {
    let mut g = c.benchmark_group("diagnostics");
    g.sample_size(10);
    let text = Format::Text { color: false };
    let cases = [
        ("50k-host-bits", host_bits(50_000)),
        ("2000-copies", CSC.repeat(2_000)),
        ("20k-unknown-hosts", unknown_hosts()),
        // One character that is not ASCII: columns are counted in characters.
        (
            "20k-unknown-hosts-utf8",
            format!("# café\n{}", unknown_hosts()),
        ),
    ];
    for (name, input) in &cases {
        for (how, format, limit) in [
            ("limit", text, DEFAULT_LIMIT),
            ("full-json", Format::Json, 0),
            ("full-text", text, 0),
        ] {
            g.bench_with_input(BenchmarkId::new(how, name), input, |b, t| {
                b.iter(|| check(t, format, limit))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, reporting);
criterion_main!(benches);
