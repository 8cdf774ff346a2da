//! The timers: each user's next wake-up, kept in order of (due time,
//! user) in blocks of up to [`BLOCK`] timers. A timer is `{due}{user}`
//! (due big-endian, the user as [`user_part`] writes it, so timers sort as
//! they fire and each ends itself); a block is its timers one after the
//! other, under `t/` and its fence: every timer after the fence of the
//! block before and up to its own (the last block's fence is after every
//! timer, [`LAST`]). `T` counts them.
//!
//! Blocks rather than a key per timer: sled keeps memory for every key it
//! holds, and a restarted daemon with 10M timers as keys held ~260 MiB for
//! them alone; in blocks they are ~3% as many keys.
//!
//! A timer is written with the user's state and is always that state's
//! [`UserState::next_wake`], so the state is its index: a batch knows each
//! user's old timer from their state as loaded. What a batch moves is
//! worked into blocks as the batch is applied ([`resolve`]), by the thread
//! that applies batches in order, so the blocks it reads hold every batch
//! before it even while the next one is being evaluated.

use super::keys::{split_user_part, time_from_key, time_key, user_part};
use super::{Kv, Op, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use waymark_core::model::UserState;

/// The most timers a block holds; a fuller one is split.
const BLOCK: usize = 32;

/// The fence of the last block: after every timer (a timer's ninth byte
/// starts a user part, which never starts with `0xff`).
const LAST: [u8; 11] = [
    b't', b'/', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

/// After every block's key (`/` + 1: [`LAST`] is after `prefix_end("t/")`).
const END: &[u8] = b"t0";

/// The key counting pending timers (8 bytes big-endian).
const COUNT: &[u8] = b"T";

/// A timer as blocks hold it.
fn timer(due: DateTime<Utc>, id_part: &[u8]) -> Vec<u8> {
    [&time_key(due)[..], id_part].concat()
}

/// The timers of the block at `key`, in order.
fn timers_in<'b>(key: &[u8], block: &'b [u8]) -> Result<Vec<&'b [u8]>> {
    let corrupt = |message: &str| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        message: message.into(),
    };
    let mut out = Vec::with_capacity(BLOCK);
    let mut rest = block;
    while !rest.is_empty() {
        // A user part's only `0x00 0x01` is its end (a `0x00` of the id is
        // written `0x00 0xff`).
        let end = rest
            .get(8..)
            .and_then(|part| part.windows(2).position(|w| w == [0, 1]))
            .ok_or_else(|| corrupt("a timer block holds a due time and a user, then the next"))?;
        let (one, after) = rest.split_at(8 + end + 2);
        out.push(one);
        rest = after;
    }
    if out.is_empty() {
        return Err(corrupt("a timer block is never empty"));
    }
    Ok(out)
}

/// A timer's due time and user.
fn read_timer(key: &[u8], timer: &[u8]) -> Result<(DateTime<Utc>, String)> {
    let due = time_from_key(timer);
    let user = split_user_part(&timer[8..]);
    match (due, user) {
        (Some(due), Some((user, _))) => Ok((due, user)),
        _ => Err(StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            message: "a timer is a due time and a user id".into(),
        }),
    }
}

/// The block whose range holds `timer`, if there is one: the first whose
/// fence is at or after it.
fn block_of<K: Kv>(kv: &K, timer: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    let from = [&b"t/"[..], timer].concat();
    Ok(kv.range(&from, END, 1)?.pop())
}

