//! Outbound delivery, sans-IO: per-destination queues of PDUs and EDUs, sent as transactions
//! with one in flight per destination, retried with exponential back-off, bounded
//! everywhere, and caught up with the latest events per room after an outage.
//!
//! Spec: "Transactions" (digest: spec/federation-api.md §2, §10). The spec says only that a
//! sender must wait for, and retry until, a 200 before sending a transaction with another
//! `txnId` to the same destination, and that a transaction holds at most 50 PDUs and 100
//! EDUs. Everything else here — back-off, giving up, bounded queues, catch-up — is [impl]
//! practice (mostly Synapse's `PerDestinationQueue`), with mxsim's own parameters in
//! [`Config`].
//!
//! The life of a destination:
//!
//! ```text
//!            enqueue                   poll: build ≤50 PDUs + ≤100 EDUs
//!   Idle ─────────────────────────────────────────────────────────> InFlight
//!    ^  ^                                                        ok │   │ failed
//!    │  └───────────────────────────────────────────────────────────┘   v
//!    │                     poll at the retry time: resend the same  RetryAt(t)
//!    │                     transaction (same txn id, same contents)     │ failed more than
//!    │ probe due, or mark_up                                            │ retries_max times
//!    └────────────────────────────── Down { probe_at } <────────────────┘
//! ```
//!
//! - **One in flight** (spec): a destination has at most one transaction owed. A failed
//!   transaction is resent unchanged — same `txnId`, same PDUs and EDUs — so that a
//!   receiver which de-duplicates by (origin, txnId) never drops the new content of a
//!   reused id. Its `created_at` stays the first attempt's, so `origin_server_ts` can too.
//! - **Back-off** ([impl]): after failure `n` the retry waits `min(backoff_min × 2^(n-1),
//!   backoff_max)` plus or minus `backoff_jitter_percent`, in integer milliseconds, drawn
//!   from the injected [`Prng`].
//! - **Down** ([impl]): after `retries_max` failed retries the destination is marked down.
//!   The owed transaction is abandoned (the one place mxsim stops retrying a `txnId`, as
//!   Synapse does on any failure), its PDUs and every queued PDU are replaced by a note of
//!   their rooms, EDUs are dropped (they are ephemeral), and new PDUs only add their room
//!   to that note. Every `down_probe_interval` (jittered) a down destination with rooms to
//!   catch up gets one attempt; [`Outbound::mark_up`] (the homeserver heard from it) makes
//!   it eligible at once and resets the back-off, as Synapse does when a request arrives
//!   from a backed-off server.
//! - **Bounded queues** ([impl]): a full PDU queue drops its oldest PDU and notes that PDU's
//!   room for catch-up; a full EDU queue drops its oldest EDU. A dead or hostile peer
//!   therefore costs at most `queue_pdus_max + queue_edus_max` entries plus one owed
//!   transaction plus one room id per room the homeserver shares with it.
//! - **Catch-up** ([impl] Synapse's catch-up mode): when rooms are noted, before its next
//!   transaction the destination asks the homeserver with [`OutboundAction::CatchUp`], and
//!   sends nothing until the homeserver answers with [`Outbound::replace_backlog`], giving
//!   the latest events of each room (its forward extremities). Those supersede the queued
//!   PDUs of their rooms, so the history is not resent; the receiver fills the gap with
//!   `/get_missing_events` (spec digest §3.1).
//!
//! Determinism: no clock (every entry point takes `now`), randomness only from the
//! injected [`Prng`] and only when a failure is reported, sorted maps and sets wherever
//! entries are walked (destinations are found by name in a [`LookupMap`], which hands
//! them out only sorted), and transaction ids from a counter.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use crate::homeserver::wire::{self, Edu};
use crate::matrix::ids::LookupMap;
use crate::stdx::{Duration, Instant, Prng};

mod config;
mod types;

pub use config::Config;
pub use types::{
    DestinationState, Enqueued, OutboundAction, OutgoingTransaction, ResponseOutcome, Stats,
};

/// A PDU waiting for a destination, with the room it belongs to (for catch-up): one copy
/// of the room id for every destination a PDU is fanned out to.
#[derive(Clone, Debug)]
struct QueuedPdu {
    room_id: Arc<str>,
    pdu: Arc<wire::OutgoingPdu>,
}

