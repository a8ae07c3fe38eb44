//! The joining side of the membership handshakes (join, leave, knock) and remote invites.

use std::sync::Arc;

use serde_json::Value;

use super::{Handshake, Homeserver, Incoming, Pending};
use crate::homeserver::store::{Outcome, StateMap};
use crate::homeserver::types::{ActionKind, Decision, Observation, Output};
use crate::homeserver::verified::CheckedCopy;
use crate::homeserver::wire::{
    ErrorResponse, KnownPdus, MakeMembership, OutgoingPdu, Request, Response, SendJoin,
};
use crate::matrix::canonical_json::Object;
use crate::matrix::linearized::{self, Lpdu};
use crate::matrix::pdu::{self, Pdu};
use crate::matrix::{EventId, RoomVersion};
use crate::stdx::Instant;

fn failed(out: &mut Vec<Output>, user: &str, kind: ActionKind, reason: impl Into<String>) {
    out.push(Output::Observed(Observation::ActionFailed {
        user: user.to_owned(),
        kind,
        reason: reason.into(),
    }));
}

/// The action a membership handshake carries out.
pub(super) fn handshake_kind(membership: &str) -> ActionKind {
    match membership {
        "join" => ActionKind::Join,
        "knock" => ActionKind::Knock,
        "leave" => ActionKind::Leave,
        other => unreachable!("no handshake for membership {other:?}"),
    }
}

/// An error answer as a sentence: `404 M_NOT_FOUND this server is not in the room`.
pub(super) fn describe_error(e: &ErrorResponse) -> String {
    let text = if e.error.is_empty() { String::new() } else { format!(" {}", e.error) };
    format!("{} {}{text}", e.status, e.errcode.as_str())
}

impl Homeserver {
    /// Checks a `make_*` template (spec digest §5 step 3) and signs it.
    fn sign_template(
        &self,
        now: Instant,
        template: &MakeMembership,
        room_id: &str,
        user: &str,
        membership: &str,
        resident: &str,
    ) -> Result<(RoomVersion, Arc<Pdu>), String> {
        let version = template.room_version.as_deref().ok_or("template without room_version")?;
        let version = RoomVersion::parse_any(version).map_err(|e| e.to_string())?;
        let rules = version.rules();
        if rules.lpdus && !self.config.linearized {
            return Err(format!("this server does not take part in rooms of version {version}"));
        }
        let event = &template.event;
        let get = |key: &str| event.get(key).and_then(Value::as_str);
        let content_membership =
            event.get("content").and_then(|c| c.get("membership")).and_then(Value::as_str);
        let room_matches = get("room_id") == Some(room_id);
        if !room_matches
            || get("sender") != Some(user)
            || get("state_key") != Some(user)
            || get("type") != Some("m.room.member")
            || content_membership != Some(membership)
        {
            return Err("malformed template".into());
        }
        let mut json: Object = event.clone();
        // `origin` is not part of the PDU formats of rooms 10–12; our events carry none.
        json.remove("origin");
        json.remove("event_id");
        json.remove("hashes");
        json.remove("signatures");
        json.insert("origin_server_ts".into(), Value::from(self.clock_ms(now)));
        if rules.lpdus && !self.config.dag_capable {
            // Linearized Matrix: the join goes to the hub as an LPDU, with the fields the
            // draft lets a participant fill ([impl] eigen-server builds it from the
            // template's type, state key, sender and membership, and names the server it
            // asked as the hub).
            if membership != "join" {
                return Err(format!(
                    "mxsim builds only joins through a Linearized Matrix hub, not {membership}s"
                ));
            }
            let mut lpdu = Object::new();
            for key in ["type", "state_key", "sender", "room_id", "content", "origin_server_ts"] {
                if let Some(value) = json.get(key) {
                    lpdu.insert(key.into(), value.clone());
                }
            }
            lpdu.insert("hub_server".into(), Value::from(resident));
            let lpdu = linearized::build_lpdu(rules, lpdu, &self.name, &self.key)
                .map_err(|e| e.to_string())?;
            return Ok((version, Arc::new(lpdu.partial().clone())));
        }
        let pdu =
            pdu::build_signed(rules, json, &self.name, &self.key).map_err(|e| e.to_string())?;
        Ok((version, self.own_copy(rules, pdu)))
    }

