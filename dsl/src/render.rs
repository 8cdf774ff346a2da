//! Diagnostics rendered at the edge: for people (`path:line:col`, the
//! source line, a caret under the span, help) and as JSON for editors and
//! CI. Line and column are computed here, from spans, and nowhere else.

use crate::diagnostic::{Diagnostic, Severity};
use crate::source::{Sources, Span};
use serde::Serialize;
use std::fmt::Write as _;
use unicode_width::UnicodeWidthStr;

/// Every diagnostic for a terminal, blank line between them.
pub fn human(sources: &Sources, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&human_one(sources, d));
        out.push('\n');
    }
    out
}

/// `checked 3 files: 2 errors, 1 warning`
pub fn summary(files: usize, diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "checked {}: {}, {}",
        plural(files, "file"),
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

pub fn human_one(sources: &Sources, d: &Diagnostic) -> String {
    let severity = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut out = format!("{severity}[{}]: {}\n", d.code, d.message);
    // The primary label's file first, then each file's labels in line order.
    let primary = d.span();
    let mut labels: Vec<_> = d.labels.iter().collect();
    labels.sort_by_key(|l| (l.span.file != primary.file, l.span.file, l.span.start));
    let width = labels
        .iter()
        .map(|l| position(sources, l.span).line.to_string().len())
        .max()
        .unwrap_or(1);
    let pad = " ".repeat(width);
    let mut last_file = None;
    let mut last_line = None;
    for label in labels {
        let at = position(sources, label.span);
        let file = sources.get(label.span.file);
        if last_file != Some(label.span.file) {
            // The header names the primary label's place, as rustc does,
            // even when a secondary label comes first in its file.
            let (arrow, head) = if last_file.is_none() {
                ("-->", position(sources, primary))
            } else {
                (":::", at)
            };
            let _ = writeln!(
                out,
                "{pad}{arrow} {}:{}:{}",
                file.name, head.line, head.column
            );
            let _ = writeln!(out, "{pad} |");
            last_file = Some(label.span.file);
            last_line = None;
        }
        let line = file.line_text(at.line);
        let line_start = file.line_start(at.line);
        let start = (label.span.start as usize)
            .saturating_sub(line_start)
            .min(line.len());
        let end = (label.span.end as usize)
            .saturating_sub(line_start)
            .clamp(start, line.len());
        let (start, end) = (floor_boundary(line, start), floor_boundary(line, end));
        let indent = display_width(&line[..start]);
        let marks = display_width(&line[start..end]).max(1);
        let mark = if label.primary { "^" } else { "-" };
        // Labels on one line share its printed text.
        if last_line != Some(at.line) {
            let _ = writeln!(out, "{:>width$} | {}", at.line, line.replace('\t', " "));
            last_line = Some(at.line);
        }
        let text = if label.message.is_empty() {
            String::new()
        } else {
            format!(" {}", label.message)
        };
        let _ = writeln!(
            out,
            "{pad} | {}{}{text}",
            " ".repeat(indent),
            mark.repeat(marks)
        );
    }
    if let Some(help) = &d.help {
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{pad} = help: {help}");
    }
    out
}

fn display_width(text: &str) -> usize {
    text.replace('\t', " ").width()
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// 1-based line and column of a span's start and end.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
}

pub fn position(sources: &Sources, span: Span) -> Position {
    let file = sources.get(span.file);
    let (line, column) = file.line_col(span.start as usize);
    let (end_line, end_column) = file.line_col(span.end as usize);
    Position {
        line,
        column,
        end_line,
        end_column,
    }
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    file: &'a str,
    #[serde(flatten)]
    at: Position,
    message: &'a str,
    primary: bool,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'a str,
    severity: Severity,
    message: &'a str,
    file: &'a str,
    #[serde(flatten)]
    at: Position,
    labels: Vec<JsonLabel<'a>>,
    help: Option<&'a str>,
}

/// `{"diagnostics": […], "errors": N, "warnings": N}`.
pub fn json(sources: &Sources, diagnostics: &[Diagnostic]) -> serde_json::Value {
    let items: Vec<JsonDiagnostic<'_>> = diagnostics
        .iter()
        .map(|d| {
            let span = d.span();
            JsonDiagnostic {
                code: d.code.as_str(),
                severity: d.severity,
                message: &d.message,
                file: &sources.get(span.file).name,
                at: position(sources, span),
                labels: d
                    .labels
                    .iter()
                    .map(|l| JsonLabel {
                        file: &sources.get(l.span.file).name,
                        at: position(sources, l.span),
                        message: &l.message,
                        primary: l.primary,
                    })
                    .collect(),
                help: d.help.as_deref(),
            }
        })
        .collect();
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    serde_json::json!({
        "diagnostics": items,
        "errors": errors,
        "warnings": diagnostics.len() - errors,
    })
}
