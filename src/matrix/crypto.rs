//! Cryptography: unpadded base64, SHA-256, ed25519 keys, and signing and verifying JSON.
//!
//! Spec: appendices "Unpadded Base64", "Signing JSON", "Checking for a signature"
//! (digest: spec/canonical-json-and-signing.md §2–§4). The crates `base64`, `sha2` and
//! `ed25519-dalek` are used here and nowhere else in mxsim.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::Signer as _;
use serde_json::Value;
use sha2::Digest as _;

use crate::matrix::canonical_json::{self, Object};

mod made;

/// Forgets the signatures this thread has made, which [`VerifyKey::verify_bytes`] knows to
/// verify without computing (`crypto/made.rs`): a caller that signs and verifies in rounds
/// calls it between them, so that a thread keeps one round's (the simulator, one run's).
pub fn forget_signatures_made() {
    made::forget();
}

/// The bytes this thread keeps of the signatures it made (at most two megabytes).
pub fn signatures_made_bytes() -> usize {
    made::held_bytes()
}

const ENCODE: GeneralPurposeConfig = GeneralPurposeConfig::new().with_encode_padding(false);
// Decoders SHOULD accept input with or without padding (spec appendix "Unpadded Base64").
// Non-zero trailing bits in the last character are accepted too: the spec's own test seed
// (`…XA1`) has them, and the spec gives no rule against them.
const DECODE: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(false)
    .with_decode_allow_trailing_bits(true)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent);

const STANDARD_ENCODE: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, ENCODE);
const STANDARD_DECODE: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, DECODE);
const URL_SAFE_ENCODE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, ENCODE);
const URL_SAFE_DECODE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, DECODE);

/// Unpadded base64 with the standard alphabet (signatures, hashes, public keys).
pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD_ENCODE.encode(bytes)
}

/// Decodes standard-alphabet base64, with or without padding.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD_DECODE.decode(text).ok()
}

/// Unpadded base64 with the URL-safe alphabet (event ids, v12 room ids).
pub fn base64_url_encode(bytes: &[u8]) -> String {
    URL_SAFE_ENCODE.encode(bytes)
}

/// Decodes URL-safe base64, with or without padding.
pub fn base64_url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_DECODE.decode(text).ok()
}

/// Decodes base64 in either alphabet (third-party-invite public keys may use either).
pub fn base64_decode_any(text: &str) -> Option<Vec<u8>> {
    base64_decode(text).or_else(|| base64_url_decode(text))
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

/// SHA-256 of bytes given in parts, for inputs too large to hold at once (a trace as it
/// is written).
#[derive(Clone, Default)]
pub struct Sha256Stream(sha2::Sha256);

impl Sha256Stream {
    pub fn new() -> Sha256Stream {
        Sha256Stream::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything given.
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }

    /// The digest of everything given, in lowercase hex, as [`sha256_hex`] writes it.
    pub fn finish_hex(self) -> String {
        hex(self.0.finalize().into())
    }
}

/// SHA-256 of `bytes` in lowercase hex (64 characters): the form of trace hashes and
/// scenario digests.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(sha256(bytes))
}

fn hex(digest: [u8; 32]) -> String {
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    assert_eq!(out.len(), 64);
    out
}

/// An ed25519 signing key with its key id (`ed25519:<version>`).
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the seed.
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key_base64())
            .finish()
    }
}

/// Why a key id or a seed is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key id {0:?} is not of the form ed25519:<version> with version in [a-zA-Z0-9_]")]
    KeyId(String),
    #[error("the seed is not unpadded base64 of exactly 32 bytes")]
    Seed,
}

/// Checks a signing key id: `ed25519:` then a non-empty version of `[a-zA-Z0-9_]`.
pub fn check_key_id(key_id: &str) -> Result<(), KeyError> {
    match key_id.strip_prefix("ed25519:") {
        Some(version)
            if !version.is_empty()
                && version.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Ok(())
        }
        _ => Err(KeyError::KeyId(key_id.to_owned())),
    }
}

