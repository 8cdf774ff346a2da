//! Pipelined batches: the daemon hands a batch's writes to one commit
//! thread and evaluates the next batch while they are applied and
//! flushed. A large batch goes a part at a time, so that even one
//! request's work is shared between evaluating and applying, with one
//! flush at its end. One batch is being applied at most; reads made
//! meanwhile see it (its users stay in memory, its message ids count as
//! seen), and if it fails, everything kept in memory on top of it is
//! forgotten. The next batch is handed over once it is applied, while it
//! may still be flushing: the store's reads wait while a batch is
//! applied, not while it is flushed, so the users the next one needs are
//! read meanwhile. A batch whose flush fails fails the one handed over
//! after it, and that one's failure forgets what memory built on both.

use super::Runtime;
use crate::store::{Batch, Kv, StoreError};
use chrono::{DateTime, Utc};
use std::sync::mpsc;
use waymark_core::journal::Record;
use waymark_core::machine::Globals;
use waymark_core::model::Input;

/// What one pipelined batch wrote that reads must not miss while it is
/// being applied. (Its message ids need nothing here: the store counts
/// them as seen from when it prepares them.)
pub(super) struct InFlight {
    /// Its users, until it is applied (then the store has them).
    pub(super) users: foldhash::HashSet<String>,
    /// Whether it was applied, sent before it is flushed; `None` once
    /// [`Runtime::drain_applied`] has seen it.
    applied: Option<mpsc::Receiver<Result<(), StoreError>>>,
    /// Whether it was applied and flushed, sent last.
    finished: mpsc::Receiver<Result<(), StoreError>>,
    /// Its outcome, once [`Runtime::committing`] has seen it.
    outcome: Option<Result<(), StoreError>>,
}

type Job = Box<dyn FnOnce() + Send>;

/// One thread that applies and flushes batches in the order given.
pub(super) struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    fn start() -> Committer {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("waymark-commit".into())
            .spawn(move || {
                for job in queue {
                    job();
                }
            })
            .expect("the commit thread starts");
        Committer { jobs }
    }
}

/// Called once a pipelined batch is durable (or failed to be).
pub type Durable = Box<dyn FnOnce(Result<Committed, StoreError>) + Send>;

/// What a durable pipelined batch took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Inputs dropped as duplicates of a message id already taken.
    pub duplicates: usize,
}

impl<K: Kv> Runtime<K> {
    /// Waits until the pipelined batch, if any, is applied and flushed. If
    /// it failed, everything kept in memory on top of it is forgotten (and
    /// read from the store again) and the error returned.
    pub fn drain(&mut self) -> Result<(), StoreError> {
        let Some(mut in_flight) = self.in_flight.take() else {
            return Ok(());
        };
        let result = in_flight
            .outcome
            .take()
            .unwrap_or_else(|| outcome(in_flight.finished.recv()));
        self.failed_if(result)
    }

    /// Waits until the pipelined batch, if any, is applied, not until it
    /// is flushed too: the store's reads wait while a batch is applied,
    /// not while it is flushed, so reading the next batch's users can go
    /// on meanwhile. Whether it was flushed is seen by [`Runtime::drain`],
    /// [`Runtime::committing`], or the batch handed over after it, which
    /// fails if it did not (`before`, in [`Runtime::hand_over_evaluated`]).
    pub(super) fn drain_applied(&mut self) -> Result<(), StoreError> {
        let Some(in_flight) = self.in_flight.as_mut() else {
            return Ok(());
        };
        if in_flight.outcome.is_some() {
            return self.drain();
        }
        let Some(applied) = in_flight.applied.take() else {
            return Ok(());
        };
        match outcome(applied.recv()) {
            Ok(()) => {
                in_flight.users.clear();
                Ok(())
            }
            Err(e) => {
                self.in_flight = None;
                self.failed_if(Err(e))
            }
        }
    }

    /// `result`, after forgetting everything kept in memory on top of a
    /// batch if it failed.
    fn failed_if(&mut self, result: Result<(), StoreError>) -> Result<(), StoreError> {
        if result.is_err() {
            // A run of timers kept may have fired pages that failed.
            self.timer_run = None;
            self.users.clear();
            self.globals = None;
            self.deferred = None;
            self.forget_prepared();
        }
        result
    }
}

