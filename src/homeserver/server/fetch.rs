//! Fetching: answers to this server's own requests (missing auth events, missing prev
//! events, state at an event), and the bounded wait of events for their ancestors.

use super::*;
use std::cmp::Ordering;

impl Homeserver {
    /// Handles the answer to request `id`; `http` is `None` when the request failed in
    /// transit or, with `timed_out`, got no answer within `request_timeout`.
    pub(super) fn on_response(
        &mut self,
        now: Instant,
        id: RequestId,
        http: Option<HttpResponse>,
        timed_out: bool,
        out: &mut Vec<Output>,
    ) {
        let Some((pending, _)) = self.requests.remove(id) else { return };
        if let (Pending::Transaction { destination, txn_id }, Some(h)) = (&pending, &http) {
            if self.accepted_again(h) {
                self.on_transaction_answer(now, destination, txn_id, Answer::AcceptedAll, out);
                return;
            }
        }
        let endpoint = pending.endpoint();
        // The answer, or why there is none, as a sentence.
        // A `send_join` answer's PDUs that this process checked before are recognised by
        // their bytes and not parsed again (`known`), as in transactions.
        let mut known = wire::KnownPdus::new();
        let answer: Result<Response, String> = match http {
            Some(h) => {
                match Response::from_http_knowing(endpoint, &h, |b| self.verified.get_bytes(b)) {
                    Ok((response, lists)) => {
                        if cfg!(debug_assertions) {
                            same_join_as_parsed_whole(endpoint, &h, &response, &lists);
                        }
                        if accepts_every_pdu(&response) && h.status == 200 {
                            self.last_accepting_answer = Some(h.body);
                        }
                        known = lists;
                        Ok(response)
                    }
                    Err(e) => Err(format!("an answer that does not decode ({e})")),
                }
            }
            None if timed_out => {
                let seconds = self.config.request_timeout.ms / 1_000;
                Err(format!("no answer within {seconds} s"))
            }
            None => Err("unreachable".to_owned()),
        };
        // Fetches and transactions only need the answer; handshakes also need the reason.
        let handshake = matches!(pending, Pending::Make(_) | Pending::Send { .. });
        let (answer, response) = if handshake || matches!(pending, Pending::Invite { .. }) {
            (answer, None)
        } else {
            (Err(String::new()), answer.ok())
        };
        match pending {
            Pending::Transaction { destination, txn_id } => {
                let answer = match &response {
                    Some(Response::SendTransaction { pdus }) => Answer::Results(pdus),
                    _ => Answer::None,
                };
                self.on_transaction_answer(now, &destination, &txn_id, answer, out);
            }
            Pending::MissingEvents { room_id, for_events, destination } => {
                for id in &for_events {
                    if let Some(w) = self.waiting.get_mut(id) {
                        w.missing = Ask::Answered;
                    }
                }
                if let Some(Response::GetMissingEvents { events }) = response {
                    self.receive_bundle(now, &room_id, &destination, events, out);
                }
                self.retry_waiting_after_failure(now, &room_id, out);
            }
            Pending::EventAuth { room_id } => {
                if let Some(Response::GetEventAuth { auth_chain }) = response {
                    let auth_chain = auth_chain.into_iter().map(Incoming::Raw).collect();
                    self.store_outliers(&room_id, auth_chain, out);
                }
                self.retry_waiting_after_failure(now, &room_id, out);
            }
            Pending::StateIdsAt { room_id, prev } => {
                let ids = match response {
                    Some(Response::GetStateIds { pdu_ids, auth_chain_ids }) => {
                        Some((pdu_ids, auth_chain_ids))
                    }
                    _ => None,
                };
                self.on_state_ids(now, &room_id, &prev, ids, out);
            }
            Pending::StateEvent { room_id, prev, event_id } => {
                let raw = match response {
                    Some(Response::GetEvent(txn)) => txn.pdus.into_iter().next(),
                    _ => None,
                };
                self.on_state_event(now, &room_id, &prev, &event_id, raw, out);
            }
            Pending::EventFor { room_id, prev } => {
                let mut found = None;
                if let (Some(Response::GetEvent(txn)), Some(rules)) =
                    (response, self.rules_of(&room_id))
                {
                    if let Some(Ok(pdu)) =
                        txn.pdus.into_iter().next().map(|raw| self.verify_received(rules, raw))
                    {
                        found = (pdu.event_id() == &prev).then_some(pdu);
                    }
                }
                match (found, self.state_fetches.get_mut(&prev)) {
                    (Some(pdu), Some(fetch)) => fetch.prev_pdu = Some(pdu),
                    (None, Some(_)) => self.drop_state_fetch(now, &room_id, &prev, out),
                    (_, None) => {}
                }
                self.complete_full_state(now, &room_id, &prev, out);
            }
            Pending::StateAt { room_id, prev } => {
                match response {
                    Some(Response::GetState { pdus, auth_chain }) => {
                        // The auth chain is taken as decoded; the state is read again below.
                        let mut all: Vec<Incoming> = auth_chain
                            .into_iter()
                            .map(|object| Incoming::Raw(Arc::unwrap_or_clone(object).into_json()))
                            .collect();
                        all.extend(pdus.iter().map(|object| Incoming::Raw(object.json().clone())));
                        self.store_outliers(&room_id, all, out);
                        let ids: Vec<EventId> = match self.rules_of(&room_id) {
                            Some(rules) => {
                                pdus.iter().map(|raw| self.event_id_of(rules, raw.json())).collect()
                            }
                            None => Vec::new(),
                        };
                        let state = self.state_events_of(&room_id, &ids);
                        if let Some(fetch) = self.state_fetches.get_mut(&prev) {
                            fetch.full_state = Some(state);
                        }
                    }
                    _ => self.drop_state_fetch(now, &room_id, &prev, out),
                }
                self.complete_full_state(now, &room_id, &prev, out);
            }
            Pending::Make(handshake) => self.on_make(now, handshake, answer, out),
            Pending::Send { handshake, version, own } => {
                self.on_send(now, handshake, version, own, (answer, known), out)
            }
            Pending::Invite { user, room_id, event_id, destination } => {
                self.on_invite_answer(now, &user, &room_id, &event_id, &destination, answer, out)
            }
        }
    }

