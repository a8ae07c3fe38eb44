//! Scenario files: TOML text → a validated [`Scenario`] — servers and users, scripted
//! steps, random workloads, the network's default policy, a fault schedule, the quiet
//! period and what to check. The format is documented in `docs/scenarios.md`.
//!
//! - [`parse`] takes the text and a file name (for messages); the CLI reads files. Every
//!   problem — TOML syntax, an unknown field, a bad value, an impossible step (an unknown
//!   server, user or room label, a room used before it exists, a redaction of a later
//!   event, a fault on an unknown node) — is a [`ScenarioError`] printed as
//!   `FILE:LINE:COLUMN: problem`, pointing at the offending TOML.
//! - Conveniences keep curated files short: `[[server_group]]` declares many servers at
//!   once, and `[[room]]` expands into a create step plus the invites, joins and power
//!   levels that set a room up. The expanded steps are ordinary [`Step`]s.
//! - Rooms are named by labels (room ids exist only at run time); a step's `label` names
//!   the event it creates, so that a later `redact` step can point at it.
//! - [`Scenario::expand_workloads`] turns the random workloads into steps, determined by
//!   the generator it is given; the world merges them with the scripted steps by time.
//!
//! What this module does not judge: whether a step will succeed at run time (a user may
//! not be joined, or may lack power). Such failures are observations of the run, not
//! errors of the file.
//!
//! Architecture Invariant: uses `stdx`, `net` and only the pure value modules of `matrix`
//! (`ids` for the grammar of server names and user ids, `room_version` for the room
//! versions a file may ask for, `canonical_json` for event content, `action` for what a
//! step does); knows nothing else of Matrix; no files, clock, floats or
//! hash maps. The `toml` crate is used here and in `sweep`, which edits scenario files.

mod error;
mod file;
mod validate;
mod workload;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

pub use crate::matrix::action::{Action, ActionKind};
use crate::matrix::room_version::RoomVersion;
use crate::net::{FaultSchedule, NetConfig};
pub use crate::stdx::Invariant;

pub use error::ScenarioError;
pub use validate::parse;

/// Most servers in a scenario (the network's node limit).
pub const SERVERS_MAX: usize = crate::net::fault::NODES_MAX;
/// Most users on one server.
pub const USERS_PER_SERVER_MAX: usize = 1_000;
/// Most users in a scenario.
pub const USERS_MAX: usize = 100_000;
/// Most scripted steps, after `[[room]]` expansion.
pub const STEPS_MAX: usize = 100_000;
/// Most workloads.
pub const WORKLOADS_MAX: usize = 100;
/// Most actions one workload may generate (its duration divided by its interval).
pub const WORKLOAD_ACTIONS_MAX: u64 = 100_000;
/// Latest time of any step, workload or fault: one week of virtual milliseconds.
pub const TIME_MS_MAX: u64 = 7 * 24 * 3_600_000;
/// Longest quiet period, and longest server timeout or back-off: one day.
pub const DURATION_MS_MAX: u64 = 24 * 3_600_000;
/// Longest scenario name, label or room label, in bytes.
pub const LABEL_BYTES_MAX: usize = 64;
/// The room version of rooms that do not name one (the spec's default for new rooms). A
/// scenario may ask for any of [`RoomVersion::ALL`].
pub const ROOM_VERSION_DEFAULT: RoomVersion = RoomVersion::V12;
/// Default quiet period after the last step, workload or fault.
pub const QUIET_MS_DEFAULT: u64 = 180_000;
/// How often a `[[settle]]` rejoin is tried again after it failed (a lost request must
/// not keep a user out for good).
pub const SETTLE_REJOIN_RETRIES: u32 = 2;
/// `[[settle]]` defaults: the first round starts this long after the last step, workload
/// or fault; rounds are this far apart; this many rounds.
pub const SETTLE_AFTER_MS_DEFAULT: u64 = 5_000;
pub const SETTLE_SPACING_MS_DEFAULT: u64 = 10_000;
pub const SETTLE_ROUNDS_DEFAULT: u64 = 3;
pub const SETTLE_ROUNDS_MAX: u64 = 10;
/// Default liveness bound.
pub const LIVENESS_BOUND_MS_DEFAULT: u64 = 120_000;

/// A validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Names the scenario in reports and directories: `[A-Za-z0-9._-]`, 1 to 64 bytes.
    pub name: String,
    pub description: String,
    /// Servers in declaration order: `[[server]]` tables first, then `[[server_group]]`s.
    pub servers: Vec<ServerSpec>,
    /// Every room label, in the order the rooms are created.
    pub rooms: Vec<RoomInfo>,
    /// Scripted steps, sorted by time (stably: on equal times, `[[room]]` setup steps
    /// first, then `[[step]]` tables, each in the order written).
    pub steps: Vec<Step>,
    pub workloads: Vec<Workload>,
    /// The default link policy and the network's bounds.
    pub network: NetConfig,
    /// Faults, validated against the server names (node names are server names).
    pub faults: FaultSchedule,
    /// How long the run goes on after the last step, workload end or fault end.
    pub quiet_ms: u64,
    pub check: CheckConfig,
    pub server_config: ServerConfig,
    /// What the scenario says it demonstrates (`[[expect]]` tables), in file order.
    pub expectations: Vec<Expectation>,
}