/// What the commit thread sent, or why nothing came.
fn outcome(received: Result<Result<(), StoreError>, mpsc::RecvError>) -> Result<(), StoreError> {
    received.unwrap_or_else(|_| Err(StoreError::Backend("the commit thread stopped".into())))
}

impl<K: Kv> Runtime<K> {
    /// Waits for the dedup compaction or merge running on its own thread,
    /// if any, and installs what it wrote (the writer does so before it
    /// stops; reading the store again after a failure waits for it too).
    pub fn finish_dedup_tidy(&mut self) -> Result<(), StoreError> {
        let Some(done) = self.tidying.take() else {
            return Ok(());
        };
        let done = done
            .recv()
            .unwrap_or_else(|_| Err(StoreError::Backend("the dedup thread stopped".into())));
        self.store.install_dedup_tidy(done)
    }
}

impl<K: Kv + Clone + 'static> Runtime<K> {
    /// Tidies the message ids of recent batches (see `store::dedup`) on
    /// a thread of its own while batches go on: the compaction or merge
    /// due is taken out of the store's memory, built and written there,
    /// and installed by a later call once it is done. Done on the writer,
    /// a merge held every request for some 120 ms.
    fn tidy_dedup_behind(&mut self) -> Result<(), StoreError> {
        if let Some(done) = &self.tidying {
            let done = match done.try_recv() {
                Ok(done) => done,
                Err(mpsc::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::TryRecvError::Disconnected) => {
                    Err(StoreError::Backend("the dedup thread stopped".into()))
                }
            };
            self.tidying = None;
            // A tidy that failed costs a read of the store, not a batch.
            if let Err(e) = self.store.install_dedup_tidy(done) {
                tracing::warn!(error = %e, "message-id compaction failed; reading them again");
            }
        }
        let Some(job) = self.store.take_dedup_tidy()? else {
            return Ok(());
        };
        let kv = self.store.kv().clone();
        let (sender, done) = mpsc::sync_channel(1);
        let started = std::thread::Builder::new()
            .name("waymark-dedup".into())
            .spawn(move || {
                let _ = sender.send(job.build(&kv));
            });
        match started {
            Ok(_) => {
                self.tidying = Some(done);
                Ok(())
            }
            Err(e) => {
                let e = StoreError::Backend(format!("cannot start the dedup thread: {e}"));
                tracing::warn!(error = %e, "message-id compaction not started");
                let _ = self.store.install_dedup_tidy(Err(e));
                Ok(())
            }
        }
    }
}

impl<K: Kv> Runtime<K> {
    /// Whether a pipelined batch is still being applied and flushed. The
    /// writer gathers more inputs for the next batch only while one is: an
    /// input that finds the store idle is committed at once.
    pub fn committing(&mut self) -> bool {
        let Some(in_flight) = self.in_flight.as_mut() else {
            return false;
        };
        if in_flight.outcome.is_some() {
            return false;
        }
        match in_flight.finished.try_recv() {
            Ok(outcome) => {
                in_flight.outcome = Some(outcome);
                false
            }
            Err(mpsc::TryRecvError::Empty) => true,
            Err(mpsc::TryRecvError::Disconnected) => {
                in_flight.outcome =
                    Some(Err(StoreError::Backend("the commit thread stopped".into())));
                false
            }
        }
    }
}

