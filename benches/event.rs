//! Event pipeline costs: canonical encode + content hash + reference hash, sign, and verify,
//! for a typical 1 KiB message event and a 16 KiB state event.
//!
//! Run: `cargo bench --bench event`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mxsim::matrix::canonical_json::{self, Object};
use mxsim::matrix::crypto::{KeyRing, SigningKey};
use mxsim::matrix::pdu::{self, Pdu};
use mxsim::matrix::room_version::V12;
use serde_json::{Value, json};

const ROOM: &str = "!P5-6WTYQ_woy6f4nmleE0XqxjtZcyKGza5_gDN-KAdM";

fn prev(n: u8) -> Vec<String> {
    (0..n)
        .map(|i| format!("$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Z{}", char::from(b'a' + i)))
        .collect()
}

/// A message event whose canonical signed form is about `size` bytes.
fn message(size: usize) -> Object {
    let mut event = json!({
        "type": "m.room.message", "sender": "@alice:hs1.example.org", "room_id": ROOM,
        "origin_server_ts": 1_700_000_000_000_i64, "depth": 1234, "auth_events": prev(3),
        "prev_events": prev(2), "content": {"msgtype": "m.text", "body": ""},
    });
    let signed_overhead = 600;
    event["content"]["body"] =
        Value::String("lorem ipsum ".repeat(size.saturating_sub(signed_overhead) / 12));
    let Value::Object(o) = event else { unreachable!() };
    o
}

/// A power-levels state event with many users, about `size` bytes.
fn power_levels(size: usize) -> Object {
    let mut users = serde_json::Map::new();
    let mut i = 0;
    while users.len() * 40 < size.saturating_sub(600) {
        users.insert(format!("@user{i:05}:server{}.example.org", i % 50), Value::from(i % 100));
        i += 1;
    }
    let event = json!({
        "type": "m.room.power_levels", "state_key": "", "sender": "@alice:hs1.example.org",
        "room_id": ROOM, "origin_server_ts": 1_700_000_000_000_i64, "depth": 1234,
        "auth_events": prev(3), "prev_events": prev(2),
        "content": {"users": users, "users_default": 0, "events_default": 0, "state_default": 50},
    });
    let Value::Object(o) = event else { unreachable!() };
    o
}

fn bench(c: &mut Criterion) {
    let key = SigningKey::from_seed(&[1; 32], "ed25519:1").unwrap();
    let mut ring = KeyRing::new();
    ring.entry("hs1.example.org".into()).or_default().insert("ed25519:1".into(), key.public_key());
    for (name, unsigned) in
        [("message_1KiB", message(1024)), ("state_16KiB", power_levels(16 * 1024))]
    {
        let signed = pdu::build_signed(&V12, unsigned.clone(), "hs1.example.org", &key).unwrap();
        let bytes = canonical_json::encode_object(signed.json()).unwrap().len() as u64;
        let mut group = c.benchmark_group(format!("event/{name}"));
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function("encode+content_hash+reference_hash", |b| {
            b.iter(|| {
                let encoded = canonical_json::encode_object(signed.json()).unwrap();
                let content = pdu::content_hash(signed.json());
                let reference = pdu::reference_hash(&V12, signed.json());
                (encoded.len(), content, reference)
            })
        });
        group.bench_function("sign", |b| {
            b.iter(|| {
                let mut event = unsigned.clone();
                pdu::hash_and_sign(&V12, &mut event, "hs1.example.org", &key);
                event
            })
        });
        group.bench_function("verify", |b| b.iter(|| pdu::verify(&V12, &signed, &ring).unwrap()));
        group.bench_function("parse+format_check+event_id", |b| {
            let text = canonical_json::encode_object(signed.json()).unwrap();
            b.iter(|| {
                let value =
                    canonical_json::parse(&text, canonical_json::Numbers::IntegerLiterals).unwrap();
                Pdu::from_value(&V12, value).unwrap()
            })
        });
        group.finish();
        eprintln!("{name}: {bytes} bytes signed");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
