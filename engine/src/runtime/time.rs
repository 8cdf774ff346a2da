//! Time passing: timers fire in order of (due time, user), each with the
//! clock at its due time, and cron triggers fire the same way, scanning
//! users page by page; so runs are deterministic.

use super::{PAGE, Runtime};
use crate::store::{Kv, StoreError};
use chrono::{DateTime, Utc};
use waymark_core::deployment::Due;
use waymark_core::journal::Record;
use waymark_core::model::Input;

impl<K: Kv> Runtime<K> {
    /// Fires every timer and cron trigger due up to and including `until`,
    /// in time order, each at its own time.
    pub fn advance_to(&mut self, until: DateTime<Utc>) -> Result<Vec<Record>, StoreError> {
        if self.in_flight.is_some() {
            // Only wait for the batch in flight if something is due: what
            // it schedules is in the future (what is due at once runs in
            // the batch itself), so without it the timers read the same.
            let timer = self.store.next_due()?.is_some_and(|t| t <= until);
            let cron = self
                .deployment
                .next_schedule_fire(self.schedules_done.unwrap_or(until))
                .is_some_and(|(t, _)| t <= until);
            if timer || cron {
                self.drain()?;
            }
        }
        let mut records = Vec::new();
        loop {
            let timer = self.store.next_due()?;
            let after = self.schedules_done.unwrap_or(until);
            match self.deployment.next_due(timer, after, until) {
                None => break,
                Some(Due::Timers(t)) => records.extend(self.fire_timers(t)?),
                Some(Due::Schedules(c, journeys)) => {
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
                    let mut r = Record::new(at, user, waymark_core::journal::Kind::Error);
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
}
