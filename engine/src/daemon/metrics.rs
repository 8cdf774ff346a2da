//! Telemetry in one place: one function per event that both logs (through
//! `tracing`) and counts, and the Prometheus text rendering of the counts.
//! Every sample of a family has the same label names, and a label whose
//! value would be empty (a record of no journey, a send on no channel) is
//! written as `(none)`, never as `label=""`; every family has its HELP and
//! TYPE even before it has a sample.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;
use waymark_core::journal::{Kind, Record};

/// Latency buckets, in seconds.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Batch size buckets, in inputs.
const INPUTS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0,
];

/// A family: its name, type, help, and buckets if a histogram.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    buckets: &'static [f64],
}

const FAMILIES: &[Family] = &[
    Family {
        name: "waymark_build_info",
        kind: "gauge",
        help: "1, labelled with the version of this waymark.",
        buckets: &[],
    },
    Family {
        name: "waymark_ingested_inputs_total",
        kind: "counter",
        help: "Events and identifies committed, duplicates not counted.",
        buckets: &[],
    },
    Family {
        name: "waymark_duplicate_inputs_total",
        kind: "counter",
        help: "Events and identifies dropped as duplicates of a message id already taken.",
        buckets: &[],
    },
    Family {
        name: "waymark_callback_pushes_total",
        kind: "counter",
        help: "Pushes from WeCom and official accounts, by platform, app and outcome: taken (an event kept, or a redelivery dropped), ignored (nothing to keep), refused (signature, body), unavailable (not durable in time).",
        buckets: &[],
    },
    Family {
        name: "waymark_staff_outcomes_total",
        kind: "counter",
        help: "Sends a staff member confirms (WeCom customer mass sends), by channel and outcome: sent, not_friend, over_quota, not_confirmed, failed.",
        buckets: &[],
    },
    Family {
        name: "waymark_staff_tasks",
        kind: "gauge",
        help: "Staff tasks (WeCom customer mass sends) forming, being made or waiting for their staff member.",
        buckets: &[],
    },
    Family {
        name: "waymark_staff_task_sends",
        kind: "gauge",
        help: "Sends in staff tasks whose outcome is not known yet.",
        buckets: &[],
    },
    Family {
        name: "waymark_staff_task_calls_total",
        kind: "counter",
        help: "Calls of staff-task channels to their platform, by channel, call (create, find, results, remind, cancel) and outcome (ok, retry, quota, failed).",
        buckets: &[],
    },
    Family {
        name: "waymark_commit_seconds",
        kind: "histogram",
        help: "Latency of the writer's batch commits, flush included.",
        buckets: SECONDS,
    },
    Family {
        name: "waymark_batch_inputs",
        kind: "histogram",
        help: "Inputs per batch the writer commits.",
        buckets: INPUTS,
    },
    Family {
        name: "waymark_http_requests_total",
        kind: "counter",
        help: "HTTP requests by route (the route's template, not the path), method and status.",
        buckets: &[],
    },
    Family {
        name: "waymark_http_request_seconds",
        kind: "histogram",
        help: "HTTP request latency by route, until the answer's head.",
        buckets: SECONDS,
    },
    Family {
        name: "waymark_deliveries_total",
        kind: "counter",
        help: "Delivery attempts by channel and outcome (delivered, retry, dead).",
        buckets: &[],
    },
    Family {
        name: "waymark_delivery_seconds",
        kind: "histogram",
        help: "Latency of delivery attempts by channel.",
        buckets: SECONDS,
    },
    Family {
        name: "waymark_records_total",
        kind: "counter",
        help: "Journal records by kind and journey (or rule or task), however made: events, timers, deploys, resumes.",
        buckets: &[],
    },
    Family {
        name: "waymark_record_reasons_total",
        kind: "counter",
        help: "Journal records that give a reason (suppressed, exit, deferred) by kind, reason and journey.",
        buckets: &[],
    },
    Family {
        name: "waymark_timer_lag_seconds",
        kind: "gauge",
        help: "How late the last due timers fired.",
        buckets: &[],
    },
    Family {
        name: "waymark_outbox_depth",
        kind: "gauge",
        help: "Sends waiting for delivery.",
        buckets: &[],
    },
    Family {
        name: "waymark_pending_timers",
        kind: "gauge",
        help: "Users with a timer pending.",
        buckets: &[],
    },
    Family {
        name: "waymark_sends_paused",
        kind: "gauge",
        help: "1 while an operator's global pause holds (or drops) every non-transactional send, else 0.",
        buckets: &[],
    },
    Family {
        name: "waymark_dead_letters",
        kind: "gauge",
        help: "Sends given up on, by channel.",
        buckets: &[],
    },
    Family {
        name: "waymark_failed_sends_total",
        kind: "counter",
        help: "Sends given up on (journaled as failed), by journey and channel.",
        buckets: &[],
    },
    Family {
        name: "waymark_profile_merges_total",
        kind: "counter",
        help: "Profiles merged into another of the same person, by how they were found to be one (identify, alias, identifier:NAME).",
        buckets: &[],
    },
    Family {
        name: "waymark_unsupported_messages_total",
        kind: "counter",
        help: "Segment messages taken but not acted on, by type.",
        buckets: &[],
    },
    Family {
        name: "waymark_refused_batch_items_total",
        kind: "counter",
        help: "Batch items refused while the rest of their batch was taken.",
        buckets: &[],
    },
    Family {
        name: "waymark_user_cache_users",
        kind: "gauge",
        help: "Users the writer keeps decoded in memory now.",
        buckets: &[],
    },
    Family {
        name: "waymark_user_cache_capacity",
        kind: "gauge",
        help: "The most users the writer keeps decoded (user_cache).",
        buckets: &[],
    },
    Family {
        name: "waymark_store_write_buffer_bytes",
        kind: "gauge",
        help: "Writes logged and held in memory, not yet in the store's files.",
        buckets: &[],
    },
    Family {
        name: "waymark_store_write_buffer_capacity_bytes",
        kind: "gauge",
        help: "The bound of the store's write buffer (store_write_buffer_bytes); up to twice it is held while one is written out.",
        buckets: &[],
    },
    Family {
        name: "waymark_store_cache_bytes",
        kind: "gauge",
        help: "The bound of the store's page cache in memory (store_cache_bytes).",
        buckets: &[],
    },
    Family {
        name: "waymark_dedup_filter_bytes",
        kind: "gauge",
        help: "Memory the message-id filters take now.",
        buckets: &[],
    },
    Family {
        name: "waymark_dedup_filter_capacity_bytes",
        kind: "gauge",
        help: "The most memory the message-id filters take (dedup_filter_bytes).",
        buckets: &[],
    },
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    /// Counters and gauges by family and labels.
    values: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    values: BTreeMap::new(),
    histograms: BTreeMap::new(),
});

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    f(&mut REGISTRY.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Labels, an empty value written as `(none)`.
fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (*k, if v.is_empty() { "(none)" } else { v }.to_string()))
        .collect()
}

