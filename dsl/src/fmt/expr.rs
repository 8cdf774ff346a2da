//! Expressions and strings as text. Parentheses are derived from
//! precedence (the tree keeps none): an operand is wrapped only when the
//! parser would otherwise read it differently, including `(a == b) == c`,
//! which must stay wrapped because comparisons do not chain. Strings are
//! re-escaped; `"""` strings keep their line breaks.

use crate::ast::{
    Expr, ExprKind, NEG_PRECEDENCE, NOT_PRECEDENCE, Record, Template, TemplatePart, Text, UnaryOp,
};

/// Binding power of calls, fields, indexing and atoms: tighter than any operator.
const ATOM: u8 = NEG_PRECEDENCE + 1;

/// `expr` as source text; `src` is the file it was parsed from (used only
/// for nodes the parser could not build).
pub(super) fn expr(e: &Expr, src: &str) -> String {
    let mut out = String::new();
    write_expr(&mut out, e, src);
    out
}

fn precedence(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary(op, ..) => op.precedence(),
        ExprKind::Unary(UnaryOp::Not, _) => NOT_PRECEDENCE,
        ExprKind::Unary(UnaryOp::Neg, _) => NEG_PRECEDENCE,
        _ => ATOM,
    }
}

/// `e`, wrapped in parentheses if it binds looser than `min`.
fn operand(out: &mut String, e: &Expr, min: u8, src: &str) {
    if precedence(e) < min {
        out.push('(');
        write_expr(out, e, src);
        out.push(')');
    } else {
        write_expr(out, e, src);
    }
}

fn write_expr(out: &mut String, e: &Expr, src: &str) {
    match &e.kind {
        ExprKind::Null => out.push_str("null"),
        ExprKind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        ExprKind::Number { text, .. } | ExprKind::Duration { text, .. } => out.push_str(text),
        ExprKind::TimeOfDay(minutes) => out.push_str(&time_of_day(*minutes)),
        ExprKind::Str(template) => write_template(out, template, src),
        ExprKind::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, item, src);
            }
            out.push(']');
        }
        ExprKind::Record(record) => write_record(out, record, src),
        ExprKind::Name(name) => out.push_str(name),
        ExprKind::Field(base, field) => {
            operand(out, base, ATOM, src);
            out.push('.');
            out.push_str(&field.name);
        }
        ExprKind::Index(base, index) => {
            operand(out, base, ATOM, src);
            out.push('[');
            write_expr(out, index, src);
            out.push(']');
        }
        ExprKind::Call { function, args } => {
            out.push_str(&function.name);
            out.push('(');
            for (i, arg) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, arg, src);
            }
            out.push(')');
        }
        ExprKind::Unary(op, inner) => {
            let (symbol, min) = match op {
                UnaryOp::Not => ("not ", NOT_PRECEDENCE),
                UnaryOp::Neg => ("-", NEG_PRECEDENCE),
            };
            out.push_str(symbol);
            operand(out, inner, min, src);
        }
        ExprKind::Binary(op, lhs, rhs) => {
            let p = op.precedence();
            // Left-associative; comparisons do not associate at all.
            let left_min = if op.is_comparison() { p + 1 } else { p };
            operand(out, lhs, left_min, src);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            operand(out, rhs, p + 1, src);
        }
        ExprKind::Error => out.push_str(
            src.get(e.span.start as usize..e.span.end as usize)
                .unwrap_or("null")
                .trim_end(),
        ),
    }
}

/// `{ key: value, … }`, or `{}`.
pub(super) fn record(r: &Record, src: &str) -> String {
    let mut out = String::new();
    write_record(&mut out, r, src);
    out
}

fn write_record(out: &mut String, r: &Record, src: &str) {
    if r.fields.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push_str("{ ");
    for (i, field) in r.fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if field.quoted {
            write_text(out, &field.key.name, false);
        } else {
            out.push_str(&field.key.name);
        }
        out.push_str(": ");
        write_expr(out, &field.value, src);
    }
    out.push_str(" }");
}

