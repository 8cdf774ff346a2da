//! Golden tests: each folder under `tests/golden/parse` and
//! `tests/golden/check` holds an `input.journey` (several files are
//! separated by a line `--- file: NAME.journey ---`) and the insta
//! snapshots of what the parser or checker makes of it. A check folder may
//! hold `channels.json` (`{"name": {"kind": "…", "required": […],
//! "accepted": […] }}`) to check against a config.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use waymark_dsl::{
    ChannelCatalog, ChannelSpec, Code, Compiled, Options, Sources, compile, parser, render,
};

fn cases(kind: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(kind);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input.journey").exists())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixtures under {}", root.display());
    dirs
}

/// Splits a fixture into its files.
pub fn load(dir: &Path) -> Sources {
    let text = std::fs::read_to_string(dir.join("input.journey")).unwrap();
    let case = dir.file_name().unwrap().to_string_lossy().to_string();
    let mut sources = Sources::new();
    let mut name = format!("{case}/input.journey");
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line
            .trim_end()
            .strip_prefix("--- file: ")
            .and_then(|r| r.strip_suffix(" ---"))
        {
            if !current.is_empty() {
                sources.add(std::mem::take(&mut name), std::mem::take(&mut current));
            }
            name = format!("{case}/{rest}");
        } else {
            current.push_str(line);
        }
    }
    sources.add(name, current);
    sources
}

fn settings(dir: &Path) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(dir);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_input_file(dir.join("input.journey"));
    settings
}

fn catalog(dir: &Path) -> Option<ChannelCatalog> {
    let text = std::fs::read_to_string(dir.join("channels.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let mut catalog = ChannelCatalog::default();
    for (name, spec) in json.as_object().unwrap() {
        catalog.insert(
            name.clone(),
            ChannelSpec {
                kind: spec["kind"].as_str().unwrap().to_string(),
                required: strings(&spec["required"]),
                accepted: spec.get("accepted").map(strings),
                spends_grants: spec["spends_grants"] == true,
                answers: spec["answers"].as_str().map(str::to_string),
                confirmed_by_staff: spec["confirmed_by_staff"] == true,
            },
        );
    }
    Some(catalog)
}

fn check_case(dir: &Path) -> Compiled {
    let catalog = catalog(dir);
    compile(
        load(dir),
        Options {
            functions: waymark_stdlib::stdlib(),
            channels: catalog.as_ref(),
        },
    )
}

#[test]
fn parse_fixtures() {
    for dir in cases("parse") {
        let sources = load(&dir);
        let (files, diagnostics) = parser::parse_all(&sources);
        assert!(
            diagnostics.is_empty(),
            "{}: {}",
            dir.display(),
            render::human(&sources, &diagnostics)
        );
        let decls: Vec<_> = files.iter().map(|f| &f.decls).collect();
        settings(&dir).bind(|| insta::assert_json_snapshot!("ast", decls));
    }
}

#[test]
fn check_fixtures() {
    for dir in cases("check") {
        let checked = check_case(&dir);
        let sources = &checked.sources;
        let human = format!(
            "{}{}\n",
            render::human(sources, &checked.diagnostics),
            render::summary(sources.len(), &checked.diagnostics)
        );
        let json = render::json(sources, &checked.diagnostics);
        settings(&dir).bind(|| {
            insta::assert_snapshot!("human", human);
            insta::assert_json_snapshot!("json", json);
        });
    }
}

/// The plan of a fixture that must check clean; its diagnostics otherwise.
fn clean_plan(dir: &Path) -> waymark_dsl::plan::Plan {
    let checked = check_case(dir);
    let sources = &checked.sources;
    checked.plan.unwrap_or_else(|| {
        panic!(
            "{}: {}",
            dir.display(),
            render::human(sources, &checked.diagnostics)
        )
    })
}

#[test]
fn plan_fixtures() {
    for dir in cases("plan") {
        let plan = clean_plan(&dir);
        settings(&dir).bind(|| insta::assert_json_snapshot!("plan", plan));
    }
}

/// Fixtures named `ok_*` or `spec_*` must check clean; every other check
/// fixture must report something.
#[test]
fn clean_and_failing_fixtures_are_what_their_names_say() {
    for dir in cases("check") {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let checked = check_case(&dir);
        let sources = &checked.sources;
        if name.starts_with("ok_") || name.starts_with("spec_") {
            assert!(
                checked.diagnostics.is_empty(),
                "{name} should be clean:\n{}",
                render::human(sources, &checked.diagnostics)
            );
        } else {
            assert!(
                !checked.diagnostics.is_empty(),
                "{name} should report a problem"
            );
        }
    }
}

/// At least one fixture fails with each diagnostic code.
#[test]
fn every_code_has_a_failing_fixture() {
    let mut seen = BTreeSet::new();
    for dir in cases("check") {
        let checked = check_case(&dir);
        seen.extend(checked.diagnostics.iter().map(|d| d.code));
    }
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| !seen.contains(c))
        .map(|c| c.as_str())
        .collect();
    assert!(missing.is_empty(), "no check fixture produces {missing:?}");
}

/// The diagnostics reference in docs/ is generated from the code table.
#[test]
fn diagnostics_reference_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/diagnostics.md");
    let generated = waymark_dsl::codes::reference_markdown();
    if std::env::var_os("WAYMARK_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed, generated,
        "docs/diagnostics.md is stale: run with WAYMARK_BLESS=1"
    );
}

/// Each graph fixture drawn three ways: Mermaid, DOT and SVG.
#[test]
fn graph_fixtures() {
    use waymark_dsl::graph::{self, Format};
    for dir in cases("graph") {
        let plan = clean_plan(&dir);
        let flows = graph::flows(&plan, None);
        settings(&dir).bind(|| {
            for format in Format::ALL {
                insta::assert_snapshot!(format.name(), format.render(&flows));
            }
        });
    }
}
