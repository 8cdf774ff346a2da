//! Journey steps: sends, waits, branches, splits, coupons, points, tags,
//! profile writes, emits, repeats and exits.

mod support;

use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use support::*;
use waymark_core::journal::Kind;

fn journey(steps: &str) -> Harness {
    Harness::new(&format!(
        "journey j {{\n  trigger event go\n  entry always\n{steps}\n}}\n"
    ))
}

#[test]
fn send_records_channel_template_and_evaluated_fields() {
    let mut h = journey(r#"  send wechat template "T1" { name: user.nickname, n: 1 + 2 }"#);
    h.identify("u1", json!({ "nickname": "小王" }));
    h.track("u1", "go", json!({}));
    let s = h.for_user(Kind::Send, "u1");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].channel.as_deref(), Some("wechat"));
    assert_eq!(s[0].template.as_deref(), Some("T1"));
    assert_eq!(s[0].fields, Some(json!({ "name": "小王", "n": 3 })));
    assert!(s[0].idempotency_key.is_some());
}

#[test]
fn send_addresses_the_channels_trait_the_steps_to_field_or_is_suppressed_without_one() {
    use waymark_core::deployment::Recipient;
    let mut h = journey(
        "  send email { subject: \"Hi\", body: \"…\" }\n  send email { to: \"ops@example.com\", subject: \"Copy\", body: \"…\" }\n  send wechat template \"T\"",
    );
    let recipients = &mut h.runtime.deployment.recipients;
    recipients.insert("email".into(), Recipient::Trait("email".into()));
    recipients.insert("wechat".into(), Recipient::Trait("contact.openid".into()));
    h.identify(
        "has",
        json!({ "email": "a@example.com", "contact": { "openid": "o-1" } }),
    );
    h.identify("blank", json!({ "email": "  " }));
    h.track("has", "go", json!({}));
    h.track("blank", "go", json!({}));
    h.track("none", "go", json!({}));

    let to = |user: &str| -> Vec<Option<String>> {
        h.for_user(Kind::Send, user)
            .iter()
            .map(|r| r.to.clone())
            .collect()
    };
    assert_eq!(
        to("has"),
        [
            Some("a@example.com".into()),
            Some("ops@example.com".into()),
            Some("o-1".into())
        ]
    );
    // The `to` field addresses the send and is not one of its fields.
    let copy = &h.for_user(Kind::Send, "has")[1];
    assert_eq!(copy.fields, Some(json!({ "subject": "Copy", "body": "…" })));
    for user in ["blank", "none"] {
        assert_eq!(to(user), [Some("ops@example.com".into())], "{user}");
        let reasons: Vec<_> = h
            .for_user(Kind::Suppressed, user)
            .iter()
            .map(|r| (r.channel.clone().unwrap(), r.reason.clone().unwrap()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("email".to_string(), "no_address".to_string()),
                ("wechat".to_string(), "no_address".to_string())
            ],
            "{user}"
        );
    }
}

#[test]
fn send_without_configured_channels_addresses_the_user_id() {
    let mut h = journey("  send sms template \"T\"");
    h.track("u1", "go", json!({}));
    assert_eq!(h.for_user(Kind::Send, "u1")[0].to.as_deref(), Some("u1"));
}

#[test]
fn wait_duration_resumes_after_it() {
    let mut h = journey("  wait 2h\n  send sms template \"T\"");
    h.track("u1", "go", json!({}));
    h.advance(hours(2) - mins(1));
    assert!(h.sends("u1").is_empty());
    h.advance(mins(1));
    assert_eq!(h.sends("u1")[0].0, t(START) + hours(2));
}

#[test]
fn wait_until_time_of_day_resumes_at_the_next_local_occurrence() {
    let mut h = journey("  wait until 09:00 tz \"Asia/Shanghai\"\n  send sms template \"T\"");
    // 08:00 Shanghai: 09:00 the same day.
    h.track("u1", "go", json!({}));
    // 10:00 Shanghai: 09:00 the next day.
    h.advance(hours(2));
    h.track("u2", "go", json!({}));
    h.advance(days(2));
    assert_eq!(h.sends("u1")[0].0, t("2025-11-10T01:00:00Z"));
    assert_eq!(h.sends("u2")[0].0, t("2025-11-11T01:00:00Z"));
}

