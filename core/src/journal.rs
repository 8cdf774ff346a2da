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

impl Kind {
    /// Every kind, in the order of its number in the store ([`stored`]).
    pub const ALL: [Kind; 21] = [
        Kind::Enter,
        Kind::Send,
        Kind::Suppressed,
        Kind::Deferred,
        Kind::Coupon,
        Kind::Points,
        Kind::Tag,
        Kind::Untag,
        Kind::Set,
        Kind::Emit,
        Kind::Reward,
        Kind::Goal,
        Kind::Exit,
        Kind::Error,
        Kind::Split,
        Kind::Skipped,
        Kind::Failed,
        Kind::Delivered,
        Kind::Merged,
        Kind::Consent,
        Kind::Outcome,
    ];
}

/// A record as the store keeps it (journals, the consent ledger, the
/// outbox): a map from each field's number to its value, with the fields
/// that do not apply left out, times as integer microseconds and the
/// kind as its number. Written with field names and times as text, a
/// record took twice the bytes, and a user's newest records are written
/// again with their state on every event (see the engine's
/// `store::journal`). Only binary formats are meant: JSON gets
/// [`Record`]'s own form, the one the API and `simulate` print.
///
/// Use [`StoredRef`] to write and [`StoredRecord`] to read, or
/// `#[serde(with = "waymark_core::journal::stored")]` on a field. Write
/// with field names (`rmp_serde::encode::write_named`) for the structs
/// a record holds: a consent change leaves out the fields it does not
/// have, which a struct written as an array cannot.
pub mod stored {
    use super::{Kind, Record};
    use serde::de::{self, MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::borrow::Borrow;
    use waymark_dsl::stored::Stamp;

    /// A record to write in the stored form.
    pub struct StoredRef<'a>(pub &'a Record);

    /// A record read from the stored form.
    pub struct StoredRecord(pub Record);

    pub fn serialize<S: Serializer, R: Borrow<Record>>(r: &R, s: S) -> Result<S::Ok, S::Error> {
        StoredRef(r.borrow()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Record, D::Error> {
        Ok(StoredRecord::deserialize(d)?.0)
    }

    /// Calls `$m!` with every optional field and its number (0–2 are
    /// `at`, `user` and `kind`; the times `until` and `expires_at` are
    /// written apart, as stamps). A number is never reused for another
    /// field: the store's format version changes when one is.
    macro_rules! optional_fields {
        ($m:ident) => {
            $m! {
                3 journey,
                4 version,
                5 step,
                6 line,
                7 channel,
                8 template,
                9 to,
                10 fields,
                11 reason,
                13 coupon,
                14 code,
                16 delta,
                17 balance,
                18 tag,
                19 path,
                20 value,
                21 event,
                22 task,
                23 message,
                24 instance,
                25 arms,
                26 idempotency_key,
                27 split,
                28 arm,
                29 holdout,
                30 attempts,
                31 merged,
                32 consent,
                33 staff
            }
        };
    }
    const UNTIL: u8 = 12;
    const EXPIRES_AT: u8 = 15;

    impl Serialize for StoredRef<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let r = self.0;
            let mut len = 3 + usize::from(r.until.is_some()) + usize::from(r.expires_at.is_some());
            macro_rules! count {
                ($($n:literal $f:ident),*) => { $( len += usize::from(r.$f.is_some()); )* };
            }
            optional_fields!(count);
            let mut m = s.serialize_map(Some(len))?;
            m.serialize_entry(&0u8, &Stamp(r.at))?;
            m.serialize_entry(&1u8, r.user.as_str())?;
            m.serialize_entry(&2u8, &(r.kind as u8))?;
            if let Some(t) = r.until {
                m.serialize_entry(&UNTIL, &Stamp(t))?;
            }
            if let Some(t) = r.expires_at {
                m.serialize_entry(&EXPIRES_AT, &Stamp(t))?;
            }
            macro_rules! put {
                ($($n:literal $f:ident),*) => {
                    $( if let Some(v) = &r.$f { m.serialize_entry(&($n as u8), v)?; } )*
                };
            }
            optional_fields!(put);
            m.end()
        }
    }

    impl<'de> Deserialize<'de> for StoredRecord {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StoredRecord, D::Error> {
            struct Fields;
            impl<'de> Visitor<'de> for Fields {
                type Value = StoredRecord;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a journal record: a map of field numbers to values")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<StoredRecord, A::Error> {
                    let (mut at, mut user, mut kind) = (None, None, None);
                    let mut r = Record::new(chrono::DateTime::UNIX_EPOCH, "", Kind::Enter);
                    while let Some(n) = map.next_key::<u8>()? {
                        macro_rules! get {
                            ($($num:literal $f:ident),*) => {
                                match n {
                                    0 => at = Some(map.next_value::<Stamp>()?.0),
                                    1 => user = Some(map.next_value::<compact_str::CompactString>()?),
                                    2 => {
                                        let k = map.next_value::<u8>()?;
                                        kind = Some(*Kind::ALL.get(usize::from(k)).ok_or_else(|| {
                                            de::Error::custom(format!("no record kind is numbered {k}"))
                                        })?);
                                    }
                                    UNTIL => r.until = Some(map.next_value::<Stamp>()?.0),
                                    EXPIRES_AT => r.expires_at = Some(map.next_value::<Stamp>()?.0),
                                    $( $num => r.$f = Some(map.next_value()?), )*
                                    _ => return Err(de::Error::custom(format!("no record field is numbered {n}"))),
                                }
                            };
                        }
                        optional_fields!(get);
                    }
                    r.at = at.ok_or_else(|| de::Error::missing_field("at"))?;
                    r.user = user.ok_or_else(|| de::Error::missing_field("user"))?;
                    r.kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
                    Ok(StoredRecord(r))
                }
            }
            d.deserialize_map(Fields)
        }
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

