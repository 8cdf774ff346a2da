//! The preview shell that `simulate` runs: the same core as the daemon
//! ([`waymark_core::machine::handle`]), over users kept in memory in their
//! decoded form. Nothing is encoded, committed or flushed: a preview has no
//! crash to survive. What the daemon's shell promises about order holds
//! here too, so a preview tells what the daemon will do: inputs run one
//! after another, timers fire in order of (due time, user) with the clock
//! at their due time (to the microsecond, as the store keys them), cron
//! triggers after the timers due at the same moment and over users in id
//! order, and a message id seen within the dedup window is dropped.

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use waymark_core::deployment::{Deployment, Due, HistoryKept};
use waymark_core::journal::{Kind, Record};
use waymark_core::machine::{self as core, Globals};
use waymark_core::model::{Input, UserState};
use waymark_core::stats::{Passage, VersionStats};

/// How many due timers are woken before the next are looked up: the
/// daemon's page, so a timer that does not move is caught the same way.
const PAGE: usize = super::runtime::PAGE;

/// The core's shell over users in memory.
pub struct Preview {
    deployment: Deployment,
    globals: Globals,
    /// Where each user an input reached is in [`Preview::members`].
    users: FxHashMap<Rc<str>, u32>,
    /// Every user an input reached, decoded, with the timer they have, in
    /// the order they came: blocks of [`BLOCK`] that never move once made
    /// (growing one vector of states would copy them all).
    members: Vec<Vec<Member>>,
    /// Their ids in order, as of the last cron fire, and the ids of users
    /// who came after it: a fire sorts only the newcomers.
    in_order: Vec<Rc<str>>,
    newcomers: Vec<Rc<str>>,
    /// Pending timers: (due in microseconds, user).
    timers: BTreeSet<(i64, Box<str>)>,
    /// The last moment cron schedules were fired up to.
    schedules_done: Option<DateTime<Utc>>,
    seen: SeenIds,
    /// Step passages per journey, when counted ([`Preview::count_steps`]).
    steps: Option<StepCounts>,
    /// Ids merged into another profile, and that profile's id. Their
    /// members stay where they were, emptied (a member's place is its
    /// number), and are passed over.
    links: FxHashMap<String, String>,
    /// Declared identifiers and the most ids a profile gathers, and who
    /// holds each identifier value.
    identity: crate::config::Identity,
    claims: FxHashMap<(String, String), String>,
}

/// Journey steps' passages counted by a [`Preview`]: per journey, only the
/// `entered` and `passed` of its steps (a preview runs one version each).
#[derive(Default)]
struct StepCounts {
    passages: Vec<Passage>,
    journeys: BTreeMap<String, VersionStats>,
}

/// How many members a block of [`Preview::members`] holds.
const BLOCK: usize = 1024;

/// Laid out as declared and at the start of a cache line: with the
/// fields of [`UserState`] every input reads at its start (the user's id,
/// kept in place, among them), an input touches the member's first three
/// lines, not whichever of its six the fields fell on.
#[repr(C, align(64))]
struct Member {
    /// Their timer as [`Preview::timers`] holds it, or [`NO_TIMER`].
    timer: i64,
    state: UserState,
}

/// A member's timer when they have none.
const NO_TIMER: i64 = i64::MAX;

/// A user as [`UserNumbers`] numbered them: the users of a stream of
/// inputs numbered in the order they first appear, which is the order a
/// [`Preview`] fed the same inputs makes its members in.
#[derive(Clone, Copy, Default)]
pub struct NumberedUser {
    pub(crate) number: u32,
}

/// Numbers the users of a stream of inputs in the order they first
/// appear, on a thread other than the preview's: what the preview would
/// otherwise hash and compare for every input. A number is only a hint:
/// the preview checks the member's id and falls back to looking it up
/// (two ids of one 64-bit hash would share a number).
#[derive(Default)]
pub struct UserNumbers {
    ids: HashSlots<u32>,
}

impl UserNumbers {
    pub fn number(&mut self, user: &str) -> NumberedUser {
        self.number_hash(Self::hash(user))
    }

    /// The hash a user is numbered by.
    pub fn hash(user: &str) -> u64 {
        crate::store::id_hash(user.as_bytes())
    }

    /// [`UserNumbers::number`] for the user whose hash is `hash`.
    pub fn number_hash(&mut self, hash: u64) -> NumberedUser {
        let next = u32::try_from(self.ids.len).unwrap_or(u32::MAX);
        let (number, there) = self.ids.get_or_insert(hash);
        if !there {
            *number = next;
        }
        NumberedUser { number: *number }
    }

