//! WeCom and official-account callbacks through the real daemon, pushed by
//! a client of this test's own (the platforms' encryption written here
//! again, from their documentation, not taken from the daemon): URL checks,
//! WeCom's published example push refused as a replay (signed in 2014; the
//! unit tests decrypt it), a customer added with the 活码's
//! `State` and the staff member, a redelivery dropped, bad signatures and
//! bodies refused with the field named, the customer's profile merged into
//! the member once they identify with the external_userid (later pushes
//! land on the member), and official-account follows, scans and safe-mode
//! pushes.

#[path = "wecom_client.rs"]
mod wecom_client;

use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use waymark_tests::{daemon_dir, free_port, http, start_daemon, terminate, wait_for};
use wecom_client::*;

fn sent(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("sent.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The texts sent to `user`, in order.
fn texts_to(dir: &Path, user: &str) -> Vec<String> {
    sent(dir)
        .iter()
        .filter(|s| s["user"] == user)
        .map(|s| s["fields"]["text"].as_str().unwrap().to_string())
        .collect()
}

fn journey(name: &str, event: &str, text: &str) -> String {
    format!(
        "journey {name} {{\n  trigger event {event}\n  entry always\n  send staff {{ text: \"{text}\" }}\n}}\n"
    )
}

#[test]
fn wecom_and_official_account_pushes_become_events_on_the_customer() {
    let scripts = [
        journey(
            "welcome",
            "add_external_contact",
            "欢迎 {event.state} {event.userid} {event.welcome_code}",
        ),
        journey("left", "del_follow_user", "left {event.userid}"),
        journey("chat", "change_external_chat", "chat {event.update_detail}"),
        journey("followed", "subscribe", "关注 {event.qrscene}"),
        journey("scanned", "scan", "scan {event.scene}"),
        journey("wrote", "user_message", "wrote {event.content}"),
    ]
    .concat();
    let config = format!(
        "[identity]\nidentifiers = [\"wecom_external_userid\", \"openid\"]\n\n\
         [channels.staff]\nkind = \"log\"\npath = \"./sent.jsonl\"\n\n\
         [callbacks.wecom.store]\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{AES_KEY}\"\ncorp_id = \"{CORP}\"\n\n\
         [callbacks.wechat.oa]\ntoken = \"oatoken\"\n\n\
         [callbacks.wechat.safe]\ntoken = \"safetoken\"\nencoding_aes_key = \"{OA_KEY}\"\napp_id = \"{OA_APP}\"\n"
    );
    let dir = daemon_dir("callbacks", &[("wecom.journey", &scripts)], &config);
    let port = free_port();
    let mut daemon = start_daemon(&dir, port, &dir.join("daemon.log"));

    // WeCom's URL check: the echo string, encrypted and signed, answered
    // decrypted.
    let now = now_secs().to_string();
    let echo = encrypt(AES_KEY, CORP, "echo-4711", 3);
    let signature = sha1_hex(&mut [TOKEN, &now, "e1", &echo]);
    let (status, answer) = http(
        port,
        "GET",
        &format!(
            "/v1/callbacks/wecom/store?msg_signature={signature}&timestamp={now}&nonce=e1&echostr={}",
            echo.replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        ),
        "",
    );
    assert_eq!((status, answer.as_str()), (200, "echo-4711"));
    // WeCom's published example push, signed in 2014: a replay now.
    let pushed = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";
    let (status, answer) = http(
        port,
        "POST",
        "/v1/callbacks/wecom/store?msg_signature=477715d11cdb4164915debcba66cb864d751f3e6&timestamp=1409659813&nonce=1372623149",
        &format!(
            "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{pushed}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
        ),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("query.timestamp"), "{answer}");
    // A message an employee sends the app: no customer event, answered empty.
    let app_message = format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>1</MsgId><AgentID>218</AgentID></xml>"
    );
    assert_eq!(
        wecom_push(port, "store", &app_message, "a1"),
        (200, String::new())
    );

    // A customer adds the staff member zhangsan through the 活码 of store 42.
    let added = customer_change(
        "add_external_contact",
        "wmCust1",
        "zhangsan",
        1_765_000_000,
        "<State><![CDATA[store42]]></State><WelcomeCode><![CDATA[WC-1]]></WelcomeCode>",
    );
    let (status, answer) = wecom_push(port, "store", &added, "n1");
    assert_eq!((status, answer.as_str()), (200, ""));
    // WeCom pushes it again (no answer seen in time): dropped.
    assert_eq!(wecom_push(port, "store", &added, "n2").0, 200);
    wait_for("the welcome", Duration::from_secs(60), || {
        !texts_to(&dir, "wecom:wmCust1").is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        texts_to(&dir, "wecom:wmCust1"),
        ["欢迎 store42 zhangsan WC-1"]
    );
    let (status, user) = http(port, "GET", "/v1/users/wecom:wmCust1", "");
    assert_eq!(status, 200, "{user}");
    let user: Value = serde_json::from_str(&user).unwrap();
    assert_eq!(
        user["profile"]["wecom_external_userid"], "wmCust1",
        "{user}"
    );

    // Refusals name what is wrong.
    let (status, answer) = http(
        port,
        "POST",
        &format!("/v1/callbacks/wecom/store?msg_signature=0000&timestamp={now}&nonce=2"),
        "<xml><Encrypt>AAAA</Encrypt></xml>",
    );
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("query.msg_signature"), "{answer}");
    let (status, answer) = wecom_push(port, "nosuch", &added, "n3");
    assert_eq!(status, 404);
    assert!(answer.contains("callbacks.wecom.nosuch"), "{answer}");
    let (status, answer) = http(
        port,
        "POST",
        &format!("/v1/callbacks/wecom/store?msg_signature=a&timestamp={now}&nonce=2"),
        "<xml><NoCipher/></xml>",
    );
    assert_eq!(status, 400);
    assert!(answer.contains("body.Encrypt"), "{answer}");
    let (status, answer) = http(
        port,
        "POST",
        "/v1/callbacks/wecom/store?timestamp=1&nonce=2&extra=1",
        "",
    );
    assert_eq!(status, 400);
    assert!(answer.contains("query.extra"), "{answer}");
    let broken = customer_change("add_external_contact", "", "zhangsan", 1, "");
    let (status, answer) = wecom_push(port, "store", &broken, "n4");
    assert_eq!(status, 400);
    assert!(answer.contains("ExternalUserID"), "{answer}");

    // The member identifies with the external_userid: one profile, theirs.
    let (status, answer) = http(
        port,
        "POST",
        "/v1/identify",
        &json!({"userId": "m1", "traits": {"wecom_external_userid": "wmCust1"}}).to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    let left = customer_change("del_follow_user", "wmCust1", "zhangsan", 1_765_000_100, "");
    assert_eq!(wecom_push(port, "store", &left, "n5").0, 200);
    wait_for("the goodbye", Duration::from_secs(60), || {
        !texts_to(&dir, "m1").is_empty()
    });
    assert_eq!(texts_to(&dir, "m1"), ["left zhangsan"]);

    // A group chat's change goes to the chat.
    let chat = "<xml><ToUserName>c</ToUserName><FromUserName>sys</FromUserName><CreateTime>1765000200</CreateTime><MsgType>event</MsgType><Event>change_external_chat</Event><ChatId>wrChat1</ChatId><ChangeType>update</ChangeType><UpdateDetail>add_member</UpdateDetail><JoinScene>1</JoinScene><MemChangeCnt>1</MemChangeCnt><MemChangeList><Item>wmCust1</Item></MemChangeList></xml>";
    assert_eq!(wecom_push(port, "store", chat, "n6").0, 200);

    // An official account in plaintext mode: URL check, a follow through
    // a parametric QR code, a scan.
    let check = sha1_hex(&mut ["oatoken", &now, "abc"]);
    let (status, answer) = http(
        port,
        "GET",
        &format!(
            "/v1/callbacks/wechat/oa?signature={check}&timestamp={now}&nonce=abc&echostr=hello123"
        ),
        "",
    );
    assert_eq!((status, answer.as_str()), (200, "hello123"));
    let oa_push = |body: &str, nonce: &str| {
        let signature = sha1_hex(&mut ["oatoken", &now, nonce]);
        http(
            port,
            "POST",
            &format!(
                "/v1/callbacks/wechat/oa?signature={signature}&timestamp={now}&nonce={nonce}&openid=oF1"
            ),
            body,
        )
    };
    let follow = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oF1]]></FromUserName><CreateTime>1765000300</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_mall7]]></EventKey><Ticket><![CDATA[T]]></Ticket></xml>";
    let (status, answer) = oa_push(follow, "p1");
    assert_eq!((status, answer.as_str()), (200, "success"));
    let scan = follow
        .replace("[subscribe]", "[SCAN]")
        .replace("qrscene_mall7", "mall8")
        .replace("1765000300", "1765000301");
    assert_eq!(oa_push(&scan, "p2").0, 200);
    let forged = http(
        port,
        "POST",
        &format!("/v1/callbacks/wechat/oa?signature=abc&timestamp={now}&nonce=p3"),
        follow,
    );
    assert_eq!(forged.0, 401, "{}", forged.1);
    assert!(forged.1.contains("query.signature"), "{}", forged.1);

    // Safe mode: a follower's message, encrypted for the account.
    let message = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oF2]]></FromUserName><CreateTime>1765000400</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[想要优惠券]]></Content><MsgId>90001</MsgId></xml>";
    let encrypted = encrypt(OA_KEY, OA_APP, message, 9);
    let signature = sha1_hex(&mut ["safetoken", &now, "s1", &encrypted]);
    let plain_signature = sha1_hex(&mut ["safetoken", &now, "s1"]);
    let (status, answer) = http(
        port,
        "POST",
        &format!(
            "/v1/callbacks/wechat/safe?signature={plain_signature}&timestamp={now}&nonce=s1&openid=oF2&encrypt_type=aes&msg_signature={signature}"
        ),
        &format!(
            "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        ),
    );
    assert_eq!((status, answer.as_str()), (200, "success"));

    wait_for("the account's events", Duration::from_secs(60), || {
        texts_to(&dir, "wechat:oF1").len() == 2 && texts_to(&dir, "wechat:oF2").len() == 1
    });
    assert_eq!(texts_to(&dir, "wechat:oF1"), ["关注 mall7", "scan mall8"]);
    assert_eq!(texts_to(&dir, "wechat:oF2"), ["wrote 想要优惠券"]);
    assert_eq!(texts_to(&dir, "wecom_chat:wrChat1"), ["chat add_member"]);
    // Nothing else was sent: the redelivery and the refused pushes made nothing.
    assert_eq!(sent(&dir).len(), 6, "{:?}", sent(&dir));
    let (_, metrics) = http(port, "GET", "/metrics", "");
    for (labels, n) in [
        // add, its redelivery, del_follow_user, the chat change.
        ("platform=\"wecom\",app=\"store\",outcome=\"taken\"", 4),
        // A message to the app, no event.
        ("platform=\"wecom\",app=\"store\",outcome=\"ignored\"", 1),
        // The replayed example, a bad signature, no ciphertext, an
        // unknown parameter, no ExternalUserID.
        ("platform=\"wecom\",app=\"store\",outcome=\"refused\"", 5),
        ("platform=\"wechat\",app=\"oa\",outcome=\"taken\"", 2),
        ("platform=\"wechat\",app=\"oa\",outcome=\"refused\"", 1),
        ("platform=\"wechat\",app=\"safe\",outcome=\"taken\"", 1),
    ] {
        let line = format!("waymark_callback_pushes_total{{{labels}}} {n}");
        assert!(metrics.contains(&line), "{line} not in {metrics}");
    }
    assert!(
        !metrics.contains("app=\"nosuch\""),
        "an unconfigured app is not counted"
    );
    assert!(terminate(&mut daemon));
}

