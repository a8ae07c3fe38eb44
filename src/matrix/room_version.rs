//! Room versions as data: one [`RoomVersionRules`] value per supported version.
//!
//! Spec: "Room versions" and the pages for versions 10, 11 and 12 (digest: spec/events.md §1,
//! spec/auth-rules.md §4), and the Linearized Matrix draft's room version `I.1`, tested as
//! `org.matrix.i-d.ralston-mimi-linearized-matrix.02` (digest: spec/linearized-matrix.md §2–§6,
//! §8). Code branches on the named flags here, never on version strings.
//!
//! The Linearized Matrix version is data like the others, but it is not in
//! [`RoomVersion::ALL`] and [`RoomVersion::parse`] does not accept it: those list the DAG room
//! versions the simulator runs. [`RoomVersion::parse_any`] accepts it for the pure tools.

use std::fmt;

/// Which redaction algorithm a room version uses (digest: spec/events.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedactionRules {
    /// The algorithm introduced in room version 9 (used by 10).
    V9,
    /// The algorithm introduced in room version 11 (used by 11 and 12).
    V11,
    /// The Linearized Matrix draft's list (digest: spec/linearized-matrix.md §5): the v11
    /// lists without `depth`, `event_id`, `join_authorised_via_users_server`,
    /// `third_party_invite.signed`, `allow` and the redaction's `redacts`, plus `hub_server`.
    LinearizedI1,
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
    /// The numbering of the Linearized Matrix draft: signature rules 1 and 2 come first, so
    /// the create rules are 3.*, the `auth_events` rules 4.* and the membership rules 5.*
    /// (digest: spec/linearized-matrix.md §6).
    LinearizedI1,
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
    /// Events carry a `depth` (required by the format, kept by redaction). Linearized Matrix
    /// has none: "depth has no meaning" there (digest: spec/linearized-matrix.md §3).
    pub depth_field: bool,
    /// Linearized Matrix events: an event may carry `hub_server`; such an event must carry
    /// `hashes.lpdu` (the content hash of the sender's partial event, the LPDU) and exactly
    /// one `prev_events` entry, the PDU content hash keeps `hashes.lpdu`, and the sender's
    /// signature covers the LPDU while the hub's covers the PDU (digest:
    /// spec/linearized-matrix.md §3–§5).
    pub lpdus: bool,
    /// Linearized Matrix auth rules 1 and 2: the sender's (LPDU) signature and the hub's
    /// signature are auth rules, checked when keys are given (digest:
    /// spec/linearized-matrix.md §6). In Matrix they are receipt checks only.
    pub signature_auth_rules: bool,
    /// Create rule: `content.room_version` must be this version's own identifier (Linearized
    /// Matrix rule 3.3) rather than any recognised version if present (Matrix rule 1.3).
    pub create_room_version_is_own: bool,
    /// Matrix rule 2.3 (v12 3.3): an `auth_events` entry that was rejected rejects the
    /// event. Linearized Matrix removed it.
    pub rejected_auth_events_rule: bool,
    /// Matrix rule 2.5 (v12 3.4): `auth_events` entries must be in the event's room. Not in
    /// Linearized Matrix's rule 4.
    pub auth_events_room_id_rule: bool,
    /// Matrix rule 3 (v12 4): `m.federate` false keeps other servers out. Not in Linearized
    /// Matrix.
    pub federate_rule: bool,
    /// `restricted` and `knock_restricted` join rules, `join_authorised_via_users_server`
    /// (its signature rule, the authoriser's selection and redaction). Removed in Linearized
    /// Matrix.
    pub restricted_joins: bool,
    /// Third-party invites: the `m.room.third_party_invite` rule, the invite sub-rules and
    /// the selection of the invite's token event. Removed in Linearized Matrix.
    pub third_party_invites: bool,
    /// A `knock` selects the join-rules event into its `auth_events`. Linearized Matrix
    /// selects it only for `join` and `invite`.
    pub knock_selects_join_rules: bool,
    /// Knocking while invited is allowed (Linearized Matrix rule 5.6.3); Matrix forbids it.
    pub knock_while_invited: bool,
    /// `notifications` in power levels is type-checked and its changes are limited. Not
    /// checked in Linearized Matrix.
    pub notifications_levels: bool,
    /// Power-levels `users` entries changed or removed by someone else: the old value must
    /// be below the sender's level (Matrix: reject at ≥). Linearized Matrix rejects only
    /// above the sender's level (>), so this is false there.
    pub users_old_value_rejects_equal: bool,
}

