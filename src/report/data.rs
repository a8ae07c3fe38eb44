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

use serde::Serialize;
use serde_json::{Map, Value};

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

/// The room's data block (see the module doc), as JSON text.
///
/// Written from the room's model where it lies, through borrowing structures whose fields
/// are declared in byte order, as a JSON object's keys are written: building it as one
/// `serde_json::Value` first copied every event's PDU and decision, and with serializing
/// and freeing that copy it was 3% of a 100-server run.
pub fn room(
    trace: &Trace,
    room: &RoomModel,
    label: Option<&str>,
    after: &StatesAfter,
    replaced: &BTreeMap<String, Option<EventId>>,
    memberships: &BTreeMap<(String, String), Vec<Membership>>,
) -> String {
    // Asked once per decision (a million at a thousand servers): by hash.
    let server_index: LookupMap<&str, usize> =
        room.servers.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
    let events = room.events.iter().map(|e| event_data(e, &server_index, after, replaced));
    let events = events.collect();
    let (hashes, states) = state_hashes(trace, room);
    let joined: BTreeMap<&str, Vec<[Option<u64>; 2]>> = room
        .servers
        .iter()
        .filter_map(|s| {
            let spans = memberships.get(&(room.room_id.clone(), s.clone()))?;
            Some((s.as_str(), spans.iter().map(|m| [Some(m.start_ms), m.end_ms]).collect()))
        })
        .collect();
    let data = RoomData {
        events,
        hashes,
        id: &room.room_id,
        joined,
        label,
        servers: &room.servers,
        states,
    };
    serde_json::to_string(&data).expect("the data block always serializes")
}

/// A room's entry: its fields in byte order.
#[derive(Serialize)]
struct RoomData<'a> {
    events: Vec<EventData<'a>>,
    hashes: Vec<String>,
    id: &'a str,
    joined: BTreeMap<&'a str, Vec<[Option<u64>; 2]>>,
    label: Option<&'a str>,
    servers: &'a [String],
    states: BTreeMap<String, Vec<u64>>,
}

/// An event's entry (see the module doc): its fields in byte order. `b` and `x` are
/// present for replayed events, `n` for the others.
#[derive(Serialize)]
struct EventData<'a> {
    a: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    b: Option<Vec<(&'a str, &'a str, Option<&'a str>)>>,
    c: Option<u64>,
    d: i64,
    i: &'a str,
    j: Option<&'a Map<String, Value>>,
    k: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u8>,
    o: String,
    p: &'a [String],
    r: Vec<DecisionRow<'a>>,
    s: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<u8>,
    y: &'a str,
}

/// `[server index, t, decision code]`, with the reason last when there is one.
struct DecisionRow<'a> {
    server: usize,
    t: u64,
    decision: Decision,
    reason: Option<&'a str>,
}

impl Serialize for DecisionRow<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        let mut row = serializer.serialize_seq(Some(3 + usize::from(self.reason.is_some())))?;
        row.serialize_element(&self.server)?;
        row.serialize_element(&self.t)?;
        row.serialize_element(&decision_code(self.decision))?;
        if let Some(reason) = self.reason {
            row.serialize_element(reason)?;
        }
        row.end()
    }
}

