//! `mxsim run SCENARIO.toml [--seed N] [--out DIR] [--check-determinism] [--quiet]`: run a
//! scenario with a seed, check its invariants, write the run's files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use clap::Args;
use serde_json::{Value, json};

use crate::check::{self, Verdict};
use crate::cli::{CliError, Outcome, read_file};
use crate::stdx::Invariant;
use crate::trace::{self, ActionFailure, Body, FinalView, Trace};
use crate::world;

mod spool;

use spool::{RemoveOnDrop, SpoolError, cannot_write, new_spool, spool, trace_from_spool};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The scenario file (docs/scenarios.md).
    pub scenario: PathBuf,
    /// The run's seed: the same seed gives the same trace, byte for byte.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the run's files (default `reports/<scenario>/seed-<N>/`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run twice and fail (invariant `determinism`) if the traces differ.
    #[arg(long)]
    pub check_determinism: bool,
    /// Print nothing on success.
    #[arg(long)]
    pub quiet: bool,
    /// Apply the seed's swarm configuration, as `mxsim sweep --swarm` did (docs/sweeps.md).
    #[arg(long)]
    pub swarm: bool,
}

/// The version recorded in traces and summaries.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn run(args: &RunArgs) -> Result<Outcome, CliError> {
    let text = read_file(&args.scenario, super::SCENARIO_BYTES_MAX, "a scenario file")?;
    let file = args.scenario.display().to_string();
    let text = String::from_utf8(text).map_err(|e| {
        CliError::input(format!("{file}: not UTF-8 (byte {})", e.utf8_error().valid_up_to()))
    })?;
    let job = crate::sweep::Job::new(&file, &text, args.swarm, VERSION)
        .map_err(|e| CliError::input(e.to_string()))?;
    let (scenario, plan) = job.plan(args.seed).map_err(|e| CliError::input(e.to_string()))?;

    // Wall time is reported, never recorded or decided on.
    let display = RunProgress::new(!args.quiet);
    let out = args.out.clone().unwrap_or_else(|| {
        Path::new("reports").join(&scenario.name).join(format!("seed-{}", args.seed))
    });
    std::fs::create_dir_all(&out)
        .map_err(|e| CliError::input(format!("{}: cannot create: {e}", out.display())))?;
    // The records go to a spool file as they happen, after the header the run expects,
    // and the spool becomes the trace file at the end (or the trace file is made from it
    // under the run's header, if that turned out otherwise): a big run's trace never waits
    // whole in memory, and the checks and reports read the kept records and the network
    // summary.
    let trace_path = out.join("trace.jsonl");
    let sink = display.sink();
    let (ran, wall_us) = super::timed(|| {
        spooled_run(&plan, Some(sink), &out.join("trace.jsonl.part"), &display, Some(&trace_path))
    });
    let (output, trace_hash) = ran.map_err(|e| e.in_file(&file))?;
    let wall_ms = wall_us / 1000;
    display.phase("checking the invariants");
    let mut verdict = check::check(&output.trace);
    if args.check_determinism {
        let part = out.join("trace.jsonl.again.part");
        let (_, again) =
            spooled_run(&plan, None, &part, &display, None).map_err(|e| e.in_file(&file))?;
        if let Some(violation) = check::check_determinism(&trace_hash, &again) {
            verdict.violations.push(violation);
        }
        if !verdict.checked.contains(&Invariant::Determinism) {
            verdict.checked.push(Invariant::Determinism);
        }
    }

    let repro = crate::sweep::reproduction(&file, args.seed, args.swarm);
    display.phase("writing the reports");
    let metrics = write_run(&out, &output, &trace_hash, &verdict, &repro)?;
    display.finish();

    let sim_ms = output.trace.header.end_ms;
    let mut stdout = String::new();
    let status = if verdict.passed() { "PASS" } else { "FAIL" };
    if !args.quiet || !verdict.passed() {
        let _ = writeln!(
            stdout,
            "{status} {} seed {}: {} events created, {} messages, {} s simulated in {} ms wall; trace {}",
            scenario.name,
            args.seed,
            metric(&metrics, "events_created"),
            metric(&metrics, "messages_sent"),
            sim_ms / 1000,
            wall_ms,
            &trace_hash[..16],
        );
        let _ = writeln!(stdout, "files in {}", out.display());
    }
    describe_violations(&verdict, &mut stdout);
    if !args.quiet || !verdict.passed() {
        describe_failed_actions(&output.trace, &mut stdout);
    }
    if !verdict.passed() {
        let _ = writeln!(stdout, "reproduce: {repro}");
    }
    // The process ends right after: freeing every kept record, event and state one
    // allocation at a time cost 0.8% of a 100-server run, and the operating system takes
    // the memory back at once. (Leaking the servers' stores as the simulation ends, before
    // the checks, saved about as much but raised the peak by a quarter, so they are
    // freed.)
    std::mem::forget(output);
    Ok(Outcome { stdout: stdout.into_bytes(), code: if verdict.passed() { 0 } else { 1 } })
}

