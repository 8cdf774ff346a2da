//! Runtime values: what expressions evaluate to and what profiles, events
//! and bindings hold. Numbers are exact decimals (`0.1 + 0.2 == 0.3`).
//! Values serialize in a self-describing way (tagged), so stored state can
//! gain fields later.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

use crate::types::Type;

/// A record's fields: names to values, in name order.
pub type Fields = crate::names::NameMap<Value>;

/// A value read straight from JSON text, as [`Value::from_json`] reads
/// parsed JSON (numbers as exact decimals, objects as records; of a key
/// given twice the last counts), without building the parsed JSON first.
#[derive(Debug, Clone, PartialEq)]
pub struct FromJson(pub Value);

impl<'de> Deserialize<'de> for FromJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FromJson, D::Error> {
        d.deserialize_any(JsonVisitor).map(FromJson)
    }
}

struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(Decimal::from(n)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(Decimal::from(n)))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        // Exactly as from_json reads it: through JSON's own number.
        Ok(serde_json::Number::from_f64(n)
            .map(|n| Value::from_json(&serde_json::Value::Number(n)))
            .unwrap_or(Value::Null))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(FromJson(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some((key, FromJson(value))) = map.next_entry::<String, FromJson>()? {
            pairs.push((key, value));
        }
        Ok(Value::Record(pairs.into_iter().collect()))
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(#[serde(with = "crate::stored::num")] Decimal),
    String(String),
    Timestamp(#[serde(with = "crate::stored::stamp")] DateTime<Utc>),
    Date(NaiveDate),
    /// Seconds.
    Duration(i64),
    /// Minutes after midnight.
    TimeOfDay(u32),
    List(Vec<Value>),
    Record(Fields),
}

impl Value {
    pub fn type_of(&self) -> Type {
        match self {
            Value::Null => Type::Null,
            Value::Bool(_) => Type::Bool,
            Value::Number(_) => Type::Number,
            Value::String(_) => Type::String,
            Value::Timestamp(_) => Type::Timestamp,
            Value::Date(_) => Type::Date,
            Value::Duration(_) => Type::Duration,
            Value::TimeOfDay(_) => Type::TimeOfDay,
            Value::List(_) => Type::List,
            Value::Record(_) => Type::Record,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// `record.key`; null for a missing key or a value that is not a record.
    pub fn field(&self, key: &str) -> &Value {
        static NULL: Value = Value::Null;
        match self {
            Value::Record(map) => map.get(key).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    /// A timestamp, also from an RFC 3339 string (event properties arrive as JSON).
    pub fn as_timestamp(&self) -> Option<DateTime<Utc>> {
        match self {
            Value::Timestamp(t) => Some(*t),
            Value::String(s) => DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            _ => None,
        }
    }

    /// A date, also from a `YYYY-MM-DD` string or a timestamp's UTC date.
    pub fn as_date(&self) -> Option<NaiveDate> {
        match self {
            Value::Date(d) => Some(*d),
            Value::String(s) => NaiveDate::from_str(s)
                .ok()
                .or_else(|| self.as_timestamp().map(|t| t.date_naive())),
            Value::Timestamp(t) => Some(t.date_naive()),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<Decimal> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// From JSON as ingested: numbers become exact decimals; strings stay
    /// strings (functions that need timestamps read RFC 3339 strings).
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Decimal::from_str(&n.to_string())
                .or_else(|_| Decimal::from_scientific(&n.to_string()))
                .map(Value::Number)
                .unwrap_or(Value::Null),
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(items) => {
                Value::List(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(map) => Value::Record(
                map.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// To JSON for journals and APIs: timestamps as RFC 3339 UTC, durations
    /// as seconds, times of day as `HH:MM`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => decimal_to_json(*n),
            Value::String(s) => J::String(s.clone()),
            Value::Timestamp(t) => J::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Value::Date(d) => J::String(d.to_string()),
            Value::Duration(s) => J::from(*s),
            Value::TimeOfDay(m) => J::String(format!("{:02}:{:02}", m / 60, m % 60)),
            Value::List(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Record(map) => {
                J::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// How the value reads inside an interpolated string.
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Number(n) => n.normalize().to_string(),
            Value::Bool(b) => b.to_string(),
            other => match other.to_json() {
                serde_json::Value::String(s) => s,
                json => json.to_string(),
            },
        }
    }
}

/// A decimal as a JSON number: integers exactly, fractions through `f64`.
pub fn decimal_to_json(n: Decimal) -> serde_json::Value {
    let n = n.normalize();
    if n.scale() == 0
        && let Some(i) = n.to_i64()
    {
        return serde_json::Value::from(i);
    }
    n.to_f64()
        .map(serde_json::Value::from)
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_arithmetic_is_exact() {
        let a = Decimal::from_str("0.1").unwrap();
        let b = Decimal::from_str("0.2").unwrap();
        assert_eq!(
            Value::Number(a + b),
            Value::Number(Decimal::from_str("0.3").unwrap())
        );
    }

    #[test]
    fn json_round_trip_keeps_numbers_and_structure() {
        let json = serde_json::json!({"value": 199, "price": 19.9, "items": ["tea"], "ok": true, "none": null});
        let value = Value::from_json(&json);
        assert_eq!(value.field("value"), &Value::Number(Decimal::from(199)));
        assert_eq!(value.to_json(), json);
    }
}
