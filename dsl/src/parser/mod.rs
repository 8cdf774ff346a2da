//! Source text to AST. pest types never leave this module: `build_*`
//! functions (one per grammar rule, in `decls.rs`, `steps.rs` and `expr.rs`)
//! turn pairs into AST nodes, and `errors.rs` turns pest's errors into
//! diagnostics that say what was expected in words.

mod decls;
mod errors;
mod expr;
mod nesting;
mod steps;

use crate::ast;
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Sources, Span};
use pest::Parser as _;
use std::cell::{Cell, RefCell};
use std::sync::OnceLock;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
pub(crate) struct Grammar;

type Pair<'i> = pest::iterators::Pair<'i, Rule>;

/// How deep expressions and blocks may nest before the parser refuses them;
/// it keeps every recursive pass over the tree well inside a thread's stack.
pub const MAX_DEPTH: u32 = 64;

/// Whether `text` can be written bare where a name goes: a name that is
/// not a reserved word. Event names that are not (`Order Completed`) are
/// written quoted.
pub fn is_plain_name(text: &str) -> bool {
    Grammar::parse(Rule::ident, text)
        .ok()
        .and_then(|mut pairs| pairs.next())
        .is_some_and(|pair| pair.as_str().len() == text.len())
}

/// Parses one file of `sources`. On a syntax error the file has no
/// declarations and the error is the one diagnostic.
pub fn parse(sources: &Sources, file: FileId) -> (ast::File, Vec<Diagnostic>) {
    let text = &sources.get(file).text;
    let mut out = ast::File {
        id: file,
        decls: Vec::new(),
        comments: Vec::new(),
    };
    if let Some(d) = nested_too_deep(file, text) {
        return (out, vec![d]);
    }
    let root = match Grammar::parse(Rule::file, text) {
        Ok(mut pairs) => pairs.next().expect("the file rule always yields one pair"),
        Err(error) => {
            return (
                out,
                vec![errors::syntax_error_in(Rule::file, file, text, error)],
            );
        }
    };
    let mut builder = Builder::new(file, text);
    for pair in root.clone().into_inner().flatten() {
        if pair.as_rule() == Rule::COMMENT {
            let span = builder.span(&pair);
            out.comments.push(ast::Comment {
                text: pair.as_str()[1..].trim_end().to_string(),
                span,
            });
        }
    }
    builder.comments = out
        .comments
        .iter()
        .map(|c| (c.span.start as usize, c.span.end as usize))
        .collect();
    for pair in builder.children(root) {
        if pair.as_rule() != Rule::EOI {
            out.decls.push(builder.decl(pair));
        }
    }
    (out, builder.diagnostics.into_inner())
}

/// Text nested too deeply to hand to pest, as the diagnostic the builder
/// gives for nesting past [`MAX_DEPTH`].
fn nested_too_deep(file: FileId, text: &str) -> Option<Diagnostic> {
    let at = nesting::too_deep(text)?;
    Some(
        Diagnostic::new(
            Code::TooDeep,
            Span::new(file, at, at + 1),
            format!("nested more than {MAX_DEPTH} levels deep"),
        )
        .label("too deep"),
    )
}

/// Parses a lone expression (a stdlib example, say) from file `file` of `sources`.
pub fn parse_expression(sources: &Sources, file: FileId) -> Result<ast::Expr, Vec<Diagnostic>> {
    let text = &sources.get(file).text;
    if let Some(d) = nested_too_deep(file, text) {
        return Err(vec![d]);
    }
    let root = match Grammar::parse(Rule::expression_only, text) {
        Ok(mut pairs) => pairs
            .next()
            .expect("the expression_only rule always yields one pair"),
        Err(error) => {
            return Err(vec![errors::syntax_error_in(
                Rule::expression_only,
                file,
                text,
                error,
            )]);
        }
    };
    let builder = Builder::new(file, text);
    let pair = builder
        .children(root)
        .next()
        .expect("grammar: one expression");
    let expr = builder.expr(pair);
    let diagnostics = builder.diagnostics.into_inner();
    if diagnostics.is_empty() {
        Ok(expr)
    } else {
        Err(diagnostics)
    }
}

/// Parses every file of a deployment.
pub fn parse_all(sources: &Sources) -> (Vec<ast::File>, Vec<Diagnostic>) {
    let ids: Vec<FileId> = sources.ids().collect();
    let bytes: usize = ids.iter().map(|id| sources.get(*id).text.len()).sum();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(ids.len());
    let parsed = if workers > 1 && bytes >= PARALLEL_FROM_BYTES {
        parse_in_parallel(sources, &ids, workers)
    } else {
        ids.iter().map(|id| parse(sources, *id)).collect()
    };
    let mut files = Vec::with_capacity(parsed.len());
    let mut diagnostics = Vec::new();
    for (file, mut d) in parsed {
        files.push(file);
        diagnostics.append(&mut d);
    }
    (files, diagnostics)
}

/// Below this much text, starting threads costs more than it saves.
const PARALLEL_FROM_BYTES: usize = 64 * 1024;