    /// The answer to the transaction `txn_id` sent to `destination`.
    fn on_transaction_answer(
        &mut self,
        now: Instant,
        destination: &str,
        txn_id: &str,
        answer: Answer<'_>,
        out: &mut Vec<Output>,
    ) {
        if let Answer::Results(results) = answer {
            self.note_refusals(results, out);
        }
        let delivered = !matches!(answer, Answer::None);
        // Reported on a change only: a failed catch-up probe leaves a peer down.
        let was_down = self.outbound.is_down(destination);
        match self.outbound.on_response(destination, txn_id, now, delivered) {
            ResponseOutcome::MarkedDown { .. } if !was_down => {
                self.on_peer_down(destination, out);
                let peer = destination.to_string();
                out.push(Output::Observed(Observation::PeerDown { peer }));
            }
            ResponseOutcome::Delivered if was_down => {
                let peer = destination.to_string();
                out.push(Output::Observed(Observation::PeerUp { peer }));
            }
            _ => {}
        }
    }

    /// Whether `http` is, byte for byte, the last answer to one of this server's
    /// transactions that accepted every PDU (a success whose results are all `{}`). Decoding
    /// is a function of the status and the bytes, so such an answer decodes the same way
    /// again and need not be decoded: at 100 servers the 99 answers to a message's
    /// transactions are mostly the same `{"pdus":{"$id":{}}}`. Debug builds decode it all
    /// the same and compare.
    fn accepted_again(&self, http: &HttpResponse) -> bool {
        let again = http.status == 200 && self.last_accepting_answer.as_ref() == Some(&http.body);
        if again && cfg!(debug_assertions) {
            let decoded = Response::from_http(wire::Endpoint::SendTransaction, http);
            assert!(
                decoded.as_ref().is_ok_and(accepts_every_pdu),
                "an answer recognised by its bytes decodes as one that accepts every PDU"
            );
        }
        again
    }

