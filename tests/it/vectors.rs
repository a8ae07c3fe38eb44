//! The spec's test vectors, byte for byte (digest: spec/canonical-json-and-signing.md §1, §8),
//! and the digest's computed v11/v12 variants of the event-signing vectors.

use mxsim::matrix::canonical_json::{self, Numbers, Object};
use mxsim::matrix::crypto::{self, SigningKey};
use mxsim::matrix::pdu;
use mxsim::matrix::room_version::{V10, V11, V12};
use serde_json::Value;

const SEED: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";

fn key() -> SigningKey {
    SigningKey::from_seed_base64(SEED, "ed25519:1").unwrap()
}

fn object(text: &str) -> Object {
    match canonical_json::parse(text.as_bytes(), Numbers::IntegerLiterals).unwrap() {
        Value::Object(o) => o,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn canonical_json_vectors() {
    // (input, canonical output), verbatim from the spec appendix.
    let cases: &[(&str, &str)] = &[
        ("{}", "{}"),
        ("{\n    \"one\": 1,\n    \"two\": \"Two\"\n}", r#"{"one":1,"two":"Two"}"#),
        ("{\n    \"b\": \"2\",\n    \"a\": \"1\"\n}", r#"{"a":"1","b":"2"}"#),
        (r#"{"b":"2","a":"1"}"#, r#"{"a":"1","b":"2"}"#),
        (
            r#"{
    "auth": {
        "success": true,
        "mxid": "@john.doe:example.com",
        "profile": {
            "display_name": "John Doe",
            "three_pids": [
                {
                    "medium": "email",
                    "address": "john.doe@example.org"
                },
                {
                    "medium": "msisdn",
                    "address": "123456789"
                }
            ]
        }
    }
}"#,
            r#"{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}"#,
        ),
        ("{\n    \"a\": \"日本語\"\n}", r#"{"a":"日本語"}"#),
        ("{\n    \"本\": 2,\n    \"日\": 1\n}", r#"{"日":1,"本":2}"#),
        ("{\n    \"a\": \"\\u65E5\"\n}", r#"{"a":"日"}"#),
        ("{\n    \"a\": null\n}", r#"{"a":null}"#),
        ("{\n    \"a\": -0,\n    \"b\": 1e10\n}", r#"{"a":0,"b":10000000000}"#),
    ];
    assert_eq!(cases.len(), 10);
    for (input, expected) in cases {
        // The last vector writes 1e10, which only the normalising mode accepts.
        let value = canonical_json::parse(input.as_bytes(), Numbers::IntegralValues).unwrap();
        let encoded = canonical_json::encode(&value).unwrap();
        assert_eq!(String::from_utf8(encoded).unwrap(), *expected, "input {input}");
    }
    // Strict (federation) parsing refuses the exponent of vector C10 but accepts -0.
    assert!(canonical_json::parse(b"{\"b\": 1e10}", Numbers::IntegerLiterals).is_err());
    assert!(canonical_json::parse(b"{\"a\": -0}", Numbers::IntegerLiterals).is_ok());
}

#[test]
fn public_key_of_the_spec_seed() {
    assert_eq!(key().public_key_base64(), "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI");
}

#[test]
fn json_signing_vectors() {
    let mut empty = object("{}");
    crypto::sign_json(&mut empty, "domain", &key()).unwrap();
    assert_eq!(
        Value::Object(empty),
        serde_json::json!({"signatures": {"domain": {"ed25519:1":
            "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"}}})
    );
    let mut two = object(r#"{"one": 1, "two": "Two"}"#);
    crypto::sign_json(&mut two, "domain", &key()).unwrap();
    assert_eq!(
        Value::Object(two.clone()),
        serde_json::json!({"one": 1, "two": "Two", "signatures": {"domain": {"ed25519:1":
            "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"}}})
    );
    let mut ring = crypto::KeyRing::new();
    ring.entry("domain".into()).or_default().insert("ed25519:1".into(), key().public_key());
    crypto::verify_json(&two, "domain", &ring).unwrap();
    two.insert("one".into(), Value::from(2));
    assert!(crypto::verify_json(&two, "domain", &ring).is_err());
}

const EVENT_1: &str = r#"{
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "signatures": {},
    "hashes": {},
    "type": "X",
    "content": {},
    "prev_events": [],
    "auth_events": [],
    "depth": 3,
    "unsigned": {
        "age_ts": 1000000
    }
}"#;

const EVENT_2: &str = r#"{
    "content": {
        "body": "Here is the message content"
    },
    "event_id": "$0:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {},
    "unsigned": {
        "age_ts": 1000000
    }
}"#;

fn signed(rules: &mxsim::matrix::RoomVersionRules, text: &str) -> Object {
    let mut event = object(text);
    pdu::hash_and_sign(rules, &mut event, "domain", &key());
    event
}

fn signature(event: &Object) -> &str {
    event["signatures"]["domain"]["ed25519:1"].as_str().unwrap()
}

#[test]
fn event_signing_vector_minimal_event() {
    let event = signed(&V10, EVENT_1);
    // Whole expected output, verbatim from the spec.
    let expected = object(
        r#"{
    "auth_events": [],
    "content": {},
    "depth": 3,
    "hashes": {
        "sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"
    },
    "origin": "domain",
    "origin_server_ts": 1000000,
    "prev_events": [],
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "signatures": {
        "domain": {
            "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
        }
    },
    "type": "X",
    "unsigned": {
        "age_ts": 1000000
    }
}"#,
    );
    assert_eq!(
        canonical_json::encode_object(&event).unwrap(),
        canonical_json::encode_object(&expected).unwrap()
    );
    // The event is a well-formed v10 PDU whose signature verifies.
    let pdu = mxsim::matrix::Pdu::from_json(&V10, event).unwrap();
    let mut ring = crypto::KeyRing::new();
    ring.entry("domain".into()).or_default().insert("ed25519:1".into(), key().public_key());
    assert_eq!(pdu::verify(&V10, &pdu, &ring).unwrap(), pdu::Verified::Intact);
    assert_eq!(pdu.event_id().as_str(), "$8yif6p8EqgoSten2BLje9ntKm720NyFLWQv9tn8memc");
}

#[test]
fn event_signing_vector_redactable_content() {
    let event = signed(&V10, EVENT_2);
    let expected = object(
        r#"{
    "content": {
        "body": "Here is the message content"
    },
    "event_id": "$0:domain",
    "hashes": {
        "sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"
    },
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {
        "domain": {
            "ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
        }
    },
    "unsigned": {
        "age_ts": 1000000
    }
}"#,
    );
    assert_eq!(
        canonical_json::encode_object(&event).unwrap(),
        canonical_json::encode_object(&expected).unwrap()
    );
}

#[test]
fn event_signing_vectors_under_v11_and_v12_redaction() {
    // [digest] computed variants: the content hash is unchanged, the signature differs
    // because the v11 rules strip top-level `origin`.
    for rules in [&V11, &V12] {
        let one = signed(rules, EVENT_1);
        assert_eq!(one["hashes"]["sha256"], "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos");
        assert_eq!(
            signature(&one),
            "Jxp+1glFcZM+nnHpY0EkedRR7u0VmKsJYGnQqIvqus3UvL5X/p1y6wSkLhGoTBel6MZ9lrMIzUqrjqFquWJKBw"
        );
        assert_eq!(
            pdu::event_id(rules, &one).as_str(),
            "$70O_oKlXzFbkfu0KE88USi98DjSWrOELrPj-8tisl8I"
        );
        let two = signed(rules, EVENT_2);
        assert_eq!(two["hashes"]["sha256"], "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g");
        assert_eq!(
            signature(&two),
            "4WQB/6LN2OtkUN/+18xUNB/U4RTX1N3EeKBdlCxux08YO8izKDrSRqML1XB8V97IK7AujkNO1xMl7TaBLA4kDw"
        );
    }
}

#[test]
fn v12_create_event_self_check() {
    let create = object(
        r#"{"auth_events":[],"content":{"room_version":"12"},"depth":1,"origin_server_ts":1000000,"prev_events":[],"sender":"@a:domain","state_key":"","type":"m.room.create"}"#,
    );
    let pdu = pdu::build_signed(&V12, create, "domain", &key()).unwrap();
    assert_eq!(pdu.json()["hashes"]["sha256"], "ccqBumrNf46eCfIkdZSYW9RNafS0xFYYDm5rnZBSVJU");
    assert_eq!(
        signature(pdu.json()),
        "0iTJ32BZFymf41Y7UBttP2wZ0JTo6UjsLDQuf+79LB+WeKVfoLyR2I8RF23ZdFgCuxtjVBl5MKXIOWP+ocELDw"
    );
    assert_eq!(pdu.event_id().as_str(), "$P5-6WTYQ_woy6f4nmleE0XqxjtZcyKGza5_gDN-KAdM");
    assert_eq!(pdu.room_id(), None);
    assert_eq!(pdu.room_id_or_derived(), "!P5-6WTYQ_woy6f4nmleE0XqxjtZcyKGza5_gDN-KAdM");
}
