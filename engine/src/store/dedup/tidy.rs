//! Tidying off the writer: a compaction or a merge is taken out of
//! [`Seen`] as a [`TidyJob`] (quick, under the dedup lock), built and
//! written on any thread without the lock ([`TidyJob::build`]: reading the
//! runs, sorting, encoding and one atomic write, the slow part), then
//! installed in memory ([`Seen::install`], quick again). Merging eight
//! runs of 16k ids stopped every request for some 120 ms when it was done
//! under the lock.
//!
//! Meanwhile every id stays answerable: the ids being compacted stay in
//! memory (`compacting`) until the run holding them is installed, and the
//! blocks of merged runs are deleted only after the merged run is
//! installed, a few with each later batch. The one write of a job puts
//! the new run (with, for a compaction, the compacted marker) and deletes
//! the merged runs' info keys, so that after a crash at any point the
//! store holds either the old runs or the new one; blocks left without an
//! info key are found when the store is read and deleted then.
//!
//! So the new run's blocks are written first, [`BLOCKS_A_WRITE`] at a time,
//! and that one write carries only its info key and the rest: they mean
//! nothing before it. sled holds every other read and write of the store
//! while it applies a batch: a merge's blocks in one batch (eight runs of
//! 16k ids, some 500 blocks) held the writer's reads and commits for
//! 5.8 ms, 16 blocks at a time for 0.9 ms at most (daemon at 10k
//! `/v1/track` calls a second).

use super::{COMPACTED_KEY, Entry, Run, Seen, id_hash, info_key};
use crate::store::{Kv, Op, Result, encode};
use std::sync::{Arc, Condvar, Mutex};

/// The most blocks of a new run written at once: about a millisecond of
/// sled's time at most, while the writer's reads and commits wait.
pub(super) const BLOCKS_A_WRITE: usize = 16;

/// A compaction or merge taken out of [`Seen`], to build without it.
pub struct TidyJob {
    /// Which [`Seen`] (before or after a forget) it belongs to.
    generation: u64,
    /// Its number, as [`Seen`] holds it while it is out.
    id: u64,
    /// The run it makes.
    pub(super) number: u64,
    work: Work,
    /// Says when its write is done (or will never be): dropped with it.
    written: Written,
}

enum Work {
    /// Fresh ids into a run; the chunks holding them are compacted once
    /// the run is written (chunks before `marker`).
    Compact {
        ids: Arc<foldhash::HashMap<Box<str>, i64>>,
        chunks: Vec<u64>,
        marker: u64,
    },
    /// These runs into one.
    Merge { runs: Vec<u64> },
}

/// What a [`TidyJob`] wrote, to install in memory.
pub struct TidyDone {
    generation: u64,
    id: u64,
    /// The compacted chunks, or the merged runs.
    what: Done,
    run: Option<Run>,
    /// Keys no longer needed (the merged runs' blocks).
    stale: Vec<Vec<u8>>,
}

enum Done {
    Compacted(Vec<u64>),
    Merged(Vec<u64>),
}

/// A flag set once a job's write is over, whether it happened or not.
#[derive(Default)]
pub(super) struct Flag {
    set: Mutex<bool>,
    changed: Condvar,
}

impl Flag {
    /// Returns once the flag is set.
    pub(super) fn wait(&self) {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        while !*set {
            set = self.changed.wait(set).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Sets its flag when dropped: when the job is done with, however.
struct Written(Arc<Flag>);

impl Drop for Written {
    fn drop(&mut self) {
        *self.0.set.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0.changed.notify_all();
    }
}

/// A job out of [`Seen`]: its number and the flag its write sets.
pub(super) struct Out {
    pub(super) id: u64,
    pub(super) written: Arc<Flag>,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tidy job {}", self.id)
    }
}

impl Seen {
    /// Takes the next compaction or merge out to be built elsewhere, if
    /// one is due and none is out; `None` otherwise.
    pub fn take_tidy<K: Kv>(&mut self, kv: &K) -> Result<Option<TidyJob>> {
        self.load(kv)?;
        if self.out.is_some() {
            return Ok(None);
        }
        let work = if self.fresh.len() >= super::COMPACT_AT {
            let ids = Arc::new(std::mem::take(&mut self.fresh));
            self.compacting = Some(ids.clone());
            Work::Compact {
                ids,
                chunks: std::mem::take(&mut self.chunks),
                marker: self.next_chunk,
            }
        } else if let Some(runs) = self.mergeable() {
            Work::Merge { runs }
        } else {
            return Ok(None);
        };
        let number = self.next_run;
        self.next_run += 1;
        self.jobs += 1;
        let flag = Arc::new(Flag::default());
        self.out = Some(Out {
            id: self.jobs,
            written: flag.clone(),
        });
        Ok(Some(TidyJob {
            generation: self.generation,
            id: self.jobs,
            number,
            work,
            written: Written(flag),
        }))
    }

    /// Installs what a job wrote. A job of a [`Seen`] since forgotten is
    /// dropped: the store, read again, holds what it wrote.
    pub fn install(&mut self, done: TidyDone) {
        if self.out.as_ref().is_some_and(|o| o.id == done.id) {
            self.out = None;
        }
        if done.generation != self.generation {
            return;
        }
        match done.what {
            Done::Compacted(chunks) => {
                self.compacting = None;
                self.compacted.extend(chunks);
            }
            Done::Merged(runs) => {
                self.runs.retain(|r| !runs.contains(&r.number));
                self.stale.extend(done.stale);
            }
        }
        if let Some(run) = done.run {
            self.runs.push(run);
            self.fit_run_filters();
        }
    }

    /// Gives up on the job out (its build failed or its thread stopped):
    /// what it wrote, if anything, is read from the store again.
    pub fn abandon(&mut self) {
        self.out = None;
        self.forget();
    }
}

impl TidyJob {
    /// Reads what the job needs, builds the run and writes it (one atomic
    /// write). Needs no [`Seen`]: run it on any thread.
    pub fn build<K: Kv>(self, kv: &K) -> Result<TidyDone> {
        let mut ops = Vec::new();
        let mut stale = Vec::new();
        let (entries, what) = match self.work {
            Work::Compact {
                ids,
                chunks,
                marker,
            } => {
                ops.push(Op::Put(COMPACTED_KEY.to_vec(), encode(&marker)));
                let entries: Vec<Entry> = ids
                    .iter()
                    .map(|(id, at)| (id_hash(id.as_bytes()), id.clone(), *at))
                    .collect();
                (entries, Done::Compacted(chunks))
            }
            Work::Merge { runs } => {
                // Their blocks are deleted once the merged run is installed.
                let mut entries = Vec::new();
                super::runs::read_runs(kv, &runs, i64::MIN, &mut entries, &mut stale)?;
                ops.extend(runs.iter().map(|&number| Op::Delete(info_key(number))));
                (entries, Done::Merged(runs))
            }
        };
        let run = super::runs::run_ops(self.number, entries, &mut ops);
        let start = super::blocks_start(self.number);
        let (blocks, rest): (Vec<Op>, Vec<Op>) = ops
            .into_iter()
            .partition(|op| matches!(op, Op::Put(key, _) if key.starts_with(&start)));
        let mut blocks = blocks.into_iter().peekable();
        while blocks.peek().is_some() {
            kv.apply(blocks.by_ref().take(BLOCKS_A_WRITE).collect())?;
        }
        kv.apply(rest)?;
        drop(self.written);
        Ok(TidyDone {
            generation: self.generation,
            id: self.id,
            what,
            run,
            stale,
        })
    }
}
