//! `index.html`: one self-contained page (no network, no file it needs besides itself)
//! with the verdict, the run's identity and reproduction command, metrics, violations
//! grouped by invariant and server, failed actions, the fault schedule, the per-server
//! timeline, and per room the DAG (zoomable), the first divergences, the convergence chart
//! and the state resolutions. A small inline script opens a side panel for an event, a
//! server or a moment, from a click or from the URL fragment (`#event=$id`,
//! `#server=hs2`, `#t=45000`); its data is one JSON block parsed on first use.
//!
//! The page is also well-formed XML (every element closed, the script in a CDATA
//! section, the JSON with `<`, `>` and `&` escaped), so tools can check it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value;

use crate::check::Verdict;
use crate::report::divergence::Divergences;
use crate::report::model::{RoomModel, Window, WindowKind, record_kind};
use crate::report::svg::{escape, short_id};
use crate::report::timeline::{Timeline, name_servers, seconds};
use crate::report::{Options, RoomFiles, RunInfo};
use crate::stdx::Invariant;
use crate::trace::{Body, Trace};

/// One room's figures, as the page embeds them.
pub struct RoomSection {
    pub room_id: String,
    /// The scenario's label of the room, when the trace shows it.
    pub label: Option<String>,
    pub version: Option<String>,
    pub names: RoomFiles,
    pub dag_svg: String,
    pub dag_summary: String,
    pub convergence_svg: String,
    pub convergence_summary: String,
    pub resolution_svg: String,
    pub resolution_summary: String,
    pub divergences: Divergences,
    /// The room's data block for the script: one JSON object, as text.
    pub data: String,
}

/// Everything the page shows.
pub struct Page<'a> {
    pub trace: &'a Trace,
    pub verdict: &'a Verdict,
    pub info: &'a RunInfo,
    pub options: &'a Options,
    pub windows: &'a [Window],
    pub rooms: &'a [RoomSection],
    pub models: &'a [RoomModel],
    pub timeline: &'a Timeline,
}

/// Trace lines quoted on the page (violation witnesses, failed actions), at most.
const QUOTED_LINES_MAX: usize = 400;
/// Violation groups shown in full; the rest are counted.
const EVENTS_PER_GROUP_MAX: usize = 60;

const STYLE: &str = "body{font-family:'DejaVu Sans',Verdana,sans-serif;margin:24px;color:#222;max-width:1500px}\
h1{font-size:22px;margin:0 0 12px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc}\
h3{font-size:15px;margin:18px 0 6px}h4{font-size:13px;margin:12px 0 4px}table{border-collapse:collapse;margin:6px 0}\
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px;vertical-align:top}\
th{background:#f3f3f3}.verdict{display:inline-block;padding:4px 14px;border-radius:4px;color:#fff;font-weight:bold;font-size:18px}\
.pass{background:#1a8a3a}.fail{background:#c62828}.unchecked{background:#777}\
pre{background:#f5f5f5;padding:8px;overflow-x:auto;font-size:12px}code{font-family:'DejaVu Sans Mono',monospace;font-size:12px}\
.hscroll{overflow-x:auto;border:1px solid #ddd;background:#fff}.dagview{overflow:auto;border:1px solid #ddd;background:#fff}\
.dagview svg{display:block}.toolbar{margin:4px 0;font-size:13px}.toolbar button{margin-right:4px}\
.figure svg{max-width:100%;height:auto}.note{color:#555;font-size:13px}\
.violation{border-left:4px solid #c62828;padding:4px 10px;margin:8px 0;background:#fff5f5;font-size:13px}\
g.node{cursor:pointer}g.node.selected>rect{stroke:#c2185b;stroke-width:4}g.node.later{opacity:.25}\
g.lane.selected>rect.lane-bg{fill:#fff3c4;stroke:#c2185b}svg.timeline{cursor:crosshair}\
tr.highlight td{background:#fff3c4}tr.changed td{background:#e8f5e9}tr.bad td{background:#fff0f0}.warn{color:#b71c1c}\
#panel{display:none;position:fixed;top:0;right:0;width:520px;max-width:50vw;height:100vh;overflow:auto;background:#fff;border-left:2px solid #888;box-shadow:-4px 0 12px rgba(0,0,0,.15);padding:10px 14px;box-sizing:border-box;z-index:10}\
#panel.open{display:block}#panel p,#panel li{font-size:13px}#panel-close{float:right}#panel pre{white-space:pre-wrap;word-break:break-all}\
.lines pre{margin:2px 0;white-space:pre-wrap;word-break:break-all}:target{outline:2px solid #c2185b}";

