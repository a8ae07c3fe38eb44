//! The written form of a scenario file, as `serde` reads it from TOML: every table denies
//! unknown fields, and values that later checks may refuse keep their position
//! (`Spanned`), so that an error can point at them.
//!
//! Faults are read as tables of spanned values and only then converted to `net::Fault`
//! (whose serde form is internally tagged, which loses positions inside a fault).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::net::NetConfig;
use crate::scenario::Invariant;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub quiet_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub server: Vec<Spanned<ServerTable>>,
    #[serde(default)]
    pub server_group: Vec<Spanned<ServerGroupTable>>,
    #[serde(default)]
    pub room: Vec<Spanned<RoomTable>>,
    #[serde(default)]
    pub step: Vec<Spanned<StepTable>>,
    #[serde(default)]
    pub workload: Vec<Spanned<WorkloadTable>>,
    #[serde(default)]
    pub fault: Vec<Spanned<FaultTable>>,
    #[serde(default)]
    pub settle: Vec<Spanned<SettleTable>>,
    pub network: Option<Spanned<NetConfig>>,
    pub check: Option<Spanned<CheckTable>>,
    pub server_config: Option<Spanned<ServerConfigTable>>,
    #[serde(default)]
    pub expect: Vec<Spanned<ExpectTable>>,
}

/// One `[[expect]]` table: `room` and exactly one of `state`, `conflicted`, `rejected`,
/// `converged_by_ms`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpectTable {
    pub room: Spanned<String>,
    pub state: Option<Spanned<String>>,
    pub conflicted: Option<Spanned<String>>,
    pub state_key: Option<Spanned<String>>,
    pub content: Option<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    pub rejected: Option<Spanned<String>>,
    pub converged_by_ms: Option<Spanned<u64>>,
    pub events_min: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerTable {
    pub name: Spanned<String>,
    /// Localparts, or full user ids on this server.
    #[serde(default)]
    pub users: Vec<Spanned<String>>,
    /// This server's overrides of `[server_config]`.
    pub config: Option<Spanned<ServerConfigTable>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerGroupTable {
    pub prefix: Spanned<String>,
    pub count: Spanned<u64>,
    #[serde(default = "one")]
    pub first: u64,
    /// Localparts given to every server of the group.
    #[serde(default)]
    pub users: Vec<Spanned<String>>,
    /// Overrides of `[server_config]` for every server of the group.
    pub config: Option<Spanned<ServerConfigTable>>,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoomTable {
    pub label: Spanned<String>,
    pub creator: Spanned<String>,
    pub version: Option<Spanned<String>>,
    #[serde(default)]
    pub public: bool,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub at_ms: Option<Spanned<u64>>,
    /// Users who join during setup; `["*"]` means every declared user but the creator.
    #[serde(default)]
    pub members: Vec<Spanned<String>>,
    /// Users who are invited during setup but do not join.
    #[serde(default)]
    pub invited: Vec<Spanned<String>>,
    /// Power levels set after the joins, by user id.
    #[serde(default)]
    pub power: BTreeMap<Spanned<String>, Spanned<i64>>,
    pub setup_spacing_ms: Option<Spanned<u64>>,
    pub member_stagger_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepTable {
    pub at_ms: Spanned<u64>,
    pub user: Spanned<String>,
    pub server: Option<Spanned<String>>,
    pub action: Spanned<String>,
    pub label: Option<Spanned<String>>,
    pub room: Option<Spanned<String>>,
    pub version: Option<Spanned<String>>,
    pub public: Option<Spanned<bool>>,
    pub name: Option<Spanned<String>>,
    pub topic: Option<Spanned<String>>,
    pub event_type: Option<Spanned<String>>,
    pub state_key: Option<Spanned<String>>,
    pub content: Option<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    pub body: Option<Spanned<String>>,
    pub target: Option<Spanned<String>>,
    pub via: Option<Spanned<Vec<Spanned<String>>>>,
    pub redacts: Option<Spanned<String>>,
    pub new_room: Option<Spanned<String>>,
    pub level: Option<Spanned<i64>>,
    /// `"succeed"` (the default) or `"fail"`.
    pub expect: Option<Spanned<String>>,
    pub retries: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkloadTable {
    pub room: Spanned<String>,
    pub start_ms: Spanned<u64>,
    pub end_ms: Spanned<u64>,
    #[serde(default)]
    pub users: Vec<Spanned<String>>,
    #[serde(default)]
    pub servers: Vec<Spanned<String>>,
    #[serde(default)]
    pub via: Vec<Spanned<String>>,
    pub interval_ms: Spanned<u64>,
    pub mix: Option<Spanned<MixTable>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MixTable {
    pub message: u64,
    pub topic: u64,
    pub name: u64,
    pub power: u64,
    pub join_leave: u64,
    pub ban: u64,
    pub kick: u64,
    pub redact: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettleTable {
    pub room: Spanned<String>,
    #[serde(default)]
    pub users: Vec<Spanned<String>>,
    pub after_ms: Option<Spanned<u64>>,
    pub rounds: Option<Spanned<u64>>,
    pub spacing_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub rejoin: bool,
}

/// One `[[fault]]` table, field by field, before it becomes a `net::Fault`.
pub(crate) type FaultTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckTable {
    pub invariants: Option<Vec<Spanned<Invariant>>>,
    pub liveness_bound_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerConfigTable {
    pub request_timeout_ms: Option<Spanned<u64>>,
    pub backoff_ms_min: Option<Spanned<u64>>,
    pub backoff_ms_max: Option<Spanned<u64>>,
    pub retries_max: Option<Spanned<u32>>,
    pub down_probe_interval_ms: Option<Spanned<u64>>,
    pub missing_events_limit: Option<Spanned<u64>>,
    pub offline_sends: Option<Spanned<String>>,
    pub dag_capable: Option<Spanned<bool>>,
}
