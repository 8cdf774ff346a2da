//! Guard rails applied when a send step runs (language.md §7): consent,
//! frequency caps by channel, category or all sends over rolling or
//! calendar windows, and quiet hours. Transactional journeys skip caps and
//! quiet hours, never consent.

use super::Cx;
use super::run::Owner;
use crate::model::SentMessage;
use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc};
use waymark_dsl::ast::CalendarPeriod;
use waymark_dsl::plan::{Cap, CapScope, PolicyPlan, Window};
use waymark_dsl::value::Value;

pub(crate) enum Verdict {
    Send,
    Suppress(&'static str),
    /// Held until an operator's global pause ends.
    Hold(&'static str),
    Defer {
        until: DateTime<Utc>,
        reason: &'static str,
    },
}

impl Cx<'_> {
    pub(crate) fn guard(&self, owner: &Owner<'_>, channel: &str, tz: chrono_tz::Tz) -> Verdict {
        let policy = owner.policy;
        if policy.consent_required {
            let consent = self
                .user
                .traits
                .get("consent")
                .map(|c| c.field(channel))
                .unwrap_or(&Value::Null);
            if consent != &Value::Bool(true) {
                return Verdict::Suppress("consent");
            }
        }
        if owner.transactional {
            return Verdict::Send;
        }
        if let Some(pause) = &self.d.sends_paused {
            return match pause.drop {
                true => Verdict::Suppress("global_pause"),
                false => Verdict::Hold("global_pause"),
            };
        }
        let policy_tz = policy_zone(policy);
        let mut defer_until: Option<DateTime<Utc>> = None;
        for cap in &policy.caps {
            let counts = |s: &&SentMessage| cap.counts_send(s);
            let matches_this = match &cap.counts {
                CapScope::All => true,
                CapScope::Channel(c) => c == channel,
                CapScope::Category(c) => c == owner.category,
            };
            if !matches_this {
                continue;
            }
            let since = super::window_start(Some(cap.per), self.now, policy_tz).unwrap_or(self.now);
            let mut sent: Vec<DateTime<Utc>> = self
                .user
                .sends
                .iter()
                .filter(counts)
                .map(|s| s.at)
                .filter(|t| *t > since || matches!(cap.per, Window::Calendar(_)) && *t >= since)
                .collect();
            if (sent.len() as u64) < cap.limit {
                continue;
            }
            if !policy.on_cap_defer {
                return Verdict::Suppress("cap");
            }
            sent.sort();
            let opens = match cap.per {
                Window::Rolling(seconds) => {
                    sent[sent.len() - cap.limit as usize] + Duration::seconds(seconds)
                }
                Window::Calendar(period) => next_period_start(period, self.now, policy_tz),
            };
            defer_until = Some(defer_until.map_or(opens, |d| d.max(opens)));
        }
        if let Some(until) = defer_until {
            return Verdict::Defer {
                until,
                reason: "cap",
            };
        }
        if let Some((start, end)) = policy.quiet_hours
            && let Some(until) = quiet_until(self.now, start, end, tz)
        {
            return Verdict::Defer {
                until,
                reason: "quiet_hours",
            };
        }
        Verdict::Send
    }
}

/// Drops the sends no deployed cap can count again. A cap needs, of the
/// sends it counts, the `limit` most recent within its window: whether a
/// new send fits, and when a full cap opens again, depend on those alone.
/// So each send is kept while some cap of some policy still needs it, and
/// a user's history is bounded by the caps' limits, however long their
/// windows. Sends are kept in time order.
pub(crate) fn keep_needed_sends(
    policies: &[PolicyPlan],
    sends: &mut Vec<SentMessage>,
    now: DateTime<Utc>,
) {
    sends.sort_by_key(|s| s.at);
    let mut keep = vec![false; sends.len()];
    for policy in policies {
        let tz = policy_zone(policy);
        for cap in &policy.caps {
            let Some(since) = super::window_start(Some(cap.per), now, tz) else {
                continue;
            };
            let calendar = matches!(cap.per, Window::Calendar(_));
            let mut needed = cap.limit;
            for (i, s) in sends.iter().enumerate().rev() {
                if needed == 0 || s.at < since || !calendar && s.at == since {
                    break;
                }
                if cap.counts_send(s) {
                    keep[i] = true;
                    needed -= 1;
                }
            }
        }
    }
    let mut flags = keep.into_iter();
    sends.retain(|_| flags.next().unwrap_or(false));
}

/// Whether `cap` counts this send.
trait CountsSend {
    fn counts_send(&self, s: &SentMessage) -> bool;
}

impl CountsSend for Cap {
    fn counts_send(&self, s: &SentMessage) -> bool {
        match &self.counts {
            CapScope::All => true,
            CapScope::Channel(c) => s.channel == *c,
            CapScope::Category(c) => s.category == *c,
        }
    }
}

/// A policy's zone, for its calendar windows (UTC when it names none).
pub(crate) fn policy_zone(policy: &PolicyPlan) -> chrono_tz::Tz {
    policy
        .tz
        .as_deref()
        .and_then(|z| waymark_dsl::schedule::parse_time_zone(z).ok())
        .unwrap_or(chrono_tz::UTC)
}

/// When quiet hours (minutes after midnight, possibly wrapping) end, if
/// `now` falls inside them.
pub(crate) fn quiet_until(
    now: DateTime<Utc>,
    start: u32,
    end: u32,
    tz: chrono_tz::Tz,
) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(&tz);
    let minute = local.hour_minute();
    let inside = if start < end {
        minute >= start && minute < end
    } else {
        minute >= start || minute < end
    };
    inside.then(|| super::run::next_local_time(now, end, tz))
}

