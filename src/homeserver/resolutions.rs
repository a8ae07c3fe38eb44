//! State resolutions shared by the homeservers of one process: when many servers hold the
//! same states (every server of a room ends up resolving the same forward extremities, a
//! join storm at a thousand servers asks for tens of thousands of resolutions of a few
//! thousand distinct inputs), each distinct resolution is computed once.
//!
//! A server is handed the cache as a capability ([`Homeserver::share_resolutions`]), as
//! it is handed [`VerifiedEvents`]: it stays sans-IO. A resolution depends only on the
//! states resolved and on the events it read. It is kept as the changes that take any of
//! its input states to the resolved state, with how many of them change each input (so
//! that a server that takes it stores the same delta on the same parent as from its own
//! resolution). It is keyed by the room version and the digests of the states resolved
//! ([`StateDigest`], kept with every state group), and recorded with what the resolution
//! read of each event (its form and whether the server rejected it). A server takes a
//! recorded resolution only if its own store answers every one of those reads the same
//! way (the same body, or one equal but for `unsigned`, which no auth rule reads; the
//! same rejection; missing where it was missing): then its own resolution would have
//! read the same and resolved the same. It then skips the resolution and the overlay of
//! its input groups ([`Store::overlaid`]) both.
//!
//! Both the server that records a resolution and the one that takes it must have every
//! event of the room in its auth-chain index, or waiting for it with its whole auth chain
//! stored ([`Store::room_fully_indexed`]): a resolution reads the auth chains it compares
//! from the index without reading the events, so the index must hold whole chains on both
//! sides (a server adds the waiting events before it resolves states itself).
//!
//! The key trusts the digests to tell states apart: two different states with equal
//! 128-bit digests would share a resolution. Digests are sums of SHA-256 values of
//! entries, so that needs event ids chosen to collide, which a run's servers do not do.
//! The cache is bounded: the oldest resolutions go first ([`SharedResolutions::CAPACITY`]).
//! Whether a resolution is found changes no result, only the work done.
//!
//! [`Homeserver::share_resolutions`]: crate::homeserver::Homeserver::share_resolutions
//! [`VerifiedEvents`]: crate::homeserver::verified::VerifiedEvents
//! [`Store::room_fully_indexed`]: crate::homeserver::store::Store::room_fully_indexed
//! [`StateDigest`]: crate::matrix::state_digest::StateDigest
//! [`Store::overlaid`]: crate::homeserver::store::Store::overlaid

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::matrix::dag::RejectionKind;
use crate::matrix::state_digest::StateDigest;
use crate::matrix::state_res::StateKey;
use crate::matrix::{EventId, Pdu, RoomVersion};

/// What a resolution read of one event: nothing (the store lacked it), or the body and
/// whether the store rejected it.
#[derive(Clone, Debug)]
pub enum Read {
    Missing,
    Found { pdu: Arc<Pdu>, rejection: Option<RejectionKind> },
}

impl Read {
    /// Whether a store that answers `local` for this event would have given the resolution
    /// the same: missing where it was missing, else the same rejection and the same body
    /// (the shared copy, or one whose JSON is equal but for `unsigned`).
    pub fn matches(&self, local: Option<(&Arc<Pdu>, Option<RejectionKind>)>) -> bool {
        match (self, local) {
            (Read::Missing, None) => true,
            (Read::Found { pdu, rejection }, Some((local, local_rejection))) => {
                *rejection == local_rejection && same_body(pdu, local)
            }
            _ => false,
        }
    }
}

/// Whether two copies of an event are the same to a resolution: the same body, or JSON
/// equal but for `unsigned` (which neither the auth rules nor the resolution read).
fn same_body(a: &Arc<Pdu>, b: &Arc<Pdu>) -> bool {
    if Arc::ptr_eq(a, b) {
        return true;
    }
    let (a, b) = (a.json(), b.json());
    let a = a.iter().filter(|(k, _)| *k != "unsigned");
    let mut b = b.iter().filter(|(k, _)| *k != "unsigned");
    a.into_iter().all(|entry| b.next() == Some(entry)) && b.next().is_none()
}

/// A resolution as changes (sorted by key; `None`: no entry) to one of its input states.
pub type Changes = Arc<Vec<(StateKey, Option<EventId>)>>;

/// The changes that take one state to another, sorted by key (`None`: no entry).
pub type Delta = Vec<(StateKey, Option<EventId>)>;

