//! The report `waymark simulate --report FILE.html` writes: one HTML file,
//! self-contained (inline CSS and SVG, no script, no external asset), that a
//! marketer sends a colleague before a launch. At the top, what was
//! simulated (scripts, events file, period, events, users, display time
//! zone) and every journey, rule and task at a glance; then one section
//! each, with its drawing from the checked plan painted with what each step
//! did in the simulation (`sent 120`, `suppressed 9 (cap 7, consent 2)`,
//! `arm coupon 57 · holdout 43`), its numbers, and per split the arms'
//! goal rates and lift over the holdout. The figures are the daemon's own
//! statistics ([`VersionStats`]) folded from the records the simulation
//! wrote, so the report and `GET /v1/journeys/{name}/stats` count alike.
//! Same inputs, same bytes: nothing depends on the clock or on hash order.
//! The page is also well-formed XML, so tests can read its figures with an
//! XML parser.

use crate::html::{count, escape};
use chrono::{DateTime, Timelike, Utc};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use waymark_core::journal::{Kind, Record};
use waymark_core::stats::{StepStats, VersionStats};
use waymark_dsl::graph::{self, Flow, FlowKind, Paint};
use waymark_dsl::plan::{Plan, SplitArm, Steps};

/// What the simulation did per journey, rule and task, folded from its
/// journal records as they are written.
#[derive(Default)]
pub struct Figures {
    flows: BTreeMap<String, FlowFigures>,
}

#[derive(Default)]
struct FlowFigures {
    /// Every version together: a simulation runs one version of each.
    stats: VersionStats,
    /// A task's rewards paid (`reward` records).
    rewards: u64,
}

impl FlowFigures {
    /// No record at all.
    fn idle(&self) -> bool {
        self.stats == VersionStats::default() && self.rewards == 0
    }
}

impl Figures {
    pub fn add(&mut self, r: &Record) {
        let Some(journey) = &r.journey else { return };
        let figures = match self.flows.get_mut(journey.as_str()) {
            Some(f) => f,
            None => self.flows.entry(journey.to_string()).or_default(),
        };
        figures.stats.add(r);
        if r.kind == Kind::Reward {
            figures.rewards += 1;
        }
    }

    /// Adds a journey's step passages, counted apart from its records.
    pub fn add_step_counts(&mut self, journey: &str, steps: &VersionStats) {
        let figures = self.flows.entry(journey.to_string()).or_default();
        figures.stats.add_passages(steps);
    }
}

/// What was simulated, for the top of the report.
pub struct Run<'a> {
    /// The script paths as given, and how many `.journey` files they hold.
    pub scripts: &'a [PathBuf],
    pub script_files: usize,
    pub events: &'a Path,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// The last event's time plus `--until`.
    pub end: DateTime<Utc>,
    /// `--until` as given.
    pub until: &'a str,
    /// Input lines run (duplicates included), duplicates dropped, and
    /// messages taken but not acted on (`alias`).
    pub events_run: u64,
    pub duplicates: u64,
    pub not_acted_on: u64,
    /// Users the events reached.
    pub users: usize,
    pub tz: chrono_tz::Tz,
    /// A rule's firings, as the summary counts them.
    pub fired: BTreeMap<String, u64>,
}

/// Writes the report to `path`; the error names the path.
pub fn write(path: &Path, plan: &Plan, run: &Run, figures: &Figures) -> anyhow::Result<()> {
    std::fs::write(path, html(plan, run, figures))
        .map_err(|e| anyhow::anyhow!("cannot write the report {}: {e}", path.display()))
}

/// A flow with its place in the scripts' order.
type Numbered<'f> = (usize, &'f Flow);

