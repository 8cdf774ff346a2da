//! The outbox: sends not yet attempted, `o/{seq}`, in order; sends that
//! failed and wait to be tried again, `r/{next attempt}/{seq}`, by when (so
//! sends to a channel that is down never hold up the rest); and dead
//! letters, `x/{seq}`, sends given up on with their last error. A send
//! enters under its journal record's sequence number, with the batch that
//! journals it; which records are sends is the runtime's to say.

use super::keys::{key, prefix_end, time_key};
use super::sealed::Seals;
use super::{Kv, Op, Result, Store, decode, encode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use waymark_core::journal::Record;

/// How many outbox keys one look for ready sends reads at most.
const OUTBOX_SCAN: usize = 20_000;

/// An outbox entry: one send for an adapter to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub seq: u64,
    #[serde(with = "waymark_core::journal::stored")]
    pub record: Record,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    pub last_error: Option<String>,
    /// Put back from the dead letters by a replay: its delivery is
    /// journaled (`delivered`), as its giving up was (`failed`).
    pub replayed: bool,
}

/// How a send left the outbox, when that is journaled: written with the
/// record that tells it, in one batch.
#[derive(Debug, Clone)]
pub enum Settled {
    /// Given up on: `was` as read, `entry` with its attempts and last error.
    DeadLettered {
        was: OutboxEntry,
        entry: OutboxEntry,
    },
    /// A replayed send delivered: `was` as read, `entry` with its attempts.
    Delivered {
        was: OutboxEntry,
        entry: OutboxEntry,
    },
}

/// An outbox entry as written: [`OutboxEntry`] by reference (same fields,
/// same encoding), so a commit does not clone its records.
#[derive(Serialize)]
struct OutboxEntryRef<'a> {
    seq: u64,
    #[serde(serialize_with = "waymark_core::journal::stored::serialize")]
    record: &'a Record,
    attempts: u32,
    next_attempt: DateTime<Utc>,
    last_error: Option<&'a str>,
    replayed: bool,
}

/// Where an entry lives in the outbox: `o/` until its first failure or
/// deferral (a provider's quota, a replay), then `r/` under its next
/// attempt time.
pub(super) fn outbox_key(entry: &OutboxEntry) -> Vec<u8> {
    let seq = entry.seq.to_be_bytes();
    // Not attempted and not put off (by a provider's quota, a replay).
    if entry.attempts == 0 && entry.next_attempt <= entry.record.at {
        key("o", &[&seq])
    } else {
        key("r", &[&time_key(entry.next_attempt), &seq])
    }
}

fn dead_letter_key(seq: u64) -> Vec<u8> {
    key("x", &[&seq.to_be_bytes()])
}

impl<K: Kv> Store<K> {
    /// The writes putting `sends` (indices in `journal`, whose first record
    /// takes sequence number `first + 1`) in the outbox, each to be
    /// attempted from its record's time.
    pub(super) fn write_sends(
        journal: &[Record],
        sends: &[usize],
        first: u64,
        seals: &Seals<'_, K>,
        ops: &mut Vec<Op>,
    ) -> Result<()> {
        for &i in sends {
            let record = &journal[i];
            let seq = first + 1 + i as u64;
            let entry = OutboxEntryRef {
                seq,
                record,
                attempts: 0,
                next_attempt: record.at,
                last_error: None,
                replayed: false,
            };
            let k = key("o", &[&seq.to_be_bytes()]);
            seals.put(&record.user, k, encode(&entry), ops)?;
        }
        Ok(())
    }

    /// The writes moving settled sends out of the outbox (dead letters to `x/`).
    pub(super) fn write_settled(
        settled: &[Settled],
        seals: &Seals<'_, K>,
        ops: &mut Vec<Op>,
    ) -> Result<()> {
        for s in settled {
            match s {
                Settled::DeadLettered { was, entry } => {
                    ops.push(Op::Delete(outbox_key(was)));
                    let k = dead_letter_key(entry.seq);
                    seals.put(&entry.record.user, k, encode(entry), ops)?;
                }
                Settled::Delivered { was, .. } => ops.push(Op::Delete(outbox_key(was))),
            }
        }
        Ok(())
    }