impl SigningKey {
    /// A key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32], key_id: &str) -> Result<SigningKey, KeyError> {
        check_key_id(key_id)?;
        Ok(SigningKey {
            key: ed25519_dalek::SigningKey::from_bytes(seed),
            key_id: key_id.to_owned(),
        })
    }

    /// A key from the base64 (standard alphabet, padding optional) of its 32-byte seed.
    pub fn from_seed_base64(seed: &str, key_id: &str) -> Result<SigningKey, KeyError> {
        let bytes = base64_decode(seed).ok_or(KeyError::Seed)?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Seed)?;
        SigningKey::from_seed(&seed, key_id)
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key(&self) -> VerifyKey {
        VerifyKey(self.key.verifying_key())
    }

    /// Unpadded standard base64 of the 32-byte public key.
    pub fn public_key_base64(&self) -> String {
        base64_encode(self.key.verifying_key().as_bytes())
    }

    /// Signs raw bytes; returns unpadded standard base64 of the 64-byte signature. The
    /// signature is noted for [`VerifyKey::verify_bytes`] on this thread (`made.rs`).
    pub fn sign_bytes(&self, bytes: &[u8]) -> String {
        let signature = self.key.sign(bytes).to_bytes();
        made::note(self.key.verifying_key().as_bytes(), bytes, &signature);
        base64_encode(&signature)
    }
}

/// An ed25519 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyKey(ed25519_dalek::VerifyingKey);

impl VerifyKey {
    /// A key from base64 (either alphabet, padding optional) of its 32 bytes.
    pub fn from_base64(text: &str) -> Option<VerifyKey> {
        let bytes: [u8; 32] = base64_decode_any(text)?.try_into().ok()?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok().map(VerifyKey)
    }

    pub fn to_base64(&self) -> String {
        base64_encode(self.0.as_bytes())
    }

    /// Verifies a base64 signature over `bytes`. Uses strict verification (rejects
    /// small-order keys and non-canonical signatures), which accepts every signature an
    /// honest ed25519 signer produces.
    ///
    /// A signature this thread made of these bytes with this key since its run began is
    /// known to verify, and is not verified again (`crypto/made.rs`).
    pub fn verify_bytes(&self, bytes: &[u8], signature_base64: &str) -> bool {
        let Some(sig) = base64_decode(signature_base64) else { return false };
        let Ok(sig) = <[u8; 64]>::try_from(sig.as_slice()) else { return false };
        if made::was_made(self.0.as_bytes(), bytes, &sig) {
            debug_assert!(self.verify_strict(bytes, &sig), "an honest signature verifies");
            return true;
        }
        self.verify_strict(bytes, &sig)
    }

    fn verify_strict(&self, bytes: &[u8], sig: &[u8; 64]) -> bool {
        self.0.verify_strict(bytes, &ed25519_dalek::Signature::from_bytes(sig)).is_ok()
    }
}

/// Public keys known to a verifier: server name → key id → key.
pub type KeyRing = BTreeMap<String, BTreeMap<String, VerifyKey>>;

/// The bytes a JSON signature covers: the object without `signatures` and `unsigned`,
/// as canonical JSON.
pub fn signed_bytes(object: &Object) -> Result<Vec<u8>, canonical_json::ValueError> {
    canonical_json::encode_object_without(object, &["signatures", "unsigned"])
}

/// Why a JSON object could not be signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Value(#[from] canonical_json::ValueError),
    #[error("$.signatures is not an object of objects")]
    Signatures,
}

/// Signs a JSON object as `entity` ("Signing JSON"), merging with existing signatures.
pub fn sign_json(object: &mut Object, entity: &str, key: &SigningKey) -> Result<(), SignError> {
    let bytes = signed_bytes(object)?;
    let signature = key.sign_bytes(&bytes);
    let signatures = object.entry("signatures").or_insert_with(|| Value::Object(Object::new()));
    let Value::Object(signatures) = signatures else { return Err(SignError::Signatures) };
    let by_entity = signatures.entry(entity).or_insert_with(|| Value::Object(Object::new()));
    let Value::Object(by_entity) = by_entity else { return Err(SignError::Signatures) };
    by_entity.insert(key.key_id().to_owned(), Value::String(signature));
    Ok(())
}

