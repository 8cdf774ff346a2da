//! Throughput and memory of the durable path, in one run:
//!
//! - **timers**: a million users, each with a pending timer, written
//!   through `Store::commit` in large batches into sled with an explicit
//!   cache; resident memory before and after, and the size on disk; then,
//!   in a fresh process as a restarted daemon would be, the store reopened
//!   and the first 10k timers fired as the daemon's writer fires them
//!   (`Runtime::advance_some`, a few pages a turn), with
//!   that process's resident memory against one that opens an empty store;
//! - **ingest**: events per second through `Runtime::ingest_pipelined`
//!   (as the daemon runs it) and `Runtime::ingest` on sled with a durable
//!   group commit per batch, for a small realistic deployment (cart
//!   recovery, its policy, a check-in task) over 10k users;
//! - **raw**: sled `apply_batch` + `flush` of as many values of the same
//!   size (the mean stored user state) per batch: the ceiling for ingest;
//! - **sustained**: ingest (pipelined) and raw again, each for 1,000
//!   batches back to back, in alternating rounds, with the cores each
//!   used: a daemon under constant load (criterion pauses between samples,
//!   and sled's IO threads catch up in the pauses, outside the timed part);
//! - **replay**: the very writes that ingest made for 100 batches (every
//!   key and value of each commit, recorded), applied to a fresh sled with
//!   the same flushes: what the store layout alone costs, with no engine
//!   work. ingest ÷ replay is the engine's share; replay ÷ raw the layout's.
//!
//! `cargo bench -p waymark-engine --bench ingest` runs it in full; under
//! `cargo test` (no `--bench` argument) it runs a small smoke version.
//! `WAYMARK_BENCH_TIMERS=N` sets how many timers the memory phase makes;
//! `WAYMARK_BENCH_CACHE_MIB=N` sets sled's page cache (64 MiB by default);
//! `WAYMARK_BENCH_USER_CACHE=N` how many users the runtime keeps decoded
//! (its default otherwise; 0 reads and decodes every user every batch);
//! `WAYMARK_BENCH_TURN_PAGES=N` how many pages of timers a turn fires (0:
//! every due timer in one call, `Runtime::advance_to_with`);
//! `WAYMARK_BENCH_FSYNC_MS=N` makes every ingest flush take N ms longer,
//! as on a disk whose fsync is slow; `WAYMARK_BENCH_FIRE=N` how many
//! timers the reopened store fires; `WAYMARK_BENCH_KEEP=1` keeps the
//! timers' store and says how to fire it again (under `perf`, say);
//! `WAYMARK_BENCH_ONLY=timers` runs the timers part only, and
//! `WAYMARK_BENCH_ONLY=sustained` the sustained rounds only: a fixed
//! amount of work, whose CPU per event against CPU per raw insert
//! compares one build with another on a busy machine.

/// The allocator the `waymark` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{deploy, record, rss_kib, status_kib};
use criterion::{Criterion, Throughput};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use waymark_core::deployment::Deployment;
use waymark_core::mix::Rng;
use waymark_core::model::{Event, Input, UserState, Wait};
use waymark_dsl::source::Sources;
use waymark_dsl::value::Value;
use waymark_engine::runtime::Runtime;
use waymark_engine::store::{Batch, Kv, MemoryKv, Op, SledKv, Store, StoreError};

/// Events per `ingest` call (and values per raw batch).
const BATCH: usize = 256;
const USERS: u64 = 10_000;
/// sled's page cache for every store here (sled's default is 1 GiB),
/// unless `WAYMARK_BENCH_CACHE_MIB` says otherwise.
fn cache_bytes() -> u64 {
    std::env::var("WAYMARK_BENCH_CACHE_MIB")
        .ok()
        .map_or(64, |n| n.parse().unwrap())
        << 20
}

const TASK: &str = r#"
task daily_checkin "每日签到" {
  on event checkin
  tz "Asia/Shanghai"
  streak 7 days {
    give points 100 reason "连续签到7天"
  }
  repeatable
}
"#;

