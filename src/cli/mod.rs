//! The `mxsim` command line.
//!
//! Architecture Invariant: the only module that touches files, standard streams, the
//! environment and the wall clock. Library modules return values and typed errors; this
//! module turns them into output and exit codes: 0 ok, 1 a violation or mismatch was found,
//! 2 bad usage or bad input (the message names the file or stream, the JSON path or
//! line:column, and the problem).
//!
//! `clap` is used here and nowhere else.
//!
//! One file per command: `event`, `resolve` (its input file read by `resolve_input`, and
//! on Unix run by a program of its own where that is installed: `resolve_program`),
//! `run`, `check`, `report`, `sweep`, `merge`, `shrink`, `compare`. This file holds what they share:
//! the exit-code contract, bounded reading of files and stdin, and the wall-clock timer.

mod check;
mod compare;
mod event;
mod merge;
mod report;
mod resolve;
mod resolve_input;
#[cfg(unix)]
mod resolve_program;
mod run;
mod shrink;
mod sweep;

use std::fmt;
use std::io::{Read as _, Write as _};
use std::path::Path;
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
    #[command(about = RESOLVE_ABOUT)]
    Resolve(resolve::ResolveArgs),
    /// Run a scenario with a seed: check its invariants and write the run's files.
    Run(run::RunArgs),
    /// Re-check a trace written by `mxsim run`, offline.
    Check(check::CheckArgs),
    /// Draw a run's reports (DAG, convergence, state resolution, index.html) from its trace.
    Report(report::ReportArgs),
    /// Run a scenario over a range of seeds, on every core; one JSON line per seed.
    Sweep(sweep::SweepArgs),
    /// Join the results files of the shards of one sweep.
    Merge(merge::MergeArgs),
    /// Reduce a failing scenario and seed to a minimal scenario that still fails.
    Shrink(shrink::ShrinkArgs),
    /// Compare two runs (say a DAG room and a Linearized Matrix room under the same
    /// faults): availability, convergence, messages per event, resolutions, both DAGs.
    Compare(compare::CompareArgs),
}

/// What `mxsim resolve` does, in `mxsim help` and in its own help.
const RESOLVE_ABOUT: &str =
    "Resolve state sets (state resolution v2 / v2.1); print the resolved state map";

/// `mxsim resolve`'s arguments alone, for `mxsim-resolve` ([`resolve_main`]).
#[derive(Parser, Debug)]
#[command(name = "mxsim resolve", bin_name = "mxsim resolve", about = RESOLVE_ABOUT)]
struct ResolveCli {
    #[command(flatten)]
    args: resolve::ResolveArgs,
}

/// Runs the command line with the process's arguments and streams.
pub fn main() -> ExitCode {
    #[cfg(unix)]
    if let resolve_program::Handover::Ran(code) = resolve_program::hand_over() {
        return code;
    }
    let cli = match parse::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Event(args) => {
            read_stdin(PDU_BYTES_MAX, "a PDU").and_then(|input| event::run(&args, &input))
        }
        Command::Resolve(args) => resolve::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Check(args) => check::check(&args),
        Command::Report(args) => report::run(&args),
        Command::Sweep(args) => sweep::sweep(&args),
        Command::Merge(args) => merge::merge(&args),
        Command::Shrink(args) => shrink::shrink(&args),
        Command::Compare(args) => compare::compare(&args),
    };
    finish(result)
}

/// `mxsim resolve` with the process's arguments after the program's name: the
/// `mxsim-resolve` program (`resolve_program`).
pub fn resolve_main() -> ExitCode {
    #[cfg(unix)]
    if let resolve_program::Handover::Ran(code) = resolve_program::hand_back_if_other_build() {
        return code;
    }
    match parse::<ResolveCli>() {
        Ok(cli) => finish(resolve::run(&cli.args)),
        Err(code) => code,
    }
}

/// The process's arguments as `P`, or the exit code of clap's answer, printed: help and
/// version on stdout with exit 0, usage errors on stderr with exit 2 (our contract too).
fn parse<P: Parser>() -> Result<P, ExitCode> {
    P::try_parse().map_err(|error| {
        let _ = error.print();
        ExitCode::from(if error.use_stderr() { 2 } else { 0 })
    })
}

/// Prints a command's outcome or error and gives its exit code.
fn finish(result: Result<Outcome, CliError>) -> ExitCode {
    match result {
        Ok(outcome) => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&outcome.stdout).and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::from(outcome.code),
                // The reader stopped reading (`| head`): nothing more to say to anyone.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    ExitCode::from(outcome.code)
                }
                Err(e) => {
                    write_stderr(&format!("mxsim: stdout: cannot write: {e}\n"));
                    ExitCode::from(2)
                }
            }
        }
        Err(error) => {
            write_stderr(&format!("mxsim: {error}\n"));
            ExitCode::from(error.code)
        }
    }
}

/// Writes to stderr, ignoring failure: a closed stderr (`2>&1 | head`) must not turn a
/// command into a panic (`eprint!` panics when the write fails), and there is nowhere
/// left to report it.
pub(crate) fn write_stderr(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes()).and_then(|()| stderr.flush());
}