impl<K: Kv + Clone + 'static> Runtime<K> {
    /// Like [`Runtime::ingest`], but returns once the batch is handed to
    /// the commit thread: the next batch is evaluated while this one is
    /// applied and flushed (one batch in flight at most; the next waits
    /// until it is applied before it is handed over). `durable` is called
    /// on the commit thread once this batch is flushed — acknowledge
    /// inputs there, not before — or at once if it cannot be handed over:
    /// always exactly once. Reads made meanwhile see the batch in flight: its users stay
    /// in memory and its message ids count as seen. If a batch fails, the
    /// one after it fails too (it was built on it) and nothing kept in
    /// memory outlives the failure.
    pub fn ingest_pipelined(
        &mut self,
        inputs: &[Input],
        now: DateTime<Utc>,
        durable: Durable,
    ) -> Result<Vec<Record>, StoreError> {
        self.hand_over(inputs, now, true, durable, &[])
    }

    /// [`Runtime::ingest_pipelined`] for a large batch, a part of at most
    /// `part` inputs at a time: each part is handed to the commit thread
    /// to apply while the next is evaluated, so the two cores share one
    /// request's work; only the last part is flushed (which makes every
    /// part durable), and `durable` is called once, when it is, or at the
    /// first failure of any part. The parts run as consecutive batches
    /// would, so the records are the same as one batch's.
    pub fn ingest_in_parts(
        &mut self,
        inputs: &[Input],
        now: DateTime<Utc>,
        part: usize,
        durable: Durable,
    ) -> Result<Vec<Record>, StoreError> {
        if inputs.len() <= part {
            return self.ingest_pipelined(inputs, now, durable);
        }
        self.read_ahead.clear();
        let duplicates = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut durable = Some(durable);
        let mut records = Vec::new();
        let parts = inputs.len().div_ceil(part.max(1));
        let chunks: Vec<&[Input]> = inputs.chunks(part.max(1)).collect();
        for (i, inputs) in chunks.iter().enumerate() {
            let last = i + 1 == parts;
            let next = chunks.get(i + 1).copied().unwrap_or_default();
            let seen = duplicates.clone();
            let when_done: Durable = match (last, durable.take()) {
                (true, Some(durable)) => Box::new(move |result| {
                    let earlier = seen.load(std::sync::atomic::Ordering::Relaxed);
                    durable(result.map(|c| Committed {
                        duplicates: c.duplicates + earlier,
                    }))
                }),
                (_, kept) => {
                    durable = kept;
                    // A failure here fails the next part, which reports it.
                    Box::new(move |result| {
                        if let Ok(c) = result {
                            seen.fetch_add(c.duplicates, std::sync::atomic::Ordering::Relaxed);
                        }
                    })
                }
            };
            match self.hand_over(inputs, now, last, when_done, next) {
                Ok(more) => records.extend(more),
                Err(e) => {
                    self.read_ahead.clear();
                    if let Some(durable) = durable.take() {
                        durable(Err(e.clone()));
                    }
                    return Err(e);
                }
            }
        }
        self.read_ahead.clear();
        Ok(records)
    }

    /// Evaluates a batch and hands its writes to the commit thread, which
    /// applies them, flushes if `flush`, then calls `durable`. Just before
    /// handing them over, with no batch being applied, the users of `next`
    /// (the batch to evaluate after this one) are read ahead, and opened
    /// just after: the store's reads wait while a batch is applied, so
    /// reading them during the next evaluation would undo the overlap.
    fn hand_over(
        &mut self,
        inputs: &[Input],
        now: DateTime<Utc>,
        flush: bool,
        durable: Durable,
        next: &[Input],
    ) -> Result<Vec<Record>, StoreError> {
        let failed = |durable: Durable, e: StoreError| {
            durable(Err(e.clone()));
            Err(e)
        };
        if let Err(e) = self.tidy_dedup_behind() {
            return failed(durable, e);
        }
        // If this fails, the users taken out for the batch are gone from
        // memory; the store still has them.
        let (batch, globals) = match self.evaluate(inputs, now, true) {
            Ok(evaluated) => evaluated,
            Err(e) => return failed(durable, e),
        };
        self.hand_over_evaluated(batch, globals, flush, durable, next.iter().map(Input::user))
    }

    /// The second half of [`Runtime::hand_over`], for a batch evaluated
    /// already: its writes worked out, the batch before waited for, the
    /// users of the next batch (`next`) read ahead while the store is
    /// idle, and the writes handed to the commit thread. Returns the
    /// batch's records; `durable` is called exactly once.
    pub(super) fn hand_over_evaluated<'n>(
        &mut self,
        mut batch: Batch,
        globals: Globals,
        flush: bool,
        durable: Durable,
        next: impl Iterator<Item = &'n str>,
    ) -> Result<Vec<Record>, StoreError> {
        let ops = self
            .effects
            .fill(&self.store, &mut batch, self.stats_zone())
            .and_then(|()| self.store.prepare(&mut batch));
        // The batch before must be applied before this one is handed
        // over. It may still be flushing: this one fails if that does.
        let previous = self.drain_applied();
        let before = self.in_flight.take().map(|f| f.finished);
        let ops = match (previous, ops) {
            (Ok(()), Ok(ops)) => ops,
            (Err(e), _) | (_, Err(e)) => {
                if let Some(before) = before {
                    let _ = self.failed_if(outcome(before.recv()));
                }
                self.forget_prepared();
                self.deferred = None;
                durable(Err(e.clone()));
                return Err(e);
            }
        };
        let ahead = self.read_users_ahead(next, &batch.users, &batch.merges);
        let (applied_tx, applied) = mpsc::channel();
        let (done, finished) = mpsc::channel();
        let kv = self.store.kv().clone();
        let duplicates = batch.duplicates;
        let job: Job = Box::new(move || {
            // The job before has run: this thread runs them in order.
            let result = match before.map(|b| outcome(b.recv())) {
                Some(Err(e)) => Err(e),
                _ => ops.apply(&kv),
            };
            let _ = applied_tx.send(result.clone());
            let result = result.and_then(|()| if flush { kv.flush() } else { Ok(()) });
            durable(result.clone().map(|()| Committed { duplicates }));
            let _ = done.send(result);
        });
        let committer = self.committer.get_or_insert_with(Committer::start);
        if let Err(mpsc::SendError(job)) = committer.jobs.send(job) {
            // The thread is gone: apply here, so the batch is not lost.
            self.committer = None;
            job();
        }
        // Opened while it is applied: only reading the backend waits.
        for (user, sealed) in ahead {
            if let Ok(state) = self.store.user_opened(&user, sealed) {
                self.read_ahead.insert(user, state);
            }
        }
        // Ids it merges away change too: their next reader waits for it.
        let merged = batch
            .merges
            .iter()
            .flat_map(|m| std::iter::once(&m.absorbed).chain(&m.also).cloned());
        self.in_flight = Some(InFlight {
            users: batch
                .users
                .iter()
                .map(|(u, _)| u.id.to_string())
                .chain(merged)
                .collect(),
            applied: Some(applied),
            finished,
            outcome: None,
        });
        Ok(self.keep(batch, globals))
    }
}