struct Sizes {
    timers: u64,
    timer_batch: usize,
    sustained_rounds: usize,
    sustained_batches: usize,
}

fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-11-10T02:00:00Z")
        .unwrap()
        .to_utc()
}

fn deployment() -> Deployment {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/journeys");
    let mut sources = Sources::new();
    for name in ["cart_recovery.journey", "policy.journey"] {
        sources.add(name, std::fs::read_to_string(dir.join(name)).unwrap());
    }
    sources.add("checkin.journey", TASK);
    deploy(sources)
}

/// Segment-like traffic: carts, check-ins, payments, profile updates.
struct Traffic {
    rng: Rng,
    batch: u64,
    message: u64,
}

impl Traffic {
    fn next_batch(&mut self) -> (Vec<Input>, DateTime<Utc>) {
        let now = base() + Duration::seconds(30 * self.batch as i64);
        self.batch += 1;
        let inputs = (0..BATCH)
            .map(|_| {
                let r = self.rng.next_u64();
                let user = format!("user{:05}", r % USERS);
                self.message += 1;
                let message_id = Some(format!("msg-{:012}", self.message));
                let event = |name: &str, properties: Value| {
                    Input::Track(Event {
                        user: user.clone(),
                        name: name.into(),
                        properties,
                        at: now,
                        message_id: message_id.clone(),
                    })
                };
                match (r >> 32) % 100 {
                    0..50 => event(
                        "cart_updated",
                        record(&[
                            ("value", Value::Number((r % 500 + 1).into())),
                            (
                                "items",
                                Value::List(vec![
                                    Value::String(format!("sku-{}", r % 977)),
                                    Value::String(format!("sku-{}", r % 113)),
                                ]),
                            ),
                        ]),
                    ),
                    50..85 => event("checkin", record(&[])),
                    85..95 => event(
                        "order_paid",
                        record(&[
                            ("amount", Value::Number((r % 300 + 1).into())),
                            ("order_id", Value::String(format!("o{}", self.message))),
                        ]),
                    ),
                    _ => Input::Identify {
                        user: user.clone(),
                        traits: record(&[
                            ("nickname", Value::String(format!("顾客{}", r % 1000))),
                            (
                                "consent",
                                record(&[
                                    ("sms", Value::Bool(true)),
                                    ("wechat", Value::Bool(true)),
                                ]),
                            ),
                        ]),
                        at: now,
                        message_id,
                    },
                }
            })
            .collect();
        (inputs, now)
    }
}

fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => disk_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("waymark-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn open(dir: &Path) -> SledKv {
    SledKv::open_with_cache(dir, cache_bytes()).unwrap()
}

/// A user as the cart journey leaves them: inside it, waiting an hour.
fn template_user(deployment: &Deployment) -> UserState {
    let mut runtime = Runtime::new(Store::new(MemoryKv::default()), deployment.clone());
    let mut traffic = Traffic {
        rng: Rng::new(7),
        batch: 0,
        message: 0,
    };
    let (inputs, now) = traffic.next_batch();
    let cart = inputs
        .into_iter()
        .find(|i| matches!(i, Input::Track(e) if e.name == "cart_updated"))
        .unwrap();
    let user = cart.user().to_string();
    runtime.ingest(&[cart], now).unwrap();
    let state = runtime.store.user(&user).unwrap().unwrap();
    assert!(state.next_wake().is_some(), "the template user waits");
    state
}

struct TimerReport {
    reopened: Reopened,
    empty: Reopened,
    timers: u64,
    seconds: f64,
    rss_before: u64,
    rss_after: u64,
    disk: u64,
    value: usize,
}

