//! State resolution v2 (room versions 10 and 11) and v2.1 (room version 12).
//!
//! Spec: Server-Server API "Room state resolution", `v2-state-res` and the v12 changes
//! (digest: spec/state-resolution.md, whose section numbers the comments below cite).
//! [`resolve`] takes state maps and an [`EventStore`] and returns one state map, with an
//! optional [`Explanation`] of every step.
//!
//! Auth chains come from an [`AuthChainIndex`]: the store's own if it covers the state
//! sets, otherwise one built for this call. Every event touched is borrowed from the
//! store, never cloned. Each event's sender power level is computed once.
//!
//! Choices where the spec is silent or deployed servers differ (all documented at the
//! item that makes them):
//! * "full auth chain": [`AuthChainReading`], inclusive by default (digest §7);
//! * rejected events: [`RejectedEvents`], the spec's rule by default (digest §4, §7);
//! * the per-event auth state of the iterative auth checks is Synapse's (digest §2 [impl]);
//! * power events: `m.room.power_levels` and `m.room.join_rules` only with state key ""
//!   ([impl] Synapse, ruma); `m.room.create` is not one (the spec's list; Synapse and
//!   ruma add it, which changes nothing unless the create event itself is conflicted);
//! * step 1 takes *every* event of a power event's auth chain that is in the full
//!   conflicted set (the spec's words). Synapse and ruma only reach such events through
//!   events of the full conflicted set (digest §3 [impl]). The two can differ only if a
//!   path from a power event down to such an event leaves the full conflicted set, i.e.
//!   passes an event in every full auth chain; under v2.1 every event on that path lies
//!   between conflicted events, so in the conflicted state subgraph, and they agree.
//!
//! The algorithm reads top-down in this file, one function per step of digest §3;
//! `loaded` fetches the events of the full conflicted set once, `partial` holds the
//! partially resolved state and the iterative auth checks, and `overlaid` takes state
//! sets as one base and overlays (the form a store of state deltas has at hand).

mod loaded;
mod overlaid;
mod partial;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::matrix::auth::{PowerLevel, Rejection};
use crate::matrix::dag::{self, AuthChainIndex, DagError, EventStore, NodeId, RejectionKind};
use crate::matrix::ids::EventId;
use crate::matrix::pdu::Pdu;
use crate::matrix::room_version::{RoomVersionRules, StateResAlgorithm};
use loaded::{Loaded, Nodes, sender_power_level};
use partial::{PartialState, check_key, iterative_auth_checks};

pub use crate::matrix::dag::AuthChainReading;
pub use overlaid::{
    Overlaid, ResolvedChanges, admitted_overlaid, overlaid_changes, resolve_overlaid,
};

/// A state key: (`type`, `state_key`).
pub type StateKey = (String, String);

/// A state map: (`type`, `state_key`) → event id (digest §1).
pub type StateMap = BTreeMap<StateKey, EventId>;

/// How events that were rejected on receipt take part in the iterative auth checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectedEvents {
    /// The spec (digest §4): an event rejected against the state before it is a normal
    /// event and can enter state if it passes now; an event rejected against its own
    /// auth events never does. Rejected events are never taken from `auth_events`.
    #[default]
    Spec,
    /// Synapse: no rejected event is ever re-admitted, and rejected events in the partial
    /// state are not used for auth either (Synapse's code notes this is not spec
    /// compliant).
    NeverReadmit,
}

impl RejectedEvents {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectedEvents::Spec => "spec",
            RejectedEvents::NeverReadmit => "never-readmit",
        }
    }
}

/// Knobs of [`resolve`]. The default is mxsim's reading of the spec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResolveOptions {
    pub auth_chain: AuthChainReading,
    pub rejected: RejectedEvents,
    /// Record an [`Explanation`] (costs a copy of every id and decision).
    pub explain: bool,
}

/// The result of [`resolve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub state: StateMap,
    /// Present when [`ResolveOptions::explain`] was set.
    pub explanation: Option<Explanation>,
}

/// Which pass of iterative auth checks made a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuthPass {
    /// Step 2: the power events and their auth chains, in reverse topological power order.
    PowerEvents,
    /// Step 4: the other events, in mainline order.
    Others,
}

