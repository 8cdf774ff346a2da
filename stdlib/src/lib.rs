//! Waymark's built-in functions: one table, [`BUILTINS`], whose rows carry
//! everything about a function — its [`Signature`] (parameters, return
//! type, what context it needs, a one-line doc and a runnable example) and
//! its implementation. The checker reads the signatures through
//! [`Stdlib`] (a [`FunctionTable`]), the runtime calls [`call`], the
//! language reference (`docs/functions.md`) is generated from the table by
//! [`reference_markdown`], and a test runs every row's example.
//!
//! Implementations read the world only through [`Context`] and never
//! panic: a bad argument is an [`EvalError`] naming the function.

#![forbid(unsafe_code)]

mod args;
mod fixed;
mod history;
mod misc;
mod numbers;
mod reference;
mod text;
mod time;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::fmt;
use waymark_dsl::library::{FunctionTable, Signature};
use waymark_dsl::value::Value;

pub use fixed::{FixedContext, RecordedEvent};
pub use reference::reference_markdown;

/// What built-ins read besides their arguments. The engine implements it
/// for the user and step being evaluated; [`FixedContext`] is a plain
/// in-memory one for tests and examples.
pub trait Context {
    /// The engine's clock.
    fn now(&self) -> DateTime<Utc>;
    /// The time zone in force at the call site (step, journey, user,
    /// policy, then UTC; language.md §6).
    fn time_zone(&self) -> chrono_tz::Tz;
    /// The user's profile record: traits plus `id`, `tags` (a list of
    /// strings), `points`, `coupons`, `consent`, `timezone`, …
    fn user(&self) -> &Value;
    /// How many events named `event` the user has, only those after
    /// `now - within` seconds when `within` is given (a rolling window
    /// leaves out its start instant, as caps do).
    fn count(&self, event: &str, within: Option<i64>) -> u64;
    /// The sum of the numeric property `field` over the user's `event`s
    /// after `now - within` seconds; values that are not numbers are
    /// skipped.
    fn sum(&self, event: &str, field: &str, within: i64) -> Decimal;
    /// The user's latest `event` as a record with `name`, `at` and its
    /// properties, or `Null` when there was none.
    fn last(&self, event: &str) -> Value;
    /// The user's earliest `event`, like [`Context::last`].
    fn first(&self, event: &str) -> Value;
}

/// A runtime error of a built-in: the message names the function and says
/// what was wrong (`round: places must be a whole number between 0 and
/// 28, got 2.5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError(pub String);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EvalError {}

/// How an implementation is called: the context and the arguments, after
/// [`call`] has checked their number and kinds and applied the null rule.
pub type Eval = fn(&dyn Context, &[&Value]) -> Result<Value, EvalError>;

/// The section of the language reference a built-in is listed under
/// (the groups of language.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    History,
    Time,
    Text,
    Numbers,
    Misc,
}

impl Group {
    pub const ALL: [Group; 5] = [
        Group::History,
        Group::Time,
        Group::Text,
        Group::Numbers,
        Group::Misc,
    ];

    /// The group's name as language.md §6 writes it.
    pub fn name(self) -> &'static str {
        match self {
            Group::History => "history",
            Group::Time => "time",
            Group::Text => "text",
            Group::Numbers => "numbers",
            Group::Misc => "misc",
        }
    }
}

/// One row of the table.
#[derive(Debug)]
pub struct Builtin {
    pub group: Group,
    pub signature: Signature,
    pub eval: Eval,
}

/// Every built-in function, grouped as in language.md §6. Each row lives
/// next to its implementation in the group's module.
pub static BUILTINS: &[Builtin] = &[
    // history
    history::COUNT,
    history::SUM,
    history::LAST,
    history::FIRST,
    history::DAYS_SINCE,
    history::HOURS_SINCE,
    // time
    time::DATE,
    time::HOUR,
    time::WEEKDAY,
    time::IS_BIRTHDAY,
    time::TIMESTAMP,
    // text
    text::LEN,
    text::LOWER,
    text::UPPER,
    text::CONTAINS,
    text::STARTS_WITH,
    text::FORMAT_MONEY,
    // numbers
    numbers::MIN,
    numbers::MAX,
    numbers::ABS,
    numbers::ROUND,
    numbers::FLOOR,
    numbers::CEIL,
    // misc
    misc::COALESCE,
    misc::HAS_TAG,
    misc::DAYS_BETWEEN,
];

/// The row of a built-in, by name.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    // Looked up on every call an expression makes, so by a map made once.
    static BY_NAME: std::sync::LazyLock<rustc_hash::FxHashMap<&'static str, &'static Builtin>> =
        std::sync::LazyLock::new(|| {
            let mut map = rustc_hash::FxHashMap::default();
            for b in BUILTINS {
                // The first of a name, as a search of the table finds it.
                map.entry(b.signature.name).or_insert(b);
            }
            map
        });
    BY_NAME.get(name).copied()
}

/// The table as the checker sees it.
#[derive(Debug, Default)]
pub struct Stdlib;

impl FunctionTable for Stdlib {
    fn lookup(&self, name: &str) -> Option<&Signature> {
        builtin(name).map(|b| &b.signature)
    }

    fn names(&self) -> Vec<&'static str> {
        BUILTINS.iter().map(|b| b.signature.name).collect()
    }
}

/// The one [`Stdlib`].
pub fn stdlib() -> &'static Stdlib {
    static STDLIB: Stdlib = Stdlib;
    &STDLIB
}

/// Calls built-in `name`: checks the number of arguments and their kinds
/// (an [`EvalError`] if wrong), returns `null` without calling when an
/// argument is `null` and the function does not take nulls (language.md
/// §6), then runs the implementation.
pub fn call(name: &str, ctx: &dyn Context, args: &[&Value]) -> Result<Value, EvalError> {
    let builtin =
        builtin(name).ok_or_else(|| EvalError(format!("there is no function named `{name}`")))?;
    args::check_call(&builtin.signature, args)?;
    if !builtin.signature.takes_null && args.iter().any(|a| a.is_null()) {
        return Ok(Value::Null);
    }
    (builtin.eval)(ctx, args)
}
