//! `ipset-load FILE`: loads an ipsets file (`ipset restore` input, as netc renders it) the
//! way `netc apply` does, over netlink, into the current network namespace, and prints the
//! time in ms. Run it inside a namespace: `ip netns exec NS ipset-load …`.

use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: ipset-load FILE");
        std::process::exit(1);
    };
    let text = std::fs::read_to_string(&path).expect("read the ipsets file");
    let start = Instant::now();
    match netc::live::ipsetnl::restore(&text) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("ipset-load: {e}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("ipset-load: not netc's kind of input: {}", e.0);
            std::process::exit(1);
        }
    }
    println!("{:.1}", start.elapsed().as_secs_f64() * 1000.0);
}
