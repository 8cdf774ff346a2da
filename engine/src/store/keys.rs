//! How keys are written: a table's prefix, then its parts joined by `/`.
//! User ids are escaped ([`user_part`]) so that no user's key range holds
//! another's, and times are big-endian microseconds ([`time_key`]) so that
//! a range scan yields them in order. The layout itself, table by table,
//! is listed at the top of the store's module.

use chrono::{DateTime, Utc};

/// A user id as every key that holds one writes it: the id's bytes with
/// each `0x00` written as `0x00 0xff`, then `0x00 0x01` to end it.
///
/// Every per-user key range is exact because of it: the end marker occurs
/// nowhere else in the part, so no user's part starts with another's, and
/// a scan of `j/{user}/` (or any other prefix ending with a user's part)
/// holds that user's keys only. Bare ids did not: `alice` was a prefix of
/// `alice/x`, and reading or erasing one reached the other's journal.
/// Ids still sort as they compare (a shorter id's `0x00 0x01` sorts before
/// any byte that could follow it in a longer one), so pages of users and
/// timers due at the same time stay in id order.
pub(super) fn user_part(id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(id.len() + 2);
    for &b in id.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 1]);
    out
}

/// The id in a user part written by [`user_part`] that starts `bytes`, and
/// the rest of `bytes` after it; `None` if `bytes` does not start with one.
pub(super) fn split_user_part(bytes: &[u8]) -> Option<(String, &[u8])> {
    let mut id = Vec::with_capacity(bytes.len());
    let mut i = 0;
    loop {
        match (*bytes.get(i)?, bytes.get(i + 1)) {
            (0, Some(0xff)) => {
                id.push(0);
                i += 2;
            }
            (0, Some(1)) => break,
            (0, _) => return None,
            (b, _) => {
                id.push(b);
                i += 1;
            }
        }
    }
    Some((String::from_utf8(id).ok()?, &bytes[i + 2..]))
}

/// `prefix/part/part…`.
pub(super) fn key(prefix: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    for p in parts {
        k.push(b'/');
        k.extend_from_slice(p);
    }
    k
}

/// Timestamps in keys: big-endian microseconds, offset so that order holds.
/// Sub-microsecond times round up, so a timer never fires before its time.
pub(super) fn time_key(t: DateTime<Utc>) -> [u8; 8] {
    let micros = t.timestamp_micros() + i64::from(!t.timestamp_subsec_nanos().is_multiple_of(1000));
    ((micros as u64) ^ (1 << 63)).to_be_bytes()
}

pub(super) fn time_from_key(bytes: &[u8]) -> Option<DateTime<Utc>> {
    let raw = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?) ^ (1 << 63);
    DateTime::from_timestamp_micros(raw as i64)
}

/// The smallest key after every key starting with `prefix`.
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.push(0xff);
    end
}

/// The number in a key `{prefix}/{n}` (`n` 8 bytes big-endian).
pub(super) fn number_after_prefix(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(2..10)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn user_parts_read_back_sort_like_ids_and_none_starts_another(
            a in "[a\\x00\\x01/\u{ff}\u{10ffff}]{0,6}",
            b in "[a\\x00\\x01/\u{ff}\u{10ffff}]{0,6}",
        ) {
            let (pa, pb) = (user_part(&a), user_part(&b));
            let rest = [pa.as_slice(), b"/tail"].concat();
            proptest::prop_assert_eq!(split_user_part(&rest), Some((a.clone(), &b"/tail"[..])));
            proptest::prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
            if a != b {
                proptest::prop_assert!(!pb.starts_with(&pa) && !pa.starts_with(&pb));
            }
        }
    }

    #[test]
    fn a_timer_key_is_never_earlier_than_its_time() {
        let t = DateTime::parse_from_rfc3339("2025-11-10T12:00:00.000000500Z")
            .unwrap()
            .to_utc();
        assert!(time_from_key(&time_key(t)).unwrap() >= t);
    }

    #[test]
    fn time_keys_sort_like_times_including_before_1970() {
        let times = [
            "1960-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2025-11-10T12:00:00Z",
            "2025-11-10T12:00:00.000001Z",
        ];
        let keys: Vec<[u8; 8]> = times
            .iter()
            .map(|t| time_key(DateTime::parse_from_rfc3339(t).unwrap().to_utc()))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (t, k) in times.iter().zip(&keys) {
            assert_eq!(
                time_from_key(k).unwrap(),
                DateTime::parse_from_rfc3339(t).unwrap().to_utc()
            );
        }
    }
}
