//! With a config (`check --config`), each `send` step is checked against
//! its channel kind's message fields (E1001): required fields present,
//! unknown fields reported. Sends on an official-account template channel
//! (kind `wechat`) outside a `transactional` journey are marketing WeChat
//! intercepts (W1002); sends on a channel that spends a grant per send are
//! checked for sending one template twice on one path (W1003); sends on a
//! channel that answers an event (a WeCom welcome message) must be in a
//! journey that event starts, before any wait (E1004), under a policy
//! that lets them go at once (W1005).

use super::Cx;
use crate::ast::StepKind;
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, closest};
use crate::scope::walk;
use std::collections::BTreeMap;

/// The event WeChat pushes when a user accepts subscribe messages: a
/// `wait for` it between two sends gives the second its grant.
const ACCEPT_EVENT: &str = "subscribe_msg_popup_event";

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    let Some(catalog) = cx.channels else { return };
    walk::for_each_step(cx.files, |step| {
        let StepKind::Send {
            channel,
            template,
            staff,
            fields,
        } = &step.kind
        else {
            return;
        };
        let Some(spec) = catalog.get(&channel.name) else {
            return;
        };
        // `via staff` gives the `staff` field.
        let given: Vec<&str> = fields
            .iter()
            .flat_map(|r| &r.fields)
            .map(|f| f.key.name.as_str())
            .chain(staff.as_ref().map(|_| "staff"))
            .collect();
        for required in &spec.required {
            let present = given.contains(&required.as_str())
                || (required == "template" && template.is_some());
            if !present {
                out.push(
                    Diagnostic::new(
                        Code::UnknownChannelField,
                        step.span,
                        format!(
                            "channel `{}` ({}) needs the field `{required}`",
                            channel.name, spec.kind
                        ),
                    )
                    .label(format!("no `{required}` given")),
                );
            }
        }
        if let Some(accepted) = &spec.accepted {
            for field in fields.iter().flat_map(|r| &r.fields) {
                if !accepted.iter().any(|a| a == &field.key.name) {
                    let mut d = Diagnostic::new(
                        Code::UnknownChannelField,
                        field.key.span,
                        format!(
                            "channel `{}` ({}) has no field `{}`",
                            channel.name, spec.kind, field.key.name
                        ),
                    )
                    .label("not a field of this channel");
                    d = d.help(
                        match closest(&field.key.name, accepted.iter().map(String::as_str)) {
                            Some(near) => format!("did you mean `{near}`?"),
                            None => format!("its fields are {}", accepted.join(", ")),
                        },
                    );
                    out.push(d);
                }
            }
            if let Some(staff) = staff
                && !accepted.iter().any(|a| a == "staff")
            {
                out.push(
                    Diagnostic::new(
                        Code::UnknownChannelField,
                        staff.span,
                        format!(
                            "channel `{}` ({}) is not sent by a staff member: `via staff` has no use on it",
                            channel.name, spec.kind
                        ),
                    )
                    .label("no staff member sends on this channel")
                    .help("only a channel whose kind a staff member confirms (WeCom `wecom_mass`) takes `via staff`"),
                );
            }
        }
    });
}

/// W1002: marketing sent as official-account template messages, which
/// WeChat allows for service notices only: every send on a `wechat`-kind
/// channel in a journey not marked `transactional`, a rule or a task.
pub fn service_templates(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    let Some(catalog) = cx.channels else { return };
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        let (what, name) = match decl {
            crate::ast::Decl::Journey(j) => {
                let transactional = j
                    .headers
                    .iter()
                    .any(|h| matches!(h.kind, crate::ast::HeaderKind::Transactional));
                if transactional {
                    continue;
                }
                ("journey", &j.name.name)
            }
            crate::ast::Decl::Rule(r) => ("rule", &r.name.name),
            crate::ast::Decl::Task(t) => ("task", &t.name.name),
            _ => continue,
        };
        let mut sends = Vec::new();
        for block in walk::decl_blocks(decl) {
            collect_steps(block, &mut sends);
        }
        for step in sends {
            let StepKind::Send { channel, .. } = &step.kind else {
                continue;
            };
            if catalog
                .get(&channel.name)
                .is_none_or(|s| s.kind != "wechat")
            {
                continue;
            }
            out.push(
                Diagnostic::new(
                    Code::ServiceTemplate,
                    step.span,
                    format!(
                        "{what} `{name}` sends an official-account template message on `{}`, which WeChat allows for service notices only",
                        channel.name
                    ),
                )
                .label("WeChat intercepts template messages used for marketing")
                .help("for marketing, send a subscribe message the user accepted (a `miniprogram` or `wechat_subscribe` channel), a WeCom message, or SMS with consent; for a service notice, mark the journey `transactional`"),
            );
        }
    }
}

