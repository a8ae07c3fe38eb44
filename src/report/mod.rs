//! Reports a person looks at: the event DAG (`dag.svg`, `dag.dot`), convergence over
//! virtual time (`convergence.svg`, `convergence.png`), the state resolutions at merges
//! (`resolution.svg`) and one self-contained page (`index.html`), drawn from a trace and
//! its verdict. docs/reports.md says how to read each file.
//!
//! [`render`] returns the files as bytes; the caller (`cli`) writes them. The same trace,
//! verdict, [`RunInfo`] and [`Options`] give the same bytes: every collection is ordered
//! (`BTreeMap`, vectors in trace order), floats are written with fixed precision, and no
//! time stamp or machine detail enters the output.
//!
//! Text in the PNG is drawn with the embedded DejaVu Sans (assets/fonts/), never a system
//! font, so rendering works on a machine with no fonts installed.
//!
//! Architecture Invariant: draws, never decides. It reads the trace and the verdict and
//! recomputes nothing the checker owns; the one protocol computation it does is replaying
//! state resolution at merges (`matrix::state_res`) to explain who won. `plotters` is used
//! here and nowhere else.

pub mod compare;
mod convergence;
mod dag;
mod data;
mod divergence;
mod html;
mod model;
mod resolution;
mod svg;
mod timeline;

use crate::check::Verdict;
use crate::trace::Trace;

pub use model::{Membership, RoomModel, memberships, rooms};

/// What the caller knows about the run beyond the trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunInfo {
    /// The command that reproduces the run (`mxsim run scenarios/x.toml --seed 7`).
    pub reproduce: String,
    /// Metrics as ordered (name, value) pairs, shown as a table in that order.
    pub metrics: Vec<(String, String)>,
    /// Other files the caller writes next to the report (`trace.jsonl`, `summary.json`):
    /// `index.html` links to them. Only list files that will exist.
    pub sibling_files: Vec<String>,
    /// The trace hash when the caller has it already (it wrote the trace); otherwise the
    /// page computes it from the trace, which serialises the whole trace once more.
    pub trace_hash: Option<String>,
}

/// Drawing knobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Draw `auth_events` edges in the DAG (off by default: they crowd the picture).
    pub auth_edges: bool,
    /// A linear run of at least this many plain messages from one server becomes one
    /// labelled node in the DAG; 0 never collapses.
    pub collapse_run_min: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options { auth_edges: false, collapse_run_min: 6 }
    }
}

/// Why a report cannot be drawn.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The chart library failed (a bug in how we call it, or an invalid font).
    #[error("drawing {file}: {problem}")]
    Draw { file: String, problem: String },
}

/// Limits that keep a report readable and its size bounded.
pub mod limits {
    /// State-resolution views drawn per room; later merges are counted, not drawn.
    pub const RESOLUTIONS_MAX: usize = 40;
    /// Conflicted keys listed per merge.
    pub const KEYS_PER_RESOLUTION_MAX: usize = 12;
    /// Latency histogram buckets.
    pub const HISTOGRAM_BUCKETS: usize = 24;
}

/// The file names of one room's figures. The first room of the trace keeps the names of
/// DESIGN.md §4 (`dag.svg`, ...); room `n` ≥ 2 gets `-room{n}` before the extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomFiles {
    pub dag_svg: String,
    pub dag_dot: String,
    pub convergence_svg: String,
    pub convergence_png: String,
    pub resolution_svg: String,
}

impl RoomFiles {
    pub fn for_room(index: usize) -> RoomFiles {
        let suffix = if index == 0 { String::new() } else { format!("-room{}", index + 1) };
        RoomFiles {
            dag_svg: format!("dag{suffix}.svg"),
            dag_dot: format!("dag{suffix}.dot"),
            convergence_svg: format!("convergence{suffix}.svg"),
            convergence_png: format!("convergence{suffix}.png"),
            resolution_svg: format!("resolution{suffix}.svg"),
        }
    }
}

/// The name of the page.
pub const INDEX_HTML: &str = "index.html";
/// The per-server timeline of the whole run.
pub const TIMELINE_SVG: &str = "timeline.svg";

