//! Durable state behind a trait. A backend is an ordered key-value space
//! with atomic batches ([`Kv`]); [`Store`] lays out Waymark's data on it
//! once, for every backend. This is every key it writes, one table a file:
//!
//! | key | value | file |
//! | --- | --- | --- |
//! | `V` | the store's format version ([`FORMAT`], 4 bytes big-endian) | here |
//! | `K` | the store's secret (32 random bytes, made with the store): coupon codes are derived under it | [`coupons`] |
//! | `c/{coupon}/{code}` | the coupon-code index: who holds each code (empty once they are erased); a commit that would issue a code twice is refused | [`coupons`] |
//! | `u/{user}` | the user's state, after the journal records it keeps (their newest, until there are enough to write under `j/`) | [`users`] |
//! | `l/{id}` | the identity index: for an id merged into another profile, that profile's id | [`identity`] |
//! | `e/{trait}/{hash}` | the declared-identifier index: the profile that holds each value of a trait listed in `identity.identifiers`, the value as a keyed hash (16 bytes of HMAC-SHA-256 under `K`) | [`identity`] |
//! | `t/{fence}` | a block of up to 32 timers (each a user's next wake-up, `{due}{user}`, in order), those after the fence of the block before and up to `{fence}`, the last timer it was split at. The user's state is a timer's index: it is always that state's next wake-up | [`timers`] |
//! | `T` | how many timers are pending, 8 bytes big-endian | [`timers`] |
//! | `m/{chunk}` | message ids of ingested events, one key per batch, until compacted into a run | [`dedup`] |
//! | `M` | the first chunk not compacted: chunks before it are in runs and only wait to be deleted, a few with each batch | [`dedup`] |
//! | `n/{run}/{hash}`, `N/{run}` | message ids in runs sorted by hash, in blocks keyed by the last hash each holds; the run's size and times | [`dedup`] |
//! | `j/{user}/{seq}` | the user's journal: groups of the user's records of one batch each, `[seq, records]` with the sequence number of the group's first record, oldest first, under the number of the last group | [`journal`] |
//! | `y/{at}/{user}/{seq}` | the consent ledger: each `consent` record again, by time, for an auditor's export of a time range; erased with the user's journal | [`journal`] |
//! | `s` | the last sequence number used (one per journal record), 8 bytes big-endian | [`journal`] |
//! | `o/{seq}` | the outbox: sends not yet attempted, in order | [`outbox`] |
//! | `r/{next attempt}/{seq}` | sends that failed, were put off (a provider's quota) or replayed, and wait to be tried, by when (so sends to a channel that is down never hold up the rest) | [`outbox`] |
//! | `x/{seq}` | dead letters: sends given up on, with their last error | [`outbox`] |
//! | `w/{task}`, `w/{task}/{seq}` | staff tasks: sends a staff member confirms (WeCom customer mass sends), batched per staff member and content; the task's head, and each send as it left the outbox, until its outcome is journaled | [`staff_tasks`] |
//! | `P`, `C`, `Q`, `W`, `S`, `p/{journey}/{version}` | the deployment: current plan, its journeys' names, titles and versions (what reads answer from, decoding no plan), paused journeys, the global pause of sends (if on), where it came from, and the journey versions kept: current ones and those that users are still in or have a goal open on | [`deployment`] |
//! | `k/{journey}/{version}` | journey stats per version | [`stats`] |
//! | `d/{id}`, `f/{id}`, `D` | every deployment (who, when, how, what changed, the source hash) and its script files, by id (big-endian); the last id | [`history`] |
//! | `a/{seq}`, `A` | the audit log: deploys, rollbacks, pauses, resumes, erasures, replays; the last sequence number | [`history`] |
//! | `g` | state shared by all users | [`globals`] |
//! | `i/{n}` | inputs deferred by a batch that used up its step budget, in arrival order (`n` big-endian), until a later batch runs them | [`globals`] |
//! | `H` | the time of the last write probe (see [`Store::probe`]) | here |
//! | `Y/{user}`, `Y` | the slot of the user's key in the backend's key table ([`Kv::keys`]) when their state does not say it (they have none, or were merged away); the next free slot | [`sealed`] |
//! | `Z/{slot}` | a key an erasure is destroying, until it is zeroed | [`sealed`] |
//!
//! `{user}` (and `{coupon}`) is the id as `keys::user_part` writes it,
//! never the bare id: the id's own bytes may hold anything, `/` included,
//! so a bare id would make one user's key range (`j/alice/…`) hold
//! another's (`j/alice/x/…`). Written this way no user's keys fall in
//! another's range, and ids sort as they compare. `{due}`, `{next
//! attempt}`: big-endian microseconds (`keys::time_key`); `{seq}`, `{n}`,
//! `{chunk}`, `{run}`, `{hash}`: big-endian `u64`.
//!
//! The values of `u/`, `j/`, `y/`, `o/`, `r/`, `x/`, `w/{task}/{seq}` and `i/` — all a
//! person's data — are sealed under that person's key ([`sealed`]), so
//! that erasing the key erases whatever copies of them the backend's
//! files still hold.
//!
//! Values are MessagePack with field names. Everything one input batch
//! changes is written in one atomic batch ([`Store::commit`]); what a batch
//! writes besides the inputs' own effects (its sends, the codes it issues,
//! its journeys' stats) the runtime works out and hands over in the
//! [`Batch`]: the store stores. [`Store::flush`] makes it durable (group
//! commit). A store of another format than [`FORMAT`] is refused at
//! [`Store::open`]: this Waymark has no reader of another layout.

