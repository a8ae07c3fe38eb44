//! The DAG as Graphviz DOT (`dag.dot`): the same nodes, runs and edges as the SVG, for
//! `dot -Tsvg`.

use std::fmt::Write as _;

use crate::report::Options;
use crate::report::dag::draw::{auth_targets, label};
use crate::report::dag::{Layout, Node};
use crate::report::model::{RoomModel, Status};
use crate::report::svg;

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

pub(super) fn draw_dot(room: &RoomModel, layout: &Layout, options: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// Event DAG of {} (mxsim report). Render: dot -Tsvg dag.dot",
        room.room_id.replace('\n', " ")
    );
    out.push_str("digraph dag {\n  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fontname=\"DejaVu Sans\", fontsize=10];\n  edge [color=\"#555555\"];\n");
    for (id, node) in layout.nodes.iter().enumerate() {
        let color = svg::server_color(node.band);
        let (label, tooltip, extra) = dot_node(room, layout, id, node);
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
            for target in auth_targets(room, layout, id, node) {
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

/// A node's label, tooltip and extra attributes: a run shows its count and first and last
/// ids; an event its type, id, depth and status, styled by status, merges doubled.
fn dot_node(room: &RoomModel, layout: &Layout, id: usize, node: &Node) -> (String, String, String) {
    let first = &room.events[node.events[0]];
    if node.events.len() > 1 {
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
            Status::Rejected => {
                extra.push_str(&format!(", style=\"dashed,filled\", color=\"{}\"", svg::REJECTED))
            }
            Status::SoftFailed => extra
                .push_str(&format!(", style=\"dashed,filled\", color=\"{}\"", svg::SOFT_FAILED)),
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
            format!("{}\n{} d{}{status_word}", label(first), svg::short_id(&first.id), first.depth),
            first.id.clone(),
            extra,
        )
    }
}
