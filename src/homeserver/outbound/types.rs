//! The outbound side's vocabulary: what a poll asks the homeserver to do, the transactions
//! it hands over, and what it reports of enqueued items, answers, destinations and its
//! counters.

use std::sync::Arc;

use crate::homeserver::wire::{self, Edu};
use crate::stdx::Instant;

#[cfg(doc)]
use super::Outbound;

/// What [`Outbound::poll`] asks the homeserver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum OutboundAction {
    /// Send this transaction now, then report the outcome with [`Outbound::on_response`]
    /// (a timeout is a failure: the caller owns request timeouts).
    Send(OutgoingTransaction),
    /// These rooms need catch-up: call [`Outbound::replace_backlog`] with the latest
    /// events of each. Nothing new goes to the destination until then.
    CatchUp { destination: String, rooms: Vec<String> },
    /// Call [`Outbound::on_timer`] at `at` (or later). Emitted when the earliest deadline
    /// becomes earlier than any timer asked for before, and after every `on_timer`; a
    /// timer that fires with nothing due is harmless. A caller may keep one timer slot.
    SetTimer { at: Instant },
}

/// A transaction to send to one destination.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingTransaction {
    /// The destination's name, shared with the outbound side's own copy.
    pub destination: Arc<str>,
    /// Unique per sending server, including across restarts (see [`Outbound::new`]); one
    /// copy shared by every attempt and by the outbound side.
    pub txn_id: Arc<str>,
    /// Shared with every other destination's transactions that carry the same event, with
    /// the encoding made once ([`wire::OutgoingPdu`]).
    pub pdus: Vec<Arc<wire::OutgoingPdu>>,
    pub edus: Vec<Edu>,
    /// When the transaction was first built; the same on every retry.
    pub created_at: Instant,
    /// 1 on the first attempt, then 2, 3, … on retries.
    pub attempt: u32,
}

impl OutgoingTransaction {
    /// The `PUT /send/{txnId}` request for this transaction (spec digest §2).
    /// `origin_server_ts` should be derived from `created_at` so that retries are
    /// byte-identical.
    pub fn to_request(&self, origin: &str, origin_server_ts: i64) -> wire::Request {
        wire::Request::SendTransaction {
            txn_id: self.txn_id.to_string(),
            transaction: wire::Transaction {
                origin: origin.to_owned(),
                origin_server_ts,
                pdus: self.pdus.iter().map(|pdu| pdu.json().clone()).collect(),
                edus: self.edus.clone(),
            },
        }
    }

    /// [`OutgoingTransaction::to_request`] encoded: the same bytes, written from the
    /// encoding each PDU keeps, or shared with `last` when that was written from the same
    /// parts ([`wire::Request::send_transaction_http`]).
    pub fn to_http(
        &self,
        origin: &str,
        origin_server_ts: i64,
        last: &mut wire::LastTransactionBody,
    ) -> wire::HttpRequest {
        wire::Request::send_transaction_http(
            &self.txn_id,
            origin,
            origin_server_ts,
            &self.pdus,
            &self.edus,
            last,
        )
    }
}

/// What happened to an enqueued PDU or EDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued for the next transaction.
    Queued,
    /// Queued, and the queue was full: its oldest entry was dropped (for a PDU, that PDU's
    /// room now needs catch-up).
    QueuedDroppedOldest,
    /// Not queued, the destination is down: a PDU's room is noted for catch-up, an EDU is
    /// lost.
    Dropped,
}

/// What [`Outbound::on_response`] made of a reported outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseOutcome {
    /// The transaction arrived; its PDUs and EDUs are done.
    Delivered,
    /// It failed; the same transaction is resent at this time.
    RetryAt(Instant),
    /// It failed once too often: the destination is down. `probe_at` is the next catch-up
    /// attempt, if there is anything to catch up.
    MarkedDown { probe_at: Option<Instant> },
    /// Not the transaction this destination owes (a duplicate or late report): ignored.
    Stale,
}

/// The delivery state of one destination, for the homeserver, traces and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationState {
    /// Nothing owed; the next [`Outbound::poll`] sends whatever is queued.
    Idle,
    /// A transaction is in flight.
    InFlight { txn_id: String },
    /// A transaction failed and is resent at `at`.
    RetryAt { txn_id: String, at: Instant },
    /// Down: nothing is queued; the next catch-up attempt is due at `probe_at`.
    Down { probe_at: Instant },
}

/// Counters over the whole outbound side, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Transactions built (retries not counted).
    pub transactions_built: u64,
    /// Sends emitted, first attempts and retries.
    pub sends: u64,
    /// PDUs dropped from a queue, or not queued because the destination was down or the
    /// queue had no room for catch-up events; their rooms were noted for catch-up.
    pub pdus_dropped: u64,
    /// EDUs dropped (queue full, destination down, or abandoned transaction).
    pub edus_dropped: u64,
    /// Queued PDUs removed by [`Outbound::replace_backlog`] because newer events of their
    /// room replaced them.
    pub pdus_superseded: u64,
    /// Times a destination was marked down.
    pub marked_down: u64,
}
