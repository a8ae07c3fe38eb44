//! `mxsim sweep` (docs/sweeps.md): the threads, files, environment, progress display and
//! wall clock around the deterministic `sweep` module.
//!
//! A sweep runs one simulation per seed on `--jobs` worker threads (default: every core);
//! each worker takes the next seed, runs it on its own madsim runtime (one simulation is
//! one thread) and hands the result line to the main thread, which writes it at once, so
//! that an interrupted sweep keeps every finished result. Ctrl-C and `--time-budget` stop
//! handing out seeds; the seeds already running finish and are kept.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;

use crate::cli::run::{VERSION, sweep_seed};
use crate::cli::{CliError, Outcome, read_text, write};
use crate::sweep::results::{self, End, Meta, SeedResult};
use crate::sweep::{Job, SeedRange, Shard};
use crate::trace;

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// The scenario file (docs/scenarios.md).
    pub scenario: PathBuf,
    /// Seeds to run: `A..B` (B excluded) or `A..=B` (B included).
    #[arg(long)]
    pub seeds: String,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Run one slice of the seeds: `K/N` (K from 0 to N-1), or `auto` to read it from
    /// `SLURM_ARRAY_TASK_ID` or `JOB_COMPLETION_INDEX` (docs/sweeps.md).
    #[arg(long)]
    pub shard: Option<String>,
    /// Per seed, switch fault types and workload features on or off (swarm testing).
    #[arg(long)]
    pub swarm: bool,
    /// Write one JSON line per seed here (docs/sweeps.md).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write JUnit XML here: one test case per seed.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Stop handing out seeds after this long (`90s`, `10m`, `2h`, `500ms`); finished
    /// results are kept.
    #[arg(long)]
    pub time_budget: Option<String>,
    /// Where failing seeds keep their trace and reports (`DIR/<scenario>/seed-<N>/`).
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// Keep the trace and reports of passing seeds too.
    #[arg(long)]
    pub keep_passing: bool,
}

/// The wall clock, for progress, time budgets and the `wall_ms` of result lines: reported
/// and used to stop handing out seeds, never recorded in a trace or decided on by a run.
#[allow(clippy::disallowed_methods)]
fn wall_now() -> Instant {
    Instant::now()
}

/// Set by Ctrl-C: stop handing out seeds.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Identifies the running executable: the first 16 hex digits of the SHA-256 of its bytes
/// (of no bytes if it cannot be read). Read a megabyte at a time: the executable is tens of
/// megabytes, which a sweep of small scenarios held for its whole run (63 MB peak for 200
/// seeds of a two-server scenario).
fn build_id() -> String {
    use std::io::BufRead as _;
    let hashed = std::env::current_exe().and_then(std::fs::File::open).and_then(|file| {
        let mut stream = crate::matrix::crypto::Sha256Stream::new();
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        loop {
            let chunk = reader.fill_buf()?;
            if chunk.is_empty() {
                return Ok(stream.finish_hex());
            }
            stream.update(chunk);
            let read = chunk.len();
            reader.consume(read);
        }
    });
    hashed.unwrap_or_else(|_| trace::hash_bytes(&[]))[..16].to_owned()
}

/// `90s`, `10m`, `2h`, `500ms`, or a number of seconds.
fn parse_duration(text: &str) -> Result<Duration, CliError> {
    let bad = || CliError::input(format!("--time-budget {text:?}: write e.g. 90s, 10m, 2h, 500ms"));
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let seconds = match &text[digits.len()..] {
        "ms" => return Ok(Duration::from_millis(number)),
        "" | "s" => number,
        "m" => number.checked_mul(60).ok_or_else(bad)?,
        "h" => number.checked_mul(3600).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(seconds))
}

