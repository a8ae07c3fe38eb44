//! The auth-event DAG: auth chains, auth difference, the conflicted state subgraph, and the
//! two orderings state resolution sorts by.
//!
//! Spec: "Server-Server API → Room state resolution v2" definitions (digest:
//! spec/state-resolution.md §2, §6, §7). Events are fetched by id through an
//! [`EventStore`], so any store can back these algorithms.
//!
//! Auth chains are answered by an [`AuthChainIndex`], a chain cover in the style of
//! Synapse's: every state event sits on a *chain*, a path of `auth_events` edges between
//! events with the same (`type`, `state_key`), at a sequence number 1, 2, …; every event
//! records, for each chain it can reach, the highest sequence number it reaches. Because a
//! chain is a path, "reaches (c, s)" implies "reaches (c, s′) for all s′ ≤ s", so an auth
//! chain is a union of chain prefixes and an auth difference a union of chain intervals.
//! The index is built incrementally (an event is added after its auth events, either one
//! by one as a store receives them or by a depth-first walk from some roots) and no query
//! walks an auth chain. [`IndexedStore`] keeps one up to date for its events, so state
//! resolution over it never re-walks auth chains. [`auth_chain_bfs`] and friends are the
//! plain reference walks the index is tested against.
//!
//! Since room version 12 the create event is not listed in `auth_events`; following
//! Synapse, every DAG algorithm here treats `$` + `room_id[1..]` as an implicit auth event
//! of every other event ([`auth_event_ids`], digest §6).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::marker::PhantomData;
use std::sync::Arc;

use crate::matrix::ids::EventId;
use crate::matrix::pdu::Pdu;
use crate::matrix::room_version::RoomVersionRules;

/// The two readings of a state set's "full auth chain" (digest §7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthChainReading {
    /// The full auth chain of a state set contains the set's own events too (Synapse and
    /// ruma-state-res; what deployed servers do). mxsim's default.
    #[default]
    Inclusive,
    /// The spec's literal words: the union of the auth chains of the set's events, which
    /// leaves the events themselves out.
    Exclusive,
}

impl AuthChainReading {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthChainReading::Inclusive => "inclusive",
            AuthChainReading::Exclusive => "exclusive",
        }
    }
}

/// Why a stored event was rejected on receipt (digest auth-rules.md §0,
/// state-resolution.md §4). The two kinds are treated differently by state resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectionKind {
    /// It failed the auth rules against the state formed by its own `auth_events`. Such an
    /// event never enters state.
    AuthEvents,
    /// It passed against its auth events but failed against the state before it. State
    /// resolution treats it as a normal event.
    StateBefore,
}

/// Where the DAG algorithms and state resolution read events from.
pub trait EventStore {
    /// The event with this id, if the store has it.
    fn get(&self, event_id: &EventId) -> Option<&Pdu>;

    /// Whether and why the event was rejected on receipt. `None` for accepted (including
    /// soft-failed) events and for events the store does not know.
    fn rejection(&self, _event_id: &EventId) -> Option<RejectionKind> {
        None
    }

    /// [`EventStore::get`] and [`EventStore::rejection`] in one lookup (override when a
    /// store can do better than two).
    fn get_with_rejection(&self, event_id: &EventId) -> Option<(&Pdu, Option<RejectionKind>)> {
        let pdu = self.get(event_id)?;
        Some((pdu, self.rejection(event_id)))
    }

    /// The event at `node` of the store's own [`EventStore::auth_chain_index`], if the
    /// store can find it by node (faster than by id). Stores without an index leave this.
    fn get_by_node(&self, _node: NodeId) -> Option<(&Pdu, Option<RejectionKind>)> {
        None
    }

    /// An auth-chain index the store keeps up to date, if any. State resolution uses it
    /// when it covers every event of the state sets, and otherwise indexes the state
    /// sets' auth chains itself (a one-off walk).
    fn auth_chain_index(&self) -> Option<&AuthChainIndex> {
        None
    }
}

impl EventStore for BTreeMap<EventId, Pdu> {
    fn get(&self, event_id: &EventId) -> Option<&Pdu> {
        BTreeMap::get(self, event_id)
    }
}

impl EventStore for BTreeMap<EventId, Arc<Pdu>> {
    fn get(&self, event_id: &EventId) -> Option<&Pdu> {
        BTreeMap::get(self, event_id).map(|pdu| &**pdu)
    }
}

