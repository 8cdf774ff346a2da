//! Steps in places that cannot hold them (E0905): rules and task rewards
//! run to completion when their event arrives, so they cannot wait.

use super::Cx;
use crate::ast::{self, Decl, StepKind};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::scope::walk;

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        let what = match decl {
            Decl::Rule(_) => "a rule",
            Decl::Task(_) => "a task reward",
            _ => continue,
        };
        for steps in walk::decl_blocks(decl) {
            no_waits(steps, what, out);
        }
    }
}

fn no_waits(steps: &[ast::Step], what: &str, out: &mut Vec<Diagnostic>) {
    for step in steps {
        if matches!(
            step.kind,
            StepKind::Wait(_)
                | StepKind::WaitUntil(_)
                | StepKind::WaitUntilTime { .. }
                | StepKind::WaitFor(_)
        ) || matches!(&step.kind, StepKind::Repeat { every: Some(_), .. })
        {
            out.push(
                Diagnostic::new(Code::NotAllowedHere, step.span, format!("{what} cannot wait"))
                    .label("waits here")
                    .help("move the waiting steps into a journey, and `emit` an event from here to start it"),
            );
        }
        for block in walk::child_blocks(step) {
            no_waits(&block.steps, what, out);
        }
    }
}
