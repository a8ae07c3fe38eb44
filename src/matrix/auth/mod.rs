//! The authorization rules of room versions 10, 11 and 12, and auth-events selection.
//!
//! Spec: "Authorization rules" of room versions 10, 11 and 12 and Server-Server API "Auth
//! events selection" (digest: spec/auth-rules.md, spec/events.md §8, §10). Rule numbers in
//! comments are the v10/v11 ones; [`Rule`] maps every rejecting step to its number in each
//! version's numbering, and every [`Rejection`] carries the number for the event's version.
//!
//! The rules are split as the checks on receipt need them (digest: spec/auth-rules.md §0):
//! [`check_auth_events`] judges the `auth_events` list itself (v10/v11 rule 2, v12 rule 3),
//! [`check_state_rules`] everything else against a state map, and [`check_event`] runs both
//! in the spec's order. State resolution replays only [`check_state_rules`].
//!
//! Untrusted input never panics here: content of the wrong JSON type is a rejection or the
//! spec's default. Branches follow named [`RoomVersionRules`] flags, never version strings.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::matrix::crypto::KeyRing;
use crate::matrix::ids;
use crate::matrix::pdu::{self, Pdu};
use crate::matrix::room_version::{self, RoomVersionRules};

mod member;
mod numbering;
mod power_levels;
mod selection;
#[cfg(test)]
mod tests;

pub use numbering::Rule;
pub use power_levels::user_power_level;
pub use selection::{auth_keys_for_event, auth_types_for_event, select_auth_events};

/// A power level: an integer, or the infinite level of v12 room creators.
///
/// Spec: room version 12 "room creators … have an infinitely high power level" (digest:
/// spec/auth-rules.md §1). The derived order puts `Infinite` above every `Int`, and
/// [digest] `Infinite` is not below `Infinite`, so no creator outranks another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PowerLevel {
    /// An ordinary level, from `users`, `users_default` or the defaults.
    Int(i64),
    /// A v12 room creator's level, above every integer.
    Infinite,
}

impl fmt::Display for PowerLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PowerLevel::Int(level) => write!(f, "{level}"),
            PowerLevel::Infinite => f.write_str("infinite (room creator)"),
        }
    }
}

/// Why an event fails the authorization rules. `rule` is the spec's rule number for the
/// event's room version (v10/v11 numbering such as "4.3.2", v12 numbering such as "5.3.2"),
/// from the table in [`Rule::numbers`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule}: {reason}")]
pub struct Rejection {
    /// The spec's number of the rule that rejects, e.g. "4.3.2" (v10/v11) or "5.3.2" (v12).
    pub rule: &'static str,
    /// What the event did wrong, in words, for traces and explanations.
    pub reason: String,
}

/// A rejection under `rule`, numbered for the room version.
fn reject(rules: &RoomVersionRules, rule: Rule, reason: impl Into<String>) -> Rejection {
    Rejection { rule: rule.number(rules), reason: reason.into() }
}

/// Longest rendering of untrusted text in a rejection reason, in characters.
const REASON_TEXT_MAX: usize = 80;

/// Untrusted text shortened for a rejection reason.
fn truncate(text: &str) -> String {
    if text.chars().count() <= REASON_TEXT_MAX {
        text.to_owned()
    } else {
        let short: String = text.chars().take(REASON_TEXT_MAX).collect();
        format!("{short}…")
    }
}

/// Untrusted JSON shortened for a rejection reason.
fn show(value: &Value) -> String {
    truncate(&value.to_string())
}

/// The state an event is checked against: (event type, state key) → event.
///
/// Spec: the auth rules speak of "the current state" (digest: spec/auth-rules.md §0, §5):
/// depending on the check that is the state formed by the event's `auth_events`, the state
/// before the event, or the room's current state. Implementations must key every event by its
/// own `type` and `state_key` and hold only accepted (not rejected) events.
pub trait AuthState {
    /// The state event for (`event_type`, `state_key`), if any.
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Pdu>;
}

