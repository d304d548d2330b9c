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
    /// Byte offset of each line's start, for line numbers in O(log n).
    line_starts: Arc<[usize]>,
    /// All ASCII: a column is a byte count, without counting characters along a long line.
    ascii: bool,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let ascii = text.is_ascii();
        Source {
            name: name.into(),
            text,
            line_starts,
            ascii,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = self.floor(offset);
        let line = self.line_index(offset);
        let before = &self.text[self.line_starts[line]..offset];
        let col = if self.ascii {
            before.len()
        } else {
            before.chars().count()
        };
        (line + 1, col + 1)
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
            &self.text.as_bytes()[data_start..data_end],
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
