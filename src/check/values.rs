//! Literal values: numbers, addresses, prefixes, names. Each bad value is one diagnostic.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::diag::{Code, Diag};
use crate::model::{Family, Subnet};
use crate::syntax::ast::Text;

/// Linux's IFNAMSIZ less the terminating NUL.
pub const IFNAME_MAX: usize = 15;
/// The names CloudStack's agent takes for a physical NIC under a bridge (besides `pNpN`):
/// a renamed NIC must keep one of them.
pub const AGENT_NIC_PREFIXES: [&str; 12] = [
    "eth", "bond", "vlan", "vx", "em", "ens", "eno", "enp", "team", "enx", "dummy", "lo",
];
/// iptables chain names: XT_EXTENSION_MAXNAMELEN (29) less the NUL.
pub const CHAIN_MAX: usize = 28;

/// A decimal number in `min..=max`; `code` is reported when it is out of range.
pub fn number(t: &Text, what: &str, min: u64, max: u64, code: Code) -> Result<u64, Diag> {
    let n: u64 = t.value.parse().map_err(|_| {
        Diag::new(
            Code::BadNumber,
            format!("{what} `{}` is too large", t.value),
        )
        .label(t.span, "too large")
        .help(format!("write a number from {min} to {max}"))
    })?;
    if n < min || n > max {
        return Err(Diag::new(code, format!("{what} {n} is out of range"))
            .label(t.span, "out of range")
            .help(format!("write a number from {min} to {max}")));
    }
    Ok(n)
}

/// A value as a message shows it: control characters (a literal runs up to a blank, so a
/// vertical tab or a form feed is part of it) written as `\u{b}`.
fn visible(value: &str) -> String {
    value
        .chars()
        .map(|c| match c.is_control() {
            true => c.escape_unicode().to_string(),
            false => c.to_string(),
        })
        .collect()
}

/// A single address, without a prefix length.
pub fn address(t: &Text) -> Result<IpAddr, Diag> {
    if let Some((addr, len)) = t.value.split_once('/')
        && addr.parse::<IpAddr>().is_ok()
    {
        return Err(Diag::new(
            Code::AddressWithPrefix,
            format!(
                "`{}` has a prefix length; an address here takes it from its VLAN",
                t.value
            ),
        )
        .label(t.span, "write the address alone")
        .help(format!(
            "write `{addr}` (the /{len} comes from the VLAN's prefix)"
        )));
    }
    t.value.parse().map_err(|_| {
        Diag::new(
            Code::BadAddress,
            format!("`{}` is not an IP address", visible(&t.value)),
        )
        .label(t.span, "expected an IPv4 or IPv6 address")
        .help("write e.g. `192.0.2.10` or `fd74:6b6a:8eca:4902::22`")
    })
}

/// A network prefix with no host bits set.
pub fn prefix(t: &Text) -> Result<IpNet, Diag> {
    let net: IpNet = t.value.parse().map_err(|_| {
        let help = if t.value.contains('/') {
            "a prefix is an address, `/` and a length: `192.0.2.0/24`, `fd74:6b6a:8eca:4902::/64`"
                .to_string()
        } else if t.value.contains(':') {
            format!("add the prefix length, e.g. `{}/64`", t.value)
        } else {
            format!("add the prefix length, e.g. `{}/24`", t.value)
        };
        Diag::new(
            Code::BadPrefix,
            format!("`{}` is not a prefix", visible(&t.value)),
        )
        .label(t.span, "expected an address/length prefix")
        .help(help)
    })?;
    if net.trunc() != net {
        // `/46` typed for `/64`: if the swapped length fits the address, that is the likelier fix.
        let help = match transposed_length(net) {
            Some(fixed) => format!("did you mean `{fixed}`? (or the network `{}`)", net.trunc()),
            None => format!("did you mean `{}`?", net.trunc()),
        };
        return Err(Diag::new(
            Code::HostBitsSet,
            format!("prefix `{}` has host bits set", t.value),
        )
        .label(t.span, format!("the network is {}", net.trunc()))
        .help(help));
    }
    Ok(net)
}

/// The prefix with its two length digits swapped, if that has no host bits set.
fn transposed_length(net: IpNet) -> Option<IpNet> {
    let len = net.prefix_len();
    let swapped = (len % 10) * 10 + len / 10;
    if len < 10 || swapped == len {
        return None;
    }
    IpNet::new(net.addr(), swapped)
        .ok()
        .filter(|n| n.trunc() == *n)
}

/// An allowed source: a prefix, or a single address meaning /32 or /128.
pub fn source(t: &Text) -> Result<IpNet, Diag> {
    if !t.value.contains('/')
        && let Ok(addr) = t.value.parse::<IpAddr>()
    {
        return Ok(IpNet::from(addr));
    }
    prefix(t)
}

/// How a host-side address sits in its subnet: `None` if usable, else the problem.
pub fn misplaced(addr: IpAddr, subnet: &Subnet) -> Option<(Code, String)> {
    let net = subnet.net;
    if !net.contains(&addr) {
        return Some((
            Code::AddressOutsidePrefix,
            format!("{addr} is not in {net}"),
        ));
    }
    if net.prefix_len() < net.max_prefix_len().saturating_sub(1) {
        if addr == net.network() {
            return Some((
                Code::AddressIsNetwork,
                format!("{addr} is the network address of {net}"),
            ));
        }
        if Family::of(&addr) == Family::V4 && addr == net.broadcast() {
            return Some((
                Code::AddressIsBroadcast,
                format!("{addr} is the broadcast address of {net}"),
            ));
        }
    }
    if subnet.gateway == Some(addr) {
        return Some((
            Code::AddressIsGateway,
            format!("{addr} is the gateway of {net}"),
        ));
    }
    None
}

/// Why `name` cannot be an interface name, if it cannot.
pub fn bad_ifname(name: &str) -> Option<String> {
    if name.contains('.') {
        return Some("`.` in an interface name means a VLAN subinterface to ifupdown".into());
    }
    if name.starts_with('-') {
        return Some("an interface name cannot start with `-`".into());
    }
    None
}

/// Why `name` cannot be a host name (it becomes a directory under out/), if it cannot.
pub fn bad_hostname(name: &str) -> Option<String> {
    let ok = name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    (!ok).then(|| {
        "a host name is 1–63 letters, digits and inner `-` (it names a directory under out/)"
            .to_string()
    })
}

/// Why `name` cannot be used in a keepalived or iptables identifier, if it cannot.
pub fn bad_identifier(name: &str) -> Option<String> {
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !name.starts_with('-');
    (!ok).then(|| "use letters, digits, `-` and `_` only".to_string())
}