/// Why a signature check failed (the seven steps of "Checking for a signature").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signatures from {0}")]
    NoSignature(String),
    #[error("no ed25519 signatures from {0}")]
    NoKnownAlgorithm(String),
    #[error("no known key for any signature of {0}")]
    NoKnownKey(String),
    #[error("signature by {entity} with {key_id} is not valid")]
    Invalid { entity: String, key_id: String },
    #[error("the object cannot be encoded as canonical JSON: {0}")]
    Value(#[from] canonical_json::ValueError),
}

/// Checks that `object` carries a valid signature by `entity` under one of `keys`.
///
/// Spec steps: signatures for the entity must exist (1); signatures of unknown algorithms are
/// dropped (2); signatures whose key is not known are ignored (3, and the federation rule
/// that "only signatures by known keys are checked"); every remaining signature must decode
/// (4) and verify over the canonical JSON without `signatures`/`unsigned` (5–7). At least one
/// must remain.
pub fn verify_json(object: &Object, entity: &str, keys: &KeyRing) -> Result<(), SignatureError> {
    let bytes = signed_bytes(object)?;
    verify_signatures(object.get("signatures"), entity, keys, &bytes)
}

/// [`verify_json`] for callers that already have the signed bytes (the canonical JSON
/// without `signatures` and `unsigned`) and the object's `signatures` value.
pub fn verify_signatures(
    signatures: Option<&Value>,
    entity: &str,
    keys: &KeyRing,
    signed_bytes: &[u8],
) -> Result<(), SignatureError> {
    let by_entity = signatures
        .and_then(Value::as_object)
        .and_then(|s| s.get(entity))
        .and_then(Value::as_object)
        .ok_or_else(|| SignatureError::NoSignature(entity.to_owned()))?;
    let ed25519: Vec<(&String, &Value)> =
        by_entity.iter().filter(|(key_id, _)| key_id.starts_with("ed25519:")).collect();
    if ed25519.is_empty() {
        return Err(SignatureError::NoKnownAlgorithm(entity.to_owned()));
    }
    let known = keys.get(entity);
    let mut checked = 0u32;
    for (key_id, signature) in ed25519 {
        let Some(key) = known.and_then(|k| k.get(key_id.as_str())) else { continue };
        let invalid =
            || SignatureError::Invalid { entity: entity.to_owned(), key_id: key_id.clone() };
        let signature = signature.as_str().ok_or_else(invalid)?;
        if !key.verify_bytes(signed_bytes, signature) {
            return Err(invalid());
        }
        checked += 1;
    }
    if checked == 0 {
        return Err(SignatureError::NoKnownKey(entity.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_fips_vectors() {
        // FIPS 180-2, appendix B.1 ("abc") and the empty message.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(sha256(b"abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn base64_spec_examples() {
        // Spec appendix "Unpadded Base64" examples.
        let cases = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        // Padding is accepted on input.
        assert_eq!(base64_decode("Zg==").unwrap(), b"f");
        assert_eq!(base64_url_encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64_encode(&[0xfb, 0xff]), "+/8");
        assert!(base64_decode("-_8").is_none());
        assert_eq!(base64_decode_any("-_8").unwrap(), vec![0xfb, 0xff]);
    }

    #[test]
    fn key_ids() {
        assert!(check_key_id("ed25519:1").is_ok());
        assert!(check_key_id("ed25519:abc_123").is_ok());
        assert!(check_key_id("ed25519:").is_err());
        assert!(check_key_id("curve25519:1").is_err());
        assert!(check_key_id("ed25519:a-b").is_err());
    }
}