    /// Starts a membership handshake (`make_*`, then `send_*`) with the first candidate.
    /// Candidates are tried in order until one answers both steps, as Synapse's
    /// `_try_destination_list` (`synapse/federation/federation_client.py`) does for
    /// `make_membership_event`, `send_join`, `send_leave` and `send_knock`.
    pub(super) fn start_handshake(
        &mut self,
        now: Instant,
        handshake: Handshake,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        if handshake.candidates.is_empty() {
            return Err(format!("no server to ask for make_{}", handshake.membership));
        }
        if handshake.membership == "join" {
            // [impl] Synapse queues the room's PDUs while a join is in progress
            // (`room_queues` in `on_receive_pdu`) and processes them once it is done.
            self.join_queues.entry(handshake.room_id.clone()).or_default();
        }
        self.send_make(now, handshake, out);
        Ok(())
    }

    /// Sends `make_*` to the first candidate.
    fn send_make(&mut self, now: Instant, handshake: Handshake, out: &mut Vec<Output>) {
        let destination = handshake.candidates[0].clone();
        let (room_id, user_id) = (handshake.room_id.clone(), handshake.user.clone());
        let linearized = self.config.linearized;
        let ver = || {
            let extra = RoomVersion::LINEARIZED.iter().filter(|_| linearized);
            RoomVersion::ALL.iter().chain(extra).map(|v| v.as_str().to_owned()).collect()
        };
        let request = match handshake.membership {
            "join" => Request::MakeJoin { room_id, user_id, ver: ver() },
            "knock" => Request::MakeKnock { room_id, user_id, ver: ver() },
            _ => Request::MakeLeave { room_id, user_id },
        };
        if !self.send(now, &destination, request, Pending::Make(handshake.clone()), out) {
            let reason = "too many requests in flight";
            self.next_candidate(now, handshake, None, reason, out);
        }
    }

    /// Sends the signed `own` event with `send_*` to the first candidate.
    fn send_signed(
        &mut self,
        now: Instant,
        handshake: Handshake,
        version: RoomVersion,
        own: Arc<Pdu>,
        out: &mut Vec<Output>,
    ) {
        let destination = handshake.candidates[0].clone();
        let (room_id, event_id, pdu) =
            (handshake.room_id.clone(), own.event_id().clone(), own.json().clone());
        let request = match handshake.membership {
            "join" => Request::SendJoin { room_id, event_id, omit_members: false, pdu },
            "knock" => Request::SendKnock { room_id, event_id, pdu },
            _ => Request::SendLeave { room_id, event_id, pdu },
        };
        let pending =
            Pending::Send { handshake: handshake.clone(), version, own: Arc::clone(&own) };
        if !self.send(now, &destination, request, pending, out) {
            let reason = "too many requests in flight";
            self.next_candidate(now, handshake, Some((version, own)), reason, out);
        }
    }

    /// Records why the first candidate failed and tries the next one; after the last,
    /// the action fails with every reason, one sentence per server.
    fn next_candidate(
        &mut self,
        now: Instant,
        mut handshake: Handshake,
        signed: Option<(RoomVersion, Arc<Pdu>)>,
        reason: &str,
        out: &mut Vec<Output>,
    ) {
        let step = if signed.is_some() { "send" } else { "make" };
        let server = handshake.candidates.remove(0);
        handshake.failures.push(format!("{step}_{} via {server}: {reason}", handshake.membership));
        if handshake.candidates.is_empty() {
            self.end_handshake(&handshake.room_id, handshake.membership, false, now, out);
            let kind = handshake_kind(handshake.membership);
            failed(out, &handshake.user, kind, handshake.failures.join("; "));
            return;
        }
        match signed {
            Some((version, own)) => self.send_signed(now, handshake, version, own, out),
            None => self.send_make(now, handshake, out),
        }
    }

    /// A join handshake ended: the PDUs queued meanwhile are processed (joined) or
    /// dropped with a reason (failed).
    fn end_handshake(
        &mut self,
        room_id: &str,
        membership: &str,
        joined: bool,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        if membership != "join" {
            return;
        }
        let still_joining = self.requests.any(|p| match p {
            Pending::Make(h) | Pending::Send { handshake: h, .. } => {
                h.membership == "join" && h.room_id == room_id
            }
            _ => false,
        });
        if still_joining && !joined {
            return; // Another user's join of the room is still under way.
        }
        let queued = self.join_queues.remove(room_id).unwrap_or_default();
        if still_joining {
            self.join_queues.insert(room_id.to_owned(), Vec::new());
        }
        for (origin, raw) in queued {
            let _ = self.receive_pdu(now, &origin, Incoming::Raw(raw), out);
        }
    }

