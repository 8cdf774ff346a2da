//! The writer: one thread owns the runtime. It takes ingest requests from
//! any number of HTTP handlers, gathers those waiting into one batch,
//! commits and flushes it once (group commit), and only then answers each
//! request. A request that finds the store idle is committed at once;
//! while a batch is being written, the next gathers for up to the flush
//! interval. Batches are pipelined: while one is
//! applied and flushed on the commit thread (which answers its requests),
//! the writer gathers and evaluates the next. Between batches it fires due
//! timers and cron triggers, and once an hour forgets message ids past the
//! dedup window. A batch that runs its step budget defers the rest of its
//! inputs in its own commit (so they are durable before anyone is
//! answered); the writer runs them next, before new inputs. One writer keeps per-user order and determinism.

use super::health::Health;
use crate::runtime::DeployMeta;
use crate::runtime::{Runtime, TIME_PAGES_A_TURN};
use crate::store::{Settled, SledKv, StoreError};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use waymark_core::clock::Clock;
use waymark_core::deployment::DeployReport;
use waymark_core::model::Input;

/// How often message ids past the dedup window are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Most inputs one batch takes.
const MAX_BATCH: usize = 10_000;

/// Most inputs evaluated before their writes go to the commit thread: a
/// larger batch is applied a part at a time while the next part is
/// evaluated, and flushed once at its end.
const COMMIT_PART: usize = 128;

/// Why the writer did not do what a command asked: the store refused the
/// write (the variant names the command and what it was about), or the
/// writer has stopped. One failed commit answers every request of its
/// batch, so the store's error is shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriterError {
    /// The batch holding the inputs did not commit: none was acknowledged.
    #[error("committing the batch: {error}")]
    Ingest { error: Arc<StoreError> },
    #[error("deploying the scripts: {error}")]
    Deploy { error: Arc<StoreError> },
    #[error("pausing journey `{journey}`: {error}")]
    Pause {
        journey: String,
        error: Arc<StoreError>,
    },
    #[error("resuming journey `{journey}`: {error}")]
    Resume {
        journey: String,
        error: Arc<StoreError>,
    },
    #[error("erasing user `{user}`: {error}")]
    Erase {
        user: String,
        error: Arc<StoreError>,
    },
    #[error("replaying dead letter {seq}: {error}")]
    Replay { seq: u64, error: Arc<StoreError> },
    #[error("settling outbox entry {seq}: {error}")]
    Settle { seq: u64, error: Arc<StoreError> },
    /// The writer thread is gone (the daemon is stopping).
    #[error("the writer has stopped")]
    Stopped,
}

impl WriterError {
    /// A failed commit of ingested inputs.
    pub fn ingest(error: StoreError) -> WriterError {
        WriterError::Ingest {
            error: Arc::new(error),
        }
    }
}

pub enum Command {
    /// Inputs to ingest; answered once durable.
    Ingest {
        inputs: Vec<Input>,
        reply: oneshot::Sender<Result<(), WriterError>>,
    },
    /// Deploy a checked script set, recorded in the history and the audit
    /// log; answered with what changed and the deployment's id.
    Deploy {
        plan: waymark_dsl::plan::Plan,
        cancel_removed: bool,
        meta: DeployMeta,
        reply: oneshot::Sender<Result<(DeployReport, Option<u64>), WriterError>>,
    },
    Pause {
        journey: String,
        actor: String,
        reply: oneshot::Sender<Result<(), WriterError>>,
    },
    Resume {
        journey: String,
        actor: String,
        reply: oneshot::Sender<Result<(), WriterError>>,
    },
    /// Stop every non-transactional send (held, or dropped if `drop`).
    PauseSends {
        drop: bool,
        actor: String,
        reply: oneshot::Sender<Result<(), WriterError>>,
    },
    /// End the global pause; held sends go on.
    ResumeSends {
        actor: String,
        reply: oneshot::Sender<Result<(), WriterError>>,
    },
    /// Erase a user's data and cancel their pending effects.
    Erase {
        user: String,
        actor: String,
        reply: oneshot::Sender<Result<bool, WriterError>>,
    },
    /// Put a dead letter back in the outbox (and say so in the audit log);
    /// answered once durable, with whether there was such a dead letter.
    Replay {
        seq: u64,
        actor: String,
        reply: oneshot::Sender<Result<bool, WriterError>>,
    },
    /// A send leaving the outbox in a way the journal tells (given up on,
    /// or a replay delivered); answered once durable.
    Settle {
        settled: Settled,
        reply: oneshot::Sender<Result<(), WriterError>>,
    },
    /// Finish what is queued, then stop.
    Shutdown,
}