/// The shard of `--shard`: `K/N`, or `auto` from the batch system's environment.
fn shard(arg: Option<&str>) -> Result<Shard, CliError> {
    let usage = |e: crate::sweep::SweepError| CliError::input(format!("--shard: {e}"));
    match arg {
        None => Ok(Shard::WHOLE),
        Some("auto") => {
            let var = |name: &str| -> Result<Option<u64>, CliError> {
                match std::env::var(name) {
                    Err(_) => Ok(None),
                    Ok(value) => value.trim().parse().map(Some).map_err(|_| {
                        CliError::input(format!("--shard auto: {name}={value:?} is not a number"))
                    }),
                }
            };
            if let Some(id) = var("SLURM_ARRAY_TASK_ID")? {
                // Slurm numbers array tasks as given to --array; shards count from the
                // array's first index.
                let min = var("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                let count = var("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                    CliError::input("--shard auto: SLURM_ARRAY_TASK_COUNT is not set")
                })?;
                return Shard::new(id.saturating_sub(min), count).map_err(usage);
            }
            if let Some(index) = var("JOB_COMPLETION_INDEX")? {
                let count = var("MXSIM_SHARD_COUNT")?.ok_or_else(|| {
                    CliError::input(
                        "--shard auto: JOB_COMPLETION_INDEX is set but MXSIM_SHARD_COUNT \
                         (the Job's completions) is not",
                    )
                })?;
                return Shard::new(index, count).map_err(usage);
            }
            Err(CliError::input(
                "--shard auto: neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set",
            ))
        }
        Some(text) => Shard::parse(text).map_err(usage),
    }
}

/// What a worker hands the main thread.
type Finished = Result<SeedResult, String>;

/// Progress shown while a sweep runs: a bar on a terminal, plain lines otherwise.
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines { last: Instant, started: Instant, total: u64 },
}

impl Progress {
    fn new(total: u64) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            let style = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} seeds  {per_sec}  ETA {eta}  {msg}",
            )
            .expect("the template is valid");
            bar.set_style(style);
            Progress::Bar(bar)
        } else {
            let now = wall_now();
            Progress::Lines { last: now, started: now, total }
        }
    }

    fn update(&mut self, done: u64, failed: u64) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(done);
                bar.set_message(format!("{failed} failed"));
            }
            Progress::Lines { last, started, total } => {
                if last.elapsed() < Duration::from_secs(10) && done < *total {
                    return;
                }
                *last = wall_now();
                let seconds = started.elapsed().as_secs_f64();
                let rate = if seconds > 0.0 { done as f64 / seconds } else { 0.0 };
                let eta = if rate > 0.0 { (*total - done) as f64 / rate } else { 0.0 };
                // Not `eprintln!`, which panics on a closed stderr (`2>&1 | head`).
                super::write_stderr(&format!(
                    "progress: {done}/{total} seeds, {failed} failed, {:.0} seeds/min, ETA {:.0} s\n",
                    rate * 60.0,
                    eta
                ));
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }
}

pub fn sweep(args: &SweepArgs) -> Result<Outcome, CliError> {
    let (file, text) = read_text(&args.scenario, super::SCENARIO_BYTES_MAX, "a scenario file")?;
    let job =
        Job::new(&file, &text, args.swarm, VERSION).map_err(|e| CliError::input(e.to_string()))?;
    let range =
        SeedRange::parse(&args.seeds).map_err(|e| CliError::input(format!("--seeds: {e}")))?;
    let shard = shard(args.shard.as_deref())?;
    let budget = args.time_budget.as_deref().map(parse_duration).transpose()?;
    let jobs = match args.jobs {
        Some(0) => return Err(CliError::input("--jobs: must be at least 1")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let seeds: Vec<u64> = shard.seeds(range).collect();
    let meta = Meta {
        kind: "sweep".into(),
        format: results::FORMAT.into(),
        scenario: job.scenario.name.clone(),
        scenario_file: file.clone(),
        scenario_sha256: trace::hash_bytes(text.as_bytes()),
        seeds: range.to_string(),
        shard: shard.to_string(),
        swarm: args.swarm,
        mxsim_version: VERSION.into(),
        build: build_id(),
    };
    let mut out = match &args.out {
        None => None,
        Some(path) => Some((create_results(path, &meta)?, path.as_path())),
    };
    // A second Ctrl-C ends the process at once. Setting the handler fails only if one is
    // already set, which a process running one command never does.
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });

    let (finished, stopped) = run_seeds(args, &job, &seeds, jobs, budget, &mut out)?;
    let end = End {
        kind: "end".into(),
        seeds_run: finished.len() as u64,
        seeds_planned: seeds.len() as u64,
        stopped: stopped.map(str::to_owned),
    };
    if let Some((handle, path)) = out.as_mut() {
        write_line(handle, path, &results::line(&end))?;
    }
    if let Some(path) = &args.junit {
        write(path, results::junit(&meta, &finished).as_bytes())?;
    }
    let mut stdout = results::summary(&meta, &finished, seeds.len() as u64, stopped);
    let failed = finished.iter().any(|r| !r.passed());
    if failed {
        stdout.push_str(&format!(
            "traces and reports of failing seeds: {}\n",
            args.reports.join(&meta.scenario).display()
        ));
    }
    let code = if failed {
        1
    } else if stopped == Some("interrupted") {
        130
    } else {
        0
    };
    Ok(Outcome { stdout: stdout.into_bytes(), code })
}