/// The report as one HTML document.
pub fn html(plan: &Plan, run: &Run, figures: &Figures) -> String {
    let flows = graph::flows(plan, None);
    let nothing = FlowFigures::default();
    let of = |flow: &Flow| figures.flows.get(&flow.name).unwrap_or(&nothing);
    let mut out = String::with_capacity(64 * 1024);
    let title = format!("Simulation report · {}", file_name(run.events));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
         <meta name=\"generator\" content=\"waymark simulate\"/>\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
        escape(&title)
    );
    header(&mut out, run);
    // What did something first, then what did nothing; each in the
    // scripts' order. Ids follow the scripts' order.
    let (busy, idle): (Vec<Numbered>, Vec<Numbered>) =
        flows.iter().enumerate().partition(|(_, f)| !of(f).idle());
    overview(&mut out, plan, busy.iter().chain(&idle), &of, run);
    for &(i, flow) in &busy {
        section(&mut out, i, flow, plan, of(flow), run);
    }
    if !idle.is_empty() {
        let _ = writeln!(
            out,
            "<h2 class=\"group\">Nothing happened in these <span class=\"muted\">({})</span></h2>",
            idle.len()
        );
        for &(i, flow) in &idle {
            section(&mut out, i, flow, plan, of(flow), run);
        }
    }
    out.push_str(
        "<footer>Made by <code>waymark simulate</code> from the scripts and events named above: \
         the real engine on a virtual clock. The same inputs give the same report.</footer>\n\
         </main>\n</body>\n</html>\n",
    );
    out
}

fn header(out: &mut String, run: &Run) {
    let scripts: Vec<String> = run
        .scripts
        .iter()
        .map(|p| format!("<code>{}</code>", escape(&p.display().to_string())))
        .collect();
    let files = match run.script_files {
        1 => "1 file".to_string(),
        n => format!("{} files", count(n as u64)),
    };
    let mut events = format!("{} events", count(run.events_run));
    let mut dropped = Vec::new();
    if run.duplicates > 0 {
        dropped.push(format!(
            "{} {} dropped",
            count(run.duplicates),
            if run.duplicates == 1 {
                "duplicate"
            } else {
                "duplicates"
            }
        ));
    }
    if run.not_acted_on > 0 {
        dropped.push(format!("{} not acted on", count(run.not_acted_on)));
    }
    if !dropped.is_empty() {
        events.push_str(&format!(" ({})", dropped.join(", ")));
    }
    let _ = write!(
        out,
        "<header class=\"report\">\n<p class=\"eyebrow\">Waymark · simulation report</p>\n\
         <h1>{}</h1>\n<dl class=\"facts\">\n",
        escape(&file_name(run.events))
    );
    let mut fact = |key: &str, label: &str, value: String| {
        let _ = writeln!(
            out,
            "<div data-fact=\"{key}\"><dt>{label}</dt><dd>{value}</dd></div>"
        );
    };
    fact(
        "scripts",
        "Scripts",
        format!(
            "{} <span class=\"muted\">({files})</span>",
            scripts.join(", ")
        ),
    );
    fact(
        "events",
        "Events file",
        format!("<code>{}</code>", escape(&run.events.display().to_string())),
    );
    fact(
        "period",
        "Events from",
        format!(
            "{} <span class=\"muted\">to</span> {}",
            time(run.first, run.tz),
            time(run.last, run.tz)
        ),
    );
    fact(
        "end",
        "Simulated until",
        format!(
            "{} <span class=\"muted\">(last event + {})</span>",
            time(run.end, run.tz),
            escape(run.until)
        ),
    );
    fact(
        "volume",
        "Volume",
        format!(
            "<span data-figure=\"events\">{events}</span> · <span data-figure=\"users\">{} users</span>",
            count(run.users as u64)
        ),
    );
    fact("tz", "Times shown in", escape(&run.tz.to_string()));
    out.push_str("</dl>\n</header>\n");
}

