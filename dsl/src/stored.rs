//! How times and numbers are kept in binary stores. chrono writes a time as
//! RFC 3339 text and rust_decimal writes a number as decimal text; in the
//! engine's store, formatting and parsing that text was most of the cost
//! of encoding a user. Binary formats get integers instead: a time as
//! microseconds since 1970, a local day as days since 1 January of year 1
//! (chrono's `num_days_from_ce`), a number as an integer when it is whole,
//! else as `[mantissa, scale]` (or as text, when the mantissa is past
//! `i64`).
//! Human-readable formats (JSON) keep the text. Binary formats read back
//! only what is written now: a store of an earlier format is refused
//! whole (see the engine's store), so no earlier form is read here.
//!
//! Use with `#[serde(with = "waymark_dsl::stored::stamp")]` and friends.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// A time that encodes as integer microseconds in binary formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(pub DateTime<Utc>);

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
        struct Micros;
        impl Visitor<'_> for Micros {
            type Value = Stamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("microseconds since 1970")
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
        }
        if d.is_human_readable() {
            DateTime::<Utc>::deserialize(d).map(Stamp)
        } else {
            d.deserialize_any(Micros)
        }
    }
}

/// A local day that encodes as an integer (days since 1 January of year 1)
/// in binary formats. Written as text, a day cost a formatted string on
/// every encode of a user with a check-in streak or a skipped entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(pub NaiveDate);

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.0.serialize(s)
        } else {
            s.serialize_i32(self.0.num_days_from_ce())
        }
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Day, D::Error> {
        struct Days;
        impl Visitor<'_> for Days {
            type Value = Day;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("days since 1 January of year 1")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Day, E> {
                i32::try_from(v)
                    .ok()
                    .and_then(NaiveDate::from_num_days_from_ce_opt)
                    .map(Day)
                    .ok_or_else(|| E::custom(format!("day {v} is out of range")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Day, E> {
                let v = i64::try_from(v).map_err(|_| E::custom("day out of range"))?;
                self.visit_i64(v)
            }
        }
        if d.is_human_readable() {
            NaiveDate::deserialize(d).map(Day)
        } else {
            d.deserialize_any(Days)
        }
    }
}

/// A number that encodes as an integer or `[mantissa, scale]` in binary formats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num(pub Decimal);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return Serialize::serialize(&self.0, s);
        }
        // The scale is kept as it is (12.50 stays 12.50 when printed).
        let n = self.0;
        match i64::try_from(n.mantissa()) {
            Ok(m) if n.scale() == 0 => s.serialize_i64(m),
            Ok(m) => (m, n.scale()).serialize(s),
            Err(_) => Serialize::serialize(&self.0, s),
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer, [mantissa, scale] or a decimal number as text")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(Decimal::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(Decimal::from(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                v.parse::<Decimal>()
                    .or_else(|_| Decimal::from_scientific(v))
                    .map(Num)
                    .map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Num, A::Error> {
                let m: i64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let scale: u32 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                Decimal::try_from_i128_with_scale(i128::from(m), scale)
                    .map(Num)
                    .map_err(de::Error::custom)
            }
        }
        if d.is_human_readable() {
            <Decimal as Deserialize>::deserialize(d).map(Num)
        } else {
            d.deserialize_any(Any)
        }
    }
}

/// `#[serde(with = "stamp")]` for a `DateTime<Utc>`.
pub mod stamp {
    use super::Stamp;
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        Stamp(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        Ok(Stamp::deserialize(d)?.0)
    }
}

/// `#[serde(with = "stamp_opt")]` for an `Option<DateTime<Utc>>`.
pub mod stamp_opt {
    use super::Stamp;
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        v.map(Stamp).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Ok(Option::<Stamp>::deserialize(d)?.map(|s| s.0))
    }
}

/// `#[serde(with = "stamp_opt_pair")]` for an `Option<(DateTime<Utc>, T)>`.
pub mod stamp_opt_pair {
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

/// `#[serde(with = "stamp_pairs")]` for a sequence of `(DateTime<Utc>, T)`
/// (a `Vec` or a `VecDeque`).
pub mod stamp_pairs {
    use super::Stamp;
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<'a, S, T, C>(v: &'a C, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        T: Serialize + 'a,
        &'a C: IntoIterator<Item = &'a (DateTime<Utc>, T)>,
    {
        s.collect_seq(v.into_iter().map(|(t, x)| (Stamp(*t), x)))
    }

