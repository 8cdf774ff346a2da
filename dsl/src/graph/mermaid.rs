//! Flows as a Mermaid `flowchart`, for docs and pull requests (GitHub and
//! most wikis draw it). One subgraph per flow; node ids are the flow's
//! position and the box's key (`f0_s3`), so they are stable for the same
//! plan. Shapes follow roles: a stadium for the head, a rhombus for
//! decisions, a hexagon for `repeat`, rounded boxes for waits, a pill for the end.

use super::{EdgeStyle, Flow, Role};
use std::fmt::Write as _;

/// `flows` as one Mermaid flowchart.
pub fn mermaid(flows: &[Flow]) -> String {
    let mut out = String::from("flowchart TD\n");
    for (f, flow) in flows.iter().enumerate() {
        let _ = writeln!(out, "  subgraph f{f}[\"{}\"]", label(&flow.heading()));
        for node in &flow.nodes {
            let text = node
                .lines
                .iter()
                .map(|l| label(l))
                .collect::<Vec<_>>()
                .join("<br/>");
            let (open, close) = match node.role {
                Role::Head => ("([\"", "\"])"),
                Role::Note => ("[/\"", "\"/]"),
                Role::Decision => ("{\"", "\"}"),
                Role::Repeat => ("{{\"", "\"}}"),
                Role::End | Role::Exit => ("([\"", "\"])"),
                Role::Wait => ("(\"", "\")"),
                Role::Message | Role::Reward | Role::Update => ("[\"", "\"]"),
            };
            let _ = writeln!(out, "    f{f}_{}{open}{text}{close}", node.key);
        }
        for edge in &flow.edges {
            let from = &flow.nodes[edge.from].key;
            let to = &flow.nodes[edge.to].key;
            let arrow = match edge.style {
                EdgeStyle::Flow => "-->",
                EdgeStyle::Back => "-.->",
                EdgeStyle::Note => "-.-",
            };
            match &edge.label {
                Some(l) => {
                    let _ = writeln!(out, "    f{f}_{from} {arrow}|\"{}\"| f{f}_{to}", label(l));
                }
                None => {
                    let _ = writeln!(out, "    f{f}_{from} {arrow} f{f}_{to}");
                }
            }
        }
        out.push_str("  end\n");
    }
    out
}

/// Text safe inside a quoted Mermaid label: quotes and angle brackets as
/// entity codes (Mermaid's `#quot;` form), so a label cannot end early or
/// be read as HTML.
fn label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '|' => out.push_str("#124;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_cannot_end_early_or_hold_html() {
        assert_eq!(
            super::label(r#"if event.tag == "<b>" | #1"#),
            "if event.tag == #quot;#lt;b#gt;#quot; #124; #35;1"
        );
    }
}
