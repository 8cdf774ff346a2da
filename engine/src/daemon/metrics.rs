//! Telemetry in one place: one function per event that both logs (through
//! `tracing`) and counts, and the Prometheus text rendering of the counts.

use crate::journal::{Kind, Record};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static INPUTS: AtomicU64 = AtomicU64::new(0);
static COMMITS: AtomicU64 = AtomicU64::new(0);
static COMMIT_MICROS: AtomicU64 = AtomicU64::new(0);
/// Commit latency buckets (upper bounds in ms) and counts.
const BUCKETS_MS: [u64; 8] = [1, 2, 5, 10, 25, 50, 100, 500];
static COMMIT_BUCKETS: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];
static RECORDS: Mutex<BTreeMap<(String, String), u64>> = Mutex::new(BTreeMap::new());
static DELIVERIES: Mutex<BTreeMap<(String, String), u64>> = Mutex::new(BTreeMap::new());
static TIMER_LAG_MS: AtomicU64 = AtomicU64::new(0);
static UNSUPPORTED: Mutex<BTreeMap<(String, String), u64>> = Mutex::new(BTreeMap::new());
static REFUSED_ITEMS: AtomicU64 = AtomicU64::new(0);

fn bump(map: &Mutex<BTreeMap<(String, String), u64>>, a: &str, b: &str) {
    if let Ok(mut m) = map.lock() {
        *m.entry((a.to_string(), b.to_string())).or_default() += 1;
    }
}

/// A batch committed and flushed.
pub fn commit(took: Duration, inputs: usize) {
    INPUTS.fetch_add(inputs as u64, Ordering::Relaxed);
    COMMITS.fetch_add(1, Ordering::Relaxed);
    COMMIT_MICROS.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    let ms = took.as_millis() as u64;
    let bucket = BUCKETS_MS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(BUCKETS_MS.len());
    COMMIT_BUCKETS[bucket].fetch_add(1, Ordering::Relaxed);
    tracing::debug!(inputs, took_us = took.as_micros() as u64, "batch committed");
}

/// Journal records of a batch: counted by kind (suppressions by reason).
pub fn records(records: &[Record]) {
    for r in records {
        let label = match r.kind {
            Kind::Suppressed => format!("suppressed:{}", r.reason.as_deref().unwrap_or("")),
            k => k.as_str().to_string(),
        };
        bump(&RECORDS, &label, r.journey.as_deref().unwrap_or(""));
        if r.kind == Kind::Error {
            tracing::warn!(user = %r.user, journey = ?r.journey, step = ?r.step, message = ?r.message, "runtime error in a script");
        }
    }
}

/// A delivery attempt ended.
pub fn delivery(channel: &str, outcome: &str) {
    bump(&DELIVERIES, channel, outcome);
}

/// A Segment message taken but not acted on (`alias`, until identity
/// merge lands): logged and counted by type.
pub fn unsupported(kind: &str, user: &str) {
    tracing::info!(
        kind,
        user,
        "Segment message taken but not acted on (not supported yet)"
    );
    bump(&UNSUPPORTED, kind, "");
}

/// Batch items refused while the others were taken.
pub fn refused_items(n: usize) {
    REFUSED_ITEMS.fetch_add(n as u64, Ordering::Relaxed);
}

/// How late the oldest due timer fired.
pub fn timer_lag(lag: Duration) {
    TIMER_LAG_MS.store(lag.as_millis() as u64, Ordering::Relaxed);
}

/// Prometheus text exposition format.
pub fn render(outbox_depth: usize, dead_letters: usize) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line("# HELP waymark_ingested_inputs_total Events and identifies committed.".into());
    line("# TYPE waymark_ingested_inputs_total counter".into());
    line(format!(
        "waymark_ingested_inputs_total {}",
        INPUTS.load(Ordering::Relaxed)
    ));
    line("# HELP waymark_commit_seconds Latency of a batch commit including its flush.".into());
    line("# TYPE waymark_commit_seconds histogram".into());
    let mut cumulative = 0;
    for (i, bound) in BUCKETS_MS.iter().enumerate() {
        cumulative += COMMIT_BUCKETS[i].load(Ordering::Relaxed);
        line(format!(
            "waymark_commit_seconds_bucket{{le=\"{}\"}} {cumulative}",
            *bound as f64 / 1000.0
        ));
    }
    cumulative += COMMIT_BUCKETS[BUCKETS_MS.len()].load(Ordering::Relaxed);
    line(format!(
        "waymark_commit_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    ));
    line(format!(
        "waymark_commit_seconds_sum {}",
        COMMIT_MICROS.load(Ordering::Relaxed) as f64 / 1e6
    ));
    line(format!(
        "waymark_commit_seconds_count {}",
        COMMITS.load(Ordering::Relaxed)
    ));
    line("# HELP waymark_timer_lag_seconds How late the last due timers fired.".into());
    line("# TYPE waymark_timer_lag_seconds gauge".into());
    line(format!(
        "waymark_timer_lag_seconds {}",
        TIMER_LAG_MS.load(Ordering::Relaxed) as f64 / 1000.0
    ));
    line("# HELP waymark_outbox_depth Sends waiting for delivery.".into());
    line("# TYPE waymark_outbox_depth gauge".into());
    line(format!("waymark_outbox_depth {outbox_depth}"));
    line("# HELP waymark_dead_letters Sends given up on.".into());
    line("# TYPE waymark_dead_letters gauge".into());
    line(format!("waymark_dead_letters {dead_letters}"));
    line("# HELP waymark_deliveries_total Delivery attempts by channel and outcome.".into());
    line("# TYPE waymark_deliveries_total counter".into());
    if let Ok(m) = DELIVERIES.lock() {
        for ((channel, outcome), n) in m.iter() {
            line(format!(
                "waymark_deliveries_total{{channel=\"{}\",outcome=\"{}\"}} {n}",
                escape(channel),
                escape(outcome)
            ));
        }
    }
    line("# HELP waymark_unsupported_messages_total Segment messages taken but not acted on, by type.".into());
    line("# TYPE waymark_unsupported_messages_total counter".into());
    if let Ok(m) = UNSUPPORTED.lock() {
        for ((kind, _), n) in m.iter() {
            line(format!(
                "waymark_unsupported_messages_total{{type=\"{}\"}} {n}",
                escape(kind)
            ));
        }
    }
    line("# HELP waymark_refused_batch_items_total Batch items refused while the rest of their batch was taken.".into());
    line("# TYPE waymark_refused_batch_items_total counter".into());
    line(format!(
        "waymark_refused_batch_items_total {}",
        REFUSED_ITEMS.load(Ordering::Relaxed)
    ));
    line("# HELP waymark_records_total Journal records by kind (suppressions by reason) and journey.".into());
    line("# TYPE waymark_records_total counter".into());
    if let Ok(m) = RECORDS.lock() {
        for ((kind, journey), n) in m.iter() {
            let (kind, reason) = kind.split_once(':').unwrap_or((kind, ""));
            line(format!(
                "waymark_records_total{{kind=\"{}\",reason=\"{}\",journey=\"{}\"}} {n}",
                escape(kind),
                escape(reason),
                escape(journey)
            ));
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
