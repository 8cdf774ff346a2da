//! Argument checking and conversion shared by the implementations: the
//! arity and kind check [`crate::call`] runs before every call, and the
//! converters that read a timestamp, a local date, a number or a time zone
//! out of an argument — each failing with an [`EvalError`] that names the
//! function and the parameter, never panicking.

use crate::{Context, EvalError};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use std::str::FromStr;
use waymark_dsl::library::{ParamKind, Signature};
use waymark_dsl::types::Type;
use waymark_dsl::value::Value;

/// Checks the number of arguments and that each has a kind its parameter
/// accepts. `null` passes here; the null rule is applied by the caller.
pub(crate) fn check_call(sig: &Signature, args: &[&Value]) -> Result<(), EvalError> {
    let min = sig.min_args();
    let too_few = args.len() < min;
    let too_many = sig.max_args().is_some_and(|max| args.len() > max);
    if too_few || too_many {
        let wanted = match sig.max_args() {
            None => format!("at least {min}"),
            Some(max) if max == min => format!("{min}"),
            Some(max) => format!("{min} to {max}"),
        };
        let plural = if wanted.ends_with(" 1") || wanted == "1" {
            ""
        } else {
            "s"
        };
        return Err(EvalError(format!(
            "{}: takes {wanted} argument{plural}, got {} ({})",
            sig.name,
            args.len(),
            sig.display()
        )));
    }
    for (index, arg) in args.iter().enumerate() {
        let Some(param) = sig.param(index) else {
            continue;
        };
        if arg.is_null() {
            continue;
        }
        let fits = match param.kind {
            ParamKind::Event => matches!(arg, Value::String(s) if !s.is_empty()),
            ParamKind::EventField => {
                matches!(arg, Value::String(s) if split_event_field(s).is_some())
            }
            ParamKind::Value(t) => accepts(t, arg),
        };
        if !fits {
            // Worded only when it is said: calls run on every event.
            let wanted = match param.kind {
                ParamKind::Event => "an event name".to_string(),
                ParamKind::EventField => "an event property written `event.property`".to_string(),
                ParamKind::Value(t) => a_type(t),
            };
            return Err(EvalError(format!(
                "{}: {} must be {wanted}, got {}",
                sig.name,
                param.name,
                describe(arg)
            )));
        }
    }
    Ok(())
}

/// Whether a value may be passed where the checker expects `wanted`.
/// Timestamps also come as RFC 3339 strings and dates as `YYYY-MM-DD`
/// strings or timestamps (events arrive as JSON); whether such a string
/// parses is for the converter to say.
fn accepts(wanted: Type, value: &Value) -> bool {
    match wanted {
        Type::Any => true,
        Type::Timestamp => matches!(value, Value::Timestamp(_) | Value::String(_)),
        Type::Date => matches!(
            value,
            Value::Date(_) | Value::Timestamp(_) | Value::String(_)
        ),
        other => value.type_of() == other,
    }
}

/// `E.PROP` split at its last dot.
pub(crate) fn split_event_field(s: &str) -> Option<(&str, &str)> {
    // The property is a plain name; the event's name may hold dots.
    let (event, field) = s.rsplit_once('.')?;
    (!event.is_empty() && !field.is_empty()).then_some((event, field))
}

/// "a number", "an event name", … for messages.
fn a_type(t: Type) -> String {
    match t {
        Type::Any => "a value".to_string(),
        Type::Timestamp => "a timestamp (or an RFC 3339 string)".to_string(),
        Type::Date => "a date (or a `YYYY-MM-DD` string, or a timestamp)".to_string(),
        other => {
            let name = other.to_string();
            let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            format!("{article} {name}")
        }
    }
}

/// A value as a message shows it: `the string "abc"`, `2.5`, `a list`.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.normalize().to_string(),
        Value::String(s) => {
            let short: String = s.chars().take(40).collect();
            let more = if short.len() < s.len() { "…" } else { "" };
            format!("the string {short:?}{more}")
        }
        Value::Duration(_) => format!("the duration {}", value.to_text()),
        Value::Timestamp(_) | Value::Date(_) | Value::TimeOfDay(_) => {
            format!("the {} {}", value.type_of(), value.to_text())
        }
        Value::List(_) | Value::Record(_) => a_type(value.type_of()),
    }
}

/// A timestamp: a timestamp value or an RFC 3339 string.
pub(crate) fn timestamp(
    function: &str,
    param: &str,
    value: &Value,
) -> Result<DateTime<Utc>, EvalError> {
    value.as_timestamp().ok_or_else(|| {
        EvalError(format!(
            "{function}: {param} must be a timestamp like \"2025-11-10T20:00:00+08:00\", got {}",
            describe(value)
        ))
    })
}

