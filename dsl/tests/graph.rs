//! What a drawing says, asserted on the flow rather than its pictures
//! (the pictures are golden files under `tests/golden/graph/`).

use waymark_dsl::graph::{self, EdgeStyle, Flow, Role};
use waymark_dsl::{Options, Sources, compile};

fn flows(script: &str) -> Vec<Flow> {
    let mut sources = Sources::new();
    sources.add("t.journey", script);
    let checked = compile(
        sources,
        Options {
            functions: waymark_stdlib::stdlib(),
            channels: None,
        },
    );
    let plan = checked.plan.expect("the script checks");
    graph::flows(&plan, None)
}

fn edge<'f>(flow: &'f Flow, from: &str, to: &str) -> &'f graph::Edge {
    flow.edges
        .iter()
        .find(|e| flow.nodes[e.from].key == from && flow.nodes[e.to].key == to)
        .unwrap_or_else(|| panic!("no arrow {from} -> {to}: {:#?}", flow.edges))
}

fn node<'f>(flow: &'f Flow, first_line: &str) -> &'f graph::Node {
    flow.nodes
        .iter()
        .find(|n| n.lines[0] == first_line)
        .unwrap_or_else(|| panic!("no box `{first_line}`"))
}

#[test]
fn branches_splits_waits_and_loops_are_labelled_as_written() {
    let [flow] = &flows(
        r#"journey j {
  trigger event signed_up
  if user.points > 100 and user.tier != "gold" {
    tag "rich"
  }
  split offer {
    90% treated { send sms { text: "hi" } }
    10% control {}
  }
  repeat 3 times every 1d {
    give points 5
  }
  wait for event order_paid within 2d {
    exit
  }
}
"#,
    )[..] else {
        panic!("one flow")
    };
    let branch = node(flow, r#"if user.points > 100 and user.tier != "gold""#);
    let rich = node(flow, r#"tag "rich""#);
    let split = node(flow, "split offer");
    assert_eq!(branch.role, Role::Decision);
    assert_eq!(
        edge(flow, &branch.key, &rich.key).label.as_deref(),
        Some("yes")
    );
    // No `else`: the `no` arrow goes straight to the next step.
    assert_eq!(
        edge(flow, &branch.key, &split.key).label.as_deref(),
        Some("no")
    );
    let sms = node(flow, "send sms");
    assert_eq!(sms.lines[1], r#"text: "hi""#);
    assert_eq!(
        edge(flow, &split.key, &sms.key).label.as_deref(),
        Some("treated 90%")
    );
    let repeat = node(flow, "repeat 3 times every 1d");
    let holdout = edge(flow, &split.key, &repeat.key);
    assert_eq!(holdout.label.as_deref(), Some("control 10% · holdout"));
    let points = node(flow, "give points 5");
    assert_eq!(
        edge(flow, &repeat.key, &points.key).label.as_deref(),
        Some("each time")
    );
    let back = edge(flow, &points.key, &repeat.key);
    assert_eq!(back.style, EdgeStyle::Back);
    let wait = node(flow, "wait for order_paid within 2d");
    assert_eq!(
        edge(flow, &repeat.key, &wait.key).label.as_deref(),
        Some("after 3")
    );
    let exit = node(flow, "exit");
    assert_eq!(
        edge(flow, &wait.key, &exit.key).label.as_deref(),
        Some("order_paid")
    );
    let end = node(flow, "end");
    assert_eq!(
        edge(flow, &wait.key, &end.key).label.as_deref(),
        Some("timeout 2d")
    );
    // Every box once, and only the loop's return goes back.
    let mut keys: Vec<&str> = flow.nodes.iter().map(|n| n.key.as_str()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), flow.nodes.len());
    assert_eq!(
        flow.edges
            .iter()
            .filter(|e| e.style == EdgeStyle::Back)
            .count(),
        1
    );
}

#[test]
fn the_head_says_how_users_enter_and_the_note_how_they_leave() {
    let [flow] = &flows(
        r#"segment vip = user.tier == "gold"
journey j "挽回" {
  trigger schedule "0 9 * * 1" tz "Asia/Shanghai" for vip
  entry every 7d
  limit 100 entries per day
  goal order_paid where event.amount >= 100 within 3d
  exit on event unsubscribed
  send sms { text: "hi" }
}
"#,
    )[..] else {
        panic!("one flow")
    };
    assert_eq!(flow.heading(), "journey j · 挽回");
    assert_eq!(
        flow.nodes[0].lines,
        [
            r#"trigger schedule "0 9 * * 1" tz "Asia/Shanghai" for vip"#,
            "entry every 7d",
            "limit 100 entries per day",
        ]
    );
    assert_eq!(flow.nodes[1].role, Role::Note);
    assert_eq!(
        flow.nodes[1].lines,
        [
            "goal order_paid where event.amount >= 100 within 3d",
            "exit on unsubscribed"
        ]
    );
}

#[test]
fn painted_figures_appear_in_their_box() {
    let flows = flows("journey j {\n  trigger event x\n  send sms { text: \"hi\" }\n}\n");
    let mut paint = graph::Paint::default();
    paint.add("j", "s1", "sent 1,234");
    let svg = graph::svg(&flows, &paint);
    let box_start = svg.find("data-key=\"s1\"").unwrap();
    let box_end = box_start + svg[box_start..].find("</g>").unwrap();
    assert!(
        svg[box_start..box_end].contains(">sent 1,234</text>"),
        "{svg}"
    );
    assert_eq!(svg.matches("sent 1,234").count(), 1);
}
