//! ruma-state-res as an oracle: resolves the same input as mxsim with an independent
//! implementation. Shared by `tests/it/state_res_diff.rs`, `benches/state_res.rs`,
//! `benches/resolve_vs_ruma.rs` and `benches/resolve_e2e.rs` (which deserializes
//! [`RumaPdu`]s from an input file, as a ruma-based program would).
//!
//! Auth chains and the v2.1 conflicted subgraph are computed here by plain graph walks,
//! independently of mxsim's `matrix::dag` index.

// Shared by a test and a bench, which each use a part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mxsim::matrix::state_res::{AuthChainReading, StateMap};
use mxsim::matrix::{EventId, Pdu, RoomVersion};
use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules as RumaRules;
use ruma::state_res::{self, Event, utils::event_id_set::EventIdSet};
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, RoomVersionId,
    UInt, UserId,
};
use serde_json::value::RawValue;

/// An event in the shape ruma's `Event` trait wants, converted from a [`Pdu`] or
/// deserialized from PDU JSON.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct RumaPdu {
    pub event_id: OwnedEventId,
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    #[serde(rename = "type")]
    event_type: TimelineEventType,
    content: Box<RawValue>,
    state_key: Option<String>,
    #[serde(default)]
    prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    redacts: Option<OwnedEventId>,
    #[serde(default)]
    rejected: bool,
}

impl Event for RumaPdu {
    type Id = OwnedEventId;
    fn event_id(&self) -> &OwnedEventId {
        &self.event_id
    }
    fn room_id(&self) -> Option<&RoomId> {
        self.room_id.as_deref()
    }
    fn sender(&self) -> &UserId {
        &self.sender
    }
    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }
    fn event_type(&self) -> &TimelineEventType {
        &self.event_type
    }
    fn content(&self) -> &RawValue {
        &self.content
    }
    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }
    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &OwnedEventId> + '_> {
        Box::new(self.prev_events.iter())
    }
    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &OwnedEventId> + '_> {
        Box::new(self.auth_events.iter())
    }
    fn redacts(&self) -> Option<&OwnedEventId> {
        self.redacts.as_ref()
    }
    fn rejected(&self) -> bool {
        self.rejected
    }
}

fn owned_id(id: &EventId) -> OwnedEventId {
    OwnedEventId::try_from(id.as_str()).expect("ruma accepts mxsim event ids")
}

/// Converts an mxsim event.
pub fn convert(pdu: &Pdu, rejected: bool) -> RumaPdu {
    let ts = u64::try_from(pdu.origin_server_ts()).expect("non-negative timestamps");
    RumaPdu {
        event_id: owned_id(pdu.event_id()),
        room_id: pdu.room_id().map(|r| OwnedRoomId::try_from(r).expect("ruma accepts the room id")),
        sender: OwnedUserId::try_from(pdu.sender()).expect("ruma accepts the sender"),
        origin_server_ts: MilliSecondsSinceUnixEpoch(UInt::new(ts).expect("timestamp in range")),
        event_type: TimelineEventType::from(pdu.event_type()),
        content: RawValue::from_string(serde_json::to_string(pdu.content()).unwrap()).unwrap(),
        state_key: pdu.state_key().map(str::to_owned),
        prev_events: pdu.prev_events().iter().map(owned_id).collect(),
        auth_events: pdu.auth_events().iter().map(owned_id).collect(),
        redacts: pdu.redacts().map(owned_id),
        rejected,
    }
}

/// A room's events converted once, for repeated resolutions.
pub struct Oracle {
    rules: RumaRules,
    events: BTreeMap<OwnedEventId, RumaPdu>,
}

impl Oracle {
    pub fn new(
        version: RoomVersion,
        events: &BTreeMap<EventId, Arc<Pdu>>,
        rejected: &BTreeSet<EventId>,
    ) -> Oracle {
        let id = match version {
            RoomVersion::V10 => RoomVersionId::V10,
            RoomVersion::V11 => RoomVersionId::V11,
            RoomVersion::V12 => RoomVersionId::V12,
            RoomVersion::LinearizedMatrix02 => {
                panic!("the ruma oracle resolves DAG room versions only")
            }
        };
        let rules = id.rules().expect("ruma knows rooms 10, 11, 12");
        let events = events
            .iter()
            .map(|(id, pdu)| (owned_id(id), convert(pdu, rejected.contains(id))))
            .collect();
        Oracle { rules, events }
    }

