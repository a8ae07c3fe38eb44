//! What the figures draw, read once from the trace: per room, its events with every
//! server's decision about them, and the run's fault, crash and pause windows.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::matrix::ids::LookupMap;
use crate::trace::{Body, Decision, Fault, NodeChange, NodeName, Text, Trace};

/// One room as the trace saw it.
#[derive(Clone, Debug)]
pub struct RoomModel {
    pub room_id: String,
    /// The scenario's label of the room, when the trace shows it ([`room_labels`]).
    pub label: Option<String>,
    /// The room version from the first `joined` record, if any.
    pub version: Option<String>,
    /// The header's servers, then any other server seen in the room, in order of sight.
    pub servers: Vec<String>,
    /// Events in order of first sight in the trace.
    pub events: Vec<EventNode>,
    /// Event id → position in `events` (only looked up).
    pub index: LookupMap<String, usize>,
    /// Fault, crash and pause windows of the whole run (they are not per room).
    pub windows: Vec<Window>,
    pub end_ms: u64,
}

/// One event: what the PDU says and what each server decided.
#[derive(Clone, Debug)]
pub struct EventNode {
    pub id: String,
    /// The PDU as first recorded (absent if no record carried it).
    pub pdu: Option<Arc<Map<String, Value>>>,
    /// The server that created it and when.
    pub created: Option<(String, u64)>,
    pub first_t: u64,
    /// Every decision recorded: (server, t, decision, reason), in trace order. The server
    /// is the record's shared text, not a copy per decision.
    pub decisions: Vec<(Text, u64, Decision, Option<String>)>,
    pub event_type: String,
    pub state_key: Option<String>,
    pub sender: String,
    pub depth: i64,
    pub prev_events: Vec<String>,
    pub auth_events: Vec<String>,
}

/// How an event ended up, worst first across servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Rejected,
    SoftFailed,
    /// No server stored it (only `dropped` decisions).
    Dropped,
    Normal,
}

impl EventNode {
    /// The server that created the event, else the sender's server name.
    pub fn origin(&self) -> String {
        match &self.created {
            Some((server, _)) => server.clone(),
            None => self.sender.split_once(':').map(|(_, s)| s.to_owned()).unwrap_or_default(),
        }
    }

    /// The server whose user wrote the event: for a Linearized Matrix event a hub completed
    /// from a participant's LPDU (it carries `hub_server`), the sender's server, though the
    /// hub created the PDU; otherwise [`EventNode::origin`]. The DAG's bands follow it, so a
    /// linearized room shows who sent what, not only the hub.
    pub fn author(&self) -> String {
        let completed = self.pdu.as_ref().is_some_and(|pdu| pdu.contains_key("hub_server"));
        match self.sender.split_once(':') {
            Some((_, server)) if completed => server.to_owned(),
            _ => self.origin(),
        }
    }

    pub fn is_state(&self) -> bool {
        self.state_key.is_some()
    }

    /// Rejected by any server beats soft-failed by any server beats normal.
    pub fn status(&self) -> Status {
        let mut status = Status::Normal;
        let mut stored = false;
        for (_, _, decision, _) in &self.decisions {
            stored |= decision.is_stored();
            let this = match decision {
                d if d.is_rejected() => Status::Rejected,
                Decision::SoftFailed => Status::SoftFailed,
                _ => Status::Normal,
            };
            status = status.min(this);
        }
        if status == Status::Normal && !stored && !self.decisions.is_empty() {
            return Status::Dropped;
        }
        status
    }

    /// The first rejection recorded, if any.
    pub fn rejection(&self) -> Option<Decision> {
        self.decisions.iter().map(|(_, _, d, _)| *d).find(|d| d.is_rejected())
    }
}

/// What a window is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// A fault of the header's schedule.
    Fault,
    Crash,
    Pause,
}

/// A span of virtual time drawn as a band.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub kind: WindowKind,
    /// "partition hs1 | hs2 hs3", "crash hs2", ...
    pub label: String,
    /// The server a crash or pause hit.
    pub server: Option<String>,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// Every room of the trace, in order of first sight.
