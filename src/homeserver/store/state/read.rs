//! Reading stored states: a whole state (a map, its ids, or its entries borrowed in key
//! order), one entry through the delta chain, the keys in which two groups differ, and the
//! overlaid form a resolution reads several states in ([`Store::overlaid`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::matrix::EventId;
use crate::matrix::state_digest::StateDigest;
use crate::matrix::state_res::Overlaid;

use super::delta::{Delta, key_hash, snapshot_difference};
use super::{Entries, SNAPSHOT_EVERY, StateGroupId, StateKey, StateMap, Store};

/// A snapshot's entries with `over` set over them (`None` removes a key), sorted by key:
/// one merge walk of the two sorted sides, borrowing every key and id.
fn merged<'a>(snapshot: &'a Delta, over: &Entries<'a>) -> Vec<(&'a StateKey, &'a EventId)> {
    let mut entries = Vec::with_capacity(snapshot.len() + over.len());
    let mut over = over.iter().peekable();
    for (key, event) in snapshot {
        while let Some((&k, &e)) = over.next_if(|&(&k, _)| k < key) {
            entries.extend(e.map(|e| (k, e)));
        }
        match over.next_if(|&(&k, _)| k == key) {
            Some((&k, &e)) => entries.extend(e.map(|e| (k, e))),
            None => entries.extend(event.as_ref().map(|e| (key, e))),
        }
    }
    entries.extend(over.filter_map(|(&k, &e)| Some((k, e?))));
    debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
    entries
}

impl Store {
    /// The digest of a group's state ([`StateDigest`]), kept as groups are stored.
    pub fn state_digest(&self, id: StateGroupId) -> StateDigest {
        self.group(id).digest
    }

    /// The full state of a group.
    pub fn state(&self, id: StateGroupId) -> StateMap {
        let mut chain = Vec::new();
        let mut at = Some(id);
        while let Some(group_id) = at {
            let group = self.group(group_id);
            chain.push(group);
            at = group.parent;
            assert!(chain.len() <= SNAPSHOT_EVERY as usize + 1, "state group chain too long");
        }
        let mut state = StateMap::new();
        for group in chain.iter().rev() {
            for (key, event) in &group.delta {
                match event {
                    Some(event) => state.insert(key.clone(), event.clone()),
                    None => state.remove(key),
                };
            }
        }
        state
    }

    /// Whether two groups hold the same state. Cheap when the groups share an ancestor on
    /// their delta chains (a commit's usual case: one is a delta on the other, or both are
    /// deltas on one resolved state); otherwise both are materialised.
    ///
    /// Groups whose digests differ hold different states (the digest is a function of the
    /// state), and are told apart without reading either: a commit across a resolution
    /// compared two materialised thousand-member states, 4.7% of a 1,000-server run. Equal
    /// digests are not trusted alone (docs/trace.md: they are names, not proofs).
    pub fn same_state(&self, a: StateGroupId, b: StateGroupId) -> bool {
        if a == b {
            return true;
        }
        if self.group(a).digest != self.group(b).digest {
            return false;
        }
        match self.changed_keys(a, b) {
            Some(keys) => keys.iter().all(|key| self.state_get(a, key) == self.state_get(b, key)),
            None => self.state(a) == self.state(b),
        }
    }

    /// A superset of the keys whose entries differ between groups `a` and `b`, when their
    /// delta chains meet: the keys set or removed by the groups on either chain below the
    /// first group both chains hold. `None` when the chains do not meet (the caller then
    /// compares whole states). At most [`SNAPSHOT_EVERY`] groups are walked on each side.
    pub fn changed_keys(&self, a: StateGroupId, b: StateGroupId) -> Option<BTreeSet<&StateKey>> {
        let (chain_a, chain_b) = (self.chain_of(a), self.chain_of(b));
        let on_b: BTreeSet<StateGroupId> = chain_b.iter().copied().collect();
        let meet = *chain_a.iter().find(|id| on_b.contains(id))?;
        let mut keys = BTreeSet::new();
        for chain in [&chain_a, &chain_b] {
            for id in chain.iter().take_while(|id| **id != meet) {
                keys.extend(self.group(*id).delta.keys());
            }
        }
        Some(keys)
    }