/// An [`EventStore`] backed by a lookup closure (for stores that hand out references).
pub struct LookupFn<'a, F> {
    lookup: F,
    _events: PhantomData<&'a Pdu>,
}

impl<'a, F: Fn(&EventId) -> Option<&'a Pdu>> LookupFn<'a, F> {
    pub fn new(lookup: F) -> Self {
        LookupFn { lookup, _events: PhantomData }
    }
}

impl<'a, F: Fn(&EventId) -> Option<&'a Pdu>> EventStore for LookupFn<'a, F> {
    fn get(&self, event_id: &EventId) -> Option<&Pdu> {
        (self.lookup)(event_id)
    }
}

/// Why the DAG around some events cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DagError {
    /// These events are referenced (as state or through `auth_events`) but not in the store.
    #[error("missing events: {}", join_ids(.0))]
    MissingEvents(Vec<EventId>),
    /// `auth_events` edges form a cycle through these events, in edge order.
    #[error("auth_events cycle: {}", join_ids(.0))]
    Cycle(Vec<EventId>),
    /// The auth-chain index cannot hold more events.
    #[error("auth-chain index is full ({0} events)")]
    IndexFull(u64),
}

fn join_ids(ids: &[EventId]) -> String {
    let names: Vec<&str> = ids.iter().map(EventId::as_str).collect();
    names.join(", ")
}

/// Why an event cannot be added to an [`AuthChainIndex`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// An auth event has not been added yet (auth events must be added first; an event
    /// listing itself, or any cycle, ends up here too).
    #[error("event {event_id}: auth event {auth_event_id} is not indexed")]
    UnknownAuthEvent { event_id: EventId, auth_event_id: EventId },
    #[error("auth-chain index is full ({0} events)")]
    Full(u64),
}

const CREATE: &str = "m.room.create";
const POWER_LEVELS: &str = "m.room.power_levels";

/// Whether `pdu` is a create event (`m.room.create` with state key "").
pub fn is_create_event(pdu: &Pdu) -> bool {
    pdu.event_type() == CREATE && pdu.state_key() == Some("")
}

/// The implicit auth event of a non-create event since room version 12: the create event
/// `$` + `room_id[1..]` (digest §6). `None` in earlier versions and for the create event.
pub fn implicit_create_event(rules: &RoomVersionRules, pdu: &Pdu) -> Option<EventId> {
    if !rules.room_id_is_create_event_hash || is_create_event(pdu) {
        return None;
    }
    EventId::from_room_id(pdu.room_id()?)
}

/// The auth events the DAG algorithms follow from `pdu`: its `auth_events`, in order,
/// then (since v12) the implicit create event unless it is listed already.
pub fn auth_event_ids(rules: &RoomVersionRules, pdu: &Pdu) -> Vec<EventId> {
    let mut ids = Vec::with_capacity(pdu.auth_events().len() + 1);
    ids.extend(pdu.auth_events().iter().cloned());
    if let Some(create) = implicit_create_event(rules, pdu) {
        if !ids.contains(&create) {
            ids.push(create);
        }
    }
    ids
}

/// An event with its auth events as followed by the DAG algorithms.
pub struct WalkedEvent<'s> {
    pub pdu: &'s Pdu,
    pub auth_event_ids: Vec<EventId>,
}

/// Every event reachable from `roots` over auth edges (roots included), each after all
/// of its auth events. Events for which `skip` is true are neither visited nor returned
/// (callers use it for events they have processed already). Fails naming every missing
/// event, or the first cycle found.
pub fn walk_auth_dag<'s, S: EventStore + ?Sized>(
    store: &'s S,
    rules: &RoomVersionRules,
    roots: &[EventId],
    skip: impl Fn(&EventId) -> bool,
) -> Result<Vec<WalkedEvent<'s>>, DagError> {
    let mut walk =
        Walk { store, rules, marks: BTreeMap::new(), missing: Vec::new(), stack: Vec::new() };
    let mut order: Vec<WalkedEvent<'s>> = Vec::new();
    for root in roots {
        if skip(root) || walk.marks.contains_key(root) {
            continue;
        }
        walk.enter(root);
        while let Some(top) = walk.stack.last_mut() {
            if top.next < top.auth_event_ids.len() {
                let auth_id = top.auth_event_ids[top.next].clone();
                top.next += 1;
                if skip(&auth_id) {
                    continue;
                }
                match walk.marks.get(&auth_id) {
                    Some(Mark::Done | Mark::Missing) => {}
                    Some(Mark::OnStack) => {
                        let stack = &walk.stack;
                        let start = stack
                            .iter()
                            .position(|frame| frame.pdu.event_id() == &auth_id)
                            .expect("an event marked on-stack is on the stack");
                        let cycle = stack[start..].iter().map(|f| f.pdu.event_id().clone());
                        return Err(DagError::Cycle(cycle.collect()));
                    }
                    None => walk.enter(&auth_id),
                }
            } else {
                let frame = walk.stack.pop().expect("loop condition");
                let previous = walk.marks.insert(frame.pdu.event_id().clone(), Mark::Done);
                assert!(previous == Some(Mark::OnStack));
                order.push(WalkedEvent { pdu: frame.pdu, auth_event_ids: frame.auth_event_ids });
            }
        }
    }
    if !walk.missing.is_empty() {
        walk.missing.sort();
        return Err(DagError::MissingEvents(walk.missing));
    }
    assert!(walk.stack.is_empty());
    Ok(order)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    OnStack,
    Done,
    Missing,
}

