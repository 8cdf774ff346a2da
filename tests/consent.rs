//! The consent ledger through the real daemon: consent given by an
//! identify, withdrawn by an SMS reply of 退订, given again through the
//! API with evidence; sends follow it; the person's ledger and an
//! auditor's export by time range (JSON and CSV, paged) read it back
//! after a restart; erasure removes the person's entries and no one
//! else's.

use serde_json::{Value, json};
use std::path::Path;
use std::process::Child;
use std::time::Duration;
use waymark_tests::{daemon_dir, free_port, http, http_with_headers, start_daemon, terminate};

fn start(dir: &Path, port: u16) -> Child {
    start_daemon(dir, port, &dir.join("daemon.log"))
}

fn sent(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("sent.jsonl"))
        .unwrap_or_default()
        .lines()
        .count()
}

fn post(port: u16, path: &str, body: Value) -> Value {
    let (status, answer) = http(port, "POST", path, &body.to_string());
    assert_eq!(status, 200, "{path}: {answer}");
    serde_json::from_str(&answer).unwrap()
}

fn get(port: u16, path: &str) -> Value {
    let (status, answer) = http(port, "GET", path, "");
    assert_eq!(status, 200, "{path}: {answer}");
    serde_json::from_str(&answer).unwrap()
}

fn browse(port: u16, dir: &Path, expect_sent: usize) {
    post(
        port,
        "/v1/track",
        json!({"userId": "u1", "event": "browsed"}),
    );
    // A send goes through the outbox: wait for it, or give a suppressed
    // one the same time to show up wrongly.
    waymark_tests::wait_for("the sale", Duration::from_secs(60), || {
        sent(dir) >= expect_sent
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(sent(dir), expect_sent);
}

/// (user, channel, granted, source) of each entry.
fn rows(entries: &Value) -> Vec<(String, String, bool, String)> {
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["user"].as_str().unwrap().to_string(),
                e["channel"].as_str().unwrap().to_string(),
                e["granted"].as_bool().unwrap(),
                e["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row(user: &str, channel: &str, granted: bool, source: &str) -> (String, String, bool, String) {
    (user.into(), channel.into(), granted, source.into())
}

#[test]
fn the_consent_ledger_records_every_change_and_exports_it_for_an_auditor() {
    let dir = daemon_dir(
        "consent_ledger",
        &[(
            "promo.journey",
            "policy default {\n  consent required\n}\n\njourney promo {\n  trigger event browsed\n  entry always\n  send sms { text: \"sale\" }\n}\n",
        )],
        "[consent]\nevidence_bytes = 64\n\n[channels.sms]\nkind = \"log\"\npath = \"./sent.jsonl\"\n",
    );
    let port = free_port();
    let mut daemon = start(&dir, port);

    post(
        port,
        "/v1/identify",
        json!({"userId": "u1", "messageId": "form-1", "traits": {"consent": {"sms": true}}}),
    );
    browse(port, &dir, 1);
    post(
        port,
        "/v1/track",
        json!({"userId": "u1", "event": "sms_reply", "properties": {"text": "退订"}}),
    );
    browse(port, &dir, 1);
    let answer = post(
        port,
        "/v1/users/u1/consent",
        json!({"channel": "sms", "granted": true, "evidence": "hotline call, recording 77"}),
    );
    assert_eq!(answer["granted"], true);
    browse(port, &dir, 2);
    // Someone else, for the export.
    post(
        port,
        "/v1/users/u2/consent",
        json!({"channel": "email", "granted": false, "messageId": "crm-9"}),
    );

    // Bad calls are refused naming the field, and change nothing.
    for (body, field) in [
        (
            json!({"channel": "sms", "granted": true, "evidence": "x".repeat(65)}),
            "evidence",
        ),
        (json!({"channel": "sms"}), "granted"),
        (
            json!({"channel": "sms", "granted": true, "purpose": "profiling"}),
            "purpose",
        ),
    ] {
        let (status, answer) = http(port, "POST", "/v1/users/u1/consent", &body.to_string());
        assert_eq!(status, 400, "{answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let (_, answer) = http(
        port,
        "POST",
        "/v1/users/u1/consent",
        &json!({"channel": "sms", "granted": true, "evidence": "x".repeat(65)}).to_string(),
    );
    assert!(answer.contains("consent.evidence_bytes"), "{answer}");

    // Stopped and started again: the ledger is durable.
    assert!(terminate(&mut daemon));
    let mut daemon = start(&dir, port);

    let mine = get(port, "/v1/users/u1/consent");
    assert_eq!(mine["consent"], json!({"sms": true}));
    assert_eq!(
        rows(&mine["ledger"]),
        [
            row("u1", "sms", true, "identify"),
            row("u1", "sms", false, "reply"),
            row("u1", "sms", true, "api"),
        ]
    );
    let ledger = mine["ledger"].as_array().unwrap();
    assert_eq!(ledger[0]["message_id"], "form-1");
    assert_eq!(ledger[0]["purpose"], "marketing");
    assert_eq!(ledger[1]["evidence"], "replied \"退订\"");
    assert_eq!(ledger[2]["evidence"], "hotline call, recording 77");
    assert!(ledger[2]["by"].is_string(), "who called: {}", ledger[2]);

    let (status, headers, csv) =
        http_with_headers(port, "GET", "/v1/users/u1/consent?format=csv", "");
    assert_eq!(status, 200, "{csv}");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("text/csv; charset=utf-8")
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "at,user,channel,purpose,granted,source,evidence,message_id,by,journey,template,grants"
    );
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        lines[2].contains(",u1,sms,marketing,false,reply,\"replied \"\"退订\"\"\","),
        "{csv}"
    );
    assert!(
        lines[3].contains(",true,api,\"hotline call, recording 77\","),
        "{csv}"
    );

    // The auditor's export: everything, then a time range, then in pages.
    let all = get(port, "/v1/consent");
    assert_eq!(
        rows(&all["entries"]),
        [
            row("u1", "sms", true, "identify"),
            row("u1", "sms", false, "reply"),
            row("u1", "sms", true, "api"),
            row("u2", "email", false, "api"),
        ]
    );
    assert!(all["next"].is_null());
    let times: Vec<String> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_str().unwrap().to_string())
        .collect();
    let range = get(
        port,
        &format!("/v1/consent?from={}&to={}", times[1], times[3]),
    );
    assert_eq!(
        rows(&range["entries"]),
        [
            row("u1", "sms", false, "reply"),
            row("u1", "sms", true, "api")
        ]
    );
    let mut paged = Vec::new();
    let mut path = "/v1/consent?limit=3".to_string();
    loop {
        let page = get(port, &path);
        paged.extend(rows(&page["entries"]));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/consent?limit=3&after={next}"),
            None => break,
        }
    }
    assert_eq!(paged, rows(&all["entries"]));
    let (status, headers, csv) =
        http_with_headers(port, "GET", "/v1/consent?format=csv&limit=2", "");
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        headers.iter().any(|(n, _)| n == "waymark-next"),
        "{headers:?}"
    );
    for (query, field) in [
        ("from=yesterday", "query.from"),
        ("format=xml", "query.format"),
        ("after=zz", "query.after"),
        ("since=2026-01-01", "query.since"),
    ] {
        let (status, answer) = http(port, "GET", &format!("/v1/consent?{query}"), "");
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains(field), "{query}: {answer}");
    }

    // Erased: the person's entries go from the export, no one else's.
    let (status, answer) = http(port, "DELETE", "/v1/users/u1", "");
    assert_eq!(status, 200, "{answer}");
    let left = get(port, "/v1/consent");
    assert_eq!(rows(&left["entries"]), [row("u2", "email", false, "api")]);
    let (status, _) = http(port, "GET", "/v1/users/u1/consent", "");
    assert_eq!(status, 404);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

