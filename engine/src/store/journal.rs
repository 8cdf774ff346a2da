//! The journal, `j/{user}/{seq}`, and its sequence number, `s`. Every
//! record takes the next sequence number; a batch's records of one user
//! are a group, numbered by its first record. A user's newest groups are
//! kept in their own stored state (`u/`, the [`JournalTail`]): the batch
//! writes that state anyway, and a journal key of its own for each
//! group was a third of what the daemon wrote (one more key, often a new
//! one, in a random place of sled's tree, for most events). Past
//! [`TAIL_BYTES`] of records or [`TAIL_GROUPS`] groups, the kept groups
//! are written under one journal key, numbered by its last group, oldest
//! first; so are the groups of a user whose state the batch does not
//! write, and a merged-away profile's kept ones. A user's journal is so a
//! range scan in order plus their state's groups (one per id, merged by
//! sequence number, for a profile other ids were merged into: their
//! records stay where they were written). The store is the only writer
//! of `s` and keeps it in memory once read. Records are kept in the
//! store's form of them ([`waymark_core::journal::stored`]: field numbers,
//! not names, and times as integers), half the bytes of their own.
//!
//! A `consent` record is also written to the consent ledger,
//! `y/{at}/{user}/{seq}`, so that an auditor's export of every change in
//! a time range reads that range and nothing else.

use super::keys::{key, prefix_end, time_key, user_part};
use super::sealed::Seals;
use super::{Kv, Op, Result, Store, StoreError, decode};
use chrono::{DateTime, Utc};
use waymark_core::journal::stored::{StoredRecord, StoredRef};
use waymark_core::journal::{Kind, Record};
use waymark_core::model::JournalTail;

/// Most bytes of records a user's state keeps before they are written
/// under a journal key: a few records (some 80 bytes each, stored), as
/// they are written again with the state on each event. In the ingest
/// bench, 1024 made states of 2,341 bytes on average where 512 made
/// 1,800 and 256 1,767, and ingested 79k–91k events/s against 88k–95k
/// and 90k–93k; firing timers, 256 wrote each send under a journal key
/// of its own and fired 62k–67k timers/s against 64k–71k for the others.
pub(super) const TAIL_BYTES: usize = 512;
/// Most groups (batches' records) a user's state keeps.
pub(super) const TAIL_GROUPS: usize = 16;

/// A batch's records of one user: the number of the first, and the records.
pub(super) type Group<'b> = (u64, Vec<&'b Record>);

/// Groups as stored, in a journal key or a user's state.
pub(super) type Groups = Vec<(u64, Vec<Record>)>;

/// `tail` with `group` after its groups.
pub(super) fn with_group(tail: &JournalTail, group: &Group<'_>) -> Result<JournalTail> {
    let framing = |e: &dyn std::fmt::Display| StoreError::Corrupt {
        key: "u".into(),
        message: format!("a user's kept journal records: {e}"),
    };
    let groups = u32::try_from(tail.groups + 1).map_err(|e| framing(&e))?;
    let mut out = Vec::with_capacity(tail.bytes.len() + 64);
    rmp::encode::write_array_len(&mut out, groups).map_err(|e| framing(&e))?;
    if tail.groups > 0 {
        let mut rest = &tail.bytes[..];
        rmp::decode::read_array_len(&mut rest).map_err(|e| framing(&e))?;
        out.extend_from_slice(rest);
    }
    rmp::encode::write_array_len(&mut out, 2).map_err(|e| framing(&e))?;
    rmp::encode::write_uint(&mut out, group.0).map_err(|e| framing(&e))?;
    write_records(&mut out, &group.1);
    Ok(JournalTail {
        bytes: out.into_boxed_slice(),
        groups: tail.groups + 1,
        last: group.0,
    })
}

/// `records` in the store's form ([`stored`]), as a MessagePack array.
fn write_records(out: &mut Vec<u8>, records: &[&Record]) {
    let len = u32::try_from(records.len()).expect("a batch holds fewer than 4G records");
    rmp::encode::write_array_len(out, len).expect("writing to memory succeeds");
    for r in records {
        rmp_serde::encode::write_named(out, &StoredRef(r)).expect("records serialize");
    }
}

