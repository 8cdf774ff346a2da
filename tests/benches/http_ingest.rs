//! HTTP ingest, end to end over loopback: the real `waymark` daemon (a
//! release build) with the example journeys, a fresh data directory and
//! the default 2 ms flush interval, measured from outside as an SDK sees
//! it:
//!
//! - **batch**: events per second through `/v1/batch`, batches of 100
//!   Segment-shaped events, from 1, 4 and 16 keep-alive connections that
//!   each send their next batch as soon as the last one is acknowledged;
//! - **track**: latency of single `/v1/track` calls offered open-loop at
//!   fixed rates: call `i` is due at `start + i / rate`, and its latency
//!   is counted from that moment, not from when it was sent, so a daemon
//!   that falls behind shows its queue (no coordinated omission). One
//!   thread runs 256 keep-alive connections as an event loop, each taking
//!   the next call due; the daemon's own latency of those calls (from its
//!   `/metrics`) is printed beside them.
//!
//! - **rules**: the 20-rule workload of `cargo bench -p waymark-engine
//!   --bench simulate` (100k members, 1M events, dated to end 10 days ago
//!   so that the rules' 365-day sums hold on the wall clock) through a
//!   fresh daemon with those rules only, as `/v1/batch` calls: the
//!   members' identify calls, then the events, on one connection of 500
//!   events a call and again on 16 of 100. Every call is answered once
//!   its commit is durable; the `emit` records in `/metrics` are checked
//!   against the 20 counts of the same rules in plain Rust (with one
//!   connection; 16 may apply a member's events out of order). The rate
//!   the peers comparison measures, without the peers.
//!
//! `cargo bench -p waymark-tests --bench http_ingest` runs it in full;
//! under `cargo test` (no `--bench` argument) a short smoke run checks
//! that it works. `WAYMARK_BENCH_SECONDS=N` sets each phase's length,
//! `WAYMARK_BENCH_RATES=100,500,…` the offered `/v1/track` rates,
//! `WAYMARK_BENCH_CONNECTIONS=1,4,…` the `/v1/batch` connection counts
//! (either empty: no rows of that kind), `WAYMARK_BENCH_RULES_EVENTS=N`
//! the events of the rules workload (members a tenth of them; 0: none),
//! `WAYMARK_BENCH_DATA_DIR` the
//! daemon's data directory (a fresh one in the bench's scratch folder by
//! default; a new or empty one on another disk, or on tmpfs, tells what
//! the disk costs).

#[path = "../../engine/benches/workload/mod.rs"]
mod workload;

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use waymark_core::mix::Rng;
use waymark_tests::{Client, free_port, http, root, scratch, start_daemon};

const BATCH: usize = 100;
const USERS: u64 = 10_000;
const TRACK_CONNECTIONS: usize = 256;

/// Unique message ids across every thread of the run.
static MESSAGES: AtomicU64 = AtomicU64::new(0);

