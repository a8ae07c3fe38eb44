//! Linearized Matrix rooms (draft-ralston-mimi-linearized-matrix-04; digest:
//! spec/linearized-matrix.md; readings in docs/linearized.md): the hub's and the
//! participants' parts of a room whose version has `lpdus`.
//!
//! A room of that version lives in the same store as a DAG room: the hub's list is a chain
//! (every event the hub appends names the head as its only prev event), so the state after
//! each event, the forward extremity (the head) and gap filling are those of the DAG code.
//! What differs is here:
//! - a participant sends its users' events to the hub as LPDUs ([`Homeserver::send_lpdu`]),
//!   keeps them until they come back in the hub's list, are refused, or are given up, and
//!   takes the room's events from the hub only;
//! - the hub completes an LPDU into a PDU after the head of its list, decides it like a local
//!   event, appends it and sends it to every server in the room, the sender included
//!   ([`Homeserver::receive_lpdu`]);
//! - a participant checks each event the hub sends against the draft's rules for the next
//!   event of the list ([`Homeserver::hub_fault`]) and records a hub that breaks them;
//! - what keeps a participant in step with the hub under loss and crashes: LPDUs whose echo
//!   is late are sent again ([`Homeserver::resend_lpdus`]) and the hub answers a copy with
//!   the event it made of it; a refused sender gets the hub's head, so that it fills what
//!   it missed; and history missed while out of the room is told apart from a fork
//!   ([`Homeserver::missed_history`]).

use super::*;
use crate::matrix::linearized::{self, Lpdu};

/// What a participant does with its users' sends while the room's hub is unreachable
/// (marked down by outbound delivery). The draft is silent; both readings are offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OfflineSends {
    /// [digest] Keep the LPDU and send it when the hub is reachable again (outbound
    /// catch-up): the send is accepted late, unless the participant crashes first, which
    /// loses it as it loses every outbound queue.
    #[default]
    Queue,
    /// [digest] Fail at once while the hub is marked down, and give up the LPDUs still
    /// waiting when it is marked down: the user learns at once that the send did not go.
    Fail,
}

/// An LPDU a participant sent and has not seen the end of.
#[derive(Clone, Debug)]
pub(crate) struct PendingLpdu {
    /// The order of sending, so that a catch-up sends them again in the users' order.
    seq: u64,
    room_id: String,
    hub: String,
    json: Arc<OutgoingPdu>,
    /// When it was last queued for the hub.
    sent_at: Instant,
}

/// The server of the user a membership event is about (none for other events): the hub
/// sends the event there too, so that a kick, ban or leave of a server's last member
/// reaches it.
fn member_server(pdu: &Pdu) -> Vec<String> {
    let target = pdu.state_key().filter(|_| pdu.event_type() == "m.room.member");
    target.and_then(ids::user_server).map(str::to_owned).into_iter().collect()
}

impl Homeserver {
    /// The hub of a Linearized Matrix room this server knows of; `None` for a DAG room.
    ///
    /// Spec: draft "Hub Selection": the server of the create event's `sender`. [digest]
    /// Before this server holds the create event (a join in progress) the room id's domain
    /// stands in for it: the draft does not say how an outside server finds the hub, and in
    /// this version the room id's domain is the creating server's name.
    pub(super) fn hub_of(&self, room_id: &str) -> Option<String> {
        let room = self.store.room(room_id)?;
        if !room.version.rules().lpdus {
            return None;
        }
        let create_key = ("m.room.create".to_owned(), String::new());
        let creator = room
            .current_state
            .and_then(|group| self.store.state_get(group, &create_key))
            .and_then(|id| self.store.pdu(&id))
            .and_then(|create| ids::user_server(create.sender()).map(str::to_owned));
        creator.or_else(|| ids::room_domain(room_id).map(str::to_owned))
    }

