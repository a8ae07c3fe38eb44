//! Reports of real runs of curated scenarios: the page's structure (well-formed, every
//! in-page link has its target, the same trace gives the same bytes), the first
//! divergence where the scenario makes one, and, behind `MXSIM_BROWSER=1`, the page in
//! headless Chromium (scripts/install-chromium.sh installs it; scripts/report-browser.js
//! drives it): opening `#event=$id` shows that event's state, `#server=` and `#t=` open
//! their views, and full-page screenshots are left in `target/tmp/report-browser/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mxsim::check;
use mxsim::report::{self, Options, RunInfo};
use mxsim::trace::{Body, Decision, Trace};
use mxsim::world::{self, from_scenario};
use serde_json::Value;

/// Runs a curated scenario and renders its report.
fn run(name: &str, seed: u64) -> (Trace, Vec<(String, Vec<u8>)>) {
    let path = format!("scenarios/{name}.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let scenario = mxsim::scenario::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    let plan = from_scenario::plan(&scenario, seed, "test").unwrap();
    let trace = world::run(&plan).unwrap().trace;
    let verdict = check::check(&trace);
    let info = RunInfo {
        reproduce: format!("mxsim run {path} --seed {seed}"),
        metrics: Vec::new(),
        sibling_files: Vec::new(),
        trace_hash: None,
    };
    let files = report::render(&trace, &verdict, &info, &Options::default()).unwrap();
    (trace, files)
}

fn page(files: &[(String, Vec<u8>)]) -> String {
    let (_, bytes) = files.iter().find(|(n, _)| n == "index.html").expect("index.html");
    String::from_utf8(bytes.clone()).unwrap()
}

/// The page's data block: (event ids, servers).
fn data(html: &str) -> (BTreeSet<String>, BTreeSet<String>, Value) {
    let start = html.find("id=\"mxsim-data\">").expect("a data block") + "id=\"mxsim-data\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    let value: Value = serde_json::from_str(&html[start..end]).expect("the data block is JSON");
    let mut events = BTreeSet::new();
    for room in value["rooms"].as_array().unwrap() {
        for event in room["events"].as_array().unwrap() {
            events.insert(event["i"].as_str().unwrap().to_owned());
        }
    }
    let servers = value["servers"].as_array().unwrap();
    let servers = servers.iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    (events, servers, value)
}

/// Parses the page as XML and checks every link: files among `files`, `#event=` among the
/// data block's events, `#server=` among its servers, `#t=` a time within the run, and
/// every other fragment an element id. Returns the number of links of each kind.
pub fn check_links(html: &str, files: &[String], end_ms: u64) -> [usize; 5] {
    let options = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    let doc = roxmltree::Document::parse_with_options(html, options)
        .unwrap_or_else(|e| panic!("index.html is well-formed: {e}"));
    let ids: BTreeSet<&str> = doc.descendants().filter_map(|n| n.attribute("id")).collect();
    let (events, servers, _) = data(html);
    let mut counts = [0usize; 5];
    for node in doc.descendants() {
        let Some(href) = node.attribute("href") else { continue };
        match href.strip_prefix('#') {
            None => {
                assert!(files.iter().any(|f| f == href), "a link to {href}, which is not written");
                counts[0] += 1;
            }
            Some(fragment) => {
                if let Some(id) = fragment.strip_prefix("event=") {
                    assert!(events.contains(id), "a link to event {id}, not in the data block");
                    counts[1] += 1;
                } else if let Some(server) = fragment.strip_prefix("server=") {
                    assert!(servers.contains(server), "a link to server {server}");
                    counts[2] += 1;
                } else if let Some(t) = fragment.strip_prefix("t=") {
                    let t: u64 = t.parse().unwrap_or_else(|_| panic!("#t={t} is a number"));
                    assert!(t <= end_ms, "#t={t} after the end {end_ms}");
                    counts[3] += 1;
                } else {
                    assert!(ids.contains(fragment), "a link to #{fragment}, which has no element");
                    counts[4] += 1;
                }
            }
        }
    }
    counts
}

#[test]
fn a_curated_runs_page_is_well_formed_with_every_link_target() {
    // A scenario whose run has failed actions (bob's joins and messages are refused by
    // design), so that the failed-actions table and its trace-line links are exercised.
    let (trace, files) = run("regressions/rejoin-while-banned", 1);
    let html = page(&files);
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let counts = check_links(&html, &names, trace.header.end_ms);
    assert!(counts[0] >= 6, "links to the figure files: {counts:?}");
    assert!(counts[1] > 0 && counts[2] > 0 && counts[3] > 0 && counts[4] > 0, "{counts:?}");
    // Failed actions link to their trace lines, which are quoted on the page.
    let failed = trace.records.iter().filter(|r| matches!(r.body, Body::ActionFailed { .. }));
    assert!(failed.count() > 0, "bob's refused joins are failed actions");
    assert!(html.contains("id=\"failed-actions\""));
    // The title carries the scenario's label of the room, not only its id.
    assert!(html.contains("room “main”"), "the room's label in the title");
    // Same trace, same bytes, also through the JSONL codec.
    let reread = Trace::parse_jsonl(std::str::from_utf8(&trace.to_jsonl()).unwrap()).unwrap();
    let verdict = check::check(&reread);
    let info = RunInfo {
        reproduce: "mxsim run scenarios/regressions/rejoin-while-banned.toml --seed 1".into(),
        metrics: Vec::new(),
        sibling_files: Vec::new(),
        trace_hash: None,
    };
    let again = report::render(&reread, &verdict, &info, &Options::default()).unwrap();
    assert!(again == files, "same trace, same bytes");
    // A caller that wrote the trace passes its hash instead of having it computed again:
    // the same page.
    let known = RunInfo { trace_hash: Some(reread.hash()), ..info.clone() };
    let with_hash = report::render(&reread, &verdict, &known, &Options::default()).unwrap();
    assert!(with_hash == files, "a given trace hash is the computed one");
}

/// The m.room.name event hs1 created during the partition, and when (from the trace).
/// The `m.room.name` events created in the run: (server, event id, time).
fn renames(trace: &Trace) -> Vec<(String, String, u64)> {
    trace
        .records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Event {
                server,
                event_id: Some(id),
                decision: Decision::Created,
                pdu: Some(pdu),
                ..
            } if pdu.get("type") == Some(&Value::from("m.room.name")) => {
                Some((server.to_string(), id.to_string(), r.t))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_divergence_of_three_way_split_shows_hs1s_rename() {
    let (trace, files) = run("three-way-split", 1);
    let renames = renames(&trace);
    let (_, name_id, created_ms) =
        renames.iter().find(|(s, _, _)| s == "hs1").cloned().expect("hs1 renames the room");
    let others: Vec<&String> =
        renames.iter().filter(|(s, _, _)| s != "hs1").map(|(_, id, _)| id).collect();
    assert!(!others.is_empty(), "hs2 or hs3 renames the room too");
    let html = page(&files);
    // hs1 is cut off from hs2 and hs3 from 10 s to 50 s; each side renames the room. So
    // hs1 and hs2 are split over the renames, agree again only after the heal, through
    // one of the renames (the one state resolution picks), and just before that differ
    // on m.room.name: hs1 holds its own rename, hs2 another side's.
    let row_start =
        html.find("data-a=\"hs1\" data-b=\"hs2\"").expect("a divergence row for hs1/hs2");
    let row = &html[row_start..row_start + html[row_start..].find("</tr>\n").unwrap()];
    let number_after = |text: &str| -> u64 {
        let at = row.find(text).unwrap_or_else(|| panic!("{text} in {row}")) + text.len();
        row[at..].split('"').next().unwrap().parse().unwrap()
    };
    let split_ms = number_after("<td><a href=\"#t=");
    assert!(split_ms <= created_ms, "the split began by the rename at {created_ms}: {split_ms}");
    assert!(!row.contains("never (split at the end)"), "{row}");
    // They agree again when one side takes in the other's rename after the heal.
    let through_hs1 = format!("hs2: <a href=\"#event={name_id}\">");
    let through_other =
        others.iter().any(|id| row.contains(&format!("hs1: <a href=\"#event={id}\">")));
    assert!(row.contains(&through_hs1) || through_other, "agreed again through a rename: {row}");
    let key = row.find("<td>m.room.name</td><td></td>").expect("the name differs before the heal");
    let cells = &row[key..];
    let cells = &cells[..cells.find("</tr>").unwrap()];
    let hs1_cell_at = cells.find(&format!("#event={name_id}")).expect("hs1 holds its rename");
    let hs2_cell = &cells[hs1_cell_at..];
    assert!(
        others.iter().any(|id| hs2_cell.contains(&format!("#event={id}"))),
        "hs2 holds another side's rename: {cells}"
    );
}

fn browser() -> Option<PathBuf> {
    if std::env::var("MXSIM_BROWSER").ok().as_deref() != Some("1") {
        return None;
    }
    let path = std::env::var("MXSIM_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).exists(),
        "MXSIM_BROWSER=1 needs Chromium at {path} (scripts/install-chromium.sh, or MXSIM_CHROMIUM)"
    );
    Some(PathBuf::from(path))
}

/// Opens `page#fragment` in headless Chromium; returns what the panel showed.
fn open(chromium: &Path, page: &Path, fragment: &str, screenshot: &Path) -> Value {
    let output = std::process::Command::new("node")
        .arg("scripts/report-browser.js")
        .arg(chromium)
        .arg(page)
        .arg(fragment)
        .arg(screenshot)
        .output()
        .expect("node runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "report-browser.js failed: {stderr}");
    let shown: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert_eq!(shown["errors"], Value::Array(Vec::new()), "the page's script raised errors");
    let png = std::fs::read(screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a screenshot");
    shown
}

#[test]
fn the_page_in_a_browser_opens_the_linked_views() {
    let Some(chromium) = browser() else { return };
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    for name in ["three-way-split", "partition-heal", "crash-restart", "large-room"] {
        let (trace, files) = run(name, 1);
        let dir = root.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, bytes) in &files {
            std::fs::write(dir.join(file), bytes).unwrap();
        }
        let index = dir.join("index.html");
        let top = open(&chromium, &index, "", &dir.join("page.png"));
        assert_eq!(top["open"], Value::Bool(false), "no panel without a fragment");
        // A state event accepted everywhere: its panel shows its own key changing to it.
        let (id, event_type, state_key, decisions) = state_event(&trace);
        let shown = open(&chromium, &index, &format!("event={id}"), &dir.join("event.png"));
        assert_eq!(shown["open"], Value::Bool(true), "{name}");
        assert_eq!(shown["event"], Value::from(id.clone()), "{name}: the panel shows the event");
        assert_eq!(shown["decisions"], Value::from(decisions), "{name}: one row per decision");
        let changed = shown["changed"].as_array().unwrap();
        let own = changed
            .iter()
            .find(|row| row[0] == event_type.as_str() && row[1] == state_key.as_str());
        let own = own.unwrap_or_else(|| panic!("{name}: the event's key changed: {changed:?}"));
        assert_eq!(own[3], Value::from(id.clone()), "{name}: the state after holds the event");
        let selected = shown["selected"].as_str().unwrap_or("");
        assert!(selected.split(' ').any(|s| s == id), "{name}: its DAG node is selected");
        let server = trace.header.servers[1].clone();
        let shown = open(&chromium, &index, &format!("server={server}"), &dir.join("server.png"));
        assert_eq!(shown["server"], Value::from(server), "{name}");
        let t = trace.header.healed_ms.max(1);
        let shown = open(&chromium, &index, &format!("t={t}"), &dir.join("time.png"));
        assert_eq!(shown["time"], Value::from(t), "{name}");
    }
}

/// The last state event created in the trace that every decision accepted: (id, type,
/// state key, number of decisions about it).
fn state_event(trace: &Trace) -> (String, String, String, usize) {
    let mut decisions: std::collections::BTreeMap<&str, (usize, bool)> = Default::default();
    let mut created = Vec::new();
    for record in &trace.records {
        if let Body::Event { event_id: Some(id), decision, pdu, .. } = &record.body {
            let entry = decisions.entry(id).or_default();
            entry.0 += 1;
            entry.1 |= !matches!(decision, Decision::Created | Decision::Accepted);
            if let (Decision::Created, Some(pdu)) = (decision, pdu) {
                if let Some(Value::String(key)) = pdu.get("state_key") {
                    let kind = pdu.get("type").and_then(Value::as_str).unwrap_or("").to_owned();
                    created.push((id.to_string(), kind, key.clone()));
                }
            }
        }
    }
    let (id, kind, key) = created
        .into_iter()
        .rev()
        .find(|(id, ..)| !decisions[id.as_str()].1)
        .expect("an accepted state event");
    let count = decisions[id.as_str()].0;
    (id, kind, key, count)
}
