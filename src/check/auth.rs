//! `auth`: three checks, each against the PDUs the trace records.
//!
//! 1. Agreement: no event is accepted (`created`, `accepted` or `soft_failed`) by one server
//!    and rejected (`rejected_auth_events` or `rejected_state_before`) by another.
//!    Outliers and drops take no side. Witness: both sides, at the record that made the
//!    disagreement true.
//! 2. Own auth events: every event a server accepted passes every auth rule
//!    ([`auth::check_event`]) against the state its own `auth_events` form, as that server
//!    saw them: an auth event the server had rejected before (or, if it never recorded a
//!    decision, one some server rejected) is flagged rejected. Since room version 12 the
//!    room's create event is added to that state. Events whose auth events have no PDU in
//!    the trace are left to `dag`.
//!
//!    Redactions are applied as Synapse 1.157 applies them: the state-dependent rules
//!    read each auth event in the form that server stored at that moment — redacted from
//!    its `redacted` record on (`get_events` with the default redact behaviour in
//!    `_check_event_auth`, synapse/handlers/federation_event.py); the state-independent
//!    rules (2.*, `check_state_independent_auth_rules` in synapse/event_auth.py, which
//!    reads them `as_is`) read only fields redaction keeps (type, state key, room,
//!    rejection), so they see the same either way; redactions of `m.room.create` are
//!    never applied (`_maybe_redact_event_row`).
//! 3. State before: for every event that some server accepted, the state before it is
//!    computed from the trace alone — the state after each event is the state before it
//!    plus the event itself if it is a state event no server rejected; the state before an
//!    event is the state after its one prev event, or the resolution
//!    ([`state_res::resolve`], the default options) of the states after its prev events —
//!    and the event must pass [`auth::check_state_rules`] against it, for every server
//!    that accepted it, with the state's events in the form that server stored when it
//!    decided (redacted from its `redacted` record on). The resolution itself reads the
//!    original events, as Synapse's `StateResolutionStore.get_events` does (`as_is`,
//!    synapse/state/__init__.py). Events with a prev
//!    event the trace lacks (or on a cycle) have no computable state and are skipped.
//!    Bound: rooms with more than [`STATE_EVENTS_MAX`] events skip this step (it keeps a
//!    state map per state event and resolves at every merge); checks 1 and 2 still run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::matrix::auth::{self, AuthState, SignatureCheck};
use crate::matrix::dag::{self, EventStore, IndexedStore};
use crate::matrix::ids::LookupMap;
use crate::matrix::pdu::Pdu;
use crate::matrix::room_version::RoomVersionRules;
use crate::matrix::state_res::{self, ResolveOptions, StateMap};
use crate::stdx::Invariant;
use crate::trace::Decision;

use super::index::{Index, Receipt, is_accepting};
use super::{Violation, Witness, push_unique, violation};

const ID: Invariant = Invariant::Auth;

/// Largest room (events with a PDU and a stored decision) whose states before events are
/// computed.
pub const STATE_EVENTS_MAX: usize = 20_000;

pub(super) fn check(index: &Index<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    agreement(index, &mut found);
    own_auth_events(index, &mut found);
    state_before(index, &mut found);
    found.sort_by_key(|v| v.witness.line.unwrap_or(u64::MAX));
    found
}

fn agreement(index: &Index<'_>, found: &mut Vec<Violation>) {
    #[derive(Default)]
    struct Sides<'t> {
        accepted: Vec<&'t str>,
        rejected: Vec<&'t str>,
        reasons: Vec<String>,
        line: Option<u64>,
    }
    // First, which events some server accepted and another rejected, and the record that
    // made it so; then the sides of those only (listing every accepting server of every
    // event would be quadratic in a room of a thousand servers).
    // Hashed, one entry per event and a lookup per receipt; sorted once below.
    let mut seen: LookupMap<&str, (bool, bool, Option<u64>)> = LookupMap::new();
    for receipt in &index.receipts {
        let (accepted, rejected, line) =
            seen.get_or_insert_with(receipt.event_id, Default::default);
        if is_accepting(receipt.decision) {
            *accepted = true;
        } else if receipt.decision.is_rejected() {
            *rejected = true;
        } else {
            continue;
        }
        if line.is_none() && *accepted && *rejected {
            *line = Some(receipt.line);
        }
    }
    let mut sides: BTreeMap<&str, Sides<'_>> = seen
        .into_sorted()
        .into_iter()
        .filter_map(|(id, (_, _, line))| {
            line.map(|line| (id, Sides { line: Some(line), ..Sides::default() }))
        })
        .collect();
    for receipt in &index.receipts {
        let Some(entry) = sides.get_mut(receipt.event_id) else { continue };
        if is_accepting(receipt.decision) {
            push_unique(&mut entry.accepted, receipt.server);
        } else if receipt.decision.is_rejected() {
            push_unique(&mut entry.rejected, receipt.server);
            if let Some(reason) = receipt.reason {
                push_unique(&mut entry.reasons, format!("{}: {reason}", receipt.server));
            }
        }
    }
    for (event_id, sides) in sides {
        let Some(line) = sides.line else { continue };
        let mut message = format!(
            "servers disagree on whether {event_id} is rejected: accepted by {}, rejected by {}",
            sides.accepted.join(", "),
            sides.rejected.join(", ")
        );
        if !sides.reasons.is_empty() {
            message.push_str(&format!(" ({})", sides.reasons.join("; ")));
        }
        let servers = sides.accepted.iter().chain(&sides.rejected).map(|s| (*s).to_owned());
        let witness = Witness {
            servers: servers.collect(),
            events: vec![event_id.to_owned()],
            line: Some(line),
        };
        found.push(violation(ID, message, witness));
    }
}

