//! Crash safety of the sled store: a writer process is killed with SIGKILL
//! at random moments while it ingests numbered batches through the real
//! `Runtime::ingest` (one atomic commit, then one flush, then the ack).
//! After each kill the store is reopened and checked: every batch is
//! wholly there or wholly absent, the batches there are a prefix of those
//! written, and every batch the writer acknowledged is there.
//!
//! The writer is this test binary itself, re-executed with
//! `WAYMARK_CRASH_WRITER` naming the store directory. The kill points come
//! from a seeded generator; set `WAYMARK_CRASH_SEED` to replay a run.

use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use waymark_core::deployment::Deployment;
use waymark_core::mix::Rng;
use waymark_core::model::{Event, Input};
use waymark_dsl::source::Sources;
use waymark_dsl::value::Value;
use waymark_dsl::{Options, compile};
use waymark_engine::runtime::Runtime;
use waymark_engine::store::{Kv, SledKv, Store};

const WRITER_ENV: &str = "WAYMARK_CRASH_WRITER";
const SEED_ENV: &str = "WAYMARK_CRASH_SEED";
const TEST_NAME: &str = "acknowledged_batches_survive_sigkill_and_no_batch_is_partial";
const ROUNDS: usize = 30;
/// New users entering the journey in each batch.
const FRESH: usize = 4;

const JOURNEY: &str = r#"
journey cart_recovery {
  trigger event cart_updated where event.value > 0
  exit on event order_paid
  wait 1h
  send wechat template "CART_REMINDER" { total: event.value }
}
"#;

fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-11-10T00:00:00Z")
        .unwrap()
        .to_utc()
}

fn fresh_user(n: u64, i: usize) -> String {
    format!("u{n}-{i}")
}

fn track(user: String, name: &str, value: i64, id: String, at: DateTime<Utc>) -> Input {
    let properties = Value::Record(waymark_dsl::value::Fields::from([(
        "value".to_string(),
        Value::Number(value.into()),
    )]));
    Input::Track(Event {
        user,
        name: name.into(),
        properties,
        at,
        message_id: Some(id),
    })
}

/// Batch `n`: the `hot` user's trait `batch` becomes `n` (a key every batch
/// overwrites), fresh users enter the journey (user states, timers, dedup
/// keys, journal), and the first user of batch `n - 1` pays, which exits
/// its instance and deletes its timer.
fn batch(n: u64) -> (Vec<Input>, DateTime<Utc>) {
    let at = base() + Duration::minutes(n as i64);
    let mut inputs = vec![Input::Identify {
        user: "hot".into(),
        traits: Value::Record(waymark_dsl::value::Fields::from([(
            "batch".to_string(),
            Value::String(n.to_string()),
        )])),
        at,
        message_id: Some(format!("i{n}")),
    }];
    for i in 0..FRESH {
        inputs.push(track(
            fresh_user(n, i),
            "cart_updated",
            10,
            format!("m{n}-{i}"),
            at,
        ));
    }
    if n > 0 {
        inputs.push(track(
            fresh_user(n - 1, 0),
            "order_paid",
            10,
            format!("p{n}"),
            at,
        ));
    }
    (inputs, at)
}

fn deployment() -> Deployment {
    let mut sources = Sources::new();
    sources.add("crash.journey", JOURNEY);
    let checked = compile(
        sources,
        Options {
            functions: waymark_stdlib::stdlib(),
            channels: None,
        },
    );
    Deployment::new(checked.plan.expect("the test journey checks clean"))
}

/// The batch the `hot` user last saw, if any.
fn last_batch<K: Kv>(store: &Store<K>) -> Option<u64> {
    let hot = store.user("hot").unwrap()?;
    match hot.traits.get("batch") {
        Some(Value::String(s)) => Some(s.parse().unwrap()),
        other => panic!("hot user's batch trait is {other:?}"),
    }
}

/// Writer mode: continue after the last batch in the store, printing
/// `try N` before and `ack N` after each ingest (which commits and flushes).
fn write_forever(dir: &Path) {
    let kv = SledKv::open(dir).unwrap();
    // A write buffer of a few batches: kills land amid checkpoints (the
    // buffer written to sled, the log's segments deleted), not only amid
    // appends to the log.
    kv.set_write_buffer_bytes(16 << 10);
    let store = Store::new(kv);
    let start = last_batch(&store).map_or(0, |n| n + 1);
    let mut runtime = Runtime::new(store, deployment());
    let began = Instant::now();
    // A safety net: a writer whose parent died stops on its own.
    for n in start.. {
        if began.elapsed().as_secs() > 60 {
            break;
        }
        let (inputs, at) = batch(n);
        println!("try {n}");
        runtime.ingest(&inputs, at).unwrap();
        println!("ack {n}");
    }
}

