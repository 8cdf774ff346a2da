//! Names of declarations used by clauses (E0104): `trigger segment S`,
//! `policy P`, a test's `expect goal J` / `reward T`, and — when a config
//! is given — channels in `send` steps and caps.

use super::Cx;
use crate::ast::{self, Decl, HeaderKind};
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, closest};
use crate::scope::walk;

pub fn check(cx: &Cx<'_>, out: &mut Vec<Diagnostic>) {
    let expect = |ident: &ast::Ident, kind: &str, implicit: &[&str], out: &mut Vec<Diagnostic>| {
        let found = cx.symbols.get(&ident.name);
        if implicit.contains(&ident.name.as_str()) || found.is_some_and(|d| d.kind() == kind) {
            return;
        }
        let mut d = match found {
            Some(other) => Diagnostic::new(
                Code::UnknownReference,
                ident.span,
                format!("`{}` is a {}, not a {kind}", ident.name, other.kind()),
            )
            .label(format!("a {kind} is needed here"))
            .also(
                other.name().expect("named").span,
                format!("the {}", other.kind()),
            ),
            None => Diagnostic::new(
                Code::UnknownReference,
                ident.span,
                format!("no {kind} named `{}`", ident.name),
            )
            .label(format!("unknown {kind}")),
        };
        let candidates = cx.symbols.names_of(kind).chain(implicit.iter().copied());
        if let Some(near) = closest(&ident.name, candidates) {
            d = d.help(format!("did you mean `{near}`?"));
        }
        out.push(d);
    };
    for decl in cx.files.iter().flat_map(|f| &f.decls) {
        match decl {
            Decl::Journey(j) => {
                for header in &j.headers {
                    match &header.kind {
                        HeaderKind::Trigger(ast::Trigger::Segment(s)) => {
                            expect(s, "segment", &[], out)
                        }
                        HeaderKind::Policy(p) => expect(p, "policy", &["default"], out),
                        _ => {}
                    }
                }
            }
            Decl::Test(t) => {
                for stmt in &t.stmts {
                    let ast::TestStmtKind::Expect(e) = &stmt.kind else {
                        continue;
                    };
                    match &e.what {
                        ast::Expected::Goal(j)
                        | ast::Expected::Exit(j)
                        | ast::Expected::Enter(j) => expect(j, "journey", &[], out),
                        ast::Expected::Reward(t) => expect(t, "task", &[], out),
                        ast::Expected::Send {
                            channel: Some(c), ..
                        } => channel(cx, c, out),
                        _ => {}
                    }
                }
            }
            Decl::Policy(p) => {
                for clause in &p.clauses {
                    if let ast::PolicyClauseKind::Cap { what, .. } = &clause.kind
                        && !crate::scope::cap_is_category_or_all(&cx.symbols, &what.name)
                    {
                        channel(cx, what, out);
                    }
                }
            }
            _ => {}
        }
    }
    walk::for_each_step(cx.files, |step| {
        if let ast::StepKind::Send { channel: c, .. } = &step.kind {
            channel(cx, c, out);
        }
    });
}

/// With a config, a channel must be configured.
fn channel(cx: &Cx<'_>, ident: &ast::Ident, out: &mut Vec<Diagnostic>) {
    let Some(catalog) = cx.channels else { return };
    if catalog.get(&ident.name).is_some() {
        return;
    }
    let mut d = Diagnostic::new(
        Code::UnknownReference,
        ident.span,
        format!("no channel named `{}` is configured", ident.name),
    )
    .label("unknown channel");
    d = d.help(match closest(&ident.name, catalog.names()) {
        Some(near) => format!("did you mean `{near}`?"),
        None => format!(
            "configured channels: {}",
            catalog.names().collect::<Vec<_>>().join(", ")
        ),
    });
    out.push(d);
}
