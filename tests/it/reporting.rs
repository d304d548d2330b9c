//! How diagnostics are shown: the error limit and its summary, `--format json` and
//! `--format github`, follow-on errors left out, and the primary span (the line the user
//! edited) shown first.

use std::fs;

use netc::diag::Code;

use crate::support::*;

/// csc.csn with `n` allowed sources that have host bits set: `n` errors of one code.
fn with_host_bits(dir: &std::path::Path, n: usize) -> String {
    let text = fs::read_to_string(root().join("topology/csc.csn")).unwrap();
    let allows: String = (0..n)
        .map(|i| format!("    allow 10.{}.{}.1/24\n", i / 256, i % 256))
        .collect();
    // In the first firewall only: csc.csn has two that allow VLAN 529.
    let text = text.replacen(
        "    allow vlan 529\n",
        &format!("    allow vlan 529\n{allows}"),
        1,
    );
    let path = dir.join("many.csn");
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn the_error_limit_shows_20_then_counts_the_rest_per_code() {
    let dir = tempfile::tempdir().unwrap();
    let file = with_host_bits(dir.path(), 45);
    let o = netc(&["check", &file], &root());
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.matches("  × ").count(), 20, "{err}");
    assert!(
        err.contains(
            "… and 25 more errors not shown: 25 netc::host-bits-set (--max-errors 0 shows all)\n"
        ),
        "{err}"
    );
    // The warning is shown: warnings have a limit of their own.
    assert!(err.contains("netc::guest-bridge-name-too-long"), "{err}");
    assert!(err.ends_with("45 errors, 1 warning\n"), "{err}");

    let o = netc(&["check", &file, "--max-errors", "0"], &root());
    assert_eq!(stderr(&o).matches("  × ").count(), 45);
    assert!(!stderr(&o).contains("not shown"));
    let o = netc(
        &["build", &file, "--max-errors", "3", "-o", "/nonexistent/x"],
        &root(),
    );
    assert_eq!(stderr(&o).matches("  × ").count(), 3);
    assert!(stderr(&o).contains("… and 42 more errors not shown"));
    assert!(stderr(&o).contains("nothing written"), "{}", stderr(&o));
}

#[test]
fn json_is_one_document_on_stdout_with_every_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let file = with_host_bits(dir.path(), 45);
    let check = ["check", &file, "--format", "json"];
    let build = ["build", &file, "--format", "json", "-o", "/nonexistent/x"];
    for args in [&check[..], &build[..]] {
        let o = netc(args, &root());
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("stdout is JSON");
        assert_eq!(v["errors"], 45);
        assert_eq!(v["warnings"], 1);
        assert_eq!(
            v["omitted"],
            serde_json::json!({}),
            "JSON shows all by default"
        );
        let diags = v["diagnostics"].as_array().unwrap();
        assert_eq!(diags.len(), 46);
        let d = diags
            .iter()
            .find(|d| d["code"] == "netc::host-bits-set")
            .unwrap();
        let line = fs::read_to_string(&file)
            .unwrap()
            .lines()
            .position(|l| l == "    allow 10.0.0.1/24")
            .unwrap()
            + 1;
        assert_eq!(d["severity"], "error");
        assert_eq!(d["file"], file.as_str());
        assert_eq!((&d["line"], &d["column"]), (&line.into(), &11.into()));
        assert_eq!(d["end"], serde_json::json!({"line": line, "column": 22}));
        assert_eq!(d["message"], "prefix `10.0.0.1/24` has host bits set");
        assert_eq!(d["help"], "did you mean `10.0.0.0/24`?");
        assert_eq!(d["labels"][0]["text"], "the network is 10.0.0.0/24");
    }
    let o = netc(
        &["check", &file, "--format", "json", "--max-errors", "2"],
        &root(),
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["diagnostics"].as_array().unwrap().len(), 3);
    assert_eq!(v["omitted"]["netc::host-bits-set"], 43);
    // A valid file: an empty list, exit 0.
    let o = netc(
        &["check", "tests/fixtures/ok/minimal.csn", "--format", "json"],
        &root(),
    );
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["errors"], 0);
}

