//! Power levels: reading them from a state (the definitions the rules use) and the rules for
//! a new `m.room.power_levels` event.
//!
//! Spec: room versions 10–12 "Authorization rules" (definitions, and rule 9 of v10/v11 =
//! rule 10 of v12) and the `m.room.power_levels` schema (digest: spec/auth-rules.md §1, §2
//! rule 9, §3 rule 10; spec/events.md §10).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::matrix::canonical_json::Object;
use crate::matrix::ids;
use crate::matrix::pdu::{LevelUsers, Pdu};
use crate::matrix::room_version::{CreatorSource, RoomVersionRules};

use super::numbering::Rule;
use super::{AuthState, PowerLevel, Rejection, reject, truncate};

/// The level properties of `m.room.power_levels` that hold a single integer, with their
/// defaults (spec: `m.room.power_levels` schema; digest: spec/events.md §10).
pub(super) const LEVEL_DEFAULTS: [(&str, i64); 7] = [
    ("users_default", 0),
    ("events_default", 0),
    ("state_default", 50),
    ("ban", 50),
    ("redact", 50),
    ("kick", 50),
    ("invite", 0),
];

/// The maps of event type (or notification key) to level checked by rules 9.2, 9.6, 9.7
/// (v12: 10.2, 10.7, 10.8).
const LEVEL_MAPS: [&str; 2] = ["events", "notifications"];

/// The level maps a room version checks: Linearized Matrix does not check `notifications`
/// (flag [`RoomVersionRules::notifications_levels`]).
fn level_maps(rules: &RoomVersionRules) -> &'static [&'static str] {
    if rules.notifications_levels { &LEVEL_MAPS } else { &LEVEL_MAPS[..1] }
}

/// `value` as a power-level integer (`LevelUsers`, which skips rule 9.3 for the maps it
/// keeps, reads values alike). Canonical JSON (enforced on every PDU) makes every
/// number an integer in [-(2^53)+1, 2^53-1], so `as_i64` is exact here.
fn as_level(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        _ => None,
    }
}

/// The current `m.room.power_levels` event of `state`, if any.
fn power_levels_event(state: &dyn AuthState) -> Option<&Pdu> {
    state.get("m.room.power_levels", "")
}

/// The current `m.room.power_levels` content of `state`, if any.
fn power_levels_content(state: &dyn AuthState) -> Option<&Object> {
    power_levels_event(state).map(Pdu::content)
}

