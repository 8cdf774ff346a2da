//! Erasure that erases (PIPL art. 47) by crypto-shredding. Everything the
//! store keeps of one person — their state (`u/`), journal (`j/`), consent
//! ledger entries (`y/`), sends in the outbox and among the dead letters
//! (`o/`, `r/`, `x/`) and deferred inputs (`i/`) — is sealed with
//! AES-256-GCM-SIV under a key of their own. The keys live outside the
//! key-value space, in a table the backend can truly forget: a file of
//! 32-byte slots beside sled's files, overwritten with zeros in place when
//! the person is erased. sled keeps old versions of values in its log
//! until it reuses the space, so a deleted nickname could be read back
//! from its files; sealed, what lingers there is ciphertext whose key is
//! gone.
//!
//! A user's slot is allocated, with a fresh random key, the first time
//! something of theirs is written (`Y` is the next free slot). Their
//! state's sealed value says the slot; `Y/{user}` says it only for a user
//! whose state does not (one with records or deferred inputs and no state
//! yet, or one merged into another profile, whose state is gone): a key
//! per user beside their state cost sled memory for every page of them,
//! and a restarted daemon with 10M users held ~700 MiB of it, twice what
//! their states alone take. A sealed value says its slot itself: `1`, the slot
//! (8 bytes big-endian), a 12-byte nonce, then the ciphertext and
//! its tag; the key it is under is additional data, so a value moved to
//! another key does not open. A user's state, once read or written, keeps
//! its slot and key with it ([`SealedUnder`]), so that the next batch
//! writing them looks up neither; an erasure (through any store over
//! the backend: the key table counts them), or a batch that failed after
//! taking slots, makes every key so kept stale (`key_epoch`).
//! Erasing writes `Z/{slot}` for each slot of the person in the batch
//! that deletes their keys, then zeroes the slots and deletes the
//! markers; a crash in between is finished at the next open.

use super::keys::{key, prefix_end, user_part};
use super::{Kv, Op, Result, Store, StoreError};
use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, Nonce, UnboundKey};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use waymark_core::model::{SealedUnder, StoreKey};

/// The first byte of a sealed value.
const SEALED: u8 = 1;
const HEADER: usize = 1 + 8 + 12;
/// The length of the tag after a sealed value's ciphertext.
const TAG: usize = 16;

/// Where per-user keys are kept: slots that can be overwritten for good.
pub trait KeyTable: Send + Sync + std::fmt::Debug {
    /// The key in `slot`; `None` once it was destroyed (or never written).
    fn read(&self, slot: u64) -> std::io::Result<Option<[u8; 32]>>;
    /// The keys in the slots from `first` on, one per element of `keys`
    /// (zeros for a slot destroyed or never written).
    fn read_many(&self, first: u64, keys: &mut [[u8; 32]]) -> std::io::Result<()> {
        for (slot, key) in (first..).zip(keys.iter_mut()) {
            *key = self.read(slot)?.unwrap_or([0; 32]);
        }
        Ok(())
    }
    /// Writes keys into their slots, durably, before anything sealed with
    /// them is written.
    fn write(&self, keys: &[(u64, [u8; 32])]) -> std::io::Result<()>;
    /// Overwrites slots with zeros, durably.
    fn destroy(&self, slots: &[u64]) -> std::io::Result<()>;
    /// How many times keys were destroyed here. Every store over the
    /// backend shares the table, and each remembers keys it read: one
    /// forgets them when this changes, so that a key erased through
    /// another store (the writer's, say, while the daemon's readers are
    /// a store of their own) is not kept usable in its memory.
    fn destroyed(&self) -> u64;
}

/// Keys in memory, for stores that are (tests, benchmarks).
#[derive(Debug, Default)]
pub struct MemoryKeys {
    keys: Mutex<HashMap<u64, [u8; 32]>>,
    /// How many times slots were destroyed ([`KeyTable::destroyed`]).
    destroyed: AtomicU64,
}

impl KeyTable for MemoryKeys {
    fn read(&self, slot: u64) -> std::io::Result<Option<[u8; 32]>> {
        Ok(self
            .keys
            .lock()
            .expect("no panics while holding the lock")
            .get(&slot)
            .copied())
    }

    fn write(&self, keys: &[(u64, [u8; 32])]) -> std::io::Result<()> {
        let mut map = self.keys.lock().expect("no panics while holding the lock");
        map.extend(keys.iter().copied());
        Ok(())
    }

