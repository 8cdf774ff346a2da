//! `waymark test`: each `test` block drives the real engine (runtime, core,
//! an in-memory store) on a virtual clock, then checks its expectations
//! against the journal since the test started. A failure names the test,
//! the expectation and what happened instead. Every time in a failure is
//! printed in the test's zone: the `tz` of the default policy (the zone
//! its journeys' local times are in), else UTC. Nobody confirms a send in
//! a test: `outcome OUTCOME for "ID"` reports, as the platform would, what
//! came of the user's send waiting for a staff member's confirmation.

use crate::runtime::Runtime;
use crate::store::{MemoryKv, Store, StoreError};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use waymark_core::clock::{Clock, ManualClock};
use waymark_core::deployment::Deployment;
use waymark_core::journal::{Kind, Record};
use waymark_core::model::{Event, Input, SendOutcome};
use waymark_dsl::plan::{Expectation, Expected, Plan, TestPlan, TestStepKind};
use waymark_dsl::value::decimal_to_json;

/// Where a test's clock starts when it sets none.
pub fn default_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
        .expect("a valid timestamp")
        .to_utc()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// `file:line` of the statement.
    pub location: String,
    pub expectation: String,
    pub found: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub name: String,
    /// The zone times are shown in.
    pub zone: chrono_tz::Tz,
    pub location: String,
    pub failures: Vec<Failure>,
    pub records: Vec<Record>,
}

/// Runs one test block against the deployment.
pub fn run(plan: &Plan, test: &TestPlan) -> Result<Outcome, StoreError> {
    let mut runtime = Runtime::new(
        Store::new(MemoryKv::default()),
        Deployment::new(plan.clone()),
    );
    let start = test
        .steps
        .iter()
        .find_map(|s| match s.kind {
            TestStepKind::At(t) => Some(t),
            _ => None,
        })
        .unwrap_or_else(default_start);
    runtime.start_schedules_at(start);
    let zone = zone_of(plan);
    let show = |t: DateTime<Utc>| show(t, zone);
    // The daemon's loop with a clock that moves only when the test says.
    let clock = ManualClock::new(start);
    let mut records = Vec::new();
    let mut failures = Vec::new();
    let mut sequence = 0u64;
    for step in &test.steps {
        match &step.kind {
            TestStepKind::User { id, traits } => {
                let input = Input::Identify {
                    user: id.clone(),
                    traits: traits.clone(),
                    at: clock.now(),
                    message_id: None,
                };
                records.extend(runtime.ingest(&[input], clock.now())?);
            }
            TestStepKind::At(t) => {
                if *t < clock.now() {
                    failures.push(Failure {
                        location: step.location.clone(),
                        expectation: format!("at \"{}\"", show(*t)),
                        found: format!(
                            "the clock is already at {}; `at` only moves forward",
                            show(clock.now())
                        ),
                    });
                    continue;
                }
                clock.advance_to(*t);
                records.extend(runtime.advance_to(clock.now())?);
            }
            TestStepKind::Advance(seconds) => {
                clock.advance_to(clock.now() + Duration::seconds(*seconds));
                records.extend(runtime.advance_to(clock.now())?);
            }
            TestStepKind::Event { name, user, props } => {
                sequence += 1;
                let event = Event {
                    user: user.clone(),
                    name: name.clone(),
                    properties: props.clone(),
                    at: clock.now(),
                    message_id: Some(format!("test-{sequence}")),
                };
                records.extend(runtime.ingest(&[Input::Track(event)], clock.now())?);
            }
            TestStepKind::Outcome { outcome, user } => {
                let Some(send) = pending_confirmation(&records, user) else {
                    failures.push(Failure {
                        location: step.location.clone(),
                        expectation: format!("outcome {outcome} for \"{user}\""),
                        found: format!(
                            "{user} has no send waiting for a staff member's confirmation"
                        ),
                    });
                    continue;
                };
                let staff = send
                    .fields
                    .as_ref()
                    .and_then(|f| f["staff"].as_str())
                    .map(str::to_string);
                let input = Input::Outcome(SendOutcome::new(send, outcome, staff, clock.now()));
                records.extend(runtime.ingest(&[input], clock.now())?);
            }
            TestStepKind::Expect(expectation) => {
                if let Some(found) = check(expectation, &records, zone) {
                    failures.push(Failure {
                        location: step.location.clone(),
                        expectation: expectation.text.clone(),
                        found,
                    });
                }
            }
        }
    }
    Ok(Outcome {
        name: test.name.clone(),
        zone,
        location: test.location.clone(),
        failures,
        records,
    })
}

/// `user`'s newest send that a `wait for confirmation` waits on (its
/// `until` is set) and that has no outcome yet: the one a test's
/// `outcome … for "ID"` is about.
fn pending_confirmation<'r>(records: &'r [Record], user: &str) -> Option<&'r Record> {
    let has_outcome = |send: &Record| {
        records.iter().any(|r| {
            r.kind == Kind::Outcome
                && r.user == send.user
                && r.idempotency_key == send.idempotency_key
        })
    };
    records
        .iter()
        .rev()
        .find(|r| r.kind == Kind::Send && r.user == user && r.until.is_some() && !has_outcome(r))
}

/// The test's zone: the default policy's `tz`, else UTC.
pub fn zone_of(plan: &Plan) -> chrono_tz::Tz {
    plan.policy("default")
        .and_then(|p| p.tz.as_deref())
        .and_then(|z| waymark_dsl::schedule::parse_time_zone(z).ok())
        .unwrap_or(chrono_tz::UTC)
}

