//! `waymark graph` as a user runs it: every example drawn in each format,
//! the SVG well-formed with a box per step, one journey picked by name,
//! and (with Graphviz installed, as `.ci/run` does) the DOT rendered by
//! the real `dot`.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};
use waymark_tests::{root, run, scratch, stderr, stdout};

/// The journeys, rules and tasks the examples declare, by name: read from
/// the scripts' declaration lines, independently of the drawing.
fn declared() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("examples/journeys")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            for keyword in ["journey ", "rule ", "task "] {
                if let Some(rest) = line.strip_prefix(keyword) {
                    names.insert(rest.split_whitespace().next().unwrap().to_string());
                }
            }
        }
    }
    names
}

fn graph(args: &[&str]) -> String {
    let mut all = vec!["graph", "examples/journeys"];
    all.extend_from_slice(args);
    let out = run(&root(), &all);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn the_svg_draws_every_journey_rule_and_task_with_a_box_per_step() {
    let svg = graph(&["--format", "svg"]);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let flows: BTreeSet<String> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("flow"))
        .map(|n| n.attribute("data-flow").unwrap().to_string())
        .collect();
    assert_eq!(flows, declared());
    let welcome = doc
        .descendants()
        .find(|n| n.attribute("data-flow") == Some("welcome"))
        .unwrap();
    let keys: Vec<&str> = welcome
        .descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("data-key").is_some())
        .map(|n| n.attribute("data-key").unwrap())
        .collect();
    // The head, the goal note, six steps and the end.
    assert_eq!(
        keys,
        ["head", "note", "s1", "s2", "s3", "s4", "s5", "s6", "s0"]
    );
    let text: String = welcome
        .descendants()
        .filter(|n| n.is_text())
        .map(|n| format!("{}\n", n.text().unwrap()))
        .collect();
    for line in [
        "trigger event signed_up",
        "goal order_paid within 14d and continue",
        "send miniprogram template \"WELCOME\"",
        "wait 1d",
        "wait until 10:00",
        "send email",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

#[test]
fn mermaid_is_the_default_and_one_journey_can_be_picked() {
    let all = graph(&[]);
    assert!(all.starts_with("flowchart TD\n"), "{all}");
    let one = graph(&["--journey", "cart_recovery"]);
    assert_eq!(one.matches("  subgraph ").count(), 1, "{one}");
    assert!(one.contains("journey cart_recovery"), "{one}");
    let out = run(
        &root(),
        &["graph", "examples/journeys", "--journey", "nosuch"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("no journey, rule or task `nosuch`"), "{err}");
    assert!(err.contains("welcome"), "the choices are listed: {err}");
}

#[test]
fn a_script_with_errors_is_reported_not_drawn() {
    let dir = scratch("graph_errors");
    std::fs::write(
        dir.join("bad.journey"),
        "journey j {\n  trigger event x\n  send nosuch_channel_field { a: usr.x }\n}\n",
    )
    .unwrap();
    let out = run(&dir, &["graph", "bad.journey", "--format", "dot"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("unknown name `usr`"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("digraph"));
    let out = run(&dir, &["graph", "bad.journey", "--format", "png"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("mermaid, dot or svg"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_output_is_the_same_bytes_each_time() {
    for format in ["mermaid", "dot", "svg"] {
        assert_eq!(
            graph(&["--format", format]),
            graph(&["--format", format]),
            "{format}"
        );
    }
}

/// Graphviz renders the DOT of every example without a warning, with a
/// cluster per flow and a node per box. Needs `dot` (`.ci/run` installs
/// Graphviz and runs the ignored tests of this file).
#[test]
#[ignore = "needs Graphviz's `dot`; .ci/run installs it and runs this"]
fn graphviz_renders_the_dot_of_every_example() {
    let dot_text = graph(&["--format", "dot"]);
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Graphviz `dot` on PATH");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot_text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "Graphviz warned");
    let svg = stdout(&out);
    let options = roxmltree::ParsingOptions {
        allow_dtd: true, // Graphviz writes the SVG 1.1 DOCTYPE
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&svg, options).expect("Graphviz wrote SVG");
    let clusters = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("cluster"))
        .count();
    assert_eq!(clusters, declared().len());
    let nodes: Vec<String> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("node"))
        .filter_map(|n| n.children().find(|c| c.has_tag_name("title")))
        .map(|t| t.text().unwrap_or_default().to_string())
        .collect();
    let boxes = dot_text
        .lines()
        .filter(|l| l.contains(" [label=") && !l.contains(" -> "))
        .count();
    assert_eq!(nodes.len(), boxes);
    assert!(nodes.iter().any(|n| n.ends_with("_head")));
}
