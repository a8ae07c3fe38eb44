//! Snapshots shared between servers ([`SharedSnapshots`]): servers of one room snapshot
//! the same states, and one copy of each serves them all. So do the large deltas rebased
//! on them.
//!
//! A snapshot is a full state, every key of the room. Counted at the end of a
//! thousand-server run (`big1000`), the servers held 11,784 snapshots with 6.9 million
//! entries between them, but only 1,677 distinct states with 872,000 entries: a server
//! snapshots its state when its delta chain is long, and in a room whose servers agree
//! the states they snapshot are the same ones. Each entry owns its key's two strings, so
//! the copies were about 600 MB, a quarter of the run's memory. The large deltas (a long
//! chain rebased on its snapshot) were 23,442 with 1.9 million entries, of 5,405 distinct
//! entry lists with 391,000.
//!
//! A server is handed the pool as a capability, as it is the shared resolutions
//! ([`Store::share_snapshots`]): what it stores and reads is the same either way, only
//! where the entries live changes. A snapshot is shared only with one whose entries are
//! equal, compared in full: the digest finds the candidates and decides nothing.
//!
//! The small deltas are shared too, found by their entries rather than by the state they
//! reach ([`SharedSnapshots::share_small`]). A server stores a group for each state event
//! it accepts, whose delta is that event's one entry, and one for each resolution that
//! changes its state; the servers of a room store the same ones. Counted in a massif
//! profile of `big1000`, the small deltas' entries and their keys' strings were some
//! 180 MB of the 1.25 GB peak.
//!
//! [`Store::share_snapshots`]: crate::homeserver::store::Store::share_snapshots

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::homeserver::store::StateKey;
use crate::matrix::EventId;
use crate::matrix::ids::LookupMap;
use crate::matrix::state_digest::StateDigest;

use super::delta::{Delta, content_hash};

/// One copy of each distinct snapshot, large delta and small delta that the servers
/// sharing the pool have stored, and the rebases they made.
#[derive(Default)]
pub struct SharedSnapshots {
    /// The entry lists by the digest of the state their group holds: distinct lists, so
    /// under one digest a snapshot and the large deltas that reach the same state from
    /// other snapshots (and, for a collision of digests, other states).
    by_digest: Mutex<BTreeMap<StateDigest, Vec<Arc<Delta>>>>,
    /// The small deltas by their entries' hash ([`Delta::content_hash`]): distinct lists.
    small: Mutex<LookupMap<u64, Vec<Arc<Delta>>>>,
    /// How many small deltas a store took from the pool instead of keeping its own.
    small_taken: AtomicU64,
    /// The rebases stores made ([`SharedSnapshots::find_rebase`]), by [`rebase_hash`].
    rebases: Mutex<LookupMap<u64, Vec<Rebase>>>,
    /// How many rebases a store took from the pool instead of making them.
    rebases_taken: AtomicU64,
    /// How many snapshots and large deltas a store took from the pool instead of keeping
    /// its own.
    taken: AtomicU64,
}

/// A rebase made: the chain's entry lists (the pool's, from the group rebased down to its
/// snapshot), the entries set over them, and the result.
struct Rebase {
    chain: Box<[Arc<Delta>]>,
    top: Box<[(StateKey, Option<EventId>)]>,
    result: Rebased,
}

/// What a rebase made (`Store::rebased_or_snapshot`): a delta on the chain's snapshot, or
/// a new snapshot; the pool's entries either way.
#[derive(Clone, Debug)]
pub(super) enum Rebased {
    OnSnapshot(Arc<Delta>),
    Snapshot(Arc<Delta>),
}

/// A hash of a rebase's inputs: the addresses of the chain's entry lists (the pool holds
/// each list for as long as it holds the rebase, so an address names one list), and the
/// entries set over them ([`content_hash`]). Only a filter: candidates are compared in
/// full, the lists by address and the entries by value, and nothing is ever read in the
/// order of these hashes.
pub(super) fn rebase_hash(chain: &[&Arc<Delta>], top: &BTreeMap<StateKey, Option<EventId>>) -> u64 {
    let top = content_hash(top.iter().map(|((t, k), e)| (t.as_str(), k.as_str(), e.as_ref())));
    chain.iter().fold(top, |hash, delta| {
        let address = Arc::as_ptr(delta) as usize as u64;
        (hash ^ address).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
    })
}

/// The pool's size and use, not its entries: every store that shares it holds it, and a
/// store's `Debug` would otherwise print every server's snapshots.
impl std::fmt::Debug for SharedSnapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSnapshots")
            .field("held", &self.len())
            .field("taken", &self.taken())
            .field("small", &self.small_len())
            .field("small_taken", &self.small_taken())
            .field("rebases_taken", &self.rebases_taken())
            .finish()
    }
}

impl SharedSnapshots {
    pub fn new() -> SharedSnapshots {
        SharedSnapshots::default()
    }

    /// The pool's copy of `delta` (a snapshot's or a large delta's entries, of a group of
    /// state `digest`): one already held if its entries are equal, else `delta`, which is
    /// held from now on.
    pub(super) fn share(&self, digest: StateDigest, delta: Delta) -> Arc<Delta> {
        match self.find(digest, |held| held.same_entries(&delta)) {
            Some(found) => found,
            None => self.hold(digest, delta),
        }
    }