/// Parses files on `workers` scoped threads, each taking the next unparsed
/// file, and returns them in file order (so output never depends on
/// scheduling). The calling thread works too, so a thread that cannot be
/// started only means fewer workers.
fn parse_in_parallel(
    sources: &Sources,
    ids: &[FileId],
    workers: usize,
) -> Vec<(ast::File, Vec<Diagnostic>)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(id) = ids.get(i) else { break };
            done.push((i, parse(sources, *id)));
        }
        done
    };
    let mut results: Vec<Option<(ast::File, Vec<Diagnostic>)>> = Vec::new();
    results.resize_with(ids.len(), || None);
    let started = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for _ in 1..workers {
            // Nesting is bounded before pest runs, so 2 MiB is enough
            // (dsl/tests/fuzz_regressions.rs); this leaves room.
            match std::thread::Builder::new()
                .stack_size(4 << 20)
                .spawn_scoped(scope, work)
            {
                Ok(h) => handles.push(h),
                Err(_) => break,
            }
        }
        let mut all = work();
        for h in handles {
            // A panic in a worker is a bug; surface it as the caller's.
            all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        all
    });
    for (i, parsed) in started {
        results[i] = Some(parsed);
    }
    results
        .into_iter()
        .map(|r| r.expect("every file is taken by some worker"))
        .collect()
}

/// Turns pairs of one file into AST nodes, collecting the problems it finds
/// in literals along the way (the grammar accepted their shape).
pub(crate) struct Builder<'t> {
    file: FileId,
    text: &'t str,
    /// Byte ranges of the file's comments, in order, for trimming spans.
    comments: Vec<(usize, usize)>,
    diagnostics: RefCell<Vec<Diagnostic>>,
    depth: Cell<u32>,
    too_deep: Cell<bool>,
}

impl<'t> Builder<'t> {
    fn new(file: FileId, text: &'t str) -> Builder<'t> {
        Builder {
            file,
            text,
            comments: Vec::new(),
            diagnostics: RefCell::new(Vec::new()),
            depth: Cell::new(0),
            too_deep: Cell::new(false),
        }
    }

    /// A pair's span without the white space and comments pest may have
    /// skipped at its end (looking for an optional part that was not there).
    fn span(&self, pair: &Pair<'_>) -> Span {
        let s = pair.as_span();
        let (start, mut end) = (s.start(), s.end());
        loop {
            end = start + self.text[start..end].trim_end().len();
            match self.comments.binary_search_by_key(&end, |c| c.1) {
                Ok(i) if self.comments[i].0 >= start => end = self.comments[i].0,
                _ => break,
            }
        }
        Span::new(self.file, start, end)
    }

    fn report(&self, diagnostic: Diagnostic) {
        self.diagnostics.borrow_mut().push(diagnostic);
    }

    /// The meaningful children of a pair: comments and keywords dropped.
    fn children<'i>(&self, pair: Pair<'i>) -> impl Iterator<Item = Pair<'i>> {
        pair.into_inner().filter(|p| !is_noise(p.as_rule()))
    }

    /// Runs `f` one level deeper, or reports that the input nests too deeply.
    fn nested<T>(&self, span: Span, fallback: impl FnOnce() -> T, f: impl FnOnce() -> T) -> T {
        let depth = self.depth.get();
        if depth >= MAX_DEPTH {
            if !self.too_deep.replace(true) {
                self.report(
                    Diagnostic::new(
                        Code::TooDeep,
                        span,
                        format!("nested more than {MAX_DEPTH} levels deep"),
                    )
                    .label("too deep"),
                );
            }
            return fallback();
        }
        self.depth.set(depth + 1);
        let out = f();
        self.depth.set(depth);
        out
    }

    fn ident(&self, pair: Pair<'_>) -> ast::Ident {
        ast::Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    /// An event's name, bare or quoted. A quoted one keeps its span with
    /// the quotes; its name is the text between them.
    fn event_name(&self, pair: Pair<'_>) -> ast::Ident {
        let inner = self
            .children(pair)
            .next()
            .expect("grammar: event name has a body");
        if inner.as_rule() == Rule::ident {
            return self.ident(inner);
        }
        let text = self.text(inner);
        let problem = if text.triple {
            Some("write an event name in plain quotes, on one line")
        } else if text.value.trim().is_empty() {
            Some("an event name cannot be empty")
        } else if text.value.chars().any(char::is_control) {
            Some("an event name cannot hold control characters")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.report(
                Diagnostic::new(Code::BadLiteral, text.span, "this is not an event name")
                    .label(problem),
            );
        }
        ast::Ident {
            name: text.value,
            span: text.span,
        }
    }

    fn integer(&self, pair: Pair<'_>) -> ast::Integer {
        let span = self.span(&pair);
        let digits: String = pair.as_str().chars().filter(|c| *c != '_').collect();
        let value = digits.parse().unwrap_or_else(|_| {
            self.report(
                Diagnostic::new(Code::BadLiteral, span, "this number is too large")
                    .label("too large"),
            );
            0
        });
        ast::Integer { value, span }
    }

    fn duration(&self, pair: Pair<'_>) -> ast::DurationLit {
        let span = self.span(&pair);
        let text = pair.as_str().to_string();
        let seconds = parse_duration(&text).unwrap_or_else(|| {
            self.report(
                Diagnostic::new(Code::BadLiteral, span, "this duration is too long")
                    .label("too long"),
            );
            0
        });
        ast::DurationLit {
            seconds,
            text,
            span,
        }
    }

    fn time_of_day(&self, pair: Pair<'_>) -> ast::TimeOfDay {
        let span = self.span(&pair);
        let (h, m) = pair.as_str().split_once(':').expect("grammar: H:MM");
        let (h, m): (u32, u32) = (h.parse().unwrap_or(99), m.parse().unwrap_or(99));
        if h > 23 || m > 59 {
            self.report(
                Diagnostic::new(
                    Code::BadLiteral,
                    span,
                    format!("`{}` is not a time of day", pair.as_str()),
                )
                .label("hours run 00–23 and minutes 00–59"),
            );
        }
        ast::TimeOfDay {
            minutes: (h.min(23)) * 60 + m.min(59),
            span,
        }
    }

    fn window(&self, pair: Pair<'_>) -> ast::Window {
        let inner = self
            .children(pair)
            .next()
            .expect("grammar: window has one child");
        match inner.as_rule() {
            Rule::duration => ast::Window::Rolling(self.duration(inner)),
            _ => {
                let period = match inner.as_str() {
                    "day" => ast::CalendarPeriod::Day,
                    "week" => ast::CalendarPeriod::Week,
                    _ => ast::CalendarPeriod::Month,
                };
                ast::Window::Calendar(period, self.span(&inner))
            }
        }
    }
}

