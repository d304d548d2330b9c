//! The `inet netc` table over netlink: loaded as one nf_tables batch built with the nftnl
//! crate, and read back to see whether the kernel still holds what netc would load.
//!
//! The batch is one transaction, as Mullvad's firewall does it: add the table (so that the
//! delete cannot fail), delete it, add it again with its sets (each with its declared size),
//! their elements, the chains and the rules. It is built from [`NftTable`], the same data
//! netc.nft is rendered from, with one function per kind of match, so `nft -f netc.nft` and
//! the batch load the same table (a test lists both).
//!
//! Reading back dumps the table's chains, sets, elements and rules and puts them, like the
//! messages of the batch netc would send, into a [`Snapshot`]: the objects with the
//! attributes that decide what the kernel does, so that the two compare equal exactly when
//! the live table is the one netc would load.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use nftnl::expr::{
    Bitwise, Cmp, CmpOp, Conntrack, IcmpCode, Ipv4HeaderField, Ipv6HeaderField, Lookup, Meta,
    NetworkHeaderField, Payload, RejectionType, States, TcpHeaderField, TransportHeaderField,
    UdpHeaderField, Verdict,
};
use nftnl::set::{Set, SetKey};
use nftnl::{Batch, Chain, ChainType, Hook, MsgType, Policy, ProtoFamily, Rule, Table};

use super::nfnetlink::{self as nl, Socket, kind};
use crate::model::{Family, Protocol};
use crate::render::nftables::{NFT_INPUT, NftChain, NftMatch, NftRule, NftVerdict};
use crate::render::{NFT_TABLE, NftTable};

/// `NFPROTO_INET`: the family of the table and of every message about it.
const INET: u8 = 1;

/// Loads `table` in one transaction, replacing whatever `inet netc` held.
pub fn load(table: &NftTable) -> io::Result<()> {
    Socket::open()?.send_batch(&batch(table))
}

/// Deletes the table, if there is one (one transaction: add, then delete).
pub fn delete() -> io::Result<()> {
    let t = Table::new(table_name(), ProtoFamily::Inet);
    let mut b = Batch::new();
    b.add(&t, MsgType::Add);
    b.add(&t, MsgType::Del);
    Socket::open()?.send_batch(&bytes(&b.finalize(), &HashMap::new()))
}

fn table_name() -> CString {
    CString::new(NFT_TABLE).expect("no NUL in the table's name")
}

fn c_name(name: &str) -> CString {
    // Chain and set names come from checked identifiers: no NUL.
    CString::new(name).expect("no NUL in a checked name")
}

/// The batch's bytes: begin, add/delete/add table, sets and elements, chains, rules, end.
pub fn batch(table: &NftTable) -> Vec<u8> {
    let t = Table::new(table_name(), ProtoFamily::Inet);
    let mut b = Batch::new();
    b.add(&t, MsgType::Add);
    b.add(&t, MsgType::Del);
    b.add(&t, MsgType::Add);
    let mut ids = SetIds::default();
    let mut lookups: HashMap<&str, Lookup> = HashMap::new();
    for set in table.policies.iter().flat_map(|p| &p.sets) {
        let lookup = match set.family {
            Family::V4 => named_set(&mut b, &t, &mut ids, set, |a| match a {
                std::net::IpAddr::V4(a) => a,
                std::net::IpAddr::V6(_) => unreachable!("an IPv4 set"),
            }),
            Family::V6 => named_set(&mut b, &t, &mut ids, set, |a| match a {
                std::net::IpAddr::V6(a) => a,
                std::net::IpAddr::V4(_) => unreachable!("an IPv6 set"),
            }),
        };
        lookups.insert(&set.name, lookup);
    }
    let input = table.input();
    let chains: Vec<&NftChain> = std::iter::once(&input)
        .chain(table.policies.iter().map(|p| &p.chain))
        .collect();
    let made: Vec<Chain> = chains
        .iter()
        .map(|c| {
            let mut chain = Chain::new(c_name(&c.name), &t);
            if c.name == NFT_INPUT {
                // `type filter hook input priority filter; policy accept;`
                chain.set_hook(Hook::In, 0);
                chain.set_type(ChainType::Filter);
                chain.set_policy(Policy::Accept);
            }
            b.add(&chain, MsgType::Add);
            chain
        })
        .collect();
    for (c, chain) in chains.iter().zip(&made) {
        for rule in &c.rules {
            add_rule(&mut b, &t, chain, rule, &lookups, &mut ids);
        }
    }
    bytes(&b.finalize(), &ids.sizes)
}

