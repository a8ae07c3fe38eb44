//! Link policies: how one directed link treats each message sent on it — a latency drawn
//! from a distribution, and chances of loss, duplication, reordering and byte corruption.
//! Everything is integer data: delays in virtual milliseconds, chances as `stdx::Ratio`.

use serde::{Deserialize, Serialize};

use crate::stdx::{Duration, Prng, Ratio};

/// The longest delay any single knob may add: one day of virtual time. It keeps the
/// arithmetic far from overflow and catches a misplaced unit (seconds written as ms × 1000).
pub const DELAY_MAX: Duration = Duration { ms: 86_400_000 };

/// How long a message takes on a link, before faults add to it.
///
/// In scenario files: `{ kind = "fixed", delay_ms = 20 }`,
/// `{ kind = "uniform", delay_ms_min = 10, delay_ms_max = 80 }`, or the long tail
/// `{ kind = "spike", delay_ms_min = 10, delay_ms_max = 80, spike_chance = "1/50",
/// spike_ms_min = 500, spike_ms_max = 3000 }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LatencyDistribution {
    /// Always the same delay.
    Fixed {
        #[serde(rename = "delay_ms", with = "crate::net::serde_util::ms")]
        delay: Duration,
    },
    /// Uniform in `delay_min..=delay_max`.
    Uniform {
        #[serde(rename = "delay_ms_min", with = "crate::net::serde_util::ms")]
        delay_min: Duration,
        #[serde(rename = "delay_ms_max", with = "crate::net::serde_util::ms")]
        delay_max: Duration,
    },
    /// A long tail in integers: uniform in `delay_min..=delay_max`, and with chance
    /// `spike_chance` an extra delay uniform in `spike_min..=spike_max` on top.
    Spike {
        #[serde(rename = "delay_ms_min", with = "crate::net::serde_util::ms")]
        delay_min: Duration,
        #[serde(rename = "delay_ms_max", with = "crate::net::serde_util::ms")]
        delay_max: Duration,
        #[serde(with = "crate::net::serde_util::ratio")]
        spike_chance: Ratio,
        #[serde(rename = "spike_ms_min", with = "crate::net::serde_util::ms")]
        spike_min: Duration,
        #[serde(rename = "spike_ms_max", with = "crate::net::serde_util::ms")]
        spike_max: Duration,
    },
}

/// How one directed link treats messages. Omitted fields in a scenario file take the
/// values of [`LinkPolicy::default`]: a fixed 10 ms latency and no faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkPolicy {
    pub latency: LatencyDistribution,
    /// Chance that a message is lost at send time.
    #[serde(with = "crate::net::serde_util::ratio")]
    pub loss: Ratio,
    /// Chance that a message is delivered twice (the copy draws its own latency).
    #[serde(with = "crate::net::serde_util::ratio")]
    pub duplicate: Ratio,
    /// Chance that a message is reordered: it gets an extra delay uniform in
    /// `1..=reorder_delay_max` and gives up its place in the link's send order, so later
    /// messages may overtake it and it may overtake earlier ones.
    #[serde(with = "crate::net::serde_util::ratio")]
    pub reorder: Ratio,
    #[serde(rename = "reorder_delay_ms_max", with = "crate::net::serde_util::ms")]
    pub reorder_delay_max: Duration,
    /// Chance that one byte of a message is changed (see `Corruptible`).
    #[serde(with = "crate::net::serde_util::ratio")]
    pub corrupt: Ratio,
}

/// Why a link policy or latency distribution is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("latency delay_ms_min ({min}) is above delay_ms_max ({max})")]
    LatencyRange { min: u64, max: u64 },
    #[error("latency spike_ms_min ({min}) is above spike_ms_max ({max})")]
    SpikeRange { min: u64, max: u64 },
    #[error("{field} is {ms} ms, above the limit of {max} ms (one day)")]
    DelayTooLarge { field: &'static str, ms: u64, max: u64 },
    #[error(
        "reorder is {reorder} but reorder_delay_ms_max is 0: a reordered message needs an extra delay of at least 1 ms"
    )]
    ReorderWithoutDelay { reorder: Ratio },
}

