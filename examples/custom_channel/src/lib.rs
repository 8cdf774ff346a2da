//! A channel kind in its own crate: `feishu`, a Feishu (飞书) group robot —
//! the custom bot a group adds to post alerts through a webhook. It is an
//! example of adding a kind without editing the engine: `FeishuKind`
//! implements the engine's two adapter traits and `main.rs` registers it
//! on the builder. Use it for staff alerts (a big order for the sales group
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
use toml::{Table, Value};
use waymark_engine::adapters::{
    Channel, ChannelKind, Delivery, DeliveryError, MessageFields, Receipt, unknown_settings,
};
use waymark_engine::config::{ConfigError, parse_duration};
use waymark_engine::journal::Record;

/// Sent with every post; the robot ignores it (it has no way to drop a
/// duplicate), but proxies and a test server can see it.
pub const IDEMPOTENCY_HEADER: &str = "X-Waymark-Idempotency-Key";

/// Feishu's reply code when a robot posts too often (100 a minute, 5 a second).
const RATE_LIMITED: i64 = 11232;

const KEYS: &[&str] = &["url", "secret", "timeout"];

pub struct FeishuKind;

impl ChannelKind for FeishuKind {
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

    fn validate(&self, path: &str, settings: &Table) -> Vec<ConfigError> {
        Settings::read(path, settings).err().unwrap_or_default()
    }

    fn build(&self, name: &str, settings: &Table) -> Result<Arc<dyn Channel>, String> {
        let settings = Settings::read(&format!("channels.{name}"), settings).map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Arc::new(FeishuChannel { client, settings }))
    }
}

struct Settings {
    url: reqwest::Url,
    secret: Option<String>,
    /// The most one post may take, connecting included.
    timeout: Duration,
}

impl Settings {
    /// The settings, or every problem with them, each at its TOML path.
    /// Pure: `validate` must not do I/O.
    fn read(path: &str, table: &Table) -> Result<Settings, Vec<ConfigError>> {
        let mut errors = unknown_settings(path, table, KEYS);
        let mut error = |key: &str, message: String| {
            errors.push(ConfigError {
                path: format!("{path}.{key}"),
                message,
            })
        };
        let url = match table.get("url") {
            None => {
                error("url", "missing: the robot's webhook address".into());
                None
            }
            Some(Value::String(text)) => match reqwest::Url::parse(text) {
                Ok(url) if matches!(url.scheme(), "https" | "http") => Some(url),
                _ => {
                    error(
                        "url",
                        format!(
                            "`{text}` is not an http(s) URL such as https://open.feishu.cn/open-apis/bot/v2/hook/…"
                        ),
                    );
                    None
                }
            },
            Some(other) => {
                error(
                    "url",
                    format!("must be a string, found {}", other.type_str()),
                );
                None
            }
        };
        let secret = match table.get("secret") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                error(
                    "secret",
                    "must be the robot's signing secret, a non-empty string".into(),
                );
                None
            }
        };
        let timeout = match table.get("timeout") {
            None => Some(Duration::from_secs(10)),
            Some(Value::String(text)) => match parse_duration(text) {
                Some(d) if !d.is_zero() && d <= Duration::from_secs(30) => Some(d),
                _ => {
                    error(
                        "timeout",
                        format!("`{text}` is not a duration between 1ms and 30s, such as 10s"),
                    );
                    None
                }
            },
            Some(other) => {
                error(
                    "timeout",
                    format!("must be a string, found {}", other.type_str()),
                );
                None
            }
        };
        match (url, timeout) {
            (Some(url), Some(timeout)) if errors.is_empty() => Ok(Settings {
                url,
                secret,
                timeout,
            }),
            _ => Err(errors),
        }
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
    fn deliver<'a>(&'a self, message: &'a Record, key: &'a str) -> Delivery<'a> {
        Box::pin(async move {
            // A message without its text is as wrong on the next attempt.
            let text = match message.fields.as_ref().and_then(|f| f.get("text")) {
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
        let mut paths: Vec<String> = FeishuKind
            .validate("channels.ops", &table)
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
        let missing = FeishuKind.validate("channels.ops", &Table::new());
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].path, "channels.ops.url");
    }
}