mod coupons;
mod dedup;
mod deployment;
mod globals;
mod history;
mod identity;
mod journal;
mod keys;
mod memory;
mod outbox;
pub mod sealed;
mod seen_filter;
mod sled_kv;
mod staff_tasks;
mod stats;
mod timers;
mod users;
mod write_ahead;

pub use coupons::IssuedCode;
pub use dedup::{DEFAULT_FILTER_BYTES as DEFAULT_DEDUP_FILTER_BYTES, TidyDone, TidyJob, id_hash};
pub use deployment::DeployedJourney;
pub use history::{AuditEntry, DeploymentRecord, source_hash};
pub use identity::MergeWrite;
pub use memory::MemoryKv;
pub use outbox::{OutboxEntry, Settled};
pub use sled_kv::{DEFAULT_WRITE_BUFFER_BYTES, SledKv};
pub use staff_tasks::{StaffTask, TaskState};
pub use stats::StatsWrite;
pub use users::PagedUser;

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use timers::TimerMoves;
use waymark_core::journal::Record;
use waymark_core::machine::Globals;
use waymark_core::model::{Input, UserState};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Backend(String),
    /// Another process holds the store's lock.
    #[error("{path} is in use by another process")]
    InUse { path: String },
    #[error("stored value at {key} is unreadable: {message}")]
    Corrupt { key: String, message: String },
    #[error(
        "the store is in format {found}, and this Waymark reads format {expected} only: open it with the Waymark that wrote it, or start from an empty data directory"
    )]
    Format { found: u32, expected: u32 },
    /// A commit would issue a coupon code that was issued before.
    #[error(
        "coupon {coupon}: code {code} was issued before; the batch is refused so no two users hold one code"
    )]
    DuplicateCoupon { coupon: String, code: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One change in a batch.
#[derive(Debug, Clone)]
pub enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// An ordered key-value backend with atomic batches.
pub trait Kv: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Applies every op or none.
    fn apply(&self, ops: Vec<Op>) -> Result<()>;
    /// Pairs with keys in `[from, to)`, in key order, at most `limit`.
    fn range(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Pairs with keys in `[from, to)`, last key first, at most `limit`.
    /// (This default reads the whole range; a backend that can walk
    /// backwards does so.)
    fn range_rev(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut all = self.range(from, to, usize::MAX)?;
        all.reverse();
        all.truncate(limit);
        Ok(all)
    }
    /// Makes every applied batch durable.
    fn flush(&self) -> Result<()>;
    /// How many keys are in `[from, to)`.
    fn count(&self, from: &[u8], to: &[u8]) -> Result<usize> {
        Ok(self.range(from, to, usize::MAX)?.len())
    }
    /// The table of per-user keys that seal what the store keeps of each
    /// person ([`sealed`]): kept apart from the key-value space, so that an
    /// erased person's key can be overwritten for good.
    fn keys(&self) -> &dyn sealed::KeyTable;
}

/// Everything one batch of inputs changed, written together.
#[derive(Debug, Default)]
pub struct Batch {
    /// Users whose state changed, with the timer they had when loaded.
    pub users: Vec<(UserState, Option<DateTime<Utc>>)>,
    pub dedup: Vec<(String, DateTime<Utc>)>,
    pub journal: Vec<Record>,
    /// Instances coming to journey steps and going on from them, for the
    /// stats (not written themselves).
    pub passages: Vec<waymark_core::stats::Passage>,
    /// The records of `journal` (by index) that are sends to deliver: each
    /// enters the outbox under its record's sequence number.
    pub sends: Vec<usize>,
    /// Coupon codes issued by this batch, for the code index.
    pub codes: Vec<IssuedCode>,
    /// Journey stats as this batch leaves them.
    pub stats: Vec<StatsWrite>,
    /// Shared state to write, if it changed.
    pub globals: Option<Globals>,
    /// Profiles merged into others, in order.
    pub merges: Vec<MergeWrite>,
    /// Declared identifier values claimed (trait, value, holder) or freed
    /// (no holder), in order.
    pub claims: Vec<(String, String, Option<String>)>,
    /// Sends leaving the outbox with this batch (its journal tells how).
    pub settled: Vec<Settled>,
    /// Inputs this batch leaves for a later one, by their number.
    pub deferred: Vec<(u64, Input)>,
    /// Deferred inputs (by number) this batch ran.
    pub resumed: Vec<u64>,
    /// Inputs dropped as duplicates of a message id already taken.
    pub duplicates: usize,
    /// Users of `users` whose stored bytes were read with them (an
    /// audience scan): one whose state encodes to the same bytes is not
    /// written again, as most members a schedule checks are left as they
    /// were.
    pub as_stored: foldhash::HashMap<String, Vec<u8>>,
}

/// A batch's writes ready to apply: its ops, its timers' moves, which
/// become writes of timer blocks as the batch is applied (see [`timers`]),
/// and the coupon codes it issues, which are looked up in the code index
/// then (see [`coupons`]); its values are sealed then too ([`sealed`]),
/// by the thread that applies it, not the one evaluating the next batch.
#[derive(Debug)]
pub struct Prepared {
    ops: Vec<Op>,
    timers: TimerMoves,
    codes: Vec<coupons::NewCode>,
    /// Writes of `ops` whose values are sealed as the batch is applied.
    sealing: Vec<sealed::ToSeal>,
}

impl Prepared {
    /// Applies the batch to `kv`, every write or none: after every batch
    /// applied before it, as the timer blocks and the code index are read
    /// here. This is the only thread reading them while the next batch is
    /// evaluated, so those reads do not wait for this batch's write, and
    /// they see every batch before it.
    pub fn apply<K: Kv>(mut self, kv: &K) -> Result<()> {
        sealed::seal_pending(&mut self.ops, &self.sealing)?;
        coupons::refuse_issued(kv, &self.codes)?;
        timers::resolve(kv, &self.timers, &mut self.ops)?;
        kv.apply(self.ops)
    }
}

pub struct Store<K: Kv> {
    kv: K,
    /// The last sequence number used, once read: this store is the only
    /// writer of `s`, so it need not be read again for every batch.
    seq: Mutex<Option<u64>>,
    /// The message ids seen within the dedup window (see [`dedup`]).
    dedup: Mutex<dedup::Seen>,
    /// The most bytes a user's state may take, and the users whose state
    /// was past it when last read or written (see [`Store::oversize`]).
    max_user_bytes: AtomicUsize,
    oversize: Mutex<HashSet<String>>,
    /// The store's secret (`K`) once read, for the keyed hashes in keys.
    secret: std::sync::OnceLock<[u8; 32]>,
    /// Users' key slots and keys remembered, and the next free slot.
    sealing: Mutex<sealed::Remembered>,
    /// How often keys were destroyed or slots forgotten: a key kept with
    /// a user's state ([`waymark_core::model::SealedUnder`]) is used only
    /// while this is what it was when the key was taken.
    key_epoch: AtomicU64,
    /// How many batches, erasures and deployments were written through
    /// this store: what was read of users or timers before is current
    /// while this is what it was then ([`Store::writes`]).
    writes: AtomicU64,
}

/// Encodes with field names (outbox entries, whose records are in their
/// stored form, dedup runs, deployments).
fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    with_scratch(|buf| rmp_serde::encode::write_named(buf, value))
}

