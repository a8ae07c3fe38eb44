//! The data block of `index.html`: what the page's script shows when an event, a server or
//! a moment is chosen, as one JSON value per room. It is parsed only when first needed,
//! so a large run's page still opens at once.
//!
//! Per event: id, type, state key, sender, origin, depth, creation time, prev and auth
//! events, every server's decision (`[server index, t, decision code, reason]`), the PDU,
//! and the state the DAG implies as a delta: `b` is how the state before the event differs
//! from the state after its first prev event (non-empty only at merges, where the prev
//! states were resolved), `x` says whether the event itself entered the state after it;
//! `n` marks events the replay did not reach. The script rebuilds the full state before
//! and after any event by walking first prev events back to the create event.
//! Per server: its current-state hash over time (`[t, hash index, …]`), for the view at a
//! moment.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::matrix::EventId;
use crate::matrix::ids::LookupMap;
use crate::matrix::state_res::StateMap;
use crate::report::model::{Membership, RoomModel};
use crate::report::resolution::StatesAfter;
use crate::trace::{Body, Decision, Trace};

/// Decision codes in the data block, in the order the script names them.
pub fn decision_code(decision: Decision) -> u64 {
    match decision {
        Decision::Created => 0,
        Decision::Accepted => 1,
        Decision::RejectedAuthEvents => 2,
        Decision::RejectedStateBefore => 3,
        Decision::SoftFailed => 4,
        Decision::Outlier => 5,
        Decision::Dropped => 6,
    }
}

/// The room's data block (see the module doc).
pub fn room(
    trace: &Trace,
    room: &RoomModel,
    label: Option<&str>,
    after: &StatesAfter,
    replaced: &BTreeMap<String, Option<EventId>>,
    memberships: &BTreeMap<(String, String), Vec<Membership>>,
) -> Value {
    // Asked once per decision (a million at a thousand servers): by hash.
    let server_index: LookupMap<&str, usize> =
        room.servers.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
    let mut events = Vec::with_capacity(room.events.len());
    for event in &room.events {
        events.push(event_value(event, &server_index, after, replaced));
    }
    let (hashes, states) = state_hashes(trace, room);
    let joined: BTreeMap<&str, Vec<[Option<u64>; 2]>> = room
        .servers
        .iter()
        .filter_map(|s| {
            let spans = memberships.get(&(room.room_id.clone(), s.clone()))?;
            Some((s.as_str(), spans.iter().map(|m| [Some(m.start_ms), m.end_ms]).collect()))
        })
        .collect();
    // The events' values are moved in: `json!` would serialize them into copies (1.4% of
    // a 100-server run, with freeing the originals).
    let mut object = serde_json::Map::new();
    object.insert("id".into(), json!(room.room_id));
    object.insert("label".into(), json!(label));
    object.insert("servers".into(), json!(room.servers));
    object.insert("events".into(), Value::Array(events));
    object.insert("hashes".into(), json!(hashes));
    object.insert("states".into(), json!(states));
    object.insert("joined".into(), json!(joined));
    Value::Object(object)
}

/// One event's entry (see the module doc).
fn event_value(
    event: &crate::report::model::EventNode,
    server_index: &LookupMap<&str, usize>,
    after: &StatesAfter,
    replaced: &BTreeMap<String, Option<EventId>>,
) -> Value {
    let decisions: Vec<Value> = event
        .decisions
        .iter()
        .map(|(server, t, decision, reason)| {
            let mut row = vec![
                json!(server_index.get(server.as_str()).copied().unwrap_or(usize::MAX)),
                json!(t),
                json!(decision_code(*decision)),
            ];
            if let Some(reason) = reason {
                row.push(json!(reason));
            }
            Value::Array(row)
        })
        .collect();
    let mut object = serde_json::Map::new();
    object.insert("i".into(), json!(event.id));
    object.insert("y".into(), json!(event.event_type));
    object.insert("k".into(), json!(event.state_key));
    object.insert("s".into(), json!(event.sender));
    object.insert("o".into(), json!(event.origin()));
    object.insert("d".into(), json!(event.depth));
    object.insert("c".into(), json!(event.created.as_ref().map(|(_, t)| t)));
    object.insert("p".into(), json!(event.prev_events));
    object.insert("a".into(), json!(event.auth_events));
    object.insert("r".into(), Value::Array(decisions));
    match after.get(&event.id) {
        Some(state_after) => {
            let base = event.prev_events.first().and_then(|p| after.get(p)).map(|s| &**s);
            let own = event.state_key.as_ref().map(|k| (event.event_type.clone(), k.clone()));
            let applied = own
                .as_ref()
                .is_some_and(|key| state_after.get(key).is_some_and(|id| id.as_str() == event.id));
            // The state before: the state after, without the event's own entry.
            let own = own.filter(|_| applied).map(|key| {
                let previous = replaced.get(&event.id).cloned().flatten();
                (key, previous)
            });
            // With one prev event the state before is the state after it: no delta.
            let delta = if event.prev_events.len() <= 1 {
                Vec::new()
            } else {
                before_delta(state_after, base, own.as_ref())
            };
            object.insert("b".into(), Value::Array(delta));
            object.insert("x".into(), json!(u8::from(applied)));
        }
        None => {
            object.insert("n".into(), json!(1));
        }
    }
    object.insert("j".into(), event.pdu.as_deref().cloned().map_or(Value::Null, Value::Object));
    Value::Object(object)
}

/// The room's distinct state hashes in order of first appearance, and per server its
/// state changes as `[t, hash index, …]`.
fn state_hashes(trace: &Trace, room: &RoomModel) -> (Vec<String>, BTreeMap<String, Vec<u64>>) {
    let mut hashes: Vec<String> = Vec::new();
    // Looked up once per `state` record (a hundred thousand at a thousand servers), so by
    // hash and by the borrowed texts: a text is copied once, not once per record. Only
    // `states` is walked, sorted by server at the end.
    let mut hash_index: LookupMap<&str, usize> = LookupMap::new();
    let mut states: LookupMap<&str, Vec<u64>> = LookupMap::new();
    for record in &trace.records {
        if let Body::State { server, room: r, state_hash } = &record.body {
            if *r != room.room_id {
                continue;
            }
            let index = *hash_index.get_or_insert_with(state_hash, || {
                hashes.push(state_hash.as_str().to_owned());
                hashes.len() - 1
            });
            let list = states.get_or_insert_with(server, Vec::new);
            list.push(record.t);
            list.push(index as u64);
        }
    }
    let states = states.into_sorted().into_iter().map(|(s, l)| (s.to_owned(), l)).collect();
    (hashes, states)
}

/// `[type, state_key, event id or null]` for every key where the state before the event
/// differs from `base` (the state after its first prev event).
fn before_delta(
    after: &StateMap,
    base: Option<&StateMap>,
    own: Option<&((String, String), Option<EventId>)>,
) -> Vec<Value> {
    let empty = StateMap::new();
    let base = base.unwrap_or(&empty);
    let mut out = Vec::new();
    let before_of = |key: &(String, String)| -> Option<String> {
        match own {
            Some((own_key, previous)) if own_key == key => {
                previous.as_ref().map(|id| id.as_str().to_owned())
            }
            _ => after.get(key).map(|id| id.as_str().to_owned()),
        }
    };
    let mut keys: Vec<&(String, String)> = after.keys().chain(base.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let before = before_of(key);
        if before.as_deref() != base.get(key).map(|id| id.as_str()) {
            out.push(json!([key.0, key.1, before]));
        }
    }
    out
}
