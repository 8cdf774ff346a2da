//! Segments defined in terms of themselves (E0106), directly or through
//! other segments.

use super::Cx;
use crate::ast::{Decl, ExprKind};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::scope::walk::{self, Child};
use std::collections::BTreeMap;

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut decls = BTreeMap::new();
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        let Decl::Segment(s) = decl else { continue };
        decls.insert(s.name.name.as_str(), s);
        let mut uses = Vec::new();
        walk::each_subexpr(&s.expr, Child::Value, cx.functions, &mut |e, child| {
            if let (ExprKind::Name(n), Child::Value) = (&e.kind, child)
                && cx.symbols.segment(n).is_some()
            {
                uses.push(n.as_str());
            }
        });
        edges.insert(s.name.name.as_str(), uses);
    }
    for (&start, segment) in &decls {
        // Depth-first search for a path back to `start`.
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
        let mut seen = std::collections::BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for &next in edges.get(at).into_iter().flatten() {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(start);
                    out.push(
                        Diagnostic::new(
                            Code::SegmentCycle,
                            segment.name.span,
                            format!("segment `{start}` depends on itself"),
                        )
                        .label(cycle.join(" → ")),
                    );
                    stack.clear();
                    break;
                }
                if seen.insert(next) {
                    let mut p = path.clone();
                    p.push(next);
                    stack.push((next, p));
                }
            }
        }
    }
}
