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

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::matrix::auth::{self, AuthState, PowerLevel, Rejection, SignatureCheck};
use crate::matrix::dag::{
    self, AuthChainIndex, DagError, EventStore, NodeId, RejectionKind, StateKeyId,
};
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
    /// Per state set, its events under conflicted keys.
    conflicted_per_set: Vec<Vec<&'a EventId>>,
}

impl<'a> Separated<'a> {
    /// One merge walk over the sorted maps.
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
                    separated.conflicted_per_set[set].push(id);
                }
            }
        }
        separated
    }
}

/// The state an event is checked against in the iterative auth checks: a handful of
/// events with their interned keys, searched linearly.
struct SmallState<'s> {
    events: Vec<(StateKeyId, &'s Pdu)>,
}

impl<'s> SmallState<'s> {
    /// `key` is `pdu`'s own (`type`, `state_key`), interned.
    fn set(&mut self, key: StateKeyId, pdu: &'s Pdu) {
        match self.events.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = pdu,
            None => self.events.push((key, pdu)),
        }
    }
}

impl AuthState for SmallState<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Pdu> {
        let found = self
            .events
            .iter()
            .find(|(_, e)| e.state_key() == Some(state_key) && e.event_type() == event_type);
        found.map(|&(_, pdu)| pdu)
    }
}

/// Fetches events by index node: from the table of a fresh index, else from the store
/// (by node if it can, by id otherwise).
struct Nodes<'s, 'i, S: ?Sized> {
    store: &'s S,
    index: &'i AuthChainIndex,
    /// The events of `index` by node, when it was built for this resolution.
    table: Option<Vec<&'s Pdu>>,
}

impl<'s, S: EventStore + ?Sized> Nodes<'s, '_, S> {
    fn fetch(&self, node: NodeId) -> Result<(&'s Pdu, Option<RejectionKind>), ResolveError> {
        let found = match &self.table {
            Some(table) => {
                let pdu = table[node.index()];
                Some((pdu, self.store.rejection(pdu.event_id())))
            }
            None => self
                .store
                .get_by_node(node)
                .or_else(|| self.store.get_with_rejection(self.index.event_id(node))),
        };
        let event_id = self.index.event_id(node);
        let found = found.ok_or_else(|| ResolveError::MissingEvents(vec![event_id.clone()]))?;
        assert_eq!(found.0.event_id(), event_id, "the store returned another event");
        Ok(found)
    }
}

/// An auth event of a [`Loaded`] event.
#[derive(Clone, Copy)]
struct AuthEvent<'s> {
    node: NodeId,
    pdu: &'s Pdu,
    rejection: Option<RejectionKind>,
    /// Its interned (`type`, `state_key`), `None` for a non-state event.
    key: Option<StateKeyId>,
}

/// An event of the full conflicted set with what resolution reads about it, fetched once.
struct Loaded<'s> {
    pdu: &'s Pdu,
    rejection: Option<RejectionKind>,
    /// Its interned (`type`, `state_key`), `None` for a non-state event.
    key: Option<StateKeyId>,
    /// Its auth events ([`dag::auth_event_ids`]) in order.
    auth_events: Vec<AuthEvent<'s>>,
}

impl<'s> Loaded<'s> {
    fn load<S: EventStore + ?Sized>(
        nodes: &Nodes<'s, '_, S>,
        node: NodeId,
    ) -> Result<Loaded<'s>, ResolveError> {
        let index = nodes.index;
        let (pdu, rejection) = nodes.fetch(node)?;
        let key = index.state_key_id(node);
        assert_eq!(key.is_some(), pdu.is_state(), "the index interns state events' keys");
        let auth_nodes = index.auth_nodes(node);
        let mut auth_events = Vec::with_capacity(auth_nodes.len());
        for &auth_node in auth_nodes {
            let (auth_pdu, auth_rejection) = nodes.fetch(auth_node)?;
            let auth_key = index.state_key_id(auth_node);
            assert_eq!(auth_key.is_some(), auth_pdu.is_state());
            auth_events.push(AuthEvent {
                node: auth_node,
                pdu: auth_pdu,
                rejection: auth_rejection,
                key: auth_key,
            });
        }
        Ok(Loaded { pdu, rejection, key, auth_events })
    }

    /// The `m.room.power_levels` event among its auth events (the first listed).
    fn power_levels_auth_event(&self) -> Option<&'s Pdu> {
        let found = self
            .auth_events
            .iter()
            .find(|auth| auth.pdu.event_type() == POWER_LEVELS && auth.pdu.state_key() == Some(""));
        found.map(|auth| auth.pdu)
    }
}

