//! Flows from a plan: the head and note from a journey's (rule's, task's)
//! declarations, then a depth-first walk of its step table from the first
//! step, each step once, its successors in the order the script wrote them
//! (`yes` before `no`, arms in order, the event before the timeout). An
//! arrow to a step the walk is still inside (a `repeat` body's return) is
//! drawn as a way back.

use super::text::{duration, expr, percent, window};
use super::{Edge, EdgeStyle, Flow, FlowKind, Node, Role};
use crate::fmt::{event_name, quoted, time_of_day};
use crate::plan::{
    ActiveWindow, CouponExpiry, Entry, EventFilter, Expr, JourneyPlan, Plan, RulePlan, StepId,
    StepKind, Steps, TaskPlan, TaskProgress, Trigger,
};
use chrono::SecondsFormat;

/// Every journey, rule and task of `plan`, in that order, each in the
/// order the scripts declare them; or only those named `only`.
pub fn flows(plan: &Plan, only: Option<&str>) -> Vec<Flow> {
    let wanted = |name: &str| only.is_none_or(|o| o == name);
    let journeys = plan
        .journeys
        .iter()
        .filter(|j| wanted(&j.name))
        .map(journey);
    let rules = plan.rules.iter().filter(|r| wanted(&r.name)).map(rule);
    let tasks = plan.tasks.iter().filter(|t| wanted(&t.name)).map(task);
    journeys.chain(rules).chain(tasks).collect()
}

fn journey(j: &JourneyPlan) -> Flow {
    let mut head = Vec::new();
    for trigger in &j.triggers {
        head.push(match trigger {
            Trigger::Event(f) => format!("trigger event {}", filter(f)),
            Trigger::Schedule { cron, tz, audience } => {
                let mut line = format!("trigger schedule {}", quoted(cron));
                if let Some(tz) = tz {
                    line.push_str(&format!(" tz {}", quoted(tz)));
                }
                if let Some(a) = audience {
                    line.push_str(&format!(" for {}", expr(a)));
                }
                line
            }
            Trigger::Segment(s) => format!("trigger segment {s}"),
        });
    }
    if let Some(a) = &j.audience {
        head.push(format!("audience {}", expr(a)));
    }
    head.push(match j.entry {
        Entry::Once => "entry once".into(),
        Entry::Always => "entry always".into(),
        Entry::Every(s) => format!("entry every {}", duration(s)),
    });
    if let Some(limit) = &j.limit {
        let mut line = format!("limit {} entries", limit.entries);
        if let Some(per) = &limit.per {
            line.push_str(&format!(" per {}", window(per)));
        }
        head.push(line);
    }
    if let Some(a) = &j.active {
        head.push(active(a));
    }
    if let Some(tz) = &j.tz {
        head.push(format!("tz {}", quoted(tz)));
    }
    if j.transactional {
        head.push("transactional".into());
    } else if j.category != "marketing" {
        head.push(format!("category {}", quoted(&j.category)));
    }
    if j.policy != "default" {
        head.push(format!("policy {}", j.policy));
    }
    let mut note = Vec::new();
    if let Some(goal) = &j.goal {
        let mut line = format!(
            "goal {} within {}",
            filter(&goal.event),
            duration(goal.within)
        );
        if goal.and_continue {
            line.push_str(" and continue");
        }
        note.push(line);
    }
    note.extend(j.exit_on.iter().map(|f| format!("exit on {}", filter(f))));
    note.extend(j.exit_if.iter().map(|e| format!("exit if {}", expr(e))));
    walk(
        FlowKind::Journey,
        &j.name,
        &j.title,
        head,
        note,
        &j.steps,
        None,
    )
}

fn rule(r: &RulePlan) -> Flow {
    let mut head = vec![format!("when event {}", filter(&r.when))];
    if let Some(c) = &r.condition {
        head.push(format!("if {}", expr(c)));
    }
    walk(
        FlowKind::Rule,
        &r.name,
        &r.title,
        head,
        Vec::new(),
        &r.steps,
        Some("then"),
    )
}

fn task(t: &TaskPlan) -> Flow {
    let mut head = vec![format!("on event {}", filter(&t.on))];
    if let Some(d) = &t.distinct {
        head.push(format!("distinct {}", expr(d)));
    }
    head.push(match t.progress {
        TaskProgress::Count { times, within } => match within {
            Some(w) => format!("count {times} within {}", duration(w)),
            None => format!("count {times}"),
        },
        TaskProgress::Streak { days } => format!("streak {days} days"),
    });
    head.push(match t.max_rewards {
        Some(1) => "rewarded once per user".into(),
        Some(n) => format!("rewarded at most {n} times per user"),
        None => "repeatable, no limit".into(),
    });
    if let Some(a) = &t.active {
        head.push(active(a));
    }
    if let Some(tz) = &t.tz {
        head.push(format!("tz {}", quoted(tz)));
    }
    walk(
        FlowKind::Task,
        &t.name,
        &t.title,
        head,
        Vec::new(),
        &t.reward,
        Some("reward"),
    )
}