fn add(name: &'static str, pairs: &[(&'static str, &str)], by: f64) {
    with(|r| *r.values.entry((name, labels(pairs))).or_default() += by);
}

fn set(name: &'static str, pairs: &[(&'static str, &str)], value: f64) {
    with(|r| {
        r.values.insert((name, labels(pairs)), value);
    });
}

fn observe(name: &'static str, pairs: &[(&'static str, &str)], value: f64) {
    let buckets = FAMILIES
        .iter()
        .find(|f| f.name == name)
        .map_or(&[][..], |f| f.buckets);
    with(|r| {
        let h = r.histograms.entry((name, labels(pairs))).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; buckets.len()];
        }
        if let Some(i) = buckets.iter().position(|b| value <= *b) {
            h.counts[i] += 1;
        }
        h.sum += value;
        h.count += 1;
    });
}

/// A batch committed and flushed: `inputs` were taken (duplicates not among them).
pub fn commit(took: Duration, inputs: usize) {
    add("waymark_ingested_inputs_total", &[], inputs as f64);
    observe("waymark_commit_seconds", &[], took.as_secs_f64());
    observe("waymark_batch_inputs", &[], inputs as f64);
    tracing::debug!(inputs, took_us = took.as_micros() as u64, "batch committed");
}

/// An input dropped as a duplicate of a message id already taken.
pub fn duplicates(n: usize) {
    if n > 0 {
        add("waymark_duplicate_inputs_total", &[], n as f64);
    }
}

