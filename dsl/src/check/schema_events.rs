//! Triggers on events the schema does not declare (W0302). Once a
//! `schema` declares events, an event it does not list is most often a
//! misspelling (`order_payed`), and such a trigger would silently never
//! fire. Journey triggers, rule `when` and task `on` are checked; the
//! event is compared by its name as text, however it was written.

use super::Cx;
use crate::ast::{Decl, EventMatch, HeaderKind, TaskClauseKind, Trigger};
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, closest};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    let declared = &cx.symbols.event_fields;
    if declared.is_empty() {
        // No events in the schema (or no schema): nothing to compare with.
        return;
    }
    let mut report = |m: &EventMatch| {
        let name = m.event.name.as_str();
        if declared.contains_key(name) {
            return;
        }
        // Names as a script writes them: `order_paid`, `"Order Completed"`.
        let shown = crate::fmt::event_name(name);
        let mut d = Diagnostic::new(
            Code::UndeclaredEvent,
            m.event.span,
            format!("the schema declares no event `{shown}`"),
        )
        .label("not in the schema");
        d = d.help(match closest(name, declared.keys().copied()) {
            Some(near) => format!("did you mean `{}`?", crate::fmt::event_name(near)),
            None => format!("declare it in the schema: `event {shown} {{ … }}`"),
        });
        out.push(d);
    };
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        match decl {
            Decl::Journey(j) => {
                for header in &j.headers {
                    if let HeaderKind::Trigger(Trigger::Event(m)) = &header.kind {
                        report(m);
                    }
                }
            }
            Decl::Rule(r) => report(&r.when),
            Decl::Task(t) => {
                for clause in &t.clauses {
                    if let TaskClauseKind::On(m) = &clause.kind {
                        report(m);
                    }
                }
            }
            _ => {}
        }
    }
}
