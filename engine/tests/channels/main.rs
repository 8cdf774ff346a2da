//! Every built-in channel kind against a real provider that the test
//! starts on loopback, one file per kind: HTTP servers that act like their
//! providers (they check signatures, tokens and parameters the way the
//! providers document them and answer as the providers would), a real SMTP
//! server for `email`, a file for `log`; each test then asserts what the
//! provider received, and each kind passes the conformance check.

mod email;
mod log;
mod miniprogram;
mod sms;
mod webhook;
mod wechat;
mod wecom;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use toml::Table;
use waymark_engine::channels::{Channel, ChannelKind};

/// Serves `router` on 127.0.0.1 (a free port) for the rest of the test;
/// returns its base URL, `http://127.0.0.1:PORT`.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// A settings table from TOML text.
pub fn settings(text: &str) -> Table {
    text.parse().expect("test settings are TOML")
}

/// Builds a channel of `kind` from settings that must validate.
pub fn channel(kind: &impl ChannelKind, settings: &Table) -> Arc<dyn Channel> {
    waymark_channel::conformance::build(kind, settings)
}

/// What a server saw, shared with the test.
pub type Log<T> = Arc<Mutex<Vec<T>>>;
