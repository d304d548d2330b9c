//! Text → spanned AST, with pest. One `parse_<rule>` function per grammar rule.

use pest::Parser as _;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;

use super::ast::*;
use crate::diag::{Code, Diag, did_you_mean};
use crate::source::{end_of_code, line_breaks};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/netc.pest"]
pub(crate) struct Grammar;

/// The concrete syntax tree (with comments), for `netc fmt`.
pub(crate) fn pairs(text: &str) -> Result<pest::iterators::Pair<'_, Rule>, Diag> {
    let mut pairs = Grammar::parse(Rule::file, text).map_err(|e| syntax_error(text, e))?;
    Ok(pairs.next().expect("the file rule always yields one pair"))
}

/// Parses a whole file. A syntax error stops parsing (there is no sound way to go on), so the
/// result is either the tree or exactly one `netc::syntax` diagnostic.
pub fn parse(text: &str) -> Result<File, Diag> {
    Ok(parse_file(pairs(text)?))
}

fn parse_file(pair: Pair<Rule>) -> File {
    let mut file = File::default();
    for item in pair.into_inner() {
        match item.as_rule() {
            Rule::COMMENT => {}
            Rule::vlan => file.vlans.push(parse_vlan(item)),
            Rule::host => file.hosts.push(parse_host(item)),
            Rule::vip => file.vips.push(parse_vip(item)),
            Rule::firewall => file.firewalls.push(parse_firewall(item)),
            Rule::agent_defaults => file.agents.push(parse_agent_defaults(item)),
            Rule::EOI => {}
            rule => unreachable!("file: unexpected {rule:?}"),
        }
    }
    file
}

fn text(pair: &Pair<Rule>) -> Text {
    Spanned::new(pair.as_str().to_string(), pair.as_span().into())
}

/// The children of a pair that are values or statements (not keywords or punctuation).
fn args<'i>(pair: Pair<'i, Rule>) -> impl Iterator<Item = Pair<'i, Rule>> {
    pair.into_inner().filter(|p| {
        !is_keyword(p.as_rule()) && !is_punctuation(p.as_rule()) && p.as_rule() != Rule::COMMENT
    })
}

fn is_punctuation(rule: Rule) -> bool {
    matches!(rule, Rule::open | Rule::close | Rule::comma)
}

fn parse_vlan(pair: Pair<Rule>) -> Vlan {
    let mut inner = args(pair);
    let id = text(&inner.next().expect("vlan id"));
    let name = parse_string(inner.next().expect("vlan name"));
    let mut vlan = Vlan {
        id,
        name,
        roles: Vec::new(),
        prefixes: Vec::new(),
        mtus: Vec::new(),
    };
    for stmt in inner {
        match stmt.as_rule() {
            Rule::role => vlan.roles.push(parse_role(stmt)),
            Rule::prefix => vlan.prefixes.push(parse_prefix(stmt)),
            Rule::mtu => vlan.mtus.push(parse_single(stmt)),
            rule => unreachable!("vlan: unexpected {rule:?}"),
        }
    }
    vlan
}

fn parse_role(pair: Pair<Rule>) -> Text {
    text(&args(pair).next().expect("role name"))
}

fn parse_prefix(pair: Pair<Rule>) -> Prefix {
    let mut inner = args(pair);
    Prefix {
        net: text(&inner.next().expect("prefix")),
        gateway: inner.next().map(|g| text(&g)),
    }
}

fn parse_string(pair: Pair<Rule>) -> Text {
    let inner = pair
        .into_inner()
        .find(|p| p.as_rule() == Rule::text)
        .expect("string text");
    text(&inner)
}

