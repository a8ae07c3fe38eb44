//! Answering inbound federation requests.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use super::{GroupView, Homeserver, Incoming, forbidden, invalid, not_found};
use crate::homeserver::store::{Outcome, StateGroupId};
use crate::homeserver::types::{Decision, Observation, Output};
use crate::homeserver::verified::CheckedCopy;
use crate::homeserver::wire::{
    self, ErrCode, ErrorResponse, HttpRequest, HttpResponse, MakeMembership, Request, Response,
    SendJoin, Transaction,
};
use crate::matrix::auth::{self, AuthState, SignatureCheck};
use crate::matrix::canonical_json::Object;
use crate::matrix::ids::LookupMap;
use crate::matrix::linearized::Lpdu;
use crate::matrix::pdu::{self, Pdu};
use crate::matrix::{EventId, RoomVersion, ids};
use crate::stdx::Instant;

/// Most events one `backfill` or `get_missing_events` answer carries.
const HISTORY_EVENTS_MAX: u64 = 100;

/// How many [`StateAnswer`]s a server keeps.
const STATE_ANSWERS_MAX: usize = 8;

/// A state served by `/state_ids` or `/state`: the ids of its events and of their auth
/// chain, in the order they are sent.
#[derive(Debug)]
pub(super) struct StateAnswer {
    group: StateGroupId,
    events_version: u64,
    state: Vec<EventId>,
    auth_chain: Vec<EventId>,
}

impl Homeserver {
    /// Answers one inbound request.
    ///
    /// Longer than 100 lines on purpose: after decoding, it is one match with an arm per
    /// endpoint, so that what each endpoint does is read in one place.
    pub(super) fn serve(
        &mut self,
        now: Instant,
        origin: &str,
        http: &HttpRequest,
        out: &mut Vec<Output>,
    ) -> HttpResponse {
        // A transaction's PDUs that this process checked before are recognised by their
        // bytes and not parsed again: in a simulation every receiver but the first gets
        // exact copies of what the first one checked.
        // The scan of a body the receivers share is made once ([`wire::SendScans`]).
        let known = |bytes: &[u8]| self.verified.get_bytes(bytes);
        let scans = Some(self.verified.send_scans());
        let (request, checked) = match Request::from_http_scanning(http, scans, known) {
            Ok(decoded) => decoded,
            Err(error) => return error.to_response().to_http(),
        };
        if cfg!(debug_assertions) {
            same_as_parsed_whole(http, &request, &checked);
        }
        if let Request::SendTransaction { txn_id, .. } = &request {
            if let Some(cached) = self.transactions.get(origin, txn_id) {
                return cached.clone(); // Retries of a handled transaction get the same answer.
            }
        }
        if let Some(room_id) = request.room_id() {
            let acl_checked = !matches!(request, Request::SendTransaction { .. });
            if acl_checked
                && self.store.room(room_id).is_some()
                && !self.acl_allows(room_id, origin)
            {
                return forbidden("server ACL").to_http();
            }
        }
        let response = match request {
            Request::SendTransaction { txn_id, transaction } => {
                let response =
                    self.on_transaction(now, origin, transaction, checked, out).to_http();
                let max = self.config.transaction_cache_max;
                self.transactions.insert(origin, txn_id, response.clone(), max);
                return response;
            }
            Request::GetEvent { event_id } => self.serve_event(origin, &event_id),
            Request::GetStateIds { room_id, .. } | Request::GetState { room_id, .. }
                if self.store.room(&room_id).is_none() =>
            {
                not_found("unknown room")
            }
            Request::GetStateIds { room_id, event_id } => {
                self.serve_state(origin, &room_id, &event_id, true)
            }
            Request::GetState { room_id, event_id } => {
                self.serve_state(origin, &room_id, &event_id, false)
            }
            Request::GetEventAuth { room_id, event_id } => match self.store.event(&event_id) {
                Some(e) if e.pdu.is_in_room(&room_id) => {
                    let chain = self.auth_chain(std::slice::from_ref(&event_id));
                    Response::GetEventAuth {
                        auth_chain: chain.iter().map(|p| p.json().clone()).collect(),
                    }
                }
                _ => not_found("unknown event"),
            },
            Request::Backfill { room_id, v, limit } => {
                self.serve_backfill(origin, &room_id, &v, limit)
            }
            Request::GetMissingEvents {
                room_id,
                earliest_events,
                latest_events,
                limit,
                min_depth,
            } => self.serve_missing(
                origin,
                &room_id,
                &earliest_events,
                &latest_events,
                limit,
                min_depth,
            ),
            Request::MakeJoin { room_id, user_id, ver } => {
                self.serve_make(now, origin, &room_id, &user_id, &ver, "join")
            }
            Request::MakeKnock { room_id, user_id, ver } => {
                self.serve_make(now, origin, &room_id, &user_id, &ver, "knock")
            }
            Request::MakeLeave { room_id, user_id } => {
                let ver: Vec<String> =
                    RoomVersion::ALL.iter().map(|v| v.as_str().to_owned()).collect();
                self.serve_make(now, origin, &room_id, &user_id, &ver, "leave")
            }
            Request::SendJoin { room_id, event_id, pdu, .. } => {
                self.serve_send(now, origin, &room_id, &event_id, pdu, "join", out)
            }
            Request::SendLeave { room_id, event_id, pdu } => {
                self.serve_send(now, origin, &room_id, &event_id, pdu, "leave", out)
            }
            Request::SendKnock { room_id, event_id, pdu } => {
                self.serve_send(now, origin, &room_id, &event_id, pdu, "knock", out)
            }
            Request::Invite { room_id, event_id, room_version, event, invite_room_state } => self
                .serve_invite(
                    origin,
                    &room_id,
                    &event_id,
                    &room_version,
                    event,
                    invite_room_state,
                    out,
                ),
        };
        response.to_http()
    }

