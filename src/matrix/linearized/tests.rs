//! Tests of LPDUs, the hub's completion, hashes and signatures of Linearized Matrix events,
//! and the participant's checks of the hub's list.
//!
//! The vectors (`VECTOR_*`) were computed once by `tests/fixtures/linearized/vectors.py`, an
//! independent Python implementation of the draft's redaction, content hash, reference hash
//! and signing (json, hashlib, the `cryptography` package's Ed25519), not by mxsim. The
//! event is the draft's own example ("Events"; digest: spec/linearized-matrix.md §3), with
//! first.example.org as hub (seed 32 × 0x01) and second.example.org as sender (32 × 0x02).
//! third.example.org (32 × 0x03) is a DAG-capable server in the tests of the list's DAG
//! reading.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::matrix::auth::SignatureCheck;
use crate::matrix::canonical_json;
use crate::matrix::room_version::{LINEARIZED_02, V11};

const HUB: &str = "first.example.org";
const PARTICIPANT: &str = "second.example.org";
const DAG: &str = "third.example.org";

const VECTOR_INVITE_LPDU: &str = r#"{"content":{"membership":"invite"},"hashes":{"lpdu":{"sha256":"T2he1A3VNVcD4nr/DEuY2xeK60n3wYNUAfpx5KIBn18"}},"hub_server":"first.example.org","origin_server_ts":1681340188825,"room_id":"!abc:example.org","sender":"@bob:second.example.org","signatures":{"second.example.org":{"ed25519:1":"sERK/Mqeciznf9j5ismnSB82Txcjkk0MO8ZXRgJLNJjnAoK5OLN7LMUv8I9h9yYJv6ih5Xvv3VLujwx+ABR+Dg"}},"state_key":"@alice:first.example.org","type":"m.room.member"}"#;
const VECTOR_INVITE_LPDU_ID: &str = "$PktgjOeGCVY5m_KSEbQE5ofJVTz2H4KRlZYVCj9nOo0";
const VECTOR_INVITE_PDU: &str = r#"{"auth_events":["$first","$second"],"content":{"membership":"invite"},"hashes":{"lpdu":{"sha256":"T2he1A3VNVcD4nr/DEuY2xeK60n3wYNUAfpx5KIBn18"},"sha256":"PqRoDUl7ytPvmL4jtovMpzfKncxslhPxFRBSuti2e2o"},"hub_server":"first.example.org","origin_server_ts":1681340188825,"prev_events":["$parent"],"room_id":"!abc:example.org","sender":"@bob:second.example.org","signatures":{"first.example.org":{"ed25519:1":"pz6Qb9EFdJrQsJQ1mU45W9y2UOMjccXr90CYNZc6NuuF/83HE++QXaiIj4bXvuiQpd8lp8INUapJ1kQHVLRnCQ"},"second.example.org":{"ed25519:1":"sERK/Mqeciznf9j5ismnSB82Txcjkk0MO8ZXRgJLNJjnAoK5OLN7LMUv8I9h9yYJv6ih5Xvv3VLujwx+ABR+Dg"}},"state_key":"@alice:first.example.org","type":"m.room.member"}"#;
const VECTOR_INVITE_PDU_ID: &str = "$1a8KdtUbsJwx24vNaeHe92b915O7g6DsiByFy2FYhKU";

const VECTOR_MESSAGE_LPDU_ID: &str = "$KuwUKduOUbMR94JRuw9_ccjrEMr3C_ywMiW2M4F4bfs";
const VECTOR_MESSAGE_PDU: &str = r#"{"auth_events":["$first","$second","$third"],"content":{"body":"hello","msgtype":"m.text"},"hashes":{"lpdu":{"sha256":"uQRueDx6xAeGwMmk8BrBxMA3VkE+TwYMybSidcLDhdg"},"sha256":"t/noxAqs4V8YPFh707tIP0aKK7M2imb7R1GnoXlKbEE"},"hub_server":"first.example.org","origin_server_ts":1681340190000,"prev_events":["$parent2"],"room_id":"!abc:example.org","sender":"@bob:second.example.org","signatures":{"first.example.org":{"ed25519:1":"3rTo4SE3eMbKLindmAPqkVTOuVMmHbZuYVJLe3dsaxsE4ORUp185hDUlLEkb6nPVMKANXBIijMXH9QeNMfBPDQ"},"second.example.org":{"ed25519:1":"+iaA6VMjwqJ1obZ5xqqvXc/pc5LyM5igF6vL+L0OgfplWjfM59S0d/xFkByr6CFDFg191z8CdUMuqC3S8IywCg"}},"type":"m.room.message"}"#;
const VECTOR_MESSAGE_PDU_ID: &str = "$q4iP6q9TTxQxal932271m7UrN3qBMQHn5riuFjDoqI8";
const VECTOR_MESSAGE_PDU_REDACTED: &str = r#"{"auth_events":["$first","$second","$third"],"content":{},"hashes":{"lpdu":{"sha256":"uQRueDx6xAeGwMmk8BrBxMA3VkE+TwYMybSidcLDhdg"},"sha256":"t/noxAqs4V8YPFh707tIP0aKK7M2imb7R1GnoXlKbEE"},"hub_server":"first.example.org","origin_server_ts":1681340190000,"prev_events":["$parent2"],"room_id":"!abc:example.org","sender":"@bob:second.example.org","signatures":{"first.example.org":{"ed25519:1":"3rTo4SE3eMbKLindmAPqkVTOuVMmHbZuYVJLe3dsaxsE4ORUp185hDUlLEkb6nPVMKANXBIijMXH9QeNMfBPDQ"},"second.example.org":{"ed25519:1":"+iaA6VMjwqJ1obZ5xqqvXc/pc5LyM5igF6vL+L0OgfplWjfM59S0d/xFkByr6CFDFg191z8CdUMuqC3S8IywCg"}},"type":"m.room.message"}"#;