#[test]
fn wait_until_expression_resumes_at_that_timestamp_and_a_past_one_at_once() {
    let past = t(START) - days(3);
    let mut h2 = journey("  wait until timestamp(event.deadline)\n  send sms template \"T\"");
    h2.track(
        "future",
        "go",
        json!({ "deadline": "2025-11-12T00:00:00Z" }),
    );
    h2.track("past", "go", json!({ "deadline": past.to_rfc3339() }));
    assert_eq!(
        h2.sends("past")[0].0,
        t(START),
        "a past time resumes at once"
    );
    assert!(h2.sends("future").is_empty());
    h2.advance(days(3));
    assert_eq!(h2.sends("future")[0].0, t("2025-11-12T00:00:00Z"));
}

#[test]
fn wait_until_a_date_resumes_at_its_local_midnight() {
    let mut h = Harness::new(
        "journey j {\n  trigger event go\n  entry always\n  tz \"Asia/Shanghai\"\n  wait until date(timestamp(event.day))\n  send sms template \"T\"\n}\n",
    );
    h.track("u1", "go", json!({ "day": "2025-11-12T12:00:00+08:00" }));
    h.advance(days(3));
    // 12 November 00:00 in Shanghai, not in UTC (eight hours later).
    assert_eq!(h.sends("u1")[0].0, t("2025-11-11T16:00:00Z"));
}

#[test]
fn wait_for_event_resumes_on_a_matching_event_with_its_binding() {
    let mut h = journey(
        r#"  wait for event order_paid where event.amount >= 10 within 1d as o {
    send sms template "THANKS" { amount: o.amount }
  } else {
    send sms template "TIMEOUT"
  }
  send sms template "AFTER""#,
    );
    h.track("u1", "go", json!({}));
    h.advance(hours(1));
    h.track("u1", "order_paid", json!({ "amount": 5 }));
    assert!(h.sends("u1").is_empty(), "where must hold");
    h.track("u1", "order_paid", json!({ "amount": 12 }));
    assert_eq!(h.templates("u1"), ["THANKS", "AFTER"]);
    let s = h.for_user(Kind::Send, "u1");
    assert_eq!(s[0].fields, Some(json!({ "amount": 12 })));
    assert_eq!(s[0].at, t(START) + hours(1));
    h.advance(days(2));
    assert_eq!(h.templates("u1"), ["THANKS", "AFTER"]);
}

#[test]
fn wait_for_event_times_out_into_else() {
    let mut h = journey(
        r#"  wait for event order_paid within 1d {
    send sms template "THANKS"
  } else {
    send sms template "TIMEOUT"
  }
  send sms template "AFTER""#,
    );
    h.track("u1", "go", json!({}));
    h.advance(days(1) - mins(1));
    assert!(h.sends("u1").is_empty());
    h.advance(mins(1));
    assert_eq!(h.templates("u1"), ["TIMEOUT", "AFTER"]);
    assert_eq!(h.sends("u1")[0].0, t(START) + days(1));
}

#[test]
fn if_else_if_else_takes_the_first_branch_that_holds() {
    let mut h = journey(
        r#"  if user.tier == "gold" {
    send sms template "GOLD"
  } else if user.tier == "silver" {
    send sms template "SILVER"
  } else {
    send sms template "OTHER"
  }"#,
    );
    h.identify("g", json!({ "tier": "gold" }));
    h.identify("s", json!({ "tier": "silver" }));
    for u in ["g", "s", "n"] {
        h.track(u, "go", json!({}));
    }
    assert_eq!(h.templates("g"), ["GOLD"]);
    assert_eq!(h.templates("s"), ["SILVER"]);
    assert_eq!(h.templates("n"), ["OTHER"], "a null comparison is false");
}

const SPLIT: &str = r#"  split test {
    20% a { send sms template "A" }
    30% b { send sms template "B" }
    50% holdout { }
  }
  tag "done""#;

