//! `timeline.svg`: one swim lane per server on one time axis in seconds, with the fault
//! windows as bands across all lanes. Each lane has three rows: events (created, received,
//! rejected, soft-failed, dropped), network (requests sent, answers received, copies lost,
//! retries with the back-off before them, peers marked down and up again) and state (current-state changes, the span the
//! server was joined); crashes and pauses shade the lane.
//!
//! A mark stands for everything of its kind that fell into one pixel column, so the
//! figure's size does not grow with the trace. Past [`LANES_MAX`] servers, lanes are
//! grouped by partition side: one aggregate lane per side (darker marks mean more of
//! that kind in that column) and one lane of its own for each server that matters (cut
//! off on a small side, crashed, paused, diverging or named by a violation).
//!
//! Retries are read from the trace: a request line sent again to the same destination
//! while the earlier copy was never answered. When a sender marks a destination down
//! (`peer_down`) and when it is up again (`peer_up`) are marks of the network row.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::matrix::ids::LookupMap;
use crate::report::model::{Membership, Window, WindowKind};
use crate::report::svg::{self, escape, num};
use crate::trace::{Body, Decision, Fault, Trace, net};

/// Up to this many servers, each gets its own lane.
pub const LANES_MAX: usize = 40;
/// Lanes of their own for servers that matter when lanes are grouped.
pub const MATTER_MAX: usize = 24;

const LEFT: f64 = 190.0;
/// One pixel per column of the network summary.
const PLOT_W: f64 = net::COLUMNS as f64;
const TOP: f64 = 58.0;
const ROW_H: f64 = 9.0;
const LANE_H: f64 = ROW_H * 3.0 + 7.0;
const GROUP_H: f64 = 18.0;
/// The width of a character of a fault label (font size 10), for clipping labels that
/// would run into the next one.
const LABEL_CHAR_W: f64 = 6.0;

/// Mark kinds, in drawing order: (row, colour, legend text).
const KINDS: [(usize, &str, &str); 12] = [
    (0, "#555555", "received"),
    (0, "#1b1b1b", "created"),
    (0, svg::REJECTED, "rejected"),
    (0, svg::SOFT_FAILED, "soft-failed"),
    (0, "#999999", "dropped (bad PDU)"),
    (1, "#1f77b4", "request sent"),
    (1, "#2ca02c", "answer received"),
    (1, svg::REJECTED, "copy lost"),
    (1, "#9467bd", "retry"),
    (2, "#000000", "state changed"),
    (1, "#8c2d04", "marked a peer down"),
    (1, "#17becf", "peer up again"),
];
const RECEIVED: usize = 0;
const CREATED: usize = 1;
const REJECTED: usize = 2;
const SOFT_FAILED: usize = 3;
const DROPPED: usize = 4;
const SENT: usize = 5;
const ANSWERED: usize = 6;
const LOST: usize = 7;
const RETRY: usize = 8;
const STATE: usize = 9;
const PEER_DOWN: usize = 10;
const PEER_UP: usize = 11;

/// What one server did, bucketed by pixel column.
#[derive(Default)]
struct Lane {
    marks: [BTreeMap<u32, u32>; KINDS.len()],
    /// (from, to) in ms: the wait before each retry.
    backoffs: Vec<(u64, u64)>,
}

/// The drawn figure.
pub struct Timeline {
    pub svg: String,
    pub summary: String,
}

/// One lane as drawn: a server, or a group of servers.
struct Row {
    id: String,
    label: String,
    servers: Vec<String>,
}

struct Scale {
    end_ms: u64,
}

impl Scale {
    fn column(&self, t: u64) -> u32 {
        net::column(t, self.end_ms)
    }
    /// A column of the network summary, counted against `net_end_ms`, on this scale (the
    /// same column when the two ends agree, as they do for every trace a run writes).
    fn rescale(&self, column: u32, net_end_ms: u64) -> u32 {
        if net_end_ms == self.end_ms {
            return column;
        }
        let t = u128::from(column) * u128::from(net_end_ms) / u128::from(net::COLUMNS);
        self.column(u64::try_from(t).unwrap_or(u64::MAX))
    }
    fn x(&self, t: u64) -> f64 {
        LEFT + t as f64 / self.end_ms.max(1) as f64 * PLOT_W
    }
}

