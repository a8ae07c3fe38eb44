//! The invariant checker: a pure fold over a trace to a verdict with witnesses
//! (DESIGN.md §5). It reads only the trace — never the world or a homeserver — so a trace
//! file can be re-checked offline with `mxsim check`.

use serde::{Deserialize, Serialize};

/// The invariant ids of DESIGN.md §5, as used in `summary.json`.
pub const INVARIANTS: &[&str] =
    &["integrity", "auth", "dag", "convergence", "liveness", "durability", "determinism"];

/// What a violation points at: the servers and events involved and the first trace record
/// where the violation became true.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    pub servers: Vec<String>,
    pub events: Vec<String>,
    /// 1-based line number in `trace.jsonl` (the header is line 1, so record `i` of
    /// `Trace::records` is line `i + 2`); `None` when the violation is about the end state
    /// as a whole.
    pub line: Option<u64>,
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// One of [`INVARIANTS`].
    pub invariant: String,
    pub message: String,
    pub witness: Witness,
}

/// The checker's result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Empty when every checked invariant holds.
    pub violations: Vec<Violation>,
    /// The invariants that were checked (the trace header's list).
    pub checked: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}
