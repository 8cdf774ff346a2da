//! Top-level declarations: journeys and their header clauses, rules, tasks,
//! segments, policies, the schema, consts and test blocks.

use super::{Builder, Pair, Rule};
use crate::ast::{self, Decl};

impl Builder<'_> {
    pub(super) fn decl(&self, pair: Pair<'_>) -> Decl {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::journey => Decl::Journey(self.journey(pair)),
            Rule::rule_decl => {
                let mut parts = self.children(pair).peekable();
                let name = self.ident(parts.next().expect("grammar: rule name"));
                let title = self.title(&mut parts);
                let when = self.event_match(
                    self.children(parts.next().expect("grammar: when"))
                        .next()
                        .expect("grammar: event"),
                );
                let condition = parts
                    .next_if(|p| p.as_rule() == Rule::rule_if)
                    .map(|p| self.expr(self.children(p).next().expect("grammar: if expr")));
                let then = self.block(parts.next().expect("grammar: then block"));
                Decl::Rule(ast::Rule {
                    name,
                    title,
                    when,
                    condition,
                    then,
                    span,
                })
            }
            Rule::task => {
                let mut parts = self.children(pair).peekable();
                let name = self.ident(parts.next().expect("grammar: task name"));
                let title = self.title(&mut parts);
                let clauses = parts.map(|p| self.task_clause(p)).collect();
                Decl::Task(ast::Task {
                    name,
                    title,
                    clauses,
                    span,
                })
            }
            Rule::segment => {
                let mut parts = self.children(pair).peekable();
                let name = self.ident(parts.next().expect("grammar: segment name"));
                let title = self.title(&mut parts);
                let expr = self.expr(parts.next().expect("grammar: segment expr"));
                Decl::Segment(ast::Segment {
                    name,
                    title,
                    expr,
                    span,
                })
            }
            Rule::policy => {
                let mut parts = self.children(pair);
                let name = self.ident(parts.next().expect("grammar: policy name"));
                let clauses = parts.map(|p| self.policy_clause(p)).collect();
                Decl::Policy(ast::Policy {
                    name,
                    clauses,
                    span,
                })
            }
            Rule::schema => {
                let entries = self.children(pair).map(|p| self.schema_entry(p)).collect();
                Decl::Schema(ast::Schema { entries, span })
            }
            Rule::const_decl => {
                let mut parts = self.children(pair);
                let name = self.ident(parts.next().expect("grammar: const name"));
                let value = self.expr(parts.next().expect("grammar: const value"));
                Decl::Const(ast::Const { name, value, span })
            }
            Rule::test => {
                let mut parts = self.children(pair);
                let name = self.text(parts.next().expect("grammar: test name"));
                let stmts = parts.map(|p| self.test_stmt(p)).collect();
                Decl::Test(ast::Test { name, stmts, span })
            }
            other => unreachable!("grammar: unexpected declaration {other:?}"),
        }
    }

    fn title<'i>(
        &self,
        parts: &mut std::iter::Peekable<impl Iterator<Item = Pair<'i>>>,
    ) -> Option<ast::Text> {
        parts
            .next_if(|p| p.as_rule() == Rule::title)
            .map(|p| self.text(self.children(p).next().expect("grammar: title string")))
    }

    fn journey(&self, pair: Pair<'_>) -> ast::Journey {
        let span = self.span(&pair);
        let mut parts = self.children(pair).peekable();
        let name = self.ident(parts.next().expect("grammar: journey name"));
        let title = self.title(&mut parts);
        let mut headers = Vec::new();
        let mut steps = Vec::new();
        for part in parts {
            match self.header(part) {
                Ok(header) => headers.push(header),
                Err(step) => steps.push(self.step(step)),
            }
        }
        ast::Journey {
            name,
            title,
            headers,
            steps,
            span,
        }
    }

    /// A header clause, or the pair back if it is a step.
    fn header<'i>(&self, pair: Pair<'i>) -> Result<ast::Header, Pair<'i>> {
        use ast::HeaderKind as H;
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::trigger => {
                let inner = self.children(pair).next().expect("grammar: trigger kind");
                let trigger = match inner.as_rule() {
                    Rule::trigger_event => ast::Trigger::Event(
                        self.event_match(self.children(inner).next().expect("grammar: event")),
                    ),
                    Rule::trigger_schedule => {
                        let mut parts = self.children(inner).peekable();
                        let cron = self.text(parts.next().expect("grammar: cron string"));
                        let tz = parts
                            .next_if(|p| p.as_rule() == Rule::tz_clause)
                            .map(|p| self.tz(p));
                        let audience = parts.next().map(|p| self.expr(p));
                        ast::Trigger::Schedule { cron, tz, audience }
                    }
                    _ => ast::Trigger::Segment(
                        self.ident(self.children(inner).next().expect("grammar: segment name")),
                    ),
                };
                H::Trigger(trigger)
            }
            Rule::audience => {
                H::Audience(self.expr(self.children(pair).next().expect("grammar: audience expr")))
            }
            Rule::entry => {
                let mode = self.children(pair).next().expect("grammar: entry mode");
                H::Entry(match mode.as_rule() {
                    Rule::entry_once => ast::EntryMode::Once,
                    Rule::entry_always => ast::EntryMode::Always,
                    _ => ast::EntryMode::Every(
                        self.duration(self.children(mode).next().expect("grammar: duration")),
                    ),
                })
            }
            Rule::exit_on => {
                H::ExitOn(self.event_match(self.children(pair).next().expect("grammar: event")))
            }
            Rule::exit_if => {
                H::ExitIf(self.expr(self.children(pair).next().expect("grammar: exit expr")))
            }
            Rule::goal => {
                let mut parts = self.children(pair).peekable();
                let event = self.event_name(parts.next().expect("grammar: goal event"));
                let filter = parts
                    .next_if(|p| p.as_rule() == Rule::where_clause)
                    .map(|p| self.where_clause(p));
                let within = self.duration(parts.next().expect("grammar: goal within"));
                let and_continue = parts.next().is_some();
                H::Goal {
                    event: ast::EventMatch { event, filter },
                    within,
                    and_continue,
                }
            }
            Rule::active => H::Active(self.active(pair)),
            Rule::limit => {
                let mut parts = self.children(pair);
                let entries = self.integer(parts.next().expect("grammar: limit count"));
                let per = parts.next().map(|p| self.window(p));
                H::Limit { entries, per }
            }
            Rule::category => {
                H::Category(self.text(self.children(pair).next().expect("grammar: category")))
            }
            Rule::tz_clause => H::Tz(self.tz(pair)),
            Rule::policy_ref => {
                H::Policy(self.ident(self.children(pair).next().expect("grammar: policy name")))
            }
            Rule::transactional => H::Transactional,
            _ => return Err(pair),
        };
        Ok(ast::Header { kind, span })
    }

    pub(super) fn event_match(&self, pair: Pair<'_>) -> ast::EventMatch {
        let mut parts = self.children(pair);
        let event = self.event_name(parts.next().expect("grammar: event name"));
        let filter = parts.next().map(|p| self.where_clause(p));
        ast::EventMatch { event, filter }
    }

    fn where_clause(&self, pair: Pair<'_>) -> ast::Expr {
        self.expr(self.children(pair).next().expect("grammar: where expr"))
    }

    pub(super) fn tz(&self, pair: Pair<'_>) -> ast::Text {
        self.text(self.children(pair).next().expect("grammar: tz string"))
    }

    fn active(&self, pair: Pair<'_>) -> ast::Active {
        let mut parts = self.children(pair);
        let from = self.text(parts.next().expect("grammar: active from"));
        let until = parts.next().map(|p| self.text(p));
        ast::Active { from, until }
    }

    fn task_clause(&self, pair: Pair<'_>) -> ast::TaskClause {
        use ast::TaskClauseKind as T;
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::task_on => {
                T::On(self.event_match(self.children(pair).next().expect("grammar: event")))
            }
            Rule::task_distinct => {
                T::Distinct(self.expr(self.children(pair).next().expect("grammar: distinct expr")))
            }
            Rule::task_count => {
                let mut parts = self.children(pair).peekable();
                let times = self.integer(parts.next().expect("grammar: count"));
                let within = parts
                    .next_if(|p| p.as_rule() == Rule::duration)
                    .map(|p| self.duration(p));
                let reward = self.block(parts.next().expect("grammar: reward block"));
                T::Count {
                    times,
                    within,
                    reward,
                }
            }
            Rule::task_streak => {
                let mut parts = self.children(pair);
                let days = self.integer(parts.next().expect("grammar: streak days"));
                let reward = self.block(parts.next().expect("grammar: reward block"));
                T::Streak { days, reward }
            }
            Rule::task_repeatable => T::Repeatable,
            Rule::task_max => {
                T::MaxPerUser(self.integer(self.children(pair).next().expect("grammar: max")))
            }
            Rule::active => T::Active(self.active(pair)),
            _ => T::Tz(self.tz(pair)),
        };
        ast::TaskClause { kind, span }
    }

    fn policy_clause(&self, pair: Pair<'_>) -> ast::PolicyClause {
        use ast::PolicyClauseKind as P;
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::tz_clause => P::Tz(self.tz(pair)),
            Rule::quiet_hours => {
                let mut parts = self.children(pair);
                let from = self.time_of_day(parts.next().expect("grammar: from"));
                let to = self.time_of_day(parts.next().expect("grammar: to"));
                P::QuietHours { from, to }
            }
            Rule::cap => {
                let mut parts = self.children(pair);
                let limit = self.integer(parts.next().expect("grammar: cap limit"));
                let what = self.ident(parts.next().expect("grammar: cap scope"));
                let per = self.window(parts.next().expect("grammar: cap window"));
                P::Cap { limit, what, per }
            }
            Rule::consent_required => P::ConsentRequired,
            _ => P::OnCapDefer,
        };
        ast::PolicyClause { kind, span }
    }

    fn schema_entry(&self, pair: Pair<'_>) -> ast::SchemaEntry {
        let span = self.span(&pair);
        let is_event = pair.as_rule() == Rule::schema_event;
        let mut parts = self.children(pair).peekable();
        let event = if is_event {
            Some(self.event_name(parts.next().expect("grammar: event name")))
        } else {
            None
        };
        let fields = parts
            .map(|decl| {
                let mut parts = self.children(decl);
                let name = self.ident(parts.next().expect("grammar: field"));
                let ty = self.ident(parts.next().expect("grammar: type"));
                ast::FieldDecl { name, ty }
            })
            .collect();
        ast::SchemaEntry {
            event,
            fields,
            span,
        }
    }

    fn test_stmt(&self, pair: Pair<'_>) -> ast::TestStmt {
        use ast::TestStmtKind as T;
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::test_user => {
                let mut parts = self.children(pair);
                let id = self.text(parts.next().expect("grammar: user id"));
                let traits = parts.next().map(|p| self.record(p));
                T::User { id, traits }
            }
            Rule::test_at => {
                let mut parts = self.children(pair);
                let time = self.text(parts.next().expect("grammar: at time"));
                let event = parts.next().map(|p| self.test_event(p));
                T::At { time, event }
            }
            Rule::test_identify => {
                let mut parts = self.children(pair);
                let id = self.text(parts.next().expect("grammar: user id"));
                let traits = self.record(parts.next().expect("grammar: traits"));
                T::Identify { id, traits }
            }
            Rule::test_advance => {
                T::Advance(self.duration(self.children(pair).next().expect("grammar: duration")))
            }
            Rule::test_event => T::Event(self.test_event(pair)),
            Rule::test_outcome => {
                let mut parts = self.children(pair);
                let outcome = self.ident(parts.next().expect("grammar: outcome"));
                let user = self.text(parts.next().expect("grammar: user id"));
                T::Outcome { outcome, user }
            }
            _ => T::Expect(self.expectation(pair)),
        };
        ast::TestStmt { kind, span }
    }

    fn test_event(&self, pair: Pair<'_>) -> ast::TestEvent {
        let span = self.span(&pair);
        let mut parts = self.children(pair);
        let name = self.event_name(parts.next().expect("grammar: event name"));
        let user = self.text(parts.next().expect("grammar: user id"));
        let props = parts.next().map(|p| self.record(p));
        ast::TestEvent {
            name,
            user,
            props,
            span,
        }
    }

    fn expectation(&self, pair: Pair<'_>) -> ast::Expectation {
        use ast::Expected as E;
        let mut parts = self.children(pair).peekable();
        let negated = parts.next_if(|p| p.as_rule() == Rule::expect_no).is_some();
        let what = parts.next().expect("grammar: expectation");
        let which = what.as_rule();
        let mut inner = self.children(what).peekable();
        let what = match which {
            Rule::expect_send => {
                let channel = inner
                    .next_if(|p| p.as_rule() == Rule::ident)
                    .map(|p| self.ident(p));
                let template = inner.next().map(|p| self.text(p));
                E::Send { channel, template }
            }
            Rule::expect_coupon => E::Coupon(self.text(inner.next().expect("grammar: coupon id"))),
            Rule::expect_points => {
                let (value, text, span) =
                    self.signed_number(inner.next().expect("grammar: points"));
                E::Points { value, text, span }
            }
            Rule::expect_tag => E::Tag(self.text(inner.next().expect("grammar: tag"))),
            Rule::expect_untag => E::Untag(self.text(inner.next().expect("grammar: tag"))),
            Rule::expect_goal => E::Goal(self.ident(inner.next().expect("grammar: journey"))),
            Rule::expect_exit => E::Exit(self.ident(inner.next().expect("grammar: journey"))),
            Rule::expect_enter => E::Enter(self.ident(inner.next().expect("grammar: journey"))),
            Rule::expect_suppressed => E::Suppressed(inner.next().map(|p| self.ident(p))),
            Rule::expect_outcome => E::Outcome(inner.next().map(|p| self.ident(p))),
            Rule::expect_arm => {
                let arm = self.ident(inner.next().expect("grammar: arm"));
                let split = self.ident(inner.next().expect("grammar: split"));
                E::Arm { arm, split }
            }
            _ => E::Reward(self.ident(inner.next().expect("grammar: task"))),
        };
        let user = parts
            .next_if(|p| p.as_rule() == Rule::expect_for)
            .map(|p| self.text(self.children(p).next().expect("grammar: user id")));
        let at = parts
            .next()
            .map(|p| self.text(self.children(p).next().expect("grammar: timestamp")));
        ast::Expectation {
            negated,
            what,
            user,
            at,
        }
    }
}
