//! Federation requests ([`Request`]): validation, encoding to an [`HttpRequest`] and
//! decoding from one.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::homeserver::wire::codec::{
    PduLists, check_count_param, check_room_id, check_room_version, check_txn_id, check_user_id,
    check_versions, encode_body, event_ids_json, objects_json, parse_body, parse_count_param,
    take_event_ids, take_integer, take_object, take_objects, take_string,
};
use crate::homeserver::wire::endpoint::{Endpoint, PREFIX, push_segment, segment_len};
use crate::homeserver::wire::error::WireError;
use crate::homeserver::wire::http::{HttpRequest, Method, RequestBody};
use crate::homeserver::wire::target::{Query, path_event_id, path_param};
use crate::homeserver::wire::transaction::{
    Edu, LastTransactionBody, OutgoingPdu, Transaction, TransactionUse,
    encode_outgoing_transaction, encode_transaction, transaction_from_json, transaction_json,
    validate_transaction,
};
use crate::homeserver::wire::{
    GET_MISSING_EVENTS_DEFAULT_LIMIT, GET_MISSING_EVENTS_DEFAULT_MIN_DEPTH, REQUEST_BODY_BYTES_MAX,
    TARGET_BYTES_MAX, TRANSACTION_PDUS_MAX, echo, len_u64,
};
use crate::matrix::canonical_json::{INT_MAX, Mark, Numbers, Object, Reader};
use crate::matrix::ids::EventId;