/// The mini-program API on loopback, enforcing one send per accept:
/// `accept` is the user tapping accept in the popup. Answers 43101 to a
/// send with no accept left, as WeChat does.
mod mini {
    use axum::Json;
    use axum::extract::State;
    use axum::routing::post;
    use serde_json::{Value, json};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    pub struct Mini {
        pub grants: Mutex<HashMap<(String, String), u32>>,
        pub sent: Mutex<Vec<Value>>,
        pub refused: Mutex<u32>,
    }

    impl Mini {
        pub fn accept(&self, openid: &str, template: &str) {
            *self
                .grants
                .lock()
                .unwrap()
                .entry((openid.into(), template.into()))
                .or_default() += 1;
        }
    }

    async fn token() -> Json<Value> {
        Json(json!({"access_token": "tok", "expires_in": 7200}))
    }

    async fn send(State(mini): State<Arc<Mini>>, Json(body): Json<Value>) -> Json<Value> {
        let key = (
            body["touser"].as_str().unwrap_or_default().to_string(),
            body["template_id"].as_str().unwrap_or_default().to_string(),
        );
        let mut grants = mini.grants.lock().unwrap();
        let left = grants.entry(key).or_default();
        if *left == 0 {
            *mini.refused.lock().unwrap() += 1;
            return Json(json!({"errcode": 43101, "errmsg": "user refuse to accept the msg"}));
        }
        *left -= 1;
        mini.sent.lock().unwrap().push(body);
        Json(json!({"errcode": 0, "errmsg": "ok", "msgid": 7}))
    }

