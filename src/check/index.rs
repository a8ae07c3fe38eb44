//! One pass over a trace that every invariant reads: rooms and their versions, every PDU
//! copy (parsed once), every receipt decision, the final views, and what each server holds
//! at the end with crashes applied.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use crate::matrix::canonical_json::Object;
use crate::matrix::crypto::{KeyRing, VerifyKey};
use crate::matrix::dag::RejectionKind;
use crate::matrix::ids::LookupMap;
use crate::matrix::pdu::Pdu;
use crate::matrix::redaction;
use crate::matrix::room_version::{RoomVersion, RoomVersionRules};
use crate::trace::{
    Body, Decision, FinalView, NestedState, NodeChange, Record, Trace, WaitingEvent,
};

/// What the invariants read, borrowed from the trace.
pub(super) struct Index<'t> {
    pub trace: &'t Trace,
    /// The header's keys; keys that are not valid base64 ed25519 keys are left out and
    /// described in `key_problems`.
    pub ring: KeyRing,
    pub key_problems: Vec<String>,
    pub rooms: BTreeMap<&'t str, Room<'t>>,
    /// By the event id the records claim. Looked up once or more per receipt by every
    /// invariant, so a hash map ([`LookupMap`]); walked only sorted by id.
    pub events: LookupMap<&'t str, Event<'t>>,
    /// Every `event` record that names an event id, in trace order.
    pub receipts: Vec<Receipt<'t>>,
    /// `event` records with a stored decision but no event id: (line, server, room).
    pub stored_without_id: Vec<(u64, &'t str, &'t str)>,
    /// The last `final` record of each (server, room), in trace order.
    pub finals: Vec<Final<'t>>,
    /// Server → event id → its latest stored decision there, with every crash applied
    /// (after a `recovered` record only the recovered events remain). Servers by hash:
    /// each receipt looks its server up, a million at a thousand servers; events by hash
    /// too, for each receipt notes one (sorted maps compared ids byte by byte, 1.9% of a
    /// `big1000` run).
    pub held: LookupMap<&'t str, LookupMap<&'t str, Decision>>,
    /// Server → event id → line of its first `redacted` record: from then on that server
    /// reads the event's redacted form. Redactions of `m.room.create` events are left out:
    /// they are never applied.
    pub redacted_at: BTreeMap<&'t str, BTreeMap<&'t str, u64>>,
    /// Servers paused at the end of the trace (a `pause` without a later `resume`, crash
    /// or restart).
    pub paused_at_end: BTreeSet<&'t str>,
    /// The redacted form of every event some server redacted (under its claimed id).
    pub redacted_pdus: BTreeMap<&'t str, Arc<Pdu>>,
    /// The events the room refused ([`Index::refused_by_room`]), computed once from `held`.
    refused: BTreeSet<&'t str>,
}

pub(super) struct Room<'t> {
    /// `None` when no `joined` record or create event names a supported version.
    pub rules: Option<&'static RoomVersionRules>,
    /// Why `rules` is `None`, or a conflict between `joined` records.
    pub version_problem: Option<String>,
    /// Server → line of its last `joined` record for the room. Only looked up (the
    /// liveness check asks once per event and server), so by hash, as `left`.
    pub joined: LookupMap<&'t str, u64>,
    /// Server → line of its last `left` record for the room.
    pub left: LookupMap<&'t str, u64>,
}

impl Room<'_> {
    /// Whether `server` was joined at trace line `line` and stayed joined from then on:
    /// its last `joined` record comes before `line` and no `left` record follows it.
    pub fn joined_since_before(&self, server: &str, line: u64) -> bool {
        let Some(&joined) = self.joined.get(server) else { return false };
        joined < line && self.left.get(server).is_none_or(|&left| left < joined)
    }
}

/// One distinct copy of a PDU found in the trace.
pub(super) struct Copy<'t> {
    pub json: &'t Object,
    /// The parsed PDU under the claimed event id, or why this copy is not a well-formed
    /// PDU of the room's version.
    pub parsed: Result<Arc<Pdu>, String>,
    /// For a well-formed copy: why it is still not the event the records claim (its
    /// reference hash is another id, or it belongs to another room). `integrity` reports
    /// it; the other invariants use the PDU under the claimed id, so that a forged id still
    /// shows up in the DAG it claims to be part of.
    pub problem: Option<String>,
}