    fn destroy(&self, slots: &[u64]) -> std::io::Result<()> {
        let mut map = self.keys.lock().expect("no panics while holding the lock");
        for slot in slots {
            map.remove(slot);
        }
        self.destroyed.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn destroyed(&self) -> u64 {
        self.destroyed.load(Ordering::Acquire)
    }
}

/// Keys in a file of 32-byte slots (`user-keys` in the data directory):
/// slot `n` at byte `32 n`. A destroyed slot is zeros, written over the
/// key in place and synced.
///
/// Slots are read [`BLOCK`] at a time, and the block last read is kept
/// until a key is next written or destroyed: users whose keys were made
/// together (who signed up together, and are often due together) cost
/// one read, not one each (a restarted daemon firing timers spent a
/// tenth of its time reading keys one by one). Every store over the same
/// backend shares the table, so a key written through one is never
/// missing from another's block.
#[derive(Debug)]
pub struct FileKeys {
    file: File,
    /// The first slot of the block last read, and its keys; held while
    /// keys are written or destroyed, so that no read keeps a block from
    /// before them.
    block: Mutex<Option<Block>>,
    /// How many times slots were destroyed ([`KeyTable::destroyed`]).
    destroyed: AtomicU64,
}

/// A block of keys read together: its first slot, and its keys.
type Block = (u64, Box<[[u8; 32]]>);

impl FileKeys {
    pub fn open(path: &Path) -> std::io::Result<FileKeys> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(FileKeys {
            file,
            block: Mutex::new(None),
            destroyed: AtomicU64::new(0),
        })
    }
}

impl FileKeys {
    fn lock_block(&self) -> std::sync::MutexGuard<'_, Option<Block>> {
        self.block
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl KeyTable for FileKeys {
    fn read(&self, slot: u64) -> std::io::Result<Option<[u8; 32]>> {
        let mut block = self.lock_block();
        let first = slot - slot % BLOCK;
        let key = match &*block {
            Some((at, keys)) if *at == first => keys[(slot - first) as usize],
            _ => {
                let mut keys = vec![[0u8; 32]; BLOCK as usize].into_boxed_slice();
                self.read_many(first, &mut keys)?;
                let key = keys[(slot - first) as usize];
                *block = Some((first, keys));
                key
            }
        };
        Ok((key != [0; 32]).then_some(key))
    }

    /// One read for them all; slots past the file's end are zeros.
    fn read_many(&self, first: u64, keys: &mut [[u8; 32]]) -> std::io::Result<()> {
        let mut bytes = vec![0u8; keys.len() * 32];
        let mut read = 0;
        while read < bytes.len() {
            match self
                .file
                .read_at(&mut bytes[read..], first * 32 + read as u64)
            {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        for (key, bytes) in keys.iter_mut().zip(bytes.chunks_exact(32)) {
            key.copy_from_slice(bytes);
        }
        Ok(())
    }

    fn write(&self, keys: &[(u64, [u8; 32])]) -> std::io::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut block = self.lock_block();
        *block = None;
        for (slot, key) in keys {
            self.file.write_all_at(key, slot * 32)?;
        }
        self.file.sync_data()
    }

    fn destroy(&self, slots: &[u64]) -> std::io::Result<()> {
        if slots.is_empty() {
            return Ok(());
        }
        let mut block = self.lock_block();
        *block = None;
        let len = self.file.metadata()?.len();
        for slot in slots {
            if slot * 32 < len {
                self.file.write_all_at(&[0; 32], slot * 32)?;
            }
        }
        // Counted once zeroed: a store reading the table meanwhile found
        // the key and may keep it, and forgets it when it sees this.
        self.destroyed.fetch_add(1, Ordering::AcqRel);
        self.file.sync_data()
    }

    fn destroyed(&self) -> u64 {
        self.destroyed.load(Ordering::Acquire)
    }
}

/// A new random key.
pub fn new_key() -> Result<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| StoreError::Backend(format!("no randomness for a user's key: {e}")))?;
    Ok(key)
}

/// A nonce not used before: 12 random bytes drawn once per process, the
/// last 8 of them counted on from there. No two seals of one process share
/// one, and two processes' runs overlap with chance about 2^-56 even if
/// each seals 2^40 values; and sealing makes no system call for
/// randomness. Should a nonce ever repeat under a key (a virtual machine
/// restored from a snapshot replays its process), GCM-SIV reveals no more
/// than whether the two plain values were equal.
fn next_nonce() -> Result<[u8; 12]> {
    static START: std::sync::OnceLock<std::result::Result<[u8; 12], String>> =
        std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let start = START
        .get_or_init(|| {
            let mut p = [0u8; 12];
            getrandom::fill(&mut p)
                .map(|()| p)
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| StoreError::Backend(format!("no randomness for nonces: {e}")))?;
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let low = u64::from_be_bytes(start[4..].try_into().expect("eight bytes")).wrapping_add(n);
    let mut nonce = *start;
    nonce[4..].copy_from_slice(&low.to_be_bytes());
    Ok(nonce)
}

/// `plain` sealed under `key` (in `slot`) for the store key `at`.
pub fn seal(slot: u64, key: &[u8; 32], at: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    // Encrypted where it goes, after the header, then the tag: one
    // allocation, where the cipher's own output was a second, copied.
    let mut out = Vec::with_capacity(HEADER + plain.len() + TAG);
    out.resize(HEADER, 0);
    out.extend_from_slice(plain);
    seal_in_place(slot, key, at, &mut out)?;
    Ok(out)
}

/// Room a value built to be sealed in place leaves: [`ROOM_BEFORE`]
/// bytes before its plain bytes (whatever they hold, for the header),
/// and [`ROOM_AFTER`] bytes of spare capacity after them (for the tag).
pub(super) const ROOM_BEFORE: usize = HEADER;
pub(super) const ROOM_AFTER: usize = TAG;

/// Seals `value` where it is: its first [`ROOM_BEFORE`] bytes become the
/// header and the rest is encrypted, then the tag is added (with no new
/// allocation if [`ROOM_AFTER`] bytes of capacity are spare).
fn seal_in_place(slot: u64, key: &[u8; 32], at: &[u8], value: &mut Vec<u8>) -> Result<()> {
    if value.len() < HEADER {
        return Err(StoreError::Backend(
            "a value to seal in place has no room for its header".into(),
        ));
    }
    let nonce = next_nonce()?;
    value[0] = SEALED;
    value[1..9].copy_from_slice(&slot.to_be_bytes());
    value[9..HEADER].copy_from_slice(&nonce);
    let tag = cipher(key)?
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(at),
            &mut value[HEADER..],
        )
        .map_err(|_| StoreError::Backend("sealing a value failed".into()))?;
    value.extend_from_slice(tag.as_ref());
    Ok(())
}