/// `content.users` of a power-levels event, as JSON or as the event keeps it apart
/// ([`Pdu::level_users`]: only when every key is a valid user id and every value an
/// integer). Every reading of `users` by the rules goes through this.
enum Users<'a> {
    Json(&'a Value),
    Compact(&'a LevelUsers),
}

impl<'a> Users<'a> {
    /// The `users` of `event`, if present.
    fn of(event: &'a Pdu) -> Option<Users<'a>> {
        match event.level_users() {
            Some(compact) => Some(Users::Compact(compact)),
            None => event.content().get("users").map(Users::Json),
        }
    }

    /// `users[user]` as an integer, if it is one.
    fn level(&self, user: &str) -> Option<i64> {
        match self {
            Users::Json(users) => users.get(user).and_then(as_level),
            Users::Compact(users) => users.get(user),
        }
    }

    /// The integer-valued entries, read as [`level_map`] reads the other maps.
    fn level_map(&self) -> BTreeMap<&'a str, i64> {
        match self {
            Users::Json(Value::Object(map)) => integer_entries(map),
            Users::Json(_) => BTreeMap::new(),
            Users::Compact(users) => users.iter().collect(),
        }
    }
}

/// The integer-valued `users` entries of a power-levels event; empty when absent.
fn users_map(event: &Pdu) -> BTreeMap<&str, i64> {
    Users::of(event).map(|users| users.level_map()).unwrap_or_default()
}

/// A level property (`ban`, `kick`, `invite`, …) of the current power levels, or its default
/// when there is no PL event or no such key (digest: spec/auth-rules.md §1).
///
/// [digest] A non-integer value counts as absent: rule 9.1 (v12 10.1) keeps such a value
/// out of every accepted v10+ PL event, so this only matters for hostile state maps.
pub(super) fn level(state: &dyn AuthState, key: &str) -> i64 {
    let default = LEVEL_DEFAULTS.iter().find(|(name, _)| *name == key).map(|(_, d)| *d);
    let default = default.expect("level() is only asked for a known level property");
    power_levels_content(state).and_then(|c| c.get(key)).and_then(as_level).unwrap_or(default)
}

/// The power level required to send an event of `event_type`: `events[event_type]`, else
/// `state_default` for a state event, else `events_default` (digest: spec/auth-rules.md §1).
pub(super) fn required_level(state: &dyn AuthState, event_type: &str, is_state: bool) -> i64 {
    let from_events = power_levels_content(state)
        .and_then(|c| c.get("events"))
        .and_then(|events| events.get(event_type))
        .and_then(as_level);
    match from_events {
        Some(level) => level,
        None if is_state => level(state, "state_default"),
        None => level(state, "events_default"),
    }
}

/// The room creators named by a create event: in v12 (flag
/// [`RoomVersionRules::privileged_creators`]) its `sender` and every string in
/// `content.additional_creators`; in v10/v11 the single creator ([`creator`]).
pub(super) fn creators(rules: &RoomVersionRules, create: &Pdu) -> BTreeSet<String> {
    let mut creators = BTreeSet::new();
    if rules.privileged_creators {
        creators.insert(create.sender().to_owned());
        if let Some(Value::Array(additional)) = create.content().get("additional_creators") {
            // Rule 1.4 keeps malformed lists out of accepted create events; ignore
            // non-strings defensively.
            creators.extend(additional.iter().filter_map(Value::as_str).map(str::to_owned));
        }
    } else if let Some(creator) = creator(rules, create) {
        creators.insert(creator.to_owned());
    }
    creators
}

/// Whether `user` is among [`creators`], without building the set (asked for every power
/// level read in a v12 room).
pub(super) fn is_creator(rules: &RoomVersionRules, create: &Pdu, user: &str) -> bool {
    let found = if rules.privileged_creators {
        create.sender() == user
            || matches!(
                create.content().get("additional_creators"),
                Some(Value::Array(additional))
                    if additional.iter().any(|c| c.as_str() == Some(user))
            )
    } else {
        creator(rules, create) == Some(user)
    };
    debug_assert_eq!(found, creators(rules, create).contains(user), "is_creator is creators");
    found
}

/// "The room creator" of a create event as the first-join rule 4.3.1 (v12 5.3.1) and the
/// v10/v11 no-power-levels default use it: `content.creator` in v10, the create event's
/// `sender` from v11 (flag [`RoomVersionRules::creator_source`]). `None` when a v10
/// `creator` is missing or not a string.
pub(super) fn creator<'a>(rules: &RoomVersionRules, create: &'a Pdu) -> Option<&'a str> {
    match rules.creator_source {
        CreatorSource::ContentCreator => create.content().get("creator").and_then(Value::as_str),
        CreatorSource::Sender => Some(create.sender()),
    }
}

/// The power level of `user` in `state`.
///
/// Spec: "power level of a user" in the auth rules (digest: spec/auth-rules.md §1):
/// `users[user]`, else `users_default`, else 0. Without a PL event, v10/v11 give the creator
/// 100 and everyone else 0 ([impl] Synapse: v10 `content.creator`, v11 the create sender).
/// In v12 every room creator (create `sender` and `content.additional_creators`) has
/// [`PowerLevel::Infinite`], whether or not a PL event exists.
pub fn user_power_level(rules: &RoomVersionRules, state: &dyn AuthState, user: &str) -> PowerLevel {
    let create = state.get("m.room.create", "");
    if rules.privileged_creators {
        if let Some(create) = create {
            if is_creator(rules, create, user) {
                return PowerLevel::Infinite;
            }
        }
    }
    let Some(power_levels) = power_levels_event(state) else {
        let is_creator = !rules.privileged_creators
            && create.and_then(|create| creator(rules, create)) == Some(user);
        return PowerLevel::Int(if is_creator { 100 } else { 0 });
    };
    let from_users = Users::of(power_levels).and_then(|users| users.level(user));
    PowerLevel::Int(from_users.unwrap_or_else(|| level(state, "users_default")))
}