const VECTOR_CREATE: &str = r#"{"auth_events":[],"content":{"room_version":"org.matrix.i-d.ralston-mimi-linearized-matrix.02"},"hashes":{"sha256":"7pYDygGxik/A3WILxKR4Z9rzEot7th8aDLvyp8l+EWA"},"origin_server_ts":1681340180000,"prev_events":[],"room_id":"!abc:first.example.org","sender":"@alice:first.example.org","signatures":{"first.example.org":{"ed25519:1":"eoPJ1fa9QwEaY33kSNR225ppV0sWi/0SFlHzZkEZ17urwclraW/gVOnmcaVGTHC9ssoIKZMbqTvIQGLmymi8AA"}},"state_key":"","type":"m.room.create"}"#;
const VECTOR_CREATE_ID: &str = "$fP3w1vfQrM7-Orr6YOa06vXynfrJHeyoGDK861g3wjY";

fn hub_key() -> SigningKey {
    SigningKey::from_seed(&[1; 32], "ed25519:1").unwrap()
}

fn participant_key() -> SigningKey {
    SigningKey::from_seed(&[2; 32], "ed25519:1").unwrap()
}

fn dag_key() -> SigningKey {
    SigningKey::from_seed(&[3; 32], "ed25519:1").unwrap()
}

fn ring() -> KeyRing {
    let mut ring = key_ring(HUB, &hub_key());
    ring.extend(key_ring(PARTICIPANT, &participant_key()));
    ring.extend(key_ring(DAG, &dag_key()));
    ring
}

fn object(value: Value) -> Object {
    let Value::Object(object) = value else { panic!("not an object") };
    object
}

fn encode(json: &Object) -> String {
    String::from_utf8(canonical_json::encode_object(json).unwrap()).unwrap()
}

fn parse(text: &str) -> Object {
    object(serde_json::from_str(text).unwrap())
}

/// The draft's example event as its sender's partial event.
fn invite_partial() -> Object {
    object(json!({
        "room_id": "!abc:example.org",
        "type": "m.room.member",
        "state_key": "@alice:first.example.org",
        "sender": "@bob:second.example.org",
        "origin_server_ts": 1681340188825_i64,
        "hub_server": "first.example.org",
        "content": {"membership": "invite"},
    }))
}

fn message_partial() -> Object {
    object(json!({
        "room_id": "!abc:example.org",
        "type": "m.room.message",
        "sender": "@bob:second.example.org",
        "origin_server_ts": 1681340190000_i64,
        "hub_server": "first.example.org",
        "content": {"msgtype": "m.text", "body": "hello"},
    }))
}

fn id(text: &str) -> EventId {
    EventId::parse(text).unwrap()
}

#[test]
fn the_drafts_example_event_matches_the_independent_vector() {
    let rules = &LINEARIZED_02;
    let lpdu = build_lpdu(rules, invite_partial(), PARTICIPANT, &participant_key()).unwrap();
    assert_eq!(encode(lpdu.json()), VECTOR_INVITE_LPDU);
    assert_eq!(lpdu.id().as_str(), VECTOR_INVITE_LPDU_ID);
    assert_eq!(lpdu.hub_server(), HUB);
    assert_eq!(verify_lpdu(rules, &lpdu, &ring()), Ok(Verified::Intact));
    // The example's auth and prev events.
    let pdu = complete_lpdu_with(
        rules,
        &lpdu,
        vec![id("$first"), id("$second")],
        id("$parent"),
        HUB,
        &hub_key(),
    )
    .unwrap();
    assert_eq!(encode(pdu.json()), VECTOR_INVITE_PDU);
    assert_eq!(pdu.event_id().as_str(), VECTOR_INVITE_PDU_ID);
    // The membership content survives redaction, so the redacted PDU is the PDU.
    assert_eq!(encode(&redaction::redact(rules.redaction, pdu.json())), VECTOR_INVITE_PDU);
    assert_eq!(pdu::verify(rules, &pdu, &ring()), Ok(Verified::Intact));
    assert_eq!(pdu::required_signers(&pdu), vec![HUB, PARTICIPANT]);
    // Parsing the vector gives the same event.
    let parsed = Pdu::from_json(rules, parse(VECTOR_INVITE_PDU)).unwrap();
    assert_eq!(parsed.event_id().as_str(), VECTOR_INVITE_PDU_ID);
    assert_eq!(parsed.depth(), 0, "Linearized Matrix events have no depth");
}

#[test]
fn a_message_lpdu_is_signed_over_its_redacted_form() {
    let rules = &LINEARIZED_02;
    let lpdu = build_lpdu(rules, message_partial(), PARTICIPANT, &participant_key()).unwrap();
    assert_eq!(lpdu.id().as_str(), VECTOR_MESSAGE_LPDU_ID);
    let pdu = complete_lpdu_with(
        rules,
        &lpdu,
        vec![id("$first"), id("$second"), id("$third")],
        id("$parent2"),
        HUB,
        &hub_key(),
    )
    .unwrap();
    assert_eq!(encode(pdu.json()), VECTOR_MESSAGE_PDU);
    assert_eq!(pdu.event_id().as_str(), VECTOR_MESSAGE_PDU_ID);
    assert_eq!(
        encode(&redaction::redact(rules.redaction, pdu.json())),
        VECTOR_MESSAGE_PDU_REDACTED
    );
}

