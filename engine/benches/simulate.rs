//! `waymark simulate` on the rules-engine workload (see `workload/`):
//! 100,000 members, 1,000,000 events, 20 rules. Runs the real binary as a
//! marketer would (`simulate rules.journey --events FILE --format json`),
//! and reports events per second over the whole process (reading every
//! line, the 100k identify calls, the rules, the journal written as JSON)
//! and its peak resident memory; then checks the 20 fire counts, counted
//! from the journal's emit records, against the same rules in plain Rust.
//!
//! `cargo bench -p waymark-engine --bench simulate`;
//! `WAYMARK_BENCH_EVENTS=N`, `WAYMARK_BENCH_USERS=N` resize the workload,
//! `WAYMARK_BENCH_RUNS=N` (3) repeats the run and reports the fastest and
//! the median.

mod workload;

use std::process::{Command, Stdio};
use std::time::Instant;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let users = env_or("WAYMARK_BENCH_USERS", 100_000);
    let events = env_or("WAYMARK_BENCH_EVENTS", 1_000_000);
    let runs = env_or("WAYMARK_BENCH_RUNS", 3).max(1);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-simulate");
    std::fs::create_dir_all(&dir).unwrap();
    let start = chrono::DateTime::parse_from_rfc3339("2025-11-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let w = workload::generate(users, events, 20251122, start);
    let input = dir.join("traffic.jsonl");
    w.write(&input).unwrap();
    let rules = dir.join("rules.journey");
    std::fs::write(&rules, workload::RULES).unwrap();
    let expected = workload::reference_counts(&w);

    let mut seconds = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_waymark"))
            .arg("simulate")
            .arg(&rules)
            .arg("--events")
            .arg(&input)
            .args(["--format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("runs waymark");
        let peak = workload::watch_peak_rss(child.id());
        // Collected whole and counted after, so that counting takes no
        // core from the run.
        let output = child.wait_with_output().unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        assert!(output.status.success(), "simulate failed");
        let mut counts = [0u64; 20];
        for line in output.stdout.split(|&b| b == b'\n') {
            let line = std::str::from_utf8(line).unwrap();
            if !line.contains(r#""kind":"emit""#) {
                continue;
            }
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(rule) = record["event"].as_str().and_then(workload::rule_of) {
                counts[rule] += 1;
            }
        }
        seconds.push(elapsed);
        peaks.push(peak.join().unwrap());
        assert_eq!(
            counts, expected,
            "the 20 fire counts differ from the rules in plain Rust"
        );
    }
    seconds.sort_by(f64::total_cmp);
    let rate = |s: f64| events as f64 / s;
    println!(
        "simulate: {events} events from {users} members, 20 rules: {:.0} events/s fastest, {:.0} median ({:.2} s); peak RSS {} MiB; the 20 counts match ({} fires)",
        rate(seconds[0]),
        rate(seconds[seconds.len() / 2]),
        seconds[0],
        peaks.iter().max().unwrap() >> 20,
        expected.iter().sum::<u64>()
    );
}
