//! `wechat`: an official-account API stand-in. `stable_token` hands out the
//! same token while it is valid in its own view and a new one when forced;
//! the test can expire the token (a plain refresh then gives a new one) or
//! revoke it behind `stable_token`'s back (a plain refresh gives the
//! rejected one again, only a forced one helps). `cgi-bin/token` counts
//! calls: the kind must never use it. `message/template/send` answers by
//! the openid or template: busy, quota, not subscribed, invalid openid or
//! template.

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
use waymark_engine::channels::Message;
use waymark_engine::channels::{DeliveryError, WechatKind};

const APP_ID: &str = "wx1234567890abcdef";
const APP_SECRET: &str = "official-account-app-secret";

#[derive(Default)]
struct Wechat {
    token_requests: AtomicUsize,
    forced: AtomicUsize,
    plain_token_calls: AtomicUsize,
    issued: AtomicUsize,
    /// What `stable_token` hands out without `force_refresh`.
    current: Mutex<Option<String>>,
    /// The token `message/template/send` accepts.
    accepted: Mutex<Option<String>>,
    reject_code: Mutex<i64>,
    rejected: AtomicUsize,
    /// Accepted messages: body and `Idempotency-Key`.
    sent: Mutex<Vec<(Value, String)>>,
}

impl Wechat {
    fn issue(&self) -> String {
        let token = format!("stable-{}", self.issued.fetch_add(1, Ordering::SeqCst) + 1);
        *self.current.lock().unwrap() = Some(token.clone());
        *self.accepted.lock().unwrap() = Some(token.clone());
        token
    }

    /// The token expired: sends get `code`, a plain refresh gives a new one.
    fn expire(&self, code: i64) {
        *self.current.lock().unwrap() = None;
        *self.accepted.lock().unwrap() = None;
        *self.reject_code.lock().unwrap() = code;
    }

    /// The token was invalidated elsewhere: sends get `code`, a plain
    /// refresh still gives it; only `force_refresh` makes a new one.
    fn revoke(&self, code: i64) {
        *self.accepted.lock().unwrap() = None;
        *self.reject_code.lock().unwrap() = code;
    }

    fn sent(&self) -> Vec<(Value, String)> {
        self.sent.lock().unwrap().clone()
    }
}

async fn stable_token(State(wx): State<Arc<Wechat>>, Json(body): Json<Value>) -> Json<Value> {
    wx.token_requests.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    if body["grant_type"] != "client_credential" || body["appid"] != APP_ID {
        return Json(json!({ "errcode": 40013, "errmsg": "invalid appid" }));
    }
    if body["secret"] != APP_SECRET {
        return Json(json!({ "errcode": 40125, "errmsg": "invalid appsecret" }));
    }
    let token = if body["force_refresh"] == true {
        wx.forced.fetch_add(1, Ordering::SeqCst);
        wx.issue()
    } else {
        let current = wx.current.lock().unwrap().clone();
        current.unwrap_or_else(|| wx.issue())
    };
    Json(json!({ "access_token": token, "expires_in": 7200 }))
}

async fn plain_token(State(wx): State<Arc<Wechat>>) -> Json<Value> {
    wx.plain_token_calls.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "errcode": 40164, "errmsg": "cgi-bin/token must not be used" }))
}

