//! Writing a run's records as lines: the kinds written most by hand, each PDU body
//! serialized once.
//!
//! The `send`, `deliver`, `event`, `commit` and `state` records, nine in ten of a run's,
//! are written member by member as serde would write them (`write_common_line`), without
//! going through the flattened map of [`Record`]; the others by serde itself.
//!
//! In a run's own trace the `event` records of one stored body share its value (see
//! [`Body::Event`]): a join is recorded by every server that stored it before its creation
//! was, so at a hundred servers 204 bodies filled 2,735 records, and serializing each of
//! them again was 3% of a profile's samples and 0.4% of the run's instructions.
//! [`LineWriter`] keeps the JSON of the last body written per event id and writes it again
//! when a record holds that same value.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Body, Record, Text};
use crate::matrix::canonical_json;
use crate::matrix::ids::LookupMap;
use crate::stdx;

/// A PDU body as records hold it.
type PduBody = Arc<Map<String, Value>>;

/// Writes records' lines exactly as [`Record::write_line`] does, remembering the JSON of
/// the PDU bodies written.
#[derive(Debug, Default)]
pub struct LineWriter {
    /// Event id → the body last written for it (held, so the pointer compared below can
    /// not be reused by another value) and its JSON.
    bodies: LookupMap<Text, (PduBody, Vec<u8>)>,
    /// How many bodies were serialized (the others were written from `bodies`).
    serialized: u64,
}

impl LineWriter {
    pub fn new() -> LineWriter {
        LineWriter::default()
    }

    /// Appends the line of `record` (without the newline) to `out`: byte for byte
    /// [`Record::write_line`]'s.
    ///
    /// `pdu` is the last field of an `event` record and the line is compact JSON, so the
    /// line of a record with a body is the line of the record without it, its closing
    /// brace replaced by `,"pdu":`, the body's JSON and the brace.
    pub fn write_line(&mut self, record: &Record, out: &mut Vec<u8>) {
        let start = out.len();
        if !write_common_line(record, out) {
            return record.write_line(out);
        }
        if let Body::Event { event_id, pdu: Some(pdu), .. } = &record.body {
            debug_assert_eq!(out.last(), Some(&b'}'));
            out.pop();
            out.extend_from_slice(b",\"pdu\":");
            match event_id {
                Some(event_id) => match self.bodies.get(event_id.as_str()) {
                    Some((last, json)) if Arc::ptr_eq(last, pdu) => out.extend_from_slice(json),
                    _ => {
                        let json =
                            serde_json::to_vec(&**pdu).expect("a JSON object always serializes");
                        out.extend_from_slice(&json);
                        self.serialized += 1;
                        self.bodies.insert(event_id.clone(), (Arc::clone(pdu), json));
                    }
                },
                None => {
                    serde_json::to_writer(&mut *out, &**pdu)
                        .expect("a JSON object always serializes");
                }
            }
            out.push(b'}');
        }
        debug_assert_eq!(out[start..], record.to_line().into_bytes()[..]);
    }
}

/// Appends the line of a record of the kinds written most (`send` and `deliver` for every
/// message, `event`, `commit` and `state`: nine records in ten) byte for byte as
/// [`Record::write_line`] writes it, without serde's flattened map (its entries were 2.6%
/// of a 100-server run's samples). An `event` record's body is left out: the caller
/// splices it in. Writes nothing and returns false for every other kind.
fn write_common_line(record: &Record, out: &mut Vec<u8>) -> bool {
    let mut line = Line(out);
    match &record.body {
        Body::Deliver { msg, copy } => {
            line.start(record.t, b",\"type\":\"deliver\"");
            line.number(b",\"msg\":", *msg);
            line.number(b",\"copy\":", u64::from(*copy));
        }
        Body::Send { msg, from, to, bytes, what, request } => {
            line.start(record.t, b",\"type\":\"send\"");
            line.number(b",\"msg\":", *msg);
            line.text(b",\"from\":", from);
            line.text(b",\"to\":", to);
            line.number(b",\"bytes\":", *bytes);
            line.text(b",\"what\":", what);
            if let Some(request) = request {
                line.number(b",\"request\":", *request);
            }
        }
        Body::Event { server, room, event_id, decision, reason, pdu: _ } => {
            line.start(record.t, b",\"type\":\"event\"");
            line.text(b",\"server\":", server);
            line.text(b",\"room\":", room);
            if let Some(event_id) = event_id {
                line.text(b",\"event_id\":", event_id);
            }
            line.plain(b",\"decision\":", decision.as_str());
            if let Some(reason) = reason {
                line.text(b",\"reason\":", reason);
            }
        }
        Body::Commit { server, event_ids } => {
            line.start(record.t, b",\"type\":\"commit\"");
            line.text(b",\"server\":", server);
            line.0.extend_from_slice(b",\"event_ids\":[");
            for (i, id) in event_ids.iter().enumerate() {
                if i > 0 {
                    line.0.push(b',');
                }
                line.string(id);
            }
            line.0.push(b']');
        }
        Body::State { server, room, state_hash } => {
            line.start(record.t, b",\"type\":\"state\"");
            line.text(b",\"server\":", server);
            line.text(b",\"room\":", room);
            line.text(b",\"state_hash\":", state_hash);
        }
        _ => return false,
    }
    out.push(b'}');
    true
}

