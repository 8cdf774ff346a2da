//! `split` arms (E0401, E0904): percentages sum to exactly 100, and no arm
//! is 0%.

use super::Cx;
use crate::ast::StepKind;
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::scope::walk;
use rust_decimal::Decimal;

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    walk::for_each_step(cx.files, |step| {
        let StepKind::Split { name, arms } = &step.kind else {
            return;
        };
        let total: Decimal = arms.iter().map(|a| a.percent.value).sum();
        if total != Decimal::ONE_HUNDRED {
            let mut d = Diagnostic::new(
                Code::SplitSum,
                name.span,
                format!(
                    "the arms of split `{}` add up to {}%, not 100%",
                    name.name,
                    total.normalize()
                ),
            )
            .label(format!("{}% in all", total.normalize()));
            for arm in arms {
                d = d.also(arm.percent.span, "");
            }
            let help = if total < Decimal::ONE_HUNDRED {
                format!(
                    "add a holdout arm: `{}% holdout {{}}`",
                    (Decimal::ONE_HUNDRED - total).normalize()
                )
            } else {
                "lower the percentages so that they sum to 100%".to_string()
            };
            out.push(d.help(help));
        }
        for arm in arms.iter().filter(|a| a.percent.value.is_zero()) {
            out.push(
                Diagnostic::new(
                    Code::BadValue,
                    arm.percent.span,
                    format!("arm `{}` gets 0% of users", arm.name.name),
                )
                .label("never chosen"),
            );
        }
    });
}
