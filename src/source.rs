//! Source text: byte spans, the file they point into, and line numbers from a line index.
//!
//! [`Source`] is also the [`miette::SourceCode`] diagnostics are rendered from: it finds a
//! span's lines through the line index (a binary search), so rendering a diagnostic costs
//! the size of its snippet, not of the file before it. (miette's own `str` source rescans the
//! text from its start for every label: quadratic in a file with many diagnostics.)

use std::ops::Range;
use std::sync::Arc;

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

/// A byte range in the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    pub fn range(self) -> Range<usize> {
        self.start..self.end
    }
}

impl From<pest::Span<'_>> for Span {
    fn from(s: pest::Span<'_>) -> Self {
        Span::new(s.start(), s.end())
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        (s.start, s.end - s.start).into()
    }
}

/// The source file a set of diagnostics points into.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: Arc<str>,
    /// Byte offset of each line's start, for line numbers in O(log n). A line ends at LF,
    /// CRLF or a lone CR, as in the grammar.
    line_starts: Arc<[usize]>,
    /// The text with each lone CR made an LF (the same length), if it has any: what snippets
    /// show, so miette breaks the lines there too (and prints no bare CR).
    shown: Option<Arc<str>>,
    /// (byte offset, characters before it) about every [`CHAR_MARK_STEP`] bytes: a column
    /// costs counting at most a step, however long its line (many diagnostics on one long
    /// line would otherwise each count it from its start: quadratic). Empty for an all-ASCII
    /// text, where a column is a byte count.
    char_marks: Arc<[(usize, usize)]>,
}

/// Bytes between two [`Source::char_marks`].
const CHAR_MARK_STEP: usize = 4096;

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let bytes = text.as_bytes();
        let lone_cr = |i: usize| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n');
        let (line_starts, shown) = if text.contains('\r') && (0..bytes.len()).any(lone_cr) {
            let mut shown = bytes.to_vec();
            let mut starts = vec![0];
            for (i, b) in shown.iter_mut().enumerate() {
                if lone_cr(i) {
                    *b = b'\n';
                }
                if *b == b'\n' {
                    starts.push(i + 1);
                }
            }
            let shown = String::from_utf8(shown).expect("a CR made an LF is still UTF-8");
            (starts.into(), Some(shown.into()))
        } else {
            let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1));
            (starts.collect(), None)
        };
        let char_marks = if text.is_ascii() {
            Arc::from([])
        } else {
            char_marks(&text)
        };
        Source {
            name: name.into(),
            text,
            line_starts,
            shown,
            char_marks,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = self.floor(offset);
        let line = self.line_index(offset);
        let start = self.line_starts[line];
        let col = if self.char_marks.is_empty() {
            offset - start
        } else {
            self.chars_before(offset) - self.chars_before(start)
        };
        (line + 1, col + 1)
    }

    /// The characters before a byte offset (a character boundary), from the nearest mark.
    fn chars_before(&self, offset: usize) -> usize {
        let i = self.char_marks.partition_point(|&(at, _)| at <= offset) - 1;
        let (at, chars) = self.char_marks[i];
        chars + self.text[at..offset].chars().count()
    }

    /// Each line's start and text, without its line break (LF, CRLF or a lone CR).
    pub fn line_texts(&self) -> impl Iterator<Item = (usize, &str)> {
        self.line_starts.iter().enumerate().map(|(i, &start)| {
            let line = &self.text[start..self.line_end(i)];
            let line = line.strip_suffix('\n').unwrap_or(line);
            (start, line.strip_suffix('\r').unwrap_or(line))
        })
    }

    /// The length in bytes of a 0-based line, its newline included (0 past the last line).
    pub fn line_len(&self, line: usize) -> usize {
        match self.line_starts.get(line) {
            Some(&start) => self.line_end(line) - start,
            None => 0,
        }
    }

    /// The 0-based line an offset is on.
    fn line_index(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset) - 1
    }

    /// The offset clamped into the text and moved back to a character boundary.
    fn floor(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// Where a 0-based line ends, after its newline (the text's end for the last line).
    fn line_end(&self, line: usize) -> usize {
        self.line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len())
    }

    /// The 0-based lines a span covers: the lines of its first and of its last byte (an
    /// empty span is on the line of its offset).
    pub fn lines(&self, span: Span) -> (usize, usize) {
        let first = self.line_index(span.start.min(self.text.len()));
        let last = if span.end > span.start {
            self.line_index((span.end - 1).min(self.text.len()))
        } else {
            first
        };
        (first, last.max(first))
    }
}

/// The line breaks in `text`, as the grammar counts them: LF, CRLF and a lone CR each one.
pub fn line_breaks(text: &str) -> usize {
    text.matches(['\n', '\r']).count() - text.matches("\r\n").count()
}

/// (byte offset, characters before it) at the start and then about every
/// [`CHAR_MARK_STEP`] bytes, each at a character boundary.
fn char_marks(text: &str) -> Arc<[(usize, usize)]> {
    let mut marks = vec![(0, 0)];
    let (mut at, mut chars) = (0, 0);
    while at + CHAR_MARK_STEP < text.len() {
        let mut next = at + CHAR_MARK_STEP;
        while !text.is_char_boundary(next) {
            next += 1;
        }
        chars += text[at..next].chars().count();
        marks.push((next, chars));
        at = next;
    }
    marks.into()
}