    fn on_transaction(
        &mut self,
        now: Instant,
        origin: &str,
        transaction: Transaction,
        checked: Vec<Option<CheckedCopy>>,
        out: &mut Vec<Output>,
    ) -> Response {
        let mut results = std::collections::BTreeMap::new();
        // The body's PDUs in order: those recognised by their bytes (`checked`), each under
        // the version of the room it names, and the others parsed into `transaction.pdus`.
        let of_copy = |copy: CheckedCopy| {
            let room = wire::pdu_room_id(copy.received.json());
            let version = room.and_then(|r| self.rules_of(r)).map(|rules| rules.version);
            Incoming::of_copy(copy, version)
        };
        let pdus = super::incoming::interleave(transaction.pdus, checked, of_copy, Incoming::Raw);
        for raw in pdus {
            let rules = wire::pdu_room_id(raw.json()).and_then(|r| self.rules_of(r));
            let id = rules.map(|rules| self.incoming_id(rules, &raw));
            // [impl] eigen-server: in a Linearized Matrix room, an event without
            // `auth_events` is an LPDU (the draft does not say how to tell them apart); its
            // result is keyed by the LPDU's id, the reference hash of the object as received.
            // Only a room whose version has LPDUs has a hub (`hub_of`), so other rooms' PDUs
            // skip the lookup and the copy of the room id.
            let lpdu_room = match rules {
                Some(rules) if rules.lpdus && !raw.json().contains_key("auth_events") => {
                    wire::pdu_room_id(raw.json())
                        .filter(|r| self.hub_of(r).is_some())
                        .map(str::to_owned)
                }
                _ => None,
            };
            let result = match lpdu_room {
                Some(room_id) => self.receive_lpdu(now, origin, &room_id, raw.into_json(), out),
                None => self.receive_pdu(now, origin, raw, out),
            };
            if let Some(id) = id {
                results.insert(id, result);
            }
        }
        Response::SendTransaction { pdus: results }
    }

    /// Whether `server` may see an event (spec: history visibility, applied to servers:
    /// visible if a user of the server could see it).
    fn visible_to(&self, server: &str, pdu: &Pdu) -> bool {
        let Some(stored) = self.store.event(pdu.event_id()) else { return false };
        let Some(group) = stored.state_before else { return true };
        let view = GroupView { store: &self.store, group };
        let visibility = view
            .get("m.room.history_visibility", "")
            .and_then(|e| {
                e.content().get("history_visibility").and_then(Value::as_str).map(str::to_owned)
            })
            .unwrap_or_else(|| "shared".to_owned());
        if visibility == "world_readable" {
            return true;
        }
        match visibility.as_str() {
            "invited" => self.has_member_at(group, server, &["join", "invite"]),
            "joined" => self.has_joined_member_at(group, server),
            // `shared`: members now or at the event.
            _ => {
                self.has_joined_member_at(group, server)
                    || self.has_joined_member(&pdu.room_id_or_derived(), server)
            }
        }
    }

