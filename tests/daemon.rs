//! The real daemon over HTTP: events in, messages out through the `log`
//! channel, the journal, and a `kill -9` restart that loses nothing
//! acknowledged and sends nothing twice.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use waymark_tests::{scratch, waymark};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 request; returns (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn start(dir: &Path, port: u16) -> Child {
    let child = Command::new(waymark())
        .args([
            "run",
            "--config",
            "waymark.toml",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("daemon.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the daemon did not start: {}",
            std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn sent_lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("sent.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    // Generous: CI machines can be slow; a pass takes well under a second.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn setup(name: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(
        dir.join("scripts/welcome.journey"),
        "journey welcome {\n  trigger event signed_up\n  send wecom { text: \"欢迎 {user.nickname}\" }\n  wait 2s\n  give points 10 reason \"welcome\"\n  send wecom { text: \"+10\" }\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("waymark.toml"),
        "data_dir = \"./data\"\nscripts = \"./scripts\"\n\n[channels.wecom]\nkind = \"log\"\npath = \"./sent.jsonl\"\n",
    )
    .unwrap();
    dir
}

#[test]
fn events_in_messages_out_and_the_journal_explains_them() {
    let dir = setup("daemon_basic");
    let port = free_port();
    let mut daemon = start(&dir, port);
    let (status, _) = http(
        port,
        "POST",
        "/v1/identify",
        r#"{"userId":"u1","traits":{"nickname":"小王"}}"#,
    );
    assert_eq!(status, 200);
    let (status, body) = http(
        port,
        "POST",
        "/v1/track",
        r#"{"userId":"u1","event":"signed_up","messageId":"m1"}"#,
    );
    assert_eq!((status, body.as_str()), (200, r#"{"success":true}"#));
    let (status, body) = http(port, "POST", "/v1/track", r#"{"event":"signed_up"}"#);
    assert_eq!(status, 400);
    assert!(body.contains("\"field\":\"userId\""), "{body}");
    let (status, body) = http(
        port,
        "POST",
        "/v1/batch",
        r#"{"batch":[{"type":"track","userId":"u2","event":"signed_up"},{"type":"track","event":"x"}]}"#,
    );
    assert_eq!(status, 400);
    assert!(body.contains("batch[1].userId"), "{body}");
    wait_for("the welcome message", || sent_lines(&dir).len() == 1);
    let first = &sent_lines(&dir)[0];
    assert_eq!(first["fields"]["text"], "欢迎 小王");
    assert!(
        first["idempotency_key"]
            .as_str()
            .unwrap()
            .starts_with("welcome/")
    );
    wait_for("the timer to fire", || sent_lines(&dir).len() == 2);
    let (status, journal) = http(port, "GET", "/v1/users/u1/journal", "");
    assert_eq!(status, 200);
    for kind in ["\"enter\"", "\"send\"", "\"points\"", "\"exit\""] {
        assert!(journal.contains(kind), "{kind} missing from {journal}");
    }
    let (status, user) = http(port, "GET", "/v1/users/u1", "");
    assert_eq!(status, 200);
    assert!(user.contains("\"points\":10"), "{user}");
    let (status, _) = http(port, "GET", "/v1/users/nobody", "");
    assert_eq!(status, 404);
    let (status, stats) = http(port, "GET", "/v1/journeys/welcome/stats", "");
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let version = stats["versions"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(
        (
            version["entered"].as_u64(),
            version["completed"].as_u64(),
            version["sends"].as_u64()
        ),
        (Some(1), Some(1), Some(2)),
        "{version}"
    );
    assert_eq!(http(port, "GET", "/v1/journeys/nope/stats", "").0, 404);
    let (status, export) = http(port, "GET", "/v1/users/u1/export", "");
    assert_eq!(status, 200);
    assert!(
        export.contains("\"journal\"") && export.contains("小王"),
        "{export}"
    );
    let (status, _) = http(port, "DELETE", "/v1/users/u1", "");
    assert_eq!(status, 200);
    assert_eq!(http(port, "GET", "/v1/users/u1", "").0, 404, "erased");
    let (_, journal) = http(port, "GET", "/v1/users/u1/journal", "");
    assert!(
        !journal.contains("\"send\""),
        "the journal is erased too: {journal}"
    );
    assert_eq!(http(port, "DELETE", "/v1/users/u1", "").0, 404);
    let (_, metrics) = http(port, "GET", "/metrics", "");
    assert!(
        metrics.contains("waymark_deliveries_total{channel=\"wecom\",outcome=\"delivered\"} 2"),
        "{metrics}"
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn a_kill_9_loses_no_acknowledged_event_and_sends_nothing_twice() {
    let dir = setup("daemon_crash");
    let port = free_port();
    let mut daemon = start(&dir, port);
    let users = 40;
    for i in 0..users {
        let (status, _) = http(
            port,
            "POST",
            "/v1/track",
            &format!(r#"{{"userId":"u{i}","event":"signed_up","messageId":"m{i}"}}"#),
        );
        assert_eq!(status, 200);
    }
    // Killed with timers pending: the second message of each user is 2 s away.
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let mut daemon = start(&dir, port);
    // Resending acknowledged events is harmless: their message ids were seen.
    for i in 0..users {
        assert_eq!(
            http(
                port,
                "POST",
                "/v1/track",
                &format!(r#"{{"userId":"u{i}","event":"signed_up","messageId":"m{i}"}}"#)
            )
            .0,
            200
        );
    }
    wait_for("every user's two messages", || {
        sent_lines(&dir).len() >= 2 * users
    });
    std::thread::sleep(Duration::from_millis(500));
    let lines = sent_lines(&dir);
    let mut keys: Vec<&str> = lines
        .iter()
        .map(|l| l["idempotency_key"].as_str().unwrap())
        .collect();
    keys.sort();
    let distinct = {
        let mut k = keys.clone();
        k.dedup();
        k.len()
    };
    assert_eq!(
        distinct,
        2 * users,
        "every user got both messages, each with one stable key"
    );
    // At-least-once toward providers: a line may repeat only with the same key.
    assert!(lines.len() >= distinct);
    for i in 0..users {
        let (_, user) = http(port, "GET", &format!("/v1/users/u{i}"), "");
        assert!(
            user.contains("\"points\":10"),
            "points not doubled for u{i}: {user}"
        );
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}
