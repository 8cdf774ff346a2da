//! A batch's users while it is evaluated: each loaded once (from the
//! cache or the store) and found by id for every input of theirs. Kept in
//! a vector in the order first loaded, with an index of ids, so that
//! loading one moves their state once; a sorted map moved a state's bytes
//! along its node with every user loaded after it, and compared ids byte
//! by byte at each step of every lookup. The batch hands its users on in
//! id order, as the sorted map did.

use chrono::{DateTime, Utc};
use waymark_core::model::UserState;

/// A user's state in the batch, and their timer when loaded.
pub(crate) type BatchUser = (UserState, Option<DateTime<Utc>>);

#[derive(Default)]
pub(crate) struct BatchUsers {
    index: foldhash::HashMap<String, u32>,
    /// None: removed (absorbed by a merge).
    users: Vec<Option<BatchUser>>,
}

impl BatchUsers {
    pub(crate) fn contains_key(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&BatchUser> {
        let &i = self.index.get(id)?;
        self.users[i as usize].as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut BatchUser> {
        let &i = self.index.get(id)?;
        self.users[i as usize].as_mut()
    }

    /// Adds a user, or replaces the state the batch had of them.
    pub(crate) fn insert(&mut self, id: String, user: BatchUser) {
        if let Some(&i) = self.index.get(&id) {
            self.users[i as usize] = Some(user);
            return;
        }
        let i = u32::try_from(self.users.len()).expect("a batch holds fewer than 2^32 users");
        self.users.push(Some(user));
        self.index.insert(id, i);
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<BatchUser> {
        let i = self.index.remove(id)?;
        self.users[i as usize].take()
    }

    /// The users, in id order.
    pub(crate) fn into_values(self) -> Vec<BatchUser> {
        let BatchUsers { index, mut users } = self;
        let mut order: Vec<(String, u32)> = index.into_iter().collect();
        order.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        order
            .into_iter()
            .filter_map(|(_, i)| users[i as usize].take())
            .collect()
    }
}

impl std::ops::Index<&str> for BatchUsers {
    type Output = BatchUser;

    /// Panics if the batch does not have the user, as a map's index does.
    fn index(&self, id: &str) -> &BatchUser {
        self.get(id).expect("a user of the batch")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> BatchUser {
        (UserState::new(id), None)
    }

    #[test]
    fn users_go_on_in_id_order_without_the_removed_and_with_the_latest_state() {
        let mut users = BatchUsers::default();
        for id in ["u3", "u1", "u2", "u10"] {
            users.insert(id.into(), user(id));
        }
        assert!(users.remove("u2").is_some());
        assert!(users.remove("u2").is_none());
        assert!(!users.contains_key("u2"));
        let mut replaced = UserState::new("u3");
        replaced.next_instance = 7;
        users.insert("u3".into(), (replaced, None));
        users.get_mut("u1").expect("u1").0.next_instance = 5;
        assert_eq!(users["u1"].0.next_instance, 5);
        let out: Vec<(String, u64)> = users
            .into_values()
            .into_iter()
            .map(|(s, _)| (s.id.to_string(), s.next_instance))
            .collect();
        assert_eq!(out, [("u1".into(), 5), ("u10".into(), 0), ("u3".into(), 7)]);
    }
}