fn parse_host(pair: Pair<Rule>) -> Host {
    let mut inner = args(pair);
    let mut host = Host {
        name: text(&inner.next().expect("host name")),
        management_server: Vec::new(),
        agent: Vec::new(),
        nics: Vec::new(),
        bonds: Vec::new(),
        bridges: Vec::new(),
        default_routes: Vec::new(),
    };
    for stmt in inner {
        match stmt.as_rule() {
            Rule::management_server => host.management_server.push(stmt.as_span().into()),
            Rule::agent_host => host.agent.push(parse_agent_host(stmt)),
            Rule::nic => host.nics.push(parse_nic(stmt)),
            Rule::bond => host.bonds.push(parse_bond(stmt)),
            Rule::bridge => host.bridges.push(parse_bridge(stmt)),
            Rule::default_route => host.default_routes.push(parse_single(stmt)),
            rule => unreachable!("host: unexpected {rule:?}"),
        }
    }
    host
}

/// The span of a statement's keyword. (A statement's own span can run on over the whitespace
/// before an optional part that is absent.)
fn keyword_span(pair: &Pair<Rule>) -> Span {
    let kw = pair
        .clone()
        .into_inner()
        .next()
        .expect("a statement starts with a keyword");
    kw.as_span().into()
}

fn parse_agent_host(pair: Pair<Rule>) -> AgentHost {
    let span = keyword_span(&pair);
    AgentHost {
        span,
        devices: args(pair).map(parse_device_name).collect(),
    }
}

/// `device_bridge` and `device_role`: a device keyword and a name.
fn parse_device_name(pair: Pair<Rule>) -> (Spanned<Device>, Text) {
    let mut inner = pair.into_inner().filter(|p| p.as_rule() != Rule::COMMENT);
    let device = parse_device(inner.next().expect("device"));
    (device, text(&inner.next().expect("device target")))
}

fn parse_device(pair: Pair<Rule>) -> Spanned<Device> {
    let kw = pair.into_inner().next().expect("device keyword");
    let device = match kw.as_rule() {
        Rule::kw_private => Device::Private,
        Rule::kw_public => Device::Public,
        Rule::kw_guest => Device::Guest,
        Rule::kw_storage => Device::Storage,
        rule => unreachable!("device: unexpected {rule:?}"),
    };
    Spanned::new(device, kw.as_span().into())
}

fn parse_nic(pair: Pair<Rule>) -> Nic {
    let mut inner = args(pair);
    Nic {
        name: text(&inner.next().expect("nic name")),
        mtu: inner.next().map(|m| text(&m)),
    }
}

fn parse_bond(pair: Pair<Rule>) -> Bond {
    let mut inner = args(pair);
    let mut bond = Bond {
        name: text(&inner.next().expect("bond name")),
        slaves: Vec::new(),
        settings: Vec::new(),
        mtus: Vec::new(),
    };
    for stmt in inner {
        match stmt.as_rule() {
            Rule::slaves => bond.slaves.push(args(stmt).map(|p| text(&p)).collect()),
            Rule::mtu => bond.mtus.push(parse_single(stmt)),
            Rule::bond_setting => {
                let mut parts = stmt.into_inner().filter(|p| p.as_rule() != Rule::COMMENT);
                let key = parts.next().expect("bond key");
                let value = parts.next().expect("bond value");
                bond.settings.push((text(&key), text(&value)));
            }
            rule => unreachable!("bond: unexpected {rule:?}"),
        }
    }
    bond
}

fn parse_bridge(pair: Pair<Rule>) -> Bridge {
    let span = keyword_span(&pair);
    let header_end = pair
        .clone()
        .into_inner()
        .filter(|p| p.as_rule() == Rule::name)
        .nth(1)
        .map_or(span.end, |p| p.as_span().end());
    let mut inner = args(pair);
    let name = text(&inner.next().expect("bridge name"));
    let mut next = inner.next().expect("bridge vlan or nic");
    let (mut vlan, mut untagged) = (None, true);
    if next.as_rule() == Rule::bridge_vlan {
        let parts: Vec<Pair<Rule>> = next.clone().into_inner().collect();
        untagged = parts.iter().any(|p| p.as_rule() == Rule::kw_untagged);
        vlan = parts.iter().find(|p| p.as_rule() == Rule::number).map(text);
        next = inner.next().expect("bridge nic");
    }
    Bridge {
        name,
        vlan,
        untagged,
        nic: text(&next),
        addresses: inner.map(parse_address).collect(),
        span: Span::new(span.start, header_end),
    }
}