/// A record's line being written, as compact JSON: members in the order serde writes them.
struct Line<'o>(&'o mut Vec<u8>);

impl Line<'_> {
    /// `{"t":T` and the record's type member, `type_member` (`,"type":"KIND"`, as written:
    /// a kind's name needs no escape), in one piece rather than checked for escapes per line.
    fn start(&mut self, t: u64, type_member: &[u8]) {
        self.0.extend_from_slice(b"{\"t\":");
        stdx::push_decimal(self.0, t);
        self.0.extend_from_slice(type_member);
    }

    /// A member whose key (`key`: `,"NAME":`) is followed by a string that JSON writes as it
    /// is (a name from a fixed list), not checked for escapes.
    fn plain(&mut self, key: &[u8], value: &str) {
        debug_assert!(is_plain(value.as_bytes()), "{value:?} needs no escape");
        self.0.reserve(key.len() + value.len() + 2);
        self.0.extend_from_slice(key);
        self.0.push(b'"');
        self.0.extend_from_slice(value.as_bytes());
        self.0.push(b'"');
    }

    /// A member whose key (`key`: `,"NAME":`) is followed by a number.
    fn number(&mut self, key: &[u8], value: u64) {
        self.0.extend_from_slice(key);
        stdx::push_decimal(self.0, value);
    }

    /// A member whose key (`key`: `,"NAME":`) is followed by a string: as it is between
    /// quotes when JSON would escape none of it, else as serde_json escapes it.
    fn text(&mut self, key: &[u8], value: &str) {
        if is_plain(value.as_bytes()) {
            return self.plain(key, value);
        }
        self.0.extend_from_slice(key);
        serde_json::to_writer(&mut *self.0, value).expect("a string always serializes");
    }

    /// A JSON string without a key (an element of a list), written as [`Line::text`] writes
    /// a member's.
    fn string(&mut self, text: &str) {
        self.text(b"", text);
    }
}

