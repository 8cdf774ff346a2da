//! The daily chart of a journey: entries, goals, sends and suppressions
//! per day as lines, drawn as SVG on the server (no script in the page).

use chrono::{Duration, NaiveDate};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use waymark_core::stats::DayStats;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 40.0;

/// A line: its name, colour and the day's value it draws.
type Series = (&'static str, &'static str, fn(&DayStats) -> u64);

/// The last `span` days up to `today` (days without activity are zero).
pub fn daily(days: &BTreeMap<NaiveDate, DayStats>, today: NaiveDate, span: i64) -> String {
    let first = today - Duration::days(span - 1);
    let series: [Series; 4] = [
        ("entered", "#1f3a5f", |d| d.entered),
        ("goals", "#3b8f57", |d| d.goals),
        ("sends", "#3f74b8", |d| d.sends),
        ("suppressed", "#c8742a", |d| d.suppressed),
    ];
    let values = |f: fn(&DayStats) -> u64| -> Vec<u64> {
        (0..span)
            .map(|i| days.get(&(first + Duration::days(i))).map_or(0, f))
            .collect()
    };
    let top = series
        .iter()
        .flat_map(|(_, _, f)| values(*f))
        .max()
        .unwrap_or(0)
        .max(1);
    // A round scale: 1, 2, 5 × 10^k at or above the top.
    let mut scale = 1u64;
    while scale < top {
        scale = match scale.to_string().as_bytes()[0] {
            b'1' => scale * 2,
            b'2' => scale / 2 * 5,
            _ => scale * 2,
        };
    }
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: i64| LEFT + plot_w * i as f64 / (span - 1).max(1) as f64;
    let y = |v: u64| TOP + plot_h * (1.0 - v as f64 / scale as f64);
    let mut out = format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"entries, goals, sends and suppressions per day\" font-family=\"system-ui, sans-serif\" font-size=\"11\">"
    );
    for step in 0..=4 {
        let v = scale * step / 4;
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e6ea\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#667\">{v}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y(v) + 4.0,
            y = y(v),
        );
    }
    for i in (0..span).step_by(7) {
        let day = first + Duration::days(i);
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#667\">{}</text>",
            x(i),
            HEIGHT - BOTTOM + 16.0,
            day.format("%m-%d")
        );
    }
    for (n, (name, colour, f)) in series.iter().enumerate() {
        let points: Vec<String> = values(*f)
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i as i64), y(*v)))
            .collect();
        let total: u64 = values(*f).iter().sum();
        let _ = write!(
            out,
            "<polyline class=\"series\" data-series=\"{name}\" data-total=\"{total}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        let lx = LEFT + n as f64 * 150.0;
        let _ = write!(
            out,
            "<rect x=\"{lx}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\" fill=\"#223\">{name} ({total})</text>",
            HEIGHT - 14.0,
            lx + 14.0,
            HEIGHT - 5.0
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_series_totals_its_days_in_the_span() {
        let today: NaiveDate = "2026-12-05".parse().unwrap();
        let days = BTreeMap::from([
            (
                today,
                DayStats {
                    entered: 3,
                    goals: 1,
                    sends: 5,
                    suppressed: 0,
                },
            ),
            (
                today - Duration::days(29),
                DayStats {
                    entered: 2,
                    ..Default::default()
                },
            ),
            (
                today - Duration::days(30),
                DayStats {
                    entered: 100,
                    ..Default::default()
                },
            ),
        ]);
        let svg = daily(&days, today, 30);
        assert!(
            svg.contains("data-series=\"entered\" data-total=\"5\""),
            "{svg}"
        );
        assert!(svg.contains("data-series=\"sends\" data-total=\"5\""));
        assert!(svg.contains("entered (5)"));
    }
}
