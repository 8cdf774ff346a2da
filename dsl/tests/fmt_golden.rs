//! Golden tests for `waymark fmt`: every folder under `tests/golden/fmt`
//! holds an `input.journey`; its formatted text is snapshotted next to it
//! as `formatted.snap`. Formatting the output again must change nothing,
//! and the output must parse without diagnostics.

use std::path::{Path, PathBuf};
use waymark_dsl::fmt::format_source;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/fmt");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/golden/fmt exists")
        .map(|entry| entry.expect("readable fixture folder").path())
        .filter(|path| path.join("input.journey").is_file())
        .collect();
    cases.sort();
    cases
}

/// One line per diagnostic: enough to find the problem in a fixture.
fn brief(diagnostics: &[waymark_dsl::Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics
        .iter()
        .map(|d| {
            format!(
                "{:?} at byte {}: {}",
                d.code,
                d.labels.first().map_or(0, |l| l.span.start),
                d.message
            )
        })
        .collect();
    lines.join("; ")
}

#[test]
fn fmt_golden() {
    let cases = cases();
    assert!(!cases.is_empty(), "no fixtures found");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let input = std::fs::read_to_string(case.join("input.journey")).unwrap();
        let formatted = match format_source("input.journey", &input) {
            Ok(formatted) => formatted,
            Err(diagnostics) => {
                failures.push(format!(
                    "{name}: the input does not parse: {}",
                    brief(&diagnostics)
                ));
                continue;
            }
        };
        match format_source("formatted.journey", &formatted) {
            Ok(again) if again == formatted => {}
            Ok(again) => failures.push(format!("{name}: not idempotent; second pass:\n{again}")),
            Err(diagnostics) => failures.push(format!(
                "{name}: the output does not parse: {}\n{formatted}",
                brief(&diagnostics)
            )),
        }
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(case);
        settings.set_prepend_module_to_snapshot(false);
        settings.set_input_file(case.join("input.journey"));
        settings.set_description(format!("waymark fmt {name}/input.journey"));
        settings.bind(|| insta::assert_snapshot!("formatted", formatted));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
