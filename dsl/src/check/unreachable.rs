//! Steps that can never run (W0501): anything after an `exit`, or after a
//! step every path of which exits (an `if` with an `else`, a split whose
//! arms all exit).

use super::Cx;
use crate::ast::{self, StepKind};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::scope::walk;

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        for steps in walk::decl_blocks(decl) {
            block(steps, out);
        }
    }
}

fn block(steps: &[ast::Step], out: &mut Vec<Diagnostic>) {
    let mut reported = false;
    for (i, step) in steps.iter().enumerate() {
        for child in walk::child_blocks(step) {
            block(&child.steps, out);
        }
        if !reported && always_exits(step) && i + 1 < steps.len() {
            let next = &steps[i + 1];
            let last = steps.last().expect("non-empty");
            out.push(
                Diagnostic::new(
                    Code::Unreachable,
                    next.span.to(last.span),
                    "these steps can never run",
                )
                .label("unreachable")
                .also(step.span, "every path through this step leaves the journey"),
            );
            reported = true;
        }
    }
}

/// Every path through the step ends in `exit`.
pub fn always_exits(step: &ast::Step) -> bool {
    let block_exits = |b: &ast::Block| b.steps.iter().any(always_exits);
    match &step.kind {
        StepKind::Exit => true,
        StepKind::If {
            branches,
            otherwise: Some(other),
        } => branches.iter().all(|(_, b)| block_exits(b)) && block_exits(other),
        StepKind::Split { arms, .. } => {
            !arms.is_empty() && arms.iter().all(|a| block_exits(&a.body))
        }
        StepKind::WaitFor(ast::WaitFor {
            on_event: Some(a),
            on_timeout: Some(b),
            ..
        }) => block_exits(a) && block_exits(b),
        _ => false,
    }
}
