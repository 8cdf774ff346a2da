//! Behaviour of cron schedules and time-zone names (dsl::schedule).

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use proptest::prelude::*;
use std::collections::BTreeSet;
use waymark_dsl::schedule::{CronError, CronSchedule, MACROS, parse_time_zone};

const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;
const NEW_YORK: Tz = chrono_tz::America::New_York;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn sched(text: &str) -> CronSchedule {
    CronSchedule::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e:?}"))
}

fn err(text: &str) -> CronError {
    CronSchedule::parse(text).expect_err(text)
}

/// Local fire times in `tz`, as naive date-times.
fn local_fires(text: &str, after: DateTime<Utc>, tz: Tz, n: usize) -> Vec<NaiveDateTime> {
    sched(text)
        .upcoming(after, tz, n)
        .into_iter()
        .map(|t| t.with_timezone(&tz).naive_local())
        .collect()
}

/// The distinct weekdays among four weeks of fires from 2025-01-01, Monday first.
fn weekdays(text: &str) -> Vec<Weekday> {
    let fires = local_fires(text, utc(2025, 1, 1, 0, 0), SHANGHAI, 28);
    assert!(
        fires.iter().all(|t| t.hour() == 9 && t.minute() == 0),
        "{text}: {fires:?}"
    );
    set(&fires.iter().map(|t| t.weekday()).collect::<Vec<_>>())
}

fn set(days: &[Weekday]) -> Vec<Weekday> {
    let mut days = days.to_vec();
    days.sort_by_key(Weekday::num_days_from_monday);
    days.dedup();
    days
}

// ---------------------------------------------------------------- weekdays

#[test]
fn crontab_weekday_numbers_fire_on_the_right_calendar_dates() {
    // 2025-01-01 is a Wednesday.
    let expected = [
        (0, "2025-01-05", Weekday::Sun),
        (1, "2025-01-06", Weekday::Mon),
        (2, "2025-01-07", Weekday::Tue),
        (3, "2025-01-01", Weekday::Wed),
        (4, "2025-01-02", Weekday::Thu),
        (5, "2025-01-03", Weekday::Fri),
        (6, "2025-01-04", Weekday::Sat),
        (7, "2025-01-05", Weekday::Sun),
    ];
    for (n, date, weekday) in expected {
        let fires = local_fires(&format!("0 9 * * {n}"), utc(2025, 1, 1, 0, 0), SHANGHAI, 3);
        let first = NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        assert_eq!(
            fires,
            vec![first, first + Duration::days(7), first + Duration::days(14)],
            "day-of-week {n}"
        );
        assert!(fires.iter().all(|t| t.weekday() == weekday));
    }
}

#[test]
fn zero_and_seven_are_both_sunday() {
    assert_eq!(weekdays("0 9 * * 0"), set(&[Weekday::Sun]));
    assert_eq!(weekdays("0 9 * * 7"), set(&[Weekday::Sun]));
    assert_eq!(weekdays("0 9 * * sun"), set(&[Weekday::Sun]));
}

#[test]
fn one_to_five_is_monday_to_friday() {
    let days = set(&[
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ]);
    assert_eq!(weekdays("0 9 * * 1-5"), days);
    assert_eq!(weekdays("0 9 * * MON-FRI"), days);
}

#[test]
fn ranges_crossing_the_week_end_are_friday_saturday_sunday() {
    let weekend = set(&[Weekday::Fri, Weekday::Sat, Weekday::Sun]);
    assert_eq!(weekdays("0 9 * * 5-7"), weekend);
    assert_eq!(weekdays("0 9 * * FRI-SUN"), weekend);
    assert_eq!(weekdays("0 9 * * fri-sun"), weekend);
    assert_eq!(weekdays("0 9 * * 5-0"), weekend);
    assert_eq!(
        weekdays("0 9 * * SAT-MON"),
        set(&[Weekday::Sat, Weekday::Sun, Weekday::Mon])
    );
}

#[test]
fn every_second_weekday_starts_on_sunday() {
    assert_eq!(
        weekdays("0 9 * * */2"),
        set(&[Weekday::Sun, Weekday::Tue, Weekday::Thu, Weekday::Sat])
    );
}

#[test]
fn weekday_lists_mix_numbers_and_names() {
    assert_eq!(
        weekdays("0 9 * * 1,WED,5"),
        set(&[Weekday::Mon, Weekday::Wed, Weekday::Fri])
    );
}

// ------------------------------------------------------------ the OR rule

