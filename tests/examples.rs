//! The examples are part of the product: every script under `examples/`
//! checks clean with no warnings, stays short enough for a marketer to read
//! (at most 30 lines outside its test blocks), has tests that pass, and
//! every sample event file simulates to a timeline with at least one send.

use std::path::{Path, PathBuf};
use waymark_tests::{root, run, stderr, stdout, waymark};

/// The longest an example may be, test blocks excluded.
const MAX_LINES: usize = 30;

/// Every file under `dir` (recursively) whose name ends with `extension`, sorted.
fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn journeys() -> Vec<PathBuf> {
    let found = files(&root().join("examples"), "journey");
    assert!(!found.is_empty(), "no .journey files under examples/");
    found
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// One source line: its text, the brace depth where it starts, and whether
/// it holds anything besides whitespace and a comment.
struct Line {
    text: String,
    depth: usize,
    code: bool,
}

/// Splits a script into lines, tracking `{ }` nesting outside strings
/// (`"…"`, `"""…"""`, with escapes) and comments.
fn scan(source: &str) -> Vec<Line> {
    let chars: Vec<char> = source.chars().collect();
    let mut lines = Vec::new();
    let (mut depth, mut i) = (0usize, 0usize);
    let mut string: Option<&str> = None;
    let mut line = Line {
        text: String::new(),
        depth: 0,
        code: false,
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            let next_depth = depth;
            lines.push(std::mem::replace(
                &mut line,
                Line {
                    text: String::new(),
                    depth: next_depth,
                    code: string.is_some(),
                },
            ));
            i += 1;
            continue;
        }
        line.text.push(c);
        let triple = chars[i..].starts_with(&['"', '"', '"']);
        match string {
            Some(_) if c == '\\' => {
                if let Some(&escaped) = chars.get(i + 1)
                    && escaped != '\n'
                {
                    line.text.push(escaped);
                    i += 1;
                }
            }
            Some("\"\"\"") if triple => {
                line.text.push_str("\"\"");
                i += 2;
                string = None;
            }
            Some("\"") if c == '"' => string = None,
            Some(_) => {}
            None if c == '#' => {
                while i + 1 < chars.len() && chars[i + 1] != '\n' {
                    i += 1;
                    line.text.push(chars[i]);
                }
            }
            None => {
                if !c.is_whitespace() {
                    line.code = true;
                }
                if triple {
                    line.text.push_str("\"\"");
                    i += 2;
                    string = Some("\"\"\"");
                } else if c == '"' {
                    string = Some("\"");
                } else if c == '{' {
                    depth += 1;
                } else if c == '}' {
                    depth = depth.saturating_sub(1);
                }
            }
        }
        i += 1;
    }
    lines.push(line);
    lines
}

/// The lines of a script outside its `test` blocks, blank ones dropped,
/// and the length in lines of each top-level declaration (by its first line).
fn outside_tests(source: &str) -> (Vec<String>, Vec<(String, usize)>) {
    let mut kept = Vec::new();
    let mut declarations: Vec<(String, usize)> = Vec::new();
    let mut in_test = false;
    for line in scan(source) {
        if line.depth == 0 && line.code {
            in_test = line.text.trim_start().starts_with("test ");
            if !in_test {
                declarations.push((line.text.trim().to_string(), 0));
            }
        }
        if in_test || line.text.trim().is_empty() {
            continue;
        }
        // A declaration runs from its first line until its braces close.
        if (line.depth > 0 || line.code)
            && let Some(last) = declarations.last_mut()
        {
            last.1 += 1;
        }
        kept.push(line.text);
    }
    (kept, declarations)
}

#[test]
fn line_counting_skips_test_blocks_blank_lines_and_braces_in_strings() {
    let source = "# what it does\njourney j {\n  trigger event e\n\n  send wecom { text: \"a } b {\" }\n}\n\ntest \"t\" {\n  user \"u\" { a: \"}\" }\n  expect no send\n}\nrule r {\n  when event e\n  then {\n    tag \"x\"\n  }\n}\n";
    let (kept, declarations) = outside_tests(source);
    assert_eq!(kept.len(), 11, "{kept:?}");
    assert!(kept.iter().all(|l| !l.contains("expect")), "{kept:?}");
    assert_eq!(
        declarations,
        vec![("journey j {".to_string(), 4), ("rule r {".to_string(), 6)]
    );
}

