//! The chain-cover [`AuthChainIndex`] and how it is built: events are added one by one
//! once their auth events are indexed, or by a depth-first walk from some roots; each event
//! is placed on a chain and given its reach (module docs of `dag`).

use crate::matrix::dag::{DagError, EventStore, IndexError, auth_event_ids};
use crate::matrix::ids::{EventId, EventIdMap, LookupMap};
use crate::matrix::pdu::Pdu;
use crate::matrix::room_version::RoomVersionRules;

/// A node of an [`AuthChainIndex`]: dense, in the order events were added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub(super) u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An interned (`type`, `state_key`) of an [`AuthChainIndex`]: dense, below
/// [`AuthChainIndex::state_key_count`], so per-key data can live in a `Vec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateKeyId(u32);

impl StateKeyId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A set of events closed under "is in the auth chain of", in compressed form: for each
/// chain, the highest sequence number in the set (the set holds that chain's prefix).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainSet {
    /// (chain, highest sequence number ≥ 1), sorted by chain, one entry per chain.
    pub(super) entries: Vec<(u32, u32)>,
}

impl ChainSet {
    pub(super) fn from_unsorted(mut entries: Vec<(u32, u32)>) -> ChainSet {
        // Sorted by (chain, seq): the last entry of each chain run is its maximum.
        entries.sort_unstable();
        entries.reverse();
        entries.dedup_by_key(|entry| entry.0);
        entries.reverse();
        assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        ChainSet { entries }
    }

    /// The union of two sets (per chain, the higher prefix). Linear.
    pub fn union(&self, other: &ChainSet) -> ChainSet {
        let mut entries = Vec::with_capacity(self.entries.len() + other.entries.len());
        union_into(&mut entries, &self.entries, &other.entries);
        ChainSet { entries }
    }

    pub(super) fn highest(&self, chain: u32) -> u32 {
        match self.entries.binary_search_by_key(&chain, |entry| entry.0) {
            Ok(at) => self.entries[at].1,
            Err(_) => 0,
        }
    }
}

/// Appends to `out` the union of two reach lists sorted by chain with one entry per chain
/// (per chain, the higher sequence number), itself sorted by chain. Linear in the inputs.
fn union_into(out: &mut Vec<(u32, u32)>, a: &[(u32, u32)], b: &[(u32, u32)]) {
    let start = out.len();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((a[i].0, a[i].1.max(b[j].1)));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    debug_assert!(out[start..].windows(2).all(|w| w[0].0 < w[1].0));
}

/// [`Node::base`] of a node that stores its whole reach.
pub(super) const NO_BASE: u32 = u32::MAX;

/// The reach fields of a [`Node`], as `AuthChainIndex::reach_of_new` computes them.
struct StoredReach {
    list: Box<[(u32, u32)]>,
    base: u32,
    level: u32,
    len: u32,
}

