//! The shell around the core that `simulate`, `test` and the daemon share.
//! It loads each user's state (recently active users stay decoded in a
//! bounded cache), calls the core, and commits every change of a batch of
//! inputs in one atomic write followed by one flush (group commit) before
//! anything is acknowledged. The daemon pipelines batches: the next one is
//! evaluated while the last is applied and flushed on a commit thread. Timers fire in order of (due
//! time, user), each with the clock at its due time, so runs are
//! deterministic; cron triggers fire the same way, scanning users page by
//! page. What a batch's journal sets off in other tables (sends, coupon
//! codes, stats) is worked out here too, in [`effects`], and handed to the
//! store with the batch.

mod batch_users;
mod deploy;
pub mod effects;
mod pipeline;
mod time;

use batch_users::BatchUsers;
pub use deploy::{DeployHow, DeployMeta};
pub use pipeline::{Committed, Durable};
use pipeline::{Committer, InFlight};

use crate::store::{Batch, Kv, MergeWrite, Settled, Store, StoreError};
use crate::user_cache::UserCache;
use chrono::{DateTime, Utc};
use waymark_core::deployment::Deployment;
use waymark_core::journal::{Kind, Record};
use waymark_core::machine::{self as core, Globals};
use waymark_core::model::{Input, UserState};

/// How many users an audience scan loads per page.
pub(crate) const PAGE: usize = 500;

/// Most steps one batch of the daemon's inputs runs (each input counts
/// one besides its steps): a batch that reaches it commits what it ran and
/// defers the rest, durably, to the batches after it. One script that runs
/// its per-input budget on every event of a batch would otherwise hold up
/// every other user's acknowledgement for the whole batch.
pub const BATCH_STEP_BUDGET: u64 = 50_000;

/// How many pages (of due timers, or of members a schedule fires for)
/// the daemon's writer fires a turn, through [`Runtime::advance_some`],
/// before it takes inputs again: each is one commit of up to 500 users.
pub const TIME_PAGES_A_TURN: usize = 2;

pub struct Runtime<K: Kv> {
    pub store: Store<K>,
    pub deployment: Deployment,
    /// The last moment cron schedules were fired up to.
    schedules_done: Option<DateTime<Utc>>,
    /// A schedule's fire that [`Runtime::advance_some`] cut short, to go
    /// on with before anything later.
    schedule_fire: Option<time::ScheduleFire>,
    /// A run of due timers that [`Runtime::advance_some`] cut short, to go
    /// on with while nothing else is written.
    timer_run: Option<time::TimerRun>,
    /// The shared state as last committed, once read: the runtime is the
    /// only writer of it, so it need not be read back for every batch.
    globals: Option<Globals>,
    /// Users as last committed, kept decoded between batches.
    users: UserCache,
    /// The thread that applies and flushes pipelined batches, once started.
    committer: Option<Committer>,
    /// The pipelined batch being applied and flushed, if any.
    in_flight: Option<InFlight>,
    /// Inputs deferred by batches that used up their step budget, oldest
    /// first, with their numbers (as stored), once read from the store.
    deferred: Option<std::collections::VecDeque<(u64, Input)>>,
    /// The number the next deferred input takes.
    next_deferred: u64,
    /// Most steps one budgeted batch runs.
    batch_budget: u64,
    /// What batches' journals set off, and the stats they left.
    effects: effects::Effects,
    /// Users of a batch's next part, read while the store was idle (see
    /// [`Runtime::ingest_in_parts`]); `None`: not in the store. Only valid
    /// within one call of it.
    read_ahead: foldhash::HashMap<String, Option<UserState>>,
    /// The stored bytes of users an audience scan read (see
    /// [`crate::store::Batch::as_stored`]); only valid within one page of
    /// the scan.
    as_stored: foldhash::HashMap<String, Vec<u8>>,
    /// A dedup compaction or merge being built and written on its own
    /// thread (see [`Runtime::tidy_dedup_behind`]): what it wrote, once done.
    tidying: Option<std::sync::mpsc::Receiver<Result<crate::store::TidyDone, StoreError>>>,
    /// Declared identifiers and the most ids a profile gathers.
    identity: crate::config::Identity,
}

