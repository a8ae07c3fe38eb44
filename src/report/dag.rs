//! The room's event DAG: `dag.svg` (written by hand, layered by depth with time flowing
//! down, one column band per origin server) and `dag.dot` for Graphviz.
//!
//! Layout: events are taken in (depth, first sight, id) order; an event's layer is one
//! more than the deepest layer of its prev events, so an honest DAG's layers are its
//! depths. Within a layer, a server's events sit side by side in its band, in order of
//! first sight. Linear runs of plain messages from one server (each the only child of
//! the one before) longer than [`Options::collapse_run_min`] become one node, so that a
//! 2,000-event room stays navigable.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::report::Options;
use crate::report::model::{EventNode, RoomModel, Status, WindowKind};
use crate::report::svg::{self, escape, num};
use crate::report::timeline::seconds;
use crate::trace::{Decision, Trace};

const NODE_W: f64 = 150.0;
const NODE_H: f64 = 36.0;
const SLOT_W: f64 = 166.0;
const ROW_H: f64 = 60.0;
const BAND_PAD: f64 = 12.0;
const LEFT: f64 = 290.0;
const TOP: f64 = 128.0;
/// Where the band headers start.
const BANDS_Y: f64 = 76.0;
/// Ids listed in the tooltip of a collapsed run.
const RUN_TOOLTIP_IDS_MAX: usize = 40;
/// Rooms with more origin servers than this draw the first `OWN_BANDS_MAX - 1` in bands
/// of their own and the rest side by side in one shared band (nodes keep their server's
/// colour), so that a 100-server room is not 17 000 pixels wide.
const OWN_BANDS_MAX: usize = 10;

/// The drawn DAG.
pub struct Dag {
    pub svg: String,
    pub dot: String,
    /// One sentence for the page.
    pub summary: String,
}

/// A drawn node: one event, or a collapsed run of messages.
struct Node {
    /// Positions in `room.events`, oldest first (one for a single event).
    events: Vec<usize>,
    band: usize,
    layer: usize,
    slot: usize,
}

struct Layout {
    nodes: Vec<Node>,
    /// Event position → node.
    node_of: BTreeMap<usize, usize>,
    /// Per node: its parent nodes (via `prev_events`), deduplicated, in order.
    parents: Vec<Vec<usize>>,
    /// Per event: how many known events name it in `prev_events`.
    child_count: Vec<usize>,
    band_x: Vec<f64>,
    band_w: Vec<f64>,
    layer_count: usize,
}

pub fn render(trace: &Trace, room: &RoomModel, options: &Options) -> Dag {
    let layout = layout(room, options);
    let svg = draw_svg(trace, room, &layout, options);
    let dot = draw_dot(room, &layout, options);
    let summary = summary(room, &layout);
    Dag { svg, dot, summary }
}

fn band_of(room: &RoomModel, event: &EventNode) -> usize {
    let origin = event.origin();
    room.servers.iter().position(|s| *s == origin).unwrap_or(room.servers.len())
}

/// A message that may be folded into a run: not state, not a merge, nothing unusual.
fn is_plain(event: &EventNode) -> bool {
    !event.is_state() && event.prev_events.len() == 1 && event.status() == Status::Normal
}

