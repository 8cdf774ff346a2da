//! Waymark's pure core: the model — a user's state and send history, the
//! journal record, the deployed plans, journey statistics, the clock
//! trait — and the step machine that runs journey plans against it
//! ([`machine::handle`]: user state, deployment, input and `now` in; new
//! state and journal records out). It does no I/O: it never reads the
//! clock, sleeps, spawns or opens a file or socket, and its dependency
//! tree holds no async runtime, store or HTTP client (CI checks that with
//! `cargo tree`). The engine crate wraps it in shells: `simulate`, `test`
//! and the durable daemon.

#![forbid(unsafe_code)]

pub mod clock;
pub mod consent;
pub mod deployment;
pub mod export;
pub mod hint;
pub mod history;
pub mod journal;
pub mod kept;
pub mod machine;
pub mod mix;
pub mod model;
pub mod names;
pub mod stats;
