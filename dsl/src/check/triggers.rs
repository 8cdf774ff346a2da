//! Declarations missing what they need (E0901, E0902): a journey without a
//! trigger, a task without `on event` or without a `count`/`streak` reward.

use super::Cx;
use crate::ast::{Decl, HeaderKind, TaskClauseKind};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        match decl {
            Decl::Journey(j) if !j.headers.iter().any(|h| matches!(h.kind, HeaderKind::Trigger(_))) => out.push(
                Diagnostic::new(Code::MissingTrigger, j.name.span, format!("journey `{}` has no trigger", j.name.name))
                    .label("no user can ever enter it")
                    .help("add `trigger event NAME`, `trigger schedule \"0 9 * * *\" for SEGMENT` or `trigger segment NAME`"),
            ),
            Decl::Task(t) => {
                if !t.clauses.iter().any(|c| matches!(c.kind, TaskClauseKind::On(_))) {
                    out.push(
                        Diagnostic::new(Code::Incomplete, t.name.span, format!("task `{}` counts no event", t.name.name))
                            .label("missing `on event NAME`"),
                    );
                }
                let rewards = t.clauses.iter().filter(|c| matches!(c.kind, TaskClauseKind::Count { .. } | TaskClauseKind::Streak { .. }));
                match rewards.count() {
                    0 => out.push(
                        Diagnostic::new(Code::Incomplete, t.name.span, format!("task `{}` has no reward", t.name.name))
                            .label("missing `count N { … }` or `streak N days { … }`"),
                    ),
                    1 => {}
                    _ => out.push(
                        Diagnostic::new(Code::Duplicate, t.name.span, format!("task `{}` has more than one reward clause", t.name.name))
                            .label("a task rewards one `count` or one `streak`")
                            .help("make a second task for the second reward"),
                    ),
                }
            }
            _ => {}
        }
    }
}
