//! `coalesce`, `has_tag` and `days_between`.

mod common;

use common::*;
use waymark_dsl::value::Value;

#[test]
fn coalesce_skips_nulls() {
    let ctx = ctx();
    assert_eq!(
        run(&ctx, "coalesce", &[Value::Null, Value::Null, s("上海")]),
        s("上海")
    );
    assert_eq!(run(&ctx, "coalesce", &[num("0"), s("x")]), num("0"));
}

#[test]
fn coalesce_keeps_false_and_empty_values() {
    assert_eq!(
        run(&ctx(), "coalesce", &[Value::Bool(false), Value::Bool(true)]),
        Value::Bool(false)
    );
    assert_eq!(run(&ctx(), "coalesce", &[s(""), s("x")]), s(""));
}

#[test]
fn coalesce_of_only_nulls_is_null() {
    assert_eq!(
        run(&ctx(), "coalesce", &[Value::Null, Value::Null]),
        Value::Null
    );
}

#[test]
fn has_tag_reads_user_tags() {
    let ctx = ctx();
    assert_eq!(run(&ctx, "has_tag", &[s("vip")]), Value::Bool(true));
    assert_eq!(run(&ctx, "has_tag", &[s("VIP")]), Value::Bool(false));
    assert_eq!(run(&ctx, "has_tag", &[s("churned")]), Value::Bool(false));
}

#[test]
fn has_tag_without_tags_is_false() {
    let ctx = waymark_stdlib::FixedContext::new(instant("2025-11-10T12:00:00Z"), chrono_tz::UTC);
    assert_eq!(run(&ctx, "has_tag", &[s("vip")]), Value::Bool(false));
}

#[test]
fn days_between_counts_calendar_days_and_may_be_negative() {
    let ctx = ctx();
    assert_eq!(
        run(&ctx, "days_between", &[s("2025-11-01"), s("2025-11-10")]),
        num("9")
    );
    assert_eq!(
        run(&ctx, "days_between", &[s("2025-11-10"), s("2025-11-01")]),
        num("-9")
    );
    assert_eq!(
        run(&ctx, "days_between", &[s("2024-02-28"), s("2024-03-01")]),
        num("2")
    );
}

#[test]
fn days_between_timestamps_uses_local_dates() {
    // 15:00Z and 17:00Z on Nov 10 are Nov 10 23:00 and Nov 11 01:00 in Shanghai.
    let args = [ts("2025-11-10T15:00:00Z"), ts("2025-11-10T17:00:00Z")];
    assert_eq!(run(&ctx(), "days_between", &args), num("1"));
    let utc = at("2025-11-10T12:00:00Z", "UTC");
    assert_eq!(run(&utc, "days_between", &args), num("0"));
}

#[test]
fn days_between_mixes_dates_and_timestamps() {
    let args = [s("2025-11-01"), ts("2025-11-10T20:00:00Z")];
    assert_eq!(run(&ctx(), "days_between", &args), num("10"));
}

#[test]
fn days_between_non_dates_is_an_error() {
    assert!(
        error(&ctx(), "days_between", &[num("1"), s("2025-11-01")])
            .starts_with("days_between: from must be a date")
    );
}
