//! The pure core: (user state, deployment, input, now) → new state and
//! journal records. No I/O, no clock reads, no spawning: the shells
//! (`simulate`, `test`, the daemon) load state, call [`handle`], and commit
//! the state and records together. Sends are records of kind `send`; the
//! shell puts them in the outbox. Timers are not effects either: a user's
//! next wake-up is derived from the state it returns (`UserState::next_wake`).
//!
//! For one event, in order (engine.md): history and profile; exits and
//! goals of active instances; instances waiting for the event resume;
//! journeys, rules and tasks it triggers; then every instance runs until it
//! waits or ends. Events emitted along the way are processed the same way,
//! after, in the same call.

mod check;
pub(crate) use check::Check;
mod consent;
mod coupon_codes;
mod eval;
mod guard;
mod merge;
mod quota;
mod run;
mod tasks;

pub use coupon_codes::{CouponSecret, coupon_code};
use eval::EventRef;
pub use eval::{Env, user_value};
pub use merge::merge_into;

use crate::deployment::Deployment;
use crate::journal::{Kind, Record};
use crate::model::{Event, Input, Instance, UserState, Wait};
use crate::stats::Passage;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use waymark_dsl::plan::{Entry, EventFilter, JourneyPlan, Trigger, Window};
use waymark_dsl::value::Value;

/// At most this many steps run in one call; a script that would run more
/// (a long `repeat` without waits) stops with an error record.
const STEP_BUDGET: u32 = waymark_dsl::plan::STEP_BUDGET;
/// At most this many events may be emitted in one call (emit loops).
const EMIT_BUDGET: u32 = 32;

/// State shared by all users: entry budgets of `limit` clauses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Globals {
    /// Entry times per journey, kept only as far back as its limit window.
    pub entries: BTreeMap<String, VecDeque<DateTime<Utc>>>,
    /// Codes issued so far per coupon name: the number of the next code.
    pub coupons_issued: BTreeMap<String, u64>,
}

/// An event as conditions see it (its properties, `name` and `at`), made
/// on first use.
pub(crate) struct EventValue<'a> {
    event: &'a Event,
    value: std::cell::OnceCell<Value>,
}

impl<'a> EventValue<'a> {
    fn new(event: &'a Event) -> EventValue<'a> {
        EventValue {
            event,
            value: std::cell::OnceCell::new(),
        }
    }

    pub(crate) fn get(&self) -> &Value {
        self.value.get_or_init(|| self.event.as_value())
    }

    /// The event's properties as sent: what [`EventValue::field`] gives
    /// for any field but `at` and `name`.
    pub(crate) fn properties(&self) -> &'a Value {
        &self.event.properties
    }

    /// One field of [`Event::as_value`], without making the rest.
    pub(crate) fn field(&self, field: &str) -> std::borrow::Cow<'_, Value> {
        use std::borrow::Cow;
        if let Some(value) = self.value.get() {
            return Cow::Borrowed(value.field(field));
        }
        let e = self.event;
        match field {
            "at" => Cow::Owned(Value::Timestamp(e.at)),
            "name" => match e.properties.field("name") {
                // A page or screen's own name (see `event_value`).
                named @ Value::String(_)
                    if crate::model::VIEW_EVENTS.contains(&e.name.as_str()) =>
                {
                    Cow::Borrowed(named)
                }
                _ => Cow::Owned(Value::String(e.name.clone())),
            },
            _ => Cow::Borrowed(e.properties.field(field)),
        }
    }
}

/// Handles one input for one user at `now`, returning the journal records
/// in the order things happened. Never panics on script errors: they are
/// `error` records.
pub fn handle(
    d: &Deployment,
    globals: &mut Globals,
    user: &mut UserState,
    input: &Input,
    now: DateTime<Utc>,
) -> Vec<Record> {
    handle_counted(d, globals, user, input, now).0
}

/// [`handle`], also saying how many steps ran (at most the step budget),
/// for the runtime's budget per batch.
pub fn handle_counted(
    d: &Deployment,
    globals: &mut Globals,
    user: &mut UserState,
    input: &Input,
    now: DateTime<Utc>,
) -> (Vec<Record>, u32) {
    let mut records = Vec::new();
    let steps = handle_into(d, globals, user, input, now, &mut records, None);
    (records, steps)
}