/// The sender's power level "when looking at their respective `auth_events`" (digest §2):
/// the auth rules' power level of the sender in the state formed by the event's auth
/// events (with v12's implicit create event), whatever their rejection status ([impl]
/// Synapse reads them all). v12 creators are infinite; v10/v11 creators without a power
/// levels event have 100.
fn sender_power_level(rules: &RoomVersionRules, event: &Loaded<'_>) -> PowerLevel {
    let mut state = SmallState { events: Vec::with_capacity(event.auth_events.len()) };
    for auth in &event.auth_events {
        if let Some(key) = auth.key {
            state.set(key, auth.pdu);
        }
    }
    auth::user_power_level(rules, &state, event.pdu.sender())
}

/// An event as fetched: the PDU and whether and why it was rejected on receipt.
type Fetched<'s> = (&'s Pdu, Option<RejectionKind>);

/// What the unconflicted state map holds under one key, as the partial state reads it.
#[derive(Clone, Copy, Default)]
enum Unconflicted<'s> {
    #[default]
    None,
    /// Fetched, and its own key is the map's key.
    Checked(Fetched<'s>),
    /// Fetching failed or the event's key is not the map's: both are reported only if the
    /// key is read, as bad input.
    Unchecked(NodeId),
}

/// What the partial state holds under one key.
#[derive(Clone, Copy, Default)]
struct Slot<'s> {
    /// v2: the unconflicted state map's event for the key (v2.1 starts empty).
    unconflicted: Unconflicted<'s>,
    /// The last event the iterative auth checks admitted for the key.
    admitted: Option<Fetched<'s>>,
}