#[test]
fn day_of_month_and_day_of_week_both_restricted_fire_on_either() {
    let start = SHANGHAI
        .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let end = SHANGHAI
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let fires: Vec<NaiveDateTime> = sched("0 9 13 * 5")
        .upcoming(start, SHANGHAI, 100)
        .into_iter()
        .filter(|t| *t < end)
        .map(|t| t.with_timezone(&SHANGHAI).naive_local())
        .collect();
    assert!(
        fires
            .iter()
            .all(|t| t.day() == 13 || t.weekday() == Weekday::Fri)
    );
    assert!(fires.iter().all(|t| t.hour() == 9 && t.minute() == 0));
    // 52 Fridays and 12 thirteenths in 2025, of which 13 June is both.
    assert_eq!(fires.len(), 52 + 12 - 1);
    let thirteenths = fires.iter().filter(|t| t.day() == 13).count();
    assert_eq!(thirteenths, 12);
    assert_eq!(
        &fires[..3],
        &local_fires("0 9 3,10,13 1 *", start, SHANGHAI, 3)[..]
    );
}

#[test]
fn a_day_field_starting_with_star_is_anded_as_in_crontab() {
    // `*/10` starts with `*`, so it is not "restricted": Mondays that are
    // the 1st, 11th, 21st or 31st.
    let fires = local_fires("0 9 */10 * 1", utc(2025, 1, 1, 0, 0), SHANGHAI, 6);
    assert!(
        fires
            .iter()
            .all(|t| t.weekday() == Weekday::Mon && [1, 11, 21, 31].contains(&t.day())),
        "{fires:?}"
    );
    assert_eq!(
        fires[0].date(),
        NaiveDate::from_ymd_opt(2025, 3, 31).unwrap()
    );
}

#[test]
fn restricted_day_of_month_with_star_day_of_week_is_the_day_of_month() {
    let fires = local_fires("0 9 1,15 * *", utc(2025, 1, 1, 0, 0), SHANGHAI, 4);
    let days: Vec<(u32, u32)> = fires.iter().map(|t| (t.month(), t.day())).collect();
    assert_eq!(days, vec![(1, 1), (1, 15), (2, 1), (2, 15)]);
}

// -------------------------------------------------------- seconds passthrough

#[test]
fn six_field_form_keeps_the_cron_crate_numbering_one_is_sunday() {
    assert_eq!(weekdays("0 0 9 * * 1"), set(&[Weekday::Sun]));
    assert_eq!(weekdays("0 0 9 * * 2"), set(&[Weekday::Mon]));
    assert_eq!(weekdays("0 0 9 * * 7"), set(&[Weekday::Sat]));
    assert_eq!(weekdays("0 0 9 * * MON-FRI").len(), 5);
    assert_eq!(weekdays("0 0 9 ? * SUN"), set(&[Weekday::Sun]));
}

#[test]
fn six_field_form_fires_on_seconds() {
    let fires = sched("*/20 0 9 * * *").upcoming(utc(2025, 1, 1, 0, 0), SHANGHAI, 4);
    let local: Vec<(u32, u32, u32)> = fires
        .iter()
        .map(|t| t.with_timezone(&SHANGHAI))
        .map(|t| (t.hour(), t.minute(), t.second()))
        .collect();
    assert_eq!(local, vec![(9, 0, 0), (9, 0, 20), (9, 0, 40), (9, 0, 0)]);
}

#[test]
fn seven_field_form_takes_a_year() {
    assert_eq!(
        sched("0 0 9 1 1 * 2027").next_after(utc(2025, 1, 1, 0, 0), SHANGHAI),
        Some(utc(2027, 1, 1, 1, 0))
    );
    assert_eq!(
        sched("0 0 9 1 1 * 2027").next_after(utc(2027, 1, 1, 1, 0), SHANGHAI),
        None
    );
}

// ------------------------------------------------------ minutes and hours

#[test]
fn steps_ranges_and_lists_in_minute_and_hour() {
    let after = SHANGHAI
        .with_ymd_and_hms(2025, 1, 1, 8, 59, 0)
        .unwrap()
        .with_timezone(&Utc);
    let hm = |text: &str, n| -> Vec<(u32, u32)> {
        local_fires(text, after, SHANGHAI, n)
            .iter()
            .map(|t| (t.hour(), t.minute()))
            .collect()
    };
    assert_eq!(
        hm("*/15 9-10 * * *", 9),
        vec![
            (9, 0),
            (9, 15),
            (9, 30),
            (9, 45),
            (10, 0),
            (10, 15),
            (10, 30),
            (10, 45),
            (9, 0)
        ]
    );
    assert_eq!(
        hm("0,30 8,20 * * *", 4),
        vec![(20, 0), (20, 30), (8, 0), (8, 30)]
    );
    assert_eq!(
        hm("10-20/5 9 * * *", 4),
        vec![(9, 10), (9, 15), (9, 20), (9, 10)]
    );
    assert_eq!(
        hm("50/4 9 * * *", 4),
        vec![(9, 50), (9, 54), (9, 58), (9, 50)]
    );
    assert_eq!(hm("0 */6 * * *", 4), vec![(12, 0), (18, 0), (0, 0), (6, 0)]);
    assert_eq!(
        hm("5 9-17/4,22 * * *", 5),
        vec![(9, 5), (13, 5), (17, 5), (22, 5), (9, 5)]
    );
}