/// Set ids are unique in a batch; each set's declared size, by id.
#[derive(Default)]
struct SetIds {
    next: u32,
    sizes: HashMap<u32, u32>,
}

impl SetIds {
    fn take(&mut self, size: u32) -> u32 {
        self.next += 1;
        self.sizes.insert(self.next, size);
        self.next
    }
}

/// A named source set and its elements; the lookup that matches against it.
fn named_set<K: SetKey>(
    b: &mut Batch,
    t: &Table,
    ids: &mut SetIds,
    set: &crate::render::nftables::NftSet,
    key: impl Fn(std::net::IpAddr) -> K,
) -> Lookup {
    let name = c_name(&set.name);
    let mut s: Set<K> = Set::new_named(&name, ids.take(set.size), t, ProtoFamily::Inet);
    for a in &set.elements {
        s.add(&key(*a));
    }
    b.add(&s, MsgType::Add);
    for elements in s.elems_iter() {
        b.add(&elements, MsgType::Add);
    }
    Lookup::new(&s)
}

/// A port, as nftables' `inet_service` set key (network byte order).
struct Port(u16);

impl SetKey for Port {
    const TYPE: u32 = 13;
    const LEN: u32 = 2;

    fn data(&self) -> Box<[u8]> {
        Box::new(self.0.to_be_bytes())
    }
}

fn add_rule(
    b: &mut Batch,
    t: &Table,
    chain: &Chain,
    rule: &NftRule,
    lookups: &HashMap<&str, Lookup>,
    ids: &mut SetIds,
) {
    let mut r = Rule::new(chain);
    for m in &rule.matches {
        match m {
            NftMatch::Family(family) => family_match(&mut r, *family),
            NftMatch::Source { family, mask, set } => {
                source_match(&mut r, *family, *mask, &lookups[set.as_str()])
            }
            NftMatch::New => new_match(&mut r),
            NftMatch::Ports { protocol, ports } => ports_match(&mut r, b, t, ids, *protocol, ports),
            NftMatch::PortRange {
                protocol,
                first,
                last,
            } => range_match(&mut r, *protocol, *first, *last),
        }
    }
    r.add_expr(&verdict(&rule.verdict));
    b.add(&r, MsgType::Add);
}

/// `meta nfproto ipv4`.
fn family_match(r: &mut Rule, family: Family) {
    r.add_expr(&Meta::NfProto);
    let proto = match family {
        Family::V4 => libc::NFPROTO_IPV4,
        Family::V6 => libc::NFPROTO_IPV6,
    };
    r.add_expr(&Cmp::new(CmpOp::Eq, proto as u8));
}

/// `ip saddr & MASK @set`: the family (nft's implicit dependency in an inet table), the
/// source address, the mask, the lookup.
fn source_match(r: &mut Rule, family: Family, mask: Option<std::net::IpAddr>, set: &Lookup) {
    family_match(r, family);
    r.add_expr(&Payload::Network(match family {
        Family::V4 => NetworkHeaderField::Ipv4(Ipv4HeaderField::Saddr),
        Family::V6 => NetworkHeaderField::Ipv6(Ipv6HeaderField::Saddr),
    }));
    match mask {
        Some(std::net::IpAddr::V4(m)) => r.add_expr(&Bitwise::new(m, Ipv4Addr::UNSPECIFIED)),
        Some(std::net::IpAddr::V6(m)) => r.add_expr(&Bitwise::new(m, Ipv6Addr::UNSPECIFIED)),
        None => {}
    }
    r.add_expr(set);
}

/// The anonymous constant set of a `dport { … }` match, added before its rule.
fn port_set(b: &mut Batch, t: &Table, ids: &mut SetIds, ports: &[u16]) -> Lookup {
    let id = ids.take(ports.len() as u32);
    let mut s: Set<Port> = Set::new(c"__set%d", id, t, ProtoFamily::Inet);
    for p in ports {
        s.add(&Port(*p));
    }
    b.add(&s, MsgType::Add);
    for elements in s.elems_iter() {
        b.add(&elements, MsgType::Add);
    }
    Lookup::new(&s)
}