    /// The invited server's answer to `/invite`: the invite it signed is committed, or the
    /// failure is recorded against the action.
    #[allow(clippy::too_many_arguments)]
    fn on_invite_answer(
        &mut self,
        now: Instant,
        user: &str,
        room_id: &str,
        event_id: &EventId,
        destination: &str,
        answer: Result<Response, String>,
        out: &mut Vec<Output>,
    ) {
        let result = match answer {
            Ok(Response::Invite { event }) if self.invite_is_stale(room_id, &event) => {
                // Linearized Matrix: the hub appended other events while the invitee was
                // signing, and the signed invite names a prev event that is no longer the
                // head. [digest] The hub builds the invite again on the new head and asks
                // once more (the draft's hub appends the signed event; keeping its one prev
                // event the head is mxsim's reading; docs/linearized.md).
                let target = event.get("state_key").and_then(serde_json::Value::as_str);
                match target {
                    Some(target) => self.invite(now, user, room_id, target, out),
                    None => Err("the signed invite has no state_key".into()),
                }
            }
            Ok(Response::Invite { event }) => {
                self.commit_remote_invite(now, room_id, event_id, event, out)
            }
            Ok(Response::Error(e)) => Err(handshake::describe_error(&e)),
            Ok(_) => Err("an answer of the wrong kind".into()),
            Err(reason) => Err(reason),
        };
        if let Err(reason) = result {
            out.push(Output::Observed(Observation::ActionFailed {
                user: user.to_owned(),
                kind: ActionKind::Invite,
                reason: format!("invite via {destination}: {reason}"),
            }));
        }
    }

    /// After a fetch finished (or failed), events still waiting on it try the next step.
    /// Once the room has no fetch in flight, nothing more will come for the events that
    /// still wait: they are given up, each with what it still misses.
    pub(super) fn retry_waiting_after_failure(
        &mut self,
        now: Instant,
        room_id: &str,
        out: &mut Vec<Output>,
    ) {
        self.retry_waiting(now, room_id, out);
        let stuck: Vec<EventId> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.pdu.is_in_room(room_id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &stuck {
            self.ask_for_ancestors(now, room_id, id, out);
        }
        if self.has_fetch_in_flight(room_id) {
            return;
        }
        let hopeless: Vec<(EventId, String)> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.pdu.is_in_room(room_id))
            .map(|(id, w)| {
                let (auth, prev) = self.missing_for(room_id, &w.pdu);
                let reason = if !auth.is_empty() {
                    format!(
                        "/event_auth from {} did not bring auth events {}",
                        w.origin,
                        list(&auth)
                    )
                } else {
                    format!(
                        "get_missing_events and the state from {} did not bring prev events {}",
                        w.origin,
                        list(&prev)
                    )
                };
                (id.clone(), reason)
            })
            .collect();
        for (id, reason) in hopeless {
            self.give_up(&id, &reason, out);
        }
    }

    /// Drops a waiting event with the reason recorded. Reported, so that a trace shows
    /// where an event was lost; a later copy of it, or a later event that refers to it, is
    /// processed afresh.
    pub(super) fn give_up(&mut self, id: &EventId, reason: &str, out: &mut Vec<Output>) {
        let Some(waiting) = self.waiting.remove(id) else { return };
        assert!(!self.waiting.contains_key(id));
        out.push(Output::Observed(Observation::Event {
            room_id: waiting.pdu.room_id_or_derived(),
            event_id: Some(id.clone()),
            decision: Decision::Dropped,
            reason: Some(format!("gave up: {reason}")),
        }));
    }

    pub(super) fn has_fetch_in_flight(&self, room_id: &str) -> bool {
        self.requests.any(|p| match p {
            Pending::MissingEvents { room_id: r, .. }
            | Pending::EventAuth { room_id: r }
            | Pending::StateIdsAt { room_id: r, .. }
            | Pending::StateEvent { room_id: r, .. }
            | Pending::StateAt { room_id: r, .. }
            | Pending::EventFor { room_id: r, .. } => r == room_id,
            _ => false,
        })
    }

