//! `# netc: allow(code, …)`: a warning the site has decided to keep, accepted where it
//! stands, so `check` is quiet. The comment allows the named warnings on its own line (after
//! a statement) or, alone on a line, on the next line with a statement. An allow that
//! names an error, an unknown code, or nothing reported there is itself a warning.

use crate::diag::{Code, Diag, Severity};
use crate::source::{Source, Span};

const MARK: &str = "netc: allow(";

/// One allow comment: the codes it names and the line it applies to.
struct Allow {
    /// The span of the comment, for `unused-allow`.
    span: Span,
    line: usize,
    codes: Vec<(String, Option<Code>)>,
    used: Vec<bool>,
}

/// Drops the allowed warnings from `diags` and reports allows that allow nothing.
pub fn apply(diags: &mut Vec<Diag>, source: &Source) {
    // Most files have none: one substring search instead of a pass over every line.
    if !source.text.contains(MARK) {
        return;
    }
    let mut allows = find(source);
    if allows.is_empty() {
        return;
    }
    diags.retain(|d| {
        if d.severity() != Severity::Warning {
            return true;
        }
        let line = source.line_col(d.span().start).0;
        let mut allowed = false;
        for a in allows.iter_mut().filter(|a| a.line == line) {
            for (i, (_, code)) in a.codes.iter().enumerate() {
                if *code == Some(d.code) {
                    a.used[i] = true;
                    allowed = true;
                }
            }
        }
        !allowed
    });
    for a in &allows {
        for ((name, code), used) in a.codes.iter().zip(&a.used) {
            let why = match code {
                None => format!("`{name}` is not a diagnostic code of netc"),
                Some(c) if c.severity() == Severity::Error => {
                    format!("`{name}` is an error: errors cannot be allowed")
                }
                Some(_) if !used => format!("no `{name}` warning on line {} to allow", a.line),
                Some(_) => continue,
            };
            let d = Diag::new(Code::UnusedAllow, why)
                .label(a.span, "this allow changes nothing")
                .help(
                    "put `# netc: allow(CODE)` after the statement a warning points at, or \
                     alone on the line before it; remove it when the warning is gone",
                );
            diags.push(d);
        }
    }
    diags.sort_by_key(|d| (d.span(), d.code));
}

/// Every allow comment of the source.
fn find(source: &Source) -> Vec<Allow> {
    let mut out = Vec::new();
    let mut pending: Vec<Allow> = Vec::new();
    for (i, (offset, line)) in source.line_texts().enumerate() {
        let number = i + 1;
        let comment = comment_start(line);
        let code = &line[..comment.unwrap_or(line.len())];
        let has_code = !code.trim().is_empty();
        if has_code {
            for mut a in pending.drain(..) {
                a.line = number;
                out.push(a);
            }
        }
        if let Some(c) = comment
            && let Some(allow) = parse(&line[c..], offset + c, number)
        {
            if has_code {
                out.push(allow);
            } else {
                pending.push(allow);
            }
        }
    }
    // Allows at the end of the file apply to nothing.
    out.extend(pending);
    out
}

/// Where the comment of a line starts: a `#` outside quotes.
fn comment_start(line: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// `# netc: allow(a, b)` in a comment that starts at `at`.
fn parse(comment: &str, at: usize, line: usize) -> Option<Allow> {
    let start = comment.find(MARK)?;
    let rest = &comment[start + MARK.len()..];
    let end = rest.find(')')?;
    let codes: Vec<(String, Option<Code>)> = rest[..end]
        .split(',')
        .map(|c| c.trim().trim_start_matches("netc::").to_string())
        .filter(|c| !c.is_empty())
        .map(|name| {
            let code = Code::ALL
                .iter()
                .copied()
                .find(|c| c.as_str().trim_start_matches("netc::") == name);
            (name, code)
        })
        .collect();
    let span = Span::new(at, at + comment.trim_end().len());
    Some(Allow {
        span,
        line,
        used: vec![false; codes.len()],
        codes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str) -> Vec<(Code, usize)> {
        let c = crate::compile("t.csn", text.as_bytes());
        c.diags
            .iter()
            .map(|d| (d.code, c.source.line_col(d.span().start).0))
            .collect()
    }

    const SITE: &str = "vlan 1 \"m\" {\n    role management\n    prefix 192.0.2.0/24\n}\nhost h {\n    management-server\n    agent\n    nic eth0\n    bridge br1 vlan 1 on eth0 {\n        address 192.0.2.1\n    }\n}\n";

    #[test]
    fn an_allow_quiets_its_line_or_the_next_and_nothing_else() {
        let fw = "firewall F {\n    ports tcp 41047  # netc: allow(ephemeral-port)\n    # netc: allow(ephemeral-port, covered-source)\n    ports tcp 41048\n    ports tcp 41049\n    allow 10.0.0.0/8\n}\n";
        let got = codes(&format!("{SITE}{fw}"));
        // 41049 still warns; the covered-source allow finds nothing on line 16.
        assert_eq!(
            got,
            vec![(Code::UnusedAllow, 15), (Code::EphemeralPort, 17)],
            "{got:?}"
        );
    }

    #[test]
    fn errors_and_unknown_codes_are_not_allowed() {
        let text = format!(
            "{SITE}firewall F {{\n    ports tcp 99999  # netc: allow(port-range, no-such-code)\n}}\n"
        );
        let got = codes(&text);
        assert!(got.contains(&(Code::PortRange, 14)), "{got:?}");
        assert_eq!(
            got.iter().filter(|(c, _)| *c == Code::UnusedAllow).count(),
            2
        );
    }
}
