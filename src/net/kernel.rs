//! The network kernel: in-flight messages in a deterministic priority queue, decisions
//! drawn at send time from the injected generator, faults applied as virtual time passes,
//! and a log of every decision for the trace.
//!
//! Time only moves forward. Every entry point that takes `now` first processes, in time
//! order, everything due up to `now`: fault starts and ends (at equal times, before
//! messages) and due messages, which are dropped, held or made ready for delivery. The
//! outcome therefore does not depend on how finely the caller steps through time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::net::corrupt::{Corruptible, Corruption};
use crate::net::fault::{Fault, FaultSchedule, NodeName};
use crate::net::policy::{LinkPolicy, PolicyError};
use crate::stdx::{Duration, Instant, Prng};

/// A node, by its position in the schedule's node list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u32);

/// A message, numbered from 0 in send order; both copies of a duplicated message share it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub u64);

/// The network's limits and its default link policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// The policy of every link without an active `LinkOverride`.
    pub default_policy: LinkPolicy,
    /// Most messages in the network at once: queued, held, or due but not yet taken by
    /// `deliver_due`. A send beyond it is dropped with `DropReason::QueueFull`. Default
    /// 100 000.
    pub in_flight_max: u64,
    /// Most held messages at once (all links together). A message that comes due on a
    /// held link beyond it is dropped with `DropReason::HoldFull`. Default 10 000.
    pub held_max: u64,
    /// Most events in the log between two `take_events` calls; more is a bug of the
    /// caller and stops the run. Default 1 000 000.
    pub events_max: u64,
}

impl Default for NetConfig {
    fn default() -> NetConfig {
        NetConfig {
            default_policy: LinkPolicy::default(),
            in_flight_max: 100_000,
            held_max: 10_000,
            events_max: 1_000_000,
        }
    }
}

/// Why a network configuration is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("default_policy: {0}")]
    Policy(PolicyError),
    #[error("{field} must be at least 1")]
    Zero { field: &'static str },
}

impl NetConfig {
    /// Why the configuration is unusable, if it is.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.default_policy.check().map_err(ConfigError::Policy)?;
        for (field, value) in [
            ("in_flight_max", self.in_flight_max),
            ("held_max", self.held_max),
            ("events_max", self.events_max),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        Ok(())
    }
}

/// Why a message (or one copy of it) was lost. `fault` is an index into the schedule's
/// sorted faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DropReason {
    /// The link's `loss` chance.
    Loss,
    /// `in_flight_max` messages were already in the network.
    QueueFull,
    /// The message came due on a held link with `held_max` messages already held.
    HoldFull,
    Partition {
        fault: u32,
    },
    OneWay {
        fault: u32,
    },
    Flap {
        fault: u32,
    },
}

/// What a link does to a message at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Up,
    /// Messages are dropped, for this reason (the cutting fault with the lowest index).
    Cut(DropReason),
    /// Messages that come due are held by this fault (the one with the lowest index).
    Held {
        fault: u32,
    },
}

/// A node-level fault boundary, reported for the world to execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeMarker {
    Crash,
    Restart,
    Pause,
    Resume,
}

/// A node marker that came due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEvent {
    #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
    pub at: Instant,
    pub node: NodeId,
    pub marker: NodeMarker,
    pub fault: u32,
}

/// Every decision the network makes, in the order it makes them. `copy` is 0 for a
/// message as sent and 1 for its duplicate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum NetEvent {
    /// A send was asked for; what happened to it follows.
    Sent {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
        from: NodeId,
        to: NodeId,
        bytes: u64,
    },
    Dropped {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
        copy: u32,
        reason: DropReason,
    },
    /// The payload was damaged (both copies carry the damage).
    Corrupted {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
        offset: u64,
        before: u8,
        after: u8,
    },
    /// A second copy was made; its `Scheduled` follows.
    Duplicated {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
    },
    /// A copy was put in flight, due at `due`.
    Scheduled {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
        copy: u32,
        #[serde(rename = "due_ms", with = "crate::net::serde_util::ms")]
        due: Instant,
        reordered: bool,
    },
    Held {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
        copy: u32,
        fault: u32,
    },
    /// A held copy was put back in flight, due at once.
    Released {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
        copy: u32,
    },
    /// A copy arrived; `deliver_due` hands it over.
    Delivered {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
        copy: u32,
    },
    FaultStarted {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        fault: u32,
    },
    FaultEnded {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        fault: u32,
    },
}

/// What `send` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    Dropped {
        id: MessageId,
        reason: DropReason,
    },
    Scheduled {
        id: MessageId,
        due: Instant,
        reordered: bool,
        corrupted: Option<Corruption>,
        /// When the duplicate is due, if one was made.
        duplicate_due: Option<Instant>,
    },
}

