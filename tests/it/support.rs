//! Helpers shared by the test modules.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use netc::Compiled;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// Every valid topology: csc.csn, the example sites and the valid fixtures.
pub fn valid_topologies() -> Vec<PathBuf> {
    let mut all = vec![
        root().join("topology/csc.csn"),
        root().join("topology/examples/advanced-zone.csn"),
    ];
    all.extend(fixtures("ok"));
    all
}

/// The `.csn` files of a fixture folder, sorted.
pub fn fixtures(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csn"))
        .collect();
    files.sort();
    files
}

pub fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// Compiles a file, naming it by its path relative to the repository (stable in snapshots).
pub fn compile(path: &Path) -> Compiled {
    let name = path
        .strip_prefix(root())
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    netc::compile(&name, &std::fs::read(path).unwrap())
}

/// Every diagnostic as one line `severity code line:col-line:col message` plus its help, then
/// the text netc shows (miette's rendering), without colour: what a snapshot should pin down.
pub fn render_diags(c: &Compiled) -> String {
    let mut out = String::new();
    for d in &c.diags {
        let (l1, c1) = c.source.line_col(d.span().start);
        let (l2, c2) = c.source.line_col(d.span().end);
        let sev = if d.is_error() { "error" } else { "warning" };
        out += &format!("{sev} {} {l1}:{c1}-{l2}:{c2} {}\n", d.code, d.message);
        if let Some(h) = &d.help {
            out += &format!("  help: {h}\n");
        }
    }
    for d in &c.diags {
        out.push('\n');
        out += &netc::report::plain_text(&c.source, d, 100);
    }
    out
}

/// Runs the netc binary.
pub fn netc(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Every file under `dir` with its bytes, sorted, for byte-for-byte comparisons.
pub fn read_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Asserts the exit status and that stderr says `needle`.
pub fn assert_exit(o: &Output, code: i32, needle: &str) {
    assert_eq!(o.status.code(), Some(code), "stderr: {}", stderr(o));
    assert!(
        stderr(o).contains(needle),
        "expected `{needle}` in stderr: {}",
        stderr(o)
    );
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
