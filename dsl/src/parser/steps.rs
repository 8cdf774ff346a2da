//! Journey steps and blocks.

use super::{Builder, Pair, Rule};
use crate::ast::{self, StepKind};

impl Builder<'_> {
    pub(super) fn block(&self, pair: Pair<'_>) -> ast::Block {
        let span = self.span(&pair);
        self.nested(
            span,
            || ast::Block {
                steps: Vec::new(),
                span,
            },
            || ast::Block {
                steps: self.children(pair).map(|p| self.step(p)).collect(),
                span,
            },
        )
    }

    pub(super) fn step(&self, pair: Pair<'_>) -> ast::Step {
        let span = self.span(&pair);
        let which = pair.as_rule();
        let mut parts = self.children(pair).peekable();
        let kind = match which {
            Rule::send => {
                let channel = self.ident(parts.next().expect("grammar: channel"));
                let template = parts
                    .next_if(|p| p.as_rule() == Rule::string)
                    .map(|p| self.text(p));
                let staff = parts
                    .next_if(|p| p.as_rule() == Rule::via_staff)
                    .map(|p| self.expr(self.children(p).next().expect("grammar: staff expr")));
                let fields = parts.next().map(|p| self.record(p));
                StepKind::Send {
                    channel,
                    template,
                    staff,
                    fields,
                }
            }
            Rule::wait_duration => {
                StepKind::Wait(self.duration(parts.next().expect("grammar: duration")))
            }
            Rule::wait_until_time => {
                let time = self.time_of_day(parts.next().expect("grammar: time"));
                let tz = parts.next().map(|p| self.tz(p));
                StepKind::WaitUntilTime { time, tz }
            }
            Rule::wait_until => {
                StepKind::WaitUntil(self.expr(parts.next().expect("grammar: until expr")))
            }
            Rule::wait_for => StepKind::WaitFor(ast::WaitFor {
                awaited: {
                    let awaited = parts.next().expect("grammar: event or confirmation");
                    if awaited.as_rule() == Rule::confirmation {
                        ast::Awaited::Confirmation(self.span(&awaited))
                    } else {
                        ast::Awaited::Event(self.event_match(awaited))
                    }
                },
                within: self.duration(parts.next().expect("grammar: within")),
                bind: parts
                    .next_if(|p| p.as_rule() == Rule::binding)
                    .map(|p| self.ident(self.children(p).next().expect("grammar: name"))),
                on_event: parts
                    .next_if(|p| p.as_rule() == Rule::block)
                    .map(|p| self.block(p)),
                on_timeout: parts
                    .next()
                    .map(|p| self.block(self.children(p).next().expect("grammar: else block"))),
            }),
            Rule::if_step => {
                let cond = self.expr(parts.next().expect("grammar: condition"));
                let then = self.block(parts.next().expect("grammar: then block"));
                let mut branches = vec![(cond, then)];
                let mut otherwise = None;
                for part in parts {
                    let is_else_if = part.as_rule() == Rule::else_if;
                    let mut inner = self.children(part);
                    if is_else_if {
                        let cond = self.expr(inner.next().expect("grammar: condition"));
                        branches.push((cond, self.block(inner.next().expect("grammar: block"))));
                    } else {
                        otherwise = Some(self.block(inner.next().expect("grammar: else block")));
                    }
                }
                StepKind::If {
                    branches,
                    otherwise,
                }
            }
            Rule::split => {
                let name = self.ident(parts.next().expect("grammar: split name"));
                let arms = parts
                    .map(|arm| {
                        let mut inner = self.children(arm);
                        let percent = inner.next().expect("grammar: percent");
                        let percent_span = self.span(&percent);
                        let text = percent.as_str().to_string();
                        let value = super::expr::parse_decimal(text.trim_end_matches('%'))
                            .unwrap_or_default();
                        let name = self.ident(inner.next().expect("grammar: arm name"));
                        let body = self.block(inner.next().expect("grammar: arm block"));
                        ast::SplitArm {
                            percent: ast::Percent {
                                value,
                                text,
                                span: percent_span,
                            },
                            name,
                            body,
                        }
                    })
                    .collect();
                StepKind::Split { name, arms }
            }
            Rule::give_coupon => {
                let coupon = self.text(parts.next().expect("grammar: coupon id"));
                let expiry = parts
                    .next_if(|p| matches!(p.as_rule(), Rule::expires_in | Rule::expires_at))
                    .map(|p| {
                        let is_in = p.as_rule() == Rule::expires_in;
                        let inner = self.children(p).next().expect("grammar: expiry");
                        if is_in {
                            ast::CouponExpiry::In(self.duration(inner))
                        } else {
                            ast::CouponExpiry::At(self.expr(inner))
                        }
                    });
                let fields = parts
                    .next_if(|p| p.as_rule() == Rule::record)
                    .map(|p| self.record(p));
                let bind = parts
                    .next()
                    .map(|p| self.ident(self.children(p).next().expect("grammar: name")));
                StepKind::GiveCoupon {
                    coupon,
                    expiry,
                    fields,
                    bind,
                }
            }
            Rule::give_points => {
                let amount = self.expr(parts.next().expect("grammar: amount"));
                let reason = parts
                    .next_if(|p| p.as_rule() == Rule::reason)
                    .map(|p| self.reason(p));
                let expires_in = parts
                    .next()
                    .map(|p| self.duration(self.children(p).next().expect("grammar: duration")));
                StepKind::GivePoints {
                    amount,
                    reason,
                    expires_in,
                }
            }
            Rule::take_points => {
                let amount = self.expr(parts.next().expect("grammar: amount"));
                let reason = parts.next().map(|p| self.reason(p));
                StepKind::TakePoints { amount, reason }
            }
            Rule::tag => StepKind::Tag(self.text(parts.next().expect("grammar: tag"))),
            Rule::untag => StepKind::Untag(self.text(parts.next().expect("grammar: tag"))),
            Rule::set => {
                let path = self.user_path(parts.next().expect("grammar: path"));
                let value = self.expr(parts.next().expect("grammar: value"));
                StepKind::Set { path, value }
            }
            Rule::unset => StepKind::Unset(self.user_path(parts.next().expect("grammar: path"))),
            Rule::emit => {
                let event = self.event_name(parts.next().expect("grammar: event"));
                let fields = parts.next().map(|p| self.record(p));
                StepKind::Emit { event, fields }
            }
            Rule::repeat => {
                let times = self.integer(parts.next().expect("grammar: times"));
                let every = parts
                    .next_if(|p| p.as_rule() == Rule::duration)
                    .map(|p| self.duration(p));
                let body = self.block(parts.next().expect("grammar: body"));
                StepKind::Repeat { times, every, body }
            }
            Rule::exit_step => StepKind::Exit,
            other => unreachable!("grammar: unexpected step {other:?}"),
        };
        ast::Step { kind, span }
    }

    fn reason(&self, pair: Pair<'_>) -> ast::Text {
        self.text(self.children(pair).next().expect("grammar: reason string"))
    }

    fn user_path(&self, pair: Pair<'_>) -> ast::UserPath {
        let span = self.span(&pair);
        let fields = self.children(pair).map(|p| self.ident(p)).collect();
        ast::UserPath { fields, span }
    }
}
