//! Merging netc's owned keys into the agent's own agent.properties.
//!
//! The agent rewrites this file (the wiki's "7-8 attempts"), so netc never replaces it: it
//! sets only the keys it owns, in place, and keeps every other key, comment, blank line and
//! the order byte for byte. It also says which owned keys someone else changed (drift). The
//! agent's own rewrites of `host` — reordering the list or appending `@algorithm` — are not
//! drift: the same servers are meant, and the file is left as the agent wrote it.

/// What a merge did to one owned key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Already as wanted (or, for `host`, the same servers as the agent writes them).
    Same,
    /// Present with another value, which the merge replaces.
    Drifted { found: String },
    /// Missing, so the merge appends it.
    Added,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    /// The merged file.
    pub text: String,
    /// Per owned key, in the order given.
    pub keys: Vec<(String, KeyState)>,
}

impl Merge {
    pub fn changed(&self) -> bool {
        self.keys.iter().any(|(_, s)| *s != KeyState::Same)
    }
}

/// Sets `owned` (key, value) pairs in `current`, a java.util.Properties file.
pub fn merge(current: &str, owned: &[(&str, String)]) -> Merge {
    let mut lines: Vec<String> = logical_lines(current);
    let mut keys = Vec::new();
    for (key, wanted) in owned {
        let mut state = KeyState::Added;
        for line in lines.iter_mut() {
            let Some((k, value, prefix)) = split(line) else {
                continue;
            };
            if k != *key {
                continue;
            }
            if equivalent(key, &value, wanted) {
                state = KeyState::Same;
            } else {
                state = KeyState::Drifted { found: value };
                *line = format!("{prefix}{}", escape_value(wanted));
            }
        }
        if state == KeyState::Added {
            lines.push(format!("{key}={}", escape_value(wanted)));
        }
        keys.push((key.to_string(), state));
    }
    let mut text = lines.join("\n");
    if current.ends_with('\n') || current.is_empty() {
        text.push('\n');
    }
    Merge { text, keys }
}

/// `host` lists management servers: the agent may reorder them or add `@algorithm`.
fn equivalent(key: &str, found: &str, wanted: &str) -> bool {
    if key != "host" {
        return found == wanted;
    }
    let servers = |v: &str| {
        let list = v.split('@').next().unwrap_or("");
        let mut s: Vec<String> = list
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect();
        s.sort();
        s
    };
    servers(found) == servers(wanted)
}

/// Physical lines joined into logical ones where a line continues (odd trailing backslashes),
/// so a continued value is one unit; the original text of each is kept.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut continuing = false;
    for line in text.lines() {
        if continuing {
            let last = out.last_mut().expect("continuing follows a line");
            last.push('\n');
            last.push_str(line);
        } else {
            out.push(line.to_string());
        }
        let trailing = line.chars().rev().take_while(|c| *c == '\\').count();
        let comment = !continuing && is_comment(line);
        continuing = trailing % 2 == 1 && !comment;
    }
    out
}

fn is_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#') || t.starts_with('!')
}

/// (key, value, everything up to the value) of a key line; None for comments and blanks.
/// Keys with escapes are compared as written (netc's keys have none).
fn split(line: &str) -> Option<(String, String, String)> {
    if is_comment(line) {
        return None;
    }
    let start = line.len() - line.trim_start().len();
    let body = &line[start..];
    let mut key_end = body.len();
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' | ' ' | '\t' => {
                key_end = i;
                break;
            }
            _ => {}
        }
    }
    let key = &body[..key_end];
    // The separator: whitespace, then at most one `=` or `:`, then whitespace.
    let rest = &body[key_end..];
    let after_ws = rest.trim_start_matches([' ', '\t']);
    let after_sep = after_ws.strip_prefix(['=', ':']).unwrap_or(after_ws);
    let value = after_sep.trim_start_matches([' ', '\t', '\u{c}']);
    let prefix_len = start + key_end + (rest.len() - value.len());
    Some((
        key.to_string(),
        unescape(value),
        line[..prefix_len].to_string(),
    ))
}

