//! Top-level declarations and their clauses: journeys and headers, rules,
//! tasks, segments, policies, the schema, consts and test blocks. Each
//! clause is one line; the text of a clause is built here and the printer
//! places it and its comments.

use super::expr::{expr, record, text, time_of_day};
use super::printer::Printer;
use crate::ast::{
    self, Decl, EventMatch, HeaderKind, PolicyClauseKind, TaskClauseKind, TestStmtKind, Window,
};

impl Printer<'_> {
    /// A declaration, after a blank line unless it is the first.
    pub(super) fn decl(&mut self, decl: &Decl, blank: bool) {
        let span = decl.span();
        self.line(span.start as usize, blank);
        let close = span.end as usize - 1;
        match decl {
            Decl::Journey(j) => {
                self.named("journey", &j.name, j.title.as_ref());
                let open = self.brace_after(self.named_end(&j.name, j.title.as_ref()));
                self.braces(
                    open,
                    close,
                    !j.headers.is_empty() || !j.steps.is_empty(),
                    |p| {
                        for header in &j.headers {
                            p.line(header.span.start as usize, false);
                            let line = p.header(&header.kind);
                            p.push(&line);
                            p.ends_at(p.end_of(header.span));
                        }
                        p.steps(&j.steps);
                    },
                );
            }
            Decl::Rule(r) => {
                self.named("rule", &r.name, r.title.as_ref());
                let open = self.brace_after(self.named_end(&r.name, r.title.as_ref()));
                self.braces(open, close, true, |p| {
                    p.line(r.when.event.span.start as usize, false);
                    let when = format!("when {}", p.event_match(&r.when));
                    p.push(&when);
                    p.ends_at(p.event_match_end(&r.when));
                    if let Some(condition) = &r.condition {
                        p.line(condition.span.start as usize, false);
                        let line = format!("if {}", expr(condition, p.src));
                        p.push(&line);
                        p.ends_at(p.end_of(condition.span));
                    }
                    p.line(r.then.span.start as usize, false);
                    p.push("then");
                    p.block(&r.then);
                });
            }
            Decl::Task(t) => {
                self.named("task", &t.name, t.title.as_ref());
                let open = self.brace_after(self.named_end(&t.name, t.title.as_ref()));
                self.braces(open, close, !t.clauses.is_empty(), |p| {
                    for clause in &t.clauses {
                        p.task_clause(clause);
                    }
                });
            }
            Decl::Segment(s) => {
                self.named("segment", &s.name, s.title.as_ref());
                let line = format!(" = {}", expr(&s.expr, self.src));
                self.push(&line);
                self.ends_at(self.end_of(span));
            }
            Decl::Policy(policy) => {
                self.named("policy", &policy.name, None);
                let open = self.brace_after(self.end_of(policy.name.span));
                self.braces(open, close, !policy.clauses.is_empty(), |p| {
                    for clause in &policy.clauses {
                        p.line(clause.span.start as usize, false);
                        let line = p.policy_clause(&clause.kind);
                        p.push(&line);
                        p.ends_at(p.end_of(clause.span));
                    }
                });
            }
            Decl::Schema(schema) => {
                self.push("schema");
                let open = self.brace_after(span.start as usize);
                self.braces(open, close, !schema.entries.is_empty(), |p| {
                    for entry in &schema.entries {
                        p.schema_entry(entry);
                    }
                });
            }
            Decl::Const(c) => {
                let line = format!("const {} = {}", c.name.name, expr(&c.value, self.src));
                self.push(&line);
                self.ends_at(self.end_of(span));
            }
            Decl::Test(t) => {
                let line = format!("test {}", text(&t.name));
                self.push(&line);
                let open = self.brace_after(self.end_of(t.name.span));
                self.braces(open, close, !t.stmts.is_empty(), |p| {
                    for stmt in &t.stmts {
                        p.line(stmt.span.start as usize, false);
                        let line = p.test_stmt(&stmt.kind);
                        p.push(&line);
                        p.ends_at(p.end_of(stmt.span));
                    }
                });
            }
        }
    }

    /// `KEYWORD NAME ["title"]`.
    fn named(&mut self, keyword: &str, name: &ast::Ident, title: Option<&ast::Text>) {
        self.push(keyword);
        self.push(" ");
        self.push(&name.name);
        if let Some(title) = title {
            self.push(" ");
            self.push(&text(title));
        }
    }

    fn named_end(&self, name: &ast::Ident, title: Option<&ast::Text>) -> usize {
        self.end_of(title.map_or(name.span, |t| t.span))
    }

    /// `event E [where EXPR]`.
    pub(super) fn event_match(&self, m: &EventMatch) -> String {
        match &m.filter {
            Some(filter) => format!(
                "event {} where {}",
                super::event_name(&m.event.name),
                expr(filter, self.src)
            ),
            None => format!("event {}", super::event_name(&m.event.name)),
        }
    }

    pub(super) fn event_match_end(&self, m: &EventMatch) -> usize {
        self.end_of(m.filter.as_ref().map_or(m.event.span, |f| f.span))
    }

    /// An integer as its author spelled it (`1_000`), which the tree does not keep.
    pub(super) fn integer(&self, i: &ast::Integer) -> String {
        let written = self
            .src
            .get(i.span.start as usize..i.span.end as usize)
            .unwrap_or("");
        if !written.is_empty() && written.chars().all(|c| c.is_ascii_digit() || c == '_') {
            written.to_string()
        } else {
            i.value.to_string()
        }
    }

    fn header(&self, kind: &HeaderKind) -> String {
        match kind {
            HeaderKind::Trigger(ast::Trigger::Event(m)) => {
                format!("trigger {}", self.event_match(m))
            }
            HeaderKind::Trigger(ast::Trigger::Schedule { cron, tz, audience }) => {
                let mut line = format!("trigger schedule {}", text(cron));
                if let Some(tz) = tz {
                    line += &format!(" tz {}", text(tz));
                }
                if let Some(audience) = audience {
                    line += &format!(" for {}", expr(audience, self.src));
                }
                line
            }
            HeaderKind::Trigger(ast::Trigger::Segment(s)) => format!("trigger segment {}", s.name),
            HeaderKind::Audience(e) => format!("audience {}", expr(e, self.src)),
            HeaderKind::Entry(ast::EntryMode::Once) => "entry once".to_string(),
            HeaderKind::Entry(ast::EntryMode::Always) => "entry always".to_string(),
            HeaderKind::Entry(ast::EntryMode::Every(d)) => format!("entry every {}", d.text),
            HeaderKind::ExitOn(m) => format!("exit on {}", self.event_match(m)),
            HeaderKind::ExitIf(e) => format!("exit if {}", expr(e, self.src)),
            HeaderKind::Goal {
                event,
                within,
                and_continue,
            } => {
                let mut line = format!("goal {}", super::event_name(&event.event.name));
                if let Some(filter) = &event.filter {
                    line += &format!(" where {}", expr(filter, self.src));
                }
                line += &format!(" within {}", within.text);
                if *and_continue {
                    line += " and continue";
                }
                line
            }
            HeaderKind::Active(a) => active(a),
            HeaderKind::Limit { entries, per } => {
                let mut line = format!("limit {} entries", self.integer(entries));
                if let Some(per) = per {
                    line += &format!(" per {}", window(per));
                }
                line
            }
            HeaderKind::Category(c) => format!("category {}", text(c)),
            HeaderKind::Tz(tz) => format!("tz {}", text(tz)),
            HeaderKind::Policy(p) => format!("policy {}", p.name),
            HeaderKind::Transactional => "transactional".to_string(),
        }
    }

    fn task_clause(&mut self, clause: &ast::TaskClause) {
        self.line(clause.span.start as usize, false);
        let (line, reward) = match &clause.kind {
            TaskClauseKind::On(m) => (format!("on {}", self.event_match(m)), None),
            TaskClauseKind::Distinct(e) => (format!("distinct {}", expr(e, self.src)), None),
            TaskClauseKind::Count {
                times,
                within,
                reward,
            } => {
                let mut line = format!("count {}", self.integer(times));
                if let Some(within) = within {
                    line += &format!(" within {}", within.text);
                }
                (line, Some(reward))
            }
            TaskClauseKind::Streak { days, reward } => {
                (format!("streak {} days", self.integer(days)), Some(reward))
            }
            TaskClauseKind::Repeatable => ("repeatable".to_string(), None),
            TaskClauseKind::MaxPerUser(n) => (format!("max {} per user", self.integer(n)), None),
            TaskClauseKind::Active(a) => (active(a), None),
            TaskClauseKind::Tz(tz) => (format!("tz {}", text(tz)), None),
        };
        self.push(&line);
        match reward {
            Some(block) => self.block(block),
            None => self.ends_at(self.end_of(clause.span)),
        }
    }

    fn schema_entry(&mut self, entry: &ast::SchemaEntry) {
        self.line(entry.span.start as usize, false);
        let from = match &entry.event {
            Some(event) => {
                self.push("event ");
                self.push(&super::event_name(&event.name));
                self.end_of(event.span)
            }
            None => {
                self.push("user");
                entry.span.start as usize
            }
        };
        let open = self.brace_after(from);
        self.braces(
            open,
            entry.span.end as usize - 1,
            !entry.fields.is_empty(),
            |p| {
                for field in &entry.fields {
                    p.line(field.name.span.start as usize, false);
                    let line = format!("{}: {}", field.name.name, field.ty.name);
                    p.push(&line);
                    p.ends_at(field.ty.span.end as usize);
                }
            },
        );
    }

    fn test_stmt(&self, kind: &TestStmtKind) -> String {
        match kind {
            TestStmtKind::User { id, traits } => {
                let mut line = format!("user {}", text(id));
                if let Some(traits) = traits {
                    line += " ";
                    line += &record(traits, self.src);
                }
                line
            }
            TestStmtKind::At { time, event } => {
                let mut line = format!("at {}", text(time));
                if let Some(event) = event {
                    line += " ";
                    line += &self.test_event(event);
                }
                line
            }
            TestStmtKind::Advance(d) => format!("advance {}", d.text),
            TestStmtKind::Identify { id, traits } => {
                format!("identify {} {}", text(id), record(traits, self.src))
            }
            TestStmtKind::Event(event) => self.test_event(event),
            TestStmtKind::Outcome { outcome, user } => {
                format!("outcome {} for {}", outcome.name, text(user))
            }
            TestStmtKind::Expect(e) => {
                let mut line = String::from("expect ");
                if e.negated {
                    line += "no ";
                }
                line += &expected(&e.what);
                if let Some(user) = &e.user {
                    line += &format!(" for {}", text(user));
                }
                if let Some(at) = &e.at {
                    line += &format!(" at {}", text(at));
                }
                line
            }
        }
    }

    fn policy_clause(&self, kind: &PolicyClauseKind) -> String {
        match kind {
            PolicyClauseKind::Tz(tz) => format!("tz {}", text(tz)),
            PolicyClauseKind::QuietHours { from, to } => {
                format!(
                    "quiet hours {} to {}",
                    time_of_day(from.minutes),
                    time_of_day(to.minutes)
                )
            }
            PolicyClauseKind::Cap { limit, what, per } => {
                format!(
                    "cap {} {} per {}",
                    self.integer(limit),
                    what.name,
                    window(per)
                )
            }
            PolicyClauseKind::ConsentRequired => "consent required".to_string(),
            PolicyClauseKind::OnCapDefer => "on cap defer".to_string(),
        }
    }

    fn test_event(&self, event: &ast::TestEvent) -> String {
        let mut line = format!(
            "event {} for {}",
            super::event_name(&event.name.name),
            text(&event.user)
        );
        if let Some(props) = &event.props {
            line += " ";
            line += &record(props, self.src);
        }
        line
    }
}

