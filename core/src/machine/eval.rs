//! Evaluating plan expressions against one user at one moment. Null
//! follows language.md §6: missing fields are null, comparisons with null
//! are false, arithmetic on null is an error. An [`EvalError`] names what
//! went wrong; the caller records its text in the journal's `error` record.

use super::EventValue;
use crate::model::UserState;
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use std::borrow::Cow;
use std::collections::BTreeMap;
use waymark_dsl::ast::BinaryOp;
use waymark_dsl::plan::{Expr, Plan};
use waymark_dsl::types::Type;
use waymark_dsl::value::{Fields, Value};

/// Calls with at most this many arguments pass them without a vector.
const SHORT_CALL: usize = 4;

/// How deep segments may refer to segments at run time.
const MAX_SEGMENT_DEPTH: u32 = 16;

/// Why an expression has no value. The text is what the journal's `error`
/// record says, so a person reading it learns the operator, the types, the
/// segment or the function at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("a condition must be true or false, got a {0}")]
    NotACondition(Type),
    /// A built-in refused its arguments; its message names the function.
    #[error("{0}")]
    Function(#[from] waymark_stdlib::EvalError),
    #[error("cannot negate null")]
    NegateNull,
    #[error("cannot negate a {0}")]
    Negate(Type),
    #[error("segment `{0}` refers to segments more than {MAX_SEGMENT_DEPTH} deep")]
    SegmentsTooDeep(String),
    #[error("no segment `{0}`")]
    NoSegment(String),
    #[error("in segment `{segment}`: {error}")]
    InSegment {
        segment: String,
        error: Box<EvalError>,
    },
    #[error("cannot compare a {left} with a {right}")]
    Compare { left: Type, right: Type },
    #[error("`in` a string needs a string on the left, got a {0}")]
    InStringNeedsString(Type),
    #[error("`in` needs a list, string or record on the right, got a {0}")]
    InNeedsCollection(Type),
    #[error("arithmetic on null (`{}`)", .0.symbol())]
    NullArithmetic(BinaryOp),
    #[error("division by zero")]
    DivisionByZero,
    #[error("`{}` overflowed", .0.symbol())]
    Overflow(BinaryOp),
    #[error("`{}` cannot combine a {left} and a {right}", .op.symbol())]
    Combine {
        op: BinaryOp,
        left: Type,
        right: Type,
    },
}

/// What an expression can see.
pub struct Env<'a> {
    pub plan: &'a Plan,
    pub state: &'a UserState,
    /// The user as a value, built on first use (most conditions read a
    /// field or two, or none, and building it copies every trait).
    user: std::cell::OnceCell<Value>,
    event: EventRef<'a>,
    pub journey: Value,
    pub bindings: &'a BTreeMap<String, Value>,
    pub now: DateTime<Utc>,
    pub tz: chrono_tz::Tz,
    depth: u32,
}

/// The user as expressions see it: traits plus the built-in fields.
pub fn user_value(state: &UserState) -> Value {
    let mut map: Fields = (*state.traits).clone();
    map.insert("id".into(), Value::String(state.id.to_string()));
    map.insert(
        "created_at".into(),
        state
            .created_at
            .map(Value::Timestamp)
            .unwrap_or(Value::Null),
    );
    map.insert(
        "tags".into(),
        Value::List(state.tags.iter().cloned().map(Value::String).collect()),
    );
    map.insert("points".into(), Value::Number(state.points.balance()));
    map.insert(
        "coupons".into(),
        Value::List(state.coupons.iter().map(|c| c.as_value()).collect()),
    );
    map.get_or_insert_with("consent", || Value::Record(Default::default()));
    map.get_or_insert_with("timezone", || Value::Null);
    Value::Record(map)
}

static NULL: Value = Value::Null;

/// The event expressions read: a value, or an event as it came in, made
/// into a value only if read whole (`event.amount` reads the property).
#[derive(Clone, Copy)]
pub(crate) enum EventRef<'a> {
    Value(&'a Value),
    Lazy(&'a EventValue<'a>),
}

