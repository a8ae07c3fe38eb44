//! `mxsim report TRACE.jsonl --out DIR`: redraws a run's reports from its trace alone.
//!
//! The verdict and metrics come from `summary.json` next to the trace when there is one
//! (as `mxsim run` writes it); otherwise the page says that nothing was checked.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::cli::{CliError, Outcome};
use crate::report::{self, Options, RunInfo};
use crate::trace::Trace;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The trace to draw (`trace.jsonl` of a run).
    trace: PathBuf,
    /// Directory to write the report files into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Draw auth_events edges in the DAG as well.
    #[arg(long = "auth-edges")]
    auth_edges: bool,
    /// Collapse linear runs of at least N plain messages into one node (0: never).
    #[arg(long, value_name = "N", default_value_t = Options::default().collapse_run_min)]
    collapse: u32,
}

/// Files of a run that `index.html` links to when they exist in the output directory.
const SIBLINGS: &[&str] = &["summary.json", "trace.jsonl", "events.jsonl", "keys.json"];

pub fn run(args: &ReportArgs) -> Result<Outcome, CliError> {
    let (file, trace, trace_hash) = super::read_trace(&args.trace)?;
    // The verdict and metrics are recomputed from the trace alone (the same functions
    // `mxsim run` uses), so a report never depends on a summary that may be stale.
    let verdict = crate::check::check(&trace);
    let metrics = metrics_text(&trace);
    std::fs::create_dir_all(&args.out)
        .map_err(|e| CliError::input(format!("{}: cannot create: {e}", args.out.display())))?;
    let info = RunInfo {
        reproduce: format!(
            "mxsim run scenarios/{}.toml --seed {}",
            trace.header.scenario, trace.header.seed
        ),
        metrics,
        sibling_files: siblings(&args.out, &args.trace),
        // The file's own hash: the same as the trace's, without writing it out again.
        trace_hash: Some(trace_hash),
    };
    let options = Options { auth_edges: args.auth_edges, collapse_run_min: args.collapse };
    let files = report::render(&trace, &verdict, &info, &options)
        .map_err(|e| CliError { code: 2, message: format!("{file}: {e}") })?;
    for (name, bytes) in &files {
        let path = args.out.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| CliError::input(format!("{}: cannot write: {e}", path.display())))?;
    }
    let stdout = format!(
        "wrote {} files to {} (open {})\n",
        files.len(),
        args.out.display(),
        args.out.join(report::INDEX_HTML).display()
    );
    Ok(Outcome { stdout: stdout.into_bytes(), code: 0 })
}

/// The sibling files that exist in the output directory, or will because the trace
/// itself is there.
fn siblings(out: &Path, trace: &Path) -> Vec<String> {
    SIBLINGS
        .iter()
        .filter(|name| {
            out.join(name).is_file()
                || (trace.file_name().is_some_and(|f| f == **name)
                    && trace.parent().is_some_and(|p| same_dir(p, out)))
        })
        .map(|name| (*name).to_owned())
        .collect()
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The run's metrics as the page shows them.
pub fn metrics_text(trace: &Trace) -> Vec<(String, String)> {
    metrics_as_text(&crate::trace::metrics(trace))
}

/// [`crate::trace::metrics`] as the page shows them.
pub fn metrics_as_text(metrics: &[(&str, u64)]) -> Vec<(String, String)> {
    metrics.iter().map(|(name, value)| ((*name).to_owned(), value.to_string())).collect()
}
