//! Number built-ins: exact decimals throughout.

mod common;

use common::*;
use waymark_dsl::value::Value;

#[test]
fn round_half_away_from_zero() {
    let ctx = ctx();
    assert_eq!(run(&ctx, "round", &[num("2.5")]), num("3"));
    assert_eq!(run(&ctx, "round", &[num("-2.5")]), num("-3"));
    assert_eq!(run(&ctx, "round", &[num("0.5")]), num("1"));
    assert_eq!(run(&ctx, "round", &[num("19.445"), num("2")]), num("19.45"));
    assert_eq!(run(&ctx, "round", &[num("19.456"), num("2")]), num("19.46"));
}

#[test]
fn round_is_exact_on_decimals() {
    // 1.005 is not exactly representable in binary floating point.
    assert_eq!(run(&ctx(), "round", &[num("1.005"), num("2")]), num("1.01"));
}

#[test]
fn round_to_zero_places_by_default() {
    assert_eq!(run(&ctx(), "round", &[num("19.4")]), num("19"));
}

#[test]
fn round_negative_to_zero_has_no_minus() {
    let zero = run(&ctx(), "round", &[num("-0.4")]);
    assert_eq!(zero, num("0"));
    assert_eq!(zero.to_text(), "0");
}

#[test]
fn round_places_must_be_whole_and_in_range() {
    let ctx = ctx();
    assert_eq!(
        error(&ctx, "round", &[num("1"), num("2.5")]),
        "round: places must be a whole number between 0 and 28, got 2.5"
    );
    assert!(error(&ctx, "round", &[num("1"), num("-1")]).starts_with("round: places"));
    assert!(error(&ctx, "round", &[num("1"), num("29")]).starts_with("round: places"));
    assert_eq!(run(&ctx, "round", &[num("1.5"), num("28")]), num("1.5"));
}

#[test]
fn floor_and_ceil_go_down_and_up() {
    let ctx = ctx();
    assert_eq!(run(&ctx, "floor", &[num("19.9")]), num("19"));
    assert_eq!(run(&ctx, "floor", &[num("-2.5")]), num("-3"));
    assert_eq!(run(&ctx, "ceil", &[num("19.1")]), num("20"));
    assert_eq!(run(&ctx, "ceil", &[num("-2.5")]), num("-2"));
    assert_eq!(run(&ctx, "ceil", &[num("-0.5")]).to_text(), "0");
}

#[test]
fn abs_drops_the_sign() {
    assert_eq!(run(&ctx(), "abs", &[num("-5.5")]), num("5.5"));
    assert_eq!(run(&ctx(), "abs", &[num("3")]), num("3"));
}

#[test]
fn min_and_max_pick_among_numbers() {
    let args = [num("3"), num("1.5"), num("2")];
    assert_eq!(run(&ctx(), "min", &args), num("1.5"));
    assert_eq!(run(&ctx(), "max", &args), num("3"));
    assert_eq!(run(&ctx(), "max", &[num("7")]), num("7"));
}

#[test]
fn min_and_max_pick_among_timestamps_and_durations() {
    let (early, late) = (ts("2025-11-01T00:00:00Z"), ts("2025-11-02T00:00:00Z"));
    assert_eq!(run(&ctx(), "min", &[late.clone(), early.clone()]), early);
    assert_eq!(run(&ctx(), "max", &[early, late.clone()]), late);
    assert_eq!(
        run(&ctx(), "max", &[Value::Duration(60), Value::Duration(3600)]),
        Value::Duration(3600)
    );
}

#[test]
fn min_of_mixed_kinds_is_an_error() {
    assert_eq!(
        error(&ctx(), "min", &[num("1"), s("2")]),
        "min: arguments must all be numbers, all timestamps, all dates or all durations, got 1 and the string \"2\""
    );
    assert!(error(&ctx(), "max", &[s("a")]).starts_with("max: arguments must be numbers"));
}