impl<'a> EventRef<'a> {
    fn whole(self) -> &'a Value {
        match self {
            EventRef::Value(v) => v,
            EventRef::Lazy(e) => e.get(),
        }
    }

    pub(crate) fn field(self, field: &str) -> Cow<'a, Value> {
        match self {
            EventRef::Value(v) => Cow::Borrowed(v.field(field)),
            EventRef::Lazy(e) => e.field(field),
        }
    }
}

/// A field of [`user_value`] that is a trait as stored (not one of the
/// built-in fields, and present), borrowed.
fn user_trait<'s>(state: &'s UserState, field: &str) -> Option<&'s Value> {
    (!is_built_in(field))
        .then(|| state.traits.get(field))
        .flatten()
}

/// The fields of [`user_value`] the engine keeps, whatever the traits hold.
fn is_built_in(field: &str) -> bool {
    matches!(field, "id" | "created_at" | "tags" | "points" | "coupons")
}

/// Whether `user.FIELD` is the stored trait or null: not a built-in field,
/// nor `consent` (an empty record when the user has none).
pub(crate) fn is_plain_trait(field: &str) -> bool {
    !is_built_in(field) && field != "consent"
}

/// One field of [`user_value`], without building the rest.
fn user_field(state: &UserState, field: &str) -> Value {
    match field {
        "id" => Value::String(state.id.to_string()),
        "created_at" => state
            .created_at
            .map(Value::Timestamp)
            .unwrap_or(Value::Null),
        "tags" => Value::List(state.tags.iter().cloned().map(Value::String).collect()),
        "points" => Value::Number(state.points.balance()),
        "coupons" => Value::List(state.coupons.iter().map(|c| c.as_value()).collect()),
        "consent" => state
            .traits
            .get(field)
            .cloned()
            .unwrap_or_else(|| Value::Record(Default::default())),
        _ => state.traits.get(field).cloned().unwrap_or(Value::Null),
    }
}

impl<'a> Env<'a> {
    /// The user as expressions see it.
    pub fn user(&self) -> &Value {
        self.user.get_or_init(|| user_value(self.state))
    }

