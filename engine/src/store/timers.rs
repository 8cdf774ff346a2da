//! The timers, `t/{due}/{user}`: each user's next wake-up, keyed by due
//! time first so that a range scan yields them in order (ties by user).
//! A timer is written with the user's state and is always that state's
//! [`UserState::next_wake`], so the state is its index: rescheduling knows
//! the old timer from the state as loaded, and erasure from the state as
//! stored. (A separate `w/{user}` index was one more key per waiting user,
//! and sled's memory grows with its number of keys: a restarted daemon
//! holding 10M timers kept ~1.3 GiB with it.)

use super::keys::{key, prefix_end, split_user_part, time_from_key, time_key, user_part};
use super::{Kv, Op, Result, Store};
use chrono::{DateTime, Utc};
use waymark_core::model::UserState;

impl<K: Kv> Store<K> {
    /// The user's timer, if the store holds one: their stored state's next
    /// wake-up, when its timer key is there.
    pub fn timer_of(&self, id: &str) -> Result<Option<DateTime<Utc>>> {
        let Some(due) = self.user(id)?.and_then(|state| state.next_wake()) else {
            return Ok(None);
        };
        let stored = self
            .kv
            .get(&key("t", &[&time_key(due), &user_part(id)]))?
            .is_some();
        Ok(stored.then_some(due))
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

    /// Users with a timer pending (each has at most one).
    pub fn pending_timers(&self) -> Result<usize> {
        self.kv.count(b"t/", &prefix_end(b"t/"))
    }

    /// The writes moving a user's timer (`id` as [`user_part`] writes it)
    /// from `old` to `new`; none if it did not move.
    pub(super) fn write_timer(
        id: &[u8],
        old: Option<DateTime<Utc>>,
        new: Option<DateTime<Utc>>,
        ops: &mut Vec<Op>,
    ) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            ops.push(Op::Delete(key("t", &[&time_key(old), id])));
        }
        if let Some(due) = new {
            ops.push(Op::Put(key("t", &[&time_key(due), id]), Vec::new()));
        }
    }

    /// The write removing the timer of a user whose stored state is
    /// `stored` (`id` as [`user_part`] writes it).
    pub(super) fn erase_timer(id: &[u8], stored: Option<&UserState>, ops: &mut Vec<Op>) {
        if let Some(due) = stored.and_then(UserState::next_wake) {
            ops.push(Op::Delete(key("t", &[&time_key(due), id])));
        }
    }
}