fn filter(f: &EventFilter) -> String {
    match &f.filter {
        Some(w) => format!("{} where {}", event_name(&f.event), expr(w)),
        None => event_name(&f.event),
    }
}

fn active(a: &ActiveWindow) -> String {
    let stamp = |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    match &a.until {
        Some(u) => format!("active from {} until {}", stamp(&a.from), stamp(u)),
        None => format!("active from {}", stamp(&a.from)),
    }
}

/// The flow: head, note, then the steps from `steps.start`.
fn walk(
    kind: FlowKind,
    name: &str,
    title: &Option<String>,
    head: Vec<String>,
    note: Vec<String>,
    steps: &Steps,
    first_label: Option<&str>,
) -> Flow {
    let mut flow = Flow {
        kind,
        name: name.to_string(),
        title: title.clone(),
        nodes: vec![Node {
            key: "head".into(),
            step: None,
            role: Role::Head,
            lines: head,
        }],
        edges: Vec::new(),
    };
    if !note.is_empty() {
        flow.nodes.push(Node {
            key: "note".into(),
            step: None,
            role: Role::Note,
            lines: note,
        });
        flow.edges.push(Edge {
            from: 0,
            to: 1,
            label: None,
            style: EdgeStyle::Note,
        });
    }
    // Depth-first, iteratively (a script may be long): a frame is a step's
    // node and how many of its successors have been followed.
    let mut node_of = vec![None::<usize>; steps.table.len()];
    let mut on_path = vec![false; steps.table.len()];
    let start = visit(&mut flow, &mut node_of, steps, steps.start);
    flow.edges.push(Edge {
        from: 0,
        to: start,
        label: first_label.map(str::to_string),
        style: EdgeStyle::Flow,
    });
    let mut stack: Vec<(StepId, usize)> = vec![(steps.start, 0)];
    on_path[steps.start.0 as usize] = true;
    while let Some((id, followed)) = stack.last_mut() {
        let id = *id;
        let outs = successors(steps, id);
        let Some((to, label)) = outs.into_iter().nth(*followed) else {
            on_path[id.0 as usize] = false;
            stack.pop();
            continue;
        };
        *followed += 1;
        let from = node_of[id.0 as usize].expect("visited before its successors");
        let Some(slot) = node_of.get(to.0 as usize) else {
            continue; // a plan is made whole; an id out of range draws nothing
        };
        let seen = slot.is_some();
        let target = visit(&mut flow, &mut node_of, steps, to);
        let back = on_path[to.0 as usize];
        flow.edges.push(Edge {
            from,
            to: target,
            label,
            style: if back {
                EdgeStyle::Back
            } else {
                EdgeStyle::Flow
            },
        });
        if !seen {
            on_path[to.0 as usize] = true;
            stack.push((to, 0));
        }
    }
    flow
}

/// The node of step `id`, added on first sight.
fn visit(flow: &mut Flow, node_of: &mut [Option<usize>], steps: &Steps, id: StepId) -> usize {
    if let Some(n) = node_of[id.0 as usize] {
        return n;
    }
    let (role, lines) = match steps.get(id) {
        Some(step) => describe(&step.kind),
        None => (Role::End, vec!["end".into()]),
    };
    flow.nodes.push(Node {
        key: id.label(),
        step: Some(id),
        role,
        lines,
    });
    node_of[id.0 as usize] = Some(flow.nodes.len() - 1);
    flow.nodes.len() - 1
}

/// Where a step leads, each with its arrow's label, in script order.
fn successors(steps: &Steps, id: StepId) -> Vec<(StepId, Option<String>)> {
    let Some(step) = steps.get(id) else {
        return Vec::new();
    };
    let plain = |next: &StepId| vec![(*next, None)];
    match &step.kind {
        StepKind::Send { next, .. }
        | StepKind::Wait { next, .. }
        | StepKind::WaitUntilTime { next, .. }
        | StepKind::WaitUntil { next, .. }
        | StepKind::GiveCoupon { next, .. }
        | StepKind::GivePoints { next, .. }
        | StepKind::TakePoints { next, .. }
        | StepKind::Tag { next, .. }
        | StepKind::Untag { next, .. }
        | StepKind::Set { next, .. }
        | StepKind::Unset { next, .. }
        | StepKind::Emit { next, .. } => plain(next),
        StepKind::WaitForEvent {
            confirms: Some(_),
            within,
            on_event,
            on_timeout,
            ..
        } => vec![
            (*on_event, Some("sent".into())),
            (
                *on_timeout,
                Some(format!("not sent · timeout {}", duration(*within))),
            ),
        ],
        StepKind::WaitForEvent {
            event,
            within,
            on_event,
            on_timeout,
            ..
        } => vec![
            (*on_event, Some(event_name(&event.event))),
            (*on_timeout, Some(format!("timeout {}", duration(*within)))),
        ],
        StepKind::Branch {
            then, otherwise, ..
        } => vec![(*then, Some("yes".into())), (*otherwise, Some("no".into()))],
        StepKind::Split { arms, .. } => arms
            .iter()
            .map(|a| {
                let label = if a.holdout && a.name != "holdout" {
                    format!("{} {} · holdout", a.name, percent(a.percent))
                } else {
                    format!("{} {}", a.name, percent(a.percent))
                };
                (a.start, Some(label))
            })
            .collect(),
        StepKind::Repeat {
            times, body, next, ..
        } => vec![
            (*body, Some("each time".into())),
            (*next, Some(format!("after {times}"))),
        ],
        StepKind::Exit | StepKind::End => Vec::new(),
    }
}

