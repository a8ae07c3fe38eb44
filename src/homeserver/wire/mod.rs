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
//!
//! Out of scope by design: the `Authorization: X-Matrix` header (the simulated network
//! authenticates the origin, which the homeserver receives beside the request as
//! `Input::Request`'s `origin`), other headers, TLS, server discovery, and the endpoints the
//! simulator does not use (keys, directory, third-party invites, the removed v1
//! `send_join`/`send_leave`, which answer 404 `M_UNRECOGNIZED`).
//!
//! The module is split by concern: `http` (the HTTP shapes), `endpoint` (the endpoints,
//! their paths, percent-encoding and the query string), `request` and `response` (the
//! messages and their encoding), `error` (the standard error response and [`WireError`]),
//! and `codec` (the JSON body and field checks both directions share).

use serde_json::Value;

use crate::matrix::canonical_json::Object;
use crate::matrix::ids::{EventId, ID_BYTES_MAX};
use crate::matrix::pdu::{FormatError, PDU_BYTES_MAX, Pdu};
use crate::matrix::room_version::RoomVersionRules;

mod codec;
mod endpoint;
mod error;
mod http;
#[cfg(test)]
mod one_pass_tests;
mod request;
mod response;
mod target;
#[cfg(test)]
mod tests;
mod transaction;

pub use endpoint::Endpoint;
pub use error::{ErrCode, ErrorResponse, WireError};
pub use http::{HttpRequest, HttpResponse, Method, RequestBody};
pub use request::{Request, SendScans};
pub use response::{KnownPdus, MakeMembership, PduResult, Response, SendJoin};
pub use transaction::{Edu, LastTransactionBody, OutgoingPdu, Transaction};

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