/// One event's entry (see the module doc).
fn event_data<'a>(
    event: &'a crate::report::model::EventNode,
    server_index: &LookupMap<&str, usize>,
    after: &'a StatesAfter,
    replaced: &'a BTreeMap<String, Option<EventId>>,
) -> EventData<'a> {
    let decisions = event
        .decisions
        .iter()
        .map(|(server, t, decision, reason)| DecisionRow {
            server: server_index.get(server.as_str()).copied().unwrap_or(usize::MAX),
            t: *t,
            decision: *decision,
            reason: reason.as_deref(),
        })
        .collect();
    let mut data = EventData {
        a: &event.auth_events,
        b: None,
        c: event.created.as_ref().map(|(_, t)| *t),
        d: event.depth,
        i: &event.id,
        j: event.pdu.as_deref(),
        k: event.state_key.as_deref(),
        n: None,
        o: event.origin(),
        p: &event.prev_events,
        r: decisions,
        s: &event.sender,
        x: None,
        y: &event.event_type,
    };
    match after.get(&event.id) {
        Some(state_after) => {
            let base = event.prev_events.first().and_then(|p| after.get(p)).map(|s| &**s);
            let own = event.state_key.as_ref().map(|k| (event.event_type.as_str(), k.as_str()));
            let applied = own.is_some_and(|(t, k)| {
                state_after
                    .get(&(t.to_owned(), k.to_owned()))
                    .is_some_and(|id| id.as_str() == event.id)
            });
            // The state before: the state after, without the event's own entry.
            let own = own.filter(|_| applied).map(|key| {
                let previous = replaced.get(&event.id).and_then(|p| p.as_ref());
                (key, previous.map(|id| id.as_str()))
            });
            // With one prev event the state before is the state after it: no delta.
            let delta = if event.prev_events.len() <= 1 {
                Vec::new()
            } else {
                before_delta(state_after, base, own)
            };
            data.b = Some(delta);
            data.x = Some(u8::from(applied));
        }
        None => data.n = Some(1),
    }
    data
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
/// differs from `base` (the state after its first prev event). `own` is the event's own
/// key with what it held before the event, when the event entered the state.
fn before_delta<'a>(
    after: &'a StateMap,
    base: Option<&'a StateMap>,
    own: Option<((&'a str, &'a str), Option<&'a str>)>,
) -> Vec<(&'a str, &'a str, Option<&'a str>)> {
    static EMPTY: StateMap = StateMap::new();
    let base = base.unwrap_or(&EMPTY);
    let mut out = Vec::new();
    let before_of = |key: &'a (String, String)| -> Option<&'a str> {
        match own {
            Some((own_key, previous)) if own_key == (key.0.as_str(), key.1.as_str()) => previous,
            _ => after.get(key).map(|id| id.as_str()),
        }
    };
    let mut keys: Vec<&'a (String, String)> = after.keys().chain(base.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let before = before_of(key);
        if before != base.get(key).map(|id| id.as_str()) {
            out.push((key.0.as_str(), key.1.as_str(), before));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::EventNode;
    use std::sync::Arc;

    fn node(id: &str, prev: &[&str], state_key: Option<&str>) -> EventNode {
        EventNode {
            id: id.into(),
            pdu: None,
            created: Some(("hs1".into(), 7)),
            first_t: 7,
            decisions: vec![
                ("hs1".into(), 7, Decision::Created, None),
                ("hs9".into(), 9, Decision::SoftFailed, Some("a \"reason\"".into())),
            ],
            event_type: "m.room.topic".into(),
            state_key: state_key.map(str::to_owned),
            sender: "@u:hs1".into(),
            depth: 3,
            prev_events: prev.iter().map(|p| (*p).to_owned()).collect(),
            auth_events: vec!["$c".into()],
        }
    }

    fn text(data: &EventData<'_>) -> String {
        serde_json::to_string(data).unwrap()
    }

    #[test]
    fn an_event_entry_is_written_with_its_keys_in_byte_order() {
        let servers: LookupMap<&str, usize> = [("hs1", 0)].into_iter().collect();
        let key = ("m.room.topic".to_owned(), String::new());
        let mut before = StateMap::new();
        before.insert(key.clone(), EventId::parse("$t0").unwrap());
        let mut other = before.clone();
        other.insert(("m.room.name".into(), String::new()), EventId::parse("$n").unwrap());
        let mut state_after = other.clone();
        state_after.insert(key.clone(), EventId::parse("$m").unwrap());
        let after: StatesAfter = [
            ("$a".to_owned(), Arc::new(before)),
            ("$b".to_owned(), Arc::new(other)),
            ("$m".to_owned(), Arc::new(state_after)),
        ]
        .into_iter()
        .collect();
        let replaced: BTreeMap<String, Option<EventId>> =
            [("$m".to_owned(), Some(EventId::parse("$t0").unwrap()))].into_iter().collect();
        // A merge of `$a` and `$b` that set the topic: before it, the name came in from
        // `$b` (the delta against `$a`), and the topic was `$t0`. Written by hand: keys in
        // byte order, a server not in the room as usize::MAX, the reason last.
        let merge = node("$m", &["$a", "$b"], Some(""));
        assert_eq!(
            text(&event_data(&merge, &servers, &after, &replaced)),
            r#"{"a":["$c"],"b":[["m.room.name","","$n"]],"c":7,"d":3,"i":"$m","j":null,"k":"","o":"hs1","p":["$a","$b"],"r":[[0,7,0],[18446744073709551615,9,4,"a \"reason\""]],"s":"@u:hs1","x":1,"y":"m.room.topic"}"#
        );
        // An event the replay did not reach: `n`, and neither `b` nor `x`.
        let unreached = node("$z", &["$y"], None);
        assert_eq!(
            text(&event_data(&unreached, &servers, &after, &replaced)),
            r#"{"a":["$c"],"c":7,"d":3,"i":"$z","j":null,"k":null,"n":1,"o":"hs1","p":["$y"],"r":[[0,7,0],[18446744073709551615,9,4,"a \"reason\""]],"s":"@u:hs1","y":"m.room.topic"}"#
        );
    }
}
