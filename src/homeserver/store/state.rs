//! State groups: each a delta against a parent group, or a full snapshot, with the digest
//! of the whole state kept per group; reading a state walks at most [`SNAPSHOT_EVERY`]
//! groups. This file stores groups (and a resolution's result, [`Store::store_changes`]);
//! `read` reads them, in the forms a resolution reads states in among them
//! ([`Store::overlaid`]).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::ops::Deref;
use std::sync::Arc;

use crate::matrix::EventId;
use crate::matrix::Pdu;
use crate::matrix::state_digest::StateDigest;

use super::{Outcome, StateKey, StateMap, Store};

mod delta;
mod read;
mod shared;

use delta::{ChainFilter, Delta, content_hash};
use shared::Rebased;
pub use shared::SharedSnapshots;

/// A full snapshot is stored once a group's delta chain reaches this length.
pub const SNAPSHOT_EVERY: u32 = 32;

/// Identifies a stored state group: its position in the store's groups, plus one.
///
/// Four bytes, and none more in an `Option` (the zero no id takes marks `None`): every
/// stored event holds two, and every group two, which at a thousand servers are some
/// ten million. Positions and ids order alike.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateGroupId(NonZeroU32);

/// Shown as the group's position, as before ids were offset by one.
impl std::fmt::Debug for StateGroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateGroupId({})", self.position())
    }
}

impl StateGroupId {
    /// The id of the group at `position`. Panics from position `u32::MAX - 1` on (the id
    /// it would take is [`StateGroup::NO_SKIP`]'s): a store holds fewer groups than
    /// events, and memory runs out long before that many events.
    fn at(position: usize) -> StateGroupId {
        u32::try_from(position + 1)
            .ok()
            .filter(|id| *id < u32::MAX)
            .and_then(NonZeroU32::new)
            .map(StateGroupId)
            .expect("a store holds at most u32::MAX - 1 state groups")
    }