impl AuthState for BTreeMap<(String, String), Arc<Pdu>> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Pdu> {
        BTreeMap::get(self, &(event_type.to_owned(), state_key.to_owned())).map(|pdu| &**pdu)
    }
}

impl AuthState for BTreeMap<(String, String), &Pdu> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Pdu> {
        BTreeMap::get(self, &(event_type.to_owned(), state_key.to_owned())).copied()
    }
}

impl AuthState for BTreeMap<(String, String), Pdu> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Pdu> {
        BTreeMap::get(self, &(event_type.to_owned(), state_key.to_owned()))
    }
}

/// How rule 4.2.1 (v12: 5.2.1), the `join_authorised_via_users_server` signature, is
/// checked.
#[derive(Clone, Copy, Debug)]
pub enum SignatureCheck<'a> {
    /// Verify with these keys (receipt of a new event). The authorising server's keys must
    /// be in the ring; a missing key fails the rule.
    Keys(&'a KeyRing),
    /// Signatures were verified on receipt; do not re-check (state resolution replays).
    AlreadyVerified,
}

/// The current membership of `user` in `state`: `content.membership` of (`m.room.member`,
/// `user`). [impl] No member event (or, defensively, a non-string membership, which rule
/// 4.8 keeps out of accepted state) reads as `leave` (digest: spec/auth-rules.md §1).
fn membership<'a>(state: &'a dyn AuthState, user: &str) -> &'a str {
    state.get("m.room.member", user).and_then(Pdu::membership).unwrap_or("leave")
}

/// Rules about the `auth_events` list itself: v10/v11 rule 2 (2.1 duplicates, 2.2 entries
/// the selection would not pick, 2.3 rejected entries, 2.4 no create event, 2.5 another
/// room), v12 rule 3 (3.1–3.4; the create event must not be listed, and 2.4 is gone).
///
/// `auth_events` holds the events named by `event.auth_events()`, one entry per listed id in
/// order (a repeated id appears twice), each with its rejected flag. An `m.room.create` event
/// is decided by rule 1 before rule 2 is reached, so it always passes here.
///
/// Spec: "Authorization rules", rule 2 of v10/v11, rule 3 of v12 (digest:
/// spec/auth-rules.md §2, §3; spec/events.md §8).
pub fn check_auth_events(
    rules: &RoomVersionRules,
    event: &Pdu,
    auth_events: &[(&Pdu, bool)],
) -> Result<(), Rejection> {
    for (auth_event, _) in auth_events {
        // The caller resolves the event's own auth_events; anything else is a bug.
        assert!(event.auth_events().contains(auth_event.event_id()));
    }
    if event.event_type() == "m.room.create" {
        return Ok(());
    }
    // 2.1
    let mut seen: BTreeMap<(&str, Option<&str>), &Pdu> = BTreeMap::new();
    for (auth_event, _) in auth_events {
        let key = (auth_event.event_type(), auth_event.state_key());
        if let Some(first) = seen.insert(key, auth_event) {
            return Err(reject(
                rules,
                Rule::AuthEventsDuplicate,
                format!(
                    "auth events {} and {} are both ({}, {:?})",
                    first.event_id(),
                    auth_event.event_id(),
                    key.0,
                    key.1.unwrap_or("")
                ),
            ));
        }
    }
    // 2.2 (v12 3.2: the create event is not in the selection, so listing it rejects).
    // Borrowed pairs: every event checked asks this, and copying them was up to seven
    // allocations per check.
    let selected = auth_keys_for_event(
        rules,
        event.event_type(),
        event.sender(),
        event.state_key(),
        event.content(),
    );
    for (auth_event, _) in auth_events {
        let is_selected = auth_event.state_key().is_some_and(|state_key| {
            selected.iter().any(|&(t, k)| t == auth_event.event_type() && k == state_key)
        });
        if !is_selected {
            return Err(reject(
                rules,
                Rule::AuthEventsUnexpected,
                format!(
                    "auth event {} ({}, {:?}) is not one the auth events selection picks",
                    auth_event.event_id(),
                    auth_event.event_type(),
                    auth_event.state_key().unwrap_or("(no state_key)")
                ),
            ));
        }
    }
    // 2.3 (not in Linearized Matrix, which removed it deliberately).
    let rejected = auth_events.iter().find(|(_, rejected)| *rejected);
    if let Some((auth_event, _)) = rejected.filter(|_| rules.rejected_auth_events_rule) {
        return Err(reject(
            rules,
            Rule::AuthEventsRejected,
            format!("auth event {} was rejected", auth_event.event_id()),
        ));
    }
    // 2.4 (v10/v11 only).
    if rules.create_event_in_auth_events {
        let has_create = auth_events
            .iter()
            .any(|(e, _)| e.event_type() == "m.room.create" && e.state_key() == Some(""));
        if !has_create {
            return Err(reject(rules, Rule::AuthEventsNoCreate, "no m.room.create auth event"));
        }
    }
    // 2.5 (v12 3.4; not in Linearized Matrix's rule 4).
    let other_room = auth_events.iter().find(|(e, _)| e.room_id() != event.room_id());
    if let Some((auth_event, _)) = other_room.filter(|_| rules.auth_events_room_id_rule) {
        return Err(reject(
            rules,
            Rule::AuthEventsRoomId,
            format!(
                "auth event {} is in room {}, not {}",
                auth_event.event_id(),
                auth_event.room_id().unwrap_or("(none)"),
                event.room_id().unwrap_or("(none)")
            ),
        ));
    }
    Ok(())
}

