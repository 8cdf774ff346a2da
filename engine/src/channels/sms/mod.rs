//! The `sms` kind: Alibaba Cloud SMS (Dysmsapi `SendSms`, API version
//! 2017-05-25), signed with the V3 signature (see [`super::acs3`]). The
//! send's template is the `TemplateCode`, its other fields the
//! `TemplateParam` object (values as strings), the user's phone the
//! `PhoneNumbers`, the message's key the `OutId`. The answer's `Code` says
//! what happened: `OK`, flow control and service trouble (retryable), or
//! anything else — a bad number, template or signature name — permanent.

mod acs3;
use crate::channels::http::{self, IDEMPOTENCY_KEY, field_text};
use reqwest::{Client, Url};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use toml::Table;
use waymark_channel::ConfigError;
use waymark_channel::Message;
use waymark_channel::Settings;
use waymark_channel::{
    BuildError, Channel, ChannelKind, Delivery, DeliveryError, MessageFields, Receipt, Recipient,
};
use waymark_core::clock::{Clock, SystemClock};

pub const DEFAULT_ENDPOINT: &str = "https://dysmsapi.aliyuncs.com";
const ACTION: &str = "SendSms";
const VERSION: &str = "2017-05-25";
/// `OutId` is "a string shorter than 256 characters".
const OUT_ID_LIMIT: usize = 255;

/// Answer codes worth trying again later: flow control and service trouble.
fn retryable(code: &str) -> bool {
    matches!(
        code,
        "isv.BUSINESS_LIMIT_CONTROL"
            | "isv.DAY_LIMIT_CONTROL"
            | "ServiceUnavailable"
            | "InternalError"
            | "isp.SYSTEM_ERROR"
            | "SignatureNonceUsed"
    ) || code.starts_with("Throttling")
}

pub struct SmsKind;

/// The settings, read.
#[derive(Clone)]
pub struct SmsSettings {
    endpoint: Url,
    access_key_id: String,
    access_key_secret: String,
    sign_name: String,
    timeout: std::time::Duration,
}

fn read(path: &str, table: &Table) -> Result<SmsSettings, Vec<ConfigError>> {
    let mut s = Settings::new(
        path,
        table,
        &[
            "endpoint",
            "access_key_id",
            "access_key_secret",
            "sign_name",
            "timeout",
        ],
    );
    let endpoint = s.url("endpoint", Some(DEFAULT_ENDPOINT), "the Dysmsapi endpoint");
    if let Some(url) = &endpoint
        && (!matches!(url.path(), "" | "/") || url.query().is_some())
    {
        s.error(
            "endpoint",
            format!("`{url}` must be a bare address such as {DEFAULT_ENDPOINT}: SendSms is signed for the path `/`"),
        );
    }
    let access_key_id = s.required(
        "access_key_id",
        "the AccessKey ID of a RAM user allowed to call SendSms",
    );
    let access_key_secret = s.required("access_key_secret", "that AccessKey's secret");
    let sign_name = s.required(
        "sign_name",
        "the approved signature name (签名) that prefixes each message",
    );
    let timeout = s.timeout();
    s.finish(())?;
    let missing = "a missing or bad setting is an error, reported above";
    Ok(SmsSettings {
        endpoint: endpoint.expect(missing),
        access_key_id: access_key_id.expect(missing).to_string(),
        access_key_secret: access_key_secret.expect(missing).to_string(),
        sign_name: sign_name.expect(missing).to_string(),
        timeout,
    })
}

impl ChannelKind for SmsKind {
    type Settings = SmsSettings;

    fn name(&self) -> &'static str {
        "sms"
    }

    fn message_fields(&self) -> MessageFields {
        MessageFields {
            required: vec!["template"],
            accepted: None,
        }
    }

    fn recipient(&self) -> Recipient {
        Recipient::Trait("phone".into())
    }

    fn settings(&self, path: &str, table: &Table) -> Result<Self::Settings, Vec<ConfigError>> {
        read(path, table)
    }

    fn build(&self, _name: &str, s: Self::Settings) -> Result<Arc<dyn Channel>, BuildError> {
        let mut host = s.endpoint.host_str().unwrap_or_default().to_string();
        if let Some(port) = s.endpoint.port() {
            host = format!("{host}:{port}");
        }
        Ok(Arc::new(SmsChannel {
            client: http::client(s.timeout)?,
            what: format!("sms {ACTION} at {host}"),
            host,
            endpoint: s.endpoint,
            access_key_id: s.access_key_id,
            access_key_secret: s.access_key_secret,
            sign_name: s.sign_name,
            clock: Arc::new(SystemClock),
        }))
    }
}

struct SmsChannel {
    client: Client,
    endpoint: Url,
    host: String,
    what: String,
    access_key_id: String,
    access_key_secret: String,
    sign_name: String,
    /// The request date the signature covers.
    clock: Arc<dyn Clock>,
}

/// What `SendSms` answers.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    biz_id: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
}

/// The template and its parameters, or why the message cannot be sent.
fn template_and_params(message: &Message) -> Result<(String, Option<String>), DeliveryError> {
    let fields = &message.fields;
    let template = message.template_name().map(str::to_string).ok_or_else(|| {
        DeliveryError::Permanent(
            "sms: no template: a send needs `template \"SMS_…\"`, the TemplateCode".into(),
        )
    })?;
    let params: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .filter(|(k, _)| k.as_str() != "template")
        .map(|(k, v)| (k.clone(), serde_json::Value::String(field_text(v))))
        .collect();
    let params = (!params.is_empty()).then(|| serde_json::Value::Object(params).to_string());
    Ok((template, params))
}

