//! Built-in functions (placeholder until the table lands).

use waymark_dsl::library::{FunctionTable, Signature};

#[derive(Debug)]
pub struct Stdlib;

impl FunctionTable for Stdlib {
    fn lookup(&self, _: &str) -> Option<&Signature> {
        None
    }
    fn names(&self) -> Vec<&'static str> {
        Vec::new()
    }
}

pub fn stdlib() -> &'static Stdlib {
    &Stdlib
}