pub fn rooms(trace: &Trace) -> Vec<RoomModel> {
    let windows = windows(trace);
    let end_ms = trace.header.end_ms.max(trace.records.last().map_or(0, |r| r.t));
    let mut rooms: Vec<RoomModel> = Vec::new();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    // Per room, the names in `servers`: a search of the list for every record cost the
    // number of servers (a thousand) per record.
    // Only looked up, as is each room's index of events by id: a sorted map compared
    // some ten long texts per record.
    let header_servers: LookupMap<&str, ()> =
        trace.header.servers.iter().map(|server| (server.as_str(), ())).collect();
    let mut named: Vec<LookupMap<&str, ()>> = Vec::new();
    for record in &trace.records {
        let (room_id, server): (&str, &str) = match &record.body {
            Body::Event { room, server, .. } | Body::State { room, server, .. } => (room, server),
            Body::Final(view) => (&view.room, &view.server),
            Body::Joined { room, server, .. } | Body::Left { room, server } => (room, server),
            _ => continue,
        };
        // The room id is copied only for a new room, not for each record.
        let known = by_id.get(room_id).copied();
        let at = known.unwrap_or_else(|| {
            by_id.insert(room_id.to_owned(), rooms.len());
            rooms.push(RoomModel {
                room_id: room_id.to_owned(),
                label: None,
                version: None,
                servers: trace.header.servers.clone(),
                events: Vec::new(),
                index: LookupMap::new(),
                windows: windows.clone(),
                end_ms,
            });
            named.push(header_servers.clone());
            rooms.len() - 1
        });
        let room = &mut rooms[at];
        if named[at].insert(server, ()).is_none() {
            room.servers.push(server.to_owned());
        }
        match &record.body {
            Body::Joined { version, .. } if room.version.is_none() => {
                room.version = Some(version.clone());
            }
            Body::Event { server, event_id: Some(id), decision, reason, pdu, .. } => {
                let position = match room.index.get(id.as_str()) {
                    Some(&position) => position,
                    None => {
                        room.index.insert(id.as_str().to_owned(), room.events.len());
                        room.events.push(EventNode::new(id.as_str().to_owned(), record.t));
                        room.events.len() - 1
                    }
                };
                let event = &mut room.events[position];
                if event.pdu.is_none() {
                    if let Some(pdu) = pdu {
                        event.set_pdu(pdu.clone());
                    }
                }
                if *decision == Decision::Created && event.created.is_none() {
                    event.created = Some((server.as_str().to_owned(), record.t));
                }
                event.decisions.push((server.clone(), record.t, *decision, reason.clone()));
            }
            _ => {}
        }
    }
    let labels = room_labels(trace);
    for room in &mut rooms {
        room.label = labels.get(&room.room_id).cloned();
        let depthless = room
            .version
            .as_deref()
            .and_then(|v| crate::matrix::RoomVersion::parse_any(v).ok())
            .is_some_and(|v| !v.rules().depth_field);
        if depthless {
            room.derive_depths();
        }
    }
    rooms
}

impl RoomModel {
    /// For a room version without `depth` (Linearized Matrix): each event's depth becomes
    /// 1 + the largest depth of its known prev events (the create event 1), so that the
    /// DAG figure draws the hub's list as the chain it is, one row per position.
    fn derive_depths(&mut self) {
        let mut depth: Vec<Option<i64>> = vec![None; self.events.len()];
        // Every event pushed is finished (and taken off) before the stack empties.
        let mut on_stack = vec![false; self.events.len()];
        for start in 0..self.events.len() {
            // Depth-first, with an explicit stack; a prev still on the stack (a cycle,
            // which `dag` reports) counts as depth 0.
            let mut stack = vec![(start, false)];
            while let Some((at, expanded)) = stack.pop() {
                if depth[at].is_some() {
                    continue;
                }
                let prevs: Vec<usize> = self.events[at]
                    .prev_events
                    .iter()
                    .filter_map(|id| self.index.get(id).copied())
                    .collect();
                if expanded {
                    let deepest = prevs.iter().map(|p| depth[*p].unwrap_or(0)).max().unwrap_or(0);
                    depth[at] = Some(deepest + 1);
                    on_stack[at] = false;
                    continue;
                }
                on_stack[at] = true;
                stack.push((at, true));
                for prev in prevs {
                    if depth[prev].is_none() && !on_stack[prev] {
                        stack.push((prev, false));
                    }
                }
            }
        }
        for (event, depth) in self.events.iter_mut().zip(depth) {
            event.depth = depth.unwrap_or(1);
        }
    }

