//! What a channel adapter author needs, and nothing more: a channel
//! **kind** ([`ChannelKind`]) is a factory that names itself, declares the
//! fields its messages take and where it finds a user's address, reads its
//! settings once into a typed value (every problem reported with its TOML
//! path, no I/O), and builds a **channel** ([`Channel`]) from that value; a
//! channel delivers one [`Message`] and answers with a [`Receipt`] or a
//! [`DeliveryError`] that says whether trying again may help. Retries,
//! backoff, rate limits and dead letters are the engine's outbox's job, not
//! the adapter's. [`settings`] has typed getters for reading a settings
//! table; the `conformance` feature adds the check every kind should pass.
//!
//! This crate depends on no async runtime, store or HTTP stack: an adapter
//! brings its own client (the built-in HTTP kinds use reqwest with rustls).

#![forbid(unsafe_code)]

#[cfg(feature = "conformance")]
pub mod conformance;
mod kind;
mod message;
pub mod settings;
mod staff;

pub use kind::{
    AnyKind, BuildError, Channel, ChannelKind, Delivery, MessageFields, Recipient, Validated,
};
pub use message::{DeliveryError, Message, Receipt};
pub use settings::{ConfigError, Settings, parse_duration, unknown_settings};
pub use staff::{
    Call, CapPeriod, Created, CustomerCap, RecipientStatus, StaffTask, StaffTasks, TaskSchedule,
};