impl<K: Kv> Runtime<K> {
    pub fn new(store: Store<K>, deployment: Deployment) -> Runtime<K> {
        Runtime {
            store,
            deployment,
            schedules_done: None,
            schedule_fire: None,
            timer_run: None,
            globals: None,
            users: UserCache::new(crate::user_cache::DEFAULT_USERS),
            committer: None,
            in_flight: None,
            deferred: None,
            next_deferred: 0,
            batch_budget: BATCH_STEP_BUDGET,
            effects: effects::Effects::default(),
            read_ahead: Default::default(),
            as_stored: Default::default(),
            tidying: None,
            identity: Default::default(),
        }
    }

    /// Sets the most steps one batch of [`Runtime::ingest_pipelined`] runs.
    pub fn set_batch_step_budget(&mut self, steps: u64) {
        self.batch_budget = steps.max(1);
    }

    /// How many inputs wait, deferred by batches that used up their step
    /// budget; the writer runs batches while any do.
    pub fn deferred(&mut self) -> Result<usize, StoreError> {
        Ok(self.deferred_queue()?.len())
    }

    /// The deferred inputs, read from the store the first time.
    fn deferred_queue(
        &mut self,
    ) -> Result<&mut std::collections::VecDeque<(u64, Input)>, StoreError> {
        if self.deferred.is_none() {
            self.drain()?;
            let stored = self.store.deferred_inputs()?;
            self.next_deferred = stored.last().map_or(0, |(n, _)| n + 1);
            self.deferred = Some(stored.into());
        }
        Ok(self.deferred.as_mut().expect("just read"))
    }

    /// Sets the traits that identify a person and the most ids a profile
    /// gathers (`[identity]`).
    pub fn set_identity(&mut self, identity: crate::config::Identity) {
        self.identity = identity;
    }

    /// Keeps at most `users` users decoded between batches (0: none).
    pub fn set_user_cache(&mut self, users: usize) {
        self.users = UserCache::new(users);
    }

    /// How many users are kept decoded now, and the most that are.
    pub fn cached_users(&self) -> (usize, usize) {
        (self.users.len(), self.users.capacity())
    }

    /// Erases a person (by any of their ids): their profile's state,
    /// timers and journal, and those of every id merged into it; whether
    /// they existed.
    pub fn erase_user(&mut self, user: &str) -> Result<bool, StoreError> {
        self.drain()?;
        self.read_ahead.clear();
        let Some((id, state)) = self.store.profile(user)? else {
            self.store.erase_user(user)?;
            return Ok(false);
        };
        let ids: Vec<String> = std::iter::once(id).chain(state.merged_ids).collect();
        for id in &ids {
            self.users.forget(id);
        }
        self.store.erase_user(&ids[0])?;
        // Inputs of theirs still deferred go too.
        let queue = self.deferred_queue()?;
        let theirs_of = |input: &Input| ids.iter().any(|id| id == input.user());
        let theirs: Vec<u64> = queue
            .iter()
            .filter(|(_, input)| theirs_of(input))
            .map(|(n, _)| *n)
            .collect();
        queue.retain(|(_, input)| !theirs_of(input));
        self.store.drop_deferred(&theirs)?;
        Ok(true)
    }

    /// Starts cron schedules from `at` (they fire only after it).
    pub fn start_schedules_at(&mut self, at: DateTime<Utc>) {
        self.schedules_done = Some(at);
    }

    /// Forgets message ids seen before the dedup window; how many. What
    /// spares fresh events a read of the store is ready after it (the
    /// daemon calls this at start, so the first events do not wait for it).
    pub fn prune_dedup(&mut self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.drain()?;
        self.finish_dedup_tidy()?;
        let n = self.store.prune_dedup(now)?;
        self.store.warm_dedup()?;
        Ok(n)
    }

    /// Compacts the message ids of recent batches when there are enough
    /// (see `store::dedup`): after the batch in flight, which may hold some.
    fn tidy_dedup(&mut self) -> Result<(), StoreError> {
        self.finish_dedup_tidy()?;
        if self.store.dedup_wants_tidy() {
            self.drain()?;
            self.store.tidy_dedup()?;
        }
        Ok(())
    }

