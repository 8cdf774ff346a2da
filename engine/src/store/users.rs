//! The users table, `u/{user}`: each user's state, one MessagePack value
//! with its structs written as arrays, not maps, by
//! [`UserState::encode_positional`] (the field names of every event's
//! history would otherwise be most of the bytes written for each event;
//! nothing in a state skips a field, so positions always match, and
//! [`decode`] reads either form). Its event histories are one byte
//! string in it, each name's history inside that again its own
//! encoding, so a member is read with two allocations for all its
//! histories and without decoding those an event does not use (see
//! `waymark_core::history`). Before the state, the value holds the
//! user's newest journal records ([`JournalTail`], see [`super::journal`]):
//! their length (4 bytes big-endian, 0 for none), and if any the number
//! of the last group (8 bytes) and the groups. The store also notes which users'
//! state is past the size limit, so their events can be refused cheaply,
//! and erases a user from every table at once.

use super::journal::{Group, Groups, read_groups};
use super::keys::{key, prefix_end, split_user_part, user_part};
use super::outbox::OutboxEntry;
use super::sealed::{ROOM_AFTER, ROOM_BEFORE, Seals};
use super::timers::TimerMoves;
use super::{Kv, Op, Result, Store, StoreError, decode, in_scratch};
use chrono::{DateTime, Utc};
use std::sync::atomic::Ordering;
use waymark_core::journal::Kind;
use waymark_core::model::{JournalTail, UserState};

/// A user's stored value, opened: the journal records their state keeps,
/// and the state's bytes.
fn split_stored<'a>(k: &[u8], bytes: &'a [u8]) -> Result<(JournalTail, &'a [u8])> {
    let corrupt = |message: &str| StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        message: message.into(),
    };
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("no length of the journal records kept"))?;
    let len = u32::from_be_bytes(*len) as usize;
    if len == 0 {
        return Ok((JournalTail::default(), rest));
    }
    let (last, rest) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt("the journal records kept run past the end"))?;
    let tail = rest
        .get(..len)
        .ok_or_else(|| corrupt("the journal records kept run past the end"))?;
    let groups = rmp::decode::read_array_len(&mut &tail[..])
        .map_err(|e| corrupt(&format!("the journal records kept: {e}")))?;
    Ok((
        JournalTail {
            bytes: tail.into(),
            groups: groups as usize,
            last: u64::from_be_bytes(*last),
        },
        &rest[len..],
    ))
}

/// Writes the head of what [`split_stored`] reads: the journal records
/// kept, which the state's bytes then follow.
fn write_tail(tail: &JournalTail, out: &mut Vec<u8>) {
    let len = if tail.groups == 0 {
        0
    } else {
        tail.bytes.len()
    };
    out.extend_from_slice(
        &u32::try_from(len)
            .expect("a tail is kept below 4 GiB")
            .to_be_bytes(),
    );
    if len > 0 {
        out.extend_from_slice(&tail.last.to_be_bytes());
        out.extend_from_slice(&tail.bytes);
    }
}

/// A member read by [`Store::user_page`].
pub struct PagedUser {
    pub id: String,
    /// Decoded, unless the caller said it had them.
    pub state: Option<UserState>,
    /// The bytes they are stored as.
    pub stored: Vec<u8>,
}

impl<K: Kv> Store<K> {
    /// Sets the most bytes a user's stored state may take (`limits.user_state_bytes`).
    pub fn set_max_user_bytes(&self, bytes: usize) {
        self.max_user_bytes.store(bytes, Ordering::Relaxed);
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
        let over = bytes > self.max_user_bytes.load(Ordering::Relaxed);
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

    pub fn user(&self, id: &str) -> Result<Option<UserState>> {
        let stored = self.user_sealed(id)?;
        self.user_opened(id, stored)
    }

    /// A user's state as the backend holds it, still sealed: the part of
    /// [`Store::user`] that reads the backend (and waits while a batch
    /// is applied). [`Store::user_opened`] does the rest.
    pub fn user_sealed(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.kv.get(&key("u", &[&user_part(id)]))
    }

    /// The state that [`Store::user_sealed`] read, opened and decoded.
    pub fn user_opened(&self, id: &str, sealed: Option<Vec<u8>>) -> Result<Option<UserState>> {
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let k = key("u", &[&user_part(id)]);
        let Some((bytes, sealed_under)) = self.open_sealed(id, &k, &sealed)? else {
            return Ok(None);
        };
        let (tail, state) = split_stored(&k, &bytes)?;
        self.note_size(id, state.len());
        let mut state: UserState = decode(&k, state)?;
        state.journal_tail = tail;
        // The next batch that writes them takes their key from here.
        state.sealed_under = sealed_under;
        Ok(Some(state))
    }

    /// A page of user ids after `after`, in order: scans over every user
    /// (a deploy's) never hold them all.
    pub fn users_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let from = users_from(after);
        Ok(self
            .kv
            .range(&from, &prefix_end(b"u/"), limit)?
            .into_iter()
            .filter_map(|(k, _)| split_user_part(&k[2..]).map(|(id, _)| id))
            .collect())
    }

