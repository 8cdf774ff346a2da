//! Calls: unknown functions (E0102), wrong arity (E0201), and event-name
//! arguments that are not event names (`count(1)`, `count("{x}")`).

use super::Cx;
use crate::ast::{Expr, ExprKind};
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, closest};
use crate::scope::walk::{self, Child, Role, Scope, Visitor};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    struct V<'c, 'a> {
        cx: &'c Cx<'a>,
        out: &'c mut Vec<Diagnostic>,
    }
    impl<'a> Visitor<'a> for V<'_, 'a> {
        fn expr(&mut self, expr: &'a Expr, _: Role, _: &Scope<'a>) {
            let functions = self.cx.functions;
            walk::each_subexpr(expr, Child::Value, functions, &mut |e, child| {
                match child {
                    Child::EventName if walk::event_name_arg(e).is_none() => self.out.push(
                        Diagnostic::new(Code::TypeMismatch, e.span, "expected an event name")
                            .label(
                                "write the event's name, e.g. `order_paid` or `\"Order Completed\"`",
                            ),
                    ),
                    Child::EventField if walk::event_field(e).is_none() => self.out.push(
                        Diagnostic::new(Code::TypeMismatch, e.span, "expected an event property")
                            .label(
                                "write it as `event_name.property`, e.g. `order_paid.amount` or `\"Order Completed\".revenue`",
                            ),
                    ),
                    _ => {}
                }
                let ExprKind::Call { function, args } = &e.kind else {
                    return;
                };
                let Some(signature) = functions.lookup(&function.name) else {
                    let mut d = Diagnostic::new(
                        Code::UnknownFunction,
                        function.span,
                        format!("unknown function `{}`", function.name),
                    )
                    .label("not a built-in function");
                    if let Some(near) = closest(&function.name, functions.names()) {
                        d = d.help(format!("did you mean `{near}`?"));
                    }
                    self.out.push(d);
                    return;
                };
                let (min, max) = (signature.min_args(), signature.max_args());
                let n = args.len();
                if n < min || max.is_some_and(|m| n > m) {
                    let wanted = match max {
                        Some(m) if m == min => format!("{min}"),
                        Some(m) if m == min + 1 => format!("{min} or {m}"),
                        Some(m) => format!("{min} to {m}"),
                        None => format!("at least {min}"),
                    };
                    let plural = if wanted == "1" { "" } else { "s" };
                    self.out.push(
                        Diagnostic::new(
                            Code::Arity,
                            e.span,
                            format!(
                                "`{}` takes {wanted} argument{plural}, given {n}",
                                function.name
                            ),
                        )
                        .label(format!("called with {n}"))
                        .help(format!(
                            "{} — {}",
                            signature.display(),
                            signature.doc
                        )),
                    );
                }
            });
        }
    }
    walk::walk(cx.files, &mut V { cx, out });
}