fn layout(room: &RoomModel, options: &Options) -> Layout {
    let count = room.events.len();
    let mut child_count = vec![0usize; count];
    let mut only_child: Vec<Option<usize>> = vec![None; count];
    for (position, event) in room.events.iter().enumerate() {
        let prevs: BTreeSet<&String> = event.prev_events.iter().collect();
        for prev in prevs {
            if let Some(&parent) = room.index.get(prev) {
                child_count[parent] += 1;
                only_child[parent] = Some(position);
            }
        }
    }
    // The topological drawing order: (depth, first sight, id).
    let mut order: Vec<usize> = (0..count).collect();
    order.sort_by(|&a, &b| {
        let (ea, eb) = (&room.events[a], &room.events[b]);
        (ea.depth, ea.first_t, &ea.id).cmp(&(eb.depth, eb.first_t, &eb.id))
    });
    // `link[e]`: the plain event before `e` in a run of one server's plain messages.
    let links_back = |e: usize| -> Option<usize> {
        let event = &room.events[e];
        if !is_plain(event) {
            return None;
        }
        let parent = *room.index.get(&event.prev_events[0])?;
        let before = &room.events[parent];
        (is_plain(before) && child_count[parent] == 1 && before.origin() == event.origin())
            .then_some(parent)
    };
    let mut node_of: BTreeMap<usize, usize> = BTreeMap::new();
    let mut nodes: Vec<Node> = Vec::new();
    let run_min = options.collapse_run_min as usize;
    for &e in &order {
        if node_of.contains_key(&e) {
            continue;
        }
        let mut members = vec![e];
        if run_min > 0 && links_back(e).is_none() && is_plain(&room.events[e]) {
            // Follow the run forward while each next event links back to the last.
            let mut last = e;
            while child_count[last] == 1 {
                let Some(next) = only_child[last] else { break };
                if node_of.contains_key(&next) || links_back(next) != Some(last) {
                    break;
                }
                members.push(next);
                last = next;
            }
            if members.len() < run_min.max(2) {
                members.truncate(1);
            }
        }
        let band = band_of(room, &room.events[e]);
        for &member in &members {
            node_of.insert(member, nodes.len());
        }
        nodes.push(Node { events: members, band, layer: 0, slot: 0 });
    }
    // Parents of each node, and layers in drawing order (a node's first event comes in
    // `order` after its parents' in an honest DAG; an edge to a node not yet placed is
    // ignored for layering, never followed).
    let mut parents: Vec<Vec<usize>> = Vec::with_capacity(nodes.len());
    for (id, node) in nodes.iter().enumerate() {
        let first = &room.events[node.events[0]];
        let mut list = Vec::new();
        for prev in &first.prev_events {
            if let Some(&parent) = room.index.get(prev).and_then(|p| node_of.get(p)) {
                if parent != id && !list.contains(&parent) {
                    list.push(parent);
                }
            }
        }
        parents.push(list);
    }
    let mut placed = vec![false; nodes.len()];
    for id in 0..nodes.len() {
        let layer = parents[id].iter().filter(|&&p| placed[p]).map(|&p| nodes[p].layer + 1).max();
        nodes[id].layer = layer.unwrap_or(0);
        placed[id] = true;
    }
    let layer_count = nodes.iter().map(|n| n.layer + 1).max().unwrap_or(0);
    let band_count = room.servers.len() + 1;
    let shared = shared_band(room.servers.len());
    // Bands from `shared` on (but not the unknown-origin one) are drawn as one.
    let group = |band: usize| match shared {
        Some(first) if band >= first && band < band_count - 1 => first,
        _ => band,
    };
    let mut cells: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut slots_max = vec![0usize; band_count];
    for node in &mut nodes {
        let cell = cells.entry((node.layer, group(node.band))).or_insert(0);
        node.slot = *cell;
        *cell += 1;
        slots_max[group(node.band)] = slots_max[group(node.band)].max(*cell);
    }
    let mut band_x = Vec::with_capacity(band_count);
    let mut band_w = Vec::with_capacity(band_count);
    let mut x = LEFT;
    for (band, slots) in slots_max.iter().enumerate() {
        if group(band) != band {
            band_x.push(band_x[group(band)]);
            band_w.push(band_w[group(band)]);
            continue;
        }
        band_x.push(x);
        let width = (*slots).max(1) as f64 * SLOT_W + 2.0 * BAND_PAD;
        band_w.push(width);
        x += width;
    }
    assert_eq!(node_of.len(), count, "every event is in exactly one node");
    Layout { nodes, node_of, parents, child_count, band_x, band_w, layer_count }
}

/// The first band shared by several servers, when there are too many for one each.
fn shared_band(servers: usize) -> Option<usize> {
    (servers > OWN_BANDS_MAX).then_some(OWN_BANDS_MAX - 1)
}