/// One `[[expect]]` table: something the run must show, checked from the trace by the
/// `expectations` invariant. Rooms are room labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    /// The line of the `[[expect]]` header.
    pub line: u64,
    pub room: String,
    pub what: ExpectWhat,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExpectWhat {
    /// At the end, every joined server has an event at this state key; with `content`,
    /// its content has these fields with these values, else all of them hold the same
    /// event there.
    State { event_type: String, state_key: String, content: Option<Map<String, Value>> },
    /// The key was conflicted (its value differed between the states being merged) in at
    /// least one state resolution, with at least `events_min` distinct events taking part
    /// over the run's resolutions.
    Conflicted { event_type: String, state_key: String, events_min: u64 },
    /// The event made by the step with this label was rejected or soft-failed by every
    /// other server joined to the room at the end.
    Rejected { label: String },
    /// By this time every server joined at the end holds the same current state.
    ConvergedBy { at_ms: u64 },
}

/// Whether a step must succeed, must fail, or is not judged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StepExpect {
    /// `[[step]]` tables and `[[room]]` setups: a failure is a violation of
    /// `expectations`.
    #[default]
    Succeed,
    /// `expect = "fail"`: success is a violation.
    Fail,
    /// Workload and settling steps: random guesses, allowed to fail.
    Any,
}

/// Most `retries` of one membership step.
pub const STEP_RETRIES_MAX: u32 = 10;
/// Most `[[expect]]` tables.
pub const EXPECTATIONS_MAX: usize = 1_000;

/// One homeserver and its local users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    /// A Matrix server name (`hostname[:port]`), e.g. `hs1`.
    pub name: String,
    /// Full user ids on this server, e.g. `@alice:hs1`.
    pub users: Vec<String>,
    /// This server's own homeserver settings: `[server_config]` with the server's
    /// `config` fields put over it. `None` when the server has no `config`.
    pub config: Option<ServerConfig>,
}

/// A room label and where it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomInfo {
    pub label: String,
    /// The server whose user creates the room: the default `via` for remote joins.
    pub server: String,
    /// The room version asked for.
    pub version: RoomVersion,
}

/// One thing a user does at a time.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub at_ms: u64,
    /// The user's server (where the action runs).
    pub server: String,
    /// The acting user's full id.
    pub user: String,
    pub action: StepAction,
    /// The label of the room this step creates: the new room of `create_room` and of
    /// `upgrade` (the replacement).
    pub new_room: Option<String>,
    /// Names the event this step creates (for `create_room`, the create event; for
    /// `upgrade`, the tombstone in the old room), so that a
    /// later redact step can name it. Scripted labels are `[A-Za-z0-9._-]`; workload
    /// labels contain a `/` and never clash with them.
    pub label: Option<String>,
    /// The line of the table the step comes from (`[[step]]`, `[[room]]`, `[[workload]]`
    /// or `[[settle]]`), counted from 1.
    pub line: u64,
    pub expect: StepExpect,
    /// How often a failed `join`, `leave`, `knock` or `invite` is tried again (0 for every
    /// other action).
    pub retries: u32,
}

/// What a step does: the one action vocabulary ([`crate::matrix::action::Action`]) with
/// rooms and events named by labels (their ids exist only at run time). Users are full
/// user ids; `via` are server names, and never empty for a `join`, `leave` or `knock` of a
/// user whose server did not create the room (it defaults to the creating server).
pub type StepAction = Action<String, String>;

/// The step's action (its one `Display`, labels for names), and the label of the room it
/// creates: `create_room (v12) as main`, `upgrade main to v12 as main2`, `join main`.
impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.new_room {
            Some(room) => write!(f, "{} as {room}", self.action),
            None => write!(f, "{}", self.action),
        }
    }
}

impl Step {
    /// The label of the room the step works in: for `create_room`, the room it creates.
    pub fn room(&self) -> &str {
        match (self.action.room(), &self.new_room) {
            (Some(room), _) | (None, Some(room)) => room,
            (None, None) => unreachable!("a create_room step names its new room"),
        }
    }
}

/// Random actions in one room over `[start_ms, end_ms)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub room: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// The users taking part (full ids); each action's actor and target are drawn from
    /// them.
    pub users: Vec<String>,
    /// Servers to join through (default: the room's creating server).
    pub via: Vec<String>,
    /// The mean time between two actions; each gap is uniform in `1..=2 * interval_ms - 1`.
    pub interval_ms: u64,
    pub mix: Mix,
    /// The line of the `[[workload]]` header.
    pub line: u64,
}

