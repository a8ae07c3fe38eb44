//! What a run leaves behind in the process, counted by an allocator that tracks the bytes
//! in use. A test binary of its own: the count is the whole process's, so no other test may
//! allocate beside it.
//!
//! madsim does not free a dropped runtime's tasks and node closures; a run used to leave its
//! world with them (175 KB for a two-server scenario), which a sweep of a million seeds in
//! one process would keep. Now the world is taken out of their reach at the end
//! (`world::runtime::WorldCell`), and the supervisor kills the nodes before the runtime
//! ends, so that madsim drops their tasks too: a run leaves nothing behind but the
//! signatures its thread made, which the next run forgets as it begins
//! (`matrix/crypto/made.rs`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

struct Counting;

/// Bytes allocated and not yet freed.
static LIVE: AtomicI64 = AtomicI64::new(0);

fn size(layout: Layout) -> i64 {
    i64::try_from(layout.size()).expect("allocations fit i64")
}

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(size(layout), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(size(layout), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by this allocator with `layout`.
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        // A failed realloc leaves the old block as it was.
        if !moved.is_null() {
            let new_size = i64::try_from(new_size).expect("allocations fit i64");
            LIVE.fetch_add(new_size - size(layout), Ordering::Relaxed);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn runs_free_their_world() {
    let file = "scenarios/partition-heal.toml";
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let job = mxsim::sweep::Job::new(file, &text, false, "test").unwrap();
    let run = |seed| {
        let (_, plan) = job.plan(seed).unwrap();
        let output = mxsim::world::run(&plan).unwrap();
        assert!(!output.trace.records.is_empty(), "seed {seed} ran");
    };
    use mxsim::matrix::crypto::{forget_signatures_made, signatures_made_bytes};
    // The first run sets up what a process keeps once (thread-locals, lazy tables).
    run(1);
    let one_run = signatures_made_bytes();
    assert!(one_run > 0, "a run's servers sign its events");
    forget_signatures_made();
    let before = LIVE.load(Ordering::Relaxed);
    const RUNS: i64 = 20;
    for seed in 2..2 + RUNS as u64 {
        run(seed);
        // Each run forgets the last run's signatures: a thread keeps one run's.
        let held = signatures_made_bytes();
        assert!(held <= 2 * one_run, "{held} bytes of signatures kept after seed {seed}");
    }
    forget_signatures_made();
    let kept = (LIVE.load(Ordering::Relaxed) - before) / RUNS;
    // Each run of this scenario left 175 KB while the world stayed with madsim's tasks,
    // and 4.4 KB while madsim's tasks outlived the runtime.
    assert!(kept < 1_000, "each run leaves {kept} bytes behind");
}
