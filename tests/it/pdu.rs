//! Properties of canonical JSON, signing and redaction, and the PDU format checks.

use mxsim::matrix::canonical_json::{self, INT_MAX, Numbers, Object};
use mxsim::matrix::crypto::{KeyRing, SigningKey};
use mxsim::matrix::pdu::{self, FormatSeverity, Pdu, Verified};
use mxsim::matrix::redaction;
use mxsim::matrix::room_version::{RedactionRules, RoomVersion, V10, V11, V12};
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    json_value_sized(4, 64, 8, 6)
}

/// Any canonical-JSON value: integers in range, any strings (controls, quotes, backslashes,
/// astral characters), nested `depth` deep, about `size` nodes, at most `width - 1` items
/// per array or object. Shared with the wire-format property tests.
pub(crate) fn json_value_sized(
    depth: u32,
    size: u32,
    branch: u32,
    width: usize,
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-INT_MAX..=INT_MAX).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, size, branch, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..width).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..width)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn canonical_form_is_idempotent_and_round_trips(value in json_value()) {
        let once = canonical_json::encode(&value).unwrap();
        let parsed = canonical_json::parse(&once, Numbers::IntegerLiterals).unwrap();
        prop_assert_eq!(&parsed, &value);
        let twice = canonical_json::encode(&parsed).unwrap();
        prop_assert_eq!(&once, &twice);
        // serde_json reads what we write as the same value (our output is plain JSON).
        let by_serde: Value = serde_json::from_slice(&once).unwrap();
        prop_assert_eq!(by_serde, value);
    }

    #[test]
    fn parser_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = canonical_json::parse(&bytes, Numbers::IntegerLiterals);
        let _ = canonical_json::parse(&bytes, Numbers::IntegralValues);
    }
}

fn key() -> SigningKey {
    SigningKey::from_seed(&[7; 32], "ed25519:k").unwrap()
}

fn ring() -> KeyRing {
    let mut ring = KeyRing::new();
    ring.entry("hs1".into()).or_default().insert("ed25519:k".into(), key().public_key());
    ring
}

fn signed_member_event(version: RoomVersion, body: &str) -> Pdu {
    let rules = version.rules();
    let room_id = if rules.room_id_is_create_event_hash {
        "!P5-6WTYQ_woy6f4nmleE0XqxjtZcyKGza5_gDN-KAdM"
    } else {
        "!room:hs1"
    };
    let event = json!({
        "type": "m.room.member", "state_key": "@alice:hs1", "sender": "@alice:hs1",
        "room_id": room_id, "origin_server_ts": 1_700_000_000_000_i64, "depth": 7,
        "auth_events": ["$a", "$b"], "prev_events": ["$c"],
        "content": {"membership": "join", "displayname": body, "avatar_url": "mxc://x/y"},
        "unsigned": {"age": 3},
    });
    let Value::Object(object) = event else { unreachable!() };
    pdu::build_signed(rules, object, "hs1", &key()).unwrap()
}

/// Paths of every leaf in a JSON object, e.g. ["content", "membership"].
fn leaf_paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                prefix.push(key.clone());
                leaf_paths(item, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, item) in items.iter().enumerate() {
                prefix.push(index.to_string());
                leaf_paths(item, prefix, out);
                prefix.pop();
            }
        }
        _ => out.push(prefix.clone()),
    }
}

fn mutate(value: &mut Value, path: &[String]) {
    let mut target = value;
    for step in path {
        target = match target {
            Value::Object(map) => map.get_mut(step).unwrap(),
            Value::Array(items) => &mut items[step.parse::<usize>().unwrap()],
            _ => unreachable!(),
        };
    }
    *target = match target {
        Value::String(s) => Value::String(format!("{s}x")),
        Value::Number(n) => Value::from(n.as_i64().unwrap() + 1),
        Value::Bool(b) => Value::Bool(!*b),
        _ => Value::String("changed".into()),
    };
}