impl Layout {
    fn x(&self, node: &Node) -> f64 {
        self.band_x[node.band] + BAND_PAD + node.slot as f64 * SLOT_W + (SLOT_W - NODE_W) / 2.0
    }

    fn y_of_layer(layer: usize) -> f64 {
        TOP + layer as f64 * ROW_H
    }

    fn width(&self) -> f64 {
        self.band_x.last().copied().unwrap_or(LEFT) + self.band_w.last().copied().unwrap_or(0.0)
            - if self.is_last_band_empty() {
                self.band_w.last().copied().unwrap_or(0.0)
            } else {
                0.0
            }
            + 20.0
    }

    fn is_last_band_empty(&self) -> bool {
        let last = self.band_x.len() - 1;
        !self.nodes.iter().any(|n| n.band == last)
    }

    fn height(&self) -> f64 {
        Layout::y_of_layer(self.layer_count) + 30.0
    }
}

/// "member @bob:hs2", "topic", "message".
fn label(event: &EventNode) -> String {
    let kind = event.event_type.strip_prefix("m.room.").unwrap_or(&event.event_type);
    let kind = if kind.is_empty() { "?" } else { kind };
    match &event.state_key {
        Some(key) if !key.is_empty() => svg::clip(&format!("{kind} {key}"), 24),
        _ => svg::clip(kind, 24),
    }
}

/// Decisions listed in a node's tooltip.
const TOOLTIP_DECISIONS_MAX: usize = 16;

fn tooltip(room: &RoomModel, event: &EventNode) -> String {
    let mut text = format!("{}\ntype: {}", event.id, event.event_type);
    if let Some(key) = &event.state_key {
        let _ = write!(text, "\nstate_key: {key:?}");
    }
    let _ = write!(
        text,
        "\nsender: {}\norigin: {}\ndepth: {}\nprev_events: {}\nauth_events: {}",
        event.sender,
        event.origin(),
        event.depth,
        event.prev_events.join(" "),
        event.auth_events.join(" ")
    );
    // Decisions other than plain acceptance first, then acceptances; a large room's list
    // is cut (the page's panel has every one).
    let mut listed = 0usize;
    for unusual in [true, false] {
        for (server, t, decision, reason) in &event.decisions {
            if (*decision != Decision::Accepted) != unusual {
                continue;
            }
            listed += 1;
            if listed > TOOLTIP_DECISIONS_MAX {
                continue;
            }
            let _ = write!(text, "\n{server} at {}.{:03} s: {decision:?}", t / 1000, t % 1000);
            if let Some(reason) = reason {
                let _ = write!(text, " ({})", svg::clip(reason, 120));
            }
        }
    }
    if listed > TOOLTIP_DECISIONS_MAX {
        let accepted = event.decisions.iter().filter(|d| d.2 == Decision::Accepted).count();
        let _ = write!(
            text,
            "\n… {} more decisions ({accepted} acceptances in all): click for every one",
            listed - TOOLTIP_DECISIONS_MAX
        );
    }
    if event.pdu.is_none() {
        text.push_str("\n(no PDU recorded)");
    }
    let _ = room;
    text
}

