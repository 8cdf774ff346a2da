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

mod columns;

use crate::names::NameMap;
use chrono::{DateTime, Duration, Utc};
use columns::skip_value;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;
use std::collections::VecDeque;
use waymark_dsl::value::{Fields, Value};

const MAX_NAMES: usize = 200;
const MAX_DAYS: i64 = 400;
const MAX_SUMS: usize = 32;
const RECENT: usize = 64;
const EXACT_SECONDS: i64 = 48 * 3600;

/// How much of an event's history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keep {
    /// Everything: counts, sums, and the first and last occurrence's
    /// properties.
    All,
    /// Counts, sums and times, not the properties of the first and last
    /// occurrence (for scripts that never call `first` or `last` on it).
    Counts,
    /// Nothing.
    #[default]
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct History {
    events: Events,
}

/// Every event name's history, in name order. A state read from the
/// store keeps its histories as the one byte string they were stored
/// as, with each name's place in it, and decodes a name's history the
/// first time it is read: an event changes the history of its own name
/// (the usual one straight on its bytes, [`columns::append`]), and the
/// others are written back as the bytes they were read as. Reading a
/// member so takes two allocations, the bytes and the
/// list of names, where decoding every history, or even keeping each as
/// bytes of its own, took several per name, and freeing them as many
/// again: most of the cost of reading a member in the daemon.
///
/// The bytes are not checked as they are read beyond their framing: the
/// store seals every member's state with an authenticated cipher, so
/// bytes that open are bytes Waymark wrote, and tests hold what it
/// writes to decoding.
#[derive(Clone, Default)]
struct Events {
    /// The names and histories as read from the store: a MessagePack map
    /// of each name to its history's bytes. Empty for a history made here.
    stored: Box<[u8]>,
    /// Every name, in name order, at most [`MAX_NAMES`].
    entries: Vec<Entry>,
}

/// One event name's history: decoded, or as stored, or both.
#[derive(Clone)]
struct Entry {
    /// Names are short: kept in place, with no allocation of their own.
    name: compact_str::CompactString,
    history: OnceCell<Box<EventHistory>>,
    bytes: Bytes,
}

/// Where an event's history is as bytes, written as
/// [`EventHistory::encode_positional`] writes it.
#[derive(Clone)]
enum Bytes {
    /// In [`Events::stored`], at this range: as it was read.
    Stored(u32, u32),
    /// Written since it last changed (empty until then), kept so that
    /// it is not written again while it does not change.
    Own(OnceCell<Box<[u8]>>),
}

impl Entry {
    fn decoded(name: &str, history: EventHistory) -> Entry {
        Entry {
            name: name.into(),
            history: OnceCell::from(Box::new(history)),
            bytes: Bytes::Own(OnceCell::new()),
        }
    }

    /// The bytes kept of the history, if any (`stored`: the [`Events`]' own).
    fn kept<'a>(&'a self, stored: &'a [u8]) -> Option<&'a [u8]> {
        match &self.bytes {
            Bytes::Stored(from, to) => stored.get(*from as usize..*to as usize),
            Bytes::Own(bytes) => bytes.get().map(|b| &b[..]),
        }
    }

    /// The history, decoded from its bytes if this is its first use.
    fn get(&self, stored: &[u8]) -> &EventHistory {
        self.history.get_or_init(|| {
            let decoded = self
                .kept(stored)
                .and_then(|bytes| EventHistory::decode_positional(bytes).ok());
            // Only a Waymark that wrote what it cannot read gets here
            // (the store's values are authenticated, and tests hold what
            // is written to decoding): it gets an empty history, not a
            // panic.
            debug_assert!(decoded.is_some(), "a stored event history decodes");
            Box::new(decoded.unwrap_or_default())
        })
    }

    /// The history to change: its bytes are forgotten.
    fn get_mut(&mut self, stored: &[u8]) -> &mut EventHistory {
        self.get(stored);
        self.bytes = Bytes::Own(OnceCell::new());
        self.history.get_mut().expect("decoded just now")
    }

    fn into_inner(self, stored: &[u8]) -> EventHistory {
        self.get(stored);
        *self.history.into_inner().expect("decoded just now")
    }

    /// The history's bytes: those it was read or last written as, or
    /// written now (and kept).
    fn encoded<'a>(
        &'a self,
        stored: &'a [u8],
        scratch: &mut Vec<u8>,
    ) -> Result<&'a [u8], rmp_serde::encode::Error> {
        if let Some(bytes) = self.kept(stored) {
            return Ok(bytes);
        }
        scratch.clear();
        self.get(stored).encode_positional(scratch)?;
        match &self.bytes {
            Bytes::Own(bytes) => Ok(bytes.get_or_init(|| scratch[..].into())),
            // Ranges are checked as they are read: not reached.
            Bytes::Stored(..) => Err(rmp_serde::encode::Error::Syntax(
                "an event's history is not where its place says".into(),
            )),
        }
    }
}

thread_local! {
    /// Where a changed history is written before it is kept in a box of
    /// its size: grown once per thread, not once per history.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn bin_len(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).expect("a history is far below 4 GiB")
}

impl Events {
    /// Where `name` is. A member holds a handful of names: they are
    /// scanned, lengths first (most names are told apart by their length
    /// alone), and searched in halves past a few.
    fn position(&self, name: &str) -> Result<usize, usize> {
        if self.entries.len() <= 8 {
            for (i, e) in self.entries.iter().enumerate() {
                if e.name.len() == name.len() && e.name == name {
                    return Ok(i);
                }
            }
            return Err(self.entries.partition_point(|e| e.name.as_str() < name));
        }
        self.entries.binary_search_by(|e| e.name.as_str().cmp(name))
    }

    fn get(&self, name: &str) -> Option<&EventHistory> {
        let i = self.position(name).ok()?;
        Some(self.entries[i].get(&self.stored))
    }

