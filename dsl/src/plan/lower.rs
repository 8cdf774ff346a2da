//! Lowering a checked deployment to its plan. Each block's steps get
//! consecutive ids, nested blocks follow, and every step names its
//! successor, so the engine never needs the tree.

use super::expr::{ExprLowering, literal_record};
use super::*;
use crate::ast::{self, Decl, HeaderKind, PolicyClauseKind, TaskClauseKind};
use crate::library::FunctionTable;
use crate::scope::walk::{Binding, BindingKind, EventCtx, Owner, Scope};
use crate::scope::{self, Symbols};
use crate::source::{Sources, Span};
use std::collections::{BTreeMap, BTreeSet};

/// Lowers a deployment that checked without errors.
pub fn lower(sources: &Sources, files: &[ast::File], functions: &dyn FunctionTable) -> Plan {
    let symbols = Symbols::build(files);
    let policy_zones = files
        .iter()
        .flat_map(|f| &f.decls)
        .filter_map(|d| match d {
            Decl::Policy(p) => p.clauses.iter().find_map(|c| match &c.kind {
                PolicyClauseKind::Tz(t) => Some((p.name.name.clone(), t.value.clone())),
                _ => None,
            }),
            _ => None,
        })
        .collect();
    let cx = Lowering {
        sources,
        exprs: ExprLowering {
            symbols: &symbols,
            functions,
        },
        policy_zones,
    };
    let mut plan = Plan::default();
    for decl in files.iter().flat_map(|f| &f.decls) {
        match decl {
            Decl::Journey(j) => plan.journeys.push(cx.journey(j)),
            Decl::Rule(r) => {
                let scope = cx.scope(Owner::Rule(r));
                plan.rules.push(RulePlan {
                    name: r.name.name.clone(),
                    title: r.title.as_ref().map(|t| t.value.clone()),
                    when: cx.filter(&r.when, &scope),
                    condition: r.condition.as_ref().map(|c| cx.exprs.expr(c, &scope)),
                    steps: cx.steps(&r.then.steps, scope),
                });
            }
            Decl::Task(t) => plan.tasks.push(cx.task(t)),
            Decl::Segment(s) => plan.segments.push(SegmentPlan {
                name: s.name.name.clone(),
                title: s.title.as_ref().map(|t| t.value.clone()),
                expr: cx.exprs.expr(&s.expr, &cx.scope(Owner::Segment(s))),
            }),
            Decl::Policy(p) => plan.policies.push(cx.policy(p, &symbols)),
            Decl::Test(t) => plan.tests.push(cx.test(t)),
            Decl::Schema(_) | Decl::Const(_) => {}
        }
    }
    plan.history_reads = history_reads(files, functions);
    if plan.policy("default").is_none() {
        plan.policies.push(PolicyPlan {
            name: "default".into(),
            ..PolicyPlan::default()
        });
    }
    plan
}

/// Every event named as an argument of a function that takes event
/// names, with the functions that name it.
fn history_reads(
    files: &[ast::File],
    functions: &dyn FunctionTable,
) -> BTreeMap<String, BTreeSet<String>> {
    use crate::scope::walk::{self, Child, Role, Visitor};
    struct Reads<'t> {
        functions: &'t dyn FunctionTable,
        reads: BTreeMap<String, BTreeSet<String>>,
    }
    impl<'a> Visitor<'a> for Reads<'_> {
        fn expr(&mut self, expr: &'a ast::Expr, _: Role, _: &Scope<'a>) {
            let functions = self.functions;
            let reads = &mut self.reads;
            walk::each_subexpr(expr, Child::Value, functions, &mut |e, child| {
                let ast::ExprKind::Call { function, .. } = &e.kind else {
                    return;
                };
                if child != Child::Value {
                    return;
                }
                for (arg, kind) in walk::children(e, functions) {
                    let event = match kind {
                        Child::Value => None,
                        Child::EventName => walk::event_name_arg(arg),
                        Child::EventField => walk::event_field(arg).map(|(event, _)| event),
                    };
                    if let Some(event) = event {
                        reads
                            .entry(event)
                            .or_default()
                            .insert(function.name.clone());
                    }
                }
            });
        }
    }
    let mut reads = Reads {
        functions,
        reads: BTreeMap::new(),
    };
    walk::walk(files, &mut reads);
    reads.reads
}