/// The partition sides of the first partition fault, each in the order of `servers`;
/// servers on no side form a last group. One group of everyone without a partition.
pub fn sides(trace: &Trace, servers: &[String]) -> Vec<Vec<String>> {
    let groups = trace.header.faults.iter().find_map(|f| match f {
        Fault::Partition { groups, .. } => Some(groups),
        _ => None,
    });
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut placed: Vec<String> = Vec::new();
    for group in groups.into_iter().flatten() {
        let names: Vec<&str> = group.iter().map(|n| n.as_str()).collect();
        let side: Vec<String> = servers
            .iter()
            .filter(|s| names.contains(&s.as_str()) && !placed.contains(s))
            .cloned()
            .collect();
        placed.extend(side.iter().cloned());
        if !side.is_empty() {
            out.push(side);
        }
    }
    let rest: Vec<String> = servers.iter().filter(|s| !placed.contains(s)).cloned().collect();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Names a list of servers briefly: all of them up to four, else the first three and a count.
pub fn name_servers(servers: &[String]) -> String {
    if servers.len() <= 4 {
        servers.join(" ")
    } else {
        format!(
            "{} … {} ({} servers)",
            servers[..3].join(" "),
            servers[servers.len() - 1],
            servers.len()
        )
    }
}

fn lanes<'t>(trace: &'t Trace, scale: &Scale) -> BTreeMap<String, Lane> {
    // Each record's lane is found by hashing its server's name: a sorted map compared the
    // name with seven others per record at 100 servers. The lanes are sorted once, below.
    let mut numbers: LookupMap<&str, usize> = LookupMap::new();
    let mut found: Vec<(&str, Lane)> = Vec::new();
    let mut bump = |server: &'t str, kind: usize, t: u64| {
        let column = scale.column(t);
        let at = *numbers.get_or_insert_with(server, || {
            found.push((server, Lane::default()));
            found.len() - 1
        });
        *found[at].1.marks[kind].entry(column).or_default() += 1;
    };
    for record in &trace.records {
        let t = record.t;
        match &record.body {
            Body::Event { server, decision, .. } => {
                let kind = match decision {
                    Decision::Created => CREATED,
                    Decision::Dropped => DROPPED,
                    Decision::SoftFailed => SOFT_FAILED,
                    d if d.is_rejected() => REJECTED,
                    _ => RECEIVED,
                };
                bump(server, kind, t);
            }
            Body::State { server, .. } => bump(server, STATE, t),
            Body::PeerDown { server, .. } => bump(server, PEER_DOWN, t),
            Body::PeerUp { server, .. } => bump(server, PEER_UP, t),
            _ => {}
        }
    }
    let mut lanes: BTreeMap<String, Lane> =
        found.into_iter().map(|(server, lane)| (server.to_owned(), lane)).collect();
    // The network row, from the summed network records (kept or folded).
    let net = trace.net();
    for (server, marks) in &net.marks {
        let lane = lanes.entry(server.clone()).or_default();
        for (kind, by_column) in [SENT, ANSWERED, LOST, RETRY].into_iter().zip(marks) {
            for (&column, &count) in by_column {
                let column = scale.rescale(column, net.end_ms);
                *lane.marks[kind].entry(column).or_default() += count;
            }
        }
    }
    for (server, backoffs) in &net.backoffs {
        lanes.entry(server.clone()).or_default().backoffs.extend(backoffs.iter().copied());
    }
    lanes
}

