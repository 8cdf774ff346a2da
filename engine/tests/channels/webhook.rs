//! `webhook`: a receiver that checks `X-Waymark-Signature` against the raw
//! body with the shared secret, as a customer's endpoint would.

use super::{Log, channel, serve, settings};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use waymark_channel::conformance::{DeliverKeyed, check_kind, sample_message};
use waymark_engine::channels::{DeliveryError, WebhookKind};

const SECRET: &str = "s3cr3t-shared-with-the-receiver";

#[derive(Debug, Clone)]
struct Hit {
    headers: HeaderMap,
    body: Value,
}

/// The receiver: 401 unless the signature is the HMAC-SHA256 of the body
/// under SECRET; then it records the request.
async fn receive(State(log): State<Log<Hit>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(given) = headers
        .get("x-waymark-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| hex::decode(v).ok())
    else {
        return StatusCode::UNAUTHORIZED;
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    if mac.verify_slice(&given).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    let body: Value = serde_json::from_slice(&body).expect("the body is JSON");
    log.lock().unwrap().push(Hit { headers, body });
    StatusCode::NO_CONTENT
}

/// Answers with the status in its path and a body saying why.
async fn status(Path(code): Path<u16>) -> (StatusCode, &'static str) {
    (
        StatusCode::from_u16(code).unwrap(),
        "{\"error\":\"field `n` is not allowed\"}",
    )
}

async fn receiver() -> (String, Log<Hit>) {
    let log: Log<Hit> = Default::default();
    let router = axum::Router::new()
        .route("/hook", post(receive))
        .route("/status/{code}", post(status))
        .with_state(log.clone());
    (serve(router).await, log)
}

#[tokio::test]
async fn webhook_conforms_and_the_receiver_gets_signed_records_with_the_key_and_headers() {
    let (base, log) = receiver().await;
    let config = settings(&format!(
        "url = \"{base}/hook\"\nsecret = \"{SECRET}\"\ntimeout = \"5s\"\n[headers]\nX-Tenant = \"acme\"\nAuthorization = \"Bearer t0k\"\n"
    ));
    let message = sample_message("hook", "u1", Some("T1"), json!({ "n": 1 }));
    let delivered = check_kind(&WebhookKind, &config, &message).await;

    let hits = log.lock().unwrap().clone();
    assert_eq!(
        hits.len(),
        delivered.accepted,
        "every delivery was signed right"
    );
    for hit in &hits[..2] {
        let header = |name: &str| hit.headers.get(name).unwrap().to_str().unwrap();
        assert_eq!(header("idempotency-key"), delivered.key);
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("x-tenant"), "acme");
        assert_eq!(header("authorization"), "Bearer t0k");
        let mut expected = serde_json::to_value(&message).unwrap();
        expected["idempotency_key"] = json!(delivered.key);
        assert_eq!(hit.body, expected, "the body is the journal record");
    }
    assert_eq!(hits[0].body["fields"], json!({ "n": 1 }));
    assert_eq!(hits[0].body["template"], "T1");
}

#[tokio::test]
async fn a_webhook_signed_with_another_secret_is_refused_permanently() {
    let (base, log) = receiver().await;
    let hook = channel(
        &WebhookKind,
        &settings(&format!("url = \"{base}/hook\"\nsecret = \"not-it\"\n")),
    );
    let message = sample_message("hook", "", None, json!({}));
    match hook.deliver_keyed(&message, "k1").await {
        Err(DeliveryError::Permanent(m)) => assert!(m.contains("401"), "{m}"),
        other => panic!("{other:?}"),
    }
    let unsigned = channel(&WebhookKind, &settings(&format!("url = \"{base}/hook\"\n")));
    assert!(matches!(
        unsigned.deliver_keyed(&message, "k1").await,
        Err(DeliveryError::Permanent(_))
    ));
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn webhook_server_errors_and_throttling_are_retryable_and_bad_requests_permanent() {
    let (base, _) = receiver().await;
    let message = sample_message("hook", "", None, json!({ "n": 1 }));
    for (code, retryable) in [
        (500, true),
        (503, true),
        (429, true),
        (400, false),
        (404, false),
    ] {
        let hook = channel(
            &WebhookKind,
            &settings(&format!("url = \"{base}/status/{code}\"\n")),
        );
        match hook.deliver_keyed(&message, "k").await {
            Err(DeliveryError::Retryable(m)) if retryable => {
                assert!(m.contains(&code.to_string()), "{m}")
            }
            Err(DeliveryError::Permanent(m)) if !retryable => {
                assert!(m.contains(&code.to_string()), "{m}");
                assert!(
                    m.contains("field `n` is not allowed"),
                    "the receiver's words: {m}"
                );
            }
            other => panic!("{code}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_webhook_that_never_answers_is_retryable_once_the_timeout_passes() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let hook = channel(
        &WebhookKind,
        &settings(&format!("url = \"http://{addr}/hook\"\ntimeout = \"1s\"\n")),
    );
    let started = Instant::now();
    let result = hook
        .deliver_keyed(&sample_message("hook", "", None, json!({})), "k")
        .await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(DeliveryError::Retryable(_))),
        "{result:?}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "gave up after {took:?}"
    );
}

#[tokio::test]
async fn a_webhook_nobody_listens_on_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let hook = channel(
        &WebhookKind,
        &settings(&format!("url = \"http://{addr}/hook\"\n")),
    );
    let result = hook
        .deliver_keyed(&sample_message("hook", "", None, json!({})), "k")
        .await;
    assert!(
        matches!(result, Err(DeliveryError::Retryable(_))),
        "{result:?}"
    );
}
