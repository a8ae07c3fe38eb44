//! `convergence.svg` and `convergence.png`: over virtual time, how many distinct current
//! states the joined servers hold and how many events each server is missing, with fault,
//! crash and pause windows shaded and the moment of convergence marked; below, a
//! histogram of event delivery latency. Drawn with plotters, once per backend, from the
//! same series.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Once;

use image::ImageEncoder as _;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::model::{RoomModel, WindowKind};
use crate::report::timeline::seconds;
use crate::report::{ReportError, limits, svg};
use crate::trace::{Body, Decision, Trace};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 980;
/// Servers named in the legend of the missing-events panel; the rest are counted.
const LEGEND_SERVERS_MAX: usize = 10;
/// Servers that keep a line of their own next to the aggregate lines.
const HIGHLIGHT_MAX: usize = 8;

/// DejaVu Sans 2.37 from Debian's fonts-dejavu-core (licence: assets/fonts/).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// plotters with `ab_glyph` draws no text until a font is registered; the embedded one
/// is registered under the family names the charts use, for every style they use.
fn register_font() {
    REGISTER.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let registered = plotters::style::register_font("sans-serif", style, FONT);
            assert!(registered.is_ok(), "the embedded font is a valid TTF");
        }
    });
}

/// The drawn chart.
pub struct Chart {
    pub svg: String,
    pub png: Vec<u8>,
    pub summary: String,
}

/// A step function: (t, value) at each change.
type Steps = Vec<(u64, u32)>;

/// Step series over virtual time.
struct Series {
    /// (t, number of distinct current-state hashes among joined servers).
    distinct: Vec<(u64, u32)>,
    /// Per server of `room.servers` that ever joined: (t, events missing).
    missing: Vec<(usize, Vec<(u64, u32)>)>,
    /// Since when (to the end) every joined server holds one state and misses nothing.
    converged_ms: Option<u64>,
    /// Delivery latencies in ms: creation at the origin → first storage at each other
    /// server.
    latencies_ms: Vec<u64>,
    end_ms: u64,
    /// Past [`LEGEND_SERVERS_MAX`] servers: the most and the median events missing over
    /// the joined servers, sampled once per [`BUCKETS`]th of the run.
    aggregate: Option<(Steps, Steps)>,
    /// Servers that matter beyond [`HIGHLIGHT_MAX`], not drawn (named in the legend).
    highlight_left: Vec<String>,
    /// At the end: distinct states and the total of missing events.
    end_distinct: u32,
    end_missing: u32,
}

/// Time buckets of the aggregate lines and of the distinct-states envelope.
const BUCKETS: u64 = 1000;

fn series(trace: &Trace, room: &RoomModel, highlight: &[String]) -> Series {
    let aggregate = room.servers.len() > LEGEND_SERVERS_MAX;
    let mut walk = Walk::new(room, aggregate);
    // Network records change nothing here; leaving them out keeps the sample instants the
    // same whether the trace is whole in memory or kept without them (`Trace::kept`).
    let mut records =
        trace.records.iter().filter(|r| !crate::trace::NetFold::takes(&r.body)).peekable();
    while let Some(first) = records.next() {
        let t = first.t;
        // Apply every record of this millisecond, then sample once.
        walk.apply(&first.body);
        while let Some(record) = records.next_if(|r| r.t == t) {
            walk.apply(&record.body);
        }
        walk.sample(t, records.peek().is_none());
    }
    walk.finish(highlight)
}

/// A set of small numbers, one bit each.
#[derive(Clone, Debug, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn contains(&self, n: usize) -> bool {
        self.0.get(n / 64).is_some_and(|word| word >> (n % 64) & 1 == 1)
    }

    /// Adds `n`; whether it was absent.
    fn insert(&mut self, n: usize) -> bool {
        let at = n / 64;
        if self.0.len() <= at {
            self.0.resize(at + 1, 0);
        }
        let bit = 1 << (n % 64);
        let absent = self.0[at] & bit == 0;
        self.0[at] |= bit;
        absent
    }

    /// Keeps only the numbers `other` holds.
    fn retain_in(&mut self, other: &Bits) {
        for (at, word) in self.0.iter_mut().enumerate() {
            *word &= other.0.get(at).copied().unwrap_or(0);
        }
    }

    /// How many numbers of this set `other` lacks.
    fn count_not_in(&self, other: &Bits) -> u32 {
        let words = self.0.iter().enumerate();
        words.map(|(at, word)| (word & !other.0.get(at).copied().unwrap_or(0)).count_ones()).sum()
    }
}