/// A room version mxsim supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoomVersion {
    V10,
    V11,
    V12,
    /// `org.matrix.i-d.ralston-mimi-linearized-matrix.02`, the testing name of the
    /// Linearized Matrix draft's `I.1`.
    LinearizedMatrix02,
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
    depth_field: true,
    lpdus: false,
    signature_auth_rules: false,
    create_room_version_is_own: false,
    rejected_auth_events_rule: true,
    auth_events_room_id_rule: true,
    federate_rule: true,
    restricted_joins: true,
    third_party_invites: true,
    knock_selects_join_rules: true,
    knock_while_invited: false,
    notifications_levels: true,
    users_old_value_rejects_equal: true,
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

/// The identifier of [`LINEARIZED_02`]: the draft's `I.1` as test implementations name it
/// (digest: spec/linearized-matrix.md §0, §2).
pub const LINEARIZED_02_ID: &str = "org.matrix.i-d.ralston-mimi-linearized-matrix.02";

/// Linearized Matrix `I.1` as `org.matrix.i-d.ralston-mimi-linearized-matrix.02`: room
/// version 11 with the differences the draft lists (digest: spec/linearized-matrix.md §8).
/// Its rooms are ordered by a hub, so state resolution (v2, inherited from v11) runs only
/// among DAG-capable servers of a mixed room.
pub const LINEARIZED_02: RoomVersionRules = RoomVersionRules {
    version: RoomVersion::LinearizedMatrix02,
    redaction: RedactionRules::LinearizedI1,
    auth_rule_numbering: AuthRuleNumbering::LinearizedI1,
    depth_field: false,
    lpdus: true,
    signature_auth_rules: true,
    create_room_version_is_own: true,
    rejected_auth_events_rule: false,
    auth_events_room_id_rule: false,
    federate_rule: false,
    restricted_joins: false,
    third_party_invites: false,
    knock_selects_join_rules: false,
    knock_while_invited: true,
    notifications_levels: false,
    users_old_value_rejects_equal: false,
    ..V11
};

/// Error for a room version string mxsim does not support.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported room version {0:?} (supported: 10, 11, 12)")]
pub struct UnknownRoomVersion(pub String);

/// Error for a room version string mxsim does not know at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported room version {0:?} (supported: 10, 11, 12, {LINEARIZED_02_ID})")]
pub struct UnknownAnyRoomVersion(pub String);

impl RoomVersion {
    /// The DAG room versions the simulator runs.
    pub const ALL: [RoomVersion; 3] = [RoomVersion::V10, RoomVersion::V11, RoomVersion::V12];

    /// The Linearized Matrix room versions (pure rules only; the simulator does not create
    /// such rooms yet).
    pub const LINEARIZED: [RoomVersion; 1] = [RoomVersion::LinearizedMatrix02];

    /// Parses one of the DAG room versions in [`RoomVersion::ALL`].
    pub fn parse(text: &str) -> Result<RoomVersion, UnknownRoomVersion> {
        match text {
            "10" => Ok(RoomVersion::V10),
            "11" => Ok(RoomVersion::V11),
            "12" => Ok(RoomVersion::V12),
            _ => Err(UnknownRoomVersion(text.chars().take(40).collect())),
        }
    }

