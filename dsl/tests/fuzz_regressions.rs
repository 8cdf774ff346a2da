//! Inputs that the `parse_check` fuzz target (fuzz/) found, or that have the
//! shapes it hunts for: whatever the text, `check` and both renderings of
//! its diagnostics return without panicking or exhausting the stack. Each
//! case runs on a thread with a 2 MiB stack — the default for spawned and
//! async worker threads, where an embedding engine would check scripts.

use waymark_dsl::{Code, Options, Sources, compile, render};

/// Checks `text` as a one-file deployment on a small stack, renders the
/// diagnostics both ways, and returns their codes.
fn check_survives(text: String) -> Vec<Code> {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let mut sources = Sources::new();
            sources.add("fuzz.journey", text);
            let checked = compile(
                sources,
                Options {
                    functions: waymark_stdlib::stdlib(),
                    channels: None,
                },
            );
            let _ = render::human(&checked.sources, &checked.diagnostics);
            let _ = render::json(&checked.sources, &checked.diagnostics);
            checked.diagnostics.iter().map(|d| d.code).collect()
        })
        .unwrap()
        .join()
        .expect("check must not panic or overflow its stack")
}

fn in_journey(steps: &str) -> String {
    format!("journey j {{\n  trigger event e\n{steps}\n}}\n")
}

#[test]
fn thousands_of_nested_parentheses_are_refused_not_overflowed() {
    let depth = 3_000;
    let text = format!("const c = {}1{}", "(".repeat(depth), ")".repeat(depth));
    let codes = check_survives(text);
    assert!(!codes.is_empty());
}

/// Found while writing these cases (the fuzz target runs on an 8 MiB main
/// stack and did not reach it): the Pratt parser recursed once per prefix
/// operator before the depth limit could refuse the result, overflowing a
/// 2 MiB stack.
#[test]
fn long_runs_of_prefix_operators_are_refused() {
    let text = format!("segment s = {}true", "not ".repeat(1_500));
    assert!(check_survives(text).contains(&Code::TooDeep));
    let text = format!("const c = {}1", "- ".repeat(3_000));
    assert!(check_survives(text).contains(&Code::TooDeep));
}

/// Same overflow, with each `not` opened inside the previous one's operand.
#[test]
fn prefix_operators_interleaved_with_comparisons_are_refused() {
    let text = format!("segment s = {}true", "not 1 == ".repeat(1_000));
    assert!(check_survives(text).contains(&Code::TooDeep));
    let text = format!("segment s = {}true", "- not 1 + ".repeat(1_000));
    assert!(check_survives(text).contains(&Code::TooDeep));
}

/// The refusal counts only prefix operators that nest, not all of them.
#[test]
fn many_prefix_operators_that_do_not_nest_are_fine() {
    let conjuncts = vec!["not has_tag(\"a\")"; 40].join(" and ");
    let sum = vec!["-1"; 40].join(" + ");
    let text = format!("segment s = {conjuncts}\nsegment t = user.points > {sum}\n");
    let codes = check_survives(text);
    assert!(codes.is_empty(), "{codes:?}");
}

#[test]
fn long_operator_chains_are_refused() {
    let text = format!("const c = 1{}", " + 1".repeat(2_000));
    assert!(check_survives(text).contains(&Code::TooDeep));
}

#[test]
fn deeply_nested_blocks_are_refused() {
    let depth = 500;
    let steps = format!(
        "{}tag \"x\"{}",
        "if true {\n".repeat(depth),
        "\n}".repeat(depth)
    );
    assert!(!check_survives(in_journey(&steps)).is_empty());
}

#[test]
fn deeply_nested_calls_lists_records_and_interpolations_are_refused() {
    let depth = 1_000;
    for (open, close) in [
        ("coalesce(", ")"),
        ("[", "]"),
        ("{ k: ", " }"),
        ("\"{", "}\""),
        ("x[", "]"),
    ] {
        let text = format!(
            "segment s = {}1{} == 1",
            open.repeat(depth),
            close.repeat(depth)
        );
        assert!(!check_survives(text).is_empty(), "{open}…{close}");
    }
}

/// pest runs without its own stack probe; the bracket scan before it lets
/// through nesting up to twice the builder's limit (128 levels). At that
/// depth, in every bracket shape, pest and the builder must still fit a
/// 2 MiB stack and the builder refuse it as too deep.
#[test]
fn nesting_just_under_the_scan_limit_parses_on_a_small_stack_and_is_refused() {
    let depth = 2 * waymark_dsl::parser::MAX_DEPTH as usize;
    // (open, close, scan levels each repetition opens)
    for (open, close, levels) in [
        ("(", ")", 1),
        ("coalesce(", ")", 1),
        ("[", "]", 1),
        ("{ k: ", " }", 1),
        ("\"{", "}\"", 2),
        ("x[", "]", 1),
        ("(not -", ")", 1),
    ] {
        let text = format!(
            "segment s = {}1{} == 1",
            open.repeat(depth / levels),
            close.repeat(depth / levels)
        );
        assert!(
            check_survives(text).contains(&Code::TooDeep),
            "{open}…{close}"
        );
    }
    // Blocks: the journey's own braces count, so the steps nest two fewer.
    let steps = format!(
        "{}tag \"x\"{}",
        "if true {\n".repeat(depth - 2),
        "\n}".repeat(depth - 2)
    );
    assert!(check_survives(in_journey(&steps)).contains(&Code::TooDeep));
}

/// Each nesting level may hold an operator chain just under the limit; the
/// tree is then far deeper than either limit alone.
#[test]
fn operator_chains_inside_nested_calls_stay_bounded() {
    let chain = "1 + ".repeat(60);
    let depth = 70;
    let text = format!(
        "segment s = {}1{} > 0",
        format!("abs({chain}").repeat(depth),
        ")".repeat(depth)
    );
    check_survives(text);
    let steps = format!(
        "  send sms {{ text: {}1{} }}",
        format!("abs({chain}").repeat(depth),
        ")".repeat(depth)
    );
    check_survives(in_journey(&steps));
}

#[test]
fn long_misspelt_time_zones_are_reported_without_a_costly_suggestion() {
    // Found by the fuzzer as a timeout: every long misspelt zone name was
    // compared by edit distance with every IANA name.
    let text = include_str!("fuzz_regressions/long_misspelt_time_zones.journey").to_string();
    let codes = check_survives(text);
    assert!(codes.contains(&Code::BadTimeZone), "{codes:?}");
}