    /// How figures name the room: `room “main”`, or the room id without a label.
    pub fn title(&self) -> String {
        match &self.label {
            Some(label) => format!("room “{label}”"),
            None => self.room_id.clone(),
        }
    }
}

impl EventNode {
    fn new(id: String, t: u64) -> EventNode {
        EventNode {
            id,
            pdu: None,
            created: None,
            first_t: t,
            decisions: Vec::new(),
            event_type: String::new(),
            state_key: None,
            sender: String::new(),
            depth: 0,
            prev_events: Vec::new(),
            auth_events: Vec::new(),
        }
    }

    /// Reads the fields the figures use; malformed fields read as empty (a malicious
    /// server's event is still drawn).
    fn set_pdu(&mut self, pdu: Arc<Map<String, Value>>) {
        let text = |key: &str| pdu.get(key).and_then(Value::as_str).map(str::to_owned);
        let ids = |key: &str| -> Vec<String> {
            match pdu.get(key) {
                Some(Value::Array(items)) => {
                    items.iter().filter_map(Value::as_str).map(str::to_owned).collect()
                }
                _ => Vec::new(),
            }
        };
        self.event_type = text("type").unwrap_or_default();
        self.state_key = text("state_key");
        self.sender = text("sender").unwrap_or_default();
        self.depth = pdu.get("depth").and_then(Value::as_i64).unwrap_or(0);
        self.prev_events = ids("prev_events");
        self.auth_events = ids("auth_events");
        self.pdu = Some(pdu);
    }
}

