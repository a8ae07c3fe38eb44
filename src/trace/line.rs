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