fn draw_svg(trace: &Trace, room: &RoomModel, layout: &Layout, options: &Options) -> String {
    let (width, height) = (layout.width().max(1000.0), layout.height());
    let mut out = svg::open(width, height, "mxsim-dag");
    out.push_str(
        "<defs><marker id=\"dag-arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" \
         fill=\"#555\"/></marker><marker id=\"dag-arrow-merge\" viewBox=\"0 0 8 8\" refX=\"8\" \
         refY=\"4\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L8,4 \
         L0,8 z\" fill=\"#6a3d9a\"/></marker></defs>\n",
    );
    let _ = writeln!(
        out,
        "<rect width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
        num(width),
        num(height)
    );
    let version = room.version.as_deref().unwrap_or("?");
    let _ = writeln!(
        out,
        "<text x=\"12\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Event DAG of {} (room version {}), {} — seed {}</text>",
        escape(&room.title()),
        escape(version),
        escape(&trace.header.scenario),
        trace.header.seed
    );
    legend(&mut out, options);
    // Server bands with headers.
    for (band, name) in room.servers.iter().enumerate() {
        if !layout.nodes.iter().any(|n| n.band == band) && band >= trace.header.servers.len() {
            continue;
        }
        let shared = shared_band(room.servers.len());
        let (name, color) = match shared {
            Some(first) if band > first => continue,
            Some(first) if band == first => {
                let rest = &room.servers[first..];
                (
                    format!("{} … {} ({} servers)", rest[0], rest[rest.len() - 1], rest.len()),
                    "#777777".to_owned(),
                )
            }
            _ => (name.clone(), svg::server_color(band)),
        };
        let (x, w) = (layout.band_x[band], layout.band_w[band]);
        let fill = if band % 2 == 0 { "#f6f7f9" } else { "#ffffff" };
        let _ = writeln!(
            out,
            "<rect class=\"band\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\"/>",
            num(x),
            num(BANDS_Y),
            num(w),
            num(height - BANDS_Y)
        );
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"24\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"13\" font-weight=\"bold\" fill=\"#ffffff\" text-anchor=\"middle\">{}</text>",
            num(x + 2.0),
            num(BANDS_Y),
            num(w - 4.0),
            color,
            num(x + w / 2.0),
            num(BANDS_Y + 17.0),
            escape(&name)
        );
    }
    if !layout.is_last_band_empty() {
        let band = layout.band_x.len() - 1;
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"13\" text-anchor=\"middle\">unknown origin</text>",
            num(layout.band_x[band] + layout.band_w[band] / 2.0),
            num(BANDS_Y + 17.0)
        );
    }
    draw_windows(&mut out, room, layout, width);
    // Layer axis: the depth range of each layer.
    let step = if layout.layer_count > 200 { 10 } else { 1 };
    let mut depth_range: BTreeMap<usize, (i64, i64)> = BTreeMap::new();
    for node in &layout.nodes {
        for &e in &node.events {
            let depth = room.events[e].depth;
            let range = depth_range.entry(node.layer).or_insert((depth, depth));
            range.0 = range.0.min(depth);
            range.1 = range.1.max(depth);
        }
    }
    for (layer, (low, high)) in &depth_range {
        if layer % step != 0 {
            continue;
        }
        let text =
            if low == high { format!("depth {low}") } else { format!("depth {low}–{high}") };
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#777\" text-anchor=\"end\">{}</text>",
            num(LEFT - 8.0),
            num(Layout::y_of_layer(*layer) + NODE_H / 2.0 + 3.0),
            text
        );
    }
    draw_edges(&mut out, room, layout, options);
    for (id, node) in layout.nodes.iter().enumerate() {
        draw_node(&mut out, room, layout, id, node);
    }
    out.push_str("</svg>\n");
    out
}

/// The key to the shapes, under the title.
fn legend(out: &mut String, options: &Options) {
    let y = 34.0;
    let mut x = 12.0;
    let items: [(&str, &str, &str, &str, &str); 7] = [
        ("state event", "2", "#dbe4ef", "#4e79a7", ""),
        ("message", "9", "#ffffff", "#4e79a7", ""),
        ("rejected", "2", "#fde3e3", svg::REJECTED, " stroke-dasharray=\"5 3\""),
        ("soft-failed", "9", "#fff1e0", svg::SOFT_FAILED, " stroke-dasharray=\"5 3\""),
        ("merge / fork", "2", "#ffffff", svg::MERGE, ""),
        ("fault window", "0", "#fdecc8", "#e0a030", " stroke-dasharray=\"6 3\""),
        ("crash window", "0", "#f8d0d0", "#c03030", " stroke-dasharray=\"6 3\""),
    ];
    for (name, rx, fill, stroke, extra) in items {
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"26\" height=\"14\" rx=\"{rx}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"{extra}/><text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#333\">{name}</text>",
            num(x),
            num(y),
            num(x + 31.0),
            num(y + 11.0)
        );
        x += 40.0 + name.len() as f64 * 6.6;
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#555\">Time flows down: one row per depth, one band per origin server; \"N messages\" is a run drawn as one node{}.</text>",
        num(12.0),
        num(y + 30.0),
        if options.auth_edges { "; grey dashed lines are auth events" } else { "" }
    );
}

