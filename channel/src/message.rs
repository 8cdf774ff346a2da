//! One message to deliver and what came of it. A [`Message`] is what a
//! journey's `send` step decided, resolved for the channel: the address,
//! the template, the fields, the idempotency key, and which journey, step
//! and user it comes from (for the provider's logs and the adapter's
//! errors). A delivery ends in a [`Receipt`] or a [`DeliveryError`] whose
//! class tells the outbox whether to try again.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// A message for one user on one configured channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// When the journey decided to send it.
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// The user it is for, by their Waymark id.
    pub user: String,
    /// The journey (or rule) that sent it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub journey: Option<String>,
    /// The journey version.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    /// The `send` step's id within the plan (`s7`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub step: Option<String>,
    /// The configured channel's name (`[channels.NAME]`).
    pub channel: String,
    /// The address to deliver to: the step's `to` field, else the user
    /// trait the kind reads ([`Recipient`](crate::Recipient)), else the
    /// user id.
    pub to: String,
    /// The step's `template`, if it gave one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub template: Option<String>,
    /// The step's other fields, evaluated.
    #[serde(default)]
    pub fields: Map<String, Value>,
    /// Stable across every retry of this message: pass it to the provider
    /// when it can drop duplicates.
    pub idempotency_key: String,
}

impl Message {
    /// The address, unless it is blank.
    pub fn address(&self) -> Option<&str> {
        Some(self.to.as_str()).filter(|to| !to.trim().is_empty())
    }

    /// The template: the step's `template`, else a `template` field;
    /// `None` when neither is given or it is blank.
    pub fn template_name(&self) -> Option<&str> {
        self.template
            .as_deref()
            .or_else(|| self.fields.get("template").and_then(Value::as_str))
            .filter(|t| !t.trim().is_empty())
    }

    /// Field `name` as text (a string as it is, any other value as JSON);
    /// `None` when absent or null.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.fields.get(name)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// What a provider said when it took the message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Receipt {
    /// The provider's id for the message, when it gives one.
    pub provider_id: Option<String>,
}

/// Why a delivery failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// No connection, no answer in time, a 5xx, throttling: the outbox
    /// tries again with backoff, and dead-letters the message when its
    /// attempts run out.
    #[error("retryable: {0}")]
    Retryable(String),
    /// The provider refused the message for good (a bad address, template
    /// or credential), or it cannot be delivered as it is: dead-lettered
    /// at once.
    #[error("permanent: {0}")]
    Permanent(String),
    /// The provider refused the message because the person has not, or no
    /// longer, consented to it (WeChat's 43101 for a subscribe message
    /// with no accept left): not retried, dead-lettered at once, and the
    /// engine takes back what it counted on — the template's grants, or
    /// for a channel without grants the user's consent on it.
    #[error("consent: {0}")]
    Consent(String),
    /// The provider's quota or rate limit for these calls is used up for
    /// now (WeChat's daily quota 45009, a WeCom API ban): a fact about the
    /// provider, not a failure of the message. Tried again after `wait`
    /// without counting an attempt; dead-lettered only once the send is
    /// older than the channel's `max_age`.
    #[error("quota: {message} (trying again in {}s)", wait.as_secs())]
    Quota {
        message: String,
        wait: std::time::Duration,
    },
}

impl DeliveryError {
    /// True when trying again may help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DeliveryError::Retryable(_) | DeliveryError::Quota { .. }
        )
    }
}

impl From<std::io::Error> for DeliveryError {
    /// Local I/O trouble (a full disk, a closed pipe) may pass.
    fn from(e: std::io::Error) -> Self {
        DeliveryError::Retryable(e.to_string())
    }
}
