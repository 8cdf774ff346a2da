//! An event's history as stored, read and written piece by piece: the
//! numbers, times and lengths of its columns (what
//! [`EventHistory::encode_positional`](super::EventHistory) writes), and
//! [`append`], which records the usual occurrence straight onto those
//! bytes. An occurrence at or after the last one, whose numbers are summed
//! in fields the history has already, changes only the total, the last
//! occurrence, the newest day's bucket and the two ends of the recent
//! list; the rest is copied as it is. Decoding every column, recording and
//! encoding them again was a third of the daemon writer's time, for the
//! same bytes (a test holds the two to the same bytes).

use super::{EXACT_SECONDS, MAX_DAYS, MAX_SUMS, RECENT, day};
use chrono::{DateTime, Utc};
use rmp::decode as r;
use rmp::encode as w;
use rust_decimal::Decimal;
use waymark_dsl::stored::Num;
use waymark_dsl::value::Value;

/// Moves past a nil, if that is what comes next.
pub(super) fn is_nil(rest: &mut &[u8]) -> bool {
    let nil = rest.first() == Some(&rmp::Marker::Null.to_u8());
    if nil {
        *rest = &rest[1..];
    }
    nil
}

pub(super) fn int(rest: &mut &[u8]) -> Result<i64, String> {
    r::read_int(rest).map_err(|e| e.to_string())
}

pub(super) fn uint(rest: &mut &[u8]) -> Result<u64, String> {
    r::read_int(rest).map_err(|e| e.to_string())
}

/// A time, stored as whole microseconds since 1970.
pub(super) fn stamp(rest: &mut &[u8]) -> Result<DateTime<Utc>, String> {
    let micros = int(rest)?;
    DateTime::from_timestamp_micros(micros).ok_or_else(|| format!("{micros} µs is out of range"))
}

/// A column's length.
pub(super) fn len(rest: &mut &[u8]) -> Result<usize, String> {
    let n = r::read_array_len(rest).map_err(|e| e.to_string())? as usize;
    // Each element takes a byte at least: a length past the bytes
    // left is not believed (nor allocated for).
    if n > rest.len() {
        return Err(format!("a column of {n} in {} bytes", rest.len()));
    }
    Ok(n)
}

/// A number: whole, `[mantissa, scale]`, or text past `i64`.
pub(super) fn num(rest: &mut &[u8]) -> Result<Num, String> {
    match rmp::Marker::from_u8(*rest.first().ok_or("a number runs past the end")?) {
        rmp::Marker::FixArray(_) | rmp::Marker::Array16 | rmp::Marker::Array32 => {
            if len(rest)? != 2 {
                return Err("a number is not [mantissa, scale]".into());
            }
            let m = int(rest)?;
            let scale = u32::try_from(uint(rest)?).map_err(|e| e.to_string())?;
            Decimal::try_from_i128_with_scale(i128::from(m), scale)
                .map(Num)
                .map_err(|e| e.to_string())
        }
        rmp::Marker::FixStr(_) | rmp::Marker::Str8 | rmp::Marker::Str16 | rmp::Marker::Str32 => {
            rmp_serde::decode::from_read::<_, Num>(rest).map_err(|e| e.to_string())
        }
        _ => int(rest).map(|m| Num(Decimal::from(m))),
    }
}

/// Writes a number as [`num`] reads it.
pub(super) fn write_num(out: &mut Vec<u8>, n: Decimal) -> Result<(), rmp_serde::encode::Error> {
    match i64::try_from(n.mantissa()) {
        Ok(m) if n.scale() == 0 => {
            w::write_sint(out, m)?;
        }
        Ok(m) => {
            w::write_array_len(out, 2)?;
            w::write_sint(out, m)?;
            w::write_uint(out, u64::from(n.scale()))?;
        }
        Err(_) => rmp_serde::encode::write(out, &Num(n))?,
    }
    Ok(())
}

/// Deeper than this, a stored value is refused (as `rmp_serde` refuses it).
const MAX_DEPTH: usize = 1024;

