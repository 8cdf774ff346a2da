//! WeCom's base API rate, kept on this side: per corporation per API,
//! 10,000 calls a minute and 150,000 an hour; past either, WeCom bans the
//! API for the rest of that minute or hour (errcode 45009). Every WeCom
//! channel of the daemon counts its calls here, by corporation and API
//! path, in natural minutes and hours, so that a burst (a large batch of
//! sends, several channels of one corporation) is put off — a quota
//! deferral, no failed attempt — before WeCom bans it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use waymark_channel::DeliveryError;

/// WeCom's documented limits.
pub const PER_MINUTE: u32 = 10_000;
pub const PER_HOUR: u32 = 150_000;

/// Calls counted per key in the current natural minute and hour.
pub struct Budget {
    per_minute: u32,
    per_hour: u32,
    counts: Mutex<HashMap<String, Counts>>,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    minute: u64,
    in_minute: u32,
    hour: u64,
    in_hour: u32,
}

impl Budget {
    pub fn new(per_minute: u32, per_hour: u32) -> Budget {
        Budget {
            per_minute,
            per_hour,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call of `key` at `unix_secs`, or says how long until the
    /// window that is full starts again.
    pub fn take(&self, key: &str, unix_secs: u64) -> Result<(), Duration> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let c = counts.entry(key.to_string()).or_default();
        let (minute, hour) = (unix_secs / 60, unix_secs / 3600);
        if c.minute != minute {
            (c.minute, c.in_minute) = (minute, 0);
        }
        if c.hour != hour {
            (c.hour, c.in_hour) = (hour, 0);
        }
        if c.in_hour >= self.per_hour {
            return Err(Duration::from_secs((hour + 1) * 3600 - unix_secs));
        }
        if c.in_minute >= self.per_minute {
            return Err(Duration::from_secs((minute + 1) * 60 - unix_secs));
        }
        c.in_minute += 1;
        c.in_hour += 1;
        Ok(())
    }
}

/// The daemon's WeCom budget.
static WECOM: std::sync::LazyLock<Budget> =
    std::sync::LazyLock::new(|| Budget::new(PER_MINUTE, PER_HOUR));

/// Takes one call of `path` for corporation `corp` from WeCom's budget;
/// over it, a quota error that puts the call off until the window turns.
pub fn wecom_call(corp: &str, path: &str) -> Result<(), DeliveryError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    WECOM
        .take(&format!("{corp} {path}"), now)
        .map_err(|wait| DeliveryError::Quota {
            message: format!(
                "WeCom's rate for {path} (corporation {corp}) is used up for now: at most {PER_MINUTE} calls a minute and {PER_HOUR} an hour"
            ),
            wait,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_past_a_minutes_or_an_hours_limit_wait_for_the_next_one() {
        let b = Budget::new(2, 3);
        let t = 3_600 * 100 + 10; // 10 s into an hour and a minute
        assert!(b.take("ww1 /send", t).is_ok());
        assert!(b.take("ww1 /send", t + 1).is_ok());
        assert_eq!(b.take("ww1 /send", t + 2), Err(Duration::from_secs(48)));
        // Another API, another corporation: their own budgets.
        assert!(b.take("ww1 /other", t + 2).is_ok());
        assert!(b.take("ww2 /send", t + 2).is_ok());
        // The next minute: one more, then the hour is full.
        assert!(b.take("ww1 /send", t + 60).is_ok());
        assert_eq!(
            b.take("ww1 /send", t + 120),
            Err(Duration::from_secs(3_600 - 130))
        );
        // The next hour starts afresh.
        assert!(b.take("ww1 /send", t + 3_600).is_ok());
    }
}