#[test]
fn the_hubs_own_create_event_matches_the_independent_vector() {
    // [impl] A hub-local event has no hub_server and no LPDU hash; its content hash removes
    // `hashes` whole; the create event has empty auth_events and prev_events.
    let rules = &LINEARIZED_02;
    let create = object(json!({
        "room_id": "!abc:first.example.org",
        "type": "m.room.create",
        "state_key": "",
        "sender": "@alice:first.example.org",
        "origin_server_ts": 1681340180000_i64,
        "content": {"room_version": "org.matrix.i-d.ralston-mimi-linearized-matrix.02"},
    }));
    let pdu = build_hub_event(rules, &HubList::new(), create, HUB, &hub_key()).unwrap();
    assert_eq!(encode(pdu.json()), VECTOR_CREATE);
    assert_eq!(pdu.event_id().as_str(), VECTOR_CREATE_ID);
    assert_eq!(pdu::required_signers(&pdu), vec![HUB]);
    assert!(is_hub(&pdu, HUB));
    assert!(!is_hub(&pdu, PARTICIPANT));
}

#[test]
fn tampering_is_caught_by_the_right_check() {
    let rules = &LINEARIZED_02;
    let lpdu = build_lpdu(rules, message_partial(), PARTICIPANT, &participant_key()).unwrap();
    let pdu = complete_lpdu_with(rules, &lpdu, vec![id("$a")], id("$p"), HUB, &hub_key()).unwrap();
    let ring = ring();

    // Receipt step 2: "all other signatures MUST NOT be considered", valid or not.
    let mut extra = pdu.json().clone();
    extra["signatures"]["third.example.org"] = json!({"ed25519:1": "bm90IGEgc2lnbmF0dXJl"});
    let extra = Pdu::from_json(rules, extra).unwrap();
    assert_eq!(pdu::verify(rules, &extra, &ring), Ok(Verified::Intact));

    // The hub's signature missing: the hub's check fails (rule 2).
    let mut unsigned = pdu.json().clone();
    unsigned["signatures"].as_object_mut().unwrap().remove(HUB);
    let unsigned = Pdu::from_json(rules, unsigned).unwrap();
    assert!(matches!(pdu::verify(rules, &unsigned, &ring), Err(VerifyError::HubSignature(_))));

    // A hub that rewrites what the sender signed (the sender field is kept by redaction) and
    // signs the result itself: the LPDU signature fails (rule 1).
    let mut forged = pdu.json().clone();
    forged.insert("origin_server_ts".to_owned(), json!(1));
    forged["signatures"].as_object_mut().unwrap().remove(HUB);
    pdu::hash_and_sign(rules, &mut forged, HUB, &hub_key());
    let forged = Pdu::from_json(rules, forged).unwrap();
    assert!(matches!(pdu::verify(rules, &forged, &ring), Err(VerifyError::LpduSignature(_))));

    // A hub that changes content the signatures do not cover and recomputes the PDU hash:
    // the LPDU hash no longer matches, so the event is used redacted (receipt step 3).
    let mut changed = pdu.json().clone();
    changed["content"]["body"] = json!("goodbye");
    changed["signatures"].as_object_mut().unwrap().remove(HUB);
    pdu::hash_and_sign(rules, &mut changed, HUB, &hub_key());
    let changed = Pdu::from_json(rules, changed).unwrap();
    let Ok(Verified::Redacted(redacted)) = pdu::verify(rules, &changed, &ring) else {
        panic!("a wrong LPDU hash must give the redacted copy")
    };
    assert_eq!(redacted["content"], json!({}));
    assert_eq!(redacted["hub_server"], json!(HUB));

    // The PDU hash alone wrong (content changed in transit): redacted as well.
    let mut damaged = pdu.json().clone();
    damaged["content"]["body"] = json!("damaged");
    let damaged = Pdu::from_json(rules, damaged).unwrap();
    assert!(matches!(pdu::verify(rules, &damaged, &ring), Ok(Verified::Redacted(_))));

    // An LPDU whose content changed after signing: its own hash fails.
    let mut lpdu_damaged = lpdu.json().clone();
    lpdu_damaged["content"]["body"] = json!("damaged");
    let lpdu_damaged = Lpdu::from_json(rules, lpdu_damaged).unwrap();
    assert!(matches!(verify_lpdu(rules, &lpdu_damaged, &ring), Ok(Verified::Redacted(_))));
    // And an LPDU signed by a key nobody knows fails its signature check.
    let stranger = SigningKey::from_seed(&[9; 32], "ed25519:1").unwrap();
    let lpdu_forged = build_lpdu(rules, message_partial(), PARTICIPANT, &stranger).unwrap();
    assert!(matches!(verify_lpdu(rules, &lpdu_forged, &ring), Err(VerifyError::LpduSignature(_))));
}

#[test]
fn lpdu_format_follows_the_draft() {
    let rules = &LINEARIZED_02;
    let lpdu = build_lpdu(rules, invite_partial(), PARTICIPANT, &participant_key()).unwrap();
    let with = |key: &str, value: Value| {
        let mut json = lpdu.json().clone();
        json.insert(key.to_owned(), value);
        Lpdu::from_json(rules, json).unwrap_err().path
    };
    // "MUST NOT populate": auth_events, prev_events, hashes other than hashes.lpdu.
    assert_eq!(with("auth_events", json!([])), "$.auth_events");
    assert_eq!(with("prev_events", json!(["$p"])), "$.prev_events");
    let mut hashes = lpdu.json()["hashes"].clone();
    hashes["sha256"] = json!("AAAA");
    assert_eq!(with("hashes", hashes), "$.hashes.sha256");
    // "MUST populate the hashes.lpdu object".
    assert_eq!(with("hashes", json!({})), "$.hashes.lpdu");
    // [digest] The sender names the hub inside the LPDU.
    let mut no_hub = lpdu.json().clone();
    no_hub.remove("hub_server");
    assert_eq!(Lpdu::from_json(rules, no_hub).unwrap_err().path, "$.hub_server");
    assert_eq!(with("hub_server", json!("not a name!")), "$.hub_server");
    let mut no_signatures = lpdu.json().clone();
    no_signatures.remove("signatures");
    assert_eq!(Lpdu::from_json(rules, no_signatures).unwrap_err().path, "$.signatures");
    // A partial event that is not an object.
    assert_eq!(Lpdu::from_value(rules, json!([1])).unwrap_err().path, "$");
}