/// A calendar date: a date value, a `YYYY-MM-DD` string, or a timestamp
/// (value or RFC 3339 string) read as its local date in `tz`.
pub(crate) fn local_date(
    function: &str,
    param: &str,
    value: &Value,
    tz: Tz,
) -> Result<NaiveDate, EvalError> {
    match value {
        Value::Date(d) => return Ok(*d),
        Value::String(s) => {
            if let Ok(d) = NaiveDate::from_str(s) {
                return Ok(d);
            }
        }
        _ => {}
    }
    match value.as_timestamp() {
        Some(t) => Ok(local_time(function, t, tz)?.date()),
        None => Err(EvalError(format!(
            "{function}: {param} must be a date like \"2025-11-10\" or a timestamp, got {}",
            describe(value)
        ))),
    }
}

/// The first moment of `date` in `tz`: local midnight, or — where a
/// daylight-saving change skips midnight — the first local time that exists.
pub(crate) fn start_of_day(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    (0..=24 * 4).find_map(|quarter| {
        let time = NaiveTime::from_num_seconds_from_midnight_opt(quarter * 15 * 60, 0)?;
        tz.from_local_datetime(&date.and_time(time))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

pub(crate) fn number(function: &str, param: &str, value: &Value) -> Result<Decimal, EvalError> {
    value.as_number().ok_or_else(|| {
        EvalError(format!(
            "{function}: {param} must be a number, got {}",
            describe(value)
        ))
    })
}

pub(crate) fn string<'v>(
    function: &str,
    param: &str,
    value: &'v Value,
) -> Result<&'v str, EvalError> {
    value.as_str().ok_or_else(|| {
        EvalError(format!(
            "{function}: {param} must be a string, got {}",
            describe(value)
        ))
    })
}

/// The time zone named by optional argument `index`, else the one in force.
pub(crate) fn zone(
    function: &str,
    ctx: &dyn Context,
    args: &[&Value],
    index: usize,
) -> Result<Tz, EvalError> {
    let Some(value) = args.get(index) else {
        return Ok(ctx.time_zone());
    };
    let name = string(function, "tz", value)?;
    name.parse::<Tz>().map_err(|_| {
        EvalError(format!(
            "{function}: tz must be a time zone name like \"Asia/Shanghai\", got {}",
            describe(value)
        ))
    })
}

/// Argument `index`, or null when missing ([`crate::call`] checks arity,
/// but an implementation must not panic if reached some other way).
pub(crate) fn nth<'a>(args: &[&'a Value], index: usize) -> &'a Value {
    static NULL: Value = Value::Null;
    args.get(index).copied().unwrap_or(&NULL)
}

/// `time` as local wall-clock time in `tz`. chrono panics converting an
/// instant at the very edge of its range; this is an error instead.
pub(crate) fn local_time(
    function: &str,
    time: DateTime<Utc>,
    tz: Tz,
) -> Result<NaiveDateTime, EvalError> {
    let offset = tz.offset_from_utc_datetime(&time.naive_utc()).fix();
    time.naive_utc().checked_add_offset(offset).ok_or_else(|| {
        EvalError(format!(
            "{function}: {} is out of the supported range in {tz}",
            Value::Timestamp(time).to_text()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_field_needs_both_halves() {
        assert_eq!(
            split_event_field("order_paid.amount"),
            Some(("order_paid", "amount"))
        );
        // Scripts give a plain property name; the event's name may hold dots.
        assert_eq!(
            split_event_field("Checkout.Step Viewed.step"),
            Some(("Checkout.Step Viewed", "step"))
        );
        assert_eq!(split_event_field("order_paid"), None);
        assert_eq!(split_event_field(".amount"), None);
        assert_eq!(split_event_field("order_paid."), None);
    }

    #[test]
    fn long_strings_are_shortened_in_messages() {
        let long = Value::String("x".repeat(100));
        assert_eq!(describe(&long), format!("the string {:?}…", "x".repeat(40)));
    }

    #[test]
    fn start_of_day_is_local_midnight() {
        let d = NaiveDate::from_ymd_opt(2025, 11, 10).unwrap();
        let t = start_of_day(d, chrono_tz::Asia::Shanghai).unwrap();
        assert_eq!(t.to_rfc3339(), "2025-11-09T16:00:00+00:00");
    }

    #[test]
    fn local_time_at_the_edge_of_the_range_is_an_error() {
        let e =
            local_time("hour", DateTime::<Utc>::MAX_UTC, chrono_tz::Asia::Shanghai).unwrap_err();
        assert!(e.0.starts_with("hour: "), "{e}");
    }
}
