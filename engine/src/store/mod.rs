//! Durable state behind a trait. A backend is an ordered key-value space
//! with atomic batches ([`Kv`]); [`Store`] lays out Waymark's data on it
//! once, for every backend:
//!
//! | key | value |
//! | --- | --- |
//! | `V` | the store's format version ([`FORMAT`]) |
//! | `K` | the store's secret (32 random bytes, made with the store): coupon codes are derived under it |
//! | `c/{coupon}/{code}` | the coupon-code index: who holds each code (empty once they are erased); a commit that would issue a code twice is refused |
//! | `u/{user}` | the user's state |
//! | `t/{due}/{user}` | a timer: the user's next wake-up (`due` big-endian, so a range scan yields timers in order, ties by user) |
//! | `w/{user}` | the user's timer due time (the per-user index: erasure and rescheduling are one lookup) |
//! | `m/{chunk}` | message ids of ingested events, one key per batch, until compacted into a run |
//! | `n/{run}/{hash}`, `N/{run}` | message ids in runs sorted by hash, in blocks keyed by the last hash each holds; the run's size and times (see [`dedup`]) |
//! | `j/{user}/{seq}` | the user's journal: the user's records of one batch, oldest first, under the sequence number of the first |
//! | `o/{seq}` | the outbox: sends not yet attempted, in order |
//! | `r/{next attempt}/{seq}` | sends that failed and wait to be tried again, by when (so sends to a channel that is down never hold up the rest) |
//! | `x/{seq}` | dead letters: sends given up on, with their last error |
//! | `P`, `C`, `Q`, `S`, `p/{journey}/{version}` | the deployment: current plan, its journeys' names, titles and versions (what reads answer from, decoding no plan), paused journeys, where it came from, and the journey versions kept: current ones and those that users are still in or have a goal open on |
//! | `i/{n}` | inputs deferred by a batch that used up its step budget, in arrival order (`n` big-endian), until a later batch runs them |
//! | `k/{journey}/{version}` | journey stats per version |
//! | `g` | state shared by all users |
//! | `s` | the last sequence number used (one per journal record) |
//!
//! `{user}` is the user id as [`user_part`] writes it, never the bare id:
//! the id's own bytes may hold anything, `/` included, so a bare id would
//! make one user's key range (`j/alice/…`) hold another's (`j/alice/x/…`).
//! Written this way no user's keys fall in another's range, and ids sort as
//! they compare.
//!
//! Stores written before journal records were grouped hold one record per
//! `j/` key; stores written before message ids were kept in chunks and runs
//! hold a `d/{message id}` key per id (valued with the time it was seen)
//! and perhaps a `D/{at}/{message id}` time index of them. All are still
//! read, and the dedup keys pruned; such stores are of format 1, though,
//! which [`Store::open`] refuses, so only a store handed to [`Store::new`]
//! unchecked can hold them.
//!
//! Values are MessagePack with field names (self-describing), so stored
//! structs can gain fields. Everything one input batch changes is written
//! in one atomic batch; [`Store::flush`] makes it durable (group commit).

mod dedup;
mod memory;
mod seen_filter;
mod sled_kv;

pub use memory::MemoryKv;
pub use sled_kv::SledKv;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::HashMap;
use std::sync::Mutex;
use waymark_core::journal::Record;
use waymark_core::machine::Globals;
use waymark_core::model::UserState;

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
    /// Makes every applied batch durable.
    fn flush(&self) -> Result<()>;
    /// How many keys are in `[from, to)`.
    fn count(&self, from: &[u8], to: &[u8]) -> Result<usize> {
        Ok(self.range(from, to, usize::MAX)?.len())
    }
}

/// An outbox entry: one send for an adapter to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub seq: u64,
    pub record: Record,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    pub last_error: Option<String>,
    /// Put back from the dead letters by a replay: its delivery is
    /// journaled (`delivered`), as its giving up was (`failed`).
    #[serde(default)]
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
    record: &'a Record,
    attempts: u32,
    next_attempt: DateTime<Utc>,
    last_error: Option<&'a str>,
    replayed: bool,
}

/// A journey of the current deployment, as reads list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DeployedJourney {
    pub name: String,
    pub title: Option<String>,
    pub version: String,
}

/// Everything one batch of inputs changed, written together.
#[derive(Debug, Default)]
pub struct Batch {
    /// Users whose state changed, with the timer they had when loaded.
    pub users: Vec<(UserState, Option<DateTime<Utc>>)>,
    pub dedup: Vec<(String, DateTime<Utc>)>,
    pub journal: Vec<Record>,
    /// Shared state to write, if it changed.
    pub globals: Option<Globals>,
    /// Sends leaving the outbox with this batch (its journal tells how).
    pub settled: Vec<Settled>,
    /// Inputs this batch leaves for a later one, by their number.
    pub deferred: Vec<(u64, waymark_core::model::Input)>,
    /// Deferred inputs (by number) this batch ran.
    pub resumed: Vec<u64>,
    /// Inputs dropped as duplicates of a message id already taken.
    pub duplicates: usize,
}

