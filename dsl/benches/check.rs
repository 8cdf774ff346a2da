//! Throughput of `compile` (parse, every static rule, lowering) over a
//! generated deployment shaped like a real one: ~500 journeys in 50 files,
//! with the segments, consts, policy, rules and tasks they refer to. The
//! generator is deterministic (a fixed-seed LCG), so runs compare.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::fmt::Write as _;
use std::hint::black_box;
use waymark_dsl::{Options, Sources, compile, render};

const FILES: usize = 50;
const JOURNEYS_PER_FILE: usize = 10;
const SEGMENTS: usize = 40;
const CONSTS: usize = 30;

const EVENTS: &[&str] = &[
    "cart_updated",
    "order_paid",
    "signed_up",
    "page_viewed",
    "checkin",
    "invite_accepted",
    "coupon_used",
    "review_posted",
];
const CHANNELS: &[&str] = &["wechat", "sms", "wecom", "email", "push"];
const ZONES: &[&str] = &["Asia/Shanghai", "Europe/Berlin", "America/New_York"];

/// A small deterministic generator: the same deployment on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize
    }

    fn below(&mut self, n: usize) -> usize {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// The shared declarations: schema-free, so events and fields are `any`.
fn shared(out: &mut String) {
    out.push_str("# Shared segments, consts, the policy, rules and tasks.\n");
    out.push_str(
        "policy default {\n  tz \"Asia/Shanghai\"\n  quiet hours 22:00 to 08:00\n  cap 3 messages per 1d\n  cap 1 sms per day\n  cap 2 marketing per week\n  consent required\n  on cap defer\n}\n\n",
    );
    for i in 0..CONSTS {
        match i % 3 {
            0 => writeln!(out, "const threshold_{i} = {}", 100 + i * 50),
            1 => writeln!(out, "const bonus_{i} = {}", 10 + i),
            _ => writeln!(out, "const greeting_{i} = \"Hello number {i}\""),
        }
        .unwrap();
    }
    out.push('\n');
    for i in 0..SEGMENTS {
        match i % 4 {
            0 => writeln!(
                out,
                "segment seg_{i} \"segment {i}\" = days_since(coalesce(user.last_seen_at, user.created_at)) >= {}",
                7 + i
            ),
            1 => writeln!(
                out,
                "segment seg_{i} = user.total_spent >= threshold_{} or has_tag(\"vip_{i}\")",
                (i / 3) * 3 % CONSTS
            ),
            2 => writeln!(
                out,
                "segment seg_{i} = count(order_paid, {}d) > {} and not has_tag(\"blocked\")",
                30 + i,
                i % 5
            ),
            _ => writeln!(
                out,
                "segment seg_{i} = seg_{} and user.tier in [\"silver\", \"gold\"]",
                i - 3
            ),
        }
        .unwrap();
    }
    out.push('\n');
    for i in 0..10 {
        writeln!(
            out,
            "rule rule_{i} \"rule {i}\" {{\n  when event order_paid where event.amount > {}\n  if user.total_spent >= threshold_{} and user.tier != \"gold\"\n  then {{\n    set user.tier = \"gold\"\n    give points {} reason \"upgrade {i}\"\n    send wecom {{ text: \"Congratulations {{user.nickname}}, tier {i}\" }}\n  }}\n}}\n",
            i * 10,
            (i % 10) * 3,
            100 + i
        )
        .unwrap();
    }
    for i in 0..6 {
        if i % 2 == 0 {
            writeln!(
                out,
                "task task_{i} \"task {i}\" {{\n  on event checkin\n  tz \"Asia/Shanghai\"\n  streak {} days {{\n    give points bonus_{} reason \"streak\"\n  }}\n  repeatable\n}}\n",
                3 + i,
                1 + (i % 10) * 3
            )
        } else {
            writeln!(
                out,
                "task task_{i} {{\n  on event invite_accepted where event.invitee_is_new\n  distinct event.invitee_id\n  count {} within 30d {{\n    give coupon \"FISSION_{i}\" expires in 14d\n  }}\n  max 1 per user\n}}\n",
                2 + i
            )
        }
        .unwrap();
    }
}

fn segment(rng: &mut Lcg) -> String {
    format!("seg_{}", rng.below(SEGMENTS))
}

fn threshold(rng: &mut Lcg) -> String {
    format!("threshold_{}", rng.below(CONSTS / 3) * 3)
}

/// A few steps; `depth` bounds nesting so blocks stay realistic.
fn steps(rng: &mut Lcg, out: &mut String, indent: usize, depth: usize, count: usize) {
    let pad = " ".repeat(indent);
    for _ in 0..count {
        let kind = if depth >= 2 {
            rng.below(5)
        } else {
            rng.below(10)
        };
        match kind {
            0 => {
                let channel = rng.pick(CHANNELS);
                let n = rng.below(1000);
                writeln!(
                    out,
                    "{pad}send {channel} template \"TPL_{n}\" {{ name: user.nickname, total: event.value, text: \"Hi {{user.nickname}}, you have {{user.points}} points ({{format_money(user.total_spent)}})\" }}"
                )
                .unwrap();
            }
            1 => writeln!(out, "{pad}wait {}h", 1 + rng.below(48)).unwrap(),
            2 => {
                let n = rng.below(100);
                writeln!(
                    out,
                    "{pad}give points {} reason \"bonus {n}\" expires in {}d",
                    50 + n,
                    7 + rng.below(60)
                )
                .unwrap();
            }
            3 => writeln!(out, "{pad}tag \"tag_{}\"", rng.below(50)).unwrap(),
            4 => writeln!(
                out,
                "{pad}set user.score_{} = coalesce(user.score, 0) + {}",
                rng.below(20),
                rng.below(10)
            )
            .unwrap(),
            5 => {
                let n = rng.below(100);
                writeln!(
                    out,
                    "{pad}give coupon \"C{n}\" expires in {}d {{ value: {} }} as c",
                    3 + rng.below(20),
                    5 + rng.below(50)
                )
                .unwrap();
                writeln!(
                    out,
                    "{pad}send sms template \"SMS_COUPON\" {{ code: c.code, until: date(c.expires_at), text: \"Your code {{c.code}} expires {{date(c.expires_at)}}\" }}"
                )
                .unwrap();
            }
            6 => {
                let event = rng.pick(EVENTS);
                writeln!(
                    out,
                    "{pad}wait for event {event} where event.amount >= {} within {}h as got {{",
                    rng.below(200),
                    2 + rng.below(70)
                )
                .unwrap();
                writeln!(
                    out,
                    "{pad}  send wecom {{ text: \"Thanks {{user.nickname}}, order {{got.order_id}}\" }}"
                )
                .unwrap();
                steps(rng, out, indent + 2, depth + 1, 1);
                writeln!(out, "{pad}}} else {{").unwrap();
                steps(rng, out, indent + 2, depth + 1, 2);
                writeln!(out, "{pad}}}").unwrap();
            }
            7 => {
                writeln!(
                    out,
                    "{pad}if {} and user.total_spent > {} {{",
                    segment(rng),
                    threshold(rng)
                )
                .unwrap();
                steps(rng, out, indent + 2, depth + 1, 2);
                writeln!(
                    out,
                    "{pad}}} else if hour(now) < {} or len(user.tags) > {} {{",
                    8 + rng.below(12),
                    rng.below(5)
                )
                .unwrap();
                steps(rng, out, indent + 2, depth + 1, 1);
                writeln!(out, "{pad}}} else {{").unwrap();
                steps(rng, out, indent + 2, depth + 1, 1);
                writeln!(out, "{pad}}}").unwrap();
            }
            8 => {
                let a = 10 + rng.below(40);
                let b = 10 + rng.below(90 - a);
                writeln!(out, "{pad}split ab_{} {{", rng.next() % 100_000).unwrap();
                writeln!(out, "{pad}  {a}% arm_a {{").unwrap();
                steps(rng, out, indent + 4, depth + 1, 2);
                writeln!(out, "{pad}  }}").unwrap();
                writeln!(out, "{pad}  {b}% arm_b {{").unwrap();
                steps(rng, out, indent + 4, depth + 1, 1);
                writeln!(out, "{pad}  }}").unwrap();
                writeln!(out, "{pad}  {}% holdout {{}}", 100 - a - b).unwrap();
                writeln!(out, "{pad}}}").unwrap();
            }
            _ => {
                writeln!(
                    out,
                    "{pad}repeat {} times every {}d {{",
                    2 + rng.below(3),
                    1 + rng.below(6)
                )
                .unwrap();
                steps(rng, out, indent + 2, depth + 1, 2);
                writeln!(out, "{pad}}}").unwrap();
            }
        }
    }
}

fn journey(rng: &mut Lcg, out: &mut String, file: usize, index: usize) {
    writeln!(
        out,
        "# Journey {index} of file {file}.\njourney j_{file}_{index} \"旅程 {file}-{index}\" {{"
    )
    .unwrap();
    match rng.below(4) {
        0 | 1 => {
            let event = rng.pick(EVENTS);
            writeln!(
                out,
                "  trigger event {event} where event.value > {} and event.channel in [\"app\", \"web\"]",
                rng.below(500)
            )
            .unwrap();
        }
        2 => writeln!(
            out,
            "  trigger schedule \"0 {} * * *\" tz \"{}\" for {}",
            rng.below(24),
            rng.pick(ZONES),
            segment(rng)
        )
        .unwrap(),
        _ => writeln!(out, "  trigger segment {}", segment(rng)).unwrap(),
    }
    if rng.below(2) == 0 {
        writeln!(
            out,
            "  audience not has_tag(\"employee\") and {}",
            segment(rng)
        )
        .unwrap();
    }
    match rng.below(3) {
        0 => out.push_str("  entry once\n"),
        1 => out.push_str("  entry always\n"),
        _ => writeln!(out, "  entry every {}d", 1 + rng.below(30)).unwrap(),
    }
    if rng.below(2) == 0 {
        out.push_str("  exit on event order_paid where event.amount > 0\n");
    }
    if rng.below(3) == 0 {
        writeln!(out, "  goal order_paid within {}d", 1 + rng.below(14)).unwrap();
    }
    if rng.below(4) == 0 {
        out.push_str("  active from \"2025-01-01T00:00:00+08:00\" until \"2026-12-31\"\n");
    }
    if rng.below(4) == 0 {
        writeln!(out, "  limit {} entries per day", 1000 + rng.below(9000)).unwrap();
    }
    writeln!(out, "  category \"cat_{}\"", rng.below(5)).unwrap();
    writeln!(out, "  tz \"{}\"", rng.pick(ZONES)).unwrap();
    out.push_str("  policy default\n\n");
    let count = 3 + rng.below(4);
    steps(rng, out, 2, 0, count);
    out.push_str("}\n\n");
}

/// The deployment as (file name, text) pairs.
fn deployment() -> Vec<(String, String)> {
    let mut rng = Lcg(0x005e_ed0f_3a7a);
    let mut files = Vec::with_capacity(FILES + 1);
    let mut text = String::new();
    shared(&mut text);
    files.push(("shared.journey".to_string(), text));
    for file in 0..FILES {
        let mut text = String::new();
        for index in 0..JOURNEYS_PER_FILE {
            journey(&mut rng, &mut text, file, index);
        }
        files.push((format!("journeys_{file:02}.journey"), text));
    }
    files
}

fn sources(files: &[(String, String)]) -> Sources {
    let mut sources = Sources::new();
    for (name, text) in files {
        sources.add(name.as_str(), text.as_str());
    }
    sources
}

fn bench_check(c: &mut Criterion) {
    let files = deployment();
    let bytes: usize = files.iter().map(|(_, text)| text.len()).sum();
    let sources = sources(&files);
    let options = Options {
        functions: waymark_stdlib::stdlib(),
        channels: None,
    };

    // Outside the timed loop: the deployment is clean, so `compile` lowers it.
    let checked = compile(sources.clone(), options);
    assert!(
        !checked.has_errors(),
        "the generated deployment must check clean:\n{}",
        render::human(&checked.sources, &checked.diagnostics)
    );
    let plan = checked.plan.expect("a clean deployment lowers to a plan");
    assert_eq!(plan.journeys.len(), FILES * JOURNEYS_PER_FILE);
    eprintln!(
        "check bench: {} files, {} bytes, {} journeys, {} diagnostics (warnings)",
        files.len(),
        bytes,
        plan.journeys.len(),
        checked.diagnostics.len()
    );

    // For profilers (`valgrind --tool=callgrind`): a fixed number of checks, no statistics.
    if let Some(runs) = std::env::var("WAYMARK_CHECK_RUNS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        for _ in 0..runs {
            black_box(compile(black_box(sources.clone()), options));
        }
        return;
    }

    let mut group = c.benchmark_group("check");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(20);
    group.bench_function("deployment_500_journeys", |b| {
        // The copy of the sources `compile` takes is made outside the timing.
        b.iter_batched(
            || sources.clone(),
            |sources| compile(black_box(sources), options),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
