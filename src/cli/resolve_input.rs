//! The input file of `mxsim resolve`: a room version, events with given ids, and state sets.
//!
//! ```json
//! { "room_version": "12",
//!   "events": [ { "event_id": "$create", "type": "m.room.create", ... , "rejected": false } ],
//!   "state_sets": [ { "m.room.create": { "": "$create" } } ] }
//! ```
//!
//! Every problem is reported with the file name and a JSON path (or line:column for JSON
//! syntax errors), and names the event id involved.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::cli::CliError;
use crate::matrix::canonical_json::{self, Numbers, Object};
use crate::matrix::dag::RejectionKind;
use crate::matrix::{EventId, Pdu, RoomVersion};

/// A state map: (event type, state key) → event id.
pub type StateMap = BTreeMap<(String, String), EventId>;

/// A parsed and cross-checked `mxsim resolve` input.
pub struct ResolveInput {
    pub room_version: RoomVersion,
    /// Events in file order, each with how it was rejected on receipt, if it was.
    pub events: Vec<(Pdu, Option<RejectionKind>)>,
    pub state_sets: Vec<StateMap>,
}

fn error(file: &str, path: &str, problem: impl std::fmt::Display) -> CliError {
    CliError::input(format!("{file}: {path}: {problem}"))
}

/// Parses and checks the input: every event is a well-formed PDU of the room version with a
/// unique id; every `auth_events` entry and every state-set entry names an event in the
/// file; each state-set entry's key matches its event's `type` and `state_key`.
pub fn parse(file: &str, bytes: &[u8]) -> Result<ResolveInput, CliError> {
    let value = canonical_json::parse(bytes, Numbers::IntegerLiterals)
        .map_err(|e| CliError::input(format!("{file}: {e}")))?;
    let Value::Object(mut root) = value else {
        return Err(error(file, "$", "must be an object with room_version, events, state_sets"));
    };
    for key in root.keys() {
        if !["room_version", "events", "state_sets"].contains(&key.as_str()) {
            let mut path = String::from("$");
            canonical_json::push_key(&mut path, key);
            return Err(error(
                file,
                &path,
                "unknown field (expected room_version, events, state_sets)",
            ));
        }
    }
    let room_version = match root.remove("room_version") {
        Some(Value::String(v)) => {
            RoomVersion::parse(&v).map_err(|e| error(file, "$.room_version", e))?
        }
        Some(_) => return Err(error(file, "$.room_version", "must be a string such as \"12\"")),
        None => return Err(error(file, "$.room_version", "missing required field")),
    };
    let rules = room_version.rules();
    let Some(Value::Array(raw_events)) = root.remove("events") else {
        return Err(error(file, "$.events", "missing, or not an array of events"));
    };
    let mut events = Vec::with_capacity(raw_events.len());
    let mut by_id: BTreeMap<EventId, usize> = BTreeMap::new();
    for (index, raw) in raw_events.into_iter().enumerate() {
        let path = format!("$.events[{index}]");
        let Value::Object(mut object) = raw else {
            return Err(error(file, &path, "must be an event object"));
        };
        let rejected = match object.remove("rejected") {
            None => None,
            Some(value) => crate::cli::resolve::rejection_kind(&value)
                .map_err(|problem| error(file, &format!("{path}.rejected"), problem))?,
        };
        let pdu = Pdu::with_given_id(rules, object).map_err(|e| {
            // The format error's path is relative to the event.
            error(file, &format!("{path}{}", e.path.trim_start_matches('$')), e.problem)
        })?;
        if let Some(first) = by_id.insert(pdu.event_id().clone(), index) {
            return Err(error(
                file,
                &format!("{path}.event_id"),
                format!("duplicate event id {} (first at $.events[{first}])", pdu.event_id()),
            ));
        }
        events.push((pdu, rejected));
    }
    for (index, (pdu, _)) in events.iter().enumerate() {
        for (auth_index, auth) in pdu.auth_events().iter().enumerate() {
            if !by_id.contains_key(auth) {
                return Err(error(
                    file,
                    &format!("$.events[{index}].auth_events[{auth_index}]"),
                    format!(
                        "event {} cites auth event {auth}, which is not in the file",
                        pdu.event_id()
                    ),
                ));
            }
        }
    }
    let Some(Value::Array(raw_sets)) = root.remove("state_sets") else {
        return Err(error(file, "$.state_sets", "missing, or not an array of state maps"));
    };
    let mut state_sets = Vec::with_capacity(raw_sets.len());
    for (index, raw) in raw_sets.into_iter().enumerate() {
        let path = format!("$.state_sets[{index}]");
        state_sets.push(parse_state_map(file, &path, raw, &events, &by_id)?);
    }
    Ok(ResolveInput { room_version, events, state_sets })
}

fn parse_state_map(
    file: &str,
    path: &str,
    raw: Value,
    events: &[(Pdu, Option<RejectionKind>)],
    by_id: &BTreeMap<EventId, usize>,
) -> Result<StateMap, CliError> {
    let Value::Object(by_type) = raw else {
        return Err(error(file, path, "must be an object {type: {state_key: event_id}}"));
    };
    let mut map = StateMap::new();
    let mut seen: BTreeSet<EventId> = BTreeSet::new();
    for (event_type, by_key) in by_type {
        let mut type_path = path.to_owned();
        canonical_json::push_key(&mut type_path, &event_type);
        let Value::Object(by_key) = by_key else {
            return Err(error(file, &type_path, "must be an object {state_key: event_id}"));
        };
        for (state_key, id) in by_key {
            let mut entry_path = type_path.clone();
            canonical_json::push_key(&mut entry_path, &state_key);
            let Value::String(id) = id else {
                return Err(error(file, &entry_path, "must be an event id string"));
            };
            let id = EventId::parse(&id).map_err(|e| error(file, &entry_path, e))?;
            let Some(&index) = by_id.get(&id) else {
                return Err(error(file, &entry_path, format!("event {id} is not in $.events")));
            };
            let pdu = &events[index].0;
            if pdu.event_type() != event_type || pdu.state_key() != Some(state_key.as_str()) {
                return Err(error(
                    file,
                    &entry_path,
                    format!(
                        "event {id} has type {:?} and state_key {:?}, not this key",
                        pdu.event_type(),
                        pdu.state_key()
                    ),
                ));
            }
            if !seen.insert(id.clone()) {
                return Err(error(file, &entry_path, format!("event {id} appears twice")));
            }
            map.insert((event_type.clone(), state_key), id);
        }
    }
    Ok(map)
}

/// Writes a state map in the nested `{type: {state_key: event_id}}` form.
pub fn nested(map: &StateMap) -> Value {
    let mut out = Object::new();
    for ((event_type, state_key), id) in map {
        let entry = out.entry(event_type.clone()).or_insert_with(|| Value::Object(Object::new()));
        entry
            .as_object_mut()
            .expect("only objects are inserted")
            .insert(state_key.clone(), Value::String(id.as_str().to_owned()));
    }
    Value::Object(out)
}
