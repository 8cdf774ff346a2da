//! Rules and tasks: where + if, counting, sliding windows, distinct values,
//! streaks of local days, how often rewards are earned, active windows.

mod support;

use serde_json::json;
use support::*;
use waymark_core::journal::Kind;

#[test]
fn rule_runs_on_every_event_where_filter_and_if_hold() {
    let mut h = Harness::new(
        r#"
rule gold {
  when event order_paid where event.amount > 0
  if user.total_spent >= 5000
  then { give points 10 }
}
"#,
    );
    h.identify("rich", json!({ "total_spent": 6000 }));
    h.identify("poor", json!({ "total_spent": 10 }));
    h.track("rich", "order_paid", json!({ "amount": 1 }));
    h.track("rich", "order_paid", json!({ "amount": 1 }));
    h.track("rich", "order_paid", json!({ "amount": 0 }));
    h.track("poor", "order_paid", json!({ "amount": 1 }));
    assert_eq!(h.user("rich").points.balance(), 20.into());
    assert!(h.for_user(Kind::Points, "poor").is_empty());
}

fn reward_count(h: &Harness, user: &str) -> usize {
    h.for_user(Kind::Reward, user).len()
}

#[test]
fn task_count_rewards_on_reaching_n_once_by_default() {
    let mut h = Harness::new(
        r#"
task three { on event checkin count 3 { give points 100 reason "three" } }
"#,
    );
    for _ in 0..7 {
        h.track("u1", "checkin", json!({}));
    }
    assert_eq!(reward_count(&h, "u1"), 1);
    assert_eq!(
        h.for_user(Kind::Reward, "u1")[0].task.as_deref(),
        Some("three")
    );
    assert_eq!(h.user("u1").points.balance(), 100.into());
}

#[test]
fn task_count_within_is_a_sliding_window() {
    let mut h = Harness::new(
        r#"
task burst { on event buy count 3 within 2d { give points 1 } }
"#,
    );
    h.track("u1", "buy", json!({}));
    h.advance(days(1));
    h.track("u1", "buy", json!({}));
    h.advance(days(1) + hours(1)); // the first has slid out
    h.track("u1", "buy", json!({}));
    assert_eq!(reward_count(&h, "u1"), 0);
    h.advance(hours(1));
    h.track("u1", "buy", json!({}));
    assert_eq!(reward_count(&h, "u1"), 1, "{}", h.dump());
}

#[test]
fn task_distinct_counts_each_value_once() {
    let mut h = Harness::new(
        r#"
task invite {
  on event invite_accepted where event.invitee_is_new
  distinct event.invitee_id
  count 3 within 30d { give coupon "FISSION_50" expires in 14d }
  max 1 per user
}
"#,
    );
    for (id, new) in [
        ("a", true),
        ("a", true),
        ("b", true),
        ("c", false),
        ("b", true),
    ] {
        h.track(
            "u1",
            "invite_accepted",
            json!({ "invitee_id": id, "invitee_is_new": new }),
        );
    }
    assert_eq!(reward_count(&h, "u1"), 0);
    h.track(
        "u1",
        "invite_accepted",
        json!({ "invitee_id": "d", "invitee_is_new": true }),
    );
    assert_eq!(reward_count(&h, "u1"), 1);
    assert_eq!(
        h.of_kind(Kind::Coupon)[0].coupon.as_deref(),
        Some("FISSION_50")
    );
}

const STREAK: &str = r#"
task daily {
  on event checkin
  tz "Asia/Shanghai"
  streak 3 days { give points 100 }
  repeatable
}
"#;

#[test]
fn task_streak_rewards_consecutive_local_days() {
    let mut h = Harness::new(STREAK);
    // START is 08:00 Shanghai on the 10th; two check-ins the same day count once.
    h.track("u1", "checkin", json!({}));
    h.advance(hours(1));
    h.track("u1", "checkin", json!({}));
    h.advance(days(1));
    h.track("u1", "checkin", json!({}));
    assert_eq!(reward_count(&h, "u1"), 0);
    // 15:59 UTC on the 12th is 23:59 local: still the third day.
    h.advance_to(t("2025-11-12T15:59:00Z"));
    h.track("u1", "checkin", json!({}));
    assert_eq!(reward_count(&h, "u1"), 1);
    // Repeatable: the streak starts again.
    for _ in 0..3 {
        h.advance(days(1));
        h.track("u1", "checkin", json!({}));
    }
    assert_eq!(reward_count(&h, "u1"), 2);
}

#[test]
fn task_streak_broken_by_a_missed_day_starts_over() {
    let mut h = Harness::new(STREAK);
    h.track("u1", "checkin", json!({}));
    h.advance(days(1));
    h.track("u1", "checkin", json!({}));
    h.advance(days(2)); // a day missed
    h.track("u1", "checkin", json!({}));
    h.advance(days(1));
    h.track("u1", "checkin", json!({}));
    assert_eq!(reward_count(&h, "u1"), 0);
    h.advance(days(1));
    h.track("u1", "checkin", json!({}));
    assert_eq!(reward_count(&h, "u1"), 1);
}

#[test]
fn task_streak_days_are_local_to_the_task_tz() {
    let mut h = Harness::new(STREAK);
    // 15:00 and 17:00 UTC on the same UTC day are different Shanghai days.
    h.advance_to(t("2025-11-10T15:00:00Z"));
    h.track("u1", "checkin", json!({}));
    h.advance_to(t("2025-11-10T17:00:00Z"));
    h.track("u1", "checkin", json!({}));
    h.advance_to(t("2025-11-11T17:00:00Z"));
    h.track("u1", "checkin", json!({}));
    assert_eq!(reward_count(&h, "u1"), 1);
}

