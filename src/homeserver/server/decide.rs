//! Deciding a received event: the receipt checks 4–6 (against its auth events, the state
//! before it and the current state) and the auth check of an outlier. With shared verified
//! events, each check is taken from another server's where it read the very same bodies
//! (`VerifiedEvents::auth_events_check`, `VerifiedEvents::state_check`).

use super::*;
use crate::homeserver::verified::{AuthReads, StateRead};

/// The state an event's own auth events form (receipt check 4): a handful of state
/// events searched linearly, where a map keyed by `(String, String)` built two strings per
/// event and per lookup. An event with the key of one already in replaces it, as a map's
/// insert does.
#[derive(Default)]
struct AuthEventState<'a> {
    events: Vec<&'a Pdu>,
}

impl<'a> AuthEventState<'a> {
    /// Adds a state event (anything else is ignored, as it has no key).
    fn insert(&mut self, pdu: &'a Pdu) {
        let Some(key) = pdu.state_key() else { return };
        let same = |e: &&Pdu| e.has_key(pdu.event_type(), key);
        match self.events.iter_mut().find(|e| same(e)) {
            Some(slot) => *slot = pdu,
            None => self.events.push(pdu),
        }
    }
}

impl AuthState for AuthEventState<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Pdu> {
        self.events.iter().find(|e| e.has_key(event_type, state_key)).copied()
    }
}

/// A [`GroupView`] that notes each question asked and the body it answered with, for
/// [`VerifiedEvents::record_state_check`].
struct RecordingView<'a> {
    view: GroupView<'a>,
    reads: RefCell<Vec<StateRead>>,
}

impl AuthState for RecordingView<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Pdu> {
        let found = self.view.body(event_type, state_key);
        self.reads.borrow_mut().push((event_type.into(), state_key.into(), found.cloned()));
        found.map(|pdu| &**pdu)
    }
}

impl Homeserver {
    /// The receipt checks 4–6 (federation-api.md §3) for an event whose auth and prev
    /// events are all stored with state. Does not store it.
    pub(super) fn decide(&mut self, room_id: &str, pdu: &Arc<Pdu>) -> Outcome {
        let rules = self.rules_of(room_id).expect("room is known");
        // Check 4: against the state its own auth events form.
        let keys = Arc::clone(&self.keys);
        let signatures = signature_check(rules, &keys);
        if let Err(rejected) = self.check_auth_events(rules, room_id, pdu, true, signatures) {
            return rejected;
        }
        // Check 5: against the state before it.
        let before = match self.state_before(rules, pdu) {
            Ok(group) => group,
            Err(reason) => return Outcome::rejected(RejectionKind::StateBefore, reason),
        };
        let shared = self.verified_shared.then_some(&*self.verified);
        let verified = matches!(signatures, SignatureCheck::AlreadyVerified);
        let check = |store: &Store, group: StateGroupId| -> Result<(), String> {
            let view = GroupView { store, group };
            let made = |state: &dyn AuthState| {
                auth::check_state_rules(rules, pdu, state, signatures)
                    .map_err(|rejection| rejection.to_string())
            };
            let Some(shared) = shared else { return made(&view) };
            let read = |event_type: &str, state_key: &str| view.body(event_type, state_key);
            if let Some(taken) = shared.state_check(rules.version, verified, pdu, read) {
                debug_assert_eq!(
                    taken,
                    made(&view),
                    "a state check taken for {} differs from the check made",
                    pdu.event_id(),
                );
                return taken;
            }
            let recording = RecordingView { view, reads: RefCell::default() };
            let result = made(&recording);
            let reads = recording.reads.into_inner();
            shared.record_state_check(rules.version, verified, pdu, reads, result.clone());
            result
        };
        if let Err(reason) = check(&self.store, before) {
            return Outcome::rejected(RejectionKind::StateBefore, reason);
        }
        // Check 6: against the current state. When that is the very state group of check 5
        // (an event on the room's only forward extremity, the common case), the rules read
        // the same state and give the same answer: it passed above.
        let current = self.store.room(room_id).and_then(|r| r.current_state);
        if let Some(current) = current.filter(|&current| current != before) {
            if let Err(reason) = check(&self.store, current) {
                return Outcome::soft_failed(reason);
            }
        }
        Outcome::accepted()
    }

