//! The kernel's messages in flight, in due order ([`Queue`]): a binary heap of their keys
//! (due time, lane, sequence number) over a slab that holds the messages themselves.
//!
//! Every key is unique (the sequence number only grows), so the heap pops exactly the order
//! of a sorted map of the keys, which the queue was before: a sorted map shifted the
//! entries of a node, messages and their payloads among them, on every insertion and
//! removal, 2.7% of a 100-server run. The heap moves only keys and slab positions.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{InFlight, Lane, QueueKey};
use crate::stdx::Instant;

pub(super) struct Queue<P> {
    /// Each queued message's key and its place in `slab`, least key on top.
    heap: BinaryHeap<Reverse<(QueueKey, u32)>>,
    /// Queued messages by place; `None` at the places in `free`.
    slab: Vec<Option<InFlight<P>>>,
    /// Empty places of `slab`, the last freed reused first.
    free: Vec<u32>,
    /// The sequence number of the next key.
    seq_next: u64,
}

impl<P> Queue<P> {
    pub(super) fn new() -> Queue<P> {
        Queue { heap: BinaryHeap::new(), slab: Vec::new(), free: Vec::new(), seq_next: 0 }
    }

    /// Messages queued.
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Queues `message` due at `due` in `lane`, after everything queued before for the same
    /// time and lane: its key takes the next sequence number, so no two keys are equal and
    /// the heap's order is the keys' order.
    pub(super) fn push(&mut self, due: Instant, lane: Lane, message: InFlight<P>) {
        let key = QueueKey { due, lane, seq: self.seq_next };
        self.seq_next += 1;
        let place = match self.free.pop() {
            Some(place) => {
                debug_assert!(self.slab[place as usize].is_none());
                self.slab[place as usize] = Some(message);
                place
            }
            None => {
                self.slab.push(Some(message));
                u32::try_from(self.slab.len() - 1).expect("fewer than 2^32 messages queued at once")
            }
        };
        self.heap.push(Reverse((key, place)));
    }

    /// The least key's due time.
    pub(super) fn first_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((key, _))| key.due)
    }

    /// Takes the message of the least key.
    pub(super) fn pop(&mut self) -> Option<(QueueKey, InFlight<P>)> {
        let Reverse((key, place)) = self.heap.pop()?;
        let message = self.slab[place as usize].take().expect("a queued place holds its message");
        self.free.push(place);
        Some((key, message))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::net::kernel::{MessageId, NodeId};
    use crate::stdx::Prng;

    fn message(id: u64) -> InFlight<u64> {
        InFlight {
            id: MessageId(id),
            copy: 0,
            from: NodeId(0),
            to: NodeId(1),
            sent_at: Instant::ZERO,
            bytes: 0,
            payload: id,
            fifo: false,
        }
    }

    /// Pushes and pops in random interleavings, with equal due times in both lanes, give
    /// the order of a sorted map of the keys, and each key its own message.
    #[test]
    fn pops_in_the_order_of_a_sorted_map() {
        let mut prng = Prng::from_seed(7);
        for _ in 0..50 {
            let mut queue = Queue::new();
            let mut sorted = BTreeMap::new();
            let mut seq = 0;
            for _ in 0..400 {
                if prng.range_inclusive(0, 9) < 6 || sorted.is_empty() {
                    let due = Instant::from_ms(prng.range_inclusive(0, 20));
                    let lane =
                        if prng.range_inclusive(0, 9) < 3 { Lane::Released } else { Lane::Sent };
                    let key = QueueKey { due, lane, seq };
                    seq += 1;
                    queue.push(due, lane, message(seq));
                    sorted.insert(key, seq);
                } else {
                    let (key, id) = sorted.pop_first().unwrap();
                    assert_eq!(queue.first_due(), Some(key.due));
                    let (popped, message) = queue.pop().unwrap();
                    assert_eq!((popped, message.payload), (key, id));
                }
                assert_eq!(queue.len(), sorted.len());
            }
            while let Some((key, id)) = sorted.pop_first() {
                let (popped, message) = queue.pop().unwrap();
                assert_eq!((popped, message.payload), (key, id));
            }
            assert!(queue.pop().is_none() && queue.first_due().is_none());
        }
    }
}
