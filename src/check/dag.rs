//! `dag`: per room, over the events that have a well-formed PDU in the trace and that some
//! server stored (any decision but `dropped`):
//! 1. no cycle through `prev_events` and `auth_events` edges (witness: one cycle, at the
//!    first record by which all of its events were stored);
//! 2. every `prev_events` and `auth_events` entry (and since v12 the create event the room
//!    id implies) of an event some server stored as a non-outlier names an event with a PDU
//!    in the trace, in the same room;
//! 3. depth (digest: spec/events.md §2.2, depth = greatest prev depth + 1, capped at
//!    2^53 − 1; [impl] the create event has depth 1): every depth is at least 1; the create
//!    event has no `prev_events` and every other event has some; and an event is deeper
//!    than each of its prev events (equal only at the cap).
//!
//! Events whose PDUs are malformed are left to `integrity`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::matrix::canonical_json::INT_MAX;
use crate::matrix::dag as mdag;
use crate::matrix::ids::LookupMap;
use crate::matrix::pdu::Pdu;
use crate::stdx::Invariant;
use crate::trace::Decision;

use super::index::Index;
use super::{Violation, Witness, first_seen, violation};

const ID: Invariant = Invariant::Dag;

/// Who stored an event: all servers (first line), and those that stored it as a
/// non-outlier (first line). A server is listed once per receipt, and each list is made
/// unique only for a witness: at a thousand servers, keeping the lists unique as they
/// grew was a quadratic scan per event, 5% of a whole `run`.
#[derive(Default)]
struct Storers<'t> {
    servers: Vec<&'t str>,
    line: Option<u64>,
    full_servers: Vec<&'t str>,
    full_line: Option<u64>,
}

pub(super) fn check(index: &Index<'_>) -> Vec<Violation> {
    // Entered once per receipt and walked once, sorted, below: hashed.
    let mut storers: LookupMap<&str, Storers<'_>> = LookupMap::new();
    for receipt in &index.receipts {
        if !receipt.decision.is_stored() {
            continue;
        }
        let entry = storers.get_or_insert_with(receipt.event_id, Storers::default);
        entry.servers.push(receipt.server);
        entry.line.get_or_insert(receipt.line);
        if receipt.decision != Decision::Outlier {
            entry.full_servers.push(receipt.server);
            entry.full_line.get_or_insert(receipt.line);
        }
    }
    let mut by_room: BTreeMap<&str, Vec<(&str, &Arc<Pdu>)>> = BTreeMap::new();
    for (id, _) in storers.sorted() {
        let Some(event) = index.events.get(id) else { continue };
        let Some(pdu) = event.pdu() else { continue };
        by_room.entry(event.room).or_default().push((id, pdu));
    }
    let mut found = Vec::new();
    for (room, events) in &by_room {
        if let Some(v) = cycle(room, events, &storers) {
            found.push(v);
        }
        for (event_id, pdu) in events {
            let Some(who) = storers.get(event_id) else { continue };
            let mut problems = Vec::new();
            if !who.full_servers.is_empty() {
                references(index, room, pdu, &mut problems);
            }
            depth(index, room, pdu, &mut problems);
            if problems.is_empty() {
                continue;
            }
            // Reference problems concern the non-outlier copies; depth any stored one.
            let (servers, line) = if who.full_servers.is_empty() {
                (&who.servers, who.line)
            } else {
                (&who.full_servers, who.full_line)
            };
            let witness = Witness {
                servers: first_seen(servers.iter().map(|s| (*s).to_owned())),
                events: vec![(*event_id).to_owned()],
                line,
            };
            let message = format!("event {event_id} in {room}: {}", problems.join("; "));
            found.push(violation(ID, message, witness));
        }
    }
    found.sort_by_key(|v| v.witness.line.unwrap_or(u64::MAX));
    found
}

