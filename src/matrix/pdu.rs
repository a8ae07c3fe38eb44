//! PDUs (persistent data units): format checks, content and reference hashes, event ids,
//! building and signing an event, and verifying a received one.
//!
//! Spec: room version 10/11/12 event formats, Server-Server API "Adding hashes and
//! signatures", "Validating hashes and signatures on received events", and "Size limits"
//! (digest: spec/events.md §2–§6, spec/canonical-json-and-signing.md §5). For the Linearized
//! Matrix version (flags [`RoomVersionRules::lpdus`] and [`RoomVersionRules::depth_field`]):
//! the draft's event format, content hash and signature checks (digest:
//! spec/linearized-matrix.md §3–§6); the LPDU itself is in `matrix::linearized`.
//!
//! A [`Pdu`] keeps the exact JSON object it was built from (every byte of it is covered by
//! the content hash, including keys mxsim does not know) next to typed copies of the fields
//! the protocol reads. The JSON is the source of truth; the typed fields are checked views.
//!
//! The module root holds [`Pdu`] and its typed views; `format` the format checks of every
//! stage ([`Stage`]); `signing` the content and reference hashes, event ids, hashing and
//! signing an event, and verifying a received one.

use std::sync::Arc;

use serde_json::Value;

use crate::matrix::canonical_json::{EncodedObject, Object};
use crate::matrix::ids::{self, EventId, IdError, IdInterner, TextInterner};
use crate::matrix::room_version::RoomVersionRules;
use crate::matrix::words::same_text;

mod format;
mod level_users;
mod signing;

pub(crate) use format::check_lpdu;
use format::{Members, check_format, check_format_with};
pub use format::{check_signed, check_unsigned};
pub use level_users::{LevelUsers, LevelUsersSharer};
pub(crate) use signing::signing_bytes;
pub use signing::{
    Verified, VerifyError, add_signature, build_signed, build_unsigned, content_hash,
    content_hash_in, content_hashes_match, event_id, hash_and_sign, lpdu_content_hash,
    rebuild_lpdu, reference_hash, required_signers, verify, verify_signatures,
};

/// Largest PDU, in bytes of canonical JSON, signatures included.
pub const PDU_BYTES_MAX: usize = 65_536;
/// Most `auth_events` a PDU may list.
pub const AUTH_EVENTS_MAX: usize = 10;
/// Most `prev_events` a PDU may list.
pub const PREV_EVENTS_MAX: usize = 20;

/// What a format failure means for a received PDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatSeverity {
    /// The event is dropped as if never received.
    Drop,
    /// The event is kept but rejected ([impl] Synapse does this in room version 10 for a
    /// field of at most 255 code points that is longer than 255 bytes).
    Reject,
}

/// Why a JSON value is not a well-formed PDU, naming the JSON path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct FormatError {
    pub path: String,
    pub problem: String,
    pub severity: FormatSeverity,
}

fn format_error(path: &str, problem: impl Into<String>) -> FormatError {
    FormatError { path: path.to_owned(), problem: problem.into(), severity: FormatSeverity::Drop }
}

/// Whether a PDU must already carry `hashes` and `signatures`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// An event being built: `hashes` and `signatures` are optional (they are about to be
    /// computed).
    Unsigned,
    /// A complete PDU as sent over federation.
    Signed,
    /// A Linearized Matrix LPDU being built by its sender: no `auth_events`, `prev_events` or
    /// `hashes.sha256`; `hashes.lpdu` and `signatures` are about to be computed.
    LpduUnsigned,
    /// A Linearized Matrix LPDU as its sender sends it to the hub: `hashes.lpdu` and
    /// `signatures` present, and still no `auth_events`, `prev_events` or `hashes.sha256`.
    Lpdu,
    /// An event as state resolution reads it, in the shape of other implementations' test
    /// fixtures and of exported rooms: `depth`, `hashes`, `signatures` and `unsigned` are
    /// optional and unchecked (state resolution never reads them; a missing or malformed
    /// `depth` reads as 0), `prev_events` may be missing, and the size limits on the whole PDU and on its
    /// `auth_events`/`prev_events` lists are not applied (they guard a server's receive
    /// path, not an offline resolution). Every field state resolution reads is checked as
    /// for a signed PDU.
    Resolution,
}

