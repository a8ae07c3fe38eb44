//! Hashes and signatures of PDUs: the content hash (and Linearized Matrix's LPDU hash), the
//! reference hash and event id, hashing and signing an event in the spec's order, and
//! verifying a received one (digest: spec/canonical-json-and-signing.md §5,
//! spec/linearized-matrix.md §4–§6).

use serde_json::Value;

use crate::matrix::canonical_json::{self, Object};
use crate::matrix::crypto::{self, KeyRing, SigningKey};
use crate::matrix::ids::EventId;
use crate::matrix::pdu::{FormatError, Pdu, Stage, check_unsigned};
use crate::matrix::redaction;
use crate::matrix::room_version::RoomVersionRules;

/// The content hash: SHA-256 of the canonical JSON of the event without `unsigned`,
/// `signatures` and `hashes`.
///
/// Panics if the object holds a number canonical JSON cannot represent: every PDU passed
/// `check_format`, and every object mxsim builds holds only integers.
pub fn content_hash(json: &Object) -> [u8; 32] {
    let bytes = canonical_json::encode_object_without(json, &["unsigned", "signatures", "hashes"])
        .expect("PDU JSON holds only canonical numbers");
    crypto::sha256(&bytes)
}

/// The content hash of a PDU under the room version's rules: [`content_hash`], except that
/// with [`RoomVersionRules::lpdus`] an `hashes.lpdu` object is kept in the hashed object
/// (the PDU hash covers the LPDU hash).
///
/// Spec: Linearized Matrix "Content Hash Calculation" step 1.2 (digest:
/// spec/linearized-matrix.md §5). [digest] Without an LPDU hash `hashes` is removed whole, as
/// in Matrix and eigen-server, rather than left as `{}`; `unsigned` is removed, as Matrix and
/// the draft's implementation notes do (eigen-server keeps it; the draft is silent).
pub fn content_hash_in(rules: &RoomVersionRules, json: &Object) -> [u8; 32] {
    let lpdu = json.get("hashes").and_then(|hashes| hashes.get("lpdu"));
    let Some(lpdu) = lpdu.filter(|_| rules.lpdus) else { return content_hash(json) };
    let mut hashed = Object::new();
    for (key, value) in json {
        match key.as_str() {
            "unsigned" | "signatures" => {}
            "hashes" => {
                let mut hashes = Object::new();
                hashes.insert("lpdu".to_owned(), lpdu.clone());
                hashed.insert(key.clone(), Value::Object(hashes));
            }
            _ => {
                hashed.insert(key.clone(), value.clone());
            }
        }
    }
    let bytes =
        canonical_json::encode_object(&hashed).expect("PDU JSON holds only canonical numbers");
    crypto::sha256(&bytes)
}

/// The LPDU a Linearized Matrix PDU was completed from: the PDU without `auth_events` and
/// `prev_events`, with `hashes` reduced to `{"lpdu": …}` (and without `hashes` if it has no
/// LPDU hash). Everything else, `hub_server` and `signatures` included, is kept.
///
/// The draft does not spell this out; it is the inverse of the hub's completion (digest:
/// spec/linearized-matrix.md §4, "Verifying the sender's LPDU signature", which is also how
/// eigen-server rebuilds it).
pub fn rebuild_lpdu(json: &Object) -> Object {
    let mut lpdu = json.clone();
    lpdu.remove("auth_events");
    lpdu.remove("prev_events");
    let lpdu_hash = json.get("hashes").and_then(|hashes| hashes.get("lpdu")).cloned();
    match lpdu_hash {
        Some(hash) => {
            let mut hashes = Object::new();
            hashes.insert("lpdu".to_owned(), hash);
            lpdu.insert("hashes".to_owned(), Value::Object(hashes));
        }
        None => {
            lpdu.remove("hashes");
        }
    }
    lpdu
}

/// The LPDU content hash of an LPDU (or of a PDU's [`rebuild_lpdu`]): SHA-256 of its
/// canonical JSON without `signatures`, `hashes` and `unsigned` — which is exactly
/// [`content_hash`]'s preimage.
///
/// Spec: Linearized Matrix "Content Hash Calculation" step 1.1 (digest:
/// spec/linearized-matrix.md §5). Callers pass an object without `auth_events` and
/// `prev_events` (an LPDU has none).
pub fn lpdu_content_hash(lpdu: &Object) -> [u8; 32] {
    assert!(!lpdu.contains_key("auth_events"), "an LPDU has no auth_events");
    assert!(!lpdu.contains_key("prev_events"), "an LPDU has no prev_events");
    content_hash(lpdu)
}

/// The reference hash: SHA-256 of the canonical JSON of the redacted event without
/// `signatures` and `unsigned` (the same bytes the origin server signs).
pub fn reference_hash(rules: &RoomVersionRules, json: &Object) -> [u8; 32] {
    crypto::sha256(&signing_bytes(rules, json))
}

