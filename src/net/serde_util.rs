//! How the fault model's `stdx` values appear in scenario files and traces: virtual times
//! and durations as integer milliseconds (the field names say `_ms`), probabilities as
//! `"numerator/denominator"` strings such as `"1/100"`.
//!
//! `stdx` stays free of serde; these helpers are used through `#[serde(with = …)]`.

/// Virtual times and durations as integer milliseconds.
pub(crate) mod ms {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use crate::stdx::{Duration, Instant};

    /// A value that is a whole number of virtual milliseconds.
    pub(crate) trait Millis: Copy {
        fn to_ms(self) -> u64;
        fn from_ms(ms: u64) -> Self;
    }

    impl Millis for Instant {
        fn to_ms(self) -> u64 {
            self.ms
        }
        fn from_ms(ms: u64) -> Instant {
            Instant::from_ms(ms)
        }
    }

    impl Millis for Duration {
        fn to_ms(self) -> u64 {
            self.ms
        }
        fn from_ms(ms: u64) -> Duration {
            Duration::from_ms(ms)
        }
    }

    pub(crate) fn serialize<T: Millis, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(value.to_ms())
    }

    pub(crate) fn deserialize<'de, T: Millis, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        u64::deserialize(d).map(T::from_ms)
    }
}

/// Probabilities as `"numerator/denominator"` strings.
pub(crate) mod ratio {
    use serde::de::Error as _;
    use serde::{Deserialize as _, Deserializer, Serializer};

    use crate::stdx::Ratio;

    pub(crate) fn serialize<S: Serializer>(value: &Ratio, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}/{}", value.numerator(), value.denominator()))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ratio, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(D::Error::custom)
    }

    /// Parses `"n/d"`: two decimal integers, nothing else (no spaces, signs or floats).
    pub(crate) fn parse(text: &str) -> Result<Ratio, String> {
        let shape = || format!("expected a probability \"n/d\" such as \"1/100\", found {text:?}");
        let (numerator, denominator) = text.split_once('/').ok_or_else(shape)?;
        let number = |part: &str| -> Result<u64, String> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(shape());
            }
            part.parse::<u64>().map_err(|_| shape())
        };
        Ratio::new(number(numerator)?, number(denominator)?).map_err(|e| e.to_string())
    }
}
