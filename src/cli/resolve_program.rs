//! `mxsim resolve` run by a program of its own, `mxsim-resolve` (`src/bin/mxsim-resolve.rs`).
//!
//! The `mxsim` binary holds the simulator, the checker and the reports, and the kernel maps
//! machine code around every page the process reads, so resolving a small input from it
//! left four times the resolver's code resident (docs/performance.md, "`mxsim resolve` in
//! a program of its own"). When `mxsim-resolve` lies beside `mxsim` (the two are built and
//! installed together), `mxsim resolve ARGS` replaces its process with `mxsim-resolve ARGS`
//! before reading anything: same arguments, streams, exit codes and output.
//!
//! The handover is guarded both ways:
//! - `mxsim` names its build identifier (`trace::BUILD`, over the sources: build.rs) and
//!   its own path in the environment of the program it starts; a `mxsim-resolve` left from
//!   other sources (say, after `cargo build --bin mxsim`) hands the command back to that
//!   `mxsim`, which then runs it itself;
//! - `MXSIM_RESOLVE_IN_PROCESS=1` makes `mxsim resolve` run in its own process, and is what
//!   the hand-back sets.
//!
//! Only on Unix, where a process can be replaced; elsewhere `mxsim resolve` runs in its own
//! process.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

use crate::trace::BUILD;

/// Set (not empty): `mxsim resolve` runs in the `mxsim` process.
const IN_PROCESS: &str = "MXSIM_RESOLVE_IN_PROCESS";
/// The build identifier of the `mxsim` that handed over.
const CALLER_BUILD: &str = "MXSIM_RESOLVE_CALLER_BUILD";
/// The path of the `mxsim` that handed over.
const CALLER: &str = "MXSIM_RESOLVE_CALLER";
/// The program's file name.
const PROGRAM: &str = "mxsim-resolve";

/// In `mxsim`: if the command is `resolve` and `mxsim-resolve` lies beside this program,
/// replaces this process with it. Returns when the command is another, when the program
/// is not there or `MXSIM_RESOLVE_IN_PROCESS` is set, or when starting it failed: the
/// caller then runs the command itself.
pub(super) fn hand_over() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new("resolve")) {
        return;
    }
    if std::env::var_os(IN_PROCESS).is_some_and(|value| !value.is_empty()) {
        return;
    }
    let Ok(this) = std::env::current_exe() else { return };
    let program = this.with_file_name(format!("{PROGRAM}{}", std::env::consts::EXE_SUFFIX));
    if !program.is_file() {
        return;
    }
    // `exec` returns only when the program could not be started.
    let _ = Command::new(&program).args(args).env(CALLER_BUILD, BUILD).env(CALLER, &this).exec();
}

/// In `mxsim-resolve`: if a `mxsim` of other sources handed over, hands the command back
/// to it, to be run in its process. Returns when no `mxsim` handed over (the program was
/// started by hand), when the builds are the same, or when handing back failed (said on
/// stderr; the program then resolves all the same).
pub(super) fn hand_back_if_other_build() {
    let Some(build) = std::env::var_os(CALLER_BUILD) else { return };
    if build == OsStr::new(BUILD) {
        return;
    }
    let Some(caller) = std::env::var_os(CALLER) else {
        super::write_stderr(&format!(
            "{PROGRAM}: built from other sources ({BUILD}) than the mxsim that started it ({}), \
             which did not say where it is; resolving here\n",
            build.to_string_lossy()
        ));
        return;
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
         command back ({error}); resolving here\n",
        caller.to_string_lossy(),
        build.to_string_lossy()
    ));
}