    #[test]
    fn every_kind_is_numbered_by_its_place() {
        for (n, kind) in Kind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, n, "{kind:?}");
        }
        // A kind added to the enum and not to the list shows here.
        let json: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        let unique: std::collections::BTreeSet<_> = json.iter().collect();
        assert_eq!(unique.len(), Kind::ALL.len());
    }

    fn stored_bytes(r: &Record) -> Vec<u8> {
        rmp_serde::to_vec_named(&stored::StoredRef(r)).unwrap()
    }

    fn read_stored(bytes: &[u8]) -> Result<Record, rmp_serde::decode::Error> {
        rmp_serde::from_slice::<stored::StoredRecord>(bytes).map(|r| r.0)
    }

    /// Every field set, each to something of its own.
    fn full_record() -> Record {
        let at = DateTime::from_timestamp(1_764_000_000, 123_456_000).unwrap();
        let mut r = Record::new(at, "u1", Kind::Consent);
        r.journey = Some("j".into());
        r.version = Some("v3".into());
        r.step = Some("s7".into());
        r.line = Some(42);
        r.channel = Some("sms".into());
        r.template = Some("T1".into());
        r.to = Some("+8613800000000".into());
        r.fields = Some(serde_json::json!({"code": "X", "n": 1.5, "list": [1, null]}));
        r.reason = Some("quiet".into());
        r.until = Some(at + chrono::Duration::hours(3));
        r.coupon = Some("NEW10".into());
        r.code = Some("NEW10-ABC".into());
        r.expires_at = Some(at + chrono::Duration::days(7));
        r.delta = Some(serde_json::json!("12.50"));
        r.balance = Some(serde_json::json!(100));
        r.tag = Some("vip".into());
        r.path = Some("user.tier".into());
        r.value = Some(serde_json::json!({"a": true}));
        r.event = Some("order_paid".into());
        r.task = Some("daily".into());
        r.message = Some("went wrong".into());
        r.instance = Some(9);
        r.arms = Some([("s2".to_string(), "b".to_string())].into());
        r.idempotency_key = Some("k-1".into());
        r.split = Some("s2".into());
        r.arm = Some("b".into());
        r.holdout = Some(false);
        r.attempts = Some(3);
        r.merged = Some("anon-1".into());
        // Some of a consent change's own fields left out and one not: it
        // reads back only if written with its field names.
        let mut consent = crate::consent::ConsentChange::new(true, "api");
        consent.by = Some("ops".into());
        r.consent = Some(Box::new(consent));
        r.staff = Some("zhang".into());
        r
    }

    #[test]
    fn a_stored_record_reads_back_as_written() {
        let full = full_record();
        let json = serde_json::to_value(&full).unwrap();
        // Every field is set: a field added to records and not to the
        // stored form is missing from what reads back.
        assert!(json.as_object().unwrap().values().all(|v| !v.is_null()));
        assert_eq!(read_stored(&stored_bytes(&full)).unwrap(), full);
        let bare = Record::new(full.at, "u2", Kind::Emit);
        assert_eq!(read_stored(&stored_bytes(&bare)).unwrap(), bare);
        for kind in Kind::ALL {
            let r = Record::new(full.at, "u", kind);
            assert_eq!(read_stored(&stored_bytes(&r)).unwrap().kind, kind);
        }
    }

    #[test]
    fn a_stored_record_is_about_half_its_named_form() {
        let mut r = Record::new(
            DateTime::from_timestamp(1_764_000_000, 951_000_000).unwrap(),
            "u82263",
            Kind::Emit,
        );
        r.journey = Some("r12_never_paid_cart_view".into());
        r.version = Some("rule".into());
        r.step = Some("s1".into());
        r.line = Some(135);
        r.event = Some("rule_12_fired".into());
        r.instance = Some(2);
        let named = rmp_serde::to_vec_named(&r).unwrap().len();
        let stored = stored_bytes(&r).len();
        assert!(
            stored * 10 <= named * 6,
            "{stored} B stored, {named} B named"
        );
    }

    #[test]
    fn a_stored_record_with_an_unknown_field_or_kind_is_refused() {
        let r = Record::new(DateTime::UNIX_EPOCH, "u", Kind::Tag);
        let mut bytes = stored_bytes(&r);
        // The map's length (a fixmap of three) gains one entry: 99 → nil.
        bytes[0] += 1;
        bytes.extend([99, 0xc0]);
        let e = read_stored(&bytes).unwrap_err().to_string();
        assert!(e.contains("no record field is numbered 99"), "{e}");
        let mut bytes = stored_bytes(&r);
        let kind = bytes.len() - 1;
        bytes[kind] = 77;
        let e = read_stored(&bytes).unwrap_err().to_string();
        assert!(e.contains("no record kind is numbered 77"), "{e}");
        // `at`, `user` and `kind` are needed.
        let e = read_stored(&[0x80]).unwrap_err().to_string();
        assert!(e.contains("at"), "{e}");
    }
}