/// Rules 9.1–9.3 (v12 10.1–10.4): the shape of a new power-levels content, and in v12 that
/// no room creator is listed in `users`.
fn check_shape(rules: &RoomVersionRules, event: &Pdu, create: &Pdu) -> Result<(), Rejection> {
    check_level_properties_are_integers(rules, event.content())?;
    check_level_maps_are_integers(rules, event.content())?;
    // [impl] An absent `users` is accepted and read as `{}` (Synapse).
    match Users::of(event) {
        None => {}
        Some(Users::Json(users)) => {
            let users = check_users_map(rules, users)?;
            check_no_creator_in_users(rules, |user| users.contains_key(user), create)?;
        }
        // Kept apart only when rule 9.3 holds of it.
        Some(Users::Compact(users)) => {
            check_no_creator_in_users(rules, |user| users.get(user).is_some(), create)?;
        }
    }
    Ok(())
}

/// Rule 9.1 (v12 10.1): every single-integer level property present is an integer.
fn check_level_properties_are_integers(
    rules: &RoomVersionRules,
    content: &Object,
) -> Result<(), Rejection> {
    for (key, _) in LEVEL_DEFAULTS {
        if let Some(value) = content.get(key) {
            if as_level(value).is_none() {
                return Err(reject(
                    rules,
                    Rule::PowerLevelsNotInteger,
                    format!("{key} is not an integer"),
                ));
            }
        }
    }
    Ok(())
}

/// Rule 9.2 (v12 10.2): `events` and `notifications`, when present, are objects whose
/// values are all integers.
fn check_level_maps_are_integers(
    rules: &RoomVersionRules,
    content: &Object,
) -> Result<(), Rejection> {
    for key in level_maps(rules) {
        let Some(value) = content.get(*key) else { continue };
        let all_integers =
            value.as_object().is_some_and(|map| map.values().all(|v| as_level(v).is_some()));
        if !all_integers {
            return Err(reject(
                rules,
                Rule::PowerLevelsMapNotIntegers,
                format!("{key} is not an object of integers"),
            ));
        }
    }
    Ok(())
}

/// Rule 9.3 (v12 10.3): a present `users` is an object whose keys are valid user ids and
/// whose values are integers; returns it as an object.
fn check_users_map<'a>(
    rules: &RoomVersionRules,
    users: &'a Value,
) -> Result<&'a Object, Rejection> {
    let Some(users) = users.as_object() else {
        return Err(reject(rules, Rule::PowerLevelsUsers, "users is not an object"));
    };
    for (user, value) in users {
        if ids::parse_user_id(user).is_err() {
            return Err(reject(
                rules,
                Rule::PowerLevelsUsers,
                format!("users key {} is not a valid user id", truncate(user)),
            ));
        }
        if as_level(value).is_none() {
            return Err(reject(
                rules,
                Rule::PowerLevelsUsers,
                format!("users value for {user} is not an integer"),
            ));
        }
    }
    Ok(users)
}

/// v12 rule 10.4: `users` names no room creator (the create event's `sender` or any of its
/// `content.additional_creators`): creators have infinite power and cannot be listed (or
/// demoted). Checked before 10.5, so it applies to the first power-levels event too.
fn check_no_creator_in_users(
    rules: &RoomVersionRules,
    listed: impl Fn(&str) -> bool,
    create: &Pdu,
) -> Result<(), Rejection> {
    if rules.privileged_creators {
        if let Some(creator) = creators(rules, create).into_iter().find(|c| listed(c)) {
            return Err(reject(
                rules,
                Rule::PowerLevelsCreatorInUsers,
                format!("users lists room creator {creator}"),
            ));
        }
    }
    Ok(())
}

