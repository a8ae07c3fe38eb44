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

use serde_json::Value;

use crate::matrix::canonical_json::{self, INT_MAX, Object};
use crate::matrix::crypto::{self, KeyRing, SigningKey};
use crate::matrix::ids::{self, EventId, ID_BYTES_MAX};
use crate::matrix::redaction;
use crate::matrix::room_version::RoomVersionRules;

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

/// A well-formed PDU of a known room version, with its event id.
#[derive(Clone, Debug, PartialEq)]
pub struct Pdu {
    json: Object,
    event_id: EventId,
    room_id: Option<String>,
    sender: String,
    origin_server_ts: i64,
    event_type: String,
    state_key: Option<String>,
    depth: i64,
    auth_events: Vec<EventId>,
    prev_events: Vec<EventId>,
    redacts: Option<EventId>,
    /// `content.membership` of an `m.room.member` event when it is a string, read once:
    /// the auth rules and state resolution ask for it on every membership they look at.
    membership: Option<Box<str>>,
    /// A copy of `content`: the auth rules read it many times per check, and a lookup in
    /// the JSON object on every read cost more than the copy (measured on state
    /// resolution of a 1,000-event conflicted set).
    content: Object,
    /// The room version's [`RoomVersionRules::lpdus`], so that [`Pdu::hub_server`] reads the
    /// field only where it has a meaning.
    lpdus: bool,
}

impl Pdu {
    /// Checks the format of a signed PDU and computes its event id (the reference hash).
    pub fn from_json(rules: &RoomVersionRules, json: Object) -> Result<Pdu, FormatError> {
        let fields = check_format(rules, &json, Stage::Signed)?;
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
        let id = match json.remove("event_id") {
            Some(Value::String(id)) => {
                EventId::parse(&id).map_err(|e| format_error("$.event_id", e.problem))?
            }
            Some(_) => return Err(format_error("$.event_id", "must be a string")),
            None => return Err(format_error("$.event_id", "missing field")),
        };
        let fields = check_format(rules, &json, stage)?;
        Ok(fields.into_pdu(json, id))
    }

    pub fn json(&self) -> &Object {
        &self.json
    }

    pub fn into_json(self) -> Object {
        self.json
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

    pub fn content(&self) -> &Object {
        &self.content
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
        self.json.get("hub_server").and_then(Value::as_str)
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
            Some(room_id) => room_id.clone(),
            None => self.event_id.to_room_id(),
        }
    }
}

impl serde::Serialize for Pdu {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

/// Typed fields extracted by [`check_format`].
struct Fields {
    room_id: Option<String>,
    sender: String,
    origin_server_ts: i64,
    event_type: String,
    state_key: Option<String>,
    depth: i64,
    auth_events: Vec<EventId>,
    prev_events: Vec<EventId>,
    redacts: Option<EventId>,
    lpdus: bool,
}

impl Fields {
    fn into_pdu(self, json: Object, event_id: EventId) -> Pdu {
        let membership = if self.event_type == "m.room.member" {
            json.get("content")
                .and_then(|c| c.get("membership"))
                .and_then(Value::as_str)
                .map(Box::from)
        } else {
            None
        };
        let content = json
            .get("content")
            .and_then(Value::as_object)
            .cloned()
            .expect("checked by check_format");
        Pdu {
            content,
            membership,
            json,
            event_id,
            room_id: self.room_id,
            sender: self.sender,
            origin_server_ts: self.origin_server_ts,
            event_type: self.event_type,
            state_key: self.state_key,
            depth: self.depth,
            auth_events: self.auth_events,
            prev_events: self.prev_events,
            redacts: self.redacts,
            lpdus: self.lpdus,
        }
    }
}

fn get_string<'a>(json: &'a Object, key: &str) -> Result<Option<&'a str>, FormatError> {
    match json.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format_error(&format!("$.{key}"), "must be a string")),
    }
}

fn require<T>(value: Option<T>, key: &str) -> Result<T, FormatError> {
    value.ok_or_else(|| format_error(&format!("$.{key}"), "missing required field"))
}

fn get_integer(json: &Object, key: &str) -> Result<Option<i64>, FormatError> {
    match json.get(key) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) if (-INT_MAX..=INT_MAX).contains(&i) => Ok(Some(i)),
            _ => {
                Err(format_error(&format!("$.{key}"), "must be an integer in [-(2^53)+1, 2^53-1]"))
            }
        },
        Some(_) => Err(format_error(&format!("$.{key}"), "must be an integer")),
    }
}

