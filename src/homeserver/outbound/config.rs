//! The limits and timings of outbound delivery ([`Config`]) and their checks.

use crate::homeserver::wire::{TRANSACTION_EDUS_MAX, TRANSACTION_PDUS_MAX};
use crate::stdx::Duration;

/// The limits and timings of outbound delivery. [`Config::default`] documents the defaults;
/// scenarios may change any of them (spec digest §10: these are simulator parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Most PDUs per transaction. Default and maximum 50 (spec).
    pub transaction_pdus_max: usize,
    /// Most EDUs per transaction. Default and maximum 100 (spec).
    pub transaction_edus_max: usize,
    /// Most PDUs queued per destination (not counting the owed transaction). Default 1000.
    pub queue_pdus_max: usize,
    /// Most EDUs queued per destination (not counting the owed transaction). Default 500.
    pub queue_edus_max: usize,
    /// Wait after the first failure, before jitter. Default 500 ms.
    pub backoff_min: Duration,
    /// Longest wait between retries, before jitter. Default 60 s.
    pub backoff_max: Duration,
    /// Each wait is moved by a uniform amount within ± this percentage. Default 25, at
    /// most 50 (so a wait never drops below half its nominal value).
    pub backoff_jitter_percent: u64,
    /// Failed retries after which a destination is marked down. Default 10: the first
    /// attempt and ten retries over about four minutes (0.5, 1, 2, 4, 8, 16, 32, 60, 60,
    /// 60 s, jittered).
    pub retries_max: u32,
    /// Time between catch-up attempts to a down destination, jittered like back-off.
    /// Default 5 min.
    pub down_probe_interval: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            transaction_pdus_max: TRANSACTION_PDUS_MAX,
            transaction_edus_max: TRANSACTION_EDUS_MAX,
            queue_pdus_max: 1000,
            queue_edus_max: 500,
            backoff_min: Duration::from_ms(500),
            backoff_max: Duration::from_secs(60),
            backoff_jitter_percent: 25,
            retries_max: 10,
            down_probe_interval: Duration::from_secs(300),
        }
    }
}

impl Config {
    /// Why the configuration is unusable, if it is.
    pub fn check(&self) -> Result<(), String> {
        let rules: [(bool, &str); 8] = [
            (
                (1..=TRANSACTION_PDUS_MAX).contains(&self.transaction_pdus_max),
                "transaction_pdus_max must be 1..=50",
            ),
            (
                (1..=TRANSACTION_EDUS_MAX).contains(&self.transaction_edus_max),
                "transaction_edus_max must be 1..=100",
            ),
            (self.queue_pdus_max >= 1, "queue_pdus_max must be at least 1"),
            (self.queue_edus_max >= 1, "queue_edus_max must be at least 1"),
            (self.backoff_min.ms >= 1, "backoff_min must be at least 1 ms"),
            (self.backoff_max >= self.backoff_min, "backoff_max must be at least backoff_min"),
            (self.backoff_jitter_percent <= 50, "backoff_jitter_percent must be at most 50"),
            (self.down_probe_interval.ms >= 1, "down_probe_interval must be at least 1 ms"),
        ];
        match rules.iter().find(|(ok, _)| !ok) {
            Some((_, problem)) => Err((*problem).to_owned()),
            None => Ok(()),
        }
    }

    /// The nominal wait after failure `failure` (1-based), before jitter:
    /// `min(backoff_min × 2^(failure-1), backoff_max)`, saturating.
    pub fn backoff_nominal(&self, failure: u32) -> Duration {
        assert!(failure >= 1, "failures count from 1");
        let factor = 1u64.checked_shl(failure - 1).unwrap_or(u64::MAX);
        let ms = self.backoff_min.ms.saturating_mul(factor).min(self.backoff_max.ms);
        Duration::from_ms(ms)
    }
}