/// The outcome of one iterative auth check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Passed: the event now holds its key in the partial state.
    Allowed,
    /// Failed the auth rules against the per-event auth state.
    Rejected(Rejection),
    /// Not checked: rejected on receipt, and [`RejectedEvents`] keeps it out.
    PreviouslyRejected(RejectionKind),
}

/// One iterative auth check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthDecision {
    pub event_id: EventId,
    pub pass: AuthPass,
    pub outcome: AuthOutcome,
}

/// Everything [`resolve`] decided, in order (for `mxsim resolve --explain`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub algorithm: StateResAlgorithm,
    pub auth_chain: AuthChainReading,
    pub rejected: RejectedEvents,
    /// The unconflicted state map (step 0).
    pub unconflicted: StateMap,
    /// The conflicted state set, sorted by event id.
    pub conflicted: Vec<EventId>,
    /// The auth difference, sorted by event id.
    pub auth_difference: Vec<EventId>,
    /// v2.1: the conflicted state subgraph, sorted by event id (empty under v2).
    pub conflicted_subgraph: Vec<EventId>,
    /// The full conflicted set, sorted by event id.
    pub full_conflicted: Vec<EventId>,
    /// Step 1: power events and their auth chains in reverse topological power order,
    /// with the sender power level each was sorted by.
    pub power_events_sorted: Vec<(EventId, PowerLevel)>,
    /// Steps 2 and 4, in order.
    pub decisions: Vec<AuthDecision>,
    /// Step 3: the mainline of the resolved power levels, newest first (empty if the
    /// partially resolved state has no power levels).
    pub mainline: Vec<EventId>,
    /// Step 3: the remaining events in mainline order.
    pub mainline_sorted: Vec<EventId>,
    /// Step 5: the resolved state.
    pub state: StateMap,
}

impl Explanation {
    /// An explanation with nothing decided yet.
    pub fn empty(
        algorithm: StateResAlgorithm,
        auth_chain: AuthChainReading,
        rejected: RejectedEvents,
    ) -> Explanation {
        Explanation {
            algorithm,
            auth_chain,
            rejected,
            unconflicted: StateMap::new(),
            conflicted: Vec::new(),
            auth_difference: Vec::new(),
            conflicted_subgraph: Vec::new(),
            full_conflicted: Vec::new(),
            power_events_sorted: Vec::new(),
            decisions: Vec::new(),
            mainline: Vec::new(),
            mainline_sorted: Vec::new(),
            state: StateMap::new(),
        }
    }
}

/// Why state cannot be resolved. Bad input yields one of these, never a panic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Events named by the state sets, or in their auth chains, that the store lacks.
    #[error("missing events: {}", join_ids(.0))]
    MissingEvents(Vec<EventId>),
    /// `auth_events` edges form a cycle through these events.
    #[error("auth_events cycle: {}", join_ids(.0))]
    Cycle(Vec<EventId>),
    /// A state map names, under some key, an event that is not a state event with that
    /// `type` and `state_key`.
    #[error("state set {state_set}: key {key:?} names {event_id}, which is {actual}")]
    KeyMismatch { state_set: usize, key: StateKey, event_id: EventId, actual: String },
    /// Too many events for one auth-chain index.
    #[error("too many events: {0}")]
    TooLarge(String),
}

fn join_ids(ids: &[EventId]) -> String {
    let names: Vec<&str> = ids.iter().map(EventId::as_str).collect();
    names.join(", ")
}

impl From<DagError> for ResolveError {
    fn from(error: DagError) -> ResolveError {
        match error {
            DagError::MissingEvents(ids) => ResolveError::MissingEvents(ids),
            DagError::Cycle(ids) => ResolveError::Cycle(ids),
            DagError::IndexFull(_) => ResolveError::TooLarge(error.to_string()),
        }
    }
}

const CREATE: &str = "m.room.create";
const POWER_LEVELS: &str = "m.room.power_levels";
const JOIN_RULES: &str = "m.room.join_rules";
const MEMBER: &str = "m.room.member";