    /// The wire form of an event for `server`: redacted if the server may not see it.
    fn event_for(&self, server: &str, pdu: &Pdu) -> Object {
        if self.visible_to(server, pdu) {
            return pdu.json().clone();
        }
        let rules = self.rules_of(&pdu.room_id_or_derived()).expect("room is known");
        crate::matrix::redaction::redact(rules.redaction, pdu.json())
    }

    fn serve_event(&self, origin: &str, event_id: &EventId) -> Response {
        let Some(event) = self.store.event(event_id) else { return not_found("unknown event") };
        Response::GetEvent(Transaction {
            origin: self.name.clone(),
            origin_server_ts: 0,
            pdus: vec![self.event_for(origin, &event.pdu)],
            edus: Vec::new(),
        })
    }

    /// Every event in the auth chains of `ids` (not the events themselves).
    pub(super) fn auth_chain(&self, ids: &[EventId]) -> Vec<Arc<Pdu>> {
        // Only asked whether an id was taken (the order is the walk's): a hash map, since
        // the state of a thousand-member room names each of its few shared auth events a
        // thousand times. The walk holds the ids the stored events hold, borrowed: copying
        // each shared id onto the stack touched its count, a cache miss per auth edge.
        let mut seen: LookupMap<&EventId, ()> = LookupMap::new();
        let mut stack: Vec<&EventId> = Vec::new();
        // The create event a v12 event implies, found once per room id rather than once per
        // event: the state of a thousand-member room asked it a thousand times. Only a
        // stored create event can be taken, so it stands on the stack as the stored id.
        let mut implied: Option<(&str, Option<&EventId>)> = None;
        for id in ids {
            if let Some(pdu) = self.store.pdu(id) {
                stack.extend(pdu.auth_events());
                let room_id = pdu.room_id().unwrap_or("");
                let create = match &implied {
                    _ if pdu.event_type() == "m.room.create" => None,
                    Some((room, create)) if *room == room_id => *create,
                    _ => {
                        let create = self
                            .implied_create(pdu)
                            .and_then(|create| self.store.pdu(&create))
                            .map(|create| create.event_id());
                        implied = Some((room_id, create));
                        create
                    }
                };
                stack.extend(create);
            }
        }
        let mut chain = Vec::new();
        while let Some(id) = stack.pop() {
            // Every id on the stack is held by a stored event, so it keys the taken set as it
            // is; an id the store lacks is marked too, and adds nothing to the chain.
            if seen.insert(id, ()).is_some() {
                continue;
            }
            if let Some(pdu) = self.store.pdu(id) {
                // An id already taken is skipped when popped: leaving it off the stack takes
                // the same events in the same order.
                stack.extend(pdu.auth_events().iter().filter(|a| !seen.contains_key(*a)));
                chain.push(Arc::clone(pdu));
            }
        }
        chain
    }

    /// v12: the create event a non-create event implies.
    fn implied_create(&self, pdu: &Pdu) -> Option<EventId> {
        let rules = self.rules_of(&pdu.room_id_or_derived())?;
        (rules.room_id_is_create_event_hash && pdu.event_type() != "m.room.create")
            .then(|| EventId::from_room_id(pdu.room_id()?))
            .flatten()
    }

    fn serve_state(
        &self,
        origin: &str,
        room_id: &str,
        event_id: &EventId,
        ids_only: bool,
    ) -> Response {
        let Some(event) = self.store.event(event_id) else { return not_found("unknown event") };
        if !event.pdu.is_in_room(room_id) {
            return not_found("event not in room");
        }
        let Some(group) = event.state_before else { return not_found("state unknown") };
        if self.joined_servers(room_id).is_empty() || !self.visible_to(origin, &event.pdu) {
            return forbidden("not allowed to see this state");
        }
        let answer = self.state_answer(room_id, group);
        if ids_only {
            Response::GetStateIds {
                pdu_ids: answer.state.clone(),
                auth_chain_ids: answer.auth_chain.clone(),
            }
        } else {
            let pdus = |ids: &[EventId]| {
                ids.iter()
                    .filter_map(|id| self.store.pdu(id))
                    .map(|p| Arc::clone(p.shared_json()))
                    .collect()
            };
            Response::GetState { pdus: pdus(&answer.state), auth_chain: pdus(&answer.auth_chain) }
        }
    }

