//! Virtual time: milliseconds since the start of a simulation, never the wall clock.

use std::fmt;
use std::ops::{Add, Sub};

/// The wall-clock time, in milliseconds since the Unix epoch, that virtual time zero stands
/// for wherever a protocol field needs one (`origin_server_ts`, transaction ids, the trace
/// header's `epoch_ms`): 2023-11-14T22:13:20Z. A constant, never read from a clock.
pub const EPOCH_MS: i64 = 1_700_000_000_000;

/// A point in virtual time, in milliseconds since the simulation started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    pub ms: u64,
}

/// A span of virtual time in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    pub ms: u64,
}

impl Instant {
    pub const ZERO: Instant = Instant { ms: 0 };

    pub fn from_ms(ms: u64) -> Instant {
        Instant { ms }
    }

    /// Time since `earlier`; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration { ms: self.ms.saturating_sub(earlier.ms) }
    }
}

impl Duration {
    pub const ZERO: Duration = Duration { ms: 0 };

    pub fn from_ms(ms: u64) -> Duration {
        Duration { ms }
    }

    pub fn from_secs(secs: u64) -> Duration {
        Duration { ms: secs.checked_mul(1000).expect("duration overflow") }
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant { ms: self.ms.checked_add(rhs.ms).expect("virtual time overflow") }
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        Duration { ms: self.ms.checked_sub(rhs.ms).expect("instant subtraction underflow") }
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, rhs: Duration) -> Duration {
        Duration { ms: self.ms.checked_add(rhs.ms).expect("duration overflow") }
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.ms)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.ms)
    }
}