    /// Starts a lookup of `hash` (see [`HashSlots::touch`]).
    pub fn touch(&self, hash: u64) -> u64 {
        self.ids.touch(hash)
    }
}

impl Preview {
    pub fn new(mut deployment: Deployment) -> Preview {
        // The scripts are fixed for the whole run.
        deployment.history = HistoryKept::Read;
        Preview {
            deployment,
            globals: Globals::default(),
            users: FxHashMap::default(),
            members: Vec::new(),
            in_order: Vec::new(),
            newcomers: Vec::new(),
            timers: BTreeSet::new(),
            schedules_done: None,
            seen: SeenIds::default(),
            steps: None,
            links: FxHashMap::default(),
            identity: Default::default(),
            claims: FxHashMap::default(),
        }
    }

    /// How many users inputs have reached.
    pub fn members(&self) -> usize {
        self.users.len()
    }

    /// Starts cron schedules from `at` (they fire only after it).
    pub fn start_schedules_at(&mut self, at: DateTime<Utc>) {
        self.schedules_done = Some(at);
    }

    /// Sets the traits that identify a person and the most ids a profile
    /// gathers, as the daemon's `[identity]` does.
    pub fn set_identity(&mut self, identity: crate::config::Identity) {
        self.identity = identity;
    }

    /// Counts from now on how many instances come to each journey step and
    /// go on from it (what a report paints on steps that write no record).
    pub fn count_steps(&mut self) {
        self.steps.get_or_insert_with(StepCounts::default);
    }

    /// The step passages counted per journey since [`Preview::count_steps`]
    /// (as [`VersionStats::steps`] and `steps_by_arm` entries with only
    /// `entered` and `passed`).
    pub fn step_counts(&self) -> impl Iterator<Item = (&str, &VersionStats)> {
        self.steps
            .iter()
            .flat_map(|s| s.journeys.iter().map(|(j, v)| (j.as_str(), v)))
    }

    /// Handles one input at `now`, adding its records to `out`. An event
    /// whose message id was seen within the dedup window is dropped.
    pub fn handle(&mut self, input: &Input, now: DateTime<Utc>, out: &mut Vec<Record>) {
        let message_id = input.message_id();
        if let Some(id) = message_id
            && !self.seen.insert(id, now)
        {
            return;
        }
        self.handle_fresh(input, now, out)
    }

    /// [`Preview::handle`] for an input whose message id the caller has
    /// already checked, with a [`SeenIds`] of its own fed every input in
    /// order at its time (`simulate` does so on the thread that parses).
    pub fn handle_fresh(&mut self, input: &Input, now: DateTime<Utc>, out: &mut Vec<Record>) {
        self.handle_numbered(None, input, now, out)
    }

    /// [`Preview::handle_fresh`] for an input whose user a [`UserNumbers`]
    /// numbered, fed every input given to this preview in order.
    pub fn handle_numbered(
        &mut self,
        numbered: Option<&NumberedUser>,
        input: &Input,
        now: DateTime<Utc>,
        out: &mut Vec<Record>,
    ) {
        if let Input::Merge {
            user, from, how, ..
        } = input
        {
            return self.merge(user, from, how, now, out);
        }
        let rerouted;
        let linked = match self.links.is_empty() {
            true => None,
            false => self.links.get(input.user()),
        };
        let (input, numbered) = match linked {
            None => (input, numbered),
            Some(survivor) => {
                rerouted = input.for_user(survivor);
                (&rerouted, None)
            }
        };
        let user = input.user();
        let declared = crate::runtime::declared(&self.identity.identifiers, input);
        for (name, value) in &declared {
            if let Some(holder) = self.claims.get(&(name.clone(), value.clone()))
                && holder != user
            {
                let holder = holder.clone();
                self.merge(user, &holder, &format!("identifier:{name}"), now, out);
            }
        }
        let index = self.member_index(numbered, user);
        let member = &mut self.members[index / BLOCK][index % BLOCK];
        let before: Vec<Option<String>> = declared
            .iter()
            .map(|(name, _)| {
                member
                    .state
                    .traits
                    .get(name)
                    .and_then(crate::runtime::identifier_text)
            })
            .collect();
        core::handle_into(
            &self.deployment,
            &mut self.globals,
            &mut member.state,
            input,
            now,
            out,
            self.steps.as_mut().map(|s| &mut s.passages),
        );
        self.after_input(index, user);
        for ((name, value), old) in declared.into_iter().zip(before) {
            if let Some(old) = old.filter(|old| *old != value) {
                let key = (name.clone(), old);
                if self.claims.get(&key).is_some_and(|h| h == user) {
                    self.claims.remove(&key);
                }
            }
            self.claims.insert((name, value), user.to_string());
        }
    }