pub type Handle = Sender<Command>;

pub fn spawn(
    mut runtime: Runtime<SledKv>,
    clock: Arc<dyn Clock>,
    flush_interval: Duration,
    commands: Receiver<Command>,
    health: Arc<Health>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("waymark-writer".into())
        .spawn(move || {
            run(
                &mut runtime,
                clock.as_ref(),
                flush_interval,
                &commands,
                &health,
            )
        })
        .expect("the writer thread starts")
}

/// After a failed write: sled refuses everything once a flush has failed,
/// so the store is reopened from disk (the runtime has already dropped
/// what it kept in memory of the failed batches), then probed with a
/// small write; the daemon is ready again once that succeeds. One try a
/// second at most: `tried` is when the last one was.
fn recover(
    runtime: &mut Runtime<SledKv>,
    clock: &dyn Clock,
    health: &Health,
    tried: &mut Option<Instant>,
) {
    if health.store_error().is_none() {
        *tried = None;
        return;
    }
    match tried {
        Some(t) if t.elapsed() < Duration::from_secs(1) => return,
        None => {
            *tried = Some(Instant::now());
            return;
        }
        Some(t) => *t = Instant::now(),
    }
    if let Err(e) = runtime.drain() {
        tracing::debug!(error = %e, "the batch in flight failed too");
    }
    let kv = runtime.store.kv();
    match kv.reopen().and_then(|()| runtime.store.probe(clock.now())) {
        Ok(()) => health.store_ok(),
        Err(e) => health.store_failed(e),
    }
}

fn run(
    runtime: &mut Runtime<SledKv>,
    clock: &dyn Clock,
    flush_interval: Duration,
    commands: &Receiver<Command>,
    health: &Arc<Health>,
) {
    let mut stopping = false;
    // When message ids were last pruned (a daemon restarted often still prunes).
    let mut pruned: Option<Instant> = None;
    let mut tried_recovery = None;
    // Whether timers or a schedule's fire were left due by the last turn.
    let mut behind = false;
    while !stopping {
        recover(runtime, clock, health, &mut tried_recovery);
        // First thing at start (before any event waits on the filter it
        // warms), then hourly.
        if pruned.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            pruned = Some(Instant::now());
            match runtime.prune_dedup(clock.now()) {
                Ok(n) => {
                    tracing::debug!(dropped = n, "message ids past the dedup window forgotten")
                }
                Err(e) => tracing::error!(error = %e, "forgetting old message ids failed"),
            }
        }
        // Wait for work, or until the next timer is due (at most a second);
        // inputs deferred by a batch over its step budget are work.
        let deferred = runtime.deferred().unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading deferred inputs failed");
            0
        });
        let wait = match runtime.next_due() {
            _ if deferred > 0 || behind => Duration::ZERO,
            Ok(Some(due)) => (due - clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        };
        let first = match commands.recv_timeout(wait) {
            Ok(c) => Some(c),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut pending = Vec::new();
        if let Some(first) = first {
            pending.push(first);
            gather(runtime, commands, flush_interval, &mut pending);
        }
        let mut inputs = Vec::new();
        let mut replies = Vec::new();
        for command in pending {
            match command {
                Command::Ingest {
                    inputs: more,
                    reply,
                } => {
                    inputs.extend(more);
                    replies.push(reply);
                }
                Command::Shutdown => stopping = true,
                other => {
                    // Admin commands run between batches, in order.
                    flush(runtime, clock, &mut inputs, &mut replies, health);
                    admin(runtime, clock, other);
                }
            }
        }
        if replies.is_empty() && deferred > 0 {
            // No new inputs: a batch of deferred ones alone.
            flush_deferred(runtime, clock, health);
        }
        flush(runtime, clock, &mut inputs, &mut replies, health);
        let now = clock.now();
        if let Ok(Some(due)) = runtime.next_due() {
            super::metrics::timer_lag((now - due).to_std().unwrap_or_default());
        }
        // A few pages of due timers or of a schedule's audience a turn:
        // inputs that came meanwhile are taken between them.
        behind = match runtime.advance_some(now, TIME_PAGES_A_TURN, &mut |records| {
            super::metrics::records(&records)
        }) {
            Ok(caught_up) => !caught_up,
            Err(e) => {
                tracing::error!(error = %e, "firing timers failed");
                health.store_failed(e);
                false
            }
        };
    }
    // The last batch is durable, and answered, before the writer goes;
    // a compaction of message ids under way is finished.
    if let Err(e) = runtime.drain() {
        tracing::error!(error = %e, "the last batch failed to commit");
    }
    if let Err(e) = runtime.finish_dedup_tidy() {
        tracing::warn!(error = %e, "message-id compaction failed; it is redone at the next start");
    }
    // The write buffer into the store's files: the next start has no log
    // to replay (after a crash, it does).
    if let Err(e) = runtime.store.kv().write_out_all() {
        tracing::warn!(error = %e, "writing the write buffer out failed; the next start replays the log");
    }
    tracing::info!("writer stopped");
}

