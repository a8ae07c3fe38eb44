//! Per-server storage: events, their decision, state groups, forward extremities.
//!
//! State is stored as *state groups* (as Synapse does, module `state`): each group is a
//! delta against a parent group or a full snapshot, and no chain of deltas is longer than
//! [`SNAPSHOT_EVERY`], so that reading a state walks a bounded chain. An event points at
//! the group holding the state *before* it; the state after a state event is a one-entry
//! delta on top.
//!
//! Durability: [`Store`] is the committed part of a homeserver. Everything in it survives a
//! crash; a homeserver's in-memory parts (queues, caches, in-flight requests) do not. The
//! homeserver mutates the store only at the end of handling one input, so each input is
//! one atomic commit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::matrix::dag::{AuthChainIndex, EventStore, RejectionKind, implicit_create_room_id};
use crate::matrix::ids::{CreateIdText, EventIdMap};
use crate::matrix::{Decision, EventId, Pdu, RoomVersion, RoomVersionRules};
use crate::stdx::Blocks;

mod members;
mod state;

use state::StateGroup;
pub use state::{SNAPSHOT_EVERY, SharedSnapshots, StateGroupId};

/// State groups per full block of a store's list. At 80 bytes a group, a block is 20 KB:
/// the one being filled wastes 10 KB on average, against a quarter of the whole list when
/// it grew by doubling.
const GROUPS_PER_BLOCK: usize = 1 << 8;

/// (event type, state key).
pub type StateKey = (String, String);

/// A full state map.
pub type StateMap = BTreeMap<StateKey, EventId>;

/// What a server decided about a stored event on receipt (federation-api.md §3), with
/// the reason for a rejection or a soft-fail. The decision is never `Created` (a local
/// event is stored as accepted) nor `Dropped` (a dropped event is not stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// Why the event was rejected or soft-failed; `None` otherwise.
    pub reason: Option<String>,
}

impl Outcome {
    /// Passed every check; part of the room's DAG and (if a state event) its state.
    pub fn accepted() -> Outcome {
        Outcome { decision: Decision::Accepted, reason: None }
    }

    /// Known only as an auth or state event fetched to fill a gap; its own checks were
    /// against its auth events only.
    pub fn outlier() -> Outcome {
        Outcome { decision: Decision::Outlier, reason: None }
    }

    /// Rejected on receipt, for `reason`.
    pub fn rejected(kind: RejectionKind, reason: String) -> Outcome {
        Outcome { decision: Decision::from(kind), reason: Some(reason) }
    }

    /// Passed checks 4 and 5 but not 6 (current state): kept, not a forward extremity.
    pub fn soft_failed(reason: String) -> Outcome {
        Outcome { decision: Decision::SoftFailed, reason: Some(reason) }
    }

    pub fn is_rejected(&self) -> bool {
        self.decision.is_rejected()
    }

    /// Whether the decision is one a stored event can have, with a reason exactly when it
    /// is a rejection or a soft-fail.
    pub fn is_valid(&self) -> bool {
        let with_reason = self.decision.is_rejected() || self.decision == Decision::SoftFailed;
        storable(self.decision) && with_reason == self.reason.is_some()
    }
}

/// Whether a stored event can carry `decision`: a server stores its own new events as
/// accepted, and never stores a dropped one.
fn storable(decision: Decision) -> bool {
    !matches!(decision, Decision::Created | Decision::Dropped)
}

/// One stored event: 24 bytes beside its id in the store's map.
///
/// The decision is kept, the reason for a rejection or a soft-fail is not: the server
/// reports it when it decides (the trace's `event` record), and nothing reads it from the
/// store afterwards. Kept, it took an `Option<String>` of 24 bytes in every stored event,
/// and the decision's byte took a word of padding besides (a stored event was 56 bytes;
/// the stores' maps were a fifth of a 1,000-server run's heap).
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub pdu: Arc<Pdu>,
    /// State before the event, when known (not for outliers).
    pub state_before: Option<StateGroupId>,
    /// State after the event, when known (not for outliers).
    pub state_after: Option<StateGroupId>,
    /// The [`Outcome`]'s decision: never `Created` nor `Dropped`.
    pub decision: Decision,
    /// Whether the event was replaced by its redacted form (hash mismatch or an applied
    /// redaction).
    pub redacted: bool,
}