/// Fault windows as bands across all servers, crashes and pauses in the server's band;
/// a window spans the rows of the events created during it, or is a line where it fell
/// if no event was created then.
fn draw_windows(out: &mut String, room: &RoomModel, layout: &Layout, width: f64) {
    let created_layer = |start: u64, end: u64| -> (Option<usize>, Option<usize>) {
        let mut range: Option<(usize, usize)> = None;
        let mut after: Option<usize> = None;
        for node in &layout.nodes {
            for &e in &node.events {
                let Some((_, t)) = room.events[e].created else { continue };
                if t >= start && t < end {
                    range = Some(match range {
                        None => (node.layer, node.layer),
                        Some((a, b)) => (a.min(node.layer), b.max(node.layer)),
                    });
                } else if t >= end {
                    after = Some(after.map_or(node.layer, |a: usize| a.min(node.layer)));
                }
            }
        }
        match range {
            Some((a, b)) => (Some(a), Some(b)),
            None => (after, None),
        }
    };
    for (index, window) in room.windows.iter().enumerate() {
        let (first, last) = created_layer(window.start_ms, window.end_ms);
        let (x, w) = match &window.server {
            Some(server) => match room.servers.iter().position(|s| s == server) {
                Some(band) => (layout.band_x[band], layout.band_w[band]),
                None => continue,
            },
            None => (LEFT - 4.0, width - LEFT - 16.0),
        };
        let (fill, stroke) = match window.kind {
            WindowKind::Fault => ("#fdecc8", "#e0a030"),
            WindowKind::Crash => ("#f8d0d0", "#c03030"),
            WindowKind::Pause => ("#dde3ee", "#6070a0"),
        };
        let (from_s, to_s) = (seconds(window.start_ms), seconds(window.end_ms));
        let text = format!("{} ({from_s}–{to_s} s)", window.label);
        let (y, h) = match (first, last) {
            (Some(a), Some(b)) => (
                Layout::y_of_layer(a) - 8.0,
                Layout::y_of_layer(b) - Layout::y_of_layer(a) + NODE_H + 16.0,
            ),
            (Some(a), None) => (Layout::y_of_layer(a) - 14.0, 3.0),
            (None, _) => (layout.height() - 30.0, 3.0),
        };
        let _ = writeln!(
            out,
            "<g class=\"window\"><title>{}</title><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\" fill-opacity=\"0.6\" stroke=\"{stroke}\" stroke-dasharray=\"6 3\"/><text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"{stroke}\">{}<tspan x=\"{}\" dy=\"11\">{}–{} s (events created then)</tspan></text></g>",
            escape(&text),
            num(x),
            num(y),
            num(w),
            num(h),
            num(8.0),
            num(y + 11.0 + (index % 3) as f64 * 22.0),
            escape(&svg::clip(&window.label, 44)),
            num(8.0),
            from_s,
            to_s
        );
    }
}

fn node_center_x(layout: &Layout, node: &Node) -> f64 {
    layout.x(node) + NODE_W / 2.0
}

