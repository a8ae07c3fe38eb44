//! Format checks of a PDU at each [`Stage`]: field presence and types, identifier grammar,
//! list lengths and size limits, and the Linearized Matrix rules on `hub_server` and
//! `hashes.lpdu` (digest: spec/events.md §2–§6, spec/linearized-matrix.md §3–§4).

use std::sync::Arc;

use serde_json::Value;

use crate::matrix::canonical_json::{self, EncodedObject, INT_MAX, Object};
use crate::matrix::ids::{self, EventId, ID_BYTES_MAX, IdError};
use crate::matrix::pdu::{
    AUTH_EVENTS_MAX, FormatError, FormatSeverity, PDU_BYTES_MAX, PREV_EVENTS_MAX, Pdu, Stage,
    format_error, reference_hash,
};
use crate::matrix::room_version::RoomVersionRules;

/// Typed fields extracted by [`check_format`].
pub(super) struct Fields {
    room_id: Option<Arc<str>>,
    sender: Arc<str>,
    origin_server_ts: i64,
    event_type: Arc<str>,
    state_key: Option<Arc<str>>,
    depth: i64,
    auth_events: Vec<EventId>,
    prev_events: Vec<EventId>,
    redacts: Option<EventId>,
    lpdus: bool,
}

impl Fields {
    pub(super) fn into_pdu(self, json: Object, event_id: EventId) -> Pdu {
        let content = json
            .get("content")
            .and_then(Value::as_object)
            .cloned()
            .expect("checked by check_format");
        self.with_content(json, content, event_id)
    }

    /// The PDU without its JSON: `content` is moved out of it and the rest dropped.
    pub(super) fn into_resolution_pdu(self, json: Object, event_id: EventId) -> Pdu {
        // The object is dropped here: `content` is taken as the object's members are dropped
        // in key order (it comes second), not removed from the sorted map first.
        let content = json
            .into_iter()
            .find_map(|(key, value)| match value {
                Value::Object(content) if key == "content" => Some(content),
                _ => None,
            })
            .unwrap_or_else(|| unreachable!("checked by check_format"));
        self.with_content(Object::new(), content, event_id)
    }

    fn with_content(self, json: Object, content: Object, event_id: EventId) -> Pdu {
        let membership = if &*self.event_type == "m.room.member" {
            content.get("membership").and_then(Value::as_str).map(Box::from)
        } else {
            None
        };
        Pdu {
            content: std::sync::Arc::new(content),
            level_users: None,
            membership,
            json: std::sync::Arc::new(EncodedObject::new(json)),
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

/// The members of an event object that the format checks read, found in one walk over its
/// keys. A lookup in the sorted map compares the key with several others, and the checks
/// make a dozen lookups per event (finding them once took 4.3% off `mxsim resolve`'s
/// instructions at 1,000 events); here each costs a match on the key. The values are the object's own, so every
/// check sees what a lookup in the object would give it.
pub(super) struct Members<'a> {
    object: &'a Object,
    found: [Option<&'a Value>; READ_COUNT],
}

/// How many keys [`read_slot`] knows.
const READ_COUNT: usize = 15;

/// The place in [`Members::found`] of a key the checks read; `None` for any other key.
fn read_slot(key: &str) -> Option<usize> {
    Some(match key {
        "auth_events" => 0,
        "content" => 1,
        "depth" => 2,
        "event_id" => 3,
        "hashes" => 4,
        "hub_server" => 5,
        "origin_server_ts" => 6,
        "prev_events" => 7,
        "redacts" => 8,
        "room_id" => 9,
        "sender" => 10,
        "signatures" => 11,
        "state_key" => 12,
        "type" => 13,
        "unsigned" => 14,
        _ => return None,
    })
}

impl<'a> Members<'a> {
    pub(super) fn of(object: &'a Object) -> Members<'a> {
        let mut found = [None; READ_COUNT];
        for (key, value) in object {
            if let Some(slot) = read_slot(key) {
                found[slot] = Some(value);
            }
        }
        Members { object, found }
    }

    /// What `object.get(key)` gives.
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        match read_slot(key) {
            Some(slot) => self.found[slot],
            None => self.object.get(key),
        }
    }

    fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

fn get_string<'a>(json: &Members<'a>, key: &str) -> Result<Option<&'a str>, FormatError> {
    match json.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format_error(&format!("$.{key}"), "must be a string")),
    }
}

fn require<T>(value: Option<T>, key: &str) -> Result<T, FormatError> {
    value.ok_or_else(|| format_error(&format!("$.{key}"), "missing required field"))
}

