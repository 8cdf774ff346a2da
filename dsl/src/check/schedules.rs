//! Cron lines and time zones (E0601, E0602): every `trigger schedule` line
//! goes through the same normalising layer the engine uses, and every `tz`
//! names an IANA zone.

use super::Cx;
use crate::ast::{self, Decl, HeaderKind, PolicyClauseKind, StepKind, TaskClauseKind};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::schedule::{CronSchedule, parse_time_zone};
use crate::scope::walk;
use crate::source::Span;

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        match decl {
            Decl::Journey(j) => {
                for header in &j.headers {
                    match &header.kind {
                        HeaderKind::Trigger(ast::Trigger::Schedule { cron, tz, .. }) => {
                            if let Err(e) = CronSchedule::parse(&cron.value) {
                                let span = inner_span(cx, cron, e.span.clone());
                                out.push(
                                    Diagnostic::new(Code::BadCron, span, format!("invalid schedule: {}", e.message))
                                        .label("here")
                                        .help("5 fields: minute hour day-of-month month day-of-week (0 and 7 are Sunday, 1 is Monday), e.g. \"0 9 * * 1\" for Mondays at 09:00"),
                                );
                            }
                            if let Some(tz) = tz {
                                zone(tz, out);
                            }
                        }
                        HeaderKind::Tz(tz) => zone(tz, out),
                        _ => {}
                    }
                }
            }
            Decl::Task(t) => {
                for clause in &t.clauses {
                    if let TaskClauseKind::Tz(tz) = &clause.kind {
                        zone(tz, out);
                    }
                }
            }
            Decl::Policy(p) => {
                for clause in &p.clauses {
                    if let PolicyClauseKind::Tz(tz) = &clause.kind {
                        zone(tz, out);
                    }
                }
            }
            _ => {}
        }
    }
    walk::for_each_step(cx.files, |step| {
        if let StepKind::WaitUntilTime { tz: Some(tz), .. } = &step.kind {
            zone(tz, out);
        }
    });
}

fn zone(tz: &ast::Text, out: &mut Vec<Diagnostic>) {
    if let Err(e) = parse_time_zone(&tz.value) {
        let mut d =
            Diagnostic::new(Code::BadTimeZone, tz.span, e.message).label("not an IANA time zone");
        d = d.help(match e.suggestion {
            Some(s) => format!("did you mean \"{s}\"?"),
            None => "write a zone such as \"Asia/Shanghai\"".to_string(),
        });
        out.push(d);
    }
}

/// Narrows a span to a byte range inside a string literal, when the
/// literal's source is its value verbatim (no escapes).
fn inner_span(cx: &Cx<'_>, text: &ast::Text, range: Option<std::ops::Range<usize>>) -> Span {
    let Some(range) = range else { return text.span };
    let quote = if text.triple { 3 } else { 1 };
    let source = cx.sources.slice(text.span);
    if source.len() >= 2 * quote && source[quote..source.len() - quote] == text.value {
        let start = text.span.start as usize + quote;
        Span::new(
            text.span.file,
            start + range.start,
            start + range.end.max(range.start + 1),
        )
    } else {
        text.span
    }
}
