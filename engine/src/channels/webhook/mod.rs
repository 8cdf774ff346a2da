//! The `webhook` kind: POSTs each message's journal record as JSON to a
//! configured URL, with the record's key in `Idempotency-Key` (and in the
//! body's `idempotency_key`), the operator's extra `headers`, and — when a
//! `secret` is set — `X-Waymark-Signature`, the hex HMAC-SHA256 of the exact
//! body bytes under that secret, so the receiver can check who sent it.

use crate::channels::http::{self, IDEMPOTENCY_KEY};
use hmac::{KeyInit, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Url};
use std::sync::Arc;
use toml::Table;
use waymark_channel::ConfigError;
use waymark_channel::Message;
use waymark_channel::Settings;
use waymark_channel::{
    BuildError, Channel, ChannelKind, Delivery, DeliveryError, MessageFields, Receipt,
};

/// The header that carries the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Waymark-Signature";

/// Headers the kind sets itself; `headers` may not override them.
const RESERVED: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "idempotency-key",
    "x-waymark-signature",
];

pub struct WebhookKind;

/// The settings, read.
#[derive(Clone)]
pub struct WebhookSettings {
    url: Url,
    secret: Option<String>,
    headers: HeaderMap,
    timeout: std::time::Duration,
}

fn read(path: &str, table: &Table) -> Result<WebhookSettings, Vec<ConfigError>> {
    let mut s = Settings::new(path, table, &["url", "secret", "headers", "timeout"]);
    let url = s.url("url", None, "the address to POST each message to");
    let secret = s.string("secret").map(str::to_string);
    let mut headers = HeaderMap::new();
    for (name, value) in s.string_table("headers") {
        let key = format!("headers.{name}");
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            s.error(&key, "is not a valid HTTP header name");
            continue;
        };
        if RESERVED.contains(&header.as_str()) {
            s.error(
                &key,
                "is set by the webhook kind itself and cannot be overridden",
            );
            continue;
        }
        match HeaderValue::from_str(value) {
            Ok(v) => {
                headers.insert(header, v);
            }
            Err(_) => s.error(
                &key,
                "is not a valid HTTP header value (visible ASCII, no line breaks)",
            ),
        }
    }
    let timeout = s.timeout();
    s.finish(())?;
    Ok(WebhookSettings {
        url: url.expect("a missing or bad url is an error, reported above"),
        secret,
        headers,
        timeout,
    })
}

impl ChannelKind for WebhookKind {
    type Settings = WebhookSettings;

    fn name(&self) -> &'static str {
        "webhook"
    }

    fn message_fields(&self) -> MessageFields {
        MessageFields {
            required: Vec::new(),
            accepted: None,
        }
    }

    fn settings(&self, path: &str, table: &Table) -> Result<Self::Settings, Vec<ConfigError>> {
        read(path, table)
    }

    fn build(&self, _name: &str, s: Self::Settings) -> Result<Arc<dyn Channel>, BuildError> {
        Ok(Arc::new(WebhookChannel {
            client: http::client(s.timeout)?,
            what: format!("webhook POST {}", without_query(&s.url)),
            url: s.url,
            secret: s.secret,
            headers: s.headers,
        }))
    }
}

/// The URL for messages: its query may hold a token.
fn without_query(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

/// The hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

struct WebhookChannel {
    client: Client,
    url: Url,
    what: String,
    secret: Option<String>,
    headers: HeaderMap,
}

impl Channel for WebhookChannel {
    fn deliver<'a>(&'a self, message: &'a Message) -> Delivery<'a> {
        Box::pin(async move {
            let key = message.idempotency_key.as_str();
            let mut record = serde_json::to_value(message)
                .map_err(|e| DeliveryError::Permanent(format!("cannot encode the record: {e}")))?;
            record["idempotency_key"] = serde_json::Value::String(key.to_string());
            let body = serde_json::to_vec(&record).expect("a JSON value encodes");
            let mut request = self
                .client
                .post(self.url.clone())
                .headers(self.headers.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(IDEMPOTENCY_KEY, key);
            if let Some(secret) = &self.secret {
                request = request.header(SIGNATURE_HEADER, signature(secret, &body));
            }
            let answer = http::exchange(&self.what, request.body(body)).await?;
            match answer.status_error(&self.what) {
                Some(e) => Err(e),
                None => Ok(Receipt::default()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(text: &str) -> Vec<ConfigError> {
        WebhookKind
            .settings("channels.hook", &text.parse().unwrap())
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_missing_url_and_bad_headers_are_each_named() {
        let errors = validate(
            "secret = \"s\"\n[headers]\n\"Bad Name\" = \"x\"\nContent-Type = \"text/plain\"\nX-Ok = \"fine\"\nX-Num = 1\n",
        );
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "channels.hook.url",
                "channels.hook.headers.X-Num",
                "channels.hook.headers.Bad Name",
                "channels.hook.headers.Content-Type",
            ],
            "{errors:?}"
        );
        assert!(errors[0].message.contains("missing"));
    }

    #[test]
    fn the_url_must_be_http_or_https() {
        let errors = validate("url = \"ftp://example.invalid/x\"\n");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "channels.hook.url");
        assert!(validate("url = \"https://example.invalid/x?t=1\"\ntimeout = \"2s\"\n").is_empty());
    }
}
