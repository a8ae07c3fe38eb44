//! Recording: homeserver observations as trace records, and the end of a run (final
//! views of every room, the header and the trace).

use super::*;

impl Shared {
    pub(super) fn observe(
        &mut self,
        node: usize,
        observation: Observation,
        step: Option<&Step>,
        labelled: &mut bool,
        now: u64,
    ) {
        // The records the run keeps most of (`event` and `state`, a million of each at a
        // thousand servers) name their server, room, event and state by shared texts
        // ([`trace::Text`]); the rest hold a copy of the server's name.
        let name = |shared: &Shared| shared.slots[node].name.as_str().to_owned();
        let body = match observation {
            Observation::Event { room_id, event_id, decision, reason } => {
                let room = shared_text(&mut self.room_texts, room_id);
                let pdu = self.event_pdu(node, event_id.as_ref(), decision, step, labelled);
                Body::Event {
                    server: self.slots[node].name.clone(),
                    room,
                    event_id: event_id.as_ref().map(id_text),
                    decision,
                    reason,
                    pdu,
                }
            }
            Observation::StateChanged { room_id, state_hash } => Body::State {
                server: self.slots[node].name.clone(),
                room: shared_text(&mut self.room_texts, room_id),
                state_hash: shared_text(&mut self.state_hash_texts, state_hash),
            },
            // A failure no step can be found for (every action of a run comes from a step,
            // so this is a homeserver reporting late): named by its kind and user.
            Observation::ActionFailed { user, kind, reason } => {
                Body::ActionFailed(Box::new(trace::ActionFailure {
                    server: name(self),
                    action: format!("{kind} by {user}"),
                    reason,
                    step: None,
                    line: None,
                    retry_at_ms: None,
                }))
            }
            Observation::RoomJoined { room_id, version } => {
                if let Some(Step {
                    action: StepAction::CreateRoom { .. },
                    new_room: Some(room),
                    ..
                }) = step
                {
                    self.rooms.entry(room.clone()).or_insert_with(|| room_id.clone());
                }
                Body::Joined {
                    server: name(self),
                    room: room_id,
                    version: version.as_str().to_owned(),
                }
            }
            Observation::RoomLeft { room_id } => Body::Left { server: name(self), room: room_id },
            Observation::Redacted { room_id, event_id, redaction } => Body::Redacted {
                server: self.slots[node].name.clone(),
                room: shared_text(&mut self.room_texts, room_id),
                event_id: id_text(&event_id),
                redaction: id_text(&redaction),
            },
            Observation::Invited { room_id, user, event_id } => Body::Invited {
                server: self.slots[node].name.clone(),
                room: shared_text(&mut self.room_texts, room_id),
                user: user.into(),
                event_id: id_text(&event_id),
            },
            Observation::PeerDown { peer } => Body::PeerDown { server: name(self), peer },
            Observation::PeerUp { peer } => Body::PeerUp { server: name(self), peer },
            Observation::LpduSent { room_id, lpdu_id, hub } => Body::LpduSent {
                server: self.slots[node].name.clone(),
                room: shared_text(&mut self.room_texts, room_id),
                lpdu_id: id_text(&lpdu_id),
                hub: hub.into(),
            },
            Observation::Linearized { room_id, lpdu_id, event_id, origin } => Body::Linearized {
                server: self.slots[node].name.clone(),
                room: shared_text(&mut self.room_texts, room_id),
                lpdu_id: id_text(&lpdu_id),
                event_id: id_text(&event_id),
                origin: origin.into(),
            },
            Observation::LpduFailed { room_id, lpdu_id, reason } => Body::LpduFailed {
                server: self.slots[node].name.clone(),
                room: shared_text(&mut self.room_texts, room_id),
                lpdu_id: id_text(&lpdu_id),
                reason: reason.into(),
            },
            Observation::LpduAccepted { room_id, lpdu_id, event_id } => Body::LpduAccepted {
                server: self.slots[node].name.clone(),
                room: shared_text(&mut self.room_texts, room_id),
                lpdu_id: id_text(&lpdu_id),
                event_id: id_text(&event_id),
            },
            Observation::HubMisbehaviour { room_id, event_id, fault, reason } => Body::HubFault {
                server: self.slots[node].name.clone(),
                room: shared_text(&mut self.room_texts, room_id),
                event_id: id_text(&event_id),
                fault: fault.into(),
                reason: reason.into(),
            },
            Observation::DagLinearized { room_id, event_id, origin } => Body::DagLinearized {
                server: self.slots[node].name.clone(),
                room: shared_text(&mut self.room_texts, room_id),
                event_id: id_text(&event_id),
                origin: origin.into(),
            },
            Observation::HubMerge { room_id, event_id, prev_events, reason } => Body::HubMerge {
                server: self.slots[node].name.clone(),
                room: shared_text(&mut self.room_texts, room_id),
                event_id: event_id.as_ref().map(id_text),
                prev_events: prev_events.iter().map(ToString::to_string).collect(),
                reason: reason.map(trace::Text::from),
            },
            Observation::Upgraded { room_id, replacement } => {
                if let Some(Step {
                    action: StepAction::Upgrade { .. }, new_room: Some(room), ..
                }) = step
                {
                    self.rooms.entry(room.clone()).or_insert_with(|| replacement.clone());
                }
                Body::Upgraded { server: name(self), room: room_id, replacement }
            }
        };
        self.record(now, body);
    }