#[test]
fn month_names_and_numbers_select_months() {
    let months = |text: &str| -> Vec<u32> {
        local_fires(text, utc(2025, 1, 1, 0, 0), SHANGHAI, 4)
            .iter()
            .map(|t| t.month())
            .collect()
    };
    assert_eq!(months("0 9 1 jan,Jun-AUG *"), vec![1, 6, 7, 8]);
    assert_eq!(months("0 9 1 */3 *"), vec![1, 4, 7, 10]);
}

// ----------------------------------------------------------------- macros

/// Written as the instants each shortcut fires at, not as crontab lines, so
/// a wrong expansion in `MACROS` shows here.
#[test]
fn macros_fire_when_their_names_say() {
    // A Wednesday, half past midnight.
    let after = utc(2025, 1, 1, 0, 30);
    let cases = [
        ("@hourly", [utc(2025, 1, 1, 1, 0), utc(2025, 1, 1, 2, 0)]),
        ("@daily", [utc(2025, 1, 2, 0, 0), utc(2025, 1, 3, 0, 0)]),
        ("@midnight", [utc(2025, 1, 2, 0, 0), utc(2025, 1, 3, 0, 0)]),
        ("@weekly", [utc(2025, 1, 5, 0, 0), utc(2025, 1, 12, 0, 0)]),
        ("@monthly", [utc(2025, 2, 1, 0, 0), utc(2025, 3, 1, 0, 0)]),
        ("@yearly", [utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0)]),
        ("@annually", [utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0)]),
    ];
    for (mac, fires) in cases {
        assert_eq!(
            sched(mac).upcoming(after, chrono_tz::UTC, 2),
            fires,
            "{mac}"
        );
        let upper = mac.to_ascii_uppercase();
        assert_eq!(
            sched(&upper).upcoming(after, chrono_tz::UTC, 2),
            fires,
            "{upper}"
        );
    }
    let covered: Vec<&str> = cases.iter().map(|(m, _)| *m).collect();
    let known: Vec<&str> = MACROS.iter().map(|(m, _)| *m).collect();
    assert_eq!(covered, known, "every shortcut has a case");
}

#[test]
fn daily_fires_at_local_midnight() {
    let fires = local_fires("@daily", utc(2025, 1, 1, 0, 0), SHANGHAI, 2);
    assert_eq!(
        fires[0],
        NaiveDate::from_ymd_opt(2025, 1, 2)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
    );
    assert_eq!(fires[1] - fires[0], Duration::days(1));
}

// ------------------------------------------------------------ time zones

#[test]
fn a_schedule_fires_in_its_time_zone() {
    let s = sched("0 9 * * *");
    assert_eq!(
        s.next_after(utc(2025, 6, 1, 0, 0), SHANGHAI),
        Some(utc(2025, 6, 1, 1, 0))
    );
    assert_eq!(
        s.next_after(utc(2025, 6, 1, 0, 0), chrono_tz::UTC),
        Some(utc(2025, 6, 1, 9, 0))
    );
    assert_eq!(
        s.next_after(utc(2025, 6, 1, 0, 0), NEW_YORK),
        Some(utc(2025, 6, 1, 13, 0))
    );
}

#[test]
fn next_after_is_strictly_after() {
    let s = sched("0 9 * * *");
    let fire = utc(2025, 6, 1, 1, 0);
    assert_eq!(
        s.next_after(fire - Duration::nanoseconds(1), SHANGHAI),
        Some(fire)
    );
    assert_eq!(s.next_after(fire, SHANGHAI), Some(fire + Duration::days(1)));
    assert_eq!(
        s.next_after(fire + Duration::milliseconds(500), SHANGHAI),
        Some(fire + Duration::days(1))
    );
    let every_second = sched("* * * * * *");
    let t = utc(2025, 6, 1, 1, 0) + Duration::milliseconds(999);
    assert_eq!(
        every_second.next_after(t, SHANGHAI),
        Some(utc(2025, 6, 1, 1, 0) + Duration::seconds(1))
    );
}

#[test]
fn upcoming_lists_consecutive_fires() {
    let fires = sched("0 9 * * 1").upcoming(utc(2025, 1, 1, 0, 0), SHANGHAI, 3);
    assert_eq!(
        fires,
        vec![
            utc(2025, 1, 6, 1, 0),
            utc(2025, 1, 13, 1, 0),
            utc(2025, 1, 20, 1, 0)
        ]
    );
    assert!(
        sched("0 9 * * 1")
            .upcoming(utc(2025, 1, 1, 0, 0), SHANGHAI, 0)
            .is_empty()
    );
}