    /// The history of `name` to change, made empty if there is none.
    fn get_mut_or_new(&mut self, name: &str) -> &mut EventHistory {
        let i = match self.position(name) {
            Ok(i) => i,
            Err(i) => {
                self.entries
                    .insert(i, Entry::decoded(name, EventHistory::default()));
                i
            }
        };
        self.entries[i].get_mut(&self.stored)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Records an occurrence of `name` onto its history's bytes, if it
    /// has a history kept as bytes only and the occurrence is the usual
    /// one ([`columns::append`]); false, with nothing changed, otherwise.
    fn append(
        &mut self,
        name: &str,
        at: DateTime<Utc>,
        snapshot: &Value,
        properties: &Value,
    ) -> bool {
        let Ok(i) = self.position(name) else {
            return false;
        };
        let Events { stored, entries } = self;
        let e = &mut entries[i];
        if e.history.get().is_some() {
            return false;
        }
        let Some(bytes) = e.kept(stored) else {
            return false;
        };
        let appended = SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            columns::append(bytes, at, snapshot, properties, scratch)
                .map(|()| Box::<[u8]>::from(&scratch[..]))
        });
        match appended {
            Some(bytes) => {
                e.bytes = Bytes::Own(OnceCell::from(bytes));
                true
            }
            None => false,
        }
    }

    /// Drops every decoded history that is also kept as bytes.
    fn shed_decoded(&mut self) {
        let Events { stored, entries } = self;
        for e in entries {
            if e.history.get().is_some() && e.kept(stored).is_some() {
                e.history = OnceCell::new();
            }
        }
    }

    fn contains(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    fn remove(&mut self, name: &str) -> bool {
        match self.position(name) {
            Ok(i) => {
                self.entries.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &EventHistory)> {
        self.entries
            .iter()
            .map(|e| (e.name.as_str(), e.get(&self.stored)))
    }

    fn into_decoded(self) -> impl Iterator<Item = (compact_str::CompactString, EventHistory)> {
        let stored = self.stored;
        self.entries.into_iter().map(move |e| {
            let name = e.name.clone();
            (name, e.into_inner(&stored))
        })
    }

    /// Writes the map of names to their histories' bytes: as many bytes
    /// as [`Events::map_len`] says, which writes the changed histories.
    fn write_map(&self, out: &mut Vec<u8>) -> Result<(), rmp_serde::encode::Error> {
        SCRATCH.with_borrow_mut(|scratch| {
            let names = u32::try_from(self.entries.len()).expect("at most MAX_NAMES event names");
            rmp::encode::write_map_len(out, names)?;
            for e in &self.entries {
                let bytes = e.encoded(&self.stored, scratch)?;
                rmp::encode::write_str(out, &e.name)?;
                rmp::encode::write_bin_len(out, bin_len(bytes))?;
                out.extend_from_slice(bytes);
            }
            Ok(())
        })
    }

    /// The length of [`Events::write_map`]'s bytes. Each history that
    /// changed is written here (and kept), so that the length can go
    /// before the map and the map is then a copy of kept bytes.
    fn map_len(&self) -> Result<usize, rmp_serde::encode::Error> {
        SCRATCH.with_borrow_mut(|scratch| {
            let mut len = map_head(self.entries.len());
            for e in &self.entries {
                let bytes = e.encoded(&self.stored, scratch)?;
                len += str_head(e.name.len()) + e.name.len() + bin_head(bytes.len()) + bytes.len();
            }
            Ok(len)
        })
    }

    /// Reads the map of names to history bytes, keeping `stored` whole.
    fn read(stored: Box<[u8]>) -> Result<Events, String> {
        let framing = |e: &dyn std::fmt::Display| format!("event histories: {e}");
        let mut rest: &[u8] = &stored;
        let names = rmp::decode::read_map_len(&mut rest).map_err(|e| framing(&e))? as usize;
        if names > MAX_NAMES * 2 {
            return Err(framing(&format!("{names} event names")));
        }
        // Room for one more: an event of a name not seen before adds it.
        let mut entries: Vec<Entry> = Vec::with_capacity(names + 1);
        for _ in 0..names {
            let len = rmp::decode::read_str_len(&mut rest).map_err(|e| framing(&e))? as usize;
            let name = rest
                .get(..len)
                .ok_or_else(|| framing(&"a name runs past the end"))?;
            let name = std::str::from_utf8(name).map_err(|e| framing(&e))?;
            rest = &rest[len..];
            let len = rmp::decode::read_bin_len(&mut rest).map_err(|e| framing(&e))? as usize;
            if rest.len() < len {
                return Err(framing(&format!("the history of {name} runs past the end")));
            }
            let from = stored.len() - rest.len();
            rest = &rest[len..];
            entries.push(Entry {
                name: name.into(),
                history: OnceCell::new(),
                bytes: Bytes::Stored(from as u32, (from + len) as u32),
            });
        }
        // Written in name order; anything else is put in it, the last of
        // a name written twice kept (as a map read into a map would).
        if !entries.is_sorted_by(|a, b| a.name < b.name) {
            entries.reverse();
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            entries.dedup_by(|later, kept| later.name == kept.name);
        }
        Ok(Events { stored, entries })
    }
}

/// The bytes MessagePack takes to say a string's length.
fn str_head(len: usize) -> usize {
    match len {
        0..32 => 1,
        32..256 => 2,
        256..65_536 => 3,
        _ => 5,
    }
}

/// The bytes MessagePack takes to say a byte string's length.
fn bin_head(len: usize) -> usize {
    match len {
        0..256 => 2,
        256..65_536 => 3,
        _ => 5,
    }
}

/// The bytes MessagePack takes to say a map's length.
fn map_head(len: usize) -> usize {
    match len {
        0..16 => 1,
        16..65_536 => 3,
        _ => 5,
    }
}

impl PartialEq for Events {
    fn eq(&self, other: &Events) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Text formats (JSON) get each name's history, field by field; the
/// store's binary one gets the map of names to their histories' bytes as
/// one byte string, so that reading a state need not decode them.
impl Serialize for Events {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(self.len()))?;
            for (name, h) in self.iter() {
                map.serialize_entry(name, h)?;
            }
            map.end()
        } else {
            let len = self.map_len().map_err(serde::ser::Error::custom)?;
            let mut out = Vec::with_capacity(len);
            self.write_map(&mut out)
                .map_err(serde::ser::Error::custom)?;
            s.serialize_bytes(&out)
        }
    }
}

impl<'de> Deserialize<'de> for Events {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Events, D::Error> {
        if d.is_human_readable() {
            let map = NameMap::<EventHistory>::deserialize(d)?;
            return Ok(Events {
                stored: Box::default(),
                entries: map
                    .into_iter()
                    .map(|(name, h)| Entry::decoded(&name, h))
                    .collect(),
            });
        }
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = Box<[u8]>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("event histories as bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Box<[u8]>, E> {
                Ok(v.into())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Box<[u8]>, E> {
                Ok(v.into_boxed_slice())
            }
        }
        let stored = d.deserialize_bytes(Bytes)?;
        Events::read(stored).map_err(serde::de::Error::custom)
    }
}
/// One event name's aggregates. Days and recent occurrences are kept in
/// flat columns rather than a map per day and per occurrence: a user's
/// state is decoded, walked and encoded on every event, and one allocation
/// per column instead of one per entry is most of what that costs.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(try_from = "StoredEventHistory")]
struct EventHistory {
    total: u64,
    first: Option<(DateTime<Utc>, Snapshot)>,
    last: Option<(DateTime<Utc>, Snapshot)>,
    /// The numeric properties summed, in the order first seen (at most
    /// [`MAX_SUMS`]); each sums column has one entry per field.
    fields: Vec<String>,
    /// UTC days with occurrences, oldest first, with their counts and sums.
    days: VecDeque<i64>,
    day_counts: VecDeque<u64>,
    day_sums: VecDeque<Decimal>,
    /// The last occurrences within 48 hours, oldest first, with their numbers.
    recent: VecDeque<DateTime<Utc>>,
    recent_sums: VecDeque<Decimal>,
    /// The recent list dropped entries newer than 48 hours before `last`.
    truncated_at: Option<DateTime<Utc>>,
    /// Each field's sum over every day kept, in field order: a window
    /// that reaches back past the oldest day (a `sum` over a year, say)
    /// reads it instead of adding up the days. Not stored: made from the
    /// days when read.
    day_totals: Vec<Decimal>,
}

/// An occurrence's properties, as `first` and `last` return them: kept
/// as the MessagePack bytes they are stored as, and decoded only when a
/// script asks. The daemon keeps every event's first and last occurrence,
/// so decoding them with each history an event changes was half of
/// reading it, for properties that most scripts never read.
#[derive(Clone)]
struct Snapshot(Box<[u8]>);

impl Snapshot {
    fn of(properties: &Value) -> Snapshot {
        // Writing a `Value` to memory does not fail; were it to, the
        // occurrence keeps no properties (nil), not bytes that break the
        // history's framing.
        let bytes =
            rmp_serde::to_vec(properties).unwrap_or_else(|_| vec![rmp::Marker::Null.to_u8()]);
        Snapshot(bytes.into_boxed_slice())
    }

    /// The properties. Bytes that do not decode (only a Waymark that
    /// wrote what it cannot read would have them: stored values are
    /// authenticated) are no properties, not a panic.
    fn value(&self) -> Value {
        let decoded = rmp_serde::from_slice(&self.0);
        debug_assert!(decoded.is_ok(), "a stored snapshot decodes");
        decoded.unwrap_or_default()
    }
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Snapshot) -> bool {
        self.0 == other.0 || self.value() == other.value()
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value().fmt(f)
    }
}

impl Serialize for Snapshot {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

impl Serialize for EventHistory {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        use waymark_dsl::stored::{Num, Stamp};
        let nums = |c| Column(c, |n: &Decimal| Num(*n));
        let mut st = s.serialize_struct("EventHistory", 10)?;
        st.serialize_field("total", &self.total)?;
        st.serialize_field("first", &self.first.as_ref().map(|(t, v)| (Stamp(*t), v)))?;
        st.serialize_field("last", &self.last.as_ref().map(|(t, v)| (Stamp(*t), v)))?;
        st.serialize_field("fields", &self.fields)?;
        st.serialize_field("days_at", &self.days)?;
        st.serialize_field("day_counts", &self.day_counts)?;
        st.serialize_field("day_sums", &nums(&self.day_sums))?;
        st.serialize_field(
            "recent_at",
            &Column(&self.recent, |t: &DateTime<Utc>| Stamp(*t)),
        )?;
        st.serialize_field("recent_sums", &nums(&self.recent_sums))?;
        st.serialize_field("truncated_at", &self.truncated_at.map(Stamp))?;
        st.end()
    }
}