pub struct Store<K: Kv> {
    kv: K,
    /// The last sequence number used, once read: this store is the only
    /// writer of `s`, so it need not be read again for every batch.
    seq: Mutex<Option<u64>>,
    /// Journey stats as last prepared, once read (this store is their only
    /// writer too): a batch prepared while the one before it is still
    /// being applied must build on that one's stats.
    stats: Mutex<HashMap<(String, String), waymark_core::stats::VersionStats>>,
    /// The message ids seen within the dedup window (see [`dedup`]).
    dedup: Mutex<dedup::Seen>,
    /// The most bytes a user's state may take, and the users whose state
    /// was past it when last read or written (see [`Store::oversize`]).
    max_user_bytes: std::sync::atomic::AtomicUsize,
    oversize: Mutex<std::collections::HashSet<String>>,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    encode_sized(value, 128)
}

/// Encodes into a buffer of `capacity` bytes, sparing the reallocations of
/// growing from empty for large values.
fn encode_sized<T: Serialize>(value: &T, capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(capacity);
    rmp_serde::encode::write_named(&mut buf, value).expect("engine state serializes");
    buf
}

/// Below this many users a batch's states are encoded on the calling thread.
const PARALLEL_ENCODE: usize = 64;

/// Encodes the users' states, in order. Large batches are split across
/// the machine's cores: encoding is most of a commit's own work, and each
/// user's is independent (the output does not depend on the split).
fn encode_users(users: &[(UserState, Option<DateTime<Utc>>)]) -> Vec<Vec<u8>> {
    let encode_all = |part: &[(UserState, Option<DateTime<Utc>>)]| -> Vec<Vec<u8>> {
        // Room for most states at once.
        part.iter().map(|(u, _)| encode_sized(u, 4096)).collect()
    };
    // Asked once: the answer reads cgroup files.
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if users.len() < PARALLEL_ENCODE || cores < 2 {
        return encode_all(users);
    }
    let chunk = users
        .len()
        .div_ceil(cores.min(users.len() / (PARALLEL_ENCODE / 2)));
    std::thread::scope(|scope| {
        let mut parts = users.chunks(chunk);
        let first = parts.next().unwrap_or_default();
        let others: Vec<_> = parts.map(|p| scope.spawn(move || encode_all(p))).collect();
        let mut out = encode_all(first);
        for handle in others {
            match handle.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// A journal value: the records of one batch, or a single record (as
/// stores written before grouping hold them).
fn decode_records(key: &[u8], bytes: &[u8]) -> Result<Vec<Record>> {
    match rmp_serde::from_slice::<Vec<Record>>(bytes) {
        Ok(records) => Ok(records),
        Err(_) => decode(key, bytes).map(|r| vec![r]),
    }
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        message: e.to_string(),
    })
}

/// The layout of keys this store writes, kept under `V`. Format 1 (stores
/// without `V`) wrote bare user ids in keys; format 2 had no deferred
/// inputs (`i/`), no store secret (`K`) and no coupon-code index (`c/`).
pub const FORMAT: u32 = 3;

/// A user id as every key that holds one writes it: the id's bytes with
/// each `0x00` written as `0x00 0xff`, then `0x00 0x01` to end it.
///
/// Every per-user key range is exact because of it: the end marker occurs
/// nowhere else in the part, so no user's part starts with another's, and
/// a scan of `j/{user}/` (or any other prefix ending with a user's part)
/// holds that user's keys only. Bare ids did not: `alice` was a prefix of
/// `alice/x`, and reading or erasing one reached the other's journal.
/// Ids still sort as they compare (a shorter id's `0x00 0x01` sorts before
/// any byte that could follow it in a longer one), so pages of users and
/// timers due at the same time stay in id order.
fn user_part(id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(id.len() + 2);
    for &b in id.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 1]);
    out
}

/// The id in a user part written by [`user_part`] that starts `bytes`, and
/// the rest of `bytes` after it; `None` if `bytes` does not start with one.
fn split_user_part(bytes: &[u8]) -> Option<(String, &[u8])> {
    let mut id = Vec::with_capacity(bytes.len());
    let mut i = 0;
    loop {
        match (*bytes.get(i)?, bytes.get(i + 1)) {
            (0, Some(0xff)) => {
                id.push(0);
                i += 2;
            }
            (0, Some(1)) => break,
            (0, _) => return None,
            (b, _) => {
                id.push(b);
                i += 1;
            }
        }
    }
    Some((String::from_utf8(id).ok()?, &bytes[i + 2..]))
}

