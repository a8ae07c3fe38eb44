//! mxsim: a deterministic discrete-event simulator and testbed for Matrix federation.
//!
//! The crate is layered (see ARCHITECTURE.md); arrows point down only, and
//! `tests/it/tidy.rs` enforces the allowed `use crate::…` edges:
//!
//! - L0 [`stdx`]: integer ratios, virtual time, the seeded generator.
//! - L1 [`matrix`]: the pure protocol core.
//! - L1 [`net`]: the fault model and the simulated network, generic over the payload.
//! - L1 [`invariant`]: the invariant ids shared by scenario files, traces and verdicts.
//! - L2 [`homeserver`]: one homeserver as a sans-IO state machine.
//! - L2 [`synth`]: seeded synthetic rooms for differential tests and benchmarks.
//! - L2 [`scenario`]: scenario files (TOML) → validated data; workloads expanded from a
//!   seed.
//! - L2 [`trace`]: the recorded history of a run (JSONL) and its hash.
//! - L3 [`world`]: the simulator: madsim nodes driving homeservers over the faulty network.
//! - L3 [`check`]: the invariant checker, a pure fold over a trace.
//! - L4 [`report`]: the DAG, convergence and state-resolution figures and the HTML page.
//! - L4 [`sweep`]: seed ranges, shards, swarm configurations, shard merging, shrinking.
//! - L5 [`cli`]: the `mxsim` command line, the only module touching files, the environment
//!   and the wall clock.

pub mod check;
pub mod cli;
pub mod homeserver;
pub mod invariant;
pub mod matrix;
pub mod net;
pub mod report;
pub mod scenario;
pub mod stdx;
pub mod sweep;
pub mod synth;
pub mod trace;
pub mod world;
