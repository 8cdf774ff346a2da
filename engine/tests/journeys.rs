//! Journey headers: triggers, audience, entry modes, exits, goals, windows,
//! budgets, pause.

mod support;

use serde_json::json;
use support::*;
use waymark_core::journal::Kind;

#[test]
fn event_trigger_enters_only_when_where_holds() {
    let mut h = Harness::new(
        r#"
journey j {
  trigger event cart_updated where event.value > 0
  entry always
  send sms template "HI"
}
"#,
    );
    h.track("u1", "cart_updated", json!({ "value": 0 }));
    h.track("u2", "cart_updated", json!({ "value": 5 }));
    h.track("u3", "page_viewed", json!({ "value": 5 }));
    assert!(h.for_user(Kind::Enter, "u1").is_empty());
    assert_eq!(h.for_user(Kind::Enter, "u2").len(), 1);
    assert!(h.for_user(Kind::Enter, "u3").is_empty());
    assert_eq!(h.templates("u2"), ["HI"]);
}

#[test]
fn schedule_trigger_enters_its_audience_at_the_cron_fire_in_its_time_zone() {
    // 09:00 Shanghai is 01:00 UTC.
    let mut h = Harness::new(
        r#"
journey weekly {
  trigger schedule "0 9 * * *" tz "Asia/Shanghai" for user.vip == true
  entry always
  send sms template "DIGEST"
}
"#,
    );
    h.identify("vip", json!({ "vip": true }));
    h.identify("plain", json!({ "vip": false }));
    h.advance(mins(59));
    assert!(h.of_kind(Kind::Send).is_empty(), "{}", h.dump());
    h.advance(mins(1));
    assert_eq!(
        h.sends("vip"),
        [(
            t("2025-11-10T01:00:00Z"),
            "sms".into(),
            Some("DIGEST".into())
        )]
    );
    assert!(h.sends("plain").is_empty());
    h.advance(days(1));
    assert_eq!(h.sends("vip").len(), 2);
}

#[test]
fn schedule_trigger_without_tz_fires_in_the_journey_tz() {
    let mut h = Harness::new(
        r#"
journey morning {
  trigger schedule "0 10 * * *"
  tz "Asia/Shanghai"
  entry always
  send sms template "M"
}
"#,
    );
    h.identify("u1", json!({}));
    h.advance(hours(3));
    assert_eq!(
        h.sends("u1"),
        [(t("2025-11-10T02:00:00Z"), "sms".into(), Some("M".into()))]
    );
}

#[test]
fn schedule_trigger_without_any_tz_falls_back_to_the_policy_tz() {
    // language.md §6 resolves time zones down to the policy's before UTC; a
    // marketer writing "0 10 * * *" under a Shanghai policy means 10:00 there.
    let mut h = Harness::new(
        r#"
policy default { tz "Asia/Shanghai" }
journey morning {
  trigger schedule "0 10 * * *"
  entry always
  send sms template "M"
}
"#,
    );
    h.identify("u1", json!({}));
    h.advance(hours(3));
    assert_eq!(
        h.sends("u1"),
        [(t("2025-11-10T02:00:00Z"), "sms".into(), Some("M".into()))]
    );
}

#[test]
fn segment_trigger_enters_when_the_user_starts_to_match() {
    let mut h = Harness::new(
        r#"
segment big_spender = user.total_spent >= 1000
journey welcome_big {
  trigger segment big_spender
  entry always
  send sms template "BIG"
}
"#,
    );
    h.identify("u1", json!({ "total_spent": 10 }));
    assert!(h.sends("u1").is_empty());
    h.identify("u1", json!({ "total_spent": 2000 }));
    assert_eq!(h.templates("u1"), ["BIG"]);
    // Still matching: no new entry.
    h.identify("u1", json!({ "total_spent": 3000 }));
    assert_eq!(h.templates("u1"), ["BIG"]);
    // Leaves and comes back: enters again.
    h.identify("u1", json!({ "total_spent": 0 }));
    h.identify("u1", json!({ "total_spent": 5000 }));
    assert_eq!(h.templates("u1"), ["BIG", "BIG"]);
}

