//! The journal, `j/{user}/{seq}`, and its sequence number, `s`. Every
//! record takes the next sequence number; a batch's records of one user
//! are written under one key, the number of the first, oldest first, so a
//! user's journal is a range scan in order (one per id, merged by
//! sequence number, for a profile other ids were merged into: their
//! records stay where they were written). The store is the only writer
//! of `s` and keeps it in memory once read.
//!
//! A `consent` record is also written to the consent ledger,
//! `y/{at}/{user}/{seq}`, so that an auditor's export of every change in
//! a time range reads that range and nothing else.

use super::keys::{key, prefix_end, time_key, user_part};
use super::sealed::Seals;
use super::{Kv, Op, Result, Store, decode, encode};
use chrono::{DateTime, Utc};
use waymark_core::journal::{Kind, Record};

/// Where a consent record is also kept, for the ledger read by time:
/// `y/{at}/{user}/{seq}`.
fn ledger_key(record: &Record, seq: u64) -> Vec<u8> {
    key(
        "y",
        &[
            &time_key(record.at),
            &user_part(&record.user),
            &seq.to_be_bytes(),
        ],
    )
}

/// The keys of the ledger entries a user's consent record at `at` may
/// have: `y/{at}/{user}/…`.
pub(super) fn ledger_prefix(at: DateTime<Utc>, user: &str) -> Vec<u8> {
    key("y", &[&time_key(at), &user_part(user), b""])
}

