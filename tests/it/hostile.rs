//! Hostile input: realistic mistakes, junk, huge files and random mutations. Nothing may
//! panic; every bad input gets a coded, positioned diagnostic, exit 1, and leaves an existing
//! output tree byte-for-byte as it was.

use std::fs;
use std::path::Path;

use netc::Compiled;
use netc::config::Target;

use crate::support::*;

/// Every diagnostic points inside the text, on character boundaries.
fn assert_positioned(c: &Compiled, what: &str) {
    let text = &c.source.text;
    for d in &c.diags {
        for (span, _) in &d.labels {
            assert!(
                span.start <= span.end && span.end <= text.len(),
                "{what}: {span:?} out of bounds"
            );
            assert!(
                text.is_char_boundary(span.start) && text.is_char_boundary(span.end),
                "{what}: {span:?} splits a character"
            );
        }
        assert!(!d.labels.is_empty(), "{what}: {} has no position", d.code);
        assert!(d.help.is_some(), "{what}: {} has no help line", d.code);
    }
}

#[test]
fn mistakes_get_coded_positioned_errors() {
    for path in fixtures("mistakes") {
        let c = compile(&path);
        assert!(
            c.topology.is_none(),
            "{} built:\n{}",
            path.display(),
            render_diags(&c)
        );
        assert!(c.errors() > 0);
        assert_positioned(&c, &path.display().to_string());
        insta::assert_snapshot!(format!("mistake-{}", stem(&path)), render_diags(&c));
    }
}

/// Runs `netc build` on a bad input over an existing tree and checks the tree is untouched.
fn assert_build_fails_cleanly(input: &Path, out: &Path, before: &[(String, Vec<u8>)]) {
    let o = netc(
        &[
            "build",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}: {}",
        input.display(),
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("netc::"),
        "{}: no code in {}",
        input.display(),
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("nothing written"),
        "{}",
        input.display()
    );
    assert_eq!(
        read_tree(out),
        before,
        "{} changed the output",
        input.display()
    );
}

#[test]
fn failed_builds_leave_existing_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = netc(
        &["build", "topology/csc.csn", "-o", out.to_str().unwrap()],
        &root(),
    );
    assert!(o.status.success());
    let before = read_tree(&out);
    let bad = fixtures("mistakes")
        .into_iter()
        .chain(fixtures("err"))
        .chain([fixture("many-errors.csn")]);
    for input in bad {
        if compile(&input).topology.is_some() {
            continue; // the warning-only fixtures of err/ build
        }
        assert_build_fails_cleanly(&input, &out, &before);
    }
    // Ten megabytes: comments, then one mistake at the very end, reported at its line.
    let big = dir.path().join("big.csn");
    let mut text = "# padding padding padding padding padding padding padding padding padding\n"
        .repeat(140_000);
    let lines = text.lines().count();
    text.push_str("host {\n");
    assert!(text.len() > 10_000_000);
    fs::write(&big, &text).unwrap();
    assert_build_fails_cleanly(&big, &out, &before);
    let c = compile(&big);
    assert_eq!(c.source.line_col(c.diags[0].span().start), (lines + 1, 6));
    // Ten megabytes of one letter.
    fs::write(&big, "x".repeat(10_000_000)).unwrap();
    assert_build_fails_cleanly(&big, &out, &before);
}

/// Windows line endings are whitespace too.
#[test]
fn crlf_files_build_the_same() {
    let lf = fs::read_to_string(root().join("topology/csc.csn")).unwrap();
    let crlf = lf.replace('\n', "\r\n");
    let a = netc::compile("topology/csc.csn", lf.as_bytes());
    let b = netc::compile("topology/csc.csn", crlf.as_bytes());
    assert_eq!(
        netc::render::tree(a.topology.as_ref().unwrap(), Target::Both),
        netc::render::tree(b.topology.as_ref().unwrap(), Target::Both)
    );
}

/// A deterministic mutation run over the real topology: insert, delete and replace bytes and
/// tokens. No input may panic; every diagnostic must be positioned; a model comes out only
/// without errors. (cargo fuzz runs the same property far longer: see fuzz/.)
#[test]
fn random_mutations_never_panic() {
    let seed_text = fs::read(root().join("topology/csc.csn")).unwrap();
    let pieces: &[&[u8]] = &[
        b"{",
        b"}",
        b",",
        b"\"",
        b"#",
        b"\n",
        b" ",
        b"/",
        b":",
        b".",
        b"0",
        b"9",
        b"65536",
        b"4095",
        b"vlan ",
        b"host ",
        b"bridge ",
        b"address ",
        b"allow vlan 529",
        b"member x priority 1",
        b"\xc3\xad",
        b"\xe2\x80\x9c",
        b"\xff",
        b"\x00",
        b"::",
        b"/129",
        b"/33",
        b"management-server",
    ];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let mut outcomes = [0usize; 2];
    for _ in 0..3000 {
        let mut text = seed_text.clone();
        for _ in 0..1 + next(4) {
            let at = next(text.len() + 1);
            match next(3) {
                0 => {
                    let p = pieces[next(pieces.len())];
                    text.splice(at..at, p.iter().copied());
                }
                1 => {
                    let end = (at + 1 + next(12)).min(text.len());
                    text.drain(at.min(end)..end);
                }
                _ => {
                    if at < text.len() {
                        text[at] = pieces[next(pieces.len())][0];
                    }
                }
            }
        }
        let c = netc::compile("mutant.csn", &text);
        assert_eq!(c.topology.is_some(), c.errors() == 0);
        assert_positioned(&c, &String::from_utf8_lossy(&text));
        outcomes[usize::from(c.topology.is_some())] += 1;
    }
    // The run must exercise both outcomes, or it proves little.
    assert!(outcomes[0] > 100 && outcomes[1] > 100, "{outcomes:?}");
}

/// A topology on one long line (minified, or written by a script): a mistake far into the
/// line is reported with its position, not a panic in the snippet renderer (which pads to a
/// label with a format width, at most 65,535 columns).
#[test]
fn a_topology_on_one_line_is_reported() {
    let text = fs::read_to_string(root().join("topology/csc.csn")).unwrap();
    let code: Vec<&str> = text.lines().map(|l| l.split('#').next().unwrap()).collect();
    let sources: String = (0..20_000)
        .map(|i| format!(" allow 10.{}.{}.0/24", i / 256, i % 256))
        .collect();
    let line = code.join(" ").replace(
        "allow vlan 529",
        &format!("allow vlan 529{sources} on nosuch"),
    );
    assert!(!line.contains('\n') && line.len() > 400_000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one-line.csn");
    fs::write(&file, &line).unwrap();
    let o = netc(&["check", file.to_str().unwrap()], &root());
    assert_exit(&o, 1, "netc::unknown-host");
    let column = line.find("nosuch").unwrap() + 1;
    assert!(
        stderr(&o).contains(&format!("at {}:1:{column}: not a host", file.display())),
        "{}",
        &stderr(&o)[..2000.min(stderr(&o).len())]
    );
}
