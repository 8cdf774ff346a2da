//! Guard rails: caps by channel, category and all; rolling and calendar
//! windows; quiet hours; consent; `on cap defer`; transactional journeys;
//! categories.

mod support;

use serde_json::json;
use support::*;
use waymark_core::journal::Kind;

fn pinging(policy: &str, header: &str, steps: &str) -> Harness {
    Harness::new(&format!(
        "policy default {{\n{policy}\n}}\njourney j {{\n  trigger event ping\n  entry always\n{header}\n{steps}\n}}\n"
    ))
}

#[test]
fn cap_by_channel_suppresses_beyond_the_limit_and_the_journey_goes_on() {
    let mut h = pinging(
        "  cap 1 sms per 1d",
        "",
        "  send sms template \"S\"\n  send wechat template \"W\"",
    );
    h.track("u1", "ping", json!({}));
    h.track("u1", "ping", json!({}));
    assert_eq!(h.templates("u1"), ["S", "W", "W"]);
    assert_eq!(h.suppressions("u1"), ["cap"]);
}

#[test]
fn cap_on_all_messages_counts_every_channel() {
    let mut h = pinging(
        "  cap 2 messages per 1d",
        "",
        "  send sms template \"S\"\n  send wechat template \"W\"\n  send email template \"E\"",
    );
    h.track("u1", "ping", json!({}));
    assert_eq!(h.templates("u1"), ["S", "W"]);
    assert_eq!(h.suppressions("u1"), ["cap"]);
}

#[test]
fn cap_by_category_counts_only_journeys_of_that_category() {
    let mut h = Harness::new(
        r#"
policy default { cap 1 marketing per 1d }
journey promo { trigger event ping entry always
  send sms template "PROMO" }
journey service { trigger event ping entry always category "service"
  send sms template "SERVICE" }
"#,
    );
    h.track("u1", "ping", json!({}));
    h.track("u1", "ping", json!({}));
    let mut got = h.templates("u1");
    got.sort();
    assert_eq!(got, ["PROMO", "SERVICE", "SERVICE"]);
    assert_eq!(h.suppressions("u1"), ["cap"]);
}

#[test]
fn rolling_cap_reopens_exactly_one_window_after_the_send() {
    let mut h = pinging("  cap 1 sms per 1d", "", "  send sms template \"S\"");
    h.track("u1", "ping", json!({}));
    h.advance(days(1) - mins(1));
    h.track("u1", "ping", json!({}));
    h.advance(mins(1));
    h.track("u1", "ping", json!({}));
    assert_eq!(h.templates("u1").len(), 2);
    assert_eq!(h.suppressions("u1"), ["cap"]);
}

#[test]
fn calendar_day_cap_resets_at_midnight_in_the_policy_tz() {
    // Shanghai midnight is 16:00 UTC.
    let mut h = pinging(
        "  tz \"Asia/Shanghai\"\n  cap 1 sms per day",
        "",
        "  send sms template \"S\"",
    );
    h.advance(hours(15)); // 23:00 Shanghai
    h.track("u1", "ping", json!({}));
    h.advance(mins(30)); // 23:30: same day, capped
    h.track("u1", "ping", json!({}));
    h.advance(mins(30)); // 00:00 next day: a new period, although < 24h later
    h.track("u1", "ping", json!({}));
    assert_eq!(h.templates("u1").len(), 2, "{}", h.dump());
    assert_eq!(h.suppressions("u1"), ["cap"]);
}

#[test]
fn quiet_hours_defer_a_send_to_the_end_of_the_window() {
    let mut h = pinging(
        "  tz \"Asia/Shanghai\"\n  quiet hours 22:00 to 08:00",
        "",
        "  send sms template \"S\"",
    );
    h.advance(hours(15)); // 23:00 Shanghai
    h.track("u1", "ping", json!({}));
    let d = h.for_user(Kind::Deferred, "u1");
    assert_eq!(d[0].reason.as_deref(), Some("quiet_hours"));
    assert_eq!(d[0].until, Some(t("2025-11-11T00:00:00Z")));
    assert!(h.sends("u1").is_empty());
    h.advance(hours(9));
    assert_eq!(h.sends("u1")[0].0, t("2025-11-11T00:00:00Z"));
}

#[test]
fn consent_required_suppresses_without_consent() {
    let mut h = pinging("  consent required", "", "  send sms template \"S\"");
    h.identify("yes", json!({ "consent": { "sms": true } }));
    h.identify("no", json!({ "consent": { "sms": false } }));
    for u in ["yes", "no", "unknown"] {
        h.track(u, "ping", json!({}));
    }
    assert_eq!(h.templates("yes"), ["S"]);
    assert_eq!(h.suppressions("no"), ["consent"]);
    assert_eq!(h.suppressions("unknown"), ["consent"]);
}

#[test]
fn on_cap_defer_holds_the_send_until_the_window_allows() {
    let mut h = Harness::new(
        r#"
policy default { cap 1 sms per 1d on cap defer }
journey a { trigger event ping send sms template "A" }
journey b { trigger event ping wait 6h send sms template "B" }
"#,
    );
    h.track("u1", "ping", json!({}));
    h.advance(hours(6));
    let d = h.for_user(Kind::Deferred, "u1");
    assert_eq!(d[0].reason.as_deref(), Some("cap"));
    assert_eq!(d[0].until, Some(t(START) + days(1)));
    assert!(h.suppressions("u1").is_empty());
    h.advance(days(1));
    assert_eq!(
        h.sends("u1").into_iter().map(|s| s.0).collect::<Vec<_>>(),
        [t(START), t(START) + days(1)]
    );
}