    pub fn new(
        plan: &'a Plan,
        state: &'a UserState,
        event: &'a Value,
        bindings: &'a BTreeMap<String, Value>,
        now: DateTime<Utc>,
        tz: chrono_tz::Tz,
    ) -> Env<'a> {
        Env {
            plan,
            state,
            user: std::cell::OnceCell::new(),
            event: EventRef::Value(event),
            journey: Value::Null,
            bindings,
            now,
            tz,
            depth: 0,
        }
    }

    /// An environment whose `event` is an event as it came in, made into
    /// a value only if an expression reads it whole.
    pub(crate) fn with_event(
        plan: &'a Plan,
        state: &'a UserState,
        event: EventRef<'a>,
        bindings: &'a BTreeMap<String, Value>,
        now: DateTime<Utc>,
        tz: chrono_tz::Tz,
    ) -> Env<'a> {
        let mut env = Env::new(plan, state, &NULL, bindings, now, tz);
        env.event = event;
        env
    }

    /// A condition: true only for `true`; null is false; an error is the caller's to record.
    pub fn condition(&self, expr: &Expr) -> Result<bool, EvalError> {
        // What [`Env::eval`] does for these, without making a value of
        // each step: conditions run on every event.
        match expr {
            Expr::Binary(BinaryOp::And, l, r) => {
                return Ok(self.condition(l)? && self.condition(r)?);
            }
            Expr::Binary(BinaryOp::Or, l, r) => return Ok(self.condition(l)? || self.condition(r)?),
            Expr::Not(e) => return Ok(!self.condition(e)?),
            // A field against a literal, the usual condition, decided
            // without the general comparison's coercions when none applies.
            Expr::Binary(op, l, r) if let Expr::Literal(r) = r.as_ref() => {
                return compare_to_literal(*op, self.value(l)?, r);
            }
            Expr::Binary(op, l, r) => {
                return match compare(*op, self.value(l)?, self.value(r)?)? {
                    Compared::Is(b) => Ok(b),
                    Compared::Arithmetic(l, r) => as_condition(arithmetic(*op, &l, &r)?),
                };
            }
            _ => {}
        }
        as_condition(self.eval(expr)?)
    }

    pub fn eval(&self, expr: &Expr) -> Result<Value, EvalError> {
        Ok(match expr {
            Expr::Literal(v) => v.clone(),
            Expr::User => self.user().clone(),
            Expr::Event => self.event.whole().clone(),
            Expr::Journey => self.journey.clone(),
            Expr::Now => Value::Timestamp(self.now),
            Expr::Binding(name) => self.bindings.get(name).cloned().unwrap_or(Value::Null),
            Expr::Segment(name) => Value::Bool(self.segment(name)?),
            Expr::Field(..) => self.value(expr)?.into_owned(),
            Expr::Index(base, index) => {
                let (base, index) = (self.eval(base)?, self.eval(index)?);
                match (&base, &index) {
                    (Value::List(items), Value::Number(n)) => usize::try_from(n.trunc().mantissa())
                        .ok()
                        .and_then(|i| items.get(i))
                        .cloned()
                        .unwrap_or(Value::Null),
                    (Value::Record(_), Value::String(k)) => base.field(k).clone(),
                    _ => Value::Null,
                }
            }
            Expr::Call { function, args } => {
                // Arguments borrowed where they are held: `sum` and `count`
                // name their event with a literal, read on every event.
                let cx = StdContext { env: self };
                if args.len() <= SHORT_CALL {
                    // No vector for the usual few arguments.
                    let mut held: [Cow<'_, Value>; SHORT_CALL] =
                        std::array::from_fn(|_| Cow::Borrowed(&NULL));
                    for (slot, arg) in held.iter_mut().zip(args) {
                        *slot = self.value(arg)?;
                    }
                    let refs: [&Value; SHORT_CALL] = std::array::from_fn(|i| &*held[i]);
                    waymark_stdlib::call(function, &cx, &refs[..args.len()])?
                } else {
                    let held = args
                        .iter()
                        .map(|a| self.value(a))
                        .collect::<Result<Vec<_>, _>>()?;
                    let refs: Vec<&Value> = held.iter().map(|v| &**v).collect();
                    waymark_stdlib::call(function, &cx, &refs)?
                }
            }
            Expr::Not(e) => Value::Bool(!self.condition(e)?),
            Expr::Neg(e) => match self.eval(e)? {
                Value::Number(n) => Value::Number(-n),
                Value::Duration(s) => Value::Duration(-s),
                Value::Null => return Err(EvalError::NegateNull),
                other => return Err(EvalError::Negate(other.type_of())),
            },
            Expr::Binary(BinaryOp::And, l, r) => {
                Value::Bool(self.condition(l)? && self.condition(r)?)
            }
            Expr::Binary(BinaryOp::Or, l, r) => {
                Value::Bool(self.condition(l)? || self.condition(r)?)
            }
            Expr::Binary(op, l, r) => binary(*op, self.value(l)?, self.value(r)?)?,
            Expr::List(items) => Value::List(
                items
                    .iter()
                    .map(|e| self.eval(e))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Record(fields) => Value::Record(
                fields
                    .iter()
                    .map(|(k, e)| Ok((k.clone(), self.eval(e)?)))
                    .collect::<Result<_, EvalError>>()?,
            ),
            Expr::Interpolate(parts) => {
                let mut out = String::new();
                for part in parts {
                    out.push_str(&self.eval(part)?.to_text());
                }
                Value::String(out)
            }
        })
    }

    /// An expression's value, borrowed where it is already held (a literal,
    /// the event, a binding, a profile field, a field of any of these) so
    /// that reading `event.amount` does not copy the event.
    fn value<'s>(&'s self, expr: &'s Expr) -> Result<Cow<'s, Value>, EvalError> {
        Ok(match expr {
            Expr::Literal(v) => Cow::Borrowed(v),
            Expr::Event => Cow::Borrowed(self.event.whole()),
            Expr::Journey => Cow::Borrowed(&self.journey),
            Expr::User => Cow::Borrowed(self.user()),
            Expr::Binding(name) => Cow::Borrowed(self.bindings.get(name).unwrap_or(&NULL)),
            Expr::Field(base, field) => match (base.as_ref(), field.as_str()) {
                // Avoid building the whole profile for `user.x`.
                (Expr::User, f) => match user_trait(self.state, f) {
                    Some(v) => Cow::Borrowed(v),
                    None => Cow::Owned(user_field(self.state, f)),
                },
                (Expr::Event, f) => self.event.field(f),
                _ => match self.value(base)? {
                    Cow::Borrowed(v) => Cow::Borrowed(v.field(field)),
                    Cow::Owned(v) => Cow::Owned(v.field(field).clone()),
                },
            },
            _ => Cow::Owned(self.eval(expr)?),
        })
    }

    /// Whether the user is in a segment (decided from the user's state alone).
    pub fn segment(&self, name: &str) -> Result<bool, EvalError> {
        if self.depth >= MAX_SEGMENT_DEPTH {
            return Err(EvalError::SegmentsTooDeep(name.to_string()));
        }
        let Some(segment) = self.plan.segment(name) else {
            return Err(EvalError::NoSegment(name.to_string()));
        };
        let empty = BTreeMap::new();
        let inner = Env {
            plan: self.plan,
            state: self.state,
            user: self.user.clone(),
            event: EventRef::Value(&NULL),
            journey: Value::Null,
            bindings: &empty,
            now: self.now,
            tz: self.tz,
            depth: self.depth + 1,
        };
        inner
            .condition(&segment.expr)
            .map_err(|e| EvalError::InSegment {
                segment: name.to_string(),
                error: Box::new(e),
            })
    }
}

struct StdContext<'e, 'a> {
    env: &'e Env<'a>,
}

impl waymark_stdlib::Context for StdContext<'_, '_> {
    fn now(&self) -> DateTime<Utc> {
        self.env.now
    }
    fn time_zone(&self) -> chrono_tz::Tz {
        self.env.tz
    }
    fn user(&self) -> &Value {
        self.env.user()
    }
    fn count(&self, event: &str, within: Option<i64>) -> u64 {
        self.env.state.history.count(event, within, self.env.now)
    }
    fn sum(&self, event: &str, field: &str, within: i64) -> Decimal {
        self.env
            .state
            .history
            .sum(event, field, within, self.env.now)
    }
    fn last(&self, event: &str) -> Value {
        self.env.state.history.last(event)
    }
    fn first(&self, event: &str) -> Value {
        self.env.state.history.first(event)
    }
}

/// Timestamps compare with RFC 3339 strings (event properties arrive as JSON).
fn coerce<'v>(l: Cow<'v, Value>, r: Cow<'v, Value>) -> (Cow<'v, Value>, Cow<'v, Value>) {
    let owned = |v: Value| Cow::Owned(v);
    match (&*l, &*r) {
        (Value::Timestamp(_), Value::String(_)) => match r.as_timestamp() {
            Some(t) => (l, owned(Value::Timestamp(t))),
            None => (l, r),
        },
        (Value::String(_), Value::Timestamp(_)) => match l.as_timestamp() {
            Some(t) => (owned(Value::Timestamp(t)), r),
            None => (l, r),
        },
        (Value::Date(_), Value::String(_)) => match r.as_date() {
            Some(d) => (l, owned(Value::Date(d))),
            None => (l, r),
        },
        (Value::String(_), Value::Date(_)) => match l.as_date() {
            Some(d) => (owned(Value::Date(d)), r),
            None => (l, r),
        },
        _ => (l, r),
    }
}

