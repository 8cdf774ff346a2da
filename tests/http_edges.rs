//! The real daemon at the edges of HTTP: slow and idle clients cut off
//! and capped so a fresh client is still served, hyper's own error answers
//! in the JSON error shape, `Expect: 100-continue` with an oversize body,
//! and a token in the headers checked before the body is read.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use waymark_tests::{Client, free_port, scratch, wait_for, waymark};

const TOKEN: &str = "0123456789abcdef-ingest";

fn setup(name: &str, extra: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(
        dir.join("scripts/welcome.journey"),
        "journey welcome {\n  trigger event signed_up\n  send wecom { text: \"hi\" }\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("waymark.toml"),
        format!("data_dir = \"./data\"\nscripts = \"./scripts\"\n\n[channels.wecom]\nkind = \"log\"\npath = \"./sent.jsonl\"\n{extra}"),
    )
    .unwrap();
    dir
}

/// `waymark run` in `dir` with at most `files` open file descriptors.
fn start_with_files(dir: &Path, port: u16, files: u32) -> Child {
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
        .arg(waymark())
        .args([
            "run",
            "--config",
            "waymark.toml",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    wait_for("the daemon to listen", Duration::from_secs(60), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the daemon exited ({status}): {}",
                std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
            );
        }
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    child
}

/// Sends raw bytes on a fresh connection and reads the answer until the
/// daemon closes it (or 30 s pass).
fn raw(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The `error` object of a raw answer's JSON body.
fn error_in(answer: &str) -> serde_json::Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"));
    json["error"].clone()
}

#[test]
fn slow_clients_are_cut_off_and_capped_and_a_fresh_client_is_still_served() {
    let dir = setup(
        "http_slow_clients",
        "\n[http]\nheader_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"\nidle_timeout = \"2s\"\nmax_connections = 32\n",
    );
    let port = free_port();
    // Fewer descriptors than slow clients: without the cap and the
    // timeouts, they take every one and the fresh client is never accepted.
    let mut daemon = start_with_files(&dir, port, 256);
    let mut slow: Vec<TcpStream> = (0..400)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(slow.len() > 300, "{} slow clients connected", slow.len());
    for s in &mut slow {
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHo");
    }
    // They trickle a byte every 200 ms and never finish their heads.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for s in &mut slow {
                    let _ = s.write_all(b"s");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            slow
        })
    };
    let mut fresh = Client::new(port);
    let (status, body) = fresh
        .request("GET", "/healthz", &[], b"")
        .unwrap_or_else(|e| panic!("the fresh client: {e}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut slow = trickle.join().unwrap();
    // A slow client was closed by the daemon (EOF or reset), not answered.
    let first = &mut slow[0];
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = first.read_to_end(&mut answer);
    assert!(
        answer.is_empty() || !String::from_utf8_lossy(&answer).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(slow);

    // A body that stops coming gets 408 in the JSON shape.
    let answer = raw(
        port,
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"userId\":",
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(error_in(&answer)["field"], "body", "{answer}");
    // An idle connection is closed: a read sees its end.
    let answer = raw(port, b"");
    assert_eq!(answer, "");
    // The fresh client's kept-alive connection was idle past the timeout
    // too: the daemon closed it, and a new one is served.
    let (status, _) = fresh
        .request("GET", "/healthz", &[], b"")
        .or_else(|_| fresh.request("GET", "/healthz", &[], b""))
        .unwrap();
    assert_eq!(status, 200);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn hypers_own_refusals_expect_continue_and_auth_before_the_body() {
    let dir = setup(
        "http_refusals",
        &format!("\n[[auth.tokens]]\ntoken = \"{TOKEN}\"\nscopes = [\"ingest\"]\n"),
    );
    let port = free_port();
    let mut daemon = waymark_tests::start_daemon(&dir, port, &dir.join("daemon.log"));

    // A request line hyper cannot parse, a URI past its limit, headers past
    // its limit: each answered in the API's JSON error shape.
    let answer = raw(port, b"GARBAGE\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(error_in(&answer)["field"], "request", "{answer}");
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let answer = raw(port, long_uri.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 414"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert_eq!(error_in(&answer)["field"], "uri", "{answer}");
    // Well past the limit: hyper checks it between reads, and one read may
    // take its buffer from under the limit to twice it (a 500 KB header
    // once arrived whole and was served).
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(2_000_000)
    );
    let answer = raw(port, big_header.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert_eq!(error_in(&answer)["field"], "headers", "{answer}");

    // Expect: 100-continue with a body past the limit: 413 at once, never
    // `100 Continue` (the client sends no body).
    let answer = raw(
        port,
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 9437184\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(error_in(&answer)["field"], "body", "{answer}");

    // A wrong token in the headers is refused before the body is read: 401,
    // not the body's 400.
    let mut client = Client::new(port);
    let (status, body) = client
        .request(
            "POST",
            "/v1/track",
            &[("Authorization", "Bearer not-the-token-at-all")],
            b"this is not JSON",
        )
        .unwrap();
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    // Segment's writeKey in the body is still taken.
    let (status, body) = client
        .request(
            "POST",
            "/v1/track",
            &[],
            format!(r#"{{"userId":"w1","event":"signed_up","writeKey":"{TOKEN}"}}"#).as_bytes(),
        )
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn metrics_are_valid_exposition_and_count_what_happened() {
    let dir = setup("http_metrics", "");
    let port = free_port();
    let mut daemon = waymark_tests::start_daemon(&dir, port, &dir.join("daemon.log"));
    let mut client = Client::new(port);
    let event = br#"{"userId":"m1","event":"signed_up","messageId":"once"}"#;
    for _ in 0..2 {
        let (status, _) = client.request("POST", "/v1/track", &[], event).unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(
        client.request("GET", "/v1/users/m1", &[], b"").unwrap().0,
        200
    );
    assert_eq!(
        client
            .request("GET", "/v1/users/nobody", &[], b"")
            .unwrap()
            .0,
        404
    );
    wait_for("the delivery", Duration::from_secs(60), || {
        std::fs::read_to_string(dir.join("sent.jsonl")).is_ok_and(|s| s.contains("m1"))
    });
    let mut text = String::new();
    wait_for(
        "the delivery to be counted",
        Duration::from_secs(60),
        || {
            let (status, body) = client.request("GET", "/metrics", &[], b"").unwrap();
            assert_eq!(status, 200);
            text = String::from_utf8(body).unwrap();
            text.contains("outcome=\"delivered\"")
        },
    );
    let parsed = openmetrics_parser::prometheus::parse_prometheus(&text)
        .unwrap_or_else(|e| panic!("not valid exposition format ({e:?}):\n{text}"));
    for family in [
        "waymark_build_info",
        "waymark_ingested_inputs_total",
        "waymark_duplicate_inputs_total",
        "waymark_commit_seconds",
        "waymark_batch_inputs",
        "waymark_http_requests_total",
        "waymark_http_request_seconds",
        "waymark_deliveries_total",
        "waymark_delivery_seconds",
        "waymark_records_total",
        "waymark_record_reasons_total",
        "waymark_outbox_depth",
        "waymark_pending_timers",
        "waymark_dead_letters",
        "waymark_user_cache_users",
        "waymark_user_cache_capacity",
        "waymark_store_cache_bytes",
        "waymark_store_write_buffer_bytes",
        "waymark_store_write_buffer_capacity_bytes",
        "waymark_dedup_filter_bytes",
        "waymark_dedup_filter_capacity_bytes",
    ] {
        assert!(parsed.families.contains_key(family), "no {family}:\n{text}");
    }
    let line = |prefix: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}:\n{text}"))
            .to_string()
    };
    // Memory is bounded by configuration (here the defaults), and the one
    // user is kept decoded.
    assert_eq!(
        line("waymark_user_cache_capacity "),
        "waymark_user_cache_capacity 100000"
    );
    assert_eq!(
        line("waymark_user_cache_users "),
        "waymark_user_cache_users 1"
    );
    assert_eq!(
        line("waymark_store_cache_bytes "),
        "waymark_store_cache_bytes 268435456"
    );
    assert_eq!(
        line("waymark_dedup_filter_capacity_bytes "),
        "waymark_dedup_filter_capacity_bytes 67108864"
    );
    // The filter over the one message id taken, within the bound.
    let in_use: f64 = line("waymark_dedup_filter_bytes ")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(in_use > 0.0 && in_use <= 67108864.0, "{in_use}");
    // The one event's writes wait in the write buffer, within its bound.
    assert_eq!(
        line("waymark_store_write_buffer_capacity_bytes "),
        "waymark_store_write_buffer_capacity_bytes 16777216"
    );
    let buffered: f64 = line("waymark_store_write_buffer_bytes ")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(buffered > 0.0 && buffered <= 16777216.0, "{buffered}");
    // The duplicate is not an ingested input.
    assert_eq!(
        line("waymark_ingested_inputs_total "),
        "waymark_ingested_inputs_total 1"
    );
    assert_eq!(
        line("waymark_duplicate_inputs_total "),
        "waymark_duplicate_inputs_total 1"
    );
    // Routes are templates: user ids are not label values.
    assert!(
        text.contains(
            r#"waymark_http_requests_total{route="/v1/users/{id}",method="GET",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(
        !text.contains("nobody") && !text.contains("\"m1\""),
        "{text}"
    );
    assert!(text.contains(r#"waymark_build_info{version=""#), "{text}");
    assert!(
        text.contains(r#"waymark_delivery_seconds_count{channel="wecom"} 1"#),
        "{text}"
    );
    // No label is written with an empty value.
    assert!(!text.contains("=\"\""), "{text}");
    assert!(
        text.contains(r#"waymark_records_total{kind="send",journey="welcome"} 1"#),
        "{text}"
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

/// Status, headers and body of one request on a fresh connection.
fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let answer = raw(
        port,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {answer:?}"));
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (status, head.to_string(), body.to_string())
}

/// Fills the file system holding `path` with one file, to its last block.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while file.write_all(&chunk).is_ok() {}
    let mut small = vec![0u8; 512];
    while !small.is_empty() {
        if file.write_all(&small).is_err() {
            small.truncate(small.len() / 2);
        }
    }
    let _ = file.sync_all();
}

#[test]
fn a_full_disk_answers_503_with_retry_after_is_not_ready_and_recovers_by_itself() {
    let dir = setup("http_disk_full", "");
    let data = dir.join("data");
    let _ = Command::new("umount").arg(&data).status();
    std::fs::create_dir_all(&data).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&data)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs at {} (this test needs root and mount permission to fill a small disk)",
            data.display()
        );
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(data.clone());
    let port = free_port();
    let mut daemon = waymark_tests::start_daemon(&dir, port, &dir.join("daemon.log"));
    let (status, _, body) = request(port, "GET", "/readyz", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["checks"],
        serde_json::json!({"store": "ok", "scripts": "ok", "outbox": "ok"})
    );

    let filler = data.join("filler");
    fill(&filler);
    let padding = "p".repeat(20_000);
    let mut refused = None;
    for i in 0..400 {
        let event = format!(
            r#"{{"userId":"d{i}","event":"signed_up","properties":{{"pad":"{padding}"}}}}"#
        );
        let (status, head, body) = request(port, "POST", "/v1/track", &event);
        match status {
            200 => continue,
            503 => {
                refused = Some((head, body));
                break;
            }
            other => panic!("{other}: {head}\n{body}"),
        }
    }
    let (head, body) = refused.expect("a write failed with the disk full");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 5"),
        "{head}"
    );
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["field"], "server", "{body}");
    let (status, _, body) = request(port, "GET", "/readyz", "");
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_ne!(ready["checks"]["store"], "ok", "{body}");
    assert_eq!(ready["checks"]["scripts"], "ok", "{body}");
    // Liveness is about the process, which is alive.
    assert_eq!(request(port, "GET", "/healthz", "").0, 200);

    // Space is freed: the daemon takes writes again without a restart.
    std::fs::remove_file(&filler).unwrap();
    wait_for(
        "readiness after space is freed",
        Duration::from_secs(60),
        || request(port, "GET", "/readyz", "").0 == 200,
    );
    let (status, _, body) = request(
        port,
        "POST",
        "/v1/track",
        r#"{"userId":"after","event":"signed_up"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = request(port, "GET", "/v1/users/after", "");
    assert_eq!(status, 200, "{body}");
    // A send delivered while its delivery could not be recorded is not
    // delivered again and again meanwhile.
    wait_for("the send after recovery", Duration::from_secs(60), || {
        std::fs::read_to_string(dir.join("sent.jsonl")).is_ok_and(|s| s.contains("\"after\""))
    });
    let sent = std::fs::read_to_string(dir.join("sent.jsonl")).unwrap();
    let mut users: Vec<String> = sent
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["user"].to_string())
        .collect();
    let all = users.len();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), all, "a send was delivered twice:\n{sent}");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn records_made_by_a_deploy_are_counted_in_metrics() {
    let dir = setup("http_metrics_deploy", "");
    std::fs::write(
        dir.join("scripts/nudge.journey"),
        "journey nudge {\n  trigger event browsed\n  wait 1h\n  send wecom { text: \"still there?\" }\n}\n",
    )
    .unwrap();
    let port = free_port();
    let mut daemon = waymark_tests::start_daemon(&dir, port, &dir.join("daemon.log"));
    let (status, _, body) = request(
        port,
        "POST",
        "/v1/track",
        r#"{"userId":"n1","event":"browsed"}"#,
    );
    assert_eq!(status, 200, "{body}");
    // A deploy without `nudge` that cancels it ends n1's instance: an exit
    // record made by the deploy, not by an event.
    let welcome = std::fs::read_to_string(dir.join("scripts/welcome.journey")).unwrap();
    let deploy = serde_json::json!({"files": {"welcome.journey": welcome}, "cancel_removed": true});
    let (status, _, body) = request(port, "POST", "/v1/deploy", &deploy.to_string());
    assert_eq!(status, 200, "{body}");
    let (_, _, metrics) = request(port, "GET", "/metrics", "");
    assert!(
        metrics.contains(r#"waymark_records_total{kind="exit",journey="nudge"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"waymark_record_reasons_total{kind="exit",reason="cancelled",journey="nudge"} 1"#
        ),
        "{metrics}"
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn the_body_and_batch_limits_are_the_configured_ones() {
    let dir = setup(
        "http_configured_limits",
        "\n[limits]\nbody_bytes = 2048\nbatch_items = 2\n",
    );
    let port = free_port();
    let mut daemon = waymark_tests::start_daemon(&dir, port, &dir.join("daemon.log"));

    let track = |id: &str| format!(r#"{{"type":"track","userId":"{id}","event":"signed_up"}}"#);
    // Two messages fit the batch; three are too many (413), naming the key.
    let (status, _, body) = request(
        port,
        "POST",
        "/v1/batch",
        &format!(r#"{{"batch":[{},{}]}}"#, track("u1"), track("u2")),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = request(
        port,
        "POST",
        "/v1/batch",
        &format!(
            r#"{{"batch":[{},{},{}]}}"#,
            track("u1"),
            track("u2"),
            track("u3")
        ),
    );
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("limits.batch_items"), "{body}");

    // A body past 2048 bytes is a 413 naming the key, whatever the route.
    let padded = format!(
        r#"{{"type":"track","userId":"u4","event":"signed_up","properties":{{"note":"{}"}}}}"#,
        "x".repeat(2100)
    );
    for path in ["/v1/track", "/v1/deploy"] {
        let (status, _, body) = request(port, "POST", path, &padded);
        assert_eq!(status, 413, "{path}: {body}");
        assert!(body.contains("limits.body_bytes"), "{path}: {body}");
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}