impl Stage {
    fn is_signed(self) -> bool {
        matches!(self, Stage::Signed | Stage::Lpdu)
    }

    fn is_lpdu(self) -> bool {
        matches!(self, Stage::LpduUnsigned | Stage::Lpdu)
    }
}

/// Removes the `event_id` field of an exported or fixture event and parses it.
fn take_given_id(
    json: &mut Object,
    parse: &mut impl FnMut(&str) -> Result<EventId, IdError>,
) -> Result<EventId, FormatError> {
    given_id(json.remove("event_id").as_ref(), parse)
}

/// Parses `event_id`, the `event_id` field of an exported or fixture event.
fn given_id(
    event_id: Option<&Value>,
    parse: &mut impl FnMut(&str) -> Result<EventId, IdError>,
) -> Result<EventId, FormatError> {
    match event_id {
        Some(Value::String(id)) => parse(id).map_err(|e| format_error("$.event_id", e.problem)),
        Some(_) => Err(format_error("$.event_id", "must be a string")),
        None => Err(format_error("$.event_id", "missing field")),
    }
}

/// A well-formed PDU of a known room version, with its event id.
#[derive(Clone, Debug, PartialEq)]
pub struct Pdu {
    /// Shared with its canonical encoding, so that the messages carrying a stored event
    /// (a transaction to each peer; a `send_join` answer, the room's whole state and auth
    /// chain, to each joiner) hold it without a deep copy and encode it once.
    json: Arc<EncodedObject>,
    event_id: EventId,
    // Shared texts: the events of an `mxsim resolve` input share one copy of each
    // ([`Pdu::for_resolution`]).
    room_id: Option<Arc<str>>,
    sender: Arc<str>,
    origin_server_ts: i64,
    event_type: Arc<str>,
    state_key: Option<Arc<str>>,
    depth: i64,
    auth_events: Vec<EventId>,
    prev_events: Vec<EventId>,
    redacts: Option<EventId>,
    /// `content.membership` of an `m.room.member` event when it is a string, read once:
    /// the auth rules and state resolution ask for it on every membership they look at.
    membership: Option<Box<str>>,
    /// A copy of `content`: the auth rules read it many times per check, and a lookup in
    /// the JSON object on every read cost more than the copy (measured on state
    /// resolution of a 1,000-event conflicted set). Shared, so that equal contents can be
    /// kept once ([`Pdu::share_content`]).
    content: Arc<Object>,
    /// The `users` of a power-levels content, when `mxsim resolve` took them out of
    /// `content` to keep them compactly ([`Pdu::compact_level_users`]).
    level_users: Option<Box<LevelUsers>>,
    /// The room version's [`RoomVersionRules::lpdus`], so that [`Pdu::hub_server`] reads the
    /// field only where it has a meaning.
    lpdus: bool,
}

impl Pdu {
    /// Checks the format of a signed PDU and computes its event id (the reference hash).
    pub fn from_json(rules: &RoomVersionRules, json: Object) -> Result<Pdu, FormatError> {
        Pdu::from_json_at(rules, json, Stage::Signed)
    }

    /// [`Pdu::from_json`] with the format checked at `stage` ([`Stage::Unsigned`]: an event
    /// that has no signatures yet).
    fn from_json_at(
        rules: &RoomVersionRules,
        json: Object,
        stage: Stage,
    ) -> Result<Pdu, FormatError> {
        let fields = check_format(rules, &json, stage)?;
        let event_id = EventId::from_reference_hash(&reference_hash(rules, &json));
        Ok(fields.into_pdu(json, event_id))
    }

    /// Like [`Pdu::from_json`] for an untrusted JSON value.
    pub fn from_value(rules: &RoomVersionRules, value: Value) -> Result<Pdu, FormatError> {
        match value {
            Value::Object(json) => Pdu::from_json(rules, json),
            _ => Err(format_error("$", "a PDU must be a JSON object")),
        }
    }

    /// A PDU whose event id is given rather than computed: exported rooms and test
    /// fixtures carry an `event_id` field, which is removed from the JSON and used as is.
    /// Hashes and signatures are not required (such events are not verified).
    pub fn with_given_id(rules: &RoomVersionRules, json: Object) -> Result<Pdu, FormatError> {
        Pdu::with_given_id_at(rules, json, Stage::Unsigned)
    }

