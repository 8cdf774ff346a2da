//! What `call` does around every built-in: the null rule, arity and
//! argument-kind errors, and the checker's view of the table.

mod common;

use common::*;
use waymark_dsl::library::FunctionTable;
use waymark_dsl::value::Value;
use waymark_stdlib::{BUILTINS, stdlib};

#[test]
fn null_argument_gives_null() {
    let ctx = ctx();
    assert_eq!(run(&ctx, "round", &[Value::Null]), Value::Null);
    assert_eq!(run(&ctx, "upper", &[Value::Null]), Value::Null);
    assert_eq!(run(&ctx, "days_since", &[Value::Null]), Value::Null);
    assert_eq!(run(&ctx, "max", &[num("1"), Value::Null]), Value::Null);
    assert_eq!(
        run(&ctx, "contains", &[list(&[Value::Null]), Value::Null]),
        Value::Null
    );
}

#[test]
fn every_function_but_coalesce_passes_null_through() {
    let ctx = ctx();
    for row in BUILTINS.iter().filter(|b| !b.signature.takes_null) {
        let args = vec![Value::Null; row.signature.min_args().max(1)];
        assert_eq!(
            run(&ctx, row.signature.name, &args),
            Value::Null,
            "{}",
            row.signature.name
        );
    }
}

#[test]
fn wrong_arity_is_an_error_naming_the_function() {
    let ctx = ctx();
    assert_eq!(
        error(&ctx, "round", &[]),
        "round: takes 1 to 2 arguments, got 0 (round(number, places?))"
    );
    assert_eq!(
        error(&ctx, "abs", &[num("1"), num("2")]),
        "abs: takes 1 argument, got 2 (abs(number))"
    );
    assert_eq!(
        error(&ctx, "min", &[]),
        "min: takes at least 1 argument, got 0 (min(value…))"
    );
    assert_eq!(
        error(&ctx, "coalesce", &[num("1")]),
        "coalesce: takes at least 2 arguments, got 1 (coalesce(a, b…))"
    );
}

#[test]
fn wrong_argument_kind_is_an_error_naming_the_parameter() {
    let ctx = ctx();
    assert_eq!(
        error(&ctx, "abs", &[s("5")]),
        "abs: number must be a number, got the string \"5\""
    );
    assert_eq!(
        error(&ctx, "count", &[num("3")]),
        "count: event must be an event name, got 3"
    );
    assert_eq!(
        error(&ctx, "sum", &[s("order_paid"), Value::Duration(60)]),
        "sum: event_property must be an event property written `event.property`, got the string \"order_paid\""
    );
    assert_eq!(
        error(&ctx, "days_since", &[Value::Bool(true)]),
        "days_since: time must be a timestamp (or an RFC 3339 string), got true"
    );
}

#[test]
fn unknown_function_is_an_error() {
    assert_eq!(
        error(&ctx(), "frobnicate", &[]),
        "there is no function named `frobnicate`"
    );
}

#[test]
fn checker_sees_every_row_through_the_function_table() {
    let table = stdlib();
    assert_eq!(table.names().len(), BUILTINS.len());
    for name in table.names() {
        assert_eq!(table.lookup(name).map(|s| s.name), Some(name));
    }
    assert!(table.lookup("nope").is_none());
}

#[test]
fn needs_say_what_each_function_reads() {
    use waymark_dsl::library::Needs;
    let needs = |name: &str| stdlib().lookup(name).unwrap().needs.to_vec();
    assert!(needs("count").contains(&Needs::History) && needs("count").contains(&Needs::Clock));
    assert!(needs("days_since").contains(&Needs::Clock));
    assert!(needs("has_tag").contains(&Needs::User));
    assert!(
        needs("is_birthday").contains(&Needs::Clock)
            && needs("is_birthday").contains(&Needs::TimeZone)
    );
    assert!(needs("round").is_empty());
}