    /// The state of `group` and its auth chain, as event ids, remembered for the last
    /// [`STATE_ANSWERS_MAX`] groups asked about while the room's events all have whole
    /// auth chains ([impl] Synapse keeps its `/state_ids` and `/state` answers for 30 s,
    /// `_state_ids_resp_cache` in synapse/federation/federation_server.py, as "they take a
    /// while and often come in waves"). At a thousand servers, servers missing the same
    /// prev event ask its sender one after another, and each answer walked the auth chain
    /// of a thousand-member state again: 5% of a run.
    ///
    /// The answer for a group cannot change while the room stays fully indexed: a group's
    /// state is fixed, and so is the auth chain of stored events whose auth events are all
    /// stored. It is kept with [`Store::events_version`] all the same, which a replaced or
    /// redacted event moves on.
    fn state_answer(&self, room_id: &str, group: StateGroupId) -> Arc<StateAnswer> {
        let version = self.store.events_version();
        let whole = self.store.room_fully_indexed(room_id);
        let fresh = || {
            let state: Vec<EventId> = self.store.state_ids(group);
            let auth_chain = self.auth_chain(&state).iter().map(|p| p.event_id().clone()).collect();
            StateAnswer { group, events_version: version, state, auth_chain }
        };
        if whole {
            let answers = self.state_answers.borrow();
            let found = answers.iter().find(|a| a.group == group && a.events_version == version);
            if let Some(answer) = found {
                if cfg!(debug_assertions) {
                    let again = fresh();
                    let same = answer.state == again.state && answer.auth_chain == again.auth_chain;
                    assert!(same, "{group:?}");
                }
                return Arc::clone(answer);
            }
        }
        let answer = Arc::new(fresh());
        if whole {
            let mut answers = self.state_answers.borrow_mut();
            if answers.len() == STATE_ANSWERS_MAX {
                answers.pop_front();
            }
            answers.push_back(Arc::clone(&answer));
        }
        answer
    }

    fn serve_backfill(&self, origin: &str, room_id: &str, v: &[EventId], limit: u64) -> Response {
        if self.store.room(room_id).is_none() {
            return not_found("unknown room");
        }
        let limit = limit.min(HISTORY_EVENTS_MAX);
        let events = self.walk_prev(v, &BTreeSet::new(), limit, i64::MIN, true);
        Response::Backfill(Transaction {
            origin: self.name.clone(),
            origin_server_ts: 0,
            pdus: events.iter().map(|p| self.event_for(origin, p)).collect(),
            edus: Vec::new(),
        })
    }

    fn serve_missing(
        &self,
        origin: &str,
        room_id: &str,
        earliest: &[EventId],
        latest: &[EventId],
        limit: u64,
        min_depth: i64,
    ) -> Response {
        if self.store.room(room_id).is_none() {
            return not_found("unknown room");
        }
        let earliest: BTreeSet<EventId> = earliest.iter().cloned().collect();
        let limit = limit.min(HISTORY_EVENTS_MAX);
        let mut events = self.walk_prev(latest, &earliest, limit, min_depth, false);
        events.sort_by(|a, b| a.depth().cmp(&b.depth()).then(a.event_id().cmp(b.event_id())));
        Response::GetMissingEvents {
            events: events.iter().map(|p| self.event_for(origin, p)).collect(),
        }
    }