#[derive(Clone)]
pub(super) struct Node {
    pub(super) event_id: EventId,
    pub(super) chain: u32,
    /// 1-based position on `chain`.
    pub(super) seq: u32,
    /// Interned (`type`, `state_key`), `None` for a non-state event.
    pub(super) state_key: Option<u32>,
    /// Inclusive reach (for every chain holding an event of this event's auth chain or the
    /// event itself, the highest sequence number reached), stored as a difference: the
    /// entries that exceed the reach of `base`, an event of its auth chain, sorted by chain;
    /// with no base, the whole reach. The whole reach is the per-chain maximum of the lists
    /// on the path to a whole list ([`AuthChainIndex::reach_lists`]).
    pub(super) reach: Box<[(u32, u32)]>,
    /// The node whose reach `reach` extends, or [`NO_BASE`].
    pub(super) base: u32,
    /// Position on the sequence of widest auth events that led here, counted from the
    /// last whole list (0: `reach` is whole); `base` is the node at `level` with its lowest
    /// set bit cleared, so a node's lists number `level.count_ones()` + 1.
    pub(super) level: u32,
    /// Entries of the whole reach (the number of chains it touches).
    pub(super) reach_len: u32,
    /// The auth events it was added with, in listed order, without repeats.
    pub(super) auth_nodes: Box<[NodeId]>,
    /// `Pending` only while [`AuthChainIndex::extend`] walks towards its auth events.
    pub(super) status: NodeStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NodeStatus {
    /// Visited, its auth events not all indexed yet (the other fields are placeholders).
    Pending,
    /// Some event of its auth chain is missing; it cannot be indexed.
    Broken,
    /// Indexed.
    Done,
}

/// Chain-cover index of auth chains (module docs).
///
/// Costs, with r the size of an event's reach (the number of chains its auth chain
/// touches; a handful in small rooms, hundreds in rooms of many members, bounded by the
/// number of chains) and p ≤ 33 the lists its reach is stored in (`Node::level`):
/// * adding an event: one id lookup per auth edge plus one pass over its auth events'
///   lists; memory: the entries its reach gains over its base's, at most r / 2, or r;
/// * "is A in the auth chain of B": O(p log r);
/// * auth chain of a set, auth difference of k sets: O(R log R) over the sets' total stored
///   size R (each base read once when the sets are large), plus the size of the answer —
///   never a walk of the chains;
/// * conflicted state subgraph: a binary search per chain the conflicted events reach.
#[derive(Clone)]
pub struct AuthChainIndex {
    /// Whether events were added with the v12 implicit create auth event.
    implicit_create: bool,
    /// Looked up only, never iterated.
    by_event_id: EventIdMap<NodeId>,
    pub(super) nodes: Vec<Node>,
    /// chain → its events in sequence order (sequence number s at index s − 1).
    pub(super) chains: Vec<Vec<NodeId>>,
    /// Interned (`type`, `state_key`) pairs: type → state key → id.
    state_keys: LookupMap<String, LookupMap<String, u32>>,
    state_key_count: u32,
    /// Per chain, a highest sequence number while `reach_of_new` runs; all zero
    /// between calls.
    scratch: Vec<u32>,
}

/// A summary, not every node: a store that keeps an index prints it with its events.
impl std::fmt::Debug for AuthChainIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthChainIndex")
            .field("events", &self.nodes.len())
            .field("chains", &self.chains.len())
            .finish()
    }
}

impl AuthChainIndex {
    /// Most events one index holds.
    pub const EVENTS_MAX: u64 = u32::MAX as u64 - 1;

    /// An empty index for rooms with these rules (whose auth edges follow
    /// [`auth_event_ids`]).
    pub fn new(rules: &RoomVersionRules) -> AuthChainIndex {
        AuthChainIndex {
            implicit_create: rules.room_id_is_create_event_hash,
            by_event_id: EventIdMap::default(),
            nodes: Vec::new(),
            chains: Vec::new(),
            state_keys: LookupMap::new(),
            state_key_count: 0,
            scratch: Vec::new(),
        }
    }

    /// An index of every event reachable from `roots` over auth edges.
    pub fn build<S: EventStore + ?Sized>(
        store: &S,
        rules: &RoomVersionRules,
        roots: &[EventId],
    ) -> Result<AuthChainIndex, DagError> {
        let mut index = AuthChainIndex::new(rules);
        index.extend(store, rules, roots)?;
        Ok(index)
    }

