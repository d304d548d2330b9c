//! `netc fmt`: the canonical layout of a topology, keeping every comment.
//!
//! Works on pest's concrete tree, so nothing but layout changes: one statement a line,
//! four spaces an indent, one blank line between blocks (and at most one inside), `, ` in
//! lists, trailing comments aligned within a run of adjacent lines at one nesting level (a
//! blank line or a nested block ends the run), and the optional empty `{}` of a bridge or an
//! agent dropped. Values are printed exactly as written.

use pest::iterators::Pair;

use super::parse::{Rule, is_keyword, pairs};
use crate::diag::Diag;
use crate::source::line_breaks;

/// The canonical text of `text`, or the syntax error that prevents formatting.
pub fn format(text: &str) -> Result<String, Diag> {
    let file = pairs(text)?;
    let mut out = Vec::new();
    block_body(text, file, 0, &mut out, true);
    let mut s = render(&out);
    if s.is_empty() {
        return Ok(s);
    }
    s.push('\n');
    Ok(s)
}

/// One output line: indentation, code (may be empty for a comment line), trailing comment.
struct Line {
    indent: usize,
    code: String,
    comment: Option<String>,
    /// A blank line goes before this one.
    gap: bool,
}

/// Each line's run: adjacent lines at one indent, without a blank line between them.
/// Trailing comments align within a run.
fn runs(lines: &[Line]) -> Vec<usize> {
    let mut run = 0;
    let mut out = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        if i > 0 && (l.gap || l.indent != lines[i - 1].indent) {
            run += 1;
        }
        out.push(run);
    }
    out
}

fn render(lines: &[Line]) -> String {
    let run = runs(lines);
    // The column of aligned trailing comments, per run.
    let mut width = std::collections::HashMap::new();
    for (i, l) in lines.iter().enumerate() {
        if l.comment.is_some() && !l.code.is_empty() {
            let w = width.entry(run[i]).or_insert(0);
            *w = (*w).max(l.indent * 4 + l.code.len());
        }
    }
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if l.gap && i > 0 {
            out.push('\n');
        }
        let mut line = " ".repeat(l.indent * 4) + &l.code;
        if let Some(c) = &l.comment {
            if l.code.is_empty() {
                line += c;
            } else {
                let col = width[&run[i]] + 2;
                line += &" ".repeat(col - line.len());
                line += c;
            }
        }
        // Only the padding fmt added: a value may end in other whitespace (a vertical tab is
        // part of a literal), and dropping it would change what the file says.
        out += line.trim_end_matches(' ');
        out.push('\n');
    }
    out.trim_end_matches('\n').to_string()
}

/// Statements (and comments) of a block, or of the file when `top`.
fn block_body(src: &str, pair: Pair<Rule>, indent: usize, out: &mut Vec<Line>, top: bool) {
    let mut prev_end: Option<usize> = None;
    // Where the block's `{` ends: the file has none; a statement's header comes before it
    // (its comments are the statement's own, see `statement`).
    let mut open_end: Option<usize> = None;
    for item in pair.into_inner() {
        let rule = item.as_rule();
        if rule == Rule::open {
            open_end = Some(item.as_span().end());
        }
        let in_header = !top && open_end.is_none();
        if matches!(rule, Rule::EOI | Rule::open | Rule::close)
            || is_header_token(rule)
            || in_header
        {
            continue;
        }
        let start = item.as_span().start();
        // A comment on the line of the `{` stays there: it is the header line's.
        let after = prev_end.or(open_end);
        let between = after.map(|e| &src[e..start]).unwrap_or("");
        let same_line = after.is_some() && line_breaks(between) == 0;
        let blank = prev_end.is_some() && line_breaks(between) >= 2;
        if rule == Rule::COMMENT {
            let text = item.as_str().trim_end().to_string();
            match out.last_mut() {
                Some(last) if same_line && last.comment.is_none() => last.comment = Some(text),
                _ => out.push(Line {
                    indent,
                    code: String::new(),
                    comment: Some(text),
                    gap: blank,
                }),
            }
        } else {
            // Between top-level blocks always one blank line; inside, keep one if there was.
            let gap = if top {
                prev_end.is_some() && (blank || is_block(out.last()))
            } else {
                blank
            };
            statement(src, item.clone(), indent, out, gap);
        }
        prev_end = Some(content_end(&item));
    }
}