#[test]
fn no_fire_after_the_last_year_the_cron_crate_knows() {
    assert_eq!(
        sched("0 0 1 1 *").next_after(utc(2100, 6, 1, 0, 0), chrono_tz::UTC),
        None
    );
}

// ------------------------------------------------------------ daylight saving

#[test]
fn a_time_skipped_by_spring_forward_fires_when_the_clock_jumps() {
    // America/New_York, 2025-03-09: 02:00 EST becomes 03:00 EDT.
    let fires = sched("30 2 * * *").upcoming(utc(2025, 3, 7, 0, 0), NEW_YORK, 4);
    assert_eq!(
        fires,
        vec![
            utc(2025, 3, 7, 7, 30),  // 02:30 EST
            utc(2025, 3, 8, 7, 30),  // 02:30 EST
            utc(2025, 3, 9, 7, 0),   // no 02:30: fires at 03:00 EDT
            utc(2025, 3, 10, 6, 30), // 02:30 EDT
        ]
    );
}

#[test]
fn a_time_repeated_by_fall_back_fires_once_at_its_first_occurrence() {
    // America/New_York, 2025-11-02: 02:00 EDT becomes 01:00 EST, so 01:xx
    // happens twice (02:30 does not: it happens once, in EST).
    let fires = sched("30 1 * * *").upcoming(utc(2025, 10, 31, 12, 0), NEW_YORK, 3);
    assert_eq!(
        fires,
        vec![
            utc(2025, 11, 1, 5, 30),
            utc(2025, 11, 2, 5, 30),
            utc(2025, 11, 3, 6, 30)
        ]
    );
    // Asked from inside the repeated hour, the second 01:30 is not a fire.
    assert_eq!(
        sched("30 1 * * *").next_after(utc(2025, 11, 2, 6, 10), NEW_YORK),
        Some(utc(2025, 11, 3, 6, 30))
    );
    let fires = sched("30 2 * * *").upcoming(utc(2025, 11, 1, 12, 0), NEW_YORK, 2);
    assert_eq!(
        fires,
        vec![utc(2025, 11, 2, 7, 30), utc(2025, 11, 3, 7, 30)]
    );
}

#[test]
fn skipped_times_collapse_into_one_fire_at_the_jump() {
    let fires = sched("*/30 * * * *").upcoming(utc(2025, 3, 9, 6, 0), NEW_YORK, 4);
    // 01:00 EST, 01:30 EST, then 02:00 and 02:30 (skipped) and 03:00 EDT together, 03:30 EDT.
    assert_eq!(
        fires,
        vec![
            utc(2025, 3, 9, 6, 30),
            utc(2025, 3, 9, 7, 0),
            utc(2025, 3, 9, 7, 30),
            utc(2025, 3, 9, 8, 0)
        ]
    );
    // In the repeated hour, each local half hour fires once.
    let fires = sched("*/30 * * * *").upcoming(utc(2025, 11, 2, 4, 50), NEW_YORK, 4);
    assert_eq!(
        fires,
        vec![
            utc(2025, 11, 2, 5, 0),
            utc(2025, 11, 2, 5, 30),
            utc(2025, 11, 2, 7, 0),
            utc(2025, 11, 2, 7, 30)
        ]
    );
}

#[test]
fn a_daily_schedule_fires_once_on_every_local_day_through_dst_changes() {
    for zone in [
        NEW_YORK,
        chrono_tz::Europe::London,
        chrono_tz::Australia::Sydney,
    ] {
        for text in [
            "0 0 * * *",
            "30 1 * * *",
            "0 2 * * *",
            "30 2 * * *",
            "0 3 * * *",
            "59 23 * * *",
        ] {
            let start = utc(2024, 12, 31, 0, 0);
            let days: Vec<NaiveDate> = sched(text)
                .upcoming(start, zone, 400)
                .iter()
                .map(|t| t.with_timezone(&zone).date_naive())
                .collect();
            for pair in days.windows(2) {
                assert_eq!(
                    pair[1] - pair[0],
                    Duration::days(1),
                    "{text} in {zone}: {pair:?}"
                );
            }
        }
    }
}

// ------------------------------------------------------------------ errors

/// Checks an error's field index, that its span covers exactly that field,
/// and its message.
fn assert_error(text: &str, field: Option<usize>, field_text: Option<&str>, message: &str) {
    let e = err(text);
    assert_eq!(e.field, field, "{text}: {e:?}");
    assert_eq!(
        e.span.clone().map(|s| &text[s]),
        field_text,
        "{text}: {e:?}"
    );
    assert!(
        e.message.contains(message),
        "{text}: {:?} should contain {message:?}",
        e.message
    );
}

