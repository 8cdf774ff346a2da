//! Text built-ins: length, case, searching and formatting money. Lengths
//! count Unicode characters (`len("会员日")` is 3), not bytes; `contains`
//! also tests list membership, since tags and items are lists.

use crate::args::{self, nth};
use crate::{Builtin, Context, EvalError, Group};
use rust_decimal::{Decimal, RoundingStrategy};
use waymark_dsl::library::{Param, ParamKind, Returns, Signature};
use waymark_dsl::types::Type;
use waymark_dsl::value::Value;

const TEXT: &[Param] = &[Param {
    name: "text",
    kind: ParamKind::Value(Type::String),
    optional: false,
}];

pub(crate) const LEN: Builtin = Builtin {
    group: Group::Text,
    signature: Signature {
        name: "len",
        params: &[Param {
            name: "value",
            kind: ParamKind::Value(Type::Any),
            optional: false,
        }],
        variadic: false,
        returns: Returns::Type(Type::Number),
        needs: &[],
        takes_null: false,
        doc: "The number of characters of a string, items of a list or keys of a record.",
        example: "len(\"会员日\")",
        example_result: "3",
    },
    eval: len,
};

pub(crate) const LOWER: Builtin = Builtin {
    group: Group::Text,
    signature: Signature {
        name: "lower",
        params: TEXT,
        variadic: false,
        returns: Returns::Type(Type::String),
        needs: &[],
        takes_null: false,
        doc: "The string in lower case.",
        example: "lower(\"VIP Gold\")",
        example_result: "\"vip gold\"",
    },
    eval: lower,
};

pub(crate) const UPPER: Builtin = Builtin {
    group: Group::Text,
    signature: Signature {
        name: "upper",
        params: TEXT,
        variadic: false,
        returns: Returns::Type(Type::String),
        needs: &[],
        takes_null: false,
        doc: "The string in upper case.",
        example: "upper(\"cart10\")",
        example_result: "\"CART10\"",
    },
    eval: upper,
};

pub(crate) const CONTAINS: Builtin = Builtin {
    group: Group::Text,
    signature: Signature {
        name: "contains",
        params: &[
            Param {
                name: "haystack",
                kind: ParamKind::Value(Type::Any),
                optional: false,
            },
            Param {
                name: "needle",
                kind: ParamKind::Value(Type::Any),
                optional: false,
            },
        ],
        variadic: false,
        returns: Returns::Type(Type::Bool),
        needs: &[],
        takes_null: false,
        doc: "Whether a string contains a substring, or a list contains an item equal to `needle`.",
        example: "contains(\"春季大促\", \"大促\")",
        example_result: "true",
    },
    eval: contains,
};

pub(crate) const STARTS_WITH: Builtin = Builtin {
    group: Group::Text,
    signature: Signature {
        name: "starts_with",
        params: &[
            Param {
                name: "text",
                kind: ParamKind::Value(Type::String),
                optional: false,
            },
            Param {
                name: "prefix",
                kind: ParamKind::Value(Type::String),
                optional: false,
            },
        ],
        variadic: false,
        returns: Returns::Type(Type::Bool),
        needs: &[],
        takes_null: false,
        doc: "Whether the string begins with `prefix`.",
        example: "starts_with(\"CART10\", \"CART\")",
        example_result: "true",
    },
    eval: starts_with,
};

pub(crate) const FORMAT_MONEY: Builtin = Builtin {
    group: Group::Text,
    signature: Signature {
        name: "format_money",
        params: &[Param {
            name: "amount",
            kind: ParamKind::Value(Type::Number),
            optional: false,
        }],
        variadic: false,
        returns: Returns::Type(Type::String),
        needs: &[],
        takes_null: false,
        doc: "Yuan with two decimals (rounded half away from zero) and thousands separators; negative as `-¥5.00`.",
        example: "format_money(1234.5)",
        example_result: "\"¥1,234.50\"",
    },
    eval: format_money,
};

fn len(_: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    let n = match nth(args, 0) {
        Value::String(s) => s.chars().count(),
        Value::List(items) => items.len(),
        Value::Record(map) => map.len(),
        other => {
            return Err(EvalError(format!(
                "len: value must be a string, a list or a record, got {}",
                args::describe(other)
            )));
        }
    };
    Ok(Value::Number(Decimal::from(n)))
}

fn lower(_: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    Ok(Value::String(
        args::string("lower", "text", nth(args, 0))?.to_lowercase(),
    ))
}

fn upper(_: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    Ok(Value::String(
        args::string("upper", "text", nth(args, 0))?.to_uppercase(),
    ))
}

fn contains(_: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    let needle = nth(args, 1);
    match nth(args, 0) {
        Value::String(haystack) => {
            let needle = args::string("contains", "needle (to look for in a string)", needle)?;
            Ok(Value::Bool(haystack.contains(needle)))
        }
        Value::List(items) => Ok(Value::Bool(items.contains(needle))),
        other => Err(EvalError(format!(
            "contains: haystack must be a string or a list, got {}",
            args::describe(other)
        ))),
    }
}

fn starts_with(_: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    let text = args::string("starts_with", "text", nth(args, 0))?;
    let prefix = args::string("starts_with", "prefix", nth(args, 1))?;
    Ok(Value::Bool(text.starts_with(prefix)))
}

fn format_money(_: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    let amount = args::number("format_money", "amount", nth(args, 0))?;
    Ok(Value::String(money(amount)))
}

/// `¥1,234.50`: two decimals rounded half away from zero, commas between
/// thousands, the minus sign before the currency sign.
pub(crate) fn money(amount: Decimal) -> String {
    let mut rounded = amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    let negative = rounded.is_sign_negative() && !rounded.is_zero();
    let digits = rounded.abs().to_string();
    let (whole, cents) = digits.split_once('.').unwrap_or((&digits, ""));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{}¥{grouped}.{cents:0<2}", if negative { "-" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::money;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    fn m(text: &str) -> String {
        money(Decimal::from_str(text).unwrap())
    }

    #[test]
    fn money_pads_and_groups() {
        assert_eq!(m("0.5"), "¥0.50");
        assert_eq!(m("12"), "¥12.00");
        assert_eq!(m("1000"), "¥1,000.00");
        assert_eq!(m("12345.678"), "¥12,345.68");
        assert_eq!(m("-1000000"), "-¥1,000,000.00");
    }
}
