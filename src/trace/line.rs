//! Writing a run's records as lines, each PDU body serialized once.
//!
//! In a run's own trace the `event` records of one stored body share its value (see
//! [`Body::Event`]): a join is recorded by every server that stored it before its creation
//! was, so at a hundred servers 204 bodies filled 2,735 records, and serializing each of
//! them again was 3% of a profile's samples and 0.4% of the run's instructions.
//! [`LineWriter`] keeps the JSON of the last body written per event id and writes it again
//! when a record holds that same value.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Body, Record};
use crate::matrix::ids::LookupMap;

/// A PDU body as records hold it.
type PduBody = Arc<Map<String, Value>>;

/// Writes records' lines exactly as [`Record::write_line`] does, remembering the JSON of
/// the PDU bodies written.
#[derive(Debug, Default)]
pub struct LineWriter {
    /// Event id → the body last written for it (held, so the pointer compared below can
    /// not be reused by another value) and its JSON.
    bodies: LookupMap<String, (PduBody, Vec<u8>)>,
    /// How many bodies were serialized (the others were written from `bodies`).
    serialized: u64,
}

impl LineWriter {
    pub fn new() -> LineWriter {
        LineWriter::default()
    }

    /// Appends the line of `record` (without the newline) to `out`: byte for byte
    /// [`Record::write_line`]'s. `record` is as given when this returns: its body is only
    /// set aside while the rest is written.
    ///
    /// `pdu` is the last field of an `event` record and the line is compact JSON, so the
    /// line of a record with a body is the line of the record without it, its closing
    /// brace replaced by `,"pdu":`, the body's JSON and the brace.
    pub fn write_line(&mut self, record: &mut Record, out: &mut Vec<u8>) {
        if write_network_line(record, out) {
            return;
        }
        let Body::Event { event_id: Some(_), pdu: pdu @ Some(_), .. } = &mut record.body else {
            return record.write_line(out);
        };
        let pdu = pdu.take().expect("matched as Some");
        let start = out.len();
        record.write_line(out);
        let Body::Event { event_id: Some(event_id), pdu: slot, .. } = &mut record.body else {
            unreachable!("the body matched above")
        };
        debug_assert_eq!(out.last(), Some(&b'}'));
        out.pop();
        out.extend_from_slice(b",\"pdu\":");
        match self.bodies.get(event_id.as_str()) {
            Some((last, json)) if Arc::ptr_eq(last, &pdu) => out.extend_from_slice(json),
            _ => {
                let json = serde_json::to_vec(&*pdu).expect("a JSON object always serializes");
                out.extend_from_slice(&json);
                self.serialized += 1;
                self.bodies.insert(event_id.clone(), (Arc::clone(&pdu), json));
            }
        }
        out.push(b'}');
        *slot = Some(pdu);
        debug_assert_eq!(out[start..], record.to_line().into_bytes()[..]);
    }
}

/// Appends the line of a `send` or `deliver` record, the two kinds written for every
/// message (two thirds of a run's records), byte for byte as [`Record::write_line`] writes
/// it, without serde's flattened map (its entries were 2.6% of a 100-server run's
/// samples). Writes nothing and returns false for every other kind, and for a `send` whose
/// texts need escaping, which are left to [`Record::write_line`].
fn write_network_line(record: &Record, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    match &record.body {
        Body::Deliver { msg, copy } => {
            out.extend_from_slice(b"{\"t\":");
            push_number(out, record.t);
            out.extend_from_slice(b",\"type\":\"deliver\",\"msg\":");
            push_number(out, *msg);
            out.extend_from_slice(b",\"copy\":");
            push_number(out, u64::from(*copy));
        }
        Body::Send { msg, from, to, bytes, what, request } => {
            if ![from, to, what].iter().all(|text| is_plain(text)) {
                return false;
            }
            out.extend_from_slice(b"{\"t\":");
            push_number(out, record.t);
            out.extend_from_slice(b",\"type\":\"send\",\"msg\":");
            push_number(out, *msg);
            out.extend_from_slice(b",\"from\":\"");
            out.extend_from_slice(from.as_bytes());
            out.extend_from_slice(b"\",\"to\":\"");
            out.extend_from_slice(to.as_bytes());
            out.extend_from_slice(b"\",\"bytes\":");
            push_number(out, *bytes);
            out.extend_from_slice(b",\"what\":\"");
            out.extend_from_slice(what.as_bytes());
            out.push(b'"');
            if let Some(request) = request {
                out.extend_from_slice(b",\"request\":");
                push_number(out, *request);
            }
        }
        _ => return false,
    }
    out.push(b'}');
    debug_assert_eq!(out[start..], record.to_line().into_bytes()[..]);
    true
}

/// Whether JSON writes `text` as it is between its quotes: no quote, backslash or control
/// character (serde_json escapes those, and nothing else).
fn is_plain(text: &str) -> bool {
    text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// Appends `n` in decimal, as JSON writes an unsigned integer.
fn push_number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
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
        for mut record in records {
            let given = record.clone();
            let mut line = Vec::new();
            writer.write_line(&mut record, &mut line);
            assert_eq!(String::from_utf8(line).expect("UTF-8"), record.to_line());
            assert_eq!(record, given, "the record is as given");
        }
        // Records 2 took record 1's JSON; record 4's body replaced it under the same id,
        // so record 5 serialized the first body again.
        assert_eq!(writer.serialized, 3);
    }

    #[test]
    fn send_and_deliver_lines_are_serde_jsons_byte_for_byte() {
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
        ];
        let mut writer = LineWriter::new();
        for mut record in records {
            let mut line = b"kept".to_vec();
            writer.write_line(&mut record, &mut line);
            assert_eq!(
                String::from_utf8(line).expect("UTF-8"),
                format!("kept{}", record.to_line())
            );
        }
        assert!(
            is_plain("PUT /a b\u{7f}é") && !is_plain("\"") && !is_plain("\\") && !is_plain("\t")
        );
    }

    #[test]
    fn a_body_is_serialized_again_only_for_another_value() {
        let mut writer = LineWriter::new();
        let body = || Arc::new(Map::from_iter([("k".to_owned(), Value::from("v"))]));
        let (one, equal) = (body(), body());
        for (t, pdu) in [(1, &one), (2, &one), (3, &one)] {
            writer.write_line(&mut event(t, None, Some(Arc::clone(pdu))), &mut Vec::new());
        }
        assert_eq!(writer.serialized, 1);
        // An equal value that is not the same one is serialized (a copy of a record read
        // back from a file, for example, could differ in nothing but identity).
        writer.write_line(&mut event(4, None, Some(Arc::clone(&equal))), &mut Vec::new());
        assert_eq!(writer.serialized, 2);
    }
}
