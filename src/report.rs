//! Showing diagnostics: miette's text, JSON for scripts, or GitHub workflow annotations —
//! with an error limit, as compilers have.
//!
//! Every format costs time in proportion to what it shows: spans become lines through the
//! [`Source`]'s line index, and past the limit a diagnostic is only counted (per code, for
//! the one summary line at the end).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, SourceCode};
use serde::Serialize;

use crate::diag::{Code, Diag, Severity};
use crate::source::{Source, Span};

/// How many errors (and, separately, warnings) are shown in full unless told otherwise.
pub const DEFAULT_LIMIT: usize = 20;

/// Lines of context around each label; a label whose context does not meet the primary
/// label's is shown in a snippet of its own, after the primary one.
const CONTEXT_LINES: usize = 1;

/// The longest line (in bytes) a snippet shows: miette pads to a label with a format width,
/// which must stay under 65,536 columns (a character is at most 4: a tab), and a line of a
/// hundred kilobytes helps nobody read a mistake.
const MAX_SNIPPET_LINE: usize = 16_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// miette's graphical report; colours only when `color`.
    Text { color: bool },
    /// One JSON document: `{"diagnostics": [...], "errors": n, "warnings": n, "omitted": {}}`.
    Json,
    /// GitHub Actions workflow commands (`::error file=…,line=…::…`): annotations on the
    /// pull request's changed lines.
    Github,
}

/// Writes diagnostics of one or more sources in one format, the first `limit` errors and
/// the first `limit` warnings in full (0: all), then a summary of the rest.
pub struct Report<W: Write> {
    out: W,
    format: Format,
    limit: usize,
    handler: GraphicalReportHandler,
    errors: usize,
    warnings: usize,
    shown: usize,
    /// Diagnostics past the limit, per code.
    omitted: BTreeMap<Code, usize>,
}

impl<W: Write> Report<W> {
    pub fn new(out: W, format: Format, limit: usize) -> Self {
        let theme = match format {
            Format::Text { color: true } => GraphicalTheme::unicode(),
            _ => GraphicalTheme::unicode_nocolor(),
        };
        Report {
            out,
            format,
            limit,
            handler: handler(theme),
            errors: 0,
            warnings: 0,
            shown: 0,
            omitted: BTreeMap::new(),
        }
    }

    /// Shows (or counts) the diagnostics of one source, in their order.
    pub fn add(&mut self, source: &Source, diags: &[Diag]) -> io::Result<()> {
        for d in diags {
            let seen = match d.severity() {
                Severity::Error => &mut self.errors,
                Severity::Warning => &mut self.warnings,
            };
            *seen += 1;
            if self.limit != 0 && *seen > self.limit {
                *self.omitted.entry(d.code).or_default() += 1;
                continue;
            }
            match self.format {
                Format::Text { .. } => {
                    writeln!(self.out, "{}", text(&self.handler, source, d))?;
                }
                Format::Json => {
                    // Written as it goes, a diagnostic a line: never the whole list in memory.
                    let sep = if self.shown == 0 {
                        "{\"diagnostics\":[\n"
                    } else {
                        ",\n"
                    };
                    self.out.write_all(sep.as_bytes())?;
                    serde_json::to_writer(&mut self.out, &JsonDiag::new(source, d))?;
                }
                Format::Github => writeln!(self.out, "{}", github(source, d))?,
            }
            self.shown += 1;
        }
        Ok(())
    }

    /// Ends the report: the summary of what the limit left out (JSON: the document's end).
    pub fn finish(mut self) -> io::Result<W> {
        match self.format {
            Format::Json => {
                let end = serde_json::json!({
                    "errors": self.errors,
                    "warnings": self.warnings,
                    "omitted": self.omitted.iter().map(|(c, n)| (c.as_str(), *n)).collect::<BTreeMap<_, _>>(),
                });
                let end = end.to_string();
                // `{"errors":…}` → `],"errors":…}`: the fields after the list.
                let start = if self.shown == 0 {
                    "{\"diagnostics\":["
                } else {
                    "\n"
                };
                writeln!(self.out, "{start}],{}", &end[1..])?;
            }
            Format::Text { .. } => {
                if let Some(line) = self.omitted_line() {
                    writeln!(self.out, "{line}")?;
                }
            }
            Format::Github => {
                if let Some(line) = self.omitted_line() {
                    writeln!(self.out, "::notice title=netc::{}", escape_data(&line))?;
                }
            }
        }
        self.out.flush()?;
        Ok(self.out)
    }

