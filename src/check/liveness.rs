//! `liveness`: every event created at its origin (its first `created` record) that the
//! origin still holds at the end (it was not lost in a crash before it was committed)
//! reaches every other server that is joined to the room at the end (`final` with
//! `joined: true`) and was joined without a break from the event's creation to the end
//! (its last `joined` record comes before the creation record and no `left` record
//! follows it). "Reaches" means an `event` record with a
//! stored decision (any but `dropped`), at most `liveness_bound_ms` after the later of the
//! creation time and `healed_ms`.
//!
//! An event whose deadline falls after `end_ms` and that has not arrived yet is not a
//! violation: the run ended before the bound could be broken. Servers that joined after the
//! event was created, or were out of the room (between a `left` and a `joined` record)
//! when it was created, are not owed it (joining brings state, not history).
//!
//! An event the room refused (every other server that holds it in its timeline rejected
//! or soft-failed it, and at least one did: [`Index::refused_by_room`]) is owed to nobody:
//! no server but its origin ever passes it on.
//!
//! Witness: the event, the late and missing servers, the line of the creation record.
//!
//! Every received event is decided: an event a server received and still had waiting for
//! its ancestors at the end (`final.waiting`) must not be past the deadline at which the
//! homeserver gives it up (`deadline_ms < end_ms` is a violation), unless the server was
//! paused at the end and so could not act on it. This is the bound the homeserver states
//! (`Config::waiting_time_max` after receipt): an event that waits longer was never decided
//! nor dropped, and its descendants wait with it. Witness: the server, the event, the line
//! of the `final` record.

use std::collections::BTreeMap;

use crate::matrix::ids::LookupMap;
use crate::stdx::Invariant;
use crate::trace::Decision;

use super::index::Index;
use super::{SERVERS_SHOWN_MAX, Violation, Witness, first_of, violation};

const ID: Invariant = Invariant::Liveness;

pub(super) fn check(index: &Index<'_>) -> Vec<Violation> {
    let mut found = owed(index);
    found.extend(undecided(index));
    found
}

/// Received events still waiting at the end past their deadline, on servers that were not
/// paused at the end.
fn undecided(index: &Index<'_>) -> Vec<Violation> {
    let end = index.trace.header.end_ms;
    let mut found = Vec::new();
    for f in &index.finals {
        if index.paused_at_end.contains(f.server) {
            continue;
        }
        for waiting in f.waiting.iter().filter(|w| w.deadline_ms < end) {
            let message = format!(
                "{} received {} and never decided it: it was still waiting for its auth or \
                 prev events at the end ({end} ms), past the deadline of {} ms at which it \
                 should have been given up",
                f.server, waiting.event_id, waiting.deadline_ms
            );
            let witness = Witness {
                servers: vec![f.server.to_owned()],
                events: vec![waiting.event_id.clone()],
                line: Some(f.line),
            };
            found.push(violation(ID, message, witness));
        }
    }
    found
}

/// Events created and owed to servers joined at the end that did not reach them in time.
fn owed(index: &Index<'_>) -> Vec<Violation> {
    let header = &index.trace.header;
    let bound = header.check.liveness_bound_ms;
    // Each event's stored receipts as (server number, time), in trace order: grouped by
    // event and with servers numbered, since a room of a thousand servers has one per
    // server and event (ten million (server, event) keys would be compared as strings).
    // Both maps are only looked up, so by hash.
    let mut numbers: LookupMap<&str, usize> = LookupMap::new();
    let mut stored_at: LookupMap<&str, Vec<(usize, u64)>> = LookupMap::new();
    for receipt in &index.receipts {
        if receipt.decision.is_stored() {
            let next = numbers.len();
            let number = *numbers.get_or_insert_with(receipt.server, || next);
            stored_at.get_or_insert_with(receipt.event_id, Vec::new).push((number, receipt.t));
        }
    }
    // The first stored time per server number of the event being looked at.
    let mut first_stored: Vec<Option<u64>> = Vec::new();
    let mut joined_at_end: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for f in &index.finals {
        if f.joined {
            joined_at_end.entry(f.room).or_default().push(f.server);
        }
    }
    let mut found = Vec::new();
    for (at, receipt) in index.receipts.iter().enumerate() {
        if receipt.decision != Decision::Created {
            continue;
        }
        let Some(event) = index.events.get(receipt.event_id) else { continue };
        if event.created != Some(at) {
            continue;
        }
        let origin_holds =
            index.held.get(receipt.server).is_some_and(|h| h.contains_key(receipt.event_id));
        if !origin_holds || index.refused_by_room(receipt.event_id) {
            continue;
        }
        let deadline = receipt.t.max(header.healed_ms).saturating_add(bound);
        first_stored.clear();
        first_stored.resize(numbers.len(), None);
        for &(number, t) in stored_at.get(receipt.event_id).into_iter().flatten() {
            first_stored[number].get_or_insert(t);
        }
        let room = index.rooms.get(receipt.room);
        let mut late = Vec::new();
        let mut missing = Vec::new();
        for server in joined_at_end.get(receipt.room).into_iter().flatten() {
            if *server == receipt.server {
                continue;
            }
            if !room.is_some_and(|r| r.joined_since_before(server, receipt.line)) {
                continue;
            }
            let number = numbers.get(server).copied();
            match number.and_then(|n| first_stored[n].as_ref()) {
                Some(t) if *t <= deadline => {}
                Some(t) => late.push((*server, *t)),
                None if deadline <= header.end_ms => missing.push(*server),
                None => {}
            }
        }
        if late.is_empty() && missing.is_empty() {
            continue;
        }
        let mut parts = Vec::new();
        if !late.is_empty() {
            let shown: Vec<String> = late.iter().map(|(s, t)| format!("{s} at {t} ms")).collect();
            parts.push(format!("late: {}", first_of(&shown, SERVERS_SHOWN_MAX, ", ")));
        }
        if !missing.is_empty() {
            parts.push(format!("never: {}", first_of(&missing, SERVERS_SHOWN_MAX, ", ")));
        }
        let message = format!(
            "{} created by {} at {} ms did not reach every joined server by {deadline} ms \
             ({bound} ms after max(creation, heal at {} ms)): {}",
            receipt.event_id,
            receipt.server,
            receipt.t,
            header.healed_ms,
            parts.join("; ")
        );
        let servers = late
            .iter()
            .map(|(s, _)| (*s).to_owned())
            .chain(missing.iter().map(|s| (*s).to_owned()));
        let witness = Witness {
            servers: servers.collect(),
            events: vec![receipt.event_id.to_owned()],
            line: Some(receipt.line),
        };
        found.push(violation(ID, message, witness));
    }
    found
}
