//! The timers, `t/{due}/{user}` with its per-user index `w/{user}`: each
//! user's next wake-up. Timers are keyed by due time first, so a range scan
//! yields them in order (ties by user); the index makes erasure and
//! rescheduling one lookup. Both are written with the user's state.

use super::keys::{key, prefix_end, split_user_part, time_from_key, time_key, user_part};
use super::{Kv, Op, Result, Store};
use chrono::{DateTime, Utc};

impl<K: Kv> Store<K> {
    /// The user's timer as its index (`w/`) holds it, if they have one.
    pub fn timer_of(&self, id: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self
            .kv
            .get(&key("w", &[&user_part(id)]))?
            .and_then(|due| time_from_key(&due)))
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

    /// Users with a timer pending.
    pub fn pending_timers(&self) -> Result<usize> {
        self.kv.count(b"w/", &prefix_end(b"w/"))
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
        match new {
            Some(due) => {
                ops.push(Op::Put(key("t", &[&time_key(due), id]), Vec::new()));
                ops.push(Op::Put(key("w", &[id]), time_key(due).to_vec()));
            }
            None => ops.push(Op::Delete(key("w", &[id]))),
        }
    }

    /// The writes removing a user's timer, as its index holds it.
    pub(super) fn erase_timer(&self, id: &[u8]) -> Result<Vec<Op>> {
        let mut ops = vec![Op::Delete(key("w", &[id]))];
        if let Some(due) = self.kv.get(&key("w", &[id]))? {
            ops.push(Op::Delete(key("t", &[&due, id])));
        }
        Ok(ops)
    }
}
