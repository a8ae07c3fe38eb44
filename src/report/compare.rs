//! `mxsim compare`: two runs side by side, typically the same workload and faults on a DAG
//! room and on a Linearized Matrix room (`scenarios/linearized/`). Everything is counted
//! from the traces alone.
//!
//! - **Availability**: the share of attempted sends (`message`, `send` and `power` actions)
//!   the room accepted. In a DAG room a send is accepted when its server creates the event;
//!   in a Linearized Matrix room when the hub appends the participant's LPDU (`linearized`),
//!   or at once for the hub's own users. A send is refused when the action failed or its
//!   LPDU was refused or given up (`lpdu_failed`), and unresolved when neither happened by
//!   the end. Counted per server, and per 10-second window of the attempt time, with the
//!   delay from attempt to acceptance.
//! - **Convergence after the heal**: the last `state` record of any server after the
//!   header's `healed_ms`, minus `healed_ms`.
//! - **Messages and bytes per event**: every `send` record (requests and responses) over
//!   the events created.
//! - **State resolutions**: the merges (events with several prev events) whose prev states
//!   conflict, replayed as `resolution.svg` does, and the sizes of their full conflicted
//!   sets.
//! - **Linearized Matrix with DAG-capable servers**: the DAG-capable servers' events the
//!   hub appended (`dag_linearized`) and the merges it sent or could not send
//!   (`hub_merge`), shown only when a run has any.
//! - **The DAG beside the list**: each run's DAG figure, for the HTML page.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::matrix::room_version::RoomVersion;
use crate::report::svg::escape;
use crate::report::{Options, dag, model, resolution};
use crate::trace::{Body, Decision, Trace};

/// Width of an availability window.
pub const WINDOW_MS: u64 = 10_000;

/// A send accepted within this long of its attempt counts as promptly accepted: what a
/// user at a client would call available.
pub const PROMPT_MS: u64 = 1_000;

/// One run's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFigures {
    pub scenario: String,
    pub seed: u64,
    /// The room versions of the run's rooms (`11`, or the Linearized Matrix version).
    pub versions: Vec<String>,
    pub sends: SendCounts,
    /// Per server.
    pub per_server: BTreeMap<String, SendCounts>,
    /// Per window of attempt time (window `i` is `[i × WINDOW_MS, (i + 1) × WINDOW_MS)`).
    pub per_window: BTreeMap<u64, SendCounts>,
    /// Attempts made while a fault was active, and those outside any.
    pub during_faults: SendCounts,
    pub outside_faults: SendCounts,
    /// Delays from attempt to acceptance, ascending (ms).
    pub delays_ms: Vec<u64>,
    pub healed_ms: u64,
    /// The last `state` record after the heal, minus `healed_ms` (0 when none).
    pub converged_after_heal_ms: u64,
    pub messages: u64,
    pub bytes: u64,
    pub events_created: u64,
    /// Merges with a conflicted state set, and the size of each one's full conflicted set.
    pub conflicted_merges: Vec<usize>,
    /// Events with more than one prev event.
    pub merges: u64,
    /// Linearized Matrix: the DAG-capable servers' events the hub appended
    /// (`dag_linearized`), the merge events it sent (`hub_merge`), and the merges it could
    /// not send.
    pub dag_linearized: u64,
    /// For each of those created before the hub appended it (a DAG-capable server's join
    /// is recorded at the joiner after the hub's answer), from its creation at the
    /// DAG-capable server to its `dag_linearized` at the hub, ascending (ms): when the
    /// participants could see it.
    pub dag_list_delays_ms: Vec<u64>,
    pub hub_merges: u64,
    pub hub_merges_failed: u64,
}

/// What became of attempted sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendCounts {
    pub attempted: u64,
    pub accepted: u64,
    /// Accepted within [`PROMPT_MS`] of the attempt.
    pub prompt: u64,
    pub refused: u64,
}

impl SendCounts {
    pub fn unresolved(&self) -> u64 {
        self.attempted - self.accepted - self.refused
    }

    fn add(&mut self, attempted_at: u64, outcome: Outcome) {
        self.attempted += 1;
        match outcome {
            Outcome::Accepted(at) => {
                self.accepted += 1;
                if at - attempted_at <= PROMPT_MS {
                    self.prompt += 1;
                }
            }
            Outcome::Refused => self.refused += 1,
            Outcome::Unresolved => {}
        }
    }

