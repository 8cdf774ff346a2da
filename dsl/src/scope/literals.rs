//! Reading literals: whether an expression is a literal (what a const or
//! test data may be) and what a timestamp text means. The `literals` rule
//! reports the texts these refuse; lowering reads the values they accept.

use crate::ast::{self, ExprKind, UnaryOp};

/// A literal: what a const or test data may be.
pub fn is_literal(expr: &ast::Expr) -> bool {
    match &expr.kind {
        // An expression the parser could not build has been reported already.
        ExprKind::Error
        | ExprKind::Null
        | ExprKind::Bool(_)
        | ExprKind::Number { .. }
        | ExprKind::Duration { .. }
        | ExprKind::TimeOfDay(_) => true,
        ExprKind::Str(t) => t.as_plain().is_some(),
        ExprKind::List(items) => items.iter().all(is_literal),
        ExprKind::Record(r) => r.fields.iter().all(|f| is_literal(&f.value)),
        ExprKind::Unary(UnaryOp::Neg, e) => {
            matches!(e.kind, ExprKind::Number { .. } | ExprKind::Duration { .. })
        }
        _ => false,
    }
}

/// An RFC 3339 timestamp, or a date (`2025-11-11`, midnight UTC).
pub fn parse_timestamp(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    parse_timestamp_in(text, chrono_tz::UTC)
}

/// An RFC 3339 timestamp, or a date (`2025-11-11`), which is the first
/// instant of that day in `zone` (midnight, or the end of a DST gap there).
pub fn parse_timestamp_in(
    text: &str,
    zone: chrono_tz::Tz,
) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone;
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.to_utc());
    }
    let day = text.parse::<chrono::NaiveDate>().ok()?;
    (0..24 * 60).find_map(|minutes| {
        let local = day.and_hms_opt(0, 0, 0)? + chrono::Duration::minutes(minutes);
        zone.from_local_datetime(&local)
            .earliest()
            .map(|t| t.to_utc())
    })
}