/// `ct state new`: the connection's state, masked to NEW, not zero.
fn new_match(r: &mut Rule) {
    r.add_expr(&Conntrack::State);
    let new = States::NEW.bits();
    r.add_expr(&Bitwise::new(new, 0u32));
    r.add_expr(&Cmp::new(CmpOp::Neq, 0u32));
}

/// The transport protocol and its destination port, loaded for a comparison.
fn dport(r: &mut Rule, protocol: Protocol) {
    r.add_expr(&Meta::L4Proto);
    let (number, field) = match protocol {
        Protocol::Tcp => (
            libc::IPPROTO_TCP,
            TransportHeaderField::Tcp(TcpHeaderField::Dport),
        ),
        Protocol::Udp => (
            libc::IPPROTO_UDP,
            TransportHeaderField::Udp(UdpHeaderField::Dport),
        ),
    };
    r.add_expr(&Cmp::new(CmpOp::Eq, number as u8));
    r.add_expr(&Payload::Transport(field));
}

/// `tcp dport 5900-6100`: two comparisons on the loaded port, as nft compiles a range.
fn range_match(r: &mut Rule, protocol: Protocol, first: u16, last: u16) {
    dport(r, protocol);
    // nftnl copies a u16 in host order: the packet's port is in network order.
    r.add_expr(&Cmp::new(CmpOp::Gte, first.to_be()));
    r.add_expr(&Cmp::new(CmpOp::Lte, last.to_be()));
}

/// `tcp dport { … }`: the transport protocol, the destination port, and a lookup in an
/// anonymous set of the ports — or, for one port, a comparison (as nft makes it).
fn ports_match(
    r: &mut Rule,
    b: &mut Batch,
    t: &Table,
    ids: &mut SetIds,
    protocol: Protocol,
    ports: &[u16],
) {
    dport(r, protocol);
    match ports {
        // nftnl copies a u16 in host order: the packet's port is in network order.
        [port] => r.add_expr(&Cmp::new(CmpOp::Eq, port.to_be())),
        _ => r.add_expr(&port_set(b, t, ids, ports)),
    }
}

fn verdict(v: &NftVerdict) -> Verdict {
    match v {
        NftVerdict::Return => Verdict::Return,
        NftVerdict::Reject => Verdict::Reject(RejectionType::Icmp(IcmpCode::PortUnreach)),
        NftVerdict::Jump(chain) => Verdict::Jump {
            chain: c_name(chain),
        },
    }
}

/// The finished batch as one buffer, each set's declared size added to its message (nftnl
/// has no setter for it: `NFTA_SET_DESC { NFTA_SET_DESC_SIZE }`, appended).
fn bytes(batch: &nftnl::FinalizedBatch, sizes: &HashMap<u32, u32>) -> Vec<u8> {
    let mut out = Vec::new();
    for page in batch {
        for m in nl::messages(page) {
            let start = out.len();
            out.extend_from_slice(m.raw);
            let id = (m.nftables && m.kind == kind::NEWSET)
                .then(|| nl::attr_be32(m.body, SET_ID))
                .flatten();
            if let Some(size) = id.and_then(|id| sizes.get(&id)) {
                let mut desc = Vec::new();
                nl::push_attr(&mut desc, 1, &size.to_be_bytes());
                nl::push_attr(&mut out, SET_DESC | nl::NLA_F_NESTED, &desc);
                nl::seal(&mut out, start);
            }
        }
    }
    out
}

// Attribute numbers of linux/netfilter/nf_tables.h that the snapshot reads.
const TABLE_NAME: u16 = 1;
const TABLE_FLAGS: u16 = 2;
const CHAIN_TABLE: u16 = 1;
const CHAIN_NAME: u16 = 3;
const CHAIN_HOOK: u16 = 4;
const CHAIN_POLICY: u16 = 5;
const CHAIN_TYPE: u16 = 7;
const RULE_TABLE: u16 = 1;
const RULE_CHAIN: u16 = 2;
const RULE_EXPRESSIONS: u16 = 4;
const SET_TABLE: u16 = 1;
const SET_NAME: u16 = 2;
const SET_FLAGS: u16 = 3;
const SET_DESC: u16 = 9;
const SET_ID: u16 = 10;
/// What decides a set's behaviour: flags, key and data types and lengths, policy,
/// description (size), timeout, and its per-element expressions.
const SET_BEHAVIOUR: [u16; 10] = [3, 4, 5, 6, 7, 8, 9, 11, 17, 18];
const ELEMS_TABLE: u16 = 1;
const ELEMS_SET: u16 = 2;
const ELEMS_LIST: u16 = 3;
const ELEMS_SET_ID: u16 = 4;
const EXPR_NAME: u16 = 1;
const EXPR_DATA: u16 = 2;
const LOOKUP_SET: u16 = 1;
const LOOKUP_SET_ID: u16 = 4;
const NFT_SET_ANONYMOUS: u32 = 1;
const DELTABLE: u16 = 2;

