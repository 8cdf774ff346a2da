//! What a deploy would change, before it does: per file the source diff,
//! per journey whether it is added, changed or removed, which of its steps
//! are added, changed or removed (steps compared as `waymark graph` writes
//! them, in the order they run), and how many users wait at each step of
//! a changed or removed journey with what will happen to them: instances
//! of a changed journey stay on the version they started (pinned) until
//! they finish; those of a removed journey drain the same way, or are
//! cancelled when the deploy says so. Pure: the caller reads the store.

use serde::Serialize;
use similar::{Algorithm, DiffOp, TextDiff};
use std::collections::BTreeMap;
use waymark_dsl::graph::{self, FlowKind};
use waymark_dsl::plan::Plan;

/// Users waiting, by (journey, version, step key).
pub type Waiting = BTreeMap<(String, String, String), u64>;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileChange {
    pub file: String,
    /// `added`, `removed`, `changed`.
    pub change: &'static str,
    /// A unified diff (`---`/`+++` headers, three lines of context).
    pub diff: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JourneyChange {
    pub journey: String,
    /// `added`, `changed`, `removed`.
    pub change: &'static str,
    pub from_version: Option<String>,
    pub to_version: Option<String>,
    pub steps: Vec<StepChange>,
    pub waiting: Vec<WaitingAt>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepChange {
    /// `added`, `removed`, `changed`.
    pub change: &'static str,
    /// The step as deployed now: its id and text.
    pub before: Option<StepText>,
    /// The step as it would be.
    pub after: Option<StepText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepText {
    pub step: String,
    pub text: String,
}

/// Users at one step of a version that a deploy changes or removes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingAt {
    pub version: String,
    pub step: String,
    pub text: String,
    pub users: u64,
    /// What the deploy does to the step: `removed`, `changed`, `unchanged`.
    pub step_change: &'static str,
    /// `stay pinned` (a changed journey: they finish on their version),
    /// `drain` (a removed journey: the same), or `cancel`.
    pub fate: &'static str,
}

/// The unified diff of every file added, removed or changed.
pub fn files(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<FileChange> {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let (old, new) = (before.get(name), after.get(name));
            if old == new {
                return None;
            }
            let change = match (old, new) {
                (None, _) => "added",
                (_, None) => "removed",
                _ => "changed",
            };
            let (old, new) = (
                old.map_or("", String::as_str),
                new.map_or("", String::as_str),
            );
            let diff = TextDiff::configure()
                .algorithm(Algorithm::Myers)
                .diff_lines(old, new)
                .unified_diff()
                .context_radius(3)
                .header(&format!("{name} (deployed)"), &format!("{name} (new)"))
                .to_string();
            Some(FileChange {
                file: name.clone(),
                change,
                diff,
            })
        })
        .collect()
}

/// Each journey the deploy adds, changes or removes.
pub fn journeys(
    before: &Plan,
    after: &Plan,
    waiting: &Waiting,
    cancel_removed: bool,
) -> Vec<JourneyChange> {
    let mut names: Vec<&str> = before
        .journeys
        .iter()
        .chain(&after.journeys)
        .map(|j| j.name.as_str())
        .collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let (old, new) = (before.journey(name), after.journey(name));
        let change = match (old, new) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (Some(o), Some(n)) if o.version != n.version => "changed",
            _ => continue,
        };
        let old_steps = steps_of(before, name, old.is_some());
        let new_steps = steps_of(after, name, new.is_some());
        let steps = step_changes(&old_steps, &new_steps);
        let fate = match change {
            "removed" if cancel_removed => "cancel",
            "removed" => "drain",
            _ => "stay pinned",
        };
        let current = old.map(|j| j.version.as_str());
        let waiting = waiting
            .iter()
            .filter(|((j, _, _), _)| j == name)
            .map(|((_, version, step), users)| {
                // Only the current version's steps are compared; users on
                // an older one are pinned to it whatever this deploy does.
                let on_current = Some(version.as_str()) == current;
                let text = old_steps
                    .iter()
                    .find(|s| on_current && &s.step == step)
                    .map(|s| s.text.clone())
                    .unwrap_or_default();
                let step_change = if !on_current {
                    "unchanged"
                } else if change == "removed" {
                    "removed"
                } else {
                    steps
                        .iter()
                        .find(|c| c.before.as_ref().is_some_and(|b| &b.step == step))
                        .map_or("unchanged", |c| c.change)
                };
                WaitingAt {
                    version: version.clone(),
                    step: step.clone(),
                    text,
                    users: *users,
                    step_change,
                    fate,
                }
            })
            .collect();
        out.push(JourneyChange {
            journey: name.to_string(),
            change,
            from_version: old.map(|j| j.version.clone()),
            to_version: new.map(|j| j.version.clone()),
            steps,
            waiting,
        });
    }
    out
}