/// The servers a person needs to see on their own in a large run, in server order: those
/// on a small partition side (at most 10 servers), crashed or paused ones, those named by
/// a violation, and those still split from another server at the end.
fn servers_that_matter(
    trace: &Trace,
    verdict: &Verdict,
    windows: &[model::Window],
    servers: &[String],
    pages: &[html::RoomSection],
) -> Vec<String> {
    let sides = timeline::sides(trace, servers);
    let mut named: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for side in &sides {
        if side.len() <= 10 && side.len() < servers.len() {
            named.extend(side.iter().map(String::as_str));
        }
    }
    for window in windows {
        if let Some(server) = &window.server {
            named.insert(server);
        }
    }
    for violation in &verdict.violations {
        named.extend(violation.witness.servers.iter().map(String::as_str));
    }
    for page in pages {
        for row in page.divergences.rows.iter().filter(|r| r.rejoin.is_none()) {
            named.insert(&row.a);
            named.insert(&row.b);
        }
    }
    servers.iter().filter(|s| named.contains(s.as_str())).cloned().collect()
}

/// Renders every report file for `trace`: per room the DAG (SVG and DOT), the convergence
/// chart (SVG and PNG) and the state-resolution view (SVG), then `index.html` embedding
/// them. Files come back in a fixed order as (file name, bytes).
pub fn render(
    trace: &Trace,
    verdict: &Verdict,
    info: &RunInfo,
    options: &Options,
) -> Result<Vec<(String, Vec<u8>)>, ReportError> {
    let rooms = model::rooms(trace);
    let memberships = model::memberships(trace);
    let windows = model::windows(trace);
    let servers: Vec<String> = match rooms.first() {
        Some(room) => room.servers.clone(),
        None => trace.header.servers.clone(),
    };
    let highlight = servers_that_matter(trace, verdict, &windows, &servers, &[]);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut pages = Vec::new();
    for (index, room) in rooms.iter().enumerate() {
        let names = RoomFiles::for_room(index);
        let label = room.label.clone();
        let dag = dag::render(trace, room, options);
        let chart = convergence::render(trace, room, label.as_deref(), &highlight)?;
        let replayed = resolution::replay(room);
        let resolutions = resolution::render(room, &replayed);
        let divergences = divergence::divergences(trace, room, &memberships, &replayed.after);
        let data = data::room(
            trace,
            room,
            label.as_deref(),
            &replayed.after,
            &replayed.replaced,
            &memberships,
        );
        files.push((names.dag_svg.clone(), dag.svg.clone().into_bytes()));
        files.push((names.dag_dot.clone(), dag.dot.into_bytes()));
        files.push((names.convergence_svg.clone(), chart.svg.clone().into_bytes()));
        files.push((names.convergence_png.clone(), chart.png));
        files.push((names.resolution_svg.clone(), resolutions.svg.clone().into_bytes()));
        pages.push(html::RoomSection {
            room_id: room.room_id.clone(),
            label,
            version: room.version.clone(),
            names,
            dag_svg: dag.svg,
            dag_summary: dag.summary,
            convergence_svg: chart.svg,
            convergence_summary: chart.summary,
            resolution_svg: resolutions.svg,
            resolution_summary: resolutions.summary,
            divergences,
            data,
        });
    }
    let matter = servers_that_matter(trace, verdict, &windows, &servers, &pages);
    let end_ms = trace.header.end_ms.max(trace.records.last().map_or(0, |r| r.t));
    let timeline = timeline::render(
        trace,
        &servers,
        &windows,
        &matter,
        &memberships,
        rooms.first().map(|r| r.room_id.as_str()),
        end_ms,
    );
    files.push((TIMELINE_SVG.to_owned(), timeline.svg.clone().into_bytes()));
    let index = html::render(&html::Page {
        trace,
        verdict,
        info,
        options,
        windows: &windows,
        rooms: &pages,
        models: &rooms,
        timeline: &timeline,
    });
    files.push((INDEX_HTML.to_owned(), index.into_bytes()));
    assert!(files.iter().all(|(name, _)| !name.contains('/')), "flat file names");
    Ok(files)
}