/// All rules except those about the `auth_events` list, evaluated against `state`: the
/// create rules (1.*), v12 rule 2, `m.federate` (3), membership (4.*), sender joined (5),
/// third-party invites (6), required power level (7), `@` state keys (8), power levels (9.*)
/// and the default allow (10) — v12 numbers 1.*, 2, 4–11.
///
/// The create event is taken from `state` (key (`m.room.create`, `""`)); in v12 it is not
/// among the `auth_events`, so the caller must put it there. v12 rule 2 asks for an
/// *accepted* create event: `state` holds only accepted events. [impl] In v10/v11 a state
/// without a create event is rejected under 2.4, as Synapse's state-dependent checks do
/// ("No create event in auth events").
///
/// Spec: "Authorization rules" of room versions 10, 11 and 12 (digest: spec/auth-rules.md
/// §2, §3).
pub fn check_state_rules(
    rules: &RoomVersionRules,
    event: &Pdu,
    state: &dyn AuthState,
    signatures: SignatureCheck<'_>,
) -> Result<(), Rejection> {
    check_signature_rules(rules, event, signatures)?;
    if event.event_type() == "m.room.create" {
        return check_create(rules, event);
    }
    let create = room_create_event(rules, event, state)?;
    check_after_auth_events(rules, event, state, create, signatures)
}

/// Linearized Matrix rules 1 and 2 (flag [`RoomVersionRules::signature_auth_rules`]): the
/// sender's server must have signed (the LPDU when a `hub_server` other than the sender's
/// server is present), and the `hub_server`, when present, must have signed the PDU. Checked
/// only with [`SignatureCheck::Keys`]; replays pass [`SignatureCheck::AlreadyVerified`].
///
/// Spec: draft "Auth Rules Algorithm" rules 1–2 (digest: spec/linearized-matrix.md §6).
/// [digest] The hub's signature is checked before the sender's (as `pdu::verify_signatures`
/// does), so an event failing both is rejected under rule 2.
fn check_signature_rules(
    rules: &RoomVersionRules,
    event: &Pdu,
    signatures: SignatureCheck<'_>,
) -> Result<(), Rejection> {
    let SignatureCheck::Keys(keys) = signatures else { return Ok(()) };
    if !rules.signature_auth_rules {
        return Ok(());
    }
    match pdu::verify_signatures(rules, event, keys) {
        Ok(()) => Ok(()),
        Err(pdu::VerifyError::HubSignature(error)) => Err(reject(
            rules,
            Rule::HubSignature,
            format!("not validly signed by the hub_server: {error}"),
        )),
        Err(pdu::VerifyError::LpduSignature(error)) => Err(reject(
            rules,
            Rule::SenderSignature,
            format!("the LPDU is not validly signed by the sender's server: {error}"),
        )),
        Err(pdu::VerifyError::Signature(error)) => Err(reject(
            rules,
            Rule::SenderSignature,
            format!("not validly signed by the sender's server: {error}"),
        )),
    }
}

