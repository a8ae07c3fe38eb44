//! The redaction algorithm of each room version.
//!
//! Spec: room version 9 and 11 redaction fragments (digest: spec/events.md §5), and the
//! Linearized Matrix draft's "Event Redactions" (digest: spec/linearized-matrix.md §5). Redaction is
//! used to sign events, to compute reference hashes (event ids), when a received event fails
//! its content hash, and when an `m.room.redaction` is applied.

use serde_json::Value;

use crate::matrix::canonical_json::{self, Object};
use crate::matrix::room_version::RedactionRules;

/// Top-level keys every supported version keeps.
const TOP_LEVEL_KEPT: &[&str] = &[
    "event_id",
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "auth_events",
    "origin_server_ts",
];

/// Top-level keys the v9 rules keep in addition (removed by the v11 rules).
const TOP_LEVEL_KEPT_V9_ONLY: &[&str] = &["prev_state", "origin", "membership"];

/// Top-level keys the Linearized Matrix draft keeps, exactly its list (digest:
/// spec/linearized-matrix.md §5). [digest] Unlike Matrix (and eigen-server), `event_id` is
/// not kept: the draft's list does not name it, and an event id is never part of an event.
const TOP_LEVEL_KEPT_LINEARIZED: &[&str] = &[
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "origin_server_ts",
    "hashes",
    "signatures",
    "prev_events",
    "auth_events",
    "hub_server",
];

/// Whether the redaction algorithm keeps a top-level key.
fn top_level_kept(rules: RedactionRules, key: &str) -> bool {
    match rules {
        RedactionRules::V9 => {
            TOP_LEVEL_KEPT.contains(&key) || TOP_LEVEL_KEPT_V9_ONLY.contains(&key)
        }
        RedactionRules::V11 => TOP_LEVEL_KEPT.contains(&key),
        RedactionRules::LinearizedI1 => TOP_LEVEL_KEPT_LINEARIZED.contains(&key),
    }
}

/// Content keys kept for an event type, or `None` when all content keys are kept.
fn content_keys_kept(rules: RedactionRules, event_type: &str) -> Option<&'static [&'static str]> {
    use RedactionRules::{LinearizedI1, V9, V11};
    let keys: &'static [&'static str] = match (event_type, rules) {
        // Linearized Matrix keeps only `membership` and `join_rule`: restricted joins are
        // not part of the draft (digest: spec/linearized-matrix.md §5).
        ("m.room.member", LinearizedI1) => &["membership"],
        ("m.room.member", _) => &["membership", "join_authorised_via_users_server"],
        ("m.room.create", V9) => &["creator"],
        ("m.room.create", V11 | LinearizedI1) => return None,
        ("m.room.join_rules", LinearizedI1) => &["join_rule"],
        ("m.room.join_rules", _) => &["join_rule", "allow"],
        ("m.room.power_levels", V9) => &[
            "ban",
            "events",
            "events_default",
            "kick",
            "redact",
            "state_default",
            "users",
            "users_default",
        ],
        ("m.room.power_levels", V11 | LinearizedI1) => &[
            "ban",
            "events",
            "events_default",
            "invite",
            "kick",
            "redact",
            "state_default",
            "users",
            "users_default",
        ],
        ("m.room.history_visibility", _) => &["history_visibility"],
        ("m.room.redaction", V9) => &[],
        ("m.room.redaction", V11) => &["redacts"],
        // [digest] The draft's list names no content key of `m.room.redaction`.
        ("m.room.redaction", LinearizedI1) => &[],
        _ => &[],
    };
    Some(keys)
}

/// Returns the redacted copy of an event (a PDU as a JSON object), per `rules`.
pub fn redact(rules: RedactionRules, event: &Object) -> Object {
    let mut out = Object::new();
    for (key, value) in event {
        let kept = top_level_kept(rules, key);
        if kept && key != "content" {
            out.insert(key.clone(), value.clone());
        }
    }
    if let Some(content) = event.get("content") {
        let event_type = event.get("type").and_then(Value::as_str).unwrap_or("");
        out.insert("content".to_owned(), Value::Object(redact_content(rules, event_type, content)));
    }
    out
}

