//! Signed events for the unit tests of the homeserver's modules.

use std::sync::Arc;

use crate::matrix::crypto::SigningKey;
use crate::matrix::{Pdu, RoomVersion, pdu};

/// A v11 state event of `event_type` and `state_key`, signed by `hs1`, whose content is a
/// `join` membership with `body` as display name (which tells copies apart).
pub(crate) fn signed_state_event(event_type: &str, state_key: &str, body: &str) -> Arc<Pdu> {
    let key = SigningKey::from_seed(&[7; 32], "ed25519:1").unwrap();
    let serde_json::Value::Object(json) = serde_json::json!({
        "type": event_type, "state_key": state_key, "sender": "@a:hs1",
        "room_id": "!r:hs1", "origin_server_ts": 1, "depth": 2, "prev_events": ["$p"],
        "auth_events": ["$c"], "content": {"membership": "join", "displayname": body},
    }) else {
        unreachable!()
    };
    Arc::new(pdu::build_signed(RoomVersion::V11.rules(), json, "hs1", &key).unwrap())
}
