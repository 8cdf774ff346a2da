//! The static types the checker reasons about. `Any` is what the checker
//! cannot know (event properties without a schema, user traits); errors are
//! only reported when both sides are known.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Type {
    Any,
    Null,
    Bool,
    Number,
    String,
    Timestamp,
    Date,
    Duration,
    TimeOfDay,
    List,
    Record,
}

impl Type {
    /// The type a schema names (`string`, `timestamp`, …).
    pub fn from_schema_name(name: &str) -> Option<Type> {
        Some(match name {
            "any" => Type::Any,
            "bool" => Type::Bool,
            "number" => Type::Number,
            "string" => Type::String,
            "timestamp" => Type::Timestamp,
            "date" => Type::Date,
            "duration" => Type::Duration,
            "list" => Type::List,
            "record" => Type::Record,
            _ => return None,
        })
    }

    pub const SCHEMA_NAMES: &'static [&'static str] = &[
        "string",
        "number",
        "bool",
        "timestamp",
        "date",
        "duration",
        "list",
        "record",
        "any",
    ];

    /// Whether the checker knows nothing that would rule a value of `self`
    /// out where `wanted` is needed. `Any` and `Null` fit everywhere (null
    /// is handled at run time); a timestamp-like string does not, since the
    /// checker cannot see into it.
    pub fn fits(self, wanted: Type) -> bool {
        self == wanted || matches!(self, Type::Any | Type::Null) || wanted == Type::Any
    }

    /// Known to be a concrete type (neither `Any` nor `Null`).
    pub fn is_known(self) -> bool {
        !matches!(self, Type::Any | Type::Null)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Any => "any",
            Type::Null => "null",
            Type::Bool => "bool",
            Type::Number => "number",
            Type::String => "string",
            Type::Timestamp => "timestamp",
            Type::Date => "date",
            Type::Duration => "duration",
            Type::TimeOfDay => "time of day",
            Type::List => "list",
            Type::Record => "record",
        })
    }
}