/// Progress of one run on stderr, for runs long enough to need it: nothing in the first
/// [`PROGRESS_GRACE_MS`], then a bar on a terminal (virtual time reached of the run's end,
/// events, deliveries) or a plain line every [`PROGRESS_EVERY_MS`] otherwise.
///
/// The wall clock only decides when to print. It is read on a thread of its own: inside
/// the simulation madsim answers the process's clock calls with virtual time.
#[derive(Clone)]
struct RunProgress {
    inner: Option<Arc<Mutex<Display>>>,
    /// Wall milliseconds since the start, kept by the clock thread.
    wall_ms: Arc<AtomicU64>,
}

struct Display {
    /// Wall time of the last line.
    last_ms: u64,
    bar: Option<indicatif::ProgressBar>,
    /// Whether anything was shown (then the later phases are shown too).
    shown: bool,
    /// Stops the clock thread when the display goes.
    stop: Arc<AtomicBool>,
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Quiet time at the start: short runs (most scenarios, every test) print nothing.
const PROGRESS_GRACE_MS: u64 = 2_000;
/// Time between plain progress lines.
const PROGRESS_EVERY_MS: u64 = 3_000;

impl RunProgress {
    fn new(enabled: bool) -> RunProgress {
        let wall_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        if enabled {
            let (wall_ms, stop) = (Arc::clone(&wall_ms), Arc::clone(&stop));
            #[allow(clippy::disallowed_methods)]
            let started = std::time::Instant::now();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    wall_ms.store(ms, Ordering::Relaxed);
                }
            });
        }
        let display = Display { last_ms: 0, bar: None, shown: false, stop };
        RunProgress { inner: enabled.then(|| Arc::new(Mutex::new(display))), wall_ms }
    }

    /// The world's progress sink, feeding this display.
    fn sink(&self) -> world::ProgressSink {
        let this = self.clone();
        Box::new(move |progress: &world::Progress| this.update(progress))
    }

    fn update(&self, p: &world::Progress) {
        let wall = self.wall_ms.load(Ordering::Relaxed);
        if wall < PROGRESS_GRACE_MS {
            return;
        }
        let Some(inner) = &self.inner else { return };
        let Ok(mut d) = inner.lock() else { return };
        if d.shown && wall < d.last_ms + PROGRESS_EVERY_MS && d.bar.is_none() {
            return;
        }
        let counts = format!("{} events, {} deliveries", p.events, p.deliveries);
        if d.bar.is_none() && std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(p.end_ms / 1000);
            let style = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} s simulated  {elapsed}  {msg}",
            )
            .expect("the template is valid");
            bar.set_style(style);
            d.bar = Some(bar);
        }
        d.shown = true;
        if let Some(bar) = d.bar.clone() {
            if wall >= d.last_ms + 100 {
                d.last_ms = wall;
                bar.set_position(p.now_ms / 1000);
                bar.set_message(counts);
            }
            return;
        }
        d.last_ms = wall;
        super::write_stderr(&format!(
            "progress: {}.{} of {} s simulated ({}%), {counts}, {} s wall\n",
            p.now_ms / 1000,
            p.now_ms % 1000 / 100,
            p.end_ms / 1000,
            p.now_ms * 100 / p.end_ms.max(1),
            wall / 1000,
        ));
    }

    /// Says what the run does now, if progress was shown.
    fn phase(&self, what: &str) {
        let Some(inner) = &self.inner else { return };
        let Ok(mut d) = inner.lock() else { return };
        if let Some(bar) = d.bar.take() {
            bar.finish();
        }
        if d.shown {
            let wall = self.wall_ms.load(Ordering::Relaxed) / 1000;
            super::write_stderr(&format!("progress: {what} ({wall} s wall)\n"));
        }
    }

    fn finish(&self) {
        self.phase("done");
    }
}

