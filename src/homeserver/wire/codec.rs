//! What encoding and decoding share in both directions: the checks of fields whose shape
//! does not depend on the room version, and the canonical-JSON bodies (encoding, strict
//! parsing, and taking typed fields out of an untrusted object).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::homeserver::wire::error::WireError;
use crate::homeserver::wire::{ROOM_VERSION_CHARS_MAX, TXN_ID_BYTES_MAX, echo, len_u64};
use crate::matrix::canonical_json::{self, INT_MAX, Numbers, Object, Reader};
use crate::matrix::ids::{self, EventId, ID_BYTES_MAX};
use crate::matrix::room_version::RoomVersion;

// ---------------------------------------------------------------------------------------
// Field checks shared by both directions
// ---------------------------------------------------------------------------------------

pub(super) fn check_txn_id(txn_id: &str) -> Result<(), WireError> {
    if txn_id.is_empty() || txn_id.len() > TXN_ID_BYTES_MAX {
        return Err(WireError::invalid_param("txnId", "must be 1 to 255 bytes"));
    }
    Ok(())
}

/// The shape every room version's room id shares: `!`, at most 255 bytes, no NUL. The
/// receiver checks the version-specific shape once it knows the room.
pub(super) fn check_room_id(room_id: &str) -> Result<(), WireError> {
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

pub(super) fn check_user_id(user_id: &str) -> Result<(), WireError> {
    ids::parse_user_id(user_id)
        .map(|_| ())
        .map_err(|e| WireError::invalid_param("userId", e.problem))
}

/// A room version string: 1 to 32 code points from `a-z 0-9 . -` (spec digest events.md §3).
///
/// [digest] The one version of the Linearized Matrix draft is also accepted: its identifier
/// (48 characters) follows the draft's own grammar, `1*128` of the same characters
/// (spec/linearized-matrix.md §2), which is longer than Matrix allows.
pub(super) fn check_room_version(name: &str, version: &str) -> Result<(), WireError> {
    let linearized = RoomVersion::LINEARIZED.iter().any(|v| v.as_str() == version);
    let ok = !version.is_empty()
        && (version.len() <= ROOM_VERSION_CHARS_MAX || linearized)
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

pub(super) fn check_versions(ver: &[String]) -> Result<(), WireError> {
    ver.iter().try_for_each(|version| check_room_version("ver", version))
}

pub(super) fn check_count_param(name: &str, value: u64) -> Result<(), WireError> {
    if value > INT_MAX as u64 {
        return Err(WireError::invalid_param(name, "must be at most 2^53-1"));
    }
    Ok(())
}

pub(super) fn parse_count_param(name: &str, text: &str) -> Result<u64, WireError> {
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
// JSON bodies
// ---------------------------------------------------------------------------------------

pub(super) fn encode_body(body: &Object) -> Vec<u8> {
    canonical_json::encode_object(body)
        .unwrap_or_else(|e| panic!("outgoing message is not canonical JSON: {e}"))
}

/// Parses an untrusted body: present, within `max` bytes, strict canonical-JSON numbers,
/// and a JSON object (spec digest §1).
pub(super) fn parse_body(body: Option<&[u8]>, max: usize) -> Result<Object, WireError> {
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

pub(super) fn objects_json(objects: &[Object]) -> Value {
    Value::Array(objects.iter().cloned().map(Value::Object).collect())
}

pub(super) fn event_ids_json(ids: &[EventId]) -> Value {
    Value::Array(ids.iter().map(|id| Value::String(id.as_str().to_owned())).collect())
}

pub(super) fn take_string(body: &mut Object, key: &str) -> Result<Option<String>, WireError> {
    match body.remove(key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(WireError::bad_json(&format!("$.{key}"), "must be a string")),
    }
}

pub(super) fn take_integer(body: &mut Object, key: &str) -> Result<Option<i64>, WireError> {
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

pub(super) fn take_object(body: &mut Object, key: &str) -> Result<Option<Object>, WireError> {
    match body.remove(key) {
        None => Ok(None),
        Some(Value::Object(object)) => Ok(Some(object)),
        Some(_) => Err(WireError::bad_json(&format!("$.{key}"), "must be an object")),
    }
}

/// An array of objects (raw PDUs or EDUs). Any other element fails the whole message
/// ([digest]: only a well-formed PDU object can be judged on its own).
pub(super) fn take_objects(body: &mut Object, key: &str) -> Result<Option<Vec<Object>>, WireError> {
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
pub(super) fn take_event_ids(body: &mut Object, key: &str) -> Result<Vec<EventId>, WireError> {
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

pub(super) fn strings_from_json(value: Value, path: &str) -> Result<Vec<String>, WireError> {
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

/// Where the PDUs of a body's top-level PDU lists lie (a `/send` body's `pdus`, a
/// `send_join` answer's `state` and `auth_chain`): found by matching brackets and quotes,
/// not checked. A decoder that leaves some PDUs out ([`PduLists::without`]) parses the
/// rest, which checks what it reads; a PDU is left out only when its caller recognised its
/// exact bytes as those of a PDU parsed and checked before.
pub(super) struct PduLists {
    /// In the body's order.
    lists: Vec<PduList>,
}

struct PduList {
    key: &'static str,
    /// Just after the list's `[`.
    open: usize,
    /// At the list's `]`.
    close: usize,
    spans: Vec<std::ops::Range<usize>>,
}

impl PduLists {
    /// The lists under `keys` in an object body; `None` when the body does not scan as an
    /// object, a key's value is not an array, or a list holds more than `max` items.
    pub(super) fn scan(body: &[u8], keys: &[&'static str], max: Option<usize>) -> Option<PduLists> {
        let mut reader = Reader::new(body, Numbers::IntegerLiterals);
        if !reader.begin_object().ok()? {
            return None;
        }
        let mut lists = Vec::new();
        while let Some(key) = reader.next_key_str().ok()? {
            let Some(&key) = keys.iter().find(|k| **k == key) else {
                reader.skip_value().ok()?;
                continue;
            };
            if !reader.begin_array().ok()? {
                return None;
            }
            let open = reader.offset();
            let mut spans = Vec::new();
            while reader.next_item().ok()? {
                let start = reader.offset();
                reader.skip_value().ok()?;
                spans.push(start..reader.offset());
                if max.is_some_and(|max| spans.len() > max) {
                    return None;
                }
            }
            let close = reader.offset().checked_sub(1)?;
            lists.push(PduList { key, open, close, spans });
        }
        reader.check_end().ok()?;
        Some(PduLists { lists })
    }

    /// The key of the list at `index` (in the body's order).
    pub(super) fn key(&self, index: usize) -> &'static str {
        self.lists[index].key
    }

    /// `known`'s answer for the bytes of each PDU, per list, in the list's order.
    pub(super) fn ask<K>(
        &self,
        body: &[u8],
        known: &mut impl FnMut(&[u8]) -> Option<K>,
    ) -> BTreeMap<&'static str, Vec<Option<K>>> {
        let ask = |list: &PduList, known: &mut dyn FnMut(&[u8]) -> Option<K>| {
            list.spans.iter().map(|span| known(&body[span.clone()])).collect()
        };
        self.lists.iter().map(|list| (list.key, ask(list, known))).collect()
    }

    /// The body without the PDUs for which `leave_out(list index, item index)` holds: the
    /// rest of its bytes as they are, the kept items of each list joined by commas.
    pub(super) fn without(&self, body: &[u8], leave_out: impl Fn(usize, usize) -> bool) -> Vec<u8> {
        let mut rest = Vec::with_capacity(body.len());
        let mut from = 0;
        for (list_index, list) in self.lists.iter().enumerate() {
            rest.extend_from_slice(&body[from..list.open]);
            let kept = list.spans.iter().enumerate().filter(|(i, _)| !leave_out(list_index, *i));
            for (n, (_, span)) in kept.enumerate() {
                if n > 0 {
                    rest.push(b',');
                }
                rest.extend_from_slice(&body[span.clone()]);
            }
            from = list.close;
        }
        rest.extend_from_slice(&body[from..]);
        rest
    }
}