#[test]
fn out_of_range_values_name_the_field_and_its_range() {
    assert_error(
        "61 * * * *",
        Some(0),
        Some("61"),
        "minute 61 is out of range (0–59)",
    );
    assert_error(
        "0 24 * * *",
        Some(1),
        Some("24"),
        "hour 24 is out of range (0–23)",
    );
    assert_error(
        "0 9 0 * *",
        Some(2),
        Some("0"),
        "day-of-month 0 is out of range (1–31)",
    );
    assert_error(
        "0 9 32 * *",
        Some(2),
        Some("32"),
        "day-of-month 32 is out of range (1–31)",
    );
    assert_error(
        "0 9 * 13 *",
        Some(3),
        Some("13"),
        "month 13 is out of range (1–12)",
    );
    assert_error(
        "0 9 * * 8",
        Some(4),
        Some("8"),
        "day-of-week value 8 is out of range (0–7, where 0 and 7 are Sunday)",
    );
    assert_error(
        "0 9 * * 1-8",
        Some(4),
        Some("1-8"),
        "day-of-week value 8 is out of range",
    );
    assert_error(
        "0-60/5 9 * * *",
        Some(0),
        Some("0-60/5"),
        "minute 60 is out of range",
    );
    assert_error(
        "0 9 * * 99999999999",
        Some(4),
        Some("99999999999"),
        "out of range",
    );
}

#[test]
fn wrong_field_counts_say_what_is_expected() {
    assert_error(
        "0 9 * *",
        None,
        Some("0 9 * *"),
        "expected 5 fields (minute hour day-of-month month day-of-week) or 6–7 with seconds, found 4",
    );
    assert_error("1 2 3 4 5 6 7 8", None, Some("1 2 3 4 5 6 7 8"), "found 8");
    assert_error("", None, None, "found 0");
    assert_error("   \t ", None, None, "found 0");
}

#[test]
fn malformed_fields_are_explained() {
    assert_error(
        "*/0 * * * *",
        Some(0),
        Some("*/0"),
        "a step must be at least 1",
    );
    assert_error("*/x * * * *", Some(0), Some("*/x"), "not a whole number");
    assert_error("1,,2 * * * *", Some(0), Some("1,,2"), "empty item");
    assert_error("0 9, * * *", Some(1), Some("9,"), "empty item");
    assert_error("30-10 * * * *", Some(0), Some("30-10"), "runs backwards");
    assert_error(
        "0 9 * FOO *",
        Some(3),
        Some("FOO"),
        "\"FOO\" is not a month name (use JAN–DEC or 1–12)",
    );
    assert_error(
        "0 9 * * MONDAY",
        Some(4),
        Some("MONDAY"),
        "\"MONDAY\" is not a day name (use SUN–SAT or 0–7)",
    );
    assert_error(
        "0 nine * * *",
        Some(1),
        Some("nine"),
        "the hour field takes numbers",
    );
    assert_error("0 9 * * 1-", Some(4), Some("1-"), "missing end");
    assert_error("0 9 * * /2", Some(4), Some("/2"), "nothing before it");
    assert_error("0 9 ? * *", Some(2), Some("?"), "unexpected \"?\"");
    assert_error("0 9 L * *", Some(2), Some("L"), "takes numbers");
    assert_error(
        "0 9 * * 周一",
        Some(4),
        Some("周一"),
        "\"周一\" is not a day name",
    );
    assert_error(
        "0 9 * * 1#2",
        Some(4),
        Some("1#2"),
        "unexpected \"#\" in the day-of-week field",
    );
    assert_error("0 9 * DEC-JAN *", Some(3), Some("DEC-JAN"), "such as 12,1");
    assert_error("0 9 * * 1-5/0", Some(4), Some("1-5/0"), "step of 0");
}

#[test]
fn a_day_no_chosen_month_has_is_refused() {
    assert_error(
        "0 9 31 2 *",
        Some(2),
        Some("31"),
        "never fires: February has no day 31",
    );
    assert_error(
        "0 9 30,31 feb *",
        Some(2),
        Some("30,31"),
        "February has no day 30 or 31",
    );
    assert_error(
        "0 9 31 4,6 *",
        Some(2),
        Some("31"),
        "April or June has no day 31",
    );
    assert_error(
        "0 0 9 31 2 *",
        None,
        Some("0 0 9 31 2 *"),
        "this schedule never fires",
    );
    assert_error(
        "0 0 9 1 1 * 1969",
        Some(6),
        Some("1969"),
        "year 1969 is out of range",
    );
    // 29 February comes every four years; with the OR rule, Fridays fire anyway.
    assert!(CronSchedule::parse("0 9 29 2 *").is_ok());
    assert!(CronSchedule::parse("0 9 31 2 5").is_ok());
}