/// Every flow in a row: what it did at a glance, linking to its section.
fn overview<'f, 'a>(
    out: &mut String,
    plan: &Plan,
    flows: impl Iterator<Item = &'a (usize, &'a Flow)>,
    of: &impl Fn(&Flow) -> &'f FlowFigures,
    run: &Run,
) {
    out.push_str(
        "<section class=\"card overview\">\n<h2>At a glance</h2>\n<table class=\"figures\">\n<thead><tr>\
         <th>Journey, rule or task</th><th class=\"num\">Entered</th><th class=\"num\">Goals</th>\
         <th class=\"num\">Goal rate</th><th class=\"num\">Sent</th><th class=\"num\">Suppressed</th>\
         <th class=\"num\">Deferred</th><th class=\"num\">Errors</th></tr></thead>\n<tbody>\n",
    );
    for &(i, flow) in flows {
        let f = of(flow);
        let s = &f.stats;
        let (first, goals, rate) = match flow.kind {
            FlowKind::Journey if has_goal(plan, flow) => (
                count(s.entered),
                count(s.goals),
                rate(s.goals, s.entered).map_or_else(dash, percent),
            ),
            FlowKind::Journey => (count(s.entered), dash(), dash()),
            FlowKind::Rule => (
                format!(
                    "{} <span class=\"unit\">fired</span>",
                    count(fired(run, flow))
                ),
                dash(),
                dash(),
            ),
            FlowKind::Task => (
                format!("{} <span class=\"unit\">rewarded</span>", count(f.rewards)),
                dash(),
                dash(),
            ),
        };
        let suppressed: u64 = s.suppressed.values().sum();
        let quiet = if f.idle() { " class=\"idle\"" } else { "" };
        let _ = writeln!(
            out,
            "<tr{quiet} data-flow=\"{name}\"><td><a href=\"#{id}\"><span class=\"kind\">{kind}</span> {name}</a>{title}</td>\
             <td class=\"num\">{first}</td><td class=\"num\">{goals}</td><td class=\"num\">{rate}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            count(s.sends),
            count(suppressed),
            count(s.deferred),
            count(s.failures),
            id = anchor(i),
            kind = flow.kind.keyword(),
            name = escape(&flow.name),
            title = flow
                .title
                .as_ref()
                .map(|t| format!(" <span class=\"muted\">· {}</span>", escape(t)))
                .unwrap_or_default(),
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

/// A flow's section: heading, painted drawing, numbers, split arms.
fn section(out: &mut String, i: usize, flow: &Flow, plan: &Plan, f: &FlowFigures, run: &Run) {
    let steps = steps_of(plan, flow);
    let has_goal = has_goal(plan, flow);
    let paint = paint(flow, steps, f, has_goal, run);
    let _ = writeln!(
        out,
        "<section class=\"card flow\" id=\"{}\" data-flow=\"{}\" data-kind=\"{}\">\n<h2>{}</h2>",
        anchor(i),
        escape(&flow.name),
        flow.kind.keyword(),
        heading(flow)
    );
    if f.idle() {
        let what = match flow.kind {
            FlowKind::Journey => "Nobody entered this journey during the simulation.",
            FlowKind::Rule => "This rule did not fire during the simulation.",
            FlowKind::Task => "This task paid no reward during the simulation.",
        };
        let _ = writeln!(out, "<p class=\"idle-note\">{what}</p>");
    }
    let drawing = graph::svg(std::slice::from_ref(flow), &paint);
    let _ = writeln!(
        out,
        "<div class=\"body\">\n<figure class=\"drawing\">\n{}</figure>",
        unique_ids(&drawing, i)
    );
    if !f.idle() {
        numbers(out, flow, f, has_goal, run);
    }
    out.push_str("</div>\n");
    if !f.idle() {
        arms(out, steps, &f.stats);
    }
    out.push_str("</section>\n");
}

/// `journey NAME · TITLE`, the kind set apart.
fn heading(flow: &Flow) -> String {
    let mut h = format!(
        "<span class=\"kind\">{}</span> {}",
        flow.kind.keyword(),
        escape(&flow.name)
    );
    if let Some(t) = &flow.title {
        let _ = write!(h, " <span class=\"dot\">·</span> {}", escape(t));
    }
    h
}

/// The figures painted on the drawing: the head's totals, and per step
/// what it did, in words.
fn paint(flow: &Flow, steps: Option<&Steps>, f: &FlowFigures, has_goal: bool, run: &Run) -> Paint {
    let mut paint = Paint::default();
    let s = &f.stats;
    let head = match flow.kind {
        FlowKind::Journey if has_goal => format!(
            "entered {} · goals {} ({})",
            count(s.entered),
            count(s.goals),
            rate(s.goals, s.entered).map_or_else(dash, percent)
        ),
        FlowKind::Journey => format!("entered {}", count(s.entered)),
        FlowKind::Rule => format!("fired {}", count(fired(run, flow))),
        FlowKind::Task => format!("rewarded {}", count(f.rewards)),
    };
    paint.add(&flow.name, "head", head);
    for node in &flow.nodes {
        let Some(step) = node.step else { continue };
        let Some(stats) = s.steps.get(&node.key) else {
            continue;
        };
        let split = steps
            .and_then(|steps| steps.get(step))
            .and_then(|step| step.kind.split());
        for line in step_lines(stats, split.map(|(name, arms)| (name, arms, s))) {
            paint.add(&flow.name, &node.key, line);
        }
    }
    paint
}

/// The order a step's records are told in, and the word for each.
const KINDS: [(&str, &str); 14] = [
    ("send", "sent"),
    ("deferred", "deferred"),
    ("suppressed", "suppressed"),
    ("failed", "given up on"),
    ("delivered", "delivered on replay"),
    ("coupon", "coupons"),
    ("points", "points"),
    ("tag", "tagged"),
    ("untag", "untagged"),
    ("set", "set"),
    ("emit", "emitted"),
    ("reward", "rewarded"),
    ("exit", "exited"),
    ("error", "errors"),
];

/// What one step did, one line per kind of record.
fn step_lines(stats: &StepStats, split: Option<(&str, &[SplitArm], &VersionStats)>) -> Vec<String> {
    let mut lines = Vec::new();
    if stats.entered > 0 {
        lines.push(crate::html::passages(stats));
    }
    let known = |kind: &str| kind == "split" || KINDS.iter().any(|(k, _)| *k == kind);
    for (kind, word) in KINDS {
        let n = stats.count(kind);
        if n == 0 {
            continue;
        }
        if kind == "suppressed" && !stats.suppressed.is_empty() {
            lines.push(format!(
                "{word} {} ({})",
                count(n),
                by_count(&stats.suppressed)
                    .iter()
                    .map(|(reason, n)| format!("{reason} {}", count(*n)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else {
            lines.push(format!("{word} {}", count(n)));
        }
    }
    if let Some((name, arms, s)) = split {
        let assigned = |arm: &str| {
            s.arms
                .get(name)
                .and_then(|a| a.get(arm))
                .map_or(0, |a| a.assigned)
        };
        let parts: Vec<String> = arms
            .iter()
            .map(|a| format!("{} {}", a.name, count(assigned(&a.name))))
            .collect();
        let one = format!("arm {}", parts.join(" · "));
        if one.chars().count() <= 44 {
            lines.push(one);
        } else {
            lines.extend(parts.iter().map(|p| format!("arm {p}")));
        }
    } else if stats.count("split") > 0 {
        lines.push(format!("split {}", count(stats.count("split"))));
    }
    for (kind, n) in &stats.records {
        if !known(kind) {
            lines.push(format!("{kind} {}", count(*n)));
        }
    }
    lines
}

/// The numbers table of a flow.
fn numbers(out: &mut String, flow: &Flow, f: &FlowFigures, has_goal: bool, run: &Run) {
    let s = &f.stats;
    out.push_str(
        "<div class=\"panel numbers\">\n<h3>Numbers</h3>\n<table class=\"figures numbers\">\n<tbody>\n",
    );
    let row = |out: &mut String, key: &str, label: &str, value: String| {
        let _ = writeln!(
            out,
            "<tr><th scope=\"row\">{label}</th><td class=\"num\" data-figure=\"{key}\">{value}</td></tr>"
        );
    };
    let breakdown = |out: &mut String, key: &str, reasons: &BTreeMap<String, u64>| {
        for (reason, n) in by_count(reasons) {
            let _ = writeln!(
                out,
                "<tr class=\"sub\"><th scope=\"row\">{}</th><td class=\"num\" data-figure=\"{key}.{}\">{}</td></tr>",
                escape(reason),
                escape(reason),
                count(n)
            );
        }
    };
    match flow.kind {
        FlowKind::Journey => {
            row(out, "entered", "Entered", count(s.entered));
            row(out, "active", "Active at the end", count(s.active()));
            row(out, "completed", "Completed", count(s.completed));
            row(out, "exits", "Exits", count(s.exits.values().sum()));
            breakdown(out, "exits", &s.exits);
            if has_goal {
                row(out, "goals", "Goals reached", count(s.goals));
                row(
                    out,
                    "goal_rate",
                    "Goal rate",
                    rate(s.goals, s.entered).map_or_else(dash, percent),
                );
            }
        }
        FlowKind::Rule => row(out, "fired", "Fired", count(fired(run, flow))),
        FlowKind::Task => row(out, "rewarded", "Rewards paid", count(f.rewards)),
    }
    row(out, "sends", "Sent", count(s.sends));
    row(
        out,
        "suppressed",
        "Suppressed",
        count(s.suppressed.values().sum()),
    );
    breakdown(out, "suppressed", &s.suppressed);
    row(out, "deferred", "Deferred", count(s.deferred));
    if !s.failed.is_empty() {
        row(out, "failed", "Given up on", count(s.failed.values().sum()));
        breakdown(out, "failed", &s.failed);
    }
    row(out, "failures", "Errors", count(s.failures));
    if flow.kind == FlowKind::Journey {
        row(out, "skipped", "Skipped", count(s.skipped.values().sum()));
        breakdown(out, "skipped", &s.skipped);
    }
    out.push_str("</tbody>\n</table>\n</div>\n");
}

/// Per split, per arm: assigned, finished, goals, goal rate and lift over
/// the holdout, as [`VersionStats::to_json`] works them out.
fn arms(out: &mut String, steps: Option<&Steps>, s: &VersionStats) {
    let json = s.to_json();
    let Some(steps) = steps else { return };
    for (name, arms) in steps.table.iter().filter_map(|s| s.kind.split()) {
        let figures = &json["arms"][name];
        let holdout = arms.iter().any(|a| a.holdout);
        let _ = write!(
            out,
            "<div class=\"panel split\" data-split=\"{}\">\n<h3>Split <span class=\"name\">{}</span></h3>\n\
             <table class=\"figures arms\">\n<thead><tr><th>Arm</th><th class=\"num\">Share</th>\
             <th class=\"num\">Assigned</th><th class=\"num\">Finished</th><th class=\"num\">Goals</th>\
             <th class=\"num\">Goal rate</th>{}</tr></thead>\n<tbody>\n",
            escape(name),
            escape(name),
            if holdout {
                "<th class=\"num\">Lift over holdout</th>"
            } else {
                ""
            }
        );
        for arm in arms {
            let a = &figures[arm.name.as_str()];
            let number = |key: &str| count(a[key].as_u64().unwrap_or(0));
            let goal_rate = a["goal_rate"].as_f64().map_or_else(dash, percent);
            let lift = if arm.holdout {
                "<span class=\"badge\">baseline</span>".to_string()
            } else {
                match a["lift"].as_f64() {
                    Some(l) if l > 0.0 => format!("<span class=\"up\">{}</span>", lift(l)),
                    Some(l) if l < 0.0 => format!("<span class=\"down\">{}</span>", lift(l)),
                    Some(l) => lift(l),
                    None => dash(),
                }
            };
            let _ = write!(
                out,
                "<tr data-arm=\"{}\"><th scope=\"row\">{}{}</th><td class=\"num\">{}</td>\
                 <td class=\"num\" data-figure=\"assigned\">{}</td><td class=\"num\" data-figure=\"finished\">{}</td>\
                 <td class=\"num\" data-figure=\"goals\">{}</td><td class=\"num\" data-figure=\"goal_rate\">{goal_rate}</td>",
                escape(&arm.name),
                escape(&arm.name),
                if arm.holdout {
                    " <span class=\"badge\">holdout</span>"
                } else {
                    ""
                },
                graph::text::percent(arm.percent),
                number("assigned"),
                number("finished"),
                number("goals"),
            );
            if holdout {
                let _ = write!(out, "<td class=\"num\" data-figure=\"lift\">{lift}</td>");
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
        if holdout {
            out.push_str(
                "<p class=\"note\">Goal rate: goals over the users put in the arm, counting goals \
                 reached after they finished within the goal's window. Lift: the arm's goal rate \
                 minus the holdout's, in percentage points.</p>\n",
            );
        }
        out.push_str("</div>\n");
    }
}

/// The steps of the journey, rule or task a flow draws.
fn steps_of<'p>(plan: &'p Plan, flow: &Flow) -> Option<&'p Steps> {
    match flow.kind {
        FlowKind::Journey => plan
            .journeys
            .iter()
            .find(|j| j.name == flow.name)
            .map(|j| &j.steps),
        FlowKind::Rule => plan
            .rules
            .iter()
            .find(|r| r.name == flow.name)
            .map(|r| &r.steps),
        FlowKind::Task => plan
            .tasks
            .iter()
            .find(|t| t.name == flow.name)
            .map(|t| &t.reward),
    }
}

/// Whether the flow is a journey with a goal.
fn has_goal(plan: &Plan, flow: &Flow) -> bool {
    flow.kind == FlowKind::Journey
        && plan
            .journeys
            .iter()
            .any(|j| j.name == flow.name && j.goal.is_some())
}

fn fired(run: &Run, flow: &Flow) -> u64 {
    run.fired.get(&flow.name).copied().unwrap_or(0)
}

/// The section id of the `i`th flow.
fn anchor(i: usize) -> String {
    format!("flow-{}", i + 1)
}

/// Ids in a drawing made unique in the page: every drawing declares the
/// same arrow head and numbers its flow from 0. The attributes are matched
/// whole, quotes included: drawn text has its quotes escaped, so it cannot
/// hold them.
fn unique_ids(svg: &str, i: usize) -> String {
    svg.replace(
        "id=\"waymark-arrow\"",
        &format!("id=\"waymark-arrow-{}\"", i + 1),
    )
    .replace(
        "marker-end=\"url(#waymark-arrow)\"",
        &format!("marker-end=\"url(#waymark-arrow-{})\"", i + 1),
    )
    .replacen(
        "<g class=\"flow\" id=\"flow-0\"",
        &format!("<g class=\"flow\" id=\"{}-drawing\"", anchor(i)),
        1,
    )
}

/// Reasons by count, largest first, then by name.
fn by_count(reasons: &BTreeMap<String, u64>) -> Vec<(&str, u64)> {
    let mut v: Vec<(&str, u64)> = reasons.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// `0.4286` as `42.9%`.
fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// A lift as signed percentage points: `+12.5 pts`, `−3.0 pts`.
fn lift(lift: f64) -> String {
    let points = (lift * 1000.0).round() / 10.0;
    if points > 0.0 {
        format!("+{points:.1} pts")
    } else if points < 0.0 {
        format!("\u{2212}{:.1} pts", -points)
    } else {
        "0.0 pts".to_string()
    }
}

fn dash() -> String {
    "–".to_string()
}

/// A moment in the display time zone: `2025-11-10 20:00` (seconds when
/// it has them).
fn time(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    let local = t.with_timezone(&tz);
    let format = if local.second() == 0 && local.nanosecond() == 0 {
        "%Y-%m-%d %H:%M"
    } else {
        "%Y-%m-%d %H:%M:%S"
    };
    format!(
        "<time datetime=\"{}\">{}</time>",
        local.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        local.format(format)
    )
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The page's style: system fonts (CJK ones named for Chinese titles),
/// tabular figures right-aligned, colours of the drawings.
const STYLE: &str = r#"
:root { --ink: #17212b; --muted: #5f6b7a; --line: #e2e7ee; --soft: #f4f6f9; --accent: #1f3a5f; --up: #1d7a46; --down: #b3261e; }
* { box-sizing: border-box; }
html { background: #eef1f5; }
body { margin: 0; color: var(--ink); font: 14px/1.5 system-ui, -apple-system, "Segoe UI", "Helvetica Neue", Arial, "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", sans-serif; -webkit-font-smoothing: antialiased; }
main { max-width: 1160px; margin: 0 auto; padding: 32px 28px 48px; }
code { font: 12.5px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: 1px 5px; }
header.report { margin-bottom: 24px; }
.eyebrow { margin: 0 0 4px; color: var(--accent); font-size: 12px; font-weight: 600; letter-spacing: .08em; text-transform: uppercase; }
h1 { margin: 0 0 18px; font-size: 26px; font-weight: 650; letter-spacing: -.01em; }
dl.facts { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 10px 28px; margin: 0; padding: 16px 20px; background: #fff; border: 1px solid var(--line); border-radius: 10px; }
dl.facts div { display: flex; gap: 12px; align-items: baseline; min-width: 0; }
dl.facts dt { flex: 0 0 118px; color: var(--muted); font-size: 12.5px; }
dl.facts dd { margin: 0; min-width: 0; overflow-wrap: anywhere; font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 20px 24px 22px; margin: 0 0 22px; box-shadow: 0 1px 2px rgba(23, 33, 43, .04); }
h2 { margin: 0 0 14px; font-size: 19px; font-weight: 650; }
h2 .kind, td .kind { display: inline-block; margin-right: 4px; padding: 1px 7px; border-radius: 4px; background: #e6edf6; color: var(--accent); font-size: 11.5px; font-weight: 600; letter-spacing: .04em; text-transform: uppercase; vertical-align: 2px; }
h2 .dot { color: var(--muted); font-weight: 400; }
h3 { margin: 0 0 8px; color: var(--muted); font-size: 12px; font-weight: 600; letter-spacing: .06em; text-transform: uppercase; }
h3 .name { color: var(--ink); text-transform: none; letter-spacing: 0; }
table.figures { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.figures th, table.figures td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: baseline; }
table.figures thead th { color: var(--muted); font-size: 12px; font-weight: 600; border-bottom: 1px solid #cfd6df; white-space: nowrap; }
table.figures tbody th { font-weight: 500; }
table.figures .num { text-align: right; white-space: nowrap; }
table.figures tr.sub th { padding-left: 26px; color: var(--muted); font-weight: 400; font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
table.figures tr.sub td { color: var(--muted); }
table.figures tbody tr:last-child th, table.figures tbody tr:last-child td { border-bottom: 0; }
.overview td a { color: var(--ink); text-decoration: none; font-weight: 550; }
.overview td a:hover { text-decoration: underline; }
.overview tr.idle td { color: #8a95a3; }
.overview tr.idle td a { color: #5f6b7a; font-weight: 400; }
.unit { color: var(--muted); font-size: 12px; }
.body { display: flex; flex-wrap: wrap; gap: 20px 28px; align-items: flex-start; }
figure.drawing { flex: 1 1 480px; min-width: 0; margin: 0; padding: 8px; overflow-x: auto; border: 1px solid var(--line); border-radius: 8px; background: #fff; text-align: center; }
.panel.numbers { flex: 0 1 330px; }
.panel.split { margin-top: 22px; }
h2.group { margin: 34px 0 14px; font-size: 16px; color: var(--muted); font-weight: 600; }
figure.drawing svg { display: inline-block; max-width: 100%; height: auto; }
figure.drawing svg g.flow > text { display: none; }
.idle-note { margin: 0 0 14px; padding: 8px 12px; border-left: 3px solid #c99a00; background: #fff8e1; color: #3d3000; border-radius: 0 6px 6px 0; }
.badge { display: inline-block; margin-left: 6px; padding: 0 6px; border-radius: 4px; background: var(--soft); border: 1px solid var(--line); color: var(--muted); font-size: 11px; font-weight: 500; }
.up { color: var(--up); font-weight: 600; }
.down { color: var(--down); font-weight: 600; }
.note { margin: 8px 0 0; color: var(--muted); font-size: 12px; }
footer { margin-top: 8px; color: var(--muted); font-size: 12px; text-align: center; }
@media print { html { background: #fff; } main { padding: 0; } .card { box-shadow: none; break-inside: avoid; } }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_lifts_read_as_percentages() {
        assert_eq!(percent(3.0 / 7.0), "42.9%");
        assert_eq!(lift(0.125), "+12.5 pts");
        assert_eq!(lift(-0.03), "\u{2212}3.0 pts");
        assert_eq!(lift(0.0), "0.0 pts");
    }

    #[test]
    fn each_drawing_gets_its_own_ids() {
        let svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"waymark-flow\" width=\"1\">\
                   <marker id=\"waymark-arrow\"/><g class=\"flow\" id=\"flow-0\" data-flow=\"x\">\
                   <path marker-end=\"url(#waymark-arrow)\"/><path marker-end=\"url(#waymark-arrow)\"/>";
        let out = unique_ids(svg, 2);
        assert!(out.contains("id=\"waymark-arrow-3\""), "{out}");
        assert_eq!(out.matches("url(#waymark-arrow-3)").count(), 2, "{out}");
        assert!(out.contains("id=\"flow-3-drawing\""), "{out}");
        assert!(!out.contains("\"waymark-arrow\""), "{out}");
    }
}
