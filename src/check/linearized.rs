//! `linearized`: every Linearized Matrix room of the run keeps the draft's model
//! (docs/linearized.md). For each room whose version has LPDUs, with its hub (the server of
//! the create event's sender):
//!
//! 1. The hub's list (the events the hub created or accepted, in trace order) follows the
//!    draft's rules: it is replayed with `matrix::linearized::HubList::append`, the pure
//!    core's list, which checks order, `hub_server`, auth events and the auth rules.
//!    The list is read as a DAG in list order (`matrix::linearized::list`, [digest]): an
//!    event from a DAG-capable server may fork it, the hub's next event merges the forward
//!    extremities, and the state at a position is the state resolution of the branches.
//! 2. Every participant appends the hub's events in the hub's order, and one that is joined
//!    at the end holds every event from its last join on: no gaps.
//! 3. Participants and hub agree on state at every position: each state a participant
//!    reports (`state` records) is the state of the hub's list at some position (its
//!    current state, resolved where the list has several forward extremities), at or after
//!    the position of the state it reported before.
//! 4. Every LPDU a participant sent (`lpdu_sent`) is accounted for: appended by the hub
//!    (`linearized`), refused or given up with a reason (`lpdu_failed`), or lost to a crash
//!    of the participant after it was sent. None is appended twice.
//! 5. No participant recorded a hub fault (`hub_fault`): mxsim's hubs are honest, so one
//!    is a bug of the hub or of the participant.
//!
//! Checks 2 and 3 skip the room's DAG-capable servers: the servers other than the hub that
//! originate PDUs in the room without `hub_server` (a participant never does: the hub
//! completes its LPDUs, which carry `hub_server`). They hold the room's DAG, not the list;
//! their agreement with the others is `convergence`'s business.
//!
//! That every event of the hub's list reaches every participant within the bound is
//! `liveness` (the hub creates every PDU of the list).
//!
//! The state hash is the trace's (docs/trace.md): the name of the state's
//! `matrix::state_digest::StateDigest`.

use std::collections::{BTreeMap, BTreeSet};

use crate::matrix::auth::SignatureCheck;
use crate::matrix::ids;
use crate::matrix::linearized::{self, HubList};
use crate::matrix::state_digest::StateDigest;
use crate::stdx::Invariant;
use crate::trace::{Body, Decision, NodeChange};

use super::index::Index;
use super::{Violation, Witness, violation};

const ID: Invariant = Invariant::Linearized;

/// The hub's list of one room as the checker replayed it.
struct Replayed<'t> {
    hub: String,
    /// The room's DAG-capable servers, which checks 2 and 3 skip.
    dag_servers: BTreeSet<String>,
    /// Event id → position.
    positions: BTreeMap<&'t str, usize>,
    /// State hash → the positions after which the list's state has it, ascending.
    states: BTreeMap<String, Vec<usize>>,
    len: usize,
}

pub(super) fn check(index: &Index<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    for (room, entry) in &index.rooms {
        let Some(rules) = entry.rules.filter(|rules| rules.lpdus) else { continue };
        let Some(list) = replay(index, room, rules, &mut found) else { continue };
        participants(index, room, &list, &mut found);
        states(index, room, &list, &mut found);
    }
    accounting(index, &mut found);
    found.sort_by_key(|v| v.witness.line.unwrap_or(u64::MAX));
    found
}