/// Adds to `pending` the commands that share a batch with its first:
/// those already queued, and, while the batch before is still being
/// written, those arriving within `flush_interval` (or until it is
/// durable). A command that finds the store idle waits for no others.
fn gather(
    runtime: &mut Runtime<SledKv>,
    commands: &Receiver<Command>,
    flush_interval: Duration,
    pending: &mut Vec<Command>,
) {
    /// How often the gathering looks whether the batch before is durable.
    const LOOK_EVERY: Duration = Duration::from_micros(200);
    let deadline = Instant::now() + flush_interval;
    let mut size = 0;
    while size < MAX_BATCH {
        let next = match commands.try_recv() {
            Ok(c) => Some(c),
            Err(_) if !runtime.committing() => None,
            Err(_) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    None
                } else {
                    commands.recv_timeout(left.min(LOOK_EVERY)).ok()
                }
            }
        };
        match next {
            Some(c) => {
                if let Command::Ingest { inputs, .. } = &c {
                    size += inputs.len();
                }
                pending.push(c);
            }
            None if runtime.committing() && Instant::now() < deadline => {}
            None => break,
        }
    }
}

fn flush(
    runtime: &mut Runtime<SledKv>,
    clock: &dyn Clock,
    inputs: &mut Vec<Input>,
    replies: &mut Vec<oneshot::Sender<Result<(), WriterError>>>,
    health: &Arc<Health>,
) {
    if replies.is_empty() {
        return;
    }
    let started = Instant::now();
    let now = clock.now();
    let count = inputs.len();
    let waiting = std::mem::take(replies);
    let health = health.clone();
    // Answered on the commit thread once durable, while this thread goes
    // on with the next batch.
    let durable: crate::runtime::Durable = Box::new(move |result| {
        match &result {
            Ok(committed) => {
                super::metrics::commit(started.elapsed(), count - committed.duplicates);
                super::metrics::duplicates(committed.duplicates);
                health.store_ok();
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; the batch was not acknowledged");
                health.store_failed(e);
            }
        }
        let answer = result.map(|_| ()).map_err(WriterError::ingest);
        for reply in waiting {
            let _ = reply.send(answer.clone());
        }
    });
    // An error is already answered through `durable`.
    let result = runtime.ingest_in_parts(inputs, now, COMMIT_PART, durable);
    let (users, capacity) = runtime.cached_users();
    super::metrics::user_cache(users, capacity);
    let (bytes, most) = runtime.store.dedup_filter_bytes();
    super::metrics::dedup_filters(bytes, most);
    let kv = runtime.store.kv();
    super::metrics::write_buffer(kv.write_buffer_bytes(), kv.write_buffer_capacity());
    if let Ok(records) = result {
        super::metrics::records(&records);
    }
    inputs.clear();
}

/// Runs a batch of deferred inputs only (nobody waits for its answer).
fn flush_deferred(runtime: &mut Runtime<SledKv>, clock: &dyn Clock, health: &Arc<Health>) {
    let started = Instant::now();
    let health = health.clone();
    let durable: crate::runtime::Durable = Box::new(move |result| match &result {
        Ok(committed) => {
            super::metrics::commit(started.elapsed(), 0);
            super::metrics::duplicates(committed.duplicates);
            health.store_ok();
        }
        Err(e) => {
            tracing::error!(error = %e, "commit of deferred inputs failed; they stay deferred");
            health.store_failed(e);
        }
    });
    if let Ok(records) = runtime.ingest_pipelined(&[], clock.now(), durable) {
        super::metrics::records(&records);
    }
}

