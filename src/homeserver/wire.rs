//! Federation wire messages: the requests and responses of the server-server API subset
//! mxsim speaks, in the spec's shapes, and their exact encoding as HTTP-like bytes.
//!
//! Spec: Server-Server API "Transactions", "Retrieving events", "Joining rooms",
//! "Inviting to a room", "Leaving rooms", "Knocking upon a room" and the standard error
//! response (digest: spec/federation-api.md §1, §2, §4–§8).
//!
//! A [`Request`] encodes to an [`HttpRequest`] (method, percent-encoded path and query,
//! canonical-JSON body) with [`Request::to_http`] and decodes back with
//! [`Request::from_http`]; a [`Response`] does the same with [`HttpResponse`], and decoding
//! one needs the [`Endpoint`] it answers. Every message that [`Request::validate`] (or
//! [`Response::validate`]) accepts survives `to_http` → `from_http` unchanged, and decoding
//! checks exactly what encoding asserts: the same `validate` runs on both sides.
//!
//! Untrusted bytes never panic the decoder: a bad target, an unknown path, a wrong method,
//! a malformed or oversized body, or too many PDUs or EDUs give a [`WireError`], and
//! [`WireError::to_response`] turns it into the spec's error response.
//!
//! PDUs inside messages stay raw JSON objects here: the room version needed to parse a PDU
//! is known only to the receiver, per room. [`parse_pdu`] and [`parse_pdus`] turn them into
//! [`Pdu`]s once the rules are known; [`pdu_room_id`] reads the room to look them up.
//!
//! Out of scope by design: the `Authorization: X-Matrix` header (the simulated network
//! authenticates the origin, which travels in an [`Envelope`]), other headers, TLS, server
//! discovery, and the endpoints the simulator does not use (keys, directory, third-party
//! invites, the removed v1 `send_join`/`send_leave`, which answer 404 `M_UNRECOGNIZED`).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::matrix::canonical_json::{self, INT_MAX, Numbers, Object};
use crate::matrix::ids::{self, EventId, ID_BYTES_MAX};
use crate::matrix::pdu::{FormatError, PDU_BYTES_MAX, Pdu};
use crate::matrix::room_version::RoomVersionRules;

/// Most PDUs in one transaction (spec: "Transactions", digest §2).
pub const TRANSACTION_PDUS_MAX: usize = 50;
/// Most EDUs in one transaction (spec: "Transactions", digest §2).
pub const TRANSACTION_EDUS_MAX: usize = 100;
/// Largest request body in bytes. [impl] Synapse's federation listener limits requests to
/// 200 × the 64 KiB PDU limit (about 12.5 MiB); the spec sets no limit.
pub const REQUEST_BODY_BYTES_MAX: usize = 200 * PDU_BYTES_MAX;
/// Largest response body in bytes. [digest] mxsim's own bound (100 MiB): large enough for a
/// `send_join` answer with the state of any room a simulation builds, small enough that a
/// hostile peer cannot make a decoder hold unbounded data.
pub const RESPONSE_BODY_BYTES_MAX: usize = 100 * 1024 * 1024;
/// Longest request target (path and query) in bytes. [digest] mxsim's own bound; a
/// `backfill` with 100 `v` event ids needs about 5 KiB.
pub const TARGET_BYTES_MAX: usize = 16 * 1024;
/// Longest transaction id in bytes. [digest] The spec gives no limit; mxsim applies the
/// identifier limit of 255 bytes so that a peer cannot make ids arbitrarily large.
pub const TXN_ID_BYTES_MAX: usize = ID_BYTES_MAX;
/// Longest room version string, in characters (spec: "Room versions", digest events.md §3).
pub const ROOM_VERSION_CHARS_MAX: usize = 32;
/// The `ver` a `make_join` caller supports when it sends none (spec, digest §5 step 2).
pub const MAKE_JOIN_DEFAULT_VER: &str = "1";
/// `limit` of `get_missing_events` when the body omits it (spec, digest §4).
pub const GET_MISSING_EVENTS_DEFAULT_LIMIT: u64 = 10;
/// `min_depth` of `get_missing_events` when the body omits it (spec, digest §4).
pub const GET_MISSING_EVENTS_DEFAULT_MIN_DEPTH: i64 = 0;
/// Longest text (problem, echoed path) a [`WireError`] keeps from untrusted input.
const ECHO_CHARS_MAX: usize = 100;

/// The path prefix of every federation endpoint (spec digest §1).
const PREFIX: &str = "/_matrix/federation/";

// ---------------------------------------------------------------------------------------
// HTTP shapes
// ---------------------------------------------------------------------------------------

/// An HTTP method. Federation uses GET, PUT and POST; DELETE exists so that a peer sending
/// an unexpected method can be modelled (it gets 405).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }

    /// Whether requests with this method carry a JSON body (spec digest §1: POST and PUT
    /// always carry a JSON object, maybe `{}`).
    pub fn has_body(self) -> bool {
        matches!(self, Method::Put | Method::Post)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request as it crosses the simulated network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    /// The request target: percent-encoded path, then `?` and the query if any.
    pub path_and_query: String,
    /// Canonical JSON for PUT and POST; `None` for GET.
    pub body: Option<Vec<u8>>,
}

impl HttpRequest {
    /// Bytes this request costs on the wire, for traffic accounting: the method, a space,
    /// the target and the body. Headers (host, auth, content type) are not modelled.
    pub fn byte_count(&self) -> u64 {
        let body = self.body.as_ref().map_or(0, Vec::len);
        u64::try_from(self.method.as_str().len() + 1 + self.path_and_query.len() + body)
            .expect("request size fits in u64")
    }
}

/// A response as it crosses the simulated network. Every body is a JSON object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Bytes this response costs on the wire, for traffic accounting: three status digits
    /// and the body. Headers are not modelled.
    pub fn byte_count(&self) -> u64 {
        u64::try_from(3 + self.body.len()).expect("response size fits in u64")
    }
}

/// A message with the servers it travels between. The simulated network authenticates
/// `origin` (it stands in for the X-Matrix signature, spec digest §1), so the homeserver can
/// trust it as a real server trusts a verified request signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope<T> {
    pub origin: String,
    pub destination: String,
    pub message: T,
}

impl<T> Envelope<T> {
    pub fn new(origin: impl Into<String>, destination: impl Into<String>, message: T) -> Self {
        Envelope { origin: origin.into(), destination: destination.into(), message }
    }

    /// The same envelope around another message (e.g. the encoded form).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Envelope<U> {
        Envelope { origin: self.origin, destination: self.destination, message: f(self.message) }
    }
}

// ---------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------

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
    fn path_param_count(self) -> usize {
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
    fn route(version: &str, name: &str, param_count: usize) -> Option<Endpoint> {
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
// Message bodies
// ---------------------------------------------------------------------------------------

/// An ephemeral data unit (spec: "EDUs", digest §2): `{"edu_type", "content"}`, both
/// required. EDUs have no id, no room and are not persisted.
#[derive(Clone, Debug, PartialEq)]
pub struct Edu {
    pub edu_type: String,
    pub content: Object,
}

/// A transaction (spec: "Transactions", digest §2). Also the shape of the `/event` and
/// `/backfill` answers (spec digest §4), which carry no EDUs.
#[derive(Clone, Debug, PartialEq)]
pub struct Transaction {
    /// The sending server's name.
    pub origin: String,
    /// The sender's clock (ms since the Unix epoch) when the transaction started.
    pub origin_server_ts: i64,
    /// At most [`TRANSACTION_PDUS_MAX`] raw PDUs (the room version is not known here).
    pub pdus: Vec<Object>,
    /// At most [`TRANSACTION_EDUS_MAX`] EDUs. Encoded only when non-empty (optional field).
    pub edus: Vec<Edu>,
}

/// The result of one PDU of a transaction: `{}` if handled, `{"error": …}` if not (spec
/// digest §2). A rejected PDU never fails the whole transaction.
pub type PduResult = Result<(), String>;

/// The template returned by `make_join`, `make_leave` and `make_knock` (spec digest §5 step
/// 2, §7, §8).
#[derive(Clone, Debug, PartialEq)]
pub struct MakeMembership {
    /// Required for `make_knock`. Optional for `make_join` and `make_leave`, where its
    /// absence means room version "1" or "2" (spec).
    pub room_version: Option<String>,
    /// The unsigned event template.
    pub event: Object,
}

/// The answer to `send_join` v2 (spec digest §5 step 5).
#[derive(Clone, Debug, PartialEq)]
pub struct SendJoin {
    /// The resolved room state before the join (raw PDUs).
    pub state: Vec<Object>,
    /// The auth chain of the join and of every state event (raw PDUs).
    pub auth_chain: Vec<Object>,
    /// The join as signed by the resident (required for restricted joins).
    pub event: Option<Object>,
    /// Whether `m.room.member` events were left out (`omit_members`). Encoded only when
    /// true.
    pub members_omitted: bool,
    /// Servers with joined members before the join; required if `members_omitted`.
    pub servers_in_room: Option<Vec<String>>,
}

/// The standard error response `{"errcode", "error"}` with its HTTP status (spec digest §1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    /// A 4xx or 5xx status.
    pub status: u16,
    pub errcode: ErrCode,
    /// Human-readable text; may be empty (then left out of the body).
    pub error: String,
    /// The room's version, sent with `M_INCOMPATIBLE_ROOM_VERSION` (spec digest §5, §6).
    pub room_version: Option<String>,
}

/// An error code of the standard error response.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrCode {
    /// `M_FORBIDDEN`: not allowed (403).
    Forbidden,
    /// `M_NOT_FOUND`: unknown room or event (404).
    NotFound,
    /// `M_INVALID_PARAM`: a parameter has a bad value (400).
    InvalidParam,
    /// `M_MISSING_PARAM`: a required parameter is missing (400).
    MissingParam,
    /// `M_NOT_JSON`: the body is not a JSON object (400).
    NotJson,
    /// `M_BAD_JSON`: the body is JSON of the wrong shape (400).
    BadJson,
    /// `M_TOO_LARGE`: the body or target is too large (413).
    TooLarge,
    /// `M_UNRECOGNIZED`: unknown endpoint (404) or wrong method (405).
    Unrecognized,
    /// `M_INCOMPATIBLE_ROOM_VERSION`: with `room_version` (400).
    IncompatibleRoomVersion,
    /// `M_UNABLE_TO_AUTHORISE_JOIN`: restricted room, resident cannot check (400).
    UnableToAuthoriseJoin,
    /// `M_UNABLE_TO_GRANT_JOIN`: try another resident (400).
    UnableToGrantJoin,
    /// `M_INVITE_BLOCKED`: the invitee blocks invites (403, spec v1.18).
    InviteBlocked,
    /// `M_LIMIT_EXCEEDED`: rate limited (429).
    LimitExceeded,
    /// `M_UNKNOWN`: anything else.
    Unknown,
    /// A code mxsim does not know, kept verbatim. Never one of the codes above.
    Other(String),
}