fn count<K: Kv>(kv: &K) -> Result<u64> {
    Ok(kv
        .get(COUNT)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// A timer as blocks hold it ([`timer`]), if there is one.
type Timer = Option<Vec<u8>>;

/// What a batch does to timers: each user's moves (from, to), in the
/// batch's order.
#[derive(Debug, Default)]
pub struct TimerMoves(Vec<(Timer, Timer)>);

impl TimerMoves {
    /// A user's timer (`id` as [`user_part`] writes it) moving from `old`
    /// to `new`; nothing if it did not move.
    pub(super) fn moved(
        &mut self,
        id: &[u8],
        old: Option<DateTime<Utc>>,
        new: Option<DateTime<Utc>>,
    ) {
        if old != new {
            self.0
                .push((old.map(|t| timer(t, id)), new.map(|t| timer(t, id))));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The writes that make the blocks in `kv` hold what `moves` leaves,
/// with the count: each block touched is read once and written once.
pub(super) fn resolve<K: Kv>(kv: &K, moves: &TimerMoves, ops: &mut Vec<Op>) -> Result<()> {
    if moves.is_empty() {
        return Ok(());
    }
    // Each timer touched, and whether it is there once the batch is.
    let mut wanted: BTreeMap<&[u8], bool> = BTreeMap::new();
    for (old, new) in &moves.0 {
        if let Some(old) = old {
            wanted.insert(old, false);
        }
        if let Some(new) = new {
            wanted.insert(new, true);
        }
    }
    let mut delta: i64 = 0;
    let mut wanted = wanted.into_iter().peekable();
    while let Some(&(first, _)) = wanted.peek() {
        let found = block_of(kv, first)?;
        let (fence, held) = match &found {
            Some((k, v)) => (k.clone(), timers_in(k, v)?),
            None => (LAST.to_vec(), Vec::new()),
        };
        let bound = &fence[2..];
        // Merged in order: what the block held, with what the batch moves
        // into its range.
        let mut out: Vec<&[u8]> = Vec::with_capacity(held.len() + 1);
        let mut held = held.into_iter().peekable();
        let (mut changed, mut appended) = (false, true);
        while let Some((t, there)) = wanted.next_if(|&(t, _)| t <= bound) {
            while let Some(h) = held.next_if(|&h| h < t) {
                out.push(h);
            }
            let was = held.next_if(|&h| h == t).is_some();
            match (was, there) {
                (true, true) => out.push(t),
                (true, false) => {
                    delta -= 1;
                    changed = true;
                }
                (false, true) => {
                    out.push(t);
                    delta += 1;
                    changed = true;
                    appended &= held.peek().is_none();
                }
                (false, false) => {}
            }
        }
        out.extend(held);
        if changed {
            write_block(&fence, found.is_some(), &out, appended, ops);
        }
    }
    if delta != 0 {
        let n = (count(kv)? as i64 + delta).max(0) as u64;
        ops.push(Op::Put(COUNT.to_vec(), n.to_be_bytes().to_vec()));
    }
    Ok(())
}

/// Writes a block that now holds `timers` under `fence`: deleted if none
/// is left, split if too many. Split in even parts, unless every new
/// timer came after the old ones (timers set a fixed wait ahead arrive in
/// order): then full blocks, as the front ones will not be added to.
fn write_block(fence: &[u8], existed: bool, timers: &[&[u8]], appended: bool, ops: &mut Vec<Op>) {
    if timers.is_empty() {
        if existed {
            ops.push(Op::Delete(fence.to_vec()));
        }
        return;
    }
    let size = if timers.len() <= BLOCK || appended {
        BLOCK
    } else {
        let parts = timers.len().div_ceil(BLOCK * 3 / 4);
        timers.len().div_ceil(parts)
    };
    let parts: Vec<&[&[u8]]> = timers.chunks(size).collect();
    let last = parts.len() - 1;
    for (i, part) in parts.into_iter().enumerate() {
        let key = if i == last {
            fence.to_vec()
        } else {
            [&b"t/"[..], part[part.len() - 1]].concat()
        };
        ops.push(Op::Put(key, part.concat()));
    }
}

impl<K: Kv> Store<K> {
    /// The user's timer, if the store holds one: their stored state's next
    /// wake-up, when its block holds it.
    pub fn timer_of(&self, id: &str) -> Result<Option<DateTime<Utc>>> {
        let Some(due) = self.user(id)?.and_then(|state| state.next_wake()) else {
            return Ok(None);
        };
        let wanted = timer(due, &user_part(id));
        let Some((k, block)) = block_of(&self.kv, &wanted)? else {
            return Ok(None);
        };
        let held = timers_in(&k, &block)?
            .binary_search(&wanted.as_slice())
            .is_ok();
        Ok(held.then_some(due))
    }

    /// Users with a timer due at or before `until`, earliest first (ties
    /// by user), at most `limit`.
    pub fn due(&self, until: DateTime<Utc>, limit: usize) -> Result<Vec<(DateTime<Utc>, String)>> {
        let mut out = Vec::new();
        let mut from = b"t/".to_vec();
        let to = END;
        loop {
            let blocks = self.kv.range(&from, to, 8)?;
            let Some((last, _)) = blocks.last() else {
                return Ok(out);
            };
            for (k, block) in &blocks {
                for t in timers_in(k, block)? {
                    let (due, user) = read_timer(k, t)?;
                    if due > until || out.len() >= limit {
                        return Ok(out);
                    }
                    out.push((due, user));
                }
            }
            from = last.clone();
            from.push(0);
        }
    }

    /// The earliest timer, if any.
    pub fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let Some((k, block)) = self.kv.range(b"t/", END, 1)?.pop() else {
            return Ok(None);
        };
        let first = timers_in(&k, &block)?[0];
        Ok(Some(read_timer(&k, first)?.0))
    }

    /// Users with a timer pending (each has at most one).
    pub fn pending_timers(&self) -> Result<usize> {
        Ok(count(&self.kv)? as usize)
    }

    /// The move removing the timer of a user whose stored state is
    /// `stored` (`id` as [`user_part`] writes it).
    pub(super) fn erase_timer(id: &[u8], stored: Option<&UserState>, moves: &mut TimerMoves) {
        moves.moved(id, stored.and_then(UserState::next_wake), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryKv;
    use std::collections::BTreeSet;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    /// Applies moves as a batch would.
    fn apply(kv: &MemoryKv, moves: &[(&str, Option<i64>, Option<i64>)]) {
        let mut m = TimerMoves::default();
        for (user, old, new) in moves {
            m.moved(&user_part(user), old.map(at), new.map(at));
        }
        let mut ops = Vec::new();
        resolve(kv, &m, &mut ops).unwrap();
        kv.apply(ops).unwrap();
    }

    /// Every block's timers in order, checked against the fences.
    fn blocks(kv: &MemoryKv) -> Vec<Vec<(DateTime<Utc>, String)>> {
        let mut out = Vec::new();
        let mut previous: Option<Vec<u8>> = None;
        for (k, v) in kv.range(b"t/", END, usize::MAX).unwrap() {
            let timers = timers_in(&k, &v).unwrap();
            assert!(timers.len() <= BLOCK, "a block holds at most {BLOCK}");
            for t in &timers {
                assert!(*t <= &k[2..], "a timer is within its block's fence");
                if let Some(p) = &previous {
                    assert!(*t > &p[2..], "a timer is after the fence before");
                }
            }
            out.push(timers.iter().map(|t| read_timer(&k, t).unwrap()).collect());
            previous = Some(k);
        }
        out
    }

    #[test]
    fn timers_in_order_fill_whole_blocks_and_fire_in_order() {
        let kv = MemoryKv::default();
        let store = Store::new(kv.clone());
        // Three batches of users waiting a fixed time, as they arrive.
        for batch in 0..3 {
            let moves: Vec<(String, Option<i64>, Option<i64>)> = (0..50)
                .map(|i| (format!("u{batch}-{i:02}"), None, Some(batch * 100 + i)))
                .collect();
            let moves: Vec<(&str, Option<i64>, Option<i64>)> =
                moves.iter().map(|(u, o, n)| (u.as_str(), *o, *n)).collect();
            apply(&kv, &moves);
        }
        let sizes: Vec<usize> = blocks(&kv).iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 150);
        assert!(
            sizes[..sizes.len() - 1].iter().all(|&n| n == BLOCK),
            "blocks before the last are full: {sizes:?}"
        );
        assert_eq!(store.pending_timers().unwrap(), 150);
        assert_eq!(store.next_due().unwrap(), Some(at(0)));
        let due = store.due(at(149), usize::MAX).unwrap();
        assert_eq!(due.len(), 100);
        assert_eq!(due[0], (at(0), "u0-00".to_string()));
        assert_eq!(due[99], (at(149), "u1-49".to_string()));
        assert_eq!(store.due(at(1_000), 7).unwrap().len(), 7);
    }

    #[test]
    fn moving_and_removing_timers_keeps_blocks_in_order_and_drops_empty_ones() {
        let kv = MemoryKv::default();
        let store = Store::new(kv.clone());
        let users: Vec<String> = (0..200).map(|i| format!("u{i:03}")).collect();
        // Due times out of order, so blocks split evenly.
        let first: Vec<(&str, Option<i64>, Option<i64>)> = users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.as_str(), None, Some((i as i64 * 37) % 200)))
            .collect();
        for chunk in first.chunks(10) {
            apply(&kv, chunk);
        }
        assert_eq!(store.pending_timers().unwrap(), 200);
        // Everyone due before 100 fires: their timers go.
        let fired: Vec<(&str, Option<i64>, Option<i64>)> = first
            .iter()
            .filter(|(_, _, t)| t.unwrap() < 100)
            .map(|&(u, _, t)| (u, t, None))
            .collect();
        apply(&kv, &fired);
        assert_eq!(store.pending_timers().unwrap(), 100);
        assert_eq!(store.next_due().unwrap(), Some(at(100)));
        // Only blocks holding timers are left.
        assert!(blocks(&kv).iter().all(|b| !b.is_empty()));
        let left: usize = blocks(&kv).iter().map(Vec::len).sum();
        assert_eq!(left, 100);
    }

    #[test]
    fn a_user_moved_twice_in_one_batch_ends_where_the_last_move_puts_them() {
        let kv = MemoryKv::default();
        let store = Store::new(kv.clone());
        apply(&kv, &[("a", None, Some(5))]);
        apply(&kv, &[("a", Some(5), Some(9)), ("a", Some(9), Some(3))]);
        assert_eq!(store.due(at(100), 10).unwrap(), vec![(at(3), "a".into())]);
        assert_eq!(store.pending_timers().unwrap(), 1);
    }

    #[test]
    fn a_damaged_block_is_named_not_read_as_timers() {
        let kv = MemoryKv::default();
        let store = Store::new(kv.clone());
        kv.apply(vec![Op::Put(LAST.to_vec(), vec![1, 2, 3])])
            .unwrap();
        let e = store.due(at(0), 10).unwrap_err().to_string();
        assert!(e.contains("t/") && e.contains("timer block"), "{e}");
    }

    proptest::proptest! {
        /// Any sequence of batches of moves leaves the blocks holding
        /// exactly each user's last timer, in order, and the count right.
        #[test]
        fn blocks_hold_what_a_map_of_users_would(
            batches in proptest::collection::vec(
                proptest::collection::vec((0u8..60, proptest::option::of(0i64..400)), 1..80),
                1..12,
            )
        ) {
            let kv = MemoryKv::default();
            let store = Store::new(kv.clone());
            let mut model: BTreeMap<String, i64> = BTreeMap::new();
            for batch in batches {
                let mut m = TimerMoves::default();
                for (user, new) in batch {
                    let user = format!("user\u{0}{user}");
                    let old = model.get(&user).copied();
                    m.moved(&user_part(&user), old.map(at), new.map(at));
                    match new {
                        Some(t) => model.insert(user, t),
                        None => model.remove(&user),
                    };
                }
                let mut ops = Vec::new();
                resolve(&kv, &m, &mut ops).unwrap();
                kv.apply(ops).unwrap();
            }
            let expected: BTreeSet<(DateTime<Utc>, String)> =
                model.iter().map(|(u, t)| (at(*t), u.clone())).collect();
            let held: Vec<(DateTime<Utc>, String)> = blocks(&kv).concat();
            proptest::prop_assert_eq!(held.clone(), expected.into_iter().collect::<Vec<_>>());
            proptest::prop_assert_eq!(store.pending_timers().unwrap(), held.len());
            proptest::prop_assert_eq!(
                store.due(at(10_000), usize::MAX).unwrap(),
                held.clone()
            );
            proptest::prop_assert_eq!(store.next_due().unwrap(), held.first().map(|h| h.0));
        }
    }
}
