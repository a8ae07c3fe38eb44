//! Small deterministic helpers shared by every layer: integer ratios, virtual time, the
//! seeded pseudo-random generator and its stream names, the invariant ids, and FNV-1a.
//!
//! Architecture Invariant: depends on nothing in the crate; no clock, no OS randomness, no
//! floats in anything that decides.

mod fnv;
mod invariant;
mod prng;
mod ratio;
pub mod streams;
mod time;

pub use fnv::{Fnv1a, fnv1a64};
pub use invariant::Invariant;
pub use prng::Prng;
pub use ratio::Ratio;
pub use time::{Duration, EPOCH_MS, Instant};