/// Every rule in the spec's order: the create rules, v12 rule 2, the `auth_events` rules
/// ([`check_auth_events`]), then the rest of [`check_state_rules`]. Use it where one event is
/// checked against one state and the rule number of the first failing rule matters (the
/// outcome equals calling [`check_auth_events`] and [`check_state_rules`] in either order).
///
/// Spec: "Authorization rules" of room versions 10, 11 and 12 (digest: spec/auth-rules.md).
pub fn check_event(
    rules: &RoomVersionRules,
    event: &Pdu,
    auth_events: &[(&Pdu, bool)],
    state: &dyn AuthState,
    signatures: SignatureCheck<'_>,
) -> Result<(), Rejection> {
    check_signature_rules(rules, event, signatures)?;
    if event.event_type() == "m.room.create" {
        return check_create(rules, event);
    }
    // v12 rule 2 comes before the auth_events rules; in v10/v11 a missing create event is
    // reported under 2.4 either way, so the order there does not matter.
    if rules.room_id_is_create_event_hash {
        room_create_event(rules, event, state)?;
    }
    check_auth_events(rules, event, auth_events)?;
    let create = room_create_event(rules, event, state)?;
    check_after_auth_events(rules, event, state, create, signatures)
}

/// Rule 1: `m.room.create`.
fn check_create(rules: &RoomVersionRules, event: &Pdu) -> Result<(), Rejection> {
    assert_eq!(event.event_type(), "m.room.create");
    // 1.1
    if !event.prev_events().is_empty() {
        return Err(reject(rules, Rule::CreateHasPrevEvents, "m.room.create has prev_events"));
    }
    // 1.2
    if rules.room_id_is_create_event_hash {
        // v12: the room id is derived from the create event, which therefore has none.
        if let Some(room_id) = event.room_id() {
            return Err(reject(
                rules,
                Rule::CreateHasRoomId,
                format!("m.room.create has room_id {room_id}"),
            ));
        }
    } else {
        let room_domain = event.room_id().and_then(ids::room_domain);
        if room_domain != Some(event.origin()) {
            return Err(reject(
                rules,
                Rule::CreateRoomIdDomain,
                format!(
                    "room_id {} is not on the sender's server {}",
                    event.room_id().unwrap_or("(none)"),
                    event.origin()
                ),
            ));
        }
    }
    let content = event.content();
    // Linearized Matrix 3.3: "`content.room_version` is not `I.1`", for the unstable version
    // its own identifier. [digest] An absent `room_version` is not the version: rejected.
    if rules.create_room_version_is_own {
        let version = content.get("room_version");
        if version.and_then(Value::as_str) != Some(rules.version.as_str()) {
            return Err(reject(
                rules,
                Rule::CreateRoomVersion,
                format!(
                    "content.room_version {} is not {}",
                    version.map_or("(absent)".to_owned(), show),
                    rules.version
                ),
            ));
        }
        // 3.4: otherwise allow.
        return Ok(());
    }
    // 1.3: a `room_version` that is not a string is not a recognised version.
    if let Some(version) = content.get("room_version") {
        if !version.as_str().is_some_and(room_version::is_known_room_version) {
            return Err(reject(
                rules,
                Rule::CreateRoomVersion,
                format!("content.room_version {} is not a known room version", show(version)),
            ));
        }
    }
    // 1.4 (v10): `creator` is required. [digest] The rule asks for the property only, not
    // its type; a non-string `creator` simply names no creator.
    if rules.create_requires_creator && !content.contains_key("creator") {
        return Err(reject(rules, Rule::CreateNoCreator, "m.room.create has no content.creator"));
    }
    // 1.4 (v12): `additional_creators` must be an array of valid user ids.
    if rules.privileged_creators {
        if let Some(additional) = content.get("additional_creators") {
            let valid = additional.as_array().is_some_and(|users| {
                users
                    .iter()
                    .all(|user| user.as_str().is_some_and(|u| ids::parse_user_id(u).is_ok()))
            });
            if !valid {
                return Err(reject(
                    rules,
                    Rule::CreateAdditionalCreators,
                    "content.additional_creators is not an array of valid user ids",
                ));
            }
        }
    }
    // 1.5 (v11, v12: 1.4 and 1.5): otherwise allow.
    Ok(())
}

