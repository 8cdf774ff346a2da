//! Which message ids were seen within the dedup window, kept in few keys.
//! sled's cost is per key, and a small key per event halved ingest, so:
//!
//! - a batch's ids go in one **chunk** key, `m/{chunk}`, and are held in
//!   memory as well until there are [`COMPACT_AT`] of them;
//! - then they are compacted into a **run** (the chunks are marked
//!   compacted by one key, `M`, and deleted a few at a time with later
//!   batches, so that compacting the ids of many small batches is not
//!   thousands of deletes at once): every id sorted by a stable
//!   hash ([`id_hash`]), in blocks of about [`BLOCK`] keyed by the last
//!   hash each holds (`n/{run}/{hash}`), with the run's size and times
//!   under `N/{run}`. Finding an id in a run is one read;
//! - a Bloom filter over every id held ([`SeenFilter`]) spares a fresh
//!   id — nearly every id — any read at all; on a "maybe", each run's own
//!   filter (in memory) says which runs to read;
//! - small runs of like size (the same power of eight) are merged eight at
//!   a time, up to [`MERGE_UP_TO`] ids, so that low traffic does not leave
//!   many tiny runs;
//! - pruning drops a run whole once its newest id is past the window, and
//!   rewrites one that is mostly past it, so an id is kept at least the
//!   window and not much longer.
//!
//! Every change is a batch of ops, applied atomically: a chunk with the
//! batch that saw its ids, a compaction or a merge on its own. Memory
//! follows the store; if a batch may not have been applied, [`Seen::forget`]
//! has everything read again.

mod runs;
mod tidy;

pub use tidy::{TidyDone, TidyJob};

use super::keys::number_after_prefix as number_in;
use super::seen_filter::SeenFilter;
use super::{Kv, Op, Result, Store, decode, encode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Fresh ids held in chunks (and memory) before they are compacted.
pub const COMPACT_AT: usize = 16_384;
/// Ids per run block, about (equal hashes are never split across blocks).
pub const BLOCK: usize = 256;
/// Runs are merged eight of one size at a time: each id is rewritten once
/// per merge, and a run filter (see [`Run`]) keeps many runs cheap to ask.
const MERGE: usize = 8;
/// Runs this large are not merged further. A merge rewrites every id it
/// holds (on the writer, which it stops meanwhile), while more runs cost
/// little: a "maybe" probes each run's filter and reads a block only of
/// those that may hold the id. At 1,000 events/s a week's ids make some
/// 5,000 runs of this size; run filters take 2 bytes an id.
pub const MERGE_UP_TO: u64 = 1 << 17;

/// A stable 64-bit hash of an id: FNV-1a, then splitmix64's finalizer to
/// spread it. It orders stored runs, so it must never change.
pub fn id_hash(id: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    waymark_core::mix::splitmix64(h)
}

/// Ids and when each was seen (microseconds since 1970): a chunk's in
/// arrival order, a run block's in hash order.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Ids {
    ids: Vec<String>,
    at: Vec<i64>,
}

/// [`Ids`] as written from borrowed ids (the same encoding).
#[derive(Serialize)]
struct IdsRef<'a> {
    ids: Vec<&'a str>,
    at: Vec<i64>,
}

/// A run's size and the times of its oldest and newest ids (µs).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct RunInfo {
    ids: u64,
    first: i64,
    last: i64,
}

#[derive(Debug)]
struct Run {
    number: u64,
    info: RunInfo,
    /// The run's own ids (in memory only): a "maybe" of the filter over
    /// all ids reads only the runs that may hold the id, not every run.
    /// `None` once dropped to keep within the memory budget: a "maybe"
    /// then reads this run's block.
    filter: Option<SeenFilter>,
}

impl Run {
    /// Runs of one size class merge together.
    fn size_class(&self) -> u32 {
        self.info.ids.max(1).ilog2() / 3
    }
}

/// An id held in a run: its hash, the id, when it was seen.
type Entry = (u64, Box<str>, i64);

/// The first chunk not compacted: chunks before it hold ids that are in
/// runs, and are only waiting to be deleted.
const COMPACTED_KEY: &[u8] = b"M";
/// Compacted chunks deleted with each batch (and with the compaction).
const CHUNK_DELETES: usize = 64;

fn chunk_key(chunk: u64) -> Vec<u8> {
    [b"m/".as_slice(), &chunk.to_be_bytes()].concat()
}

fn info_key(run: u64) -> Vec<u8> {
    [b"N/".as_slice(), &run.to_be_bytes()].concat()
}

/// `n/{run}/`: the start of a run's blocks.
fn blocks_start(run: u64) -> Vec<u8> {
    [b"n/".as_slice(), &run.to_be_bytes(), b"/"].concat()
}

