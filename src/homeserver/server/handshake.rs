//! The joining side of the membership handshakes (join, leave, knock) and remote invites.

use std::sync::Arc;

use serde_json::Value;

use super::{Homeserver, Pending};
use crate::homeserver::store::{Outcome, StateMap};
use crate::homeserver::types::{Decision, Observation, Output};
use crate::homeserver::wire::{MakeMembership, Request, Response};
use crate::matrix::canonical_json::Object;
use crate::matrix::pdu::{self, Pdu};
use crate::matrix::{EventId, RoomVersion};
use crate::stdx::Instant;

fn failed(out: &mut Vec<Output>, action: &str, reason: impl Into<String>) {
    out.push(Output::Observed(Observation::ActionFailed {
        action: action.to_owned(),
        reason: reason.into(),
    }));
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
    ) -> Result<(RoomVersion, Arc<Pdu>), String> {
        let version = template.room_version.as_deref().ok_or("template without room_version")?;
        let version = RoomVersion::parse(version).map_err(|e| e.to_string())?;
        let rules = version.rules();
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
        let pdu =
            pdu::build_signed(rules, json, &self.name, &self.key).map_err(|e| e.to_string())?;
        Ok((version, Arc::new(pdu)))
    }

    pub(super) fn on_make_join(
        &mut self,
        now: Instant,
        user: String,
        room_id: String,
        mut via: Vec<String>,
        response: Option<Response>,
        out: &mut Vec<Output>,
    ) {
        let template = match response {
            Some(Response::MakeJoin(template)) => template,
            other => {
                // Try the next resident, if any (spec: may try another server).
                via.remove(0);
                if let Some(next) = via.first().cloned() {
                    let request = Request::MakeJoin {
                        room_id: room_id.clone(),
                        user_id: user.clone(),
                        ver: RoomVersion::ALL.iter().map(|v| v.as_str().to_owned()).collect(),
                    };
                    self.send(now, &next, request, Pending::MakeJoin { user, room_id, via }, out);
                } else {
                    failed(out, "join", format!("make_join failed: {other:?}"));
                }
                return;
            }
        };
        match self.sign_template(now, &template, &room_id, &user, "join") {
            Ok((version, own)) => {
                let request = Request::SendJoin {
                    room_id: room_id.clone(),
                    event_id: own.event_id().clone(),
                    omit_members: false,
                    pdu: own.json().clone(),
                };
                let resident = via[0].clone();
                self.send(
                    now,
                    &resident,
                    request,
                    Pending::SendJoin { user, room_id, version, own },
                    out,
                );
            }
            Err(reason) => failed(out, "join", reason),
        }
    }

    /// Stores the room state from a `send_join` answer and the join itself (spec digest
    /// §5 step 6).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_send_join(
        &mut self,
        _now: Instant,
        user: &str,
        room_id: &str,
        version: RoomVersion,
        own: Arc<Pdu>,
        response: Option<Response>,
        out: &mut Vec<Output>,
    ) {
        let Some(Response::SendJoin(answer)) = response else {
            failed(out, "join", format!("send_join to {room_id} failed"));
            return;
        };
        let rules = version.rules();
        let fresh = self.store.room(room_id).is_none_or(|r| r.current_state.is_none());
        self.store.add_room(room_id, version);
        let mut bundle = answer.auth_chain;
        bundle.extend(answer.state.iter().cloned());
        self.store_outliers(room_id, bundle, out);
        // The state before the join, from the answer's state events we could verify.
        let mut state = StateMap::new();
        for raw in &answer.state {
            let id = pdu::event_id(rules, raw);
            let Some(event) = self.store.event(&id) else { continue };
            if event.outcome.is_rejected() {
                continue;
            }
            if let Some(key) = event.pdu.state_key() {
                state.insert((event.pdu.event_type().to_owned(), key.to_owned()), id);
            }
        }
        // The room's create event must be the one the room id names (v12) or be in state.
        let create_key = ("m.room.create".to_owned(), String::new());
        let create_ok = match state.get(&create_key) {
            Some(create) if rules.room_id_is_create_event_hash => create.to_room_id() == room_id,
            Some(_) => true,
            None => false,
        };
        if !create_ok {
            failed(out, "join", "send_join answer without the room's create event");
            return;
        }
        // Prefer the resident's copy of the join: it may carry more signatures.
        let join = answer
            .event
            .and_then(|raw| self.verify_received(rules, raw).ok())
            .filter(|pdu| pdu.event_id() == own.event_id())
            .unwrap_or(own);
        let before = self.store.store_state(&state, None);
        let outcome = self.check_own_auth(room_id, &join);
        let outcome = match outcome {
            Outcome::Outlier => Outcome::Accepted,
            rejected => rejected,
        };
        if outcome != Outcome::Accepted {
            failed(out, "join", format!("the join is not allowed: {outcome:?}"));
            return;
        }
        if !self.store.contains(join.event_id()) {
            self.store_event(room_id, &join, Outcome::Accepted, Some(before));
        }
        let after = self.store.event(join.event_id()).and_then(|e| e.state_after);
        let room = self.store.room_mut(room_id);
        if fresh {
            room.forward_extremities.clear();
        }
        room.forward_extremities.insert(join.event_id().clone());
        room.current_state = after;
        self.store.remove_invite(room_id, user);
        out.push(Output::Observed(Observation::RoomJoined {
            room_id: room_id.to_owned(),
            version,
        }));
        out.push(Output::Observed(Observation::Event {
            room_id: room_id.to_owned(),
            event_id: Some(join.event_id().clone()),
            decision: Decision::Created,
        }));
        if let Some(group) = after {
            out.push(Output::Observed(Observation::StateChanged {
                room_id: room_id.to_owned(),
                state_hash: self.state_hash(group),
            }));
        }
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
        let target_server =
            crate::matrix::ids::user_server(pdu.state_key().unwrap_or("")).unwrap_or("").to_owned();
        if pdu::verify(rules, &pdu, &self.keys).is_err() {
            return Err("the signed invite does not verify".into());
        }
        let decision = self.decide(room_id, &pdu);
        if decision != Decision::Accepted {
            return Err(format!("invite no longer allowed: {decision:?}"));
        }
        self.commit(room_id, &pdu, Decision::Accepted, out);
        out.push(Output::Observed(Observation::Event {
            room_id: room_id.to_owned(),
            event_id: Some(pdu.event_id().clone()),
            decision: Decision::Created,
        }));
        self.fan_out(room_id, &pdu, &[target_server], None);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_make_membership(
        &mut self,
        now: Instant,
        user: String,
        room_id: String,
        via: Vec<String>,
        membership: &'static str,
        response: Option<Response>,
        out: &mut Vec<Output>,
    ) {
        let template = match response {
            Some(Response::MakeLeave(t)) if membership == "leave" => t,
            Some(Response::MakeKnock(t)) if membership == "knock" => t,
            other => {
                failed(out, membership, format!("make_{membership} failed: {other:?}"));
                return;
            }
        };
        match self.sign_template(now, &template, &room_id, &user, membership) {
            Ok((version, pdu)) => {
                let event_id = pdu.event_id().clone();
                let request = match membership {
                    "leave" => Request::SendLeave {
                        room_id: room_id.clone(),
                        event_id,
                        pdu: pdu.json().clone(),
                    },
                    _ => Request::SendKnock {
                        room_id: room_id.clone(),
                        event_id,
                        pdu: pdu.json().clone(),
                    },
                };
                if self.store.room(&room_id).is_none() {
                    self.store.add_room(&room_id, version);
                }
                if membership == "leave" {
                    self.store.remove_invite(&room_id, &user);
                }
                self.send(
                    now,
                    &via[0],
                    request,
                    Pending::SendMembership { room_id, membership },
                    out,
                );
            }
            Err(reason) => failed(out, membership, reason),
        }
    }
}
