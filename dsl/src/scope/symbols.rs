//! The deployment's index: every named declaration by name, the schema's
//! fields, and the categories journeys declare. Built once per check and
//! shared by the rules.

use crate::ast::{self, Decl};
use crate::types::Type;
use std::collections::{BTreeMap, BTreeSet};

/// The user fields every deployment has (language.md §6).
pub const BUILT_IN_USER_FIELDS: &[(&str, Type)] = &[
    ("id", Type::String),
    ("created_at", Type::Timestamp),
    ("tags", Type::List),
    ("points", Type::Number),
    ("coupons", Type::List),
    ("consent", Type::Record),
    ("timezone", Type::String),
];

/// The fields every event has.
pub const BUILT_IN_EVENT_FIELDS: &[(&str, Type)] =
    &[("name", Type::String), ("at", Type::Timestamp)];

/// The fields of `send_outcome`, the event a `wait for confirmation`
/// resumes on (besides `name` and `at`): `outcome` is `sent`,
/// `not_friend`, `over_quota`, `not_confirmed` or `failed`; `staff` the
/// staff member who was to confirm; `channel` the send's channel.
pub const SEND_OUTCOME_FIELDS: &[(&str, Type)] = &[
    ("outcome", Type::String),
    ("staff", Type::String),
    ("channel", Type::String),
];

/// `journey.X`.
pub const JOURNEY_FIELDS: &[(&str, Type)] = &[
    ("name", Type::String),
    ("version", Type::String),
    ("entered_at", Type::Timestamp),
];

/// `c.X` for `give coupon … as c`.
pub const COUPON_FIELDS: &[(&str, Type)] = &[
    ("id", Type::String),
    ("code", Type::String),
    ("issued_at", Type::Timestamp),
    ("expires_at", Type::Timestamp),
];

#[derive(Debug, Default)]
pub struct Symbols<'a> {
    /// Every named declaration, by name, in source order (duplicates kept).
    pub by_name: BTreeMap<&'a str, Vec<&'a Decl>>,
    /// `schema { user { … } }` fields; `None` when no schema declares the user.
    pub user_fields: Option<BTreeMap<&'a str, Type>>,
    /// `schema { event E { … } }` fields by event.
    pub event_fields: BTreeMap<&'a str, BTreeMap<&'a str, Type>>,
    /// Categories journeys declare, plus `marketing`.
    pub categories: BTreeSet<String>,
    /// Channel names `send` steps use.
    pub channels_used: BTreeSet<&'a str>,
}

impl<'a> Symbols<'a> {
    pub fn build(files: &'a [ast::File]) -> Symbols<'a> {
        let mut symbols = Symbols::default();
        symbols.categories.insert("marketing".into());
        for decl in files.iter().flat_map(|f| &f.decls) {
            if let Some(name) = decl.name() {
                symbols
                    .by_name
                    .entry(name.name.as_str())
                    .or_default()
                    .push(decl);
            }
            match decl {
                Decl::Schema(schema) => {
                    for entry in &schema.entries {
                        let fields = entry.fields.iter().map(|f| {
                            (
                                f.name.name.as_str(),
                                Type::from_schema_name(&f.ty.name).unwrap_or(Type::Any),
                            )
                        });
                        match &entry.event {
                            None => symbols
                                .user_fields
                                .get_or_insert_with(BTreeMap::new)
                                .extend(fields),
                            Some(event) => symbols
                                .event_fields
                                .entry(event.name.as_str())
                                .or_default()
                                .extend(fields),
                        }
                    }
                }
                Decl::Journey(journey) => {
                    for header in &journey.headers {
                        if let ast::HeaderKind::Category(c) = &header.kind {
                            symbols.categories.insert(c.value.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        let mut channels = BTreeSet::new();
        super::walk::for_each_step(files, |step| {
            if let ast::StepKind::Send { channel, .. } = &step.kind {
                channels.insert(channel.name.as_str());
            }
        });
        symbols.channels_used = channels;
        symbols
    }

    /// The first declaration of that name.
    pub fn get(&self, name: &str) -> Option<&'a Decl> {
        self.by_name.get(name).and_then(|d| d.first().copied())
    }

    pub fn segment(&self, name: &str) -> Option<&'a ast::Segment> {
        match self.get(name)? {
            Decl::Segment(s) => Some(s),
            _ => None,
        }
    }

    pub fn constant(&self, name: &str) -> Option<&'a ast::Const> {
        match self.get(name)? {
            Decl::Const(c) => Some(c),
            _ => None,
        }
    }

    /// Names of declarations of one kind, for "did you mean".
    pub fn names_of<'s>(&'s self, kind: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.by_name
            .iter()
            .filter(move |(_, d)| d[0].kind() == kind)
            .map(|(n, _)| *n)
    }

    /// The type of `user.FIELD`: built in, from the schema, or `Any`; `None`
    /// when a schema declares the user and lacks the field.
    pub fn user_field(&self, field: &str) -> Option<Type> {
        if let Some((_, ty)) = BUILT_IN_USER_FIELDS.iter().find(|(n, _)| *n == field) {
            return Some(*ty);
        }
        match &self.user_fields {
            Some(fields) => fields.get(field).copied(),
            None => Some(Type::Any),
        }
    }

    /// The type of `event.FIELD` for a known event, as `user_field`.
    pub fn event_field(&self, event: Option<&str>, field: &str) -> Option<Type> {
        if let Some((_, ty)) = BUILT_IN_EVENT_FIELDS.iter().find(|(n, _)| *n == field) {
            return Some(*ty);
        }
        if event == Some(ast::SEND_OUTCOME) {
            // Built in, so known without a schema; a schema may add fields.
            if let Some((_, ty)) = SEND_OUTCOME_FIELDS.iter().find(|(n, _)| *n == field) {
                return Some(*ty);
            }
            return self
                .event_fields
                .get(ast::SEND_OUTCOME)
                .and_then(|f| f.get(field).copied());
        }
        match event.and_then(|e| self.event_fields.get(e)) {
            Some(fields) => fields.get(field).copied(),
            None => Some(Type::Any),
        }
    }
}

/// Words a cap can use to count every non-transactional send.
pub const CAP_ALL: &[&str] = &["messages", "message", "sends", "all"];

/// A cap's word names all sends or a category (not a channel).
pub fn cap_is_category_or_all(symbols: &Symbols<'_>, word: &str) -> bool {
    CAP_ALL.contains(&word) || symbols.categories.contains(word)
}