/// The bytes an event signature covers: the redacted event without `signatures` and
/// `unsigned`, as canonical JSON.
pub(crate) fn signing_bytes(rules: &RoomVersionRules, json: &Object) -> Vec<u8> {
    redaction::redacted_signing_bytes(rules.redaction, json)
        .expect("PDU JSON holds only canonical numbers")
}

/// The event id of an event: `$` + URL-safe unpadded base64 of its reference hash.
pub fn event_id(rules: &RoomVersionRules, json: &Object) -> EventId {
    EventId::from_reference_hash(&reference_hash(rules, json))
}

/// Adds `hashes` and then `signatures` to an event, in the order the spec requires:
/// content hash of the full event, then a signature over the redacted event, copied back
/// onto the full event. Existing signatures by other servers are kept.
///
/// With [`RoomVersionRules::lpdus`] an existing `hashes.lpdu` is kept and covered by the new
/// `hashes.sha256`: this is the hub's last step in completing an LPDU (digest:
/// spec/linearized-matrix.md §4).
pub fn hash_and_sign(
    rules: &RoomVersionRules,
    json: &mut Object,
    server_name: &str,
    key: &SigningKey,
) {
    add_hashes(rules, json);
    add_signature(rules, json, server_name, key);
}

/// Sets `hashes.sha256` to the event's content hash (keeping a Linearized Matrix
/// `hashes.lpdu`): the first half of [`hash_and_sign`].
fn add_hashes(rules: &RoomVersionRules, json: &mut Object) {
    let hash = crypto::base64_encode(&content_hash_in(rules, json));
    let lpdu = json.get("hashes").and_then(|hashes| hashes.get("lpdu")).cloned();
    let mut hashes = Object::new();
    if let Some(lpdu) = lpdu.filter(|_| rules.lpdus) {
        hashes.insert("lpdu".to_owned(), lpdu);
    }
    hashes.insert("sha256".to_owned(), Value::String(hash));
    json.insert("hashes".to_owned(), Value::Object(hashes));
}

/// Builds a PDU from an event without hashes or signatures as [`build_signed`] does, but
/// leaves it unsigned: for a template that another server completes and signs (a
/// `make_join` answer's event, which goes out without `hashes` or `signatures`). Its event
/// id is the one the signed event would have: the reference hash covers the content hash,
/// and neither signatures nor unsigned data.
pub fn build_unsigned(rules: &RoomVersionRules, mut json: Object) -> Result<Pdu, FormatError> {
    check_unsigned(rules, &json)?;
    add_hashes(rules, &mut json);
    Pdu::from_json_at(rules, json, Stage::Unsigned)
}

/// Adds this server's signature to an event that already has its hashes, keeping every
/// other signature: what an invited server does to an invite, or a resident to a restricted
/// join. The event id does not change (it does not cover signatures).
pub fn add_signature(
    rules: &RoomVersionRules,
    json: &mut Object,
    server_name: &str,
    key: &SigningKey,
) {
    let signature = key.sign_bytes(&signing_bytes(rules, json));
    let signatures = json.entry("signatures").or_insert_with(|| Value::Object(Object::new()));
    if !signatures.is_object() {
        *signatures = Value::Object(Object::new());
    }
    let by_server = signatures
        .as_object_mut()
        .expect("made an object above")
        .entry(server_name)
        .or_insert_with(|| Value::Object(Object::new()));
    if !by_server.is_object() {
        *by_server = Value::Object(Object::new());
    }
    by_server
        .as_object_mut()
        .expect("made an object above")
        .insert(key.key_id().to_owned(), Value::String(signature));
}

/// Builds a signed PDU from an event without hashes or signatures.
pub fn build_signed(
    rules: &RoomVersionRules,
    mut json: Object,
    server_name: &str,
    key: &SigningKey,
) -> Result<Pdu, FormatError> {
    check_unsigned(rules, &json)?;
    hash_and_sign(rules, &mut json, server_name, key);
    let pdu = Pdu::from_json(rules, json)?;
    // The signature just made must verify: a failure here is a bug in mxsim. Checked in
    // debug builds (the tests) only: a verification costs about as much as the signing,
    // once per event built. (Release builds take a signature made on this thread as
    // verified, `crypto/made.rs`; debug builds verify each of those in full as well.)
    if cfg!(debug_assertions) && pdu.origin() == server_name && pdu.hub_server().is_none() {
        let mut ring = KeyRing::new();
        ring.entry(server_name.to_owned())
            .or_default()
            .insert(key.key_id().to_owned(), key.public_key());
        assert!(matches!(verify(rules, &pdu, &ring), Ok(Verified::Intact)));
    }
    Ok(pdu)
}