/// Journal records, however made (ingest, timers, deploy, resume): counted
/// by kind, reason and journey.
pub fn records(records: &[Record]) {
    for r in records {
        let journey = r.journey.as_deref().unwrap_or("");
        add(
            "waymark_records_total",
            &[("kind", r.kind.as_str()), ("journey", journey)],
            1.0,
        );
        if let Some(reason) = r.reason.as_deref().filter(|r| !r.is_empty()) {
            add(
                "waymark_record_reasons_total",
                &[
                    ("kind", r.kind.as_str()),
                    ("reason", reason),
                    ("journey", journey),
                ],
                1.0,
            );
        }
        if r.kind == Kind::Merged {
            let how = r.reason.as_deref().unwrap_or("");
            add("waymark_profile_merges_total", &[("how", how)], 1.0);
            tracing::info!(user = %r.user, merged = r.merged.as_deref().unwrap_or(""), how, "profiles merged");
        }
        if r.kind == Kind::Failed {
            add(
                "waymark_failed_sends_total",
                &[
                    ("journey", journey),
                    ("channel", r.channel.as_deref().unwrap_or("")),
                ],
                1.0,
            );
        }
        if r.kind == Kind::Error {
            tracing::warn!(user = %r.user, journey = ?r.journey, step = ?r.step, message = ?r.message, "runtime error in a script");
        }
    }
}

/// A Segment message taken but not acted on (`alias`, until identity
/// merge lands).
pub fn unsupported(kind: &str, user: &str) {
    add("waymark_unsupported_messages_total", &[("type", kind)], 1.0);
    tracing::info!(user, kind, "Segment message taken but not acted on");
}

/// Batch items refused while the rest of their batch was taken.
pub fn refused_items(n: usize) {
    add("waymark_refused_batch_items_total", &[], n as f64);
}

/// A push to a callback route ended with `outcome`.
pub fn callback(platform: &str, app: &str, outcome: &str) {
    add(
        "waymark_callback_pushes_total",
        &[("platform", platform), ("app", app), ("outcome", outcome)],
        1.0,
    );
}

/// A staff-confirmed send ended with `outcome`.
pub fn staff_outcome(channel: &str, outcome: &str) {
    add(
        "waymark_staff_outcomes_total",
        &[("channel", channel), ("outcome", outcome)],
        1.0,
    );
}

/// A staff-task call to the platform ended with `outcome`.
pub fn staff_task_call(channel: &str, call: &str, outcome: &str) {
    add(
        "waymark_staff_task_calls_total",
        &[("channel", channel), ("call", call), ("outcome", outcome)],
        1.0,
    );
}

/// A delivery attempt ended with `outcome` after `took`.
pub fn delivery(channel: &str, outcome: &str, took: Duration) {
    add(
        "waymark_deliveries_total",
        &[("channel", channel), ("outcome", outcome)],
        1.0,
    );
    observe(
        "waymark_delivery_seconds",
        &[("channel", channel)],
        took.as_secs_f64(),
    );
}

/// An HTTP request was answered; `route` is the matched route's template.
pub fn http_request(route: &str, method: &str, status: u16, took: Duration) {
    let status = status.to_string();
    add(
        "waymark_http_requests_total",
        &[("route", route), ("method", method), ("status", &status)],
        1.0,
    );
    observe(
        "waymark_http_request_seconds",
        &[("route", route)],
        took.as_secs_f64(),
    );
}