/// Whether `pdu` is a power event (digest §2): power levels or join rules (state key ""
/// [impl]), or a kick or ban (`m.room.member` with membership `leave` or `ban` whose
/// `sender` is not its `state_key`).
pub fn is_power_event(pdu: &Pdu) -> bool {
    match (pdu.event_type(), pdu.state_key()) {
        (POWER_LEVELS | JOIN_RULES, Some("")) => true,
        (MEMBER, Some(target)) => {
            let membership = pdu.membership();
            matches!(membership, Some("leave" | "ban")) && pdu.sender() != target
        }
        _ => false,
    }
}

/// Splits state maps into the unconflicted state map and the conflicted state set
/// (digest §2): a key is unconflicted iff every map has it with the same event. Returns
/// the conflicted events per key.
pub fn separate(state_sets: &[StateMap]) -> (StateMap, BTreeMap<StateKey, BTreeSet<EventId>>) {
    let separated = Separated::of(state_sets);
    let unconflicted = separated.unconflicted.iter().map(|&(k, id)| (k.clone(), id.clone()));
    let conflicted = separated.conflicted.iter().map(|(k, ids)| {
        let ids: BTreeSet<EventId> = ids.iter().map(|&id| id.clone()).collect();
        ((*k).clone(), ids)
    });
    (unconflicted.collect(), conflicted.collect())
}

/// [`separate`] by reference, with each state set's conflicted events.
struct Separated<'a> {
    /// Sorted by key.
    unconflicted: Vec<(&'a StateKey, &'a EventId)>,
    /// Sorted by key; the distinct events found for the key, sorted.
    conflicted: Vec<(&'a StateKey, Vec<&'a EventId>)>,
    /// Per state set, its entries under conflicted keys.
    conflicted_per_set: Vec<Vec<(&'a StateKey, &'a EventId)>>,
}

