//! Rules and tasks. A rule runs its steps on every matching event. A task
//! counts matching events (each distinct value once for the task's life,
//! within a sliding window)
//! or consecutive local days, and runs its reward on reaching the target,
//! as often as `repeatable` / `max N per user` allow.

use super::check::{Check, Memo, Site};
use super::eval::EventRef;
use super::run::Owner;
use super::{Cx, EventValue};
use crate::journal::{Kind, Record};
use crate::model::Event;
use chrono::Duration;
use waymark_dsl::plan::{RulePlan, TaskPlan, TaskProgress};
use waymark_dsl::value::Value;

impl Cx<'_> {
    /// Runs `rule`, one of those listening for the event, if its `checks`
    /// (its filter and condition, made ready) hold; `memo` is shared by
    /// the event's rules.
    pub(crate) fn rule<'e>(
        &mut self,
        rule: &RulePlan,
        checks: &[Check],
        value: &EventValue<'e>,
        memo: &Memo<'e>,
    ) {
        let d = self.d;
        let policy = d.policy("default");
        let owner = Owner {
            name: &rule.name,
            version: "rule",
            steps: &rule.steps,
            policy,
            category: "marketing",
            transactional: false,
            tz: None,
            exit_if: &[],
            can_wait: true,
            lifecycle: false,
            event: None,
        };
        // Conditions are read before the instance is made, as they would
        // read it (the event, no bindings): most events pass no rule, and
        // making one copies the event. The instance number is taken anyway.
        // Per rule (a rule before it may have set the user's zone), and
        // only by a condition walked as written.
        let zone = || self.zone(None, owner.tz, &owner.policy.name);
        let site = Site {
            plan: &d.plan,
            state: self.user,
            event: EventRef::Lazy(value),
            properties: value.properties(),
            now: self.now,
            zone: &zone,
            memo,
        };
        for check in checks {
            match check.holds(&site) {
                Ok(true) => {}
                Ok(false) => {
                    self.user.next_instance += 1;
                    return;
                }
                Err(error) => {
                    let event = value.get().clone();
                    let inst = self.new_instance(&rule.name, "rule", rule.steps.start, event);
                    self.error(&owner, &inst, error);
                    return;
                }
            }
        }
        // Its steps may change what the next rule's checks read.
        memo.forget();
        // The steps read the event as it came in; the instance gets a copy
        // only if it is kept.
        let mut inst = self.new_instance(&rule.name, "rule", rule.steps.start, Value::Null);
        let owner = Owner {
            event: Some(EventRef::Lazy(value)),
            ..owner
        };
        // A send deferred by quiet hours or a cap holds the run until then.
        if self.run(&owner, &mut inst) {
            inst.event = value.get().clone();
            self.user.instances.push(inst);
        }
    }

    pub(crate) fn task(&mut self, task: &TaskPlan, event: &Event, value: &EventValue) {
        if task.on.event != event.name {
            return;
        }
        let value = value.get();
        if let Some(window) = &task.active
            && (self.now < window.from || window.until.is_some_and(|u| self.now >= u))
        {
            return;
        }
        let rewards = self.user.tasks.get(&task.name).map_or(0, |t| t.rewards);
        if task.max_rewards.is_some_and(|m| rewards >= m) {
            return;
        }
        let owner = task_owner(self.d, task);
        let probe = self.new_instance(&task.name, "task", task.reward.start, value.clone());
        self.user.next_instance -= 1;
        if let Some(filter) = &task.on.filter
            && !self.condition(&owner, &probe, filter)
        {
            return;
        }
        let key = match &task.distinct {
            None => None,
            Some(expr) => match self.value(&owner, &probe, expr) {
                None | Some(Value::Null) => return,
                Some(v) => Some(v.to_text()),
            },
        };
        let tz = self.zone(None, owner.tz, &owner.policy.name);
        let now = self.now;
        // A streak counted today already: nothing changes, and the state is
        // read through `Deref`, so its stored bytes stay kept.
        if let TaskProgress::Streak { .. } = task.progress
            && self.user.tasks.get(&task.name).and_then(|s| s.streak_day)
                == Some(now.with_timezone(&tz).date_naive())
        {
            return;
        }
        let state = self.user.tasks.entry(task.name.clone()).or_default();
        let reached = match task.progress {
            TaskProgress::Count { times, within } => {
                if let Some(w) = within {
                    let horizon = now - Duration::seconds(w);
                    state.counted.retain(|(t, _)| *t > horizon);
                }
                // A distinct value counts once for as long as the task can
                // pay out: not again after a reward (a repeat needs new
                // values), nor after sliding out of the window.
                if let Some(k) = &key
                    && !state.seen.insert(k.clone())
                {
                    return;
                }
                state.counted.push((now, key));
                let reached = state.counted.len() as u64 >= times;
                if reached {
                    state.counted.clear();
                }
                reached
            }
            TaskProgress::Streak { days } => {
                let today = now.with_timezone(&tz).date_naive();
                match state.streak_day {
                    Some(d) if d == today => return,
                    Some(d) if d + Duration::days(1) == today => state.streak += 1,
                    _ => state.streak = 1,
                }
                state.streak_day = Some(today);
                let reached = state.streak >= days;
                if reached {
                    state.streak = 0;
                }
                reached
            }
        };
        if reached {
            self.reward(task, &owner, value.clone());
        }
    }

    /// Pays `task`'s reward (its progress already reset): counts it, and
    /// runs its steps with `event` (the event that reached the target).
    fn reward(&mut self, task: &TaskPlan, owner: &Owner<'_>, event: Value) {
        let state = self.user.tasks.entry(task.name.clone()).or_default();
        state.rewards += 1;
        if task.max_rewards.is_some_and(|m| state.rewards >= m) {
            // It cannot pay out again: what it remembered is of no more use.
            state.seen.clear();
            state.counted.clear();
        }
        let mut r = Record::new(self.now, &self.user.id, Kind::Reward);
        r.journey = Some(task.name.as_str().into());
        r.task = Some(task.name.clone());
        self.records.push(r);
        let mut inst = self.new_instance(&task.name, "task", task.reward.start, event);
        // A send deferred by quiet hours or a cap holds the run until then.
        if self.run(owner, &mut inst) {
            self.user.instances.push(inst);
        }
    }

    /// After a merge: a counting task whose two halves together reach its
    /// target pays now, as it would have on the event that reached it had
    /// all come to one id (the earliest counted go; the rest stay
    /// counted). Its steps see no event.
    pub(crate) fn reward_merged(&mut self, task: &TaskPlan) {
        let TaskProgress::Count { times, .. } = task.progress else {
            return;
        };
        let Some(state) = self.user.tasks.get_mut(&task.name) else {
            return;
        };
        if (state.counted.len() as u64) < times
            || task.max_rewards.is_some_and(|m| state.rewards >= m)
        {
            return;
        }
        state.counted.sort_by_key(|(t, _)| *t);
        state.counted.drain(..times as usize);
        self.reward(task, &task_owner(self.d, task), Value::Null);
    }
}

/// What a task's reward runs as: its steps with the `default` policy's
/// guard rails, like a rule's, in the task's zone.
fn task_owner<'p>(d: &'p crate::deployment::Deployment, task: &'p TaskPlan) -> Owner<'p> {
    Owner {
        name: &task.name,
        version: "task",
        steps: &task.reward,
        policy: d.policy("default"),
        category: "marketing",
        transactional: false,
        tz: task.tz.as_deref(),
        exit_if: &[],
        can_wait: true,
        lifecycle: false,
        event: None,
    }
}