/// The walk over the trace behind [`series`]: what each server of the room holds so far,
/// and the step series sampled up to now.
///
/// A sample costs what changed since the last one, not the number of servers: the
/// distinct states among joined servers are counted as they change (`hash_counts`), and
/// only the servers whose missing count changed or that joined since (`dirty`) are
/// sampled again, since the step series of the others would not change. At a thousand
/// servers, sampling every joined server at every millisecond of the trace was most of
/// the report.
struct Walk<'a> {
    room: &'a RoomModel,
    aggregate: bool,
    end_ms: u64,
    most: Vec<(u64, u32)>,
    median: Vec<(u64, u32)>,
    last_bucket: u64,
    /// The room's servers by name → their position in `room.servers`.
    positions: BTreeMap<&'a str, usize>,
    joined: BTreeSet<usize>,
    hashes: BTreeMap<usize, &'a str>,
    /// The current-state hashes of the joined servers that have one, with how many hold
    /// each.
    hash_counts: BTreeMap<&'a str, u32>,
    /// The room's event ids by number, in order of first sight: the sets below hold
    /// numbers, one bit each, so that an event created while a thousand servers are joined
    /// costs a thousand bits rather than a thousand inserts of its id.
    numbers: BTreeMap<&'a str, usize>,
    /// Events whose creation was seen.
    created: Bits,
    /// Per server: the events it stores.
    stored: Vec<Bits>,
    /// Per server: the events created while it was joined (owed to it), and how many of
    /// them it does not store.
    owed: Vec<Bits>,
    owed_missing: Vec<u32>,
    /// How many joined servers miss an event owed to them.
    joined_missing: usize,
    /// Servers to sample again: their missing count changed, or they joined.
    dirty: BTreeSet<usize>,
    distinct: Vec<(u64, u32)>,
    missing: Vec<Vec<(u64, u32)>>,
    converged_ms: Option<u64>,
}

impl<'a> Walk<'a> {
    fn new(room: &'a RoomModel, aggregate: bool) -> Self {
        let server_count = room.servers.len();
        let mut positions = BTreeMap::new();
        for (i, name) in room.servers.iter().enumerate() {
            // A name's first position, as a search from the front finds it.
            positions.entry(name.as_str()).or_insert(i);
        }
        Walk {
            room,
            aggregate,
            end_ms: room.end_ms.max(1),
            most: Vec::new(),
            median: Vec::new(),
            last_bucket: u64::MAX,
            positions,
            joined: BTreeSet::new(),
            hashes: BTreeMap::new(),
            hash_counts: BTreeMap::new(),
            numbers: BTreeMap::new(),
            created: Bits::default(),
            stored: vec![Bits::default(); server_count],
            owed: vec![Bits::default(); server_count],
            owed_missing: vec![0; server_count],
            joined_missing: 0,
            dirty: BTreeSet::new(),
            distinct: Vec::new(),
            missing: vec![Vec::new(); server_count],
            converged_ms: None,
        }
    }

    fn server_at(&self, name: &str) -> Option<usize> {
        self.positions.get(name).copied()
    }

    /// One more (`up`) or one fewer joined server holding `hash`.
    fn count_hash(&mut self, hash: &'a str, up: bool) {
        if up {
            *self.hash_counts.entry(hash).or_insert(0) += 1;
        } else if let Some(count) = self.hash_counts.get_mut(hash) {
            *count -= 1;
            if *count == 0 {
                self.hash_counts.remove(hash);
            }
        }
    }

    /// Sets a server's missing count, keeping `joined_missing` and `dirty` up to date.
    fn set_missing(&mut self, s: usize, value: u32) {
        let before = self.owed_missing[s];
        if before == value {
            return;
        }
        if self.joined.contains(&s) {
            match (before, value) {
                (0, _) => self.joined_missing += 1,
                (_, 0) => self.joined_missing -= 1,
                _ => {}
            }
        }
        self.owed_missing[s] = value;
        self.dirty.insert(s);
    }

    fn join(&mut self, s: usize) {
        if self.joined.insert(s) {
            if let Some(&hash) = self.hashes.get(&s) {
                self.count_hash(hash, true);
            }
            self.joined_missing += usize::from(self.owed_missing[s] > 0);
            self.dirty.insert(s);
        }
    }