/// An integer-valued map of a power-levels content (`events`, `notifications`; `users`
/// through [`Users::level_map`]); empty when absent. Non-integer values are skipped
/// ([digest]: only reachable through an old PL event that a v10+ room could not have
/// accepted).
fn level_map<'a>(content: &'a Object, key: &str) -> BTreeMap<&'a str, i64> {
    let Some(Value::Object(map)) = content.get(key) else { return BTreeMap::new() };
    integer_entries(map)
}

/// The entries of `map` whose value is an integer.
fn integer_entries(map: &Object) -> BTreeMap<&str, i64> {
    map.iter().filter_map(|(k, v)| as_level(v).map(|level| (k.as_str(), level))).collect()
}

/// The entries of a map that differ between old and new: added (old `None`), removed (new
/// `None`) or changed (both `Some`), in code-point order of their keys.
fn map_changes<'a>(
    old: &BTreeMap<&'a str, i64>,
    new: &BTreeMap<&'a str, i64>,
) -> Vec<(&'a str, Option<i64>, Option<i64>)> {
    let keys: BTreeSet<&str> = old.keys().chain(new.keys()).copied().collect();
    keys.into_iter()
        .map(|key| (key, old.get(key).copied(), new.get(key).copied()))
        .filter(|(_, old, new)| old != new)
        .collect()
}

/// Rule 9 (v12 rule 10) for an `m.room.power_levels` event: validation (9.1–9.3, v12
/// 10.1–10.4), then, when the room already has power levels, the change rules 9.5–9.9
/// (v12 10.6–10.10) comparing against the sender's current power level.
///
/// [impl] For a key that is added or removed only the side that is present is compared;
/// defaults are not substituted for the missing side (Synapse `_check_power_levels`).
pub(super) fn check_power_levels_event(
    rules: &RoomVersionRules,
    event: &Pdu,
    state: &dyn AuthState,
    create: &Pdu,
) -> Result<(), Rejection> {
    let content = event.content();
    check_shape(rules, event, create)?;
    // 9.4 (v12 10.5): the first power-levels event is allowed.
    let Some(old_event) = power_levels_event(state) else { return Ok(()) };
    let old = old_event.content();
    let sender_level = user_power_level(rules, state, event.sender());
    check_level_property_changes(rules, old, content, sender_level)?;
    // The spec lists 9.6 for every entry before 9.7, so check all removals/changes first.
    let level_map_changes = level_map_changes(rules, old, content);
    check_level_map_old_values(rules, &level_map_changes, sender_level)?;
    check_level_map_new_values(rules, &level_map_changes, sender_level)?;
    let user_changes = map_changes(&users_map(old_event), &users_map(event));
    check_users_old_values(rules, &user_changes, event.sender(), sender_level)?;
    check_users_new_values(rules, &user_changes, sender_level)?;
    // 9.10 (v12 10.11): otherwise allow.
    Ok(())
}

/// Rule 9.5 (v12 10.6): for each single-integer level property that was added, changed or
/// removed, neither its old value (9.5.1) nor its new value (9.5.2) may be above the
/// sender's level.
fn check_level_property_changes(
    rules: &RoomVersionRules,
    old: &Object,
    content: &Object,
    sender_level: PowerLevel,
) -> Result<(), Rejection> {
    let above_sender = |level: i64| PowerLevel::Int(level) > sender_level;
    for (key, _) in LEVEL_DEFAULTS {
        let old_value = old.get(key).and_then(as_level);
        let new_value = content.get(key).and_then(as_level);
        if old_value == new_value {
            continue;
        }
        if let Some(old_value) = old_value.filter(|v| above_sender(*v)) {
            return Err(reject(
                rules,
                Rule::PowerLevelsOldValue,
                format!("{key} is {old_value}, above the sender's level {sender_level}"),
            ));
        }
        if let Some(new_value) = new_value.filter(|v| above_sender(*v)) {
            return Err(reject(
                rules,
                Rule::PowerLevelsNewValue,
                format!("{key} would be {new_value}, above the sender's level {sender_level}"),
            ));
        }
    }
    Ok(())
}

