//! Local actions: building, checking, committing and sending the events of this server's
//! users (create, send, invite, join, leave, kick, ban, knock, redact, upgrade).

use super::*;

impl Homeserver {
    pub(super) fn rules_of(&self, room_id: &str) -> Option<&'static RoomVersionRules> {
        self.store.room(room_id).map(|room| room.version.rules())
    }

    pub(super) fn is_local_user(&self, user: &str) -> bool {
        ids::user_server(user) == Some(self.name.as_str())
    }

    /// Builds and signs an event on the room's current state, with the forward extremities
    /// as prev events. Does not store it.
    pub(super) fn build_event(
        &self,
        now: Instant,
        room_id: &str,
        sender: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: Object,
    ) -> Result<Arc<Pdu>, String> {
        let (rules, json) =
            self.event_json(now, room_id, sender, event_type, state_key, content)?;
        let pdu =
            pdu::build_signed(rules, json, &self.name, &self.key).map_err(|e| e.to_string())?;
        Ok(self.own_copy(rules, pdu))
    }

    /// The JSON of the event [`Homeserver::build_event`] builds, before its hashes and
    /// signature, with the room version's rules.
    pub(super) fn event_json(
        &self,
        now: Instant,
        room_id: &str,
        sender: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: Object,
    ) -> Result<(&'static RoomVersionRules, Object), String> {
        let room = self.store.room(room_id).ok_or("this server is not in the room")?;
        let rules = room.version.rules();
        let current = room.current_state.ok_or("the room has no state here")?;
        let mut prevs: Vec<(&EventId, i64)> = room
            .forward_extremities
            .iter()
            .filter_map(|id| self.store.pdu(id).map(|p| (id, p.depth())))
            .collect();
        // The deepest extremities, most recent first ([impl] Synapse picks recent ones).
        prevs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        prevs.truncate(self.config.prev_events_max);
        let depth = prevs.iter().map(|(_, d)| *d).max().unwrap_or(0).saturating_add(1).min(INT_MAX);
        let view = GroupView { store: &self.store, group: current };
        let auth_events =
            auth::select_auth_events(rules, event_type, sender, state_key, &content, &view);
        let mut json = Object::new();
        json.insert("type".into(), Value::from(event_type));
        json.insert("sender".into(), Value::from(sender));
        json.insert("room_id".into(), Value::from(room_id));
        json.insert("origin_server_ts".into(), Value::from(self.clock_ms(now)));
        if rules.depth_field {
            json.insert("depth".into(), Value::from(depth));
        }
        json.insert(
            "prev_events".into(),
            prevs.iter().map(|(id, _)| Value::from(id.as_str())).collect(),
        );
        json.insert(
            "auth_events".into(),
            auth_events.iter().map(|id| Value::from(id.as_str())).collect(),
        );
        if let Some(state_key) = state_key {
            json.insert("state_key".into(), Value::from(state_key));
        }
        if event_type == "m.room.redaction" && !rules.redacts_in_content {
            if let Some(target) = content.get("redacts") {
                json.insert("redacts".into(), target.clone());
            }
        }
        json.insert("content".into(), Value::Object(content));
        Ok((rules, json))
    }

    /// Creates, checks, stores and sends a local event.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_event(
        &mut self,
        now: Instant,
        room_id: &str,
        sender: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: Object,
        extra_destinations: &[String],
        out: &mut Vec<Output>,
    ) -> Result<Arc<Pdu>, String> {
        if let Some(hub) = self.participant_hub(room_id) {
            // Linearized Matrix: the hub orders the room; this server sends it an LPDU.
            return self.send_lpdu(now, room_id, &hub, sender, event_type, state_key, content, out);
        }
        let pdu = self.build_event(now, room_id, sender, event_type, state_key, content)?;
        self.check_local(room_id, &pdu)?;
        // Servers that were in the room before the event get it too: a kick, ban or leave
        // must reach the server whose user it removes.
        let mut destinations = extra_destinations.to_vec();
        if event_type == "m.room.member" {
            destinations.extend(self.joined_servers(room_id));
            self.commit_created(room_id, &pdu, out);
        } else {
            // Only a member event changes which servers are joined: when the new current
            // state is the old one with this event on top, the joined servers `fan_out`
            // reads are those before, and are not copied (99 names per message at 100
            // servers). Otherwise (more forward extremities than an event cites, merged
            // by a resolution) the servers joined in the old current state are added, as
            // a member event's are.
            let old = self.store.room(room_id).and_then(|r| r.current_state);
            self.commit_created(room_id, &pdu, out);
            let new = self.store.room(room_id).and_then(|r| r.current_state);
            let stored = self.store.event(pdu.event_id());
            let on_top = stored.is_some_and(|e| e.state_before == old && e.state_after == new);
            match old {
                Some(old) if !on_top => destinations.extend(self.joined_counts(old).into_keys()),
                Some(old) => debug_assert_eq!(
                    self.joined_counts(old).into_keys().collect::<BTreeSet<_>>(),
                    self.joined_servers(room_id),
                    "a {event_type} event on top of the current state changed who is joined",
                ),
                None => {}
            }
        }
        self.fan_out(room_id, &pdu, &destinations, None);
        Ok(pdu)
    }

    /// Whether a locally built event passes every receipt check against this server's
    /// own view: a user may not send what peers would reject or soft-fail.
    pub(super) fn check_local(&mut self, room_id: &str, pdu: &Arc<Pdu>) -> Result<(), String> {
        let outcome = self.decide(room_id, pdu);
        match (outcome.decision, outcome.reason) {
            (Decision::Accepted, None) => Ok(()),
            (Decision::RejectedAuthEvents | Decision::RejectedStateBefore, Some(reason))
            | (Decision::SoftFailed, Some(reason)) => Err(format!("not allowed: {reason}")),
            other => unreachable!("decide returns a receipt decision, got {other:?}"),
        }
    }

    /// Creates a local `m.room.member` event setting `target`'s membership.
    pub(super) fn membership_event(
        &mut self,
        now: Instant,
        room_id: &str,
        sender: &str,
        target: &str,
        membership: &str,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        let content = membership_content(membership);
        self.create_event(now, room_id, sender, "m.room.member", Some(target), content, &[], out)
            .map(|_| ())
    }

    /// Carries out `user`'s action; an error is the reason it failed, in one sentence.
    pub(super) fn act(
        &mut self,
        now: Instant,
        user: &str,
        action: Action<String, EventId>,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        if !self.is_local_user(user) {
            return Err(format!("{user} is not a user of {}", self.name));
        }
        match action {
            Action::CreateRoom { version, public, name, topic } => {
                self.create_room(now, user, version, public, name, topic, None, out).map(|_| ())
            }
            Action::Upgrade { room, version } => self.upgrade(now, user, &room, version, out),
            Action::Send { room, event_type, state_key, content } => self
                .create_event(
                    now,
                    &room,
                    user,
                    &event_type,
                    state_key.as_deref(),
                    content,
                    &[],
                    out,
                )
                .map(|_| ()),
            Action::Message { room, body } => {
                let mut content = Object::new();
                content.insert("msgtype".into(), Value::from("m.text"));
                content.insert("body".into(), Value::from(body));
                self.create_event(now, &room, user, "m.room.message", None, content, &[], out)
                    .map(|_| ())
            }
            Action::Power { room, target, level } => {
                let content = self.power_levels_with(&room, &target, level)?;
                let key = Some("");
                self.create_event(now, &room, user, "m.room.power_levels", key, content, &[], out)
                    .map(|_| ())
            }
            Action::Invite { room, target } => self.invite(now, user, &room, &target, out),
            Action::Join { room, via } => self.join(now, user, &room, via, out),
            Action::Leave { room, via } => {
                if self.is_resident(&room) {
                    self.membership_event(now, &room, user, user, "leave", out)
                } else {
                    self.remote_membership(now, user, &room, via, "leave", out)
                }
            }
            Action::Kick { room, target } | Action::Unban { room, target } => {
                self.membership_event(now, &room, user, &target, "leave", out)
            }
            Action::Ban { room, target } => {
                self.membership_event(now, &room, user, &target, "ban", out)
            }
            Action::Knock { room, via } => {
                self.remote_membership(now, user, &room, via, "knock", out)
            }
            Action::Redact { room, event } => {
                // Synapse refuses a local redaction of the create event before it is sent
                // (`EventCreationHandler.persist_and_notify_client_events`,
                // synapse/handlers/message.py).
                if self.store.pdu(&event).is_some_and(|p| p.event_type() == "m.room.create") {
                    return Err("Redacting create events is not permitted".into());
                }
                let mut content = Object::new();
                content.insert("redacts".into(), Value::from(event.as_str()));
                let pdu = self.create_event(
                    now,
                    &room,
                    user,
                    "m.room.redaction",
                    None,
                    content,
                    &[],
                    out,
                )?;
                // A participant's redaction is an LPDU: it is applied when the hub's
                // event comes back and is committed.
                if self.participant_hub(&room).is_none() {
                    self.apply_redaction(&room, &pdu, out);
                }
                Ok(())
            }
        }
    }

    /// The room's current power levels as this server sees them, with `target`'s entry in
    /// `users` set to `level` (the `power` action; every other field stays as it is).
    fn power_levels_with(&self, room_id: &str, target: &str, level: i64) -> Result<Object, String> {
        let state = self.current_state(room_id).ok_or("this server is not in the room")?;
        let key = ("m.room.power_levels".to_owned(), String::new());
        let id = state.get(&key).ok_or("the room has no power levels")?;
        let pdu = self.store.pdu(id).ok_or("the power levels event is not stored")?;
        let mut content = pdu.content().clone();
        let users = content.entry("users").or_insert_with(|| Value::Object(Object::new()));
        let Value::Object(users) = users else {
            return Err("the power levels' `users` is not an object".into());
        };
        users.insert(target.to_owned(), Value::from(level));
        Ok(content)
    }

    /// The spec's creation order (events.md §9): the create event, the creator's join,
    /// power levels, join rules, history visibility, then the optional name and topic.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_room(
        &mut self,
        now: Instant,
        user: &str,
        version: RoomVersion,
        public: bool,
        name: Option<String>,
        topic: Option<String>,
        predecessor: Option<&str>,
        out: &mut Vec<Output>,
    ) -> Result<String, String> {
        let rules = version.rules();
        let room_id = self.commit_create_event(now, user, version, predecessor, out)?;
        let member = membership_content("join");
        self.create_event(now, &room_id, user, "m.room.member", Some(user), member, &[], out)?;
        let levels = initial_power_levels(rules, user);
        self.create_event(now, &room_id, user, "m.room.power_levels", Some(""), levels, &[], out)?;
        let join_rule = if public { "public" } else { "invite" };
        let mut initial = vec![
            ("m.room.join_rules", "join_rule", join_rule.to_owned()),
            ("m.room.history_visibility", "history_visibility", "shared".to_owned()),
        ];
        initial.extend(name.map(|name| ("m.room.name", "name", name)));
        initial.extend(topic.map(|topic| ("m.room.topic", "topic", topic)));
        for (event_type, field, value) in initial {
            let mut content = Object::new();
            content.insert(field.into(), Value::from(value));
            self.create_event(now, &room_id, user, event_type, Some(""), content, &[], out)?;
        }
        Ok(room_id)
    }

    /// Builds, checks (rule 1, against an empty state) and stores a new room's create
    /// event, and makes the room known; returns the room id.
    fn commit_create_event(
        &mut self,
        now: Instant,
        user: &str,
        version: RoomVersion,
        predecessor: Option<&str>,
        out: &mut Vec<Output>,
    ) -> Result<String, String> {
        let rules = version.rules();
        let mut content = Object::new();
        content.insert("room_version".into(), Value::from(version.as_str()));
        if let Some(old) = predecessor {
            let mut link = Object::new();
            link.insert("room_id".into(), Value::from(old));
            content.insert("predecessor".into(), Value::Object(link));
        }
        if rules.create_requires_creator {
            content.insert("creator".into(), Value::from(user));
        }
        let mut json = Object::new();
        json.insert("type".into(), Value::from("m.room.create"));
        json.insert("state_key".into(), Value::from(""));
        json.insert("sender".into(), Value::from(user));
        json.insert("origin_server_ts".into(), Value::from(self.clock_ms(now)));
        if rules.depth_field {
            json.insert("depth".into(), Value::from(1));
        }
        json.insert("prev_events".into(), Value::Array(Vec::new()));
        json.insert("auth_events".into(), Value::Array(Vec::new()));
        json.insert("content".into(), Value::Object(content));
        let room_id = if rules.room_id_is_create_event_hash {
            None
        } else {
            // A room id unique per server and moment: the creation time and a counter.
            let local = format!("r{}n{}", now.ms, self.store.rooms().count());
            let room_id = format!("!{local}:{}", self.name);
            json.insert("room_id".into(), Value::from(room_id.as_str()));
            Some(room_id)
        };
        let create = self.own_copy(
            rules,
            pdu::build_signed(rules, json, &self.name, &self.key).map_err(|e| e.to_string())?,
        );
        let room_id = room_id.unwrap_or_else(|| create.room_id_or_derived());
        if self.store.room(&room_id).is_some() {
            return Err(format!("room {room_id} exists already"));
        }
        self.store.add_room(&room_id, version);
        // The create event is checked like any other (rule 1) against an empty state.
        let empty = self.store.store_state(&StateMap::new(), None);
        let view = GroupView { store: &self.store, group: empty };
        auth::check_event(rules, &create, &[], &view, SignatureCheck::Keys(&self.keys))
            .map_err(|r| r.to_string())?;
        self.store_event(&room_id, &create, &Outcome::accepted(), Some(empty));
        let room = self.store.room_mut(&room_id);
        room.forward_extremities.insert(create.event_id().clone());
        let after = self.store.event(create.event_id()).and_then(|e| e.state_after);
        self.store.room_mut(&room_id).current_state = after;
        out.push(Output::Observed(Observation::RoomJoined { room_id: room_id.clone(), version }));
        out.push(Output::Observed(Observation::Event {
            room_id: room_id.clone(),
            event_id: Some(create.event_id().clone()),
            decision: Decision::Created,
            reason: None,
        }));
        Ok(room_id)
    }

    /// Room upgrade (Client-Server API "Room Upgrades"): the user must be allowed to send
    /// the tombstone; the new room copies the join rules (public or not), name and topic.
    pub(super) fn upgrade(
        &mut self,
        now: Instant,
        user: &str,
        room_id: &str,
        version: RoomVersion,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        if self.hub_of(room_id).is_some() || version.rules().lpdus {
            // The draft has no room upgrades (nor hub transfer).
            return Err("mxsim does not upgrade Linearized Matrix rooms".into());
        }
        let state = self.current_state(room_id).ok_or("this server is not in the room")?;
        let text = |t: &str, field: &str| -> Option<String> {
            let id = state.get(&(t.to_owned(), String::new()))?;
            self.store.pdu(id)?.content().get(field)?.as_str().map(str::to_owned)
        };
        let public = text("m.room.join_rules", "join_rule").as_deref() == Some("public");
        let (name, topic) = (text("m.room.name", "name"), text("m.room.topic", "topic"));
        // Check first that the tombstone would be allowed, so that a refused upgrade
        // leaves no new room behind.
        let mut probe = Object::new();
        probe.insert("body".into(), Value::from("This room has been replaced"));
        probe.insert("replacement_room".into(), Value::from("!probe"));
        let pdu = self.build_event(now, room_id, user, "m.room.tombstone", Some(""), probe)?;
        self.check_local(room_id, &pdu)?;
        let replacement =
            self.create_room(now, user, version, public, name, topic, Some(room_id), out)?;
        let mut content = Object::new();
        content.insert("body".into(), Value::from("This room has been replaced"));
        content.insert("replacement_room".into(), Value::from(replacement.as_str()));
        self.create_event(now, room_id, user, "m.room.tombstone", Some(""), content, &[], out)?;
        out.push(Output::Observed(Observation::Upgraded {
            room_id: room_id.to_owned(),
            replacement,
        }));
        Ok(())
    }

    pub(super) fn invite(
        &mut self,
        now: Instant,
        user: &str,
        room_id: &str,
        target: &str,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        let target_server = ids::user_server(target).ok_or("invalid target user id")?.to_owned();
        let content = membership_content("invite");
        if target_server == self.name || self.joined_servers(room_id).contains(&target_server) {
            // The target's server is in the room: the invite reaches it through the room.
            self.create_event(
                now,
                room_id,
                user,
                "m.room.member",
                Some(target),
                content,
                &[],
                out,
            )?;
            return Ok(());
        }
        if self.participant_hub(room_id).is_some() {
            // [digest] The draft routes such an invite through the hub's `/invite`; mxsim
            // does not build that path (docs/linearized.md).
            return Err(format!(
                "{target_server} is not in the room, and mxsim's participants invite only \
                 servers already in a Linearized Matrix room"
            ));
        }
        let pdu = self.build_event(now, room_id, user, "m.room.member", Some(target), content)?;
        self.check_local(room_id, &pdu)?;
        let rules = self.rules_of(room_id).expect("room is known");
        let stripped = self.invite_room_state(room_id);
        let request = Request::Invite {
            room_id: room_id.to_owned(),
            event_id: pdu.event_id().clone(),
            room_version: rules.version.as_str().to_owned(),
            event: pdu.json().clone(),
            invite_room_state: stripped,
        };
        let pending = Pending::Invite {
            user: user.to_owned(),
            room_id: room_id.to_owned(),
            event_id: pdu.event_id().clone(),
            destination: target_server.clone(),
        };
        if !self.send(now, &target_server, request, pending, out) {
            return Err("too many requests in flight".into());
        }
        Ok(())
    }

    /// The state sent with an invite: create, join rules, name, topic (full PDUs).
    pub(super) fn invite_room_state(&self, room_id: &str) -> Vec<Object> {
        let Some(state) = self.current_state(room_id) else { return Vec::new() };
        ["m.room.create", "m.room.join_rules", "m.room.name", "m.room.topic"]
            .iter()
            .filter_map(|t| state.get(&((*t).to_owned(), String::new())))
            .filter_map(|id| self.store.pdu(id))
            .map(|pdu| pdu.json().clone())
            .collect()
    }

    /// Whether this server is in the room: its own current state has a joined member of
    /// its own (Synapse's `is_host_in_room`), or it is the hub of a Linearized Matrix room.
    /// Only a resident server builds events on its state and accepts the room's PDUs over
    /// `/send`.
    ///
    /// [digest] The hub stays the hub when its last user leaves: the draft makes the
    /// create event's sender's server the hub and has no transfer, and without it nobody
    /// could append to the list or join the room (docs/linearized.md).
    pub fn is_resident(&self, room_id: &str) -> bool {
        // Every PDU of a transaction asks: the kept counts answer without reading the
        // member list.
        self.has_joined_member_here(room_id) || self.is_hub_of(room_id)
    }

    /// The servers a membership handshake tries, in order, without duplicates or this
    /// server: the inviter's server (after an invite), the given `via`, then the servers
    /// with a joined member in this server's last known state of the room ([impl] Synapse
    /// `do_invite_join` takes the inviter's server and the room's `via` servers;
    /// `_try_destination_list` tries them in order).
    pub(super) fn candidates(&self, room_id: &str, user: &str, via: Vec<String>) -> Vec<String> {
        let mut all = Vec::new();
        if let Some(invite) = self.store.invite(room_id, user).and_then(|id| self.store.pdu(id)) {
            if let Some(server) = ids::user_server(invite.sender()) {
                all.push(server.to_owned());
            }
        }
        all.extend(via);
        all.extend(self.joined_servers(room_id));
        let mut seen = BTreeSet::new();
        all.retain(|server| server != &self.name && seen.insert(server.clone()));
        all
    }

    pub(super) fn join(
        &mut self,
        now: Instant,
        user: &str,
        room_id: &str,
        via: Vec<String>,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        if self.is_resident(room_id) {
            if self.membership_is_unchanged(room_id, user, "join") {
                return Ok(());
            }
            return self.membership_event(now, room_id, user, user, "join", out);
        }
        // Not in the room (never joined, or its last member left, was kicked or banned):
        // join through a resident, never on a stale copy of the state (Synapse
        // `do_invite_join`).
        self.remote_membership(now, user, room_id, via, "join", out)
    }

    /// Whether `user`'s current membership event in this server's state is already the one
    /// a local `membership` change would make: same sender, same membership, same content.
    /// Such a change makes no new event ([impl] Synapse `_local_membership_update`,
    /// synapse/handlers/room_member.py: a duplicate membership event returns the existing
    /// one), so a join by a user who is joined changes nothing.
    pub(super) fn membership_is_unchanged(
        &self,
        room_id: &str,
        user: &str,
        membership: &str,
    ) -> bool {
        let Some(state) = self.current_state(room_id) else { return false };
        let key = ("m.room.member".to_owned(), user.to_owned());
        let Some(pdu) = state.get(&key).and_then(|id| self.store.pdu(id)) else { return false };
        pdu.sender() == user && *pdu.content() == membership_content(membership)
    }

    /// Join, leave or knock through a resident (`make_*`/`send_*`).
    pub(super) fn remote_membership(
        &mut self,
        now: Instant,
        user: &str,
        room_id: &str,
        via: Vec<String>,
        membership: &'static str,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        let handshake = Handshake {
            user: user.to_owned(),
            room_id: room_id.to_owned(),
            membership,
            candidates: self.candidates(room_id, user, via),
            failures: Vec::new(),
        };
        self.start_handshake(now, handshake, out)
    }

    /// What this server is in the middle of for its users (membership handshakes), as
    /// (user, kind, reason) triples: what fails if the server crashes now.
    pub fn actions_in_flight(&self) -> Vec<(String, ActionKind, String)> {
        self.requests
            .by_id()
            .filter_map(|(pending, _)| {
                let (h, step) = match pending {
                    Pending::Make(h) => (h, "make"),
                    Pending::Send { handshake, .. } => (handshake, "send"),
                    _ => return None,
                };
                let server = h.candidates.first().map_or("", String::as_str);
                let reason = format!(
                    "{step}_{} via {server}: the server crashed before the answer",
                    h.membership
                );
                Some((h.user.clone(), handshake::handshake_kind(h.membership), reason))
            })
            .collect()
    }

    /// Applies a redaction whose target is stored, if allowed (spec: "Handling redactions":
    /// sender power ≥ redact level, or same server as the target's sender).
    pub(super) fn apply_redaction(
        &mut self,
        room_id: &str,
        redaction: &Pdu,
        out: &mut Vec<Output>,
    ) {
        let Some(target_id) = redaction.redacts().cloned() else { return };
        let Some(target) = self.store.event(&target_id) else { return };
        if target.redacted || !target.pdu.is_in_room(room_id) {
            return;
        }
        // Redactions of the create event are never applied (Synapse:
        // `EventsWorkerStore._maybe_redact_event_row`, "we choose to ignore redactions of
        // m.room.create events").
        if target.pdu.event_type() == "m.room.create" {
            return;
        }
        let rules = self.rules_of(room_id).expect("room is known");
        let same_server = target.pdu.origin() == redaction.origin();
        let allowed = same_server || {
            let Some(group) = self.store.event(redaction.event_id()).and_then(|e| e.state_before)
            else {
                return;
            };
            let view = GroupView { store: &self.store, group };
            let level = auth::user_power_level(rules, &view, redaction.sender());
            let redact_level = view
                .get("m.room.power_levels", "")
                .and_then(|pl| pl.content().get("redact").and_then(Value::as_i64))
                .unwrap_or(50);
            level >= auth::PowerLevel::Int(redact_level)
        };
        if !allowed {
            return;
        }
        let redacted = crate::matrix::redaction::redact(rules.redaction, target.pdu.json());
        if let Ok(redacted) = Pdu::from_json(rules, redacted) {
            self.store.replace_redacted(&target_id, Arc::new(redacted));
            out.push(Output::Observed(Observation::Redacted {
                room_id: room_id.to_owned(),
                event_id: target_id,
                redaction: redaction.event_id().clone(),
            }));
        }
    }
}

/// The power levels a new room starts with: the creator at 100 (v12: creators are not
/// listed, and the tombstone level must exceed `state_default`).
fn initial_power_levels(rules: &RoomVersionRules, user: &str) -> Object {
    let mut levels = serde_json::json!({
        "users": {}, "users_default": 0, "events_default": 0, "state_default": 50,
        "ban": 50, "kick": 50, "redact": 50, "invite": 0,
        "events": {"m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
                   "m.room.tombstone": 100, "m.room.server_acl": 100},
    });
    if rules.privileged_creators {
        levels["events"]["m.room.tombstone"] = Value::from(150);
    } else {
        levels["users"][user] = Value::from(100);
    }
    let Value::Object(levels) = levels else { unreachable!("a JSON object literal") };
    levels
}
