//! History built-ins: aggregates over the user's past events (`count`,
//! `sum`, `last`, `first`), read through [`Context`], and the clock
//! distances `days_since` and `hours_since`. Event arguments are written
//! bare in scripts (`count(order_paid)`) or quoted (`count("Order
//! Completed")`) and arrive here as strings; `sum`'s as `EVENT.PROPERTY`.

use crate::args::{self, split_event_field};
use crate::{Builtin, Context, EvalError, Group};
use rust_decimal::Decimal;
use waymark_dsl::library::{Needs, Param, ParamKind, Returns, Signature};
use waymark_dsl::types::Type;
use waymark_dsl::value::Value;

const EVENT: Param = Param {
    name: "event",
    kind: ParamKind::Event,
    optional: false,
};
const TIME: &[Param] = &[Param {
    name: "time",
    kind: ParamKind::Value(Type::Timestamp),
    optional: false,
}];

pub(crate) const COUNT: Builtin = Builtin {
    group: Group::History,
    signature: Signature {
        name: "count",
        params: &[
            EVENT,
            Param {
                name: "within",
                kind: ParamKind::Value(Type::Duration),
                optional: true,
            },
        ],
        variadic: false,
        returns: Returns::Type(Type::Number),
        needs: &[Needs::History, Needs::Clock],
        takes_null: false,
        doc: "How many times the user had the event, all time or only within the last `within`.",
        example: "count(order_paid, 30d)",
        example_result: "2",
    },
    eval: count,
};

pub(crate) const SUM: Builtin = Builtin {
    group: Group::History,
    signature: Signature {
        name: "sum",
        params: &[
            Param {
                name: "event_property",
                kind: ParamKind::EventField,
                optional: false,
            },
            Param {
                name: "within",
                kind: ParamKind::Value(Type::Duration),
                optional: false,
            },
        ],
        variadic: false,
        returns: Returns::Type(Type::Number),
        needs: &[Needs::History, Needs::Clock],
        takes_null: false,
        doc: "The total of a numeric event property over the last `within` (non-numbers are skipped; none gives 0).",
        example: "sum(order_paid.amount, 30d)",
        example_result: "70.5",
    },
    eval: sum,
};

pub(crate) const LAST: Builtin = Builtin {
    group: Group::History,
    signature: Signature {
        name: "last",
        params: &[EVENT],
        variadic: false,
        returns: Returns::Type(Type::Record),
        needs: &[Needs::History],
        takes_null: false,
        doc: "The user's latest such event (`name`, `at` and its properties), or null if there was none.",
        example: "last(order_paid).amount",
        example_result: "20",
    },
    eval: last,
};

pub(crate) const FIRST: Builtin = Builtin {
    group: Group::History,
    signature: Signature {
        name: "first",
        params: &[EVENT],
        variadic: false,
        returns: Returns::Type(Type::Record),
        needs: &[Needs::History],
        takes_null: false,
        doc: "The user's earliest such event (`name`, `at` and its properties), or null if there was none.",
        example: "first(order_paid).amount",
        example_result: "100",
    },
    eval: first,
};

pub(crate) const DAYS_SINCE: Builtin = Builtin {
    group: Group::History,
    signature: Signature {
        name: "days_since",
        params: TIME,
        variadic: false,
        returns: Returns::Type(Type::Number),
        needs: &[Needs::Clock],
        takes_null: false,
        doc: "Whole 24-hour days from `time` to now, rounded toward zero (negative for a future time).",
        example: "days_since(last(order_paid).at)",
        example_result: "1",
    },
    eval: days_since,
};

pub(crate) const HOURS_SINCE: Builtin = Builtin {
    group: Group::History,
    signature: Signature {
        name: "hours_since",
        params: TIME,
        variadic: false,
        returns: Returns::Type(Type::Number),
        needs: &[Needs::Clock],
        takes_null: false,
        doc: "Whole hours from `time` to now, rounded toward zero (negative for a future time).",
        example: "hours_since(timestamp(\"2025-11-10T09:30:00Z\"))",
        example_result: "2",
    },
    eval: hours_since,
};

fn event_name(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn window(function: &str, value: &Value) -> Result<i64, EvalError> {
    match value {
        Value::Duration(seconds) if *seconds >= 0 => Ok(*seconds),
        other => Err(EvalError(format!(
            "{function}: within must be a duration that is not negative, like 30d, got {}",
            args::describe(other)
        ))),
    }
}

fn count(ctx: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    let within = args.get(1).map(|w| window("count", w)).transpose()?;
    Ok(Value::Number(Decimal::from(
        ctx.count(event_name(args::nth(args, 0)), within),
    )))
}

fn sum(ctx: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    let Some((event, field)) = args::nth(args, 0).as_str().and_then(split_event_field) else {
        return Err(EvalError(format!(
            "sum: the first argument must be an event property like order_paid.amount, got {}",
            args::describe(args::nth(args, 0))
        )));
    };
    let within = window("sum", args::nth(args, 1))?;
    Ok(Value::Number(ctx.sum(event, field, within)))
}

fn last(ctx: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    Ok(ctx.last(event_name(args::nth(args, 0))))
}

fn first(ctx: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    Ok(ctx.first(event_name(args::nth(args, 0))))
}

fn since(
    function: &str,
    ctx: &dyn Context,
    args: &[&Value],
    unit_seconds: i64,
) -> Result<Value, EvalError> {
    let time = args::timestamp(function, "time", args::nth(args, 0))?;
    let elapsed = ctx.now().signed_duration_since(time).num_seconds();
    Ok(Value::Number(Decimal::from(elapsed / unit_seconds)))
}

fn days_since(ctx: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    since("days_since", ctx, args, 86_400)
}

fn hours_since(ctx: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    since("hours_since", ctx, args, 3_600)
}
