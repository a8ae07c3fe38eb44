//! `convergence`: at the end of the run (the `final` records; the last one of each server
//! and room counts), all servers with `joined: true` for a room
//! 1. hold the same current state: the same state map and the same `state_hash`, compared
//!    with the first joined server's `final` record; and
//! 2. hold the same events, among those that every one of them was joined for: each event
//!    of the room that one of them stores as a non-outlier and that was created (its
//!    `created` record, else its first record) after the last `joined` record of every
//!    server in the group must be stored (any decision but `dropped`) by all of them.
//!    What a server stores is derived from its `event` records, with crashes applied: after
//!    a `recovered` record only the recovered events remain. Events from before a server
//!    joined are left out because joining over federation brings the state and its auth
//!    chain, not the earlier history (mxsim does not backfill). Events the room refused
//!    ([`Index::refused_by_room`]) are left out too: nobody passes them on.
//!
//! Witness: the servers that differ (and the first joined server, for the state), the
//! differing events, and the line of the first `final` record that differs.

use std::collections::{BTreeMap, BTreeSet};

use crate::matrix::ids::LookupMap;
use crate::stdx::Invariant;
use crate::trace::{Decision, NestedState};

use super::index::{Final, Index};
use super::{SERVERS_SHOWN_MAX, Violation, Witness, first_of, push_unique, violation};

const ID: Invariant = Invariant::Convergence;

/// Most event ids named in one message (the witness lists them all).
const IDS_SHOWN_MAX: usize = 10;

pub(super) fn check(index: &Index<'_>) -> Vec<Violation> {
    let mut by_room: BTreeMap<&str, Vec<&Final<'_>>> = BTreeMap::new();
    for f in &index.finals {
        if f.joined {
            by_room.entry(f.room).or_default().push(f);
        }
    }
    let mut found = Vec::new();
    for (room, finals) in by_room {
        if finals.len() < 2 {
            continue;
        }
        found.extend(states(room, &finals));
        found.extend(events(index, room, &finals));
    }
    found.sort_by_key(|v| v.witness.line.unwrap_or(u64::MAX));
    found
}

fn flatten(state: &NestedState) -> BTreeMap<(&str, &str), &str> {
    let mut out = BTreeMap::new();
    for (event_type, keys) in state {
        for (state_key, event_id) in keys {
            out.insert((event_type.as_str(), state_key.as_str()), event_id.as_str());
        }
    }
    out
}

fn states(room: &str, finals: &[&Final<'_>]) -> Option<Violation> {
    let reference = finals.first()?;
    let reference_state = flatten(reference.state);
    let mut servers = vec![reference.server.to_owned()];
    let mut events: Vec<String> = Vec::new();
    let mut details: Vec<String> = Vec::new();
    let mut line = None;
    for f in &finals[1..] {
        if f.state == reference.state && f.state_hash == reference.state_hash {
            continue;
        }
        line = line.or(Some(f.line));
        push_unique(&mut servers, f.server.to_owned());
        let state = flatten(f.state);
        let keys: BTreeSet<&(&str, &str)> = reference_state.keys().chain(state.keys()).collect();
        let mut differing = Vec::new();
        for key in keys {
            let (a, b) = (reference_state.get(key), state.get(key));
            if a == b {
                continue;
            }
            for id in [a, b].into_iter().flatten() {
                push_unique(&mut events, (*id).to_owned());
            }
            let show = |id: Option<&&str>| id.map_or("(none)".to_owned(), |id| (*id).to_owned());
            differing.push(format!("({}, {:?}) {} vs {}", key.0, key.1, show(a), show(b)));
        }
        if differing.is_empty() {
            differing.push("same state map, different state_hash".into());
        }
        details.push(format!(
            "{} (hash {}) vs {} (hash {}): {}",
            reference.server,
            reference.state_hash,
            f.server,
            f.state_hash,
            first_of(&differing, IDS_SHOWN_MAX, ", ")
        ));
    }
    line?;
    let message = format!(
        "joined servers end with different states of {room}: {}",
        first_of(&details, SERVERS_SHOWN_MAX, "; ")
    );
    Some(violation(ID, message, Witness { servers, events, line }))
}

fn events(index: &Index<'_>, room: &str, finals: &[&Final<'_>]) -> Option<Violation> {
    let joined = index.rooms.get(room).map(|r| &r.joined);
    // A server without a `joined` record counts as joined from the start.
    let since = finals
        .iter()
        .map(|f| joined.and_then(|j| j.get(f.server)).copied().unwrap_or(0))
        .max()
        .unwrap_or(0);
    let created_line = |id: &str| {
        let event = index.events.get(id)?;
        Some(match event.created.and_then(|r| index.receipts.get(r)) {
            Some(receipt) => receipt.line,
            None => event.first_line,
        })
    };
    // What each server holds of this room: with one room in the trace, what it holds.
    let one_room = index.rooms.len() == 1;
    let in_room = |id: &str| one_room || index.events.get(id).is_some_and(|e| e.room == room);
    let held: Vec<Option<&LookupMap<&str, Decision>>> =
        finals.iter().map(|f| index.held.get(f.server)).collect();
    // Held in the timeline by some server, then the conditions on the event itself, once
    // per event rather than once per server holding it.
    // A hashed set: every server holds most of the same events.
    let mut in_timeline: LookupMap<&str, ()> = LookupMap::new();
    for events in held.iter().flatten() {
        let timeline =
            |id: &&str, decision: &Decision| *decision != Decision::Outlier && in_room(id);
        events.insert_keys_where_hashed(&mut in_timeline, timeline);
    }
    let wanted: Vec<&str> = in_timeline
        .into_sorted()
        .into_iter()
        .map(|(id, ())| id)
        .filter(|id| created_line(id).is_some_and(|l| l > since) && !index.refused_by_room(id))
        .collect();
    let mut servers = Vec::new();
    let mut events = Vec::new();
    let mut listed: BTreeSet<&str> = BTreeSet::new();
    let mut details = Vec::new();
    let mut line = None;
    for (f, has) in finals.iter().zip(&held) {
        // Every wanted event is of this room: held in the room is held.
        let missing: Vec<&str> =
            wanted.iter().copied().filter(|id| !has.is_some_and(|h| h.contains_key(id))).collect();
        if missing.is_empty() {
            continue;
        }
        line = Some(line.map_or(f.line, |l: u64| l.min(f.line)));
        servers.push(f.server.to_owned());
        for id in &missing {
            if listed.insert(*id) {
                events.push((*id).to_owned());
            }
        }
        let shown: Vec<&str> = missing.iter().copied().take(IDS_SHOWN_MAX).collect();
        let more = missing.len().saturating_sub(IDS_SHOWN_MAX);
        let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
        details.push(format!(
            "{} lacks {} event(s): {}{tail}",
            f.server,
            missing.len(),
            shown.join(", ")
        ));
    }
    line?;
    let message = format!(
        "joined servers of {room} hold different events (among those created after all of them \
         joined, line {since}): {}",
        first_of(&details, SERVERS_SHOWN_MAX, "; ")
    );
    Some(violation(ID, message, Witness { servers, events, line }))
}