/// Runs `write` into this thread's scratch buffer and returns an
/// exact-sized copy. Values are built in a buffer that keeps its room,
/// and what goes to the store holds no spare room: a batch's values are
/// freed on the commit thread, and generous buffers made fresh pages
/// (and their zeroing) a large part of every commit.
fn with_scratch<E: std::fmt::Debug>(
    write: impl FnOnce(&mut Vec<u8>) -> std::result::Result<(), E>,
) -> Vec<u8> {
    in_scratch(|buf| {
        write(buf).expect("engine state serializes");
        buf.to_vec()
    })
}

/// Runs `build` with this thread's scratch buffer, emptied: for a value
/// built in parts and copied out (exact-sized, as [`with_scratch`] says
/// why) only if it is to be written.
fn in_scratch<R>(build: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|buf| {
        buf.clear();
        let out = build(buf);
        // A rare huge value does not keep its room for good.
        if buf.capacity() > 1 << 20 {
            *buf = Vec::new();
        }
        out
    })
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        message: e.to_string(),
    })
}

/// The layout of keys and values this store writes, kept under `V`. It
/// changes whenever a stored form does; a store of another format is
/// refused at open, and a migration is written only when a release needs
/// one.
pub const FORMAT: u32 = 25;

/// Stores opened in this process (see `Store::key_epoch`).
static STORES: AtomicU64 = AtomicU64::new(0);

