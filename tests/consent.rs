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
use waymark_tests::{free_port, http, http_with_headers, scratch, start_daemon};

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
    let dir = scratch("consent_ledger");
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(
        dir.join("scripts/promo.journey"),
        "policy default {\n  consent required\n}\n\njourney promo {\n  trigger event browsed\n  entry always\n  send sms { text: \"sale\" }\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("waymark.toml"),
        "data_dir = \"./data\"\nscripts = \"./scripts\"\n\n[consent]\nevidence_bytes = 64\n\n[channels.sms]\nkind = \"log\"\npath = \"./sent.jsonl\"\n",
    )
    .unwrap();
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
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(daemon.wait().unwrap().success());
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
        "at,user,channel,purpose,granted,source,evidence,message_id,by,journey"
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
