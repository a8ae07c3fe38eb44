//! The federation endpoints mxsim speaks ([`Endpoint`]: method, API version and name
//! segment), percent-encoding of path segments and query values, and the query string.

use std::fmt;

use crate::homeserver::wire::echo;
use crate::homeserver::wire::error::WireError;
use crate::homeserver::wire::http::Method;
use crate::matrix::ids::EventId;

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

pub(super) fn push_segment(target: &mut String, text: &str) {
    target.push('/');
    percent_encode(target, text);
}

/// Decodes `%XX` escapes; other visible ASCII is taken literally, and in a query `+` means
/// a space (HTML form encoding, which HTTP servers apply to query strings). The result
/// must be UTF-8.
pub(super) fn percent_decode(raw: &str, plus_is_space: bool) -> Result<String, WireError> {
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

pub(super) fn path_param(raw: &str, name: &str) -> Result<String, WireError> {
    let text = percent_decode(raw, false)?;
    if text.is_empty() {
        return Err(WireError::invalid_param(name, "must not be empty"));
    }
    Ok(text)
}

pub(super) fn path_event_id(raw: &str) -> Result<EventId, WireError> {
    let text = path_param(raw, "eventId")?;
    EventId::parse(&text).map_err(|e| WireError::invalid_param("eventId", e.problem))
}

/// Query parameters in order, decoded; or, when building, the encoded query string.
#[derive(Default)]
pub(super) struct Query {
    pairs: Vec<(String, String)>,
    pub(super) encoded: String,
}

impl Query {
    pub(super) fn push(&mut self, name: &str, value: &str) {
        self.encoded.push(if self.encoded.is_empty() { '?' } else { '&' });
        percent_encode(&mut self.encoded, name);
        self.encoded.push('=');
        percent_encode(&mut self.encoded, value);
    }

    /// Parses `a=1&b=2`; a pair without `=` has an empty value, empty pairs are skipped.
    pub(super) fn parse(raw: &str) -> Result<Query, WireError> {
        let mut pairs = Vec::new();
        for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((percent_decode(name, true)?, percent_decode(value, true)?));
        }
        Ok(Query { pairs, encoded: String::new() })
    }

    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs.iter().filter(move |(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// A single-valued parameter. Repeating it is an error ([digest]: two readings of one
    /// request would let servers disagree, as with duplicate JSON keys).
    pub(super) fn single(&self, name: &str) -> Result<Option<&str>, WireError> {
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

    pub(super) fn event_id(&self, name: &str) -> Result<EventId, WireError> {
        let text = self.single(name)?.ok_or_else(|| WireError::missing_param(name))?;
        EventId::parse(text).map_err(|e| WireError::invalid_param(name, e.problem))
    }
}