trait HourMinute {
    fn hour_minute(&self) -> u32;
}

impl<T: chrono::Timelike> HourMinute for T {
    fn hour_minute(&self) -> u32 {
        self.hour() * 60 + self.minute()
    }
}

pub(crate) fn local_midnight(date: chrono::NaiveDate, tz: chrono_tz::Tz) -> DateTime<Utc> {
    let naive = date.and_time(NaiveTime::MIN);
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| naive.and_utc())
}

/// The start of the calendar period holding `now`, in `tz` (weeks start on Monday).
pub(crate) fn period_start(
    period: CalendarPeriod,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
    let first = match period {
        CalendarPeriod::Day => today,
        CalendarPeriod::Week => {
            today - Duration::days(i64::from(today.weekday().num_days_from_monday()))
        }
        CalendarPeriod::Month => today.with_day(1).unwrap_or(today),
    };
    local_midnight(first, tz)
}

/// The start of the next calendar period after the one holding `now`.
pub(crate) fn next_period_start(
    period: CalendarPeriod,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> DateTime<Utc> {
    let start = period_start(period, now, tz)
        .with_timezone(&tz)
        .date_naive();
    let next = match period {
        CalendarPeriod::Day => start + Duration::days(1),
        CalendarPeriod::Week => start + Duration::days(7),
        CalendarPeriod::Month => start
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(start + Duration::days(31)),
    };
    local_midnight(next, tz)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn quiet_hours_wrap_midnight_and_end_at_the_local_time() {
        let tz = chrono_tz::Asia::Shanghai;
        // 23:30 Shanghai is inside 22:00–08:00; it ends at 08:00 the next morning.
        assert_eq!(
            quiet_until(t("2025-11-10T15:30:00Z"), 22 * 60, 8 * 60, tz),
            Some(t("2025-11-11T00:00:00Z"))
        );
        // 07:59 is inside, 08:00 is not.
        assert!(quiet_until(t("2025-11-10T23:59:00Z"), 22 * 60, 8 * 60, tz).is_some());
        assert_eq!(
            quiet_until(t("2025-11-11T00:00:00Z"), 22 * 60, 8 * 60, tz),
            None
        );
        assert_eq!(
            quiet_until(t("2025-11-11T04:00:00Z"), 22 * 60, 8 * 60, tz),
            None
        );
    }

    #[test]
    fn calendar_periods_start_at_local_midnight_weeks_on_monday() {
        let tz = chrono_tz::Asia::Shanghai;
        // Wednesday 2025-11-12 10:00 Shanghai.
        let now = t("2025-11-12T02:00:00Z");
        let expected = [
            (
                period_start(CalendarPeriod::Day, now, tz),
                "2025-11-11T16:00:00Z",
            ),
            (
                period_start(CalendarPeriod::Week, now, tz),
                "2025-11-09T16:00:00Z",
            ),
            (
                period_start(CalendarPeriod::Month, now, tz),
                "2025-10-31T16:00:00Z",
            ),
            (
                next_period_start(CalendarPeriod::Month, now, tz),
                "2025-11-30T16:00:00Z",
            ),
        ];
        for (found, start) in expected {
            assert_eq!(found, t(start));
        }
    }
}