fn own_auth_events(index: &Index<'_>, found: &mut Vec<Violation>) {
    // The latest decision of each server about each event so far, kept only for events
    // some server rejected: of any other event every decision is an acceptance, so
    // whether a server had decided it changes nothing (one entry per receipt would be
    // ten million at a thousand servers).
    let mut decisions: BTreeMap<(&str, &str), Decision> = BTreeMap::new();
    // (event id, copy, rejected flags of its auth events) → the rejection, computed once.
    let mut results: BTreeMap<FullKey<'_>, Option<String>> = BTreeMap::new();
    // (event id, copy) → the rejection read with no auth event rejected or redacted, when
    // no server ever rejected an auth event of it (`None`: some server did). Only looked
    // up, once per receipt: hashed.
    let mut plain: LookupMap<(&str, usize), Option<Option<String>>> = LookupMap::new();
    let mut bad: BTreeMap<(&str, String), Witness> = BTreeMap::new();
    let mut order: Vec<(&str, String)> = Vec::new();
    for receipt in &index.receipts {
        if is_accepting(receipt.decision) {
            let checked = check_own_plain(index, receipt, &decisions, &mut results, &mut plain);
            if let Some(problem) = checked {
                let key = (receipt.event_id, problem);
                let witness = bad.entry(key.clone()).or_insert_with(|| {
                    order.push(key);
                    Witness {
                        servers: Vec::new(),
                        events: vec![receipt.event_id.to_owned()],
                        line: Some(receipt.line),
                    }
                });
                push_unique(&mut witness.servers, receipt.server.to_owned());
            }
        }
        let ever_rejected =
            || index.events.get(receipt.event_id).is_some_and(|e| e.rejection.is_some());
        if receipt.decision.is_stored() && ever_rejected() {
            decisions.insert((receipt.server, receipt.event_id), receipt.decision);
        }
    }
    for key in order {
        let Some(witness) = bad.remove(&key) else { continue };
        let (event_id, problem) = key;
        let message = format!(
            "{} accepted {event_id}, which fails the auth rules against its own auth events: \
             {problem}",
            witness.servers.join(", ")
        );
        found.push(violation(ID, message, witness));
    }
}

/// An event, the copy a server stored, and the rejected and redacted flags of its auth
/// events as that server read them.
type FullKey<'t> = (&'t str, usize, Vec<bool>);

/// [`check_own`] through a memo per (event, copy) for the common case: the server had
/// applied no redaction, and no server ever rejected an auth event of it (nor the implied
/// create event), so every server reads the same auth events with no flag set. The same
/// answer as [`check_own`], without looking up each auth event for each receipt.
fn check_own_plain<'t>(
    index: &Index<'t>,
    receipt: &Receipt<'t>,
    decisions: &BTreeMap<(&str, &str), Decision>,
    results: &mut BTreeMap<FullKey<'t>, Option<String>>,
    plain: &mut LookupMap<(&'t str, usize), Option<Option<String>>>,
) -> Option<String> {
    let (Some(copy), false) =
        (receipt.copy, index.redacted_any_before(receipt.server, receipt.line))
    else {
        return check_own(index, receipt, decisions, results);
    };
    if let Some(known) = plain.get(&(receipt.event_id, copy)) {
        return match known {
            Some(result) => {
                let result = result.clone();
                debug_assert_eq!(result, check_own(index, receipt, decisions, results));
                result
            }
            None => check_own(index, receipt, decisions, results),
        };
    }
    let never_rejected =
        |id: &str| index.events.get(id).is_none_or(|e| e.pdu().is_none() || e.rejection.is_none());
    let eligible =
        index.rules(receipt.room).zip(index.stored_pdu(receipt)).is_some_and(|(rules, pdu)| {
            pdu.auth_events().iter().all(|id| never_rejected(id.as_str()))
                && dag::implicit_create_event(rules, pdu)
                    .is_none_or(|id| never_rejected(id.as_str()))
        });
    let result = check_own(index, receipt, decisions, results);
    plain.insert((receipt.event_id, copy), eligible.then(|| result.clone()));
    result
}