    /// The group's position in the store.
    fn position(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// A state as a delta against a parent (`None` in `delta` removes a key), or a snapshot.
#[derive(Clone, Debug)]
pub(super) struct StateGroup {
    parent: Option<StateGroupId>,
    delta: HeldDelta,
    /// Number of groups walked to materialise this one (0 for a snapshot).
    chain_len: u32,
    /// For a delta, where a lookup that `above` rules out goes on: the nearest group under
    /// this one that is a snapshot or holds a large delta (more keys than a filter of 256
    /// bits tells apart). [`StateGroup::NO_SKIP`] for a snapshot, where a lookup ends
    /// before it would read this.
    skip_to: StateGroupId,
    /// For a delta, a filter of the keys set or removed by the deltas from this group down
    /// to `skip_to` (not included): a lookup of a key it rules out goes to `skip_to` at
    /// once, instead of walking up to [`SNAPSHOT_EVERY`] groups (the create event, the
    /// server ACL and most members are looked up per event checked, and live in the
    /// snapshot or nowhere). A large delta is in no filter, and its own holds every key
    /// ([`ChainFilter::ALL`]), so that a lookup reaching it searches its table: the delta
    /// rebased on the snapshot at a thousand members holds up to 250 keys, which would set
    /// most of the 256 bits of every filter above it and send nearly every lookup down the
    /// chain.
    above: ChainFilter,
    /// The digest of the whole state, moved on from the parent's by the keys that changed.
    digest: StateDigest,
}

impl StateGroup {
    /// The `skip_to` of a snapshot, which has none.
    const NO_SKIP: StateGroupId = StateGroupId(NonZeroU32::MAX);

    fn snapshot_of(delta: HeldDelta, digest: StateDigest) -> StateGroup {
        StateGroup {
            parent: None,
            delta,
            chain_len: 0,
            skip_to: StateGroup::NO_SKIP,
            above: ChainFilter::default(),
            digest,
        }
    }

    fn digest_of(state: &StateMap) -> StateDigest {
        StateDigest::of(state.iter().map(|((t, k), id)| (t.as_str(), k.as_str(), id.as_str())))
    }
}

/// A group's entries: its own, or shared with other servers ([`SharedSnapshots`]), as
/// every group's are in a store that shares snapshots.
#[derive(Clone, Debug)]
enum HeldDelta {
    /// Boxed, so that a group's entries take two words (a pointer and the variant) either
    /// way, rather than a [`Delta`]'s 40 bytes inline: a store that shares snapshots holds
    /// every delta in the pool.
    Own(Box<Delta>),
    Shared(Arc<Delta>),
}

impl HeldDelta {
    /// The pool's entries, if the group holds those rather than its own.
    fn shared(&self) -> Option<&Arc<Delta>> {
        match self {
            HeldDelta::Own(_) => None,
            HeldDelta::Shared(delta) => Some(delta),
        }
    }
}

impl Deref for HeldDelta {
    type Target = Delta;

    fn deref(&self) -> &Delta {
        match self {
            HeldDelta::Own(delta) => delta,
            HeldDelta::Shared(delta) => delta,
        }
    }
}

impl<'a> IntoIterator for &'a HeldDelta {
    type Item = <&'a Delta as IntoIterator>::Item;
    type IntoIter = <&'a Delta as IntoIterator>::IntoIter;

    fn into_iter(self) -> Self::IntoIter {
        (**self).into_iter()
    }
}

/// `digest` with the entry of `key` moved from `old` to `new` (`None`: absent).
fn moved(
    digest: StateDigest,
    key: &StateKey,
    old: Option<&EventId>,
    new: Option<&EventId>,
) -> StateDigest {
    moved_parts(digest, &key.0, &key.1, old, new)
}

/// [`moved`] for a key given by its parts.
fn moved_parts(
    digest: StateDigest,
    event_type: &str,
    state_key: &str,
    old: Option<&EventId>,
    new: Option<&EventId>,
) -> StateDigest {
    let digest = match old {
        Some(old) => digest.remove(event_type, state_key, old.as_str()),
        None => digest,
    };
    match new {
        Some(new) => digest.add(event_type, state_key, new.as_str()),
        None => digest,
    }
}

/// Entries set by state groups, by key (`None`: removed), borrowed from the groups.
type Entries<'a> = BTreeMap<&'a StateKey, Option<&'a EventId>>;

impl Store {
    /// A stored group (ids are positions: groups are only ever added).
    fn group(&self, id: StateGroupId) -> &StateGroup {
        &self.groups[id.position()]
    }

    /// A snapshot group of `delta`'s entries, state `digest`: the pool's copy when the
    /// store shares snapshots ([`Store::share_snapshots`]).
    fn snapshot(&self, delta: Delta, digest: StateDigest) -> StateGroup {
        StateGroup::snapshot_of(self.held(delta, digest), digest)
    }

    /// The entries of a snapshot or a large delta, of a group of state `digest`: the
    /// pool's copy when the store shares snapshots, else its own.
    fn held(&self, delta: Delta, digest: StateDigest) -> HeldDelta {
        match &self.snapshots {
            Some(pool) => HeldDelta::Shared(pool.share(digest, delta)),
            None => HeldDelta::Own(Box::new(delta)),
        }
    }

    /// The entries of a small delta group: the pool's copy when the store shares
    /// snapshots (servers that accept the same event, or resolve to the same changes,
    /// store the same small deltas), else its own.
    fn held_small(&self, delta: Delta) -> HeldDelta {
        match &self.snapshots {
            Some(pool) => HeldDelta::Shared(pool.share_small(delta)),
            None => HeldDelta::Own(Box::new(delta)),
        }
    }

    /// The entries of a shareable group that [`Store::pooled`] did not find: the pool's
    /// from now on (not asked again), or the group's own without a pool.
    fn held_new(&self, delta: Delta, digest: StateDigest) -> HeldDelta {
        match &self.snapshots {
            Some(pool) => HeldDelta::Shared(pool.hold(digest, delta)),
            None => HeldDelta::Own(Box::new(delta)),
        }
    }

    /// Shares this store's snapshots through `pool` from now on ([`SharedSnapshots`]):
    /// what the store holds and answers is the same, one copy of each state serving the
    /// servers that share the pool.
    pub fn share_snapshots(&mut self, pool: &Arc<SharedSnapshots>) {
        self.snapshots = Some(Arc::clone(pool));
    }

    /// A group of `delta` on `parent`, `chain_len` groups above its snapshot. A large
    /// delta (more than eight keys: a chain rebased on its snapshot, a fetched state or a
    /// resolution's result stored near a group) is the pool's copy when the store shares
    /// snapshots: servers that reach the same state from the same snapshot hold the same
    /// entries (at a thousand servers, 23,442 large deltas held 5,405 distinct entry
    /// lists). The many small ones are shared by their entries ([`Store::held_small`]).
    fn delta_group(
        &self,
        parent: StateGroupId,
        delta: Delta,
        chain_len: u32,
        digest: StateDigest,
    ) -> StateGroup {
        let held = if delta.is_large() { self.held(delta, digest) } else { self.held_small(delta) };
        self.group_on(parent, held, chain_len, digest)
    }

    /// The entries of a small delta group, given borrowed in key order as (type, state
    /// key, event id): the pool's copy when the store shares snapshots and the pool holds
    /// one ([`SharedSnapshots::find_small`]), else the delta `make` builds of them (held by
    /// the pool from now on when the store shares snapshots). Only a delta the pool lacks
    /// costs a copy of its keys.
    fn held_small_of<'a>(
        &self,
        entries: impl ExactSizeIterator<Item = (&'a str, &'a str, Option<&'a EventId>)> + Clone,
        make: impl FnOnce() -> Delta,
    ) -> HeldDelta {
        let Some(pool) = &self.snapshots else { return HeldDelta::Own(Box::new(make())) };
        let hash = content_hash(entries.clone());
        let found = pool.find_small(hash, |held| held.holds_parts(entries.clone()));
        HeldDelta::Shared(found.unwrap_or_else(|| pool.hold_small(hash, make())))
    }

    /// [`Store::held_small_of`] for entries borrowed as a map's or a merge's are.
    fn held_small_of_keys<'a>(
        &self,
        entries: impl ExactSizeIterator<Item = (&'a StateKey, Option<&'a EventId>)> + Clone,
        make: impl FnOnce() -> Delta,
    ) -> HeldDelta {
        self.held_small_of(entries.map(|((t, k), event)| (t.as_str(), k.as_str(), event)), make)
    }

    /// A group of `delta`, held already, on `parent` ([`Store::delta_group`]).
    fn group_on(
        &self,
        parent: StateGroupId,
        delta: HeldDelta,
        chain_len: u32,
        digest: StateDigest,
    ) -> StateGroup {
        let on = self.group(parent);
        let (skip_to, below) = match on.parent {
            Some(_) if !on.delta.is_large() => (on.skip_to, on.above),
            _ => (parent, ChainFilter::default()),
        };
        let above = if delta.is_large() { ChainFilter::ALL } else { below.with(&delta) };
        StateGroup { parent: Some(parent), delta, chain_len, skip_to, above, digest }
    }

    /// The pool's copy of a shareable group's `entries` (borrowed, in key order), if the
    /// store shares snapshots and the pool holds them ([`SharedSnapshots::find`]).
    fn pooled<'a>(
        &self,
        digest: StateDigest,
        entries: impl ExactSizeIterator<Item = (&'a StateKey, Option<&'a EventId>)> + Clone,
    ) -> Option<HeldDelta> {
        let pool = self.snapshots.as_ref()?;
        pool.find(digest, |held| held.holds(entries.clone())).map(HeldDelta::Shared)
    }

