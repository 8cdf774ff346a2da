//! A small harness for engine behaviour tests: compile a script from a
//! string, drive the real runtime (core, in-memory store) on a manual
//! clock, and look at the journal records it produced.

#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use waymark_core::deployment::Deployment;
use waymark_core::journal::{Kind, Record};
use waymark_core::model::{Event, Input, UserState};
use waymark_dsl::plan::Plan;
use waymark_dsl::render;
use waymark_dsl::source::Sources;
use waymark_dsl::value::Value;
use waymark_dsl::{Options, compile as compile_sources};
use waymark_engine::runtime::Runtime;
use waymark_engine::store::{Kv, MemoryKv, Op, Store, StoreError};

/// Checks a one-file deployment; panics with the rendered diagnostics if it
/// does not check clean.
pub fn compile(script: &str) -> Plan {
    let mut sources = Sources::new();
    sources.add("test.journey", script);
    let checked = compile_sources(
        sources,
        Options {
            functions: waymark_stdlib::stdlib(),
            channels: None,
        },
    );
    match checked.plan {
        Some(plan) => plan,
        None => panic!(
            "the script does not check:\n{}",
            render::human(&checked.sources, &checked.diagnostics)
        ),
    }
}

/// An RFC 3339 timestamp.
pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
        .to_utc()
}

pub fn mins(n: i64) -> Duration {
    Duration::minutes(n)
}
pub fn hours(n: i64) -> Duration {
    Duration::hours(n)
}
pub fn days(n: i64) -> Duration {
    Duration::days(n)
}

/// The runtime with a current time and every record it produced so far.
pub struct Harness {
    pub runtime: Runtime<MemoryKv>,
    pub now: DateTime<Utc>,
    records: Vec<Record>,
    mark: usize,
    sequence: u64,
}

/// Monday 2025-11-10 00:00 UTC (08:00 in Shanghai).
pub const START: &str = "2025-11-10T00:00:00Z";

impl Harness {
    /// A harness at [`START`].
    pub fn new(script: &str) -> Harness {
        Harness::at(script, START)
    }

    pub fn at(script: &str, start: &str) -> Harness {
        let now = t(start);
        let mut runtime = Runtime::new(
            Store::new(MemoryKv::default()),
            Deployment::new(compile(script)),
        );
        runtime.start_schedules_at(now);
        Harness {
            runtime,
            now,
            records: Vec::new(),
            mark: 0,
            sequence: 0,
        }
    }

    pub fn ingest(&mut self, input: Input) -> &[Record] {
        let out = self
            .runtime
            .ingest(&[input], self.now)
            .expect("the memory store does not fail");
        let from = self.records.len();
        self.records.extend(out);
        &self.records[from..]
    }

    /// Merges profile traits (Segment's `identify`).
    pub fn identify(&mut self, user: &str, traits: serde_json::Value) -> &[Record] {
        self.ingest(Input::Identify {
            user: user.to_string(),
            traits: Value::from_json(&traits),
            at: self.now,
            message_id: None,
        })
    }

    /// Tracks an event now, with a fresh message id.
    pub fn track(&mut self, user: &str, event: &str, props: serde_json::Value) -> &[Record] {
        let at = self.now;
        self.track_at(user, event, props, at)
    }

    /// Tracks an event that happened at `at` (possibly long ago), ingested now.
    pub fn track_at(
        &mut self,
        user: &str,
        event: &str,
        props: serde_json::Value,
        at: DateTime<Utc>,
    ) -> &[Record] {
        self.sequence += 1;
        let id = format!("m{}", self.sequence);
        self.track_with_id(user, event, props, at, &id)
    }

    pub fn track_with_id(
        &mut self,
        user: &str,
        event: &str,
        props: serde_json::Value,
        at: DateTime<Utc>,
        message_id: &str,
    ) -> &[Record] {
        self.ingest(Input::Track(Event {
            user: user.to_string(),
            name: event.to_string(),
            properties: Value::from_json(&props),
            at,
            message_id: Some(message_id.to_string()),
        }))
    }

    /// Moves the clock forward, firing every timer and cron trigger due.
    pub fn advance(&mut self, by: Duration) -> &[Record] {
        let to = self.now + by;
        self.advance_to(to)
    }

    pub fn advance_to(&mut self, to: DateTime<Utc>) -> &[Record] {
        assert!(to >= self.now, "the clock only moves forward");
        let out = self.runtime.advance_to(to).expect("memory store");
        self.now = to;
        let from = self.records.len();
        self.records.extend(out);
        &self.records[from..]
    }