impl ErrCode {
    const KNOWN: [(ErrCode, &'static str); 14] = [
        (ErrCode::Forbidden, "M_FORBIDDEN"),
        (ErrCode::NotFound, "M_NOT_FOUND"),
        (ErrCode::InvalidParam, "M_INVALID_PARAM"),
        (ErrCode::MissingParam, "M_MISSING_PARAM"),
        (ErrCode::NotJson, "M_NOT_JSON"),
        (ErrCode::BadJson, "M_BAD_JSON"),
        (ErrCode::TooLarge, "M_TOO_LARGE"),
        (ErrCode::Unrecognized, "M_UNRECOGNIZED"),
        (ErrCode::IncompatibleRoomVersion, "M_INCOMPATIBLE_ROOM_VERSION"),
        (ErrCode::UnableToAuthoriseJoin, "M_UNABLE_TO_AUTHORISE_JOIN"),
        (ErrCode::UnableToGrantJoin, "M_UNABLE_TO_GRANT_JOIN"),
        (ErrCode::InviteBlocked, "M_INVITE_BLOCKED"),
        (ErrCode::LimitExceeded, "M_LIMIT_EXCEEDED"),
        (ErrCode::Unknown, "M_UNKNOWN"),
    ];

    /// The code for a string; unknown codes become [`ErrCode::Other`].
    pub fn parse(text: &str) -> ErrCode {
        ErrCode::KNOWN
            .iter()
            .find(|(_, name)| *name == text)
            .map_or_else(|| ErrCode::Other(text.to_owned()), |(code, _)| code.clone())
    }

    pub fn as_str(&self) -> &str {
        match self {
            ErrCode::Other(text) => text,
            known => ErrCode::KNOWN
                .iter()
                .find(|(code, _)| code == known)
                .map(|(_, name)| *name)
                .expect("every variant but Other is in KNOWN"),
        }
    }
}

impl fmt::Display for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorResponse {
    pub fn new(status: u16, errcode: ErrCode, error: impl Into<String>) -> ErrorResponse {
        assert!((400..=599).contains(&status), "error status {status} is not 4xx or 5xx");
        ErrorResponse { status, errcode, error: error.into(), room_version: None }
    }

    /// 403 `M_FORBIDDEN`.
    pub fn forbidden(error: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(403, ErrCode::Forbidden, error)
    }

    /// 404 `M_NOT_FOUND`.
    pub fn not_found(error: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(404, ErrCode::NotFound, error)
    }

    /// 400 `M_INVALID_PARAM`.
    pub fn invalid_param(error: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(400, ErrCode::InvalidParam, error)
    }

    /// 400 `M_MISSING_PARAM`.
    pub fn missing_param(error: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(400, ErrCode::MissingParam, error)
    }

    /// 400 `M_BAD_JSON`.
    pub fn bad_json(error: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(400, ErrCode::BadJson, error)
    }

    /// 400 `M_INCOMPATIBLE_ROOM_VERSION` with the room's version (spec digest §5, §6, §8).
    pub fn incompatible_room_version(room_version: impl Into<String>) -> ErrorResponse {
        let room_version = room_version.into();
        let mut response = ErrorResponse::new(
            400,
            ErrCode::IncompatibleRoomVersion,
            format!("room version {room_version} is not supported by the requesting server"),
        );
        response.room_version = Some(room_version);
        response
    }

    /// 400 `M_UNABLE_TO_AUTHORISE_JOIN` (spec digest §5 step 2).
    pub fn unable_to_authorise_join(error: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(400, ErrCode::UnableToAuthoriseJoin, error)
    }

    /// 400 `M_UNABLE_TO_GRANT_JOIN` (spec digest §5 step 2).
    pub fn unable_to_grant_join(error: impl Into<String>) -> ErrorResponse {
        ErrorResponse::new(400, ErrCode::UnableToGrantJoin, error)
    }
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// A federation request. Room ids are strings because their format depends on the room
/// version, which the wire does not know; they are checked for the shape every version
/// shares (`!`, at most 255 bytes, no NUL).
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// Push PDUs and EDUs (spec digest §2).
    SendTransaction { txn_id: String, transaction: Transaction },
    /// One event (spec digest §4).
    GetEvent { event_id: EventId },
    /// State ids before `event_id` (spec digest §4).
    GetStateIds { room_id: String, event_id: EventId },
    /// State before `event_id` (spec digest §4).
    GetState { room_id: String, event_id: EventId },
    /// The auth chain of an event (spec digest §4).
    GetEventAuth { room_id: String, event_id: EventId },
    /// History before `v` (non-empty), at most `limit` events (spec digest §4).
    Backfill { room_id: String, v: Vec<EventId>, limit: u64 },
    /// Fill a gap between `earliest_events` and `latest_events` (spec digest §4).
    GetMissingEvents {
        room_id: String,
        earliest_events: Vec<EventId>,
        latest_events: Vec<EventId>,
        limit: u64,
        min_depth: i64,
    },
    /// Ask for a join template. An empty `ver` means the caller sent none, which the spec
    /// reads as [`MAKE_JOIN_DEFAULT_VER`] (digest §5 step 2).
    MakeJoin { room_id: String, user_id: String, ver: Vec<String> },
    /// Submit a signed join (spec digest §5 step 5); `omit_members` is the v1.6 query flag.
    SendJoin { room_id: String, event_id: EventId, omit_members: bool, pdu: Object },
    /// Ask the invitee's server to sign an invite (spec digest §6).
    Invite {
        room_id: String,
        event_id: EventId,
        room_version: String,
        event: Object,
        /// Encoded only when non-empty (optional field).
        invite_room_state: Vec<Object>,
    },
    /// Ask for a leave template (spec digest §7).
    MakeLeave { room_id: String, user_id: String },
    /// Submit a signed leave (spec digest §7).
    SendLeave { room_id: String, event_id: EventId, pdu: Object },
    /// Ask for a knock template; `ver` is required and non-empty (spec digest §8).
    MakeKnock { room_id: String, user_id: String, ver: Vec<String> },
    /// Submit a signed knock (spec digest §8).
    SendKnock { room_id: String, event_id: EventId, pdu: Object },
}

impl Request {
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Request::SendTransaction { .. } => Endpoint::SendTransaction,
            Request::GetEvent { .. } => Endpoint::GetEvent,
            Request::GetStateIds { .. } => Endpoint::GetStateIds,
            Request::GetState { .. } => Endpoint::GetState,
            Request::GetEventAuth { .. } => Endpoint::GetEventAuth,
            Request::Backfill { .. } => Endpoint::Backfill,
            Request::GetMissingEvents { .. } => Endpoint::GetMissingEvents,
            Request::MakeJoin { .. } => Endpoint::MakeJoin,
            Request::SendJoin { .. } => Endpoint::SendJoin,
            Request::Invite { .. } => Endpoint::Invite,
            Request::MakeLeave { .. } => Endpoint::MakeLeave,
            Request::SendLeave { .. } => Endpoint::SendLeave,
            Request::MakeKnock { .. } => Endpoint::MakeKnock,
            Request::SendKnock { .. } => Endpoint::SendKnock,
        }
    }

    /// The room the request is about, if it names one in its path (for ACL checks).
    pub fn room_id(&self) -> Option<&str> {
        match self {
            Request::SendTransaction { .. } | Request::GetEvent { .. } => None,
            Request::GetStateIds { room_id, .. }
            | Request::GetState { room_id, .. }
            | Request::GetEventAuth { room_id, .. }
            | Request::Backfill { room_id, .. }
            | Request::GetMissingEvents { room_id, .. }
            | Request::MakeJoin { room_id, .. }
            | Request::SendJoin { room_id, .. }
            | Request::Invite { room_id, .. }
            | Request::MakeLeave { room_id, .. }
            | Request::SendLeave { room_id, .. }
            | Request::MakeKnock { room_id, .. }
            | Request::SendKnock { room_id, .. } => Some(room_id),
        }
    }

    /// Checks everything about the message that does not need a room version: identifier
    /// shapes, the transaction limits, required non-empty lists, integer ranges, and the
    /// length of the encoded target (a decoded target may spell `!` where the encoder
    /// writes `%21`, so the check is on what encoding would produce). Decoding runs it on
    /// untrusted input; encoding asserts it (an invalid outgoing message is an mxsim bug).
    pub fn validate(&self) -> Result<(), WireError> {
        self.validate_fields()?;
        let (target, _) = self.encode_parts(false);
        if target.len() > TARGET_BYTES_MAX {
            return Err(WireError::TargetTooLong { bytes: len_u64(target.len()) });
        }
        Ok(())
    }

    fn validate_fields(&self) -> Result<(), WireError> {
        match self {
            Request::SendTransaction { txn_id, transaction } => {
                check_txn_id(txn_id)?;
                validate_transaction(transaction, TransactionUse::Send)
            }
            Request::GetEvent { event_id: _ } => Ok(()),
            Request::GetStateIds { room_id, event_id: _ }
            | Request::GetState { room_id, event_id: _ }
            | Request::GetEventAuth { room_id, event_id: _ } => check_room_id(room_id),
            Request::Backfill { room_id, v, limit } => {
                check_room_id(room_id)?;
                if v.is_empty() {
                    return Err(WireError::missing_param("v"));
                }
                check_count_param("limit", *limit)
            }
            Request::GetMissingEvents {
                room_id,
                earliest_events: _,
                latest_events: _,
                limit,
                min_depth,
            } => {
                check_room_id(room_id)?;
                if *limit > INT_MAX as u64 {
                    return Err(WireError::bad_json("$.limit", "must be at most 2^53-1"));
                }
                if !(-INT_MAX..=INT_MAX).contains(min_depth) {
                    return Err(WireError::bad_json("$.min_depth", "out of range"));
                }
                Ok(())
            }
            Request::MakeJoin { room_id, user_id, ver } => {
                check_room_id(room_id)?;
                check_user_id(user_id)?;
                check_versions(ver)
            }
            Request::MakeKnock { room_id, user_id, ver } => {
                check_room_id(room_id)?;
                check_user_id(user_id)?;
                if ver.is_empty() {
                    return Err(WireError::missing_param("ver"));
                }
                check_versions(ver)
            }
            Request::MakeLeave { room_id, user_id } => {
                check_room_id(room_id)?;
                check_user_id(user_id)
            }
            Request::SendJoin { room_id, event_id: _, omit_members: _, pdu: _ }
            | Request::SendLeave { room_id, event_id: _, pdu: _ }
            | Request::SendKnock { room_id, event_id: _, pdu: _ } => check_room_id(room_id),
            Request::Invite {
                room_id,
                event_id: _,
                room_version,
                event: _,
                invite_room_state: _,
            } => {
                check_room_id(room_id)?;
                check_room_version("$.room_version", room_version)
            }
        }
    }

    /// Encodes the request. Panics if [`Request::validate`] fails or the body exceeds
    /// [`REQUEST_BODY_BYTES_MAX`]: mxsim must never send what it would refuse to receive.
    pub fn to_http(&self) -> HttpRequest {
        if let Err(error) = self.validate() {
            panic!("encoding an invalid {} request: {error}", self.endpoint().name());
        }
        let endpoint = self.endpoint();
        let (target, body) = self.encode_parts(true);
        assert!(target.len() <= TARGET_BYTES_MAX, "request target of {} bytes", target.len());
        assert_eq!(body.is_some(), endpoint.method().has_body());
        let body = body.map(|object| {
            let bytes = encode_body(&object);
            assert!(bytes.len() <= REQUEST_BODY_BYTES_MAX, "request body of {} bytes", bytes.len());
            bytes
        });
        HttpRequest { method: endpoint.method(), path_and_query: target, body }
    }

    /// The encoded target and, if `with_body`, the body object (for PUT and POST).
    ///
    /// Optional body fields equal to their default are left out, so that re-encoding a
    /// decoded message never produces more bytes than were received: a message accepted
    /// at the size limit can always be sent on.
    fn encode_parts(&self, with_body: bool) -> (String, Option<Object>) {
        let endpoint = self.endpoint();
        let mut target = String::with_capacity(128);
        target.push_str(PREFIX);
        target.push_str(endpoint.api_version());
        target.push('/');
        target.push_str(endpoint.name());
        let mut query = Query::default();
        let body: Option<Object> = match self {
            Request::SendTransaction { txn_id, transaction } => {
                push_segment(&mut target, txn_id);
                with_body.then(|| transaction_json(transaction))
            }
            Request::GetEvent { event_id } => {
                push_segment(&mut target, event_id.as_str());
                None
            }
            Request::GetStateIds { room_id, event_id }
            | Request::GetState { room_id, event_id } => {
                push_segment(&mut target, room_id);
                query.push("event_id", event_id.as_str());
                None
            }
            Request::GetEventAuth { room_id, event_id } => {
                push_segment(&mut target, room_id);
                push_segment(&mut target, event_id.as_str());
                None
            }
            Request::Backfill { room_id, v, limit } => {
                push_segment(&mut target, room_id);
                for id in v {
                    query.push("v", id.as_str());
                }
                query.push("limit", &limit.to_string());
                None
            }
            Request::GetMissingEvents {
                room_id,
                earliest_events,
                latest_events,
                limit,
                min_depth,
            } => {
                push_segment(&mut target, room_id);
                with_body.then(|| {
                    let mut body = Object::new();
                    body.insert("earliest_events".into(), event_ids_json(earliest_events));
                    body.insert("latest_events".into(), event_ids_json(latest_events));
                    if *limit != GET_MISSING_EVENTS_DEFAULT_LIMIT {
                        body.insert("limit".into(), Value::from(*limit));
                    }
                    if *min_depth != GET_MISSING_EVENTS_DEFAULT_MIN_DEPTH {
                        body.insert("min_depth".into(), Value::from(*min_depth));
                    }
                    body
                })
            }
            Request::MakeJoin { room_id, user_id, ver }
            | Request::MakeKnock { room_id, user_id, ver } => {
                push_segment(&mut target, room_id);
                push_segment(&mut target, user_id);
                for version in ver {
                    query.push("ver", version);
                }
                None
            }
            Request::MakeLeave { room_id, user_id } => {
                push_segment(&mut target, room_id);
                push_segment(&mut target, user_id);
                None
            }
            Request::SendJoin { room_id, event_id, omit_members, pdu } => {
                push_segment(&mut target, room_id);
                push_segment(&mut target, event_id.as_str());
                if *omit_members {
                    query.push("omit_members", "true");
                }
                with_body.then(|| pdu.clone())
            }
            Request::SendLeave { room_id, event_id, pdu }
            | Request::SendKnock { room_id, event_id, pdu } => {
                push_segment(&mut target, room_id);
                push_segment(&mut target, event_id.as_str());
                with_body.then(|| pdu.clone())
            }
            Request::Invite { room_id, event_id, room_version, event, invite_room_state } => {
                push_segment(&mut target, room_id);
                push_segment(&mut target, event_id.as_str());
                with_body.then(|| {
                    let mut body = Object::new();
                    body.insert("room_version".into(), Value::String(room_version.clone()));
                    body.insert("event".into(), Value::Object(event.clone()));
                    if !invite_room_state.is_empty() {
                        body.insert("invite_room_state".into(), objects_json(invite_room_state));
                    }
                    body
                })
            }
        };
        target.push_str(&query.encoded);
        (target, body)
    }

    /// Decodes an untrusted request. Never panics; every failure maps to the spec's error
    /// response through [`WireError::to_response`].
    ///
    /// Order of checks: the target (length, characters), the route (404, then 405), path
    /// parameters, query parameters, the body (size, JSON, shape), then [`Request::validate`].
    /// A GET body is ignored, as HTTP gives it no meaning.
    pub fn from_http(http: &HttpRequest) -> Result<Request, WireError> {
        let target = http.path_and_query.as_str();
        if target.len() > TARGET_BYTES_MAX {
            return Err(WireError::TargetTooLong { bytes: len_u64(target.len()) });
        }
        if let Some(bad) = target.bytes().find(|b| !(0x21..=0x7e).contains(b)) {
            return Err(WireError::BadTarget {
                problem: format!("byte 0x{bad:02x} is not allowed in a request target"),
            });
        }
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let not_found = || WireError::UnknownEndpoint { path: echo(path) };
        let rest = path.strip_prefix(PREFIX).ok_or_else(not_found)?;
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.len() < 2 {
            return Err(not_found());
        }
        let endpoint =
            Endpoint::route(segments[0], segments[1], segments.len() - 2).ok_or_else(not_found)?;
        if http.method != endpoint.method() {
            return Err(WireError::MethodNotAllowed { method: http.method, endpoint });
        }
        let params = &segments[2..];
        let query = Query::parse(query.unwrap_or(""))?;
        let body = if endpoint.method().has_body() {
            Some(parse_body(http.body.as_deref(), REQUEST_BODY_BYTES_MAX)?)
        } else {
            None
        };
        let request = decode_request(endpoint, params, &query, body)?;
        request.validate()?;
        Ok(request)
    }

    /// Bytes this request costs on the wire (see [`HttpRequest::byte_count`]). Encodes it.
    pub fn byte_count(&self) -> u64 {
        self.to_http().byte_count()
    }
}