    /// The keys set or removed on the way from `ancestor` up to `descendant`, when
    /// `descendant` is `ancestor` or a delta on it through deltas: `ancestor`'s state
    /// differs from `descendant`'s in none but these. `None` otherwise. Allocates nothing,
    /// for the common step of a current state to a state event on top of it, and walks
    /// only as far as `ancestor` would be: a group is one step above its parent
    /// (`chain_len`), so an ancestor is exactly the difference of the two lengths below.
    /// Walking on to the snapshot to find that a group was not an ancestor cost a
    /// thousand servers' residency checks 1.1% of a run.
    pub fn keys_set_since(
        &self,
        ancestor: StateGroupId,
        descendant: StateGroupId,
    ) -> Option<impl Iterator<Item = &StateKey>> {
        let below = self.group(descendant).chain_len;
        let steps = below.checked_sub(self.group(ancestor).chain_len)?;
        let mut at = descendant;
        for _ in 0..steps {
            at = self.group(at).parent.expect("a group above its snapshot has a parent");
        }
        if at != ancestor {
            return None;
        }
        let steps = usize::try_from(steps).expect("chains are short");
        let chain = std::iter::successors(Some(descendant), |&id| self.group(id).parent);
        Some(chain.take(steps).flat_map(|id| self.group(id).delta.keys()))
    }

    /// Whether the keys `picked` selects hold the same entries in `descendant` as in
    /// `ancestor`, as far as the deltas between them tell: the two are one group, or
    /// `descendant` is on top of `ancestor` through deltas none of which sets or removes
    /// such a key ([`Store::keys_set_since`]). `false` otherwise, though the entries may
    /// still be equal. A reader that remembers what it read in one state asks this before
    /// using it in the next.
    pub fn keys_kept_since(
        &self,
        ancestor: StateGroupId,
        descendant: StateGroupId,
        mut picked: impl FnMut(&StateKey) -> bool,
    ) -> bool {
        ancestor == descendant
            || self
                .keys_set_since(ancestor, descendant)
                .is_some_and(|mut keys| !keys.any(&mut picked))
    }