    /// [`AuthChainIndex::build`], also returning the indexed events by node.
    pub fn build_with_events<'s, S: EventStore + ?Sized>(
        store: &'s S,
        rules: &RoomVersionRules,
        roots: &[EventId],
    ) -> Result<(AuthChainIndex, Vec<&'s Pdu>), DagError> {
        let mut index = AuthChainIndex::new(rules);
        let mut by_node = Vec::new();
        index.index_reachable(store, rules, roots, &mut by_node)?;
        assert_eq!(by_node.len(), index.len());
        Ok((index, by_node))
    }

    /// Adds every event reachable from `roots` that is not indexed yet. On error nothing
    /// is added.
    pub fn extend<S: EventStore + ?Sized>(
        &mut self,
        store: &S,
        rules: &RoomVersionRules,
        roots: &[EventId],
    ) -> Result<(), DagError> {
        self.index_reachable(store, rules, roots, &mut Vec::new())
    }

    /// Depth-first from `roots` over auth edges, indexing every event not indexed yet once
    /// its auth events are (one id lookup per edge: a node is created on first visit and
    /// finished on the way back). `added` receives the new events by node, starting at
    /// the node count on entry. Fails naming every missing event, or the first cycle; then
    /// nothing is added.
    fn index_reachable<'s, S: EventStore + ?Sized>(
        &mut self,
        store: &'s S,
        rules: &RoomVersionRules,
        roots: &[EventId],
        added: &mut Vec<&'s Pdu>,
    ) -> Result<(), DagError> {
        assert!(self.matches_rules(rules), "index built for other room-version rules");
        let (node_count, chain_count) = (self.nodes.len(), self.chains.len());
        let added_count = added.len();
        let mut walk = IndexWalk { store, rules, missing: Vec::new(), stack: Vec::new(), added };
        let mut result = Ok(());
        for root in roots {
            if self.contains(root) {
                continue;
            }
            if let Err(cycle) = walk.index_from(self, root) {
                result = Err(cycle);
                break;
            }
        }
        let IndexWalk { mut missing, added, .. } = walk;
        if result.is_ok() && self.nodes.len() as u64 >= Self::EVENTS_MAX {
            result = Err(DagError::IndexFull(Self::EVENTS_MAX));
        }
        if result.is_ok() && !missing.is_empty() {
            missing.sort();
            missing.dedup();
            result = Err(DagError::MissingEvents(missing));
        }
        if result.is_err() {
            self.truncate(node_count, chain_count);
            added.truncate(added_count);
        }
        assert!(self.nodes.iter().skip(node_count).all(|n| n.status == NodeStatus::Done));
        result
    }

    /// Whether this index follows the auth edges these rules define.
    pub fn matches_rules(&self, rules: &RoomVersionRules) -> bool {
        self.implicit_create == rules.room_id_is_create_event_hash
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn contains(&self, event_id: &EventId) -> bool {
        self.by_event_id.contains_key(event_id)
    }

    pub fn node(&self, event_id: &EventId) -> Option<NodeId> {
        self.by_event_id.get(event_id).copied()
    }

    pub fn event_id(&self, node: NodeId) -> &EventId {
        &self.nodes[node.index()].event_id
    }

    /// The auth events `node` was added with, in listed order, without repeats.
    pub fn auth_nodes(&self, node: NodeId) -> &[NodeId] {
        &self.nodes[node.index()].auth_nodes
    }

    /// The interned (`type`, `state_key`) of a node's event, `None` for a non-state event.
    pub fn state_key_id(&self, node: NodeId) -> Option<StateKeyId> {
        self.nodes[node.index()].state_key.map(StateKeyId)
    }

    /// The id of (`type`, `state_key`) if it was interned, i.e. if some event with that
    /// key was ever added. `None` means no indexed event has the key.
    pub fn find_state_key(&self, event_type: &str, state_key: &str) -> Option<StateKeyId> {
        let id = self.state_keys.get(event_type).and_then(|keys| keys.get(state_key));
        id.copied().map(StateKeyId)
    }

    /// Every [`StateKeyId`] of this index is below this.
    pub fn state_key_count(&self) -> usize {
        self.state_key_count as usize
    }

    /// Adds a PDU whose auth events ([`auth_event_ids`]) are all indexed.
    pub fn add_pdu(&mut self, rules: &RoomVersionRules, pdu: &Pdu) -> Result<NodeId, IndexError> {
        assert!(self.matches_rules(rules), "index built for other room-version rules");
        let state_key = pdu.state_key().map(|key| (pdu.event_type(), key));
        self.add(pdu.event_id(), state_key, &auth_event_ids(rules, pdu))
    }

    /// Adds an event given its (`type`, `state_key`) (`None` for a non-state event) and
    /// the auth events to follow, all of which must be indexed already. Adding an event
    /// again returns its node and changes nothing.
    pub fn add(
        &mut self,
        event_id: &EventId,
        state_key: Option<(&str, &str)>,
        auth_event_ids: &[EventId],
    ) -> Result<NodeId, IndexError> {
        if let Some(node) = self.node(event_id) {
            assert_eq!(self.nodes[node.index()].status, NodeStatus::Done);
            return Ok(node);
        }
        if self.nodes.len() as u64 >= Self::EVENTS_MAX {
            return Err(IndexError::Full(Self::EVENTS_MAX));
        }
        let mut auth_nodes = Vec::with_capacity(auth_event_ids.len());
        for auth_event_id in auth_event_ids {
            match self.node(auth_event_id) {
                Some(node) if auth_nodes.contains(&node) => {}
                Some(node) => auth_nodes.push(node),
                None => {
                    return Err(IndexError::UnknownAuthEvent {
                        event_id: event_id.clone(),
                        auth_event_id: auth_event_id.clone(),
                    });
                }
            }
        }
        let node = self.push_pending(event_id);
        self.finish(node, state_key, auth_nodes);
        Ok(node)
    }

    /// Adds an event whose auth events are given as indexed nodes (in listed order, without
    /// repeats), without touching the id map: for bulk building into an empty index, which
    /// [`AuthChainIndex::key_all_nodes`] then keys in one pass. The caller vouches that the
    /// event is not indexed yet.
    pub(super) fn push_unkeyed(
        &mut self,
        event_id: &EventId,
        state_key: Option<(&str, &str)>,
        auth_nodes: Vec<NodeId>,
    ) -> NodeId {
        assert!(self.by_event_id.is_empty(), "bulk building starts from an empty index");
        let node = self.push_node(event_id);
        self.finish(node, state_key, auth_nodes);
        node
    }

    /// Builds the id map of an index filled by [`AuthChainIndex::push_unkeyed`], sized
    /// once for all its nodes.
    pub(super) fn key_all_nodes(&mut self) {
        assert!(self.by_event_id.is_empty());
        self.by_event_id.reserve(self.nodes.len());
        for (at, node) in self.nodes.iter().enumerate() {
            let id = NodeId(u32::try_from(at).expect("below EVENTS_MAX"));
            let previous = self.by_event_id.insert(node.event_id.clone(), id);
            assert!(previous.is_none(), "an event is indexed once");
        }
    }

    /// A new pending node for `event_id`, not yet in the id map.
    fn push_node(&mut self, event_id: &EventId) -> NodeId {
        assert!((self.nodes.len() as u64) < Self::EVENTS_MAX);
        let node = NodeId(u32::try_from(self.nodes.len()).expect("checked against EVENTS_MAX"));
        self.nodes.push(Node {
            event_id: event_id.clone(),
            chain: u32::MAX,
            seq: 0,
            state_key: None,
            reach: Box::new([]),
            base: NO_BASE,
            level: 0,
            reach_len: 0,
            auth_nodes: Box::new([]),
            status: NodeStatus::Pending,
        });
        node
    }

    /// A new node for `event_id`, to be finished once its auth events are indexed.
    fn push_pending(&mut self, event_id: &EventId) -> NodeId {
        let node = self.push_node(event_id);
        let previous = self.by_event_id.insert(event_id.clone(), node);
        assert!(previous.is_none(), "an event is indexed once");
        node
    }

    /// Places a pending node on a chain and computes its reach from its (indexed) auth
    /// events.
    fn finish(
        &mut self,
        node_id: NodeId,
        state_key: Option<(&str, &str)>,
        auth_nodes: Vec<NodeId>,
    ) {
        assert_eq!(self.nodes[node_id.index()].status, NodeStatus::Pending);
        assert!(auth_nodes.iter().all(|a| self.nodes[a.index()].status == NodeStatus::Done));
        let state_key = state_key.map(|(event_type, key)| self.intern(event_type, key));

        // A state event continues the chain of an auth event with the same (type,
        // state_key) that is still the last event on its chain (the smallest such node if
        // several); otherwise it starts a chain. Each chain is thus a path of auth edges.
        // Non-state events are never auth events, so continuing a chain with one would only
        // block its state key from extending it; they get a chain of their own.
        let continued = state_key.and_then(|key| {
            let mut candidates = auth_nodes.clone();
            candidates.sort_unstable();
            candidates.into_iter().find(|auth| {
                let node = &self.nodes[auth.index()];
                node.state_key == Some(key)
                    && self.chains[node.chain as usize].len() == node.seq as usize
            })
        });
        let (chain, seq) = match continued {
            Some(previous) => {
                let previous = &self.nodes[previous.index()];
                (previous.chain, previous.seq + 1)
            }
            None => {
                let chain = u32::try_from(self.chains.len()).expect("chains ≤ nodes");
                self.chains.push(Vec::new());
                (chain, 1)
            }
        };
        self.chains[chain as usize].push(node_id);
        assert_eq!(self.chains[chain as usize].len(), seq as usize);

        let reach = self.reach_of_new(chain, seq, &auth_nodes);

        let node = &mut self.nodes[node_id.index()];
        node.chain = chain;
        node.seq = seq;
        node.state_key = state_key;
        (node.reach, node.base, node.level, node.reach_len) =
            (reach.list, reach.base, reach.level, reach.len);
        node.auth_nodes = auth_nodes.into_boxed_slice();
        node.status = NodeStatus::Done;
    }

    /// The reach of a new event at (`chain`, `seq`) with these (indexed) auth events, as
    /// [`Node`] stores it.
    ///
    /// The inclusive reach is the per-chain maximum of the auth events' reach plus the event
    /// itself. Storing it whole cost events × chains: in a room whose hundreds of members
    /// each have a membership chain, every member event copied the power levels' reach
    /// (450 entries per event, 167 MB, for a 46,000-event room). So it is stored as the
    /// entries that exceed the reach of a base, a node of its auth chain (reach only grows
    /// along auth edges). The events that led here, each the auth event reaching most
    /// chains of the next, form a sequence (a room's power levels, one after another);
    /// numbered 1, 2, … from the last whole list, event L takes as base the one at L with
    /// its lowest set bit cleared, as a Fenwick tree does: a difference spans lowbit(L)
    /// steps (log L / 2 on average) and a node's reach is the maximum of popcount(L) + 1
    /// lists. Taking the previous event as base would leave small differences but paths as
    /// long as the sequence; a whole list every k events, differences that pile up towards
    /// the next. When the difference is more than half of the whole reach, the whole reach
    /// is stored instead and the numbering restarts, so no node stores more than it did
    /// whole.
    ///
    /// Work: one pass over the lists of each auth event's base path, against a per-chain
    /// array (`scratch`) holding the base's reach.
    fn reach_of_new(&mut self, chain: u32, seq: u32, auth_nodes: &[NodeId]) -> StoredReach {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(self.chains.len(), 0);
        // The auth event reaching most chains (the first listed of equals), this event's
        // level after it, and the node on its base path the difference is taken from:
        // walking bases from level L - 1 clears its lowest set bits one by one and so
        // passes L with its lowest set bit cleared.
        let mut widest: Option<NodeId> = None;
        for &auth in auth_nodes {
            let wider =
                |w: NodeId| self.nodes[auth.index()].reach_len > self.nodes[w.index()].reach_len;
            if widest.is_none_or(wider) {
                widest = Some(auth);
            }
        }
        let level = widest.map_or(0, |widest| self.nodes[widest.index()].level + 1);
        let base = widest.map(|widest| {
            let target = level & (level - 1);
            let mut base = widest;
            while self.nodes[base.index()].level > target {
                base = NodeId(self.nodes[base.index()].base);
            }
            assert_eq!(self.nodes[base.index()].level, target, "bases clear the lowest set bit");
            base
        });
        let mut base_len = 0;
        if let Some(base) = base {
            base_len = self.nodes[base.index()].reach_len;
            for list in self.reach_lists(base) {
                for &(c, s) in list {
                    let at = &mut scratch[c as usize];
                    *at = (*at).max(s);
                }
            }
        }
        // Chains whose highest number rises above the base's, with repeats; and how many
        // of them the base does not reach at all.
        let mut raised: Vec<u32> = Vec::new();
        let mut new_chains = 0u32;
        let mut raise = |scratch: &mut [u32], list: &[(u32, u32)]| {
            for &(c, s) in list {
                let at = &mut scratch[c as usize];
                if s > *at {
                    new_chains += u32::from(*at == 0);
                    *at = s;
                    raised.push(c);
                }
            }
        };
        for &auth in auth_nodes {
            // The widest event's path down to the base is already counted from the base on.
            let mut at = auth;
            while Some(at) != base {
                let node = &self.nodes[at.index()];
                raise(&mut scratch, &node.reach);
                if node.base == NO_BASE {
                    break;
                }
                at = NodeId(node.base);
            }
        }
        assert!(
            scratch[chain as usize] < seq,
            "nothing in an auth chain lies after the event on its own chain"
        );
        raise(&mut scratch, &[(chain, seq)]);
        raised.sort_unstable();
        raised.dedup();
        let reach_len = base_len + new_chains;
        let stored = match base {
            Some(base) if raised.len() * 2 <= reach_len as usize => {
                let difference = raised.iter().map(|&c| (c, scratch[c as usize])).collect();
                StoredReach { list: difference, base: base.0, level, len: reach_len }
            }
            _ => {
                let mut whole = raised.clone();
                if let Some(base) = base {
                    for list in self.reach_lists(base) {
                        whole.extend(list.iter().map(|&(c, _)| c));
                    }
                    whole.sort_unstable();
                    whole.dedup();
                }
                assert_eq!(whole.len(), reach_len as usize);
                let whole = whole.into_iter().map(|c| (c, scratch[c as usize])).collect();
                StoredReach { list: whole, base: NO_BASE, level: 0, len: reach_len }
            }
        };
        // Back to all zero: every entry set came from the base's lists or was raised.
        if let Some(base) = base {
            for list in self.reach_lists(base) {
                for &(c, _) in list {
                    scratch[c as usize] = 0;
                }
            }
        }
        for &c in &raised {
            scratch[c as usize] = 0;
        }
        self.scratch = scratch;
        stored
    }

    /// The lists whose per-chain maximum is `node`'s inclusive reach: its own, then its
    /// base's, and so on to a whole list; popcount(level) + 1 of them. A list may repeat a
    /// chain of a later one with a higher number.
    pub(super) fn reach_lists(&self, node: NodeId) -> impl Iterator<Item = &[(u32, u32)]> + '_ {
        std::iter::successors(Some(&self.nodes[node.index()]), |node| {
            (node.base != NO_BASE).then(|| &self.nodes[node.base as usize])
        })
        .map(|node| &*node.reach)
    }

    /// Undoes everything added since the index held `node_count` nodes and `chain_count`
    /// chains (interned state keys stay; they are harmless).
    fn truncate(&mut self, node_count: usize, chain_count: usize) {
        for node in self.nodes.drain(node_count..) {
            self.by_event_id.remove(&node.event_id);
        }
        self.chains.truncate(chain_count);
        for chain in &mut self.chains {
            while chain.last().is_some_and(|node| node.index() >= node_count) {
                chain.pop();
            }
        }
    }

    fn intern(&mut self, event_type: &str, state_key: &str) -> u32 {
        // Look up by &str first: allocate only for a new pair.
        if let Some(&id) = self.state_keys.get(event_type).and_then(|keys| keys.get(state_key)) {
            return id;
        }
        let id = self.state_key_count;
        self.state_key_count += 1;
        let keys = self.state_keys.get_or_insert_with(event_type.to_owned(), LookupMap::new);
        keys.insert(state_key.to_owned(), id);
        id
    }
}