/// The transaction a destination is owed until it answers 200.
#[derive(Clone, Debug)]
struct Owed {
    txn_id: Arc<str>,
    pdus: Vec<QueuedPdu>,
    edus: Vec<Edu>,
    created_at: Instant,
    attempt: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    InFlight,
    RetryAt(Instant),
    Down { probe_at: Instant },
}

#[derive(Debug)]
struct Destination {
    /// Its name: the same copy as its key in [`Outbound::destinations`], in
    /// [`Outbound::dirty`] and [`Outbound::deadlines`], and in the transactions sent to it.
    name: Arc<str>,
    pdus: VecDeque<QueuedPdu>,
    edus: VecDeque<Edu>,
    /// Rooms whose latest events must be sent before anything new.
    catch_up_rooms: BTreeSet<String>,
    /// A [`OutboundAction::CatchUp`] was emitted and not yet answered.
    catch_up_requested: bool,
    owed: Option<Owed>,
    /// Consecutive failed attempts; reset by a success or [`Outbound::mark_up`].
    failures: u32,
    state: State,
    /// The deadline this destination has in [`Outbound::deadlines`], if any.
    indexed: Option<Instant>,
    /// Marked for the next poll: its name is in [`Outbound::dirty`].
    dirty: bool,
}

/// Marks `dest` for the next poll, listing its name in `dirty` unless it is marked.
fn mark(dest: &mut Destination, dirty: &mut Vec<Arc<str>>) {
    if !dest.dirty {
        dest.dirty = true;
        dirty.push(Arc::clone(&dest.name));
    }
}

impl Destination {
    fn new(name: Arc<str>, pdus: VecDeque<QueuedPdu>) -> Destination {
        debug_assert!(pdus.is_empty());
        Destination {
            name,
            pdus,
            edus: VecDeque::new(),
            catch_up_rooms: BTreeSet::new(),
            catch_up_requested: false,
            owed: None,
            failures: 0,
            state: State::Idle,
            indexed: None,
            dirty: false,
        }
    }

    /// The time at which `poll` must look at this destination again, if any.
    fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::RetryAt(at) => Some(at),
            State::Down { probe_at } if !self.catch_up_rooms.is_empty() => Some(probe_at),
            _ => None,
        }
    }

    /// Whether the destination holds nothing worth remembering.
    fn is_forgettable(&self) -> bool {
        self.state == State::Idle
            && self.failures == 0
            && self.owed.is_none()
            && self.pdus.is_empty()
            && self.edus.is_empty()
            && self.catch_up_rooms.is_empty()
    }

    fn check(&self, config: &Config) {
        assert!(self.pdus.len() <= config.queue_pdus_max, "PDU queue over its bound");
        assert!(self.edus.len() <= config.queue_edus_max, "EDU queue over its bound");
        match self.state {
            State::Idle => assert!(self.owed.is_none(), "an idle destination owes nothing"),
            State::InFlight | State::RetryAt(_) => {
                assert!(self.owed.is_some(), "in flight or retrying without a transaction");
            }
            State::Down { .. } => {
                assert!(self.owed.is_none(), "a down destination owes nothing");
                assert!(self.pdus.is_empty(), "a down destination queues no PDU");
                assert!(self.edus.is_empty(), "a down destination queues no EDU");
            }
        }
        if let Some(owed) = &self.owed {
            assert!(owed.pdus.len() <= config.transaction_pdus_max, "owed PDUs over the limit");
            assert!(owed.edus.len() <= config.transaction_edus_max, "owed EDUs over the limit");
            assert!(!owed.pdus.is_empty() || !owed.edus.is_empty(), "an empty transaction");
            assert!(owed.attempt >= 1);
        }
        if self.catch_up_requested {
            assert!(!self.catch_up_rooms.is_empty(), "catch-up requested for no room");
        }
    }
}