impl<K: Kv> Runtime<K> {
    /// Reads the users that the next evaluation would read from the
    /// store: those of `next` not kept in memory and not in `handed` (the
    /// batch about to be handed over, whose users are kept after it), as
    /// the backend holds them, to be opened once `handed` is on its way
    /// ([`Store::user_opened`](crate::store::Store::user_opened)). A read
    /// that fails is left to that evaluation, which reports it.
    fn read_users_ahead<'n>(
        &mut self,
        next: impl Iterator<Item = &'n str>,
        handed: &[(waymark_core::model::UserState, Option<DateTime<Utc>>)],
        merges: &[crate::store::MergeWrite],
    ) -> Vec<(String, Option<Vec<u8>>)> {
        let mut next = next.peekable();
        let mut read = Vec::new();
        if next.peek().is_none() {
            return read;
        }
        // Ids the handed batch merges away are read once it is applied.
        let merged = merges.iter().flat_map(|m| {
            std::iter::once(m.absorbed.as_str()).chain(m.also.iter().map(String::as_str))
        });
        let handed: foldhash::HashSet<&str> = handed
            .iter()
            .map(|(u, _)| u.id.as_str())
            .chain(merged)
            .collect();
        let mut seen = foldhash::HashSet::default();
        for user in next {
            if handed.contains(user)
                || self.users.holds(user)
                || self.read_ahead.contains_key(user)
                || !seen.insert(user)
            {
                continue;
            }
            if let Ok(sealed) = self.store.user_sealed(user) {
                read.push((user.to_string(), sealed));
            }
        }
        read
    }
}

impl<K: Kv> Drop for Runtime<K> {
    /// A batch in flight is finished (and acknowledged) before the runtime goes.
    fn drop(&mut self) {
        if let Err(e) = self.drain() {
            tracing::error!(error = %e, "the last batch failed to commit");
        }
    }
}
