//! The `log` kind against a real file: one JSON line per delivery in the
//! journal's `send` shape, a line torn by a crash ended before the next,
//! and the conformance check.

use toml::Table;
use waymark_channel::conformance::{DeliverKeyed, check_kind, sample_message};
use waymark_engine::channels::LogKind;

#[tokio::test]
async fn a_line_torn_by_a_crash_is_ended_before_the_next_one() {
    let dir = std::env::temp_dir().join(format!("waymark-log-torn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sent.jsonl");
    std::fs::write(&file, "{\"whole\":1}\n{\"torn").unwrap();
    let mut settings = Table::new();
    settings.insert("path".into(), file.display().to_string().into());
    let channel = super::channel(&LogKind, &settings);
    let message = sample_message("sms", "u1", Some("T1"), serde_json::json!({}));
    channel.deliver_keyed(&message, "k1").await.unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["{\"whole\":1}", "{\"torn"]);
    let last: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(last["idempotency_key"], "k1");
    // A file that ends whole is left alone.
    super::channel(&LogKind, &settings);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_log_kind_conforms_and_writes_one_line_per_delivery_with_its_key() {
    let dir = std::env::temp_dir().join(format!("waymark-log-kind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join("sub/sent.jsonl");
    let mut settings = Table::new();
    settings.insert("path".into(), file.display().to_string().into());
    let message = sample_message("sms", "u1", Some("T1"), serde_json::json!({ "n": 1 }));
    let delivered = check_kind(&LogKind, &settings, &message).await;
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), delivered.accepted);
    assert_eq!(lines[0]["idempotency_key"], delivered.key.as_str());
    assert_eq!(lines[0]["template"], "T1");
    assert_eq!(lines[0]["fields"], serde_json::json!({ "n": 1 }));
    assert_eq!(lines[1]["idempotency_key"], delivered.key.as_str());
    let _ = std::fs::remove_dir_all(&dir);
}
