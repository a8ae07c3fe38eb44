//! The canonical encoder: values written with sorted keys, no whitespace, and strings
//! escaped as the spec asks (appendices, "Canonical JSON"; digest:
//! spec/canonical-json-and-signing.md §1), and the scan for a string's plain run that the
//! encoder and the parser share.

use serde_json::Value;

use super::{Object, ValueError, check, check_object};
use crate::matrix::words;

/// Encodes a value as canonical JSON. Fails only if the value holds a number that
/// canonical JSON cannot represent (see [`check`]).
pub fn encode(value: &Value) -> Result<Vec<u8>, ValueError> {
    check(value)?;
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value);
    Ok(out)
}

/// Encodes an object as canonical JSON (see [`encode`]).
pub fn encode_object(object: &Object) -> Result<Vec<u8>, ValueError> {
    encode_object_without(object, &[])
}

/// Encodes an object as canonical JSON, leaving out the top-level keys in `skip`, without
/// copying the object (hashing and signing skip `signatures`, `unsigned`, `hashes`).
pub fn encode_object_without(object: &Object, skip: &[&str]) -> Result<Vec<u8>, ValueError> {
    check_object(object)?;
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    let mut first = true;
    for (key, item) in object {
        if skip.contains(&key.as_str()) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_string(&mut out, key);
        out.push(b':');
        write_value(&mut out, item);
    }
    out.push(b'}');
    Ok(out)
}

/// Encodes a value already known to be valid (it came from [`parse`] or passed [`check`]).
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let i = n.as_i64().expect("checked: canonical numbers are i64");
            out.extend_from_slice(i.to_string().as_bytes());
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

pub(crate) fn write_object(out: &mut Vec<u8>, map: &Object) {
    out.push(b'{');
    // `Map` is a BTreeMap here: iteration is in byte order of the keys, which for UTF-8 is
    // code-point order, exactly what canonical JSON requires.
    for (index, (key, item)) in map.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_string(out, key);
        out.push(b':');
        write_value(out, item);
    }
    out.push(b'}');
}

pub(crate) fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // The plain runs are found eight bytes at a time (a byte at a time, this loop was 1%
    // of a 100-server run's instructions) and copied whole.
    let mut at = 0;
    loop {
        let run = plain_run(&bytes[at..]);
        out.extend_from_slice(&bytes[at..at + run]);
        at += run;
        let Some(&b) = bytes.get(at) else { break };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0a => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0d => out.extend_from_slice(b"\\r"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        at += 1;
    }
    out.push(b'"');
}

/// Length of the run of bytes at the start of `bytes` that a JSON string copies as they
/// are: up to the first quote, backslash or control character.
pub(crate) fn plain_run(bytes: &[u8]) -> usize {
    // Eight bytes at a time (`words`; a third of reading a large input was this scan, one
    // byte per step). The lowest flag of a word is its first stop (a wrong flag only ever
    // follows a right one), read little-endian.
    let stops = |w: u64| {
        words::bytes_equal(w, b'"') | words::bytes_equal(w, b'\\') | words::bytes_below(w, 0x20)
    };
    let mut at = 0;
    for chunk in bytes.chunks_exact(8) {
        let found = stops(words::le_word(chunk));
        if found != 0 {
            return at + found.trailing_zeros() as usize / 8;
        }
        at += 8;
    }
    let rest = bytes.len() - at;
    if rest == 0 {
        return at;
    }
    if bytes.len() < 8 {
        return bytes.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).unwrap_or(rest);
    }
    // The last eight bytes, the first `8 - rest` of them found plain above: no flag falls
    // among those, so past them the lowest flag is the first stop of the rest (ids and
    // hashes are 43 or 44 bytes long, and this spares a byte-by-byte tail).
    let last = words::le_word(&bytes[bytes.len() - 8..]);
    let found = stops(last) >> ((8 - rest) * 8);
    if found == 0 { bytes.len() } else { at + found.trailing_zeros() as usize / 8 }
}