impl StoredEvent {
    /// An event decided with `outcome`, not redacted. Panics if `outcome` is not one a
    /// stored event can have ([`Outcome::is_valid`]).
    pub fn new(
        pdu: Arc<Pdu>,
        outcome: &Outcome,
        state_before: Option<StateGroupId>,
        state_after: Option<StateGroupId>,
    ) -> StoredEvent {
        assert!(outcome.is_valid(), "stored with {outcome:?}");
        StoredEvent { pdu, state_before, state_after, decision: outcome.decision, redacted: false }
    }

    /// Whether the event was rejected on receipt.
    pub fn is_rejected(&self) -> bool {
        self.decision.is_rejected()
    }
}

/// Per-room bookkeeping.
#[derive(Clone, Debug)]
pub struct RoomRecord {
    pub version: RoomVersion,
    /// Events with no accepted child, not rejected, not soft-failed.
    pub forward_extremities: BTreeSet<EventId>,
    /// Current state: the resolution of the states after the forward extremities.
    pub current_state: Option<StateGroupId>,
    /// Number of events stored for this room (any outcome).
    pub event_count: u64,
    /// The lowest `depth` of the events stored for this room with a state and not
    /// rejected (outliers do not count).
    pub depth_min: Option<i64>,
    /// [`EventId::from_room_id`] of the room's id, made once: the create event a room of
    /// version 12 or later implies, which every event checked or stored there looks up.
    /// Kept whatever the version; the callers ask the rules whether it applies.
    pub implied_create: Option<EventId>,
}

/// The committed storage of one homeserver.
#[derive(Clone, Debug, Default)]
pub struct Store {
    /// Looked up by id only; [`Store::events`] sorts them.
    events: EventIdMap<StoredEvent>,
    /// State groups by id: a group's id is its position. In blocks that are never moved
    /// ([`Blocks`]): as lists that doubled, a thousand servers' groups took 117.7 MB at
    /// the heap's peak, and 95.6 MB in blocks.
    groups: Blocks<StateGroup, GROUPS_PER_BLOCK>,
    /// Where snapshots are shared with other servers' stores, if they are
    /// ([`Store::share_snapshots`]).
    snapshots: Option<Arc<SharedSnapshots>>,
    rooms: BTreeMap<String, RoomRecord>,
    /// Invites for local users to rooms this server is not in: (room id, user) → the
    /// invite event (stored as an outlier).
    invites: BTreeMap<(String, String), EventId>,
    /// The original form of every event replaced by its redacted form: state resolution
    /// reads these ([`Store::original_pdu`]).
    originals: BTreeMap<EventId, Arc<Pdu>>,
    /// Per room, the auth chains of its stored events, extended when a state resolution
    /// needs them ([`Store::index_waiting`]), so that it does not index the room again.
    auth_indexes: BTreeMap<String, AuthChainIndex>,
    /// Per room, the stored events not yet in its auth-chain index, in the order they were
    /// stored ([`Store::index_waiting`]).
    awaiting_index: BTreeMap<String, Vec<EventId>>,
    /// Per room, how many stored events are not in its auth-chain index (their auth chain
    /// had a missing event); rooms with none are left out.
    unindexed: BTreeMap<String, u64>,
    /// Counts the changes to stored events (replaced, redacted): what a state resolution
    /// reads besides the states themselves ([`Store::events_version`]).
    events_version: u64,
    /// Linearized Matrix, at a hub: the id of each LPDU it completed → the event it made of
    /// it, so that a copy sent again (a retried transaction, a catch-up) is not appended
    /// twice.
    lpdus: BTreeMap<EventId, EventId>,
    /// Per server name, the users that stored `m.room.member` events are about (their
    /// state keys), whatever the room: which member entries of a state can name one of
    /// the server's users, so that asking whether a server has a member in a state reads
    /// those few entries, not the state's whole member list ([`Store::member_users`]).
    member_users: members::MemberUsers,
    /// Events that a stored event with a state names as a prev event while they are not
    /// stored as accepted here: when one of them is committed later, it does not become a
    /// forward extremity ([`Store::take_cited_ahead`]). An entry stays until its event is
    /// committed, so one whose event never is (given up, or rejected) stays: at most one
    /// per prev event cited across a gap.
    cited_ahead: BTreeSet<EventId>,
}

