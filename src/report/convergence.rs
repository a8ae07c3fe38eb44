//! `convergence.svg` and `convergence.png`: over virtual time, how many distinct current
//! states the joined servers hold and how many events each server is missing, with fault,
//! crash and pause windows shaded and the moment of convergence marked; below, a
//! histogram of event delivery latency. Drawn with plotters, once per backend, from the
//! same series.

use std::collections::BTreeMap;
use std::sync::Once;

use image::ImageEncoder as _;
use image::codecs::png::{CompressionType, FilterType};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::model::{RoomModel, WindowKind};
use crate::report::timeline::seconds;
use crate::report::{ReportError, limits, svg};
use crate::trace::Trace;

mod series;

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

use series::{BUCKETS, Series, series};

/// An axis label in seconds: whole seconds without decimals.
fn axis_seconds(ms: u64) -> String {
    if ms % 1000 == 0 { format!("{}", ms / 1000) } else { seconds(ms) }
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
    // One filter for every row (Paeth) rather than the encoder's default of trying four
    // (Sub, Up, Average, Paeth) on each row: half the encoding time, for a file 6 to 7%
    // larger (measured on `big10` and `big100` charts: 1.0 against 1.9 ms, 117 against
    // 110 KB).
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut png,
        CompressionType::Fast,
        FilterType::Paeth,
    )
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