/// An attribute with what it holds: a value, or (when its bytes are a list of attributes)
/// the list, in a fixed order. A value of four zero bytes is left out: the kernel reads a
/// missing number as zero and lists some zeros it was never sent (a lookup's flags).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    Value(u16, Vec<u8>),
    Nest(u16, Vec<Node>),
    /// A lookup's set: a named set by name, an anonymous one by what it holds.
    Set(String),
    AnonymousSet(Vec<Node>, Vec<Vec<Node>>),
}

fn canon(body: &[u8], keep: &dyn Fn(u16) -> bool) -> Vec<Node> {
    let mut nodes: Vec<Node> = nl::attrs(body)
        .filter(|(k, _)| keep(*k))
        .filter(|(_, v)| *v != [0, 0, 0, 0])
        .map(|(k, v)| {
            if nl::is_nest(v) {
                Node::Nest(k, canon(v, &|_| true))
            } else {
                Node::Value(k, v.to_vec())
            }
        })
        .collect();
    nodes.sort();
    nodes
}

/// An expression: its name and its data.
pub type Expr = (String, Vec<Node>);
/// A set: what decides its behaviour, and its elements.
pub type SetState = (Vec<Node>, Vec<Vec<Node>>);

/// The table as the kernel would enforce it (see the module's comment).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub table: Option<Vec<Node>>,
    pub chains: BTreeMap<String, Vec<Node>>,
    /// Per chain, its rules in order, each its expressions in order.
    pub rules: BTreeMap<String, Vec<Vec<Expr>>>,
    /// Named sets: their behaviour and their elements (sorted).
    pub sets: BTreeMap<String, SetState>,
}

impl Snapshot {
    /// What `inet netc` holds after the nf_tables messages in `buf`: a batch, or the
    /// answers to dumps.
    pub fn of(buf: &[u8]) -> Snapshot {
        let mut s = Snapshot::default();
        // Anonymous sets, by the name the kernel gave them or by the batch's id.
        let mut anonymous: HashMap<String, SetState> = HashMap::new();
        let mut rules = Vec::new();
        let name = |body: &[u8], k| nl::attr_text(body, k).unwrap_or_default();
        let ours = |body: &[u8], k| name(body, k) == NFT_TABLE;
        let id = nl::attr_be32;
        let msgs = nl::messages(buf).filter(|m| m.nftables && m.family == INET);
        for m in msgs {
            let b = m.body;
            match m.kind {
                kind::NEWTABLE if ours(b, TABLE_NAME) => {
                    s.table = Some(canon(b, &|k| k == TABLE_FLAGS));
                }
                DELTABLE if ours(b, TABLE_NAME) => s = Snapshot::default(),
                kind::NEWCHAIN if ours(b, CHAIN_TABLE) => {
                    let keep = |k| [CHAIN_HOOK, CHAIN_POLICY, CHAIN_TYPE].contains(&k);
                    s.chains.insert(name(b, CHAIN_NAME), canon(b, &keep));
                }
                kind::NEWSET if ours(b, SET_TABLE) => {
                    let flags = id(b, SET_FLAGS).unwrap_or(0);
                    let behaviour = canon(b, &|k| SET_BEHAVIOUR.contains(&k));
                    if flags & NFT_SET_ANONYMOUS != 0 {
                        let key = match id(b, SET_ID) {
                            Some(n) => format!("id {n}"),
                            None => name(b, SET_NAME),
                        };
                        anonymous.insert(key, (behaviour, Vec::new()));
                    } else {
                        s.sets.insert(name(b, SET_NAME), (behaviour, Vec::new()));
                    }
                }
                kind::NEWSETELEM if ours(b, ELEMS_TABLE) => {
                    let set = name(b, ELEMS_SET);
                    let by_id = id(b, ELEMS_SET_ID).map(|n| format!("id {n}"));
                    let target = match s.sets.get_mut(&set) {
                        Some(t) => Some(t),
                        None => anonymous.get_mut(by_id.as_deref().unwrap_or(&set)),
                    };
                    if let (Some((_, elements)), Some(list)) = (target, nl::attr(b, ELEMS_LIST)) {
                        elements.extend(nl::attrs(list).map(|(_, e)| canon(e, &|_| true)));
                    }
                }
                kind::NEWRULE if ours(b, RULE_TABLE) => {
                    rules.push((name(b, RULE_CHAIN), nl::attr(b, RULE_EXPRESSIONS)));
                }
                _ => {}
            }
        }
        for (_, elements) in s.sets.values_mut().chain(anonymous.values_mut()) {
            elements.sort();
        }
        for (chain, expressions) in rules {
            let exprs = nl::attrs(expressions.unwrap_or_default())
                .map(|(_, e)| expression(e, &s.sets, &anonymous))
                .collect();
            s.rules.entry(chain).or_default().push(exprs);
        }
        s
    }
}

