//! The rules-engine workload the benchmarks share: members of four tiers
//! in ten cities, and 30 days of their traffic — page views 60 %, cart
//! updates 20 %, orders 10 %, check-ins 10 % — drawn with a skew (the most
//! active 1 % of members send about a tenth of it) so that spending
//! totals reach the rules' thresholds for some members only. Written as
//! Segment JSON lines (`identify` for every member the day before, then
//! `track` calls at strictly increasing times). [`RULES`] are 20 rules
//! over it in the Waymark language, and [`reference_counts`] the same 20
//! rules as plain Rust: the check that the engine fired each as often.

#![allow(dead_code)]

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use std::io::Write;
use std::path::Path;
use waymark_core::mix::Rng;

pub const RULES: &str = include_str!("rules.journey");

const TIERS: [(&str, u64); 4] = [
    ("bronze", 50),
    ("silver", 30),
    ("gold", 15),
    ("platinum", 5),
];
const CITIES: [&str; 10] = [
    "Shanghai",
    "Beijing",
    "Shenzhen",
    "Guangzhou",
    "Hangzhou",
    "Chengdu",
    "Wuhan",
    "Nanjing",
    "Xian",
    "Chongqing",
];
const PATHS: [(&str, u64); 8] = [
    ("/", 25),
    ("/search", 15),
    ("/product", 20),
    ("/cart", 10),
    ("/checkout", 10),
    ("/promo/double11", 10),
    ("/account", 5),
    ("/help", 5),
];

/// One tracked event of the workload.
#[derive(Debug, Clone)]
pub struct Event {
    pub user: usize,
    pub kind: Kind,
    pub at: DateTime<Utc>,
    pub id: usize,
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    PageView(&'static str),
    CartUpdated(u64),
    OrderPaid(u64),
    Checkin,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::PageView(_) => "page_view",
            Kind::CartUpdated(_) => "cart_updated",
            Kind::OrderPaid(_) => "order_paid",
            Kind::Checkin => "checkin",
        }
    }
}

pub struct Workload {
    pub tiers: Vec<&'static str>,
    pub cities: Vec<&'static str>,
    pub events: Vec<Event>,
    pub start: DateTime<Utc>,
}

fn weighted<T: Copy>(rng: &mut Rng, table: &[(T, u64)]) -> T {
    let total: u64 = table.iter().map(|(_, w)| w).sum();
    let mut pick = rng.below(total);
    for &(item, w) in table {
        if pick < w {
            return item;
        }
        pick -= w;
    }
    table[0].0
}