fn draw_edges(out: &mut String, room: &RoomModel, layout: &Layout, options: &Options) {
    for (id, node) in layout.nodes.iter().enumerate() {
        let is_merge = layout.parents[id].len() > 1;
        let (cx, top) = (node_center_x(layout, node), Layout::y_of_layer(node.layer));
        for &parent in &layout.parents[id] {
            let p = &layout.nodes[parent];
            let (px, bottom) = (node_center_x(layout, p), Layout::y_of_layer(p.layer) + NODE_H);
            let mid = (bottom + top) / 2.0;
            let (color, marker, stroke_width) = if is_merge {
                (svg::MERGE, "dag-arrow-merge", "1.8")
            } else {
                ("#555", "dag-arrow", "1.2")
            };
            let _ = writeln!(
                out,
                "<path class=\"prev\" d=\"M{},{} C{},{} {},{} {},{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"{stroke_width}\" marker-end=\"url(#{marker})\"/>",
                num(px),
                num(bottom),
                num(px),
                num(mid),
                num(cx),
                num(mid),
                num(cx),
                num(top)
            );
        }
        if options.auth_edges {
            let mut auth: BTreeSet<usize> = BTreeSet::new();
            for &e in &node.events {
                for auth_id in &room.events[e].auth_events {
                    if let Some(&target) =
                        room.index.get(auth_id).and_then(|p| layout.node_of.get(p))
                    {
                        if target != id {
                            auth.insert(target);
                        }
                    }
                }
            }
            for target in auth {
                let t = &layout.nodes[target];
                let _ = writeln!(
                    out,
                    "<line class=\"auth\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\" stroke-width=\"0.8\" stroke-dasharray=\"3 3\" opacity=\"0.7\"/>",
                    num(layout.x(t) + NODE_W - 10.0),
                    num(Layout::y_of_layer(t.layer) + NODE_H / 2.0),
                    num(layout.x(node) + 10.0),
                    num(top + NODE_H / 2.0)
                );
            }
        }
    }
}