/// Where a statement's words and comments end. (Its own span can run on over the blank
/// lines after it: pest keeps the whitespace it skipped looking for an optional `{`.)
fn content_end(pair: &Pair<Rule>) -> usize {
    let inner = pair.clone().into_inner().map(|p| p.as_span().end()).max();
    inner.unwrap_or(pair.as_span().end())
}

fn is_block(line: Option<&Line>) -> bool {
    line.is_some_and(|l| l.code == "}")
}

/// Rules that are the words of a statement's header, not statements of their own.
fn is_header_token(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::name
            | Rule::number
            | Rule::port
            | Rule::literal
            | Rule::string
            | Rule::comma
            | Rule::bridge_vlan
    ) || is_keyword(rule)
}

/// Rules that are statements inside a block.
fn is_statement(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::role
            | Rule::prefix
            | Rule::management_server
            | Rule::agent_host
            | Rule::device_bridge
            | Rule::nic
            | Rule::bond
            | Rule::slaves
            | Rule::bond_setting
            | Rule::mtu
            | Rule::default_route
            | Rule::nopreempt
            | Rule::preempt_delay
            | Rule::servers
            | Rule::bridge
            | Rule::address
            | Rule::vip_vlan
            | Rule::router_id
            | Rule::member
            | Rule::check
            | Rule::ports
            | Rule::allow
            | Rule::allow_prefix
            | Rule::on_hosts
            | Rule::agent_port
            | Rule::bridge_type
            | Rule::connect
            | Rule::device_role
            | Rule::vlan
            | Rule::host
            | Rule::vip
            | Rule::firewall
            | Rule::agent_defaults
    )
}

fn statement(src: &str, pair: Pair<Rule>, indent: usize, out: &mut Vec<Line>, gap: bool) {
    let rule = pair.as_rule();
    let mut words: Vec<String> = Vec::new();
    let mut has_block = false;
    let mut children = false;
    let mut trailing: Option<String> = None;
    // Comments pest's whitespace skip pulled into the statement from the lines after it.
    let mut after: Vec<String> = Vec::new();
    let mut last_end = pair.as_span().start();
    if rule == Rule::allow_prefix {
        // One token: `allow`, blanks (spaces and tabs only: other whitespace, a vertical
        // tab say, is part of the prefix), the prefix.
        let prefix = pair.as_str()["allow".len()..].trim_start_matches([' ', '\t']);
        words.extend(["allow".to_string(), prefix.to_string()]);
    }
    for p in pair.clone().into_inner() {
        let on_line = line_breaks(&src[last_end..p.as_span().start()]) == 0;
        match p.as_rule() {
            Rule::open => has_block = true,
            Rule::close => {}
            Rule::COMMENT if !has_block && on_line && trailing.is_none() && after.is_empty() => {
                trailing = Some(p.as_str().trim_end().to_string())
            }
            Rule::COMMENT if !has_block => after.push(p.as_str().trim_end().to_string()),
            r if is_statement(r) || r == Rule::COMMENT => children = true,
            _ => {
                last_end = p.as_span().end();
                words.extend(flatten(p));
                continue;
            }
        }
        last_end = last_end.max(p.as_span().end());
    }
    let code = join_words(&words);
    // `{}` is optional on a bridge and a host's agent statement: drop it when empty.
    let optional = matches!(rule, Rule::bridge | Rule::agent_host);
    let line = |code: String, comment: Option<String>, gap: bool| Line {
        indent,
        code,
        comment,
        gap,
    };
    if has_block && children {
        out.push(line(code + " {", trailing, gap));
        // Comments among the header's words open the block's body.
        comment_lines(out, indent + 1, after);
        block_body(src, pair, indent + 1, out, false);
        out.push(line("}".into(), None, false));
        return;
    }
    let code = match has_block && !optional {
        true => code + " {}",
        false => code,
    };
    out.push(line(code, trailing, gap));
    comment_lines(out, indent, after);
}