/// AES-256-GCM-SIV under `key`.
fn cipher(key: &[u8; 32]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM_SIV, key)
        .map(LessSafeKey::new)
        .map_err(|_| StoreError::Backend("a user's key is not an AES-256 key".into()))
}

/// The slot a sealed value was sealed under.
pub fn slot_of(at: &[u8], bytes: &[u8]) -> Result<u64> {
    if bytes.len() < HEADER + TAG || bytes[0] != SEALED {
        return Err(StoreError::Corrupt {
            key: String::from_utf8_lossy(at).into_owned(),
            message: "not a sealed value".into(),
        });
    }
    Ok(u64::from_be_bytes(
        bytes[1..9].try_into().expect("eight bytes"),
    ))
}

/// Opens a sealed value with `key`: its plain bytes.
pub fn open(key: &[u8; 32], at: &[u8], bytes: &[u8]) -> Result<Vec<u8>> {
    slot_of(at, bytes)?;
    let nonce: [u8; 12] = bytes[9..HEADER].try_into().expect("twelve bytes");
    let mut plain = bytes[HEADER..].to_vec();
    let len = cipher(key)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(at),
            &mut plain,
        )
        .map_err(|_| StoreError::Corrupt {
            key: String::from_utf8_lossy(at).into_owned(),
            message: "the value does not open with its key (tampered, or moved from another key)"
                .into(),
        })?
        .len();
    plain.truncate(len);
    Ok(plain)
}

/// A key of the store and its value, opened (`None`: sealed under a key
/// that is gone).
pub type Opened = (Vec<u8>, Option<Vec<u8>>);

/// At most this many keys, and twice as many slots, are remembered; past
/// it the memory starts again (a cache: users' states, `Y/` and the key
/// table say the same).
const REMEMBERED: usize = 100_000;

/// Slots read from the key table at a time.
const BLOCK: u64 = 128;

/// A user's key, kept out of `Debug` output.
#[derive(Clone, Copy)]
pub(super) struct UserKey(pub(super) [u8; 32]);

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserKey(..)")
    }
}

/// A write whose value is still to be sealed: the op at `op` in the
/// batch's ops holds the plain bytes, to be sealed under `key` (in
/// `slot`) as the batch is applied.
#[derive(Debug)]
pub(super) struct ToSeal {
    op: usize,
    slot: u64,
    key: UserKey,
    /// The value leaves room for the seal (see [`Seals::put_in_room`]).
    in_room: bool,
}

/// Seals the values of `ops` that `pending` names, in place: done by the
/// thread that applies a batch, not the one that evaluates the next.
pub(super) fn seal_pending(ops: &mut [Op], pending: &[ToSeal]) -> Result<()> {
    for p in pending {
        if let Some(Op::Put(at, value)) = ops.get_mut(p.op) {
            if p.in_room {
                seal_in_place(p.slot, &p.key.0, at, value)?;
            } else {
                *value = seal(p.slot, &p.key.0, at, value)?;
            }
        } else {
            return Err(StoreError::Backend(format!(
                "op {} of a batch is no write to seal",
                p.op
            )));
        }
    }
    Ok(())
}

/// The slots and keys a batch seals under, by user id, and the writes
/// waiting to be sealed.
pub(super) struct Seals<'s, K: Kv> {
    store: &'s Store<K>,
    /// Each user's slot, and their key when it is known without asking
    /// the store (kept with their state, or made for this batch).
    slots: foldhash::HashMap<String, (u64, Option<[u8; 32]>)>,
    /// The store's count of key changes when the batch took its keys.
    epoch: u64,
    pending: std::cell::RefCell<Vec<ToSeal>>,
}