fn get_integer(json: &Members<'_>, key: &str) -> Result<Option<i64>, FormatError> {
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
    json: &Members<'_>,
    key: &str,
    max: usize,
    parse: &mut impl FnMut(&str) -> Result<EventId, IdError>,
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
        ids.push(parse(text).map_err(|e| format_error(&path(), e.problem))?);
    }
    Ok(Some(ids))
}

/// Checks that `json` is a well-formed PDU of the room version (field presence and types,
/// identifier grammar, list lengths, size limits). The steps run in this order, and the
/// first failure is the one reported.
pub(super) fn check_format(
    rules: &RoomVersionRules,
    json: &Object,
    stage: Stage,
) -> Result<Fields, FormatError> {
    let mut own_copy = |text: &str| Arc::from(text);
    check_format_with(rules, &Members::of(json), stage, &mut EventId::parse, &mut own_copy)
}

/// [`check_format`] with the event ids it holds made by `parse` ([`EventId::parse`], or an
/// interner's), and its texts (`room_id`, `sender`, `type`, `state_key`) by `text` (a copy
/// of its own, or an interner's shared copy).
pub(super) fn check_format_with(
    rules: &RoomVersionRules,
    json: &Members<'_>,
    stage: Stage,
    parse: &mut impl FnMut(&str) -> Result<EventId, IdError>,
    text: &mut impl FnMut(&str) -> Arc<str>,
) -> Result<Fields, FormatError> {
    let (event_type, state_key, sender) = check_type_and_sender(rules, json)?;
    let is_create = event_type == "m.room.create" && state_key == Some("");
    let room_id = check_room_id_field(rules, json, is_create)?;
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
    check_hashes_field(json, stage)?;
    check_signatures_field(json, stage)?;
    if let Some(unsigned) = (!resolution).then(|| json.get("unsigned")).flatten() {
        if !unsigned.is_object() {
            return Err(format_error("$.unsigned", "must be an object"));
        }
    }
    let (auth_events, prev_events) = check_dag_fields(rules, json, stage, parse)?;
    if rules.lpdus {
        check_hub_fields(json, is_create, prev_events.len(), stage)?;
    }
    if let Some(event_id) = get_string(json, "event_id")? {
        check_field_bytes(rules, "event_id", event_id)?;
    }
    let redacts = check_redacts(rules, json, event_type, parse)?;
    check_size(json.object, resolution)?;
    Ok(Fields {
        room_id: room_id.map(&mut *text),
        sender: text(sender),
        origin_server_ts,
        event_type: text(event_type),
        state_key: state_key.map(&mut *text),
        depth,
        auth_events,
        prev_events,
        redacts,
        lpdus: rules.lpdus,
    })
}

/// `type`, `state_key` and `sender`: strings within the byte limits, `sender` a user id.
fn check_type_and_sender<'a>(
    rules: &RoomVersionRules,
    json: &Members<'a>,
) -> Result<(&'a str, Option<&'a str>, &'a str), FormatError> {
    let event_type = require(get_string(json, "type")?, "type")?;
    check_field_bytes(rules, "type", event_type)?;
    let state_key = get_string(json, "state_key")?;
    if let Some(state_key) = state_key {
        check_field_bytes(rules, "state_key", state_key)?;
    }
    let sender = require(get_string(json, "sender")?, "sender")?;
    check_field_bytes(rules, "sender", sender)?;
    ids::parse_user_id(sender).map_err(|e| format_error("$.sender", e.problem))?;
    Ok((event_type, state_key, sender))
}

/// `room_id`: required except on a room version 12 create event, and of the version's shape.
fn check_room_id_field<'a>(
    rules: &RoomVersionRules,
    json: &Members<'a>,
    is_create: bool,
) -> Result<Option<&'a str>, FormatError> {
    // Room version 12: the create event has no `room_id` (it is derived from the event's own
    // reference hash). Whether a create event carrying one is acceptable is auth rule 1.2,
    // which rejects it; here it is only format-checked like any other room id.
    let room_id = get_string(json, "room_id")?;
    let room_id_optional = rules.room_id_is_create_event_hash && is_create;
    if room_id.is_none() && !room_id_optional {
        return Err(format_error("$.room_id", "missing required field"));
    }
    if let Some(room_id) = room_id {
        check_field_bytes(rules, "room_id", room_id)?;
        check_room_id_shape(rules, room_id)?;
    }
    Ok(room_id)
}

