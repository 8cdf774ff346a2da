//! Lowering expressions: names resolved against the scope the checker
//! used, consts inlined as values, event-name arguments turned into the
//! strings the stdlib expects, literals turned into values.

use super::Expr;
use crate::ast::{self, ExprKind, UnaryOp};
use crate::library::FunctionTable;
use crate::scope::walk::{self, Child, Resolved, Scope};
use crate::scope::{Symbols, is_literal};
use crate::value::Value;

pub(super) struct ExprLowering<'c, 'a> {
    pub symbols: &'c Symbols<'a>,
    pub functions: &'c dyn FunctionTable,
}

impl<'a> ExprLowering<'_, 'a> {
    pub fn expr(&self, expr: &'a ast::Expr, scope: &Scope<'a>) -> Expr {
        match &expr.kind {
            ExprKind::Name(name) => match walk::resolve(name, scope, self.symbols) {
                Resolved::User => Expr::User,
                Resolved::Event => Expr::Event,
                Resolved::Journey => Expr::Journey,
                Resolved::Now => Expr::Now,
                Resolved::Segment(_) => Expr::Segment(name.clone()),
                Resolved::Const(c) => Expr::Literal(literal(&c.value)),
                Resolved::Binding(b) => Expr::Binding(b.name.name.clone()),
                // The checker reported these; a plan is only made without errors.
                Resolved::Unavailable(_) | Resolved::Unknown => Expr::Literal(Value::Null),
            },
            ExprKind::Str(t) => {
                let parts: Vec<Expr> = t
                    .parts
                    .iter()
                    .map(|p| match p {
                        ast::TemplatePart::Text(s) => Expr::Literal(Value::String(s.clone())),
                        ast::TemplatePart::Expr(e) => self.expr(e, scope),
                    })
                    .collect();
                match t.as_plain() {
                    Some(s) => Expr::Literal(Value::String(s)),
                    None => Expr::Interpolate(parts),
                }
            }
            ExprKind::List(items) if is_literal(expr) => {
                Expr::Literal(Value::List(items.iter().map(literal).collect()))
            }
            ExprKind::List(items) => {
                Expr::List(items.iter().map(|e| self.expr(e, scope)).collect())
            }
            ExprKind::Record(_) if is_literal(expr) => Expr::Literal(literal(expr)),
            ExprKind::Record(r) => Expr::Record(self.record(r, scope)),
            ExprKind::Field(base, field) => {
                Expr::Field(Box::new(self.expr(base, scope)), field.name.clone())
            }
            ExprKind::Index(base, index) => Expr::Index(
                Box::new(self.expr(base, scope)),
                Box::new(self.expr(index, scope)),
            ),
            ExprKind::Call { function, args } => {
                let children = walk::children(expr, self.functions);
                let args = args
                    .iter()
                    .zip(children)
                    .map(|(arg, (_, child))| match child {
                        Child::Value => self.expr(arg, scope),
                        Child::EventName => match walk::event_name_arg(arg) {
                            Some(n) => Expr::Literal(Value::String(n)),
                            None => Expr::Literal(Value::Null),
                        },
                        Child::EventField => match walk::event_field(arg) {
                            Some((event, field)) => {
                                Expr::Literal(Value::String(format!("{event}.{}", field.name)))
                            }
                            None => Expr::Literal(Value::Null),
                        },
                    })
                    .collect();
                Expr::Call {
                    function: function.name.clone(),
                    args,
                }
            }
            ExprKind::Unary(UnaryOp::Neg, inner)
                if matches!(
                    inner.kind,
                    ExprKind::Number { .. } | ExprKind::Duration { .. }
                ) =>
            {
                Expr::Literal(literal(expr))
            }
            ExprKind::Unary(UnaryOp::Not, e) => Expr::Not(Box::new(self.expr(e, scope))),
            ExprKind::Unary(UnaryOp::Neg, e) => Expr::Neg(Box::new(self.expr(e, scope))),
            ExprKind::Binary(op, l, r) => Expr::Binary(
                *op,
                Box::new(self.expr(l, scope)),
                Box::new(self.expr(r, scope)),
            ),
            _ => Expr::Literal(literal(expr)),
        }
    }

    pub fn record(&self, record: &'a ast::Record, scope: &Scope<'a>) -> Vec<(String, Expr)> {
        record
            .fields
            .iter()
            .map(|f| (f.key.name.clone(), self.expr(&f.value, scope)))
            .collect()
    }
}

/// The value of a literal expression (what the checker accepts as one).
pub fn literal(expr: &ast::Expr) -> Value {
    match &expr.kind {
        ExprKind::Null | ExprKind::Error => Value::Null,
        ExprKind::Bool(b) => Value::Bool(*b),
        ExprKind::Number { value, .. } => Value::Number(*value),
        ExprKind::Duration { seconds, .. } => {
            Value::Duration(i64::try_from(*seconds).unwrap_or(i64::MAX))
        }
        ExprKind::TimeOfDay(m) => Value::TimeOfDay(*m),
        ExprKind::Str(t) => Value::String(t.as_plain().unwrap_or_default()),
        ExprKind::List(items) => Value::List(items.iter().map(literal).collect()),
        ExprKind::Record(r) => Value::Record(
            r.fields
                .iter()
                .map(|f| (f.key.name.clone(), literal(&f.value)))
                .collect::<crate::value::Fields>(),
        ),
        ExprKind::Unary(UnaryOp::Neg, e) => match literal(e) {
            Value::Number(n) => Value::Number(-n),
            Value::Duration(s) => Value::Duration(-s),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

/// A record of literals as a value (test data).
pub fn literal_record(record: Option<&ast::Record>) -> Value {
    Value::Record(
        record
            .iter()
            .flat_map(|r| &r.fields)
            .map(|f| (f.key.name.clone(), literal(&f.value)))
            .collect(),
    )
}