impl<K: Kv> Store<K> {
    /// The last sequence number used, as stored.
    pub(super) fn sequence(&self) -> Result<u64> {
        Ok(self
            .kv
            .get(b"s")?
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// The user's journal, oldest first (with the journals of the ids
    /// merged into them).
    pub fn journal(&self, user: &str, limit: usize) -> Result<Vec<Record>> {
        // Each key holds at least one record: `limit` keys of each id are enough.
        let rows = self.journal_rows(user, 0, limit, false)?;
        let mut out: Vec<Record> = rows.into_iter().flat_map(|(_, r)| r).collect();
        out.truncate(limit);
        Ok(out)
    }

    /// A user's newest records, at most `limit`, oldest first.
    pub fn journal_latest(&self, user: &str, limit: usize) -> Result<Vec<Record>> {
        let rows = self.journal_rows(user, 0, limit, true)?;
        let mut out: Vec<Record> = Vec::new();
        for (_, records) in rows.into_iter().rev() {
            if out.len() >= limit {
                break;
            }
            out.extend(records.into_iter().rev());
        }
        out.truncate(limit);
        out.reverse();
        Ok(out)
    }

    /// A page of a user's records, oldest first: those written after
    /// sequence number `after` (0 for the start), at least `limit` unless
    /// there are fewer (a batch's records of one user are not split), and
    /// the sequence number to ask after for the next page, if any.
    pub fn journal_page(
        &self,
        user: &str,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Record>, Option<u64>)> {
        let rows = self.journal_rows(user, after, limit.saturating_add(1), false)?;
        let mut out = Vec::new();
        let mut last = None;
        let mut consumed = 0;
        for (seq, records) in &rows {
            if out.len() >= limit {
                break;
            }
            out.extend(records.iter().cloned());
            last = Some(*seq);
            consumed += 1;
        }
        let next = if consumed < rows.len() { last } else { None };
        Ok((out, next))
    }

    /// The journal keys of `user` and the ids merged into them, after
    /// sequence number `after`, in sequence order: up to `limit` keys of
    /// each id, the first ones, or the last ones if `newest`.
    fn journal_rows(
        &self,
        user: &str,
        after: u64,
        limit: usize,
        newest: bool,
    ) -> Result<Vec<(u64, Vec<Record>)>> {
        let mut rows = Vec::new();
        for id in self.journal_ids(user)? {
            let prefix = key("j", &[&user_part(&id), b""]);
            let mut from = prefix.clone();
            from.extend_from_slice(&after.saturating_add(1).to_be_bytes());
            let end = prefix_end(&prefix);
            let keys = if newest {
                self.kv.range_rev(&from, &end, limit)?
            } else {
                self.kv.range(&from, &end, limit)?
            };
            for (k, v) in keys {
                let seq = k[prefix.len()..]
                    .try_into()
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                if let Some(v) = self.open_value(&k, &v)? {
                    rows.push((seq, decode::<Vec<Record>>(&k, &v)?));
                }
            }
        }
        rows.sort_by_key(|(seq, _)| *seq);
        Ok(rows)
    }

    /// The consent ledger: every `consent` record at or after `from` and
    /// before `to`, oldest first, at most `limit`, starting after the
    /// entry `after` names (the `next` of the page before); and the
    /// `next` to ask for the page after this one, if there may be more.
    pub fn consent_ledger(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<Record>, Option<Vec<u8>>)> {
        let start = match (after, from) {
            (Some(after), _) => {
                let mut k = after.to_vec();
                k.push(0);
                k
            }
            (None, Some(from)) => key("y", &[&time_key(from)]),
            (None, None) => key("y", &[]),
        };
        let end = match to {
            Some(to) => key("y", &[&time_key(to)]),
            None => prefix_end(b"y/"),
        };
        if start >= end {
            return Ok((Vec::new(), None));
        }
        let rows = self.kv.range(&start, &end, limit.saturating_add(1))?;
        let more = rows.len() > limit;
        let mut out = Vec::with_capacity(rows.len().min(limit));
        let mut last = None;
        for (k, v) in rows.into_iter().take(limit) {
            if let Some(v) = self.open_value(&k, &v)? {
                out.extend(decode::<Vec<Record>>(&k, &v)?);
            }
            last = Some(k);
        }
        Ok((out, last.filter(|_| more)))
    }

    /// The writes of a batch's journal, numbered after `first`: one key per
    /// user, under the sequence number of the user's first record (every
    /// record still takes a number), and `s`. Returns the last number.
    pub(super) fn write_journal(
        journal: &[Record],
        first: u64,
        seals: &Seals<'_, K>,
        ops: &mut Vec<Op>,
    ) -> Result<u64> {
        let mut groups: Vec<(u64, Vec<&Record>)> = Vec::new();
        let mut group_of: foldhash::HashMap<&str, usize> = Default::default();
        let mut seq = first;
        for record in journal {
            seq += 1;
            if record.kind == Kind::Consent {
                let k = ledger_key(record, seq);
                seals.put(&record.user, k, encode(&[record]), ops)?;
            }
            let g = *group_of.entry(record.user.as_str()).or_insert_with(|| {
                groups.push((seq, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(record);
        }
        for (at, records) in &groups {
            let k = key("j", &[&user_part(&records[0].user), &at.to_be_bytes()]);
            seals.put(&records[0].user, k, encode(records), ops)?;
        }
        if seq != first {
            ops.push(Op::Put(b"s".to_vec(), seq.to_be_bytes().to_vec()));
        }
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryKv;
    use waymark_core::journal::Kind;

    /// `batches` batches of `per` records each for user `u` (and one for
    /// someone else in every batch), committed in order.
    fn store(batches: u64, per: u64) -> Store<MemoryKv> {
        let store = Store::open(MemoryKv::default()).unwrap();
        let at = "2026-12-05T00:00:00Z".parse().unwrap();
        let mut seq = 0;
        for b in 0..batches {
            let mut journal = Vec::new();
            for i in 0..per {
                let mut r = Record::new(at, "u", Kind::Tag);
                r.tag = Some(format!("{b}.{i}"));
                journal.push(r);
                journal.push(Record::new(at, "other", Kind::Tag));
            }
            let mut ops = Vec::new();
            let seals = store.seals([], ["u", "other"], &mut ops).unwrap();
            seq = Store::<MemoryKv>::write_journal(&journal, seq, &seals, &mut ops).unwrap();
            crate::store::sealed::seal_pending(&mut ops, &seals.into_pending()).unwrap();
            store.kv.apply(ops).unwrap();
        }
        store
    }

    fn tags(records: &[Record]) -> Vec<String> {
        records.iter().map(|r| r.tag.clone().unwrap()).collect()
    }

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats() {
        let store = store(5, 2);
        let mut after = 0;
        let mut seen = Vec::new();
        loop {
            let (page, next) = store.journal_page("u", after, 3).unwrap();
            // A batch's two records stay together: pages of 4, 4, 2.
            assert!(page.len() >= 2, "{page:?}");
            seen.extend(tags(&page));
            match next {
                Some(n) => after = n,
                None => break,
            }
        }
        let all: Vec<String> = (0..5)
            .flat_map(|b| [format!("{b}.0"), format!("{b}.1")])
            .collect();
        assert_eq!(seen, all);
        assert_eq!(tags(&store.journal("u", 100).unwrap()), all);
    }

    #[test]
    fn the_latest_are_the_newest_records_oldest_first() {
        let store = store(4, 3);
        assert_eq!(
            tags(&store.journal_latest("u", 4).unwrap()),
            ["2.2", "3.0", "3.1", "3.2"]
        );
        assert_eq!(store.journal_latest("u", 100).unwrap().len(), 12);
        assert!(store.journal_latest("nobody", 5).unwrap().is_empty());
        assert!(store.journal_page("nobody", 0, 5).unwrap().0.is_empty());
    }
}