/// Builds the request from routed, decoded parts (shape only; [`Request::validate`] follows).
fn decode_request(
    endpoint: Endpoint,
    params: &[&str],
    query: &Query,
    body: Option<Object>,
) -> Result<Request, WireError> {
    assert_eq!(params.len(), endpoint.path_param_count());
    assert_eq!(body.is_some(), endpoint.method().has_body());
    let room_id = || path_param(params[0], "roomId");
    let second_event_id = || path_event_id(params[1]);
    let mut body = body.unwrap_or_default();
    let request = match endpoint {
        Endpoint::SendTransaction => Request::SendTransaction {
            txn_id: path_param(params[0], "txnId")?,
            transaction: transaction_from_json(body, TransactionUse::Send)?,
        },
        Endpoint::GetEvent => Request::GetEvent { event_id: path_event_id(params[0])? },
        Endpoint::GetStateIds => {
            Request::GetStateIds { room_id: room_id()?, event_id: query.event_id("event_id")? }
        }
        Endpoint::GetState => {
            Request::GetState { room_id: room_id()?, event_id: query.event_id("event_id")? }
        }
        Endpoint::GetEventAuth => {
            Request::GetEventAuth { room_id: room_id()?, event_id: second_event_id()? }
        }
        Endpoint::Backfill => {
            let v = query
                .all("v")
                .map(|text| {
                    EventId::parse(text).map_err(|e| WireError::invalid_param("v", e.problem))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if v.is_empty() {
                return Err(WireError::missing_param("v"));
            }
            let limit = query.single("limit")?.ok_or_else(|| WireError::missing_param("limit"))?;
            Request::Backfill { room_id: room_id()?, v, limit: parse_count_param("limit", limit)? }
        }
        Endpoint::GetMissingEvents => Request::GetMissingEvents {
            room_id: room_id()?,
            earliest_events: take_event_ids(&mut body, "earliest_events")?,
            latest_events: take_event_ids(&mut body, "latest_events")?,
            limit: match take_integer(&mut body, "limit")? {
                None => GET_MISSING_EVENTS_DEFAULT_LIMIT,
                Some(limit) => u64::try_from(limit)
                    .map_err(|_| WireError::bad_json("$.limit", "must not be negative"))?,
            },
            min_depth: take_integer(&mut body, "min_depth")?
                .unwrap_or(GET_MISSING_EVENTS_DEFAULT_MIN_DEPTH),
        },
        Endpoint::MakeJoin | Endpoint::MakeKnock | Endpoint::MakeLeave => {
            let room_id = room_id()?;
            let user_id = path_param(params[1], "userId")?;
            let ver: Vec<String> = query.all("ver").map(str::to_owned).collect();
            match endpoint {
                Endpoint::MakeJoin => Request::MakeJoin { room_id, user_id, ver },
                Endpoint::MakeKnock if ver.is_empty() => {
                    return Err(WireError::missing_param("ver"));
                }
                Endpoint::MakeKnock => Request::MakeKnock { room_id, user_id, ver },
                _ => Request::MakeLeave { room_id, user_id },
            }
        }
        Endpoint::SendJoin => {
            let omit_members = match query.single("omit_members")? {
                None | Some("false") => false,
                Some("true") => true,
                Some(_) => {
                    return Err(WireError::invalid_param("omit_members", "must be true or false"));
                }
            };
            Request::SendJoin {
                room_id: room_id()?,
                event_id: second_event_id()?,
                omit_members,
                pdu: body,
            }
        }
        Endpoint::SendLeave => {
            Request::SendLeave { room_id: room_id()?, event_id: second_event_id()?, pdu: body }
        }
        Endpoint::SendKnock => {
            Request::SendKnock { room_id: room_id()?, event_id: second_event_id()?, pdu: body }
        }
        Endpoint::Invite => Request::Invite {
            room_id: room_id()?,
            event_id: second_event_id()?,
            room_version: take_string(&mut body, "room_version")?
                .ok_or_else(|| WireError::missing_param("$.room_version"))?,
            event: take_object(&mut body, "event")?
                .ok_or_else(|| WireError::missing_param("$.event"))?,
            invite_room_state: take_objects(&mut body, "invite_room_state")?.unwrap_or_default(),
        },
    };
    Ok(request)
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

/// A federation response: one success shape per endpoint, or the standard error.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// `{"pdus": {event_id: {} | {"error"}}}` (spec digest §2).
    SendTransaction { pdus: BTreeMap<EventId, PduResult> },
    /// A single-PDU transaction (spec digest §4); exactly one PDU.
    GetEvent(Transaction),
    /// `{"pdu_ids", "auth_chain_ids"}` (spec digest §4).
    GetStateIds { pdu_ids: Vec<EventId>, auth_chain_ids: Vec<EventId> },
    /// `{"pdus", "auth_chain"}` (spec digest §4).
    GetState { pdus: Vec<Object>, auth_chain: Vec<Object> },
    /// `{"auth_chain"}` (spec digest §4).
    GetEventAuth { auth_chain: Vec<Object> },
    /// A transaction of history (spec digest §4).
    Backfill(Transaction),
    /// `{"events"}` (spec digest §4).
    GetMissingEvents { events: Vec<Object> },
    /// A join template (spec digest §5 step 2).
    MakeJoin(MakeMembership),
    /// The room state and auth chain for a join (spec digest §5 step 5).
    SendJoin(SendJoin),
    /// `{"event"}`: the invite with the invitee server's signature (spec digest §6).
    Invite { event: Object },
    /// A leave template (spec digest §7).
    MakeLeave(MakeMembership),
    /// `{}` (spec digest §7).
    SendLeave,
    /// A knock template; `room_version` required (spec digest §8).
    MakeKnock(MakeMembership),
    /// `{"knock_room_state"}` (spec digest §8).
    SendKnock { knock_room_state: Vec<Object> },
    /// The standard error response, for any endpoint.
    Error(ErrorResponse),
}

impl Response {
    /// The endpoint this success response answers; `None` for an error.
    pub fn endpoint(&self) -> Option<Endpoint> {
        Some(match self {
            Response::SendTransaction { .. } => Endpoint::SendTransaction,
            Response::GetEvent(_) => Endpoint::GetEvent,
            Response::GetStateIds { .. } => Endpoint::GetStateIds,
            Response::GetState { .. } => Endpoint::GetState,
            Response::GetEventAuth { .. } => Endpoint::GetEventAuth,
            Response::Backfill(_) => Endpoint::Backfill,
            Response::GetMissingEvents { .. } => Endpoint::GetMissingEvents,
            Response::MakeJoin(_) => Endpoint::MakeJoin,
            Response::SendJoin(_) => Endpoint::SendJoin,
            Response::Invite { .. } => Endpoint::Invite,
            Response::MakeLeave(_) => Endpoint::MakeLeave,
            Response::SendLeave => Endpoint::SendLeave,
            Response::MakeKnock(_) => Endpoint::MakeKnock,
            Response::SendKnock { .. } => Endpoint::SendKnock,
            Response::Error(_) => return None,
        })
    }

    /// The HTTP status: 200 for success, the error's own status otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Response::Error(error) => error.status,
            _ => 200,
        }
    }

    /// Checks what does not need a room version (see [`Request::validate`]).
    pub fn validate(&self) -> Result<(), WireError> {
        match self {
            Response::SendTransaction { pdus } => {
                // One entry per PDU of the transaction it answers.
                if pdus.len() > TRANSACTION_PDUS_MAX {
                    return Err(WireError::TooManyPdus { count: len_u64(pdus.len()) });
                }
                Ok(())
            }
            Response::GetEvent(transaction) => {
                if transaction.pdus.len() != 1 {
                    return Err(WireError::bad_json("$.pdus", "must hold exactly one PDU"));
                }
                validate_transaction(transaction, TransactionUse::Answer)
            }
            Response::Backfill(transaction) => {
                validate_transaction(transaction, TransactionUse::Answer)
            }
            Response::MakeJoin(make) | Response::MakeLeave(make) => match &make.room_version {
                Some(version) => check_room_version("$.room_version", version),
                None => Ok(()),
            },
            Response::MakeKnock(make) => match &make.room_version {
                Some(version) => check_room_version("$.room_version", version),
                None => Err(WireError::missing_param("$.room_version")),
            },
            Response::SendJoin(join) => {
                if join.members_omitted && join.servers_in_room.is_none() {
                    return Err(WireError::missing_param("$.servers_in_room"));
                }
                for (index, server) in join.servers_in_room.iter().flatten().enumerate() {
                    ids::check_server_name(server).map_err(|e| {
                        WireError::bad_json(&format!("$.servers_in_room[{index}]"), e.problem)
                    })?;
                }
                Ok(())
            }
            Response::Error(error) => {
                if !(400..=599).contains(&error.status) {
                    return Err(WireError::UnexpectedStatus { status: error.status });
                }
                Ok(())
            }
            Response::GetStateIds { .. }
            | Response::GetState { .. }
            | Response::GetEventAuth { .. }
            | Response::GetMissingEvents { .. }
            | Response::Invite { .. }
            | Response::SendLeave
            | Response::SendKnock { .. } => Ok(()),
        }
    }

    /// Encodes the response. Panics if [`Response::validate`] fails or the body exceeds
    /// [`RESPONSE_BODY_BYTES_MAX`].
    pub fn to_http(&self) -> HttpResponse {
        if let Err(error) = self.validate() {
            panic!("encoding an invalid response: {error}");
        }
        let mut body = Object::new();
        let mut put = |key: &str, value: Value| {
            body.insert(key.to_owned(), value);
        };
        match self {
            Response::SendTransaction { pdus } => {
                let mut results = Object::new();
                for (event_id, result) in pdus {
                    let mut entry = Object::new();
                    if let Err(error) = result {
                        entry.insert("error".into(), Value::String(error.clone()));
                    }
                    results.insert(event_id.as_str().to_owned(), Value::Object(entry));
                }
                put("pdus", Value::Object(results));
            }
            Response::GetEvent(transaction) | Response::Backfill(transaction) => {
                for (key, value) in transaction_json(transaction) {
                    put(&key, value);
                }
            }
            Response::GetStateIds { pdu_ids, auth_chain_ids } => {
                put("pdu_ids", event_ids_json(pdu_ids));
                put("auth_chain_ids", event_ids_json(auth_chain_ids));
            }
            Response::GetState { pdus, auth_chain } => {
                put("pdus", objects_json(pdus));
                put("auth_chain", objects_json(auth_chain));
            }
            Response::GetEventAuth { auth_chain } => put("auth_chain", objects_json(auth_chain)),
            Response::GetMissingEvents { events } => put("events", objects_json(events)),
            Response::MakeJoin(make) | Response::MakeLeave(make) | Response::MakeKnock(make) => {
                if let Some(version) = &make.room_version {
                    put("room_version", Value::String(version.clone()));
                }
                put("event", Value::Object(make.event.clone()));
            }
            Response::SendJoin(join) => {
                put("state", objects_json(&join.state));
                put("auth_chain", objects_json(&join.auth_chain));
                if let Some(event) = &join.event {
                    put("event", Value::Object(event.clone()));
                }
                if join.members_omitted {
                    put("members_omitted", Value::Bool(true));
                }
                if let Some(servers) = &join.servers_in_room {
                    put(
                        "servers_in_room",
                        Value::Array(servers.iter().cloned().map(Value::String).collect()),
                    );
                }
            }
            Response::Invite { event } => put("event", Value::Object(event.clone())),
            Response::SendLeave => {}
            Response::SendKnock { knock_room_state } => {
                put("knock_room_state", objects_json(knock_room_state));
            }
            Response::Error(error) => {
                put("errcode", Value::String(error.errcode.as_str().to_owned()));
                // Left out when empty, as decoding reads a missing `error` as empty.
                if !error.error.is_empty() {
                    put("error", Value::String(error.error.clone()));
                }
                if let Some(version) = &error.room_version {
                    put("room_version", Value::String(version.clone()));
                }
            }
        }
        let bytes = encode_body(&body);
        assert!(bytes.len() <= RESPONSE_BODY_BYTES_MAX, "response body of {} bytes", bytes.len());
        HttpResponse { status: self.status(), body: bytes }
    }

    /// Decodes an untrusted response to a request to `endpoint`. Never panics.
    ///
    /// Status 200 is the endpoint's success shape; 4xx and 5xx are the standard error
    /// (`error` may be missing: it then reads as empty); any other status is a
    /// [`WireError::UnexpectedStatus`]. Unknown keys are ignored.
    pub fn from_http(endpoint: Endpoint, http: &HttpResponse) -> Result<Response, WireError> {
        if http.status != 200 && !(400..=599).contains(&http.status) {
            return Err(WireError::UnexpectedStatus { status: http.status });
        }
        let mut body = parse_body(Some(&http.body), RESPONSE_BODY_BYTES_MAX)?;
        let response = if http.status != 200 {
            let errcode = take_string(&mut body, "errcode")?
                .ok_or_else(|| WireError::missing_param("$.errcode"))?;
            Response::Error(ErrorResponse {
                status: http.status,
                errcode: ErrCode::parse(&errcode),
                error: take_string(&mut body, "error")?.unwrap_or_default(),
                room_version: take_string(&mut body, "room_version")?,
            })
        } else {
            decode_success(endpoint, body)?
        };
        response.validate()?;
        Ok(response)
    }

    /// Bytes this response costs on the wire (see [`HttpResponse::byte_count`]). Encodes it.
    pub fn byte_count(&self) -> u64 {
        self.to_http().byte_count()
    }
}

