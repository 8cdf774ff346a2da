//! Audiences: what a daily `trigger schedule … for SEGMENT` costs per
//! member, beside one identify event per member, as the member count
//! grows. For each member count N, on the daemon's path (`Runtime` over
//! sled, a durable commit per page of 500 inputs, as the daemon fires a
//! schedule) and on simulate's (`Preview`, users in memory):
//!
//! - N members are made, each with an identify (tier, city, nickname; one
//!   in ten is gold) and a paid order, which a journey thanks them for;
//! - **identify**: every member is identified again (a trait changes), 500
//!   to a commit: one identify event per member;
//! - **fire**: the clock passes 10:00 Shanghai time, when a journey's
//!   schedule fires for the `gold` segment: every member is checked, one in
//!   ten enters and is sent a message.
//!
//! Both are measured on each of three days, a day's identify round
//! before its fire. It prints the medians in µs per member, their ratio (the goal: at most 1.5,
//! flat from 10k to 1M members) and the resident memory after each.
//!
//! `cargo bench -p waymark-engine --bench audience` runs 10k, 100k and 1M
//! members; `WAYMARK_BENCH_MEMBERS=10000,50000` picks the counts and
//! `WAYMARK_BENCH_PATHS=daemon` or `=simulate` one path. Under `cargo test`
//! (no `--bench` argument) it runs a small smoke version.

/// The allocator the `waymark` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{deploy, record, rss_kib};
use std::path::PathBuf;
use std::time::Instant;
use waymark_core::deployment::Deployment;
use waymark_core::journal::{Kind, Record};
use waymark_core::model::{Event, Input};
use waymark_dsl::source::Sources;
use waymark_dsl::value::Value;
use waymark_engine::preview::Preview;
use waymark_engine::runtime::Runtime;
use waymark_engine::store::{SledKv, Store};

/// Inputs to a commit: the page a schedule fire commits at a time.
const PAGE: usize = 500;

const SCRIPT: &str = r#"
segment gold "金卡会员" = user.tier == "gold"

journey gold_morning "金卡会员早安券" {
  trigger schedule "0 10 * * *" tz "Asia/Shanghai" for gold
  entry every 1d
  send sms template "GOLD_MORNING" { name: user.nickname }
}

journey thanks "下单感谢" {
  trigger event order_paid
  send sms template "THANKS" { name: user.nickname }
}
"#;

fn deployment() -> Deployment {
    let mut sources = Sources::new();
    sources.add("audience.journey", SCRIPT);
    deploy(sources)
}

/// 2025-11-10 08:00 Shanghai: two hours before the schedule fires.
fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-11-10T00:00:00Z")
        .unwrap()
        .to_utc()
}

fn member(i: usize) -> String {
    format!("m{i:08}")
}

/// The inputs that make member `i`: a profile and a paid order.
fn making(i: usize, at: DateTime<Utc>) -> [Input; 2] {
    let user = member(i);
    let tier = if i.is_multiple_of(10) {
        "gold"
    } else {
        "silver"
    };
    [
        Input::Identify {
            user: user.clone(),
            traits: record(&[
                ("tier", Value::String(tier.into())),
                ("city", Value::String(format!("city{}", i % 37))),
                ("nickname", Value::String(format!("会员{i}"))),
            ]),
            at,
            message_id: Some(format!("make-{i}")),
        },
        Input::Track(Event {
            user,
            name: "order_paid".into(),
            properties: record(&[("amount", Value::Number(((i % 300) + 1).into()))]),
            at,
            message_id: Some(format!("order-{i}")),
        }),
    ]
}

/// The timed identify: a trait changes.
fn identifying(i: usize, day: usize, at: DateTime<Utc>) -> Input {
    Input::Identify {
        user: member(i),
        traits: record(&[(
            "last_visit_store",
            Value::String(format!("store{}", (i + day) % 53)),
        )]),
        at,
        message_id: Some(format!("visit-{day}-{i}")),
    }
}

struct Figures {
    members: usize,
    identify: f64,
    fire: f64,
    /// Entries into the scheduled journey, each day.
    entered: Vec<usize>,
    rss_mib: u64,
}

impl Figures {
    fn print(&self, path: &str) {
        let n = self.members as f64;
        println!(
            "audience {path:8} {:>9} members: identify {:>6.2} µs/member, fire {:>6.2} µs/member, ratio {:.2}, entered {:?}, RSS {} MiB",
            self.members,
            self.identify * 1e6 / n,
            self.fire * 1e6 / n,
            self.fire / self.identify,
            self.entered,
            self.rss_mib,
        );
    }
}

