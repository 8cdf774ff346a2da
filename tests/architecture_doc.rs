//! `docs/architecture.md` lists the files a new step kind touches. This
//! keeps the list true: every file the list names exists, and every source
//! file that matches on a step kind (names `StepKind::`) is listed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The backticked paths in the "A step kind" section.
fn listed() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let start = text.find("### A step kind").expect("the step kind section");
    let section = &text[start..];
    let end = section[3..].find("\n#").map_or(section.len(), |e| e + 3);
    section[..end]
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.contains('/') && s.contains('.') && !s.ends_with('/'))
        .map(str::to_string)
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_step_kind_file_list_matches_the_code() {
    let listed = listed();
    assert!(listed.len() > 10, "{listed:?}");
    for path in &listed {
        assert!(
            root().join(path).is_file(),
            "docs/architecture.md lists {path}, which does not exist"
        );
    }
    let mut files = Vec::new();
    for dir in ["dsl/src", "stdlib/src", "core/src", "engine/src"] {
        rust_files(&root().join(dir), &mut files);
    }
    let mut missing = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let relative = file
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if text.contains("StepKind::") && !listed.contains(&relative) {
            missing.push(relative);
        }
    }
    assert!(
        missing.is_empty(),
        "these files match on step kinds but docs/architecture.md's step kind list omits them: {missing:?}"
    );
}