#[test]
fn pdu_format_pairs_hub_server_with_the_lpdu_hash() {
    let rules = &LINEARIZED_02;
    let pdu = parse(VECTOR_INVITE_PDU);
    let path = |json: Object| Pdu::from_json(rules, json).unwrap_err().path;
    // "Events which specify a hub_server MUST additionally contain an lpdu hash."
    let mut no_lpdu = pdu.clone();
    no_lpdu["hashes"].as_object_mut().unwrap().remove("lpdu");
    assert_eq!(path(no_lpdu), "$.hashes.lpdu");
    // "All other events MUST NOT contain lpdu hashes."
    let mut no_hub = pdu.clone();
    no_hub.remove("hub_server");
    assert_eq!(path(no_hub), "$.hashes.lpdu");
    // "Expected to have exactly 1 entry" in prev_events.
    let mut two_prev = pdu.clone();
    two_prev.insert("prev_events".to_owned(), json!(["$a", "$b"]));
    assert_eq!(path(two_prev), "$.prev_events");
    let mut no_prev = pdu.clone();
    no_prev.insert("prev_events".to_owned(), json!([]));
    assert_eq!(path(no_prev), "$.prev_events");
    // No depth is required (the draft's field list has none); one present is ignored.
    let mut with_depth = pdu.clone();
    with_depth.insert("depth".to_owned(), json!("not even a number"));
    assert_eq!(Pdu::from_json(rules, with_depth).unwrap().depth(), 0);
    // An event without hub_server may have several prev events (DAG interop).
    let create = parse(VECTOR_CREATE);
    let mut dag = create.clone();
    dag.insert("type".to_owned(), json!("m.room.message"));
    dag.remove("state_key");
    dag.insert("prev_events".to_owned(), json!(["$a", "$b"]));
    assert!(Pdu::from_json(rules, dag).is_ok());
    // In room version 11 the same keys are unknown fields: depth is required, hub_server
    // means nothing and adds no signer.
    let mut v11 = parse(VECTOR_INVITE_PDU);
    assert_eq!(Pdu::from_json(&V11, v11.clone()).unwrap_err().path, "$.depth");
    v11.insert("depth".to_owned(), json!(3));
    let v11 = Pdu::from_json(&V11, v11).unwrap();
    assert_eq!(v11.hub_server(), None);
    assert_eq!(pdu::required_signers(&v11), vec![PARTICIPANT]);
}

#[test]
fn content_hash_keeps_only_the_lpdu_hash() {
    // Draft "Content Hash Calculation" 1.2: every `hashes` key but `lpdu` is removed; the
    // hand-checkable consequence is that a PDU's hash ignores `hashes.sha256` and any other
    // algorithm, but not `hashes.lpdu`.
    let rules = &LINEARIZED_02;
    let pdu = parse(VECTOR_INVITE_PDU);
    let base = pdu::content_hash_in(rules, &pdu);
    let mut other = pdu.clone();
    other["hashes"]["sha512"] = json!("x");
    other["hashes"]["sha256"] = json!("y");
    other.insert("unsigned".to_owned(), json!({"age": 1}));
    assert_eq!(pdu::content_hash_in(rules, &other), base);
    let mut lpdu_changed = pdu.clone();
    lpdu_changed["hashes"]["lpdu"]["sha256"] = json!("z");
    assert_ne!(pdu::content_hash_in(rules, &lpdu_changed), base);
    // Room version 11 removes `hashes` whole, so the LPDU hash is not covered there.
    assert_eq!(pdu::content_hash_in(&V11, &lpdu_changed), pdu::content_hash_in(&V11, &pdu));
    // The LPDU rebuilt from the PDU is the LPDU the sender signed.
    let mut rebuilt = pdu::rebuild_lpdu(&pdu);
    rebuilt["signatures"].as_object_mut().unwrap().remove(HUB);
    assert_eq!(encode(&rebuilt), VECTOR_INVITE_LPDU);
}

/// A room on the hub: create, the creator's join, power levels, a public join rule.
fn hub_room() -> HubList {
    let rules = &LINEARIZED_02;
    let mut list = HubList::new();
    let events = [
        json!({"type": "m.room.create", "state_key": "", "sender": "@alice:first.example.org",
               "content": {"room_version": LINEARIZED_02.version.as_str()}}),
        json!({"type": "m.room.member", "state_key": "@alice:first.example.org",
               "sender": "@alice:first.example.org", "content": {"membership": "join"}}),
        json!({"type": "m.room.power_levels", "state_key": "", "sender": "@alice:first.example.org",
               "content": {"users": {"@alice:first.example.org": 100}}}),
        json!({"type": "m.room.join_rules", "state_key": "", "sender": "@alice:first.example.org",
               "content": {"join_rule": "public"}}),
    ];
    for (ts, event) in events.into_iter().enumerate() {
        let mut json = object(event);
        json.insert("room_id".to_owned(), json!("!room:first.example.org"));
        json.insert("origin_server_ts".to_owned(), json!(ts));
        let pdu = build_hub_event(rules, &list, json, HUB, &hub_key()).unwrap();
        list.append(rules, Arc::new(pdu), SignatureCheck::Keys(&ring())).unwrap();
    }
    list
}

/// An LPDU from `sender` on the participant server.
fn lpdu_from(event_type: &str, sender: &str, state_key: Option<&str>, content: Value) -> Lpdu {
    let mut json = object(json!({
        "room_id": "!room:first.example.org",
        "type": event_type,
        "sender": sender,
        "origin_server_ts": 100,
        "hub_server": HUB,
        "content": content,
    }));
    if let Some(state_key) = state_key {
        json.insert("state_key".to_owned(), json!(state_key));
    }
    build_lpdu(&LINEARIZED_02, json, PARTICIPANT, &participant_key()).unwrap()
}