    fn leave(&mut self, s: usize) {
        if self.joined.remove(&s) {
            if let Some(&hash) = self.hashes.get(&s) {
                self.count_hash(hash, false);
            }
            self.joined_missing -= usize::from(self.owed_missing[s] > 0);
        }
    }

    /// Applies one record of the trace to what the servers hold.
    fn apply(&mut self, body: &'a Body) {
        let room = self.room;
        match body {
            Body::Joined { server, room: r, .. } if *r == room.room_id => {
                if let Some(s) = self.server_at(server) {
                    self.join(s);
                }
            }
            Body::Left { server, room: r } if *r == room.room_id => {
                if let Some(s) = self.server_at(server) {
                    self.leave(s);
                }
            }
            Body::State { server, room: r, state_hash } if *r == room.room_id => {
                if let Some(s) = self.server_at(server) {
                    let old = self.hashes.insert(s, state_hash.as_str());
                    if self.joined.contains(&s) {
                        if let Some(old) = old {
                            self.count_hash(old, false);
                        }
                        self.count_hash(state_hash.as_str(), true);
                    }
                }
            }
            Body::Event { server, room: r, event_id: Some(id), decision, .. }
                if *r == room.room_id =>
            {
                self.apply_event(server, id.as_str(), *decision);
            }
            Body::Recovered { server, event_ids } => {
                if let Some(s) = self.server_at(server) {
                    // Ids never seen are stored by no server: only numbered ones matter.
                    let mut kept = Bits::default();
                    for id in event_ids {
                        if let Some(&n) = self.numbers.get(id.as_str()) {
                            kept.insert(n);
                        }
                    }
                    self.stored[s].retain_in(&kept);
                    let missing = self.owed[s].count_not_in(&self.stored[s]);
                    self.set_missing(s, missing);
                }
            }
            _ => {}
        }
    }

    /// An event record of the room: a creation is owed to every joined server, a storage
    /// pays what was owed.
    fn apply_event(&mut self, server: &str, id: &'a str, decision: Decision) {
        let next = self.numbers.len();
        let n = *self.numbers.entry(id).or_insert(next);
        if decision == Decision::Created && self.created.insert(n) {
            // Owed to every server joined when it was created.
            let joined: Vec<usize> = self.joined.iter().copied().collect();
            for s in joined {
                if self.owed[s].insert(n) && !self.stored[s].contains(n) {
                    self.set_missing(s, self.owed_missing[s] + 1);
                }
            }
        }
        if let Some(s) = self.server_at(server) {
            if decision.is_stored() && self.stored[s].insert(n) && self.owed[s].contains(n) {
                self.set_missing(s, self.owed_missing[s] - 1);
            }
        }
    }

    /// Samples every series at `t`, after the last record of that millisecond; `last`:
    /// the trace ends here.
    fn sample(&mut self, t: u64, last: bool) {
        debug_assert_eq!(
            self.hash_counts.len(),
            self.joined.iter().filter_map(|s| self.hashes.get(s)).collect::<BTreeSet<_>>().len()
        );
        debug_assert_eq!(
            self.joined_missing,
            self.joined.iter().filter(|&&s| self.owed_missing[s] > 0).count()
        );
        let count = self.hash_counts.len() as u32;
        push_step(&mut self.distinct, t, count);
        // A step series changes only when its value does, and a server not joined is not
        // sampled (one that joins is marked dirty then).
        for s in std::mem::take(&mut self.dirty) {
            if self.joined.contains(&s) {
                push_step(&mut self.missing[s], t, self.owed_missing[s]);
            }
        }
        let all_present = self.joined_missing == 0;
        let bucket = t * BUCKETS / self.end_ms;
        if self.aggregate && (bucket != self.last_bucket || last) && !self.joined.is_empty() {
            self.last_bucket = bucket;
            let mut values: Vec<u32> = self.joined.iter().map(|&s| self.owed_missing[s]).collect();
            values.sort_unstable();
            push_step(&mut self.most, t, values[values.len() - 1]);
            push_step(&mut self.median, t, values[values.len() / 2]);
        }
        let ok = !self.joined.is_empty() && count <= 1 && all_present;
        match (ok, self.converged_ms) {
            (true, None) => self.converged_ms = Some(t),
            (false, Some(_)) => self.converged_ms = None,
            _ => {}
        }
    }