fn admin(runtime: &mut Runtime<SledKv>, clock: &dyn Clock, command: Command) {
    let now = clock.now();
    match command {
        Command::Deploy {
            plan,
            cancel_removed,
            meta,
            reply,
        } => {
            runtime.deployment.source = waymark_core::deployment::DeploySource::Api;
            let _ = reply.send(
                runtime
                    .deploy_recorded(plan, cancel_removed, now, Some(meta))
                    .map(|(report, records, id)| {
                        super::metrics::records(&records);
                        (report, id)
                    })
                    .map_err(|e| WriterError::Deploy { error: Arc::new(e) }),
            );
        }
        Command::Pause {
            journey,
            actor,
            reply,
        } => {
            let result = runtime.pause(&journey).and_then(|()| {
                runtime
                    .store
                    .append_audit(now, &actor, "pause", &journey, "")
                    .map(drop)
            });
            let _ = reply.send(result.map_err(|e| WriterError::Pause {
                journey,
                error: Arc::new(e),
            }));
        }
        Command::Resume {
            journey,
            actor,
            reply,
        } => {
            let result = runtime.resume(&journey, now).and_then(|records| {
                super::metrics::records(&records);
                runtime
                    .store
                    .append_audit(now, &actor, "resume", &journey, "")
                    .map(drop)
            });
            let _ = reply.send(result.map_err(|e| WriterError::Resume {
                journey,
                error: Arc::new(e),
            }));
        }
        Command::PauseSends { drop, actor, reply } => {
            let how = if drop {
                "dropped"
            } else {
                "held until resumed"
            };
            let result = runtime.pause_sends(&actor, drop, now).and_then(|()| {
                runtime
                    .store
                    .append_audit(now, &actor, "pause", "every send", how)
                    .map(std::mem::drop)
            });
            let _ = reply.send(result.map_err(|e| WriterError::Pause {
                journey: "(every send)".into(),
                error: Arc::new(e),
            }));
        }
        Command::ResumeSends { actor, reply } => {
            let result = runtime.resume_sends(now).and_then(|records| {
                super::metrics::records(&records);
                runtime
                    .store
                    .append_audit(now, &actor, "resume", "every send", "")
                    .map(std::mem::drop)
            });
            let _ = reply.send(result.map_err(|e| WriterError::Resume {
                journey: "(every send)".into(),
                error: Arc::new(e),
            }));
        }
        Command::Replay { seq, actor, reply } => {
            // The audit entry's flush makes the replay durable with it.
            let result = runtime.store.replay(seq, now).and_then(|found| {
                if found {
                    runtime.store.append_audit(
                        now,
                        &actor,
                        "replay",
                        &format!("dead letter {seq}"),
                        "put back in the outbox",
                    )?;
                }
                Ok(found)
            });
            let _ = reply.send(result.map_err(|e| WriterError::Replay {
                seq,
                error: Arc::new(e),
            }));
        }
        Command::Erase { user, actor, reply } => {
            // The tag is taken before the erasure, which does not touch the
            // store's secret: the entry names no one.
            let result = runtime.store.erased_user_tag(&user).and_then(|tag| {
                let existed = runtime.erase_user(&user)?;
                if existed {
                    runtime.store.append_audit(
                        now,
                        &actor,
                        "erase",
                        &format!("user {tag}"),
                        "the user's data and pending effects",
                    )?;
                }
                Ok(existed)
            });
            let _ = reply.send(result.map_err(|e| WriterError::Erase {
                user,
                error: Arc::new(e),
            }));
        }
        Command::Settle { settled, reply } => {
            let (Settled::DeadLettered { was, .. } | Settled::Delivered { was, .. }) = &settled;
            let seq = was.seq;
            let result = runtime.settle(vec![settled], now);
            if let Ok(records) = &result {
                super::metrics::records(records);
            }
            let _ = reply.send(result.map(|_| ()).map_err(|e| WriterError::Settle {
                seq,
                error: Arc::new(e),
            }));
        }
        Command::Ingest { .. } | Command::Shutdown => {}
    }
}