#[test]
fn time_based_segment_is_re_evaluated_daily_without_events() {
    let mut h = Harness::new(
        r#"
segment dormant = days_since(last(order_paid).at) >= 3
journey winback {
  trigger segment dormant
  send sms template "MISS_YOU"
}
"#,
    );
    h.track("u1", "order_paid", json!({ "amount": 10 }));
    assert!(h.sends("u1").is_empty());
    h.advance(days(5));
    assert_eq!(h.templates("u1"), ["MISS_YOU"], "{}", h.dump());
}

#[test]
fn audience_is_checked_at_entry() {
    let mut h = Harness::new(
        r#"
journey j {
  trigger event signup
  audience user.country == "CN"
  send sms template "HI"
}
"#,
    );
    h.identify("cn", json!({ "country": "CN" }));
    h.identify("us", json!({ "country": "US" }));
    h.track("cn", "signup", json!({}));
    h.track("us", "signup", json!({}));
    assert_eq!(h.templates("cn"), ["HI"]);
    assert!(h.for_user(Kind::Enter, "us").is_empty());
}

const ENTRY_SCRIPT: &str = r#"
journey j {
  trigger event ping
  entry ENTRY
  send sms template "P"
}
"#;

fn entries_after_pings(entry: &str, gaps: &[i64]) -> usize {
    let mut h = Harness::new(&ENTRY_SCRIPT.replace("ENTRY", entry));
    for gap in gaps {
        h.advance(hours(*gap));
        h.track("u1", "ping", json!({}));
    }
    h.for_user(Kind::Enter, "u1").len()
}

#[test]
fn entry_once_never_enters_again() {
    assert_eq!(entries_after_pings("once", &[0, 1, 24, 24 * 30]), 1);
}

#[test]
fn entry_always_enters_whenever_not_inside() {
    assert_eq!(entries_after_pings("always", &[0, 0, 1, 1]), 4);
}

#[test]
fn entry_every_enters_at_most_once_per_duration() {
    // 0h enters, 1h no, 23h (24h after) enters, 47h (next 24h+) enters.
    assert_eq!(entries_after_pings("every 1d", &[0, 1, 23, 12, 24]), 3);
}

#[test]
fn a_user_is_in_at_most_one_instance_of_a_journey() {
    let mut h = Harness::new(
        r#"
journey j {
  trigger event ping
  entry always
  wait 1d
  send sms template "P"
}
"#,
    );
    h.track("u1", "ping", json!({}));
    h.track("u1", "ping", json!({}));
    assert_eq!(h.for_user(Kind::Enter, "u1").len(), 1);
    h.advance(days(1));
    assert_eq!(h.templates("u1"), ["P"]);
    h.track("u1", "ping", json!({}));
    assert_eq!(h.for_user(Kind::Enter, "u1").len(), 2);
}

#[test]
fn exit_on_event_leaves_at_once() {
    let mut h = Harness::new(
        r#"
journey j {
  trigger event cart_updated
  exit on event order_paid where event.amount > 0
  wait 1h
  send sms template "NUDGE"
}
"#,
    );
    h.track("u1", "cart_updated", json!({}));
    h.track("u2", "cart_updated", json!({}));
    h.advance(mins(10));
    h.track("u1", "order_paid", json!({ "amount": 5 }));
    h.track("u2", "order_paid", json!({ "amount": 0 }));
    let exits = h.for_user(Kind::Exit, "u1");
    assert_eq!(exits.len(), 1);
    assert_eq!(exits[0].reason.as_deref(), Some("exit_on"));
    assert_eq!(exits[0].at, t(START) + mins(10));
    h.advance(hours(2));
    assert!(h.sends("u1").is_empty());
    assert_eq!(h.templates("u2"), ["NUDGE"]);
}