fn at_most_a_day(field: &'static str, delay: Duration) -> Result<(), PolicyError> {
    if delay > DELAY_MAX {
        return Err(PolicyError::DelayTooLarge { field, ms: delay.ms, max: DELAY_MAX.ms });
    }
    Ok(())
}

impl LatencyDistribution {
    /// A fixed delay of `ms` milliseconds.
    pub fn fixed_ms(ms: u64) -> LatencyDistribution {
        LatencyDistribution::Fixed { delay: Duration::from_ms(ms) }
    }

    /// A delay uniform in `min_ms..=max_ms` milliseconds.
    pub fn uniform_ms(min_ms: u64, max_ms: u64) -> LatencyDistribution {
        LatencyDistribution::Uniform {
            delay_min: Duration::from_ms(min_ms),
            delay_max: Duration::from_ms(max_ms),
        }
    }

    /// Why the distribution is unusable, if it is.
    pub fn check(&self) -> Result<(), PolicyError> {
        match *self {
            LatencyDistribution::Fixed { delay } => at_most_a_day("latency delay_ms", delay),
            LatencyDistribution::Uniform { delay_min, delay_max } => {
                check_range(delay_min, delay_max)
            }
            LatencyDistribution::Spike { delay_min, delay_max, spike_min, spike_max, .. } => {
                check_range(delay_min, delay_max)?;
                if spike_min > spike_max {
                    return Err(PolicyError::SpikeRange { min: spike_min.ms, max: spike_max.ms });
                }
                at_most_a_day("latency spike_ms_max", spike_max)
            }
        }
    }

    /// The longest delay the distribution can draw.
    pub fn delay_max(&self) -> Duration {
        match *self {
            LatencyDistribution::Fixed { delay } => delay,
            LatencyDistribution::Uniform { delay_max, .. } => delay_max,
            LatencyDistribution::Spike { delay_max, spike_max, .. } => delay_max + spike_max,
        }
    }

    /// Draws one delay. Draw order (part of the determinism contract): the base delay,
    /// then for `Spike` the spike chance, then the spike's size.
    pub fn sample(&self, prng: &mut Prng) -> Duration {
        assert!(self.check().is_ok(), "sampling an unchecked latency distribution: {self:?}");
        let delay = match *self {
            LatencyDistribution::Fixed { delay } => delay,
            LatencyDistribution::Uniform { delay_min, delay_max } => {
                Duration::from_ms(prng.range_inclusive(delay_min.ms, delay_max.ms))
            }
            LatencyDistribution::Spike {
                delay_min,
                delay_max,
                spike_chance,
                spike_min,
                spike_max,
            } => {
                let base = Duration::from_ms(prng.range_inclusive(delay_min.ms, delay_max.ms));
                if prng.chance(spike_chance) {
                    base + Duration::from_ms(prng.range_inclusive(spike_min.ms, spike_max.ms))
                } else {
                    base
                }
            }
        };
        assert!(delay <= self.delay_max(), "drew {delay} above the distribution's maximum");
        delay
    }
}

fn check_range(min: Duration, max: Duration) -> Result<(), PolicyError> {
    if min > max {
        return Err(PolicyError::LatencyRange { min: min.ms, max: max.ms });
    }
    at_most_a_day("latency delay_ms_max", max)
}

impl Default for LinkPolicy {
    fn default() -> LinkPolicy {
        LinkPolicy::ideal(LatencyDistribution::fixed_ms(10))
    }
}

impl LinkPolicy {
    /// A link with the given latency and no other fault.
    pub fn ideal(latency: LatencyDistribution) -> LinkPolicy {
        LinkPolicy {
            latency,
            loss: Ratio::ZERO,
            duplicate: Ratio::ZERO,
            reorder: Ratio::ZERO,
            reorder_delay_max: Duration::ZERO,
            corrupt: Ratio::ZERO,
        }
    }

