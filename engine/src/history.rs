//! Event history aggregates: enough for `count`, `sum`, `last` and `first`
//! over at least 365 days without keeping every event. Per event name:
//! the total, the first and last occurrence, one bucket per UTC day (count
//! and sums of numeric properties) for 400 days, and the exact times and
//! numeric properties of the last 64 occurrences within 48 hours.
//!
//! Windows up to 48 hours are exact while the recent list reaches back far
//! enough; longer windows count whole UTC days from the day the window
//! starts (so `count(order_paid, 30d)` may include events up to a day
//! older). Storage per user is bounded: at most 200 event names (the least
//! recently seen are dropped), 400 buckets and 32 summed properties each.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use waymark_dsl::value::Value;

const MAX_NAMES: usize = 200;
const MAX_DAYS: i64 = 400;
const MAX_SUMS: usize = 32;
const RECENT: usize = 64;
const EXACT_SECONDS: i64 = 48 * 3600;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct History {
    events: BTreeMap<String, EventHistory>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct EventHistory {
    total: u64,
    #[serde(with = "stamp::opt_pair")]
    first: Option<(DateTime<Utc>, Value)>,
    #[serde(with = "stamp::opt_pair")]
    last: Option<(DateTime<Utc>, Value)>,
    days: BTreeMap<i64, Bucket>,
    #[serde(with = "stamp::pairs")]
    recent: VecDeque<(DateTime<Utc>, BTreeMap<String, Decimal>)>,
    /// The recent list dropped entries newer than 48 hours before `last`.
    #[serde(with = "stamp::opt")]
    truncated_at: Option<DateTime<Utc>>,
}

/// Times in the history as the store keeps them: integer microseconds in
/// binary formats (chrono writes RFC 3339 text, whose formatting and
/// parsing were a sixth of ingest), RFC 3339 for people (JSON). Either
/// form is read, so stores written before keep working.
mod stamp {
    use chrono::{DateTime, Utc};
    use serde::de::{self, Deserializer, Visitor};
    use serde::{Deserialize, Serialize, Serializer};

    pub(super) struct Stamp(pub DateTime<Utc>);

    impl Serialize for Stamp {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if s.is_human_readable() {
                self.0.serialize(s)
            } else {
                s.serialize_i64(self.0.timestamp_micros())
            }
        }
    }

    impl<'de> Deserialize<'de> for Stamp {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Stamp, D::Error> {
            struct Either;
            impl Visitor<'_> for Either {
                type Value = Stamp;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("microseconds since 1970 or an RFC 3339 timestamp")
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Stamp, E> {
                    DateTime::from_timestamp_micros(v)
                        .map(Stamp)
                        .ok_or_else(|| E::custom(format!("{v} µs is out of range")))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Stamp, E> {
                    let v = i64::try_from(v).map_err(|_| E::custom("timestamp out of range"))?;
                    self.visit_i64(v)
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Stamp, E> {
                    DateTime::parse_from_rfc3339(v)
                        .map(|t| Stamp(t.to_utc()))
                        .map_err(E::custom)
                }
            }
            if d.is_human_readable() {
                DateTime::<Utc>::deserialize(d).map(Stamp)
            } else {
                d.deserialize_any(Either)
            }
        }
    }

    pub(super) mod opt {
        use super::Stamp;
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        pub fn serialize<S: Serializer>(
            v: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            v.map(Stamp).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Ok(Option::<Stamp>::deserialize(d)?.map(|s| s.0))
        }
    }

    pub(super) mod opt_pair {
        use super::Stamp;
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        pub fn serialize<S: Serializer, T: Serialize>(
            v: &Option<(DateTime<Utc>, T)>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            v.as_ref().map(|(t, x)| (Stamp(*t), x)).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
            d: D,
        ) -> Result<Option<(DateTime<Utc>, T)>, D::Error> {
            Ok(Option::<(Stamp, T)>::deserialize(d)?.map(|(t, x)| (t.0, x)))
        }
    }

    pub(super) mod pairs {
        use super::Stamp;
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serialize, Serializer};
        use std::collections::VecDeque;

        pub fn serialize<S: Serializer, T: Serialize>(
            v: &VecDeque<(DateTime<Utc>, T)>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(|(t, x)| (Stamp(*t), x)))
        }

        pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
            d: D,
        ) -> Result<VecDeque<(DateTime<Utc>, T)>, D::Error> {
            Ok(Vec::<(Stamp, T)>::deserialize(d)?
                .into_iter()
                .map(|(t, x)| (t.0, x))
                .collect())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct Bucket {
    count: u64,
    sums: BTreeMap<String, Decimal>,
}

fn day(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

impl History {
    /// Adds one event (its properties as a record).
    pub fn record(&mut self, name: &str, at: DateTime<Utc>, properties: &Value) {
        if !self.events.contains_key(name) && self.events.len() >= MAX_NAMES {
            let oldest = self
                .events
                .iter()
                .min_by_key(|(_, h)| h.last.as_ref().map(|l| l.0))
                .map(|(n, _)| n.clone());
            if let Some(oldest) = oldest {
                self.events.remove(&oldest);
            }
        }
        let h = self.events.entry(name.to_string()).or_default();
        h.total += 1;
        if h.first.as_ref().is_none_or(|(t, _)| at < *t) {
            h.first = Some((at, properties.clone()));
        }
        if h.last.as_ref().is_none_or(|(t, _)| at >= *t) {
            h.last = Some((at, properties.clone()));
        }
        let numbers: BTreeMap<String, Decimal> = match properties {
            Value::Record(map) => map
                .iter()
                .filter_map(|(k, v)| v.as_number().map(|n| (k.clone(), n)))
                .take(MAX_SUMS)
                .collect(),
            _ => BTreeMap::new(),
        };
        let bucket = h.days.entry(day(at)).or_default();
        bucket.count += 1;
        for (k, v) in &numbers {
            if bucket.sums.contains_key(k) || bucket.sums.len() < MAX_SUMS {
                *bucket.sums.entry(k.clone()).or_default() += *v;
            }
        }
        let horizon = day(at) - MAX_DAYS;
        while h.days.first_key_value().is_some_and(|(d, _)| *d < horizon) {
            h.days.pop_first();
        }
        let position = h.recent.partition_point(|(t, _)| *t <= at);
        h.recent.insert(position, (at, numbers));
        let newest = h.recent.back().map(|r| r.0).unwrap_or(at);
        while h.recent.len() > RECENT
            || h.recent
                .front()
                .is_some_and(|(t, _)| (newest - *t).num_seconds() > EXACT_SECONDS)
        {
            if let Some((t, _)) = h.recent.pop_front()
                && (newest - t).num_seconds() <= EXACT_SECONDS
            {
                h.truncated_at = Some(h.truncated_at.map_or(t, |old| old.max(t)));
            }
        }
    }

    /// Whether the exact recent list covers everything since `cutoff`.
    fn exact_since(h: &EventHistory, cutoff: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        (now - cutoff).num_seconds() <= EXACT_SECONDS && h.truncated_at.is_none_or(|t| t < cutoff)
    }

    pub fn count(&self, name: &str, within: Option<i64>, now: DateTime<Utc>) -> u64 {
        let Some(h) = self.events.get(name) else {
            return 0;
        };
        let Some(within) = within else { return h.total };
        let cutoff = now - Duration::seconds(within);
        if Self::exact_since(h, cutoff, now) {
            return h
                .recent
                .iter()
                .filter(|(t, _)| *t > cutoff && *t <= now)
                .count() as u64;
        }
        h.days
            .range(day(cutoff)..=day(now))
            .map(|(_, b)| b.count)
            .sum()
    }

    pub fn sum(&self, name: &str, field: &str, within: i64, now: DateTime<Utc>) -> Decimal {
        let Some(h) = self.events.get(name) else {
            return Decimal::ZERO;
        };
        let cutoff = now - Duration::seconds(within);
        if Self::exact_since(h, cutoff, now) {
            return h
                .recent
                .iter()
                .filter(|(t, _)| *t > cutoff && *t <= now)
                .filter_map(|(_, n)| n.get(field))
                .sum();
        }
        h.days
            .range(day(cutoff)..=day(now))
            .filter_map(|(_, b)| b.sums.get(field))
            .sum()
    }

    fn snapshot(name: &str, entry: Option<&(DateTime<Utc>, Value)>) -> Value {
        let Some((at, props)) = entry else {
            return Value::Null;
        };
        let mut map = match props {
            Value::Record(m) => m.clone(),
            _ => BTreeMap::new(),
        };
        map.insert("name".into(), Value::String(name.to_string()));
        map.insert("at".into(), Value::Timestamp(*at));
        Value::Record(map)
    }

    pub fn last(&self, name: &str) -> Value {
        Self::snapshot(name, self.events.get(name).and_then(|h| h.last.as_ref()))
    }

    pub fn first(&self, name: &str) -> Value {
        Self::snapshot(name, self.events.get(name).and_then(|h| h.first.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_store_keeps_times_as_integers_and_still_reads_the_text_it_wrote_before() {
        let mut h = History::default();
        let props = Value::from_json(&serde_json::json!({ "amount": 12.5 }));
        h.record("order_paid", at(1, 9), &props);
        h.record("order_paid", at(2, 10), &props);
        let stored = rmp_serde::to_vec_named(&h).unwrap();
        assert_eq!(rmp_serde::from_slice::<History>(&stored).unwrap(), h);
        // No RFC 3339 text is written for the history's times.
        let text = String::from_utf8_lossy(&stored);
        assert!(!text.contains("2025-"), "{text}");
        // What earlier versions stored: the same fields, with chrono's
        // RFC 3339 strings for times.
        #[derive(Serialize, Deserialize)]
        struct Before {
            events: BTreeMap<String, BeforeEvent>,
        }
        #[derive(Serialize, Deserialize)]
        struct BeforeEvent {
            total: u64,
            first: Option<(DateTime<Utc>, Value)>,
            last: Option<(DateTime<Utc>, Value)>,
            days: BTreeMap<i64, Bucket>,
            recent: VecDeque<(DateTime<Utc>, BTreeMap<String, Decimal>)>,
            truncated_at: Option<DateTime<Utc>>,
        }
        let json = serde_json::to_value(&h).unwrap();
        assert!(
            json.to_string().contains("2025-"),
            "JSON keeps text: {json}"
        );
        let before: Before = serde_json::from_value(json.clone()).unwrap();
        let older = rmp_serde::to_vec_named(&before).unwrap();
        assert!(String::from_utf8_lossy(&older).contains("2025-"));
        assert_eq!(rmp_serde::from_slice::<History>(&older).unwrap(), h);
        assert_eq!(serde_json::from_value::<History>(json).unwrap(), h);
    }

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
            + Duration::days(i64::from(day))
            + Duration::hours(i64::from(hour))
    }

    fn amount(n: i64) -> Value {
        Value::Record([("amount".to_string(), Value::Number(Decimal::from(n)))].into())
    }

    #[test]
    fn short_windows_are_exact_and_long_windows_count_whole_days() {
        let mut h = History::default();
        h.record("order_paid", at(0, 1), &amount(10));
        h.record("order_paid", at(10, 23), &amount(20));
        h.record("order_paid", at(11, 5), &amount(30));
        let now = at(11, 6);
        assert_eq!(
            h.count("order_paid", Some(3600), now),
            0,
            "like caps, a rolling window leaves out its start instant"
        );
        assert_eq!(h.count("order_paid", Some(3601), now), 1);
        assert_eq!(h.count("order_paid", Some(2 * 3600), now), 1);
        assert_eq!(h.count("order_paid", Some(8 * 3600), now), 2);
        assert_eq!(h.count("order_paid", None, now), 3);
        assert_eq!(
            h.sum("order_paid", "amount", 30 * 86_400, now),
            Decimal::from(60)
        );
        assert_eq!(
            h.sum("order_paid", "amount", 8 * 3600, now),
            Decimal::from(50)
        );
        assert_eq!(
            h.last("order_paid").field("amount"),
            &Value::Number(Decimal::from(30))
        );
        assert_eq!(
            h.first("order_paid").field("amount"),
            &Value::Number(Decimal::from(10))
        );
        assert_eq!(h.last("nothing"), Value::Null);
    }

    #[test]
    fn a_year_of_daily_events_stays_bounded_and_counts_365_days() {
        let mut h = History::default();
        for d in 0..800 {
            h.record("checkin", at(d, 9), &Value::Record(BTreeMap::new()));
        }
        let e = &h.events["checkin"];
        assert!(e.days.len() <= MAX_DAYS as usize + 1);
        assert!(e.recent.len() <= RECENT);
        let now = at(799, 10);
        assert_eq!(h.count("checkin", Some(365 * 86_400), now), 366);
        assert_eq!(h.count("checkin", None, now), 800);
    }
}
