//! The network kernel: in-flight messages in a deterministic priority queue, decisions
//! drawn at send time from the injected generator, faults applied as virtual time passes,
//! and a log of every decision for the trace.
//!
//! Time only moves forward. Every entry point that takes `now` first processes, in time
//! order, everything due up to `now`: fault starts and ends (at equal times, before
//! messages) and due messages, which are dropped, held or made ready for delivery. The
//! outcome therefore does not depend on how finely the caller steps through time.
//!
//! The module root holds [`Network`], its queries and [`Network::send`], where every fate is
//! drawn; `events` the kernel's public vocabulary (ids, limits, drop reasons, link states,
//! the [`NetEvent`] log); `links` the schedule indexed by link and node, and what a link
//! does at a given time; `delivery` the passing of time: fault transitions, due messages,
//! holds and their release; `queue` the messages in flight in due order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::net::corrupt::{Corruptible, Corruption};
use crate::net::fault::{Fault, FaultSchedule, NodeName};
use crate::net::policy::LinkPolicy;
use crate::stdx::{Instant, Prng};

mod delivery;
mod events;
mod links;
mod queue;

pub use events::{
    ConfigError, Delivery, DropReason, LinkState, MessageId, NetConfig, NetEvent, NodeEvent,
    NodeId, NodeMarker, SendOutcome,
};
use links::Index;

/// Position in the queue. At equal times, released copies go first: they were due before
/// anything sent later on their link (see `Network::release`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct QueueKey {
    due: Instant,
    lane: Lane,
    seq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Lane {
    Released,
    Sent,
}

struct InFlight<P> {
    id: MessageId,
    copy: u32,
    from: NodeId,
    to: NodeId,
    sent_at: Instant,
    bytes: u64,
    payload: P,
    /// Counted in its link's `FifoLink` (sent without reordering, not yet due).
    fifo: bool,
}

/// The in-order copies in flight on one link: their latest due time and how many there
/// are. A later in-order copy is never due before `due_last`, which keeps per-link send
/// order without reordering faults. Removed when `count` reaches zero, so memory follows
/// the traffic, not the number of links.
struct FifoLink {
    due_last: Instant,
    count: u64,
}

/// The simulated network, generic over the payload `P`.
pub struct Network<P> {
    config: NetConfig,
    schedule: FaultSchedule,
    ids: BTreeMap<NodeName, NodeId>,
    index: Index,
    prng: Prng,
    now: Instant,
    queue: queue::Queue<P>,
    fifo: BTreeMap<(NodeId, NodeId), FifoLink>,
    held: BTreeMap<(NodeId, NodeId), VecDeque<InFlight<P>>>,
    held_count: usize,
    ready: VecDeque<Delivery<P>>,
    transitions_done: usize,
    active_partitions: BTreeSet<u32>,
    node_events: Vec<NodeEvent>,
    events: Vec<NetEvent>,
    message_next: u64,
}