/// Groups as [`with_group`] writes them (a journal key's value, a
/// user's kept records).
pub(super) fn read_groups(key: &[u8], bytes: &[u8]) -> Result<Groups> {
    let groups: Vec<(u64, Vec<StoredRecord>)> = decode(key, bytes)?;
    Ok(groups
        .into_iter()
        .map(|(seq, records)| (seq, records.into_iter().map(|r| r.0).collect()))
        .collect())
}

/// Whether a tail is past what a state keeps.
pub(super) fn spills(tail: &JournalTail) -> bool {
    tail.bytes.len() > TAIL_BYTES || tail.groups >= TAIL_GROUPS
}

/// The journal key of `user`'s groups up to the one numbered `last`.
pub(super) fn journal_key(user: &str, last: u64) -> Vec<u8> {
    key("j", &[&user_part(user), &last.to_be_bytes()])
}

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
        for (id, tail) in self.journal_ids(user)? {
            let prefix = key("j", &[&user_part(&id), b""]);
            let mut from = prefix.clone();
            // A key is numbered by its last group: one past `after` may
            // hold groups before it too, which are left out below.
            from.extend_from_slice(&after.saturating_add(1).to_be_bytes());
            let end = prefix_end(&prefix);
            let keys = if newest {
                self.kv.range_rev(&from, &end, limit)?
            } else {
                self.kv.range(&from, &end, limit)?
            };
            for (k, v) in keys {
                if let Some(v) = self.open_value(&k, &v)? {
                    rows.extend(read_groups(&k, &v)?);
                }
            }
            if tail.groups > 0 {
                let k = key("u", &[&user_part(&id)]);
                rows.extend(read_groups(&k, &tail.bytes)?);
            }
        }
        rows.retain(|(seq, _)| *seq > after);
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
                out.extend(
                    decode::<Vec<StoredRecord>>(&k, &v)?
                        .into_iter()
                        .map(|r| r.0),
                );
            }
            last = Some(k);
        }
        Ok((out, last.filter(|_| more)))
    }

    /// A batch's journal numbered after `first`, in groups by user (each
    /// under the number of its first record: every record still takes a
    /// number), with the writes of its consent ledger entries and of `s`.
    /// Returns the groups and the last number. The groups are written by
    /// [`Store::write_groups`], those of users whose state the batch
    /// writes taken out first, into that state.
    pub(super) fn number_journal<'b>(
        journal: &'b [Record],
        first: u64,
        seals: &Seals<'_, K>,
        ops: &mut Vec<Op>,
    ) -> Result<(Vec<Group<'b>>, u64)> {
        let mut groups: Vec<Group<'b>> = Vec::new();
        let mut group_of: foldhash::HashMap<&str, usize> = Default::default();
        let mut seq = first;
        for record in journal {
            seq += 1;
            if record.kind == Kind::Consent {
                let k = ledger_key(record, seq);
                let mut entry = Vec::new();
                write_records(&mut entry, &[record]);
                seals.put(&record.user, k, entry, ops)?;
            }
            let g = *group_of.entry(record.user.as_str()).or_insert_with(|| {
                groups.push((seq, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(record);
        }
        if seq != first {
            ops.push(Op::Put(b"s".to_vec(), seq.to_be_bytes().to_vec()));
        }
        Ok((groups, seq))
    }

    /// The writes of groups no state keeps: each under a key of its own.
    pub(super) fn write_groups<'b>(
        groups: impl IntoIterator<Item = Group<'b>>,
        seals: &Seals<'_, K>,
        ops: &mut Vec<Op>,
    ) -> Result<()> {
        for group in groups {
            let user = &group.1[0].user;
            let tail = with_group(&JournalTail::default(), &group)?;
            seals.put(user, journal_key(user, group.0), tail.bytes.into_vec(), ops)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryKv;
    use waymark_core::journal::Kind;
    use waymark_core::model::UserState;

    /// Commits `batches` batches of `per` records each for user `u`, whose
    /// state each batch writes (so their records are kept in it until
    /// there are enough), and one for `other`, who has no state (so each
    /// of theirs gets a key), starting at batch `from`; returns `u`.
    fn commit(
        store: &Store<MemoryKv>,
        mut u: UserState,
        from: u64,
        batches: u64,
        per: u64,
    ) -> UserState {
        let at = "2026-12-05T00:00:00Z".parse().unwrap();
        for b in from..from + batches {
            let mut journal = Vec::new();
            for i in 0..per {
                let mut r = Record::new(at, "u", Kind::Tag);
                r.tag = Some(format!("{b}.{i}"));
                journal.push(r);
                journal.push(Record::new(at, "other", Kind::Tag));
            }
            let mut batch = crate::store::Batch {
                users: vec![(u, None)],
                journal,
                ..Default::default()
            };
            store.commit_ref(&mut batch).unwrap();
            u = batch.users.pop().unwrap().0;
        }
        u
    }

    fn store(batches: u64, per: u64) -> Store<MemoryKv> {
        let store = Store::open(MemoryKv::default()).unwrap();
        commit(&store, UserState::new("u"), 0, batches, per);
        store
    }

    /// The journal keys of `user`.
    fn keys(store: &Store<MemoryKv>, user: &str) -> usize {
        let prefix = key("j", &[&user_part(user), b""]);
        store.kv.count(&prefix, &prefix_end(&prefix)).unwrap()
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

    #[test]
    fn records_kept_with_the_state_go_under_one_key_when_there_are_enough() {
        let store = Store::open(MemoryKv::default()).unwrap();
        let u = commit(&store, UserState::new("u"), 0, 3, 2);
        // Kept in u's state: no key of theirs yet; `other` has one a batch.
        assert_eq!(keys(&store, "u"), 0);
        assert_eq!(u.journal_tail.groups, 3);
        assert_eq!(keys(&store, "other"), 3);
        assert_eq!(store.user("u").unwrap().unwrap().journal_tail.groups, 3);
        // Many more: written a few groups to a key, most kept no longer.
        let u = commit(&store, u, 3, 57, 2);
        let written = keys(&store, "u");
        assert!((2..=8).contains(&written), "{written} keys for 60 batches");
        assert!(u.journal_tail.groups < TAIL_GROUPS);
        let all: Vec<String> = (0..60)
            .flat_map(|b| [format!("{b}.0"), format!("{b}.1")])
            .collect();
        assert_eq!(tags(&store.journal("u", 1000).unwrap()), all);
        assert_eq!(tags(&store.journal("u", 3).unwrap()), all[..3]);
        assert_eq!(tags(&store.journal_latest("u", 5).unwrap()), all[115..]);
        // As a restarted daemon reads them.
        let again = Store::open(store.kv().clone()).unwrap();
        assert_eq!(tags(&again.journal("u", 1000).unwrap()), all);
        assert_eq!(again.journal("other", 1000).unwrap().len(), 120);
    }

    #[test]
    fn pages_go_on_without_gaps_or_repeats_when_kept_records_are_written_meanwhile() {
        let store = Store::open(MemoryKv::default()).unwrap();
        let mut u = commit(&store, UserState::new("u"), 0, 6, 1);
        let mut seen = Vec::new();
        let mut after = 0;
        let mut batches = 6;
        loop {
            let (page, next) = store.journal_page("u", after, 2).unwrap();
            seen.extend(tags(&page));
            // Between pages, enough batches that what the state keeps is
            // written under a key (numbered by its last group).
            if batches < 60 {
                u = commit(&store, u, batches, 9, 1);
                batches += 9;
            }
            match next {
                Some(n) => after = n,
                None => break,
            }
        }
        let all: Vec<String> = (0..batches).map(|b| format!("{b}.0")).collect();
        assert_eq!(seen, all);
        assert!(keys(&store, "u") >= 2);
    }
}
