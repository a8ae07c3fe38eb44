//! Receiving events: the receipt checks in the spec's order, deciding, committing,
//! applying redactions, and the wait for missing ancestors. The state before an event
//! and the resolution of forward extremities are in `resolve`.

use super::*;
use crate::matrix::linearized;

impl Homeserver {
    /// Stores an event with its decision and state; the state after is derived. Returns the
    /// state after, if this call stored the event: `None` inside when it has no state,
    /// `None` outside when the event was stored before as more than an outlier (then the
    /// stored one stands).
    pub(super) fn store_event(
        &mut self,
        room_id: &str,
        pdu: &Arc<Pdu>,
        outcome: &Outcome,
        before: Option<StateGroupId>,
    ) -> Option<Option<StateGroupId>> {
        let after = before.map(|b| self.store.compute_state_after(pdu, outcome, b));
        self.committed.push(pdu.event_id().clone());
        let stored = StoredEvent::new(Arc::clone(pdu), outcome, before, after);
        let inserted = self.store.insert(room_id, stored);
        assert!(inserted || self.store.contains(pdu.event_id()));
        self.retries.arrived(pdu.event_id());
        inserted.then_some(after)
    }

    /// Stores a decided event and updates extremities and current state.
    pub(super) fn commit(
        &mut self,
        room_id: &str,
        pdu: &Arc<Pdu>,
        outcome: Outcome,
        out: &mut Vec<Output>,
    ) {
        let rules = self.rules_of(room_id).expect("room is known");
        assert!(outcome.decision != Decision::Outlier, "not a commit decision");
        let before = match outcome.decision {
            Decision::RejectedAuthEvents => None,
            _ => self.state_before(rules, pdu).ok(),
        };
        let accepted = outcome.decision == Decision::Accepted;
        let stored = self.store_event(room_id, pdu, &outcome, before);
        if !accepted {
            return;
        }
        let old_state = self.store.room(room_id).and_then(|r| r.current_state);
        // [impl] Synapse `_calculate_new_extremities`: the event replaces its prev events
        // among the forward extremities, unless a stored event already follows it (one
        // stored with a state across a gap, before this event arrived): such an event would
        // stay an extremity that nothing cites, and every later resolution would merge its
        // old state with the room's (at a thousand servers joining, hundreds of conflicted
        // members in each). A room is never left without an extremity.
        let cited = self.store.take_cited_ahead(pdu.event_id());
        let behind = self.behind_excluded_prevs(pdu);
        let room = self.store.room_mut(room_id);
        let covered = room.forward_extremities.iter().all(|id| pdu.prev_events().contains(id));
        for prev in pdu.prev_events().iter().chain(&behind) {
            room.forward_extremities.remove(prev);
        }
        let extremity = !cited || room.forward_extremities.is_empty();
        if extremity {
            room.forward_extremities.insert(pdu.event_id().clone());
        }
        // The state after as stored: the one just derived, unless the event was stored
        // before (then that copy's).
        let after = match stored {
            Some(after) => after,
            None => self.store.event(pdu.event_id()).and_then(|e| e.state_after),
        };
        debug_assert_eq!(after, self.store.event(pdu.event_id()).and_then(|e| e.state_after));
        let new_state =
            if covered && extremity { after } else { self.resolve_extremities(room_id, rules) };
        self.store.room_mut(room_id).current_state = new_state;
        // Checked in every build when the event was stored before, and in debug builds also
        // when this call stored it (as accepted, by construction).
        let looked_at = stored.is_none() || cfg!(debug_assertions);
        assert!(
            !looked_at
                || self
                    .store
                    .event(pdu.event_id())
                    .is_some_and(|e| e.decision == Decision::Accepted),
            "a committed accepted event is stored as accepted"
        );
        if let (Some(new), Some(old)) = (new_state, old_state) {
            if !self.store.same_state(new, old) {
                out.push(Output::Observed(Observation::StateChanged {
                    room_id: room_id.to_owned(),
                    state_hash: self.state_hash(new),
                }));
            }
        }
        if pdu.event_type() == "m.room.redaction" {
            self.apply_redaction(room_id, pdu, out);
        }
        if self.is_hub_of(room_id) && !linearized::built_by_hub(pdu, &self.name) {
            self.linearize_dag(room_id, pdu, out);
        }
    }