    /// `accepted / attempted` as a percentage with one decimal, `-` when nothing was
    /// attempted (integer arithmetic, rounded half up).
    pub fn availability(&self) -> String {
        percent(self.accepted, self.attempted)
    }

    /// `prompt / attempted`, as [`SendCounts::availability`].
    pub fn prompt_availability(&self) -> String {
        percent(self.prompt, self.attempted)
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    let tenths = (part * 1000 + whole / 2) / whole;
    format!("{}.{}%", tenths / 10, tenths % 10)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Accepted at this time.
    Accepted(u64),
    Refused,
    Unresolved,
}

/// Whether an action (as the trace writes it) sends an event into a room.
fn is_send(action: &str) -> bool {
    action.starts_with("message ")
        || action.starts_with("send ")
        || action.starts_with("set power ")
}

/// The figures of one run.
pub fn figures(trace: &Trace) -> RunFigures {
    let records = &trace.records;
    let mut run = RunFigures {
        scenario: trace.header.scenario.clone(),
        seed: trace.header.seed,
        healed_ms: trace.header.healed_ms,
        ..RunFigures::default()
    };
    // Where each LPDU ended: appended (when) or refused.
    let mut lpdu_end: BTreeMap<&str, Outcome> = BTreeMap::new();
    for record in records {
        match &record.body {
            Body::Linearized { lpdu_id, .. } => {
                lpdu_end.entry(lpdu_id).or_insert(Outcome::Accepted(record.t));
            }
            Body::LpduFailed { lpdu_id, .. } => {
                lpdu_end.entry(lpdu_id).or_insert(Outcome::Refused);
            }
            _ => {}
        }
    }
    // Fault windows: a send attempted inside one counts as during faults.
    let mut active: Vec<(u64, u64)> = Vec::new();
    let mut open: BTreeMap<u32, u64> = BTreeMap::new();
    for record in records {
        match &record.body {
            Body::FaultStart { fault } => {
                open.insert(*fault, record.t);
            }
            Body::FaultEnd { fault } => {
                if let Some(start) = open.remove(fault) {
                    active.push((start, record.t));
                }
            }
            _ => {}
        }
    }
    active.extend(open.values().map(|start| (*start, u64::MAX)));
    let mut rest = records.iter();
    while let Some(record) = rest.next() {
        let Body::Action { server, action, .. } = &record.body else { continue };
        if !is_send(action) {
            continue;
        }
        // What the same server recorded for it in the same instant.
        let mut outcome = Outcome::Unresolved;
        for next in rest.clone() {
            if next.t != record.t {
                break;
            }
            match &next.body {
                Body::Event { server: s, decision: Decision::Created, .. } if s == server => {
                    outcome = Outcome::Accepted(record.t);
                    break;
                }
                Body::LpduSent { server: s, lpdu_id, .. } if s == server => {
                    outcome =
                        lpdu_end.get(lpdu_id.as_str()).copied().unwrap_or(Outcome::Unresolved);
                    break;
                }
                Body::ActionFailed(failure) if *server == failure.server => {
                    outcome = Outcome::Refused;
                    break;
                }
                Body::Action { .. } => break,
                _ => {}
            }
        }
        let t = record.t;
        run.sends.add(t, outcome);
        run.per_server.entry(server.to_string()).or_default().add(t, outcome);
        run.per_window.entry(t / WINDOW_MS).or_default().add(t, outcome);
        let faulted = active.iter().any(|(start, end)| *start <= t && t < *end);
        if faulted {
            run.during_faults.add(t, outcome)
        } else {
            run.outside_faults.add(t, outcome)
        }
        if let Outcome::Accepted(at) = outcome {
            run.delays_ms.push(at - record.t);
        }
    }
    run.delays_ms.sort_unstable();
    let mut versions: Vec<String> = Vec::new();
    let mut created_at: BTreeMap<&str, u64> = BTreeMap::new();
    for record in records {
        match &record.body {
            Body::Event { decision: Decision::Created, event_id, .. } => {
                run.events_created += 1;
                if let Some(id) = event_id {
                    created_at.entry(id).or_insert(record.t);
                }
            }
            Body::State { .. } if record.t > run.healed_ms => {
                run.converged_after_heal_ms = record.t - run.healed_ms;
            }
            Body::Joined { version, .. } if !versions.contains(version) => {
                versions.push(version.clone());
            }
            Body::DagLinearized { event_id, .. } => {
                run.dag_linearized += 1;
                if let Some(at) = created_at.get(event_id.as_str()) {
                    run.dag_list_delays_ms.push(record.t - at);
                }
            }
            Body::HubMerge { event_id: Some(_), .. } => run.hub_merges += 1,
            Body::HubMerge { event_id: None, .. } => run.hub_merges_failed += 1,
            _ => {}
        }
    }
    run.versions = versions;
    run.dag_list_delays_ms.sort_unstable();
    let net = trace.net();
    run.messages = net.sent;
    run.bytes = net.bytes;
    for room in model::rooms(trace) {
        run.merges += room
            .events
            .iter()
            .filter(|e| {
                let prevs = e.pdu.as_ref().and_then(|p| p.get("prev_events"));
                prevs.and_then(|p| p.as_array()).is_some_and(|p| p.len() > 1)
            })
            .count() as u64;
        run.conflicted_merges.extend(resolution::replay(&room).conflicted_sizes());
    }
    run
}

/// A room version for a reader: `DAG (v11)` or `Linearized Matrix`.
fn kind(version: &str) -> String {
    match RoomVersion::parse_any(version) {
        Ok(v) if v.rules().lpdus => "Linearized Matrix".into(),
        _ => format!("DAG (v{version})"),
    }
}

/// Value with one decimal of `num / den`.
fn per(num: u64, den: u64) -> String {
    if den == 0 {
        return "-".into();
    }
    let tenths = (num * 10 + den / 2) / den;
    format!("{}.{}", tenths / 10, tenths % 10)
}

fn percentile(sorted: &[u64], pct: usize) -> String {
    if sorted.is_empty() {
        return "-".into();
    }
    let at = (sorted.len() - 1) * pct / 100;
    sorted[at].to_string()
}

/// The comparison table in Markdown: one column per run.
pub fn markdown(runs: &[(&str, &RunFigures)]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |label: &str, f: &dyn Fn(&RunFigures) -> String| {
        rows.push((label.to_owned(), runs.iter().map(|(_, r)| f(r)).collect()));
    };
    row("scenario, seed", &|r| format!("{} {}", r.scenario, r.seed));
    row("room kind", &|r| r.versions.iter().map(|v| kind(v)).collect::<Vec<_>>().join(", "));
    row("sends attempted", &|r| r.sends.attempted.to_string());
    row("accepted in the end (share of attempted)", &|r| r.sends.availability());
    row("accepted within 1 s", &|r| r.sends.prompt_availability());
    row("accepted within 1 s, sent during a fault", &|r| r.during_faults.prompt_availability());
    row("accepted within 1 s, sent outside faults", &|r| r.outside_faults.prompt_availability());
    row("refused, unresolved", &|r| format!("{}, {}", r.sends.refused, r.sends.unresolved()));
    row("delay to acceptance p50 / p99 / max (ms)", &|r| {
        let max = r.delays_ms.last().map_or("-".into(), u64::to_string);
        format!("{} / {} / {max}", percentile(&r.delays_ms, 50), percentile(&r.delays_ms, 99))
    });
    row("state settled after the heal (ms)", &|r| r.converged_after_heal_ms.to_string());
    row("events created", &|r| r.events_created.to_string());
    row("messages per event", &|r| per(r.messages, r.events_created));
    row("bytes per event", &|r| per(r.bytes, r.events_created));
    row("merges (events with several prev events)", &|r| r.merges.to_string());
    row("state resolutions with a conflict", &|r| r.conflicted_merges.len().to_string());
    row("largest full conflicted set", &|r| {
        r.conflicted_merges.iter().max().map_or("-".into(), usize::to_string)
    });
    if runs.iter().any(|(_, r)| r.dag_linearized + r.hub_merges + r.hub_merges_failed > 0) {
        row("DAG-capable servers' events the hub appended", &|r| r.dag_linearized.to_string());
        row("their delay to the hub's list p50 / p99 / max (ms)", &|r| {
            let max = r.dag_list_delays_ms.last().map_or("-".into(), u64::to_string);
            let (p50, p99) =
                (percentile(&r.dag_list_delays_ms, 50), percentile(&r.dag_list_delays_ms, 99));
            format!("{p50} / {p99} / {max}")
        });
        row("hub merges sent, failed", &|r| format!("{}, {}", r.hub_merges, r.hub_merges_failed));
    }
    let mut out = String::new();
    table(&mut out, "", runs, rows.into_iter());
    out
}

/// Availability per server and per window, in Markdown.
pub fn markdown_details(runs: &[(&str, &RunFigures)]) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "Sends per server: accepted in the end / attempted (accepted within 1 s):\n");
    let servers: BTreeSet<&String> = runs.iter().flat_map(|(_, r)| r.per_server.keys()).collect();
    table(
        &mut out,
        "server",
        runs,
        servers.into_iter().map(|server| {
            let cell = |r: &RunFigures| {
                r.per_server.get(server).map_or("-".into(), |c| {
                    format!("{}/{} ({})", c.accepted, c.attempted, c.prompt_availability())
                })
            };
            (server.clone(), runs.iter().map(|(_, r)| cell(r)).collect())
        }),
    );
    let _ = writeln!(
        out,
        "\nSends accepted within 1 s, by the {} s window they were attempted in:\n",
        WINDOW_MS / 1000
    );
    let windows: BTreeSet<u64> =
        runs.iter().flat_map(|(_, r)| r.per_window.keys().copied()).collect();
    table(
        &mut out,
        "from (s)",
        runs,
        windows.into_iter().map(|window| {
            let cell = |r: &RunFigures| {
                r.per_window.get(&window).map_or("-".into(), SendCounts::prompt_availability)
            };
            ((window * WINDOW_MS / 1000).to_string(), runs.iter().map(|(_, r)| cell(r)).collect())
        }),
    );
    out
}