    /// The hub of a Linearized Matrix room in which this server is a participant: neither
    /// the hub nor a DAG-capable server (`Config::dag_capable`), which keeps the room as a
    /// DAG.
    pub(super) fn participant_hub(&self, room_id: &str) -> Option<String> {
        self.hub_of(room_id).filter(|hub| *hub != self.name && !self.config.dag_capable)
    }

    /// Whether this server is a DAG-capable server in a Linearized Matrix room it does not
    /// host.
    pub(super) fn is_dag_server_in(&self, room_id: &str) -> bool {
        self.config.dag_capable && self.hub_of(room_id).is_some_and(|hub| hub != self.name)
    }

    /// At a DAG-capable server: the room's participants, to which it does not send (the hub
    /// relays to them). [digest] A server is a participant when one of its joined users
    /// joined through the hub (the join carries `hub_server`); the draft says DAG-capable
    /// servers "must not send directly" to participants and does not say how they tell
    /// them apart (docs/linearized.md). Read once per event sent, from the member entries.
    pub(super) fn participants(&self, room_id: &str) -> BTreeSet<String> {
        let hub = self.hub_of(room_id);
        let Some(state) = self.current_state(room_id) else { return BTreeSet::new() };
        state
            .range(("m.room.member".to_owned(), String::new())..)
            .take_while(|((event_type, _), _)| event_type == "m.room.member")
            .filter_map(|((_, user), id)| Some((ids::user_server(user)?, self.store.pdu(id)?)))
            .filter(|(server, member)| {
                member.content().get("membership").and_then(Value::as_str) == Some("join")
                    && member.hub_server().is_some()
                    && hub.as_deref() != Some(*server)
            })
            .map(|(server, _)| server.to_owned())
            .collect()
    }

    /// At the hub: a DAG-capable server's event was accepted and is now the last event of
    /// the list (`commit`). The hub records it, sends it to every server in the room but
    /// its sender's, and merges the list before the input ends when the event did not name
    /// the head.
    ///
    /// [digest] The draft leaves how a hub linearizes DAG events open ("not specified";
    /// digest §1). mxsim's reading (docs/linearized.md): the hub appends a DAG event that
    /// passes its receipt checks, soft-fail included, in order of receipt, as eigen-server
    /// appends a PDU a DAG server sends it (`HubRoom.ts`, [impl]); the list is then a DAG
    /// read in list order, whose state at a position is the resolved state of the forward
    /// extremities so far.
    pub(super) fn linearize_dag(&mut self, room_id: &str, pdu: &Arc<Pdu>, out: &mut Vec<Output>) {
        let origin = ids::user_server(pdu.sender()).unwrap_or(pdu.origin()).to_owned();
        out.push(Output::Observed(Observation::DagLinearized {
            room_id: room_id.to_owned(),
            event_id: pdu.event_id().clone(),
            origin: origin.clone(),
        }));
        self.fan_out(room_id, pdu, &member_server(pdu), Some(&origin));
        let forked = self.store.room(room_id).is_some_and(|r| r.forward_extremities.len() > 1);
        if forked {
            self.lists_to_merge.insert(room_id.to_owned());
        }
    }