    /// Breadth-first walk over `prev_events` from `start`; `include_start` for backfill.
    fn walk_prev(
        &self,
        start: &[EventId],
        stop: &BTreeSet<EventId>,
        limit: u64,
        min_depth: i64,
        include_start: bool,
    ) -> Vec<Arc<Pdu>> {
        // Every id enters the queue at most once (`queued`), so each event is visited once
        // however many children point at it.
        let mut queue: VecDeque<EventId> = VecDeque::new();
        let mut queued: BTreeSet<EventId> = BTreeSet::new();
        for id in start {
            if include_start {
                if queued.insert(id.clone()) {
                    queue.push_back(id.clone());
                }
            } else {
                queued.insert(id.clone());
            }
        }
        if !include_start {
            for id in start {
                let Some(pdu) = self.store.pdu(id) else { continue };
                for prev in pdu.prev_events() {
                    if queued.insert(prev.clone()) {
                        queue.push_back(prev.clone());
                    }
                }
            }
        }
        let mut out = Vec::new();
        while let Some(id) = queue.pop_front() {
            if out.len() as u64 >= limit {
                break;
            }
            if stop.contains(&id) {
                continue;
            }
            let Some(pdu) = self.store.pdu(&id) else { continue };
            if pdu.depth() < min_depth {
                continue;
            }
            out.push(Arc::clone(pdu));
            for prev in pdu.prev_events() {
                if queued.insert(prev.clone()) {
                    queue.push_back(prev.clone());
                }
            }
        }
        out
    }

    /// `make_join`, `make_knock`, `make_leave`: a template if the membership is allowed.
    fn serve_make(
        &self,
        now: Instant,
        origin: &str,
        room_id: &str,
        user: &str,
        ver: &[String],
        membership: &str,
    ) -> Response {
        let Some(room) = self.store.room(room_id) else { return not_found("unknown room") };
        if !self.is_resident(room_id) {
            return not_found("this server is not in the room");
        }
        if let Some(hub) = self.hub_of(room_id).filter(|hub| *hub != self.name) {
            // Draft "Membership": only the hub answers (400 M_WRONG_SERVER). [digest] A
            // DAG-capable server sends joiners to the hub too: a participant's join must be
            // an LPDU to the hub (docs/linearized.md).
            let code = ErrCode::Other("M_WRONG_SERVER".into());
            let text = format!("the room's hub is {hub}");
            return Response::Error(ErrorResponse::new(400, code, text));
        }
        if ids::user_server(user) != Some(origin) {
            return forbidden("the user is not on the requesting server");
        }
        let version = room.version;
        let supported: Vec<&str> = if ver.is_empty() {
            vec![wire::MAKE_JOIN_DEFAULT_VER]
        } else {
            ver.iter().map(String::as_str).collect()
        };
        if !supported.contains(&version.as_str()) {
            return Response::Error(ErrorResponse::incompatible_room_version(version.as_str()));
        }
        let content = crate::homeserver::types::membership_content(membership);
        // The template goes out without `hashes` and `signatures` (spec: "an unsigned
        // template event"; the joining server hashes and signs it), so it is not signed
        // here: the signature was made only to be dropped (1.2% of `big100`'s CPU time),
        // and the signed copy went through the verified events' checks, which it failed
        // for want of the joining server's signature.
        let built = self.event_json(now, room_id, user, "m.room.member", Some(user), content);
        let pdu = match built
            .and_then(|(rules, json)| pdu::build_unsigned(rules, json).map_err(|e| e.to_string()))
        {
            Ok(pdu) => pdu,
            Err(reason) => return forbidden(reason),
        };
        // The template must be allowed on the current state (spec: 403 otherwise).
        let current = self.store.room(room_id).and_then(|r| r.current_state).expect("checked");
        let view = GroupView { store: &self.store, group: current };
        if let Err(rejection) =
            auth::check_state_rules(version.rules(), &pdu, &view, SignatureCheck::AlreadyVerified)
        {
            return forbidden(rejection.to_string());
        }
        let mut template = pdu.into_json();
        template.remove("hashes");
        let membership =
            MakeMembership { room_version: Some(version.as_str().to_owned()), event: template };
        match membership_kind(membership.event.get("content")) {
            Some("knock") => Response::MakeKnock(membership),
            Some("leave") => Response::MakeLeave(membership),
            _ => Response::MakeJoin(membership),
        }
    }