    /// Processes the events of a `get_missing_events` answer from `destination`, oldest
    /// first, as pulled events (Synapse `_process_pulled_events`): each is decided once
    /// its ancestors are here, and none sends a `get_missing_events` of its own. Then the
    /// bundle's frontier (its waiting events with a prev event that is neither stored with
    /// a state nor waiting) asks the same server once more, from the frontier, if the
    /// answer brought something new and the frontier lies above the room's minimum depth;
    /// otherwise it asks for the state at its missing prev events.
    ///
    /// [impl] Synapse asks `get_missing_events` once per pushed event and leaves what lies
    /// beyond the answer's ten events as a backward extremity, filled by backfill when a
    /// client reads that far. mxsim's servers have no clients that read, and `liveness`
    /// owes every event to every joined server, so the walk goes on while it brings new
    /// events (docs/conformance.md).
    pub(super) fn receive_bundle(
        &mut self,
        now: Instant,
        room_id: &str,
        destination: &str,
        raws: Vec<Object>,
        out: &mut Vec<Output>,
    ) {
        let Some(rules) = self.rules_of(room_id) else { return };
        let mut pdus: Vec<Arc<Pdu>> = Vec::new();
        for raw in raws {
            // A copy of an event that already waits is the same event: no new check.
            let id = self.event_id_of(rules, &raw);
            if let Some(w) = self.waiting.get(&id) {
                pdus.push(Arc::clone(&w.pdu));
            } else if let Ok(pdu) = self.verify_received(rules, raw) {
                pdus.push(pdu);
            }
        }
        pdus.sort_by(|a, b| a.depth().cmp(&b.depth()).then(a.event_id().cmp(b.event_id())));
        pdus.dedup_by(|a, b| a.event_id() == b.event_id());
        let mut brought_new = false;
        for pdu in &pdus {
            let known = self.waiting.contains_key(pdu.event_id())
                || self.store.event(pdu.event_id()).is_some_and(|e| e.state_after.is_some());
            brought_new |= !known;
            self.process(now, room_id, Arc::clone(pdu), destination, true, out);
        }
        let frontier: Vec<EventId> = pdus
            .iter()
            .filter(|p| self.waiting.get(p.event_id()).is_some_and(|w| w.pulled))
            .filter(|p| {
                let (_, prev) = self.missing_for(room_id, p);
                prev.iter().any(|id| !self.waiting.contains_key(id))
            })
            .map(|p| p.event_id().clone())
            .collect();
        let min_depth = self.store.room(room_id).and_then(|r| r.depth_min).unwrap_or(0);
        let linear = rules.lpdus;
        let deeper: Vec<EventId> = frontier
            .iter()
            .filter(|id| self.waiting.get(*id).is_some_and(|w| linear || w.pdu.depth() > min_depth))
            .cloned()
            .collect();
        if brought_new && !deeper.is_empty() {
            let earliest =
                self.store.room(room_id).map(|r| r.forward_extremities.clone()).unwrap_or_default();
            self.walk_missing_events(now, room_id, earliest, deeper, destination, out);
        }
        // Every pulled event that still waits asks for its next step (its auth events, or
        // the state at its missing prev events unless a follow-up is in flight).
        for pdu in &pdus {
            self.ask_for_ancestors(now, room_id, pdu.event_id(), out);
        }
    }

    /// Starts a [`StateFetch`] of the state at `prev` from `destination`: `/state_ids`.
    pub(super) fn fetch_state_at(
        &mut self,
        now: Instant,
        room_id: &str,
        prev: &EventId,
        destination: &str,
        out: &mut Vec<Output>,
    ) {
        let request = Request::GetStateIds { room_id: room_id.to_owned(), event_id: prev.clone() };
        let pending = Pending::StateIdsAt { room_id: room_id.to_owned(), prev: prev.clone() };
        if self.send(now, destination, request, pending, out) {
            let fetch = StateFetch {
                destination: destination.to_owned(),
                state_ids: Vec::new(),
                outstanding: BTreeSet::new(),
                fetched: Vec::new(),
                failed: false,
                full: false,
                full_state: None,
                prev_pdu: None,
            };
            self.state_fetches.insert(prev.clone(), fetch);
        }
    }