    /// Forgets what prepared batches took (one was not applied), in the
    /// store and here: it is read from the store again.
    fn forget_prepared(&mut self) {
        // What the store holds is read again: not while a tidy writes.
        let _ = self.finish_dedup_tidy();
        self.store.forget_prepared();
        self.effects.forget();
    }

    /// The zone stats count days in: the default policy's, else UTC.
    fn stats_zone(&self) -> chrono_tz::Tz {
        self.deployment
            .policy_zone("default")
            .unwrap_or(chrono_tz::UTC)
    }

    /// Commits a batch (with what its journal sets off) and flushes it.
    fn commit(&mut self, batch: &mut Batch) -> Result<(), StoreError> {
        let written = self
            .effects
            .fill(&self.store, batch, self.stats_zone())
            .and_then(|()| self.store.commit_ref(batch))
            .and_then(|()| self.store.flush());
        if written.is_err() {
            self.forget_prepared();
        }
        written
    }

    /// Processes inputs at `now` as one batch: one commit, one flush.
    /// Events whose message id was seen are dropped. Returns the records.
    pub fn ingest(
        &mut self,
        inputs: &[Input],
        now: DateTime<Utc>,
    ) -> Result<Vec<Record>, StoreError> {
        self.drain()?;
        self.tidy_dedup()?;
        let (mut batch, globals) = self.evaluate(inputs, now, false)?;
        // Users taken from the cache are not put back if this fails: the
        // store, not the cache, then says what they are.
        self.commit(&mut batch)?;
        Ok(self.keep(batch, globals))
    }

    /// Runs a batch through the core: its users (from the cache or the
    /// store), duplicates dropped, every input handled in order. If
    /// `budgeted`, inputs deferred before run first, and once the batch
    /// has run its step budget the inputs left (deferred ones and new
    /// ones, in order) are deferred in the batch's own commit.
    fn evaluate(
        &mut self,
        inputs: &[Input],
        now: DateTime<Utc>,
        budgeted: bool,
    ) -> Result<(Batch, Globals), StoreError> {
        let earlier = if budgeted {
            std::mem::take(self.deferred_queue()?)
        } else {
            Default::default()
        };
        let result = self.evaluate_in_order(&earlier, inputs, now, budgeted);
        if result.is_err() {
            // Read them again from the store.
            self.deferred = None;
        }
        result
    }

