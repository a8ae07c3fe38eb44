//! `mxsim event id|hash|sign|verify|redact`: one PDU on stdin, JSON on stdout.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::cli::{CliError, Outcome, read_file};
use crate::matrix::canonical_json::{self, Numbers, Object};
use crate::matrix::crypto::{self, KeyRing, SigningKey, VerifyKey};
use crate::matrix::pdu::{self, Pdu, Verified};
use crate::matrix::redaction;
use crate::matrix::room_version::{RoomVersion, RoomVersionRules};

#[derive(Args, Debug)]
pub struct EventArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Args, Debug)]
struct VersionArg {
    /// Room version of the event: 10, 11, 12 or
    /// org.matrix.i-d.ralston-mimi-linearized-matrix.02 (Linearized Matrix).
    #[arg(long = "room-version", value_name = "V", value_parser = parse_room_version)]
    room_version: RoomVersion,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Print the event id (`$` + reference hash) of a signed PDU: {"event_id": …}; for a
    /// room version 12 create event also its room id.
    Id(VersionArg),
    /// Print the content hash of a PDU (hashes and signatures optional): {"sha256": …}.
    Hash(VersionArg),
    /// Add the content hash and this server's signature; print the signed PDU.
    Sign {
        #[command(flatten)]
        version: VersionArg,
        /// Server name to sign as (normally the server of `sender`).
        #[arg(long, value_name = "NAME")]
        server: String,
        /// Unpadded base64 of the 32-byte ed25519 seed.
        #[arg(long = "key-seed", value_name = "B64")]
        key_seed: String,
        /// Signing key id.
        #[arg(long = "key-id", value_name = "ID", default_value = "ed25519:1")]
        key_id: String,
    },
    /// Check signatures and content hash. Prints {"verdict": "valid"|"redacted"|"invalid",
    /// …}; exits 1 unless valid.
    Verify {
        #[command(flatten)]
        version: VersionArg,
        /// JSON file {"server": {"ed25519:key": "public key, unpadded base64"}}.
        #[arg(long, value_name = "FILE")]
        keys: PathBuf,
    },
    /// Print the redacted form of a PDU under the room version's redaction algorithm.
    Redact(VersionArg),
}

fn parse_room_version(text: &str) -> Result<RoomVersion, String> {
    RoomVersion::parse_any(text).map_err(|e| e.to_string())
}

/// Canonical JSON of a value, one line.
fn json_line(value: &Value) -> Vec<u8> {
    let mut out = canonical_json::encode(value).expect("output holds only integers");
    out.push(b'\n');
    out
}

fn ok(value: Value) -> Outcome {
    Outcome { stdout: json_line(&value), code: 0 }
}

/// Parses stdin as one JSON object.
fn read_object(input: &[u8]) -> Result<Object, CliError> {
    match canonical_json::parse(input, Numbers::IntegerLiterals) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(CliError::input("stdin: $: a PDU must be a JSON object")),
        Err(e) => Err(CliError::input(format!("stdin: {e}"))),
    }
}

fn format_failure(e: pdu::FormatError) -> CliError {
    CliError::input(format!("stdin: {e}"))
}