fn binary(op: BinaryOp, l: Cow<'_, Value>, r: Cow<'_, Value>) -> Result<Value, EvalError> {
    match compare(op, l, r)? {
        Compared::Is(b) => Ok(Value::Bool(b)),
        Compared::Arithmetic(l, r) => arithmetic(op, &l, &r),
    }
}

/// A value against a literal, as a condition: decided plainly where no
/// coercion applies, else by the general comparison.
pub(crate) fn compare_to_literal(
    op: BinaryOp,
    l: Cow<'_, Value>,
    r: &Value,
) -> Result<bool, EvalError> {
    if let Some(b) = plainly(op, &l, r) {
        return Ok(b);
    }
    match compare(op, l, Cow::Borrowed(r))? {
        Compared::Is(b) => Ok(b),
        Compared::Arithmetic(l, r) => as_condition(arithmetic(op, &l, &r)?),
    }
}

/// A value read as a condition: true only for `true`; null is false.
fn as_condition(value: Value) -> Result<bool, EvalError> {
    match value {
        Value::Bool(b) => Ok(b),
        Value::Null => Ok(false),
        other => Err(EvalError::NotACondition(other.type_of())),
    }
}

/// What [`compare`] made of an operator.
enum Compared<'v> {
    /// A comparison or `in`, decided.
    Is(bool),
    /// Not a comparison: the operands, coerced, for [`arithmetic`].
    Arithmetic(Cow<'v, Value>, Cow<'v, Value>),
}