/// A step's role and text.
fn describe(kind: &StepKind) -> (Role, Vec<String>) {
    let record = |fields: &[(String, Expr)]| {
        fields
            .iter()
            .map(|(k, v)| format!("{}: {}", event_name(k), expr(v)))
            .collect::<Vec<_>>()
    };
    let reason = |r: &Option<String>| {
        r.as_ref()
            .map(|r| format!(" reason {}", quoted(r)))
            .unwrap_or_default()
    };
    match kind {
        StepKind::Send {
            channel,
            template,
            fields,
            ..
        } => {
            let mut first = format!("send {channel}");
            if let Some(t) = template {
                first.push_str(&format!(" template {}", quoted(t)));
            }
            let mut lines = vec![first];
            lines.extend(record(fields));
            (Role::Message, lines)
        }
        StepKind::Wait { seconds, .. } => {
            (Role::Wait, vec![format!("wait {}", duration(*seconds))])
        }
        StepKind::WaitUntilTime { minutes, tz, .. } => {
            let mut line = format!("wait until {}", time_of_day(*minutes));
            if let Some(tz) = tz {
                line.push_str(&format!(" tz {}", quoted(tz)));
            }
            (Role::Wait, vec![line])
        }
        StepKind::WaitUntil { at, .. } => (Role::Wait, vec![format!("wait until {}", expr(at))]),
        StepKind::WaitForEvent {
            event,
            within,
            bind,
            confirms,
            ..
        } => {
            let awaited = match confirms {
                Some(_) => "confirmation".to_string(),
                None => filter(event),
            };
            let mut line = format!("wait for {awaited} within {}", duration(*within));
            if let Some(b) = bind {
                line.push_str(&format!(" as {b}"));
            }
            (Role::Decision, vec![line])
        }
        StepKind::Branch { condition, .. } => {
            (Role::Decision, vec![format!("if {}", expr(condition))])
        }
        StepKind::Split { name, .. } => (Role::Decision, vec![format!("split {name}")]),
        StepKind::GiveCoupon {
            coupon,
            expiry,
            fields,
            bind,
            ..
        } => {
            let mut first = format!("give coupon {}", quoted(coupon));
            match expiry {
                Some(CouponExpiry::In(s)) => {
                    first.push_str(&format!(" expires in {}", duration(*s)))
                }
                Some(CouponExpiry::At(at)) => first.push_str(&format!(" expires at {}", expr(at))),
                None => {}
            }
            if let Some(b) = bind {
                first.push_str(&format!(" as {b}"));
            }
            let mut lines = vec![first];
            lines.extend(record(fields));
            (Role::Reward, lines)
        }
        StepKind::GivePoints {
            amount,
            reason: why,
            expires_in,
            ..
        } => {
            let mut line = format!("give points {}{}", expr(amount), reason(why));
            if let Some(s) = expires_in {
                line.push_str(&format!(" expires in {}", duration(*s)));
            }
            (Role::Reward, vec![line])
        }
        StepKind::TakePoints {
            amount,
            reason: why,
            ..
        } => (
            Role::Reward,
            vec![format!("take points {}{}", expr(amount), reason(why))],
        ),
        StepKind::Tag { tag, .. } => (Role::Update, vec![format!("tag {}", quoted(tag))]),
        StepKind::Untag { tag, .. } => (Role::Update, vec![format!("untag {}", quoted(tag))]),
        StepKind::Set { path, value, .. } => (
            Role::Update,
            vec![format!("set user.{} = {}", path.join("."), expr(value))],
        ),
        StepKind::Unset { path, .. } => {
            (Role::Update, vec![format!("unset user.{}", path.join("."))])
        }
        StepKind::Emit { event, fields, .. } => {
            let mut lines = vec![format!("emit {}", event_name(event))];
            lines.extend(record(fields));
            (Role::Update, lines)
        }
        StepKind::Repeat { times, every, .. } => {
            let mut line = format!("repeat {times} times");
            if let Some(e) = every {
                line.push_str(&format!(" every {}", duration(*e)));
            }
            (Role::Repeat, vec![line])
        }
        StepKind::Exit => (Role::Exit, vec!["exit".into()]),
        StepKind::End => (Role::End, vec!["end".into()]),
    }
}