/// Fault windows from `fault_start`/`fault_end`, crash windows from `node` crash → restart,
/// pause windows from pause → resume. A window still open at the end closes at the end.
pub fn windows(trace: &Trace) -> Vec<Window> {
    let end_ms = trace.header.end_ms.max(trace.records.last().map_or(0, |r| r.t));
    let mut out = Vec::new();
    let mut open_faults: BTreeMap<u32, (usize, u64)> = BTreeMap::new();
    let mut open_nodes: BTreeMap<(String, bool), u64> = BTreeMap::new();
    for record in &trace.records {
        match &record.body {
            Body::FaultStart { fault } => {
                let spec = trace.header.faults.get(*fault as usize);
                // Crashes and pauses are drawn from the `node` records, which say what
                // the world actually did.
                if matches!(spec, Some(Fault::Crash { .. } | Fault::Pause { .. })) {
                    continue;
                }
                let label = describe_fault(spec, *fault);
                out.push(Window {
                    kind: WindowKind::Fault,
                    label,
                    server: None,
                    start_ms: record.t,
                    end_ms,
                });
                open_faults.insert(*fault, (out.len() - 1, record.t));
            }
            Body::FaultEnd { fault } => {
                if let Some((at, _)) = open_faults.remove(fault) {
                    out[at].end_ms = record.t;
                }
            }
            Body::Node { server, change } => {
                let crash = matches!(change, NodeChange::Crash | NodeChange::Restart);
                match change {
                    NodeChange::Crash | NodeChange::Pause => {
                        open_nodes.insert((server.clone(), crash), record.t);
                    }
                    NodeChange::Restart | NodeChange::Resume => {
                        if let Some(start_ms) = open_nodes.remove(&(server.clone(), crash)) {
                            out.push(node_window(server, crash, start_ms, record.t));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for ((server, crash), start_ms) in open_nodes {
        out.push(node_window(&server, crash, start_ms, end_ms));
    }
    out.sort_by(|a, b| (a.start_ms, a.end_ms, &a.label).cmp(&(b.start_ms, b.end_ms, &b.label)));
    out
}

fn node_window(server: &str, crash: bool, start_ms: u64, end_ms: u64) -> Window {
    let (kind, word) =
        if crash { (WindowKind::Crash, "crash") } else { (WindowKind::Pause, "pause") };
    Window {
        kind,
        label: format!("{word} {server}"),
        server: Some(server.to_owned()),
        start_ms,
        end_ms,
    }
}

/// A short description of a fault of the header (`partition hs1 | hs2 hs3`).
fn describe_fault(fault: Option<&Fault>, index: u32) -> String {
    let Some(fault) = fault else { return format!("fault #{index}") };
    let detail = match fault {
        Fault::Partition { groups, .. } => groups
            .iter()
            .map(|group| {
                let names: Vec<&str> = group.iter().map(NodeName::as_str).collect();
                // A long side is named by its ends and its size.
                if names.len() > 6 {
                    format!(
                        "{} … {} ({} servers)",
                        names[..3].join(" "),
                        names[names.len() - 1],
                        names.len()
                    )
                } else {
                    names.join(" ")
                }
            })
            .collect::<Vec<_>>()
            .join(" | "),
        Fault::OneWay { from, to, .. } | Fault::Hold { from, to, .. } => format!("{from}→{to}"),
        Fault::LinkOverride { from, to, .. } => format!("{from}→{to}"),
        Fault::Flap { a, b, .. } => format!("{a}↔{b}"),
        Fault::ClockSkew { node, .. }
        | Fault::Slow { node, .. }
        | Fault::Crash { node, .. }
        | Fault::Pause { node, .. } => node.to_string(),
    };
    let kind = fault.kind_name().replace('_', "-");
    if detail.is_empty() { kind } else { format!("{kind} {detail}") }
}

/// A span during which a server had a joined member in a room; `end_ms` is `None` while it
/// is still joined at the end of the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership {
    pub start_ms: u64,
    pub end_ms: Option<u64>,
}

impl Membership {
    /// Whether the server was joined at `t`.
    pub fn covers(&self, t: u64) -> bool {
        t >= self.start_ms && self.end_ms.is_none_or(|end| t < end)
    }
}

/// `(room, server)` → the spans a server was joined, the one place that reads membership
/// from the trace: a span opens at a `joined` record and closes at a `left` record (a
/// server lost its last joined member). A `joined` while already joined changes nothing;
/// a trace without `left` records keeps every server joined from its first `joined` on,
/// and a server with `state` records but no `joined` record counts as joined from its
/// first `state` record.
pub fn memberships(trace: &Trace) -> BTreeMap<(String, String), Vec<Membership>> {
    let mut out: BTreeMap<(String, String), Vec<Membership>> = BTreeMap::new();
    let mut first_state: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for record in &trace.records {
        let (room, server, joined) = match &record.body {
            Body::Joined { room, server, .. } => (room.clone(), server.clone(), true),
            Body::Left { room, server } => (room.clone(), server.clone(), false),
            Body::State { room, server, .. } => {
                first_state.entry((room, server)).or_insert(record.t);
                continue;
            }
            _ => continue,
        };
        let spans = out.entry((room, server)).or_default();
        let open = spans.last().is_some_and(|span| span.end_ms.is_none());
        match (joined, open) {
            (true, false) => spans.push(Membership { start_ms: record.t, end_ms: None }),
            (false, true) => {
                if let Some(last) = spans.last_mut() {
                    last.end_ms = Some(record.t);
                }
            }
            _ => {}
        }
    }
    // A server that holds the room's state but has no `joined` record (a trace from before
    // every join was recorded) counts as joined from its first state change.
    for ((room, server), t) in first_state {
        out.entry((room.to_owned(), server.to_owned()))
            .or_insert_with(|| vec![Membership { start_ms: t, end_ms: None }]);
    }
    out
}

/// A record's type tag and fields in its JSON form: how the report reads record kinds and
/// optional fields it has no typed view of (a record kind or field added to the trace after
/// this code was written is read by name, or ignored).
pub fn record_kind(body: &Body) -> Option<(String, Map<String, Value>)> {
    match serde_json::to_value(body) {
        Ok(Value::Object(mut fields)) => {
            let kind = fields.remove("type")?.as_str()?.to_owned();
            Some((kind, fields))
        }
        _ => None,
    }
}

/// The scenario's label for each room, where the trace shows it: the label of the
/// `create_room (vN) as LABEL` action (`create_room LABEL (vN)` in traces of mxsim before
/// 0.1's one action vocabulary) whose server then joined the room first.
pub fn room_labels(trace: &Trace) -> BTreeMap<String, String> {
    let mut last_action: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for record in &trace.records {
        match &record.body {
            Body::Action { server, action, .. } => {
                last_action.insert(server, action);
            }
            Body::Joined { server, room, .. } if !out.contains_key(room) => {
                let label = last_action
                    .get(server.as_str())
                    .and_then(|action| action.strip_prefix("create_room "))
                    .map(|rest| match rest.rsplit_once(") as ") {
                        Some((_, label)) => label,
                        None => rest.split_once(" (").map_or(rest, |(label, _)| label),
                    });
                if let Some(label) = label {
                    out.insert(room.clone(), label.to_owned());
                }
                // The room id is taken: a later create action is for another room.
                out.entry(room.clone()).or_insert_with(String::new);
            }
            _ => {}
        }
    }
    out.retain(|_, label| !label.is_empty());
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::trace::{CheckSettings, FORMAT, Header, Record};

    /// A trace of `records` (virtual ms, body) under a header naming servers hs1 and hs2;
    /// the other report modules' tests build theirs with it too.
    /// The `event` record of an event hs1 created in `!r:hs1`, with `pdu` as its PDU.
    pub(in crate::report) fn created(id: &str, pdu: Value) -> Body {
        let Value::Object(pdu) = pdu else { panic!("a PDU is an object") };
        Body::Event {
            server: "hs1".into(),
            room: "!r:hs1".into(),
            event_id: Some(id.into()),
            decision: Decision::Created,
            reason: None,
            pdu: Some(Arc::new(pdu)),
        }
    }

    pub(in crate::report) fn trace(records: Vec<(u64, Body)>) -> Trace {
        let header = Header {
            format: FORMAT.into(),
            scenario: "t".into(),
            seed: 1,
            mxsim_version: "0".into(),
            mxsim_build: String::new(),
            servers: vec!["hs1".into(), "hs2".into()],
            keys: BTreeMap::new(),
            epoch_ms: 0,
            end_ms: 100,
            healed_ms: 0,
            faults: Vec::new(),
            check: CheckSettings {
                invariants: Vec::new(),
                liveness_bound_ms: 0,
                expect: Default::default(),
            },
            swarm: None,
        };
        let records: Vec<Record> =
            records.into_iter().map(|(t, body)| Record { t, body }).collect();
        Trace::new(header, records)
    }

    #[test]
    fn membership_spans_from_joined_records_or_the_first_state() {
        let joined = |server: &str| Body::Joined {
            server: server.into(),
            room: "!r".into(),
            version: "12".into(),
        };
        let state = |server: &str| Body::State {
            server: server.into(),
            room: "!r".into(),
            state_hash: "h".into(),
        };
        let left = |server: &str| Body::Left { server: server.into(), room: "!r".into() };
        let spans = memberships(&trace(vec![
            (5, joined("hs1")),
            (7, state("hs1")),
            (9, state("hs2")),
            (20, joined("hs1")),
            (30, joined("hs3")),
            (40, left("hs3")),
            (45, left("hs3")),
            (50, joined("hs3")),
        ]));
        let open = |start_ms| vec![Membership { start_ms, end_ms: None }];
        // A second `joined` while joined changes nothing.
        assert_eq!(spans[&("!r".to_owned(), "hs1".to_owned())], open(5));
        // No `joined` record: joined from the first state change.
        assert_eq!(spans[&("!r".to_owned(), "hs2".to_owned())], open(9));
        assert!(spans[&("!r".to_owned(), "hs1".to_owned())][0].covers(99));
        assert!(!spans[&("!r".to_owned(), "hs2".to_owned())][0].covers(8));
        // A `left` record closes the span (a second one changes nothing); a later
        // `joined` opens a new one: hs3 was out of the room from 40 to 50 ms.
        let hs3 = &spans[&("!r".to_owned(), "hs3".to_owned())];
        assert_eq!(
            *hs3,
            vec![
                Membership { start_ms: 30, end_ms: Some(40) },
                Membership { start_ms: 50, end_ms: None }
            ]
        );
        assert!(hs3.iter().any(|m| m.covers(35)) && !hs3.iter().any(|m| m.covers(45)));
        assert_eq!(spans.len(), 3);
    }

    #[test]
    fn room_labels_come_from_the_create_action() {
        let labels = room_labels(&trace(vec![
            (
                0,
                Body::Action {
                    server: "hs1".into(),
                    user: "@u:hs1".into(),
                    action: "create_room (v12) as main".into(),
                    step: None,
                    line: None,
                },
            ),
            (
                0,
                Body::Action {
                    server: "hs3".into(),
                    user: "@u:hs3".into(),
                    action: "create_room lobby (v11)".into(),
                    step: None,
                    line: None,
                },
            ),
            (0, Body::Joined { server: "hs3".into(), room: "!c".into(), version: "11".into() }),
            (0, Body::Joined { server: "hs1".into(), room: "!a".into(), version: "12".into() }),
            (1, Body::Joined { server: "hs2".into(), room: "!a".into(), version: "12".into() }),
            (2, Body::Joined { server: "hs2".into(), room: "!b".into(), version: "12".into() }),
        ]));
        assert_eq!(labels.get("!a").map(String::as_str), Some("main"));
        assert_eq!(labels.get("!c").map(String::as_str), Some("lobby"), "the older form");
        assert_eq!(labels.get("!b"), None, "hs2 created no room");
    }

    #[test]
    fn a_linearized_event_is_authored_by_its_sender_and_depths_follow_the_chain() {
        let version = crate::matrix::room_version::LINEARIZED_02_ID;
        let event = |id: &str, sender: &str, prev: &[&str], hub: bool| {
            let mut pdu = serde_json::json!({"type": "m.room.message", "sender": sender,
                "prev_events": prev, "auth_events": [], "content": {}});
            if hub {
                pdu["hub_server"] = "hs1".into();
            }
            created(id, pdu)
        };
        let joined =
            Body::Joined { server: "hs1".into(), room: "!r:hs1".into(), version: version.into() };
        // Seen out of order: the derived depth follows prev_events, not the order of sight.
        let t = trace(vec![
            (0, joined),
            (1, event("$b", "@bob:hs2", &["$a"], true)),
            (2, event("$a", "@alice:hs1", &[], false)),
            (3, event("$c", "@alice:hs1", &["$b"], false)),
        ]);
        let room = &rooms(&t)[0];
        let by_id = |id: &str| &room.events[*room.index.get(id).expect("an event of the room")];
        assert_eq!((by_id("$a").depth, by_id("$b").depth, by_id("$c").depth), (1, 2, 3));
        // The hub created all three; the completed LPDU is drawn as bob's server's.
        assert_eq!(by_id("$b").origin(), "hs1");
        assert_eq!(by_id("$b").author(), "hs2");
        assert_eq!(by_id("$c").author(), "hs1");
    }
}