/// What [`compare`] decides for two strings, two numbers, or anything
/// `in` a list, where it coerces nothing: `None` for anything else.
fn plainly(op: BinaryOp, l: &Value, r: &Value) -> Option<bool> {
    use BinaryOp as B;
    use Value as V;
    Some(match (l, r) {
        (V::String(a), V::String(b)) => match op {
            B::Eq => a == b,
            B::Ne => a != b,
            _ => return None,
        },
        (V::Number(a), V::Number(b)) => {
            let order = numbers(a, b);
            match op {
                B::Eq => order.is_eq(),
                B::Ne => order.is_ne(),
                B::Lt => order.is_lt(),
                B::Le => order.is_le(),
                B::Gt => order.is_gt(),
                B::Ge => order.is_ge(),
                _ => return None,
            }
        }
        (_, V::List(items)) if op == B::In => items.contains(l),
        _ => return None,
    })
}

/// Two numbers in order. Of the same scale (an amount against a whole
/// literal, most often) their mantissas compare as the numbers do, without
/// the general comparison's rescaling.
fn numbers(a: &rust_decimal::Decimal, b: &rust_decimal::Decimal) -> std::cmp::Ordering {
    if a.scale() == b.scale() {
        a.mantissa().cmp(&b.mantissa())
    } else {
        a.cmp(b)
    }
}

/// A comparison or `in` as a bool, without making a value of it (a
/// condition reads it as one); any other operator is left to
/// [`arithmetic`].
fn compare<'v>(
    op: BinaryOp,
    l: Cow<'v, Value>,
    r: Cow<'v, Value>,
) -> Result<Compared<'v>, EvalError> {
    use BinaryOp as B;
    use Value as V;
    let (l, r) = coerce(l, r);
    let is = |b: bool| Ok(Compared::Is(b));
    let cmp = |o: std::cmp::Ordering| {
        is(match op {
            B::Lt => o.is_lt(),
            B::Le => o.is_le(),
            B::Gt => o.is_gt(),
            _ => o.is_ge(),
        })
    };
    match op {
        B::Eq => is(*l == *r),
        B::Ne => is(*l != *r),
        B::Lt | B::Le | B::Gt | B::Ge => match (&*l, &*r) {
            (V::Null, _) | (_, V::Null) => is(false),
            (V::Number(a), V::Number(b)) => cmp(a.cmp(b)),
            (V::String(a), V::String(b)) => cmp(a.cmp(b)),
            (V::Timestamp(a), V::Timestamp(b)) => cmp(a.cmp(b)),
            (V::Date(a), V::Date(b)) => cmp(a.cmp(b)),
            (V::Timestamp(a), V::Date(b)) => cmp(a.date_naive().cmp(b)),
            (V::Date(a), V::Timestamp(b)) => cmp(a.cmp(&b.date_naive())),
            (V::Duration(a), V::Duration(b)) => cmp(a.cmp(b)),
            (V::TimeOfDay(a), V::TimeOfDay(b)) => cmp(a.cmp(b)),
            (l, r) => Err(EvalError::Compare {
                left: l.type_of(),
                right: r.type_of(),
            }),
        },
        B::In => match (&*l, &*r) {
            (l, V::List(items)) => is(items.contains(l)),
            (l, V::String(s)) => match l {
                V::String(needle) => is(s.contains(needle.as_str())),
                V::Null => is(false),
                other => Err(EvalError::InStringNeedsString(other.type_of())),
            },
            (l, V::Record(map)) => is(l.as_str().is_some_and(|k| map.contains_key(k))),
            (_, V::Null) => is(false),
            (_, other) => Err(EvalError::InNeedsCollection(other.type_of())),
        },
        _ => Ok(Compared::Arithmetic(l, r)),
    }
}

