//! Verified events shared by the homeservers of one process: each unique event is parsed,
//! hashed and checked against its signatures once, and every server that receives it
//! keeps a reference to the one verified body. The server that built an event checks and
//! records its own copy (`Homeserver::own_copy`), so that body is the builder's too.
//!
//! A server is handed the cache as a capability ([`Homeserver::share_verified`]): it stays
//! sans-IO, and a real deployment of several servers in one process could hand them one
//! cache too. What is shared is only what does not depend on the server: the result of
//! the format, hash and signature checks of an exact copy of an event, against one key
//! ring; the auth check of an event against its own auth events (receipt check 4, of an
//! outlier or of an event decided), which a server takes only if it reads the very same
//! bodies with the same rejections ([`VerifiedEvents::auth_events_check`]); and the auth
//! check of an event against a state (receipt checks 5 and 6), which a server takes only
//! if its own state answers every question the rules asked with the very same body
//! ([`VerifiedEvents::state_check`]). The rules are a function of the event and those
//! answers alone, so a check taken is the check the server would have made; what a
//! decision does with it (reject, soft-fail, store) is still the server's own.
//!
//! [`Homeserver::share_verified`]: crate::homeserver::Homeserver::share_verified

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::homeserver::wire::SendScans;
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

/// One recorded auth check of an event against its own auth events: what it read, and its
/// result (`Err`: the rejection's reason).
#[derive(Debug)]
struct AuthEventsCheck {
    version: RoomVersion,
    pdu: Arc<Pdu>,
    auth: Vec<(Arc<Pdu>, bool)>,
    create: Option<Arc<Pdu>>,
    result: Result<(), String>,
}

impl AuthEventsCheck {
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

/// A question the auth rules asked of a state, `(type, state_key)`, and the body the state
/// answered with (`None`: no such state event). The body is held, not only its address, so
/// that no other body can take its place in memory while the record lives.
pub type StateRead = (Box<str>, Box<str>, Option<Arc<Pdu>>);

/// One recorded auth check of an event against a server's state (receipt checks 5 and 6):
/// the room version, whether signatures were taken as verified on receipt (Linearized
/// Matrix) or verified with the cache's key ring, the event's body, every question the
/// rules asked in order with its answer, and the result (`Err`: the rejection's reason).
#[derive(Debug)]
struct StateCheck {
    version: RoomVersion,
    signatures_verified: bool,
    pdu: Arc<Pdu>,
    reads: Vec<StateRead>,
    result: Result<(), String>,
}

/// At most this many checks of one event against different states are recorded: servers
/// whose states differ where the rules look (during a partition, say) make their own, and
/// a server tries at most this many records before it does.
const STATE_CHECKS_PER_EVENT: usize = 4;

/// The results of the receipt checks of format, hash and signatures, by event id, for
/// servers that all verify against the same key ring; and the auth checks of events
/// against their own auth events ([`VerifiedEvents::auth_events_check`]) and against a
/// state ([`VerifiedEvents::state_check`]).
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
    /// The first auth check of each event against its own auth events, by event id.
    auth_events_checks: Mutex<EventIdMap<AuthEventsCheck>>,
    /// How many recorded checks against auth events were taken.
    auth_events_checks_taken: AtomicU64,
    /// Checks of events against servers' states, by event id.
    state_checks: Mutex<EventIdMap<Vec<StateCheck>>>,
    /// How many recorded checks against a state were taken.
    state_checks_taken: AtomicU64,
    /// The scan of the last `/send` body read, for the receivers of the same body.
    send_scans: SendScans,
}

impl VerifiedEvents {
    /// A cache for servers verifying against `keys`.
    pub fn new(keys: Arc<KeyRing>) -> VerifiedEvents {
        VerifiedEvents {
            keys,
            entries: Mutex::new(EventIdMap::default()),
            by_claimed_hash: Mutex::new(BTreeMap::new()),
            by_bytes: Mutex::new(BTreeMap::new()),
            auth_events_checks: Mutex::new(EventIdMap::default()),
            auth_events_checks_taken: AtomicU64::new(0),
            state_checks: Mutex::new(EventIdMap::default()),
            state_checks_taken: AtomicU64::new(0),
            send_scans: SendScans::default(),
        }
    }

    /// The scan of the last `/send` body a server of this cache read ([`SendScans`]).
    pub fn send_scans(&self) -> &SendScans {
        &self.send_scans
    }