    /// `… and 3 more errors not shown: 2 netc::x, 1 netc::y (--max-errors 0 shows all)`.
    fn omitted_line(&self) -> Option<String> {
        if self.omitted.is_empty() {
            return None;
        }
        let count = |severity| -> usize {
            let codes = self
                .omitted
                .iter()
                .filter(|(c, _)| c.severity() == severity);
            codes.map(|(_, n)| n).sum()
        };
        let mut what = Vec::new();
        for (severity, noun) in [(Severity::Error, "error"), (Severity::Warning, "warning")] {
            match count(severity) {
                0 => {}
                1 => what.push(format!("1 more {noun}")),
                n => what.push(format!("{n} more {noun}s")),
            }
        }
        let per_code: Vec<String> = self
            .omitted
            .iter()
            .map(|(code, n)| format!("{n} {code}"))
            .collect();
        Some(format!(
            "… and {} not shown: {} (--max-errors 0 shows all)",
            what.join(" and "),
            per_code.join(", ")
        ))
    }
}

/// The graphical handler with the context this module's snippet grouping assumes.
fn handler(theme: GraphicalTheme) -> GraphicalReportHandler {
    GraphicalReportHandler::new_themed(theme).with_context_lines(CONTEXT_LINES)
}

/// One diagnostic as text, without colour, `width` columns wide (for tests and snapshots).
pub fn plain_text(source: &Source, d: &Diag, width: usize) -> String {
    text(
        &handler(GraphicalTheme::unicode_nocolor()).with_width(width),
        source,
        d,
    )
}

/// One diagnostic as miette renders it, with the snippet of the primary label (what the
/// user wrote last, where the mistake is) first, labels far from it in snippets after, and
/// the help line last.
fn text(handler: &GraphicalReportHandler, source: &Source, d: &Diag) -> String {
    // Labels on (or next to) a very long line are named by their position instead.
    let (near, far): (Vec<usize>, Vec<usize>) =
        (0..d.labels.len()).partition(|&i| drawable(source, d.labels[i].0));
    let mut groups = snippet_groups(source, &d.labels, &near).into_iter();
    let view = |labels: Vec<usize>, header: bool, help: bool| View {
        source,
        diag: d,
        header,
        labels,
        help,
    };
    let mut parts = vec![view(groups.next().unwrap_or_default(), true, false)];
    parts.extend(groups.map(|g| view(g, false, false)));
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        let mut rendered = String::new();
        if handler.render_report(&mut rendered, part).is_err() {
            return format!("{}: {}\n", d.code, d.message);
        }
        out += if i == 0 {
            &rendered
        } else {
            after_message(&rendered)
        };
    }
    for i in far {
        let (span, label) = &d.labels[i];
        let (line, column) = source.line_col(span.start);
        out += &format!("    at {}:{line}:{column}: {label}\n", source.name);
    }
    if d.help.is_some() {
        let mut rendered = String::new();
        if handler
            .render_report(&mut rendered, &view(Vec::new(), false, true))
            .is_ok()
        {
            out += after_message(&rendered);
        }
    }
    out
}

/// Whether a label's snippet — its lines and their context — has only lines miette can
/// show (see [`MAX_SNIPPET_LINE`]).
fn drawable(source: &Source, span: Span) -> bool {
    let (first, last) = source.lines(span);
    let lines = first.saturating_sub(CONTEXT_LINES)..=last + CONTEXT_LINES;
    lines
        .into_iter()
        .all(|l| source.line_len(l) <= MAX_SNIPPET_LINE)
}

/// A part rendered without its header: what follows its (empty) message line.
fn after_message(rendered: &str) -> &str {
    rendered.split_once('\n').map_or("", |(_, rest)| rest)
}

/// Label indexes (of `shown`) grouped by snippet (labels whose context lines meet share
/// one), the primary label's group first and the rest in source order.
fn snippet_groups(source: &Source, labels: &[(Span, String)], shown: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<(usize, usize, usize)> = shown
        .iter()
        .map(|&i| {
            let (first, last) = source.lines(labels[i].0);
            (first.saturating_sub(CONTEXT_LINES), last + CONTEXT_LINES, i)
        })
        .collect();
    order.sort();
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (from, to, i) in order {
        match groups.last_mut() {
            Some((end, members)) if from <= *end + 1 => {
                *end = (*end).max(to);
                members.push(i);
            }
            _ => groups.push((to, vec![i])),
        }
    }
    let mut groups: Vec<Vec<usize>> = groups.into_iter().map(|(_, g)| g).collect();
    if let Some(p) = groups.iter().position(|g| g.contains(&0)) {
        let primary = groups.remove(p);
        groups.insert(0, primary);
    }
    groups
}

