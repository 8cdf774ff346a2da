//! Rule conditions made ready once per deployment. A rule's condition
//! runs on every event of its name, and most are a few comparisons of an
//! event property, a user trait or a history sum with a literal, joined by
//! `and`, `or` and `not`. Those parts are resolved here once (which side
//! is read, the literal, the event and property a `sum` reads), so that
//! an event reads the values and compares them, where walking the
//! expression found each of them again; anything else is walked as
//! written ([`Env::condition`]). Either way the answer, and any error, is
//! the walk's: a compared value that is not a plain string or number goes
//! through the same comparison.
//!
//! The rules listening for one event often read the same property or sum
//! (five rules on `order_paid` each compare `event.amount`). Each such
//! read gets a place in a deployment-wide table, and the rules of one
//! event share a [`Memo`] that holds what each place read, until a rule
//! fires and its steps run.

use super::Env;
use super::eval::{self, EvalError, EventRef};
use crate::model::UserState;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::BTreeMap;
use waymark_dsl::ast::BinaryOp;
use waymark_dsl::plan::{Expr, Plan};
use waymark_dsl::value::Value;

/// A condition, ready.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    /// A value read straight from the event, the user or their history,
    /// against a literal.
    Compare {
        read: Read,
        op: BinaryOp,
        literal: Value,
        /// Its place in the [`Memo`], for a read rules may share.
        shared: Option<usize>,
    },
    And(Box<Check>, Box<Check>),
    Or(Box<Check>, Box<Check>),
    Not(Box<Check>),
    /// Any other condition, walked as written.
    Walk(Expr),
}

/// What a [`Check::Compare`] reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Read {
    /// `event.at` or `event.name`, which the event makes.
    Event(String),
    /// `event.FIELD` for any other field: the property as sent.
    Property(String),
    /// `user.TRAIT`, a trait as stored (not a built-in field).
    Trait(String),
    /// `sum(EVENT.FIELD, WITHIN)`.
    Sum {
        event: String,
        field: String,
        within: i64,
    },
    /// `coalesce(READ, LITERAL)`: what `read` reads unless it is null.
    Coalesce { read: Box<Read>, otherwise: Value },
}

/// What a check reads from: one user at one moment, with an event.
pub(crate) struct Site<'a, 'e> {
    pub plan: &'a Plan,
    pub state: &'a UserState,
    pub event: EventRef<'a>,
    /// The event's properties as sent.
    pub properties: &'e Value,
    pub now: DateTime<Utc>,
    /// The time zone the rule runs in, found when a check needs it.
    pub zone: &'a dyn Fn() -> chrono_tz::Tz,
    /// What the checks before read of this event.
    pub memo: &'a Memo<'e>,
}

/// How many shared reads a [`Memo`] holds; a deployment's reads past
/// these are read every time.
pub(crate) const SHARED_READS: usize = 16;

/// What the shared reads of one event's rule checks read so far.
pub(crate) struct Memo<'e> {
    reads: [Cell<Memoized<'e>>; SHARED_READS],
}

#[derive(Clone, Copy)]
enum Memoized<'e> {
    Unread,
    Property(&'e Value),
    Sum(Decimal),
}

impl<'e> Memo<'e> {
    pub(crate) fn new() -> Memo<'e> {
        Memo {
            reads: std::array::from_fn(|_| Cell::new(Memoized::Unread)),
        }
    }

    /// Forgets every read: a rule's steps ran, and may have changed what
    /// the next rule reads.
    pub(crate) fn forget(&self) {
        for read in &self.reads {
            read.set(Memoized::Unread);
        }
    }
}

/// The reads rules may share (event properties and sums), each at its
/// place in a [`Memo`].
pub(crate) type SharedReads = Vec<Read>;

static NO_BINDINGS: BTreeMap<String, Value> = BTreeMap::new();

impl Check {
    /// `expr` made ready, its shareable reads placed in `shared`.
    pub(crate) fn new(expr: &Expr, shared: &mut SharedReads) -> Check {
        match expr {
            Expr::Binary(BinaryOp::And, l, r) => Check::And(
                Box::new(Check::new(l, shared)),
                Box::new(Check::new(r, shared)),
            ),
            Expr::Binary(BinaryOp::Or, l, r) => Check::Or(
                Box::new(Check::new(l, shared)),
                Box::new(Check::new(r, shared)),
            ),
            Expr::Not(e) => Check::Not(Box::new(Check::new(e, shared))),
            Expr::Binary(op, l, r) => match (read_of(l), r.as_ref()) {
                (Some(read), Expr::Literal(literal)) => Check::Compare {
                    shared: place(&read, shared),
                    read,
                    op: *op,
                    literal: literal.clone(),
                },
                _ => Check::Walk(expr.clone()),
            },
            _ => Check::Walk(expr.clone()),
        }
    }