async fn template_send(
    State(wx): State<Arc<Wechat>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let accepted = wx.accepted.lock().unwrap().clone();
    if q.get("access_token") != accepted.as_ref() {
        wx.rejected.fetch_add(1, Ordering::SeqCst);
        let code = *wx.reject_code.lock().unwrap();
        return Json(
            json!({ "errcode": code, "errmsg": "invalid credential, access_token is invalid or not latest" }),
        );
    }
    let fail = |code: i64, msg: &str| Json(json!({ "errcode": code, "errmsg": msg }));
    if body["template_id"] == "BAD_TPL" {
        return fail(40037, "invalid template_id");
    }
    match body["touser"].as_str().unwrap_or_default() {
        "busy" => return fail(-1, "system error"),
        "quota" => return fail(45009, "reach max api daily quota limit"),
        "unfollowed" => return fail(43004, "require subscribe"),
        "bad-openid" => return fail(40003, "invalid openid"),
        _ => {}
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut sent = wx.sent.lock().unwrap();
    sent.push((body, key));
    Json(json!({ "errcode": 0, "errmsg": "ok", "msgid": 200_228_332 + sent.len() as u64 }))
}

async fn provider() -> (toml::Table, Arc<Wechat>) {
    let wx = Arc::new(Wechat::default());
    let router = axum::Router::new()
        .route("/cgi-bin/stable_token", post(stable_token))
        .route("/cgi-bin/token", get(plain_token))
        .route("/cgi-bin/message/template/send", post(template_send))
        .with_state(wx.clone());
    let base = serve(router).await;
    let config = settings(&format!(
        "base_url = \"{base}/\"\napp_id = \"{APP_ID}\"\napp_secret = \"{APP_SECRET}\"\ntimeout = \"5s\"\n"
    ));
    (config, wx)
}

fn notice(openid: &str) -> Message {
    sample_message(
        "mp",
        openid,
        Some("TPL_ORDER_SHIPPED"),
        json!({ "url": "https://example.invalid/orders/1", "order": "A-1", "amount": 9.9 }),
    )
}

#[tokio::test]
async fn wechat_conforms_and_the_provider_gets_template_data_and_the_key() {
    let (config, wx) = provider().await;
    let delivered = check_kind(&WechatKind, &config, &notice("oOPENID1")).await;
    let sent = wx.sent();
    assert_eq!(sent.len(), delivered.accepted);
    assert_eq!(sent.len(), 2);
    for (body, key) in &sent {
        assert_eq!(key, &delivered.key);
        assert_eq!(
            body,
            &json!({
                "touser": "oOPENID1",
                "template_id": "TPL_ORDER_SHIPPED",
                "url": "https://example.invalid/orders/1",
                "data": { "order": { "value": "A-1" }, "amount": { "value": "9.9" } },
                "client_msg_id": delivered.key,
            })
        );
    }
    assert_eq!(wx.token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(wx.plain_token_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn wechat_fetches_one_stable_token_for_many_concurrent_sends() {
    let (config, wx) = provider().await;
    let mp = channel(&WechatKind, &config);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let mp = mp.clone();
            tokio::spawn(async move {
                mp.deliver_keyed(&notice("oOPENID1"), &format!("k{i}"))
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap().provider_id.is_some());
    }
    assert_eq!(wx.token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(wx.sent().len(), 20);
}

#[tokio::test]
async fn wechat_refreshes_an_expired_token_once_without_forcing_and_resends_once() {
    let (config, wx) = provider().await;
    let mp = channel(&WechatKind, &config);
    mp.deliver_keyed(&notice("oOPENID1"), "k0").await.unwrap();
    wx.expire(42001);
    let tasks: Vec<_> = (1..=5)
        .map(|i| {
            let mp = mp.clone();
            tokio::spawn(async move {
                mp.deliver_keyed(&notice("oOPENID1"), &format!("k{i}"))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(wx.token_requests.load(Ordering::SeqCst), 2);
    assert_eq!(wx.forced.load(Ordering::SeqCst), 0);
    assert!(wx.rejected.load(Ordering::SeqCst) >= 1);
    let keys: Vec<String> = wx.sent().into_iter().map(|(_, k)| k).collect();
    assert_eq!(keys.len(), 6, "each message delivered once: {keys:?}");
}

#[tokio::test]
async fn wechat_forces_a_refresh_only_when_a_plain_one_returns_the_rejected_token() {
    let (config, wx) = provider().await;
    let mp = channel(&WechatKind, &config);
    mp.deliver_keyed(&notice("oOPENID1"), "k0").await.unwrap();
    wx.revoke(40001);
    mp.deliver_keyed(&notice("oOPENID1"), "k1").await.unwrap();
    // The first fetch, the plain refresh that gave the rejected token back,
    // and the forced one.
    assert_eq!(wx.token_requests.load(Ordering::SeqCst), 3);
    assert_eq!(wx.forced.load(Ordering::SeqCst), 1);
    assert_eq!(wx.rejected.load(Ordering::SeqCst), 1);
    let keys: Vec<String> = wx.sent().into_iter().map(|(_, k)| k).collect();
    assert_eq!(keys, ["k0", "k1"]);
    assert_eq!(wx.plain_token_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn wechat_busy_is_retried_quota_deferred_unfollowed_stopped_and_bad_ids_permanent() {
    let (config, wx) = provider().await;
    let mp = channel(&WechatKind, &config);
    let bad_template = sample_message("mp", "oOPENID1", Some("BAD_TPL"), json!({}));
    for (message, class, says) in [
        (notice("busy"), "retry", "errcode -1"),
        (notice("quota"), "quota", "errcode 45009"),
        (notice("unfollowed"), "consent", "errcode 43004"),
        (notice("bad-openid"), "permanent", "errcode 40003"),
        (bad_template, "permanent", "errcode 40037"),
    ] {
        let (found, m) = match mp.deliver_keyed(&message, "k").await {
            Err(DeliveryError::Retryable(m)) => ("retry", m),
            Err(DeliveryError::Quota { message, wait }) => {
                // The daily quota: looked at again each hour.
                assert_eq!(wait, std::time::Duration::from_secs(3600));
                ("quota", message)
            }
            Err(DeliveryError::Consent(m)) => ("consent", m),
            Err(DeliveryError::Permanent(m)) => ("permanent", m),
            Ok(r) => panic!("{says}: delivered {r:?}"),
        };
        assert_eq!(found, class, "{says}: {m}");
        assert!(m.contains(says), "{m}");
    }
    assert!(wx.sent().is_empty());
}

#[tokio::test]
async fn wechat_with_a_wrong_app_secret_fails_permanently_naming_the_settings() {
    let (mut config, _) = provider().await;
    config.insert("app_secret".into(), "wrong".into());
    let mp = channel(&WechatKind, &config);
    match mp.deliver_keyed(&notice("oOPENID1"), "k").await {
        Err(DeliveryError::Permanent(m)) => {
            assert!(m.contains("40125") && m.contains("app_secret"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}