/// `build --check --format json` lists stale files on stderr: stdout stays one document.
#[test]
fn json_stdout_stays_json_when_output_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = netc(
        &[
            "build",
            "topology/csc.csn",
            "--check",
            "--format",
            "json",
            "-o",
            out.to_str().unwrap(),
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["warnings"], 1);
    assert!(
        stderr(&o).contains("missing  biloba/etc/network/interfaces"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn github_format_annotates_the_lines() {
    let o = netc(
        &[
            "check",
            "tests/fixtures/mistakes/vip-on-host-address.csn",
            "--format",
            "github",
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("::error file=tests/fixtures/mistakes/vip-on-host-address.csn,line=89,col=13,endLine=89,endColumn=23,title=netc%3A%3Avip-is-host-address::VIP 192.0.2.22 is also an address of `ginkgo`%0Ahelp: a VIP moves between hosts: it needs an address no host owns\n"),
        "{out}"
    );
    assert!(
        out.contains("::warning file=tests/fixtures/mistakes/vip-on-host-address.csn,line=62,"),
        "{out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = with_host_bits(dir.path(), 25);
    let o = netc(&["check", &file, "--format", "github"], &root());
    let out = stdout(&o);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("::error ")).count(),
        20
    );
    assert!(
        out.contains("::notice title=netc::… and 5 more errors not shown: 5 netc::host-bits-set"),
        "{out}"
    );
}

/// The VIP line just written is what the report shows first; the host's line comes after.
#[test]
fn the_edited_line_is_shown_first() {
    let c = compile(&fixture("mistakes/vip-on-host-address.csn"));
    let d = c
        .diags
        .iter()
        .find(|d| d.code == Code::VipIsHostAddress)
        .unwrap();
    assert_eq!(c.source.line_col(d.span().start).0, 89);
    let text = netc::report::plain_text(&c.source, d, 100);
    let (vip, host) = (text.find(" 89 │").unwrap(), text.find(" 60 │").unwrap());
    assert!(vip < host, "{text}");
    assert!(text.contains("[tests/fixtures/mistakes/vip-on-host-address.csn:89:13]"));
    // Only the lines around each label: not the 30 between them.
    assert!(!text.contains(" 75 │"), "{text}");
}

/// A missing `}` names the block that was never closed and the line it opened on.
#[test]
fn a_missing_brace_names_the_unclosed_block() {
    let c = compile(&fixture("mistakes/unclosed-host.csn"));
    let [d] = &c.diags[..] else {
        panic!("{}", render_diags(&c))
    };
    assert_eq!(d.code, Code::Syntax);
    let opened = c
        .source
        .text
        .lines()
        .position(|l| l == "host biloba {")
        .unwrap()
        + 1;
    assert_eq!(
        d.message,
        format!(
            "`host biloba` (opened on line {opened}) is not closed: expected `}}`, found `host`"
        )
    );
    let next = c
        .source
        .text
        .lines()
        .position(|l| l == "host ginkgo {")
        .unwrap()
        + 1;
    assert_eq!(c.source.line_col(d.span().start), (next, 1));
    assert_eq!(c.source.line_col(d.labels[1].0.start), (opened, 1));
    // At the end of the file: the snippet shows the last line of code, not an empty one.
    let c = compile(&fixture("mistakes/unclosed-block.csn"));
    let text = netc::report::plain_text(&c.source, &c.diags[0], 100);
    assert!(
        c.diags[0]
            .message
            .starts_with("`firewall CLOUDSTACK-SERVICES` (opened on line 98)")
    );
    assert!(
        text.contains(" 100 │     allow vlan 529\n     ·                   ▲"),
        "{text}"
    );
}

/// Lines that end with a lone CR (the grammar takes it as a line break) are lines to the
/// reports too: a missing `}` names its line, snippets are those of the LF file, and an
/// allow comment allows on its own line only.
#[test]
fn a_lone_cr_ends_a_line_in_reports() {
    let lf = fs::read_to_string(fixture("mistakes/unclosed-host.csn")).unwrap();
    let cr = lf.replace('\n', "\r");
    let (a, b) = (
        netc::compile("t.csn", lf.as_bytes()),
        netc::compile("t.csn", cr.as_bytes()),
    );
    assert_eq!(a.diags[0].message, b.diags[0].message);
    assert_eq!(
        netc::report::plain_text(&a.source, &a.diags[0], 100),
        netc::report::plain_text(&b.source, &b.diags[0], 100)
    );
    let lf = fs::read_to_string(root().join("topology/csc.csn")).unwrap();
    let lf = lf.replacen("prefix 172.19.168.0/27", "prefix 172.19.168.1/27", 1);
    let at = |c: &netc::Compiled| -> Vec<(Code, (usize, usize))> {
        let d = c.diags.iter();
        d.map(|d| (d.code, c.source.line_col(d.span().start)))
            .collect()
    };
    let a = netc::compile("t.csn", lf.as_bytes());
    let b = netc::compile("t.csn", lf.replace('\n', "\r").as_bytes());
    assert_eq!(at(&b), at(&a));
}