/// Seconds in a duration literal such as `1d12h`; `None` on overflow.
pub fn parse_duration(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut number: u64 = 0;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            number = number.checked_mul(10)?.checked_add(u64::from(d))?;
        } else {
            let unit = match c {
                'w' => 7 * 86_400,
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                _ => 1,
            };
            total = total.checked_add(number.checked_mul(unit)?)?;
            number = 0;
        }
    }
    // Durations beyond a century are certainly mistakes, and keep timestamp arithmetic in range.
    (total <= 100 * 366 * 86_400).then_some(total)
}

/// Comments and keyword tokens: the shape of a node tells the builder all
/// it needs, so these are skipped.
fn is_noise(r: Rule) -> bool {
    static NOISE: OnceLock<Vec<bool>> = OnceLock::new();
    let table = NOISE.get_or_init(|| {
        let mut table = Vec::new();
        for r in Rule::all_rules() {
            let index = *r as usize;
            if table.len() <= index {
                table.resize(index + 1, false);
            }
            table[index] = *r == Rule::COMMENT || format!("{r:?}").starts_with("k_");
        }
        table
    });
    table.get(r as usize).copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_comment_is_collected_for_the_formatter() {
        let mut sources = Sources::new();
        let id = sources.add("c.journey", "# top\njourney j {  # after brace\n  trigger event e\n  # own line\n  send sms  # trailing\n}\n# end\n");
        let (file, diagnostics) = parse(&sources, id);
        assert!(diagnostics.is_empty());
        let texts: Vec<&str> = file.comments.iter().map(|c| c.text.trim()).collect();
        assert_eq!(texts, ["top", "after brace", "own line", "trailing", "end"]);
    }

    #[test]
    fn files_parsed_in_parallel_come_back_in_order_with_the_same_diagnostics() {
        let mut sources = Sources::new();
        for i in 0..60 {
            let body = if i % 7 == 3 {
                // A syntax error in some files: their detailed errors are
                // collected while other files are still parsing.
                format!("journey j{i} {{\n  trigger event e\n  send sms {{ a: 1 +* 2 }}\n}}\n")
            } else {
                format!(
                    "journey j{i} {{\n  trigger event e\n{}}}\n",
                    "  send sms template \"T\" { n: 1 + 2, s: \"hi {user.name}\" }\n".repeat(30)
                )
            };
            sources.add(format!("f{i}.journey"), body);
        }
        let total: usize = sources.ids().map(|id| sources.get(id).text.len()).sum();
        assert!(
            total >= PARALLEL_FROM_BYTES,
            "the deployment must take the parallel path"
        );
        let (files, diagnostics) = parse_all(&sources);
        let one_by_one: Vec<_> = sources.ids().map(|id| parse(&sources, id)).collect();
        assert_eq!(files.len(), one_by_one.len());
        for (file, (alone, _)) in files.iter().zip(&one_by_one) {
            assert_eq!(file, alone);
        }
        let alone: Vec<Diagnostic> = one_by_one.into_iter().flat_map(|(_, d)| d).collect();
        assert_eq!(diagnostics, alone);
        assert_eq!(diagnostics.len(), 9);
        for _ in 0..3 {
            assert_eq!(parse_all(&sources).1, diagnostics);
        }
    }

    #[test]
    fn durations_combine_units() {
        assert_eq!(parse_duration("30s"), Some(30));
        assert_eq!(parse_duration("1d12h"), Some(129_600));
        assert_eq!(parse_duration("1w"), Some(604_800));
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }
}
