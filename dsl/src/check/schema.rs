//! The schema (E0301, E0105): its type names are real types, built-in user
//! fields keep their types, and with a schema every `user.X` and `event.X`
//! of a listed event names a declared field.

use super::Cx;
use crate::ast::{Decl, ExprKind};
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, closest};
use crate::scope::symbols::BUILT_IN_USER_FIELDS;
use crate::scope::walk::{self, EventCtx, Resolved};
use crate::types::Type;

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        let Decl::Schema(schema) = decl else { continue };
        for entry in &schema.entries {
            for field in &entry.fields {
                let Some(ty) = Type::from_schema_name(&field.ty.name) else {
                    let mut d = Diagnostic::new(
                        Code::BadSchema,
                        field.ty.span,
                        format!("unknown type `{}`", field.ty.name),
                    )
                    .label("not a type");
                    d = d.help(
                        match closest(&field.ty.name, Type::SCHEMA_NAMES.iter().copied()) {
                            Some(near) => format!("did you mean `{near}`?"),
                            None => format!("the types are {}", Type::SCHEMA_NAMES.join(", ")),
                        },
                    );
                    out.push(d);
                    continue;
                };
                if entry.event.is_none()
                    && let Some((_, builtin)) = BUILT_IN_USER_FIELDS
                        .iter()
                        .find(|(n, _)| *n == field.name.name)
                    && *builtin != ty
                    && ty != Type::Any
                {
                    out.push(
                        Diagnostic::new(
                            Code::BadSchema,
                            field.ty.span,
                            format!("`user.{}` is built in and is a {builtin}", field.name.name),
                        )
                        .label(format!("declared as {ty}")),
                    );
                }
            }
        }
    }

    walk::each_value(cx.files, cx.functions, |e, scope| {
        let ExprKind::Field(base, field) = &e.kind else {
            return;
        };
        let ExprKind::Name(name) = &base.kind else {
            return;
        };
        let symbols = &cx.symbols;
        let (known, subject, fields): (bool, String, Vec<&str>) =
            match walk::resolve(name, scope, symbols) {
                Resolved::User => (
                    symbols.user_field(&field.name).is_some(),
                    "the user".into(),
                    symbols
                        .user_fields
                        .iter()
                        .flat_map(|f| f.keys().copied())
                        .chain(BUILT_IN_USER_FIELDS.iter().map(|(n, _)| *n))
                        .collect(),
                ),
                Resolved::Event => match scope.event {
                    EventCtx::Known(event) => event_fields(symbols, event, &field.name),
                    EventCtx::Unknown => return,
                },
                Resolved::Binding(walk::Binding {
                    kind: walk::BindingKind::Event(event),
                    ..
                }) => event_fields(symbols, event, &field.name),
                Resolved::Journey => {
                    let fields: Vec<&str> = crate::scope::symbols::JOURNEY_FIELDS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect();
                    (
                        fields.contains(&field.name.as_str()),
                        "`journey`".into(),
                        fields,
                    )
                }
                Resolved::Binding(walk::Binding {
                    kind: walk::BindingKind::Coupon,
                    ..
                }) => {
                    let fields: Vec<&str> = crate::scope::symbols::COUPON_FIELDS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect();
                    (
                        fields.contains(&field.name.as_str()),
                        "a coupon".into(),
                        fields,
                    )
                }
                _ => return,
            };
        if !known {
            let mut d = Diagnostic::new(
                Code::UnknownField,
                field.span,
                format!("{subject} has no field `{}`", field.name),
            )
            .label("unknown field");
            if let Some(near) = closest(&field.name, fields.iter().copied()) {
                d = d.help(format!("did you mean `{near}`?"));
            }
            out.push(d);
        }
    });
}

fn event_fields<'a>(
    symbols: &crate::scope::symbols::Symbols<'a>,
    event: &str,
    field: &str,
) -> (bool, String, Vec<&'a str>) {
    let mut fields: Vec<&'a str> = symbols
        .event_fields
        .get(event)
        .map(|f| {
            f.keys()
                .copied()
                .chain(
                    crate::scope::symbols::BUILT_IN_EVENT_FIELDS
                        .iter()
                        .map(|(n, _)| *n),
                )
                .collect()
        })
        .unwrap_or_default();
    if event == crate::ast::SEND_OUTCOME {
        if fields.is_empty() {
            fields.extend(
                crate::scope::symbols::BUILT_IN_EVENT_FIELDS
                    .iter()
                    .map(|(n, _)| *n),
            );
        }
        fields.extend(
            crate::scope::symbols::SEND_OUTCOME_FIELDS
                .iter()
                .map(|(n, _)| *n),
        );
    }
    (
        symbols.event_field(Some(event), field).is_some(),
        format!("event `{}`", crate::fmt::event_name(event)),
        fields,
    )
}