fn timers(deployment: &Deployment, sizes: &Sizes) -> TimerReport {
    let template = template_user(deployment);
    let dir = scratch("timers");
    let rss_before = rss_kib();
    let store = Store::new(open(&dir));
    let started = Instant::now();
    let mut value = 0;
    let mut made = 0;
    while made < sizes.timers {
        let mut batch = Batch::default();
        for _ in 0..sizes.timer_batch.min((sizes.timers - made) as usize) {
            let mut user = template.clone();
            user.id = format!("t{made:08}").into();
            let due = base() + Duration::seconds(made as i64);
            for i in &mut user.instances {
                i.wait = Wait::Until(due);
            }
            if made == 0 {
                value = rmp_size(&user);
            }
            batch.users.push((user, None));
            made += 1;
        }
        store.commit(batch).unwrap();
        store.flush().unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let rss_after = rss_kib();
    // Every timer is there, counted and read back in order.
    let counted = store.pending_timers().unwrap() as u64;
    let read = store.due(DateTime::<Utc>::MAX_UTC, usize::MAX).unwrap();
    assert!(read.is_sorted(), "timers read back in order");
    assert_eq!(read.len() as u64, counted);
    drop(read);
    assert_eq!(counted, sizes.timers, "every pending timer is stored");
    drop(store);
    let disk = disk_bytes(&dir);
    let reopened = reopen_in_child(&dir);
    assert!(
        reopened.fired > 0,
        "the reopened store fires its due timers"
    );
    let empty_dir = scratch("empty");
    let empty = reopen_in_child(&empty_dir);
    if std::env::var_os(KEEP).is_some() {
        eprintln!(
            "kept {}: profile firing with {REOPEN}=that-dir {}",
            dir.display(),
            std::env::current_exe().unwrap().display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&empty_dir);
    TimerReport {
        reopened,
        empty,
        timers: sizes.timers,
        seconds,
        rss_before,
        rss_after,
        disk,
        value,
    }
}

/// What a fresh process measured after reopening a store.
struct Reopened {
    /// Resident memory once timers fired, KiB.
    rss: u64,
    /// Peak resident memory, KiB.
    peak: u64,
    /// Journal records from the timers fired, and how long firing took.
    fired: usize,
    timers_fired: u64,
    seconds: f64,
}

const REOPEN: &str = "WAYMARK_BENCH_REOPEN";
/// Set: the timers' store is kept, to fire again under a profiler.
const KEEP: &str = "WAYMARK_BENCH_KEEP";
/// How many timers the reopened store fires (one is due each second):
/// 10k, or `WAYMARK_BENCH_FIRE`.
fn fire_seconds() -> i64 {
    std::env::var("WAYMARK_BENCH_FIRE")
        .ok()
        .map_or(10_000, |n| n.parse().unwrap())
}

/// How many pages of timers the reopened store fires a call: the daemon's
/// writer's turn, or `WAYMARK_BENCH_TURN_PAGES` (0: all in one call).
fn turn_pages() -> usize {
    std::env::var("WAYMARK_BENCH_TURN_PAGES")
        .ok()
        .map_or(waymark_engine::runtime::TIME_PAGES_A_TURN, |n| {
            n.parse().unwrap()
        })
}

/// Runs this bench binary again to reopen `dir` as a restarted daemon would.
fn reopen_in_child(dir: &Path) -> Reopened {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(REOPEN, dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("reopened "))
        .unwrap_or_else(|| {
            panic!(
                "the reopening process failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let n: Vec<f64> = line.split(' ').map(|v| v.parse().unwrap()).collect();
    Reopened {
        rss: n[0] as u64,
        peak: n[1] as u64,
        fired: n[2] as usize,
        timers_fired: n[3] as u64,
        seconds: n[4],
    }
}

/// The child's side: open the store, fire the timers due in the first
/// [`fire_seconds`] (one a second), report resident memory and how long
/// firing took.
fn reopen(dir: &Path) {
    let store = Store::new(open(dir));
    let until = base() + Duration::seconds(fire_seconds());
    let due = |store: &Store<SledKv>| store.due(until, usize::MAX).unwrap().len() as u64;
    let pending = due(&store);
    let mut runtime = Runtime::new(store, deployment());
    // What timers cost, not what the cache of recent users holds (the
    // users just fired would stay decoded, up to its bound).
    runtime.set_user_cache(0);
    let started = Instant::now();
    // Records are counted and dropped page by page, as the daemon does.
    let mut fired = 0;
    match turn_pages() {
        0 => runtime
            .advance_to_with(until, &mut |page| fired += page.len())
            .unwrap(),
        pages => {
            // As the daemon's writer fires them: a few pages a turn, asking
            // when the next timer is due between turns.
            while !runtime
                .advance_some(until, pages, &mut |page| fired += page.len())
                .unwrap()
            {
                runtime.next_due().unwrap();
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let timers_fired = pending - due(&runtime.store);
    println!(
        "reopened {} {} {fired} {timers_fired} {seconds}",
        rss_kib(),
        status_kib("VmHWM:")
    );
}

/// The size of a user's state as the store writes it.
fn rmp_size(user: &UserState) -> usize {
    rmp_serde::to_vec(user).unwrap().len()
}

/// A backend that can keep a copy of every batch it applies, and times
/// its applies and flushes (nanoseconds).
#[derive(Clone)]
struct Recording {
    kv: SledKv,
    batches: Arc<Mutex<Option<Vec<Vec<Op>>>>>,
    applying: Arc<AtomicU64>,
    flushing: Arc<AtomicU64>,
}

fn slow_fsync_ms() -> Option<u64> {
    std::env::var("WAYMARK_BENCH_FSYNC_MS")
        .ok()
        .map(|n| n.parse().unwrap())
}

fn timed<T>(total: &AtomicU64, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    total.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}

impl Kv for Recording {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv.get(key)
    }
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        if let Some(batches) = self.batches.lock().unwrap().as_mut() {
            batches.push(ops.clone());
        }
        timed(&self.applying, || self.kv.apply(ops))
    }
    fn range(
        &self,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.kv.range(from, to, limit)
    }
    fn flush(&self) -> Result<(), StoreError> {
        timed(&self.flushing, || {
            // A disk whose cache flush takes this long (this machine's
            // virtual disk answers fsync at once).
            if let Some(ms) = slow_fsync_ms() {
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
            self.kv.flush()
        })
    }

    fn keys(&self) -> &dyn waymark_engine::store::sealed::KeyTable {
        self.kv.keys()
    }
}

/// What ingest wrote for [`REPLAYED`] batches, and how fast sled alone takes it.
#[derive(Default)]
struct Replay {
    events: u64,
    keys: u64,
    bytes: u64,
    seconds: f64,
}

const REPLAYED: usize = 100;

/// Runs [`REPLAYED`] more batches through `runtime` recording each commit,
/// then applies the recorded commits to a fresh sled, one flush each.
fn replay(runtime: &mut Runtime<Recording>, traffic: &mut Traffic) -> Replay {
    *runtime.store.kv().batches.lock().unwrap() = Some(Vec::new());
    for _ in 0..REPLAYED {
        let (inputs, now) = traffic.next_batch();
        runtime.ingest(&inputs, now).unwrap();
    }
    let batches = runtime.store.kv().batches.lock().unwrap().take().unwrap();
    let ops = batches.iter().flatten();
    let keys = ops.clone().count() as u64;
    let bytes = ops
        .map(|op| match op {
            Op::Put(k, v) => k.len() + v.len(),
            Op::Delete(k) => k.len(),
        })
        .sum::<usize>() as u64;
    let dir = scratch("replay");
    let kv = open(&dir);
    // The same starting point: the store as ingest found it.
    let mut from = Vec::new();
    loop {
        let page = runtime.store.kv().range(&from, &[0xff], 10_000).unwrap();
        let Some((last, _)) = page.last() else { break };
        from = [last.as_slice(), &[0]].concat();
        kv.apply(page.into_iter().map(|(k, v)| Op::Put(k, v)).collect())
            .unwrap();
    }
    kv.flush().unwrap();
    // Once to warm sled up as the ingest run had, then timed.
    for batch in batches.clone() {
        kv.apply(batch).unwrap();
        kv.flush().unwrap();
    }
    let started = Instant::now();
    for batch in batches {
        kv.apply(batch).unwrap();
        kv.flush().unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(kv);
    let _ = std::fs::remove_dir_all(&dir);
    Replay {
        events: (REPLAYED * BATCH) as u64,
        keys,
        bytes,
        seconds,
    }
}

/// The mean size of a stored user state.
fn mean_state<K: Kv>(store: &Store<K>) -> usize {
    let users = store.kv().range(b"u/", b"u0", usize::MAX).unwrap();
    users.iter().map(|(_, v)| v.len()).sum::<usize>() / users.len().max(1)
}

/// Seconds of CPU this process has used, all threads.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name; utime and stime are 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// Ingest and raw inserts, each for `batches` batches back to back, in
/// `rounds` alternating rounds: a daemon under constant load. Criterion's
/// pauses between samples let sled's IO threads catch up outside the
/// timed part, which flatters raw (whose cost is nearly all sled's) more
/// than ingest (bound by the writer thread). Each raw round writes values
/// of the mean stored state size after the ingest round before it, so
/// both write the same sizes as the states grow.
fn sustained(
    runtime: &mut Runtime<Recording>,
    traffic: &mut Traffic,
    rounds: usize,
    batches: usize,
) -> Sustained {
    let dir = scratch("sustained");
    let db = open_raw(&dir);
    let mut rng = Rng::new(43);
    // Every key there before timing starts, as ingest's users are.
    let mut value = raw_value(mean_state(&runtime.store));
    for _ in 0..(4 * USERS as usize / BATCH) {
        raw_batch(&db, &mut rng, &value);
    }
    let (mut ingest, mut raw) = (Tally::default(), Tally::default());
    let (mut ingest_cpu, mut raw_cpu) = (0.0, 0.0);
    for _ in 0..rounds {
        let inputs: Vec<_> = (0..batches).map(|_| traffic.next_batch()).collect();
        let cpu = cpu_seconds();
        let started = Instant::now();
        for (inputs, now) in &inputs {
            let durable = Box::new(
                |r: Result<waymark_engine::runtime::Committed, StoreError>| {
                    r.unwrap();
                },
            );
            runtime.ingest_pipelined(inputs, *now, durable).unwrap();
        }
        runtime.drain().unwrap();
        ingest.seconds += started.elapsed().as_secs_f64();
        ingest.units += (batches * BATCH) as u64;
        ingest_cpu += cpu_seconds() - cpu;

        value = raw_value(mean_state(&runtime.store));
        let cpu = cpu_seconds();
        let started = Instant::now();
        for _ in 0..batches {
            raw_batch(&db, &mut rng, &value);
        }
        raw.seconds += started.elapsed().as_secs_f64();
        raw.units += (batches * BATCH) as u64;
        raw_cpu += cpu_seconds() - cpu;
    }
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    Sustained {
        ingest_cores: ingest_cpu / ingest.seconds,
        raw_cores: raw_cpu / raw.seconds,
        ingest,
        raw,
        mean: value.len(),
    }
}

/// Totals over every timed iteration, for the summary.
#[derive(Default)]
struct Tally {
    units: u64,
    seconds: f64,
    /// Of `seconds`, in sled's `apply_batch` and in `flush` (ingest only).
    applying: f64,
    flushing: f64,
}

impl Tally {
    fn rate(&self) -> f64 {
        self.units as f64 / self.seconds
    }
}

/// What the ingest phase measured.
struct IngestReport {
    /// Criterion's figures, not pipelined and pipelined.
    sync: Tally,
    pipelined: Tally,
    /// The mean stored state size after them (raw's value size).
    mean: usize,
    sustained: Sustained,
    replay: Replay,
}

/// The sustained runs: ingest (pipelined) and raw, with the cores each used.
struct Sustained {
    ingest: Tally,
    raw: Tally,
    ingest_cores: f64,
    raw_cores: f64,
    /// The mean stored state size at the end.
    mean: usize,
}

/// Events through the runtime: criterion's samples, the sustained rounds
/// against raw inserts, and the replay of what ingest wrote.
fn ingest(c: &mut Criterion, deployment: &Deployment, sizes: &Sizes) -> IngestReport {
    let dir = scratch("ingest");
    let kv = Recording {
        kv: open(&dir),
        batches: Default::default(),
        applying: Default::default(),
        flushing: Default::default(),
    };
    let mut runtime = Runtime::new(Store::new(kv), deployment.clone());
    if let Ok(n) = std::env::var("WAYMARK_BENCH_USER_CACHE") {
        runtime.set_user_cache(n.parse().unwrap());
    }
    let mut traffic = Traffic {
        rng: Rng::new(42),
        batch: 0,
        message: 0,
    };
    // Most users exist before timing starts.
    for _ in 0..(4 * USERS as usize / BATCH) {
        let (inputs, now) = traffic.next_batch();
        runtime.ingest(&inputs, now).unwrap();
    }
    let mut sync = Tally::default();
    let mut pipelined = Tally::default();
    let mut group = c.benchmark_group("durable");
    group.throughput(Throughput::Elements(BATCH as u64));
    let criterion_runs = if only("sustained") {
        vec![]
    } else {
        vec![
            ("runtime_ingest_256_events", &mut sync),
            ("runtime_ingest_pipelined_256_events", &mut pipelined),
        ]
    };
    for (name, tally) in criterion_runs {
        let pipeline = name.contains("pipelined");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let batches: Vec<_> = (0..iters).map(|_| traffic.next_batch()).collect();
                let kv = runtime.store.kv();
                let (applying, flushing) = (
                    kv.applying.load(Ordering::Relaxed),
                    kv.flushing.load(Ordering::Relaxed),
                );
                let started = Instant::now();
                for (inputs, now) in &batches {
                    if pipeline {
                        let durable = Box::new(
                            |r: Result<waymark_engine::runtime::Committed, StoreError>| {
                                r.unwrap();
                            },
                        );
                        runtime.ingest_pipelined(inputs, *now, durable).unwrap();
                    } else {
                        runtime.ingest(inputs, *now).unwrap();
                    }
                }
                // Every batch durable before the clock stops.
                runtime.drain().unwrap();
                let elapsed = started.elapsed();
                tally.units += iters * BATCH as u64;
                tally.seconds += elapsed.as_secs_f64();
                let kv = runtime.store.kv();
                tally.applying += (kv.applying.load(Ordering::Relaxed) - applying) as f64 / 1e9;
                tally.flushing += (kv.flushing.load(Ordering::Relaxed) - flushing) as f64 / 1e9;
                elapsed
            })
        });
    }
    group.finish();
    let mean = mean_state(&runtime.store);
    let sustained = sustained(
        &mut runtime,
        &mut traffic,
        sizes.sustained_rounds,
        sizes.sustained_batches,
    );
    let replay = if only("sustained") {
        Replay::default()
    } else {
        replay(&mut runtime, &mut traffic)
    };
    drop(runtime);
    let _ = std::fs::remove_dir_all(&dir);
    IngestReport {
        sync,
        pipelined,
        mean,
        sustained,
        replay,
    }
}

/// A raw value of `size` bytes.
fn raw_value(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// One raw batch: `BATCH` values like `value` to keys of the bench's
/// users, applied atomically, then a flush.
fn raw_batch(db: &sled::Db, rng: &mut Rng, value: &[u8]) {
    let mut batch = sled::Batch::default();
    for _ in 0..BATCH {
        let r = rng.next_u64();
        let key = format!("u/user{:05}", r % USERS);
        // Every value differs from the one it replaces: sled skips a
        // write of the bytes already stored, which would measure nothing.
        let mut value = value.to_vec();
        let n = value.len().min(8);
        value[..n].copy_from_slice(&r.to_le_bytes()[..n]);
        batch.insert(key.as_bytes(), value);
    }
    db.apply_batch(batch).unwrap();
    db.flush().unwrap();
}

fn open_raw(dir: &Path) -> sled::Db {
    sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes())
        .open()
        .unwrap()
}

/// sled alone: `BATCH` values of `size` bytes per atomic batch, one flush
/// each, to keys of the same users.
fn raw(c: &mut Criterion, size: usize) -> Tally {
    let dir = scratch("raw");
    let db = open_raw(&dir);
    let mut rng = Rng::new(42);
    let value = raw_value(size);
    let mut tally = Tally::default();
    let mut group = c.benchmark_group("durable");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(
        format!("sled_apply_batch_256_values_of_{size}_bytes"),
        |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    raw_batch(&db, &mut rng, &value);
                }
                let elapsed = started.elapsed();
                tally.units += iters * BATCH as u64;
                tally.seconds += elapsed.as_secs_f64();
                elapsed
            })
        },
    );
    group.finish();
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    tally
}

