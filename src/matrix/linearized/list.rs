//! The hub's list of a room as a value ([`HubList`]): what a participant (and the checker)
//! replays to check the hub's ordering and auth decisions.
//!
//! Spec: the hub "appends events in order of receipt"; the state at an event is the latest
//! event per (`type`, `state_key`) in list order (digest: spec/linearized-matrix.md §1, §6
//! "State in LM"). DAG-capable servers "keep using the DAG", and how the hub linearizes
//! their events is not specified (digest §1; the draft's notes mention "filler" events).
//!
//! [digest] mxsim's reading, "the list is a DAG read in list order":
//! - Every event of the list names prev events that are earlier in the list, so the list
//!   is a topological order of a DAG. Its forward extremities are the events no later event
//!   names as a prev event (each append removes its prev events and adds itself).
//! - The state after an event is the state before it plus the event if it is a state
//!   event; the state before an event is the state after its only prev event, or the
//!   room version's state resolution of the states after its prev events; the list's
//!   current state is the state after its only forward extremity, or the resolution of the
//!   states after all of them. On a chain (every pure Linearized Matrix room) this is the
//!   draft's fold in list order.
//! - An event the hub built (with `hub_server`, or sent by one of the hub's users) names
//!   exactly the forward extremities (on a chain: the head) and the auth events the
//!   selection picks from the current state, and passes the auth rules there.
//! - An event from a DAG-capable server (no `hub_server`, sender elsewhere) keeps its own
//!   prev and auth events, which must be in the list; it passes the auth rules against its
//!   auth events and the state before it (receipt steps 4–5), and against the list's
//!   current state: the hub does not append an event it would soft-fail (step 6, as
//!   Synapse soft-fails).
//! - Once a DAG event left several forward extremities, the hub appends a merge event
//!   ([`MERGE_EVENT_TYPE`](super::MERGE_EVENT_TYPE), built by
//!   [`build_merge_event`](super::build_merge_event)) naming all of them, as Synapse's
//!   `_send_dummy_events_to_fill_extremities` sends `org.matrix.dummy_event`s. Where the
//!   resolution decides a key differently from the fold in list order
//!   ([`HubList::fold_disagreement`]) is where the draft's filler events would be needed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::matrix::auth::{self, Rejection, SignatureCheck};
use crate::matrix::dag::EventStore;
use crate::matrix::ids::EventId;
use crate::matrix::pdu::Pdu;
use crate::matrix::room_version::RoomVersionRules;
use crate::matrix::state_res::{self, ResolveOptions, StateMap};

use super::select_from;

/// A state of the list: (`type`, `state_key`) → event.
pub type ListState = BTreeMap<(String, String), Arc<Pdu>>;

/// The hub's list of a room as a server holds it: the events in list order, the state
/// after each, the forward extremities and the current state (see the module comment for
/// the reading). The hub appends to its list; a participant appends what the hub sends and
/// so checks the hub's ordering and auth decisions.
#[derive(Clone, Debug, Default)]
pub struct HubList {
    /// The hub: the server of the create event's `sender` (draft "Hub Selection").
    hub: Option<String>,
    events: Vec<Arc<Pdu>>,
    positions: BTreeMap<EventId, u64>,
    /// The state after each event, by position; events that change nothing share the map.
    after: Vec<Arc<ListState>>,
    /// The events no appended event names as a prev event.
    extremities: BTreeSet<EventId>,
    /// The state after the only forward extremity, or the resolution of the states after
    /// all of them.
    state: Arc<ListState>,
    /// The latest event per key in list order (the draft's fold; equal to `state` on a
    /// chain).
    fold: ListState,
}

/// What was wrong with an event the hub put into its list (or sent as the next one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HubFault {
    /// The first event is not `m.room.create`, or a later one is.
    CreateNotFirst,
    /// The event is already in the list.
    Duplicate,
    /// `hub_server` is not the room's hub.
    WrongHub,
    /// An event the hub built does not name exactly the list's forward extremities as its
    /// prev events (on a chain: the head alone).
    NotAfterHead,
    /// An event from a DAG-capable server names a prev event that is not in the list (or
    /// none).
    UnknownPrevEvent,
    /// An auth event is not in the list.
    UnknownAuthEvent,
    /// An event the hub built does not list exactly the auth events the selection picks
    /// from the state before it.
    AuthEventsNotSelected,
    /// The event fails the auth rules (for a DAG event: against its auth events, the state
    /// before it, or the list's current state), or the states it follows cannot be
    /// resolved: the hub should have rejected it.
    Rejected,
}

