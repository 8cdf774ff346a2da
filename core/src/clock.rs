//! The injected clock. The core never reads time; the shells hand it `now`
//! from a [`Clock`]: the wall clock ([`SystemClock`]) in the daemon (its
//! writer, outbox, HTTP API and log lines) and in the adapters that sign
//! requests with the date, a [`ManualClock`] in `simulate` (moved by the
//! events' timestamps), `test` (moved by `at` and `advance`) and the
//! engine's tests. [`SystemClock`] is the one place that reads the wall
//! clock.

use chrono::{DateTime, Utc};
use std::sync::Mutex;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Whole microseconds: the precision timers are stored with.
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
    }
}

/// A clock that moves only when told to, and only forward.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock to `to`; earlier times leave it where it is.
    pub fn advance_to(&self, to: DateTime<Utc>) {
        let mut now = self
            .now
            .lock()
            .expect("clock lock is never poisoned: nothing panics holding it");
        if to > *now {
            *now = to;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .expect("clock lock is never poisoned: nothing panics holding it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn manual_clock_only_moves_forward() {
        let start = DateTime::parse_from_rfc3339("2025-11-10T12:00:00Z")
            .unwrap()
            .to_utc();
        let clock = ManualClock::new(start);
        clock.advance_to(start + Duration::hours(1));
        clock.advance_to(start);
        assert_eq!(clock.now(), start + Duration::hours(1));
    }
}