impl<'a> Separated<'a> {
    /// Step 0 (digest §3): the unconflicted state map and the conflicted state set (digest
    /// §2), in one merge walk over the sorted maps.
    fn of(state_sets: &'a [StateMap]) -> Separated<'a> {
        let mut cursors: Vec<_> = state_sets.iter().map(|set| set.iter().peekable()).collect();
        let mut separated = Separated {
            unconflicted: Vec::new(),
            conflicted: Vec::new(),
            conflicted_per_set: vec![Vec::new(); state_sets.len()],
        };
        let mut found: Vec<(usize, &'a EventId)> = Vec::with_capacity(state_sets.len());
        loop {
            let heads = cursors.iter_mut().filter_map(|cursor| cursor.peek().map(|&(k, _)| k));
            let Some(key) = heads.min() else { break };
            found.clear();
            for (set, cursor) in cursors.iter_mut().enumerate() {
                if let Some((_, id)) = cursor.next_if(|&(k, _)| k == key) {
                    found.push((set, id));
                }
            }
            assert!(!found.is_empty());
            let everywhere = found.len() == state_sets.len();
            if everywhere && found.iter().all(|&(_, id)| id == found[0].1) {
                separated.unconflicted.push((key, found[0].1));
            } else {
                let mut ids: Vec<&EventId> = found.iter().map(|&(_, id)| id).collect();
                ids.sort_unstable();
                ids.dedup();
                separated.conflicted.push((key, ids));
                for &(set, id) in &found {
                    separated.conflicted_per_set[set].push((key, id));
                }
            }
        }
        separated
    }
}

/// Resolves `state_sets` (digest §3): state resolution v2 or v2.1 as `rules.state_res`
/// says. The result does not depend on the order of `state_sets` (nor, of course, on how
/// the store orders its events).
///
/// One function per step of the algorithm (digest §3): step 0 is `Separated::of` and
/// `full_conflicted_set`, step 1 `reverse_topological_power_ordering`, steps 2 and 4
/// `iterative_auth_checks`, step 3 `mainline_ordering`, step 5
/// `overwrite_with_unconflicted`.
///
/// Cost: one merge walk over the state maps and one index lookup per distinct event in
/// them (without a covering index in the store, plus indexing their auth chains), then
/// O(n log n) in the full conflicted set n, with events fetched by index node.
///
/// Spec: <https://spec.matrix.org/v1.19/rooms/v11/#state-resolution>,
/// <https://spec.matrix.org/v1.19/rooms/v12/#state-resolution>.
pub fn resolve<S: EventStore + ?Sized>(
    rules: &RoomVersionRules,
    state_sets: &[StateMap],
    events: &S,
    options: ResolveOptions,
) -> Result<Resolved, ResolveError> {
    let mut explanation = Explanation::empty(rules.state_res, options.auth_chain, options.rejected);
    let separated = Separated::of(state_sets);
    let admitted = resolve_separated(rules, &separated, events, options, &mut explanation)?;
    // Step 5: the unconflicted state map overwrites the result.
    let state = overwrite_with_unconflicted(admitted, &separated.unconflicted);
    let explanation = options.explain.then(|| {
        explanation.state = state.clone();
        explanation
    });
    Ok(Resolved { state, explanation })
}

/// An event the iterative auth checks admitted, by its key: ((`type`, `state_key`), event).
type Admitted<'s> = ((&'s str, &'s str), &'s Pdu);

/// Steps 0 (after the split) to 4 of the algorithm: the events the iterative auth checks
/// admitted, one per key, sorted by key. Step 5 is the caller's.
fn resolve_separated<'s, S: EventStore + ?Sized>(
    rules: &RoomVersionRules,
    separated: &Separated<'_>,
    events: &'s S,
    options: ResolveOptions,
    explanation: &mut Explanation,
) -> Result<Vec<Admitted<'s>>, ResolveError> {
    let v2_1 = rules.state_res == StateResAlgorithm::V2_1;
    if options.explain {
        explanation.unconflicted =
            separated.unconflicted.iter().map(|&(key, id)| (key.clone(), id.clone())).collect();
    }
    // Nothing conflicted: the unconflicted map is the answer.
    if separated.conflicted.is_empty() {
        return Ok(Vec::new());
    }
    let mut built = None;
    let (indexed, table) = Indexed::of(rules, events, separated, &mut built)?;
    let nodes = Nodes { store: events, index: indexed.index, table };
    let full = full_conflicted_set(rules, separated, &indexed, &nodes, options, explanation)?;

    // Step 1: X, the power events and their auth chains within the full conflicted set.
    let (power_sorted, others) =
        reverse_topological_power_ordering(rules, indexed.index, &full, options, explanation)?;

    // Step 2: iterative auth checks over X, starting from the unconflicted state map under
    // v2 and, since v12 (v2.1), from an empty state map.
    let mut partial =
        PartialState::new(&nodes, !v2_1, &separated.unconflicted, &indexed.common_nodes);
    let mut decisions = Vec::new();
    iterative_auth_checks(
        rules,
        &options,
        AuthPass::PowerEvents,
        &power_sorted,
        &mut partial,
        &mut decisions,
    )?;

    // Step 3: the other events, in mainline order of the partially resolved power levels.
    let others_sorted =
        mainline_ordering(events, indexed.index, others, &partial, options, explanation)?;

    // Step 4: iterative auth checks over them, on top of the partially resolved state.
    iterative_auth_checks(
        rules,
        &options,
        AuthPass::Others,
        &others_sorted,
        &mut partial,
        &mut decisions,
    )?;
    explanation.decisions = decisions;
    let mut admitted: Vec<Admitted<'s>> = partial
        .slots
        .iter()
        .filter_map(|slot| {
            let (pdu, _) = slot.admitted?;
            let state_key = pdu.state_key().expect("only state events are admitted");
            Some(((pdu.event_type(), state_key), pdu))
        })
        .collect();
    // One event per key: the keys alone order them.
    admitted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(admitted)
}

/// The events of the state sets in an auth-chain index: the store's own if it covers them
/// all (one lookup per distinct event), otherwise one built for this resolution.
struct Indexed<'a, 'i> {
    index: &'i AuthChainIndex,
    /// The nodes of the unconflicted state map's events, in its order.
    common_nodes: Vec<NodeId>,
    /// The conflicted state set's event ids, sorted and deduplicated (looked up by binary
    /// search), and their nodes in the same order.
    conflicted_ids: Vec<&'a EventId>,
    conflicted_nodes: Vec<NodeId>,
}

/// The events of an index built for one resolution, by node.
type Table<'s> = Option<Vec<&'s Pdu>>;

