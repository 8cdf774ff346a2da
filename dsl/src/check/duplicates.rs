//! Duplicates (E0801): names declared twice in the deployment (reported at
//! both places), clauses that may appear once, record keys, split arms,
//! schema fields and test names.

use super::Cx;
use crate::ast::{self, Decl, ExprKind, StepKind};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::scope::walk;
use crate::source::Span;
use std::collections::BTreeMap;

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    for (name, decls) in &cx.symbols.by_name {
        if decls.len() < 2 {
            continue;
        }
        for (i, decl) in decls.iter().enumerate() {
            let other = decls[if i == 0 { 1 } else { 0 }];
            let span = decl.name().expect("named").span;
            out.push(
                Diagnostic::new(Code::Duplicate, span, format!("`{name}` is declared more than once"))
                    .label(format!("this {}", decl.kind()))
                    .also(other.name().expect("named").span, format!("and this {}", other.kind()))
                    .help("names are shared by journeys, rules, tasks, segments, policies and consts across all files"),
            );
        }
    }
    let mut tests: BTreeMap<&str, Span> = BTreeMap::new();
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        match decl {
            Decl::Journey(j) => once(
                j.headers.iter().map(|h| (h.kind.keyword(), h.span)),
                &["trigger", "exit on", "exit if"],
                "journey",
                out,
            ),
            Decl::Task(t) => once(
                t.clauses.iter().map(|c| (c.kind.keyword(), c.span)),
                &[],
                "task",
                out,
            ),
            Decl::Policy(p) => once(
                p.clauses.iter().map(|c| (c.kind.keyword(), c.span)),
                &["cap"],
                "policy",
                out,
            ),
            Decl::Schema(s) => {
                let mut entries: BTreeMap<Option<&str>, Span> = BTreeMap::new();
                for entry in &s.entries {
                    let key = entry.event.as_ref().map(|e| e.name.as_str());
                    if let Some(first) = entries.insert(key, entry.span) {
                        out.push(twice(
                            entry.span,
                            first,
                            &format!(
                                "schema for {}",
                                key.map_or("user".to_string(), |e| {
                                    format!("event `{}`", crate::fmt::event_name(e))
                                })
                            ),
                        ));
                    }
                    names(entry.fields.iter().map(|f| &f.name), "field", out);
                }
            }
            Decl::Test(t) => {
                if let Some(first) = tests.insert(t.name.value.as_str(), t.name.span) {
                    out.push(twice(
                        t.name.span,
                        first,
                        &format!("test \"{}\"", t.name.value),
                    ));
                }
            }
            _ => {}
        }
    }
    walk::for_each_step(cx.files, |step| match &step.kind {
        StepKind::Split { arms, .. } => names(arms.iter().map(|a| &a.name), "split arm", out),
        // `via staff` is the `staff` field, given a second way.
        StepKind::Send {
            staff: Some(staff),
            fields: Some(r),
            ..
        } => {
            if let Some(field) = r.fields.iter().find(|f| f.key.name == "staff") {
                out.push(twice(
                    field.key.span,
                    staff.span,
                    "the staff member (`via staff` and a `staff` field)",
                ));
            }
            record(r, out);
        }
        StepKind::Send {
            fields: Some(r), ..
        }
        | StepKind::Emit {
            fields: Some(r), ..
        }
        | StepKind::GiveCoupon {
            fields: Some(r), ..
        } => record(r, out),
        _ => {}
    });
    struct Records<'o>(&'o mut Vec<Diagnostic>);
    impl<'a> walk::Visitor<'a> for Records<'_> {
        fn expr(&mut self, expr: &'a ast::Expr, _: walk::Role, _: &walk::Scope<'a>) {
            nested_records(expr, self.0);
        }
    }
    walk::walk(cx.files, &mut Records(out));
}

fn nested_records(expr: &ast::Expr, out: &mut Vec<Diagnostic>) {
    match &expr.kind {
        ExprKind::Record(r) => {
            record(r, out);
            r.fields.iter().for_each(|f| nested_records(&f.value, out));
        }
        ExprKind::List(items) => items.iter().for_each(|e| nested_records(e, out)),
        ExprKind::Call { args, .. } => args.iter().for_each(|e| nested_records(e, out)),
        ExprKind::Binary(_, l, r) => {
            nested_records(l, out);
            nested_records(r, out);
        }
        _ => {}
    }
}

fn record(r: &ast::Record, out: &mut Vec<Diagnostic>) {
    names(r.fields.iter().map(|f| &f.key), "key", out);
}

fn names<'a>(idents: impl Iterator<Item = &'a ast::Ident>, what: &str, out: &mut Vec<Diagnostic>) {
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    for ident in idents {
        if let Some(first) = seen.insert(ident.name.as_str(), ident.span) {
            out.push(twice(
                ident.span,
                first,
                &format!("{what} `{}`", ident.name),
            ));
            seen.insert(ident.name.as_str(), first);
        }
    }
}

fn once(
    clauses: impl Iterator<Item = (&'static str, Span)>,
    repeatable: &[&str],
    owner: &str,
    out: &mut Vec<Diagnostic>,
) {
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    for (keyword, span) in clauses {
        if repeatable.contains(&keyword) {
            continue;
        }
        if let Some(first) = seen.get(keyword) {
            out.push(
                twice(span, *first, &format!("`{keyword}` clause"))
                    .help(format!("a {owner} takes one `{keyword}` clause")),
            );
        } else {
            seen.insert(keyword, span);
        }
    }
}

fn twice(span: Span, first: Span, what: &str) -> Diagnostic {
    Diagnostic::new(Code::Duplicate, span, format!("{what} appears twice"))
        .label("again here")
        .also(first, "first here")
}