const BOB: &str = "@bob:second.example.org";

#[test]
fn the_hub_completes_lpdus_after_the_head_and_a_participant_follows() {
    let rules = &LINEARIZED_02;
    let mut hub = hub_room();
    // A participant holds a copy of the list and appends what the hub sends, in order.
    let mut participant = HubList::new();
    for pdu in hub.events() {
        participant.append(rules, pdu.clone(), SignatureCheck::Keys(&ring())).unwrap();
    }
    assert_eq!(hub.hub(), Some(HUB));
    let join = lpdu_from("m.room.member", BOB, Some(BOB), json!({"membership": "join"}));
    let message = lpdu_from("m.room.message", BOB, None, json!({"body": "hi"}));
    for lpdu in [join, message] {
        let head = hub.head().unwrap().event_id().clone();
        let pdu = complete_lpdu(rules, &hub, &lpdu, HUB, &hub_key()).unwrap();
        assert_eq!(pdu.prev_events(), [head]);
        assert_eq!(pdu.hub_server(), Some(HUB));
        assert_eq!(pdu::verify(rules, &pdu, &ring()), Ok(Verified::Intact));
        let pdu = Arc::new(pdu);
        let position = hub.append(rules, pdu.clone(), SignatureCheck::Keys(&ring())).unwrap();
        assert_eq!(participant.append(rules, pdu, SignatureCheck::Keys(&ring())), Ok(position));
    }
    assert_eq!(hub.len(), 6);
    let ids =
        |list: &HubList| list.events().iter().map(|p| p.event_id().clone()).collect::<Vec<_>>();
    assert_eq!(ids(&hub), ids(&participant));
    assert_eq!(hub.state(), participant.state());
    // Selection for Bob's message: create, power levels, Bob's membership.
    let message = hub.head().unwrap();
    let create = hub.events()[0].event_id();
    let power = hub.events()[2].event_id();
    let bob_join = hub.events()[4].event_id();
    assert_eq!(message.auth_events(), [create.clone(), power.clone(), bob_join.clone()]);
}

#[test]
fn the_hub_refuses_what_it_cannot_complete() {
    let rules = &LINEARIZED_02;
    let hub = hub_room();
    let message = lpdu_from("m.room.message", BOB, None, json!({"body": "hi"}));
    // Another hub's LPDU.
    let other = SigningKey::from_seed(&[7; 32], "ed25519:1").unwrap();
    assert_eq!(
        complete_lpdu(rules, &hub, &message, "other.example.org", &other),
        Err(CompletionError::WrongHub {
            named: HUB.to_owned(),
            hub: "other.example.org".to_owned()
        })
    );
    // Nothing to append after.
    assert!(matches!(
        complete_lpdu(rules, &HubList::new(), &message, HUB, &hub_key()),
        Err(CompletionError::Position(_))
    ));
    // A create event as an LPDU.
    let create = lpdu_from("m.room.create", BOB, Some(""), json!({"room_version": "x"}));
    assert_eq!(
        complete_lpdu(rules, &hub, &create, HUB, &hub_key()),
        Err(CompletionError::CreateLpdu)
    );
}

/// Appends `pdu` to a participant's copy of `hub` and returns the fault.
fn fault_of(hub: &HubList, pdu: Pdu) -> HubMisbehaviour {
    let mut participant = hub.clone();
    let misbehaviour = participant
        .append(&LINEARIZED_02, Arc::new(pdu), SignatureCheck::Keys(&ring()))
        .unwrap_err();
    assert_eq!(participant.len(), hub.len(), "nothing is appended on a fault");
    misbehaviour
}

#[test]
fn a_participant_detects_a_misbehaving_hub() {
    let rules = &LINEARIZED_02;
    let hub = hub_room();
    let message = lpdu_from("m.room.message", BOB, None, json!({"body": "hi"}));
    let join = lpdu_from("m.room.member", BOB, Some(BOB), json!({"membership": "join"}));
    let events = hub.events();
    let (create, power) = (events[0].event_id().clone(), events[2].event_id().clone());

    // An event from a non-member that the hub should have rejected (rule 6).
    let complete = |lpdu: &Lpdu, auth: Vec<EventId>, prev: EventId| {
        complete_lpdu_with(rules, lpdu, auth, prev, HUB, &hub_key()).unwrap()
    };
    let head = hub.head().unwrap().event_id().clone();
    let rejected = complete(&message, vec![create.clone(), power.clone()], head.clone());
    let found = fault_of(&hub, rejected);
    assert_eq!(found.fault, HubFault::Rejected);
    assert_eq!(found.rejection.unwrap().rule, "6");
    assert_eq!(found.position, 4);

    // Ordering: not after the head.
    let stale = complete(
        &join,
        vec![create.clone(), power.clone(), events[3].event_id().clone()],
        create.clone(),
    );
    assert_eq!(fault_of(&hub, stale).fault, HubFault::NotAfterHead);

    // Auth events that are not the selection (the join rules left out of a join).
    let unselected = complete(&join, vec![create.clone(), power.clone()], head.clone());
    assert_eq!(fault_of(&hub, unselected).fault, HubFault::AuthEventsNotSelected);

    // An auth event the list does not hold.
    let unknown = complete(&join, vec![create.clone(), id("$nowhere")], head.clone());
    assert_eq!(fault_of(&hub, unknown).fault, HubFault::UnknownAuthEvent);

    // An event that is already in the list.
    assert_eq!(fault_of(&hub, (*events[3]).clone()).fault, HubFault::Duplicate);

    // A second create event.
    let mut second = (*events[0]).clone().into_json();
    second.insert("origin_server_ts".to_owned(), json!(99));
    let second = Pdu::from_json(rules, second).unwrap();
    assert_eq!(fault_of(&hub, second).fault, HubFault::CreateNotFirst);

    // An event completed by a server that is not the room's hub.
    let mut other = message.json().clone();
    other.insert("hub_server".to_owned(), json!("other.example.org"));
    other.remove("signatures");
    other.remove("hashes");
    let other = build_lpdu(rules, other, PARTICIPANT, &participant_key()).unwrap();
    let other_key = SigningKey::from_seed(&[7; 32], "ed25519:1").unwrap();
    let other =
        complete_lpdu_with(rules, &other, vec![create], head, "other.example.org", &other_key)
            .unwrap();
    assert_eq!(fault_of(&hub, other).fault, HubFault::WrongHub);

    // A list must start with the create event.
    let mut empty = HubList::new();
    let not_create = Arc::new(complete(&join, vec![], id("$x")));
    let found = empty.append(rules, not_create, SignatureCheck::AlreadyVerified).unwrap_err();
    assert_eq!(found.fault, HubFault::CreateNotFirst);
    assert!(empty.is_empty());
}