/// Runs `plan` with its records spooled to `part` and makes the trace file from them
/// (`trace_path`; `None` only hashes it). Returns the output, whose trace is kept
/// ([`Trace::kept`]), and the trace hash. The spool is removed whatever happens (or
/// becomes the trace file).
fn spooled_run(
    plan: &world::Plan,
    progress: Option<world::ProgressSink>,
    part: &Path,
    display: &RunProgress,
    trace_path: Option<&Path>,
) -> Result<(world::RunOutput, String), SpoolError> {
    let file = std::fs::File::create(part).map_err(|e| cannot_write(part, e))?;
    let mut remove = RemoveOnDrop::new(part);
    let (output, spooled) = spool(plan, progress, file, part)?;
    display.phase("simulated; writing the trace");
    let hash = trace_from_spool(&output.trace, spooled, &mut remove, trace_path)?;
    Ok((output, hash))
}

/// One seed of a sweep, run as `mxsim run` runs it: the records spooled to a new file in
/// `spool_dir` (removed whatever happens) rather than held whole, so that a worker's memory
/// is its simulation's and the kept records'. `files(passed)` says whether the seed's files
/// are kept; they are written into `dir(scenario name)`, the trace made from the spool as
/// its hash is (hashed as it is written, read back only when the run's header turned out
/// other than it expected). Returns the run and its wall time in milliseconds (planning,
/// simulation, checks, and the trace hash with the trace file if it is kept).
pub(crate) fn sweep_seed(
    job: &crate::sweep::Job,
    seed: u64,
    spool_dir: &Path,
    dir: impl FnOnce(&str) -> PathBuf,
    files: impl Fn(bool) -> bool,
) -> Result<(crate::sweep::SeedRun, u64), CliError> {
    let in_file = |e: SpoolError| e.in_file(&job.file);
    let (part, file) = new_spool(spool_dir, seed).map_err(in_file)?;
    let mut remove = RemoveOnDrop::new(&part);
    let (ran, wall_us) = super::timed(|| {
        let (scenario, plan) = job.plan(seed).map_err(|e| CliError::input(e.to_string()))?;
        let (output, spooled) = spool(&plan, None, file, &part).map_err(in_file)?;
        let verdict = check::check(&output.trace);
        let kept = files(verdict.passed()).then(|| dir(&scenario.name));
        let trace_path = match &kept {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    CliError::input(format!("{}: cannot create: {e}", dir.display()))
                })?;
                Some(dir.join("trace.jsonl"))
            }
            None => None,
        };
        let trace_hash =
            trace_from_spool(&output.trace, spooled, &mut remove, trace_path.as_deref())
                .map_err(in_file)?;
        let run =
            crate::sweep::SeedRun { scenario, output, verdict, trace_hash, swarm: plan.swarm };
        Ok::<_, CliError>((run, kept))
    });
    let (run, kept) = ran?;
    if let Some(dir) = kept {
        let repro = crate::sweep::reproduction(&job.file, seed, job.swarm);
        write_run(&dir, &run.output, &run.trace_hash, &run.verdict, &repro)?;
    }
    Ok((run, wall_us / 1000))
}

