//! The canonical layout of journey scripts (`waymark fmt`). One layout, no
//! options: two-space indent, one clause or step per line, a blank line
//! between declarations, minimal parentheses, strings re-escaped, every
//! comment kept where its author put it (own line, or end of line). The
//! output parses back to the same tree; formatting it again changes nothing.
//!
//! `printer` owns lines, indentation, blank lines and comments; `decls`,
//! `steps` and `expr` say what each node looks like.

mod decls;
mod expr;
mod printer;
mod steps;

pub(crate) use expr::{escaped, quoted, time_of_day};

use crate::ast;
use crate::diagnostic::Diagnostic;
use crate::parser;
use crate::source::Sources;

/// An event's name as a script writes it: bare when it is a plain name
/// (`order_paid`), quoted otherwise (`"Order Completed"`). `fmt` prints
/// event names this way, and diagnostics that name an event quote it so.
pub fn event_name(name: &str) -> String {
    if parser::is_plain_name(name) {
        name.to_string()
    } else {
        expr::quoted(name)
    }
}

/// Formats a parsed file. `source` is the text `file` was parsed from: the
/// comments' and nodes' spans point into it. A file with parse errors is
/// printed as well as it can be, but only a clean one is guaranteed to
/// round-trip.
pub fn format_file(file: &ast::File, source: &str) -> String {
    let mut p = printer::Printer::new(source, &file.comments);
    for (i, decl) in file.decls.iter().enumerate() {
        p.decl(decl, i > 0);
    }
    p.finish_file()
}

/// Parses `text` (named `name` in diagnostics) and formats it, or returns
/// the parser's diagnostics if it reported any.
pub fn format_source(name: &str, text: &str) -> Result<String, Vec<Diagnostic>> {
    let mut sources = Sources::new();
    let id = sources.add(name, text);
    let (file, diagnostics) = parser::parse(&sources, id);
    if diagnostics.is_empty() {
        Ok(format_file(&file, text))
    } else {
        Err(diagnostics)
    }
}
