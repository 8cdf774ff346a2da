//! `set user.X = …` against the schema (E0105, E0202): with a `user`
//! section, a trait it does not declare is an error (a misspelt trait
//! would be written beside the real one), and so is a value whose type is
//! certain and not the declared one. With or without a schema, `set` and
//! `unset` of a field the engine keeps (`id`, `created_at`, `tags`,
//! `points`, `coupons`) is an error (E0905) naming the step that changes
//! it: the engine would refuse it when the step runs.

use super::Cx;
use crate::ast::{Expr, ExprKind, Step, StepKind};
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, closest};
use crate::scope::symbols::BUILT_IN_USER_FIELDS;
use crate::scope::walk::{self, Scope, Visitor};
use crate::types::Type;

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    engine_kept(cx, out);
    let Some(declared) = &cx.symbols.user_fields else {
        return;
    };
    struct V<'c, 'a> {
        cx: &'c Cx<'a>,
        declared: Vec<&'a str>,
        out: &'c mut Vec<Diagnostic>,
    }
    impl<'a> Visitor<'a> for V<'_, 'a> {
        fn expr(&mut self, _: &'a Expr, _: walk::Role, _: &Scope<'a>) {}

        fn step(&mut self, step: &'a Step, scope: &Scope<'a>) {
            let StepKind::Set { path, value } = &step.kind else {
                return;
            };
            let Some(first) = path.fields.first() else {
                return;
            };
            let Some(wanted) = self.cx.symbols.user_field(&first.name) else {
                let mut d = Diagnostic::new(
                    Code::UnknownField,
                    first.span,
                    format!("the schema declares no trait `user.{}`", first.name),
                )
                .label("not in the schema");
                d = d.help(match closest(&first.name, self.declared.iter().copied()) {
                    Some(near) => format!("did you mean `user.{near}`?"),
                    None => format!(
                        "declare it in the schema's `user {{ … }}`: `{}: TYPE`",
                        first.name
                    ),
                });
                self.out.push(d);
                return;
            };
            if path.fields.len() > 1 || !wanted.is_known() {
                return;
            }
            let found = super::types::type_of(self.cx, scope, value);
            let text_for_time = matches!(wanted, Type::Date | Type::Timestamp)
                && matches!(value.kind, ExprKind::Str(_));
            if found.is_known() && !found.fits(wanted) && !text_for_time {
                self.out.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        value.span,
                        format!(
                            "`user.{}` is a {wanted} in the schema, and this is a {found}",
                            first.name
                        ),
                    )
                    .label(format!("this is a {found}")),
                );
            }
        }
    }
    let names = declared
        .keys()
        .copied()
        .chain(BUILT_IN_USER_FIELDS.iter().map(|(n, _)| *n))
        .collect();
    walk::walk(
        cx.files,
        &mut V {
            cx,
            declared: names,
            out,
        },
    );
}

/// `set`/`unset` of a field the engine keeps.
fn engine_kept(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    struct V<'c> {
        out: &'c mut Vec<Diagnostic>,
    }
    impl<'a> Visitor<'a> for V<'_> {
        fn expr(&mut self, _: &'a Expr, _: walk::Role, _: &Scope<'a>) {}

        fn step(&mut self, step: &'a Step, _: &Scope<'a>) {
            let (path, verb) = match &step.kind {
                StepKind::Set { path, .. } => (path, "set"),
                StepKind::Unset(path) => (path, "unset"),
                _ => return,
            };
            let Some(first) = path.fields.first() else {
                return;
            };
            let instead = match first.name.as_str() {
                "points" => "change points with `give points N` or `take points N`",
                "tags" => "change tags with `tag \"T\"` or `untag \"T\"`",
                "coupons" => "give a coupon with `give coupon \"ID\"`",
                "id" | "created_at" => "it is the user's identity, set when they are first seen",
                _ => return,
            };
            self.out.push(
                Diagnostic::new(
                    Code::NotAllowedHere,
                    step.span,
                    format!(
                        "`user.{}` is kept by the engine: a step cannot {verb} it",
                        first.name
                    ),
                )
                .label("kept by the engine")
                .help(instead),
            );
        }
    }
    walk::walk(cx.files, &mut V { out });
}
