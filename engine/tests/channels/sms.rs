//! `sms`: a Dysmsapi stand-in that re-derives the ACS3-HMAC-SHA256
//! signature of every request it receives — its own implementation,
//! written from Alibaba Cloud's V3 signature documentation — answers
//! `SignatureDoesNotMatch` when it differs, and otherwise answers
//! `SendSms` by the phone number: some numbers stand for flow control,
//! service trouble or a bad number.

use super::{Log, channel, serve, settings};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use waymark_channel::conformance::{DeliverKeyed, check_kind, sample_message};
use waymark_engine::channels::{DeliveryError, SmsKind};

const KEY_ID: &str = "LTAI5tTestKeyId";
const KEY_SECRET: &str = "test-access-key-secret";
const SIGN_NAME: &str = "阿里云短信测试";

/// One SendSms the provider accepted.
#[derive(Debug, Clone)]
struct Sent {
    params: BTreeMap<String, String>,
    idempotency_key: Option<String>,
}

/// RFC 3986, as the documentation spells it out.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Why the request's signature is wrong, if it is.
fn check_signature(
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization")?;
    let rest = authorization
        .strip_prefix("ACS3-HMAC-SHA256 ")
        .ok_or("not ACS3-HMAC-SHA256")?;
    let parts: BTreeMap<&str, &str> = rest.split(',').filter_map(|p| p.split_once('=')).collect();
    if parts.get("Credential") != Some(&KEY_ID) {
        return Err(format!("unknown AccessKeyId {:?}", parts.get("Credential")));
    }
    let signed: Vec<&str> = parts
        .get("SignedHeaders")
        .ok_or("no SignedHeaders")?
        .split(';')
        .collect();
    let mut sorted = signed.clone();
    sorted.sort();
    if sorted != signed {
        return Err("SignedHeaders are not sorted".into());
    }
    for required in [
        "host",
        "x-acs-action",
        "x-acs-content-sha256",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-version",
    ] {
        if !signed.contains(&required) {
            return Err(format!("{required} is not signed"));
        }
    }
    for name in headers.keys() {
        let name = name.as_str();
        if (name.starts_with("x-acs-") || name == "content-type") && !signed.contains(&name) {
            return Err(format!("{name} is sent but not signed"));
        }
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    let hashed_payload = sha256_hex(body);
    if header("x-acs-content-sha256") != hashed_payload {
        return Err("x-acs-content-sha256 is not the body's".into());
    }
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_headers: String = signed
        .iter()
        .map(|h| format!("{h}:{}\n", header(h)))
        .collect();
    let canonical_request = format!(
        "POST\n/\n{canonical_query}\n{canonical_headers}\n{}\n{hashed_payload}",
        signed.join(";")
    );
    let string_to_sign = format!(
        "ACS3-HMAC-SHA256\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(KEY_SECRET.as_bytes()).unwrap();
    mac.update(string_to_sign.as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    if parts.get("Signature") != Some(&expected.as_str()) {
        return Err(format!(
            "the signature does not match; canonical request:\n{canonical_request}"
        ));
    }
    Ok(())
}

async fn send_sms(
    State(log): State<Log<Sent>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let params: BTreeMap<String, String> = query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    if let Err(why) = check_signature(&params, &headers, &body) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "RequestId": "R-sig",
                "Code": "SignatureDoesNotMatch",
                "Message": format!("Specified signature does not match our calculation. {why}"),
            })),
        );
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("x-acs-action"), Some("SendSms"));
    assert_eq!(header("x-acs-version"), Some("2017-05-25"));
    let (status, code, message) = match params.get("PhoneNumbers").map(String::as_str) {
        Some("13900000001") => (200, "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1"),
        Some("13900000002") => (
            400,
            "Throttling.User",
            "Request was denied due to user flow control.",
        ),
        Some("13900000003") => (
            503,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        ),
        Some("13900000004") => (200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号"),
        _ if params.get("TemplateCode").map(String::as_str) == Some("SMS_UNKNOWN") => {
            (200, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        }
        _ => (200, "OK", "OK"),
    };
    if code == "OK" {
        log.lock().unwrap().push(Sent {
            params,
            idempotency_key: header("idempotency-key").map(str::to_string),
        });
    }
    (
        StatusCode::from_u16(status).unwrap(),
        Json(json!({
            "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990",
            "Code": code,
            "Message": message,
            "BizId": (code == "OK").then_some("900619746936498440^0"),
        })),
    )
}

async fn provider() -> (String, Log<Sent>) {
    let log: Log<Sent> = Default::default();
    let router = axum::Router::new()
        .route("/", post(send_sms))
        .with_state(log.clone());
    (serve(router).await, log)
}

fn config(endpoint: &str, secret: &str) -> toml::Table {
    settings(&format!(
        "endpoint = \"{endpoint}\"\naccess_key_id = \"{KEY_ID}\"\naccess_key_secret = \"{secret}\"\nsign_name = \"{SIGN_NAME}\"\ntimeout = \"5s\"\n"
    ))
}

#[tokio::test]
async fn sms_conforms_and_the_provider_verifies_each_signature_and_gets_the_params() {
    let (endpoint, log) = provider().await;
    let message = sample_message(
        "sms",
        "13800138000",
        Some("SMS_154950909"),
        json!({ "code": "A1 *~/", "amount": 9.9, "name": "李雷" }),
    );
    let delivered = check_kind(&SmsKind, &config(&endpoint, KEY_SECRET), &message).await;

    let sent = log.lock().unwrap().clone();
    assert_eq!(sent.len(), delivered.accepted);
    assert_eq!(sent.len(), 2);
    for s in &sent {
        assert_eq!(s.params["PhoneNumbers"], "13800138000");
        assert_eq!(s.params["SignName"], SIGN_NAME);
        assert_eq!(s.params["TemplateCode"], "SMS_154950909");
        assert_eq!(s.params["OutId"], delivered.key);
        assert_eq!(s.idempotency_key.as_deref(), Some(delivered.key.as_str()));
        let template_param: Value = serde_json::from_str(&s.params["TemplateParam"]).unwrap();
        assert_eq!(
            template_param,
            json!({ "code": "A1 *~/", "amount": "9.9", "name": "李雷" })
        );
    }
}

#[tokio::test]
async fn sms_returns_the_biz_id_and_sends_no_template_param_for_a_template_without_fields() {
    let (endpoint, log) = provider().await;
    let sms = channel(&SmsKind, &config(&endpoint, KEY_SECRET));
    let message = sample_message("sms", "13800138000", Some("SMS_1"), json!({}));
    let receipt = sms.deliver_keyed(&message, "j/v1/u1/1/s1/0").await.unwrap();
    assert_eq!(receipt.provider_id.as_deref(), Some("900619746936498440^0"));
    let sent = log.lock().unwrap().clone();
    assert!(!sent[0].params.contains_key("TemplateParam"), "{sent:?}");
    assert_eq!(sent[0].params["OutId"], "j/v1/u1/1/s1/0");
}

#[tokio::test]
async fn sms_signed_with_another_secret_is_refused_by_the_provider_permanently() {
    let (endpoint, log) = provider().await;
    let sms = channel(&SmsKind, &config(&endpoint, "not-the-secret"));
    let message = sample_message("sms", "13800138000", Some("SMS_1"), json!({}));
    match sms.deliver_keyed(&message, "k").await {
        Err(DeliveryError::Permanent(m)) => assert!(m.contains("SignatureDoesNotMatch"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn sms_flow_control_and_service_trouble_are_retryable_and_bad_numbers_or_templates_permanent()
{
    let (endpoint, _) = provider().await;
    let sms = channel(&SmsKind, &config(&endpoint, KEY_SECRET));
    for (phone, template, retryable, code) in [
        ("13900000001", "SMS_1", true, "isv.BUSINESS_LIMIT_CONTROL"),
        ("13900000002", "SMS_1", true, "Throttling.User"),
        ("13900000003", "SMS_1", true, "ServiceUnavailable"),
        ("13900000004", "SMS_1", false, "isv.MOBILE_NUMBER_ILLEGAL"),
        (
            "13800138000",
            "SMS_UNKNOWN",
            false,
            "isv.SMS_TEMPLATE_ILLEGAL",
        ),
    ] {
        let message = sample_message("sms", phone, Some(template), json!({ "n": 1 }));
        match sms.deliver_keyed(&message, "k").await {
            Err(DeliveryError::Retryable(m)) if retryable => assert!(m.contains(code), "{m}"),
            Err(DeliveryError::Permanent(m)) if !retryable => assert!(m.contains(code), "{m}"),
            other => panic!("{phone}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn sms_keys_past_the_out_id_limit_are_hashed_the_same_way_on_every_attempt() {
    let (endpoint, log) = provider().await;
    let sms = channel(&SmsKind, &config(&endpoint, KEY_SECRET));
    let message = sample_message("sms", "13800138000", Some("SMS_1"), json!({}));
    let key = "k".repeat(300);
    sms.deliver_keyed(&message, &key).await.unwrap();
    sms.deliver_keyed(&message, &key).await.unwrap();
    let sent = log.lock().unwrap().clone();
    assert_eq!(sent[0].params["OutId"].len(), 64);
    assert_eq!(sent[0].params["OutId"], sent[1].params["OutId"]);
    assert_eq!(sent[0].idempotency_key.as_deref(), Some(key.as_str()));
}