pub(super) struct Event<'t> {
    /// The room of the first record naming the event.
    pub room: &'t str,
    pub copies: Vec<Copy<'t>>,
    /// The first copy that parsed without a problem, else the first that parsed: the PDU
    /// the DAG, auth and state computations use.
    pub canonical: Option<usize>,
    /// The receipt index of its first `created` record.
    pub created: Option<usize>,
    /// The first record naming the event.
    pub first_line: u64,
    /// The first rejection any server recorded (servers must agree; see `auth`).
    pub rejection: Option<RejectionKind>,
}

impl Event<'_> {
    pub fn pdu(&self) -> Option<&Arc<Pdu>> {
        self.canonical.and_then(|i| self.copies.get(i)).and_then(|c| c.parsed.as_ref().ok())
    }
}

/// An `event` record with an event id.
pub(super) struct Receipt<'t> {
    pub line: u64,
    pub t: u64,
    pub server: &'t str,
    pub room: &'t str,
    pub event_id: &'t str,
    pub decision: Decision,
    pub reason: Option<&'t str>,
    /// The copy the server stored: the record's own `pdu`, else the event's first copy.
    pub copy: Option<usize>,
}

pub(super) struct Final<'t> {
    pub line: u64,
    pub server: &'t str,
    pub room: &'t str,
    pub joined: bool,
    pub state: &'t NestedState,
    pub state_hash: &'t str,
    /// Received events still undecided at the end.
    pub waiting: &'t [WaitingEvent],
}

/// Whether a decision counts as "accepted" for the auth invariant (the event may shape
/// state: created, accepted or soft-failed; outliers and drops are neither).
pub(super) fn is_accepting(decision: Decision) -> bool {
    matches!(decision, Decision::Created | Decision::Accepted | Decision::SoftFailed)
}

impl<'t> Index<'t> {
    /// Whether the room refused an event: at least one server other than its origin holds
    /// it in its timeline, and every such server holds it as rejected or soft-failed
    /// (outliers take no side). Such an event never becomes a forward extremity anywhere
    /// but at its origin, so no server passes it on and nothing ever leads another server
    /// to it: as Synapse, which sends a server only its own events
    /// (`FederationSender.handle_event`) and fills gaps only from a later event's
    /// `prev_events`, the room owes it to nobody. [impl] a reading of DESIGN.md §5's
    /// "every event accepted at its origin reaches every joined server": accepted by the
    /// origin but refused by the room, it is not owed (docs/conformance.md).
    pub fn refused_by_room(&self, event_id: &str) -> bool {
        self.refused.contains(event_id)
    }