    /// The entries the groups `ids` set (ids from the highest down), the highest's winning.
    fn entries_of(&self, ids: &[StateGroupId]) -> Entries<'_> {
        let mut entries = BTreeMap::new();
        for id in ids {
            for (key, event) in &self.group(*id).delta {
                entries.entry(key).or_insert(event.as_ref());
            }
        }
        entries
    }

    /// The entries of `top` set over those the groups `ids` set ([`Store::entries_of`]),
    /// as a list sorted by key. The chain of a group due for a rebase is some thirty
    /// one-key deltas above one large delta (the last rebase), and inserting the large
    /// one's hundreds of keys into a sorted map, comparing string pairs at each step, was
    /// 1.8% of a thousand-server run: here only `top`'s and the other groups' entries are
    /// sorted, and the largest delta, sorted already, is merged in one walk.
    fn sorted_entries_over<'a>(
        &'a self,
        top: &'a BTreeMap<StateKey, Option<EventId>>,
        ids: &[StateGroupId],
    ) -> Vec<(&'a StateKey, Option<&'a EventId>)> {
        let height = |at: usize| at + 1;
        let largest = (0..ids.len()).max_by_key(|&at| self.group(ids[at]).delta.len());
        // The other entries, by key and then by height (`top` at 0, then the groups from
        // the highest), so that the first of each key is the one that wins among them.
        let mut others: Vec<(&StateKey, usize, Option<&EventId>)> =
            top.iter().map(|(key, event)| (key, 0, event.as_ref())).collect();
        for (at, id) in ids.iter().enumerate().filter(|&(at, _)| Some(at) != largest) {
            let delta = self.group(*id).delta.iter();
            others.extend(delta.map(|(key, event)| (key, height(at), event.as_ref())));
        }
        others.sort_unstable_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
        others.dedup_by(|later, first| later.0 == first.0);
        let Some(largest) = largest else {
            return others.into_iter().map(|(key, _, event)| (key, event)).collect();
        };
        let largest_delta = &self.group(ids[largest]).delta;
        let mut entries = Vec::with_capacity(others.len() + largest_delta.len());
        let mut others = others.into_iter().peekable();
        for (key, event) in largest_delta {
            while let Some((k, _, e)) = others.next_if(|&(k, _, _)| k < key) {
                entries.push((k, e));
            }
            match others.next_if(|&(k, _, _)| k == key) {
                Some((k, at, e)) if at < height(largest) => entries.push((k, e)),
                _ => entries.push((key, event.as_ref())),
            }
        }
        entries.extend(others.map(|(k, _, e)| (k, e)));
        entries
    }

    fn push_group(&mut self, group: StateGroup) -> StateGroupId {
        let id = StateGroupId::at(self.groups.len());
        self.groups.push(group);
        id
    }

    /// A group's delta chain: the group, its parent, and so on down to the snapshot it
    /// ends at (the last element). At most [`SNAPSHOT_EVERY`] + 1 groups.
    fn chain_of(&self, group: StateGroupId) -> Vec<StateGroupId> {
        let mut chain = vec![group];
        while let Some(parent) = self.group(*chain.last().expect("not empty")).parent {
            chain.push(parent);
        }
        chain
    }

    /// Stores a state and returns its group, as a delta on `parent` when given.
    pub fn store_state(&mut self, state: &StateMap, parent: Option<StateGroupId>) -> StateGroupId {
        let base = parent.map(|p| (p, self.state(p)));
        self.store_state_over(state, base.as_ref().map(|(p, map)| (*p, map)))
    }

    /// [`Store::store_state`] when the caller holds the parent's state already (`parent`
    /// with its materialised map), so that it is not materialised again.
    pub fn store_state_over(
        &mut self,
        state: &StateMap,
        parent: Option<(StateGroupId, &StateMap)>,
    ) -> StateGroupId {
        let group = match parent {
            Some((parent_id, base)) => {
                debug_assert_eq!(&self.state(parent_id), base);
                let mut delta = BTreeMap::new();
                let mut digest = self.group(parent_id).digest;
                for (key, event) in state {
                    let old = base.get(key);
                    if old != Some(event) {
                        digest = moved(digest, key, old, Some(event));
                        delta.insert(key.clone(), Some(event.clone()));
                    }
                }
                for (key, old) in base {
                    if !state.contains_key(key) {
                        digest = moved(digest, key, Some(old), None);
                        delta.insert(key.clone(), None);
                    }
                }
                let chain_len = self.group(parent_id).chain_len + 1;
                if chain_len < SNAPSHOT_EVERY {
                    self.delta_group(parent_id, delta.into(), chain_len, digest)
                } else {
                    self.rebased_or_snapshot(parent_id, delta, digest)
                }
            }
            None => {
                let entries = state.iter().map(|(k, v)| (k.clone(), Some(v.clone())));
                self.snapshot(Delta::new(entries.collect()), StateGroup::digest_of(state))
            }
        };
        let id = self.push_group(group);
        debug_assert_eq!(&self.state(id), state);
        debug_assert_eq!(self.group(id).digest, StateGroup::digest_of(state));
        id
    }

    /// Stores a state known whole (a `/state_ids` or `/state` answer) as a delta on the
    /// snapshot that group `near`'s chain ends at (`near` is the room's current state, from
    /// which a recent state differs in a few keys), when it differs from that snapshot in
    /// at most a quarter of its entries, as [`Store::rebased_or_snapshot`] allows; as a
    /// snapshot otherwise; the snapshot itself when the state is its state. Each fetched
    /// state was a snapshot, a thousand keys at a thousand servers, fetched some six times
    /// per server in a `big1000` run.
    ///
    /// `state` is the state's entries, `(type, state key, event id)`, sorted by key with
    /// no key twice: borrowed from the events the answer names, so that a state that ends
    /// up a small delta costs no copy of its keys.
    pub fn store_state_near(
        &mut self,
        state: &[(&str, &str, &EventId)],
        near: StateGroupId,
    ) -> StateGroupId {
        debug_assert!(state.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)), "sorted");
        let root_id = *self.chain_of(near).last().expect("a chain holds its group");
        let root = &self.group(root_id).delta;
        let most = root.len() / 4;
        let mut digest = self.group(root_id).digest;
        let mut delta: Vec<(StateKey, Option<EventId>)> = Vec::new();
        let mut set = |delta: &mut Vec<_>, (t, k): (&str, &str), old, new: Option<&EventId>| {
            digest = moved_parts(digest, t, k, old, new);
            delta.push(((t.to_owned(), k.to_owned()), new.cloned()));
        };
        // Both sides sorted by key: one merge walk, given up once the delta is too large.
        let mut wanted = state.iter().map(|&(t, k, id)| ((t, k), id)).peekable();
        for (key, old) in root {
            if delta.len() > most {
                break;
            }
            let key = (key.0.as_str(), key.1.as_str());
            while let Some((new_key, new)) = wanted.next_if(|(new_key, _)| *new_key < key) {
                set(&mut delta, new_key, None, Some(new));
            }
            let new = wanted.next_if(|(new_key, _)| *new_key == key).map(|(_, new)| new);
            if new != old.as_ref() {
                set(&mut delta, key, old.as_ref(), new);
            }
        }
        if delta.len() <= most {
            for (new_key, new) in wanted {
                set(&mut delta, new_key, None, Some(new));
            }
        }
        if delta.is_empty() {
            return root_id;
        }
        let group = if delta.len() <= most {
            self.delta_group(root_id, Delta::new(delta.into()), 1, digest)
        } else {
            let entries =
                state.iter().map(|&(t, k, id)| ((t.to_owned(), k.to_owned()), Some(id.clone())));
            let digest = StateDigest::of(state.iter().map(|&(t, k, id)| (t, k, id.as_str())));
            self.snapshot(Delta::new(entries.collect()), digest)
        };
        let id = self.push_group(group);
        if cfg!(debug_assertions) {
            let map: StateMap = state
                .iter()
                .map(|&(t, k, id)| ((t.to_owned(), k.to_owned()), id.clone()))
                .collect();
            assert_eq!(self.state(id), map);
            assert_eq!(self.group(id).digest, StateGroup::digest_of(&map));
        }
        id
    }

    /// Stores `parent`'s state with one key set: the state after a state event.
    pub fn store_state_with(
        &mut self,
        parent: StateGroupId,
        key: StateKey,
        event: EventId,
    ) -> StateGroupId {
        self.store_state_with_parts(parent, &key.0, &key.1, &event)
    }

    /// [`Store::store_state_with`] with the key given by its parts. Below a rebase, the key
    /// is copied only when the new group's delta is not the pool's already: the servers of
    /// a room each store the same one-entry delta for each state event they accept.
    fn store_state_with_parts(
        &mut self,
        parent: StateGroupId,
        event_type: &str,
        state_key: &str,
        event: &EventId,
    ) -> StateGroupId {
        let old = self.state_get_parts(parent, event_type, state_key);
        let digest =
            moved_parts(self.group(parent).digest, event_type, state_key, old, Some(event));
        let parent_len = self.group(parent).chain_len;
        let key = || (event_type.to_owned(), state_key.to_owned());
        let group = if parent_len + 1 >= SNAPSHOT_EVERY {
            self.rebased_or_snapshot(parent, BTreeMap::from([(key(), Some(event.clone()))]), digest)
        } else {
            let delta = || Delta::new(Box::new([(key(), Some(event.clone()))]));
            let held =
                self.held_small_of([(event_type, state_key, Some(event))].into_iter(), delta);
            self.group_on(parent, held, parent_len + 1, digest)
        };
        let id = self.push_group(group);
        debug_assert_eq!(self.group(id).digest, StateGroup::digest_of(&self.state(id)));
        id
    }

    /// A group whose delta chain would reach [`SNAPSHOT_EVERY`]: `parent`'s state with
    /// `delta` applied, stored as a delta on the snapshot its parent's chain ends at when
    /// that delta is small against the snapshot (at most a quarter of its entries), and as
    /// a full snapshot otherwise. The chain stays short either way (the rebased group is one
    /// step above its snapshot), and a room whose state changes a little at a time keeps
    /// one full copy per many groups instead of one per [`SNAPSHOT_EVERY`]: at a thousand
    /// members, each full copy is a thousand keys. Synapse bounds its delta chains the same
    /// way and keeps full copies rare (`MAX_STATE_DELTA_HOPS` in `synapse/storage/databases/
    /// state/store.py`); the quarter is this project's choice.
    ///
    /// A store that shares snapshots takes a rebase that another store made from the very
    /// same inputs (the pool's entry lists of the chain, and equal entries set over it)
    /// from the pool ([`SharedSnapshots::find_rebase`]): the result is a function of
    /// those inputs, so only the merge is saved. At a thousand servers three rebases in
    /// four had inputs another server's rebase had had, and the merges were 3.7% of the
    /// run.
    fn rebased_or_snapshot(
        &self,
        parent: StateGroupId,
        delta: BTreeMap<StateKey, Option<EventId>>,
        digest: StateDigest,
    ) -> StateGroup {
        let chain = self.chain_of(parent);
        let shared: Option<Vec<&Arc<Delta>>> =
            chain.iter().map(|id| self.group(*id).delta.shared()).collect();
        let (Some(pool), Some(shared)) = (&self.snapshots, shared) else {
            return self.rebase(&chain, &delta, digest);
        };
        let hash = shared::rebase_hash(&shared, &delta);
        if let Some(found) = pool.find_rebase(hash, &shared, &delta) {
            let at = *chain.last().expect("a chain holds its group");
            return match found {
                Rebased::OnSnapshot(held) => self.group_on(at, HeldDelta::Shared(held), 1, digest),
                Rebased::Snapshot(held) => StateGroup::snapshot_of(HeldDelta::Shared(held), digest),
            };
        }
        let group = self.rebase(&chain, &delta, digest);
        if let Some(held) = group.delta.shared() {
            let held = Arc::clone(held);
            let result = if group.parent.is_some() {
                Rebased::OnSnapshot(held)
            } else {
                Rebased::Snapshot(held)
            };
            pool.hold_rebase(hash, &shared, &delta, result);
        }
        group
    }

    /// [`Store::rebased_or_snapshot`] made: `chain` is `parent`'s.
    fn rebase(
        &self,
        chain: &[StateGroupId],
        delta: &BTreeMap<StateKey, Option<EventId>>,
        digest: StateDigest,
    ) -> StateGroup {
        // The entries set above the snapshot, the new delta's and then the highest group's
        // winning: borrowed, so that only what the new group keeps is copied, once.
        let (at, above) = chain.split_last().expect("a chain holds its group");
        // The chain's entries with the new delta's set over them, in key order.
        let mut rebased = self.sorted_entries_over(delta, above);
        let at = *at;
        let root = &self.group(at).delta;
        // Only what differs from the snapshot (whose entries are all present), counting what
        // a new snapshot would hold: the snapshot's entries, plus keys set anew, less keys
        // removed.
        let mut len = root.len();
        rebased.retain(|(key, event)| {
            let old = root.get(&key.0, &key.1).and_then(Option::as_ref);
            match (old, *event) {
                (Some(_), None) => len -= 1,
                (None, Some(_)) => len += 1,
                _ => {}
            }
            old != *event
        });
        if rebased.len() <= root.len() / 4 {
            // A delta that the pool holds is taken from it before anything is copied.
            let make = || {
                let entries = rebased.iter().map(|(key, event)| ((*key).clone(), event.cloned()));
                Delta::new(entries.collect())
            };
            if !Delta::large_at(rebased.len()) {
                let held = self.held_small_of_keys(rebased.iter().copied(), make);
                return self.group_on(at, held, 1, digest);
            }
            if let Some(held) = self.pooled(digest, rebased.iter().copied()) {
                return self.group_on(at, held, 1, digest);
            }
            let held = self.held_new(make(), digest);
            return self.group_on(at, held, 1, digest);
        }
        // A snapshot: the snapshot's entries and the changes merged in key order (both are
        // sorted), removed keys left out; borrowed, so that a snapshot the pool holds is
        // taken from it without copying a key.
        fn keep<'a>(
            kept: &mut Vec<(&'a StateKey, &'a EventId)>,
            key: &'a StateKey,
            event: Option<&'a EventId>,
        ) {
            if let Some(event) = event {
                kept.push((key, event));
            }
        }
        let mut kept = Vec::with_capacity(len);
        let mut changes = rebased.into_iter().peekable();
        for (key, event) in root {
            while let Some((new, event)) = changes.next_if(|(new, _)| *new < key) {
                keep(&mut kept, new, event);
            }
            match changes.next_if(|(changed, _)| *changed == key) {
                Some((_, changed)) => keep(&mut kept, key, changed),
                None => keep(&mut kept, key, event.as_ref()),
            }
        }
        for (new, event) in changes {
            keep(&mut kept, new, event);
        }
        debug_assert_eq!(kept.len(), len);
        if let Some(held) = self.pooled(digest, kept.iter().map(|&(key, event)| (key, Some(event))))
        {
            return StateGroup::snapshot_of(held, digest);
        }
        // Sized exactly: boxing a longer vector shrinks its block in place, which mimalloc
        // does without moving it down to half its size, and snapshots are the large groups.
        let entries: Vec<(StateKey, Option<EventId>)> =
            kept.into_iter().map(|(key, event)| (key.clone(), Some(event.clone()))).collect();
        StateGroup::snapshot_of(self.held_new(Delta::new(entries.into()), digest), digest)
    }

    /// Stores `parent`'s state with `changes` applied (`None` removes a key) and returns its
    /// group; `parent` itself when nothing changes. The delta holds only the entries that
    /// differ, so the cost is that of the changes, not of the state.
    pub fn store_changes(
        &mut self,
        parent: StateGroupId,
        changes: &[(StateKey, Option<EventId>)],
    ) -> StateGroupId {
        // Borrowed until the group is known to need a copy: servers that resolve to the same
        // changes store the same small delta, which the pool holds after the first.
        let mut delta: Entries<'_> = BTreeMap::new();
        let mut digest = self.group(parent).digest;
        for (key, event) in changes {
            let old = self.state_get_parts(parent, &key.0, &key.1);
            if old == event.as_ref() {
                continue;
            }
            digest = moved(digest, key, old, event.as_ref());
            delta.insert(key, event.as_ref());
        }
        if delta.is_empty() {
            return parent;
        }
        let chain_len = self.group(parent).chain_len + 1;
        let owned = |delta: &Entries<'_>| -> BTreeMap<StateKey, Option<EventId>> {
            delta.iter().map(|(key, event)| ((*key).clone(), event.cloned())).collect()
        };
        let group = if chain_len >= SNAPSHOT_EVERY {
            self.rebased_or_snapshot(parent, owned(&delta), digest)
        } else if Delta::large_at(delta.len()) {
            self.delta_group(parent, owned(&delta).into(), chain_len, digest)
        } else {
            let entries = delta.iter().map(|(key, event)| (*key, *event));
            let held = self.held_small_of_keys(entries, || owned(&delta).into());
            self.group_on(parent, held, chain_len, digest)
        };
        let id = self.push_group(group);
        debug_assert_eq!(self.group(id).digest, StateGroup::digest_of(&self.state(id)));
        id
    }

    /// The state after an event stored with a known state before: the state before plus
    /// the event itself for a state event, except for a rejected event, since state is
    /// computed as if a rejected event did not happen (federation-api.md §3).
    pub fn compute_state_after(
        &mut self,
        pdu: &Pdu,
        outcome: &Outcome,
        before: StateGroupId,
    ) -> StateGroupId {
        let Some(state_key) = pdu.state_key() else { return before };
        if outcome.is_rejected() {
            return before;
        }
        let event_type = pdu.event_type();
        if self.state_get_parts(before, event_type, state_key) == Some(pdu.event_id()) {
            return before;
        }
        self.store_state_with_parts(before, event_type, state_key, pdu.event_id())
    }
}

#[cfg(test)]
mod tests;
