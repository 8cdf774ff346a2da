//! Channel adapters: a kind (a factory that names itself, declares the
//! fields its messages take, validates its settings without I/O, and
//! builds instances) plus an instance that delivers one message with an
//! idempotency key. Retries, backoff, rate limits and dead letters live in
//! the outbox worker, not here. Kinds are registered on a [`Registry`], so
//! another crate can add one without editing the engine.
//!
//! Built in: `log`, `email` (SMTP through lettre), and over HTTP `webhook`, `sms` (Alibaba Cloud),
//! `wecom` (企业微信) and `wechat` (公众号), which share [`http`] (client,
//! timeouts, status mapping, `Idempotency-Key`) and [`settings`].

pub mod acs3;
pub mod conformance;
pub mod email;
pub mod http;
mod log;
pub mod settings;
mod sms;
mod webhook;
mod wechat;
mod wecom;
mod weixin;

pub use log::LogKind;
pub use sms::SmsKind;
pub use webhook::{SIGNATURE_HEADER, WebhookKind};
pub use wechat::WechatKind;
pub use wecom::WecomKind;

use crate::config::{ConfigError, KindCheck};
pub use crate::deployment::Recipient;
use crate::journal::Record;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use toml::Table;

/// The fields a kind's messages need and accept.
#[derive(Debug, Clone, Default)]
pub struct MessageFields {
    pub required: Vec<&'static str>,
    /// `None` for any fields.
    pub accepted: Option<Vec<&'static str>>,
}

/// Why a delivery failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("retryable: {0}")]
    Retryable(String),
    #[error("permanent: {0}")]
    Permanent(String),
}

/// What a provider said when it took the message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Receipt {
    pub provider_id: Option<String>,
}

pub type Delivery<'a> = Pin<Box<dyn Future<Output = Result<Receipt, DeliveryError>> + Send + 'a>>;

/// A configured channel.
pub trait Channel: Send + Sync {
    /// Delivers one send record; `key` is stable across retries of it.
    fn deliver<'a>(&'a self, message: &'a Record, key: &'a str) -> Delivery<'a>;
}

/// A kind of channel.
pub trait ChannelKind: Send + Sync {
    fn name(&self) -> &'static str;
    fn message_fields(&self) -> MessageFields;
    /// Where its messages find the user's address when a `send` step gives
    /// no `to` field: the user id (the default) or a user trait, whose
    /// absence suppresses the send with reason `no_address`.
    fn recipient(&self) -> Recipient {
        Recipient::UserId
    }
    /// Every problem in the settings, each with its TOML path. No I/O.
    fn validate(&self, path: &str, settings: &Table) -> Vec<ConfigError>;
    /// Makes an instance (clients, token caches) from valid settings.
    fn build(&self, name: &str, settings: &Table) -> Result<Arc<dyn Channel>, String>;
}

/// The kinds the engine knows.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn ChannelKind>>,
}

impl Registry {
    /// The built-in kinds.
    pub fn builtin() -> Registry {
        Registry::default()
            .with(LogKind)
            .with(WebhookKind)
            .with(SmsKind)
            .with(WecomKind)
            .with(WechatKind)
            .with(email::EmailKind)
    }

    /// Adds a kind (from another crate, say).
    pub fn with(mut self, kind: impl ChannelKind + 'static) -> Registry {
        self.kinds.insert(kind.name(), Arc::new(kind));
        self
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn ChannelKind>> {
        self.kinds.get(kind)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }
}

impl KindCheck for Registry {
    fn validate(&self, kind: &str, path: &str, settings: &Table) -> Option<Vec<ConfigError>> {
        self.get(kind).map(|k| k.validate(path, settings))
    }

    fn kinds(&self) -> Vec<&str> {
        self.names().collect()
    }
}

/// Settings keys a kind does not know, as errors.
pub fn unknown_settings(path: &str, settings: &Table, known: &[&str]) -> Vec<ConfigError> {
    settings
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| {
            let near = waymark_dsl::diagnostic::closest(k, known.iter().copied())
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            ConfigError {
                path: format!("{path}.{k}"),
                message: format!(
                    "unknown setting for this kind (it takes: {}){near}",
                    known.join(", ")
                ),
            }
        })
        .collect()
}
