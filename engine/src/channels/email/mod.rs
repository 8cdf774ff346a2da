//! The `email` kind: SMTP through lettre, async on tokio, TLS by rustls.
//! Each channel keeps one pooled transport. A message goes to
//! `user.email` (or the step's `to`) with a `subject`, a plain-text `body`
//! and, optionally, an `html` alternative. Its `Message-ID` is derived
//! from the idempotency key, so a retry after a lost reply carries the same
//! id and the receiving side can drop the duplicate; the key itself
//! travels as `X-Waymark-Idempotency-Key`. SMTP 4xx replies, connection
//! failures and timeouts are retryable; 5xx replies are permanent, with
//! the server's text.
//!
//! Settings: `host`; `tls` = `starttls` (the default; the relay must offer
//! it), `implicit` or `none`; `port` (default 587, 465 or 25 by `tls`);
//! `username` and `password`, both or neither (PLAIN or LOGIN, whichever
//! the relay offers; with `tls = "none"` they cross the network in clear);
//! `from`, a mailbox such as `"品牌 <news@example.com>"`; `timeout` for a
//! whole send (default `10s`, at most `30s`); `ca_file`, a PEM file of CA
//! certificates to trust besides the public roots (a relay with a private
//! CA).

mod settings;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransport, AsyncSmtpTransportBuilder};
use lettre::{AsyncTransport, Message as Mail, Tokio1Executor};
use settings::{Security, Settings};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use toml::Table;
use waymark_channel::ConfigError;
use waymark_channel::Message;
use waymark_channel::{
    BuildError, Channel, ChannelKind, Delivery, DeliveryError, MessageFields, Receipt, Recipient,
};

/// The header that carries the idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "X-Waymark-Idempotency-Key";

pub struct EmailKind;

impl ChannelKind for EmailKind {
    type Settings = Settings;

    fn name(&self) -> &'static str {
        "email"
    }

    fn message_fields(&self) -> MessageFields {
        MessageFields {
            required: vec!["subject", "body"],
            accepted: Some(vec!["subject", "body", "html"]),
        }
    }

    fn recipient(&self) -> Recipient {
        Recipient::Trait("email".into())
    }

    fn settings(&self, path: &str, table: &Table) -> Result<Settings, Vec<ConfigError>> {
        Settings::read(path, table)
    }

    fn build(&self, _name: &str, settings: Settings) -> Result<Arc<dyn Channel>, BuildError> {
        let tls = match settings.security {
            Security::None => Tls::None,
            Security::Implicit => Tls::Wrapper(tls_parameters(&settings)?),
            Security::StartTls => Tls::Required(tls_parameters(&settings)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(settings.timeout));
        if let Some((username, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(username.clone(), password.clone()));
        }
        Ok(Arc::new(EmailChannel {
            builder,
            transport: OnceLock::new(),
            from: settings.from,
            timeout: settings.timeout,
        }))
    }
}

/// TLS toward `host`, trusting the webpki roots and the `ca_file`, if any.
fn tls_parameters(settings: &Settings) -> Result<TlsParameters, BuildError> {
    let mut tls = TlsParameters::builder(settings.host.clone());
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|source| BuildError::Io {
            what: format!("read ca_file {path}"),
            source,
        })?;
        let certificate = Certificate::from_pem(&pem).map_err(|e| {
            BuildError::Client(format!("TLS: ca_file {path} is not a PEM certificate: {e}"))
        })?;
        tls = tls.add_root_certificate(certificate);
    }
    tls.build_rustls()
        .map_err(|e| BuildError::Client(format!("TLS: {e}")))
}

struct EmailChannel {
    builder: AsyncSmtpTransportBuilder,
    /// Made on the first delivery, inside the runtime that the pool's
    /// cleanup task needs, then shared by every delivery of the channel.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    /// The most one send may take, end to end (lettre's own timeout covers
    /// each read and write, not the whole exchange).
    timeout: Duration,
}

impl Channel for EmailChannel {
    fn deliver<'a>(&'a self, message: &'a Message) -> Delivery<'a> {
        Box::pin(async move {
            let key = message.idempotency_key.as_str();
            let email = self.compose(message, key)?;
            let transport = self.transport.get_or_init(|| self.builder.clone().build());
            match tokio::time::timeout(self.timeout, transport.send(email)).await {
                Err(_) => Err(DeliveryError::Retryable(format!(
                    "the SMTP exchange took over {:?}",
                    self.timeout
                ))),
                Ok(Ok(reply)) => Ok(Receipt {
                    provider_id: Some(reply.message().collect::<Vec<_>>().join(" ")),
                }),
                Ok(Err(e)) => Err(classify(&e)),
            }
        })
    }
}

impl EmailChannel {
    /// The message for one send record; what is wrong with the record is
    /// wrong on every retry, so it is a permanent failure.
    fn compose(&self, record: &Message, key: &str) -> Result<Mail, DeliveryError> {
        let to = record
            .address()
            .ok_or_else(|| DeliveryError::Permanent("no email address to send to".into()))?;
        let to: Mailbox = to.parse().map_err(|e| {
            DeliveryError::Permanent(format!("`{to}` is not an email address: {e}"))
        })?;
        let subject = text_field(record, "subject")?
            .ok_or_else(|| DeliveryError::Permanent("the message has no `subject`".into()))?;
        let body = text_field(record, "body")?
            .ok_or_else(|| DeliveryError::Permanent("the message has no `body`".into()))?;
        let html = text_field(record, "html")?;
        let builder = Mail::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(message_id(key, self.from.email.domain())))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(IDEMPOTENCY_HEADER),
                key.to_string(),
            ));
        let built = match html {
            None => builder.singlepart(SinglePart::plain(body)),
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(body, html)),
        };
        built.map_err(|e| DeliveryError::Permanent(format!("cannot build the message: {e}")))
    }
}

/// A field as text: strings as they are, numbers and booleans written out.
fn text_field(record: &Message, name: &str) -> Result<Option<String>, DeliveryError> {
    match record.fields.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
            Ok(Some(v.to_string()))
        }
        Some(_) => Err(DeliveryError::Permanent(format!(
            "`{name}` must be text, not a list or an object"
        ))),
    }
}

/// `<32 hex digits of SHA-256(key)@sender's domain>`: the same for every
/// attempt at one send, different for different sends.
pub fn message_id(key: &str, domain: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("<{hex}@{domain}>")
}

/// SMTP's own split: 4xx replies are transient, 5xx permanent. A refusal
/// by lettre itself (no common AUTH mechanism, no STARTTLS on a relay that
/// requires it) is a configuration problem that retrying will not fix.
/// Anything else — DNS, connect, TLS, a dropped connection, a timeout —
/// may pass.
fn classify(e: &lettre::transport::smtp::Error) -> DeliveryError {
    if e.is_permanent() || e.is_client() {
        DeliveryError::Permanent(e.to_string())
    } else {
        DeliveryError::Retryable(e.to_string())
    }
}
