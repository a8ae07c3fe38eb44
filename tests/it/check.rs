//! The invariant checker on small hand-built traces with real signed PDUs: a two-server
//! room that passes every invariant, and doctored copies that each break one, checked by
//! invariant id and witness (servers, events, line). Plus random damage that must never
//! panic the checker.

use std::collections::BTreeMap;
use std::sync::Arc;

use mxsim::check::{self, Verdict, Violation};
use mxsim::matrix::auth::{self, AuthState};
use mxsim::matrix::canonical_json::Object;
use mxsim::matrix::crypto::SigningKey;
use mxsim::matrix::pdu::{self, Pdu};
use mxsim::matrix::redaction;
use mxsim::matrix::room_version::{RoomVersion, RoomVersionRules};
use mxsim::net::{Fault, NodeName};
use mxsim::stdx::Instant;
use mxsim::stdx::Invariant;
use mxsim::stdx::Prng;
use mxsim::trace::{Body, CheckSettings, Decision, Header, NestedState, NodeChange, Record, Trace};
use serde_json::{Value, json};

const ALL: &[&str] = &["integrity", "auth", "dag", "convergence", "liveness", "durability"];
const BOUND_MS: u64 = 1000;

fn key(server: &str) -> SigningKey {
    let seed = if server == "hs1" { [1; 32] } else { [2; 32] };
    SigningKey::from_seed(&seed, "ed25519:k").unwrap()
}

fn object(value: Value) -> Object {
    match value {
        Value::Object(object) => object,
        _ => unreachable!("test data is an object"),
    }
}

/// Builds a linear room: each event's prev event is the last one, its auth events the
/// spec's selection from the current state.
struct Room {
    rules: &'static RoomVersionRules,
    room_id: String,
    state: BTreeMap<(String, String), Pdu>,
    last: Option<Pdu>,
    ts: i64,
}

impl AuthState for Room {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Pdu> {
        self.state.get(&(event_type.to_owned(), state_key.to_owned()))
    }
}

impl Room {
    fn new(version: RoomVersion) -> Room {
        Room {
            rules: version.rules(),
            room_id: "!r:hs1".into(),
            state: BTreeMap::new(),
            last: None,
            ts: 1_700_000_000_000,
        }
    }

    /// An unsigned event on top of the room.
    fn draft(
        &self,
        event_type: &str,
        sender: &str,
        state_key: Option<&str>,
        content: Value,
    ) -> Object {
        let content = object(content);
        let is_create = event_type == "m.room.create";
        let auth_events: Vec<String> = if is_create {
            vec![]
        } else {
            auth::select_auth_events(self.rules, event_type, sender, state_key, &content, self)
                .iter()
                .map(|id| id.as_str().to_owned())
                .collect()
        };
        let prev: Vec<String> =
            self.last.iter().map(|p| p.event_id().as_str().to_owned()).collect();
        let depth = self.last.as_ref().map_or(1, |p| p.depth() + 1);
        let mut json = object(json!({
            "type": event_type, "sender": sender, "content": content,
            "origin_server_ts": self.ts, "depth": depth,
            "auth_events": auth_events, "prev_events": prev,
        }));
        if !(is_create && self.rules.room_id_is_create_event_hash) {
            json.insert("room_id".into(), Value::from(self.room_id.clone()));
        }
        if let Some(state_key) = state_key {
            json.insert("state_key".into(), Value::from(state_key));
        }
        json
    }

    /// Signs a draft as `server` and makes it the room's latest event.
    fn add(&mut self, server: &str, json: Object) -> Pdu {
        let pdu = pdu::build_signed(self.rules, json, server, &key(server)).unwrap();
        if pdu.event_type() == "m.room.create" {
            self.room_id = pdu.room_id_or_derived();
        }
        if let Some(state_key) = pdu.state_key() {
            self.state.insert((pdu.event_type().to_owned(), state_key.to_owned()), pdu.clone());
        }
        self.last = Some(pdu.clone());
        self.ts += 1;
        pdu
    }

    fn send(
        &mut self,
        server: &str,
        event_type: &str,
        sender: &str,
        state_key: Option<&str>,
        content: Value,
    ) -> Pdu {
        let json = self.draft(event_type, sender, state_key, content);
        self.add(server, json)
    }

    fn nested_state(&self) -> NestedState {
        let mut out = NestedState::new();
        for ((t, k), pdu) in &self.state {
            out.entry(t.clone()).or_default().insert(k.clone(), pdu.event_id().as_str().to_owned());
        }
        out
    }
}

fn id(pdu: &Pdu) -> String {
    pdu.event_id().as_str().to_owned()
}

fn rec(t: u64, body: Body) -> Record {
    Record { t, body }
}

fn event(
    t: u64,
    server: &str,
    room: &str,
    pdu: &Pdu,
    decision: Decision,
    with_pdu: bool,
) -> Record {
    rec(
        t,
        Body::Event {
            server: server.into(),
            room: room.into(),
            event_id: Some(id(pdu).into()),
            decision,
            reason: None,
            pdu: with_pdu.then(|| Arc::new(pdu.json().clone())),
        },
    )
}

/// A server's published keys as the trace header lists them: key id → base64.
fn public_keys(server: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("ed25519:k".to_owned(), key(server).public_key_base64())])
}

fn header(invariants: &[&str]) -> Header {
    let mut keys = BTreeMap::new();
    for server in ["hs1", "hs2"] {
        keys.insert(server.to_owned(), public_keys(server));
    }
    Header {
        format: mxsim::trace::FORMAT.into(),
        scenario: "two-servers".into(),
        seed: 1,
        mxsim_version: "test".into(),
        mxsim_build: String::new(),
        servers: vec!["hs1".into(), "hs2".into()],
        keys,
        epoch_ms: 1_700_000_000_000,
        end_ms: 5000,
        healed_ms: 0,
        faults: vec![],
        check: CheckSettings {
            invariants: ids(invariants),
            liveness_bound_ms: BOUND_MS,
            expect: Default::default(),
        },
        swarm: None,
    }
}

/// The good two-server room and the pieces tests doctor.
struct Fixture {
    room: Room,
    room_id: String,
    join_rules: Pdu,
    bob: Pdu,
    message: Pdu,
    trace: Trace,
}