    /// The `/state_ids` answer at `prev` (`None`: it failed). After Synapse
    /// `_get_state_ids_after_missing_prev_event`: the events this server lacks among the
    /// state, the prev event and the auth chain are fetched one by one with `/event`,
    /// unless they are at least a tenth of the state and auth chain together: then the
    /// whole `/state` is asked for.
    fn on_state_ids(
        &mut self,
        now: Instant,
        room_id: &str,
        prev: &EventId,
        ids: Option<(Vec<EventId>, Vec<EventId>)>,
        out: &mut Vec<Output>,
    ) {
        let Some((mut state_ids, auth_chain_ids)) = ids else {
            return self.fetch_full_state(now, room_id, prev, out);
        };
        let mut missing: BTreeSet<EventId> = BTreeSet::new();
        // Each state id this server stores becomes the stored event's own copy, so that
        // gathering the state's events ([`Homeserver::finish_state_ids`]) finds them
        // without comparing the ids' text again (they were parsed from the answer).
        for id in &mut state_ids {
            match self.store.pdu(id) {
                Some(stored) => *id = stored.event_id().clone(),
                None => {
                    missing.insert(id.clone());
                }
            }
        }
        for id in auth_chain_ids.iter().chain([prev]) {
            if !self.store.contains(id) {
                missing.insert(id.clone());
            }
        }
        if missing.len() * 10 >= state_ids.len() + auth_chain_ids.len() {
            return self.fetch_full_state(now, room_id, prev, out);
        }
        let Some(fetch) = self.state_fetches.get_mut(prev) else { return };
        fetch.state_ids = state_ids;
        let destination = fetch.destination.clone();
        for id in missing {
            let request = Request::GetEvent { event_id: id.clone() };
            let pending = Pending::StateEvent {
                room_id: room_id.to_owned(),
                prev: prev.clone(),
                event_id: id.clone(),
            };
            let sent = self.send(now, &destination, request, pending, out);
            let fetch = self.state_fetches.get_mut(prev).expect("fetch in progress");
            match sent {
                true => fetch.outstanding.insert(id),
                false => std::mem::replace(&mut fetch.failed, true),
            };
        }
        self.finish_state_ids(now, room_id, prev, out);
    }

    /// One `/event` answer of a [`StateFetch`] (`None`: it failed).
    fn on_state_event(
        &mut self,
        now: Instant,
        room_id: &str,
        prev: &EventId,
        event_id: &EventId,
        raw: Option<Object>,
        out: &mut Vec<Output>,
    ) {
        let rules = self.rules_of(room_id);
        let Some(fetch) = self.state_fetches.get_mut(prev) else { return };
        fetch.outstanding.remove(event_id);
        match (raw, rules) {
            (Some(raw), Some(rules)) if pdu::event_id(rules, &raw) == *event_id => {
                fetch.fetched.push(raw);
            }
            _ => fetch.failed = true,
        }
        self.finish_state_ids(now, room_id, prev, out);
    }

    /// Once every `/event` of a [`StateFetch`] is answered: stores them as outliers and
    /// completes the prev event with the state its ids name. If one failed, or the state
    /// still has an event this server lacks, asks for the whole `/state` instead.
    fn finish_state_ids(
        &mut self,
        now: Instant,
        room_id: &str,
        prev: &EventId,
        out: &mut Vec<Output>,
    ) {
        let Some(fetch) = self.state_fetches.get_mut(prev) else { return };
        if !fetch.outstanding.is_empty() {
            return;
        }
        let failed = fetch.failed;
        let fetched = std::mem::take(&mut fetch.fetched);
        let state_ids = std::mem::take(&mut fetch.state_ids);
        if failed {
            return self.fetch_full_state(now, room_id, prev, out);
        }
        self.store_outliers(room_id, fetched.into_iter().map(Incoming::Raw).collect(), out);
        // Every state event and the prev event must now be stored; found in the same pass
        // that gathers the state, rather than asked for once and then looked up again.
        let Some(state) = self.stored_state_events_of(room_id, &state_ids) else {
            return self.fetch_full_state(now, room_id, prev, out);
        };
        let Some(pdu) = self.store.pdu(prev).map(Arc::clone) else {
            return self.fetch_full_state(now, room_id, prev, out);
        };
        self.complete_prev(now, room_id, prev, &state, pdu, out);
    }