/// After every block of `run` (the next run's prefix, without its slash).
fn blocks_end(run: u64) -> Vec<u8> {
    [b"n/".as_slice(), &(run + 1).to_be_bytes()].concat()
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Every pair in `[from, to)`, a page at a time.
fn scan<K: Kv>(
    kv: &K,
    from: &[u8],
    to: &[u8],
    page: usize,
    mut each: impl FnMut(Vec<u8>, Vec<u8>) -> Result<()>,
) -> Result<()> {
    let mut from = from.to_vec();
    loop {
        let pairs = kv.range(&from, to, page)?;
        let Some((last, _)) = pairs.last() else {
            return Ok(());
        };
        from = [last.as_slice(), &[0]].concat();
        for (k, v) in pairs {
            each(k, v)?;
        }
    }
}

/// The memory the filters take by default (`dedup_filter_bytes`).
pub const DEFAULT_FILTER_BYTES: usize = 64 << 20;

/// What is known of the ids held; see the module docs.
#[derive(Debug)]
pub struct Seen {
    /// The most bytes the filters take: half for the one over every id,
    /// half for the runs' own (the oldest runs' are dropped first).
    budget: usize,
    /// Whether the rest was read from the store (and followed since).
    loaded: bool,
    filter: Option<SeenFilter>,
    /// Ids in chunks, with when they were seen.
    fresh: foldhash::HashMap<Box<str>, i64>,
    /// The chunks holding `fresh`.
    chunks: Vec<u64>,
    next_chunk: u64,
    /// Chunks compacted but still stored (all before [`COMPACTED_KEY`]'s
    /// number), deleted [`CHUNK_DELETES`] at a time.
    compacted: Vec<u64>,
    /// Oldest first.
    runs: Vec<Run>,
    next_run: u64,
    /// Keys of merged runs' blocks, deleted [`CHUNK_DELETES`] at a time
    /// after the compacted chunks.
    stale: Vec<Vec<u8>>,
    /// The ids of the compaction out (see [`tidy`]), answered from here
    /// until its run is installed.
    compacting: Option<Arc<foldhash::HashMap<Box<str>, i64>>>,
    /// The compaction or merge out, if one is.
    out: Option<tidy::Out>,
    /// Jobs taken so far, and forgets so far: a job tells which `Seen` it
    /// came from. Both outlive a forget.
    jobs: u64,
    generation: u64,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen::with_budget(DEFAULT_FILTER_BYTES)
    }
}

impl Seen {
    /// Nothing read yet; filters within `budget` bytes.
    pub fn with_budget(budget: usize) -> Seen {
        Seen {
            budget,
            loaded: false,
            filter: None,
            fresh: Default::default(),
            chunks: Vec::new(),
            next_chunk: 0,
            compacted: Vec::new(),
            runs: Vec::new(),
            next_run: 0,
            stale: Vec::new(),
            compacting: None,
            out: None,
            jobs: 0,
            generation: 0,
        }
    }

    /// Empties what was read, keeping what outlives a forget.
    fn reset(&mut self) {
        let mut empty = Seen::with_budget(self.budget);
        empty.out = self.out.take();
        empty.jobs = self.jobs;
        empty.generation = self.generation;
        *self = empty;
    }