impl From<ErrorResponse> for Response {
    fn from(error: ErrorResponse) -> Response {
        Response::Error(error)
    }
}

fn decode_success(endpoint: Endpoint, mut body: Object) -> Result<Response, WireError> {
    let required = |value: Option<Vec<Object>>, key: &str| {
        value.ok_or_else(|| WireError::missing_param(&format!("$.{key}")))
    };
    let response = match endpoint {
        Endpoint::SendTransaction => {
            let Some(results) = take_object(&mut body, "pdus")? else {
                return Err(WireError::missing_param("$.pdus"));
            };
            if results.len() > TRANSACTION_PDUS_MAX {
                return Err(WireError::TooManyPdus { count: len_u64(results.len()) });
            }
            let mut pdus = BTreeMap::new();
            for (key, entry) in results {
                let mut path = String::from("$.pdus");
                canonical_json::push_key(&mut path, &key);
                let event_id =
                    EventId::parse(&key).map_err(|e| WireError::bad_json(&path, e.problem))?;
                let Value::Object(mut entry) = entry else {
                    return Err(WireError::bad_json(&path, "must be an object"));
                };
                let result = match entry.remove("error") {
                    None => Ok(()),
                    Some(Value::String(error)) => Err(error),
                    Some(_) => {
                        return Err(WireError::bad_json(
                            &format!("{path}.error"),
                            "must be a string",
                        ));
                    }
                };
                pdus.insert(event_id, result);
            }
            Response::SendTransaction { pdus }
        }
        Endpoint::GetEvent => {
            Response::GetEvent(transaction_from_json(body, TransactionUse::Answer)?)
        }
        Endpoint::Backfill => {
            Response::Backfill(transaction_from_json(body, TransactionUse::Answer)?)
        }
        Endpoint::GetStateIds => Response::GetStateIds {
            pdu_ids: take_event_ids(&mut body, "pdu_ids")?,
            auth_chain_ids: take_event_ids(&mut body, "auth_chain_ids")?,
        },
        Endpoint::GetState => Response::GetState {
            pdus: required(take_objects(&mut body, "pdus")?, "pdus")?,
            auth_chain: required(take_objects(&mut body, "auth_chain")?, "auth_chain")?,
        },
        Endpoint::GetEventAuth => Response::GetEventAuth {
            auth_chain: required(take_objects(&mut body, "auth_chain")?, "auth_chain")?,
        },
        Endpoint::GetMissingEvents => Response::GetMissingEvents {
            events: required(take_objects(&mut body, "events")?, "events")?,
        },
        Endpoint::MakeJoin | Endpoint::MakeLeave | Endpoint::MakeKnock => {
            let make = MakeMembership {
                room_version: take_string(&mut body, "room_version")?,
                event: take_object(&mut body, "event")?
                    .ok_or_else(|| WireError::missing_param("$.event"))?,
            };
            match endpoint {
                Endpoint::MakeJoin => Response::MakeJoin(make),
                Endpoint::MakeLeave => Response::MakeLeave(make),
                _ => Response::MakeKnock(make),
            }
        }
        Endpoint::SendJoin => {
            let members_omitted = match body.remove("members_omitted") {
                None => false,
                Some(Value::Bool(flag)) => flag,
                Some(_) => {
                    return Err(WireError::bad_json("$.members_omitted", "must be a boolean"));
                }
            };
            let servers_in_room = match body.remove("servers_in_room") {
                None => None,
                Some(value) => Some(strings_from_json(value, "$.servers_in_room")?),
            };
            Response::SendJoin(SendJoin {
                state: required(take_objects(&mut body, "state")?, "state")?,
                auth_chain: required(take_objects(&mut body, "auth_chain")?, "auth_chain")?,
                event: take_object(&mut body, "event")?,
                members_omitted,
                servers_in_room,
            })
        }
        Endpoint::Invite => Response::Invite {
            event: take_object(&mut body, "event")?
                .ok_or_else(|| WireError::missing_param("$.event"))?,
        },
        Endpoint::SendLeave => Response::SendLeave,
        Endpoint::SendKnock => Response::SendKnock {
            knock_room_state: required(
                take_objects(&mut body, "knock_room_state")?,
                "knock_room_state",
            )?,
        },
    };
    Ok(response)
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a message could not be decoded (or, for an outgoing message, validated). Texts taken
/// from input are cut to a bounded length.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// No such endpoint: 404 `M_UNRECOGNIZED` (spec digest §1).
    #[error("unknown endpoint {path:?}")]
    UnknownEndpoint { path: String },
    /// A known endpoint with the wrong method: 405 `M_UNRECOGNIZED` (spec digest §1).
    #[error("method {method} not allowed on {endpoint}")]
    MethodNotAllowed { method: Method, endpoint: Endpoint },
    /// The request target is longer than [`TARGET_BYTES_MAX`]: 414 `M_TOO_LARGE`.
    #[error("request target of {bytes} bytes is longer than {TARGET_BYTES_MAX}")]
    TargetTooLong { bytes: u64 },
    /// The target has a byte outside visible ASCII, a bad `%XX` escape, or escapes that are
    /// not UTF-8: 400 `M_INVALID_PARAM` ([digest]: the spec names no code for this).
    #[error("bad request target: {problem}")]
    BadTarget { problem: String },
    /// A required query parameter or body field is missing: 400 `M_MISSING_PARAM` ([impl]
    /// Synapse's `assert_params_in_dict` uses it for body fields too).
    #[error("missing parameter {name}")]
    MissingParam { name: String },
    /// A path or query parameter has a bad value: 400 `M_INVALID_PARAM`.
    #[error("invalid parameter {name}: {problem}")]
    InvalidParam { name: String, problem: String },
    /// The body exceeds the size limit: 413 `M_TOO_LARGE`.
    #[error("body of {bytes} bytes is larger than {max}")]
    BodyTooLarge { bytes: u64, max: u64 },
    /// The body is missing, not JSON, not canonical-JSON numbers, or not an object: 400
    /// `M_NOT_JSON`.
    #[error("body is not a JSON object: {problem}")]
    NotJson { problem: String },
    /// The body is a JSON object of the wrong shape: 400 `M_BAD_JSON`.
    #[error("bad JSON at {path}: {problem}")]
    BadJson { path: String, problem: String },
    /// More than [`TRANSACTION_PDUS_MAX`] PDUs: 400 `M_BAD_JSON` ([impl] Synapse answers
    /// 400, with an empty body, before processing any PDU).
    #[error("{count} PDUs, more than {TRANSACTION_PDUS_MAX}")]
    TooManyPdus { count: u64 },
    /// More than [`TRANSACTION_EDUS_MAX`] EDUs: 400 `M_BAD_JSON` ([impl] as for PDUs).
    #[error("{count} EDUs, more than {TRANSACTION_EDUS_MAX}")]
    TooManyEdus { count: u64 },
    /// A response status that is neither 200 nor 4xx/5xx (responses only): 502 `M_UNKNOWN`
    /// if it must be reported onward.
    #[error("unexpected HTTP status {status}")]
    UnexpectedStatus { status: u16 },
}

