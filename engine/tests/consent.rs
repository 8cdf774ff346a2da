//! The consent ledger: every change of a channel's consent — by an
//! identify, an SMS opt-out reply, an API call, a journey's `set` or a
//! merge — is a `consent` record, and `consent required` reads the state
//! the changes leave. Grants of one-time subscribe messages: each accept
//! adds one, each send on a channel that spends them takes one.

mod support;

use serde_json::json;
use support::*;
use waymark_core::consent::ConsentChange;
use waymark_core::journal::{Kind, Record};
use waymark_core::model::Input;

const PROMO: &str = r#"
policy default { consent required }
journey promo { trigger event ping entry always
  send sms template "S" }
"#;

/// (channel, granted, source) of each consent record of `user`.
fn ledger(h: &Harness, user: &str) -> Vec<(String, bool, String)> {
    h.for_user(Kind::Consent, user)
        .into_iter()
        .map(|r| {
            let c = r
                .consent
                .as_ref()
                .expect("a consent record holds its change");
            (r.channel.clone().unwrap(), c.granted, c.source.clone())
        })
        .collect()
}

fn entry(channel: &str, granted: bool, source: &str) -> (String, bool, String) {
    (channel.to_string(), granted, source.to_string())
}

fn consent_of(h: &Harness, user: &str, channel: &str) -> Option<waymark_dsl::value::Value> {
    h.trait_of(user, "consent")
        .map(|c| c.field(channel).clone())
}

#[test]
fn each_change_an_identify_makes_is_one_record_and_repeats_are_none() {
    let mut h = Harness::new(PROMO);
    h.identify("u1", json!({"consent": {"sms": true, "email": false}}));
    h.identify("u1", json!({"consent": {"sms": true}, "tier": "gold"}));
    h.identify("u1", json!({"tier": "silver"}));
    h.identify("u1", json!({"consent": {"sms": false}}));
    assert_eq!(
        ledger(&h, "u1"),
        [
            entry("email", false, "identify"),
            entry("sms", true, "identify"),
            entry("sms", false, "identify"),
        ]
    );
    h.track("u1", "ping", json!({}));
    assert_eq!(h.suppressions("u1"), ["consent"]);
}

#[test]
fn an_opt_out_reply_revokes_sms_consent_however_it_is_typed() {
    let mut h = Harness::new(PROMO);
    for (user, reply) in [
        ("a", "TD"),
        ("b", "td"),
        ("c", " 退订 "),
        ("d", "Ｒ"),
        ("e", "t。"),
    ] {
        h.identify(user, json!({"consent": {"sms": true}}));
        h.track(user, "ping", json!({}));
        h.track(user, "sms_reply", json!({"text": reply}));
        h.track(user, "ping", json!({}));
        assert_eq!(h.templates(user), ["S"], "{user} replied {reply:?}");
        assert_eq!(h.suppressions(user), ["consent"]);
        let records = h.for_user(Kind::Consent, user);
        let revoked = records.last().unwrap();
        let change = revoked.consent.as_ref().unwrap();
        assert_eq!((change.granted, change.source.as_str()), (false, "reply"));
        assert_eq!(
            change.evidence.as_deref(),
            Some(format!("replied {reply:?}").as_str())
        );
        assert!(
            change.message_id.is_some(),
            "the reply's message id is kept"
        );
    }
    // Other replies change nothing; a second opt-out is no new change.
    h.identify("f", json!({"consent": {"sms": true}}));
    h.track("f", "sms_reply", json!({"text": "好的，谢谢"}));
    h.track("f", "sms_reply", json!({"body": "TD"}));
    h.track("f", "ping", json!({}));
    assert_eq!(h.templates("f"), ["S"]);
    h.track("f", "sms_reply", json!({"text": "TD"}));
    h.track("f", "sms_reply", json!({"text": "TD"}));
    assert_eq!(
        ledger(&h, "f"),
        [entry("sms", true, "identify"), entry("sms", false, "reply")]
    );
}