/// `hashes`: an object with a string `sha256` once signed; an LPDU's carries only `lpdu`.
/// Not checked in the resolution stage.
fn check_hashes_field(json: &Members<'_>, stage: Stage) -> Result<(), FormatError> {
    // Asked before the lookup, which is a search of the object's keys for every event read.
    if stage == Stage::Resolution {
        return Ok(());
    }
    match json.get("hashes") {
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
    Ok(())
}

/// `signatures`: an object of server name to an object of key id to string, required once
/// signed. Not checked in the resolution stage.
fn check_signatures_field(json: &Members<'_>, stage: Stage) -> Result<(), FormatError> {
    if stage == Stage::Resolution {
        return Ok(());
    }
    match json.get("signatures") {
        None if stage.is_signed() => {
            return Err(format_error("$.signatures", "missing required field"));
        }
        None => {}
        Some(Value::Object(by_server)) => {
            for (server, keys) in by_server {
                // Built only to name what is wrong: every received PDU passes here.
                let path = || {
                    let mut path = String::from("$.signatures");
                    canonical_json::push_key(&mut path, server);
                    path
                };
                let Value::Object(keys) = keys else {
                    return Err(format_error(&path(), "must be an object of key id to signature"));
                };
                for (key_id, signature) in keys {
                    if !signature.is_string() {
                        let mut path = path();
                        canonical_json::push_key(&mut path, key_id);
                        return Err(format_error(&path, "must be a string"));
                    }
                }
            }
        }
        Some(_) => return Err(format_error("$.signatures", "must be an object")),
    }
    Ok(())
}

/// `auth_events` and `prev_events`: lists of event ids within their limits (no limit in the
/// resolution stage, where `prev_events` may be missing); an LPDU carries neither.
fn check_dag_fields(
    rules: &RoomVersionRules,
    json: &Members<'_>,
    stage: Stage,
    parse: &mut impl FnMut(&str) -> Result<EventId, IdError>,
) -> Result<(Vec<EventId>, Vec<EventId>), FormatError> {
    let resolution = stage == Stage::Resolution;
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
            require(get_event_ids(json, "auth_events", auth_events_max, parse)?, "auth_events")?;
        // State resolution never reads `prev_events`.
        let prev_events = match get_event_ids(json, "prev_events", prev_events_max, parse)? {
            None if resolution => Vec::new(),
            prev_events => require(prev_events, "prev_events")?,
        };
        (auth_events, prev_events)
    };
    Ok((auth_events, prev_events))
}

/// The event an `m.room.redaction` redacts: `content.redacts` since v11 (a missing or
/// malformed target redacts nothing), the top-level `redacts` before.
fn check_redacts(
    rules: &RoomVersionRules,
    json: &Members<'_>,
    event_type: &str,
    parse: &mut impl FnMut(&str) -> Result<EventId, IdError>,
) -> Result<Option<EventId>, FormatError> {
    let redacts = if event_type != "m.room.redaction" {
        None
    } else if rules.redacts_in_content {
        // v11+: `content.redacts`. A missing or malformed target is not a format error
        // (the spec gives none); such a redaction simply redacts nothing.
        let content = json.get("content").and_then(Value::as_object).expect("checked above");
        content.get("redacts").and_then(Value::as_str).and_then(|s| parse(s).ok())
    } else {
        match get_string(json, "redacts")? {
            Some(id) => Some(parse(id).map_err(|e| format_error("$.redacts", e.problem))?),
            None => None,
        }
    };
    Ok(redacts)
}

/// The size limit on the whole PDU, in bytes of canonical JSON (not in the resolution stage).
fn check_size(json: &Object, resolution: bool) -> Result<(), FormatError> {
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
    Ok(())
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
    json: &Members<'_>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_give_what_a_lookup_in_the_object_gives() {
        // Every key the checks read, in slots of their own, beside keys they do not read
        // (one a prefix of a read key, one the empty key).
        let mut keys: Vec<&str> = (0..READ_COUNT)
            .map(|slot| {
                let key = [
                    "auth_events",
                    "content",
                    "depth",
                    "event_id",
                    "hashes",
                    "hub_server",
                    "origin_server_ts",
                    "prev_events",
                    "redacts",
                    "room_id",
                    "sender",
                    "signatures",
                    "state_key",
                    "type",
                    "unsigned",
                ][slot];
                assert_eq!(read_slot(key), Some(slot), "{key}");
                key
            })
            .collect();
        keys.extend(["origin", "typ", "", "rejected"]);
        for present in [0usize, 1, 2, 3] {
            // Every `present`-th key in the object, each with a value of its own.
            let object: Object = keys
                .iter()
                .enumerate()
                .filter(|(index, _)| present == 0 || index % (present + 1) == 0)
                .map(|(index, key)| ((*key).to_owned(), Value::from(index)))
                .collect();
            let members = Members::of(&object);
            for key in &keys {
                assert_eq!(members.get(key), object.get(*key), "{key} ({present})");
                assert_eq!(members.contains_key(key), object.contains_key(*key), "{key}");
            }
        }
    }
}