    /// `send_join`, `send_leave`, `send_knock`.
    #[allow(clippy::too_many_arguments)]
    fn serve_send(
        &mut self,
        now: Instant,
        origin: &str,
        room_id: &str,
        event_id: &EventId,
        raw: Object,
        membership: &str,
        out: &mut Vec<Output>,
    ) -> Response {
        let Some(rules) = self.rules_of(room_id) else { return not_found("unknown room") };
        if !self.is_resident(room_id) {
            // Only a server in the room may accept a membership into it: a stale copy
            // would not know of a later ban.
            return not_found("this server is not in the room");
        }
        let hub = self.hub_of(room_id);
        if let Some(hub) = &hub {
            // [impl] eigen-server: an event without `auth_events` is an LPDU. A full PDU is a
            // DAG-capable server's membership, which the hub takes as a DAG server would.
            if !raw.contains_key("auth_events") || *hub != self.name {
                return self
                    .serve_send_lpdu(now, origin, room_id, event_id, raw, membership, hub, out);
            }
        }
        let pdu = match self.verify_received(rules, raw) {
            Ok(pdu) => pdu,
            Err(reason) => return invalid(reason),
        };
        if let Err(e) = wire::check_path_event_id(event_id, &pdu) {
            return e.to_response();
        }
        let sender_ok =
            ids::user_server(pdu.sender()) == Some(origin) && pdu.state_key() == Some(pdu.sender());
        if pdu.event_type() != "m.room.member"
            || membership_kind(Some(&Value::Object(pdu.content().clone()))) != Some(membership)
            || !sender_ok
        {
            return invalid(format!("not a {membership} event of a user of {origin}"));
        }
        self.process(now, room_id, Arc::clone(&pdu), origin, false, out);
        let accepted =
            self.store.event(pdu.event_id()).is_some_and(|e| e.decision == Decision::Accepted);
        if !accepted {
            return forbidden(format!("the {membership} is not allowed"));
        }
        // The resident sends the event on to the other servers of the room (a hub did when
        // it appended it to its list).
        if hub.is_none() {
            self.fan_out(room_id, &pdu, &[], Some(origin));
        }
        self.membership_answer(room_id, &pdu, membership)
    }

    /// The answer to an accepted `send_join`, `send_knock` or `send_leave` of `pdu`: for a
    /// join, the state before it, its auth chain and the event as stored here.
    fn membership_answer(&self, room_id: &str, pdu: &Pdu, membership: &str) -> Response {
        match membership {
            "join" => {
                let before = self
                    .store
                    .event(pdu.event_id())
                    .and_then(|e| e.state_before)
                    .expect("an accepted event has a state before it");
                let state: Vec<EventId> = self.store.state_ids(before);
                let mut chain_of: Vec<EventId> = state.clone();
                chain_of.push(pdu.event_id().clone());
                let chain = self.auth_chain(&chain_of);
                Response::SendJoin(SendJoin {
                    state: state
                        .iter()
                        .filter_map(|id| self.store.pdu(id))
                        .map(|p| Arc::clone(p.shared_json()))
                        .collect(),
                    auth_chain: chain.iter().map(|p| Arc::clone(p.shared_json())).collect(),
                    event: Some(pdu.json().clone()),
                    members_omitted: false,
                    servers_in_room: None,
                })
            }
            "knock" => Response::SendKnock { knock_room_state: self.invite_room_state(room_id) },
            _ => Response::SendLeave,
        }
    }

    /// `send_join` (and `send_leave`, `send_knock`) of a Linearized Matrix room, at the hub:
    /// the body is an LPDU, completed and appended as over `/send`; a join's answer carries
    /// the state before it, its auth chain and the completed event (draft "Membership";
    /// digest: spec/linearized-matrix.md §7.3).
    #[allow(clippy::too_many_arguments)]
    fn serve_send_lpdu(
        &mut self,
        now: Instant,
        origin: &str,
        room_id: &str,
        event_id: &EventId,
        raw: Object,
        membership: &str,
        hub: &str,
        out: &mut Vec<Output>,
    ) -> Response {
        if hub != self.name {
            let code = ErrCode::Other("M_WRONG_SERVER".into());
            return Response::Error(ErrorResponse::new(
                400,
                code,
                format!("the room's hub is {hub}"),
            ));
        }
        let rules = self.rules_of(room_id).expect("checked by the caller");
        let lpdu = match Lpdu::from_json(rules, raw.clone()) {
            Ok(lpdu) => lpdu,
            Err(e) => return invalid(format!("bad LPDU: {e}")),
        };
        if lpdu.id() != event_id {
            return invalid("the path's event id is not the LPDU's id");
        }
        let partial = lpdu.partial();
        let sender_ok = ids::user_server(partial.sender()) == Some(origin)
            && partial.state_key() == Some(partial.sender());
        if partial.event_type() != "m.room.member"
            || membership_kind(Some(&Value::Object(partial.content().clone()))) != Some(membership)
            || !sender_ok
        {
            return invalid(format!("not a {membership} LPDU of a user of {origin}"));
        }
        if let Err(reason) = self.receive_lpdu(now, origin, room_id, raw, out) {
            return forbidden(reason);
        }
        let Some(pdu) = self.store.lpdu_event(lpdu.id()).and_then(|id| self.store.pdu(id)) else {
            return invalid("the LPDU was dropped");
        };
        self.membership_answer(room_id, pdu, membership)
    }