fn main() {
    // As the `waymark` binary runs: without transparent huge pages, whose
    // zeroing on first touch was 6% of the ingest thread here and which
    // the daemon turns off for itself (`cli::without_huge_pages`).
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
    if let Some(dir) = std::env::var_os(REOPEN) {
        return reopen(Path::new(&dir));
    }
    let full = std::env::args().any(|a| a == "--bench");
    let timers_env = std::env::var("WAYMARK_BENCH_TIMERS").ok();
    let sizes = if full {
        Sizes {
            // Override to iterate on the throughput figures faster.
            timers: timers_env.map_or(1_000_000, |n| n.parse().unwrap()),
            timer_batch: 10_000,
            sustained_rounds: 4,
            sustained_batches: 1_000,
        }
    } else {
        Sizes {
            timers: 20_000,
            timer_batch: 5_000,
            sustained_rounds: 1,
            sustained_batches: 20,
        }
    };
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(2))
        .measurement_time(std::time::Duration::from_secs(10))
        .configure_from_args();
    let deployment = deployment();

    if only("sustained") {
        let IngestReport { sustained, .. } = ingest(&mut c, &deployment, &sizes);
        print_sustained(&sizes, &sustained);
        return;
    }
    // Memory first, while the process is fresh.
    let t = timers(&deployment, &sizes);
    if only("timers") {
        print_timers(&t);
        return;
    }
    let IngestReport {
        sync,
        pipelined: events,
        mean: value,
        sustained,
        replay: replayed,
    } = ingest(&mut c, &deployment, &sizes);
    let inserts = raw(&mut c, value);
    c.final_summary();

    println!();
    println!(
        "== waymark durable path (sled, cache_capacity {} MiB) ==",
        cache_bytes() >> 20
    );
    println!(
        "ingest: {:.0} events/s through Runtime::ingest_pipelined, as the daemon runs ({BATCH} events per commit+flush, {USERS} users; the next batch evaluated while one is applied)",
        events.rate()
    );
    println!(
        "        {:.0} events/s through Runtime::ingest (evaluate, apply, flush, one after the other): sled apply_batch {:.0}% of the time, flush {:.0}%, the engine (state, core, encoding) {:.0}%",
        sync.rate(),
        100.0 * sync.applying / sync.seconds,
        100.0 * sync.flushing / sync.seconds,
        100.0 * (1.0 - (sync.applying + sync.flushing) / sync.seconds),
    );
    println!(
        "raw:    {:.0} inserts/s, sled apply_batch of {BATCH} values of {value} B (mean stored user state) + flush",
        inserts.rate()
    );
    println!(
        "ratio:  {:.2} (ingest events/s ÷ raw inserts/s; goal ≥ 0.7); {:.2} unpipelined",
        events.rate() / inserts.rate(),
        sync.rate() / inserts.rate()
    );
    print_sustained(&sizes, &sustained);
    let replay_rate = replayed.events as f64 / replayed.seconds;
    println!(
        "replay: {:.0} events/s: sled alone applying what ingest wrote for {} events ({:.2} keys, {:.0} B per event) with the same flushes",
        replay_rate,
        replayed.events,
        replayed.keys as f64 / replayed.events as f64,
        replayed.bytes as f64 / replayed.events as f64,
    );
    println!(
        "        engine share: ingest ÷ replay {:.2} ({:.2} unpipelined); layout share: replay ÷ raw {:.2}",
        events.rate() / replay_rate,
        sync.rate() / replay_rate,
        replay_rate / inserts.rate(),
    );
    print_timers(&t);
}

