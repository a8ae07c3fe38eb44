//! Verified events shared by the homeservers of one process: each unique event is parsed,
//! hashed and checked against its signatures once, and every server that receives it
//! keeps a reference to the one verified body. The server that built an event checks and
//! records its own copy (`Homeserver::own_copy`), so that body is the builder's too.
//!
//! A server is handed the cache as a capability ([`Homeserver::share_verified`]): it stays
//! sans-IO, and a real deployment of several servers in one process could hand them one
//! cache too. What is shared is only what does not depend on the server: the result of
//! the format, hash and signature checks of an exact copy of an event, against one key
//! ring; and the auth check of an outlier against its own auth events, which a server
//! takes only if it reads the very same bodies with the same rejections
//! ([`VerifiedEvents::outlier_check`]). Every decision that depends on a server's own view
//! (auth against its state, soft-fail) is still made by that server.
//!
//! [`Homeserver::share_verified`]: crate::homeserver::Homeserver::share_verified

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::matrix::canonical_json::{self, Object};
use crate::matrix::crypto::KeyRing;
use crate::matrix::ids::EventIdMap;
use crate::matrix::ids::WordHash;
use crate::matrix::{EventId, Pdu, RoomVersion};

/// One cached result: the copy as received, and what the checks made of it (the same
/// event, or its redacted form when its content hash did not match).
#[derive(Debug)]
struct Entry {
    version: RoomVersion,
    received: Arc<Pdu>,
    result: Arc<Pdu>,
    /// The canonical JSON of `received`: the bytes a server that sends this copy puts on
    /// the wire, by which [`VerifiedEvents::get_bytes`] recognises it.
    bytes: Box<[u8]>,
}

/// The key of [`VerifiedEvents`]' index by bytes: a hash of the length and the last
/// [`TAIL_BYTES`] bytes, which in a PDU's canonical JSON hold its signatures (`signatures`
/// sorts after every other top-level key but `type`, `state_key` and `unsigned`). Every hit
/// is confirmed by comparing all the bytes.
fn bytes_key(bytes: &[u8]) -> u64 {
    let tail = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
    WordHash::new().write(&(bytes.len() as u64).to_le_bytes()).write(tail).finish()
}

const TAIL_BYTES: usize = 192;

/// A copy of an event checked before ([`VerifiedEvents::get_bytes`]): the room version it
/// was checked under, the copy as received and what the checks made of it.
#[derive(Clone, Debug)]
pub struct CheckedCopy {
    pub version: RoomVersion,
    pub received: Arc<Pdu>,
    pub result: Arc<Pdu>,
}

/// What the auth check of an event against its own auth events reads of a server's store
/// (receipt check 4): each auth event's body and whether the server rejected it, and in
/// room version 12 the create event its room id names.
#[derive(Debug)]
pub struct AuthReads<'s> {
    pub auth: Vec<(&'s Arc<Pdu>, bool)>,
    pub create: Option<&'s Arc<Pdu>>,
}

/// One recorded auth check of an outlier: what it read, and its result (`Err`: the
/// rejection's reason).
#[derive(Debug)]
struct OutlierCheck {
    version: RoomVersion,
    pdu: Arc<Pdu>,
    auth: Vec<(Arc<Pdu>, bool)>,
    create: Option<Arc<Pdu>>,
    result: Result<(), String>,
}

impl OutlierCheck {
    /// Whether a check of `pdu` reading `reads` reads the very bodies this one read, with
    /// the same rejections.
    fn read_alike(&self, version: RoomVersion, pdu: &Arc<Pdu>, reads: &AuthReads<'_>) -> bool {
        let same_auth =
            self.auth.len() == reads.auth.len()
                && self.auth.iter().zip(&reads.auth).all(|((held, rejected), (read, now))| {
                    Arc::ptr_eq(held, read) && rejected == now
                });
        let same_create = match (&self.create, reads.create) {
            (None, None) => true,
            (Some(held), Some(read)) => Arc::ptr_eq(held, read),
            _ => false,
        };
        self.version == version && Arc::ptr_eq(&self.pdu, pdu) && same_auth && same_create
    }
}

