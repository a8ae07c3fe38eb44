//! The homeserver's inputs, outputs, user actions and observations.

use serde_json::Value;

use crate::homeserver::wire::{HttpRequest, HttpResponse};
pub use crate::matrix::Decision;
use crate::matrix::canonical_json::Object;
use crate::matrix::{EventId, RoomVersion};
use crate::stdx::Instant;

/// Identifies one request a server sent, so that its response finds its way back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Something that happens to a homeserver.
#[derive(Clone, Debug)]
pub enum Input {
    /// An inbound federation request from `origin` (authenticated by the transport).
    Request { origin: String, id: RequestId, request: HttpRequest },
    /// The answer to request `id` this server sent; `None` if it failed in transit (the
    /// peer was unreachable). A request that gets no answer times out by the server's own
    /// timer.
    Response { id: RequestId, response: Option<HttpResponse> },
    /// The timer the server asked for last has fired.
    Timer,
    /// A local user does something.
    Action(Action),
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
    /// Answer request `id` from `origin`.
    Response { origin: String, id: RequestId, response: HttpResponse },
    /// Deliver [`Input::Timer`] at `at` (replaces any earlier request for a timer).
    SetTimer { at: Instant },
    /// Something worth recording in the trace.
    Observed(Observation),
    /// The store was committed at the end of this input with these events newly stored
    /// (or upgraded from outliers): they survive a crash from now on.
    Committed { event_ids: Vec<EventId> },
}

/// A local user action.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create a room (the spec's creation order). `public` picks the `public_chat`
    /// preset (join rule public), otherwise `private_chat` (invite only).
    CreateRoom {
        user: String,
        version: RoomVersion,
        public: bool,
        name: Option<String>,
        topic: Option<String>,
    },
    /// Send any event: a message (`state_key: None`) or a state event (name, topic, power
    /// levels, join rules, history visibility, server ACLs, …).
    Send {
        user: String,
        room_id: String,
        event_type: String,
        state_key: Option<String>,
        content: Object,
    },
    /// Invite `target` (over `/invite` when the target is on another server).
    Invite {
        user: String,
        room_id: String,
        target: String,
    },
    /// Join a room: directly when this server is in it, otherwise through `via` with the
    /// `make_join`/`send_join` handshake.
    Join {
        user: String,
        room_id: String,
        via: Vec<String>,
    },
    /// Leave a room (or reject an invite through `make_leave`/`send_leave` when this server
    /// is not in the room).
    Leave {
        user: String,
        room_id: String,
        via: Vec<String>,
    },
    /// Kick (`leave` on another user), ban, or unban (`leave` on a banned user).
    Kick {
        user: String,
        room_id: String,
        target: String,
    },
    Ban {
        user: String,
        room_id: String,
        target: String,
    },
    Unban {
        user: String,
        room_id: String,
        target: String,
    },
    /// Knock through `via` (`make_knock`/`send_knock`).
    Knock {
        user: String,
        room_id: String,
        via: Vec<String>,
    },
    /// Redact an event.
    Redact {
        user: String,
        room_id: String,
        event_id: EventId,
    },
    /// Upgrade a room: a new room of `version` whose create event names this room as its
    /// predecessor, then an `m.room.tombstone` in this room pointing to it.
    Upgrade {
        user: String,
        room_id: String,
        version: RoomVersion,
    },
}

impl Action {
    pub fn user(&self) -> &str {
        match self {
            Action::CreateRoom { user, .. }
            | Action::Send { user, .. }
            | Action::Invite { user, .. }
            | Action::Join { user, .. }
            | Action::Leave { user, .. }
            | Action::Kick { user, .. }
            | Action::Ban { user, .. }
            | Action::Unban { user, .. }
            | Action::Knock { user, .. }
            | Action::Redact { user, .. }
            | Action::Upgrade { user, .. } => user,
        }
    }
}

/// One observation for the trace.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// An event was created, received or dropped, with the decision taken and, for a
    /// rejection, a soft-fail or a drop, the reason.
    Event { room_id: String, event_id: Option<EventId>, decision: Decision, reason: Option<String> },
    /// The room's current state changed; the hash names it.
    StateChanged { room_id: String, state_hash: String },
    /// A user action failed (for example, not allowed by the auth rules).
    ActionFailed { action: String, reason: String },
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
}

/// A user-visible error of an action.
pub fn describe_action(action: &Action) -> String {
    let kind = match action {
        Action::CreateRoom { .. } => "create_room",
        Action::Send { .. } => "send",
        Action::Invite { .. } => "invite",
        Action::Join { .. } => "join",
        Action::Leave { .. } => "leave",
        Action::Kick { .. } => "kick",
        Action::Ban { .. } => "ban",
        Action::Unban { .. } => "unban",
        Action::Knock { .. } => "knock",
        Action::Redact { .. } => "redact",
        Action::Upgrade { .. } => "upgrade",
    };
    format!("{kind} by {}", action.user())
}

/// Content helpers.
pub fn membership_content(membership: &str) -> Object {
    let mut content = Object::new();
    content.insert("membership".into(), Value::from(membership));
    content
}