/// The room's create event from `state`, checking v12 rule 2 (the event's `room_id` is `!` +
/// that create event's id without `$`).
fn room_create_event<'a>(
    rules: &RoomVersionRules,
    event: &Pdu,
    state: &'a dyn AuthState,
) -> Result<&'a Pdu, Rejection> {
    let create = state.get("m.room.create", "");
    if let Some(create) = create {
        assert_eq!(create.event_type(), "m.room.create", "state is keyed by event type");
        assert_eq!(create.state_key(), Some(""), "state is keyed by state key");
    }
    if rules.room_id_is_create_event_hash {
        let room_id = event.room_id();
        return match create {
            Some(create) if room_id.is_some_and(|r| create.event_id().names_room(r)) => Ok(create),
            _ => Err(reject(
                rules,
                Rule::RoomIdNotCreateEvent,
                format!(
                    "room_id {} is not the id of an accepted m.room.create event",
                    room_id.unwrap_or("(none)")
                ),
            )),
        };
    }
    create.ok_or_else(|| reject(rules, Rule::AuthEventsNoCreate, "no m.room.create in the state"))
}

/// Rules 3–10 of v10/v11 (v12: 4–11), for an event that is not `m.room.create`.
fn check_after_auth_events(
    rules: &RoomVersionRules,
    event: &Pdu,
    state: &dyn AuthState,
    create: &Pdu,
    signatures: SignatureCheck<'_>,
) -> Result<(), Rejection> {
    // 3: `m.federate` is false (exactly; any other value means federation is allowed). Not
    // in Linearized Matrix.
    let federate = create.content().get("m.federate").filter(|_| rules.federate_rule);
    if federate == Some(&Value::Bool(false)) && event.origin() != create.origin() {
        return Err(reject(
            rules,
            Rule::NotFederated,
            format!(
                "the room does not federate and {} is not on {}",
                event.sender(),
                create.origin()
            ),
        ));
    }
    // 4
    if event.event_type() == "m.room.member" {
        return member::check_member(rules, event, state, create, signatures);
    }
    // 5
    let sender_membership = membership(state, event.sender());
    if sender_membership != "join" {
        return Err(reject(
            rules,
            Rule::SenderNotJoined,
            format!("{} is not joined (membership {sender_membership})", event.sender()),
        ));
    }
    let sender_level = user_power_level(rules, state, event.sender());
    // 6 (not in Linearized Matrix, where the type is an ordinary state event).
    if event.event_type() == "m.room.third_party_invite" && rules.third_party_invites {
        let invite_level = power_levels::level(state, "invite");
        return if sender_level >= PowerLevel::Int(invite_level) {
            Ok(())
        } else {
            Err(reject(
                rules,
                Rule::ThirdPartyInvitePowerLevel,
                format!("sender level {sender_level} is below the invite level {invite_level}"),
            ))
        };
    }
    // 7
    let required = power_levels::required_level(state, event.event_type(), event.is_state());
    if PowerLevel::Int(required) > sender_level {
        return Err(reject(
            rules,
            Rule::EventPowerLevel,
            format!("{} needs level {required}, the sender has {sender_level}", event.event_type()),
        ));
    }
    // 8
    if let Some(state_key) = event.state_key() {
        if state_key.starts_with('@') && state_key != event.sender() {
            return Err(reject(
                rules,
                Rule::StateKeyNotSender,
                format!("state_key {state_key} starts with '@' and is not the sender"),
            ));
        }
    }
    // 9
    if event.event_type() == "m.room.power_levels" {
        return power_levels::check_power_levels_event(rules, event, state, create);
    }
    // 10
    Ok(())
}
