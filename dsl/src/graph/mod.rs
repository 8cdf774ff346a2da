//! Journeys drawn from their plan (`waymark graph`, the console, the
//! simulation report). A [`Flow`] is the picture of one journey, rule or
//! task: a head box (its trigger, entry rule, audience, limits), a note
//! beside it (goal and exits), one box per step in the order the steps
//! run, and arrows labelled as a marketer reads them (`yes`/`no`, a split
//! arm's share, `timeout 2d`). Flows are built from the same plan the
//! engine runs, so the drawing cannot disagree with what happens. Three
//! renderings: Mermaid and Graphviz DOT as text for docs and editors, and
//! SVG laid out here so nothing outside the binary is needed to serve it;
//! the SVG can carry painted figures (entered, waiting, passed) per box.

mod build;
mod dot;
mod mermaid;
mod svg;
pub mod text;

pub use build::flows;
pub use dot::dot;
pub use mermaid::mermaid;
pub use svg::{Paint, escape, svg};

use crate::plan::StepId;

/// What a flow draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    Journey,
    Rule,
    Task,
}

impl FlowKind {
    pub fn keyword(self) -> &'static str {
        match self {
            FlowKind::Journey => "journey",
            FlowKind::Rule => "rule",
            FlowKind::Task => "task",
        }
    }
}

/// One journey, rule or task, drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub kind: FlowKind,
    pub name: String,
    pub title: Option<String>,
    /// The head first; then the note, if any; then steps in the order a
    /// depth-first walk from the first step meets them.
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

impl Flow {
    /// `journey welcome · 新客欢迎`
    pub fn heading(&self) -> String {
        match &self.title {
            Some(t) => format!("{} {} · {t}", self.kind.keyword(), self.name),
            None => format!("{} {}", self.kind.keyword(), self.name),
        }
    }
}

/// A box.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// `head`, `note`, or the step's label (`s3`): what stats and journals
    /// call it, and what painted figures are keyed by.
    pub key: String,
    pub step: Option<StepId>,
    pub role: Role,
    /// The text, one line each; the first says what the box is.
    pub lines: Vec<String>,
}

/// What a box is for, which decides its shape and colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Trigger and entry rules.
    Head,
    /// Goal and exit conditions, beside the head.
    Note,
    Message,
    Wait,
    /// `if`, `split`, `wait for` (it branches on whether the event came).
    Decision,
    /// Coupons and points.
    Reward,
    /// Tags, profile updates, emitted events.
    Update,
    Repeat,
    End,
    Exit,
}

/// An arrow between two boxes (indexes into [`Flow::nodes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub label: Option<String>,
    pub style: EdgeStyle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeStyle {
    /// The way users go.
    Flow,
    /// Back to a step already passed: a `repeat` body's return.
    Back,
    /// From the head to its note: not a way users go.
    Note,
}

/// Which output `waymark graph` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mermaid,
    Dot,
    Svg,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Mermaid, Format::Dot, Format::Svg];

    pub fn name(self) -> &'static str {
        match self {
            Format::Mermaid => "mermaid",
            Format::Dot => "dot",
            Format::Svg => "svg",
        }
    }

    pub fn render(self, flows: &[Flow]) -> String {
        match self {
            Format::Mermaid => mermaid(flows),
            Format::Dot => dot(flows),
            Format::Svg => svg(flows, &Paint::default()),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("no graph format `{s}`: use mermaid, dot or svg"))
    }
}