/// Whether JSON writes `text` as it is between its quotes: no quote, backslash or control
/// character (serde_json escapes those, and nothing else), looked for eight bytes at a
/// time (a byte at a time, this check cost more than serde's own escaping).
fn is_plain(text: &[u8]) -> bool {
    canonical_json::plain_run(text) == text.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Decision;

    fn event(t: u64, reason: Option<&str>, pdu: Option<PduBody>) -> Record {
        Record {
            t,
            body: Body::Event {
                server: "hs1".into(),
                room: "!r:hs1".into(),
                event_id: Some("$e\"\u{1}é".into()),
                decision: Decision::Accepted,
                reason: reason.map(str::to_owned),
                pdu,
            },
        }
    }

    #[test]
    fn lines_are_the_records_own_and_a_body_is_serialized_once() {
        let body = |text: &str| {
            let value = serde_json::json!({"content": {"body": text, "n": [1, -2]}, "type": "m"});
            Arc::new(value.as_object().expect("an object").clone())
        };
        let (first, second) = (body("a\n\"b\"\u{7f}"), body("other"));
        let records = [
            event(1, None, Some(Arc::clone(&first))),
            event(2, Some("why"), Some(Arc::clone(&first))),
            event(3, None, None),
            event(4, Some("later"), Some(Arc::clone(&second))),
            event(5, None, Some(Arc::clone(&first))),
            Record { t: 6, body: Body::FaultStart { fault: 0 } },
        ];
        let mut writer = LineWriter::new();
        for record in records {
            let mut line = Vec::new();
            writer.write_line(&record, &mut line);
            assert_eq!(String::from_utf8(line).expect("UTF-8"), record.to_line());
        }
        // Records 2 took record 1's JSON; record 4's body replaced it under the same id,
        // so record 5 serialized the first body again.
        assert_eq!(writer.serialized, 3);
    }

    #[test]
    fn the_lines_written_by_hand_are_serde_jsons_byte_for_byte() {
        let send = |t, from: &str, what: &str, request| Record {
            t,
            body: Body::Send {
                msg: u64::MAX,
                from: from.into(),
                to: "hs2".into(),
                bytes: 0,
                what: what.into(),
                request,
            },
        };
        let records = [
            send(0, "hs1", "PUT /_matrix/federation/v1/send/17", None),
            send(u64::MAX, "hs1", "response 200", Some(10)),
            send(7, "sérvér\u{7f}", "GET /x?a=b&c=d", Some(0)),
            // Texts JSON escapes: written by serde itself.
            send(1, "hs\"1", "what", None),
            send(1, "hs1", "a\\b", None),
            send(1, "hs1", "line\nbreak\u{1f}", None),
            Record { t: 9, body: Body::Deliver { msg: 0, copy: u32::MAX } },
            Record { t: 1234567890, body: Body::Deliver { msg: 1000000000000, copy: 1 } },
            event(3, None, None),
            event(4, Some("auth \"rule\" 4\n"), None),
            event(5, Some("why"), Some(Arc::new(Map::new()))),
            Record {
                t: 6,
                body: Body::Event {
                    server: "hs\\1".into(),
                    room: "!r:hs1".into(),
                    event_id: None,
                    decision: Decision::RejectedAuthEvents,
                    reason: None,
                    pdu: Some(Arc::new(Map::from_iter([("a\u{0}".into(), Value::from(1))]))),
                },
            },
            Record { t: 7, body: Body::Commit { server: "hs1".into(), event_ids: vec![] } },
            Record {
                t: 8,
                body: Body::Commit {
                    server: "hs2".into(),
                    event_ids: vec!["$a".into(), "$\"b".into(), "$c".into()],
                },
            },
            Record {
                t: 9,
                body: Body::State {
                    server: "hs1".into(),
                    room: "!r:hs1\u{7}".into(),
                    state_hash: "VEzN34Lq/woV+SaL".into(),
                },
            },
        ];
        let mut writer = LineWriter::new();
        for record in records {
            let mut line = b"kept".to_vec();
            writer.write_line(&record, &mut line);
            assert_eq!(
                String::from_utf8(line).expect("UTF-8"),
                format!("kept{}", record.to_line())
            );
        }
        // Each byte value, at each place of an eight-byte word and in the remainder.
        for b in 0..=255u8 {
            let plain = b >= 0x20 && b != b'"' && b != b'\\';
            for at in 0..12 {
                let mut text = *b"abcdefghijkl";
                text[at] = b;
                assert_eq!(is_plain(&text), plain, "byte {b:#x} at {at}");
            }
        }
        assert!(is_plain("PUT /a b\u{7f}é".as_bytes()) && is_plain(b""));
    }

    #[test]
    fn a_body_is_serialized_again_only_for_another_value() {
        let mut writer = LineWriter::new();
        let body = || Arc::new(Map::from_iter([("k".to_owned(), Value::from("v"))]));
        let (one, equal) = (body(), body());
        for (t, pdu) in [(1, &one), (2, &one), (3, &one)] {
            writer.write_line(&event(t, None, Some(Arc::clone(pdu))), &mut Vec::new());
        }
        assert_eq!(writer.serialized, 1);
        // An equal value that is not the same one is serialized (a copy of a record read
        // back from a file, for example, could differ in nothing but identity).
        writer.write_line(&event(4, None, Some(Arc::clone(&equal))), &mut Vec::new());
        assert_eq!(writer.serialized, 2);
    }
}
