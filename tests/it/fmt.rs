//! `netc fmt`: idempotent, and it never changes meaning: on every fixture that parses, the
//! build (or the diagnostics) before and after formatting are the same.

use std::fs;

use netc::config::Target;

use crate::support::*;

fn every_fixture() -> Vec<std::path::PathBuf> {
    let mut all = valid_topologies();
    for dir in ["err", "mistakes", "fmt"] {
        all.extend(fixtures(dir));
    }
    all
}

#[test]
fn fmt_is_idempotent_and_keeps_meaning() {
    let mut formatted_count = 0;
    for path in every_fixture() {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        }; // not UTF-8
        let Ok(once) = netc::syntax::layout::format(&text) else {
            continue;
        }; // a syntax error
        formatted_count += 1;
        let what = path.display();
        assert_eq!(
            netc::syntax::layout::format(&once).unwrap(),
            once,
            "{what}: not idempotent"
        );
        let (a, b) = (
            netc::compile("x.csn", text.as_bytes()),
            netc::compile("x.csn", once.as_bytes()),
        );
        match (&a.topology, &b.topology) {
            (Some(ta), Some(tb)) => {
                assert_eq!(
                    netc::render::tree(ta, Target::Both),
                    netc::render::tree(tb, Target::Both),
                    "{what}"
                );
            }
            (None, None) => {}
            _ => panic!("{what}: formatting changed whether it builds"),
        }
        let diags = |c: &netc::Compiled| {
            c.diags
                .iter()
                .map(|d| (d.code, d.message.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            diags(&a),
            diags(&b),
            "{what}: formatting changed the diagnostics"
        );
        // Every comment survives.
        let comments = |t: &str| {
            // A comment ends at LF or a lone CR, as in the grammar.
            t.split(['\n', '\r'])
                .filter_map(|l| l.find('#').map(|i| l[i..].trim_end().to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(comments(&text), comments(&once), "{what}: comments changed");
    }
    assert!(formatted_count > 50, "{formatted_count}");
}

#[test]
fn committed_topologies_are_formatted() {
    let o = netc(
        &[
            "fmt",
            "--check",
            "topology/csc.csn",
            "tests/fixtures/ok/lab.csn",
            "topology/examples/advanced-zone.csn",
        ],
        &root(),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "run `netc fmt` on: {}",
        stdout(&o)
    );
}

#[test]
fn fmt_check_writes_nothing_and_fmt_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messy.csn");
    let messy = fs::read_to_string(root().join("topology/csc.csn"))
        .unwrap()
        .replace("    ", "  ");
    fs::write(&path, &messy).unwrap();
    let p = path.to_str().unwrap();
    let o = netc(&["fmt", "--check", p], &root());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o).trim(), p);
    assert_eq!(fs::read_to_string(&path).unwrap(), messy, "--check wrote");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let o = netc(&["fmt", p], &root());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640,
        "mode kept"
    );
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no backup or temporary file left"
    );
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        fs::read_to_string(root().join("topology/csc.csn")).unwrap()
    );
    let o = netc(
        &["fmt", "--check", "tests/fixtures/err/syntax.csn"],
        &root(),
    );
    assert_exit(&o, 1, "netc::syntax");
    let o = netc(&["fmt", "tests/fixtures/err/not-utf8.csn"], &root());
    assert_exit(&o, 1, "netc::not-utf8");
}