    /// How many users are in each journey of `journeys`, by (journey,
    /// version, step): a deploy preview's count of who a change reaches.
    /// Reads every user, page by page (an operator's explicit request,
    /// not a hot path).
    pub fn waiting_at(
        &self,
        journeys: &std::collections::BTreeSet<String>,
    ) -> Result<crate::changes::Waiting> {
        let mut waiting = crate::changes::Waiting::new();
        if journeys.is_empty() {
            return Ok(waiting);
        }
        let mut after: Option<String> = None;
        loop {
            let page = self.user_page(after.as_deref(), 1_000, |_| false)?;
            let Some(last) = page.last().map(|p| p.id.clone()) else {
                break;
            };
            for user in &page {
                let Some(state) = &user.state else { continue };
                for i in &state.instances {
                    if journeys.contains(&i.journey) {
                        *waiting
                            .entry((i.journey.clone(), i.version.clone(), i.step.label()))
                            .or_default() += 1;
                    }
                }
            }
            after = Some(last);
        }
        Ok(waiting)
    }

    /// A page of users after `after`, in id order, each with the bytes it
    /// is stored as (opened), and decoded unless `known` says the caller has them
    /// already: an audience scan reads each member once, and does not
    /// write back one it left as it was (see [`super::Batch::as_stored`]).
    pub fn user_page(
        &self,
        after: Option<&str>,
        limit: usize,
        known: impl Fn(&str) -> bool,
    ) -> Result<Vec<PagedUser>> {
        let from = users_from(after);
        let mut page = Vec::new();
        for (k, sealed) in self.kv.range(&from, &prefix_end(b"u/"), limit)? {
            let Some((id, _)) = split_user_part(&k[2..]) else {
                continue;
            };
            let Some((bytes, sealed_under)) = self.open_sealed(&id, &k, &sealed)? else {
                continue;
            };
            let (tail, stored) = split_stored(&k, &bytes)?;
            self.note_size(&id, stored.len());
            let state = if known(&id) {
                None
            } else {
                let mut state: UserState = decode(&k, stored)?;
                state.journal_tail = tail;
                state.sealed_under = sealed_under;
                Some(state)
            };
            page.push(PagedUser {
                id,
                state,
                stored: stored.to_vec(),
            });
        }
        Ok(page)
    }

