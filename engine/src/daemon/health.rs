//! Readiness: what `/readyz` reports beside `/healthz` (liveness). The
//! daemon is ready when its store answers and its last write succeeded,
//! its scripts are deployed and its outbox worker runs. After a failed
//! write (a full disk, say) the writer reopens the store and probes it
//! with a small write until one succeeds; until then ingest calls get 503
//! with `Retry-After`, and readiness names the store's error.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct Health {
    scripts_deployed: AtomicBool,
    outbox_running: AtomicBool,
    /// The store's last write error, until a write succeeds again.
    store_error: Mutex<Option<String>>,
}

impl Health {
    pub fn deployed(&self) {
        self.scripts_deployed.store(true, Ordering::Relaxed);
    }

    pub fn outbox(&self, running: bool) {
        self.outbox_running.store(running, Ordering::Relaxed);
    }

    pub fn store_failed(&self, error: impl std::fmt::Display) {
        let mut slot = self.store_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            tracing::error!(error = %error, "the store failed a write: not ready until a write succeeds again");
        }
        *slot = Some(error.to_string());
    }

    pub fn store_ok(&self) {
        let mut slot = self.store_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.take().is_some() {
            tracing::info!("the store takes writes again: ready");
        }
    }

    /// The store's last write error, if it has not recovered.
    pub fn store_error(&self) -> Option<String> {
        self.store_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Each check (`store`, `scripts`, `outbox`) with `ok` or what is wrong;
    /// `read_error` is the result of reading the store just now.
    pub fn checks(&self, read_error: Option<String>) -> (bool, serde_json::Value) {
        let store = match (self.store_error(), read_error) {
            (Some(e), _) => Some(format!("the last write failed: {e}")),
            (None, Some(e)) => Some(format!("a read failed: {e}")),
            (None, None) => None,
        };
        let scripts = (!self.scripts_deployed.load(Ordering::Relaxed))
            .then(|| "not deployed yet".to_string());
        let outbox = (!self.outbox_running.load(Ordering::Relaxed))
            .then(|| "the outbox worker is not running".to_string());
        let ready = store.is_none() && scripts.is_none() && outbox.is_none();
        let word = |problem: Option<String>| problem.unwrap_or_else(|| "ok".into());
        (
            ready,
            serde_json::json!({
                "store": word(store),
                "scripts": word(scripts),
                "outbox": word(outbox),
            }),
        )
    }
}