struct Frame<'s> {
    pdu: &'s Pdu,
    auth_event_ids: Vec<EventId>,
    next: usize,
}

/// The state of [`walk_auth_dag`]'s depth-first search.
struct Walk<'s, 'r, S: ?Sized> {
    store: &'s S,
    rules: &'r RoomVersionRules,
    marks: BTreeMap<EventId, Mark>,
    missing: Vec<EventId>,
    stack: Vec<Frame<'s>>,
}

impl<'s, S: EventStore + ?Sized> Walk<'s, '_, S> {
    /// Visits `id` for the first time: pushes a frame, or records it as missing.
    fn enter(&mut self, id: &EventId) {
        assert!(!self.marks.contains_key(id));
        match self.store.get(id) {
            None => {
                self.marks.insert(id.clone(), Mark::Missing);
                self.missing.push(id.clone());
            }
            Some(pdu) => {
                assert_eq!(pdu.event_id(), id, "the store returned another event");
                self.marks.insert(id.clone(), Mark::OnStack);
                let auth_event_ids = auth_event_ids(self.rules, pdu);
                self.stack.push(Frame { pdu, auth_event_ids, next: 0 });
            }
        }
    }
}

/// A node of an [`AuthChainIndex`]: dense, in the order events were added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(u32);

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
    entries: Vec<(u32, u32)>,
}

impl ChainSet {
    fn from_unsorted(mut entries: Vec<(u32, u32)>) -> ChainSet {
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
        let (a, b) = (&self.entries, &other.entries);
        let mut entries = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                std::cmp::Ordering::Less => {
                    entries.push(a[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    entries.push(b[j]);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    entries.push((a[i].0, a[i].1.max(b[j].1)));
                    i += 1;
                    j += 1;
                }
            }
        }
        entries.extend_from_slice(&a[i..]);
        entries.extend_from_slice(&b[j..]);
        assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        ChainSet { entries }
    }

    fn highest(&self, chain: u32) -> u32 {
        match self.entries.binary_search_by_key(&chain, |entry| entry.0) {
            Ok(at) => self.entries[at].1,
            Err(_) => 0,
        }
    }
}

struct Node {
    event_id: EventId,
    chain: u32,
    /// 1-based position on `chain`.
    seq: u32,
    /// Interned (`type`, `state_key`), `None` for a non-state event.
    state_key: Option<u32>,
    /// Inclusive reach: for every chain holding an event of this event's auth chain or the
    /// event itself, the highest sequence number reached. Sorted by chain.
    reach: Box<[(u32, u32)]>,
    /// The auth events it was added with, in listed order, without repeats.
    auth_nodes: Box<[NodeId]>,
    /// `Pending` only while [`AuthChainIndex::extend`] walks towards its auth events.
    status: NodeStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeStatus {
    /// Visited, its auth events not all indexed yet (the other fields are placeholders).
    Pending,
    /// Some event of its auth chain is missing; it cannot be indexed.
    Broken,
    /// Indexed.
    Done,
}

/// Chain-cover index of auth chains (module docs).
///
/// Costs, with r the size of an event's reach list (the number of chains its auth chain
/// touches; a handful in real rooms, bounded by the number of chains):
/// * adding an event: one id lookup per auth edge plus O(r log r) to merge its auth
///   events' reach lists; memory O(r) per event;
/// * "is A in the auth chain of B": O(log r);
/// * auth chain of a set, auth difference of k sets: O(R log R) over the sets' total reach
///   size R, plus the size of the answer — never a walk of the chains;
/// * conflicted state subgraph: a binary search per chain the conflicted events reach.
pub struct AuthChainIndex {
    /// Whether events were added with the v12 implicit create auth event.
    implicit_create: bool,
    by_event_id: BTreeMap<EventId, NodeId>,
    nodes: Vec<Node>,
    /// chain → its events in sequence order (sequence number s at index s − 1).
    chains: Vec<Vec<NodeId>>,
    /// Interned (`type`, `state_key`) pairs: type → state key → id.
    state_keys: BTreeMap<String, BTreeMap<String, u32>>,
    state_key_count: u32,
}

impl AuthChainIndex {
    /// Most events one index holds.
    pub const EVENTS_MAX: u64 = u32::MAX as u64 - 1;

