//! Running an instance through its plan's steps until it waits or ends.
//! Rules and task rewards run through the same code with a transient
//! instance. Every step records what it did; a runtime error in a
//! condition makes it false, in an action's argument skips the action, and
//! both are recorded (language.md §6).

use super::eval::EventRef;
use super::guard::Verdict;
use super::{Cx, Env, RESUMED};
use crate::deployment::Recipient;
use crate::journal::{Kind, Record};
use crate::model::{Coupon, Event, Instance, PointLot, QuotaCount, SentMessage, Wait};
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use rust_decimal::Decimal;
use waymark_dsl::plan::{CouponExpiry, Expr, PolicyPlan, StepId, StepKind, Steps};
use waymark_dsl::value::{Fields, Value, decimal_to_json};

/// What a run belongs to: a journey version, a rule or a task.
pub(crate) struct Owner<'p> {
    pub name: &'p str,
    pub version: &'p str,
    pub steps: &'p Steps,
    pub policy: &'p PolicyPlan,
    pub category: &'p str,
    pub transactional: bool,
    pub tz: Option<&'p str>,
    pub exit_if: &'p [Expr],
    /// The run may wait: journeys always; rules and task rewards only to
    /// defer a send (their scripts cannot hold a `wait`).
    pub can_wait: bool,
    /// A journey: its instance has enter and exit records and `journey` in
    /// expressions. Rules and task rewards run without.
    pub lifecycle: bool,
    /// The event `event` reads, when it is not the instance's own: a rule
    /// runs on the event as it came in, and its instance gets a copy only
    /// if it is kept (a deferred send).
    pub event: Option<EventRef<'p>>,
}

/// The version marker of a rule's or task reward's held run (a send
/// deferred by quiet hours or `on cap defer`).
pub(crate) const RULE: &str = "rule";
pub(crate) const TASK: &str = "task";

enum Flow {
    /// Go on with this step.
    Next(StepId),
    /// The instance waits; keep it.
    Wait,
    /// The instance is over, with this exit reason.
    End(&'static str),
}

impl Cx<'_> {
    /// Runs a journey instance; false when it ended.
    pub(crate) fn run_instance(&mut self, inst: &mut Instance) -> bool {
        let d = self.d;
        if inst.version == RULE || inst.version == TASK {
            return self.run_held_action(inst);
        }
        let Some(plan) = d.version(&inst.journey, &inst.version) else {
            let mut r = self.instance_record(inst, Kind::Error);
            r.message = Some(format!(
                "version {} of journey `{}` is no longer deployed",
                inst.version, inst.journey
            ));
            self.records.push(r);
            return false;
        };
        if d.is_paused(&inst.journey) {
            if inst.wait != Wait::Held {
                inst.wait = Wait::Held;
                let mut r = self.instance_record(inst, Kind::Deferred);
                r.reason = Some("paused".into());
                self.records.push(r);
            }
            return true;
        }
        let owner = Owner {
            name: &plan.name,
            version: &plan.version,
            steps: &plan.steps,
            policy: d.policy(&plan.policy),
            category: &plan.category,
            transactional: plan.transactional,
            tz: plan.tz.as_deref(),
            exit_if: &plan.exit_if,
            can_wait: true,
            lifecycle: true,
            event: None,
        };
        self.run(&owner, inst)
    }

    /// A rule or task reward that was held for a deferred send goes on
    /// with the current deployment's steps.
    fn run_held_action(&mut self, inst: &mut Instance) -> bool {
        let d = self.d;
        let plan = d.plan.clone();
        let found = if inst.version == RULE {
            plan.rules
                .iter()
                .find(|r| r.name == inst.journey)
                .map(|r| (&r.steps, None))
        } else {
            plan.tasks
                .iter()
                .find(|t| t.name == inst.journey)
                .map(|t| (&t.reward, t.tz.as_deref()))
        };
        let Some((steps, tz)) = found else {
            let mut r = self.instance_record(inst, Kind::Error);
            r.message = Some(format!(
                "{} `{}` is no longer deployed; its held send is dropped",
                inst.version, inst.journey
            ));
            self.records.push(r);
            return false;
        };
        let name = inst.journey.clone();
        let owner = Owner {
            name: &name,
            version: if inst.version == RULE { RULE } else { TASK },
            steps,
            policy: d.policy("default"),
            category: "marketing",
            transactional: false,
            tz,
            exit_if: &[],
            can_wait: true,
            lifecycle: false,
            event: None,
        };
        self.run(&owner, inst)
    }