/// A participant's finding: the hub put an event into the list that the rules forbid. The
/// event is not appended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("hub fault at position {position} ({event_id}): {fault:?}: {reason}")]
pub struct HubMisbehaviour {
    /// The list position the event would have had.
    pub position: u64,
    pub event_id: EventId,
    pub fault: HubFault,
    pub reason: String,
    /// The auth rule that rejects the event, for [`HubFault::Rejected`].
    pub rejection: Option<Rejection>,
}

/// The list's events, and the event being appended, for state resolution.
struct Store<'a> {
    list: &'a HubList,
    pending: &'a Arc<Pdu>,
}

impl Store<'_> {
    fn arc(&self, event_id: &EventId) -> Option<&Arc<Pdu>> {
        match self.list.position(event_id) {
            Some(at) => self.list.events.get(usize::try_from(at).ok()?),
            None => Some(self.pending).filter(|pdu| pdu.event_id() == event_id),
        }
    }
}

impl EventStore for Store<'_> {
    fn get(&self, event_id: &EventId) -> Option<&Pdu> {
        self.arc(event_id).map(|pdu| &**pdu)
    }
}

/// Event ids for a reason: `[a, b]`.
fn ids<'a>(ids: impl IntoIterator<Item = &'a EventId>) -> String {
    let ids: Vec<&str> = ids.into_iter().map(EventId::as_str).collect();
    format!("[{}]", ids.join(", "))
}

impl HubList {
    pub fn new() -> HubList {
        HubList::default()
    }

    /// The hub, once the create event is in the list.
    pub fn hub(&self) -> Option<&str> {
        self.hub.as_deref()
    }