/// The end of the last code in `text`: trailing blanks, line breaks and comments skipped.
/// Where "end of file" is best shown: the snippet then has a line. (As in the grammar, a
/// comment ends at a CR or LF, and a `#` inside a quoted string does not start one.)
pub fn end_of_code(text: &str) -> usize {
    let (mut end, mut comment, mut quoted) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            '\n' | '\r' => (comment, quoted) = (false, false),
            _ if comment => {}
            '#' if !quoted => comment = true,
            ' ' | '\t' => {}
            '"' => {
                quoted = !quoted;
                end = i + 1;
            }
            _ => end = i + c.len_utf8(),
        }
    }
    end
}

impl SourceCode for Source {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let (start, end) = (span.offset(), span.offset() + span.len());
        if end > self.text.len() {
            return Err(MietteError::OutOfBounds);
        }
        let (first, last) = self.lines(Span::new(start, end));
        let from = first.saturating_sub(context_lines_before);
        let to = (last + context_lines_after).min(self.line_starts.len() - 1);
        // As miette's own sources do: without lines before, the contents start at the span
        // itself, and their column is the span's.
        let (data_start, column) = if context_lines_before == 0 {
            (start, self.line_col(start).1 - 1)
        } else {
            (self.line_starts[from], 0)
        };
        let data_end = self.line_end(to).max(data_start);
        let line = if context_lines_before == 0 {
            first
        } else {
            from
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            &self.shown.as_deref().unwrap_or(&self.text).as_bytes()[data_start..data_end],
            (data_start, data_end - data_start).into(),
            line,
            column,
            to - from + 1,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &Source, span: Span, before: usize, after: usize) -> (String, usize, usize) {
        let c = s.read_span(&span.into(), before, after).unwrap();
        let text = String::from_utf8(c.data().to_vec()).unwrap();
        (text, c.line(), c.line_count())
    }

    #[test]
    fn snippets_are_the_span_lines_and_their_context() {
        let s = Source::new("t", "a\nbb\ncc\ndd\ne");
        assert_eq!(
            read(&s, Span::new(5, 6), 1, 1),
            ("bb\ncc\ndd\n".into(), 1, 3)
        );
        assert_eq!(read(&s, Span::new(0, 1), 1, 1), ("a\nbb\n".into(), 0, 2));
        assert_eq!(read(&s, Span::new(11, 12), 1, 1), ("dd\ne".into(), 3, 2));
        // A span ending on a newline does not reach into the next line.
        assert_eq!(read(&s, Span::new(2, 5), 0, 0), ("bb\n".into(), 1, 1));
        // Empty spans, at the very end too.
        assert_eq!(read(&s, Span::new(12, 12), 1, 0), ("dd\ne".into(), 3, 2));
        assert!(s.read_span(&Span::new(12, 13).into(), 0, 0).is_err());
    }

    #[test]
    fn line_and_column_count_characters() {
        let s = Source::new("t", "é x\nyz\n");
        assert_eq!(s.line_col(3), (1, 3));
        assert_eq!(s.line_col(1), (1, 1), "inside a character: its start");
        assert_eq!(s.line_col(7), (2, 3));
        assert_eq!(s.line_col(8), (3, 1));
        assert_eq!(
            Source::new("t", "ab\ncd").line_col(4),
            (2, 2),
            "ASCII: bytes"
        );
        let c = s.read_span(&Span::new(3, 4).into(), 0, 0).unwrap();
        assert_eq!((c.line(), c.column()), (0, 2));
    }

    /// On a long line, a column is counted from the nearest mark, not the line's start: the
    /// same number either way.
    #[test]
    fn columns_on_a_long_line_count_characters_from_the_marks() {
        let line: String = (0..5_000)
            .map(|i| if i % 7 == 0 { "é€ " } else { "ab " })
            .collect();
        let text = format!("x\n{line}\n{line}\nlast");
        let s = Source::new("t", text.as_str());
        assert!(s.char_marks.len() > 4, "{}", s.char_marks.len());
        for offset in (0..=text.len()).step_by(997).chain([text.len() - 1]) {
            let offset = s.floor(offset);
            let line = text[..offset].matches('\n').count();
            let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
            let col = text[start..offset].chars().count();
            assert_eq!(s.line_col(offset), (line + 1, col + 1), "at {offset}");
        }
    }

    /// A lone CR ends a line, as in the grammar: line numbers and snippets count it.
    #[test]
    fn a_lone_cr_ends_a_line() {
        let s = Source::new("t", "a\rbb\r\ncc\rd");
        assert_eq!(s.line_col(2), (2, 1));
        assert_eq!(s.line_col(3), (2, 2));
        assert_eq!(s.line_col(6), (3, 1));
        assert_eq!(s.line_col(9), (4, 1));
        assert_eq!(
            read(&s, Span::new(6, 7), 1, 1),
            ("bb\r\ncc\nd".into(), 1, 3)
        );
        assert_eq!(&*s.text, "a\rbb\r\ncc\rd", "the text itself is kept");
        assert_eq!(line_breaks("a\rb\r\nc\nd\r"), 4);
    }

    #[test]
    fn end_of_code_skips_comments_and_blank_lines() {
        let text = "a {\n  b \"#x\" # c\n# only\n\n";
        assert_eq!(&text[..end_of_code(text)], "a {\n  b \"#x\"");
        assert_eq!(end_of_code("# x\n"), 0);
        assert_eq!(end_of_code(""), 0);
        assert_eq!(end_of_code("x"), 1);
        // A comment ends at a CR, as in the grammar; a vertical tab is not a blank.
        assert_eq!(end_of_code("# c\rvlan # d\n"), 8);
        assert_eq!(end_of_code("a\u{b}  "), 2);
    }
}
