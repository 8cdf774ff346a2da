//! A Feishu group robot on loopback for the tests: a small HTTP/1.1 server
//! (tokio only, so the kind's tests compile no web framework) at the
//! robot's webhook path that checks each post's signature the way Feishu
//! documents it, records what it got, and answers as told.

#![allow(dead_code)] // each test file uses part of it

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

pub const SECRET: &str = "robot-secret-测试";

/// One post the robot received.
#[derive(Debug, Clone)]
pub struct Post {
    pub body: Value,
    pub key: Option<String>,
    /// Whether its timestamp is within the hour and its `sign` matches.
    pub signed: bool,
}

/// How the robot answers a correctly signed post.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Accept,
    /// An HTTP status with an empty body.
    Status(u16),
    /// HTTP 200 with this Feishu error code.
    Code(i64),
}

#[derive(Clone)]
struct Robot {
    posts: Arc<Mutex<Vec<Post>>>,
    reply: Reply,
}

pub struct RobotServer {
    pub url: String,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl RobotServer {
    /// Starts the robot on a free port, on the current tokio runtime.
    pub async fn start(reply: Reply) -> RobotServer {
        let posts = Arc::new(Mutex::new(Vec::new()));
        let robot = Robot {
            posts: posts.clone(),
            reply,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, robot.clone()));
            }
        });
        RobotServer {
            url: format!("http://{addr}/open-apis/bot/v2/hook/0b7d-test"),
            posts,
        }
    }

    pub fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }

    /// Waits (blocking) until the robot has `n` posts; panics after 60 s.
    pub fn wait_for_posts(&self, n: usize) -> Vec<Post> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let posts = self.posts();
            if posts.len() >= n {
                return posts;
            }
            assert!(
                Instant::now() < deadline,
                "the robot got {posts:?}, not {n} posts"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Feishu's check: `sign` is base64(HMAC-SHA256 keyed by
/// "{timestamp}\n{secret}" over nothing), and the timestamp is within an hour.
fn signed(body: &Value) -> bool {
    let (Some(timestamp), Some(sign)) = (
        body["timestamp"]
            .as_str()
            .and_then(|t| t.parse::<u64>().ok()),
        body["sign"].as_str(),
    ) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut mac =
        Hmac::<Sha256>::new_from_slice(format!("{timestamp}\n{SECRET}").as_bytes()).unwrap();
    mac.update(b"");
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    now.abs_diff(timestamp) <= 3600 && sign == expected
}

/// Answers the posts on one connection (keep-alive) until it closes.
async fn serve(stream: tokio::net::TcpStream, robot: Robot) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        let mut key = None;
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap(),
                    "x-waymark-idempotency-key" => key = Some(value.trim().to_string()),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.unwrap();
        let (status, answer) = if request_line.starts_with("POST /open-apis/bot/v2/hook/") {
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            receive(&robot, key, body)
        } else {
            (404, json!({}))
        };
        let answer = answer.to_string();
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        let stream = stream.get_mut();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(answer.as_bytes()).await.unwrap();
    }
}

/// What the robot answers a post: an HTTP status and a JSON body.
fn receive(robot: &Robot, key: Option<String>, body: Value) -> (u16, Value) {
    let post = Post {
        signed: signed(&body),
        key,
        body,
    };
    let signed = post.signed;
    robot.posts.lock().unwrap().push(post);
    if !signed {
        return (
            200,
            json!({ "code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time", "data": {} }),
        );
    }
    match robot.reply {
        Reply::Accept => (200, json!({ "code": 0, "msg": "success", "data": {} })),
        Reply::Status(status) => (status, json!({})),
        Reply::Code(code) => (200, json!({ "code": code, "msg": "refused", "data": {} })),
    }
}
