//! Federation responses ([`Response`]: one success shape per endpoint, or the standard
//! error) and their bodies: validation, encoding to an [`HttpResponse`] and decoding from
//! one, given the [`Endpoint`] it answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::homeserver::wire::codec::{
    PduLists, check_room_version, encode_body, event_ids_json, objects_json, parse_body,
    strings_from_json, take_event_ids, take_object, take_objects, take_string,
};
use crate::homeserver::wire::endpoint::Endpoint;
use crate::homeserver::wire::error::{ErrCode, ErrorResponse, WireError};
use crate::homeserver::wire::http::HttpResponse;
use crate::homeserver::wire::transaction::{
    Transaction, TransactionUse, encode_transaction, transaction_from_json, validate_transaction,
};
use crate::homeserver::wire::{RESPONSE_BODY_BYTES_MAX, TRANSACTION_PDUS_MAX, len_u64};
use crate::matrix::canonical_json::{self, EncodedObject, Numbers, Object, Reader};
use crate::matrix::ids::{self, EventId};

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
    /// The resolved room state before the join (raw PDUs). Shared with their encodings:
    /// a resident answers every joiner with the same stored events.
    pub state: Vec<Arc<EncodedObject>>,
    /// The auth chain of the join and of every state event (raw PDUs), shared.
    pub auth_chain: Vec<Arc<EncodedObject>>,
    /// The join as signed by the resident (required for restricted joins).
    pub event: Option<Object>,
    /// Whether `m.room.member` events were left out (`omit_members`). Encoded only when
    /// true.
    pub members_omitted: bool,
    /// Servers with joined members before the join; required if `members_omitted`.
    pub servers_in_room: Option<Vec<String>>,
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
    GetState { pdus: Vec<Arc<EncodedObject>>, auth_chain: Vec<Arc<EncodedObject>> },
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
        let bytes = write_parts(&self.parts());
        assert!(bytes.len() <= RESPONSE_BODY_BYTES_MAX, "response body of {} bytes", bytes.len());
        HttpResponse { status: self.status(), body: bytes }
    }

    /// What [`write_parts`] reserves for the body: at least its length when no text in it
    /// needs an escape.
    #[cfg(test)]
    pub(super) fn body_size_hint(&self) -> usize {
        parts_size_hint(&self.parts())
    }

    /// The body's top-level members, by key.
    fn parts(&self) -> BTreeMap<&'static str, Part<'_>> {
        // The body's top-level members, in canonical (byte) order: PDU lists and objects
        // are written where they lie rather than copied into a body object first, as a
        // server answers `send_join`, `/state` and `get_missing_events` from its store.
        let mut parts: BTreeMap<&'static str, Part<'_>> = BTreeMap::new();
        let mut put = |key: &'static str, part| {
            parts.insert(key, part);
        };
        match self {
            Response::SendTransaction { pdus } => put("pdus", Part::Results(pdus)),
            Response::GetEvent(transaction) | Response::Backfill(transaction) => {
                put("", Part::Transaction(transaction));
            }
            Response::GetStateIds { pdu_ids, auth_chain_ids } => {
                put("pdu_ids", Part::Ids(pdu_ids));
                put("auth_chain_ids", Part::Ids(auth_chain_ids));
            }
            Response::GetState { pdus, auth_chain } => {
                put("pdus", Part::Encoded(pdus));
                put("auth_chain", Part::Encoded(auth_chain));
            }
            Response::GetEventAuth { auth_chain } => put("auth_chain", Part::Objects(auth_chain)),
            Response::GetMissingEvents { events } => put("events", Part::Objects(events)),
            Response::MakeJoin(make) | Response::MakeLeave(make) | Response::MakeKnock(make) => {
                if let Some(version) = &make.room_version {
                    put("room_version", Part::Owned(Value::String(version.clone())));
                }
                put("event", Part::Object(&make.event));
            }
            Response::SendJoin(join) => {
                put("state", Part::Encoded(&join.state));
                put("auth_chain", Part::Encoded(&join.auth_chain));
                if let Some(event) = &join.event {
                    put("event", Part::Object(event));
                }
                if join.members_omitted {
                    put("members_omitted", Part::Owned(Value::Bool(true)));
                }
                if let Some(servers) = &join.servers_in_room {
                    let servers = servers.iter().cloned().map(Value::String).collect();
                    put("servers_in_room", Part::Owned(Value::Array(servers)));
                }
            }
            Response::Invite { event } => put("event", Part::Object(event)),
            Response::SendLeave => {}
            Response::SendKnock { knock_room_state } => {
                put("knock_room_state", Part::Objects(knock_room_state));
            }
            Response::Error(error) => {
                put("errcode", Part::Owned(Value::String(error.errcode.as_str().to_owned())));
                // Left out when empty, as decoding reads a missing `error` as empty.
                if !error.error.is_empty() {
                    put("error", Part::Owned(Value::String(error.error.clone())));
                }
                if let Some(version) = &error.room_version {
                    put("room_version", Part::Owned(Value::String(version.clone())));
                }
            }
        }
        parts
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
        let usual = http.status == 200 && http.body.len() <= RESPONSE_BODY_BYTES_MAX;
        if let Some(response) = usual.then(|| read_in_one_pass(endpoint, &http.body)).flatten() {
            if cfg!(debug_assertions) {
                let body = parse_body(Some(&http.body), RESPONSE_BODY_BYTES_MAX);
                let whole = body.and_then(|body| decode_success(endpoint, body));
                assert_eq!(whole.as_ref(), Ok(&response), "{endpoint:?} answer read in one pass");
            }
            response.validate()?;
            return Ok(response);
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

    /// [`Response::from_http`] for a receiver that may hold some PDUs of a `send_join`
    /// answer already (a server joining a room that other servers of its process joined):
    /// `known` is asked about the exact bytes of each PDU of `state` and `auth_chain`, and
    /// those it answers for are not parsed. For a [`Response::SendJoin`] the map has, for
    /// `state` and for `auth_chain`, one entry per PDU of the body's list in order: the
    /// answer of `known`, or `None` for each PDU parsed into the answer's list (which keeps
    /// their order). For any other endpoint or response the map is empty.
    ///
    /// What is accepted, and every error, is `from_http`'s, as for
    /// [`Request::from_http_knowing`](crate::homeserver::wire::Request::from_http_knowing).
    pub fn from_http_knowing<K>(
        endpoint: Endpoint,
        http: &HttpResponse,
        mut known: impl FnMut(&[u8]) -> Option<K>,
    ) -> Result<(Response, KnownPdus<K>), WireError> {
        let whole = || {
            let response = Response::from_http(endpoint, http)?;
            let mut lists = KnownPdus::new();
            if let Response::SendJoin(join) = &response {
                lists.insert("auth_chain", join.auth_chain.iter().map(|_| None).collect());
                lists.insert("state", join.state.iter().map(|_| None).collect());
            }
            Ok((response, lists))
        };
        let body = &http.body;
        if endpoint != Endpoint::SendJoin
            || http.status != 200
            || body.len() > RESPONSE_BODY_BYTES_MAX
        {
            return whole();
        }
        let Some(lists) = PduLists::scan(body, &["auth_chain", "state"], None) else {
            return whole();
        };
        let kinds = lists.ask(body, &mut known);
        if kinds.values().flatten().all(Option::is_none) {
            return whole();
        }
        let leave_out = |list: usize, index: usize| kinds[lists.key(list)][index].is_some();
        let without = HttpResponse { status: http.status, body: lists.without(body, leave_out) };
        match Response::from_http(endpoint, &without) {
            Ok(response @ Response::SendJoin(_)) if kinds.len() == 2 => Ok((response, kinds)),
            _ => whole(),
        }
    }

    /// Bytes this response costs on the wire (see [`HttpResponse::byte_count`]). Encodes it.
    pub fn byte_count(&self) -> u64 {
        self.to_http().byte_count()
    }
}

