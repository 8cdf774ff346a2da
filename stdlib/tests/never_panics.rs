//! Property: no built-in panics, whatever values and however many
//! arguments it is given — bad input is an `EvalError`, never a crash.

mod common;

use chrono::{DateTime, NaiveDate, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use waymark_dsl::value::Value;
use waymark_stdlib::{BUILTINS, call};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (any::<i64>(), 0u32..=28).prop_map(|(m, scale)| Value::Number(Decimal::new(m, scale))),
        Just(Value::Number(Decimal::MAX)),
        Just(Value::Number(Decimal::MIN)),
        prop_oneof![
            Just("order_paid".to_string()),
            Just("order_paid.amount".to_string()),
            Just("2025-02-29".to_string()),
            Just("2024-02-29".to_string()),
            Just("Asia/Shanghai".to_string()),
            Just("+275760-09-13T00:00:00Z".to_string()),
            Just("262142-12-31".to_string()),
            Just("-262143-01-01".to_string()),
            Just("2025-11-10T20:00:00+08:00".to_string()),
            ".{0,12}",
        ]
        .prop_map(Value::String),
        (-8_000_000_000_000i64..8_000_000_000_000).prop_map(|s| Value::Timestamp(
            DateTime::<Utc>::from_timestamp(s, 0).unwrap_or_default()
        )),
        Just(Value::Timestamp(DateTime::<Utc>::MAX_UTC)),
        Just(Value::Timestamp(DateTime::<Utc>::MIN_UTC)),
        Just(Value::Date(NaiveDate::MAX)),
        Just(Value::Date(NaiveDate::MIN)),
        any::<i64>().prop_map(Value::Duration),
        any::<u32>().prop_map(Value::TimeOfDay),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                .prop_map(|m: BTreeMap<_, _>| Value::Record(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_builtin_panics(index in 0..BUILTINS.len(), args in prop::collection::vec(value(), 0..4)) {
        let ctx = common::ctx();
        let args = common::refs(&args);
        let _ = call(BUILTINS[index].signature.name, &ctx, &args);
        // Implementations reached directly, without `call`'s checks, must not panic either.
        let _ = (BUILTINS[index].eval)(&ctx, &args);
    }
}