fn draw_node(out: &mut String, room: &RoomModel, layout: &Layout, id: usize, node: &Node) {
    let (x, y) = (layout.x(node), Layout::y_of_layer(node.layer));
    let color = svg::server_color(node.band);
    let tint = svg::server_tint(node.band);
    let first = &room.events[node.events[0]];
    if node.events.len() > 1 {
        let last = &room.events[*node.events.last().expect("a run has events")];
        let mut title = format!(
            "{} messages from {}, depth {}–{}\n",
            node.events.len(),
            first.origin(),
            first.depth,
            last.depth
        );
        for &e in node.events.iter().take(RUN_TOOLTIP_IDS_MAX) {
            title.push_str(&room.events[e].id);
            title.push('\n');
        }
        if node.events.len() > RUN_TOOLTIP_IDS_MAX {
            let _ = writeln!(title, "… and {} more", node.events.len() - RUN_TOOLTIP_IDS_MAX);
        }
        let _ = writeln!(
            out,
            "<g class=\"node run\" data-events=\"{n}\" data-first=\"{fid}\" data-ids=\"{ids}\"><title>{title}</title><rect x=\"{x4}\" y=\"{y4}\" width=\"{w}\" height=\"{h}\" rx=\"14\" fill=\"#ffffff\" stroke=\"{color}\"/><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"14\" fill=\"{tint}\" stroke=\"{color}\" stroke-width=\"1.5\"/><text x=\"{cx}\" y=\"{ty1}\" font-size=\"11\" font-weight=\"bold\" text-anchor=\"middle\">{n} messages</text><text x=\"{cx}\" y=\"{ty2}\" font-size=\"9\" fill=\"#333\" text-anchor=\"middle\">{a} … {b}</text></g>",
            n = node.events.len(),
            fid = escape(&first.id),
            ids = escape(
                &node
                    .events
                    .iter()
                    .map(|&e| room.events[e].id.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            title = escape(&title),
            x4 = num(x + 4.0),
            y4 = num(y - 4.0),
            x = num(x),
            y = num(y),
            w = num(NODE_W),
            h = num(NODE_H),
            cx = num(x + NODE_W / 2.0),
            ty1 = num(y + 15.0),
            ty2 = num(y + 29.0),
            a = escape(&svg::short_id(&first.id)),
            b = escape(&svg::short_id(&last.id)),
        );
        return;
    }
    let event = first;
    let status = event.status();
    let (fill, stroke, dash, stroke_width) = match status {
        Status::Rejected => ("#fde3e3", svg::REJECTED.to_owned(), " stroke-dasharray=\"5 3\"", "2"),
        Status::SoftFailed => {
            ("#fff1e0", svg::SOFT_FAILED.to_owned(), " stroke-dasharray=\"5 3\"", "2")
        }
        Status::Dropped => ("#eeeeee", "#888888".to_owned(), " stroke-dasharray=\"2 2\"", "1.5"),
        Status::Normal if event.is_state() => (tint.as_str(), color.clone(), "", "2"),
        Status::Normal => ("#ffffff", color.clone(), "", "1.5"),
    };
    let rx = if event.is_state() { "2" } else { "14" };
    let merge = layout.parents[id].len() > 1;
    let fork = layout.child_count[node.events[0]] > 1;
    let class = match (event.is_state(), status) {
        (_, Status::Rejected) => "rejected",
        (_, Status::SoftFailed) => "soft-failed",
        (_, Status::Dropped) => "dropped",
        (true, _) => "state",
        (false, _) => "message",
    };
    let _ = write!(
        out,
        "<g class=\"node event {class}{}{}\" data-events=\"1\" data-id=\"{}\"><title>{}</title>",
        if merge { " merge" } else { "" },
        if fork { " fork" } else { "" },
        escape(&event.id),
        escape(&tooltip(room, event))
    );
    if merge || fork {
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{rx}\" fill=\"none\" stroke=\"{}\" stroke-width=\"3\" opacity=\"0.55\"/>",
            num(x - 3.0),
            num(y - 3.0),
            num(NODE_W + 6.0),
            num(NODE_H + 6.0),
            svg::MERGE
        );
    }
    let _ = write!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{rx}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{stroke_width}\"{dash}/>",
        num(x),
        num(y),
        num(NODE_W),
        num(NODE_H)
    );
    let mut line2 = format!("{} · d{}", svg::short_id(&event.id), event.depth);
    match status {
        Status::Rejected => line2 = format!("REJECTED · {}", svg::short_id(&event.id)),
        Status::SoftFailed => line2 = format!("soft-failed · {}", svg::short_id(&event.id)),
        Status::Dropped => line2 = format!("dropped · {}", svg::short_id(&event.id)),
        Status::Normal => {}
    }
    let badge = match (merge, fork) {
        (true, true) => format!(
            "merge {} · fork {}",
            layout.parents[id].len(),
            layout.child_count[node.events[0]]
        ),
        (true, false) => format!("merge {}", layout.parents[id].len()),
        (false, true) => format!("fork {}", layout.child_count[node.events[0]]),
        (false, false) => String::new(),
    };
    let weight = if event.is_state() { " font-weight=\"bold\"" } else { "" };
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"{}\" font-size=\"11\"{weight} text-anchor=\"middle\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"9\" fill=\"{}\" text-anchor=\"middle\">{}</text>",
        num(x + NODE_W / 2.0),
        num(y + 15.0),
        escape(&label(event)),
        num(x + NODE_W / 2.0),
        num(y + 29.0),
        match status {
            Status::Rejected => svg::REJECTED,
            Status::SoftFailed => "#b35a00",
            _ => "#333333",
        },
        escape(&line2)
    );
    if !badge.is_empty() {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"9\" font-weight=\"bold\" fill=\"{}\" text-anchor=\"end\">{}</text>",
            num(x + NODE_W),
            num(y - 5.0),
            svg::MERGE,
            badge
        );
    }
    out.push_str("</g>\n");
}

