//! Platform quotas on what one customer may receive: WeCom lets a
//! customer get as many mass messages a calendar month as the month has
//! days (or, as an administrator sets it, 7 a week or 1 a day), counting
//! every app's and staff member's together. The engine counts its own
//! sends against the quota before a task is made (a send over it is
//! `suppressed` with reason `platform_quota` and the time the quota
//! resets) and corrects the count by what the platform reports: a
//! customer reported over quota has used it up; one not sent to (not a
//! friend, not confirmed, refused) did not use theirs. Others' sends are
//! invisible to the engine, so its count is a lower bound.

use crate::deployment::PlatformQuota;
use crate::model::{QuotaCount, SendOutcome};
use chrono::{DateTime, Utc};
use waymark_dsl::plan::CalendarPeriod;

/// The period holding `now`: its start, when the next starts, and how
/// many messages it allows.
pub(crate) fn period(q: &PlatformQuota, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>, u32) {
    let since = super::guard::period_start(q.per, now, q.tz);
    let resets = super::guard::next_period_start(q.per, now, q.tz);
    let limit = q.limit.unwrap_or_else(|| match q.per {
        CalendarPeriod::Month => {
            let days =
                resets.with_timezone(&q.tz).date_naive() - since.with_timezone(&q.tz).date_naive();
            days.num_days().clamp(1, 31) as u32
        }
        CalendarPeriod::Week => 7,
        CalendarPeriod::Day => 1,
    });
    (since, resets, limit)
}

/// Corrects a customer's count by what the platform said of one send.
pub(crate) fn correct(count: Option<&mut QuotaCount>, q: &PlatformQuota, outcome: &SendOutcome) {
    let Some(count) = count else { return };
    let (since, _, limit) = period(q, outcome.send.at);
    if count.since != since {
        return;
    }
    match outcome.outcome.as_str() {
        "sent" => {}
        "over_quota" => count.used = count.used.max(limit),
        _ => count.used = count.used.saturating_sub(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(per: CalendarPeriod, limit: Option<u32>) -> PlatformQuota {
        PlatformQuota {
            group: "wecom_mass:ww1".into(),
            per,
            limit,
            tz: chrono_tz::Asia::Shanghai,
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn what_the_platform_reports_corrects_the_count_of_the_sends_period() {
        let q = quota(CalendarPeriod::Month, None);
        let at = t("2026-12-06T08:00:00Z");
        let (since, _, _) = period(&q, at);
        let mut send = crate::journal::Record::new(at, "u1", crate::journal::Kind::Send);
        send.channel = Some("mass".into());
        let outcome = |what: &str| SendOutcome::new(&send, what, None, at);
        let mut count = QuotaCount { since, used: 2 };
        // Others' sends count too: over quota means used up.
        correct(Some(&mut count), &q, &outcome("over_quota"));
        assert_eq!(count.used, 31);
        let mut count = QuotaCount { since, used: 2 };
        correct(Some(&mut count), &q, &outcome("sent"));
        assert_eq!(count.used, 2);
        for nothing in ["not_friend", "not_confirmed", "failed"] {
            let mut count = QuotaCount { since, used: 2 };
            correct(Some(&mut count), &q, &outcome(nothing));
            assert_eq!(count.used, 1, "{nothing}");
        }
        // A send of last month corrects nothing of this month's count.
        let mut count = QuotaCount {
            since: t("2027-01-01T00:00:00Z"),
            used: 2,
        };
        correct(Some(&mut count), &q, &outcome("not_confirmed"));
        assert_eq!(count.used, 2);
    }

    #[test]
    fn a_month_allows_its_days_a_week_7_a_day_1_in_china_time() {
        // 2026-02-01 03:00 Shanghai is still January in UTC.
        let (since, resets, limit) = period(
            &quota(CalendarPeriod::Month, None),
            t("2026-01-31T19:00:00Z"),
        );
        assert_eq!(
            (since, resets, limit),
            (t("2026-01-31T16:00:00Z"), t("2026-02-28T16:00:00Z"), 28)
        );
        let (_, _, limit) = period(
            &quota(CalendarPeriod::Month, None),
            t("2026-12-06T08:00:00Z"),
        );
        assert_eq!(limit, 31);
        // Sunday 2026-12-06: the ISO week began Monday the 30th.
        let (since, resets, limit) = period(
            &quota(CalendarPeriod::Week, None),
            t("2026-12-06T08:00:00Z"),
        );
        assert_eq!(
            (since, resets, limit),
            (t("2026-11-29T16:00:00Z"), t("2026-12-06T16:00:00Z"), 7)
        );
        let (_, resets, limit) =
            period(&quota(CalendarPeriod::Day, None), t("2026-12-06T08:00:00Z"));
        assert_eq!((resets, limit), (t("2026-12-06T16:00:00Z"), 1));
    }
}