    /// Why the policy is unusable, if it is.
    pub fn check(&self) -> Result<(), PolicyError> {
        self.latency.check()?;
        at_most_a_day("reorder_delay_ms_max", self.reorder_delay_max)?;
        if !self.reorder.is_zero() && self.reorder_delay_max.ms == 0 {
            return Err(PolicyError::ReorderWithoutDelay { reorder: self.reorder });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_stay_in_range_and_spikes_happen_about_as_often_as_asked() {
        let spike = LatencyDistribution::Spike {
            delay_min: Duration::from_ms(10),
            delay_max: Duration::from_ms(20),
            spike_chance: Ratio::new(1, 10).unwrap(),
            spike_min: Duration::from_ms(1_000),
            spike_max: Duration::from_ms(2_000),
        };
        let mut prng = Prng::from_seed(3);
        let mut spikes = 0;
        for _ in 0..1_000 {
            let delay = spike.sample(&mut prng).ms;
            assert!((10..=2_020).contains(&delay), "{delay}");
            assert!(delay <= 20 || delay >= 1_010, "{delay}");
            if delay > 20 {
                spikes += 1;
            }
        }
        assert!((60..=140).contains(&spikes), "{spikes} spikes in 1000 draws at 1/10");
        assert_eq!(LatencyDistribution::fixed_ms(7).sample(&mut prng), Duration::from_ms(7));
    }

    #[test]
    fn bad_policies_are_named() {
        let uniform = LatencyDistribution::uniform_ms(50, 10);
        assert_eq!(uniform.check(), Err(PolicyError::LatencyRange { min: 50, max: 10 }));
        let mut policy = LinkPolicy::ideal(LatencyDistribution::fixed_ms(DELAY_MAX.ms + 1));
        assert!(matches!(policy.check(), Err(PolicyError::DelayTooLarge { .. })));
        policy.latency = LatencyDistribution::fixed_ms(1);
        policy.reorder = Ratio::new(1, 2).unwrap();
        let error = policy.check().unwrap_err();
        assert_eq!(error, PolicyError::ReorderWithoutDelay { reorder: policy.reorder });
        assert!(error.to_string().contains("reorder_delay_ms_max is 0"), "{error}");
        policy.reorder_delay_max = Duration::from_ms(5);
        assert_eq!(policy.check(), Ok(()));
    }

    #[test]
    fn policies_read_from_data_with_defaults_and_no_unknown_fields() {
        let policy: LinkPolicy = serde_json::from_str(
            r#"{"latency": {"kind": "uniform", "delay_ms_min": 5, "delay_ms_max": 9},
                "loss": "1/100"}"#,
        )
        .unwrap();
        assert_eq!(policy.latency, LatencyDistribution::uniform_ms(5, 9));
        assert_eq!(policy.loss, Ratio::new(1, 100).unwrap());
        assert_eq!(policy.duplicate, Ratio::ZERO);
        let back: LinkPolicy =
            serde_json::from_value(serde_json::to_value(policy).unwrap()).unwrap();
        assert_eq!(back, policy);

        let unknown = serde_json::from_str::<LinkPolicy>(r#"{"los": "1/2"}"#).unwrap_err();
        assert!(unknown.to_string().contains("unknown field `los`"), "{unknown}");
        let unknown_in_latency = serde_json::from_str::<LatencyDistribution>(
            r#"{"kind": "fixed", "delay_ms": 1, "jitter": 2}"#,
        )
        .unwrap_err();
        assert!(unknown_in_latency.to_string().contains("jitter"), "{unknown_in_latency}");
        for bad in [r#""0.5""#, r#""3/2""#, r#""1/0""#, r#"" 1/2""#, r#""-1/2""#, "1"] {
            let text = format!(r#"{{"loss": {bad}}}"#);
            assert!(serde_json::from_str::<LinkPolicy>(&text).is_err(), "{bad} accepted");
        }
    }
}
