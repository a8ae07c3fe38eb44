//! Room versions as data: one [`RoomVersionRules`] value per supported version.
//!
//! Spec: "Room versions" and the pages for versions 10, 11 and 12 (digest: spec/events.md §1,
//! spec/auth-rules.md §4). Code branches on the named flags here, never on version strings.

use std::fmt;

/// Which redaction algorithm a room version uses (digest: spec/events.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedactionRules {
    /// The algorithm introduced in room version 9 (used by 10).
    V9,
    /// The algorithm introduced in room version 11 (used by 11 and 12).
    V11,
}

/// Which state resolution algorithm a room version uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateResAlgorithm {
    /// State resolution v2 (room versions 2–11).
    V2,
    /// State resolution v2.1 (room version 12): empty starting state for power events and
    /// the conflicted state subgraph.
    V2_1,
}

/// Where the room creator comes from when the rules need "the creator".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreatorSource {
    /// `content.creator` of the create event (room versions 1–10).
    ContentCreator,
    /// The `sender` of the create event (room version 11 and later).
    Sender,
}

/// Which numbering of the authorization rules a room version's spec page uses
/// (digest: spec/auth-rules.md §2, §3). Rejections carry the rule number in this scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthRuleNumbering {
    /// The numbering shared by room versions 10 and 11 (membership rules are 4.*).
    V10,
    /// The numbering of room version 12 (a new rule 2 shifts most later rules by one).
    V12,
}

/// Everything that differs between the supported room versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomVersionRules {
    pub version: RoomVersion,
    pub redaction: RedactionRules,
    pub state_res: StateResAlgorithm,
    /// `room_id` shape for this version.
    pub room_id_format: crate::matrix::ids::RoomIdFormat,
    /// v12: the create event has no `room_id`; the room id is `!` + its reference hash.
    pub room_id_is_create_event_hash: bool,
    /// v10, v11: the create event must be listed in every other event's `auth_events`;
    /// v12: it must not be.
    pub create_event_in_auth_events: bool,
    /// v10: `m.room.redaction` names its target in a top-level `redacts`; v11 and later in
    /// `content.redacts`.
    pub redacts_in_content: bool,
    /// v10: the create event must have `content.creator` (auth rule 1.4).
    pub create_requires_creator: bool,
    pub creator_source: CreatorSource,
    /// v12: the create `sender` and `content.additional_creators` have infinite power
    /// and may not appear in power levels `users`.
    pub privileged_creators: bool,
    /// v11 and later: a field ≤ 255 code points but > 255 bytes drops the event rather
    /// than rejecting it ([impl] Synapse; the spec only says 255 bytes).
    pub strict_field_byte_limits: bool,
    /// How the authorization rules are numbered in rejections.
    pub auth_rule_numbering: AuthRuleNumbering,
}

/// A room version mxsim supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoomVersion {
    V10,
    V11,
    V12,
}

/// Room version 10 (digest: spec/events.md §1).
pub const V10: RoomVersionRules = RoomVersionRules {
    version: RoomVersion::V10,
    redaction: RedactionRules::V9,
    state_res: StateResAlgorithm::V2,
    room_id_format: crate::matrix::ids::RoomIdFormat::Domain,
    room_id_is_create_event_hash: false,
    create_event_in_auth_events: true,
    redacts_in_content: false,
    create_requires_creator: true,
    creator_source: CreatorSource::ContentCreator,
    privileged_creators: false,
    strict_field_byte_limits: false,
    auth_rule_numbering: AuthRuleNumbering::V10,
};

/// Room version 11: v10 with the v11 redaction rules, `creator` gone, `redacts` moved.
pub const V11: RoomVersionRules = RoomVersionRules {
    version: RoomVersion::V11,
    redaction: RedactionRules::V11,
    redacts_in_content: true,
    create_requires_creator: false,
    creator_source: CreatorSource::Sender,
    strict_field_byte_limits: true,
    ..V10
};

/// Room version 12: v11 with hashed room ids, privileged creators and state resolution v2.1.
pub const V12: RoomVersionRules = RoomVersionRules {
    version: RoomVersion::V12,
    state_res: StateResAlgorithm::V2_1,
    room_id_format: crate::matrix::ids::RoomIdFormat::CreateEventHash,
    room_id_is_create_event_hash: true,
    create_event_in_auth_events: false,
    privileged_creators: true,
    auth_rule_numbering: AuthRuleNumbering::V12,
    ..V11
};

/// Error for a room version string mxsim does not support.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported room version {0:?} (supported: 10, 11, 12)")]
pub struct UnknownRoomVersion(pub String);

impl RoomVersion {
    pub const ALL: [RoomVersion; 3] = [RoomVersion::V10, RoomVersion::V11, RoomVersion::V12];

    pub fn parse(text: &str) -> Result<RoomVersion, UnknownRoomVersion> {
        match text {
            "10" => Ok(RoomVersion::V10),
            "11" => Ok(RoomVersion::V11),
            "12" => Ok(RoomVersion::V12),
            _ => Err(UnknownRoomVersion(text.chars().take(40).collect())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RoomVersion::V10 => "10",
            RoomVersion::V11 => "11",
            RoomVersion::V12 => "12",
        }
    }

    pub fn rules(self) -> &'static RoomVersionRules {
        match self {
            RoomVersion::V10 => &V10,
            RoomVersion::V11 => &V11,
            RoomVersion::V12 => &V12,
        }
    }
}

impl fmt::Display for RoomVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a `content.room_version` string names a room version the spec defines (auth rule
/// 1.3 rejects a create event naming an unrecognised one). Versions 1–12 are all stable.
pub fn is_known_room_version(text: &str) -> bool {
    matches!(text, "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "10" | "11" | "12")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_and_differ_where_the_spec_says() {
        for v in RoomVersion::ALL {
            assert_eq!(RoomVersion::parse(v.as_str()).unwrap(), v);
            assert_eq!(v.rules().version, v);
        }
        assert!(RoomVersion::parse("9").is_err());
        assert!(RoomVersion::parse("org.matrix.hydra.11").is_err());
        // Read through `rules()` so the table is checked as callers see it.
        let [v10, v11, v12] = RoomVersion::ALL.map(RoomVersion::rules);
        assert_eq!(v10.redaction, RedactionRules::V9);
        assert_eq!(v11.redaction, RedactionRules::V11);
        assert_eq!(v12.redaction, RedactionRules::V11);
        assert_eq!([v10, v11, v12].map(|r| r.create_event_in_auth_events), [true, true, false]);
        assert_eq!(
            [v10, v11, v12].map(|r| r.state_res),
            [StateResAlgorithm::V2, StateResAlgorithm::V2, StateResAlgorithm::V2_1]
        );
        assert_eq!([v10, v11, v12].map(|r| r.redacts_in_content), [false, true, true]);
        assert_eq!([v10, v11, v12].map(|r| r.privileged_creators), [false, false, true]);
        assert_eq!([v10, v11, v12].map(|r| r.create_requires_creator), [true, false, false]);
        assert_eq!(
            [v10, v11, v12].map(|r| r.auth_rule_numbering),
            [AuthRuleNumbering::V10, AuthRuleNumbering::V10, AuthRuleNumbering::V12]
        );
    }
}
