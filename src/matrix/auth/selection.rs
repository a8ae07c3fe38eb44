//! Auth-events selection: which state events a new event lists in its `auth_events`.
//!
//! Spec: Server-Server API, "Auth events selection" (digest: spec/events.md §8). The same
//! selection decides which entries a receiver accepts (auth rule 2.2, v12 3.2) and which
//! state keys state resolution overlays during its iterative auth checks.

use serde_json::Value;

use crate::matrix::canonical_json::Object;
use crate::matrix::ids::EventId;
use crate::matrix::room_version::RoomVersionRules;

use super::AuthState;

/// The (`type`, `state_key`) pairs the auth-events selection picks for an event, without
/// duplicates, in a fixed order (create, power levels, sender, target, join rules,
/// third-party invite, authorising user).
///
/// Spec: Server-Server API "Auth events selection" (digest: spec/events.md §8):
/// `m.room.create` selects nothing; otherwise the create event (v10/v11 only — v12 MUST NOT
/// select it, flag [`RoomVersionRules::create_event_in_auth_events`]), the power levels, the
/// sender's membership, and for `m.room.member` the target's membership, the join rules (for
/// `join`/`invite`/`knock`), the third-party invite named by
/// `content.third_party_invite.signed.token` (for `invite`) and the membership of
/// `content.join_authorised_via_users_server` (for `join`; restricted rooms exist in every
/// supported version).
///
/// [digest] Content values of the wrong JSON type select nothing (a non-string `token` or
/// authorising user names no state key); the auth rules then reject or ignore them.
pub fn auth_types_for_event(
    rules: &RoomVersionRules,
    event_type: &str,
    sender: &str,
    state_key: Option<&str>,
    content: &Object,
) -> Vec<(String, String)> {
    auth_keys_for_event(rules, event_type, sender, state_key, content)
        .into_iter()
        .map(|(event_type, state_key)| (event_type.to_owned(), state_key.to_owned()))
        .collect()
}

/// [`auth_types_for_event`] without copying: the pairs borrow from the event. State
/// resolution asks for them once per event it replays.
pub fn auth_keys_for_event<'a>(
    rules: &RoomVersionRules,
    event_type: &str,
    sender: &'a str,
    state_key: Option<&'a str>,
    content: &'a Object,
) -> Vec<(&'static str, &'a str)> {
    let mut types: Vec<(&'static str, &'a str)> = Vec::with_capacity(7);
    let mut add = |event_type: &'static str, state_key: &'a str| {
        if !types.contains(&(event_type, state_key)) {
            types.push((event_type, state_key));
        }
    };
    if event_type == "m.room.create" {
        return Vec::new();
    }
    if rules.create_event_in_auth_events {
        add("m.room.create", "");
    }
    add("m.room.power_levels", "");
    add("m.room.member", sender);
    if event_type == "m.room.member" {
        let membership = content.get("membership").and_then(Value::as_str);
        if let Some(target) = state_key {
            add("m.room.member", target);
        }
        // Linearized Matrix selects the join rules for `join` and `invite` only.
        let knock = membership == Some("knock") && rules.knock_selects_join_rules;
        if matches!(membership, Some("join" | "invite")) || knock {
            add("m.room.join_rules", "");
        }
        if membership == Some("invite") && rules.third_party_invites {
            let token = content
                .get("third_party_invite")
                .and_then(|invite| invite.get("signed"))
                .and_then(|signed| signed.get("token"))
                .and_then(Value::as_str);
            if let Some(token) = token {
                add("m.room.third_party_invite", token);
            }
        }
        if membership == Some("join") && rules.restricted_joins {
            let authoriser =
                content.get("join_authorised_via_users_server").and_then(Value::as_str);
            if let Some(authoriser) = authoriser {
                add("m.room.member", authoriser);
            }
        }
    }
    assert!(types.len() <= 7, "the selection has at most seven distinct entries");
    assert!(rules.create_event_in_auth_events || types.iter().all(|(t, _)| *t != "m.room.create"));
    types
}

/// The `auth_events` for a new event built on `state` (the state before the event): the
/// ids of the events [`auth_types_for_event`] selects that exist in `state`, in selection
/// order.
///
/// Spec: Server-Server API "Auth events selection" (digest: spec/events.md §8). In v12 the
/// creator's first join selects nothing, so its `auth_events` is empty.
pub fn select_auth_events(
    rules: &RoomVersionRules,
    event_type: &str,
    sender: &str,
    state_key: Option<&str>,
    content: &Object,
    state: &dyn AuthState,
) -> Vec<EventId> {
    let mut ids: Vec<EventId> = Vec::new();
    for (selected_type, selected_key) in
        auth_types_for_event(rules, event_type, sender, state_key, content)
    {
        if let Some(pdu) = state.get(&selected_type, &selected_key) {
            // The state map is keyed by each event's own type and state key.
            assert_eq!(pdu.event_type(), selected_type);
            assert_eq!(pdu.state_key(), Some(selected_key.as_str()));
            if !ids.contains(pdu.event_id()) {
                ids.push(pdu.event_id().clone());
            }
        }
    }
    ids
}