/// Checks the byte limit on an identifier-like field. In room version 10 a value of at
/// most 255 code points but more than 255 bytes is a rejection, not a drop ([impl]).
fn check_field_bytes(rules: &RoomVersionRules, key: &str, value: &str) -> Result<(), FormatError> {
    if value.len() <= ID_BYTES_MAX {
        return Ok(());
    }
    let mut error = format_error(&format!("$.{key}"), format!("longer than {ID_BYTES_MAX} bytes"));
    if !rules.strict_field_byte_limits && value.chars().count() <= ID_BYTES_MAX {
        error.severity = FormatSeverity::Reject;
    }
    Err(error)
}

fn get_event_ids(
    json: &Object,
    key: &str,
    max: usize,
) -> Result<Option<Vec<EventId>>, FormatError> {
    let Some(value) = json.get(key) else { return Ok(None) };
    let Value::Array(items) = value else {
        return Err(format_error(&format!("$.{key}"), "must be an array of event ids"));
    };
    if items.len() > max {
        return Err(format_error(&format!("$.{key}"), format!("more than {max} entries")));
    }
    let mut ids = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        // The path is formatted only for an error: this loop runs for every listed id.
        let path = || format!("$.{key}[{index}]");
        let Value::String(text) = item else {
            return Err(format_error(&path(), "must be a string"));
        };
        ids.push(EventId::parse(text).map_err(|e| format_error(&path(), e.problem))?);
    }
    Ok(Some(ids))
}