fn comment_lines(out: &mut Vec<Line>, indent: usize, comments: Vec<String>) {
    for c in comments {
        out.push(Line {
            indent,
            code: String::new(),
            comment: Some(c),
            gap: false,
        });
    }
}

/// A statement's words on one line: single spaces, none before a comma.
fn join_words(words: &[String]) -> String {
    let mut code = String::new();
    for w in words {
        if w != "," && !code.is_empty() {
            code.push(' ');
        }
        code += w;
    }
    code
}

/// The words of a header element: keywords, names, values, commas, in order.
fn flatten(pair: Pair<Rule>) -> Vec<String> {
    match pair.as_rule() {
        Rule::string | Rule::name | Rule::number | Rule::port | Rule::literal | Rule::comma => {
            vec![pair.as_str().to_string()]
        }
        r if is_keyword(r) => vec![pair.as_str().to_string()],
        Rule::COMMENT => Vec::new(),
        _ => pair.into_inner().flat_map(flatten).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lone CR ends a line, as in the grammar: a comment on the next line stays on a
    /// line of its own, and a blank line stays.
    #[test]
    fn a_lone_cr_is_a_line_break() {
        let cr = "host a {\r    nic e1\r    # own line\r\r    nic e2  # e2\r}\r";
        let want = "host a {\n    nic e1\n    # own line\n\n    nic e2  # e2\n}\n";
        assert_eq!(format(cr).unwrap(), want);
        assert_eq!(format(&cr.replace('\r', "\r\n")).unwrap(), want);
    }

    #[test]
    fn layout_is_canonical_and_comments_stay() {
        let messy = "# site\nvlan   1 \"m\"{role management # why\nprefix 192.0.2.0/24}\n\n\n\nhost a { nic eth0\n  bridge br1 vlan 1 on eth0 { }\n# own line\n  agent {}\n}\nfirewall F { ports tcp 1,2 ,3\n allow vlan 1 }\n";
        let want = "# site\nvlan 1 \"m\" {\n    role management  # why\n    prefix 192.0.2.0/24\n}\n\nhost a {\n    nic eth0\n    bridge br1 vlan 1 on eth0\n    # own line\n    agent\n}\n\nfirewall F {\n    ports tcp 1, 2, 3\n    allow vlan 1\n}\n";
        let got = format(messy).unwrap();
        assert_eq!(got, want);
        assert_eq!(format(&got).unwrap(), got, "idempotent");
    }

    /// Comments in a block's header stay once: on the header line, or opening the body
    /// (they were written twice, and one after an empty `{}` was lost).
    #[test]
    fn header_comments_are_kept_once() {
        let messy = "vlan 1 \"x\" # c\n{ role management }\nhost a # d\n# e\n{ # f\nnic e0 }\nvlan 2 \"y\" # g\n# h\n{}\n";
        let want = "vlan 1 \"x\" {  # c\n    role management\n}\n\nhost a {  # d\n    # e\n    # f\n    nic e0\n}\n\nvlan 2 \"y\" {}  # g\n# h\n";
        let got = format(messy).unwrap();
        assert_eq!(got, want);
        assert_eq!(format(&got).unwrap(), got, "idempotent");
    }

    /// Comments align within adjacent lines at one level: not past a nested block or a
    /// blank line, and not with a longer line of another level.
    #[test]
    fn trailing_comments_align_within_a_run_of_lines() {
        let messy = "host a {\n nic e1 # x\n nic eth22 # y\n bridge b vlan 1 on e1 { # z\n address 192.0.2.1 # w\n }\n bridge b2 vlan 2 on e1 # v\n\n nic e3 # u\n}\n";
        let want = "host a {\n    nic e1                   # x\n    nic eth22                # y\n    bridge b vlan 1 on e1 {  # z\n        address 192.0.2.1  # w\n    }\n    bridge b2 vlan 2 on e1  # v\n\n    nic e3  # u\n}\n";
        let got = format(messy).unwrap();
        assert_eq!(got, want);
        assert_eq!(format(&got).unwrap(), got, "idempotent");
    }
}