    /// The series of the whole run.
    fn finish(self, highlight: &[String]) -> Series {
        let (room, aggregate) = (self.room, self.aggregate);
        let servers = &room.servers;
        let end_distinct = self.distinct.last().map_or(0, |p| p.1);
        let end_missing = self.missing.iter().filter_map(|m| m.last()).map(|p| p.1).sum();
        Series {
            distinct: self.distinct,
            missing: self
                .missing
                .into_iter()
                .enumerate()
                .filter(|(s, m)| !m.is_empty() && (!aggregate || highlight.contains(&servers[*s])))
                .take(if aggregate { HIGHLIGHT_MAX } else { usize::MAX })
                .collect(),
            aggregate: aggregate.then_some((self.most, self.median)),
            highlight_left: if aggregate {
                highlight.iter().skip(HIGHLIGHT_MAX).cloned().collect()
            } else {
                Vec::new()
            },
            converged_ms: self.converged_ms,
            latencies_ms: latencies(room),
            end_ms: room.end_ms.max(1),
            end_distinct,
            end_missing,
        }
    }
}

/// An axis label in seconds: whole seconds without decimals.
fn axis_seconds(ms: u64) -> String {
    if ms % 1000 == 0 { format!("{}", ms / 1000) } else { seconds(ms) }
}

/// Appends a step to a step function, skipping samples that change nothing.
fn push_step(points: &mut Vec<(u64, u32)>, t: u64, value: u32) {
    match points.last() {
        Some(&(_, last)) if last == value => {}
        Some(&(_, last)) => {
            points.push((t, last));
            points.push((t, value));
        }
        None => points.push((t, value)),
    }
}

fn latencies(room: &RoomModel) -> Vec<u64> {
    let mut out = Vec::new();
    for event in &room.events {
        let Some((origin, created_ms)) = &event.created else { continue };
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for (server, t, decision, _) in &event.decisions {
            if server != origin && decision.is_stored() && seen.insert(server) {
                out.push(t.saturating_sub(*created_ms));
            }
        }
    }
    out
}

/// A round bucket width so that `max` fits in about `buckets` buckets.
fn bucket_width(max: u64, buckets: u64) -> u64 {
    let raw = max / buckets + 1;
    let mut width = 1;
    loop {
        for step in [1, 2, 5] {
            if width * step >= raw {
                return width * step;
            }
        }
        width *= 10;
    }
}

fn rgb(index: usize) -> RGBColor {
    let (r, g, b) = svg::server_rgb(index);
    RGBColor(r, g, b)
}

fn window_color(kind: WindowKind) -> RGBColor {
    match kind {
        WindowKind::Fault => RGBColor(0xf0, 0xa0, 0x30),
        WindowKind::Crash => RGBColor(0xd0, 0x30, 0x30),
        WindowKind::Pause => RGBColor(0x60, 0x70, 0xa0),
    }
}

type DrawResult<T> = Result<T, String>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    room: &RoomModel,
    data: &Series,
) -> DrawResult<()> {
    let e = |error: DrawingAreaErrorKind<DB::ErrorType>| error.to_string();
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(e)?;
    let panels = root.split_by_breakpoints([] as [u32; 0], [280u32, 620]);
    draw_distinct_panel(&panels[0], room, data)?;
    draw_missing_panel(&panels[1], room, data)?;
    draw_latency_panel(&panels[2], data)
}

/// The chart of every panel over virtual time: milliseconds against a count.
type TimeChart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordu64, plotters::coord::types::RangedCoordu32>,
>;

