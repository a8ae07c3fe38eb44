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
//! Pure functions only: the hub's list is a value ([`HubList`]) that the hub and each
//! participant keep; keys are arguments; nothing here knows of servers or time.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::matrix::auth::{self, Rejection, SignatureCheck};
use crate::matrix::canonical_json::Object;
use crate::matrix::crypto::{self, KeyRing, SigningKey};
use crate::matrix::ids::{self, EventId};
use crate::matrix::pdu::{self, FormatError, Pdu, Stage, Verified, VerifyError};
use crate::matrix::redaction;
use crate::matrix::room_version::RoomVersionRules;

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
    let Some(head) = list.head() else {
        return Err(CompletionError::Position(
            "the hub's list is empty: it starts with the create",
        ));
    };
    let auth_events = select_from(rules, partial, list);
    complete_lpdu_with(rules, lpdu, auth_events, head.event_id().clone(), hub_name, key)
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
/// selection picks from `list`'s current state, `prev_events` = the head (none for the
/// create event, which must come first), then hashed and signed by the hub like any PDU.
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
        (Some(head), false) => (select_from(rules, &partial, list), vec![head.event_id().clone()]),
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
        &list.state,
    )
}

fn key_ring(server_name: &str, key: &SigningKey) -> KeyRing {
    let mut ring = KeyRing::new();
    ring.entry(server_name.to_owned())
        .or_default()
        .insert(key.key_id().to_owned(), key.public_key());
    ring
}

/// The hub's list of a room as a server holds it: the events in list order and the state
/// after the last one. The hub appends to its list; a participant appends what the hub sends
/// and so checks the hub's ordering and auth decisions.
///
/// Spec: the hub "appends events in order of receipt"; the state at an event is the latest
/// event per (`type`, `state_key`) in list order; "current state" is the state at the most
/// recent event (digest: spec/linearized-matrix.md §1, §6 "State in LM").
#[derive(Clone, Debug, Default)]
pub struct HubList {
    /// The hub: the server of the create event's `sender` (draft "Hub Selection").
    hub: Option<String>,
    events: Vec<Arc<Pdu>>,
    positions: BTreeMap<EventId, u64>,
    state: BTreeMap<(String, String), Arc<Pdu>>,
}

/// What was wrong with an event the hub put into its list (or sent as the next one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HubFault {
    /// The first event is not `m.room.create`, or a later one is.
    CreateNotFirst,
    /// The event is already in the list.
    Duplicate,
    /// `hub_server` is not the room's hub.
    WrongHub,
    /// An event the hub built does not name the head of the list as its only prev event.
    NotAfterHead,
    /// An event from a DAG-capable server names a prev event that is not in the list.
    UnknownPrevEvent,
    /// An auth event is not in the list.
    UnknownAuthEvent,
    /// An event the hub built does not list exactly the auth events the selection picks
    /// from the state before it.
    AuthEventsNotSelected,
    /// The event fails the auth rules against the state before it: the hub should have
    /// rejected it.
    Rejected,
}

/// A participant's finding: the hub put an event into the list that the rules forbid. The
/// event is not appended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("hub fault at position {position} ({event_id}): {fault:?}: {reason}")]
pub struct HubMisbehaviour {
    /// The list position the event would have had.
    pub position: u64,
    pub event_id: EventId,
    pub fault: HubFault,
    pub reason: String,
    /// The auth rule that rejects the event, for [`HubFault::Rejected`].
    pub rejection: Option<Rejection>,
}

impl HubList {
    pub fn new() -> HubList {
        HubList::default()
    }

    /// The hub, once the create event is in the list.
    pub fn hub(&self) -> Option<&str> {
        self.hub.as_deref()
    }