impl EventHistory {
    /// Writes the history as `rmp_serde` writes its [`Serialize`] form
    /// positionally, the columns by hand: through `rmp_serde`'s general
    /// path, this was a quarter of the daemon writer's time (an event's
    /// history is written again on every event of its name). Only the
    /// snapshots of `first` and `last` go through `rmp_serde`. A test
    /// holds the two to the same bytes.
    fn encode_positional(&self, out: &mut Vec<u8>) -> Result<(), rmp_serde::encode::Error> {
        use rmp::encode as w;
        fn len(n: usize) -> u32 {
            u32::try_from(n).expect("columns are bounded far below u32::MAX")
        }
        w::write_array_len(out, 10)?;
        w::write_uint(out, self.total)?;
        for occurrence in [&self.first, &self.last] {
            match occurrence {
                None => out.push(rmp::Marker::Null.to_u8()),
                Some((at, snapshot)) => {
                    w::write_array_len(out, 2)?;
                    w::write_sint(out, at.timestamp_micros())?;
                    out.extend_from_slice(&snapshot.0);
                }
            }
        }
        w::write_array_len(out, len(self.fields.len()))?;
        for field in &self.fields {
            w::write_str(out, field)?;
        }
        w::write_array_len(out, len(self.days.len()))?;
        for d in &self.days {
            w::write_sint(out, *d)?;
        }
        w::write_array_len(out, len(self.day_counts.len()))?;
        for c in &self.day_counts {
            w::write_uint(out, *c)?;
        }
        w::write_array_len(out, len(self.day_sums.len()))?;
        for n in &self.day_sums {
            columns::write_num(out, *n)?;
        }
        w::write_array_len(out, len(self.recent.len()))?;
        for t in &self.recent {
            w::write_sint(out, t.timestamp_micros())?;
        }
        w::write_array_len(out, len(self.recent_sums.len()))?;
        for n in &self.recent_sums {
            columns::write_num(out, *n)?;
        }
        match self.truncated_at {
            None => out.push(rmp::Marker::Null.to_u8()),
            Some(t) => {
                w::write_sint(out, t.timestamp_micros())?;
            }
        }
        Ok(())
    }
}

impl EventHistory {
    /// Reads what [`EventHistory::encode_positional`] wrote, the columns
    /// by hand: through `rmp_serde`'s general path (the `Deserialize` this
    /// type keeps for JSON), decoding an event's history was a tenth of
    /// the daemon writer's time, as a member kept in the cache decodes the
    /// history of each event's name again. The snapshots of `first` and
    /// `last` are only framed here, kept as their bytes ([`Snapshot`]);
    /// only a number past `i64`, stored as text, goes through `rmp_serde`.
    /// The columns are checked to agree as the derived form checks them;
    /// a test holds the two to the same history.
    fn decode_positional(bytes: &[u8]) -> Result<EventHistory, String> {
        use columns::{int, is_nil, len, num, stamp, uint};
        use rmp::decode as r;
        use waymark_dsl::stored::Stamp;
        let rest = &mut &bytes[..];
        fn occurrence(rest: &mut &[u8]) -> Result<Option<(DateTime<Utc>, Snapshot)>, String> {
            if is_nil(rest) {
                return Ok(None);
            }
            if len(rest)? != 2 {
                return Err("an occurrence is not [time, properties]".into());
            }
            let at = stamp(rest)?;
            let before = *rest;
            skip_value(rest, 0)?;
            let snapshot = Snapshot(before[..before.len() - rest.len()].into());
            Ok(Some((at, snapshot)))
        }
        if len(rest)? != 10 {
            return Err("an event's history is not its 10 columns".into());
        }
        let total = uint(rest)?;
        let first = occurrence(rest)?;
        let last = occurrence(rest)?;
        let fields = (0..len(rest)?)
            .map(|_| {
                let n = r::read_str_len(rest).map_err(|e| e.to_string())? as usize;
                let name = rest.get(..n).ok_or("a field name runs past the end")?;
                let name = std::str::from_utf8(name)
                    .map_err(|e| e.to_string())?
                    .to_string();
                *rest = &rest[n..];
                Ok(name)
            })
            .collect::<Result<Vec<String>, String>>()?;
        let days_at = (0..len(rest)?)
            .map(|_| int(rest))
            .collect::<Result<_, _>>()?;
        let day_counts = (0..len(rest)?)
            .map(|_| uint(rest))
            .collect::<Result<_, _>>()?;
        let day_sums = (0..len(rest)?)
            .map(|_| num(rest))
            .collect::<Result<_, _>>()?;
        let recent_at = (0..len(rest)?)
            .map(|_| stamp(rest).map(Stamp))
            .collect::<Result<_, _>>()?;
        let recent_sums = (0..len(rest)?)
            .map(|_| num(rest))
            .collect::<Result<_, _>>()?;
        let truncated_at = if is_nil(rest) {
            None
        } else {
            Some(stamp(rest)?)
        };
        EventHistory::from_columns(StoredEventHistory {
            total,
            first,
            last,
            fields,
            days_at,
            day_counts,
            day_sums,
            recent_at,
            recent_sums,
            truncated_at,
        })
        .map_err(|e| e.to_string())
    }
}

/// A column written element by element as each converts, without
/// collecting the converted ones first (a user's history is encoded on
/// every event).
struct Column<'a, T, F>(&'a VecDeque<T>, F);

impl<T, U: Serialize, F: Fn(&T) -> U> Serialize for Column<'_, T, F> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(&self.1))
    }
}

/// An [`EventHistory`] as stored: its columns, checked to agree in
/// length before they are used.
#[derive(Deserialize)]
#[serde(bound(deserialize = "P: Deserialize<'de>"))]
struct StoredEventHistory<P = Value> {
    total: u64,
    #[serde(with = "waymark_dsl::stored::stamp_opt_pair")]
    first: Option<(DateTime<Utc>, P)>,
    #[serde(with = "waymark_dsl::stored::stamp_opt_pair")]
    last: Option<(DateTime<Utc>, P)>,
    fields: Vec<String>,
    days_at: VecDeque<i64>,
    day_counts: VecDeque<u64>,
    day_sums: Vec<waymark_dsl::stored::Num>,
    recent_at: Vec<waymark_dsl::stored::Stamp>,
    recent_sums: Vec<waymark_dsl::stored::Num>,
    #[serde(with = "waymark_dsl::stored::stamp_opt")]
    truncated_at: Option<DateTime<Utc>>,
}

/// Why stored columns do not make an event's history: their lengths
/// disagree (the store reports it as a corrupt value at its key).
#[derive(Debug, thiserror::Error)]
pub enum ColumnsError {
    #[error("{days} days with {counts} counts and {sums} sums of {width} fields")]
    Days {
        days: usize,
        counts: usize,
        sums: usize,
        width: usize,
    },
    #[error("{times} recent times with {sums} sums of {width} fields")]
    Recent {
        times: usize,
        sums: usize,
        width: usize,
    },
}

impl TryFrom<StoredEventHistory> for EventHistory {
    type Error = ColumnsError;

    fn try_from(s: StoredEventHistory) -> Result<EventHistory, ColumnsError> {
        EventHistory::from_columns(StoredEventHistory {
            total: s.total,
            first: s.first.map(|(t, v)| (t, Snapshot::of(&v))),
            last: s.last.map(|(t, v)| (t, Snapshot::of(&v))),
            fields: s.fields,
            days_at: s.days_at,
            day_counts: s.day_counts,
            day_sums: s.day_sums,
            recent_at: s.recent_at,
            recent_sums: s.recent_sums,
            truncated_at: s.truncated_at,
        })
    }
}

impl EventHistory {
    /// A history from its stored columns, checked to agree in length.
    fn from_columns(s: StoredEventHistory<Snapshot>) -> Result<EventHistory, ColumnsError> {
        let width = s.fields.len();
        if s.day_counts.len() != s.days_at.len() || s.day_sums.len() != s.days_at.len() * width {
            return Err(ColumnsError::Days {
                days: s.days_at.len(),
                counts: s.day_counts.len(),
                sums: s.day_sums.len(),
                width,
            });
        }
        if s.recent_sums.len() != s.recent_at.len() * width {
            return Err(ColumnsError::Recent {
                times: s.recent_at.len(),
                sums: s.recent_sums.len(),
                width,
            });
        }
        let mut h = EventHistory {
            total: s.total,
            first: s.first,
            last: s.last,
            fields: s.fields,
            days: s.days_at,
            day_counts: s.day_counts,
            day_sums: column(s.day_sums, |n| n.0),
            recent: column(s.recent_at, |t| t.0),
            recent_sums: column(s.recent_sums, |n| n.0),
            truncated_at: s.truncated_at,
            day_totals: Vec::new(),
        };
        h.total_days();
        Ok(h)
    }
}