#[test]
fn every_example_is_at_most_30_lines_outside_its_tests() {
    let mut too_long = Vec::new();
    for path in journeys() {
        let source = std::fs::read_to_string(&path).expect("readable script");
        let (kept, declarations) = outside_tests(&source);
        if kept.len() > MAX_LINES {
            too_long.push(format!(
                "{}: {} lines outside test blocks",
                relative(&path),
                kept.len()
            ));
        }
        for (first, lines) in declarations {
            if lines > MAX_LINES {
                too_long.push(format!("{}: `{first}` is {lines} lines", relative(&path)));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "longer than {MAX_LINES} lines:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn every_example_checks_clean_with_no_warnings() {
    let paths: Vec<String> = journeys().iter().map(|p| relative(p)).collect();
    let mut args = vec!["check", "--deny-warnings"];
    args.extend(paths.iter().map(String::as_str));
    let out = run(&root(), &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let summary = format!("checked {} files: 0 errors, 0 warnings", paths.len());
    assert!(stderr(&out).contains(&summary), "{}", stderr(&out));
}

#[test]
fn every_example_has_tests_and_they_pass() {
    let all = journeys();
    let mut scenarios = 0;
    let mut journey_count = 0;
    let mut untested = Vec::new();
    for path in &all {
        let source = std::fs::read_to_string(path).expect("readable script");
        let (kept, _) = outside_tests(&source);
        if kept.iter().all(|l| l.trim_start().starts_with('#')) {
            continue; // a file of test blocks only
        }
        scenarios += 1;
        journey_count += kept.iter().filter(|l| l.starts_with("journey ")).count();
        let sibling = path.with_file_name(format!(
            "{}_test.journey",
            path.file_stem().unwrap().to_string_lossy()
        ));
        let has_tests = source.lines().any(|l| l.starts_with("test \""))
            || std::fs::read_to_string(&sibling)
                .is_ok_and(|s| s.lines().any(|l| l.starts_with("test \"")));
        if !has_tests {
            untested.push(relative(path));
        }
    }
    assert!(untested.is_empty(), "examples without tests: {untested:?}");

    let out = run(&root(), &["test", "examples/journeys"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let passed: usize = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("tests: ")?
                .strip_suffix(" passed, 0 failed")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no `tests: N passed, 0 failed` line in:\n{text}"));
    assert!(
        passed >= journey_count && passed >= scenarios,
        "{passed} tests for {journey_count} journeys in {scenarios} example files"
    );
}

#[test]
fn every_sample_event_file_simulates_to_a_timeline_with_a_send() {
    let events = files(&root().join("examples").join("events"), "jsonl");
    assert!(!events.is_empty(), "no sample events in examples/events");
    for file in events {
        let name = relative(&file);
        let out = run(
            &root(),
            &[
                "simulate",
                "examples/journeys",
                "--events",
                &name,
                "--tz",
                "Asia/Shanghai",
            ],
        );
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{name}: {text}{}", stderr(&out));
        // Timeline columns: time, user, journey, what happened.
        let sends = text
            .lines()
            .filter(|l| l.split_whitespace().nth(3) == Some("send"))
            .count();
        assert!(sends > 0, "{name}: no send in the timeline:\n{text}");
    }
}

/// What `waymark test` cannot say: a big order sets only the tier it
/// reaches, and each step up happens once.
#[test]
fn tier_upgrades_set_one_tier_per_step() {
    let out = run(
        &root(),
        &[
            "simulate",
            "examples/journeys",
            "--events",
            "examples/events/tiers.jsonl",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut tiers: Vec<(String, String)> = Vec::new();
    for line in stdout(&out).lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("a JSON record");
        if record["kind"] == "set" && record["path"] == "tier" {
            tiers.push((
                record["user"].as_str().unwrap().to_string(),
                record["value"].as_str().unwrap().to_string(),
            ));
        }
    }
    let of = |user: &str| -> Vec<&str> {
        tiers
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, t)| t.as_str())
            .collect()
    };
    assert_eq!(of("u1"), ["silver", "gold", "platinum"]);
    assert_eq!(of("u2"), ["gold"]);
}

/// The production-shaped config maps every channel the examples send on to
/// a real kind; the scripts' `send` steps must carry what those kinds need
/// (templates for sms and miniprogram, `text` for wecom, subject and body for
/// email), and the config itself must validate once its secrets are set.
#[test]
fn the_examples_check_clean_against_the_production_config() {
    let root = root();
    let secrets = [
        ("WAYMARK_INGEST_TOKEN", "ingest-0123456789abcdef"),
        ("WAYMARK_ADMIN_TOKEN", "admin-0123456789abcdef"),
        ("MINIPROGRAM_APP_ID", "wx0123456789"),
        ("MINIPROGRAM_APP_SECRET", "secret"),
        ("ALIYUN_ACCESS_KEY_ID", "id"),
        ("ALIYUN_ACCESS_KEY_SECRET", "secret"),
        ("SMS_SIGN_NAME", "品牌"),
        ("WECOM_CORP_ID", "ww0123456789"),
        ("WECOM_CORP_SECRET", "secret"),
        ("WECOM_AGENT_ID", "1000002"),
        ("SMTP_PASSWORD", "secret"),
    ];
    let out = std::process::Command::new(waymark())
        .current_dir(&root)
        .args([
            "check",
            "--deny-warnings",
            "--config",
            "examples/waymark.toml",
            "examples/journeys",
        ])
        .envs(secrets)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // Linting scripts against the production config needs none of its
    // secrets (CI has them not): `check` leaves an unset `${VAR}` unread;
    // `waymark run` still resolves every secret at start and names a
    // missing one (config::tests).
    let out = std::process::Command::new(waymark())
        .current_dir(&root)
        .args([
            "check",
            "--config",
            "examples/waymark.toml",
            "examples/journeys",
        ])
        .envs(secrets.into_iter().filter(|(k, _)| *k != "SMTP_PASSWORD"))
        .env_remove("SMTP_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}