/// Outbound delivery for one homeserver. See the module documentation.
#[derive(Debug)]
pub struct Outbound {
    config: Config,
    prng: Prng,
    /// The first part of every transaction id: the virtual time this instance was created.
    txn_id_epoch_ms: u64,
    txn_count: u64,
    /// Looked up by name for every PDU queued and every answer; walked only sorted.
    /// A destination that holds nothing is forgotten (a server's peers would otherwise
    /// each cost an entry at every other server), and its name's one copy with it.
    destinations: LookupMap<Arc<str>, Destination>,
    /// Destinations touched since the last poll, each listed once while marked
    /// ([`Destination::dirty`]), and sorted by name when polled. A name whose destination
    /// was forgotten since, or marked again after being forgotten, may stay listed: the
    /// mark decides. A sorted set cost a walk of name comparisons per mark, and a server
    /// marks every peer at every event it sends.
    dirty: Vec<Arc<str>>,
    /// `(deadline, destination)` for every destination with a deadline.
    deadlines: BTreeSet<(Instant, Arc<str>)>,
    /// Emptied PDU queues of forgotten destinations, at most [`SPARE_QUEUES`], for the next
    /// new ones: at a hundred servers each event queued for a peer that holds nothing else
    /// made a queue, and each answer freed it.
    spare_queues: Vec<VecDeque<QueuedPdu>>,
    /// The earliest timer asked for and not yet known to have fired.
    timer_armed: Option<Instant>,
    stats: Stats,
}

