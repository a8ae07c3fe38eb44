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
//! An event stores its reach as the entries that exceed the reach of a base event of its
//! auth chain, chosen along a Fenwick numbering of the events that led to it so that a
//! reach is the maximum of a few short lists (`index`, `AuthChainIndex::reach_of_new`):
//! whole lists cost events × chains in a room of many members.
//! The index is built incrementally (an event is added after its auth events, either one
//! by one as a store receives them or by a depth-first walk from some roots) and no query
//! walks an auth chain. [`IndexedStore`] keeps one up to date for its events, so state
//! resolution over it never re-walks auth chains. [`auth_chain_bfs`] and friends are the
//! plain reference walks the index is tested against.
//!
//! Since room version 12 the create event is not listed in `auth_events`; following
//! Synapse, every DAG algorithm here treats `$` + `room_id[1..]` as an implicit auth event
//! of every other event ([`auth_event_ids`], digest §6).
//!
//! The module root holds the store interface ([`EventStore`]) and the depth-first walk
//! ([`walk_auth_dag`]); `index` builds the chain-cover [`AuthChainIndex`] and `query`
//! answers auth chains, auth differences and the conflicted subgraph from it;
//! `indexed_store` is [`IndexedStore`]; `reference` holds the plain reference walks; `order`
//! the reverse topological power ordering and the mainline ordering.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::matrix::ids::EventId;
use crate::matrix::pdu::Pdu;
use crate::matrix::room_version::RoomVersionRules;

mod index;
mod indexed_store;
mod order;
mod query;
mod reference;
#[cfg(test)]
mod tests;

pub use index::{AuthChainIndex, ChainSet, NodeId, StateKeyId};
pub use indexed_store::IndexedStore;
pub use order::{
    mainline, mainline_numbers, mainline_numbers_from, mainline_order, power_levels_auth_event,
    reverse_topological_power_order,
};
pub use reference::{auth_chain_bfs, auth_difference_bfs, conflicted_subgraph_bfs};

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
    EventId::from_room_id(implicit_create_room_id(rules, pdu)?)
}

/// The room id whose create event is [`implicit_create_event`], without making the id:
/// for callers that meet the same room id for every event.
pub fn implicit_create_room_id<'p>(rules: &RoomVersionRules, pdu: &'p Pdu) -> Option<&'p str> {
    if !rules.room_id_is_create_event_hash || is_create_event(pdu) {
        return None;
    }
    pdu.room_id()
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
