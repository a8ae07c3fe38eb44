//! Small deterministic helpers shared by every layer: integer ratios, virtual time, the
//! seeded pseudo-random generator and its stream names, the invariant ids, FNV-1a,
//! integers in decimal, and lists in blocks that are never moved.
//!
//! Architecture Invariant: depends on nothing in the crate; no clock, no OS randomness, no
//! floats in anything that decides.

mod blocks;
mod decimal;
mod fnv;
mod invariant;
mod prng;
mod ratio;
pub mod streams;
mod time;

pub use blocks::Blocks;
pub use decimal::{decimal, push_decimal, push_status};
pub use fnv::{Fnv1a, fnv1a64};
pub use invariant::Invariant;
pub use prng::Prng;
pub use ratio::Ratio;
pub use time::{Duration, EPOCH_MS, Instant};