/// A DOT string literal.
fn dot_str(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn draw_dot(room: &RoomModel, layout: &Layout, options: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// Event DAG of {} (mxsim report). Render: dot -Tsvg dag.dot",
        room.room_id.replace('\n', " ")
    );
    out.push_str("digraph dag {\n  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fontname=\"DejaVu Sans\", fontsize=10];\n  edge [color=\"#555555\"];\n");
    for (id, node) in layout.nodes.iter().enumerate() {
        let first = &room.events[node.events[0]];
        let color = svg::server_color(node.band);
        let (label, tooltip, extra) = if node.events.len() > 1 {
            let last = &room.events[*node.events.last().expect("a run has events")];
            (
                format!(
                    "{} messages\n{} … {}",
                    node.events.len(),
                    svg::short_id(&first.id),
                    svg::short_id(&last.id)
                ),
                format!("{} … {}", first.id, last.id),
                ", peripheries=2".to_owned(),
            )
        } else {
            let status = first.status();
            let mut extra = String::new();
            if first.is_state() {
                extra.push_str(", style=\"filled\", penwidth=2");
            }
            match status {
                Status::Rejected => extra
                    .push_str(&format!(", style=\"dashed,filled\", color=\"{}\"", svg::REJECTED)),
                Status::SoftFailed => extra.push_str(&format!(
                    ", style=\"dashed,filled\", color=\"{}\"",
                    svg::SOFT_FAILED
                )),
                Status::Dropped => extra.push_str(", style=\"dotted\""),
                Status::Normal => {}
            }
            if layout.parents[id].len() > 1 {
                extra.push_str(&format!(
                    ", peripheries=2, xlabel=\"merge\", fontcolor=\"{}\"",
                    svg::MERGE
                ));
            }
            let status_word = match status {
                Status::Rejected => "\nREJECTED",
                Status::SoftFailed => "\nsoft-failed",
                Status::Dropped => "\ndropped",
                Status::Normal => "",
            };
            (
                format!(
                    "{}\n{} d{}{status_word}",
                    label(first),
                    svg::short_id(&first.id),
                    first.depth
                ),
                first.id.clone(),
                extra,
            )
        };
        let _ = writeln!(
            out,
            "  n{id} [label={}, tooltip={}, color=\"{color}\", fillcolor=\"{}\"{extra}];",
            dot_str(&label),
            dot_str(&tooltip),
            svg::server_tint(node.band)
        );
    }
    for (id, parents) in layout.parents.iter().enumerate() {
        for parent in parents {
            let style = if parents.len() > 1 {
                format!(" [color=\"{}\", penwidth=2]", svg::MERGE)
            } else {
                String::new()
            };
            let _ = writeln!(out, "  n{parent} -> n{id}{style};");
        }
    }
    if options.auth_edges {
        for (id, node) in layout.nodes.iter().enumerate() {
            let mut auth: BTreeSet<usize> = BTreeSet::new();
            for &e in &node.events {
                for auth_id in &room.events[e].auth_events {
                    if let Some(&target) =
                        room.index.get(auth_id).and_then(|p| layout.node_of.get(p))
                    {
                        if target != id {
                            auth.insert(target);
                        }
                    }
                }
            }
            for target in auth {
                let _ = writeln!(
                    out,
                    "  n{target} -> n{id} [style=dashed, color=\"#999999\", constraint=false];"
                );
            }
        }
    }
    out.push_str("}\n");
    out
}

fn summary(room: &RoomModel, layout: &Layout) -> String {
    let events = &room.events;
    let state = events.iter().filter(|e| e.is_state()).count();
    let rejected = events.iter().filter(|e| e.status() == Status::Rejected).count();
    let soft = events.iter().filter(|e| e.status() == Status::SoftFailed).count();
    let merges = layout.parents.iter().filter(|p| p.len() > 1).count();
    let forks = layout.child_count.iter().filter(|&&c| c > 1).count();
    let runs: Vec<&Node> = layout.nodes.iter().filter(|n| n.events.len() > 1).collect();
    let mut text = format!(
        "{} events ({} state, {} other), {} merges, {} forks, {} rejected, {} soft-failed, {} layers",
        events.len(),
        state,
        events.len() - state,
        merges,
        forks,
        rejected,
        soft,
        layout.layer_count
    );
    if !runs.is_empty() {
        let folded: usize = runs.iter().map(|n| n.events.len()).sum();
        let _ = write!(
            text,
            "; {} runs of messages ({} events) drawn as one node each",
            runs.len(),
            folded
        );
    }
    text.push('.');
    text
}