/// Writes a run's files (`summary.json`, events, keys and reports) into `out`, where its
/// trace was made from the spool; returns the run's metrics ([`trace::metrics`]).
pub(crate) fn write_run(
    out: &Path,
    output: &world::RunOutput,
    trace_hash: &str,
    verdict: &Verdict,
    repro: &str,
) -> Result<Vec<(&'static str, u64)>, CliError> {
    // One pass over the trace for the metrics, which the summary and the page both show.
    let metrics = trace::metrics(&output.trace);
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("summary.json".into(), summary(&output.trace, trace_hash, verdict, &metrics)),
        ("events.jsonl".into(), events_jsonl(&output.events)),
        ("keys.json".into(), keys_json(&output.trace)),
    ];
    files.extend(report_files(&output.trace, verdict, repro, trace_hash, &metrics)?);
    write_files(out, &files)?;
    Ok(metrics)
}

/// Most failed actions listed on stdout (`summary.json` lists up to
/// [`FAILED_ACTIONS_MAX`]).
const FAILED_ACTIONS_SHOWN_MAX: usize = 20;
/// Most failed actions listed in `summary.json`.
pub const FAILED_ACTIONS_MAX: usize = 1_000;

/// The trace's `action_failed` records: (time, record).
fn failed_actions(trace: &Trace) -> impl Iterator<Item = (u64, &Body)> {
    trace
        .records
        .iter()
        .filter(|r| matches!(r.body, Body::ActionFailed { .. }))
        .map(|r| (r.t, &r.body))
}

/// Lists the run's failed actions with the scenario line of their step, so that a step
/// that did not do what the scenario meant is seen even when every invariant holds.
pub(super) fn describe_failed_actions(trace: &Trace, out: &mut String) {
    let count = failed_actions(trace).count();
    if count == 0 {
        return;
    }
    let _ = writeln!(out, "failed actions ({count}):");
    for (t, body) in failed_actions(trace).take(FAILED_ACTIONS_SHOWN_MAX) {
        let Body::ActionFailed(failure) = body else {
            continue;
        };
        let ActionFailure { server, action, reason, line, retry_at_ms, .. } = &**failure;
        let at = match line {
            Some(line) => format!("scenario line {line}"),
            None => "no step".to_owned(),
        };
        let retry = match retry_at_ms {
            Some(ms) => format!(" (tried again at {ms} ms)"),
            None => String::new(),
        };
        let _ = writeln!(out, "  {at}, {t} ms, {server}: {action}: {reason}{retry}");
    }
    if count > FAILED_ACTIONS_SHOWN_MAX {
        let more = count - FAILED_ACTIONS_SHOWN_MAX;
        let _ = writeln!(out, "  … and {more} more (trace.jsonl has them all)");
    }
}

fn metric(metrics: &[(&str, u64)], name: &str) -> u64 {
    metrics.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
}

pub(super) fn describe_violations(verdict: &Verdict, out: &mut String) {
    let not_listed = verdict.violations_not_listed.iter();
    for violation in &verdict.violations {
        let _ = write!(out, "  {}: {}", violation.invariant, violation.message);
        let witness = &violation.witness;
        if !witness.servers.is_empty() {
            let _ = write!(out, " [servers: {}]", check::first_of(&witness.servers, 10, ", "));
        }
        if !witness.events.is_empty() {
            let _ = write!(out, " [events: {}]", check::first_of(&witness.events, 5, ", "));
        }
        if let Some(line) = witness.line {
            let _ = write!(out, " [trace.jsonl line {line}]");
        }
        out.push('\n');
    }
    for (invariant, count) in not_listed {
        let _ = writeln!(out, "  {invariant}: {count} more violations not listed");
    }
}