fn witness(servers: &[&str], events: &[&str], line: Option<u64>) -> Witness {
    Witness {
        servers: servers.iter().map(|s| (*s).to_owned()).collect(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        line,
    }
}

/// Check 1: the hub's list replayed with the pure core's list.
fn replay<'t>(
    index: &Index<'t>,
    room: &str,
    rules: &'static crate::matrix::RoomVersionRules,
    found: &mut Vec<Violation>,
) -> Option<Replayed<'t>> {
    let create =
        index.events.sorted().into_iter().map(|(_, e)| e).filter(|e| e.room == room).find_map(
            |e| e.pdu().filter(|p| p.event_type() == "m.room.create" && p.state_key() == Some("")),
        )?;
    let hub = ids::user_server(create.sender())?.to_owned();
    let mut list = HubList::new();
    let mut replayed = Replayed {
        hub: hub.clone(),
        dag_servers: dag_servers(index, room, &hub),
        positions: BTreeMap::new(),
        states: BTreeMap::new(),
        len: 0,
    };
    let in_list = |d: Decision| matches!(d, Decision::Created | Decision::Accepted);
    for receipt in &index.receipts {
        if receipt.server != hub || receipt.room != room || !in_list(receipt.decision) {
            continue;
        }
        if replayed.positions.contains_key(receipt.event_id) {
            continue; // The same event recorded again (a restart's replay): one position.
        }
        let Some(pdu) = index.events.get(receipt.event_id).and_then(|e| e.pdu()) else {
            continue; // `integrity` reports an event without a PDU.
        };
        match list.append(rules, pdu.clone(), SignatureCheck::Keys(&index.ring)) {
            Ok(position) => {
                let position = usize::try_from(position).expect("fits");
                replayed.positions.insert(receipt.event_id, position);
                replayed.states.entry(state_hash(&list)).or_default().push(position);
                replayed.len = position + 1;
            }
            Err(fault) => {
                let message = format!(
                    "in {room}, the hub {hub} put {} at position {} of its list, which the \
                     draft's rules forbid ({:?}): {}",
                    receipt.event_id, fault.position, fault.fault, fault.reason
                );
                let w = witness(&[&hub], &[receipt.event_id], Some(receipt.line));
                found.push(violation(ID, message, w));
                return None;
            }
        }
    }
    Some(replayed)
}

/// The servers other than `hub` that originate PDUs in `room` without `hub_server`.
fn dag_servers(index: &Index<'_>, room: &str, hub: &str) -> BTreeSet<String> {
    let events = index.events.sorted();
    let pdus =
        events.into_iter().map(|(_, e)| e).filter(|e| e.room == room).filter_map(|e| e.pdu());
    pdus.filter(|pdu| !linearized::built_by_hub(pdu, hub))
        .map(|pdu| pdu.origin().to_owned())
        .collect()
}

/// The trace's state hash of the list's current state.
fn state_hash(list: &HubList) -> String {
    let entries =
        list.state().iter().map(|((t, k), pdu)| (t.as_str(), k.as_str(), pdu.event_id().as_str()));
    StateDigest::of(entries).name()
}

/// Check 2: each participant appends in the hub's order, and holds everything from its
/// last join on when it is joined at the end.
fn participants(index: &Index<'_>, room: &str, list: &Replayed<'_>, found: &mut Vec<Violation>) {
    let mut by_server: BTreeMap<&str, Vec<(usize, u64, &str)>> = BTreeMap::new();
    for receipt in &index.receipts {
        let appended = matches!(receipt.decision, Decision::Created | Decision::Accepted);
        let holds_list = receipt.server != list.hub && !list.dag_servers.contains(receipt.server);
        if receipt.room != room || !holds_list || !appended {
            continue;
        }
        let Some(&position) = list.positions.get(receipt.event_id) else {
            let message = format!(
                "in {room}, {} appended {}, which is not in the hub {}'s list",
                receipt.server, receipt.event_id, list.hub
            );
            let w = witness(&[receipt.server], &[receipt.event_id], Some(receipt.line));
            found.push(violation(ID, message, w));
            continue;
        };
        by_server.entry(receipt.server).or_default().push((
            position,
            receipt.line,
            receipt.event_id,
        ));
    }
    let joined_at_end: BTreeSet<&str> =
        index.finals.iter().filter(|f| f.room == room && f.joined).map(|f| f.server).collect();
    for (server, appended) in by_server {
        let mut last: Option<usize> = None;
        for &(position, line, event_id) in &appended {
            if last.is_some_and(|last| position <= last) {
                let message = format!(
                    "in {room}, {server} appended {event_id} (position {position} of the hub's \
                     list) after position {}: not in the hub's order",
                    last.unwrap_or(0)
                );
                found.push(violation(ID, message, witness(&[server], &[event_id], Some(line))));
            }
            last = Some(position);
        }
        if !joined_at_end.contains(server) {
            continue;
        }
        // Its last join: the first event it appended after its last `joined` record.
        let joined_line = index.rooms.get(room).and_then(|r| r.joined.get(server)).copied();
        let Some(joined_line) = joined_line else { continue };
        let Some(&(from, _, _)) = appended.iter().find(|(_, line, _)| *line > joined_line) else {
            continue;
        };
        let held: BTreeSet<usize> = appended.iter().map(|(p, _, _)| *p).collect();
        let missing: Vec<usize> = (from..list.len).filter(|p| !held.contains(p)).collect();
        if let Some(first) = missing.first() {
            let message = format!(
                "in {room}, {server} is joined at the end but lacks {} of the hub's events \
                 from its join (position {from}) on, the first at position {first}: a gap \
                 in its copy of the list",
                missing.len()
            );
            found.push(violation(ID, message, witness(&[server], &[], Some(joined_line))));
        }
    }
}

