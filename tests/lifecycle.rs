//! The daemon across restarts and stops: which script set a restart
//! deploys (the stored one is the truth), and how SIGTERM treats sends
//! still queued for a provider that does not answer.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;
use waymark_tests::{free_port, http, scratch, start_daemon, terminate};

fn start(dir: &Path, port: u16) -> Child {
    start_daemon(dir, port, &dir.join("daemon.log"))
}

fn wait_for(what: &str, f: impl FnMut() -> bool) {
    // Generous: CI machines can be slow; a pass takes well under a second.
    waymark_tests::wait_for(what, Duration::from_secs(60), f)
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
}

fn journey(name: &str, event: &str) -> String {
    format!("journey {name} {{\n  trigger event {event}\n  send wecom {{ text: \"{name}\" }}\n}}\n")
}

fn setup(name: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(
        dir.join("scripts/welcome.journey"),
        journey("welcome", "signed_up"),
    )
    .unwrap();
    std::fs::write(
        dir.join("waymark.toml"),
        "data_dir = \"./data\"\nscripts = \"./scripts\"\n\n[channels.wecom]\nkind = \"log\"\npath = \"./sent.jsonl\"\n",
    )
    .unwrap();
    dir
}

/// The names of the deployed journeys, as `GET /v1/journeys` lists them.
fn deployed(port: u16) -> Vec<String> {
    let (status, body) = http(port, "GET", "/v1/journeys", "");
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut names: Vec<String> = body["journeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_restart_keeps_a_set_deployed_over_the_api_and_says_how_the_folder_differs() {
    let dir = setup("lifecycle_api_deploy");
    let port = free_port();
    let mut daemon = start(&dir, port);
    assert_eq!(deployed(port), ["welcome"]);
    let files = serde_json::json!({"files": {"promo.journey": journey("promo", "bought")}});
    let (status, body) = http(port, "POST", "/v1/deploy", &files.to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(deployed(port), ["promo"]);
    assert!(terminate(&mut daemon));

    let mut daemon = start(&dir, port);
    assert_eq!(
        deployed(port),
        ["promo"],
        "the restart undid the API deploy"
    );
    let log = log(&dir);
    let warning = log
        .lines()
        .find(|l| l.contains("keeping the deployed set"))
        .unwrap_or_else(|| panic!("no warning about the folder: {log}"));
    assert!(
        warning.contains("WARN") && warning.contains("POST /v1/deploy"),
        "{warning}"
    );
    assert!(
        warning.contains("only_in_folder=[\"welcome\"]")
            && warning.contains("only_deployed=[\"promo\"]"),
        "the warning names the difference: {warning}"
    );
    assert!(terminate(&mut daemon));
}

#[test]
fn a_restart_deploys_the_folder_when_the_last_deploy_came_from_it() {
    let dir = setup("lifecycle_folder_deploy");
    let port = free_port();
    let mut daemon = start(&dir, port);
    assert_eq!(deployed(port), ["welcome"]);
    assert!(terminate(&mut daemon));

    std::fs::write(
        dir.join("scripts/promo.journey"),
        journey("promo", "bought"),
    )
    .unwrap();
    let mut daemon = start(&dir, port);
    assert_eq!(deployed(port), ["promo", "welcome"]);
    assert!(
        !log(&dir).contains("keeping the deployed set"),
        "{}",
        log(&dir)
    );
    assert!(terminate(&mut daemon));
}

/// A provider on loopback: `hang` takes each request and never answers;
/// otherwise it answers 200 and records each request's `Idempotency-Key`.
struct Provider {
    port: u16,
    /// Requests taken (hanging) or idempotency keys answered (healthy).
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Provider {
    fn start(hang: bool) -> Provider {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut key = String::new();
                        let mut length = 0;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let header = line.trim_end();
                            if header.is_empty() {
                                break;
                            }
                            if let Some((name, value)) = header.split_once(':') {
                                if name.eq_ignore_ascii_case("content-length") {
                                    length = value.trim().parse().unwrap_or(0);
                                } else if name.eq_ignore_ascii_case("idempotency-key") {
                                    key = value.trim().to_string();
                                }
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        record.lock().unwrap().push(key);
                        if hang {
                            // Hold the connection open, never answering.
                            std::thread::sleep(Duration::from_secs(3600));
                            return;
                        }
                        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                        if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Provider { port, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn webhook_config(dir: &Path, provider: u16) {
    std::fs::write(
        dir.join("waymark.toml"),
        format!(
            "data_dir = \"./data\"\nscripts = \"./scripts\"\nshutdown_grace = \"1s\"\n\n[channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{provider}/hook\"\ntimeout = \"20s\"\nconcurrency = 2\n"
        ),
    )
    .unwrap();
}

fn outbox_depth(port: u16) -> u64 {
    let (_, metrics) = http(port, "GET", "/metrics", "");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("waymark_outbox_depth "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no outbox depth in {metrics}"))
}

#[test]
fn sigterm_leaves_sends_to_a_hung_provider_in_the_outbox_and_the_next_start_delivers_them_once() {
    const SENDS: usize = 30;
    let dir = scratch("lifecycle_sigterm_hung_provider");
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(
        dir.join("scripts/ping.journey"),
        "journey ping {\n  trigger event ping\n  send hook { text: \"pong\" }\n}\n",
    )
    .unwrap();
    let hung = Provider::start(true);
    webhook_config(&dir, hung.port);
    let port = free_port();
    let mut daemon = start(&dir, port);
    let batch: Vec<serde_json::Value> = (0..SENDS)
        .map(|i| serde_json::json!({"type": "track", "userId": format!("u{i}"), "event": "ping"}))
        .collect();
    let (status, body) = http(
        port,
        "POST",
        "/v1/batch",
        &serde_json::json!({ "batch": batch }).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    wait_for("both permitted sends to reach the hung provider", || {
        hung.seen().len() == 2
    });

    let asked = std::time::Instant::now();
    assert!(terminate(&mut daemon), "the daemon exits cleanly");
    let took = asked.elapsed();
    // Without the grace period, each of the 30 sends waits out its 20 s
    // timeout two at a time (5 minutes); with it, 1 s and the stop itself.
    assert!(
        took < Duration::from_secs(10),
        "SIGTERM took {took:?} with a 1 s grace period"
    );
    let log = log(&dir);
    assert!(
        log.contains(&format!(
            "{SENDS} sends left in the outbox for the next start"
        )),
        "the log says what was left: {log}"
    );

    let healthy = Provider::start(false);
    webhook_config(&dir, healthy.port);
    let mut daemon = start(&dir, port);
    wait_for("every left send to be delivered", || {
        outbox_depth(port) == 0
    });
    let mut keys = healthy.seen();
    assert_eq!(keys.len(), SENDS, "{keys:?}");
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), SENDS, "a send was delivered twice");
    assert!(terminate(&mut daemon));
}
