//! The shell around the core that `simulate`, `test` and the daemon share.
//! It loads each user's state, calls the core, and commits every change of
//! a batch of inputs in one atomic write followed by one flush (group
//! commit) before anything is acknowledged. Timers fire in order of (due
//! time, user), each with the clock at its due time, so runs are
//! deterministic; cron triggers fire the same way, scanning users page by
//! page.

use crate::core::{self, Globals};
use crate::deployment::{DeployReport, Deployment};
use crate::journal::Record;
use crate::model::{Input, UserState};
use crate::store::{Batch, Kv, Store, StoreError};
use crate::user_cache::UserCache;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};

/// How many users an audience scan loads per page.
const PAGE: usize = 500;

pub struct Runtime<K: Kv> {
    pub store: Store<K>,
    pub deployment: Deployment,
    /// The last moment cron schedules were fired up to.
    schedules_done: Option<DateTime<Utc>>,
    /// The shared state as last committed, once read: the runtime is the
    /// only writer of it, so it need not be read back for every batch.
    globals: Option<Globals>,
    /// Users as last committed, kept decoded between batches.
    users: UserCache,
}

impl<K: Kv> Runtime<K> {
    pub fn new(store: Store<K>, deployment: Deployment) -> Runtime<K> {
        Runtime {
            store,
            deployment,
            schedules_done: None,
            globals: None,
            users: UserCache::new(crate::user_cache::DEFAULT_USERS),
        }
    }

    /// Keeps at most `users` users decoded between batches (0: none).
    pub fn set_user_cache(&mut self, users: usize) {
        self.users = UserCache::new(users);
    }

    /// Erases a user's state, timers and journal; whether they existed.
    pub fn erase_user(&mut self, user: &str) -> Result<bool, StoreError> {
        self.users.forget(user);
        let existed = self.store.user(user)?.is_some();
        self.store.erase_user(user)?;
        Ok(existed)
    }

    /// Starts cron schedules from `at` (they fire only after it).
    pub fn start_schedules_at(&mut self, at: DateTime<Utc>) {
        self.schedules_done = Some(at);
    }

    /// Processes inputs at `now` as one batch: one commit, one flush.
    /// Events whose message id was seen are dropped. Returns the records.
    pub fn ingest(
        &mut self,
        inputs: &[Input],
        now: DateTime<Utc>,
    ) -> Result<Vec<Record>, StoreError> {
        let mut globals = match self.globals.take() {
            Some(g) => g,
            None => self.store.globals()?,
        };
        let before = globals.clone();
        let mut users: BTreeMap<String, (UserState, Option<DateTime<Utc>>)> = BTreeMap::new();
        let mut batch = Batch::default();
        let mut fresh: HashSet<&str> = HashSet::new();
        for input in inputs {
            let message_id = match input {
                Input::Track(e) => e.message_id.as_deref(),
                Input::Identify { message_id, .. } => message_id.as_deref(),
                _ => None,
            };
            if let Some(id) = message_id {
                if fresh.contains(id) || self.store.seen(id)? {
                    continue;
                }
                fresh.insert(id);
                batch.dedup.push((id.to_string(), now));
            }
            let user = input.user();
            if !users.contains_key(user) {
                let state = match self.users.take(user) {
                    Some(state) => state,
                    None => self
                        .store
                        .user(user)?
                        .unwrap_or_else(|| UserState::new(user)),
                };
                let wake = state.next_wake();
                users.insert(user.to_string(), (state, wake));
            }
            let (state, _) = users.get_mut(user).expect("just inserted");
            let kind = match input {
                Input::Track(e) => e.name.as_str(),
                Input::Identify { .. } => "identify",
                Input::Wake { .. } => "wake",
                Input::Scheduled { .. } => "schedule",
                Input::Cancel { .. } => "cancel",
            };
            let _span = tracing::debug_span!("input", user = %user, kind).entered();
            batch.journal.extend(core::handle(
                &self.deployment,
                &mut globals,
                state,
                input,
                now,
            ));
        }
        batch.users = users.into_values().collect();
        // Unchanged shared state is not rewritten.
        let globals = if globals == before {
            before
        } else {
            batch.globals = Some(globals.clone());
            globals
        };
        // Users taken from the cache are not put back if this fails: the
        // store, not the cache, then says what they are.
        self.store.commit_ref(&batch)?;
        self.store.flush()?;
        self.globals = Some(globals);
        for (state, _) in batch.users {
            self.users.put(state);
        }
        Ok(batch.journal)
    }

