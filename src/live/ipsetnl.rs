//! netc's ipsets loaded over netlink: the `ipset -exist restore` input that
//! [`super::ipset`] plans (`create`, `add`, `swap`, `destroy` of `hash:net` sets) sent to the
//! kernel's ipset subsystem directly, as requests in one datagram, each element list packed
//! into few messages. `ipset restore` parses its input line by line and that parsing is
//! nearly all its time (about 270 ms for 50,000 elements here); the kernel's own work is a
//! small part of it.
//!
//! An input this loader does not know (another command, set type or option, written by hand
//! into a journal's undo) is [`Unsupported`]: the caller then runs the `ipset` tool, which
//! knows everything. The semantics are `-exist`'s: creating a set that exists with the
//! same settings, adding an element it holds and destroying a set that is gone are not
//! errors. The kernel carries out every request of a datagram, even after one it refused
//! (`ipset restore` stops at its first failing line), so the destroys that clear a set
//! before it is made anew (a temporary set left over by an interrupted apply) go first, in
//! a datagram of their own: when one is refused (a rule of someone else's matches that
//! set), nothing else is sent — no element goes into that set and it is not swapped in.

use std::io;
use std::net::IpAddr;

use ipnet::IpNet;

use super::nfnetlink::{
    self, NLA_F_NET_BYTEORDER, NLM_F_ACK, NLM_F_REQUEST, Socket, close_nest, open_message,
    open_nest, push_attr, seal,
};

/// The netfilter subsystem of ipset.
const SUBSYS_IPSET: u16 = 6;
/// Accepted by every kernel since ipset's protocol 6 (kernels before 5.x want exactly 6;
/// newer ones at least 6).
const PROTOCOL: u8 = 6;
/// A message's element list stops growing past this many bytes (the kernel takes larger
/// ones, but an error then costs the whole message back in its acknowledgement).
const MESSAGE_BYTES: usize = 32 * 1024;

/// `IPSET_CMD_*`.
mod cmd {
    pub const CREATE: u16 = 2;
    pub const DESTROY: u16 = 3;
    pub const SWAP: u16 = 6;
    pub const ADD: u16 = 9;
    pub const TYPE: u16 = 13;
}

/// `IPSET_ATTR_*` of a command.
mod attr {
    pub const PROTOCOL: u16 = 1;
    pub const SETNAME: u16 = 2;
    pub const TYPENAME: u16 = 3;
    /// The second set of a swap shares the type name's number.
    pub const SETNAME2: u16 = 3;
    pub const REVISION: u16 = 4;
    pub const FAMILY: u16 = 5;
    pub const DATA: u16 = 7;
    pub const ADT: u16 = 8;
    /// Required beside `ADT`: where a refused element was (as ipset's line number).
    pub const LINENO: u16 = 9;
}

/// `IPSET_ATTR_*` inside `DATA`.
mod data {
    pub const IP: u16 = 1;
    pub const CIDR: u16 = 3;
    pub const INITVAL: u16 = 17;
    pub const HASHSIZE: u16 = 18;
    pub const MAXELEM: u16 = 19;
    pub const BUCKETSIZE: u16 = 21;
    pub const IPADDR_IPV4: u16 = 1;
    pub const IPADDR_IPV6: u16 = 2;
}

const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const ENOENT: i32 = 2;

/// An input the loader does not speak: run `ipset restore` instead.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsupported(pub String);

/// One line of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Create {
        name: String,
        family: u8,
        options: Vec<(u16, u32)>,
    },
    Add {
        name: String,
        element: IpNet,
    },
    Swap {
        from: String,
        to: String,
    },
    Destroy {
        name: String,
    },
}

/// Reads an `ipset restore` input of netc's kind; comments and blank lines are skipped.
fn parse(input: &str) -> Result<Vec<Command>, Unsupported> {
    let unsupported = |line: &str| Unsupported(format!("`{line}`"));
    let mut out = Vec::new();
    for line in input.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let command = match words[..] {
            ["create", name, "hash:net", ref options @ ..] => {
                create(name, options).ok_or_else(|| unsupported(line))?
            }
            ["add", name, element] => Command::Add {
                name: set_name(name).ok_or_else(|| unsupported(line))?,
                element: super::ipset::prefix(element)
                    .filter(|e| e.prefix_len() > 0)
                    .ok_or_else(|| unsupported(line))?,
            },
            ["swap", from, to] => Command::Swap {
                from: set_name(from).ok_or_else(|| unsupported(line))?,
                to: set_name(to).ok_or_else(|| unsupported(line))?,
            },
            ["destroy", name] => Command::Destroy {
                name: set_name(name).ok_or_else(|| unsupported(line))?,
            },
            _ => return Err(unsupported(line)),
        };
        out.push(command);
    }
    Ok(out)
}

