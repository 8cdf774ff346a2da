//! Miscellaneous built-ins: `coalesce` (the one function here that takes
//! `null` on purpose), the user's tags, and calendar days between two
//! dates or timestamps.

use crate::args::{self, nth};
use crate::{Builtin, Context, EvalError, Group};
use rust_decimal::Decimal;
use waymark_dsl::library::{Needs, Param, ParamKind, Returns, Signature};
use waymark_dsl::types::Type;
use waymark_dsl::value::Value;

pub(crate) const COALESCE: Builtin = Builtin {
    group: Group::Misc,
    signature: Signature {
        name: "coalesce",
        params: &[
            Param {
                name: "a",
                kind: ParamKind::Value(Type::Any),
                optional: false,
            },
            Param {
                name: "b",
                kind: ParamKind::Value(Type::Any),
                optional: false,
            },
        ],
        variadic: true,
        returns: Returns::LikeArguments,
        needs: &[],
        takes_null: true,
        doc: "The first argument that is not null, or null if all are.",
        example: "coalesce(user.city, \"上海\")",
        example_result: "\"上海\"",
    },
    eval: coalesce,
};

pub(crate) const HAS_TAG: Builtin = Builtin {
    group: Group::Misc,
    signature: Signature {
        name: "has_tag",
        params: &[Param {
            name: "tag",
            kind: ParamKind::Value(Type::String),
            optional: false,
        }],
        variadic: false,
        returns: Returns::Type(Type::Bool),
        needs: &[Needs::User],
        takes_null: false,
        doc: "Whether the user has the tag (is in `user.tags`).",
        example: "has_tag(\"vip\")",
        example_result: "true",
    },
    eval: has_tag,
};

pub(crate) const DAYS_BETWEEN: Builtin = Builtin {
    group: Group::Misc,
    signature: Signature {
        name: "days_between",
        params: &[
            // `Any`: a date or a timestamp (the checker has no union type).
            Param {
                name: "from",
                kind: ParamKind::Value(Type::Any),
                optional: false,
            },
            Param {
                name: "to",
                kind: ParamKind::Value(Type::Any),
                optional: false,
            },
        ],
        variadic: false,
        returns: Returns::Type(Type::Number),
        needs: &[Needs::TimeZone],
        takes_null: false,
        doc: "Calendar days from `from` to `to` (negative if `to` is earlier); timestamps count by their local date.",
        example: "days_between(user.created_at, now)",
        example_result: "299",
    },
    eval: days_between,
};

fn coalesce(_: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    Ok(args
        .iter()
        .find(|v| !v.is_null())
        .map_or(Value::Null, |v| (*v).clone()))
}

fn has_tag(ctx: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    let tag = args::string("has_tag", "tag", nth(args, 0))?;
    let has = match ctx.user().field("tags") {
        Value::List(tags) => tags.iter().any(|t| t.as_str() == Some(tag)),
        _ => false,
    };
    Ok(Value::Bool(has))
}

fn days_between(ctx: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    let tz = ctx.time_zone();
    let from = args::local_date("days_between", "from", nth(args, 0), tz)?;
    let to = args::local_date("days_between", "to", nth(args, 1), tz)?;
    Ok(Value::Number(Decimal::from(
        to.signed_duration_since(from).num_days(),
    )))
}
