//! Fuzz target: arbitrary bytes as an ingest request body, through what
//! the daemon does with a body before its writer — gzip inflating within
//! the size limit, JSON, Segment validation, the conversion into inputs —
//! and then through a fresh in-memory runtime with the example journeys
//! (the writer's work, minus the disk), and once more through the real
//! axum router in-process. Nothing may panic; a refused body must name
//! the field at fault, and the router must answer as the pure functions
//! say it will.
//!
//! Input: one flag byte, then the body (see the README for the bits).

#![no_main]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::sync::OnceLock;
use tower::ServiceExt;
use waymark_core::deployment::Deployment;
use waymark_core::model::Input;
use waymark_dsl::source::Sources;
use waymark_dsl::{Options, compile};
use waymark_engine::config::{Scope, Token};
use waymark_engine::ingest::{self, BodyError, Call, Refusal};
use waymark_engine::runtime::Runtime;
use waymark_engine::store::{MemoryKv, SledKv, Store, StoreError};

const TOKEN: &str = "fuzz-token";

struct World {
    tokio: tokio::runtime::Runtime,
    /// The API without tokens, and with one.
    open: axum::Router,
    guarded: axum::Router,
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-11-10T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn deployment() -> &'static Deployment {
    static DEPLOYMENT: OnceLock<Deployment> = OnceLock::new();
    DEPLOYMENT.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/journeys");
        let mut sources = Sources::new();
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "journey"))
            .collect();
        names.sort();
        for path in names {
            sources.add(
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            );
        }
        let checked = compile(
            sources,
            Options {
                functions: waymark_stdlib::stdlib(),
                channels: None,
            },
        );
        Deployment::new(checked.plan.expect("the examples check clean"))
    })
}

/// The writer's work on a fresh in-memory store: ingest, then a month of timers.
fn run(inputs: &[Input]) -> Result<(), StoreError> {
    let mut runtime = Runtime::new(Store::new(MemoryKv::default()), deployment().clone());
    runtime.ingest(inputs, now())?;
    runtime.advance_to(now() + Duration::days(30))?;
    Ok(())
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("waymark-fuzz-http-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = || Store::new(SledKv::open(&dir).unwrap());
        let kv = store();
        let tokens = vec![Token {
            name: "fuzz".into(),
            token: TOKEN.into(),
            scopes: vec![Scope::Ingest, Scope::Read],
        }];
        let accept = |inputs: Vec<Input>| run(&inputs);
        World {
            tokio: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            open: waymark_engine::daemon::api_without_writer(
                Store::new(kv.kv().clone()),
                Vec::new(),
                accept,
            ),
            guarded: waymark_engine::daemon::api_without_writer(kv, tokens, accept),
        }
    })
}