#[test]
fn exit_if_is_checked_before_every_step() {
    let mut h = Harness::new(
        r#"
journey j {
  trigger event signup
  exit if user.stop == true
  send sms template "ONE"
  wait 1d
  send sms template "TWO"
}
"#,
    );
    h.track("u1", "signup", json!({}));
    h.identify("u1", json!({ "stop": true }));
    h.advance(days(2));
    assert_eq!(h.templates("u1"), ["ONE"]);
    let exits = h.for_user(Kind::Exit, "u1");
    assert_eq!(exits[0].reason.as_deref(), Some("exit_if"));
    assert_eq!(exits[0].at, t(START) + days(1));
}

const GOAL_SCRIPT: &str = r#"
journey j {
  trigger event cart_updated
  goal order_paid where event.amount > 0 within 3d CONTINUE
  wait 1d
  send sms template "A"
  wait 3d
  send sms template "B"
}
"#;

#[test]
fn goal_within_window_converts_and_exits() {
    let mut h = Harness::new(&GOAL_SCRIPT.replace("CONTINUE", ""));
    h.track("u1", "cart_updated", json!({}));
    h.advance(hours(2));
    h.track("u1", "order_paid", json!({ "amount": 0 }));
    assert!(
        h.for_user(Kind::Goal, "u1").is_empty(),
        "where is part of the goal"
    );
    h.track("u1", "order_paid", json!({ "amount": 10 }));
    assert_eq!(h.for_user(Kind::Goal, "u1").len(), 1);
    let exits = h.for_user(Kind::Exit, "u1");
    assert_eq!(exits[0].reason.as_deref(), Some("goal"));
    h.advance(days(5));
    assert!(h.sends("u1").is_empty());
}

#[test]
fn goal_and_continue_converts_and_keeps_going() {
    let mut h = Harness::new(&GOAL_SCRIPT.replace("CONTINUE", "and continue"));
    h.track("u1", "cart_updated", json!({}));
    h.advance(hours(2));
    h.track("u1", "order_paid", json!({ "amount": 10 }));
    h.track("u1", "order_paid", json!({ "amount": 10 }));
    assert_eq!(h.for_user(Kind::Goal, "u1").len(), 1, "a goal counts once");
    assert!(h.for_user(Kind::Exit, "u1").is_empty());
    h.advance(days(5));
    assert_eq!(h.templates("u1"), ["A", "B"]);
}

#[test]
fn goal_reached_too_late_does_not_count() {
    let mut h = Harness::new(&GOAL_SCRIPT.replace("CONTINUE", ""));
    h.track("u1", "cart_updated", json!({}));
    h.advance(days(3) + mins(1));
    h.track("u1", "order_paid", json!({ "amount": 10 }));
    assert!(h.for_user(Kind::Goal, "u1").is_empty());
    assert!(h.for_user(Kind::Exit, "u1").is_empty());
    h.advance(days(2));
    assert_eq!(h.templates("u1"), ["A", "B"]);
}

#[test]
fn active_window_refuses_entries_outside_it() {
    let script = r#"
journey promo {
  trigger event ping
  entry always
  active from "2025-11-11T00:00:00Z" until "2025-11-12T00:00:00Z"
  send sms template "P"
}
"#;
    let mut h = Harness::new(script);
    h.track("u1", "ping", json!({}));
    h.advance(days(1));
    h.track("u2", "ping", json!({}));
    h.advance(days(1));
    h.track("u3", "ping", json!({}));
    assert!(h.sends("u1").is_empty());
    assert_eq!(h.templates("u2"), ["P"]);
    assert!(h.sends("u3").is_empty(), "until is exclusive");
}

#[test]
fn a_date_only_active_window_is_local_midnight_in_the_journeys_zone() {
    // 2025-11-11 in Shanghai is 2025-11-10T16:00Z to 2025-11-11T16:00Z.
    for (zone_lines, start) in [
        ("  tz \"Asia/Shanghai\"\n", ""),
        ("  policy cn\n", "policy cn {\n  tz \"Asia/Shanghai\"\n}\n"),
    ] {
        let script = format!(
            "{start}journey promo {{\n  trigger event ping\n  entry always\n{zone_lines}  active from \"2025-11-11\" until \"2025-11-12\"\n  send sms template \"P\"\n}}\n"
        );
        let mut h = Harness::at(&script, "2025-11-10T15:59:00Z");
        h.track("before", "ping", json!({}));
        h.advance(mins(2));
        h.track("first_local_minute", "ping", json!({}));
        h.advance_to(t("2025-11-11T15:59:00Z"));
        h.track("last_local_minute", "ping", json!({}));
        h.advance(mins(2));
        h.track("after", "ping", json!({}));
        assert!(h.sends("before").is_empty(), "{script}");
        assert_eq!(h.templates("first_local_minute"), ["P"], "{script}");
        assert_eq!(h.templates("last_local_minute"), ["P"], "{script}");
        assert!(h.sends("after").is_empty(), "{script}");
    }
}

