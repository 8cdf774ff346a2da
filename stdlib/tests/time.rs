//! Time built-ins: local dates, hours and weekdays where the local date
//! differs from the UTC date, birthdays, and parsing timestamps.

mod common;

use chrono::NaiveDate;
use common::*;
use waymark_dsl::value::Value;

fn day(y: i32, m: u32, d: u32) -> Value {
    Value::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap())
}

#[test]
fn date_is_the_local_date_in_the_zone_in_force() {
    // 20:30 UTC on Nov 10 is 04:30 on Nov 11 in Shanghai.
    assert_eq!(
        run(&ctx(), "date", &[ts("2025-11-10T20:30:00Z")]),
        day(2025, 11, 11)
    );
}

#[test]
fn date_with_explicit_zone_overrides_the_zone_in_force() {
    // 02:00 UTC on Nov 10 is still Nov 9 in New York.
    let args = [ts("2025-11-10T02:00:00Z"), s("America/New_York")];
    assert_eq!(run(&ctx(), "date", &args), day(2025, 11, 9));
}

#[test]
fn hour_is_local() {
    let ctx = ctx();
    assert_eq!(run(&ctx, "hour", &[ts("2025-11-10T20:30:00Z")]), num("4"));
    assert_eq!(
        run(&ctx, "hour", &[ts("2025-11-10T20:30:00Z"), s("UTC")]),
        num("20")
    );
}

#[test]
fn weekday_is_iso_monday_one() {
    let ctx = ctx();
    // 2025-11-10 is a Monday, 2025-11-16 a Sunday.
    assert_eq!(
        run(&ctx, "weekday", &[ts("2025-11-10T12:00:00+08:00")]),
        num("1")
    );
    assert_eq!(
        run(&ctx, "weekday", &[ts("2025-11-16T12:00:00+08:00")]),
        num("7")
    );
}

#[test]
fn weekday_follows_the_local_date_not_the_utc_date() {
    // Sunday 20:00 UTC is Monday 04:00 in Shanghai.
    let sunday_evening = ts("2025-11-09T20:00:00Z");
    assert_eq!(
        run(&ctx(), "weekday", std::slice::from_ref(&sunday_evening)),
        num("1")
    );
    assert_eq!(
        run(&ctx(), "weekday", &[sunday_evening, s("UTC")]),
        num("7")
    );
}

#[test]
fn unknown_time_zone_is_an_error() {
    assert_eq!(
        error(
            &ctx(),
            "hour",
            &[ts("2025-11-10T20:30:00Z"), s("Mars/Olympus")]
        ),
        "hour: tz must be a time zone name like \"Asia/Shanghai\", got the string \"Mars/Olympus\""
    );
}

#[test]
fn is_birthday_compares_month_and_day_with_local_today() {
    let ctx = ctx();
    assert_eq!(
        run(&ctx, "is_birthday", &[s("1990-11-10")]),
        Value::Bool(true)
    );
    assert_eq!(
        run(&ctx, "is_birthday", &[day(1985, 11, 10)]),
        Value::Bool(true)
    );
    assert_eq!(
        run(&ctx, "is_birthday", &[s("1990-11-11")]),
        Value::Bool(false)
    );
}

#[test]
fn is_birthday_uses_the_local_today_when_utc_is_still_yesterday() {
    // 2025-11-10T18:00Z is Nov 11 02:00 in Shanghai but Nov 10 in UTC.
    let ctx = at("2025-11-10T18:00:00Z", "Asia/Shanghai");
    assert_eq!(
        run(&ctx, "is_birthday", &[s("1990-11-11")]),
        Value::Bool(true)
    );
    assert_eq!(
        run(&ctx, "is_birthday", &[s("1990-11-11"), s("UTC")]),
        Value::Bool(false)
    );
}

#[test]
fn is_birthday_feb29_on_feb28_in_common_years() {
    let common_year = at("2025-02-28T12:00:00Z", "UTC");
    assert_eq!(
        run(&common_year, "is_birthday", &[s("2000-02-29")]),
        Value::Bool(true)
    );
    let leap_year_28th = at("2028-02-28T12:00:00Z", "UTC");
    assert_eq!(
        run(&leap_year_28th, "is_birthday", &[s("2000-02-29")]),
        Value::Bool(false)
    );
    let leap_year_29th = at("2028-02-29T12:00:00Z", "UTC");
    assert_eq!(
        run(&leap_year_29th, "is_birthday", &[s("2000-02-29")]),
        Value::Bool(true)
    );
    let march_first = at("2025-03-01T12:00:00Z", "UTC");
    assert_eq!(
        run(&march_first, "is_birthday", &[s("2000-02-29")]),
        Value::Bool(false)
    );
}

#[test]
fn is_birthday_reads_a_timestamp_as_its_local_date() {
    // Born 1990-11-09T20:00Z = Nov 10 04:00 in Shanghai.
    assert_eq!(
        run(&ctx(), "is_birthday", &[s("1990-11-09T20:00:00Z")]),
        Value::Bool(true)
    );
}

#[test]
fn is_birthday_of_text_that_is_not_a_date_is_an_error() {
    assert!(
        error(&ctx(), "is_birthday", &[s("Nov 10")])
            .starts_with("is_birthday: birthday must be a date")
    );
}

#[test]
fn timestamp_parses_rfc3339() {
    assert_eq!(
        run(&ctx(), "timestamp", &[s("2025-11-10T20:00:00+08:00")]),
        ts("2025-11-10T12:00:00Z")
    );
}

#[test]
fn timestamp_of_a_date_is_local_midnight() {
    assert_eq!(
        run(&ctx(), "timestamp", &[s("2025-11-10")]),
        ts("2025-11-09T16:00:00Z")
    );
    let utc = at("2025-11-10T12:00:00Z", "UTC");
    assert_eq!(
        run(&utc, "timestamp", &[s("2025-11-10")]),
        ts("2025-11-10T00:00:00Z")
    );
}

#[test]
fn timestamp_of_a_date_whose_midnight_is_skipped_is_the_first_local_moment() {
    // Santiago moved clocks from 00:00 to 01:00 on 2024-09-08.
    let santiago = at("2024-09-08T12:00:00Z", "America/Santiago");
    assert_eq!(
        run(&santiago, "timestamp", &[s("2024-09-08")]),
        ts("2024-09-08T04:00:00Z")
    );
}

#[test]
fn timestamp_of_other_text_is_an_error() {
    assert!(
        error(&ctx(), "timestamp", &[s("tomorrow")])
            .starts_with("timestamp: text must be RFC 3339")
    );
    assert!(
        error(&ctx(), "timestamp", &[s("2025-02-30")])
            .starts_with("timestamp: text must be RFC 3339")
    );
}
