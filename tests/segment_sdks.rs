//! Segment's own SDKs against the real daemon, unmodified: the Node SDK
//! (`@segment/analytics-node`) and the Python SDK
//! (`segment-analytics-python`) each send `identify`, `track` and `page`
//! to `/v1/batch` with a Waymark token as the write key. A journey on
//! `"Order Completed"` and one on `page` must fire, and the profile must
//! hold the identified traits.
//!
//! The SDKs are not Rust: these tests are `#[ignore]`d so that
//! `cargo test` needs only Rust, and `.ci/run` installs the SDKs and runs
//! them with `--ignored`, naming the installs in `SEGMENT_SDK_NODE_DIR`
//! (a folder whose `node_modules` holds `@segment/analytics-node`) and
//! `SEGMENT_SDK_PYTHON` (a Python with `segment-analytics-python`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;
use waymark_tests::{Client, free_port, scratch, start_daemon};

const WRITE_KEY: &str = "segment-write-key";
const READ_TOKEN: &str = "segment-test-reader";

fn sdk(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: install the SDK as .ci/run does and name it there")
    })
}

/// A daemon with a journey on `"Order Completed"` and one on the `page`
/// of the pricing page, both sending through the `log` channel.
fn daemon(name: &str) -> (PathBuf, u16, Child) {
    let dir = scratch(name);
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(
        dir.join("scripts/segment.journey"),
        r#"journey thanks {
  trigger event "Order Completed" where event.revenue > 100
  send wecom { text: "thanks {user.nickname} {event.revenue}" }
}

journey pricing {
  trigger event page where event.name == "Pricing"
  send wecom { text: "pricing {event.url}" }
}
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("waymark.toml"),
        format!(
            "data_dir = \"./data\"\nscripts = \"./scripts\"\n\n\
             [[auth.tokens]]\ntoken = \"{WRITE_KEY}\"\nscopes = [\"ingest\"]\n\n\
             [[auth.tokens]]\ntoken = \"{READ_TOKEN}\"\nscopes = [\"read\"]\n\n\
             [channels.wecom]\nkind = \"log\"\npath = \"./sent.jsonl\"\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = start_daemon(&dir, port, &dir.join("daemon.log"));
    (dir, port, child)
}

fn read(port: u16, path: &str) -> serde_json::Value {
    let auth = format!("Bearer {READ_TOKEN}");
    let (status, body) = Client::new(port)
        .request("GET", path, &[("Authorization", &auth)], b"")
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn sent_texts(dir: &Path) -> Vec<String> {
    let mut texts: Vec<String> = std::fs::read_to_string(dir.join("sent.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|l| l["fields"]["text"].as_str().unwrap_or_default().to_string())
        .collect();
    texts.sort();
    texts
}

/// Runs an SDK's script and checks what the daemon made of it.
fn check_sdk(name: &str, user: &str, mut script: Command) {
    let (dir, port, mut child) = daemon(name);
    let out = script
        .env("WAYMARK_HOST", format!("http://127.0.0.1:{port}"))
        .env("WRITE_KEY", WRITE_KEY)
        .env("USER_ID", user)
        .current_dir(&dir)
        .output()
        .expect("the SDK's script runs");
    let log = || std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{name}: {}\n{}\ndaemon:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log()
    );
    waymark_tests::wait_for("both journeys' messages", Duration::from_secs(60), || {
        sent_texts(&dir).len() >= 2
    });
    assert_eq!(
        sent_texts(&dir),
        ["pricing /pricing".to_string(), format!("thanks {name} 120")],
        "{}",
        log()
    );
    let profile = read(port, &format!("/v1/users/{user}"));
    assert_eq!(profile["profile"]["nickname"], name, "{profile}");
    let journal = read(port, &format!("/v1/users/{user}/journal"));
    let entered: Vec<&str> = journal["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "enter")
        .filter_map(|r| r["journey"].as_str())
        .collect();
    assert!(
        entered.contains(&"thanks") && entered.contains(&"pricing"),
        "{journal}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
#[ignore = "needs @segment/analytics-node: .ci/run installs it and runs this"]
fn segment_node_sdk_sends_track_identify_and_page_unmodified() {
    let sdk_dir = PathBuf::from(sdk("SEGMENT_SDK_NODE_DIR"));
    let script = r#"
const { Analytics } = require('@segment/analytics-node');
const analytics = new Analytics({
  writeKey: process.env.WRITE_KEY,
  host: process.env.WAYMARK_HOST,
  maxRetries: 1,
});
let failed = false;
analytics.on('error', (e) => { failed = true; console.error('segment error', e); });
analytics.on('http_response', (r) => console.log('answer', r.status));
const userId = process.env.USER_ID;
analytics.identify({ userId, traits: { nickname: 'node' } });
analytics.track({ userId, event: 'Order Completed', properties: { revenue: 120, order_id: 'o1' } });
analytics.page({ userId, name: 'Pricing', properties: { url: '/pricing' } });
analytics.closeAndFlush().then(() => { if (failed) process.exit(1); });
"#;
    let dir = scratch("segment_node_script");
    let path = dir.join("send.js");
    std::fs::write(&path, script).unwrap();
    let mut command = Command::new("node");
    command
        .arg(&path)
        .env("NODE_PATH", sdk_dir.join("node_modules"));
    check_sdk("node", "node-u1", command);
}

#[test]
#[ignore = "needs segment-analytics-python: .ci/run installs it and runs this"]
fn segment_python_sdk_sends_track_identify_and_page_unmodified() {
    let python = sdk("SEGMENT_SDK_PYTHON");
    let script = r#"
import os, sys
from segment.analytics.client import Client

errors = []
client = Client(
    write_key=os.environ["WRITE_KEY"],
    host=os.environ["WAYMARK_HOST"],
    max_retries=1,
    on_error=lambda error, batch: errors.append(error),
)
user = os.environ["USER_ID"]
client.identify(user, {"nickname": "python"})
client.track(user, "Order Completed", {"revenue": 120, "order_id": "o1"})
client.page(user, name="Pricing", properties={"url": "/pricing"})
client.flush()
client.join()
if errors:
    print("segment errors:", errors, file=sys.stderr)
    sys.exit(1)
"#;
    let dir = scratch("segment_python_script");
    let path = dir.join("send.py");
    std::fs::write(&path, script).unwrap();
    let mut command = Command::new(python);
    command.arg(&path);
    check_sdk("python", "python-u1", command);
}
