//! The events state resolution reads, each fetched once: by index node ([`Nodes`]), with
//! their auth events and interned keys ([`Loaded`]), and the small per-event auth state
//! ([`SmallState`]) the sender's power level and the iterative auth checks read.

use crate::matrix::auth::{self, AuthState, PowerLevel};
use crate::matrix::dag::{AuthChainIndex, EventStore, NodeId, RejectionKind, StateKeyId};
use crate::matrix::pdu::Pdu;
use crate::matrix::room_version::RoomVersionRules;

use super::{POWER_LEVELS, ResolveError};

/// The state an event is checked against in the iterative auth checks: a handful of
/// events with their interned keys, searched linearly.
pub(super) struct SmallState<'s> {
    pub(super) events: Vec<(StateKeyId, &'s Pdu)>,
}

impl<'s> SmallState<'s> {
    /// `key` is `pdu`'s own (`type`, `state_key`), interned.
    pub(super) fn set(&mut self, key: StateKeyId, pdu: &'s Pdu) {
        match self.events.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = pdu,
            None => self.events.push((key, pdu)),
        }
    }
}

impl AuthState for SmallState<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Pdu> {
        let found = self.events.iter().find(|(_, e)| e.has_key(event_type, state_key));
        found.map(|&(_, pdu)| pdu)
    }
}

/// Fetches events by index node: from the table of a fresh index, else from the store
/// (by node if it can, by id otherwise).
pub(super) struct Nodes<'s, 'i, S: ?Sized> {
    pub(super) store: &'s S,
    pub(super) index: &'i AuthChainIndex,
    /// The events of `index` by node, when it was built for this resolution.
    pub(super) table: Option<Vec<&'s Pdu>>,
}

impl<'s, S: EventStore + ?Sized> Nodes<'s, '_, S> {
    pub(super) fn fetch(
        &self,
        node: NodeId,
    ) -> Result<(&'s Pdu, Option<RejectionKind>), ResolveError> {
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
pub(super) struct AuthEvent<'s> {
    pub(super) node: NodeId,
    pub(super) pdu: &'s Pdu,
    pub(super) rejection: Option<RejectionKind>,
    /// Its interned (`type`, `state_key`), `None` for a non-state event.
    pub(super) key: Option<StateKeyId>,
}

/// An event of the full conflicted set with what resolution reads about it, fetched once.
pub(super) struct Loaded<'s> {
    pub(super) pdu: &'s Pdu,
    pub(super) rejection: Option<RejectionKind>,
    /// Its interned (`type`, `state_key`), `None` for a non-state event.
    pub(super) key: Option<StateKeyId>,
    /// Its auth events ([`crate::matrix::dag::auth_event_ids`]) in order.
    pub(super) auth_events: Vec<AuthEvent<'s>>,
}

impl<'s> Loaded<'s> {
    pub(super) fn load<S: EventStore + ?Sized>(
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
    pub(super) fn power_levels_auth_event(&self) -> Option<&'s Pdu> {
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
pub(super) fn sender_power_level(rules: &RoomVersionRules, event: &Loaded<'_>) -> PowerLevel {
    let mut state = SmallState { events: Vec::with_capacity(event.auth_events.len()) };
    for auth in &event.auth_events {
        if let Some(key) = auth.key {
            state.set(key, auth.pdu);
        }
    }
    auth::user_power_level(rules, &state, event.pdu.sender())
}
