//! Unit tests of the outbound delivery queues: batching, back-off, marking down, catch-up
//! and the bounds.

use super::*;
use crate::homeserver::wire::{OutgoingPdu, Request, Response};
use serde_json::{Value, json};

const T0: Instant = Instant { ms: 1_000 };

fn outbound() -> Outbound {
    Outbound::new(Config::default(), Prng::from_seed(7).fork("outbound/hs1"), T0)
}

fn outbound_with(config: Config) -> Outbound {
    Outbound::new(config, Prng::from_seed(7).fork("outbound/hs1"), T0)
}

fn pdu(n: u64) -> Arc<OutgoingPdu> {
    let Value::Object(object) = json!({"depth": n}) else { unreachable!() };
    Arc::new(OutgoingPdu::new(object))
}

fn edu(n: u64) -> Edu {
    let Value::Object(content) = json!({"n": n}) else { unreachable!() };
    Edu { edu_type: "m.typing".into(), content }
}

fn at(ms: u64) -> Instant {
    Instant::from_ms(ms)
}

fn sends(actions: &[OutboundAction]) -> Vec<&OutgoingTransaction> {
    actions
        .iter()
        .filter_map(|a| match a {
            OutboundAction::Send(txn) => Some(txn),
            _ => None,
        })
        .collect()
}

fn only_send(actions: &[OutboundAction]) -> OutgoingTransaction {
    let sends = sends(actions);
    assert_eq!(sends.len(), 1, "{actions:?}");
    sends[0].clone()
}

fn depths(txn: &OutgoingTransaction) -> Vec<u64> {
    txn.pdus.iter().map(|p| p.json()["depth"].as_u64().unwrap()).collect()
}