const SCRIPT: &str = include_str!("page.js");

/// Strips the XML declaration so that the SVG can sit inline in HTML.
fn inline(svg: &str) -> &str {
    match svg.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(svg, |(_, body)| body.trim_start()),
        None => svg,
    }
}

fn link(name: &str) -> String {
    format!("<a href=\"{0}\">{0}</a>", escape(name))
}

/// A link that opens an event in the panel.
pub fn event_link(id: &str) -> String {
    format!("<a href=\"#event={}\"><code>{}</code></a>", escape(id), escape(&short_id(id)))
}

/// A link for an event of the trace; an id the trace does not hold is shown, not linked.
fn event_ref(models: &[RoomModel], id: &str) -> String {
    if models.iter().any(|room| room.index.contains_key(id)) {
        event_link(id)
    } else {
        format!("<code>{}</code> (not in the trace)", escape(&short_id(id)))
    }
}

fn line_link(line: u64) -> String {
    format!("<a href=\"#line-{line}\">line {line}</a>")
}

fn room_title(room: &RoomSection) -> String {
    match &room.label {
        Some(label) => format!(
            "Room “{}” <span class=\"note\">(<code>{}</code>, version {})</span>",
            escape(label),
            escape(&room.room_id),
            escape(room.version.as_deref().unwrap_or("?"))
        ),
        None => format!(
            "Room <code>{}</code> <span class=\"note\">(version {})</span>",
            escape(&room.room_id),
            escape(room.version.as_deref().unwrap_or("?"))
        ),
    }
}

/// The JSON data block, safe inside a script element and in XML: `{"rooms", "servers"}`,
/// joined from the rooms' data texts ([`super::data::room`]; a copy into one value first,
/// and a copy of the text per escaped character, were 2.5% of a 100-server run).
fn data_block<'a>(rooms: impl Iterator<Item = &'a str>, servers: &[String]) -> String {
    // Keys in byte order, as a JSON object's keys are written.
    let mut text = String::from("{\"rooms\":[");
    for (i, room) in rooms.enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(room);
    }
    text.push_str("],\"servers\":");
    text.push_str(&serde_json::to_string(servers).expect("strings always serialize"));
    text.push('}');
    // The text between the bytes to escape is copied a run at a time.
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.bytes().position(|b| matches!(b, b'<' | b'>' | b'&')) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'<' => "\\u003c",
            b'>' => "\\u003e",
            _ => "\\u0026",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out
}

pub fn render(page: &Page) -> String {
    let Page { trace, verdict, info, options, windows, rooms, models, timeline } = *page;
    let header = &trace.header;
    let mut out = String::new();
    let mut quoted: BTreeSet<u64> = BTreeSet::new();
    let title = match rooms.first().and_then(|r| r.label.as_deref()) {
        Some(label) => format!("{} — room “{label}”, seed {}", header.scenario, header.seed),
        None => format!("{} — seed {}", header.scenario, header.seed),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>mxsim: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&title),
    );
    out.push_str("<div id=\"panel\"><button id=\"panel-close\" type=\"button\">close</button><div id=\"panel-body\"></div></div>\n");
    let _ = writeln!(out, "<h1>mxsim report: {}</h1>", escape(&title));
    verdict_line(&mut out, verdict);
    run_table(&mut out, trace, info);
    reproduce_and_metrics(&mut out, info);
    violations(&mut out, verdict, models, &mut quoted);
    for (invariant, count) in &verdict.violations_not_listed {
        let _ = writeln!(
            out,
            "<p class=\"note\">{count} more violations of {} not listed.</p>",
            escape(invariant.as_str())
        );
    }
    failed_actions(&mut out, trace, &mut quoted);
    faults(&mut out, windows);
    let _ = writeln!(
        out,
        "<h2 id=\"timeline\">Timeline per server</h2>\n<p class=\"note\">{} Click a lane's name for that server, or a moment for every server's state then. File: {}.</p>\n<div class=\"hscroll\">{}</div>",
        escape(&timeline.summary),
        link(crate::report::TIMELINE_SVG),
        inline(&timeline.svg)
    );
    for (index, room) in rooms.iter().enumerate() {
        room_section(&mut out, index, room, models.get(index), options);
    }
    quoted_lines(&mut out, trace, &quoted);
    if !info.sibling_files.is_empty() {
        out.push_str("<h2>Other files of this run</h2>\n<ul>\n");
        for name in &info.sibling_files {
            let _ = writeln!(out, "<li>{}</li>", link(name));
        }
        out.push_str("</ul>\n");
    }
    let _ = writeln!(
        out,
        "<script type=\"application/json\" id=\"mxsim-data\">{}</script>",
        data_block(rooms.iter().map(|r| r.data.as_str()), &header.servers)
    );
    let _ = writeln!(out, "<script>//<![CDATA[\n{SCRIPT}//]]></script>");
    out.push_str("</body>\n</html>\n");
    out
}