    /// Falls back to the whole state at `prev` (`/state`, and `/event` for the prev
    /// event if this server lacks it), once per fetch.
    fn fetch_full_state(
        &mut self,
        now: Instant,
        room_id: &str,
        prev: &EventId,
        out: &mut Vec<Output>,
    ) {
        let Some(fetch) = self.state_fetches.get_mut(prev) else { return };
        if fetch.full {
            return self.drop_state_fetch(now, room_id, prev, out);
        }
        fetch.full = true;
        let destination = fetch.destination.clone();
        let state = Request::GetState { room_id: room_id.to_owned(), event_id: prev.clone() };
        let pending = Pending::StateAt { room_id: room_id.to_owned(), prev: prev.clone() };
        let mut sent = self.send(now, &destination, state, pending, out);
        if let Some(stored) = self.store.pdu(prev) {
            let stored = Arc::clone(stored);
            self.state_fetches.get_mut(prev).expect("fetch in progress").prev_pdu = Some(stored);
        } else {
            let event = Request::GetEvent { event_id: prev.clone() };
            let pending = Pending::EventFor { room_id: room_id.to_owned(), prev: prev.clone() };
            sent &= self.send(now, &destination, event, pending, out);
        }
        if !sent {
            self.drop_state_fetch(now, room_id, prev, out);
        }
    }

    /// On the whole-state path: once both the state and the prev event are here,
    /// completes the prev event.
    fn complete_full_state(
        &mut self,
        now: Instant,
        room_id: &str,
        prev: &EventId,
        out: &mut Vec<Output>,
    ) {
        let Some(fetch) = self.state_fetches.get(prev) else { return };
        if let (Some(state), Some(pdu)) = (fetch.full_state.clone(), fetch.prev_pdu.clone()) {
            self.complete_prev(now, room_id, prev, &state, pdu, out);
        }
    }

    /// A [`StateFetch`] that failed: the events waiting on it are given up once nothing
    /// else is in flight.
    fn drop_state_fetch(
        &mut self,
        now: Instant,
        room_id: &str,
        prev: &EventId,
        out: &mut Vec<Output>,
    ) {
        if self.state_fetches.remove(prev).is_some() {
            self.retry_waiting_after_failure(now, room_id, out);
        }
    }

    /// The state events of the given event ids, as far as this server stores them as
    /// state events of the room: sorted by key, the last listed of two with the same key
    /// kept (as inserting them one by one into a map would). Held as the events, not as a
    /// map of copied keys: a fetched state at a thousand servers is a thousand keys, and
    /// most end up a small delta ([`Store::store_state_near`]).
    fn state_events_of(&self, room_id: &str, ids: &[EventId]) -> Vec<Arc<Pdu>> {
        room_state_of(room_id, ids.iter().filter_map(|id| self.store.pdu(id)))
    }

    /// [`Homeserver::state_events_of`] when every one of `ids` is stored, else `None`.
    fn stored_state_events_of(&self, room_id: &str, ids: &[EventId]) -> Option<Vec<Arc<Pdu>>> {
        let mut missing = false;
        let state = room_state_of(
            room_id,
            ids.iter().map_while(|id| {
                let pdu = self.store.pdu(id);
                missing |= pdu.is_none();
                pdu
            }),
        );
        (!missing).then_some(state)
    }