    /// Merges the profile `from` leads to into the one `into` leads to,
    /// as the daemon does.
    fn merge(
        &mut self,
        into: &str,
        from: &str,
        how: &str,
        now: DateTime<Utc>,
        out: &mut Vec<Record>,
    ) {
        let lead = |links: &FxHashMap<String, String>, id: &str| {
            links.get(id).cloned().unwrap_or_else(|| id.to_string())
        };
        let survivor = lead(&self.links, into);
        let absorbed_id = lead(&self.links, from);
        if absorbed_id == survivor {
            return;
        }
        let index = self.member_index(None, &survivor);
        let known = &self.members[index / BLOCK][index % BLOCK].state.merged_ids;
        if known.iter().any(|m| m == from) {
            return;
        }
        let theirs = self.users.get(absorbed_id.as_str()).map_or(0, |&at| {
            let at = at as usize;
            self.members[at / BLOCK][at % BLOCK].state.merged_ids.len()
        });
        let gathered = known.len() + 1 + theirs;
        if gathered > self.identity.max_ids {
            let max = self.identity.max_ids;
            out.push(crate::runtime::too_many_ids(
                now,
                &survivor,
                &absorbed_id,
                gathered,
                max,
            ));
            return;
        }
        let absorbed = self.users.get(absorbed_id.as_str()).copied().map(|at| {
            let at = at as usize;
            let member = &mut self.members[at / BLOCK][at % BLOCK];
            if member.timer != NO_TIMER {
                self.timers
                    .remove(&(member.timer, Box::from(absorbed_id.as_str())));
                member.timer = NO_TIMER;
            }
            std::mem::take(&mut member.state)
        });
        let also = absorbed.as_ref().map_or(&[][..], |s| &s.merged_ids[..]);
        crate::runtime::relink(&mut self.links, &absorbed_id, also, &survivor);
        let member = &mut self.members[index / BLOCK][index % BLOCK];
        core::merge_into(
            &self.deployment,
            &mut self.globals,
            &mut member.state,
            absorbed,
            &absorbed_id,
            how,
            now,
            out,
            self.steps.as_mut().map(|s| &mut s.passages),
        );
        self.after_input(index, &survivor);
    }

    /// After an input to the member at `index` (`user`): its timer moved
    /// and its step passages counted.
    fn after_input(&mut self, index: usize, user: &str) {
        if let Some(steps) = &mut self.steps {
            for p in steps.passages.drain(..) {
                match steps.journeys.get_mut(p.journey.as_str()) {
                    Some(stats) => stats,
                    None => steps.journeys.entry(p.journey.to_string()).or_default(),
                }
                .add_passage(&p);
            }
        }
        let member = &mut self.members[index / BLOCK][index % BLOCK];
        let timer = member.state.next_wake().map_or(NO_TIMER, micros);
        if timer != member.timer {
            if member.timer != NO_TIMER {
                self.timers.remove(&(member.timer, Box::from(user)));
            }
            if timer != NO_TIMER {
                self.timers.insert((timer, user.into()));
            }
            member.timer = timer;
        }
    }

    /// The member a numbered user's number holds, if any (it may be
    /// another user of the same hash: only a hint).
    fn numbered_member(&self, who: &NumberedUser) -> Option<&Member> {
        let index = who.number as usize;
        self.members.get(index / BLOCK)?.get(index % BLOCK)
    }

    /// Starts fetching the lines of a member's state that every input
    /// reads (see [`Member`]), a few inputs before theirs runs.
    pub fn prefetch_member(&self, who: &NumberedUser) {
        if let Some(m) = self.numbered_member(who) {
            waymark_core::hint::prefetch(m);
            waymark_core::hint::prefetch(&m.state.history);
            waymark_core::hint::prefetch(&m.state.journeys);
        }
    }

    /// Starts fetching the lists of a member's event names and traits,
    /// once the member was fetched ([`Preview::prefetch_member`]).
    pub fn prefetch_lists(&self, who: &NumberedUser) {
        if let Some(m) = self.numbered_member(who) {
            m.state.history.prefetch_entries();
            waymark_core::hint::prefetch_entries(&m.state.traits);
        }
    }

    /// Starts fetching the bytes of a member's trait names (a condition on
    /// a trait compares them) and the history of the input's event, once
    /// the lists were fetched ([`Preview::prefetch_lists`]).
    pub fn prefetch_event(&self, who: &NumberedUser, input: &Input) {
        if let Some(m) = self.numbered_member(who) {
            waymark_core::hint::prefetch_name_bytes(&m.state.traits);
            if let Input::Track(event) = input {
                m.state.history.prefetch_event(&event.name);
            }
        }
    }