    /// The events some server holds refused, then of those the ones no server holds
    /// accepted: a pass over what every server holds and a lookup per refused event and
    /// server (not a set of every accepted event, ten million insertions at a thousand
    /// servers). The origin holds its event as `created`, so it takes no side.
    fn refused_events(&self) -> BTreeSet<&'t str> {
        let mut refused: BTreeSet<&'t str> = BTreeSet::new();
        let servers = self.held.sorted();
        for (_, held) in &servers {
            let refusing = |_: &&str, decision: &Decision| {
                decision.is_rejected() || *decision == Decision::SoftFailed
            };
            held.insert_keys_where(&mut refused, refusing);
        }
        for (_, held) in &servers {
            if refused.is_empty() {
                break;
            }
            refused.retain(|id| held.get(id) != Some(&Decision::Accepted));
        }
        refused
    }

    pub fn build(trace: &'t Trace) -> Index<'t> {
        let (ring, key_problems) = key_ring(trace);
        let mut index = Index {
            trace,
            ring,
            key_problems,
            rooms: BTreeMap::new(),
            events: LookupMap::new(),
            receipts: Vec::new(),
            stored_without_id: Vec::new(),
            finals: Vec::new(),
            held: LookupMap::new(),
            redacted_at: BTreeMap::new(),
            redacted_pdus: BTreeMap::new(),
            refused: BTreeSet::new(),
            paused_at_end: BTreeSet::new(),
        };
        let mut redacted_records: Vec<(&'t str, &'t str, u64)> = Vec::new();
        // Copies whose record room is kept for the parse below: (event id, copy, room).
        let mut copy_rooms: Vec<(&'t str, usize, &'t str)> = Vec::new();
        let mut finals: BTreeMap<(&'t str, &'t str), Final<'t>> = BTreeMap::new();
        // One receipt per `event` record with an id: room for all of them at once, since a
        // list that doubled as it grew copied itself over and over (0.6% of a 1,000-server
        // run's samples, where the receipts are a million).
        let events = trace
            .records
            .iter()
            .filter(|r| matches!(r.body, Body::Event { event_id: Some(_), .. }));
        let events = events.count();
        index.receipts.reserve_exact(events);
        for (i, record) in trace.records.iter().enumerate() {
            let line = trace.line_of(i);
            match &record.body {
                Body::Joined { server, room, version } => {
                    index.note_joined(server, room, version, line);
                }
                Body::Event { .. } => index.note_event(record, line, &mut copy_rooms),
                Body::Recovered { server, event_ids } => {
                    let kept: BTreeSet<&str> = event_ids.iter().map(String::as_str).collect();
                    index
                        .held
                        .get_or_insert_with(server, LookupMap::new)
                        .retain(|id, _| kept.contains(id));
                }
                Body::Final(view) => {
                    let FinalView { server, room, joined, state, state_hash, waiting, .. } =
                        &**view;
                    index.room(room);
                    let joined = *joined;
                    let f = Final { line, server, room, joined, state, state_hash, waiting };
                    finals.insert((server, room), f);
                }
                Body::Left { server, room } => {
                    index.room(room).left.insert(server, line);
                }
                Body::Redacted { server, event_id, .. } => {
                    redacted_records.push((server, event_id, line));
                }
                Body::Node { server, change: NodeChange::Pause } => {
                    index.paused_at_end.insert(server);
                }
                Body::Node { server, .. } => {
                    index.paused_at_end.remove(server.as_str());
                }
                _ => {}
            }
        }
        // A receipt without its own copy stored the first copy recorded for the id.
        for receipt in &mut index.receipts {
            if receipt.copy.is_none()
                && index.events.get(receipt.event_id).is_some_and(|e| !e.copies.is_empty())
            {
                receipt.copy = Some(0);
            }
        }
        index.versions_from_create_events();
        index.parse_copies(copy_rooms);
        index.redactions(redacted_records);
        index.refused = index.refused_events();
        let mut finals: Vec<Final<'t>> = finals.into_values().collect();
        finals.sort_by_key(|f| f.line);
        index.finals = finals;
        index
    }

    /// A `joined` record: the server's join, and the room version it names (which every
    /// `joined` record of the room must agree on).
    fn note_joined(&mut self, server: &'t str, room: &'t str, version: &str, line: u64) {
        let entry = self.room(room);
        entry.joined.insert(server, line);
        match RoomVersion::parse_any(version) {
            Ok(parsed) => match entry.rules {
                None => entry.rules = Some(parsed.rules()),
                Some(rules) if *rules != *parsed.rules() => {
                    entry.version_problem = Some(format!(
                        "joined records disagree on the room version (line {line}: {version:?})"
                    ));
                }
                Some(_) => {}
            },
            Err(_) => {
                entry.version_problem =
                    Some(format!("unsupported room version {version:?} (line {line})"));
            }
        }
    }

    /// An `event` record: the event and its copy, the server's receipt, what it holds.
    fn note_event(
        &mut self,
        record: &'t Record,
        line: u64,
        copy_rooms: &mut Vec<(&'t str, usize, &'t str)>,
    ) {
        let Body::Event { server, room, event_id, decision, reason, pdu } = &record.body else {
            return;
        };
        self.room(room);
        let Some(event_id) = event_id else {
            if decision.is_stored() {
                self.stored_without_id.push((line, server, room));
            }
            return;
        };
        let event = self.events.get_or_insert_with(event_id, || Event {
            room,
            copies: Vec::new(),
            canonical: None,
            created: None,
            first_line: line,
            rejection: None,
        });
        let own_copy =
            pdu.as_deref().map(|json| match event.copies.iter().position(|c| same(c.json, json)) {
                Some(at) => at,
                None => {
                    event.copies.push(Copy {
                        json,
                        parsed: Err("not parsed".into()),
                        problem: None,
                    });
                    copy_rooms.push((event_id, event.copies.len() - 1, room));
                    event.copies.len() - 1
                }
            });
        if *decision == Decision::Created && event.created.is_none() {
            event.created = Some(self.receipts.len());
        }
        if event.rejection.is_none() {
            event.rejection = match decision {
                Decision::RejectedAuthEvents => Some(RejectionKind::AuthEvents),
                Decision::RejectedStateBefore => Some(RejectionKind::StateBefore),
                _ => None,
            };
        }
        if decision.is_stored() {
            self.held.get_or_insert_with(server, LookupMap::new).insert(event_id, *decision);
        }
        self.receipts.push(Receipt {
            line,
            t: record.t,
            server,
            room,
            event_id,
            decision: *decision,
            reason: reason.as_deref(),
            copy: own_copy,
        });
    }

    /// Parses every distinct copy under its room's version, and picks each event's
    /// canonical copy: the first that parses without a problem, else the first that parses.
    fn parse_copies(&mut self, copy_rooms: Vec<(&'t str, usize, &'t str)>) {
        for (event_id, at, room) in copy_rooms {
            let rules = self.rooms.get(room).and_then(|r| r.rules);
            let problem = self.rooms.get(room).and_then(|r| r.version_problem.clone());
            let Some(event) = self.events.get_mut(event_id) else { continue };
            let Some(copy) = event.copies.get_mut(at) else { continue };
            let parsed = match rules {
                Some(rules) => parse_copy(rules, event_id, room, copy.json),
                None => Err(format!(
                    "room {room} has no known room version ({})",
                    problem.as_deref().unwrap_or("no joined record or create event names one")
                )),
            };
            (copy.parsed, copy.problem) = match parsed {
                Ok((pdu, problem)) => (Ok(pdu), problem),
                Err(problem) => (Err(problem), None),
            };
        }
        // Each event's canonical copy depends on its copies alone.
        self.events.update_each(|_, event| {
            let parsed = |c: &Copy<'_>| c.parsed.is_ok();
            let clean = |c: &Copy<'_>| c.parsed.is_ok() && c.problem.is_none();
            event.canonical = event
                .copies
                .iter()
                .position(clean)
                .or_else(|| event.copies.iter().position(parsed));
        });
    }

    fn room(&mut self, room: &'t str) -> &mut Room<'t> {
        self.rooms.entry(room).or_insert_with(|| Room {
            rules: None,
            version_problem: None,
            joined: LookupMap::new(),
            left: LookupMap::new(),
        })
    }

    /// Fills `redacted_at` and `redacted_pdus` from the `redacted` records. Redactions of
    /// the create event are ignored, as Synapse ignores them when it reads an event
    /// (`EventsWorkerStore._maybe_redact_event_row`).
    fn redactions(&mut self, records: Vec<(&'t str, &'t str, u64)>) {
        for (server, event_id, line) in records {
            let Some(event) = self.events.get(event_id) else { continue };
            let Some(pdu) = event.pdu() else { continue };
            if pdu.event_type() == "m.room.create" {
                continue;
            }
            let Some(rules) = self.rules(event.room) else { continue };
            if !self.redacted_pdus.contains_key(event_id) {
                let json = redaction::redact(rules.redaction, pdu.json());
                let Ok(redacted) = Pdu::with_given_id(rules, with_id(json, event_id)) else {
                    continue;
                };
                self.redacted_pdus.insert(event_id, Arc::new(redacted));
            }
            self.redacted_at.entry(server).or_default().entry(event_id).or_insert(line);
        }
    }

    /// The form of `event_id` that `server` read at trace line `line`: redacted if it had
    /// applied a redaction to it before that line, else the canonical copy.
    pub fn pdu_seen_by(&self, server: &str, event_id: &str, line: u64) -> Option<&Arc<Pdu>> {
        let redacted_before =
            self.redacted_at.get(server).and_then(|r| r.get(event_id)).is_some_and(|&at| at < line);
        match redacted_before {
            true => self.redacted_pdus.get(event_id),
            false => self.pdu(event_id),
        }
    }

    /// Whether `server` had applied any redaction in the trace before line `line`.
    pub fn redacted_any_before(&self, server: &str, line: u64) -> bool {
        self.redacted_at.get(server).is_some_and(|r| r.values().any(|&at| at < line))
    }

    /// Rooms no `joined` record names a version for take it from their create event's
    /// `content.room_version` (default "1", which mxsim does not support).
    fn versions_from_create_events(&mut self) {
        let mut found: Vec<(&'t str, Result<&'static RoomVersionRules, String>)> = Vec::new();
        for (_, event) in self.events.sorted() {
            let Some(room) = self.rooms.get(event.room) else { continue };
            if room.rules.is_some() || room.version_problem.is_some() {
                continue;
            }
            for copy in &event.copies {
                let json = copy.json;
                let is_create = json.get("type").and_then(Value::as_str) == Some("m.room.create")
                    && json.get("state_key").and_then(Value::as_str) == Some("");
                if !is_create {
                    continue;
                }
                let version = json
                    .get("content")
                    .and_then(|c| c.get("room_version"))
                    .and_then(Value::as_str)
                    .unwrap_or("1");
                let rules = RoomVersion::parse_any(version)
                    .map(RoomVersion::rules)
                    .map_err(|_| format!("the create event names unsupported version {version:?}"));
                found.push((event.room, rules));
                break;
            }
        }
        for (room, rules) in found {
            let Some(entry) = self.rooms.get_mut(room) else { continue };
            if entry.rules.is_some() || entry.version_problem.is_some() {
                continue;
            }
            match rules {
                Ok(rules) => entry.rules = Some(rules),
                Err(problem) => entry.version_problem = Some(problem),
            }
        }
    }

    /// The PDU a receipt stored, if that copy parsed.
    pub fn stored_pdu(&self, receipt: &Receipt<'_>) -> Option<&Arc<Pdu>> {
        let event = self.events.get(receipt.event_id)?;
        event.copies.get(receipt.copy?)?.parsed.as_ref().ok()
    }

    /// The canonical PDU of an event id.
    pub fn pdu(&self, event_id: &str) -> Option<&Arc<Pdu>> {
        self.events.get(event_id).and_then(Event::pdu)
    }

    pub fn rules(&self, room: &str) -> Option<&'static RoomVersionRules> {
        self.rooms.get(room).and_then(|r| r.rules)
    }
}