/// Checks that `json` is a well-formed PDU of the room version (field presence and types,
/// identifier grammar, list lengths, size limits).
fn check_format(
    rules: &RoomVersionRules,
    json: &Object,
    stage: Stage,
) -> Result<Fields, FormatError> {
    let event_type = require(get_string(json, "type")?, "type")?;
    check_field_bytes(rules, "type", event_type)?;
    let state_key = get_string(json, "state_key")?;
    if let Some(state_key) = state_key {
        check_field_bytes(rules, "state_key", state_key)?;
    }
    let sender = require(get_string(json, "sender")?, "sender")?;
    check_field_bytes(rules, "sender", sender)?;
    ids::parse_user_id(sender).map_err(|e| format_error("$.sender", e.problem))?;

    // Room version 12: the create event has no `room_id` (it is derived from the event's own
    // reference hash). Whether a create event carrying one is acceptable is auth rule 1.2,
    // which rejects it; here it is only format-checked like any other room id.
    let room_id = get_string(json, "room_id")?;
    let is_create = event_type == "m.room.create" && state_key == Some("");
    let room_id_optional = rules.room_id_is_create_event_hash && is_create;
    if room_id.is_none() && !room_id_optional {
        return Err(format_error("$.room_id", "missing required field"));
    }
    if let Some(room_id) = room_id {
        check_field_bytes(rules, "room_id", room_id)?;
        check_room_id_shape(rules, room_id)?;
    }
    let origin_server_ts = require(get_integer(json, "origin_server_ts")?, "origin_server_ts")?;
    let resolution = stage == Stage::Resolution;
    // Linearized Matrix has no `depth`; a `depth` key there is an unknown field, covered by
    // the content hash and nothing else. State resolution never reads it: in the resolution
    // stage a missing or malformed `depth` reads as 0.
    let depth = if !rules.depth_field {
        0
    } else if resolution {
        get_integer(json, "depth").ok().flatten().unwrap_or(0)
    } else {
        require(get_integer(json, "depth")?, "depth")?
    };
    match json.get("content") {
        Some(Value::Object(_)) => {}
        Some(_) => return Err(format_error("$.content", "must be an object")),
        None => return Err(format_error("$.content", "missing required field")),
    }
    match json.get("hashes") {
        _ if resolution => {}
        None if stage.is_signed() => {
            return Err(format_error("$.hashes", "missing required field"));
        }
        None => {}
        // An LPDU's sender "MUST NOT populate" any hash but `hashes.lpdu` (digest:
        // spec/linearized-matrix.md §4); `hashes.lpdu` itself is checked below.
        Some(Value::Object(hashes)) if stage.is_lpdu() => {
            if let Some(key) = hashes.keys().find(|key| *key != "lpdu") {
                let mut path = String::from("$.hashes");
                canonical_json::push_key(&mut path, key);
                return Err(format_error(&path, "an LPDU carries no hash but hashes.lpdu"));
            }
        }
        Some(Value::Object(hashes)) => match hashes.get("sha256") {
            Some(Value::String(_)) => {}
            Some(_) => return Err(format_error("$.hashes.sha256", "must be a string")),
            None if stage.is_signed() => {
                return Err(format_error("$.hashes.sha256", "missing required field"));
            }
            None => {}
        },
        Some(_) => return Err(format_error("$.hashes", "must be an object")),
    }
    match json.get("signatures") {
        _ if resolution => {}
        None if stage.is_signed() => {
            return Err(format_error("$.signatures", "missing required field"));
        }
        None => {}
        Some(Value::Object(by_server)) => {
            for (server, keys) in by_server {
                let mut path = String::from("$.signatures");
                canonical_json::push_key(&mut path, server);
                let Value::Object(keys) = keys else {
                    return Err(format_error(&path, "must be an object of key id to signature"));
                };
                for (key_id, signature) in keys {
                    if !signature.is_string() {
                        canonical_json::push_key(&mut path, key_id);
                        return Err(format_error(&path, "must be a string"));
                    }
                }
            }
        }
        Some(_) => return Err(format_error("$.signatures", "must be an object")),
    }
    if let Some(unsigned) = json.get("unsigned").filter(|_| !resolution) {
        if !unsigned.is_object() {
            return Err(format_error("$.unsigned", "must be an object"));
        }
    }
    let (auth_events, prev_events) = if stage.is_lpdu() {
        // The sender cannot know the order, so the hub sets these (digest:
        // spec/linearized-matrix.md §4).
        assert!(rules.lpdus, "LPDUs exist only in Linearized Matrix room versions");
        for key in ["auth_events", "prev_events"] {
            if json.contains_key(key) {
                return Err(format_error(&format!("$.{key}"), "an LPDU must not carry it"));
            }
        }
        (Vec::new(), Vec::new())
    } else {
        let (auth_events_max, prev_events_max) =
            if resolution { (usize::MAX, usize::MAX) } else { (AUTH_EVENTS_MAX, PREV_EVENTS_MAX) };
        let auth_events =
            require(get_event_ids(json, "auth_events", auth_events_max)?, "auth_events")?;
        // State resolution never reads `prev_events`.
        let prev_events = match get_event_ids(json, "prev_events", prev_events_max)? {
            None if resolution => Vec::new(),
            prev_events => require(prev_events, "prev_events")?,
        };
        (auth_events, prev_events)
    };
    if rules.lpdus {
        check_hub_fields(json, is_create, prev_events.len(), stage)?;
    }
    if let Some(event_id) = get_string(json, "event_id")? {
        check_field_bytes(rules, "event_id", event_id)?;
    }
    let redacts = if event_type != "m.room.redaction" {
        None
    } else if rules.redacts_in_content {
        // v11+: `content.redacts`. A missing or malformed target is not a format error
        // (the spec gives none); such a redaction simply redacts nothing.
        let content = json.get("content").and_then(Value::as_object).expect("checked above");
        content.get("redacts").and_then(Value::as_str).and_then(|s| EventId::parse(s).ok())
    } else {
        match get_string(json, "redacts")? {
            Some(id) => Some(EventId::parse(id).map_err(|e| format_error("$.redacts", e.problem))?),
            None => None,
        }
    };
    // The size limit needs the canonical encoding, which is most of the cost of this check.
    let size = if resolution {
        0
    } else {
        canonical_json::encode_object(json).map_err(|e| format_error(&e.path, e.problem))?.len()
    };
    if size > PDU_BYTES_MAX {
        return Err(format_error(
            "$",
            format!("PDU is {size} bytes of canonical JSON, more than {PDU_BYTES_MAX}"),
        ));
    }
    Ok(Fields {
        room_id: room_id.map(str::to_owned),
        sender: sender.to_owned(),
        origin_server_ts,
        event_type: event_type.to_owned(),
        state_key: state_key.map(str::to_owned),
        depth,
        auth_events,
        prev_events,
        redacts,
        lpdus: rules.lpdus,
    })
}