/// [`handle_counted`] adding the records to the end of `out`: a shell that
/// collects many inputs' records in one vector (a preview's page, a batch's
/// journal) writes each record once, where a vector per input was grown,
/// then copied record by record into the shell's. With `passages`, every
/// instance coming to a journey step or going on from it is added there
/// too, for the shell's per-step stats.
pub fn handle_into(
    d: &Deployment,
    globals: &mut Globals,
    user: &mut UserState,
    input: &Input,
    now: DateTime<Utc>,
    out: &mut Vec<Record>,
    passages: Option<&mut Vec<Passage>>,
) -> u32 {
    let mut cx = Cx::new(d, globals, user, now, out, passages);
    match input {
        Input::Track(event) => cx.event(event),
        Input::Identify {
            traits, message_id, ..
        } => {
            if let Value::Record(map) = traits {
                // Only an identify that speaks of consent is compared.
                let before = map.contains_key("consent").then(|| cx.consent_now());
                for (k, v) in map {
                    merge(
                        cx.user.traits.get_or_insert_with(k, || Value::Null),
                        v.clone(),
                    );
                }
                if let Some(before) = before {
                    let change = crate::consent::ConsentChange {
                        message_id: message_id.clone(),
                        ..crate::consent::ConsentChange::new(false, "identify")
                    };
                    cx.record_consent_changes(before.as_ref(), &change, |cx| {
                        Record::new(cx.now, &cx.user.id, Kind::Consent)
                    });
                }
            }
            cx.run_ready();
        }
        Input::Consent {
            channel, change, ..
        } => {
            match (&change.template, channel) {
                (Some(_), _) => cx.change_grants(channel.as_deref(), change.clone()),
                (None, Some(channel)) => cx.set_consent(channel, change.clone()),
                (None, None) => {}
            }
            cx.run_ready();
        }
        Input::Wake { .. } => cx.wake(),
        Input::Scheduled {
            journey, trigger, ..
        } => {
            if let Some(plan) = d.current(journey) {
                // The audience of the trigger that fired.
                if let Some(Trigger::Schedule { audience, .. }) = plan.triggers.get(*trigger) {
                    let fits = audience.as_ref().is_none_or(|a| {
                        cx.condition_for_user(a, plan, EventRef::Value(&Value::Null))
                    });
                    if fits {
                        cx.try_enter(plan, Value::Null, "schedule");
                    }
                }
            }
            cx.run_ready();
        }
        Input::Outcome(outcome) => {
            cx.outcome(outcome);
            cx.run_ready();
        }
        Input::Tags {
            add,
            remove,
            source,
            ..
        } => {
            for (tag, adding) in add
                .iter()
                .map(|t| (t, true))
                .chain(remove.iter().map(|t| (t, false)))
            {
                let changed = match adding {
                    true => cx.user.tags.insert(tag.clone()),
                    false => cx.user.tags.remove(tag),
                };
                if changed {
                    let kind = if adding { Kind::Tag } else { Kind::Untag };
                    let mut r = Record::new(cx.now, &cx.user.id, kind);
                    r.tag = Some(tag.clone());
                    r.reason = Some(source.clone());
                    cx.records.push(r);
                }
            }
            cx.run_ready();
        }
        // The shells merge, with both profiles (see [`merge_into`]).
        Input::Merge { .. } => {}
        Input::Cancel { journey, .. } => {
            // Two, after a merge.
            while let Some(index) = cx.user.instances.iter().position(|i| &i.journey == journey) {
                let inst = cx.user.instances.remove(index);
                let mut r = cx.instance_record(&inst, Kind::Exit);
                r.reason = Some("cancelled".into());
                cx.records.push(r);
            }
        }
    }
    cx.finish(out)
}

impl<'a> Cx<'a> {
    fn new(
        d: &'a Deployment,
        globals: &'a mut Globals,
        user: &'a mut UserState,
        now: DateTime<Utc>,
        out: &mut Vec<Record>,
        passages: Option<&'a mut Vec<Passage>>,
    ) -> Cx<'a> {
        let cx = Cx {
            d,
            globals,
            user,
            now,
            records: std::mem::take(out),
            passages,
            emitted: VecDeque::new(),
            steps_left: STEP_BUDGET,
            emits_left: EMIT_BUDGET,
            user_zone: std::cell::Cell::new(None),
        };
        if cx.user.created_at.is_none() {
            cx.user.created_at = Some(now);
        }
        cx
    }

    /// What follows every input: emitted events, segment triggers; the
    /// records handed back to `out`. Returns the steps run.
    fn finish(mut self, out: &mut Vec<Record>) -> u32 {
        self.drain_emitted();
        self.segments();
        self.drain_emitted();
        // A user whose instances all ended keeps no room for them: most
        // users are in no journey most of the time.
        if self.user.instances.is_empty() {
            self.user.instances = Vec::new();
        }
        *out = self.records;
        STEP_BUDGET - self.steps_left
    }
}