/// Whether two recorded copies are the same JSON: records of one run share the value of
/// one stored body, so most are the same value.
fn same(a: &Object, b: &Object) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// `json` with `event_id` set (a redacted copy keeps its reference hash, hence its id).
fn with_id(mut json: Object, event_id: &str) -> Object {
    json.insert("event_id".into(), Value::String(event_id.to_owned()));
    json
}

/// Parses one copy under the claimed id, and says whether the PDU really is that event in
/// the recorded room.
fn parse_copy(
    rules: &RoomVersionRules,
    event_id: &str,
    room: &str,
    json: &Object,
) -> Result<(Arc<Pdu>, Option<String>), String> {
    let pdu = Pdu::from_json(rules, json.clone()).map_err(|e| format!("bad format: {e}"))?;
    let mut problems = Vec::new();
    let pdu_room = pdu.room_id_or_derived();
    if pdu_room != room {
        problems.push(format!("the PDU is in room {pdu_room}, recorded in room {room}"));
    }
    if pdu.event_id().as_str() == event_id {
        return Ok((Arc::new(pdu), problems.pop()));
    }
    problems.insert(
        0,
        format!("event id {event_id} is not the reference hash of its PDU ({})", pdu.event_id()),
    );
    let mut with_id = json.clone();
    with_id.insert("event_id".into(), Value::String(event_id.to_owned()));
    let pdu = Pdu::with_given_id(rules, with_id).map_err(|e| format!("bad format: {e}"))?;
    Ok((Arc::new(pdu), Some(problems.join("; "))))
}

