//! mxsim: a deterministic discrete-event simulator and testbed for Matrix federation.
//!
//! The modules are declared below in layer order, L0 to L5 (ARCHITECTURE.md, "Code map"):
//! a module uses only modules of lower layers, never one of its own layer or above, and
//! `tests/it/tidy.rs` enforces the allowed `use crate::…` edges. Read top to bottom, the
//! list is the pipeline: a scenario and a seed go through the simulator into a trace, which
//! the checker judges and the reports draw; sweeps run many seeds; the command line wraps
//! them all.

/// L0: integer ratios, virtual time and the seeded generator.
pub mod stdx;

/// L1: the pure protocol core: ids, canonical JSON, crypto, rooms, auth, state resolution.
pub mod matrix;
/// L1: the fault model and the simulated network, generic over the payload.
pub mod net;

/// L2: one homeserver as a sans-IO state machine.
pub mod homeserver;
/// L2: scenario files (TOML) → validated data; workloads expanded from a seed.
pub mod scenario;
/// L2: seeded synthetic rooms for differential tests and benchmarks.
pub mod synth;
/// L2: the recorded history of a run (JSONL) and its hash.
pub mod trace;

/// L3: the invariant checker, a pure fold over a trace.
pub mod check;
/// L3: the simulator: madsim nodes driving homeservers over the faulty network.
pub mod world;

/// L4: the DAG, convergence and state-resolution figures and the HTML page.
pub mod report;
/// L4: seed ranges, shards, swarm configurations, shard merging, shrinking.
pub mod sweep;

/// L5: the `mxsim` command line, the only module touching files, environment, wall clock.
pub mod cli;