impl WireError {
    fn missing_param(name: &str) -> WireError {
        WireError::MissingParam { name: echo(name) }
    }

    fn invalid_param(name: &str, problem: impl Into<String>) -> WireError {
        WireError::InvalidParam { name: echo(name), problem: echo(&problem.into()) }
    }

    fn bad_json(path: &str, problem: impl Into<String>) -> WireError {
        WireError::BadJson { path: echo(path), problem: echo(&problem.into()) }
    }

    /// The spec's error response for this failure (spec digest §1 for the codes of unknown
    /// endpoints and methods; the client-server standard error codes otherwise).
    pub fn to_error_response(&self) -> ErrorResponse {
        let (status, errcode) = match self {
            WireError::UnknownEndpoint { .. } => (404, ErrCode::Unrecognized),
            WireError::MethodNotAllowed { .. } => (405, ErrCode::Unrecognized),
            WireError::TargetTooLong { .. } => (414, ErrCode::TooLarge),
            WireError::BadTarget { .. } | WireError::InvalidParam { .. } => {
                (400, ErrCode::InvalidParam)
            }
            WireError::MissingParam { .. } => (400, ErrCode::MissingParam),
            WireError::BodyTooLarge { .. } => (413, ErrCode::TooLarge),
            WireError::NotJson { .. } => (400, ErrCode::NotJson),
            WireError::BadJson { .. }
            | WireError::TooManyPdus { .. }
            | WireError::TooManyEdus { .. } => (400, ErrCode::BadJson),
            WireError::UnexpectedStatus { .. } => (502, ErrCode::Unknown),
        };
        ErrorResponse::new(status, errcode, self.to_string())
    }

    /// [`WireError::to_error_response`] as a [`Response`], ready to encode.
    pub fn to_response(&self) -> Response {
        Response::Error(self.to_error_response())
    }
}

// ---------------------------------------------------------------------------------------
// PDU helpers
// ---------------------------------------------------------------------------------------

/// The `room_id` of a raw PDU, to look up its room version; `None` if absent or not a
/// string (a room version 12 create event has none, spec digest events.md §2).
pub fn pdu_room_id(pdu: &Object) -> Option<&str> {
    pdu.get("room_id").and_then(Value::as_str)
}

/// Parses a raw PDU under the rules of its room version: format checks and event id
/// (spec digest §3 step 1). Signatures and hashes are checked later, by the receiver.
pub fn parse_pdu(rules: &RoomVersionRules, pdu: Object) -> Result<Pdu, FormatError> {
    Pdu::from_json(rules, pdu)
}

/// [`parse_pdu`] for every PDU of a list under one room version, keeping the order. Each
/// PDU is judged on its own (spec digest §2: one bad PDU does not fail the others).
pub fn parse_pdus(rules: &RoomVersionRules, pdus: Vec<Object>) -> Vec<Result<Pdu, FormatError>> {
    pdus.into_iter().map(|pdu| parse_pdu(rules, pdu)).collect()
}

/// The raw form of a PDU for sending.
pub fn pdu_to_wire(pdu: &Pdu) -> Object {
    pdu.json().clone()
}

/// Checks that the event id in a `send_join`/`send_leave`/`send_knock`/`invite` path is the
/// id of the PDU in the body; the spec's answer to a mismatch is 400 `M_INVALID_PARAM`
/// (digest §5 step 5 "Resident validation").
pub fn check_path_event_id(path_event_id: &EventId, pdu: &Pdu) -> Result<(), WireError> {
    if path_event_id == pdu.event_id() {
        Ok(())
    } else {
        Err(WireError::invalid_param(
            "eventId",
            format!("the path names {path_event_id} but the body is {}", pdu.event_id()),
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Field checks shared by both directions
// ---------------------------------------------------------------------------------------

/// Where a transaction appears: in `/send` the counts are limited; as the answer to
/// `/event` or `/backfill` only the requester's `limit` bounds them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TransactionUse {
    Send,
    Answer,
}

fn validate_transaction(transaction: &Transaction, use_: TransactionUse) -> Result<(), WireError> {
    ids::check_server_name(&transaction.origin)
        .map_err(|e| WireError::bad_json("$.origin", e.problem))?;
    if !(-INT_MAX..=INT_MAX).contains(&transaction.origin_server_ts) {
        return Err(WireError::bad_json("$.origin_server_ts", "out of range"));
    }
    if use_ == TransactionUse::Send {
        if transaction.pdus.len() > TRANSACTION_PDUS_MAX {
            return Err(WireError::TooManyPdus { count: len_u64(transaction.pdus.len()) });
        }
        if transaction.edus.len() > TRANSACTION_EDUS_MAX {
            return Err(WireError::TooManyEdus { count: len_u64(transaction.edus.len()) });
        }
    }
    Ok(())
}

fn check_txn_id(txn_id: &str) -> Result<(), WireError> {
    if txn_id.is_empty() || txn_id.len() > TXN_ID_BYTES_MAX {
        return Err(WireError::invalid_param("txnId", "must be 1 to 255 bytes"));
    }
    Ok(())
}

/// The shape every room version's room id shares: `!`, at most 255 bytes, no NUL. The
/// receiver checks the version-specific shape once it knows the room.
fn check_room_id(room_id: &str) -> Result<(), WireError> {
    let ok = room_id.len() >= 2
        && room_id.len() <= ID_BYTES_MAX
        && room_id.starts_with('!')
        && !room_id.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(WireError::invalid_param("roomId", "must be '!' and 1 to 254 bytes, without NUL"))
    }
}

fn check_user_id(user_id: &str) -> Result<(), WireError> {
    ids::parse_user_id(user_id)
        .map(|_| ())
        .map_err(|e| WireError::invalid_param("userId", e.problem))
}

/// A room version string: 1 to 32 code points from `a-z 0-9 . -` (spec digest events.md §3).
fn check_room_version(name: &str, version: &str) -> Result<(), WireError> {
    let ok = !version.is_empty()
        && version.len() <= ROOM_VERSION_CHARS_MAX
        && version
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else if name.starts_with('$') {
        Err(WireError::bad_json(name, "room version must be 1 to 32 of a-z 0-9 . -"))
    } else {
        Err(WireError::invalid_param(name, "room version must be 1 to 32 of a-z 0-9 . -"))
    }
}

fn check_versions(ver: &[String]) -> Result<(), WireError> {
    ver.iter().try_for_each(|version| check_room_version("ver", version))
}

fn check_count_param(name: &str, value: u64) -> Result<(), WireError> {
    if value > INT_MAX as u64 {
        return Err(WireError::invalid_param(name, "must be at most 2^53-1"));
    }
    Ok(())
}

fn parse_count_param(name: &str, text: &str) -> Result<u64, WireError> {
    let digits_ok =
        !text.is_empty() && text.len() <= 16 && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok {
        return Err(WireError::invalid_param(name, "must be a non-negative decimal integer"));
    }
    let value: u64 = text.parse().expect("at most 16 decimal digits fit in u64");
    check_count_param(name, value)?;
    Ok(value)
}

// ---------------------------------------------------------------------------------------
// Percent-encoding and the query string
// ---------------------------------------------------------------------------------------

/// Whether a byte is "unreserved" (RFC 3986 §2.3) and so written as is.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Appends `text` percent-encoded: every byte but the unreserved ones becomes `%XX`.
fn percent_encode(out: &mut String, text: &str) {
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

fn push_segment(target: &mut String, text: &str) {
    target.push('/');
    percent_encode(target, text);
}

/// Decodes `%XX` escapes; other visible ASCII is taken literally, and in a query `+` means
/// a space (HTML form encoding, which HTTP servers apply to query strings). The result
/// must be UTF-8.
fn percent_decode(raw: &str, plus_is_space: bool) -> Result<String, WireError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|&b| char::from(b).to_digit(16));
                let (Some(high), Some(low)) = (hex(index + 1), hex(index + 2)) else {
                    return Err(WireError::BadTarget {
                        problem: format!("bad percent-encoding in {:?}", echo(raw)),
                    });
                };
                out.push(u8::try_from(high * 16 + low).expect("two hex digits fit in a byte"));
                index += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                index += 1;
            }
            b => {
                out.push(b);
                index += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| WireError::BadTarget {
        problem: format!("percent-encoding of {:?} is not UTF-8", echo(raw)),
    })
}

fn path_param(raw: &str, name: &str) -> Result<String, WireError> {
    let text = percent_decode(raw, false)?;
    if text.is_empty() {
        return Err(WireError::invalid_param(name, "must not be empty"));
    }
    Ok(text)
}