/// A recorded resolution: what it read, and the resolved state as changes to any of its
/// input states.
#[derive(Debug)]
pub struct Recorded {
    /// Every event the resolution read, by id (sorted, distinct), and what it read.
    pub reads: Vec<(EventId, Read)>,
    /// Sorted by key: the entries of the resolved state (`None`: no entry) under every key
    /// where some input state differs from it. Any input state with these changes applied
    /// is the resolved state.
    pub changes: Changes,
    /// Sorted by digest: per input state, the positions in `changes` of those that change
    /// it (ascending).
    pub differences: Vec<(StateDigest, Vec<u32>)>,
}

impl Recorded {
    /// How many of the changes change the input state with `digest` (`u32::MAX` for a
    /// state that was not an input).
    pub fn differences_from(&self, digest: StateDigest) -> u32 {
        self.changing(digest)
            .map_or(u32::MAX, |at| u32::try_from(at.len()).expect("fewer changes than u32::MAX"))
    }

    /// The changes that change the input state with `digest`, in key order: the delta from
    /// it to the resolved state. `None` for a state that was not an input.
    pub fn changes_to(&self, digest: StateDigest) -> Option<Delta> {
        let at = self.changing(digest)?;
        Some(at.iter().map(|&at| self.changes[at as usize].clone()).collect())
    }

    fn changing(&self, digest: StateDigest) -> Option<&[u32]> {
        let at = self.differences.binary_search_by(|(d, _)| d.cmp(&digest)).ok()?;
        Some(&self.differences[at].1)
    }
}

/// The key of a resolution: the room version and the sorted digests of the input states.
pub type Key = (RoomVersion, Vec<StateDigest>);

/// Resolutions shared by the servers of one process.
#[derive(Debug, Default)]
pub struct SharedResolutions {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<Key, Arc<Recorded>>,
    /// Keys in the order they were recorded: the first is evicted first.
    order: VecDeque<Key>,
    counts: Counts,
}

/// How often a resolution was asked for and found, and how often one found was refused
/// because the asking server's store read differently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub asked: u64,
    pub found: u64,
    pub refused: u64,
    pub recorded: u64,
}

impl SharedResolutions {
    /// How many resolutions are kept. Servers of one room resolve the same states within
    /// a short stretch of the run (as events spread), so a recent window finds nearly all
    /// of them: in `big500` (500 servers joining one room 60 ms apart, then messages; see
    /// docs/performance-history.md), 94.1% of the 134,953 resolutions asked for were of
    /// inputs resolved before, and replaying those requests through windows of 512, 1,024
    /// and 2,048 resolutions found 93.8%, 93.9% and 94.06% of them.
    pub const CAPACITY: usize = 512;

    pub fn new() -> SharedResolutions {
        SharedResolutions::default()
    }

    /// The key of a resolution of the states with `digests` in a room of `version`.
    pub fn key(version: RoomVersion, mut digests: Vec<StateDigest>) -> Key {
        digests.sort_unstable();
        (version, digests)
    }

    /// The recorded resolution under `key` if there is one and `reads_same` accepts its
    /// reads (the asking server's store answers each the same way).
    pub fn find(
        &self,
        key: &Key,
        reads_same: impl FnOnce(&[(EventId, Read)]) -> bool,
    ) -> Option<Arc<Recorded>> {
        let recorded = {
            let mut inner = self.inner.lock().expect("no holder of the cache lock panics");
            inner.counts.asked += 1;
            Arc::clone(inner.entries.get(key)?)
        };
        let same = reads_same(&recorded.reads);
        let mut inner = self.inner.lock().expect("no holder of the cache lock panics");
        if same {
            inner.counts.found += 1;
            Some(recorded)
        } else {
            inner.counts.refused += 1;
            None
        }
    }

    /// Records a resolution under `key` (unless one is there), evicting the oldest beyond
    /// [`SharedResolutions::CAPACITY`].
    pub fn record(&self, key: Key, recorded: Recorded) {
        let mut inner = self.inner.lock().expect("no holder of the cache lock panics");
        if inner.entries.contains_key(&key) {
            return;
        }
        if inner.order.len() == SharedResolutions::CAPACITY {
            let oldest = inner.order.pop_front().expect("full");
            inner.entries.remove(&oldest);
        }
        inner.entries.insert(key.clone(), Arc::new(recorded));
        inner.order.push_back(key);
        inner.counts.recorded += 1;
    }