/// Draws the timeline. `matter` names the servers that get a lane of their own when
/// lanes are grouped; `memberships` gives the joined spans of `room` (the first room).
pub fn render(
    trace: &Trace,
    servers: &[String],
    windows: &[Window],
    matter: &[String],
    memberships: &BTreeMap<(String, String), Vec<Membership>>,
    room: Option<&str>,
    end_ms: u64,
) -> Timeline {
    let scale = Scale { end_ms: end_ms.max(1) };
    let lanes = lanes(trace, &scale);
    let sides = sides(trace, servers);
    let grouped = servers.len() > LANES_MAX;
    let blocks = blocks(&sides, matter, grouped);
    let lane_count: usize = blocks.iter().map(|(_, rows)| rows.len()).sum();
    let height = TOP + blocks.len() as f64 * GROUP_H + lane_count as f64 * LANE_H + 80.0;
    let width = LEFT + PLOT_W + 30.0;
    let mut out = svg::open(width, height, "timeline");
    let _ = writeln!(
        out,
        "<g class=\"timeline-meta\" data-x0=\"{}\" data-width=\"{}\" data-end-ms=\"{}\"></g>",
        num(LEFT),
        num(PLOT_W),
        scale.end_ms
    );
    let plot_bottom = height - 68.0;
    axis(&mut out, &scale, plot_bottom);
    let mut y = TOP;
    for (header, rows) in &blocks {
        let _ = writeln!(
            out,
            "<text x=\"6\" y=\"{}\" font-size=\"12\" font-weight=\"bold\">{}</text>",
            num(y + 13.0),
            escape(header)
        );
        y += GROUP_H;
        for row in rows {
            draw_lane(&mut out, row, &lanes, &scale, windows, memberships, room, servers, y);
            y += LANE_H;
        }
    }
    fault_bands(&mut out, &scale, windows, plot_bottom);
    legend(&mut out, plot_bottom + 30.0);
    out.push_str("</svg>\n");
    let summary = if grouped {
        let own = match lane_count - blocks.len() {
            0 => "no server has a lane of its own: none crashed, paused, was named by a violation, was split from another at the end, or sits on a side of at most 10 servers".to_owned(),
            1 => "a lane of its own for the one server that matters".to_owned(),
            n => format!("a lane of its own for each of the {n} servers that matter"),
        };
        format!(
            "{} servers in {} partition sides, one aggregate lane per side (darker marks: more in that pixel column); {own}.",
            servers.len(),
            sides.len(),
        )
    } else {
        format!("{} servers, one lane each, grouped by partition side.", servers.len())
    };
    Timeline { svg: out, summary }
}

/// (group header, lanes) in drawing order: per partition side, one lane per server, or
/// when `grouped` one aggregate lane and a lane of its own for each server that matters.
fn blocks(sides: &[Vec<String>], matter: &[String], grouped: bool) -> Vec<(String, Vec<Row>)> {
    let mut blocks: Vec<(String, Vec<Row>)> = Vec::new();
    for (i, side) in sides.iter().enumerate() {
        let header = if sides.len() > 1 {
            format!("side {}: {}", i + 1, name_servers(side))
        } else {
            format!("all servers: {}", name_servers(side))
        };
        let rows =
            if grouped {
                let mut rows = vec![Row {
                    id: format!("group-{}", i + 1),
                    label: format!("all {} servers", side.len()),
                    servers: side.clone(),
                }];
                rows.extend(side.iter().filter(|s| matter.contains(s)).take(MATTER_MAX).map(|s| {
                    Row { id: format!("lane-{s}"), label: s.clone(), servers: vec![s.clone()] }
                }));
                rows
            } else {
                side.iter()
                    .map(|s| Row {
                        id: format!("lane-{s}"),
                        label: s.clone(),
                        servers: vec![s.clone()],
                    })
                    .collect()
            };
        blocks.push((header, rows));
    }
    blocks
}

