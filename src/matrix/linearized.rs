//! Linearized Matrix (the MIMI Internet-Draft): the LPDU a participant sends, the hub's
//! completion of it into a PDU, and the checks a participant runs on the hub's list.
//!
//! Spec: draft-ralston-mimi-linearized-matrix-04, sections "Events", "Linearized PDU",
//! "Receiving Events/PDUs", "Auth Rules Algorithm", "Hashes" and "Hub Selection" (digest:
//! spec/linearized-matrix.md §1–§6). The room version is
//! [`LINEARIZED_02`](crate::matrix::room_version::LINEARIZED_02); the event format, hashes,
//! signatures, redaction and auth rules it shares with PDUs live in `pdu`, `redaction` and
//! `auth`, behind its named flags. Readings where the draft is silent are marked [digest]
//! (the digest's or this module's reading) or [impl] (eigen-server's) and collected in
//! docs/linearized.md.
//!
//! Pure functions only: the hub's list is a value ([`HubList`], in `list`) that the hub and
//! each participant keep; keys are arguments; nothing here knows of servers or time.

use serde_json::Value;

use crate::matrix::auth;
use crate::matrix::canonical_json::Object;
use crate::matrix::crypto::{self, KeyRing, SigningKey};
use crate::matrix::ids::{self, EventId};
use crate::matrix::pdu::{self, FormatError, Pdu, Stage, Verified, VerifyError};
use crate::matrix::redaction;
use crate::matrix::room_version::RoomVersionRules;

mod list;

pub use list::{HubFault, HubList, HubMisbehaviour, ListState};

/// A well-formed LPDU (a participant's partial event): no `auth_events`, `prev_events` or
/// `hashes.sha256`; `hub_server`, `hashes.lpdu` and `signatures` present.
///
/// Its id ([`Lpdu::id`]) is the reference hash of the redacted LPDU: the key of a rejected
/// LPDU in `failed_pdus` (digest: spec/linearized-matrix.md §5, §7.1).
#[derive(Clone, Debug, PartialEq)]
pub struct Lpdu {
    /// The typed view; its `event_id` is the LPDU's id and its `auth_events`/`prev_events`
    /// are empty.
    partial: Pdu,
}

impl Lpdu {
    /// Checks the LPDU format (digest: spec/linearized-matrix.md §3, §4).
    pub fn from_json(rules: &RoomVersionRules, json: Object) -> Result<Lpdu, FormatError> {
        assert!(rules.lpdus, "LPDUs exist only in Linearized Matrix room versions");
        let partial = pdu::check_lpdu(rules, json, Stage::Lpdu)?;
        assert!(partial.hub_server().is_some(), "checked by the LPDU format");
        Ok(Lpdu { partial })
    }

    /// Like [`Lpdu::from_json`] for an untrusted JSON value.
    pub fn from_value(rules: &RoomVersionRules, value: Value) -> Result<Lpdu, FormatError> {
        match value {
            Value::Object(json) => Lpdu::from_json(rules, json),
            _ => Err(FormatError {
                path: "$".to_owned(),
                problem: "an LPDU must be a JSON object".to_owned(),
                severity: pdu::FormatSeverity::Drop,
            }),
        }
    }

    pub fn json(&self) -> &Object {
        self.partial.json()
    }

    /// The LPDU's id: `$` + the reference hash of the redacted LPDU.
    pub fn id(&self) -> &EventId {
        self.partial.event_id()
    }

    /// The hub the LPDU is sent through.
    pub fn hub_server(&self) -> &str {
        self.partial.hub_server().expect("checked by the LPDU format")
    }

    /// The typed fields (`type`, `state_key`, `sender`, `content`, …) of the partial event.
    pub fn partial(&self) -> &Pdu {
        &self.partial
    }
}