    /// A missing prev event with the state before it: stored with that state (an outlier
    /// it was is upgraded), so that events after it can be decided.
    fn complete_prev(
        &mut self,
        now: Instant,
        room_id: &str,
        prev: &EventId,
        state: &[Arc<Pdu>],
        pdu: Arc<Pdu>,
        out: &mut Vec<Output>,
    ) {
        self.state_fetches.remove(prev);
        if self.store.event(prev).is_none_or(|e| e.state_after.is_none()) {
            let entries: Vec<(&str, &str, &EventId)> = state
                .iter()
                .map(|pdu| (pdu.event_type(), pdu.state_key().unwrap_or_default(), pdu.event_id()))
                .collect();
            let group = match self.store.room(room_id).and_then(|room| room.current_state) {
                Some(near) => self.store.store_state_near(&entries, near),
                None => {
                    let map = entries
                        .iter()
                        .map(|&(t, k, id)| ((t.to_owned(), k.to_owned()), id.clone()))
                        .collect();
                    self.store.store_state(&map, None)
                }
            };
            let outcome = self.check_own_auth(room_id, &pdu);
            // Stored with a state from now on: report it like any other receipt, so that
            // the trace holds every event the server keeps.
            out.push(Output::Observed(Observation::Event {
                room_id: room_id.to_owned(),
                event_id: Some(prev.clone()),
                decision: outcome.decision,
                reason: outcome.reason.clone(),
            }));
            if self.store.contains(prev) {
                // Upgrade the outlier with the state we now know.
                let after = self.store.compute_state_after(&pdu, &outcome, group);
                let stored = StoredEvent::new(Arc::clone(&pdu), &outcome, Some(group), Some(after));
                self.store.replace_outlier(stored);
                self.retries.arrived(pdu.event_id());
            } else {
                self.store_event(room_id, &pdu, &outcome, Some(group));
            }
        }
        self.retry_waiting_after_failure(now, room_id, out);
    }
}

/// Of `pdus`, the state events of `room_id`, sorted by key, the last listed of two with the
/// same key kept ([`Homeserver::state_events_of`]).
fn room_state_of<'a>(room_id: &str, pdus: impl Iterator<Item = &'a Arc<Pdu>>) -> Vec<Arc<Pdu>> {
    // Room for every event given (most are the room's state events), rather than a vector
    // that doubles as the filter hands them on.
    let mut events: Vec<Arc<Pdu>> = Vec::with_capacity(pdus.size_hint().1.unwrap_or(0));
    events.extend(pdus.filter(|pdu| pdu.state_key().is_some() && pdu.is_in_room(room_id)).cloned());
    last_of_each_key(events, |a, b| state_key_of(a).cmp(&state_key_of(b)))
}

/// `items` sorted by `order`, keeping of each run of equal items the one listed last:
/// what inserting them one by one into a map would keep, in the map's order.
fn last_of_each_key<T>(mut items: Vec<T>, order: impl Fn(&T, &T) -> Ordering) -> Vec<T> {
    // A stable sort keeps equal items in the order listed.
    items.sort_by(&order);
    let mut kept: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        match kept.last_mut() {
            Some(last) if order(last, &item) == Ordering::Equal => *last = item,
            _ => kept.push(item),
        }
    }
    kept
}

/// A state event's key, borrowed.
fn state_key_of(pdu: &Pdu) -> (&str, &str) {
    (pdu.event_type(), pdu.state_key().unwrap_or_default())
}

impl Pending {
    /// The endpoint whose answer this request awaits (to decode the answer).
    fn endpoint(&self) -> wire::Endpoint {
        match self {
            Pending::Transaction { .. } => wire::Endpoint::SendTransaction,
            Pending::MissingEvents { .. } => wire::Endpoint::GetMissingEvents,
            Pending::StateIdsAt { .. } => wire::Endpoint::GetStateIds,
            Pending::StateEvent { .. } | Pending::EventFor { .. } => wire::Endpoint::GetEvent,
            Pending::StateAt { .. } => wire::Endpoint::GetState,
            Pending::EventAuth { .. } => wire::Endpoint::GetEventAuth,
            Pending::Invite { .. } => wire::Endpoint::Invite,
            Pending::Make(h) => match h.membership {
                "join" => wire::Endpoint::MakeJoin,
                "knock" => wire::Endpoint::MakeKnock,
                _ => wire::Endpoint::MakeLeave,
            },
            Pending::Send { handshake: h, .. } => match h.membership {
                "join" => wire::Endpoint::SendJoin,
                "knock" => wire::Endpoint::SendKnock,
                _ => wire::Endpoint::SendLeave,
            },
        }
    }
}