#[test]
fn the_reply_rules_come_from_the_deployment() {
    let mut h = Harness::new(PROMO);
    let rules = waymark_core::consent::ConsentRules {
        reply_event: "sms_received".into(),
        reply_text: "content".into(),
        opt_out_channels: vec!["sms".into(), "sms_promo".into()],
        ..Default::default()
    }
    .with_words(["拒收"]);
    h.runtime.deployment.consent = rules;
    h.identify("u1", json!({"consent": {"sms": true, "sms_promo": true}}));
    h.track("u1", "sms_reply", json!({"text": "TD"}));
    h.track("u1", "sms_received", json!({"content": "TD"}));
    assert_eq!(ledger(&h, "u1").len(), 2, "neither reply opts out");
    h.track("u1", "sms_received", json!({"content": "拒收"}));
    assert_eq!(
        ledger(&h, "u1")[2..],
        [
            entry("sms", false, "reply"),
            entry("sms_promo", false, "reply")
        ]
    );
}

fn api(user: &str, channel: &str, granted: bool, at: chrono::DateTime<chrono::Utc>) -> Input {
    Input::Consent {
        user: user.into(),
        channel: Some(channel.into()),
        change: ConsentChange {
            evidence: Some("signed form #42".into()),
            by: Some("crm".into()),
            ..ConsentChange::new(granted, "api")
        },
        at,
    }
}

#[test]
fn an_api_call_sets_consent_once_with_who_and_what_evidence() {
    let mut h = Harness::new(PROMO);
    let now = h.now;
    let out: Vec<Record> = h
        .runtime
        .ingest(&[api("u1", "sms", true, now)], now)
        .unwrap();
    assert_eq!(out.len(), 1);
    let change = out[0].consent.as_ref().unwrap();
    assert_eq!(out[0].channel.as_deref(), Some("sms"));
    assert_eq!(change.by.as_deref(), Some("crm"));
    assert_eq!(change.evidence.as_deref(), Some("signed form #42"));
    assert_eq!(change.purpose, "marketing");
    // The same call again changes nothing and records nothing.
    let again = h
        .runtime
        .ingest(&[api("u1", "sms", true, now)], now)
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(
        consent_of(&h, "u1", "sms"),
        Some(waymark_dsl::value::Value::Bool(true))
    );
    h.track("u1", "ping", json!({}));
    assert_eq!(h.templates("u1"), ["S"]);
}

#[test]
fn a_journey_that_sets_consent_leaves_a_record_naming_it() {
    let mut h = Harness::new(
        r#"
journey complaint { trigger event complained entry always
  set user.consent.sms = false }
"#,
    );
    h.identify("u1", json!({"consent": {"sms": true}}));
    h.track("u1", "complained", json!({}));
    let records = h.for_user(Kind::Consent, "u1");
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].journey.as_deref(), Some("complaint"));
    let change = records[1].consent.as_ref().unwrap();
    assert_eq!((change.granted, change.source.as_str()), (false, "journey"));
}

fn merge(h: &mut Harness, user: &str, from: &str) -> Vec<Record> {
    let now = h.now;
    let input = Input::Merge {
        user: user.into(),
        from: from.into(),
        how: "alias".into(),
        message_id: None,
    };
    h.runtime.ingest(&[input], now).unwrap()
}

#[test]
fn a_refusal_under_either_id_holds_after_a_merge() {
    let mut h = Harness::new(PROMO);
    h.identify("member", json!({"consent": {"sms": true, "email": true}}));
    h.identify(
        "anon",
        json!({"consent": {"sms": false, "email": true, "wechat": true}}),
    );
    let out = merge(&mut h, "member", "anon");
    let changes: Vec<(String, bool, String)> = out
        .iter()
        .filter(|r| r.kind == Kind::Consent)
        .map(|r| {
            let c = r.consent.as_ref().unwrap();
            assert_eq!(c.evidence.as_deref(), Some("merged anon"));
            (r.channel.clone().unwrap(), c.granted, c.source.clone())
        })
        .collect();
    // sms: the refusal holds; wechat: filled in; email: unchanged.
    assert_eq!(
        changes,
        [entry("sms", false, "merge"), entry("wechat", true, "merge")]
    );
    h.track("member", "ping", json!({}));
    assert_eq!(h.suppressions("member"), ["consent"]);
}

const RESTOCK: &str = r#"
journey restock { trigger event restocked entry always
  send miniprogram template "TPL_RESTOCK" { thing1: "围巾" } }
"#;

fn with_grants(script: &str) -> Harness {
    let mut h = Harness::new(script);
    h.runtime
        .deployment
        .grant_channels
        .insert("miniprogram".into());
    h
}

fn grants_of(h: &Harness, user: &str, template: &str) -> u32 {
    h.user(user).grants.get(template).copied().unwrap_or(0)
}