/// Every step in `steps`, nested ones included, in source order.
fn collect_steps<'a>(steps: &'a [crate::ast::Step], out: &mut Vec<&'a crate::ast::Step>) {
    for step in steps {
        out.push(step);
        for block in walk::child_blocks(step) {
            collect_steps(&block.steps, out);
        }
    }
}

/// Sends of one template on a channel that spends grants, per path: how
/// many so far (since the last accept waited for).
type Sent<'a> = BTreeMap<(&'a str, &'a str), u32>;

/// W1003: a template of a grant-spending channel sent twice on one path
/// through a journey, rule or task, with no accept waited for between.
pub fn grant_resends(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    let Some(catalog) = cx.channels else { return };
    let spends = |channel: &str| catalog.get(channel).is_some_and(|s| s.spends_grants);
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        for block in walk::decl_blocks(decl) {
            let mut flagged = Vec::new();
            sends_on_paths(block, &mut Sent::new(), &spends, &mut flagged);
            flagged.sort_by_key(|(span, _, _): &(crate::source::Span, _, _)| span.start);
            flagged.dedup_by_key(|(span, _, _)| span.start);
            for (span, channel, template) in flagged {
                out.push(
                    Diagnostic::new(
                        Code::GrantResent,
                        span,
                        format!(
                            "`{channel}` template `{template}` can be sent twice on one path, but each accept allows one send"
                        ),
                    )
                    .label("a second send of it: suppressed (no_grant) unless the user accepted again")
                    .help("send it once, or `wait for event subscribe_msg_popup_event` between the sends"),
                );
            }
        }
    }
}

/// Walks `steps` adding to `sent`; pushes each send found to be a second
/// one on its path.
fn sends_on_paths<'a>(
    steps: &'a [crate::ast::Step],
    sent: &mut Sent<'a>,
    spends: &impl Fn(&str) -> bool,
    flagged: &mut Vec<(crate::source::Span, &'a str, &'a str)>,
) {
    for step in steps {
        match &step.kind {
            StepKind::Send {
                channel,
                template: Some(template),
                ..
            } if spends(&channel.name) => {
                let n = sent
                    .entry((channel.name.as_str(), template.value.as_str()))
                    .or_default();
                *n += 1;
                if *n >= 2 {
                    flagged.push((step.span, &channel.name, &template.value));
                }
            }
            StepKind::WaitFor(wait) => {
                let before = sent.clone();
                if matches!(&wait.awaited, crate::ast::Awaited::Event(m) if m.event.name == ACCEPT_EVENT)
                {
                    sent.clear();
                }
                if let Some(block) = &wait.on_event {
                    sends_on_paths(&block.steps, sent, spends, flagged);
                }
                // Timed out, the path goes on without the accept.
                let mut timed_out = before;
                if let Some(block) = &wait.on_timeout {
                    sends_on_paths(&block.steps, &mut timed_out, spends, flagged);
                }
                merge_max(sent, timed_out);
            }
            StepKind::Repeat { times, body, .. } => {
                // Twice round is enough to see a send repeat.
                for _ in 0..times.value.min(2) {
                    sends_on_paths(&body.steps, sent, spends, flagged);
                }
            }
            _ => {
                let blocks = walk::child_blocks(step);
                if blocks.is_empty() {
                    continue;
                }
                // Branches: one of them runs (or none, for an `if`
                // without `else`); after them, the most any one sent.
                let before = sent.clone();
                for block in blocks {
                    let mut branch = before.clone();
                    sends_on_paths(&block.steps, &mut branch, spends, flagged);
                    merge_max(sent, branch);
                }
            }
        }
    }
}

