//! The spec's numbers for the authorization rules, as data.
//!
//! Spec: the "Authorization rules" sections of room versions 10, 11 and 12 (digest:
//! spec/auth-rules.md §2 for the numbering shared by 10 and 11, §3 for 12). Code names a
//! rule by its [`Rule`] variant; the number printed in a [`Rejection`](super::Rejection) is
//! looked up here for the room version's [`AuthRuleNumbering`], so no rule number is
//! written anywhere else.
//!
//! Only rules that can reject have a variant: the "otherwise allow" steps never produce a
//! rejection and need no number.

use crate::matrix::room_version::{AuthRuleNumbering, RoomVersionRules};

/// Declares [`Rule`] from one row per rejecting step: the variant with its doc, then its
/// number in the v10/v11 numbering, in the v12 numbering and in the Linearized Matrix draft's
/// numbering (`None` where that numbering has no such rule). The rows are the only place rule
/// numbers are written.
macro_rules! rule_table {
    ($($(#[doc = $doc:literal])* $name:ident: $v10:expr, $v12:expr, $lm:expr;)*) => {
        /// A rejecting step of the authorization rules; [`Rule::numbers`] gives its number in
        /// each numbering.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
        pub enum Rule {
            $($(#[doc = $doc])* $name,)*
        }

        impl Rule {
            /// Every rule, in the spec's order.
            pub const ALL: &[Rule] = &[$(Rule::$name,)*];

            /// The rule's number as `(v10/v11 numbering, v12 numbering)`; `None` where the
            /// numbering has no such rule.
            pub const fn numbers(self) -> (Option<&'static str>, Option<&'static str>) {
                match self {
                    $(Rule::$name => ($v10, $v12),)*
                }
            }

            /// The rule's number in the Linearized Matrix draft's numbering; `None` where the
            /// draft has no such rule.
            pub const fn linearized_number(self) -> Option<&'static str> {
                match self {
                    $(Rule::$name => $lm,)*
                }
            }
        }
    };
}

// Two quirks of the spec source are resolved as the rendered pages show them (digest:
// spec/auth-rules.md §3): the v12 `room_id` check of the auth events is 3.4 (the source
// numbers it "5."), and the v12 power-levels "otherwise allow" is 10.11 (no rejection).
// CreateNoCreator is a room version 10 rule only; 11 shares the numbering but lacks it.
// The Linearized Matrix column is the draft's "Auth Rules Algorithm" (digest:
// spec/linearized-matrix.md §6): its sub-steps under 9.6–9.9 are numbered 9.6.1 etc. there.
rule_table! {
    /// Linearized Matrix rule 1: not signed by the sender's server (over the LPDU when a
    /// `hub_server` other than the sender's server is present).
    SenderSignature: None, None, Some("1");
    /// Linearized Matrix rule 2: `hub_server` is present and has not signed the event.
    HubSignature: None, None, Some("2");
    /// `m.room.create` has `prev_events`.
    CreateHasPrevEvents: Some("1.1"), Some("1.1"), Some("3.1");
    /// v10/v11: `m.room.create`'s `room_id` domain differs from its `sender` domain.
    CreateRoomIdDomain: Some("1.2"), None, Some("3.2");
    /// v12: `m.room.create` has a `room_id`.
    CreateHasRoomId: None, Some("1.2"), None;
    /// `m.room.create`'s `content.room_version` is present and not a recognised version
    /// (Linearized Matrix: is not the room's own version).
    CreateRoomVersion: Some("1.3"), Some("1.3"), Some("3.3");
    /// v10: `m.room.create` has no `content.creator`.
    CreateNoCreator: Some("1.4"), None, None;
    /// v12: `content.additional_creators` is not an array of valid user ids.
    CreateAdditionalCreators: None, Some("1.4"), None;
    /// v12: `room_id` is not `!` + the id of an accepted `m.room.create` event.
    RoomIdNotCreateEvent: None, Some("2"), None;
    /// Two `auth_events` entries share a (`type`, `state_key`) pair.
    AuthEventsDuplicate: Some("2.1"), Some("3.1"), Some("4.1");
    /// An `auth_events` entry is not one the auth-events selection would pick.
    AuthEventsUnexpected: Some("2.2"), Some("3.2"), Some("4.2");
    /// An `auth_events` entry was itself rejected.
    AuthEventsRejected: Some("2.3"), Some("3.3"), None;
    /// v10/v11: no `m.room.create` among the `auth_events`.
    AuthEventsNoCreate: Some("2.4"), None, Some("4.3");
    /// An `auth_events` entry belongs to another room.
    AuthEventsRoomId: Some("2.5"), Some("3.4"), None;
    /// The create event forbids federation and the sender is from another server.
    NotFederated: Some("3"), Some("4"), None;
    /// `m.room.member` without a `state_key` or without `content.membership`.
    MemberMalformed: Some("4.1"), Some("5.1"), Some("5.1");
    /// `join_authorised_via_users_server` is not backed by its server's signature.
    MemberAuthorisingSignature: Some("4.2.1"), Some("5.2.1"), None;
    /// Join: `sender` ≠ `state_key`.
    JoinSenderIsNotTarget: Some("4.3.2"), Some("5.3.2"), Some("5.2.2");
    /// Join: the sender is banned.
    JoinSenderBanned: Some("4.3.3"), Some("5.3.3"), Some("5.2.3");
    /// Join to an `invite`/`knock` room without being invited or joined.
    JoinNotInvited: Some("4.3.4"), Some("5.3.4"), Some("5.2.4");
    /// Restricted join: the authorising user is not joined or lacks the invite level.
    JoinRestrictedAuthoriser: Some("4.3.5.2"), Some("5.3.5.2"), None;
    /// Join under any other join rule.
    JoinRuleOther: Some("4.3.7"), Some("5.3.7"), Some("5.2.6");
    /// Third-party invite: the target is banned.
    InviteThirdPartyTargetBanned: Some("4.4.1.1"), Some("5.4.1.1"), None;
    /// Third-party invite: no `signed` object.
    InviteThirdPartyNoSigned: Some("4.4.1.2"), Some("5.4.1.2"), None;
    /// Third-party invite: `signed` lacks `mxid` or `token`.
    InviteThirdPartyNoMxidOrToken: Some("4.4.1.3"), Some("5.4.1.3"), None;
    /// Third-party invite: `mxid` ≠ `state_key`.
    InviteThirdPartyMxidMismatch: Some("4.4.1.4"), Some("5.4.1.4"), None;
    /// Third-party invite: no `m.room.third_party_invite` with `state_key` = `token`.
    InviteThirdPartyNoInviteEvent: Some("4.4.1.5"), Some("5.4.1.5"), None;
    /// Third-party invite: `sender` differs from the `m.room.third_party_invite` sender.
    InviteThirdPartySenderMismatch: Some("4.4.1.6"), Some("5.4.1.6"), None;
    /// Third-party invite: no signature in `signed` verifies with the invite's keys.
    InviteThirdPartySignature: Some("4.4.1.8"), Some("5.4.1.8"), None;
    /// Invite: the sender is not joined.
    InviteSenderNotJoined: Some("4.4.2"), Some("5.4.2"), Some("5.3.1");
    /// Invite: the target is joined or banned.
    InviteTargetJoinedOrBanned: Some("4.4.3"), Some("5.4.3"), Some("5.3.2");
    /// Invite: the sender's power level is below the invite level.
    InvitePowerLevel: Some("4.4.5"), Some("5.4.5"), Some("5.3.4");
    /// Leave by the target itself, who is not invited, joined or knocking.
    LeaveSelfNotMember: Some("4.5.1"), Some("5.5.1"), Some("5.4.1");
    /// Kick/unban: the sender is not joined.
    LeaveSenderNotJoined: Some("4.5.2"), Some("5.5.2"), Some("5.4.2");
    /// Unban: the sender's power level is below the ban level.
    LeaveUnbanPowerLevel: Some("4.5.3"), Some("5.5.3"), Some("5.4.3");
    /// Kick: the sender's power level is below the kick level or not above the target's.
    LeavePowerLevel: Some("4.5.5"), Some("5.5.5"), Some("5.4.5");
    /// Ban: the sender is not joined.
    BanSenderNotJoined: Some("4.6.1"), Some("5.6.1"), Some("5.5.1");
    /// Ban: the sender's power level is below the ban level or not above the target's.
    BanPowerLevel: Some("4.6.3"), Some("5.6.3"), Some("5.5.3");
    /// Knock: the join rule is not `knock` or `knock_restricted`.
    KnockJoinRule: Some("4.7.1"), Some("5.7.1"), Some("5.6.1");
    /// Knock: `sender` ≠ `state_key`.
    KnockSenderIsNotTarget: Some("4.7.2"), Some("5.7.2"), Some("5.6.2");
    /// Knock: the sender is banned, invited or joined.
    KnockMembership: Some("4.7.4"), Some("5.7.4"), Some("5.6.4");
    /// Any other `membership` value.
    MembershipUnknown: Some("4.8"), Some("5.8"), Some("5.7");
    /// The sender is not joined (for every event that is not a membership event).
    SenderNotJoined: Some("5"), Some("6"), Some("6");
    /// `m.room.third_party_invite` from a sender below the invite level.
    ThirdPartyInvitePowerLevel: Some("6"), Some("7"), None;
    /// The event type's required power level is above the sender's.
    EventPowerLevel: Some("7"), Some("8"), Some("7");
    /// A `state_key` starting with `@` differs from `sender`.
    StateKeyNotSender: Some("8"), Some("9"), Some("8");
    /// Power levels: a level property is not an integer.
    PowerLevelsNotInteger: Some("9.1"), Some("10.1"), Some("9.1");
    /// Power levels: `events` or `notifications` is not an object of integers.
    PowerLevelsMapNotIntegers: Some("9.2"), Some("10.2"), Some("9.2");
    /// Power levels: `users` is not an object of user id → integer.
    PowerLevelsUsers: Some("9.3"), Some("10.3"), Some("9.3");
    /// v12 power levels: `users` names a room creator.
    PowerLevelsCreatorInUsers: None, Some("10.4"), None;
    /// Power levels: a level property's current value is above the sender's level.
    PowerLevelsOldValue: Some("9.5.1"), Some("10.6.1"), Some("9.5.1");
    /// Power levels: a level property's new value is above the sender's level.
    PowerLevelsNewValue: Some("9.5.2"), Some("10.6.2"), Some("9.5.2");
    /// Power levels: a changed/removed `events`/`notifications` entry's current value is
    /// above the sender's level.
    PowerLevelsMapOldValue: Some("9.6"), Some("10.7"), Some("9.6.1");
    /// Power levels: an added/changed `events`/`notifications` entry's new value is above the
    /// sender's level.
    PowerLevelsMapNewValue: Some("9.7"), Some("10.8"), Some("9.7.1");
    /// Power levels: a changed/removed `users` entry (not the sender's own) is at or above
    /// the sender's level.
    PowerLevelsUsersOldValue: Some("9.8"), Some("10.9"), Some("9.8.1");
    /// Power levels: an added/changed `users` entry's new value is above the sender's level.
    PowerLevelsUsersNewValue: Some("9.9"), Some("10.10"), Some("9.9.1");
}

impl Rule {
    /// The rule's number in the room version's numbering, if the numbering has the rule.
    pub fn number_in(self, numbering: AuthRuleNumbering) -> Option<&'static str> {
        let (v10, v12) = self.numbers();
        match numbering {
            AuthRuleNumbering::V10 => v10,
            AuthRuleNumbering::V12 => v12,
            AuthRuleNumbering::LinearizedI1 => self.linearized_number(),
        }
    }

    /// The rule's number for a room version.
    ///
    /// Panics if the version has no such rule: the code evaluating the rules branches on
    /// the same room-version flags that decide which rules exist, so a miss is a bug in
    /// mxsim, not bad input.
    pub fn number(self, rules: &RoomVersionRules) -> &'static str {
        match self.number_in(rules.auth_rule_numbering) {
            Some(number) => number,
            None => panic!("{self:?} is not an auth rule of room version {}", rules.version),
        }
    }
}
