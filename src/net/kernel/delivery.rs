//! How time passes in the network: copies put in flight with their due time, fault starts
//! and ends processed in order with due messages, held messages released when their hold
//! ends, and each due message dropped, held or made ready for delivery.

use crate::net::corrupt::Corruptible;
use crate::net::fault::Fault;
use crate::net::kernel::links::Phase;
use crate::net::kernel::{
    Delivery, DropReason, FifoLink, InFlight, Lane, LinkState, NetEvent, Network, NodeEvent,
    NodeId, NodeMarker,
};
use crate::net::policy::LinkPolicy;
use crate::stdx::{Duration, Instant};

impl<P: Clone + Corruptible> Network<P> {
    /// Puts one copy in flight; returns its due time and whether it was reordered.
    pub(super) fn schedule_copy(
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
        self.queue.push(due, lane, message);
    }

    /// Processes, in time order, every fault transition and due message up to `now`.
    pub(super) fn step_to(&mut self, now: Instant) {
        assert!(now >= self.now, "time went backwards: {now} after {}", self.now);
        loop {
            let transition = self
                .index
                .transitions
                .get(self.transitions_done)
                .copied()
                .filter(|&(at, _, _)| at <= now);
            let message_due = self.queue.first_due();
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
            (Fault::ClockSkew { node, .. }, _) => Some((node, NodeMarker::ClockChange)),
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
        let (key, mut message) = self.queue.pop().expect("a due message");
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
