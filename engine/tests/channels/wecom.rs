//! `wecom`: a WeCom stand-in that issues access tokens (the same one while
//! it is valid, as `gettoken` does), counts token requests, can expire the
//! current token on demand (then answers 42001 or 40014 to it), and
//! answers `message/send` by the user id: some ids stand for a busy
//! system, rate limits or unknown users.

use super::{channel, serve, settings};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use waymark_channel::conformance::{DeliverKeyed, check_kind, sample_message};
use waymark_engine::channels::{DeliveryError, WecomKind};

const CORP_ID: &str = "ww1234567890abcdef";
const CORP_SECRET: &str = "app-secret-from-the-admin-console";
const AGENT_ID: i64 = 1_000_002;

#[derive(Default)]
struct Wecom {
    token_requests: AtomicUsize,
    issued: AtomicUsize,
    /// The token `message/send` accepts.
    valid: Mutex<Option<String>>,
    /// What it answers to any other token.
    expired_code: Mutex<i64>,
    rejected: AtomicUsize,
    /// Accepted messages: body and `Idempotency-Key`.
    sent: Mutex<Vec<(Value, String)>>,
}

impl Wecom {
    /// The current token stops working; `message/send` answers `code` to it.
    fn expire(&self, code: i64) {
        *self.valid.lock().unwrap() = None;
        *self.expired_code.lock().unwrap() = code;
    }

    fn sent(&self) -> Vec<(Value, String)> {
        self.sent.lock().unwrap().clone()
    }
}