/// Panel 1: distinct current states among the joined servers.
fn draw_distinct_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    room: &RoomModel,
    data: &Series,
) -> DrawResult<()> {
    let e = |error: DrawingAreaErrorKind<DB::ErrorType>| error.to_string();
    let end = data.end_ms;
    let font = |size: u32| ("sans-serif", size).into_font();
    let y_max = data.distinct.iter().map(|p| p.1).max().unwrap_or(1).max(1) + 1;
    let mut chart = ChartBuilder::on(area)
        .caption("distinct current states among joined servers", font(15))
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(56)
        .build_cartesian_2d(0u64..end, 0u32..y_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("virtual time (s)")
        .x_label_formatter(&|ms| axis_seconds(*ms))
        .y_desc("states")
        .y_labels((y_max as usize + 1).min(11))
        .label_style(font(12))
        .axis_desc_style(font(13))
        .max_light_lines(2)
        .draw()
        .map_err(e)?;
    draw_windows(&mut chart, room, y_max, true).map_err(e)?;
    let blue = RGBColor(0x1f, 0x4e, 0x9a);
    let runs = distinct_envelope(&data.distinct, end);
    chart
        .draw_series(runs.iter().filter(|r| r.2 > 0).map(|&(x0, x1, v)| {
            Rectangle::new([(x0, 0), (x1.min(end), v)], blue.mix(0.15).filled())
        }))
        .map_err(e)?;
    let mut points = Vec::new();
    for &(x0, x1, v) in &runs {
        points.push((x0, v));
        points.push((x1.min(end), v));
    }
    chart.draw_series(LineSeries::new(points, blue.stroke_width(2))).map_err(e)?;
    draw_converged(&mut chart, data.converged_ms, y_max, true).map_err(e)?;
    Ok(())
}

/// The most states within each bucket of time, as runs (from, to, value) of equal
/// buckets: a count that flips every few milliseconds (a join storm) would otherwise draw
/// a solid block of lines.
fn distinct_envelope(distinct: &[(u64, u32)], end: u64) -> Vec<(u64, u64, u32)> {
    let mut envelope: BTreeMap<u64, u32> = BTreeMap::new();
    let bucket_ms = end.div_ceil(BUCKETS).max(1);
    for (index, &(t, value)) in distinct.iter().enumerate() {
        let until = distinct.get(index + 1).map_or(end, |p| p.0);
        let mut bucket = t / bucket_ms;
        while bucket * bucket_ms < until.max(t + 1) {
            let slot = envelope.entry(bucket).or_default();
            *slot = (*slot).max(value);
            bucket += 1;
        }
    }
    let mut runs: Vec<(u64, u64, u32)> = Vec::new();
    for (&bucket, &value) in &envelope {
        match runs.last_mut() {
            Some(run) if run.2 == value && run.1 == bucket * bucket_ms => run.1 += bucket_ms,
            _ => runs.push((bucket * bucket_ms, (bucket + 1) * bucket_ms, value)),
        }
    }
    runs
}

/// Panel 2: events missing per joined server, or their most and median with the servers
/// that matter when there are too many servers.
fn draw_missing_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    room: &RoomModel,
    data: &Series,
) -> DrawResult<()> {
    let e = |error: DrawingAreaErrorKind<DB::ErrorType>| error.to_string();
    let end = data.end_ms;
    let font = |size: u32| ("sans-serif", size).into_font();
    let m_max = data
        .missing
        .iter()
        .flat_map(|(_, m)| m.iter().map(|p| p.1))
        .chain(data.aggregate.iter().flat_map(|(most, _)| most.iter().map(|p| p.1)))
        .max()
        .unwrap_or(0);
    let m_max = m_max + 1 + m_max / 10;
    let mut chart = ChartBuilder::on(area)
        .caption(
            if data.aggregate.is_some() {
                "events missing at joined servers: most and median, and the servers that matter"
            } else {
                "events missing per joined server (created anywhere, not stored here)"
            },
            font(15),
        )
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(56)
        .build_cartesian_2d(0u64..end, 0u32..m_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("virtual time (s)")
        .x_label_formatter(&|ms| axis_seconds(*ms))
        .y_desc("events")
        .label_style(font(12))
        .axis_desc_style(font(13))
        .max_light_lines(2)
        .draw()
        .map_err(e)?;
    draw_windows(&mut chart, room, m_max, false).map_err(e)?;
    draw_missing_lines(&mut chart, room, data)?;
    draw_converged(&mut chart, data.converged_ms, m_max, false).map_err(e)?;
    if !data.missing.is_empty() || data.aggregate.is_some() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(font(12))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

/// The lines of panel 2 with their legend entries: the aggregate lines, one line per
/// server drawn, and a legend note for what is not drawn.
fn draw_missing_lines<DB: DrawingBackend>(
    chart: &mut TimeChart<'_, DB>,
    room: &RoomModel,
    data: &Series,
) -> DrawResult<()> {
    let e = |error: DrawingAreaErrorKind<DB::ErrorType>| error.to_string();
    let end = data.end_ms;
    if let Some((most, median)) = &data.aggregate {
        let lines = [
            (most, RGBColor(0xc6, 0x28, 0x28), "most missing at any joined server"),
            (median, RGBColor(0x1f, 0x4e, 0x9a), "median over joined servers"),
        ];
        for (points, color, text) in lines {
            let mut points = points.clone();
            if let Some(&(_, last)) = points.last() {
                points.push((end, last));
            }
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(e)?
                .label(text)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                });
        }
    }
    for (position, (server, points)) in data.missing.iter().enumerate() {
        // Aggregated: the servers that matter take the palette in turn (named in the legend).
        let color = if data.aggregate.is_some() { rgb(position) } else { rgb(*server) };
        let mut points = points.clone();
        if let Some(&(_, last)) = points.last() {
            points.push((end, last));
        }
        let drawn = chart.draw_series(LineSeries::new(points, color.stroke_width(2))).map_err(e)?;
        if position < LEGEND_SERVERS_MAX {
            drawn.label(room.servers[*server].clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
        }
    }
    draw_not_drawn_notes(chart, data)
}

/// Legend entries without a line: the servers that matter beyond those drawn, and the
/// count of servers left out of the legend.
fn draw_not_drawn_notes<DB: DrawingBackend>(
    chart: &mut TimeChart<'_, DB>,
    data: &Series,
) -> DrawResult<()> {
    let e = |error: DrawingAreaErrorKind<DB::ErrorType>| error.to_string();
    if !data.highlight_left.is_empty() {
        let grey = RGBColor(0x88, 0x88, 0x88);
        let names = &data.highlight_left;
        let text = if names.len() <= 3 {
            format!("not drawn: {}", names.join(" "))
        } else {
            format!("not drawn: {} … ({} more)", names[..2].join(" "), names.len() - 2)
        };
        chart
            .draw_series(LineSeries::new(Vec::<(u64, u32)>::new(), grey.stroke_width(2)))
            .map_err(e)?
            .label(text)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], grey.stroke_width(1))
            });
    }
    if data.aggregate.is_none() && data.missing.len() > LEGEND_SERVERS_MAX {
        let grey = RGBColor(0x88, 0x88, 0x88);
        chart
            .draw_series(LineSeries::new(Vec::<(u64, u32)>::new(), grey.stroke_width(2)))
            .map_err(e)?
            .label(format!("… {} more servers", data.missing.len() - LEGEND_SERVERS_MAX))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], grey.stroke_width(3))
            });
    }
    Ok(())
}