    fn evaluate_in_order(
        &mut self,
        earlier: &std::collections::VecDeque<(u64, Input)>,
        inputs: &[Input],
        now: DateTime<Utc>,
        budgeted: bool,
    ) -> Result<(Batch, Globals), StoreError> {
        let mut globals = match self.globals.take() {
            Some(g) => g,
            None => self.store.globals()?,
        };
        let before = globals.clone();
        let mut users = BatchUsers::default();
        // Ids merged into another profile by this batch, and where to.
        let mut links: foldhash::HashMap<String, String> = Default::default();
        // Declared identifier values this batch claimed or freed.
        let mut claims: foldhash::HashMap<(String, String), Option<String>> = Default::default();
        let mut batch = Batch::default();
        let mut fresh: foldhash::HashSet<&str> = Default::default();
        let mut spent: u64 = 0;
        let mut left = std::collections::VecDeque::new();
        let queue = earlier
            .iter()
            .map(|(n, input)| (Some(*n), input))
            .chain(inputs.iter().map(|input| (None, input)));
        // The users of the inputs ahead, fetched a step at a time, each
        // step nearer (see `UserCache::prefetch_slot`): their memory
        // arrives while this one is worked on.
        let mut next = 0;
        for (number, input) in queue {
            if number.is_none() {
                let ahead = |k: usize| inputs.get(next + k).map(Input::user);
                if let Some(user) = ahead(6) {
                    self.users.prefetch_slot(user);
                }
                if let Some(user) = ahead(4) {
                    self.users.prefetch_state(user);
                }
                if let Some(user) = ahead(3) {
                    self.users.prefetch_lists(user);
                }
                if let Some(Input::Track(event)) = inputs.get(next + 1) {
                    self.users.prefetch_event(&event.user, &event.name);
                }
                if let Some(id) = inputs.get(next + 4).and_then(Input::message_id) {
                    self.store.prefetch_seen(id);
                }
                next += 1;
            }
            if budgeted && spent >= self.batch_budget {
                // Out of budget: the rest waits, durably, in order.
                let n = match number {
                    Some(n) => n,
                    None => {
                        let n = self.next_deferred;
                        self.next_deferred += 1;
                        batch.deferred.push((n, input.clone()));
                        n
                    }
                };
                left.push_back((n, input.clone()));
                continue;
            }
            if let Some(n) = number {
                batch.resumed.push(n);
            }
            let message_id = input.message_id();
            if let Some(id) = message_id {
                if fresh.contains(id) || self.store.seen(id)? {
                    batch.duplicates += 1;
                    continue;
                }
                fresh.insert(id);
                batch.dedup.push((id.to_string(), now));
            }
            if let Input::Merge {
                user, from, how, ..
            } = input
            {
                let steps = self.merge(
                    &mut users,
                    &mut links,
                    &mut batch,
                    &mut globals,
                    user,
                    from,
                    how,
                    now,
                )?;
                spent = spent.saturating_add(1 + u64::from(steps));
                continue;
            }
            // An id merged into another profile: the input is that profile's.
            let rerouted;
            let input = match self.lead(input.user(), &mut users, &mut links, &mut batch)? {
                None => input,
                Some(survivor) => {
                    rerouted = input.for_user(&survivor);
                    &rerouted
                }
            };
            let user = input.user();
            // Declared identifiers this identify sets: a profile holding
            // the same value is this person's.
            let declared = declared(&self.identity.identifiers, input);
            for (name, value) in &declared {
                let holder = match claims.get(&(name.clone(), value.clone())) {
                    Some(holder) => holder.clone(),
                    None => self.store.identifier_holder(name, value)?,
                };
                if let Some(holder) = holder
                    && holder != user
                {
                    let how = format!("identifier:{name}");
                    let steps = self.merge(
                        &mut users,
                        &mut links,
                        &mut batch,
                        &mut globals,
                        user,
                        &holder,
                        &how,
                        now,
                    )?;
                    spent = spent.saturating_add(u64::from(steps));
                }
            }
            let (state, _) = users.get_mut(user).expect("just loaded");
            // The values this profile held until now, whose claims go if
            // the identify changes them.
            let before: Vec<Option<String>> = declared
                .iter()
                .map(|(name, _)| state.traits.get(name).and_then(identifier_text))
                .collect();
            if matches!(input, Input::Track(_) | Input::Identify { .. })
                && self.store.oversize(user)
            {
                let mut r = waymark_core::journal::Record::new(
                    now,
                    user,
                    waymark_core::journal::Kind::Error,
                );
                r.message = Some(
                    "the user's stored state is past limits.user_state_bytes: this event was not applied (erase the user or raise the limit)"
                        .into(),
                );
                batch.journal.push(r);
                continue;
            }
            let kind = match input {
                Input::Track(e) => e.name.as_str(),
                Input::Identify { .. } => "identify",
                Input::Wake { .. } => "wake",
                Input::Scheduled { .. } => "schedule",
                Input::Cancel { .. } => "cancel",
                Input::Merge { .. } => "merge",
                Input::Consent { .. } => "consent",
                Input::Outcome(_) => "outcome",
                Input::Tags { .. } => "tags",
            };
            let _span = tracing::debug_span!("input", user = %user, kind).entered();
            let steps = core::handle_into(
                &self.deployment,
                &mut globals,
                state,
                input,
                now,
                &mut batch.journal,
                Some(&mut batch.passages),
            );
            spent = spent.saturating_add(1 + u64::from(steps));
            for ((name, value), old) in declared.into_iter().zip(before) {
                if let Some(old) = old.filter(|old| *old != value) {
                    // A changed value (a new phone number) is free for
                    // whoever gets it next.
                    let key = (name.clone(), old);
                    let holder = match claims.get(&key) {
                        Some(holder) => holder.clone(),
                        None => self.store.identifier_holder(&key.0, &key.1)?,
                    };
                    if holder.as_deref() == Some(user) {
                        batch.claims.push((key.0.clone(), key.1.clone(), None));
                        claims.insert(key, None);
                    }
                }
                batch
                    .claims
                    .push((name.clone(), value.clone(), Some(user.to_string())));
                claims.insert((name, value), Some(user.to_string()));
            }
        }
        if budgeted {
            if !left.is_empty() {
                tracing::info!(
                    deferred = left.len(),
                    steps = spent,
                    "the batch ran its step budget; the inputs left run in the batches after it"
                );
            }
            self.deferred = Some(left);
        }
        batch.users = users.into_values();
        // Unchanged shared state is not rewritten.
        if globals != before {
            batch.globals = Some(globals.clone());
        }
        Ok((batch, globals))
    }