/// The verdict badge and what was checked.
fn verdict_line(out: &mut String, verdict: &Verdict) {
    let (class, word) = if !verdict.passed() {
        ("fail", "FAIL")
    } else if verdict.checked.is_empty() {
        ("unchecked", "NOT CHECKED")
    } else {
        ("pass", "PASS")
    };
    let _ = writeln!(out, "<p><span class=\"verdict {class}\">{word}</span> ");
    if verdict.checked.is_empty() {
        out.push_str("<span class=\"note\">No invariant was checked for this report.</span></p>\n");
    } else {
        let _ = writeln!(
            out,
            "<span class=\"note\">invariants checked: {}; {} violations</span></p>",
            escape(&verdict.checked.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(", ")),
            u64::try_from(verdict.violations.len()).unwrap_or(u64::MAX)
                + verdict.violations_not_listed.values().sum::<u64>()
        );
    }
}

/// How to use the page, then the table of the run's identity.
fn run_table(out: &mut String, trace: &Trace, info: &RunInfo) {
    let header = &trace.header;
    out.push_str(
        "<p class=\"note\">Click an event in a DAG, a lane name or a moment in the timeline: the panel on the right shows it, and the address bar keeps a link to it (<code>#event=$id</code>, <code>#server=hs2</code>, <code>#t=45000</code>).</p>\n<table>\n",
    );
    let rows: [(&str, String); 7] = [
        ("scenario", header.scenario.clone()),
        ("seed", header.seed.to_string()),
        ("mxsim version", header.mxsim_version.clone()),
        ("servers", format!("{}: {}", header.servers.len(), name_servers(&header.servers))),
        (
            "virtual time",
            format!(
                "ended at {} s; last fault healed at {} s",
                seconds(header.end_ms),
                seconds(header.healed_ms)
            ),
        ),
        ("trace records", trace.record_count().to_string()),
        (
            "trace hash",
            match (&info.trace_hash, &trace.kept) {
                (Some(hash), _) => hash.clone(),
                (None, None) => trace.hash(),
                // A kept trace's text is in its file only; its reader had the hash.
                (None, Some(_)) => "(not known: the trace is not whole in memory)".to_owned(),
            },
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "<tr><th>{name}</th><td>{}</td></tr>", escape(&value));
    }
    out.push_str("</table>\n");
}

/// The command that reproduces the run and its metrics, when the caller knows them.
fn reproduce_and_metrics(out: &mut String, info: &RunInfo) {
    if !info.reproduce.is_empty() {
        let _ = writeln!(
            out,
            "<h3>Reproduce</h3>\n<pre><code>{}</code></pre>",
            escape(&info.reproduce)
        );
    }
    if !info.metrics.is_empty() {
        out.push_str("<h3>Metrics</h3>\n<table>\n");
        for (name, value) in &info.metrics {
            let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(name), escape(value));
        }
        out.push_str("</table>\n");
    }
}