fn status_of(e: &BodyError) -> StatusCode {
    match e.refusal {
        Refusal::Invalid => StatusCode::BAD_REQUEST,
        Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let call = match flags & 3 {
        0 => Some(Call::Track),
        1 => Some(Call::Identify),
        2 => Some(Call::Batch),
        _ => None,
    };
    // Call 3: "METHOD PATH\n" then the body, to any route.
    let (method, path, payload) = match call {
        Some(Call::Track) => ("POST", "/v1/track".to_string(), rest),
        Some(Call::Identify) => ("POST", "/v1/identify".to_string(), rest),
        Some(Call::Batch) => ("POST", "/v1/batch".to_string(), rest),
        None => {
            let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let line = String::from_utf8_lossy(&rest[..line_end]).into_owned();
            let (method, path) = line.split_once(' ').unwrap_or(("POST", line.as_str()));
            let method = match method {
                "GET" => "GET",
                "DELETE" => "DELETE",
                "PUT" => "PUT",
                _ => "POST",
            };
            (
                method,
                path.to_string(),
                rest.get(line_end + 1..).unwrap_or(&[]),
            )
        }
    };
    let compress = flags & 4 != 0;
    let body = if compress {
        gzip(payload)
    } else {
        payload.to_vec()
    };
    let looks_gzipped = body.starts_with(&[0x1f, 0x8b]);
    let encoding = match (flags >> 3) & 3 {
        0 if compress || looks_gzipped => Some("gzip"),
        0 => None,
        1 => Some("gzip"),
        2 => Some("x-gzip"),
        _ => Some("br"),
    };

    // The pure path: every refusal names its field.
    let decoded = ingest::decode_body(encoding, &body, ingest::MAX_BODY);
    let converted = decoded
        .as_ref()
        .ok()
        .zip(call)
        .map(|(json, call)| ingest::messages(json, call, now()));
    for e in [
        decoded.as_ref().err(),
        converted.as_ref().and_then(|c| c.as_ref().err()),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!e.field.is_empty() && !e.message.is_empty(), "{e:?}");
    }
    // A body sent with a token is read straight from its text: what
    // reading it as JSON gives, refusals included.
    if let Some(call) = call {
        let direct =
            ingest::body_messages(encoding, &body, call, now(), &ingest::Limits::default());
        let through_json = decoded
            .clone()
            .and_then(|json| ingest::messages(&json, call, now()));
        assert_eq!(direct, through_json);
    }
    if let Some(Ok(taken)) = &converted {
        for r in &taken.refused {
            assert!(!r.field.is_empty() && !r.message.is_empty(), "{r:?}");
        }
        run(&taken.inputs).expect("the in-memory store does not fail");
    }

    // The router, in-process.
    let guarded = flags & 128 != 0;
    let auth = (flags >> 5) & 3;
    let mut request = Request::builder().method(method).uri(path.as_str());
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    request = match auth {
        1 => request.header("authorization", format!("Bearer {TOKEN}")),
        2 => request.header("authorization", "Basic ZnV6ei10b2tlbjo="), // "fuzz-token:"
        3 => request.header("authorization", "Bearer wrong"),
        _ => request,
    };
    let Ok(request) = request.body(Body::from(body)) else {
        return; // Not a valid URI: it would never reach the router.
    };
    let world = world();
    let router = if guarded { &world.guarded } else { &world.open };
    let response = world
        .tokio
        .block_on(router.clone().oneshot(request))
        .expect("routers are infallible");
    let status = response.status();
    let text = world
        .tokio
        .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .unwrap();
    let field = if status.is_success() {
        None
    } else {
        let json: serde_json::Value = serde_json::from_slice(&text)
            .unwrap_or_else(|e| panic!("{status}: not a JSON error ({e}): {text:?}"));
        let field = json["error"]["field"].as_str().unwrap_or("").to_string();
        assert!(!field.is_empty(), "{status}: no field in {json}");
        Some(field)
    };
    let Some(_) = call else {
        // Any route: 5xx only for admin commands, which this API refuses as shutting down.
        assert!(
            !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {status} {text:?}"
        );
        return;
    };
    let expected = match (&decoded, &converted) {
        // A wrong token in the headers is refused before the body is read.
        _ if guarded && auth == 3 => {
            assert_eq!(
                (status, field.as_deref()),
                (StatusCode::UNAUTHORIZED, Some("authorization")),
                "{text:?}"
            );
            return;
        }
        (Err(e), _) => Some(e),
        _ if guarded && auth != 1 && auth != 2 => {
            // No token (a `writeKey` in the body may still pass).
            assert!(
                status == StatusCode::UNAUTHORIZED || status == StatusCode::OK || field.is_some(),
                "{status}"
            );
            return;
        }
        (Ok(_), Some(Err(e))) => Some(e),
        _ => None,
    };
    // A batch whose every item was refused is answered 400, naming the first.
    let all_refused = match &converted {
        Some(Ok(taken)) if taken.taken() == 0 => taken.refused.first(),
        _ => None,
    };
    match (expected, all_refused) {
        (Some(e), _) => assert_eq!(
            (status, field.as_deref()),
            (status_of(e), Some(e.field.as_str())),
            "{text:?}"
        ),
        (None, Some(first)) => assert_eq!(
            (status, field.as_deref()),
            (StatusCode::BAD_REQUEST, Some(first.field.as_str())),
            "{text:?}"
        ),
        (None, None) => assert_eq!(status, StatusCode::OK, "{text:?}"),
    }
});
