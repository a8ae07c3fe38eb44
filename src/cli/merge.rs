//! `mxsim merge FILE… [--out FILE] [--junit FILE]` (docs/sweeps.md): join the results files
//! of the shards of one sweep.

use std::path::PathBuf;

use clap::Args;

use crate::cli::{CliError, Outcome, read_text, write};
use crate::sweep::results::{self, End};

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Results files of the shards of one sweep (`mxsim sweep --shard K/N --out FILE`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Write the merged results (one file, as one sweep would) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write JUnit XML here: one test case per seed.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

/// Largest sweep results file `mxsim merge` reads: 1 GiB (millions of result lines).
const RESULTS_BYTES_MAX: u64 = 1 << 30;

pub fn merge(args: &MergeArgs) -> Result<Outcome, CliError> {
    let mut files = Vec::new();
    for path in &args.files {
        let (name, text) = read_text(path, RESULTS_BYTES_MAX, "a sweep results file")?;
        let file = results::parse(&name, &text).map_err(|e| CliError::input(e.to_string()))?;
        files.push((name, file));
    }
    let (meta, merged) = results::merge(&files).map_err(|e| CliError::input(e.to_string()))?;
    if let Some(path) = &args.out {
        let mut text = results::line(&meta);
        for result in &merged {
            text.push_str(&results::line(result));
        }
        let count = merged.len() as u64;
        text.push_str(&results::line(&End {
            kind: "end".into(),
            seeds_run: count,
            seeds_planned: count,
            stopped: None,
        }));
        write(path, text.as_bytes())?;
    }
    if let Some(path) = &args.junit {
        write(path, results::junit(&meta, &merged).as_bytes())?;
    }
    let stdout = results::summary(&meta, &merged, merged.len() as u64, None);
    let code = if merged.iter().any(|r| !r.passed()) { 1 } else { 0 };
    Ok(Outcome { stdout: stdout.into_bytes(), code })
}
