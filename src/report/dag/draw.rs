//! The DAG as SVG: title and legend, server bands, fault and crash windows, the layer axis,
//! `prev_events` edges (and auth edges when asked), and one node per event or run with a
//! tooltip.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::report::Options;
use crate::report::dag::layout::shared_band;
use crate::report::dag::{BANDS_Y, LEFT, Layout, NODE_H, NODE_W, Node, RUN_TOOLTIP_IDS_MAX};
use crate::report::model::{EventNode, RoomModel, Status, WindowKind};
use crate::report::svg::{self, escape, num};
use crate::report::timeline::seconds;
use crate::trace::{Decision, Trace};

/// "member @bob:hs2", "topic", "message".
pub(super) fn label(event: &EventNode) -> String {
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
pub(super) fn draw_svg(
    trace: &Trace,
    room: &RoomModel,
    layout: &Layout,
    options: &Options,
) -> String {
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
    draw_bands(&mut out, trace, room, layout, height);
    draw_windows(&mut out, room, layout, width);
    draw_layer_axis(&mut out, room, layout);
    draw_edges(&mut out, room, layout, options);
    for (id, node) in layout.nodes.iter().enumerate() {
        draw_node(&mut out, room, layout, id, node);
    }
    out.push_str("</svg>\n");
    out
}

/// The server bands with their headers, and the unknown-origin band's header if it has
/// events.
fn draw_bands(out: &mut String, trace: &Trace, room: &RoomModel, layout: &Layout, height: f64) {
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
}

/// The layer axis: the depth range of each layer (every tenth past 200 layers).
fn draw_layer_axis(out: &mut String, room: &RoomModel, layout: &Layout) {
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

/// The nodes `node`'s events name in `auth_events`, other than itself.
pub(super) fn auth_targets(
    room: &RoomModel,
    layout: &Layout,
    id: usize,
    node: &Node,
) -> BTreeSet<usize> {
    let mut auth: BTreeSet<usize> = BTreeSet::new();
    for &e in &node.events {
        for auth_id in &room.events[e].auth_events {
            if let Some(&target) = room.index.get(auth_id).and_then(|p| layout.node_of.get(p)) {
                if target != id {
                    auth.insert(target);
                }
            }
        }
    }
    auth
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
            for target in auth_targets(room, layout, id, node) {
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
    if node.events.len() > 1 {
        draw_run(out, room, layout, node);
        return;
    }
    let (x, y) = (layout.x(node), Layout::y_of_layer(node.layer));
    let color = svg::server_color(node.band);
    let tint = svg::server_tint(node.band);
    let first = &room.events[node.events[0]];
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
    let badge = badge(layout, id, node, merge, fork);
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

/// A collapsed run of messages: a stacked node with the count and the first and last ids.
fn draw_run(out: &mut String, room: &RoomModel, layout: &Layout, node: &Node) {
    let (x, y) = (layout.x(node), Layout::y_of_layer(node.layer));
    let color = svg::server_color(node.band);
    let tint = svg::server_tint(node.band);
    let first = &room.events[node.events[0]];
    let last = &room.events[*node.events.last().expect("a run has events")];
    let mut title = format!(
        "{} messages from {}, depth {}–{}\n",
        node.events.len(),
        first.author(),
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
            &node.events.iter().map(|&e| room.events[e].id.as_str()).collect::<Vec<_>>().join(" ")
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
}

/// "merge N", "fork N" or both, above a node that joins or splits the DAG.
fn badge(layout: &Layout, id: usize, node: &Node, merge: bool, fork: bool) -> String {
    match (merge, fork) {
        (true, true) => format!(
            "merge {} · fork {}",
            layout.parents[id].len(),
            layout.child_count[node.events[0]]
        ),
        (true, false) => format!("merge {}", layout.parents[id].len()),
        (false, true) => format!("fork {}", layout.child_count[node.events[0]]),
        (false, false) => String::new(),
    }
}