/// A stored column as a deque: collected into a vector, which is built in
/// the stored one's memory, that the deque then takes as it is (collected
/// straight into a deque, each column was a second allocation).
fn column<T, U>(stored: Vec<T>, each: impl FnMut(T) -> U) -> VecDeque<U> {
    stored.into_iter().map(each).collect::<Vec<_>>().into()
}

impl EventHistory {
    fn width(&self) -> usize {
        self.fields.len()
    }

    /// Makes [`EventHistory::day_totals`] from the days, each field's
    /// days added oldest first (as a window over all of them adds them).
    fn total_days(&mut self) {
        let width = self.width();
        self.day_totals = (0..width)
            .map(|k| {
                (0..self.days.len())
                    .map(|i| self.day_sums[i * width + k])
                    .sum()
            })
            .collect();
    }

    /// A row of sums for `numbers`, in field order, adding columns for
    /// fields not seen before (while there is room).
    fn row<'a, I>(&mut self, numbers: I) -> Vec<Decimal>
    where
        I: IntoIterator<Item = (&'a String, &'a Decimal)>,
    {
        let mut row = vec![Decimal::ZERO; self.width()];
        for (field, n) in numbers {
            let i = match self.fields.iter().position(|f| f == field) {
                Some(i) => i,
                None if self.fields.len() < MAX_SUMS => {
                    self.add_field(field);
                    row.push(Decimal::ZERO);
                    self.width() - 1
                }
                None => continue,
            };
            row[i] += *n;
        }
        row
    }

    /// A new column: zero for every day and recent occurrence so far.
    fn add_field(&mut self, field: &str) {
        let old = self.width();
        self.fields.push(field.to_string());
        let widen = |column: &VecDeque<Decimal>, rows: usize| {
            let mut widened = VecDeque::with_capacity(rows * (old + 1));
            for r in 0..rows {
                widened.extend(column.range(r * old..(r + 1) * old).copied());
                widened.push_back(Decimal::ZERO);
            }
            widened
        };
        self.day_sums = widen(&self.day_sums, self.days.len());
        self.recent_sums = widen(&self.recent_sums, self.recent.len());
        self.day_totals.push(Decimal::ZERO);
    }

    /// Puts an occurrence in the recent list at its place in time (after
    /// those at the same instant), with its row of sums.
    fn insert_recent(&mut self, at: DateTime<Utc>, row: Vec<Decimal>) {
        let width = self.width();
        let position = self.recent.partition_point(|t| *t <= at);
        self.recent.insert(position, at);
        for (k, n) in row.into_iter().enumerate() {
            self.recent_sums.insert(position * width + k, n);
        }
    }

    /// Drops recent occurrences past [`RECENT`] or older than 48 hours
    /// before the newest; one dropped for the count while still within
    /// those hours marks where the list stops being exact.
    fn trim_recent(&mut self) {
        let width = self.width();
        let Some(newest) = self.recent.back().copied() else {
            return;
        };
        while self.recent.len() > RECENT
            || self
                .recent
                .front()
                .is_some_and(|t| (newest - *t).num_seconds() > EXACT_SECONDS)
        {
            let Some(t) = self.recent.pop_front() else {
                break;
            };
            self.recent_sums.drain(..width);
            if (newest - t).num_seconds() <= EXACT_SECONDS {
                self.truncated_at = Some(self.truncated_at.map_or(t, |old| old.max(t)));
            }
        }
    }

    /// See [`History::absorb`].
    fn absorb(&mut self, other: EventHistory) {
        self.total += other.total;
        if let Some(first) = other.first
            && self.first.as_ref().is_none_or(|(t, _)| first.0 < *t)
        {
            self.first = Some(first);
        }
        if let Some(last) = other.last
            && self.last.as_ref().is_none_or(|(t, _)| last.0 > *t)
        {
            self.last = Some(last);
        }
        // Their fields in our order, added while there is room.
        let to: Vec<Option<usize>> = other
            .fields
            .iter()
            .map(|f| match self.field(f) {
                Some(i) => Some(i),
                None if self.fields.len() < MAX_SUMS => {
                    self.add_field(f);
                    Some(self.width() - 1)
                }
                None => None,
            })
            .collect();
        let width = self.width();
        let theirs = other.fields.len();
        let row_of = |sums: &VecDeque<Decimal>, r: usize| {
            let mut row = vec![Decimal::ZERO; width];
            for (k, to) in to.iter().enumerate() {
                if let Some(to) = to {
                    row[*to] += sums[r * theirs + k];
                }
            }
            row
        };
        for (r, d) in other.days.iter().enumerate() {
            let i = self.days.partition_point(|x| x < d);
            if self.days.get(i) != Some(d) {
                self.days.insert(i, *d);
                self.day_counts.insert(i, 0);
                for k in 0..width {
                    self.day_sums.insert(i * width + k, Decimal::ZERO);
                }
            }
            self.day_counts[i] += other.day_counts[r];
            for (k, n) in row_of(&other.day_sums, r).into_iter().enumerate() {
                self.day_sums[i * width + k] += n;
            }
        }
        if let Some(newest) = self.days.back().copied() {
            while self.days.front().is_some_and(|x| *x < newest - MAX_DAYS) {
                self.days.pop_front();
                self.day_counts.pop_front();
                self.day_sums.drain(..width);
            }
        }
        self.total_days();
        for (r, t) in other.recent.iter().enumerate() {
            self.insert_recent(*t, row_of(&other.recent_sums, r));
        }
        self.truncated_at = self.truncated_at.max(other.truncated_at);
        self.trim_recent();
    }

    fn field(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f == name)
    }

    /// Positions of the days from `from` to `to`, inclusive.
    fn day_range(&self, from: i64, to: i64) -> std::ops::Range<usize> {
        self.days.partition_point(|d| *d < from)..self.days.partition_point(|d| *d <= to)
    }
}

