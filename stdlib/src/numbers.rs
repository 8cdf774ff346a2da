//! Number built-ins, all in exact decimal arithmetic: `min` and `max` over
//! numbers, timestamps, dates or durations, `abs`, and rounding. `round`
//! rounds half away from zero (`round(2.5)` is 3, `round(-2.5)` is -3), the
//! way prices are rounded, not banker's rounding.

use crate::args::{self, nth};
use crate::{Builtin, Context, EvalError, Group};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use std::cmp::Ordering;
use waymark_dsl::library::{Param, ParamKind, Returns, Signature};
use waymark_dsl::types::Type;
use waymark_dsl::value::Value;

const VALUES: &[Param] = &[Param {
    name: "value",
    kind: ParamKind::Value(Type::Any),
    optional: false,
}];
const NUMBER: &[Param] = &[Param {
    name: "number",
    kind: ParamKind::Value(Type::Number),
    optional: false,
}];

/// The most decimal places a number can have.
const MAX_PLACES: u32 = 28;

pub(crate) const MIN: Builtin = Builtin {
    group: Group::Numbers,
    signature: Signature {
        name: "min",
        params: VALUES,
        variadic: true,
        returns: Returns::LikeArguments,
        needs: &[],
        takes_null: false,
        doc: "The smallest argument; all numbers, all timestamps, all dates or all durations.",
        example: "min(3, 1.5, 2)",
        example_result: "1.5",
    },
    eval: min,
};

pub(crate) const MAX: Builtin = Builtin {
    group: Group::Numbers,
    signature: Signature {
        name: "max",
        params: VALUES,
        variadic: true,
        returns: Returns::LikeArguments,
        needs: &[],
        takes_null: false,
        doc: "The largest argument; all numbers, all timestamps, all dates or all durations.",
        example: "max(1d, 36h)",
        example_result: "1d12h",
    },
    eval: max,
};

pub(crate) const ABS: Builtin = Builtin {
    group: Group::Numbers,
    signature: Signature {
        name: "abs",
        params: NUMBER,
        variadic: false,
        returns: Returns::Type(Type::Number),
        needs: &[],
        takes_null: false,
        doc: "The number without its sign.",
        example: "abs(-5.5)",
        example_result: "5.5",
    },
    eval: abs,
};

pub(crate) const ROUND: Builtin = Builtin {
    group: Group::Numbers,
    signature: Signature {
        name: "round",
        params: &[
            NUMBER[0],
            Param {
                name: "places",
                kind: ParamKind::Value(Type::Number),
                optional: true,
            },
        ],
        variadic: false,
        returns: Returns::Type(Type::Number),
        needs: &[],
        takes_null: false,
        doc: "The number rounded to `places` decimals (0 to 28, default 0), halves away from zero.",
        example: "round(19.445, 2)",
        example_result: "19.45",
    },
    eval: round,
};

pub(crate) const FLOOR: Builtin = Builtin {
    group: Group::Numbers,
    signature: Signature {
        name: "floor",
        params: NUMBER,
        variadic: false,
        returns: Returns::Type(Type::Number),
        needs: &[],
        takes_null: false,
        doc: "The largest whole number not above the number.",
        example: "floor(-2.5)",
        example_result: "-3",
    },
    eval: floor,
};

pub(crate) const CEIL: Builtin = Builtin {
    group: Group::Numbers,
    signature: Signature {
        name: "ceil",
        params: NUMBER,
        variadic: false,
        returns: Returns::Type(Type::Number),
        needs: &[],
        takes_null: false,
        doc: "The smallest whole number not below the number.",
        example: "ceil(19.1)",
        example_result: "20",
    },
    eval: ceil,
};

/// The argument that wins `better` against all others, all of one kind.
fn extreme(function: &str, args: &[&Value], better: Ordering) -> Result<Value, EvalError> {
    let Some(first) = args.first() else {
        return Err(EvalError(format!(
            "{function}: takes at least 1 argument, got 0"
        )));
    };
    let mut best = first;
    for arg in &args[1..] {
        let order = match (arg, best) {
            (Value::Number(a), Value::Number(b)) => a.cmp(b),
            (Value::Timestamp(a), Value::Timestamp(b)) => a.cmp(b),
            (Value::Date(a), Value::Date(b)) => a.cmp(b),
            (Value::Duration(a), Value::Duration(b)) => a.cmp(b),
            _ => {
                return Err(EvalError(format!(
                    "{function}: arguments must all be numbers, all timestamps, all dates or all durations, got {} and {}",
                    args::describe(first),
                    args::describe(arg)
                )));
            }
        };
        if order == better {
            best = arg;
        }
    }
    match best {
        Value::Number(_) | Value::Timestamp(_) | Value::Date(_) | Value::Duration(_) => {
            Ok((*best).clone())
        }
        other => Err(EvalError(format!(
            "{function}: arguments must be numbers, timestamps, dates or durations, got {}",
            args::describe(other)
        ))),
    }
}

fn min(_: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    extreme("min", args, Ordering::Less)
}

fn max(_: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    extreme("max", args, Ordering::Greater)
}

/// A number without the sign of a negative zero (`round(-0.4)` is 0).
fn number(n: Decimal) -> Value {
    Value::Number(if n.is_zero() { Decimal::ZERO } else { n })
}

fn abs(_: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    Ok(number(args::number("abs", "number", nth(args, 0))?.abs()))
}

fn round(_: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    let n = args::number("round", "number", nth(args, 0))?;
    let places = match args.get(1) {
        None => 0,
        Some(value) => {
            let places = value
                .as_number()
                .filter(|p| p.fract().is_zero() && *p >= Decimal::ZERO);
            match places.and_then(|p| p.to_u32()) {
                Some(p) if p <= MAX_PLACES => p,
                _ => {
                    return Err(EvalError(format!(
                        "round: places must be a whole number between 0 and {MAX_PLACES}, got {}",
                        args::describe(value)
                    )));
                }
            }
        }
    };
    Ok(number(n.round_dp_with_strategy(
        places,
        RoundingStrategy::MidpointAwayFromZero,
    )))
}

fn floor(_: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    Ok(number(
        args::number("floor", "number", nth(args, 0))?.floor(),
    ))
}

fn ceil(_: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    Ok(number(args::number("ceil", "number", nth(args, 0))?.ceil()))
}
