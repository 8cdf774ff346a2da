//! The Waymark journey language: source text to a checked, lowered plan,
//! with diagnostics as data. Pure: no I/O, no clock, no threads. The
//! built-in function table is passed in (it lives in `waymark-stdlib`).
//! [`compile()`] is the one way in: sources (read by the caller) to
//! diagnostics and a plan, in one file order.

#![forbid(unsafe_code)]

// pest is built without `std` (its per-call native stack probe cost a fifth
// of check time; `parser` bounds nesting itself); its derive names `alloc`.
extern crate alloc;

pub mod ast;
pub mod check;
pub mod codes;
pub mod compile;
pub mod diagnostic;
pub mod fmt;
pub mod graph;
pub mod library;
pub mod names;
pub mod parser;
pub mod plan;
pub mod render;
pub mod schedule;
pub mod scope;
pub mod source;
pub mod stored;
pub mod types;
pub mod value;

pub use check::{ChannelCatalog, ChannelSpec, Options};
pub use codes::Code;
pub use compile::{Compiled, compile};
pub use diagnostic::{Diagnostic, Label, Severity};
pub use source::{FileId, Sources, Span};
