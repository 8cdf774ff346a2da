//! Runs: compacting a batch's chunks of fresh ids into a run sorted by
//! hash, merging small runs of like size, and pruning those past the
//! dedup window (dropped whole, or rewritten when mostly past it). Each
//! step is one atomic write; memory follows it, or is forgotten if it fails.

use super::{BLOCK, CHUNK_DELETES, COMPACT_AT, COMPACTED_KEY, MERGE, MERGE_UP_TO};
use super::{Entry, Ids, Run, RunInfo, Seen, blocks_end, blocks_start, chunk_key, id_hash};
use super::{info_key, micros, scan};
use crate::store::seen_filter::SeenFilter;
use crate::store::{Kv, Op, Result, decode, encode};
use chrono::{DateTime, Utc};

impl Seen {
    /// Whether [`Seen::tidy`] has work: enough fresh ids to compact, or
    /// runs to merge.
    pub fn wants_tidy(&self) -> bool {
        self.loaded
            && self.out.is_none()
            && (self.fresh.len() >= COMPACT_AT || self.mergeable().is_some())
    }

    /// Compacts the fresh ids if there are enough, then merges runs while
    /// eight are of one size; it forgets nothing (that is
    /// [`Seen::prune`]'s). Each step is applied on its own: call it only
    /// when every batch recorded here has been applied.
    pub fn tidy<K: Kv>(&mut self, kv: &K) -> Result<()> {
        // The same steps as a job built elsewhere, one after another.
        while let Some(job) = self.take_tidy(kv)? {
            match job.build(kv) {
                Ok(done) => self.install(done),
                Err(e) => {
                    self.abandon();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// [`Seen::tidy`], dropping ids seen before `horizon` on the way; how
    /// many it dropped.
    fn tidy_inner<K: Kv>(&mut self, kv: &K, horizon: i64) -> Result<u64> {
        self.load(kv)?;
        let mut dropped = 0;
        if self.fresh.len() >= COMPACT_AT {
            dropped += self.compact(kv, horizon)?;
        }
        while let Some(runs) = self.mergeable() {
            dropped += self.rewrite(kv, &runs, horizon)?;
        }
        Ok(dropped)
    }

    /// Turns every fresh id not past `horizon` into a run, deleting the
    /// chunks; how many it dropped.
    pub(super) fn compact<K: Kv>(&mut self, kv: &K, horizon: i64) -> Result<u64> {
        let before = self.fresh.len();
        let entries: Vec<Entry> = self
            .fresh
            .drain()
            .filter(|(_, at)| *at >= horizon)
            .map(|(id, at)| (id_hash(id.as_bytes()), id, at))
            .collect();
        let dropped = (before - entries.len()) as u64;
        // The chunks are marked compacted here and deleted a few at a time.
        let mut ops = vec![Op::Put(COMPACTED_KEY.to_vec(), encode(&self.next_chunk))];
        self.compacted.append(&mut self.chunks);
        self.delete_compacted(&mut ops);
        self.write_run(entries, &mut ops);
        kv.apply(ops)?;
        Ok(dropped)
    }

    /// Deletes up to [`CHUNK_DELETES`] compacted chunks and stale
    /// blocks among `ops`.
    pub(super) fn delete_compacted(&mut self, ops: &mut Vec<Op>) {
        let n = self.compacted.len().min(CHUNK_DELETES);
        ops.extend(self.compacted.drain(..n).map(|c| Op::Delete(chunk_key(c))));
        let n = self.stale.len().min(CHUNK_DELETES - n);
        ops.extend(self.stale.drain(..n).map(Op::Delete));
    }

    /// Replaces `runs` by one run of their ids not past `horizon`; how
    /// many it dropped.
    fn rewrite<K: Kv>(&mut self, kv: &K, runs: &[u64], horizon: i64) -> Result<u64> {
        let mut entries = Vec::new();
        let mut blocks = Vec::new();
        let dropped = read_runs(kv, runs, horizon, &mut entries, &mut blocks)?;
        let mut ops: Vec<Op> = blocks.into_iter().map(Op::Delete).collect();
        ops.extend(runs.iter().map(|&number| Op::Delete(info_key(number))));
        self.runs.retain(|r| !runs.contains(&r.number));
        self.write_run(entries, &mut ops);
        kv.apply(ops)?;
        Ok(dropped)
    }

    /// The ops writing `entries` as a new run (none if it is empty).
    pub(super) fn write_run(&mut self, entries: Vec<Entry>, ops: &mut Vec<Op>) {
        let number = self.next_run;
        if let Some(run) = run_ops(number, entries, ops) {
            self.next_run += 1;
            self.runs.push(run);
            self.fit_run_filters();
        }
    }

    /// The oldest [`MERGE`] runs of the smallest size class that has that
    /// many, below [`MERGE_UP_TO`].
    pub(super) fn mergeable(&self) -> Option<Vec<u64>> {
        let mut by_class: std::collections::BTreeMap<u32, Vec<u64>> = Default::default();
        for run in &self.runs {
            if run.info.ids < MERGE_UP_TO {
                by_class
                    .entry(run.size_class())
                    .or_default()
                    .push(run.number);
            }
        }
        by_class
            .into_values()
            .find(|runs| runs.len() >= MERGE)
            .map(|mut runs| {
                runs.truncate(MERGE);
                runs
            })
    }

    /// Forgets ids seen before the window that ends at `now`: runs wholly
    /// before it are deleted, runs mostly before it rewritten, and fresh ids
    /// before it compacted away (with the others). Returns how many ids
    /// were dropped; the filter is rebuilt if any were.
    pub fn prune<K: Kv>(&mut self, kv: &K, now: DateTime<Utc>) -> Result<u64> {
        let result = self.prune_inner(kv, now);
        if result.is_err() {
            self.forget();
        }
        result
    }

    fn prune_inner<K: Kv>(&mut self, kv: &K, now: DateTime<Utc>) -> Result<u64> {
        self.load(kv)?;
        if self.out.is_some() {
            // Not beside a job: the next prune does it.
            return Ok(0);
        }
        let horizon = micros(horizon(now));
        let mut dropped = 0;
        if self.fresh.values().any(|at| *at < horizon) {
            dropped += self.compact(kv, horizon)?;
        }
        let past: Vec<(u64, RunInfo)> = self
            .runs
            .iter()
            .filter(|r| r.info.first < horizon)
            .map(|r| (r.number, r.info))
            .collect();
        for (number, info) in past {
            if info.last < horizon {
                let mut ops = vec![Op::Delete(info_key(number))];
                scan(
                    kv,
                    &blocks_start(number),
                    &blocks_end(number),
                    64,
                    |k, _| {
                        ops.push(Op::Delete(k));
                        Ok(())
                    },
                )?;
                kv.apply(ops)?;
                self.runs.retain(|r| r.number != number);
                dropped += info.ids;
            } else if (horizon - info.first) * 2 >= info.last - info.first {
                // About half of it is past, if ids came evenly.
                dropped += self.rewrite(kv, &[number], horizon)?;
            }
        }
        dropped += self.tidy_inner(kv, horizon)?;
        if dropped > 0 {
            // A Bloom filter cannot forget.
            self.filter = Some(self.build_filter(kv)?);
        }
        Ok(dropped)
    }
}

/// Reads the ids of `runs` not seen before `horizon` into `entries` and
/// the keys of their blocks into `blocks`; how many ids it left out.
pub(super) fn read_runs<K: Kv>(
    kv: &K,
    runs: &[u64],
    horizon: i64,
    entries: &mut Vec<Entry>,
    blocks: &mut Vec<Vec<u8>>,
) -> Result<u64> {
    let mut dropped = 0;
    for &number in runs {
        scan(
            kv,
            &blocks_start(number),
            &blocks_end(number),
            64,
            |k, v| {
                let block: Ids = decode(&k, &v)?;
                for (id, at) in block.ids.into_iter().zip(block.at) {
                    if at >= horizon {
                        entries.push((id_hash(id.as_bytes()), id.into(), at));
                    } else {
                        dropped += 1;
                    }
                }
                blocks.push(k);
                Ok(())
            },
        )?;
    }
    Ok(dropped)
}

/// The ops writing `entries` as run `number`, and the run (none if
/// `entries` is empty).
pub(super) fn run_ops(number: u64, mut entries: Vec<Entry>, ops: &mut Vec<Op>) -> Option<Run> {
    if entries.is_empty() {
        return None;
    }
    entries.sort_unstable();
    // An id is held once; if twice, the later time counts.
    entries.dedup_by(|next, kept| {
        let same = next.0 == kept.0 && next.1 == kept.1;
        if same {
            kept.2 = kept.2.max(next.2);
        }
        same
    });
    let info = RunInfo {
        ids: entries.len() as u64,
        first: entries.iter().map(|e| e.2).min().unwrap_or_default(),
        last: entries.iter().map(|e| e.2).max().unwrap_or_default(),
    };
    let mut filter = SeenFilter::exact(entries.len());
    for (_, id, _) in &entries {
        filter.insert(id.as_bytes());
    }
    let mut block = Ids::default();
    let mut entries = entries.into_iter().peekable();
    while let Some((hash, id, at)) = entries.next() {
        block.ids.push(id.into());
        block.at.push(at);
        let ends = match entries.peek() {
            None => true,
            Some(next) => block.ids.len() >= BLOCK && next.0 != hash,
        };
        if ends {
            let key = [blocks_start(number).as_slice(), &hash.to_be_bytes()].concat();
            let value = encode(&block);
            ops.push(Op::Put(key, value));
            block = Ids::default();
        }
    }
    ops.push(Op::Put(info_key(number), encode(&info)));
    Some(Run {
        number,
        info,
        filter: Some(filter),
    })
}

/// The start of the dedup window that ends at `now`.
fn horizon(now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::days(crate::store::DEDUP_DAYS)
}