impl<'a, 'i> Indexed<'a, 'i> {
    /// Indexes the auth chains of every event of every state set; `built` holds an index
    /// built here, and the table its events by node.
    fn of<'s: 'i, S: EventStore + ?Sized>(
        rules: &RoomVersionRules,
        events: &'s S,
        separated: &Separated<'a>,
        built: &'i mut Option<AuthChainIndex>,
    ) -> Result<(Indexed<'a, 'i>, Table<'s>), ResolveError> {
        // Sorted and deduplicated: looked up by binary search below.
        let mut conflicted_ids: Vec<&EventId> =
            separated.conflicted.iter().flat_map(|(_, ids)| ids.iter().copied()).collect();
        conflicted_ids.sort_unstable();
        conflicted_ids.dedup();
        let lookup_all = |index: &AuthChainIndex| -> Option<(Vec<NodeId>, Vec<NodeId>)> {
            if !index.matches_rules(rules) {
                return None;
            }
            let common: Option<Vec<NodeId>> =
                separated.unconflicted.iter().map(|&(_, id)| index.node(id)).collect();
            let conflicted: Option<Vec<NodeId>> =
                conflicted_ids.iter().map(|&id| index.node(id)).collect();
            Some((common?, conflicted?))
        };
        let (index, table, common_nodes, conflicted_nodes) =
            match events.auth_chain_index().and_then(|index| Some((index, lookup_all(index)?))) {
                Some((index, (common, conflicted))) => (index, None, common, conflicted),
                None => {
                    let mut roots: Vec<EventId> =
                        separated.unconflicted.iter().map(|&(_, id)| id.clone()).collect();
                    roots.extend(conflicted_ids.iter().map(|&id| id.clone()));
                    let (index, table) = AuthChainIndex::build_with_events(events, rules, &roots)?;
                    let built = &*built.insert(index);
                    let (common, conflicted) =
                        lookup_all(built).expect("every state event is indexed");
                    (built, Some(table), common, conflicted)
                }
            };
        Ok((Indexed { index, common_nodes, conflicted_ids, conflicted_nodes }, table))
    }

    /// The node of a conflicted event, by binary search in the sorted ids.
    fn conflicted_node_of(&self, id: &EventId) -> NodeId {
        let position = self.conflicted_ids.binary_search(&id).expect("a conflicted event");
        self.conflicted_nodes[position]
    }
}

/// The full conflicted set (digest §2, §3 step 0), sorted by node, with each event loaded.
struct FullConflictedSet<'s> {
    nodes: Vec<NodeId>,
    /// `events[i]` is the event of `nodes[i]`.
    events: Vec<Loaded<'s>>,
}

/// Step 0 (digest §3), after the split into the unconflicted state map and the conflicted
/// state set: the full conflicted set, that is the conflicted state set, the auth
/// difference and, since v12 (state resolution v2.1), the conflicted state subgraph.
/// Every conflicted event must be a state event under its own key.
fn full_conflicted_set<'s, S: EventStore + ?Sized>(
    rules: &RoomVersionRules,
    separated: &Separated<'_>,
    indexed: &Indexed<'_, '_>,
    nodes: &Nodes<'s, '_, S>,
    options: ResolveOptions,
    explanation: &mut Explanation,
) -> Result<FullConflictedSet<'s>, ResolveError> {
    let index = indexed.index;
    let v2_1 = rules.state_res == StateResAlgorithm::V2_1;
    let conflicted_per_set: Vec<Vec<NodeId>> = separated
        .conflicted_per_set
        .iter()
        .map(|entries| entries.iter().map(|&(_, id)| indexed.conflicted_node_of(id)).collect())
        .collect();
    let conflicted_nodes = &indexed.conflicted_nodes;
    let auth_difference = index.auth_difference_with_common(
        &indexed.common_nodes,
        &conflicted_per_set,
        options.auth_chain,
    );
    let subgraph = if v2_1 { index.conflicted_subgraph(conflicted_nodes) } else { Vec::new() };
    let full_nodes: Vec<NodeId> = {
        let mut all: Vec<NodeId> = conflicted_nodes.clone();
        all.extend_from_slice(&auth_difference);
        all.extend_from_slice(&subgraph);
        all.sort_unstable();
        all.dedup();
        all
    };
    let mut full: Vec<Loaded<'_>> = Vec::with_capacity(full_nodes.len());
    for &node in &full_nodes {
        full.push(Loaded::load(nodes, node)?);
    }
    // Every conflicted event must be a state event under its own key.
    for (key, ids) in &separated.conflicted {
        for &event_id in ids {
            let position = full_nodes.binary_search(&indexed.conflicted_node_of(event_id));
            let pdu = full[position.expect("conflicted events are in the full set")].pdu;
            if let Err(error) = check_key(0, key, pdu) {
                let ResolveError::KeyMismatch { key, event_id, actual, .. } = error else {
                    unreachable!("check_key only reports mismatches")
                };
                let state_set = separated
                    .conflicted_per_set
                    .iter()
                    .position(|set| set.contains(&(&key, &event_id)));
                let state_set = state_set.expect("a conflicted event comes from some set");
                return Err(ResolveError::KeyMismatch { state_set, key, event_id, actual });
            }
        }
    }
    if options.explain {
        let sorted_ids = |nodes: &[NodeId]| {
            let mut ids: Vec<EventId> = nodes.iter().map(|&n| index.event_id(n).clone()).collect();
            ids.sort();
            ids
        };
        explanation.conflicted = sorted_ids(conflicted_nodes);
        explanation.auth_difference = sorted_ids(&auth_difference);
        explanation.conflicted_subgraph = sorted_ids(&subgraph);
        explanation.full_conflicted = sorted_ids(&full_nodes);
    }
    Ok(FullConflictedSet { nodes: full_nodes, events: full })
}

