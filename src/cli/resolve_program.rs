//! `mxsim resolve` run by a program of its own, `mxsim-resolve` (`src/bin/mxsim-resolve.rs`).
//!
//! The `mxsim` binary holds the simulator, the checker and the reports, and the kernel maps
//! machine code around every page the process reads, so resolving a small input from it
//! left about three times the resolver's code resident: 3.7 MB against 1.2 MB
//! (docs/performance-history.md, "`mxsim resolve` in a program of its own"). When
//! `mxsim-resolve` lies beside `mxsim` (the two are built and installed together), `mxsim
//! resolve ARGS` replaces its process with `mxsim-resolve ARGS` before reading anything:
//! same arguments, streams, exit codes and output.
//!
//! The handover is guarded both ways:
//! - `mxsim` names its build identifier (`trace::BUILD`, over the sources: build.rs) and
//!   its own path in the environment of the program it starts; a `mxsim-resolve` left from
//!   other sources (say, after `cargo build --bin mxsim`) hands the command back to that
//!   `mxsim`, which then runs it itself;
//! - `MXSIM_RESOLVE_IN_PROCESS` set to any value but the empty one makes `mxsim resolve` run
//!   in its own process, and is what the hand-back sets;
//! - a program that cannot be started (`exec` fails) is said on stderr, and the command
//!   runs in a new process of the program that tried (see [`after_failed_exec`]).
//!
//! Only on Unix, where a process can be replaced; elsewhere `mxsim resolve` runs in its own
//! process.

use std::ffi::OsStr;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Command, ExitCode};

use crate::trace::BUILD;

/// Set to any value but the empty one: `mxsim resolve` runs in the `mxsim` process.
const IN_PROCESS: &str = "MXSIM_RESOLVE_IN_PROCESS";
/// The build identifier of the `mxsim` that handed over.
const CALLER_BUILD: &str = "MXSIM_RESOLVE_CALLER_BUILD";
/// The path of the `mxsim` that handed over.
const CALLER: &str = "MXSIM_RESOLVE_CALLER";
/// The program's file name.
const PROGRAM: &str = "mxsim-resolve";

/// What a handover leaves to the process that tried it.
pub(super) enum Handover {
    /// Nothing was handed over: run the command here.
    Stay,
    /// The command ran in a new process, after an `exec` that failed; end with its code.
    Ran(ExitCode),
}

/// In `mxsim`: if the command is `resolve` and `mxsim-resolve` lies beside this program,
/// replaces this process with it. `Stay` when the command is another, when the program is
/// not there or `MXSIM_RESOLVE_IN_PROCESS` is set.
pub(super) fn hand_over() -> Handover {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new("resolve")) {
        return Handover::Stay;
    }
    if std::env::var_os(IN_PROCESS).is_some_and(|value| !value.is_empty()) {
        return Handover::Stay;
    }
    let Ok(this) = std::env::current_exe() else { return Handover::Stay };
    let program = this.with_file_name(format!("{PROGRAM}{}", std::env::consts::EXE_SUFFIX));
    if !program.is_file() {
        return Handover::Stay;
    }
    // `exec` returns only when the program could not be started (not executable, not a
    // program for this machine).
    let error =
        Command::new(&program).args(args).env(CALLER_BUILD, BUILD).env(CALLER, &this).exec();
    super::write_stderr(&format!(
        "mxsim: cannot start {} ({error}); resolving in a new mxsim process\n",
        program.display()
    ));
    Handover::Ran(after_failed_exec(
        Command::new(&this).args(std::env::args_os().skip(1)).env(IN_PROCESS, "1"),
    ))
}

/// In `mxsim-resolve`: if a `mxsim` of other sources handed over, hands the command back
/// to it, to be run in its process. `Stay` when no `mxsim` handed over (the program was
/// started by hand), when the builds are the same, or when the `mxsim` did not say where
/// it is (said on stderr: the program then resolves all the same).
pub(super) fn hand_back_if_other_build() -> Handover {
    let Some(build) = std::env::var_os(CALLER_BUILD) else { return Handover::Stay };
    if build == OsStr::new(BUILD) {
        return Handover::Stay;
    }
    let Some(caller) = std::env::var_os(CALLER) else {
        super::write_stderr(&format!(
            "{PROGRAM}: built from other sources ({BUILD}) than the mxsim that started it ({}), \
             which did not say where it is; resolving here\n",
            build.to_string_lossy()
        ));
        return Handover::Stay;
    };
    let error = Command::new(&caller)
        .arg("resolve")
        .args(std::env::args_os().skip(1))
        .env(IN_PROCESS, "1")
        .env_remove(CALLER_BUILD)
        .env_remove(CALLER)
        .exec();
    super::write_stderr(&format!(
        "{PROGRAM}: built from other sources ({BUILD}) than {} ({}), which could not take the \
         command back ({error}); resolving in a new {PROGRAM} process\n",
        caller.to_string_lossy(),
        build.to_string_lossy()
    ));
    let Ok(this) = std::env::current_exe() else {
        // Nowhere to start afresh: resolve here, where a closed stdout now ends the
        // process by SIGPIPE (see `after_failed_exec`).
        return Handover::Stay;
    };
    Handover::Ran(after_failed_exec(
        Command::new(this)
            .args(std::env::args_os().skip(1))
            .env_remove(CALLER_BUILD)
            .env_remove(CALLER),
    ))
}

/// Runs `command`, a new process that will run the command, and gives its exit code.
///
/// Why not run the command here: `exec` sets SIGPIPE back to its default disposition for
/// the program it starts, and leaves it so when that fails; a process that then wrote to a
/// closed pipe would be killed by the signal instead of ending quietly with its own exit
/// code (docs/cli.md). A new Rust program ignores SIGPIPE again, as this one did.
fn after_failed_exec(command: &mut Command) -> ExitCode {
    match command.status() {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
            // As a shell reports a command ended by a signal.
            (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(2)),
            (None, None) => ExitCode::from(2),
        },
        Err(error) => {
            super::write_stderr(&format!(
                "mxsim: cannot start {} ({error})\n",
                command.get_program().to_string_lossy()
            ));
            ExitCode::from(2)
        }
    }
}
