//! Type errors the literals and the schema make certain (E0202), and `==`
//! between values that can never be equal (W0204). What the checker cannot
//! know is `Any` and passes; run-time checks cover the rest.

use super::Cx;
use crate::ast::{self, BinaryOp, Expr, ExprKind, UnaryOp};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::library::{ParamKind, Returns};
use crate::scope::symbols::{COUPON_FIELDS, JOURNEY_FIELDS};
use crate::scope::walk::{self, BindingKind, EventCtx, Resolved, Role, Scope, Visitor};
use crate::types::Type;

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    struct V<'c, 'a> {
        cx: &'c Cx<'a>,
        out: &'c mut Vec<Diagnostic>,
    }
    impl<'a> Visitor<'a> for V<'_, 'a> {
        fn expr(&mut self, expr: &'a Expr, role: Role, scope: &Scope<'a>) {
            let mut infer = Infer {
                cx: self.cx,
                scope,
                out: self.out,
            };
            let ty = infer.expr(expr);
            let wanted = match role {
                Role::Condition => Type::Bool,
                Role::Points => Type::Number,
                Role::Timestamp => Type::Timestamp,
                Role::Value | Role::Literal => return,
            };
            if role == Role::Timestamp && (ty == Type::Date || is_timestamp_text(expr)) {
                return;
            }
            if !ty.fits(wanted) {
                let mut d = Diagnostic::new(
                    Code::TypeMismatch,
                    expr.span,
                    format!("expected a {wanted}, found a {ty}"),
                )
                .label(format!("this is a {ty}"));
                if role == Role::Timestamp && ty == Type::Duration {
                    d = d.help("a point in time is needed, such as `now + 3d`; for a length of time write `wait 3d` or `expires in 3d`");
                }
                self.out.push(d);
            }
        }
    }
    walk::walk(cx.files, &mut V { cx, out });
}

/// The type of `expr` where `scope` holds, as far as it is certain
/// (`Any` where it is not); reports nothing.
pub(super) fn type_of<'a>(cx: &Cx<'a>, scope: &Scope<'a>, expr: &'a Expr) -> Type {
    let mut ignored = Vec::new();
    Infer {
        cx,
        scope,
        out: &mut ignored,
    }
    .expr(expr)
}

/// A string literal that is an RFC 3339 timestamp.
fn is_timestamp_text(expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Str(t) => t
            .as_plain()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(&s).is_ok()),
        _ => false,
    }
}

struct Infer<'c, 'a> {
    cx: &'c Cx<'a>,
    scope: &'c Scope<'a>,
    out: &'c mut Vec<Diagnostic>,
}