/// Moves `rest` past one MessagePack value, checking only its framing.
pub(super) fn skip_value(rest: &mut &[u8], depth: usize) -> Result<(), String> {
    use rmp::Marker as M;
    if depth > MAX_DEPTH {
        return Err("a stored value is nested too deep".into());
    }
    let (&marker, tail) = rest.split_first().ok_or("a value runs past the end")?;
    *rest = tail;
    let mut be = |n: usize| -> Result<usize, String> {
        let bytes = rest.get(..n).ok_or("a value runs past the end")?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        *rest = &rest[n..];
        Ok(len)
    };
    let (bytes, items) = match M::from_u8(marker) {
        M::FixPos(_) | M::FixNeg(_) | M::Null | M::True | M::False => (0, 0),
        M::U8 | M::I8 => (1, 0),
        M::U16 | M::I16 => (2, 0),
        M::U32 | M::I32 | M::F32 => (4, 0),
        M::U64 | M::I64 | M::F64 => (8, 0),
        M::FixStr(n) => (usize::from(n), 0),
        M::Str8 | M::Bin8 => (be(1)?, 0),
        M::Str16 | M::Bin16 => (be(2)?, 0),
        M::Str32 | M::Bin32 => (be(4)?, 0),
        M::FixArray(n) => (0, usize::from(n)),
        M::Array16 => (0, be(2)?),
        M::Array32 => (0, be(4)?),
        M::FixMap(n) => (0, 2 * usize::from(n)),
        M::Map16 => (0, 2 * be(2)?),
        M::Map32 => (0, 2 * be(4)?),
        M::FixExt1 => (2, 0),
        M::FixExt2 => (3, 0),
        M::FixExt4 => (5, 0),
        M::FixExt8 => (9, 0),
        M::FixExt16 => (17, 0),
        M::Ext8 => (be(1)? + 1, 0),
        M::Ext16 => (be(2)? + 1, 0),
        M::Ext32 => (be(4)? + 1, 0),
        M::Reserved => return Err("a stored value has a reserved marker".into()),
    };
    *rest = rest.get(bytes..).ok_or("a value runs past the end")?;
    for _ in 0..items {
        skip_value(rest, depth + 1)?;
    }
    Ok(())
}

/// The stored bytes being read, with where each piece starts.
struct Reader<'a> {
    bytes: &'a [u8],
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Where the next piece starts.
    fn at(&self) -> usize {
        self.bytes.len() - self.rest.len()
    }

    /// The bytes from `from` to `to`.
    fn between(&self, from: usize, to: usize) -> &'a [u8] {
        &self.bytes[from..to]
    }

    fn len(&mut self) -> Option<usize> {
        len(&mut self.rest).ok()
    }

    fn uint(&mut self) -> Option<u64> {
        uint(&mut self.rest).ok()
    }

    /// A whole number, read by its marker.
    fn int_fast(&mut self) -> Option<i64> {
        let (&marker, rest) = self.rest.split_first()?;
        let (n, len): (i64, usize) = match marker {
            0x00..=0x7f => (i64::from(marker), 0),
            0xe0..=0xff => (i64::from(marker as i8), 0),
            0xcc => (i64::from(*rest.first()?), 1),
            0xcd => (
                i64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
                2,
            ),
            0xce => (
                i64::from(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?)),
                4,
            ),
            0xcf => (
                i64::try_from(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?)).ok()?,
                8,
            ),
            0xd0 => (i64::from(*rest.first()? as i8), 1),
            0xd1 => (
                i64::from(i16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
                2,
            ),
            0xd2 => (
                i64::from(i32::from_be_bytes(rest.get(..4)?.try_into().ok()?)),
                4,
            ),
            0xd3 => (i64::from_be_bytes(rest.get(..8)?.try_into().ok()?), 8),
            _ => return None,
        };
        self.rest = &rest[len..];
        Some(n)
    }

    /// Moves past a number (whole, `[mantissa, scale]`, or text), by its
    /// markers.
    fn skip_number(&mut self) -> Option<()> {
        let marker = *self.rest.first()?;
        let len = match marker {
            0x00..=0x7f | 0xe0..=0xff => 0,
            0xcc | 0xd0 => 1,
            0xcd | 0xd1 => 2,
            0xce | 0xd2 => 4,
            0xcf | 0xd3 => 8,
            _ => return self.skip(),
        };
        self.rest = self.rest.get(1 + len..)?;
        Some(())
    }

    fn num(&mut self) -> Option<Decimal> {
        num(&mut self.rest).ok().map(|n| n.0)
    }

    fn skip(&mut self) -> Option<()> {
        skip_value(&mut self.rest, 0).ok()
    }

    fn nil(&mut self) -> bool {
        is_nil(&mut self.rest)
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = r::read_str_len(&mut self.rest).ok()? as usize;
        let s = std::str::from_utf8(self.rest.get(..n)?).ok()?;
        self.rest = &self.rest[n..];
        Some(s)
    }

    /// An occurrence's time, past its properties.
    fn occurrence(&mut self) -> Option<DateTime<Utc>> {
        if self.len()? != 2 {
            return None;
        }
        let at = stamp(&mut self.rest).ok()?;
        self.skip()?;
        Some(at)
    }

    /// Reads a column of `n` elements with `each`, saying where element
    /// `keep` starts and where element `last` does (the column's end for
    /// a position past its last element).
    fn column(
        &mut self,
        n: usize,
        keep: usize,
        last: usize,
        mut each: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<(usize, usize)> {
        let (mut kept_from, mut last_from) = (None, None);
        for i in 0..n {
            if i == keep {
                kept_from = Some(self.at());
            }
            if i == last {
                last_from = Some(self.at());
            }
            each(self, i)?;
        }
        let end = self.at();
        Some((kept_from.unwrap_or(end), last_from.unwrap_or(end)))
    }
}

