//! The `mxsim` binary: everything lives in the library; see `mxsim::cli`.
//!
//! The binary allocates with mimalloc. A simulation allocates and frees many small, short
//! lived objects (JSON values, ids, transactions); with the system allocator, allocating
//! and freeing took about a fifth of a 100-server run's CPU time
//! (`docs/performance-history.md`, "The allocator, and short texts compared inline"). The
//! library does not choose an allocator: tests and embedders keep their own.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: Mimalloc = Mimalloc;

/// mimalloc, asked for an alignment only when the layout needs more than every block has.
///
/// Every mimalloc block is aligned to a word at least (its size classes are whole words
/// and its pages start aligned), so a layout of that alignment or less takes the plain
/// calls. The `mimalloc` crate passes every layout's alignment to `mi_malloc_aligned`,
/// whose fast path costs more, and whose slow path (sizes over a kilobyte that are not a
/// power of two) over-allocates to align: together a twentieth of a 100-server run's
/// allocation instructions beyond the plain calls'.
struct Mimalloc;

/// The alignment of every mimalloc block.
const WORD: usize = std::mem::size_of::<usize>();

// SAFETY: the calls return blocks of at least the layout's size, aligned as the layout asks
// (a word by every block, more through the aligned calls), or null; `dealloc` and `realloc`
// are given only blocks these calls returned, which `mi_free` and `mi_realloc*` take.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        let block: *mut u8 = unsafe {
            if layout.align() <= WORD {
                libmimalloc_sys::mi_malloc(layout.size()).cast()
            } else {
                libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        };
        // A global allocator must not unwind: a misaligned block aborts debug builds.
        if cfg!(debug_assertions) && block.align_offset(layout.align()) != 0 {
            std::process::abort();
        }
        block
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if layout.align() <= WORD {
                libmimalloc_sys::mi_zalloc(layout.size()).cast()
            } else {
                libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: see the impl.
        unsafe { libmimalloc_sys::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if layout.align() <= WORD {
                libmimalloc_sys::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                libmimalloc_sys::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align())
                    .cast()
            }
        }
    }
}

/// mimalloc options, numbered as in the `mi_option_e` enum of the mimalloc v2 sources that
/// libmimalloc-sys 0.1.49 builds with its `v2` feature (`c_src/mimalloc/v2/include/
/// mimalloc.h`, where v3 numbers these three the same; the crate exports no constants for
/// them, so Cargo.toml pins that version).
///
/// v2 rather than the crate's default v3: with v2 a 100-server run took 1 to 3% less CPU
/// time, a 1,000-server run 2.5% less peak memory and about 1 to 3% more CPU time, and
/// `mxsim resolve` 0.3 to 1 MB more memory (`docs/performance-history.md`, "mimalloc
/// v2…").
mod mimalloc_option {
    /// Commit arena memory when it is reserved (default 2: where the OS overcommits).
    pub const ARENA_EAGER_COMMIT: i32 = 4;
    /// Milliseconds before freed memory is returned to the OS (default 10; v3's 1000).
    pub const PURGE_DELAY: i32 = 15;
    /// What mimalloc does as the process exits: 0 (the default) collects every heap and
    /// returns its free pages to the OS, 1 also destroys the heaps, and above 1 nothing
    /// (`_mi_auto_process_done` in `src/init.c` returns at once).
    pub const DESTROY_ON_EXIT: i32 = 22;
}

/// Commits arena memory as it is used and returns freed memory after 300 ms (v2's default
/// is 10, v3's a second). With v3's defaults the peak resident memory of `mxsim resolve` on
/// a 16,000-event room was 2.5 times the system allocator's, with eager commit off 15% more
/// (and less in simulations). The delay trades page faults for peak memory: a simulation
/// frees and allocates all the time, and memory returned to the OS is faulted in again when
/// a later allocation takes it. Returning it at once (0 ms) kept a tenth less but cost a
/// simulation 4 to 6% more CPU time. Against 10 ms, 300 ms took `big300`'s page faults from
/// 66,000 to 41,000 and `big100`'s CPU time 3 to 4% down, for a peak 9% higher at 100
/// servers, 15% at 300 and 6 to 9% at 1,000; a second, or no purging at all, saved little
/// more CPU time for a 27% higher peak at 1,000 servers (`docs/performance-history.md`,
/// "The allocator's purge delay"). These options are set in code, so mimalloc's environment
/// variables for them are not read.
///
/// And it leaves the heaps as they are when the process exits. By default mimalloc
/// collects every heap then, and returns the pages of all that was freed to the OS, which
/// takes them back anyway a moment later: about 1% of a 100-server run's CPU time
/// (`docs/performance-history.md`, "Nothing collected at exit…"). The library's runs free
/// what they hold either way (`tests/memory.rs`); this is only the process's last step.
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
        libmimalloc_sys::mi_option_set(mimalloc_option::PURGE_DELAY, 300);
        libmimalloc_sys::mi_option_set(mimalloc_option::DESTROY_ON_EXIT, 2);
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