impl Outbound {
    /// A new outbound side. `prng` should be a stream forked for this server's delivery.
    /// Transaction ids are `{now_ms}.{n}`: [impl] Synapse also starts its transaction
    /// counter from the clock, so that a restarted server does not reuse ids its peers
    /// have cached responses for.
    pub fn new(config: Config, prng: Prng, now: Instant) -> Outbound {
        if let Err(problem) = config.check() {
            panic!("invalid outbound config: {problem}");
        }
        Outbound {
            config,
            prng,
            txn_id_epoch_ms: now.ms,
            txn_count: 0,
            destinations: LookupMap::new(),
            dirty: Vec::new(),
            deadlines: BTreeSet::new(),
            spare_queues: Vec::new(),
            timer_armed: None,
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Queues a PDU of `room_id` for `destination`. A caller that queues a PDU for many
    /// destinations passes one shared room id to each (`Arc<str>`), and copies nothing.
    pub fn enqueue_pdu(
        &mut self,
        destination: &str,
        pdu: Arc<wire::OutgoingPdu>,
        room_id: impl Into<Arc<str>>,
    ) -> Enqueued {
        let room_id = room_id.into();
        let queue_pdus_max = self.config.queue_pdus_max;
        let dest = destination_entry(&mut self.destinations, &mut self.spare_queues, destination);
        let outcome = if let State::Down { .. } = dest.state {
            dest.catch_up_rooms.insert(room_id.to_string());
            Enqueued::Dropped
        } else {
            let mut outcome = Enqueued::Queued;
            if dest.pdus.len() == queue_pdus_max {
                let oldest = dest.pdus.pop_front().expect("a full queue is not empty");
                dest.catch_up_rooms.insert(oldest.room_id.to_string());
                outcome = Enqueued::QueuedDroppedOldest;
            }
            dest.pdus.push_back(QueuedPdu { room_id, pdu });
            assert!(dest.pdus.len() <= queue_pdus_max, "the PDU queue stays bounded");
            outcome
        };
        if outcome != Enqueued::Queued {
            self.stats.pdus_dropped += 1;
        }
        self.touch(destination);
        outcome
    }

    /// Queues an EDU for `destination`.
    pub fn enqueue_edu(&mut self, destination: &str, edu: Edu) -> Enqueued {
        let queue_edus_max = self.config.queue_edus_max;
        let dest = destination_entry(&mut self.destinations, &mut self.spare_queues, destination);
        let outcome = if let State::Down { .. } = dest.state {
            Enqueued::Dropped
        } else {
            let mut outcome = Enqueued::Queued;
            if dest.edus.len() == queue_edus_max {
                dest.edus.pop_front().expect("a full queue is not empty");
                outcome = Enqueued::QueuedDroppedOldest;
            }
            dest.edus.push_back(edu);
            assert!(dest.edus.len() <= queue_edus_max, "the EDU queue stays bounded");
            outcome
        };
        if outcome != Enqueued::Queued {
            self.stats.edus_dropped += 1;
        }
        self.touch(destination);
        outcome
    }

    /// Decides what to do now: due retries and probes, new transactions for idle
    /// destinations, catch-up requests, and the next timer. Destinations are visited in
    /// name order, so the actions are deterministic.
    pub fn poll(&mut self, now: Instant) -> Vec<OutboundAction> {
        if self.timer_armed.is_some_and(|armed| armed < now) {
            // That timer is in the past: whether or not it has fired, it guards nothing.
            self.timer_armed = None;
        }
        while let Some((at, _)) = self.deadlines.first() {
            if *at > now {
                break;
            }
            let (_, name) = self.deadlines.pop_first().expect("just looked at it");
            if let Some(dest) = self.destinations.get_mut(&name) {
                mark(dest, &mut self.dirty);
            }
        }
        let mut actions = Vec::new();
        // In name order. Stepping a destination marks none (see `step`), so this visits
        // the marked ones as they were; the list's room is kept for the next poll.
        let mut names = std::mem::take(&mut self.dirty);
        names.sort_unstable();
        for name in &names {
            self.step(name, now, &mut actions);
        }
        debug_assert!(self.dirty.is_empty(), "stepping marks no destination");
        names.clear();
        self.dirty = names;
        if let Some((at, _)) = self.deadlines.first() {
            let at = *at;
            assert!(at > now, "every due deadline was handled");
            if self.timer_armed.is_none_or(|armed| at < armed) {
                self.timer_armed = Some(at);
                actions.push(OutboundAction::SetTimer { at });
            }
        }
        actions
    }

    /// A timer asked for with [`OutboundAction::SetTimer`] fired: poll, and announce the
    /// next deadline again whatever was asked for before, so that a caller with a single
    /// timer slot (keeping either the earliest or the latest request) never loses one.
    pub fn on_timer(&mut self, now: Instant) -> Vec<OutboundAction> {
        self.timer_armed = None;
        self.poll(now)
    }

    /// The outcome of sending `txn_id` to `destination`: `ok` is a 200 answer (whatever
    /// the per-PDU results); anything else — an error status, a timeout, a broken
    /// connection — is a failure. Call [`Outbound::poll`] afterwards.
    pub fn on_response(
        &mut self,
        destination: &str,
        txn_id: &str,
        now: Instant,
        ok: bool,
    ) -> ResponseOutcome {
        let config = self.config;
        let Some(dest) = self.destinations.get_mut(destination) else {
            return ResponseOutcome::Stale;
        };
        let owes_it = dest.owed.as_ref().is_some_and(|owed| *owed.txn_id == *txn_id);
        let outcome = match (owes_it, ok, dest.state) {
            (false, _, _) => ResponseOutcome::Stale,
            // A success is believed even after the caller reported a timeout for the same
            // transaction: it did arrive.
            (true, true, State::InFlight | State::RetryAt(_)) => {
                dest.owed = None;
                dest.failures = 0;
                dest.state = State::Idle;
                ResponseOutcome::Delivered
            }
            (true, false, State::InFlight) => {
                dest.failures = dest.failures.saturating_add(1);
                if dest.failures > config.retries_max {
                    let probe_at = mark_down(dest, &config, &mut self.prng, &mut self.stats, now);
                    ResponseOutcome::MarkedDown { probe_at }
                } else {
                    let wait =
                        jittered(&mut self.prng, config.backoff_nominal(dest.failures), &config);
                    let at = now + wait;
                    dest.state = State::RetryAt(at);
                    ResponseOutcome::RetryAt(at)
                }
            }
            // A failure for a transaction already waiting to be retried was counted.
            (true, false, _) => ResponseOutcome::Stale,
            (true, true, State::Idle | State::Down { .. }) => {
                unreachable!("a destination that owes a transaction is in flight or retrying")
            }
        };
        if outcome != ResponseOutcome::Stale {
            self.touch(destination);
        }
        outcome
    }

    /// Whether `destination` is marked down: it failed more than `retries_max` times in a
    /// row and has not been heard from since (a catch-up probe in flight leaves it down
    /// until it succeeds).
    pub fn is_down(&self, destination: &str) -> bool {
        self.destinations.get(destination).is_some_and(|d| d.failures > self.config.retries_max)
    }

    /// The homeserver heard from `destination` (an authenticated request arrived), so it is
    /// probably up: reset the back-off and, if it was down or waiting to retry, try now.
    /// [impl] Synapse resets a destination's retry timings when a request from it arrives.
    pub fn mark_up(&mut self, destination: &str, now: Instant) {
        let Some(dest) = self.destinations.get_mut(destination) else { return };
        dest.failures = 0;
        match dest.state {
            State::Down { .. } => dest.state = State::Idle,
            State::RetryAt(at) if at > now => dest.state = State::RetryAt(now),
            State::RetryAt(_) | State::Idle | State::InFlight => {}
        }
        self.touch(destination);
    }

    /// Answers [`OutboundAction::CatchUp`] with the latest events per room: `latest` holds
    /// `(room_id, pdu)` pairs, normally the forward extremities of each room asked about.
    ///
    /// Queued PDUs of every room in `latest` are superseded and removed (the receiver
    /// fetches what lies between with `/get_missing_events`), then the given events are
    /// queued in order. The catch-up note is cleared, except for rooms whose events did not
    /// fit in the queue: they are asked about again once it has room. Noted rooms the
    /// homeserver gives nothing for (it left them) are forgotten. On a down destination
    /// nothing is queued and the given rooms stay noted.
    pub fn replace_backlog(
        &mut self,
        destination: &str,
        latest: Vec<(String, Arc<wire::OutgoingPdu>)>,
    ) {
        let queue_pdus_max = self.config.queue_pdus_max;
        let dest = destination_entry(&mut self.destinations, &mut self.spare_queues, destination);
        dest.catch_up_requested = false;
        if let State::Down { .. } = dest.state {
            self.stats.pdus_dropped += u64::try_from(latest.len()).expect("fits");
            dest.catch_up_rooms.extend(latest.into_iter().map(|(room_id, _)| room_id));
        } else {
            let rooms: BTreeSet<&str> =
                latest.iter().map(|(room_id, _)| room_id.as_str()).collect();
            let before = dest.pdus.len();
            dest.pdus.retain(|queued| !rooms.contains(&*queued.room_id));
            self.stats.pdus_superseded += u64::try_from(before - dest.pdus.len()).expect("fits");
            dest.catch_up_rooms.clear();
            for (room_id, pdu) in latest {
                if dest.pdus.len() < queue_pdus_max {
                    dest.pdus.push_back(QueuedPdu { room_id: room_id.into(), pdu });
                } else {
                    self.stats.pdus_dropped += 1;
                    dest.catch_up_rooms.insert(room_id);
                }
            }
        }
        self.touch(destination);
    }

    /// The delivery state of `destination` (`Idle` for one never seen).
    pub fn state(&self, destination: &str) -> DestinationState {
        let Some(dest) = self.destinations.get(destination) else {
            return DestinationState::Idle;
        };
        let txn_id = || dest.owed.as_ref().expect("checked invariant").txn_id.to_string();
        match dest.state {
            State::Idle => DestinationState::Idle,
            State::InFlight => DestinationState::InFlight { txn_id: txn_id() },
            State::RetryAt(at) => DestinationState::RetryAt { txn_id: txn_id(), at },
            State::Down { probe_at } => DestinationState::Down { probe_at },
        }
    }

    /// PDUs waiting for `destination`, not counting the owed transaction.
    pub fn queued_pdu_count(&self, destination: &str) -> u64 {
        self.destinations.get(destination).map_or(0, |d| u64::try_from(d.pdus.len()).expect("fits"))
    }

    /// EDUs waiting for `destination`, not counting the owed transaction.
    pub fn queued_edu_count(&self, destination: &str) -> u64 {
        self.destinations.get(destination).map_or(0, |d| u64::try_from(d.edus.len()).expect("fits"))
    }

    /// Rooms of `destination` that need catch-up, in order.
    pub fn catch_up_rooms(&self, destination: &str) -> Vec<String> {
        self.destinations
            .get(destination)
            .map_or_else(Vec::new, |d| d.catch_up_rooms.iter().cloned().collect())
    }

    /// Consecutive failed attempts to `destination`.
    pub fn failure_count(&self, destination: &str) -> u32 {
        self.destinations.get(destination).map_or(0, |d| d.failures)
    }

    /// Destinations with anything queued, owed, noted or remembered, in name order.
    pub fn destinations(&self) -> impl Iterator<Item = &str> {
        self.destinations.sorted().into_iter().map(|(name, _)| &**name)
    }

    /// Marks a destination for the next poll, re-indexes its deadline, checks its
    /// invariants and forgets it if it holds nothing.
    fn touch(&mut self, destination: &str) {
        self.reindex(destination, true);
    }

    /// Checks `destination` and files its deadline; forgets it if it holds nothing, and
    /// otherwise marks it for the next poll if `marking`.
    fn reindex(&mut self, destination: &str, marking: bool) {
        let Some(dest) = self.destinations.get_mut(destination) else { return };
        dest.check(&self.config);
        let deadline = dest.deadline();
        if dest.indexed != deadline {
            if let Some(old) = dest.indexed.take() {
                self.deadlines.remove(&(old, Arc::clone(&dest.name)));
            }
            if let Some(at) = deadline {
                self.deadlines.insert((at, Arc::clone(&dest.name)));
                dest.indexed = Some(at);
            }
        }
        if dest.is_forgettable() {
            assert!(dest.indexed.is_none(), "an idle destination has no deadline");
            let dest = self.destinations.remove(destination).expect("found above");
            if self.spare_queues.len() < SPARE_QUEUES {
                self.spare_queues.push(dest.pdus);
            }
            return;
        }
        if marking {
            mark(dest, &mut self.dirty);
        }
    }

    /// One marked destination's decision at `now`, taking its mark. A listed name whose
    /// destination was forgotten, or is no longer marked, is passed over.
    fn step(&mut self, name: &str, now: Instant, actions: &mut Vec<OutboundAction>) {
        let Some(dest) = self.destinations.get_mut(name) else { return };
        if !std::mem::take(&mut dest.dirty) {
            return;
        }
        match dest.state {
            State::RetryAt(at) if at <= now => {
                let owed = dest.owed.as_mut().expect("retrying a transaction");
                owed.attempt = owed.attempt.saturating_add(1);
                dest.state = State::InFlight;
                self.stats.sends += 1;
                actions.push(OutboundAction::Send(outgoing(&dest.name, owed)));
            }
            State::Down { probe_at } if probe_at <= now && !dest.catch_up_rooms.is_empty() => {
                // A probe: one catch-up attempt. `failures` stays above `retries_max`, so
                // one more failure brings the destination straight back down.
                dest.state = State::Idle;
                self.start_next(name, now, actions);
            }
            State::Idle => self.start_next(name, now, actions),
            State::RetryAt(_) | State::Down { .. } | State::InFlight => {}
        }
        // Not marked dirty again: what a destination does next depends only on its own
        // state, which changes by a deadline (filed here) or by a call that touches it.
        // Stepping every held destination at every poll made each input of a server cost
        // as much as its number of peers.
        self.reindex(name, false);
    }

    /// For an idle destination: ask for catch-up if rooms are noted and the queue has
    /// room, else send the next transaction if anything is queued.
    fn start_next(&mut self, name: &str, now: Instant, actions: &mut Vec<OutboundAction>) {
        let config = self.config;
        let dest = self.destinations.get_mut(name).expect("stepping a known destination");
        assert_eq!(dest.state, State::Idle);
        if dest.catch_up_requested {
            // The answer will supersede part of the queue: wait for it.
            return;
        }
        if !dest.catch_up_rooms.is_empty() && dest.pdus.len() < config.queue_pdus_max {
            // Only while the queue has room for the answer, so that every round of
            // catch-up either queues a PDU or forgets a room: it cannot loop.
            dest.catch_up_requested = true;
            actions.push(OutboundAction::CatchUp {
                destination: name.to_owned(),
                rooms: dest.catch_up_rooms.iter().cloned().collect(),
            });
            return;
        }
        if dest.pdus.is_empty() && dest.edus.is_empty() {
            return;
        }
        let pdu_count = dest.pdus.len().min(config.transaction_pdus_max);
        let edu_count = dest.edus.len().min(config.transaction_edus_max);
        let owed = Owed {
            txn_id: txn_id(self.txn_id_epoch_ms, self.txn_count),
            pdus: dest.pdus.drain(..pdu_count).collect(),
            edus: dest.edus.drain(..edu_count).collect(),
            created_at: now,
            attempt: 1,
        };
        self.txn_count += 1;
        self.stats.transactions_built += 1;
        self.stats.sends += 1;
        actions.push(OutboundAction::Send(outgoing(&dest.name, &owed)));
        dest.owed = Some(owed);
        dest.state = State::InFlight;
    }
}

/// How many emptied PDU queues [`Outbound`] keeps for new destinations.
const SPARE_QUEUES: usize = 16;

/// The state of `destination`, created empty if new (with a spare queue if there is one).
fn destination_entry<'a>(
    destinations: &'a mut LookupMap<Arc<str>, Destination>,
    spare_queues: &mut Vec<VecDeque<QueuedPdu>>,
    destination: &str,
) -> &'a mut Destination {
    assert!(!destination.is_empty(), "a destination has a name");
    // The name is copied only for a new destination, not for each PDU queued.
    if !destinations.contains_key(destination) {
        let name: Arc<str> = Arc::from(destination);
        let pdus = spare_queues.pop().unwrap_or_default();
        destinations.insert(Arc::clone(&name), Destination::new(name, pdus));
    }
    destinations.get_mut(destination).expect("inserted above")
}