    /// `/invite`: checks and counter-signs an invite for a local user, and remembers it.
    #[allow(clippy::too_many_arguments)]
    fn serve_invite(
        &mut self,
        origin: &str,
        room_id: &str,
        event_id: &EventId,
        room_version: &str,
        raw: Object,
        invite_room_state: Vec<Object>,
        out: &mut Vec<Output>,
    ) -> Response {
        let version = RoomVersion::parse_any(room_version)
            .ok()
            .filter(|v| self.config.linearized || !v.rules().lpdus);
        let Some(version) = version else {
            return Response::Error(ErrorResponse::incompatible_room_version(room_version));
        };
        let rules = version.rules();
        let pdu = match wire::parse_pdu(rules, raw) {
            Ok(pdu) => pdu,
            Err(e) => return invalid(e.to_string()),
        };
        if let Err(e) = wire::check_path_event_id(event_id, &pdu) {
            return e.to_response();
        }
        match pdu::verify(rules, &pdu, &self.keys) {
            Ok(pdu::Verified::Intact) => {}
            _ => return invalid("invite signature or hash check failed"),
        }
        let target = pdu.state_key().unwrap_or("");
        let is_invite = pdu.event_type() == "m.room.member"
            && membership_kind(Some(&Value::Object(pdu.content().clone()))) == Some("invite");
        if !is_invite
            || ids::user_server(pdu.sender()) != Some(origin)
            || !self.is_local_user(target)
        {
            return invalid("not an invite from the origin for a user of this server");
        }
        if !pdu.is_in_room(room_id) {
            return invalid("room id mismatch");
        }
        // The stripped state must carry the room's create event (spec v1.16).
        let has_create = invite_room_state
            .iter()
            .any(|raw| raw.get("type").and_then(Value::as_str) == Some("m.room.create"));
        if !has_create {
            return invalid("invite_room_state lacks the create event");
        }
        let mut signed = pdu.json().clone();
        pdu::add_signature(rules, &mut signed, &self.name, &self.key);
        let Ok(signed_pdu) = Pdu::from_json(rules, signed.clone()) else {
            return invalid("cannot sign");
        };
        if self.store.room(room_id).is_none() {
            self.store.add_room(room_id, version);
        }
        let signed_pdu = Arc::new(signed_pdu);
        if !self.store.contains(signed_pdu.event_id()) {
            self.store_event(room_id, &signed_pdu, &Outcome::outlier(), None);
        }
        self.store.add_invite(room_id, target, signed_pdu.event_id().clone());
        out.push(Output::Observed(Observation::Invited {
            room_id: room_id.to_owned(),
            user: target.to_owned(),
            event_id: signed_pdu.event_id().clone(),
        }));
        Response::Invite { event: signed }
    }
}

fn membership_kind(content: Option<&Value>) -> Option<&str> {
    content?.get("membership")?.as_str()
}

/// Debug builds: a request decoded with some PDUs recognised by their bytes is the request
/// the whole body decodes to, each recognised PDU being the JSON of the copy it was
/// recognised as.
fn same_as_parsed_whole(http: &HttpRequest, request: &Request, checked: &[Option<CheckedCopy>]) {
    let whole = Request::from_http(http).expect("what decodes in part decodes whole");
    let Request::SendTransaction { txn_id, transaction } = request else {
        assert_eq!(&whole, request, "only /send bodies are decoded in part");
        return;
    };
    let pdus = super::incoming::sent_json(&transaction.pdus, checked);
    let merged = Request::SendTransaction {
        txn_id: txn_id.clone(),
        transaction: Transaction { pdus, ..transaction.clone() },
    };
    assert_eq!(whole, merged, "PDUs recognised by their bytes are the PDUs of the body");
}