// ---------------------------------------------------------------------------------------
// Message bodies
// ---------------------------------------------------------------------------------------

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
        let target_len = self.target_len();
        if target_len > TARGET_BYTES_MAX {
            return Err(WireError::TargetTooLong { bytes: len_u64(target_len) });
        }
        Ok(())
    }

    /// The length of the encoded target: counted for a `/send` (every transaction
    /// received is validated, and building its target only to measure it was half a
    /// percent of a hundred-server run), encoded for the others.
    pub(super) fn target_len(&self) -> usize {
        match self {
            Request::SendTransaction { txn_id, .. } => {
                let endpoint = Endpoint::SendTransaction;
                let name = PREFIX.len() + endpoint.api_version().len() + 1 + endpoint.name().len();
                name + segment_len(txn_id)
            }
            _ => self.encode_parts(false).0.len(),
        }
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
        // A transaction's body is written straight from its PDUs (`encode_transaction`), not
        // first copied into a body object: a server sends the same PDUs to every peer.
        let transaction = match self {
            Request::SendTransaction { transaction, .. } => Some(transaction),
            _ => None,
        };
        let (target, body) = self.encode_parts(transaction.is_none());
        assert!(target.len() <= TARGET_BYTES_MAX, "request target of {} bytes", target.len());
        let body = match transaction {
            Some(transaction) => Some(RequestBody::from(encode_transaction(transaction))),
            None => body.map(|object| RequestBody::from(encode_body(&object))),
        };
        assert_eq!(body.is_some(), endpoint.method().has_body());
        if let Some(bytes) = &body {
            assert!(bytes.len() <= REQUEST_BODY_BYTES_MAX, "request body of {} bytes", bytes.len());
        }
        HttpRequest { method: endpoint.method(), path_and_query: target, body }
    }

    /// The `PUT /send/{txnId}` request of these PDUs and EDUs: the [`Request::to_http`] of
    /// [`Request::SendTransaction`] with the PDUs' JSON, byte for byte, written from the
    /// encoding each PDU keeps instead of from a copy of it. Panics as `to_http` does.
    ///
    /// `last` is the body of the previous call: when this transaction has the same origin,
    /// timestamp and PDUs (the same shared encodings) and no EDUs, its body is the same
    /// bytes and is shared rather than written again, as for the same PDUs sent to many
    /// destinations at once. Otherwise the body is written and becomes `last`.
    pub fn send_transaction_http(
        txn_id: &str,
        origin: &str,
        origin_server_ts: i64,
        pdus: &[std::sync::Arc<OutgoingPdu>],
        edus: &[Edu],
        last: &mut LastTransactionBody,
    ) -> HttpRequest {
        // Everything but the PDUs is checked on a request without them; the PDUs' count
        // here, their JSON as it is encoded (`OutgoingPdu::bytes`).
        let shell = Request::SendTransaction {
            txn_id: txn_id.to_owned(),
            transaction: Transaction {
                origin: origin.to_owned(),
                origin_server_ts,
                pdus: Vec::new(),
                edus: edus.to_vec(),
            },
        };
        if let Err(error) = shell.validate() {
            panic!("encoding an invalid send request: {error}");
        }
        assert!(pdus.len() <= TRANSACTION_PDUS_MAX, "{} PDUs in a transaction", pdus.len());
        let (target, _) = shell.encode_parts(false);
        let body = match last.shared(origin, origin_server_ts, pdus, edus) {
            Some(body) => body,
            None => {
                let body = encode_outgoing_transaction(origin, origin_server_ts, pdus, edus);
                let body = RequestBody::from(body);
                if edus.is_empty() {
                    last.keep(origin, origin_server_ts, pdus, &body);
                }
                body
            }
        };
        assert!(body.len() <= REQUEST_BODY_BYTES_MAX, "request body of {} bytes", body.len());
        HttpRequest { method: shell.endpoint().method(), path_and_query: target, body: Some(body) }
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
                    get_missing_events_body(earliest_events, latest_events, *limit, *min_depth)
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
                with_body.then(|| invite_body(room_version, event, invite_room_state))
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
        let (endpoint, params, query) = route(http)?;
        let body = if endpoint.method().has_body() {
            Some(parse_body(http.body.as_deref(), REQUEST_BODY_BYTES_MAX)?)
        } else {
            None
        };
        let request = decode_request(endpoint, &params, &query, body)?;
        request.validate()?;
        Ok(request)
    }

    /// [`Request::from_http`] for a receiver that may hold some of a `/send` transaction's
    /// PDUs already: `known` is asked about the exact bytes of each PDU of the body, and
    /// those it answers for are not parsed. For a [`Request::SendTransaction`] the list
    /// has one entry per PDU of the body, in order: the answer of `known`, or `None` for
    /// each PDU that was parsed into the transaction's `pdus` (which keep their order).
    /// For any other request the list is empty.
    ///
    /// What is accepted, and every error, is exactly `from_http`'s: a PDU is left out only
    /// if `known` recognised its bytes, which a receiver does only for bytes it parsed and
    /// checked before, so the rest of the body is parsed as it was sent (without those
    /// PDUs); on any surprise (a body that does not scan, a parse that fails) the whole
    /// body is parsed as `from_http` parses it. `known` must answer from the bytes alone:
    /// it may be asked about a PDU again when the body is decoded a second way.
    pub fn from_http_knowing<K>(
        http: &HttpRequest,
        known: impl FnMut(&[u8]) -> Option<K>,
    ) -> Result<(Request, Vec<Option<K>>), WireError> {
        Request::from_http_scanning(http, None, known)
    }

    /// [`Request::from_http_knowing`], taking a `/send` body's scan from `scans` when it
    /// holds the scan of the very same bytes ([`SendScans`]); the request and every error
    /// are the same.
    pub fn from_http_scanning<K>(
        http: &HttpRequest,
        scans: Option<&SendScans>,
        mut known: impl FnMut(&[u8]) -> Option<K>,
    ) -> Result<(Request, Vec<Option<K>>), WireError> {
        let whole = |http: &HttpRequest| {
            let request = Request::from_http(http)?;
            let unknown = match &request {
                Request::SendTransaction { transaction, .. } => {
                    transaction.pdus.iter().map(|_| None).collect()
                }
                _ => Vec::new(),
            };
            Ok((request, unknown))
        };
        let is_send = http.method == Method::Put
            && http.path_and_query.starts_with(SEND_PATH)
            && http.body.as_ref().is_some_and(|body| body.len() <= REQUEST_BODY_BYTES_MAX);
        let Some(body) = http.body.as_deref().filter(|_| is_send) else { return whole(http) };
        if let Some(read) = read_send(http, scans, &mut known) {
            return Ok(read);
        }
        let Some(lists) = PduLists::scan(body, &["pdus"], Some(TRANSACTION_PDUS_MAX)) else {
            return whole(http);
        };
        let kinds = lists.ask(body, &mut known).remove("pdus").unwrap_or_default();
        if kinds.iter().all(Option::is_none) {
            return whole(http);
        }
        let known_at = |_: usize, index: usize| kinds[index].is_some();
        let without = HttpRequest {
            method: http.method,
            path_and_query: http.path_and_query.clone(),
            body: Some(RequestBody::from(lists.without(body, known_at))),
        };
        match Request::from_http(&without) {
            Ok(request @ Request::SendTransaction { .. }) => Ok((request, kinds)),
            _ => whole(http),
        }
    }

    /// Bytes this request costs on the wire (see [`HttpRequest::byte_count`]). Encodes it.
    pub fn byte_count(&self) -> u64 {
        self.to_http().byte_count()
    }
}