struct Lowering<'c, 'a> {
    sources: &'c Sources,
    exprs: ExprLowering<'c, 'a>,
    /// Each policy's `tz`, for date-only `active` bounds.
    policy_zones: BTreeMap<String, String>,
}

impl<'a> Lowering<'_, 'a> {
    /// The zone a journey's or task's calendar dates are read in: its own
    /// `tz`, else its policy's, else UTC. (Not the user's: a campaign
    /// window is one window for everybody.)
    fn zone(&self, own: Option<&str>, policy: &str) -> chrono_tz::Tz {
        own.or(self.policy_zones.get(policy).map(String::as_str))
            .and_then(|z| crate::schedule::parse_time_zone(z).ok())
            .unwrap_or(chrono_tz::UTC)
    }

    fn scope(&self, owner: Owner<'a>) -> Scope<'a> {
        Scope {
            owner,
            event: EventCtx::Unknown,
            bindings: Vec::new(),
        }
    }

    fn line(&self, span: Span) -> u32 {
        self.sources.get(span.file).line_col(span.start as usize).0 as u32
    }

    fn location(&self, span: Span) -> String {
        format!("{}:{}", self.sources.get(span.file).name, self.line(span))
    }

    fn filter(&self, m: &'a ast::EventMatch, scope: &Scope<'a>) -> EventFilter {
        EventFilter {
            event: m.event.name.clone(),
            filter: m.filter.as_ref().map(|f| self.exprs.expr(f, scope)),
        }
    }

    fn journey(&self, j: &'a ast::Journey) -> JourneyPlan {
        let scope = self.scope(Owner::Journey(j));
        let mut plan = JourneyPlan {
            name: j.name.name.clone(),
            title: j.title.as_ref().map(|t| t.value.clone()),
            version: String::new(),
            triggers: Vec::new(),
            audience: None,
            entry: Entry::Once,
            exit_on: Vec::new(),
            exit_if: Vec::new(),
            goal: None,
            active: None,
            limit: None,
            category: "marketing".into(),
            tz: None,
            policy: "default".into(),
            transactional: false,
            steps: Steps::default(),
        };
        let mut active_bounds = None;
        for header in &j.headers {
            match &header.kind {
                HeaderKind::Trigger(ast::Trigger::Event(m)) => {
                    plan.triggers.push(Trigger::Event(self.filter(m, &scope)))
                }
                HeaderKind::Trigger(ast::Trigger::Schedule { cron, tz, audience }) => {
                    plan.triggers.push(Trigger::Schedule {
                        cron: cron.value.clone(),
                        tz: tz.as_ref().map(|t| t.value.clone()),
                        audience: audience.as_ref().map(|a| self.exprs.expr(a, &scope)),
                    })
                }
                HeaderKind::Trigger(ast::Trigger::Segment(s)) => {
                    plan.triggers.push(Trigger::Segment(s.name.clone()))
                }
                HeaderKind::Audience(e) => plan.audience = Some(self.exprs.expr(e, &scope)),
                HeaderKind::Entry(mode) => {
                    plan.entry = match mode {
                        ast::EntryMode::Once => Entry::Once,
                        ast::EntryMode::Always => Entry::Always,
                        ast::EntryMode::Every(d) => Entry::Every(seconds(d)),
                    }
                }
                HeaderKind::ExitOn(m) => plan.exit_on.push(self.filter(m, &scope)),
                HeaderKind::ExitIf(e) => plan.exit_if.push(self.exprs.expr(e, &scope)),
                HeaderKind::Goal {
                    event,
                    within,
                    and_continue,
                } => {
                    plan.goal = Some(Goal {
                        event: self.filter(event, &scope),
                        within: seconds(within),
                        and_continue: *and_continue,
                    })
                }
                HeaderKind::Active(a) => active_bounds = Some(a),
                HeaderKind::Limit { entries, per } => {
                    plan.limit = Some(EntryLimit {
                        entries: entries.value,
                        per: per.as_ref().map(window),
                    })
                }
                HeaderKind::Category(c) => plan.category = c.value.clone(),
                HeaderKind::Tz(t) => plan.tz = Some(t.value.clone()),
                HeaderKind::Policy(p) => plan.policy = p.name.clone(),
                HeaderKind::Transactional => plan.transactional = true,
            }
        }
        if let Some(a) = active_bounds {
            plan.active = active(a, self.zone(plan.tz.as_deref(), &plan.policy));
        }
        plan.steps = self.steps(&j.steps, scope);
        plan.version = version(&mut plan);
        plan
    }

    fn task(&self, t: &'a ast::Task) -> TaskPlan {
        let scope = self.scope(Owner::Task(t));
        let mut on = EventFilter {
            event: String::new(),
            filter: None,
        };
        let mut distinct = None;
        let mut progress = TaskProgress::Count {
            times: 1,
            within: None,
        };
        let mut reward = Steps::default();
        let (mut repeatable, mut max) = (false, None);
        let (mut active_bounds, mut tz) = (None, None);
        for clause in &t.clauses {
            match &clause.kind {
                TaskClauseKind::On(m) => on = self.filter(m, &scope),
                TaskClauseKind::Distinct(e) => distinct = Some(self.exprs.expr(e, &scope)),
                TaskClauseKind::Count {
                    times,
                    within,
                    reward: block,
                } => {
                    progress = TaskProgress::Count {
                        times: times.value,
                        within: within.as_ref().map(seconds),
                    };
                    reward = self.steps(&block.steps, scope.clone());
                }
                TaskClauseKind::Streak {
                    days,
                    reward: block,
                } => {
                    progress = TaskProgress::Streak { days: days.value };
                    reward = self.steps(&block.steps, scope.clone());
                }
                TaskClauseKind::Repeatable => repeatable = true,
                TaskClauseKind::MaxPerUser(n) => max = Some(n.value),
                TaskClauseKind::Active(a) => active_bounds = Some(a),
                TaskClauseKind::Tz(z) => tz = Some(z.value.clone()),
            }
        }
        let active_window =
            active_bounds.and_then(|a| active(a, self.zone(tz.as_deref(), "default")));
        // `max N per user` bounds a repeatable task; without either the reward is earned once.
        let max_rewards = match (repeatable, max) {
            (_, Some(n)) => Some(n),
            (true, None) => None,
            (false, None) => Some(1),
        };
        TaskPlan {
            name: t.name.name.clone(),
            title: t.title.as_ref().map(|t| t.value.clone()),
            on,
            distinct,
            progress,
            reward,
            max_rewards,
            active: active_window,
            tz,
        }
    }

    fn policy(&self, p: &ast::Policy, symbols: &Symbols<'_>) -> PolicyPlan {
        let mut plan = PolicyPlan {
            name: p.name.name.clone(),
            ..PolicyPlan::default()
        };
        for clause in &p.clauses {
            match &clause.kind {
                PolicyClauseKind::Tz(t) => plan.tz = Some(t.value.clone()),
                PolicyClauseKind::QuietHours { from, to } => {
                    plan.quiet_hours = Some((from.minutes, to.minutes))
                }
                PolicyClauseKind::Cap { limit, what, per } => {
                    let word = what.name.as_str();
                    let counts = if scope::CAP_ALL.contains(&word) {
                        CapScope::All
                    } else if symbols.categories.contains(word) {
                        CapScope::Category(word.to_string())
                    } else {
                        CapScope::Channel(word.to_string())
                    };
                    plan.caps.push(Cap {
                        limit: limit.value,
                        counts,
                        per: window(per),
                    });
                }
                PolicyClauseKind::ConsentRequired => plan.consent_required = true,
                PolicyClauseKind::OnCapDefer => plan.on_cap_defer = true,
            }
        }
        plan
    }

    fn test(&self, t: &ast::Test) -> TestPlan {
        let mut steps = Vec::new();
        for stmt in &t.stmts {
            let location = self.location(stmt.span);
            let event = |e: &ast::TestEvent| TestStepKind::Event {
                name: e.name.name.clone(),
                user: e.user.value.clone(),
                props: literal_record(e.props.as_ref()),
            };
            match &stmt.kind {
                ast::TestStmtKind::User { id, traits } => steps.push(TestStep {
                    kind: TestStepKind::User {
                        id: id.value.clone(),
                        traits: literal_record(traits.as_ref()),
                    },
                    location,
                }),
                ast::TestStmtKind::At { time, event: e } => {
                    let at = scope::parse_timestamp_in(&time.value, self.zone(None, "default"))
                        .unwrap_or_default();
                    steps.push(TestStep {
                        kind: TestStepKind::At(at),
                        location: location.clone(),
                    });
                    if let Some(e) = e {
                        steps.push(TestStep {
                            kind: event(e),
                            location,
                        });
                    }
                }
                ast::TestStmtKind::Identify { id, traits } => steps.push(TestStep {
                    kind: TestStepKind::User {
                        id: id.value.clone(),
                        traits: literal_record(Some(traits)),
                    },
                    location,
                }),
                ast::TestStmtKind::Advance(d) => steps.push(TestStep {
                    kind: TestStepKind::Advance(seconds(d)),
                    location,
                }),
                ast::TestStmtKind::Event(e) => steps.push(TestStep {
                    kind: event(e),
                    location,
                }),
                ast::TestStmtKind::Outcome { outcome, user } => steps.push(TestStep {
                    kind: TestStepKind::Outcome {
                        outcome: outcome.name.clone(),
                        user: user.value.clone(),
                    },
                    location,
                }),
                ast::TestStmtKind::Expect(e) => {
                    use ast::Expected as A;
                    let what = match &e.what {
                        A::Send { channel, template } => Expected::Send {
                            channel: channel.as_ref().map(|c| c.name.clone()),
                            template: template.as_ref().map(|t| t.value.clone()),
                        },
                        A::Coupon(c) => Expected::Coupon(c.value.clone()),
                        A::Points { value, .. } => Expected::Points(*value),
                        A::Tag(t) => Expected::Tag(t.value.clone()),
                        A::Untag(t) => Expected::Untag(t.value.clone()),
                        A::Goal(j) => Expected::Goal(j.name.clone()),
                        A::Exit(j) => Expected::Exit(j.name.clone()),
                        A::Enter(j) => Expected::Enter(j.name.clone()),
                        A::Suppressed(r) => {
                            Expected::Suppressed(r.as_ref().map(|r| r.name.clone()))
                        }
                        A::Outcome(o) => Expected::Outcome(o.as_ref().map(|o| o.name.clone())),
                        A::Reward(t) => Expected::Reward(t.name.clone()),
                        A::Arm { arm, split } => Expected::Arm {
                            arm: arm.name.clone(),
                            split: split.name.clone(),
                        },
                    };
                    steps.push(TestStep {
                        kind: TestStepKind::Expect(Expectation {
                            negated: e.negated,
                            what,
                            user: e.user.as_ref().map(|u| u.value.clone()),
                            at: e.at.as_ref().and_then(|a| {
                                scope::parse_timestamp_in(&a.value, self.zone(None, "default"))
                            }),
                            text: self.sources.slice(stmt.span).to_string(),
                        }),
                        location,
                    });
                }
            }
        }
        TestPlan {
            name: t.name.value.clone(),
            location: self.location(t.span),
            steps,
        }
    }

    /// A table for a top-level step list: the list, then `End`.
    fn steps(&self, list: &'a [ast::Step], scope: Scope<'a>) -> Steps {
        let mut table = Table {
            steps: Vec::new(),
            last_send: None,
        };
        let end = table.push(0);
        table.steps[end.0 as usize].kind = StepKind::End;
        let start = self.block(&mut table, list, scope, end);
        Steps {
            start,
            table: table.steps,
        }
    }

    /// Lowers a block whose successor is `next`; returns its first step.
    fn block(
        &self,
        table: &mut Table,
        list: &'a [ast::Step],
        mut scope: Scope<'a>,
        next: StepId,
    ) -> StepId {
        let ids: Vec<StepId> = list.iter().map(|s| table.push(self.line(s.span))).collect();
        // The sends of this block count for the steps after them and the
        // blocks nested there, not after the block.
        let enclosing_send = table.last_send;
        for (i, step) in list.iter().enumerate() {
            let after = ids.get(i + 1).copied().unwrap_or(next);
            let kind = self.step(table, step, &mut scope, after, ids[i]);
            table.steps[ids[i].0 as usize].kind = kind;
            if matches!(step.kind, ast::StepKind::Send { .. }) {
                table.last_send = Some(ids[i]);
            }
        }
        table.last_send = enclosing_send;
        ids.first().copied().unwrap_or(next)
    }

    fn step(
        &self,
        table: &mut Table,
        step: &'a ast::Step,
        scope: &mut Scope<'a>,
        next: StepId,
        this: StepId,
    ) -> StepKind {
        use ast::StepKind as S;
        let e = &self.exprs;
        let record = |r: &'a Option<ast::Record>, scope: &Scope<'a>| {
            r.as_ref().map(|r| e.record(r, scope)).unwrap_or_default()
        };
        match &step.kind {
            S::Send {
                channel,
                template,
                staff,
                fields,
            } => StepKind::Send {
                channel: channel.name.clone(),
                template: template.as_ref().map(|t| t.value.clone()),
                // `via staff EXPR` is the send's `staff` field.
                fields: {
                    let mut fields = record(fields, scope);
                    if let Some(staff) = staff {
                        fields.push(("staff".to_string(), e.expr(staff, scope)));
                    }
                    fields
                },
                confirm_within: None,
                next,
            },
            S::Wait(d) => StepKind::Wait {
                seconds: seconds(d),
                next,
            },
            S::WaitUntilTime { time, tz } => StepKind::WaitUntilTime {
                minutes: time.minutes,
                tz: tz.as_ref().map(|t| t.value.clone()),
                next,
            },
            S::WaitUntil(at) => StepKind::WaitUntil {
                at: e.expr(at, scope),
                next,
            },
            S::WaitFor(wait) => {
                let within = seconds(&wait.within);
                // The send a confirmation waits on was lowered before it
                // (it comes first in this block or an enclosing one):
                // it learns how long its staff task may stay open.
                let (event, confirms) = match &wait.awaited {
                    ast::Awaited::Event(m) => (self.filter(m, scope), None),
                    ast::Awaited::Confirmation(_) => {
                        let send = table.last_send;
                        if let Some(StepKind::Send { confirm_within, .. }) =
                            send.map(|id| &mut table.steps[id.0 as usize].kind)
                        {
                            *confirm_within =
                                Some(confirm_within.map_or(within, |w: i64| w.min(within)));
                        }
                        let event = EventFilter {
                            event: ast::SEND_OUTCOME.to_string(),
                            filter: None,
                        };
                        (event, send)
                    }
                };
                let mut inner = scope.clone();
                if let Some(name) = &wait.bind {
                    inner.bindings.push(Binding {
                        name,
                        kind: BindingKind::Event(wait.awaited.event_name()),
                    });
                }
                let on_event = match &wait.on_event {
                    Some(b) => self.block(table, &b.steps, inner, next),
                    None => next,
                };
                let on_timeout = match &wait.on_timeout {
                    Some(b) => self.block(table, &b.steps, scope.clone(), next),
                    None => next,
                };
                StepKind::WaitForEvent {
                    event,
                    within,
                    bind: wait.bind.as_ref().map(|b| b.name.clone()),
                    on_event,
                    on_timeout,
                    confirms,
                }
            }
            S::If {
                branches,
                otherwise,
            } => {
                // `else if` chains become nested branches, each its own step.
                let chain: Vec<StepId> = std::iter::once(this)
                    .chain(
                        branches[1..]
                            .iter()
                            .map(|(c, _)| table.push(self.line(c.span))),
                    )
                    .collect();
                let last_else = match otherwise {
                    Some(b) => self.block(table, &b.steps, scope.clone(), next),
                    None => next,
                };
                let mut kinds = Vec::new();
                for (i, (condition, block)) in branches.iter().enumerate() {
                    let then = self.block(table, &block.steps, scope.clone(), next);
                    let otherwise = chain.get(i + 1).copied().unwrap_or(last_else);
                    kinds.push(StepKind::Branch {
                        condition: e.expr(condition, scope),
                        then,
                        otherwise,
                    });
                }
                let mut kinds = kinds.into_iter();
                let first = kinds.next().expect("an if has a branch");
                for (id, kind) in chain[1..].iter().zip(kinds) {
                    table.steps[id.0 as usize].kind = kind;
                }
                first
            }
            S::Split { name, arms } => StepKind::Split {
                name: name.name.clone(),
                arms: arms
                    .iter()
                    .map(|a| SplitArm {
                        name: a.name.name.clone(),
                        percent: a.percent.value,
                        start: self.block(table, &a.body.steps, scope.clone(), next),
                        holdout: a.body.steps.is_empty(),
                    })
                    .collect(),
            },
            S::GiveCoupon {
                coupon,
                expiry,
                fields,
                bind,
            } => {
                let kind = StepKind::GiveCoupon {
                    coupon: coupon.value.clone(),
                    expiry: expiry.as_ref().map(|x| match x {
                        ast::CouponExpiry::In(d) => CouponExpiry::In(seconds(d)),
                        ast::CouponExpiry::At(at) => CouponExpiry::At(e.expr(at, scope)),
                    }),
                    fields: record(fields, scope),
                    bind: bind.as_ref().map(|b| b.name.clone()),
                    next,
                };
                if let Some(name) = bind {
                    scope.bindings.push(Binding {
                        name,
                        kind: BindingKind::Coupon,
                    });
                }
                kind
            }
            S::GivePoints {
                amount,
                reason,
                expires_in,
            } => StepKind::GivePoints {
                amount: e.expr(amount, scope),
                reason: reason.as_ref().map(|r| r.value.clone()),
                expires_in: expires_in.as_ref().map(seconds),
                next,
            },
            S::TakePoints { amount, reason } => StepKind::TakePoints {
                amount: e.expr(amount, scope),
                reason: reason.as_ref().map(|r| r.value.clone()),
                next,
            },
            S::Tag(t) => StepKind::Tag {
                tag: t.value.clone(),
                next,
            },
            S::Untag(t) => StepKind::Untag {
                tag: t.value.clone(),
                next,
            },
            S::Set { path, value } => StepKind::Set {
                path: path_of(path),
                value: e.expr(value, scope),
                next,
            },
            S::Unset(path) => StepKind::Unset {
                path: path_of(path),
                next,
            },
            S::Emit { event, fields } => StepKind::Emit {
                event: event.name.clone(),
                fields: record(fields, scope),
                next,
            },
            S::Repeat { times, every, body } => StepKind::Repeat {
                times: times.value,
                every: every.as_ref().map(seconds),
                // The body's last step leads back to the repeat step.
                body: self.block(table, &body.steps, scope.clone(), this),
                next,
            },
            S::Exit => StepKind::Exit,
        }
    }
}

