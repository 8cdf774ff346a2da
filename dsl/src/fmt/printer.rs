//! Lines, indentation, blank lines and comments. Layout code starts a line
//! at a source offset, pushes text, and says where in the source the line
//! ends; the printer interleaves the file's comments by comparing their
//! offsets with those positions. A comment before a line goes on its own
//! line above it; a comment after the line's source on the same source
//! line, or inside it (in a record spanning lines, say), goes at the end of
//! the printed line, and any further ones on lines of their own after it.
//! So every comment is printed exactly once and in order.
//!
//! Node spans from the parser may run on over trailing whitespace and
//! comments (pest's implicit skipping), so ends are trimmed with
//! [`Printer::end_of`] before use.

use crate::ast::Comment;
use crate::source::Span;

pub(super) struct Printer<'a> {
    pub(super) src: &'a str,
    comments: &'a [Comment],
    /// The first comment not printed yet.
    next: usize,
    out: String,
    indent: usize,
    /// Nothing has been printed yet in the current block (or the file).
    fresh: bool,
    /// Source offset where the last printed thing ended.
    last: usize,
    /// Where the source of the line being printed ends, while it is open.
    open: Option<usize>,
}

impl<'a> Printer<'a> {
    pub(super) fn new(src: &'a str, comments: &'a [Comment]) -> Printer<'a> {
        Printer {
            src,
            comments,
            next: 0,
            out: String::new(),
            indent: 0,
            fresh: true,
            last: 0,
            open: None,
        }
    }

    /// Starts a line for a node whose source starts at `start`: ends the
    /// line before, prints the comments before `start` on lines of their
    /// own, keeps one blank line where the author left any (always one if
    /// `blank` is set), and indents.
    pub(super) fn line(&mut self, start: usize, blank: bool) {
        self.finish_line(start);
        let mut blank = blank && !self.fresh;
        while let Some(c) = self.pending_before(start) {
            if blank || (!self.fresh && self.blank_between(self.last, c.span.start as usize)) {
                self.out.push('\n');
            }
            blank = false;
            self.own_line_comment(c, self.indent);
        }
        if blank || (!self.fresh && self.blank_between(self.last, start)) {
            self.out.push('\n');
        }
        self.push_indent(self.indent);
        self.fresh = false;
    }

    pub(super) fn push(&mut self, text: &str) {
        self.out.push_str(text);
    }

    /// The line's text is complete up to `source_end`; it is ended (with
    /// its comments) when the next line starts.
    pub(super) fn ends_at(&mut self, source_end: usize) {
        self.open = Some(source_end);
    }

    /// `{` of a block whose braces are at `open` and `close`, with
    /// `has_items` things inside: prints ` {}` when the block holds neither
    /// items nor comments, else ` {` and the items (`items`), each on its
    /// own line one level deeper, then `}`. The line stays open after the
    /// brace, so that ` else …` can follow.
    pub(super) fn braces(
        &mut self,
        open: usize,
        close: usize,
        has_items: bool,
        items: impl FnOnce(&mut Self),
    ) {
        let has_comments = self.comments[self.next..]
            .iter()
            .take_while(|c| (c.span.start as usize) < close)
            .any(|c| c.span.start as usize >= open);
        if !has_items && !has_comments {
            self.push(" {}");
            self.ends_at(close + 1);
            return;
        }
        self.push(" {");
        self.open = Some(open + 1);
        self.indent += 1;
        self.fresh = true;
        items(self);
        self.finish_line(close);
        while let Some(c) = self.pending_before(close) {
            if !self.fresh && self.blank_between(self.last, c.span.start as usize) {
                self.out.push('\n');
            }
            self.own_line_comment(c, self.indent);
        }
        self.indent -= 1;
        self.push_indent(self.indent);
        self.push("}");
        self.fresh = false;
        self.ends_at(close + 1);
    }

    /// Ends the last line and prints the comments after the last
    /// declaration; returns the formatted text.
    pub(super) fn finish_file(mut self) -> String {
        let end = self.src.len();
        self.finish_line(end);
        while let Some(c) = self.pending_before(end) {
            if !self.fresh && self.blank_between(self.last, c.span.start as usize) {
                self.out.push('\n');
            }
            self.own_line_comment(c, 0);
        }
        self.out
    }

    /// Where the node spanning `span` really ends: before any whitespace
    /// and comments the parser let it run on over.
    pub(super) fn end_of(&self, span: Span) -> usize {
        let start = span.start as usize;
        let mut end = span.end as usize;
        loop {
            let trimmed = self.src[start..end].trim_end_matches(is_space);
            end = start + trimmed.len();
            let i = self
                .comments
                .partition_point(|c| (c.span.start as usize) < end);
            match i.checked_sub(1).map(|i| &self.comments[i]) {
                Some(c) if end <= c.span.end as usize && c.span.start as usize >= start => {
                    end = c.span.start as usize
                }
                _ => return end,
            }
        }
    }

    /// The first `{` at or after `from`, skipping comments: the brace of a
    /// declaration, whose position the tree does not keep.
    pub(super) fn brace_after(&self, from: usize) -> usize {
        let mut in_comment = false;
        for (i, ch) in self.src[from..].char_indices() {
            match ch {
                '\n' => in_comment = false,
                '#' => in_comment = true,
                '{' if !in_comment => return from + i,
                _ => {}
            }
        }
        panic!("broken invariant: a declaration parsed with braces has a `{{` after offset {from}")
    }

    /// Ends the open line, if any. The first comment inside its source,
    /// or else the one after it on the same source line (before `limit`,
    /// where the next line's source starts), goes at its end after two
    /// spaces; any further comments inside it stay pending and are printed
    /// on lines of their own before whatever comes next, exactly as they
    /// will be when the output is formatted again.
    fn finish_line(&mut self, limit: usize) {
        let Some(source_end) = self.open.take() else {
            return;
        };
        self.last = self.last.max(source_end);
        if let Some(c) = self.comments.get(self.next) {
            let start = c.span.start as usize;
            if start < source_end || (start < limit && !self.src[source_end..start].contains('\n'))
            {
                self.next += 1;
                self.push("  #");
                self.push(&c.text);
                self.last = self.last.max(c.span.end as usize);
            }
        }
        self.out.push('\n');
    }

    /// The next unprinted comment, if it starts before `offset`; it counts
    /// as printed from now on.
    fn pending_before(&mut self, offset: usize) -> Option<&'a Comment> {
        let c = self.comments.get(self.next)?;
        if (c.span.start as usize) < offset {
            self.next += 1;
            Some(c)
        } else {
            None
        }
    }

    fn own_line_comment(&mut self, c: &Comment, indent: usize) {
        self.push_indent(indent);
        self.push("#");
        self.push(&c.text);
        self.out.push('\n');
        self.last = self.last.max(c.span.end as usize);
        self.fresh = false;
    }

    fn push_indent(&mut self, indent: usize) {
        for _ in 0..indent {
            self.out.push_str("  ");
        }
    }

    /// Whether the source between two offsets holds an empty line.
    fn blank_between(&self, from: usize, to: usize) -> bool {
        if from >= to {
            return false;
        }
        let lines: Vec<&str> = self.src[from..to].split('\n').collect();
        lines.len() > 2
            && lines[1..lines.len() - 1]
                .iter()
                .any(|l| l.trim_matches(is_space).is_empty())
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{feff}')
}
