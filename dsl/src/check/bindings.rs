//! `as` bindings used out of scope (E0103): the name is bound somewhere in
//! the same declaration, but not on the path to this use.

use super::Cx;
use crate::ast::ExprKind;
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::scope::walk::{self, Resolved};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    walk::each_value(cx.files, cx.functions, |e, scope| {
        let ExprKind::Name(name) = &e.kind else {
            return;
        };
        if !matches!(walk::resolve(name, scope, &cx.symbols), Resolved::Unknown) {
            return;
        }
        // Computed only for an unknown name: walking the declaration for
        // every expression made checking quadratic in its size.
        let bound = walk::all_bindings(scope.owner);
        if let Some(binding) = bound.iter().find(|b| &b.name == name) {
            out.push(
                Diagnostic::new(Code::BindingOutOfScope, e.span, format!("`{name}` is not in scope here"))
                    .label("used here")
                    .also(binding.span, "bound here")
                    .help("a `wait for … as` binding is visible in the block that runs on the event; a `give coupon … as` binding in the steps after it, in the same block"),
            );
        }
    });
}