/// A set name as the kernel keeps it (at most 31 bytes and a NUL).
fn set_name(name: &str) -> Option<String> {
    (name.len() < 32 && !name.contains('\0')).then(|| name.to_string())
}

/// `create NAME hash:net family inet hashsize N maxelem M [bucketsize B] [initval 0xV]`.
fn create(name: &str, options: &[&str]) -> Option<Command> {
    let mut family = NFPROTO_IPV4;
    let mut out = Vec::new();
    for pair in options.chunks(2) {
        let [key, value] = pair else { return None };
        let number = || match value.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => value.parse::<u32>().ok(),
        };
        match *key {
            "family" => {
                family = match *value {
                    "inet" => NFPROTO_IPV4,
                    "inet6" => NFPROTO_IPV6,
                    _ => return None,
                }
            }
            "hashsize" => out.push((data::HASHSIZE, number()?)),
            "maxelem" => out.push((data::MAXELEM, number()?)),
            "initval" => out.push((data::INITVAL, number()?)),
            // One byte in the kernel's attribute.
            "bucketsize" => out.push((data::BUCKETSIZE, number().filter(|&b| b <= 255)?)),
            _ => return None,
        }
    }
    Some(Command::Create {
        name: set_name(name)?,
        family,
        options: out,
    })
}

/// Carries out an `ipset -exist restore` input over netlink, or says it cannot.
pub fn restore(input: &str) -> Result<io::Result<()>, Unsupported> {
    let commands = parse(input)?;
    Ok(send(&commands))
}

fn send(commands: &[Command]) -> io::Result<()> {
    let mut socket = Socket::open()?;
    let revision = revision(&mut socket, commands)?;
    let (clear, rest) = clearing_first(commands);
    exchange(&mut socket, &clear, revision)?;
    exchange(&mut socket, &rest, revision)
}

/// The destroys of sets no earlier request touches (moved to the front, they do the same),
/// and the other requests in their order.
fn clearing_first(commands: &[Command]) -> (Vec<Command>, Vec<Command>) {
    let names = |c: &Command| match c {
        Command::Create { name, .. } | Command::Add { name, .. } | Command::Destroy { name } => {
            vec![name.clone()]
        }
        Command::Swap { from, to } => vec![from.clone(), to.clone()],
    };
    let (mut clear, mut rest) = (Vec::new(), Vec::<Command>::new());
    for c in commands {
        match c {
            Command::Destroy { name } if !rest.iter().any(|r| names(r).contains(name)) => {
                clear.push(c.clone())
            }
            _ => rest.push(c.clone()),
        }
    }
    (clear, rest)
}

/// Sends `commands` in one datagram; the first refusal among them is the error.
fn exchange(socket: &mut Socket, commands: &[Command], revision: [u8; 2]) -> io::Result<()> {
    if commands.is_empty() {
        return Ok(());
    }
    let mut requests = Vec::new();
    let mut what: Vec<(u32, String, bool)> = Vec::new();
    let mut i = 0;
    while i < commands.len() {
        let seq = socket.next_seq();
        let (used, label, missing_ok) = message(&mut requests, seq, &commands[i..], revision);
        what.push((seq, label, missing_ok));
        i += used;
    }
    let answers = socket.exchange(&requests)?;
    for (seq, label, missing_ok) in &what {
        let code = answers
            .codes
            .iter()
            .find(|(s, _)| s == seq)
            .map_or(0, |(_, c)| -c);
        if code == 0 || (*missing_ok && code == ENOENT) {
            continue;
        }
        return Err(io::Error::other(format!(
            "the kernel refused {label}: {}",
            error_text(code)
        )));
    }
    Ok(())
}

