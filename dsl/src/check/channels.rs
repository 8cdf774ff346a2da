//! With a config (`check --config`), each `send` step is checked against
//! its channel kind's message fields (E1001): required fields present,
//! unknown fields reported.

use super::Cx;
use crate::ast::StepKind;
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, closest};
use crate::scope::walk;

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    let Some(catalog) = cx.channels else { return };
    walk::for_each_step(cx.files, |step| {
        let StepKind::Send {
            channel,
            template,
            fields,
        } = &step.kind
        else {
            return;
        };
        let Some(spec) = catalog.get(&channel.name) else {
            return;
        };
        let given: Vec<&str> = fields
            .iter()
            .flat_map(|r| &r.fields)
            .map(|f| f.key.name.as_str())
            .collect();
        for required in &spec.required {
            let present = given.contains(&required.as_str())
                || (required == "template" && template.is_some());
            if !present {
                out.push(
                    Diagnostic::new(
                        Code::UnknownChannelField,
                        step.span,
                        format!(
                            "channel `{}` ({}) needs the field `{required}`",
                            channel.name, spec.kind
                        ),
                    )
                    .label(format!("no `{required}` given")),
                );
            }
        }
        if let Some(accepted) = &spec.accepted {
            for field in fields.iter().flat_map(|r| &r.fields) {
                if !accepted.iter().any(|a| a == &field.key.name) {
                    let mut d = Diagnostic::new(
                        Code::UnknownChannelField,
                        field.key.span,
                        format!(
                            "channel `{}` ({}) has no field `{}`",
                            channel.name, spec.kind, field.key.name
                        ),
                    )
                    .label("not a field of this channel");
                    d = d.help(
                        match closest(&field.key.name, accepted.iter().map(String::as_str)) {
                            Some(near) => format!("did you mean `{near}`?"),
                            None => format!("its fields are {}", accepted.join(", ")),
                        },
                    );
                    out.push(d);
                }
            }
        }
    });
}