fn day(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

impl History {
    /// Drops the decoded form of every event's history that is kept as
    /// the bytes it was read or last written as: it is decoded again
    /// when next read.
    pub fn shed_decoded(&mut self) {
        self.events.shed_decoded();
    }

    /// The history of the event named `name`, if any.
    fn event(&self, name: &str) -> Option<&EventHistory> {
        self.events.get(name)
    }

    /// Starts fetching the list of event names.
    pub fn prefetch_entries(&self) {
        if let Some(first) = self.events.entries.first() {
            crate::hint::prefetch(first);
        }
    }

    /// Starts fetching every history's bytes, as read from the store or
    /// written since (the list of names must be fetched already, or this
    /// waits for it).
    pub fn prefetch_stored(&self) {
        let Events { stored, entries } = &self.events;
        crate::hint::prefetch_bytes(stored, 4096);
        for e in entries {
            if let Bytes::Own(bytes) = &e.bytes
                && let Some(bytes) = bytes.get()
            {
                crate::hint::prefetch_bytes(bytes, 1024);
            }
        }
    }

    /// Starts fetching the history of the event named `name`: decoded,
    /// or its bytes (the list of names must be fetched already, or this
    /// waits for it).
    pub fn prefetch_event(&self, name: &str) {
        let Ok(i) = self.events.position(name) else {
            return;
        };
        let e = &self.events.entries[i];
        if let Some(h) = e.history.get() {
            // Two of its fields, lines apart: it spans several.
            crate::hint::prefetch(&h.total);
            crate::hint::prefetch(&h.day_totals);
        } else if let Some(bytes) = e.kept(&self.events.stored) {
            crate::hint::prefetch_bytes(bytes, 1024);
        }
    }

    /// Writes the history as `rmp_serde` writes it with structs as arrays
    /// (positionally): the map of names to the histories' bytes, as one
    /// byte string, each event's part from the bytes it was read as or
    /// kept since it last changed, if it was written since.
    pub fn encode_positional(&self, out: &mut Vec<u8>) -> Result<(), rmp_serde::encode::Error> {
        // `History { events }`: an array of one, then the map as bytes.
        rmp::encode::write_array_len(out, 1)?;
        let len = self.events.map_len()?;
        rmp::encode::write_bin_len(out, u32::try_from(len).expect("far below 4 GiB"))?;
        out.reserve(len);
        self.events.write_map(out)
    }

    /// Plain JSON for exports: per event name its total, first and last
    /// occurrence (`at`, `properties`), the numeric properties summed, and
    /// per UTC day (`YYYY-MM-DD`) its count and sums.
    pub fn to_json(&self) -> serde_json::Value {
        use waymark_dsl::value::decimal_to_json;
        let occurrence = |o: &Option<(DateTime<Utc>, Snapshot)>| match o {
            Some((at, properties)) => serde_json::json!({
                "at": Value::Timestamp(*at).to_json(),
                "properties": properties.value().to_json(),
            }),
            None => serde_json::Value::Null,
        };
        let events: serde_json::Map<String, serde_json::Value> = self
            .events
            .iter()
            .map(|(name, h)| {
                let width = h.width();
                let days: Vec<serde_json::Value> = h
                    .days
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        let date = chrono::DateTime::from_timestamp(d * 86_400, 0)
                            .map(|t| t.date_naive().to_string())
                            .unwrap_or_default();
                        let sums: serde_json::Map<_, _> = h
                            .fields
                            .iter()
                            .enumerate()
                            .map(|(f, field)| {
                                (field.clone(), decimal_to_json(h.day_sums[i * width + f]))
                            })
                            .collect();
                        serde_json::json!({"day": date, "count": h.day_counts[i], "sums": sums})
                    })
                    .collect();
                let recent: Vec<serde_json::Value> = h
                    .recent
                    .iter()
                    .map(|t| Value::Timestamp(*t).to_json())
                    .collect();
                (
                    name.to_string(),
                    serde_json::json!({
                        "total": h.total,
                        "first": occurrence(&h.first),
                        "last": occurrence(&h.last),
                        "days": days,
                        "recent": recent,
                    }),
                )
            })
            .collect();
        serde_json::Value::Object(events)
    }

    /// Adds one event (its properties as a record).
    pub fn record(&mut self, name: &str, at: DateTime<Utc>, properties: &Value) {
        self.record_as(name, at, properties, Keep::All)
    }

    /// Adds one event, keeping what `keep` says.
    pub fn record_as(&mut self, name: &str, at: DateTime<Utc>, properties: &Value, keep: Keep) {
        // What `first` and `last` return of the occurrence.
        let snapshot = match keep {
            Keep::Nothing => return,
            Keep::Counts => &Value::Null,
            Keep::All => properties,
        };
        if self.events.append(name, at, snapshot, properties) {
            return;
        }
        let mut snapshot = Some(snapshot);
        let mut take = move || Snapshot::of(snapshot.take().unwrap_or(&Value::Null));
        if !self.events.contains(name) && self.events.len() >= MAX_NAMES {
            self.drop_least_recent();
        }
        // Every change to an event's history is made through this.
        let h = self.events.get_mut_or_new(name);
        h.total += 1;
        let first = h.first.as_ref().is_none_or(|(t, _)| at < *t);
        let last = h.last.as_ref().is_none_or(|(t, _)| at >= *t);
        match (first, last) {
            (true, true) => {
                let kept = take();
                h.first = Some((at, kept.clone()));
                h.last = Some((at, kept));
            }
            (true, false) => h.first = Some((at, take())),
            (false, true) => h.last = Some((at, take())),
            (false, false) => {}
        }
        let empty = Fields::new();
        let props = match properties {
            Value::Record(map) => map,
            _ => &empty,
        };
        let numbers: Vec<(&String, Decimal)> = props
            .iter()
            .filter_map(|(k, v)| v.as_number().map(|n| (k, n)))
            .take(MAX_SUMS)
            .collect();
        let row = h.row(numbers.iter().map(|(k, n)| (*k, n)));
        let width = h.width();

        // The day's bucket.
        let d = day(at);
        let i = h.days.partition_point(|x| *x < d);
        if h.days.get(i) != Some(&d) {
            h.days.insert(i, d);
            h.day_counts.insert(i, 0);
            for k in 0..width {
                h.day_sums.insert(i * width + k, Decimal::ZERO);
            }
        }
        h.day_counts[i] += 1;
        for (k, n) in row.iter().enumerate() {
            h.day_sums[i * width + k] += *n;
            h.day_totals[k] += *n;
        }
        let newest = h.days.back().copied().unwrap_or(d);
        let mut dropped = false;
        while h.days.front().is_some_and(|x| *x < newest - MAX_DAYS) {
            h.days.pop_front();
            h.day_counts.pop_front();
            h.day_sums.drain(..width);
            dropped = true;
        }
        if dropped {
            h.total_days();
        }

        // The exact recent list.
        h.insert_recent(at, row);
        h.trim_recent();
    }

    /// Takes in `other`, the history of the same person kept under another
    /// id (an identity merge): per event name, totals and day buckets
    /// added, the first and last occurrence the earliest and latest of
    /// both, the recent lists merged in time order and trimmed as they
    /// would have been had every event come to one id. Past
    /// [`MAX_NAMES`], the names seen least recently go, as they would.
    pub fn absorb(&mut self, other: History) {
        for (name, theirs) in other.events.into_decoded() {
            if self.events.contains(&name) {
                self.events.get_mut_or_new(&name).absorb(theirs);
            } else {
                *self.events.get_mut_or_new(&name) = theirs;
            }
        }
        while self.events.len() > MAX_NAMES && self.drop_least_recent() {}
    }

    /// Forgets the event name seen least recently; false if there is none.
    fn drop_least_recent(&mut self) -> bool {
        let oldest = self
            .events
            .iter()
            .min_by_key(|(_, h)| h.last.as_ref().map(|l| l.0))
            .map(|(n, _)| n.to_string());
        oldest.is_some_and(|n| self.events.remove(&n))
    }

    /// Whether the exact recent list covers everything since `cutoff`.
    fn exact_since(h: &EventHistory, cutoff: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        (now - cutoff).num_seconds() <= EXACT_SECONDS && h.truncated_at.is_none_or(|t| t < cutoff)
    }

    pub fn count(&self, name: &str, within: Option<i64>, now: DateTime<Utc>) -> u64 {
        let Some(h) = self.event(name) else {
            return 0;
        };
        let Some(within) = within else { return h.total };
        let cutoff = now - Duration::seconds(within);
        if Self::exact_since(h, cutoff, now) {
            return h
                .recent
                .iter()
                .filter(|t| **t > cutoff && **t <= now)
                .count() as u64;
        }
        h.day_range(day(cutoff), day(now))
            .map(|i| h.day_counts[i])
            .sum()
    }

    pub fn sum(&self, name: &str, field: &str, within: i64, now: DateTime<Utc>) -> Decimal {
        let Some(h) = self.event(name) else {
            return Decimal::ZERO;
        };
        let Some(k) = h.field(field) else {
            return Decimal::ZERO;
        };
        let width = h.width();
        let cutoff = now - Duration::seconds(within);
        if Self::exact_since(h, cutoff, now) {
            return h
                .recent
                .iter()
                .enumerate()
                .filter(|(_, t)| **t > cutoff && **t <= now)
                .map(|(i, _)| h.recent_sums[i * width + k])
                .sum();
        }
        // Every day kept is in the window: their total.
        if h.days.front().is_some_and(|d| *d >= day(cutoff))
            && h.days.back().is_some_and(|d| *d <= day(now))
        {
            return h.day_totals[k];
        }
        h.day_range(day(cutoff), day(now))
            .map(|i| h.day_sums[i * width + k])
            .sum()
    }

    fn snapshot(name: &str, entry: Option<&(DateTime<Utc>, Snapshot)>) -> Value {
        let Some((at, props)) = entry else {
            return Value::Null;
        };
        crate::model::event_value(name, &props.value(), *at)
    }

    pub fn last(&self, name: &str) -> Value {
        Self::snapshot(name, self.event(name).and_then(|h| h.last.as_ref()))
    }

    pub fn first(&self, name: &str) -> Value {
        Self::snapshot(name, self.event(name).and_then(|h| h.first.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    proptest::proptest! {
        /// Two ids' histories merged answer every question as the history
        /// of one id that got all the events in time order would.
        #[test]
        fn merged_histories_answer_as_one_history(
            events in proptest::collection::vec(
                (proptest::bool::ANY, 0usize..3, 0i64..600_000, 0u32..3, -500i64..500),
                1..160,
            ),
            asked in proptest::collection::vec((0i64..4000, 0usize..6), 1..8),
            dense in proptest::bool::ANY,
        ) {
            let start = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
            let mut events = events;
            if dense {
                // Within two days: more than the recent list keeps.
                for e in &mut events {
                    e.2 %= 2_000;
                }
            }
            // Distinct times: at the same instant, which came first is
            // the arrival order, which a merge cannot know.
            events.sort_by_key(|e| e.2);
            events.dedup_by_key(|e| e.2);
            let (mut one, mut a, mut b) = (History::default(), History::default(), History::default());
            let field = ["amount", "qty", "price"];
            for (to_a, name, minute, f, amount) in &events {
                let at = start + Duration::minutes(*minute);
                let mut props = Fields::new();
                props.insert(field[*f as usize].into(), Value::Number(Decimal::new(*amount, 1)));
                props.insert("minute".into(), Value::Number(Decimal::from(*minute)));
                let props = Value::Record(props);
                let name = ["a", "b", "c"][*name];
                one.record(name, at, &props);
                if *to_a { a.record(name, at, &props) } else { b.record(name, at, &props) }
            }
            a.absorb(b);
            let newest = start + Duration::minutes(events.last().unwrap().2);
            for (later, window) in asked {
                let now = newest + Duration::minutes(later);
                let within = [60, 3600, 86_400, 2 * 86_400, 30 * 86_400, 400 * 86_400][window];
                for name in ["a", "b", "c", "d"] {
                    proptest::prop_assert_eq!(a.count(name, Some(within), now), one.count(name, Some(within), now), "count {} {}", name, within);
                    proptest::prop_assert_eq!(a.count(name, None, now), one.count(name, None, now));
                    for f in field {
                        proptest::prop_assert_eq!(a.sum(name, f, within, now), one.sum(name, f, within, now), "sum {} {} {}", name, f, within);
                    }
                    proptest::prop_assert_eq!(a.first(name), one.first(name));
                    proptest::prop_assert_eq!(a.last(name), one.last(name));
                }
            }
        }

        /// An event's history written by hand is the bytes `rmp_serde`
        /// writes for it: numbers whole, scaled and past `i64`, several
        /// fields, snapshots of any shape, bursts that truncate the
        /// recent list, occurrences out of order.
        #[test]
        fn a_history_written_by_hand_is_what_rmp_serde_writes(
            events in proptest::collection::vec(
                (0usize..3, 0i64..2000, 0u32..3, -5_000i64..5_000, 0u32..4, 0u8..4),
                1..200,
            ),
        ) {
            let start = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
            let mut h = History::default();
            for (name, minutes, fields, amount, scale, shape) in events {
                let at = start + Duration::minutes(minutes);
                let mut n = Decimal::new(amount, scale);
                if shape == 3 {
                    // A mantissa past i64: stored as text.
                    n = Decimal::from_i128_with_scale(i128::from(amount) << 70, scale);
                }
                let props = match shape {
                    0 => Value::Null,
                    1 => Value::String("x".into()),
                    _ => Value::Record(
                        (0..=fields)
                            .map(|f| (format!("f{f}"), Value::Number(n)))
                            .chain([("sku".to_string(), Value::String("a".into()))])
                            .collect(),
                    ),
                };
                h.record(["order_paid", "checkin", "cart"][name], at, &props);
            }
            for (_, e) in h.events.iter() {
                let mut by_hand = Vec::new();
                e.encode_positional(&mut by_hand).unwrap();
                proptest::prop_assert_eq!(&by_hand, &rmp_serde::to_vec(e).unwrap());
                proptest::prop_assert_eq!(&rmp_serde::from_slice::<EventHistory>(&by_hand).unwrap(), e);
                proptest::prop_assert_eq!(&EventHistory::decode_positional(&by_hand).unwrap(), e);
            }
            let mut whole = Vec::new();
            h.encode_positional(&mut whole).unwrap();
            proptest::prop_assert_eq!(&whole, &rmp_serde::to_vec(&h).unwrap());
            proptest::prop_assert_eq!(&rmp_serde::from_slice::<History>(&whole).unwrap(), &h);
        }

        /// Recording onto a history's stored bytes writes what recording
        /// onto the decoded history writes, event after event: days past
        /// the 400 kept, bursts past the recent list, new fields and more
        /// than fit, numbers whole, scaled and past `i64`, occurrences
        /// out of order, properties kept or not.
        #[test]
        fn recording_onto_the_bytes_writes_what_recording_decoded_does(
            events in proptest::collection::vec(
                (0usize..2, 0u8..4, 0i64..1_000_000, 0usize..4, -5_000i64..5_000, 0u32..3, 0u8..5, proptest::bool::ANY),
                1..200,
            ),
            dense in proptest::bool::ANY,
        ) {
            let mut clock = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
            let (mut fast, mut slow) = (History::default(), History::default());
            for (name, step, by, fields, amount, scale, shape, all) in events {
                clock += match (step, dense) {
                    // Dense: more than the recent list keeps within hours.
                    (0..=2, true) => Duration::minutes(by % 10),
                    (0, false) => Duration::minutes(by % 90),
                    (1, false) => Duration::hours(by % 72),
                    (2, false) => Duration::days(by % 500),
                    (_, true) => -Duration::minutes(by % 10),
                    _ => -Duration::minutes(by % 600),
                };
                let n = Decimal::new(amount, scale);
                let props = match shape {
                    0 => Value::Null,
                    1 => Value::String("x".into()),
                    2 => Value::Record(
                        (0..=fields)
                            .map(|f| (format!("f{f}"), Value::Number(n)))
                            .chain([("sku".to_string(), Value::String("a".into()))])
                            .collect(),
                    ),
                    // A mantissa past i64 (stored as text), or more
                    // fields than are summed.
                    3 => Value::Record([("f0".to_string(), Value::Number(Decimal::from_i128_with_scale(i128::from(amount) << 70, scale)))].into()),
                    _ => Value::Record((0..40).map(|f| (format!("g{f}"), Value::Number(n))).collect()),
                };
                let keep = if all { Keep::All } else { Keep::Counts };
                let name = ["order_paid", "checkin"][name];
                fast.record_as(name, clock, &props, keep);
                // Every history decoded first: none is recorded as bytes.
                slow.events.iter().for_each(drop);
                slow.record_as(name, clock, &props, keep);
                let (mut a, mut b) = (Vec::new(), Vec::new());
                fast.encode_positional(&mut a).unwrap();
                slow.encode_positional(&mut b).unwrap();
                proptest::prop_assert_eq!(&a, &b);
                // (Comparing decodes every history.)
                proptest::prop_assert_eq!(&fast, &slow);
                // Read back as the store hands them over, kept as bytes.
                fast = rmp_serde::from_slice(&a).unwrap();
                slow = rmp_serde::from_slice(&b).unwrap();
            }
            // Most occurrences were the usual one.
        }

        /// A window over every day kept reads the kept total: the same
        /// number, written the same, as adding up the days; and a history
        /// read back from its stored form has the same totals.
        #[test]
        fn sums_over_every_day_are_the_days_added_up(
            events in proptest::collection::vec(
                (0i64..900, -50_000i64..50_000, 0u32..4, proptest::bool::ANY),
                1..60,
            ),
            windows in proptest::collection::vec((0i64..1000, 0i64..1000), 1..8),
        ) {
            let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
            let mut h = History::default();
            for (day, amount, scale, other) in events {
                let mut props = Fields::new();
                props.insert("amount".to_string(), Value::Number(Decimal::new(amount, scale)));
                if other {
                    props.insert("other".to_string(), Value::Number(Decimal::from(amount % 7)));
                }
                h.record("order_paid", start + Duration::hours(day * 20), &Value::Record(props));
            }
            let e = h.event("order_paid").unwrap();
            for (back, ahead) in windows {
                let now = start + Duration::days(ahead);
                let within = back * 86_400;
                for field in ["amount", "other"] {
                    let Some(k) = e.field(field) else { continue };
                    let added: Decimal = e
                        .day_range(day(now - Duration::seconds(within)), day(now))
                        .map(|i| e.day_sums[i * e.width() + k])
                        .sum();
                    let read = h.sum("order_paid", field, within, now);
                    if !History::exact_since(e, now - Duration::seconds(within), now) {
                        proptest::prop_assert_eq!(read.to_string(), added.to_string());
                    }
                }
            }
            let stored = rmp_serde::to_vec(&h).unwrap();
            let back: History = rmp_serde::from_slice(&stored).unwrap();
            proptest::prop_assert_eq!(&back.event("order_paid").unwrap().day_totals, &e.day_totals);
        }
    }

    #[test]
    fn the_store_keeps_times_and_numbers_as_integers_and_names_each_field_once() {
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
        // The field's name is written once for the columns (and in the
        // first and last events), not once per day and per occurrence.
        assert_eq!(text.matches("amount").count(), 3, "{text}");
        // JSON keeps text, and reads back.
        let json = serde_json::to_value(&h).unwrap();
        assert!(json.to_string().contains("2025-"), "{json}");
        assert_eq!(serde_json::from_value::<History>(json).unwrap(), h);
    }

    #[test]
    fn a_history_with_columns_of_the_wrong_length_is_refused() {
        let mut h = History::default();
        h.record("order_paid", at(1, 9), &amount(3));
        // The stored form with the day's sums left out.
        let mut e = h.event("order_paid").unwrap().clone();
        e.day_sums.clear();
        let mut inner = Vec::new();
        e.encode_positional(&mut inner).unwrap();
        // Checked as it is decoded (when first used, from the store).
        let e = EventHistory::decode_positional(&inner).unwrap_err();
        assert!(e.contains("1 days with 1 counts and 0 sums"), "{e}");
        let e = rmp_serde::from_slice::<EventHistory>(&inner).unwrap_err();
        assert!(
            e.to_string().contains("1 days with 1 counts and 0 sums"),
            "{e}"
        );
        // JSON, which spells the columns out, is checked as it is read.
        let mut json = serde_json::to_value(&h).unwrap();
        json["events"]["order_paid"]["day_sums"] = serde_json::json!([]);
        let e = serde_json::from_value::<History>(json).unwrap_err();
        assert!(
            e.to_string().contains("1 days with 1 counts and 0 sums"),
            "{e}"
        );
    }

    /// A history's stored form as the store writes it, with the names in
    /// the order given: `[bytes of {name: bytes}]`.
    fn stored_history(events: &[(&str, &[u8])]) -> Vec<u8> {
        let mut map = Vec::new();
        rmp::encode::write_map_len(&mut map, events.len() as u32).unwrap();
        for (name, bytes) in events {
            rmp::encode::write_str(&mut map, name).unwrap();
            rmp::encode::write_bin(&mut map, bytes).unwrap();
        }
        let mut out = Vec::new();
        rmp::encode::write_array_len(&mut out, 1).unwrap();
        rmp::encode::write_bin(&mut out, &map).unwrap();
        out
    }

    /// Names stored out of order are read in order (the last of a name
    /// given twice kept, as a map would); bytes whose framing is broken
    /// are refused as they are read, saying so.
    #[test]
    fn stored_names_are_read_in_order_and_broken_framing_is_refused() {
        let history = |n: i64| {
            let mut h = History::default();
            h.record("x", at(1, 9), &amount(n));
            let mut bytes = Vec::new();
            h.event("x").unwrap().encode_positional(&mut bytes).unwrap();
            bytes
        };
        let (one, two, three) = (history(1), history(2), history(3));
        let bytes = stored_history(&[("cart", &one), ("add", &two), ("cart", &three)]);
        let read: History = rmp_serde::from_slice(&bytes).unwrap();
        let names: Vec<&str> = read.events.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["add", "cart"]);
        assert_eq!(
            read.sum("cart", "amount", 86_400, at(1, 10)),
            Decimal::from(3)
        );
        assert_eq!(
            read.sum("add", "amount", 86_400, at(1, 10)),
            Decimal::from(2)
        );

        let whole = stored_history(&[("add", &two)]);
        // The map's bytes start after the array's head (one byte) and
        // the byte string's (two).
        for cut in 3..whole.len() {
            let mut short = Vec::new();
            rmp::encode::write_array_len(&mut short, 1).unwrap();
            rmp::encode::write_bin(&mut short, &whole[3..cut]).unwrap();
            let e = rmp_serde::from_slice::<History>(&short).unwrap_err();
            assert!(
                e.to_string().contains("event histories"),
                "cut at {cut}: {e}"
            );
        }
    }

    /// The names whose history is held decoded.
    fn decoded(h: &History) -> Vec<String> {
        h.events
            .entries
            .iter()
            .filter(|e| e.history.get().is_some())
            .map(|e| e.name.to_string())
            .collect()
    }

    /// A state read from the store decodes an event's history only when
    /// it is first used, and writes the others back as the bytes it read.
    #[test]
    fn histories_read_from_the_store_are_decoded_when_first_used() {
        let mut h = History::default();
        for (i, name) in ["order_paid", "checkin", "cart_updated"].iter().enumerate() {
            h.record(name, at(1, i as u32), &amount(i as i64 + 1));
            h.record(name, at(2, i as u32), &amount(10));
        }
        let mut stored = Vec::new();
        h.encode_positional(&mut stored).unwrap();
        assert_eq!(stored, rmp_serde::to_vec(&h).unwrap());

        let mut read: History = rmp_serde::from_slice(&stored).unwrap();
        assert!(decoded(&read).is_empty());
        assert_eq!(
            read.sum("checkin", "amount", 30 * 86_400, at(3, 0)),
            Decimal::from(12)
        );
        assert_eq!(decoded(&read), ["checkin"]);
        // Read, not changed: written back as it was read.
        let mut again = Vec::new();
        read.encode_positional(&mut again).unwrap();
        assert_eq!(again, stored);

        // A change to one event's history leaves the others as bytes;
        // the usual one is made to its bytes, without decoding it.
        read.record("order_paid", at(3, 1), &amount(5));
        h.record("order_paid", at(3, 1), &amount(5));
        assert_eq!(decoded(&read), ["checkin"]);
        let mut changed = Vec::new();
        read.encode_positional(&mut changed).unwrap();
        assert_eq!(changed, rmp_serde::to_vec(&h).unwrap());
        assert_eq!(read, h);
        assert_eq!(decoded(&read).len(), 3, "comparing decodes");
    }

    /// Shedding keeps only what is also kept as bytes: a history written
    /// since it changed goes back to its bytes, one changed after it was
    /// written stays decoded, and either way the history reads and
    /// writes as before.
    #[test]
    fn shedding_drops_only_histories_kept_as_bytes_and_loses_no_change() {
        let mut h = History::default();
        for (i, name) in ["order_paid", "checkin", "cart_updated"].iter().enumerate() {
            h.record(name, at(1, i as u32), &amount(i as i64 + 1));
        }
        // Made here and never written: nothing is kept as bytes yet.
        let before = h.clone();
        h.shed_decoded();
        assert_eq!(decoded(&h).len(), 3);
        assert_eq!(h, before);

        let mut written = Vec::new();
        h.encode_positional(&mut written).unwrap();
        // One history changes after the write: its bytes are stale.
        h.record("checkin", at(2, 0), &amount(7));
        let expected = h.clone();
        h.shed_decoded();
        assert_eq!(decoded(&h), ["checkin"]);
        assert_eq!(
            h.sum("checkin", "amount", 30 * 86_400, at(3, 0)),
            Decimal::from(9)
        );
        assert_eq!(
            h.sum("order_paid", "amount", 30 * 86_400, at(3, 0)),
            Decimal::from(1)
        );
        let mut again = Vec::new();
        h.encode_positional(&mut again).unwrap();
        assert_eq!(again, rmp_serde::to_vec(&expected).unwrap());
        assert_eq!(h, expected);
    }

    /// A snapshot holding every kind of value is stored and read back as
    /// it was recorded. A kind added to `Value` stops this from compiling
    /// until it is listed here.
    #[test]
    fn a_snapshot_of_every_kind_of_value_is_stored_and_read_back() {
        let every = [
            Value::Null,
            Value::Bool(true),
            Value::Number(Decimal::new(-125, 2)),
            Value::String("雅".into()),
            Value::Timestamp(at(1, 2)),
            Value::Date(chrono::NaiveDate::from_ymd_opt(2025, 11, 11).unwrap()),
            Value::Duration(3_600),
            Value::TimeOfDay(600),
            Value::List(vec![Value::Null, Value::List(vec![])]),
            Value::Record([("inner".to_string(), Value::Bool(false))].into()),
            // Past MessagePack's short forms: each length in bytes of its own.
            Value::String("长".repeat(100)),
            Value::List(vec![Value::Number(Decimal::new(i64::MAX, 3)); 20]),
            Value::Record((0..20).map(|i| (format!("k{i}"), Value::Null)).collect()),
        ];
        for v in &every {
            match v {
                Value::Null
                | Value::Bool(_)
                | Value::Number(_)
                | Value::String(_)
                | Value::Timestamp(_)
                | Value::Date(_)
                | Value::Duration(_)
                | Value::TimeOfDay(_)
                | Value::List(_)
                | Value::Record(_) => {}
            }
        }
        let record = Value::Record(
            every
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("f{i}"), v.clone()))
                .collect(),
        );
        let mut h = History::default();
        h.record("order_paid", at(1, 9), &record);
        let mut stored = Vec::new();
        h.encode_positional(&mut stored).unwrap();
        let read: History = rmp_serde::from_slice(&stored).unwrap();
        assert_eq!(read.last("order_paid"), h.last("order_paid"));
        assert_eq!(read, h);
    }

    proptest::proptest! {
        /// Stored bytes cut short, run on, or with any byte changed never
        /// panic as they are read: a member's histories are refused, or
        /// read; and one event's history is refused or decoded.
        #[test]
        fn damaged_stored_histories_are_read_or_refused_without_a_panic(
            cut in 0usize..1200,
            flip in 0usize..1200,
            to in proptest::num::u8::ANY,
            extra in proptest::bool::ANY,
        ) {
            let mut h = History::default();
            let record = Value::from_json(&serde_json::json!({
                "amount": 12.5, "sku": "x", "tags": ["a", {"b": 1}], "n": -3
            }));
            for i in 0..5 {
                h.record("order_paid", at(i, 9), &record);
                h.record("order_paid", at(4, 10 + i), &amount(i64::from(i)));
                h.record("checkin", at(i, 8), &Value::Null);
            }
            let damage = |bytes: &[u8]| {
                let mut damaged = bytes.to_vec();
                if flip < damaged.len() {
                    damaged[flip] = to;
                }
                damaged.truncate(cut.max(1).min(damaged.len()));
                if extra {
                    damaged.push(0);
                }
                damaged
            };
            let mut whole = Vec::new();
            h.encode_positional(&mut whole).unwrap();
            let damaged = damage(&whole);
            if let Ok(read) = rmp_serde::from_slice::<History>(&damaged) {
                proptest::prop_assert!(read.events.len() <= 2);
            }
            let mut inner = Vec::new();
            h.event("order_paid").unwrap().encode_positional(&mut inner).unwrap();
            let damaged = damage(&inner);
            let read = rmp_serde::from_slice::<EventHistory>(&damaged);
            proptest::prop_assert!(read.is_ok() || damaged != inner);
            // As the store reads it: what rmp_serde reads, the same; it
            // may also take bytes whose only damage is inside a snapshot
            // of `first` or `last`, which it checks the framing of only
            // (decoded when a script asks, as no properties then).
            let by_hand = EventHistory::decode_positional(&damaged);
            if let Ok(read) = read {
                proptest::prop_assert_eq!(by_hand.unwrap(), read);
            }
        }
    }

    #[test]
    fn fields_first_seen_later_get_a_column_of_zeros_before_them() {
        let mut h = History::default();
        let now = at(3, 12);
        h.record("order_paid", at(1, 9), &amount(10));
        let both = Value::from_json(&serde_json::json!({ "amount": 5, "coupon": 2 }));
        h.record("order_paid", at(3, 10), &both);
        h.record("order_paid", at(3, 11), &Value::Record(Default::default()));
        assert_sums(
            &h,
            now,
            &[
                ("amount", 30 * 86_400, 15),
                ("coupon", 30 * 86_400, 2),
                ("coupon", 3600 * 3, 2),
                ("amount", 3600 * 2, 0),
                ("nothing", 3600 * 3, 0),
            ],
        );
        let e = h.event("order_paid").unwrap();
        assert_eq!(e.day_sums.len(), e.days.len() * 2);
        assert_eq!(e.recent_sums.len(), e.recent.len() * 2);
        let bytes = rmp_serde::to_vec_named(&h).unwrap();
        assert_eq!(rmp_serde::from_slice::<History>(&bytes).unwrap(), h);
    }

    #[test]
    fn an_event_arriving_late_lands_in_its_own_day_and_place() {
        let mut h = History::default();
        h.record("order_paid", at(5, 9), &amount(1));
        h.record("order_paid", at(2, 9), &amount(2));
        h.record("order_paid", at(5, 8), &amount(4));
        let e = h.event("order_paid").unwrap();
        assert_eq!(e.days, [day(at(2, 9)), day(at(5, 9))]);
        assert_eq!(e.day_counts, [1, 2]);
        assert_eq!(e.day_sums, [Decimal::from(2), Decimal::from(5)]);
        assert_eq!(e.recent, [at(5, 8), at(5, 9)], "day 2 is past 48 hours");
        assert_eq!(
            h.sum("order_paid", "amount", 3 * 3600, at(5, 10)),
            Decimal::from(5)
        );
        assert_eq!(h.count("order_paid", Some(30 * 86_400), at(5, 10)), 3);
    }

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
            + Duration::days(i64::from(day))
            + Duration::hours(i64::from(hour))
    }

    /// Each `(field, window in seconds, sum)` of `order_paid` at `now`.
    fn assert_sums(h: &History, now: DateTime<Utc>, expected: &[(&str, i64, i64)]) {
        for &(field, within, sum) in expected {
            assert_eq!(
                h.sum("order_paid", field, within, now),
                Decimal::from(sum),
                "{field} within {within}s"
            );
        }
    }

    fn amount(n: i64) -> Value {
        Value::Record([("amount".to_string(), Value::Number(Decimal::from(n)))].into())
    }

    #[test]
    fn the_usual_occurrence_is_recorded_onto_the_bytes_and_others_decoded() {
        let stored = |h: &History| -> History {
            rmp_serde::from_slice(&rmp_serde::to_vec(h).unwrap()).unwrap()
        };
        let mut h = History::default();
        h.record("order_paid", at(1, 9), &amount(30));
        let mut h = stored(&h);
        // Later the same day, then days later: onto the bytes.
        h.record("order_paid", at(1, 11), &amount(20));
        assert!(decoded(&h).is_empty());
        h.record("order_paid", at(3, 8), &amount(5));
        assert!(decoded(&h).is_empty());
        assert_eq!(h.count("order_paid", None, at(3, 9)), 3);
        assert_sums(
            &h,
            at(3, 9),
            &[("amount", 86_400, 5), ("amount", 30 * 86_400, 55)],
        );
        // Before the last one: decoded.
        let mut h = stored(&h);
        h.record("order_paid", at(2, 8), &amount(1));
        assert_eq!(decoded(&h), ["order_paid"]);
        // A field not summed yet: decoded.
        let mut h = stored(&h);
        let tip = Value::Record([("tip".to_string(), Value::Number(Decimal::from(2)))].into());
        h.record("order_paid", at(4, 8), &tip);
        assert_eq!(decoded(&h), ["order_paid"]);
        assert_eq!(
            h.sum("order_paid", "tip", 86_400, at(4, 9)),
            Decimal::from(2)
        );
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
        assert_sums(
            &h,
            now,
            &[("amount", 30 * 86_400, 60), ("amount", 8 * 3600, 50)],
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
            h.record("checkin", at(d, 9), &Value::Record(Default::default()));
        }
        let e = h.event("checkin").unwrap();
        assert!(e.days.len() <= MAX_DAYS as usize + 1);
        assert!(e.recent.len() <= RECENT);
        let now = at(799, 10);
        assert_eq!(h.count("checkin", Some(365 * 86_400), now), 366);
        assert_eq!(h.count("checkin", None, now), 800);
    }
}
