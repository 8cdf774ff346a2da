//! The `feishu` kind against a loopback robot that verifies signatures:
//! the engine's conformance check, what a post carries, and how the
//! robot's answers map to retryable and permanent failures.

mod support;

use std::sync::Arc;
use support::{Reply, RobotServer, SECRET};
use toml::Table;
use waymark_channel::conformance::{DeliverKeyed, check_kind, sample_message};
use waymark_channel::{Channel, DeliveryError, Message};
use waymark_feishu::FeishuKind;

fn settings(url: &str, secret: &str) -> Table {
    let mut t = Table::new();
    t.insert("url".into(), url.into());
    t.insert("secret".into(), secret.into());
    t.insert("timeout".into(), "2s".into());
    t
}

fn alert() -> Message {
    sample_message(
        "ops",
        "u1",
        None,
        serde_json::json!({ "text": "大单提醒：用户 u1 实付 2999 元" }),
    )
}

fn channel(settings: &Table) -> Arc<dyn Channel> {
    waymark_channel::conformance::build(&FeishuKind, settings)
}

#[tokio::test]
async fn the_feishu_kind_conforms_and_the_robot_gets_two_signed_posts_under_one_key() {
    let robot = RobotServer::start(Reply::Accept).await;
    let delivered = check_kind(&FeishuKind, &settings(&robot.url, SECRET), &alert()).await;
    let posts = robot.posts();
    assert_eq!(posts.len(), delivered.accepted);
    for post in &posts {
        assert!(post.signed, "{post:?}");
        assert_eq!(post.key.as_deref(), Some(delivered.key.as_str()));
        assert_eq!(post.body["msg_type"], "text");
        assert_eq!(
            post.body["content"]["text"],
            "大单提醒：用户 u1 实付 2999 元"
        );
    }
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_robot_and_fails_permanently() {
    let robot = RobotServer::start(Reply::Accept).await;
    let error = channel(&settings(&robot.url, "not-the-secret"))
        .deliver_keyed(&alert(), "k")
        .await
        .unwrap_err();
    match error {
        DeliveryError::Permanent(text) => assert!(text.contains("19021"), "{text}"),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert!(!robot.posts()[0].signed);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retryable_other_refusals_permanent() {
    for (reply, retryable) in [
        (Reply::Code(11232), true),
        (Reply::Status(429), true),
        (Reply::Status(502), true),
        (Reply::Code(9499), false),
        (Reply::Status(404), false),
    ] {
        let robot = RobotServer::start(reply).await;
        let error = channel(&settings(&robot.url, SECRET))
            .deliver_keyed(&alert(), "k")
            .await
            .unwrap_err();
        assert_eq!(
            matches!(error, DeliveryError::Retryable(_)),
            retryable,
            "{reply:?} gave {error:?}"
        );
    }
}

#[tokio::test]
async fn a_robot_that_never_answers_is_retryable_within_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/open-apis/bot/v2/hook/x",
        listener.local_addr().unwrap()
    );
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().collect();
        drop(held);
    });
    let mut settings = settings(&url, SECRET);
    settings.insert("timeout".into(), "300ms".into());
    let started = std::time::Instant::now();
    let error = channel(&settings)
        .deliver_keyed(&alert(), "k")
        .await
        .unwrap_err();
    assert!(matches!(error, DeliveryError::Retryable(_)), "{error:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}