    /// What [`Env::condition`] answers for the expression this was made
    /// from.
    pub(crate) fn holds(&self, site: &Site<'_, '_>) -> Result<bool, EvalError> {
        match self {
            Check::And(l, r) => Ok(l.holds(site)? && r.holds(site)?),
            Check::Or(l, r) => Ok(l.holds(site)? || r.holds(site)?),
            Check::Not(c) => Ok(!c.holds(site)?),
            Check::Compare {
                read,
                op,
                literal,
                shared,
            } => {
                let value = match shared {
                    Some(at) => read.shared_value(site, &site.memo.reads[*at]),
                    None => read.value(site),
                };
                eval::compare_to_literal(*op, value, literal)
            }
            Check::Walk(expr) => Env::with_event(
                site.plan,
                site.state,
                site.event,
                &NO_BINDINGS,
                site.now,
                (site.zone)(),
            )
            .condition(expr),
        }
    }
}

/// The place of `read` in `shared` (added if new), if rules may share it
/// and there is room.
fn place(read: &Read, shared: &mut SharedReads) -> Option<usize> {
    if !matches!(read, Read::Property(_) | Read::Sum { .. }) {
        return None;
    }
    match shared.iter().position(|r| r == read) {
        Some(at) => Some(at),
        None if shared.len() < SHARED_READS => {
            shared.push(read.clone());
            Some(shared.len() - 1)
        }
        None => None,
    }
}

impl Read {
    /// [`Read::value`], through its place in the memo.
    fn shared_value<'s, 'e: 's>(
        &'s self,
        site: &Site<'s, 'e>,
        memo: &Cell<Memoized<'e>>,
    ) -> Cow<'s, Value> {
        match (memo.get(), self) {
            (Memoized::Property(value), _) => Cow::Borrowed(value),
            (Memoized::Sum(sum), _) => Cow::Owned(Value::Number(sum)),
            (Memoized::Unread, Read::Property(field)) => {
                let value = site.properties.field(field);
                memo.set(Memoized::Property(value));
                Cow::Borrowed(value)
            }
            (
                Memoized::Unread,
                Read::Sum {
                    event,
                    field,
                    within,
                },
            ) => {
                let sum = site.state.history.sum(event, field, *within, site.now);
                memo.set(Memoized::Sum(sum));
                Cow::Owned(Value::Number(sum))
            }
            (Memoized::Unread, _) => self.value(site),
        }
    }

    fn value<'s>(&'s self, site: &Site<'s, '_>) -> Cow<'s, Value> {
        match self {
            Read::Event(field) => site.event.field(field),
            Read::Property(field) => Cow::Borrowed(site.properties.field(field)),
            // Made only for a name that is no built-in field.
            Read::Trait(name) => Cow::Borrowed(site.state.traits.get(name).unwrap_or(&NULL)),
            Read::Sum {
                event,
                field,
                within,
            } => Cow::Owned(Value::Number(
                site.state.history.sum(event, field, *within, site.now),
            )),
            Read::Coalesce { read, otherwise } => match read.value(site) {
                value if value.is_null() => Cow::Borrowed(otherwise),
                value => value,
            },
        }
    }
}

static NULL: Value = Value::Null;

