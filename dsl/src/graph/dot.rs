//! Flows as Graphviz DOT, for `dot -Tsvg` / `-Tpng` and tools that read
//! it. One cluster per flow, boxes coloured by role as in the SVG, the
//! note kept level with the head, the way back from a `repeat` body drawn
//! dashed and left out of ranking so the steps still read top to bottom.

use super::svg::colours;
use super::{EdgeStyle, Flow, Role};
use std::fmt::Write as _;

/// `flows` as one DOT digraph.
pub fn dot(flows: &[Flow]) -> String {
    let mut out = String::from(
        "digraph waymark {\n  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fontname=\"monospace\", fontsize=11];\n  edge [fontname=\"monospace\", fontsize=10];\n",
    );
    for (f, flow) in flows.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{f} {{");
        let _ = writeln!(out, "    label={};", quote(&flow.heading()));
        out.push_str("    fontname=\"monospace\";\n    color=\"#cccccc\";\n");
        for node in &flow.nodes {
            let (fill, stroke, text) = colours(node.role);
            let shape = match node.role {
                Role::Decision => ", shape=diamond, style=filled",
                Role::Repeat => ", shape=hexagon, style=filled",
                Role::Note => ", shape=note, style=filled",
                _ => "",
            };
            let _ = writeln!(
                out,
                "    f{f}_{} [label={}, tooltip={}, fillcolor=\"{fill}\", color=\"{stroke}\", fontcolor=\"{text}\"{shape}];",
                node.key,
                quote(&node.lines.join("\n")),
                quote(&node.key),
            );
        }
        if flow.nodes.iter().any(|n| n.role == Role::Note) {
            let _ = writeln!(out, "    {{ rank=same; f{f}_head; f{f}_note; }}");
        }
        for edge in &flow.edges {
            let from = &flow.nodes[edge.from].key;
            let to = &flow.nodes[edge.to].key;
            let mut attrs = Vec::new();
            if let Some(l) = &edge.label {
                attrs.push(format!("label={}", quote(l)));
            }
            match edge.style {
                EdgeStyle::Flow => {}
                EdgeStyle::Back => attrs.push("style=dashed, constraint=false".into()),
                EdgeStyle::Note => attrs.push("style=dashed, arrowhead=none".into()),
            }
            if attrs.is_empty() {
                let _ = writeln!(out, "    f{f}_{from} -> f{f}_{to};");
            } else {
                let _ = writeln!(out, "    f{f}_{from} -> f{f}_{to} [{}];", attrs.join(", "));
            }
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

/// A DOT string: quotes and backslashes escaped, line breaks as `\n`.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_keep_quotes_backslashes_and_lines() {
        assert_eq!(super::quote("a \"b\" \\n\nc"), r#""a \"b\" \\n\nc""#);
    }
}