/// Merges identify traits: records merge key by key (so `consent.sms`
/// can be set alone), anything else replaces.
fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Record(a), Value::Record(b)) => {
            for (k, v) in b {
                merge(a.get_or_insert_with(&k, || Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

pub(crate) struct Cx<'a> {
    d: &'a Deployment,
    globals: &'a mut Globals,
    user: &'a mut UserState,
    now: DateTime<Utc>,
    /// The shell's records, this input's pushed at the end (only pushed:
    /// the records before this input's are the shell's business).
    records: Vec<Record>,
    /// The shell's passages, when it counts them.
    passages: Option<&'a mut Vec<Passage>>,
    emitted: VecDeque<Event>,
    steps_left: u32,
    emits_left: u32,
    /// The user's own time zone (their `timezone` trait) once read;
    /// forgotten whenever a trait is set.
    user_zone: std::cell::Cell<Option<Option<chrono_tz::Tz>>>,
}

impl<'a> Cx<'a> {
    fn event(&mut self, event: &Event) {
        let d = self.d;
        self.opt_out_reply(event);
        self.subscribe_answers(event);
        let listening = d.listeners(&event.name);
        let keep = d.history_kept(listening);
        self.user
            .history
            .record_as(&event.name, event.at, &event.properties, keep);
        // Built only if a condition or a binding reads it: most events
        // match no filter.
        let value = EventValue::new(event);
        // Exits and goals of active instances.
        let mut index = 0;
        while index < self.user.instances.len() {
            let inst = &self.user.instances[index];
            let Some(plan) = d.version(&inst.journey, &inst.version) else {
                index += 1;
                continue;
            };
            // A goal counts even when the same event also exits the journey.
            if let Some(goal) = &plan.goal {
                let inst = &self.user.instances[index];
                let in_time = (self.now - inst.entered_at).num_seconds() <= goal.within;
                if !inst.goal_reached
                    && in_time
                    && self.filter_matches(&goal.event, &event.name, &value, plan)
                {
                    self.user.instances[index].goal_reached = true;
                    let mut r = self.instance_record(&self.user.instances[index], Kind::Goal);
                    r.event = Some(event.name.as_str().into());
                    self.records.push(r);
                    if !goal.and_continue {
                        let inst = self.user.instances.remove(index);
                        let mut r = self.instance_record(&inst, Kind::Exit);
                        r.reason = Some("goal".into());
                        self.records.push(r);
                        continue;
                    }
                }
            }
            if plan
                .exit_on
                .iter()
                .any(|f| self.filter_matches(f, &event.name, &value, plan))
            {
                let inst = self.user.instances.remove(index);
                let mut r = self.instance_record(&inst, Kind::Exit);
                r.reason = Some("exit_on".into());
                r.event = Some(event.name.as_str().into());
                self.records.push(r);
                continue;
            }
            index += 1;
        }
        // Goals still open after their instance finished its steps: those
        // this event may close (it is the goal's event, or the goal is past
        // its window or gone from the plan). The rest stay as they are, so
        // they are neither copied nor looked at again.
        let now = self.now;
        let open: Vec<(String, crate::model::OpenGoal)> = self
            .user
            .journeys
            .iter()
            .filter_map(|(name, memo)| {
                let open = memo.open_goal.as_ref()?;
                let goal = d.version(name, &open.version).and_then(|p| p.goal.as_ref());
                let may_close =
                    goal.is_none_or(|g| now > open.until || g.event.event == event.name);
                may_close.then(|| (name.clone(), open.clone()))
            })
            .collect();
        for (name, open) in open {
            let plan = d.version(&name, &open.version);
            let goal = plan.and_then(|p| p.goal.as_ref().map(|g| (p, g)));
            let reached = match goal {
                Some((plan, goal)) if self.now <= open.until => {
                    self.filter_matches(&goal.event, &event.name, &value, plan)
                }
                _ => false,
            };
            if (reached || self.now > open.until || goal.is_none())
                && let Some(memo) = self.user.journeys.get_mut(&name)
            {
                memo.open_goal = None;
            }
            if reached {
                let mut r = Record::new(self.now, &self.user.id, Kind::Goal);
                r.journey = Some(name.as_str().into());
                r.version = Some(open.version.as_str().into());
                r.instance = Some(open.instance);
                r.event = Some(event.name.as_str().into());
                if !open.arms.is_empty() {
                    r.arms = Some(open.arms.clone());
                }
                self.records.push(r);
            }
        }
        // Instances waiting for this event resume.
        for index in 0..self.user.instances.len() {
            let inst = &self.user.instances[index];
            if !matches!(inst.wait, Wait::ForEvent { .. }) {
                continue;
            }
            let Some(plan) = d.version(&inst.journey, &inst.version) else {
                continue;
            };
            let Some(step) = plan.steps.get(inst.step) else {
                continue;
            };
            // A `wait for confirmation` goes on with its send's outcome
            // only (see `outcome`), not with an event of that name.
            let waymark_dsl::plan::StepKind::WaitForEvent {
                event: filter,
                bind,
                on_event,
                confirms: None,
                ..
            } = &step.kind
            else {
                continue;
            };
            if self.filter_matches(filter, &event.name, &value, plan) {
                let inst = &mut self.user.instances[index];
                if let Some(name) = bind {
                    inst.bindings.insert(name.clone(), value.get().clone());
                }
                inst.event = value.get().clone();
                inst.step = *on_event;
                inst.wait = Wait::Ready;
            }
        }
        // Journeys, rules and tasks the event starts or counts.
        let plan = d.plan.clone();
        for journey in listening.journeys.iter().map(|&i| &plan.journeys[i]) {
            let triggered = journey.triggers.iter().any(|t| match t {
                Trigger::Event(f) => self.filter_matches(f, &event.name, &value, journey),
                _ => false,
            });
            if triggered {
                self.try_enter(journey, value.get().clone(), &event.name);
            }
        }
        let memo = check::Memo::new();
        for &i in &listening.rules {
            self.rule(&plan.rules[i], d.rule_checks(i), &value, &memo);
        }
        for task in listening.tasks.iter().map(|&i| &plan.tasks[i]) {
            self.task(task, event, &value);
        }
        self.run_ready();
    }

    /// Journals what came of a staff-confirmed send, and moves the
    /// instance whose `wait for confirmation` waits on it: to its first
    /// block if the message was sent, else to its `else`.
    fn outcome(&mut self, outcome: &crate::model::SendOutcome) {
        let mut r = (*outcome.send).clone();
        r.at = self.now;
        r.kind = Kind::Outcome;
        r.user = self.user.id.clone();
        r.reason = Some(outcome.outcome.clone());
        r.staff = outcome.staff.clone();
        r.message = outcome.detail.clone();
        self.records.push(r);
        let d = self.d;
        if let Some(q) = outcome
            .send
            .channel
            .as_deref()
            .and_then(|c| d.platform_quotas.get(c))
        {
            quota::correct(self.user.quotas.get_mut(&q.group), q, outcome);
        }
        let Some(key) = outcome.send.idempotency_key.as_deref() else {
            return;
        };
        for inst in &mut self.user.instances {
            if inst.awaiting.as_deref() != Some(key) {
                continue;
            }
            let waiting = matches!(inst.wait, Wait::ForEvent { .. })
                && d.version(&inst.journey, &inst.version)
                    .and_then(|plan| plan.steps.get(inst.step))
                    .is_some_and(|s| {
                        matches!(
                            s.kind,
                            waymark_dsl::plan::StepKind::WaitForEvent {
                                confirms: Some(_),
                                ..
                            }
                        )
                    });
            inst.outcome = Some(outcome_value(outcome));
            if waiting {
                // The wait step takes the outcome now (see `run`).
                inst.wait = Wait::Ready;
            }
            // Else the instance is on a step between the send and its
            // wait, which takes the outcome when the instance comes to it.
        }
    }

    /// `event E where EXPR` against an event.
    fn filter_matches(
        &mut self,
        filter: &EventFilter,
        name: &str,
        event: &EventValue,
        journey: &JourneyPlan,
    ) -> bool {
        if filter.event != name {
            return false;
        }
        match &filter.filter {
            None => true,
            Some(expr) => self.condition_for_user(expr, journey, EventRef::Lazy(event)),
        }
    }

    /// A condition outside any step; an error is recorded and counts as false.
    fn condition_for_user(
        &mut self,
        expr: &waymark_dsl::plan::Expr,
        journey: &JourneyPlan,
        event: EventRef<'_>,
    ) -> bool {
        let tz = self.zone(None, journey.tz.as_deref(), &journey.policy);
        let empty = BTreeMap::new();
        let env = Env::with_event(&self.d.plan, self.user, event, &empty, self.now, tz);
        match env.condition(expr) {
            Ok(b) => b,
            Err(error) => {
                let mut r = Record::new(self.now, &self.user.id, Kind::Error);
                r.journey = Some(journey.name.as_str().into());
                r.version = Some(journey.version.as_str().into());
                r.message = Some(error.to_string());
                self.records.push(r);
                false
            }
        }
    }

    /// Enters the user into the current version of a journey if its entry
    /// rules, window, audience, pause state and budget allow; a refusal is
    /// a `skipped` record (see [`Cx::skip`]).
    fn try_enter(&mut self, journey: &JourneyPlan, event: Value, trigger: &str) {
        if self.user.instance(&journey.name).is_some() {
            return self.skip(journey, trigger, "in_journey");
        }
        // Only these two are read: the memo is not copied for them.
        let (entries, last_entered) = self
            .user
            .journeys
            .get(&journey.name)
            .map_or((0, None), |m| (m.entries, m.last_entered));
        let refused = match journey.entry {
            Entry::Once => (entries > 0).then_some("once"),
            Entry::Always => None,
            Entry::Every(d) => last_entered
                .is_some_and(|t| (self.now - t).num_seconds() < d)
                .then_some("every"),
        };
        if let Some(reason) = refused {
            return self.skip(journey, trigger, reason);
        }
        if let Some(window) = &journey.active
            && (self.now < window.from || window.until.is_some_and(|u| self.now >= u))
        {
            return self.skip(journey, trigger, "window");
        }
        if let Some(audience) = &journey.audience
            && !self.condition_for_user(audience, journey, EventRef::Value(&event))
        {
            return self.skip(journey, trigger, "audience");
        }
        if self.d.is_paused(&journey.name) {
            return self.skip(journey, trigger, "paused");
        }
        if let Some(limit) = &journey.limit {
            // One budget for everybody, so one calendar: the journey's zone,
            // else its policy's, never the user's (users in two zones
            // would see two different days of the same budget).
            let tz = journey
                .tz
                .as_deref()
                .and_then(|z| waymark_dsl::schedule::parse_time_zone(z).ok())
                .or_else(|| self.d.policy_zone(&journey.policy))
                .unwrap_or(chrono_tz::UTC);
            let since = window_start(limit.per, self.now, tz);
            let entries = self
                .globals
                .entries
                .entry(journey.name.clone())
                .or_default();
            // As for caps: a rolling window ending now leaves out its start
            // instant; a calendar period includes its first instant.
            let rolling = matches!(limit.per, Some(Window::Rolling(_)));
            while entries
                .front()
                .is_some_and(|t| since.is_some_and(|s| *t < s || rolling && *t == s))
            {
                entries.pop_front();
            }
            if entries.len() as u64 >= limit.entries {
                return self.skip(journey, trigger, "budget");
            }
            entries.push_back(self.now);
        }
        let inst = self.new_instance(&journey.name, &journey.version, journey.steps.start, event);
        let memo = self.user.journeys.entry(journey.name.clone()).or_default();
        memo.entries += 1;
        memo.last_entered = Some(self.now);
        let mut r = self.instance_record(&inst, Kind::Enter);
        r.event = Some(trigger.into());
        self.records.push(r);
        self.passage(&inst, false);
        self.user.instances.push(inst);
    }

    /// A new instance of `journey` at `start`, ready to run, with the
    /// user's next instance id.
    fn new_instance(
        &mut self,
        journey: &str,
        version: &str,
        start: waymark_dsl::plan::StepId,
        event: Value,
    ) -> Instance {
        let id = self.user.next_instance;
        self.user.next_instance += 1;
        Instance {
            id,
            journey: journey.to_string(),
            version: version.to_string(),
            step: start,
            entered_at: self.now,
            event,
            bindings: BTreeMap::new(),
            loops: BTreeMap::new(),
            visits: BTreeMap::new(),
            arms: BTreeMap::new(),
            wait: Wait::Ready,
            goal_reached: false,
            awaiting: None,
            outcome: None,
        }
    }

    /// Timers due at or before now: expiring points, waits that ended,
    /// `wait for` timeouts, held instances of resumed journeys.
    fn wake(&mut self) {
        let now = self.now;
        let expired: rust_decimal::Decimal = self
            .user
            .points
            .lots
            .iter()
            .filter(|l| l.expires_at.is_some_and(|t| t <= now))
            .map(|l| l.amount)
            .sum();
        if !expired.is_zero() {
            self.user
                .points
                .lots
                .retain(|l| l.expires_at.is_none_or(|t| t > now));
            let mut r = Record::new(now, &self.user.id, Kind::Points);
            r.delta = Some(waymark_dsl::value::decimal_to_json(-expired));
            r.balance = Some(waymark_dsl::value::decimal_to_json(
                self.user.points.balance(),
            ));
            r.reason = Some("expired".into());
            self.records.push(r);
        }
        let d = self.d;
        for inst in &mut self.user.instances {
            match inst.wait {
                Wait::Until(t) if t <= now => {
                    inst.wait = Wait::Ready;
                    inst.bindings.insert(RESUMED.into(), Value::Bool(true));
                }
                Wait::ForEvent { until } if until <= now => {
                    if let Some(plan) = d.version(&inst.journey, &inst.version)
                        && let Some(step) = plan.steps.get(inst.step)
                        && let waymark_dsl::plan::StepKind::WaitForEvent { on_timeout, .. } =
                            &step.kind
                    {
                        inst.step = *on_timeout;
                    }
                    inst.awaiting = None;
                    inst.wait = Wait::Ready;
                }
                Wait::Held if d.may_go_on(&inst.journey) => inst.wait = Wait::Ready,
                _ => {}
            }
        }
        self.run_ready();
    }

    /// Runs every ready instance until it waits or ends.
    fn run_ready(&mut self) {
        let mut index = 0;
        while index < self.user.instances.len() {
            if self.user.instances[index].wait != Wait::Ready {
                index += 1;
                continue;
            }
            let mut inst = self.user.instances.remove(index);
            if self.run_instance(&mut inst) {
                self.user.instances.insert(index, inst);
                index += 1;
            }
        }
    }

    /// Processes emitted events until none are left.
    fn drain_emitted(&mut self) {
        while let Some(event) = self.emitted.pop_front() {
            self.event(&event);
        }
    }

    /// Segment triggers: users who start to match a segment enter.
    fn segments(&mut self) {
        let d = self.d;
        if !d.has_segment_triggers() {
            // A deploy may have removed the segment triggers this was for.
            self.user.segments_due = None;
            return;
        }
        let plan = d.plan.clone();
        let mut names: Vec<&str> = plan
            .journeys
            .iter()
            .flat_map(|j| j.triggers.iter())
            .filter_map(|t| match t {
                Trigger::Segment(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        let empty = BTreeMap::new();
        let tz = self.zone(None, None, "default");
        let mut now_in = Vec::new();
        {
            let env = Env::new(&plan, self.user, &Value::Null, &empty, self.now, tz);
            for name in names {
                if env.segment(name).unwrap_or(false) {
                    now_in.push(name.to_string());
                }
            }
        }
        let newly: Vec<String> = now_in
            .iter()
            .filter(|s| !self.user.segments.contains(*s))
            .cloned()
            .collect();
        self.user.segments = now_in.into_iter().collect();
        self.user.segments_due = Some(self.now + Duration::days(1));
        for segment in newly {
            for journey in &plan.journeys {
                if journey
                    .triggers
                    .iter()
                    .any(|t| matches!(t, Trigger::Segment(s) if *s == segment))
                {
                    self.try_enter(journey, Value::Null, &segment);
                }
            }
        }
        self.run_ready();
    }

    /// Time zone resolution (language.md §6): the step's, the journey's (or
    /// task's), the user's, the policy's, then UTC.
    /// A trigger matched but the journey did not take the user in: a
    /// `skipped` record with the reason, at most one per user, journey and
    /// reason per local day, so a trigger on a frequent event (page views)
    /// cannot flood the journal.
    fn skip(&mut self, journey: &JourneyPlan, trigger: &str, reason: &'static str) {
        let tz = self.zone(None, journey.tz.as_deref(), &journey.policy);
        let today = self.now.with_timezone(&tz).date_naive();
        // Refused again the same day (the usual case): looked up through
        // `Deref`, so the memos' stored bytes stay kept (see `Kept`) and
        // the next write copies them instead of encoding every memo.
        let memos = &self.user.journeys;
        if memos.get(&journey.name).and_then(|m| m.skipped.get(reason)) == Some(&today) {
            return;
        }
        let memo = self.user.journeys.entry(journey.name.clone()).or_default();
        memo.skipped.insert(reason.to_string(), today);
        let mut r = Record::new(self.now, &self.user.id, Kind::Skipped);
        r.journey = Some(journey.name.as_str().into());
        r.version = Some(journey.version.as_str().into());
        r.reason = Some(reason.into());
        r.event = Some(trigger.into());
        self.records.push(r);
    }

    fn zone(&self, step: Option<&str>, owner: Option<&str>, policy: &str) -> chrono_tz::Tz {
        let parse = |z: &str| waymark_dsl::schedule::parse_time_zone(z).ok();
        let user = || match self.user_zone.get() {
            Some(zone) => zone,
            None => {
                let zone = self
                    .user
                    .traits
                    .get("timezone")
                    .and_then(Value::as_str)
                    .and_then(parse);
                self.user_zone.set(Some(zone));
                zone
            }
        };
        step.and_then(parse)
            .or_else(|| owner.and_then(parse))
            .or_else(user)
            .or_else(|| self.d.policy_zone(policy))
            .unwrap_or(chrono_tz::UTC)
    }

    /// A record about an instance.
    /// Counts `inst` coming to its step (or, `passed`, going on from it)
    /// when the shell counts passages.
    fn passage(&mut self, inst: &Instance, passed: bool) {
        if let Some(passages) = self.passages.as_deref_mut() {
            passages.push(Passage {
                journey: inst.journey.as_str().into(),
                version: inst.version.as_str().into(),
                step: inst.step,
                arms: (!inst.arms.is_empty()).then(|| inst.arms.clone()),
                passed,
            });
        }
    }

    fn instance_record(&self, inst: &Instance, kind: Kind) -> Record {
        let mut r = Record::new(self.now, &self.user.id, kind);
        r.journey = Some(inst.journey.as_str().into());
        r.version = Some(inst.version.as_str().into());
        r.instance = Some(inst.id);
        if !inst.arms.is_empty() {
            r.arms = Some(inst.arms.clone());
        }
        r
    }
}

/// The binding that marks an instance woken by its timer at its current
/// step (so a `repeat … every` or a deferred send does not wait again).
pub(crate) const RESUMED: &str = "\u{0}resumed";

/// Where a counting window starts: rolling windows end now; calendar
/// windows start at the period's start in `tz`. `None`: no window (all time).
pub(crate) fn window_start(
    window: Option<Window>,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Option<DateTime<Utc>> {
    match window? {
        Window::Rolling(seconds) => Some(now - Duration::seconds(seconds)),
        Window::Calendar(period) => Some(guard::period_start(period, now, tz)),
    }
}

/// An outcome as a `wait for confirmation … as NAME` binding sees it: an
/// event `send_outcome` with the outcome, the staff member and the
/// channel.
fn outcome_value(outcome: &crate::model::SendOutcome) -> Value {
    let mut map = BTreeMap::new();
    map.insert("name".into(), Value::String("send_outcome".into()));
    map.insert("at".into(), Value::Timestamp(outcome.at));
    map.insert("outcome".into(), Value::String(outcome.outcome.clone()));
    map.insert(
        "staff".into(),
        outcome.staff.clone().map_or(Value::Null, Value::String),
    );
    map.insert(
        "channel".into(),
        outcome
            .send
            .channel
            .clone()
            .map_or(Value::Null, Value::String),
    );
    Value::Record(map.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::Deployment;

    fn deployment(script: &str) -> Deployment {
        let mut sources = waymark_dsl::Sources::new();
        sources.add("test.journey", script);
        let options = waymark_dsl::Options {
            functions: waymark_stdlib::stdlib(),
            channels: None,
        };
        Deployment::new(waymark_dsl::compile(sources, options).plan.expect("checks"))
    }

    fn track(user: &str, name: &str, at: DateTime<Utc>) -> Input {
        Input::Track(Event {
            user: user.into(),
            name: name.into(),
            properties: Value::Record(Default::default()),
            at,
            message_id: None,
        })
    }

    /// What the store writes for a user: the parts kept are copied, the
    /// others encoded (and kept from then on).
    fn written(u: &UserState) -> Vec<u8> {
        let mut out = Vec::new();
        u.encode_positional(&mut out).unwrap();
        out
    }

    /// The usual events change nothing in a user's journey memos or task
    /// progress: an entry refused again the same local day, a check-in on
    /// a day already counted. They read those parts without taking them
    /// to change, so the bytes kept for them stay, and writing the user is
    /// a copy of those bytes, not an encoding of every memo and task.
    #[test]
    fn a_repeat_refusal_or_check_in_the_same_day_keeps_the_stored_bytes() {
        let d = deployment(
            r#"
journey welcome {
  trigger event page
  entry once
  tz "Asia/Shanghai"
  tag "welcomed"
}
task daily_checkin "每日签到" {
  on event checkin
  tz "Asia/Shanghai"
  streak 3 days {
    give points 100 reason "连续签到"
  }
  repeatable
}
"#,
        );
        let mut globals = Globals::default();
        let mut u = UserState::new("u1");
        // 08:00 in Shanghai.
        let start = DateTime::parse_from_rfc3339("2025-11-10T00:00:00Z")
            .unwrap()
            .to_utc();
        let mut run = |u: &mut UserState, name: &str, at| {
            handle(&d, &mut globals, u, &track("u1", name, at), at)
        };
        run(&mut u, "page", start);
        run(&mut u, "checkin", start);
        let skipped = run(&mut u, "page", start + chrono::Duration::hours(1));
        assert_eq!(
            skipped.iter().filter(|r| r.kind == Kind::Skipped).count(),
            1
        );
        written(&u);
        assert!(u.journeys.bytes().is_some() && u.tasks.bytes().is_some());
        // The same local day: refused silently, the check-in not counted.
        let later = start + chrono::Duration::hours(15);
        assert!(run(&mut u, "page", later).is_empty());
        assert!(run(&mut u, "checkin", later).is_empty());
        assert!(u.journeys.bytes().is_some(), "the memos' bytes are kept");
        assert!(u.tasks.bytes().is_some(), "the tasks' bytes are kept");
        assert_eq!(u.tasks["daily_checkin"].streak, 1);
        assert_eq!(written(&u), rmp_serde::to_vec(&u).unwrap());
        // The next local day (16:00 UTC): both change, and are encoded anew.
        let next = start + chrono::Duration::hours(16);
        assert_eq!(run(&mut u, "page", next).len(), 1);
        run(&mut u, "checkin", next);
        assert!(u.journeys.bytes().is_none() && u.tasks.bytes().is_none());
        assert_eq!(u.tasks["daily_checkin"].streak, 2);
        assert_eq!(written(&u), rmp_serde::to_vec(&u).unwrap());
    }

    /// A goal left open after the journey's steps: another event leaves
    /// it open, the goal's event within the window closes it with a goal
    /// record, and once the window has passed any event drops it.
    #[test]
    fn an_open_goal_closes_on_its_event_or_on_any_event_after_its_window() {
        let d = deployment(
            r#"
journey offer {
  trigger event lapsed
  goal buy within 3d
  tag "offered"
}
"#,
        );
        let mut globals = Globals::default();
        let start = DateTime::parse_from_rfc3339("2025-11-10T00:00:00Z")
            .unwrap()
            .to_utc();
        let mut run = |u: &mut UserState, name: &str, at| {
            handle(&d, &mut globals, u, &track(u.id.as_ref(), name, at), at)
        };
        let open = |u: &UserState| u.journeys.get("offer").and_then(|m| m.open_goal.clone());
        let (mut buyer, mut late) = (UserState::new("buyer"), UserState::new("late"));
        for u in [&mut buyer, &mut late] {
            run(u, "lapsed", start);
            assert!(open(u).is_some(), "finished with its goal open");
            run(u, "page", start + chrono::Duration::days(1));
            assert!(open(u).is_some(), "another event leaves it open");
        }
        let records = run(&mut buyer, "buy", start + chrono::Duration::days(2));
        assert_eq!(records.iter().filter(|r| r.kind == Kind::Goal).count(), 1);
        assert!(open(&buyer).is_none());
        let records = run(&mut late, "page", start + chrono::Duration::days(4));
        assert!(records.iter().all(|r| r.kind != Kind::Goal));
        assert!(open(&late).is_none(), "past its window: dropped");
        let records = run(&mut late, "buy", start + chrono::Duration::days(4));
        assert!(records.iter().all(|r| r.kind != Kind::Goal));
    }
}