#[test]
fn repeatable_task_rewards_each_time_and_max_bounds_it() {
    let mut h = Harness::new(
        r#"
task every_two { on event buy count 2 { give points 1 } repeatable }
task capped { on event buy count 2 { give points 10 } max 2 per user }
"#,
    );
    for _ in 0..10 {
        h.track("u1", "buy", json!({}));
    }
    let rewards = h.for_user(Kind::Reward, "u1");
    assert_eq!(
        rewards
            .iter()
            .filter(|r| r.task.as_deref() == Some("every_two"))
            .count(),
        5
    );
    assert_eq!(
        rewards
            .iter()
            .filter(|r| r.task.as_deref() == Some("capped"))
            .count(),
        2
    );
    assert_eq!(h.user("u1").points.balance(), 25.into());
}

#[test]
fn task_active_window_ignores_events_outside_it() {
    let mut h = Harness::new(
        r#"
task promo {
  on event buy
  active from "2025-11-11T00:00:00Z" until "2025-11-12T00:00:00Z"
  count 2 { give points 1 }
}
"#,
    );
    h.track("u1", "buy", json!({}));
    h.advance(days(1));
    h.track("u1", "buy", json!({}));
    assert_eq!(reward_count(&h, "u1"), 0);
    h.track("u1", "buy", json!({}));
    assert_eq!(reward_count(&h, "u1"), 1);
}

#[test]
fn task_progress_is_part_of_user_state() {
    let mut h = Harness::new("task t { on event buy count 5 { give points 1 } }");
    h.track("u1", "buy", json!({}));
    h.track("u1", "buy", json!({}));
    assert_eq!(h.user("u1").tasks["t"].counted.len(), 2);
}

#[test]
fn a_rule_send_in_quiet_hours_is_deferred_to_the_window_end_not_dropped() {
    // 23:00 in Shanghai is 15:00 UTC; quiet hours end at 08:00 (00:00 UTC).
    let mut h = Harness::at(
        r#"
policy default {
  tz "Asia/Shanghai"
  quiet hours 22:00 to 08:00
}

rule thanks {
  when event order_paid
  then {
    give points 5
    send wecom { text: "谢谢" }
    tag "thanked"
  }
}
"#,
        "2025-11-10T15:00:00Z",
    );
    h.track("u1", "order_paid", json!({}));
    assert!(h.sends("u1").is_empty(), "{}", h.dump());
    assert!(
        h.of_kind(Kind::Deferred)
            .iter()
            .any(|r| r.reason.as_deref() == Some("quiet_hours") && r.template.is_none())
    );
    assert_eq!(
        h.of_kind(Kind::Points).len(),
        1,
        "steps before the send ran at once"
    );
    h.advance(hours(9));
    let sends = h.sends("u1");
    assert_eq!(sends.len(), 1, "{}", h.dump());
    assert_eq!(sends[0].0, t("2025-11-11T00:00:00Z"));
    assert!(
        h.user("u1").tags.contains("thanked"),
        "the rest of the rule ran after the send"
    );
    assert!(h.user("u1").instances.is_empty(), "nothing left held");
    assert!(
        h.of_kind(Kind::Exit).is_empty() && h.of_kind(Kind::Enter).is_empty(),
        "rules have no enter/exit records"
    );
}

#[test]
fn channels_used_by_journeys_rules_and_task_rewards_are_all_found() {
    // The daemon maps every channel the scripts send on to a default `log`
    // channel when none are configured; one used only by a task reward was
    // missed, so every such send dead-lettered.
    let plan = compile(
        r#"
journey hello {
  trigger event signed_up
  send wechat template "HELLO" { }
}

rule thanks {
  when event order_paid
  then { send wecom { text: "谢谢" } }
}

task daily {
  on event checkin
  streak 1 days {
    send sms template "SMS_CHECKIN" { }
  }
}
"#,
    );
    let used: Vec<String> = plan.channels_used().into_iter().collect();
    assert_eq!(used, ["sms", "wechat", "wecom"]);
}

/// Issue 10 item 2: a repeatable referral task with `distinct` pays again
/// only for invitees never counted before, across rewards and after a
/// value slides out of the window.
#[test]
fn a_repeat_of_a_distinct_task_needs_values_never_counted_before() {
    let mut h = Harness::new(
        r#"
task invite {
  on event invite_accepted
  distinct event.invitee_id
  count 2 within 7d { give points 10 }
  repeatable
}
"#,
    );
    let invite = |h: &mut Harness, id: &str| {
        h.track("u1", "invite_accepted", json!({ "invitee_id": id }));
    };
    invite(&mut h, "a");
    invite(&mut h, "b");
    assert_eq!(reward_count(&h, "u1"), 1);
    // The same two again: the count has reset, but they were counted.
    invite(&mut h, "a");
    invite(&mut h, "b");
    assert_eq!(reward_count(&h, "u1"), 1, "{}", h.dump());
    // "c" counts; it slides out of the window before a second new value,
    // and coming back does not make it new.
    invite(&mut h, "c");
    h.advance(days(8));
    invite(&mut h, "c");
    invite(&mut h, "d");
    assert_eq!(reward_count(&h, "u1"), 1, "{}", h.dump());
    invite(&mut h, "e");
    assert_eq!(reward_count(&h, "u1"), 2);
}
