//! The DAG's layout: events in (depth, first sight, id) order, linear runs of one server's
//! plain messages folded into one node, a layer per node one below its deepest parent, and
//! one column band per origin server (the servers past `OWN_BANDS_MAX` sharing one).

use std::collections::{BTreeMap, BTreeSet};

use crate::report::Options;
use crate::report::dag::{BAND_PAD, LEFT, Layout, NODE_W, Node, OWN_BANDS_MAX, ROW_H, SLOT_W, TOP};
use crate::report::model::{EventNode, RoomModel, Status};

fn band_of(room: &RoomModel, event: &EventNode) -> usize {
    let author = event.author();
    room.servers.iter().position(|s| *s == author).unwrap_or(room.servers.len())
}

/// A message that may be folded into a run: not state, not a merge, nothing unusual.
fn is_plain(event: &EventNode) -> bool {
    !event.is_state() && event.prev_events.len() == 1 && event.status() == Status::Normal
}

pub(super) fn layout(room: &RoomModel, options: &Options) -> Layout {
    let count = room.events.len();
    let (child_count, only_child) = count_children(room);
    let (mut nodes, node_of) = fold_runs(room, options, &child_count, &only_child);
    let parents = place_layers(room, &mut nodes, &node_of);
    let layer_count = nodes.iter().map(|n| n.layer + 1).max().unwrap_or(0);
    let (band_x, band_w) = place_bands(room, &mut nodes);
    assert_eq!(node_of.len(), count, "every event is in exactly one node");
    Layout { nodes, node_of, parents, child_count, band_x, band_w, layer_count }
}

/// Per event: how many known events name it in `prev_events`, and the last of them.
fn count_children(room: &RoomModel) -> (Vec<usize>, Vec<Option<usize>>) {
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
    (child_count, only_child)
}

/// The drawing order's nodes: every event in (depth, first sight, id) order becomes a node,
/// except that a run of at least `collapse_run_min` plain messages from one server, each the
/// only child of the one before, becomes one node. Returns the nodes (layer and slot still
/// 0) and each event's node.
fn fold_runs(
    room: &RoomModel,
    options: &Options,
    child_count: &[usize],
    only_child: &[Option<usize>],
) -> (Vec<Node>, BTreeMap<usize, usize>) {
    let count = room.events.len();
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
        (is_plain(before) && child_count[parent] == 1 && before.author() == event.author())
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
    (nodes, node_of)
}

/// Each node's parents (deduplicated, in `prev_events` order), and each node's layer.
fn place_layers(
    room: &RoomModel,
    nodes: &mut [Node],
    node_of: &BTreeMap<usize, usize>,
) -> Vec<Vec<usize>> {
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
    parents
}

/// Each node's slot within its layer and band, and each band's x and width.
fn place_bands(room: &RoomModel, nodes: &mut [Node]) -> (Vec<f64>, Vec<f64>) {
    let band_count = room.servers.len() + 1;
    let shared = shared_band(room.servers.len());
    // Bands from `shared` on (but not the unknown-origin one) are drawn as one.
    let group = |band: usize| match shared {
        Some(first) if band >= first && band < band_count - 1 => first,
        _ => band,
    };
    let mut cells: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut slots_max = vec![0usize; band_count];
    for node in nodes.iter_mut() {
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
    (band_x, band_w)
}

/// The first band shared by several servers, when there are too many for one each.
pub(super) fn shared_band(servers: usize) -> Option<usize> {
    (servers > OWN_BANDS_MAX).then_some(OWN_BANDS_MAX - 1)
}

impl Layout {
    pub(super) fn x(&self, node: &Node) -> f64 {
        self.band_x[node.band] + BAND_PAD + node.slot as f64 * SLOT_W + (SLOT_W - NODE_W) / 2.0
    }

    pub(super) fn y_of_layer(layer: usize) -> f64 {
        TOP + layer as f64 * ROW_H
    }

    pub(super) fn width(&self) -> f64 {
        self.band_x.last().copied().unwrap_or(LEFT) + self.band_w.last().copied().unwrap_or(0.0)
            - if self.is_last_band_empty() {
                self.band_w.last().copied().unwrap_or(0.0)
            } else {
                0.0
            }
            + 20.0
    }

    pub(super) fn is_last_band_empty(&self) -> bool {
        let last = self.band_x.len() - 1;
        !self.nodes.iter().any(|n| n.band == last)
    }

    pub(super) fn height(&self) -> f64 {
        Layout::y_of_layer(self.layer_count) + 30.0
    }
}