    /// An empty index for rooms with these rules (whose auth edges follow
    /// [`auth_event_ids`]).
    pub fn new(rules: &RoomVersionRules) -> AuthChainIndex {
        AuthChainIndex {
            implicit_create: rules.room_id_is_create_event_hash,
            by_event_id: BTreeMap::new(),
            nodes: Vec::new(),
            chains: Vec::new(),
            state_keys: BTreeMap::new(),
            state_key_count: 0,
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
        struct Frame<'s> {
            node: NodeId,
            pdu: &'s Pdu,
            auth_event_ids: Vec<EventId>,
            next: usize,
            auth_nodes: Vec<NodeId>,
            broken: bool,
        }
        let (node_count, chain_count) = (self.nodes.len(), self.chains.len());
        let added_count = added.len();
        let mut missing: Vec<EventId> = Vec::new();
        let mut stack: Vec<Frame<'s>> = Vec::new();
        let mut result = Ok(());
        // Visits an event for the first time: a pending node and a frame, or missing.
        let mut enter = |index: &mut Self, id: &EventId, stack: &mut Vec<Frame<'s>>| -> bool {
            let Some(pdu) = store.get(id) else {
                missing.push(id.clone());
                return false;
            };
            assert_eq!(pdu.event_id(), id, "the store returned another event");
            if index.nodes.len() as u64 >= Self::EVENTS_MAX {
                return false;
            }
            let node = index.push_pending(id);
            added.push(pdu);
            let auth_event_ids = auth_event_ids(rules, pdu);
            stack.push(Frame {
                node,
                pdu,
                auth_event_ids,
                next: 0,
                auth_nodes: Vec::new(),
                broken: false,
            });
            true
        };
        'roots: for root in roots {
            if self.contains(root) {
                continue;
            }
            if !enter(self, root, &mut stack) {
                continue;
            }
            while let Some(top) = stack.last_mut() {
                if top.next < top.auth_event_ids.len() {
                    let auth_id = &top.auth_event_ids[top.next];
                    top.next += 1;
                    match self.by_event_id.get(auth_id).map(|&n| (n, self.nodes[n.index()].status))
                    {
                        Some((node, NodeStatus::Done)) => {
                            if !top.auth_nodes.contains(&node) {
                                top.auth_nodes.push(node);
                            }
                        }
                        Some((_, NodeStatus::Broken)) => top.broken = true,
                        Some((node, NodeStatus::Pending)) => {
                            let start = stack
                                .iter()
                                .position(|f| f.node == node)
                                .expect("pending = on stack");
                            let cycle = stack[start..].iter().map(|f| f.pdu.event_id().clone());
                            result = Err(DagError::Cycle(cycle.collect()));
                            break 'roots;
                        }
                        None => {
                            let auth_id = auth_id.clone();
                            if !enter(self, &auth_id, &mut stack) {
                                stack.last_mut().expect("the frame above").broken = true;
                            }
                        }
                    }
                } else {
                    let frame = stack.pop().expect("loop condition");
                    if frame.broken {
                        self.nodes[frame.node.index()].status = NodeStatus::Broken;
                    } else {
                        let state_key =
                            frame.pdu.state_key().map(|key| (frame.pdu.event_type(), key));
                        self.finish(frame.node, state_key, frame.auth_nodes);
                    }
                    if let Some(parent) = stack.last_mut() {
                        if frame.broken {
                            parent.broken = true;
                        } else if !parent.auth_nodes.contains(&frame.node) {
                            parent.auth_nodes.push(frame.node);
                        }
                    }
                }
            }
        }
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
    fn push_unkeyed(
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

    /// Builds the id map of an index filled by [`AuthChainIndex::push_unkeyed`]: one sort
    /// and a bulk build instead of one search and insertion per event.
    fn key_all_nodes(&mut self) {
        assert!(self.by_event_id.is_empty());
        let mut keyed: Vec<(EventId, NodeId)> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(at, node)| {
                (node.event_id.clone(), NodeId(u32::try_from(at).expect("below EVENTS_MAX")))
            })
            .collect();
        keyed.sort_unstable();
        let count = keyed.len();
        keyed.dedup_by(|a, b| a.0 == b.0);
        assert_eq!(keyed.len(), count, "an event is indexed once");
        self.by_event_id = keyed.into_iter().collect();
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

        // Inclusive reach = max over the auth events' inclusive reach, plus this event.
        let mut entries: Vec<(u32, u32)> = auth_nodes
            .iter()
            .flat_map(|auth| self.nodes[auth.index()].reach.iter().copied())
            .collect();
        entries.push((chain, seq));
        let reach = ChainSet::from_unsorted(entries).entries.into_boxed_slice();
        assert_eq!(
            reach.binary_search_by_key(&chain, |entry| entry.0).map(|at| reach[at].1),
            Ok(seq),
            "nothing in an auth chain lies after the event on its own chain"
        );

        let node = &mut self.nodes[node_id.index()];
        node.chain = chain;
        node.seq = seq;
        node.state_key = state_key;
        node.reach = reach;
        node.auth_nodes = auth_nodes.into_boxed_slice();
        node.status = NodeStatus::Done;
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
        let keys = self.state_keys.entry(event_type.to_owned()).or_default();
        keys.insert(state_key.to_owned(), id);
        id
    }