#[test]
fn dag_server_events_keep_their_own_prev_events_but_need_them_in_the_list() {
    // A DAG-capable server's event (no hub_server, sender not on the hub) is appended as it
    // is, with its own prev events, if they are already in the list.
    let rules = &LINEARIZED_02;
    let mut hub = hub_room();
    let join = lpdu_from("m.room.member", BOB, Some(BOB), json!({"membership": "join"}));
    let pdu = complete_lpdu(rules, &hub, &join, HUB, &hub_key()).unwrap();
    hub.append(rules, Arc::new(pdu), SignatureCheck::Keys(&ring())).unwrap();
    let events = hub.events();
    let selected = [events[0].event_id(), events[2].event_id(), events[4].event_id()];
    let dag_event = |prev: Vec<&EventId>| {
        let json = object(json!({
            "room_id": "!room:first.example.org",
            "type": "m.room.message",
            "sender": BOB,
            "origin_server_ts": 200,
            "content": {"body": "from the DAG"},
            "auth_events": selected.iter().map(|id| id.as_str()).collect::<Vec<_>>(),
            "prev_events": prev.iter().map(|id| id.as_str()).collect::<Vec<_>>(),
        }));
        pdu::build_signed(rules, json, PARTICIPANT, &participant_key()).unwrap()
    };
    // Two prev events, neither the head: fine for a DAG server.
    let ok = dag_event(vec![events[1].event_id(), events[4].event_id()]);
    let mut copy = hub.clone();
    assert_eq!(copy.append(rules, Arc::new(ok), SignatureCheck::Keys(&ring())), Ok(5));
    let unknown = dag_event(vec![&id("$unseen")]);
    assert_eq!(fault_of(&hub, unknown).fault, HubFault::UnknownPrevEvent);
}

const ALICE: &str = "@alice:first.example.org";
const CAROL: &str = "@carol:third.example.org";
const ROOM: &str = "!room:first.example.org";

/// `event` with the room id and `origin_server_ts` (100 unless given).
fn in_room(event: Value) -> Object {
    let mut json = object(event);
    json.insert("room_id".to_owned(), json!(ROOM));
    json.entry("origin_server_ts").or_insert(json!(100));
    json
}

/// An event of the hub's user alice, built by the hub on the list's forward extremities.
fn hub_pdu(list: &HubList, event: Value) -> Arc<Pdu> {
    Arc::new(build_hub_event(&LINEARIZED_02, list, in_room(event), HUB, &hub_key()).unwrap())
}

/// An event of the hub's user alice naming `prevs`, with the selected auth events.
fn hub_pdu_after(list: &HubList, event: Value, prevs: &[&EventId]) -> Arc<Pdu> {
    let rules = &LINEARIZED_02;
    let mut json = in_room(event);
    let partial = pdu::check_lpdu(rules, lpdu_probe(&json, HUB), Stage::LpduUnsigned).unwrap();
    let ids = |ids: &[&EventId]| json!(ids.iter().map(|id| id.as_str()).collect::<Vec<_>>());
    let auth = select_from(rules, &partial, list);
    json.insert("auth_events".to_owned(), ids(&auth.iter().collect::<Vec<_>>()));
    json.insert("prev_events".to_owned(), ids(prevs));
    Arc::new(pdu::build_signed(rules, json, HUB, &hub_key()).unwrap())
}

/// An event of the DAG-capable server's user carol with the given prev and auth events.
fn dag_pdu(event: Value, prevs: &[&EventId], auth: &[&EventId]) -> Arc<Pdu> {
    let mut json = in_room(event);
    let ids = |ids: &[&EventId]| json!(ids.iter().map(|id| id.as_str()).collect::<Vec<_>>());
    json.insert("prev_events".to_owned(), ids(prevs));
    json.insert("auth_events".to_owned(), ids(auth));
    Arc::new(pdu::build_signed(&LINEARIZED_02, json, DAG, &dag_key()).unwrap())
}

fn append(list: &mut HubList, pdu: &Arc<Pdu>) -> Result<u64, HubMisbehaviour> {
    list.append(&LINEARIZED_02, pdu.clone(), SignatureCheck::Keys(&ring()))
}

/// The event ids of a list's forward extremities.
fn extremities(list: &HubList) -> Vec<EventId> {
    list.forward_extremities().iter().cloned().collect()
}

/// The event id under a key of a state.
fn at<'s>(state: &'s ListState, event_type: &str, state_key: &str) -> Option<&'s str> {
    state.get(&(event_type.to_owned(), state_key.to_owned())).map(|pdu| pdu.event_id().as_str())
}