    /// Runs from the instance's current step; false when it ended.
    pub(crate) fn run(&mut self, owner: &Owner<'_>, inst: &mut Instance) -> bool {
        loop {
            if self.steps_left == 0 {
                let mut r = self.step_record(owner, inst, Kind::Error);
                r.message = Some(format!(
                    "more than {} steps ran without waiting; stopped",
                    super::STEP_BUDGET
                ));
                self.records.push(r);
                return self.end(owner, inst, "error");
            }
            self.steps_left -= 1;
            for expr in owner.exit_if {
                if self.condition(owner, inst, expr) {
                    return self.end(owner, inst, "exit_if");
                }
            }
            let flow = self.step(owner, inst);
            if !inst.bindings.is_empty() {
                inst.bindings.remove(RESUMED);
            }
            match flow {
                Flow::Next(next) => {
                    // Only a send's key reads its visits: counting every
                    // step made a map entry for each rule that fired.
                    let sends = owner
                        .steps
                        .get(inst.step)
                        .is_some_and(|s| matches!(s.kind, StepKind::Send { .. }));
                    if sends {
                        *inst.visits.entry(inst.step.0).or_default() += 1;
                    }
                    if owner.lifecycle {
                        self.passage(inst, true);
                    }
                    inst.step = next;
                    if owner.lifecycle && owner.steps.get(next).is_some() {
                        self.passage(inst, false);
                    }
                }
                Flow::Wait if owner.can_wait => return true,
                Flow::Wait => {
                    let mut r = self.step_record(owner, inst, Kind::Error);
                    r.message = Some("this run cannot wait".into());
                    self.records.push(r);
                    return self.end(owner, inst, "error");
                }
                Flow::End(reason) => {
                    // Reaching `end` or `exit` is going through it: only
                    // instances stopped elsewhere stay counted at a step.
                    let through = owner
                        .steps
                        .get(inst.step)
                        .is_some_and(|s| matches!(s.kind, StepKind::End | StepKind::Exit));
                    if owner.lifecycle && through {
                        self.passage(inst, true);
                    }
                    return self.end(owner, inst, reason);
                }
            }
        }
    }

    fn end(&mut self, owner: &Owner<'_>, inst: &Instance, reason: &str) -> bool {
        if owner.lifecycle {
            let mut r = self.instance_record(inst, Kind::Exit);
            r.reason = Some(reason.into());
            self.records.push(r);
            // Finishing the steps does not close the conversion window.
            let goal = self
                .d
                .version(&inst.journey, &inst.version)
                .and_then(|p| p.goal.as_ref());
            if let Some(goal) = goal
                && !inst.goal_reached
                && matches!(reason, "completed" | "exit")
            {
                let until = inst.entered_at + chrono::Duration::seconds(goal.within);
                if until > self.now {
                    let memo = self.user.journeys.entry(inst.journey.clone()).or_default();
                    memo.open_goal = Some(crate::model::OpenGoal {
                        instance: inst.id,
                        version: inst.version.clone(),
                        until,
                        arms: inst.arms.clone(),
                    });
                }
            }
        }
        false
    }