/// A value for `x-acs-signature-nonce` that no other request of this
/// process (or, with overwhelming odds, any other) uses.
fn nonce(key: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seed = format!(
        "{}/{}/{}/{key}",
        std::process::id(),
        now.as_nanos(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    acs3::sha256_hex(seed.as_bytes())[..32].to_string()
}

impl Channel for SmsChannel {
    fn deliver<'a>(&'a self, message: &'a Message) -> Delivery<'a> {
        Box::pin(async move {
            let key = message.idempotency_key.as_str();
            let phone = message.address().ok_or_else(|| {
                DeliveryError::Permanent(
                    "sms: no phone number (no `to`, and the user has no `phone`)".into(),
                )
            })?;
            let (template, template_param) = template_and_params(message)?;
            let out_id = http::bounded_key(key, OUT_ID_LIMIT);
            let mut params = vec![
                ("PhoneNumbers", phone),
                ("SignName", self.sign_name.as_str()),
                ("TemplateCode", template.as_str()),
                ("OutId", out_id.as_str()),
            ];
            if let Some(p) = &template_param {
                params.push(("TemplateParam", p.as_str()));
            }
            let date = self.clock.now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let nonce = nonce(key);
            let signed = acs3::sign(
                &acs3::Call {
                    method: "POST",
                    host: &self.host,
                    action: ACTION,
                    version: VERSION,
                    date: &date,
                    nonce: &nonce,
                    params: &params,
                    body: b"",
                },
                &self.access_key_id,
                &self.access_key_secret,
            );
            let mut url = self.endpoint.clone();
            url.set_path("/");
            url.set_query(Some(&signed.query));
            let mut request = self
                .client
                .post(url)
                .header(reqwest::header::ACCEPT, "application/json")
                .header(IDEMPOTENCY_KEY, key);
            for (name, value) in &signed.headers {
                request = request.header(*name, value);
            }
            let answer = http::exchange(&self.what, request).await?;
            let Ok(reply) = serde_json::from_slice::<Answer>(&answer.body) else {
                return Err(answer.status_error(&self.what).unwrap_or_else(|| {
                    DeliveryError::Retryable(format!(
                        "{} answered {} without a Code: {}",
                        self.what,
                        answer.status,
                        answer.text()
                    ))
                }));
            };
            if reply.code == "OK" {
                return Ok(Receipt {
                    provider_id: reply.biz_id,
                });
            }
            let request_id = reply
                .request_id
                .map(|r| format!(" (RequestId {r})"))
                .unwrap_or_default();
            let text = format!(
                "{} answered {}: {}{request_id}",
                self.what, reply.code, reply.message
            );
            Err(if retryable(&reply.code) {
                DeliveryError::Retryable(text)
            } else {
                DeliveryError::Permanent(text)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waymark_channel::conformance::sample_message;

    #[test]
    fn missing_credentials_are_each_named_and_the_endpoint_must_be_bare() {
        let errors = SmsKind
            .settings(
                "channels.sms",
                &"endpoint = \"https://dysmsapi.aliyuncs.com/x\"\nsign_name = \"\"\n"
                    .parse()
                    .unwrap(),
            )
            .err()
            .unwrap_or_default();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "channels.sms.endpoint",
                "channels.sms.access_key_id",
                "channels.sms.access_key_secret",
                "channels.sms.sign_name",
            ],
            "{errors:?}"
        );
    }

    #[test]
    fn the_other_fields_become_template_params_as_strings() {
        let m = sample_message(
            "sms",
            "13800000000",
            Some("SMS_1"),
            serde_json::json!({ "code": "A1", "n": 3, "ok": true }),
        );
        let (template, params) = template_and_params(&m).unwrap();
        assert_eq!(template, "SMS_1");
        assert_eq!(
            params.as_deref(),
            Some(r#"{"code":"A1","n":"3","ok":"true"}"#)
        );
        let bare = sample_message("sms", "1", Some("SMS_1"), serde_json::json!({}));
        assert_eq!(template_and_params(&bare).unwrap().1, None);
        let none = sample_message("sms", "1", None, serde_json::json!({ "n": 1 }));
        assert!(matches!(
            template_and_params(&none),
            Err(DeliveryError::Permanent(_))
        ));
    }

    #[test]
    fn flow_control_and_service_trouble_are_retryable() {
        for code in [
            "isv.BUSINESS_LIMIT_CONTROL",
            "Throttling.User",
            "Throttling",
            "ServiceUnavailable",
            "isp.SYSTEM_ERROR",
        ] {
            assert!(retryable(code), "{code}");
        }
        for code in [
            "isv.MOBILE_NUMBER_ILLEGAL",
            "isv.SMS_TEMPLATE_ILLEGAL",
            "isv.SMS_SIGNATURE_ILLEGAL",
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId.NotFound",
        ] {
            assert!(!retryable(code), "{code}");
        }
    }

    #[test]
    fn nonces_differ_for_the_same_key() {
        assert_ne!(nonce("k"), nonce("k"));
        assert_eq!(nonce("k").len(), 32);
    }
}