/// Panel 3: the histogram of event delivery latency.
fn draw_latency_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    data: &Series,
) -> DrawResult<()> {
    let e = |error: DrawingAreaErrorKind<DB::ErrorType>| error.to_string();
    let font = |size: u32| ("sans-serif", size).into_font();
    let max = data.latencies_ms.iter().copied().max().unwrap_or(0);
    let width = bucket_width(max, limits::HISTOGRAM_BUCKETS as u64);
    let bucket_count = max / width + 1;
    let mut counts = vec![0u32; bucket_count as usize];
    for &latency in &data.latencies_ms {
        counts[(latency / width) as usize] += 1;
    }
    let c_max = counts.iter().copied().max().unwrap_or(0);
    let c_max = c_max + 1 + c_max / 10;
    let caption = format!(
        "event delivery latency (origin → each other server, {} deliveries)",
        data.latencies_ms.len()
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(15))
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(56)
        .build_cartesian_2d(0u64..bucket_count * width, 0u32..c_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("deliveries")
        .disable_x_mesh()
        .light_line_style(WHITE)
        .label_style(font(12))
        .axis_desc_style(font(13))
        .max_light_lines(2)
        .draw()
        .map_err(e)?;
    let bar = RGBColor(0x4e, 0x79, 0xa7);
    chart
        .draw_series(counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, &c)| {
            let x0 = i as u64 * width;
            Rectangle::new([(x0, 0), (x0 + width, c)], bar.mix(0.8).filled())
        }))
        .map_err(e)?;
    Ok(())
}