fn path_event_id(raw: &str) -> Result<EventId, WireError> {
    let text = path_param(raw, "eventId")?;
    EventId::parse(&text).map_err(|e| WireError::invalid_param("eventId", e.problem))
}

/// Query parameters in order, decoded; or, when building, the encoded query string.
#[derive(Default)]
struct Query {
    pairs: Vec<(String, String)>,
    encoded: String,
}

impl Query {
    fn push(&mut self, name: &str, value: &str) {
        self.encoded.push(if self.encoded.is_empty() { '?' } else { '&' });
        percent_encode(&mut self.encoded, name);
        self.encoded.push('=');
        percent_encode(&mut self.encoded, value);
    }

    /// Parses `a=1&b=2`; a pair without `=` has an empty value, empty pairs are skipped.
    fn parse(raw: &str) -> Result<Query, WireError> {
        let mut pairs = Vec::new();
        for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((percent_decode(name, true)?, percent_decode(value, true)?));
        }
        Ok(Query { pairs, encoded: String::new() })
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs.iter().filter(move |(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// A single-valued parameter. Repeating it is an error ([digest]: two readings of one
    /// request would let servers disagree, as with duplicate JSON keys).
    fn single(&self, name: &str) -> Result<Option<&str>, WireError> {
        let mut first = None;
        for (key, value) in &self.pairs {
            if key != name {
                continue;
            }
            if first.is_some() {
                return Err(WireError::invalid_param(name, "given more than once"));
            }
            first = Some(value.as_str());
        }
        Ok(first)
    }

    fn event_id(&self, name: &str) -> Result<EventId, WireError> {
        let text = self.single(name)?.ok_or_else(|| WireError::missing_param(name))?;
        EventId::parse(text).map_err(|e| WireError::invalid_param(name, e.problem))
    }
}

// ---------------------------------------------------------------------------------------
// JSON bodies
// ---------------------------------------------------------------------------------------

fn encode_body(body: &Object) -> Vec<u8> {
    canonical_json::encode_object(body)
        .unwrap_or_else(|e| panic!("outgoing message is not canonical JSON: {e}"))
}

/// Parses an untrusted body: present, within `max` bytes, strict canonical-JSON numbers,
/// and a JSON object (spec digest §1).
fn parse_body(body: Option<&[u8]>, max: usize) -> Result<Object, WireError> {
    let Some(bytes) = body else {
        return Err(WireError::NotJson { problem: "missing body".into() });
    };
    if bytes.len() > max {
        return Err(WireError::BodyTooLarge { bytes: len_u64(bytes.len()), max: len_u64(max) });
    }
    match canonical_json::parse(bytes, Numbers::IntegerLiterals) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(WireError::NotJson { problem: "the body must be a JSON object".into() }),
        Err(e) => Err(WireError::NotJson { problem: echo(&e.to_string()) }),
    }
}

fn transaction_json(transaction: &Transaction) -> Object {
    let mut body = Object::new();
    body.insert("origin".into(), Value::String(transaction.origin.clone()));
    body.insert("origin_server_ts".into(), Value::from(transaction.origin_server_ts));
    body.insert("pdus".into(), objects_json(&transaction.pdus));
    if !transaction.edus.is_empty() {
        let edus = transaction
            .edus
            .iter()
            .map(|edu| {
                let mut object = Object::new();
                object.insert("edu_type".into(), Value::String(edu.edu_type.clone()));
                object.insert("content".into(), Value::Object(edu.content.clone()));
                Value::Object(object)
            })
            .collect();
        body.insert("edus".into(), Value::Array(edus));
    }
    body
}

fn transaction_from_json(mut body: Object, use_: TransactionUse) -> Result<Transaction, WireError> {
    // Count first, so that an oversized transaction is refused before any PDU is looked at
    // ([impl] as Synapse does).
    if use_ == TransactionUse::Send {
        if let Some(Value::Array(pdus)) = body.get("pdus") {
            if pdus.len() > TRANSACTION_PDUS_MAX {
                return Err(WireError::TooManyPdus { count: len_u64(pdus.len()) });
            }
        }
        if let Some(Value::Array(edus)) = body.get("edus") {
            if edus.len() > TRANSACTION_EDUS_MAX {
                return Err(WireError::TooManyEdus { count: len_u64(edus.len()) });
            }
        }
    }
    let origin =
        take_string(&mut body, "origin")?.ok_or_else(|| WireError::missing_param("$.origin"))?;
    let origin_server_ts = take_integer(&mut body, "origin_server_ts")?
        .ok_or_else(|| WireError::missing_param("$.origin_server_ts"))?;
    let pdus =
        take_objects(&mut body, "pdus")?.ok_or_else(|| WireError::missing_param("$.pdus"))?;
    let mut edus = Vec::new();
    for (index, mut edu) in
        take_objects(&mut body, "edus")?.unwrap_or_default().into_iter().enumerate()
    {
        let path = format!("$.edus[{index}]");
        let edu_type = match edu.remove("edu_type") {
            Some(Value::String(edu_type)) => edu_type,
            Some(_) => {
                return Err(WireError::bad_json(&format!("{path}.edu_type"), "must be a string"));
            }
            None => return Err(WireError::missing_param(&format!("{path}.edu_type"))),
        };
        let content = match edu.remove("content") {
            Some(Value::Object(content)) => content,
            Some(_) => {
                return Err(WireError::bad_json(&format!("{path}.content"), "must be an object"));
            }
            None => return Err(WireError::missing_param(&format!("{path}.content"))),
        };
        edus.push(Edu { edu_type, content });
    }
    Ok(Transaction { origin, origin_server_ts, pdus, edus })
}

fn objects_json(objects: &[Object]) -> Value {
    Value::Array(objects.iter().cloned().map(Value::Object).collect())
}

fn event_ids_json(ids: &[EventId]) -> Value {
    Value::Array(ids.iter().map(|id| Value::String(id.as_str().to_owned())).collect())
}

fn take_string(body: &mut Object, key: &str) -> Result<Option<String>, WireError> {
    match body.remove(key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(WireError::bad_json(&format!("$.{key}"), "must be a string")),
    }
}

fn take_integer(body: &mut Object, key: &str) -> Result<Option<i64>, WireError> {
    match body.remove(key) {
        None => Ok(None),
        // The strict parser admits only integers within ±(2^53-1), which fit in i64.
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            None => Err(WireError::bad_json(&format!("$.{key}"), "must be an integer")),
        },
        Some(_) => Err(WireError::bad_json(&format!("$.{key}"), "must be an integer")),
    }
}

fn take_object(body: &mut Object, key: &str) -> Result<Option<Object>, WireError> {
    match body.remove(key) {
        None => Ok(None),
        Some(Value::Object(object)) => Ok(Some(object)),
        Some(_) => Err(WireError::bad_json(&format!("$.{key}"), "must be an object")),
    }
}

/// An array of objects (raw PDUs or EDUs). Any other element fails the whole message
/// ([digest]: only a well-formed PDU object can be judged on its own).
fn take_objects(body: &mut Object, key: &str) -> Result<Option<Vec<Object>>, WireError> {
    let Some(value) = body.remove(key) else { return Ok(None) };
    let Value::Array(items) = value else {
        return Err(WireError::bad_json(&format!("$.{key}"), "must be an array of objects"));
    };
    let mut objects = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let Value::Object(object) = item else {
            return Err(WireError::bad_json(&format!("$.{key}[{index}]"), "must be an object"));
        };
        objects.push(object);
    }
    Ok(Some(objects))
}

/// A required array of event ids.
fn take_event_ids(body: &mut Object, key: &str) -> Result<Vec<EventId>, WireError> {
    let path = format!("$.{key}");
    let Some(value) = body.remove(key) else { return Err(WireError::missing_param(&path)) };
    strings_from_json(value, &path)?
        .iter()
        .enumerate()
        .map(|(index, text)| {
            EventId::parse(text)
                .map_err(|e| WireError::bad_json(&format!("{path}[{index}]"), e.problem))
        })
        .collect()
}