/// An unsigned build (a `make_join` template) has the hashes, fields and event id of the
/// signed build of the same event, and no signatures.
#[test]
fn an_unsigned_build_is_the_signed_build_without_its_signatures() {
    for version in RoomVersion::ALL {
        let rules = version.rules();
        let signed = signed_member_event(version, "Alice");
        let mut event = signed.json().clone();
        event.remove("hashes");
        event.remove("signatures");
        let unsigned = pdu::build_unsigned(rules, event).unwrap();
        assert_eq!(unsigned.event_id(), signed.event_id(), "{version:?}");
        assert_eq!(unsigned.json().get("hashes"), signed.json().get("hashes"), "{version:?}");
        assert!(unsigned.json().get("signatures").is_none(), "{version:?}");
        let mut without = signed.json().clone();
        without.remove("signatures");
        assert_eq!(*unsigned.json(), without, "{version:?}");
        // Signing it gives the signed build.
        let mut json = unsigned.json().clone();
        pdu::add_signature(rules, &mut json, "hs1", &key());
        assert_eq!(json, *signed.json(), "{version:?}");
    }
}

#[test]
fn any_mutation_of_a_signed_field_breaks_verification() {
    for version in RoomVersion::ALL {
        let rules = version.rules();
        let pdu = signed_member_event(version, "Alice");
        assert_eq!(pdu::verify(rules, &pdu, &ring()).unwrap(), Verified::Intact);
        let full = Value::Object(pdu.json().clone());
        let redacted = Value::Object(redaction::redact(rules.redaction, pdu.json()));
        let mut paths = Vec::new();
        leaf_paths(&full, &mut Vec::new(), &mut paths);
        let mut checked = 0;
        for path in paths {
            if path[0] == "signatures" || path[0] == "unsigned" {
                continue;
            }
            let mut changed = full.clone();
            mutate(&mut changed, &path);
            let Ok(changed) = Pdu::from_value(rules, changed) else { continue };
            let covered_by_signature = redacted.pointer(&format!("/{}", path.join("/"))).is_some();
            let verdict = pdu::verify(rules, &changed, &ring());
            if covered_by_signature {
                assert!(verdict.is_err(), "v{version}: changing {path:?} kept a valid signature");
            } else {
                // Not covered by the signature, but by the content hash.
                assert!(
                    matches!(verdict, Ok(Verified::Redacted(_))),
                    "v{version}: changing {path:?}: {verdict:?}"
                );
            }
            checked += 1;
        }
        assert!(checked >= 12, "v{version}: only {checked} fields mutated");
        // Unsigned data may change in transit without breaking anything.
        let mut aged = full.clone();
        aged["unsigned"]["age"] = json!(99);
        let aged = Pdu::from_value(rules, aged).unwrap();
        assert_eq!(pdu::verify(rules, &aged, &ring()).unwrap(), Verified::Intact);
        assert_eq!(aged.event_id(), pdu.event_id());
    }
}

/// The spec's lists (events.md §5), written out again here as an independent oracle.
fn spec_kept_top_level(rules: RedactionRules) -> Vec<&'static str> {
    let mut keys = vec![
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
    if rules == RedactionRules::V9 {
        keys.extend(["prev_state", "origin", "membership"]);
    }
    keys
}

fn spec_kept_content(rules: RedactionRules, event_type: &str) -> Option<Vec<&'static str>> {
    let v11 = rules == RedactionRules::V11;
    Some(match event_type {
        "m.room.member" => vec!["membership", "join_authorised_via_users_server"],
        "m.room.create" if v11 => return None,
        "m.room.create" => vec!["creator"],
        "m.room.join_rules" => vec!["join_rule", "allow"],
        "m.room.power_levels" if v11 => vec![
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
        "m.room.power_levels" => vec![
            "ban",
            "events",
            "events_default",
            "kick",
            "redact",
            "state_default",
            "users",
            "users_default",
        ],
        "m.room.history_visibility" => vec!["history_visibility"],
        "m.room.redaction" if v11 => vec!["redacts"],
        _ => vec![],
    })
}

const TYPES: &[&str] = &[
    "m.room.member",
    "m.room.create",
    "m.room.join_rules",
    "m.room.power_levels",
    "m.room.history_visibility",
    "m.room.redaction",
    "m.room.message",
    "m.room.topic",
    "x.custom",
];
const KEY_POOL: &[&str] = &[
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
    "prev_state",
    "origin",
    "membership",
    "unsigned",
    "redacts",
    "custom",
    "creator",
    "join_rule",
    "allow",
    "ban",
    "events",
    "events_default",
    "invite",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
    "history_visibility",
    "body",
    "join_authorised_via_users_server",
    "notifications",
    "room_version",
    "topic",
];

