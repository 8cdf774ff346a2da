//! Plan expressions, durations and windows as a marketer wrote them, for
//! drawings. Parentheses come from precedence, as `fmt` derives them; names
//! a plan has resolved read as written (`user.points`, a segment's name, a
//! binding), consts read as their values, and event-name arguments as the
//! strings the plan holds (`count("order_paid")`).

use crate::ast::{BinaryOp, CalendarPeriod, NEG_PRECEDENCE, NOT_PRECEDENCE};
use crate::fmt::{escaped, quoted, time_of_day};
use crate::plan::{Expr, Window};
use crate::value::Value;
use chrono::SecondsFormat;
use rust_decimal::Decimal;

/// Binding power of calls, fields, indexing and atoms.
const ATOM: u8 = NEG_PRECEDENCE + 1;

/// `expr` as script text.
pub fn expr(e: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, e);
    out
}

/// A duration as the language writes it, largest units first: `1d2h`.
pub fn duration(seconds: i64) -> String {
    if seconds == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = seconds.unsigned_abs();
    if seconds < 0 {
        out.push('-');
    }
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// A counting window: `per 1d` or `per day`.
pub fn window(w: &Window) -> String {
    match w {
        Window::Rolling(s) => duration(*s),
        Window::Calendar(CalendarPeriod::Day) => "day".into(),
        Window::Calendar(CalendarPeriod::Week) => "week".into(),
        Window::Calendar(CalendarPeriod::Month) => "month".into(),
    }
}

/// A percentage without trailing zeros: `50%`, `12.5%`.
pub fn percent(p: Decimal) -> String {
    format!("{}%", p.normalize())
}

fn precedence(e: &Expr) -> u8 {
    match e {
        Expr::Binary(op, ..) => op.precedence(),
        Expr::Not(_) => NOT_PRECEDENCE,
        Expr::Neg(_) => NEG_PRECEDENCE,
        Expr::Literal(Value::Number(n)) if n.is_sign_negative() => NEG_PRECEDENCE,
        _ => ATOM,
    }
}

fn operand(out: &mut String, e: &Expr, min: u8) {
    if precedence(e) < min {
        out.push('(');
        write_expr(out, e);
        out.push(')');
    } else {
        write_expr(out, e);
    }
}

fn write_expr(out: &mut String, e: &Expr) {
    match e {
        Expr::Literal(v) => write_value(out, v),
        Expr::User => out.push_str("user"),
        Expr::Event => out.push_str("event"),
        Expr::Journey => out.push_str("journey"),
        Expr::Now => out.push_str("now"),
        Expr::Binding(name) | Expr::Segment(name) => out.push_str(name),
        Expr::Field(base, field) => {
            operand(out, base, ATOM);
            out.push('.');
            if crate::parser::is_plain_name(field) {
                out.push_str(field);
            } else {
                out.push_str(&quoted(field));
            }
        }
        Expr::Index(base, index) => {
            operand(out, base, ATOM);
            out.push('[');
            write_expr(out, index);
            out.push(']');
        }
        Expr::Call { function, args } => {
            out.push_str(function);
            out.push('(');
            list(out, args);
            out.push(')');
        }
        Expr::Not(inner) => {
            out.push_str("not ");
            operand(out, inner, NOT_PRECEDENCE);
        }
        Expr::Neg(inner) => {
            out.push('-');
            operand(out, inner, NEG_PRECEDENCE);
        }
        Expr::Binary(op, lhs, rhs) => binary(out, *op, lhs, rhs),
        Expr::List(items) => {
            out.push('[');
            list(out, items);
            out.push(']');
        }
        Expr::Record(fields) => record(out, fields.iter().map(|(k, v)| (k, Part::Expr(v)))),
        Expr::Interpolate(parts) => {
            out.push('"');
            for part in parts {
                match part {
                    Expr::Literal(Value::String(s)) => out.push_str(&escaped(s)),
                    other => {
                        out.push('{');
                        write_expr(out, other);
                        out.push('}');
                    }
                }
            }
            out.push('"');
        }
    }
}

fn binary(out: &mut String, op: BinaryOp, lhs: &Expr, rhs: &Expr) {
    let p = op.precedence();
    let left_min = if op.is_comparison() { p + 1 } else { p };
    operand(out, lhs, left_min);
    out.push(' ');
    out.push_str(op.symbol());
    out.push(' ');
    operand(out, rhs, p + 1);
}

fn list(out: &mut String, items: &[Expr]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_expr(out, item);
    }
}