    /// Whether `ancestor` is in the auth chain of `node` (a node is not in its own auth
    /// chain). O(log r).
    pub fn in_auth_chain(&self, node: NodeId, ancestor: NodeId) -> bool {
        if node == ancestor {
            return false;
        }
        let target = &self.nodes[ancestor.index()];
        let reach = &self.nodes[node.index()].reach;
        match reach.binary_search_by_key(&target.chain, |entry| entry.0) {
            Ok(at) => reach[at].1 >= target.seq,
            Err(_) => false,
        }
    }

    /// The union of the auth chains of `nodes` (with `nodes` themselves under the
    /// inclusive reading), compressed. O(R log R), R = total reach size of `nodes`.
    pub fn chain_set(&self, nodes: &[NodeId], reading: AuthChainReading) -> ChainSet {
        let mut entries = Vec::new();
        for node in nodes {
            let node = &self.nodes[node.index()];
            for &(chain, seq) in node.reach.iter() {
                if chain != node.chain || reading == AuthChainReading::Inclusive {
                    entries.push((chain, seq));
                } else if node.seq > 1 {
                    // Exclusive: the event's predecessor on its chain (a direct auth
                    // event) is the highest event of its own chain in its auth chain.
                    entries.push((chain, node.seq - 1));
                }
            }
        }
        ChainSet::from_unsorted(entries)
    }

    /// Whether `node` belongs to `set`. O(log).
    pub fn chain_set_contains(&self, set: &ChainSet, node: NodeId) -> bool {
        let node = &self.nodes[node.index()];
        set.highest(node.chain) >= node.seq
    }

    /// The events of `set`, sorted by node. O(size of the output).
    pub fn expand(&self, set: &ChainSet) -> Vec<NodeId> {
        let mut nodes = Vec::new();
        for &(chain, seq) in &set.entries {
            nodes.extend_from_slice(&self.chains[chain as usize][..seq as usize]);
        }
        nodes.sort_unstable();
        nodes
    }

    /// The union of the auth chains of `nodes` (spec §2 "auth chain"; inclusive reading
    /// adds `nodes` themselves), sorted by node.
    pub fn auth_chain(&self, nodes: &[NodeId], reading: AuthChainReading) -> Vec<NodeId> {
        self.expand(&self.chain_set(nodes, reading))
    }

    /// The auth difference of state sets given as their events' nodes (spec §2): the
    /// events in some but not every set's full auth chain. Sorted by node.
    /// O(k·R log(k·R) + output) for k sets of total reach size R.
    pub fn auth_difference(&self, sets: &[Vec<NodeId>], reading: AuthChainReading) -> Vec<NodeId> {
        self.auth_difference_with_common(&[], sets, reading)
    }

