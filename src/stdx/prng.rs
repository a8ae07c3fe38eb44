//! The seeded pseudo-random generator: ChaCha8 (from `rand_chacha`), a fixed, named
//! algorithm, so the same seed gives the same stream on every machine and build.
//!
//! Streams are forked by name: `root.fork("server/hs1")` gives a generator that depends
//! only on the root seed and the name, not on how much the root has been used, so adding a
//! subsystem does not shift every other stream.

use rand::{Rng as _, RngCore as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use crate::stdx::{Ratio, fnv1a64};

/// A deterministic generator. Never seeded from the OS.
#[derive(Clone, Debug)]
pub struct Prng {
    seed: [u8; 32],
    rng: ChaCha8Rng,
}

impl Prng {
    /// The root generator of a run.
    pub fn from_seed(seed: u64) -> Prng {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        bytes[8..16].copy_from_slice(b"mxsim/v1");
        Prng { seed: bytes, rng: ChaCha8Rng::from_seed(bytes) }
    }

    /// An independent stream named `name`, derived from this generator's seed only.
    pub fn fork(&self, name: &str) -> Prng {
        // ChaCha8 keyed by the parent seed, on a stream chosen by a 64-bit FNV-1a hash of
        // the name: the derived seed depends only on (parent seed, name).
        let mut keyed = ChaCha8Rng::from_seed(self.seed);
        keyed.set_stream(fnv1a64(name.as_bytes()));
        let mut derived = [0u8; 32];
        keyed.fill_bytes(&mut derived);
        Prng { seed: derived, rng: ChaCha8Rng::from_seed(derived) }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform in `[low, high]` (inclusive).
    pub fn range_inclusive(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "empty range {low}..={high}");
        self.rng.gen_range(low..=high)
    }

    /// Uniform index in `[0, len)`.
    pub fn index(&mut self, len: usize) -> usize {
        assert!(len > 0, "index into an empty collection");
        self.rng.gen_range(0..len)
    }

    /// True with probability `ratio`, decided in integers.
    pub fn chance(&mut self, ratio: Ratio) -> bool {
        if ratio.is_zero() {
            return false;
        }
        self.rng.gen_range(0..ratio.denominator()) < ratio.numerator()
    }

    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        self.rng.fill_bytes(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_forks_are_independent_of_use() {
        let mut a = Prng::from_seed(7);
        let mut b = Prng::from_seed(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let fork_after_use = a.fork("x");
        let fresh = Prng::from_seed(7).fork("x");
        let (mut f1, mut f2) = (fork_after_use, fresh);
        assert_eq!(f1.next_u64(), f2.next_u64());
        assert_ne!(
            Prng::from_seed(7).fork("x").next_u64(),
            Prng::from_seed(7).fork("y").next_u64()
        );
        assert_ne!(Prng::from_seed(7).next_u64(), Prng::from_seed(8).next_u64());
    }

    #[test]
    fn chance_extremes() {
        let mut p = Prng::from_seed(1);
        for _ in 0..100 {
            assert!(!p.chance(Ratio::ZERO));
            assert!(p.chance(Ratio::ONE));
        }
    }
}