/// Fault bands, drawn after the lanes, over them, so that they cross every lane.
fn fault_bands(out: &mut String, scale: &Scale, windows: &[Window], plot_bottom: f64) {
    let faults: Vec<&Window> = windows.iter().filter(|w| w.kind == WindowKind::Fault).collect();
    for (i, window) in faults.iter().enumerate() {
        let (x0, x1) = (scale.x(window.start_ms), scale.x(window.end_ms));
        // A label runs until the next fault's label starts (the whole text is the title).
        let next_x0 = faults[i + 1..]
            .iter()
            .map(|w| scale.x(w.start_ms))
            .filter(|&x| x > x0)
            .fold(f64::INFINITY, f64::min);
        let room = ((next_x0 - x0 - 6.0) / LABEL_CHAR_W).floor();
        let label_chars = if room.is_finite() { (room.max(4.0) as usize).min(60) } else { 60 };
        let _ = writeln!(
            out,
            "<g class=\"fault\"><title>{} from {} to {}</title><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#ff9800\" fill-opacity=\"0.16\" pointer-events=\"none\" stroke=\"#ff9800\" stroke-opacity=\"0.5\"/><text x=\"{}\" y=\"16\" font-size=\"10\" fill=\"#b25f00\">{}</text><text x=\"{}\" y=\"28\" font-size=\"10\" fill=\"#b25f00\">{}–{} s</text></g>",
            escape(&window.label),
            seconds(window.start_ms),
            seconds(window.end_ms),
            num(x0),
            num(TOP - 22.0),
            num((x1 - x0).max(1.0)),
            num(plot_bottom - TOP + 22.0),
            num(x0 + 2.0),
            escape(&svg::clip(&window.label, label_chars)),
            num(x0 + 2.0),
            seconds(window.start_ms),
            seconds(window.end_ms),
        );
    }
}

/// Virtual milliseconds as seconds with one decimal ("20.1 s" without the unit).
pub fn seconds(ms: u64) -> String {
    format!("{}.{}", ms / 1000, ms % 1000 / 100)
}

/// A tick step in seconds that gives at most about 12 ticks.
fn tick_step_s(end_ms: u64) -> u64 {
    let span_s = end_ms / 1000 + 1;
    [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600]
        .into_iter()
        .find(|step| span_s / step <= 12)
        .unwrap_or(7200)
}

fn axis(out: &mut String, scale: &Scale, bottom: f64) {
    let step = tick_step_s(scale.end_ms);
    let mut s = 0;
    while s * 1000 <= scale.end_ms {
        let x = scale.x(s * 1000);
        let _ = writeln!(
            out,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#e4e4e4\"/><text x=\"{x}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#444\">{s}</text>",
            num(TOP - 6.0),
            num(bottom),
            num(bottom + 12.0),
            x = num(x),
        );
        s += step;
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#444\">virtual time (s)</text>",
        num(LEFT + PLOT_W / 2.0),
        num(bottom + 25.0)
    );
}

#[allow(clippy::too_many_arguments)]
fn draw_lane(
    out: &mut String,
    row: &Row,
    lanes: &BTreeMap<String, Lane>,
    scale: &Scale,
    windows: &[Window],
    memberships: &BTreeMap<(String, String), Vec<Membership>>,
    room: Option<&str>,
    servers: &[String],
    y: f64,
) {
    let single = row.servers.len() == 1;
    lane_header(out, row, servers, y);
    // Joined spans in the state row (individual lanes only).
    if let (true, Some(room)) = (single, room) {
        joined_spans(out, scale, memberships.get(&(room.to_owned(), row.servers[0].clone())), y);
    }
    lane_windows(out, row, scale, windows, y);
    // Back-off before retries (individual lanes only).
    if single {
        if let Some(lane) = lanes.get(&row.servers[0]) {
            for &(from, to) in &lane.backoffs {
                let _ = writeln!(
                    out,
                    "<line x1=\"{}\" y1=\"{y1}\" x2=\"{}\" y2=\"{y1}\" stroke=\"#9467bd\" stroke-opacity=\"0.5\" stroke-width=\"1\"/>",
                    num(scale.x(from)),
                    num(scale.x(to)),
                    y1 = num(y + ROW_H + 7.5)
                );
            }
        }
    }
    lane_marks(out, row, lanes, y);
    out.push_str("</g>\n");
}