    /// The answer to a `make_*` request.
    pub(super) fn on_make(
        &mut self,
        now: Instant,
        handshake: Handshake,
        answer: Result<Response, String>,
        out: &mut Vec<Output>,
    ) {
        let membership = handshake.membership;
        let template = match answer {
            Ok(Response::MakeJoin(t)) if membership == "join" => t,
            Ok(Response::MakeKnock(t)) if membership == "knock" => t,
            Ok(Response::MakeLeave(t)) if membership == "leave" => t,
            Ok(Response::Error(e)) => {
                let reason = describe_error(&e);
                return self.next_candidate(now, handshake, None, &reason, out);
            }
            Ok(_) => {
                let reason = "an answer of the wrong kind";
                return self.next_candidate(now, handshake, None, reason, out);
            }
            Err(reason) => return self.next_candidate(now, handshake, None, &reason, out),
        };
        let (room_id, user) = (handshake.room_id.clone(), handshake.user.clone());
        let resident = handshake.candidates[0].clone();
        match self.sign_template(now, &template, &room_id, &user, membership, &resident) {
            Ok((version, own)) => self.send_signed(now, handshake, version, own, out),
            Err(reason) => self.next_candidate(now, handshake, None, &reason, out),
        }
    }

    /// The answer to a `send_*` request.
    pub(super) fn on_send(
        &mut self,
        now: Instant,
        handshake: Handshake,
        version: RoomVersion,
        own: Arc<Pdu>,
        (answer, mut known): (Result<Response, String>, KnownPdus<CheckedCopy>),
        out: &mut Vec<Output>,
    ) {
        let outcome = match answer {
            Ok(Response::SendJoin(mut answer)) if handshake.membership == "join" => {
                // The answer's lists in the body's order, PDUs recognised by their bytes
                // among them; `answer` keeps the rest.
                let mut list = |key: &str, parsed: &mut Vec<Arc<OutgoingPdu>>| {
                    let known = known.remove(key).unwrap_or_default();
                    Incoming::merge(version, std::mem::take(parsed), known)
                };
                let lists =
                    (list("auth_chain", &mut answer.auth_chain), list("state", &mut answer.state));
                self.on_send_join(&handshake, version, &own, answer, lists, out)
            }
            Ok(Response::SendKnock { .. }) if handshake.membership == "knock" => {
                self.store_own_membership(&handshake.room_id, version, &own, out);
                Ok(())
            }
            Ok(Response::SendLeave) if handshake.membership == "leave" => {
                self.store.remove_invite(&handshake.room_id, &handshake.user);
                self.store_own_membership(&handshake.room_id, version, &own, out);
                Ok(())
            }
            Ok(Response::Error(e)) => Err(describe_error(&e)),
            Ok(_) => Err("an answer of the wrong kind".to_owned()),
            Err(reason) => Err(reason),
        };
        match outcome {
            Ok(()) => {
                let room_id = handshake.room_id.clone();
                self.end_handshake(&room_id, handshake.membership, true, now, out);
            }
            Err(reason) => self.next_candidate(now, handshake, Some((version, own)), &reason, out),
        }
    }

    /// A knock or a leave went through a resident: the event is stored as an outlier (this
    /// server has no state for the room) and reported as created, as Synapse persists it
    /// as an outlier in `do_knock` and `do_remotely_reject_invite`.
    fn store_own_membership(
        &mut self,
        room_id: &str,
        version: RoomVersion,
        own: &Arc<Pdu>,
        out: &mut Vec<Output>,
    ) {
        if self.store.room(room_id).is_none() {
            self.store.add_room(room_id, version);
        }
        if !self.store.contains(own.event_id()) {
            self.store_event(room_id, own, &Outcome::outlier(), None);
        }
        out.push(Output::Observed(Observation::Event {
            room_id: room_id.to_owned(),
            event_id: Some(own.event_id().clone()),
            decision: Decision::Created,
            reason: None,
        }));
    }