/// Largest input of `mxsim event` (stdin): a PDU is at most 65,536 bytes (spec: "the
/// complete event MUST NOT be larger than 65536 bytes").
pub const PDU_BYTES_MAX: u64 = 65_536;
/// Largest scenario file: 16 MiB, room for the 100,000 steps a scenario may hold.
pub const SCENARIO_BYTES_MAX: u64 = 16 << 20;
/// Largest trace (`mxsim check`, `mxsim report`, `mxsim compare`): 64 GiB. Traces are
/// read a line at a time into a kept trace ([`read_trace`]), so the memory a trace takes
/// is that of the records the checks and reports read one by one, about a fifth of its
/// lines in a big run.
pub const TRACE_BYTES_MAX: u64 = 64 << 30;
/// Largest `mxsim resolve` input: 1 GiB (about a million events of 1 KB).
pub const RESOLVE_BYTES_MAX: u64 = 1 << 30;
/// Largest keys file (`mxsim event verify --keys`): 16 MiB, far more than the keys of
/// the 10,000 servers a run may have.
pub const KEYS_BYTES_MAX: u64 = 16 << 20;

/// Reads at most `limit` bytes from `reader`; more is refused naming the limit, without
/// reading past it (so `/dev/zero` ends promptly, in bounded memory).
fn read_limited(
    reader: impl std::io::Read,
    name: &str,
    limit: u64,
    what: &str,
    capacity: usize,
) -> Result<Vec<u8>, CliError> {
    let mut input = Vec::with_capacity(capacity);
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut input)
        .map_err(|e| CliError::input(format!("{name}: cannot read: {e}")))?;
    if u64::try_from(input.len()).unwrap_or(u64::MAX) > limit {
        return Err(too_large(name, limit, what));
    }
    Ok(input)
}

fn too_large(name: &str, limit: u64, what: &str) -> CliError {
    CliError::input(format!("{name}: more than {limit} bytes, the limit for {what}"))
}

fn read_stdin(limit: u64, what: &str) -> Result<Vec<u8>, CliError> {
    read_limited(std::io::stdin().lock(), "stdin", limit, what, 0)
}

/// Reads a whole file of at most `limit` bytes (`what` names the kind of input in the
/// refusal), naming the file in every error.
pub(crate) fn read_file(
    path: &std::path::Path,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, CliError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path)
        .map_err(|e| CliError::input(format!("{name}: cannot read: {e}")))?;
    // A regular file's size is known: refuse it before reading anything, and read it into
    // a buffer of its size (growing one by doubling held up to twice the file at once).
    let mut capacity = 0;
    if let Some(metadata) = file.metadata().ok().filter(std::fs::Metadata::is_file) {
        if metadata.len() > limit {
            return Err(too_large(&name, limit, what));
        }
        // One byte more, so that reading to the end needs no second allocation.
        capacity = usize::try_from(metadata.len()).map_or(0, |len| len.saturating_add(1));
    }
    read_limited(file, &name, limit, what, capacity)
}

/// Reads a trace file a line at a time into a kept trace (`Trace::read_kept`), naming
/// the file in every error; returns the file's name for messages, the trace and its hash.
pub(crate) fn read_trace(
    path: &std::path::Path,
) -> Result<(String, crate::trace::Trace, String), CliError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path)
        .map_err(|e| CliError::input(format!("{name}: cannot read: {e}")))?;
    if let Ok(metadata) = file.metadata() {
        if metadata.is_file() && metadata.len() > TRACE_BYTES_MAX {
            return Err(too_large(&name, TRACE_BYTES_MAX, "a trace"));
        }
    }
    // Past the limit, a stream that is no regular file reads as cut short (incomplete).
    let limited = file.take(TRACE_BYTES_MAX);
    let mut reader = std::io::BufReader::with_capacity(1 << 20, limited);
    let (trace, hash) = crate::trace::Trace::read_kept(&mut reader)
        .map_err(|e| CliError::input(format!("{name}: {e}")))?;
    Ok((name, trace, hash))
}

/// Reads a whole UTF-8 file (see [`read_file`]); returns its name for messages and its text.
pub(crate) fn read_text(path: &Path, limit: u64, what: &str) -> Result<(String, String), CliError> {
    let file = path.display().to_string();
    let bytes = read_file(path, limit, what)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        CliError::input(format!("{file}: not UTF-8 (byte {})", e.utf8_error().valid_up_to()))
    })?;
    Ok((file, text))
}

/// Writes a whole file, naming it in the error.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes)
        .map_err(|e| CliError::input(format!("{}: cannot write: {e}", path.display())))
}

/// Runs `f` and measures its wall-clock time in microseconds. Timing is reporting only:
/// nothing decides on it.
#[allow(clippy::disallowed_methods)]
pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let start = std::time::Instant::now();
    let value = f();
    let elapsed = start.elapsed().as_micros();
    (value, u64::try_from(elapsed).unwrap_or(u64::MAX))
}