    pub fn pause(&mut self, journey: &str) {
        self.runtime.deployment.paused.insert(journey.to_string());
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Records since the last [`Harness::mark`].
    pub fn records_since_mark(&self) -> &[Record] {
        &self.records[self.mark..]
    }

    pub fn mark(&mut self) {
        self.mark = self.records.len();
    }

    pub fn of_kind(&self, kind: Kind) -> Vec<&Record> {
        self.records.iter().filter(|r| r.kind == kind).collect()
    }

    pub fn for_user(&self, kind: Kind, user: &str) -> Vec<&Record> {
        self.records
            .iter()
            .filter(|r| r.kind == kind && r.user == user)
            .collect()
    }

    pub fn for_journey(&self, kind: Kind, journey: &str) -> Vec<&Record> {
        self.records
            .iter()
            .filter(|r| r.kind == kind && r.journey.as_deref() == Some(journey))
            .collect()
    }

    /// Sends to `user`, as (time, channel, template).
    pub fn sends(&self, user: &str) -> Vec<(DateTime<Utc>, String, Option<String>)> {
        self.for_user(Kind::Send, user)
            .into_iter()
            .map(|r| {
                (
                    r.at,
                    r.channel.clone().unwrap_or_default(),
                    r.template.clone(),
                )
            })
            .collect()
    }

    /// Templates sent to `user`, in order.
    pub fn templates(&self, user: &str) -> Vec<String> {
        self.for_user(Kind::Send, user)
            .into_iter()
            .filter_map(|r| r.template.clone())
            .collect()
    }

    /// Suppression reasons for `user`, in order.
    pub fn suppressions(&self, user: &str) -> Vec<String> {
        self.for_user(Kind::Suppressed, user)
            .into_iter()
            .filter_map(|r| r.reason.clone())
            .collect()
    }

    /// Reasons entries of `user` were refused (`skipped`), in order.
    pub fn skips(&self, user: &str) -> Vec<String> {
        self.for_user(Kind::Skipped, user)
            .into_iter()
            .filter_map(|r| r.reason.clone())
            .collect()
    }

    pub fn errors(&self) -> Vec<&Record> {
        self.of_kind(Kind::Error)
    }

    pub fn user(&self, id: &str) -> UserState {
        self.runtime
            .store
            .user(id)
            .expect("memory store")
            .unwrap_or_else(|| panic!("no user {id}"))
    }

    pub fn trait_of(&self, user: &str, key: &str) -> Option<Value> {
        self.user(user).traits.get(key).cloned()
    }

    /// Every record, one per line, for failure messages.
    pub fn dump(&self) -> String {
        self.records
            .iter()
            .map(|r| waymark_engine::testing::describe(r, chrono_tz::UTC))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A memory store whose writes take `delay`, and fail while `failing` is
/// set: for what a slow or broken disk does to commits.
#[derive(Clone, Default)]
pub struct TestKv {
    pub inner: MemoryKv,
    pub failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub delay: std::time::Duration,
    /// Batches applied and flushes made, so far.
    pub applies: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub flushes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// If not 0, the apply of this number (counting from 1) fails.
    pub fail_apply: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Every key put by an applied batch, in order.
    pub written: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    /// How long each flush takes, and, if not 0, the number of the flush
    /// (counting from 1) that fails.
    pub flush_delay: std::time::Duration,
    pub fail_flush: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Kv for TestKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        std::thread::sleep(self.delay);
        let n = 1 + self
            .applies
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.failing.load(std::sync::atomic::Ordering::SeqCst)
            || self.fail_apply.load(std::sync::atomic::Ordering::SeqCst) == n
        {
            return Err(StoreError::Backend("disk full".into()));
        }
        self.written
            .lock()
            .expect("no panics while holding the lock")
            .extend(ops.iter().filter_map(|op| match op {
                Op::Put(k, _) => Some(k.clone()),
                Op::Delete(_) => None,
            }));
        self.inner.apply(ops)
    }
    fn range(
        &self,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.inner.range(from, to, limit)
    }
    fn flush(&self) -> Result<(), StoreError> {
        std::thread::sleep(self.flush_delay);
        let n = 1 + self
            .flushes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.fail_flush.load(std::sync::atomic::Ordering::SeqCst) == n {
            return Err(StoreError::Backend("flush failed: I/O error".into()));
        }
        self.inner.flush()
    }

    fn keys(&self) -> &dyn waymark_engine::store::sealed::KeyTable {
        self.inner.keys()
    }
}

/// Opens the sled store at `path` that a dropped runtime or store just
/// closed: sled's own threads may hold its file lock a moment after the
/// drop.
pub fn reopen_sled(path: &std::path::Path) -> waymark_engine::store::SledKv {
    for _ in 0..100 {
        match waymark_engine::store::SledKv::open(path) {
            Ok(kv) => return kv,
            Err(StoreError::InUse { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("{} stayed locked", path.display())
}
