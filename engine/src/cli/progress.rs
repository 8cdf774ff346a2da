//! Progress of a long `simulate` on stderr, when stderr is a terminal and
//! `--quiet` is not given: lines read per second, the simulated time
//! reached, and an estimate of the time left from the share of the events
//! file read so far; then one final line with the event rate. Redrawn in
//! place at most five times a second. Nothing here reaches stdout, so the
//! simulation's output stays byte-for-byte the same.

use chrono::{DateTime, SecondsFormat, Utc};
use std::time::{Duration, Instant};

/// Files shorter than this many lines finish before progress would help.
const QUIET_BELOW_LINES: u64 = 100_000;
/// The shortest time between two redraws.
const REDRAW_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub struct Progress {
    /// The events file's size in bytes, for the estimate.
    total_bytes: u64,
    started: Instant,
    drawn: Option<Instant>,
    lines: u64,
    bytes: u64,
}

impl Progress {
    pub fn new(total_bytes: u64, started: Instant) -> Progress {
        Progress {
            total_bytes,
            started,
            drawn: None,
            lines: 0,
            bytes: 0,
        }
    }

    /// Counts one line of `len` bytes (its newline included); returns the
    /// status line to draw now, if it is time to redraw.
    pub fn line(
        &mut self,
        len: usize,
        clock: Option<DateTime<Utc>>,
        now: Instant,
    ) -> Option<String> {
        self.lines += 1;
        self.bytes += len as u64;
        if self.lines < QUIET_BELOW_LINES
            || self
                .drawn
                .is_some_and(|d| now.duration_since(d) < REDRAW_EVERY)
        {
            return None;
        }
        self.drawn = Some(now);
        Some(self.status(clock, now))
    }

    /// Whether a status line has been drawn (and so needs ending).
    pub fn shown(&self) -> bool {
        self.drawn.is_some()
    }

    /// `{lines} lines, {rate} lines/s, clock at {time}, {share}% read, about {eta} left`.
    pub fn status(&self, clock: Option<DateTime<Utc>>, now: Instant) -> String {
        let seconds = now.duration_since(self.started).as_secs_f64().max(1e-9);
        let rate = self.lines as f64 / seconds;
        let share = if self.total_bytes == 0 {
            1.0
        } else {
            (self.bytes as f64 / self.total_bytes as f64).min(1.0)
        };
        let left = if share > 0.0 {
            seconds * (1.0 - share) / share
        } else {
            0.0
        };
        format!(
            "{} lines, {:.0} lines/s, clock at {}, {:.0}% read, about {} left",
            self.lines,
            rate,
            clock.map_or("the first event".into(), |c| c
                .to_rfc3339_opts(SecondsFormat::Secs, true)),
            share * 100.0,
            short(Duration::from_secs_f64(left)),
        )
    }

    /// The final line: `{events} events in {time} ({rate} events/s)`.
    pub fn finished(&self, events: u64, now: Instant) -> String {
        let took = now.duration_since(self.started);
        let rate = events as f64 / took.as_secs_f64().max(1e-9);
        format!("{events} events in {} ({rate:.0} events/s)", short(took))
    }
}

/// A duration as a person reads a wait: `45s`, `3m 20s`, `1h 5m`.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn short_files_show_no_progress_and_long_ones_redraw_at_most_five_times_a_second() {
        let start = Instant::now();
        let mut p = Progress::new(2_000_000, start);
        let clock = Some(at("2025-11-11T00:00:00Z"));
        for _ in 1..QUIET_BELOW_LINES {
            assert_eq!(p.line(10, clock, start + Duration::from_secs(1)), None);
        }
        assert!(!p.shown());
        let first = p.line(10, clock, start + Duration::from_secs(1));
        assert!(first.is_some());
        assert_eq!(p.line(10, clock, start + Duration::from_millis(1100)), None);
        assert!(
            p.line(10, clock, start + Duration::from_millis(1200))
                .is_some()
        );
        assert!(p.shown());
    }

    #[test]
    fn the_status_gives_the_rate_the_clock_the_share_read_and_the_time_left() {
        let start = Instant::now();
        let mut p = Progress::new(1_000, start);
        for _ in 0..250 {
            p.line(1, None, start);
        }
        let status = p.status(
            Some(at("2025-11-11T08:00:00Z")),
            start + Duration::from_secs(10),
        );
        assert_eq!(
            status,
            "250 lines, 25 lines/s, clock at 2025-11-11T08:00:00Z, 25% read, about 30.0s left"
        );
        assert_eq!(
            p.finished(200_000, start + Duration::from_secs(200)),
            "200000 events in 3m 20s (1000 events/s)"
        );
    }
}