    /// Sets the filters' budget; applied from the next read of the store.
    pub fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
        self.forget();
    }

    /// The memory the filters take now.
    pub fn filter_bytes(&self) -> usize {
        self.filter.as_ref().map_or(0, SeenFilter::bytes)
            + self
                .runs
                .iter()
                .filter_map(|r| r.filter.as_ref())
                .map(SeenFilter::bytes)
                .sum::<usize>()
    }

    /// The most the filters take (`dedup_filter_bytes`).
    pub fn filter_budget(&self) -> usize {
        self.budget
    }

    /// Drops the oldest runs' filters until the runs' filters fit in
    /// their half of the budget.
    fn fit_run_filters(&mut self) {
        let mut total: usize = self
            .runs
            .iter()
            .filter_map(|r| r.filter.as_ref())
            .map(SeenFilter::bytes)
            .sum();
        for run in &mut self.runs {
            if total <= self.budget / 2 {
                break;
            }
            if let Some(f) = run.filter.take() {
                total -= f.bytes();
            }
        }
    }

    /// Reads what the store holds, once (and again after [`Seen::forget`]).
    pub fn load<K: Kv>(&mut self, kv: &K) -> Result<()> {
        if self.loaded {
            return Ok(());
        }
        // A job out may be writing: the store is read once it is done.
        if let Some(out) = &self.out {
            out.written.wait();
        }
        self.reset();
        let live_from = match kv.get(COMPACTED_KEY)? {
            Some(v) => decode::<u64>(COMPACTED_KEY, &v)?,
            None => 0,
        };
        scan(kv, b"m/", b"m0", 64, |k, v| {
            let Some(number) = number_in(&k) else {
                return Ok(());
            };
            if number < live_from {
                self.compacted.push(number);
                return Ok(());
            }
            let chunk: Ids = decode(&k, &v)?;
            self.chunks.push(number);
            self.fresh
                .extend(chunk.ids.into_iter().map(Box::from).zip(chunk.at));
            Ok(())
        })?;
        self.next_chunk = self
            .chunks
            .last()
            .map_or(live_from, |c| (c + 1).max(live_from));
        scan(kv, b"N/", b"N0", 1024, |k, v| {
            if let Some(number) = number_in(&k) {
                let info: RunInfo = decode(&k, &v)?;
                self.runs.push(Run {
                    number,
                    filter: None,
                    info,
                });
            }
            Ok(())
        })?;
        self.next_run = self.runs.last().map_or(0, |r| r.number + 1);
        self.filter = Some(self.build_filter(kv)?);
        // Blocks of runs merged before a stop, not yet deleted, are
        // deleted now; a new run's number is past theirs.
        if let Some(last) = self.stale.iter().filter_map(|k| number_in(k)).max() {
            self.next_run = self.next_run.max(last + 1);
        }
        self.loaded = true;
        Ok(())
    }

    /// Has everything read from the store again when next needed: a
    /// batch recorded here may not have been applied.
    pub fn forget(&mut self) {
        self.generation += 1;
        self.reset();
    }

    /// A filter holding every id held, from a scan of them all (which
    /// fills each run's own filter too).
    fn build_filter<K: Kv>(&mut self, kv: &K) -> Result<SeenFilter> {
        let held = self.fresh.len() as u64 + self.runs.iter().map(|r| r.info.ids).sum::<u64>();
        // Room to grow before it is rebuilt.
        let mut filter = SeenFilter::with_capacity(2 * held as usize, self.budget / 2);
        for id in self.fresh.keys() {
            filter.insert(id.as_bytes());
        }
        // The newest runs' filters, as many as fit.
        let mut room = self.budget / 2;
        for run in self.runs.iter_mut().rev() {
            let wanted = SeenFilter::exact(run.info.ids as usize);
            run.filter = (wanted.bytes() <= room).then(|| {
                room -= wanted.bytes();
                wanted
            });
        }
        let mut run = None;
        scan(kv, b"n/", b"n0", 64, |k, v| {
            let block: Ids = decode(&k, &v)?;
            let number = number_in(&k);
            if run.is_none_or(|i: usize| Some(self.runs[i].number) != number) {
                run = self.runs.iter().position(|r| Some(r.number) == number);
            }
            if run.is_none() {
                // A merged run's block (its info key is gone).
                self.stale.push(k);
                return Ok(());
            }
            let mut own = run.and_then(|i| self.runs[i].filter.as_mut());
            for id in &block.ids {
                filter.insert(id.as_bytes());
                if let Some(own) = own.as_mut() {
                    own.insert(id.as_bytes());
                }
            }
            Ok(())
        })?;
        Ok(filter)
    }

    /// Whether `id` is held.
    pub fn contains<K: Kv>(&mut self, kv: &K, id: &str) -> Result<bool> {
        self.load(kv)?;
        if !self
            .filter
            .as_ref()
            .is_some_and(|f| f.maybe_contains(id.as_bytes()))
        {
            return Ok(false);
        }
        if self.fresh.contains_key(id)
            || self.compacting.as_ref().is_some_and(|c| c.contains_key(id))
        {
            return Ok(true);
        }
        let hash = id_hash(id.as_bytes());
        // Newest first: a duplicate is most often a recent retry.
        for run in self.runs.iter().rev() {
            if run
                .filter
                .as_ref()
                .is_some_and(|f| !f.maybe_contains(id.as_bytes()))
            {
                continue;
            }
            let from = [blocks_start(run.number).as_slice(), &hash.to_be_bytes()].concat();
            if let Some((k, v)) = kv.range(&from, &blocks_end(run.number), 1)?.pop() {
                let block: Ids = decode(&k, &v)?;
                if block.ids.iter().any(|held| held == id) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Starts fetching what [`Seen::contains`] reads first of `id`.
    pub fn prefetch(&self, id: &str) {
        if let Some(filter) = &self.filter {
            filter.prefetch(id.as_bytes());
        }
    }

    /// Records a batch's ids: one chunk key among `ops`.
    pub fn record<K: Kv>(
        &mut self,
        kv: &K,
        ids: &[(String, DateTime<Utc>)],
        ops: &mut Vec<Op>,
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.load(kv)?;
        let chunk = IdsRef {
            ids: ids.iter().map(|(id, _)| id.as_str()).collect(),
            at: ids.iter().map(|(_, at)| micros(*at)).collect(),
        };
        ops.push(Op::Put(chunk_key(self.next_chunk), encode(&chunk)));
        self.chunks.push(self.next_chunk);
        self.next_chunk += 1;
        self.delete_compacted(ops);
        let filter = self.filter.as_mut().expect("loaded");
        for (id, at) in chunk.ids.into_iter().zip(chunk.at) {
            filter.insert(id.as_bytes());
            self.fresh.insert(id.into(), at);
        }
        Ok(())
    }
}

impl<K: Kv> Store<K> {
    /// Whether a message id was seen within the dedup window. Nearly
    /// every fresh id is answered from memory. What is in memory follows
    /// what this `Store` writes: ask the store that writes the ids.
    pub fn seen(&self, message_id: &str) -> Result<bool> {
        self.dedup().contains(&self.kv, message_id)
    }

    /// Starts fetching what [`Store::seen`] reads first of `message_id`
    /// (its filter blocks), to ask a few inputs later. Never waits: if the
    /// ids are busy (a tidy installing), it does nothing.
    pub fn prefetch_seen(&self, message_id: &str) {
        if let Ok(seen) = self.dedup.try_lock() {
            seen.prefetch(message_id);
        }
    }

    /// Bounds the memory of the message-id filters (`dedup_filter_bytes`):
    /// past it, checking an id reads more of the store, never less exactly.
    pub fn set_dedup_filter_bytes(&self, bytes: usize) {
        self.dedup().set_budget(bytes);
    }

    /// The memory the message-id filters take now, and the most they take.
    pub fn dedup_filter_bytes(&self) -> (usize, usize) {
        let seen = self.dedup();
        (seen.filter_bytes(), seen.filter_budget())
    }

    /// Reads what dedup keeps in memory now if it is not read (it is
    /// otherwise read by the first [`Store::seen`], which then waits).
    pub fn warm_dedup(&self) -> Result<()> {
        self.dedup().load(&self.kv)
    }

    /// Whether [`Store::tidy_dedup`] has work to do.
    pub fn dedup_wants_tidy(&self) -> bool {
        self.dedup().wants_tidy()
    }

    /// Compacts the message ids of recent batches and merges their runs,
    /// each step one atomic write; it forgets none. Call it only when
    /// every prepared batch has been applied.
    pub fn tidy_dedup(&self) -> Result<()> {
        self.dedup().tidy(&self.kv)
    }

    /// The next compaction or merge, taken out to build on another thread
    /// ([`TidyJob::build`] with this store's [`Kv`]) while batches go on;
    /// `None` if none is due or one is out. Install what it wrote with
    /// [`Store::install_dedup_tidy`].
    pub fn take_dedup_tidy(&self) -> Result<Option<TidyJob>> {
        self.dedup().take_tidy(&self.kv)
    }

    /// Installs what a job taken by [`Store::take_dedup_tidy`] wrote; if
    /// it failed, what it may have written is read from the store again.
    pub fn install_dedup_tidy(&self, done: Result<TidyDone>) -> Result<()> {
        let mut seen = self.dedup();
        match done {
            Ok(done) => {
                seen.install(done);
                Ok(())
            }
            Err(e) => {
                seen.abandon();
                Err(e)
            }
        }
    }

    /// Forgets message ids seen more than [`super::DEDUP_DAYS`] before
    /// `now` (the dedup window); how many. Ids are kept in runs that are
    /// dropped or rewritten as a whole, so an id may be kept somewhat
    /// longer than the window, never shorter.
    pub fn prune_dedup(&self, now: DateTime<Utc>) -> Result<u64> {
        self.dedup().prune(&self.kv, now)
    }

    pub(super) fn dedup(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.dedup.lock().expect("no panics while holding the lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryKv;

    #[test]
    fn the_id_hash_never_changes() {
        // Stored runs are sorted by it: these values hold for ever.
        assert_eq!(id_hash(b""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(id_hash(b"msg-1"), 0x0f66_7c04_e2ed_1114);
        assert_eq!(id_hash("消息-42".as_bytes()), 0x7852_cc27_6ef8_80b2);
    }

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().to_utc()
    }

    /// Records `ids` as one batch, applied.
    fn record(seen: &mut Seen, kv: &MemoryKv, ids: &[String], when: DateTime<Utc>) {
        let mut ops = Vec::new();
        let ids: Vec<_> = ids.iter().map(|id| (id.clone(), when)).collect();
        seen.record(kv, &ids, &mut ops).unwrap();
        kv.apply(ops).unwrap();
    }

    fn keys(kv: &MemoryKv, prefix: &[u8]) -> usize {
        let end = [&prefix[..1], b"0"].concat();
        kv.range(prefix, &end, usize::MAX).unwrap().len()
    }

    fn batch(n: usize, size: usize) -> Vec<String> {
        (0..size).map(|i| format!("b{n}-{i}")).collect()
    }

    #[test]
    fn filters_past_their_budget_drop_the_oldest_runs_and_still_answer_exactly() {
        let kv = MemoryKv::default();
        // Room for the filters of about three of the six runs below.
        let budget = 2 * 3 * 2 * COMPACT_AT;
        let mut seen = Seen::with_budget(budget);
        let now = at("2025-11-09T00:00:00Z");
        for n in 0..6 * COMPACT_AT / 1024 {
            record(&mut seen, &kv, &batch(n, 1024), now);
            // Compacted, never merged: six runs of one compaction each.
            if (n + 1) % (COMPACT_AT / 1024) == 0 {
                seen.compact(&kv, 0).unwrap();
            }
        }
        assert_eq!(seen.runs.len(), 6);
        let kept = seen.runs.iter().filter(|r| r.filter.is_some()).count();
        assert!((1..6).contains(&kept), "{kept} of 6 runs keep a filter");
        assert!(
            seen.runs.last().unwrap().filter.is_some(),
            "the newest keeps its own"
        );
        assert!(
            seen.filter_bytes() <= budget,
            "{} > {budget}",
            seen.filter_bytes()
        );
        for n in (0..6 * COMPACT_AT / 1024).step_by(7) {
            for id in batch(n, 1024).iter().step_by(101) {
                assert!(seen.contains(&kv, id).unwrap(), "{id}");
            }
        }
        assert!(!seen.contains(&kv, "never").unwrap());
        // Read again from the store: the same budget, the same answers.
        seen.forget();
        assert!(seen.contains(&kv, "b0-0").unwrap());
        assert!(seen.filter_bytes() <= budget);
        assert!(seen.runs.iter().any(|r| r.filter.is_none()));
    }

    #[test]
    fn a_compaction_of_many_small_chunks_leaves_their_deletes_to_later_batches() {
        let kv = MemoryKv::default();
        let mut seen = Seen::default();
        let now = at("2025-11-09T00:00:00Z");
        // One id per batch: a chunk each.
        let one = |n: usize| vec![format!("one-{n}")];
        for n in 0..COMPACT_AT {
            record(&mut seen, &kv, &one(n), now);
        }
        assert!(seen.wants_tidy());
        let before = seen.compacted.len();
        seen.compact(&kv, i64::MIN).unwrap();
        assert_eq!(before, 0);
        // The compaction's own write deletes a few chunks, not all.
        assert_eq!(keys(&kv, b"m/"), COMPACT_AT - CHUNK_DELETES);
        // A restart reads none of the compacted chunks back as fresh ids.
        let mut again = Seen::default();
        again.load(&kv).unwrap();
        assert!(again.fresh.is_empty(), "{} fresh", again.fresh.len());
        assert_eq!(again.compacted.len(), COMPACT_AT - CHUNK_DELETES);
        assert!(again.contains(&kv, "one-0").unwrap());
        assert!(
            again
                .contains(&kv, &format!("one-{}", COMPACT_AT - 1))
                .unwrap()
        );
        // Later batches delete the rest, a few with each.
        let mut n = COMPACT_AT;
        while keys(&kv, b"m/") > 1 + n - COMPACT_AT {
            record(&mut seen, &kv, &one(n), now);
            n += 1;
        }
        assert_eq!(
            n - COMPACT_AT,
            (COMPACT_AT - CHUNK_DELETES).div_ceil(CHUNK_DELETES)
        );
        // Every id is still seen, in memory and read back.
        let mut again = Seen::default();
        for m in (0..n).step_by(97) {
            assert!(seen.contains(&kv, &format!("one-{m}")).unwrap(), "one-{m}");
            assert!(again.contains(&kv, &format!("one-{m}")).unwrap(), "one-{m}");
        }
        assert!(!again.contains(&kv, "one-never").unwrap());
        assert_eq!(again.fresh.len(), n - COMPACT_AT, "the new ids are fresh");
    }

    #[test]
    fn ids_stay_seen_through_compaction_and_merges_in_few_keys() {
        let kv = MemoryKv::default();
        let mut seen = Seen::default();
        let now = at("2025-11-09T00:00:00Z");
        // 16 compactions: two merges of eight.
        let batches = 16 * COMPACT_AT / 1024;
        for n in 0..batches {
            record(&mut seen, &kv, &batch(n, 1024), now);
            if seen.wants_tidy() {
                seen.tidy(&kv).unwrap();
            }
        }
        assert!(!seen.wants_tidy());
        let sizes: Vec<u64> = seen.runs.iter().map(|r| r.info.ids).collect();
        assert_eq!(sizes, [8 * COMPACT_AT as u64; 2]);
        // Compacted chunks and merged runs' blocks go with later batches.
        let mut more = 0;
        while !seen.compacted.is_empty() || !seen.stale.is_empty() {
            record(&mut seen, &kv, &[format!("more-{more}")], now);
            more += 1;
        }
        assert_eq!(more, (8 * COMPACT_AT / BLOCK + 16).div_ceil(CHUNK_DELETES));
        assert_eq!(keys(&kv, b"m/"), more, "chunks are deleted once compacted");
        assert_eq!(keys(&kv, b"N/"), 2);
        let blocks = keys(&kv, b"n/");
        assert!(
            (16 * COMPACT_AT / BLOCK..=16 * COMPACT_AT / BLOCK + 2).contains(&blocks),
            "{blocks} blocks"
        );
        for n in (0..batches).step_by(7) {
            for id in batch(n, 1024).iter().step_by(31) {
                assert!(seen.contains(&kv, id).unwrap(), "{id}");
            }
        }
        assert!(!seen.contains(&kv, "b0-1024").unwrap());
        // What a restarted process reads back is the same.
        let mut again = Seen::default();
        assert!(again.contains(&kv, "b0-0").unwrap());
        assert!(
            again
                .contains(&kv, &format!("b{}-1023", batches - 1))
                .unwrap()
        );
        assert!(!again.contains(&kv, "b0-1024").unwrap());
    }

    /// Records `batches` batches of 1024 ids (`b{n}-{i}`), from `from`.
    fn fill(seen: &mut Seen, kv: &MemoryKv, from: usize, batches: usize, when: DateTime<Utc>) {
        for n in from..from + batches {
            record(seen, kv, &batch(n, 1024), when);
        }
    }

    /// A store with one compaction due, and a `Seen` that recorded it.
    fn compaction_due() -> (MemoryKv, Seen, DateTime<Utc>, usize) {
        let kv = MemoryKv::default();
        let mut seen = Seen::default();
        let now = at("2025-11-09T00:00:00Z");
        let per_run = COMPACT_AT / 1024;
        fill(&mut seen, &kv, 0, per_run, now);
        (kv, seen, now, per_run)
    }

    fn holds_every(seen: &mut Seen, kv: &MemoryKv, batches: std::ops::Range<usize>) {
        for n in batches {
            for id in batch(n, 1024).iter().step_by(61) {
                assert!(seen.contains(kv, id).unwrap(), "{id}");
            }
        }
        assert!(!seen.contains(kv, "b0-1024").unwrap());
    }

    #[test]
    fn a_compaction_taken_out_leaves_every_id_answered_before_and_after_its_write() {
        let (kv, mut seen, now, per_run) = compaction_due();
        let job = seen.take_tidy(&kv).unwrap().expect("a compaction is due");
        assert!(!seen.wants_tidy(), "one job out at a time");
        assert!(seen.take_tidy(&kv).unwrap().is_none());
        // Batches go on while it is out.
        fill(&mut seen, &kv, per_run, 2, now);
        holds_every(&mut seen, &kv, 0..per_run + 2);
        let done = job.build(&kv).unwrap();
        holds_every(&mut seen, &kv, 0..per_run + 2);
        // A stop between its write and its install: the store has it all,
        // and the compacted chunks are not read back as fresh ids.
        let mut restarted = Seen::default();
        holds_every(&mut restarted, &kv, 0..per_run + 2);
        assert_eq!(restarted.fresh.len(), 2 * 1024);
        assert_eq!(restarted.runs.len(), 1);
        seen.install(done);
        assert_eq!(seen.runs.len(), 1);
        assert!(seen.compacting.is_none());
        assert_eq!(seen.fresh.len(), 2 * 1024);
        holds_every(&mut seen, &kv, 0..per_run + 2);
        // Its chunks go with the next batch.
        fill(&mut seen, &kv, per_run + 2, 1, now);
        assert_eq!(keys(&kv, b"m/"), 3);
    }

    #[test]
    fn a_merge_taken_out_deletes_the_merged_blocks_only_once_installed() {
        let kv = MemoryKv::default();
        let mut seen = Seen::default();
        let now = at("2025-11-09T00:00:00Z");
        let per_run = COMPACT_AT / 1024;
        let batches = MERGE * per_run;
        for n in 0..batches {
            record(&mut seen, &kv, &batch(n, 1024), now);
            if seen.fresh.len() >= COMPACT_AT {
                let job = seen.take_tidy(&kv).unwrap().expect("a compaction");
                let done = job.build(&kv).unwrap();
                seen.install(done);
            }
        }
        assert_eq!(seen.runs.len(), MERGE);
        let blocks_before = keys(&kv, b"n/");
        let job = seen.take_tidy(&kv).unwrap().expect("a merge is due");
        let done = job.build(&kv).unwrap();
        // Written, not installed: the old runs' blocks are all still there
        // (this process may read them), beside the merged run's.
        assert_eq!(keys(&kv, b"N/"), 1);
        assert!(keys(&kv, b"n/") >= 2 * blocks_before);
        holds_every(&mut seen, &kv, 0..batches);
        // A process started now finds the old blocks without their runs
        // and deletes them as it goes; it answers from the merged run.
        let mut restarted = Seen::default();
        holds_every(&mut restarted, &kv, 0..batches);
        assert_eq!(restarted.runs.len(), 1);
        assert_eq!(restarted.stale.len(), blocks_before);
        assert!(restarted.next_run > seen.runs.iter().map(|r| r.number).max().unwrap());
        seen.install(done);
        assert_eq!(seen.runs.len(), 1);
        assert_eq!(seen.stale.len(), blocks_before);
        // Compacted chunks go first, then the blocks, a few per batch.
        let pending = seen.compacted.len() + blocks_before;
        let mut n = batches;
        while !seen.stale.is_empty() {
            fill(&mut seen, &kv, n, 1, now);
            n += 1;
        }
        assert_eq!(n - batches, pending.div_ceil(CHUNK_DELETES));
        assert!(
            keys(&kv, b"n/") <= blocks_before + 2,
            "{} blocks",
            keys(&kv, b"n/")
        );
        holds_every(&mut seen, &kv, 0..n);
        holds_every(&mut Seen::default(), &kv, 0..n);
    }

    /// A backend that records each write's keys and stops taking writes
    /// after `budget` of them, as a process killed mid-job would.
    struct Stopping {
        kv: MemoryKv,
        budget: std::sync::atomic::AtomicUsize,
        writes: std::sync::Mutex<Vec<Vec<Vec<u8>>>>,
    }

    impl Stopping {
        fn new(kv: &MemoryKv, budget: usize) -> Stopping {
            Stopping {
                kv: kv.clone(),
                budget: budget.into(),
                writes: Default::default(),
            }
        }
    }

    impl Kv for Stopping {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.kv.get(key)
        }
        fn apply(&self, ops: Vec<Op>) -> Result<()> {
            use std::sync::atomic::Ordering::SeqCst;
            if self
                .budget
                .fetch_update(SeqCst, SeqCst, |b| b.checked_sub(1))
                .is_err()
            {
                return Err(crate::store::StoreError::Backend("stopped".into()));
            }
            let keys = ops
                .iter()
                .map(|op| match op {
                    Op::Put(k, _) | Op::Delete(k) => k.clone(),
                })
                .collect();
            self.writes.lock().unwrap().push(keys);
            self.kv.apply(ops)
        }
        fn range(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            self.kv.range(from, to, limit)
        }
        fn flush(&self) -> Result<()> {
            self.kv.flush()
        }
        fn keys(&self) -> &dyn crate::store::sealed::KeyTable {
            self.kv.keys()
        }
    }

    /// A merge writes its run's blocks a few at a time, then one write
    /// that makes them the run; stopped between, the store still answers
    /// from the old runs, and the blocks written go as stale.
    #[test]
    fn a_merge_writes_its_blocks_a_few_at_a_time_and_one_cut_short_leaves_the_old_runs() {
        let per_run = COMPACT_AT / 1024;
        let batches = MERGE * per_run;
        let runs_due = || {
            let kv = MemoryKv::default();
            let mut seen = Seen::default();
            let now = at("2025-11-09T00:00:00Z");
            for n in 0..batches {
                record(&mut seen, &kv, &batch(n, 1024), now);
                if seen.fresh.len() >= COMPACT_AT {
                    let job = seen.take_tidy(&kv).unwrap().expect("a compaction");
                    seen.install(job.build(&kv).unwrap());
                }
            }
            assert_eq!(seen.runs.len(), MERGE);
            (kv, seen)
        };

        let (kv, mut seen) = runs_due();
        let job = seen.take_tidy(&kv).unwrap().expect("a merge is due");
        let number = job.number;
        let recording = Stopping::new(&kv, usize::MAX);
        seen.install(job.build(&recording).unwrap());
        let writes = recording.writes.into_inner().unwrap();
        let blocks = MERGE * COMPACT_AT / BLOCK;
        assert!(
            writes.len() > blocks / tidy::BLOCKS_A_WRITE,
            "{} writes",
            writes.len()
        );
        let (last, parts) = writes.split_last().unwrap();
        for part in parts {
            assert!(part.len() <= tidy::BLOCKS_A_WRITE, "{} keys", part.len());
            assert!(part.iter().all(|k| k.starts_with(&blocks_start(number))));
        }
        assert!(
            last.contains(&info_key(number)),
            "the run is made by the last write"
        );
        assert!(last.len() <= 1 + MERGE, "{} keys", last.len());
        holds_every(&mut seen, &kv, 0..batches);

        // Stopped after two writes of blocks: the old runs hold every id.
        let (kv, mut seen) = runs_due();
        let job = seen.take_tidy(&kv).unwrap().expect("a merge is due");
        let number = job.number;
        assert!(job.build(&Stopping::new(&kv, 2)).is_err());
        let mut restarted = Seen::default();
        holds_every(&mut restarted, &kv, 0..batches);
        assert_eq!(restarted.runs.len(), MERGE);
        assert_eq!(restarted.stale.len(), 2 * tidy::BLOCKS_A_WRITE);
        assert!(restarted.next_run > number);
    }

    #[test]
    fn a_job_of_a_forgotten_seen_is_dropped_and_its_write_read_back() {
        let (kv, mut seen, _, per_run) = compaction_due();
        let job = seen.take_tidy(&kv).unwrap().expect("a compaction is due");
        // A batch failed meanwhile: memory is read again, once the job's
        // write is over (here, on another thread).
        seen.forget();
        let writer = {
            let kv = kv.clone();
            std::thread::spawn(move || job.build(&kv).unwrap())
        };
        holds_every(&mut seen, &kv, 0..per_run);
        let done = writer.join().unwrap();
        seen.install(done);
        assert!(seen.out.is_none());
        assert_eq!(seen.runs.len(), 1, "read back, not installed twice");
        holds_every(&mut seen, &kv, 0..per_run);
        assert!(
            seen.take_tidy(&kv).unwrap().is_none(),
            "nothing more is due"
        );
    }

    #[test]
    fn an_id_is_found_in_any_block_even_when_the_filter_says_maybe_for_all() {
        let kv = MemoryKv::default();
        let mut seen = Seen::default();
        let now = at("2025-11-09T00:00:00Z");
        let ids = batch(0, 3 * BLOCK + 7);
        record(&mut seen, &kv, &ids, now);
        seen.compact(&kv, 0).unwrap();
        // Every id, and ids not held, go past the filter to the blocks.
        let mut filter = SeenFilter::with_capacity(1, 1 << 20);
        for i in 0..1 << 18 {
            filter.insert(format!("fill{i}").as_bytes());
        }
        seen.filter = Some(filter);
        for id in &ids {
            seen.filter.as_mut().unwrap().insert(id.as_bytes());
        }
        assert!(ids.iter().all(|id| seen.contains(&kv, id).unwrap()));
        let others = (0..500).filter(|i| seen.contains(&kv, &format!("x{i}")).unwrap());
        assert_eq!(others.count(), 0);
    }

    #[test]
    fn equal_hashes_never_straddle_two_blocks() {
        let mut seen = Seen::default();
        // The same hash for every id of a block and beyond it.
        let entries: Vec<Entry> = (0..BLOCK + 10)
            .map(|i| (7, format!("same{i}").into(), 0))
            .chain((0..5).map(|i| (9, format!("next{i}").into(), 0)))
            .collect();
        let mut ops = Vec::new();
        seen.write_run(entries, &mut ops);
        let blocks: Vec<_> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Put(k, v) if k.starts_with(b"n/") => Some(decode::<Ids>(k, v).unwrap()),
                _ => None,
            })
            .collect();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].ids.len(), BLOCK + 10);
    }

    #[test]
    fn pruning_drops_runs_past_the_window_and_rewrites_mostly_past_ones() {
        let kv = MemoryKv::default();
        let mut seen = Seen::default();
        let day = |d: u32| at(&format!("2025-11-{d:02}T00:00:00Z"));
        // A run of day 1, one spanning days 2 to 9, one of day 10.
        record(&mut seen, &kv, &batch(1, 10), day(1));
        seen.compact(&kv, 0).unwrap();
        record(&mut seen, &kv, &batch(2, 10), day(2));
        record(&mut seen, &kv, &batch(9, 10), day(9));
        seen.compact(&kv, 0).unwrap();
        record(&mut seen, &kv, &batch(10, 10), day(10));
        seen.compact(&kv, 0).unwrap();
        // And fresh ids of days 3 and 11.
        record(&mut seen, &kv, &batch(3, 10), day(3));
        record(&mut seen, &kv, &batch(11, 10), day(11));
        let mut seen = Seen::default();

        // On day 11 the window starts on day 4: the day-1 run goes, the
        // day 2–9 run is kept (less than half past), day 3 dropped.
        assert_eq!(seen.prune(&kv, day(11)).unwrap(), 10 + 10);
        assert!(!seen.contains(&kv, "b1-0").unwrap());
        assert!(!seen.contains(&kv, "b3-0").unwrap());
        for id in ["b2-0", "b9-9", "b10-5", "b11-3"] {
            assert!(seen.contains(&kv, id).unwrap(), "{id}");
        }
        // On day 13 (window from day 6) most of days 2–9 is past: rewritten
        // without day 2.
        assert_eq!(seen.prune(&kv, day(13)).unwrap(), 10);
        assert!(!seen.contains(&kv, "b2-0").unwrap());
        assert!(seen.contains(&kv, "b9-0").unwrap());
        // Another reader agrees.
        let mut again = Seen::default();
        assert!(!again.contains(&kv, "b2-0").unwrap() && again.contains(&kv, "b9-0").unwrap());
        // Day 30: nothing left, and nothing of it in the store but the
        // mark of which chunks were compacted.
        assert_eq!(seen.prune(&kv, day(30)).unwrap(), 10 + 10 + 10);
        let left: Vec<Vec<u8>> = kv
            .range(b"", &[0xff], usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(left, [COMPACTED_KEY.to_vec()]);
    }
}