/// One room: its DAG, divergences, convergence chart and state resolutions.
fn room_section(
    out: &mut String,
    index: usize,
    room: &RoomSection,
    model: Option<&RoomModel>,
    options: &Options,
) {
    let _ = writeln!(out, "<h2 id=\"room-{}\">{}</h2>", index + 1, room_title(room));
    let _ = writeln!(
        out,
        "<h3>Event DAG</h3>\n<p class=\"note\">{} Click a node for its PDU, every server's decision, the state before and after it and its auth events; hover for a summary; Ctrl + wheel or the buttons zoom. Files: {}, {} (Graphviz){}.</p>",
        escape(&room.dag_summary),
        link(&room.names.dag_svg),
        link(&room.names.dag_dot),
        if options.auth_edges { "; auth edges drawn" } else { "" }
    );
    let _ = writeln!(
        out,
        "<div class=\"figure-box\"><div class=\"toolbar\">zoom <button type=\"button\" data-zoom=\"0.8\">−</button><button type=\"button\" data-zoom=\"1.25\">+</button><button type=\"button\" data-zoom=\"fit\">fit width</button><button type=\"button\" data-zoom=\"1\">100 %</button></div><div class=\"dagview\">{}</div></div>",
        inline(&room.dag_svg)
    );
    divergence_section(out, index, room, model);
    let _ = writeln!(
        out,
        "<h3>Convergence</h3>\n<p class=\"note\">{} Files: {}, {}.</p>",
        escape(&room.convergence_summary),
        link(&room.names.convergence_svg),
        link(&room.names.convergence_png)
    );
    let _ = writeln!(out, "<div class=\"figure\">{}</div>", inline(&room.convergence_svg));
    let _ = writeln!(
        out,
        "<h3>State resolution at merges</h3>\n<p class=\"note\">{} File: {}.</p>",
        escape(&room.resolution_summary),
        link(&room.names.resolution_svg)
    );
    let _ = writeln!(out, "<div class=\"hscroll\">{}</div>", inline(&room.resolution_svg));
}

/// Where an event came from and when, for grouping.
fn origin_and_time(models: &[RoomModel], id: &str) -> Option<(String, u64, Option<u64>)> {
    models.iter().find_map(|room| {
        let event = &room.events[*room.index.get(id)?];
        let created = event.created.as_ref().map_or(event.first_t, |(_, t)| *t);
        Some((event.origin(), created, None))
    })
}

/// The first time `server` stored event `id`, if ever.
fn stored_at(models: &[RoomModel], id: &str, server: &str) -> Option<u64> {
    models.iter().find_map(|room| {
        let event = &room.events[*room.index.get(id)?];
        event
            .decisions
            .iter()
            .find(|(s, _, d, _)| s == server && d.is_stored())
            .map(|(_, t, _, _)| *t)
    })
}