    /// An outbox entry as stored, opened; `None` if its person was erased.
    fn entry_at(&self, k: &[u8], sealed: &[u8]) -> Result<Option<OutboxEntry>> {
        match self.open_value(k, sealed)? {
            Some(bytes) => decode(k, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// `entry` to put at `k`: the put, or none if its person was erased.
    fn put_entry(&self, k: Vec<u8>, entry: &OutboxEntry) -> Result<Option<Op>> {
        let sealed = self.seal_for(&entry.record.user, &k, &encode(entry))?;
        Ok(sealed.map(|v| Op::Put(k, v)))
    }

    /// Sends ready for an attempt at `now`: retries whose time has come,
    /// then sends not yet attempted, oldest first, skipping those `busy`
    /// (being delivered) — at most `limit`, reading at most a bounded
    /// number past busy ones, so a slow channel cannot hide the rest.
    pub fn outbox_ready(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        busy: &dyn Fn(u64) -> bool,
    ) -> Result<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        let until = key("r", &[&time_key(now + chrono::Duration::microseconds(1))]);
        for prefix in [&b"r/"[..], &b"o/"[..]] {
            let end = if prefix == b"r/" {
                until.clone()
            } else {
                prefix_end(prefix)
            };
            let mut from = prefix.to_vec();
            let mut scanned = 0;
            while out.len() < limit && scanned < OUTBOX_SCAN {
                let page = self.kv.range(&from, &end, 1000)?;
                let Some((last, _)) = page.last() else { break };
                let next = [last.as_slice(), &[0]].concat();
                scanned += page.len();
                for (k, v) in page {
                    let Some(entry) = self.entry_at(&k, &v)? else {
                        continue;
                    };
                    if !busy(entry.seq) && out.len() < limit {
                        out.push(entry);
                    }
                }
                from = next;
            }
        }
        Ok(out)
    }

    /// The newest sends not yet attempted, newest first, at most `limit`,
    /// skipping those `busy`: a send that must go within seconds (a WeCom
    /// welcome) is among them just after its batch, however long the
    /// outbox is before it.
    pub fn outbox_newest(
        &self,
        limit: usize,
        busy: &dyn Fn(u64) -> bool,
    ) -> Result<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        for (k, v) in self.kv.range_rev(b"o/", &prefix_end(b"o/"), limit)? {
            if let Some(entry) = self.entry_at(&k, &v)?
                && !busy(entry.seq)
            {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// How many sends wait for delivery and how many were given up on,
    /// counted from keys without decoding entries (for /metrics).
    pub fn outbox_depths(&self) -> Result<(usize, usize)> {
        let count = |prefix: &[u8]| self.kv.count(prefix, &prefix_end(prefix));
        Ok((count(b"o/")? + count(b"r/")?, count(b"x/")?))
    }

    /// Whether the outbox still holds `entry` as it was read (after a
    /// store reopened from disk, its sequence number may be another's).
    pub fn outbox_holds(&self, entry: &OutboxEntry) -> Result<bool> {
        let k = outbox_key(entry);
        match self.kv.get(&k)? {
            Some(bytes) => Ok(self.entry_at(&k, &bytes)?.as_ref() == Some(entry)),
            None => Ok(false),
        }
    }

    /// A delivered send leaves the outbox. `entry` is as it was read.
    pub fn outbox_delivered(&self, entry: &OutboxEntry) -> Result<()> {
        self.kv.apply(vec![Op::Delete(outbox_key(entry))])
    }

    /// A failed attempt: `was` is the entry as it was read, `entry` with its
    /// attempts counted and its next attempt time; it moves to that time.
    pub fn outbox_retry(&self, was: &OutboxEntry, entry: &OutboxEntry) -> Result<()> {
        let mut ops = vec![Op::Delete(outbox_key(was))];
        ops.extend(self.put_entry(outbox_key(entry), entry)?);
        self.kv.apply(ops)
    }

    /// Gives up on an entry (`was` as it was read): it moves to the dead
    /// letters, with its last error.
    pub fn dead_letter(&self, was: &OutboxEntry, entry: &OutboxEntry) -> Result<()> {
        let mut ops = vec![Op::Delete(outbox_key(was))];
        ops.extend(self.put_entry(dead_letter_key(entry.seq), entry)?);
        self.kv.apply(ops)
    }

    pub fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        for (k, v) in self.kv.range(b"x/", &prefix_end(b"x/"), limit)? {
            out.extend(self.entry_at(&k, &v)?);
        }
        Ok(out)
    }

    /// Dead letters by channel (for `/metrics`).
    pub fn dead_letters_by_channel(&self) -> Result<BTreeMap<String, usize>> {
        let mut by = BTreeMap::new();
        for entry in self.dead_letters(usize::MAX)? {
            *by.entry(entry.record.channel.unwrap_or_default())
                .or_insert(0) += 1;
        }
        Ok(by)
    }

    /// Puts a dead letter back in the outbox for another round of attempts.
    pub fn replay(&self, seq: u64, now: DateTime<Utc>) -> Result<bool> {
        let k = dead_letter_key(seq);
        let Some(bytes) = self.kv.get(&k)? else {
            return Ok(false);
        };
        let Some(mut entry) = self.entry_at(&k, &bytes)? else {
            return Ok(false);
        };
        entry.attempts = 0;
        entry.replayed = true;
        entry.next_attempt = now;
        let mut ops = vec![Op::Delete(k)];
        ops.extend(self.put_entry(outbox_key(&entry), &entry)?);
        self.kv.apply(ops)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Batch, MemoryKv};

    /// Commits `n` sends on `channel`, each journaled and put in the outbox.
    fn sends(store: &Store<MemoryKv>, n: usize, channel: &str, at: DateTime<Utc>) {
        let journal = (0..n)
            .map(|i| {
                let mut r = Record::new(at, &format!("u{i}"), waymark_core::journal::Kind::Send);
                r.channel = Some(channel.into());
                r
            })
            .collect();
        store
            .commit(Batch {
                journal,
                sends: (0..n).collect(),
                ..Batch::default()
            })
            .unwrap();
    }

    #[test]
    fn the_newest_sends_are_found_behind_any_backlog() {
        let store = Store::new(MemoryKv::default());
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        // A backlog longer than one look for ready sends reads, every one
        // of it busy (waiting for its slow channel).
        sends(&store, OUTBOX_SCAN + 500, "sms", t0);
        sends(&store, 1, "welcome", t0);
        let backlog = |seq: u64| seq <= (OUTBOX_SCAN + 500) as u64;
        assert!(
            store.outbox_ready(t0, 1_000, &backlog).unwrap().is_empty(),
            "the oldest-first look gives up before the end"
        );
        let newest = store.outbox_newest(64, &backlog).unwrap();
        assert_eq!(newest.len(), 1);
        assert_eq!(newest[0].record.channel.as_deref(), Some("welcome"));
        let none = |_| false;
        let newest = store.outbox_newest(3, &none).unwrap();
        let seqs: Vec<u64> = newest.iter().map(|e| e.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] > w[1]),
            "newest first: {seqs:?}"
        );
    }

    #[test]
    fn sends_waiting_to_retry_never_hold_up_fresh_ones_and_come_back_when_due() {
        let store = Store::new(MemoryKv::default());
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        // A channel that is down: 1,500 sends failed and wait an hour.
        sends(&store, 1_500, "down", t0);
        let none = |_| false;
        let failed = store.outbox_ready(t0, 2_000, &none).unwrap();
        assert_eq!(failed.len(), 1_500);
        for was in &failed {
            let mut entry = was.clone();
            entry.attempts = 1;
            entry.next_attempt = t0 + chrono::Duration::hours(1);
            store.outbox_retry(was, &entry).unwrap();
        }
        // Newer sends on a healthy channel are ready at once.
        sends(&store, 3, "up", t0 + chrono::Duration::seconds(1));
        let ready = store
            .outbox_ready(t0 + chrono::Duration::seconds(2), 1_000, &none)
            .unwrap();
        let channels: Vec<_> = ready.iter().map(|e| e.record.channel.clone()).collect();
        assert_eq!(channels, vec![Some("up".to_string()); 3]);
        assert_eq!(store.outbox_depths().unwrap(), (1_503, 0));
        // An hour on, the retries are due again, before anything fresh.
        let later = store
            .outbox_ready(t0 + chrono::Duration::hours(1), 10, &none)
            .unwrap();
        assert_eq!(later.len(), 10);
        assert!(later.iter().all(|e| e.attempts == 1));
        // Delivered and dead-lettered entries leave from where they are.
        store.outbox_delivered(&later[0]).unwrap();
        store.dead_letter(&later[1], &later[1]).unwrap();
        store.outbox_delivered(&ready[0]).unwrap();
        assert_eq!(store.outbox_depths().unwrap(), (1_500, 1));
    }

    #[test]
    fn sends_being_delivered_are_skipped_without_hiding_the_ones_after_them() {
        let store = Store::new(MemoryKv::default());
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        sends(&store, 2_500, "slow", t0);
        let first = store.outbox_ready(t0, 2_400, &|_| false).unwrap();
        let busy: std::collections::BTreeSet<u64> = first.iter().map(|e| e.seq).collect();
        let rest = store
            .outbox_ready(t0, 1_000, &|seq| busy.contains(&seq))
            .unwrap();
        assert_eq!(rest.len(), 100);
        assert!(rest.iter().all(|e| !busy.contains(&e.seq)));
    }
}