/// `WAYMARK_BENCH_ONLY` is `part`: only that part runs.
fn only(part: &str) -> bool {
    std::env::var("WAYMARK_BENCH_ONLY").is_ok_and(|v| v == part)
}

fn print_sustained(sizes: &Sizes, sustained: &Sustained) {
    println!(
        "sustained: {} rounds of {} batches back to back, alternating: ingest (pipelined) {:.0} events/s on {:.2} cores; raw {:.0} inserts/s on {:.2} cores (values of the mean state size then, {} B at the end)",
        sizes.sustained_rounds,
        sizes.sustained_batches,
        sustained.ingest.rate(),
        sustained.ingest_cores,
        sustained.raw.rate(),
        sustained.raw_cores,
        sustained.mean,
    );
    // CPU per unit, of all threads: less moved by a busy machine than the
    // rates, and the ratio of the two less again.
    let ingest_us = 1e6 * sustained.ingest_cores / sustained.ingest.rate();
    let raw_us = 1e6 * sustained.raw_cores / sustained.raw.rate();
    println!(
        "        ratio {:.2} (sustained ingest events/s ÷ sustained raw inserts/s; goal ≥ 0.7); CPU {ingest_us:.1} µs per event, {raw_us:.1} µs per raw insert ({:.2}×)",
        sustained.ingest.rate() / sustained.raw.rate(),
        ingest_us / raw_us,
    );
}