/// Marks a destination down at `now`: abandons the owed transaction, turns every PDU into
/// a catch-up note for its room, drops every EDU. Returns the probe time if a probe is
/// needed.
fn mark_down(
    dest: &mut Destination,
    config: &Config,
    prng: &mut Prng,
    stats: &mut Stats,
    now: Instant,
) -> Option<Instant> {
    let owed = dest.owed.take().expect("only an owed transaction can fail");
    let pdus = owed.pdus.into_iter().chain(dest.pdus.drain(..));
    let mut pdu_count = 0u64;
    for pdu in pdus {
        dest.catch_up_rooms.insert(pdu.room_id.to_string());
        pdu_count += 1;
    }
    let edu_count = u64::try_from(owed.edus.len() + dest.edus.len()).expect("fits");
    dest.edus.clear();
    dest.catch_up_requested = false;
    stats.pdus_dropped += pdu_count;
    stats.edus_dropped += edu_count;
    stats.marked_down += 1;
    let probe_at = now + jittered(prng, config.down_probe_interval, config);
    dest.state = State::Down { probe_at };
    (!dest.catch_up_rooms.is_empty()).then_some(probe_at)
}

/// `nominal` moved by a uniform integer amount within ± `backoff_jitter_percent`.
fn jittered(prng: &mut Prng, nominal: Duration, config: &Config) -> Duration {
    let spread = nominal.ms / 100 * config.backoff_jitter_percent
        + nominal.ms % 100 * config.backoff_jitter_percent / 100;
    let low = nominal.ms - spread;
    let ms = low + prng.range_inclusive(0, 2 * spread);
    assert!(ms >= nominal.ms - spread && ms <= nominal.ms + spread);
    assert!(ms >= 1, "a wait is never zero");
    Duration::from_ms(ms)
}