/// Records an occurrence of the event at `at` onto its history's stored
/// `bytes`, writing to `out` the bytes that decoding the history,
/// recording the occurrence ([`History::record_as`](super::History)) and
/// encoding it would write: `snapshot` is what `last` is to return of it,
/// `properties` what its numbers are summed from. `None`, with `out` as
/// it was, unless it is the usual occurrence: one at or after the last
/// (so the newest, in the newest day, at the end of the recent list),
/// whose numbers the history sums in fields it has already (or has no
/// room for). Any other is recorded on the decoded history.
pub(super) fn append(
    bytes: &[u8],
    at: DateTime<Utc>,
    snapshot: &Value,
    properties: &Value,
    out: &mut Vec<u8>,
) -> Option<()> {
    let mut r = Reader { bytes, rest: bytes };
    if r.len()? != 10 {
        return None;
    }
    let total = r.uint()?;
    let first_from = r.at();
    if r.nil() {
        // The occurrence would be the first too.
        return None;
    }
    let first_at = r.occurrence()?;
    let first_to = r.at();
    if r.nil() || at < first_at || at < r.occurrence()? {
        return None;
    }

    let fields_from = r.at();
    let width = r.len()?;
    if width > MAX_SUMS {
        return None;
    }
    let mut fields = [""; MAX_SUMS];
    for f in &mut fields[..width] {
        *f = r.str()?;
    }
    let fields = &fields[..width];
    let fields_to = r.at();
    // The occurrence's row of sums, as `EventHistory::row` makes it.
    let mut row = [Decimal::ZERO; MAX_SUMS];
    if let Value::Record(props) = properties {
        let numbers = props
            .iter()
            .filter_map(|(k, v)| v.as_number().map(|n| (k, n)))
            .take(MAX_SUMS);
        for (field, n) in numbers {
            match fields.iter().position(|f| *f == field.as_str()) {
                Some(i) => row[i] += n,
                // A field to add: every row widens.
                None if width < MAX_SUMS => return None,
                None => {}
            }
        }
    }
    let row = &row[..width];

    // Days: the occurrence's is the newest, so those more than MAX_DAYS
    // before it go, from the front (the oldest is read to know whether
    // any does), and the newest is read to know whether it is its day.
    // Elements read only to be copied are passed by their markers.
    let today = day(at);
    let days = r.len()?;
    if days == 0 {
        // Not written so: an occurrence makes its day.
        return None;
    }
    let days_at = r.at();
    let oldest = r.int_fast()?;
    let (mut dropped, mut kept_days_at, mut newest) = (0, days_at, oldest);
    if oldest < today - MAX_DAYS {
        (dropped, kept_days_at) = (1, r.at());
        for i in 1..days {
            newest = r.int_fast()?;
            if newest < today - MAX_DAYS {
                (dropped, kept_days_at) = (i + 1, r.at());
            }
        }
    } else if days > 1 {
        for _ in 1..days - 1 {
            r.skip_number()?;
        }
        newest = r.int_fast()?;
    }
    let days_to = r.at();
    let same_day = match newest {
        d if d == today => true,
        d if d < today => false,
        // A day after the last occurrence's: not written so.
        _ => return None,
    };
    let kept_days = r.between(kept_days_at, days_to);

    if r.len()? != days {
        return None;
    }
    let mut last_count = 0;
    let (counts_from, counts_last) = r.column(days, dropped, days - 1, |r, i| {
        if i + 1 == days {
            last_count = r.uint()?;
            Some(())
        } else {
            r.skip_number()
        }
    })?;
    let counts_to = r.at();

    if r.len()? != days * width {
        return None;
    }
    let newest_row = (days - 1) * width;
    let mut last_sums = [Decimal::ZERO; MAX_SUMS];
    let (sums_from, sums_last) = r.column(days * width, dropped * width, newest_row, |r, i| {
        if same_day && i >= newest_row {
            last_sums[i - newest_row] = r.num()?;
            Some(())
        } else {
            r.skip_number()
        }
    })?;
    let sums_to = r.at();

    // The recent list: the occurrence goes at its end, and those past
    // RECENT or more than EXACT_SECONDS before it go from the front.
    let recent = r.len()?;
    if recent > RECENT {
        return None;
    }
    let at_micros = at.timestamp_micros();
    let (mut times, mut starts) = ([0i64; RECENT], [0usize; RECENT]);
    for i in 0..recent {
        starts[i] = r.at();
        times[i] = r.int_fast()?;
    }
    let recent_to = r.at();
    // Whole seconds between, as `(at - t).num_seconds()` counts them.
    let old = |t: i64| at_micros.checked_sub(t).map(|d| d / 1_000_000) > Some(EXACT_SECONDS);
    let mut gone = 0;
    while recent + 1 - gone > RECENT || (gone < recent && old(times[gone])) {
        gone += 1;
    }
    let kept_from = if gone < recent {
        starts[gone]
    } else {
        recent_to
    };
    let kept_recent = r.between(kept_from, recent_to);

    if r.len()? != recent * width {
        return None;
    }
    let (recent_sums_from, _) =
        r.column(recent * width, gone * width, 0, |r, _| r.skip_number())?;
    let recent_sums_to = r.at();

    let mut truncated_at = if r.nil() {
        None
    } else {
        Some(stamp(&mut r.rest).ok()?)
    };
    if !r.rest.is_empty() {
        return None;
    }
    // One dropped while within the hours marks where the list stops
    // being exact: the last dropped is the newest of them.
    if let Some(t) = gone.checked_sub(1).map(|i| times[i])
        && !old(t)
    {
        let t = DateTime::from_timestamp_micros(t)?;
        truncated_at = Some(truncated_at.map_or(t, |was: DateTime<Utc>| was.max(t)));
    }

    let start = out.len();
    let written = (|| -> Result<(), rmp_serde::encode::Error> {
        let count = |n: usize| u32::try_from(n).expect("columns are bounded far below u32::MAX");
        w::write_array_len(out, 10)?;
        w::write_uint(out, total + 1)?;
        out.extend_from_slice(r.between(first_from, first_to));
        w::write_array_len(out, 2)?;
        w::write_sint(out, at.timestamp_micros())?;
        let properties_at = out.len();
        if rmp_serde::encode::write(out, snapshot).is_err() {
            // As `Snapshot::of` keeps them: no properties.
            out.truncate(properties_at);
            out.push(rmp::Marker::Null.to_u8());
        }
        out.extend_from_slice(r.between(fields_from, fields_to));

        let days_now = days - dropped + usize::from(!same_day);
        w::write_array_len(out, count(days_now))?;
        out.extend_from_slice(kept_days);
        if !same_day {
            w::write_sint(out, today)?;
        }
        w::write_array_len(out, count(days_now))?;
        if same_day {
            out.extend_from_slice(r.between(counts_from, counts_last));
            w::write_uint(out, last_count + 1)?;
        } else {
            out.extend_from_slice(r.between(counts_from, counts_to));
            w::write_uint(out, 1)?;
        }
        w::write_array_len(out, count(days_now * width))?;
        if same_day {
            out.extend_from_slice(r.between(sums_from, sums_last));
            for (sum, n) in last_sums.iter().zip(row) {
                write_num(out, *sum + *n)?;
            }
        } else {
            out.extend_from_slice(r.between(sums_from, sums_to));
            for n in row {
                write_num(out, Decimal::ZERO + *n)?;
            }
        }

        let recent_now = recent - gone + 1;
        w::write_array_len(out, count(recent_now))?;
        out.extend_from_slice(kept_recent);
        w::write_sint(out, at.timestamp_micros())?;
        w::write_array_len(out, count(recent_now * width))?;
        out.extend_from_slice(r.between(recent_sums_from, recent_sums_to));
        for n in row {
            write_num(out, *n)?;
        }
        match truncated_at {
            None => out.push(rmp::Marker::Null.to_u8()),
            Some(t) => {
                w::write_sint(out, t.timestamp_micros())?;
            }
        }
        Ok(())
    })();
    if written.is_err() {
        out.truncate(start);
        return None;
    }
    Some(())
}