    /// A user's state for a batch: from memory if kept (or read ahead),
    /// else from the store, once the batch in flight (if it has them) is
    /// applied; a user the store does not have is new.
    fn take_user(&mut self, user: &str) -> Result<UserState, StoreError> {
        Ok(match self.load(user)? {
            Loaded::Kept(state) => state,
            Loaded::Linked(_) | Loaded::New => UserState::new(user),
        })
    }

    /// [`Runtime::take_user`], telling a new id from one merged into
    /// another profile (which has no profile of its own).
    fn load(&mut self, user: &str) -> Result<Loaded, StoreError> {
        if let Some(state) = self.users.take(user) {
            return Ok(Loaded::Kept(state));
        }
        let read = match self.read_ahead.remove(user) {
            Some(read) => read,
            None => {
                if self
                    .in_flight
                    .as_ref()
                    .is_some_and(|f| f.users.contains(user))
                {
                    self.drain_applied()?;
                }
                self.store.user(user)?
            }
        };
        if let Some(state) = read {
            return Ok(Loaded::Kept(state));
        }
        Ok(match self.store.merged_into(user)? {
            Some(survivor) => Loaded::Linked(survivor),
            None => Loaded::New,
        })
    }

    /// Makes sure the profile `id` leads to is among the batch's `users`,
    /// loading it if need be; returns the profile's id if it is not `id`
    /// (an id merged into it, by this batch or before).
    fn lead(
        &mut self,
        id: &str,
        users: &mut BatchUsers,
        links: &mut foldhash::HashMap<String, String>,
        batch: &mut Batch,
    ) -> Result<Option<String>, StoreError> {
        // Most inputs: a user the batch has already, and no merges.
        if links.is_empty() && users.contains_key(id) {
            return Ok(None);
        }
        let mut id = id.to_string();
        let mut moved = false;
        // At most a link per profile on the way: the index points at the
        // last profile, and this batch's links are kept pointing there.
        for _ in 0..3 {
            if let Some(to) = links.get(&id) {
                id = to.clone();
                moved = true;
                continue;
            }
            if users.contains_key(&id) {
                break;
            }
            match self.load(&id)? {
                Loaded::Kept(state) => {
                    let wake = state.next_wake();
                    if let Some(bytes) = self.as_stored.remove(&id) {
                        batch.as_stored.insert(id.clone(), bytes);
                    }
                    users.insert(id.clone(), (state, wake));
                    break;
                }
                Loaded::New => {
                    users.insert(id.clone(), (UserState::new(&id), None));
                    break;
                }
                Loaded::Linked(to) => {
                    id = to;
                    moved = true;
                }
            }
        }
        if !users.contains_key(&id) {
            // Links three deep (never written: each merge points every id
            // at the last profile): that profile starts anew.
            users.insert(id.clone(), (UserState::new(&id), None));
        }
        Ok(moved.then_some(id))
    }

