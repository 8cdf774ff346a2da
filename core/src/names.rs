//! A user's traits: names to values, in a [`NameMap`] (the language
//! crate's map of a handful of names, which records use too).

pub use waymark_dsl::names::NameMap;
use waymark_dsl::value::Value;

/// A user's traits.
pub type Traits = NameMap<Value>;