/// Opens the lane's group and draws its background, its colour, its label and the names
/// of its rows.
fn lane_header(out: &mut String, row: &Row, servers: &[String], y: f64) {
    let single = row.servers.len() == 1;
    let colour = servers.iter().position(|s| *s == row.servers[0]).map_or_else(
        || "#777777".to_owned(),
        |i| if single { svg::server_color(i) } else { "#777777".to_owned() },
    );
    let _ = writeln!(
        out,
        "<g id=\"{}\" class=\"lane{}\" data-servers=\"{}\">",
        escape(&row.id),
        if single { "" } else { " group" },
        escape(&row.servers.join(" "))
    );
    let _ = writeln!(
        out,
        "<rect class=\"lane-bg\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#eeeeee\"/>",
        num(LEFT),
        num(y),
        num(PLOT_W),
        num(LANE_H - 3.0)
    );
    let _ = writeln!(
        out,
        "<rect x=\"4\" y=\"{}\" width=\"6\" height=\"{}\" fill=\"{colour}\"/><text x=\"14\" y=\"{}\" font-size=\"11\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"8\" fill=\"#888\" text-anchor=\"end\">events</text><text x=\"{}\" y=\"{}\" font-size=\"8\" fill=\"#888\" text-anchor=\"end\">network</text><text x=\"{}\" y=\"{}\" font-size=\"8\" fill=\"#888\" text-anchor=\"end\">state</text>",
        num(y + 2.0),
        num(LANE_H - 7.0),
        num(y + 17.0),
        escape(&svg::clip(&row.label, 20)),
        num(LEFT - 4.0),
        num(y + 8.0),
        num(LEFT - 4.0),
        num(y + 8.0 + ROW_H),
        num(LEFT - 4.0),
        num(y + 8.0 + ROW_H * 2.0),
    );
}

/// The spans a server was joined to the room, in the lane's state row.
fn joined_spans(out: &mut String, scale: &Scale, spans: Option<&Vec<Membership>>, y: f64) {
    for span in spans.into_iter().flatten() {
        let (x0, x1) = (scale.x(span.start_ms), scale.x(span.end_ms.unwrap_or(scale.end_ms)));
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"3\" fill=\"#a5d6a7\"><title>joined {}–{} s</title></rect>",
            num(x0),
            num(y + ROW_H * 2.0 + 4.0),
            num((x1 - x0).max(1.0)),
            seconds(span.start_ms),
            span.end_ms.map_or_else(|| "end".to_owned(), seconds)
        );
    }
}

/// Crashes and pauses of the lane's servers, shading the lane.
fn lane_windows(out: &mut String, row: &Row, scale: &Scale, windows: &[Window], y: f64) {
    let single = row.servers.len() == 1;
    for window in windows.iter().filter(|w| w.kind != WindowKind::Fault) {
        let Some(server) = &window.server else { continue };
        if !row.servers.contains(server) {
            continue;
        }
        let (x0, x1) = (scale.x(window.start_ms), scale.x(window.end_ms));
        let fill = if window.kind == WindowKind::Crash { "#d32f2f" } else { "#1976d2" };
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\" fill-opacity=\"{}\"><title>{} {}–{} s</title></rect>",
            num(x0),
            num(y),
            num((x1 - x0).max(1.0)),
            num(LANE_H - 3.0),
            if single { "0.22" } else { "0.08" },
            escape(&window.label),
            seconds(window.start_ms),
            seconds(window.end_ms)
        );
    }
}

