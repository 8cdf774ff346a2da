//! `miniprogram` and `wechat_subscribe`: a WeChat API stand-in that
//! enforces what WeChat documents for one-time subscribe messages
//! (`subscribe/send` of mini-programs, `subscribe/bizsend` of official
//! accounts): each accept of a template
//! (the test grants them, as the user's taps in the popup would) allows
//! one `message/subscribe/send` of it; past that it answers 43101. Tokens
//! come from `stable_token`; `cgi-bin/token` must never be called.

use super::{channel, serve, settings};
use axum::Json;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use waymark_channel::conformance::{DeliverKeyed, check_kind, sample_message};
use waymark_engine::channels::{DeliveryError, Message, MiniprogramKind, WechatSubscribeKind};

const APP_ID: &str = "wxmini0123456789";
const APP_SECRET: &str = "mini-program-app-secret";
const TOKEN: &str = "mini-stable-1";

#[derive(Default)]
struct Mini {
    token_requests: AtomicUsize,
    plain_token_calls: AtomicUsize,
    /// Accepts left per (openid, template id).
    grants: Mutex<HashMap<(String, String), u32>>,
    /// Sends refused for want of an accept.
    refused: AtomicUsize,
    /// Delivered message bodies.
    sent: Mutex<Vec<Value>>,
}

impl Mini {
    fn accept(&self, openid: &str, template: &str, times: u32) {
        *self
            .grants
            .lock()
            .unwrap()
            .entry((openid.into(), template.into()))
            .or_default() += times;
    }

    fn sent(&self) -> Vec<Value> {
        self.sent.lock().unwrap().clone()
    }
}

async fn stable_token(State(mini): State<Arc<Mini>>, Json(body): Json<Value>) -> Json<Value> {
    mini.token_requests.fetch_add(1, Ordering::SeqCst);
    if body["appid"] != APP_ID || body["secret"] != APP_SECRET {
        return Json(json!({ "errcode": 40125, "errmsg": "invalid appsecret" }));
    }
    Json(json!({ "access_token": TOKEN, "expires_in": 7200 }))
}

async fn plain_token(State(mini): State<Arc<Mini>>) -> Json<Value> {
    mini.plain_token_calls.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "errcode": 40164, "errmsg": "cgi-bin/token must not be used" }))
}

async fn subscribe_send(
    State(mini): State<Arc<Mini>>,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let fail = |code: i64, msg: &str| Json(json!({ "errcode": code, "errmsg": msg }));
    if q.get("access_token").map(String::as_str) != Some(TOKEN) {
        return fail(40001, "invalid credential");
    }
    let openid = body["touser"].as_str().unwrap_or_default().to_string();
    if openid == "busy" {
        return fail(-1, "system error");
    }
    if body["data"].as_object().is_none() {
        return fail(47003, "argument invalid! data is empty");
    }
    let template = body["template_id"].as_str().unwrap_or_default().to_string();
    {
        let mut grants = mini.grants.lock().unwrap();
        let left = grants.entry((openid, template)).or_default();
        if *left == 0 {
            mini.refused.fetch_add(1, Ordering::SeqCst);
            return fail(43101, "user refuse to accept the msg");
        }
        *left -= 1;
    }
    mini.sent.lock().unwrap().push(body);
    Json(json!({ "errcode": 0, "errmsg": "ok", "msgid": 1_843_201 }))
}

async fn provider() -> (toml::Table, Arc<Mini>) {
    let mini = Arc::new(Mini::default());
    let router = axum::Router::new()
        .route("/cgi-bin/stable_token", post(stable_token))
        .route("/cgi-bin/token", get(plain_token))
        .route("/cgi-bin/message/subscribe/send", post(subscribe_send))
        .route("/cgi-bin/message/subscribe/bizsend", post(subscribe_send))
        .with_state(mini.clone());
    let base = serve(router).await;
    let config = settings(&format!(
        "base_url = \"{base}\"\napp_id = \"{APP_ID}\"\napp_secret = \"{APP_SECRET}\"\nstate = \"trial\"\ntimeout = \"5s\"\n"
    ));
    (config, mini)
}

fn restock(openid: &str) -> Message {
    sample_message(
        "mp",
        openid,
        Some("TPL_RESTOCK"),
        json!({ "page": "pages/item?id=7", "thing1": "羊绒围巾", "time2": "2026-12-06 10:00" }),
    )
}

#[tokio::test]
async fn miniprogram_conforms_and_the_provider_gets_the_template_page_and_data() {
    let (config, mini) = provider().await;
    mini.accept("oMINI1", "TPL_RESTOCK", 2);
    let delivered = check_kind(&MiniprogramKind, &config, &restock("oMINI1")).await;
    let sent = mini.sent();
    assert_eq!(sent.len(), delivered.accepted);
    assert_eq!(
        sent[0],
        json!({
            "touser": "oMINI1",
            "template_id": "TPL_RESTOCK",
            "page": "pages/item?id=7",
            "data": { "thing1": { "value": "羊绒围巾" }, "time2": { "value": "2026-12-06 10:00" } },
            "miniprogram_state": "trial",
            "lang": "zh_CN",
        })
    );
    assert_eq!(mini.token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(mini.plain_token_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn miniprogram_sends_once_per_accept_and_a_43101_is_a_consent_error() {
    let (config, mini) = provider().await;
    let mp = channel(&MiniprogramKind, &config);
    mini.accept("oMINI1", "TPL_RESTOCK", 1);
    mp.deliver_keyed(&restock("oMINI1"), "k1").await.unwrap();
    match mp.deliver_keyed(&restock("oMINI1"), "k2").await {
        Err(e @ DeliveryError::Consent(_)) => {
            assert!(!e.is_retryable());
            assert!(e.to_string().contains("errcode 43101"), "{e}");
        }
        other => panic!("a second send on one accept: {other:?}"),
    }
    assert_eq!(mini.sent().len(), 1);
    assert_eq!(mini.refused.load(Ordering::SeqCst), 1);
    match mp.deliver_keyed(&restock("busy"), "k3").await {
        Err(DeliveryError::Retryable(m)) => assert!(m.contains("errcode -1"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wechat_subscribe_notices_spend_accepts_the_same_way() {
    let (mut config, mini) = provider().await;
    config.remove("state");
    config.insert("miniprogram_app_id".into(), "wxmini".into());
    let oa = channel(&WechatSubscribeKind, &config);
    mini.accept("oOA1", "TPL_RESTOCK", 1);
    oa.deliver_keyed(&restock("oOA1"), "k1").await.unwrap();
    assert_eq!(
        mini.sent()[0]["miniprogram"],
        json!({ "appid": "wxmini", "pagepath": "pages/item?id=7" })
    );
    match oa.deliver_keyed(&restock("oOA1"), "k2").await {
        Err(DeliveryError::Consent(m)) => {
            assert!(m.contains("bizsend") && m.contains("43101"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}