/// Violations grouped by invariant, then by server: a liveness group reads "hs2 never
/// received 9 events from hs3 (created 20.1–31.4 s)"; other invariants group by the
/// witness's servers.
fn violations(
    out: &mut String,
    verdict: &Verdict,
    models: &[RoomModel],
    quoted: &mut BTreeSet<u64>,
) {
    if verdict.violations.is_empty() {
        return;
    }
    out.push_str("<h2 id=\"violations\">Violations</h2>\n");
    // (invariant, group heading) → (events with their creation time, trace lines, messages).
    type Group = (Vec<(u64, String)>, BTreeSet<u64>, Vec<String>);
    let mut groups: BTreeMap<(Invariant, String), Group> = BTreeMap::new();
    for violation in &verdict.violations {
        let witness = &violation.witness;
        if let Some(line) = witness.line {
            quoted.insert(line);
        }
        if violation.invariant == Invariant::Liveness && witness.events.len() == 1 {
            let id = &witness.events[0];
            let (origin, created, _) = origin_and_time(models, id).unwrap_or_default();
            for server in &witness.servers {
                let heading = match stored_at(models, id, server) {
                    None => format!("{server} never received {{n}} from {origin}"),
                    Some(_) => format!("{server} received {{n}} from {origin} late"),
                };
                let group = groups.entry((violation.invariant, heading)).or_default();
                group.0.push((created, id.clone()));
                group.1.extend(witness.line);
            }
            continue;
        }
        let heading = if witness.servers.is_empty() {
            "{n}".to_owned()
        } else {
            format!("{}: {{n}}", name_servers(&witness.servers))
        };
        let group = groups.entry((violation.invariant, heading)).or_default();
        for id in &witness.events {
            let created = origin_and_time(models, id).map_or(0, |(_, t, _)| t);
            group.0.push((created, id.clone()));
        }
        group.1.extend(witness.line);
        group.2.push(violation.message.clone());
    }
    let mut invariant = None;
    for ((name, heading), (events, lines, messages)) in &mut groups {
        if Some(*name) != invariant {
            let count = verdict.violations.iter().filter(|v| v.invariant == *name).count();
            let _ = writeln!(out, "<h3>{} ({count} violations)</h3>", escape(name.as_str()));
            invariant = Some(*name);
        }
        events.sort();
        events.dedup();
        let span = match (events.first(), events.last()) {
            (Some(first), Some(last)) if !messages.is_empty() || *name == Invariant::Liveness => {
                format!(" (created {}–{} s)", seconds(first.0), seconds(last.0))
            }
            _ => String::new(),
        };
        let noun = match (events.len(), messages.len()) {
            (0, n) => format!("{n} violation{}", if n == 1 { "" } else { "s" }),
            (1, _) => "1 event".to_owned(),
            (n, _) => format!("{n} events"),
        };
        let _ = write!(
            out,
            "<div class=\"violation\"><b>{}</b>{}<br/>",
            escape(&heading.replace("{n}", &noun)),
            escape(&span)
        );
        for message in messages.iter().take(EVENTS_PER_GROUP_MAX) {
            let _ = write!(out, "{}<br/>", escape(message));
        }
        if !events.is_empty() {
            let shown: Vec<String> = events
                .iter()
                .take(EVENTS_PER_GROUP_MAX)
                .map(|(_, id)| event_ref(models, id))
                .collect();
            let more = events.len().saturating_sub(EVENTS_PER_GROUP_MAX);
            let _ = write!(
                out,
                "<span class=\"note\">events: {}{}</span><br/>",
                shown.join(" "),
                if more > 0 { format!(" … and {more} more") } else { String::new() }
            );
        }
        let shown: Vec<String> =
            lines.iter().take(EVENTS_PER_GROUP_MAX).map(|l| line_link(*l)).collect();
        let _ = writeln!(
            out,
            "<span class=\"note\">first trace lines: {}</span></div>",
            if shown.is_empty() { "— (end state)".to_owned() } else { shown.join(", ") }
        );
    }
}

/// Failed actions with the scenario's step index and file line when the trace has them.
fn failed_actions(out: &mut String, trace: &Trace, quoted: &mut BTreeSet<u64>) {
    let mut rows = String::new();
    let mut count = 0usize;
    let mut last_action: BTreeMap<&str, (u64, Option<Value>, Option<Value>)> = BTreeMap::new();
    for (index, record) in trace.records.iter().enumerate() {
        let line = trace.line_of(index);
        match &record.body {
            Body::Action { server, .. } => {
                let fields = record_kind(&record.body).map(|(_, f)| f).unwrap_or_default();
                last_action.insert(
                    server,
                    (line, fields.get("step").cloned(), fields.get("line").cloned()),
                );
            }
            Body::ActionFailed(failure) => {
                let (server, action, reason) = (&failure.server, &failure.action, &failure.reason);
                count += 1;
                if count > 200 {
                    continue;
                }
                let fields = record_kind(&record.body).map(|(_, f)| f).unwrap_or_default();
                let from_action = last_action.get(server.as_str());
                let step = fields.get("step").or(from_action.and_then(|a| a.1.as_ref()));
                let file_line = fields.get("line").or(from_action.and_then(|a| a.2.as_ref()));
                let place = match (step, file_line) {
                    (Some(step), Some(l)) => format!("step {step}, scenario line {l}"),
                    (Some(step), None) => format!("step {step}"),
                    (None, Some(l)) => format!("scenario line {l}"),
                    (None, None) => "—".to_owned(),
                };
                quoted.insert(line);
                let _ = writeln!(
                    rows,
                    "<tr><td>{}</td><td><a href=\"#server={s}\">{s}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    seconds(record.t),
                    escape(action),
                    escape(reason),
                    escape(&place),
                    line_link(line),
                    s = escape(server),
                );
            }
            _ => {}
        }
    }
    if count == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "<h3 id=\"failed-actions\">Failed actions ({count})</h3>\n<table>\n<tr><th>at (s)</th><th>server</th><th>action</th><th>reason</th><th>scenario</th><th>trace</th></tr>\n{rows}</table>"
    );
    if count > 200 {
        let _ = writeln!(out, "<p class=\"note\">The first 200 are listed.</p>");
    }
}