    /// The states of `groups` as one base and overlays, for [`state_res::resolve_overlaid`].
    ///
    /// When the groups' delta chains meet (share a group; then they share everything
    /// below it), the base is the state of the deepest shared group: its snapshot read in
    /// place, merged with the entries set between the snapshot and that group. The overlay
    /// keys are the keys set above it on each chain. Otherwise the base is the first
    /// group's snapshot, the overlay keys every key set above each chain's snapshot, plus,
    /// for a chain ending at another snapshot, the keys in which that snapshot differs from
    /// the base. Each group's entries under the keys are read from its own chain.
    ///
    /// Costs the deltas above the shared group (or the snapshots), plus one merge walk of
    /// the base without a copy of a key or an id, not a copy of each state.
    ///
    /// [`state_res::resolve_overlaid`]: crate::matrix::state_res::resolve_overlaid
    pub fn overlaid(&self, groups: &[StateGroupId]) -> Overlaid<'_> {
        // Each group's chain, from the group down to its snapshot (the last element).
        let chains: Vec<Vec<StateGroupId>> = groups.iter().map(|&g| self.chain_of(g)).collect();
        let Some(first) = chains.first() else {
            return Overlaid { base: Vec::new(), keys: Vec::new(), sets: Vec::new() };
        };
        let meet = first.iter().position(|id| chains[1..].iter().all(|chain| chain.contains(id)));
        let root_id = *first.last().expect("not empty");
        let root = &self.group(root_id).delta;
        // `shared`: what every set holds above the snapshot (below the meet); `above`: each
        // group's own entries.
        let (shared, above, mut keys): (Entries<'_>, Vec<Entries<'_>>, BTreeSet<&StateKey>) =
            match meet {
                Some(at) => {
                    let meet = first[at];
                    let shared = self.entries_of(&first[at..first.len() - 1]);
                    let above: Vec<Entries<'_>> = chains
                        .iter()
                        .map(|chain| {
                            let own = chain.iter().position(|&id| id == meet).expect("meets");
                            self.entries_of(&chain[..own])
                        })
                        .collect();
                    let keys = above.iter().flat_map(|entries| entries.keys()).copied().collect();
                    (shared, above, keys)
                }
                None => {
                    let above: Vec<Entries<'_>> = chains
                        .iter()
                        .map(|chain| self.entries_of(&chain[..chain.len() - 1]))
                        .collect();
                    let mut keys: BTreeSet<&StateKey> =
                        above.iter().flat_map(|entries| entries.keys()).copied().collect();
                    let mut roots: Vec<StateGroupId> =
                        chains.iter().map(|chain| *chain.last().expect("not empty")).collect();
                    roots.sort();
                    roots.dedup();
                    for other in roots.into_iter().filter(|&other| other != root_id) {
                        keys.extend(snapshot_difference(root, &self.group(other).delta));
                    }
                    (BTreeMap::new(), above, keys)
                }
            };
        let keys: Vec<&StateKey> = std::mem::take(&mut keys).into_iter().collect();
        let sets = chains
            .iter()
            .zip(&above)
            .map(|(chain, own)| {
                let snapshot = &self.group(*chain.last().expect("not empty")).delta;
                let entry = |key: &StateKey| match own.get(key).or_else(|| shared.get(key)) {
                    Some(&event) => event,
                    None => snapshot.get(&key.0, &key.1).and_then(Option::as_ref),
                };
                keys.iter().map(|&key| entry(key)).collect()
            })
            .collect();
        let base = merged(root, &shared);
        Overlaid { base, keys, sets }
    }

    /// The event ids of a group's state in key order, as [`Store::state`]'s values, without
    /// copying a key: the entries set above the snapshot, read in place, over the snapshot's
    /// in one merge walk. A server answers `/state_ids` with them, a thousand ids at a
    /// thousand servers.
    pub fn state_ids(&self, id: StateGroupId) -> Vec<EventId> {
        self.state_entries(id).into_iter().map(|(_, id)| id.clone()).collect()
    }

    /// A group's state as [`Store::state`] holds it, in key order, but borrowed: the
    /// entries set above the snapshot over the snapshot's, in one merge walk, without a
    /// sorted map built or a key or an id copied. For a reader that walks a whole state
    /// once (a join's answer, the joined members per server).
    pub fn state_entries(&self, id: StateGroupId) -> Vec<(&StateKey, &EventId)> {
        let chain = self.chain_of(id);
        let (root, above) = chain.split_last().expect("a chain holds its group");
        merged(&self.group(*root).delta, &self.entries_of(above))
    }

    /// One entry of a group's state, without materialising the whole map.
    pub fn state_get(&self, id: StateGroupId, key: &StateKey) -> Option<EventId> {
        self.state_get_parts(id, &key.0, &key.1).cloned()
    }

    /// [`Store::state_get`] by borrowed parts of the key: the auth rules look up a few
    /// keys per event checked, and building a `(String, String)` key for each cost two
    /// allocations.
    pub fn state_get_parts(
        &self,
        id: StateGroupId,
        event_type: &str,
        state_key: &str,
    ) -> Option<&EventId> {
        let hash = key_hash(event_type, state_key);
        let mut at = id;
        loop {
            let group = self.group(at);
            if group.parent.is_some() && !group.above.may_hold(hash) {
                at = group.skip_to;
                continue;
            }
            if let Some(entry) = group.delta.get_hashed(hash, event_type, state_key) {
                return entry.as_ref();
            }
            at = group.parent?;
        }
    }
}