/// One expression: its name and data; a lookup names its set by what it is.
fn expression(
    e: &[u8],
    named: &BTreeMap<String, SetState>,
    anonymous: &HashMap<String, SetState>,
) -> Expr {
    let name = nl::attr_text(e, EXPR_NAME).unwrap_or_default();
    let data = nl::attr(e, EXPR_DATA).unwrap_or_default();
    if name != "lookup" {
        return (name, canon(data, &|_| true));
    }
    let mut nodes = canon(data, &|k| k != LOOKUP_SET && k != LOOKUP_SET_ID);
    let set = nl::attr_text(data, LOOKUP_SET).unwrap_or_default();
    let id = nl::attr_be32(data, LOOKUP_SET_ID).map(|v| format!("id {v}"));
    nodes.push(if named.contains_key(&set) {
        Node::Set(set)
    } else {
        let anon = id
            .and_then(|id| anonymous.get(&id))
            .or_else(|| anonymous.get(&set));
        match anon {
            Some((behaviour, elements)) => Node::AnonymousSet(behaviour.clone(), elements.clone()),
            None => Node::Set(set),
        }
    });
    (name, nodes)
}

/// Reads `inet netc` from the kernel; `None` when there is no such table. The ruleset's
/// generation is read before and after, and a change in between reads again.
pub fn read() -> io::Result<Option<Snapshot>> {
    let mut sock = Socket::open()?;
    for _ in 0..5 {
        let before = sock.generation()?;
        let dumped = dump(&mut sock)?;
        if sock.generation()? == before {
            return Ok(dumped.map(|buf| Snapshot::of(&buf)));
        }
    }
    Err(io::Error::other(
        "the nftables ruleset kept changing while netc read it",
    ))
}

/// The answers to the dumps of the table, its chains, sets, every set's elements and the
/// rules, as one buffer of messages.
fn dump(sock: &mut Socket) -> io::Result<Option<Vec<u8>>> {
    let table = table_name();
    let table = table.as_bytes_with_nul();
    let tables = sock.dump(kind::GETTABLE, INET, &[])?;
    let found = nl::messages(&tables)
        .any(|m| m.kind == kind::NEWTABLE && nl::attr(m.body, TABLE_NAME) == Some(table));
    if !found {
        return Ok(None);
    }
    let mut out = tables;
    out.extend(sock.dump(kind::GETCHAIN, INET, &[(CHAIN_TABLE, table)])?);
    let sets = sock.dump(kind::GETSET, INET, &[(SET_TABLE, table)])?;
    let names: Vec<Vec<u8>> = nl::messages(&sets)
        .filter(|m| m.kind == kind::NEWSET && nl::attr(m.body, SET_TABLE) == Some(table))
        .filter_map(|m| nl::attr(m.body, SET_NAME).map(<[u8]>::to_vec))
        .collect();
    out.extend(sets);
    for set in names {
        let filter = [(ELEMS_TABLE, table), (ELEMS_SET, &set[..])];
        out.extend(sock.dump(kind::GETSETELEM, INET, &filter)?);
    }
    out.extend(sock.dump(kind::GETRULE, INET, &[(RULE_TABLE, table)])?);
    Ok(Some(out))
}