fn arithmetic(op: BinaryOp, l: &Value, r: &Value) -> Result<Value, EvalError> {
    use BinaryOp as B;
    use Value as V;
    let overflow = || EvalError::Overflow(op);
    let seconds = |d: i64| Duration::try_seconds(d).ok_or_else(overflow);
    match (op, l, r) {
        (_, V::Null, _) | (_, _, V::Null) => Err(EvalError::NullArithmetic(op)),
        (B::Add, V::Number(a), V::Number(b)) => {
            a.checked_add(*b).map(V::Number).ok_or_else(overflow)
        }
        (B::Sub, V::Number(a), V::Number(b)) => {
            a.checked_sub(*b).map(V::Number).ok_or_else(overflow)
        }
        (B::Mul, V::Number(a), V::Number(b)) => {
            a.checked_mul(*b).map(V::Number).ok_or_else(overflow)
        }
        (B::Div | B::Rem, V::Number(_), V::Number(b)) if b.is_zero() => {
            Err(EvalError::DivisionByZero)
        }
        (B::Div, V::Number(a), V::Number(b)) => {
            a.checked_div(*b).map(V::Number).ok_or_else(overflow)
        }
        (B::Rem, V::Number(a), V::Number(b)) => {
            a.checked_rem(*b).map(V::Number).ok_or_else(overflow)
        }
        (B::Add, V::String(a), V::String(b)) => Ok(V::String(format!("{a}{b}"))),
        (B::Add, V::Timestamp(t), V::Duration(d)) | (B::Add, V::Duration(d), V::Timestamp(t)) => t
            .checked_add_signed(seconds(*d)?)
            .map(V::Timestamp)
            .ok_or_else(overflow),
        (B::Sub, V::Timestamp(t), V::Duration(d)) => t
            .checked_sub_signed(seconds(*d)?)
            .map(V::Timestamp)
            .ok_or_else(overflow),
        (B::Sub, V::Timestamp(a), V::Timestamp(b)) => Ok(V::Duration((*a - *b).num_seconds())),
        (B::Add, V::Date(a), V::Duration(d)) => a
            .checked_add_signed(Duration::days(d / 86_400))
            .map(V::Date)
            .ok_or_else(overflow),
        (B::Sub, V::Date(a), V::Duration(d)) => a
            .checked_sub_signed(Duration::days(d / 86_400))
            .map(V::Date)
            .ok_or_else(overflow),
        (B::Sub, V::Date(a), V::Date(b)) => Ok(V::Duration((*a - *b).num_seconds())),
        (B::Add, V::Duration(a), V::Duration(b)) => {
            a.checked_add(*b).map(V::Duration).ok_or_else(overflow)
        }
        (B::Sub, V::Duration(a), V::Duration(b)) => {
            a.checked_sub(*b).map(V::Duration).ok_or_else(overflow)
        }
        (B::Mul, V::Duration(d), V::Number(n)) | (B::Mul, V::Number(n), V::Duration(d)) => {
            let product = Decimal::from(*d).checked_mul(*n).ok_or_else(overflow)?;
            i64::try_from(product.round())
                .map(V::Duration)
                .map_err(|_| overflow())
        }
        (B::Div, V::Duration(_), V::Number(n)) if n.is_zero() => Err(EvalError::DivisionByZero),
        (B::Div, V::Duration(d), V::Number(n)) => {
            let q = Decimal::from(*d).checked_div(*n).ok_or_else(overflow)?;
            i64::try_from(q.round())
                .map(V::Duration)
                .map_err(|_| overflow())
        }
        (B::Div, V::Duration(_), V::Duration(0)) => Err(EvalError::DivisionByZero),
        (B::Div, V::Duration(a), V::Duration(b)) => Decimal::from(*a)
            .checked_div(Decimal::from(*b))
            .map(V::Number)
            .ok_or_else(overflow),
        _ => Err(EvalError::Combine {
            op,
            left: l.type_of(),
            right: r.type_of(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn n(s: &str) -> Value {
        Value::Number(Decimal::from_str(s).unwrap())
    }

    fn binary(op: BinaryOp, l: Value, r: Value) -> Result<Value, EvalError> {
        super::binary(op, Cow::Owned(l), Cow::Owned(r))
    }

    proptest::proptest! {
        /// Numbers of the same scale compared by their mantissas order as
        /// the general comparison orders them, signs and zeros included.
        #[test]
        fn numbers_order_as_decimals_do(
            a in proptest::num::i64::ANY,
            b in proptest::num::i64::ANY,
            scale_a in 0u32..8,
            scale_b in 0u32..8,
            same in proptest::bool::ANY,
            negative_zero in proptest::bool::ANY,
        ) {
            let scale_b = if same { scale_a } else { scale_b };
            let mut a = Decimal::new(a, scale_a);
            let b = Decimal::new(b, scale_b);
            if negative_zero {
                a = Decimal::new(0, scale_a);
                a.set_sign_negative(true);
            }
            proptest::prop_assert_eq!(numbers(&a, &b), a.cmp(&b));
            proptest::prop_assert_eq!(numbers(&b, &a), b.cmp(&a));
            let zero = Decimal::new(0, scale_a);
            proptest::prop_assert_eq!(numbers(&a, &zero), a.cmp(&zero));
        }
    }

    /// Expressions of literals of every kind under every operator, `not`,
    /// and user fields (present, missing, null).
    fn expr() -> impl proptest::strategy::Strategy<Value = Expr> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..4).prop_map(|i| Value::Number(Decimal::from(i))),
            prop_oneof![Just("gold"), Just("go"), Just(""), Just("2025-01-02")]
                .prop_map(|s| Value::String(s.into())),
            Just(Value::Duration(60)),
            Just(Value::List(vec![
                Value::Number(Decimal::ONE),
                Value::String("gold".into())
            ])),
        ]
        .prop_map(Expr::Literal)
        .boxed();
        let field = prop_oneof![Just("tier"), Just("missing"), Just("nothing")]
            .prop_map(|f| Expr::Field(Box::new(Expr::User), f.to_string()));
        let leaf = prop_oneof![leaf, field];
        leaf.prop_recursive(4, 24, 2, |inner| {
            let op = prop_oneof![
                Just(BinaryOp::Or),
                Just(BinaryOp::And),
                Just(BinaryOp::Eq),
                Just(BinaryOp::Ne),
                Just(BinaryOp::Lt),
                Just(BinaryOp::Le),
                Just(BinaryOp::Gt),
                Just(BinaryOp::Ge),
                Just(BinaryOp::In),
                Just(BinaryOp::Add),
                Just(BinaryOp::Sub),
                Just(BinaryOp::Mul),
                Just(BinaryOp::Div),
                Just(BinaryOp::Rem),
            ];
            prop_oneof![
                (op, inner.clone(), inner.clone()).prop_map(|(op, l, r)| Expr::Binary(
                    op,
                    Box::new(l),
                    Box::new(r)
                )),
                inner.prop_map(|e| Expr::Not(Box::new(e))),
            ]
        })
    }

    proptest::proptest! {
        /// Where `plainly` decides, it decides as `compare` does.
        #[test]
        fn plain_comparisons_are_what_compare_decides(
            op in proptest::sample::select(vec![
                BinaryOp::Eq, BinaryOp::Ne, BinaryOp::Lt, BinaryOp::Le,
                BinaryOp::Gt, BinaryOp::Ge, BinaryOp::In, BinaryOp::Add,
            ]),
            l in 0usize..9,
            r in 0usize..9,
        ) {
            let values = [
                Value::Null,
                n("1.50"),
                n("1.5"),
                n("-2"),
                Value::String("gold".into()),
                Value::String("2025-01-02".into()),
                Value::Date(chrono::NaiveDate::from_ymd_opt(2025, 1, 2).unwrap()),
                Value::List(vec![n("1.5"), Value::String("gold".into())]),
                Value::Timestamp(DateTime::from_timestamp(1_735_776_000, 0).unwrap()),
            ];
            let (l, r) = (&values[l], &values[r]);
            if let Some(b) = plainly(op, l, r) {
                let general = compare(op, Cow::Borrowed(l), Cow::Borrowed(r));
                proptest::prop_assert!(
                    matches!(general, Ok(Compared::Is(g)) if g == b),
                    "{:?} {:?} {:?}", op, l, r
                );
            }
        }

        /// The direct path of `condition` answers as reading `eval`'s value
        /// as a condition does, errors included.
        #[test]
        fn a_condition_is_its_value_read_as_one(e in expr()) {
            let plan = Plan::default();
            let mut state = UserState::new("u");
            state.traits.insert("tier".into(), Value::String("gold".into()));
            state.traits.insert("nothing".into(), Value::Null);
            let bindings = BTreeMap::new();
            let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
            let env = Env::new(&plan, &state, &NULL, &bindings, now, chrono_tz::UTC);
            let read = env.eval(&e).and_then(as_condition);
            proptest::prop_assert_eq!(env.condition(&e), read, "{:?}", e);
        }
    }

    #[test]
    fn decimal_arithmetic_is_exact_and_null_arithmetic_is_an_error() {
        assert_eq!(
            binary(
                BinaryOp::Eq,
                binary(BinaryOp::Add, n("0.1"), n("0.2")).unwrap(),
                n("0.3")
            )
            .unwrap(),
            Value::Bool(true)
        );
        assert!(binary(BinaryOp::Add, Value::Null, n("1")).is_err());
        assert!(binary(BinaryOp::Div, n("1"), n("0")).is_err());
    }

    #[test]
    fn null_compared_with_anything_but_null_is_false() {
        assert_eq!(
            binary(BinaryOp::Lt, Value::Null, n("1")).unwrap(),
            Value::Bool(false)
        );
        assert_eq!(
            binary(BinaryOp::Eq, Value::Null, n("1")).unwrap(),
            Value::Bool(false)
        );
        assert_eq!(
            binary(BinaryOp::Eq, Value::Null, Value::Null).unwrap(),
            Value::Bool(true)
        );
    }

    #[test]
    fn timestamps_compare_with_rfc3339_strings() {
        let t = Value::Timestamp(
            DateTime::parse_from_rfc3339("2025-11-10T12:00:00Z")
                .unwrap()
                .to_utc(),
        );
        let s = Value::String("2025-11-10T20:00:00+08:00".into());
        assert_eq!(
            binary(BinaryOp::Eq, t.clone(), s).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            binary(BinaryOp::Sub, t.clone(), Value::Duration(3600))
                .unwrap()
                .as_timestamp()
                .unwrap()
                .to_rfc3339(),
            "2025-11-10T11:00:00+00:00"
        );
    }

    #[test]
    fn a_user_field_read_alone_is_that_field_of_the_whole_user() {
        let mut state = UserState::new("u1");
        for (k, v) in [
            ("phone", Value::String("138".into())),
            // Built-in names win over traits of the same name.
            ("id", Value::String("not-the-id".into())),
            ("tags", Value::Bool(true)),
            ("points", n("9")),
        ] {
            state.traits.insert(k.into(), v);
        }
        state.tags.insert("vip".into());
        let user = user_value(&state);
        let names = [
            "id",
            "created_at",
            "tags",
            "points",
            "coupons",
            "consent",
            "timezone",
            "phone",
            "missing",
        ];
        for name in names {
            assert_eq!(user_field(&state, name), *user.field(name), "{name}");
        }
        let consent = Value::Record(Fields::from([("sms".to_string(), Value::Bool(true))]));
        state.traits.insert("consent".into(), consent.clone());
        state
            .traits
            .insert("timezone".into(), Value::String("Asia/Shanghai".into()));
        let user = user_value(&state);
        for name in names {
            assert_eq!(user_field(&state, name), *user.field(name), "{name}");
        }
        assert_eq!(user_field(&state, "consent"), consent);
    }
}
