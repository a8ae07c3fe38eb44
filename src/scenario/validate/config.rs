//! `[check]` and `[server_config]` (shared, and a server's own `config`).

use std::collections::BTreeSet;

use toml::Spanned;

use super::{Builder, Result, span};
use crate::scenario::file;
use crate::scenario::{
    CheckConfig, Invariant, LIVENESS_BOUND_MS_DEFAULT, OfflineSends, ServerConfig,
};

impl Builder<'_> {
    pub(super) fn check(
        &self,
        table: Option<&Spanned<file::CheckTable>>,
        quiet_ms: u64,
        quiet_at: Option<&Spanned<u64>>,
    ) -> Result<CheckConfig> {
        // `linearized` is added by default only when the scenario has a Linearized Matrix
        // room (see `Builder::build`).
        let mut check = CheckConfig {
            invariants: Invariant::ALL
                .into_iter()
                .filter(|i| *i != Invariant::Linearized)
                .collect(),
            liveness_bound_ms: LIVENESS_BOUND_MS_DEFAULT,
        };
        let mut bound_at = None;
        if let Some(table) = table {
            let t = table.get_ref();
            if let Some(invariants) = &t.invariants {
                let set: BTreeSet<Invariant> = invariants.iter().map(|i| *i.get_ref()).collect();
                check.invariants = set.into_iter().collect();
            }
            if let Some(bound) = &t.liveness_bound_ms {
                check.liveness_bound_ms = self.duration(bound, "liveness_bound_ms")?;
                bound_at = Some(span(bound));
            }
        }
        if check.liveness_bound_ms > quiet_ms {
            let problem = format!(
                "liveness_bound_ms ({}) is longer than quiet_ms ({quiet_ms}): the run would stop before the bound could be judged",
                check.liveness_bound_ms
            );
            let at = bound_at.or(quiet_at.map(span)).unwrap_or(0..0);
            return Err(self.error(at, problem));
        }
        Ok(check)
    }

    pub(super) fn server_config(&self, t: &file::ServerConfigTable) -> Result<ServerConfig> {
        let positive = |value: &Option<Spanned<u64>>, field: &str| -> Result<Option<u64>> {
            let Some(value) = value else { return Ok(None) };
            let ms = self.duration(value, field)?;
            if ms == 0 {
                return Err(self.error(span(value), format!("{field} must be at least 1")));
            }
            Ok(Some(ms))
        };
        let config = ServerConfig {
            request_timeout_ms: positive(&t.request_timeout_ms, "request_timeout_ms")?,
            backoff_ms_min: positive(&t.backoff_ms_min, "backoff_ms_min")?,
            backoff_ms_max: positive(&t.backoff_ms_max, "backoff_ms_max")?,
            retries_max: t.retries_max.as_ref().map(|r| *r.get_ref()),
            down_probe_interval_ms: positive(&t.down_probe_interval_ms, "down_probe_interval_ms")?,
            missing_events_limit: match &t.missing_events_limit {
                Some(limit) if !(1..=1000).contains(limit.get_ref()) => {
                    let problem = "missing_events_limit must be 1 to 1000";
                    return Err(self.error(span(limit), problem));
                }
                Some(limit) => Some(*limit.get_ref()),
                None => None,
            },
            offline_sends: match &t.offline_sends {
                None => None,
                Some(text) => match text.get_ref().as_str() {
                    "queue" => Some(OfflineSends::Queue),
                    "fail" => Some(OfflineSends::Fail),
                    other => {
                        let problem =
                            format!("offline_sends is \"queue\" or \"fail\", not {other:?}");
                        return Err(self.error(span(text), problem));
                    }
                },
            },
            dag_capable: t.dag_capable.as_ref().map(|b| *b.get_ref()),
        };
        if let (Some(min), Some(max)) = (config.backoff_ms_min, config.backoff_ms_max) {
            if min > max {
                let problem = format!("backoff_ms_min ({min}) is above backoff_ms_max ({max})");
                return Err(self.error(span(t.backoff_ms_min.as_ref().unwrap()), problem));
            }
        }
        Ok(config)
    }
}
