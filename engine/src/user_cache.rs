//! Recently processed users, kept between batches (decoded, but for their
//! event histories: see below). The runtime is the only writer of user
//! state, and it puts a user here only after the commit that stored that
//! very state succeeded, so an entry is always what the store holds: a
//! hit spares reading, decoding and later dropping the state (together a
//! third of ingest). Anything else that changes a user (erasure) goes
//! through the runtime, which forgets the entry.
//!
//! A user is kept with each event's history as the bytes it was read or
//! written as, not decoded: an event decodes at most its own name's
//! history again (the usual one is recorded on the bytes, and only a
//! script reading the history decodes it), and the decoded columns,
//! several times the bytes, would take
//! most of the cache's memory (a user in the peers workload took about
//! 4.5 KiB decoded and 1.5 KiB so).
//!
//! Bounded by a count of users: the least recently used one is dropped
//! when a new one would pass the bound, so a working set that fits is
//! never read again, and one that does not costs a decode per miss, as
//! with no cache at all.
//!
//! Ids index slots of a table apart from the states: a lookup (three per
//! user and batch: read ahead, take, put back) walks a table of small
//! entries, each id in place when short, rather than one whose every
//! entry held a whole state and whose ids each lived in an allocation of
//! their own, so that every lookup missed the caches more than once.

use compact_str::CompactString;
use std::collections::VecDeque;
use waymark_core::model::UserState;

/// Users kept by default (each typically 1.5–3 KiB in memory, and up
/// to 1 KiB more of the journal records their stored state keeps).
pub const DEFAULT_USERS: usize = 100_000;

/// A user's place in the table: their id (to drop them from the index
/// when they go), their state (none while taken out), the tick of their
/// last use (0 for a free slot: ticks start at 1).
#[derive(Debug)]
struct Slot {
    id: CompactString,
    state: Option<UserState>,
    tick: u64,
}

#[derive(Debug)]
pub struct UserCache {
    /// Each user's slot. A user taken out for a batch keeps their slot,
    /// empty, so that putting them back reuses it (every batch takes and
    /// puts back each of its users).
    index: foldhash::HashMap<CompactString, u32>,
    slots: Vec<Slot>,
    /// Slots of users no longer kept, to be used again.
    free: Vec<u32>,
    /// Uses, oldest first: a tick and a slot. A use whose tick is no
    /// longer its slot's (used again since, or the slot freed) is stale
    /// and skipped.
    order: VecDeque<(u64, u32)>,
    tick: u64,
    capacity: usize,
}

impl UserCache {
    /// A cache of at most `capacity` users; 0 keeps none.
    pub fn new(capacity: usize) -> UserCache {
        UserCache {
            index: Default::default(),
            slots: Vec::new(),
            free: Vec::new(),
            order: VecDeque::new(),
            tick: 0,
            capacity,
        }
    }

    fn slot(&self, id: &str) -> Option<&Slot> {
        self.index.get(id).map(|&i| &self.slots[i as usize])
    }

    /// Whether the user is kept (and not taken out).
    pub fn holds(&self, id: &str) -> bool {
        self.slot(id).is_some_and(|s| s.state.is_some())
    }

    /// Starts fetching a kept user's slot: the first of the hints, a few
    /// users apart, that [`UserCache::prefetch_state`],
    /// [`UserCache::prefetch_lists`] and [`UserCache::prefetch_event`]
    /// follow once each has arrived. A batch's users are spread over the
    /// table and each is a chain of fetches (slot, state, lists, the
    /// event's history); started early, those of the next users overlap
    /// the work on this one. Hints change nothing.
    pub fn prefetch_slot(&self, id: &str) {
        if let Some(&i) = self.index.get(id) {
            waymark_core::hint::prefetch(&self.slots[i as usize]);
        }
    }

    /// Starts fetching a kept user's state (its slot fetched already).
    pub fn prefetch_state(&self, id: &str) {
        if let Some(Slot {
            state: Some(state), ..
        }) = self.slot(id)
        {
            state.prefetch_fields();
        }
    }

    /// Starts fetching a kept user's traits and list of event names
    /// (their state fetched already).
    pub fn prefetch_lists(&self, id: &str) {
        if let Some(Slot {
            state: Some(state), ..
        }) = self.slot(id)
        {
            state.prefetch_lists();
        }
    }

    /// Starts fetching a kept user's history of the event `name` (their
    /// list of event names fetched already).
    pub fn prefetch_event(&self, id: &str, name: &str) {
        if let Some(Slot {
            state: Some(state), ..
        }) = self.slot(id)
        {
            state.history.prefetch_event(name);
        }
    }

    /// Takes the user out (the caller puts them back after committing).
    pub fn take(&mut self, id: &str) -> Option<UserState> {
        let &i = self.index.get(id)?;
        self.slots[i as usize].state.take()
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
        if let Some(&i) = self.index.get(user.id.as_str()) {
            let slot = &mut self.slots[i as usize];
            (slot.state, slot.tick) = (Some(user), self.tick);
            self.order.push_back((self.tick, i));
            self.forget_stale_uses();
            return;
        }
        let slot = Slot {
            id: user.id.clone(),
            state: Some(user),
            tick: self.tick,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 users kept")
            }
        };
        self.index.insert(self.slots[i as usize].id.clone(), i);
        while self.index.len() > self.capacity {
            let Some((tick, oldest)) = self.order.pop_front() else {
                break;
            };
            if self.slots[oldest as usize].tick == tick {
                self.free_slot(oldest);
            }
        }
        self.order.push_back((self.tick, i));
        self.forget_stale_uses();
    }

    /// Drops a slot's user from the index and the slot's state.
    fn free_slot(&mut self, i: u32) {
        let slot = &mut self.slots[i as usize];
        self.index.remove(slot.id.as_str());
        *slot = Slot {
            id: CompactString::default(),
            state: None,
            tick: 0,
        };
        self.free.push(i);
    }

    /// Stale uses never outnumber live ones by much.
    fn forget_stale_uses(&mut self) {
        if self.order.len() > 2 * self.index.len() + 64 {
            let slots = &self.slots;
            self.order
                .retain(|&(tick, i)| slots[i as usize].tick == tick);
        }
    }

    /// Forgets a user (erased, or their commit failed).
    pub fn forget(&mut self, id: &str) {
        if let Some(&i) = self.index.get(id) {
            self.free_slot(i);
        }
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.free.clear();
        self.order.clear();
    }

    /// The most users kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
                assert!(cache.holds(&format!("u{j}")), "u{j} after {i}");
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
    fn a_slot_used_again_is_not_taken_for_its_former_user() {
        let mut cache = UserCache::new(3);
        cache.put(user(1));
        cache.put(user(2));
        cache.put(user(3));
        cache.forget("u1");
        // u4 takes u1's slot; u1's old use of it must not count as u4's.
        cache.put(user(4));
        cache.put(user(5));
        assert!(!cache.holds("u2"), "the oldest user kept goes");
        for id in ["u3", "u4", "u5"] {
            assert!(cache.holds(id), "{id}");
        }
        assert_eq!(
            cache.take("u4").map(|u| u.id.to_string()),
            Some("u4".into())
        );
        assert!(cache.take("u1").is_none());
        assert_eq!(cache.len(), 3);
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
        assert!(!cache.holds("u2"));
        for id in ["u1", "u3", "u4"] {
            assert!(cache.holds(id), "{id}");
        }
        cache.put(user(3)); // put again: still one entry
        assert_eq!(cache.len(), 3);
    }
}