fn merge_max<'a>(into: &mut Sent<'a>, other: Sent<'a>) {
    for (k, n) in other {
        let slot = into.entry(k).or_default();
        *slot = (*slot).max(n);
    }
}

/// E1004: a send on a channel that answers an event (its address is a
/// property of that event, good briefly: a WeCom welcome message's
/// `welcome_code`) anywhere but in a journey that the event starts,
/// before any wait.
pub fn answers_in_place(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    let Some(catalog) = cx.channels else { return };
    let answers = |channel: &str| catalog.get(channel).and_then(|s| s.answers.as_deref());
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        let Some((what, name, triggers)) = started_by(decl) else {
            continue;
        };
        let mut sends = Vec::new();
        for block in walk::decl_blocks(decl) {
            answering_sends(block, false, &answers, &mut sends);
        }
        // A send in a `repeat` is seen twice: the later (waited) once is kept.
        sends.sort_by_key(|(step, _, _, waited)| (step.span.start, !*waited));
        sends.dedup_by_key(|(step, _, _, _)| step.span.start);
        for (step, channel, event, waited) in sends {
            let started_by_it = answered_by(&triggers, event);
            let (message, label) = if !started_by_it {
                (
                    format!(
                        "{what} `{name}` sends on `{channel}`, which answers `{event}` only, but `{event}` does not start it"
                    ),
                    format!("no `{event}` here to answer: the send could never go"),
                )
            } else if waited {
                (
                    format!(
                        "{what} `{name}` sends on `{channel}` after a wait, but it answers `{event}` within seconds"
                    ),
                    "after a wait the answer has expired".to_string(),
                )
            } else {
                continue;
            };
            out.push(
                Diagnostic::new(Code::AnswerOutOfPlace, step.span, message)
                    .label(label)
                    .help(format!(
                        "send it first in a journey with `trigger event {event}` (and no other trigger), or in a rule `when event {event}`, before any wait"
                    )),
            );
        }
    }
}

/// The triggers of a declaration: each the event it is (`None` for a
/// schedule or segment); no list for a task, which no event starts alone.
type Triggers<'a> = Option<Vec<Option<&'a str>>>;

/// What a declaration is (`journey`, `rule`, `task`), its name, and what starts it.
fn started_by(decl: &crate::ast::Decl) -> Option<(&'static str, &str, Triggers<'_>)> {
    match decl {
        crate::ast::Decl::Journey(j) => {
            let triggers = j
                .headers
                .iter()
                .filter_map(|h| match &h.kind {
                    crate::ast::HeaderKind::Trigger(crate::ast::Trigger::Event(e)) => {
                        Some(Some(e.event.name.as_str()))
                    }
                    crate::ast::HeaderKind::Trigger(_) => Some(None),
                    _ => None,
                })
                .collect();
            Some(("journey", &j.name.name, Some(triggers)))
        }
        crate::ast::Decl::Rule(r) => Some((
            "rule",
            &r.name.name,
            Some(vec![Some(r.when.event.name.as_str())]),
        )),
        crate::ast::Decl::Task(t) => Some(("task", &t.name.name, None)),
        _ => None,
    }
}

/// Whether every trigger of `triggers` is `event`.
fn answered_by(triggers: &Triggers<'_>, event: &str) -> bool {
    triggers
        .as_ref()
        .is_some_and(|t| !t.is_empty() && t.iter().all(|e| *e == Some(event)))
}

