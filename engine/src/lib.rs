//! The Waymark engine: the shells around the pure core (`waymark-core`) —
//! `simulate`, `test` and the durable daemon — with the store that keeps
//! user state, timers, the journal and the outbox; the runtime that turns
//! inputs into one atomic commit each batch; the built-in channel kinds;
//! the configuration; the HTTP API; and the `waymark` command line.

#![forbid(unsafe_code)]

pub mod changes;
pub mod channels;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod html;
pub mod ingest;
pub mod preview;
pub mod runtime;
pub mod store;
pub mod testing;
pub mod user_cache;

/// The engine builder: the channel kinds it knows, then the `waymark`
/// command or the daemon. A crate with its own kind writes
/// `Waymark::new().channel_kind(MyKind).main()` as its `main`.
#[derive(Clone)]
pub struct Waymark {
    registry: channels::Registry,
}

impl Default for Waymark {
    fn default() -> Self {
        Waymark::new()
    }
}

impl Waymark {
    /// The built-in kinds (`log`, and those listed in engine.md).
    pub fn new() -> Waymark {
        Waymark {
            registry: channels::Registry::builtin(),
        }
    }

    /// Adds a channel kind; a kind with a built-in kind's name replaces it.
    pub fn channel_kind(mut self, kind: impl channels::ChannelKind) -> Waymark {
        self.registry = self.registry.with(kind);
        self
    }

    /// The kinds registered so far.
    pub fn registry(&self) -> &channels::Registry {
        &self.registry
    }

    /// Runs the `waymark` command line (check, fmt, test, simulate, run, …).
    pub fn main(self) -> std::process::ExitCode {
        cli::main(self.registry)
    }
}

/// Whether two secrets are equal, in time that does not depend on where
/// they differ (tokens, CSRF tokens, callback signatures).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
