//! `repeat` loops that would run too many steps for one event (W0502,
//! E0503). A loop whose body never waits runs every iteration at once, in
//! the writer that every other user's events wait behind; nested loops
//! multiply. Past [`WARN_STEPS`] steps that is a warning; past the engine's
//! per-event step budget ([`STEP_BUDGET`]) the loop can never finish (the
//! engine would stop it with an `error` record), so it is refused. Repeat
//! counts are integer literals in the grammar, so every loop is bounded:
//! these are the only loops there are to refuse.

use super::Cx;
use crate::ast::{Step, StepKind};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::plan::STEP_BUDGET;
use crate::scope::walk;

/// Steps one loop may run for one event before `check` warns.
pub const WARN_STEPS: u64 = 1_000;

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        for block in walk::decl_blocks(decl) {
            find(block, out);
        }
    }
}

/// Reports the outermost loops of `steps` that run too many steps at once.
fn find(steps: &[Step], out: &mut Vec<Diagnostic>) {
    for step in steps {
        if let StepKind::Repeat { times, .. } = &step.kind {
            let cost = steps_of(step);
            if cost > u64::from(STEP_BUDGET) {
                out.push(
                    Diagnostic::new(
                        Code::LoopOverBudget,
                        times.span,
                        format!(
                            "this loop runs {} steps for one event without waiting; the engine stops any event's work at {STEP_BUDGET}",
                            shown(cost)
                        ),
                    )
                    .label(format!("{} times", times.value))
                    .help("repeat fewer times, put a `wait` or `every` in the loop, or use one step for the total (`give points 1000000`)"),
                );
                continue;
            }
            if cost > WARN_STEPS {
                out.push(
                    Diagnostic::new(
                        Code::LongLoop,
                        times.span,
                        format!(
                            "this loop runs {cost} steps for one event without waiting, holding up every other user's events meanwhile"
                        ),
                    )
                    .label(format!("{} times", times.value))
                    .help("repeat fewer times, put a `wait` or `every` in the loop, or use one step for the total"),
                );
                continue;
            }
        }
        for block in walk::child_blocks(step) {
            find(&block.steps, out);
        }
    }
}

fn shown(cost: u64) -> String {
    if cost == u64::MAX {
        "more than 18446744073709551615".into()
    } else {
        cost.to_string()
    }
}

/// The most steps `steps` run for one event, before the first wait.
fn block_steps(steps: &[Step]) -> u64 {
    let mut total: u64 = 0;
    for step in steps {
        total = total.saturating_add(steps_of(step));
        if waits(step) {
            break;
        }
    }
    total
}

/// The most steps one step runs for one event (its blocks included).
fn steps_of(step: &Step) -> u64 {
    let inner = match &step.kind {
        StepKind::Repeat { times, every, body } => {
            if every.is_some() || body.steps.iter().any(waits) {
                // Each iteration after the first runs on its own wake-up.
                1u64.saturating_add(block_steps(&body.steps))
            } else {
                // The engine visits the repeat step once per iteration.
                times
                    .value
                    .saturating_mul(1u64.saturating_add(block_steps(&body.steps)))
            }
        }
        _ => walk::child_blocks(step)
            .iter()
            .map(|b| block_steps(&b.steps))
            .max()
            .unwrap_or(0),
    };
    1u64.saturating_add(inner)
}

/// Whether a step (or any step inside it) may suspend the event's work.
fn waits(step: &Step) -> bool {
    match &step.kind {
        StepKind::Wait(_)
        | StepKind::WaitUntil(_)
        | StepKind::WaitUntilTime { .. }
        | StepKind::WaitFor(_) => true,
        StepKind::Repeat { every: Some(_), .. } => true,
        _ => walk::child_blocks(step)
            .iter()
            .any(|b| b.steps.iter().any(waits)),
    }
}