/// Builds and signs an LPDU from a partial event (no `auth_events`, `prev_events`, `hashes`
/// or `signatures`; with `hub_server`): adds `hashes.lpdu` (the LPDU content hash), then the
/// signature of `server_name` over the redacted LPDU.
///
/// Spec: draft "Linearized PDU" (the sender "MUST populate the `hashes.lpdu` object" and
/// "signs this partial event"; digest: spec/linearized-matrix.md §4, §5). The signer must be
/// the sender's server: an LPDU is signed by nobody else.
pub fn build_lpdu(
    rules: &RoomVersionRules,
    mut json: Object,
    server_name: &str,
    key: &SigningKey,
) -> Result<Lpdu, FormatError> {
    let partial = pdu::check_lpdu(rules, json.clone(), Stage::LpduUnsigned)?;
    assert_eq!(partial.origin(), server_name, "an LPDU is signed by its sender's server");
    let hash = crypto::base64_encode(&pdu::lpdu_content_hash(&json));
    let mut sha256 = Object::new();
    sha256.insert("sha256".to_owned(), Value::String(hash));
    let mut hashes = Object::new();
    hashes.insert("lpdu".to_owned(), Value::Object(sha256));
    json.insert("hashes".to_owned(), Value::Object(hashes));
    pdu::add_signature(rules, &mut json, server_name, key);
    let lpdu = Lpdu::from_json(rules, json)?;
    // What we just built must verify: a failure here is a bug in mxsim.
    let ring = key_ring(server_name, key);
    assert_eq!(verify_lpdu(rules, &lpdu, &ring), Ok(Verified::Intact));
    Ok(lpdu)
}

/// Checks a received LPDU as the hub can before completing it: the sender's server's
/// signature over the redacted LPDU, then the LPDU content hash. A hash mismatch gives the
/// redacted LPDU, as receipt step 3 does for events.
///
/// Spec: receipt steps 2–3 applied to the partial event (digest: spec/linearized-matrix.md
/// §6). [digest] The draft runs these checks on the completed PDU, where they give the same
/// answer (the LPDU is rebuilt exactly); checking first lets a hub refuse a bad LPDU
/// instead of appending a redacted copy.
pub fn verify_lpdu(
    rules: &RoomVersionRules,
    lpdu: &Lpdu,
    keys: &KeyRing,
) -> Result<Verified, VerifyError> {
    let json = lpdu.json();
    let bytes = pdu::signing_bytes(rules, json);
    crypto::verify_signatures(json.get("signatures"), lpdu.partial.origin(), keys, &bytes)
        .map_err(VerifyError::LpduSignature)?;
    let given = json
        .get("hashes")
        .and_then(|hashes| hashes.get("lpdu"))
        .and_then(|lpdu| lpdu.get("sha256"))
        .and_then(Value::as_str)
        .and_then(crypto::base64_decode);
    let computed = pdu::lpdu_content_hash(json);
    if given.is_some_and(|given| given.as_slice() == computed.as_slice()) {
        Ok(Verified::Intact)
    } else {
        Ok(Verified::Redacted(redaction::redact(rules.redaction, json)))
    }
}

