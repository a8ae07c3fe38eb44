//! Transactions (`/send` bodies, and the answers of `/event` and `/backfill`): their
//! shape, checks and encoding.

use std::sync::Arc;

use serde_json::Value;

use crate::homeserver::wire::codec::{objects_json, take_integer, take_objects, take_string};
use crate::homeserver::wire::error::WireError;
use crate::homeserver::wire::http::RequestBody;
use crate::homeserver::wire::{TRANSACTION_EDUS_MAX, TRANSACTION_PDUS_MAX, len_u64};
use crate::matrix::canonical_json::{self, INT_MAX, Object};
use crate::matrix::ids;

/// An ephemeral data unit (spec: "EDUs", digest §2): `{"edu_type", "content"}`, both
/// required. EDUs have no id, no room and are not persisted.
#[derive(Clone, Debug, PartialEq)]
pub struct Edu {
    pub edu_type: String,
    pub content: Object,
}

/// A transaction (spec: "Transactions", digest §2). Also the shape of the `/event` and
/// `/backfill` answers (spec digest §4), which carry no EDUs.
#[derive(Clone, Debug, PartialEq)]
pub struct Transaction {
    /// The sending server's name.
    pub origin: String,
    /// The sender's clock (ms since the Unix epoch) when the transaction started.
    pub origin_server_ts: i64,
    /// At most [`TRANSACTION_PDUS_MAX`] raw PDUs (the room version is not known here).
    pub pdus: Vec<Object>,
    /// At most [`TRANSACTION_EDUS_MAX`] EDUs. Encoded only when non-empty (optional field).
    pub edus: Vec<Edu>,
}

/// Where a transaction appears: in `/send` the counts are limited; as the answer to
/// `/event` or `/backfill` only the requester's `limit` bounds them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum TransactionUse {
    Send,
    Answer,
}

pub(super) fn validate_transaction(
    transaction: &Transaction,
    use_: TransactionUse,
) -> Result<(), WireError> {
    ids::check_server_name(&transaction.origin)
        .map_err(|e| WireError::bad_json("$.origin", e.problem))?;
    if !(-INT_MAX..=INT_MAX).contains(&transaction.origin_server_ts) {
        return Err(WireError::bad_json("$.origin_server_ts", "out of range"));
    }
    if use_ == TransactionUse::Send {
        if transaction.pdus.len() > TRANSACTION_PDUS_MAX {
            return Err(WireError::TooManyPdus { count: len_u64(transaction.pdus.len()) });
        }
        if transaction.edus.len() > TRANSACTION_EDUS_MAX {
            return Err(WireError::TooManyEdus { count: len_u64(transaction.edus.len()) });
        }
    }
    Ok(())
}

pub(super) fn transaction_json(transaction: &Transaction) -> Object {
    let mut body = Object::new();
    body.insert("origin".into(), Value::String(transaction.origin.clone()));
    body.insert("origin_server_ts".into(), Value::from(transaction.origin_server_ts));
    body.insert("pdus".into(), objects_json(&transaction.pdus));
    if !transaction.edus.is_empty() {
        let edus = transaction
            .edus
            .iter()
            .map(|edu| {
                let mut object = Object::new();
                object.insert("edu_type".into(), Value::String(edu.edu_type.clone()));
                object.insert("content".into(), Value::Object(edu.content.clone()));
                Value::Object(object)
            })
            .collect();
        body.insert("edus".into(), Value::Array(edus));
    }
    body
}

/// A PDU as a server sends it: its JSON, and the canonical encoding of that JSON, made
/// the first time a message carries it and then reused. A server sends each event it fans
/// out to every other server in the room (and again on a retry), so encoding it per
/// destination cost as many encodings, and before them as many deep copies, as there were
/// peers. A stored PDU's JSON is one ([`Pdu::shared_json`]).
///
/// [`Pdu::shared_json`]: crate::matrix::pdu::Pdu::shared_json
pub type OutgoingPdu = canonical_json::EncodedObject;