    /// [`AuthChainIndex::auth_difference`] of the sets `common ∪ sets[i]`: events every
    /// set holds (the unconflicted state) are given once instead of once per set.
    pub fn auth_difference_with_common(
        &self,
        common: &[NodeId],
        sets: &[Vec<NodeId>],
        reading: AuthChainReading,
    ) -> Vec<NodeId> {
        // Per set, the full auth chain is a prefix of each chain; the union is the longest
        // prefix and the intersection the shortest (length 0 if a set misses the chain).
        let common = self.chain_set(common, reading);
        let mut tagged: Vec<(u32, u32)> = Vec::new();
        for set in sets {
            tagged.extend(self.chain_set(set, reading).union(&common).entries);
        }
        tagged.sort_unstable();
        let mut nodes = Vec::new();
        let mut at = 0;
        while at < tagged.len() {
            let chain = tagged[at].0;
            let run = tagged[at..].iter().take_while(|entry| entry.0 == chain).count();
            let (lowest, highest) = (tagged[at].1, tagged[at + run - 1].1);
            assert!(run <= sets.len());
            let intersection = if run == sets.len() { lowest } else { 0 };
            nodes.extend_from_slice(
                &self.chains[chain as usize][intersection as usize..highest as usize],
            );
            at += run;
        }
        nodes.sort_unstable();
        nodes
    }

