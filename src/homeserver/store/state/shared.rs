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
//! [`Store::share_snapshots`]: crate::homeserver::store::Store::share_snapshots

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::matrix::state_digest::StateDigest;

use super::delta::Delta;

/// One copy of each distinct snapshot, and large delta, that the servers sharing the pool
/// have stored.
#[derive(Default)]
pub struct SharedSnapshots {
    /// The entry lists by the digest of the state their group holds: distinct lists, so
    /// under one digest a snapshot and the large deltas that reach the same state from
    /// other snapshots (and, for a collision of digests, other states).
    by_digest: Mutex<BTreeMap<StateDigest, Vec<Arc<Delta>>>>,
    /// How many snapshots and large deltas a store took from the pool instead of keeping
    /// its own.
    taken: AtomicU64,
}

/// The pool's size and use, not its entries: every store that shares it holds it, and a
/// store's `Debug` would otherwise print every server's snapshots.
impl std::fmt::Debug for SharedSnapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSnapshots")
            .field("held", &self.len())
            .field("taken", &self.taken())
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

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