enum Part<'a> {
    Expr(&'a Expr),
    Value(&'a Value),
}

fn record<'a>(out: &mut String, fields: impl Iterator<Item = (&'a String, Part<'a>)>) {
    let mut empty = true;
    for (i, (key, value)) in fields.enumerate() {
        out.push_str(if i == 0 { "{ " } else { ", " });
        empty = false;
        if crate::parser::is_plain_name(key) {
            out.push_str(key);
        } else {
            out.push_str(&quoted(key));
        }
        out.push_str(": ");
        match value {
            Part::Expr(e) => write_expr(out, e),
            Part::Value(v) => write_value(out, v),
        }
    }
    out.push_str(if empty { "{}" } else { " }" });
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.normalize().to_string()),
        Value::String(s) => out.push_str(&quoted(s)),
        Value::Timestamp(t) => {
            out.push_str(&quoted(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
        }
        Value::Date(d) => out.push_str(&quoted(&d.to_string())),
        Value::Duration(s) => out.push_str(&duration(*s)),
        Value::TimeOfDay(m) => out.push_str(&time_of_day(*m)),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Record(fields) => record(out, fields.iter().map(|(k, v)| (k, Part::Value(v)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Expr as E;

    fn num(n: i64) -> Box<E> {
        Box::new(E::Literal(Value::Number(Decimal::from(n))))
    }

    #[test]
    fn durations_read_largest_unit_first() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(90), "1m30s");
        assert_eq!(duration(86_400 + 7_200), "1d2h");
        assert_eq!(duration(14 * 86_400), "14d");
        assert_eq!(duration(-60), "-1m");
    }

    #[test]
    fn parentheses_follow_precedence() {
        let points = Box::new(E::Field(Box::new(E::User), "points".into()));
        let sum = E::Binary(BinaryOp::Add, points.clone(), num(1));
        let product = E::Binary(BinaryOp::Mul, Box::new(sum.clone()), num(2));
        assert_eq!(expr(&product), "(user.points + 1) * 2");
        let compare = E::Binary(BinaryOp::Gt, Box::new(sum), num(10));
        assert_eq!(expr(&compare), "user.points + 1 > 10");
        let not = E::Not(Box::new(compare.clone()));
        assert_eq!(expr(&not), "not user.points + 1 > 10");
        let or = E::Binary(BinaryOp::Or, Box::new(compare.clone()), Box::new(compare));
        let and = E::Binary(BinaryOp::And, Box::new(or), num(1));
        assert_eq!(
            expr(&and),
            "(user.points + 1 > 10 or user.points + 1 > 10) and 1"
        );
        let minus = E::Neg(Box::new(E::Binary(BinaryOp::Sub, points, num(1))));
        assert_eq!(expr(&minus), "-(user.points - 1)");
    }

    #[test]
    fn strings_and_interpolations_are_escaped_as_written() {
        let hello = E::Interpolate(vec![
            E::Literal(Value::String("hi \"{".into())),
            E::Field(Box::new(E::User), "nickname".into()),
        ]);
        assert_eq!(expr(&hello), r#""hi \"\{{user.nickname}""#);
        let odd = E::Field(Box::new(E::Event), "Order Id".into());
        assert_eq!(expr(&odd), r#"event."Order Id""#);
    }
}