fn parse_address(pair: Pair<Rule>) -> Text {
    text(&args(pair).next().expect("address"))
}

fn parse_vip(pair: Pair<Rule>) -> Vip {
    let mut inner = args(pair);
    let mut vip = Vip {
        name: text(&inner.next().expect("vip name")),
        vlans: Vec::new(),
        addresses: Vec::new(),
        router_ids: Vec::new(),
        members: Vec::new(),
        checks: Vec::new(),
        nopreempt: Vec::new(),
        preempt_delays: Vec::new(),
    };
    for stmt in inner {
        match stmt.as_rule() {
            Rule::vip_vlan => vip.vlans.push(parse_single(stmt)),
            Rule::address => vip.addresses.push(parse_address(stmt)),
            Rule::router_id => vip.router_ids.push(parse_single(stmt)),
            Rule::member => vip.members.push(parse_member(stmt)),
            Rule::check => vip.checks.push(parse_check(stmt)),
            Rule::nopreempt => vip.nopreempt.push(stmt.as_span().into()),
            Rule::preempt_delay => vip.preempt_delays.push(parse_single(stmt)),
            rule => unreachable!("vip: unexpected {rule:?}"),
        }
    }
    vip
}

/// A statement made of a keyword and one value.
fn parse_single(pair: Pair<Rule>) -> Text {
    text(&args(pair).next().expect("statement value"))
}

fn parse_member(pair: Pair<Rule>) -> Member {
    let mut inner = args(pair);
    Member {
        host: text(&inner.next().expect("member host")),
        priority: text(&inner.next().expect("member priority")),
    }
}

fn parse_check(pair: Pair<Rule>) -> Check {
    let span = keyword_span(&pair);
    let mut inner = args(pair);
    Check {
        span,
        script: parse_string(inner.next().expect("check script")),
        interval: inner.next().map(|i| text(&i)),
    }
}

fn parse_firewall(pair: Pair<Rule>) -> Firewall {
    let mut inner = args(pair);
    let mut fw = Firewall {
        name: text(&inner.next().expect("firewall name")),
        ports: Vec::new(),
        allows: Vec::new(),
        on: Vec::new(),
    };
    for stmt in inner {
        match stmt.as_rule() {
            Rule::ports => fw.ports.push(parse_ports(stmt)),
            Rule::allow => fw.allows.push(parse_allow(stmt)),
            Rule::allow_prefix => fw.allows.push(Allow::Prefix(allow_prefix(&stmt))),
            Rule::on_hosts => fw.on.push(args(stmt).map(|p| text(&p)).collect()),
            rule => unreachable!("firewall: unexpected {rule:?}"),
        }
    }
    fw
}

/// The prefix of an `allow_prefix` token: the word after `allow` and its blanks.
fn allow_prefix(pair: &Pair<Rule>) -> Text {
    // The grammar's blanks: spaces and tabs (a vertical tab would be part of the prefix).
    let prefix = pair.as_str()["allow".len()..].trim_start_matches([' ', '\t']);
    let end = pair.as_span().end();
    Spanned::new(prefix.to_string(), Span::new(end - prefix.len(), end))
}

fn parse_allow(pair: Pair<Rule>) -> Allow {
    let target = args(pair).next().expect("allow target");
    match target.as_rule() {
        Rule::allow_vlan => Allow::Vlan(parse_single(target)),
        _ => Allow::Prefix(text(&target)),
    }
}

