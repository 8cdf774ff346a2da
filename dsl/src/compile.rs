//! The compile driver: the one way a set of sources becomes diagnostics and
//! a plan. It puts the files in one defined order (see [`compile`]), parses
//! them, runs every static rule, and lowers the set to a plan when there are
//! no errors. The CLI, the daemon's start, `POST /v1/deploy` and the tests
//! all call it, so a script set means the same thing wherever it is
//! compiled. Reading files is the caller's job: this module does no I/O.

use crate::ast;
use crate::check::{self, Options};
use crate::diagnostic::{self, Diagnostic};
use crate::plan::{self, Plan};
use crate::source::Sources;

/// What compiling a source set gives.
#[derive(Debug)]
pub struct Compiled {
    /// The sources in compile order: every [`crate::FileId`] in `files`,
    /// `diagnostics` and `plan` points into these.
    pub sources: Sources,
    pub files: Vec<ast::File>,
    /// Sorted by file (in compile order) and offset.
    pub diagnostics: Vec<Diagnostic>,
    /// The lowered deployment, when there are no errors (warnings allowed).
    pub plan: Option<Plan>,
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses, checks and — when there are no errors — lowers `sources`.
///
/// **File order.** The files are first sorted by name, compared path
/// component by path component (split at `/`), so `a/z.journey` comes
/// before `a.journey` exactly as a sorted walk of the folders lists them.
/// Files with the same name keep the order they were given in. The result
/// (which of two duplicate declarations is reported, the order of
/// diagnostics and of the plan's journeys) therefore depends on the names
/// of the files, never on the order a caller listed them in.
pub fn compile(mut sources: Sources, options: Options<'_>) -> Compiled {
    sources.sort_by_name(by_path);
    let (files, mut diagnostics) = crate::parser::parse_all(&sources);
    check::run(&sources, &files, options, &mut diagnostics);
    diagnostic::sort(&mut diagnostics);
    let plan = (!diagnostics.iter().any(Diagnostic::is_error))
        .then(|| plan::lower(&sources, &files, options.functions));
    Compiled {
        sources,
        files,
        diagnostics,
        plan,
    }
}

/// Compares two file names path component by path component.
fn by_path(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_sorts_before_a_file_that_extends_its_name() {
        assert!(by_path("a/z.journey", "a.journey").is_lt());
        assert!(by_path("a.journey", "b/a.journey").is_lt());
        assert!(by_path("x/a.journey", "x/b.journey").is_lt());
    }
}
