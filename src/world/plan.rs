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
    pub steps: Vec<PlanStep>,
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
}

impl Plan {
    /// The homeserver settings of `server`.
    pub fn config_of(&self, server: &str) -> &Config {
        self.server_configs.get(server).unwrap_or(&self.server_config)
    }
}

/// One thing a user does at a given time.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanStep {
    pub at_ms: u64,
    pub server: String,
    pub user: String,
    pub action: PlanAction,
    /// Names the event this step creates, for later `Redact` steps.
    pub label: Option<String>,
    /// The step's line in the scenario file (0 for plans built by hand).
    pub line: u64,
    /// Whether the scenario says the step must succeed or fail (the `expectations`
    /// invariant judges it from the trace).
    pub expect: crate::scenario::StepExpect,
    /// How often the step is tried again after it failed (membership steps only).
    pub retries: u32,
}

/// The wait before retry `n` (from 1) of a failed step: 5 s, doubling, at most 60 s
/// (docs/scenarios.md).
pub fn retry_delay_ms(n: u32) -> u64 {
    let doublings = n.saturating_sub(1).min(4);
    (5_000u64 << doublings).min(60_000)
}

/// The action kind of a plan action, as failures name it (the first word).
pub(super) fn action_kind(action: &PlanAction) -> &'static str {
    match action {
        PlanAction::CreateRoom { .. } => "create_room",
        PlanAction::Send { .. } | PlanAction::Power { .. } => "send",
        PlanAction::Invite { .. } => "invite",
        PlanAction::Join { .. } => "join",
        PlanAction::Leave { .. } => "leave",
        PlanAction::Kick { .. } => "kick",
        PlanAction::Ban { .. } => "ban",
        PlanAction::Unban { .. } => "unban",
        PlanAction::Knock { .. } => "knock",
        PlanAction::Redact { .. } => "redact",
        PlanAction::Upgrade { .. } => "upgrade",
    }
}

/// A user action with rooms and events named by labels (their ids exist only at run time).
#[derive(Clone, Debug, PartialEq)]
pub enum PlanAction {
    CreateRoom {
        room: String,
        version: RoomVersion,
        public: bool,
        name: Option<String>,
        topic: Option<String>,
    },
    Send {
        room: String,
        event_type: String,
        state_key: Option<String>,
        content: Object,
    },
    Invite {
        room: String,
        target: String,
    },
    Join {
        room: String,
        via: Vec<String>,
    },
    Leave {
        room: String,
        via: Vec<String>,
    },
    Kick {
        room: String,
        target: String,
    },
    Ban {
        room: String,
        target: String,
    },
    Unban {
        room: String,
        target: String,
    },
    Knock {
        room: String,
        via: Vec<String>,
    },
    Redact {
        room: String,
        target_label: String,
    },
    Upgrade {
        room: String,
        version: RoomVersion,
        new_room: String,
    },
    /// Set `target`'s power level in the current `m.room.power_levels` as this server sees
    /// it at the time of the step.
    Power {
        room: String,
        target: String,
        level: i64,
    },
}

/// A one-line description of a step's action, for the trace.
pub fn describe(action: &PlanAction) -> String {
    match action {
        PlanAction::CreateRoom { room, version, .. } => {
            format!("create_room {room} (v{})", version.as_str())
        }
        PlanAction::Send { room, event_type, state_key: None, .. } => {
            format!("send {event_type} in {room}")
        }
        PlanAction::Send { room, event_type, state_key: Some(key), .. } => {
            format!("send {event_type}/{key:?} in {room}")
        }
        PlanAction::Invite { room, target } => format!("invite {target} to {room}"),
        PlanAction::Join { room, .. } => format!("join {room}"),
        PlanAction::Leave { room, .. } => format!("leave {room}"),
        PlanAction::Kick { room, target } => format!("kick {target} from {room}"),
        PlanAction::Ban { room, target } => format!("ban {target} from {room}"),
        PlanAction::Unban { room, target } => format!("unban {target} in {room}"),
        PlanAction::Knock { room, .. } => format!("knock on {room}"),
        PlanAction::Redact { room, target_label } => format!("redact {target_label} in {room}"),
        PlanAction::Upgrade { room, version, new_room } => {
            format!("upgrade {room} to v{} as {new_room}", version.as_str())
        }
        PlanAction::Power { room, target, level } => {
            format!("set power of {target} to {level} in {room}")
        }
    }
}