/// A message handed to its destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery<P> {
    pub id: MessageId,
    pub copy: u32,
    pub from: NodeId,
    pub to: NodeId,
    pub sent_at: Instant,
    /// When it arrived (its due time, or the end of the hold that kept it).
    pub at: Instant,
    pub bytes: u64,
    pub payload: P,
}

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Start,
    End,
}

/// The schedule, indexed for lookups by link and node.
struct Index {
    /// For each partition fault: the group of every listed node; unlisted nodes are in
    /// group `groups.len()`.
    partitions: BTreeMap<u32, (BTreeMap<NodeId, u32>, u32)>,
    /// Faults touching one directed link (`OneWay`, `Hold`, `LinkOverride`, and `Flap` in
    /// both directions), in index order.
    links: BTreeMap<(NodeId, NodeId), Vec<u32>>,
    /// Faults of one node (`ClockSkew`, `Slow`, `Crash`, `Pause`), in index order.
    nodes: Vec<Vec<u32>>,
    /// Every fault's start and end, sorted by (time, fault, phase): at one instant the
    /// faults that started earlier end before later ones start, and an empty fault starts
    /// before it ends.
    transitions: Vec<(Instant, u32, Phase)>,
}

/// The simulated network, generic over the payload `P`.
pub struct Network<P> {
    config: NetConfig,
    schedule: FaultSchedule,
    ids: BTreeMap<NodeName, NodeId>,
    index: Index,
    prng: Prng,
    now: Instant,
    queue: BTreeMap<QueueKey, InFlight<P>>,
    fifo: BTreeMap<(NodeId, NodeId), FifoLink>,
    held: BTreeMap<(NodeId, NodeId), VecDeque<InFlight<P>>>,
    held_count: usize,
    ready: VecDeque<Delivery<P>>,
    transitions_done: usize,
    active_partitions: BTreeSet<u32>,
    node_events: Vec<NodeEvent>,
    events: Vec<NetEvent>,
    message_next: u64,
    seq_next: u64,
}

fn fault_number(index: usize) -> u32 {
    u32::try_from(index).expect("fault count is bounded by FAULTS_MAX")
}

