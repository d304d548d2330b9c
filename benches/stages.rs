//! parse, check and render separately, at N allowed sources (one host) and H hosts.
//! `cargo bench --bench stages`; the side-by-side comparison with peers is bench/run.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use netc::config::Target;
use netc::source::Source;

#[path = "../bench/topology.rs"]
mod topology;

fn stages(
    c: &mut Criterion,
    group: &str,
    cases: &[(usize, usize)],
    param: impl Fn(usize, usize) -> usize,
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    for &(n, h) in cases {
        let text = topology::topology(n, h);
        let size = param(n, h);
        g.throughput(Throughput::Elements(size as u64));
        g.bench_with_input(BenchmarkId::new("parse", size), &text, |b, t| {
            b.iter(|| netc::syntax::parse::parse(t).unwrap())
        });
        let ast = netc::syntax::parse::parse(&text).unwrap();
        let source = Source::new("bench.csn", text.as_str());
        g.bench_with_input(BenchmarkId::new("check", size), &ast, |b, ast| {
            b.iter(|| netc::check::check(ast, &source).topology.unwrap())
        });
        let topo = netc::check::check(&ast, &source).topology.unwrap();
        g.bench_with_input(BenchmarkId::new("render", size), &topo, |b, topo| {
            b.iter(|| netc::render::tree(topo, Target::Both))
        });
    }
    g.finish();
}

fn sources(c: &mut Criterion) {
    stages(
        c,
        "sources",
        &[(1_000, 1), (10_000, 1), (50_000, 1)],
        |n, _| n,
    );
}

fn hosts(c: &mut Criterion) {
    stages(c, "hosts", &[(100, 3), (100, 100), (100, 1_000)], |_, h| h);
}

criterion_group!(benches, sources, hosts);
criterion_main!(benches);