    /// Where `user` is among the members, made if new. A numbered user
    /// whose number holds a member of the same id is found without a
    /// lookup.
    fn member_index(&mut self, numbered: Option<&NumberedUser>, user: &str) -> usize {
        if let Some(n) = numbered {
            let index = n.number as usize;
            let hit = self
                .members
                .get(index / BLOCK)
                .and_then(|block| block.get(index % BLOCK))
                .is_some_and(|m| m.state.id.as_bytes() == user.as_bytes());
            if hit {
                return index;
            }
        }
        match self.users.get(user) {
            Some(&index) => index as usize,
            None => {
                let index = self.users.len();
                if self.members.last().is_none_or(|b| b.len() == BLOCK) {
                    self.members.push(Vec::with_capacity(BLOCK));
                }
                let block = self.members.last_mut().expect("a block was just made");
                block.push(Member {
                    timer: NO_TIMER,
                    state: UserState::new(user),
                });
                let id: Rc<str> = user.into();
                self.newcomers.push(id.clone());
                self.users
                    .insert(id, u32::try_from(index).unwrap_or(u32::MAX));
                index
            }
        }
    }

    /// Fires every timer and cron trigger due up to and including `until`,
    /// in time order, each at its own time, adding the records to `out`.
    pub fn advance_to(&mut self, until: DateTime<Utc>, out: &mut Vec<Record>) {
        self.advance_to_paged(until, out, &mut |_| {})
    }

    /// [`Preview::advance_to`], calling `page` with the records so far after
    /// every page of woken users and of a schedule's audience, so that a
    /// caller can take them: a daily schedule over a million members makes
    /// records for each member in one call.
    pub fn advance_to_paged(
        &mut self,
        until: DateTime<Utc>,
        out: &mut Vec<Record>,
        page: &mut dyn FnMut(&mut Vec<Record>),
    ) {
        loop {
            let timer = self.timers.first().map(|(due, _)| from_micros(*due));
            let after = self.schedules_done.unwrap_or(until);
            match self.deployment.next_due(timer, after, until) {
                None => break,
                Some(Due::Timers(t)) => self.fire_timers(t, out, page),
                Some(Due::Schedules(c, journeys)) => {
                    self.fire_schedules(c, &journeys, out, page);
                    self.schedules_done = Some(c);
                }
            }
        }
        if self.schedules_done.is_none_or(|d| d < until) {
            self.schedules_done = Some(until);
        }
    }

    /// Wakes every user whose timer is due at `at`, a page at a time.
    fn fire_timers(
        &mut self,
        at: DateTime<Utc>,
        out: &mut Vec<Record>,
        page: &mut dyn FnMut(&mut Vec<Record>),
    ) {
        let until = micros(at);
        let mut previous: Vec<(i64, Box<str>)> = Vec::new();
        loop {
            let due: Vec<(i64, Box<str>)> = self
                .timers
                .iter()
                .take_while(|(t, _)| *t <= until)
                .take(PAGE)
                .cloned()
                .collect();
            if due.is_empty() {
                return;
            }
            if due == previous {
                // Waking these users did not move their timers: a broken
                // invariant. Say so rather than loop forever.
                for (_, user) in &due {
                    let mut r = Record::new(at, user, Kind::Error);
                    r.message = Some("a timer did not advance after it fired".into());
                    out.push(r);
                }
                return;
            }
            for (_, user) in &due {
                let wake = Input::Wake {
                    user: user.to_string(),
                };
                self.handle(&wake, at, out);
            }
            page(out);
            previous = due;
        }
    }

    /// Runs schedule triggers over every user, in id order.
    fn fire_schedules(
        &mut self,
        at: DateTime<Utc>,
        journeys: &[(String, usize)],
        out: &mut Vec<Record>,
        page: &mut dyn FnMut(&mut Vec<Record>),
    ) {
        // Timers due at the same moment fire first.
        self.fire_timers(at, out, page);
        self.order_users();
        // One input per journey, its user set for each member in turn.
        let mut inputs: Vec<Input> = journeys
            .iter()
            .map(|(journey, trigger)| Input::Scheduled {
                user: String::new(),
                journey: journey.clone(),
                trigger: *trigger,
            })
            .collect();
        let ids = std::mem::take(&mut self.in_order);
        for members in ids.chunks(PAGE) {
            for user in members {
                if self.links.contains_key(&**user) {
                    // Merged into another member, who is on the list.
                    continue;
                }
                for input in &mut inputs {
                    if let Input::Scheduled { user: id, .. } = input {
                        id.clear();
                        id.push_str(user);
                    }
                    self.handle(input, at, out);
                }
            }
            page(out);
        }
        self.in_order = ids;
    }

