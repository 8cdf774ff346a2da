//! The HTTP channel kinds against real HTTP servers on loopback that act
//! like their providers — they check signatures, tokens and parameters the
//! way the providers document them and answer as the providers would —
//! and then assert what those servers received.

mod sms;
mod webhook;
mod wechat;
mod wecom;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use toml::Table;
use waymark_engine::adapters::{Channel, ChannelKind};

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
pub fn channel(kind: &dyn ChannelKind, settings: &Table) -> Arc<dyn Channel> {
    let errors = kind.validate("channels.test", settings);
    assert!(errors.is_empty(), "{errors:?}");
    kind.build("test", settings).expect("builds")
}

/// What a server saw, shared with the test.
pub type Log<T> = Arc<Mutex<Vec<T>>>;
