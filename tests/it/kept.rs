//! A spooled run (`world::run_spooled`, what `mxsim run` does) writes exactly the whole
//! trace's record lines, and its kept trace (network records summed, commits of servers
//! that never crash left out, the rest kept with their lines) gives the same verdict,
//! metrics and report files as the whole trace.
//! The network summary is checked against a plain fold that forgets nothing, written here
//! independently of `trace::net`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use mxsim::check;
use mxsim::report::{self, Options, RunInfo};
use mxsim::trace::{self, Body, NetFold, NetSummary, NodeChange, Record, Trace, net};
use mxsim::world::{self, from_scenario};

/// Scenarios whose networks lose, duplicate, hold and refuse messages (crashes, links
/// flapping, a lossy minute) and one plain partition.
const SCENARIOS: &[&str] = &["lossy-network", "crash-restart", "flapping-link", "partition-heal"];

fn plan(name: &str, seed: u64) -> world::Plan {
    let path = format!("scenarios/{name}.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let scenario = mxsim::scenario::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    from_scenario::plan(&scenario, seed, "test").unwrap()
}

/// What a spooled run handed its sink: the headers it expected, then the chunks of lines.
#[derive(Default)]
struct Sunk {
    headers: Vec<trace::Header>,
    chunks: Vec<Vec<u8>>,
}

struct Sink(Arc<Mutex<Sunk>>);

impl world::RecordSink for Sink {
    fn expect_header(&mut self, header: &trace::Header) {
        let mut sunk = self.0.lock().unwrap();
        assert!(sunk.chunks.is_empty(), "the header comes before the lines");
        sunk.headers.push(header.clone());
    }

    fn lines(&mut self, lines: &[u8]) {
        self.0.lock().unwrap().chunks.push(lines.to_vec());
    }
}

/// Runs `plan` spooled, returning the spooled lines, the output and how many chunks the
/// sink received. Each chunk must be whole lines, and every chunk but the last at least
/// [`world::SPOOL_CHUNK`] bytes. The header comes first, and is the run's own: these
/// scenarios create every room their steps create, and the run holds its lines back until
/// it has named them (far fewer than [`world::SPOOL_HOLD_MAX`] bytes).
fn spooled(plan: &world::Plan) -> (Vec<String>, world::RunOutput, usize) {
    let sunk: Arc<Mutex<Sunk>> = Arc::default();
    let output = world::run_spooled(plan, None, Box::new(Sink(Arc::clone(&sunk)))).unwrap();
    let Sunk { headers, chunks } = std::mem::take(&mut *sunk.lock().unwrap());
    let [expected] = &headers[..] else { panic!("{} headers expected", headers.len()) };
    assert!(!expected.check.expect.rooms.is_empty(), "the header names the rooms");
    assert!(*expected == output.trace.header, "the run expected another header");
    let mut lines = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        assert!(!chunk.is_empty(), "chunk {i} is empty");
        assert!(i + 1 == chunks.len() || chunk.len() >= world::SPOOL_CHUNK, "chunk {i} is short");
        let text = std::str::from_utf8(chunk).expect("UTF-8 lines");
        let text = text.strip_suffix('\n').unwrap_or_else(|| panic!("chunk {i} ends in a line"));
        lines.extend(text.split('\n').map(str::to_owned));
    }
    (lines, output, chunks.len())
}