impl<'a> Infer<'_, 'a> {
    fn mismatch(&mut self, span: crate::source::Span, message: String, label: String) -> Type {
        self.out
            .push(Diagnostic::new(Code::TypeMismatch, span, message).label(label));
        Type::Any
    }

    fn expr(&mut self, expr: &'a Expr) -> Type {
        match &expr.kind {
            // Typed by their form alone, as in a const.
            ExprKind::Null
            | ExprKind::Bool(_)
            | ExprKind::Number { .. }
            | ExprKind::Duration { .. }
            | ExprKind::TimeOfDay(_) => literal_type(expr),
            ExprKind::Str(t) => {
                for part in &t.parts {
                    if let ast::TemplatePart::Expr(e) = part {
                        self.expr(e);
                    }
                }
                Type::String
            }
            ExprKind::List(items) => {
                items.iter().for_each(|e| {
                    self.expr(e);
                });
                Type::List
            }
            ExprKind::Record(r) => {
                r.fields.iter().for_each(|f| {
                    self.expr(&f.value);
                });
                Type::Record
            }
            ExprKind::Name(name) => match walk::resolve(name, self.scope, &self.cx.symbols) {
                Resolved::User | Resolved::Event | Resolved::Journey | Resolved::Binding(_) => {
                    Type::Record
                }
                Resolved::Now => Type::Timestamp,
                Resolved::Segment(_) => Type::Bool,
                Resolved::Const(c) => literal_type(&c.value),
                Resolved::Unavailable(_) | Resolved::Unknown => Type::Any,
            },
            ExprKind::Field(base, field) => self.field(base, field),
            ExprKind::Index(base, index) => {
                let (b, i) = (self.expr(base), self.expr(index));
                match b {
                    Type::List if i.is_known() && i != Type::Number => self.mismatch(
                        index.span,
                        format!("a list index must be a number, found a {i}"),
                        format!("this is a {i}"),
                    ),
                    Type::Record if i.is_known() && i != Type::String => self.mismatch(
                        index.span,
                        format!("a record key must be a string, found a {i}"),
                        format!("this is a {i}"),
                    ),
                    Type::List | Type::Record | Type::Any | Type::Null => Type::Any,
                    other => self.mismatch(
                        base.span,
                        format!("a {other} cannot be indexed"),
                        format!("this is a {other}"),
                    ),
                }
            }
            ExprKind::Call { function, args } => self.call(function, args),
            ExprKind::Unary(op, operand) => {
                let t = self.expr(operand);
                match op {
                    UnaryOp::Not if !t.fits(Type::Bool) => self.mismatch(
                        operand.span,
                        format!("`not` needs a bool, found a {t}"),
                        format!("this is a {t}"),
                    ),
                    UnaryOp::Not => Type::Bool,
                    UnaryOp::Neg if matches!(t, Type::Number | Type::Duration) => t,
                    UnaryOp::Neg if t.is_known() => self.mismatch(
                        operand.span,
                        format!("cannot negate a {t}"),
                        format!("this is a {t}"),
                    ),
                    UnaryOp::Neg => Type::Any,
                }
            }
            ExprKind::Binary(op, l, r) => {
                let (lt, rt) = (self.expr(l), self.expr(r));
                self.binary(expr, *op, lt, rt)
            }
            ExprKind::Error => Type::Any,
        }
    }

    fn binary(&mut self, expr: &Expr, op: BinaryOp, l: Type, r: Type) -> Type {
        use BinaryOp as B;
        use Type as T;
        let known = l.is_known() && r.is_known();
        let bad = |this: &mut Self| {
            this.mismatch(
                expr.span,
                format!("`{}` cannot combine a {l} and a {r}", op.symbol()),
                format!("{l} {} {r}", op.symbol()),
            )
        };
        match op {
            B::Or | B::And => {
                for (t, side) in [(l, "left"), (r, "right")] {
                    if !t.fits(T::Bool) {
                        return self.mismatch(
                            expr.span,
                            format!(
                                "`{}` needs bools on both sides, found a {t} on the {side}",
                                op.symbol()
                            ),
                            format!("the {side} side is a {t}"),
                        );
                    }
                }
                T::Bool
            }
            B::Eq | B::Ne => {
                // A string is read as a date or timestamp when compared
                // with one (event properties arrive as JSON text).
                let comparable = l == r || timely(l, r);
                if known && !comparable {
                    self.out.push(
                        Diagnostic::new(
                            Code::AlwaysFalse,
                            expr.span,
                            format!("a {l} is never equal to a {r}"),
                        )
                        .label(if op == B::Eq {
                            "always false"
                        } else {
                            "always true"
                        }),
                    );
                }
                T::Bool
            }
            B::Lt | B::Le | B::Gt | B::Ge => {
                let ordered = matches!(
                    l,
                    T::Number | T::String | T::Timestamp | T::Date | T::Duration | T::TimeOfDay
                );
                if known && (l != r || !ordered) && !timely(l, r) {
                    return bad(self);
                }
                T::Bool
            }
            B::In => {
                if r.is_known() && !matches!(r, T::List | T::String | T::Record) {
                    return self.mismatch(
                        expr.span,
                        format!("`in` needs a list, string or record on the right, found a {r}"),
                        format!("the right side is a {r}"),
                    );
                }
                T::Bool
            }
            B::Add | B::Sub | B::Mul | B::Div | B::Rem => {
                if !known {
                    return match (op, l, r) {
                        (B::Add | B::Sub, T::Timestamp, _) => T::Timestamp,
                        (_, T::Number, _) | (_, _, T::Number) if op != B::Mul && op != B::Div => {
                            T::Number
                        }
                        _ => T::Any,
                    };
                }
                match (op, l, r) {
                    (_, T::Number, T::Number) => T::Number,
                    (B::Add, T::String, T::String) => T::String,
                    (B::Add, T::Timestamp, T::Duration) | (B::Add, T::Duration, T::Timestamp) => {
                        T::Timestamp
                    }
                    (B::Sub, T::Timestamp, T::Duration) => T::Timestamp,
                    (B::Add, T::Date, T::Duration) | (B::Sub, T::Date, T::Duration) => T::Date,
                    (B::Sub, T::Timestamp, T::Timestamp) | (B::Sub, T::Date, T::Date) => {
                        T::Duration
                    }
                    (B::Add | B::Sub, T::Duration, T::Duration) => T::Duration,
                    (B::Mul, T::Duration, T::Number) | (B::Mul, T::Number, T::Duration) => {
                        T::Duration
                    }
                    (B::Div, T::Duration, T::Number) => T::Duration,
                    (B::Div, T::Duration, T::Duration) => T::Number,
                    _ => bad(self),
                }
            }
        }
    }

    fn field(&mut self, base: &'a Expr, field: &ast::Ident) -> Type {
        let name = field.name.as_str();
        if let ExprKind::Name(n) = &base.kind {
            let symbols = &self.cx.symbols;
            match walk::resolve(n, self.scope, symbols) {
                Resolved::User => return symbols.user_field(name).unwrap_or(Type::Any),
                Resolved::Event => {
                    let event = match self.scope.event {
                        EventCtx::Known(e) => Some(e),
                        EventCtx::Unknown => None,
                    };
                    return symbols.event_field(event, name).unwrap_or(Type::Any);
                }
                Resolved::Journey => {
                    return JOURNEY_FIELDS
                        .iter()
                        .find(|(f, _)| *f == name)
                        .map(|(_, t)| *t)
                        .unwrap_or(Type::Any);
                }
                Resolved::Binding(b) => {
                    return match b.kind {
                        BindingKind::Coupon => COUPON_FIELDS
                            .iter()
                            .find(|(f, _)| *f == name)
                            .map(|(_, t)| *t)
                            .unwrap_or(Type::Any),
                        BindingKind::Event(e) => {
                            symbols.event_field(Some(e), name).unwrap_or(Type::Any)
                        }
                    };
                }
                _ => {}
            }
        }
        let t = self.expr(base);
        match t {
            Type::Record | Type::Any | Type::Null => Type::Any,
            other => self.mismatch(
                field.span,
                format!("a {other} has no field `{name}`"),
                format!("`.{name}` on a {other}"),
            ),
        }
    }

    fn call(&mut self, function: &ast::Ident, args: &'a [Expr]) -> Type {
        let Some(signature) = self.cx.functions.lookup(&function.name) else {
            args.iter().for_each(|a| {
                self.expr(a);
            });
            return Type::Any;
        };
        let mut first_known = Type::Any;
        for (i, arg) in args.iter().enumerate() {
            let Some(param) = signature.param(i) else {
                self.expr(arg);
                continue;
            };
            let ParamKind::Value(wanted) = param.kind else {
                continue;
            };
            let t = self.expr(arg);
            if first_known == Type::Any && t.is_known() {
                first_known = t;
            }
            let coercible = t == Type::String
                && matches!(wanted, Type::Timestamp | Type::Date)
                && text_parses(arg, wanted);
            let accepted =
                t.fits(wanted) || coercible || (wanted == Type::Date && t == Type::Timestamp);
            if !accepted {
                self.out.push(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        arg.span,
                        format!(
                            "`{}` needs a {wanted} for `{}`, found a {t}",
                            function.name, param.name
                        ),
                    )
                    .label(format!("this is a {t}"))
                    .help(format!(
                        "{} — {}",
                        signature.display(),
                        signature.doc
                    )),
                );
            }
        }
        match signature.returns {
            Returns::Type(t) => t,
            Returns::LikeArguments => first_known,
        }
    }
}