    fn env<'e>(&'e self, owner: &Owner<'e>, inst: &'e Instance, step_tz: Option<&str>) -> Env<'e> {
        let tz = self.zone(step_tz, owner.tz, &owner.policy.name);
        let event = owner.event.unwrap_or(EventRef::Value(&inst.event));
        let mut env = Env::with_event(&self.d.plan, self.user, event, &inst.bindings, self.now, tz);
        if owner.lifecycle {
            env.journey = Value::Record(Fields::from([
                ("name".to_string(), Value::String(owner.name.to_string())),
                (
                    "version".to_string(),
                    Value::String(owner.version.to_string()),
                ),
                ("entered_at".to_string(), Value::Timestamp(inst.entered_at)),
            ]));
        }
        env
    }

    /// A condition in a step, a rule or a task; an error is recorded and counts as false.
    pub(super) fn condition(&mut self, owner: &Owner<'_>, inst: &Instance, expr: &Expr) -> bool {
        let result = self.env(owner, inst, None).condition(expr);
        result.unwrap_or_else(|error| {
            self.error(owner, inst, error);
            false
        })
    }

    /// An expression's value; an error is recorded and gives none.
    pub(super) fn value(
        &mut self,
        owner: &Owner<'_>,
        inst: &Instance,
        expr: &Expr,
    ) -> Option<Value> {
        let result = self.env(owner, inst, None).eval(expr);
        result.map_err(|error| self.error(owner, inst, error)).ok()
    }

    fn fields(
        &mut self,
        owner: &Owner<'_>,
        inst: &Instance,
        fields: &[(String, Expr)],
    ) -> Option<Fields> {
        let mut out = Fields::new();
        for (k, e) in fields {
            out.insert(k.clone(), self.value(owner, inst, e)?);
        }
        Some(out)
    }

    /// An `error` record for the step: its message is what a person reads.
    pub(super) fn error(
        &mut self,
        owner: &Owner<'_>,
        inst: &Instance,
        error: impl std::fmt::Display,
    ) {
        let mut r = self.step_record(owner, inst, Kind::Error);
        r.message = Some(error.to_string());
        self.records.push(r);
    }

    pub(crate) fn step_record(&self, owner: &Owner<'_>, inst: &Instance, kind: Kind) -> Record {
        let mut r = Record::new(self.now, &self.user.id, kind);
        r.journey = Some(owner.name.into());
        r.version = Some(owner.version.into());
        r.instance = Some(inst.id);
        r.step = Some(step_label(inst.step));
        r.line = owner.steps.get(inst.step).map(|s| s.line);
        if !inst.arms.is_empty() {
            r.arms = Some(inst.arms.clone());
        }
        r
    }

    /// A key unique to (journey version, user, instance, step, iteration).
    fn idempotency_key(&self, owner: &Owner<'_>, inst: &Instance) -> String {
        let visit = inst.visits.get(&inst.step.0).copied().unwrap_or(0);
        format!(
            "{}/{}/{}/{}/s{}/{}",
            owner.name, owner.version, self.user.id, inst.id, inst.step.0, visit
        )
    }

    fn step(&mut self, owner: &Owner<'_>, inst: &mut Instance) -> Flow {
        let Some(step) = owner.steps.get(inst.step) else {
            return Flow::End("error");
        };
        match &step.kind {
            StepKind::End => Flow::End("completed"),
            StepKind::Exit => Flow::End("exit"),
            StepKind::Send {
                channel,
                template,
                fields,
                next,
                confirm_within,
            } => {
                if confirm_within.is_none() {
                    return self.send(owner, inst, channel, template.as_deref(), fields, *next);
                }
                // A `wait for confirmation` waits on this send: on the
                // send that went out, or on nothing.
                inst.awaiting = None;
                inst.outcome = None;
                let before = self.records.len();
                let flow = self.send(owner, inst, channel, template.as_deref(), fields, *next);
                let sent = self.records[before..]
                    .iter_mut()
                    .rev()
                    .find(|r| r.kind == Kind::Send);
                inst.awaiting = sent.and_then(|r| {
                    // The staff have until then: the channel cancels the
                    // task at this time.
                    r.until = confirm_within.map(|s| self.now + Duration::seconds(s));
                    r.idempotency_key.clone()
                });
                flow
            }
            // Timed waits stay on their own step and go on when their timer
            // wakes them, so the wake-up mark is not mistaken for that of
            // the step after (a `repeat … every` would skip its pause).
            StepKind::Wait { .. } | StepKind::WaitUntilTime { .. } | StepKind::WaitUntil { .. }
                if inst.bindings.contains_key(RESUMED) =>
            {
                match &step.kind {
                    StepKind::Wait { next, .. }
                    | StepKind::WaitUntilTime { next, .. }
                    | StepKind::WaitUntil { next, .. } => Flow::Next(*next),
                    _ => unreachable!("matched above"),
                }
            }
            StepKind::Wait { seconds, .. } => {
                inst.wait = Wait::Until(self.now + Duration::seconds(*seconds));
                Flow::Wait
            }
            StepKind::WaitUntilTime { minutes, tz, next } => {
                let zone = self.zone(tz.as_deref(), owner.tz, &owner.policy.name);
                let at = next_local_time(self.now, *minutes, zone);
                if at <= self.now {
                    return Flow::Next(*next);
                }
                inst.wait = Wait::Until(at);
                Flow::Wait
            }
            StepKind::WaitUntil { at, next } => {
                let Some(value) = self.value(owner, inst, at) else {
                    return Flow::Next(*next);
                };
                // A date is its midnight where the user is (the journey's
                // or policy's zone otherwise), as `wait until 10:00` is.
                let zone = || self.zone(None, owner.tz, &owner.policy.name);
                match value.as_timestamp().or_else(|| {
                    value
                        .as_date()
                        .map(|d| super::guard::local_midnight(d, zone()))
                }) {
                    Some(t) if t > self.now => {
                        inst.wait = Wait::Until(t);
                        Flow::Wait
                    }
                    Some(_) => Flow::Next(*next),
                    None => {
                        self.error(
                            owner,
                            inst,
                            format!("`wait until` needs a timestamp, got a {}", value.type_of()),
                        );
                        Flow::Next(*next)
                    }
                }
            }
            StepKind::WaitForEvent {
                confirms: Some(_),
                on_event,
                on_timeout,
                bind,
                ..
            } if inst.awaiting.is_none() || inst.outcome.is_some() => {
                // The send's outcome came (now, or before the instance got
                // here); or the send it would wait on did not go out, and
                // nothing will be confirmed.
                inst.awaiting = None;
                match inst.outcome.take() {
                    Some(outcome) if outcome.field("outcome").as_str() == Some("sent") => {
                        if let Some(name) = bind {
                            inst.bindings.insert(name.clone(), outcome);
                        }
                        Flow::Next(*on_event)
                    }
                    _ => Flow::Next(*on_timeout),
                }
            }
            StepKind::WaitForEvent { within, .. } => {
                inst.wait = Wait::ForEvent {
                    until: self.now + Duration::seconds(*within),
                };
                Flow::Wait
            }
            StepKind::Branch {
                condition,
                then,
                otherwise,
            } => Flow::Next(if self.condition(owner, inst, condition) {
                *then
            } else {
                *otherwise
            }),
            StepKind::Split { name, arms } => {
                let bucket = stable_hash(&[owner.name, name, &self.user.id]) % 10_000;
                let mut upper = Decimal::ZERO;
                let mut chosen = arms.last();
                for arm in arms {
                    upper += arm.percent * Decimal::from(100);
                    if Decimal::from(bucket) < upper {
                        chosen = Some(arm);
                        break;
                    }
                }
                match chosen {
                    Some(arm) => {
                        inst.arms.insert(name.clone(), arm.name.clone());
                        let mut r = self.step_record(owner, inst, Kind::Split);
                        r.split = Some(name.clone());
                        r.arm = Some(arm.name.clone());
                        r.holdout = arm.holdout.then_some(true);
                        self.records.push(r);
                        Flow::Next(arm.start)
                    }
                    None => Flow::End("error"),
                }
            }
            StepKind::GiveCoupon {
                coupon,
                expiry,
                fields,
                bind,
                next,
            } => {
                let expires_at = match expiry {
                    None => None,
                    Some(CouponExpiry::In(s)) => Some(self.now + Duration::seconds(*s)),
                    Some(CouponExpiry::At(e)) => {
                        let Some(v) = self.value(owner, inst, e) else {
                            return Flow::Next(*next);
                        };
                        // A date: valid through that day where the user
                        // is, so it expires at the next local midnight.
                        let zone = || self.zone(None, owner.tz, &owner.policy.name);
                        let through = |d: chrono::NaiveDate| {
                            d.succ_opt()
                                .map(|next| super::guard::local_midnight(next, zone()))
                        };
                        match v.as_timestamp().or_else(|| v.as_date().and_then(through)) {
                            Some(t) => Some(t),
                            None => {
                                self.error(
                                    owner,
                                    inst,
                                    format!(
                                        "`expires at` needs a timestamp or a date, got a {}",
                                        v.type_of()
                                    ),
                                );
                                return Flow::Next(*next);
                            }
                        }
                    }
                };
                let Some(fields) = self.fields(owner, inst, fields) else {
                    return Flow::Next(*next);
                };
                let issued = self
                    .globals
                    .coupons_issued
                    .entry(coupon.clone())
                    .or_insert(0);
                let code = super::coupon_codes::coupon_code(&self.d.coupon_secret, coupon, *issued);
                *issued += 1;
                let issued = Coupon {
                    id: coupon.clone(),
                    code: code.clone(),
                    issued_at: self.now,
                    expires_at,
                    fields: Value::Record(fields),
                };
                if let Some(name) = bind {
                    inst.bindings.insert(name.clone(), issued.as_value());
                }
                self.user.coupons.push(issued);
                let mut r = self.step_record(owner, inst, Kind::Coupon);
                r.coupon = Some(coupon.clone());
                r.code = Some(code);
                r.expires_at = expires_at;
                self.records.push(r);
                Flow::Next(*next)
            }
            StepKind::GivePoints {
                amount,
                reason,
                expires_in,
                next,
            } => {
                let Some(amount) = self.points_amount(owner, inst, amount, "give") else {
                    return Flow::Next(*next);
                };
                let expires_at = expires_in.map(|s| self.now + Duration::seconds(s));
                self.user.points.lots.push(PointLot { amount, expires_at });
                self.points_record(owner, inst, amount, reason.as_deref(), false);
                Flow::Next(*next)
            }
            StepKind::TakePoints {
                amount,
                reason,
                next,
            } => {
                let Some(amount) = self.points_amount(owner, inst, amount, "take") else {
                    return Flow::Next(*next);
                };
                if amount > self.user.points.balance() {
                    self.points_record(
                        owner,
                        inst,
                        Decimal::ZERO,
                        Some("insufficient points"),
                        true,
                    );
                    return Flow::Next(*next);
                }
                // Spend the lots that expire first.
                self.user
                    .points
                    .lots
                    .sort_by_key(|l| (l.expires_at.is_none(), l.expires_at));
                let mut left = amount;
                for lot in &mut self.user.points.lots {
                    let used = lot.amount.min(left);
                    lot.amount -= used;
                    left -= used;
                }
                self.user.points.lots.retain(|l| !l.amount.is_zero());
                self.points_record(owner, inst, -amount, reason.as_deref(), false);
                Flow::Next(*next)
            }
            StepKind::Tag { tag, next } | StepKind::Untag { tag, next } => {
                let adding = matches!(step.kind, StepKind::Tag { .. });
                if adding {
                    self.user.tags.insert(tag.clone());
                } else {
                    self.user.tags.remove(tag);
                }
                let mut r =
                    self.step_record(owner, inst, if adding { Kind::Tag } else { Kind::Untag });
                r.tag = Some(tag.clone());
                self.mirror_tag(&mut r, tag, adding);
                self.records.push(r);
                Flow::Next(*next)
            }
            StepKind::Set { path, value, next } => {
                let Some(v) = self.value(owner, inst, value) else {
                    return Flow::Next(*next);
                };
                self.set_trait(owner, inst, path, Some(v));
                Flow::Next(*next)
            }
            StepKind::Unset { path, next } => {
                self.set_trait(owner, inst, path, None);
                Flow::Next(*next)
            }
            StepKind::Emit {
                event,
                fields,
                next,
            } => {
                let Some(fields) = self.fields(owner, inst, fields) else {
                    return Flow::Next(*next);
                };
                if self.emits_left == 0 {
                    self.error(
                        owner,
                        inst,
                        format!(
                            "more than {} events emitted in one go; `{event}` dropped",
                            super::EMIT_BUDGET
                        ),
                    );
                    return Flow::Next(*next);
                }
                self.emits_left -= 1;
                let mut r = self.step_record(owner, inst, Kind::Emit);
                r.event = Some(event.into());
                // An event of no fields is journaled without any.
                r.fields = (!fields.is_empty()).then(|| Value::Record(fields.clone()).to_json());
                self.records.push(r);
                // An event nothing hears, whose history is not kept, would
                // change nothing: most emits of a rule set are its output.
                let d = self.d;
                if d.hears(event) || d.history_of(event) != crate::history::Keep::Nothing {
                    self.emitted.push_back(Event {
                        user: self.user.id.to_string(),
                        name: event.clone(),
                        properties: Value::Record(fields),
                        at: self.now,
                        message_id: None,
                    });
                }
                Flow::Next(*next)
            }
            StepKind::Repeat {
                times,
                every,
                body,
                next,
            } => {
                let done = inst.loops.get(&inst.step.0).copied().unwrap_or(0);
                if done >= *times {
                    inst.loops.remove(&inst.step.0);
                    return Flow::Next(*next);
                }
                if done > 0 && every.is_some() && !inst.bindings.contains_key(RESUMED) {
                    inst.wait = Wait::Until(self.now + Duration::seconds(every.unwrap_or(0)));
                    return Flow::Wait;
                }
                inst.loops.insert(inst.step.0, done + 1);
                Flow::Next(*body)
            }
        }
    }

    fn send(
        &mut self,
        owner: &Owner<'_>,
        inst: &mut Instance,
        channel: &str,
        template: Option<&str>,
        fields: &[(String, Expr)],
        next: StepId,
    ) -> Flow {
        let Some(mut values) = self.fields(owner, inst, fields) else {
            return Flow::Next(next);
        };
        // A send a staff member confirms is for the staff member its
        // `staff` field names, else the one the channel's trait does.
        if let Some(path) = self.d.staff_traits.get(channel) {
            let named = |v: &Value| !matches!(v, Value::Null) && !v.to_text().trim().is_empty();
            if !values.get("staff").is_some_and(named) {
                match self.user.traits.get(path.as_str()).filter(|v| named(v)) {
                    Some(staff) => {
                        values.insert("staff".into(), Value::String(staff.to_text()));
                    }
                    None => {
                        let mut r = self.step_record(owner, inst, Kind::Suppressed);
                        r.channel = Some(channel.to_string());
                        r.template = template.map(str::to_string);
                        r.reason = Some("no_staff".into());
                        self.records.push(r);
                        return Flow::Next(next);
                    }
                }
            }
        }
        let to = match self.recipient(channel, values.remove("to"), inst) {
            Ok(to) => to,
            Err(reason) => {
                let mut r = self.step_record(owner, inst, Kind::Suppressed);
                r.channel = Some(channel.to_string());
                r.template = template.map(str::to_string);
                r.reason = Some(reason);
                self.records.push(r);
                return Flow::Next(next);
            }
        };
        let tz = self.zone(None, owner.tz, &owner.policy.name);
        let verdict = match self.has_grant(channel, template) {
            true => self.guard(owner, channel, tz),
            false => Verdict::Suppress("no_grant"),
        };
        match verdict {
            Verdict::Suppress(reason) => {
                let mut r = self.step_record(owner, inst, Kind::Suppressed);
                r.channel = Some(channel.to_string());
                r.template = template.map(str::to_string);
                r.reason = Some(reason.into());
                self.records.push(r);
                Flow::Next(next)
            }
            Verdict::Hold(reason) => {
                inst.wait = Wait::Held;
                let mut r = self.step_record(owner, inst, Kind::Deferred);
                r.channel = Some(channel.to_string());
                r.template = template.map(str::to_string);
                r.reason = Some(reason.into());
                self.records.push(r);
                Flow::Wait
            }
            Verdict::Defer { until, reason } => {
                inst.wait = Wait::Until(until);
                let mut r = self.step_record(owner, inst, Kind::Deferred);
                r.channel = Some(channel.to_string());
                r.template = template.map(str::to_string);
                r.until = Some(until);
                r.reason = Some(reason.into());
                self.records.push(r);
                Flow::Wait
            }
            Verdict::Send => {
                if let Err(resets) = self.count_platform_quota(channel) {
                    let mut r = self.step_record(owner, inst, Kind::Suppressed);
                    r.channel = Some(channel.to_string());
                    r.template = template.map(str::to_string);
                    r.reason = Some("platform_quota".into());
                    r.until = Some(resets);
                    self.records.push(r);
                    return Flow::Next(next);
                }
                self.spend_grant(channel, template);
                let mut r = self.step_record(owner, inst, Kind::Send);
                r.channel = Some(channel.to_string());
                r.template = template.map(str::to_string);
                r.to = Some(to);
                r.fields = Some(Value::Record(values).to_json());
                r.idempotency_key = Some(self.idempotency_key(owner, inst));
                self.records.push(r);
                if !owner.transactional {
                    self.user.sends.push(SentMessage {
                        at: self.now,
                        channel: channel.to_string(),
                        category: owner.category.to_string(),
                    });
                    super::guard::keep_needed_sends(
                        &self.d.plan.policies,
                        &mut self.user.sends,
                        self.now,
                    );
                }
                Flow::Next(next)
            }
        }
    }

    /// Makes a `tag`/`untag` record a delivery on the first channel that
    /// mirrors the tag to the platform, when the user is a customer there
    /// (has the channel's address and staff traits): its channel, address,
    /// and fields `add_tag` or `remove_tag` (the platform's id) and `staff`.
    fn mirror_tag(&self, r: &mut Record, tag: &str, adding: bool) {
        let text = |path: &str| {
            self.user
                .traits
                .get(path)
                .filter(|v| !v.is_null())
                .map(Value::to_text)
                .filter(|t| !t.trim().is_empty())
        };
        for (channel, sync) in &self.d.tag_syncs {
            let Some(id) = sync.tags.get(tag) else {
                continue;
            };
            let (Some(to), Some(staff)) = (text(&sync.address), text(&sync.staff)) else {
                continue;
            };
            let field = if adding { "add_tag" } else { "remove_tag" };
            r.channel = Some(channel.clone());
            r.to = Some(to);
            r.fields = Some(serde_json::json!({ field: [id], "staff": staff }));
            return;
        }
    }

    /// Counts a send against the channel's platform quota, if it has
    /// one; over it, when the quota resets.
    fn count_platform_quota(&mut self, channel: &str) -> Result<(), DateTime<Utc>> {
        let Some(q) = self.d.platform_quotas.get(channel) else {
            return Ok(());
        };
        let (since, resets, limit) = super::quota::period(q, self.now);
        let count = self
            .user
            .quotas
            .entry(q.group.clone())
            .or_insert(QuotaCount { since, used: 0 });
        if count.since != since {
            *count = QuotaCount { since, used: 0 };
        }
        if count.used >= limit {
            return Err(resets);
        }
        count.used += 1;
        Ok(())
    }

    /// The address a send goes to: the step's `to` field, else what the
    /// channel reads from the user or the instance's event; else why the
    /// send is suppressed (`no_address`, or an answer to an event too late).
    fn recipient(
        &self,
        channel: &str,
        to: Option<Value>,
        inst: &Instance,
    ) -> Result<String, String> {
        let text = |v: &Value| match v {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_json().to_string()),
        };
        let no_address = || "no_address".to_string();
        if let Some(to) = to {
            return text(&to).ok_or_else(no_address);
        }
        match self.d.recipients.get(channel) {
            None | Some(Recipient::UserId) => Ok(self.user.id.to_string()),
            Some(Recipient::Trait(path)) => {
                // A dotted path reaches into record traits (`contact.phone`).
                let mut parts = path.split('.');
                let first = self
                    .user
                    .traits
                    .get(parts.next().unwrap_or_default())
                    .ok_or_else(no_address)?;
                text(parts.fold(first, |v, key| v.field(key))).ok_or_else(no_address)
            }
            Some(Recipient::TriggerEvent {
                event,
                property,
                within_secs,
                expired,
            }) => {
                if inst.event.field("name").as_str() != Some(event.as_str()) {
                    return Err(no_address());
                }
                if let Value::Timestamp(at) = inst.event.field("at")
                    && self.now - *at > Duration::seconds(*within_secs)
                {
                    return Err(expired.clone());
                }
                text(inst.event.field(property)).ok_or_else(no_address)
            }
        }
    }

    fn points_amount(
        &mut self,
        owner: &Owner<'_>,
        inst: &Instance,
        amount: &Expr,
        verb: &str,
    ) -> Option<Decimal> {
        let v = self.value(owner, inst, amount)?;
        match v.as_number() {
            Some(n) if n >= Decimal::ZERO => Some(n),
            _ => {
                self.error(
                    owner,
                    inst,
                    format!(
                        "`{verb} points` needs a number of points of 0 or more, got {}",
                        v.to_json()
                    ),
                );
                None
            }
        }
    }

    fn points_record(
        &mut self,
        owner: &Owner<'_>,
        inst: &Instance,
        delta: Decimal,
        reason: Option<&str>,
        refused: bool,
    ) {
        let mut r = self.step_record(owner, inst, Kind::Points);
        r.delta = Some(decimal_to_json(delta));
        r.balance = Some(decimal_to_json(self.user.points.balance()));
        r.reason = reason.map(str::to_string);
        if refused {
            r.message = Some("refused: the balance is lower than the amount".into());
        }
        self.records.push(r);
    }

    fn set_trait(
        &mut self,
        owner: &Owner<'_>,
        inst: &Instance,
        path: &[String],
        value: Option<Value>,
    ) {
        // `timezone` may be the one that changes.
        self.user_zone.set(None);
        const BUILT_IN: &[&str] = &["id", "created_at", "tags", "points", "coupons"];
        if path.first().is_some_and(|f| BUILT_IN.contains(&f.as_str())) {
            self.error(
                owner,
                inst,
                format!(
                    "`user.{}` is kept by the engine and cannot be set",
                    path.join(".")
                ),
            );
            return;
        }
        if let Some((first, rest)) = path.split_first() {
            let before = (first == "consent").then(|| self.consent_now());
            self.set_trait_at(first, rest, value.as_ref());
            if let Some(before) = before {
                let change = crate::consent::ConsentChange::new(false, "journey");
                self.record_consent_changes(before.as_ref(), &change, |cx| {
                    cx.step_record(owner, inst, Kind::Consent)
                });
            }
        }
        let mut r = self.step_record(owner, inst, Kind::Set);
        r.path = Some(path.join("."));
        r.value = Some(
            value
                .map(|v| v.to_json())
                .unwrap_or(serde_json::Value::Null),
        );
        self.records.push(r);
    }

    /// Sets (or with `None` removes) trait `first`, or the field at `rest`
    /// inside it.
    fn set_trait_at(&mut self, first: &str, rest: &[String], value: Option<&Value>) {
        // The first name is a trait; any after it name fields of records
        // inside it. A field on the way that is missing or not a record
        // becomes an empty record.
        fn record(slot: &mut Value) -> &mut Fields {
            if !matches!(slot, Value::Record(_)) {
                *slot = Value::Record(Default::default());
            }
            let Value::Record(map) = slot else {
                unreachable!("just made a record")
            };
            map
        }
        match (rest.split_last(), value) {
            (None, Some(v)) => {
                self.user.traits.insert(first.to_string(), v.clone());
            }
            (None, None) => {
                self.user.traits.remove(first);
            }
            (Some((last, between)), _) => {
                let top = self
                    .user
                    .traits
                    .get_or_insert_with(first, || Value::Record(Default::default()));
                let mut slot = record(top);
                for key in between {
                    slot =
                        record(slot.get_or_insert_with(key, || Value::Record(Default::default())));
                }
                match value {
                    Some(v) => {
                        slot.insert(last.clone(), v.clone());
                    }
                    None => {
                        slot.remove(last);
                    }
                }
            }
        }
    }
}

/// The next moment (at or after `now`) the local clock in `tz` shows `minutes`.
pub(crate) fn next_local_time(
    now: chrono::DateTime<chrono::Utc>,
    minutes: u32,
    tz: chrono_tz::Tz,
) -> chrono::DateTime<chrono::Utc> {
    let local = now.with_timezone(&tz);
    let time = NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0).unwrap_or(NaiveTime::MIN);
    for days in 0..3 {
        let date = local.date_naive() + Duration::days(days);
        // A time that does not exist that day (a DST gap) is taken an hour later.
        let candidate = tz
            .from_local_datetime(&date.and_time(time))
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(date.and_time(time) + Duration::hours(1)))
                    .earliest()
            });
        if let Some(candidate) = candidate {
            let candidate = candidate.with_timezone(&chrono::Utc);
            if candidate >= now {
                return candidate;
            }
        }
    }
    now
}

/// FNV-1a over the parts (with separators): stable across runs and builds.
pub(crate) fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// [`StepId::label`] kept in place: every step record carries one.
fn step_label(step: StepId) -> compact_str::CompactString {
    step.label_in(&mut [0; 11]).into()
}