    /// The body an `event` record carries, if any: the created PDU (and, the first time, it
    /// joins `events.jsonl`; a step's label names the first event it created), or a
    /// received copy that differs from the created one.
    fn event_pdu(
        &mut self,
        node: usize,
        event_id: Option<&EventId>,
        decision: trace::Decision,
        step: Option<&Step>,
        labelled: &mut bool,
    ) -> Option<Arc<canonical_json::Object>> {
        let id = event_id?;
        let stored = self.slots[node].server.as_ref().and_then(|s| s.store().event(id));
        if decision == trace::Decision::Created {
            let mut pdu = None;
            if let Some(stored) = stored {
                let json = recorded_json(&mut self.recorded_json, &stored.pdu);
                if self.created_ids.insert(id.clone()) {
                    self.created
                        .push(canonical_json::encode_object(&json).expect("a stored PDU encodes"));
                }
                pdu = Some(json);
            }
            if let Some(label) = step.and_then(|s| s.label.clone()) {
                if !*labelled {
                    *labelled = true;
                    self.labels.insert(label, id.clone());
                }
            }
            return pdu;
        }
        // A copy that differs from the created one (redacted on receipt, or never created
        // by an honest server here) goes in the trace.
        let stored = stored?;
        let differs = stored.redacted || !self.created_ids.contains(id);
        if differs && self.copies.insert((node, id.clone())) {
            return Some(recorded_json(&mut self.recorded_json, &stored.pdu));
        }
        None
    }

    /// The trace and outputs, with one `final` record per server and room.
    pub(super) fn finish(&mut self) -> RunOutput {
        let end = self.plan.end_ms;
        // The memo of recorded bodies and the pool of snapshots go with the world, which
        // `run_inner` drops as soon as this returns.
        let snapshots_shared = self.snapshots.taken();
        // Handshakes still waiting for an answer never finished.
        let mut waiting: Vec<usize> = self.step_requests.values().map(|(_, k)| *k).collect();
        waiting.sort_unstable();
        waiting.dedup();
        for k in waiting {
            self.step_failed(k, "no answer by the end of the run".into(), end);
        }
        // The final states made so far, by room and state hash, for the servers that end
        // in the same state to share one copy ([`final_record`]).
        let mut final_states = FinalStates::new();
        for node in 0..self.slots.len() {
            let slot = &self.slots[node];
            let server = match (&slot.server, &slot.disk) {
                (Some(server), _) => server,
                (None, disk) => {
                    // Crashed at the end: what it would recover with.
                    let store = disk.clone().unwrap_or_default();
                    let prng = self.root.fork(streams::FINAL);
                    let keys = Arc::clone(&self.keys);
                    let config = self.plan.config_of(&slot.name).clone();
                    let at = Instant::from_ms(end);
                    let recovered = Homeserver::recover(
                        &slot.name,
                        slot.key.clone(),
                        keys,
                        config,
                        prng,
                        at,
                        store,
                    );
                    self.slots[node].server = Some(recovered);
                    self.slots[node].server.as_ref().expect("just set")
                }
            };
            let views = server.room_views();
            let name = &self.slots[node].name;
            // Named by the server's, the room's and the state hash's shared texts, as its
            // other records are.
            let finals: Vec<Body> = views
                .into_iter()
                .map(|mut view| {
                    let room = shared_text(&mut self.room_texts, std::mem::take(&mut view.room_id));
                    let hash = std::mem::take(&mut view.state_hash);
                    let state_hash = shared_text(&mut self.state_hash_texts, hash);
                    final_record((name.clone(), room, state_hash), view, &mut final_states)
                })
                .collect();
            for body in finals {
                self.record(end, body);
            }
        }
        let header = self.header();
        RunOutput {
            trace: self.take_trace(header),
            events: std::mem::take(&mut self.created),
            rooms: std::mem::take(&mut self.rooms),
            resolutions: self.resolutions.counts(),
            snapshots_shared,
        }
    }