/// The partially resolved state: what the iterative auth checks admitted over, under v2,
/// the unconflicted state map. One slot per key the index interned, so a read is an
/// array access once the key's id is known ([`Loaded::key_id`]); no string is hashed or
/// compared in a map on the hot path.
struct PartialState<'a, 's, 'i, S: ?Sized> {
    nodes: &'a Nodes<'s, 'i, S>,
    /// By [`StateKeyId`].
    slots: Vec<Slot<'s>>,
    /// v2: unconflicted entries under a key no indexed event has (so their event is not
    /// theirs, bad input reported if read). Almost always empty.
    unindexed: Vec<(&'a StateKey, NodeId)>,
    /// The ids of the room-wide keys with state key "" the auth rules read, looked up once.
    room_keys: [(&'static str, Option<StateKeyId>); 3],
}

impl<'a, 's: 'a, 'i, S: EventStore + ?Sized> PartialState<'a, 's, 'i, S> {
    /// The starting state: v2 the unconflicted state map (`unconflicted`, sorted by key,
    /// with its events' nodes), v2.1 empty.
    fn new(
        nodes: &'a Nodes<'s, 'i, S>,
        starts_unconflicted: bool,
        unconflicted: &[(&'a StateKey, &'a EventId)],
        unconflicted_nodes: &[NodeId],
    ) -> PartialState<'a, 's, 'i, S> {
        assert_eq!(unconflicted.len(), unconflicted_nodes.len());
        let index = nodes.index;
        let room_keys = [CREATE, POWER_LEVELS, JOIN_RULES]
            .map(|event_type| (event_type, index.find_state_key(event_type, "")));
        let mut partial = PartialState {
            nodes,
            slots: vec![Slot::default(); index.state_key_count()],
            unindexed: Vec::new(),
            room_keys,
        };
        if !starts_unconflicted {
            return partial;
        }
        for (&(key, _), &node) in unconflicted.iter().zip(unconflicted_nodes) {
            // The map's key is almost always its event's own: then the event's node names
            // the slot, with no lookup of the key's strings.
            let (slot, value) = match nodes.fetch(node) {
                Ok(found) if key_matches(&key.0, &key.1, found.0) => {
                    let id = index.state_key_id(node).expect("a state event has an interned key");
                    (Some(id), Unconflicted::Checked(found))
                }
                _ => (index.find_state_key(&key.0, &key.1), Unconflicted::Unchecked(node)),
            };
            match slot {
                Some(id) => {
                    let slot = &mut partial.slots[id.index()];
                    assert!(matches!(slot.unconflicted, Unconflicted::None), "keys are unique");
                    slot.unconflicted = value;
                }
                None => partial.unindexed.push((key, node)),
            }
        }
        partial
    }

    /// The interned id of (`event_type`, `state_key`), a key the auth rules read for
    /// `event`. Almost every such key is `event`'s own (a member event's target), a
    /// room-wide one, or that of one of its auth events (the sender's membership), whose
    /// ids are at hand; only other keys cost a lookup of their strings in the index.
    /// `None`: no indexed event has the key.
    fn key_id(&self, event: &Loaded<'_>, event_type: &str, state_key: &str) -> Option<StateKeyId> {
        if key_matches(event_type, state_key, event.pdu) {
            return event.key;
        }
        if state_key.is_empty() {
            if let Some(&(_, id)) = self.room_keys.iter().find(|&&(t, _)| t == event_type) {
                return id;
            }
        }
        let listed =
            event.auth_events.iter().find(|auth| key_matches(event_type, state_key, auth.pdu));
        match listed {
            Some(auth) => auth.key,
            None => self.nodes.index.find_state_key(event_type, state_key),
        }
    }

    /// The event under (`event_type`, `state_key`), whose interned id is `key`.
    fn get(
        &self,
        key: Option<StateKeyId>,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Fetched<'s>>, ResolveError> {
        let unconflicted = match key {
            Some(id) => {
                let slot = &self.slots[id.index()];
                if let Some(admitted) = slot.admitted {
                    return Ok(Some(admitted));
                }
                slot.unconflicted
            }
            None => {
                let listed =
                    self.unindexed.iter().find(|(k, _)| k.0 == event_type && k.1 == state_key);
                listed.map_or(Unconflicted::None, |&(_, node)| Unconflicted::Unchecked(node))
            }
        };
        match unconflicted {
            Unconflicted::None => Ok(None),
            Unconflicted::Checked(found) => Ok(Some(found)),
            Unconflicted::Unchecked(node) => {
                let found = self.nodes.fetch(node)?;
                // An unconflicted event is in every state set; report it against the first.
                check_key_parts(0, event_type, state_key, found.0)?;
                Ok(Some(found))
            }
        }
    }

    fn admit(&mut self, event: &Loaded<'s>) {
        let id = event.key.expect("only state events are checked");
        self.slots[id.index()].admitted = Some((event.pdu, event.rejection));
    }
}

/// Checks that a state map's key names the event's own `type` and `state_key`.
fn check_key(state_set: usize, key: &StateKey, pdu: &Pdu) -> Result<(), ResolveError> {
    check_key_parts(state_set, &key.0, &key.1, pdu)
}

/// Whether `pdu` is a state event with this `type` and `state_key`.
fn key_matches(event_type: &str, state_key: &str, pdu: &Pdu) -> bool {
    pdu.state_key() == Some(state_key) && pdu.event_type() == event_type
}

