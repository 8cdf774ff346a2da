//! [`FixedContext`]: an in-memory [`Context`] with a fixed clock, zone,
//! profile and event list. The stdlib's examples run against
//! [`FixedContext::example`] (described in [`FixedContext::EXAMPLE`], which
//! the generated reference prints), and tests build their own.

use crate::Context;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use waymark_dsl::value::Fields;
use waymark_dsl::value::Value;

/// One event in a [`FixedContext`]'s history.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub name: String,
    pub at: DateTime<Utc>,
    pub properties: Fields,
}

impl RecordedEvent {
    /// The record history functions return: the properties plus `name`
    /// and `at` (a timestamp).
    pub fn to_value(&self) -> Value {
        let mut record = self.properties.clone();
        record.insert("name".to_string(), Value::String(self.name.clone()));
        record.insert("at".to_string(), Value::Timestamp(self.at));
        Value::Record(record)
    }
}

/// A [`Context`] that is just data.
#[derive(Debug, Clone)]
pub struct FixedContext {
    pub now: DateTime<Utc>,
    pub time_zone: Tz,
    /// The profile record.
    pub user: Value,
    /// The user's events, in any order.
    pub events: Vec<RecordedEvent>,
}

impl FixedContext {
    /// What [`FixedContext::example`] holds, in words, for the reference.
    pub const EXAMPLE: &'static str = "now = 2025-11-10T12:00:00Z (20:00 in Asia/Shanghai, a Monday); \
        time zone in force Asia/Shanghai; user = `{ id: \"u1\", nickname: \"小王\", tags: [\"vip\", \"tea\"], \
        points: 1200, birthday: \"1990-11-10\", timezone: \"Asia/Shanghai\", created_at: \"2025-01-15T08:00:00Z\" }`; \
        history: `order_paid` three times, `{ amount: 100 }` at 2025-10-01T02:00:00Z, \
        `{ amount: 50.5 }` at 2025-11-01T03:00:00Z and `{ amount: 20 }` at 2025-11-09T12:00:00Z.";

    /// The context every example in the table runs against (see [`FixedContext::EXAMPLE`]).
    pub fn example() -> FixedContext {
        let at = |y, mo, d, h| {
            Utc.with_ymd_and_hms(y, mo, d, h, 0, 0)
                .single()
                .unwrap_or_default()
        };
        let text = |s: &str| Value::String(s.to_string());
        let user = Value::Record(Fields::from([
            ("id".to_string(), text("u1")),
            ("nickname".to_string(), text("小王")),
            (
                "tags".to_string(),
                Value::List(vec![text("vip"), text("tea")]),
            ),
            ("points".to_string(), Value::Number(Decimal::from(1200))),
            ("birthday".to_string(), text("1990-11-10")),
            ("timezone".to_string(), text("Asia/Shanghai")),
            ("created_at".to_string(), text("2025-01-15T08:00:00Z")),
        ]));
        let order = |at, amount: Decimal| RecordedEvent {
            name: "order_paid".to_string(),
            at,
            properties: Fields::from([("amount".to_string(), Value::Number(amount))]),
        };
        FixedContext {
            now: at(2025, 11, 10, 12),
            time_zone: chrono_tz::Asia::Shanghai,
            user,
            events: vec![
                order(at(2025, 10, 1, 2), Decimal::from(100)),
                order(at(2025, 11, 1, 3), Decimal::new(505, 1)),
                order(at(2025, 11, 9, 12), Decimal::from(20)),
            ],
        }
    }

    /// An empty context: no profile fields, no history.
    pub fn new(now: DateTime<Utc>, time_zone: Tz) -> FixedContext {
        FixedContext {
            now,
            time_zone,
            user: Value::Record(Fields::new()),
            events: Vec::new(),
        }
    }

    fn matching<'a>(
        &'a self,
        event: &'a str,
        within: Option<i64>,
    ) -> impl Iterator<Item = &'a RecordedEvent> + 'a {
        let since = within.and_then(|w| {
            self.now
                .checked_sub_signed(chrono::TimeDelta::try_seconds(w)?)
        });
        self.events
            .iter()
            .filter(move |e| e.name == event && since.is_none_or(|s| e.at > s))
    }
}

impl Context for FixedContext {
    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    fn time_zone(&self) -> Tz {
        self.time_zone
    }

    fn user(&self) -> &Value {
        &self.user
    }

    fn count(&self, event: &str, within: Option<i64>) -> u64 {
        self.matching(event, within).count() as u64
    }

    fn sum(&self, event: &str, field: &str, within: i64) -> Decimal {
        self.matching(event, Some(within))
            .filter_map(|e| e.properties.get(field).and_then(Value::as_number))
            .fold(Decimal::ZERO, |total, n| {
                total.checked_add(n).unwrap_or(total)
            })
    }

    fn last(&self, event: &str) -> Value {
        self.matching(event, None)
            .max_by_key(|e| e.at)
            .map(RecordedEvent::to_value)
            .unwrap_or_default()
    }

    fn first(&self, event: &str) -> Value {
        self.matching(event, None)
            .min_by_key(|e| e.at)
            .map(RecordedEvent::to_value)
            .unwrap_or_default()
    }
}