/// The Linearized Matrix rules on `hub_server` and `hashes.lpdu` of a PDU (digest:
/// spec/linearized-matrix.md §3): `hub_server`, when present, is a valid server name; an
/// event with `hub_server` carries `hashes.lpdu.sha256` and exactly one `prev_events` entry;
/// an event without it carries no `hashes.lpdu`.
///
/// [digest] "Expected to have exactly 1 entry" is read as a format rule (a completed event
/// names the head of the hub's list), except for `m.room.create`, which has no `prev_events`
/// whatever it carries (the create rule rejects one that has). Before signing
/// ([`Stage::Unsigned`]) `hashes` may still be absent, but a `hub_server` event must already
/// carry its LPDU hash: only the sender can compute it.
///
/// An LPDU ([`Stage::LpduUnsigned`], [`Stage::Lpdu`]) must name its hub: [digest] the
/// participant puts `hub_server` into the LPDU, so that its hash and signature cover it (the
/// draft's implementation notes and eigen-server do this; a hub adding it would break the
/// sender's signature). Its LPDU hash is required once it is signed.
fn check_hub_fields(
    json: &Object,
    is_create: bool,
    prev_event_count: usize,
    stage: Stage,
) -> Result<(), FormatError> {
    let hub_server = get_string(json, "hub_server")?;
    if let Some(hub_server) = hub_server {
        ids::check_server_name(hub_server).map_err(|e| format_error("$.hub_server", e.problem))?;
    }
    if stage.is_lpdu() && hub_server.is_none() {
        return Err(format_error("$.hub_server", "an LPDU must name the hub it is sent through"));
    }
    let lpdu = json.get("hashes").and_then(|hashes| hashes.get("lpdu"));
    if stage == Stage::LpduUnsigned && lpdu.is_none() {
        return Ok(());
    }
    match (hub_server, lpdu) {
        (Some(_), None) => {
            return Err(format_error(
                "$.hashes.lpdu",
                "an event with hub_server must carry the LPDU hash",
            ));
        }
        (None, Some(_)) => {
            return Err(format_error(
                "$.hashes.lpdu",
                "only an event with hub_server may carry an LPDU hash",
            ));
        }
        (Some(_), Some(Value::Object(lpdu))) => match lpdu.get("sha256") {
            Some(Value::String(_)) => {}
            Some(_) => return Err(format_error("$.hashes.lpdu.sha256", "must be a string")),
            None => return Err(format_error("$.hashes.lpdu.sha256", "missing required field")),
        },
        (Some(_), Some(_)) => return Err(format_error("$.hashes.lpdu", "must be an object")),
        (None, None) => {}
    }
    if hub_server.is_some() && !is_create && !stage.is_lpdu() && prev_event_count != 1 {
        return Err(format_error(
            "$.prev_events",
            format!("an event with hub_server has exactly 1 prev event, not {prev_event_count}"),
        ));
    }
    Ok(())
}

fn check_room_id_shape(rules: &RoomVersionRules, room_id: &str) -> Result<(), FormatError> {
    let result = if rules.room_id_is_create_event_hash {
        // Room version 12: `!` + the create event's id without `$`. Which create event is
        // auth rule 2; here only the shape of an event id with another sigil is checked, so
        // that fixtures with readable ids (`$create` → `!create`) are well-formed.
        let rest = room_id.strip_prefix('!').unwrap_or("");
        if rest.is_empty() || rest.contains(':') {
            Err("must be '!' followed by the create event's id without its '$' (no ':domain')")
        } else {
            Ok(())
        }
    } else {
        ids::check_room_id(room_id, rules.room_id_format).map_err(|e| e.problem)
    };
    result.map_err(|problem| format_error("$.room_id", problem))
}

/// Checks the format of a Linearized Matrix LPDU: `stage` is [`Stage::LpduUnsigned`] before
/// its sender hashes and signs it, [`Stage::Lpdu`] as sent to the hub. Panics for another
/// stage or a room version without LPDUs (a bug in the caller).
pub(crate) fn check_lpdu(
    rules: &RoomVersionRules,
    json: Object,
    stage: Stage,
) -> Result<Pdu, FormatError> {
    assert!(stage.is_lpdu(), "check_lpdu checks LPDUs");
    let fields = check_format(rules, &json, stage)?;
    let id = EventId::from_reference_hash(&reference_hash(rules, &json));
    Ok(fields.into_pdu(json, id))
}

/// Checks the format of an event that is about to be hashed and signed.
pub fn check_unsigned(rules: &RoomVersionRules, json: &Object) -> Result<(), FormatError> {
    check_format(rules, json, Stage::Unsigned).map(|_| ())
}

