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
//!   events of the full conflicted set; digest §3 shows the two agree under v2.1 and can
//!   differ under v2 only when a conflicted event sits below an event that is in every
//!   full auth chain.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::matrix::auth::{self, AuthState, PowerLevel, Rejection, SignatureCheck};
use crate::matrix::dag::{self, AuthChainIndex, DagError, EventStore, NodeId, RejectionKind};
use crate::matrix::ids::EventId;
use crate::matrix::pdu::Pdu;
use crate::matrix::room_version::{RoomVersionRules, StateResAlgorithm};

pub use crate::matrix::dag::AuthChainReading;

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
            let membership = pdu.content().get("membership").and_then(Value::as_str);
            matches!(membership, Some("leave" | "ban")) && pdu.sender() != target
        }
        _ => false,
    }
}

/// Splits state maps into the unconflicted state map and the conflicted state set
/// (digest §2): a key is unconflicted iff every map has it with the same event. Returns
/// the conflicted events per key.
pub fn separate(state_sets: &[StateMap]) -> (StateMap, BTreeMap<StateKey, BTreeSet<EventId>>) {
    let keys: BTreeSet<&StateKey> = state_sets.iter().flat_map(BTreeMap::keys).collect();
    let mut unconflicted = StateMap::new();
    let mut conflicted = BTreeMap::new();
    for key in keys {
        let ids: BTreeSet<&EventId> = state_sets.iter().filter_map(|set| set.get(key)).collect();
        let everywhere = state_sets.iter().all(|set| set.contains_key(key));
        assert!(!ids.is_empty());
        if everywhere && ids.len() == 1 {
            unconflicted.insert(key.clone(), ids.into_iter().next().expect("one id").clone());
        } else {
            conflicted.insert(key.clone(), ids.into_iter().cloned().collect());
        }
    }
    (unconflicted, conflicted)
}

/// The state an event is checked against in the iterative auth checks: a handful of
/// events, searched linearly.
struct SmallState<'s> {
    events: Vec<&'s Pdu>,
}

impl<'s> SmallState<'s> {
    fn set(&mut self, pdu: &'s Pdu) {
        let key = (pdu.event_type(), pdu.state_key());
        match self.events.iter_mut().find(|e| (e.event_type(), e.state_key()) == key) {
            Some(slot) => *slot = pdu,
            None => self.events.push(pdu),
        }
    }
}

impl AuthState for SmallState<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Pdu> {
        self.events
            .iter()
            .copied()
            .find(|e| e.event_type() == event_type && e.state_key() == Some(state_key))
    }
}

/// The sender's power level "when looking at their respective `auth_events`" (digest §2):
/// the auth rules' power level of the sender in the state formed by the event's auth
/// events (with v12's implicit create event), whatever their rejection status ([impl]
/// Synapse reads them all). v12 creators are infinite; v10/v11 creators without a power
/// levels event have 100.
fn sender_power_level<S: EventStore + ?Sized>(
    rules: &RoomVersionRules,
    store: &S,
    pdu: &Pdu,
) -> PowerLevel {
    let mut state = SmallState { events: Vec::new() };
    for auth_id in dag::auth_event_ids(rules, pdu) {
        if let Some(auth_event) = store.get(&auth_id) {
            if auth_event.is_state() {
                state.set(auth_event);
            }
        }
    }
    auth::user_power_level(rules, &state, pdu.sender())
}

/// The partially resolved state: under v2 the unconflicted map (events fetched when
/// first read) under what the iterative auth checks admitted.
struct PartialState<'s, 'a, S: ?Sized> {
    store: &'s S,
    base: Option<&'a StateMap>,
    admitted: BTreeMap<StateKey, &'s Pdu>,
}

impl<'s, S: EventStore + ?Sized> PartialState<'s, '_, S> {
    fn get(&self, key: &StateKey) -> Result<Option<&'s Pdu>, ResolveError> {
        if let Some(&pdu) = self.admitted.get(key) {
            return Ok(Some(pdu));
        }
        let Some(event_id) = self.base.and_then(|base| base.get(key)) else { return Ok(None) };
        let pdu = self
            .store
            .get(event_id)
            .ok_or_else(|| ResolveError::MissingEvents(vec![event_id.clone()]))?;
        check_key(0, key, pdu)?;
        Ok(Some(pdu))
    }

    fn admit(&mut self, pdu: &'s Pdu) {
        let state_key = pdu.state_key().expect("only state events are checked");
        self.admitted.insert((pdu.event_type().to_owned(), state_key.to_owned()), pdu);
    }
}

