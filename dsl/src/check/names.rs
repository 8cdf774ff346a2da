//! Unknown names in expressions (E0101) and context names used where they
//! have no value (E0107), with "did you mean". Names that are `as`
//! bindings declared elsewhere are left to `bindings.rs`.

use super::Cx;
use crate::ast::ExprKind;
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, closest};
use crate::scope::walk::{self, Resolved};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    walk::each_value(cx.files, cx.functions, |e, scope| {
        let ExprKind::Name(name) = &e.kind else {
            return;
        };
        match walk::resolve(name, scope, &cx.symbols) {
            // Computed only here: walking the declaration for every
            // expression made checking quadratic in its size.
            Resolved::Unknown
                if walk::all_bindings(scope.owner)
                    .iter()
                    .any(|b| &b.name == name) => {}
            Resolved::Unknown => {
                let mut candidates: Vec<&str> = vec!["user", "event", "journey", "now"];
                candidates.extend(cx.symbols.names_of("segment"));
                candidates.extend(cx.symbols.names_of("const"));
                candidates.extend(scope.bindings.iter().map(|b| b.name.name.as_str()));
                let mut d =
                    Diagnostic::new(Code::UnknownName, e.span, format!("unknown name `{name}`"))
                        .label("not a segment, const, binding or context name");
                if let Some(near) = closest(name, candidates) {
                    d = d.help(format!("did you mean `{near}`?"));
                } else if cx.functions.lookup(name).is_some() {
                    d = d.help(format!("`{name}` is a function: call it as `{name}(…)`"));
                }
                out.push(d);
            }
            Resolved::Unavailable(what) => {
                let where_ = match scope.owner {
                    walk::Owner::Segment(_) => {
                        "in a segment, which is decided from the user's state alone"
                    }
                    walk::Owner::Const(_) => "in a const, which must be a literal",
                    walk::Owner::Test(_) => "in test data, which must be literal",
                    _ => "outside a journey",
                };
                out.push(
                    Diagnostic::new(
                        Code::ContextUnavailable,
                        e.span,
                        format!("`{what}` has no value here"),
                    )
                    .label(format!("not available {where_}")),
                );
            }
            _ => {}
        }
    });
}
