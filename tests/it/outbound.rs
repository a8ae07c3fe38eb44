//! Properties of outbound delivery under random workloads and peers that die and recover:
//! at most one transaction in flight per destination, retries resend exactly the owed
//! transaction, every limit holds, no PDU is lost without its room being noted for
//! catch-up, and once every peer is back everything drains.

use std::collections::BTreeMap;
use std::sync::Arc;

use mxsim::homeserver::outbound::{
    Config, DestinationState, Enqueued, Outbound, OutboundAction, OutgoingTransaction,
    ResponseOutcome,
};
use mxsim::homeserver::wire::{Edu, OutgoingPdu};
use mxsim::matrix::canonical_json::Object;
use mxsim::stdx::{Duration, Instant, Prng};
use proptest::prelude::*;
use serde_json::Value;

const DESTINATIONS: [&str; 3] = ["hs2", "hs3", "hs4"];
const ROOMS: [&str; 4] = ["!a:hs1", "!b:hs1", "!c:hs1", "!d:hs1"];

/// Small limits, so that random runs hit every bound.
fn config() -> Config {
    Config {
        transaction_pdus_max: 2,
        transaction_edus_max: 2,
        queue_pdus_max: 5,
        queue_edus_max: 3,
        backoff_min: Duration::from_ms(100),
        backoff_max: Duration::from_ms(1_000),
        backoff_jitter_percent: 25,
        retries_max: 2,
        down_probe_interval: Duration::from_ms(5_000),
    }
}

#[derive(Clone, Debug)]
enum Op {
    EnqueuePdu {
        dest: usize,
        room: usize,
    },
    EnqueueEdu {
        dest: usize,
    },
    /// Time passes; then either a fired timer or a plain poll.
    Wait {
        ms: u64,
        timer: bool,
    },
    /// The in-flight transaction to `dest`, if any, gets its outcome (failure if the peer
    /// is dead or `ok` is false).
    Respond {
        dest: usize,
        ok: bool,
    },
    /// A report for a transaction id the destination does not owe.
    Stale {
        dest: usize,
    },
    /// The peer dies or comes back.
    Toggle {
        dest: usize,
    },
    /// The homeserver hears from the peer (only if it is alive).
    MarkUp {
        dest: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let dest = 0..DESTINATIONS.len();
    prop_oneof![
        6 => (dest.clone(), 0..ROOMS.len()).prop_map(|(dest, room)| Op::EnqueuePdu { dest, room }),
        2 => dest.clone().prop_map(|dest| Op::EnqueueEdu { dest }),
        3 => (0..3_000u64, any::<bool>()).prop_map(|(ms, timer)| Op::Wait { ms, timer }),
        4 => (dest.clone(), prop::bool::weighted(0.7)).prop_map(|(dest, ok)| Op::Respond { dest, ok }),
        1 => dest.clone().prop_map(|dest| Op::Stale { dest }),
        1 => dest.clone().prop_map(|dest| Op::Toggle { dest }),
        1 => dest.prop_map(|dest| Op::MarkUp { dest }),
    ]
}

/// The homeserver side of the test: answers catch-up, keeps time, checks every action.
struct Harness {
    out: Outbound,
    now: Instant,
    alive: [bool; 3],
    next_pdu: u64,
    /// The transaction each destination owes, as last sent.
    owed: BTreeMap<Arc<str>, OutgoingTransaction>,
    /// Every transaction id ever sent, with its destination and first content.
    sent: BTreeMap<Arc<str>, OutgoingTransaction>,
    /// PDUs handed to the outbound side (enqueued or given as catch-up) and delivered.
    pdus_given: u64,
    pdus_delivered: u64,
    /// One timer slot keeping the earliest request (stale ones included): the contract
    /// says a single slot is enough.
    timer: Option<Instant>,
}

impl Harness {
    fn new(seed: u64) -> Harness {
        Harness {
            out: Outbound::new(config(), Prng::from_seed(seed).fork("outbound"), Instant::ZERO),
            now: Instant::ZERO,
            alive: [true; 3],
            next_pdu: 0,
            owed: BTreeMap::new(),
            sent: BTreeMap::new(),
            pdus_given: 0,
            pdus_delivered: 0,
            timer: None,
        }
    }

