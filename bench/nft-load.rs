//! `nft-load TOPOLOGY HOST [RUNS]`: loads HOST's `inet netc` table the way `netc apply` does
//! (one nftnl batch over netlink) into the current network namespace RUNS times (default 1)
//! and prints the best time in ms of building the batch and its transaction. The topology
//! is compiled first, untimed. Run it inside a namespace: `ip netns exec NS nft-load …`.

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(path), Some(host)) = (args.first(), args.get(1)) else {
        eprintln!("usage: nft-load TOPOLOGY HOST [RUNS]");
        std::process::exit(1);
    };
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(1);
    let text = std::fs::read(path).expect("read the topology");
    let compiled = netc::compile(path, &text);
    let topo = compiled.topology.as_ref().expect("a valid topology");
    let host = topo.host(host).expect("a host of the topology");
    let table = netc::render::nft_table(topo, host);
    let mut best = f64::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        netc::live::nftnl::load(&table).expect("the kernel takes the batch");
        best = best.min(start.elapsed().as_secs_f64() * 1000.0);
    }
    println!("{best:.1}");
}