/// How long message ids are kept for dedup, at least.
pub const DEDUP_DAYS: i64 = 7;

impl<K: Kv> Store<K> {
    /// A store over `kv` as it is, its format unchecked (tests and
    /// in-memory runs); a data directory is opened with [`Store::open`].
    pub fn new(kv: K) -> Store<K> {
        Store {
            kv,
            seq: Mutex::new(None),
            dedup: Mutex::new(dedup::Seen::default()),
            max_user_bytes: AtomicUsize::new(crate::ingest::Limits::default().user_state),
            oversize: Mutex::new(Default::default()),
            secret: std::sync::OnceLock::new(),
            sealing: Mutex::new(Default::default()),
            // Each store's counts apart: a key kept with a state read from
            // one store is never taken as another's.
            key_epoch: AtomicU64::new(
                STORES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 32,
            ),
            writes: AtomicU64::new(0),
        }
    }

    /// The store's secret, read once; all zeros for a store made with
    /// [`Store::new`] over a space without one (tests' in-memory stores).
    fn secret(&self) -> [u8; 32] {
        *self
            .secret
            .get_or_init(|| self.coupon_secret().map(|s| s.0).unwrap_or([0; 32]))
    }

    /// A store over `kv` once its format is known to be [`FORMAT`]: an
    /// empty `kv` is marked with it (and given its secret), and one in any
    /// other format, or with keys but no format, is refused with
    /// [`StoreError::Format`].
    pub fn open(kv: K) -> Result<Store<K>> {
        match kv.get(b"V")? {
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(bytes.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        key: "V".into(),
                        message: format!("a format version is 4 bytes, found {}", bytes.len()),
                    })?;
                if found != FORMAT {
                    return Err(StoreError::Format {
                        found,
                        expected: FORMAT,
                    });
                }
            }
            None if kv.range(b"", &[0xff], 1)?.is_empty() => {
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret).map_err(|e| {
                    StoreError::Backend(format!("no randomness for the store's secret: {e}"))
                })?;
                kv.apply(vec![
                    Op::Put(b"V".to_vec(), FORMAT.to_be_bytes().to_vec()),
                    Op::Put(b"K".to_vec(), secret.to_vec()),
                ])?;
                kv.flush()?;
            }
            // Keys but no format: the first layout, which had no `V`.
            None => {
                return Err(StoreError::Format {
                    found: 1,
                    expected: FORMAT,
                });
            }
        }
        let store = Store::new(kv);
        // Keys an erasure marked for destruction before a crash.
        store.finish_destroying()?;
        Ok(store)
    }

    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// How many batches (prepared or committed), erasures and deployments
    /// were written through this store so far. Something read of users,
    /// timers or the deployment when this was `n` is still what the store
    /// holds while it is `n` (this store is their only writer).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Counts a write for [`Store::writes`].
    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes a batch atomically: every table it touches.
    pub fn commit(&self, mut batch: Batch) -> Result<()> {
        self.commit_ref(&mut batch)
    }

    /// [`Store::commit`] by reference: the caller keeps the batch (and its
    /// journal, to return) without cloning it, its users left with the
    /// journal records their states keep now.
    pub fn commit_ref(&self, batch: &mut Batch) -> Result<()> {
        let prepared = self.prepare(batch)?;
        prepared
            .apply(&self.kv)
            .inspect_err(|_| self.forget_prepared())
    }

    /// The writes of a batch, to apply as one: [`Store::commit_ref`] is
    /// this then [`Prepared::apply`]. Sequence numbers and message ids are
    /// taken as if the batch were applied; if it is not, call
    /// [`Store::forget_prepared`] before preparing another (and forget the
    /// batch's users: their states hold the journal records kept as if it
    /// were applied).
    pub fn prepare(&self, batch: &mut Batch) -> Result<Prepared> {
        self.wrote();
        let mut cached = self.seq.lock().expect("no panics while holding the lock");
        let first = match *cached {
            Some(seq) => seq,
            None => self.sequence()?,
        };
        let mut ops = Vec::with_capacity(
            2 * batch.users.len() + batch.journal.len() + batch.sends.len() + batch.stats.len() + 4,
        );
        // First what may refuse the batch, so that nothing is taken for it.
        let codes = Self::write_codes(&batch.codes, &mut ops)?;
        // The key of everyone something is written of (made, durably, for
        // those who have none yet).
        let seals = self.seals(
            batch
                .users
                .iter()
                .map(|(u, _)| (u.id.as_str(), u.sealed_under)),
            batch
                .journal
                .iter()
                .map(|r| r.user.as_str())
                .chain(batch.settled.iter().filter_map(|s| match s {
                    Settled::DeadLettered { entry, .. } => Some(entry.record.user.as_str()),
                    Settled::Delivered { .. } => None,
                }))
                .chain(batch.deferred.iter().map(|(_, i)| i.user()))
                .chain(
                    batch
                        .merges
                        .iter()
                        .filter(|m| m.tail.groups > 0)
                        .map(|m| m.absorbed.as_str()),
                ),
            &mut ops,
        )?;
        let (groups, last) = Self::number_journal(&batch.journal, first, &seals, &mut ops)?;
        let mut groups: foldhash::HashMap<&str, journal::Group<'_>> = groups
            .into_iter()
            .map(|g| (g.1[0].user.as_str(), g))
            .collect();
        let mut timers = TimerMoves::default();
        self.write_users(
            &mut batch.users,
            &mut groups,
            &batch.as_stored,
            &seals,
            &mut ops,
            &mut timers,
        )?;
        // Records of users whose state the batch does not write.
        let mut rest: Vec<journal::Group<'_>> = groups.into_values().collect();
        rest.sort_by_key(|g| g.0);
        Self::write_groups(rest, &seals, &mut ops)?;
        // A profile merged away loses its state, which said its key's
        // slot: from now `Y/` says it (its journal stays sealed under it,
        // and erasing the survivor destroys it).
        for m in batch.merges.iter().filter(|m| m.stored.is_some()) {
            if let Some(slot) = self.user_slot(&m.absorbed)? {
                ops.push(Op::Put(
                    sealed::slot_key(&m.absorbed),
                    slot.to_be_bytes().to_vec(),
                ));
            }
        }
        Self::write_merges(&batch.merges, &seals, &mut ops, &mut timers)?;
        self.write_claims(&batch.claims, &mut ops);
        self.dedup().record(&self.kv, &batch.dedup, &mut ops)?;
        Self::write_sends(&batch.journal, &batch.sends, first, &seals, &mut ops)?;
        Self::write_stats(&batch.stats, &mut ops);
        if let Some(globals) = &batch.globals {
            Self::write_globals(globals, &mut ops);
        }
        Self::write_settled(&batch.settled, &seals, &mut ops)?;
        Self::write_deferred(&batch.deferred, &batch.resumed, &seals, &mut ops)?;
        *cached = Some(last);
        Ok(Prepared {
            ops,
            timers,
            codes,
            sealing: seals.into_pending(),
        })
    }

    /// Forgets the sequence number and message ids taken by prepared
    /// batches (one was not applied): they are read from the store again.
    pub fn forget_prepared(&self) {
        *self.seq.lock().expect("no panics while holding the lock") = None;
        self.dedup().forget();
        self.forget_slots();
    }

    pub fn flush(&self) -> Result<()> {
        self.kv.flush()
    }

    /// A small durable write (key `H`, `now`: the time of the probe), to
    /// learn whether the store takes writes again after a failure.
    pub fn probe(&self, now: chrono::DateTime<chrono::Utc>) -> Result<()> {
        let now = now.timestamp_micros().to_be_bytes().to_vec();
        self.kv.apply(vec![Op::Put(b"H".to_vec(), now)])?;
        self.kv.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().to_utc()
    }

    fn record(t: &str, user: &str, message: &str) -> Record {
        let mut r = Record::new(at(t), user, waymark_core::journal::Kind::Error);
        r.message = Some(message.into());
        r
    }

    fn messages(records: &[Record]) -> Vec<&str> {
        records
            .iter()
            .filter_map(|r| r.message.as_deref())
            .collect()
    }

    #[test]
    fn the_journal_reads_oldest_first_across_batches_grouped_by_user() {
        let store = Store::new(MemoryKv::default());
        let t = "2025-11-10T01:00:00Z";
        store
            .commit(Batch {
                journal: vec![record(t, "a", "0")],
                ..Batch::default()
            })
            .unwrap();
        store
            .commit(Batch {
                journal: vec![
                    record(t, "a", "1"),
                    record(t, "b", "x"),
                    record(t, "a", "2"),
                ],
                ..Batch::default()
            })
            .unwrap();
        store
            .commit(Batch {
                journal: vec![record(t, "a", "3")],
                ..Batch::default()
            })
            .unwrap();
        assert_eq!(
            messages(&store.journal("a", 100).unwrap()),
            ["0", "1", "2", "3"]
        );
        assert_eq!(messages(&store.journal("a", 2).unwrap()), ["0", "1"]);
        assert_eq!(messages(&store.journal("b", 100).unwrap()), ["x"]);
        assert_eq!(store.sequence().unwrap(), 5);
    }

    #[test]
    fn dedup_ids_older_than_the_window_are_pruned() {
        let store = Store::new(MemoryKv::default());
        let old = at("2025-11-01T00:00:00Z");
        let new = at("2025-11-09T00:00:00Z");
        store
            .commit(Batch {
                dedup: vec![("m1".into(), old), ("m2".into(), new)],
                ..Batch::default()
            })
            .unwrap();
        let store = Store::new(store.kv().clone());
        assert!(store.seen("m1").unwrap() && store.seen("m2").unwrap());
        assert_eq!(store.prune_dedup(at("2025-11-10T00:00:00Z")).unwrap(), 1);
        assert!(!store.seen("m1").unwrap());
        assert!(store.seen("m2").unwrap());
    }

    #[test]
    fn the_seen_filter_never_hides_an_id_the_store_has() {
        let kv = MemoryKv::default();
        let store = Store::new(kv.clone());
        let now = at("2025-11-09T00:00:00Z");
        let commit = |ids: &[&str]| {
            store
                .commit(Batch {
                    dedup: ids.iter().map(|id| (id.to_string(), now)).collect(),
                    ..Batch::default()
                })
                .unwrap()
        };
        commit(&["before"]);
        // Built from the keys on first use, then told of each new one.
        assert!(store.seen("before").unwrap());
        assert!(!store.seen("after").unwrap());
        commit(&["after"]);
        assert!(store.seen("after").unwrap());
        // Many more than it was sized for: rebuilt larger, still exact.
        let many: Vec<String> = (0..200_000).map(|i| format!("m{i}")).collect();
        for chunk in many.chunks(10_000) {
            commit(&chunk.iter().map(String::as_str).collect::<Vec<_>>());
        }
        assert!(many.iter().step_by(997).all(|id| store.seen(id).unwrap()));
        assert!(!store.seen("never").unwrap());
        // Another store over the same keys builds its own.
        let other = Store::new(kv);
        assert!(other.seen("before").unwrap() && other.seen("m199999").unwrap());
        // After pruning, forgotten ids are fresh again and kept ones seen
        // (the filter is rebuilt from the pruning scan).
        store
            .commit(Batch {
                dedup: vec![("recent".into(), at("2025-11-15T00:00:00Z"))],
                ..Batch::default()
            })
            .unwrap();
        let mut pruned = 0;
        while let n @ 1.. = store.prune_dedup(at("2025-11-17T00:00:00Z")).unwrap() {
            pruned += n;
        }
        assert_eq!(pruned, 200_002);
        assert!(!store.seen("before").unwrap() && !store.seen("m7").unwrap());
        assert!(store.seen("recent").unwrap());
    }
}