/// The entries that differ between the old and new `events` and `notifications` maps, as
/// (map, key, old value, new value), the maps in the order of [`LEVEL_MAPS`].
fn level_map_changes<'a>(
    rules: &RoomVersionRules,
    old: &'a Object,
    content: &'a Object,
) -> Vec<(&'static str, &'a str, Option<i64>, Option<i64>)> {
    level_maps(rules)
        .iter()
        .flat_map(|map| {
            map_changes(&level_map(old, map), &level_map(content, map))
                .into_iter()
                .map(move |(key, o, n)| (*map, key, o, n))
        })
        .collect()
}

/// Rule 9.6 (v12 10.7): for each entry changed in or removed from `events` or
/// `notifications`, its current value may not be above the sender's level.
fn check_level_map_old_values(
    rules: &RoomVersionRules,
    changes: &[(&str, &str, Option<i64>, Option<i64>)],
    sender_level: PowerLevel,
) -> Result<(), Rejection> {
    let above_sender = |level: i64| PowerLevel::Int(level) > sender_level;
    for (map, key, old_value, _) in changes {
        if let Some(old_value) = old_value.filter(|v| above_sender(*v)) {
            return Err(reject(
                rules,
                Rule::PowerLevelsMapOldValue,
                format!(
                    "{map}[{}] is {old_value}, above the sender's level {sender_level}",
                    truncate(key)
                ),
            ));
        }
    }
    Ok(())
}

/// Rule 9.7 (v12 10.8): for each entry added to or changed in `events` or
/// `notifications`, its new value may not be above the sender's level.
fn check_level_map_new_values(
    rules: &RoomVersionRules,
    changes: &[(&str, &str, Option<i64>, Option<i64>)],
    sender_level: PowerLevel,
) -> Result<(), Rejection> {
    let above_sender = |level: i64| PowerLevel::Int(level) > sender_level;
    for (map, key, _, new_value) in changes {
        if let Some(new_value) = new_value.filter(|v| above_sender(*v)) {
            return Err(reject(
                rules,
                Rule::PowerLevelsMapNewValue,
                format!(
                    "{map}[{}] would be {new_value}, above the sender's level {sender_level}",
                    truncate(key)
                ),
            ));
        }
    }
    Ok(())
}

/// Rule 9.8 (v12 10.9): for each entry changed in or removed from `users`, other than the
/// sender's own, its current value may not be at or above the sender's level (Linearized
/// Matrix 9.8.1: not above it).
fn check_users_old_values(
    rules: &RoomVersionRules,
    user_changes: &[(&str, Option<i64>, Option<i64>)],
    sender: &str,
    sender_level: PowerLevel,
) -> Result<(), Rejection> {
    for (user, old_value, _) in user_changes {
        // The sender may lower (or remove) their own entry.
        if *user == sender {
            continue;
        }
        // Matrix rejects an old value at or above the sender's level; Linearized Matrix 9.8.1
        // only one above it (flag [`RoomVersionRules::users_old_value_rejects_equal`]).
        let blocks = |old: i64| {
            let old = PowerLevel::Int(old);
            old > sender_level || (rules.users_old_value_rejects_equal && old == sender_level)
        };
        if let Some(old_value) = old_value.filter(|v| blocks(*v)) {
            let relation = if rules.users_old_value_rejects_equal { "not below" } else { "above" };
            return Err(reject(
                rules,
                Rule::PowerLevelsUsersOldValue,
                format!(
                    "users[{user}] is {old_value}, {relation} the sender's level {sender_level}"
                ),
            ));
        }
    }
    Ok(())
}

/// Rule 9.9 (v12 10.10): for each entry added to or changed in `users`, its new value may
/// not be above the sender's level.
fn check_users_new_values(
    rules: &RoomVersionRules,
    user_changes: &[(&str, Option<i64>, Option<i64>)],
    sender_level: PowerLevel,
) -> Result<(), Rejection> {
    let above_sender = |level: i64| PowerLevel::Int(level) > sender_level;
    for (user, _, new_value) in user_changes {
        if let Some(new_value) = new_value.filter(|v| above_sender(*v)) {
            return Err(reject(
                rules,
                Rule::PowerLevelsUsersNewValue,
                format!(
                    "users[{user}] would be {new_value}, above the sender's level {sender_level}"
                ),
            ));
        }
    }
    Ok(())
}
