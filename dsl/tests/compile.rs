//! The compile driver: one file order wherever a script set is compiled,
//! and every file's diagnostics reported.

use waymark_dsl::{Code, Compiled, Options, Sources, compile, render};

const WELCOME: &str =
    "journey welcome {\n  trigger event signed_up\n  send wecom { text: \"hi\" }\n}\n";
const VIP: &str = "segment vip = user.points > 1000\n";
const BROKEN: &str = "journey broken {\n  trigger event signed_up\n  if dormnt {\n    send wecom { text: \"hi\" }\n  }\n}\n";

fn compiled(files: &[(&str, &str)]) -> Compiled {
    let mut sources = Sources::new();
    for (name, text) in files {
        sources.add(*name, *text);
    }
    compile(
        sources,
        Options {
            functions: waymark_stdlib::stdlib(),
            channels: None,
        },
    )
}

/// What a person or a client sees of a compile: the rendered diagnostics,
/// both ways, and the plan.
fn outcome(c: &Compiled) -> (String, serde_json::Value, Option<serde_json::Value>) {
    (
        render::human(&c.sources, &c.diagnostics),
        render::json(&c.sources, &c.diagnostics),
        c.plan.as_ref().map(|p| serde_json::to_value(p).unwrap()),
    )
}

fn names(c: &Compiled) -> Vec<String> {
    c.sources
        .ids()
        .map(|id| c.sources.get(id).name.clone())
        .collect()
}

#[test]
fn the_same_files_listed_in_two_orders_compile_to_the_same_plan() {
    let a = compiled(&[("b.journey", VIP), ("a.journey", WELCOME)]);
    let b = compiled(&[("a.journey", WELCOME), ("b.journey", VIP)]);
    assert!(
        a.plan.is_some(),
        "{}",
        render::human(&a.sources, &a.diagnostics)
    );
    assert_eq!(outcome(&a), outcome(&b));
}

#[test]
fn the_same_files_listed_in_two_orders_give_the_same_diagnostics() {
    let dup = "journey welcome {\n  trigger event signed_up\n}\n";
    let a = compiled(&[
        ("z.journey", dup),
        ("m.journey", WELCOME),
        ("a.journey", BROKEN),
    ]);
    let b = compiled(&[
        ("a.journey", BROKEN),
        ("z.journey", dup),
        ("m.journey", WELCOME),
    ]);
    assert!(a.has_errors());
    assert_eq!(outcome(&a), outcome(&b));
    // The duplicate is reported first where the earlier file (by name) has it.
    let first = a
        .diagnostics
        .iter()
        .find(|d| d.code == Code::Duplicate)
        .unwrap();
    assert_eq!(a.sources.get(first.labels[0].span.file).name, "m.journey");
}

#[test]
fn files_are_compiled_in_path_order_with_folders_before_longer_names() {
    let c = compiled(&[
        ("b.journey", VIP),
        ("a.journey", WELCOME),
        ("a/z.journey", "const limit = 3\n"),
    ]);
    assert_eq!(names(&c), ["a/z.journey", "a.journey", "b.journey"]);
}

#[test]
fn an_error_in_the_second_file_is_reported_against_that_file() {
    let c = compiled(&[("a.journey", WELCOME), ("b.journey", BROKEN)]);
    assert!(c.has_errors());
    assert!(c.plan.is_none(), "a set with errors has no plan");
    let files: Vec<&str> = c
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| c.sources.get(d.labels[0].span.file).name.as_str())
        .collect();
    assert!(!files.is_empty());
    assert!(files.iter().all(|f| *f == "b.journey"), "{files:?}");
}

#[test]
fn a_clean_set_of_several_files_lowers_every_file() {
    let c = compiled(&[("b.journey", VIP), ("a.journey", WELCOME)]);
    let plan = c.plan.expect("the set checks clean");
    assert!(plan.journey("welcome").is_some());
    assert!(plan.segment("vip").is_some());
}

/// A date alone in a test's `at` is midnight in the default policy's zone,
/// the zone test failures show times in; without one, UTC.
#[test]
fn a_test_date_is_midnight_in_the_default_policys_zone() {
    use waymark_dsl::plan::TestStepKind;
    let at = |policy: &str| {
        let script = format!(
            "{policy}journey welcome {{\n  trigger event signed_up\n}}\n\ntest \"t\" {{\n  at \"2025-11-11\"\n  expect no enter welcome at \"2025-11-11\"\n}}\n"
        );
        let plan = compiled(&[("a.journey", &script)]).plan.expect("checks");
        let steps = &plan.tests[0].steps;
        let TestStepKind::At(at) = steps[0].kind else {
            panic!("{steps:?}")
        };
        let TestStepKind::Expect(e) = &steps[1].kind else {
            panic!("{steps:?}")
        };
        assert_eq!(e.at, Some(at));
        at.to_rfc3339()
    };
    assert_eq!(
        at("policy default {\n  tz \"Asia/Shanghai\"\n}\n\n"),
        "2025-11-10T16:00:00+00:00"
    );
    assert_eq!(at(""), "2025-11-11T00:00:00+00:00");
}

/// Strings compare with dates and timestamps as the engine compares them
/// (parsed when the comparison runs): no "always false" warning; other
/// mixed comparisons keep theirs.
#[test]
fn a_date_or_timestamp_compared_with_a_string_is_not_always_false() {
    let script = "journey j {\n  trigger event x\n  if date(now) == \"2025-11-11\" or now > event.when_text or user.points == \"many\" {\n    tag \"t\"\n  }\n}\n";
    let checked = compiled(&[("a.journey", script)]);
    let codes: Vec<(Code, String)> = checked
        .diagnostics
        .iter()
        .map(|d| (d.code, d.message.clone()))
        .collect();
    assert_eq!(
        codes,
        [(
            Code::AlwaysFalse,
            "a number is never equal to a string".to_string()
        )],
        "{}",
        render::human(&checked.sources, &checked.diagnostics)
    );
}