fn parse_ports(pair: Pair<Rule>) -> Ports {
    let mut protocol = Protocol::Tcp;
    let mut numbers = Vec::new();
    for p in args(pair) {
        match p.as_rule() {
            Rule::protocol => {
                protocol = match p.into_inner().next().map(|k| k.as_rule()) {
                    Some(Rule::kw_udp) => Protocol::Udp,
                    _ => Protocol::Tcp,
                }
            }
            Rule::port => numbers.push(text(&p)),
            rule => unreachable!("ports: unexpected {rule:?}"),
        }
    }
    Ports { protocol, numbers }
}

fn parse_agent_defaults(pair: Pair<Rule>) -> AgentDefaults {
    let mut agent = AgentDefaults {
        span: pair.as_span().into(),
        ports: Vec::new(),
        bridge_types: Vec::new(),
        connects: Vec::new(),
        servers: Vec::new(),
        devices: Vec::new(),
    };
    for stmt in args(pair) {
        match stmt.as_rule() {
            Rule::agent_port => agent.ports.push(parse_single(stmt)),
            Rule::bridge_type => agent.bridge_types.push(parse_single(stmt)),
            Rule::connect => agent.connects.push(parse_single(stmt)),
            Rule::servers => agent.servers.push(args(stmt).map(parse_server).collect()),
            Rule::device_role => agent.devices.push(parse_device_name(stmt)),
            rule => unreachable!("agent: unexpected {rule:?}"),
        }
    }
    agent
}

/// `vip NAME` (true) or `NAME`.
fn parse_server(pair: Pair<Rule>) -> (bool, Text) {
    let vip = pair
        .clone()
        .into_inner()
        .any(|p| p.as_rule() == Rule::kw_vip);
    let name = args(pair).next().expect("server name");
    (vip, text(&name))
}

pub(crate) fn is_keyword(rule: Rule) -> bool {
    keyword(rule).is_some()
}

/// The word a keyword rule matches.
fn keyword(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::kw_vlan => "vlan",
        Rule::kw_role => "role",
        Rule::kw_prefix => "prefix",
        Rule::kw_gateway => "gateway",
        Rule::kw_host => "host",
        Rule::kw_management_server => "management-server",
        Rule::kw_agent => "agent",
        Rule::kw_nic => "nic",
        Rule::kw_bridge => "bridge",
        Rule::kw_on => "on",
        Rule::kw_address => "address",
        Rule::kw_vip => "vip",
        Rule::kw_router_id => "router-id",
        Rule::kw_member => "member",
        Rule::kw_priority => "priority",
        Rule::kw_check => "check",
        Rule::kw_interval => "interval",
        Rule::kw_firewall => "firewall",
        Rule::kw_ports => "ports",
        Rule::kw_tcp => "tcp",
        Rule::kw_udp => "udp",
        Rule::kw_allow => "allow",
        Rule::kw_port => "port",
        Rule::kw_bridge_type => "bridge-type",
        Rule::kw_connect => "connect",
        Rule::kw_private => "private",
        Rule::kw_public => "public",
        Rule::kw_guest => "guest",
        Rule::kw_storage => "storage",
        Rule::kw_mtu => "mtu",
        Rule::kw_bond => "bond",
        Rule::kw_slaves => "slaves",
        Rule::kw_mode => "mode",
        Rule::kw_miimon => "miimon",
        Rule::kw_lacp_rate => "lacp-rate",
        Rule::kw_xmit_hash_policy => "xmit-hash-policy",
        Rule::kw_primary => "primary",
        Rule::kw_untagged => "untagged",
        Rule::kw_default_route => "default-route",
        Rule::kw_nopreempt => "nopreempt",
        Rule::kw_preempt_delay => "preempt-delay",
        Rule::kw_servers => "servers",
        _ => return None,
    })
}

