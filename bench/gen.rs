//! `cargo run --release --example gen -- SOURCES HOSTS DIR [TARGET]`: writes DIR/topology.csn
//! (the peers' policy with SOURCES allowed sources on HOSTS hosts) and DIR/netc.toml with the
//! firewall TARGET (iptables, nftables or both; default both).

#[path = "topology.rs"]
mod topology;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: gen SOURCES HOSTS DIR [iptables|nftables|both]";
    let (Some(n), Some(h), Some(dir)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(1);
    };
    let (Ok(n), Ok(h)) = (n.parse::<usize>(), h.parse::<usize>()) else {
        eprintln!("{usage}");
        std::process::exit(1);
    };
    let target = args.get(3).map_or("both", String::as_str);
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir).expect("create DIR");
    std::fs::write(dir.join("topology.csn"), topology::topology(n, h)).expect("write topology.csn");
    std::fs::write(
        dir.join("netc.toml"),
        format!("[firewall]\ntarget = \"{target}\"\n"),
    )
    .expect("write netc.toml");
}
