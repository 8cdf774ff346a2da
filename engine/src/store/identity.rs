//! The identity indexes. `e/{trait}/{hash}`: who holds each value of a
//! declared identifier (`unionid`, `phone`, …), so that a second profile
//! claiming it is found and merged. The value in the key is a keyed hash
//! (HMAC-SHA-256 under the store's secret), never the phone number
//! itself: a deleted key's bytes may linger in the store's files, and a
//! hash of a phone number under a secret kept elsewhere in the store
//! names no one without it. `l/{id}`: for every id merged into another profile,
//! the id of the profile that holds it now. Events for such an id go
//! there; reads of it (the user, their journal) answer the profile's.
//! Written by the batch that merges, with the absorbed profile's state
//! and timer removed (the journal records its state kept written under
//! its own journal key) and its coupon codes held by the survivor, in the
//! same commit. Consulted only when an id has no profile of its own, so
//! the ids of profiles cost nothing.

use super::keys::{key, user_part};
use super::sealed::Seals;
use super::timers::TimerMoves;
use super::{Kv, Op, Result, Store};
use chrono::{DateTime, Utc};
use waymark_core::model::{JournalTail, UserState};

/// What one merge writes: `absorbed` and the ids merged into it before
/// (`also`) now lead to `survivor`.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeWrite {
    pub absorbed: String,
    pub survivor: String,
    pub also: Vec<String>,
    /// The absorbed profile's timer as stored, if it had a profile.
    pub stored: Option<Option<DateTime<Utc>>>,
    /// Its coupon codes (coupon, code), now held by the survivor.
    pub codes: Vec<(String, String)>,
    /// The journal records its state kept, written under its own id.
    pub tail: JournalTail,
}

impl MergeWrite {
    /// The write for `absorbed` (as loaded, with the timer it was stored
    /// with; `None` for an id with no profile) merged into `survivor`.
    pub fn new(
        absorbed_id: &str,
        absorbed: Option<&(UserState, Option<DateTime<Utc>>)>,
        survivor: &str,
    ) -> MergeWrite {
        MergeWrite {
            absorbed: absorbed_id.to_string(),
            survivor: survivor.to_string(),
            also: absorbed
                .map(|(s, _)| s.merged_ids.clone())
                .unwrap_or_default(),
            stored: absorbed.map(|(_, wake)| *wake),
            codes: absorbed
                .map(|(s, _)| {
                    s.coupons
                        .iter()
                        .map(|c| (c.id.clone(), c.code.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            tail: absorbed
                .map(|(s, _)| s.journal_tail.clone())
                .unwrap_or_default(),
        }
    }
}

impl<K: Kv> Store<K> {
    /// The profile holding a declared identifier's value, if any (it may
    /// since have been merged into another: follow [`Store::merged_into`]).
    pub fn identifier_holder(&self, name: &str, value: &str) -> Result<Option<String>> {
        let k = self.claim_key(name, value);
        Ok(self
            .kv
            .get(&k)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The writes of a batch's identifier claims: (trait, value, holder),
    /// the claim removed when there is no holder.
    pub(super) fn write_claims(
        &self,
        claims: &[(String, String, Option<String>)],
        ops: &mut Vec<Op>,
    ) {
        for (name, value, holder) in claims {
            let k = self.claim_key(name, value);
            ops.push(match holder {
                Some(id) => Op::Put(k, id.as_bytes().to_vec()),
                None => Op::Delete(k),
            });
        }
    }

    /// The key of a claim: `e/{trait}/{hash of the value}`.
    fn claim_key(&self, name: &str, value: &str) -> Vec<u8> {
        use hmac::{KeyInit, Mac};
        let secret = self.secret();
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&secret)
            .expect("HMAC takes a key of any length");
        mac.update(b"waymark identifier\0");
        mac.update(name.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        let hash = mac.finalize().into_bytes();
        key("e", &[&user_part(name), &hash[..16]])
    }

    /// The profile an id was merged into, if it was.
    pub fn merged_into(&self, id: &str) -> Result<Option<String>> {
        let k = key("l", &[&user_part(id)]);
        Ok(self
            .kv
            .get(&k)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// A profile by any of its ids: the id it is kept under and its state.
    pub fn profile(&self, id: &str) -> Result<Option<(String, UserState)>> {
        if let Some(state) = self.user(id)? {
            return Ok(Some((id.to_string(), state)));
        }
        let Some(survivor) = self.merged_into(id)? else {
            return Ok(None);
        };
        Ok(self.user(&survivor)?.map(|state| (survivor, state)))
    }

    /// The ids whose journals make up `id`'s: its own, with the records
    /// its state keeps, and those merged into it (whose kept records were
    /// written under their journal keys as they were merged).
    pub(super) fn journal_ids(&self, id: &str) -> Result<Vec<(String, JournalTail)>> {
        let mut ids = vec![(id.to_string(), JournalTail::default())];
        if let Some(state) = self.user(id)? {
            ids[0].1 = state.journal_tail;
            ids.extend(
                state
                    .merged_ids
                    .into_iter()
                    .map(|m| (m, JournalTail::default())),
            );
        }
        Ok(ids)
    }

    /// The writes of a batch's merges.
    pub(super) fn write_merges(
        merges: &[MergeWrite],
        seals: &Seals<'_, K>,
        ops: &mut Vec<Op>,
        timers: &mut TimerMoves,
    ) -> Result<()> {
        for m in merges {
            let absorbed = user_part(&m.absorbed);
            if let Some(wake) = m.stored {
                ops.push(Op::Delete(key("u", &[&absorbed])));
                timers.moved(&absorbed, wake, None);
                // The records its state kept go under its journal keys.
                if m.tail.groups > 0 {
                    let k = super::journal::journal_key(&m.absorbed, m.tail.last);
                    seals.put(&m.absorbed, k, m.tail.bytes.to_vec(), ops)?;
                }
            }
            for id in std::iter::once(&m.absorbed).chain(&m.also) {
                ops.push(Op::Put(
                    key("l", &[&user_part(id)]),
                    m.survivor.as_bytes().to_vec(),
                ));
            }
            for (coupon, code) in &m.codes {
                ops.push(Op::Put(
                    key("c", &[&user_part(coupon), code.as_bytes()]),
                    m.survivor.as_bytes().to_vec(),
                ));
            }
        }
        Ok(())
    }
}