/// A results file with its `meta` line written.
fn create_results(path: &Path, meta: &Meta) -> Result<std::fs::File, CliError> {
    let mut handle = std::fs::File::create(path)
        .map_err(|e| CliError::input(format!("{}: cannot create: {e}", path.display())))?;
    write_line(&mut handle, path, &results::line(meta))?;
    Ok(handle)
}

/// Runs `seeds` on `jobs` worker threads, writing each result line to `out` as it comes,
/// until every seed is done, Ctrl-C or the time budget stops handing out seeds, or a seed
/// cannot run. Returns the results in the order they finished and why the sweep stopped
/// early, if it did.
fn run_seeds(
    args: &SweepArgs,
    job: &Job,
    seeds: &[u64],
    jobs: usize,
    budget: Option<Duration>,
    out: &mut Option<(std::fs::File, &Path)>,
) -> Result<(Vec<SeedResult>, Option<&'static str>), CliError> {
    let started = wall_now();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (sender, receiver) = mpsc::channel::<Finished>();
    let mut finished: Vec<SeedResult> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut progress = Progress::new(seeds.len() as u64);
    let mut stopped: Option<&str> = None;
    std::thread::scope(|scope| -> Result<(), CliError> {
        for _ in 0..jobs.min(seeds.len().max(1)) {
            let sender = sender.clone();
            let (next, stop) = (&next, &stop);
            let keep = |passed: bool| !passed || args.keep_passing;
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&seed) = seeds.get(i) else { break };
                    let result = run_one(job, seed, &args.reports, keep);
                    if sender.send(result).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        loop {
            match receiver.recv_timeout(Duration::from_millis(200)) {
                Ok(Ok(result)) => {
                    if let Some((handle, path)) = out.as_mut() {
                        write_line(handle, path, &results::line(&result))?;
                    }
                    finished.push(result);
                }
                Ok(Err(error)) => {
                    errors.push(error);
                    stop.store(true, Ordering::SeqCst);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            let failed = finished.iter().filter(|r| !r.passed()).count() as u64;
            progress.update(finished.len() as u64, failed);
            if stopped.is_none() && finished.len() < seeds.len() {
                if INTERRUPTED.load(Ordering::SeqCst) {
                    stopped = Some("interrupted");
                } else if budget.is_some_and(|b| started.elapsed() >= b) {
                    stopped = Some("time_budget");
                }
                if stopped.is_some() {
                    stop.store(true, Ordering::SeqCst);
                }
            }
        }
        Ok(())
    })?;
    progress.finish();
    if let Some(error) = errors.first() {
        return Err(CliError::input(error.clone()));
    }
    Ok((finished, stopped))
}

fn write_line(handle: &mut std::fs::File, path: &Path, line: &str) -> Result<(), CliError> {
    handle
        .write_all(line.as_bytes())
        .and_then(|()| handle.flush())
        .map_err(|e| CliError::input(format!("{}: cannot write: {e}", path.display())))
}

/// Runs one seed on this thread, keeping its files when `keep(passed)` says so.
///
/// The records go to a spool file in the system's temporary directory as they happen, as
/// in `mxsim run`: a sweep worker does not hold a whole trace (at 300 servers, a sweep's
/// peak was twice `mxsim run`'s).
fn run_one(job: &Job, seed: u64, reports: &Path, keep: impl Fn(bool) -> bool) -> Finished {
    let dir = |name: &str| reports.join(name).join(format!("seed-{seed}"));
    let (run, wall_ms) = sweep_seed(job, seed, &std::env::temp_dir(), dir, keep)
        .map_err(|e| format!("seed {seed}: {}", e.message))?;
    Ok(job.result(seed, &run, wall_ms))
}