    /// [`Pdu::with_given_id`] checked at `stage`: [`Stage::Resolution`] takes events as
    /// state resolution needs them, without `depth`, `hashes` or `signatures`.
    pub fn with_given_id_at(
        rules: &RoomVersionRules,
        mut json: Object,
        stage: Stage,
    ) -> Result<Pdu, FormatError> {
        let id = take_given_id(&mut json, &mut EventId::parse)?;
        let fields = check_format(rules, &json, stage)?;
        Ok(fields.into_pdu(json, id))
    }

    /// [`Pdu::with_given_id_at`] for an event that only state resolution will read (`mxsim
    /// resolve`): it keeps the fields and `content`, not the JSON, whose tree was most of
    /// the memory of a large input. Such an event is never hashed, signed, redacted or
    /// sent: [`Pdu::json`] of it is empty.
    /// Every event id it holds is `ids`' shared copy, and its `room_id`, `sender`, `type`
    /// and `state_key` are `texts`' shared copies.
    pub fn for_resolution(
        rules: &RoomVersionRules,
        mut json: Object,
        stage: Stage,
        ids: &mut IdInterner,
        texts: &mut TextInterner,
    ) -> Result<Pdu, FormatError> {
        let mut parse = |text: &str| ids.parse(text);
        // In the resolution stage nothing reads the object's size and the object is dropped
        // once its fields are taken, so `event_id` is read where it lies (its byte limit is
        // checked again, with the same outcome): removing a key from the sorted map searched
        // and rebalanced it (with `content` taken as below: 0.7% of `mxsim resolve`'s
        // instructions on 1,000 events).
        let id = if stage == Stage::Resolution {
            None
        } else {
            Some(take_given_id(&mut json, &mut parse)?)
        };
        let members = Members::of(&json);
        let id = match id {
            Some(id) => id,
            None => given_id(members.get("event_id"), &mut parse)?,
        };
        let fields =
            check_format_with(rules, &members, stage, &mut parse, &mut |text| texts.share(text))?;
        Ok(fields.into_resolution_pdu(json, id))
    }

    /// The event as JSON (without `event_id`); empty for an event made by
    /// [`Pdu::for_resolution`].
    pub fn json(&self) -> &Object {
        self.json.json()
    }

    /// [`Pdu::json`], shared, with its canonical encoding made once.
    pub fn shared_json(&self) -> &Arc<EncodedObject> {
        &self.json
    }

    pub fn into_json(self) -> Object {
        Arc::unwrap_or_clone(self.json).into_json()
    }

    pub fn event_id(&self) -> &EventId {
        &self.event_id
    }

    /// `room_id`; `None` only for a room version 12 create event.
    pub fn room_id(&self) -> Option<&str> {
        self.room_id.as_deref()
    }

    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// The server name part of `sender`.
    pub fn origin(&self) -> &str {
        ids::user_server(&self.sender).expect("checked by check_format")
    }

    pub fn origin_server_ts(&self) -> i64 {
        self.origin_server_ts
    }

    /// The event `type`.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    pub fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }

    pub fn is_state(&self) -> bool {
        self.state_key.is_some()
    }

    /// Whether this is a state event with this `type` and `state_key`. The auth rules and
    /// state resolution ask it of small states a dozen times per event checked, so the
    /// texts are compared inline ([`same_text`]) rather than by a `memcmp` call each.
    pub fn has_key(&self, event_type: &str, state_key: &str) -> bool {
        self.state_key.as_deref().is_some_and(|key| same_text(key, state_key))
            && same_text(&self.event_type, event_type)
    }

    /// `content`. A power-levels event of an `mxsim resolve` input may hold its `users`
    /// apart ([`Pdu::level_users`]): the auth rules read them through one reader in
    /// `matrix::auth`.
    pub fn content(&self) -> &Object {
        &self.content
    }

    /// The `users` of a power-levels content, when held apart from [`Pdu::content`]
    /// ([`Pdu::compact_level_users`]).
    pub fn level_users(&self) -> Option<&LevelUsers> {
        self.level_users.as_deref()
    }