struct Table {
    steps: Vec<Step>,
    /// The `send` a `wait for confirmation` here would wait on: the last
    /// one lowered among the steps before it in its block and, outward,
    /// before the step that holds its block.
    last_send: Option<StepId>,
}

impl Table {
    /// Reserves a step; its kind is filled in once its successors are known.
    fn push(&mut self, line: u32) -> StepId {
        self.steps.push(Step {
            kind: StepKind::End,
            line,
        });
        StepId(self.steps.len() as u32 - 1)
    }
}

fn seconds(d: &ast::DurationLit) -> i64 {
    i64::try_from(d.seconds).unwrap_or(i64::MAX)
}

fn window(w: &ast::Window) -> Window {
    match w {
        ast::Window::Rolling(d) => Window::Rolling(seconds(d)),
        ast::Window::Calendar(p, _) => Window::Calendar(*p),
    }
}

/// A campaign window; a date-only bound is local midnight in `zone`.
fn active(a: &ast::Active, zone: chrono_tz::Tz) -> Option<ActiveWindow> {
    Some(ActiveWindow {
        from: scope::parse_timestamp_in(&a.from.value, zone)?,
        until: a
            .until
            .as_ref()
            .and_then(|u| scope::parse_timestamp_in(&u.value, zone)),
    })
}

