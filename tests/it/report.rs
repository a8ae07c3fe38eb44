//! Reports drawn from synthetic traces: well-formed SVG with one node per event, an HTML
//! page that links only to files that exist, identical bytes on a second rendering, and
//! a 2,000-event room that renders at all.
//!
//! The traces are built here from `synth` rooms (real PDUs with forks, merges and
//! conflicting state) laid over three servers with a partition, a crash and restart,
//! soft-failed and rejected receipts. `demo_reports_are_written` leaves the files under
//! `target/tmp/report-demo/` for a person to open.

use std::collections::BTreeMap;

use mxsim::check::{Verdict, Violation, Witness};
use mxsim::matrix::RoomVersion;
use mxsim::matrix::state_res::{self, ResolveOptions};
use mxsim::report::{self, Options, RunInfo};
use mxsim::stdx::Invariant;
use mxsim::stdx::{Prng, Ratio};
use mxsim::synth::{self, SynthConfig};
use mxsim::trace::{Body, CheckSettings, Decision, FORMAT, Header, NodeChange, Record, Trace};
use serde_json::json;

const SERVERS: [&str; 3] = ["hs0", "hs1", "hs2"];
/// Virtual ms between two created events.
const STEP_MS: u64 = 10;

/// A trace of a synthetic room of `event_count` events over three servers.
fn demo_trace(event_count: u32, seed: u64) -> Trace {
    let mut config = SynthConfig::small(RoomVersion::V12, event_count);
    config.message = Ratio::new(3, 5).unwrap();
    let mut resolve = |rules: &'static mxsim::matrix::RoomVersionRules,
                       sets: &[state_res::StateMap],
                       events: &synth::Events| {
        state_res::resolve(rules, sets, events, ResolveOptions::default()).unwrap().state
    };
    let room = synth::generate(&config, &mut Prng::from_seed(seed), &mut resolve);
    let room_id = room.room_id.clone();
    let created_end = room.order.len() as u64 * STEP_MS;
    // hs2 is cut off for the middle fifth of the run; hs1 is down for a tenth after it.
    let (cut_start, cut_end) = (created_end * 2 / 5, created_end * 3 / 5);
    let (crash_start, crash_end) = (created_end * 7 / 10, created_end * 4 / 5);
    let mut records: Vec<(u64, u64, Body)> = Vec::new();
    let mut seq = 0u64;
    let mut push = |records: &mut Vec<(u64, u64, Body)>, t: u64, body: Body| {
        records.push((t, seq, body));
        seq += 1;
    };
    for server in SERVERS {
        push(
            &mut records,
            0,
            Body::Joined {
                server: server.into(),
                room: room_id.clone(),
                version: room.rules.version.as_str().into(),
            },
        );
    }
    push(&mut records, cut_start, Body::FaultStart { fault: 0 });
    push(&mut records, cut_end, Body::FaultEnd { fault: 0 });
    push(&mut records, crash_start, Body::FaultStart { fault: 1 });
    push(&mut records, crash_start, Body::Node { server: "hs1".into(), change: NodeChange::Crash });
    push(&mut records, crash_end, Body::FaultEnd { fault: 1 });
    push(&mut records, crash_end, Body::Node { server: "hs1".into(), change: NodeChange::Restart });
    let mut prng = Prng::from_seed(seed ^ 0x5eed);
    let mut stored: BTreeMap<&str, Vec<(u64, String, bool)>> = BTreeMap::new();
    for (i, id) in room.order.iter().enumerate() {
        let pdu = &room.events[id];
        let origin = pdu.sender().split_once(':').unwrap().1;
        let origin = SERVERS.iter().copied().find(|s| *s == origin).unwrap_or("hs0");
        let created = i as u64 * STEP_MS + 5;
        let mut json = pdu.json().clone();
        json.remove("event_id");
        push(
            &mut records,
            created,
            Body::Event {
                server: origin.into(),
                room: room_id.clone().into(),
                event_id: Some(id.as_str().into()),
                decision: Decision::Created,
                reason: None,
                pdu: Some(std::sync::Arc::new(json)),
            },
        );
        stored.entry(origin).or_default().push((created, id.as_str().into(), pdu.is_state()));
        for server in SERVERS {
            if server == origin {
                continue;
            }
            let mut at = created + 20 + prng.range_inclusive(0, 60);
            let cut =
                |t: u64| (server == "hs2") != (origin == "hs2") && t >= cut_start && t < cut_end;
            if cut(created) || cut(at) {
                at = cut_end + 30 + prng.range_inclusive(0, 200);
            }
            if server == "hs1" && at >= crash_start && at < crash_end {
                at = crash_end + 10 + prng.range_inclusive(0, 40);
            }
            let decision = if i % 53 == 40 && !pdu.is_state() {
                Decision::RejectedStateBefore
            } else if i % 37 == 20 && !pdu.is_state() && server == "hs2" {
                Decision::SoftFailed
            } else {
                Decision::Accepted
            };
            let reason =
                (decision != Decision::Accepted).then(|| "rule 10: sender not joined".into());
            push(
                &mut records,
                at,
                Body::Event {
                    server: server.into(),
                    room: room_id.clone().into(),
                    event_id: Some(id.as_str().into()),
                    decision,
                    reason,
                    pdu: None,
                },
            );
            stored.entry(server).or_default().push((at, id.as_str().into(), pdu.is_state()));
        }
    }
    // A state hash per server: the number of state events it holds so far (so servers
    // disagree while they lag and agree once everything has arrived).
    let mut end_ms = created_end;
    for (server, list) in &mut stored {
        list.sort();
        let mut state_count = 0;
        for (t, _, is_state) in list.iter() {
            end_ms = end_ms.max(*t + 100);
            if *is_state {
                state_count += 1;
                push(
                    &mut records,
                    *t,
                    Body::State {
                        server: (*server).into(),
                        room: room_id.clone().into(),
                        state_hash: format!("h{state_count}").into(),
                    },
                );
            }
        }
        if *server == "hs1" {
            let before: Vec<String> = list
                .iter()
                .filter(|(t, ..)| *t <= crash_end)
                .map(|(_, id, _)| id.clone())
                .collect();
            push(
                &mut records,
                crash_end,
                Body::Recovered { server: "hs1".into(), event_ids: before },
            );
        }
        push(
            &mut records,
            end_ms,
            Body::Final(Box::new(mxsim::trace::FinalView {
                server: (*server).into(),
                room: room_id.clone().into(),
                joined: true,
                forward_extremities: room.branches.iter().map(|b| b.tip.as_str().into()).collect(),
                state: Default::default(),
                state_hash: format!("h{state_count}").into(),
                events: list.len() as u64,
                waiting: Vec::new(),
            })),
        );
    }
    records.sort_by_key(|a| (a.0, a.1));
    let end_ms = records.last().map_or(end_ms, |r| r.0.max(end_ms));
    let header = Header {
        format: FORMAT.into(),
        scenario: format!("synthetic-{event_count}"),
        seed,
        mxsim_version: "0.1.0".into(),
        mxsim_build: String::new(),
        servers: SERVERS.iter().map(|s| (*s).into()).collect(),
        keys: BTreeMap::new(),
        epoch_ms: 1_700_000_000_000,
        end_ms,
        healed_ms: crash_end,
        faults: serde_json::from_value(json!([
            {"type": "partition", "start_ms": cut_start, "end_ms": cut_end, "groups": [["hs2"]]},
            {"type": "crash", "start_ms": crash_start, "end_ms": crash_end, "node": "hs1"},
        ]))
        .expect("the faults are well-formed"),
        check: CheckSettings {
            invariants: vec![Invariant::Convergence],
            liveness_bound_ms: 5000,
            expect: Default::default(),
        },
        swarm: None,
    };
    let records: Vec<Record> = records.into_iter().map(|(t, _, body)| Record { t, body }).collect();
    Trace::new(header, records)
}