/// The results of the receipt checks of format, hash and signatures, by event id, for
/// servers that all verify against the same key ring; and the auth checks of outliers
/// against their own auth events ([`VerifiedEvents::outlier_check`]).
#[derive(Debug)]
pub struct VerifiedEvents {
    keys: Arc<KeyRing>,
    /// The first copy of each event id checked; later copies that differ from it (another
    /// `unsigned`, a redacted copy) are checked by the server itself every time.
    entries: Mutex<EventIdMap<Entry>>,
    /// The content hash each cached copy claims (`hashes.sha256`) → its event id: finds
    /// the entry for a copy as received, before its reference hash is computed.
    by_claimed_hash: Mutex<BTreeMap<String, EventId>>,
    /// [`bytes_key`] of each cached copy's canonical JSON → its event id: finds the entry
    /// for a copy still in the bytes of a transaction, before it is parsed.
    by_bytes: Mutex<BTreeMap<u64, EventId>>,
    /// The first auth check of each outlier recorded, by event id.
    outlier_checks: Mutex<EventIdMap<OutlierCheck>>,
    /// How many recorded outlier checks were taken.
    outlier_checks_taken: AtomicU64,
}

impl VerifiedEvents {
    /// A cache for servers verifying against `keys`.
    pub fn new(keys: Arc<KeyRing>) -> VerifiedEvents {
        VerifiedEvents {
            keys,
            entries: Mutex::new(EventIdMap::default()),
            by_claimed_hash: Mutex::new(BTreeMap::new()),
            by_bytes: Mutex::new(BTreeMap::new()),
            outlier_checks: Mutex::new(EventIdMap::default()),
            outlier_checks_taken: AtomicU64::new(0),
        }
    }

    /// The result of the auth check of the outlier `pdu` against its own auth events, if
    /// a server recorded one that read the very bodies in `reads` (by pointer: the bodies
    /// this cache shares) with the same rejections, under the same room version. That
    /// check depends on nothing else: the auth rules read only the event and the state
    /// those events form, and signatures against this cache's one key ring.
    pub fn outlier_check(
        &self,
        version: RoomVersion,
        pdu: &Arc<Pdu>,
        reads: &AuthReads<'_>,
    ) -> Option<Result<(), String>> {
        let checks = self.outlier_checks.lock().expect("no holder of the cache lock panics");
        let check = checks.get(pdu.event_id())?;
        let result = check.read_alike(version, pdu, reads).then(|| check.result.clone())?;
        self.outlier_checks_taken.fetch_add(1, Ordering::Relaxed);
        Some(result)
    }

    /// Records the auth check of the outlier `pdu`, which read `reads`, unless one of the
    /// same event is recorded.
    pub fn record_outlier_check(
        &self,
        version: RoomVersion,
        pdu: &Arc<Pdu>,
        reads: &AuthReads<'_>,
        result: Result<(), String>,
    ) {
        let mut checks = self.outlier_checks.lock().expect("no holder of the cache lock panics");
        if checks.contains_key(pdu.event_id()) {
            return;
        }
        let check = OutlierCheck {
            version,
            pdu: Arc::clone(pdu),
            auth: reads.auth.iter().map(|&(pdu, rejected)| (Arc::clone(pdu), rejected)).collect(),
            create: reads.create.cloned(),
            result,
        };
        checks.insert(pdu.event_id().clone(), check);
    }