    /// The events that lie behind the soft-failed or rejected events among `pdu`'s prev
    /// events: their prev events, and on through the prev events of those that are
    /// soft-failed or rejected too. They are ancestors of `pdu`, so none of them is a
    /// forward extremity once it is committed, although no accepted event names them.
    ///
    /// [impl] Synapse `_get_prevs_before_rejected` (synapse/storage/databases/main/
    /// events.py), which `_calculate_new_extremities` subtracts "otherwise we end up with
    /// dangling extremities". Outliers are not walked through, as there (`NOT outlier`).
    fn behind_excluded_prevs(&self, pdu: &Pdu) -> Vec<EventId> {
        let mut behind: Vec<EventId> = Vec::new();
        let mut seen: BTreeSet<&EventId> = BTreeSet::new();
        let mut stack: Vec<&EventId> = pdu.prev_events().iter().collect();
        while let Some(id) = stack.pop() {
            let Some(event) = self.store.event(id) else { continue };
            let decision = event.decision;
            // Only the walked events are remembered: with accepted prev events (nearly every
            // commit) the walk allocates nothing.
            if (decision == Decision::SoftFailed || decision.is_rejected()) && seen.insert(id) {
                for prev in event.pdu.prev_events() {
                    behind.push(prev.clone());
                    stack.push(prev);
                }
            }
        }
        behind
    }

    /// Commits an event this server made (its own user's, or the hub's completion of an
    /// LPDU) and records it `created`.
    pub(super) fn commit_created(&mut self, room_id: &str, pdu: &Arc<Pdu>, out: &mut Vec<Output>) {
        self.commit(room_id, pdu, Outcome::accepted(), out);
        out.push(Output::Observed(Observation::Event {
            room_id: room_id.to_owned(),
            event_id: Some(pdu.event_id().clone()),
            decision: Decision::Created,
            reason: None,
        }));
    }

    /// A state's name in traces ([`StateDigest`], docs/trace.md), kept per group as states
    /// are stored rather than computed from the whole state.
    ///
    /// [`StateDigest`]: crate::matrix::state_digest::StateDigest
    pub fn state_hash(&self, group: StateGroupId) -> String {
        self.store.state_digest(group).name()
    }

