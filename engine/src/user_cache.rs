//! Recently processed users, kept between batches (decoded, but for their
//! event histories: see below). The runtime is the only writer of user
//! state, and it puts a user here only after the commit that stored that
//! very state succeeded, so an entry is always what the store holds: a
//! hit spares reading, decoding and later dropping the state (together a
//! third of ingest). Anything else that changes a user (erasure) goes
//! through the runtime, which forgets the entry.
//!
//! A user is kept with each event's history as the bytes it was read or
//! written as, not decoded: an event decodes only its own name's history
//! again, and the decoded columns, several times the bytes, would take
//! most of the cache's memory (a user in the peers workload took about
//! 4.5 KiB decoded and 1.5 KiB so).
//!
//! Bounded by a count of users: the least recently used one is dropped
//! when a new one would pass the bound, so a working set that fits is
//! never read again, and one that does not costs a decode per miss, as
//! with no cache at all.

use std::collections::VecDeque;
use std::sync::Arc;
use waymark_core::model::UserState;

/// Users kept by default (each typically 1.5–3 KiB in memory, and up
/// to 1 KiB more of the journal records their stored state keeps).
pub const DEFAULT_USERS: usize = 100_000;

/// A user's entry: their id, their state (none while taken out), the
/// tick of their last use.
type Kept = (Arc<str>, Option<UserState>, u64);

#[derive(Debug)]
pub struct UserCache {
    /// Each user with the tick of their last use (and their id again, to
    /// note a use without a second lookup). A user taken out for a
    /// batch keeps their entry, empty, so that putting them back reuses
    /// it (every batch takes and puts back each of its users).
    users: foldhash::HashMap<Arc<str>, Kept>,
    /// Uses, oldest first. An entry whose tick is no longer its user's
    /// (used again since, or taken) is stale and skipped.
    order: VecDeque<(u64, Arc<str>)>,
    tick: u64,
    capacity: usize,
}

impl UserCache {
    /// A cache of at most `capacity` users; 0 keeps none.
    pub fn new(capacity: usize) -> UserCache {
        UserCache {
            users: Default::default(),
            order: VecDeque::new(),
            tick: 0,
            capacity,
        }
    }

    /// Whether the user is kept (and not taken out).
    pub fn holds(&self, id: &str) -> bool {
        self.users
            .get(id)
            .is_some_and(|(_, user, _)| user.is_some())
    }

    /// Takes the user out (the caller puts them back after committing).
    pub fn take(&mut self, id: &str) -> Option<UserState> {
        self.users.get_mut(id).and_then(|(_, user, _)| user.take())
    }

    /// Keeps a user's state as just committed, as the most recently used,
    /// with the decoded form of their histories dropped where their bytes
    /// are kept.
    pub fn put(&mut self, mut user: UserState) {
        if self.capacity == 0 {
            return;
        }
        user.history.shed_decoded();
        self.tick += 1;
        if let Some((id, kept, tick)) = self.users.get_mut(user.id.as_str()) {
            let id = id.clone();
            (*kept, *tick) = (Some(user), self.tick);
            self.order.push_back((self.tick, id));
            self.forget_stale_uses();
            return;
        }
        let id: Arc<str> = Arc::from(user.id.as_str());
        self.users
            .insert(id.clone(), (id.clone(), Some(user), self.tick));
        while self.users.len() > self.capacity {
            let Some((tick, oldest)) = self.order.pop_front() else {
                break;
            };
            if self.users.get(&oldest).is_some_and(|(_, _, t)| *t == tick) {
                self.users.remove(&oldest);
            }
        }
        self.order.push_back((self.tick, id));
        self.forget_stale_uses();
    }

    /// Stale uses never outnumber live ones by much.
    fn forget_stale_uses(&mut self) {
        if self.order.len() > 2 * self.users.len() + 64 {
            let users = &self.users;
            self.order
                .retain(|(tick, id)| users.get(id).is_some_and(|(_, _, t)| t == tick));
        }
    }

    /// Forgets a user (erased, or their commit failed).
    pub fn forget(&mut self, id: &str) {
        self.users.remove(id);
    }

    pub fn clear(&mut self) {
        self.users.clear();
        self.order.clear();
    }

    /// The most users kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    fn contains(&self, id: &str) -> bool {
        self.users
            .get(id)
            .is_some_and(|(_, user, _)| user.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(i: usize) -> UserState {
        UserState::new(&format!("u{i}"))
    }

    #[test]
    fn never_holds_more_than_its_capacity_and_keeps_the_most_recent() {
        let mut cache = UserCache::new(10);
        for i in 0..1000 {
            cache.put(user(i));
            assert!(cache.len() <= 10, "{} held after {i}", cache.len());
            for j in i.saturating_sub(9)..=i {
                assert!(cache.contains(&format!("u{j}")), "u{j} after {i}");
            }
        }
    }

    #[test]
    fn stale_uses_do_not_pile_up_when_the_same_users_come_back() {
        let mut cache = UserCache::new(100);
        for round in 0..1000 {
            let u = cache.take("u1").unwrap_or_else(|| user(1));
            cache.put(u);
            cache.put(user(round % 7));
        }
        assert!(
            cache.order.len() <= 2 * cache.len() + 65,
            "{}",
            cache.order.len()
        );
        assert_eq!(cache.len(), 7);
    }

    #[test]
    fn a_taken_user_is_gone_until_put_back_and_forget_drops_it() {
        let mut cache = UserCache::new(4);
        cache.put(user(1));
        assert!(cache.take("u1").is_some());
        assert!(cache.take("u1").is_none());
        cache.put(user(1));
        cache.forget("u1");
        assert!(cache.take("u1").is_none());
        let mut none = UserCache::new(0);
        none.put(user(1));
        assert!(none.is_empty());
    }

    #[test]
    fn the_least_recently_used_user_goes_first() {
        let mut cache = UserCache::new(3);
        cache.put(user(1));
        cache.put(user(2));
        cache.put(user(3));
        let u1 = cache.take("u1").unwrap();
        cache.put(u1); // u1 is now the most recent
        cache.put(user(4)); // so u2 goes
        assert!(!cache.contains("u2"));
        for id in ["u1", "u3", "u4"] {
            assert!(cache.contains(id), "{id}");
        }
        cache.put(user(3)); // put again: still one entry
        assert_eq!(cache.len(), 3);
    }
}