/// What the store holds of batch `n`'s own keys: each entry is one fact
/// that batch `n` (and no other) establishes.
fn facts<K: Kv>(store: &Store<K>, timers: &BTreeSet<String>, n: u64) -> Vec<(String, bool)> {
    let mut out = vec![(format!("dedup i{n}"), store.seen(&format!("i{n}")).unwrap())];
    if n > 0 {
        out.push((format!("dedup p{n}"), store.seen(&format!("p{n}")).unwrap()));
    }
    for i in 0..FRESH {
        let user = fresh_user(n, i);
        out.push((
            format!("dedup m{n}-{i}"),
            store.seen(&format!("m{n}-{i}")).unwrap(),
        ));
        out.push((
            format!("state {user}"),
            store.user(&user).unwrap().is_some(),
        ));
        out.push((
            format!("journal {user}"),
            !store.journal(&user, 10).unwrap().is_empty(),
        ));
        if i > 0 {
            // Never paid: the timer stays once written.
            out.push((format!("timer {user}"), timers.contains(&user)));
            out.push((
                format!("timer index {user}"),
                store.timer_of(&user).unwrap().is_some(),
            ));
        }
    }
    out
}

/// Checks the store after a crash, batch by batch from batch `from` on
/// (older batches were checked after earlier kills; the last round checks
/// them all again), and the whole timer set; returns the number of batches.
fn verify(dir: &Path, from: u64, acked: Option<u64>, attempted: Option<u64>) -> u64 {
    let store = Store::new(SledKv::open(dir).unwrap());
    let far = base() + Duration::days(3650);
    let timers: BTreeSet<String> = store
        .due(far, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, user)| user)
        .collect();
    let last = last_batch(&store);
    let present = last.map_or(0, |n| n + 1);
    let upto = attempted.map_or(0, |n| n + 1).max(present);
    for n in from..upto {
        let facts = facts(&store, &timers, n);
        let expected = n < present;
        let wrong: Vec<&String> = facts
            .iter()
            .filter(|(_, there)| *there != expected)
            .map(|(what, _)| what)
            .collect();
        assert!(
            wrong.is_empty(),
            "batch {n} should be {} (the hot user saw batch {last:?}) but these differ: {wrong:?}",
            if expected {
                "wholly there"
            } else {
                "wholly absent"
            }
        );
        // The first user of batch n paid in batch n + 1: exited, timer gone.
        if expected {
            let first = fresh_user(n, 0);
            let paid = n + 1 < present;
            let state = store.user(&first).unwrap().unwrap();
            assert_eq!(
                state.instances.is_empty(),
                paid,
                "{first}'s instance after batch {last:?}"
            );
            assert_eq!(timers.contains(&first), !paid, "{first}'s timer");
            assert_eq!(
                store.timer_of(&first).unwrap().is_some(),
                !paid,
                "{first}'s timer index"
            );
        }
    }
    // Nothing beyond the batches there, and the timer set is exactly theirs.
    let expected_timers: BTreeSet<String> = (0..present)
        .flat_map(|n| {
            (0..FRESH)
                .filter(move |&i| i > 0 || n + 1 == present)
                .map(move |i| fresh_user(n, i))
        })
        .collect();
    assert_eq!(timers, expected_timers, "the pending timers");
    if let Some(acked) = acked {
        assert!(
            acked < present,
            "batch {acked} was acknowledged (flushed) but the store holds only {present} batches"
        );
    }
    present
}

fn unique_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("waymark-crash-{}-{nanos}", std::process::id()))
}

#[test]
fn acknowledged_batches_survive_sigkill_and_no_batch_is_partial() {
    if let Some(dir) = std::env::var_os(WRITER_ENV) {
        write_forever(Path::new(&dir));
        return;
    }
    let seed = std::env::var(SEED_ENV)
        .ok()
        .map(|s| s.parse().expect("WAYMARK_CRASH_SEED is a number"))
        .unwrap_or(0x5eed_2025_u64);
    println!("crash test seed {seed} (replay with {SEED_ENV}={seed})");
    let mut rng = Rng::new(seed);
    let dir = unique_dir();
    let exe = std::env::current_exe().unwrap();
    let began = Instant::now();
    let mut present: u64 = 0;
    let mut total_acked = 0;
    let mut rounds_with_acks = 0;
    for round in 0..ROUNDS {
        let delay = 30 + rng.below(570);
        let mut child = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(WRITER_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let (mut acked, mut attempted) = (None, None);
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                if let Some(n) = line.strip_prefix("ack ") {
                    acked = Some(n.parse::<u64>().unwrap());
                } else if let Some(n) = line.strip_prefix("try ") {
                    attempted = Some(n.parse::<u64>().unwrap());
                }
            }
            (acked, attempted)
        });
        std::thread::sleep(std::time::Duration::from_millis(delay));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "the writer ran to completion: {status}");
        let (acked, attempted) = reader.join().unwrap();
        let before = present;
        let from = if round + 1 == ROUNDS {
            0
        } else {
            before.saturating_sub(2)
        };
        present = verify(&dir, from, acked, attempted);
        let acked_now = acked.map_or(0, |a| a + 1).saturating_sub(before);
        total_acked += acked_now;
        rounds_with_acks += usize::from(acked_now > 0);
        println!(
            "round {round}: killed after {delay} ms, acked up to {acked:?}, attempted {attempted:?}, store holds {present} batches"
        );
    }
    println!(
        "{ROUNDS} rounds in {:.1}s: {present} batches survived, {total_acked} acknowledged in {rounds_with_acks} rounds; every batch whole, every acknowledged batch there",
        began.elapsed().as_secs_f64()
    );
    assert!(
        rounds_with_acks > ROUNDS / 3,
        "too few rounds got as far as an ack"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