impl<K: Kv> Seals<'_, K> {
    /// Adds to `ops` a write of `plain` at `at`, to be sealed under
    /// `user`'s key as the batch is applied ([`seal_pending`]).
    pub(super) fn put(
        &self,
        user: &str,
        at: Vec<u8>,
        plain: Vec<u8>,
        ops: &mut Vec<Op>,
    ) -> Result<()> {
        self.put_as(user, at, plain, false, ops)
    }

    /// [`Seals::put`] of a value built with room for its seal: its first
    /// [`ROOM_BEFORE`] bytes are not part of it, and [`ROOM_AFTER`] bytes
    /// of capacity are spare. It is sealed where it is, with neither a
    /// new allocation nor a copy of its bytes (a user's state, written
    /// for every event).
    pub(super) fn put_in_room(
        &self,
        user: &str,
        at: Vec<u8>,
        value: Vec<u8>,
        ops: &mut Vec<Op>,
    ) -> Result<()> {
        self.put_as(user, at, value, true, ops)
    }

    fn put_as(
        &self,
        user: &str,
        at: Vec<u8>,
        value: Vec<u8>,
        in_room: bool,
        ops: &mut Vec<Op>,
    ) -> Result<()> {
        let (slot, key) = self.key_of(user, &at)?;
        self.pending.borrow_mut().push(ToSeal {
            op: ops.len(),
            slot,
            key: UserKey(key),
            in_room,
        });
        ops.push(Op::Put(at, value));
        Ok(())
    }

    /// `user`'s slot and key (`at`: the key written, for the error).
    fn key_of(&self, user: &str, at: &[u8]) -> Result<(u64, [u8; 32])> {
        let (slot, known) = *self.slots.get(user).ok_or_else(|| {
            StoreError::Backend(format!("no key was taken for {user:?} in this batch"))
        })?;
        if let Some(key) = known {
            return Ok((slot, key));
        }
        let key = self
            .store
            .key_in(slot)?
            .ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(at).into_owned(),
                message: format!("the key in slot {slot} is gone"),
            })?;
        Ok((slot, key))
    }

    /// Whether the key kept with `user`'s state is still the one to use.
    pub(super) fn kept(&self, user: &str, kept: SealedUnder) -> bool {
        usable(kept, self.epoch, user).is_some()
    }

    /// The key `user`'s state is sealed under in this batch, to keep with
    /// it (see [`SealedUnder`]).
    pub(super) fn sealed_under(&self, user: &str) -> Result<SealedUnder> {
        let (slot, key) = self.key_of(user, user.as_bytes())?;
        Ok(SealedUnder(Some(StoreKey {
            epoch: self.epoch,
            owner: owner(user),
            slot,
            key,
        })))
    }

    /// The writes still to be sealed.
    pub(super) fn into_pending(self) -> Vec<ToSeal> {
        self.pending.into_inner()
    }
}

/// What the store remembers of keys.
#[derive(Default)]
pub(super) struct Remembered {
    /// Slots by user id, as their states or `Y/` say.
    slots: foldhash::HashMap<String, u64>,
    /// What `slots` held when it last filled, still read: a slot made by
    /// a batch not yet applied is in neither the store's states nor `Y/`,
    /// and forgetting it at once would give its user a second slot in
    /// the next batch.
    older: foldhash::HashMap<String, u64>,
    /// Keys by slot, as in the key table.
    keys: foldhash::HashMap<u64, [u8; 32]>,
    /// The next free slot, once read (like the journal's sequence
    /// number, taken by prepared batches before they are applied).
    next: Option<u64>,
    /// The key table's count of destructions when `keys` was last
    /// checked against it.
    destroyed: u64,
}

impl Remembered {
    fn slot(&self, user: &str) -> Option<u64> {
        self.slots
            .get(user)
            .or_else(|| self.older.get(user))
            .copied()
    }

    fn keep_slot(&mut self, user: &str, slot: u64) {
        if self.slots.len() >= REMEMBERED {
            // The new map takes the older map's memory, already grown
            // to the size it fills to, not a fresh one grown by doubling.
            std::mem::swap(&mut self.older, &mut self.slots);
            self.slots.clear();
        }
        self.slots.insert(user.to_string(), slot);
    }
}

/// A user's id as a key kept with their state says whose it is.
fn owner(user: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x5ea1).hash_one(user)
}

/// The key kept with `user`'s state, if it is theirs and was taken at
/// `epoch` (of this store).
fn usable(kept: SealedUnder, epoch: u64, user: &str) -> Option<StoreKey> {
    kept.0
        .filter(|k| k.epoch == epoch && k.owner == owner(user))
}

pub(super) fn slot_key(user: &str) -> Vec<u8> {
    key("Y", &[&user_part(user)])
}