    /// The result of the auth check of `pdu` against its own auth events, if
    /// a server recorded one that read the very bodies in `reads` (by pointer: the bodies
    /// this cache shares) with the same rejections, under the same room version. That
    /// check depends on nothing else: the auth rules read only the event and the state
    /// those events form, and signatures against this cache's one key ring.
    pub fn auth_events_check(
        &self,
        version: RoomVersion,
        pdu: &Arc<Pdu>,
        reads: &AuthReads<'_>,
    ) -> Option<Result<(), String>> {
        let checks = self.auth_events_checks.lock().expect("no holder of the cache lock panics");
        let check = checks.get(pdu.event_id())?;
        let result = check.read_alike(version, pdu, reads).then(|| check.result.clone())?;
        self.auth_events_checks_taken.fetch_add(1, Ordering::Relaxed);
        Some(result)
    }

    /// Records the auth check of `pdu` against its own auth events, which read `reads`,
    /// unless one of the same event is recorded.
    pub fn record_auth_events_check(
        &self,
        version: RoomVersion,
        pdu: &Arc<Pdu>,
        reads: &AuthReads<'_>,
        result: Result<(), String>,
    ) {
        let mut checks =
            self.auth_events_checks.lock().expect("no holder of the cache lock panics");
        if checks.contains_key(pdu.event_id()) {
            return;
        }
        let check = AuthEventsCheck {
            version,
            pdu: Arc::clone(pdu),
            auth: reads.auth.iter().map(|&(pdu, rejected)| (Arc::clone(pdu), rejected)).collect(),
            create: reads.create.cloned(),
            result,
        };
        checks.insert(pdu.event_id().clone(), check);
    }

    /// How many checks against auth events were taken from the record rather than made.
    pub fn auth_events_checks_taken(&self) -> u64 {
        self.auth_events_checks_taken.load(Ordering::Relaxed)
    }

