//! Time built-ins: reading a timestamp as a local date, hour or weekday,
//! birthdays, and turning text into a timestamp. The time zone is the
//! optional last argument (an IANA name like `"Asia/Shanghai"`), else the
//! one in force at the call site ([`Context::time_zone`]).

use crate::args::{self, nth};
use crate::{Builtin, Context, EvalError, Group};
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use rust_decimal::Decimal;
use waymark_dsl::library::{Needs, Param, ParamKind, Returns, Signature};
use waymark_dsl::types::Type;
use waymark_dsl::value::Value;

const TZ: Param = Param {
    name: "tz",
    kind: ParamKind::Value(Type::String),
    optional: true,
};
const TIME_TZ: &[Param] = &[
    Param {
        name: "time",
        kind: ParamKind::Value(Type::Timestamp),
        optional: false,
    },
    TZ,
];

pub(crate) const DATE: Builtin = Builtin {
    group: Group::Time,
    signature: Signature {
        name: "date",
        params: TIME_TZ,
        variadic: false,
        returns: Returns::Type(Type::Date),
        needs: &[Needs::TimeZone],
        takes_null: false,
        doc: "The local calendar date of `time` in `tz` (default: the time zone in force).",
        example: "date(timestamp(\"2025-11-10T20:30:00Z\"))",
        example_result: "\"2025-11-11\"",
    },
    eval: date,
};

pub(crate) const HOUR: Builtin = Builtin {
    group: Group::Time,
    signature: Signature {
        name: "hour",
        params: TIME_TZ,
        variadic: false,
        returns: Returns::Type(Type::Number),
        needs: &[Needs::TimeZone],
        takes_null: false,
        doc: "The local hour of `time` in `tz`, 0 to 23.",
        example: "hour(timestamp(\"2025-11-10T20:30:00Z\"), \"America/New_York\")",
        example_result: "15",
    },
    eval: hour,
};

pub(crate) const WEEKDAY: Builtin = Builtin {
    group: Group::Time,
    signature: Signature {
        name: "weekday",
        params: TIME_TZ,
        variadic: false,
        returns: Returns::Type(Type::Number),
        needs: &[Needs::TimeZone],
        takes_null: false,
        doc: "The local day of the week of `time` in `tz`, ISO numbering: 1 = Monday … 7 = Sunday.",
        example: "weekday(timestamp(\"2025-11-09T20:00:00Z\"))",
        example_result: "1",
    },
    eval: weekday,
};

pub(crate) const IS_BIRTHDAY: Builtin = Builtin {
    group: Group::Time,
    signature: Signature {
        name: "is_birthday",
        params: &[
            Param {
                name: "birthday",
                kind: ParamKind::Value(Type::Date),
                optional: false,
            },
            TZ,
        ],
        variadic: false,
        returns: Returns::Type(Type::Bool),
        needs: &[Needs::Clock, Needs::TimeZone],
        takes_null: false,
        doc: "Whether today's local month and day in `tz` are those of `birthday`; a Feb 29 birthday counts on Feb 28 in common years.",
        example: "is_birthday(user.birthday)",
        example_result: "true",
    },
    eval: is_birthday,
};

pub(crate) const TIMESTAMP: Builtin = Builtin {
    group: Group::Time,
    signature: Signature {
        name: "timestamp",
        params: &[Param {
            name: "text",
            kind: ParamKind::Value(Type::String),
            optional: false,
        }],
        variadic: false,
        returns: Returns::Type(Type::Timestamp),
        needs: &[Needs::TimeZone],
        takes_null: false,
        doc: "A timestamp from RFC 3339 text, or from `YYYY-MM-DD` as that day's local midnight in the time zone in force.",
        example: "timestamp(\"2025-11-10\")",
        example_result: "\"2025-11-09T16:00:00Z\"",
    },
    eval: timestamp,
};

/// Argument 0 as local wall-clock time in the zone of argument 1 or in force.
fn local(function: &str, ctx: &dyn Context, args: &[&Value]) -> Result<NaiveDateTime, EvalError> {
    let time = args::timestamp(function, "time", nth(args, 0))?;
    let tz = args::zone(function, ctx, args, 1)?;
    args::local_time(function, time, tz)
}

fn date(ctx: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    Ok(Value::Date(local("date", ctx, args)?.date()))
}

fn hour(ctx: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    Ok(Value::Number(Decimal::from(
        local("hour", ctx, args)?.hour(),
    )))
}

fn weekday(ctx: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    Ok(Value::Number(Decimal::from(
        local("weekday", ctx, args)?.weekday().number_from_monday(),
    )))
}

fn is_birthday(ctx: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    let tz = args::zone("is_birthday", ctx, args, 1)?;
    let birthday = args::local_date("is_birthday", "birthday", nth(args, 0), tz)?;
    let today = args::local_time("is_birthday", ctx.now(), tz)?.date();
    Ok(Value::Bool(birthday_falls_on(birthday, today)))
}

/// Whether `today` is the anniversary of `birthday`: same month and day,
/// or Feb 28 of a common year for a Feb 29 birthday.
fn birthday_falls_on(birthday: NaiveDate, today: NaiveDate) -> bool {
    let same_day = birthday.month() == today.month() && birthday.day() == today.day();
    let leap_day_moved = birthday.month() == 2
        && birthday.day() == 29
        && today.month() == 2
        && today.day() == 28
        && NaiveDate::from_ymd_opt(today.year(), 2, 29).is_none();
    same_day || leap_day_moved
}

fn timestamp(ctx: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    let value = nth(args, 0);
    let text = args::string("timestamp", "text", value)?;
    if let Some(t) = value.as_timestamp() {
        return Ok(Value::Timestamp(t));
    }
    let parsed = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| args::start_of_day(d, ctx.time_zone()));
    parsed.map(Value::Timestamp).ok_or_else(|| {
        EvalError(format!(
            "timestamp: text must be RFC 3339 like \"2025-11-10T20:00:00+08:00\" or a date like \"2025-11-10\", got {}",
            args::describe(value)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::birthday_falls_on;
    use chrono::NaiveDate;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn leap_day_birthday_moves_to_feb_28_only_in_common_years() {
        assert!(birthday_falls_on(d(2000, 2, 29), d(2025, 2, 28)));
        assert!(!birthday_falls_on(d(2000, 2, 29), d(2024, 2, 28)));
        assert!(birthday_falls_on(d(2000, 2, 29), d(2024, 2, 29)));
        assert!(!birthday_falls_on(d(2000, 2, 28), d(2024, 2, 29)));
        assert!(birthday_falls_on(d(2001, 2, 28), d(2025, 2, 28)));
    }
}