fn strings_from_json(value: Value, path: &str) -> Result<Vec<String>, WireError> {
    let Value::Array(items) = value else {
        return Err(WireError::bad_json(path, "must be an array of strings"));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(text) => Ok(text),
            _ => Err(WireError::bad_json(&format!("{path}[{index}]"), "must be a string")),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

/// Untrusted text cut to [`ECHO_CHARS_MAX`] characters, so that errors stay bounded.
fn echo(text: &str) -> String {
    if text.chars().count() <= ECHO_CHARS_MAX {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(ECHO_CHARS_MAX).collect();
        cut.push('…');
        cut
    }
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).expect("lengths fit in u64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Object {
        match value {
            Value::Object(object) => object,
            _ => panic!("not an object"),
        }
    }

    fn event_id(text: &str) -> EventId {
        EventId::parse(text).unwrap()
    }

    fn http(method: Method, target: &str, body: Option<&str>) -> HttpRequest {
        HttpRequest {
            method,
            path_and_query: target.to_owned(),
            body: body.map(|b| b.as_bytes().to_vec()),
        }
    }

    /// Encodes `request`, checks the exact method, target and body, and decodes it back.
    fn check_encoding(request: Request, method: Method, target: &str, body: Option<&str>) {
        let encoded = request.to_http();
        assert_eq!(encoded.method, method);
        assert_eq!(encoded.path_and_query, target);
        assert_eq!(encoded.body.as_deref().map(|b| std::str::from_utf8(b).unwrap()), body);
        assert_eq!(Request::from_http(&encoded).unwrap(), request);
    }

    /// Decodes a request that must fail with `status` and `errcode`.
    fn check_refused(method: Method, target: &str, body: Option<&str>, status: u16, errcode: &str) {
        let error = Request::from_http(&http(method, target, body)).unwrap_err();
        let response = error.to_error_response();
        assert_eq!(
            (response.status, response.errcode.as_str()),
            (status, errcode),
            "{method} {target}: {error}"
        );
        // The error response itself encodes and decodes for any endpoint.
        let encoded = error.to_response().to_http();
        assert_eq!(encoded.status, status);
        for endpoint in Endpoint::ALL {
            assert_eq!(Response::from_http(endpoint, &encoded).unwrap(), error.to_response());
        }
    }

    fn pdu_stub(n: i64) -> Object {
        object(json!({"type": "m.room.message", "depth": n}))
    }

    #[test]
    fn every_endpoint_encodes_to_the_spec_path() {
        let room = "!r:hs1".to_owned();
        let alice = "@alice:hs2".to_owned();
        check_encoding(
            Request::SendTransaction {
                txn_id: "17.0".into(),
                transaction: Transaction {
                    origin: "hs1".into(),
                    origin_server_ts: 1000,
                    pdus: vec![pdu_stub(1)],
                    edus: vec![Edu { edu_type: "m.typing".into(), content: Object::new() }],
                },
            },
            Method::Put,
            "/_matrix/federation/v1/send/17.0",
            Some(
                r#"{"edus":[{"content":{},"edu_type":"m.typing"}],"origin":"hs1","origin_server_ts":1000,"pdus":[{"depth":1,"type":"m.room.message"}]}"#,
            ),
        );
        check_encoding(
            Request::GetEvent { event_id: event_id("$e/1") },
            Method::Get,
            "/_matrix/federation/v1/event/%24e%2F1",
            None,
        );
        check_encoding(
            Request::GetStateIds { room_id: room.clone(), event_id: event_id("$e") },
            Method::Get,
            "/_matrix/federation/v1/state_ids/%21r%3Ahs1?event_id=%24e",
            None,
        );
        check_encoding(
            Request::GetState { room_id: room.clone(), event_id: event_id("$e") },
            Method::Get,
            "/_matrix/federation/v1/state/%21r%3Ahs1?event_id=%24e",
            None,
        );
        check_encoding(
            Request::GetEventAuth { room_id: room.clone(), event_id: event_id("$e") },
            Method::Get,
            "/_matrix/federation/v1/event_auth/%21r%3Ahs1/%24e",
            None,
        );
        check_encoding(
            Request::Backfill {
                room_id: room.clone(),
                v: vec![event_id("$a"), event_id("$b")],
                limit: 20,
            },
            Method::Get,
            "/_matrix/federation/v1/backfill/%21r%3Ahs1?v=%24a&v=%24b&limit=20",
            None,
        );
        check_encoding(
            Request::GetMissingEvents {
                room_id: room.clone(),
                earliest_events: vec![event_id("$a")],
                latest_events: vec![event_id("$b")],
                limit: 10,
                min_depth: 0,
            },
            Method::Post,
            "/_matrix/federation/v1/get_missing_events/%21r%3Ahs1",
            Some(r#"{"earliest_events":["$a"],"latest_events":["$b"]}"#),
        );
        check_encoding(
            Request::GetMissingEvents {
                room_id: room.clone(),
                earliest_events: vec![],
                latest_events: vec![event_id("$b")],
                limit: 20,
                min_depth: 7,
            },
            Method::Post,
            "/_matrix/federation/v1/get_missing_events/%21r%3Ahs1",
            Some(r#"{"earliest_events":[],"latest_events":["$b"],"limit":20,"min_depth":7}"#),
        );
        check_encoding(
            Request::MakeJoin {
                room_id: room.clone(),
                user_id: alice.clone(),
                ver: vec!["11".into(), "12".into()],
            },
            Method::Get,
            "/_matrix/federation/v1/make_join/%21r%3Ahs1/%40alice%3Ahs2?ver=11&ver=12",
            None,
        );
        check_encoding(
            Request::SendJoin {
                room_id: room.clone(),
                event_id: event_id("$j"),
                omit_members: true,
                pdu: pdu_stub(3),
            },
            Method::Put,
            "/_matrix/federation/v2/send_join/%21r%3Ahs1/%24j?omit_members=true",
            Some(r#"{"depth":3,"type":"m.room.message"}"#),
        );
        check_encoding(
            Request::Invite {
                room_id: room.clone(),
                event_id: event_id("$i"),
                room_version: "12".into(),
                event: pdu_stub(4),
                invite_room_state: vec![pdu_stub(1)],
            },
            Method::Put,
            "/_matrix/federation/v2/invite/%21r%3Ahs1/%24i",
            Some(
                r#"{"event":{"depth":4,"type":"m.room.message"},"invite_room_state":[{"depth":1,"type":"m.room.message"}],"room_version":"12"}"#,
            ),
        );
        check_encoding(
            Request::MakeLeave { room_id: room.clone(), user_id: alice.clone() },
            Method::Get,
            "/_matrix/federation/v1/make_leave/%21r%3Ahs1/%40alice%3Ahs2",
            None,
        );
        check_encoding(
            Request::SendLeave {
                room_id: room.clone(),
                event_id: event_id("$l"),
                pdu: pdu_stub(5),
            },
            Method::Put,
            "/_matrix/federation/v2/send_leave/%21r%3Ahs1/%24l",
            Some(r#"{"depth":5,"type":"m.room.message"}"#),
        );
        check_encoding(
            Request::MakeKnock { room_id: room.clone(), user_id: alice, ver: vec!["12".into()] },
            Method::Get,
            "/_matrix/federation/v1/make_knock/%21r%3Ahs1/%40alice%3Ahs2?ver=12",
            None,
        );
        check_encoding(
            Request::SendKnock { room_id: room, event_id: event_id("$k"), pdu: pdu_stub(6) },
            Method::Put,
            "/_matrix/federation/v1/send_knock/%21r%3Ahs1/%24k",
            Some(r#"{"depth":6,"type":"m.room.message"}"#),
        );
    }

    #[test]
    fn decoding_is_lenient_where_http_is() {
        // Literal `!`, `$`, `:`, `@` in the path, lower-case escapes, `+` as a space in the
        // query, an unknown query parameter, defaults for omitted body fields.
        let request = Request::from_http(&http(
            Method::Post,
            "/_matrix/federation/v1/get_missing_events/!r:hs1?x=%7e",
            Some(r#" {"earliest_events": [], "latest_events": ["$b"], "extra": 1} "#),
        ))
        .unwrap();
        assert_eq!(
            request,
            Request::GetMissingEvents {
                room_id: "!r:hs1".into(),
                earliest_events: vec![],
                latest_events: vec![event_id("$b")],
                limit: GET_MISSING_EVENTS_DEFAULT_LIMIT,
                min_depth: GET_MISSING_EVENTS_DEFAULT_MIN_DEPTH,
            }
        );
        let request = Request::from_http(&http(
            Method::Get,
            "/_matrix/federation/v1/make_join/!r:hs1/@alice:hs2",
            Some("ignored: GET bodies mean nothing"),
        ))
        .unwrap();
        // No `ver`: the spec's default applies, which the receiver reads from the constant.
        assert_eq!(
            request,
            Request::MakeJoin {
                room_id: "!r:hs1".into(),
                user_id: "@alice:hs2".into(),
                ver: vec![]
            }
        );
        let request = Request::from_http(&http(
            Method::Get,
            "/_matrix/federation/v1/state_ids/%21r%3ahs1?event_id=%24a+b",
            None,
        ))
        .unwrap();
        assert_eq!(
            request,
            Request::GetStateIds { room_id: "!r:hs1".into(), event_id: event_id("$a b") }
        );
    }

    #[test]
    fn malformed_requests_get_the_spec_error() {
        use Method::{Get, Post, Put};
        let send = "/_matrix/federation/v1/send/t1";
        let txn = |pdus: usize, edus: usize| {
            let pdus: Vec<Value> = (0..pdus).map(|_| json!({})).collect();
            let edus: Vec<Value> =
                (0..edus).map(|_| json!({"edu_type": "m.typing", "content": {}})).collect();
            json!({"origin": "hs1", "origin_server_ts": 1, "pdus": pdus, "edus": edus}).to_string()
        };
        let cases: &[(Method, &str, Option<&str>, u16, &str)] = &[
            (Get, "/_matrix/federation/v1/nope/x", None, 404, "M_UNRECOGNIZED"),
            (Get, "/_matrix/client/v3/sync", None, 404, "M_UNRECOGNIZED"),
            (Get, "/_matrix/federation/v1", None, 404, "M_UNRECOGNIZED"),
            (Put, "/_matrix/federation/v1/send_join/!r:h/$e", Some("{}"), 404, "M_UNRECOGNIZED"),
            (Get, "/_matrix/federation/v1/send/t1/extra", None, 404, "M_UNRECOGNIZED"),
            (Get, send, None, 405, "M_UNRECOGNIZED"),
            (Post, send, Some("{}"), 405, "M_UNRECOGNIZED"),
            (Method::Delete, "/_matrix/federation/v1/event/$e", None, 405, "M_UNRECOGNIZED"),
            (Get, "/_matrix/federation/v1/event/$e%2", None, 400, "M_INVALID_PARAM"),
            (Get, "/_matrix/federation/v1/event/$e%zz", None, 400, "M_INVALID_PARAM"),
            (Get, "/_matrix/federation/v1/event/$%ff", None, 400, "M_INVALID_PARAM"),
            (Get, "/_matrix/federation/v1/event/$a b", None, 400, "M_INVALID_PARAM"),
            (Get, "/_matrix/federation/v1/event/$é", None, 400, "M_INVALID_PARAM"),
            (Get, "/_matrix/federation/v1/event/nodollar", None, 400, "M_INVALID_PARAM"),
            (Get, "/_matrix/federation/v1/event/", None, 400, "M_INVALID_PARAM"),
            (Get, "/_matrix/federation/v1/state/!r:h", None, 400, "M_MISSING_PARAM"),
            (
                Get,
                "/_matrix/federation/v1/state/!r:h?event_id=$a&event_id=$b",
                None,
                400,
                "M_INVALID_PARAM",
            ),
            (Get, "/_matrix/federation/v1/state/r:h?event_id=$a", None, 400, "M_INVALID_PARAM"),
            (Get, "/_matrix/federation/v1/backfill/!r:h?limit=5", None, 400, "M_MISSING_PARAM"),
            (Get, "/_matrix/federation/v1/backfill/!r:h?v=$a", None, 400, "M_MISSING_PARAM"),
            (
                Get,
                "/_matrix/federation/v1/backfill/!r:h?v=$a&limit=-1",
                None,
                400,
                "M_INVALID_PARAM",
            ),
            (
                Get,
                "/_matrix/federation/v1/backfill/!r:h?v=$a&limit=9007199254740992",
                None,
                400,
                "M_INVALID_PARAM",
            ),
            (Get, "/_matrix/federation/v1/make_knock/!r:h/@a:h", None, 400, "M_MISSING_PARAM"),
            (
                Get,
                "/_matrix/federation/v1/make_join/!r:h/@a:h?ver=V1",
                None,
                400,
                "M_INVALID_PARAM",
            ),
            (Get, "/_matrix/federation/v1/make_join/!r:h/alice", None, 400, "M_INVALID_PARAM"),
            (
                Put,
                "/_matrix/federation/v2/send_join/!r:h/$e?omit_members=yes",
                Some("{}"),
                400,
                "M_INVALID_PARAM",
            ),
            (Put, send, None, 400, "M_NOT_JSON"),
            (Put, send, Some(""), 400, "M_NOT_JSON"),
            (Put, send, Some("[]"), 400, "M_NOT_JSON"),
            (Put, send, Some(r#"{"a":1,"a":2}"#), 400, "M_NOT_JSON"),
            (
                Put,
                send,
                Some(r#"{"origin":"hs1","origin_server_ts":1.5,"pdus":[]}"#),
                400,
                "M_NOT_JSON",
            ),
            (Put, send, Some(r#"{"origin_server_ts":1,"pdus":[]}"#), 400, "M_MISSING_PARAM"),
            (Put, send, Some(r#"{"origin":"hs1","origin_server_ts":1}"#), 400, "M_MISSING_PARAM"),
            (
                Put,
                send,
                Some(r#"{"origin":"hs1","origin_server_ts":"1","pdus":[]}"#),
                400,
                "M_BAD_JSON",
            ),
            (
                Put,
                send,
                Some(r#"{"origin":"hs 1","origin_server_ts":1,"pdus":[]}"#),
                400,
                "M_BAD_JSON",
            ),
            (
                Put,
                send,
                Some(r#"{"origin":"hs1","origin_server_ts":1,"pdus":[1]}"#),
                400,
                "M_BAD_JSON",
            ),
            (
                Put,
                send,
                Some(
                    r#"{"origin":"hs1","origin_server_ts":1,"pdus":[],"edus":[{"edu_type":"x"}]}"#,
                ),
                400,
                "M_MISSING_PARAM",
            ),
            (
                Put,
                send,
                Some(
                    r#"{"origin":"hs1","origin_server_ts":1,"pdus":[],"edus":[{"edu_type":1,"content":{}}]}"#,
                ),
                400,
                "M_BAD_JSON",
            ),
            (Put, send, Some(&txn(51, 0)), 400, "M_BAD_JSON"),
            (Put, send, Some(&txn(0, 101)), 400, "M_BAD_JSON"),
            (
                Put,
                "/_matrix/federation/v2/invite/!r:h/$e",
                Some(r#"{"event":{}}"#),
                400,
                "M_MISSING_PARAM",
            ),
            (
                Put,
                "/_matrix/federation/v2/invite/!r:h/$e",
                Some(r#"{"event":{},"room_version":"X"}"#),
                400,
                "M_BAD_JSON",
            ),
            (
                Post,
                "/_matrix/federation/v1/get_missing_events/!r:h",
                Some(r#"{"earliest_events":[],"latest_events":[],"limit":-1}"#),
                400,
                "M_BAD_JSON",
            ),
            (
                Post,
                "/_matrix/federation/v1/get_missing_events/!r:h",
                Some(r#"{"earliest_events":[],"latest_events":["x"]}"#),
                400,
                "M_BAD_JSON",
            ),
        ];
        for (method, target, body, status, errcode) in cases {
            check_refused(*method, target, *body, *status, errcode);
        }
        // Exactly at the limits is fine.
        assert!(Request::from_http(&http(Put, send, Some(&txn(50, 100)))).is_ok());
    }

    #[test]
    fn oversized_input_is_refused_before_it_is_parsed() {
        let long_target = format!("/_matrix/federation/v1/event/${}", "a".repeat(TARGET_BYTES_MAX));
        check_refused(Method::Get, &long_target, None, 414, "M_TOO_LARGE");
        let huge = vec![b' '; REQUEST_BODY_BYTES_MAX + 1];
        let request = HttpRequest {
            method: Method::Put,
            path_and_query: "/_matrix/federation/v1/send/t".into(),
            body: Some(huge),
        };
        let error = Request::from_http(&request).unwrap_err();
        assert_eq!(error.to_error_response().status, 413);
        assert_eq!(error.to_error_response().errcode, ErrCode::TooLarge);
        let response = HttpResponse { status: 200, body: vec![b' '; RESPONSE_BODY_BYTES_MAX + 1] };
        assert!(matches!(
            Response::from_http(Endpoint::GetEvent, &response),
            Err(WireError::BodyTooLarge { .. })
        ));
    }

    #[test]
    fn what_is_accepted_can_be_sent_on() {
        // A target of literal `$` fits the limit as received but not as re-encoded (`%24`):
        // it is refused, because mxsim could not have sent it.
        let ids: Vec<String> = (0..1000).map(|_| "v=$$$$$$$$$$$$".to_owned()).collect();
        let target = format!("/_matrix/federation/v1/backfill/!r:h?{}&limit=1", ids.join("&"));
        assert!(target.len() <= TARGET_BYTES_MAX);
        let error = Request::from_http(&http(Method::Get, &target, None)).unwrap_err();
        assert!(matches!(error, WireError::TargetTooLong { .. }), "{error}");
        // A body without its optional fields does not grow when re-encoded.
        let body = r#"{"earliest_events":[],"latest_events":[]}"#;
        let request = Request::from_http(&http(
            Method::Post,
            "/_matrix/federation/v1/get_missing_events/!r:h",
            Some(body),
        ))
        .unwrap();
        assert_eq!(request.to_http().body.unwrap(), body.as_bytes());
        let error = HttpResponse { status: 403, body: br#"{"errcode":"M_FORBIDDEN"}"#.to_vec() };
        let decoded = Response::from_http(Endpoint::GetState, &error).unwrap();
        assert_eq!(decoded.to_http(), error);
    }

    #[test]
    fn responses_decode_by_endpoint() {
        let decode = |endpoint, status, body: Value| {
            Response::from_http(
                endpoint,
                &HttpResponse { status, body: body.to_string().into_bytes() },
            )
        };
        let results = decode(
            Endpoint::SendTransaction,
            200,
            json!({"pdus": {"$ok": {}, "$bad": {"error": "not allowed"}}}),
        )
        .unwrap();
        let Response::SendTransaction { pdus } = &results else { panic!("{results:?}") };
        assert_eq!(pdus[&event_id("$ok")], Ok(()));
        assert_eq!(pdus[&event_id("$bad")], Err("not allowed".to_owned()));
        assert_eq!(
            Response::from_http(Endpoint::SendTransaction, &results.to_http()).unwrap(),
            results
        );

        let error = decode(
            Endpoint::MakeJoin,
            400,
            json!({"errcode": "M_INCOMPATIBLE_ROOM_VERSION", "error": "no", "room_version": "12"}),
        )
        .unwrap();
        assert_eq!(
            error,
            Response::Error(ErrorResponse {
                status: 400,
                errcode: ErrCode::IncompatibleRoomVersion,
                error: "no".into(),
                room_version: Some("12".into()),
            })
        );
        let other = decode(Endpoint::GetEvent, 500, json!({"errcode": "ORG_X"})).unwrap();
        assert_eq!(
            other,
            Response::Error(ErrorResponse::new(500, ErrCode::Other("ORG_X".into()), ""))
        );

        // Malformed answers are errors, not panics.
        let bad: &[(Endpoint, u16, Value)] = &[
            (Endpoint::GetEvent, 302, json!({})),
            (Endpoint::GetEvent, 201, json!({})),
            (Endpoint::GetEvent, 404, json!({"error": "no code"})),
            (Endpoint::GetEvent, 200, json!({"origin": "hs1", "origin_server_ts": 1, "pdus": []})),
            (
                Endpoint::GetEvent,
                200,
                json!({"origin": "hs1", "origin_server_ts": 1, "pdus": [{}, {}]}),
            ),
            (Endpoint::SendTransaction, 200, json!({"pdus": {"nodollar": {}}})),
            (Endpoint::SendTransaction, 200, json!({"pdus": {"$e": {"error": 1}}})),
            (Endpoint::SendTransaction, 200, json!({})),
            (Endpoint::GetStateIds, 200, json!({"pdu_ids": []})),
            (Endpoint::GetState, 200, json!({"pdus": [], "auth_chain": [[]]})),
            (Endpoint::MakeKnock, 200, json!({"event": {}})),
            (Endpoint::MakeJoin, 200, json!({"room_version": "12"})),
            (
                Endpoint::SendJoin,
                200,
                json!({"state": [], "auth_chain": [], "members_omitted": true}),
            ),
            (
                Endpoint::SendJoin,
                200,
                json!({"state": [], "auth_chain": [], "members_omitted": "yes"}),
            ),
            (
                Endpoint::SendJoin,
                200,
                json!({"state": [], "auth_chain": [], "servers_in_room": ["a b"]}),
            ),
            (Endpoint::SendKnock, 200, json!({})),
        ];
        for (endpoint, status, body) in bad {
            assert!(
                decode(*endpoint, *status, body.clone()).is_err(),
                "{endpoint:?} {status} {body}"
            );
        }
        let many: Object = (0..51).map(|i| (format!("$e{i}"), json!({}))).collect();
        assert_eq!(
            decode(Endpoint::SendTransaction, 200, json!({"pdus": many})).unwrap_err(),
            WireError::TooManyPdus { count: 51 }
        );
        // Backfill answers are not limited to 50 PDUs (the requester's limit bounds them).
        let pdus: Vec<Value> = (0..60).map(|_| json!({})).collect();
        assert!(
            decode(
                Endpoint::Backfill,
                200,
                json!({"origin": "hs1", "origin_server_ts": 1, "pdus": pdus})
            )
            .is_ok()
        );
        assert_eq!(
            decode(Endpoint::SendLeave, 200, json!({"anything": 1})).unwrap(),
            Response::SendLeave
        );
    }

    #[test]
    fn encoding_an_invalid_message_is_an_mxsim_bug() {
        let too_many = Request::SendTransaction {
            txn_id: "t".into(),
            transaction: Transaction {
                origin: "hs1".into(),
                origin_server_ts: 0,
                pdus: vec![Object::new(); 51],
                edus: vec![],
            },
        };
        assert_eq!(too_many.validate(), Err(WireError::TooManyPdus { count: 51 }));
        let result = std::panic::catch_unwind(|| too_many.to_http());
        assert!(result.is_err());
        let knock =
            Request::MakeKnock { room_id: "!r:h".into(), user_id: "@a:h".into(), ver: vec![] };
        assert_eq!(knock.validate(), Err(WireError::MissingParam { name: "ver".into() }));
    }

    #[test]
    fn errors_map_to_codes_and_statuses() {
        assert_eq!(ErrorResponse::forbidden("x").status, 403);
        assert_eq!(ErrorResponse::not_found("x").status, 404);
        assert_eq!(
            ErrorResponse::unable_to_authorise_join("x").errcode.as_str(),
            "M_UNABLE_TO_AUTHORISE_JOIN"
        );
        assert_eq!(
            ErrorResponse::unable_to_grant_join("x").errcode.as_str(),
            "M_UNABLE_TO_GRANT_JOIN"
        );
        assert_eq!(ErrorResponse::missing_param("x").errcode.as_str(), "M_MISSING_PARAM");
        assert_eq!(ErrorResponse::invalid_param("x").status, 400);
        assert_eq!(ErrorResponse::bad_json("x").errcode, ErrCode::BadJson);
        let incompatible = ErrorResponse::incompatible_room_version("12");
        assert_eq!((incompatible.status, incompatible.room_version.as_deref()), (400, Some("12")));
        for (code, name) in ErrCode::KNOWN {
            assert_eq!(ErrCode::parse(name), code);
            assert_eq!(code.as_str(), name);
        }
        // Texts echoed from input stay bounded.
        let error =
            Request::from_http(&http(Method::Get, &format!("/x/{}", "y".repeat(5000)), None))
                .unwrap_err();
        assert!(error.to_string().len() < 300, "{error}");
    }

    #[test]
    fn byte_counts_cover_the_request_line_and_body() {
        let request = Request::GetEvent { event_id: event_id("$e") };
        let encoded = request.to_http();
        assert_eq!(encoded.byte_count(), 3 + 1 + "/_matrix/federation/v1/event/%24e".len() as u64);
        assert_eq!(request.byte_count(), encoded.byte_count());
        let response = Response::SendLeave;
        assert_eq!(response.to_http().body, b"{}");
        assert_eq!(response.byte_count(), 3 + 2);
    }

    #[test]
    fn pdus_parse_once_the_room_version_is_known() {
        use crate::matrix::crypto::SigningKey;
        use crate::matrix::pdu;
        use crate::matrix::room_version::V11;
        let key = SigningKey::from_seed(&[1; 32], "ed25519:k").unwrap();
        let unsigned = object(json!({
            "type": "m.room.member", "state_key": "@a:hs1", "sender": "@a:hs1",
            "room_id": "!r:hs1", "origin_server_ts": 1, "depth": 3,
            "content": {"membership": "join"}, "auth_events": [], "prev_events": [],
        }));
        let signed = pdu::build_signed(&V11, unsigned, "hs1", &key).unwrap();
        let raw = pdu_to_wire(&signed);
        assert_eq!(pdu_room_id(&raw), Some("!r:hs1"));
        let parsed = parse_pdus(&V11, vec![raw, object(json!({"type": 1}))]);
        assert_eq!(parsed[0].as_ref().unwrap(), &signed);
        assert!(parsed[1].is_err());
        assert_eq!(check_path_event_id(signed.event_id(), &signed), Ok(()));
        let wrong = check_path_event_id(&event_id("$other"), &signed).unwrap_err();
        assert_eq!(wrong.to_error_response().errcode, ErrCode::InvalidParam);
    }
}