/// A journey's steps in the order they run, as `waymark graph` writes them.
fn steps_of(plan: &Plan, name: &str, exists: bool) -> Vec<StepText> {
    if !exists {
        return Vec::new();
    }
    graph::flows(plan, Some(name))
        .into_iter()
        .filter(|f| f.kind == FlowKind::Journey)
        .flat_map(|f| f.nodes)
        .filter(|n| n.step.is_some())
        .map(|n| StepText {
            step: n.key,
            text: n.lines.join(" · "),
        })
        .collect()
}

fn step_changes(before: &[StepText], after: &[StepText]) -> Vec<StepChange> {
    let old: Vec<&str> = before.iter().map(|s| s.text.as_str()).collect();
    let new: Vec<&str> = after.iter().map(|s| s.text.as_str()).collect();
    let mut out = Vec::new();
    for op in similar::capture_diff_slices(Algorithm::Myers, &old, &new) {
        match op {
            DiffOp::Equal { .. } => {}
            DiffOp::Delete {
                old_index, old_len, ..
            } => out.extend(
                before[old_index..old_index + old_len]
                    .iter()
                    .map(|s| StepChange {
                        change: "removed",
                        before: Some(s.clone()),
                        after: None,
                    }),
            ),
            DiffOp::Insert {
                new_index, new_len, ..
            } => out.extend(
                after[new_index..new_index + new_len]
                    .iter()
                    .map(|s| StepChange {
                        change: "added",
                        before: None,
                        after: Some(s.clone()),
                    }),
            ),
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                let olds = &before[old_index..old_index + old_len];
                let news = &after[new_index..new_index + new_len];
                for i in 0..old_len.max(new_len) {
                    let (b, a) = (olds.get(i), news.get(i));
                    out.push(StepChange {
                        change: match (b, a) {
                            (Some(_), Some(_)) => "changed",
                            (Some(_), None) => "removed",
                            _ => "added",
                        },
                        before: b.cloned(),
                        after: a.cloned(),
                    });
                }
            }
        }
    }
    out
}