fn failing_verdict() -> Verdict {
    Verdict {
        violations: vec![Violation {
            invariant: Invariant::Convergence,
            message: "hs2 holds a different current state <after> the heal".into(),
            witness: Witness {
                servers: vec!["hs2".into()],
                events: vec!["$x".into()],
                line: Some(12),
            },
        }],
        checked: vec![Invariant::Convergence, Invariant::Dag],
        violations_not_listed: [(Invariant::Convergence, 3)].into(),
    }
}

fn info() -> RunInfo {
    RunInfo {
        reproduce: "mxsim run scenarios/synthetic.toml --seed 7".into(),
        metrics: vec![("events".into(), "42".into()), ("messages sent".into(), "120".into())],
        sibling_files: vec!["trace.jsonl".into()],
        trace_hash: None,
    }
}

fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &files.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1
}

fn text<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a str {
    std::str::from_utf8(file(files, name)).unwrap()
}

/// (nodes drawn, events they stand for) in a DAG SVG, which must be well-formed XML.
fn count_nodes(svg: &str) -> (usize, usize) {
    let doc = roxmltree::Document::parse(svg).expect("dag.svg is well-formed XML");
    let mut nodes = 0;
    let mut events = 0;
    for node in doc.descendants().filter(|n| n.has_tag_name("g")) {
        let class = node.attribute("class").unwrap_or("");
        if class.split(' ').any(|c| c == "node") {
            nodes += 1;
            events += node.attribute("data-events").unwrap().parse::<usize>().unwrap();
            let title = node.children().find(|c| c.has_tag_name("title"));
            assert!(title.is_some_and(|t| t.text().unwrap_or("").starts_with('$')
                || t.text().unwrap_or("").contains("messages")));
        }
    }
    (nodes, events)
}