/// Debug builds: an answer decoded with some PDUs recognised by their bytes is the answer
/// the whole body decodes to, each recognised PDU being the JSON of the copy it was
/// recognised as.
fn same_join_as_parsed_whole(
    endpoint: wire::Endpoint,
    http: &HttpResponse,
    response: &Response,
    known: &wire::KnownPdus<CheckedCopy>,
) {
    let whole = Response::from_http(endpoint, http).expect("what decodes in part decodes whole");
    let Response::SendJoin(join) = response else {
        assert_eq!(&whole, response, "only send_join answers are decoded in part");
        return;
    };
    let merge = |parsed: &[Arc<OutgoingPdu>], key: &str| {
        let parsed: Vec<Object> = parsed.iter().map(|object| object.json().clone()).collect();
        let sent = super::incoming::sent_json(&parsed, &known[key]);
        sent.into_iter().map(|object| Arc::new(OutgoingPdu::new(object))).collect()
    };
    let merged = wire::SendJoin {
        state: merge(&join.state, "state"),
        auth_chain: merge(&join.auth_chain, "auth_chain"),
        ..join.clone()
    };
    assert_eq!(whole, Response::SendJoin(merged), "recognised PDUs are the PDUs of the body");
}

/// What answered a transaction.
#[derive(Clone, Copy)]
enum Answer<'a> {
    /// Nothing that decodes as a `/send` answer (an error, a timeout, no answer).
    None,
    /// The answer's results, one per PDU.
    Results(&'a BTreeMap<EventId, wire::PduResult>),
    /// The bytes of the last answer that accepted every PDU ([`Homeserver::accepted_again`]).
    AcceptedAll,
}

/// Whether `response` is a `/send` answer that accepted every PDU it lists.
fn accepts_every_pdu(response: &Response) -> bool {
    matches!(response, Response::SendTransaction { pdus } if pdus.values().all(Result::is_ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_send_answer_without_errors_accepts_every_pdu() {
        let id = |n: &str| EventId::parse(n).unwrap();
        let results = |errors: &[bool]| Response::SendTransaction {
            pdus: errors
                .iter()
                .enumerate()
                .map(|(n, &error)| {
                    (id(&format!("$e{n}")), if error { Err("no".into()) } else { Ok(()) })
                })
                .collect(),
        };
        assert!(accepts_every_pdu(&results(&[])));
        assert!(accepts_every_pdu(&results(&[false, false])));
        assert!(!accepts_every_pdu(&results(&[false, true])));
        assert!(!accepts_every_pdu(&results(&[true])));
        assert!(!accepts_every_pdu(&Response::GetMissingEvents { events: Vec::new() }));
    }

    #[test]
    fn the_last_of_each_key_is_what_a_map_keeps() {
        let by_key = |a: &(u8, u32), b: &(u8, u32)| a.0.cmp(&b.0);
        let items = vec![(3, 0), (1, 1), (3, 2), (2, 3), (1, 4), (3, 5)];
        assert_eq!(last_of_each_key(items, by_key), vec![(1, 4), (2, 3), (3, 5)]);
        assert_eq!(last_of_each_key(Vec::new(), by_key), vec![]);
        let mut rng = crate::stdx::Prng::from_seed(3);
        for case in 0..200u32 {
            let len = rng.index(60);
            let items: Vec<(u8, u32)> =
                (0..len).map(|n| (rng.index(12) as u8, case * 100 + n as u32)).collect();
            let map: BTreeMap<u8, u32> = items.iter().copied().collect();
            let expected: Vec<(u8, u32)> = map.into_iter().collect();
            assert_eq!(last_of_each_key(items.clone(), by_key), expected, "{items:?}");
        }
    }
}