/// Check 3: every state a participant reports is a state of the hub's list, in order.
fn states(index: &Index<'_>, room: &str, list: &Replayed<'_>, found: &mut Vec<Violation>) {
    let mut at: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, record) in index.trace.records.iter().enumerate() {
        let Body::State { server, room: r, state_hash } = &record.body else { continue };
        if r != room || *server == list.hub || list.dag_servers.contains(server.as_str()) {
            continue;
        }
        let from = at.get(server.as_str()).copied().unwrap_or(0);
        let position = list
            .states
            .get(state_hash.as_str())
            .and_then(|positions| positions.iter().find(|p| **p >= from).copied());
        match position {
            Some(position) => {
                at.insert(server, position);
            }
            None => {
                let message = format!(
                    "in {room}, {server} reports state {state_hash}, which the hub {}'s list \
                     does not have at or after position {from}",
                    list.hub
                );
                found.push(violation(
                    ID,
                    message,
                    witness(&[server], &[], Some(index.trace.line_of(i))),
                ));
            }
        }
    }
}

/// Checks 4 and 5: every LPDU is accounted for; no hub fault.
fn accounting(index: &Index<'_>, found: &mut Vec<Violation>) {
    let mut sent: Vec<(u64, &str, &str, &str)> = Vec::new();
    let mut appended: BTreeMap<&str, Vec<(u64, &str)>> = BTreeMap::new();
    let mut came_back: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    let mut failed: BTreeSet<&str> = BTreeSet::new();
    let mut crashes: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (i, record) in index.trace.records.iter().enumerate() {
        let line = index.trace.line_of(i);
        match &record.body {
            Body::LpduSent { server, room, lpdu_id, .. } => {
                sent.push((line, server, room, lpdu_id))
            }
            Body::Linearized { lpdu_id, event_id, .. } => {
                appended.entry(lpdu_id).or_default().push((line, event_id));
            }
            Body::LpduAccepted { server, lpdu_id, event_id, .. } => {
                came_back.insert((server, lpdu_id), event_id);
            }
            Body::LpduFailed { lpdu_id, .. } => {
                failed.insert(lpdu_id);
            }
            Body::Node { server, change: NodeChange::Crash } => {
                crashes.entry(server).or_default().push(line);
            }
            Body::HubFault { server, room, event_id, fault, reason } => {
                let message =
                    format!("in {room}, {server} found the hub at fault ({fault}): {reason}");
                found.push(violation(ID, message, witness(&[server], &[event_id], Some(line))));
            }
            _ => {}
        }
    }
    for (lpdu, events) in &appended {
        if events.len() > 1 {
            let ids: Vec<&str> = events.iter().map(|(_, e)| *e).collect();
            let message =
                format!("the LPDU {lpdu} was appended {} times: {}", ids.len(), ids.join(", "));
            found.push(violation(ID, message, witness(&[], &ids, Some(events[1].0))));
        }
    }
    for (line, server, room, lpdu) in sent {
        let in_list = appended.get(lpdu).map(|events| events[0].1);
        if let Some(event) = came_back.get(&(server, lpdu)) {
            if in_list != Some(*event) {
                let message = format!(
                    "in {room}, {server} saw its LPDU {lpdu} come back as {event}, which the \
                     hub did not append for it"
                );
                found.push(violation(ID, message, witness(&[server], &[event], Some(line))));
            }
            continue;
        }
        let crashed = crashes.get(server).is_some_and(|lines| lines.iter().any(|l| *l > line));
        if in_list.is_some() || failed.contains(lpdu) || crashed {
            continue;
        }
        let message = format!(
            "in {room}, the LPDU {lpdu} that {server} sent is lost: the hub did not append it, \
             nobody refused or gave it up, and {server} did not crash"
        );
        found.push(violation(ID, message, witness(&[server], &[lpdu], Some(line))));
    }
}