proptest! {
    #[test]
    fn redaction_keeps_exactly_the_listed_fields(
        type_index in 0..TYPES.len(),
        top in prop::collection::btree_map(0..KEY_POOL.len(), json_value(), 0..12),
        content in prop::collection::btree_map(0..KEY_POOL.len(), json_value(), 0..12),
    ) {
        let event_type = TYPES[type_index];
        let mut event = Object::new();
        for (k, v) in top {
            event.insert(KEY_POOL[k].to_owned(), v);
        }
        let content: Object = content.into_iter().map(|(k, v)| (KEY_POOL[k].to_owned(), v)).collect();
        event.insert("content".into(), Value::Object(content.clone()));
        event.insert("type".into(), Value::from(event_type));
        for rules in [RedactionRules::V9, RedactionRules::V11] {
            let redacted = redaction::redact(rules, &event);
            // The streaming encoder used for hashing and signing writes exactly the
            // redacted object minus `signatures`/`unsigned`.
            let mut stripped = redacted.clone();
            stripped.remove("signatures");
            stripped.remove("unsigned");
            prop_assert_eq!(
                redaction::redacted_signing_bytes(rules, &event).unwrap(),
                canonical_json::encode_object(&stripped).unwrap()
            );
            let kept_top = spec_kept_top_level(rules);
            for key in event.keys() {
                prop_assert_eq!(redacted.contains_key(key), kept_top.contains(&key.as_str()), "top-level {}", key);
            }
            let out = redacted["content"].as_object().unwrap();
            match spec_kept_content(rules, event_type) {
                None => prop_assert_eq!(out, &content),
                Some(kept) => {
                    for (key, value) in &content {
                        let listed = kept.contains(&key.as_str());
                        prop_assert_eq!(out.get(key).is_some() && out.get(key) == Some(value), listed,
                            "{:?} {} content key {}", rules, event_type, key);
                    }
                    prop_assert!(out.keys().all(|k| content.contains_key(k)));
                }
            }
        }
    }
}

fn base_event(version: RoomVersion) -> Object {
    let room_id = if version == RoomVersion::V12 { "!abc" } else { "!abc:hs1" };
    let Value::Object(o) = json!({
        "type": "m.room.message", "sender": "@a:hs1", "room_id": room_id,
        "origin_server_ts": 1, "depth": 1, "auth_events": [], "prev_events": [],
        "content": {}, "hashes": {"sha256": "x"}, "signatures": {},
    }) else {
        unreachable!()
    };
    o
}

#[test]
fn format_checks() {
    for version in RoomVersion::ALL {
        let rules = version.rules();
        assert!(Pdu::from_json(rules, base_event(version)).is_ok());
        let failing: Vec<(&str, Value, &str)> = vec![
            ("room_id", Value::Null, "$.room_id"),
            ("sender", json!("not-a-user"), "$.sender"),
            ("origin_server_ts", json!("1"), "$.origin_server_ts"),
            ("depth", json!([]), "$.depth"),
            ("content", json!([]), "$.content"),
            ("hashes", json!({"sha256": 1}), "$.hashes.sha256"),
            ("signatures", json!({"hs1": "sig"}), "$.signatures.hs1"),
            ("signatures", json!({"hs1": {"ed25519:1": 1}}), "$.signatures.hs1[\"ed25519:1\"]"),
            ("auth_events", json!(vec!["$x"; 11]), "$.auth_events"),
            ("prev_events", json!(vec!["$x"; 21]), "$.prev_events"),
            ("prev_events", json!(["x"]), "$.prev_events[0]"),
            ("unsigned", json!(1), "$.unsigned"),
        ];
        for (key, value, path) in failing {
            let mut event = base_event(version);
            event.insert(key.into(), value);
            let error = Pdu::from_json(rules, event).unwrap_err();
            assert_eq!(error.path, path, "v{version} {key}: {error}");
        }
        for key in [
            "type",
            "sender",
            "room_id",
            "origin_server_ts",
            "depth",
            "content",
            "hashes",
            "signatures",
            "auth_events",
            "prev_events",
        ] {
            let mut event = base_event(version);
            event.remove(key);
            let error = Pdu::from_json(rules, event).unwrap_err();
            assert_eq!(error.path, format!("$.{key}"), "v{version}");
            assert!(error.problem.contains("missing"), "v{version}: {error}");
        }
        // Limits are inclusive.
        let mut event = base_event(version);
        event.insert("auth_events".into(), json!(vec!["$x"; 10]));
        event.insert("prev_events".into(), json!(vec!["$x"; 20]));
        event.insert("state_key".into(), json!("k".repeat(255)));
        assert!(Pdu::from_json(rules, event).is_ok());
    }
    // v12 create events have no room_id; other versions require it.
    let mut create = base_event(RoomVersion::V12);
    create.remove("room_id");
    create.insert("type".into(), json!("m.room.create"));
    create.insert("state_key".into(), json!(""));
    let parsed = Pdu::from_json(&V12, create.clone()).unwrap();
    // Its room is the one its own id names: `!` for `$`, checked without building it.
    let derived = format!("!{}", &parsed.event_id().as_str()[1..]);
    assert_eq!(parsed.room_id_or_derived(), derived);
    assert!(parsed.is_in_room(&derived));
    assert!(!parsed.is_in_room(&format!("{derived}x")) && !parsed.is_in_room("!abc"));
    let message = Pdu::from_json(&V12, base_event(RoomVersion::V12)).unwrap();
    assert!(message.is_in_room("!abc") && !message.is_in_room(&derived));
    assert_eq!(Pdu::from_json(&V11, create).unwrap_err().path, "$.room_id");
    // v12 room ids carry no domain.
    let mut event = base_event(RoomVersion::V12);
    event.insert("room_id".into(), json!("!abc:hs1"));
    assert_eq!(Pdu::from_json(&V12, event).unwrap_err().path, "$.room_id");
}