/// Checks that a state map's key names the event's own `type` and `state_key`.
fn check_key(state_set: usize, key: &StateKey, pdu: &Pdu) -> Result<(), ResolveError> {
    if pdu.event_type() == key.0 && pdu.state_key() == Some(key.1.as_str()) {
        return Ok(());
    }
    let actual = match pdu.state_key() {
        Some(state_key) => format!("({:?}, {state_key:?})", pdu.event_type()),
        None => format!("a non-state {:?} event", pdu.event_type()),
    };
    Err(ResolveError::KeyMismatch {
        state_set,
        key: key.clone(),
        event_id: pdu.event_id().clone(),
        actual,
    })
}

/// Iterative auth checks (digest §2) of `events`, in order, on top of `partial`.
///
/// Per event, the state checked against is built as Synapse does ([impl]): the event's
/// non-rejected auth events (v12: with the implicit create event) keyed by (`type`,
/// `state_key`), overwritten by the partial state for every key the auth-events selection
/// would pick for this event. Only the state-dependent rules run
/// ([`auth::check_state_rules`]); `auth_events` were judged on receipt and signatures
/// verified then.
fn iterative_auth_checks<'s, S: EventStore + ?Sized>(
    rules: &RoomVersionRules,
    options: &ResolveOptions,
    pass: AuthPass,
    events: &[&'s Pdu],
    partial: &mut PartialState<'s, '_, S>,
    decisions: &mut Vec<AuthDecision>,
) -> Result<(), ResolveError> {
    let store = partial.store;
    for &event in events {
        assert!(event.is_state(), "only state events are checked");
        let previously_rejected = store.rejection(event.event_id());
        let skip = match (previously_rejected, options.rejected) {
            (None, _) => false,
            (Some(RejectionKind::AuthEvents), _) => true,
            (Some(RejectionKind::StateBefore), RejectedEvents::Spec) => false,
            (Some(RejectionKind::StateBefore), RejectedEvents::NeverReadmit) => true,
        };
        let outcome = if skip {
            AuthOutcome::PreviouslyRejected(previously_rejected.expect("skip implies rejected"))
        } else {
            let mut state = SmallState { events: Vec::new() };
            // Rejected auth events are never a fallback (digest §4).
            for auth_id in dag::auth_event_ids(rules, event) {
                if let Some(auth_event) = store.get(&auth_id) {
                    if auth_event.is_state() && store.rejection(&auth_id).is_none() {
                        state.set(auth_event);
                    }
                }
            }
            let keys = auth::auth_types_for_event(
                rules,
                event.event_type(),
                event.sender(),
                event.state_key(),
                event.content(),
            );
            for key in &keys {
                let Some(current) = partial.get(key)? else { continue };
                let rejected = store.rejection(current.event_id()).is_some();
                if rejected && options.rejected == RejectedEvents::NeverReadmit {
                    continue;
                }
                state.set(current);
            }
            match auth::check_state_rules(rules, event, &state, SignatureCheck::AlreadyVerified) {
                Ok(()) => {
                    partial.admit(event);
                    AuthOutcome::Allowed
                }
                Err(rejection) => AuthOutcome::Rejected(rejection),
            }
        };
        if options.explain {
            decisions.push(AuthDecision { event_id: event.event_id().clone(), pass, outcome });
        }
    }
    Ok(())
}