#[test]
fn macro_mistakes_are_explained() {
    assert_error(
        "@fortnightly",
        Some(0),
        Some("@fortnightly"),
        "@fortnightly is not a known shortcut (use @hourly",
    );
    assert_error("@reboot", Some(0), Some("@reboot"), "not a known shortcut");
    assert_error("@daily 9", Some(0), Some("@daily"), "write it alone");
}

#[test]
fn seconds_form_errors_use_its_own_numbering() {
    assert_error(
        "0 0 9 * * 0",
        Some(5),
        Some("0"),
        "day-of-week value 0 is out of range (1–7 in the form with seconds, where 1 is Sunday)",
    );
    assert_error(
        "60 0 9 * * *",
        Some(0),
        Some("60"),
        "second 60 is out of range (0–59)",
    );
    assert_error(
        "0 0 9 * * 1 1969",
        Some(6),
        Some("1969"),
        "year 1969 is out of range (1970–2100)",
    );
    assert_error(
        "0 0 9 * * MONDEY",
        Some(5),
        Some("MONDEY"),
        "\"MONDEY\" is not a day name",
    );
    assert_error(
        "0 0 9 * * 1 x",
        Some(6),
        Some("x"),
        "the year field takes numbers",
    );
}

#[test]
fn spans_are_byte_ranges_in_the_original_text() {
    let text = "  0\t9  * *   8 ";
    let e = err(text);
    assert_eq!(e.field, Some(4));
    assert_eq!(e.span, Some(13..14));
    let text = "0 9 * * 周一,X";
    let e = err(text);
    assert_eq!(&text[e.span.unwrap()], "周一,X");
}

#[test]
fn errors_display_their_message() {
    let e = err("61 * * * *");
    assert_eq!(e.to_string(), "minute 61 is out of range (0–59)");
}

// ------------------------------------------------------------ zone names

#[test]
fn iana_names_parse() {
    assert_eq!(parse_time_zone("Asia/Shanghai"), Ok(SHANGHAI));
    assert_eq!(parse_time_zone("America/New_York"), Ok(NEW_YORK));
    assert_eq!(parse_time_zone("UTC"), Ok(chrono_tz::UTC));
}

fn suggestion(name: &str) -> Option<String> {
    parse_time_zone(name).expect_err(name).suggestion
}

#[test]
fn wrong_case_suggests_the_exact_name() {
    assert_eq!(
        suggestion("asia/shanghai").as_deref(),
        Some("Asia/Shanghai")
    );
    assert_eq!(
        suggestion("AMERICA/NEW_YORK").as_deref(),
        Some("America/New_York")
    );
    assert!(
        parse_time_zone("asia/shanghai")
            .unwrap_err()
            .message
            .contains("case-sensitive")
    );
}

#[test]
fn common_names_for_china_suggest_shanghai() {
    for name in ["Beijing", "Asia/Beijing", "CST", "China", "beijing", "北京"] {
        assert_eq!(suggestion(name).as_deref(), Some("Asia/Shanghai"), "{name}");
    }
    assert!(
        parse_time_zone("CST")
            .unwrap_err()
            .message
            .contains("abbreviation")
    );
}

#[test]
fn a_city_alone_suggests_its_zone() {
    assert_eq!(suggestion("Tokyo").as_deref(), Some("Asia/Tokyo"));
    assert_eq!(suggestion("new york").as_deref(), Some("America/New_York"));
    assert_eq!(suggestion("Hong Kong").as_deref(), Some("Asia/Hong_Kong"));
    assert_eq!(suggestion("Europe/Tokyo").as_deref(), Some("Asia/Tokyo"));
}

#[test]
fn misspellings_suggest_the_closest_name() {
    assert_eq!(
        suggestion("Asia/Shanghia").as_deref(),
        Some("Asia/Shanghai")
    );
    assert_eq!(
        suggestion("America/New_Yrok").as_deref(),
        Some("America/New_York")
    );
    assert_eq!(suggestion("europe/londn").as_deref(), Some("Europe/London"));
    assert_eq!(suggestion("Mars/Olympus_Mons"), None);
}

#[test]
fn an_empty_zone_name_is_refused() {
    let e = parse_time_zone("").unwrap_err();
    assert!(e.message.contains("empty"));
    assert!(
        parse_time_zone(" Asia/Shanghai ")
            .unwrap_err()
            .suggestion
            .as_deref()
            == Some("Asia/Shanghai")
    );
}

// ------------------------------------------------ property: crontab semantics

/// One generated field: its text and, computed independently of the code
/// under test, the set of values it matches.
#[derive(Debug, Clone)]
struct GenField {
    text: String,
    values: BTreeSet<u32>,
}

/// A reference reading of one item, from (start, end, step).
fn expand(start: u32, end: u32, step: u32, wrap: bool) -> BTreeSet<u32> {
    let end = if wrap && start > end { end + 7 } else { end };
    (start..=end)
        .step_by(step as usize)
        .map(|v| if wrap { v % 7 } else { v })
        .collect()
}

