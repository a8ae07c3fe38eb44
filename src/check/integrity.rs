//! `integrity`: every event a server stored (an `event` record whose decision is not
//! `dropped`) has a PDU in the trace — the record's own `pdu`, else the first copy recorded
//! for its id — and that copy
//! 1. is well-formed for the room's version (from `joined` records or the create event),
//! 2. has an event id equal to its reference hash, in the recorded room,
//! 3. carries valid signatures of the required servers (the origin) under the header's
//!    keys, and
//! 4. matches its content hash, or is itself the redacted form of the event (what a server
//!    keeps when the hash does not match).
//!
//! Each distinct copy is verified once; one violation names every server that stored a bad
//! copy, at the first record that stored it. A signature that is byte for byte one the
//! run's servers made on this thread, of the very bytes the check computes and with the
//! header's key, is known to verify without the curve arithmetic (`matrix::crypto`,
//! `crypto/made.rs`); any other is verified in full, as is every signature a process that
//! signed nothing reads (`mxsim check`, `mxsim report`).

use std::collections::BTreeMap;

use crate::matrix::ids::LookupMap;
use crate::matrix::pdu::{self, Verified};
use crate::stdx::Invariant;

use super::index::Index;
use super::{Violation, Witness, push_unique, violation};

const ID: Invariant = Invariant::Integrity;

pub(super) fn check(index: &Index<'_>) -> Vec<Violation> {
    let mut found = Vec::new();
    for problem in &index.key_problems {
        found.push(violation(ID, problem.clone(), Witness { line: Some(1), ..Witness::default() }));
    }
    for &(line, server, room) in &index.stored_without_id {
        found.push(violation(
            ID,
            format!("{server} stored an event in {room} without an event id"),
            Witness { servers: vec![server.to_owned()], events: vec![], line: Some(line) },
        ));
    }
    // (event id, problem) → witness, in order of the first storing record.
    let mut bad: BTreeMap<(&str, String), Witness> = BTreeMap::new();
    let mut order: Vec<(&str, String)> = Vec::new();
    // (event id, copy) → problem, computed once; looked up once per receipt, so hashed.
    let mut verdicts: LookupMap<(&str, usize), Option<String>> = LookupMap::new();
    for receipt in &index.receipts {
        if !receipt.decision.is_stored() {
            continue;
        }
        let problem = match receipt.copy {
            None => Some("no PDU for it anywhere in the trace".to_owned()),
            Some(copy) => verdicts
                .get_or_insert_with((receipt.event_id, copy), || {
                    copy_problem(index, receipt.event_id, copy)
                })
                .clone(),
        };
        let Some(problem) = problem else { continue };
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
    for key in order {
        let Some(witness) = bad.remove(&key) else { continue };
        let (event_id, problem) = key;
        let message =
            format!("{} stored event {event_id}, but {problem}", witness.servers.join(", "));
        found.push(violation(ID, message, witness));
    }
    found
}

/// What is wrong with copy `at` of `event_id`, or `None` if it is intact or the redacted
/// form.
fn copy_problem(index: &Index<'_>, event_id: &str, at: usize) -> Option<String> {
    let event = index.events.get(event_id)?;
    let copy = event.copies.get(at)?;
    let pdu = match &copy.parsed {
        Ok(pdu) => pdu,
        Err(problem) => return Some(problem.clone()),
    };
    if let Some(problem) = &copy.problem {
        return Some(problem.clone());
    }
    let rules = index.rules(event.room)?;
    match pdu::verify(rules, pdu, &index.ring) {
        Err(error) => Some(format!("the signature of {} does not verify: {error}", pdu.origin())),
        Ok(Verified::Intact) => None,
        Ok(Verified::Redacted(redacted)) => {
            // The stored copy may be the redacted form (the receiver keeps that when the
            // content hash does not match); `unsigned` is not part of the event.
            let mut stored = copy.json.clone();
            stored.remove("unsigned");
            if stored == redacted {
                None
            } else {
                Some("its content hash does not match and the stored copy is not redacted".into())
            }
        }
    }
}