fn key(prefix: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    for p in parts {
        k.push(b'/');
        k.extend_from_slice(p);
    }
    k
}

/// Timestamps in keys: big-endian microseconds, offset so that order holds.
/// Sub-microsecond times round up, so a timer never fires before its time.
fn time_key(t: DateTime<Utc>) -> [u8; 8] {
    let micros = t.timestamp_micros() + i64::from(!t.timestamp_subsec_nanos().is_multiple_of(1000));
    ((micros as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from_key(bytes: &[u8]) -> Option<DateTime<Utc>> {
    let raw = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?) ^ (1 << 63);
    DateTime::from_timestamp_micros(raw as i64)
}

/// How many outbox keys one look for ready sends reads at most.
const OUTBOX_SCAN: usize = 20_000;

/// The smallest key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.push(0xff);
    end
}

/// How long message ids are kept for dedup, at least.
pub const DEDUP_DAYS: i64 = 7;

impl<K: Kv> Store<K> {
    pub fn new(kv: K) -> Store<K> {
        Store {
            kv,
            seq: Mutex::new(None),
            stats: Mutex::new(HashMap::new()),
            dedup: Mutex::new(dedup::Seen::default()),
            max_user_bytes: std::sync::atomic::AtomicUsize::new(
                crate::ingest::Limits::default().user_state,
            ),
            oversize: Mutex::new(Default::default()),
        }
    }

    /// Sets the most bytes a user's stored state may take (`limits.user_state_bytes`).
    pub fn set_max_user_bytes(&self, bytes: usize) {
        self.max_user_bytes
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// The size of `user`'s state if it was past the limit when last read
    /// or written: their events are then refused with an `error` record
    /// rather than making every later event of theirs slower.
    pub fn oversize(&self, user: &str) -> bool {
        self.oversize
            .lock()
            .expect("no panics while holding the lock")
            .contains(user)
    }

    fn note_size(&self, user: &str, bytes: usize) {
        let over = bytes
            > self
                .max_user_bytes
                .load(std::sync::atomic::Ordering::Relaxed);
        let mut oversize = self
            .oversize
            .lock()
            .expect("no panics while holding the lock");
        if over {
            if !oversize.contains(user) {
                oversize.insert(user.to_string());
            }
        } else if !oversize.is_empty() {
            oversize.remove(user);
        }
    }

    /// A store over `kv` once its format is known to be [`FORMAT`]: an
    /// empty `kv` is marked with it, and one in any other format (or in
    /// format 1, which had no mark) is refused with [`StoreError::Format`].
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
            None => {
                return Err(StoreError::Format {
                    found: 1,
                    expected: FORMAT,
                });
            }
        }
        Ok(Store::new(kv))
    }

    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// The secret coupon codes are derived under, made with the store.
    pub fn coupon_secret(&self) -> Result<waymark_core::machine::CouponSecret> {
        let bytes = self.kv.get(b"K")?.ok_or_else(|| StoreError::Corrupt {
            key: "K".into(),
            message: "the store's secret is missing".into(),
        })?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(waymark_core::machine::CouponSecret)
            .map_err(|_| StoreError::Corrupt {
                key: "K".into(),
                message: format!("the secret is 32 bytes, found {}", bytes.len()),
            })
    }

    /// Who holds a coupon code: `Some("")` once its holder was erased.
    pub fn coupon_holder(&self, coupon: &str, code: &str) -> Result<Option<String>> {
        let k = key("c", &[&user_part(coupon), code.as_bytes()]);
        Ok(self
            .kv
            .get(&k)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn user(&self, id: &str) -> Result<Option<UserState>> {
        let k = key("u", &[&user_part(id)]);
        let Some(bytes) = self.kv.get(&k)? else {
            return Ok(None);
        };
        self.note_size(id, bytes.len());
        decode(&k, &bytes).map(Some)
    }

    /// The user's timer as its index (`w/`) holds it, if they have one.
    pub fn timer_of(&self, id: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self
            .kv
            .get(&key("w", &[&user_part(id)]))?
            .and_then(|due| time_from_key(&due)))
    }

    pub fn globals(&self) -> Result<Globals> {
        Ok(self
            .kv
            .get(b"g")?
            .map(|b| decode(b"g", &b))
            .transpose()?
            .unwrap_or_default())
    }

    /// Whether a message id was seen within the dedup window. Nearly
    /// every fresh id is answered from memory. What is in memory follows
    /// what this `Store` writes: ask the store that writes the ids.
    pub fn seen(&self, message_id: &str) -> Result<bool> {
        self.dedup().contains(&self.kv, message_id)
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

    /// Compacts the message ids of recent batches and merges their runs
    /// (see [`dedup`]), each step one atomic write; it forgets none. Call
    /// it only when every prepared batch has been applied.
    pub fn tidy_dedup(&self) -> Result<()> {
        self.dedup().tidy(&self.kv)
    }

    fn dedup(&self) -> std::sync::MutexGuard<'_, dedup::Seen> {
        self.dedup.lock().expect("no panics while holding the lock")
    }

    fn sequence(&self) -> Result<u64> {
        Ok(self
            .kv
            .get(b"s")?
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Writes a batch atomically: states, timers, message ids, journal and outbox.
    pub fn commit(&self, batch: Batch) -> Result<()> {
        self.commit_ref(&batch)
    }

    /// [`Store::commit`] by reference: the caller keeps the batch (and its
    /// journal, to return) without cloning it.
    pub fn commit_ref(&self, batch: &Batch) -> Result<()> {
        let ops = self.prepare(batch)?;
        self.kv.apply(ops).inspect_err(|_| self.forget_prepared())
    }

    /// The writes of a batch, to apply as one: [`Store::commit_ref`] is
    /// this then [`Kv::apply`]. Sequence numbers, stats and message ids
    /// are taken as if the batch were applied; if it is not, call
    /// [`Store::forget_prepared`] before preparing another.
    pub fn prepare(&self, batch: &Batch) -> Result<Vec<Op>> {
        let mut cached = self.seq.lock().expect("no panics while holding the lock");
        let first = match *cached {
            Some(seq) => seq,
            None => self.sequence()?,
        };
        let mut ops =
            Vec::with_capacity(2 * batch.users.len() + batch.dedup.len() + batch.journal.len() + 2);
        let states = encode_users(&batch.users);
        for ((user, old_wake), state) in batch.users.iter().zip(states) {
            let id = &user_part(&user.id)[..];
            self.note_size(&user.id, state.len());
            ops.push(Op::Put(key("u", &[id]), state));
            let new_wake = user.next_wake();
            if old_wake != &new_wake {
                if let Some(old) = old_wake {
                    ops.push(Op::Delete(key("t", &[&time_key(*old), id])));
                }
                match new_wake {
                    Some(due) => {
                        ops.push(Op::Put(key("t", &[&time_key(due), id]), Vec::new()));
                        ops.push(Op::Put(key("w", &[id]), time_key(due).to_vec()));
                    }
                    None => ops.push(Op::Delete(key("w", &[id]))),
                }
            }
        }
        self.dedup().record(&self.kv, &batch.dedup, &mut ops)?;
        // The coupon-code index: a code is issued once per coupon, ever.
        let mut issued = std::collections::HashSet::new();
        for r in &batch.journal {
            if let (waymark_core::journal::Kind::Coupon, Some(coupon), Some(code)) =
                (r.kind, &r.coupon, &r.code)
            {
                let k = key("c", &[&user_part(coupon), code.as_bytes()]);
                if !issued.insert(k.clone()) || self.kv.get(&k)?.is_some() {
                    return Err(StoreError::DuplicateCoupon {
                        coupon: coupon.clone(),
                        code: code.clone(),
                    });
                }
                ops.push(Op::Put(k, r.user.as_bytes().to_vec()));
            }
        }
        // One journal key per user and batch, under the sequence number of
        // the user's first record; every record still takes a number.
        let mut groups: Vec<(u64, Vec<&Record>)> = Vec::new();
        let mut group_of: HashMap<&str, usize> = HashMap::new();
        let mut seq = first;
        for record in &batch.journal {
            seq += 1;
            let g = *group_of.entry(record.user.as_str()).or_insert_with(|| {
                groups.push((seq, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(record);
            if record.kind == waymark_core::journal::Kind::Send {
                let entry = OutboxEntryRef {
                    seq,
                    record,
                    attempts: 0,
                    next_attempt: record.at,
                    last_error: None,
                    replayed: false,
                };
                ops.push(Op::Put(
                    key("o", &[&seq.to_be_bytes()]),
                    encode_sized(&entry, 512),
                ));
            }
        }
        // Journey stats, per version, folded from this batch's records.
        let mut touched: std::collections::BTreeMap<
            (String, String),
            waymark_core::stats::VersionStats,
        > = Default::default();
        for record in &batch.journal {
            let (Some(journey), Some(version)) = (&record.journey, &record.version) else {
                continue;
            };
            let k = (journey.clone(), version.clone());
            if !touched.contains_key(&k) {
                let known = self
                    .stats
                    .lock()
                    .expect("no panics while holding the lock")
                    .get(&k)
                    .cloned();
                let stored = match known {
                    Some(stats) => stats,
                    None => self.stats(journey, version)?,
                };
                touched.insert(k.clone(), stored);
            }
            touched.get_mut(&k).expect("just inserted").add(record);
        }
        for ((journey, version), stats) in &touched {
            ops.push(Op::Put(
                key("k", &[journey.as_bytes(), version.as_bytes()]),
                encode(stats),
            ));
        }
        self.stats
            .lock()
            .expect("no panics while holding the lock")
            .extend(touched);
        for (at, records) in &groups {
            ops.push(Op::Put(
                key("j", &[&user_part(&records[0].user), &at.to_be_bytes()]),
                encode_sized(records, 256 * records.len()),
            ));
        }
        if seq != first {
            ops.push(Op::Put(b"s".to_vec(), seq.to_be_bytes().to_vec()));
        }
        if let Some(globals) = &batch.globals {
            ops.push(Op::Put(b"g".to_vec(), encode(globals)));
        }
        for settled in &batch.settled {
            match settled {
                Settled::DeadLettered { was, entry } => {
                    ops.push(Op::Delete(Self::outbox_key(was)));
                    ops.push(Op::Put(
                        key("x", &[&entry.seq.to_be_bytes()]),
                        encode(entry),
                    ));
                }
                Settled::Delivered { was, .. } => ops.push(Op::Delete(Self::outbox_key(was))),
            }
        }
        for n in &batch.resumed {
            ops.push(Op::Delete(key("i", &[&n.to_be_bytes()])));
        }
        for (n, input) in &batch.deferred {
            ops.push(Op::Put(key("i", &[&n.to_be_bytes()]), encode(input)));
        }
        *cached = Some(seq);
        Ok(ops)
    }

    /// Forgets the sequence number, stats and message ids taken by
    /// prepared batches (one was not applied): they are read from the
    /// store again.
    pub fn forget_prepared(&self) {
        *self.seq.lock().expect("no panics while holding the lock") = None;
        self.dedup().forget();
        self.stats
            .lock()
            .expect("no panics while holding the lock")
            .clear();
    }

    pub fn flush(&self) -> Result<()> {
        self.kv.flush()
    }

    /// A small durable write (key `H`, the time of the probe), to learn
    /// whether the store takes writes again after a failure.
    pub fn probe(&self) -> Result<()> {
        let now = chrono::Utc::now().timestamp_micros().to_be_bytes().to_vec();
        self.kv.apply(vec![Op::Put(b"H".to_vec(), now)])?;
        self.kv.flush()
    }

    /// Users with a timer due at or before `until`, earliest first (ties by user).
    pub fn due(&self, until: DateTime<Utc>, limit: usize) -> Result<Vec<(DateTime<Utc>, String)>> {
        let from = key("t", &[]);
        let mut to = key("t", &[&time_key(until)]);
        to.push(0xff);
        let mut out = Vec::new();
        for (k, _) in self.kv.range(&from, &to, limit)? {
            let rest = &k[2..];
            let user = rest.get(9..).and_then(split_user_part);
            if let (Some(due), Some((user, _))) = (time_from_key(rest), user) {
                out.push((due, user));
            }
        }
        Ok(out)
    }

    /// The earliest timer, if any.
    pub fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let from = key("t", &[]);
        Ok(self
            .kv
            .range(&from, &prefix_end(b"t/"), 1)?
            .first()
            .and_then(|(k, _)| time_from_key(&k[2..])))
    }

    /// A page of user ids after `after`, in order: audience scans never hold every user.
    pub fn users_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let from = match after {
            Some(a) => {
                let mut k = key("u", &[&user_part(a)]);
                k.push(0);
                k
            }
            None => key("u", &[]),
        };
        Ok(self
            .kv
            .range(&from, &prefix_end(b"u/"), limit)?
            .into_iter()
            .filter_map(|(k, _)| split_user_part(&k[2..]).map(|(id, _)| id))
            .collect())
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
            out.extend(decode_records(&k, &v)?);
        }
        out.truncate(limit);
        Ok(out)
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
                    let entry: OutboxEntry = decode(&k, &v)?;
                    if !busy(entry.seq) && out.len() < limit {
                        out.push(entry);
                    }
                }
                from = next;
            }
        }
        Ok(out)
    }

    /// The inputs deferred by batches that used up their step budget, in
    /// the order they arrived, with their numbers.
    pub fn deferred_inputs(&self) -> Result<Vec<(u64, waymark_core::model::Input)>> {
        self.kv
            .range(b"i/", &prefix_end(b"i/"), usize::MAX)?
            .into_iter()
            .map(|(k, v)| {
                let n = k
                    .get(2..10)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| StoreError::Corrupt {
                        key: String::from_utf8_lossy(&k).into_owned(),
                        message: "a deferred input's key ends with 8 bytes".into(),
                    })?;
                Ok((n, decode(&k, &v)?))
            })
            .collect()
    }

    /// Forgets deferred inputs (an erased user's), by number.
    pub fn drop_deferred(&self, numbers: &[u64]) -> Result<()> {
        if numbers.is_empty() {
            return Ok(());
        }
        self.kv.apply(
            numbers
                .iter()
                .map(|n| Op::Delete(key("i", &[&n.to_be_bytes()])))
                .collect(),
        )?;
        self.kv.flush()
    }

    /// Stores the deployment: the current plan, the list of current
    /// journeys (what reads answer from), paused journeys, and the journey
    /// versions it keeps (so that instances finish on their version): new
    /// ones are written, and stored ones it no longer keeps are deleted.
    pub fn save_deployment(&self, d: &waymark_core::deployment::Deployment) -> Result<()> {
        let current: Vec<DeployedJourney> = d
            .plan
            .journeys
            .iter()
            .map(|j| DeployedJourney {
                name: j.name.clone(),
                title: j.title.clone(),
                version: j.version.clone(),
            })
            .collect();
        let mut ops = vec![
            Op::Put(b"P".to_vec(), encode(d.plan.as_ref())),
            Op::Put(b"C".to_vec(), encode(&current)),
            Op::Put(b"Q".to_vec(), encode(&d.paused)),
            Op::Put(b"S".to_vec(), encode(&d.source)),
        ];
        let mut stored: std::collections::HashSet<Vec<u8>> = self
            .kv
            .range(b"p/", &prefix_end(b"p/"), usize::MAX)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for v in d.versions() {
            let k = key("p", &[v.name.as_bytes(), v.version.as_bytes()]);
            // A version's plan never changes: one stored is not rewritten.
            if !stored.remove(&k) {
                ops.push(Op::Put(k, encode(v)));
            }
        }
        ops.extend(stored.into_iter().map(Op::Delete));
        self.kv.apply(ops)?;
        self.kv.flush()
    }

    /// The journeys of the current deployment, read without decoding any
    /// plan (empty before the first deploy).
    pub fn deployed_journeys(&self) -> Result<Vec<DeployedJourney>> {
        match self.kv.get(b"C")? {
            Some(bytes) => decode(b"C", &bytes),
            None => Ok(Vec::new()),
        }
    }

    /// The paused journeys.
    pub fn paused_journeys(&self) -> Result<std::collections::BTreeSet<String>> {
        match self.kv.get(b"Q")? {
            Some(bytes) => decode(b"Q", &bytes),
            None => Ok(Default::default()),
        }
    }

    /// The journey versions stored, as (journey, version), from their keys
    /// alone.
    pub fn stored_versions(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .kv
            .range(b"p/", &prefix_end(b"p/"), usize::MAX)?
            .into_iter()
            .filter_map(|(k, _)| {
                let text = String::from_utf8_lossy(&k[2..]).into_owned();
                let (name, version) = text.rsplit_once('/')?;
                Some((name.to_string(), version.to_string()))
            })
            .collect())
    }

    /// The stored deployment, if one was saved.
    pub fn load_deployment(&self) -> Result<Option<waymark_core::deployment::Deployment>> {
        let Some(bytes) = self.kv.get(b"P")? else {
            return Ok(None);
        };
        let plan: waymark_dsl::plan::Plan = decode(b"P", &bytes)?;
        let mut d = waymark_core::deployment::Deployment::new(plan);
        if let Some(bytes) = self.kv.get(b"Q")? {
            d.paused = decode(b"Q", &bytes)?;
        }
        if let Some(bytes) = self.kv.get(b"S")? {
            d.source = decode(b"S", &bytes)?;
        }
        for (k, v) in self.kv.range(b"p/", &prefix_end(b"p/"), usize::MAX)? {
            d.keep_version(decode(&k, &v)?);
        }
        Ok(Some(d))
    }

    /// A journey version's stats.
    pub fn stats(&self, journey: &str, version: &str) -> Result<waymark_core::stats::VersionStats> {
        let k = key("k", &[journey.as_bytes(), version.as_bytes()]);
        Ok(self
            .kv
            .get(&k)?
            .map(|b| decode(&k, &b))
            .transpose()?
            .unwrap_or_default())
    }

    /// Every version's stats of a journey, by version.
    pub fn journey_stats(
        &self,
        journey: &str,
    ) -> Result<Vec<(String, waymark_core::stats::VersionStats)>> {
        let prefix = key("k", &[journey.as_bytes(), b""]);
        self.kv
            .range(&prefix, &prefix_end(&prefix), usize::MAX)?
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                    decode(&k, &v)?,
                ))
            })
            .collect()
    }

    /// How many sends wait for delivery and how many were given up on,
    /// counted from keys without decoding entries (for /metrics).
    pub fn outbox_depths(&self) -> Result<(usize, usize)> {
        let count = |prefix: &[u8]| -> Result<usize> {
            Ok(self
                .kv
                .range(prefix, &prefix_end(prefix), usize::MAX)?
                .len())
        };
        Ok((count(b"o/")? + count(b"r/")?, count(b"x/")?))
    }

    /// Where an entry lives in the outbox: `o/` until its first failure,
    /// then `r/` under its next attempt time.
    fn outbox_key(entry: &OutboxEntry) -> Vec<u8> {
        let seq = entry.seq.to_be_bytes();
        if entry.attempts == 0 {
            key("o", &[&seq])
        } else {
            key("r", &[&time_key(entry.next_attempt), &seq])
        }
    }

    /// Whether the outbox still holds `entry` as it was read (after a
    /// store reopened from disk, its sequence number may be another's).
    pub fn outbox_holds(&self, entry: &OutboxEntry) -> Result<bool> {
        let k = Self::outbox_key(entry);
        match self.kv.get(&k)? {
            Some(bytes) => Ok(decode::<OutboxEntry>(&k, &bytes)? == *entry),
            None => Ok(false),
        }
    }

    /// A delivered send leaves the outbox. `entry` is as it was read.
    pub fn outbox_delivered(&self, entry: &OutboxEntry) -> Result<()> {
        self.kv.apply(vec![Op::Delete(Self::outbox_key(entry))])
    }

    /// A failed attempt: `was` is the entry as it was read, `entry` with its
    /// attempts counted and its next attempt time; it moves to that time.
    pub fn outbox_retry(&self, was: &OutboxEntry, entry: &OutboxEntry) -> Result<()> {
        self.kv.apply(vec![
            Op::Delete(Self::outbox_key(was)),
            Op::Put(Self::outbox_key(entry), encode(entry)),
        ])
    }

    /// Gives up on an entry (`was` as it was read): it moves to the dead
    /// letters, with its last error.
    pub fn dead_letter(&self, was: &OutboxEntry, entry: &OutboxEntry) -> Result<()> {
        self.kv.apply(vec![
            Op::Delete(Self::outbox_key(was)),
            Op::Put(key("x", &[&entry.seq.to_be_bytes()]), encode(entry)),
        ])
    }

    pub fn dead_letters(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.kv
            .range(b"x/", &prefix_end(b"x/"), limit)?
            .into_iter()
            .map(|(k, v)| decode(&k, &v))
            .collect()
    }

    /// Dead letters by channel (for `/metrics`).
    pub fn dead_letters_by_channel(&self) -> Result<std::collections::BTreeMap<String, usize>> {
        let mut by = std::collections::BTreeMap::new();
        for entry in self.dead_letters(usize::MAX)? {
            *by.entry(entry.record.channel.unwrap_or_default())
                .or_insert(0) += 1;
        }
        Ok(by)
    }

    /// Users with a timer pending.
    pub fn pending_timers(&self) -> Result<usize> {
        self.kv.count(b"w/", &prefix_end(b"w/"))
    }

    /// Puts a dead letter back in the outbox for another round of attempts.
    pub fn replay(&self, seq: u64, now: DateTime<Utc>) -> Result<bool> {
        let k = key("x", &[&seq.to_be_bytes()]);
        let Some(bytes) = self.kv.get(&k)? else {
            return Ok(false);
        };
        let mut entry: OutboxEntry = decode(&k, &bytes)?;
        entry.attempts = 0;
        entry.replayed = true;
        entry.next_attempt = now;
        self.kv.apply(vec![
            Op::Delete(k),
            Op::Put(key("o", &[&seq.to_be_bytes()]), encode(&entry)),
        ])?;
        Ok(true)
    }

    /// Erases a user (PIPL): state, timer, journal, pending sends and dead
    /// letters, in one batch. Returns how many keys went.
    pub fn erase_user(&self, id: &str) -> Result<usize> {
        let uid = &user_part(id)[..];
        let mut ops = vec![Op::Delete(key("u", &[uid])), Op::Delete(key("w", &[uid]))];
        if let Some(due) = self.kv.get(&key("w", &[uid]))? {
            ops.push(Op::Delete(key("t", &[&due, uid])));
        }
        // Their codes stay taken, held by nobody.
        if let Some(state) = self.user(id)? {
            for c in &state.coupons {
                ops.push(Op::Put(
                    key("c", &[&user_part(&c.id), c.code.as_bytes()]),
                    Vec::new(),
                ));
            }
        }
        let journal = key("j", &[uid, b""]);
        for (k, _) in self.kv.range(&journal, &prefix_end(&journal), usize::MAX)? {
            ops.push(Op::Delete(k));
        }
        for prefix in [&b"o/"[..], &b"r/"[..], &b"x/"[..]] {
            for (k, v) in self.kv.range(prefix, &prefix_end(prefix), usize::MAX)? {
                let entry: OutboxEntry = decode(&k, &v)?;
                if entry.record.user == id {
                    ops.push(Op::Delete(k));
                }
            }
        }
        let n = ops.len();
        self.kv.apply(ops)?;
        self.kv.flush()?;
        Ok(n)
    }

    /// Forgets message ids seen more than [`DEDUP_DAYS`] before `now`
    /// (the dedup window); how many. Ids are kept in runs that are dropped
    /// or rewritten as a whole, so an id may be kept somewhat longer than
    /// the window, never shorter.
    pub fn prune_dedup(&self, now: DateTime<Utc>) -> Result<u64> {
        self.dedup().prune(&self.kv, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                ..Batch::default()
            })
            .unwrap();
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

    proptest::proptest! {
        #[test]
        fn user_parts_read_back_sort_like_ids_and_none_starts_another(
            a in "[a\\x00\\x01/\u{ff}\u{10ffff}]{0,6}",
            b in "[a\\x00\\x01/\u{ff}\u{10ffff}]{0,6}",
        ) {
            let (pa, pb) = (user_part(&a), user_part(&b));
            let rest = [pa.as_slice(), b"/tail"].concat();
            proptest::prop_assert_eq!(split_user_part(&rest), Some((a.clone(), &b"/tail"[..])));
            proptest::prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
            if a != b {
                proptest::prop_assert!(!pb.starts_with(&pa) && !pa.starts_with(&pb));
            }
        }
    }

    #[test]
    fn a_timer_key_is_never_earlier_than_its_time() {
        let t = DateTime::parse_from_rfc3339("2025-11-10T12:00:00.000000500Z")
            .unwrap()
            .to_utc();
        assert!(time_from_key(&time_key(t)).unwrap() >= t);
    }

    #[test]
    fn time_keys_sort_like_times_including_before_1970() {
        let times = [
            "1960-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2025-11-10T12:00:00Z",
            "2025-11-10T12:00:00.000001Z",
        ];
        let keys: Vec<[u8; 8]> = times
            .iter()
            .map(|t| time_key(DateTime::parse_from_rfc3339(t).unwrap().to_utc()))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (t, k) in times.iter().zip(&keys) {
            assert_eq!(
                time_from_key(k).unwrap(),
                DateTime::parse_from_rfc3339(t).unwrap().to_utc()
            );
        }
    }

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
    fn the_journal_reads_oldest_first_across_grouped_and_single_record_keys() {
        let store = Store::new(MemoryKv::default());
        // A record as stores written before grouping hold it.
        let legacy = record("2025-11-10T00:00:00Z", "a", "0");
        store
            .kv()
            .apply(vec![
                Op::Put(
                    key("j", &[&user_part("a"), &1u64.to_be_bytes()]),
                    encode(&legacy),
                ),
                Op::Put(b"s".to_vec(), 1u64.to_be_bytes().to_vec()),
            ])
            .unwrap();
        let t = "2025-11-10T01:00:00Z";
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
    fn dedup_keys_older_than_the_window_are_pruned() {
        let store = Store::new(MemoryKv::default());
        let old = at("2025-11-01T00:00:00Z");
        let new = at("2025-11-09T00:00:00Z");
        store
            .commit(Batch {
                dedup: vec![("m1".into(), old), ("m2".into(), new)],
                ..Batch::default()
            })
            .unwrap();
        // Dedup keys of stores written before chunks and runs, and the
        // time index of yet older ones.
        store
            .kv()
            .apply(vec![
                Op::Put(key("d", &[b"o1"]), time_key(old).to_vec()),
                Op::Put(key("d", &[b"o2"]), time_key(new).to_vec()),
                Op::Put(key("D", &[&time_key(old), b"o1"]), Vec::new()),
            ])
            .unwrap();
        let store = Store::new(store.kv().clone());
        assert!(store.seen("o1").unwrap() && store.seen("o2").unwrap());
        assert_eq!(store.prune_dedup(at("2025-11-10T00:00:00Z")).unwrap(), 2);
        assert!(!store.seen("m1").unwrap() && !store.seen("o1").unwrap());
        assert!(store.seen("m2").unwrap() && store.seen("o2").unwrap());
        assert!(store.kv().range(b"D/", b"D0", 10).unwrap().is_empty());
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