#[test]
fn byte_limits_drop_or_reject_by_version() {
    // 128 two-byte characters: 128 code points, 256 bytes.
    let long = "é".repeat(128);
    for (rules, severity) in
        [(&V10, FormatSeverity::Reject), (&V11, FormatSeverity::Drop), (&V12, FormatSeverity::Drop)]
    {
        let mut event = base_event(rules.version);
        event.insert("state_key".into(), json!(long));
        let error = Pdu::from_json(rules, event).unwrap_err();
        assert_eq!(error.path, "$.state_key");
        assert_eq!(error.severity, severity, "v{}", rules.version);
    }
    // Over 255 code points is always a drop.
    let mut event = base_event(RoomVersion::V10);
    event.insert("type".into(), json!("t".repeat(256)));
    assert_eq!(Pdu::from_json(&V10, event).unwrap_err().severity, FormatSeverity::Drop);
}

#[test]
fn size_limit_counts_the_whole_canonical_pdu() {
    let mut event = base_event(RoomVersion::V11);
    let overhead = canonical_json::encode_object(&event).unwrap().len();
    // `"body":"…"` adds 9 bytes plus the body inside the empty content object.
    let fill = pdu::PDU_BYTES_MAX - overhead - 9;
    event.insert("content".into(), json!({"body": "x".repeat(fill)}));
    assert_eq!(canonical_json::encode_object(&event).unwrap().len(), pdu::PDU_BYTES_MAX);
    assert!(Pdu::from_json(&V11, event.clone()).is_ok());
    event.insert("content".into(), json!({"body": "x".repeat(fill + 1)}));
    assert!(Pdu::from_json(&V11, event).unwrap_err().problem.contains("65537 bytes"));
}

#[test]
fn redaction_target_per_version() {
    let mut v10 = base_event(RoomVersion::V10);
    v10.insert("type".into(), json!("m.room.redaction"));
    v10.insert("redacts".into(), json!("$target"));
    assert_eq!(Pdu::from_json(&V10, v10.clone()).unwrap().redacts().unwrap().as_str(), "$target");
    // In v11 the top-level key is just an extra key; the target is in content.
    assert_eq!(
        Pdu::from_json(&V11, {
            let mut e = v10.clone();
            e.insert("room_id".into(), json!("!abc:hs1"));
            e
        })
        .unwrap()
        .redacts(),
        None
    );
    let mut v11 = base_event(RoomVersion::V11);
    v11.insert("type".into(), json!("m.room.redaction"));
    v11.insert("content".into(), json!({"redacts": "$target"}));
    assert_eq!(Pdu::from_json(&V11, v11).unwrap().redacts().unwrap().as_str(), "$target");
}