/// `events` events from `users` members over 30 days from `start`.
pub fn generate(users: usize, events: usize, seed: u64, start: DateTime<Utc>) -> Workload {
    let mut rng = Rng::new(seed);
    let tiers = (0..users).map(|_| weighted(&mut rng, &TIERS)).collect();
    let cities = (0..users)
        .map(|_| CITIES[rng.below(CITIES.len() as u64) as usize])
        .collect();
    // The exact mix, shuffled.
    let mut kinds: Vec<u8> = Vec::with_capacity(events);
    for (kind, pct) in [(0u8, 60), (1, 20), (2, 10), (3, 10)] {
        kinds.extend(std::iter::repeat_n(kind, events * pct / 100));
    }
    kinds.resize(events, 0);
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut order: Vec<usize> = (0..users).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let span_ms = 30 * 86_400_000u64;
    let step = (span_ms / events.max(1) as u64).max(1);
    let out = kinds
        .iter()
        .enumerate()
        .map(|(i, &k)| {
            // Rank r is drawn with density ~ 1/sqrt(r): the skew.
            let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let user = order[((users as f64) * u * u) as usize % users];
            let kind = match k {
                0 => Kind::PageView(weighted(&mut rng, &PATHS)),
                1 => Kind::CartUpdated(1 + rng.below(500)),
                2 => Kind::OrderPaid(1 + rng.below(2000)),
                _ => Kind::Checkin,
            };
            let ms = i as u64 * step + rng.below(step);
            Event {
                user,
                kind,
                at: start + Duration::milliseconds(ms as i64),
                id: i,
            }
        })
        .collect();
    Workload {
        tiers,
        cities,
        events: out,
        start,
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Workload {
    /// Writes the identify calls, then the events, as one file of JSON lines.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        let users = self.tiers.len();
        let day = self.start - Duration::days(1);
        for i in 0..users {
            let at = day
                + Duration::milliseconds((i as u64 * (86_400_000 / users.max(1) as u64)) as i64);
            writeln!(
                f,
                r#"{{"type":"identify","userId":"u{i}","traits":{{"tier":"{}","city":"{}"}},"timestamp":"{}","messageId":"i{i:07}"}}"#,
                self.tiers[i],
                self.cities[i],
                stamp(at)
            )?;
        }
        for e in &self.events {
            writeln!(f, "{}", self.track_json(e))?;
        }
        f.flush()
    }

    /// One event as a Segment `track` call.
    pub fn track_json(&self, e: &Event) -> String {
        let properties = match e.kind {
            Kind::PageView(path) => format!(r#"{{"path":"{path}"}}"#),
            Kind::CartUpdated(v) => format!(r#"{{"value":{v}}}"#),
            Kind::OrderPaid(a) => format!(r#"{{"amount":{a}}}"#),
            Kind::Checkin => "{}".into(),
        };
        format!(
            r#"{{"type":"track","userId":"u{}","event":"{}","properties":{properties},"timestamp":"{}","messageId":"m{:07}"}}"#,
            e.user,
            e.kind.name(),
            stamp(e.at),
            e.id
        )
    }
}

/// How often each of the 20 rules fires, by plain Rust.
pub fn reference_counts(w: &Workload) -> [u64; 20] {
    let mut spent = vec![0u64; w.tiers.len()];
    let mut counts = [0u64; 20];
    for e in &w.events {
        let t = w.tiers[e.user];
        if let Kind::OrderPaid(a) = e.kind {
            spent[e.user] += a;
        }
        let s = spent[e.user];
        let fired: [bool; 20] = match e.kind {
            Kind::Checkin => {
                let mut f = [false; 20];
                f[0] = true;
                f[12] = t == "platinum";
                f[13] = s >= 2000;
                f
            }
            Kind::OrderPaid(a) => {
                let mut f = [false; 20];
                f[1] = a >= 500 && t == "gold";
                f[3] = a >= 1500;
                f[4] = a < 50;
                f[5] = s >= 5000;
                f[6] = s >= 10000 && t == "platinum";
                f[14] = (200..=800).contains(&a) && t != "bronze";
                f[17] = a > 1000 && (t == "gold" || t == "platinum");
                f
            }
            Kind::CartUpdated(v) => {
                let mut f = [false; 20];
                f[2] = v > 100 && (t == "silver" || t == "gold");
                f[7] = v >= 450;
                f[8] = v <= 10 && t == "bronze";
                f[15] = v > 250 && s >= 1000;
                f[18] = v > 400 && t == "platinum";
                f
            }
            Kind::PageView(p) => {
                let mut f = [false; 20];
                f[9] = p == "/checkout" && t == "platinum";
                f[10] = p == "/promo/double11";
                f[11] = (p == "/cart" || p == "/checkout") && s == 0;
                f[16] = p == "/" && t == "bronze";
                f[19] = p == "/help" && s >= 10000;
                f
            }
        };
        for (c, f) in counts.iter_mut().zip(fired) {
            *c += u64::from(f);
        }
    }
    counts
}

/// The rule an emit record's event (`rule_07_fired`) is for: 0 for rule 1.
pub fn rule_of(event: &str) -> Option<usize> {
    let n: usize = event
        .strip_prefix("rule_")?
        .strip_suffix("_fired")?
        .parse()
        .ok()?;
    (1..=20).contains(&n).then(|| n - 1)
}

/// The peak resident memory of a running process, read from /proc while
/// it runs (the last reading before it exits; 0 where /proc is missing).
pub fn watch_peak_rss(pid: u32) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib * 1024);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        peak
    })
}