    fn pdu(&mut self) -> Arc<OutgoingPdu> {
        self.next_pdu += 1;
        self.pdus_given += 1;
        let mut object = Object::new();
        object.insert("n".into(), Value::from(self.next_pdu));
        Arc::new(OutgoingPdu::new(object))
    }

    fn handle(&mut self, actions: Vec<OutboundAction>) -> Result<(), TestCaseError> {
        for action in actions {
            match action {
                OutboundAction::Send(txn) => {
                    prop_assert!(txn.pdus.len() <= 2 && txn.edus.len() <= 2);
                    prop_assert!(!txn.pdus.is_empty() || !txn.edus.is_empty());
                    match self.sent.get(&txn.txn_id) {
                        // A retry: exactly the owed transaction, one attempt later.
                        Some(first) => {
                            let owed = self.owed.get(&txn.destination);
                            prop_assert!(owed.is_some_and(|o| o.txn_id == txn.txn_id));
                            prop_assert_eq!(&first.destination, &txn.destination);
                            prop_assert_eq!(&first.pdus, &txn.pdus);
                            prop_assert_eq!(&first.edus, &txn.edus);
                            prop_assert_eq!(first.created_at, txn.created_at);
                            prop_assert_eq!(owed.unwrap().attempt + 1, txn.attempt);
                        }
                        // A new transaction: only when nothing is owed to that destination.
                        None => {
                            prop_assert!(!self.owed.contains_key(&txn.destination));
                            prop_assert_eq!(txn.attempt, 1);
                            self.sent.insert(txn.txn_id.clone(), txn.clone());
                        }
                    }
                    self.owed.insert(txn.destination.clone(), txn);
                }
                OutboundAction::CatchUp { destination, rooms } => {
                    prop_assert!(!rooms.is_empty());
                    prop_assert!(!self.owed.contains_key(destination.as_str()));
                    // The latest events: one per room, except the last room (we left it).
                    let mut latest = Vec::new();
                    for room in &rooms[..rooms.len() - 1] {
                        latest.push((room.clone(), self.pdu()));
                    }
                    self.out.replace_backlog(&destination, latest);
                }
                OutboundAction::SetTimer { at } => {
                    prop_assert!(at > self.now);
                    self.timer = Some(self.timer.map_or(at, |t| t.min(at)));
                }
            }
        }
        Ok(())
    }

    fn poll(&mut self) -> Result<(), TestCaseError> {
        // Catch-up answers change the queues, so poll until nothing more happens.
        for _ in 0..10 {
            let actions = self.out.poll(self.now);
            if actions.is_empty() {
                return Ok(());
            }
            self.handle(actions)?;
        }
        prop_assert!(false, "poll did not settle");
        Ok(())
    }

    fn respond(&mut self, dest: usize, ok: bool) -> Result<(), TestCaseError> {
        let name = DESTINATIONS[dest];
        let Some(txn) = self.owed.get(name).cloned() else { return Ok(()) };
        if !matches!(self.out.state(name), DestinationState::InFlight { .. }) {
            return Ok(());
        }
        let outcome = self.out.on_response(name, &txn.txn_id, self.now, ok && self.alive[dest]);
        match outcome {
            ResponseOutcome::Delivered => {
                self.pdus_delivered += u64::try_from(txn.pdus.len()).unwrap();
                self.owed.remove(name);
            }
            ResponseOutcome::RetryAt(at) => prop_assert!(at > self.now),
            ResponseOutcome::MarkedDown { .. } => {
                self.owed.remove(name);
                let down = matches!(self.out.state(name), DestinationState::Down { .. });
                prop_assert!(down, "marked down but {:?}", self.out.state(name));
            }
            ResponseOutcome::Stale => prop_assert!(false, "the owed transaction is not stale"),
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::EnqueuePdu { dest, room } => {
                let pdu = self.pdu();
                let outcome = self.out.enqueue_pdu(DESTINATIONS[dest], pdu, ROOMS[room]);
                if outcome != Enqueued::Queued {
                    prop_assert!(!self.out.catch_up_rooms(DESTINATIONS[dest]).is_empty());
                }
            }
            Op::EnqueueEdu { dest } => {
                let edu = Edu { edu_type: "m.typing".into(), content: Object::new() };
                self.out.enqueue_edu(DESTINATIONS[dest], edu);
            }
            Op::Wait { ms, timer } => {
                self.now = self.now + Duration::from_ms(ms);
                if timer && self.timer.is_some_and(|t| t <= self.now) {
                    self.timer = None;
                    let actions = self.out.on_timer(self.now);
                    self.handle(actions)?;
                }
            }
            Op::Respond { dest, ok } => self.respond(dest, ok)?,
            Op::Stale { dest } => {
                let outcome = self.out.on_response(DESTINATIONS[dest], "nope", self.now, true);
                prop_assert_eq!(outcome, ResponseOutcome::Stale);
            }
            Op::Toggle { dest } => self.alive[dest] = !self.alive[dest],
            Op::MarkUp { dest } => {
                if self.alive[dest] {
                    self.out.mark_up(DESTINATIONS[dest], self.now);
                }
            }
        }
        self.poll()?;
        self.check_bounds_and_conservation()
    }

