//! The Waymark runtime: a pure core that runs journey plans against
//! per-user state, the store that keeps that state durable, and the shells
//! around the core (`simulate`, `test`, the daemon) that share it.

#![forbid(unsafe_code)]

pub mod adapters;
pub mod clock;
pub mod config;
pub mod core;
pub mod daemon;
pub mod deployment;
pub mod history;
pub mod ingest;
pub mod journal;
pub mod model;
pub mod runtime;
pub mod stats;
pub mod store;
pub mod testing;