/// A Markdown table with one column per run: the header (`corner`, then the runs' names)
/// and one row per (label, cells).
fn table(
    out: &mut String,
    corner: &str,
    runs: &[(&str, &RunFigures)],
    rows: impl Iterator<Item = (String, Vec<String>)>,
) {
    let names: Vec<&str> = runs.iter().map(|(n, _)| *n).collect();
    let corner = if corner.is_empty() { String::new() } else { format!(" {corner}") };
    let _ = writeln!(out, "|{corner} | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(runs.len()));
    for (label, cells) in rows {
        let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
    }
}

/// The HTML page: the tables, then each run's DAG side by side.
pub fn html(runs: &[(&str, &RunFigures, &Trace)]) -> String {
    let figures: Vec<(&str, &RunFigures)> = runs.iter().map(|(n, r, _)| (*n, *r)).collect();
    let mut page = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>mxsim compare</title><style>body{font-family:sans-serif;margin:1em}\
         table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:2px 6px}\
         .dags{display:flex;gap:1em;align-items:flex-start}.dags>div{flex:1;overflow:auto;\
         max-height:80vh;border:1px solid #ddd}</style></head><body>\n<h1>mxsim compare</h1>\n",
    );
    for table in [markdown(&figures), markdown_details(&figures)] {
        page.push_str(&markdown_tables_to_html(&table));
    }
    page.push_str("<h2>The DAG beside the list</h2>\n<div class=\"dags\">\n");
    for (name, _, trace) in runs {
        let _ = writeln!(page, "<div><h3>{}</h3>", escape(name));
        for room in model::rooms(trace) {
            let drawn = dag::render(trace, &room, &Options::default());
            let _ = writeln!(page, "<p>{}</p>\n{}", escape(&drawn.summary), drawn.svg);
        }
        page.push_str("</div>\n");
    }
    page.push_str("</div>\n</body></html>\n");
    page
}

/// The Markdown this module writes, as HTML: tables become `<table>`, other lines `<p>`.
fn markdown_tables_to_html(text: &str) -> String {
    let mut out = String::new();
    let mut in_table = false;
    for line in text.lines() {
        if let Some(inner) = line.strip_prefix('|') {
            if line.starts_with("|---") {
                continue;
            }
            if !in_table {
                out.push_str("<table>\n");
                in_table = true;
            }
            let cells: Vec<String> = inner
                .trim_end_matches('|')
                .split(" | ")
                .map(|c| format!("<td>{}</td>", escape(c.trim())))
                .collect();
            let _ = writeln!(out, "<tr>{}</tr>", cells.join(""));
        } else {
            if in_table {
                out.push_str("</table>\n");
                in_table = false;
            }
            if !line.trim().is_empty() {
                let _ = writeln!(out, "<p>{}</p>", escape(line));
            }
        }
    }
    if in_table {
        out.push_str("</table>\n");
    }
    out
}
