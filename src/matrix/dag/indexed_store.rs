//! [`IndexedStore`]: a store that owns its events and keeps an [`AuthChainIndex`] of them
//! up to date, built one event at a time or in bulk from events in any order.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::matrix::dag::index::{AuthChainIndex, NodeId};
use crate::matrix::dag::{EventStore, IndexError, RejectionKind, auth_event_ids};
use crate::matrix::ids::{self, EventId};
use crate::matrix::pdu::Pdu;
use crate::matrix::room_version::RoomVersionRules;

/// A store that owns its events and keeps an [`AuthChainIndex`] of them up to date.
pub struct IndexedStore {
    rules: RoomVersionRules,
    events: BTreeMap<EventId, (Arc<Pdu>, Option<RejectionKind>)>,
    index: AuthChainIndex,
    /// The indexed events, by node.
    by_node: Vec<(Arc<Pdu>, Option<RejectionKind>)>,
}

impl IndexedStore {
    pub fn new(rules: &RoomVersionRules) -> IndexedStore {
        IndexedStore {
            rules: *rules,
            events: BTreeMap::new(),
            index: AuthChainIndex::new(rules),
            by_node: Vec::new(),
        }
    }

    /// Stores and indexes an event whose auth events are indexed already. On error
    /// nothing changes.
    pub fn insert(
        &mut self,
        pdu: Arc<Pdu>,
        rejection: Option<RejectionKind>,
    ) -> Result<NodeId, IndexError> {
        let count = self.index.len();
        let node = self.index.add_pdu(&self.rules, &pdu)?;
        if self.index.len() > count {
            assert_eq!(node.index(), self.by_node.len());
            self.by_node.push((pdu.clone(), rejection));
        }
        self.events.entry(pdu.event_id().clone()).or_insert((pdu, rejection));
        Ok(node)
    }

