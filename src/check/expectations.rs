//! `expectations`: what the scenario says it demonstrates holds (the header's
//! `check.expect`, docs/scenarios.md).
//!
//! - **Steps.** Every judged step (scripted `[[step]]` tables and `[[room]]` setups) must
//!   succeed, or fail if it says `expect = "fail"`. A step failed when an `action_failed`
//!   record names it without `retry_at_ms` (its last try failed); it succeeded when an
//!   `action` record names it and it did not fail.
//! - **`state`.** At the end (the `final` records), every server joined to the room has an
//!   event at the key; with `content`, each of those events' content holds every given
//!   field with the given value; without, they are all the same event.
//! - **`conflicted`.** Replaying the room's DAG from the PDUs in the trace (the state after
//!   each event: the state after its prev events, resolved with `matrix::state_res` where
//!   they differ, plus the event unless a server rejected it), at least one merge had
//!   state sets that differ at the key between concurrent events (values neither of which
//!   is an ancestor of the other through `prev_events`; a value another was built on is
//!   only older state), and at least `events_min` distinct such events took part over all
//!   such merges.
//! - **`rejected`.** The event of the labelled step was created, and every other server
//!   joined to the room at the end last decided it was rejected or soft-failed.
//! - **`converged_by`.** At that time (the last `state` record at or before it), every
//!   server joined to the room at the end holds the same current state.
//!
//! Witness: the servers and events concerned, and the trace line of the failure (for
//! steps) or of the first `final` record that shows the problem.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use crate::matrix::dag::{IndexedStore, RejectionKind};
use crate::matrix::state_res::{self, ResolveOptions, StateMap};
use crate::matrix::{EventId, Pdu};
use crate::stdx::Invariant;
use crate::trace::{ActionFailure, Body, Decision, Expectation};

use super::index::{Final, Index};
use super::{Violation, Witness, violation};

const ID: Invariant = Invariant::Expectations;

/// What the trace says about one step.
#[derive(Default)]
struct StepSeen<'t> {
    /// Line of its first `action` record.
    ran: Option<u64>,
    /// Its final failure: (line, server, action, reason).
    failed: Option<(u64, &'t str, &'t str, &'t str)>,
}

pub(super) fn check(index: &Index<'_>) -> Vec<Violation> {
    let expect = &index.trace.header.check.expect;
    let mut found = Vec::new();
    if !expect.steps.is_empty() {
        found.extend(steps(index));
    }
    for block in &expect.blocks {
        let (line, room) = match block {
            Expectation::State { line, room, .. }
            | Expectation::Conflicted { line, room, .. }
            | Expectation::Rejected { line, room, .. }
            | Expectation::ConvergedBy { line, room, .. } => (*line, room),
        };
        let Some(room_id) = expect.rooms.get(room) else {
            let message = format!(
                "[[expect]] at scenario line {line}: room {room:?} was never created, so nothing it expects was shown"
            );
            found.push(violation(ID, message, Witness::default()));
            continue;
        };
        let finals: Vec<&Final<'_>> =
            index.finals.iter().filter(|f| f.room == room_id && f.joined).collect();
        let problem = match block {
            Expectation::State { event_type, state_key, content, .. } => {
                state(index, &finals, event_type, state_key, content.as_ref())
            }
            Expectation::Conflicted { event_type, state_key, events_min, .. } => {
                conflicted(index, room_id, event_type, state_key, *events_min)
            }
            Expectation::Rejected { label, .. } => {
                rejected(index, room_id, &finals, label, expect.labels.get(label))
            }
            Expectation::ConvergedBy { at_ms, .. } => converged_by(index, room_id, &finals, *at_ms),
        };
        if let Some((message, witness)) = problem {
            let message = format!("[[expect]] at scenario line {line}: {message}");
            found.push(violation(ID, message, witness));
        }
    }
    found
}