/// Properties escapes, in one pass: `\<newline>` continues (dropping the next line's leading
/// blanks), `\t \n \r \f` are controls, any other `\x` is `x`. (`\uXXXX` is not needed
/// for the keys netc owns and is read as `uXXXX`.)
fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\n') => {
                while matches!(chars.peek(), Some(' ' | '\t' | '\u{c}')) {
                    chars.next();
                }
            }
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Values netc writes are addresses, names and numbers; escape what Properties would eat.
fn escape_value(v: &str) -> String {
    let mut out = String::new();
    for (i, c) in v.chars().enumerate() {
        match c {
            '\\' => out += "\\\\",
            ' ' if i == 0 => out += "\\ ",
            '\n' => out += "\\n",
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned() -> Vec<(&'static str, String)> {
        vec![
            ("host", "192.0.2.21,192.0.2.23".into()),
            ("port", "8250".into()),
            ("private.network.device", "br529".into()),
            ("guest.network.device", "br425".into()),
        ]
    }

    const AGENT: &str = "#Storage\n#Mon Nov 23 10:00:00 UTC 2026\nguid=5e6f-aa\nzone=1\nhost=192.0.2.23,192.0.2.21@roundrobin\nport=8250\n\n! keystore\nkeystore.passphrase=abc\\\n    def\nprivate.network.device = cloudbr0\n";

    #[test]
    fn only_owned_keys_change_everything_else_stays() {
        let m = merge(AGENT, &owned());
        assert_eq!(
            m.text,
            "#Storage\n#Mon Nov 23 10:00:00 UTC 2026\nguid=5e6f-aa\nzone=1\nhost=192.0.2.23,192.0.2.21@roundrobin\nport=8250\n\n! keystore\nkeystore.passphrase=abc\\\n    def\nprivate.network.device = br529\nguest.network.device=br425\n"
        );
        assert_eq!(
            m.keys,
            vec![
                ("host".into(), KeyState::Same),
                ("port".into(), KeyState::Same),
                (
                    "private.network.device".into(),
                    KeyState::Drifted {
                        found: "cloudbr0".into()
                    }
                ),
                ("guest.network.device".into(), KeyState::Added),
            ]
        );
    }

    #[test]
    fn merging_twice_changes_nothing() {
        let once = merge(AGENT, &owned());
        let twice = merge(&once.text, &owned());
        assert_eq!(twice.text, once.text);
        assert!(!twice.changed());
    }

    #[test]
    fn another_server_list_is_drift_but_reordering_is_not() {
        let m = merge("host=192.0.2.99\n", &owned());
        assert_eq!(
            m.keys[0].1,
            KeyState::Drifted {
                found: "192.0.2.99".into()
            }
        );
        assert!(m.text.starts_with("host=192.0.2.21,192.0.2.23\n"));
        let m = merge("host = 192.0.2.23, 192.0.2.21\n", &owned());
        assert_eq!(m.keys[0].1, KeyState::Same);
    }

    #[test]
    fn separators_and_continuations_are_read_like_java() {
        assert_eq!(split("a:b"), Some(("a".into(), "b".into(), "a:".into())));
        assert_eq!(
            split("  a   b"),
            Some(("a".into(), "b".into(), "  a   ".into()))
        );
        assert_eq!(
            split("a\\=x = y"),
            Some(("a\\=x".into(), "y".into(), "a\\=x = ".into()))
        );
        assert_eq!(split("# c"), None);
        let lines = logical_lines("k=a\\\n  b\nj=c\n");
        assert_eq!(lines, vec!["k=a\\\n  b".to_string(), "j=c".to_string()]);
        assert_eq!(split(&lines[0]).unwrap().1, "ab");
        assert_eq!(unescape("a\\\\b\\\n   c\\td"), "a\\bc\td");
        // A comment ending in a backslash does not continue.
        assert_eq!(
            logical_lines("# x\\\nk=v"),
            vec!["# x\\".to_string(), "k=v".to_string()]
        );
    }
}