    /// The conflicted state subgraph of v2.1 (spec §2): every event V such that V is
    /// reachable from a conflicted event over ≥ 0 auth edges and some conflicted event is
    /// reachable from V over ≥ 0 auth edges. Sorted by node.
    ///
    /// B ∩ chain c is a prefix (up to b_c); F ∩ chain c is a suffix, because a later event
    /// on a chain reaches everything an earlier one does. So per chain the subgraph is the
    /// interval [f_c, b_c], and f_c is found by binary search. O(C · log L · r log K) for
    /// C chains in B, chains of length ≤ L, reach size r, K conflicted chains.
    pub fn conflicted_subgraph(&self, conflicted: &[NodeId]) -> Vec<NodeId> {
        let backward = self.chain_set(conflicted, AuthChainReading::Inclusive);
        // Per chain, the lowest conflicted event on it: V reaches some conflicted event
        // iff V reaches (c, lowest_c) for some chain c.
        let mut lowest: Vec<(u32, u32)> = conflicted
            .iter()
            .map(|node| (self.nodes[node.index()].chain, self.nodes[node.index()].seq))
            .collect();
        lowest.sort_unstable();
        lowest.dedup_by_key(|entry| entry.0);
        let reaches_conflicted = |node: NodeId| {
            self.nodes[node.index()].reach.iter().any(|&(chain, seq)| {
                match lowest.binary_search_by_key(&chain, |entry| entry.0) {
                    Ok(at) => seq >= lowest[at].1,
                    Err(_) => false,
                }
            })
        };
        let mut nodes = Vec::new();
        for &(chain, highest) in &backward.entries {
            let prefix = &self.chains[chain as usize][..highest as usize];
            let first = prefix.partition_point(|&node| !reaches_conflicted(node));
            nodes.extend_from_slice(&prefix[first..]);
        }
        nodes.sort_unstable();
        for node in conflicted {
            assert!(nodes.binary_search(node).is_ok(), "conflicted events are in the subgraph");
        }
        nodes
    }
}

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
        entries.sort_by(|a, b| a.0.event_id().cmp(b.0.event_id()));
        entries.dedup_by(|later, first| later.0.event_id() == first.0.event_id());
        let count = u32::try_from(entries.len()).expect("fewer than 2^32 events");
        let position = |id: &EventId| -> Option<u32> {
            let found = entries.binary_search_by(|entry| entry.0.event_id().cmp(id)).ok()?;
            Some(u32::try_from(found).expect("below count"))
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

/// Reference walk: the union of the auth chains of `starts` (plus `starts` under the
/// inclusive reading), by breadth-first search over `auth_events_of`. Fails naming every
/// missing event. Used to test [`AuthChainIndex`]; costs the whole auth chain per call.
pub fn auth_chain_bfs(
    auth_events_of: &dyn Fn(&EventId) -> Option<Vec<EventId>>,
    starts: &[EventId],
    reading: AuthChainReading,
) -> Result<BTreeSet<EventId>, DagError> {
    let mut seen: BTreeSet<EventId> = BTreeSet::new();
    let mut missing: BTreeSet<EventId> = BTreeSet::new();
    let mut queue: VecDeque<EventId> = VecDeque::new();
    for start in starts {
        match auth_events_of(start) {
            None => {
                missing.insert(start.clone());
            }
            Some(auth_ids) => queue.extend(auth_ids),
        }
    }
    while let Some(id) = queue.pop_front() {
        if seen.contains(&id) || missing.contains(&id) {
            continue;
        }
        match auth_events_of(&id) {
            None => {
                missing.insert(id);
            }
            Some(auth_ids) => {
                seen.insert(id);
                queue.extend(auth_ids);
            }
        }
    }
    if !missing.is_empty() {
        return Err(DagError::MissingEvents(missing.into_iter().collect()));
    }
    if reading == AuthChainReading::Inclusive {
        seen.extend(starts.iter().cloned());
    }
    Ok(seen)
}

/// Reference: the auth difference of `sets` (spec §2) from one walk per set.
pub fn auth_difference_bfs(
    auth_events_of: &dyn Fn(&EventId) -> Option<Vec<EventId>>,
    sets: &[Vec<EventId>],
    reading: AuthChainReading,
) -> Result<BTreeSet<EventId>, DagError> {
    let mut chains = Vec::with_capacity(sets.len());
    for set in sets {
        chains.push(auth_chain_bfs(auth_events_of, set, reading)?);
    }
    let union: BTreeSet<EventId> = chains.iter().flatten().cloned().collect();
    Ok(union.into_iter().filter(|id| !chains.iter().all(|chain| chain.contains(id))).collect())
}

/// Reference: the conflicted state subgraph (spec §2) as B ∩ F by plain walks.
pub fn conflicted_subgraph_bfs(
    auth_events_of: &dyn Fn(&EventId) -> Option<Vec<EventId>>,
    conflicted: &[EventId],
) -> Result<BTreeSet<EventId>, DagError> {
    let conflicted_set: BTreeSet<&EventId> = conflicted.iter().collect();
    let backward = auth_chain_bfs(auth_events_of, conflicted, AuthChainReading::Inclusive)?;
    let mut subgraph = BTreeSet::new();
    for id in &backward {
        let reach =
            auth_chain_bfs(auth_events_of, std::slice::from_ref(id), AuthChainReading::Inclusive)?;
        if reach.iter().any(|reached| conflicted_set.contains(reached)) {
            subgraph.insert(id.clone());
        }
    }
    Ok(subgraph)
}

/// Reverse topological power ordering (spec §2) of `keys.len()` events: Kahn's algorithm
/// over the auth edges within the set (`auth_edges[i]` = positions of i's auth events that
/// are in the set), always taking the ready event with the smallest key (a min-heap).
/// Returns positions earliest first, or on a cycle the positions that could not be
/// ordered. O(n log n + edges).
///
/// State resolution's key is `(Reverse(sender power level), origin_server_ts, event_id)`;
/// keys must be distinct for the order to be unique (the event id makes them so).
pub fn reverse_topological_power_order<K: Ord>(
    keys: &[K],
    auth_edges: &[Vec<usize>],
) -> Result<Vec<usize>, Vec<usize>> {
    assert_eq!(keys.len(), auth_edges.len());
    let count = keys.len();
    // pending[i] = auth events of i in the set not yet output; dependents = reverse edges.
    let mut pending = vec![0usize; count];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (event, edges) in auth_edges.iter().enumerate() {
        let mut distinct = edges.clone();
        distinct.sort_unstable();
        distinct.dedup();
        for auth in distinct {
            assert!(auth < count, "auth edge out of range");
            pending[event] += 1;
            dependents[auth].push(event);
        }
    }
    let mut ready: BinaryHeap<Reverse<(&K, usize)>> =
        (0..count).filter(|&i| pending[i] == 0).map(|i| Reverse((&keys[i], i))).collect();
    let mut order = Vec::with_capacity(count);
    while let Some(Reverse((_, event))) = ready.pop() {
        order.push(event);
        for &dependent in &dependents[event] {
            pending[dependent] -= 1;
            if pending[dependent] == 0 {
                ready.push(Reverse((&keys[dependent], dependent)));
            }
        }
    }
    if order.len() < count {
        return Err((0..count).filter(|&i| pending[i] > 0).collect());
    }
    assert_eq!(order.len(), count);
    Ok(order)
}

/// The `m.room.power_levels` event (state key "") among `pdu`'s `auth_events` that the
/// store has, the first listed if several.
pub fn power_levels_auth_event<'s, S: EventStore + ?Sized>(
    store: &'s S,
    pdu: &Pdu,
) -> Option<&'s Pdu> {
    pdu.auth_events()
        .iter()
        .filter_map(|id| store.get(id))
        .find(|auth| auth.event_type() == POWER_LEVELS && auth.state_key() == Some(""))
}

