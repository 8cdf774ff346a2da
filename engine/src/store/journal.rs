//! The journal, `j/{user}/{seq}`, and its sequence number, `s`. Every
//! record takes the next sequence number; a batch's records of one user
//! are written under one key, the number of the first, oldest first, so a
//! user's journal is a range scan in order. The store is the only writer
//! of `s` and keeps it in memory once read.

use super::keys::{key, prefix_end, user_part};
use super::{Kv, Op, Result, Store, decode, encode};
use waymark_core::journal::Record;

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

    /// The user's journal, oldest first.
    pub fn journal(&self, user: &str, limit: usize) -> Result<Vec<Record>> {
        let prefix = key("j", &[&user_part(user), b""]);
        let mut out = Vec::new();
        // Each key holds at least one record: `limit` keys are enough.
        for (k, v) in self.kv.range(&prefix, &prefix_end(&prefix), limit)? {
            if out.len() >= limit {
                break;
            }
            out.extend(decode::<Vec<Record>>(&k, &v)?);
        }
        out.truncate(limit);
        Ok(out)
    }

    /// The writes of a batch's journal, numbered after `first`: one key per
    /// user, under the sequence number of the user's first record (every
    /// record still takes a number), and `s`. Returns the last number.
    pub(super) fn write_journal(journal: &[Record], first: u64, ops: &mut Vec<Op>) -> u64 {
        let mut groups: Vec<(u64, Vec<&Record>)> = Vec::new();
        let mut group_of: foldhash::HashMap<&str, usize> = Default::default();
        let mut seq = first;
        for record in journal {
            seq += 1;
            let g = *group_of.entry(record.user.as_str()).or_insert_with(|| {
                groups.push((seq, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(record);
        }
        for (at, records) in &groups {
            ops.push(Op::Put(
                key("j", &[&user_part(&records[0].user), &at.to_be_bytes()]),
                encode(records),
            ));
        }
        if seq != first {
            ops.push(Op::Put(b"s".to_vec(), seq.to_be_bytes().to_vec()));
        }
        seq
    }
}