/// Checks the format of a complete PDU.
pub fn check_signed(rules: &RoomVersionRules, json: &Object) -> Result<(), FormatError> {
    check_format(rules, json, Stage::Signed).map(|_| ())
}

/// The content hash: SHA-256 of the canonical JSON of the event without `unsigned`,
/// `signatures` and `hashes`.
///
/// Panics if the object holds a number canonical JSON cannot represent: every PDU passed
/// `check_format`, and every object mxsim builds holds only integers.
pub fn content_hash(json: &Object) -> [u8; 32] {
    let bytes = canonical_json::encode_object_without(json, &["unsigned", "signatures", "hashes"])
        .expect("PDU JSON holds only canonical numbers");
    crypto::sha256(&bytes)
}

/// The content hash of a PDU under the room version's rules: [`content_hash`], except that
/// with [`RoomVersionRules::lpdus`] an `hashes.lpdu` object is kept in the hashed object
/// (the PDU hash covers the LPDU hash).
///
/// Spec: Linearized Matrix "Content Hash Calculation" step 1.2 (digest:
/// spec/linearized-matrix.md §5). [digest] Without an LPDU hash `hashes` is removed whole, as
/// in Matrix and eigen-server, rather than left as `{}`; `unsigned` is removed, as Matrix and
/// the draft's implementation notes do (eigen-server keeps it; the draft is silent).
pub fn content_hash_in(rules: &RoomVersionRules, json: &Object) -> [u8; 32] {
    let lpdu = json.get("hashes").and_then(|hashes| hashes.get("lpdu"));
    let Some(lpdu) = lpdu.filter(|_| rules.lpdus) else { return content_hash(json) };
    let mut hashed = Object::new();
    for (key, value) in json {
        match key.as_str() {
            "unsigned" | "signatures" => {}
            "hashes" => {
                let mut hashes = Object::new();
                hashes.insert("lpdu".to_owned(), lpdu.clone());
                hashed.insert(key.clone(), Value::Object(hashes));
            }
            _ => {
                hashed.insert(key.clone(), value.clone());
            }
        }
    }
    let bytes =
        canonical_json::encode_object(&hashed).expect("PDU JSON holds only canonical numbers");
    crypto::sha256(&bytes)
}

/// The LPDU a Linearized Matrix PDU was completed from: the PDU without `auth_events` and
/// `prev_events`, with `hashes` reduced to `{"lpdu": …}` (and without `hashes` if it has no
/// LPDU hash). Everything else, `hub_server` and `signatures` included, is kept.
///
/// The draft does not spell this out; it is the inverse of the hub's completion (digest:
/// spec/linearized-matrix.md §4, "Verifying the sender's LPDU signature", which is also how
/// eigen-server rebuilds it).
pub fn rebuild_lpdu(json: &Object) -> Object {
    let mut lpdu = json.clone();
    lpdu.remove("auth_events");
    lpdu.remove("prev_events");
    let lpdu_hash = json.get("hashes").and_then(|hashes| hashes.get("lpdu")).cloned();
    match lpdu_hash {
        Some(hash) => {
            let mut hashes = Object::new();
            hashes.insert("lpdu".to_owned(), hash);
            lpdu.insert("hashes".to_owned(), Value::Object(hashes));
        }
        None => {
            lpdu.remove("hashes");
        }
    }
    lpdu
}

/// The LPDU content hash of an LPDU (or of a PDU's [`rebuild_lpdu`]): SHA-256 of its
/// canonical JSON without `signatures`, `hashes` and `unsigned` — which is exactly
/// [`content_hash`]'s preimage.
///
/// Spec: Linearized Matrix "Content Hash Calculation" step 1.1 (digest:
/// spec/linearized-matrix.md §5). Callers pass an object without `auth_events` and
/// `prev_events` (an LPDU has none).
pub fn lpdu_content_hash(lpdu: &Object) -> [u8; 32] {
    assert!(!lpdu.contains_key("auth_events"), "an LPDU has no auth_events");
    assert!(!lpdu.contains_key("prev_events"), "an LPDU has no prev_events");
    content_hash(lpdu)
}

