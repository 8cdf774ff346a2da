//! Flows as SVG, laid out here: no Graphviz at run time, so the daemon
//! and the simulation report draw journeys with what is in the binary.
//!
//! The layout is a small layered one. Steps get ranks by their longest
//! path from the head (a `repeat` body's way back is left out, so the
//! steps read top to bottom); an arrow that skips ranks gets a waypoint in
//! each rank it passes, so it bends around the boxes there instead of
//! crossing them; boxes in a rank are ordered by a few sweeps of the
//! barycentre heuristic (each box under the average of the boxes that lead
//! to it, then over those it leads to), and placed left to right as close
//! to that average as their widths allow. Ways back run up a lane to the
//! right. Text is monospace, so a box's width follows from its columns
//! (wide characters count two). Same flows, same bytes.
//!
//! A [`Paint`] adds figures to boxes (entered, waiting here, passed …),
//! drawn bold under the box's text: the console and the simulation report
//! paint the same drawing with live or simulated numbers.

use super::{EdgeStyle, Flow, Role};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use unicode_width::UnicodeWidthStr;

const FONT: f64 = 12.0;
/// The advance of a monospace glyph at [`FONT`] (0.6 em).
const COLUMN: f64 = 7.2;
const LINE: f64 = 16.0;
const PAD_X: f64 = 10.0;
const PAD_Y: f64 = 7.0;
/// Longest line drawn in a box, in columns; longer ones end in `…` and
/// are whole in the box's tooltip.
const MAX_COLUMNS: usize = 60;
const GAP_X: f64 = 28.0;
const GAP_Y: f64 = 46.0;
const MARGIN: f64 = 16.0;
const HEADING: f64 = 26.0;
/// Width taken by an arrow's waypoint in a rank it passes through.
const WAYPOINT: f64 = 12.0;
const LANE: f64 = 14.0;

/// Figures painted on boxes, by flow name and box key (`head`, `s3`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Paint {
    figures: BTreeMap<(String, String), Vec<String>>,
}

impl Paint {
    /// Adds a line of figures to box `key` of flow `flow`.
    pub fn add(&mut self, flow: &str, key: &str, line: impl Into<String>) {
        self.figures
            .entry((flow.to_string(), key.to_string()))
            .or_default()
            .push(line.into());
    }