    /// The trace's header as the run stands: whole at its end ([`Shared::finish`]), and
    /// once the run has named every room and label it names ([`HeaderNames`]) the same.
    pub(super) fn header(&self) -> Header {
        let end = self.plan.end_ms;
        Header {
            format: trace::FORMAT.into(),
            scenario: self.plan.scenario.clone(),
            seed: self.plan.seed,
            mxsim_version: self.plan.mxsim_version.clone(),
            mxsim_build: trace::BUILD.to_owned(),
            servers: self.plan.servers.clone(),
            keys: self
                .keys
                .iter()
                .map(|(server, keys)| {
                    let keys = keys.iter().map(|(id, key)| (id.clone(), key.to_base64())).collect();
                    (server.clone(), keys)
                })
                .collect(),
            epoch_ms: u64::try_from(crate::stdx::EPOCH_MS).expect("the epoch is positive"),
            end_ms: end,
            healed_ms: self.plan.faults.healed_at().ms,
            faults: self.plan.faults.faults().to_vec(),
            check: self.check_settings(),
            swarm: self.plan.swarm.clone(),
        }
    }
}

impl Shared {
    /// The records so far under `header`: whole, or kept for a spooled run.
    fn take_trace(&mut self, header: Header) -> Trace {
        match self.spool.take() {
            None => Trace::new(header, std::mem::take(&mut self.records)),
            Some(mut spool) => {
                if !spool.header_sent {
                    spool.sink.expect_header(&header);
                }
                if !spool.lines.is_empty() {
                    spool.sink.lines(&spool.lines);
                }
                spool.keeper.finish(header)
            }
        }
    }

    /// The plan's check settings with the run-time names its expectations use: every
    /// room label's id, and the event ids of labels that `rejected` blocks name.
    fn check_settings(&self) -> CheckSettings {
        let mut check = self.plan.check.clone();
        if check.expect.is_empty() {
            return check;
        }
        check.expect.rooms = self.rooms.clone();
        for block in &check.expect.blocks {
            if let trace::Expectation::Rejected { label, .. } = block {
                if let Some(id) = self.labels.get(label) {
                    check.expect.labels.insert(label.clone(), id.as_str().to_owned());
                }
            }
        }
        check
    }
}

/// The shared copy of `text` (a room id, a state hash) in `texts`, for the records: the
/// first copy seen, held once as both key and value.
fn shared_text(texts: &mut LookupMap<trace::Text, trace::Text>, text: String) -> trace::Text {
    if let Some(shared) = texts.get(text.as_str()) {
        return shared.clone();
    }
    let shared = trace::Text::from(text);
    texts.insert(shared.clone(), shared.clone());
    shared
}

/// An event id as a record's text: the id's own copy, shared rather than copied.
fn id_text(id: &EventId) -> trace::Text {
    trace::Text::from(id.shared_text())
}

/// The JSON of a stored body for an `event` record, from `memo` (the last value recorded
/// per event id, with its body). Servers store the shared verified body of an event, so
/// the records of one body hold one value: at a thousand servers the copies of joins
/// received before their creation was recorded (75,000 of them) were a tenth of the run's
/// memory as values of their own.
fn recorded_json(
    memo: &mut LookupMap<EventId, (Arc<Pdu>, Arc<canonical_json::Object>)>,
    body: &Arc<Pdu>,
) -> Arc<canonical_json::Object> {
    if let Some((last, json)) = memo.get(body.event_id()) {
        if Arc::ptr_eq(last, body) {
            return Arc::clone(json);
        }
    }
    let json = Arc::new(body.json().clone());
    memo.insert(body.event_id().clone(), (Arc::clone(body), Arc::clone(&json)));
    json
}

/// The `final` records' states made so far, by room id and state hash.
type FinalStates = BTreeMap<(trace::Text, trace::Text), Vec<Arc<trace::NestedState>>>;