fn item(
    min: u32,
    max: u32,
    names: Option<(&'static [&'static str], u32)>,
    wrap: bool,
) -> impl Strategy<Value = GenField> {
    let value = move |v: u32, use_name: bool| match names {
        Some((list, first)) if use_name && v >= first && ((v - first) as usize) < list.len() => {
            let name = list[(v - first) as usize];
            if v.is_multiple_of(2) {
                name.to_lowercase()
            } else {
                name.to_string()
            }
        }
        _ => v.to_string(),
    };
    prop_oneof![
        (min..=max, any::<bool>()).prop_map(move |(v, n)| GenField {
            text: value(v, n),
            values: expand(v, v, 1, wrap)
        }),
        (min..=max, min..=max, any::<bool>()).prop_map(move |(a, b, n)| {
            let (a, b) = if wrap || a <= b { (a, b) } else { (b, a) };
            GenField {
                text: format!("{}-{}", value(a, n), value(b, n)),
                values: expand(a, b, 1, wrap),
            }
        }),
        (min..=max, min..=max, 1..=(max - min + 1)).prop_map(move |(a, b, s)| {
            let (a, b) = if wrap || a <= b { (a, b) } else { (b, a) };
            GenField {
                text: format!("{a}-{b}/{s}"),
                values: expand(a, b, s, wrap),
            }
        }),
        (min..=max, 1..=(max - min + 1)).prop_map(move |(a, s)| GenField {
            text: format!("{a}/{s}"),
            values: expand(a, max, s, wrap)
        }),
    ]
}

fn field(
    min: u32,
    max: u32,
    names: Option<(&'static [&'static str], u32)>,
    wrap: bool,
) -> impl Strategy<Value = GenField> {
    let full = expand(min, max, 1, wrap);
    prop_oneof![
        2 => Just(GenField { text: "*".into(), values: full.clone() }),
        2 => (1..=(max - min + 1)).prop_map(move |s| GenField { text: format!("*/{s}"), values: expand(min, max, s, wrap) }),
        3 => item(min, max, names, wrap),
        2 => prop::collection::vec(item(min, max, names, wrap), 2..=3).prop_map(|items| GenField {
            text: items.iter().map(|i| i.text.as_str()).collect::<Vec<_>>().join(","),
            values: items.iter().flat_map(|i| i.values.iter().copied()).collect(),
        }),
    ]
}

/// The values of a simple list of items `a`, `a-b`, `*`, `*/n`, `a-b/n` from 0 to `max`.
fn expand_text(text: &str, max: u32) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for item in text.split(',') {
        let (base, step) = item
            .split_once('/')
            .map_or((item, 1), |(b, s)| (b, s.parse().unwrap()));
        let (a, b) = match base.split_once('-') {
            _ if base == "*" => (0, max),
            Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
            None => (base.parse().unwrap(), base.parse().unwrap()),
        };
        out.extend(expand(a, b, step, false));
    }
    out
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

#[derive(Debug, Clone)]
struct Expr {
    minute: GenField,
    hour: GenField,
    dom: GenField,
    month: GenField,
    dow: GenField,
}

impl Expr {
    fn text(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.minute.text, self.hour.text, self.dom.text, self.month.text, self.dow.text
        )
    }

    /// POSIX crontab: month must match; the day matches on day-of-month OR
    /// day-of-week when both are restricted (neither starts with `*`), AND otherwise.
    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.dom.values.contains(&date.day());
        let dow = self
            .dow
            .values
            .contains(&date.weekday().num_days_from_sunday());
        let day = if self.dom.text.starts_with('*') || self.dow.text.starts_with('*') {
            dom && dow
        } else {
            dom || dow
        };
        self.month.values.contains(&date.month()) && day
    }

    fn matches(&self, t: NaiveDateTime) -> bool {
        self.day_matches(t.date())
            && self.hour.values.contains(&t.hour())
            && self.minute.values.contains(&t.minute())
    }
}

fn expr() -> impl Strategy<Value = Expr> {
    (
        field(0, 59, None, false),
        field(0, 23, None, false),
        field(1, 31, None, false),
        field(1, 12, Some((MONTHS, 1)), false),
        field(0, 7, Some((DAYS, 0)), true),
    )
        .prop_map(|(minute, hour, dom, month, dow)| Expr {
            minute,
            hour,
            dom,
            month,
            dow,
        })
}