/// The first steps of [`Request::from_http`]: the target's length and characters, the
/// route (404, then 405), and the query's syntax. Returns the endpoint, its path
/// parameters (as many as it has) and the query.
fn route(http: &HttpRequest) -> Result<(Endpoint, Vec<&str>, Query), WireError> {
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
    let query = Query::parse(query.unwrap_or(""))?;
    let mut params = segments;
    params.drain(..2);
    Ok((endpoint, params, query))
}

/// [`Request::from_http_knowing`] for a `/send` body as servers send it, read in one pass
/// without its JSON tree: `origin`, `origin_server_ts`, `pdus`, and `edus` only when empty,
/// in any order. Each PDU's bytes are found by matching brackets and quotes and given to
/// `known`; one it does not recognise is read in full from where it starts, and must end
/// where the match ended. `None` for any other body, or any error: the caller then decodes
/// as before, so what is accepted and every error stay `from_http`'s. The scan (everything
/// but asking `known` and reading the unrecognised PDUs) is taken from `scans` when it
/// holds the scan of this very body.
///
/// The request returned is `from_http`'s for the body without the recognised PDUs: the
/// reader checks what it reads as `parse` does (the nesting limit, numbers, strings,
/// duplicate keys), and the recognised PDUs are bytes parsed and checked before.
pub(super) fn read_send<K>(
    http: &HttpRequest,
    scans: Option<&SendScans>,
    known: &mut impl FnMut(&[u8]) -> Option<K>,
) -> Option<(Request, Vec<Option<K>>)> {
    let (endpoint, params, _query) = route(http).ok()?;
    if endpoint != Endpoint::SendTransaction {
        return None;
    }
    let shared = http.body.as_ref()?;
    let body: &[u8] = shared;
    let (kept, made);
    let scan: &SendScan = match scans {
        Some(scans) => {
            kept = scans.scan(shared)?;
            &kept
        }
        None => {
            made = scan_send(body)?;
            &made
        }
    };
    let (mut pdus, mut kinds) = (Vec::new(), Vec::new());
    for &(start, mark, end) in &scan.pdus {
        let kind = known(&body[start..end]);
        if kind.is_none() {
            let mut whole = Reader::new(body, Numbers::IntegerLiterals);
            whole.seek(mark);
            let Value::Object(pdu) = whole.value().ok()? else { return None };
            if whole.offset() != end {
                return None;
            }
            pdus.push(pdu);
        }
        kinds.push(kind);
    }
    let transaction = Transaction {
        origin: scan.origin.clone(),
        origin_server_ts: scan.origin_server_ts,
        pdus,
        edus: Vec::new(),
    };
    let txn_id = path_param(params[0], "txnId").ok()?;
    let request = Request::SendTransaction { txn_id, transaction };
    request.validate().ok()?;
    Some((request, kinds))
}

/// What [`read_send`] finds in a `/send` body before it asks about or parses any PDU:
/// `origin`, `origin_server_ts`, and where each PDU starts ([`Reader::mark`] and offset)
/// and ends. A function of the body's bytes alone.
#[derive(Debug)]
pub struct SendScan {
    origin: String,
    origin_server_ts: i64,
    pdus: Vec<(usize, Mark, usize)>,
}