/// hs1 creates a public room (create, alice's join, power levels, join rules), hs2 takes
/// the state and joins bob, alice sends a message; hs2 crashes and recovers everything it
/// committed; both end joined with the same state.
fn fixture(version: RoomVersion) -> Fixture {
    let mut room = Room::new(version);
    // v10 names the creator in the content; v12 creators are not listed in power levels.
    let create_content = match version {
        RoomVersion::V10 => json!({"room_version": "10", "creator": "@alice:hs1"}),
        _ => json!({"room_version": version.as_str()}),
    };
    let power_content = match version {
        RoomVersion::V12 => json!({"users": {}}),
        _ => json!({"users": {"@alice:hs1": 100}}),
    };
    let create = room.send("hs1", "m.room.create", "@alice:hs1", Some(""), create_content);
    let alice = room.send(
        "hs1",
        "m.room.member",
        "@alice:hs1",
        Some("@alice:hs1"),
        json!({"membership": "join"}),
    );
    let power = room.send("hs1", "m.room.power_levels", "@alice:hs1", Some(""), power_content);
    let join_rules = room.send(
        "hs1",
        "m.room.join_rules",
        "@alice:hs1",
        Some(""),
        json!({"join_rule": "public"}),
    );
    let bob = room.send(
        "hs2",
        "m.room.member",
        "@bob:hs2",
        Some("@bob:hs2"),
        json!({"membership": "join"}),
    );
    let message = room.send(
        "hs1",
        "m.room.message",
        "@alice:hs1",
        None,
        json!({"msgtype": "m.text", "body": "hi"}),
    );
    let r = room.room_id.clone();
    let ids = |pdus: &[&Pdu]| -> Vec<String> { pdus.iter().map(|p| id(p)).collect() };
    let first_four = [&create, &alice, &power, &join_rules];
    let mut records = vec![rec(
        0,
        Body::Joined { server: "hs1".into(), room: r.clone(), version: version.as_str().into() },
    )];
    for pdu in first_four {
        records.push(event(1, "hs1", &r, pdu, Decision::Created, true));
    }
    records.push(rec(2, Body::Commit { server: "hs1".into(), event_ids: texts(ids(&first_four)) }));
    for pdu in first_four {
        records.push(event(5, "hs2", &r, pdu, Decision::Accepted, false));
    }
    records.push(rec(
        5,
        Body::Joined { server: "hs2".into(), room: r.clone(), version: version.as_str().into() },
    ));
    records.push(event(6, "hs2", &r, &bob, Decision::Created, true));
    let mut hs2_commits = ids(&first_four);
    hs2_commits.push(id(&bob));
    records
        .push(rec(6, Body::Commit { server: "hs2".into(), event_ids: texts(hs2_commits.clone()) }));
    records.push(event(8, "hs1", &r, &bob, Decision::Accepted, false));
    records.push(rec(8, Body::Commit { server: "hs1".into(), event_ids: texts(ids(&[&bob])) }));
    records.push(event(10, "hs1", &r, &message, Decision::Created, true));
    records
        .push(rec(10, Body::Commit { server: "hs1".into(), event_ids: texts(ids(&[&message])) }));
    records.push(event(12, "hs2", &r, &message, Decision::Accepted, false));
    records
        .push(rec(12, Body::Commit { server: "hs2".into(), event_ids: texts(ids(&[&message])) }));
    records.push(rec(20, Body::Node { server: "hs2".into(), change: NodeChange::Crash }));
    records.push(rec(21, Body::Node { server: "hs2".into(), change: NodeChange::Restart }));
    hs2_commits.push(id(&message));
    records.push(rec(21, Body::Recovered { server: "hs2".into(), event_ids: hs2_commits }));
    records.extend(finals(&room, &r, &message, 6));
    let trace = Trace::new(header(ALL), records);
    Fixture { room, room_id: r, join_rules, bob, message, trace }
}

/// The 1-based line of the first record matching `f`.
fn line_where(trace: &Trace, f: impl Fn(&Body) -> bool) -> u64 {
    let i = trace.records.iter().position(|r| f(&r.body)).expect("record exists");
    i as u64 + 2
}

fn is_event(body: &Body, server: &str, event_id: &str) -> bool {
    matches!(body, Body::Event { server: s, event_id: Some(e), .. } if s == server && e == event_id)
}

/// Checks through the JSONL form too (what `mxsim check` reads, whole and kept), and
/// returns the verdict.
fn run(trace: &Trace) -> Verdict {
    let text = String::from_utf8(trace.to_jsonl()).unwrap();
    let parsed = Trace::parse_jsonl(&text).unwrap();
    let verdict = check::check(&parsed);
    assert_eq!(verdict, check::check(trace), "checking is a pure function of the trace");
    // Kept, a crash the header's schedule does not have leaves that server's commits
    // unknown: durability says so instead of judging them; the rest is the same.
    let (kept, _) = Trace::read_kept(&mut text.as_bytes()).unwrap();
    let unkept = kept.kept.as_ref().unwrap().unkept_crashes.len();
    let kept_verdict = check::check(&kept);
    if unkept == 0 {
        assert_eq!(kept_verdict, verdict, "a kept trace checks as the whole one");
    } else {
        let others = |v: &Verdict| -> Vec<Violation> {
            let durable = |x: &&Violation| x.invariant == Invariant::Durability;
            v.violations.iter().filter(|x| !durable(x)).cloned().collect()
        };
        assert_eq!(others(&kept_verdict), others(&verdict));
        assert_eq!(kept_verdict.checked, verdict.checked);
        if verdict.checked.contains(&Invariant::Durability) {
            let unknown =
                kept_verdict.violations.iter().filter(|v| v.message.contains("were not kept"));
            assert_eq!(unknown.count(), unkept, "{kept_verdict:?}");
        }
    }
    verdict
}