    /// How many outlier checks were taken from the record rather than made.
    pub fn outlier_checks_taken(&self) -> u64 {
        self.outlier_checks_taken.load(Ordering::Relaxed)
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

    /// For a copy as it arrived (raw JSON, not parsed yet): the parsed copy and its checked
    /// form, if this exact copy (same room version, same JSON) was checked before. Parsing
    /// identical JSON gives the identical copy, so the caller skips parsing and the
    /// reference hash as well as the checks. The claimed content hash only finds the
    /// candidate; the whole JSON is compared.
    pub fn get_raw(&self, version: RoomVersion, raw: &Object) -> Option<(Arc<Pdu>, Arc<Pdu>)> {
        let claimed = raw.get("hashes")?.get("sha256")?.as_str()?;
        let id = {
            let index = self.by_claimed_hash.lock().expect("no holder of the cache lock panics");
            index.get(claimed)?.clone()
        };
        let entries = self.entries.lock().expect("no holder of the cache lock panics");
        let entry = entries.get(&id)?;
        let same = entry.version == version && entry.received.json() == raw;
        same.then(|| (Arc::clone(&entry.received), Arc::clone(&entry.result)))
    }

    /// For a copy still in the bytes it arrived as (one PDU of a transaction body): the room
    /// version it was checked under, the parsed copy and its checked form, if those bytes
    /// are exactly the canonical JSON of a copy checked before. Equal canonical JSON is
    /// equal JSON, so the caller may take the copy for those bytes without parsing them,
    /// once it has seen that the room's version is the one returned.
    pub fn get_bytes(&self, bytes: &[u8]) -> Option<CheckedCopy> {
        let id = {
            let index = self.by_bytes.lock().expect("no holder of the cache lock panics");
            index.get(&bytes_key(bytes))?.clone()
        };
        let entries = self.entries.lock().expect("no holder of the cache lock panics");
        let entry = entries.get(&id)?;
        (*entry.bytes == *bytes).then(|| CheckedCopy {
            version: entry.version,
            received: Arc::clone(&entry.received),
            result: Arc::clone(&entry.result),
        })
    }

    /// Records the checked form of a received copy, unless a copy of the id is there.
    pub fn insert(&self, version: RoomVersion, received: Arc<Pdu>, result: Arc<Pdu>) {
        let mut entries = self.entries.lock().expect("no holder of the cache lock panics");
        let id = received.event_id().clone();
        if entries.contains_key(&id) {
            return;
        }
        let claimed = received.json().get("hashes").and_then(|h| h.get("sha256"));
        if let Some(claimed) = claimed.and_then(serde_json::Value::as_str) {
            let mut index =
                self.by_claimed_hash.lock().expect("no holder of the cache lock panics");
            index.entry(claimed.to_owned()).or_insert_with(|| id.clone());
        }
        // A copy that holds what canonical JSON cannot (never one parsed from the wire) is
        // found by its JSON only.
        let bytes = canonical_json::encode_object(received.json()).unwrap_or_default();
        if !bytes.is_empty() {
            let mut index = self.by_bytes.lock().expect("no holder of the cache lock panics");
            index.entry(bytes_key(&bytes)).or_insert_with(|| id.clone());
        }
        let bytes = bytes.into_boxed_slice();
        entries.insert(id, Entry { version, received, result, bytes });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::crypto::SigningKey;
    use crate::matrix::pdu;

    /// A cache for hs1's key, and a signed v11 message of hs1 with body `body`.
    fn cache_and_message(seed: u8) -> (VerifiedEvents, impl Fn(&str) -> Arc<Pdu>) {
        let key = SigningKey::from_seed(&[seed; 32], "ed25519:1").unwrap();
        let mut ring = KeyRing::new();
        ring.entry("hs1".into()).or_default().insert("ed25519:1".into(), key.public_key());
        let build = move |body: &str| {
            let serde_json::Value::Object(json) = serde_json::json!({
                "type": "m.room.message", "sender": "@a:hs1", "room_id": "!r:hs1",
                "origin_server_ts": 1, "depth": 2, "prev_events": ["$p"], "auth_events": ["$c"],
                "content": {"body": body},
            }) else {
                unreachable!()
            };
            Arc::new(pdu::build_signed(RoomVersion::V11.rules(), json, "hs1", &key).unwrap())
        };
        (VerifiedEvents::new(Arc::new(ring)), build)
    }

    #[test]
    fn a_raw_copy_is_found_only_when_it_is_the_exact_copy_checked() {
        let (cache, build) = cache_and_message(3);
        let built = build("hi");
        let raw = built.json().clone();
        assert!(cache.get_raw(RoomVersion::V11, &raw).is_none(), "nothing checked yet");
        cache.insert(RoomVersion::V11, Arc::clone(&built), Arc::clone(&built));
        let (received, result) = cache.get_raw(RoomVersion::V11, &raw).unwrap();
        assert_eq!(received.event_id(), built.event_id());
        assert!(Arc::ptr_eq(&result, &built), "the one checked body");
        // Another room version, or any other JSON under the same claimed hash: not this copy.
        assert!(cache.get_raw(RoomVersion::V10, &raw).is_none());
        let mut other = raw.clone();
        other.insert("unsigned".into(), serde_json::json!({"age": 5}));
        assert!(cache.get_raw(RoomVersion::V11, &other).is_none());
        let mut no_hash = raw.clone();
        no_hash.remove("hashes");
        assert!(cache.get_raw(RoomVersion::V11, &no_hash).is_none());
    }

    #[test]
    fn a_copy_is_found_by_its_bytes_only_when_they_are_its_exact_canonical_json() {
        let (cache, build) = cache_and_message(4);
        let (one, two) = (build("one"), build("two"));
        let bytes = |pdu: &Pdu| canonical_json::encode_object(pdu.json()).unwrap();
        assert!(cache.get_bytes(&bytes(&one)).is_none(), "nothing checked yet");
        cache.insert(RoomVersion::V11, Arc::clone(&one), Arc::clone(&one));
        cache.insert(RoomVersion::V11, Arc::clone(&two), Arc::clone(&two));
        for pdu in [&one, &two] {
            let found = cache.get_bytes(&bytes(pdu)).expect("its exact bytes");
            assert_eq!(found.version, RoomVersion::V11);
            assert!(Arc::ptr_eq(&found.received, pdu) && Arc::ptr_eq(&found.result, pdu));
        }
        // The same JSON written otherwise, or one byte changed anywhere: not recognised.
        let mut spaced = bytes(&one);
        spaced.insert(1, b' ');
        assert!(cache.get_bytes(&spaced).is_none());
        for at in [0, 10, bytes(&one).len() - 1] {
            let mut changed = bytes(&one);
            changed[at] ^= 1;
            assert!(cache.get_bytes(&changed).is_none(), "byte {at} changed");
        }
        assert!(cache.get_bytes(b"").is_none());
    }

    #[test]
    fn an_outlier_check_is_taken_only_where_it_read_the_same_bodies_and_rejections() {
        let (cache, build) = cache_and_message(6);
        let (event, first, second, create) = (build("event"), build("a"), build("b"), build("c"));
        fn reads<'a>(auth: &[(&'a Arc<Pdu>, bool)], create: Option<&'a Arc<Pdu>>) -> AuthReads<'a> {
            AuthReads { auth: auth.to_vec(), create }
        }
        let recorded = reads(&[(&first, false), (&second, true)], Some(&create));
        let v11 = RoomVersion::V11;
        assert_eq!(cache.outlier_check(v11, &event, &recorded), None, "nothing recorded");
        cache.record_outlier_check(v11, &event, &recorded, Err("power".into()));
        assert_eq!(cache.outlier_check(v11, &event, &recorded), Some(Err("power".into())));
        // Only the first check of an event is recorded.
        cache.record_outlier_check(v11, &event, &recorded, Ok(()));
        let alike = reads(&[(&first, false), (&second, true)], Some(&create));
        assert_eq!(cache.outlier_check(v11, &event, &alike), Some(Err("power".into())));
        assert_eq!(cache.outlier_checks_taken(), 2);
        // Any other read: another body (even an equal copy), rejection, create event,
        // number of auth events, event body or room version.
        let copy = Arc::new((*second).clone());
        let others = [
            reads(&[(&first, false), (&copy, true)], Some(&create)),
            reads(&[(&first, false), (&second, false)], Some(&create)),
            reads(&[(&first, false), (&second, true)], None),
            reads(&[(&first, false), (&second, true)], Some(&first)),
            reads(&[(&first, false)], Some(&create)),
            reads(&[(&first, false), (&second, true), (&create, false)], Some(&create)),
        ];
        for (at, other) in others.iter().enumerate() {
            assert_eq!(cache.outlier_check(v11, &event, other), None, "read {at}");
        }
        let event_copy = Arc::new((*event).clone());
        assert_eq!(cache.outlier_check(v11, &event_copy, &recorded), None);
        assert_eq!(cache.outlier_check(RoomVersion::V10, &event, &recorded), None);
        assert_eq!(cache.outlier_check(v11, &first, &recorded), None, "another event");
        assert_eq!(cache.outlier_checks_taken(), 2);
    }
}