    /// Stores the room state from a `send_join` answer and the join itself (spec digest
    /// §5 step 6).
    fn on_send_join(
        &mut self,
        handshake: &Handshake,
        version: RoomVersion,
        own: &Arc<Pdu>,
        answer: SendJoin,
        (auth_chain, state): (Vec<Incoming>, Vec<Incoming>),
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        let (user, room_id) = (handshake.user.as_str(), handshake.room_id.as_str());
        let rules = version.rules();
        let fresh = self.store.room(room_id).is_none_or(|r| r.current_state.is_none());
        self.store.add_room(room_id, version);
        // `answer` holds the rest of the answer; its PDUs come as `auth_chain` and `state`.
        let chain_len = auth_chain.len();
        let mut bundle = auth_chain;
        bundle.extend(state);
        // The ids of what verified, in the bundle's order: the state's come after the chain.
        let ids = self.store_outliers(room_id, bundle, out);
        // The state before the join, from the answer's state events we could verify.
        let mut state = StateMap::new();
        for id in ids.into_iter().skip(chain_len).flatten() {
            let Some(event) = self.store.event(&id) else { continue };
            if event.is_rejected() {
                continue;
            }
            if let Some(key) = event.pdu.state_key() {
                state.insert((event.pdu.event_type().to_owned(), key.to_owned()), id);
            }
        }
        // The room's create event must be the one the room id names (v12) or be in state.
        let create_key = ("m.room.create".to_owned(), String::new());
        let create_ok = match state.get(&create_key) {
            Some(create) if rules.room_id_is_create_event_hash => create.names_room(room_id),
            Some(_) => true,
            None => false,
        };
        if !create_ok {
            return Err("an answer without the room's create event".into());
        }
        // Prefer the resident's copy of the join: it may carry more signatures. In a
        // Linearized Matrix room it is the hub's completion of the LPDU `own`, which must
        // rebuild into exactly that LPDU.
        let returned = answer.event.and_then(|raw| self.verify_received(rules, raw).ok());
        let participant = rules.lpdus && !self.config.dag_capable;
        let join = if participant {
            let completes_own = |pdu: &Arc<Pdu>| {
                let rebuilt = Lpdu::from_json(rules, pdu::rebuild_lpdu(pdu.json()));
                rebuilt.is_ok_and(|lpdu| lpdu.id() == own.event_id())
            };
            returned.filter(completes_own).ok_or("the hub's answer lacks the completed join")?
        } else {
            returned
                .filter(|pdu| pdu.event_id() == own.event_id())
                .unwrap_or_else(|| Arc::clone(own))
        };
        let before = self.store.store_state(&state, None);
        let outcome = self.check_own_auth(room_id, &join);
        if let Outcome { decision: Decision::RejectedAuthEvents, reason: Some(reason) } = outcome {
            return Err(format!("the join is not allowed: {reason}"));
        }
        assert_eq!(outcome, Outcome::outlier(), "check_own_auth accepts or rejects");
        if !self.store.contains(join.event_id()) {
            self.store_event(room_id, &join, &Outcome::accepted(), Some(before));
        }
        let after = self.store.event(join.event_id()).and_then(|e| e.state_after);
        let room = self.store.room_mut(room_id);
        if fresh || participant {
            // A participant's room goes on from the join: it is the head of the list.
            room.forward_extremities.clear();
        }
        room.forward_extremities.insert(join.event_id().clone());
        room.current_state = after;
        self.store.remove_invite(room_id, user);
        out.push(Output::Observed(Observation::RoomJoined {
            room_id: room_id.to_owned(),
            version,
        }));
        // In a Linearized Matrix room the hub created the PDU (and recorded it so); this
        // server sent the LPDU it completes.
        let decision = if participant { Decision::Accepted } else { Decision::Created };
        out.push(Output::Observed(Observation::Event {
            room_id: room_id.to_owned(),
            event_id: Some(join.event_id().clone()),
            decision,
            reason: None,
        }));
        if let Some(group) = after {
            out.push(Output::Observed(Observation::StateChanged {
                room_id: room_id.to_owned(),
                state_hash: self.state_hash(group),
            }));
        }
        Ok(())
    }

    /// The invitee's server signed our invite: store it and send it into the room.
    pub(super) fn commit_remote_invite(
        &mut self,
        _now: Instant,
        room_id: &str,
        event_id: &EventId,
        event: Object,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        let rules = self.rules_of(room_id).ok_or("left the room meanwhile")?;
        let pdu = Arc::new(Pdu::from_json(rules, event).map_err(|e| e.to_string())?);
        if pdu.event_id() != event_id {
            return Err("the invited server changed the event".into());
        }
        if pdu::verify(rules, &pdu, &self.keys).is_err() {
            return Err("the signed invite does not verify".into());
        }
        let outcome = self.decide(room_id, &pdu);
        if let Some(reason) = outcome.reason {
            return Err(format!("invite no longer allowed: {}: {reason}", outcome.decision));
        }
        assert_eq!(outcome.decision, Decision::Accepted);
        self.commit_created(room_id, &pdu, out);
        // Sent to the servers in the room only; the invitee's server has its copy from
        // `/invite` (and, not being in the room, would ignore it).
        self.fan_out(room_id, &pdu, &[], None);
        Ok(())
    }
}