fn references(index: &Index<'_>, room: &str, pdu: &Pdu, problems: &mut Vec<String>) {
    let rules = index.rules(room);
    let implicit = rules.and_then(|rules| mdag::implicit_create_event(rules, pdu));
    let lists = [("prev event", pdu.prev_events()), ("auth event", pdu.auth_events())];
    let implied = implicit.iter().map(|id| ("implied create event", id));
    let all = lists.iter().flat_map(|(what, ids)| ids.iter().map(move |id| (*what, id)));
    for (what, id) in all.chain(implied) {
        match index.events.get(id.as_str()) {
            None => problems.push(format!("{what} {id} is not in the trace")),
            Some(event) if event.copies.is_empty() => {
                problems.push(format!("{what} {id} has no PDU in the trace"));
            }
            Some(event) => {
                if let Some(other) = event.pdu() {
                    let other_room = other.room_id_or_derived();
                    if other_room != room {
                        problems.push(format!("{what} {id} is in another room, {other_room}"));
                    }
                }
            }
        }
    }
}

fn depth(index: &Index<'_>, room: &str, pdu: &Pdu, problems: &mut Vec<String>) {
    // Linearized Matrix events have no depth (the position in the hub's list plays its
    // part): only the shape of the prev edges is checked for them.
    let has_depth = index.rules(room).is_none_or(|rules| rules.depth_field);
    let depth = pdu.depth();
    if has_depth && depth < 1 {
        problems.push(format!("depth {depth} is below 1"));
    }
    if mdag::is_create_event(pdu) {
        if !pdu.prev_events().is_empty() {
            problems.push("the create event has prev events".into());
        }
        return;
    }
    if pdu.prev_events().is_empty() {
        problems.push("it has no prev events and is not the create event".into());
    }
    for prev in pdu.prev_events() {
        let Some(prev_pdu) = index.pdu(prev.as_str()) else { continue };
        let prev_depth = prev_pdu.depth();
        let capped = prev_depth >= INT_MAX && depth >= INT_MAX;
        if has_depth && depth <= prev_depth && !capped {
            problems.push(format!(
                "depth {depth} is not above the depth {prev_depth} of prev event {prev}"
            ));
        }
    }
}

/// One cycle through prev and auth edges among the room's events, if any.
fn cycle(
    room: &str,
    events: &[(&str, &Arc<Pdu>)],
    storers: &LookupMap<&str, Storers<'_>>,
) -> Option<Violation> {
    // Only looked up, once per edge: hashed.
    let position: LookupMap<&str, usize> =
        events.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
    let parents: Vec<Vec<usize>> = events
        .iter()
        .map(|(_, pdu)| {
            let set: BTreeSet<usize> = pdu
                .prev_events()
                .iter()
                .chain(pdu.auth_events())
                .filter_map(|p| position.get(p.as_str()).copied())
                .collect();
            set.into_iter().collect()
        })
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); events.len()];
    let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
    for (child, list) in parents.iter().enumerate() {
        for &parent in list {
            children[parent].push(child);
        }
    }
    let mut ready: Vec<usize> = (0..events.len()).filter(|i| waiting[*i] == 0).collect();
    let mut done = vec![false; events.len()];
    while let Some(i) = ready.pop() {
        done[i] = true;
        for &child in &children[i] {
            waiting[child] -= 1;
            if waiting[child] == 0 {
                ready.push(child);
            }
        }
    }
    let stuck = done.iter().filter(|d| !**d).count();
    let start = done.iter().position(|d| !*d)?;
    // Every stuck event has a stuck parent: walking stuck parents must come back.
    let mut path: Vec<usize> = Vec::new();
    let mut on_path: BTreeMap<usize, usize> = BTreeMap::new();
    let mut at = start;
    let cycle: Vec<usize> = loop {
        if let Some(&k) = on_path.get(&at) {
            break path[k..].to_vec();
        }
        on_path.insert(at, path.len());
        path.push(at);
        match parents[at].iter().find(|p| !done[**p]) {
            Some(&next) => at = next,
            None => return None, // Cannot happen for a stuck event; never panic on input.
        }
    };
    let ids: Vec<String> = cycle.iter().map(|i| events[*i].0.to_owned()).collect();
    let mut servers = Vec::new();
    let mut line = None;
    for id in &ids {
        if let Some(who) = storers.get(id.as_str()) {
            servers.extend(who.servers.iter().copied());
            line = line.max(who.line);
        }
    }
    let servers = first_seen(servers.into_iter().map(str::to_owned));
    let message = format!(
        "events in {room} form a cycle through prev/auth events: {} → {} ({stuck} events are on or after a cycle)",
        ids.join(" → "),
        ids.first().map(String::as_str).unwrap_or("")
    );
    Some(violation(ID, message, Witness { servers, events: ids, line }))
}
