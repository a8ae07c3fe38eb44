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
//!
//! Events are taken as other implementations' test fixtures and exports write them: only
//! what state resolution reads is checked (`pdu::Stage::Resolution`), and `auth_events` or
//! `prev_events` entries may be `[event_id, {hashes}]` pairs, the room version 1 and 2
//! form that Synapse's state resolution tests still build. `--strict` checks every event
//! as a PDU of the room version instead. Unknown top-level fields are ignored and named
//! once, so that files carrying extra metadata load.
//!
//! Events are looked up by id in one sorted list (a binary search), never in a map grown
//! one insertion at a time: inputs run to hundreds of thousands of events.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cli::CliError;
use crate::matrix::canonical_json::{self, Numbers, Object};
use crate::matrix::dag::RejectionKind;
use crate::matrix::pdu::Stage;
use crate::matrix::{EventId, Pdu, RoomVersion};

/// A state map: (event type, state key) → event id.
pub type StateMap = BTreeMap<(String, String), EventId>;

/// A parsed and cross-checked `mxsim resolve` input.
pub struct ResolveInput {
    pub room_version: RoomVersion,
    /// Events in file order, each with how it was rejected on receipt, if it was.
    pub events: Vec<(Pdu, Option<RejectionKind>)>,
    pub state_sets: Vec<StateMap>,
    /// Top-level fields the format does not define, which were ignored, sorted.
    pub ignored_fields: Vec<String>,
}

/// How strictly events are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strictness {
    /// Only what state resolution reads; fixture and export shapes load as they are.
    Resolution,
    /// Every event must be a well-formed PDU of the room version (`hashes` and
    /// `signatures` may be missing: nothing is verified).
    Pdu,
}

/// Events in id order with their position in the file: lookups by binary search.
struct ById<'a> {
    sorted: Vec<(&'a EventId, usize)>,
}

impl ById<'_> {
    fn get(&self, id: &str) -> Option<usize> {
        let found = self.sorted.binary_search_by(|(probe, _)| probe.as_str().cmp(id)).ok()?;
        Some(self.sorted[found].1)
    }
}

fn error(file: &str, path: &str, problem: impl std::fmt::Display) -> CliError {
    CliError::input(format!("{file}: {path}: {problem}"))
}