/// Resolves `state_sets` (digest §3): state resolution v2 or v2.1 as `rules.state_res`
/// says. The result does not depend on the order of `state_sets` (nor, of course, on how
/// the store orders its events).
///
/// Spec: <https://spec.matrix.org/v1.19/rooms/v11/#state-resolution>,
/// <https://spec.matrix.org/v1.19/rooms/v12/#state-resolution>.
pub fn resolve<S: EventStore + ?Sized>(
    rules: &RoomVersionRules,
    state_sets: &[StateMap],
    events: &S,
    options: ResolveOptions,
) -> Result<Resolved, ResolveError> {
    let v2_1 = rules.state_res == StateResAlgorithm::V2_1;
    let mut explanation = Explanation {
        algorithm: rules.state_res,
        auth_chain: options.auth_chain,
        rejected: options.rejected,
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
    };
    let finish = |state: StateMap, mut explanation: Explanation| {
        let explanation = options.explain.then(|| {
            explanation.state = state.clone();
            explanation
        });
        Ok(Resolved { state, explanation })
    };

    // Step 0: the unconflicted state map and the conflicted state set. Nothing conflicted:
    // the unconflicted map is the answer.
    let (unconflicted, conflicted_by_key) = separate(state_sets);
    if options.explain {
        explanation.unconflicted = unconflicted.clone();
    }
    if conflicted_by_key.is_empty() {
        return finish(unconflicted, explanation);
    }
    for (key, ids) in &conflicted_by_key {
        for event_id in ids {
            let pdu = events
                .get(event_id)
                .ok_or_else(|| ResolveError::MissingEvents(vec![event_id.clone()]))?;
            let state_set = state_sets.iter().position(|set| set.get(key) == Some(event_id));
            check_key(state_set.expect("a conflicted event comes from some set"), key, pdu)?;
        }
    }

    // Index the auth chains of every event in every state set (the store's index if it
    // covers them all).
    let roots: Vec<EventId> = {
        let ids: BTreeSet<&EventId> = state_sets.iter().flat_map(BTreeMap::values).collect();
        ids.into_iter().cloned().collect()
    };
    let built;
    let index: &AuthChainIndex = match events.auth_chain_index() {
        Some(index) if index.matches_rules(rules) && roots.iter().all(|id| index.contains(id)) => {
            index
        }
        _ => {
            built = AuthChainIndex::build(events, rules, &roots)?;
            &built
        }
    };
    let node = |event_id: &EventId| index.node(event_id).expect("every state event is indexed");
    let conflicted_nodes: Vec<NodeId> = {
        let mut nodes: Vec<NodeId> = conflicted_by_key.values().flatten().map(node).collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    };
    let node_sets: Vec<Vec<NodeId>> =
        state_sets.iter().map(|set| set.values().map(node).collect()).collect();

    // The full conflicted set: the conflicted state set, the auth difference and, since
    // v12 (state resolution v2.1), the conflicted state subgraph.
    let auth_difference = index.auth_difference(&node_sets, options.auth_chain);
    let subgraph = if v2_1 { index.conflicted_subgraph(&conflicted_nodes) } else { Vec::new() };
    let full_nodes: Vec<NodeId> = {
        let mut nodes: Vec<NodeId> = conflicted_nodes.clone();
        nodes.extend_from_slice(&auth_difference);
        nodes.extend_from_slice(&subgraph);
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    };
    let mut full: Vec<&Pdu> = Vec::with_capacity(full_nodes.len());
    for &full_node in &full_nodes {
        let event_id = index.event_id(full_node);
        let pdu = events
            .get(event_id)
            .ok_or_else(|| ResolveError::MissingEvents(vec![event_id.clone()]))?;
        full.push(pdu);
    }
    if options.explain {
        let sorted_ids = |nodes: &[NodeId]| {
            let mut ids: Vec<EventId> = nodes.iter().map(|&n| index.event_id(n).clone()).collect();
            ids.sort();
            ids
        };
        explanation.conflicted = sorted_ids(&conflicted_nodes);
        explanation.auth_difference = sorted_ids(&auth_difference);
        explanation.conflicted_subgraph = sorted_ids(&subgraph);
        explanation.full_conflicted = sorted_ids(&full_nodes);
    }

    // Step 1: X = the power events of the full conflicted set plus every event of their
    // auth chains that is in the full conflicted set, in reverse topological power order.
    // Only state events take part in the iterative auth checks (a non-state event can
    // reach the full conflicted set only through malformed auth_events).
    let power_nodes: Vec<NodeId> = (0..full.len())
        .filter(|&i| full[i].is_state() && is_power_event(full[i]))
        .map(|i| full_nodes[i])
        .collect();
    let power_auth_chains = index.chain_set(&power_nodes, AuthChainReading::Exclusive);
    let in_power_set: Vec<bool> = (0..full.len())
        .map(|i| {
            full[i].is_state()
                && (is_power_event(full[i])
                    || index.chain_set_contains(&power_auth_chains, full_nodes[i]))
        })
        .collect();
    let power_positions: Vec<usize> = (0..full.len()).filter(|&i| in_power_set[i]).collect();
    let position_in_power_set =
        |full_position: usize| power_positions.binary_search(&full_position).ok();
    let mut keys: Vec<(Reverse<PowerLevel>, i64, &EventId)> =
        Vec::with_capacity(power_positions.len());
    let mut levels: Vec<PowerLevel> = Vec::with_capacity(power_positions.len());
    let mut auth_edges: Vec<Vec<usize>> = Vec::with_capacity(power_positions.len());
    for &i in &power_positions {
        let pdu = full[i];
        // The sender's power level, once per event.
        let level = sender_power_level(rules, events, pdu);
        levels.push(level);
        keys.push((Reverse(level), pdu.origin_server_ts(), pdu.event_id()));
        // Direct auth edges within X ([digest]/[impl] "restricted to the set").
        let mut edges = Vec::new();
        for auth_id in dag::auth_event_ids(rules, pdu) {
            let Some(auth_node) = index.node(&auth_id) else { continue };
            let Ok(full_position) = full_nodes.binary_search(&auth_node) else { continue };
            edges.extend(position_in_power_set(full_position));
        }
        auth_edges.push(edges);
    }
    let power_order =
        dag::reverse_topological_power_order(&keys, &auth_edges).map_err(|stuck| {
            ResolveError::Cycle(
                stuck.iter().map(|&p| full[power_positions[p]].event_id().clone()).collect(),
            )
        })?;
    let power_sorted: Vec<&Pdu> = power_order.iter().map(|&p| full[power_positions[p]]).collect();
    if options.explain {
        explanation.power_events_sorted = power_order
            .iter()
            .map(|&p| (full[power_positions[p]].event_id().clone(), levels[p]))
            .collect();
    }

    // Step 2: iterative auth checks over X, starting from the unconflicted state map under
    // v2 and, since v12 (v2.1), from an empty state map.
    let mut partial = PartialState {
        store: events,
        base: if v2_1 { None } else { Some(&unconflicted) },
        admitted: BTreeMap::new(),
    };
    let mut decisions = Vec::new();
    iterative_auth_checks(
        rules,
        &options,
        AuthPass::PowerEvents,
        &power_sorted,
        &mut partial,
        &mut decisions,
    )?;

    // Step 3: the other events of the full conflicted set, in mainline order of the
    // partially resolved power levels (no power levels: an empty mainline, every position
    // infinite, so ordering falls back to origin_server_ts and event_id [digest]).
    let others: Vec<&Pdu> = (0..full.len())
        .filter(|&i| full[i].is_state() && !in_power_set[i])
        .map(|i| full[i])
        .collect();
    let power_levels_key: StateKey = (POWER_LEVELS.to_owned(), String::new());
    let mainline = match partial.get(&power_levels_key)? {
        Some(power_levels) => dag::mainline(events, power_levels)?,
        None => Vec::new(),
    };
    let mainline_order = dag::mainline_order(events, &mainline, &others)?;
    let others_sorted: Vec<&Pdu> = mainline_order.iter().map(|&i| others[i]).collect();
    if options.explain {
        explanation.mainline = mainline.iter().map(|pdu| pdu.event_id().clone()).collect();
        explanation.mainline_sorted =
            others_sorted.iter().map(|pdu| pdu.event_id().clone()).collect();
    }

    // Step 4: iterative auth checks over them, on top of the partially resolved state.
    iterative_auth_checks(
        rules,
        &options,
        AuthPass::Others,
        &others_sorted,
        &mut partial,
        &mut decisions,
    )?;

    // Step 5: the unconflicted state map overwrites the result.
    let mut state: StateMap =
        partial.admitted.iter().map(|(key, pdu)| (key.clone(), pdu.event_id().clone())).collect();
    if let Some(base) = partial.base {
        assert!(std::ptr::eq(base, &unconflicted));
    }
    state.extend(unconflicted.iter().map(|(key, id)| (key.clone(), id.clone())));
    explanation.decisions = decisions;
    finish(state, explanation)
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