    /// The result of the auth check of `pdu` against a state (receipt checks 5 and 6), if
    /// a server recorded one, under the same room version and signature treatment, whose
    /// every question `read` answers for this server's state with the very body (by
    /// pointer) the recorded state gave. The rules ask their first question knowing only
    /// the event, and each next one knowing the answers before it, so a state that gives
    /// the same answers is asked the same questions and gets the same result: the check
    /// taken is the check this server would make. Questions are asked in the recorded
    /// order, and a record stops being tried at the first answer that differs.
    pub fn state_check<'s>(
        &self,
        version: RoomVersion,
        signatures_verified: bool,
        pdu: &Arc<Pdu>,
        mut read: impl FnMut(&str, &str) -> Option<&'s Arc<Pdu>>,
    ) -> Option<Result<(), String>> {
        let checks = self.state_checks.lock().expect("no holder of the cache lock panics");
        let taken = checks.get(pdu.event_id())?.iter().find(|check| {
            check.version == version
                && check.signatures_verified == signatures_verified
                && Arc::ptr_eq(&check.pdu, pdu)
                && check.reads.iter().all(|(event_type, state_key, held)| {
                    match (read(event_type, state_key), held) {
                        (None, None) => true,
                        (Some(now), Some(held)) => Arc::ptr_eq(now, held),
                        _ => false,
                    }
                })
        })?;
        self.state_checks_taken.fetch_add(1, Ordering::Relaxed);
        Some(taken.result.clone())
    }

    /// Records the auth check of `pdu` against a state, which asked `reads` in that
    /// order, unless [`STATE_CHECKS_PER_EVENT`] checks of the event are recorded.
    pub fn record_state_check(
        &self,
        version: RoomVersion,
        signatures_verified: bool,
        pdu: &Arc<Pdu>,
        reads: Vec<StateRead>,
        result: Result<(), String>,
    ) {
        let mut checks = self.state_checks.lock().expect("no holder of the cache lock panics");
        let list = checks.get_or_insert_with(pdu.event_id().clone(), Vec::new);
        if list.len() < STATE_CHECKS_PER_EVENT {
            let pdu = Arc::clone(pdu);
            list.push(StateCheck { version, signatures_verified, pdu, reads, result });
        }
    }

    /// How many checks against a state were taken from the record rather than made.
    pub fn state_checks_taken(&self) -> u64 {
        self.state_checks_taken.load(Ordering::Relaxed)
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

    /// Makes each event id `pdu` cites the copy of that id held by the checked form of the
    /// event recorded under it here, if one is (`Pdu::share_cited_ids`): the body the
    /// servers keep (the copy as received, or its redacted form when its content hash did
    /// not match). For a copy about to be checked (and recorded, if it is the first of its
    /// id), so that every server that keeps it looks up its auth and prev events by
    /// pointer.
    pub fn share_cited_ids(&self, pdu: &mut Pdu) {
        let entries = self.entries.lock().expect("no holder of the cache lock panics");
        pdu.share_cited_ids(|id| entries.get(id).map(|entry| entry.result.event_id().clone()));
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
        assert_eq!(cache.auth_events_check(v11, &event, &recorded), None, "nothing recorded");
        cache.record_auth_events_check(v11, &event, &recorded, Err("power".into()));
        assert_eq!(cache.auth_events_check(v11, &event, &recorded), Some(Err("power".into())));
        // Only the first check of an event is recorded.
        cache.record_auth_events_check(v11, &event, &recorded, Ok(()));
        let alike = reads(&[(&first, false), (&second, true)], Some(&create));
        assert_eq!(cache.auth_events_check(v11, &event, &alike), Some(Err("power".into())));
        assert_eq!(cache.auth_events_checks_taken(), 2);
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
            assert_eq!(cache.auth_events_check(v11, &event, other), None, "read {at}");
        }
        let event_copy = Arc::new((*event).clone());
        assert_eq!(cache.auth_events_check(v11, &event_copy, &recorded), None);
        assert_eq!(cache.auth_events_check(RoomVersion::V10, &event, &recorded), None);
        assert_eq!(cache.auth_events_check(v11, &first, &recorded), None, "another event");
        assert_eq!(cache.auth_events_checks_taken(), 2);
    }

    /// A state's answer in the tests below: a type, and the body of its state event.
    type Answer<'a> = (&'a str, Option<&'a Arc<Pdu>>);

    /// Asks `cache` for a check of `pdu` against a state that answers as `answers` (type →
    /// body; a type not listed has no state event), noting the questions in `asked`.
    fn take_state_check(
        cache: &VerifiedEvents,
        asked: &std::cell::RefCell<Vec<String>>,
        (version, verified): (RoomVersion, bool),
        pdu: &Arc<Pdu>,
        answers: &[Answer<'_>],
    ) -> Option<Result<(), String>> {
        asked.borrow_mut().clear();
        cache.state_check(version, verified, pdu, |event_type, _| {
            asked.borrow_mut().push(event_type.to_owned());
            answers.iter().find(|(t, _)| *t == event_type).and_then(|(_, body)| *body)
        })
    }

    #[test]
    fn a_state_check_is_taken_only_where_every_question_gets_the_same_body() {
        let (cache, build) = cache_and_message(7);
        let (event, create, member) = (build("event"), build("create"), build("member"));
        let v11 = (RoomVersion::V11, false);
        let asked = std::cell::RefCell::new(Vec::new());
        let take = |how, pdu: &Arc<Pdu>, answers: &[Answer<'_>]| {
            take_state_check(&cache, &asked, how, pdu, answers)
        };
        let read = |t: &str, body: Option<&Arc<Pdu>>| -> StateRead {
            (t.into(), "".into(), body.cloned())
        };
        let same = [
            ("m.room.create", Some(&create)),
            ("m.room.power_levels", None),
            ("m.room.member", Some(&member)),
        ];
        assert_eq!(take(v11, &event, &same), None, "nothing recorded");
        let recorded = same.iter().map(|&(t, body)| read(t, body)).collect();
        cache.record_state_check(RoomVersion::V11, false, &event, recorded, Err("power".into()));
        assert_eq!(take(v11, &event, &same), Some(Err("power".into())));
        assert_eq!(*asked.borrow(), ["m.room.create", "m.room.power_levels", "m.room.member"]);
        assert_eq!(cache.state_checks_taken(), 1);
        // Another answer to any question (an equal copy of a body included): not taken, and
        // the record's replay ends at the first answer that differs.
        let copy = Arc::new((*member).clone());
        let others: [(&[Answer<'_>], usize); 4] = [
            (&[("m.room.create", Some(&member)), ("m.room.member", Some(&member))], 1),
            (&[("m.room.member", Some(&member))], 1),
            (&[("m.room.create", Some(&create)), ("m.room.power_levels", Some(&create))], 2),
            (&[("m.room.create", Some(&create)), ("m.room.member", Some(&copy))], 3),
        ];
        for (at, (other, questions)) in others.iter().enumerate() {
            assert_eq!(take(v11, &event, other), None, "state {at}");
            assert_eq!(asked.borrow().len(), *questions, "state {at}");
        }
        // Another body of the event, room version or signature treatment: not taken.
        let event_copy = Arc::new((*event).clone());
        assert_eq!(take(v11, &event_copy, &same), None, "an equal copy of the event");
        assert_eq!(take((RoomVersion::V10, false), &event, &same), None);
        assert_eq!(take((RoomVersion::V11, true), &event, &same), None);
        assert_eq!(take(v11, &create, &same), None, "another event");
        assert_eq!(cache.state_checks_taken(), 1);
        // Four checks of one event are kept: the one above and the next three.
        for n in 0..5 {
            let body = build(&format!("create {n}"));
            let reads = vec![read("m.room.create", Some(&body))];
            cache.record_state_check(RoomVersion::V11, false, &event, reads, Ok(()));
            let found = take(v11, &event, &[("m.room.create", Some(&body))]);
            assert_eq!(found, (n < 3).then_some(Ok(())), "check {n}");
        }
    }
}