/// The redacted `content` of an event of type `event_type`.
pub fn redact_content(rules: RedactionRules, event_type: &str, content: &Value) -> Object {
    let empty = Object::new();
    let content = content.as_object().unwrap_or(&empty);
    let Some(keys) = content_keys_kept(rules, event_type) else {
        return content.clone();
    };
    let mut out = Object::new();
    for key in keys {
        if let Some(value) = content.get(*key) {
            out.insert((*key).to_owned(), value.clone());
        }
    }
    // Since v11, `m.room.member` keeps `third_party_invite.signed` (and nothing else of
    // `third_party_invite`).
    if rules == RedactionRules::V11 && event_type == "m.room.member" {
        let signed = content
            .get("third_party_invite")
            .and_then(Value::as_object)
            .and_then(|invite| invite.get("signed"));
        if let Some(signed) = signed {
            let mut invite = Object::new();
            invite.insert("signed".to_owned(), signed.clone());
            out.insert("third_party_invite".to_owned(), Value::Object(invite));
        }
    }
    out
}

/// The canonical JSON of the redacted event without `signatures` and `unsigned`: the bytes
/// a server signs and the bytes the reference hash covers. Equal to encoding
/// [`redact`]`(event)` minus those two keys, but written straight from the event without
/// copying it (hashing is on every hot path of the simulator).
pub fn redacted_signing_bytes(
    rules: RedactionRules,
    event: &Object,
) -> Result<Vec<u8>, canonical_json::ValueError> {
    canonical_json::check_object(event)?;
    let event_type = event.get("type").and_then(Value::as_str).unwrap_or("");
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    let mut first = true;
    for (key, value) in event {
        let kept = top_level_kept(rules, key);
        if !kept || key == "signatures" {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        canonical_json::write_string(&mut out, key);
        out.push(b':');
        if key == "content" {
            write_redacted_content(&mut out, rules, event_type, value);
        } else {
            canonical_json::write_value(&mut out, value);
        }
    }
    out.push(b'}');
    Ok(out)
}

/// Writes [`redact_content`] as canonical JSON. Keys come out in the content's own (sorted)
/// order, so the result is canonical without building the redacted object.
fn write_redacted_content(
    out: &mut Vec<u8>,
    rules: RedactionRules,
    event_type: &str,
    content: &Value,
) {
    let Some(content) = content.as_object() else {
        out.extend_from_slice(b"{}");
        return;
    };
    let Some(keys) = content_keys_kept(rules, event_type) else {
        canonical_json::write_object(out, content);
        return;
    };
    let keep_invite_signed = rules == RedactionRules::V11 && event_type == "m.room.member";
    out.push(b'{');
    let mut first = true;
    for (key, value) in content {
        let signed = if keep_invite_signed && key == "third_party_invite" {
            match value.as_object().and_then(|invite| invite.get("signed")) {
                Some(signed) => Some(signed),
                None => continue,
            }
        } else if keys.contains(&key.as_str()) {
            None
        } else {
            continue;
        };
        if !first {
            out.push(b',');
        }
        first = false;
        canonical_json::write_string(out, key);
        out.push(b':');
        match signed {
            Some(signed) => {
                out.extend_from_slice(b"{\"signed\":");
                canonical_json::write_value(out, signed);
                out.push(b'}');
            }
            None => canonical_json::write_value(out, value),
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redacted(rules: RedactionRules, event: Value) -> Value {
        let event = event.as_object().unwrap();
        let out = redact(rules, event);
        // Cross-check the streaming encoder on every case.
        let mut stripped = out.clone();
        stripped.remove("signatures");
        stripped.remove("unsigned");
        assert_eq!(
            redacted_signing_bytes(rules, event).unwrap(),
            canonical_json::encode_object(&stripped).unwrap()
        );
        Value::Object(out)
    }

    #[test]
    fn top_level_keys() {
        let event = json!({
            "event_id": "$e", "type": "m.room.message", "room_id": "!r:h", "sender": "@a:h",
            "state_key": "", "content": {"body": "hi"}, "hashes": {"sha256": "x"},
            "signatures": {}, "depth": 1, "prev_events": [], "auth_events": [],
            "origin_server_ts": 1, "prev_state": [], "origin": "h", "membership": "join",
            "unsigned": {"age": 1}, "redacts": "$x", "custom": 1
        });
        let v9 = redacted(RedactionRules::V9, event.clone());
        let v9_keys: Vec<&String> = v9.as_object().unwrap().keys().collect();
        assert_eq!(
            v9_keys,
            [
                "auth_events",
                "content",
                "depth",
                "event_id",
                "hashes",
                "membership",
                "origin",
                "origin_server_ts",
                "prev_events",
                "prev_state",
                "room_id",
                "sender",
                "signatures",
                "state_key",
                "type"
            ]
        );
        let v11 = redacted(RedactionRules::V11, event);
        let v11_keys: Vec<&String> = v11.as_object().unwrap().keys().collect();
        assert_eq!(
            v11_keys,
            [
                "auth_events",
                "content",
                "depth",
                "event_id",
                "hashes",
                "origin_server_ts",
                "prev_events",
                "room_id",
                "sender",
                "signatures",
                "state_key",
                "type"
            ]
        );
        assert_eq!(v11["content"], json!({}));
    }

    #[test]
    fn content_keys_per_type() {
        let member = json!({"type": "m.room.member", "content": {"membership": "join",
            "join_authorised_via_users_server": "@x:h", "displayname": "X",
            "third_party_invite": {"display_name": "x", "signed": {"token": "t"}}}});
        assert_eq!(
            redacted(RedactionRules::V9, member.clone())["content"],
            json!({"membership": "join", "join_authorised_via_users_server": "@x:h"})
        );
        assert_eq!(
            redacted(RedactionRules::V11, member)["content"],
            json!({"membership": "join", "join_authorised_via_users_server": "@x:h",
                "third_party_invite": {"signed": {"token": "t"}}})
        );
        let no_signed = json!({"type": "m.room.member", "content": {"membership": "invite",
            "third_party_invite": {"display_name": "x"}}});
        assert_eq!(
            redacted(RedactionRules::V11, no_signed)["content"],
            json!({"membership": "invite"})
        );

        let create = json!({"type": "m.room.create", "content": {"creator": "@a:h",
            "room_version": "10", "m.federate": false}});
        assert_eq!(
            redacted(RedactionRules::V9, create.clone())["content"],
            json!({"creator": "@a:h"})
        );
        assert_eq!(redacted(RedactionRules::V11, create.clone())["content"], create["content"]);

        let pl = json!({"type": "m.room.power_levels", "content": {"ban": 1, "events": {"a": 1},
            "events_default": 1, "invite": 1, "kick": 1, "redact": 1, "state_default": 1,
            "users": {"@a:h": 1}, "users_default": 1, "notifications": {"room": 1}}});
        let mut v9 = pl["content"].clone();
        v9.as_object_mut().unwrap().remove("invite");
        v9.as_object_mut().unwrap().remove("notifications");
        assert_eq!(redacted(RedactionRules::V9, pl.clone())["content"], v9);
        let mut v11 = pl["content"].clone();
        v11.as_object_mut().unwrap().remove("notifications");
        assert_eq!(redacted(RedactionRules::V11, pl)["content"], v11);

        let jr = json!({"type": "m.room.join_rules", "content": {"join_rule": "restricted",
            "allow": [{"type": "m.room_membership", "room_id": "!r:h"}], "other": 1}});
        for rules in [RedactionRules::V9, RedactionRules::V11] {
            assert_eq!(
                redacted(rules, jr.clone())["content"],
                json!({"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": "!r:h"}]})
            );
        }
        let hv = json!({"type": "m.room.history_visibility", "content": {"history_visibility": "shared", "x": 1}});
        assert_eq!(
            redacted(RedactionRules::V9, hv)["content"],
            json!({"history_visibility": "shared"})
        );
        let redaction =
            json!({"type": "m.room.redaction", "content": {"redacts": "$x", "reason": "r"}});
        assert_eq!(redacted(RedactionRules::V9, redaction.clone())["content"], json!({}));
        assert_eq!(redacted(RedactionRules::V11, redaction)["content"], json!({"redacts": "$x"}));
        let topic = json!({"type": "m.room.topic", "content": {"topic": "t"}});
        assert_eq!(redacted(RedactionRules::V11, topic)["content"], json!({}));
    }

    #[test]
    fn linearized_matrix_keeps_exactly_the_drafts_lists() {
        // Draft "Event Redactions" (digest: spec/linearized-matrix.md §5): top-level `type`,
        // `room_id`, `sender`, `state_key`, `content`, `origin_server_ts`, `hashes`,
        // `signatures`, `prev_events`, `auth_events`, `hub_server`; everything else goes,
        // `depth`, `event_id` and `unsigned` included.
        let rules = RedactionRules::LinearizedI1;
        let event = json!({
            "event_id": "$e", "type": "m.room.message", "room_id": "!r:h", "sender": "@a:h",
            "state_key": "", "content": {"body": "hi"}, "hashes": {"sha256": "x", "lpdu": {"sha256": "y"}},
            "signatures": {}, "depth": 1, "prev_events": [], "auth_events": [],
            "origin_server_ts": 1, "prev_state": [], "origin": "h", "membership": "join",
            "unsigned": {"age": 1}, "redacts": "$x", "custom": 1, "hub_server": "h"
        });
        let out = redacted(rules, event);
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "auth_events",
                "content",
                "hashes",
                "hub_server",
                "origin_server_ts",
                "prev_events",
                "room_id",
                "sender",
                "signatures",
                "state_key",
                "type"
            ]
        );
        // `hashes` is kept whole, the LPDU hash included.
        assert_eq!(out["hashes"], json!({"sha256": "x", "lpdu": {"sha256": "y"}}));
        assert_eq!(out["content"], json!({}));
        // Content: create all; member `membership`; join rules `join_rule`; power levels the
        // nine listed keys; history visibility `history_visibility`; nothing for others.
        let cases = [
            (
                json!({"type": "m.room.create", "content": {"room_version": "v", "creator": "@a:h", "x": 1}}),
                json!({"room_version": "v", "creator": "@a:h", "x": 1}),
            ),
            (
                json!({"type": "m.room.member", "content": {"membership": "join",
                "join_authorised_via_users_server": "@x:h", "displayname": "X",
                "third_party_invite": {"signed": {"token": "t"}}}}),
                json!({"membership": "join"}),
            ),
            (
                json!({"type": "m.room.join_rules", "content": {"join_rule": "knock",
                "allow": [{"type": "m.room_membership"}]}}),
                json!({"join_rule": "knock"}),
            ),
            (
                json!({"type": "m.room.power_levels", "content": {"ban": 1, "events": {"a": 1},
                "events_default": 1, "invite": 1, "kick": 1, "redact": 1, "state_default": 1,
                "users": {"@a:h": 1}, "users_default": 1, "notifications": {"room": 1}}}),
                json!({"ban": 1, "events": {"a": 1}, "events_default": 1, "invite": 1, "kick": 1,
                "redact": 1, "state_default": 1, "users": {"@a:h": 1}, "users_default": 1}),
            ),
            (
                json!({"type": "m.room.history_visibility", "content": {"history_visibility": "shared", "x": 1}}),
                json!({"history_visibility": "shared"}),
            ),
            (
                json!({"type": "m.room.redaction", "content": {"redacts": "$x", "reason": "r"}}),
                json!({}),
            ),
        ];
        for (event, content) in cases {
            assert_eq!(redacted(rules, event)["content"], content);
        }
    }
}