    fn of(&self, flow: &str, key: &str) -> &[String] {
        self.figures
            .get(&(flow.to_string(), key.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// Fill, stroke and text colours of a role; DOT uses the same.
pub(super) fn colours(role: Role) -> (&'static str, &'static str, &'static str) {
    match role {
        Role::Head => ("#1f3a5f", "#1f3a5f", "#ffffff"),
        Role::Note => ("#fff8e1", "#c99a00", "#3d3000"),
        Role::Message => ("#e8f1fb", "#3f74b8", "#10263f"),
        Role::Wait => ("#f2f2f2", "#7a7a7a", "#222222"),
        Role::Decision => ("#fdf0e4", "#c8742a", "#3a2108"),
        Role::Reward => ("#e7f5ea", "#3b8f57", "#0f2e18"),
        Role::Update => ("#f2ecfa", "#7d5cb8", "#24143d"),
        Role::Repeat => ("#fdf0e4", "#c8742a", "#3a2108"),
        Role::End => ("#ffffff", "#555555", "#222222"),
        Role::Exit => ("#fbe9e9", "#b83b3b", "#3d0d0d"),
    }
}

/// `flows` as one SVG document, each flow under its heading, one below
/// the other.
pub fn svg(flows: &[Flow], paint: &Paint) -> String {
    let layouts: Vec<Layout> = flows.iter().map(|f| Layout::of(f, paint)).collect();
    let width = layouts.iter().map(|l| l.width).fold(320.0_f64, f64::max) + 2.0 * MARGIN;
    let height = layouts
        .iter()
        .map(|l| HEADING + l.height + MARGIN)
        .sum::<f64>()
        + MARGIN;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"waymark-flow\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, 'Noto Sans Mono CJK SC', monospace\" font-size=\"{FONT}\">",
        w = n(width),
        h = n(height),
    );
    out.push_str(
        "<defs><marker id=\"waymark-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555555\"/></marker></defs>\n",
    );
    let _ = writeln!(
        out,
        "<rect width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
        n(width),
        n(height)
    );
    let mut top = MARGIN;
    for (f, (flow, layout)) in flows.iter().zip(&layouts).enumerate() {
        let _ = writeln!(
            out,
            "<g class=\"flow\" id=\"flow-{f}\" data-flow=\"{}\" transform=\"translate({},{})\">",
            escape(&flow.name),
            n(MARGIN),
            n(top)
        );
        let _ = writeln!(
            out,
            "<text x=\"0\" y=\"15\" font-size=\"14\" font-weight=\"600\" fill=\"#1f3a5f\">{}</text>",
            escape(&flow.heading())
        );
        let _ = writeln!(out, "<g transform=\"translate(0,{})\">", n(HEADING));
        layout.draw(&mut out, flow, paint);
        out.push_str("</g>\n</g>\n");
        top += HEADING + layout.height + MARGIN;
    }
    out.push_str("</svg>\n");
    out
}

/// A box's place: top-left corner and size.
#[derive(Debug, Clone, Copy, Default)]
struct Place {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Place {
    fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }
    fn cy(&self) -> f64 {
        self.y + self.h / 2.0
    }
    fn right(&self) -> f64 {
        self.x + self.w
    }
    fn bottom(&self) -> f64 {
        self.y + self.h
    }
}

/// An item in a rank: a box, or an arrow's waypoint.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Item {
    Node(usize),
    Waypoint { edge: usize, at: usize },
}

struct Layout {
    places: Vec<Place>,
    /// Per edge, the waypoints it bends through (centres).
    bends: Vec<Vec<(f64, f64)>>,
    /// Per edge, the x of its lane if it is a way back.
    lanes: Vec<Option<f64>>,
    width: f64,
    height: f64,
}

impl Layout {
    fn of(flow: &Flow, paint: &Paint) -> Layout {
        let count = flow.nodes.len();
        let mut places: Vec<Place> = flow
            .nodes
            .iter()
            .map(|node| {
                let figures = paint.of(&flow.name, &node.key);
                let mut columns = node
                    .lines
                    .iter()
                    .chain(figures)
                    .map(|l| columns_of(l).min(MAX_COLUMNS))
                    .max()
                    .unwrap_or(0);
                if node.step.is_some() {
                    // The first line shares its row with the step's key.
                    let first = node
                        .lines
                        .first()
                        .map_or(0, |l| columns_of(l).min(MAX_COLUMNS));
                    columns = columns.max(first + 2 + node.key.len());
                }
                let rows = node.lines.len() + figures.len();
                let divider = if figures.is_empty() { 0.0 } else { 6.0 };
                Place {
                    w: (columns as f64 * COLUMN + 2.0 * PAD_X).max(56.0),
                    h: rows as f64 * LINE + 2.0 * PAD_Y + divider,
                    ..Place::default()
                }
            })
            .collect();

        // Ranks: longest path from the head over the ways users go.
        let flow_edges: Vec<usize> = (0..flow.edges.len())
            .filter(|&e| flow.edges[e].style == EdgeStyle::Flow)
            .collect();
        let mut rank = vec![0usize; count];
        let mut incoming = vec![0usize; count];
        for &e in &flow_edges {
            incoming[flow.edges[e].to] += 1;
        }
        let mut ready: Vec<usize> = (0..count).filter(|&i| incoming[i] == 0).collect();
        ready.reverse();
        while let Some(i) = ready.pop() {
            for &e in &flow_edges {
                let edge = &flow.edges[e];
                if edge.from == i {
                    rank[edge.to] = rank[edge.to].max(rank[i] + 1);
                    incoming[edge.to] -= 1;
                    if incoming[edge.to] == 0 {
                        ready.push(edge.to);
                    }
                }
            }
        }
        let note = flow.nodes.iter().position(|n| n.role == Role::Note);
        let ranks = rank.iter().copied().max().unwrap_or(0) + 1;

        // Items per rank, and the links between adjacent ranks.
        let mut layers: Vec<Vec<(Item, f64)>> = vec![Vec::new(); ranks];
        for i in 0..count {
            if Some(i) != note {
                layers[rank[i]].push((Item::Node(i), i as f64));
            }
        }
        let mut links: Vec<(Item, Item)> = Vec::new();
        for &e in &flow_edges {
            let edge = &flow.edges[e];
            let (from, to) = (rank[edge.from], rank[edge.to]);
            let mut upper = Item::Node(edge.from);
            for (at, layer) in layers.iter_mut().enumerate().take(to).skip(from + 1) {
                let waypoint = Item::Waypoint { edge: e, at };
                layer.push((waypoint, edge.from as f64 + 0.5));
                links.push((upper, waypoint));
                upper = waypoint;
            }
            links.push((upper, Item::Node(edge.to)));
        }
        for layer in &mut layers {
            layer.sort_by(|a, b| a.1.total_cmp(&b.1));
        }

        // Order within ranks: barycentre sweeps down and up.
        let mut ups: BTreeMap<ItemKey, Vec<Item>> = BTreeMap::new();
        let mut downs: BTreeMap<ItemKey, Vec<Item>> = BTreeMap::new();
        for (upper, lower) in &links {
            ups.entry(key(lower)).or_default().push(*upper);
            downs.entry(key(upper)).or_default().push(*lower);
        }
        let positions = |layer: &[(Item, f64)]| -> BTreeMap<ItemKey, f64> {
            layer
                .iter()
                .enumerate()
                .map(|(p, (item, _))| (key(item), p as f64))
                .collect()
        };
        let barycentres = |layer: &[(Item, f64)],
                           near: &BTreeMap<ItemKey, Vec<Item>>,
                           at: &BTreeMap<ItemKey, f64>|
         -> Vec<f64> {
            layer
                .iter()
                .enumerate()
                .map(|(pos, (item, _))| {
                    let ps: Vec<f64> = near
                        .get(&key(item))
                        .into_iter()
                        .flatten()
                        .filter_map(|i| at.get(&key(i)).copied())
                        .collect();
                    mean(&ps).unwrap_or(pos as f64)
                })
                .collect()
        };
        for _ in 0..4 {
            for r in 1..ranks {
                let above = positions(&layers[r - 1]);
                let keys = barycentres(&layers[r], &ups, &above);
                reorder(&mut layers[r], &keys);
            }
            for r in (0..ranks.saturating_sub(1)).rev() {
                let below = positions(&layers[r + 1]);
                let keys = barycentres(&layers[r], &downs, &below);
                reorder(&mut layers[r], &keys);
            }
        }

        // Horizontal places: each item near the mean of its neighbours in
        // the rank above (then below, then above again), packed left to
        // right, and the rank shifted so it sits on average where wanted.
        let mut centre: BTreeMap<ItemKey, f64> = BTreeMap::new();
        let width_of = |item: &Item| match item {
            Item::Node(i) => places[*i].w,
            Item::Waypoint { .. } => WAYPOINT,
        };
        let passes: [bool; 3] = [true, false, true];
        for (pass, down) in passes.into_iter().enumerate() {
            let order: Vec<usize> = if down {
                (0..ranks).collect()
            } else {
                (0..ranks).rev().collect()
            };
            for r in order {
                let wanted: Vec<Option<f64>> = layers[r]
                    .iter()
                    .map(|(item, _)| {
                        let neighbours = if down { &ups } else { &downs };
                        let near: Vec<f64> = neighbours
                            .get(&key(item))
                            .into_iter()
                            .flatten()
                            .filter_map(|i| centre.get(&key(i)).copied())
                            .collect();
                        mean(&near).or_else(|| {
                            if pass == 0 {
                                None
                            } else {
                                centre.get(&key(item)).copied()
                            }
                        })
                    })
                    .collect();
                let mut xs = Vec::with_capacity(layers[r].len());
                let mut right = f64::NEG_INFINITY;
                for ((item, _), want) in layers[r].iter().zip(&wanted) {
                    let w = width_of(item);
                    let earliest = if right.is_finite() {
                        right + GAP_X + w / 2.0
                    } else {
                        w / 2.0
                    };
                    let x = want.map_or(earliest, |want| want.max(earliest));
                    right = x + w / 2.0;
                    xs.push(x);
                }
                let drift: Vec<f64> = xs
                    .iter()
                    .zip(&wanted)
                    .filter_map(|(x, want)| want.map(|w| x - w))
                    .collect();
                let shift = mean(&drift).unwrap_or(0.0);
                for ((item, _), x) in layers[r].iter().zip(xs) {
                    centre.insert(key(item), x - shift);
                }
            }
        }

        // Vertical places: rank by rank, boxes centred in their rank.
        let mut rank_top = vec![0.0; ranks];
        let mut rank_height = vec![0.0_f64; ranks];
        for i in 0..count {
            rank_height[rank[i]] = rank_height[rank[i]].max(places[i].h);
        }
        let mut y = 0.0;
        for r in 0..ranks {
            rank_top[r] = y;
            y += rank_height[r] + GAP_Y;
        }
        for (i, place) in places.iter_mut().enumerate() {
            let x = centre.get(&key(&Item::Node(i))).copied().unwrap_or(0.0);
            place.x = x - place.w / 2.0;
            place.y = rank_top[rank[i]] + (rank_height[rank[i]] - place.h) / 2.0;
        }
        if let Some(note) = note {
            let head = places[0];
            places[note].x = head.right() + 3.0 * GAP_X;
            places[note].y = head.y;
        }
        let mut bends = vec![Vec::new(); flow.edges.len()];
        for layer in &layers {
            for (item, _) in layer {
                if let Item::Waypoint { edge, at } = item {
                    // Straight down through the rank, clear of its boxes.
                    let x = centre.get(&key(item)).copied().unwrap_or(0.0);
                    bends[*edge].push((x, rank_top[*at]));
                    bends[*edge].push((x, rank_top[*at] + rank_height[*at]));
                }
            }
        }
        for b in &mut bends {
            b.sort_by(|a, b| a.1.total_cmp(&b.1));
        }

        // Everything from x = 0.
        let left = places
            .iter()
            .map(|p| p.x)
            .chain(bends.iter().flatten().map(|b| b.0 - WAYPOINT / 2.0))
            .fold(f64::INFINITY, f64::min);
        let left = if left.is_finite() { left } else { 0.0 };
        for p in &mut places {
            p.x -= left;
        }
        for b in bends.iter_mut().flatten() {
            b.0 -= left;
        }

        // Ways back: a lane each, right of everything they pass.
        let mut lanes = vec![None; flow.edges.len()];
        let mut lane_right = places.iter().map(Place::right).fold(0.0, f64::max);
        for (e, edge) in flow.edges.iter().enumerate() {
            if edge.style == EdgeStyle::Back {
                let (a, b) = (places[edge.from], places[edge.to]);
                let (top, bottom) = (a.y.min(b.y), a.bottom().max(b.bottom()));
                let beside = places
                    .iter()
                    .filter(|p| p.bottom() >= top && p.y <= bottom)
                    .map(Place::right)
                    .fold(0.0, f64::max);
                let x = beside.max(lane_right) + LANE;
                lane_right = x;
                lanes[e] = Some(x);
            }
        }
        let mut layout = Layout {
            places,
            bends,
            lanes,
            width: 0.0,
            height: 0.0,
        };
        // Labels may reach left of the boxes (an arrow leaning left has its
        // label on its left): everything moves right to keep them in.
        let labels: Vec<(f64, f64)> = flow
            .edges
            .iter()
            .enumerate()
            .filter_map(|(e, edge)| layout.route(e, edge).1)
            .map(|label| (label.left, label.left + label.width))
            .collect();
        let reach = labels.iter().map(|l| l.0).fold(0.0, f64::min);
        if reach < 0.0 {
            for p in &mut layout.places {
                p.x -= reach;
            }
            for b in layout.bends.iter_mut().flatten() {
                b.0 -= reach;
            }
            for lane in layout.lanes.iter_mut().flatten() {
                *lane -= reach;
            }
            lane_right -= reach;
        }
        layout.width = layout
            .places
            .iter()
            .map(Place::right)
            .chain(labels.iter().map(|l| l.1 - reach.min(0.0)))
            .fold(lane_right + 40.0, f64::max);
        layout.height = layout.places.iter().map(Place::bottom).fold(0.0, f64::max);
        layout
    }

    /// An edge's path, and where its label goes.
    fn route(&self, e: usize, edge: &super::Edge) -> (String, Option<LabelBox>) {
        let (a, b) = (self.places[edge.from], self.places[edge.to]);
        let (path, label_at) = match (edge.style, self.lanes[e]) {
            (EdgeStyle::Note, _) => (format!("M{},{} H{}", n(a.right()), n(a.cy()), n(b.x)), None),
            // Down out of the box, across under its rank, up the lane.
            (EdgeStyle::Back, Some(lane)) => (
                format!(
                    "M{},{} V{} H{} V{} H{}",
                    n(a.cx()),
                    n(a.bottom()),
                    n(a.bottom() + GAP_Y / 3.0),
                    n(lane),
                    n(b.cy()),
                    n(b.right())
                ),
                Some(((lane, (a.bottom() + b.cy()) / 2.0), 0.0)),
            ),
            _ => {
                let mut points = vec![(a.cx(), a.bottom())];
                points.extend(self.bends[e].iter().copied());
                points.push((b.cx(), b.y));
                let mut path = String::new();
                for (i, (x, y)) in points.iter().enumerate() {
                    let _ = write!(
                        path,
                        "{}{},{}",
                        if i == 0 { "M" } else { " L" },
                        n(*x),
                        n(*y)
                    );
                }
                let (x0, y0) = points[0];
                let (x1, y1) = points[1];
                (
                    path,
                    Some(((x0 + (x1 - x0) * 0.5, y0 + (y1 - y0) * 0.5), x1 - x0)),
                )
            }
        };
        let label = match (&edge.label, label_at) {
            (Some(text), Some(((x, y), towards))) => {
                // Beside the arrow, on the side it leans to, so the labels
                // of arrows fanning out of one box do not overlap.
                let width = columns_of(text) as f64 * COLUMN * 11.0 / FONT + 8.0;
                let left = if towards < -1.0 {
                    x - width - 2.0
                } else if towards > 1.0 {
                    x + 2.0
                } else {
                    x - width / 2.0
                };
                Some(LabelBox { left, y, width })
            }
            _ => None,
        };
        (path, label)
    }

    fn draw(&self, out: &mut String, flow: &Flow, paint: &Paint) {
        // Arrows first, boxes over them, labels last (over both).
        let mut labels = String::new();
        for (e, edge) in flow.edges.iter().enumerate() {
            let (path, label) = self.route(e, edge);
            let dash = match edge.style {
                EdgeStyle::Flow => "",
                EdgeStyle::Back | EdgeStyle::Note => " stroke-dasharray=\"5 4\"",
            };
            let marker = if edge.style == EdgeStyle::Note {
                ""
            } else {
                " marker-end=\"url(#waymark-arrow)\""
            };
            let _ = writeln!(
                out,
                "<path class=\"edge\" d=\"{path}\" fill=\"none\" stroke=\"#555555\" stroke-width=\"1.3\"{dash}{marker}/>"
            );
            if let (Some(text), Some(LabelBox { left, y, width })) = (&edge.label, label) {
                let _ = writeln!(
                    labels,
                    "<g class=\"edge-label\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"16\" rx=\"3\" fill=\"#ffffff\" fill-opacity=\"0.92\"/><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#333333\">{}</text></g>",
                    n(left),
                    n(y - 8.0),
                    n(width),
                    n(left + width / 2.0),
                    n(y + 4.0),
                    escape(text)
                );
            }
        }
        for (node, place) in flow.nodes.iter().zip(&self.places) {
            let (fill, stroke, ink) = colours(node.role);
            let radius = match node.role {
                Role::End | Role::Exit => place.h / 2.0,
                Role::Head => 10.0,
                Role::Decision | Role::Repeat => 2.0,
                _ => 6.0,
            };
            let stroke_width = match node.role {
                Role::Decision | Role::Repeat => 2.0,
                _ => 1.2,
            };
            let _ = writeln!(
                out,
                "<g class=\"step role-{}\" data-key=\"{}\"><title>{}</title>",
                role_name(node.role),
                escape(&node.key),
                escape(&node.lines.join("\n"))
            );
            let _ = writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{stroke_width}\"/>",
                n(place.x),
                n(place.y),
                n(place.w),
                n(place.h),
                n(radius.min(place.h / 2.0)),
            );
            let mut baseline = place.y + PAD_Y + LINE - 4.0;
            for (i, line) in node.lines.iter().enumerate() {
                let weight = if i == 0 { " font-weight=\"600\"" } else { "" };
                let _ = writeln!(
                    out,
                    "<text x=\"{}\" y=\"{}\" fill=\"{ink}\"{weight}>{}</text>",
                    n(place.x + PAD_X),
                    n(baseline),
                    escape(&clip(line))
                );
                if i == 0 && node.step.is_some() {
                    let _ = writeln!(
                        out,
                        "<text class=\"key\" x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\" fill=\"{ink}\" fill-opacity=\"0.55\">{}</text>",
                        n(place.right() - 6.0),
                        n(baseline),
                        escape(&node.key)
                    );
                }
                baseline += LINE;
            }
            let figures = paint.of(&flow.name, &node.key);
            if !figures.is_empty() {
                let rule = baseline - LINE + 7.0;
                let _ = writeln!(
                    out,
                    "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{stroke}\" stroke-opacity=\"0.5\"/>",
                    n(place.x + 4.0),
                    n(rule),
                    n(place.right() - 4.0),
                    n(rule)
                );
                baseline += 6.0;
                for line in figures {
                    let _ = writeln!(
                        out,
                        "<text class=\"figure\" x=\"{}\" y=\"{}\" fill=\"{ink}\" font-weight=\"700\">{}</text>",
                        n(place.x + PAD_X),
                        n(baseline),
                        escape(&clip(line))
                    );
                    baseline += LINE;
                }
            }
            out.push_str("</g>\n");
        }
        out.push_str(&labels);
    }
}

/// Where an arrow's label goes: its box's left edge, middle height, width.
#[derive(Debug, Clone, Copy)]
struct LabelBox {
    left: f64,
    y: f64,
    width: f64,
}

/// A stable map key for an item.
type ItemKey = (usize, usize, usize);

fn key(item: &Item) -> ItemKey {
    match item {
        Item::Node(i) => (0, *i, 0),
        Item::Waypoint { edge, at } => (1, *edge, *at),
    }
}

fn reorder(layer: &mut [(Item, f64)], keys: &[f64]) {
    let mut keyed: Vec<((Item, f64), f64, usize)> = layer
        .iter()
        .copied()
        .zip(keys.iter().copied())
        .enumerate()
        .map(|(i, (item, k))| (item, k, i))
        .collect();
    keyed.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.2.cmp(&b.2)));
    for (slot, (item, _, _)) in layer.iter_mut().zip(keyed) {
        *slot = item;
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn columns_of(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// `text` cut to [`MAX_COLUMNS`], ending in `…` when cut.
fn clip(text: &str) -> String {
    if columns_of(text) <= MAX_COLUMNS {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w > MAX_COLUMNS - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Head => "head",
        Role::Note => "note",
        Role::Message => "message",
        Role::Wait => "wait",
        Role::Decision => "decision",
        Role::Reward => "reward",
        Role::Update => "update",
        Role::Repeat => "repeat",
        Role::End => "end",
        Role::Exit => "exit",
    }
}

/// A coordinate with at most one decimal, no trailing `.0`.
fn n(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// Text for SVG (and HTML) content and attribute values: markup
/// characters as entities, control characters other than line breaks
/// and tabs dropped (XML cannot hold them).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_clipped_by_columns_counting_wide_characters_twice() {
        let ascii = "x".repeat(80);
        assert_eq!(columns_of(&clip(&ascii)), MAX_COLUMNS);
        assert!(clip(&ascii).ends_with('…'));
        let wide = "欢".repeat(40);
        let clipped = clip(&wide);
        assert!(columns_of(&clipped) <= MAX_COLUMNS);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }

    #[test]
    fn text_is_escaped_for_xml() {
        assert_eq!(escape("a<b & \"c\"'"), "a&lt;b &amp; &quot;c&quot;&#39;");
    }

    #[test]
    fn coordinates_are_short() {
        assert_eq!(n(3.0), "3");
        assert_eq!(n(3.04), "3");
        assert_eq!(n(3.06), "3.1");
        assert_eq!(n(-0.5), "-0.5");
    }
}