/// Step 1 (digest §3): X = the power events of the full conflicted set plus every event of
/// their auth chains that is in the full conflicted set, sorted by reverse topological
/// power ordering (digest §2). Only state events take part in the iterative auth checks
/// (a non-state event can reach the full conflicted set only through malformed
/// `auth_events`). Returns sorted X and, for step 3, the other state events of the full
/// conflicted set in its order.
fn reverse_topological_power_ordering<'f, 's>(
    rules: &RoomVersionRules,
    index: &AuthChainIndex,
    full_set: &'f FullConflictedSet<'s>,
    options: ResolveOptions,
    explanation: &mut Explanation,
) -> Result<(Vec<&'f Loaded<'s>>, Vec<&'f Loaded<'s>>), ResolveError> {
    let FullConflictedSet { nodes: full_nodes, events: full } = full_set;
    let is_power: Vec<bool> =
        full.iter().map(|e| e.pdu.is_state() && is_power_event(e.pdu)).collect();
    let power_nodes: Vec<NodeId> =
        (0..full.len()).filter(|&i| is_power[i]).map(|i| full_nodes[i]).collect();
    let power_auth_chains = index.chain_set(&power_nodes, AuthChainReading::Exclusive);
    let in_power_set: Vec<bool> = (0..full.len())
        .map(|i| {
            let in_auth_chain = index.chain_set_contains(&power_auth_chains, full_nodes[i]);
            is_power[i] || (full[i].pdu.is_state() && in_auth_chain)
        })
        .collect();
    let power_positions: Vec<usize> = (0..full.len()).filter(|&i| in_power_set[i]).collect();
    let mut keys: Vec<(Reverse<PowerLevel>, i64, &EventId)> =
        Vec::with_capacity(power_positions.len());
    let mut levels: Vec<PowerLevel> = Vec::with_capacity(power_positions.len());
    let mut auth_edges: Vec<Vec<usize>> = Vec::with_capacity(power_positions.len());
    for &i in &power_positions {
        let event = &full[i];
        // The sender's power level, once per event.
        let level = sender_power_level(rules, event);
        levels.push(level);
        keys.push((Reverse(level), event.pdu.origin_server_ts(), event.pdu.event_id()));
        // Direct auth edges within X ([digest]/[impl] "restricted to the set").
        let mut edges = Vec::new();
        for auth in &event.auth_events {
            let Ok(full_position) = full_nodes.binary_search(&auth.node) else { continue };
            edges.extend(power_positions.binary_search(&full_position).ok());
        }
        auth_edges.push(edges);
    }
    let power_order =
        dag::reverse_topological_power_order(&keys, &auth_edges).map_err(|stuck| {
            let ids = stuck.iter().map(|&p| full[power_positions[p]].pdu.event_id().clone());
            ResolveError::Cycle(ids.collect())
        })?;
    let power_sorted: Vec<&Loaded<'_>> =
        power_order.iter().map(|&p| &full[power_positions[p]]).collect();
    if options.explain {
        explanation.power_events_sorted = power_order
            .iter()
            .map(|&p| (full[power_positions[p]].pdu.event_id().clone(), levels[p]))
            .collect();
    }
    let others: Vec<&Loaded<'_>> = (0..full.len())
        .filter(|&i| full[i].pdu.is_state() && !in_power_set[i])
        .map(|i| &full[i])
        .collect();
    Ok((power_sorted, others))
}