    /// The number of events in the list.
    pub fn len(&self) -> u64 {
        self.events.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The last event of the list.
    pub fn head(&self) -> Option<&Pdu> {
        self.events.last().map(|pdu| &**pdu)
    }

    /// The events in list order.
    pub fn events(&self) -> &[Arc<Pdu>] {
        &self.events
    }

    /// The position of an event in the list.
    pub fn position(&self, event_id: &EventId) -> Option<u64> {
        self.positions.get(event_id).copied()
    }

    /// The current state: (`type`, `state_key`) → the latest such event in list order.
    pub fn state(&self) -> &BTreeMap<(String, String), Arc<Pdu>> {
        &self.state
    }

    /// Appends the next event of the hub's list after checking that the hub was allowed to
    /// put it there: order, `hub_server`, auth events and the auth rules against the state
    /// before it. On a fault nothing changes.
    ///
    /// The event's signatures and hashes are the receipt checks' business (`pdu::verify`,
    /// run first); `signatures` says whether the auth rules re-check them (rules 1–2).
    ///
    /// Spec: receipt checks and auth rules, which a hub MUST and a participant SHOULD run
    /// (digest: spec/linearized-matrix.md §6). [digest] The participant-side ordering checks
    /// are this module's reading of the draft's model: an event the hub built (with
    /// `hub_server`, or sent by one of the hub's users) names the head of the list as its
    /// only prev event and lists exactly the selected auth events; an event from a
    /// DAG-capable server (no `hub_server`, sender elsewhere) keeps its own prev and auth
    /// events, which must already be in the list.
    pub fn append(
        &mut self,
        rules: &RoomVersionRules,
        pdu: Arc<Pdu>,
        signatures: SignatureCheck<'_>,
    ) -> Result<u64, HubMisbehaviour> {
        let position = self.len();
        let fault = |fault: HubFault, reason: String| HubMisbehaviour {
            position,
            event_id: pdu.event_id().clone(),
            fault,
            reason,
            rejection: None,
        };
        if self.positions.contains_key(pdu.event_id()) {
            return Err(fault(HubFault::Duplicate, "the event is already in the list".into()));
        }
        let is_create = pdu.event_type() == "m.room.create" && pdu.state_key() == Some("");
        if is_create != self.events.is_empty() {
            let reason = if is_create {
                "a second m.room.create"
            } else {
                "the list must start with m.room.create"
            };
            return Err(fault(HubFault::CreateNotFirst, reason.into()));
        }
        // Hub selection: the create event's sender's server.
        let hub =
            if is_create { pdu.origin() } else { self.hub.as_deref().expect("set by create") };
        if let Some(named) = pdu.hub_server().filter(|named| *named != hub) {
            return Err(fault(
                HubFault::WrongHub,
                format!("hub_server {named} is not the hub {hub}"),
            ));
        }
        let built_by_hub = pdu.hub_server().is_some() || pdu.origin() == hub;
        let head = self.head().map(|head| head.event_id().clone());
        if built_by_hub {
            if pdu.prev_events() != head.as_slice() {
                return Err(fault(
                    HubFault::NotAfterHead,
                    format!(
                        "prev_events {:?} is not the head of the list {}",
                        pdu.prev_events(),
                        head.as_ref().map_or("(none)", EventId::as_str)
                    ),
                ));
            }
        } else if let Some(unknown) =
            pdu.prev_events().iter().find(|id| self.position(id).is_none())
        {
            return Err(fault(
                HubFault::UnknownPrevEvent,
                format!("prev event {unknown} is not in the list"),
            ));
        }
        let mut auth_events: Vec<(&Pdu, bool)> = Vec::with_capacity(pdu.auth_events().len());
        for id in pdu.auth_events() {
            let Some(at) = self.position(id) else {
                return Err(fault(
                    HubFault::UnknownAuthEvent,
                    format!("auth event {id} is not in the list"),
                ));
            };
            let at = usize::try_from(at).expect("positions index the list");
            auth_events.push((&*self.events[at], false));
        }
        if built_by_hub && !is_create {
            let mut selected = select_from(rules, &pdu, self);
            let mut listed = pdu.auth_events().to_vec();
            selected.sort();
            listed.sort();
            if selected != listed {
                return Err(fault(
                    HubFault::AuthEventsNotSelected,
                    format!("auth_events {listed:?} are not the selected {selected:?}"),
                ));
            }
        }
        if let Err(rejection) =
            auth::check_event(rules, &pdu, &auth_events, &self.state, signatures)
        {
            let mut misbehaviour = fault(HubFault::Rejected, rejection.to_string());
            misbehaviour.rejection = Some(rejection);
            return Err(misbehaviour);
        }
        if is_create {
            self.hub = Some(hub.to_owned());
        }
        if let Some(state_key) = pdu.state_key() {
            self.state.insert((pdu.event_type().to_owned(), state_key.to_owned()), pdu.clone());
        }
        self.positions.insert(pdu.event_id().clone(), position);
        self.events.push(pdu);
        assert_eq!(self.len(), position + 1);
        assert!(self.hub.is_some());
        Ok(position)
    }
}

/// Whether a server name is the room's hub according to a create event: hub selection
/// (draft "Hub Selection"; digest: spec/linearized-matrix.md §1).
pub fn is_hub(create: &Pdu, server_name: &str) -> bool {
    assert_eq!(create.event_type(), "m.room.create");
    ids::user_server(create.sender()) == Some(server_name)
}

#[cfg(test)]
mod tests;
