//! The state before an event and the resolution of forward extremities: merges of
//! several state groups resolved over the store's delta groups, remembered per server for
//! the last few inputs and shared between servers ([`SharedResolutions`]).

use super::*;
use crate::homeserver::resolutions::Delta;
use crate::matrix::state_digest::StateDigest;

/// How many resolutions [`Homeserver::resolve_groups`] remembers.
const RESOLUTIONS_KEPT: usize = 4;

impl Homeserver {
    /// The state before an event whose prev events all have a known state after them.
    pub(super) fn state_before(
        &mut self,
        rules: &RoomVersionRules,
        pdu: &Pdu,
    ) -> Result<StateGroupId, String> {
        let state_after = |prev: &EventId| {
            self.store
                .event(prev)
                .and_then(|e| e.state_after)
                .ok_or_else(|| format!("no state after prev event {prev}"))
        };
        // Most events have one prev event, whose state after is the state before: asked
        // twice per event received (when it is decided and when it is committed), that
        // case builds no list.
        if let [prev] = pdu.prev_events() {
            return state_after(prev);
        }
        let mut groups: Vec<StateGroupId> = Vec::with_capacity(pdu.prev_events().len());
        for prev in pdu.prev_events() {
            let group = state_after(prev)?;
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        match groups.as_slice() {
            // Only a create event has no prev events (any other is rejected by the auth
            // rules); the state before it is empty.
            [] => Ok(self.store.store_state(&StateMap::new(), None)),
            [one] => Ok(*one),
            [.., last] if self.skips_merge_resolution() => Ok(*last),
            _ => self.resolve_groups(rules, &pdu.room_id_or_derived(), groups),
        }
    }

    /// The resolution of the states of several groups, stored as a group. The last
    /// [`RESOLUTIONS_KEPT`] resolutions are remembered: the state before an event is
    /// resolved when the event is decided and again when it is committed, and the forward
    /// extremities after each commit, which are often the same groups as after the last
    /// one (an event whose state is its parent's replaces it among them). The result
    /// depends only on the groups' states and on the stored events, so it is reused only
    /// while no stored event was replaced or redacted since ([`Store::events_version`]).
    pub(super) fn resolve_groups(
        &mut self,
        rules: &RoomVersionRules,
        room_id: &str,
        mut groups: Vec<StateGroupId>,
    ) -> Result<StateGroupId, String> {
        groups.sort();
        groups.dedup();
        let version = self.store.events_version();
        self.last_resolutions.retain(|last| last.events_version == version);
        if let Some(last) = self.last_resolutions.iter().find(|last| last.groups == groups) {
            return Ok(last.result);
        }
        let (closest, changes) = self.resolution(rules, room_id, &groups)?;
        #[cfg(debug_assertions)]
        {
            let events = StoreEvents(&self.store, room_id);
            let maps: Vec<StateMap> = groups.iter().map(|g| self.store.state(*g)).collect();
            let full = state_res::resolve(rules, &maps, &events, ResolveOptions::default())
                .expect("the overlaid resolution succeeded");
            let mut state = self.store.state(groups[closest]);
            for (key, event) in changes.iter() {
                match event {
                    Some(event) => state.insert(key.clone(), event.clone()),
                    None => state.remove(key),
                };
            }
            assert_eq!(state, full.state, "overlaid (or shared) and full resolution agree");
        }
        let result = self.store.store_changes(groups[closest], &changes);
        if self.last_resolutions.len() == RESOLUTIONS_KEPT {
            self.last_resolutions.pop_front();
        }
        self.last_resolutions.push_back(LastResolution { events_version: version, groups, result });
        Ok(result)
    }

    /// The resolution of the states of `groups` (sorted, distinct, at least two) as changes
    /// to the one of them it changes least (its position in `groups`; the first such), so
    /// that the stored delta is the resolution's real difference (a few keys), not that
    /// from the oldest input. The changes are only those that change that input: storing
    /// them reads no entry of the others (with hundreds of inputs, reading the parent's
    /// entry under each change of any input was 5% of a 500-server run).
    ///
    /// Taken from the resolutions shared with other servers when one of the same states is
    /// there and this store reads every event it read as the recording server's did;
    /// otherwise computed, and shared when this server shares resolutions. Both ends need
    /// the room's auth chains whole in the index ([`SharedResolutions`]). A shared
    /// resolution holds the changes every input state takes to the resolved state and,
    /// per input state, which of them change it: both depend only on the states, so a
    /// server that takes one picks the same parent and stores the same delta as it would
    /// have from its own resolution.
    fn resolution(
        &mut self,
        rules: &RoomVersionRules,
        room_id: &str,
        groups: &[StateGroupId],
    ) -> Result<(usize, Delta), String> {
        let options = ResolveOptions::default();
        let resolutions = self.resolutions.clone();
        let shared = resolutions.as_ref().filter(|_| self.store.room_fully_indexed(room_id));
        let digests: Vec<StateDigest> =
            groups.iter().map(|&g| self.store.state_digest(g)).collect();
        let key = shared.map(|_| SharedResolutions::key(rules.version, digests.clone()));
        if let (Some(shared), Some(key)) = (shared, &key) {
            let events = StoreEvents(&self.store, room_id);
            let reads_same = |reads: &[(EventId, Read)]| {
                reads.iter().all(|(id, read)| {
                    let local = self.store.original_pdu(id).map(|pdu| (pdu, events.rejection(id)));
                    read.matches(local)
                })
            };
            if let Some(recorded) = shared.find(key, reads_same) {
                let closest = (0..groups.len())
                    .min_by_key(|&at| recorded.differences_from(digests[at]))
                    .expect("at least two groups");
                let changes = recorded.changes_to(digests[closest]).expect("an input's digest");
                return Ok((closest, changes));
            }
        }
        // Resolved here: the index first takes the events that waited for it.
        self.store.index_waiting(room_id);
        let events = StoreEvents(&self.store, room_id);
        // Only the keys set above the groups' snapshots (and where those differ) are
        // compared and stored, not each group's whole state.
        let overlaid = self.store.overlaid(groups);
        let reading = ReadingEvents { events, read: RefCell::new(Vec::new()) };
        let resolved = if shared.is_some() {
            let admitted = state_res::admitted_overlaid(rules, &overlaid, &reading, options);
            state_res::overlaid_changes(&overlaid, &admitted.map_err(|e| e.to_string())?)
        } else {
            let admitted = state_res::admitted_overlaid(rules, &overlaid, &reading.events, options);
            state_res::overlaid_changes(&overlaid, &admitted.map_err(|e| e.to_string())?)
        };
        // Each change's place among the overlay keys (both are sorted by key: one merge
        // walk), rather than a search by `(String, String)` key once per group: with
        // hundreds of forward extremities and hundreds of changes (a thousand servers
        // joining at once), those searches were a fifth of the run. Outside the overlay
        // keys a change names a key the base and every set lack.
        let mut at = 0;
        let places: Vec<Option<usize>> = resolved
            .changes
            .iter()
            .map(|(key, _)| {
                while at < overlaid.keys.len() && overlaid.keys[at] < key {
                    at += 1;
                }
                (at < overlaid.keys.len() && overlaid.keys[at] == key).then_some(at)
            })
            .collect();
        // The changes hold every overlay key, so they apply to any input group.
        let differs = |set: &[Option<&EventId>], place: Option<usize>, event: &Option<EventId>| {
            place.and_then(|at| set[at]) != event.as_ref()
        };
        // Per input, the positions of the changes that change it.
        let changing_each: Vec<Vec<usize>> = overlaid
            .sets
            .iter()
            .map(|set| {
                let changed = places.iter().zip(&resolved.changes).enumerate();
                changed
                    .filter(|(_, (place, (_, event)))| differs(set, **place, event))
                    .map(|(at, _)| at)
                    .collect()
            })
            .collect();
        let closest = (0..groups.len())
            .min_by_key(|&at| changing_each[at].len())
            .expect("at least two groups");
        if let (Some(shared), Some(key)) = (shared, key) {
            // For others, only the changes that change some input: the rest are the
            // entries every input already holds.
            let mut changing: Vec<usize> = changing_each.iter().flatten().copied().collect();
            changing.sort_unstable();
            changing.dedup();
            let changes = changing.iter().map(|&at| resolved.changes[at].clone()).collect();
            let position = |at: &usize| {
                let position = changing.binary_search(at).expect("listed among the changing");
                u32::try_from(position).expect("fewer changes than u32::MAX")
            };
            let mut differences: Vec<(StateDigest, Vec<u32>)> = digests
                .iter()
                .zip(&changing_each)
                .map(|(digest, each)| (*digest, each.iter().map(position).collect()))
                .collect();
            differences.sort_unstable();
            differences.dedup();
            let reads = reading.reads();
            shared.record(key, Recorded { reads, changes: Arc::new(changes), differences });
        }
        // The delta from the closest input: the changes that change it.
        let to_closest = changing_each[closest].iter().map(|&at| resolved.changes[at].clone());
        Ok((closest, to_closest.collect()))
    }

    /// Whether the test-only [`PlantedBug::SkipMergeResolution`] is planted here.
    pub(super) fn skips_merge_resolution(&self) -> bool {
        matches!(&self.config.planted_bug,
            Some(PlantedBug::SkipMergeResolution { server }) if *server == self.name)
    }

    pub(super) fn resolve_extremities(
        &mut self,
        room_id: &str,
        rules: &RoomVersionRules,
    ) -> Option<StateGroupId> {
        let room = self.store.room(room_id)?;
        let mut groups: Vec<StateGroupId> = room
            .forward_extremities
            .iter()
            .filter_map(|id| self.store.event(id).and_then(|e| e.state_after))
            .collect();
        groups.sort();
        groups.dedup();
        match groups.as_slice() {
            [] => None,
            [one] => Some(*one),
            [.., last] if self.skips_merge_resolution() => Some(*last),
            _ => self.resolve_groups(rules, room_id, groups).ok(),
        }
    }
}

/// A resolution and what it was made from: the sorted input groups, at a version of the
/// stored events.
#[derive(Debug)]
pub(super) struct LastResolution {
    events_version: u64,
    groups: Vec<StateGroupId>,
    result: StateGroupId,
}

/// The store as state resolution reads it: events as they were before any redaction was
/// applied, as Synapse's `StateResolutionStore.get_events` reads them
/// (`redact_behaviour=EventRedactBehaviour.as_is`, synapse/state/__init__.py). Auth checks
/// of single events read the stored (possibly redacted) copies instead ([`GroupView`]).
/// It hands resolution the room's auth-chain index, which the store keeps as events come.
struct StoreEvents<'a>(&'a Store, &'a str);

impl EventStore for StoreEvents<'_> {
    fn get(&self, event_id: &EventId) -> Option<&Pdu> {
        self.0.original_pdu(event_id).map(|pdu| &**pdu)
    }