/// The reference hash: SHA-256 of the canonical JSON of the redacted event without
/// `signatures` and `unsigned` (the same bytes the origin server signs).
pub fn reference_hash(rules: &RoomVersionRules, json: &Object) -> [u8; 32] {
    crypto::sha256(&signing_bytes(rules, json))
}

/// The bytes an event signature covers: the redacted event without `signatures` and
/// `unsigned`, as canonical JSON.
pub(crate) fn signing_bytes(rules: &RoomVersionRules, json: &Object) -> Vec<u8> {
    redaction::redacted_signing_bytes(rules.redaction, json)
        .expect("PDU JSON holds only canonical numbers")
}

/// The event id of an event: `$` + URL-safe unpadded base64 of its reference hash.
pub fn event_id(rules: &RoomVersionRules, json: &Object) -> EventId {
    EventId::from_reference_hash(&reference_hash(rules, json))
}

/// Adds `hashes` and then `signatures` to an event, in the order the spec requires:
/// content hash of the full event, then a signature over the redacted event, copied back
/// onto the full event. Existing signatures by other servers are kept.
///
/// With [`RoomVersionRules::lpdus`] an existing `hashes.lpdu` is kept and covered by the new
/// `hashes.sha256`: this is the hub's last step in completing an LPDU (digest:
/// spec/linearized-matrix.md §4).
pub fn hash_and_sign(
    rules: &RoomVersionRules,
    json: &mut Object,
    server_name: &str,
    key: &SigningKey,
) {
    let hash = crypto::base64_encode(&content_hash_in(rules, json));
    let lpdu = json.get("hashes").and_then(|hashes| hashes.get("lpdu")).cloned();
    let mut hashes = Object::new();
    if let Some(lpdu) = lpdu.filter(|_| rules.lpdus) {
        hashes.insert("lpdu".to_owned(), lpdu);
    }
    hashes.insert("sha256".to_owned(), Value::String(hash));
    json.insert("hashes".to_owned(), Value::Object(hashes));
    add_signature(rules, json, server_name, key);
}

/// Adds this server's signature to an event that already has its hashes, keeping every
/// other signature: what an invited server does to an invite, or a resident to a restricted
/// join. The event id does not change (it does not cover signatures).
pub fn add_signature(
    rules: &RoomVersionRules,
    json: &mut Object,
    server_name: &str,
    key: &SigningKey,
) {
    let signature = key.sign_bytes(&signing_bytes(rules, json));
    let signatures = json.entry("signatures").or_insert_with(|| Value::Object(Object::new()));
    if !signatures.is_object() {
        *signatures = Value::Object(Object::new());
    }
    let by_server = signatures
        .as_object_mut()
        .expect("made an object above")
        .entry(server_name)
        .or_insert_with(|| Value::Object(Object::new()));
    if !by_server.is_object() {
        *by_server = Value::Object(Object::new());
    }
    by_server
        .as_object_mut()
        .expect("made an object above")
        .insert(key.key_id().to_owned(), Value::String(signature));
}

/// Builds a signed PDU from an event without hashes or signatures.
pub fn build_signed(
    rules: &RoomVersionRules,
    mut json: Object,
    server_name: &str,
    key: &SigningKey,
) -> Result<Pdu, FormatError> {
    check_unsigned(rules, &json)?;
    hash_and_sign(rules, &mut json, server_name, key);
    let pdu = Pdu::from_json(rules, json)?;
    // The signature we just made must verify: a failure here is a bug in mxsim.
    let mut ring = KeyRing::new();
    ring.entry(server_name.to_owned())
        .or_default()
        .insert(key.key_id().to_owned(), key.public_key());
    if pdu.origin() == server_name && pdu.hub_server().is_none() {
        assert!(matches!(verify(rules, &pdu, &ring), Ok(Verified::Intact)));
    }
    Ok(pdu)
}

/// The outcome of checking a received PDU's signatures and hashes.
#[derive(Clone, Debug, PartialEq)]
pub enum Verified {
    /// Signatures and content hash are valid: use the event as received.
    Intact,
    /// Signatures are valid but the content hash is not: the receiver must use its own
    /// redacted copy from now on (spec: "assume you were given a redacted copy").
    Redacted(Object),
}

/// Why a received PDU fails its signature check (the event is dropped).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature check failed: {0}")]
    Signature(#[from] crypto::SignatureError),
    /// Linearized Matrix: the sender's server's signature over the LPDU does not verify.
    #[error("LPDU signature check failed: {0}")]
    LpduSignature(crypto::SignatureError),
    /// Linearized Matrix: the `hub_server`'s signature over the PDU does not verify.
    #[error("hub signature check failed: {0}")]
    HubSignature(crypto::SignatureError),
}