    /// Receives one PDU of a transaction (or pushed with a join/leave/knock).
    pub(super) fn receive_pdu(
        &mut self,
        now: Instant,
        origin: &str,
        raw: Incoming,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        let room_id = wire::pdu_room_id(raw.json()).ok_or("no room_id")?.to_owned();
        if !self.is_resident(&room_id) {
            // [impl] Synapse `on_receive_pdu` (synapse/handlers/federation_event.py):
            // while a join is in progress the room's PDUs are queued and processed once it
            // is done; otherwise a server not in the room ignores them ("Ignoring PDU from
            // %s as we're not in the room"). Only invites, knocks and leaves of its own
            // users reach it out of band (`/invite`, `send_knock`, `send_leave`).
            let queued: usize = self.join_queues.values().map(Vec::len).sum();
            if let Some(queue) = self.join_queues.get_mut(&room_id) {
                if queued < self.config.waiting_pdus_max {
                    queue.push((origin.to_owned(), raw.into_json()));
                    return Ok(());
                }
            }
            let Some(rules) = self.rules_of(&room_id) else {
                return Err("this server is not in the room".into());
            };
            out.push(Output::Observed(Observation::Event {
                room_id: room_id.clone(),
                event_id: Some(self.incoming_id(rules, &raw)),
                decision: Decision::Dropped,
                reason: Some(format!(
                    "ignored: {} is not in the room (no joined member of its own)",
                    self.name
                )),
            }));
            return Ok(());
        }
        let rules = self.rules_of(&room_id).ok_or("this server is not in the room")?;
        if !self.acl_allows(&room_id, origin) {
            return Err("server ACL denies the origin".into());
        }
        if let Some(hub) = self.participant_hub(&room_id).filter(|hub| origin != hub) {
            // Linearized Matrix: participants take the room's events from the hub only
            // (draft "Sending"; they "reject non-hub traffic"). The hub takes PDUs from
            // DAG-capable servers and appends them (`linearize_dag`), as DAG-capable
            // servers take them from each other.
            out.push(Output::Observed(Observation::Event {
                room_id: room_id.clone(),
                event_id: Some(self.incoming_id(rules, &raw)),
                decision: Decision::Dropped,
                reason: Some(format!(
                    "not from the room's hub {hub}: participants take its events from the hub only"
                )),
            }));
            return Ok(());
        }
        let pdu = match self.verify_incoming(rules, raw) {
            Ok(pdu) => pdu,
            Err(reason) => {
                out.push(Output::Observed(Observation::Event {
                    room_id: room_id.clone(),
                    event_id: None,
                    decision: Decision::Dropped,
                    reason: Some(reason.clone()),
                }));
                return Err(reason);
            }
        };
        if !pdu.is_in_room(&room_id) {
            return Err("room id mismatch".into());
        }
        self.process(now, &room_id, pdu, origin, false, out);
        Ok(())
    }

    /// Whether the room's current server ACL allows `server`.
    pub(super) fn acl_allows(&self, room_id: &str, server: &str) -> bool {
        let Some(group) = self.store.room(room_id).and_then(|r| r.current_state) else {
            return true;
        };
        // The body the store holds for the entry, as `GroupView::body` reads it.
        match self.acl_entry(room_id, group).and_then(|id| self.store.pdu(&id)) {
            Some(acl) => acl_allows(acl.content(), server),
            None => true,
        }
    }

    /// The server ACL entry of state `group`, the current state of `room_id`. Remembered
    /// per room with the group it was read in, and kept for a state on top of that one
    /// unless the ACL's key was set in between, as [`Homeserver::has_joined_member_here`]
    /// keeps its answer: read afresh for every PDU received, it walked the group's chain
    /// to a snapshot, 1.75% of a 1,000-server run.
    fn acl_entry(&self, room_id: &str, group: StateGroupId) -> Option<EventId> {
        const ACL: &str = "m.room.server_acl";
        let mut entries = self.acl_entries.borrow_mut();
        let read = |group| self.store.state_get_parts(group, ACL, "").cloned();
        let Some((at, entry)) = entries.get_mut(room_id) else {
            let entry = read(group);
            entries.insert(room_id.to_owned(), (group, entry.clone()));
            return entry;
        };
        if !self.store.keys_kept_since(*at, group, |(t, k)| t == ACL && k.is_empty()) {
            *entry = read(group);
        }
        *at = group;
        debug_assert_eq!(*entry, read(group), "the ACL entry kept is the state's");
        entry.clone()
    }

    /// Missing auth events, and prev events without a known state after them.
    pub(super) fn missing_for(&self, room_id: &str, pdu: &Pdu) -> (Vec<EventId>, Vec<EventId>) {
        let auth = self.missing_auth(room_id, pdu);
        let prev = pdu
            .prev_events()
            .iter()
            .filter(|id| self.store.event(id).is_none_or(|e| e.state_after.is_none()))
            .cloned()
            .collect();
        (auth, prev)
    }