impl<P: Clone + Corruptible> Network<P> {
    /// A network over the schedule's nodes, at time zero. `prng` should be a stream forked
    /// for the network alone.
    pub fn new(
        config: NetConfig,
        schedule: FaultSchedule,
        prng: Prng,
    ) -> Result<Network<P>, ConfigError> {
        config.check()?;
        let ids: BTreeMap<NodeName, NodeId> = schedule
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), NodeId(u32::try_from(i).expect("NODES_MAX fits u32"))))
            .collect();
        assert_eq!(ids.len(), schedule.nodes().len(), "a validated schedule has unique nodes");
        let index = Index::new(&schedule, &ids);
        Ok(Network {
            config,
            schedule,
            ids,
            index,
            prng,
            now: Instant::ZERO,
            queue: queue::Queue::new(),
            fifo: BTreeMap::new(),
            held: BTreeMap::new(),
            held_count: 0,
            ready: VecDeque::new(),
            transitions_done: 0,
            active_partitions: BTreeSet::new(),
            node_events: Vec::new(),
            events: Vec::new(),
            message_next: 0,
        })
    }

    pub fn schedule(&self) -> &FaultSchedule {
        &self.schedule
    }

    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.ids.get(name).copied()
    }

    pub fn node_name(&self, node: NodeId) -> &NodeName {
        &self.schedule.nodes()[self.slot(node)]
    }

    /// The latest time the network has been brought to.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Messages queued, held, or due but not yet taken by `deliver_due`.
    pub fn in_flight_count(&self) -> usize {
        self.queue.len() + self.held_count + self.ready.len()
    }

    pub fn held_count(&self) -> usize {
        self.held_count
    }

    /// Sends `payload` (`bytes` long, as counted for the trace) from `from` to `to` at
    /// `now`, deciding its fate at once. Draw order (part of the determinism contract):
    /// loss; corruption (then `Corruptible::corrupt`'s draws); duplication; then for each
    /// copy its latency and its reordering (then the reorder delay).
    pub fn send(
        &mut self,
        now: Instant,
        from: NodeId,
        to: NodeId,
        mut payload: P,
        bytes: u64,
    ) -> SendOutcome {
        assert_ne!(from, to, "a node does not send to itself over the network");
        assert!(self.slot(from) < self.schedule.nodes().len());
        assert!(self.slot(to) < self.schedule.nodes().len());
        self.step_to(now);
        let id = MessageId(self.message_next);
        self.message_next += 1;
        self.log(NetEvent::Sent { at: now, id, from, to, bytes });

        let dropped = |network: &mut Network<P>, reason| {
            network.log(NetEvent::Dropped { at: now, id, copy: 0, reason });
            SendOutcome::Dropped { id, reason }
        };
        if let LinkState::Cut(reason) = self.state_with(from, to, now, true) {
            return dropped(self, reason);
        }
        if self.is_full() {
            return dropped(self, DropReason::QueueFull);
        }
        let policy = *self.policy_at(from, to, now);
        if self.prng.chance(policy.loss) {
            return dropped(self, DropReason::Loss);
        }
        let corrupted =
            if self.prng.chance(policy.corrupt) { payload.corrupt(&mut self.prng) } else { None };
        if let Some(corruption) = corrupted {
            let Corruption { offset, before, after } = corruption;
            self.log(NetEvent::Corrupted { at: now, id, offset, before, after });
        }
        let duplicate = self.prng.chance(policy.duplicate).then(|| payload.clone());
        let extra = self.slow_extra(from, now) + self.slow_extra(to, now);
        let message = InFlight { id, copy: 0, from, to, sent_at: now, bytes, payload, fifo: false };
        let (due, reordered) = self.schedule_copy(message, &policy, extra);
        let mut duplicate_due = None;
        if let Some(payload) = duplicate {
            if self.is_full() {
                self.log(NetEvent::Dropped { at: now, id, copy: 1, reason: DropReason::QueueFull });
            } else {
                self.log(NetEvent::Duplicated { at: now, id });
                let copy =
                    InFlight { id, copy: 1, from, to, sent_at: now, bytes, payload, fifo: false };
                duplicate_due = Some(self.schedule_copy(copy, &policy, extra).0);
            }
        }
        assert!(self.in_flight_count() <= self.limit(self.config.in_flight_max));
        SendOutcome::Scheduled { id, due, reordered, corrupted, duplicate_due }
    }

    /// Brings the network to `now` and returns the node markers (crash, restart, pause,
    /// resume) that came due since the last call, in time order. Call it before
    /// `deliver_due(now)`, so that a node crashing at `now` does not first receive what
    /// arrives at `now`.
    pub fn advance_to(&mut self, now: Instant) -> Vec<NodeEvent> {
        self.step_to(now);
        std::mem::take(&mut self.node_events)
    }

    /// Brings the network to `now` and hands over every message that has arrived, in
    /// arrival order (arrival time, then release before send, then send order).
    pub fn deliver_due(&mut self, now: Instant) -> Vec<Delivery<P>> {
        self.step_to(now);
        let deliveries: Vec<Delivery<P>> = self.ready.drain(..).collect();
        assert!(deliveries.windows(2).all(|w| w[0].at <= w[1].at), "deliveries out of order");
        assert!(deliveries.iter().all(|d| d.at <= now));
        deliveries
    }

    /// The earliest time a message is due: it may then be delivered, dropped or held.
    /// Messages that have already arrived and wait for `deliver_due` make it `now`.
    pub fn next_delivery_time(&self) -> Option<Instant> {
        if !self.ready.is_empty() {
            return Some(self.now);
        }
        let due = self.queue.first_due();
        assert!(due.is_none_or(|due| due >= self.now), "nothing is due in the past");
        due
    }

    /// The next fault start or end not yet processed (flaps toggle without one: their
    /// state is a function of time).
    pub fn next_fault_time(&self) -> Option<Instant> {
        self.index.transitions.get(self.transitions_done).map(|&(at, _, _)| at)
    }

    /// The earlier of `next_delivery_time` and `next_fault_time` (`now` if node markers
    /// wait for `advance_to`): the next time the caller should bring the network to.
    /// Never earlier than `now`.
    pub fn next_event_time(&self) -> Option<Instant> {
        let marker = (!self.node_events.is_empty()).then_some(self.now);
        [self.next_delivery_time(), self.next_fault_time(), marker].into_iter().flatten().min()
    }

    /// The node's clock at `now`: virtual milliseconds plus the sum of its active
    /// `ClockSkew` offsets. The world adds its fixed epoch for `origin_server_ts`.
    pub fn node_clock(&self, node: NodeId, now: Instant) -> i64 {
        let base = i64::try_from(now.ms).expect("virtual time fits i64");
        let mut skew: i64 = 0;
        for &number in &self.index.nodes[self.slot(node)] {
            let fault = self.fault(number);
            match fault {
                Fault::ClockSkew { offset_ms, .. } if fault.is_active(now) => {
                    skew = skew.checked_add(*offset_ms).expect("skews are bounded");
                }
                _ => {}
            }
        }
        base.checked_add(skew).expect("skewed clock overflow")
    }

    /// What the link from `from` to `to` does to messages at `at` (any time, past or
    /// future; it is a function of the schedule alone).
    pub fn link_state(&self, from: NodeId, to: NodeId, at: Instant) -> LinkState {
        self.state_with(from, to, at, false)
    }

    /// The policy of messages sent from `from` to `to` at `at`.
    pub fn policy_at(&self, from: NodeId, to: NodeId, at: Instant) -> &LinkPolicy {
        // Faults are sorted by start, so the active override with the highest number
        // started last.
        let active = |number: u32| {
            let fault = self.fault(number);
            (matches!(fault, Fault::LinkOverride { .. }) && fault.is_active(at)).then_some(number)
        };
        let one_link = self.index.links.get(&(from, to)).into_iter().flatten().copied();
        let grouped = self.index.grouped.iter().filter(|o| o.covers(from, to));
        let last = one_link.chain(grouped.map(|o| o.number)).filter_map(active).max();
        match last.map(|number| self.fault(number)) {
            Some(Fault::LinkOverride { policy, .. }) => policy,
            _ => &self.config.default_policy,
        }
    }

    /// The events logged so far and not yet taken.
    pub fn events(&self) -> &[NetEvent] {
        &self.events
    }

    /// Takes the event log, leaving it empty.
    pub fn take_events(&mut self) -> Vec<NetEvent> {
        std::mem::take(&mut self.events)
    }

    /// Takes the events logged so far into `spare`, which must be empty, leaving `spare`'s
    /// room to the log: a caller that drains the log after every message and hands the
    /// same vector back each time keeps one vector's room instead of growing a new one per
    /// drain.
    pub fn swap_events(&mut self, spare: &mut Vec<NetEvent>) {
        assert!(spare.is_empty(), "the spare vector of swap_events holds events");
        std::mem::swap(&mut self.events, spare);
    }

    fn slot(&self, node: NodeId) -> usize {
        usize::try_from(node.0).expect("node ids fit usize")
    }

    fn fault(&self, number: u32) -> &Fault {
        &self.schedule.faults()[usize::try_from(number).expect("fault numbers fit usize")]
    }

    fn limit(&self, max: u64) -> usize {
        usize::try_from(max).unwrap_or(usize::MAX)
    }

    fn is_full(&self) -> bool {
        self.in_flight_count() >= self.limit(self.config.in_flight_max)
    }

    fn log(&mut self, event: NetEvent) {
        assert!(
            self.events.len() < self.limit(self.config.events_max),
            "the network's event log is full ({} events): the caller must drain it with take_events or swap_events",
            self.events.len()
        );
        self.events.push(event);
    }
}