/// The timeline's network marks as a fold that keeps every message it has seen: a
/// request's sender gets a mark when it is sent, when the first response to it arrives,
/// and when a copy of any message it sent is lost; a request line sent again to the same
/// destination while the previous attempt was never answered is a retry.
fn reference(trace: &Trace) -> NetSummary {
    let end = trace.header.end_ms;
    let mut summary = NetSummary { end_ms: end, ..NetSummary::default() };
    let mut messages: BTreeMap<u64, (String, bool, Option<u64>)> = BTreeMap::new();
    let mut attempts: BTreeMap<(String, String, String), (u64, u64)> = BTreeMap::new();
    let mut answered: BTreeMap<u64, bool> = BTreeMap::new();
    let mark = |summary: &mut NetSummary, server: &str, kind: usize, t: u64| {
        let marks = summary.marks.entry(server.to_owned()).or_default();
        *marks[kind].entry(net::column(t, end)).or_default() += 1;
    };
    for record in &trace.records {
        let t = record.t;
        match &record.body {
            Body::Send { msg, from, to, bytes, what, request } => {
                summary.sent += 1;
                summary.bytes += bytes;
                if what.starts_with("response") {
                    messages.insert(*msg, (from.as_str().to_owned(), false, *request));
                    continue;
                }
                messages.insert(*msg, (from.as_str().to_owned(), true, None));
                mark(&mut summary, from, net::SENT, t);
                let key =
                    (from.as_str().to_owned(), to.as_str().to_owned(), what.as_str().to_owned());
                if let Some(&(before, when)) = attempts.get(&key) {
                    if !answered.get(&before).copied().unwrap_or(false) {
                        mark(&mut summary, from, net::RETRY, t);
                        summary
                            .backoffs
                            .entry(from.as_str().to_owned())
                            .or_default()
                            .push((when, t));
                    }
                }
                attempts.insert(key, (*msg, t));
            }
            Body::Deliver { msg, .. } => {
                summary.delivered += 1;
                let Some((_, false, Some(request))) = messages.get(msg) else { continue };
                let request = *request;
                if answered.insert(request, true).is_none() {
                    if let Some((requester, _, _)) = messages.get(&request) {
                        let requester = requester.clone();
                        mark(&mut summary, &requester, net::ANSWERED, t);
                    }
                }
            }
            Body::Drop { msg, .. } | Body::DropDown { msg, .. } => {
                summary.lost += 1;
                if let Some((from, _, _)) = messages.get(msg) {
                    let from = from.clone();
                    mark(&mut summary, &from, net::LOST, t);
                }
            }
            Body::Duplicate { .. } => summary.duplicated += 1,
            Body::Corrupt { .. } => summary.corrupted += 1,
            _ => {}
        }
    }
    summary
}

fn render(trace: &Trace, verdict: &check::Verdict, hash: &str) -> Vec<(String, Vec<u8>)> {
    let info = RunInfo {
        reproduce: "mxsim run x.toml".into(),
        metrics: trace::metrics(trace)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_string()))
            .collect(),
        sibling_files: vec![],
        trace_hash: Some(hash.to_owned()),
    };
    report::render(trace, verdict, &info, &Options::default()).unwrap()
}

#[test]
fn a_spooled_run_writes_the_whole_trace_and_keeps_what_the_checks_and_reports_read() {
    let mut most_chunks = 0;
    for name in SCENARIOS {
        for seed in [1, 2] {
            let plan = plan(name, seed);
            let whole = world::run(&plan).unwrap().trace;
            let (lines, output, chunks) = spooled(&plan);
            most_chunks = most_chunks.max(chunks);
            let kept = output.trace;
            let at = format!("{name} seed {seed}");

            // The spool is the whole trace's record lines; with the header they make the
            // same file and hash.
            let expected: Vec<String> = whole.records.iter().map(Record::to_line).collect();
            assert!(lines == expected, "{at}: the spool differs from the whole trace");
            let mut spool = lines.join("\n").into_bytes();
            spool.push(b'\n');
            let mut file = Vec::new();
            let hash = trace::write_spooled(
                &kept.header,
                kept.record_count(),
                &mut spool.as_slice(),
                &mut file,
            )
            .unwrap();
            assert!(file == whole.to_jsonl(), "{at}: the assembled file differs");
            assert_eq!(hash, whole.hash(), "{at}");
            // Reading the file back kept gives the same kept trace and hash.
            let (read, read_hash) = Trace::read_kept(&mut file.as_slice()).unwrap();
            assert_eq!(read_hash, hash, "{at}");
            assert!(read == kept, "{at}: the kept trace read back differs from the run's");

            // The kept records are the others, each at its own line, but for the commits
            // of servers that never crash.
            let info = kept.kept.as_ref().expect("a spooled run's trace is kept");
            assert_eq!(info.total, whole.records.len() as u64, "{at}");
            let crashed: BTreeSet<&str> = whole
                .records
                .iter()
                .filter_map(|r| match &r.body {
                    Body::Node { server, change: NodeChange::Crash } => Some(server.as_str()),
                    _ => None,
                })
                .collect();
            let mut others = Vec::new();
            let mut others_lines = Vec::new();
            for (i, record) in whole.records.iter().enumerate() {
                if let Body::Commit { server, .. } = &record.body {
                    if !crashed.contains(server.as_str()) {
                        continue;
                    }
                }
                if !NetFold::takes(&record.body) {
                    others.push(record.clone());
                    others_lines.push(i as u64 + 2);
                }
            }
            if *name == "crash-restart" {
                assert!(!crashed.is_empty(), "{at}: nothing crashed");
                assert!(
                    others.iter().any(|r| matches!(r.body, Body::Commit { .. })),
                    "{at}: the crashing server's commits are kept"
                );
            }
            assert!(others.len() < whole.records.len(), "{at}: no network records");
            assert!(kept.records.to_vec() == others, "{at}: kept records differ");
            assert_eq!(info.lines, others_lines, "{at}");
            for (i, &line) in info.lines.iter().enumerate() {
                assert_eq!(kept.line_of(i), line);
                assert_eq!(kept.record_at_line(line), Some(&kept.records[i]));
            }

            // The summary is what a fold that forgets nothing gives.
            let reference = reference(&whole);
            assert!(reference.lost > 0 && reference.sent > 0, "{at}: the network lost nothing");
            assert!(info.net == reference, "{at}: network summary differs from the reference");
            assert!(*whole.net() == reference, "{at}: the whole trace's fold differs");

            // Same verdict (witness lines included), metrics and report files.
            let (a, b) = (check::check(&whole), check::check(&kept));
            assert_eq!(a.violations, b.violations, "{at}");
            assert_eq!(a.checked, b.checked, "{at}");
            assert_eq!(trace::metrics(&whole), trace::metrics(&kept), "{at}");
            let (files_a, files_b) = (render(&whole, &a, &hash), render(&kept, &b, &hash));
            assert_eq!(files_a.len(), files_b.len());
            for ((name_a, bytes_a), (name_b, bytes_b)) in files_a.iter().zip(&files_b) {
                assert_eq!(name_a, name_b);
                assert!(bytes_a == bytes_b, "{at}: report file {name_a} differs");
            }
        }
    }
    // Runs of these sizes hand their lines over in more than one chunk.
    assert!(most_chunks > 1, "every run fit in one chunk ({most_chunks})");
}