    /// Stores events given in any order (the first of several with one id is kept). Every
    /// event whose auth chain is complete and acyclic is indexed; the others are stored
    /// unindexed (state resolution then reports what is missing or cyclic when it needs
    /// them).
    ///
    /// Built on integer positions: the events are sorted by id once (input already in id
    /// order costs one linear pass), every auth edge is resolved to a position by binary
    /// search, the topological order is found on those positions, and both id maps are
    /// built in bulk from sorted runs. No string-keyed map is grown one insertion at a time.
    pub fn from_events(
        rules: &RoomVersionRules,
        events: impl IntoIterator<Item = (Arc<Pdu>, Option<RejectionKind>)>,
    ) -> IndexedStore {
        let mut entries: Vec<(Arc<Pdu>, Option<RejectionKind>)> = events.into_iter().collect();
        // Stable: of several events with one id, the first given comes first and is kept.
        // Keyed by each id's first bytes first: the same order, with most comparisons
        // ending at a number.
        fn key(id: &EventId) -> (u64, &str) {
            (ids::order_prefix(id.as_str()), id.as_str())
        }
        entries.sort_by(|a, b| key(a.0.event_id()).cmp(&key(b.0.event_id())));
        entries.dedup_by(|later, first| later.0.event_id() == first.0.event_id());
        let count = u32::try_from(entries.len()).expect("fewer than 2^32 events");
        let prefixes: Vec<u64> =
            entries.iter().map(|entry| ids::order_prefix(entry.0.event_id().as_str())).collect();
        let position = |id: &EventId| -> Option<u32> {
            let prefix = ids::order_prefix(id.as_str());
            let start = prefixes.partition_point(|&p| p < prefix);
            let end = start + prefixes[start..].partition_point(|&p| p == prefix);
            let found = entries[start..end]
                .binary_search_by(|entry| entry.0.event_id().as_str().cmp(id.as_str()))
                .ok()?;
            Some(u32::try_from(start + found).expect("below count"))
        };

        // Each event's distinct auth events as positions, in listed order (the order the
        // index keeps), or None if one is not in the store (never indexable).
        let mut auth_start: Vec<u32> = Vec::with_capacity(entries.len() + 1);
        let mut auth_positions: Vec<u32> = Vec::with_capacity(entries.len() * 4);
        let mut complete: Vec<bool> = Vec::with_capacity(entries.len());
        for (pdu, _) in &entries {
            let start = auth_positions.len();
            auth_start.push(u32::try_from(start).expect("fewer than 2^32 auth edges"));
            let mut all_known = true;
            for auth_id in auth_event_ids(rules, pdu) {
                match position(&auth_id) {
                    Some(at) if auth_positions[start..].contains(&at) => {}
                    Some(at) => auth_positions.push(at),
                    None => all_known = false,
                }
            }
            complete.push(all_known);
        }
        auth_start.push(u32::try_from(auth_positions.len()).expect("fewer than 2^32 auth edges"));
        let auth_of =
            |at: usize| &auth_positions[auth_start[at] as usize..auth_start[at + 1] as usize];

        // Kahn's algorithm on positions, in event-id order for a reproducible node
        // numbering: an event is indexed once all its auth events are. Dependents of each
        // event are listed in id order (the order of `entries`).
        let mut dependent_count = vec![0u32; entries.len()];
        for at in 0..entries.len() {
            for &auth in auth_of(at) {
                dependent_count[auth as usize] += 1;
            }
        }
        let mut dependent_start: Vec<u32> = Vec::with_capacity(entries.len() + 1);
        let mut total = 0u32;
        for &n in &dependent_count {
            dependent_start.push(total);
            total += n;
        }
        dependent_start.push(total);
        let mut dependents = vec![0u32; total as usize];
        let mut filled = dependent_start.clone();
        for at in 0..count {
            for &auth in auth_of(at as usize) {
                dependents[filled[auth as usize] as usize] = at;
                filled[auth as usize] += 1;
            }
        }
        let mut waiting: Vec<u32> =
            (0..entries.len()).map(|at| u32::try_from(auth_of(at).len()).expect("small")).collect();
        let mut ready: VecDeque<u32> =
            (0..count).filter(|&at| complete[at as usize] && waiting[at as usize] == 0).collect();
        let mut index = AuthChainIndex::new(rules);
        let mut by_node = Vec::new();
        let mut node_of: Vec<Option<NodeId>> = vec![None; entries.len()];
        let mut auth_nodes: Vec<NodeId> = Vec::new();
        while let Some(at) = ready.pop_front() {
            let at = at as usize;
            let (pdu, rejection) = &entries[at];
            auth_nodes.clear();
            auth_nodes
                .extend(auth_of(at).iter().map(|&a| node_of[a as usize].expect("indexed first")));
            let state_key = pdu.state_key().map(|key| (pdu.event_type(), key));
            let node = index.push_unkeyed(pdu.event_id(), state_key, auth_nodes.clone());
            assert_eq!(node.index(), by_node.len());
            node_of[at] = Some(node);
            by_node.push((pdu.clone(), *rejection));
            let run = dependent_start[at] as usize..dependent_start[at + 1] as usize;
            for &dependent in &dependents[run] {
                let d = dependent as usize;
                waiting[d] -= 1;
                if waiting[d] == 0 && complete[d] {
                    ready.push_back(dependent);
                }
            }
        }
        index.key_all_nodes();
        // `entries` is sorted by id: the map is built in bulk, without searching.
        let events: BTreeMap<EventId, (Arc<Pdu>, Option<RejectionKind>)> =
            entries.into_iter().map(|entry| (entry.0.event_id().clone(), entry)).collect();
        IndexedStore { rules: *rules, events, index, by_node }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn index(&self) -> &AuthChainIndex {
        &self.index
    }
}

impl EventStore for IndexedStore {
    fn get(&self, event_id: &EventId) -> Option<&Pdu> {
        self.events.get(event_id).map(|(pdu, _)| &**pdu)
    }

    fn rejection(&self, event_id: &EventId) -> Option<RejectionKind> {
        self.events.get(event_id).and_then(|(_, rejection)| *rejection)
    }

    fn get_with_rejection(&self, event_id: &EventId) -> Option<(&Pdu, Option<RejectionKind>)> {
        self.events.get(event_id).map(|(pdu, rejection)| (&**pdu, *rejection))
    }

    fn get_by_node(&self, node: NodeId) -> Option<(&Pdu, Option<RejectionKind>)> {
        self.by_node.get(node.index()).map(|(pdu, rejection)| (&**pdu, *rejection))
    }

    fn auth_chain_index(&self) -> Option<&AuthChainIndex> {
        Some(&self.index)
    }
}