    /// Holds `delta`, of a group of state `digest`, which the pool was asked for and
    /// lacks ([`SharedSnapshots::find`]), from now on.
    pub(super) fn hold(&self, digest: StateDigest, delta: Delta) -> Arc<Delta> {
        let mut by_digest = self.by_digest.lock().expect("no server panicked holding the pool");
        let delta = Arc::new(delta);
        by_digest.entry(digest).or_default().push(Arc::clone(&delta));
        delta
    }

    /// The pool's copy of the entries of a group of state `digest` that `holds` accepts,
    /// if it has one: what [`SharedSnapshots::share`] would return for the delta those
    /// entries make, found before the store copies them. Servers in agreement reach the
    /// same states, so most of the snapshots and large deltas a store makes are found
    /// here, and their keys and ids are not copied only to be dropped again.
    pub(super) fn find(
        &self,
        digest: StateDigest,
        holds: impl Fn(&Delta) -> bool,
    ) -> Option<Arc<Delta>> {
        let by_digest = self.by_digest.lock().expect("no server panicked holding the pool");
        let found = by_digest.get(&digest)?.iter().find(|held| holds(held))?;
        self.taken.fetch_add(1, Ordering::Relaxed);
        Some(Arc::clone(found))
    }

    /// The pool's copy of the small `delta`: one already held if its entries are equal,
    /// else `delta`, held from now on. Found by the entries' hash, not by a state's digest:
    /// a small delta is the same entries whatever group it is stored above.
    pub(super) fn share_small(&self, delta: Delta) -> Arc<Delta> {
        let hash = delta.content_hash();
        if let Some(found) = self.find_small(hash, |held| held.same_entries(&delta)) {
            return found;
        }
        self.hold_small(hash, delta)
    }

    /// The pool's copy of the small delta whose entries hash to `hash`
    /// ([`super::delta::content_hash`]) and that `holds` accepts, if it has one, found
    /// before the store copies any key.
    pub(super) fn find_small(
        &self,
        hash: u64,
        holds: impl Fn(&Delta) -> bool,
    ) -> Option<Arc<Delta>> {
        let small = self.small.lock().expect("no server panicked holding the pool");
        let found = small.get(&hash)?.iter().find(|held| holds(held))?;
        self.small_taken.fetch_add(1, Ordering::Relaxed);
        Some(Arc::clone(found))
    }

    /// Holds the small `delta`, whose entries hash to `hash`, which the pool was asked
    /// for and lacks ([`SharedSnapshots::find_small`]), from now on.
    pub(super) fn hold_small(&self, hash: u64, delta: Delta) -> Arc<Delta> {
        let mut small = self.small.lock().expect("no server panicked holding the pool");
        let delta = Arc::new(delta);
        small.get_or_insert_with(hash, Vec::new).push(Arc::clone(&delta));
        delta
    }

    /// What a store's rebase of `chain` (the pool's entry lists, from the group rebased
    /// down to its snapshot) with `top` set over it made, if another store made that
    /// rebase: the same inputs give the same result.
    pub(super) fn find_rebase(
        &self,
        hash: u64,
        chain: &[&Arc<Delta>],
        top: &BTreeMap<StateKey, Option<EventId>>,
    ) -> Option<Rebased> {
        let rebases = self.rebases.lock().expect("no server panicked holding the pool");
        let same = |held: &&Rebase| {
            held.chain.len() == chain.len()
                && held.chain.iter().zip(chain).all(|(a, b)| Arc::ptr_eq(a, b))
                && held.top.len() == top.len()
                && held.top.iter().zip(top).all(|((k, e), (k2, e2))| k == k2 && e == e2)
        };
        let found = rebases.get(&hash)?.iter().find(same)?;
        self.rebases_taken.fetch_add(1, Ordering::Relaxed);
        Some(found.result.clone())
    }

    /// Holds what a rebase the pool was asked for and lacks made
    /// ([`SharedSnapshots::find_rebase`]).
    pub(super) fn hold_rebase(
        &self,
        hash: u64,
        chain: &[&Arc<Delta>],
        top: &BTreeMap<StateKey, Option<EventId>>,
        result: Rebased,
    ) {
        let rebase = Rebase {
            chain: chain.iter().map(|delta| Arc::clone(delta)).collect(),
            top: top.iter().map(|(key, event)| (key.clone(), event.clone())).collect(),
            result,
        };
        let mut rebases = self.rebases.lock().expect("no server panicked holding the pool");
        rebases.get_or_insert_with(hash, Vec::new).push(rebase);
    }

    /// How many rebases stores took from the pool instead of making them.
    pub fn rebases_taken(&self) -> u64 {
        self.rebases_taken.load(Ordering::Relaxed)
    }

    /// How many distinct small deltas the pool holds.
    pub fn small_len(&self) -> usize {
        let small = self.small.lock().expect("no server panicked holding the pool");
        small.sorted().iter().map(|(_, lists)| lists.len()).sum()
    }

    /// How many small deltas stores took from the pool instead of keeping their own.
    pub fn small_taken(&self) -> u64 {
        self.small_taken.load(Ordering::Relaxed)
    }

    /// How many snapshots and large deltas stores took from the pool instead of keeping
    /// their own.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// How many distinct entry lists (snapshots and large deltas) the pool holds.
    pub fn len(&self) -> usize {
        let by_digest = self.by_digest.lock().expect("no server panicked holding the pool");
        by_digest.values().map(Vec::len).sum()
    }

    /// Whether the pool holds no snapshot or large delta ([`SharedSnapshots::len`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