fn message(sender: &str, body: &str) -> Value {
    json!({"type": "m.room.message", "sender": sender, "content": {"body": body}})
}

fn topic(sender: &str, topic: &str, ts: i64) -> Value {
    json!({"type": "m.room.topic", "state_key": "", "sender": sender,
           "content": {"topic": topic}, "origin_server_ts": ts})
}

/// [`hub_room`] with carol of the DAG-capable server joined (a DAG event on the head, 4)
/// and given power 50, enough for state events (5, by alice): still a chain.
fn dag_room() -> HubList {
    let mut list = hub_room();
    let e: Vec<EventId> = list.events().iter().map(|p| p.event_id().clone()).collect();
    // A join's auth events: the create event, the power levels, the join rules (the sender
    // and target have no membership yet).
    let join = json!({"type": "m.room.member", "state_key": CAROL, "sender": CAROL,
                      "content": {"membership": "join"}});
    assert_eq!(append(&mut list, &dag_pdu(join, &[&e[3]], &[&e[0], &e[2], &e[3]])), Ok(4));
    let power = json!({"type": "m.room.power_levels", "state_key": "", "sender": ALICE,
                       "content": {"users": {ALICE: 100, CAROL: 50}}});
    let power = hub_pdu(&list, power);
    assert_eq!(append(&mut list, &power), Ok(5));
    list
}

/// The id of the event at `position`.
fn id_at(list: &HubList, position: usize) -> EventId {
    list.events()[position].event_id().clone()
}

#[test]
fn a_dag_event_off_the_head_forks_the_list_and_the_hubs_merge_joins_it() {
    let rules = &LINEARIZED_02;
    let mut list = dag_room();
    // A chain: one forward extremity, the head, and the state is the fold.
    assert_eq!(extremities(&list), [id_at(&list, 5)]);
    assert!(list.fold_disagreement().is_empty());
    let (create, power, carol) = (id_at(&list, 0), id_at(&list, 5), id_at(&list, 4));
    let hub_message = hub_pdu(&list, message(ALICE, "on the head"));
    assert_eq!(hub_message.prev_events(), std::slice::from_ref(&power));
    assert_eq!(append(&mut list, &hub_message), Ok(6));
    // Carol's server had not seen alice's message: it names 5, not the head 6.
    let dag = dag_pdu(message(CAROL, "off the head"), &[&power], &[&create, &power, &carol]);
    assert_eq!(append(&mut list, &dag), Ok(7));
    let mut both = vec![hub_message.event_id().clone(), dag.event_id().clone()];
    both.sort();
    assert_eq!(extremities(&list), both);
    // Messages change no state: the two branches agree.
    assert!(list.fold_disagreement().is_empty());

    // An event the hub builds now must name both; the head alone is a fault, and so is the
    // other branch alone.
    for alone in &both {
        let stale = hub_pdu_after(&list, message(ALICE, "one branch"), &[alone]);
        let found = fault_of(&list, (*stale).clone());
        assert_eq!(found.fault, HubFault::NotAfterHead);
        assert!(found.reason.contains(both[0].as_str()) && found.reason.contains(both[1].as_str()));
    }
    // Nor can the hub complete an LPDU, which names one prev event: it merges first.
    let lpdu = lpdu_from("m.room.message", BOB, None, json!({"body": "hi"}));
    assert!(matches!(
        complete_lpdu(rules, &list, &lpdu, HUB, &hub_key()),
        Err(CompletionError::Position(_))
    ));

    // The merge: a dummy event naming both extremities in event-id order.
    let merge = build_merge_event(rules, &list, ROOM, ALICE, 300, HUB, &hub_key()).unwrap();
    assert_eq!(merge.event_type(), MERGE_EVENT_TYPE);
    assert_eq!(merge.prev_events(), both.as_slice());
    assert_eq!(merge.hub_server(), None);
    assert_eq!(merge.content(), &Object::new());
    // Its auth events: the create event, the power levels and alice's membership.
    assert_eq!(merge.auth_events(), [create.clone(), power.clone(), id_at(&list, 1)]);
    let merge = Arc::new(merge);
    let mut merged = list.clone();
    assert_eq!(append(&mut merged, &merge), Ok(8));
    assert_eq!(extremities(&merged), [merge.event_id().clone()]);
    assert_eq!(merged.head().unwrap().event_id(), merge.event_id());
    // The same merge naming the extremities in the other order is as good: a set.
    let reversed = hub_pdu_after(
        &list,
        json!({"type": MERGE_EVENT_TYPE, "sender": ALICE,
        "content": {}, "origin_server_ts": 301}),
        &[&both[1], &both[0]],
    );
    let mut other = list.clone();
    assert_eq!(append(&mut other, &reversed), Ok(8));
    assert_eq!(extremities(&other), [reversed.event_id().clone()]);
    // A merge after the merge has nothing to merge, and the list is a chain again.
    assert!(matches!(
        build_merge_event(rules, &merged, ROOM, ALICE, 302, HUB, &hub_key()),
        Err(CompletionError::Position(_))
    ));
    let next = hub_pdu(&merged, message(ALICE, "after the merge"));
    assert_eq!(next.prev_events(), [merge.event_id().clone()]);
    assert_eq!(append(&mut merged, &next), Ok(9));
}

#[test]
fn a_dag_event_needs_every_prev_event_in_the_list() {
    let mut list = dag_room();
    let (create, power, carol) = (id_at(&list, 0), id_at(&list, 5), id_at(&list, 4));
    // One known prev event does not make up for an unknown one.
    let unknown =
        dag_pdu(message(CAROL, "x"), &[&power, &id("$unseen")], &[&create, &power, &carol]);
    let found = fault_of(&list, (*unknown).clone());
    assert_eq!(found.fault, HubFault::UnknownPrevEvent);
    assert!(found.reason.contains("$unseen"));
    assert_eq!(extremities(&list), std::slice::from_ref(&power));
    // The same event naming only the known one is appended.
    let known = dag_pdu(message(CAROL, "x"), &[&power], &[&create, &power, &carol]);
    assert_eq!(append(&mut list, &known), Ok(6));
}

