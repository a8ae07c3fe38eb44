//! The room's event DAG: `dag.svg` (written by hand, layered by depth with time flowing
//! down, one column band per origin server) and `dag.dot` for Graphviz.
//!
//! Layout: events are taken in (depth, first sight, id) order; an event's layer is one
//! more than the deepest layer of its prev events, so an honest DAG's layers are its
//! depths. Within a layer, a server's events sit side by side in its band, in order of
//! first sight. Linear runs of plain messages from one server (each the only child of
//! the one before) longer than [`Options::collapse_run_min`] become one node, so that a
//! 2,000-event room stays navigable.
//!
//! `layout` places events into nodes, layers and bands; `draw` writes the SVG; `dot` the
//! Graphviz file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::Options;
use crate::report::model::{RoomModel, Status};
use crate::trace::Trace;

mod dot;
mod draw;
mod layout;

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
    let layout = layout::layout(room, options);
    let svg = draw::draw_svg(trace, room, &layout, options);
    let dot = dot::draw_dot(room, &layout, options);
    let summary = summary(room, &layout);
    Dag { svg, dot, summary }
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
