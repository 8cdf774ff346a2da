//! The journal record: one shape shared by `simulate --format json`, the
//! daemon's per-user journal and the `log` channel (engine.md). `kind` and
//! the keys below are never renamed; keys that do not apply are omitted.

use chrono::{DateTime, SecondsFormat, Utc};
use compact_str::CompactString;
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Enter,
    Send,
    Suppressed,
    Deferred,
    Coupon,
    Points,
    Tag,
    Untag,
    Set,
    Emit,
    Reward,
    Goal,
    Exit,
    Error,
    /// A split put the instance in an arm (`split`, `arm`).
    Split,
    /// A trigger matched but the journey did not take the user in
    /// (`reason`: `once`, `every`, `audience`, `window`, `budget`, `paused`).
    Skipped,
    /// A send was given up on (dead-lettered): `channel`, `reason`,
    /// `attempts`, `idempotency_key`.
    Failed,
    /// A dead-lettered send delivered when it was replayed.
    Delivered,
    /// Another profile of the same person was merged into this one
    /// (`merged`: its id; `reason`: `identify`, `alias` or
    /// `identifier:NAME`).
    Merged,
    /// A change of consent on `channel` (`consent`: purpose, granted,
    /// source, evidence): the consent ledger.
    Consent,
    /// What came of a send a staff member had to confirm (a WeCom
    /// customer mass send): the send's journey, step, channel and key,
    /// `reason` the outcome (`sent`, `not_friend`, `over_quota`,
    /// `not_confirmed`, `failed`), `staff` whose task it was.
    Outcome,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Enter => "enter",
            Kind::Send => "send",
            Kind::Suppressed => "suppressed",
            Kind::Deferred => "deferred",
            Kind::Coupon => "coupon",
            Kind::Points => "points",
            Kind::Tag => "tag",
            Kind::Untag => "untag",
            Kind::Set => "set",
            Kind::Emit => "emit",
            Kind::Reward => "reward",
            Kind::Goal => "goal",
            Kind::Exit => "exit",
            Kind::Error => "error",
            Kind::Split => "split",
            Kind::Skipped => "skipped",
            Kind::Failed => "failed",
            Kind::Delivered => "delivered",
            Kind::Outcome => "outcome",
            Kind::Merged => "merged",
            Kind::Consent => "consent",
        }
    }
}

fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 30];
    match rfc3339_into(t, &mut buf) {
        Some(text) => s.serialize_str(text),
        None => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    }
}

/// `t` as `to_rfc3339_opts(SecondsFormat::AutoSi, true)` writes it
/// (`2025-11-01T08:00:00.5Z` with 0, 3, 6 or 9 fraction digits), written
/// into `buf` instead of a new string: every journal record has a time.
/// `None` for what that layout does not cover (years outside 0–9999, a
/// leap second), which the caller leaves to chrono.
fn rfc3339_into<'b>(t: &DateTime<Utc>, buf: &'b mut [u8; 30]) -> Option<&'b str> {
    use chrono::{Datelike, Timelike};
    // Read from the naive time: each accessor of a `DateTime` first
    // works out the local time again.
    let t = t.naive_utc();
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut v = value;
        for i in (0..digits).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    let digits = match nanos {
        0 => 0,
        n if n % 1_000_000 == 0 => 3,
        n if n % 1_000 == 0 => 6,
        _ => 9,
    };
    if digits > 0 {
        put(20, nanos / 10u32.pow(9 - digits as u32), digits);
    }
    for (at, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        buf[at] = c;
    }
    let mut end = 19;
    if digits > 0 {
        buf[19] = b'.';
        end = 20 + digits;
    }
    buf[end] = b'Z';
    std::str::from_utf8(&buf[..end + 1]).ok()
}

fn rfc3339_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// One thing that happened to one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    pub user: CompactString,
    /// The journey, rule or task the record comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journey: Option<CompactString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<CompactString>,
    /// The step id within the plan (`s7`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<CompactString>,
    /// The step's source line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// For sends: the address the channel delivers to (the `to` field of
    /// the step, else the user trait the channel reads, else the user id).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Value>,
    /// For `suppressed`, `exit` and `deferred`: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `deferred`: until when.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339_opt",
        default
    )]
    pub until: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339_opt",
        default
    )]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// For `set`: the user path; for `emit`: the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<CompactString>,
    /// For `reward`: the task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// For `error`: what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The instance within the user's history of this journey.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<u64>,
    /// Arms chosen by the instance's splits so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arms: Option<std::collections::BTreeMap<String, String>>,
    /// For sends: the key the adapter passes to the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// For `split`: the split and the arm the instance was put in.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub split: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub arm: Option<String>,
    /// For `split`: the arm is the split's holdout (an empty arm).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub holdout: Option<bool>,
    /// For `failed` and `delivered`: delivery attempts made.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attempts: Option<u32>,
    /// For `merged`: the id merged into this user.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub merged: Option<String>,
    /// For `consent`: the change (its channel is `channel`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub consent: Option<Box<crate::consent::ConsentChange>>,
    /// For `outcome`: the staff member whose task the send was.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub staff: Option<String>,
}

impl Record {
    pub fn new(at: DateTime<Utc>, user: &str, kind: Kind) -> Record {
        Record {
            at,
            user: user.into(),
            journey: None,
            version: None,
            step: None,
            line: None,
            kind,
            channel: None,
            template: None,
            to: None,
            fields: None,
            reason: None,
            until: None,
            coupon: None,
            code: None,
            expires_at: None,
            delta: None,
            balance: None,
            tag: None,
            path: None,
            value: None,
            event: None,
            task: None,
            message: None,
            instance: None,
            arms: None,
            idempotency_key: None,
            split: None,
            arm: None,
            holdout: None,
            attempts: None,
            merged: None,
            consent: None,
            staff: None,
        }
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("records serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_text(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    proptest::proptest! {
        /// Written in place, a time reads as chrono writes it.
        #[test]
        fn a_time_written_in_place_is_chronos_text(
            seconds in -62_167_219_200i64..253_402_300_800,
            nanos in 0u32..1_000_000_000,
            grain in 0usize..4,
        ) {
            // Whole seconds, milliseconds, microseconds or nanoseconds.
            let unit = [1_000_000_000, 1_000_000, 1_000, 1][grain];
            let nanos = nanos / unit * unit;
            let t = DateTime::from_timestamp(seconds, nanos).unwrap();
            let mut buf = [0u8; 30];
            let expected = chrono_text(&t);
            proptest::prop_assert_eq!(rfc3339_into(&t, &mut buf), Some(expected.as_str()));
        }
    }

    #[test]
    fn times_the_layout_does_not_cover_are_left_to_chrono() {
        let mut buf = [0u8; 30];
        let far = DateTime::from_timestamp(253_402_300_800, 0).unwrap();
        assert_eq!(rfc3339_into(&far, &mut buf), None);
        let leap = DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap();
        assert_eq!(rfc3339_into(&leap, &mut buf), None);
        // Either way a record's time is chrono's text.
        for t in [far, leap, DateTime::from_timestamp(0, 0).unwrap()] {
            let mut r = Record::new(t, "u", Kind::Emit);
            r.event = Some("e".into());
            let json = serde_json::to_value(&r).unwrap();
            assert_eq!(json["at"], chrono_text(&t));
        }
    }
}
