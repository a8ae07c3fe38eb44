//! Probabilities as integer ratios, so that no float ever decides anything.

use std::fmt;

/// A probability `numerator / denominator` with `numerator <= denominator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ratio {
    numerator: u64,
    denominator: u64,
}

/// Why a ratio is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid ratio {numerator}/{denominator}: need 0 <= numerator <= denominator and denominator > 0"
)]
pub struct RatioError {
    pub numerator: u64,
    pub denominator: u64,
}

impl Ratio {
    pub const ZERO: Ratio = Ratio { numerator: 0, denominator: 1 };
    pub const ONE: Ratio = Ratio { numerator: 1, denominator: 1 };

    pub fn new(numerator: u64, denominator: u64) -> Result<Ratio, RatioError> {
        if denominator == 0 || numerator > denominator {
            return Err(RatioError { numerator, denominator });
        }
        Ok(Ratio { numerator, denominator })
    }

    /// `percent / 100`.
    pub fn percent(percent: u64) -> Result<Ratio, RatioError> {
        Ratio::new(percent, 100)
    }

    pub fn numerator(self) -> u64 {
        self.numerator
    }

    pub fn denominator(self) -> u64 {
        self.denominator
    }

    pub fn is_zero(self) -> bool {
        self.numerator == 0
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.numerator, self.denominator)
    }
}
