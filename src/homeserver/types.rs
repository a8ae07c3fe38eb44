//! The homeserver's inputs, outputs and observations.

use std::sync::Arc;

use serde_json::Value;

use crate::homeserver::wire::{HttpRequest, HttpResponse};
pub use crate::matrix::Decision;
pub use crate::matrix::action::{Action, ActionKind};
use crate::matrix::canonical_json::Object;
use crate::matrix::{EventId, RoomVersion};
use crate::stdx::Instant;

/// Identifies one request a server sent, so that its response finds its way back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Something that happens to a homeserver.
#[derive(Clone, Debug)]
pub enum Input {
    /// An inbound federation request from `origin` (authenticated by the transport). The
    /// name is shared: a simulator hands every server the same copy of each peer's name.
    Request { origin: Arc<str>, id: RequestId, request: HttpRequest },
    /// The answer to request `id` this server sent; `None` if it failed in transit (the
    /// peer was unreachable). A request that gets no answer times out by the server's own
    /// timer.
    Response { id: RequestId, response: Option<HttpResponse> },
    /// The timer the server asked for last has fired.
    Timer,
    /// Local user `user` does something: the one action vocabulary of
    /// [`crate::matrix::action`], rooms and events named by id.
    Action { user: String, action: Action<String, EventId> },
    /// The server's clock is now `offset_ms` away from true virtual time (a clock-skew
    /// fault); it shifts the `origin_server_ts` of events it creates.
    ClockSkew { offset_ms: i64 },
}

/// What a homeserver asks of the world.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send a federation request to `destination`; its answer comes back as
    /// [`Input::Response`] with the same id.
    Request { destination: String, id: RequestId, request: HttpRequest },
    /// Answer request `id` from `origin` (the name the request came with).
    Response { origin: Arc<str>, id: RequestId, response: HttpResponse },
    /// Deliver [`Input::Timer`] at `at` (replaces any earlier request for a timer).
    SetTimer { at: Instant },
    /// Something worth recording in the trace.
    Observed(Observation),
    /// The store was committed at the end of this input with these events newly stored
    /// (or upgraded from outliers): they survive a crash from now on.
    Committed { event_ids: Vec<EventId> },
}

/// One observation for the trace.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// An event was created, received or dropped, with the decision taken and, for a
    /// rejection, a soft-fail or a drop, the reason.
    Event { room_id: String, event_id: Option<EventId>, decision: Decision, reason: Option<String> },
    /// The room's current state changed; the hash names it.
    StateChanged { room_id: String, state_hash: String },
    /// An action of local user `user` failed (for example, not allowed by the auth
    /// rules, or its handshake failed later): its kind, and why in one sentence.
    ActionFailed { user: String, kind: ActionKind, reason: String },
    /// The server gained its first joined member of the room: a new room created here, a
    /// join, or a rejoin after it had left.
    RoomJoined { room_id: String, version: RoomVersion },
    /// The server lost its last joined member of the room (left, kicked or banned).
    RoomLeft { room_id: String },
    /// An invite for a local user arrived over `/invite`.
    Invited { room_id: String, user: String, event_id: EventId },
    /// A stored event was replaced by its redacted form because `redaction` was accepted:
    /// from now on this server's auth checks read the redacted copy.
    Redacted { room_id: String, event_id: EventId, redaction: EventId },
    /// A room was upgraded here: `room_id` is replaced by `replacement`.
    Upgraded { room_id: String, replacement: String },
    /// Outbound delivery marked `peer` down: a transaction to it failed once more than
    /// `retries_max` allows; from now on it gets only a catch-up probe now and then.
    PeerDown { peer: String },
    /// A peer marked down is up again: a transaction to it arrived, or it sent a request.
    PeerUp { peer: String },
    /// Linearized Matrix, at a participant: a user's event left as an LPDU for the hub.
    LpduSent { room_id: String, lpdu_id: EventId, hub: String },
    /// Linearized Matrix, at the hub: the LPDU `lpdu_id` from `origin` was completed into
    /// `event_id` and appended to the room's list.
    Linearized { room_id: String, lpdu_id: EventId, event_id: EventId, origin: String },
    /// Linearized Matrix: an LPDU did not make it into the hub's list. At the hub: refused,
    /// with the reason. At the participant: the hub's refusal arrived (`failed_pdus`), or
    /// the participant gave the LPDU up (the hub was marked down and sends fail while it is
    /// unreachable).
    LpduFailed { room_id: String, lpdu_id: EventId, reason: String },
    /// Linearized Matrix, at a participant: its LPDU came back from the hub as `event_id`.
    LpduAccepted { room_id: String, lpdu_id: EventId, event_id: EventId },
    /// Linearized Matrix, at a participant: the hub sent an event the draft's rules forbid
    /// at that point of its list (it is not appended here).
    HubMisbehaviour { room_id: String, event_id: EventId, fault: String, reason: String },
    /// Linearized Matrix, at the hub: a DAG-capable server's event `event_id` (its sender's
    /// server `origin`) was accepted and appended to the list.
    DagLinearized { room_id: String, event_id: EventId, origin: String },
    /// Linearized Matrix, at the hub: a merge event `event_id` closed the list's fork of
    /// `prev_events`, or (`event_id` absent) could not be sent, for `reason`.
    HubMerge {
        room_id: String,
        event_id: Option<EventId>,
        prev_events: Vec<EventId>,
        reason: Option<String>,
    },
}

/// Content helpers.
pub fn membership_content(membership: &str) -> Object {
    let mut content = Object::new();
    content.insert("membership".into(), Value::from(membership));
    content
}