#[test]
fn limit_entries_per_window_skips_with_reason_budget() {
    let mut h = Harness::new(
        r#"
journey promo {
  trigger event ping
  entry always
  limit 2 entries per 1d
  send sms template "P"
}
"#,
    );
    for u in ["a", "b", "c", "d"] {
        h.track(u, "ping", json!({}));
    }
    assert_eq!(h.of_kind(Kind::Enter).len(), 2);
    assert_eq!(h.skips("c"), ["budget"]);
    assert_eq!(h.skips("d"), ["budget"]);
    // The rolling window slides: a day later there is budget again.
    h.advance(days(1));
    h.track("c", "ping", json!({}));
    assert_eq!(h.templates("c"), ["P"]);
}

#[test]
fn a_calendar_budget_has_the_same_days_for_users_of_every_zone() {
    let mut h = Harness::new(
        r#"
policy default {
  tz "Asia/Shanghai"
}

journey promo {
  trigger event ping
  entry always
  limit 1 entry per day
  send sms template "P"
}
"#,
    );
    h.identify("ny", json!({ "timezone": "America/New_York" }));
    // 18:00 on 10 November in Shanghai (05:00 in New York).
    h.advance_to(t("2025-11-10T10:00:00Z"));
    h.track("a", "ping", json!({}));
    // 01:00 on the 11th in Shanghai: a new day of the budget, though it is
    // still the 10th in New York.
    h.advance_to(t("2025-11-10T17:00:00Z"));
    h.track("ny", "ping", json!({}));
    assert_eq!(h.templates("ny"), ["P"]);
    assert!(h.skips("ny").is_empty());
}

#[test]
fn limit_without_window_is_a_total_budget() {
    let mut h = Harness::new(
        r#"
journey promo {
  trigger event ping
  entry always
  limit 1 entries
  send sms template "P"
}
"#,
    );
    h.track("a", "ping", json!({}));
    h.advance(days(400));
    h.track("b", "ping", json!({}));
    assert_eq!(h.skips("b"), ["budget"]);
}

#[test]
fn paused_journey_refuses_entries_with_reason_paused() {
    let mut h = Harness::new(
        r#"
journey j {
  trigger event ping
  send sms template "P"
}
"#,
    );
    h.pause("j");
    h.track("u1", "ping", json!({}));
    assert!(h.for_user(Kind::Enter, "u1").is_empty());
    assert_eq!(h.skips("u1"), ["paused"]);
    let state = h.user("u1");
    assert!(state.instances.is_empty());
}

#[test]
fn paused_journey_holds_running_instances() {
    let mut h = Harness::new(
        r#"
journey j {
  trigger event ping
  wait 1h
  send sms template "P"
}
"#,
    );
    h.track("u1", "ping", json!({}));
    h.pause("j");
    h.advance(hours(2));
    assert!(h.sends("u1").is_empty());
    let deferred = h.for_user(Kind::Deferred, "u1");
    assert_eq!(deferred[0].reason.as_deref(), Some("paused"));
}

#[test]
fn journey_tz_is_the_default_for_wait_until() {
    let mut h = Harness::new(
        r#"
journey j {
  trigger event ping
  tz "America/New_York"
  wait until 09:00
  send sms template "P"
}
"#,
    );
    // 2025-11-10 00:00 UTC is 19:00 on the 9th in New York (EST, UTC-5).
    h.track("u1", "ping", json!({}));
    h.advance(days(1));
    assert_eq!(h.sends("u1")[0].0, t("2025-11-10T14:00:00Z"));
}