fn path_of(path: &ast::UserPath) -> Vec<String> {
    path.fields.iter().map(|f| f.name.clone()).collect()
}

/// FNV-1a of the plan as JSON, without source lines: a stable version id.
/// The lines are zeroed in place and put back (rather than hashing a
/// clone), and the JSON is hashed as it is written (rather than buffered):
/// this runs once per journey on every check.
fn version(plan: &mut JourneyPlan) -> String {
    struct Fnv(u64);
    impl std::io::Write for Fnv {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            for &byte in bytes {
                self.0 ^= u64::from(byte);
                self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let version = std::mem::take(&mut plan.version);
    let lines: Vec<u32> = plan
        .steps
        .table
        .iter_mut()
        .map(|step| std::mem::take(&mut step.line))
        .collect();
    let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
    serde_json::to_writer(&mut hash, &*plan).expect("plans serialize");
    for (step, line) in plan.steps.table.iter_mut().zip(lines) {
        step.line = line;
    }
    plan.version = version;
    format!("{:016x}", hash.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::NoFunctions;

    /// The steps of the one journey `text` declares, which must check clean.
    fn table(text: &str) -> Vec<Step> {
        let mut sources = Sources::new();
        sources.add("t.journey", text);
        let compiled = crate::compile(
            sources,
            crate::Options {
                functions: &NoFunctions,
                channels: None,
            },
        );
        assert!(
            compiled.diagnostics.is_empty(),
            "{}",
            crate::render::human(&compiled.sources, &compiled.diagnostics)
        );
        let mut plan = compiled.plan.expect("a plan");
        plan.journeys.remove(0).steps.table
    }

    fn send_to(steps: &[Step], channel: &str) -> (StepId, Option<i64>) {
        steps
            .iter()
            .enumerate()
            .find_map(|(i, s)| match &s.kind {
                StepKind::Send {
                    channel: c,
                    confirm_within,
                    ..
                } if c == channel => Some((StepId(i as u32), *confirm_within)),
                _ => None,
            })
            .expect("the send")
    }

    /// `(confirms, within, event)` of each wait for an event, in table order.
    fn waits(steps: &[Step]) -> Vec<(Option<StepId>, i64, String)> {
        steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::WaitForEvent {
                    confirms,
                    within,
                    event,
                    ..
                } => Some((*confirms, *within, event.event.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_confirmation_points_at_its_send_and_gives_it_the_smaller_within() {
        let steps = table(
            "journey j {
               trigger event e
               send mass { text: \"hi\" }
               tag \"between\"
               if user.vip {
                 send other { text: \"nested: not the one\" }
               }
               wait for confirmation within 1d as o {
                 wait for confirmation within 2h
               }
               wait for event order_paid within 3h
             }",
        );
        let (mass, within) = send_to(&steps, "mass");
        assert_eq!(within, Some(2 * 3600));
        assert_eq!(send_to(&steps, "other").1, None);
        assert_eq!(
            waits(&steps),
            [
                (Some(mass), 86_400, "send_outcome".to_string()),
                (None, 3 * 3600, "order_paid".to_string()),
                // Nested blocks come after their block in the table.
                (Some(mass), 2 * 3600, "send_outcome".to_string()),
            ]
        );
    }

    #[test]
    fn a_confirmation_in_a_block_waits_on_the_send_before_it_there() {
        let steps = table(
            "journey j {
               trigger event e
               send outer { text: \"a\" }
               if user.vip {
                 send inner { text: \"b\" }
                 wait for confirmation within 1h
               } else {
                 wait for confirmation within 4h
               }
             }",
        );
        let (outer, outer_within) = send_to(&steps, "outer");
        let (inner, inner_within) = send_to(&steps, "inner");
        assert_eq!((outer_within, inner_within), (Some(4 * 3600), Some(3600)));
        let confirms: Vec<_> = waits(&steps).into_iter().map(|w| w.0).collect();
        assert_eq!(confirms.len(), 2);
        assert!(confirms.contains(&Some(inner)) && confirms.contains(&Some(outer)));
    }
}