/// A string argument where a timestamp or date is needed: literals must
/// parse; other strings are read at run time.
fn text_parses(arg: &Expr, wanted: Type) -> bool {
    match &arg.kind {
        ExprKind::Str(t) => match t.as_plain() {
            Some(s) if wanted == Type::Date => {
                s.parse::<chrono::NaiveDate>().is_ok()
                    || chrono::DateTime::parse_from_rfc3339(&s).is_ok()
            }
            Some(s) => {
                chrono::DateTime::parse_from_rfc3339(&s).is_ok()
                    || s.parse::<chrono::NaiveDate>().is_ok()
            }
            None => true,
        },
        _ => true,
    }
}

/// The type of a literal (a const's value).
pub fn literal_type(expr: &Expr) -> Type {
    match &expr.kind {
        ExprKind::Null => Type::Null,
        ExprKind::Bool(_) => Type::Bool,
        ExprKind::Number { .. } => Type::Number,
        ExprKind::Duration { .. } => Type::Duration,
        ExprKind::TimeOfDay(_) => Type::TimeOfDay,
        ExprKind::Str(_) => Type::String,
        ExprKind::List(_) => Type::List,
        ExprKind::Record(_) => Type::Record,
        ExprKind::Unary(UnaryOp::Neg, e) => literal_type(e),
        _ => Type::Any,
    }
}

/// Two types the engine compares as times: a date and a timestamp, or
/// either with a string (parsed when the comparison runs).
fn timely(l: Type, r: Type) -> bool {
    use Type as T;
    matches!(
        (l, r),
        (T::Timestamp, T::Date)
            | (T::Date, T::Timestamp)
            | (T::Timestamp | T::Date, T::String)
            | (T::String, T::Timestamp | T::Date)
    )
}