    /// Fires every timer and cron trigger due up to and including `until`,
    /// in time order, each at its own time.
    pub fn advance_to(&mut self, until: DateTime<Utc>) -> Result<Vec<Record>, StoreError> {
        let mut records = Vec::new();
        loop {
            let timer = self.store.next_due()?.filter(|t| *t <= until);
            let after = self.schedules_done.unwrap_or(until);
            let cron = self
                .deployment
                .next_schedule_fire(after)
                .filter(|(t, _)| *t <= until);
            match (timer, cron) {
                (None, None) => break,
                (Some(t), Some((c, _))) if t <= c => records.extend(self.fire_timers(t)?),
                (Some(t), None) => records.extend(self.fire_timers(t)?),
                (_, Some((c, journeys))) => {
                    records.extend(self.fire_schedules(c, &journeys)?);
                    self.schedules_done = Some(c);
                }
            }
        }
        if self.schedules_done.is_none_or(|d| d < until) {
            self.schedules_done = Some(until);
        }
        Ok(records)
    }

    /// Wakes every user whose timer is due at `at`.
    fn fire_timers(&mut self, at: DateTime<Utc>) -> Result<Vec<Record>, StoreError> {
        let mut records = Vec::new();
        let mut previous: Vec<(DateTime<Utc>, String)> = Vec::new();
        loop {
            let due = self.store.due(at, PAGE)?;
            if due.is_empty() {
                return Ok(records);
            }
            if due == previous {
                // Waking these users did not move their timers: a broken
                // invariant. Say so rather than loop forever.
                for (_, user) in &due {
                    let mut r = Record::new(at, user, crate::journal::Kind::Error);
                    r.message = Some("a timer did not advance after it fired".into());
                    records.push(r);
                }
                return Ok(records);
            }
            let inputs: Vec<Input> = due
                .iter()
                .map(|(_, user)| Input::Wake { user: user.clone() })
                .collect();
            records.extend(self.ingest(&inputs, at)?);
            previous = due;
        }
    }

    fn fire_schedules(
        &mut self,
        at: DateTime<Utc>,
        journeys: &[(String, usize)],
    ) -> Result<Vec<Record>, StoreError> {
        let mut records = Vec::new();
        // Timers due at the same moment fire first.
        records.extend(self.fire_timers(at)?);
        let mut after: Option<String> = None;
        loop {
            let page = self.store.users_after(after.as_deref(), PAGE)?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            let inputs: Vec<Input> = page
                .iter()
                .flat_map(|user| {
                    journeys.iter().map(move |(j, trigger)| Input::Scheduled {
                        user: user.clone(),
                        journey: j.clone(),
                        trigger: *trigger,
                    })
                })
                .collect();
            records.extend(self.ingest(&inputs, at)?);
            after = Some(last);
        }
        Ok(records)
    }

    pub fn globals(&self) -> Result<Globals, StoreError> {
        self.store.globals()
    }

    /// Replaces the script set atomically (the caller has checked it).
    /// Changed journeys get a new version for new entries; instances finish
    /// on the version they started. Instances of removed journeys drain,
    /// unless `cancel_removed`, which ends them (`exit`, reason `cancelled`).
    pub fn deploy(
        &mut self,
        plan: waymark_dsl::plan::Plan,
        cancel_removed: bool,
        now: DateTime<Utc>,
    ) -> Result<(DeployReport, Vec<Record>), StoreError> {
        let report = self.deployment.replace(plan);
        self.store.save_deployment(&self.deployment)?;
        let mut records = Vec::new();
        if cancel_removed && !report.removed.is_empty() {
            let removed = report.removed.clone();
            records = self.each_user(now, |_, user| {
                removed
                    .iter()
                    .map(|j| Input::Cancel {
                        user: user.to_string(),
                        journey: j.clone(),
                    })
                    .collect()
            })?;
        }
        Ok((report, records))
    }

    /// Pauses a journey: no new entries (suppressed, reason `paused`);
    /// instances hold at their next step until it resumes.
    pub fn pause(&mut self, journey: &str) -> Result<(), StoreError> {
        self.deployment.paused.insert(journey.to_string());
        self.store.save_deployment(&self.deployment)
    }

    /// Resumes a paused journey; held instances go on at once.
    pub fn resume(&mut self, journey: &str, now: DateTime<Utc>) -> Result<Vec<Record>, StoreError> {
        self.deployment.paused.remove(journey);
        self.store.save_deployment(&self.deployment)?;
        let journey = journey.to_string();
        self.each_user(now, |state, user| {
            let held = state.is_some_and(|s| {
                s.instances
                    .iter()
                    .any(|i| i.journey == journey && i.wait == crate::model::Wait::Held)
            });
            if held {
                vec![Input::Wake {
                    user: user.to_string(),
                }]
            } else {
                Vec::new()
            }
        })
    }

    /// Feeds the inputs `f` makes for each stored user, page by page.
    fn each_user(
        &mut self,
        now: DateTime<Utc>,
        f: impl Fn(Option<&UserState>, &str) -> Vec<Input>,
    ) -> Result<Vec<Record>, StoreError> {
        let mut records = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.users_after(after.as_deref(), PAGE)?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            let mut inputs = Vec::new();
            for user in &page {
                let state = self.store.user(user)?;
                inputs.extend(f(state.as_ref(), user));
            }
            if !inputs.is_empty() {
                records.extend(self.ingest(&inputs, now)?);
            }
            after = Some(last);
        }
        Ok(records)
    }
}