/// A time in `zone`, with its offset (`Z` in UTC).
fn show(t: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    t.with_timezone(&zone)
        .fixed_offset()
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn kind_of(what: &Expected) -> Kind {
    match what {
        Expected::Send { .. } => Kind::Send,
        Expected::Coupon(_) => Kind::Coupon,
        Expected::Points(_) => Kind::Points,
        Expected::Tag(_) => Kind::Tag,
        Expected::Untag(_) => Kind::Untag,
        Expected::Goal(_) => Kind::Goal,
        Expected::Exit(_) => Kind::Exit,
        Expected::Enter(_) => Kind::Enter,
        Expected::Suppressed(_) => Kind::Suppressed,
        Expected::Outcome(_) => Kind::Outcome,
        Expected::Reward(_) => Kind::Reward,
        // Any record of the instance after the split carries its arms.
        Expected::Arm { .. } => Kind::Enter,
    }
}

fn matches(e: &Expectation, r: &Record) -> bool {
    if r.kind != kind_of(&e.what)
        || e.user.as_ref().is_some_and(|u| *u != r.user)
        || e.at.is_some_and(|t| t != r.at)
    {
        return false;
    }
    fn eq<S: std::ops::Deref<Target = str>>(field: &Option<S>, want: &str) -> bool {
        field.as_deref() == Some(want)
    }
    match &e.what {
        Expected::Send { channel, template } => {
            channel.as_ref().is_none_or(|c| eq(&r.channel, c))
                && template.as_ref().is_none_or(|t| eq(&r.template, t))
        }
        Expected::Coupon(id) => eq(&r.coupon, id),
        Expected::Points(n) => r.delta.as_ref() == Some(&decimal_to_json(*n)),
        Expected::Tag(t) | Expected::Untag(t) => eq(&r.tag, t),
        Expected::Goal(j) | Expected::Exit(j) | Expected::Enter(j) => eq(&r.journey, j),
        Expected::Suppressed(reason) | Expected::Outcome(reason) => {
            reason.as_ref().is_none_or(|x| eq(&r.reason, x))
        }
        Expected::Reward(t) => eq(&r.task, t),
        Expected::Arm { .. } => unreachable!("arms are checked by `check_arm`"),
    }
}

/// `None` when the expectation holds; otherwise what happened instead.
fn check(e: &Expectation, records: &[Record], zone: chrono_tz::Tz) -> Option<String> {
    if let Expected::Arm { arm, split } = &e.what {
        return check_arm(e, arm, split, records);
    }
    let describe = |r: &Record| describe(r, zone);
    let hits: Vec<&Record> = records.iter().filter(|r| matches(e, r)).collect();
    if e.negated {
        return hits.first().map(|r| format!("found {}", describe(r)));
    }
    if !hits.is_empty() {
        return None;
    }
    let kind = kind_of(&e.what);
    let same_kind: Vec<String> = records
        .iter()
        .filter(|r| r.kind == kind)
        .map(describe)
        .collect();
    Some(if same_kind.is_empty() {
        format!("no `{}` record at all", kind.as_str())
    } else {
        format!("only: {}", same_kind.join("; "))
    })
}

/// `expect [no] arm ARM of SPLIT [for "ID"]`: the arms users got of
/// `SPLIT`, as the records of their instances after it carry them.
fn check_arm(e: &Expectation, arm: &str, split: &str, records: &[Record]) -> Option<String> {
    let mut got: Vec<(String, String)> = Vec::new();
    for r in records {
        if e.user.as_ref().is_some_and(|u| *u != r.user) || e.at.is_some_and(|t| t != r.at) {
            continue;
        }
        if let Some(chosen) = r.arms.as_ref().and_then(|a| a.get(split)) {
            let pair = (r.user.to_string(), chosen.clone());
            if !got.contains(&pair) {
                got.push(pair);
            }
        }
    }
    let hit = got.iter().find(|(_, chosen)| chosen == arm);
    match (e.negated, hit) {
        (true, None) | (false, Some(_)) => None,
        (true, Some((user, _))) => Some(format!("{user} got arm {arm} of split {split}")),
        (false, None) if got.is_empty() => Some(format!("nobody went through split {split}")),
        (false, None) => Some(format!(
            "got {}",
            got.iter()
                .map(|(user, chosen)| format!("arm {chosen} for {user}"))
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}

/// A record in a few words: `send sms template SMS_X for u1 at 2025-…`,
/// its time in `zone`.
pub fn describe(r: &Record, zone: chrono_tz::Tz) -> String {
    let mut parts = vec![r.kind.as_str().to_string()];
    for (label, value) in [
        ("", &r.channel),
        ("template ", &r.template),
        ("coupon ", &r.coupon),
        ("tag ", &r.tag),
        ("reason ", &r.reason),
        ("staff ", &r.staff),
        ("task ", &r.task),
        ("journey ", &r.journey.as_deref().map(str::to_string)),
    ] {
        if let Some(v) = value {
            parts.push(format!("{label}{v}"));
        }
    }
    if let Some(delta) = &r.delta {
        parts.push(format!("delta {delta}"));
    }
    if let Some(message) = &r.message {
        parts.push(format!("({message})"));
    }
    parts.push(format!("for {} at {}", r.user, show(r.at, zone)));
    parts.join(" ")
}