/// The verdict's only violations are of `invariant`; returns them.
fn only(verdict: &Verdict, invariant: &str) -> Vec<Violation> {
    assert!(!verdict.violations.is_empty(), "expected a {invariant} violation");
    for v in &verdict.violations {
        assert_eq!(v.invariant.as_str(), invariant, "unexpected violation: {v:#?}");
    }
    verdict.violations.clone()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Invariants by their ids.
fn ids(items: &[&str]) -> Vec<Invariant> {
    items.iter().map(|id| id.parse().expect("a known invariant id")).collect()
}

#[test]
fn a_good_two_server_room_passes_every_invariant() {
    for version in RoomVersion::ALL {
        let f = fixture(version);
        let verdict = run(&f.trace);
        assert_eq!(verdict.violations, vec![], "room version {version}");
        assert_eq!(verdict.checked, ids(ALL));
    }
}

#[test]
fn a_tampered_content_breaks_integrity_unless_the_stored_copy_is_redacted() {
    let mut f = fixture(RoomVersion::V11);
    let message = id(&f.message);
    let mut tampered = f.message.json().clone();
    tampered.insert("content".into(), json!({"msgtype": "m.text", "body": "bye"}));
    let at = f.trace.records.iter().position(|r| is_event(&r.body, "hs2", &message)).unwrap();
    if let Body::Event { pdu, .. } = &mut f.trace.records[at].body {
        *pdu = Some(Arc::new(tampered.clone()));
    }
    let violations = only(&run(&f.trace), "integrity");
    assert_eq!(violations.len(), 1);
    assert!(violations[0].message.contains("content hash"), "{}", violations[0].message);
    assert_eq!(violations[0].witness.servers, strings(&["hs2"]));
    assert_eq!(violations[0].witness.events, vec![message.clone()]);
    assert_eq!(violations[0].witness.line, Some(at as u64 + 2));

    // What a receiver keeps of such a copy, the redacted form, is fine.
    let redacted = redaction::redact(f.room.rules.redaction, &tampered);
    if let Body::Event { pdu, .. } = &mut f.trace.records[at].body {
        *pdu = Some(Arc::new(redacted));
    }
    assert_eq!(run(&f.trace).violations, vec![]);
}

#[test]
fn a_bad_signature_breaks_integrity() {
    let mut f = fixture(RoomVersion::V12);
    let message = id(&f.message);
    // Signed by hs2's key under hs1's name.
    let mut forged = f.message.json().clone();
    forged.remove("signatures");
    pdu::add_signature(f.room.rules, &mut forged, "hs1", &key("hs2"));
    let at = f.trace.records.iter().position(|r| is_event(&r.body, "hs2", &message)).unwrap();
    if let Body::Event { pdu, .. } = &mut f.trace.records[at].body {
        *pdu = Some(Arc::new(forged));
    }
    let violations = only(&run(&f.trace), "integrity");
    assert_eq!(violations.len(), 1);
    assert!(violations[0].message.contains("signature"), "{}", violations[0].message);
    assert_eq!(violations[0].witness.servers, strings(&["hs2"]));
    assert_eq!(violations[0].witness.events, vec![message]);
    assert_eq!(violations[0].witness.line, Some(at as u64 + 2));
}

#[test]
fn an_event_id_that_is_not_the_reference_hash_breaks_integrity() {
    let mut f = fixture(RoomVersion::V11);
    let fake = "$not-the-reference-hash".to_owned();
    let r = f.room_id.clone();
    // hs2 stores the message's PDU under another id, as an outlier.
    let at = f.trace.records.len() - 2;
    f.trace.records.insert(
        at,
        rec(
            4000,
            Body::Event {
                server: "hs2".into(),
                room: r.into(),
                event_id: Some(fake.clone().into()),
                decision: Decision::Outlier,
                reason: None,
                pdu: Some(Arc::new(f.message.json().clone())),
            },
        ),
    );
    let violations = only(&run(&f.trace), "integrity");
    assert_eq!(violations.len(), 1);
    assert!(violations[0].message.contains("not the reference hash"), "{}", violations[0].message);
    assert_eq!(violations[0].witness.servers, strings(&["hs2"]));
    assert_eq!(violations[0].witness.events, vec![fake]);
    assert_eq!(violations[0].witness.line, Some(at as u64 + 2));
}

#[test]
fn an_accepted_message_from_a_non_member_breaks_auth() {
    let mut f = fixture(RoomVersion::V11);
    let r = f.room_id.clone();
    // carol never joined; hs2 creates her message anyway and hs1 accepts it.
    let carol = f.room.send(
        "hs2",
        "m.room.message",
        "@carol:hs2",
        None,
        json!({"msgtype": "m.text", "body": "x"}),
    );
    let end = f.trace.records.len() - 2;
    let tail = vec![
        event(30, "hs2", &r, &carol, Decision::Created, true),
        event(31, "hs1", &r, &carol, Decision::Accepted, false),
    ];
    f.trace.records.edit(|records| records.splice(end..end, tail).for_each(drop));
    let violations = only(&run(&f.trace), "auth");
    let own =
        violations.iter().find(|v| v.message.contains("own auth events")).expect("own auth events");
    assert_eq!(own.witness.servers, strings(&["hs2", "hs1"]));
    assert_eq!(own.witness.events, vec![id(&carol)]);
    assert_eq!(own.witness.line, Some(end as u64 + 2));
    assert!(own.message.contains("@carol:hs2"), "{}", own.message);
    let before =
        violations.iter().find(|v| v.message.contains("state before")).expect("state before");
    assert_eq!(before.witness.events, vec![id(&carol)]);
}

#[test]
fn servers_disagreeing_on_a_rejection_break_auth() {
    let mut f = fixture(RoomVersion::V12);
    let message = id(&f.message);
    let at = f.trace.records.iter().position(|r| is_event(&r.body, "hs2", &message)).unwrap();
    if let Body::Event { decision, reason, .. } = &mut f.trace.records[at].body {
        *decision = Decision::RejectedStateBefore;
        *reason = Some("rule 5: not joined".into());
    }
    let violations = only(&run(&f.trace), "auth");
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert!(violations[0].message.contains("disagree"), "{}", violations[0].message);
    assert_eq!(violations[0].witness.servers, strings(&["hs1", "hs2"]));
    assert_eq!(violations[0].witness.events, vec![message]);
    assert_eq!(violations[0].witness.line, Some(at as u64 + 2));
}

#[test]
fn a_prev_event_missing_from_the_trace_breaks_dag() {
    let mut f = fixture(RoomVersion::V11);
    let r = f.room_id.clone();
    let missing = format!("${}", "A".repeat(43));
    let mut json = f.room.draft(
        "m.room.message",
        "@alice:hs1",
        None,
        json!({"msgtype": "m.text", "body": "y"}),
    );
    json.insert("prev_events".into(), json!([missing.clone()]));
    let orphan = f.room.add("hs1", json);
    let end = f.trace.records.len() - 2;
    // `hs2` records the event twice (a witness names each server once).
    let tail = vec![
        event(30, "hs1", &r, &orphan, Decision::Created, true),
        event(31, "hs2", &r, &orphan, Decision::Accepted, false),
        event(32, "hs2", &r, &orphan, Decision::Accepted, false),
    ];
    f.trace.records.edit(|records| records.splice(end..end, tail).for_each(drop));
    let violations = only(&run(&f.trace), "dag");
    assert_eq!(violations.len(), 1);
    assert!(violations[0].message.contains(&format!("prev event {missing} is not in the trace")));
    assert_eq!(violations[0].witness.servers, strings(&["hs1", "hs2"]));
    assert_eq!(violations[0].witness.events, vec![id(&orphan)]);
    assert_eq!(violations[0].witness.line, Some(end as u64 + 2));
}

#[test]
fn a_prev_events_cycle_breaks_dag() {
    // Reference hashes make a cycle impossible, so the two events claim forged ids (which
    // `integrity` reports; this test checks `dag` alone).
    let mut f = fixture(RoomVersion::V11);
    f.trace.header.check.invariants = ids(&["dag"]);
    let r = f.room_id.clone();
    let (a, b) = ("$cycle-a".to_owned(), "$cycle-b".to_owned());
    let mut records = Vec::new();
    for (this, other, t) in [(&a, &b, 30), (&b, &a, 31)] {
        let mut json = f.room.draft(
            "m.room.message",
            "@alice:hs1",
            None,
            json!({"msgtype": "m.text", "body": this}),
        );
        json.insert("prev_events".into(), json!([other]));
        let pdu = pdu::build_signed(f.room.rules, json, "hs1", &key("hs1")).unwrap();
        records.push(rec(
            t,
            Body::Event {
                server: "hs1".into(),
                room: r.clone().into(),
                event_id: Some(this.clone().into()),
                decision: Decision::Created,
                reason: None,
                pdu: Some(Arc::new(pdu.json().clone())),
            },
        ));
    }
    let end = f.trace.records.len() - 2;
    f.trace.records.edit(|all| all.splice(end..end, records).for_each(drop));
    let violations = only(&run(&f.trace), "dag");
    let cycle = violations.iter().find(|v| v.message.contains("form a cycle")).expect("a cycle");
    let mut events = cycle.witness.events.clone();
    events.sort();
    assert_eq!(events, vec![a, b]);
    assert_eq!(cycle.witness.servers, strings(&["hs1"]));
    assert_eq!(cycle.witness.line, Some(end as u64 + 3), "when the second event closed it");
}

#[test]
fn different_final_states_break_convergence() {
    let mut f = fixture(RoomVersion::V11);
    let join_rules = id(&f.join_rules);
    let last = f.trace.records.len() - 1;
    if let Body::Final(view) = &mut f.trace.records[last].body {
        std::sync::Arc::make_mut(&mut view.state).get_mut("m.room.join_rules").unwrap().clear();
        view.state_hash = "H2".into();
    }
    let violations = only(&run(&f.trace), "convergence");
    assert_eq!(violations.len(), 1);
    assert!(violations[0].message.contains("m.room.join_rules"), "{}", violations[0].message);
    assert_eq!(violations[0].witness.servers, strings(&["hs1", "hs2"]));
    assert_eq!(violations[0].witness.events, vec![join_rules]);
    assert_eq!(violations[0].witness.line, Some(last as u64 + 2));
}

/// The fixture with only `invariant` checked and hs2 never storing hs1's message, and the
/// message's id.
fn message_never_stored_by_hs2(invariant: &str) -> (Fixture, String) {
    let mut f = fixture(RoomVersion::V11);
    f.trace.header.check.invariants = ids(&[invariant]);
    let message = id(&f.message);
    f.trace.records.retain(|r| !is_event(&r.body, "hs2", &message));
    (f, message)
}

#[test]
fn an_event_one_joined_server_lacks_breaks_convergence() {
    // hs2 never stores the message hs1 created after both joined: their final states are
    // the same (a message is no state), the events they hold are not.
    let (f, message) = message_never_stored_by_hs2("convergence");
    let violations = only(&run(&f.trace), "convergence");
    assert_eq!(violations.len(), 1, "{violations:?}");
    let found = &violations[0];
    assert!(found.message.contains("hold different events"), "{}", found.message);
    assert!(
        found.message.contains(&format!("hs2 lacks 1 event(s): {message}")),
        "{}",
        found.message
    );
    assert_eq!(found.witness.servers, strings(&["hs2"]));
    assert_eq!(found.witness.events, vec![message]);
}

#[test]
fn a_late_event_breaks_liveness() {
    let mut f = fixture(RoomVersion::V11);
    let message = id(&f.message);
    // hs2 gets the message after the bound (moved after the crash, which it survives).
    let at = f.trace.records.iter().position(|r| is_event(&r.body, "hs2", &message)).unwrap();
    let mut late = f.trace.records.remove(at);
    late.t = 10 + BOUND_MS + 1;
    let end = f.trace.records.len() - 2;
    f.trace.records.insert(end, late);
    let created = line_where(&f.trace, |b| is_event(b, "hs1", &message));
    let violations = only(&run(&f.trace), "liveness");
    assert_eq!(violations.len(), 1);
    assert!(violations[0].message.contains("late: hs2 at 1011 ms"), "{}", violations[0].message);
    assert_eq!(violations[0].witness.servers, strings(&["hs2"]));
    assert_eq!(violations[0].witness.events, vec![message]);
    assert_eq!(violations[0].witness.line, Some(created));
}

#[test]
fn an_event_that_never_arrives_breaks_liveness() {
    // hs2 never stores the message (so its stored events also differ: `convergence` would
    // fire too; this test checks `liveness` alone).
    let (mut f, message) = message_never_stored_by_hs2("liveness");
    let created = line_where(&f.trace, |b| is_event(b, "hs1", &message));
    let violations = only(&run(&f.trace), "liveness");
    assert_eq!(violations.len(), 1);
    assert!(violations[0].message.contains("never: hs2"), "{}", violations[0].message);
    assert_eq!(violations[0].witness.servers, strings(&["hs2"]));
    assert_eq!(violations[0].witness.line, Some(created));

    // Not a violation if the run ended before the deadline.
    f.trace.header.end_ms = 10 + BOUND_MS - 1;
    assert_eq!(run(&f.trace).violations, vec![]);
}

/// A received event still waiting at the end is a violation once its deadline has passed:
/// the homeserver's bound on deciding it was broken. Not before the deadline, nor on a
/// server paused at the end.
#[test]
fn an_event_still_waiting_past_its_deadline_breaks_liveness() {
    let mut f = fixture(RoomVersion::V11);
    f.trace.header.check.invariants = ids(&["liveness"]);
    let end = f.trace.header.end_ms;
    let stuck = "$stuck".to_owned();
    let set_waiting = |trace: &mut Trace, deadline_ms: u64| {
        for record in &mut trace.records {
            if let Body::Final(view) = &mut record.body {
                if view.server == "hs2" {
                    view.waiting =
                        vec![mxsim::trace::WaitingEvent { event_id: stuck.clone(), deadline_ms }];
                }
            }
        }
    };
    set_waiting(&mut f.trace, end - 1);
    let final_line =
        line_where(&f.trace, |b| matches!(b, Body::Final(view) if view.server == "hs2"));
    let violations = only(&run(&f.trace), "liveness");
    assert_eq!(violations.len(), 1, "{violations:#?}");
    let message = &violations[0].message;
    assert!(message.contains("hs2 received $stuck and never decided it"), "{message}");
    assert!(message.contains(&format!("deadline of {} ms", end - 1)), "{message}");
    assert_eq!(violations[0].witness.servers, strings(&["hs2"]));
    assert_eq!(violations[0].witness.events, vec![stuck.clone()]);
    assert_eq!(violations[0].witness.line, Some(final_line));

    // Its deadline is the end or later: the server could still give it up.
    set_waiting(&mut f.trace, end);
    assert_eq!(run(&f.trace).violations, vec![]);

    // Paused at the end, the server could not act on the deadline.
    set_waiting(&mut f.trace, end - 1);
    let at = f.trace.records.len() - 2;
    let pause = Body::Node { server: "hs2".into(), change: mxsim::trace::NodeChange::Pause };
    f.trace.records.insert(at, rec(end - 10, pause));
    assert_eq!(run(&f.trace).violations, vec![]);
    // Resumed before the end, it could.
    let resume = Body::Node { server: "hs2".into(), change: mxsim::trace::NodeChange::Resume };
    f.trace.records.insert(at + 1, rec(end - 5, resume));
    assert_eq!(only(&run(&f.trace), "liveness").len(), 1);
}

/// The fixture with a third server, hs3, that stores everything hs1 made; then bob (hs2)
/// sends one more message, which hs1 decides as `hs1` says (or never gets) and hs3 never
/// gets. All three end joined with the same state.
fn a_late_message_hs3_never_gets(hs1: Option<Decision>) -> (Trace, String) {
    let mut f = fixture(RoomVersion::V11);
    let header = &mut f.trace.header;
    header.servers.push("hs3".into());
    header.keys.insert("hs3".into(), public_keys("hs3"));
    let late = f.room.send(
        "hs2",
        "m.room.message",
        "@bob:hs2",
        None,
        json!({"msgtype": "m.text", "body": "sent as the kick travels"}),
    );
    let r = f.room_id.clone();
    let finals_at = f.trace.records.len() - 2;
    // hs3 takes everything at 22 ms, after the records the fixture already has.
    let mut added =
        vec![rec(22, Body::Joined { server: "hs3".into(), room: r.clone(), version: "11".into() })];
    let mut hs3_ids = Vec::new();
    for record in &f.trace.records {
        if let Body::Event { server, event_id: Some(e), pdu: Some(json), .. } = &record.body {
            if server != "hs2" {
                let pdu = pdu::Pdu::from_json(RoomVersion::V11.rules(), (**json).clone()).unwrap();
                added.push(event(22, "hs3", &r, &pdu, Decision::Accepted, false));
                hs3_ids.push(e.to_string());
            }
        }
    }
    added.push(rec(22, Body::Commit { server: "hs3".into(), event_ids: texts(hs3_ids) }));
    added.push(event(30, "hs2", &r, &late, Decision::Created, true));
    added.push(rec(30, Body::Commit { server: "hs2".into(), event_ids: texts(vec![id(&late)]) }));
    if let Some(decision) = hs1 {
        added.push(event(40, "hs1", &r, &late, decision, false));
        added.push(rec(
            40,
            Body::Commit { server: "hs1".into(), event_ids: texts(vec![id(&late)]) },
        ));
    }
    let mut hs3_final = f.trace.records[finals_at].clone();
    if let Body::Final(view) = &mut hs3_final.body {
        view.server = "hs3".into();
    }
    f.trace.records.push(hs3_final);
    f.trace.records.edit(|records| records.splice(finals_at..finals_at, added).for_each(drop));
    (f.trace, id(&late))
}

#[test]
fn an_event_the_room_refused_is_owed_to_nobody() {
    // hs1 soft-failed bob's message (the kick got there first) and hs3 never heard of it:
    // nobody passes a soft-failed event on, so hs3 is not owed it.
    let (trace, _) = a_late_message_hs3_never_gets(Some(Decision::SoftFailed));
    assert_eq!(run(&trace).violations, vec![]);
    // The same for a rejection (which `auth` flags, hs1 and hs2 disagreeing on it).
    let (mut trace, _) = a_late_message_hs3_never_gets(Some(Decision::RejectedStateBefore));
    trace.header.check.invariants = ids(&["liveness", "convergence"]);
    assert_eq!(run(&trace).violations, vec![]);

    // Accepted by hs1, the message is owed to hs3: liveness and convergence both fire.
    let (trace, late) = a_late_message_hs3_never_gets(Some(Decision::Accepted));
    let verdict = run(&trace);
    let mut fired: Vec<&str> = verdict.violations.iter().map(|v| v.invariant.as_str()).collect();
    fired.sort();
    assert_eq!(fired, ["convergence", "liveness"], "{:#?}", verdict.violations);
    for v in &verdict.violations {
        assert_eq!(v.witness.servers, strings(&["hs3"]), "{v:#?}");
        assert_eq!(v.witness.events, vec![late.clone()], "{v:#?}");
    }

    // Held by nobody but its origin, it is owed to everyone: the room did not refuse it.
    let (mut trace, late) = a_late_message_hs3_never_gets(None);
    trace.header.check.invariants = ids(&["liveness"]);
    let violations = only(&run(&trace), "liveness");
    assert!(violations[0].message.contains("never: hs1, hs3"), "{}", violations[0].message);
    assert_eq!(violations[0].witness.events, vec![late]);
}

#[test]
fn a_committed_event_missing_after_restart_breaks_durability() {
    let mut f = fixture(RoomVersion::V11);
    let r = f.room_id.clone();
    let bob = id(&f.bob);
    let at = f.trace.records.iter().position(|r| matches!(r.body, Body::Recovered { .. })).unwrap();
    if let Body::Recovered { event_ids, .. } = &mut f.trace.records[at].body {
        event_ids.retain(|e| *e != bob);
    }
    // hs2 fetches it again afterwards, so only durability is broken.
    f.trace.records.insert(at + 1, event(22, "hs2", &r, &f.bob, Decision::Accepted, false));
    let violations = only(&run(&f.trace), "durability");
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].witness.servers, strings(&["hs2"]));
    assert_eq!(violations[0].witness.events, vec![bob]);
    assert_eq!(violations[0].witness.line, Some(at as u64 + 2));

    // With the crash in the header's schedule, a kept trace holds hs2's commits and finds
    // the same violation alone.
    f.trace.header.faults = vec![Fault::Crash {
        start: Instant::from_ms(20),
        end: Instant::from_ms(21),
        node: NodeName::new("hs2").unwrap(),
    }];
    let text = String::from_utf8(f.trace.to_jsonl()).unwrap();
    let (kept, _) = Trace::read_kept(&mut text.as_bytes()).unwrap();
    assert!(kept.kept.as_ref().unwrap().unkept_crashes.is_empty());
    assert!(
        kept.records
            .iter()
            .any(|r| matches!(&r.body, Body::Commit { server, .. } if server == "hs2"))
    );
    assert!(
        !kept
            .records
            .iter()
            .any(|r| matches!(&r.body, Body::Commit { server, .. } if server == "hs1"))
    );
    assert_eq!(check::check(&kept).violations, violations);

    // A restart never followed by a recovered record is reported at the restart.
    let mut g = fixture(RoomVersion::V11);
    g.trace.records.retain(|r| !matches!(r.body, Body::Recovered { .. }));
    let restart =
        line_where(&g.trace, |b| matches!(b, Body::Node { change: NodeChange::Restart, .. }));
    let violations = only(&run(&g.trace), "durability");
    assert_eq!(violations[0].witness.line, Some(restart));
}