#[test]
fn user_timezone_is_used_when_the_journey_names_none() {
    let mut h = Harness::new(
        r#"
policy default { tz "Asia/Shanghai" }
journey j {
  trigger event ping
  wait until 09:00
  send sms template "P"
}
"#,
    );
    h.identify("ny", json!({ "timezone": "America/New_York" }));
    h.track("ny", "ping", json!({}));
    h.track("sh", "ping", json!({}));
    h.advance(days(1));
    assert_eq!(h.sends("ny")[0].0, t("2025-11-10T14:00:00Z"));
    // Shanghai (the policy's) is already 08:00; 09:00 is an hour later.
    assert_eq!(h.sends("sh")[0].0, t("2025-11-10T01:00:00Z"));
}

#[test]
fn the_event_that_entered_is_visible_to_later_steps() {
    let mut h = Harness::new(
        r#"
journey j {
  trigger event cart_updated
  wait 1h
  send sms template "T" { total: event.value, who: journey.name }
}
"#,
    );
    h.track("u1", "cart_updated", json!({ "value": 19.9 }));
    h.advance(hours(1));
    let s = h.for_user(Kind::Send, "u1");
    assert_eq!(s[0].fields, Some(json!({ "total": 19.9, "who": "j" })));
}

#[test]
fn each_schedule_trigger_enters_its_own_audience() {
    // Two schedules on one journey: daily readers at 09:00, weekly readers
    // on Mondays at 10:00 (2025-11-10 is a Monday), each with its own `for`.
    let mut h = Harness::new(
        r#"
journey digest {
  trigger schedule "0 9 * * *" tz "Asia/Shanghai" for user.plan == "daily"
  trigger schedule "0 10 * * 1" tz "Asia/Shanghai" for user.plan == "weekly"
  entry always
  send email { subject: "digest" }
}
"#,
    );
    h.identify("d", json!({ "plan": "daily" }));
    h.identify("w", json!({ "plan": "weekly" }));
    h.advance_to(t("2025-11-10T03:00:00Z"));
    assert_eq!(
        h.sends("d").iter().map(|s| s.0).collect::<Vec<_>>(),
        [t("2025-11-10T01:00:00Z")],
        "{}",
        h.dump()
    );
    assert_eq!(
        h.sends("w").iter().map(|s| s.0).collect::<Vec<_>>(),
        [t("2025-11-10T02:00:00Z")],
        "{}",
        h.dump()
    );
}

#[test]
fn a_goal_within_its_window_counts_even_after_the_last_step() {
    let mut h = Harness::new(
        r#"
journey welcome {
  trigger event signed_up
  goal order_paid within 14d
  send wecom { text: "hi" }
}
"#,
    );
    h.track("u1", "signed_up", json!({}));
    assert_eq!(
        h.for_journey(Kind::Exit, "welcome").len(),
        1,
        "completed at once"
    );
    h.advance(days(10));
    h.track("u1", "order_paid", json!({}));
    assert_eq!(
        h.for_journey(Kind::Goal, "welcome").len(),
        1,
        "{}",
        h.dump()
    );
    h.track("u1", "order_paid", json!({}));
    assert_eq!(
        h.for_journey(Kind::Goal, "welcome").len(),
        1,
        "a goal counts once"
    );
    // Past the window, a conversion no longer counts.
    h.track("u2", "signed_up", json!({}));
    h.advance(days(15));
    h.track("u2", "order_paid", json!({}));
    assert!(h.for_user(Kind::Goal, "u2").is_empty(), "{}", h.dump());
}