/// The `final` record of one server's view of one room, named by `(server, room,
/// state_hash)` (the view's own room id and state hash are not read).
fn final_record(
    (server, room, state_hash): (trace::Text, trace::Text, trace::Text),
    view: crate::homeserver::RoomView<'_>,
    made: &mut FinalStates,
) -> Body {
    // At a thousand servers each of a thousand final records holds a thousand members,
    // and the servers agree: a state another server ended in is shared rather than built
    // again, once the two are found equal entry by entry (the state hash only finds the
    // candidates). Built last, these copies were a tenth of the run's peak memory.
    let candidates = made.entry((room.clone(), state_hash.clone())).or_default();
    let state = match candidates.iter().find(|nested| same_state(nested, &view.state)) {
        Some(nested) => Arc::clone(nested),
        None => {
            let nested = Arc::new(nested_state(&view.state));
            candidates.push(Arc::clone(&nested));
            nested
        }
    };
    let mut waiting: Vec<trace::WaitingEvent> = view
        .waiting
        .iter()
        .map(|(id, deadline)| trace::WaitingEvent {
            event_id: id.as_str().to_owned(),
            deadline_ms: deadline.ms,
        })
        .collect();
    waiting.sort_by(|a, b| (a.deadline_ms, &a.event_id).cmp(&(b.deadline_ms, &b.event_id)));
    Body::Final(Box::new(trace::FinalView {
        server,
        room,
        joined: view.resident,
        forward_extremities: view
            .forward_extremities
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect(),
        state,
        state_hash,
        events: view.event_count,
        waiting,
    }))
}

/// The entries of a state in key order, borrowed ([`crate::homeserver::RoomView::state`]).
type Entries<'a> = [(&'a crate::homeserver::store::StateKey, &'a EventId)];

/// A state as the `final` record holds it, built from its entries (sorted by type and then
/// state key): each type's map is built from its run of entries in one go. Built once per
/// distinct final state; every other server in that state shares it.
fn nested_state(state: &Entries<'_>) -> trace::NestedState {
    let mut nested = trace::NestedState::new();
    let mut entries = state.iter().peekable();
    while let Some(((event_type, state_key), id)) = entries.next() {
        let first = (state_key.clone(), id.as_str().to_owned());
        let rest = std::iter::from_fn(|| {
            let ((_, state_key), id) = entries.next_if(|((next, _), _)| next == event_type)?;
            Some((state_key.clone(), id.as_str().to_owned()))
        });
        let keys = std::iter::once(first).chain(rest).collect();
        nested.insert(event_type.clone(), keys);
    }
    nested
}

/// Whether `nested` holds exactly the entries of `state`.
fn same_state(nested: &trace::NestedState, state: &Entries<'_>) -> bool {
    let flat = nested.iter().flat_map(|(event_type, keys)| {
        keys.iter().map(move |(state_key, id)| (event_type, state_key, id))
    });
    let len: usize = nested.values().map(BTreeMap::len).sum();
    len == state.len()
        && flat.zip(state).all(|((t, k, id), ((event_type, state_key), event_id))| {
            t == event_type && k == state_key && id == event_id.as_str()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::homeserver::store::StateMap;

    fn state(entries: &[(&str, &str, &str)]) -> StateMap {
        let entry = |&(t, k, id): &(&str, &str, &str)| {
            ((t.to_owned(), k.to_owned()), EventId::parse(id).unwrap())
        };
        entries.iter().map(entry).collect()
    }

    #[test]
    fn a_final_state_is_the_same_only_entry_for_entry() {
        let entries = [
            ("m.room.create", "", "$c"),
            ("m.room.member", "@a:hs1", "$a"),
            ("m.room.member", "@b:hs2", "$b"),
            ("m.room.power_levels", "", "$p"),
        ];
        // The entries as a view borrows them: the map's, in its key order.
        let same = |nested: &trace::NestedState, state: &StateMap| {
            same_state(nested, &state.iter().collect::<Vec<_>>())
        };
        let nested = nested_state(&state(&entries).iter().collect::<Vec<_>>());
        assert_eq!(nested.len(), 3);
        assert_eq!(nested["m.room.member"]["@b:hs2"], "$b");
        assert_eq!(nested["m.room.create"][""], "$c");
        assert_eq!(nested["m.room.power_levels"].len(), 1);
        assert!(same(&nested, &state(&entries)));
        // Another id, a missing entry, an extra entry, a key moved to another type.
        let mut other = entries;
        other[2].2 = "$b2";
        assert!(!same(&nested, &state(&other)));
        assert!(!same(&nested, &state(&entries[..3])));
        let mut more = entries.to_vec();
        more.push(("m.room.topic", "", "$t"));
        assert!(!same(&nested, &state(&more)));
        let mut moved = entries;
        moved[3].0 = "m.room.name";
        assert!(!same(&nested, &state(&moved)));
    }
}