/// A loopback WeCom that behaves as its documentation says for welcome
/// messages: tokens from `gettoken`, and welcome codes that work once and
/// only within 20 seconds of the push that carried them (a second use
/// answers 41051; an expired code an error).
mod wecom {
    use axum::Json;
    use axum::extract::{Query, State};
    use axum::routing::{get, post};
    use serde_json::{Value, json};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    #[derive(Default)]
    pub struct Wecom {
        /// Codes issued: when, and whether used.
        codes: Mutex<HashMap<String, (Instant, bool)>>,
        /// Every send_welcome_msg body, with its errcode.
        pub calls: Mutex<Vec<(Value, i64)>>,
    }

    impl Wecom {
        /// A push carrying `code` is about to be made.
        pub fn issue(&self, code: &str) {
            self.codes
                .lock()
                .unwrap()
                .insert(code.to_string(), (Instant::now(), false));
        }

        pub fn calls(&self) -> Vec<(Value, i64)> {
            self.calls.lock().unwrap().clone()
        }
    }

    async fn token(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
        if q.get("corpid").map(String::as_str) != Some("wwcorp") {
            return Json(json!({"errcode": 40013, "errmsg": "invalid corpid"}));
        }
        Json(json!({"errcode": 0, "access_token": "TOKEN1", "expires_in": 7200}))
    }

