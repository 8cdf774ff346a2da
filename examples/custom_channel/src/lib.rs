//! A channel kind in its own crate: `feishu`, a Feishu (飞书) group robot —
//! the custom bot a group adds to post alerts through a webhook. It is an
//! example of adding a kind without editing the engine: this library
//! depends on `waymark-channel` alone (not the engine, its store or its
//! HTTP server), `FeishuKind` implements its two traits, and the small
//! `bundle/` crate registers it on the engine builder as the
//! `waymark-feishu` command. Use it for staff alerts (a big order for the sales group
//! to follow up), not for customers: the robot posts to its group.
//!
//! Settings: `url` (the robot's webhook), `secret` (optional; the robot's
//! 签名校验 secret: each post then carries a timestamp and
//! `base64(HMAC-SHA256(key = "{timestamp}\n{secret}", message = ""))`),
//! `timeout` (default 10s). Message field: `text`.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use toml::Table;
use waymark_channel::{
    BuildError, Channel, ChannelKind, ConfigError, Delivery, DeliveryError, Message, MessageFields,
    Receipt,
};

/// Sent with every post; the robot ignores it (it has no way to drop a
/// duplicate), but proxies and a test server can see it.
pub const IDEMPOTENCY_HEADER: &str = "X-Waymark-Idempotency-Key";

/// Feishu's reply code when a robot posts too often (100 a minute, 5 a second).
const RATE_LIMITED: i64 = 11232;

const KEYS: &[&str] = &["url", "secret", "timeout"];

pub struct FeishuKind;

impl ChannelKind for FeishuKind {
    type Settings = Settings;

    fn name(&self) -> &'static str {
        "feishu"
    }

    fn message_fields(&self) -> MessageFields {
        MessageFields {
            required: vec!["text"],
            accepted: Some(vec!["text"]),
        }
    }

    // `recipient` keeps its default, the user id: the robot posts to its
    // group, and the user is who the message is about.

    fn settings(&self, path: &str, table: &Table) -> Result<Settings, Vec<ConfigError>> {
        Settings::read(path, table)
    }

    fn build(&self, _name: &str, settings: Settings) -> Result<Arc<dyn Channel>, BuildError> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| BuildError::Client(e.to_string()))?;
        Ok(Arc::new(FeishuChannel { client, settings }))
    }
}

/// The settings, read: the robot's address, its signing secret, and the
/// most one post may take.
#[derive(Debug, Clone)]
pub struct Settings {
    url: reqwest::Url,
    secret: Option<String>,
    /// The most one post may take, connecting included.
    timeout: Duration,
}

impl Settings {
    /// The settings, or every problem with them, each at its TOML path.
    /// Pure: no I/O.
    fn read(path: &str, table: &Table) -> Result<Settings, Vec<ConfigError>> {
        let mut s = waymark_channel::Settings::new(path, table, KEYS);
        let url = s.url(
            "url",
            None,
            "the robot's webhook address, https://open.feishu.cn/open-apis/bot/v2/hook/…",
        );
        let secret = s.string("secret").map(str::to_string);
        let timeout = s.timeout();
        s.finish(())?;
        Ok(Settings {
            url: url.expect("a missing or bad url is an error, reported above"),
            secret,
            timeout,
        })
    }
}

/// The robot's signature for `timestamp` (Unix seconds).
pub fn sign(timestamp: u64, secret: &str) -> String {
    let key = format!("{timestamp}\n{secret}");
    let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

struct FeishuChannel {
    client: reqwest::Client,
    settings: Settings,
}

impl Channel for FeishuChannel {
    fn deliver<'a>(&'a self, message: &'a Message) -> Delivery<'a> {
        Box::pin(async move {
            let key = message.idempotency_key.as_str();
            // A message without its text is as wrong on the next attempt.
            let text = match message.fields.get("text") {
                Some(serde_json::Value::String(text)) if !text.is_empty() => text,
                _ => return Err(DeliveryError::Permanent("the message has no `text`".into())),
            };
            let mut body = serde_json::json!({ "msg_type": "text", "content": { "text": text } });
            if let Some(secret) = &self.settings.secret {
                // Feishu refuses a timestamp more than an hour old, so it is
                // the time of this attempt, not of the journey step.
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                body["timestamp"] = now.to_string().into();
                body["sign"] = sign(now, secret).into();
            }
            let response = self
                .client
                .post(self.settings.url.clone())
                .header(IDEMPOTENCY_HEADER, key)
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await
                // Connecting, DNS, TLS, a timeout: the next attempt may pass.
                .map_err(|e| DeliveryError::Retryable(format!("posting to the robot: {e}")))?;
            let status = response.status();
            let reply = response.text().await.unwrap_or_default();
            if status.as_u16() == 429 || status.is_server_error() {
                return Err(DeliveryError::Retryable(format!("HTTP {status}: {reply}")));
            }
            let parsed: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
            // Current replies carry `code`; older robots answered `StatusCode`.
            let code = parsed
                .get("code")
                .or_else(|| parsed.get("StatusCode"))
                .and_then(serde_json::Value::as_i64);
            match code {
                Some(0) if status.is_success() => Ok(Receipt::default()),
                Some(RATE_LIMITED) => Err(DeliveryError::Retryable(format!(
                    "rate limited by Feishu: {reply}"
                ))),
                // A bad signature (19021), a missing keyword (19024), a bad
                // request (9499), a deleted robot: retrying will not help.
                _ => Err(DeliveryError::Permanent(format!("HTTP {status}: {reply}"))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_feishus_documented_scheme() {
        // Computed with the Python sample in Feishu's robot documentation
        // (hmac.new(f"{timestamp}\n{secret}".encode(), b"", sha256)).
        assert_eq!(
            sign(1_599_360_473, "secret"),
            "q4jswNiMy51J5JuQV566yJat0/lQ/c+22kINzUgKsGU="
        );
    }

    #[test]
    fn every_settings_problem_is_reported_at_its_path() {
        let table: Table = "url = \"ftp://x\"\nsecret = \"\"\ntimeout = \"2m\"\ncolour = \"red\""
            .parse()
            .unwrap();
        let mut paths: Vec<String> = Settings::read("channels.ops", &table)
            .unwrap_err()
            .into_iter()
            .map(|e| e.path)
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "channels.ops.colour",
                "channels.ops.secret",
                "channels.ops.timeout",
                "channels.ops.url"
            ]
        );
        let missing = Settings::read("channels.ops", &Table::new()).unwrap_err();
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].path, "channels.ops.url");
    }
}