fn print_timers(t: &TimerReport) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let per_million = 1_000_000.0 / t.timers as f64;
    println!(
        "timers: {} users with a pending timer ({} B state each) in {:.1}s; RSS {:.0} → {:.0} MiB (+{:.0} MiB, {:.0} MiB per million); disk {:.0} MiB ({:.0} MiB per million)",
        t.timers,
        t.value,
        t.seconds,
        mib(t.rss_before),
        mib(t.rss_after),
        mib(t.rss_after.saturating_sub(t.rss_before)),
        mib(t.rss_after.saturating_sub(t.rss_before)) * per_million,
        t.disk as f64 / (1 << 20) as f64,
        t.disk as f64 / (1 << 20) as f64 * per_million,
    );
    println!(
        "reopened with {} pending timers, {} fired ({}) in {:.2}s ({:.0} timers/s, {} records): RSS {:.0} MiB (peak {:.0}); an empty store: {:.0} MiB (peak {:.0}); difference {:.0} MiB",
        t.timers,
        t.reopened.timers_fired,
        match turn_pages() {
            0 => "in one call".to_string(),
            n => format!("{n} pages a turn, as the writer fires them"),
        },
        t.reopened.seconds,
        t.reopened.timers_fired as f64 / t.reopened.seconds,
        t.reopened.fired,
        mib(t.reopened.rss),
        mib(t.reopened.peak),
        mib(t.empty.rss),
        mib(t.empty.peak),
        mib(t.reopened.rss.saturating_sub(t.empty.rss)),
    );
}