/// What a grammar rule is called in a message.
fn describe(rule: Rule) -> String {
    if let Some(kw) = keyword(rule) {
        return format!("`{kw}`");
    }
    match rule {
        Rule::open => "`{`".into(),
        Rule::close => "`}`".into(),
        Rule::comma => "`,`".into(),
        Rule::quote => "`\"`".into(),
        Rule::vlan | Rule::vip_vlan | Rule::allow_vlan => "`vlan`".into(),
        Rule::allow_prefix => "`allow`".into(),
        Rule::host => "`host`".into(),
        Rule::vip => "`vip`".into(),
        Rule::firewall => "`firewall`".into(),
        Rule::agent_defaults | Rule::agent_host => "`agent`".into(),
        Rule::name => "a name".into(),
        Rule::number => "a number".into(),
        Rule::port => "a port or a range of ports".into(),
        Rule::bond => "`bond`".into(),
        Rule::bond_key => "a bond setting".into(),
        Rule::bridge_vlan => "`vlan`".into(),
        Rule::literal => "an address or prefix".into(),
        Rule::string => "a quoted string".into(),
        Rule::text => "text without quotes or control characters".into(),
        Rule::EOI => "end of file".into(),
        other => format!("{other:?}"),
    }
}

/// The word (or character) at `offset`, for "found …" and did-you-mean.
fn word_at(text: &str, offset: usize) -> &str {
    let rest = &text[offset..];
    let len = rest
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/')))
        .map(|(i, _)| i)
        .unwrap_or(rest.len());
    if len == 0 {
        rest.chars().next().map_or("", |c| &rest[..c.len_utf8()])
    } else {
        &rest[..len]
    }
}

fn syntax_error(text: &str, err: pest::error::Error<Rule>) -> Diag {
    let offset = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let found = word_at(text, offset);
    // At the end of the file, point just after the last code: a snippet with a line in it.
    let span = if found.is_empty() {
        let end = end_of_code(text);
        Span::new(end, end)
    } else {
        Span::new(offset, offset + found.len())
    };
    let mut expected: Vec<Rule> = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        ErrorVariant::CustomError { .. } => Vec::new(),
    };
    // At the very start pest names the whole `file`: it means a block's keyword.
    if let Some(i) = expected.iter().position(|r| *r == Rule::file) {
        let blocks = [Rule::kw_vlan, Rule::kw_host, Rule::kw_vip];
        let blocks = blocks
            .into_iter()
            .chain([Rule::kw_firewall, Rule::kw_agent]);
        expected.splice(i..=i, blocks);
    }
    let list = expected_list(&expected);
    let found_text = match found {
        "" => "end of file".to_string(),
        f if f.chars().all(char::is_control) => format!("{:?}", f),
        // A message stays a line, whatever the input (10 MB of one letter is one "word").
        f if f.chars().count() > 40 => format!("`{}…`", f.chars().take(40).collect::<String>()),
        f => format!("`{f}`"),
    };
    if let Some(block) = unclosed_block(text, offset, found, &expected) {
        let line = line_breaks(&text[..block.header.start]) + 1;
        let at = if found.is_empty() {
            "expected `}` after this"
        } else {
            "expected `}` before this"
        };
        return Diag::new(
            Code::Syntax,
            format!(
                "`{}` (opened on line {line}) is not closed: expected `}}`, found {found_text}",
                block.name
            ),
        )
        .label(span, at)
        .label(block.header, format!("`{}` opened here", block.name))
        .help(format!(
            "add the `}}` that ends `{}` after its last statement",
            block.name
        ));
    }
    Diag::new(Code::Syntax, format!("expected {list}, found {found_text}"))
        .label(span, format!("expected {list}"))
        .help(syntax_help(found, &expected))
}

/// "`a`, `b` or `c`": what the parser expected, in words.
fn expected_list(expected: &[Rule]) -> String {
    let mut words: Vec<String> = expected
        .iter()
        .filter(|r| **r != Rule::COMMENT)
        .map(|r| describe(*r))
        .collect();
    words.sort();
    words.dedup();
    if words.is_empty() {
        words.push("something else".into());
    }
    match words.len() {
        1 => words[0].clone(),
        n => format!("{} or {}", words[..n - 1].join(", "), words[n - 1]),
    }
}