/// How many users the writer keeps decoded, and the most it keeps.
pub fn user_cache(users: usize, capacity: usize) {
    set("waymark_user_cache_users", &[], users as f64);
    set("waymark_user_cache_capacity", &[], capacity as f64);
}

/// The memory the message-id filters take, and the most they take.
pub fn dedup_filters(bytes: usize, capacity: usize) {
    set("waymark_dedup_filter_bytes", &[], bytes as f64);
    set("waymark_dedup_filter_capacity_bytes", &[], capacity as f64);
}

/// The writes held in the store's write buffers, and its bound.
pub fn write_buffer(bytes: usize, capacity: usize) {
    set("waymark_store_write_buffer_bytes", &[], bytes as f64);
    set(
        "waymark_store_write_buffer_capacity_bytes",
        &[],
        capacity as f64,
    );
}

/// The bound of the store's page cache.
pub fn store_cache(bytes: u64) {
    set("waymark_store_cache_bytes", &[], bytes as f64);
}

/// How late the oldest due timer fired.
pub fn timer_lag(lag: Duration) {
    set("waymark_timer_lag_seconds", &[], lag.as_secs_f64());
}

/// What the store holds right now, read when `/metrics` is scraped.
#[derive(Debug, Default)]
pub struct Gauges {
    pub outbox_depth: usize,
    /// Staff tasks pending, and the sends in them.
    pub staff_tasks: (usize, usize),
    pub pending_timers: usize,
    pub dead_letters: BTreeMap<String, usize>,
    pub sends_paused: bool,
}

/// Prometheus text exposition format (version 0.0.4).
pub fn render(gauges: &Gauges) -> String {
    set(
        "waymark_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    set("waymark_outbox_depth", &[], gauges.outbox_depth as f64);
    set("waymark_pending_timers", &[], gauges.pending_timers as f64);
    set("waymark_staff_tasks", &[], gauges.staff_tasks.0 as f64);
    set("waymark_staff_task_sends", &[], gauges.staff_tasks.1 as f64);
    set(
        "waymark_sends_paused",
        &[],
        f64::from(u8::from(gauges.sends_paused)),
    );
    with(|r| {
        r.values
            .retain(|(name, _), _| *name != "waymark_dead_letters");
        for (channel, n) in &gauges.dead_letters {
            r.values.insert(
                ("waymark_dead_letters", labels(&[("channel", channel)])),
                *n as f64,
            );
        }
    });
    let mut out = String::new();
    with(|r| {
        for family in FAMILIES {
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
            for ((name, labels), value) in r.values.range((family.name, Vec::new())..) {
                if *name != family.name {
                    break;
                }
                let _ = writeln!(
                    out,
                    "{}{} {}",
                    family.name,
                    text(labels, None),
                    number(*value)
                );
            }
            for ((name, labels), h) in r.histograms.range((family.name, Vec::new())..) {
                if *name != family.name {
                    break;
                }
                let mut cumulative = 0;
                for (i, bound) in family.buckets.iter().enumerate() {
                    cumulative += h.counts.get(i).copied().unwrap_or(0);
                    let _ = writeln!(
                        out,
                        "{}_bucket{} {cumulative}",
                        family.name,
                        text(labels, Some(&number(*bound)))
                    );
                }
                let _ = writeln!(
                    out,
                    "{}_bucket{} {}",
                    family.name,
                    text(labels, Some("+Inf")),
                    h.count
                );
                let _ = writeln!(
                    out,
                    "{}_sum{} {}",
                    family.name,
                    text(labels, None),
                    number(h.sum)
                );
                let _ = writeln!(
                    out,
                    "{}_count{} {}",
                    family.name,
                    text(labels, None),
                    h.count
                );
            }
        }
    });
    out
}

fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// `{a="x",b="y"}` (with `le` last for buckets), or nothing without labels.
fn text(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
