//! Time passing: timers fire in order of (due time, user), each with the
//! clock at its due time, and cron triggers fire the same way, scanning
//! users page by page; so runs are deterministic.

use super::{PAGE, Runtime};

/// How many due timers are read at once, to fire a page at a time.
const RUN: usize = 8 * PAGE;
use crate::store::{Batch, Kv, PagedUser, StoreError};
use chrono::{DateTime, Utc};
use waymark_core::deployment::Due;
use waymark_core::journal::Record;
use waymark_core::machine::{self as core, Globals};
use waymark_core::model::Input;

/// A schedule's fire under way: its moment, its journeys (with the
/// trigger that fired in each), and the last member it reached.
#[derive(Debug)]
pub(super) struct ScheduleFire {
    at: DateTime<Utc>,
    journeys: Vec<(String, usize)>,
    after: Option<String>,
}

/// A run of due timers (as [`Runtime::fire_timers`] reads them) that a
/// call ran out of pages in, kept for the next call, which goes on with
/// it while nothing else was written since, instead of reading the store
/// again. The daemon's writer fires a few pages a turn: reading the run
/// again each turn waited for the turn's last page to be applied (reads
/// wait while a batch is), and read the same timers again.
#[derive(Debug)]
pub(super) struct TimerRun {
    run: Vec<(DateTime<Utc>, String)>,
    /// How many of `run` fired.
    at: usize,
    /// The run holds the first timers due by then, as read.
    through: DateTime<Utc>,
    /// The earliest timer its wakes set (see [`Runtime::evaluate_wakes`]).
    earliest: Option<(DateTime<Utc>, String)>,
    /// The users of its next page, read ahead.
    ahead: foldhash::HashMap<String, Option<waymark_core::model::UserState>>,
    /// [`crate::store::Store::writes`] once its last page was handed over.
    writes: u64,
}

impl TimerRun {
    /// When the earliest timer the store holds is due: the run's next, or
    /// one its wakes set if sooner (every other is due after the run).
    fn next_due(&self) -> DateTime<Utc> {
        let next = self.run[self.at].0;
        self.earliest.as_ref().map_or(next, |(t, _)| next.min(*t))
    }
}

impl<K: Kv> Runtime<K> {
    /// When the earliest pending timer is due, if any. Read from the store
    /// (waiting while a batch is applied) unless a run of timers cut short
    /// is kept ([`TimerRun`]).
    pub fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.timer_run() {
            Some(run) => Ok(Some(run.next_due())),
            None => self.store.next_due(),
        }
    }

    /// The run of timers the last call kept, if nothing was written since.
    fn timer_run(&self) -> Option<&TimerRun> {
        self.timer_run
            .as_ref()
            .filter(|run| run.writes == self.store.writes())
    }

    /// The run of timers the last call kept, taken to go on with, if
    /// nothing was written since and it holds every timer due by
    /// `through` that it should.
    fn kept_run(&mut self, through: DateTime<Utc>) -> Option<TimerRun> {
        if self.timer_run().is_none_or(|run| run.through > through) {
            self.timer_run = None;
        }
        self.timer_run.take()
    }
}