fn syntax_help(found: &str, expected: &[Rule]) -> String {
    let keywords: Vec<&str> = expected.iter().filter_map(|r| keyword(*r)).collect();
    if let Some(c) = found.chars().find(|c| c.is_control()) {
        let string = expected.contains(&Rule::quote);
        format!(
            "control character U+{:04X} is not allowed in a topology{}",
            c as u32,
            if string {
                "; a quoted string ends with `\"` on its own line"
            } else {
                ""
            }
        )
    } else if let Some(c) = found.chars().find(|c| !c.is_ascii()) {
        format!(
            "`{c}` (U+{:04X}) is not ASCII: outside quoted strings netc reads only ASCII \
             (a pasted curly quote or no-break space?)",
            c as u32
        )
    } else if let Some(guess) = did_you_mean(found, keywords.iter().copied()) {
        guess
    } else if !keywords.is_empty() {
        "a block's statements each start with a keyword; a block ends with `}`".to_string()
    } else {
        "the language is shown by example in the README; its grammar is grammar/netc.pest"
            .to_string()
    }
}

/// A block that is still open where parsing failed.
struct OpenBlock {
    /// What it is called: its first two words, e.g. `host biloba`.
    name: String,
    /// The span of those words.
    header: Span,
}

/// The block a missing `}` leaves open, if that is what the error at `offset` is: the
/// parser would take a `}` there, some block is open, and what comes instead is the end of
/// the file or a keyword that this block does not take (the next `host`, say) — not a
/// misspelt statement, which gets a did-you-mean instead.
fn unclosed_block(text: &str, offset: usize, found: &str, expected: &[Rule]) -> Option<OpenBlock> {
    if !expected.contains(&Rule::close) {
        return None;
    }
    let outer_keyword = Rule::all_rules()
        .iter()
        .any(|r| keyword(*r) == Some(found) && !expected.contains(r));
    if !(found.is_empty() || outer_keyword) {
        return None;
    }
    let brace = innermost_open_brace(&text[..offset.min(text.len())])?;
    // The block's header: the words before its `{`, on its line or, for a `{` on a line of
    // its own, on the last line before it that has code.
    let mut end = brace;
    let words = loop {
        let start = text[..end].rfind(['\n', '\r']).map_or(0, |i| i + 1);
        let line = &text[start..end];
        let code = line.split('#').next().unwrap_or("");
        let words: Vec<(usize, &str)> = code
            .split_whitespace()
            .map(|w| (start + (w.as_ptr() as usize - line.as_ptr() as usize), w))
            .take(2)
            .collect();
        if !words.is_empty() || start == 0 {
            break words;
        }
        end = start - 1;
    };
    let (first, last) = (words.first()?, words.last()?);
    Some(OpenBlock {
        name: words.iter().map(|(_, w)| *w).collect::<Vec<_>>().join(" "),
        header: Span::new(first.0, last.0 + last.1.len()),
    })
}