pub fn run(args: &EventArgs, input: &[u8]) -> Result<Outcome, CliError> {
    let object = read_object(input)?;
    match &args.action {
        Action::Id(v) => {
            let rules = v.room_version.rules();
            let pdu = Pdu::from_json(rules, object).map_err(format_failure)?;
            let mut out = json!({ "event_id": pdu.event_id().as_str() });
            if pdu.room_id().is_none() {
                out["room_id"] = Value::String(pdu.room_id_or_derived());
            }
            Ok(ok(out))
        }
        Action::Hash(v) => {
            pdu::check_unsigned(v.room_version.rules(), &object).map_err(format_failure)?;
            let hash =
                crypto::base64_encode(&pdu::content_hash_in(v.room_version.rules(), &object));
            Ok(ok(json!({ "sha256": hash })))
        }
        Action::Sign { version, server, key_seed, key_id } => {
            let rules = version.room_version.rules();
            crate::matrix::ids::check_server_name(server)
                .map_err(|e| CliError::input(format!("--server: {e}")))?;
            let key = SigningKey::from_seed_base64(key_seed, key_id)
                .map_err(|e| CliError::input(format!("--key-seed/--key-id: {e}")))?;
            let pdu = sign(rules, object, server, &key)?;
            Ok(ok(Value::Object(pdu.into_json())))
        }
        Action::Verify { version, keys } => {
            let rules = version.room_version.rules();
            let ring = read_keys(keys)?;
            let pdu = Pdu::from_json(rules, object).map_err(format_failure)?;
            let event_id = pdu.event_id().as_str().to_owned();
            let outcome = match pdu::verify(rules, &pdu, &ring) {
                Ok(Verified::Intact) => ok(json!({ "verdict": "valid", "event_id": event_id })),
                Ok(Verified::Redacted(redacted)) => Outcome {
                    stdout: json_line(&json!({
                        "verdict": "redacted",
                        "event_id": event_id,
                        "reason": "signatures are valid but the content hash does not match: \
                                   the event must be replaced by its redacted form",
                        "redacted": Value::Object(redacted),
                    })),
                    code: 1,
                },
                Err(e) => Outcome {
                    stdout: json_line(&json!({
                        "verdict": "invalid",
                        "event_id": event_id,
                        "reason": e.to_string(),
                    })),
                    code: 1,
                },
            };
            Ok(outcome)
        }
        Action::Redact(v) => {
            let rules = v.room_version.rules();
            pdu::check_unsigned(rules, &object).map_err(format_failure)?;
            Ok(ok(Value::Object(redaction::redact(rules.redaction, &object))))
        }
    }
}

fn sign(
    rules: &RoomVersionRules,
    mut object: Object,
    server: &str,
    key: &SigningKey,
) -> Result<Pdu, CliError> {
    // Signing replaces the content hash, so a stale `hashes` from the input is dropped
    // first (in Linearized Matrix all but `hashes.lpdu`, which only the sender can make and
    // the new hash covers); existing signatures (by other servers) are kept and merged.
    let lpdu_hash = object.remove("hashes").and_then(|hashes| hashes.get("lpdu").cloned());
    if let Some(lpdu_hash) = lpdu_hash.filter(|_| rules.lpdus) {
        object.insert("hashes".to_owned(), json!({ "lpdu": lpdu_hash }));
    }
    let signatures = object.remove("signatures");
    pdu::check_unsigned(rules, &object).map_err(format_failure)?;
    if let Some(signatures) = signatures {
        if !signatures.is_object() {
            return Err(CliError::input("stdin: $.signatures: must be an object"));
        }
        object.insert("signatures".to_owned(), signatures);
    }
    pdu::hash_and_sign(rules, &mut object, server, key);
    Pdu::from_json(rules, object).map_err(format_failure)
}

/// Reads `{ server: { key_id: public_key_b64 } }`.
fn read_keys(path: &std::path::Path) -> Result<KeyRing, CliError> {
    let name = path.display();
    let bytes = read_file(path, super::KEYS_BYTES_MAX, "a keys file")?;
    let value = canonical_json::parse(&bytes, Numbers::IntegerLiterals)
        .map_err(|e| CliError::input(format!("{name}: {e}")))?;
    let Value::Object(servers) = value else {
        return Err(CliError::input(format!("{name}: $: must be an object of server names")));
    };
    let mut ring = KeyRing::new();
    for (server, keys) in servers {
        let mut path = String::from("$");
        canonical_json::push_key(&mut path, &server);
        let Value::Object(keys) = keys else {
            return Err(CliError::input(format!("{name}: {path}: must be an object of key ids")));
        };
        let entry = ring.entry(server).or_default();
        for (key_id, key) in keys {
            let mut key_path = path.clone();
            canonical_json::push_key(&mut key_path, &key_id);
            crypto::check_key_id(&key_id)
                .map_err(|e| CliError::input(format!("{name}: {key_path}: {e}")))?;
            let key = key.as_str().and_then(VerifyKey::from_base64).ok_or_else(|| {
                CliError::input(format!(
                    "{name}: {key_path}: must be a 32-byte ed25519 public key in unpadded base64"
                ))
            })?;
            entry.insert(key_id, key);
        }
    }
    Ok(ring)
}