    /// Merges the users who came since the last fire into the ordered ids.
    fn order_users(&mut self) {
        if self.newcomers.is_empty() {
            return;
        }
        self.newcomers.sort_unstable();
        let known = std::mem::take(&mut self.in_order);
        let mut merged = Vec::with_capacity(known.len() + self.newcomers.len());
        let mut known = known.into_iter().peekable();
        for new in self.newcomers.drain(..) {
            while let Some(k) = known.next_if(|k| *k < new) {
                merged.push(k);
            }
            merged.push(new);
        }
        merged.extend(known);
        self.in_order = merged;
    }
}

/// A time as the store keys timers: whole microseconds.
fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Message ids seen within the dedup window, as 64-bit hashes (the
/// store's [`crate::store::id_hash`]) with when each was first seen, in
/// seconds. Ids past the window are swept out whenever the table has
/// doubled since the last sweep, so it holds at most about twice the
/// window's ids.
#[derive(Default)]
pub struct SeenIds {
    ids: HashSlots<i64>,
    /// The size at which the next sweep runs.
    sweep_at: usize,
}

impl SeenIds {
    /// Whether `id` is new at `now` (not seen within the window before it);
    /// remembers it if so.
    pub fn insert(&mut self, id: &str, now: DateTime<Utc>) -> bool {
        self.insert_hash(crate::store::id_hash(id.as_bytes()), now)
    }

    /// [`SeenIds::insert`] for the id whose hash is `hash`.
    pub fn insert_hash(&mut self, hash: u64, now: DateTime<Utc>) -> bool {
        let at = now.timestamp();
        let horizon = at.saturating_sub(crate::store::DEDUP_DAYS * 86_400);
        let (seen, there) = self.ids.get_or_insert(hash);
        if there && *seen >= horizon {
            return false;
        }
        *seen = at;
        if self.ids.len >= self.sweep_at {
            self.ids.retain(|seen| *seen >= horizon);
            self.sweep_at = (2 * self.ids.len).max(1024);
        }
        true
    }

    /// Starts a lookup of `hash` (see [`HashSlots::touch`]).
    pub fn touch(&self, hash: u64) -> u64 {
        self.ids.touch(hash)
    }
}

/// A table from 64-bit hashes to small values, open addressed: a lookup
/// reads one slot (key and value side by side), and mostly one cache
/// line, so it can be started early ([`HashSlots::touch`]) and its miss
/// to main memory overlapped with other work. Tables of a hundred
/// thousand users or a million message ids are far larger than the
/// caches, and waiting for each lookup's line was a quarter of the time
/// `simulate` spends reading events.
struct HashSlots<V> {
    /// Key and value; key 0 marks an empty slot (a hash of 0 is kept as 1).
    slots: Vec<(u64, V)>,
    len: usize,
    /// Where a sweep gathers the entries it keeps, kept for the next.
    scratch: Vec<(u64, V)>,
}

impl<V> Default for HashSlots<V> {
    fn default() -> Self {
        HashSlots {
            slots: Vec::new(),
            len: 0,
            scratch: Vec::new(),
        }
    }
}

impl<V: Copy + Default> HashSlots<V> {
    fn key(hash: u64) -> u64 {
        hash.max(1)
    }

    /// Reads the slot a lookup of `hash` starts at, so that its line is
    /// on its way to the cache before the lookup: the caller keeps what
    /// it returns from being optimised away (`std::hint::black_box`).
    fn touch(&self, hash: u64) -> u64 {
        let mask = self.slots.len().wrapping_sub(1);
        self.slots
            .get(Self::key(hash) as usize & mask)
            .map_or(0, |slot| slot.0)
    }

    /// The value under `hash`, made (as `V::default()`) if it was not
    /// there, and whether it was.
    fn get_or_insert(&mut self, hash: u64) -> (&mut V, bool) {
        if 2 * (self.len + 1) > self.slots.len() {
            self.grow((2 * self.slots.len()).max(1024));
        }
        let key = Self::key(hash);
        let mask = self.slots.len() - 1;
        let mut i = key as usize & mask;
        loop {
            match self.slots[i].0 {
                k if k == key => return (&mut self.slots[i].1, true),
                0 => {
                    self.slots[i].0 = key;
                    self.len += 1;
                    return (&mut self.slots[i].1, false);
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Keeps the entries whose value passes `keep`, in a table a quarter
    /// full at most: the same table when that is its size, as it is when
    /// a sweep keeps about as many as the last one did. (A fresh table for
    /// every sweep was fresh memory for the system to zero each time:
    /// nearly half of `simulate`'s page faults.)
    fn retain(&mut self, keep: impl Fn(&V) -> bool) {
        let mut live = std::mem::take(&mut self.scratch);
        live.clear();
        live.extend(self.slots.iter().filter(|(k, v)| *k != 0 && keep(v)));
        let size = (4 * live.len()).next_power_of_two().max(1024);
        if size == self.slots.len() {
            self.slots.fill((0, V::default()));
        } else {
            self.slots = vec![(0, V::default()); size];
        }
        self.len = 0;
        self.put_all(live.drain(..));
        self.scratch = live;
    }

    /// Moves the entries to a table of `size` slots.
    fn grow(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.slots, vec![(0, V::default()); size]);
        self.len = 0;
        self.put_all(old.into_iter().filter(|(key, _)| *key != 0));
    }

    /// Puts entries known to be new and to fit.
    fn put_all(&mut self, entries: impl Iterator<Item = (u64, V)>) {
        let mask = self.slots.len() - 1;
        for (key, value) in entries {
            let mut i = key as usize & mask;
            while self.slots[i].0 != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = (key, value);
            self.len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use compact_str::CompactString;
    use waymark_dsl::value::Value;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn track(user: &str, name: &str, id: &str, when: DateTime<Utc>) -> Input {
        Input::Track(waymark_core::model::Event {
            user: user.into(),
            name: name.into(),
            properties: Value::Record(Default::default()),
            at: when,
            message_id: Some(id.into()),
        })
    }

    fn plan(source: &str) -> Deployment {
        let mut sources = waymark_dsl::Sources::new();
        sources.add("j.journey", source);
        let options = waymark_dsl::Options {
            functions: waymark_stdlib::stdlib(),
            channels: None,
        };
        let compiled = waymark_dsl::compile(sources, options);
        Deployment::new(compiled.plan.expect("compiles"))
    }

    #[test]
    fn hash_slots_keep_every_key_through_growth_and_sweeps() {
        let mut slots = HashSlots::<u32>::default();
        assert_eq!(slots.touch(7), 0, "an empty table touches nothing");
        // Keys that share low bits probe past each other; 0 is kept as 1.
        let keys: Vec<u64> = (1..5_000u64).map(|i| i << 20).chain([0]).collect();
        for (i, &k) in keys.iter().enumerate() {
            let (v, there) = slots.get_or_insert(k);
            assert!(!there || k == 0, "{k} is new");
            *v = i as u32;
        }
        assert_eq!(slots.get_or_insert(1), (&mut (keys.len() as u32 - 1), true));
        for (i, &k) in keys.iter().enumerate().take(keys.len() - 1) {
            assert_eq!(slots.get_or_insert(k), (&mut (i as u32), true), "{k}");
        }
        assert_eq!(slots.len, keys.len());
        assert!(2 * slots.len <= slots.slots.len(), "at most half full");
        // A sweep keeps exactly the entries it is told to.
        slots.retain(|v| v % 2 == 0);
        assert_eq!(slots.len, keys.len().div_ceil(2));
        for (i, &k) in keys.iter().enumerate() {
            let (_, there) = slots.get_or_insert(k);
            assert_eq!(there, i % 2 == 0, "{k}");
        }
    }

    #[test]
    fn seen_ids_are_swept_past_the_window_only() {
        let mut seen = SeenIds::default();
        let day = 86_400;
        for i in 0..3_000 {
            assert!(seen.insert(&format!("old{i}"), at(0)));
        }
        // Sweeps run as the table grows: a day later the old ids are
        // still within the window.
        for i in 0..3_000 {
            assert!(seen.insert(&format!("new{i}"), at(day)));
        }
        assert!(!seen.insert("old0", at(day)) && !seen.insert("old2999", at(day)));
        // Past the window of the old ones, enough new ids to sweep them.
        let late = at((crate::store::DEDUP_DAYS + 1) * day);
        for i in 0..10_000 {
            assert!(seen.insert(&format!("late{i}"), late));
        }
        assert!(seen.ids.len < 10_000 + 6_000, "the old ids were swept");
        assert!(!seen.insert("new7", late), "the new ones are kept");
        assert!(seen.insert("old7", late), "an old one is new again");
    }

    #[test]
    fn an_id_seen_within_the_window_is_dropped_and_one_past_it_is_taken() {
        let mut p = Preview::new(plan(
            "rule r \"r\" {\n  when event checkin\n  then {\n    emit fired\n  }\n}\n",
        ));
        let mut out = Vec::new();
        p.handle(&track("u", "checkin", "m1", at(0)), at(0), &mut out);
        p.handle(&track("u", "checkin", "m1", at(60)), at(60), &mut out);
        let emits = |out: &[Record]| out.iter().filter(|r| r.kind == Kind::Emit).count();
        assert_eq!(emits(&out), 1, "{out:?}");
        let later = at(8 * 86_400);
        p.handle(&track("u", "checkin", "m1", later), later, &mut out);
        assert_eq!(emits(&out), 2, "past the window it is new again");
    }

    #[test]
    fn a_wrong_user_number_falls_back_to_the_id() {
        // A rule that counts each user's check-ins: the count shows whose
        // state an input reached.
        let mut p = Preview::new(plan(
            "rule r \"r\" {\n  when event checkin\n  if count(checkin) == 2\n  then {\n    emit second\n  }\n}\n",
        ));
        let mut out = Vec::new();
        // "b" comes in by id first, so the numbers (a = 0, b = 1) are
        // not where the preview keeps them (b = 0, a = 1).
        p.handle(&track("b", "checkin", "1", at(0)), at(0), &mut out);
        let mut numbers = UserNumbers::default();
        let (a, b) = (numbers.number("a"), numbers.number("b"));
        assert_eq!((a.number, b.number), (0, 1));
        assert_eq!(
            numbers.number("a").number,
            0,
            "the same id keeps its number"
        );
        for (i, (who, user)) in [(&a, "a"), (&b, "b"), (&a, "a")].into_iter().enumerate() {
            let input = track(user, "checkin", &format!("n{i}"), at(1 + i as i64));
            p.handle_numbered(Some(who), &input, at(1 + i as i64), &mut out);
        }
        let seconds: Vec<&str> = out
            .iter()
            .filter(|r| r.kind == Kind::Emit)
            .map(|r| r.user.as_str())
            .collect();
        assert_eq!(seconds, ["b", "a"], "{out:?}");
        assert_eq!(p.users.len(), 2);
    }

    #[test]
    fn ids_kept_in_place_or_on_the_heap_number_and_find_their_members() {
        let mut p = Preview::new(plan(
            "rule r \"r\" {\n  when event checkin\n  if count(checkin) == 2\n  then {\n    emit second\n  }\n}\n",
        ));
        // Either side of the inline length, and ids equal up to it.
        let inline = std::mem::size_of::<CompactString>();
        let ids = [
            "a".repeat(inline),
            "a".repeat(inline + 1),
            format!("{}b", "a".repeat(inline - 1)),
            "a".repeat(40),
            String::new(),
        ];
        let mut numbers = UserNumbers::default();
        let mut out = Vec::new();
        for round in 0..2 {
            for (i, id) in ids.iter().enumerate() {
                let who = numbers.number(id);
                assert_eq!(who.number as usize, i, "{id:?} keeps its number");
                let when = at((round * ids.len() + i) as i64);
                let input = track(id, "checkin", &format!("{round}-{i}"), when);
                p.handle_numbered(Some(&who), &input, when, &mut out);
            }
        }
        let seconds: Vec<&str> = out
            .iter()
            .filter(|r| r.kind == Kind::Emit)
            .map(|r| r.user.as_str())
            .collect();
        assert_eq!(seconds, ids.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(p.users.len(), ids.len());
    }

    #[test]
    fn step_passages_count_who_came_to_each_step_and_went_on() {
        let mut p = Preview::new(plan(
            "journey j {\n  trigger event signup\n  wait 1h\n  if event.vip == true {\n    emit vip\n  }\n  wait 1d\n  emit done\n}\n",
        ));
        p.count_steps();
        let mut out = Vec::new();
        let signup = |user: &str, vip: bool| {
            let mut properties = waymark_dsl::value::Fields::default();
            properties.insert("vip".into(), Value::Bool(vip));
            Input::Track(waymark_core::model::Event {
                user: user.into(),
                name: "signup".into(),
                properties: Value::Record(properties),
                at: at(0),
                message_id: Some(user.into()),
            })
        };
        for (user, vip) in [("a", true), ("b", false), ("c", true)] {
            p.handle(&signup(user, vip), at(0), &mut out);
        }
        // Two hours on: everybody went past the first wait and the `if`;
        // the two VIPs past their emit; all three wait a day.
        p.advance_to(at(7200), &mut out);
        let counts = |p: &Preview| -> Vec<(String, u64, u64)> {
            let (journey, stats) = p.step_counts().next().expect("one journey counted");
            assert_eq!(journey, "j");
            stats
                .steps
                .iter()
                .map(|(step, s)| (step.clone(), s.entered, s.passed))
                .collect()
        };
        let steps = |p: &Preview| p.deployment.current("j").unwrap().steps.clone();
        let plan_steps = steps(&p);
        let id = |kind: &str, holding: &str| {
            let at = plan_steps
                .table
                .iter()
                .position(|s| {
                    let text = format!("{:?}", s.kind);
                    text.starts_with(kind) && text.contains(holding)
                })
                .unwrap_or_else(|| panic!("a {kind} step"));
            format!("s{at}")
        };
        let (wait, branch) = (id("Wait", "3600"), id("Branch", ""));
        let emit = id("Emit", "\"vip\"");
        let two_hours = counts(&p);
        let of = |all: &[(String, u64, u64)], step: &str| {
            all.iter()
                .find(|(s, ..)| s == step)
                .map_or((0, 0), |(_, e, p)| (*e, *p))
        };
        assert_eq!(of(&two_hours, &wait), (3, 3), "{two_hours:?}");
        assert_eq!(of(&two_hours, &branch), (3, 3), "{two_hours:?}");
        assert_eq!(
            of(&two_hours, &emit),
            (2, 2),
            "only the VIPs: {two_hours:?}"
        );
        let entered: u64 = two_hours.iter().map(|(_, e, _)| e).sum();
        let passed: u64 = two_hours.iter().map(|(_, _, p)| p).sum();
        assert_eq!(entered - passed, 3, "three wait now: {two_hours:?}");
        // A day later all are through: every step they came to, they left,
        // but the last one (the end).
        p.advance_to(at(2 * 86_400), &mut out);
        let done = counts(&p);
        assert!(
            done.iter().all(|(_, e, p)| e == p),
            "all went through every step they came to, `end` too: {done:?}"
        );
        let end = id("End", "");
        assert_eq!(of(&done, &end), (3, 3), "{done:?}");
        let exits = out.iter().filter(|r| r.kind == Kind::Exit).count();
        assert_eq!(exits, 3);
        // Without `count_steps` nothing is counted.
        let quiet = Preview::new(plan("journey j {\n  trigger event signup\n  emit x\n}\n"));
        assert_eq!(quiet.step_counts().count(), 0);
    }

    #[test]
    fn timers_fire_at_their_due_time_in_user_order() {
        let mut p = Preview::new(plan(
            "journey j {\n  trigger event signup\n  wait 1h\n  emit later\n}\n",
        ));
        let mut out = Vec::new();
        p.handle(&track("b", "signup", "1", at(0)), at(0), &mut out);
        p.handle(&track("a", "signup", "2", at(0)), at(0), &mut out);
        out.clear();
        p.advance_to(at(3599), &mut out);
        assert!(out.is_empty(), "{out:?}");
        p.advance_to(at(7200), &mut out);
        let emits: Vec<(&str, DateTime<Utc>)> = out
            .iter()
            .filter(|r| r.kind == Kind::Emit)
            .map(|r| (r.user.as_str(), r.at))
            .collect();
        assert_eq!(emits, [("a", at(3600)), ("b", at(3600))]);
        assert!(p.timers.is_empty());
    }

    #[test]
    fn a_schedule_reaches_members_in_id_order_however_they_arrived() {
        let mut p = Preview::new(plan(
            "journey daily {\n  trigger schedule \"0 * * * *\"\n  entry always\n  emit hello\n}\n",
        ));
        let mut out = Vec::new();
        let start = DateTime::from_timestamp(1_700_000_000 / 3600 * 3600, 0).unwrap();
        p.start_schedules_at(start);
        let entered = |out: &[Record]| -> Vec<String> {
            out.iter()
                .filter(|r| r.kind == Kind::Enter)
                .map(|r| r.user.to_string())
                .collect()
        };
        for (i, user) in ["d", "b"].iter().enumerate() {
            p.handle(
                &track(user, "visit", &format!("a{i}"), start),
                start,
                &mut out,
            );
        }
        p.advance_to(start + Duration::minutes(90), &mut out);
        assert_eq!(entered(&out), ["b", "d"]);
        out.clear();
        let later = start + Duration::minutes(90);
        for (i, user) in ["e", "a", "c"].iter().enumerate() {
            p.handle(
                &track(user, "visit", &format!("b{i}"), later),
                later,
                &mut out,
            );
        }
        p.advance_to(start + Duration::minutes(150), &mut out);
        assert_eq!(entered(&out), ["a", "b", "c", "d", "e"]);
    }
}