#[test]
fn split_assignment_is_stable_per_user() {
    let mut h = journey(SPLIT);
    for _ in 0..5 {
        h.track("u1", "go", json!({}));
    }
    let arms: BTreeSet<String> = h
        .for_user(Kind::Tag, "u1")
        .iter()
        .map(|r| r.arms.as_ref().unwrap()["test"].clone())
        .collect();
    assert_eq!(h.for_user(Kind::Tag, "u1").len(), 5);
    assert_eq!(arms.len(), 1, "{}", h.dump());
}

#[test]
fn split_percentages_are_honoured_over_many_users_and_empty_arm_is_a_holdout() {
    let mut h = journey(SPLIT);
    let n = 2000;
    for i in 0..n {
        h.track(&format!("user-{i}"), "go", json!({}));
    }
    let mut arms: BTreeMap<String, usize> = BTreeMap::new();
    for r in h.of_kind(Kind::Tag) {
        *arms
            .entry(r.arms.as_ref().unwrap()["test"].clone())
            .or_default() += 1;
    }
    let share = |arm: &str| arms.get(arm).copied().unwrap_or(0) as f64 / n as f64;
    assert!((share("a") - 0.2).abs() < 0.04, "{arms:?}");
    assert!((share("b") - 0.3).abs() < 0.04, "{arms:?}");
    assert!((share("holdout") - 0.5).abs() < 0.04, "{arms:?}");
    // The holdout arm sends nothing, and goes on after the split.
    for r in h.of_kind(Kind::Tag) {
        let arm = &r.arms.as_ref().unwrap()["test"];
        let sends = h.templates(&r.user);
        match arm.as_str() {
            "holdout" => assert!(sends.is_empty()),
            "a" => assert_eq!(sends, ["A"]),
            _ => assert_eq!(sends, ["B"]),
        }
    }
}

#[test]
fn give_coupon_issues_unique_codes_bound_with_code_and_expiry() {
    let mut h = journey(
        r#"  give coupon "CART10" expires in 7d as c
  send sms template "C" { code: c.code, until: c.expires_at }"#,
    );
    h.track("u1", "go", json!({}));
    h.track("u2", "go", json!({}));
    h.advance(days(1));
    h.track("u1", "go", json!({}));
    let coupons = h.of_kind(Kind::Coupon);
    assert_eq!(coupons.len(), 3);
    let codes: BTreeSet<_> = coupons.iter().map(|r| r.code.clone().unwrap()).collect();
    assert_eq!(codes.len(), 3, "codes are unique: {codes:?}");
    let first = coupons[0];
    assert_eq!(first.coupon.as_deref(), Some("CART10"));
    assert_eq!(first.expires_at, Some(t(START) + days(7)));
    let send = h.for_user(Kind::Send, "u1")[0];
    assert_eq!(
        send.fields,
        Some(json!({ "code": first.code.clone().unwrap(), "until": "2025-11-17T00:00:00Z" }))
    );
    assert_eq!(h.user("u1").coupons.len(), 2);
}

