//! `wait for confirmation` waits on the outcome of a `send` that a staff
//! member confirms: the nearest `send` before it in its block or an
//! enclosing one ([`walk::confirmations`]). Without one it has nothing to
//! confirm (E0108); with a config, that send's channel must be one whose
//! kind staff confirm, a WeCom customer mass send (E1006).

use super::Cx;
use crate::ast::{self, StepKind};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::scope::walk;

/// Each `wait for confirmation` of the deployment with the send it waits
/// on, and every `send` of its declaration (source order).
fn each<'a>(
    cx: &Cx<'a>,
    mut f: impl FnMut(&'a ast::Step, Option<&'a ast::Step>, &[&'a ast::Step]),
) {
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        let mut sends = Vec::new();
        let mut waits = Vec::new();
        for block in walk::decl_blocks(decl) {
            collect_sends(block, &mut sends);
            walk::confirmations(block, None, &mut |wait, send| waits.push((wait, send)));
        }
        for (wait, send) in waits {
            f(wait, send, &sends);
        }
    }
}

fn collect_sends<'a>(steps: &'a [ast::Step], out: &mut Vec<&'a ast::Step>) {
    for step in steps {
        if matches!(step.kind, StepKind::Send { .. }) {
            out.push(step);
        }
        for block in walk::child_blocks(step) {
            collect_sends(&block.steps, out);
        }
    }
}

/// E0108: a `wait for confirmation` with no `send` before it to wait on.
pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    each(cx, |wait, send, sends| {
        if send.is_some() {
            return;
        }
        let mut d = Diagnostic::new(
            Code::NothingToConfirm,
            wait.span,
            "`wait for confirmation` waits on the nearest `send` before it in its block or an enclosing one, and there is none",
        )
        .label("nothing to confirm");
        // The send the author likely meant: the last one written before
        // the wait, inside a block that may not have run.
        if let Some(nested) = sends
            .iter()
            .rev()
            .find(|s| s.span.file == wait.span.file && s.span.end <= wait.span.start)
        {
            d = d.also(
                nested.span,
                "inside another step's block: it may not have run, so it does not count",
            );
        }
        out.push(d.help(
            "put the `wait for confirmation` after the `send` it is about, in the same block",
        ));
    });
}

/// E1006: with a config, a `wait for confirmation` whose send is on a
/// channel that no staff member confirms. An unknown channel is E0104's.
pub fn staff(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    let Some(catalog) = cx.channels else { return };
    each(cx, |wait, send, _| {
        let Some(send) = send else { return };
        let StepKind::Send { channel, .. } = &send.kind else {
            return;
        };
        let Some(spec) = catalog.get(&channel.name) else {
            return;
        };
        if spec.confirmed_by_staff {
            return;
        }
        out.push(
            Diagnostic::new(
                Code::NotConfirmedByStaff,
                wait.span,
                format!(
                    "`wait for confirmation` waits on a send on `{}` (kind `{}`), which no staff member confirms",
                    channel.name, spec.kind
                ),
            )
            .label("no confirmation to wait for: this could only time out")
            .also(send.span, "the send it waits on")
            .help("only a channel whose kind is confirmed by staff (WeCom `wecom_mass`) has a confirmation to wait for: send on one before the wait, or wait for an event or a time instead"),
        );
    });
}