fn event_count(trace: &Trace) -> usize {
    report::rooms(trace).iter().map(|r| r.events.len()).sum()
}

#[test]
fn the_dag_has_one_node_per_event() {
    let trace = demo_trace(20, 7);
    let options = Options { auth_edges: true, collapse_run_min: 0 };
    let files = report::render(&trace, &Verdict::default(), &info(), &options).unwrap();
    let events = event_count(&trace);
    assert!(events >= 20, "{events}");
    assert_eq!(count_nodes(text(&files, "dag.svg")), (events, events));
    let dot = text(&files, "dag.dot");
    assert_eq!(
        dot.lines().filter(|l| l.starts_with("  n") && l.contains("[label=")).count(),
        events
    );
    for name in ["convergence.svg", "resolution.svg"] {
        roxmltree::Document::parse(text(&files, name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn long_runs_of_messages_collapse_into_one_node() {
    let trace = demo_trace(300, 3);
    let events = event_count(&trace);
    let options = Options { auth_edges: false, collapse_run_min: 3 };
    let files = report::render(&trace, &Verdict::default(), &info(), &options).unwrap();
    let (nodes, drawn) = count_nodes(text(&files, "dag.svg"));
    assert_eq!(drawn, events, "every event is drawn, alone or in a run");
    assert!(nodes < events, "some runs collapsed: {nodes} nodes for {events} events");
}

#[test]
fn the_page_links_only_to_files_that_exist() {
    let trace = demo_trace(150, 7);
    let info = info();
    let files = report::render(&trace, &failing_verdict(), &info, &Options::default()).unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in
        ["dag.svg", "dag.dot", "convergence.svg", "convergence.png", "resolution.svg", "index.html"]
    {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let html = text(&files, "index.html");
    let mut references = Vec::new();
    for attribute in ["href=\"", "src=\""] {
        for (at, _) in html.match_indices(attribute) {
            let rest = &html[at + attribute.len()..];
            references.push(&rest[..rest.find('"').unwrap()]);
        }
    }
    assert!(!references.is_empty());
    for reference in references.into_iter().filter(|r| !r.starts_with('#')) {
        assert!(
            names.contains(&reference) || info.sibling_files.iter().any(|s| s == reference),
            "index.html references {reference}, which is not written"
        );
    }
    assert!(html.contains("<script>//<![CDATA["), "the inline script");
    let written: Vec<String> =
        names.iter().map(|n| n.to_string()).chain(info.sibling_files.iter().cloned()).collect();
    let counts = crate::report_runs::check_links(html, &written, trace.header.end_ms);
    assert!(counts[1] > 0 && counts[4] > 0, "event links and trace-line links: {counts:?}");
    // Violations not listed are counted, not invented as a listed one.
    assert!(html.contains("3 more violations of convergence not listed."), "count shown");
    assert!(html.contains("; 4 violations</span>"), "total counted");
    assert!(html.contains("FAIL") && html.contains("&lt;after&gt;"), "the violation, escaped");
    assert!(html.contains("mxsim run scenarios/synthetic.toml --seed 7"));
    // Every inline figure is there: the DAG, the chart and the resolution table.
    assert!(html.contains("mxsim-dag") && html.contains("mxsim-resolution"));
    assert!(text(&files, "resolution.svg").contains("WON"), "a merge with a conflict");
    let png = file(&files, "convergence.png");
    let decoded = image::load_from_memory(png).expect("a valid PNG");
    assert!(decoded.width() >= 800);
    // Compressed to under a twenty-fifth of its pixels' bytes, as the adaptive filter and
    // Paeth on every row do (about a thirtieth); Sub or Up on every row do not.
    let raw = decoded.width() as usize * decoded.height() as usize * 3;
    assert!(png.len() * 25 < raw, "a PNG of {} bytes for {raw} bytes of pixels", png.len());
}

#[test]
fn rendering_twice_gives_identical_bytes() {
    let trace = demo_trace(60, 5);
    let render =
        || report::render(&trace, &failing_verdict(), &info(), &Options::default()).unwrap();
    let (first, second) = (render(), render());
    assert_eq!(first.len(), second.len());
    for ((name_a, bytes_a), (name_b, bytes_b)) in first.iter().zip(&second) {
        assert_eq!(name_a, name_b);
        assert!(bytes_a == bytes_b, "{name_a} differs between renderings");
    }
    // Through the JSONL codec too: what `mxsim report` reads gives the same files.
    let reread = Trace::parse_jsonl(std::str::from_utf8(&trace.to_jsonl()).unwrap()).unwrap();
    let third = report::render(&reread, &failing_verdict(), &info(), &Options::default()).unwrap();
    assert!(first == third);
}

#[test]
fn a_two_thousand_event_room_renders() {
    let trace = demo_trace(2_000, 1);
    let events = event_count(&trace);
    assert!(events >= 2_000);
    let files = report::render(&trace, &Verdict::default(), &info(), &Options::default()).unwrap();
    let (nodes, drawn) = count_nodes(text(&files, "dag.svg"));
    assert_eq!(drawn, events);
    assert!(nodes <= events);
}

#[test]
fn an_empty_trace_still_gives_a_page() {
    let mut trace = demo_trace(5, 1);
    trace.records.clear();
    trace.header.faults.clear();
    let files =
        report::render(&trace, &Verdict::default(), &RunInfo::default(), &Options::default())
            .unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["timeline.svg", "index.html"]);
    assert!(text(&files, "index.html").contains("NOT CHECKED"));
}

/// The files of one room's report.
const FILES: [&str; 7] = [
    "dag.svg",
    "dag.dot",
    "convergence.svg",
    "convergence.png",
    "resolution.svg",
    "index.html",
    "timeline.svg",
];

fn mxsim(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_mxsim")).args(args).output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (output.status.code().unwrap(), String::from_utf8(output.stdout).unwrap(), stderr)
}

#[test]
fn mxsim_report_redraws_from_a_trace_file() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-cli");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let trace_path = dir.join("trace.jsonl");
    let trace = demo_trace(30, 2);
    std::fs::write(&trace_path, trace.to_jsonl()).unwrap();
    let out = dir.join("out");
    let args =
        [std::ffi::OsStr::new("report"), trace_path.as_os_str(), "--out".as_ref(), out.as_os_str()];
    let (code, stdout, stderr) = mxsim(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("wrote 7 files"), "{stdout}");
    let first: Vec<Vec<u8>> =
        FILES.iter().map(|name| std::fs::read(out.join(name)).unwrap()).collect();
    let html = String::from_utf8(first[5].clone()).unwrap();
    // The verdict is the checker's, recomputed from the trace alone.
    let verdict = mxsim::check::check(&trace);
    let expected = match (verdict.checked.is_empty(), verdict.passed()) {
        (true, _) => "NOT CHECKED",
        (false, true) => "PASS",
        (false, false) => "FAIL",
    };
    assert!(html.contains(expected), "the page shows {expected}");
    assert!(!html.contains("href=\"trace.jsonl\""), "the trace is not in the output directory");
    let (code, ..) = mxsim(&args);
    assert_eq!(code, 0);
    let second: Vec<Vec<u8>> =
        FILES.iter().map(|name| std::fs::read(out.join(name)).unwrap()).collect();
    assert!(first == second, "same trace, same bytes");
    // Writing next to the trace links it from the page.
    let args = [
        std::ffi::OsStr::new("report"),
        trace_path.as_os_str(),
        "--out".as_ref(),
        dir.as_os_str(),
        "--auth-edges".as_ref(),
    ];
    assert_eq!(mxsim(&args).0, 0);
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("href=\"trace.jsonl\""));
    // A bad trace names the file and the line.
    let bad = dir.join("bad.jsonl");
    // A bad record before a valid end record (an incomplete trace is refused before its
    // records are read; tests/it/cli.rs covers that).
    let whole = std::fs::read_to_string(&trace_path).unwrap();
    let end_at = whole.trim_end().rfind('\n').unwrap() + 1;
    let mut text = whole[..end_at].to_owned();
    text.push_str("{\"t\":1}\n");
    let records = text.lines().count() - 1;
    let hash = mxsim::trace::hash_jsonl(text.as_bytes());
    text.push_str(&format!("{{\"type\":\"end\",\"records\":{records},\"hash\":\"{hash}\"}}\n"));
    std::fs::write(&bad, text).unwrap();
    let (code, _, stderr) = mxsim(&[
        std::ffi::OsStr::new("report"),
        bad.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.jsonl: line") && stderr.contains("bad record"), "{stderr}");
}

/// Writes demo reports for a person to open (not an assertion about their looks).
#[test]
fn demo_reports_are_written() {
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-demo");
    for (name, count) in [("small", 20), ("medium", 150), ("large", 2_000)] {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let trace = demo_trace(count, 7);
        std::fs::write(dir.join("trace.jsonl"), trace.to_jsonl()).unwrap();
        let files =
            report::render(&trace, &failing_verdict(), &info(), &Options::default()).unwrap();
        for (file, bytes) in files {
            std::fs::write(dir.join(file), bytes).unwrap();
        }
    }
}

#[test]
fn every_room_gets_its_own_figures() {
    let mut trace = demo_trace(20, 7);
    let other = demo_trace(20, 8);
    let mut records: Vec<(u64, usize, Record)> = std::mem::take(&mut trace.records)
        .into_iter()
        .enumerate()
        .map(|(i, r)| (r.t, i, r))
        .collect();
    let first_count = records.len();
    records.extend(other.records.into_iter().enumerate().map(|(i, r)| (r.t, first_count + i, r)));
    records.sort_by_key(|(t, i, _)| (*t, *i));
    trace.records = records.into_iter().map(|(_, _, r)| r).collect();
    let rooms = report::rooms(&trace);
    assert_eq!(rooms.len(), 2, "two distinct rooms");
    let files = report::render(&trace, &Verdict::default(), &info(), &Options::default()).unwrap();
    assert_eq!(files.len(), 12);
    let html = text(&files, "index.html");
    for name in ["dag-room2.svg", "dag-room2.dot", "convergence-room2.png", "resolution-room2.svg"]
    {
        file(&files, name);
        assert!(html.contains(&format!("href=\"{name}\"")), "{name} linked");
    }
    assert_eq!(count_nodes(text(&files, "dag-room2.svg")).1, rooms[1].events.len());
}

/// Liveness violations for nine events hs2 never stored, all created by one server: one
/// group that names the server, the count, the origin and the creation span, and links to
/// each event and to the trace lines.
#[test]
fn violations_are_grouped_by_invariant_and_server() {
    let mut trace = demo_trace(120, 5);
    // Nine events created by hs0, which hs2 then never stores.
    let mut chosen: Vec<(String, u64, u64)> = Vec::new();
    for (index, record) in trace.records.iter().enumerate() {
        if let Body::Event { server, event_id: Some(id), decision: Decision::Created, .. } =
            &record.body
        {
            if server == "hs0" && chosen.len() < 9 && index > 10 {
                chosen.push((id.to_string(), record.t, index as u64 + 2));
            }
        }
    }
    assert_eq!(chosen.len(), 9);
    let ids: Vec<&str> = chosen.iter().map(|(id, ..)| id.as_str()).collect();
    trace.records.retain(|r| match &r.body {
        Body::Event { server, event_id: Some(id), .. } => {
            !(server == "hs2" && ids.contains(&id.as_str()))
        }
        _ => true,
    });
    // The line numbers after removal: count again.
    let line_of = |id: &str| {
        trace.records.iter().position(|r| matches!(&r.body, Body::Event { event_id: Some(e), decision: Decision::Created, .. } if e == id)).unwrap() as u64 + 2
    };
    let violations = chosen
        .iter()
        .map(|(id, ..)| Violation {
            invariant: Invariant::Liveness,
            message: format!("{id} did not reach every joined server: never: hs2"),
            witness: Witness {
                servers: vec!["hs2".into()],
                events: vec![id.clone()],
                line: Some(line_of(id)),
            },
        })
        .collect();
    let verdict = Verdict {
        violations,
        checked: vec![Invariant::Liveness],
        violations_not_listed: Default::default(),
    };
    let files = report::render(&trace, &verdict, &info(), &Options::default()).unwrap();
    let html = text(&files, "index.html");
    // Creation times as the page writes them: seconds with one decimal.
    let (first, last) = (chosen[0].1, chosen[8].1);
    let span = format!(
        "(created {}.{}–{}.{} s)",
        first / 1000,
        first % 1000 / 100,
        last / 1000,
        last % 1000 / 100
    );
    let heading = format!("<b>hs2 never received 9 events from hs0</b> {span}");
    assert_eq!(html.matches(&heading).count(), 1, "one group: {heading}");
    assert!(html.contains("<h3>liveness (9 violations)</h3>"));
    let group = &html[html.find(&heading).unwrap()..];
    let group = &group[..group.find("</div>").unwrap()];
    for (id, ..) in &chosen {
        assert!(group.contains(&format!("href=\"#event={id}\"")), "{id} linked");
        let line = line_of(id);
        assert!(group.contains(&format!("href=\"#line-{line}\"")), "line {line} linked");
        assert!(html.contains(&format!("<pre id=\"line-{line}\">{line}: ")), "line {line} quoted");
    }
}

/// A synthetic room over `server_count` servers: every event created by one server and
/// accepted by all others 20–100 ms later, except that the last tenth of the servers is cut
/// off for the middle fifth of the run and receives what it missed after the heal.
fn wide_trace(server_count: usize, event_count: u32) -> Trace {
    let mut config = SynthConfig::small(RoomVersion::V12, event_count);
    config.message = Ratio::new(3, 5).unwrap();
    let mut resolve = |rules: &'static mxsim::matrix::RoomVersionRules,
                       sets: &[state_res::StateMap],
                       events: &synth::Events| {
        state_res::resolve(rules, sets, events, ResolveOptions::default()).unwrap().state
    };
    let room = synth::generate(&config, &mut Prng::from_seed(11), &mut resolve);
    let servers: Vec<String> = (1..=server_count).map(|i| format!("hs{i}")).collect();
    let cut: Vec<String> = servers[server_count - server_count / 10..].to_vec();
    let step_ms = 200u64;
    let end_created = room.order.len() as u64 * step_ms;
    let (cut_start, cut_end) = (end_created * 2 / 5, end_created * 3 / 5);
    let mut records: Vec<(u64, u64, Body)> = Vec::new();
    let mut seq = 0u64;
    let mut push = |records: &mut Vec<(u64, u64, Body)>, t: u64, body: Body| {
        records.push((t, seq, body));
        seq += 1;
    };
    for server in &servers {
        let body = Body::Joined {
            server: server.clone(),
            room: room.room_id.clone(),
            version: room.rules.version.as_str().into(),
        };
        push(&mut records, 0, body);
    }
    push(&mut records, cut_start, Body::FaultStart { fault: 0 });
    push(&mut records, cut_end, Body::FaultEnd { fault: 0 });
    for (i, id) in room.order.iter().enumerate() {
        let origin = &servers[i * 7 % server_count];
        let created = i as u64 * step_ms + 5;
        let mut json = room.events[id].json().clone();
        json.remove("event_id");
        push(
            &mut records,
            created,
            Body::Event {
                server: origin.clone().into(),
                room: room.room_id.clone().into(),
                event_id: Some(id.as_str().into()),
                decision: Decision::Created,
                reason: None,
                pdu: Some(std::sync::Arc::new(json)),
            },
        );
        let origin_cut = cut.contains(origin);
        for (s, server) in servers.iter().enumerate() {
            if server == origin {
                continue;
            }
            let mut at = created + 20 + (s as u64 * 13 + i as u64 * 7) % 80;
            let crosses = cut.contains(server) != origin_cut;
            if crosses && at >= cut_start && at < cut_end {
                at = cut_end + 50 + (s as u64 * 11) % 400;
            }
            push(
                &mut records,
                at,
                Body::Event {
                    server: server.clone().into(),
                    room: room.room_id.clone().into(),
                    event_id: Some(id.as_str().into()),
                    decision: Decision::Accepted,
                    reason: None,
                    pdu: None,
                },
            );
        }
    }
    records.sort_by_key(|a| (a.0, a.1));
    let end_ms = records.last().map_or(0, |r| r.0) + 1_000;
    let header = Header {
        format: FORMAT.into(),
        scenario: format!("synthetic-{server_count}-servers"),
        seed: 11,
        mxsim_version: "0.1.0".into(),
        mxsim_build: String::new(),
        servers: servers.clone(),
        keys: BTreeMap::new(),
        epoch_ms: 1_700_000_000_000,
        end_ms,
        healed_ms: cut_end,
        faults: serde_json::from_value(json!([
            {"type": "partition", "start_ms": cut_start, "end_ms": cut_end, "groups": [cut]},
        ]))
        .expect("the faults are well-formed"),
        check: CheckSettings {
            invariants: vec![Invariant::Convergence],
            liveness_bound_ms: 5000,
            expect: Default::default(),
        },
        swarm: None,
    };
    let records: Vec<Record> = records.into_iter().map(|(t, _, body)| Record { t, body }).collect();
    Trace::new(header, records)
}

/// A 1,000-server room's report: the timeline groups lanes by partition side and names
/// the cut-off servers, and the page stays within a size a browser opens in seconds.
/// Slow (hundreds of thousands of records): `MXSIM_SLOW=1`. Leaves the files in
/// `target/tmp/report-demo/wide-1000/`.
#[test]
fn a_thousand_server_report_groups_lanes_and_stays_small() {
    if std::env::var("MXSIM_SLOW").ok().as_deref() != Some("1") {
        return;
    }
    let trace = wide_trace(1_000, 120);
    let files = report::render(&trace, &Verdict::default(), &info(), &Options::default()).unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-demo/wide-1000");
    std::fs::create_dir_all(&dir).unwrap();
    for (file, bytes) in &files {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    let timeline = text(&files, "timeline.svg");
    let doc = roxmltree::Document::parse(timeline).expect("well-formed");
    let lanes: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class").is_some_and(|c| c.split(' ').any(|c| c == "lane")))
        .map(|n| n.attribute("id").unwrap())
        .collect();
    // Two sides (hs901..hs1000 cut off, the rest), one aggregate lane each; the cut-off
    // side has 100 servers, more than a small side, so no server has its own lane.
    assert_eq!(lanes, ["group-1", "group-2"]);
    let html = text(&files, "index.html");
    // The summary says why no server has a lane, rather than counting "0 servers".
    assert!(html.contains("no server has a lane of its own"), "timeline summary");
    assert!(!html.contains("each of 0 servers"));
    assert!(html.len() < 40_000_000, "page of {} bytes", html.len());
    let svg_elements = timeline.matches('<').count();
    assert!(svg_elements < 40_000, "{svg_elements} elements in the timeline");
}