    /// Merges the profile `from` leads to into the one `into` leads to
    /// (see [`waymark_core::model::Input::Merge`]). Nothing happens when
    /// they are one already.
    #[allow(clippy::too_many_arguments)]
    fn merge(
        &mut self,
        users: &mut BatchUsers,
        links: &mut foldhash::HashMap<String, String>,
        batch: &mut Batch,
        globals: &mut Globals,
        into: &str,
        from: &str,
        how: &str,
        now: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let survivor = self
            .lead(into, users, links, batch)?
            .unwrap_or_else(|| into.to_string());
        let known = |users: &BatchUsers, id: &str| {
            let (state, _) = &users[survivor.as_str()];
            id == survivor || state.merged_ids.iter().any(|m| m == id)
        };
        // Most merges come from events that carry both ids every time:
        // after the first, the survivor knows the other id.
        if known(users, from) {
            return Ok(0);
        }
        let absorbed_id = self
            .lead(from, users, links, batch)?
            .unwrap_or_else(|| from.to_string());
        if absorbed_id == survivor {
            return Ok(0);
        }
        let gathered = users[survivor.as_str()].0.merged_ids.len()
            + 1
            + users
                .get(&absorbed_id)
                .map_or(0, |(s, _)| s.merged_ids.len());
        if gathered > self.identity.max_ids {
            let r = too_many_ids(
                now,
                &survivor,
                &absorbed_id,
                gathered,
                self.identity.max_ids,
            );
            batch.journal.push(r);
            return Ok(0);
        }
        let absorbed = users.remove(&absorbed_id);
        batch.as_stored.remove(&absorbed_id);
        // A profile made by this very lead (an id never seen) holds nothing.
        let absorbed = absorbed.filter(|(s, wake)| {
            wake.is_some() || s.created_at.is_some() || !s.merged_ids.is_empty()
        });
        batch
            .merges
            .push(MergeWrite::new(&absorbed_id, absorbed.as_ref(), &survivor));
        let also = absorbed
            .as_ref()
            .map_or(&[][..], |(s, _)| &s.merged_ids[..]);
        relink(links, &absorbed_id, also, &survivor);
        let (state, _) = users.get_mut(&survivor).expect("led to");
        let steps = core::merge_into(
            &self.deployment,
            globals,
            state,
            absorbed.map(|(s, _)| s),
            &absorbed_id,
            how,
            now,
            &mut batch.journal,
            Some(&mut batch.passages),
        );
        Ok(steps)
    }

    /// Keeps what a committed (or pipelined) batch left in memory and
    /// returns its records.
    fn keep(&mut self, batch: Batch, globals: Globals) -> Vec<Record> {
        self.globals = Some(globals);
        for (state, _) in batch.users {
            self.users.put(state);
        }
        batch.journal
    }

    /// Journals sends leaving the outbox — `failed` when given up on,
    /// `delivered` when a replayed one got through — and moves them, in
    /// one commit. Returns the records.
    pub fn settle(
        &mut self,
        settled: Vec<Settled>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Record>, StoreError> {
        self.drain()?;
        let journal: Vec<Record> = settled.iter().map(|s| settlement_record(s, now)).collect();
        let mut batch = Batch {
            journal,
            settled,
            ..Batch::default()
        };
        self.commit(&mut batch)?;
        Ok(batch.journal)
    }

    pub fn globals(&mut self) -> Result<Globals, StoreError> {
        self.drain()?;
        self.store.globals()
    }
}

/// Points `absorbed` and the ids it held (`also`) at `survivor` in a
/// shell's map of merged ids, and every id that led to `absorbed` too.
pub(crate) fn relink<S: std::hash::BuildHasher>(
    links: &mut std::collections::HashMap<String, String, S>,
    absorbed: &str,
    also: &[String],
    survivor: &str,
) {
    for to in links.values_mut() {
        if to == absorbed {
            *to = survivor.to_string();
        }
    }
    for id in std::iter::once(absorbed).chain(also.iter().map(String::as_str)) {
        links.insert(id.to_string(), survivor.to_string());
    }
}

/// The `error` record of a merge refused for `identity.max_ids`.
pub(crate) fn too_many_ids(
    now: DateTime<Utc>,
    survivor: &str,
    absorbed: &str,
    gathered: usize,
    max_ids: usize,
) -> Record {
    let mut r = Record::new(now, survivor, Kind::Error);
    r.message = Some(format!(
        "{absorbed} was not merged into {survivor}: the profile would hold {gathered} ids, past identity.max_ids ({max_ids})"
    ));
    r
}

/// The declared identifiers (of `identifiers`) an identify sets, with
/// their values.
pub(crate) fn declared(identifiers: &[String], input: &Input) -> Vec<(String, String)> {
    let Input::Identify {
        traits: waymark_dsl::value::Value::Record(traits),
        ..
    } = input
    else {
        return Vec::new();
    };
    identifiers
        .iter()
        .filter_map(|name| Some((name.clone(), identifier_text(traits.get(name)?)?)))
        .collect()
}

/// A declared identifier's value as the index keeps it: text or a number
/// (`phone` sent as a number), never empty.
pub(crate) fn identifier_text(value: &waymark_dsl::value::Value) -> Option<String> {
    use waymark_dsl::value::Value;
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(_) => Some(value.to_text()),
        _ => None,
    }
}