    /// Serves the stand-in on a thread of its own; its base URL.
    pub fn start(mini: Arc<Mini>) -> String {
        waymark_tests::serve_on_loopback(|listener| async move {
            let router = axum::Router::new()
                .route("/cgi-bin/stable_token", post(token))
                .route("/cgi-bin/message/subscribe/send", post(send))
                .with_state(mini);
            axum::serve(listener, router).await.unwrap();
        })
    }
}

#[test]
fn a_subscribe_message_goes_out_once_per_accept_and_a_refusal_takes_the_grants_back() {
    let stand_in = std::sync::Arc::new(mini::Mini::default());
    let base = mini::start(stand_in.clone());
    let dir = daemon_dir(
        "consent_grants",
        &[(
            "restock.journey",
            "journey restock \"到货提醒\" {\n  trigger event restocked\n  entry always\n  send miniprogram template \"TPL_RESTOCK\" { thing1: \"羊绒围巾\", page: \"pages/item?id=7\" }\n}\n",
        )],
        &format!(
            "[channels.miniprogram]\nkind = \"miniprogram\"\nbase_url = \"{base}\"\napp_id = \"wxmini\"\napp_secret = \"secret\"\nmax_attempts = 3\ninitial_backoff = \"50ms\"\n"
        ),
    );
    let port = free_port();
    let mut daemon = start(&dir, port);
    post(
        port,
        "/v1/identify",
        json!({"userId": "u1", "traits": {"miniprogram_openid": "oU1"}}),
    );
    // Two taps on accept: WeChat's push holds `List` as one object, then
    // as an array (with another template).
    stand_in.accept("oU1", "TPL_RESTOCK");
    post(
        port,
        "/v1/track",
        json!({"userId": "u1", "event": "subscribe_msg_popup_event", "properties": {"List": {"TemplateId": "TPL_RESTOCK", "SubscribeStatusString": "accept"}}}),
    );
    stand_in.accept("oU1", "TPL_RESTOCK");
    post(
        port,
        "/v1/track",
        json!({"userId": "u1", "event": "subscribe_msg_popup_event", "properties": {"List": [
            {"TemplateId": "TPL_RESTOCK", "SubscribeStatusString": "accept"},
            {"TemplateId": "TPL_NEWS", "SubscribeStatusString": "reject"}
        ]}}),
    );
    assert_eq!(
        get(port, "/v1/users/u1")["grants"],
        json!({"TPL_RESTOCK": 2})
    );
    for _ in 0..3 {
        post(
            port,
            "/v1/track",
            json!({"userId": "u1", "event": "restocked"}),
        );
    }
    let sent = || stand_in.sent.lock().unwrap().len();
    waymark_tests::wait_for("two subscribe messages", Duration::from_secs(60), || {
        sent() >= 2
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sent(), 2, "one send per accept");
    assert_eq!(
        *stand_in.refused.lock().unwrap(),
        0,
        "never a provider error"
    );
    let journal = |port| -> Vec<Value> {
        get(port, "/v1/users/u1/journal")["records"]
            .as_array()
            .unwrap()
            .clone()
    };
    let reasons: Vec<Value> = journal(port)
        .iter()
        .filter(|r| r["kind"] == "suppressed")
        .map(|r| r["reason"].clone())
        .collect();
    assert_eq!(reasons, [json!("no_grant")]);
    assert_eq!(get(port, "/v1/users/u1")["grants"], json!({}));

    // A grant Waymark was told of (the API) that WeChat does not hold:
    // the send gets 43101, which is not retried and takes the grant back.
    let answer = post(
        port,
        "/v1/users/u1/consent",
        json!({"template": "TPL_RESTOCK", "granted": true, "evidence": "offline form"}),
    );
    assert_eq!(answer["template"], "TPL_RESTOCK");
    post(
        port,
        "/v1/track",
        json!({"userId": "u1", "event": "restocked"}),
    );
    waymark_tests::wait_for("the refusal taken back", Duration::from_secs(60), || {
        get(port, "/v1/users/u1/consent")["ledger"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["source"] == "provider")
    });
    assert_eq!(*stand_in.refused.lock().unwrap(), 1, "not retried");
    let records = journal(port);
    let failed: Vec<&Value> = records.iter().filter(|r| r["kind"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{records:?}");
    assert_eq!(failed[0]["attempts"], 1);
    let ledger = get(port, "/v1/users/u1/consent")["ledger"].clone();
    let taken_back = ledger.as_array().unwrap().last().unwrap().clone();
    assert_eq!(taken_back["template"], "TPL_RESTOCK");
    assert_eq!(taken_back["granted"], false);
    assert_eq!(taken_back["grants"], 0);
    assert!(
        taken_back["evidence"].as_str().unwrap().contains("43101"),
        "{taken_back}"
    );
    post(
        port,
        "/v1/track",
        json!({"userId": "u1", "event": "restocked"}),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(*stand_in.refused.lock().unwrap(), 1, "no grant, no call");
    assert_eq!(sent(), 2);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}
