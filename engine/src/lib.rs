//! The Waymark runtime: a pure core that runs journey plans against
//! per-user state, the store that keeps that state durable, and the shells
//! around the core (`simulate`, `test`, the daemon) that share it.

#![forbid(unsafe_code)]

pub mod adapters;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod daemon;
pub mod deployment;
pub mod export;
pub mod history;
pub mod ingest;
pub mod journal;
pub mod model;
pub mod runtime;
pub mod stats;
pub mod store;
pub mod testing;
pub mod user_cache;

/// The engine builder: the channel kinds it knows, then the `waymark`
/// command or the daemon. A crate with its own kind writes
/// `Waymark::new().channel_kind(MyKind).main()` as its `main`.
#[derive(Clone)]
pub struct Waymark {
    registry: adapters::Registry,
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
            registry: adapters::Registry::builtin(),
        }
    }

    /// Adds a channel kind; a kind with a built-in kind's name replaces it.
    pub fn channel_kind(mut self, kind: impl adapters::ChannelKind + 'static) -> Waymark {
        self.registry = self.registry.with(kind);
        self
    }

    /// The kinds registered so far.
    pub fn registry(&self) -> &adapters::Registry {
        &self.registry
    }

    /// Runs the `waymark` command line (check, fmt, test, simulate, run, …).
    pub fn main(self) -> std::process::ExitCode {
        cli::main(self.registry)
    }
}
