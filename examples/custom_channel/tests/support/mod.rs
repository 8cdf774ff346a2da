//! A Feishu group robot on loopback for the tests: an axum server at the
//! robot's webhook path that checks each post's signature the way Feishu
//! documents it, records what it got, and answers as told.

#![allow(dead_code)] // each test file uses part of it

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
        let app = Router::new()
            .route("/open-apis/bot/v2/hook/{token}", post(receive))
            .with_state(Robot {
                posts: posts.clone(),
                reply,
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
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

async fn receive(
    State(robot): State<Robot>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let post = Post {
        signed: signed(&body),
        key: headers
            .get("x-waymark-idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    };
    let signed = post.signed;
    robot.posts.lock().unwrap().push(post);
    if !signed {
        return (
            StatusCode::OK,
            Json(
                json!({ "code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time", "data": {} }),
            ),
        );
    }
    match robot.reply {
        Reply::Accept => (
            StatusCode::OK,
            Json(json!({ "code": 0, "msg": "success", "data": {} })),
        ),
        Reply::Status(status) => (StatusCode::from_u16(status).unwrap(), Json(json!({}))),
        Reply::Code(code) => (
            StatusCode::OK,
            Json(json!({ "code": code, "msg": "refused", "data": {} })),
        ),
    }
}