/// Relative weights of the kinds of workload action. Each action picks a kind with
/// chance weight / sum of weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    /// A text message (labelled, so that `redact` can pick it later).
    pub message: u64,
    /// An `m.room.topic` change.
    pub topic: u64,
    /// An `m.room.name` change.
    pub name: u64,
    /// A power-level change of a random participant to 0, 50 or 100: power-level fights.
    pub power: u64,
    /// A participant leaves if the workload last made them join, joins otherwise.
    pub join_leave: u64,
    /// A participant bans another, or unbans one the workload banned.
    pub ban: u64,
    /// A participant kicks another.
    pub kick: u64,
    /// A participant redacts a random earlier workload message.
    pub redact: u64,
}

impl Default for Mix {
    fn default() -> Mix {
        Mix { message: 1, topic: 0, name: 0, power: 0, join_leave: 0, ban: 0, kick: 0, redact: 0 }
    }
}

impl Mix {
    /// The weights with their names, in a fixed order (part of the expansion contract).
    pub fn weights(&self) -> [(&'static str, u64); 8] {
        [
            ("message", self.message),
            ("topic", self.topic),
            ("name", self.name),
            ("power", self.power),
            ("join_leave", self.join_leave),
            ("ban", self.ban),
            ("kick", self.kick),
            ("redact", self.redact),
        ]
    }
}

/// What to check after the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    /// The invariants to check, sorted, without repeats. Default: all of them.
    pub invariants: Vec<Invariant>,
    /// Every event accepted at its origin must reach every joined server within this long
    /// after the later of its creation and the last fault's end. At most `quiet_ms`, so
    /// that the run lasts long enough to judge it.
    pub liveness_bound_ms: u64,
}

impl CheckConfig {
    pub fn checks(&self, invariant: Invariant) -> bool {
        self.invariants.contains(&invariant)
    }
}

/// Overrides of the homeserver's configuration; `None` keeps the homeserver's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerConfig {
    /// A request with no answer after this long has failed (homeserver default 30 s).
    pub request_timeout_ms: Option<u64>,
    /// First back-off wait after a failed transaction (default 500 ms).
    pub backoff_ms_min: Option<u64>,
    /// Longest back-off wait (default 60 s).
    pub backoff_ms_max: Option<u64>,
    /// Failed retries after which a destination is marked down (default 10).
    pub retries_max: Option<u32>,
    /// Time between catch-up attempts to a destination marked down (default 5 min).
    pub down_probe_interval_ms: Option<u64>,
    /// `limit` of the `get_missing_events` requests servers send (default 10, as
    /// Synapse): a gap longer than this is bridged with the state at the missing prev
    /// events, and the events in between stay unknown until something refers to them.
    pub missing_events_limit: Option<u64>,
    /// Linearized Matrix: what a participant does with sends while the room's hub is
    /// marked down (default: queue them; docs/linearized.md).
    pub offline_sends: Option<OfflineSends>,
    /// Linearized Matrix: the server takes part in rooms it does not host as a DAG-capable
    /// server rather than as a participant (default: a participant; docs/linearized.md).
    pub dag_capable: Option<bool>,
}

/// Linearized Matrix: what a participant does with its users' sends while the room's hub
/// is unreachable (`offline_sends` in `[server_config]`; docs/linearized.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfflineSends {
    /// Keep them and send them when the hub is reachable again.
    Queue,
    /// Fail them at once while the hub is marked down, and give up those waiting when it
    /// is marked down.
    Fail,
}

impl ServerConfig {
    /// These settings with every field `over` sets replaced by its value.
    pub fn overlaid(self, over: ServerConfig) -> ServerConfig {
        ServerConfig {
            request_timeout_ms: over.request_timeout_ms.or(self.request_timeout_ms),
            backoff_ms_min: over.backoff_ms_min.or(self.backoff_ms_min),
            backoff_ms_max: over.backoff_ms_max.or(self.backoff_ms_max),
            retries_max: over.retries_max.or(self.retries_max),
            down_probe_interval_ms: over.down_probe_interval_ms.or(self.down_probe_interval_ms),
            missing_events_limit: over.missing_events_limit.or(self.missing_events_limit),
            offline_sends: over.offline_sends.or(self.offline_sends),
            dag_capable: over.dag_capable.or(self.dag_capable),
        }
    }
}

impl Scenario {
    /// When the run stops: the latest of the last step, the last workload's end and the
    /// last fault's end, plus the quiet period.
    pub fn end_ms(&self) -> u64 {
        let last_step = self.steps.last().map_or(0, |step| step.at_ms);
        let last_workload = self.workloads.iter().map(|w| w.end_ms).max().unwrap_or(0);
        let healed = self.faults.healed_at().ms;
        let busy = last_step.max(last_workload).max(healed);
        assert!(busy <= TIME_MS_MAX, "validation lets no time past {TIME_MS_MAX}");
        busy + self.quiet_ms
    }

    /// The server of a user id declared in the scenario.
    pub fn server_of(&self, user: &str) -> Option<&str> {
        self.servers
            .iter()
            .find(|server| server.users.iter().any(|u| u == user))
            .map(|server| server.name.as_str())
    }

    /// Every declared user id, server by server.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.servers.iter().flat_map(|server| server.users.iter().map(String::as_str))
    }
}