/// Per PDU list of a body (by its key), what a receiver's `known` made of each PDU, in
/// order: see [`Response::from_http_knowing`].
pub type KnownPdus<K> = BTreeMap<&'static str, Vec<Option<K>>>;

/// A decoded list of objects, each made shareable.
fn share(list: Vec<Object>) -> Vec<Arc<EncodedObject>> {
    list.into_iter().map(|object| Arc::new(EncodedObject::new(object))).collect()
}

/// A top-level member of a response body, borrowed where the response holds it.
enum Part<'a> {
    Owned(Value),
    Object(&'a Object),
    Objects(&'a [Object]),
    /// Objects written from the encodings they keep.
    Encoded(&'a [Arc<EncodedObject>]),
    /// Event ids, as an array of strings written from the ids (a `/state_ids` answer's
    /// lists, up to a thousand ids in a room of a thousand members).
    Ids(&'a [EventId]),
    /// The members of a transaction body (`/event`, `/backfill`), under the empty key:
    /// the only part of such a body.
    Transaction(&'a Transaction),
    /// A `/send` answer's results, by event id: `{}`, or `{"error": text}`.
    Results(&'a BTreeMap<EventId, PduResult>),
}

impl Part<'_> {
    /// The bytes the part writes, or about as many: what lists of known lengths take, and
    /// an estimate of what values take ([`value_size_hint`]), so that a large body is
    /// written into one buffer rather than one that doubles as it grows. (A `send_join`
    /// answer at a thousand servers writes its joined servers' names and the join event
    /// before its state: left out of the hint, they made the state's writing grow a buffer
    /// of megabytes, 0.8% of a 1,000-server run's samples.)
    fn size_hint(&self) -> usize {
        // Each item's separator, and a string's quotes.
        match self {
            Part::Owned(value) => value_size_hint(value),
            Part::Object(object) => object_size_hint(object),
            Part::Objects(objects) => {
                2 + objects.iter().map(|o| object_size_hint(o) + 1).sum::<usize>()
            }
            Part::Encoded(objects) => {
                2 + objects.iter().map(|o| o.bytes().len() + 1).sum::<usize>()
            }
            Part::Ids(ids) => 2 + ids.iter().map(|id| id.as_str().len() + 3).sum::<usize>(),
            Part::Results(results) => {
                2 + results.keys().map(|id| id.as_str().len() + 6).sum::<usize>()
            }
            Part::Transaction(_) => 0,
        }
    }
}

/// The bytes [`write_parts`] reserves for a body of `parts`.
fn parts_size_hint(parts: &BTreeMap<&'static str, Part<'_>>) -> usize {
    let hint: usize = parts.iter().map(|(key, part)| key.len() + 4 + part.size_hint()).sum();
    // Numbers are counted at their longest: a body of many small ones is reserved more
    // than it takes, but never more than a body may take.
    hint.clamp(256, RESPONSE_BODY_BYTES_MAX)
}

/// About the bytes of `value` as canonical JSON: at least as many when no text in it needs
/// an escape (numbers and literals are given their longest).
fn value_size_hint(value: &Value) -> usize {
    match value {
        Value::String(text) => text.len() + 2,
        Value::Array(items) => {
            2 + items.iter().map(|item| value_size_hint(item) + 1).sum::<usize>()
        }
        Value::Object(object) => object_size_hint(object),
        // An integer of canonical JSON has at most 16 digits and a sign.
        Value::Number(_) => 17,
        Value::Bool(_) | Value::Null => 5,
    }
}

/// [`value_size_hint`] of an object.
fn object_size_hint(object: &Object) -> usize {
    2 + object.iter().map(|(key, value)| key.len() + 4 + value_size_hint(value)).sum::<usize>()
}

/// The JSON of a `/send` answer's results (see [`Part::Results`]).
fn results_json(results: &BTreeMap<EventId, PduResult>) -> Value {
    let mut object = Object::new();
    for (event_id, result) in results {
        let mut entry = Object::new();
        if let Err(error) = result {
            entry.insert("error".into(), Value::String(error.clone()));
        }
        object.insert(event_id.as_str().to_owned(), Value::Object(entry));
    }
    Value::Object(object)
}

/// The canonical JSON of the body with these members. Panics, as [`encode_body`] does, on
/// a value canonical JSON cannot hold; debug builds compare the bytes with those of the
/// body object built from copies.
fn write_parts(parts: &BTreeMap<&'static str, Part<'_>>) -> Vec<u8> {
    let not_canonical = |e: canonical_json::ValueError| -> ! {
        panic!("outgoing message is not canonical JSON: {e}")
    };
    if let Some(Part::Transaction(transaction)) = parts.get("") {
        assert_eq!(parts.len(), 1, "a transaction is the whole body");
        return encode_transaction(transaction);
    }
    let mut out = Vec::with_capacity(parts_size_hint(parts));
    out.push(b'{');
    for (index, (key, part)) in parts.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        canonical_json::write_string(&mut out, key);
        out.push(b':');
        match part {
            Part::Owned(value) => {
                canonical_json::check(value).unwrap_or_else(|e| not_canonical(e));
                canonical_json::write_value(&mut out, value);
            }
            Part::Object(object) => {
                canonical_json::check_object(object).unwrap_or_else(|e| not_canonical(e));
                canonical_json::write_object(&mut out, object);
            }
            Part::Objects(objects) => write_array(&mut out, objects.iter(), |out, object| {
                canonical_json::check_object(object).unwrap_or_else(|e| not_canonical(e));
                canonical_json::write_object(out, object);
            }),
            Part::Encoded(objects) => write_array(&mut out, objects.iter(), |out, object| {
                out.extend_from_slice(object.bytes());
            }),
            Part::Ids(ids) => write_array(&mut out, ids.iter(), |out, id| {
                canonical_json::write_string(out, id.as_str());
            }),
            Part::Results(results) => {
                // Written as the object of `results_json` is: ids are texts, ordered by
                // their bytes as canonical JSON orders keys; the errors are texts too,
                // which canonical JSON can always hold.
                out.push(b'{');
                for (index, (event_id, result)) in results.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    canonical_json::write_string(&mut out, event_id.as_str());
                    match result {
                        Ok(()) => out.extend_from_slice(b":{}"),
                        Err(error) => {
                            out.extend_from_slice(b":{\"error\":");
                            canonical_json::write_string(&mut out, error);
                            out.push(b'}');
                        }
                    }
                }
                out.push(b'}');
            }
            Part::Transaction(_) => unreachable!("only under the empty key, alone"),
        }
    }
    out.push(b'}');
    if cfg!(debug_assertions) {
        let mut body = Object::new();
        for (key, part) in parts {
            let value = match part {
                Part::Owned(value) => value.clone(),
                Part::Object(object) => Value::Object(Object::clone(object)),
                Part::Objects(objects) => objects_json(objects),
                Part::Encoded(objects) => {
                    Value::Array(objects.iter().map(|o| Value::Object(o.json().clone())).collect())
                }
                Part::Ids(ids) => event_ids_json(ids),
                Part::Results(results) => results_json(results),
                Part::Transaction(_) => unreachable!("returned above"),
            };
            body.insert((*key).to_owned(), value);
        }
        assert_eq!(out, encode_body(&body), "a body written in parts is its object's encoding");
    }
    out
}

impl From<ErrorResponse> for Response {
    fn from(error: ErrorResponse) -> Response {
        Response::Error(error)
    }
}

/// A JSON array of `items`, each written by `write`.
fn write_array<T>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = T>,
    mut write: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (index, item) in items.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// A success answer of the usual shape read in one pass without its JSON tree, for the
/// endpoints that have such a reader (`/send`, `/state_ids`); `None` otherwise, or for any
/// other shape or error, which the whole-tree path then decodes as before.
fn read_in_one_pass(endpoint: Endpoint, body: &[u8]) -> Option<Response> {
    match endpoint {
        Endpoint::SendTransaction => {
            read_pdu_results(body).map(|pdus| Response::SendTransaction { pdus })
        }
        Endpoint::GetStateIds => read_state_ids(body)
            .map(|(pdu_ids, auth_chain_ids)| Response::GetStateIds { pdu_ids, auth_chain_ids }),
        _ => None,
    }
}

/// A `/send` answer as servers send it, `{"pdus": {id: {} or {"error": text}}}`, read in
/// one pass without its JSON tree. `None` for a body of any other shape, or any error: the
/// caller then parses the whole body as before, so what is accepted and every error stay
/// the same. The reader checks what it reads as `parse` does.
pub(super) fn read_pdu_results(body: &[u8]) -> Option<BTreeMap<EventId, PduResult>> {
    let mut reader = Reader::new(body, Numbers::IntegerLiterals);
    if !reader.begin_object().ok()? {
        return None;
    }
    let mut results = None;
    while let Some(key) = reader.next_key_str().ok()? {
        if key != "pdus" || !reader.begin_object().ok()? {
            return None;
        }
        let mut pdus = BTreeMap::new();
        while let Some(id) = reader.next_key_str().ok()? {
            let event_id = EventId::parse(id).ok()?;
            if !reader.begin_object().ok()? {
                return None;
            }
            let mut result = Ok(());
            while let Some(key) = reader.next_key_str().ok()? {
                let (true, Value::String(error)) = (key == "error", reader.value().ok()?) else {
                    return None;
                };
                result = Err(error);
            }
            pdus.insert(event_id, result);
            if pdus.len() > TRANSACTION_PDUS_MAX {
                return None;
            }
        }
        results = Some(pdus);
    }
    reader.check_end().ok()?;
    results
}

/// A `/state_ids` answer as servers send it, `{"auth_chain_ids": [id, ...], "pdu_ids":
/// [id, ...]}`, read in one pass without its JSON tree, each id made from the text it is
/// read from. `None` for a body of any other shape (other members among them), or any
/// error: the caller then parses the whole body, so what is accepted and every error stay
/// the same. At a thousand servers an answer holds up to a thousand ids, and its tree was a
/// string and a value per id before the id itself.
pub(super) fn read_state_ids(body: &[u8]) -> Option<(Vec<EventId>, Vec<EventId>)> {
    let mut reader = Reader::new(body, Numbers::IntegerLiterals);
    if !reader.begin_object().ok()? {
        return None;
    }
    let (mut pdu_ids, mut auth_chain_ids) = (None, None);
    while let Some(key) = reader.next_key_str().ok()? {
        let list = match key {
            "pdu_ids" => &mut pdu_ids,
            "auth_chain_ids" => &mut auth_chain_ids,
            _ => return None,
        };
        if !reader.begin_array().ok()? {
            return None;
        }
        let mut ids = Vec::new();
        while reader.next_item().ok()? {
            ids.push(EventId::parse(&reader.string().ok()??).ok()?);
        }
        *list = Some(ids);
    }
    reader.check_end().ok()?;
    Some((pdu_ids?, auth_chain_ids?))
}

/// The `pdus` map of a `/send` answer: one `{}` or `{"error"}` per event id, at most
/// [`TRANSACTION_PDUS_MAX`] of them.
fn decode_pdu_results(mut body: Object) -> Result<BTreeMap<EventId, PduResult>, WireError> {
    let Some(results) = take_object(&mut body, "pdus")? else {
        return Err(WireError::missing_param("$.pdus"));
    };
    if results.len() > TRANSACTION_PDUS_MAX {
        return Err(WireError::TooManyPdus { count: len_u64(results.len()) });
    }
    let mut pdus = BTreeMap::new();
    for (key, entry) in results {
        // The entry's path names what is wrong, so it is built only then (building it for
        // every answered PDU was half a percent of a hundred-server run).
        let path = || {
            let mut path = String::from("$.pdus");
            canonical_json::push_key(&mut path, &key);
            path
        };
        let event_id = EventId::parse(&key).map_err(|e| WireError::bad_json(&path(), e.problem))?;
        let Value::Object(mut entry) = entry else {
            return Err(WireError::bad_json(&path(), "must be an object"));
        };
        let result = match entry.remove("error") {
            None => Ok(()),
            Some(Value::String(error)) => Err(error),
            Some(_) => {
                let path = format!("{}.error", path());
                return Err(WireError::bad_json(&path, "must be a string"));
            }
        };
        pdus.insert(event_id, result);
    }
    Ok(pdus)
}

fn decode_success(endpoint: Endpoint, mut body: Object) -> Result<Response, WireError> {
    let required = |value: Option<Vec<Object>>, key: &str| {
        value.ok_or_else(|| WireError::missing_param(&format!("$.{key}")))
    };
    let response = match endpoint {
        Endpoint::SendTransaction => Response::SendTransaction { pdus: decode_pdu_results(body)? },
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
            pdus: share(required(take_objects(&mut body, "pdus")?, "pdus")?),
            auth_chain: share(required(take_objects(&mut body, "auth_chain")?, "auth_chain")?),
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
                state: share(required(take_objects(&mut body, "state")?, "state")?),
                auth_chain: share(required(take_objects(&mut body, "auth_chain")?, "auth_chain")?),
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

impl WireError {
    /// [`WireError::to_error_response`] as a [`Response`], ready to encode.
    pub fn to_response(&self) -> Response {
        Response::Error(self.to_error_response())
    }
}