fn outgoing(destination: &Arc<str>, owed: &Owed) -> OutgoingTransaction {
    OutgoingTransaction {
        destination: Arc::clone(destination),
        txn_id: Arc::clone(&owed.txn_id),
        pdus: owed.pdus.iter().map(|queued| Arc::clone(&queued.pdu)).collect(),
        edus: owed.edus.clone(),
        created_at: owed.created_at,
        attempt: owed.attempt,
    }
}

/// `{epoch}.{count}`: one shared copy per transaction, written on the stack first.
fn txn_id(epoch_ms: u64, count: u64) -> Arc<str> {
    // Two u64s in decimal and a dot: at most 41 bytes.
    let mut text = [0u8; 41];
    let (mut epoch, mut count_digits) = ([0u8; 20], [0u8; 20]);
    let epoch = crate::stdx::decimal(epoch_ms, &mut epoch);
    let count = crate::stdx::decimal(count, &mut count_digits);
    let len = epoch.len() + 1 + count.len();
    text[..epoch.len()].copy_from_slice(epoch);
    text[epoch.len()] = b'.';
    text[epoch.len() + 1..len].copy_from_slice(count);
    Arc::from(std::str::from_utf8(&text[..len]).expect("digits and a dot"))
}

#[cfg(test)]
mod tests;