fn draw_windows<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordu64, plotters::coord::types::RangedCoordu32>,
    >,
    room: &RoomModel,
    y_max: u32,
    labels: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart.draw_series(room.windows.iter().map(|w| {
        Rectangle::new(
            [(w.start_ms, 0), (w.end_ms.max(w.start_ms + 1), y_max)],
            window_color(w.kind).mix(0.18).filled(),
        )
    }))?;
    if labels {
        let style = ("sans-serif", 11).into_font();
        for (index, w) in room.windows.iter().enumerate() {
            // Labels of overlapping windows are staggered downwards.
            let row = (index % 4) as i32;
            let text = Text::new(
                w.label.clone(),
                (4, 4 + row * 13),
                style.clone().color(&window_color(w.kind)),
            );
            chart.draw_series(std::iter::once(EmptyElement::at((w.start_ms, y_max)) + text))?;
        }
    }
    Ok(())
}

fn draw_converged<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordu64, plotters::coord::types::RangedCoordu32>,
    >,
    converged_ms: Option<u64>,
    y_max: u32,
    label: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let Some(t) = converged_ms else { return Ok(()) };
    let green = RGBColor(0x1a, 0x8a, 0x3a);
    chart.draw_series(LineSeries::new(vec![(t, 0), (t, y_max)], green.stroke_width(2)))?;
    if label {
        // Right of the line, or left of it near the right edge.
        let (x_range, text) = (chart.x_range(), format!("converged at {} s", seconds(t)));
        let dx = if t.saturating_sub(x_range.start) * 10 > (x_range.end - x_range.start) * 7 {
            -(8 * text.len() as i32)
        } else {
            6
        };
        let style = ("sans-serif", 13).into_font().color(&green);
        chart.draw_series(std::iter::once(
            EmptyElement::at((t, y_max)) + Text::new(text, (dx, 18), style),
        ))?;
    }
    Ok(())
}

/// Draws the chart; `label` is the scenario's name of the room, `highlight` the servers
/// that keep a line of their own when there are too many servers for one line each.
pub fn render(
    trace: &Trace,
    room: &RoomModel,
    label: Option<&str>,
    highlight: &[String],
) -> Result<Chart, ReportError> {
    register_font();
    let data = series(trace, room, highlight);
    let title = match label {
        Some(label) => format!("Convergence of room “{label}”"),
        None => format!("Convergence of {}", svg::clip(&room.room_id, 40)),
    };
    let title = format!("{title} — {} seed {}", trace.header.scenario, trace.header.seed);
    let fail = |file: &str| {
        let file = file.to_owned();
        move |problem: String| ReportError::Draw { file: file.clone(), problem }
    };
    let mut svg_text = String::new();
    {
        let root = SVGBackend::with_string(&mut svg_text, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, &title, room, &data).map_err(fail("convergence.svg"))?;
        root.present().map_err(|e| fail("convergence.svg")(e.to_string()))?;
    }
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, &title, room, &data).map_err(fail("convergence.png"))?;
        root.present().map_err(|e| fail("convergence.png")(e.to_string()))?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&pixels, WIDTH, HEIGHT, image::ColorType::Rgb8)
        .map_err(|e| fail("convergence.png")(e.to_string()))?;
    assert!(png.starts_with(b"\x89PNG"), "a PNG signature");
    let summary = match data.converged_ms {
        Some(t) => format!(
            "Converged at {} s: from then on every joined server holds the same current state and misses no event.",
            seconds(t)
        ),
        None => format!(
            "Not converged at the end ({} s): {} distinct current states, {} events missing in total.",
            seconds(data.end_ms),
            data.end_distinct,
            data.end_missing
        ),
    };
    if !svg_text.starts_with("<?xml") {
        svg_text.insert_str(0, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    }
    Ok(Chart { svg: svg_text, png, summary })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_hold_numbers_across_words_and_compare_with_sets_of_other_lengths() {
        let mut a = Bits::default();
        assert!(a.insert(3) && a.insert(64) && a.insert(200));
        assert!(!a.insert(64), "already held");
        assert!(a.contains(3) && a.contains(64) && a.contains(200));
        assert!(!a.contains(4) && !a.contains(65) && !a.contains(10_000));
        let mut b = Bits::default();
        b.insert(64);
        // `b` is one word shorter than `a`: what lies past its end is not in it.
        assert_eq!(a.count_not_in(&b), 2);
        assert_eq!(b.count_not_in(&a), 0);
        a.retain_in(&b);
        assert!(a.contains(64) && !a.contains(3) && !a.contains(200));
        assert_eq!(a.count_not_in(&Bits::default()), 1);
    }
}