/// "1 pair", "3 pairs".
fn pairs(count: usize) -> String {
    if count == 1 { "1 pair".to_owned() } else { format!("{count} pairs") }
}

fn divergence_section(
    out: &mut String,
    index: usize,
    room: &RoomSection,
    model: Option<&RoomModel>,
) {
    let d = &room.divergences;
    let _ = writeln!(out, "<h3 id=\"divergence-{}\">Divergences</h3>", index + 1);
    let scope = match &d.reference {
        Some(reference) => {
            format!("Each server is compared with {reference} ({}).", pairs(d.compared))
        }
        None => format!("Every pair of servers is compared ({}).", pairs(d.compared)),
    };
    if d.pair_count == 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">{scope} No two joined servers ever held different current states.</p>"
        );
        return;
    }
    let _ = writeln!(
        out,
        "<p class=\"note\">{scope} {} held different current states at some time while both were joined; pairs still split at the end come first, then the longest splits{}. Each row shows the pair's longest split (its first is often a join still propagating): when their state hashes began to differ, through the event the changing server had just decided on, and the change that made them agree again (a merge means state resolution did it). The keys are the difference at the split's last moment.</p>",
        pairs(d.pair_count),
        if d.rows.len() < d.pair_count {
            format!("; the first {} are listed", d.rows.len())
        } else {
            String::new()
        }
    );
    out.push_str("<table>\n<tr><th>pair</th><th>split from</th><th>split by</th><th>agreed again</th><th>through</th><th>splits (first at), time split in all</th><th>state difference before agreeing again</th></tr>\n");
    for (row_index, row) in d.rows.iter().enumerate() {
        let (again, through) = match &row.rejoin {
            Some((t, by)) => (format!("{} s", seconds(*t)), changes(model, by)),
            None => ("<b class=\"warn\">never (split at the end)</b>".to_owned(), String::new()),
        };
        let keys = state_difference(row);
        let _ = writeln!(
            out,
            "<tr class=\"divergence\" id=\"div-{}-{}\" data-a=\"{a}\" data-b=\"{b}\"><td><a href=\"#server={a}\">{a}</a> / <a href=\"#server={b}\">{b}</a></td><td><a href=\"#t={}\">{} s</a></td><td>{}</td><td>{again}</td><td>{through}</td><td>{} (<a href=\"#t={}\">{} s</a>), {} s</td><td>{keys}</td></tr>",
            index + 1,
            row_index + 1,
            row.split_ms,
            seconds(row.split_ms),
            changes(model, &row.split_by),
            row.splits,
            row.first_split_ms,
            seconds(row.first_split_ms),
            seconds(row.split_total_ms),
            a = escape(&row.a),
            b = escape(&row.b),
        );
    }
    out.push_str("</table>\n");
}

/// Whether an event of the room is a merge (it has several prev events).
fn is_merge(model: Option<&RoomModel>, id: &Option<String>) -> bool {
    let Some(id) = id else { return false };
    model.and_then(|m| m.index.get(id).map(|&i| m.events[i].prev_events.len() > 1)).unwrap_or(false)
}

/// State changes as "server: event" lines, a merge said to be state resolution's doing.
fn changes(model: Option<&RoomModel>, list: &[(String, Option<String>)]) -> String {
    list.iter()
        .map(|(server, event)| match event {
            Some(id) => format!(
                "{}: {}{}",
                escape(server),
                event_link(id),
                if is_merge(model, event) { " (merge: state resolution)" } else { "" }
            ),
            None => format!("{}: —", escape(server)),
        })
        .collect::<Vec<_>>()
        .join("<br/>")
}