    /// The number of events in the list.
    pub fn len(&self) -> u64 {
        self.events.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The last event of the list (always one of its forward extremities).
    pub fn head(&self) -> Option<&Pdu> {
        self.events.last().map(|pdu| &**pdu)
    }

    /// The events in list order.
    pub fn events(&self) -> &[Arc<Pdu>] {
        &self.events
    }

    /// The position of an event in the list.
    pub fn position(&self, event_id: &EventId) -> Option<u64> {
        self.positions.get(event_id).copied()
    }

    /// The forward extremities, in event-id order: the events of the list that no later
    /// event names as a prev event. One (the head) on a chain; none before the create.
    pub fn forward_extremities(&self) -> &BTreeSet<EventId> {
        &self.extremities
    }

    /// The current state: the state after the only forward extremity, or the state
    /// resolution of the states after all of them. On a chain, (`type`, `state_key`) →
    /// the latest such event in list order.
    pub fn state(&self) -> &ListState {
        &self.state
    }

    /// The state after the event at `position`.
    pub fn state_after(&self, position: u64) -> Option<&ListState> {
        self.after.get(usize::try_from(position).ok()?).map(|state| &**state)
    }

    /// The draft's fold: (`type`, `state_key`) → the latest such event in list order.
    pub fn fold(&self) -> &ListState {
        &self.fold
    }

    /// The keys, sorted, under which the current state differs from the fold in list order
    /// (an event in one and another or none in the other): where the resolution of the
    /// list's branches decided differently from the order of receipt, that is where the
    /// draft's "filler" events would be needed. Empty on a chain.
    pub fn fold_disagreement(&self) -> Vec<(String, String)> {
        fn id<'s>(state: &'s ListState, key: &(String, String)) -> Option<&'s EventId> {
            state.get(key).map(|pdu| pdu.event_id())
        }
        let keys: BTreeSet<&(String, String)> = self.state.keys().chain(self.fold.keys()).collect();
        keys.into_iter()
            .filter(|key| id(&self.state, key) != id(&self.fold, key))
            .cloned()
            .collect()
    }

    /// Appends the next event of the hub's list after checking that the hub was allowed to
    /// put it there: order, `hub_server`, prev and auth events and the auth rules (see the
    /// module comment for the reading). On a fault nothing changes.
    ///
    /// The event's signatures and hashes are the receipt checks' business (`pdu::verify`,
    /// run first); `signatures` says whether the auth rules re-check them (rules 1–2).
    ///
    /// Spec: receipt checks and auth rules, which a hub MUST and a participant SHOULD run
    /// (digest: spec/linearized-matrix.md §6). [digest] The ordering checks are this
    /// module's reading of the draft's model: an event the hub built names the list's
    /// forward extremities (the head, on a chain) and lists exactly the selected auth
    /// events; an event from a DAG-capable server keeps its own prev and auth events, which
    /// must already be in the list, and is checked as a DAG server would check it, soft
    /// failure included.
    pub fn append(
        &mut self,
        rules: &RoomVersionRules,
        pdu: Arc<Pdu>,
        signatures: SignatureCheck<'_>,
    ) -> Result<u64, HubMisbehaviour> {
        let position = self.len();
        let fault = |fault: HubFault, reason: String| HubMisbehaviour {
            position,
            event_id: pdu.event_id().clone(),
            fault,
            reason,
            rejection: None,
        };
        let rejected = |context: Option<&str>, rejection: Rejection| {
            let reason = match context {
                Some(context) => format!("{context}: {rejection}"),
                None => rejection.to_string(),
            };
            HubMisbehaviour { rejection: Some(rejection), ..fault(HubFault::Rejected, reason) }
        };
        if self.positions.contains_key(pdu.event_id()) {
            return Err(fault(HubFault::Duplicate, "the event is already in the list".into()));
        }
        let is_create = pdu.event_type() == "m.room.create" && pdu.state_key() == Some("");
        if is_create != self.events.is_empty() {
            let reason = if is_create {
                "a second m.room.create"
            } else {
                "the list must start with m.room.create"
            };
            return Err(fault(HubFault::CreateNotFirst, reason.into()));
        }
        // Hub selection: the create event's sender's server.
        let hub =
            if is_create { pdu.origin() } else { self.hub.as_deref().expect("set by create") };
        if let Some(named) = pdu.hub_server().filter(|named| *named != hub) {
            return Err(fault(
                HubFault::WrongHub,
                format!("hub_server {named} is not the hub {hub}"),
            ));
        }
        let built_by_hub = super::built_by_hub(&pdu, hub);
        let prevs: BTreeSet<&EventId> = pdu.prev_events().iter().collect();
        if built_by_hub {
            if !prevs.iter().copied().eq(self.extremities.iter()) {
                return Err(fault(
                    HubFault::NotAfterHead,
                    format!(
                        "prev_events {} are not the list's forward extremities {} (head {})",
                        ids(pdu.prev_events()),
                        ids(&self.extremities),
                        self.head().map_or("(none)", |head| head.event_id().as_str())
                    ),
                ));
            }
        } else if prevs.is_empty() {
            return Err(fault(HubFault::UnknownPrevEvent, "no prev events".into()));
        } else if let Some(unknown) = prevs.iter().find(|id| self.position(id).is_none()) {
            return Err(fault(
                HubFault::UnknownPrevEvent,
                format!("prev event {unknown} is not in the list"),
            ));
        }
        let mut auth_events: Vec<(&Pdu, bool)> = Vec::with_capacity(pdu.auth_events().len());
        for id in pdu.auth_events() {
            let Some(at) = self.position(id) else {
                return Err(fault(
                    HubFault::UnknownAuthEvent,
                    format!("auth event {id} is not in the list"),
                ));
            };
            auth_events.push((&*self.events[self.index(at)], false));
        }
        if built_by_hub && !is_create {
            let mut selected = select_from(rules, &pdu, self);
            let mut listed = pdu.auth_events().to_vec();
            selected.sort();
            listed.sort();
            if selected != listed {
                return Err(fault(
                    HubFault::AuthEventsNotSelected,
                    format!("auth_events {listed:?} are not the selected {selected:?}"),
                ));
            }
        }
        // The state before the event: the current state for an event the hub built (its
        // prev events are the forward extremities), else the state after its prev events.
        let before = if built_by_hub {
            auth::check_event(rules, &pdu, &auth_events, &*self.state, signatures)
                .map_err(|rejection| rejected(None, rejection))?;
            Arc::clone(&self.state)
        } else {
            // Receipt steps 4 (its auth events), 5 (the state before it) and 6 (soft
            // failure against the current state), in that order.
            let by_auth_events: BTreeMap<(String, String), &Pdu> = auth_events
                .iter()
                .filter_map(|(event, _)| {
                    let key = event.state_key()?;
                    Some(((event.event_type().to_owned(), key.to_owned()), *event))
                })
                .collect();
            auth::check_event(rules, &pdu, &auth_events, &by_auth_events, signatures)
                .map_err(|rejection| rejected(Some("against its auth events"), rejection))?;
            let states: Vec<&Arc<ListState>> =
                prevs.iter().map(|id| &self.after[self.index_of(id)]).collect();
            let before = self.resolve(rules, &states, &pdu).map_err(|error| {
                fault(
                    HubFault::Rejected,
                    format!("the states after its prev events do not resolve: {error}"),
                )
            })?;
            auth::check_state_rules(rules, &pdu, &*before, signatures).map_err(|rejection| {
                rejected(Some("against the state before it (after its prev events)"), rejection)
            })?;
            auth::check_state_rules(rules, &pdu, &*self.state, signatures).map_err(
                |rejection| {
                    rejected(Some("soft-failed against the list's current state"), rejection)
                },
            )?;
            before
        };
        let after = match pdu.state_key() {
            Some(state_key) => {
                let mut after = (*before).clone();
                after.insert((pdu.event_type().to_owned(), state_key.to_owned()), pdu.clone());
                Arc::new(after)
            }
            None => before,
        };
        let mut extremities = self.extremities.clone();
        for prev in &prevs {
            extremities.remove(*prev);
        }
        extremities.insert(pdu.event_id().clone());
        let current = if extremities.len() == 1 {
            Arc::clone(&after)
        } else {
            let states: Vec<&Arc<ListState>> = extremities
                .iter()
                .map(
                    |id| if id == pdu.event_id() { &after } else { &self.after[self.index_of(id)] },
                )
                .collect();
            self.resolve(rules, &states, &pdu).map_err(|error| {
                fault(
                    HubFault::Rejected,
                    format!("the states after the forward extremities do not resolve: {error}"),
                )
            })?
        };
        if is_create {
            self.hub = Some(hub.to_owned());
        }
        if let Some(state_key) = pdu.state_key() {
            self.fold.insert((pdu.event_type().to_owned(), state_key.to_owned()), pdu.clone());
        }
        self.positions.insert(pdu.event_id().clone(), position);
        self.events.push(pdu);
        self.after.push(after);
        self.extremities = extremities;
        self.state = current;
        assert_eq!(self.len(), position + 1);
        assert_eq!(self.after.len(), self.events.len());
        assert!(self.hub.is_some());
        Ok(position)
    }

    /// The index in `events` of a position.
    fn index(&self, position: u64) -> usize {
        let index = usize::try_from(position).expect("positions index the list");
        assert!(index < self.events.len());
        index
    }

    /// The index in `events` of an event of the list.
    fn index_of(&self, event_id: &EventId) -> usize {
        self.index(self.position(event_id).expect("an event of the list"))
    }

    /// The state resolution of `states` (one state is its own resolution), over the list's
    /// events and `pending`, the event being appended.
    fn resolve(
        &self,
        rules: &RoomVersionRules,
        states: &[&Arc<ListState>],
        pending: &Arc<Pdu>,
    ) -> Result<Arc<ListState>, state_res::ResolveError> {
        let [first, rest @ ..] = states else { return Ok(Arc::default()) };
        if rest.iter().all(|state| Arc::ptr_eq(state, first)) {
            return Ok(Arc::clone(first));
        }
        let sets: Vec<StateMap> = states
            .iter()
            .map(|state| {
                let ids = state.iter().map(|(key, pdu)| (key.clone(), pdu.event_id().clone()));
                ids.collect()
            })
            .collect();
        let store = Store { list: self, pending };
        let resolved = state_res::resolve(rules, &sets, &store, ResolveOptions::default())?;
        let state = resolved.state.into_iter().map(|(key, id)| {
            // The resolution picks events of the state sets and of their auth chains, all
            // in the list (auth events must be) or the pending event.
            let pdu = store.arc(&id).expect("resolution picks events of the store");
            (key, Arc::clone(pdu))
        });
        Ok(Arc::new(state.collect()))
    }
}