impl<K: Kv> Store<K> {
    fn remembered(&self) -> std::sync::MutexGuard<'_, Remembered> {
        let mut r = self
            .sealing
            .lock()
            .expect("no panics while holding the lock");
        let destroyed = self.kv.keys().destroyed();
        if r.destroyed != destroyed {
            // Keys were destroyed, perhaps through another store over the
            // backend: none remembered is trusted (each is read again),
            // nor any kept with a state. Slots stay: one made by a batch
            // not yet applied must not be made twice, and a destroyed
            // slot's key reads as gone.
            r.destroyed = destroyed;
            r.keys.clear();
            self.key_epoch.fetch_add(1, Ordering::AcqRel);
        }
        r
    }

    /// The slot of `user`'s key, if they have one: as their state's sealed
    /// value says, or else `Y/`.
    pub(super) fn user_slot(&self, user: &str) -> Result<Option<u64>> {
        if let Some(slot) = self.remembered().slot(user) {
            return Ok(Some(slot));
        }
        let state = key("u", &[&user_part(user)]);
        let slot = match self.kv.get(&state)? {
            Some(sealed) => Some(slot_of(&state, &sealed)?),
            None => self
                .kv
                .get(&slot_key(user))?
                .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                .map(u64::from_be_bytes),
        };
        if let Some(slot) = slot {
            self.remember_slot(user, slot);
        }
        Ok(slot)
    }

    /// Remembers that `user`'s key is in `slot`, as read from their
    /// state's sealed value (a state is sealed under its owner's key) or
    /// `Y/`: the next batch that writes for them need not read either.
    pub(super) fn remember_slot(&self, user: &str, slot: u64) {
        let mut r = self.remembered();
        if r.slots.get(user) == Some(&slot) {
            return;
        }
        r.keep_slot(user, slot);
    }

    /// How often keys were destroyed or slots forgotten (see
    /// [`SealedUnder`]).
    pub(super) fn key_epoch(&self) -> u64 {
        self.key_epoch.load(Ordering::Acquire)
    }

    /// The slots of `stated` (users whose state the batch writes, with
    /// the key their state keeps, if any) and `others`, a key made (and
    /// written to the key table, durably) for each who has none; for one
    /// of `others`, a `Y/` entry added to `ops` (the state of one of
    /// `stated` says its slot).
    pub(super) fn seals<'a>(
        &self,
        stated: impl IntoIterator<Item = (&'a str, SealedUnder)>,
        others: impl IntoIterator<Item = &'a str>,
        ops: &mut Vec<Op>,
    ) -> Result<Seals<'_, K>> {
        let epoch = self.key_epoch();
        let mut slots = foldhash::HashMap::default();
        let mut fresh = Vec::new();
        let stated = stated.into_iter().map(|(u, kept)| (u, true, kept));
        let others = others.into_iter().map(|u| (u, false, SealedUnder(None)));
        for (user, has_state, kept) in stated.chain(others) {
            if slots.contains_key(user) {
                continue;
            }
            if let Some(kept) = usable(kept, epoch, user) {
                slots.insert(user.to_string(), (kept.slot, Some(kept.key)));
                continue;
            }
            let slot = match self.user_slot(user)? {
                Some(slot) => (slot, None),
                None => {
                    let next = match self.remembered().next {
                        Some(n) => n,
                        None => self
                            .kv
                            .get(b"Y")?
                            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                            .map(u64::from_be_bytes)
                            .unwrap_or(1),
                    };
                    let key = new_key()?;
                    fresh.push((next, key));
                    if !has_state {
                        ops.push(Op::Put(slot_key(user), next.to_be_bytes().to_vec()));
                    }
                    let mut r = self.remembered();
                    r.next = Some(next + 1);
                    r.keep_slot(user, next);
                    (next, Some(key))
                }
            };
            slots.insert(user.to_string(), slot);
        }
        if let Some((last, _)) = fresh.last() {
            ops.push(Op::Put(b"Y".to_vec(), (last + 1).to_be_bytes().to_vec()));
            self.kv
                .keys()
                .write(&fresh)
                .map_err(|e| StoreError::Backend(format!("writing users' keys: {e}")))?;
            let mut r = self.remembered();
            if r.keys.len() + fresh.len() >= REMEMBERED {
                r.keys.clear();
            }
            r.keys.extend(fresh);
        }
        Ok(Seals {
            store: self,
            slots,
            epoch,
            pending: Default::default(),
        })
    }

    /// Forgets slots taken by batches prepared and not applied (and the
    /// keys kept with states built on them).
    pub(super) fn forget_slots(&self) {
        self.key_epoch.fetch_add(1, Ordering::AcqRel);
        let mut r = self.remembered();
        r.slots.clear();
        r.older.clear();
        r.next = None;
    }

    fn key_in(&self, slot: u64) -> Result<Option<[u8; 32]>> {
        if let Some(key) = self.remembered().keys.get(&slot) {
            return Ok(Some(*key));
        }
        let key = self
            .kv
            .keys()
            .read(slot)
            .map_err(|e| StoreError::Backend(format!("reading a user's key: {e}")))?;
        if let Some(key) = key {
            let mut r = self.remembered();
            if r.keys.len() >= REMEMBERED {
                r.keys.clear();
            }
            r.keys.insert(slot, key);
        }
        Ok(key)
    }

    /// `plain` sealed under the key in `slot`.
    pub(super) fn seal_in(&self, slot: u64, at: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let key = self.key_in(slot)?.ok_or_else(|| StoreError::Corrupt {
            key: String::from_utf8_lossy(at).into_owned(),
            message: format!("the key in slot {slot} is gone"),
        })?;
        seal(slot, &key, at, plain)
    }

    /// `plain` sealed under `user`'s key, if they have one (a user erased
    /// meanwhile has none: `None`, and nothing of theirs is written).
    pub(super) fn seal_for(&self, user: &str, at: &[u8], plain: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.user_slot(user)? {
            Some(slot) => self.seal_in(slot, at, plain).map(Some),
            None => Ok(None),
        }
    }

    /// A stored value opened: its plain bytes, or `None` when its key was
    /// destroyed (its person erased).
    pub(super) fn open_value(&self, at: &[u8], bytes: &[u8]) -> Result<Option<Vec<u8>>> {
        let slot = slot_of(at, bytes)?;
        match self.key_in(slot)? {
            Some(key) => open(&key, at, bytes).map(Some),
            None => Ok(None),
        }
    }

    /// A stored value opened, with the key it was sealed under (to keep
    /// with a user's state); `None` when its key was destroyed.
    pub(super) fn open_sealed(
        &self,
        user: &str,
        at: &[u8],
        bytes: &[u8],
    ) -> Result<Option<(Vec<u8>, SealedUnder)>> {
        let epoch = self.key_epoch();
        let slot = slot_of(at, bytes)?;
        match self.key_in(slot)? {
            Some(key) => {
                let plain = open(&key, at, bytes)?;
                let kept = StoreKey {
                    epoch,
                    owner: owner(user),
                    slot,
                    key,
                };
                Ok(Some((plain, SealedUnder(Some(kept)))))
            }
            None => Ok(None),
        }
    }

    /// Destroys the keys in `slots` for good: marked (`Z/{slot}`) in a
    /// batch of their own first, so that a crash before they are zeroed
    /// is finished at the next open; then zeroed; then unmarked.
    pub(super) fn destroy_keys(&self, slots: &[u64]) -> Result<()> {
        if slots.is_empty() {
            return Ok(());
        }
        self.key_epoch.fetch_add(1, Ordering::AcqRel);
        {
            let mut r = self.remembered();
            for slot in slots {
                r.keys.remove(slot);
            }
            r.slots.retain(|_, s| !slots.contains(s));
        }
        self.kv
            .keys()
            .destroy(slots)
            .map_err(|e| StoreError::Backend(format!("destroying users' keys: {e}")))?;
        // And after: a key read from the table while it was destroyed is
        // stale too.
        self.key_epoch.fetch_add(1, Ordering::AcqRel);
        let unmark = slots
            .iter()
            .map(|s| Op::Delete(key("Z", &[&s.to_be_bytes()])))
            .collect();
        self.kv.apply(unmark)?;
        self.kv.flush()
    }

    /// The marker that says `slot` is to be destroyed.
    pub(super) fn doomed(slot: u64) -> Op {
        Op::Put(key("Z", &[&slot.to_be_bytes()]), Vec::new())
    }

    /// Every key of the store with its value, sealed values opened; `None`
    /// for a sealed value whose key is destroyed. For audits and tests:
    /// what an erasure left readable.
    pub fn opened_values(&self) -> Result<Vec<Opened>> {
        let sealed_tables: [&[u8]; 7] = [b"u/", b"j/", b"y/", b"o/", b"r/", b"x/", b"i/"];
        let mut out = Vec::new();
        for (k, v) in self.kv.range(b"", &[0xff], usize::MAX)? {
            let value = if sealed_tables.iter().any(|p| k.starts_with(p)) {
                self.open_value(&k, &v)?
            } else {
                Some(v)
            };
            out.push((k, value));
        }
        Ok(out)
    }

    /// Destroys the keys an erasure marked and a crash left (at open).
    pub(super) fn finish_destroying(&self) -> Result<()> {
        let slots: Vec<u64> = self
            .kv
            .range(b"Z/", &prefix_end(b"Z/"), usize::MAX)?
            .into_iter()
            .filter_map(|(k, _)| <[u8; 8]>::try_from(&k[2..]).ok())
            .map(u64::from_be_bytes)
            .collect();
        self.destroy_keys(&slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_made_by_a_batch_not_yet_applied_outlives_the_memory_filling() {
        let store = Store::open(crate::store::MemoryKv::default()).unwrap();
        let mut ops = Vec::new();
        let none = SealedUnder(None);
        let made = store.seals([("x", none)], [], &mut ops).unwrap().slots["x"].0;
        // The batch is not applied: the store holds neither x's state nor
        // `Y/x`, and the memory of slots fills meanwhile.
        for i in 0..REMEMBERED {
            store.remember_slot(&format!("u{i}"), 1_000_000 + i as u64);
        }
        let mut next = Vec::new();
        let again = store.seals([("x", none)], [], &mut next).unwrap().slots["x"].0;
        assert_eq!(again, made, "one user, one slot");
        assert!(next.is_empty(), "no second key was made");
    }

    #[test]
    fn a_key_kept_with_a_state_is_used_until_an_erasure_and_never_after() {
        use crate::store::{Batch, MemoryKv};
        use waymark_core::model::UserState;
        let store = Store::open(MemoryKv::default()).unwrap();
        let commit = |user: UserState| {
            let mut batch = Batch {
                users: vec![(user, None)],
                ..Batch::default()
            };
            store.commit_ref(&mut batch).unwrap();
            batch.users.pop().unwrap().0
        };
        // Written, then read: each time the state keeps the key it is
        // sealed under, and the next batch seals with that key.
        let written = commit(UserState::new("u"));
        let SealedUnder(Some(StoreKey { slot, key, .. })) = written.sealed_under else {
            panic!("a written state keeps its key");
        };
        let read = store.user("u").unwrap().unwrap();
        assert_eq!(
            read.sealed_under.0.map(|k| (k.slot, k.key)),
            Some((slot, key))
        );
        let mut ops = Vec::new();
        let seals = store
            .seals([("u", read.sealed_under)], [], &mut ops)
            .unwrap();
        assert_eq!(seals.slots["u"], (slot, Some(key)));
        drop(seals);
        // A state copied under another id, or written to another store,
        // takes no key along.
        let mut copy = read.clone();
        copy.id = "v".into();
        let copied = commit(copy);
        assert_ne!(copied.sealed_under.0.map(|k| k.slot), Some(slot));
        assert!(store.user("v").unwrap().is_some());
        let other = Store::open(MemoryKv::default()).unwrap();
        let mut batch = Batch {
            users: vec![(read.clone(), None)],
            ..Batch::default()
        };
        other.commit_ref(&mut batch).unwrap();
        assert!(other.user("u").unwrap().is_some());
        // Erased: the key is destroyed. A state still holding it (one
        // read before) is written under a new key, or it could never be
        // read again.
        let mut stale = read.clone();
        stale.tags.insert("after".into());
        store.erase_user("u").unwrap();
        let rewritten = commit(stale);
        let SealedUnder(Some(StoreKey {
            slot: new_slot,
            key: new_key,
            ..
        })) = rewritten.sealed_under
        else {
            panic!("a written state keeps its key");
        };
        assert_ne!((new_slot, new_key), (slot, key));
        let back = store.user("u").unwrap().expect("readable");
        assert!(back.tags.contains("after"));
    }

    #[test]
    fn a_value_opens_with_its_key_at_its_place_only() {
        let key = new_key().unwrap();
        let sealed = seal(7, &key, b"u/a", "小王".as_bytes()).unwrap();
        assert_eq!(slot_of(b"u/a", &sealed).unwrap(), 7);
        assert_eq!(open(&key, b"u/a", &sealed).unwrap(), "小王".as_bytes());
        assert!(open(&key, b"u/b", &sealed).is_err(), "moved to another key");
        assert!(open(&new_key().unwrap(), b"u/a", &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open(&key, b"u/a", &tampered).is_err());
        assert!(!sealed.windows(6).any(|w| w == "小王".as_bytes()));
    }

    #[test]
    fn the_cipher_is_aes_256_gcm_siv_as_rfc_8452_gives_it() {
        // RFC 8452 appendix C.2, the first two AES-256 vectors: key 01 00…,
        // nonce 03 00…, no additional data; no plain text, then 01 00….
        // Values sealed before the cipher's implementation changed (from
        // RustCrypto's to AWS-LC's) open because both are this.
        let mut key = [0u8; 32];
        key[0] = 1;
        let vectors: [(&[u8], &[u8]); 2] = [
            (
                b"",
                b"\x07\xf5\xf4\x16\x9b\xbf\x55\xa8\x40\x0c\xd4\x7e\xa6\xfd\x40\x0f",
            ),
            (
                b"\x01\0\0\0\0\0\0\0",
                b"\xc2\xef\x32\x8e\x5c\x71\xc8\x3b\x84\x31\x22\x13\x0f\x73\x64\xb7\
                  \x61\xe0\xb9\x74\x27\xe3\xdf\x28",
            ),
        ];
        for (plain, result) in vectors {
            let mut sealed = vec![SEALED];
            sealed.extend_from_slice(&5u64.to_be_bytes());
            sealed.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            sealed.extend_from_slice(result);
            assert_eq!(slot_of(b"", &sealed).unwrap(), 5);
            assert_eq!(open(&key, b"", &sealed).unwrap(), plain);
            *sealed.last_mut().unwrap() ^= 1;
            assert!(open(&key, b"", &sealed).is_err());
        }
    }

    #[test]
    fn a_value_sealed_in_its_room_opens_as_one_sealed_by_copy() {
        let key = new_key().unwrap();
        let plain = b"the state of a member".repeat(20);
        let mut value = vec![0xaa; ROOM_BEFORE];
        value.reserve_exact(plain.len() + ROOM_AFTER);
        value.extend_from_slice(&plain);
        let spare = value.as_ptr();
        seal_in_place(7, &key, b"u/x", &mut value).unwrap();
        assert_eq!(value.as_ptr(), spare, "sealed where it was");
        assert_eq!(slot_of(b"u/x", &value).unwrap(), 7);
        assert_eq!(open(&key, b"u/x", &value).unwrap(), plain);
        let copied = seal(7, &key, b"u/x", &plain).unwrap();
        assert_eq!(value.len(), copied.len());
        assert_eq!(open(&key, b"u/x", &copied).unwrap(), plain);
        // Under another store key, it does not open.
        assert!(open(&key, b"u/y", &value).is_err());
        // A value with no room for the header is refused, not cut.
        let mut short = vec![0u8; ROOM_BEFORE - 1];
        assert!(seal_in_place(7, &key, b"u/x", &mut short).is_err());
    }

    #[test]
    fn no_two_seals_share_a_nonce() {
        let key = new_key().unwrap();
        let a = seal(1, &key, b"k", b"same").unwrap();
        let b = seal(1, &key, b"k", b"same").unwrap();
        assert_ne!(a[9..HEADER], b[9..HEADER]);
        assert_ne!(a, b, "the same value seals differently each time");
    }

    /// Keys read a block at a time are the keys of the table as it is:
    /// a key written, or destroyed, after its block was read is not
    /// answered from the block, whichever store over the backend reads.
    #[test]
    fn keys_read_by_the_block_follow_writes_and_erasures() {
        use crate::store::{Batch, SledKv};
        use waymark_core::model::UserState;
        // On disk: the key table is a file (a temporary store's is in memory).
        let dir = std::env::temp_dir().join(format!("waymark-key-blocks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let kv = SledKv::open(&dir).unwrap();
        let writer = Store::open(kv.clone()).unwrap();
        // The daemon's readers (HTTP, outbox) are a store of their own.
        let reader = Store::new(kv);
        let commit = |id: &str| {
            let mut batch = Batch {
                users: vec![(UserState::new(id), None)],
                ..Batch::default()
            };
            writer.commit_ref(&mut batch).unwrap();
        };
        let read = |id: &str| reader.user(id).unwrap().map(|u| u.id.to_string());
        for id in ["a", "b", "c"] {
            commit(id);
        }
        assert_eq!(read("a").as_deref(), Some("a"));
        // A key made after the block was read.
        commit("d");
        assert_eq!(read("d").as_deref(), Some("d"));
        assert_eq!(read("b").as_deref(), Some("b"));
        // A key destroyed after the block was read: what it sealed (a
        // copy lingering in the backend's files, say) no longer opens.
        let at = key("u", &[&user_part("c")]);
        let lingering = writer.user_sealed("c").unwrap().unwrap();
        let keys = writer.kv.keys();
        let slot = slot_of(&at, &lingering).unwrap();
        assert!(keys.read(slot).unwrap().is_some());
        // The reader has opened it, so remembers its key.
        assert!(reader.open_value(&at, &lingering).unwrap().is_some());
        writer.erase_user("c").unwrap();
        assert_eq!(keys.read(slot).unwrap(), None);
        assert_eq!(
            reader.open_value(&at, &lingering).unwrap(),
            None,
            "a key erased through one store is forgotten by another"
        );
        assert_eq!(read("b").as_deref(), Some("b"));
        drop((writer, reader));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_key_file_reads_many_keys_at_their_places() {
        let dir = std::env::temp_dir().join(format!("waymark-keys-many-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let keys = FileKeys::open(&dir).unwrap();
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        keys.write(&[(1, a), (3, b)]).unwrap();
        // `read` goes through `read_many` (a block at a time): the keys
        // are checked against what was written, not against `read`.
        let mut many = [[9u8; 32]; 6];
        keys.read_many(0, &mut many).unwrap();
        let zero = [0u8; 32];
        assert_eq!(many, [zero, a, zero, b, zero, zero], "past the end: zeros");
        let mut from_two = [[9u8; 32]; 2];
        keys.read_many(2, &mut from_two).unwrap();
        assert_eq!(from_two, [zero, b], "from a slot other than the first");
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn a_destroyed_slot_is_zeros_on_disk() {
        let dir = std::env::temp_dir().join(format!("waymark-keys-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let keys = FileKeys::open(&dir).unwrap();
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        keys.write(&[(1, a), (3, b)]).unwrap();
        assert_eq!(keys.read(1).unwrap(), Some(a));
        assert_eq!(keys.read(2).unwrap(), None, "never written");
        assert_eq!(keys.read(9).unwrap(), None, "past the end");
        keys.destroy(&[1]).unwrap();
        assert_eq!(keys.read(1).unwrap(), None);
        assert_eq!(keys.read(3).unwrap(), Some(b));
        let bytes = std::fs::read(&dir).unwrap();
        assert!(
            !bytes.windows(32).any(|w| w == a),
            "the key is gone from the file"
        );
        assert!(bytes.windows(32).any(|w| w == b));
        std::fs::remove_file(&dir).unwrap();
    }
}
