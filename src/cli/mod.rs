//! The `mxsim` command line.
//!
//! Architecture Invariant: the only module that touches files, standard streams, the
//! environment and the wall clock. Library modules return values and typed errors; this
//! module turns them into output and exit codes: 0 ok, 1 a violation or mismatch was found,
//! 2 bad usage or bad input (the message names the file or stream, the JSON path or
//! line:column, and the problem).
//!
//! `clap` is used here and nowhere else.

mod event;
mod report;
mod resolve;
mod resolve_input;
mod run;
mod sweep;

use std::fmt;
use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// An error that ends the command with a message and an exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    /// Bad usage or bad input (exit 2).
    pub fn input(message: impl Into<String>) -> CliError {
        CliError { code: 2, message: message.into() }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a successful command produced: text for stdout and the exit code (0, or 1 when
/// the command found a mismatch and said so on stdout).
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub code: u8,
}

#[derive(Parser, Debug)]
#[command(
    name = "mxsim",
    version,
    about = "Deterministic simulator and testbed for Matrix federation",
    long_about = "Deterministic simulator and testbed for Matrix federation.\n\n\
        Exit codes: 0 ok, 1 a violation or mismatch was found, 2 bad usage or bad input."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Work on one PDU: read it as JSON on stdin, write JSON on stdout.
    Event(event::EventArgs),
    /// Resolve state sets (state resolution v2 / v2.1); print the resolved state map.
    Resolve(resolve::ResolveArgs),
    /// Run a scenario with a seed: check its invariants and write the run's files.
    Run(run::RunArgs),
    /// Re-check a trace written by `mxsim run`, offline.
    Check(run::CheckArgs),
    /// Draw a run's reports (DAG, convergence, state resolution, index.html) from its trace.
    Report(report::ReportArgs),
    /// Run a scenario over a range of seeds, on every core; one JSON line per seed.
    Sweep(sweep::SweepArgs),
    /// Join the results files of the shards of one sweep.
    Merge(sweep::MergeArgs),
    /// Reduce a failing scenario and seed to a minimal scenario that still fails.
    Shrink(sweep::ShrinkArgs),
}

/// Runs the command line with the process's arguments and streams.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help and version to stdout with exit 0, usage errors to stderr
            // with exit 2 — the same contract as ours.
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Event(args) => read_stdin().and_then(|input| event::run(&args, &input)),
        Command::Resolve(args) => resolve::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Check(args) => run::check(&args),
        Command::Report(args) => report::run(&args),
        Command::Sweep(args) => sweep::sweep(&args),
        Command::Merge(args) => sweep::merge(&args),
        Command::Shrink(args) => sweep::shrink(&args),
    };
    match result {
        Ok(outcome) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(&outcome.stdout).and_then(|()| stdout.flush()).is_err() {
                return ExitCode::from(2);
            }
            ExitCode::from(outcome.code)
        }
        Err(error) => {
            eprintln!("mxsim: {error}");
            ExitCode::from(error.code)
        }
    }
}

fn read_stdin() -> Result<Vec<u8>, CliError> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| CliError::input(format!("stdin: cannot read: {e}")))?;
    Ok(input)
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path)
        .map_err(|e| CliError::input(format!("{}: cannot read: {e}", path.display())))
}
