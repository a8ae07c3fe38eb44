//! The partially resolved state and the iterative auth checks (digest §2) that build it,
//! in steps 2 and 4 of the algorithm.

use crate::matrix::auth::{self, SignatureCheck};
use crate::matrix::dag::{EventStore, NodeId, RejectionKind, StateKeyId};
use crate::matrix::ids::EventId;
use crate::matrix::pdu::Pdu;
use crate::matrix::room_version::RoomVersionRules;

use super::loaded::{Loaded, Nodes, SmallState};
use super::{
    AuthDecision, AuthOutcome, AuthPass, CREATE, JOIN_RULES, POWER_LEVELS, RejectedEvents,
    ResolveError, ResolveOptions, StateKey,
};

/// An event as fetched: the PDU and whether and why it was rejected on receipt.
pub(super) type Fetched<'s> = (&'s Pdu, Option<RejectionKind>);

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
pub(super) struct Slot<'s> {
    /// v2: the unconflicted state map's event for the key (v2.1 starts empty).
    unconflicted: Unconflicted<'s>,
    /// The last event the iterative auth checks admitted for the key.
    pub(super) admitted: Option<Fetched<'s>>,
}

/// The partially resolved state: what the iterative auth checks admitted over, under v2,
/// the unconflicted state map. One slot per key the index interned, so a read is an
/// array access once the key's id is known ([`Loaded::key_id`]); no string is hashed or
/// compared in a map on the hot path.
pub(super) struct PartialState<'a, 's, 'i, S: ?Sized> {
    nodes: &'a Nodes<'s, 'i, S>,
    /// By [`StateKeyId`].
    pub(super) slots: Vec<Slot<'s>>,
    /// v2: unconflicted entries under a key no indexed event has (so their event is not
    /// theirs, bad input reported if read). Almost always empty.
    unindexed: Vec<(&'a StateKey, NodeId)>,
    /// The ids of the room-wide keys with state key "" the auth rules read, looked up once.
    room_keys: [(&'static str, Option<StateKeyId>); 3],
}

impl<'a, 's: 'a, 'i, S: EventStore + ?Sized> PartialState<'a, 's, 'i, S> {
    /// The starting state: v2 the unconflicted state map (`unconflicted`, sorted by key,
    /// with its events' nodes), v2.1 empty.
    pub(super) fn new(
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
                Ok(found) if found.0.has_key(&key.0, &key.1) => {
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
        if event.pdu.has_key(event_type, state_key) {
            return event.key;
        }
        if state_key.is_empty() {
            if let Some(&(_, id)) = self.room_keys.iter().find(|&&(t, _)| t == event_type) {
                return id;
            }
        }
        let listed = event.auth_events.iter().find(|auth| auth.pdu.has_key(event_type, state_key));
        match listed {
            Some(auth) => auth.key,
            None => self.nodes.index.find_state_key(event_type, state_key),
        }
    }

    /// The event under (`event_type`, `state_key`), whose interned id is `key`.
    pub(super) fn get(
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
pub(super) fn check_key(state_set: usize, key: &StateKey, pdu: &Pdu) -> Result<(), ResolveError> {
    check_key_parts(state_set, &key.0, &key.1, pdu)
}

/// [`check_key`] without an owned key: allocates only to report a mismatch.
fn check_key_parts(
    state_set: usize,
    event_type: &str,
    state_key: &str,
    pdu: &Pdu,
) -> Result<(), ResolveError> {
    if pdu.has_key(event_type, state_key) {
        return Ok(());
    }
    let key = (event_type.to_owned(), state_key.to_owned());
    let actual = match pdu.state_key() {
        Some(state_key) => format!("({:?}, {state_key:?})", pdu.event_type()),
        None => format!("a non-state {:?} event", pdu.event_type()),
    };
    Err(ResolveError::KeyMismatch { state_set, key, event_id: pdu.event_id().clone(), actual })
}

/// Steps 2 and 4 (digest §3): the iterative auth checks (digest §2) of `events`, in
/// order, on top of `partial`.
///
/// Per event, the state checked against is built as Synapse does ([impl]): the event's
/// non-rejected auth events (v12: with the implicit create event) keyed by (`type`,
/// `state_key`), overwritten by the partial state for every key the auth-events selection
/// would pick for this event. Only the state-dependent rules run
/// ([`auth::check_state_rules`]); `auth_events` were judged on receipt and signatures
/// verified then.
pub(super) fn iterative_auth_checks<'s, S: EventStore + ?Sized>(
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