    fn check_bounds_and_conservation(&self) -> Result<(), TestCaseError> {
        let mut queued = 0;
        for name in DESTINATIONS {
            prop_assert!(self.out.queued_pdu_count(name) <= 5);
            prop_assert!(self.out.queued_edu_count(name) <= 3);
            queued += self.out.queued_pdu_count(name);
            let state = self.out.state(name);
            let in_flight = matches!(
                state,
                DestinationState::InFlight { .. } | DestinationState::RetryAt { .. }
            );
            prop_assert_eq!(in_flight, self.owed.contains_key(name));
        }
        // Every PDU handed over is delivered, dropped (its room noted), superseded by a
        // newer event of its room, queued, or in the owed transaction.
        let owed: u64 = self.owed.values().map(|t| u64::try_from(t.pdus.len()).unwrap()).sum();
        let stats = self.out.stats();
        prop_assert_eq!(
            self.pdus_given,
            self.pdus_delivered + stats.pdus_dropped + stats.pdus_superseded + queued + owed
        );
        Ok(())
    }

    /// Every peer comes back; answer everything successfully and let time run until all
    /// is delivered. Bounded: the loop must settle.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        self.alive = [true; 3];
        for _ in 0..1_000 {
            for dest in 0..DESTINATIONS.len() {
                self.respond(dest, true)?;
            }
            self.poll()?;
            let busy = DESTINATIONS.iter().any(|name| {
                self.out.queued_pdu_count(name) > 0
                    || self.out.queued_edu_count(name) > 0
                    || !self.out.catch_up_rooms(name).is_empty()
                    || self.owed.contains_key(*name)
            });
            if !busy {
                return Ok(());
            }
            let in_flight = DESTINATIONS
                .iter()
                .any(|name| matches!(self.out.state(name), DestinationState::InFlight { .. }));
            if !in_flight {
                // Only timers (retries, probes) can make progress now.
                let Some(at) = self.timer.take() else {
                    prop_assert!(
                        false,
                        "work left but no timer: {:?}",
                        self.out.destinations().collect::<Vec<_>>()
                    );
                    return Ok(());
                };
                self.now = self.now.max(at);
                let actions = self.out.on_timer(self.now);
                self.handle(actions)?;
            }
            self.check_bounds_and_conservation()?;
        }
        prop_assert!(false, "delivery did not drain");
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn delivery_keeps_its_contract_under_random_faults(
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let mut harness = Harness::new(seed);
        for op in &ops {
            harness.apply(op)?;
        }
        harness.drain()?;
        prop_assert_eq!(
            harness.pdus_given,
            harness.pdus_delivered + harness.out.stats().pdus_dropped + harness.out.stats().pdus_superseded
        );
    }

    #[test]
    fn same_seed_same_actions(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..100)) {
        // Determinism: two runs of the same operations give the same transaction ids,
        // retry times and catch-up requests.
        let run = || -> Result<Vec<String>, TestCaseError> {
            let mut harness = Harness::new(seed);
            for op in &ops {
                harness.apply(op)?;
            }
            Ok(harness.sent.values().map(|t| format!("{}@{}", t.txn_id, t.created_at)).collect())
        };
        prop_assert_eq!(run()?, run()?);
    }
}