#[test]
fn the_network_fold_forgets_messages_once_they_are_settled() {
    let whole = world::run(&plan("lossy-network", 1)).unwrap().trace;
    let mut fold = NetFold::new(whole.header.end_ms);
    let mut most = 0;
    for record in &whole.records {
        fold.push(record);
        most = most.max(fold.held());
    }
    let sent = fold.finish().sent;
    // A fold that kept every message would hold `sent` of them at the end.
    assert!(most * 5 < sent as usize, "held {most} of {sent} messages at most");
}

#[test]
fn a_drop_down_after_its_delivery_is_a_lost_copy_of_the_sender() {
    let send = |msg, from: &str, to: &str, what: &str, request| Body::Send {
        msg,
        from: from.into(),
        to: to.into(),
        bytes: 10,
        what: what.into(),
        request,
    };
    let records = [
        (0, send(0, "hs1", "hs2", "PUT /send/1", None)),
        (10, Body::Deliver { msg: 0, copy: 0 }),
        (10, Body::DropDown { msg: 0, copy: 0, server: "hs2".into() }),
        // Sent again while unanswered: a retry with its back-off.
        (500, send(1, "hs1", "hs2", "PUT /send/1", None)),
        (510, Body::Duplicate { msg: 1 }),
        (520, Body::Deliver { msg: 1, copy: 0 }),
        (521, Body::Deliver { msg: 1, copy: 1 }),
        (530, send(2, "hs2", "hs1", "response 200", Some(1))),
        (531, send(3, "hs2", "hs1", "response 200", Some(1))),
        (540, Body::Deliver { msg: 2, copy: 0 }),
        (541, Body::Deliver { msg: 3, copy: 0 }),
        // Answered: the same line again is no retry.
        (900, send(4, "hs1", "hs2", "PUT /send/1", None)),
        (905, Body::Drop { msg: 4, copy: 0, reason: trace::DropReason::Loss }),
    ];
    let mut fold = NetFold::new(1000);
    for (t, body) in records {
        fold.push(&Record { t, body });
    }
    assert_eq!(fold.held(), 0, "every request was answered or lost with all its copies");
    let summary = fold.finish();
    let col = |t| net::column(t, 1000);
    let hs1 = &summary.marks["hs1"];
    assert_eq!(hs1[net::SENT], BTreeMap::from([(col(0), 1), (col(500), 1), (col(900), 1)]));
    assert_eq!(hs1[net::RETRY], BTreeMap::from([(col(500), 1)]));
    assert_eq!(hs1[net::ANSWERED], BTreeMap::from([(col(540), 1)]), "answered once");
    assert_eq!(hs1[net::LOST], BTreeMap::from([(col(10), 1), (col(905), 1)]));
    assert_eq!(summary.backoffs["hs1"], vec![(0, 500)]);
    assert!(!summary.marks.contains_key("hs2"), "responses are no requests: {summary:?}");
    assert_eq!((summary.sent, summary.delivered, summary.lost, summary.duplicated), (5, 5, 2, 1));
}