fn entered(records: &[Record]) -> usize {
    records
        .iter()
        .filter(|r| r.kind == Kind::Enter && r.journey.as_deref() == Some("gold_morning"))
        .count()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("waymark-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Days measured; the figures are their medians.
const DAYS: usize = 3;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// 08:30 Shanghai on day `day`: the identify round before that day's fire.
fn morning(day: usize) -> DateTime<Utc> {
    start() + Duration::days(day as i64) + Duration::minutes(30)
}

/// The moment after day `day`'s fire (10:00 Shanghai) to advance to.
fn after_fire(day: usize) -> DateTime<Utc> {
    start() + Duration::days(day as i64) + Duration::hours(3)
}

fn daemon(members: usize) -> Figures {
    let dir = scratch("audience");
    let store = Store::new(SledKv::open_with_cache(&dir, 64 << 20).unwrap());
    let mut runtime = Runtime::new(store, deployment());
    let t0 = start();
    runtime.start_schedules_at(t0);
    for first in (0..members).step_by(PAGE / 2) {
        let inputs: Vec<Input> = (first..(first + PAGE / 2).min(members))
            .flat_map(|i| making(i, t0))
            .collect();
        runtime.ingest(&inputs, t0).unwrap();
    }
    runtime.store.kv().write_out_all().unwrap();
    let (mut identify, mut fire, mut entered_each) = (Vec::new(), Vec::new(), Vec::new());
    for day in 0..DAYS {
        let t1 = morning(day);
        let started = Instant::now();
        for first in (0..members).step_by(PAGE) {
            let inputs: Vec<Input> = (first..(first + PAGE).min(members))
                .map(|i| identifying(i, day, t1))
                .collect();
            runtime.ingest(&inputs, t1).unwrap();
        }
        // Each round's writes in sled's files within its time: the store
        // takes them in the background, and would bill one round's to
        // the next.
        runtime.store.kv().write_out_all().unwrap();
        identify.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let records = runtime.advance_to(after_fire(day)).unwrap();
        runtime.store.kv().write_out_all().unwrap();
        fire.push(started.elapsed().as_secs_f64());
        entered_each.push(entered(&records));
    }
    let figures = Figures {
        members,
        identify: median(identify),
        fire: median(fire),
        entered: entered_each,
        rss_mib: rss_kib() / 1024,
    };
    drop(runtime);
    let _ = std::fs::remove_dir_all(&dir);
    figures
}

fn simulate(members: usize) -> Figures {
    let mut preview = Preview::new(deployment());
    let t0 = start();
    preview.start_schedules_at(t0);
    let mut out = Vec::new();
    for i in 0..members {
        for input in making(i, t0) {
            preview.handle(&input, t0, &mut out);
        }
        out.clear();
    }
    let (mut identify, mut fire, mut entered_each) = (Vec::new(), Vec::new(), Vec::new());
    for day in 0..DAYS {
        let t1 = morning(day);
        let started = Instant::now();
        for i in 0..members {
            preview.handle(&identifying(i, day, t1), t1, &mut out);
            out.clear();
        }
        identify.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        let mut entered_count = 0;
        preview.advance_to_paged(after_fire(day), &mut out, &mut |page| {
            entered_count += entered(page);
            page.clear();
        });
        entered_count += entered(&out);
        out.clear();
        fire.push(started.elapsed().as_secs_f64());
        entered_each.push(entered_count);
    }
    Figures {
        members,
        identify: median(identify),
        fire: median(fire),
        entered: entered_each,
        rss_mib: rss_kib() / 1024,
    }
}

fn main() {
    // As the `waymark` binary runs: without transparent huge pages (see
    // the ingest bench).
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
    let full = std::env::args().any(|a| a == "--bench");
    let counts: Vec<usize> = match std::env::var("WAYMARK_BENCH_MEMBERS") {
        Ok(v) => v.split(',').map(|n| n.trim().parse().unwrap()).collect(),
        Err(_) if full => vec![10_000, 100_000, 1_000_000],
        Err(_) => vec![500, 2_000],
    };
    let paths = std::env::var("WAYMARK_BENCH_PATHS").unwrap_or_else(|_| "daemon,simulate".into());
    for &n in &counts {
        for path in paths.split(',') {
            let figures = match path {
                "daemon" => daemon(n),
                "simulate" => simulate(n),
                other => panic!("WAYMARK_BENCH_PATHS: no path {other:?} (daemon, simulate)"),
            };
            assert_eq!(
                figures.entered,
                vec![n.div_ceil(10); DAYS],
                "every gold member enters each day, and no one else"
            );
            figures.print(path);
        }
    }
}