/// The fields of `summary.json`, in the sorted order a JSON object of them is written in.
#[derive(serde::Serialize)]
struct Summary<'a> {
    checked: Value,
    failed_actions: Vec<Value>,
    metrics: serde_json::Map<String, Value>,
    mxsim_version: &'a str,
    scenario: &'a str,
    seed: u64,
    servers: BTreeMap<&'a str, ServerSummary<'a>>,
    trace_hash: &'a str,
    verdict: &'static str,
    violations: Value,
    violations_not_listed: Value,
}

/// A server's final record per room, in `summary.json`.
#[derive(Default, serde::Serialize)]
struct ServerSummary<'a> {
    rooms: BTreeMap<&'a str, RoomSummary<'a>>,
}

#[derive(serde::Serialize)]
struct RoomSummary<'a> {
    events: u64,
    forward_extremities: &'a [String],
    joined: bool,
    state: &'a trace::NestedState,
}

/// `summary.json` (DESIGN.md §4; docs/cli.md).
pub fn summary(
    trace: &Trace,
    trace_hash: &str,
    verdict: &Verdict,
    metrics: &[(&str, u64)],
) -> Vec<u8> {
    // Borrowed from the trace rather than copied into `Value`s: a thousand servers' final
    // states are a million entries.
    let mut servers: BTreeMap<&str, ServerSummary<'_>> = BTreeMap::new();
    for name in &trace.header.servers {
        servers.entry(name).or_default();
    }
    for record in &trace.records {
        if let Body::Final(view) = &record.body {
            let FinalView { server, room, joined, forward_extremities, state, events, .. } =
                &**view;
            let room_summary =
                RoomSummary { events: *events, forward_extremities, joined: *joined, state };
            servers.entry(server).or_default().rooms.insert(room, room_summary);
        }
    }
    let failed_actions: Vec<Value> = failed_actions(trace)
        .take(FAILED_ACTIONS_MAX)
        .map(|(t, body)| {
            let mut value = serde_json::to_value(body).expect("a record serializes");
            if let Value::Object(fields) = &mut value {
                fields.remove("type");
                fields.insert("t".into(), Value::from(t));
            }
            value
        })
        .collect();
    let metrics: serde_json::Map<String, Value> =
        metrics.iter().map(|(name, value)| ((*name).to_owned(), Value::from(*value))).collect();
    let summary = Summary {
        checked: json!(verdict.checked),
        failed_actions,
        metrics,
        mxsim_version: &trace.header.mxsim_version,
        scenario: &trace.header.scenario,
        seed: trace.header.seed,
        servers,
        trace_hash,
        verdict: if verdict.passed() { "pass" } else { "fail" },
        violations: json!(verdict.violations),
        violations_not_listed: json!(verdict.violations_not_listed),
    };
    let mut bytes = serde_json::to_vec_pretty(&summary).expect("a summary serializes");
    bytes.push(b'\n');
    bytes
}

fn events_jsonl(events: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        out.extend_from_slice(event);
        out.push(b'\n');
    }
    out
}

fn keys_json(trace: &Trace) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(&trace.header.keys).expect("keys serialize");
    bytes.push(b'\n');
    bytes
}

fn report_files(
    trace: &Trace,
    verdict: &Verdict,
    repro: &str,
    trace_hash: &str,
    metrics: &[(&str, u64)],
) -> Result<Vec<(String, Vec<u8>)>, CliError> {
    let info = crate::report::RunInfo {
        reproduce: repro.to_owned(),
        metrics: super::report::metrics_as_text(metrics),
        sibling_files: ["summary.json", "trace.jsonl", "events.jsonl", "keys.json"]
            .map(str::to_owned)
            .to_vec(),
        trace_hash: Some(trace_hash.to_owned()),
    };
    crate::report::render(trace, verdict, &info, &crate::report::Options::default())
        .map_err(|e| CliError { code: 2, message: format!("report: {e}") })
}

fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::input(format!("{}: cannot create: {e}", dir.display())))?;
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| CliError::input(format!("{}: cannot write: {e}", path.display())))?;
    }
    Ok(())
}