/// [`check_key`] without an owned key: allocates only to report a mismatch.
fn check_key_parts(
    state_set: usize,
    event_type: &str,
    state_key: &str,
    pdu: &Pdu,
) -> Result<(), ResolveError> {
    if key_matches(event_type, state_key, pdu) {
        return Ok(());
    }
    let key = (event_type.to_owned(), state_key.to_owned());
    let actual = match pdu.state_key() {
        Some(state_key) => format!("({:?}, {state_key:?})", pdu.event_type()),
        None => format!("a non-state {:?} event", pdu.event_type()),
    };
    Err(ResolveError::KeyMismatch { state_set, key, event_id: pdu.event_id().clone(), actual })
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
    events: &[&Loaded<'s>],
    partial: &mut PartialState<'_, 's, '_, S>,
    decisions: &mut Vec<AuthDecision>,
) -> Result<(), ResolveError> {
    // One buffer for every event's auth state.
    let mut state = SmallState { events: Vec::new() };
    for &event in events {
        assert!(event.pdu.is_state(), "only state events are checked");
        let skip = match (event.rejection, options.rejected) {
            (None, _) => false,
            (Some(RejectionKind::AuthEvents), _) => true,
            (Some(RejectionKind::StateBefore), RejectedEvents::Spec) => false,
            (Some(RejectionKind::StateBefore), RejectedEvents::NeverReadmit) => true,
        };
        let outcome = if skip {
            AuthOutcome::PreviouslyRejected(event.rejection.expect("skip implies rejected"))
        } else {
            state.events.clear();
            // Rejected auth events are never a fallback (digest §4).
            for auth in &event.auth_events {
                if let (Some(key), None) = (auth.key, auth.rejection) {
                    state.set(key, auth.pdu);
                }
            }
            let pdu = event.pdu;
            let keys = auth::auth_keys_for_event(
                rules,
                pdu.event_type(),
                pdu.sender(),
                pdu.state_key(),
                pdu.content(),
            );
            for &(event_type, state_key) in &keys {
                let key = partial.key_id(event, event_type, state_key);
                let Some((current, rejection)) = partial.get(key, event_type, state_key)? else {
                    continue;
                };
                if rejection.is_some() && options.rejected == RejectedEvents::NeverReadmit {
                    continue;
                }
                state.set(key.expect("the partial state holds indexed events"), current);
            }
            match auth::check_state_rules(rules, pdu, &state, SignatureCheck::AlreadyVerified) {
                Ok(()) => {
                    partial.admit(event);
                    AuthOutcome::Allowed
                }
                Err(rejection) => AuthOutcome::Rejected(rejection),
            }
        };
        if options.explain {
            decisions.push(AuthDecision { event_id: event.pdu.event_id().clone(), pass, outcome });
        }
    }
    Ok(())
}

/// Resolves `state_sets` (digest §3): state resolution v2 or v2.1 as `rules.state_res`
/// says. The result does not depend on the order of `state_sets` (nor, of course, on how
/// the store orders its events).
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
    let v2_1 = rules.state_res == StateResAlgorithm::V2_1;
    let mut explanation = Explanation::empty(rules.state_res, options.auth_chain, options.rejected);
    let finish = |state: StateMap, mut explanation: Explanation| {
        let explanation = options.explain.then(|| {
            explanation.state = state.clone();
            explanation
        });
        Ok(Resolved { state, explanation })
    };

    // Step 0: the unconflicted state map and the conflicted state set. Nothing conflicted:
    // the unconflicted map is the answer.
    let separated = Separated::of(state_sets);
    let owned_unconflicted = || -> StateMap {
        separated.unconflicted.iter().map(|&(key, id)| (key.clone(), id.clone())).collect()
    };
    if options.explain {
        explanation.unconflicted = owned_unconflicted();
    }
    if separated.conflicted.is_empty() {
        return finish(owned_unconflicted(), explanation);
    }

    // Index the auth chains of every event of every state set: the store's index if it
    // covers them all (one lookup per distinct event), otherwise a fresh one.
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
    let built;
    let (index, table, common_nodes, conflicted_nodes) =
        match events.auth_chain_index().and_then(|index| Some((index, lookup_all(index)?))) {
            Some((index, (common, conflicted))) => (index, None, common, conflicted),
            None => {
                let mut roots: Vec<EventId> =
                    separated.unconflicted.iter().map(|&(_, id)| id.clone()).collect();
                roots.extend(conflicted_ids.iter().map(|&id| id.clone()));
                let (index, table) = AuthChainIndex::build_with_events(events, rules, &roots)?;
                built = index;
                let (common, conflicted) =
                    lookup_all(&built).expect("every state event is indexed");
                (&built, Some(table), common, conflicted)
            }
        };
    let nodes = Nodes { store: events, index, table };
    // The node of a conflicted event, by binary search in the sorted ids.
    let conflicted_node_of = |id: &EventId| {
        let position = conflicted_ids.binary_search(&id).expect("a conflicted event");
        conflicted_nodes[position]
    };
    let conflicted_per_set: Vec<Vec<NodeId>> = separated
        .conflicted_per_set
        .iter()
        .map(|ids| ids.iter().map(|&id| conflicted_node_of(id)).collect())
        .collect();

    // The full conflicted set: the conflicted state set, the auth difference and, since
    // v12 (state resolution v2.1), the conflicted state subgraph.
    let auth_difference =
        index.auth_difference_with_common(&common_nodes, &conflicted_per_set, options.auth_chain);
    let subgraph = if v2_1 { index.conflicted_subgraph(&conflicted_nodes) } else { Vec::new() };
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
        full.push(Loaded::load(&nodes, node)?);
    }
    // Every conflicted event must be a state event under its own key.
    for (key, ids) in &separated.conflicted {
        for &event_id in ids {
            let position = full_nodes.binary_search(&conflicted_node_of(event_id));
            let pdu = full[position.expect("conflicted events are in the full set")].pdu;
            if let Err(error) = check_key(0, key, pdu) {
                let ResolveError::KeyMismatch { key, event_id, actual, .. } = error else {
                    unreachable!("check_key only reports mismatches")
                };
                let state_set = state_sets.iter().position(|set| set.get(&key) == Some(&event_id));
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
        explanation.conflicted = sorted_ids(&conflicted_nodes);
        explanation.auth_difference = sorted_ids(&auth_difference);
        explanation.conflicted_subgraph = sorted_ids(&subgraph);
        explanation.full_conflicted = sorted_ids(&full_nodes);
    }

    // Step 1: X = the power events of the full conflicted set plus every event of their
    // auth chains that is in the full conflicted set, in reverse topological power order.
    // Only state events take part in the iterative auth checks (a non-state event can
    // reach the full conflicted set only through malformed auth_events).
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

    // Step 2: iterative auth checks over X, starting from the unconflicted state map under
    // v2 and, since v12 (v2.1), from an empty state map.
    let mut partial = PartialState::new(&nodes, !v2_1, &separated.unconflicted, &common_nodes);
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
    let others: Vec<&Loaded<'_>> = (0..full.len())
        .filter(|&i| full[i].pdu.is_state() && !in_power_set[i])
        .map(|i| &full[i])
        .collect();
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

    // Step 4: iterative auth checks over them, on top of the partially resolved state.
    iterative_auth_checks(
        rules,
        &options,
        AuthPass::Others,
        &others_sorted,
        &mut partial,
        &mut decisions,
    )?;

    // Step 5: the unconflicted state map overwrites the result. Both lists are sorted by
    // key (`&str` pairs order as `String` pairs do), so one merge gives the result in order
    // (built in bulk); an admitted event under an unconflicted key is dropped.
    let mut admitted: Vec<((&str, &str), &EventId)> = partial
        .slots
        .iter()
        .filter_map(|slot| {
            let (pdu, _) = slot.admitted?;
            let state_key = pdu.state_key().expect("only state events are admitted");
            Some(((pdu.event_type(), state_key), pdu.event_id()))
        })
        .collect();
    admitted.sort_unstable();
    let owned = |((event_type, state_key), event_id): ((&str, &str), &EventId)| {
        ((event_type.to_owned(), state_key.to_owned()), event_id.clone())
    };
    let mut merged: Vec<(StateKey, EventId)> =
        Vec::with_capacity(separated.unconflicted.len() + admitted.len());
    let mut admitted = admitted.into_iter().peekable();
    for &(key, event_id) in &separated.unconflicted {
        let key_strs = (key.0.as_str(), key.1.as_str());
        while let Some(entry) = admitted.next_if(|&(k, _)| k < key_strs) {
            merged.push(owned(entry));
        }
        admitted.next_if(|&(k, _)| k == key_strs);
        merged.push((key.clone(), event_id.clone()));
    }
    merged.extend(admitted.map(owned));
    assert!(merged.windows(2).all(|w| w[0].0 < w[1].0), "merge keeps keys sorted and unique");
    let state: StateMap = merged.into_iter().collect();
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
