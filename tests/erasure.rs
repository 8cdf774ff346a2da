//! Erasure that erases, through the real daemon: a member's nickname,
//! phone number and consent evidence, spread over their profile, journal,
//! outbox, consent ledger and an anonymous id merged into them, cannot be
//! found in any byte of the data directory after `DELETE /v1/users/{id}`
//! (by the merged id) and a restart — while another member's data still
//! reads back through the API.

use serde_json::{Value, json};
use std::path::Path;
use std::process::Child;
use std::time::Duration;
use waymark_tests::{daemon_dir, free_port, http, start_daemon, terminate};

fn start(dir: &Path, port: u16) -> Child {
    start_daemon(dir, port, &dir.join("daemon.log"))
}

fn stop(mut daemon: Child) {
    assert!(terminate(&mut daemon));
}

fn post(port: u16, path: &str, body: Value) {
    let (status, answer) = http(port, "POST", path, &body.to_string());
    assert_eq!(status, 200, "{path}: {answer}");
}

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[test]
fn an_erased_members_data_is_in_no_byte_of_the_data_directory() {
    let dir = daemon_dir(
        "erasure_bytes",
        &[(
            "welcome.journey",
            "journey welcome {\n  trigger event signed_up\n  send sms template \"SMS_WELCOME\" { name: user.nickname, phone: user.phone }\n  wait 1d\n  send sms template \"SMS_DAY2\" { name: user.nickname }\n}\n",
        )],
        "[identity]\nidentifiers = [\"phone\"]\n\n[channels.sms]\nkind = \"log\"\npath = \"./sent.jsonl\"\n",
    );
    let (nickname, phone, evidence) = ("抹去的昵称ZQ7", "13912345678", "证据-ZQ7-录音");
    let kept = "保留的昵称KP3";
    let port = free_port();
    let daemon = start(&dir, port);
    // As an anonymous visitor, then signed up: two ids, one person.
    post(
        port,
        "/v1/identify",
        json!({"anonymousId": "anon-zq7", "traits": {"nickname": nickname}}),
    );
    post(
        port,
        "/v1/identify",
        json!({"userId": "member-zq7", "anonymousId": "anon-zq7", "traits": {"nickname": nickname, "phone": phone}}),
    );
    post(
        port,
        "/v1/track",
        json!({"userId": "member-zq7", "event": "signed_up"}),
    );
    post(
        port,
        "/v1/users/member-zq7/consent",
        json!({"channel": "sms", "granted": true, "evidence": evidence}),
    );
    post(
        port,
        "/v1/identify",
        json!({"userId": "kept-kp3", "traits": {"nickname": kept}}),
    );
    post(
        port,
        "/v1/track",
        json!({"userId": "kept-kp3", "event": "signed_up"}),
    );
    waymark_tests::wait_for("both welcomes", Duration::from_secs(60), || {
        std::fs::read_to_string(dir.join("sent.jsonl"))
            .unwrap_or_default()
            .lines()
            .count()
            >= 2
    });
    // Before the erasure the data is there, readable through the API.
    let (_, answer) = http(port, "GET", "/v1/users/anon-zq7/export", "");
    assert!(
        answer.contains(nickname) && answer.contains(evidence),
        "{answer}"
    );

    let (status, answer) = http(port, "DELETE", "/v1/users/anon-zq7", "");
    assert_eq!(status, 200, "{answer}");
    stop(daemon);
    // Started again (an erasure cut short would be finished now) and
    // stopped, so every file is as the store left it.
    let daemon = start(&dir, port);
    let (status, _) = http(port, "GET", "/v1/users/member-zq7", "");
    assert_eq!(status, 404);
    let (status, answer) = http(port, "GET", "/v1/users/kept-kp3/export", "");
    assert_eq!(status, 200);
    assert!(
        answer.contains(kept),
        "the other member reads back: {answer}"
    );
    stop(daemon);

    let data = dir.join("data");
    for needle in [nickname, phone, evidence] {
        let found = files_holding(&data, needle.as_bytes());
        assert!(found.is_empty(), "{needle:?} is still in {found:?}");
    }
    // Nobody's data is at rest in plain text: the member kept is sealed too.
    assert!(files_holding(&data, kept.as_bytes()).is_empty());
    // The check can fail: the channel's own output (outside the store)
    // still holds what was sent.
    assert!(!files_holding(&dir, nickname.as_bytes()).is_empty());
}