/// Part of a diagnostic, as miette sees it: the header (code and message) or not, some of
/// its labels, the help line or not.
struct View<'a> {
    source: &'a Source,
    diag: &'a Diag,
    header: bool,
    labels: Vec<usize>,
    help: bool,
}

impl fmt::Debug for View<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.diag.code)
    }
}

impl fmt::Display for View<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.header {
            f.write_str(&self.diag.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for View<'_> {}

impl miette::Diagnostic for View<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.header
            .then(|| Box::new(self.diag.code) as Box<dyn fmt::Display>)
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity() {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let help = self.diag.help.as_ref().filter(|_| self.help)?;
        Some(Box::new(help))
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().map(|&i| {
            let (span, text) = &self.diag.labels[i];
            let text = (!text.is_empty()).then(|| text.clone());
            if i == 0 {
                LabeledSpan::new_primary_with_span(text, *span)
            } else {
                LabeledSpan::new_with_span(text, *span)
            }
        })))
    }
}

/// A position as people count: 1-based line and column (in characters).
#[derive(Serialize)]
struct Position {
    line: usize,
    column: usize,
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    line: usize,
    column: usize,
    /// Just after the span's last character.
    end: Position,
    text: &'a str,
    primary: bool,
}

#[derive(Serialize)]
struct JsonDiag<'a> {
    code: &'static str,
    severity: &'static str,
    file: &'a str,
    line: usize,
    column: usize,
    end: Position,
    message: &'a str,
    labels: Vec<JsonLabel<'a>>,
    help: Option<&'a str>,
}

impl<'a> JsonDiag<'a> {
    fn new(source: &'a Source, d: &'a Diag) -> Self {
        let at = |offset| {
            let (line, column) = source.line_col(offset);
            Position { line, column }
        };
        let start = at(d.span().start);
        JsonDiag {
            code: d.code.as_str(),
            severity: severity_name(d.severity()),
            file: &source.name,
            line: start.line,
            column: start.column,
            end: at(d.span().end),
            message: &d.message,
            labels: d
                .labels
                .iter()
                .enumerate()
                .map(|(i, (span, text))| {
                    let start = at(span.start);
                    JsonLabel {
                        line: start.line,
                        column: start.column,
                        end: at(span.end),
                        text,
                        primary: i == 0,
                    }
                })
                .collect(),
            help: d.help.as_deref(),
        }
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// One workflow command: `::error file=F,line=L,col=C,endLine=L,endColumn=C,title=CODE::MESSAGE`.
fn github(source: &Source, d: &Diag) -> String {
    let (line, col) = source.line_col(d.span().start);
    let (end_line, end_col) = source.line_col(d.span().end);
    let mut message = d.message.clone();
    if let Some(help) = &d.help {
        message = format!("{message}\nhelp: {help}");
    }
    format!(
        "::{} file={},line={line},col={col},endLine={end_line},endColumn={end_col},title={}::{}",
        severity_name(d.severity()),
        escape_property(&source.name),
        escape_property(d.code.as_str()),
        escape_data(&message)
    )
}

/// A workflow command's message: `%`, CR and LF escaped (as the Actions toolkit does).
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: also `:` and `,`.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diags(n: usize) -> (Source, Vec<Diag>) {
        let text = "x\n".repeat(n);
        let diags = (0..n)
            .map(|i| {
                let code = if i % 3 == 0 {
                    Code::CoveredSource
                } else {
                    Code::BadPrefix
                };
                Diag::new(code, format!("m{i}"))
                    .label(Span::new(2 * i, 2 * i + 1), "here")
                    .help("h")
            })
            .collect();
        (Source::new("t.csn", text), diags)
    }

    fn run(format: Format, limit: usize, n: usize) -> String {
        let (source, diags) = diags(n);
        let mut r = Report::new(Vec::new(), format, limit);
        r.add(&source, &diags).unwrap();
        String::from_utf8(r.finish().unwrap()).unwrap()
    }

    #[test]
    fn the_limit_shows_the_first_errors_and_warnings_then_counts_per_code() {
        let out = run(Format::Text { color: false }, 2, 9);
        // Errors m1, m2 and warnings m0, m3 in full; of m4..m8, 4 errors and 1 warning counted.
        assert_eq!(out.matches("× m").count() + out.matches("⚠ m").count(), 4);
        assert!(out.contains("⚠ m3"), "{out}");
        assert!(!out.contains("m4"), "{out}");
        assert!(
            out.ends_with(
                "… and 4 more errors and 1 more warning not shown: 4 netc::bad-prefix, \
                 1 netc::covered-source (--max-errors 0 shows all)\n"
            ),
            "{out}"
        );
        let all = run(Format::Text { color: false }, 0, 9);
        assert!(all.contains("m8") && !all.contains("not shown"), "{all}");
    }

    #[test]
    fn json_is_one_document_with_positions_and_counts() {
        let out = run(Format::Json, 1, 3);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["errors"], 2);
        assert_eq!(v["warnings"], 1);
        assert_eq!(v["omitted"]["netc::bad-prefix"], 1);
        let d = &v["diagnostics"][1];
        assert_eq!(d["code"], "netc::bad-prefix");
        assert_eq!(d["severity"], "error");
        assert_eq!(d["file"], "t.csn");
        assert_eq!((&d["line"], &d["column"]), (&2.into(), &1.into()));
        assert_eq!(d["end"], serde_json::json!({"line": 2, "column": 2}));
        assert_eq!(d["labels"][0]["primary"], true);
        assert_eq!(d["help"], "h");
        let empty: serde_json::Value = serde_json::from_str(&run(Format::Json, 0, 0)).unwrap();
        assert_eq!(empty["diagnostics"], serde_json::json!([]));
    }