/// The mainline of a power-levels event P (spec §2): [P₀ = P, P₁, …, Pₙ], each the
/// power-levels event in the previous one's `auth_events`, newest first.
pub fn mainline<'s, S: EventStore + ?Sized>(
    store: &'s S,
    power_levels: &'s Pdu,
) -> Result<Vec<&'s Pdu>, DagError> {
    let mut line = vec![power_levels];
    let mut seen = BTreeSet::from([power_levels.event_id()]);
    while let Some(next) = power_levels_auth_event(store, line[line.len() - 1]) {
        if !seen.insert(next.event_id()) {
            let cycle = line.iter().map(|pdu| pdu.event_id().clone()).collect();
            return Err(DagError::Cycle(cycle));
        }
        line.push(next);
    }
    assert_eq!(line.len(), seen.len());
    Ok(line)
}

/// The mainline numbers of `events` ([impl] form of "mainline position", spec §2): with
/// the mainline [P₀, …, Pₙ], Pᵢ has number n + 1 − i (oldest = 1), and an event gets the
/// number of the first mainline event on the chain of power-levels events from its
/// `auth_events` (itself excluded), or 0 if that chain never meets the mainline. Sorting
/// ascending by number puts events hanging off older power levels first, exactly as
/// "greater mainline position first". Each power-levels event is walked once (memoised).
pub fn mainline_numbers<S: EventStore + ?Sized>(
    store: &S,
    mainline: &[&Pdu],
    events: &[&Pdu],
) -> Result<Vec<u64>, DagError> {
    let power_levels: Vec<Option<&Pdu>> =
        events.iter().map(|event| power_levels_auth_event(store, event)).collect();
    mainline_numbers_from(store, mainline, &power_levels)
}

/// [`mainline_numbers`] given, for each event, the power-levels event among its auth
/// events (callers that hold the auth events already save the lookups).
pub fn mainline_numbers_from<S: EventStore + ?Sized>(
    store: &S,
    mainline: &[&Pdu],
    power_levels: &[Option<&Pdu>],
) -> Result<Vec<u64>, DagError> {
    let mut memo: BTreeMap<EventId, u64> = BTreeMap::new();
    for (position, pdu) in mainline.iter().enumerate() {
        memo.insert(pdu.event_id().clone(), (mainline.len() - position) as u64);
    }
    assert_eq!(memo.len(), mainline.len(), "a mainline has no repeated event");
    let mut numbers = Vec::with_capacity(power_levels.len());
    for &first in power_levels {
        let mut path: Vec<&Pdu> = Vec::new();
        let mut on_path: BTreeSet<&EventId> = BTreeSet::new();
        let mut current = first;
        let number = loop {
            let Some(pdu) = current else { break 0 };
            if let Some(&number) = memo.get(pdu.event_id()) {
                break number;
            }
            if !on_path.insert(pdu.event_id()) {
                return Err(DagError::Cycle(path.iter().map(|p| p.event_id().clone()).collect()));
            }
            path.push(pdu);
            current = power_levels_auth_event(store, pdu);
        };
        for pdu in path {
            memo.insert(pdu.event_id().clone(), number);
        }
        numbers.push(number);
    }
    Ok(numbers)
}

/// Mainline ordering (spec §2) of `events` based on `mainline`: positions into `events`,
/// sorted by (mainline number, `origin_server_ts`, `event_id`). O(n log n) plus one walk of
/// each power-levels event.
pub fn mainline_order<S: EventStore + ?Sized>(
    store: &S,
    mainline: &[&Pdu],
    events: &[&Pdu],
) -> Result<Vec<usize>, DagError> {
    let numbers = mainline_numbers(store, mainline, events)?;
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| (numbers[i], events[i].origin_server_ts(), events[i].event_id());
        key(a).cmp(&key(b))
    });
    Ok(order)
}

#[cfg(test)]
mod tests;