/// The preview as text for a terminal (`waymark deploy`).
pub fn render(files: &[FileChange], journeys: &[JourneyChange]) -> String {
    let mut out = String::new();
    if files.is_empty() && journeys.is_empty() {
        out.push_str("nothing changes: the deployed scripts are these\n");
        return out;
    }
    for f in files {
        out.push_str(&f.diff);
        if !f.diff.ends_with('\n') {
            out.push('\n');
        }
    }
    for j in journeys {
        let versions = match (&j.from_version, &j.to_version) {
            (Some(a), Some(b)) => format!(" (version {a} → {b})"),
            (None, Some(b)) => format!(" (version {b})"),
            (Some(a), None) => format!(" (version {a})"),
            (None, None) => String::new(),
        };
        out.push_str(&format!("journey {}: {}{versions}\n", j.journey, j.change));
        for s in &j.steps {
            match (&s.before, &s.after) {
                (Some(b), Some(a)) => out.push_str(&format!(
                    "  ~ {} {}\n    → {} {}\n",
                    b.step, b.text, a.step, a.text
                )),
                (Some(b), None) => out.push_str(&format!("  - {} {}\n", b.step, b.text)),
                (None, Some(a)) => out.push_str(&format!("  + {} {}\n", a.step, a.text)),
                (None, None) => {}
            }
        }
        for w in &j.waiting {
            let what = match w.fate {
                "cancel" => "are cancelled (exit, reason cancelled)".to_string(),
                _ => format!("finish on version {}", w.version),
            };
            let at = if w.text.is_empty() {
                format!("{} of version {}", w.step, w.version)
            } else {
                format!("{} `{}`", w.step, w.text)
            };
            out.push_str(&format!(
                "  {} user(s) at {at} ({} step): {what}\n",
                w.users, w.step_change
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(script: &str) -> Plan {
        let mut sources = waymark_dsl::Sources::new();
        sources.add("a.journey", script);
        waymark_dsl::compile(
            sources,
            waymark_dsl::Options {
                functions: waymark_stdlib::stdlib(),
                channels: None,
            },
        )
        .plan
        .expect("checks")
    }

    const BEFORE: &str = "journey j {\n  trigger event x\n  send sms { text: \"a\" }\n  wait 1d\n  send sms { text: \"b\" }\n}\n";
    const AFTER: &str = "journey j {\n  trigger event x\n  send sms { text: \"a\" }\n  wait 2d\n  send sms { text: \"b\" }\n  tag \"done\"\n}\n";

    #[test]
    fn steps_added_changed_and_removed_are_found_in_run_order() {
        let (before, after) = (plan(BEFORE), plan(AFTER));
        let version = before.journeys[0].version.clone();
        let waiting = Waiting::from([
            (("j".into(), version.clone(), "s2".into()), 7),
            (("j".into(), "older".into(), "s1".into()), 2),
        ]);
        let changes = journeys(&before, &after, &waiting, false);
        let [j] = &changes[..] else {
            panic!("{changes:?}")
        };
        assert_eq!(j.change, "changed");
        let summary: Vec<(&str, Option<&str>, Option<&str>)> = j
            .steps
            .iter()
            .map(|s| {
                (
                    s.change,
                    s.before.as_ref().map(|b| b.text.as_str()),
                    s.after.as_ref().map(|a| a.text.as_str()),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("changed", Some("wait 1d"), Some("wait 2d")),
                ("added", None, Some("tag \"done\"")),
            ]
        );
        let at_wait = j.waiting.iter().find(|w| w.step == "s2").unwrap();
        assert_eq!(
            (at_wait.users, at_wait.step_change, at_wait.fate),
            (7, "changed", "stay pinned")
        );
        assert_eq!(at_wait.text, "wait 1d");
        let older = j.waiting.iter().find(|w| w.version == "older").unwrap();
        assert_eq!(older.step_change, "unchanged");
        let text = render(&[], &changes);
        assert!(text.contains("~ s2 wait 1d\n    → s2 wait 2d"), "{text}");
        assert!(
            text.contains("7 user(s) at s2 `wait 1d` (changed step): finish on version"),
            "{text}"
        );
    }

    #[test]
    fn a_removed_journey_drains_or_is_cancelled() {
        let before = plan(BEFORE);
        let after = plan("journey other {\n  trigger event y\n}\n");
        let version = before.journeys[0].version.clone();
        let waiting = Waiting::from([(("j".into(), version, "s2".into()), 3)]);
        for (cancel, fate) in [(false, "drain"), (true, "cancel")] {
            let changes = journeys(&before, &after, &waiting, cancel);
            let j = changes.iter().find(|c| c.journey == "j").unwrap();
            assert_eq!(j.change, "removed");
            assert_eq!(j.waiting[0].fate, fate);
            assert_eq!(j.waiting[0].step_change, "removed");
            assert!(j.steps.iter().all(|s| s.change == "removed"));
            let other = changes.iter().find(|c| c.journey == "other").unwrap();
            assert_eq!(other.change, "added");
        }
    }

    #[test]
    fn files_are_diffed_line_by_line() {
        let before = BTreeMap::from([
            ("a.journey".to_string(), BEFORE.to_string()),
            ("gone.journey".to_string(), "x\n".to_string()),
        ]);
        let after = BTreeMap::from([
            ("a.journey".to_string(), AFTER.to_string()),
            ("new.journey".to_string(), "y\n".to_string()),
        ]);
        let changes = files(&before, &after);
        let kinds: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| (c.file.as_str(), c.change))
            .collect();
        assert_eq!(
            kinds,
            [
                ("a.journey", "changed"),
                ("gone.journey", "removed"),
                ("new.journey", "added")
            ]
        );
        let diff = &changes[0].diff;
        assert!(
            diff.starts_with("--- a.journey (deployed)\n+++ a.journey (new)\n"),
            "{diff}"
        );
        assert!(diff.contains("\n-  wait 1d\n+  wait 2d\n"), "{diff}");
        assert!(files(&before, &before).is_empty());
    }
}