async fn gettoken(
    State(wecom): State<Arc<Wecom>>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    wecom.token_requests.fetch_add(1, Ordering::SeqCst);
    // Slow enough for concurrent deliveries to pile up behind it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    if q.get("corpid").map(String::as_str) != Some(CORP_ID)
        || q.get("corpsecret").map(String::as_str) != Some(CORP_SECRET)
    {
        return Json(json!({ "errcode": 40001, "errmsg": "invalid credential" }));
    }
    let mut valid = wecom.valid.lock().unwrap();
    let token = valid
        .get_or_insert_with(|| format!("tok-{}", wecom.issued.fetch_add(1, Ordering::SeqCst) + 1))
        .clone();
    Json(json!({ "errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200 }))
}

async fn message_send(
    State(wecom): State<Arc<Wecom>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let valid = wecom.valid.lock().unwrap().clone();
    if q.get("access_token") != valid.as_ref() {
        wecom.rejected.fetch_add(1, Ordering::SeqCst);
        let code = *wecom.expired_code.lock().unwrap();
        return Json(json!({ "errcode": code, "errmsg": "access_token expired" }));
    }
    let fail = |code: i64, msg: &str| Json(json!({ "errcode": code, "errmsg": msg }));
    match body["touser"].as_str().unwrap_or_default() {
        "busy" => return fail(-1, "system busy"),
        "limited" => return fail(45009, "api freq out of limit"),
        "burst" => return fail(45033, "api concurrent out of limit"),
        "ghost" => {
            return Json(json!({
                "errcode": 81013, "errmsg": "user & party & tag all invalid", "invaliduser": "ghost"
            }));
        }
        "halfghost" => {
            return Json(json!({ "errcode": 0, "errmsg": "ok", "invaliduser": "halfghost" }));
        }
        _ => {}
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut sent = wecom.sent.lock().unwrap();
    sent.push((body, key));
    Json(json!({
        "errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": format!("msg-{}", sent.len())
    }))
}

async fn provider() -> (toml::Table, Arc<Wecom>) {
    let wecom = Arc::new(Wecom {
        expired_code: Mutex::new(42001),
        ..Wecom::default()
    });
    let router = axum::Router::new()
        .route("/cgi-bin/gettoken", get(gettoken))
        .route("/cgi-bin/message/send", post(message_send))
        .with_state(wecom.clone());
    let base = serve(router).await;
    let config = settings(&format!(
        "base_url = \"{base}\"\ncorp_id = \"{CORP_ID}\"\ncorp_secret = \"{CORP_SECRET}\"\nagent_id = {AGENT_ID}\ntimeout = \"5s\"\n"
    ));
    (config, wecom)
}

fn text(to: &str, content: &str) -> waymark_engine::channels::Message {
    sample_message("staff", to, None, json!({ "text": content }))
}

#[tokio::test]
async fn wecom_conforms_and_the_provider_gets_each_message_with_its_key() {
    let (config, wecom) = provider().await;
    let delivered = check_kind(&WecomKind, &config, &text("zhangsan", "请跟进客户 u1")).await;
    let sent = wecom.sent();
    assert_eq!(sent.len(), delivered.accepted);
    assert_eq!(sent.len(), 2);
    for (body, key) in &sent {
        assert_eq!(key, &delivered.key);
        assert_eq!(
            body,
            &json!({
                "touser": "zhangsan",
                "msgtype": "text",
                "agentid": AGENT_ID,
                "text": { "content": "请跟进客户 u1" },
                "enable_duplicate_check": 1,
                "duplicate_check_interval": 1800,
            })
        );
    }
    assert_eq!(wecom.token_requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn wecom_sends_markdown_and_returns_the_msgid() {
    let (config, wecom) = provider().await;
    let staff = channel(&WecomKind, &config);
    let message = sample_message("staff", "lisi", None, json!({ "markdown": "**VIP** u1" }));
    let receipt = staff.deliver_keyed(&message, "k").await.unwrap();
    assert_eq!(receipt.provider_id.as_deref(), Some("msg-1"));
    let (body, _) = &wecom.sent()[0];
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(body["markdown"], json!({ "content": "**VIP** u1" }));
}

#[tokio::test]
async fn wecom_fetches_one_token_for_many_sends_even_concurrent_ones() {
    let (config, wecom) = provider().await;
    let staff = channel(&WecomKind, &config);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let staff = staff.clone();
            tokio::spawn(async move {
                staff
                    .deliver_keyed(&text("zhangsan", "hi"), &format!("k{i}"))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for i in 20..25 {
        staff
            .deliver_keyed(&text("zhangsan", "hi"), &format!("k{i}"))
            .await
            .unwrap();
    }
    assert_eq!(wecom.token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(wecom.sent().len(), 25);
}

#[tokio::test]
async fn wecom_refreshes_an_expired_token_once_and_delivers_each_message_once() {
    let (config, wecom) = provider().await;
    let staff = channel(&WecomKind, &config);
    staff
        .deliver_keyed(&text("zhangsan", "first"), "k0")
        .await
        .unwrap();
    for (round, code) in [(1, 42001), (2, 40014)] {
        wecom.expire(code);
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let staff = staff.clone();
                let key = format!("r{round}/k{i}");
                tokio::spawn(
                    async move { staff.deliver_keyed(&text("zhangsan", "hi"), &key).await },
                )
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(
            wecom.token_requests.load(Ordering::SeqCst),
            1 + round,
            "one refresh per expiry ({code})"
        );
        assert!(wecom.rejected.load(Ordering::SeqCst) >= round);
        let sent = wecom.sent();
        for i in 0..10 {
            let key = format!("r{round}/k{i}");
            assert_eq!(
                sent.iter().filter(|(_, k)| *k == key).count(),
                1,
                "{key} delivered exactly once"
            );
        }
    }
    assert_eq!(wecom.sent().len(), 21);
}

#[tokio::test]
async fn wecom_busy_is_retried_rate_limits_deferred_unknown_users_and_bad_messages_permanent() {
    let (config, wecom) = provider().await;
    let staff = channel(&WecomKind, &config);
    for (to, class, says) in [
        ("busy", "retry", "errcode -1"),
        ("limited", "quota 60", "errcode 45009"),
        ("burst", "quota 2", "errcode 45033"),
        ("ghost", "permanent", "errcode 81013"),
        ("halfghost", "permanent", "halfghost"),
    ] {
        let (found, m) = match staff.deliver_keyed(&text(to, "hi"), "k").await {
            Err(DeliveryError::Retryable(m)) => ("retry".to_string(), m),
            Err(DeliveryError::Quota { message, wait }) => {
                (format!("quota {}", wait.as_secs()), message)
            }
            Err(DeliveryError::Permanent(m)) => ("permanent".to_string(), m),
            other => panic!("{to}: {other:?}"),
        };
        assert_eq!(found, class, "{to}: {m}");
        assert!(m.contains(says), "{m}");
    }
    let both = sample_message(
        "staff",
        "zhangsan",
        None,
        json!({ "text": "a", "markdown": "b" }),
    );
    assert!(matches!(
        staff.deliver_keyed(&both, "k").await,
        Err(DeliveryError::Permanent(_))
    ));
    assert!(wecom.sent().is_empty());
}

#[tokio::test]
async fn wecom_with_a_wrong_corp_secret_fails_permanently_naming_the_settings() {
    let (mut config, _) = provider().await;
    config.insert("corp_secret".into(), "wrong".into());
    let staff = channel(&WecomKind, &config);
    match staff.deliver_keyed(&text("zhangsan", "hi"), "k").await {
        Err(DeliveryError::Permanent(m)) => {
            assert!(m.contains("40001") && m.contains("corp_secret"), "{m}");
            assert!(!m.contains("wrong"), "the secret stays out of errors: {m}");
        }
        other => panic!("{other:?}"),
    }
}