/// The offset of the innermost `{` not closed in `text` (comments and strings skipped).
fn innermost_open_brace(text: &str) -> Option<usize> {
    let mut open = Vec::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' | '"' => {
                // A comment runs to the end of its line (CR or LF, as in the grammar); a string
                // to its quote, or the line's end: a string cannot span lines.
                for (_, d) in chars.by_ref() {
                    if matches!(d, '\n' | '\r') || (c == '"' && d == '"') {
                        break;
                    }
                }
            }
            '{' => open.push(i),
            '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_need_a_word_boundary() {
        let err = parse("vlan529 \"x\" {}").unwrap_err();
        assert_eq!(err.code, Code::Syntax);
        assert_eq!(err.span(), Span::new(0, 7));
    }

    #[test]
    fn misspelled_keyword_gets_did_you_mean() {
        let err = parse("vlan 1 \"x\" { rol management }").unwrap_err();
        assert_eq!(err.span(), Span::new(13, 16));
        assert_eq!(err.help.as_deref(), Some("did you mean `role`?"));
    }

    /// A missing `}` names the block left open, with the line it opened on; a misspelt
    /// statement inside a block still gets its did-you-mean.
    #[test]
    fn a_missing_brace_names_the_open_block() {
        let err = parse("vlan 1 \"x\" {\n}\nhost a {\n  nic e0\n  bridge b vlan 1 on e0 {\n    address 192.0.2.1\n  bridge c vlan 2 on e0\n}\n").unwrap_err();
        assert_eq!(
            err.message,
            "`bridge b` (opened on line 5) is not closed: expected `}`, found `bridge`"
        );
        assert_eq!(err.labels[1].0, Span::new(35, 43));
        // `{` on a line of its own, comments and strings with braces in them.
        let err = parse("vip v # {\n{\n  check \"/a}{\" interval 2\nhost h {}").unwrap_err();
        assert!(
            err.message.starts_with("`vip v` (opened on line 1)"),
            "{}",
            err.message
        );
        // At the end of the file: just after the last code, comments and blank lines skipped.
        let text = "firewall F {\n  ports 1 # c\n\n# end\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.span(), Span::new(22, 22));
        assert!(err.message.starts_with("`firewall F` (opened on line 1)"));
        let err = parse("vlan 1 \"x\" { rol management }").unwrap_err();
        assert_eq!(err.help.as_deref(), Some("did you mean `role`?"));
        let err = parse("hots a {}").unwrap_err();
        assert_eq!(
            err.message,
            "expected `agent`, `firewall`, `host`, `vip` or `vlan`, found `hots`"
        );
        assert_eq!(err.help.as_deref(), Some("did you mean `host`?"));
        let long = "x".repeat(1000);
        let err = parse(&long).unwrap_err();
        assert_eq!(err.span(), Span::new(0, 1000));
        assert!(err.message.ends_with(&format!("found `{}…`", &long[..40])));
        let err = parse("vlan 1 \"x\"\n\n").unwrap_err();
        assert_eq!(
            (err.span(), err.message.as_str()),
            (Span::new(10, 10), "expected `{`, found end of file")
        );
    }

    #[test]
    fn spans_point_at_values() {
        let file = parse("host a {\n  bridge br1 vlan 7 on eth0 { address 192.0.2.1 }\n}").unwrap();
        let b = &file.hosts[0].bridges[0];
        let vlan = b.vlan.as_ref().unwrap();
        assert_eq!(vlan.value, "7");
        assert_eq!(vlan.span, Span::new(27, 28));
        assert!(!b.untagged);
        assert_eq!(b.addresses[0].value, "192.0.2.1");
    }

    /// The one-token `allow PREFIX` and the full rule read the same statements alike.
    #[test]
    fn every_allow_form_reads_alike_with_exact_spans() {
        let src = "firewall F {\n  ports 1\n  allow 10.0.0.0/8\n  allow\t \t2001:db8::/32 # c\n  \
                   allow # c\n 10.1.0.0/16\n  allow\n10.2.0.0/16\n  allow vlanx\n  allow vlan 5\n}";
        let file = parse(src).unwrap();
        let mut seen = Vec::new();
        for a in &file.firewalls[0].allows {
            let (kind, t) = match a {
                Allow::Prefix(t) => ("prefix", t),
                Allow::Vlan(t) => ("vlan", t),
            };
            assert_eq!(&src[t.span.start..t.span.end], t.value, "{kind}");
            seen.push(format!("{kind} {}", t.value));
        }
        assert_eq!(
            seen,
            [
                "prefix 10.0.0.0/8",
                "prefix 2001:db8::/32",
                "prefix 10.1.0.0/16",
                "prefix 10.2.0.0/16",
                "prefix vlanx",
                "vlan 5"
            ]
        );
        // A mistake after `allow` is still reported where it is, by the full rule.
        let err = parse("firewall F { allow { }").unwrap_err();
        assert_eq!(err.span(), Span::new(19, 20));
        assert!(
            err.message.contains("an address or prefix"),
            "{}",
            err.message
        );
    }
}