    /// Missing auth events: those `pdu` lists, and in room versions whose room id names the
    /// create event, that event (unless it is `pdu`).
    fn missing_auth(&self, room_id: &str, pdu: &Pdu) -> Vec<EventId> {
        let room = self.store.room(room_id).expect("room is known");
        let mut auth: Vec<EventId> =
            pdu.auth_events().iter().filter(|id| !self.store.contains(id)).cloned().collect();
        if room.version.rules().room_id_is_create_event_hash {
            if let Some(create) = &room.implied_create {
                if !self.store.contains(create) && create != pdu.event_id() {
                    auth.push(create.clone());
                }
            }
        }
        auth
    }

    /// Decides and stores an event if its ancestors are known, otherwise parks it and asks
    /// for what is missing: auth events through `/event_auth`, prev events through
    /// `get_missing_events`, then the state at each missing prev event. An event `pulled`
    /// from a `get_missing_events` answer is only parked: the answer's handler
    /// ([`Homeserver::receive_bundle`]) decides what the bundle asks next.
    pub(super) fn process(
        &mut self,
        now: Instant,
        room_id: &str,
        pdu: Arc<Pdu>,
        origin: &str,
        pulled: bool,
        out: &mut Vec<Output>,
    ) {
        if let Some(stored) = self.store.event(pdu.event_id()) {
            if stored.decision != Decision::Outlier || stored.state_after.is_some() {
                return; // Duplicates and replays are idempotent.
            }
        }
        let (missing_auth, missing_prev) = self.missing_for(room_id, &pdu);
        if missing_auth.is_empty() && missing_prev.is_empty() {
            let outcome = self.decide(room_id, &pdu);
            let hub = self.participant_hub(room_id);
            if let Some(reason) = hub.as_ref().and_then(|_| self.missed_history(room_id, &pdu)) {
                out.push(Output::Observed(Observation::Event {
                    room_id: room_id.to_owned(),
                    event_id: Some(pdu.event_id().clone()),
                    decision: Decision::Dropped,
                    reason: Some(reason),
                }));
                self.waiting.remove(pdu.event_id());
                return;
            }
            if let Some(hub) = &hub {
                // Linearized Matrix: the hub's next event must follow the list's rules; an
                // event the hub should not have appended is its fault, and is not appended
                // here.
                let rejected = outcome.reason.clone().map(|reason| ("rejected".to_owned(), reason));
                if let Some((fault, reason)) = self.hub_fault(room_id, &pdu, hub).or(rejected) {
                    out.push(Output::Observed(Observation::HubMisbehaviour {
                        room_id: room_id.to_owned(),
                        event_id: pdu.event_id().clone(),
                        fault,
                        reason: reason.clone(),
                    }));
                    out.push(Output::Observed(Observation::Event {
                        room_id: room_id.to_owned(),
                        event_id: Some(pdu.event_id().clone()),
                        decision: Decision::Dropped,
                        reason: Some(format!("the hub {hub} broke the list's rules: {reason}")),
                    }));
                    self.waiting.remove(pdu.event_id());
                    return;
                }
            }
            let (decision, reason) = (outcome.decision, outcome.reason.clone());
            self.commit(room_id, &pdu, outcome, out);
            if hub.is_some() {
                self.note_echo(room_id, &pdu, out);
            }
            out.push(Output::Observed(Observation::Event {
                room_id: room_id.to_owned(),
                event_id: Some(pdu.event_id().clone()),
                decision,
                reason,
            }));
            self.waiting.remove(pdu.event_id());
            self.retry_waiting(now, room_id, out);
            return;
        }
        let id = pdu.event_id().clone();
        if !self.waiting.contains_key(&id) && self.waiting.len() >= self.config.waiting_pdus_max {
            // Bounded: the event is dropped; catch-up will bring it back.
            let limit = self.config.waiting_pdus_max;
            out.push(Output::Observed(Observation::Event {
                room_id: room_id.to_owned(),
                event_id: Some(id),
                decision: Decision::Dropped,
                reason: Some(format!("{limit} events already wait for missing ancestors")),
            }));
            return;
        }
        let deadline = now + self.config.waiting_time_max;
        let seq = self.waiting_seq;
        self.waiting_seq += 1;
        self.waiting.entry(id.clone()).or_insert_with(|| Waiting {
            pdu: Arc::clone(&pdu),
            origin: origin.to_owned(),
            pulled,
            asked_auth: false,
            missing: Ask::Not,
            asked_state: BTreeSet::new(),
            deadline,
            seq,
        });
        self.retries.due.insert(id.clone());
        if !pulled {
            self.ask_for_ancestors(now, room_id, &id, out);
        }
    }