/// What a compared side reads, if it is one a [`Check::Compare`] reads.
fn read_of(expr: &Expr) -> Option<Read> {
    match expr {
        Expr::Field(base, field) => match base.as_ref() {
            Expr::Event if matches!(field.as_str(), "at" | "name") => {
                Some(Read::Event(field.clone()))
            }
            Expr::Event => Some(Read::Property(field.clone())),
            // Built-in fields (and `consent`, which reads as an empty record
            // when missing) are made by the walk.
            Expr::User if eval::is_plain_trait(field) => Some(Read::Trait(field.clone())),
            _ => None,
        },
        // `sum` of a literal `EVENT.FIELD` over a literal window, as the
        // checker leaves it: what the built-in would read, without its
        // argument checks, which such arguments always pass.
        Expr::Call { function, args } if function == "sum" => match args.as_slice() {
            [
                Expr::Literal(Value::String(of)),
                Expr::Literal(Value::Duration(within)),
            ] if *within >= 0 => {
                let (event, field) = of.rsplit_once('.')?;
                (!event.is_empty() && !field.is_empty()).then(|| Read::Sum {
                    event: event.to_string(),
                    field: field.to_string(),
                    within: *within,
                })
            }
            _ => None,
        },
        // `coalesce` takes any two or more values: with two, nothing in
        // its arguments' checks can fail.
        Expr::Call { function, args } if function == "coalesce" => match args.as_slice() {
            [read, Expr::Literal(otherwise)] => Some(Read::Coalesce {
                read: Box::new(read_of(read)?),
                otherwise: otherwise.clone(),
            }),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::EventValue;
    use crate::model::Event;
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_762_000_000 + s, 0).unwrap()
    }

    /// Values of every kind a property, a trait or a literal may be.
    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..3000).prop_map(|n| Value::Number(Decimal::from(n))),
            prop_oneof![
                Just("gold"),
                Just("/cart"),
                Just(""),
                Just("2025-11-01T00:00:00Z")
            ]
            .prop_map(|s| Value::String(s.into())),
            (0i64..100_000).prop_map(|s| Value::Timestamp(at(s))),
            (0i64..100).prop_map(|d| Value::Duration(d * 86_400)),
            proptest::collection::vec(
                prop_oneof![
                    Just(Value::String("gold".into())),
                    Just(Value::Number(Decimal::from(5)))
                ],
                0..3
            )
            .prop_map(Value::List),
        ]
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("missing"),
            Just("at"),
            Just("name"),
            Just("consent"),
            Just("id"),
            Just("points")
        ]
        .prop_map(String::from)
    }

    /// A side a rule condition compares: what `Check` reads, and others.
    fn plain_side() -> impl Strategy<Value = Expr> {
        prop_oneof![
            name().prop_map(|f| Expr::Field(Box::new(Expr::Event), f)),
            name().prop_map(|f| Expr::Field(Box::new(Expr::User), f)),
            (
                prop_oneof![
                    Just("order_paid.amount"),
                    Just("order_paid.missing"),
                    Just("nothing.amount"),
                    Just("order_paid"),
                    Just(".amount")
                ],
                prop_oneof![Just(30 * 86_400i64), Just(0), Just(-1)]
            )
                .prop_map(|(of, within)| Expr::Call {
                    function: "sum".into(),
                    args: vec![
                        Expr::Literal(Value::String(of.into())),
                        Expr::Literal(Value::Duration(within)),
                    ],
                }),
            value().prop_map(Expr::Literal),
        ]
    }

    /// A side, or `coalesce` of one with a literal (a read or not, null
    /// or not, either side).
    fn side() -> impl Strategy<Value = Expr> {
        prop_oneof![
            3 => plain_side(),
            1 => (plain_side(), value()).prop_map(|(read, otherwise)| Expr::Call {
                function: "coalesce".into(),
                args: vec![read, Expr::Literal(otherwise)],
            }),
        ]
    }

    fn op() -> impl Strategy<Value = BinaryOp> {
        use BinaryOp as B;
        prop_oneof![
            Just(B::Eq),
            Just(B::Ne),
            Just(B::Lt),
            Just(B::Le),
            Just(B::Gt),
            Just(B::Ge),
            Just(B::In),
            Just(B::Add)
        ]
    }

    fn condition() -> impl Strategy<Value = Expr> {
        let leaf = (op(), side(), side())
            .prop_map(|(op, l, r)| Expr::Binary(op, Box::new(l), Box::new(r)));
        leaf.prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(l, r)| Expr::Binary(
                    BinaryOp::And,
                    Box::new(l),
                    Box::new(r)
                )),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| Expr::Binary(
                    BinaryOp::Or,
                    Box::new(l),
                    Box::new(r)
                )),
                inner.prop_map(|e| Expr::Not(Box::new(e))),
            ]
        })
    }

    fn record(fields: Vec<(String, Value)>) -> Value {
        Value::Record(fields.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        /// Conditions made ready answer what walking them answers, errors
        /// included, for any event, user and history, also when they share
        /// reads (as the rules of one event do) through one memo.
        #[test]
        fn a_ready_condition_answers_what_the_walk_answers(
            exprs in proptest::collection::vec(condition(), 1..4),
            props in proptest::collection::vec((name(), value()), 0..4),
            traits in proptest::collection::vec((name(), value()), 0..4),
            paid in proptest::collection::vec((0i64..60, -5i64..2000), 0..4),
        ) {
            let plan = Plan::default();
            let mut state = UserState::new("u1");
            for (k, v) in traits {
                state.traits.insert(k, v);
            }
            for (day, amount) in paid {
                let props = record(vec![("amount".into(), Value::Number(Decimal::from(amount)))]);
                state.history.record("order_paid", at(day * 86_400), &props);
            }
            let event = Event {
                user: "u1".into(),
                name: "page_view".into(),
                properties: record(props),
                at: at(61 * 86_400),
                message_id: None,
            };
            let now = event.at;
            let lazy = EventValue::new(&event);
            let whole = event.as_value();
            let mut shared = SharedReads::new();
            let checks: Vec<Check> = exprs.iter().map(|e| Check::new(e, &mut shared)).collect();
            for read in [EventRef::Lazy(&lazy), EventRef::Value(&whole)] {
                let memo = Memo::new();
                let site = Site {
                    plan: &plan,
                    state: &state,
                    event: read,
                    properties: &event.properties,
                    now,
                    zone: &|| chrono_tz::UTC,
                    memo: &memo,
                };
                // Twice over: the second time every shared read is memoized.
                for (expr, check) in exprs.iter().chain(&exprs).zip(checks.iter().chain(&checks)) {
                    let walked = Env::with_event(&plan, &state, read, &NO_BINDINGS, now, chrono_tz::UTC)
                        .condition(expr);
                    prop_assert_eq!(check.holds(&site), walked, "{:?}", expr);
                }
            }
        }
    }

    /// The plan of a script that checks.
    fn plan_of(script: &str) -> Plan {
        let mut sources = waymark_dsl::Sources::new();
        sources.add("test.journey", script);
        let options = waymark_dsl::Options {
            functions: waymark_stdlib::stdlib(),
            channels: None,
        };
        waymark_dsl::compile(sources, options)
            .plan
            .expect("the script checks")
    }

    /// A check's comparisons in order, each as what it reads and its place
    /// in the memo; `walk` for a part walked as written.
    fn reads(check: &Check, out: &mut Vec<(String, Option<usize>)>) {
        match check {
            Check::And(l, r) | Check::Or(l, r) => {
                reads(l, out);
                reads(r, out);
            }
            Check::Not(c) => reads(c, out),
            Check::Compare { read, shared, .. } => out.push((format!("{read:?}"), *shared)),
            Check::Walk(e) => out.push((format!("walk {e:?}"), None)),
        }
    }

    const SUM: &str = r#"Sum { event: "order_paid", field: "amount", within: 31536000 }"#;

    #[test]
    fn rules_of_one_deployment_share_the_reads_they_have_in_common() {
        let plan = plan_of(
            r#"
rule big "big" {
  when event order_paid
  if event.amount >= 500 and sum(order_paid.amount, 365d) >= 10
  then { emit x }
}
rule small "small" {
  when event order_paid
  if event.amount < 50 or user.tier == "gold"
  then { emit y }
}
rule total "total" {
  when event order_paid
  if sum(order_paid.amount, 365d) >= 10 and event.coupon == "A"
  then { emit z }
}
"#,
        );
        let d = crate::deployment::Deployment::new(plan);
        let mut seen = Vec::new();
        for rule in 0..3 {
            for check in d.rule_checks(rule) {
                reads(check, &mut seen);
            }
        }
        let amount = r#"Property("amount")"#.to_string();
        assert_eq!(
            seen,
            [
                (amount.clone(), Some(0)),
                (SUM.to_string(), Some(1)),
                (amount, Some(0)),
                // Traits live in the user state, which a firing rule changes: read every time.
                (r#"Trait("tier")"#.to_string(), None),
                (SUM.to_string(), Some(1)),
                (r#"Property("coupon")"#.to_string(), Some(2)),
            ]
        );
    }

    #[test]
    fn the_usual_rule_conditions_are_read_directly() {
        let plan = plan_of(
            r#"
rule r "r" {
  when event order_paid
  if event.amount >= 500 and user.tier in ["gold", "platinum"] and sum(order_paid.amount, 365d) >= 10 and coalesce(user.city, "上海") != "北京"
  then { emit x }
}
"#,
        );
        let condition = plan.rules[0].condition.as_ref().unwrap();
        let mut seen = Vec::new();
        reads(&Check::new(condition, &mut SharedReads::new()), &mut seen);
        let seen: Vec<String> = seen.into_iter().map(|(read, _)| read).collect();
        assert_eq!(
            seen,
            [
                r#"Property("amount")"#,
                r#"Trait("tier")"#,
                SUM,
                r#"Coalesce { read: Trait("city"), otherwise: String("上海") }"#
            ]
        );
    }
}
