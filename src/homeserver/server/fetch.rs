//! Fetching: answers to this server's own requests (missing auth events, missing prev
//! events, state at an event), and the bounded wait of events for their ancestors.

use super::*;

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
        let Some((pending, _)) = self.requests.remove(&id) else { return };
        let endpoint = pending.endpoint();
        // The answer, or why there is none, as a sentence.
        let answer: Result<Response, String> = match http {
            Some(h) => Response::from_http(endpoint, &h)
                .map_err(|e| format!("an answer that does not decode ({e})")),
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
                let ok = matches!(response, Some(Response::SendTransaction { .. }));
                // Reported on a change only: a failed catch-up probe leaves a peer down.
                let was_down = self.outbound.is_down(&destination);
                match self.outbound.on_response(&destination, &txn_id, now, ok) {
                    ResponseOutcome::MarkedDown { .. } if !was_down => {
                        let peer = destination;
                        out.push(Output::Observed(Observation::PeerDown { peer }));
                    }
                    ResponseOutcome::Delivered if was_down => {
                        let peer = destination;
                        out.push(Output::Observed(Observation::PeerUp { peer }));
                    }
                    _ => {}
                }
            }
            Pending::MissingEvents { room_id } => {
                if let Some(Response::GetMissingEvents { events }) = response {
                    self.receive_bundle(now, &room_id, events, out);
                }
                self.retry_waiting_after_failure(now, &room_id, out);
            }
            Pending::EventAuth { room_id } => {
                if let Some(Response::GetEventAuth { auth_chain }) = response {
                    self.store_outliers(&room_id, auth_chain, out);
                }
                self.retry_waiting_after_failure(now, &room_id, out);
            }
            Pending::EventFor { room_id, prev } => {
                if let Some(Response::GetEvent(txn)) = response {
                    if let Some(rules) = self.rules_of(&room_id) {
                        if let Some(Ok(pdu)) =
                            txn.pdus.into_iter().next().map(|raw| self.verify_received(rules, raw))
                        {
                            if pdu.event_id() == &prev {
                                self.fetched_prev.insert(prev.clone(), pdu);
                            }
                        }
                    }
                }
                self.complete_prev(now, &room_id, &prev, None, out);
            }
            Pending::StateAt { room_id, prev } => {
                let state = match response {
                    Some(Response::GetState { pdus, auth_chain }) => {
                        let mut all = auth_chain;
                        all.extend(pdus.iter().cloned());
                        self.store_outliers(&room_id, all, out);
                        Some(pdus)
                    }
                    _ => None,
                };
                self.complete_prev(now, &room_id, &prev, state, out);
            }
            Pending::Make(handshake) => self.on_make(now, handshake, answer, out),
            Pending::Send { handshake, version, own } => {
                self.on_send(now, handshake, version, own, answer, out)
            }
            Pending::Invite { user, room_id, event_id, destination } => {
                self.on_invite_answer(now, &user, &room_id, &event_id, &destination, answer, out)
            }
        }
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
    pub(super) fn retry_waiting_after_failure(
        &mut self,
        now: Instant,
        room_id: &str,
        out: &mut Vec<Output>,
    ) {
        self.retry_waiting(now, room_id, out);
        let stuck: Vec<Arc<Pdu>> = self
            .waiting
            .values()
            .filter(|w| w.pdu.room_id_or_derived() == room_id)
            .map(|w| Arc::clone(&w.pdu))
            .collect();
        for pdu in stuck {
            let origin =
                self.waiting.get(pdu.event_id()).map(|w| w.origin.clone()).unwrap_or_default();
            self.process(now, room_id, pdu, &origin, out);
        }
        // Events of this room that already asked for everything they miss are given up
        // once no fetch of the room is in flight. (The fix of an event that asked for its
        // auth events and never counted as having asked for everything, so that it waited
        // for ever.)
        if self.has_fetch_in_flight(room_id) {
            return;
        }
        let hopeless: Vec<(EventId, String)> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.pdu.room_id_or_derived() == room_id)
            .filter_map(|(id, w)| {
                let (auth, prev) = self.missing_for(room_id, &w.pdu);
                // Prev events are asked for only once the auth events are here.
                let auth_failed = !auth.is_empty() && w.asked_auth;
                let prev_failed = auth.is_empty() && w.asked_missing && w.asked_state;
                if !(auth_failed || prev_failed) {
                    return None;
                }
                let reason = if !auth.is_empty() {
                    format!(
                        "/event_auth from {} did not bring auth events {}",
                        w.origin,
                        list(&auth)
                    )
                } else {
                    format!(
                        "get_missing_events and /state from {} did not bring prev events {}",
                        w.origin,
                        list(&prev)
                    )
                };
                Some((id.clone(), reason))
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
        self.requests.values().any(|(p, _)| match p {
            Pending::MissingEvents { room_id: r }
            | Pending::EventAuth { room_id: r }
            | Pending::StateAt { room_id: r, .. }
            | Pending::EventFor { room_id: r, .. } => r == room_id,
            _ => false,
        })
    }

    /// Processes events returned by `get_missing_events`, oldest first.
    pub(super) fn receive_bundle(
        &mut self,
        now: Instant,
        room_id: &str,
        raws: Vec<Object>,
        out: &mut Vec<Output>,
    ) {
        let Some(rules) = self.rules_of(room_id) else { return };
        let mut pdus: Vec<Arc<Pdu>> =
            raws.into_iter().filter_map(|raw| self.verify_received(rules, raw).ok()).collect();
        pdus.sort_by(|a, b| a.depth().cmp(&b.depth()).then(a.event_id().cmp(b.event_id())));
        for pdu in pdus {
            let origin = pdu.origin().to_owned();
            self.process(now, room_id, pdu, &origin, out);
        }
    }

    /// A missing prev event: once both the event and the state before it are here, store
    /// it as an outlier with that state (so events after it can be checked).
    pub(super) fn complete_prev(
        &mut self,
        now: Instant,
        room_id: &str,
        prev: &EventId,
        state: Option<Vec<Object>>,
        out: &mut Vec<Output>,
    ) {
        if let Some(pdus) = state {
            let mut map = StateMap::new();
            for raw in &pdus {
                let Some(rules) = self.rules_of(room_id) else { return };
                let id = pdu::event_id(rules, raw);
                if let Some(event) = self.store.event(&id) {
                    if let Some(key) = event.pdu.state_key() {
                        map.insert((event.pdu.event_type().to_owned(), key.to_owned()), id);
                    }
                }
            }
            let group = self.store.store_state(&map, None);
            self.prev_states.insert(prev.clone(), group);
        }
        let (Some(pdu), Some(group)) =
            (self.fetched_prev.get(prev).cloned(), self.prev_states.get(prev).copied())
        else {
            self.retry_waiting_after_failure(now, room_id, out);
            return;
        };
        self.fetched_prev.remove(prev);
        self.prev_states.remove(prev);
        if self.store.event(prev).is_none_or(|e| e.state_after.is_none()) {
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
                let stored = StoredEvent {
                    pdu: Arc::clone(&pdu),
                    outcome,
                    state_before: Some(group),
                    state_after: Some(after),
                    redacted: false,
                };
                self.store.replace_outlier(stored);
            } else {
                self.store_event(room_id, &pdu, outcome, Some(group));
            }
        }
        self.retry_waiting_after_failure(now, room_id, out);
    }
}

impl Pending {
    /// The endpoint whose answer this request awaits (to decode the answer).
    fn endpoint(&self) -> wire::Endpoint {
        match self {
            Pending::Transaction { .. } => wire::Endpoint::SendTransaction,
            Pending::MissingEvents { .. } => wire::Endpoint::GetMissingEvents,
            Pending::StateAt { .. } => wire::Endpoint::GetState,
            Pending::EventFor { .. } => wire::Endpoint::GetEvent,
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
