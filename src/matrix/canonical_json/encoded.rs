//! A JSON object kept with its canonical encoding, made the first time it is asked for and
//! then reused: an event that many messages carry (a transaction to each peer, a
//! `send_join` answer to each joiner) is encoded once instead of once per message.

use std::sync::OnceLock;

use super::{Object, encode_object};

/// A JSON object and, once asked for, its canonical encoding. Meant to be shared behind an
/// `Arc` by everything that sends the object.
#[derive(Clone)]
pub struct EncodedObject {
    json: Object,
    bytes: OnceLock<Box<[u8]>>,
}

impl EncodedObject {
    pub fn new(json: Object) -> EncodedObject {
        EncodedObject { json, bytes: OnceLock::new() }
    }

    pub fn json(&self) -> &Object {
        &self.json
    }

    pub fn into_json(self) -> Object {
        self.json
    }

    /// The canonical JSON of [`EncodedObject::json`]. Panics on a value canonical JSON
    /// cannot hold, as the encoders of outgoing messages do: what is sent was checked when
    /// it was made or received.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.get_or_init(|| {
            encode_object(&self.json)
                .unwrap_or_else(|e| panic!("outgoing message is not canonical JSON: {e}"))
                .into_boxed_slice()
        })
    }
}

/// Equal when the objects are: the encoding follows from the object.
impl PartialEq for EncodedObject {
    fn eq(&self, other: &EncodedObject) -> bool {
        self.json == other.json
    }
}

impl std::fmt::Debug for EncodedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EncodedObject").field(&self.json).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_encoding_is_the_objects_canonical_json_made_once() {
        let Some(object) = json!({"b": "é", "a": [1, {"d": null, "c": true}]}).as_object().cloned()
        else {
            unreachable!()
        };
        let shared = EncodedObject::new(object);
        // By hand from the spec's rules: keys sorted, no spaces, UTF-8 kept as is.
        let expected = "{\"a\":[1,{\"c\":true,\"d\":null}],\"b\":\"é\"}".as_bytes();
        assert_eq!(shared.bytes(), expected);
        assert!(std::ptr::eq(shared.bytes(), shared.bytes()), "made once, then reused");
        assert_eq!(shared.clone().bytes(), expected);
    }
}
