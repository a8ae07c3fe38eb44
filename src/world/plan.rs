//! The plan a run executes: servers, network, faults, the scripted steps in time order
//! and the check settings, as `from_scenario` builds it from a scenario file.

use super::*;

/// Everything a run needs, already validated (the scenario module builds it).
#[derive(Clone, Debug)]
pub struct Plan {
    pub scenario: String,
    pub seed: u64,
    /// Server names; the fault schedule's nodes must be exactly these, in this order.
    pub servers: Vec<String>,
    /// Steps sorted by time (ties keep their order).
    /// The scenario's steps as the file says them (rooms and events named by labels): the
    /// world maps labels to ids when a step runs (`Shared::resolve`), nowhere else.
    pub steps: Vec<Step>,
    pub network: NetConfig,
    pub faults: FaultSchedule,
    /// The run stops at this virtual time.
    pub end_ms: u64,
    pub check: CheckSettings,
    pub server_config: Config,
    /// Servers with settings of their own (`config` in a `[[server]]` table).
    pub server_configs: BTreeMap<String, Config>,
    pub mxsim_version: String,
    /// The swarm configuration the scenario was drawn with, recorded in the trace header.
    pub swarm: Option<serde_json::Value>,
    /// Whether the servers share state resolutions ([`SharedResolutions`]): on in every
    /// run `from_scenario` plans. A run gives the same trace either way; off, each server
    /// resolves everything itself (tests compare the two).
    ///
    /// [`SharedResolutions`]: crate::homeserver::resolutions::SharedResolutions
    pub share_resolutions: bool,
    /// Whether the servers' stores share their snapshots of the state
    /// ([`SharedSnapshots`]): on in every run `from_scenario` plans. A run gives the same
    /// trace either way; off, each store keeps its own (tests compare the two).
    ///
    /// [`SharedSnapshots`]: crate::homeserver::store::SharedSnapshots
    pub share_snapshots: bool,
}

impl Plan {
    /// The homeserver settings of `server`.
    pub fn config_of(&self, server: &str) -> &Config {
        self.server_configs.get(server).unwrap_or(&self.server_config)
    }
}

/// The wait before retry `n` (from 1) of a failed step: 5 s, doubling, at most 60 s
/// (docs/scenarios.md).
pub fn retry_delay_ms(n: u32) -> u64 {
    let doublings = n.saturating_sub(1).min(4);
    (5_000u64 << doublings).min(60_000)
}