/// The scan of a `/send` body as servers send it (see [`read_send`]): `None` for a body of
/// any other shape, or any error, or more than [`TRANSACTION_PDUS_MAX`] PDUs.
fn scan_send(body: &[u8]) -> Option<SendScan> {
    let mut reader = Reader::new(body, Numbers::IntegerLiterals);
    if !reader.begin_object().ok()? {
        return None;
    }
    let (mut origin, mut origin_server_ts, mut pdus) = (None, None, None);
    while let Some(key) = reader.next_key_str().ok()? {
        match key {
            "origin" => match reader.value().ok()? {
                Value::String(text) => origin = Some(text),
                _ => return None,
            },
            "origin_server_ts" => match reader.value().ok()? {
                // The strict numbers admit only integers within ±(2^53-1).
                Value::Number(number) => origin_server_ts = Some(number.as_i64()?),
                _ => return None,
            },
            "pdus" => pdus = Some(scan_pdus(&mut reader)?),
            "edus" => {
                if !reader.begin_array().ok()? || reader.next_item().ok()? {
                    return None;
                }
            }
            _ => return None,
        }
    }
    reader.check_end().ok()?;
    Some(SendScan { origin: origin?, origin_server_ts: origin_server_ts?, pdus: pdus? })
}

/// Where each PDU of the `pdus` list at the reader's position starts and ends (see
/// [`scan_send`]).
fn scan_pdus(reader: &mut Reader<'_>) -> Option<Vec<(usize, Mark, usize)>> {
    if !reader.begin_array().ok()? {
        return None;
    }
    let mut pdus = Vec::new();
    while reader.next_item().ok()? {
        if pdus.len() == TRANSACTION_PDUS_MAX {
            return None;
        }
        let (start, mark) = (reader.offset(), reader.mark());
        reader.skip_value().ok()?;
        pdus.push((start, mark, reader.offset()));
    }
    Some(pdus)
}

/// The scan of the last `/send` body read, kept for the receivers that read the very same
/// body next: a transaction sent to many destinations is one shared [`RequestBody`], and
/// every receiver but the first takes its scan instead of finding the PDUs' ends again
/// (1.3% of a 100-server run). A scan is a function of the bytes, and the kept body is a
/// reference to them, so they cannot change while kept; each receiver still asks about
/// and parses the PDUs itself.
#[derive(Debug, Default)]
pub struct SendScans {
    last: Mutex<Option<(RequestBody, Arc<SendScan>)>>,
}

impl SendScans {
    /// The scan of `body`: the kept one if `body` is the very bytes it was made from.
    pub(super) fn scan(&self, body: &RequestBody) -> Option<Arc<SendScan>> {
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((kept, scan)) = last.as_ref() {
            if kept.is_shared_with(body) {
                return Some(Arc::clone(scan));
            }
        }
        let scan = Arc::new(scan_send(body)?);
        *last = Some((body.clone(), Arc::clone(&scan)));
        Some(scan)
    }
}

/// The target prefix of `PUT /send/{txnId}`.
const SEND_PATH: &str = "/_matrix/federation/v1/send/";

/// The body of `get_missing_events`; `limit` and `min_depth` are left out when they are the
/// defaults (see [`Request::encode_parts`]).
fn get_missing_events_body(
    earliest_events: &[EventId],
    latest_events: &[EventId],
    limit: u64,
    min_depth: i64,
) -> Object {
    let mut body = Object::new();
    body.insert("earliest_events".into(), event_ids_json(earliest_events));
    body.insert("latest_events".into(), event_ids_json(latest_events));
    if limit != GET_MISSING_EVENTS_DEFAULT_LIMIT {
        body.insert("limit".into(), Value::from(limit));
    }
    if min_depth != GET_MISSING_EVENTS_DEFAULT_MIN_DEPTH {
        body.insert("min_depth".into(), Value::from(min_depth));
    }
    body
}

/// The body of `invite` v2; `invite_room_state` is left out when empty.
fn invite_body(room_version: &str, event: &Object, invite_room_state: &[Object]) -> Object {
    let mut body = Object::new();
    body.insert("room_version".into(), Value::String(room_version.to_owned()));
    body.insert("event".into(), Value::Object(event.clone()));
    if !invite_room_state.is_empty() {
        body.insert("invite_room_state".into(), objects_json(invite_room_state));
    }
    body
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