/// One Segment message: carts, payments, check-ins, sign-ups, profiles.
fn message(rng: &mut Rng) -> serde_json::Value {
    let r = rng.next_u64();
    let user = format!("user{:05}", r % USERS);
    let id = format!("m{}", MESSAGES.fetch_add(1, Ordering::Relaxed));
    match (r >> 32) % 10 {
        0..=3 => json!({"type": "track", "userId": user, "event": "cart_updated", "messageId": id,
            "properties": {"value": 50 + (r >> 40) % 500, "items": [{"sku": "A1", "qty": 1}]}}),
        4..=5 => json!({"type": "track", "userId": user, "event": "order_paid", "messageId": id,
            "properties": {"amount": 20 + (r >> 40) % 2000, "order_id": id}}),
        6..=7 => json!({"type": "track", "userId": user, "event": "checkin", "messageId": id}),
        8 => json!({"type": "track", "userId": user, "event": "signed_up", "messageId": id}),
        _ => json!({"type": "identify", "userId": user, "messageId": id,
            "traits": {"nickname": "小王", "phone": "13800000000", "birthday": "1990-05-01"}}),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct BatchRow {
    connections: usize,
    events_per_s: f64,
    latencies: Vec<Duration>,
}

/// Closed loop: each connection sends its next batch once the last is acknowledged.
fn batches(port: u16, connections: usize, length: Duration) -> BatchRow {
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            std::thread::spawn(move || {
                let mut rng = Rng::new(0xba7c_0000 + c as u64);
                let mut client = Client::new(port);
                let mut latencies = Vec::new();
                while started.elapsed() < length {
                    let batch: Vec<_> = (0..BATCH).map(|_| message(&mut rng)).collect();
                    let body = json!({ "batch": batch }).to_string();
                    let sent = Instant::now();
                    let (status, answer) = client
                        .request("POST", "/v1/batch", &[], body.as_bytes())
                        .unwrap_or_else(|e| panic!("batch: {e}"));
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    latencies.sort();
    BatchRow {
        connections,
        events_per_s: (latencies.len() * BATCH) as f64 / elapsed.as_secs_f64(),
        latencies,
    }
}

struct TrackRow {
    rate: u64,
    achieved: f64,
    latencies: Vec<Duration>,
    /// Calls sent more than 1 ms after they were due (every connection was busy).
    late: usize,
}

/// Open loop: call `i` is due at `start + i / rate`; latency counts from
/// then. One thread runs every connection as a task of an event loop, and
/// each connection takes the next call not yet taken, so a call waits
/// only if every connection is busy. With a thread per connection (64
/// threads sleeping and waking on the daemon's 2 cores), the daemon
/// answered 99% of calls within 5–10 ms while the calls measured a p99
/// of 11–19 ms, and a call waited behind a slow one on the connection
/// fixed for it. The event loop's timer
/// wakes a call up to 1 ms after it is due, and that counts against the
/// daemon.
fn tracks(port: u16, rate: u64, length: Duration) -> TrackRow {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the load");
    let calls = (rate as f64 * length.as_secs_f64()) as u64;
    let late = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let (mut latencies, start): (Vec<Duration>, _) = runtime.block_on(async {
        let start = tokio::time::Instant::now() + Duration::from_millis(100);
        let connections: Vec<_> = (0..TRACK_CONNECTIONS)
            .map(|c| {
                let (late, next) = (late.clone(), next.clone());
                tokio::spawn(async move {
                    let mut rng = Rng::new(0x7ac0_0000 + rate * 1000 + c as u64);
                    let mut connection = Connection::open(port).await;
                    let mut latencies = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= calls {
                            break;
                        }
                        let body = message(&mut rng).to_string();
                        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                        let now = tokio::time::Instant::now();
                        if now < due {
                            tokio::time::sleep_until(due).await;
                        } else if now - due > Duration::from_millis(1) {
                            late.fetch_add(1, Ordering::Relaxed);
                        }
                        let path = if body.contains("\"identify\"") {
                            "/v1/identify"
                        } else {
                            "/v1/track"
                        };
                        let (status, answer) = connection.post(path, &body).await;
                        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
                        latencies.push(due.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for connection in connections {
            latencies.extend(connection.await.expect("a connection's calls"));
        }
        (latencies, start)
    });
    let elapsed = start.elapsed();
    latencies.sort();
    TrackRow {
        rate,
        achieved: latencies.len() as f64 / elapsed.as_secs_f64(),
        late: late.load(Ordering::Relaxed) as usize,
        latencies,
    }
}

/// One keep-alive connection of the open-loop load: a request is written
/// at once (head and body in one write), its answer read by its
/// `Content-Length`.
struct Connection {
    stream: tokio::net::TcpStream,
    read: Vec<u8>,
}

impl Connection {
    async fn open(port: u16) -> Connection {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("connecting to the daemon: {e}"));
        stream.set_nodelay(true).expect("TCP_NODELAY");
        Connection {
            stream,
            read: Vec::with_capacity(4096),
        }
    }

    /// Posts `body` to `path`: the answer's status and body.
    async fn post(&mut self, path: &str, body: &str) -> (u16, Vec<u8>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream
            .write_all(request.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        self.read.clear();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((status, head, length)) = answer_head(&self.read)
                && self.read.len() >= head + length
            {
                return (status, self.read[head..head + length].to_vec());
            }
            let n = self.stream.read(&mut chunk).await.expect("an answer");
            assert!(n > 0, "{path}: the daemon closed the connection");
            self.read.extend_from_slice(&chunk[..n]);
        }
    }
}

/// An answer's status, the length of its head and its `Content-Length`,
/// once `read` holds the whole head.
fn answer_head(read: &[u8]) -> Option<(u16, usize, usize)> {
    let end = read.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&read[..end]).expect("an answer's head is text");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .expect("a Content-Length");
    Some((status, end, length))
}

struct RulesRow {
    connections: usize,
    per_call: usize,
    events_per_s: f64,
    emits: u64,
    peak_rss: u64,
}

/// The rules workload through a fresh daemon: identify calls, then
/// events, as `/v1/batch` calls of `per_call` on `connections`.
fn rules(w: &workload::Workload, connections: usize, per_call: usize) -> RulesRow {
    let dir = scratch(&format!("bench_http_rules_{connections}"));
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(dir.join("scripts/rules.journey"), workload::RULES).unwrap();
    std::fs::write(
        dir.join("waymark.toml"),
        "data_dir = \"./data\"\nscripts = \"./scripts\"\n\n[log]\nlevel = \"warn\"\n",
    )
    .unwrap();
    let port = free_port();
    let mut daemon = start_daemon(&dir, port, &dir.join("daemon.log"));
    let peak = workload::watch_peak_rss(daemon.id());
    let file = dir.join("traffic.jsonl");
    w.write(&file).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let members = w.tiers.len();
    let calls = |lines: &[&str], per_call: usize| -> Vec<String> {
        lines
            .chunks(per_call)
            .map(|c| format!("{{\"batch\":[{}]}}", c.join(",")))
            .collect()
    };
    post_all(port, &calls(&lines[..members], 500), 1);
    let events = calls(&lines[members..], per_call);
    let started = Instant::now();
    post_all(port, &events, connections);
    let seconds = started.elapsed().as_secs_f64();
    let (status, metrics) = http(port, "GET", "/metrics", "");
    assert_eq!(status, 200);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let peak_rss = peak.join().unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    RulesRow {
        connections,
        per_call,
        events_per_s: (lines.len() - members) as f64 / seconds,
        emits: emits(&metrics),
        peak_rss,
    }
}

/// Posts every body to `/v1/batch` from `connections` keep-alive
/// connections, each taking the next body once its last is answered.
fn post_all(port: u16, bodies: &[String], connections: usize) {
    let next = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for _ in 0..connections {
            let next = next.clone();
            s.spawn(move || {
                let mut client = Client::new(port);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(body) = bodies.get(i) else { return };
                    let (status, answer) = client
                        .request("POST", "/v1/batch", &[], body.as_bytes())
                        .unwrap_or_else(|e| panic!("batch: {e}"));
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
                }
            });
        }
    });
}

/// The `emit` records the daemon journaled, from its `/metrics`.
fn emits(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.contains("records_total{") && l.contains("kind=\"emit\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let seconds: u64 = std::env::var("WAYMARK_BENCH_SECONDS")
        .ok()
        .map_or(if full { 10 } else { 1 }, |s| s.parse().unwrap());
    let length = Duration::from_secs(seconds);
    let dir = scratch("bench_http_ingest");
    let scripts = root().join("examples/journeys");
    std::fs::write(
        dir.join("waymark.toml"),
        format!(
            "data_dir = \"{}\"\nscripts = \"{}\"\n\n[log]\nlevel = \"warn\"\n",
            std::env::var("WAYMARK_BENCH_DATA_DIR").unwrap_or_else(|_| "./data".into()),
            scripts.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut daemon = start_daemon(&dir, port, &dir.join("daemon.log"));
    let connections: Vec<usize> = match std::env::var("WAYMARK_BENCH_CONNECTIONS") {
        Ok(list) => numbers("WAYMARK_BENCH_CONNECTIONS", &list),
        Err(_) if full => vec![1, 4, 16],
        Err(_) => vec![2],
    };
    let rates: Vec<u64> = match std::env::var("WAYMARK_BENCH_RATES") {
        Ok(list) => numbers("WAYMARK_BENCH_RATES", &list),
        Err(_) if full => vec![100, 500, 1000],
        Err(_) => vec![50],
    };

    // Warm up: every user exists, sled's cache holds them.
    batches(port, 4, length.min(Duration::from_secs(3)));
    let batch_rows: Vec<BatchRow> = connections
        .iter()
        .map(|&c| batches(port, c, length))
        .collect();
    let track_rows: Vec<TrackRow> = rates.iter().map(|&r| tracks(port, r, length)).collect();
    let (status, metrics) = http(port, "GET", "/metrics", "");
    assert_eq!(status, 200);
    daemon.kill().unwrap();
    daemon.wait().unwrap();

    let rules_events = std::env::var("WAYMARK_BENCH_RULES_EVENTS")
        .ok()
        .map_or(if full { 1_000_000 } else { 20_000 }, |n| {
            n.parse().expect("WAYMARK_BENCH_RULES_EVENTS is a number")
        });
    let mut rules_rows = Vec::new();
    let mut expected = 0;
    if rules_events > 0 {
        let start = chrono::Utc::now() - chrono::Duration::days(40);
        let w = workload::generate((rules_events / 10).max(1), rules_events, 20251122, start);
        expected = workload::reference_counts(&w).iter().sum::<u64>();
        for (connections, per_call) in [(1, 500), (16, 100)] {
            let row = rules(&w, connections, per_call);
            if connections == 1 {
                assert_eq!(
                    row.emits, expected,
                    "the daemon's rules fired as the same rules in plain Rust"
                );
            }
            rules_rows.push(row);
        }
    }

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\nHTTP ingest over loopback: {} daemon, example journeys, {USERS} users, \
         flush interval 2 ms, {cores} cores, {seconds} s per row\n",
        if cfg!(debug_assertions) {
            "debug (smoke run)"
        } else {
            "release"
        }
    );
    println!("/v1/batch ({BATCH} events per call, closed loop)");
    println!("| connections | events/s | batch p50 ms | batch p99 ms | batch max ms |");
    println!("|---:|---:|---:|---:|---:|");
    for row in &batch_rows {
        let l = &row.latencies;
        println!(
            "| {} | {:.0} | {} | {} | {} |",
            row.connections,
            row.events_per_s,
            ms(percentile(l, 50.0)),
            ms(percentile(l, 99.0)),
            ms(*l.last().unwrap_or(&Duration::ZERO)),
        );
    }
    println!(
        "\n/v1/track (open loop, latency from the scheduled time, {TRACK_CONNECTIONS} connections)"
    );
    println!(
        "| offered/s | achieved/s | calls | p50 ms | p99 ms | p99.9 ms | max ms | sent late |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &track_rows {
        let l = &row.latencies;
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            row.rate,
            row.achieved,
            l.len(),
            ms(percentile(l, 50.0)),
            ms(percentile(l, 99.0)),
            ms(percentile(l, 99.9)),
            ms(*l.last().unwrap_or(&Duration::ZERO)),
            row.late,
        );
    }
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    };
    let (inputs, commits) = (
        metric("waymark_ingested_inputs_total"),
        metric("waymark_commit_seconds_count"),
    );
    println!(
        "\ngroup commit: {inputs} inputs in {commits} commits ({:.1} per commit, {:.2} ms per commit on average)",
        inputs / commits.max(1.0),
        1000.0 * metric("waymark_commit_seconds_sum") / commits.max(1.0),
    );
    // Where the slow commits are: the histogram's buckets, as counts.
    let buckets: Vec<String> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("waymark_commit_seconds_bucket{le=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(le, n)| format!("≤{le}s: {n}"))
        .collect();
    println!("commits by duration (cumulative): {}", buckets.join(", "));
    // The daemon's own view of /v1/track, from a request's head read to
    // its answer's head: what the latencies above add is the client's
    // and the kernel's (scheduling, loopback).
    let track: Vec<String> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("waymark_http_request_seconds_bucket{"))
        .filter(|l| l.contains("route=\"/v1/track\""))
        .filter_map(|l| l.split_once("le=\"")?.1.split_once("\"} "))
        .map(|(le, n)| format!("≤{le}s: {n}"))
        .collect();
    println!(
        "/v1/track in the daemon by duration (cumulative, whole run): {}",
        track.join(", ")
    );
    if let Some(one) = rules_rows.first() {
        println!(
            "\nThe 20-rule workload through /v1/batch, a fresh daemon each row (events after \
             the members' identify calls; emit records against {expected} in plain Rust)"
        );
        println!(
            "| connections × events a call | events/s | emits | peak RSS MiB | ÷ one connection |"
        );
        println!("|---|---:|---:|---:|---:|");
        for row in &rules_rows {
            println!(
                "| {} × {} | {:.0} | {} | {} | {:.2} |",
                row.connections,
                row.per_call,
                row.events_per_s,
                row.emits,
                row.peak_rss >> 20,
                row.events_per_s / one.events_per_s
            );
        }
    }
}

/// A comma-separated list of numbers from the variable `name` (empty:
/// none, so that part of the bench is skipped); anything else stops the
/// bench saying which variable and which entry.
fn numbers<T: std::str::FromStr>(name: &str, list: &str) -> Vec<T>
where
    T::Err: std::fmt::Display,
{
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            n.parse()
                .unwrap_or_else(|e| panic!("{name}: {n:?} is not a number: {e}"))
        })
        .collect()
}