/// The canonical JSON of [`transaction_json`]`(transaction)`, written without building
/// that object: each PDU is encoded where it lies instead of being copied into the body
/// first. Panics, as [`encode_body`] does, on a value canonical JSON cannot hold; debug
/// builds compare the bytes with the general encoder's.
///
/// [`encode_body`]: crate::homeserver::wire::codec::encode_body
pub(super) fn encode_transaction(transaction: &Transaction) -> Vec<u8> {
    let out = write_transaction(
        &transaction.origin,
        transaction.origin_server_ts,
        &transaction.edus,
        transaction.pdus.len(),
        0,
        |out, index| {
            let pdu = &transaction.pdus[index];
            canonical_json::check_object(pdu).unwrap_or_else(|e| not_canonical(e));
            canonical_json::write_object(out, pdu);
        },
    );
    debug_assert_eq!(
        out,
        crate::homeserver::wire::codec::encode_body(&transaction_json(transaction)),
        "the direct encoding of a transaction is its body object's"
    );
    out
}

/// The body of a transaction of PDUs that carry their own encoding: the bytes of
/// [`encode_transaction`] for the transaction of their JSON (debug builds compare).
pub(super) fn encode_outgoing_transaction(
    origin: &str,
    origin_server_ts: i64,
    pdus: &[std::sync::Arc<OutgoingPdu>],
    edus: &[Edu],
) -> Vec<u8> {
    // The PDUs' bytes are known: the body is made in one allocation.
    let pdu_bytes: usize = pdus.iter().map(|pdu| pdu.bytes().len() + 1).sum();
    let out =
        write_transaction(origin, origin_server_ts, edus, pdus.len(), pdu_bytes, |out, index| {
            out.extend_from_slice(pdus[index].bytes());
        });
    debug_assert_eq!(
        out,
        encode_transaction(&Transaction {
            origin: origin.to_owned(),
            origin_server_ts,
            pdus: pdus.iter().map(|pdu| pdu.json().clone()).collect(),
            edus: edus.to_vec(),
        }),
        "PDUs written from their kept encoding are written as encoded in place"
    );
    out
}

/// The last `/send` body a server wrote ([`Request::send_transaction_http`]), with what it
/// was written from, so that the next transaction written from the same origin, timestamp
/// and PDUs, without EDUs, shares its bytes. A server that sends a new event to every
/// resident server at once writes the body once instead of once per destination.
///
/// [`Request::send_transaction_http`]: crate::homeserver::wire::Request::send_transaction_http
#[derive(Debug, Default)]
pub struct LastTransactionBody {
    written: Option<Written>,
}

#[derive(Debug)]
struct Written {
    origin: String,
    origin_server_ts: i64,
    /// The PDUs' shared encodings, compared by address: the same allocation is the same
    /// bytes.
    pdus: Vec<Arc<OutgoingPdu>>,
    body: RequestBody,
}

impl LastTransactionBody {
    /// The kept body, if it was written from these same parts.
    pub(super) fn shared(
        &self,
        origin: &str,
        origin_server_ts: i64,
        pdus: &[Arc<OutgoingPdu>],
        edus: &[Edu],
    ) -> Option<RequestBody> {
        let written = self.written.as_ref()?;
        let same = edus.is_empty()
            && written.origin_server_ts == origin_server_ts
            && written.pdus.len() == pdus.len()
            && written.pdus.iter().zip(pdus).all(|(a, b)| Arc::ptr_eq(a, b))
            && written.origin == origin;
        same.then(|| written.body.clone())
    }

    /// Keeps `body`, written from these parts without EDUs, in place of the last one.
    pub(super) fn keep(
        &mut self,
        origin: &str,
        origin_server_ts: i64,
        pdus: &[Arc<OutgoingPdu>],
        body: &RequestBody,
    ) {
        self.written = Some(Written {
            origin: origin.to_owned(),
            origin_server_ts,
            pdus: pdus.to_vec(),
            body: body.clone(),
        });
    }
}