/// Step 3 (digest §3): the other events of the full conflicted set, sorted by mainline
/// ordering (digest §2) based on the `m.room.power_levels` event in the partially resolved
/// state (no power levels: an empty mainline, every position infinite, so ordering falls
/// back to `origin_server_ts` and `event_id` [digest]).
fn mainline_ordering<'f, 's, S: EventStore + ?Sized>(
    events: &S,
    index: &AuthChainIndex,
    others: Vec<&'f Loaded<'s>>,
    partial: &PartialState<'_, 's, '_, S>,
    options: ResolveOptions,
    explanation: &mut Explanation,
) -> Result<Vec<&'f Loaded<'s>>, ResolveError> {
    let power_levels_key = index.find_state_key(POWER_LEVELS, "");
    let mainline = match partial.get(power_levels_key, POWER_LEVELS, "")? {
        Some((power_levels, _)) => dag::mainline(events, power_levels)?,
        None => Vec::new(),
    };
    let first_power_levels: Vec<Option<&Pdu>> =
        others.iter().map(|e| e.power_levels_auth_event()).collect();
    let numbers = dag::mainline_numbers_from(events, &mainline, &first_power_levels)?;
    let mut mainline_order: Vec<usize> = (0..others.len()).collect();
    // Event ids are unique, so the keys are and an unstable sort gives the one order.
    mainline_order.sort_unstable_by_key(|&i| {
        (numbers[i], others[i].pdu.origin_server_ts(), others[i].pdu.event_id())
    });
    let others_sorted: Vec<&Loaded<'_>> = mainline_order.iter().map(|&i| others[i]).collect();
    if options.explain {
        explanation.mainline = mainline.iter().map(|pdu| pdu.event_id().clone()).collect();
        explanation.mainline_sorted =
            others_sorted.iter().map(|e| e.pdu.event_id().clone()).collect();
    }
    Ok(others_sorted)
}

/// Step 5 (digest §3): the unconflicted state map overwrites the result of the iterative
/// auth checks. Both lists are sorted by key (`&str` pairs order as `String` pairs do), so
/// one merge gives the resolved state in order (built in bulk); an admitted event under an
/// unconflicted key is dropped.
fn overwrite_with_unconflicted(
    admitted: Vec<Admitted<'_>>,
    unconflicted: &[(&StateKey, &EventId)],
) -> StateMap {
    let owned = |((event_type, state_key), pdu): Admitted<'_>| {
        ((event_type.to_owned(), state_key.to_owned()), pdu.event_id().clone())
    };
    let mut merged: Vec<(StateKey, EventId)> =
        Vec::with_capacity(unconflicted.len() + admitted.len());
    let mut admitted = admitted.into_iter().peekable();
    for &(key, event_id) in unconflicted {
        let key_strs = (key.0.as_str(), key.1.as_str());
        while let Some(entry) = admitted.next_if(|&(k, _)| k < key_strs) {
            merged.push(owned(entry));
        }
        admitted.next_if(|&(k, _)| k == key_strs);
        merged.push((key.clone(), event_id.clone()));
    }
    merged.extend(admitted.map(owned));
    assert!(merged.windows(2).all(|w| w[0].0 < w[1].0), "merge keeps keys sorted and unique");
    merged.into_iter().collect()
}

impl fmt::Display for AuthPass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthPass::PowerEvents => "power events",
            AuthPass::Others => "others",
        })
    }
}

#[cfg(test)]
mod tests;