    /// Auth check of an outlier against its own auth events (receipt check 4 only).
    ///
    /// With shared verified events, the check of an outlier that another server made
    /// reading the very bodies this one reads (the event, its auth events and, in v12, the
    /// create event) with the same rejections is taken, not made again: it depends on
    /// nothing else. Every joiner checks the whole state and auth chain of the room it
    /// joins, the same events for all, and those checks were 2.6% of a thousand-server run.
    pub(super) fn check_own_auth(&self, room_id: &str, pdu: &Arc<Pdu>) -> Outcome {
        let rules = self.rules_of(room_id).expect("room is known");
        let reads = match self.auth_reads(rules, room_id, pdu, false) {
            Ok(reads) => reads,
            Err(rejected) => return rejected,
        };
        match self.shared_check_with_reads(rules, pdu, &reads, SignatureCheck::Keys(&self.keys)) {
            Ok(()) => Outcome::outlier(),
            Err(reason) => Outcome::rejected(RejectionKind::AuthEvents, reason),
        }
    }

    /// Receipt check 4: `pdu` against the state its accepted auth events form and, in v12,
    /// the create event its room id names (`accepted_create`: only if that is accepted, as
    /// a decision takes it; an outlier's check takes it either way). `Err` is the
    /// rejection.
    fn check_auth_events(
        &self,
        rules: &RoomVersionRules,
        room_id: &str,
        pdu: &Arc<Pdu>,
        accepted_create: bool,
        signatures: SignatureCheck<'_>,
    ) -> Result<(), Outcome> {
        let reads = self.auth_reads(rules, room_id, pdu, accepted_create)?;
        self.shared_check_with_reads(rules, pdu, &reads, signatures)
            .map_err(|reason| Outcome::rejected(RejectionKind::AuthEvents, reason))
    }

    /// [`check_with_reads`], taken from the shared record where another server made it
    /// reading the very same bodies with the same rejections, and recorded otherwise. Only
    /// checks that verify signatures with the key ring are shared: every server that shares
    /// the record holds that very ring, where a check that takes signatures as verified on
    /// receipt (Linearized Matrix's decisions) is another function of the same reads.
    fn shared_check_with_reads(
        &self,
        rules: &RoomVersionRules,
        pdu: &Arc<Pdu>,
        reads: &AuthReads<'_>,
        signatures: SignatureCheck<'_>,
    ) -> Result<(), String> {
        let shareable = self.verified_shared && matches!(signatures, SignatureCheck::Keys(_));
        let shared = shareable.then_some(&self.verified);
        let taken =
            shared.and_then(|verified| verified.auth_events_check(rules.version, pdu, reads));
        debug_assert!(
            taken
                .as_ref()
                .is_none_or(|taken| *taken == check_with_reads(rules, pdu, reads, signatures)),
            "a check of {} against its auth events taken differs from the check made",
            pdu.event_id(),
        );
        taken.unwrap_or_else(|| {
            let result = check_with_reads(rules, pdu, reads, signatures);
            if let Some(verified) = shared {
                verified.record_auth_events_check(rules.version, pdu, reads, result.clone());
            }
            result
        })
    }

    /// What receipt check 4 reads of the store: each auth event's body and whether it was
    /// rejected, and in v12 the create event (see [`Homeserver::check_auth_events`]). `Err`
    /// is the rejection of an event whose auth event is unknown.
    fn auth_reads<'s>(
        &'s self,
        rules: &RoomVersionRules,
        room_id: &str,
        pdu: &Pdu,
        accepted_create: bool,
    ) -> Result<AuthReads<'s>, Outcome> {
        let mut auth = Vec::with_capacity(pdu.auth_events().len());
        for id in pdu.auth_events() {
            let Some(event) = self.store.event(id) else {
                let reason = format!("auth event {id} unknown");
                return Err(Outcome::rejected(RejectionKind::AuthEvents, reason));
            };
            auth.push((&event.pdu, event.is_rejected()));
        }
        let mut create = None;
        if rules.room_id_is_create_event_hash && pdu.event_type() != "m.room.create" {
            // v12: the create event is implied by the room id.
            let found = self.store.implied_create_event(room_id);
            create = found.filter(|c| !accepted_create || !c.is_rejected()).map(|c| &c.pdu);
        }
        Ok(AuthReads { auth, create })
    }
}