/// The newest revision of `hash:net` the kernel has, for each family a create uses (as
/// `ipset` picks it); 0 when nothing is created.
fn revision(socket: &mut Socket, commands: &[Command]) -> io::Result<[u8; 2]> {
    let mut out = [0u8; 2];
    for (slot, family) in [(0, NFPROTO_IPV4), (1, NFPROTO_IPV6)] {
        let used = commands
            .iter()
            .any(|c| matches!(c, Command::Create { family: f, .. } if *f == family));
        if !used {
            continue;
        }
        let mut request = Vec::new();
        let seq = socket.next_seq();
        let start = header(&mut request, cmd::TYPE, seq);
        push_attr(&mut request, attr::TYPENAME, b"hash:net\0");
        push_attr(&mut request, attr::FAMILY, &[family]);
        seal(&mut request, start);
        let answers = socket.exchange(&request)?;
        if let Some(&(_, code)) = answers.codes.iter().find(|(_, c)| *c != 0) {
            return Err(io::Error::other(format!(
                "the kernel has no hash:net sets: {}",
                error_text(-code)
            )));
        }
        let reply = nfnetlink::messages(&answers.data)
            .find_map(|m| nfnetlink::attr(m.body, attr::REVISION).and_then(|v| v.first()))
            .copied();
        out[slot] = reply.ok_or_else(|| io::Error::other("the kernel named no revision"))?;
    }
    Ok(out)
}

/// Appends the message for the first of `commands` (with the `add`s to the same set that
/// follow it, up to [`MESSAGE_BYTES`]); returns how many commands it holds, what it does
/// (for an error) and whether a missing set is no error (a destroy).
fn message(
    out: &mut Vec<u8>,
    seq: u32,
    commands: &[Command],
    revision: [u8; 2],
) -> (usize, String, bool) {
    let name = |n: &str| [n.as_bytes(), b"\0"].concat();
    match &commands[0] {
        Command::Create {
            name: set,
            family,
            options,
        } => {
            let start = header(out, cmd::CREATE, seq);
            push_attr(out, attr::SETNAME, &name(set));
            push_attr(out, attr::TYPENAME, b"hash:net\0");
            let slot = usize::from(*family == NFPROTO_IPV6);
            push_attr(out, attr::REVISION, &[revision[slot]]);
            push_attr(out, attr::FAMILY, &[*family]);
            let nest = open_nest(out, attr::DATA);
            for (kind, value) in options {
                match *kind {
                    data::BUCKETSIZE => push_attr(out, *kind, &[*value as u8]),
                    _ => push_attr(out, *kind | NLA_F_NET_BYTEORDER, &value.to_be_bytes()),
                }
            }
            close_nest(out, nest);
            seal(out, start);
            (1, format!("creating set {set}"), false)
        }
        Command::Add { name: set, .. } => {
            let start = header(out, cmd::ADD, seq);
            push_attr(out, attr::SETNAME, &name(set));
            push_attr(out, attr::LINENO, &0u32.to_ne_bytes());
            let adt = open_nest(out, attr::ADT);
            let mut used = 0;
            for c in commands {
                let Command::Add { name: n, element } = c else {
                    break;
                };
                if n != set || out.len() - start > MESSAGE_BYTES {
                    break;
                }
                push_element(out, element);
                used += 1;
            }
            close_nest(out, adt);
            seal(out, start);
            (used, format!("adding {used} elements to set {set}"), false)
        }
        Command::Swap { from, to } => {
            let start = header(out, cmd::SWAP, seq);
            push_attr(out, attr::SETNAME, &name(from));
            push_attr(out, attr::SETNAME2, &name(to));
            seal(out, start);
            (1, format!("swapping sets {from} and {to}"), false)
        }
        Command::Destroy { name: set } => {
            let start = header(out, cmd::DESTROY, seq);
            push_attr(out, attr::SETNAME, &name(set));
            seal(out, start);
            (1, format!("destroying set {set}"), true)
        }
    }
}

/// One element of an `add`: its address and prefix length.
fn push_element(out: &mut Vec<u8>, element: &IpNet) {
    let nest = open_nest(out, attr::DATA);
    let ip = open_nest(out, data::IP);
    match element.network() {
        IpAddr::V4(a) => push_attr(out, data::IPADDR_IPV4 | NLA_F_NET_BYTEORDER, &a.octets()),
        IpAddr::V6(a) => push_attr(out, data::IPADDR_IPV6 | NLA_F_NET_BYTEORDER, &a.octets()),
    }
    close_nest(out, ip);
    push_attr(out, data::CIDR, &[element.prefix_len()]);
    close_nest(out, nest);
}

/// A request's headers and the protocol attribute every ipset command needs.
fn header(out: &mut Vec<u8>, command: u16, seq: u32) -> usize {
    let flags = NLM_F_REQUEST | NLM_F_ACK;
    let start = open_message(out, SUBSYS_IPSET, command, flags, NFPROTO_IPV4, seq);
    push_attr(out, attr::PROTOCOL, &[PROTOCOL]);
    start
}

