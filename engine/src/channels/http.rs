//! What the HTTP channel kinds share: one way to make a client (rustls, a
//! connect timeout and a whole-request timeout, no redirects followed), one
//! way to exchange a request for a status and a body, and one mapping of
//! failures to [`DeliveryError`]: no connection, no answer in time, 5xx,
//! 408 and 429 may pass and are retryable; any other 4xx is permanent and
//! carries what the provider said. Every delivery request carries the
//! message's key in an `Idempotency-Key` header.

use reqwest::{Client, RequestBuilder, StatusCode};
use std::time::Duration;
use waymark_channel::{BuildError, DeliveryError};

/// The header every HTTP kind sends with the message's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The longest wait for a connection; `timeout` still bounds the whole
/// request when it is shorter.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of a provider's answer goes into an error message.
const ERROR_TEXT_LIMIT: usize = 500;

/// A client whose every request fails (retryably) after `timeout`.
pub fn client(timeout: Duration) -> Result<Client, BuildError> {
    Client::builder()
        .connect_timeout(timeout.min(CONNECT_TIMEOUT))
        .timeout(timeout)
        // A redirected POST turns into a GET; point the setting at the
        // final address instead.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("waymark/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BuildError::Client(format!("HTTP: {}", chain(&e))))
}

/// A provider's whole answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text, shortened for an error message.
    pub fn text(&self) -> String {
        excerpt(&self.body)
    }

    /// The error this status means, if it is not a success; `what` names
    /// the request (`webhook POST http://…`).
    pub fn status_error(&self, what: &str) -> Option<DeliveryError> {
        let status = self.status;
        if status.is_success() {
            return None;
        }
        let said = match self.text() {
            t if t.is_empty() => String::new(),
            t => format!(": {t}"),
        };
        let hint = if status.is_redirection() {
            " (redirects are not followed: configure the address it points to)"
        } else {
            ""
        };
        let message = format!("{what} answered {status}{hint}{said}");
        Some(
            if status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT
            {
                DeliveryError::Retryable(message)
            } else {
                DeliveryError::Permanent(message)
            },
        )
    }
}

/// Sends `request` and reads the whole answer. Failing to connect, to get
/// an answer within the timeout or to read it is retryable.
pub async fn exchange(what: &str, request: RequestBuilder) -> Result<Answer, DeliveryError> {
    let response = request.send().await.map_err(|e| failure(what, e))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| failure(what, e))?;
    Ok(Answer {
        status,
        body: body.to_vec(),
    })
}

fn failure(what: &str, e: reqwest::Error) -> DeliveryError {
    // The URL may carry a secret (`corpsecret=…`, `access_token=…`) and
    // errors end up in logs and dead letters: `what` names the request.
    let e = e.without_url();
    if e.is_builder() {
        // A request that cannot even be built will not build next time.
        return DeliveryError::Permanent(format!("{what}: cannot make the request: {}", chain(&e)));
    }
    if e.is_timeout() {
        return DeliveryError::Retryable(format!("{what}: no answer in time ({})", chain(&e)));
    }
    DeliveryError::Retryable(format!("{what}: {}", chain(&e)))
}

/// An error and its causes, `outer: inner: innermost`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// At most [`ERROR_TEXT_LIMIT`] bytes of `body` as text, on one line.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.len() <= ERROR_TEXT_LIMIT {
        return text;
    }
    let mut end = ERROR_TEXT_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A message field as the text a provider's template takes: strings as
/// they are, `null` as nothing, anything else as JSON.
pub fn field_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `key` if it has at most `limit` bytes, else its SHA-256 in hex (64
/// characters), so a provider that caps its dedup id still sees one id
/// per message.
pub fn bounded_key(key: &str, limit: usize) -> String {
    use sha2::Digest;
    if key.len() <= limit {
        key.to_string()
    } else {
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn server_errors_throttling_and_timeouts_are_retryable_other_client_errors_permanent() {
        for status in [500, 502, 503, 429, 408] {
            assert!(
                matches!(
                    answer(status, "").status_error("x"),
                    Some(DeliveryError::Retryable(_))
                ),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 410, 422, 301] {
            assert!(
                matches!(
                    answer(status, "").status_error("x"),
                    Some(DeliveryError::Permanent(_))
                ),
                "{status}"
            );
        }
        assert_eq!(answer(204, "").status_error("x"), None);
    }

    #[test]
    fn an_error_carries_what_the_provider_said_on_one_short_line() {
        let e = answer(400, "{\"error\":\n \"bad field\"}").status_error("webhook POST u");
        assert_eq!(
            e,
            Some(DeliveryError::Permanent(
                "webhook POST u answered 400 Bad Request: {\"error\": \"bad field\"}".into()
            ))
        );
        let long = "é".repeat(400);
        let text = excerpt(long.as_bytes());
        assert!(text.len() <= ERROR_TEXT_LIMIT + '…'.len_utf8() && text.ends_with('…'));
    }

    #[test]
    fn long_keys_are_hashed_to_64_characters_and_short_ones_kept() {
        assert_eq!(bounded_key("j/v1/u1/1/s2/0", 64), "j/v1/u1/1/s2/0");
        let long = "k".repeat(65);
        let bounded = bounded_key(&long, 64);
        assert_eq!(bounded.len(), 64);
        assert_eq!(bounded, bounded_key(&long, 64), "stable across retries");
        assert_ne!(bounded, bounded_key(&"k".repeat(66), 64));
    }

    #[test]
    fn fields_become_template_text() {
        use serde_json::json;
        assert_eq!(field_text(&json!("a")), "a");
        assert_eq!(field_text(&json!(12.5)), "12.5");
        assert_eq!(field_text(&json!(true)), "true");
        assert_eq!(field_text(&json!(null)), "");
        assert_eq!(field_text(&json!([1, "x"])), "[1,\"x\"]");
    }
}