#[test]
fn transactional_bypasses_caps_and_quiet_hours_but_not_consent() {
    let mut h = pinging(
        "  tz \"Asia/Shanghai\"\n  quiet hours 22:00 to 08:00\n  cap 1 sms per 1d\n  consent required",
        "  transactional",
        "  send sms template \"R1\"\n  send sms template \"R2\"",
    );
    h.identify("yes", json!({ "consent": { "sms": true } }));
    h.advance(hours(15)); // 23:00 Shanghai: quiet
    h.track("yes", "ping", json!({}));
    h.track("no", "ping", json!({}));
    assert_eq!(h.templates("yes"), ["R1", "R2"]);
    assert!(h.for_user(Kind::Deferred, "yes").is_empty());
    assert_eq!(h.suppressions("no"), ["consent", "consent"]);
}

#[test]
fn transactional_sends_do_not_count_toward_caps() {
    let mut h = Harness::new(
        r#"
policy default { cap 1 sms per 1d }
journey receipt { trigger event order_paid entry always transactional
  send sms template "RECEIPT" }
journey promo { trigger event ping
  send sms template "PROMO" }
"#,
    );
    h.track("u1", "order_paid", json!({}));
    h.track("u1", "order_paid", json!({}));
    h.track("u1", "ping", json!({}));
    assert_eq!(h.templates("u1"), ["RECEIPT", "RECEIPT", "PROMO"]);
}

#[test]
fn a_journey_uses_the_policy_it_names() {
    let mut h = Harness::new(
        r#"
policy strict { cap 1 sms per 1d }
journey j { trigger event ping entry always policy strict
  send sms template "S" }
journey k { trigger event ping entry always
  send sms template "K" }
"#,
    );
    h.track("u1", "ping", json!({}));
    h.track("u1", "ping", json!({}));
    assert_eq!(h.templates("u1").iter().filter(|t| *t == "K").count(), 2);
    assert_eq!(h.suppressions("u1"), ["cap"]);
}

#[test]
fn caps_apply_across_journeys() {
    let mut h = Harness::new(
        r#"
policy default { cap 1 sms per 1d }
journey a { trigger event ping send sms template "A" }
journey b { trigger event ping send sms template "B" }
"#,
    );
    h.track("u1", "ping", json!({}));
    assert_eq!(h.templates("u1").len(), 1);
    assert_eq!(h.suppressions("u1"), ["cap"]);
}

/// Issue 10 item 1: send history is kept for as long as a cap looks back,
/// not a fixed month; the issue's own case.
#[test]
fn a_sixty_day_cap_remembers_a_send_from_fifty_four_days_ago() {
    let mut h = Harness::at(
        r#"
policy default { cap 1 email per 60d }
journey mail { trigger event ping entry always
  send email template "E" }
journey chat { trigger event chat entry always
  send wechat template "W" }
"#,
        "2025-09-01T02:00:00Z",
    );
    h.track("u1", "ping", json!({}));
    h.advance_to(t("2025-10-10T02:00:00Z"));
    h.track("u1", "chat", json!({}));
    h.advance_to(t("2025-10-25T02:00:00Z"));
    h.track("u1", "ping", json!({}));
    assert_eq!(h.templates("u1"), ["E", "W"]);
    assert_eq!(h.suppressions("u1"), ["cap"]);
    // The window is exact: one second past 60 days the cap opens again.
    h.advance_to(t("2025-10-31T02:00:01Z"));
    h.track("u1", "ping", json!({}));
    assert_eq!(h.templates("u1"), ["E", "W", "E"]);
}

/// The history a user keeps is what the caps need — the `limit` most
/// recent sends each cap counts within its window — so it stays small
/// however long the windows, and uncapped sends are not kept at all.
#[test]
fn a_users_send_history_holds_only_what_the_caps_can_count() {
    let mut h = pinging(
        "  cap 3 sms per 90d\n  cap 1 wechat per 1h",
        "",
        "  send sms template \"S\"\n  send wechat template \"W\"\n  send email template \"E\"",
    );
    for _ in 0..10 {
        h.track("u1", "ping", json!({}));
        h.advance(days(1));
    }
    let sends = h.user("u1").sends;
    let channels: Vec<&str> = sends.iter().map(|s| s.channel.as_str()).collect();
    // The three latest SMS (the cap's limit), the WeChat message of the
    // last ping (the earlier ones fell out of its hour), and no email: no
    // cap counts it.
    assert_eq!(channels, ["sms", "sms", "sms", "wechat"]);
    // The cap let three through, on the first three days.
    assert_eq!(sends[0].at, h.now - days(10));
    assert_eq!(h.templates("u1").iter().filter(|t| *t == "S").count(), 3);
}

/// A deploy whose cap needs more history than was kept says so, naming
/// the policy; one that needs no more says nothing.
#[test]
fn a_deploy_that_lengthens_a_cap_window_warns_that_older_sends_were_not_kept() {
    let script = |cap: &str| {
        format!(
            "policy default {{ {cap} }}\njourney j {{ trigger event ping entry always\n  send email template \"E\" }}\n"
        )
    };
    let mut h = Harness::new(&script("cap 1 email per 30d"));
    let (report, _) = h
        .runtime
        .deploy(compile(&script("cap 1 email per 60d")), false, h.now)
        .unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    let warning = &report.warnings[0];
    assert!(
        warning.starts_with("policy default: `cap 1 email per 60d`"),
        "{warning}"
    );
    assert!(warning.contains("cap 1 email per 30d"), "{warning}");

    let (report, _) = h
        .runtime
        .deploy(compile(&script("cap 1 email per 7d")), false, h.now)
        .unwrap();
    assert_eq!(report.warnings, Vec::<String>::new());
    // Counting more sends over the same window needs more history too.
    let (report, _) = h
        .runtime
        .deploy(compile(&script("cap 2 email per 7d")), false, h.now)
        .unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
}