/// The marks of every kind, summed over the lane's servers; in a group lane darker means
/// more in that column.
fn lane_marks(out: &mut String, row: &Row, lanes: &BTreeMap<String, Lane>, y: f64) {
    let single = row.servers.len() == 1;
    let mut counts: Vec<BTreeMap<u32, u32>> = vec![BTreeMap::new(); KINDS.len()];
    let mut totals = [0u64; KINDS.len()];
    for server in &row.servers {
        let Some(lane) = lanes.get(server) else { continue };
        for (kind, marks) in lane.marks.iter().enumerate() {
            for (&column, &count) in marks {
                *counts[kind].entry(column).or_default() += count;
                totals[kind] += u64::from(count);
            }
        }
    }
    for (kind, marks) in counts.iter().enumerate() {
        let (row_index, colour, _) = KINDS[kind];
        let max = marks.values().copied().max().unwrap_or(1).max(1);
        let (top, h) = match kind {
            CREATED => (y + 1.0, ROW_H - 1.0),
            RECEIVED => (y + 3.0, ROW_H - 5.0),
            _ => (y + row_index as f64 * ROW_H + 2.0, ROW_H - 3.0),
        };
        // A peer marked down or up is rare and telling: a wider mark, so that one stands
        // out among the network row's requests.
        let width = if matches!(kind, PEER_DOWN | PEER_UP) { "4" } else { "1.5" };
        let mut body = String::new();
        for (&column, &count) in marks {
            // Darker means more; a single server's marks are solid.
            let level = if single { 4 } else { (count * 4).div_ceil(max).clamp(1, 4) };
            let _ = write!(
                body,
                "<rect x=\"{}\" y=\"{}\" width=\"{width}\" height=\"{}\" fill-opacity=\"{}\"/>",
                num(LEFT + f64::from(column)),
                num(top),
                num(h),
                ["0", "0.3", "0.5", "0.75", "1"][level as usize]
            );
        }
        if !body.is_empty() {
            let _ = writeln!(
                out,
                "<g class=\"marks k{kind}\" fill=\"{colour}\"><title>{}: {} ({})</title>{body}</g>",
                escape(&row.label),
                KINDS[kind].2,
                totals[kind]
            );
        }
    }
}

fn legend(out: &mut String, y: f64) {
    let mut x = LEFT;
    for (kind, (_, colour, text)) in KINDS.iter().enumerate() {
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"4\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\" font-size=\"10\">{text}</text>",
            num(x),
            num(y),
            num(x + 7.0),
            num(y + 9.0)
        );
        x += 14.0 + text.chars().count() as f64 * 6.0;
        let _ = kind;
    }
    let _ = writeln!(
        out,
        "<line x1=\"{}\" y1=\"{y5}\" x2=\"{}\" y2=\"{y5}\" stroke=\"#9467bd\"/><text x=\"{}\" y=\"{}\" font-size=\"10\">back-off</text><rect x=\"{}\" y=\"{}\" width=\"14\" height=\"3\" fill=\"#a5d6a7\"/><text x=\"{}\" y=\"{}\" font-size=\"10\">joined</text>",
        num(x),
        num(x + 14.0),
        num(x + 17.0),
        num(y + 9.0),
        num(x + 70.0),
        num(y + 4.0),
        num(x + 87.0),
        num(y + 9.0),
        y5 = num(y + 5.0),
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#555\">orange band: fault window (all lanes) · red shade: crashed · blue shade: paused</text>",
        num(LEFT),
        num(y + 24.0)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(label: &str, start_ms: u64, end_ms: u64) -> Window {
        Window { kind: WindowKind::Fault, label: label.into(), server: None, start_ms, end_ms }
    }

    /// The labels of faults close together are clipped before the next one starts (the
    /// whole label stays in the title); a label with room is written whole.
    #[test]
    fn fault_labels_stop_before_the_next_fault() {
        let long = "partition hs501 hs502 hs503 … hs1000 (500 servers)";
        let last = "partition hs2 hs3 hs4 … hs101 (100 servers)";
        let windows = [fault(long, 600_000, 630_000), fault(last, 800_000, 860_000)];
        let mut out = String::new();
        fault_bands(&mut out, &Scale { end_ms: 1_190_000 }, &windows, 200.0);
        let labels: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split("fill=\"#b25f00\">").nth(1))
            .filter_map(|l| l.split('<').next())
            .filter(|l| !l.ends_with(" s"))
            .collect();
        // 200 s of a 1,190 s run is about 185 px: room for about 29 characters.
        assert_eq!(labels.len(), 2, "{out}");
        assert!(labels[0].ends_with('…') && labels[0].chars().count() <= 30, "{labels:?}");
        let x = |ms| LEFT + ms as f64 / 1_190_000.0 * PLOT_W;
        let width = labels[0].chars().count() as f64 * LABEL_CHAR_W;
        assert!(x(600_000) + 2.0 + width < x(800_000), "{labels:?}");
        assert_eq!(labels[1], escape(last), "the last label has room");
        assert!(out.contains(&format!("<title>{} from", escape(long))), "whole in the title");
    }
}