    /// Adds or replaces events (for rooms that grow between resolutions).
    pub fn extend(&mut self, events: &BTreeMap<EventId, Arc<Pdu>>) {
        for (id, pdu) in events {
            self.events.entry(owned_id(id)).or_insert_with(|| convert(pdu, false));
        }
    }

    /// The auth chain of one event (its auth events, recursively; not the event itself).
    fn auth_chain(&self, id: &OwnedEventId, out: &mut BTreeSet<OwnedEventId>) {
        let mut stack: Vec<&OwnedEventId> = self.events[id].auth_events.iter().collect();
        while let Some(next) = stack.pop() {
            if out.insert(next.clone()) {
                stack.extend(self.events[next].auth_events.iter());
            }
        }
    }

    fn full_auth_chain(
        &self,
        state: &StateMap,
        reading: AuthChainReading,
    ) -> EventIdSet<OwnedEventId> {
        let mut chain = BTreeSet::new();
        for id in state.values() {
            let id = owned_id(id);
            self.auth_chain(&id, &mut chain);
            if reading == AuthChainReading::Inclusive {
                chain.insert(id);
            }
        }
        chain.into_iter().collect()
    }

    /// The v2.1 conflicted state subgraph by plain walks: events reachable from a
    /// conflicted event (≥ 0 `auth_events` hops) from which a conflicted event is reachable.
    fn conflicted_subgraph(&self, conflicted: &BTreeSet<OwnedEventId>) -> EventIdSet<OwnedEventId> {
        let mut below = conflicted.clone();
        for id in conflicted {
            self.auth_chain(id, &mut below);
        }
        // reaches[x]: x is conflicted or one of its auth events reaches a conflicted event.
        let mut reaches: BTreeMap<&OwnedEventId, bool> = BTreeMap::new();
        fn visit<'a>(
            oracle: &'a Oracle,
            id: &'a OwnedEventId,
            conflicted: &BTreeSet<OwnedEventId>,
            reaches: &mut BTreeMap<&'a OwnedEventId, bool>,
        ) -> bool {
            if let Some(&known) = reaches.get(id) {
                return known;
            }
            let mut result = conflicted.contains(id);
            for parent in &oracle.events[id].auth_events {
                result |= visit(oracle, parent, conflicted, reaches);
            }
            reaches.insert(id, result);
            result
        }
        below.iter().filter(|id| visit(self, id, conflicted, &mut reaches)).cloned().collect()
    }

    /// Converts the state sets and computes their auth chains: everything ruma's
    /// `resolve` takes from its caller.
    pub fn prepare(&self, state_sets: &[StateMap], reading: AuthChainReading) -> Prepared {
        let maps = state_sets
            .iter()
            .map(|set| {
                set.iter()
                    .map(|((t, k), id)| {
                        ((StateEventType::from(t.as_str()), k.clone()), owned_id(id))
                    })
                    .collect()
            })
            .collect();
        let chains = state_sets.iter().map(|s| self.full_auth_chain(s, reading)).collect();
        Prepared { maps, chains }
    }

    /// Runs ruma's `resolve` on prepared input (the auth chains are consumed, as ruma
    /// takes them by value).
    pub fn run(
        &self,
        maps: &[state_res::StateMap<OwnedEventId>],
        chains: Vec<EventIdSet<OwnedEventId>>,
    ) -> Result<StateMap, String> {
        let resolved = state_res::resolve(
            &self.rules.authorization,
            self.rules.state_res.v2_rules().expect("v2 rules for rooms 10-12"),
            maps,
            chains,
            |id| self.events.get(id),
            |conflicted| {
                let ids: BTreeSet<OwnedEventId> = conflicted.values().flatten().cloned().collect();
                Some(self.conflicted_subgraph(&ids))
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(resolved
            .into_iter()
            .map(|((t, k), id)| ((t.to_string(), k), EventId::parse(id.as_str()).unwrap()))
            .collect())
    }

    /// Resolves `state_sets` with ruma.
    pub fn resolve(
        &self,
        state_sets: &[StateMap],
        reading: AuthChainReading,
    ) -> Result<StateMap, String> {
        let prepared = self.prepare(state_sets, reading);
        self.run(&prepared.maps, prepared.chains)
    }
}

/// ruma's inputs for one resolution.
pub struct Prepared {
    pub maps: Vec<state_res::StateMap<OwnedEventId>>,
    pub chains: Vec<EventIdSet<OwnedEventId>>,
}
