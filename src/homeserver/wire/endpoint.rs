//! The federation endpoints mxsim speaks ([`Endpoint`]: method, API version and name
//! segment), percent-encoding of path segments and query values, and the query string.

use std::fmt;

use crate::homeserver::wire::http::Method;

/// The path prefix of every federation endpoint (spec digest §1).
pub(super) const PREFIX: &str = "/_matrix/federation/";

/// The federation endpoints mxsim speaks (spec digest §2, §4–§8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// `PUT /_matrix/federation/v1/send/{txnId}`
    SendTransaction,
    /// `GET /_matrix/federation/v1/event/{eventId}`
    GetEvent,
    /// `GET /_matrix/federation/v1/state_ids/{roomId}?event_id=`
    GetStateIds,
    /// `GET /_matrix/federation/v1/state/{roomId}?event_id=`
    GetState,
    /// `GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}`
    GetEventAuth,
    /// `GET /_matrix/federation/v1/backfill/{roomId}?v=&limit=`
    Backfill,
    /// `POST /_matrix/federation/v1/get_missing_events/{roomId}`
    GetMissingEvents,
    /// `GET /_matrix/federation/v1/make_join/{roomId}/{userId}?ver=`
    MakeJoin,
    /// `PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}`
    SendJoin,
    /// `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`
    Invite,
    /// `GET /_matrix/federation/v1/make_leave/{roomId}/{userId}`
    MakeLeave,
    /// `PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}`
    SendLeave,
    /// `GET /_matrix/federation/v1/make_knock/{roomId}/{userId}?ver=`
    MakeKnock,
    /// `PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}`
    SendKnock,
}

impl Endpoint {
    pub const ALL: [Endpoint; 14] = [
        Endpoint::SendTransaction,
        Endpoint::GetEvent,
        Endpoint::GetStateIds,
        Endpoint::GetState,
        Endpoint::GetEventAuth,
        Endpoint::Backfill,
        Endpoint::GetMissingEvents,
        Endpoint::MakeJoin,
        Endpoint::SendJoin,
        Endpoint::Invite,
        Endpoint::MakeLeave,
        Endpoint::SendLeave,
        Endpoint::MakeKnock,
        Endpoint::SendKnock,
    ];

    pub fn method(self) -> Method {
        match self {
            Endpoint::GetEvent
            | Endpoint::GetStateIds
            | Endpoint::GetState
            | Endpoint::GetEventAuth
            | Endpoint::Backfill
            | Endpoint::MakeJoin
            | Endpoint::MakeLeave
            | Endpoint::MakeKnock => Method::Get,
            Endpoint::GetMissingEvents => Method::Post,
            Endpoint::SendTransaction
            | Endpoint::SendJoin
            | Endpoint::Invite
            | Endpoint::SendLeave
            | Endpoint::SendKnock => Method::Put,
        }
    }

    /// The API version segment: `v2` for `send_join`, `invite` and `send_leave` (their v1
    /// forms are removed or deprecated, spec digest §5 step 6, §6), `v1` otherwise.
    pub fn api_version(self) -> &'static str {
        match self {
            Endpoint::SendJoin | Endpoint::Invite | Endpoint::SendLeave => "v2",
            _ => "v1",
        }
    }

    /// The endpoint's name segment, also a short label for traffic accounting.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::SendTransaction => "send",
            Endpoint::GetEvent => "event",
            Endpoint::GetStateIds => "state_ids",
            Endpoint::GetState => "state",
            Endpoint::GetEventAuth => "event_auth",
            Endpoint::Backfill => "backfill",
            Endpoint::GetMissingEvents => "get_missing_events",
            Endpoint::MakeJoin => "make_join",
            Endpoint::SendJoin => "send_join",
            Endpoint::Invite => "invite",
            Endpoint::MakeLeave => "make_leave",
            Endpoint::SendLeave => "send_leave",
            Endpoint::MakeKnock => "make_knock",
            Endpoint::SendKnock => "send_knock",
        }
    }

    /// How many path parameters follow the name segment.
    pub(super) fn path_param_count(self) -> usize {
        match self {
            Endpoint::SendTransaction
            | Endpoint::GetEvent
            | Endpoint::GetStateIds
            | Endpoint::GetState
            | Endpoint::Backfill
            | Endpoint::GetMissingEvents => 1,
            _ => 2,
        }
    }

    /// The endpoint at `/{version}/{name}/…` with `param_count` parameters, if any.
    pub(super) fn route(version: &str, name: &str, param_count: usize) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| {
            e.api_version() == version && e.name() == name && e.path_param_count() == param_count
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}{}/{}", self.method(), PREFIX, self.api_version(), self.name())
    }
}

// ---------------------------------------------------------------------------------------
// Percent-encoding and the query string
// ---------------------------------------------------------------------------------------

/// Whether a byte is "unreserved" (RFC 3986 §2.3) and so written as is.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Appends `text` percent-encoded: every byte but the unreserved ones becomes `%XX`.
pub(super) fn percent_encode(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// The length of what [`push_segment`] appends for `text`: its `/`, and each byte of
/// `text` as itself if unreserved, else as `%XX`.
pub(super) fn segment_len(text: &str) -> usize {
    1 + text.bytes().map(|b| if is_unreserved(b) { 1 } else { 3 }).sum::<usize>()
}

pub(super) fn push_segment(target: &mut String, text: &str) {
    target.push('/');
    percent_encode(target, text);
}