    /// Asks for the next thing a waiting event misses, each step once, and only after the
    /// step before it was answered: its auth events (`/event_auth`); then, for an event
    /// pushed to this server and deeper than the room's minimum depth, its prev events
    /// (`get_missing_events`, after Synapse `_get_missing_events_for_pdu`); then the
    /// state at each missing prev event that is not itself waiting ([`StateFetch`],
    /// shared by every event that misses the same prev event).
    pub(super) fn ask_for_ancestors(
        &mut self,
        now: Instant,
        room_id: &str,
        id: &EventId,
        out: &mut Vec<Output>,
    ) {
        let Some(entry) = self.waiting.get(id) else { return };
        let pdu = Arc::clone(&entry.pdu);
        let origin = entry.origin.clone();
        let (missing_auth, missing_prev) = self.missing_for(room_id, &pdu);
        if !missing_auth.is_empty() {
            if !entry.asked_auth {
                let request =
                    Request::GetEventAuth { room_id: room_id.to_owned(), event_id: id.clone() };
                let pending = Pending::EventAuth { room_id: room_id.to_owned() };
                let sent = self.send(now, &origin, request, pending, out);
                self.waiting.get_mut(id).expect("waits").asked_auth = sent;
            }
            return;
        }
        if missing_prev.is_empty() {
            return;
        }
        let room = self.store.room(room_id).expect("room is known");
        // Synapse `_update_min_depth_for_room_txn`: the least depth of the room's events
        // stored with a state (outliers do not count).
        let min_depth = room.depth_min.unwrap_or(0);
        // Synapse handles a room's received PDUs one at a time
        // (`_process_incoming_pdus_in_room_inner`), so a PDU asks `get_missing_events`
        // only after the one before it got its answer, which often brings this one's
        // prev events too: wait while one is in flight for the room.
        let walking = self
            .requests
            .any(|p| matches!(p, Pending::MissingEvents { room_id: r, .. } if r == room_id));
        // Linearized Matrix has no depth: the walk always goes on, and it is the only way
        // to fill a gap in the hub's list ([digest] docs/linearized.md).
        let linear = room.version.rules().lpdus;
        // [digest] At a participant, a DAG-capable server's event may name prev events
        // from before this server joined, which it holds only as outliers from the join:
        // the hub's list before the join is not this server's to hold, so it takes the
        // state there, as a DAG server does, instead of walking back to the create event.
        let before_join = linear
            && self.participant_hub(room_id).is_some()
            && self.hub_of(room_id).is_some_and(|hub| !linearized::built_by_hub(&pdu, &hub))
            && missing_prev.iter().all(|prev| self.store.contains(prev));
        match entry.missing {
            Ask::Not if before_join => {}
            Ask::Not if !entry.pulled && walking => return,
            Ask::Not if !entry.pulled && (linear || pdu.depth() > min_depth) => {
                // Synapse sends its latest events and the prev events it has in its
                // timeline (`have_events_in_timeline`: outliers do not count) as the
                // earliest, so that the walk skips what it holds.
                let mut earliest: BTreeSet<EventId> = room.forward_extremities.clone();
                for prev in pdu.prev_events() {
                    if self.store.event(prev).is_some_and(|e| e.state_after.is_some()) {
                        earliest.insert(prev.clone());
                    }
                }
                let latest = vec![id.clone()];
                if self.walk_missing_events(now, room_id, earliest, latest, &origin, out) {
                    return;
                }
            }
            Ask::InFlight => return,
            _ => {}
        }
        if linear && !before_join && !self.is_dag_server_in(room_id) {
            // A state download would leave a hole in the hub's list or a participant's
            // copy of it: the event waits for the walk (or its deadline) instead. A
            // DAG-capable server keeps a DAG and bridges gaps as in any DAG room.
            return;
        }
        for prev in missing_prev {
            if self.waiting.contains_key(&prev) {
                continue; // Decided in its own time; this event is retried after it.
            }
            let entry = self.waiting.get_mut(id).expect("waits");
            if !entry.asked_state.insert(prev.clone()) {
                continue;
            }
            if !self.state_fetches.contains_key(&prev) {
                self.fetch_state_at(now, room_id, &prev, &origin, out);
            }
        }
    }

