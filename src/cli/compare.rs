//! `mxsim compare RUN_A RUN_B [--out DIR]`: two runs side by side (docs/linearized.md):
//! availability of sends, convergence after the heal, messages and bytes per event, state
//! resolutions, and each run's DAG. A run is a directory written by `mxsim run` or its
//! `trace.jsonl`.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::cli::{CliError, Outcome, write};
use crate::report::compare;
use crate::trace::Trace;

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The first run: a directory written by `mxsim run`, or its `trace.jsonl`.
    pub run_a: PathBuf,
    /// The second run.
    pub run_b: PathBuf,
    /// Also write `compare.md` and `compare.html` (the tables and both DAGs) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The trace of a run given as a directory or a file.
fn load(path: &Path) -> Result<(String, Trace), CliError> {
    let file = if path.is_dir() { path.join("trace.jsonl") } else { path.to_owned() };
    let (_, trace, _) = super::read_trace(&file)?;
    let label = trace.header.scenario.clone();
    Ok((label, trace))
}

pub fn compare(args: &CompareArgs) -> Result<Outcome, CliError> {
    let (label_a, trace_a) = load(&args.run_a)?;
    let (mut label_b, trace_b) = load(&args.run_b)?;
    if label_b == label_a {
        label_b.push_str(" (2)");
    }
    let (a, b) = (compare::figures(&trace_a), compare::figures(&trace_b));
    let runs = [(label_a.as_str(), &a), (label_b.as_str(), &b)];
    let mut text = compare::markdown(&runs);
    text.push('\n');
    text.push_str(&compare::markdown_details(&runs));
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)
            .map_err(|e| CliError::input(format!("{}: cannot create: {e}", out.display())))?;
        write(&out.join("compare.md"), text.as_bytes())?;
        let page = compare::html(&[(&label_a, &a, &trace_a), (&label_b, &b, &trace_b)]);
        write(&out.join("compare.html"), page.as_bytes())?;
    }
    Ok(Outcome { stdout: text.into_bytes(), code: 0 })
}
