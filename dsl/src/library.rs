//! The shape of the built-in function table. The table itself lives in
//! `waymark-stdlib` (which depends on this crate); the checker is handed it
//! as a [`FunctionTable`] and reads signatures from it, so a new built-in
//! is one row there and nothing here.

use crate::types::Type;
use serde::Serialize;

/// What an argument position takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// A value of this type (`Any` for anything).
    Value(Type),
    /// An event name, written bare: `count(order_paid)`. At run time the
    /// argument is the name as a string.
    Event,
    /// An event's property, written `E.PROP`: `sum(order_paid.amount, 30d)`.
    /// At run time the argument is the string `"E.PROP"`.
    EventField,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamKind,
    pub optional: bool,
}

/// What the return type is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Returns {
    Type(Type),
    /// The type of the first argument whose type is known (`min`, `coalesce`).
    LikeArguments,
}

/// What a built-in reads besides its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Needs {
    /// The engine's clock (`now`, `days_since`).
    Clock,
    /// The user's event history aggregates (`count`, `sum`, `last`, `first`).
    History,
    /// The user's profile (`has_tag`).
    User,
    /// The time zone in force where it is called.
    TimeZone,
}

#[derive(Debug, Clone, Serialize)]
pub struct Signature {
    pub name: &'static str,
    pub params: &'static [Param],
    /// The last parameter may repeat.
    pub variadic: bool,
    pub returns: Returns,
    pub needs: &'static [Needs],
    /// The function handles `null` arguments itself; otherwise a `null`
    /// argument makes the result `null` without calling it.
    pub takes_null: bool,
    /// One line for the language reference.
    pub doc: &'static str,
    /// A call that the stdlib's tests run …
    pub example: &'static str,
    /// … and what it returns, as a literal (`19.46`, `"ABC"`, `null`).
    pub example_result: &'static str,
}

impl Signature {
    pub fn min_args(&self) -> usize {
        self.params.iter().filter(|p| !p.optional).count()
    }

    /// `None` when variadic.
    pub fn max_args(&self) -> Option<usize> {
        (!self.variadic).then_some(self.params.len())
    }

    /// The parameter that argument `index` binds to.
    pub fn param(&self, index: usize) -> Option<&Param> {
        self.params.get(index).or(if self.variadic {
            self.params.last()
        } else {
            None
        })
    }

    /// `name(a, b?, c…)` for messages.
    pub fn display(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut s = p.name.to_string();
                if p.optional {
                    s.push('?');
                }
                if self.variadic && i + 1 == self.params.len() {
                    s.push('…');
                }
                s
            })
            .collect();
        format!("{}({})", self.name, params.join(", "))
    }
}

/// The built-ins the checker may call.
pub trait FunctionTable {
    fn lookup(&self, name: &str) -> Option<&Signature>;
    fn names(&self) -> Vec<&'static str>;
}

/// A table with no functions, for tests of the checker itself.
#[derive(Debug, Default)]
pub struct NoFunctions;

impl FunctionTable for NoFunctions {
    fn lookup(&self, _: &str) -> Option<&Signature> {
        None
    }
    fn names(&self) -> Vec<&'static str> {
        Vec::new()
    }
}