/// The sends on answering channels in `steps`: (step, channel, the event
/// it answers, whether a wait can come before it); returns whether a wait
/// can have come by the end of `steps`.
fn answering_sends<'a>(
    steps: &'a [crate::ast::Step],
    mut waited: bool,
    answers: &impl Fn(&str) -> Option<&'a str>,
    out: &mut Vec<(&'a crate::ast::Step, &'a str, &'a str, bool)>,
) -> bool {
    for step in steps {
        match &step.kind {
            StepKind::Send { channel, .. } => {
                if let Some(event) = answers(&channel.name) {
                    out.push((step, channel.name.as_str(), event, waited));
                }
            }
            StepKind::Wait(_) | StepKind::WaitUntil(_) | StepKind::WaitUntilTime { .. } => {
                waited = true;
            }
            StepKind::WaitFor(_) => {
                for block in walk::child_blocks(step) {
                    answering_sends(&block.steps, true, answers, out);
                }
                waited = true;
            }
            StepKind::Repeat { every, body, .. } => {
                let in_body = answering_sends(&body.steps, waited, answers, out);
                // A second time round comes after the body's waits, or
                // after `every`.
                if every.is_some() || in_body {
                    let mut again = Vec::new();
                    answering_sends(&body.steps, true, answers, &mut again);
                    out.extend(again);
                }
                waited |= in_body;
            }
            _ => {
                let mut any = waited;
                for block in walk::child_blocks(step) {
                    any |= answering_sends(&block.steps, waited, answers, out);
                }
                waited = any;
            }
        }
    }
    waited
}

/// W1005: a send that answers an event within seconds, under a policy
/// that holds it back: `consent required` (a customer who just added a
/// staff member has no consent on the channel yet), or quiet hours and
/// caps in a journey that is not `transactional` (deferred past its
/// window, or suppressed).
pub fn answers_held_back(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    let Some(catalog) = cx.channels else { return };
    let answers = |channel: &str| catalog.get(channel).and_then(|s| s.answers.as_deref());
    let policy = |name: &str| {
        cx.files
            .iter()
            .flat_map(|f| &f.decls)
            .find_map(|d| match d {
                crate::ast::Decl::Policy(p) if p.name.name == name => Some(p),
                _ => None,
            })
    };
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        let (what, name, policy_name, transactional) = match decl {
            crate::ast::Decl::Journey(j) => {
                let named = j.headers.iter().find_map(|h| match &h.kind {
                    crate::ast::HeaderKind::Policy(p) => Some(p.name.as_str()),
                    _ => None,
                });
                let transactional = j
                    .headers
                    .iter()
                    .any(|h| matches!(h.kind, crate::ast::HeaderKind::Transactional));
                (
                    "journey",
                    &j.name.name,
                    named.unwrap_or("default"),
                    transactional,
                )
            }
            crate::ast::Decl::Rule(r) => ("rule", &r.name.name, "default", false),
            _ => continue,
        };
        let Some(policy) = policy(policy_name) else {
            continue;
        };
        let has = |f: fn(&crate::ast::PolicyClauseKind) -> bool| {
            policy.clauses.iter().any(|c| f(&c.kind))
        };
        let triggers = started_by(decl).and_then(|(_, _, t)| t);
        let mut sends = Vec::new();
        for block in walk::decl_blocks(decl) {
            answering_sends(block, false, &answers, &mut sends);
        }
        // Those out of place are E1004's; a send seen twice (in a `repeat`) once.
        sends.retain(|(_, _, event, waited)| !waited && answered_by(&triggers, event));
        sends.dedup_by_key(|(step, _, _, _)| step.span.start);
        for (step, channel, _, _) in sends {
            let mut why = Vec::new();
            if has(|k| matches!(k, crate::ast::PolicyClauseKind::ConsentRequired)) {
                why.push(format!(
                    "`consent required` suppresses it unless the customer has `consent.{channel}`"
                ));
            }
            if !transactional {
                if has(|k| matches!(k, crate::ast::PolicyClauseKind::QuietHours { .. })) {
                    why.push("its quiet hours defer it past its seconds".to_string());
                }
                if has(|k| matches!(k, crate::ast::PolicyClauseKind::Cap { .. })) {
                    why.push("its caps can defer or suppress it".to_string());
                }
            }
            if why.is_empty() {
                continue;
            }
            out.push(
                Diagnostic::new(
                    Code::AnswerHeldBack,
                    step.span,
                    format!(
                        "{what} `{name}` answers on `{channel}` under policy `{}`, which can hold it back: {}",
                        policy.name.name,
                        why.join("; ")
                    ),
                )
                .label("held back, the answer expires")
                .help("a welcome answers the customer's own action: give the journey a policy without `consent required` and mark it `transactional`"),
            );
        }
    }
}