#[test]
fn different_hashes_break_determinism() {
    assert_eq!(check::check_determinism("abc", "abc"), None);
    let v = check::check_determinism("abc", "abd").unwrap();
    assert_eq!(v.invariant, Invariant::Determinism);
    assert!(v.message.contains("abc") && v.message.contains("abd"));

    let f = fixture(RoomVersion::V11);
    assert_eq!(check::check_determinism_traces(&f.trace, &f.trace), None);
    let mut other = f.trace.clone();
    other.records[3].t = 2;
    let v = check::check_determinism_traces(&f.trace, &other).unwrap();
    assert_eq!(v.witness.line, Some(5));
    assert_eq!(v.witness.servers, strings(&["hs1"]));
    // `check` leaves determinism to the caller: one trace cannot show it, so it is not
    // listed as checked even when the header asks for it.
    let mut only_determinism = f.trace.clone();
    only_determinism.header.check.invariants = ids(&["determinism"]);
    assert_eq!(check::check(&only_determinism).checked, Vec::<Invariant>::new());
    let mut every = f.trace.clone();
    every.header.check.invariants = check::INVARIANTS.to_vec();
    assert!(every.header.check.invariants.contains(&Invariant::Determinism));
    assert_eq!(
        check::check(&every).checked,
        ids(&[
            "integrity",
            "auth",
            "dag",
            "convergence",
            "liveness",
            "durability",
            "expectations",
            "linearized"
        ])
    );
}