/// Fails the in-flight transaction to `dest` until it is marked down; returns the waits.
fn fail_until_down(out: &mut Outbound, dest: &str, mut now: Instant) -> (Vec<u64>, Instant) {
    let mut waits = Vec::new();
    loop {
        let DestinationState::InFlight { txn_id } = out.state(dest) else {
            panic!("expected in flight, got {:?}", out.state(dest))
        };
        match out.on_response(dest, &txn_id, now, false) {
            ResponseOutcome::RetryAt(retry) => {
                waits.push(retry.ms - now.ms);
                now = retry;
                let txn = only_send(&out.on_timer(now));
                assert_eq!(*txn.txn_id, *txn_id, "a retry resends the same transaction");
            }
            ResponseOutcome::MarkedDown { .. } => return (waits, now),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn transactions_respect_the_spec_limits_and_fifo_order() {
    let mut out = outbound();
    for n in 0..120 {
        assert_eq!(out.enqueue_pdu("hs2", pdu(n), "!r:hs1"), Enqueued::Queued);
    }
    for n in 0..250 {
        out.enqueue_edu("hs2", edu(n));
    }
    let mut txn_ids = BTreeSet::new();
    let mut seen = Vec::new();
    let mut edu_total = 0;
    let mut now = T0;
    for (pdu_count, edu_count) in [(50, 100), (50, 100), (20, 50)] {
        let txn = only_send(&out.poll(now));
        assert_eq!((txn.pdus.len(), txn.edus.len()), (pdu_count, edu_count));
        assert_eq!(txn.attempt, 1);
        assert_eq!(txn.created_at, now);
        assert!(txn_ids.insert(txn.txn_id.clone()), "txn ids are unique");
        seen.extend(depths(&txn));
        edu_total += txn.edus.len();
        now = now + Duration::from_ms(10);
        assert_eq!(out.on_response("hs2", &txn.txn_id, now, true), ResponseOutcome::Delivered);
    }
    assert_eq!(seen, (0..120).collect::<Vec<_>>());
    assert_eq!(edu_total, 250);
    assert!(out.poll(now).is_empty());
    // Nothing left: the destination is forgotten.
    assert_eq!(out.destinations().count(), 0);
    assert_eq!(out.stats().transactions_built, 3);
}

#[test]
fn a_pdu_fanned_out_holds_one_copy_of_its_room_id() {
    let mut out = outbound();
    let room: Arc<str> = Arc::from("!r:hs1");
    for destination in ["hs2", "hs3"] {
        assert_eq!(out.enqueue_pdu(destination, pdu(1), Arc::clone(&room)), Enqueued::Queued);
    }
    out.enqueue_pdu("hs2", pdu(2), "!r:hs1");
    let queued = |destination: &str| out.destinations.get(destination).unwrap().pdus.clone();
    let (hs2, hs3) = (queued("hs2"), queued("hs3"));
    assert!(Arc::ptr_eq(&hs2[0].room_id, &room) && Arc::ptr_eq(&hs3[0].room_id, &room));
    // A room id given as text is copied, and reads the same.
    assert!(!Arc::ptr_eq(&hs2[1].room_id, &room));
    assert_eq!(hs2[1].room_id, room);
}

#[test]
fn one_transaction_in_flight_per_destination() {
    let mut out = outbound();
    out.enqueue_pdu("hs2", pdu(1), "!r:hs1");
    out.enqueue_pdu("hs3", pdu(1), "!r:hs1");
    let actions = out.poll(T0);
    let destinations: Vec<&str> = sends(&actions).iter().map(|t| &*t.destination).collect();
    assert_eq!(destinations, ["hs2", "hs3"]);
    let hs2_txn = sends(&actions)[0].txn_id.clone();
    // More PDUs while hs2's transaction is in flight wait for it.
    out.enqueue_pdu("hs2", pdu(2), "!r:hs1");
    out.enqueue_pdu("hs2", pdu(3), "!r:hs1");
    assert!(out.poll(T0).is_empty());
    assert_eq!(out.queued_pdu_count("hs2"), 2);
    // A response for another txn id is stale and changes nothing.
    assert_eq!(out.on_response("hs2", "bogus", T0, true), ResponseOutcome::Stale);
    assert_eq!(out.on_response("hs9", &hs2_txn, T0, true), ResponseOutcome::Stale);
    assert!(out.poll(T0).is_empty());
    assert_eq!(out.on_response("hs2", &hs2_txn, T0, true), ResponseOutcome::Delivered);
    let next = only_send(&out.poll(T0));
    assert_eq!(depths(&next), [2, 3]);
    assert_ne!(next.txn_id, hs2_txn);
    // A repeated success for the delivered transaction is stale.
    assert_eq!(out.on_response("hs2", &hs2_txn, T0, true), ResponseOutcome::Stale);
}

#[test]
fn retries_back_off_exponentially_within_the_jitter_bounds() {
    let config = Config::default();
    let mut out = outbound();
    out.enqueue_pdu("hs2", pdu(1), "!r:hs1");
    out.enqueue_edu("hs2", edu(1));
    let first = only_send(&out.poll(T0));
    let (waits, _) = fail_until_down(&mut out, "hs2", T0);
    assert_eq!(waits.len(), config.retries_max as usize);
    for (index, &wait) in waits.iter().enumerate() {
        let nominal = config.backoff_nominal(u32::try_from(index).unwrap() + 1).ms;
        assert!(wait * 4 >= nominal * 3 && wait * 4 <= nominal * 5, "wait {wait} vs {nominal}");
    }
    // Strictly growing while the nominal wait doubles; then capped.
    assert_eq!(config.backoff_nominal(1).ms, 500);
    assert_eq!(config.backoff_nominal(8).ms, 60_000);
    assert_eq!(config.backoff_nominal(64).ms, 60_000);
    assert_eq!(config.backoff_nominal(u32::MAX).ms, 60_000);
    for pair in waits[..7].windows(2) {
        assert!(pair[1] > pair[0], "{waits:?}");
    }
    assert!(waits[7..].iter().all(|&w| (45_000..=75_000).contains(&w)), "{waits:?}");
    // The retries carried the same transaction: the first attempt's content and time.
    assert_eq!(first.attempt, 1);
    assert_eq!(first.pdus.len() + first.edus.len(), 2);
    // Same seed, same schedule; the jitter really varies the waits.
    let mut again = outbound();
    again.enqueue_pdu("hs2", pdu(1), "!r:hs1");
    again.poll(T0);
    assert_eq!(fail_until_down(&mut again, "hs2", T0).0, waits);
    let mut other = Outbound::new(config, Prng::from_seed(8), T0);
    other.enqueue_pdu("hs2", pdu(1), "!r:hs1");
    other.poll(T0);
    assert_ne!(fail_until_down(&mut other, "hs2", T0).0, waits);
}

#[test]
fn retries_resend_the_same_transaction_and_count_attempts() {
    let mut out = outbound();
    out.enqueue_pdu("hs2", pdu(1), "!r:hs1");
    let first = only_send(&out.poll(T0));
    let ResponseOutcome::RetryAt(retry) = out.on_response("hs2", &first.txn_id, T0, false) else {
        panic!()
    };
    // New PDUs wait; nothing is sent before the retry time.
    out.enqueue_pdu("hs2", pdu(2), "!r:hs1");
    let actions = out.poll(T0);
    assert_eq!(actions, [OutboundAction::SetTimer { at: retry }]);
    assert!(out.poll(at(retry.ms - 1)).is_empty());
    // A second failure report for the same attempt counts once.
    assert_eq!(out.on_response("hs2", &first.txn_id, T0, false), ResponseOutcome::Stale);
    let second = only_send(&out.on_timer(retry));
    assert_eq!(
        second,
        OutgoingTransaction { attempt: 2, ..first.clone() },
        "same id, contents and creation time"
    );
    assert_eq!(out.failure_count("hs2"), 1);
    assert_eq!(out.on_response("hs2", &first.txn_id, retry, true), ResponseOutcome::Delivered);
    assert_eq!(out.failure_count("hs2"), 0);
    assert_eq!(depths(&only_send(&out.poll(retry))), [2]);
}

#[test]
fn a_late_success_after_a_reported_timeout_is_believed() {
    let mut out = outbound();
    out.enqueue_pdu("hs2", pdu(1), "!r:hs1");
    let txn = only_send(&out.poll(T0));
    assert!(matches!(out.on_response("hs2", &txn.txn_id, T0, false), ResponseOutcome::RetryAt(_)));
    assert_eq!(out.on_response("hs2", &txn.txn_id, at(1_100), true), ResponseOutcome::Delivered);
    assert_eq!(out.state("hs2"), DestinationState::Idle);
    assert!(out.poll(at(100_000)).is_empty(), "no retry after delivery");
}

#[test]
fn marked_down_after_max_retries_then_catch_up_on_probe() {
    let config = Config { retries_max: 2, ..Config::default() };
    let mut out = outbound_with(config);
    out.enqueue_pdu("hs2", pdu(1), "!a:hs1");
    out.enqueue_edu("hs2", edu(1));
    out.poll(T0);
    out.enqueue_pdu("hs2", pdu(2), "!b:hs1");
    out.enqueue_edu("hs2", edu(2));
    let (waits, now) = fail_until_down(&mut out, "hs2", T0);
    assert_eq!(waits.len(), 2);
    let DestinationState::Down { probe_at } = out.state("hs2") else { panic!() };
    let interval = config.down_probe_interval.ms;
    assert!(
        (probe_at.ms - now.ms) * 4 >= interval * 3 && (probe_at.ms - now.ms) * 4 <= interval * 5
    );
    // The owed and queued PDUs became catch-up notes; EDUs are gone.
    assert_eq!(out.catch_up_rooms("hs2"), ["!a:hs1", "!b:hs1"]);
    assert_eq!((out.queued_pdu_count("hs2"), out.queued_edu_count("hs2")), (0, 0));
    assert_eq!(out.stats().marked_down, 1);
    assert_eq!(out.stats().edus_dropped, 2);
    // While down nothing is queued: PDUs only note their room.
    assert_eq!(out.enqueue_pdu("hs2", pdu(3), "!c:hs1"), Enqueued::Dropped);
    assert_eq!(out.enqueue_edu("hs2", edu(3)), Enqueued::Dropped);
    assert_eq!(out.queued_pdu_count("hs2"), 0);
    assert_eq!(out.poll(now), [OutboundAction::SetTimer { at: probe_at }]);
    assert!(out.poll(at(probe_at.ms - 1)).is_empty());
    // The probe asks for catch-up of every noted room, once.
    let actions = out.on_timer(probe_at);
    let rooms: Vec<String> = ["!a:hs1", "!b:hs1", "!c:hs1"].map(String::from).into();
    assert_eq!(actions, [OutboundAction::CatchUp { destination: "hs2".into(), rooms }]);
    assert!(out.poll(probe_at).is_empty());
    // The homeserver supplies the latest events of two rooms (it left the third).
    out.replace_backlog("hs2", vec![("!a:hs1".into(), pdu(10)), ("!c:hs1".into(), pdu(30))]);
    assert!(out.catch_up_rooms("hs2").is_empty());
    let txn = only_send(&out.poll(probe_at));
    assert_eq!(depths(&txn), [10, 30]);
    // One failure on a probe goes straight back down.
    let outcome = out.on_response("hs2", &txn.txn_id, probe_at, false);
    let ResponseOutcome::MarkedDown { probe_at: Some(next_probe) } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(next_probe > probe_at);
    assert_eq!(out.catch_up_rooms("hs2"), ["!a:hs1", "!c:hs1"]);
    // This time it works: the destination is up again and forgets its failures.
    let actions = out.on_timer(next_probe);
    assert!(matches!(&actions[..], [OutboundAction::CatchUp { .. }]));
    out.replace_backlog("hs2", vec![("!a:hs1".into(), pdu(11))]);
    let txn = only_send(&out.poll(next_probe));
    assert_eq!(out.on_response("hs2", &txn.txn_id, next_probe, true), ResponseOutcome::Delivered);
    assert_eq!(out.state("hs2"), DestinationState::Idle);
    assert_eq!(out.failure_count("hs2"), 0);
    assert_eq!(out.enqueue_pdu("hs2", pdu(12), "!a:hs1"), Enqueued::Queued);
}

#[test]
fn a_down_destination_with_nothing_to_catch_up_needs_no_timer() {
    let config = Config { retries_max: 0, ..Config::default() };
    let mut out = outbound_with(config);
    out.enqueue_edu("hs2", edu(1));
    let txn = only_send(&out.poll(T0));
    assert_eq!(
        out.on_response("hs2", &txn.txn_id, T0, false),
        ResponseOutcome::MarkedDown { probe_at: None }
    );
    assert!(out.poll(T0).is_empty(), "no timer: nothing to deliver");
    // A PDU after the probe time passed triggers the probe at once.
    let DestinationState::Down { probe_at } = out.state("hs2") else { panic!() };
    out.enqueue_pdu("hs2", pdu(1), "!a:hs1");
    let actions = out.poll(probe_at);
    assert!(
        matches!(&actions[..], [OutboundAction::CatchUp { rooms, .. }] if rooms == &["!a:hs1"])
    );
}

#[test]
fn mark_up_resets_the_back_off_and_tries_at_once() {
    let config = Config { retries_max: 1, ..Config::default() };
    let mut out = outbound_with(config);
    // Backing off: a sign of life makes the retry immediate.
    out.enqueue_pdu("hs2", pdu(1), "!a:hs1");
    let txn = only_send(&out.poll(T0));
    let ResponseOutcome::RetryAt(retry) = out.on_response("hs2", &txn.txn_id, T0, false) else {
        panic!()
    };
    assert!(retry > T0);
    out.mark_up("hs2", T0);
    assert_eq!(out.failure_count("hs2"), 0);
    let again = only_send(&out.poll(T0));
    assert_eq!((&*again.txn_id, again.attempt), (&*txn.txn_id, 2));
    // Down: a sign of life starts catch-up without waiting for the probe.
    let (waits, now) = fail_until_down(&mut out, "hs2", T0);
    assert_eq!(waits.len(), 1, "the failure count started again from zero");
    assert!(matches!(out.state("hs2"), DestinationState::Down { .. }));
    out.mark_up("hs2", now);
    let actions = out.poll(now);
    assert!(matches!(&actions[..], [OutboundAction::CatchUp { .. }]), "{actions:?}");
    // Unknown destinations are ignored.
    out.mark_up("hs9", now);
    assert_eq!(out.state("hs9"), DestinationState::Idle);
}

#[test]
fn a_full_queue_drops_the_oldest_and_notes_catch_up() {
    let config = Config { queue_pdus_max: 4, queue_edus_max: 2, ..Config::default() };
    let mut out = outbound_with(config);
    out.enqueue_pdu("hs2", pdu(0), "!a:hs1");
    let in_flight = only_send(&out.poll(T0));
    for n in 1..=4 {
        assert_eq!(out.enqueue_pdu("hs2", pdu(n), "!a:hs1"), Enqueued::Queued);
    }
    assert_eq!(out.enqueue_pdu("hs2", pdu(5), "!b:hs1"), Enqueued::QueuedDroppedOldest);
    assert_eq!(out.enqueue_pdu("hs2", pdu(6), "!b:hs1"), Enqueued::QueuedDroppedOldest);
    assert_eq!(out.queued_pdu_count("hs2"), 4);
    assert_eq!(out.catch_up_rooms("hs2"), ["!a:hs1"], "the dropped PDUs were in !a");
    for n in 0..3 {
        out.enqueue_edu("hs2", edu(n));
    }
    assert_eq!(out.queued_edu_count("hs2"), 2);
    assert_eq!(out.stats().pdus_dropped, 2);
    assert_eq!(out.stats().edus_dropped, 1);
    // After the in-flight transaction the queue is still full, so one transaction
    // goes first (asking now could not queue the answer).
    out.on_response("hs2", &in_flight.txn_id, T0, true);
    let full = only_send(&out.poll(T0));
    assert_eq!(depths(&full), [3, 4, 5, 6]);
    assert_eq!(full.edus, [edu(1), edu(2)]);
    // With room in the queue, catch-up comes before anything new.
    out.enqueue_pdu("hs2", pdu(7), "!a:hs1");
    out.enqueue_pdu("hs2", pdu(8), "!b:hs1");
    out.enqueue_edu("hs2", edu(3));
    out.on_response("hs2", &full.txn_id, T0, true);
    let actions = out.poll(T0);
    let rooms = vec!["!a:hs1".to_owned()];
    assert_eq!(actions, [OutboundAction::CatchUp { destination: "hs2".into(), rooms }]);
    // The latest events of !a supersede its queued PDU; !b's PDU and the EDU stay.
    out.replace_backlog("hs2", vec![("!a:hs1".into(), pdu(40)), ("!a:hs1".into(), pdu(41))]);
    assert_eq!(out.stats().pdus_superseded, 1);
    let txn = only_send(&out.poll(T0));
    assert_eq!(depths(&txn), [8, 40, 41]);
    assert_eq!(txn.edus, [edu(3)]);
}

#[test]
fn catch_up_larger_than_the_queue_comes_in_rounds() {
    let config = Config { queue_pdus_max: 2, ..Config::default() };
    let mut out = outbound_with(config);
    let latest: Vec<(String, Arc<OutgoingPdu>)> =
        (0..5).map(|n| (format!("!r{n}:hs1"), pdu(n))).collect();
    out.replace_backlog("hs2", latest);
    assert_eq!(out.queued_pdu_count("hs2"), 2);
    assert_eq!(out.catch_up_rooms("hs2"), ["!r2:hs1", "!r3:hs1", "!r4:hs1"]);
    let txn = only_send(&out.poll(T0));
    assert_eq!(depths(&txn), [0, 1]);
    out.on_response("hs2", &txn.txn_id, T0, true);
    let actions = out.poll(T0);
    assert!(matches!(&actions[..], [OutboundAction::CatchUp { rooms, .. }] if rooms.len() == 3));
}

#[test]
fn timers_are_asked_for_once_per_earlier_deadline() {
    let mut out = outbound();
    out.enqueue_pdu("hs2", pdu(1), "!a:hs1");
    out.enqueue_pdu("hs3", pdu(1), "!a:hs1");
    let actions = out.poll(T0);
    let [OutboundAction::Send(a), OutboundAction::Send(b)] = &actions[..] else { panic!() };
    let (a, b) = (a.clone(), b.clone());
    let ResponseOutcome::RetryAt(retry_a) = out.on_response("hs2", &a.txn_id, T0, false) else {
        panic!()
    };
    assert_eq!(out.poll(T0), [OutboundAction::SetTimer { at: retry_a }]);
    assert!(out.poll(T0).is_empty(), "the same deadline is not asked for twice");
    // hs3 fails later, so its retry is later: no new timer until the first fires.
    let later = at(T0.ms + 10);
    let ResponseOutcome::RetryAt(retry_b) = out.on_response("hs3", &b.txn_id, later, false) else {
        panic!()
    };
    let actions = out.poll(later);
    if retry_b < retry_a {
        assert_eq!(actions, [OutboundAction::SetTimer { at: retry_b }]);
    } else {
        assert!(actions.is_empty());
    }
    // Firing at the first deadline resends that transaction and asks for the next.
    let first = retry_a.min(retry_b);
    let second = retry_a.max(retry_b);
    let actions = out.on_timer(first);
    assert_eq!(sends(&actions).len(), 1);
    assert_eq!(actions.last(), Some(&OutboundAction::SetTimer { at: second }));
    // A timer firing with nothing due sends nothing and re-announces the deadline.
    assert_eq!(out.on_timer(first), [OutboundAction::SetTimer { at: second }]);
    assert!(out.poll(first).is_empty());
}

#[test]
fn outgoing_transactions_become_send_requests() {
    let mut out = outbound();
    out.enqueue_pdu("hs2", pdu(1), "!a:hs1");
    out.enqueue_edu("hs2", edu(1));
    let txn = only_send(&out.poll(T0));
    assert_eq!(&*txn.txn_id, "1000.0", "ids start from the creation time");
    let request = txn.to_request("hs1", 1_700_000_000_000);
    let http = request.to_http();
    // Written from the PDUs' kept encodings, the request is the same bytes.
    assert_eq!(txn.to_http("hs1", 1_700_000_000_000, &mut Default::default()), http);
    let sent = &txn.pdus[0];
    assert!(std::ptr::eq(sent.bytes(), sent.bytes()), "encoded once, then reused");
    assert_eq!(sent.bytes(), b"{\"depth\":1}");
    assert_eq!(http.path_and_query, "/_matrix/federation/v1/send/1000.0");
    assert_eq!(Request::from_http(&http).unwrap(), request);
    let Request::SendTransaction { transaction, .. } = request else { panic!() };
    assert_eq!(transaction.pdus, [pdu(1).json().clone()]);
    assert_eq!(transaction.edus, [edu(1)]);
    // A restarted server (created later) does not reuse ids.
    let mut restarted = Outbound::new(Config::default(), Prng::from_seed(7), at(5_000));
    restarted.enqueue_pdu("hs2", pdu(1), "!a:hs1");
    assert_eq!(&*only_send(&restarted.poll(at(5_000))).txn_id, "5000.0");
    let _ = Response::SendLeave;
}

#[test]
fn the_same_pdus_sent_at_once_to_several_destinations_share_one_body() {
    let mut out = outbound();
    let shared = pdu(1);
    for destination in ["hs2", "hs3", "hs4"] {
        out.enqueue_pdu(destination, Arc::clone(&shared), "!a:hs1");
    }
    out.enqueue_pdu("hs5", pdu(1), "!a:hs1"); // Equal bytes, another encoding.
    out.enqueue_pdu("hs6", Arc::clone(&shared), "!a:hs1");
    out.enqueue_edu("hs6", edu(1));
    let txns: Vec<OutgoingTransaction> = sends(&out.poll(T0)).into_iter().cloned().collect();
    let names: Vec<&str> = txns.iter().map(|txn| &*txn.destination).collect();
    assert_eq!(names, ["hs2", "hs3", "hs4", "hs5", "hs6"]);
    let ts = 1_700_000_000_000;
    let mut last = wire::LastTransactionBody::default();
    let requests: Vec<_> = txns.iter().map(|txn| txn.to_http("hs1", ts, &mut last)).collect();
    let bodies: Vec<&wire::RequestBody> =
        requests.iter().map(|request| request.body.as_ref().unwrap()).collect();
    // Each request is what it would be alone: its own target, the same bytes.
    for (txn, request) in txns.iter().zip(&requests) {
        assert_eq!(*request, txn.to_http("hs1", ts, &mut Default::default()));
        assert_eq!(request.path_and_query, format!("/_matrix/federation/v1/send/{}", txn.txn_id));
    }
    assert!(bodies[1].is_shared_with(bodies[0]) && bodies[2].is_shared_with(bodies[0]));
    // Not shared: another encoding of the PDU (compared by address), and a transaction
    // with an EDU.
    assert!(!bodies[3].is_shared_with(bodies[0]));
    assert!(!bodies[4].is_shared_with(bodies[0]) && !bodies[4].is_shared_with(bodies[3]));
    // Another timestamp, or another origin: written again.
    let later = txns[0].to_http("hs1", ts + 1, &mut last);
    assert!(!later.body.as_ref().unwrap().is_shared_with(bodies[0]));
    assert_eq!(later, txns[0].to_http("hs1", ts + 1, &mut Default::default()));
    let other = txns[1].to_http("hsX", ts + 1, &mut last);
    assert!(!other.body.as_ref().unwrap().is_shared_with(later.body.as_ref().unwrap()));
    assert_eq!(other, txns[1].to_http("hsX", ts + 1, &mut Default::default()));
}

#[test]
fn configs_are_checked() {
    assert_eq!(Config::default().check(), Ok(()));
    let bad = [
        Config { transaction_pdus_max: 51, ..Config::default() },
        Config { transaction_edus_max: 0, ..Config::default() },
        Config { queue_pdus_max: 0, ..Config::default() },
        Config { backoff_min: Duration::ZERO, ..Config::default() },
        Config { backoff_max: Duration::from_ms(1), ..Config::default() },
        Config { backoff_jitter_percent: 51, ..Config::default() },
        Config { down_probe_interval: Duration::ZERO, ..Config::default() },
    ];
    for config in bad {
        assert!(config.check().is_err(), "{config:?}");
    }
    // Jitter arithmetic stays exact and in bounds for awkward values.
    let mut prng = Prng::from_seed(1);
    let config = Config { backoff_jitter_percent: 50, ..Config::default() };
    for ms in [1, 3, 99, 101, 12_345, u64::MAX / 4] {
        let wait = jittered(&mut prng, Duration::from_ms(ms), &config).ms;
        assert!(wait >= ms - ms / 2 && wait <= ms + ms / 2, "{ms} → {wait}");
    }
}

/// A poll leaves nothing to step at the next one: what a destination does next changes
/// only by a deadline or a call that touches it. (Stepping every held destination at
/// every poll made each input of a server cost as much as its number of peers.)
#[test]
fn a_poll_leaves_no_destination_to_step_again() {
    let mut out = outbound();
    for n in 0..50 {
        out.enqueue_pdu(&format!("hs{n}"), pdu(n), "!r:hs1");
    }
    assert_eq!(out.dirty.len(), 50);
    let actions = out.poll(T0);
    assert_eq!(sends(&actions).len(), 50);
    assert!(out.dirty.is_empty(), "stepped again at the next poll: {:?}", out.dirty);
    // One answer touches one destination, and the next poll steps only it.
    let DestinationState::InFlight { txn_id } = out.state("hs7") else { panic!() };
    out.on_response("hs7", &txn_id, at(1_010), false);
    assert_eq!(out.dirty.iter().map(|d| &**d).collect::<Vec<_>>(), ["hs7"]);
    assert!(sends(&out.poll(at(1_010))).is_empty(), "the retry waits for its deadline");
    assert!(out.dirty.is_empty());
    // The deadline brings the retry, without anything touching the destination.
    let DestinationState::RetryAt { at: retry, .. } = out.state("hs7") else { panic!() };
    assert_eq!(&*only_send(&out.poll(retry)).destination, "hs7");
}

/// The marked list may hold a name whose destination was forgotten since (and, after it
/// came back and was marked again, that name twice): the mark decides, so such a
/// destination is stepped once, or not at all, and the others in name order.
#[test]
fn a_poll_steps_each_marked_destination_once_in_name_order() {
    let mut out = outbound();
    for name in ["hs3", "hs1", "hs2"] {
        out.enqueue_pdu(name, pdu(1), "!r:hs1");
    }
    // A stale name (no such destination) and a second listing of a marked one.
    out.dirty.push(Arc::from("hs0"));
    out.dirty.push(Arc::from("hs2"));
    // hs1 forgotten and back unmarked: listed, but stepped by nothing.
    out.destinations.get_mut("hs1").unwrap().dirty = false;
    let actions = out.poll(T0);
    let to: Vec<&str> = sends(&actions).iter().map(|t| &*t.destination).collect();
    assert_eq!(to, ["hs2", "hs3"]);
    assert!(out.dirty.is_empty() && out.destinations.get("hs0").is_none());
    assert!(out.destinations.get("hs2").is_some_and(|d| !d.dirty));
    // hs1, marked again, goes at the next poll.
    out.enqueue_pdu("hs1", pdu(2), "!r:hs1");
    assert_eq!(depths(&only_send(&out.poll(T0))), [1, 2]);
}

#[test]
fn a_destination_names_itself_with_one_copy_and_leaves_its_queue_to_the_next() {
    let mut out = outbound();
    out.enqueue_pdu("hs2", pdu(1), "!r:hs1");
    let name = Arc::clone(&out.destinations.get("hs2").unwrap().name);
    assert!(Arc::ptr_eq(out.dirty.first().unwrap(), &name), "dirty holds the same copy");
    let txn = only_send(&out.poll(T0));
    assert!(Arc::ptr_eq(&txn.destination, &name), "the transaction names it by that copy");
    // A failure files a deadline under the same copy; the retry is sent with it.
    let ResponseOutcome::RetryAt(retry) = out.on_response("hs2", &txn.txn_id, T0, false) else {
        panic!("a first failure is retried")
    };
    assert!(Arc::ptr_eq(&out.deadlines.first().unwrap().1, &name));
    let again = only_send(&out.poll(retry));
    assert!(Arc::ptr_eq(&again.txn_id, &txn.txn_id), "a retry shares the transaction id");
    // Delivered, the destination holds nothing: it is forgotten, its queue kept.
    assert_eq!(out.on_response("hs2", &again.txn_id, retry, true), ResponseOutcome::Delivered);
    assert!(out.destinations.get("hs2").is_none() && out.deadlines.is_empty());
    assert_eq!(out.spare_queues.len(), 1);
    let room = out.spare_queues[0].capacity();
    assert!(room > 0, "the queue that held a PDU has room");
    // The next new destination takes it, empty.
    out.enqueue_pdu("hs3", pdu(2), "!r:hs1");
    assert!(out.spare_queues.is_empty());
    let hs3 = out.destinations.get("hs3").unwrap();
    assert_eq!((hs3.pdus.len(), hs3.pdus.capacity()), (1, room));
    assert_eq!(depths(&only_send(&out.poll(retry))), [2]);
}

#[test]
fn spare_queues_are_bounded() {
    let mut out = outbound();
    let mut txns = Vec::new();
    for n in 0..(SPARE_QUEUES as u64 + 5) {
        out.enqueue_pdu(&format!("hs{n}"), pdu(n), "!r:hs1");
    }
    txns.extend(sends(&out.poll(T0)).into_iter().cloned());
    for txn in &txns {
        out.on_response(&txn.destination, &txn.txn_id, T0, true);
    }
    assert_eq!(txns.len(), SPARE_QUEUES + 5);
    assert!(out.destinations.is_empty());
    assert_eq!(out.spare_queues.len(), SPARE_QUEUES);
}

#[test]
fn transaction_ids_are_the_epoch_and_the_count() {
    assert_eq!(&*txn_id(1_700_000_000_000, 0), "1700000000000.0");
    assert_eq!(&*txn_id(0, 42), "0.42");
    let most = format!("{}.{}", u64::MAX, u64::MAX);
    assert_eq!(&*txn_id(u64::MAX, u64::MAX), most);
}