/// Issue 10 item 7: every refused entry says why, once per user, journey
/// and reason per local day.
#[test]
fn a_refused_entry_is_skipped_with_its_reason_once_a_local_day() {
    let mut h = Harness::new(
        r#"
journey welcome {
  trigger event page
  entry once
  tz "Asia/Shanghai"
  audience user.member == true
  send sms template "W"
}
"#,
    );
    // Not in the audience: one record however many page views.
    for _ in 0..5 {
        h.track("u1", "page", json!({}));
    }
    assert_eq!(h.skips("u1"), ["audience"]);
    h.identify("u1", json!({ "member": true }));
    h.track("u1", "page", json!({}));
    assert_eq!(h.templates("u1"), ["W"]);
    // Once: refused from now on, journaled once a day in Shanghai. START
    // is 08:00 there; 15:59 UTC is 23:59, 16:00 the next local day.
    h.track("u1", "page", json!({}));
    h.advance_to(t("2025-11-10T15:59:00Z"));
    h.track("u1", "page", json!({}));
    assert_eq!(h.skips("u1"), ["audience", "once"]);
    h.advance_to(t("2025-11-10T16:00:00Z"));
    h.track("u1", "page", json!({}));
    assert_eq!(h.skips("u1"), ["audience", "once", "once"]);
    let skipped = h.for_user(Kind::Skipped, "u1");
    assert!(
        skipped
            .iter()
            .all(|r| r.journey.as_deref() == Some("welcome") && r.event.as_deref() == Some("page"))
    );
}

#[test]
fn entries_refused_by_every_window_and_an_instance_in_progress_are_skipped() {
    let mut h = Harness::new(
        r#"
journey nudge {
  trigger event cart
  entry every 7d
  wait 1d
  send sms template "N"
}
journey autumn {
  trigger event cart
  active from "2025-09-01" until "2025-10-01"
  send sms template "A"
}
"#,
    );
    h.track("u1", "cart", json!({}));
    h.track("u1", "cart", json!({}));
    h.advance(days(2));
    h.track("u1", "cart", json!({}));
    let skipped: Vec<(String, String)> = h
        .for_user(Kind::Skipped, "u1")
        .iter()
        .map(|r| {
            (
                r.journey.as_deref().unwrap().to_string(),
                r.reason.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        [
            ("autumn".to_string(), "window".to_string()),
            ("nudge".into(), "in_journey".into()),
            ("nudge".into(), "every".into()),
            ("autumn".into(), "window".into()),
        ]
    );
    h.runtime.drain().unwrap();
    let stats = &h.runtime.store.journey_stats("nudge").unwrap()[0].1;
    assert_eq!(stats.skipped["every"], 1);
    assert_eq!(stats.skipped["in_journey"], 1);
}

/// Segment names events with spaces and capitals; a journey written with
/// the quoted name runs on such an event, waits for one, reads its history
/// and reaches a quoted goal.
#[test]
fn a_journey_triggered_by_a_quoted_segment_name_runs_on_that_event() {
    let mut h = Harness::new(
        r#"
journey thanks {
  trigger event "Order Completed" where event.revenue > 100
  goal "Product Reviewed" within 7d
  entry always
  if count("Order Completed", 30d) >= 2 and sum("Order Completed".revenue, 30d) > 300 {
    send sms template "LOYAL"
  } else {
    send sms template "THANKS"
  }
  wait for event "Product Viewed" within 1d as viewed {
    set user.viewed = viewed.name
    send sms template "VIEWED"
  }
  wait 10d
}
"#,
    );
    h.track("u1", "order_completed", json!({ "revenue": 500 }));
    assert!(h.for_user(Kind::Enter, "u1").is_empty(), "{}", h.dump());
    h.track("u1", "Order Completed", json!({ "revenue": 50 }));
    assert!(h.for_user(Kind::Enter, "u1").is_empty(), "{}", h.dump());
    h.track("u1", "Order Completed", json!({ "revenue": 300 }));
    assert_eq!(h.for_user(Kind::Enter, "u1").len(), 1, "{}", h.dump());
    assert_eq!(h.templates("u1"), ["LOYAL"]);
    h.track("u1", "Product Viewed", json!({}));
    assert_eq!(h.templates("u1"), ["LOYAL", "VIEWED"]);
    assert_eq!(
        h.trait_of("u1", "viewed"),
        Some(waymark_dsl::value::Value::String("Product Viewed".into()))
    );
    h.track("u1", "Product Reviewed", json!({}));
    assert_eq!(h.for_user(Kind::Goal, "u1").len(), 1, "{}", h.dump());
}