    /// Takes `content.users` of an `m.room.power_levels` event out of the content and
    /// keeps it as [`LevelUsers`] made by `sharer`, when every key is a valid user id and
    /// every value an integer; returns whether it did. For the events of an `mxsim
    /// resolve` input only, like [`Pdu::for_resolution`]: such an event is never hashed,
    /// signed, redacted or sent, and only the auth rules read its content.
    pub fn compact_level_users(
        &mut self,
        sharer: &mut LevelUsersSharer,
        texts: &mut TextInterner,
    ) -> bool {
        if &*self.event_type != "m.room.power_levels" || self.level_users.is_some() {
            return false;
        }
        let Some(Value::Object(users)) = self.content.get("users") else { return false };
        let Some(compact) = sharer.compact(users, texts) else { return false };
        Arc::make_mut(&mut self.content).remove("users");
        self.level_users = Some(Box::new(compact));
        true
    }

    /// `content` as the shared copy this event holds, to hand to [`Pdu::share_content`] of
    /// events with an equal content.
    pub fn shared_content(&self) -> &Arc<Object> {
        &self.content
    }

    /// Holds `content`, which must equal this event's own, instead of its own copy: `mxsim
    /// resolve` keeps one copy of each distinct content (most memberships' are alike).
    pub fn share_content(&mut self, content: &Arc<Object>) {
        debug_assert!(**content == *self.content, "shared content differs from the event's");
        self.content = Arc::clone(content);
    }

    /// Holds, in place of each event id this event cites (`auth_events`, `prev_events`,
    /// `redacts`), the copy `shared` returns for it, which must be an equal id: servers
    /// that look the cited events up by these ids then find their stored copies by
    /// pointer, not by comparing text. The event's own id is left as it is.
    pub(crate) fn share_cited_ids(&mut self, mut shared: impl FnMut(&EventId) -> Option<EventId>) {
        let cited =
            self.auth_events.iter_mut().chain(&mut self.prev_events).chain(&mut self.redacts);
        for id in cited {
            if let Some(copy) = shared(id) {
                debug_assert!(copy == *id, "a shared id differs from the one it replaces");
                *id = copy;
            }
        }
    }

    /// Holds `content` in place of the event's own and returns that: `mxsim resolve` keeps
    /// the contents the auth rules never read as text until it knows whether state
    /// resolution reads the event at all, and then puts back the ones it does. Anything
    /// read from an event between the two calls reads the stand-in.
    pub fn replace_content(&mut self, content: Arc<Object>) -> Arc<Object> {
        std::mem::replace(&mut self.content, content)
    }

    /// `depth`; 0 in a room version without the field (Linearized Matrix: the position in
    /// the hub's list plays its part).
    pub fn depth(&self) -> i64 {
        self.depth
    }

    /// `hub_server`: the hub that completed this event from its sender's LPDU. Always `None`
    /// in room versions without LPDUs, where the key is just an unknown field.
    pub fn hub_server(&self) -> Option<&str> {
        if !self.lpdus {
            return None;
        }
        self.json().get("hub_server").and_then(Value::as_str)
    }

    pub fn auth_events(&self) -> &[EventId] {
        &self.auth_events
    }

    pub fn prev_events(&self) -> &[EventId] {
        &self.prev_events
    }

    /// `content.membership` of an `m.room.member` event, if it is a string.
    pub fn membership(&self) -> Option<&str> {
        self.membership.as_deref()
    }

    /// The event an `m.room.redaction` redacts: top-level `redacts` in room version 10,
    /// `content.redacts` from 11 on. `None` for other event types or when absent/invalid.
    pub fn redacts(&self) -> Option<&EventId> {
        self.redacts.as_ref()
    }

    /// The v12 room id this event implies or carries: `room_id`, or for a v12 create event
    /// `!` + its own reference hash.
    pub fn room_id_or_derived(&self) -> String {
        match &self.room_id {
            Some(room_id) => room_id.to_string(),
            None => self.event_id.to_room_id(),
        }
    }

    /// Whether [`Pdu::room_id_or_derived`] is `room_id`, without building it: a server
    /// asks this of every event it reads back for a room, a thousand per fetched state at
    /// a thousand servers.
    pub fn is_in_room(&self, room_id: &str) -> bool {
        match &self.room_id {
            Some(own) => **own == *room_id,
            None => self.event_id.names_room(room_id),
        }
    }
}

impl serde::Serialize for Pdu {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json().serialize(serializer)
    }
}
