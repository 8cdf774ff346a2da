//! The real daemon over HTTP: events in, messages out through the `log`
//! channel, the journal, gzip bodies within the size limit, and a
//! `kill -9` restart that loses nothing acknowledged and sends nothing
//! twice.

use std::io::Write;
use std::path::Path;
use std::process::Child;
use std::time::Duration;
use waymark_tests::{Client, free_port, http, provider, start_daemon};

fn start(dir: &Path, port: u16) -> Child {
    start_daemon(dir, port, &dir.join("daemon.log"))
}

fn sent_lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("sent.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_for(what: &str, f: impl FnMut() -> bool) {
    // Generous: CI machines can be slow; a pass takes well under a second.
    waymark_tests::wait_for(what, Duration::from_secs(60), f)
}

fn setup(name: &str) -> std::path::PathBuf {
    setup_with(
        name,
        "journey welcome {\n  trigger event signed_up\n  send wecom { text: \"欢迎 {user.nickname}\" }\n  wait 2s\n  give points 10 reason \"welcome\"\n  send wecom { text: \"+10\" }\n}\n",
        "[channels.wecom]\nkind = \"log\"\npath = \"./sent.jsonl\"\n",
    )
}

/// A scratch dir with `script` as its one journey file and a config of
/// `channels` beside the data dir and scripts folder.
fn setup_with(name: &str, script: &str, channels: &str) -> std::path::PathBuf {
    waymark_tests::daemon_dir(name, &[("welcome.journey", script)], channels)
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
        r#"{"batch":[{"type":"track","event":"x"},{"type":"track"}]}"#,
    );
    assert_eq!(status, 400, "every item refused: {body}");
    assert!(body.contains("batch[0].userId"), "{body}");
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

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The `error` object of a JSON error answer.
fn error_of(body: &[u8]) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    json["error"].clone()
}

