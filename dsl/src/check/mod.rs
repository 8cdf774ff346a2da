//! `check`: parse every file of a deployment, run each static rule over the
//! whole set, and — when there are no errors — lower it to a plan. Each
//! rule is one small file and one entry in [`RULES`]; rules only read the
//! AST and push diagnostics.

mod bindings;
mod calls;
mod channels;
mod duplicates;
mod literals;
mod loops;
mod names;
mod placement;
mod references;
mod schedules;
mod schema;
mod schema_events;
mod segments;
mod splits;
mod symbols;
mod traits;
mod triggers;
mod types;
mod unreachable;
pub mod walk;

pub use literals::{is_literal, parse_timestamp, parse_timestamp_in};
pub use symbols::Symbols;
pub use unreachable::always_exits;

use crate::ast;
use crate::diagnostic::{self, Diagnostic};
use crate::library::FunctionTable;
use crate::source::Sources;
use std::collections::BTreeMap;

/// One static rule: reads the deployment, reports what is wrong.
pub type Rule = fn(&Cx<'_>, &mut Vec<Diagnostic>);

/// Every rule, by name, in the order they run.
pub const RULES: &[(&str, Rule)] = &[
    ("duplicates", duplicates::check),
    ("triggers", triggers::check),
    ("names", names::check),
    ("bindings", bindings::check),
    ("references", references::check),
    ("calls", calls::check),
    ("types", types::check),
    ("schema", schema::check),
    ("schema_events", schema_events::check),
    ("traits", traits::check),
    ("segments", segments::check),
    ("splits", splits::check),
    ("placement", placement::check),
    ("unreachable", unreachable::check),
    ("loops", loops::check),
    ("schedules", schedules::check),
    ("literals", literals::check),
    ("channels", channels::check),
];

/// What a rule sees.
pub struct Cx<'a> {
    pub sources: &'a Sources,
    pub files: &'a [ast::File],
    pub symbols: Symbols<'a>,
    pub functions: &'a dyn FunctionTable,
    pub channels: Option<&'a ChannelCatalog>,
}

/// The channels a config defines and what their messages take, so that
/// `send` steps can be checked against a config.
#[derive(Debug, Clone, Default)]
pub struct ChannelCatalog {
    channels: BTreeMap<String, ChannelSpec>,
}

#[derive(Debug, Clone)]
pub struct ChannelSpec {
    /// The adapter kind (`email`, `webhook`, …), for messages.
    pub kind: String,
    /// Fields a send must give (`template` is satisfied by `template "…"`).
    pub required: Vec<String>,
    /// Fields a send may give; `None` for any.
    pub accepted: Option<Vec<String>>,
}

impl ChannelCatalog {
    pub fn insert(&mut self, name: impl Into<String>, spec: ChannelSpec) {
        self.channels.insert(name.into(), spec);
    }

    pub fn get(&self, name: &str) -> Option<&ChannelSpec> {
        self.channels.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.channels.keys().map(String::as_str)
    }
}

/// What checking needs besides the sources.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    pub functions: &'a dyn FunctionTable,
    pub channels: Option<&'a ChannelCatalog>,
}

/// The outcome of checking a deployment.
#[derive(Debug)]
pub struct Checked {
    pub files: Vec<ast::File>,
    /// Sorted by file and offset.
    pub diagnostics: Vec<Diagnostic>,
    /// The lowered deployment, when there are no errors (warnings allowed).
    pub plan: Option<crate::plan::Plan>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses and checks every file of `sources`, collecting every diagnostic.
pub fn check(sources: &Sources, options: Options<'_>) -> Checked {
    let (files, mut diagnostics) = crate::parser::parse_all(sources);
    let cx = Cx {
        sources,
        files: &files,
        symbols: Symbols::build(&files),
        functions: options.functions,
        channels: options.channels,
    };
    for (_, rule) in RULES {
        rule(&cx, &mut diagnostics);
    }
    diagnostic::sort(&mut diagnostics);
    let plan = (!diagnostics.iter().any(Diagnostic::is_error))
        .then(|| crate::plan::lower(sources, &files, options.functions));
    Checked {
        files,
        diagnostics,
        plan,
    }
}

/// Words a cap can use to count every non-transactional send.
pub const CAP_ALL: &[&str] = &["messages", "message", "sends", "all"];

/// A cap's word names all sends or a category (not a channel).
pub fn cap_is_category_or_all(symbols: &Symbols<'_>, word: &str) -> bool {
    CAP_ALL.contains(&word) || symbols.categories.contains(word)
}