#[test]
fn only_the_listed_invariants_are_checked() {
    let mut f = fixture(RoomVersion::V11);
    let last = f.trace.records.len() - 1;
    if let Body::Final(view) = &mut f.trace.records[last].body {
        view.state_hash = "H2".into();
    }
    f.trace.header.check.invariants = ids(&["liveness", "dag"]);
    let verdict = run(&f.trace);
    assert!(verdict.passed());
    assert_eq!(verdict.checked, ids(&["dag", "liveness"]));
    // A trace file naming an invariant the checker does not know is refused where it is
    // read, naming the id, rather than checked as if the id were not there.
    let text = String::from_utf8(f.trace.to_jsonl()).unwrap();
    let header = text.lines().next().unwrap();
    let unknown = header.replace(r#"["liveness","dag"]"#, r#"["liveness","no-such-invariant"]"#);
    assert_ne!(unknown, header);
    let records: Vec<&str> =
        text.lines().skip(1).filter(|l| !l.contains(r#""type":"end""#)).collect();
    let mut body = format!("{unknown}\n");
    for line in &records {
        body.push_str(line);
        body.push('\n');
    }
    let sealed = format!(
        "{body}{{\"type\":\"end\",\"records\":{},\"hash\":\"{}\"}}\n",
        records.len(),
        mxsim::trace::hash_jsonl(body.as_bytes())
    );
    let error = mxsim::trace::Trace::parse_jsonl(&sealed).unwrap_err();
    assert_eq!(error.line, 1, "{error}");
    assert!(error.problem.contains("no-such-invariant"), "{error}");
}

/// A random change to one JSON value: replace, drop or retype something inside it.
fn mutate(value: &mut Value, prng: &mut Prng, depth: u32) {
    let choice = prng.index(8);
    match value {
        Value::Object(map) if !map.is_empty() && depth < 6 && choice < 5 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = &keys[prng.index(keys.len())];
            if choice == 0 {
                map.remove(key);
            } else if let Some(inner) = map.get_mut(key) {
                mutate(inner, prng, depth + 1);
            }
        }
        Value::Array(items) if !items.is_empty() && depth < 6 && choice < 5 => {
            let at = prng.index(items.len());
            if choice == 0 {
                items.remove(at);
            } else {
                mutate(&mut items[at], prng, depth + 1);
            }
        }
        _ => {
            let pick = [
                Value::Null,
                json!(-1),
                json!(0),
                json!(9_007_199_254_740_993_u64),
                json!(1.5),
                json!(""),
                json!("$x"),
                json!("hs1"),
                json!("!r:hs1"),
                json!([]),
                json!({}),
                json!({"membership": "join"}),
            ];
            *value = pick[prng.index(pick.len())].clone();
        }
    }
}

#[test]
fn random_damage_never_panics_the_checker() {
    let mut prng = Prng::from_seed(42);
    for version in RoomVersion::ALL {
        let good = fixture(version).trace;
        for _ in 0..25 {
            let mut trace = good.clone();
            let mutations = 1 + prng.index(4);
            for _ in 0..mutations {
                let at = prng.index(trace.records.len());
                match prng.index(5) {
                    0 => {
                        trace.records.remove(at);
                    }
                    1 => {
                        let copy = trace.records[at].clone();
                        let to = prng.index(trace.records.len());
                        trace.records.insert(to, copy);
                    }
                    _ => {
                        let mut value = serde_json::to_value(&trace.records[at]).unwrap();
                        mutate(&mut value, &mut prng, 0);
                        if let Ok(record) = serde_json::from_value::<Record>(value) {
                            trace.records[at] = record;
                        }
                    }
                }
                if trace.records.is_empty() {
                    break;
                }
            }
            if prng.index(4) == 0 {
                let mut value = serde_json::to_value(&trace.header).unwrap();
                mutate(&mut value, &mut prng, 0);
                if let Ok(header) = serde_json::from_value::<Header>(value) {
                    trace.header = header;
                }
            }
            let verdict = check::check(&trace);
            for v in &verdict.violations {
                assert!(check::INVARIANTS.contains(&v.invariant));
            }
        }
    }
}

/// Both servers' `final` records for a room that ends joined, converged on `room`'s state
/// with `last` as the only forward extremity.
fn finals(room: &Room, room_id: &str, last: &Pdu, events: u64) -> Vec<Record> {
    ["hs1", "hs2"]
        .into_iter()
        .map(|server| {
            rec(
                5000,
                Body::Final(Box::new(mxsim::trace::FinalView {
                    server: server.into(),
                    room: room_id.into(),
                    joined: true,
                    forward_extremities: vec![id(last)],
                    state: std::sync::Arc::new(room.nested_state()),
                    state_hash: "H".into(),
                    events,
                    waiting: Vec::new(),
                })),
            )
        })
        .collect()
}

/// A v10 room where alice raises the invite level to 50, then redacts that power-levels
/// event (v10 redaction drops `invite`, so the level falls back to 0), and bob (level 0)
/// invites carol. Each server authorises the invite against the redacted copy from its
/// `redacted` record on, as Synapse does: the checker must too. Returns the trace and
/// whether hs1's `redacted` record is kept.
fn redacted_power_levels_then_invite(hs1_redacts: bool) -> Trace {
    let f = fixture(RoomVersion::V10);
    let mut room = f.room;
    let r = f.room_id.clone();
    let levels = room.send(
        "hs1",
        "m.room.power_levels",
        "@alice:hs1",
        Some(""),
        json!({"users": {"@alice:hs1": 100}, "invite": 50}),
    );
    let mut draft = room.draft("m.room.redaction", "@alice:hs1", None, json!({}));
    draft.insert("redacts".into(), Value::from(id(&levels)));
    let redaction = room.add("hs1", draft);
    let invite = room.send(
        "hs2",
        "m.room.member",
        "@bob:hs2",
        Some("@carol:hs2"),
        json!({"membership": "invite"}),
    );
    // Against the original levels the invite is refused: the premise of the test.
    let original =
        auth::check_state_rules(room.rules, &invite, &room, auth::SignatureCheck::AlreadyVerified);
    assert!(original.is_err(), "bob may not invite under invite level 50");
    let mut records: Vec<Record> =
        f.trace.records.into_iter().filter(|r| !matches!(r.body, Body::Final { .. })).collect();
    let redacted = |server: &str| Body::Redacted {
        server: server.into(),
        room: r.as_str().into(),
        event_id: id(&levels).into(),
        redaction: id(&redaction).into(),
    };
    records.push(event(30, "hs1", &r, &levels, Decision::Created, true));
    records.push(event(31, "hs2", &r, &levels, Decision::Accepted, false));
    records.push(event(32, "hs1", &r, &redaction, Decision::Created, true));
    if hs1_redacts {
        records.push(rec(32, redacted("hs1")));
    }
    records.push(event(33, "hs2", &r, &redaction, Decision::Accepted, false));
    records.push(rec(33, redacted("hs2")));
    records.push(event(40, "hs2", &r, &invite, Decision::Created, true));
    records.push(event(41, "hs1", &r, &invite, Decision::Accepted, false));
    records.extend(finals(&room, &r, &invite, 9));
    Trace::new(header(ALL), records)
}

#[test]
fn auth_is_checked_against_the_redacted_copies_each_server_stored() {
    let trace = redacted_power_levels_then_invite(true);
    let verdict = run(&trace);
    assert_eq!(verdict.violations, vec![], "both servers read the redacted power levels");
    // hs1 accepted the invite without having applied the redaction: against the original
    // levels it was not allowed, for hs1 only, by both the own-auth-events and the
    // state-before checks.
    let trace = redacted_power_levels_then_invite(false);
    let violations = only(&run(&trace), "auth");
    assert_eq!(violations.len(), 2, "{violations:#?}");
    for v in &violations {
        assert_eq!(v.witness.servers, strings(&["hs1"]), "{v:#?}");
        assert!(v.message.contains("invite"), "{}", v.message);
    }
}

/// A v10 room that does not federate (`m.federate: false`, which v10 redaction drops from
/// the create event). alice redacts the create event, and both servers record applying
/// that redaction (as a homeserver that wrongly applied it would); bob, on hs2, then joins
/// and both accept him. Synapse never applies a redaction of the create event
/// (`EventsWorkerStore._maybe_redact_event_row`), so the checker must read the original
/// create, where bob's join breaks rule 3.
#[test]
fn the_checker_never_applies_a_redaction_of_the_create_event() {
    let mut room = Room::new(RoomVersion::V10);
    let content = json!({"room_version": "10", "creator": "@alice:hs1", "m.federate": false});
    let create = room.send("hs1", "m.room.create", "@alice:hs1", Some(""), content);
    let alice = room.send(
        "hs1",
        "m.room.member",
        "@alice:hs1",
        Some("@alice:hs1"),
        json!({"membership": "join"}),
    );
    let power = room.send(
        "hs1",
        "m.room.power_levels",
        "@alice:hs1",
        Some(""),
        json!({"users": {"@alice:hs1": 100}}),
    );
    let rules = room.send(
        "hs1",
        "m.room.join_rules",
        "@alice:hs1",
        Some(""),
        json!({"join_rule": "public"}),
    );
    let mut draft = room.draft("m.room.redaction", "@alice:hs1", None, json!({}));
    draft.insert("redacts".into(), Value::from(id(&create)));
    let redaction = room.add("hs1", draft);
    let bob = room.send(
        "hs2",
        "m.room.member",
        "@bob:hs2",
        Some("@bob:hs2"),
        json!({"membership": "join"}),
    );
    // The premise: against the redacted create, bob's join would pass.
    let redacted_create = Pdu::with_given_id(room.rules, {
        let mut json = redaction::redact(room.rules.redaction, create.json());
        json.insert("event_id".into(), Value::from(id(&create)));
        json
    });
    assert!(redacted_create.is_ok_and(|p| p.content().get("m.federate").is_none()));
    let r = room.room_id.clone();
    let mut records =
        vec![rec(0, Body::Joined { server: "hs1".into(), room: r.clone(), version: "10".into() })];
    let first = [&create, &alice, &power, &rules, &redaction];
    for pdu in first {
        records.push(event(1, "hs1", &r, pdu, Decision::Created, true));
    }
    for pdu in first {
        records.push(event(2, "hs2", &r, pdu, Decision::Accepted, false));
    }
    records
        .push(rec(2, Body::Joined { server: "hs2".into(), room: r.clone(), version: "10".into() }));
    for server in ["hs1", "hs2"] {
        records.push(rec(
            3,
            Body::Redacted {
                server: server.into(),
                room: r.as_str().into(),
                event_id: id(&create).into(),
                redaction: id(&redaction).into(),
            },
        ));
    }
    records.push(event(4, "hs2", &r, &bob, Decision::Created, true));
    records.push(event(5, "hs1", &r, &bob, Decision::Accepted, false));
    records.extend(finals(&room, &r, &bob, 6));
    let trace = Trace::new(header(&["auth"]), records);
    let violations = only(&run(&trace), "auth");
    // Both servers, by both the own-auth-events and the state-before checks.
    assert_eq!(violations.len(), 2, "{violations:#?}");
    for v in &violations {
        assert_eq!(v.witness.servers, strings(&["hs2", "hs1"]), "{v:#?}");
        assert_eq!(v.witness.events, vec![id(&bob)], "{v:#?}");
        assert!(v.message.contains("does not federate"), "{}", v.message);
    }
}

/// The checker's replay of state resolution reads the original events, as Synapse's
/// `StateResolutionStore.get_events` does (`as_is`, synapse/state/__init__.py), even where
/// the servers had applied a redaction. In an invite-only v10 room alice raises the
/// invite level to 50 and redacts that power-levels event (v10 redaction drops `invite`);
/// both servers apply the redaction. Then the room forks: alice sends a message, and bob
/// (level 0) invites dave, which both servers accept against the redacted copy. dave's
/// join merges the two branches. Resolution over the originals refuses bob's invite, so
/// the state before the join has no invite and the join breaks the join rule: servers
/// that accepted it are flagged. Read through the redacted copy, the invite would stand
/// and the join would pass.
#[test]
fn the_checkers_state_resolution_reads_the_originals_of_redacted_events() {
    let f = fixture(RoomVersion::V10);
    let mut room = f.room;
    let r = f.room_id.clone();
    let invite_only = room.send(
        "hs1",
        "m.room.join_rules",
        "@alice:hs1",
        Some(""),
        json!({"join_rule": "invite"}),
    );
    let levels = room.send(
        "hs1",
        "m.room.power_levels",
        "@alice:hs1",
        Some(""),
        json!({"users": {"@alice:hs1": 100}, "invite": 50}),
    );
    let mut draft = room.draft("m.room.redaction", "@alice:hs1", None, json!({}));
    draft.insert("redacts".into(), Value::from(id(&levels)));
    let redaction = room.add("hs1", draft);
    // Branch A: alice's message; branch B: bob's invite, both on top of the redaction.
    let fork = room.last.clone().expect("the room has events");
    let message = room.send(
        "hs1",
        "m.room.message",
        "@alice:hs1",
        None,
        json!({"msgtype": "m.text", "body": "on branch A"}),
    );
    room.last = Some(fork.clone());
    let invite = room.send(
        "hs2",
        "m.room.member",
        "@bob:hs2",
        Some("@dave:hs2"),
        json!({"membership": "invite"}),
    );
    let mut draft =
        room.draft("m.room.member", "@dave:hs2", Some("@dave:hs2"), json!({"membership": "join"}));
    draft.insert("prev_events".into(), json!([id(&message), id(&invite)]));
    draft.insert("depth".into(), Value::from(fork.depth() + 2));
    let join = room.add("hs2", draft);
    // The premise: the join's own auth events hold the invite, so they allow it.
    assert!(join.auth_events().contains(invite.event_id()));
    let mut records: Vec<Record> =
        f.trace.records.into_iter().filter(|r| !matches!(r.body, Body::Final { .. })).collect();
    let mut t = 30;
    for pdu in [&invite_only, &levels, &redaction, &message] {
        records.push(event(t, "hs1", &r, pdu, Decision::Created, true));
        records.push(event(t, "hs2", &r, pdu, Decision::Accepted, false));
        t += 1;
        if pdu.event_id() == redaction.event_id() {
            for server in ["hs1", "hs2"] {
                records.push(rec(
                    t,
                    Body::Redacted {
                        server: server.into(),
                        room: r.as_str().into(),
                        event_id: id(&levels).into(),
                        redaction: id(&redaction).into(),
                    },
                ));
            }
        }
    }
    for pdu in [&invite, &join] {
        records.push(event(t, "hs2", &r, pdu, Decision::Created, true));
        records.push(event(t, "hs1", &r, pdu, Decision::Accepted, false));
        t += 1;
    }
    records.extend(finals(&room, &r, &join, 12));
    let trace = Trace::new(header(&["auth"]), records);
    let violations = only(&run(&trace), "auth");
    assert_eq!(violations.len(), 1, "only the state-before check flags the join: {violations:#?}");
    let v = &violations[0];
    assert!(v.message.contains("against the state before it"), "{}", v.message);
    assert_eq!(v.witness.servers, strings(&["hs2", "hs1"]), "{v:#?}");
    assert_eq!(v.witness.events, vec![id(&join)], "{v:#?}");
}

/// Record texts of event ids.
fn texts(ids: Vec<String>) -> Vec<mxsim::trace::Text> {
    ids.into_iter().map(mxsim::trace::Text::from).collect()
}
