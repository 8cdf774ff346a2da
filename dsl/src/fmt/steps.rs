//! Journey steps and blocks. A step is one line; a step with blocks opens
//! them at the end of its line and closes them on lines of their own, with
//! `} else {` kept together.

use super::expr::{expr, record, starts_with_bare_time, text, time_of_day};
use super::printer::Printer;
use crate::ast::{Awaited, Block, CouponExpiry, Step, StepKind};

impl Printer<'_> {
    pub(super) fn steps(&mut self, steps: &[Step]) {
        for step in steps {
            self.step(step);
        }
    }

    /// ` { … }` after the current line's text.
    pub(super) fn block(&mut self, block: &Block) {
        let (open, close) = (block.span.start as usize, block.span.end as usize - 1);
        self.braces(open, close, !block.steps.is_empty(), |p| {
            p.steps(&block.steps)
        });
    }

    fn step(&mut self, step: &Step) {
        self.line(step.span.start as usize, false);
        let src = self.src;
        match &step.kind {
            StepKind::WaitFor(wait) => {
                let awaited = match &wait.awaited {
                    Awaited::Event(m) => self.event_match(m),
                    Awaited::Confirmation(_) => "confirmation".to_string(),
                };
                let mut line = format!("wait for {awaited} within {}", wait.within.text);
                if let Some(bind) = &wait.bind {
                    line += &format!(" as {}", bind.name);
                }
                self.push(&line);
                if wait.on_event.is_none() && wait.on_timeout.is_none() {
                    self.ends_at(self.end_of(step.span));
                }
                if let Some(block) = &wait.on_event {
                    self.block(block);
                }
                if let Some(block) = &wait.on_timeout {
                    self.push(" else");
                    self.block(block);
                }
            }
            StepKind::If {
                branches,
                otherwise,
            } => {
                for (i, (condition, block)) in branches.iter().enumerate() {
                    let keyword = if i == 0 { "if " } else { " else if " };
                    self.push(keyword);
                    self.push(&expr(condition, src));
                    self.block(block);
                }
                if let Some(block) = otherwise {
                    self.push(" else");
                    self.block(block);
                }
            }
            StepKind::Split { name, arms } => {
                self.push("split ");
                self.push(&name.name);
                let open = self.brace_after(self.end_of(name.span));
                self.braces(open, step.span.end as usize - 1, !arms.is_empty(), |p| {
                    for arm in arms {
                        p.line(arm.percent.span.start as usize, false);
                        let line = format!("{} {}", arm.percent.text, arm.name.name);
                        p.push(&line);
                        p.block(&arm.body);
                    }
                });
            }
            StepKind::Repeat { times, every, body } => {
                let mut line = format!("repeat {} times", self.integer(times));
                if let Some(every) = every {
                    line += &format!(" every {}", every.text);
                }
                self.push(&line);
                self.block(body);
            }
            kind => {
                let line = self.simple_step(kind);
                self.push(&line);
                self.ends_at(self.end_of(step.span));
            }
        }
    }

    /// The text of a step without blocks.
    fn simple_step(&self, kind: &StepKind) -> String {
        let src = self.src;
        match kind {
            StepKind::Send {
                channel,
                template,
                staff,
                fields,
            } => {
                let mut line = format!("send {}", channel.name);
                if let Some(template) = template {
                    line += &format!(" template {}", text(template));
                }
                if let Some(staff) = staff {
                    line += &format!(" via staff {}", expr(staff, src));
                }
                if let Some(fields) = fields {
                    line += " ";
                    line += &record(fields, src);
                }
                line
            }
            StepKind::Wait(d) => format!("wait {}", d.text),
            StepKind::WaitUntilTime { time, tz } => match tz {
                Some(tz) => format!("wait until {} tz {}", time_of_day(time.minutes), text(tz)),
                None => format!("wait until {}", time_of_day(time.minutes)),
            },
            StepKind::WaitUntil(e) if starts_with_bare_time(e) => {
                format!("wait until ({})", expr(e, src))
            }
            StepKind::WaitUntil(e) => format!("wait until {}", expr(e, src)),
            StepKind::GiveCoupon {
                coupon,
                expiry,
                fields,
                bind,
            } => {
                let mut line = format!("give coupon {}", text(coupon));
                match expiry {
                    Some(CouponExpiry::In(d)) => line += &format!(" expires in {}", d.text),
                    Some(CouponExpiry::At(e)) => line += &format!(" expires at {}", expr(e, src)),
                    None => {}
                }
                if let Some(fields) = fields {
                    line += " ";
                    line += &record(fields, src);
                }
                if let Some(bind) = bind {
                    line += &format!(" as {}", bind.name);
                }
                line
            }
            StepKind::GivePoints {
                amount,
                reason,
                expires_in,
            } => {
                let mut line = format!("give points {}", expr(amount, src));
                if let Some(reason) = reason {
                    line += &format!(" reason {}", text(reason));
                }
                if let Some(d) = expires_in {
                    line += &format!(" expires in {}", d.text);
                }
                line
            }
            StepKind::TakePoints { amount, reason } => match reason {
                Some(reason) => {
                    format!("take points {} reason {}", expr(amount, src), text(reason))
                }
                None => format!("take points {}", expr(amount, src)),
            },
            StepKind::Tag(t) => format!("tag {}", text(t)),
            StepKind::Untag(t) => format!("untag {}", text(t)),
            StepKind::Set { path, value } => {
                format!("set {} = {}", user_path(path), expr(value, src))
            }
            StepKind::Unset(path) => format!("unset {}", user_path(path)),
            StepKind::Emit { event, fields } => match fields {
                Some(fields) => format!(
                    "emit {} {}",
                    super::event_name(&event.name),
                    record(fields, src)
                ),
                None => format!("emit {}", super::event_name(&event.name)),
            },
            StepKind::Exit => "exit".to_string(),
            StepKind::WaitFor(_)
            | StepKind::If { .. }
            | StepKind::Split { .. }
            | StepKind::Repeat { .. } => {
                unreachable!("steps with blocks are printed by `step`")
            }
        }
    }
}

fn user_path(path: &crate::ast::UserPath) -> String {
    let mut out = String::from("user");
    for field in &path.fields {
        out.push('.');
        out.push_str(&field.name);
    }
    out
}
