//! `index.html`: one self-contained page (no script, no network, every figure inline as
//! SVG) with the verdict, the run's identity and reproduction command, metrics,
//! violations with their witnesses, the fault schedule, and each room's figures. Links
//! point only at files written next to it.

use std::fmt::Write as _;

use crate::check::Verdict;
use crate::report::model::Window;
use crate::report::svg::escape;
use crate::report::{Options, RoomFiles, RunInfo};
use crate::trace::Trace;

/// One room's figures, as the page embeds them.
pub struct RoomSection {
    pub room_id: String,
    pub version: Option<String>,
    pub names: RoomFiles,
    pub dag_svg: String,
    pub dag_summary: String,
    pub convergence_svg: String,
    pub convergence_summary: String,
    pub resolution_svg: String,
    pub resolution_summary: String,
}

const STYLE: &str = "body{font-family:'DejaVu Sans',Verdana,sans-serif;margin:24px;color:#222;max-width:1400px}\
h1{font-size:22px;margin:0 0 12px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc}\
h3{font-size:15px;margin:18px 0 6px}table{border-collapse:collapse;margin:6px 0}\
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px;vertical-align:top}\
th{background:#f3f3f3}.verdict{display:inline-block;padding:4px 14px;border-radius:4px;color:#fff;font-weight:bold;font-size:18px}\
.pass{background:#1a8a3a}.fail{background:#c62828}.unchecked{background:#777}\
pre{background:#f5f5f5;padding:8px;overflow-x:auto;font-size:13px}code{font-family:'DejaVu Sans Mono',monospace}\
.scroll{overflow:auto;max-height:900px;border:1px solid #ddd;background:#fff}\
.figure svg{max-width:100%;height:auto}.note{color:#555;font-size:13px}.violation{border-left:4px solid #c62828;padding:4px 10px;margin:8px 0;background:#fff5f5}";

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

pub fn render(
    trace: &Trace,
    verdict: &Verdict,
    info: &RunInfo,
    options: &Options,
    windows: &[Window],
    rooms: &[RoomSection],
) -> String {
    let header = &trace.header;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>mxsim: {} seed {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&header.scenario),
        header.seed
    );
    let _ =
        writeln!(out, "<h1>mxsim report: {} — seed {}</h1>", escape(&header.scenario), header.seed);
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
            escape(&verdict.checked.join(", ")),
            u64::try_from(verdict.violations.len()).unwrap_or(u64::MAX)
                + verdict.violations_not_listed.values().sum::<u64>()
        );
    }
    out.push_str("<table>\n");
    let rows: [(&str, String); 7] = [
        ("scenario", header.scenario.clone()),
        ("seed", header.seed.to_string()),
        ("mxsim version", header.mxsim_version.clone()),
        ("servers", header.servers.join(", ")),
        (
            "virtual time",
            format!("ended at {} ms; last fault healed at {} ms", header.end_ms, header.healed_ms),
        ),
        ("trace records", trace.records.len().to_string()),
        ("trace hash", trace.hash()),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "<tr><th>{name}</th><td>{}</td></tr>", escape(&value));
    }
    out.push_str("</table>\n");
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
    if !verdict.violations.is_empty() {
        out.push_str("<h2>Violations</h2>\n");
        for violation in &verdict.violations {
            let witness = &violation.witness;
            let _ = writeln!(
                out,
                "<div class=\"violation\"><b>{}</b>: {}<br><span class=\"note\">servers: {}; events: {}; first trace line: {}</span></div>",
                escape(&violation.invariant),
                escape(&violation.message),
                if witness.servers.is_empty() {
                    "—".to_owned()
                } else {
                    escape(&witness.servers.join(", "))
                },
                if witness.events.is_empty() {
                    "—".to_owned()
                } else {
                    witness
                        .events
                        .iter()
                        .map(|e| format!("<code>{}</code>", escape(e)))
                        .collect::<Vec<_>>()
                        .join(" ")
                },
                witness.line.map_or("— (end state)".to_owned(), |l| l.to_string())
            );
        }
        for (invariant, count) in &verdict.violations_not_listed {
            let _ = writeln!(
                out,
                "<p class=\"note\">{count} more violations of {} not listed.</p>",
                escape(invariant)
            );
        }
    }
    faults(&mut out, windows);
    for room in rooms {
        let _ = writeln!(
            out,
            "<h2>Room <code>{}</code> (version {})</h2>",
            escape(&room.room_id),
            escape(room.version.as_deref().unwrap_or("?"))
        );
        let _ = writeln!(
            out,
            "<h3>Event DAG</h3>\n<p class=\"note\">{} Hover over a node for its full id and every server's decision. Files: {}, {} (Graphviz){}.</p>",
            escape(&room.dag_summary),
            link(&room.names.dag_svg),
            link(&room.names.dag_dot),
            if options.auth_edges { "; auth edges drawn" } else { "" }
        );
        let _ = writeln!(out, "<div class=\"scroll\">{}</div>", inline(&room.dag_svg));
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
        let _ = writeln!(out, "<div class=\"scroll\">{}</div>", inline(&room.resolution_svg));
    }
    if !info.sibling_files.is_empty() {
        out.push_str("<h2>Other files of this run</h2>\n<ul>\n");
        for name in &info.sibling_files {
            let _ = writeln!(out, "<li>{}</li>", link(name));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn faults(out: &mut String, windows: &[Window]) {
    if windows.is_empty() {
        out.push_str("<h3>Faults</h3>\n<p class=\"note\">No fault, crash or pause happened.</p>\n");
        return;
    }
    out.push_str(
        "<h3>Faults</h3>\n<table>\n<tr><th>what</th><th>from (ms)</th><th>to (ms)</th></tr>\n",
    );
    for window in windows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&window.label),
            window.start_ms,
            window.end_ms
        );
    }
    out.push_str("</table>\n");
}