    /// Sends `get_missing_events` to `destination` for the waiting events `latest`, from
    /// the room's minimum depth, and marks their walk in flight; false if it could not be
    /// sent.
    pub(super) fn walk_missing_events(
        &mut self,
        now: Instant,
        room_id: &str,
        earliest: BTreeSet<EventId>,
        latest: Vec<EventId>,
        destination: &str,
        out: &mut Vec<Output>,
    ) -> bool {
        let min_depth = self.store.room(room_id).and_then(|r| r.depth_min).unwrap_or(0);
        let request = Request::GetMissingEvents {
            room_id: room_id.to_owned(),
            earliest_events: earliest.into_iter().collect(),
            latest_events: latest.clone(),
            limit: self.config.missing_events_limit,
            min_depth,
        };
        let pending = Pending::MissingEvents {
            room_id: room_id.to_owned(),
            for_events: latest.clone(),
            destination: destination.to_owned(),
        };
        if !self.send(now, destination, request, pending, out) {
            return false;
        }
        for id in &latest {
            if let Some(w) = self.waiting.get_mut(id) {
                w.missing = Ask::InFlight;
            }
        }
        true
    }

    /// Retries waiting events of a room whose ancestors may have arrived.
    /// Events are taken in event id order; at a participant of a Linearized Matrix room,
    /// in the order they arrived, so that two of the hub's events ready at once (two
    /// DAG-capable servers' events waiting for the same state, say) are appended in the
    /// room's list order.
    ///
    /// Only the events that may have become ready are asked what they miss
    /// ([`Retries`]): the new ones, and those whose blocker (an ancestor each missed
    /// when last asked) has since been stored or given a state. Stored events stay
    /// stored and known states stay known, so any other waiting event still misses its
    /// blocker, and the passes take the same events in the same order as asking every
    /// waiting event, which visited them all after each commit: at a thousand servers
    /// with messages flowing, that pass was a fifth of the run. Debug builds check each
    /// pass's choice against asking every waiting event.
    pub(super) fn retry_waiting(&mut self, now: Instant, room_id: &str, out: &mut Vec<Output>) {
        let arrival_order = self.participant_hub(room_id).is_some();
        loop {
            let mut ready: Option<(u64, &EventId)> = None;
            let mut blocked: Vec<(EventId, EventId)> = Vec::new();
            let mut gone: Vec<EventId> = Vec::new();
            for id in &self.retries.due {
                let Some(w) = self.waiting.get(id) else {
                    gone.push(id.clone());
                    continue;
                };
                if !w.pdu.is_in_room(room_id) {
                    continue;
                }
                let (auth, prev) = self.missing_for(room_id, &w.pdu);
                if let Some(blocker) = auth.into_iter().chain(prev).next() {
                    blocked.push((id.clone(), blocker));
                    continue;
                }
                if !arrival_order {
                    ready = Some((w.seq, id));
                    break;
                }
                if ready.is_none_or(|(seq, _)| w.seq < seq) {
                    ready = Some((w.seq, id));
                }
            }
            let ready = ready.map(|(_, id)| id.clone());
            #[cfg(debug_assertions)]
            {
                let mut all = self.waiting.values().filter(|w| {
                    w.pdu.is_in_room(room_id) && {
                        let (auth, prev) = self.missing_for(room_id, &w.pdu);
                        auth.is_empty() && prev.is_empty()
                    }
                });
                let first = if arrival_order { all.min_by_key(|w| w.seq) } else { all.next() };
                let first = first.map(|w| w.pdu.event_id());
                assert_eq!(ready.as_ref(), first, "the due events hold the first ready one");
            }
            for id in gone {
                self.retries.due.remove(&id);
            }
            for (id, blocker) in blocked {
                self.retries.due.remove(&id);
                self.retries.blocked.entry(blocker).or_default().push(id);
            }
            let Some(id) = ready else { break };
            self.retries.due.remove(&id);
            let Some(waiting) = self.waiting.remove(&id) else { break };
            self.process(now, room_id, waiting.pdu, &waiting.origin, waiting.pulled, out);
        }
    }