fn steps(index: &Index<'_>) -> Vec<Violation> {
    let mut seen: BTreeMap<u64, StepSeen<'_>> = BTreeMap::new();
    let mut described: BTreeMap<u64, (&str, &str)> = BTreeMap::new();
    for (i, record) in index.trace.records.iter().enumerate() {
        match &record.body {
            Body::Action { step: Some(step), server, action, .. } => {
                seen.entry(*step).or_default().ran.get_or_insert(index.trace.line_of(i));
                described.entry(*step).or_insert((server, action));
            }
            Body::ActionFailed(failure) => {
                let ActionFailure { step: Some(step), server, action, reason, retry_at_ms, .. } =
                    &**failure
                else {
                    continue;
                };
                described.entry(*step).or_insert((server, action));
                if retry_at_ms.is_none() {
                    let entry = seen.entry(*step).or_default();
                    entry.failed.get_or_insert((index.trace.line_of(i), server, action, reason));
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    for expected in &index.trace.header.check.expect.steps {
        let at = expected.line;
        let seen = seen.remove(&expected.step).unwrap_or_default();
        let what = described
            .get(&expected.step)
            .map_or(String::new(), |(server, action)| format!(" ({action} on {server})"));
        match (expected.expect.as_str(), seen.failed, seen.ran) {
            ("fail", Some(_), _) => {}
            ("fail", None, Some(line)) => {
                let message = format!(
                    "the step at scenario line {at}{what} is marked expect = \"fail\" but succeeded"
                );
                let servers = described.get(&expected.step).map(|(s, _)| (*s).to_owned());
                let witness = Witness {
                    servers: servers.into_iter().collect(),
                    events: vec![],
                    line: Some(line),
                };
                found.push(violation(ID, message, witness));
            }
            (_, Some((line, server, _, reason)), _) if expected.expect != "fail" => {
                let message =
                    format!("the step at scenario line {at}{what} failed unexpectedly: {reason}");
                let witness =
                    Witness { servers: vec![server.to_owned()], events: vec![], line: Some(line) };
                found.push(violation(ID, message, witness));
            }
            (_, None, None) | (_, Some(_), _) => {
                let message = format!("the step at scenario line {at} never ran");
                found.push(violation(ID, message, Witness::default()));
            }
            (_, None, Some(_)) => {}
        }
    }
    found
}

type Problem = Option<(String, Witness)>;

fn no_joined(finals: &[&Final<'_>]) -> Problem {
    finals
        .is_empty()
        .then(|| ("no server is joined to the room at the end".to_owned(), Witness::default()))
}

fn state(
    index: &Index<'_>,
    finals: &[&Final<'_>],
    event_type: &str,
    state_key: &str,
    content: Option<&serde_json::Map<String, Value>>,
) -> Problem {
    if let Some(problem) = no_joined(finals) {
        return Some(problem);
    }
    let key = format!("{event_type}/{state_key:?}");
    let mut by_event: BTreeMap<Option<&str>, Vec<&Final<'_>>> = BTreeMap::new();
    for f in finals {
        let id = f.state.get(event_type).and_then(|keys| keys.get(state_key)).map(String::as_str);
        by_event.entry(id).or_default().push(f);
    }
    if let Some(without) = by_event.get(&None) {
        let servers: Vec<String> = without.iter().map(|f| f.server.to_owned()).collect();
        let message = format!("{} ends with no event at {key}", servers.join(", "));
        return Some((message, Witness { servers, events: vec![], line: Some(without[0].line) }));
    }
    match content {
        None if by_event.len() > 1 => {
            let servers: Vec<String> = finals.iter().map(|f| f.server.to_owned()).collect();
            let events: Vec<String> =
                by_event.keys().flatten().map(|id| (*id).to_owned()).collect();
            let message = format!(
                "the joined servers end with {} different events at {key}: {}",
                events.len(),
                events.join(", ")
            );
            let line = by_event.values().nth(1).map(|fs| fs[0].line);
            Some((message, Witness { servers, events, line }))
        }
        None => None,
        Some(wanted) => {
            for (id, fs) in &by_event {
                let id = id.expect("servers without an event were reported above");
                let held = index.events.get(id).and_then(|e| e.pdu()).map(|pdu| pdu.content());
                let differs: Vec<&String> = wanted
                    .iter()
                    .filter(|(field, value)| held.and_then(|c| c.get(*field)) != Some(*value))
                    .map(|(field, _)| field)
                    .collect();
                if !differs.is_empty() || held.is_none() {
                    let servers: Vec<String> = fs.iter().map(|f| f.server.to_owned()).collect();
                    let fields: Vec<&str> = differs.iter().map(|f| f.as_str()).collect();
                    let message = format!(
                        "{} ends with {id} at {key}, whose content differs in {}",
                        servers.join(", "),
                        if held.is_none() {
                            "everything (no PDU)".to_owned()
                        } else {
                            fields.join(", ")
                        }
                    );
                    let witness =
                        Witness { servers, events: vec![id.to_owned()], line: Some(fs[0].line) };
                    return Some((message, witness));
                }
            }
            None
        }
    }
}

fn rejection_kind(decision: Decision) -> Option<RejectionKind> {
    match decision {
        Decision::RejectedAuthEvents => Some(RejectionKind::AuthEvents),
        Decision::RejectedStateBefore => Some(RejectionKind::StateBefore),
        _ => None,
    }
}

/// Replays the room's DAG and collects the candidates at `(event_type, state_key)` of
/// every merge whose state sets differ there.
fn conflicted(
    index: &Index<'_>,
    room_id: &str,
    event_type: &str,
    state_key: &str,
    events_min: u64,
) -> Problem {
    let key = (event_type.to_owned(), state_key.to_owned());
    let shown = format!("{event_type}/{state_key:?}");
    let Some(rules) = index.rooms.get(room_id).and_then(|r| r.rules) else {
        let message = format!("the room's version is unknown, so {shown} could not be judged");
        return Some((message, Witness::default()));
    };
    let mut rejected: BTreeMap<&str, RejectionKind> = BTreeMap::new();
    for receipt in &index.receipts {
        if receipt.room == room_id {
            if let Some(kind) = rejection_kind(receipt.decision) {
                rejected.entry(receipt.event_id).or_insert(kind);
            }
        }
    }
    let mut events: Vec<(i64, u64, &str, &Arc<Pdu>)> = index
        .events
        .sorted()
        .into_iter()
        .filter(|(_, e)| e.room == room_id)
        .filter_map(|(id, e)| e.pdu().map(|pdu| (pdu.depth(), e.first_line, *id, pdu)))
        .collect();
    events.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let store = IndexedStore::from_events(
        rules,
        events.iter().map(|(_, _, id, pdu)| (Arc::clone(pdu), rejected.get(id).copied())),
    );
    let mut after: BTreeMap<&str, StateMap> = BTreeMap::new();
    let mut candidates: BTreeSet<EventId> = BTreeSet::new();
    let mut merges: u64 = 0;
    for (_, _, id, pdu) in &events {
        let states: Option<Vec<&StateMap>> =
            pdu.prev_events().iter().map(|prev| after.get(prev.as_str())).collect();
        let Some(states) = states else { continue };
        let mut state = match states.as_slice() {
            [] => StateMap::new(),
            [one] => (*one).clone(),
            many if many.iter().all(|s| *s == many[0]) => many[0].clone(),
            many => {
                let values: BTreeSet<Option<&EventId>> = many.iter().map(|s| s.get(&key)).collect();
                if values.len() > 1 {
                    // Only writes that raced count: a value that an other one was built
                    // on (an ancestor of it) is just the older state.
                    let written: Vec<&EventId> = values.into_iter().flatten().collect();
                    let racing: Vec<&EventId> = written
                        .iter()
                        .filter(|a| !written.iter().any(|b| a != &b && is_ancestor(index, a, b)))
                        .copied()
                        .collect();
                    if racing.len() > 1 {
                        merges += 1;
                        candidates.extend(racing.into_iter().cloned());
                    }
                }
                let sets: Vec<StateMap> = many.iter().map(|s| (*s).clone()).collect();
                match state_res::resolve(rules, &sets, &store, ResolveOptions::default()) {
                    Ok(resolved) => resolved.state,
                    Err(_) => continue,
                }
            }
        };
        if let (Some(sk), None) = (pdu.state_key(), rejected.get(id)) {
            state.insert((pdu.event_type().to_owned(), sk.to_owned()), pdu.event_id().clone());
        }
        after.insert(id, state);
    }
    let count = u64::try_from(candidates.len()).unwrap_or(u64::MAX);
    if merges > 0 && count >= events_min {
        return None;
    }
    let events: Vec<String> = candidates.iter().map(|e| e.as_str().to_owned()).collect();
    let message = if merges == 0 {
        format!(
            "{shown} was conflicted between concurrent events in no state resolution of the room"
        )
    } else {
        format!(
            "{shown} was conflicted in {merges} resolutions, between {count} distinct concurrent events; at least {events_min} were expected"
        )
    };
    Some((message, Witness { servers: vec![], events, line: None }))
}

/// Whether `a` is an ancestor of `b` through `prev_events`, among the trace's PDUs. The
/// walk skips events whose depth is below `a`'s (an honest DAG's depths grow along
/// `prev_events`); on a dishonest trace the answer may be wrong, never a panic.
fn is_ancestor(index: &Index<'_>, a: &EventId, b: &EventId) -> bool {
    let pdu = |id: &str| index.events.get(id).and_then(|e| e.pdu());
    let floor = pdu(a.as_str()).map_or(i64::MIN, |p| p.depth());
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&str> = vec![b.as_str()];
    while let Some(id) = stack.pop() {
        let Some(event) = pdu(id) else { continue };
        for prev in event.prev_events() {
            if prev == a {
                return true;
            }
            let deep_enough = pdu(prev.as_str()).is_some_and(|p| p.depth() >= floor);
            if deep_enough && seen.insert(prev.as_str()) {
                stack.push(prev.as_str());
            }
        }
    }
    false
}

fn rejected(
    index: &Index<'_>,
    room_id: &str,
    finals: &[&Final<'_>],
    label: &str,
    event_id: Option<&String>,
) -> Problem {
    let Some(event_id) = event_id else {
        let message = format!("the step labelled {label:?} created no event");
        return Some((message, Witness::default()));
    };
    let mut last: BTreeMap<&str, (Decision, u64)> = BTreeMap::new();
    for receipt in &index.receipts {
        if receipt.room == room_id && receipt.event_id == event_id {
            last.insert(receipt.server, (receipt.decision, receipt.line));
        }
    }
    let origin: Vec<&str> =
        last.iter().filter(|(_, (d, _))| *d == Decision::Created).map(|(s, _)| *s).collect();
    let others: Vec<&&Final<'_>> = finals.iter().filter(|f| !origin.contains(&f.server)).collect();
    if others.is_empty() {
        let message = format!(
            "no server other than the origin of {label:?} ({event_id}) is joined at the end, so none rejected it"
        );
        return Some((
            message,
            Witness { servers: vec![], events: vec![event_id.clone()], line: None },
        ));
    }
    for f in others {
        let verdict = match last.get(f.server) {
            None => Some(("never received it".to_owned(), f.line)),
            Some((decision, line))
                if !decision.is_rejected() && *decision != Decision::SoftFailed =>
            {
                Some((format!("last decided {decision:?}"), *line))
            }
            Some(_) => None,
        };
        if let Some((what, line)) = verdict {
            let message = format!(
                "the event of the step labelled {label:?} ({event_id}) was not rejected or soft-failed everywhere: {} {what}",
                f.server
            );
            let witness = Witness {
                servers: vec![f.server.to_owned()],
                events: vec![event_id.clone()],
                line: Some(line),
            };
            return Some((message, witness));
        }
    }
    None
}

fn converged_by(index: &Index<'_>, room_id: &str, finals: &[&Final<'_>], at_ms: u64) -> Problem {
    if let Some(problem) = no_joined(finals) {
        return Some(problem);
    }
    let mut hash_at: BTreeMap<&str, &str> = BTreeMap::new();
    for record in &index.trace.records {
        if record.t > at_ms {
            break;
        }
        if let Body::State { server, room, state_hash } = &record.body {
            if room == room_id {
                hash_at.insert(server, state_hash);
            }
        }
    }
    let mut by_hash: BTreeMap<Option<&str>, Vec<String>> = BTreeMap::new();
    for f in finals {
        by_hash.entry(hash_at.get(f.server).copied()).or_default().push(f.server.to_owned());
    }
    if by_hash.len() == 1 && !by_hash.contains_key(&None) {
        return None;
    }
    let groups: Vec<String> = by_hash
        .iter()
        .map(|(hash, servers)| match hash {
            Some(hash) => {
                format!("{} at state {}", servers.join(", "), &hash[..hash.len().min(12)])
            }
            None => format!("{} not in the room yet", servers.join(", ")),
        })
        .collect();
    let message = format!("the room had not converged by {at_ms} ms: {}", groups.join("; "));
    let servers = finals.iter().map(|f| f.server.to_owned()).collect();
    Some((message, Witness { servers, events: vec![], line: None }))
}