    /// The writes of a batch's users: each state (unless `as_stored` shows
    /// it is stored as it is and it has no new records), and its timer
    /// where it changed from the one the user had when loaded. A user's
    /// group of the batch's records (taken out of `groups`) joins those
    /// their state keeps, which are written under a journal key when past
    /// what a state keeps; the users' states are left with what they keep.
    pub(super) fn write_users<'b>(
        &self,
        users: &mut [(UserState, Option<DateTime<Utc>>)],
        groups: &mut foldhash::HashMap<&str, Group<'b>>,
        as_stored: &foldhash::HashMap<String, Vec<u8>>,
        seals: &Seals<'_, K>,
        ops: &mut Vec<Op>,
        timers: &mut TimerMoves,
    ) -> Result<()> {
        for at in 0..users.len() {
            // The stored parts the next users' states copy, fetched while
            // this one is written.
            if let Some((next, _)) = users.get(at + 2) {
                next.prefetch_stored();
            }
            let (user, old_wake) = &mut users[at];
            let id = &user_part(&user.id)[..];
            let group = groups.remove(user.id.as_str());
            if let Some(group) = &group {
                let tail = super::journal::with_group(&user.journal_tail, group)?;
                if super::journal::spills(&tail) {
                    let k = super::journal::journal_key(&user.id, tail.last);
                    seals.put(&user.id, k, tail.bytes.into_vec(), ops)?;
                    user.journal_tail = JournalTail::default();
                } else {
                    user.journal_tail = tail;
                }
            }
            // The records kept, then the state, built in one buffer with
            // room for the seal: the state is not copied out to be joined
            // to them, nor again to be sealed.
            let value = in_scratch(|buf| {
                buf.resize(ROOM_BEFORE, 0);
                write_tail(&user.journal_tail, buf);
                let head = buf.len();
                user.encode_positional(buf)
                    .expect("engine state serializes");
                let state = &buf[head..];
                self.note_size(&user.id, state.len());
                let changed = group.is_some()
                    || as_stored.get(user.id.as_str()).map(|s| &s[..]) != Some(state);
                changed.then(|| {
                    let mut value = Vec::with_capacity(buf.len() + ROOM_AFTER);
                    value.extend_from_slice(buf);
                    value
                })
            });
            if let Some(value) = value {
                seals.put_in_room(&user.id, key("u", &[id]), value, ops)?;
            }
            if !seals.kept(&user.id, user.sealed_under) {
                user.sealed_under = seals.sealed_under(&user.id)?;
            }
            timers.moved(id, *old_wake, user.next_wake());
        }
        Ok(())
    }

    /// Erases a user (PIPL): state, timer, journal, pending sends and dead
    /// letters, in one batch, and the same of every id merged into them
    /// (with its entry in the identity index). Returns how many keys went.
    pub fn erase_user(&self, id: &str) -> Result<usize> {
        self.wrote();
        let uid = &user_part(id)[..];
        let mut ops = vec![Op::Delete(key("u", &[uid]))];
        // Every key a value of theirs is sealed under: destroyed once the
        // values are deleted, so that what lingers of them in the
        // backend's files cannot be opened.
        let mut slots = std::collections::BTreeSet::new();
        if let Some(sealed) = self.kv.get(&key("u", &[uid]))? {
            slots.insert(super::sealed::slot_of(b"u", &sealed)?);
        }
        let stored = self.user(id)?;
        let mut timers = TimerMoves::default();
        Self::erase_timer(uid, stored.as_ref(), &mut timers);
        let mut ids = vec![id.to_string()];
        // Their codes stay taken, held by nobody.
        if let Some(state) = &stored {
            for c in &state.coupons {
                ops.push(Self::release_code(&c.id, &c.code));
            }
            for merged in &state.merged_ids {
                ops.push(Op::Delete(key("l", &[&user_part(merged)])));
                ids.push(merged.clone());
            }
        }
        for id in &ids {
            if let Some(slot) = self.user_slot(id)? {
                slots.insert(slot);
            }
            ops.push(Op::Delete(key("Y", &[&user_part(id)])));
            let journal = key("j", &[&user_part(id), b""]);
            for (k, sealed) in self.kv.range(&journal, &prefix_end(&journal), usize::MAX)? {
                slots.insert(super::sealed::slot_of(&k, &sealed)?);
                let Some(v) = self.open_value(&k, &sealed)? else {
                    ops.push(Op::Delete(k));
                    continue;
                };
                self.erase_ledger_entries(&read_groups(&k, &v)?, &mut ops)?;
                ops.push(Op::Delete(k));
            }
        }
        // The records their state kept go with it.
        if let Some(state) = stored.as_ref().filter(|s| s.journal_tail.groups > 0) {
            let k = key("u", &[uid]);
            self.erase_ledger_entries(&read_groups(&k, &state.journal_tail.bytes)?, &mut ops)?;
        }
        // Their declared identifiers (a phone number is personal data).
        for (k, holder) in self.kv.range(b"e/", &prefix_end(b"e/"), usize::MAX)? {
            if ids.iter().any(|id| id.as_bytes() == holder.as_slice()) {
                ops.push(Op::Delete(k));
            }
        }
        for prefix in [&b"o/"[..], &b"r/"[..], &b"x/"[..], &b"i/"[..]] {
            for (k, sealed) in self.kv.range(prefix, &prefix_end(prefix), usize::MAX)? {
                let slot = super::sealed::slot_of(&k, &sealed)?;
                if slots.contains(&slot) {
                    ops.push(Op::Delete(k));
                    continue;
                }
                // Sealed under a key already gone: nothing to keep.
                let Some(v) = self.open_value(&k, &sealed)? else {
                    ops.push(Op::Delete(k));
                    continue;
                };
                let user = match prefix {
                    b"i/" => decode::<waymark_core::model::Input>(&k, &v)?
                        .user()
                        .to_string(),
                    _ => decode::<OutboxEntry>(&k, &v)?.record.user.to_string(),
                };
                if ids.contains(&user) {
                    ops.push(Op::Delete(k));
                }
            }
        }
        let slots: Vec<u64> = slots.into_iter().collect();
        ops.extend(slots.iter().map(|s| Self::doomed(*s)));
        // Their timer is one of the keys that go, though it goes from a block.
        let n = ops.len() + usize::from(!timers.is_empty());
        super::Prepared {
            ops,
            timers,
            codes: Vec::new(),
            sealing: Vec::new(),
        }
        .apply(&self.kv)?;
        self.kv.flush()?;
        self.destroy_keys(&slots)?;
        Ok(n)
    }
}

impl<K: Kv> Store<K> {
    /// The deletes of the consent ledger's entries of `groups`' records:
    /// they go with the records.
    fn erase_ledger_entries(&self, groups: &Groups, ops: &mut Vec<Op>) -> Result<()> {
        let records = groups.iter().flat_map(|(_, records)| records);
        for r in records.filter(|r| r.kind == Kind::Consent) {
            let ledger = super::journal::ledger_prefix(r.at, &r.user);
            for (k, _) in self.kv.range(&ledger, &prefix_end(&ledger), usize::MAX)? {
                ops.push(Op::Delete(k));
            }
        }
        Ok(())
    }
}

/// The first key of the users table after user `after` (all of it if none).
fn users_from(after: Option<&str>) -> Vec<u8> {
    match after {
        Some(a) => {
            let mut k = key("u", &[&user_part(a)]);
            k.push(0);
            k
        }
        None => key("u", &[]),
    }
}