/// Parses and checks the input: every event is a well-formed event of the room version
/// (as `strictness` says) with a unique id; every `auth_events` entry and every state-set
/// entry names an event in the file; each state-set entry's key matches its event's `type`
/// and `state_key`.
pub fn parse(file: &str, bytes: &[u8], strictness: Strictness) -> Result<ResolveInput, CliError> {
    let value = canonical_json::parse(bytes, Numbers::IntegerLiterals)
        .map_err(|e| CliError::input(format!("{file}: {e}")))?;
    let Value::Object(mut root) = value else {
        return Err(error(file, "$", "must be an object with room_version, events, state_sets"));
    };
    let ignored_fields: Vec<String> = root
        .keys()
        .filter(|key| !["room_version", "events", "state_sets"].contains(&key.as_str()))
        .cloned()
        .collect();
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
    let stage = match strictness {
        Strictness::Resolution => Stage::Resolution,
        Strictness::Pdu => Stage::Unsigned,
    };
    let mut events = Vec::with_capacity(raw_events.len());
    for (index, raw) in raw_events.into_iter().enumerate() {
        let path = || format!("$.events[{index}]");
        let Value::Object(mut object) = raw else {
            return Err(error(file, &path(), "must be an event object"));
        };
        let rejected = match object.remove("rejected") {
            None => None,
            Some(value) => rejection_kind(&value)
                .map_err(|problem| error(file, &format!("{}.rejected", path()), problem))?,
        };
        if strictness == Strictness::Resolution {
            unpair_references(&mut object);
        }
        let pdu = Pdu::with_given_id_at(rules, object, stage).map_err(|e| {
            // The format error's path is relative to the event.
            error(file, &format!("{}{}", path(), e.path.trim_start_matches('$')), e.problem)
        })?;
        events.push((pdu, rejected));
    }
    let mut sorted: Vec<(&EventId, usize)> =
        events.iter().enumerate().map(|(index, (pdu, _))| (pdu.event_id(), index)).collect();
    sorted.sort_unstable();
    // Of the repeated ids, report the one whose second occurrence comes first in the file.
    let duplicate = sorted
        .windows(2)
        .filter(|pair| pair[0].0 == pair[1].0)
        .map(|pair| (pair[1].1, pair[0].1))
        .min();
    if let Some((index, _)) = duplicate {
        let id = events[index].0.event_id();
        let first = sorted.iter().find(|(probe, _)| *probe == id).expect("listed").1;
        return Err(error(
            file,
            &format!("$.events[{index}].event_id"),
            format!("duplicate event id {id} (first at $.events[{first}])"),
        ));
    }
    let by_id = ById { sorted };
    for (index, (pdu, _)) in events.iter().enumerate() {
        for (auth_index, auth) in pdu.auth_events().iter().enumerate() {
            if by_id.get(auth.as_str()).is_none() {
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
    drop(by_id);
    Ok(ResolveInput { room_version, events, state_sets, ignored_fields })
}

/// Replaces `[event_id, {hashes}]` entries of `auth_events` and `prev_events` (the room
/// version 1 and 2 reference form) by the event id. Anything else is left for the format
/// check to judge.
fn unpair_references(object: &mut Object) {
    for key in ["auth_events", "prev_events"] {
        let Some(Value::Array(items)) = object.get_mut(key) else { continue };
        for item in items {
            let id = match item {
                Value::Array(pair) => match pair.as_mut_slice() {
                    [Value::String(id), Value::Object(_)] => std::mem::take(id),
                    _ => continue,
                },
                _ => continue,
            };
            *item = Value::String(id);
        }
    }
}

fn parse_state_map(
    file: &str,
    path: &str,
    raw: Value,
    events: &[(Pdu, Option<RejectionKind>)],
    by_id: &ById<'_>,
) -> Result<StateMap, CliError> {
    let Value::Object(by_type) = raw else {
        return Err(error(file, path, "must be an object {type: {state_key: event_id}}"));
    };
    // Entries come sorted by (type, state key): collected, then built into a map in bulk.
    let mut entries: Vec<((String, String), EventId)> = Vec::new();
    // By position in the file: whether the event was listed already.
    let mut seen = vec![false; events.len()];
    for (event_type, by_key) in by_type {
        let type_path = || {
            let mut type_path = path.to_owned();
            canonical_json::push_key(&mut type_path, &event_type);
            type_path
        };
        let Value::Object(by_key) = by_key else {
            return Err(error(file, &type_path(), "must be an object {state_key: event_id}"));
        };
        for (state_key, id) in by_key {
            let entry_path = || {
                let mut entry_path = type_path();
                canonical_json::push_key(&mut entry_path, &state_key);
                entry_path
            };
            let Value::String(id) = id else {
                return Err(error(file, &entry_path(), "must be an event id string"));
            };
            let Some(index) = by_id.get(&id) else {
                let id = EventId::parse(&id).map_err(|e| error(file, &entry_path(), e))?;
                return Err(error(file, &entry_path(), format!("event {id} is not in $.events")));
            };
            let pdu = &events[index].0;
            if pdu.event_type() != event_type || pdu.state_key() != Some(state_key.as_str()) {
                return Err(error(
                    file,
                    &entry_path(),
                    format!(
                        "event {id} has type {:?} and state_key {:?}, not this key",
                        pdu.event_type(),
                        pdu.state_key()
                    ),
                ));
            }
            if std::mem::replace(&mut seen[index], true) {
                return Err(error(file, &entry_path(), format!("event {id} appears twice")));
            }
            entries.push(((event_type.clone(), state_key), pdu.event_id().clone()));
        }
    }
    Ok(entries.into_iter().collect())
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

/// Parses the `rejected` field of an input event: `true`/`false`, or the kind by name.
fn rejection_kind(value: &Value) -> Result<Option<RejectionKind>, &'static str> {
    match value {
        Value::Bool(false) => Ok(None),
        Value::Bool(true) => Ok(Some(RejectionKind::AuthEvents)),
        Value::String(kind) if kind == "auth_events" => Ok(Some(RejectionKind::AuthEvents)),
        Value::String(kind) if kind == "state_before" => Ok(Some(RejectionKind::StateBefore)),
        _ => Err("must be true, false, \"auth_events\" or \"state_before\""),
    }
}