/// The rejection of one accepting receipt against its own auth events, if any.
fn check_own<'t>(
    index: &Index<'t>,
    receipt: &Receipt<'t>,
    decisions: &BTreeMap<(&str, &str), Decision>,
    results: &mut BTreeMap<FullKey<'t>, Option<String>>,
) -> Option<String> {
    let rules = index.rules(receipt.room)?;
    let pdu = index.stored_pdu(receipt)?;
    let rejected = |id: &str| match decisions.get(&(receipt.server, id)) {
        Some(decision) => decision.is_rejected(),
        None => index.events.get(id).is_some_and(|e| e.rejection.is_some()),
    };
    let mut list: Vec<(&Pdu, bool)> = Vec::new();
    // The same auth events in the form this server read them at this receipt.
    let mut seen: Vec<(&Pdu, bool)> = Vec::new();
    let mut redacted_flags: Vec<bool> = Vec::new();
    for id in pdu.auth_events() {
        // A missing auth event is a `dag` violation; nothing to check here.
        let auth_event = index.pdu(id.as_str())?;
        list.push((&**auth_event, rejected(id.as_str())));
        let read = index.pdu_seen_by(receipt.server, id.as_str(), receipt.line)?;
        seen.push((&**read, rejected(id.as_str())));
        redacted_flags.push(!Arc::ptr_eq(read, auth_event));
    }
    // Since v12 the create event is implied by the room id (never redacted).
    let create = dag::implicit_create_event(rules, pdu)
        .and_then(|id| index.pdu(id.as_str()).map(|p| (&**p, rejected(id.as_str()))));
    let mut flags: Vec<bool> = list.iter().map(|(_, r)| *r).collect();
    flags.push(create.is_some_and(|(_, r)| r));
    flags.extend(redacted_flags);
    let key = (receipt.event_id, receipt.copy?, flags);
    results
        .entry(key)
        .or_insert_with(|| {
            let mut state: BTreeMap<(String, String), &Pdu> = BTreeMap::new();
            for (auth_event, rejected) in seen.iter().chain(&create) {
                if let (Some(state_key), false) = (auth_event.state_key(), rejected) {
                    state.insert(
                        (auth_event.event_type().to_owned(), state_key.to_owned()),
                        *auth_event,
                    );
                }
            }
            auth::check_event(rules, pdu, &list, &state, SignatureCheck::Keys(&index.ring))
                .err()
                .map(|rejection| rejection.to_string())
        })
        .clone()
}

/// A state map read through the room's events, optionally as one server read them at one
/// trace line (redacted where it had applied a redaction).
struct StateView<'a, 't> {
    state: &'a StateMap,
    events: &'a IndexedStore,
    seen_by: Option<(&'a Index<'t>, &'a str, u64)>,
}

impl AuthState for StateView<'_, '_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Pdu> {
        let id = self.state.get(&(event_type.to_owned(), state_key.to_owned()))?;
        if let Some((index, server, line)) = self.seen_by {
            if let Some(pdu) = index.pdu_seen_by(server, id.as_str(), line) {
                return Some(&**pdu);
            }
        }
        EventStore::get(self.events, id)
    }
}

fn state_before(index: &Index<'_>, found: &mut Vec<Violation>) {
    // Each accepting (server, line) of each event, in trace order: the first is the
    // witness's line.
    // Only looked up (20,000 receipts at 100 servers), so by hash.
    let mut deciders: LookupMap<&str, Vec<(&str, u64)>> = LookupMap::new();
    // A hashed set, sorted once: each event is stored by every server.
    let mut stored: LookupMap<&str, ()> = LookupMap::new();
    for receipt in &index.receipts {
        if receipt.decision.is_stored() {
            stored.insert(receipt.event_id, ());
        }
        if is_accepting(receipt.decision) {
            let accepting = deciders.get_or_insert_with(receipt.event_id, Vec::new);
            accepting.push((receipt.server, receipt.line));
        }
    }
    let mut by_room: BTreeMap<&str, Vec<(&str, &Arc<Pdu>)>> = BTreeMap::new();
    for (id, ()) in stored.into_sorted() {
        let Some(event) = index.events.get(id) else { continue };
        let Some(pdu) = event.pdu() else { continue };
        by_room.entry(event.room).or_default().push((id, pdu));
    }
    for (room, events) in by_room {
        let Some(rules) = index.rules(room) else { continue };
        if events.len() > STATE_EVENTS_MAX {
            continue;
        }
        for (event_id, failing, problem) in room_states(index, rules, &events, &deciders) {
            let Some(accepting) = deciders.get(event_id) else { continue };
            let mut witness = Witness {
                servers: Vec::new(),
                events: vec![event_id.to_owned()],
                line: accepting.first().map(|(_, line)| *line),
            };
            for (server, _) in accepting {
                if failing.contains(server) {
                    push_unique(&mut witness.servers, (*server).to_owned());
                }
            }
            let message = format!(
                "{} accepted {event_id}, which fails the auth rules against the state before \
                 it: {problem}",
                witness.servers.join(", ")
            );
            found.push(violation(ID, message, witness));
        }
    }
}

