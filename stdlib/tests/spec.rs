//! The table covers language.md §6: every function the spec lists is a row,
//! with the arity and argument kinds the spec shows. The spec's function
//! table is copied below; when the shared spec is found next to the
//! repository, the copy must still be in it, so drift is caught.

use std::path::Path;
use waymark_dsl::library::ParamKind;
use waymark_stdlib::{Group, builtin};

/// language.md §6, "Functions every deployment has".
const SPEC_TABLE: &str = "\
| history | `count(E [, D])`, `sum(E.PROP, D)`, `last(E)` (event or null), `first(E)`, `days_since(T)`, `hours_since(T)` |
| time | `date(T [, tz])`, `hour(T [, tz])`, `weekday(T [, tz])`, `is_birthday(DATE [, tz])`, `timestamp(\"…\")` |
| text | `len`, `lower`, `upper`, `contains`, `starts_with`, `format_money(N)` |
| numbers | `min`, `max`, `abs`, `round(N [, places])`, `floor`, `ceil` |
| misc | `coalesce(a, b, …)`, `has_tag(\"T\")`, `days_between(T1, T2)` |";

/// One function as the spec writes it.
#[derive(Debug)]
struct SpecFunction {
    group: String,
    name: String,
    /// Parameters as written (`E`, `D`, `tz`, …), with whether each is optional;
    /// `None` when the spec gives only the name.
    params: Option<Vec<(String, bool)>>,
    variadic: bool,
}

fn spec_functions() -> Vec<SpecFunction> {
    let mut out = Vec::new();
    for line in SPEC_TABLE.lines() {
        let mut cells = line.split('|').map(str::trim).filter(|c| !c.is_empty());
        let group = cells.next().unwrap().to_string();
        let functions = cells.next().unwrap();
        for code in functions.split('`').skip(1).step_by(2) {
            let Some((name, rest)) = code.split_once('(') else {
                out.push(SpecFunction {
                    group: group.clone(),
                    name: code.to_string(),
                    params: None,
                    variadic: false,
                });
                continue;
            };
            let inside = rest.strip_suffix(')').unwrap();
            let mut params = Vec::new();
            let mut variadic = false;
            let mut optional = false;
            for piece in inside.replace("[,", ",[").split(',') {
                let piece = piece.trim();
                if piece.starts_with('[') {
                    optional = true;
                }
                let word = piece.trim_matches(|c| c == '[' || c == ']').trim();
                if word == "…" {
                    variadic = true;
                } else if !word.is_empty() {
                    params.push((word.to_string(), optional));
                }
            }
            out.push(SpecFunction {
                group: group.clone(),
                name: name.to_string(),
                params: Some(params),
                variadic,
            });
        }
    }
    out
}

#[test]
fn the_spec_table_copy_matches_the_shared_spec() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec/language.md");
    let Ok(text) = std::fs::read_to_string(&spec) else {
        eprintln!(
            "{} not found; checking against the copy only",
            spec.display()
        );
        return;
    };
    for line in SPEC_TABLE.lines() {
        assert!(
            text.contains(line),
            "language.md §6 changed; update SPEC_TABLE. Missing line:\n{line}"
        );
    }
}

#[test]
fn every_spec_function_is_in_the_table_with_its_arity() {
    let functions = spec_functions();
    assert_eq!(functions.len(), 26, "{functions:#?}");
    for f in functions {
        let row = builtin(&f.name)
            .unwrap_or_else(|| panic!("{} is in language.md §6 but not in the table", f.name));
        let sig = &row.signature;
        assert_eq!(row.group.name(), f.group, "{}: group", f.name);
        let Some(params) = &f.params else { continue };
        let required = params.iter().filter(|(_, optional)| !optional).count();
        assert_eq!(sig.min_args(), required, "{}: required arguments", f.name);
        if f.variadic {
            assert_eq!(
                sig.max_args(),
                None,
                "{}: the spec lets the last argument repeat",
                f.name
            );
        } else {
            assert_eq!(
                sig.max_args(),
                Some(params.len()),
                "{}: most arguments",
                f.name
            );
        }
        for (index, (word, _)) in params.iter().enumerate() {
            let kind = sig.param(index).unwrap().kind;
            match word.as_str() {
                "E" => assert_eq!(
                    kind,
                    ParamKind::Event,
                    "{}: argument {} is an event",
                    f.name,
                    index + 1
                ),
                "E.PROP" => assert_eq!(
                    kind,
                    ParamKind::EventField,
                    "{}: argument {} is E.PROP",
                    f.name,
                    index + 1
                ),
                _ => assert!(
                    !matches!(kind, ParamKind::Event | ParamKind::EventField),
                    "{}: argument {} is a value",
                    f.name,
                    index + 1
                ),
            }
        }
    }
}

#[test]
fn groups_follow_the_spec_order() {
    let names: Vec<&str> = Group::ALL.iter().map(|g| g.name()).collect();
    assert_eq!(names, ["history", "time", "text", "numbers", "misc"]);
}