/// Brute force, minute by minute over real instants: a minute fires when its
/// local time matches and it is that local time's first occurrence, or when
/// the clock jumped forward over a matching local time just before it.
fn reference(e: &Expr, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let minute = Duration::minutes(1);
    let whole = after.with_second(0).unwrap().with_nanosecond(0).unwrap();
    let mut t = whole + minute;
    let end = after + Duration::days(400);
    while t <= end {
        let local = t.with_timezone(&tz).naive_local();
        let before = (t - minute).with_timezone(&tz).naive_local();
        let mut skipped = before + minute;
        while skipped < local {
            if e.matches(skipped) {
                return Some(t);
            }
            skipped += minute;
        }
        if e.day_matches(local.date()) {
            if e.matches(local)
                && tz
                    .from_local_datetime(&local)
                    .earliest()
                    .map(|x| x.with_timezone(&Utc))
                    == Some(t)
            {
                return Some(t);
            }
            t += minute;
        } else {
            // Jump most of the way to local midnight; a DST change can make
            // the day shorter, so stop two hours early and look again.
            let left = 24 * 60 - i64::from(local.hour() * 60 + local.minute());
            t += Duration::minutes((left - 120).max(1));
        }
    }
    None
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let start = utc(2024, 1, 1, 0, 0).timestamp();
    let end = utc(2027, 1, 1, 0, 0).timestamp();
    // DST changes in America/New_York and Europe/London, to land near them often.
    let changes: Vec<i64> = [
        utc(2024, 3, 10, 7, 0),
        utc(2024, 11, 3, 6, 0),
        utc(2025, 3, 9, 7, 0),
        utc(2025, 11, 2, 6, 0),
        utc(2025, 3, 30, 1, 0),
        utc(2025, 10, 26, 1, 0),
        utc(2026, 3, 8, 7, 0),
    ]
    .iter()
    .map(DateTime::timestamp)
    .collect();
    prop_oneof![
        3 => (start..end, 0..1_000_000_000u32).prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap()),
        2 => (prop::sample::select(changes), -6 * 3_600..2 * 3_600i64).prop_map(|(c, d)| DateTime::from_timestamp(c + d, 0).unwrap()),
    ]
}

fn zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(vec![
        chrono_tz::UTC,
        SHANGHAI,
        chrono_tz::Asia::Kathmandu,
        NEW_YORK,
        chrono_tz::Europe::London,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn next_after_agrees_with_a_brute_force_crontab(e in expr(), after in instant(), tz in zone()) {
        let text = e.text();
        let schedule = match CronSchedule::parse(&text) {
            Ok(s) => s,
            Err(err) => {
                // Only a day that none of the chosen months has is refused.
                prop_assert!(err.message.contains("never fires"), "{text}: {err:?}");
                prop_assert_eq!(reference(&e, after, tz), None, "{} is refused but fires", text);
                return Ok(());
            }
        };
        let got = schedule.next_after(after, tz);
        match reference(&e, after, tz) {
            Some(expected) => prop_assert_eq!(got, Some(expected), "{} after {} in {}", text, after, tz),
            None => prop_assert!(got.is_none_or(|g| g > after + Duration::days(400)), "{} after {} in {}: {:?}", text, after, tz, got),
        }
    }

    #[test]
    fn next_after_agrees_with_the_brute_force_around_dst_changes(
        minute in field(0, 59, None, false),
        hour in prop::sample::select(vec!["1", "2", "3", "1-3", "*/2", "0,2", "2-4/2", "1,2", "*"]),
        (change, zone) in prop::sample::select(vec![
            (utc(2025, 3, 9, 7, 0), NEW_YORK),
            (utc(2025, 11, 2, 6, 0), NEW_YORK),
            (utc(2025, 3, 30, 1, 0), chrono_tz::Europe::London),
            (utc(2025, 10, 26, 1, 0), chrono_tz::Europe::London),
        ]),
        before in 0..4 * 3_600i64,
    ) {
        let star = || GenField { text: "*".into(), values: BTreeSet::new() };
        let hour = GenField { text: hour.to_string(), values: expand_text(hour, 23) };
        let e = Expr {
            minute,
            hour,
            dom: GenField { values: (1..=31).collect(), ..star() },
            month: GenField { values: (1..=12).collect(), ..star() },
            dow: GenField { values: (0..=6).collect(), ..star() },
        };
        let after = change - Duration::seconds(before);
        let got = sched(&e.text()).next_after(after, zone);
        prop_assert_eq!(got, reference(&e, after, zone), "{} after {} in {}", e.text(), after, zone);
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in ".{0,60}") {
        let _ = CronSchedule::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_cron_like_text(text in "[0-9*/,\\-?@ A-Za-z]{0,40}") {
        if let Err(e) = CronSchedule::parse(&text) {
            prop_assert!(!e.message.is_empty());
            if let Some(span) = e.span {
                prop_assert!(text.get(span).is_some());
            }
        }
    }

    #[test]
    fn zone_names_never_panic(name in ".{0,30}") {
        let _ = parse_time_zone(&name);
    }
}