fn active(a: &ast::Active) -> String {
    match &a.until {
        Some(until) => format!("active from {} until {}", text(&a.from), text(until)),
        None => format!("active from {}", text(&a.from)),
    }
}

fn window(w: &Window) -> String {
    match w {
        Window::Rolling(d) => d.text.clone(),
        Window::Calendar(ast::CalendarPeriod::Day, _) => "day".to_string(),
        Window::Calendar(ast::CalendarPeriod::Week, _) => "week".to_string(),
        Window::Calendar(ast::CalendarPeriod::Month, _) => "month".to_string(),
    }
}

fn expected(what: &ast::Expected) -> String {
    use ast::Expected as E;
    match what {
        E::Send { channel, template } => {
            let mut out = String::from("send");
            if let Some(channel) = channel {
                out += " ";
                out += &channel.name;
            }
            if let Some(template) = template {
                out += &format!(" template {}", text(template));
            }
            out
        }
        E::Coupon(c) => format!("coupon {}", text(c)),
        E::Points { text, .. } => format!("points {text}"),
        E::Tag(t) => format!("tag {}", text(t)),
        E::Untag(t) => format!("untag {}", text(t)),
        E::Goal(j) => format!("goal {}", j.name),
        E::Exit(j) => format!("exit {}", j.name),
        E::Enter(j) => format!("enter {}", j.name),
        E::Suppressed(Some(reason)) => format!("suppressed {}", reason.name),
        E::Suppressed(None) => "suppressed".to_string(),
        E::Outcome(Some(outcome)) => format!("outcome {}", outcome.name),
        E::Outcome(None) => "outcome".to_string(),
        E::Reward(t) => format!("reward {}", t.name),
        E::Arm { arm, split } => format!("arm {} of {}", arm.name, split.name),
    }
}