/// Why the hub cannot complete an LPDU or build one of its own events.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompletionError {
    /// The LPDU names another hub; the hub cannot change `hub_server` without breaking the
    /// sender's signature (draft: the hub "MUST specify its own server name").
    #[error("the LPDU is sent through {named}, not this hub {hub}")]
    WrongHub { named: String, hub: String },
    /// [digest] An `m.room.create` is never an LPDU: the hub is by definition the create
    /// event's sender's server, which builds it as a PDU.
    #[error("an m.room.create event cannot be an LPDU")]
    CreateLpdu,
    /// The list is empty and the event is not `m.room.create`, or the list is not empty and
    /// the event is `m.room.create` (the hub's list starts with exactly one create event).
    #[error("{0}")]
    Position(&'static str),
    /// The completed event breaks the format (for example the size limit).
    #[error("the completed event is not well-formed: {0}")]
    Format(#[from] FormatError),
}

/// The hub's completion of an LPDU into a PDU, appended after the head of `list`: the auth
/// events the selection picks from the list's current state, `prev_events` = the head, then
/// `hashes.sha256` over the event with its `hashes.lpdu` and the hub's signature over the
/// redacted PDU. The sender's signature is kept.
///
/// Spec: draft "Receiving Events/PDUs" ("add the missing fields"), "Events" (`hub_server`,
/// "exactly 1" prev event), "Auth Events Selection" (digest: spec/linearized-matrix.md §4).
/// No `depth` is added: the draft has none, and any key the hub added would break the LPDU
/// hash. The position in the list ([`HubList::len`] before appending) plays its part.
///
/// The LPDU is not checked here beyond its format; the hub runs [`verify_lpdu`] (or the
/// receipt checks on the result) and appends the result with [`HubList::append`], which
/// runs the auth rules.
///
/// [digest] A list with several forward extremities (a DAG server's event was appended)
/// cannot take a completed LPDU, which names exactly one prev event: the hub appends a
/// merge ([`build_merge_event`]) first.
pub fn complete_lpdu(
    rules: &RoomVersionRules,
    list: &HubList,
    lpdu: &Lpdu,
    hub_name: &str,
    key: &SigningKey,
) -> Result<Pdu, CompletionError> {
    if lpdu.hub_server() != hub_name {
        return Err(CompletionError::WrongHub {
            named: lpdu.hub_server().to_owned(),
            hub: hub_name.to_owned(),
        });
    }
    let partial = lpdu.partial();
    if partial.event_type() == "m.room.create" {
        return Err(CompletionError::CreateLpdu);
    }
    let head = match list.forward_extremities().iter().collect::<Vec<_>>().as_slice() {
        [] => {
            return Err(CompletionError::Position(
                "the hub's list is empty: it starts with the create",
            ));
        }
        [head] => (*head).clone(),
        _ => {
            return Err(CompletionError::Position(
                "the hub's list has several forward extremities: it merges them first",
            ));
        }
    };
    let auth_events = select_from(rules, partial, list);
    complete_lpdu_with(rules, lpdu, auth_events, head, hub_name, key)
}

/// The last steps of [`complete_lpdu`] with the auth events and the previous event given.
pub fn complete_lpdu_with(
    rules: &RoomVersionRules,
    lpdu: &Lpdu,
    auth_events: Vec<EventId>,
    prev_event: EventId,
    hub_name: &str,
    key: &SigningKey,
) -> Result<Pdu, CompletionError> {
    assert_eq!(lpdu.hub_server(), hub_name, "only the named hub completes an LPDU");
    let mut json = lpdu.json().clone();
    let ids = |ids: Vec<EventId>| Value::Array(ids.iter().map(|id| id.as_str().into()).collect());
    json.insert("auth_events".to_owned(), ids(auth_events));
    json.insert("prev_events".to_owned(), ids(vec![prev_event.clone()]));
    pdu::check_unsigned(rules, &json)?;
    pdu::hash_and_sign(rules, &mut json, hub_name, key);
    let pdu = Pdu::from_json(rules, json)?;
    assert_eq!(pdu.prev_events(), std::slice::from_ref(&prev_event));
    assert_eq!(pdu.hub_server(), Some(hub_name));
    // Both signatures must verify and both hashes match; the sender's key is not known
    // here, so check the hub's half and the rebuilt LPDU's bytes.
    let ring = key_ring(hub_name, key);
    let bytes = pdu::signing_bytes(rules, pdu.json());
    assert!(
        crypto::verify_signatures(pdu.json().get("signatures"), hub_name, &ring, &bytes).is_ok()
    );
    assert!(pdu::content_hashes_match(rules, &pdu) || !lpdu_hash_matches(lpdu));
    let mut rebuilt = pdu::rebuild_lpdu(pdu.json());
    let mut sent = lpdu.json().clone();
    rebuilt.remove("signatures");
    sent.remove("signatures");
    assert_eq!(rebuilt, sent, "the LPDU is rebuilt exactly");
    Ok(pdu)
}

/// Whether an LPDU's own hash matches (used only in assertions).
fn lpdu_hash_matches(lpdu: &Lpdu) -> bool {
    let given = lpdu.json().get("hashes").and_then(|h| h.get("lpdu")).and_then(|l| l.get("sha256"));
    let computed = crypto::base64_encode(&pdu::lpdu_content_hash(lpdu.json()));
    given.and_then(Value::as_str) == Some(computed.as_str())
}

/// An event of one of the hub's own users, built by the hub as a PDU: the auth events the
/// selection picks from `list`'s current state, `prev_events` = the list's forward
/// extremities in event-id order (the head, on a chain; none for the create event, which
/// must come first), then hashed and signed by the hub like any PDU.
///
/// [impl] Events whose sender is on the hub carry no `hub_server` and no `hashes.lpdu`
/// (eigen-server; the draft is silent; digest: spec/linearized-matrix.md §3, §10). The
/// create event carries empty `auth_events` and `prev_events` ([impl] eigen-server).
pub fn build_hub_event(
    rules: &RoomVersionRules,
    list: &HubList,
    mut json: Object,
    hub_name: &str,
    key: &SigningKey,
) -> Result<Pdu, CompletionError> {
    let partial = pdu::check_lpdu(rules, lpdu_probe(&json, hub_name), Stage::LpduUnsigned)?;
    assert_eq!(partial.origin(), hub_name, "the hub builds events of its own users only");
    let is_create = partial.event_type() == "m.room.create";
    let (auth_events, prev_events) = match (list.head(), is_create) {
        (None, true) => (Vec::new(), Vec::new()),
        (Some(_), false) => {
            let prev_events = list.forward_extremities().iter().cloned().collect();
            (select_from(rules, &partial, list), prev_events)
        }
        (None, false) => {
            return Err(CompletionError::Position(
                "the hub's list is empty: it starts with the create",
            ));
        }
        (Some(_), true) => return Err(CompletionError::Position("the list already has a create")),
    };
    let ids = |ids: Vec<EventId>| Value::Array(ids.iter().map(|id| id.as_str().into()).collect());
    json.insert("auth_events".to_owned(), ids(auth_events));
    json.insert("prev_events".to_owned(), ids(prev_events));
    Ok(pdu::build_signed(rules, json, hub_name, key)?)
}

/// Whether the hub built `pdu` (it completed the sender's LPDU, so the event names
/// `hub_server`, or the sender is one of the hub's users) rather than a DAG-capable server.
///
/// [digest] An event without `hub_server` whose sender is elsewhere comes from a
/// DAG-capable server, which keeps its own prev and auth events (docs/linearized.md).
pub fn built_by_hub(pdu: &Pdu, hub: &str) -> bool {
    pdu.hub_server().is_some() || pdu.origin() == hub
}

/// The type of the hub's merge events, [`build_merge_event`]: Synapse's dummy event.
pub const MERGE_EVENT_TYPE: &str = "org.matrix.dummy_event";

/// The hub's merge of its list's forward extremities, built with [`build_hub_event`]: an
/// `org.matrix.dummy_event` with empty content sent by `sender`, one of the hub's users
/// (joined in the list's current state, or the auth rules reject it), naming every forward
/// extremity as a prev event. Fails with [`CompletionError::Position`] when the list has
/// fewer than two forward extremities.
///
/// [digest] The draft is silent on how a hub linearizes a DAG-capable server's events (it
/// mentions "filler" events; digest: spec/linearized-matrix.md §1). mxsim's hub appends a
/// DAG event that left the list with several forward extremities and then merges them at
/// once, as Synapse's `_send_dummy_events_to_fill_extremities` does with
/// `org.matrix.dummy_event` (the behavioural reference for the type and empty content).
pub fn build_merge_event(
    rules: &RoomVersionRules,
    list: &HubList,
    room_id: &str,
    sender: &str,
    origin_server_ts: i64,
    hub_name: &str,
    key: &SigningKey,
) -> Result<Pdu, CompletionError> {
    if list.forward_extremities().len() < 2 {
        return Err(CompletionError::Position(
            "nothing to merge: the list has fewer than two forward extremities",
        ));
    }
    let mut json = Object::new();
    json.insert("room_id".to_owned(), Value::String(room_id.to_owned()));
    json.insert("type".to_owned(), Value::String(MERGE_EVENT_TYPE.to_owned()));
    json.insert("sender".to_owned(), Value::String(sender.to_owned()));
    json.insert("origin_server_ts".to_owned(), Value::from(origin_server_ts));
    json.insert("content".to_owned(), Value::Object(Object::new()));
    build_hub_event(rules, list, json, hub_name, key)
}

/// The partial event with `hub_server` added, so that the LPDU format check can vet the
/// fields of a hub event before `auth_events` and `prev_events` exist.
fn lpdu_probe(json: &Object, hub_name: &str) -> Object {
    let mut probe = json.clone();
    probe.insert("hub_server".to_owned(), Value::String(hub_name.to_owned()));
    probe
}

/// The auth events of `event` selected from the list's current state.
fn select_from(rules: &RoomVersionRules, event: &Pdu, list: &HubList) -> Vec<EventId> {
    auth::select_auth_events(
        rules,
        event.event_type(),
        event.sender(),
        event.state_key(),
        event.content(),
        list.state(),
    )
}

fn key_ring(server_name: &str, key: &SigningKey) -> KeyRing {
    let mut ring = KeyRing::new();
    ring.entry(server_name.to_owned())
        .or_default()
        .insert(key.key_id().to_owned(), key.public_key());
    ring
}

/// Whether a server name is the room's hub according to a create event: hub selection
/// (draft "Hub Selection"; digest: spec/linearized-matrix.md §1).
pub fn is_hub(create: &Pdu, server_name: &str) -> bool {
    assert_eq!(create.event_type(), "m.room.create");
    ids::user_server(create.sender()) == Some(server_name)
}

#[cfg(test)]
mod tests;
