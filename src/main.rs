//! The `mxsim` binary: everything lives in the library; see `mxsim::cli`.
//!
//! The binary allocates with mimalloc. A simulation allocates and frees many small, short
//! lived objects (JSON values, ids, transactions); with the system allocator, allocating
//! and freeing took about a fifth of a 100-server run's CPU time (`docs/performance.md`,
//! "The allocator, and short texts compared inline"). The library does not choose an
//! allocator: tests and embedders keep their own.

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc options, numbered as in the `mi_option_e` enum of the mimalloc v3 sources that
/// libmimalloc-sys 0.1.49 builds (`include/mimalloc.h`; the crate exports no constants
/// for them, so Cargo.toml pins that version).
mod mimalloc_option {
    /// Commit arena memory when it is reserved (default 2: where the OS overcommits).
    pub const ARENA_EAGER_COMMIT: i32 = 4;
    /// Milliseconds before freed memory is returned to the OS (default 1000).
    pub const PURGE_DELAY: i32 = 15;
}

/// Commits arena memory as it is used and returns freed memory after 10 ms (mimalloc v2's
/// default) instead of a second: with the defaults the peak resident memory of `mxsim
/// resolve` on a 16,000-event room was 2.5 times the system allocator's, with these 15%
/// more (and less in simulations). Returning memory at once (0 ms) kept a tenth
/// less, but refaulting the pages cost a simulation 4 to 6% more CPU time.
///
/// The first allocation reserves the arena that a run then lives in, and the Rust runtime
/// allocates before `main`; so on Linux this runs as an ELF initialiser, before the
/// runtime (mimalloc reads an option set this way as given, whether or not its own
/// initialiser ran first). Elsewhere it runs first thing in `main`, where only the purge
/// delay still takes effect.
extern "C" fn configure_allocator() {
    // SAFETY: plain setters of process-wide options, called once before any other thread
    // exists.
    unsafe {
        libmimalloc_sys::mi_option_set(mimalloc_option::ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(mimalloc_option::PURGE_DELAY, 10);
    }
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

fn main() -> ExitCode {
    #[cfg(not(target_os = "linux"))]
    configure_allocator();
    mxsim::cli::main()
}