impl<K: Kv + Clone + 'static> Runtime<K> {
    /// Fires every timer and cron trigger due up to and including `until`,
    /// in time order, each at its own time.
    pub fn advance_to(&mut self, until: DateTime<Utc>) -> Result<Vec<Record>, StoreError> {
        let mut records = Vec::new();
        self.advance_to_with(until, &mut |page| records.extend(page))?;
        Ok(records)
    }

    /// [`Runtime::advance_to`] handing each committed page's records to
    /// `sink` as it goes, so that a backlog (a restart after a day down,
    /// a schedule over every member) is never held in memory at once.
    pub fn advance_to_with(
        &mut self,
        until: DateTime<Utc>,
        sink: &mut dyn FnMut(Vec<Record>),
    ) -> Result<(), StoreError> {
        self.advance_some(until, usize::MAX, sink).map(|_| ())
    }

    /// [`Runtime::advance_to_with`] for at most `pages` commits (a page of
    /// timers, or of a schedule's audience, each): whether it caught up
    /// with `until`. A daemon with a backlog of due timers or a schedule
    /// over a million members takes events between calls, instead of
    /// holding them until the last member is done; what is left goes on
    /// where it stopped, in the same order.
    pub fn advance_some(
        &mut self,
        until: DateTime<Utc>,
        pages: usize,
        sink: &mut dyn FnMut(Vec<Record>),
    ) -> Result<bool, StoreError> {
        // A run kept from the last call goes on without waiting for the
        // page in flight: its timers are read already.
        if self.in_flight.is_some() && self.timer_run().is_none() {
            // Only wait for the batch in flight if something is due: what
            // it schedules is in the future (what is due at once runs in
            // the batch itself), so without it the timers read the same.
            let timer = self.store.next_due()?.is_some_and(|t| t <= until);
            let cron = self.schedule_fire.is_some()
                || self
                    .deployment
                    .next_schedule_fire(self.schedules_done.unwrap_or(until))
                    .is_some_and(|(t, _)| t <= until);
            if timer || cron {
                self.drain_applied()?;
            }
        }
        let mut left = pages;
        // Whether this call handed pages over: what they fire moves
        // timers, so they are applied before the timers are read again.
        // A batch of events in flight was waited for above only if
        // something is due: the daemon's writer asks after every batch,
        // and waiting each time held the next batch until the last was
        // flushed.
        let mut handed_over = false;
        // A schedule's fire cut short by the last call goes on first.
        if let Some(fire) = self.schedule_fire.take() {
            let at = fire.at;
            if !self.fire_schedule(fire, &mut left, sink)? {
                return Ok(false);
            }
            self.schedules_done = Some(at);
            handed_over = true;
        }
        loop {
            if handed_over {
                self.drain_applied()?;
            }
            handed_over = true;
            let timer = self.next_due()?;
            let after = self.schedules_done.unwrap_or(until);
            let due = self.deployment.next_due(timer, after, until);
            if due.is_some() && left == 0 {
                return Ok(false);
            }
            match due {
                None => break,
                Some(Due::Timers(_)) => {
                    // Every timer up to the next cron fire (timers due at
                    // its moment go first) or `until`.
                    let through = self
                        .deployment
                        .next_schedule_fire(after)
                        .map_or(until, |(c, _)| c.min(until));
                    if !self.fire_timers(through, &mut left, sink)? {
                        return Ok(false);
                    }
                }
                Some(Due::Schedules(at, journeys)) => {
                    let fire = ScheduleFire {
                        at,
                        journeys,
                        after: None,
                    };
                    if !self.fire_schedule(fire, &mut left, sink)? {
                        return Ok(false);
                    }
                    self.schedules_done = Some(at);
                }
            }
        }
        if self.schedules_done.is_none_or(|d| d < until) {
            self.schedules_done = Some(until);
        }
        Ok(true)
    }

    /// Wakes every user whose timer is due at or before `through`, in
    /// order of (due time, user), each with the clock at its own due time,
    /// a page of timers to a commit. At most `left` pages (each taken from
    /// it): whether every timer through `through` fired.
    ///
    /// Timers are read a run of [`RUN`] at a time, and its pages are
    /// pipelined: each page's writes are applied and flushed on the commit
    /// thread while the next page is evaluated. That holds while the run
    /// is what the store would read: a wake that sets a timer due before
    /// the rest of the run ends the run there (after its page is applied,
    /// the store is read again), so that timer fires in its turn. A call
    /// that runs out of pages leaves its last page in flight; one that
    /// fires everything returns with it applied.
    fn fire_timers(
        &mut self,
        through: DateTime<Utc>,
        left: &mut usize,
        sink: &mut dyn FnMut(Vec<Record>),
    ) -> Result<bool, StoreError> {
        let mut previous: Vec<(DateTime<Utc>, String)> = Vec::new();
        // Whether this call goes on with a run the last one kept: if so,
        // the next call likely will too, and its first page is read ahead.
        let mut continued = false;
        loop {
            let (due, at, mut earliest, read_through) = match self.kept_run(through) {
                Some(kept) => {
                    continued = true;
                    self.read_ahead = kept.ahead;
                    (kept.run, kept.at, kept.earliest, kept.through)
                }
                None => {
                    // The blocks hold a page's moves once it is applied.
                    self.drain_applied()?;
                    let due = self.store.due(through, RUN)?;
                    if due.is_empty() {
                        return Ok(true);
                    }
                    if *left == 0 {
                        return Ok(false);
                    }
                    if due == previous {
                        // Waking these users did not move their timers: a
                        // broken invariant. Say so rather than loop forever.
                        let mut records = Vec::new();
                        for (at, user) in &due {
                            let mut r = Record::new(*at, user, waymark_core::journal::Kind::Error);
                            r.message = Some("a timer did not advance after it fired".into());
                            records.push(r);
                        }
                        sink(records);
                        return Ok(true);
                    }
                    (due, 0, None, through)
                }
            };
            let stopped = self.fire_run(&due, at, &mut earliest, continued, left, sink);
            let ahead = std::mem::take(&mut self.read_ahead);
            if let Some(at) = stopped? {
                self.timer_run = Some(TimerRun {
                    run: due,
                    at,
                    through: read_through,
                    earliest,
                    ahead,
                    writes: self.store.writes(),
                });
                return Ok(false);
            }
            previous = due;
        }
    }

    /// Fires the timers of `run` from `at` on (the first due ones, as read
    /// from the store), page by page, until it ends or a wake sets a timer
    /// due before the rest of it (`earliest`, kept across the run's
    /// pages): then `None`. If `left` runs out first, where it stopped.
    /// The last page this call fires reads the next one's users ahead
    /// only if `read_on` (the next call is likely to go on with the run).
    fn fire_run(
        &mut self,
        run: &[(DateTime<Utc>, String)],
        mut at: usize,
        earliest: &mut Option<(DateTime<Utc>, String)>,
        read_on: bool,
        left: &mut usize,
        sink: &mut dyn FnMut(Vec<Record>),
    ) -> Result<Option<usize>, StoreError> {
        while at < run.len() {
            if *left == 0 {
                return Ok(Some(at));
            }
            let (batch, globals, woken, cut) = self.evaluate_wakes(&run[at..], earliest)?;
            at += woken;
            // The next page's users are read while the store is idle,
            // unless there is none in this run, or this call does no more
            // and the next is unlikely to go on with the run.
            let next = if cut || (*left == 1 && !read_on) {
                &[][..]
            } else {
                &run[at..(at + PAGE).min(run.len())]
            };
            let noop: super::Durable = Box::new(|_| {});
            let records = self.hand_over_evaluated(
                batch,
                globals,
                true,
                noop,
                next.iter().map(|(_, user)| user.as_str()),
            )?;
            *left -= 1;
            sink(records);
            if cut {
                break;
            }
        }
        Ok(None)
    }

    /// Runs the wakes at the start of `run` (in its order, each at its
    /// time) as one batch of at most [`PAGE`]: the batch, the shared state
    /// after it, how many it woke, and whether the run is cut there,
    /// because the earliest timer its wakes set so far (`earliest`, kept
    /// across the run's pages) is due before the next timer of the run.
    #[allow(clippy::type_complexity)]
    fn evaluate_wakes(
        &mut self,
        run: &[(DateTime<Utc>, String)],
        earliest: &mut Option<(DateTime<Utc>, String)>,
    ) -> Result<(Batch, Globals, usize, bool), StoreError> {
        let mut globals = match self.globals.take() {
            Some(g) => g,
            None => self.store.globals()?,
        };
        let before = globals.clone();
        let mut batch = Batch::default();
        let mut woken = 0;
        let mut cut = false;
        for (i, (at, user)) in run.iter().take(PAGE).enumerate() {
            // Each user has one timer, so is here once.
            let state = self.take_user(user)?;
            let wake = state.next_wake();
            batch.users.push((state, wake));
            let (state, _) = batch.users.last_mut().expect("just pushed");
            let input = Input::Wake { user: user.clone() };
            let _span = tracing::debug_span!("input", user = %user, kind = "wake").entered();
            core::handle_into(
                &self.deployment,
                &mut globals,
                state,
                &input,
                *at,
                &mut batch.journal,
                Some(&mut batch.passages),
            );
            woken = i + 1;
            if let Some(next) = state.next_wake()
                && earliest
                    .as_ref()
                    .is_none_or(|(t, u)| (next, user.as_str()) < (*t, u.as_str()))
            {
                *earliest = Some((next, user.clone()));
            }
            if let (Some((first, whose)), Some((then, other))) = (earliest.as_ref(), run.get(i + 1))
                && (*first, whose.as_str()) < (*then, other.as_str())
            {
                cut = true;
                break;
            }
        }
        if globals != before {
            batch.globals = Some(globals.clone());
        }
        Ok((batch, globals, woken, cut))
    }

    /// Fires a schedule's journeys for every member, a page of members to
    /// a commit, after the timers due at its moment; at most `left` pages.
    /// Whether it is done: if not, it is kept to go on from its last member.
    fn fire_schedule(
        &mut self,
        mut fire: ScheduleFire,
        left: &mut usize,
        sink: &mut dyn FnMut(Vec<Record>),
    ) -> Result<bool, StoreError> {
        // Timers due at the same moment fire first.
        if !self.fire_timers(fire.at, left, sink)? {
            self.schedule_fire = Some(fire);
            return Ok(false);
        }
        loop {
            // Each member is read once, with the bytes it is stored as, so
            // that one the fire leaves as it was is not written back.
            let cache = &self.users;
            let page = self
                .store
                .user_page(fire.after.as_deref(), PAGE, |user| cache.holds(user))?;
            let Some(last) = page.last().map(|u| u.id.clone()) else {
                return Ok(true);
            };
            if *left == 0 {
                self.schedule_fire = Some(fire);
                return Ok(false);
            }
            let mut inputs = Vec::with_capacity(page.len() * fire.journeys.len());
            for PagedUser {
                id: user,
                state,
                stored,
            } in page
            {
                inputs.extend(fire.journeys.iter().map(|(j, trigger)| Input::Scheduled {
                    user: user.clone(),
                    journey: j.clone(),
                    trigger: *trigger,
                }));
                if let Some(state) = state {
                    self.read_ahead.insert(user.clone(), Some(state));
                }
                self.as_stored.insert(user, stored);
            }
            let ingested = self.ingest(&inputs, fire.at);
            self.read_ahead.clear();
            self.as_stored.clear();
            sink(ingested?);
            *left -= 1;
            fire.after = Some(last);
        }
    }
}