    #[test]
    fn github_annotations_escape_what_the_runner_would_read() {
        let source = Source::new("a,b:c%.csn", "x\ny\n");
        let d = Diag::new(Code::BadName, "50% bad\nreally")
            .label(Span::new(2, 3), "")
            .help("fix, it");
        assert_eq!(
            github(&source, &d),
            "::error file=a%2Cb%3Ac%25.csn,line=2,col=1,endLine=2,endColumn=2,\
             title=netc%3A%3Abad-name::50%25 bad%0Areally%0Ahelp: fix, it"
        );
    }

    /// miette pads to a label with a format width, which panics past 65,535 columns: a label
    /// on (or beside) a very long line is named by its position instead.
    #[test]
    fn labels_on_very_long_lines_are_named_not_drawn() {
        let text = format!("{}bad\nnext\n\nlast\n", "x ".repeat(40_000));
        let source = Source::new("t.csn", text.as_str());
        let d = Diag::new(Code::BadName, "bad name")
            .label(Span::new(80_000, 80_003), "here")
            .label(Span::new(80_004, 80_005), "beside it")
            .label(Span::new(80_010, 80_014), "far from it")
            .help("rename it");
        let out = plain_text(&source, &d, 80);
        assert!(out.contains("    at t.csn:1:80001: here\n"), "{out}");
        assert!(out.contains("    at t.csn:2:1: beside it\n"), "{out}");
        assert!(out.contains("╰── far from it"), "{out}");
        assert!(!out.contains("x x"), "the long line is not shown:\n{out}");
        assert!(out.trim_end().ends_with("help: rename it"), "{out}");
        assert_eq!(out.matches("bad name").count(), 1, "{out}");
    }

    #[test]
    fn the_primary_snippet_comes_first_and_far_labels_after_it() {
        let text = (1..=30).map(|i| format!("line{i}\n")).collect::<String>();
        let source = Source::new("t.csn", text.as_str());
        let at = |line: usize| {
            let start = text.find(&format!("line{line}\n")).unwrap();
            Span::new(start, start + 4 + line.to_string().len())
        };
        let d =
            Diag::repeated(Code::DuplicateHost, "twice", "declared", at(25), at(3)).help("merge");
        let out = plain_text(&source, &d, 80);
        let (again, first) = (out.find("25 │").unwrap(), out.find(" 3 │").unwrap());
        assert!(again < first, "{out}");
        assert!(
            out.contains("[t.csn:25:1]") && out.contains("[t.csn:3:1]"),
            "{out}"
        );
        assert_eq!(out.matches("twice").count(), 1, "{out}");
        assert!(out.trim_end().ends_with("help: merge"), "{out}");
        assert!(
            !out.contains("line10"),
            "lines between are not shown:\n{out}"
        );
    }
}