/// Whether `wait until EXPR` would be read as `wait until HH:MM` followed
/// by something else: the printed expression starts with a time of day that
/// is not directly the left operand of an infix operator.
pub(super) fn starts_with_bare_time(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::TimeOfDay(_) => true,
        ExprKind::Field(base, _) | ExprKind::Index(base, _) => {
            precedence(base) >= ATOM && starts_with_bare_time(base)
        }
        ExprKind::Binary(op, lhs, _) => {
            let left_min = if op.is_comparison() {
                op.precedence() + 1
            } else {
                op.precedence()
            };
            precedence(lhs) >= left_min
                && !matches!(lhs.kind, ExprKind::TimeOfDay(_))
                && starts_with_bare_time(lhs)
        }
        _ => false,
    }
}

pub(crate) fn time_of_day(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// A plain string (title, id, time zone) with its quotes.
pub(super) fn text(t: &Text) -> String {
    let mut out = String::new();
    write_text(&mut out, &t.value, t.triple);
    out
}

/// `value` in plain quotes, escaped.
pub(crate) fn quoted(value: &str) -> String {
    let mut out = String::new();
    write_text(&mut out, value, false);
    out
}

/// `value` escaped as the inside of a plain string: quotes, braces and
/// control characters.
pub(crate) fn escaped(value: &str) -> String {
    let mut out = String::new();
    escape(&mut out, value, false, true);
    out
}

fn write_text(out: &mut String, value: &str, triple: bool) {
    let quote = if triple { "\"\"\"" } else { "\"" };
    out.push_str(quote);
    escape(out, value, triple, true);
    out.push_str(quote);
}

fn write_template(out: &mut String, t: &Template, src: &str) {
    let quote = if t.triple { "\"\"\"" } else { "\"" };
    out.push_str(quote);
    for (i, part) in t.parts.iter().enumerate() {
        match part {
            TemplatePart::Text(s) => escape(out, s, t.triple, i + 1 == t.parts.len()),
            TemplatePart::Expr(e) => {
                out.push('{');
                write_expr(out, e, src);
                out.push('}');
            }
        }
    }
    out.push_str(quote);
}

/// Escapes string contents. In `"""` strings only `\`, braces and quotes
/// that would end the string are escaped; `last` says the closing quotes
/// follow this text directly.
fn escape(out: &mut String, s: &str, triple: bool, last: bool) {
    for (i, c) in s.char_indices() {
        match c {
            '\\' => out.push_str("\\\\"),
            '{' => out.push_str("\\{"),
            '}' => out.push_str("\\}"),
            '"' if !triple => out.push_str("\\\""),
            '"' => {
                let rest = &s[i + 1..];
                if rest.starts_with("\"\"") || (last && rest.chars().all(|c| c == '"')) {
                    out.push_str("\\\"");
                } else {
                    out.push('"');
                }
            }
            '\n' if !triple => out.push_str("\\n"),
            '\t' if !triple => out.push_str("\\t"),
            '\r' if !triple => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str, triple: bool) -> String {
        let mut out = String::new();
        write_text(&mut out, s, triple);
        out
    }

    #[test]
    fn simple_strings_escape_quotes_braces_and_control_characters() {
        assert_eq!(escaped("a\"b{c}\\\n\t\r", false), r#""a\"b\{c\}\\\n\t\r""#);
    }

    #[test]
    fn triple_strings_escape_only_what_would_end_them() {
        assert_eq!(escaped("a\n\"b\"\t", true), "\"\"\"a\n\"b\"\t\"\"\"");
        assert_eq!(escaped("ends with \"", true), "\"\"\"ends with \\\"\"\"\"");
        assert_eq!(escaped("x\"\"\"y", true), "\"\"\"x\\\"\"\"y\"\"\"");
        assert_eq!(escaped("\"\"", true), "\"\"\"\\\"\\\"\"\"\"");
    }
}