    /// At the hub: closes a fork of the list with a merge event naming every forward
    /// extremity, sent by the first of the hub's joined users (by user id) allowed to send
    /// it, so that the next event the hub completes has one head again and a DAG-capable
    /// server finds in that head's state everything the list holds. Records `hub_merge`,
    /// with the reason when none of the hub's users can send it (then the hub refuses
    /// LPDUs until a merge succeeds).
    ///
    /// [digest] The draft's hub names one prev event and never merges; its notes mention
    /// "filler" events after a state resolution. The merge is the event type and the choice
    /// of sender of Synapse's `_send_dummy_events_to_fill_extremities` /
    /// `_send_dummy_event_for_room` (`org.matrix.dummy_event`, content `{}`, each local
    /// member tried in turn), used at every fork instead of past a threshold.
    pub(super) fn merge_list(&mut self, now: Instant, room_id: &str, out: &mut Vec<Output>) {
        let Some(room) = self.store.room(room_id) else { return };
        if room.forward_extremities.len() < 2 || !self.is_hub_of(room_id) {
            return;
        }
        let prev_events: Vec<EventId> = room.forward_extremities.iter().cloned().collect();
        let users: Vec<String> = self
            .current_state(room_id)
            .unwrap_or_default()
            .iter()
            .filter(|((event_type, user), _)| {
                event_type == "m.room.member" && self.is_local_user(user)
            })
            .filter(|(_, id)| {
                self.store.pdu(id).is_some_and(|member| {
                    member.content().get("membership").and_then(Value::as_str) == Some("join")
                })
            })
            .map(|((_, user), _)| user.clone())
            .collect();
        let mut refusals = Vec::new();
        for user in &users {
            let merge_type = linearized::MERGE_EVENT_TYPE;
            let built = self.build_event(now, room_id, user, merge_type, None, Object::new());
            let pdu = match built.and_then(|pdu| self.check_local(room_id, &pdu).map(|()| pdu)) {
                Ok(pdu) => pdu,
                Err(reason) => {
                    refusals.push(format!("{user}: {reason}"));
                    continue;
                }
            };
            self.commit_created(room_id, &pdu, out);
            out.push(Output::Observed(Observation::HubMerge {
                room_id: room_id.to_owned(),
                event_id: Some(pdu.event_id().clone()),
                prev_events: pdu.prev_events().to_vec(),
                reason: None,
            }));
            self.fan_out(room_id, &pdu, &[], None);
            return;
        }
        let reason = if users.is_empty() {
            "the hub has no joined user to send a merge".to_owned()
        } else {
            format!("no user of the hub may send a merge: {}", refusals.join("; "))
        };
        out.push(Output::Observed(Observation::HubMerge {
            room_id: room_id.to_owned(),
            event_id: None,
            prev_events,
            reason: Some(reason),
        }));
    }

    /// Whether this server is the hub of a Linearized Matrix room.
    pub(super) fn is_hub_of(&self, room_id: &str) -> bool {
        self.hub_of(room_id).is_some_and(|hub| hub == self.name)
    }

