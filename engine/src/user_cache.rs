//! Recently processed users, kept decoded between batches. The runtime is
//! the only writer of user state, and it puts a user here only after the
//! commit that stored that very state succeeded, so an entry is always what
//! the store holds: a hit spares reading, decoding and later dropping the
//! state (together a third of ingest). Anything else that changes a user
//! (erasure) goes through the runtime, which forgets the entry.
//!
//! Bounded by a count of users: the least recently used one is dropped
//! when a new one would pass the bound, so a working set that fits is
//! never read again, and one that does not costs a decode per miss, as
//! with no cache at all.

use crate::model::UserState;
use std::collections::{BTreeMap, HashMap};

/// Users kept decoded by default (each typically a few KiB in memory).
pub const DEFAULT_USERS: usize = 20_000;

#[derive(Debug)]
pub struct UserCache {
    /// Each user with the tick of their last use.
    users: HashMap<String, (UserState, u64)>,
    /// Users by last use, oldest first.
    order: BTreeMap<u64, String>,
    tick: u64,
    capacity: usize,
}

impl UserCache {
    /// A cache of at most `capacity` users; 0 keeps none.
    pub fn new(capacity: usize) -> UserCache {
        UserCache {
            users: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            capacity,
        }
    }

    /// Takes the user out (the caller puts them back after committing).
    pub fn take(&mut self, id: &str) -> Option<UserState> {
        let (user, tick) = self.users.remove(id)?;
        self.order.remove(&tick);
        Some(user)
    }

    /// Keeps a user's state as just committed, as the most recently used.
    pub fn put(&mut self, user: UserState) {
        if self.capacity == 0 {
            return;
        }
        self.forget(&user.id);
        while self.users.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.users.remove(&oldest);
        }
        self.tick += 1;
        self.order.insert(self.tick, user.id.clone());
        self.users.insert(user.id.clone(), (user, self.tick));
    }

    /// Forgets a user (erased, or their commit failed).
    pub fn forget(&mut self, id: &str) {
        if let Some((_, tick)) = self.users.remove(id) {
            self.order.remove(&tick);
        }
    }

    pub fn clear(&mut self) {
        self.users.clear();
        self.order.clear();
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    fn contains(&self, id: &str) -> bool {
        self.users.contains_key(id)
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
        assert_eq!(cache.order.len(), 3);
    }
}