/// The cell of the keys on which the pair differed at the split's last moment.
fn state_difference(row: &crate::report::divergence::Divergence) -> String {
    match &row.keys {
        None => "<span class=\"note\">not reconstructed: no state replayed from the DAG has these servers' hashes</span>".to_owned(),
        Some(keys) => {
            let mut table = format!(
                "<table><tr><th>type</th><th>state key</th><th>{}</th><th>{}</th></tr>",
                escape(&row.a),
                escape(&row.b)
            );
            for key in keys {
                let cell = |id: &Option<String>| id.as_deref().map_or("—".to_owned(), event_link);
                let _ = write!(
                    table,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&key.event_type),
                    escape(&key.state_key),
                    cell(&key.a),
                    cell(&key.b)
                );
            }
            table.push_str("</table>");
            if row.key_count > keys.len() {
                let _ = write!(table, "<span class=\"note\">… {} keys in all</span>", row.key_count);
            }
            table
        }
    }
}

fn faults(out: &mut String, windows: &[Window]) {
    if windows.is_empty() {
        out.push_str("<h3 id=\"faults\">Faults</h3>\n<p class=\"note\">No fault, crash or pause happened.</p>\n");
        return;
    }
    out.push_str(
        "<h3 id=\"faults\">Faults</h3>\n<table>\n<tr><th>what</th><th>from (s)</th><th>to (s)</th><th>servers</th></tr>\n",
    );
    for window in windows {
        let servers = match (&window.server, window.kind) {
            (Some(server), WindowKind::Crash | WindowKind::Pause) => {
                format!("<a href=\"#server={0}\">{0}</a>", escape(server))
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><a href=\"#t={}\">{}</a></td><td><a href=\"#t={}\">{}</a></td><td>{servers}</td></tr>",
            escape(&window.label),
            window.start_ms,
            seconds(window.start_ms),
            window.end_ms,
            seconds(window.end_ms)
        );
    }
    out.push_str("</table>\n");
}

/// The trace lines the page links to, quoted so that every link has its target.
fn quoted_lines(out: &mut String, trace: &Trace, lines: &BTreeSet<u64>) {
    if lines.is_empty() {
        return;
    }
    out.push_str(
        "<h2 id=\"trace-lines\">Trace lines referred to above</h2>\n<div class=\"lines\">\n",
    );
    for (shown, &line) in lines.iter().enumerate() {
        let text = match line {
            1 => trace.header.to_line(),
            n => match trace.record_at_line(n) {
                Some(record) => record.to_line(),
                None if n <= trace.record_count() + 1 => {
                    "(a network record: see the trace file)".to_owned()
                }
                None => "(beyond the end of the trace)".to_owned(),
            },
        };
        let text =
            if shown < QUOTED_LINES_MAX { text } else { "(not quoted: too many lines)".to_owned() };
        let chars: Vec<char> = text.chars().collect();
        let text = if chars.len() > 600 {
            format!("{}…", chars[..600].iter().collect::<String>())
        } else {
            text
        };
        let _ = writeln!(out, "<pre id=\"line-{line}\">{line}: {}</pre>", escape(&text));
    }
    out.push_str("</div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_block_is_the_json_object_with_markup_characters_escaped() {
        let room = serde_json::json!({"z": "<b>&</b>", "a": [1, {"y": ">"}]});
        let servers = ["hs<1>".to_owned(), "hs2".to_owned()];
        let block = data_block([room.to_string().as_str()].into_iter(), &servers);
        assert!(!block.contains(['<', '>', '&']), "{block}");
        // By hand: keys in byte order, and each of `<`, `>` and `&` as a \u escape.
        let expected = r#"{"rooms":[{"a":[1,{"y":"\u003e"}],"z":"\u003cb\u003e\u0026\u003c/b\u003e"}],"servers":["hs\u003c1\u003e","hs2"]}"#;
        assert_eq!(block, expected);
        let parsed: Value = serde_json::from_str(&block).unwrap();
        assert_eq!(parsed, serde_json::json!({"rooms": [room], "servers": servers}));
    }
}
