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
    #[serde(with = "waymark_dsl::stored::stamp_opt_pair", default)]
    first: Option<(DateTime<Utc>, Value)>,
    #[serde(with = "waymark_dsl::stored::stamp_opt_pair", default)]
    last: Option<(DateTime<Utc>, Value)>,
    days: BTreeMap<i64, Bucket>,
    #[serde(with = "recent")]
    recent: VecDeque<(DateTime<Utc>, BTreeMap<String, Decimal>)>,
    /// The recent list dropped entries newer than 48 hours before `last`.
    #[serde(with = "waymark_dsl::stored::stamp_opt", default)]
    truncated_at: Option<DateTime<Utc>>,
}

/// The recent list as stored: `[time, {field: number}]` pairs, compact
/// in binary formats (see [`waymark_dsl::stored`]).
mod recent {
    use chrono::{DateTime, Utc};
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::{BTreeMap, VecDeque};
    use waymark_dsl::stored::{Num, Stamp};

    type Recent = VecDeque<(DateTime<Utc>, BTreeMap<String, Decimal>)>;

    struct Sums<'a>(&'a BTreeMap<String, Decimal>);

    impl Serialize for Sums<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, n)| (k, Num(*n))))
        }
    }

    pub fn serialize<S: Serializer>(v: &Recent, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(t, sums)| (Stamp(*t), Sums(sums))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Recent, D::Error> {
        Ok(Vec::<(Stamp, BTreeMap<String, Num>)>::deserialize(d)?
            .into_iter()
            .map(|(t, sums)| (t.0, sums.into_iter().map(|(k, n)| (k, n.0)).collect()))
            .collect())
    }
}

/// One UTC day: `[count, sums]` in binary formats (no field names
/// repeated on each of up to 400 days), a struct in JSON. Both forms are
/// read.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
struct Bucket {
    count: u64,
    #[serde(with = "waymark_dsl::stored::num_map")]
    sums: BTreeMap<String, Decimal>,
}

impl Serialize for Bucket {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeStruct, SerializeTuple};
        struct Sums<'a>(&'a BTreeMap<String, Decimal>);
        impl Serialize for Sums<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                waymark_dsl::stored::num_map::serialize(self.0, s)
            }
        }
        if s.is_human_readable() {
            let mut st = s.serialize_struct("Bucket", 2)?;
            st.serialize_field("count", &self.count)?;
            st.serialize_field("sums", &Sums(&self.sums))?;
            st.end()
        } else {
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(&self.count)?;
            t.serialize_element(&Sums(&self.sums))?;
            t.end()
        }
    }
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
        assert!(
            !text.contains("12.5"),
            "numbers are not text either: {text}"
        );
        assert!(!text.contains("count"), "days are [count, sums]: {text}");
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
            days: BTreeMap<i64, BeforeBucket>,
            recent: VecDeque<(DateTime<Utc>, BTreeMap<String, Decimal>)>,
            truncated_at: Option<DateTime<Utc>>,
        }
        #[derive(Serialize, Deserialize)]
        struct BeforeBucket {
            count: u64,
            sums: BTreeMap<String, Decimal>,
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