/// A frame of [`AuthChainIndex::index_reachable`]'s depth-first walk: an event whose node is
/// pending until its auth events are indexed.
struct IndexFrame<'s> {
    node: NodeId,
    pdu: &'s Pdu,
    auth_event_ids: Vec<EventId>,
    next: usize,
    auth_nodes: Vec<NodeId>,
    broken: bool,
}

/// The state of one [`AuthChainIndex::index_reachable`] walk.
struct IndexWalk<'s, 'r, 'a, S: ?Sized> {
    store: &'s S,
    rules: &'r RoomVersionRules,
    missing: Vec<EventId>,
    stack: Vec<IndexFrame<'s>>,
    added: &'a mut Vec<&'s Pdu>,
}

impl<'s, S: EventStore + ?Sized> IndexWalk<'s, '_, '_, S> {
    /// Visits an event for the first time: a pending node and a frame, or missing.
    fn enter(&mut self, index: &mut AuthChainIndex, id: &EventId) -> bool {
        let Some(pdu) = self.store.get(id) else {
            self.missing.push(id.clone());
            return false;
        };
        assert_eq!(pdu.event_id(), id, "the store returned another event");
        if index.nodes.len() as u64 >= AuthChainIndex::EVENTS_MAX {
            return false;
        }
        let node = index.push_pending(id);
        self.added.push(pdu);
        let auth_event_ids = auth_event_ids(self.rules, pdu);
        self.stack.push(IndexFrame {
            node,
            pdu,
            auth_event_ids,
            next: 0,
            auth_nodes: Vec::new(),
            broken: false,
        });
        true
    }