    async fn welcome(
        State(wecom): State<Arc<Wecom>>,
        Query(q): Query<HashMap<String, String>>,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        if q.get("access_token").map(String::as_str) != Some("TOKEN1") {
            return Json(json!({"errcode": 40014, "errmsg": "invalid access_token"}));
        }
        let code = body["welcome_code"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let errcode = {
            let mut codes = wecom.codes.lock().unwrap();
            match codes.get_mut(&code) {
                None => 40001,
                Some((_, true)) => 41051,
                Some((at, _)) if at.elapsed() > Duration::from_secs(20) => 41050,
                Some((_, used)) => {
                    *used = true;
                    0
                }
            }
        };
        wecom.calls.lock().unwrap().push((body, errcode));
        Json(json!({"errcode": errcode, "errmsg": if errcode == 0 { "ok" } else { "refused" }}))
    }

    /// Serves the stand-in on a thread of its own; its base URL.
    pub fn start(wecom: Arc<Wecom>) -> String {
        waymark_tests::serve_on_loopback(|listener| async move {
            let router = axum::Router::new()
                .route("/cgi-bin/gettoken", get(token))
                .route("/cgi-bin/externalcontact/send_welcome_msg", post(welcome))
                .with_state(wecom);
            axum::serve(listener, router).await.unwrap();
        })
    }
}

fn journal(port: u16, user: &str) -> Vec<Value> {
    let (status, body) = http(port, "GET", &format!("/v1/users/{user}/journal"), "");
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    body["records"].as_array().unwrap().clone()
}

#[test]
fn a_new_contact_gets_the_welcome_message_with_the_pushes_code_within_20_seconds() {
    let stand_in = std::sync::Arc::new(wecom::Wecom::default());
    let base = wecom::start(stand_in.clone());
    let script = "journey welcome \"加好友欢迎\" {\n  trigger event add_external_contact\n  entry always\n  send welcome {\n    text: \"欢迎来到 {event.state} 号店\",\n    link_title: \"新人礼\",\n    link_url: \"https://shop.example/gift\"\n  }\n}\n";
    let config = format!(
        "[identity]\nidentifiers = [\"wecom_external_userid\"]\n\n\
         [channels.welcome]\nkind = \"wecom_welcome\"\nbase_url = \"{base}\"\ncorp_id = \"wwcorp\"\ncorp_secret = \"contact-secret\"\nmax_attempts = 3\ninitial_backoff = \"50ms\"\n\n\
         [callbacks.wecom.store]\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{AES_KEY}\"\ncorp_id = \"{CORP}\"\n"
    );
    let dir = daemon_dir("welcome", &[("welcome.journey", script)], &config);
    let port = free_port();
    let mut daemon = start_daemon(&dir, port, &dir.join("daemon.log"));

    let code = |c: &str| {
        format!("<State><![CDATA[42]]></State><WelcomeCode><![CDATA[{c}]]></WelcomeCode>")
    };
    // A new contact, pushed now: welcomed with the push's code.
    stand_in.issue("WC-1");
    let added = customer_change(
        "add_external_contact",
        "wmA",
        "lisi",
        now_secs(),
        &code("WC-1"),
    );
    assert_eq!(wecom_push(port, "store", &added, "w1").0, 200);
    // Pushed again by WeCom: one welcome only.
    assert_eq!(wecom_push(port, "store", &added, "w2").0, 200);
    wait_for("the welcome", Duration::from_secs(30), || {
        !stand_in.calls().is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    let calls = stand_in.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (body, errcode) = &calls[0];
    assert_eq!(*errcode, 0);
    assert_eq!(body["welcome_code"], "WC-1");
    assert_eq!(body["text"]["content"], "欢迎来到 42 号店");
    assert_eq!(
        body["attachments"][0]["link"]["url"],
        "https://shop.example/gift"
    );

    // A code WeCom says was used already (41051): the customer has a
    // welcome, so it counts as delivered, not as a failure.
    let again = customer_change(
        "add_external_contact",
        "wmB",
        "lisi",
        now_secs(),
        &code("WC-1"),
    );
    assert_eq!(wecom_push(port, "store", &again, "w3").0, 200);
    wait_for("the second call", Duration::from_secs(30), || {
        stand_in.calls().len() == 2
    });
    assert_eq!(stand_in.calls()[1].1, 41051);

    // A push made a minute ago (held up on the way): too late to welcome.
    stand_in.issue("WC-OLD");
    let late = customer_change(
        "add_external_contact",
        "wmC",
        "lisi",
        now_secs() - 60,
        &code("WC-OLD"),
    );
    assert_eq!(wecom_push(port, "store", &late, "w4").0, 200);
    // No code (an admin welcome is configured in WeCom): nothing to answer.
    let none = customer_change("add_external_contact", "wmD", "lisi", now_secs(), "");
    assert_eq!(wecom_push(port, "store", &none, "w5").0, 200);
    let reason = |user: &str| {
        journal(port, user)
            .iter()
            .find(|r| r["kind"] == "suppressed")
            .map(|r| r["reason"].as_str().unwrap().to_string())
    };
    wait_for("the suppressions", Duration::from_secs(30), || {
        reason("wecom:wmC").is_some() && reason("wecom:wmD").is_some()
    });
    assert_eq!(reason("wecom:wmC").as_deref(), Some("welcome_expired"));
    assert_eq!(reason("wecom:wmD").as_deref(), Some("no_address"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(stand_in.calls().len(), 2, "{:?}", stand_in.calls());
    let (status, dead) = http(port, "GET", "/v1/deadletters", "");
    assert_eq!(status, 200);
    assert!(!dead.contains("wmB") && !dead.contains("wmA"), "{dead}");
    assert!(
        journal(port, "wecom:wmB")
            .iter()
            .any(|r| r["kind"] == "send")
    );
    assert!(terminate(&mut daemon));
}