/// The auth-chain index of `room_id` in `indexes`, made if it is not there yet (the room
/// id is copied once per room, not once per event).
fn auth_index_mut<'a>(
    indexes: &'a mut BTreeMap<String, AuthChainIndex>,
    room_id: &str,
    rules: &RoomVersionRules,
) -> &'a mut AuthChainIndex {
    if !indexes.contains_key(room_id) {
        indexes.insert(room_id.to_owned(), AuthChainIndex::new(rules));
    }
    indexes.get_mut(room_id).expect("inserted above")
}

/// The stored events as the auth-chain index reads them (auth events, type and state
/// key, which a redaction keeps).
struct StoredEvents<'a>(&'a EventIdMap<StoredEvent>);

impl EventStore for StoredEvents<'_> {
    fn get(&self, event_id: &EventId) -> Option<&Pdu> {
        self.0.get(event_id).map(|e| &*e.pdu)
    }
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    pub fn event(&self, id: &EventId) -> Option<&StoredEvent> {
        self.events.get(id)
    }

    pub fn pdu(&self, id: &EventId) -> Option<&Arc<Pdu>> {
        self.events.get(id).map(|e| &e.pdu)
    }

    pub fn contains(&self, id: &EventId) -> bool {
        self.events.contains_key(id)
    }

    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// Every stored event, in event-id order.
    pub fn events(&self) -> impl Iterator<Item = (&EventId, &StoredEvent)> {
        self.events.sorted().into_iter()
    }

    /// Whether some stored event satisfies `f`, asked of the events in no particular order.
    pub fn any_event(&self, f: impl FnMut(&EventId, &StoredEvent) -> bool) -> bool {
        self.events.any(f)
    }

    pub fn room(&self, room_id: &str) -> Option<&RoomRecord> {
        self.rooms.get(room_id)
    }

    /// The record of a room; panics if the room is unknown (callers check first).
    pub fn room_mut(&mut self, room_id: &str) -> &mut RoomRecord {
        self.rooms.get_mut(room_id).expect("room is known")
    }

    /// Starts tracking a room (no-op if it is known).
    pub fn add_room(&mut self, room_id: &str, version: RoomVersion) {
        if self.rooms.contains_key(room_id) {
            return;
        }
        self.rooms.insert(
            room_id.to_owned(),
            RoomRecord {
                version,
                forward_extremities: BTreeSet::new(),
                current_state: None,
                event_count: 0,
                depth_min: None,
                implied_create: EventId::from_room_id(room_id),
            },
        );
    }

    /// Linearized Matrix, at a hub: notes that the LPDU `lpdu` became the event `event`.
    pub fn note_lpdu(&mut self, lpdu: EventId, event: EventId) {
        self.lpdus.insert(lpdu, event);
    }

    /// The event a hub made of an LPDU it completed, if it did.
    pub fn lpdu_event(&self, lpdu: &EventId) -> Option<&EventId> {
        self.lpdus.get(lpdu)
    }

    pub fn add_invite(&mut self, room_id: &str, user: &str, event: EventId) {
        self.invites.insert((room_id.to_owned(), user.to_owned()), event);
    }

    pub fn invite(&self, room_id: &str, user: &str) -> Option<&EventId> {
        self.invites.get(&(room_id.to_owned(), user.to_owned()))
    }

    pub fn remove_invite(&mut self, room_id: &str, user: &str) {
        self.invites.remove(&(room_id.to_owned(), user.to_owned()));
    }

    /// The rooms, in id order.
    pub fn rooms(&self) -> impl Iterator<Item = (&String, &RoomRecord)> {
        self.rooms.iter()
    }

    /// Stores an event, or upgrades an outlier to a full event. Returns false (and changes
    /// nothing) if the event is already stored as a non-outlier.
    pub fn insert(&mut self, room_id: &str, event: StoredEvent) -> bool {
        // A state after exists exactly when a state before does: both or neither.
        assert_eq!(event.state_before.is_some(), event.state_after.is_some(), "state before/after");
        assert!(storable(event.decision), "stored as {:?}", event.decision);
        let id = event.pdu.event_id().clone();
        match self.events.get(&id) {
            Some(existing) if existing.decision != Decision::Outlier => return false,
            Some(_) => {}
            None => self.room_mut(room_id).event_count += 1,
        }
        if event.pdu.auth_events().is_empty() {
            // Only a create event cites no auth events. The room's implied create id (made
            // from the room id) becomes the stored copy's own, which the events citing it
            // share: a room of version 12 looks it up for every event it checks or stores,
            // and equal ids that are one copy compare without reading their text.
            let room = self.room_mut(room_id);
            if room.implied_create.as_ref() == Some(&id) {
                room.implied_create = Some(id.clone());
            }
        }
        self.count_depth(room_id, &event);
        self.member_users.note(&event.pdu);
        self.note_cited_ahead(&event);
        // Not a change to `events_version`: an event stored anew changes no event a
        // resolution of stored states has read (those states' events and their auth
        // chains were all stored, or the resolution failed and was not kept).
        self.events.insert(id.clone(), event);
        self.index_auth_chain(room_id, &id);
        true
    }

    /// The users of `server` that some stored `m.room.member` event is about, in any room.
    /// A state entry `(m.room.member, user)` whose event is stored names one of them (a
    /// state holds each event under the event's own type and state key).
    pub fn member_users<'a>(&'a self, server: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.member_users.of(server)
    }

    /// How many users [`Store::member_users`] has noted, of every server: a store only
    /// adds to them, in order.
    pub fn member_users_noted(&self) -> usize {
        self.member_users.noted()
    }

    /// Whether a user of `server` was noted after the first `count` users: if not,
    /// [`Store::member_users`] of `server` is what it was when `count` were noted.
    pub fn member_users_noted_since(&self, server: &str, count: usize) -> bool {
        self.member_users.server_noted_since(server, count)
    }

    /// Adds a stored event to its room's auth-chain index, or has it wait for
    /// [`Store::index_waiting`]. An event whose auth chain has a missing event (one
    /// rejected for it) stays out: a resolution over it indexes the chains it needs itself.
    ///
    /// Most servers of a large room resolve few states themselves (a thousand servers take
    /// most resolutions from the ones shared, [`SharedResolutions`]), and indexing every
    /// event as it was stored was 6% of a thousand-server run. So while every event
    /// stored in the room has had its whole auth chain here, an event whose auth events
    /// are all stored waits: indexed later, in the order stored, it is indexed exactly as
    /// it would have been now (each of its auth events is indexed before it, and nothing
    /// can fail). The first event that may fail has every waiting event indexed first, and
    /// from then on each is indexed as it is stored, so that which events the index holds,
    /// and [`Store::room_fully_indexed`], are as if none had waited.
    ///
    /// [`SharedResolutions`]: crate::homeserver::resolutions::SharedResolutions
    fn index_auth_chain(&mut self, room_id: &str, id: &EventId) {
        let Some(room) = self.rooms.get(room_id) else {
            *self.unindexed.entry(room_id.to_owned()).or_default() += 1;
            return;
        };
        let rules = room.version.rules();
        // The index and the waiting events hold only stored events of the room: counted
        // among them, so there is room for this one below this bound.
        let room_for_it = room.event_count < AuthChainIndex::EVENTS_MAX;
        if room_for_it && self.room_fully_indexed(room_id) && self.indexes_surely(rules, id) {
            // The room id is copied once per room, not once per event.
            match self.awaiting_index.get_mut(room_id) {
                Some(waiting) => waiting.push(id.clone()),
                None => {
                    self.awaiting_index.insert(room_id.to_owned(), vec![id.clone()]);
                }
            }
            return;
        }
        self.index_waiting(room_id);
        let index = auth_index_mut(&mut self.auth_indexes, room_id, rules);
        // On failure nothing is added, and nothing else needs undoing.
        let indexed = index.extend(&StoredEvents(&self.events), rules, std::slice::from_ref(id));
        if indexed.is_err() {
            *self.unindexed.entry(room_id.to_owned()).or_default() += 1;
        }
    }

    /// Whether indexing the stored event `id` cannot fail while every stored event of the
    /// room is indexed or waiting and the index has room for it: each of its auth events
    /// (those the index follows, [`auth_event_ids`], read here without making the v12
    /// create event's id) is stored and is not itself.
    ///
    /// [`auth_event_ids`]: crate::matrix::dag::auth_event_ids
    fn indexes_surely(&self, rules: &RoomVersionRules, id: &EventId) -> bool {
        let Some(event) = self.events.get(id) else { return false };
        // Looked up by the ids themselves where there are ids, so that an id that is the
        // stored copy is found without reading its text.
        let stored = |auth: &EventId| auth != id && self.events.contains_key(auth);
        let listed = event.pdu.auth_events().iter().all(stored);
        if !listed {
            return false;
        }
        let Some(create_room) = implicit_create_room_id(rules, &event.pdu) else { return true };
        match self.rooms.get(create_room) {
            Some(room) => room.implied_create.as_ref().is_none_or(stored),
            None => self.with_implied_create(create_room, |create| {
                create
                    .is_none_or(|create| create != id.as_str() && self.events.contains_key(create))
            }),
        }
    }

    /// The stored create event that `room_id` implies ([`Store::with_implied_create`]),
    /// found by the room record's id where the room is known: that id is the stored
    /// copy's own once the create event is stored ([`Store::insert`]).
    pub fn implied_create_event(&self, room_id: &str) -> Option<&StoredEvent> {
        match self.rooms.get(room_id) {
            Some(room) => room.implied_create.as_ref().and_then(|id| self.events.get(id)),
            None => self.with_implied_create(room_id, |id| id.and_then(|id| self.events.get(id))),
        }
    }

    /// `f` of the text of the create event id that `room_id` implies (`None` where
    /// [`EventId::from_room_id`] gives none): the one the room's record keeps
    /// ([`RoomRecord::implied_create`]), or for a room not known here one made on the
    /// stack ([`CreateIdText`]): rooms not added yet are asked about too, more often the
    /// more servers join (an id made for each cost `big300` 2.97 M more instructions than
    /// this, `big100` 0.27 M). Where the room is known, events are looked up by the
    /// record's id instead, which is the stored copy's own once the create event is
    /// stored ([`Store::implied_create_event`]).
    pub fn with_implied_create<R>(&self, room_id: &str, f: impl FnOnce(Option<&str>) -> R) -> R {
        match self.rooms.get(room_id) {
            Some(room) => f(room.implied_create.as_ref().map(EventId::as_str)),
            None => {
                let text = CreateIdText::of_room(room_id);
                f(text.as_ref().map(CreateIdText::as_str))
            }
        }
    }

    /// Adds the room's waiting events to its auth-chain index, in the order they were
    /// stored: [`Store::auth_chain_index`] then covers every stored event whose auth chain
    /// is whole. A state resolution made here calls this first.
    pub fn index_waiting(&mut self, room_id: &str) {
        let Some(waiting) = self.awaiting_index.remove(room_id) else { return };
        let rules = self.rooms.get(room_id).expect("an event waits only in a known room").version;
        let rules = rules.rules();
        let index = auth_index_mut(&mut self.auth_indexes, room_id, rules);
        for id in &waiting {
            let indexed =
                index.extend(&StoredEvents(&self.events), rules, std::slice::from_ref(id));
            assert!(indexed.is_ok(), "{id} waited for an index that cannot fail");
        }
    }

    /// How many stored events of the room wait for [`Store::index_waiting`].
    pub fn waiting_for_index(&self, room_id: &str) -> usize {
        self.awaiting_index.get(room_id).map_or(0, Vec::len)
    }

    /// Whether every stored event of the room is in its auth-chain index or waits for it
    /// with its whole auth chain stored, so that the index holds the whole auth chain of
    /// any of them once [`Store::index_waiting`] has run.
    pub fn room_fully_indexed(&self, room_id: &str) -> bool {
        !self.unindexed.contains_key(room_id)
    }

    /// Changes whenever a stored event is replaced or redacted: a state resolution over
    /// stored states made at one version holds while the version is the same, whatever
    /// events were stored since.
    pub fn events_version(&self) -> u64 {
        self.events_version
    }

    /// The room's auth-chain index, covering every stored event whose auth chain is whole
    /// but those waiting ([`Store::index_waiting`]).
    pub fn auth_chain_index(&self, room_id: &str) -> Option<&AuthChainIndex> {
        self.auth_indexes.get(room_id)
    }

    /// Replaces a stored outlier by the same event with its state now known.
    pub fn replace_outlier(&mut self, event: StoredEvent) {
        let id = event.pdu.event_id().clone();
        let existing = self.events.get(&id).expect("replacing a stored event");
        assert!(existing.state_after.is_none(), "only outliers without state are replaced");
        let room_id = event.pdu.room_id_or_derived();
        self.count_depth(&room_id, &event);
        self.note_cited_ahead(&event);
        self.events.insert(id, event);
        self.events_version += 1;
    }

    /// Notes the prev events of an event stored with a state, unless it is rejected or
    /// soft-failed, that are not stored as accepted: the events whose later commit
    /// [`Store::take_cited_ahead`] finds already followed by a stored event.
    ///
    /// [impl] Synapse `_calculate_new_extremities` (synapse/storage/controllers/
    /// persist_events.py) drops from the forward extremities every event that is a prev
    /// event of an existing event that is not an outlier, rejected or soft-failed
    /// (`_get_events_which_are_prevs`). An event stored here with a state counts as not an
    /// outlier, including the prev event of a gap stored with the state fetched at it
    /// (decided `outlier` against its auth events, but placed in the DAG with a state).
    fn note_cited_ahead(&mut self, event: &StoredEvent) {
        let counts =
            matches!(event.decision, Decision::Accepted | Decision::Created | Decision::Outlier);
        if event.state_after.is_none() || !counts {
            return;
        }
        for prev in event.pdu.prev_events() {
            let accepted = self
                .events
                .get(prev)
                .is_some_and(|e| matches!(e.decision, Decision::Accepted | Decision::Created));
            if !accepted {
                self.cited_ahead.insert(prev.clone());
            }
        }
    }

    /// Whether a stored event with a state named `id` as a prev event before `id` was
    /// stored as accepted (forgotten once asked): such an event is not a forward extremity
    /// when committed, since an event after it is already stored.
    pub fn take_cited_ahead(&mut self, id: &EventId) -> bool {
        self.cited_ahead.remove(id)
    }

    /// Lowers the room's `depth_min` to the event's depth if it is stored with a state
    /// and not rejected: outliers do not count (Synapse `_update_min_depth_for_room_txn`),
    /// so the state a joiner got with `send_join` does not send its walks back to the
    /// room's creation.
    fn count_depth(&mut self, room_id: &str, event: &StoredEvent) {
        if event.state_before.is_some() && !event.is_rejected() {
            let depth = event.pdu.depth();
            let room = self.room_mut(room_id);
            room.depth_min = Some(room.depth_min.map_or(depth, |d| d.min(depth)));
        }
    }

    /// Replaces an event's JSON by its redacted form (same id).
    pub fn replace_redacted(&mut self, id: &EventId, redacted: Arc<Pdu>) {
        let event = self.events.get_mut(id).expect("redacting a stored event");
        assert_eq!(event.pdu.event_id(), redacted.event_id(), "redaction keeps the event id");
        let original = std::mem::replace(&mut event.pdu, redacted);
        event.redacted = true;
        self.originals.entry(id.clone()).or_insert(original);
        self.events_version += 1;
    }

    /// The event as it was stored before a redaction was applied to it (the stored form
    /// when none was; a copy received already redacted has no other form).
    pub fn original_pdu(&self, id: &EventId) -> Option<&Arc<Pdu>> {
        self.originals.get(id).or_else(|| self.pdu(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::homeserver::test_events::signed_state_event;

    #[test]
    fn a_stored_event_takes_three_words() {
        // The stores' maps hold one per event at every server (a fifth of a
        // 1,000-server run's heap at 56 bytes each).
        let size = std::mem::size_of::<StoredEvent>();
        assert!(size <= 3 * std::mem::size_of::<usize>(), "{size} bytes");
    }

    /// A child stored with a state, named by its own display name, citing `$p`.
    fn child(store: &mut Store, body: &str, outcome: Outcome, with_state: bool) {
        let group = with_state.then(|| store.store_state(&StateMap::new(), None));
        let pdu = signed_state_event("m.room.member", &format!("@{body}:hs1"), body);
        assert_eq!(pdu.prev_events(), [EventId::parse("$p").unwrap()]);
        let stored = StoredEvent::new(pdu, &outcome, group, group);
        assert!(store.insert("!r:hs1", stored));
    }

    /// A v11 event of `!r:hs1` with the given id, citing `auth` (unsigned: the index reads
    /// only ids, auth events, types and state keys), stored as an outlier.
    fn store_outlier(store: &mut Store, id: &str, event_type: &str, auth: &[&str]) {
        let serde_json::Value::Object(json) = serde_json::json!({
            "event_id": id, "type": event_type, "state_key": id, "sender": "@a:hs1",
            "room_id": "!r:hs1", "origin_server_ts": 1, "depth": 2, "prev_events": [],
            "auth_events": auth, "content": {},
        }) else {
            unreachable!()
        };
        let pdu = Arc::new(Pdu::with_given_id(RoomVersion::V11.rules(), json).unwrap());
        let stored = StoredEvent::new(pdu, &Outcome::outlier(), None, None);
        assert!(store.insert("!r:hs1", stored));
    }

    fn indexed(store: &Store, id: &str) -> bool {
        let id = EventId::parse(id).unwrap();
        store.auth_chain_index("!r:hs1").is_some_and(|index| index.contains(&id))
    }

    /// Events whose auth events are all stored wait for the index while the room's every
    /// event has its whole auth chain; the first that may not is indexed at once, after
    /// the waiting ones, and so is every event after it.
    #[test]
    fn events_wait_for_the_index_until_one_might_fail() {
        for failing in [&["$create", "$missing"][..], &["$create", "$late"][..]] {
            let mut store = Store::new();
            store.add_room("!r:hs1", RoomVersion::V11);
            store_outlier(&mut store, "$create", "m.room.create", &[]);
            store_outlier(&mut store, "$member", "m.room.member", &["$create"]);
            store_outlier(&mut store, "$topic", "m.room.topic", &["$create", "$member"]);
            assert_eq!(store.waiting_for_index("!r:hs1"), 3);
            assert!(store.room_fully_indexed("!r:hs1"));
            assert!(!indexed(&store, "$create"), "waiting, not indexed");
            store.index_waiting("!r:hs1");
            assert_eq!(store.waiting_for_index("!r:hs1"), 0);
            assert_eq!(store.auth_chain_index("!r:hs1").map(AuthChainIndex::len), Some(3));
            store_outlier(&mut store, "$name", "m.room.name", &["$create", "$member"]);
            assert_eq!(store.waiting_for_index("!r:hs1"), 1);
            // An auth event missing, or the event itself: it could fail, so the waiting
            // event is indexed first and this one is tried at once (and fails).
            store_outlier(&mut store, "$late", "m.room.member", failing);
            assert_eq!(store.waiting_for_index("!r:hs1"), 0);
            assert!(indexed(&store, "$name") && !indexed(&store, "$late"));
            assert!(!store.room_fully_indexed("!r:hs1"));
            // From then on every event is indexed as it is stored.
            store_outlier(&mut store, "$rules", "m.room.join_rules", &["$create", "$member"]);
            assert_eq!(store.waiting_for_index("!r:hs1"), 0);
            assert!(indexed(&store, "$rules"));
            assert_eq!(store.auth_chain_index("!r:hs1").map(AuthChainIndex::len), Some(5));
        }
    }

    /// Only a child stored with a state, and neither rejected nor soft-failed, makes its
    /// prev event one that is already followed; asking forgets it.
    #[test]
    fn a_prev_event_is_cited_ahead_only_by_a_child_with_a_state_that_counts() {
        let reason = || Some("no".to_owned());
        let cases = [
            (Outcome::accepted(), true, true),
            // The prev event of a gap, stored with the state fetched at it.
            (Outcome::outlier(), true, true),
            (Outcome::outlier(), false, false),
            (Outcome { decision: Decision::SoftFailed, reason: reason() }, true, false),
            (Outcome { decision: Decision::RejectedStateBefore, reason: reason() }, true, false),
            (Outcome { decision: Decision::RejectedAuthEvents, reason: reason() }, false, false),
        ];
        for (at, (outcome, with_state, cites)) in cases.into_iter().enumerate() {
            let mut store = Store::new();
            store.add_room("!r:hs1", RoomVersion::V11);
            child(&mut store, &format!("c{at}"), outcome.clone(), with_state);
            let p = EventId::parse("$p").unwrap();
            assert_eq!(
                store.take_cited_ahead(&p),
                cites,
                "{outcome:?}, with a state: {with_state}"
            );
            assert!(!store.take_cited_ahead(&p), "asked once");
        }
    }

    /// Once the create event a room's id implies is stored, the room record holds the
    /// stored copy's own id; an event that is not it changes nothing. The stored event is
    /// found by the record's id, or by text for a room not known here.
    #[test]
    fn the_implied_create_id_becomes_the_stored_copys_own() {
        let mut store = Store::new();
        store.add_room("!r:hs1", RoomVersion::V11);
        let implied = |store: &Store| store.room("!r:hs1").unwrap().implied_create.clone().unwrap();
        let made = implied(&store);
        assert_eq!(made.as_str(), "$r:hs1");
        assert!(store.implied_create_event("!r:hs1").is_none(), "not stored yet");
        // Another event citing no auth events, and an event citing the create event.
        store_outlier(&mut store, "$other:hs1", "m.room.create", &[]);
        store_outlier(&mut store, "$member", "m.room.member", &["$r:hs1"]);
        assert!(
            store.room("!r:hs1").unwrap().implied_create.as_ref().unwrap().same_allocation(&made)
        );
        store_outlier(&mut store, "$r:hs1", "m.room.create", &[]);
        let stored = store.pdu(&made).unwrap().event_id().clone();
        assert!(
            implied(&store).same_allocation(&stored) && !implied(&store).same_allocation(&made)
        );
        assert_eq!(implied(&store), made, "the same id");
        let found = store.implied_create_event("!r:hs1").unwrap();
        assert!(found.pdu.event_id().same_allocation(&stored));
        // A room not known here: its id's create event found by text.
        let other = store.implied_create_event("!other:hs1").unwrap();
        assert_eq!(other.pdu.event_id().as_str(), "$other:hs1");
        assert!(store.implied_create_event("!unknown:hs1").is_none());
    }

    #[test]
    fn a_room_keeps_the_create_id_its_room_id_implies() {
        let mut store = Store::default();
        let room_id = "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM";
        store.add_room(room_id, RoomVersion::V12);
        let implied = store.room(room_id).unwrap().implied_create.clone();
        assert_eq!(
            implied.as_ref().map(EventId::as_str),
            Some("$31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM")
        );
        assert_eq!(implied, EventId::from_room_id(room_id));
        // A room id that names no event id implies none (`CreateIdText::of_room` agrees).
        let bad = format!("!{}", "a".repeat(300));
        store.add_room(&bad, RoomVersion::V12);
        assert_eq!(store.room(&bad).unwrap().implied_create, None);
        assert!(CreateIdText::of_room(&bad).is_none());
        // Read through the record, or made for a room not known here: the same text.
        let text = |room: &str| store.with_implied_create(room, |id| id.map(str::to_owned));
        assert_eq!(text(room_id).as_deref(), Some("$31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM"));
        assert_eq!(text("!unknownRoomHere"), Some("$unknownRoomHere".to_owned()));
        assert_eq!(text(&bad), None);
    }
}