    /// Parses any room version mxsim has rules for, Linearized Matrix included.
    pub fn parse_any(text: &str) -> Result<RoomVersion, UnknownAnyRoomVersion> {
        match text {
            LINEARIZED_02_ID => Ok(RoomVersion::LinearizedMatrix02),
            _ => RoomVersion::parse(text).map_err(|e| UnknownAnyRoomVersion(e.0)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RoomVersion::V10 => "10",
            RoomVersion::V11 => "11",
            RoomVersion::V12 => "12",
            RoomVersion::LinearizedMatrix02 => LINEARIZED_02_ID,
        }
    }

    pub fn rules(self) -> &'static RoomVersionRules {
        match self {
            RoomVersion::V10 => &V10,
            RoomVersion::V11 => &V11,
            RoomVersion::V12 => &V12,
            RoomVersion::LinearizedMatrix02 => &LINEARIZED_02,
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
        // Every Matrix version keeps every rule the Linearized Matrix draft removed.
        for r in [v10, v11, v12] {
            assert!(r.depth_field && !r.lpdus && !r.signature_auth_rules);
            assert!(!r.create_room_version_is_own && !r.knock_while_invited);
            assert!(r.rejected_auth_events_rule && r.auth_events_room_id_rule && r.federate_rule);
            assert!(r.restricted_joins && r.third_party_invites && r.knock_selects_join_rules);
            assert!(r.notifications_levels && r.users_old_value_rejects_equal);
        }
    }

    #[test]
    fn linearized_matrix_is_v11_with_the_drafts_differences() {
        // The identifier the draft's implementation note names for testing `I.1`.
        assert_eq!(LINEARIZED_02_ID, "org.matrix.i-d.ralston-mimi-linearized-matrix.02");
        let lm = RoomVersion::parse_any(LINEARIZED_02_ID).unwrap();
        assert_eq!(lm, RoomVersion::LinearizedMatrix02);
        assert_eq!(lm.as_str(), LINEARIZED_02_ID);
        // Not a DAG version: the simulator's parser and list leave it out.
        assert!(RoomVersion::parse(LINEARIZED_02_ID).is_err());
        assert!(!RoomVersion::ALL.contains(&lm));
        assert_eq!(RoomVersion::LINEARIZED, [lm]);
        for v in RoomVersion::ALL {
            assert_eq!(RoomVersion::parse_any(v.as_str()).unwrap(), v);
        }
        // The draft's `I.1` and the older `.00` are not this version.
        assert!(RoomVersion::parse_any("I.1").is_err());
        assert!(
            RoomVersion::parse_any("org.matrix.i-d.ralston-mimi-linearized-matrix.00").is_err()
        );
        let r = lm.rules();
        assert_eq!(r.version, lm);
        // Kept from v11 (digest: spec/linearized-matrix.md §2, §8): domain room ids, the
        // create event in auth_events, the create sender as creator, no privileged creators.
        assert_eq!(r.room_id_format, crate::matrix::ids::RoomIdFormat::Domain);
        assert!(!r.room_id_is_create_event_hash && r.create_event_in_auth_events);
        assert_eq!(r.creator_source, CreatorSource::Sender);
        assert!(!r.privileged_creators && !r.create_requires_creator && r.redacts_in_content);
        // The listed differences.
        assert_eq!(r.redaction, RedactionRules::LinearizedI1);
        assert_eq!(r.auth_rule_numbering, AuthRuleNumbering::LinearizedI1);
        assert!(!r.depth_field && r.lpdus && r.signature_auth_rules);
        assert!(r.create_room_version_is_own && r.knock_while_invited);
        assert!(!r.rejected_auth_events_rule && !r.auth_events_room_id_rule && !r.federate_rule);
        assert!(!r.restricted_joins && !r.third_party_invites && !r.knock_selects_join_rules);
        assert!(!r.notifications_levels && !r.users_old_value_rejects_equal);
    }
}