    /// Indexes everything reachable from `root` that is not indexed yet, each event once
    /// its auth events are; an event with a missing ancestor is marked broken. Fails on the
    /// first cycle, naming it.
    fn index_from(&mut self, index: &mut AuthChainIndex, root: &EventId) -> Result<(), DagError> {
        if !self.enter(index, root) {
            return Ok(());
        }
        while let Some(top) = self.stack.last_mut() {
            if top.next < top.auth_event_ids.len() {
                let auth_id = &top.auth_event_ids[top.next];
                top.next += 1;
                match index.by_event_id.get(auth_id).map(|&n| (n, index.nodes[n.index()].status)) {
                    Some((node, NodeStatus::Done)) => {
                        if !top.auth_nodes.contains(&node) {
                            top.auth_nodes.push(node);
                        }
                    }
                    Some((_, NodeStatus::Broken)) => top.broken = true,
                    Some((node, NodeStatus::Pending)) => {
                        let stack = &self.stack;
                        let start =
                            stack.iter().position(|f| f.node == node).expect("pending = on stack");
                        let cycle = stack[start..].iter().map(|f| f.pdu.event_id().clone());
                        return Err(DagError::Cycle(cycle.collect()));
                    }
                    None => {
                        let auth_id = auth_id.clone();
                        if !self.enter(index, &auth_id) {
                            self.stack.last_mut().expect("the frame above").broken = true;
                        }
                    }
                }
            } else {
                let frame = self.stack.pop().expect("loop condition");
                if frame.broken {
                    index.nodes[frame.node.index()].status = NodeStatus::Broken;
                } else {
                    let state_key = frame.pdu.state_key().map(|key| (frame.pdu.event_type(), key));
                    index.finish(frame.node, state_key, frame.auth_nodes);
                }
                if let Some(parent) = self.stack.last_mut() {
                    if frame.broken {
                        parent.broken = true;
                    } else if !parent.auth_nodes.contains(&frame.node) {
                        parent.auth_nodes.push(frame.node);
                    }
                }
            }
        }
        Ok(())
    }
}