/// ipset's own error numbers (from 4097) in words, as the `ipset` tool says them; others are
/// the system's.
fn error_text(code: i32) -> String {
    let text = match code {
        4097 => "the kernel does not speak this ipset protocol",
        4098 => "the kernel does not know the set type or revision",
        4099 => "no more sets can be created",
        4100 => "the set is in use by a rule",
        4101 => "the second set does not exist",
        4102 => "the sets are of different types",
        4103 => "the element already exists",
        4104 => "the prefix length is invalid",
        4106 => "the family is not the set's",
        4108 => "the set is referenced",
        4109 | 4110 => "the address is invalid",
        4352 => "the set is full (maxelem)",
        _ => return io::Error::from_raw_os_error(code).to_string(),
    };
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netcs_inputs_are_read_and_others_are_left_to_the_tool() {
        let input = "# generated\ncreate CS_v6 hash:net family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0x9a3e\nadd CS_v6 fd00::/64\nadd CS_v6 fd00::1\nswap netc-swap-inet6 CS_v6\ndestroy netc-swap-inet6\n";
        assert_eq!(
            parse(input).unwrap(),
            vec![
                Command::Create {
                    name: "CS_v6".into(),
                    family: NFPROTO_IPV6,
                    options: vec![
                        (data::HASHSIZE, 1024),
                        (data::MAXELEM, 65536),
                        (data::BUCKETSIZE, 12),
                        (data::INITVAL, 0x9a3e)
                    ],
                },
                Command::Add {
                    name: "CS_v6".into(),
                    element: "fd00::/64".parse().unwrap()
                },
                Command::Add {
                    name: "CS_v6".into(),
                    element: "fd00::1/128".parse().unwrap()
                },
                Command::Swap {
                    from: "netc-swap-inet6".into(),
                    to: "CS_v6".into()
                },
                Command::Destroy {
                    name: "netc-swap-inet6".into()
                },
            ]
        );
        for other in [
            "create X hash:ip family inet",
            "create X hash:net family inet timeout 60",
            "create X hash:net counters",
            "add X 10.0.0.0/8 timeout 5",
            "add X 0.0.0.0/0",
            "flush X",
            "rename X Y",
            "destroy",
            "destroy a-set-name-thirty-two-bytes-long",
        ] {
            assert!(parse(other).is_err(), "{other}");
        }
    }

    /// A swap's clearing destroy goes first, alone; the destroy after its swap stays there.
    #[test]
    fn destroys_that_clear_a_set_go_first() {
        let input = "destroy netc-swap-inet\ncreate netc-swap-inet hash:net family inet\nadd netc-swap-inet 10.0.0.0/8\nswap netc-swap-inet A_v4\ndestroy netc-swap-inet\ndestroy netc-swap-inet6\ncreate netc-swap-inet6 hash:net family inet6\nswap netc-swap-inet6 A_v6\ndestroy netc-swap-inet6\n";
        let commands = parse(input).unwrap();
        let (clear, rest) = clearing_first(&commands);
        let destroy = |name: &str| Command::Destroy { name: name.into() };
        assert_eq!(
            clear,
            vec![destroy("netc-swap-inet"), destroy("netc-swap-inet6")]
        );
        assert_eq!(rest.len(), 7);
        assert_eq!(rest[3], destroy("netc-swap-inet"));
        assert_eq!(rest[6], destroy("netc-swap-inet6"));
    }

    /// Elements go into few messages, each under the size bound, all of one set.
    #[test]
    fn adds_are_packed_into_few_messages() {
        let mut input = String::from("create A hash:net family inet\n");
        for i in 0..5000u32 {
            input += &format!("add A 10.{}.{}.0/24\n", i / 256, i % 256);
        }
        input += "add B 10.0.0.0/8\n";
        let commands = parse(&input).unwrap();
        let mut out = Vec::new();
        let (mut i, mut seq, mut labels) = (0, 0, Vec::new());
        while i < commands.len() {
            seq += 1;
            let (used, label, _) = message(&mut out, seq, &commands[i..], [7, 7]);
            labels.push(label);
            i += used;
        }
        let messages: Vec<_> = nfnetlink::messages(&out).collect();
        assert_eq!(messages.len(), labels.len());
        assert!(messages.len() < 10, "{labels:?}");
        assert!(messages.iter().all(|m| m.raw.len() < MESSAGE_BYTES + 64));
        assert_eq!(labels.last().unwrap(), "adding 1 elements to set B");
        let added: usize = labels
            .iter()
            .filter_map(|l| {
                l.strip_prefix("adding ")?
                    .split(' ')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .sum();
        assert_eq!(added, 5001);
    }
}