/// The state after every event of one room in topological order; returns the events
/// some server accepted that fail against the state before them as that server read
/// it, with those servers and the first problem.
fn room_states<'t>(
    index: &Index<'t>,
    rules: &'static RoomVersionRules,
    events: &[(&'t str, &Arc<Pdu>)],
    deciders: &LookupMap<&str, Vec<(&'t str, u64)>>,
) -> Vec<(&'t str, Vec<&'t str>, String)> {
    let rejection = |id: &str| index.events.get(id).and_then(|e| e.rejection);
    let store = IndexedStore::from_events(
        rules,
        events.iter().map(|(id, pdu)| (Arc::clone(pdu), rejection(id))),
    );
    let position: LookupMap<&str, usize> =
        events.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
    // Kahn's algorithm over prev_events edges inside the room.
    let mut waiting: Vec<usize> = vec![0; events.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); events.len()];
    for (i, (_, pdu)) in events.iter().enumerate() {
        let prevs: BTreeSet<usize> =
            pdu.prev_events().iter().filter_map(|p| position.get(p.as_str()).copied()).collect();
        waiting[i] = prevs.len();
        for prev in prevs {
            children[prev].push(i);
        }
    }
    let mut ready: VecDeque<usize> = (0..events.len()).filter(|i| waiting[*i] == 0).collect();
    let mut after: Vec<Option<Arc<StateMap>>> = vec![None; events.len()];
    let mut problems = Vec::new();
    while let Some(i) = ready.pop_front() {
        let (event_id, pdu) = events[i];
        let before = state_before_event(rules, &store, pdu, &position, &after);
        if let Some(before) = &before {
            let keys = SignatureCheck::Keys(&index.ring);
            let view = StateView { state: before, events: &store, seen_by: None };
            let plain = auth::check_state_rules(rules, pdu, &view, keys).err();
            let mut failing: Vec<&'t str> = Vec::new();
            let mut problem: Option<String> = None;
            for &(server, line) in deciders.get(event_id).into_iter().flatten() {
                // Only a server that had applied a redaction can read another state.
                let result = if index.redacted_any_before(server, line) {
                    let seen_by = Some((index, server, line));
                    let view = StateView { state: before, events: &store, seen_by };
                    auth::check_state_rules(rules, pdu, &view, keys).err()
                } else {
                    plain.clone()
                };
                if let Some(rejection) = result {
                    push_unique(&mut failing, server);
                    problem.get_or_insert_with(|| rejection.to_string());
                }
            }
            if let Some(problem) = problem {
                problems.push((event_id, failing, problem));
            }
        }
        after[i] = before.map(|before| match pdu.state_key() {
            Some(state_key) if rejection(event_id).is_none() => {
                let mut state = (*before).clone();
                state.insert(
                    (pdu.event_type().to_owned(), state_key.to_owned()),
                    pdu.event_id().clone(),
                );
                Arc::new(state)
            }
            _ => before,
        });
        for &child in &children[i] {
            waiting[child] -= 1;
            if waiting[child] == 0 {
                ready.push_back(child);
            }
        }
    }
    problems
}

/// The state before `pdu`, if every prev event's state after is known.
fn state_before_event(
    rules: &RoomVersionRules,
    store: &IndexedStore,
    pdu: &Pdu,
    position: &LookupMap<&str, usize>,
    after: &[Option<Arc<StateMap>>],
) -> Option<Arc<StateMap>> {
    let mut states: Vec<Arc<StateMap>> = Vec::new();
    for prev in pdu.prev_events() {
        let state = after.get(*position.get(prev.as_str())?)?.as_ref()?;
        if !states.iter().any(|s| Arc::ptr_eq(s, state) || **s == **state) {
            states.push(Arc::clone(state));
        }
    }
    match states.len() {
        0 => Some(Arc::new(StateMap::new())),
        1 => states.pop(),
        _ => {
            let maps: Vec<StateMap> = states.iter().map(|s| (**s).clone()).collect();
            let resolved =
                state_res::resolve(rules, &maps, store, ResolveOptions::default()).ok()?;
            Some(Arc::new(resolved.state))
        }
    }
}