/// The auth rules on `pdu` against the state its `reads` form: its accepted auth events
/// and the create event read with them. `Err` is the rejection's reason.
fn check_with_reads(
    rules: &RoomVersionRules,
    pdu: &Pdu,
    reads: &AuthReads<'_>,
    signatures: SignatureCheck<'_>,
) -> Result<(), String> {
    let list: Vec<(&Pdu, bool)> =
        reads.auth.iter().map(|&(pdu, rejected)| (&**pdu, rejected)).collect();
    let mut state = AuthEventState::default();
    for &(event, rejected) in &list {
        if !rejected {
            state.insert(event);
        }
    }
    if let Some(create) = reads.create {
        state.insert(create);
    }
    auth::check_event(rules, pdu, &list, &state, signatures)
        .map_err(|rejection| rejection.to_string())
}

/// How the auth rules of a decision treat signatures. Linearized Matrix makes the
/// receipt check's signatures (the hub's and the sender's, `pdu::verify`) auth rules 1
/// and 2; every event a server decides passed that check when it was received, or was
/// built or completed here, so they are not verified again for each of the decision's
/// two auth checks. Other versions' signature rule (the authorising server's signature
/// on a restricted join) is verified with the keys.
fn signature_check<'k>(rules: &RoomVersionRules, keys: &'k KeyRing) -> SignatureCheck<'k> {
    if rules.signature_auth_rules {
        SignatureCheck::AlreadyVerified
    } else {
        SignatureCheck::Keys(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_event_state_answers_as_a_map_keyed_by_type_and_state_key() {
        let key = SigningKey::from_seed(&[5; 32], "ed25519:1").unwrap();
        let rules = RoomVersion::V11.rules();
        let event = |kind: &str, state_key: Option<&str>, n: i64| {
            let mut json = serde_json::json!({
                "type": kind, "sender": "@a:hs1", "room_id": "!r:hs1", "origin_server_ts": n,
                "depth": n, "prev_events": [], "auth_events": [], "content": {"n": n},
            });
            if let Some(state_key) = state_key {
                json["state_key"] = Value::from(state_key);
            }
            let Value::Object(json) = json else { unreachable!() };
            pdu::build_signed(rules, json, "hs1", &key).unwrap()
        };
        let events = [
            event("m.room.create", Some(""), 1),
            event("m.room.member", Some("@a:hs1"), 2),
            event("m.room.member", Some("@b:hs1"), 3),
            event("m.room.message", None, 4),
            event("m.room.member", Some("@a:hs1"), 5),
            event("m.room.member", Some(""), 6),
        ];
        let mut small = AuthEventState::default();
        let mut map: BTreeMap<StateKey, &Pdu> = BTreeMap::new();
        for pdu in &events {
            small.insert(pdu);
            if let Some(state_key) = pdu.state_key() {
                map.insert((pdu.event_type().to_owned(), state_key.to_owned()), pdu);
            }
        }
        let asked = [
            ("m.room.create", ""),
            ("m.room.member", "@a:hs1"),
            ("m.room.member", "@b:hs1"),
            ("m.room.member", ""),
            ("m.room.message", ""),
            ("m.room.power_levels", ""),
        ];
        for (kind, state_key) in asked {
            let got = AuthState::get(&small, kind, state_key).map(Pdu::event_id);
            let want = AuthState::get(&map, kind, state_key).map(Pdu::event_id);
            assert_eq!(got, want, "{kind} {state_key:?}");
        }
        // The later of two events with one key is the one kept.
        let member = AuthState::get(&small, "m.room.member", "@a:hs1").unwrap();
        assert_eq!(member.event_id(), events[4].event_id());
    }
}