    pub fn deserialize<'de, D, T, C>(d: D) -> Result<C, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
        C: FromIterator<(DateTime<Utc>, T)>,
    {
        Ok(Vec::<(Stamp, T)>::deserialize(d)?
            .into_iter()
            .map(|(t, x)| (t.0, x))
            .collect())
    }
}

/// `#[serde(with = "num")]` for a `Decimal`.
pub mod num {
    use super::Num;
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        Num(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        Ok(Num::deserialize(d)?.0)
    }
}

/// `#[serde(with = "num_map")]` for a `BTreeMap<String, Decimal>`.
pub mod num_map {
    use super::Num;
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        v: &BTreeMap<String, Decimal>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(v.iter().map(|(k, n)| (k, Num(*n))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Decimal>, D::Error> {
        Ok(BTreeMap::<String, Num>::deserialize(d)?
            .into_iter()
            .map(|(k, n)| (k, n.0))
            .collect())
    }
}

/// `#[serde(with = "day_opt")]` for an `Option<NaiveDate>`.
pub mod day_opt {
    use super::Day;
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
        v.map(Day).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        Ok(Option::<Day>::deserialize(d)?.map(|d| d.0))
    }
}

/// `#[serde(with = "day_map")]` for a `BTreeMap<String, NaiveDate>`.
pub mod day_map {
    use super::Day;
    use chrono::NaiveDate;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        v: &BTreeMap<String, NaiveDate>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(v.iter().map(|(k, d)| (k, Day(*d))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, NaiveDate>, D::Error> {
        Ok(BTreeMap::<String, Day>::deserialize(d)?
            .into_iter()
            .map(|(k, d)| (k, d.0))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Both {
        #[serde(with = "stamp")]
        at: DateTime<Utc>,
        #[serde(with = "num")]
        n: Decimal,
    }

    /// chrono's and rust_decimal's own forms: text, which JSON keeps.
    #[derive(Serialize)]
    struct Plain {
        at: DateTime<Utc>,
        n: Decimal,
    }

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-11-10T08:30:00.123456Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn numbers_round_trip_through_every_binary_form_and_json_keeps_text() {
        for text in [
            "0",
            "42",
            "-7",
            "12.50",
            "0.001",
            "9223372036854775807",
            "-9223372036854775808",
            // Mantissa past i64: kept as text.
            "79228162514264337593543950335",
            "-0.0000000000000000000000000001",
        ] {
            let n = Decimal::from_str(text).unwrap();
            let value = Both { at: at(), n };
            let bytes = rmp_serde::to_vec_named(&value).unwrap();
            let back = rmp_serde::from_slice::<Both>(&bytes).unwrap();
            assert_eq!(back, value, "{text}");
            assert_eq!(back.n.to_string(), n.to_string(), "printed the same");
            let json = serde_json::to_string(&value).unwrap();
            assert_eq!(json, serde_json::to_string(&Plain { at: at(), n }).unwrap());
            assert_eq!(serde_json::from_str::<Both>(&json).unwrap(), value);
        }
    }

    #[test]
    fn whole_numbers_and_times_are_integers_in_binary() {
        let value = Both {
            at: at(),
            n: Decimal::from_str("120").unwrap(),
        };
        let bytes = rmp_serde::to_vec(&value).unwrap();
        let plain: (i64, i64) = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(plain, (at().timestamp_micros(), 120));
        let half = rmp_serde::to_vec(&Num(Decimal::from_str("2.5").unwrap())).unwrap();
        assert_eq!(rmp_serde::from_slice::<(i64, u32)>(&half).unwrap(), (25, 1));
    }

    #[test]
    fn a_time_stored_as_text_is_refused_in_binary() {
        // Only microseconds are written, so only they are read.
        let old = rmp_serde::to_vec_named(&Plain {
            at: at(),
            n: Decimal::ONE,
        })
        .unwrap();
        let e = rmp_serde::from_slice::<Both>(&old).unwrap_err();
        assert!(e.to_string().contains("microseconds since 1970"), "{e}");
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Days {
        #[serde(with = "day_opt")]
        last: Option<NaiveDate>,
        #[serde(with = "day_map")]
        by_reason: std::collections::BTreeMap<String, NaiveDate>,
    }

    #[test]
    fn days_are_integers_in_binary_and_text_in_json() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        for (first, second) in [
            (day(2025, 11, 10), day(1, 1, 1)),
            (day(-44, 3, 15), day(9999, 12, 31)),
        ] {
            let value = Days {
                last: Some(first),
                by_reason: [("window".to_string(), second)].into(),
            };
            let bytes = rmp_serde::to_vec(&value).unwrap();
            assert_eq!(rmp_serde::from_slice::<Days>(&bytes).unwrap(), value);
            let plain: (Option<i32>, std::collections::BTreeMap<String, i32>) =
                rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(plain.0, Some(first.num_days_from_ce()));
            assert_eq!(plain.1["window"], second.num_days_from_ce());
            let json = serde_json::to_string(&value).unwrap();
            assert!(json.contains(&format!("\"{first}\"")), "{json}");
            assert_eq!(serde_json::from_str::<Days>(&json).unwrap(), value);
        }
        let none = rmp_serde::to_vec(&Days {
            last: None,
            by_reason: Default::default(),
        })
        .unwrap();
        assert_eq!(rmp_serde::from_slice::<Days>(&none).unwrap().last, None);
    }

    #[test]
    fn a_day_out_of_range_or_stored_as_text_is_an_error_not_a_panic() {
        let far = rmp_serde::to_vec(&(Some(i64::MAX), ())).unwrap();
        let e = rmp_serde::from_slice::<Day>(&rmp_serde::to_vec(&i64::MAX).unwrap()).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        assert!(rmp_serde::from_slice::<Days>(&far).is_err());
        let text = rmp_serde::to_vec(&"2025-11-10").unwrap();
        let e = rmp_serde::from_slice::<Day>(&text).unwrap_err();
        assert!(e.to_string().contains("days since"), "{e}");
    }

    #[test]
    fn a_bad_scale_is_an_error_not_a_panic() {
        let bytes = rmp_serde::to_vec(&(1i64, 99u32)).unwrap();
        assert!(rmp_serde::from_slice::<Num>(&bytes).is_err());
    }
}
