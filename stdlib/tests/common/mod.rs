//! Helpers shared by the behaviour tests: a context to adjust, value
//! constructors and one-line calls.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::str::FromStr;
use waymark_dsl::value::Value;
use waymark_stdlib::{Context, FixedContext, call};

pub fn ctx() -> FixedContext {
    FixedContext::example()
}

/// The example context with the clock at `now` (RFC 3339) and zone `tz`.
pub fn at(now: &str, tz: &str) -> FixedContext {
    let mut ctx = FixedContext::example();
    ctx.now = instant(now);
    ctx.time_zone = tz.parse().unwrap();
    ctx
}

pub fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

pub fn ts(text: &str) -> Value {
    Value::Timestamp(instant(text))
}

pub fn num(text: &str) -> Value {
    Value::Number(Decimal::from_str(text).unwrap())
}

pub fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

pub fn list(items: &[Value]) -> Value {
    Value::List(items.to_vec())
}

/// `args` as [`call`] takes them.
pub fn refs(args: &[Value]) -> Vec<&Value> {
    args.iter().collect()
}

pub fn run(ctx: &dyn Context, name: &str, args: &[Value]) -> Value {
    call(name, ctx, &refs(args)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The message of the error `name(args)` must give.
pub fn error(ctx: &dyn Context, name: &str, args: &[Value]) -> String {
    match call(name, ctx, &refs(args)) {
        Ok(v) => panic!("{name} should fail, gave {v:?}"),
        Err(e) => e.to_string(),
    }
}
