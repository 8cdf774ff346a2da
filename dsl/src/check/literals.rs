//! Values the grammar accepts but the meaning rules out (E0903, E0904,
//! E0002): consts and test data that are not literals, zero counts and
//! windows, quiet hours that start when they end, a test's outcome that is
//! not one a staff-confirmed send can have, timestamps that are not
//! RFC 3339.

use super::Cx;
use crate::ast::{self, Decl, HeaderKind, PolicyClauseKind, StepKind, TaskClauseKind};
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, closest};
use crate::scope::walk::{self, Role, Scope, Visitor};
use crate::scope::{is_literal, parse_timestamp};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    struct Literals<'o>(&'o mut Vec<Diagnostic>);
    impl<'a> Visitor<'a> for Literals<'_> {
        fn expr(&mut self, expr: &'a ast::Expr, role: Role, scope: &Scope<'a>) {
            if role == Role::Literal && !is_literal(expr) {
                let what = if matches!(scope.owner, walk::Owner::Const(_)) {
                    "a const"
                } else {
                    "test data"
                };
                self.0.push(
                    Diagnostic::new(Code::NotLiteral, expr.span, format!("{what} must be a literal"))
                        .label("computed here")
                        .help("use a number, string, bool, null, duration, time of day, or a list or record of those"),
                );
            }
        }
    }
    walk::walk(cx.files, &mut Literals(out));

    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        match decl {
            Decl::Journey(j) => {
                for header in &j.headers {
                    match &header.kind {
                        HeaderKind::Entry(ast::EntryMode::Every(d)) => {
                            positive_duration(d, "`entry every`", out)
                        }
                        HeaderKind::Goal { within, .. } => {
                            positive_duration(within, "a goal window", out)
                        }
                        HeaderKind::Limit { entries, per } => {
                            positive(entries, "a limit", out);
                            if let Some(ast::Window::Rolling(d)) = per {
                                positive_duration(d, "a limit window", out);
                            }
                        }
                        HeaderKind::Active(a) => active(a, out),
                        _ => {}
                    }
                }
            }
            Decl::Task(t) => {
                for clause in &t.clauses {
                    match &clause.kind {
                        TaskClauseKind::Count { times, within, .. } => {
                            positive(times, "a count", out);
                            if let Some(d) = within {
                                positive_duration(d, "a count window", out);
                            }
                        }
                        TaskClauseKind::Streak { days, .. } => positive(days, "a streak", out),
                        TaskClauseKind::MaxPerUser(n) => positive(n, "`max … per user`", out),
                        TaskClauseKind::Active(a) => active(a, out),
                        _ => {}
                    }
                }
            }
            Decl::Policy(p) => {
                for clause in &p.clauses {
                    match &clause.kind {
                        PolicyClauseKind::QuietHours { from, to } if from.minutes == to.minutes => out.push(
                            Diagnostic::new(Code::BadValue, clause.span, "quiet hours start and end at the same time")
                                .label("an empty window")
                                .help("quiet hours run from the first time to the second, e.g. `quiet hours 22:00 to 08:00`"),
                        ),
                        PolicyClauseKind::Cap { limit, per, .. } => {
                            positive(limit, "a cap", out);
                            if let ast::Window::Rolling(d) = per {
                                positive_duration(d, "a cap window", out);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Decl::Test(t) => {
                for stmt in &t.stmts {
                    match &stmt.kind {
                        ast::TestStmtKind::At { time, .. } => timestamp(time, out),
                        ast::TestStmtKind::Outcome { outcome, .. } => send_outcome(outcome, out),
                        ast::TestStmtKind::Expect(e) => {
                            if let ast::Expected::Outcome(Some(outcome)) = &e.what {
                                send_outcome(outcome, out);
                            }
                            if let Some(at) = &e.at {
                                timestamp(at, out);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    walk::for_each_step(cx.files, |step| match &step.kind {
        StepKind::Repeat { times, every, .. } => {
            positive(times, "`repeat`", out);
            if let Some(d) = every {
                positive_duration(d, "`every`", out);
            }
        }
        StepKind::WaitFor(wait) => positive_duration(&wait.within, "`within`", out),
        _ => {}
    });
}

fn positive(n: &ast::Integer, what: &str, out: &mut Vec<Diagnostic>) {
    if n.value == 0 {
        out.push(
            Diagnostic::new(
                Code::BadValue,
                n.span,
                format!("{what} of 0 never lets anything happen"),
            )
            .label("must be at least 1"),
        );
    }
}

fn positive_duration(d: &ast::DurationLit, what: &str, out: &mut Vec<Diagnostic>) {
    if d.seconds == 0 {
        out.push(
            Diagnostic::new(Code::BadValue, d.span, format!("{what} of zero length"))
                .label("must be longer than 0s"),
        );
    }
}

fn active(a: &ast::Active, out: &mut Vec<Diagnostic>) {
    timestamp(&a.from, out);
    if let Some(until) = &a.until {
        timestamp(until, out);
        if let (Some(from), Some(to)) = (
            parse_timestamp(&a.from.value),
            parse_timestamp(&until.value),
        ) && to <= from
        {
            out.push(
                Diagnostic::new(
                    Code::BadValue,
                    until.span,
                    "the campaign window ends before it starts",
                )
                .label("`until` is not after `from`")
                .also(a.from.span, "starts here"),
            );
        }
    }
}

/// A test's `outcome WORD`: one of the outcomes a platform reports for a
/// send a staff member confirms.
fn send_outcome(word: &ast::Ident, out: &mut Vec<Diagnostic>) {
    if ast::SEND_OUTCOMES.contains(&word.name.as_str()) {
        return;
    }
    let mut allowed: Vec<String> = ast::SEND_OUTCOMES
        .iter()
        .map(|o| format!("`{o}`"))
        .collect();
    let last = allowed.pop().unwrap_or_default();
    let allowed = format!("{} or {last}", allowed.join(", "));
    let mut d = Diagnostic::new(
        Code::BadValue,
        word.span,
        format!(
            "`{}` is not an outcome of a staff-confirmed send",
            word.name
        ),
    )
    .label("not an outcome");
    d = d.help(
        match closest(&word.name, ast::SEND_OUTCOMES.iter().copied()) {
            Some(near) => format!("did you mean `{near}`? the outcomes are {allowed}"),
            None => format!("the outcomes are {allowed}"),
        },
    );
    out.push(d);
}

fn timestamp(text: &ast::Text, out: &mut Vec<Diagnostic>) {
    if parse_timestamp(&text.value).is_none() {
        out.push(
            Diagnostic::new(Code::BadLiteral, text.span, format!("`{}` is not a timestamp", text.value))
                .label("not a date or an RFC 3339 timestamp")
                .help("two forms are accepted: a date, \"YYYY-MM-DD\" (e.g. \"2025-11-11\"), meaning midnight in the journey's or task's `tz`, else its policy's, else UTC; or an RFC 3339 timestamp with seconds and an offset, \"YYYY-MM-DDTHH:MM:SS+HH:MM\" or \"…Z\" (e.g. \"2025-11-10T20:00:00+08:00\")"),
        );
    }
}