impl Index {
    fn new(schedule: &FaultSchedule, ids: &BTreeMap<NodeName, NodeId>) -> Index {
        let id = |name: &NodeName| ids[name];
        let mut index = Index {
            partitions: BTreeMap::new(),
            links: BTreeMap::new(),
            nodes: vec![Vec::new(); schedule.nodes().len()],
            transitions: Vec::new(),
        };
        for (number, fault) in schedule.faults().iter().enumerate() {
            let number = fault_number(number);
            index.transitions.push((fault.start(), number, Phase::Start));
            index.transitions.push((fault.end(), number, Phase::End));
            match fault {
                Fault::Partition { groups, .. } => {
                    let mut group_of = BTreeMap::new();
                    for (group, names) in groups.iter().enumerate() {
                        for name in names {
                            group_of.insert(id(name), fault_number(group));
                        }
                    }
                    index.partitions.insert(number, (group_of, fault_number(groups.len())));
                }
                Fault::OneWay { from, to, .. }
                | Fault::Hold { from, to, .. }
                | Fault::LinkOverride { from, to, .. } => {
                    index.links.entry((id(from), id(to))).or_default().push(number);
                }
                Fault::Flap { a, b, .. } => {
                    index.links.entry((id(a), id(b))).or_default().push(number);
                    index.links.entry((id(b), id(a))).or_default().push(number);
                }
                Fault::ClockSkew { node, .. }
                | Fault::Slow { node, .. }
                | Fault::Crash { node, .. }
                | Fault::Pause { node, .. } => {
                    let slot = usize::try_from(id(node).0).expect("node ids fit usize");
                    index.nodes[slot].push(number);
                }
            }
        }
        index.transitions.sort();
        index
    }
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
            queue: BTreeMap::new(),
            fifo: BTreeMap::new(),
            held: BTreeMap::new(),
            held_count: 0,
            ready: VecDeque::new(),
            transitions_done: 0,
            active_partitions: BTreeSet::new(),
            node_events: Vec::new(),
            events: Vec::new(),
            message_next: 0,
            seq_next: 0,
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
        let due = self.queue.first_key_value().map(|(key, _)| key.due);
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
        let mut policy = &self.config.default_policy;
        // Faults are sorted by start, so the last active override started last.
        for &number in self.index.links.get(&(from, to)).into_iter().flatten() {
            let fault = self.fault(number);
            match fault {
                Fault::LinkOverride { policy: candidate, .. } if fault.is_active(at) => {
                    policy = candidate;
                }
                _ => {}
            }
        }
        policy
    }

    /// The events logged so far and not yet taken.
    pub fn events(&self) -> &[NetEvent] {
        &self.events
    }

    /// Takes the event log, leaving it empty.
    pub fn take_events(&mut self) -> Vec<NetEvent> {
        std::mem::take(&mut self.events)
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
            "the network's event log is full ({} events): the caller must drain it with take_events",
            self.events.len()
        );
        self.events.push(event);
    }

    fn slow_extra(&self, node: NodeId, at: Instant) -> Duration {
        let mut extra = Duration::ZERO;
        for &number in &self.index.nodes[self.slot(node)] {
            let fault = self.fault(number);
            match fault {
                Fault::Slow { extra_delay, .. } if fault.is_active(at) => {
                    extra = extra + *extra_delay;
                }
                _ => {}
            }
        }
        extra
    }

    /// The link's state at `at`. The kernel passes `active_only` when it has processed
    /// every fault transition up to and including `at` and none after, so that its set of
    /// active partitions is exact; queries scan every partition.
    fn state_with(&self, from: NodeId, to: NodeId, at: Instant, active_only: bool) -> LinkState {
        let mut cut: Option<(u32, DropReason)> = None;
        let mut first_cut = |number: u32, reason: DropReason| {
            if cut.is_none_or(|(lowest, _)| number < lowest) {
                cut = Some((number, reason));
            }
        };
        let partitions: Box<dyn Iterator<Item = u32> + '_> = if active_only {
            Box::new(self.active_partitions.iter().copied())
        } else {
            Box::new(self.index.partitions.keys().copied())
        };
        for number in partitions {
            let fault = self.fault(number);
            if !fault.is_active(at) {
                assert!(!active_only, "partition {number} marked active at {at} but is not");
                continue;
            }
            let (group_of, unlisted) = &self.index.partitions[&number];
            let group = |node| group_of.get(&node).copied().unwrap_or(*unlisted);
            if group(from) != group(to) {
                first_cut(number, DropReason::Partition { fault: number });
            }
        }
        for &number in self.index.links.get(&(from, to)).into_iter().flatten() {
            let fault = self.fault(number);
            if !fault.is_active(at) {
                continue;
            }
            match *fault {
                Fault::OneWay { .. } => first_cut(number, DropReason::OneWay { fault: number }),
                Fault::Flap { start, period, down_for, .. } => {
                    if (at - start).ms % period.ms < down_for.ms {
                        first_cut(number, DropReason::Flap { fault: number });
                    }
                }
                Fault::Hold { .. } | Fault::LinkOverride { .. } => {}
                _ => unreachable!("only link faults are indexed by link"),
            }
        }
        match (cut, self.hold_at(from, to, at)) {
            (Some((_, reason)), _) => LinkState::Cut(reason),
            (None, Some(fault)) => LinkState::Held { fault },
            (None, None) => LinkState::Up,
        }
    }

    /// The active hold of the link with the lowest index, if any.
    fn hold_at(&self, from: NodeId, to: NodeId, at: Instant) -> Option<u32> {
        let links = self.index.links.get(&(from, to)).into_iter().flatten();
        links.copied().find(|&number| {
            let fault = self.fault(number);
            matches!(fault, Fault::Hold { .. }) && fault.is_active(at)
        })
    }

    /// Puts one copy in flight; returns its due time and whether it was reordered.
    fn schedule_copy(
        &mut self,
        mut message: InFlight<P>,
        policy: &LinkPolicy,
        extra: Duration,
    ) -> (Instant, bool) {
        let now = self.now;
        let mut due = now + policy.latency.sample(&mut self.prng) + extra;
        let reordered = self.prng.chance(policy.reorder);
        let link = (message.from, message.to);
        if reordered {
            due =
                due + Duration::from_ms(self.prng.range_inclusive(1, policy.reorder_delay_max.ms));
        } else {
            let fifo = self.fifo.entry(link).or_insert(FifoLink { due_last: due, count: 0 });
            due = due.max(fifo.due_last);
            fifo.due_last = due;
            fifo.count += 1;
            message.fifo = true;
        }
        assert!(due >= now, "a message is never due in the past");
        let (id, copy) = (message.id, message.copy);
        self.insert(due, Lane::Sent, message);
        self.log(NetEvent::Scheduled { at: now, id, copy, due, reordered });
        (due, reordered)
    }

    fn insert(&mut self, due: Instant, lane: Lane, message: InFlight<P>) {
        let key = QueueKey { due, lane, seq: self.seq_next };
        self.seq_next += 1;
        let previous = self.queue.insert(key, message);
        assert!(previous.is_none(), "queue keys are unique");
    }

    /// Processes, in time order, every fault transition and due message up to `now`.
    fn step_to(&mut self, now: Instant) {
        assert!(now >= self.now, "time went backwards: {now} after {}", self.now);
        loop {
            let transition = self
                .index
                .transitions
                .get(self.transitions_done)
                .copied()
                .filter(|&(at, _, _)| at <= now);
            let message_due = self.queue.first_key_value().map(|(key, _)| key.due);
            match (transition, message_due) {
                (Some((at, number, phase)), due) if due.is_none_or(|due| at <= due) => {
                    assert!(at >= self.now, "fault transition at {at} left behind");
                    self.now = at;
                    self.transitions_done += 1;
                    self.transition(at, number, phase);
                }
                (_, Some(due)) if due <= now => {
                    assert!(due >= self.now, "message due at {due} left behind");
                    self.now = due;
                    self.arrive();
                }
                _ => break,
            }
        }
        self.now = now;
    }

    fn transition(&mut self, at: Instant, number: u32, phase: Phase) {
        let fault = self.fault(number).clone();
        assert_eq!(at, if phase == Phase::Start { fault.start() } else { fault.end() });
        match phase {
            Phase::Start => self.log(NetEvent::FaultStarted { at, fault: number }),
            Phase::End => self.log(NetEvent::FaultEnded { at, fault: number }),
        }
        let marker = match (&fault, phase) {
            (Fault::Partition { .. }, Phase::Start) => {
                assert!(self.active_partitions.insert(number));
                None
            }
            (Fault::Partition { .. }, Phase::End) => {
                assert!(self.active_partitions.remove(&number));
                None
            }
            (Fault::Hold { from, to, .. }, Phase::End) => {
                let link = (self.ids[from], self.ids[to]);
                self.release(at, link);
                None
            }
            (Fault::Crash { node, .. }, Phase::Start) => Some((node, NodeMarker::Crash)),
            (Fault::Crash { node, .. }, Phase::End) => Some((node, NodeMarker::Restart)),
            (Fault::Pause { node, .. }, Phase::Start) => Some((node, NodeMarker::Pause)),
            (Fault::Pause { node, .. }, Phase::End) => Some((node, NodeMarker::Resume)),
            _ => None,
        };
        if let Some((node, marker)) = marker {
            let event = NodeEvent { at, node: self.ids[node], marker, fault: number };
            self.node_events.push(event);
        }
    }

    /// At the end of a hold, if no other hold keeps the link, puts its held messages back
    /// in flight, due at once, in the order they were held. They go before anything due at
    /// the same instant that was sent on the link later: without reordering, every copy
    /// sent after a held one is due no earlier than it, so per-link order survives a hold.
    fn release(&mut self, at: Instant, link: (NodeId, NodeId)) {
        // Only holds matter here: other transitions at `at` may not be processed yet.
        if self.hold_at(link.0, link.1, at).is_some() {
            return;
        }
        let Some(messages) = self.held.remove(&link) else { return };
        assert!(!messages.is_empty(), "empty held queues are removed");
        self.held_count -= messages.len();
        for message in messages {
            assert!(!message.fifo, "held copies left their link's in-order count");
            self.log(NetEvent::Released { at, id: message.id, copy: message.copy });
            self.insert(at, Lane::Released, message);
        }
    }

    /// The first queued message has come due: drop, hold or deliver it.
    fn arrive(&mut self) {
        let (key, mut message) = self.queue.pop_first().expect("a due message");
        let at = key.due;
        assert_eq!(at, self.now);
        let link = (message.from, message.to);
        if message.fifo {
            let fifo = self.fifo.get_mut(&link).expect("in-order copies are counted");
            assert!(fifo.count > 0 && fifo.due_last >= at);
            fifo.count -= 1;
            if fifo.count == 0 {
                self.fifo.remove(&link);
            }
            message.fifo = false;
        }
        let (id, copy) = (message.id, message.copy);
        match self.state_with(link.0, link.1, at, true) {
            LinkState::Cut(reason) => self.log(NetEvent::Dropped { at, id, copy, reason }),
            LinkState::Held { fault } => {
                if self.held_count >= self.limit(self.config.held_max) {
                    let reason = DropReason::HoldFull;
                    self.log(NetEvent::Dropped { at, id, copy, reason });
                } else {
                    self.held.entry(link).or_default().push_back(message);
                    self.held_count += 1;
                    self.log(NetEvent::Held { at, id, copy, fault });
                }
            }
            LinkState::Up => {
                self.log(NetEvent::Delivered { at, id, copy });
                self.ready.push_back(Delivery {
                    id,
                    copy,
                    from: message.from,
                    to: message.to,
                    sent_at: message.sent_at,
                    at,
                    bytes: message.bytes,
                    payload: message.payload,
                });
            }
        }
    }
}
