//! The built-in channel kinds and the registry of kinds the engine knows.
//! The traits and types an adapter implements live in `waymark-channel`
//! (re-exported here), so a kind in another crate needs only that crate;
//! it is registered on the engine builder ([`crate::Waymark::channel_kind`])
//! without editing the engine. Retries, backoff, rate limits and dead
//! letters live in the outbox worker, not in the kinds.
//!
//! Built in, one folder per kind: `log`, `email` (SMTP through lettre),
//! and over HTTP `webhook`, `sms` (Alibaba Cloud) and the Weixin kinds in
//! one folder, `wecom` (企业微信), `wechat` (公众号), `miniprogram` (小程序
//! subscribe messages) and `wechat_subscribe` (公众号 subscription
//! notices), which share an access-token cache ([`weixin::token`]). The HTTP kinds share [`http`]
//! (client, timeouts, status mapping, `Idempotency-Key`).

pub mod email;
pub mod http;
mod log;
pub mod sms;
mod webhook;
pub mod weixin;

pub use log::LogKind;
pub use sms::SmsKind;
pub use waymark_channel::*;
pub use webhook::{SIGNATURE_HEADER, WebhookKind};
pub use weixin::{
    MiniprogramKind, WechatKind, WechatSubscribeKind, WecomKind, WecomMassKind, WecomWelcomeKind,
};

use crate::config::KindCheck;
use std::collections::BTreeMap;
use std::sync::Arc;
use toml::Table;

/// The kinds the engine knows.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn AnyKind>>,
}

impl Registry {
    /// The built-in kinds.
    pub fn builtin() -> Registry {
        Registry::default()
            .with(LogKind)
            .with(WebhookKind)
            .with(SmsKind)
            .with(WecomKind)
            .with(WecomWelcomeKind)
            .with(WecomMassKind)
            .with(WechatKind)
            .with(MiniprogramKind)
            .with(WechatSubscribeKind)
            .with(email::EmailKind)
    }

    /// Adds a kind (from another crate, say); a kind with the name of one
    /// already there replaces it.
    pub fn with(mut self, kind: impl ChannelKind) -> Registry {
        self.kinds.insert(ChannelKind::name(&kind), Arc::new(kind));
        self
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn AnyKind>> {
        self.kinds.get(kind)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }
}

impl KindCheck for Registry {
    fn validate(
        &self,
        kind: &str,
        path: &str,
        settings: &Table,
    ) -> Option<Result<Validated, Vec<ConfigError>>> {
        self.get(kind).map(|k| k.validate(path, settings))
    }

    fn kinds(&self) -> Vec<&str> {
        self.names().collect()
    }
}