#[test]
fn gzip_bodies_are_taken_and_bombs_and_bad_requests_get_json_errors() {
    let dir = setup("daemon_gzip");
    let port = free_port();
    let mut daemon = start(&dir, port);
    let mut client = Client::new(port);
    let gzip_header = [("Content-Encoding", "gzip")];
    let message = br#"{"userId":"g1","event":"signed_up","messageId":"g1"}"#;
    let (status, _) = client
        .request("POST", "/v1/track", &gzip_header, &gzip(message))
        .unwrap();
    assert_eq!(status, 200);
    wait_for("the gzipped event's message", || {
        sent_lines(&dir).iter().any(|l| l["user"] == "g1")
    });

    // 9 MiB of whitespace around a message inflates past the 8 MiB limit
    // from a body of a few kilobytes.
    let mut bomb = message.to_vec();
    bomb.resize(9 << 20, b' ');
    let bomb = gzip(&bomb);
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let (status, body) = client
        .request("POST", "/v1/batch", &gzip_header, &bomb)
        .unwrap();
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert_eq!(error_of(&body)["field"], "body");
    assert!(
        error_of(&body)["message"]
            .as_str()
            .unwrap()
            .contains("decompressed")
    );

    // Uncompressed, the same size is refused as soon as it passes the limit
    // (the daemon may answer before reading all of it: write on a thread).
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let upload = std::thread::spawn(move || {
        let size = 9 << 20;
        let head = format!("POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(&vec![b' '; size]);
    });
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(error_of(body.as_bytes())["field"], "body", "{answer}");
    upload.join().unwrap();

    let mut client = Client::new(port);
    let (status, body) = client
        .request("POST", "/v1/track", &gzip_header, message)
        .unwrap();
    assert_eq!(
        (status, error_of(&body)["field"].as_str()),
        (400, Some("body"))
    );
    let (status, body) = client
        .request("POST", "/v1/track", &[("Content-Encoding", "br")], message)
        .unwrap();
    assert_eq!(
        (status, error_of(&body)["field"].as_str()),
        (415, Some("content-encoding"))
    );
    let (status, body) = client.request("GET", "/v1/track", &[], b"").unwrap();
    assert_eq!(
        (status, error_of(&body)["field"].as_str()),
        (405, Some("method"))
    );
    let (status, body) = client
        .request(
            "POST",
            "/v1/track",
            &[],
            br#"{"userId":"g2","event":"x","messageId":""}"#,
        )
        .unwrap();
    assert_eq!(
        (status, error_of(&body)["field"].as_str()),
        (400, Some("messageId"))
    );
    // The daemon is still well.
    assert_eq!(http(port, "GET", "/healthz", "").0, 200);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn a_second_daemon_on_the_same_data_dir_names_the_first_and_sighup_is_survived() {
    let dir = setup("daemon_in_use");
    let port = free_port();
    let mut daemon = start(&dir, port);
    let pid = daemon.id();

    let second = std::process::Command::new(waymark_tests::waymark())
        .args([
            "run",
            "--config",
            "waymark.toml",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!(
            "data dir ./data is in use by another waymark (pid {pid})"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Os {"),
        "no Debug of an io::Error: {stderr}"
    );

    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for("the SIGHUP to be logged", || {
        std::fs::read_to_string(dir.join("daemon.log"))
            .unwrap_or_default()
            .contains("SIGHUP received")
    });
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "SIGHUP stopped the daemon"
    );
    let (status, _) = http(port, "GET", "/healthz", "");
    assert_eq!(status, 200);
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap();
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a log file: {log}");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

/// Issue 10 item 6: a send given up on is a `failed` record in the user's
/// journal and the journey's stats; a replay that gets through appends
/// `delivered`.
#[test]
fn a_send_given_up_on_is_journaled_failed_and_a_replay_that_gets_through_delivered() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
    let status = Arc::new(AtomicU16::new(400));
    let requests = Arc::new(AtomicUsize::new(0));
    let hook = provider(status.clone(), requests.clone());
    let dir = setup_with(
        "daemon_failed_sends",
        "journey notify {\n  trigger event ordered\n  send hook { text: \"thanks\" }\n}\n",
        &format!("[channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{hook}/in\"\n"),
    );
    let port = free_port();
    let mut daemon = start(&dir, port);
    let (code, _) = http(
        port,
        "POST",
        "/v1/track",
        r#"{"userId":"u1","event":"ordered"}"#,
    );
    assert_eq!(code, 200);
    let journal = || -> Vec<serde_json::Value> {
        let (_, body) = http(port, "GET", "/v1/users/u1/journal", "");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        body["records"].as_array().unwrap().clone()
    };
    let of_kind = |records: &[serde_json::Value], kind: &str| -> Vec<serde_json::Value> {
        records
            .iter()
            .filter(|r| r["kind"] == kind)
            .cloned()
            .collect()
    };
    wait_for("the failed record", || {
        !of_kind(&journal(), "failed").is_empty()
    });
    let records = journal();
    let send = &of_kind(&records, "send")[0];
    let failed = &of_kind(&records, "failed")[0];
    assert_eq!(failed["channel"], "hook");
    assert_eq!(failed["journey"], "notify");
    assert_eq!(failed["attempts"], 1, "a 400 is not retried");
    assert_eq!(failed["idempotency_key"], send["idempotency_key"]);
    assert!(
        failed["reason"].as_str().unwrap().contains("400"),
        "{failed}"
    );
    let (_, stats) = http(port, "GET", "/v1/journeys/notify/stats", "");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let version = stats["versions"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(version["failed"]["hook"], 1, "{stats}");
    assert_eq!(version["sends"], 1, "{stats}");

    // The provider is fixed; the operator replays the dead letter.
    status.store(200, Ordering::SeqCst);
    let (_, dead) = http(port, "GET", "/v1/deadletters", "");
    let dead: serde_json::Value = serde_json::from_str(&dead).unwrap();
    let id = dead["deadletters"][0]["id"].as_u64().unwrap();
    let (code, _) = http(port, "POST", &format!("/v1/deadletters/{id}/replay"), "");
    assert_eq!(code, 200);
    wait_for("the delivered record", || {
        !of_kind(&journal(), "delivered").is_empty()
    });
    let delivered = &of_kind(&journal(), "delivered")[0];
    assert_eq!(delivered["channel"], "hook");
    assert_eq!(delivered["idempotency_key"], send["idempotency_key"]);
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    let (_, stats) = http(port, "GET", "/v1/journeys/notify/stats", "");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let version = stats["versions"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(version["delivered_on_replay"]["hook"], 1, "{stats}");
    let (_, dead) = http(port, "GET", "/v1/deadletters", "");
    assert!(dead.contains("\"deadletters\":[]"), "{dead}");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

/// Item 9: a Segment batch of every type is taken item by item. `page`
/// becomes an event named `page` whose `event.name` is the page's name,
/// `group` sets the `groups` trait, `alias` is taken and reported as not
/// acted on, and a bad item is refused by index without losing the rest.
#[test]
fn a_segment_batch_of_every_type_is_taken_item_by_item() {
    let dir = setup("daemon_segment_types");
    std::fs::write(
        dir.join("scripts/segment.journey"),
        r#"journey pricing {
  trigger event page where event.name == "Pricing"
  send wecom { text: "pricing {event.url}" }
}

journey thanks {
  trigger event "Order Completed"
  send wecom { text: "thanks {event.revenue}" }
}
"#,
    )
    .unwrap();
    let port = free_port();
    let mut daemon = start(&dir, port);
    let (status, body) = http(
        port,
        "POST",
        "/v1/batch",
        r#"{"batch":[
            {"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":42}},
            {"type":"page","userId":"u1","name":"Pricing","properties":{"url":"/pricing"}},
            {"type":"screen","userId":"u1","name":"Home"},
            {"type":"group","userId":"u1","groupId":"acme","traits":{"plan":"pro"}},
            {"type":"alias","userId":"u1","previousId":"anon-1"},
            {"type":"track","userId":"u1"},
            {"type":"identify","userId":"u1","traits":{"nickname":"小王"}}
        ]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["taken"], 6, "{answer}");
    assert_eq!(
        answer["refused"],
        serde_json::json!([{"index": 5, "field": "batch[5].event", "message": "missing"}]),
        "{answer}"
    );
    assert_eq!(answer["unsupported"], serde_json::json!([]), "{answer}");
    wait_for("both journeys' messages", || sent_lines(&dir).len() == 2);
    let mut texts: Vec<String> = sent_lines(&dir)
        .iter()
        .map(|l| l["fields"]["text"].as_str().unwrap().to_string())
        .collect();
    texts.sort();
    assert_eq!(texts, ["pricing /pricing", "thanks 42"]);
    let (status, user) = http(port, "GET", "/v1/users/u1", "");
    assert_eq!(status, 200);
    let user: serde_json::Value = serde_json::from_str(&user).unwrap();
    assert_eq!(
        user["profile"]["groups"],
        serde_json::json!({"acme": {"plan": "pro"}}),
        "{user}"
    );
    assert_eq!(user["profile"]["nickname"], "小王", "{user}");
    // The alias made anon-1 an id of u1.
    let (status, aliased) = http(port, "GET", "/v1/users/anon-1", "");
    assert_eq!(status, 200, "{aliased}");
    let aliased: serde_json::Value = serde_json::from_str(&aliased).unwrap();
    assert_eq!(aliased["id"], "u1", "{aliased}");
    let (_, metrics) = http(port, "GET", "/metrics", "");
    assert!(
        metrics.contains("waymark_profile_merges_total{how=\"alias\"} 1"),
        "{metrics}"
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn an_event_that_finds_the_writer_idle_waits_for_no_others() {
    // A long gathering window: an event arriving while no commit is being
    // written is committed at once, not after the window.
    let dir = setup_with(
        "daemon_idle_commit",
        "journey welcome {\n  trigger event signed_up\n  give points 10 reason \"welcome\"\n}\n",
        "flush_interval = \"1s\"\n",
    );
    let port = free_port();
    let mut daemon = start(&dir, port);
    let mut client = Client::new(port);
    for i in 0..5 {
        let started = std::time::Instant::now();
        let body = format!(r#"{{"userId":"u{i}","event":"signed_up","messageId":"idle{i}"}}"#);
        let (status, _) = client
            .request("POST", "/v1/track", &[], body.as_bytes())
            .unwrap();
        assert_eq!(status, 200);
        // Well under the window even on a slow machine; one that waited
        // for it would take a second or more.
        assert!(
            started.elapsed() < Duration::from_millis(800),
            "answered after {:?}",
            started.elapsed()
        );
    }
    let (status, body) = http(port, "GET", "/v1/users/u4", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"points\":10"), "{body}");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

/// The daemon turns transparent huge pages off for itself: with them, a
/// first touch of a 2 MiB page stalled its writer for milliseconds.
#[cfg(target_os = "linux")]
#[test]
fn the_daemon_runs_without_transparent_huge_pages() {
    let dir = setup("daemon_no_thp");
    let port = free_port();
    let mut daemon = start(&dir, port);
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.id())).unwrap();
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let thp = status
        .lines()
        .find(|l| l.starts_with("THP_enabled:"))
        .unwrap_or_else(|| panic!("no THP_enabled line in /proc/PID/status:\n{status}"));
    assert_eq!(thp.split_whitespace().nth(1), Some("0"), "{thp}");
}

/// The global pause: marketing sends are held (deferred, `global_pause`)
/// while transactional ones go out, it survives a restart and shows in
/// `/readyz` and `/metrics`; resuming sends what was held, once. With
/// `?drop=true` the sends are suppressed instead.
#[test]
fn a_global_pause_holds_marketing_sends_until_resumed_or_drops_them() {
    let dir = setup_with(
        "daemon_global_pause",
        "journey promo {\n  trigger event browsed\n  entry always\n  send wecom { text: \"sale\" }\n}\n\njourney receipt {\n  trigger event order_paid\n  entry always\n  transactional\n  send wecom { text: \"receipt\" }\n}\n",
        "[channels.wecom]\nkind = \"log\"\npath = \"./sent.jsonl\"\n",
    );
    let port = free_port();
    let mut daemon = start(&dir, port);
    let track = |port, user: &str, event: &str| {
        let body = format!(r#"{{"userId":"{user}","event":"{event}"}}"#);
        let (status, answer) = http(port, "POST", "/v1/track", &body);
        assert_eq!(status, 200, "{answer}");
    };
    let (status, answer) = http(port, "POST", "/v1/pause", "");
    assert_eq!(status, 200, "{answer}");
    track(port, "u1", "browsed");
    track(port, "u1", "order_paid");
    wait_for("the receipt", || !sent_lines(&dir).is_empty());
    let journal = |port| -> Vec<serde_json::Value> {
        let (_, body) = http(port, "GET", "/v1/users/u1/journal", "");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        body["records"].as_array().unwrap().clone()
    };
    let held: Vec<_> = journal(port)
        .into_iter()
        .filter(|r| r["kind"] == "deferred")
        .collect();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["reason"], "global_pause");
    assert_eq!(held[0]["journey"], "promo");
    // Still paused after a restart (a clean stop: a SIGKILL may deliver
    // the receipt again, at least once, as the outbox promises).
    assert!(waymark_tests::terminate(&mut daemon));
    // A clean stop wrote the write buffer out: the log holds nothing for
    // the next start to replay.
    let log = dir.join("data/store/write-ahead");
    let segments: Vec<(String, u64)> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    assert!(
        !segments.is_empty() && segments.iter().all(|(_, len)| *len == 0),
        "{segments:?}"
    );
    let mut daemon = start(&dir, port);
    let (_, ready) = http(port, "GET", "/readyz", "");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["sends_paused"]["drop"], false, "{ready}");
    let (_, metrics) = http(port, "GET", "/metrics", "");
    assert!(metrics.contains("waymark_sends_paused 1"), "{metrics}");
    std::thread::sleep(Duration::from_millis(300));
    let texts = |dir: &Path| -> Vec<String> {
        sent_lines(dir)
            .iter()
            .map(|l| l["fields"]["text"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(texts(&dir), ["receipt"], "the sale is held");
    // Resumed: the held sale goes out, once.
    let (status, answer) = http(port, "POST", "/v1/resume", "");
    assert_eq!(status, 200, "{answer}");
    wait_for("the held sale", || texts(&dir).len() == 2);
    assert_eq!(texts(&dir), ["receipt", "sale"]);
    let (_, ready) = http(port, "GET", "/readyz", "");
    assert!(ready.contains("\"sends_paused\":null"), "{ready}");
    // Dropped: suppressed, never sent.
    let (status, _) = http(port, "POST", "/v1/pause?drop=true", "");
    assert_eq!(status, 200);
    track(port, "u1", "browsed");
    wait_for("the suppression", || {
        journal(port)
            .iter()
            .any(|r| r["kind"] == "suppressed" && r["reason"] == "global_pause")
    });
    let (status, _) = http(port, "POST", "/v1/resume", "");
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        texts(&dir),
        ["receipt", "sale"],
        "nothing sent for the drop"
    );
    // Both are audited.
    let (_, audit) = http(port, "GET", "/v1/audit", "");
    assert_eq!(audit.matches("every send").count(), 4, "{audit}");
    let (status, _) = http(port, "POST", "/v1/pause?drop=maybe", "");
    assert_eq!(status, 400);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}