    fn rejection(&self, event_id: &EventId) -> Option<RejectionKind> {
        self.0.event(event_id)?.decision.rejection()
    }

    fn auth_chain_index(&self) -> Option<&AuthChainIndex> {
        self.0.auth_chain_index(self.1)
    }
}

/// [`StoreEvents`] noting the id of every event a resolution reads, so that what it read
/// can be recorded with it ([`SharedResolutions`]).
struct ReadingEvents<'a> {
    events: StoreEvents<'a>,
    read: RefCell<Vec<EventId>>,
}

impl ReadingEvents<'_> {
    /// What was read of each event, by id (sorted, distinct).
    fn reads(self) -> Vec<(EventId, Read)> {
        let mut ids = self.read.into_inner();
        ids.sort_unstable();
        ids.dedup();
        let store = self.events.0;
        ids.into_iter()
            .map(|id| {
                let read = match store.original_pdu(&id) {
                    None => Read::Missing,
                    Some(pdu) => {
                        Read::Found { pdu: Arc::clone(pdu), rejection: self.events.rejection(&id) }
                    }
                };
                (id, read)
            })
            .collect()
    }
}

impl EventStore for ReadingEvents<'_> {
    fn get(&self, event_id: &EventId) -> Option<&Pdu> {
        self.read.borrow_mut().push(event_id.clone());
        self.events.get(event_id)
    }

    fn rejection(&self, event_id: &EventId) -> Option<RejectionKind> {
        self.read.borrow_mut().push(event_id.clone());
        self.events.rejection(event_id)
    }

    fn get_with_rejection(&self, event_id: &EventId) -> Option<(&Pdu, Option<RejectionKind>)> {
        self.read.borrow_mut().push(event_id.clone());
        self.events.get_with_rejection(event_id)
    }

    fn get_by_node(&self, node: NodeId) -> Option<(&Pdu, Option<RejectionKind>)> {
        let found = self.events.get_by_node(node)?;
        self.read.borrow_mut().push(found.0.event_id().clone());
        Some(found)
    }

    fn auth_chain_index(&self) -> Option<&AuthChainIndex> {
        self.events.auth_chain_index()
    }
}