/// The outcome of checking a received PDU's signatures and hashes.
#[derive(Clone, Debug, PartialEq)]
pub enum Verified {
    /// Signatures and content hash are valid: use the event as received.
    Intact,
    /// Signatures are valid but the content hash is not: the receiver must use its own
    /// redacted copy from now on (spec: "assume you were given a redacted copy").
    Redacted(Object),
}

/// Why a received PDU fails its signature check (the event is dropped).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature check failed: {0}")]
    Signature(#[from] crypto::SignatureError),
    /// Linearized Matrix: the sender's server's signature over the LPDU does not verify.
    #[error("LPDU signature check failed: {0}")]
    LpduSignature(crypto::SignatureError),
    /// Linearized Matrix: the `hub_server`'s signature over the PDU does not verify.
    #[error("hub signature check failed: {0}")]
    HubSignature(crypto::SignatureError),
}

/// The servers that must have signed a PDU: since room version 3, only the originating
/// server, the server name of `sender`. In Linearized Matrix also the `hub_server` when
/// present, first (digest: spec/linearized-matrix.md §6 step 2); the same server is listed
/// once.
pub fn required_signers(pdu: &Pdu) -> Vec<&str> {
    match pdu.hub_server() {
        Some(hub) if hub != pdu.origin() => vec![hub, pdu.origin()],
        _ => vec![pdu.origin()],
    }
}

/// Checks the signatures a PDU needs, and only those: the sender's server over the redacted
/// event, and in Linearized Matrix with a `hub_server` that is another server, the hub over
/// the redacted PDU and the sender's server over the redacted LPDU ([`rebuild_lpdu`]).
///
/// Spec: "Validating hashes and signatures on received events"; Linearized Matrix receipt
/// step 2 and auth rules 1–2 ("all other signatures MUST NOT be considered"; digest:
/// spec/linearized-matrix.md §6). When `hub_server` is the sender's own server the one
/// signature covers the PDU (rule 1: an LPDU signature only when the hub "is not the same
/// server").
pub fn verify_signatures(
    rules: &RoomVersionRules,
    pdu: &Pdu,
    keys: &KeyRing,
) -> Result<(), VerifyError> {
    // The redacted event keeps the full event's signatures, and the bytes they cover are
    // the redacted event without them: the reference-hash preimage.
    let bytes = signing_bytes(rules, pdu.json());
    let signatures = pdu.json().get("signatures");
    match pdu.hub_server() {
        Some(hub) if hub != pdu.origin() => {
            crypto::verify_signatures(signatures, hub, keys, &bytes)
                .map_err(VerifyError::HubSignature)?;
            let lpdu_bytes = signing_bytes(rules, &rebuild_lpdu(pdu.json()));
            crypto::verify_signatures(signatures, pdu.origin(), keys, &lpdu_bytes)
                .map_err(VerifyError::LpduSignature)
        }
        _ => Ok(crypto::verify_signatures(signatures, pdu.origin(), keys, &bytes)?),
    }
}

/// Whether a PDU's content hashes match: `hashes.sha256` (compared as decoded bytes, so an
/// equivalent encoding still matches) and, for an event with `hub_server`, the LPDU hash
/// `hashes.lpdu.sha256` of its [`rebuild_lpdu`].
pub fn content_hashes_match(rules: &RoomVersionRules, pdu: &Pdu) -> bool {
    let hashes = pdu.json().get("hashes");
    let matches = |given: Option<&Value>, computed: [u8; 32]| {
        given
            .and_then(Value::as_str)
            .and_then(crypto::base64_decode)
            .is_some_and(|given| given.as_slice() == computed.as_slice())
    };
    let pdu_hash = hashes.and_then(|h| h.get("sha256"));
    if !matches(pdu_hash, content_hash_in(rules, pdu.json())) {
        return false;
    }
    if pdu.hub_server().is_none() {
        return true;
    }
    let lpdu_hash = hashes.and_then(|h| h.get("lpdu")).and_then(|l| l.get("sha256"));
    matches(lpdu_hash, lpdu_content_hash(&rebuild_lpdu(pdu.json())))
}

/// Checks a received PDU: signatures of the required servers over the redacted event, then
/// the content hash (spec: "Validating hashes and signatures on received events").
///
/// Keys missing from `keys` make the check fail (the caller fetches keys first). Key
/// validity periods are the caller's concern: `keys` holds the keys valid for this event.
/// The `join_authorised_via_users_server` signature is an auth rule (v10/v11 4.2.1, v12
/// 5.2.1) and is checked there, not here.
pub fn verify(
    rules: &RoomVersionRules,
    pdu: &Pdu,
    keys: &KeyRing,
) -> Result<Verified, VerifyError> {
    verify_signatures(rules, pdu, keys)?;
    // Linearized Matrix receipt step 3: either hash failing means the redacted copy.
    if content_hashes_match(rules, pdu) {
        Ok(Verified::Intact)
    } else {
        Ok(Verified::Redacted(redaction::redact(rules.redaction, pdu.json())))
    }
}
