//! The `mxsim-resolve` binary: `mxsim resolve` as a program of its own
//! (`mxsim::cli::resolve_main`).
//!
//! `mxsim resolve` hands over to this program when it lies beside `mxsim` (the two are
//! built and installed together), so that resolving maps only the resolver's machine code
//! instead of that of the simulator, the checker and the reports. It uses the system
//! allocator: on 1,000 conflicted events this program's peak resident memory was 4.6 to
//! 4.9 MB with it and 5.8 to 6.1 MB with mimalloc (whose arena the `mxsim` binary uses),
//! while mimalloc ran 14% fewer instructions from 10,000 conflicted events up, where both
//! are faster than the ruma-state-res program they are measured against
//! (docs/performance-history.md, "`mxsim resolve` in a program of its own").

fn main() -> std::process::ExitCode {
    mxsim::cli::resolve_main()
}