/// The servers that must have signed a PDU: since room version 3, only the originating
/// server, the server name of `sender`. In Linearized Matrix also the `hub_server` when
/// present, first (digest: spec/linearized-matrix.md §6 step 2); the same server is listed
/// once.
pub fn required_signers(pdu: &Pdu) -> Vec<&str> {
    match pdu.hub_server() {
        Some(hub) if hub != pdu.origin() => vec![hub, pdu.origin()],
        _ => vec![pdu.origin()],
    }
}

/// Checks the signatures a PDU needs, and only those: the sender's server over the redacted
/// event, and in Linearized Matrix with a `hub_server` that is another server, the hub over
/// the redacted PDU and the sender's server over the redacted LPDU ([`rebuild_lpdu`]).
///
/// Spec: "Validating hashes and signatures on received events"; Linearized Matrix receipt
/// step 2 and auth rules 1–2 ("all other signatures MUST NOT be considered"; digest:
/// spec/linearized-matrix.md §6). When `hub_server` is the sender's own server the one
/// signature covers the PDU (rule 1: an LPDU signature only when the hub "is not the same
/// server").
pub fn verify_signatures(
    rules: &RoomVersionRules,
    pdu: &Pdu,
    keys: &KeyRing,
) -> Result<(), VerifyError> {
    // The redacted event keeps the full event's signatures, and the bytes they cover are
    // the redacted event without them: the reference-hash preimage.
    let bytes = signing_bytes(rules, pdu.json());
    let signatures = pdu.json().get("signatures");
    match pdu.hub_server() {
        Some(hub) if hub != pdu.origin() => {
            crypto::verify_signatures(signatures, hub, keys, &bytes)
                .map_err(VerifyError::HubSignature)?;
            let lpdu_bytes = signing_bytes(rules, &rebuild_lpdu(pdu.json()));
            crypto::verify_signatures(signatures, pdu.origin(), keys, &lpdu_bytes)
                .map_err(VerifyError::LpduSignature)
        }
        _ => Ok(crypto::verify_signatures(signatures, pdu.origin(), keys, &bytes)?),
    }
}

/// Whether a PDU's content hashes match: `hashes.sha256` (compared as decoded bytes, so an
/// equivalent encoding still matches) and, for an event with `hub_server`, the LPDU hash
/// `hashes.lpdu.sha256` of its [`rebuild_lpdu`].
pub fn content_hashes_match(rules: &RoomVersionRules, pdu: &Pdu) -> bool {
    let hashes = pdu.json().get("hashes");
    let matches = |given: Option<&Value>, computed: [u8; 32]| {
        given
            .and_then(Value::as_str)
            .and_then(crypto::base64_decode)
            .is_some_and(|given| given.as_slice() == computed.as_slice())
    };
    let pdu_hash = hashes.and_then(|h| h.get("sha256"));
    if !matches(pdu_hash, content_hash_in(rules, pdu.json())) {
        return false;
    }
    if pdu.hub_server().is_none() {
        return true;
    }
    let lpdu_hash = hashes.and_then(|h| h.get("lpdu")).and_then(|l| l.get("sha256"));
    matches(lpdu_hash, lpdu_content_hash(&rebuild_lpdu(pdu.json())))
}

/// Checks a received PDU: signatures of the required servers over the redacted event, then
/// the content hash (spec: "Validating hashes and signatures on received events").
///
/// Keys missing from `keys` make the check fail (the caller fetches keys first). Key
/// validity periods are the caller's concern: `keys` holds the keys valid for this event.
/// The `join_authorised_via_users_server` signature is an auth rule (v10/v11 4.2.1, v12
/// 5.2.1) and is checked there, not here.
pub fn verify(
    rules: &RoomVersionRules,
    pdu: &Pdu,
    keys: &KeyRing,
) -> Result<Verified, VerifyError> {
    verify_signatures(rules, pdu, keys)?;
    // Linearized Matrix receipt step 3: either hash failing means the redacted copy.
    if content_hashes_match(rules, pdu) {
        Ok(Verified::Intact)
    } else {
        Ok(Verified::Redacted(redaction::redact(rules.redaction, pdu.json())))
    }
}