    /// Stores events that arrived as a bundle (auth chains, state): each is verified and
    /// checked against its own auth events only, in an order where auth events come first.
    pub(super) fn store_outliers(
        &mut self,
        room_id: &str,
        raws: Vec<Incoming>,
        out: &mut Vec<Output>,
    ) -> Vec<Option<EventId>> {
        let Some(rules) = self.rules_of(room_id) else { return vec![None; raws.len()] };
        let mut pending: BTreeMap<EventId, Arc<Pdu>> = BTreeMap::new();
        let mut ids = Vec::with_capacity(raws.len());
        for raw in raws {
            match self.verify_incoming(rules, raw) {
                Ok(pdu) => {
                    ids.push(Some(pdu.event_id().clone()));
                    if !self.store.contains(pdu.event_id()) {
                        pending.insert(pdu.event_id().clone(), pdu);
                    }
                }
                Err(reason) => {
                    ids.push(None);
                    out.push(Output::Observed(Observation::Event {
                        room_id: room_id.to_owned(),
                        event_id: None,
                        decision: Decision::Dropped,
                        reason: Some(reason),
                    }));
                }
            }
        }
        for id in self.outlier_order(room_id, &pending) {
            let pdu = pending.remove(&id).expect("ordered from the pending events");
            let outcome = self.check_own_auth(room_id, &pdu);
            self.store_event(room_id, &pdu, &outcome, None);
            out.push(Output::Observed(Observation::Event {
                room_id: room_id.to_owned(),
                event_id: Some(id),
                decision: outcome.decision,
                reason: outcome.reason,
            }));
        }
        ids
    }

    /// The order in which [`Homeserver::store_outliers`] stores the `pending` events
    /// ([`storing_rounds`] of what each misses).
    fn outlier_order(&self, room_id: &str, pending: &BTreeMap<EventId, Arc<Pdu>>) -> Vec<EventId> {
        let missing: Vec<(EventId, Vec<EventId>)> =
            pending.iter().map(|(id, pdu)| (id.clone(), self.missing_auth(room_id, pdu))).collect();
        storing_rounds(&missing).into_iter().cloned().collect()
    }
}