    /// Every resolution kept, oldest first.
    pub fn entries(&self) -> Vec<(Key, Arc<Recorded>)> {
        let inner = self.inner.lock().expect("no holder of the cache lock panics");
        inner.order.iter().map(|key| (key.clone(), Arc::clone(&inner.entries[key]))).collect()
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.inner.lock().expect("no holder of the cache lock panics").counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::homeserver::test_events::signed_state_event;

    fn member(body: &str) -> Arc<Pdu> {
        signed_state_event("m.room.member", "@a:hs1", body)
    }

    #[test]
    fn a_read_matches_only_the_same_body_and_rejection() {
        let one = member("a");
        let read = Read::Found { pdu: Arc::clone(&one), rejection: None };
        assert!(read.matches(Some((&one, None))), "the shared copy");
        let parsed_again =
            Arc::new(Pdu::from_json(RoomVersion::V11.rules(), one.json().clone()).unwrap());
        assert!(read.matches(Some((&parsed_again, None))), "an equal copy");
        let mut with_unsigned_json = one.json().clone();
        with_unsigned_json.insert("unsigned".into(), serde_json::json!({"age": 3}));
        let with_unsigned =
            Arc::new(Pdu::from_json(RoomVersion::V11.rules(), with_unsigned_json).unwrap());
        assert!(read.matches(Some((&with_unsigned, None))), "another unsigned");
        assert!(!read.matches(Some((&one, Some(RejectionKind::AuthEvents)))), "rejected here");
        assert!(!read.matches(Some((&one, Some(RejectionKind::StateBefore)))), "rejected here");
        assert!(!read.matches(None), "missing here");
        let other = member("b");
        assert!(!read.matches(Some((&other, None))), "another body");
        // A top-level field only one copy has (other than `unsigned`).
        let mut extra_json = one.json().clone();
        extra_json.insert("extra".into(), serde_json::json!(1));
        let extra = Arc::new(Pdu::from_json(RoomVersion::V11.rules(), extra_json).unwrap());
        assert!(!read.matches(Some((&extra, None))), "an extra field");
        let read_extra = Read::Found { pdu: extra, rejection: None };
        assert!(!read_extra.matches(Some((&one, None))), "a field missing");
        assert!(Read::Missing.matches(None));
        assert!(!Read::Missing.matches(Some((&one, None))));
        let rejected =
            Read::Found { pdu: Arc::clone(&one), rejection: Some(RejectionKind::StateBefore) };
        assert!(rejected.matches(Some((&one, Some(RejectionKind::StateBefore)))));
        assert!(!rejected.matches(Some((&one, None))));
    }

    #[test]
    fn found_only_under_its_key_and_with_the_same_reads() {
        let cache = SharedResolutions::new();
        let (d1, d2) =
            (StateDigest::EMPTY.add("t", "", "$1"), StateDigest::EMPTY.add("t", "", "$2"));
        let key = SharedResolutions::key(RoomVersion::V11, vec![d2, d1]);
        assert_eq!(key, SharedResolutions::key(RoomVersion::V11, vec![d1, d2]), "any order");
        assert!(cache.find(&key, |_| true).is_none());
        let changes = Arc::new(vec![(("t".to_owned(), String::new()), None)]);
        let mut differences = vec![(d1, vec![]), (d2, vec![0])];
        differences.sort_unstable();
        let recorded = Recorded { reads: Vec::new(), changes: Arc::clone(&changes), differences };
        cache.record(key.clone(), recorded);
        let found = cache.find(&key, |_| true).unwrap();
        assert!(Arc::ptr_eq(&found.changes, &changes));
        assert_eq!((found.differences_from(d1), found.differences_from(d2)), (0, 1));
        assert_eq!(found.differences_from(StateDigest::EMPTY), u32::MAX, "not an input");
        assert_eq!(found.changes_to(d1), Some(vec![]), "an input the resolution keeps");
        assert_eq!(found.changes_to(d2).as_deref(), Some(&changes[..]));
        assert_eq!(found.changes_to(StateDigest::EMPTY), None);
        assert!(cache.find(&key, |_| false).is_none(), "refused by the reads");
        assert!(
            cache.find(&SharedResolutions::key(RoomVersion::V12, vec![d1, d2]), |_| true).is_none()
        );
        assert!(
            cache.find(&SharedResolutions::key(RoomVersion::V11, vec![d1]), |_| true).is_none()
        );
        assert_eq!(cache.counts(), Counts { asked: 5, found: 1, refused: 1, recorded: 1 });
    }

    #[test]
    fn the_oldest_goes_first_beyond_capacity() {
        let cache = SharedResolutions::new();
        let key_of = |n: usize| {
            SharedResolutions::key(
                RoomVersion::V11,
                vec![StateDigest::EMPTY.add("t", "", &format!("${n}"))],
            )
        };
        for n in 0..=SharedResolutions::CAPACITY {
            cache.record(
                key_of(n),
                Recorded { reads: Vec::new(), changes: Arc::default(), differences: Vec::new() },
            );
        }
        assert!(cache.find(&key_of(0), |_| true).is_none(), "evicted");
        assert!(cache.find(&key_of(1), |_| true).is_some());
        assert!(cache.find(&key_of(SharedResolutions::CAPACITY), |_| true).is_some());
    }
}
