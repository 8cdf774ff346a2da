//! Scope: what a name means where it stands. The deployment's index of
//! declarations ([`Symbols`]), the walk that visits every expression with
//! what it can see ([`walk`]), and how literal texts read ([`literals`]).
//! Both the static rules (`check`) and lowering (`plan`) stand on this
//! module, and it depends on neither.

pub mod literals;
pub mod symbols;
pub mod walk;

pub use literals::{is_literal, parse_timestamp, parse_timestamp_in};
pub use symbols::{CAP_ALL, Symbols, cap_is_category_or_all};
