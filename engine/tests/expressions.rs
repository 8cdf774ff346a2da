//! Expressions at run time: segments as booleans, history functions over
//! long windows, `now`, null rules and runtime errors, duplicate events.

mod support;

use serde_json::json;
use support::*;
use waymark_core::journal::Kind;

#[test]
fn segment_names_are_booleans_in_expressions() {
    let mut h = Harness::new(
        r#"
segment vip = user.tier == "gold"
journey j { trigger event go entry always
  if vip { send sms template "VIP" } else { send sms template "STD" } }
"#,
    );
    h.identify("g", json!({ "tier": "gold" }));
    h.track("g", "go", json!({}));
    h.track("s", "go", json!({}));
    assert_eq!(h.templates("g"), ["VIP"]);
    assert_eq!(h.templates("s"), ["STD"]);
}

#[test]
fn history_functions_see_events_across_long_windows() {
    let mut h = Harness::new(
        r#"
journey j { trigger event go entry always
  send sms template "H" {
    year: count(order_paid, 365d),
    month: count(order_paid, 30d),
    all: count(order_paid),
    spent: sum(order_paid.amount, 365d),
    last: last(order_paid).amount,
    first: first(order_paid).amount,
    none: last(refund).at
  } }
"#,
    );
    h.track_at(
        "u1",
        "order_paid",
        json!({ "amount": 100 }),
        t(START) - days(400),
    );
    h.track_at(
        "u1",
        "order_paid",
        json!({ "amount": 200 }),
        t(START) - days(200),
    );
    h.track_at(
        "u1",
        "order_paid",
        json!({ "amount": 30 }),
        t(START) - days(2),
    );
    h.track("u1", "go", json!({}));
    let s = h.for_user(Kind::Send, "u1");
    assert_eq!(
        s[0].fields,
        Some(json!({
            "year": 2, "month": 1, "all": 3, "spent": 230,
            "last": 30, "first": 100, "none": null
        }))
    );
}

#[test]
fn now_is_the_engine_clock() {
    let mut h = Harness::new(
        r#"
journey j { trigger event go
  wait 1h
  send sms template "N" { at: now, hour: hour(now, "Asia/Shanghai") } }
"#,
    );
    h.track("u1", "go", json!({}));
    h.advance(hours(3));
    let s = h.for_user(Kind::Send, "u1");
    assert_eq!(
        s[0].fields,
        Some(json!({ "at": "2025-11-10T01:00:00Z", "hour": 9 }))
    );
}

#[test]
fn exact_decimal_arithmetic() {
    let mut h = Harness::new(
        r#"
journey j { trigger event go
  if 0.1 + 0.2 == 0.3 { tag "exact" } }
"#,
    );
    h.track("u1", "go", json!({}));
    assert!(h.user("u1").tags.contains("exact"));
}

#[test]
fn arithmetic_on_null_in_a_send_field_skips_the_send_and_records_an_error() {
    let mut h = Harness::new(
        r#"
journey j { trigger event go
  send sms template "BAD" { total: user.missing + 1 }
  send sms template "GOOD" }
"#,
    );
    h.track("u1", "go", json!({}));
    assert_eq!(h.templates("u1"), ["GOOD"]);
    let errors = h.errors();
    assert_eq!(errors.len(), 1);
    let e = errors[0];
    assert_eq!(e.journey.as_deref(), Some("j"));
    assert!(e.step.is_some());
    assert_eq!(e.user, "u1");
    assert!(e.message.as_deref().is_some_and(|m| !m.is_empty()));
}

#[test]
fn a_failing_condition_is_false_and_recorded() {
    let mut h = Harness::new(
        r#"
journey j { trigger event go
  if user.missing * 2 > 1 { send sms template "THEN" } else { send sms template "ELSE" } }
"#,
    );
    h.track("u1", "go", json!({}));
    assert_eq!(h.templates("u1"), ["ELSE"]);
    assert_eq!(h.errors().len(), 1);
}

#[test]
fn a_failing_trigger_filter_does_not_enter_and_does_not_panic() {
    let mut h = Harness::new(
        r#"
journey j { trigger event go where event.n + 1 > 0
  send sms template "X" }
"#,
    );
    h.track("u1", "go", json!({}));
    h.track("u2", "go", json!({ "n": 1 }));
    assert!(h.for_user(Kind::Enter, "u1").is_empty());
    assert_eq!(h.for_user(Kind::Error, "u1").len(), 1);
    assert_eq!(h.templates("u2"), ["X"]);
}

/// Spec reading: §6 says "null compared with anything but null is false",
/// but §4's own example (`user.tier != "gold"` upgrading a user who has no
/// tier yet) only works if `!=` against null is true. We keep the engine's
/// reading: ordering comparisons and `==` with null are false, `!=` is true.
#[test]
fn null_comparisons_are_false_and_missing_fields_are_null() {
    let mut h = Harness::new(
        r#"
journey j { trigger event go
  if user.age > 18 { tag "adult" }
  if user.nothing.deeper == null { tag "null_chain" }
  if user.age != 3 { tag "ne" } }
"#,
    );
    h.track("u1", "go", json!({}));
    let tags = h.user("u1").tags;
    assert!(!tags.contains("adult"));
    assert!(tags.contains("null_chain"));
    assert!(tags.contains("ne"), "null != 3 holds (see the note above)");
}

#[test]
fn duplicate_message_id_is_dropped() {
    let mut h = Harness::new(
        r#"
rule r { when event buy then { give points 1 } }
"#,
    );
    let now = h.now;
    h.track_with_id("u1", "buy", json!({}), now, "same");
    h.advance(hours(1));
    let now = h.now;
    h.track_with_id("u1", "buy", json!({}), now, "same");
    h.track_with_id("u1", "buy", json!({}), now, "other");
    assert_eq!(h.user("u1").points.balance(), 2.into());
}

#[test]
fn interpolation_in_send_fields() {
    let mut h = Harness::new(
        r#"
journey j { trigger event go
  send wecom { text: "恭喜 {user.nickname} 升级" } }
"#,
    );
    h.identify("u1", json!({ "nickname": "小王" }));
    h.track("u1", "go", json!({}));
    assert_eq!(
        h.for_user(Kind::Send, "u1")[0].fields,
        Some(json!({ "text": "恭喜 小王 升级" }))
    );
}
