//! Verified events shared by the homeservers of one process: each unique event is parsed,
//! hashed and checked against its signatures once, and every server that receives it
//! keeps a reference to the one verified body.
//!
//! A server is handed the cache as a capability ([`Homeserver::share_verified`]): it stays
//! sans-IO, and a real deployment of several servers in one process could hand them one
//! cache too. What is shared is only what does not depend on the server: the result of
//! the format, hash and signature checks of an exact copy of an event, against one key
//! ring. Every decision that depends on a server's own view (auth against its state,
//! soft-fail) is still made by that server.
//!
//! [`Homeserver::share_verified`]: crate::homeserver::Homeserver::share_verified

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::matrix::crypto::KeyRing;
use crate::matrix::{EventId, Pdu, RoomVersion};

/// One cached result: the copy as received, and what the checks made of it (the same
/// event, or its redacted form when its content hash did not match).
#[derive(Debug)]
struct Entry {
    version: RoomVersion,
    received: Arc<Pdu>,
    result: Arc<Pdu>,
}

/// The results of the receipt checks of format, hash and signatures, by event id, for
/// servers that all verify against the same key ring.
#[derive(Debug)]
pub struct VerifiedEvents {
    keys: Arc<KeyRing>,
    /// The first copy of each event id checked; later copies that differ from it (another
    /// `unsigned`, a redacted copy) are checked by the server itself every time.
    entries: Mutex<BTreeMap<EventId, Entry>>,
}

impl VerifiedEvents {
    /// A cache for servers verifying against `keys`.
    pub fn new(keys: Arc<KeyRing>) -> VerifiedEvents {
        VerifiedEvents { keys, entries: Mutex::new(BTreeMap::new()) }
    }

    /// Whether a server with ring `keys` may use this cache: only the very ring it was
    /// made for, since a verification holds only against the keys it used.
    pub fn serves(&self, keys: &Arc<KeyRing>) -> bool {
        Arc::ptr_eq(&self.keys, keys)
    }

    /// The checked form of `pdu` if this exact copy (same room version, same JSON) was
    /// checked before.
    pub fn get(&self, version: RoomVersion, pdu: &Pdu) -> Option<Arc<Pdu>> {
        let entries = self.entries.lock().expect("no holder of the cache lock panics");
        let entry = entries.get(pdu.event_id())?;
        let same = entry.version == version && entry.received.json() == pdu.json();
        same.then(|| Arc::clone(&entry.result))
    }

    /// Records the checked form of a received copy, unless a copy of the id is there.
    pub fn insert(&self, version: RoomVersion, received: Arc<Pdu>, result: Arc<Pdu>) {
        let mut entries = self.entries.lock().expect("no holder of the cache lock panics");
        entries.entry(received.event_id().clone()).or_insert(Entry { version, received, result });
    }
}