/// What [`Runtime::load`] found for an id.
enum Loaded {
    /// Its profile.
    Kept(UserState),
    /// No profile: the id was merged into this one.
    Linked(String),
    /// Nothing: a new user.
    New,
}

/// The record telling how a send left the outbox: the send's own record
/// (journey, step, channel, address, key) without its message fields.
fn settlement_record(settled: &Settled, now: DateTime<Utc>) -> Record {
    let (entry, kind) = match settled {
        Settled::DeadLettered { entry, .. } => (entry, Kind::Failed),
        Settled::Delivered { entry, .. } => (entry, Kind::Delivered),
    };
    let mut r = entry.record.clone();
    r.at = now;
    r.kind = kind;
    r.fields = None;
    r.attempts = Some(entry.attempts);
    r.reason = match settled {
        Settled::DeadLettered { entry, .. } => entry.last_error.clone(),
        Settled::Delivered { .. } => None,
    };
    r
}

#[cfg(test)]
mod merge_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryKv;
    use waymark_core::journal::Kind;
    use waymark_dsl::value::Value;

    fn identify(user: &str, traits: serde_json::Value, at: DateTime<Utc>) -> Input {
        Input::Identify {
            user: user.into(),
            traits: Value::from_json(&traits),
            at,
            message_id: None,
        }
    }

    #[test]
    fn a_user_past_the_state_limit_gets_an_error_record_instead_of_the_event() {
        let store = Store::open(MemoryKv::default()).unwrap();
        store.set_max_user_bytes(600);
        let mut runtime = Runtime::new(store, Deployment::new(Default::default()));
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let records = runtime
            .ingest(
                &[identify(
                    "big",
                    serde_json::json!({"bio": "x".repeat(400)}),
                    now,
                )],
                now,
            )
            .unwrap();
        assert!(records.iter().all(|r| r.kind != Kind::Error), "{records:?}");
        // Still under: the next trait is taken and tips the state over.
        runtime
            .ingest(
                &[identify(
                    "big",
                    serde_json::json!({"note": "y".repeat(400)}),
                    now,
                )],
                now,
            )
            .unwrap();
        let records = runtime
            .ingest(
                &[
                    identify("big", serde_json::json!({"more": "z"}), now),
                    identify("small", serde_json::json!({"more": "z"}), now),
                ],
                now,
            )
            .unwrap();
        let errors: Vec<_> = records.iter().filter(|r| r.kind == Kind::Error).collect();
        assert_eq!(errors.len(), 1, "{records:?}");
        assert_eq!(errors[0].user, "big");
        assert!(
            errors[0]
                .message
                .as_deref()
                .unwrap()
                .contains("limits.user_state_bytes")
        );
        let big = runtime.store.user("big").unwrap().unwrap();
        assert!(
            !big.traits.contains_key("more"),
            "the event was not applied"
        );
        let small = runtime.store.user("small").unwrap().unwrap();
        assert!(small.traits.contains_key("more"));
    }
}
