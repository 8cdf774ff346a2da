//! `check`: run each static rule over the parsed files of a deployment.
//! Each rule is one small file and one entry in [`RULES`]; rules only read
//! the AST and push diagnostics. Parsing, file order and lowering to a plan
//! are the driver's ([`crate::compile()`]).

mod bindings;
mod calls;
mod channels;
mod confirmations;
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
mod traits;
mod triggers;
mod types;
mod unreachable;

pub use unreachable::always_exits;

use crate::ast;
use crate::diagnostic::Diagnostic;
use crate::library::FunctionTable;
use crate::scope::Symbols;
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
    ("grants", channels::grant_resends),
    ("service templates", channels::service_templates),
    ("answers", channels::answers_in_place),
    ("answers held back", channels::answers_held_back),
    ("confirmations", confirmations::check),
    ("confirmed by staff", confirmations::staff),
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
    /// Each send needs a grant of its template (one-time subscribe
    /// messages: one accept, one send).
    pub spends_grants: bool,
    /// The event each send answers, when the kind's address comes from it
    /// and is good briefly (a WeCom welcome message answers
    /// `add_external_contact` with its `welcome_code` within 20 s).
    pub answers: Option<String>,
    /// Its sends go out only once a staff member confirms them (a WeCom
    /// customer mass send): a `wait for confirmation` may wait on them.
    pub confirmed_by_staff: bool,
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

/// Runs every rule over a parsed deployment, adding to `diagnostics`
/// (unsorted). The whole pipeline, with its file order, is
/// [`crate::compile()`].
pub(crate) fn run(
    sources: &Sources,
    files: &[ast::File],
    options: Options<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let cx = Cx {
        sources,
        files,
        symbols: Symbols::build(files),
        functions: options.functions,
        channels: options.channels,
    };
    for (_, rule) in RULES {
        rule(&cx, diagnostics);
    }
}