/// The list after alice's topic (hub, 6) and carol's concurrent topic (DAG, 7, on 5).
fn concurrent_topics(hub_ts: i64, dag_ts: i64) -> (HubList, Arc<Pdu>, Arc<Pdu>) {
    let mut list = dag_room();
    let (create, power, carol) = (id_at(&list, 0), id_at(&list, 5), id_at(&list, 4));
    let hub_topic = hub_pdu(&list, topic(ALICE, "the hub's", hub_ts));
    assert_eq!(append(&mut list, &hub_topic), Ok(6));
    let dag_topic =
        dag_pdu(topic(CAROL, "the DAG's", dag_ts), &[&power], &[&create, &power, &carol]);
    assert_eq!(append(&mut list, &dag_topic), Ok(7));
    (list, hub_topic, dag_topic)
}

#[test]
fn the_state_after_a_fork_is_the_resolution_not_the_order_of_receipt() {
    // Two topics on two branches, the DAG's appended last but sent earlier (ts 1000 against
    // 2000). State resolution v2 (digest: spec/state-resolution.md §3): neither is a power
    // event; both cite the same power levels (5), so their mainline positions tie; then
    // origin_server_ts ascending orders the DAG's topic first and the hub's last, and the
    // iterative auth checks apply them in that order (both pass: carol has 50, alice 100,
    // state_default is 50), so the hub's topic holds the key. The fold in list order holds
    // the DAG's, appended last.
    let rules = &LINEARIZED_02;
    let (mut list, hub_topic, dag_topic) = concurrent_topics(2000, 1000);
    let (hub_id, dag_id) = (hub_topic.event_id().as_str(), dag_topic.event_id().as_str());
    assert_eq!(at(list.state(), "m.room.topic", ""), Some(hub_id));
    assert_eq!(at(list.fold(), "m.room.topic", ""), Some(dag_id));
    assert_eq!(list.fold_disagreement(), [("m.room.topic".to_owned(), String::new())]);
    // Each branch's own state: the state after an event is the state before it plus it.
    assert_eq!(at(list.state_after(6).unwrap(), "m.room.topic", ""), Some(hub_id));
    assert_eq!(at(list.state_after(7).unwrap(), "m.room.topic", ""), Some(dag_id));
    assert_eq!(at(list.state_after(5).unwrap(), "m.room.topic", ""), None);
    // Every other key agrees: carol's join and the power levels are on both branches.
    assert_eq!(list.state().len(), list.fold().len());
    // The merge keeps the resolved state, and the disagreement with the fold stays.
    let merge = build_merge_event(rules, &list, ROOM, ALICE, 3000, HUB, &hub_key()).unwrap();
    assert_eq!(append(&mut list, &Arc::new(merge)), Ok(8));
    assert_eq!(list.forward_extremities().len(), 1);
    assert_eq!(at(list.state(), "m.room.topic", ""), Some(hub_id));
    assert_eq!(at(list.state_after(8).unwrap(), "m.room.topic", ""), Some(hub_id));
    assert_eq!(list.fold_disagreement(), [("m.room.topic".to_owned(), String::new())]);

    // The control: the DAG's topic sent later (3000) wins the tie-break and agrees with
    // the fold.
    let (list, _, dag_topic) = concurrent_topics(2000, 3000);
    assert_eq!(at(list.state(), "m.room.topic", ""), Some(dag_topic.event_id().as_str()));
    assert!(list.fold_disagreement().is_empty());
}

#[test]
fn a_dag_event_is_checked_against_the_state_before_it_and_the_current_state() {
    let mut list = dag_room();
    let (create, power, carol) = (id_at(&list, 0), id_at(&list, 5), id_at(&list, 4));
    // Soft failure: alice bans carol on the hub's branch; carol's server, not knowing,
    // sends a message on 5. It passes against its auth events and the state before it
    // (carol joined there) but not against the list's current state: rule 6, sender not
    // joined.
    let dag_message = dag_pdu(message(CAROL, "still here?"), &[&power], &[&create, &power, &carol]);
    let mut before_ban = list.clone();
    assert_eq!(append(&mut before_ban, &dag_message), Ok(6), "the control: no ban, no fault");
    let ban = json!({"type": "m.room.member", "state_key": CAROL, "sender": ALICE,
                     "content": {"membership": "ban"}});
    let ban = hub_pdu(&list, ban);
    assert_eq!(append(&mut list, &ban), Ok(6));
    let found = fault_of(&list, (*dag_message).clone());
    assert_eq!(found.fault, HubFault::Rejected);
    assert_eq!(found.rejection.unwrap().rule, "6");
    assert!(found.reason.contains("soft-failed"), "{}", found.reason);

    // The DAG rule: carol's message naming 3, before her join (4), fails against the state
    // before it although its auth events (her join among them) and the current state
    // would allow it.
    let mut list = dag_room();
    let three = id_at(&list, 3);
    let early = dag_pdu(message(CAROL, "too early"), &[&three], &[&create, &power, &carol]);
    let found = fault_of(&list, (*early).clone());
    assert_eq!(found.fault, HubFault::Rejected);
    assert_eq!(found.rejection.unwrap().rule, "6");
    assert!(found.reason.contains("state before it"), "{}", found.reason);
    // Named on 4 (her join), the same message is appended.
    let on_join = dag_pdu(message(CAROL, "too early"), &[&carol], &[&create, &power, &carol]);
    assert_eq!(append(&mut list, &on_join), Ok(6));
    assert_eq!(list.forward_extremities().len(), 2);
}