    /// A local user's event in a room this server is a participant of: built as an LPDU,
    /// checked against this server's own view of the room's current state, and queued for
    /// the hub. Returns the LPDU's typed view (its id is the LPDU's id).
    ///
    /// Spec: draft "Linearized PDU" (the participant leaves out `auth_events`,
    /// `prev_events` and the PDU hash, adds `hashes.lpdu` and signs) and "Sending"
    /// (non-hub servers send LPDUs to the hub; digest: spec/linearized-matrix.md §4, §7.1).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_lpdu(
        &mut self,
        now: Instant,
        room_id: &str,
        hub: &str,
        sender: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: Object,
        out: &mut Vec<Output>,
    ) -> Result<Arc<Pdu>, String> {
        let rules = self.rules_of(room_id).ok_or("this server is not in the room")?;
        if self.config.offline_sends == OfflineSends::Fail && self.outbound.is_down(hub) {
            return Err(format!(
                "the room's hub {hub} is unreachable (marked down), and sends fail while it is"
            ));
        }
        if self.lpdus_pending.len() >= self.config.lpdus_pending_max {
            let max = self.config.lpdus_pending_max;
            return Err(format!("{max} sends already wait for their hubs"));
        }
        let current = self.store.room(room_id).and_then(|r| r.current_state);
        let current = current.ok_or("the room has no state here")?;
        let mut json = Object::new();
        json.insert("type".into(), Value::from(event_type));
        json.insert("sender".into(), Value::from(sender));
        json.insert("room_id".into(), Value::from(room_id));
        json.insert("origin_server_ts".into(), Value::from(self.clock_ms(now)));
        json.insert("hub_server".into(), Value::from(hub));
        if let Some(state_key) = state_key {
            json.insert("state_key".into(), Value::from(state_key));
        }
        json.insert("content".into(), Value::Object(content));
        let lpdu = linearized::build_lpdu(rules, json, &self.name, &self.key)
            .map_err(|e| format!("cannot build the LPDU: {e}"))?;
        // A user may not send what the hub would refuse on the state this server holds
        // (the same check `make_join` runs on a template: the rules that read the state).
        let view = GroupView { store: &self.store, group: current };
        auth::check_state_rules(rules, lpdu.partial(), &view, SignatureCheck::AlreadyVerified)
            .map_err(|rejection| format!("not allowed: {rejection}"))?;
        let json = Arc::new(OutgoingPdu::new(lpdu.json().clone()));
        let seq = self.lpdus_pending.values().map(|p| p.seq + 1).max().unwrap_or(0);
        let pending = PendingLpdu {
            seq,
            room_id: room_id.to_owned(),
            hub: hub.to_owned(),
            json: Arc::clone(&json),
            sent_at: now,
        };
        self.lpdus_pending.insert(lpdu.id().clone(), pending);
        self.outbound.enqueue_pdu(hub, json, room_id);
        out.push(Output::Observed(Observation::LpduSent {
            room_id: room_id.to_owned(),
            lpdu_id: lpdu.id().clone(),
            hub: hub.to_owned(),
        }));
        Ok(Arc::new(lpdu.partial().clone()))
    }

    /// The hub's side of an LPDU received over `/send`: checked, completed after the head of
    /// the list, decided like a local event, appended and sent to every server in the room,
    /// the sender included (the echo). `Err` is a refusal, listed in the transaction's
    /// answer under the LPDU's id; a dropped LPDU (draft: receipt checks 1–2) is `Ok`, with
    /// the drop observed.
    ///
    /// Spec: draft "Receiving Events/PDUs" and "Sending" (digest: spec/linearized-matrix.md
    /// §4, §6, §7.1).
    pub(super) fn receive_lpdu(
        &mut self,
        now: Instant,
        origin: &str,
        room_id: &str,
        raw: Object,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        let rules = self.rules_of(room_id).expect("the caller found the room");
        let dropped = |out: &mut Vec<Output>, reason: String| {
            out.push(Output::Observed(Observation::Event {
                room_id: room_id.to_owned(),
                event_id: None,
                decision: Decision::Dropped,
                reason: Some(reason),
            }));
        };
        if !self.is_hub_of(room_id) {
            // Draft "Sending" step 3: an LPDU sent to a server that is not the hub.
            dropped(out, "an LPDU sent to a server that is not the room's hub".into());
            return Ok(());
        }
        let lpdu = match Lpdu::from_json(rules, raw) {
            Ok(lpdu) => lpdu,
            Err(e) => {
                dropped(out, format!("bad LPDU format: {e}"));
                return Ok(());
            }
        };
        if ids::user_server(lpdu.partial().sender()) != Some(origin) {
            dropped(out, format!("an LPDU of a user of another server, sent by {origin}"));
            return Ok(());
        }
        if let Some(event) = self.store.lpdu_event(lpdu.id()).and_then(|id| self.store.pdu(id)) {
            // Sent again (a retry, a catch-up, or a participant that never saw the echo):
            // appended once, and the event made of it goes to the sender again.
            // [digest] The draft does not say how a participant that missed the echo
            // learns of it; this is mxsim's reading (docs/linearized.md).
            let json = Arc::clone(event.shared_json());
            self.outbound.enqueue_pdu(origin, json, room_id);
            return Ok(());
        }
        let refuse = |out: &mut Vec<Output>, reason: String| {
            out.push(Output::Observed(Observation::LpduFailed {
                room_id: room_id.to_owned(),
                lpdu_id: lpdu.id().clone(),
                reason: reason.clone(),
            }));
            Err(reason)
        };
        match linearized::verify_lpdu(rules, &lpdu, &self.keys) {
            Ok(Verified::Intact) => {}
            // [digest] The hub refuses an LPDU whose hash does not match instead of
            // appending its redacted copy (docs/linearized.md).
            Ok(Verified::Redacted(_)) => return refuse(out, "the LPDU hash does not match".into()),
            Err(e) => {
                dropped(out, format!("LPDU signature: {e}"));
                return Ok(());
            }
        }
        // A fork a DAG-capable server's event left (a hub that crashed before it merged).
        self.merge_list(now, room_id, out);
        let pdu = match self.complete(room_id, &lpdu) {
            Ok(pdu) => pdu,
            Err(reason) => return refuse(out, reason),
        };
        let outcome = self.decide(room_id, &pdu);
        if let Some(reason) = outcome.reason.clone() {
            // [digest] The sender's copy of the list may be behind (it missed its own kick,
            // say): the head goes to it, so that it fills the gap from the hub and sees why
            // (docs/linearized.md).
            let head =
                self.store.room(room_id).and_then(|r| r.forward_extremities.first().cloned());
            if let Some(head) = head.and_then(|id| self.store.pdu(&id).cloned()) {
                let head = Arc::clone(head.shared_json());
                self.outbound.enqueue_pdu(origin, head, room_id);
            }
            return refuse(out, format!("not allowed: {reason}"));
        }
        debug_assert_eq!(outcome, Outcome::accepted());
        self.commit_created(room_id, &pdu, out);
        self.store.note_lpdu(lpdu.id().clone(), pdu.event_id().clone());
        out.push(Output::Observed(Observation::Linearized {
            room_id: room_id.to_owned(),
            lpdu_id: lpdu.id().clone(),
            event_id: pdu.event_id().clone(),
            origin: origin.to_owned(),
        }));
        // The servers in the room after the event, and the one it removes, if any (a
        // kick, ban or leave of the last member of a server).
        self.fan_out(room_id, &pdu, &member_server(&pdu), None);
        Ok(())
    }

    /// Completes an LPDU after the head of this hub's list: the auth events the selection
    /// picks from the current state, the head as the only prev event, the PDU hash and the
    /// hub's signature ([`linearized::complete_lpdu_with`]).
    pub(super) fn complete(&self, room_id: &str, lpdu: &Lpdu) -> Result<Arc<Pdu>, String> {
        let rules = self.rules_of(room_id).expect("the caller found the room");
        let room = self.store.room(room_id).expect("the caller found the room");
        let current = room.current_state.ok_or("the room has no state here")?;
        let head = match room.forward_extremities.iter().collect::<Vec<_>>().as_slice() {
            [head] => (*head).clone(),
            heads => return Err(format!("the hub's list has {} heads", heads.len())),
        };
        let partial = lpdu.partial();
        let view = GroupView { store: &self.store, group: current };
        let auth_events = auth::select_auth_events(
            rules,
            partial.event_type(),
            partial.sender(),
            partial.state_key(),
            partial.content(),
            &view,
        );
        linearized::complete_lpdu_with(rules, lpdu, auth_events, head, &self.name, &self.key)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }

    /// At a participant: why an event from the hub, whose ancestors are all here, may not
    /// come next in the hub's list: (fault, reason). `None` when it may.
    ///
    /// [digest] The checks of `linearized::HubList::append` on the store: an event the hub
    /// built (with `hub_server`, or sent by one of the hub's users) names the head of the
    /// list (this server's only forward extremity) as its only prev event and lists exactly
    /// the auth events the selection picks from the state before it; and every event passes
    /// the auth rules there (the caller's decision).
    pub(super) fn hub_fault(
        &self,
        room_id: &str,
        pdu: &Pdu,
        hub: &str,
    ) -> Option<(String, String)> {
        let rules = self.rules_of(room_id).expect("room is known");
        if let Some(named) = pdu.hub_server().filter(|named| *named != hub) {
            return Some(("wrong_hub".into(), format!("hub_server {named} is not the hub {hub}")));
        }
        if !linearized::built_by_hub(pdu, hub) {
            return None;
        }
        let room = self.store.room(room_id).expect("room is known");
        // [digest] An event the hub built names every forward extremity of the list: the
        // head, or the extremities a merge closes (docs/linearized.md).
        let head: Vec<&EventId> = room.forward_extremities.iter().collect();
        let mut prevs: Vec<&EventId> = pdu.prev_events().iter().collect();
        prevs.sort();
        if prevs != head {
            return Some((
                "not_after_head".into(),
                format!(
                    "prev_events [{}] is not the head of the list [{}]",
                    list(pdu.prev_events()),
                    head.iter().map(|id| id.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let current = room.current_state?;
        let view = GroupView { store: &self.store, group: current };
        let mut selected = auth::select_auth_events(
            rules,
            pdu.event_type(),
            pdu.sender(),
            pdu.state_key(),
            pdu.content(),
            &view,
        );
        let mut listed = pdu.auth_events().to_vec();
        selected.sort();
        listed.sort();
        if selected != listed {
            return Some((
                "auth_events_not_selected".into(),
                format!(
                    "auth_events [{}] are not the selected [{}]",
                    list(&listed),
                    list(&selected)
                ),
            ));
        }
        None
    }

    /// At the hub: whether an invite signed by the invitee's server names a prev event that
    /// is no longer the head of the list (another event was appended while it was signed).
    pub(super) fn invite_is_stale(&self, room_id: &str, event: &Object) -> bool {
        if !self.is_hub_of(room_id) {
            return false;
        }
        let Some(room) = self.store.room(room_id) else { return false };
        let prevs: Vec<&str> = event
            .get("prev_events")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let head: Vec<&str> = room.forward_extremities.iter().map(EventId::as_str).collect();
        prevs != head
    }

    /// At a participant: why an event from the hub that does not follow this server's head
    /// is history it missed rather than a fork of the list, if it is: the create event, or
    /// an event whose one prev event has no other child here. A server that left and joined
    /// again holds the list with a gap, and the hub's queue to it can still deliver events
    /// from before its new join. [digest] A fork is a second child of an event this server
    /// holds; mxsim does not call anything else a fork (docs/linearized.md).
    pub(super) fn missed_history(&self, room_id: &str, pdu: &Pdu) -> Option<String> {
        let room = self.store.room(room_id)?;
        let mut prevs: Vec<&EventId> = pdu.prev_events().iter().collect();
        prevs.sort();
        if prevs.into_iter().eq(room.forward_extremities.iter()) {
            return None;
        }
        if !linearized::built_by_hub(pdu, &self.hub_of(room_id)?) {
            // A DAG-capable server's event names the prev events it knew: with its ancestors
            // all here, it is a fork the hub merges, not missed history.
            return None;
        }
        let reason = "history from before this server's last join, which its copy of the list \
                      does not hold";
        if pdu.event_type() == "m.room.create" {
            return Some(reason.into());
        }
        let [prev] = pdu.prev_events() else { return None };
        let other_child = self.store.any_event(|id, event| {
            id != pdu.event_id()
                && event.state_after.is_some()
                && event.pdu.prev_events() == std::slice::from_ref(prev)
        });
        (!other_child).then(|| reason.into())
    }

    /// At a participant: an event of the hub's list was appended here; when it is the
    /// completion of one of this server's LPDUs, that LPDU is accounted for.
    pub(super) fn note_echo(&mut self, room_id: &str, pdu: &Pdu, out: &mut Vec<Output>) {
        if pdu.hub_server().is_none() || pdu.origin() != self.name {
            return;
        }
        let rules = self.rules_of(room_id).expect("room is known");
        let Ok(lpdu) = Lpdu::from_json(rules, pdu::rebuild_lpdu(pdu.json())) else { return };
        if self.lpdus_pending.remove(lpdu.id()).is_some() {
            out.push(Output::Observed(Observation::LpduAccepted {
                room_id: room_id.to_owned(),
                lpdu_id: lpdu.id().clone(),
                event_id: pdu.event_id().clone(),
            }));
        }
    }

    /// At a participant: the hub's answer to a transaction; the LPDUs it refused
    /// (`failed_pdus`) are accounted for.
    pub(super) fn note_refusals(
        &mut self,
        results: &BTreeMap<EventId, wire::PduResult>,
        out: &mut Vec<Output>,
    ) {
        for (id, result) in results {
            let Err(reason) = result else { continue };
            if let Some(pending) = self.lpdus_pending.remove(id) {
                out.push(Output::Observed(Observation::LpduFailed {
                    room_id: pending.room_id,
                    lpdu_id: id.clone(),
                    reason: format!("refused by the hub: {reason}"),
                }));
            }
        }
    }

    /// At a participant: outbound delivery marked `peer` down. Under
    /// [`OfflineSends::Fail`] the LPDUs waiting for it as a hub are given up.
    pub(super) fn on_peer_down(&mut self, peer: &str, out: &mut Vec<Output>) {
        if self.config.offline_sends != OfflineSends::Fail {
            return;
        }
        let given_up: Vec<EventId> = self
            .lpdus_pending
            .iter()
            .filter(|(_, p)| p.hub == peer)
            .map(|(id, _)| id.clone())
            .collect();
        for id in given_up {
            let pending = self.lpdus_pending.remove(&id).expect("listed above");
            out.push(Output::Observed(Observation::LpduFailed {
                room_id: pending.room_id,
                lpdu_id: id,
                reason: format!("given up: the hub {peer} was marked down"),
            }));
        }
    }

    /// When the next pending LPDU is due to be sent again.
    pub(super) fn next_lpdu_resend(&self) -> Option<Instant> {
        let wait = self.config.lpdu_resend_after;
        self.lpdus_pending.values().map(|p| p.sent_at + wait).min()
    }

    /// Sends again every pending LPDU whose echo has not come back within
    /// `Config::lpdu_resend_after` of its last sending. [digest] The draft does not say what a
    /// participant does when its LPDU never comes back (the echo was lost with a crashed
    /// hub's queue, say); sending it again is safe because the hub appends an LPDU once and
    /// answers a copy with the event it made of it.
    pub(super) fn resend_lpdus(&mut self, now: Instant) {
        let wait = self.config.lpdu_resend_after;
        let mut due: Vec<(u64, EventId)> = self
            .lpdus_pending
            .iter()
            .filter(|(_, p)| p.sent_at + wait <= now)
            .map(|(id, p)| (p.seq, id.clone()))
            .collect();
        due.sort();
        for (_, id) in due {
            let pending = self.lpdus_pending.get_mut(&id).expect("listed above");
            pending.sent_at = now;
            let (hub, json, room_id) =
                (pending.hub.clone(), Arc::clone(&pending.json), pending.room_id.clone());
            self.outbound.enqueue_pdu(&hub, json, room_id.as_str());
        }
    }

    /// What outbound catch-up sends a hub for a room this server is a participant of: its
    /// LPDUs still pending, in the order they were sent (the hub's list has what this
    /// server has, so its own latest events would be no news).
    pub(super) fn pending_lpdus(&self, hub: &str, room_id: &str) -> Vec<Arc<OutgoingPdu>> {
        let mut pending: Vec<&PendingLpdu> =
            self.lpdus_pending.values().filter(|p| p.hub == hub && p.room_id == room_id).collect();
        pending.sort_by_key(|p| p.seq);
        pending.into_iter().map(|p| Arc::clone(&p.json)).collect()
    }
}