/// The order of storing events that wait on each other, given each (in key order) with
/// the keys it misses: in rounds, each the events whose missing events were all stored
/// when it began, in key order. An event's round is therefore one more than the latest
/// round among the events it misses (the first if it misses none); an event that misses
/// one not in the list, or whose missing events wait on each other, is left out.
///
/// Found in one pass over the missing edges. [`Homeserver::store_outliers`] asked every
/// waiting event again each round, which cost the join bundles of a thousand servers
/// (about a thousand events each) 2.4% of a run (docs/performance-history.md).
fn storing_rounds<K: Ord + std::hash::Hash>(waiting: &[(K, Vec<K>)]) -> Vec<&K> {
    debug_assert!(waiting.windows(2).all(|w| w[0].0 < w[1].0), "in key order");
    // How many distinct missing events each event still waits for, and which events each
    // missing event holds up.
    let mut waits: LookupMap<&K, usize> = LookupMap::new();
    let mut holds: LookupMap<&K, Vec<&K>> = LookupMap::new();
    let mut round: Vec<&K> = Vec::new();
    for (key, missing) in waiting {
        let mut missing: Vec<&K> = missing.iter().collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            round.push(key);
            continue;
        }
        waits.insert(key, missing.len());
        for held_by in missing {
            holds.get_or_insert_with(held_by, Vec::new).push(key);
        }
    }
    let mut order = Vec::with_capacity(waiting.len());
    while !round.is_empty() {
        let mut next = Vec::new();
        for &key in &round {
            for &held in holds.get(key).into_iter().flatten() {
                let left = waits.get_mut(held).expect("a held event is counted");
                *left -= 1;
                if *left == 0 {
                    next.push(held);
                }
            }
        }
        order.append(&mut round);
        next.sort_unstable();
        round = next;
    }
    order
}

/// Which waiting events a retry asks what they miss ([`Homeserver::retry_waiting`]).
#[derive(Debug, Default)]
pub(super) struct Retries {
    /// Waiting events by an ancestor each missed when last asked (its blocker).
    blocked: BTreeMap<EventId, Vec<EventId>>,
    /// Waiting events to ask: new ones, and those whose blocker has since been stored or
    /// given a state. Ids of events no longer waiting are dropped as met.
    due: BTreeSet<EventId>,
}

impl Retries {
    /// An event was stored or given a state: the events it blocked are due.
    pub(super) fn arrived(&mut self, id: &EventId) {
        if let Some(waiting) = self.blocked.remove(id) {
            self.due.extend(waiting);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stdx::Prng;

    /// [`storing_rounds`] as `store_outliers` did it: each round, every waiting event
    /// whose missing events are all stored, in key order.
    fn rounds_by_asking_again(waiting: &[(u32, Vec<u32>)]) -> Vec<u32> {
        let mut stored = BTreeSet::new();
        let mut left: BTreeMap<u32, &Vec<u32>> = waiting.iter().map(|(k, m)| (*k, m)).collect();
        let mut order = Vec::new();
        loop {
            let ready: Vec<u32> = left
                .iter()
                .filter(|(_, missing)| missing.iter().all(|m| stored.contains(m)))
                .map(|(k, _)| *k)
                .collect();
            if ready.is_empty() {
                return order;
            }
            for k in ready {
                left.remove(&k);
                stored.insert(k);
                order.push(k);
            }
        }
    }

    #[test]
    fn storing_rounds_store_what_asking_again_each_round_stores_in_its_order() {
        // By hand: 5 misses 3 and 1 (twice), 3 misses 1, 1 misses nothing, 4 misses 9
        // (never here), 6 misses 4, 7 and 8 miss each other.
        let waiting = vec![
            (1, vec![]),
            (3, vec![1]),
            (4, vec![9]),
            (5, vec![3, 1, 1]),
            (6, vec![4]),
            (7, vec![8]),
            (8, vec![7]),
        ];
        assert_eq!(storing_rounds(&waiting), vec![&1, &3, &5]);
        // Random bundles: edges to earlier and later keys, to absent keys and to itself.
        let mut rng = Prng::from_seed(7);
        for case in 0..300 {
            let n = 1 + u32::try_from(rng.index(40)).unwrap();
            let waiting: Vec<(u32, Vec<u32>)> = (0..n)
                .map(|k| {
                    let edges = rng.index(4);
                    let missing = (0..edges).map(|_| rng.range_inclusive(0, u64::from(n) + 2));
                    let missing = missing.map(|m| u32::try_from(m).unwrap());
                    (k, missing.collect())
                })
                .collect();
            let found: Vec<u32> = storing_rounds(&waiting).into_iter().copied().collect();
            assert_eq!(found, rounds_by_asking_again(&waiting), "case {case}: {waiting:?}");
        }
    }
}