fn not_canonical(e: canonical_json::ValueError) -> ! {
    panic!("outgoing message is not canonical JSON: {e}")
}

/// A transaction body with the PDUs written by `write_pdu(out, index)` for index
/// `0..pdus`, which take about `pdu_bytes` (0 when not known). Keys in canonical order:
/// `edus` (when any), `origin`, `origin_server_ts`, `pdus`; in an EDU, `content` before
/// `edu_type`.
fn write_transaction(
    origin: &str,
    origin_server_ts: i64,
    edus: &[Edu],
    pdus: usize,
    pdu_bytes: usize,
    mut write_pdu: impl FnMut(&mut Vec<u8>, usize),
) -> Vec<u8> {
    canonical_json::check(&Value::from(origin_server_ts)).unwrap_or_else(|e| not_canonical(e));
    let mut out = Vec::with_capacity(pdu_bytes + origin.len() + 512);
    out.push(b'{');
    if !edus.is_empty() {
        out.extend_from_slice(b"\"edus\":[");
        for (index, edu) in edus.iter().enumerate() {
            canonical_json::check_object(&edu.content).unwrap_or_else(|e| not_canonical(e));
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"content\":");
            canonical_json::write_object(&mut out, &edu.content);
            out.extend_from_slice(b",\"edu_type\":");
            canonical_json::write_string(&mut out, &edu.edu_type);
            out.push(b'}');
        }
        out.extend_from_slice(b"],");
    }
    out.extend_from_slice(b"\"origin\":");
    canonical_json::write_string(&mut out, origin);
    out.extend_from_slice(b",\"origin_server_ts\":");
    out.extend_from_slice(origin_server_ts.to_string().as_bytes());
    out.extend_from_slice(b",\"pdus\":[");
    for index in 0..pdus {
        if index > 0 {
            out.push(b',');
        }
        write_pdu(&mut out, index);
    }
    out.extend_from_slice(b"]}");
    out
}

pub(super) fn transaction_from_json(
    mut body: Object,
    use_: TransactionUse,
) -> Result<Transaction, WireError> {
    // Count first, so that an oversized transaction is refused before any PDU is looked at
    // ([impl] as Synapse does).
    if use_ == TransactionUse::Send {
        if let Some(Value::Array(pdus)) = body.get("pdus") {
            if pdus.len() > TRANSACTION_PDUS_MAX {
                return Err(WireError::TooManyPdus { count: len_u64(pdus.len()) });
            }
        }
        if let Some(Value::Array(edus)) = body.get("edus") {
            if edus.len() > TRANSACTION_EDUS_MAX {
                return Err(WireError::TooManyEdus { count: len_u64(edus.len()) });
            }
        }
    }
    let origin =
        take_string(&mut body, "origin")?.ok_or_else(|| WireError::missing_param("$.origin"))?;
    let origin_server_ts = take_integer(&mut body, "origin_server_ts")?
        .ok_or_else(|| WireError::missing_param("$.origin_server_ts"))?;
    let pdus =
        take_objects(&mut body, "pdus")?.ok_or_else(|| WireError::missing_param("$.pdus"))?;
    let mut edus = Vec::new();
    for (index, mut edu) in
        take_objects(&mut body, "edus")?.unwrap_or_default().into_iter().enumerate()
    {
        let path = format!("$.edus[{index}]");
        let edu_type = match edu.remove("edu_type") {
            Some(Value::String(edu_type)) => edu_type,
            Some(_) => {
                return Err(WireError::bad_json(&format!("{path}.edu_type"), "must be a string"));
            }
            None => return Err(WireError::missing_param(&format!("{path}.edu_type"))),
        };
        let content = match edu.remove("content") {
            Some(Value::Object(content)) => content,
            Some(_) => {
                return Err(WireError::bad_json(&format!("{path}.content"), "must be an object"));
            }
            None => return Err(WireError::missing_param(&format!("{path}.content"))),
        };
        edus.push(Edu { edu_type, content });
    }
    Ok(Transaction { origin, origin_server_ts, pdus, edus })
}
