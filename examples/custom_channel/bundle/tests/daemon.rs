//! This crate's own binary, end to end: `waymark-feishu run` with a
//! `feishu` channel delivers a tracked event's message to a loopback robot,
//! and `waymark-feishu check --config` validates `send` steps against the
//! kind's fields and its settings against the kind.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{Reply, RobotServer, SECRET};

const BINARY: &str = env!("CARGO_BIN_EXE_waymark-feishu");

fn journeys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../journeys")
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(url: &str) -> String {
    format!(
        "data_dir = \"./data\"\nscripts = {:?}\n\n[channels.ops]\nkind = \"feishu\"\nurl = \"{url}\"\nsecret = \"${{FEISHU_SECRET}}\"\ntimeout = \"5s\"\n",
        journeys().display().to_string()
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 POST; returns the status.
fn post(port: u16, path: &str, body: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Kills the daemon however the test ends.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracked_big_order_reaches_the_feishu_robot_through_the_daemon() {
    let robot = RobotServer::start(Reply::Accept).await;
    let dir = scratch("daemon_feishu");
    std::fs::write(dir.join("waymark.toml"), config(&robot.url)).unwrap();
    let port = free_port();
    let log = dir.join("daemon.log");
    let _daemon = Daemon(
        Command::new(BINARY)
            .args([
                "run",
                "--config",
                "waymark.toml",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("FEISHU_SECRET", SECRET)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the daemon did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A small order first: the rule must not post it.
    for (id, amount) in [("m1", 199), ("m2", 2999)] {
        let body = format!(
            r#"{{"userId":"u1","event":"order_paid","properties":{{"amount":{amount}}},"messageId":"{id}"}}"#
        );
        assert_eq!(post(port, "/v1/track", &body), 200);
    }
    let posts = robot.wait_for_posts(1);
    assert_eq!(posts.len(), 1, "{posts:?}");
    let post = &posts[0];
    assert!(post.signed, "{post:?}");
    assert_eq!(
        post.body["content"]["text"],
        "大单提醒：用户 u1 实付 2999 元，请当天回访。"
    );
    assert!(
        post.key
            .as_deref()
            .is_some_and(|k| k.starts_with("big_order_alert/")),
        "{post:?}"
    );
}

fn check(dir: &Path, config: &str) -> Output {
    Command::new(BINARY)
        .args(["check", "--config", config])
        .arg(dir.join("scripts"))
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn check_validates_send_steps_and_settings_against_the_feishu_kind() {
    let dir = scratch("check_feishu");
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::copy(
        journeys().join("big_order_alert.journey"),
        dir.join("scripts/big_order_alert.journey"),
    )
    .unwrap();
    let good = "[channels.ops]\nkind = \"feishu\"\nurl = \"https://open.feishu.cn/open-apis/bot/v2/hook/x\"\n";
    std::fs::write(dir.join("good.toml"), good).unwrap();
    let out = check(&dir, "good.toml");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    std::fs::write(
        dir.join("scripts/typo.journey"),
        "rule typo {\n  when event order_paid\n  then {\n    send ops { txt: \"hi\" }\n  }\n}\n",
    )
    .unwrap();
    let out = check(&dir, "good.toml");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("needs the field `text`"), "{stdout}");
    assert!(stdout.contains("did you mean `text`?"), "{stdout}");

    std::fs::write(
        dir.join("bad.toml"),
        "[channels.ops]\nkind = \"feishu\"\nurl = \"open.feishu.cn\"\nsecret = 42\n",
    )
    .unwrap();
    let out = check(&dir, "bad.toml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("channels.ops.url: `open.feishu.cn` is not an http(s) URL"),
        "{stderr}"
    );
    assert!(stderr.contains("channels.ops.secret:"), "{stderr}");
}