#[test]
fn give_coupon_expires_at_an_expression() {
    let mut h = journey(r#"  give coupon "X" expires at now + 2d"#);
    h.track("u1", "go", json!({}));
    assert_eq!(
        h.of_kind(Kind::Coupon)[0].expires_at,
        Some(t(START) + days(2))
    );
}

#[test]
fn give_coupon_expires_at_a_date_at_the_end_of_that_local_day() {
    let mut h = Harness::new(
        "journey j {\n  trigger event go\n  entry always\n  tz \"Asia/Shanghai\"\n  give coupon \"X\" expires at date(now)\n}\n",
    );
    // START is 08:00 on 10 November in Shanghai: valid through that day.
    h.track("u1", "go", json!({}));
    assert_eq!(
        h.of_kind(Kind::Coupon)[0].expires_at,
        Some(t("2025-11-10T16:00:00Z"))
    );
}

#[test]
fn give_points_with_reason_and_expiry_expires_them_later() {
    let mut h = journey(r#"  give points 100 reason "welcome" expires in 30d"#);
    h.track("u1", "go", json!({}));
    let p = h.for_user(Kind::Points, "u1");
    assert_eq!(p[0].delta, Some(json!(100)));
    assert_eq!(p[0].balance, Some(json!(100)));
    assert_eq!(p[0].reason.as_deref(), Some("welcome"));
    h.advance(days(30) - mins(1));
    assert_eq!(h.user("u1").points.balance(), 100.into());
    h.advance(mins(1));
    assert_eq!(h.user("u1").points.balance(), 0.into());
    let p = h.for_user(Kind::Points, "u1");
    assert_eq!(p[1].delta, Some(json!(-100)));
    assert_eq!(p[1].reason.as_deref(), Some("expired"));
}

#[test]
fn take_points_never_goes_below_zero_and_is_recorded_as_refused() {
    let mut h = Harness::new(
        r#"
journey earn { trigger event earn entry always
  give points 50 }
journey spend { trigger event spend entry always
  take points event.n reason "redeem" }
"#,
    );
    h.track("u1", "earn", json!({}));
    h.track("u1", "spend", json!({ "n": 30 }));
    h.track("u1", "spend", json!({ "n": 30 }));
    let p = h.for_user(Kind::Points, "u1");
    assert_eq!(p[1].delta, Some(json!(-30)));
    assert_eq!(p[1].balance, Some(json!(20)));
    assert_eq!(p[2].delta, Some(json!(0)));
    assert_eq!(p[2].balance, Some(json!(20)));
    assert!(p[2].message.as_deref().unwrap().contains("refused"));
    assert_eq!(h.user("u1").points.balance(), 20.into());
}

#[test]
fn tag_and_untag_change_user_tags() {
    let mut h = journey("  tag \"vip\"\n  tag \"new\"\n  untag \"new\"");
    h.track("u1", "go", json!({}));
    let tags: Vec<_> = h.user("u1").tags.into_iter().collect();
    assert_eq!(tags, ["vip"]);
    assert_eq!(h.for_user(Kind::Tag, "u1").len(), 2);
    assert_eq!(h.for_user(Kind::Untag, "u1")[0].tag.as_deref(), Some("new"));
}

#[test]
fn set_and_unset_write_user_fields() {
    let mut h = journey(
        "  set user.tier = \"gold\"\n  set user.prefs.lang = \"zh\"\n  set user.tmp = 1\n  unset user.tmp",
    );
    h.track("u1", "go", json!({}));
    assert_eq!(
        h.trait_of("u1", "tier").map(|v| v.to_json()),
        Some(json!("gold"))
    );
    assert_eq!(
        h.trait_of("u1", "prefs").map(|v| v.to_json()),
        Some(json!({ "lang": "zh" }))
    );
    assert_eq!(h.trait_of("u1", "tmp"), None);
    let sets = h.for_user(Kind::Set, "u1");
    assert_eq!(sets[0].path.as_deref(), Some("tier"));
    assert_eq!(sets[3].value, Some(serde_json::Value::Null));
}

#[test]
fn emit_is_seen_by_other_journeys_rules_and_tasks() {
    let mut h = Harness::new(
        r#"
journey source { trigger event go
  emit vip_reached { level: 3 } }
journey listener { trigger event vip_reached where event.level == 3
  send sms template "FROM_JOURNEY" }
rule r { when event vip_reached then { tag "ruled" } }
task t { on event vip_reached count 1 { give points 7 } }
"#,
    );
    h.track("u1", "go", json!({}));
    assert_eq!(
        h.for_user(Kind::Emit, "u1")[0].event.as_deref(),
        Some("vip_reached")
    );
    assert_eq!(h.templates("u1"), ["FROM_JOURNEY"]);
    assert!(h.user("u1").tags.contains("ruled"));
    assert_eq!(h.for_user(Kind::Reward, "u1").len(), 1);
    assert_eq!(h.user("u1").points.balance(), 7.into());
}

#[test]
fn repeat_n_times_every_d_runs_the_body_n_times_spaced() {
    let mut h = journey(
        "  repeat 3 times every 1d {\n    send sms template \"R\"\n  }\n  send sms template \"END\"",
    );
    h.track("u1", "go", json!({}));
    h.advance(days(5));
    let at: Vec<_> = h.sends("u1").into_iter().map(|s| s.0).collect();
    assert_eq!(
        at,
        [
            t(START),
            t(START) + days(1),
            t(START) + days(2),
            t(START) + days(2)
        ]
    );
    assert_eq!(h.templates("u1"), ["R", "R", "R", "END"]);
}

#[test]
fn repeat_without_every_runs_back_to_back() {
    let mut h = journey("  repeat 2 times {\n    give points 1\n  }");
    h.track("u1", "go", json!({}));
    assert_eq!(h.user("u1").points.balance(), 2.into());
}

#[test]
fn exit_step_leaves_the_journey_now() {
    let mut h =
        journey("  send sms template \"A\"\n  if true {\n    exit\n  }\n  send sms template \"B\"");
    h.track("u1", "go", json!({}));
    assert_eq!(h.templates("u1"), ["A"]);
    assert_eq!(
        h.for_user(Kind::Exit, "u1")[0].reason.as_deref(),
        Some("exit")
    );
    assert!(h.user("u1").instances.is_empty());
}

#[test]
fn reaching_the_end_completes_the_instance() {
    let mut h = journey("  send sms template \"A\"");
    h.track("u1", "go", json!({}));
    assert_eq!(
        h.for_user(Kind::Exit, "u1")[0].reason.as_deref(),
        Some("completed")
    );
}

#[test]
fn repeat_every_still_waits_when_the_body_ends_with_a_wait() {
    // Reading: `every D` is the pause between one iteration's end and the
    // next one's start (what the engine does for a body without waits).
    let mut h = journey(
        "  repeat 2 times every 1d {\n    send sms template \"R\"\n    wait 1h\n  }\n  send sms template \"END\"",
    );
    h.track("u1", "go", json!({}));
    h.advance(days(5));
    let at: Vec<_> = h.sends("u1").into_iter().map(|s| s.0).collect();
    assert_eq!(
        at,
        [
            t(START),
            t(START) + days(1) + hours(1),
            t(START) + days(1) + hours(2)
        ],
        "{}",
        h.dump()
    );
}

/// A customer's staff-confirmed send (a WeCom mass send), then a wait
/// for its outcome: the first block if sent, `else` otherwise.
const CONFIRMED: &str = r#"  send mass via staff user.advisor { text: "购物车提醒" }
  wait 1h
  wait for confirmation within 1d as o {
    set user.reached_by = o.staff
  } else {
    send sms template "SMS_CART"
  }
  tag "done""#;

/// What came of `user`'s last staff-confirmed send, reported now.
fn report(h: &mut Harness, user: &str, outcome: &str) {
    let send = h
        .for_user(Kind::Send, user)
        .into_iter()
        .rfind(|r| r.channel.as_deref() == Some("mass"))
        .expect("a send on mass")
        .clone();
    let staff = send
        .fields
        .as_ref()
        .and_then(|f| f["staff"].as_str())
        .map(str::to_string);
    let now = h.now;
    h.ingest(waymark_core::model::Input::Outcome(
        waymark_core::model::SendOutcome::new(&send, outcome, staff, now),
    ));
}

#[test]
fn a_wait_for_confirmation_goes_on_with_its_sends_outcome_even_one_that_came_early() {
    let mut h = journey(CONFIRMED);
    h.identify("u1", json!({ "advisor": "zhangsan" }));
    h.identify("u2", json!({ "advisor": "lisi" }));
    h.track("u1", "go", json!({}));
    h.track("u2", "go", json!({}));
    // The staff have until the wait's `within` after the send.
    let send = h.for_user(Kind::Send, "u1")[0].clone();
    assert_eq!(send.until, Some(h.now + days(1)));
    // u1's outcome comes while u1 is still on the `wait 1h` before the
    // wait: kept, and taken when the instance gets there.
    h.advance(mins(10));
    report(&mut h, "u1", "sent");
    let outcome = h.for_user(Kind::Outcome, "u1");
    assert_eq!(outcome.len(), 1);
    assert_eq!(outcome[0].reason.as_deref(), Some("sent"));
    assert_eq!(outcome[0].staff.as_deref(), Some("zhangsan"));
    assert_eq!(outcome[0].idempotency_key, send.idempotency_key);
    assert!(
        h.for_user(Kind::Tag, "u1").is_empty(),
        "not yet at the wait"
    );
    h.advance(hours(1));
    assert_eq!(
        h.trait_of("u1", "reached_by"),
        Some(waymark_dsl::value::Value::String("zhangsan".into()))
    );
    assert_eq!(h.for_user(Kind::Tag, "u1").len(), 1);
    assert!(h.sends("u1").iter().all(|(_, c, _)| c != "sms"));
    // u2's comes while u2 waits: over quota runs `else`.
    report(&mut h, "u2", "over_quota");
    assert_eq!(h.templates("u2"), ["SMS_CART"]);
    assert_eq!(h.for_user(Kind::Tag, "u2").len(), 1);
    // A second report of the same outcome is a redelivery: dropped.
    report(&mut h, "u2", "over_quota");
    assert_eq!(h.for_user(Kind::Outcome, "u2").len(), 1);
}

#[test]
fn a_wait_for_confirmation_times_out_into_else_and_one_with_nothing_sent_goes_there_at_once() {
    let mut h = journey(CONFIRMED);
    h.identify("u1", json!({ "advisor": "zhangsan" }));
    h.track("u1", "go", json!({}));
    h.advance(hours(1) + days(1));
    assert_eq!(h.templates("u1"), ["SMS_CART"]);
    // A late outcome is journaled, and moves nothing.
    report(&mut h, "u1", "sent");
    assert_eq!(h.for_user(Kind::Outcome, "u1").len(), 1);
    assert_eq!(h.trait_of("u1", "reached_by"), None);

    // No address for the send (an empty `to`): suppressed, and the wait
    // has nothing to wait on.
    let mut h = journey(&CONFIRMED.replace("{ text:", "{ to: \"\", text:"));
    h.identify("u3", json!({ "advisor": "zhangsan" }));
    h.track("u3", "go", json!({}));
    assert_eq!(h.suppressions("u3"), ["no_address"]);
    h.advance(hours(1));
    assert_eq!(h.templates("u3"), ["SMS_CART"]);
}

#[test]
fn a_staff_confirmed_send_without_a_staff_member_is_suppressed() {
    let mut h = journey(&CONFIRMED.replace(" via staff user.advisor", ""));
    h.runtime
        .deployment
        .staff_traits
        .insert("mass".into(), "wecom_staff".into());
    h.identify("has", json!({ "wecom_staff": "wangwu" }));
    h.identify("none", json!({}));
    h.track("has", "go", json!({}));
    h.track("none", "go", json!({}));
    let sent = h.for_user(Kind::Send, "has");
    assert_eq!(sent[0].fields.as_ref().unwrap()["staff"], "wangwu");
    assert_eq!(h.suppressions("none"), ["no_staff"]);
    h.advance(hours(1));
    assert_eq!(h.templates("none"), ["SMS_CART"]);
}

#[test]
fn a_customer_over_the_platforms_quota_is_suppressed_until_it_resets_and_outcomes_correct_the_count()
 {
    use waymark_core::deployment::PlatformQuota;
    use waymark_dsl::plan::CalendarPeriod;
    let mut h = Harness::new(
        "journey j {\n  trigger event go\n  entry always\n  send mass { text: \"hi\", staff: \"zhangsan\" }\n  wait for confirmation within 1h\n}\njourney k {\n  trigger event go2\n  entry always\n  send mass2 { text: \"yo\", staff: \"zhangsan\" }\n}\n",
    );
    // Two channels of one corporation share its quota: 1 a day (China time).
    for channel in ["mass", "mass2"] {
        h.runtime.deployment.platform_quotas.insert(
            channel.into(),
            PlatformQuota {
                group: "wecom:ww1".into(),
                per: CalendarPeriod::Day,
                limit: None,
                tz: chrono_tz::Asia::Shanghai,
            },
        );
    }
    // START is 08:00 in Shanghai: the day resets at 16:00 UTC.
    h.track("u1", "go", json!({}));
    assert_eq!(h.for_user(Kind::Send, "u1").len(), 1);
    h.track("u1", "go2", json!({}));
    let over = h.for_user(Kind::Suppressed, "u1");
    assert_eq!(over.len(), 1);
    assert_eq!(over[0].reason.as_deref(), Some("platform_quota"));
    assert_eq!(over[0].until, Some(t("2025-11-10T16:00:00Z")));
    // Not confirmed: the customer got nothing, so the quota is theirs again.
    report(&mut h, "u1", "not_confirmed");
    h.track("u1", "go2", json!({}));
    assert_eq!(h.for_user(Kind::Send, "u1").len(), 2);
    // Tomorrow (China time) is a new day.
    h.advance_to(t("2025-11-10T16:00:00Z"));
    h.track("u1", "go", json!({}));
    assert_eq!(h.for_user(Kind::Send, "u1").len(), 3);
    // Each customer has their own count.
    h.track("u2", "go2", json!({}));
    h.track("u2", "go", json!({}));
    assert_eq!(h.suppressions("u2"), ["platform_quota"]);
    assert_eq!(h.suppressions("u1"), ["platform_quota"]);
}

#[test]
fn a_mirrored_tag_on_a_customer_becomes_a_delivery_and_a_platforms_tags_come_back_unmirrored() {
    use waymark_core::deployment::TagSync;
    let mut h = journey("  tag \"vip\"\n  untag \"vip\"\n  tag \"local_only\"");
    h.runtime.deployment.tag_syncs.insert(
        "mass".into(),
        TagSync {
            tags: BTreeMap::from([("vip".to_string(), "etVIP".to_string())]),
            address: "wecom_external_userid".into(),
            staff: "wecom_staff".into(),
        },
    );
    h.identify(
        "c1",
        json!({ "wecom_external_userid": "wm1", "wecom_staff": "zhangsan" }),
    );
    h.identify("member", json!({}));
    h.track("c1", "go", json!({}));
    h.track("member", "go", json!({}));
    let tagged = h.for_user(Kind::Tag, "c1");
    assert_eq!(tagged[0].channel.as_deref(), Some("mass"));
    assert_eq!(tagged[0].to.as_deref(), Some("wm1"));
    assert_eq!(
        tagged[0].fields,
        Some(json!({ "add_tag": ["etVIP"], "staff": "zhangsan" }))
    );
    // A tag no channel mirrors stays here.
    assert_eq!(tagged[1].channel, None);
    let untagged = h.for_user(Kind::Untag, "c1");
    assert_eq!(
        untagged[0].fields,
        Some(json!({ "remove_tag": ["etVIP"], "staff": "zhangsan" }))
    );
    // Not a WeCom customer: nothing to mirror.
    assert!(
        h.for_user(Kind::Tag, "member")
            .iter()
            .all(|r| r.channel.is_none())
    );
    let outbox = waymark_engine::runtime::effects::sends(h.records());
    assert_eq!(outbox.len(), 2, "the tag and the untag of c1 are delivered");

    // WeCom says c1 carries vip again and member does not: records with
    // the channel as reason, none of them mirrored back.
    h.mark();
    h.ingest(waymark_core::model::Input::Tags {
        user: "c1".into(),
        add: vec!["vip".into()],
        remove: vec!["local_only".into(), "never_had".into()],
        source: "mass".into(),
        at: h.now,
    });
    let back = h.records_since_mark();
    let kinds: Vec<(Kind, Option<&str>)> =
        back.iter().map(|r| (r.kind, r.tag.as_deref())).collect();
    assert_eq!(
        kinds,
        [(Kind::Tag, Some("vip")), (Kind::Untag, Some("local_only"))]
    );
    assert!(
        back.iter()
            .all(|r| r.channel.is_none() && r.reason.as_deref() == Some("mass"))
    );
    assert!(h.user("c1").tags.contains("vip"));
}