fn key_ring(trace: &Trace) -> (KeyRing, Vec<String>) {
    let mut ring = KeyRing::new();
    let mut problems = Vec::new();
    for (server, keys) in &trace.header.keys {
        for (key_id, key) in keys {
            match VerifyKey::from_base64(key) {
                Some(key) => {
                    ring.entry(server.clone()).or_default().insert(key_id.clone(), key);
                }
                None => {
                    problems.push(format!("header key {key_id} of {server} is not an ed25519 key"))
                }
            }
        }
    }
    (ring, problems)
}

/// The servers a record names (for witnesses).
pub(super) fn record_servers(body: &Body) -> Vec<&str> {
    match body {
        Body::Node { server, .. }
        | Body::Recovered { server, .. }
        | Body::DropDown { server, .. }
        | Body::Joined { server, .. }
        | Body::Left { server, .. }
        | Body::Upgraded { server, .. }
        | Body::PeerDown { server, .. }
        | Body::PeerUp { server, .. } => vec![server.as_str()],
        Body::ActionFailed(failure) => vec![failure.server.as_str()],
        Body::Final(view) => vec![view.server.as_str()],
        Body::Event { server, .. }
        | Body::State { server, .. }
        | Body::Commit { server, .. }
        | Body::Action { server, .. }
        | Body::Redacted { server, .. }
        | Body::Invited { server, .. } => {
            vec![server.as_str()]
        }
        Body::Send { from, to, .. } => vec![from.as_str(), to.as_str()],
        _ => Vec::new(),
    }
}