fn accept(template: &str) -> serde_json::Value {
    json!({"TemplateId": template, "SubscribeStatusString": "accept", "PopupScene": "0"})
}

#[test]
fn each_accept_allows_one_send_and_none_left_is_suppressed_no_grant() {
    let mut h = with_grants(RESTOCK);
    // One template accepted: `List` is an object.
    h.track(
        "u1",
        "subscribe_msg_popup_event",
        json!({"List": accept("TPL_RESTOCK")}),
    );
    // Two accepted and one refused in one popup: `List` is an array.
    h.track(
        "u1",
        "subscribe_msg_popup_event",
        json!({"List": [
            accept("TPL_RESTOCK"),
            accept("TPL_OTHER"),
            {"TemplateId": "TPL_NEWS", "SubscribeStatusString": "reject"},
        ]}),
    );
    assert_eq!(grants_of(&h, "u1", "TPL_RESTOCK"), 2);
    assert_eq!(grants_of(&h, "u1", "TPL_OTHER"), 1);
    assert_eq!(grants_of(&h, "u1", "TPL_NEWS"), 0);
    for _ in 0..3 {
        h.track("u1", "restocked", json!({}));
    }
    assert_eq!(h.templates("u1"), ["TPL_RESTOCK", "TPL_RESTOCK"]);
    assert_eq!(h.suppressions("u1"), ["no_grant"]);
    assert_eq!(grants_of(&h, "u1", "TPL_RESTOCK"), 0);
    // The ledger: three grants added (with the count held after each).
    let added: Vec<(Option<String>, Option<u32>, bool)> = h
        .for_user(Kind::Consent, "u1")
        .into_iter()
        .map(|r| {
            let c = r.consent.as_ref().unwrap();
            assert_eq!(c.purpose, "subscribe_message");
            (c.template.clone(), c.grants, c.granted)
        })
        .collect();
    assert_eq!(
        added,
        [
            (Some("TPL_RESTOCK".into()), Some(1), true),
            (Some("TPL_RESTOCK".into()), Some(2), true),
            (Some("TPL_OTHER".into()), Some(1), true),
        ]
    );
}

#[test]
fn a_template_turned_off_loses_its_grants_and_other_channels_need_none() {
    let mut h = with_grants(
        r#"
journey restock { trigger event restocked entry always
  send miniprogram template "TPL_RESTOCK" { thing1: "围巾" }
  send wechat template "OA_NOTICE" { first: "到货" } }
"#,
    );
    h.track(
        "u1",
        "subscribe_msg_popup_event",
        json!({"List": [accept("TPL_RESTOCK"), accept("TPL_RESTOCK")]}),
    );
    h.track(
        "u1",
        "subscribe_msg_change_event",
        json!({"List": {"TemplateId": "TPL_RESTOCK", "SubscribeStatusString": "reject"}}),
    );
    assert_eq!(grants_of(&h, "u1", "TPL_RESTOCK"), 0);
    h.track("u1", "restocked", json!({}));
    assert_eq!(h.templates("u1"), ["OA_NOTICE"], "wechat spends no grants");
    assert_eq!(h.suppressions("u1"), ["no_grant"]);
    let last = h
        .for_user(Kind::Consent, "u1")
        .last()
        .unwrap()
        .consent
        .clone()
        .unwrap();
    assert_eq!((last.granted, last.grants), (false, Some(0)));
}

#[test]
fn grants_come_from_the_api_and_a_merge_keeps_both_profiles_grants() {
    let mut h = with_grants(RESTOCK);
    let now = h.now;
    let grant = Input::Consent {
        user: "anon".into(),
        channel: None,
        change: ConsentChange {
            grants: Some(2),
            ..ConsentChange::grants("TPL_RESTOCK", true, "api")
        },
        at: now,
    };
    h.runtime.ingest(&[grant], now).unwrap();
    h.track(
        "member",
        "subscribe_msg_popup_event",
        json!({"List": accept("TPL_RESTOCK")}),
    );
    merge(&mut h, "member", "anon");
    assert_eq!(grants_of(&h, "member", "TPL_RESTOCK"), 3);
    for _ in 0..4 {
        h.track("member", "restocked", json!({}));
    }
    assert_eq!(h.templates("member").len(), 3);
    assert_eq!(h.suppressions("member"), ["no_grant"]);
}
