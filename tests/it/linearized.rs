//! Linearized Matrix rooms (docs/linearized.md): the hub's and the participants' parts of
//! the homeserver, wired without a network by the homeserver tests' harness; the scenario
//! pairs of `scenarios/linearized/`; and the `linearized` invariant, which must catch a
//! trace that breaks the model.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::homeserver::{Harness, key};
use mxsim::check;
use mxsim::homeserver::server::OfflineSends;
use mxsim::homeserver::wire::{Request, Transaction};
use mxsim::homeserver::{Action, Config, Decision, Input, Observation, RequestId};
use mxsim::matrix::action::Action as MAction;
use mxsim::matrix::canonical_json::Object;
use mxsim::matrix::pdu::{self, Pdu};
use mxsim::matrix::room_version::LINEARIZED_02;
use mxsim::matrix::{EventId, RoomVersion};
use mxsim::report::compare;
use mxsim::scenario::{Invariant, Scenario};
use mxsim::stdx::Duration;
use mxsim::trace::{Body, Decision as TDecision, Record, Trace};
use mxsim::world::{self, from_scenario};

const LM: RoomVersion = RoomVersion::LinearizedMatrix02;

fn config(offline_sends: OfflineSends) -> Config {
    Config { linearized: true, offline_sends, ..Config::default() }
}

fn object(value: Value) -> Object {
    let Value::Object(object) = value else { panic!("an object") };
    object
}

/// A public Linearized Matrix room created by alice on hs1 (the hub), joined by bob on
/// every other server through hs1.
fn lm_room(names: &[&str], offline_sends: OfflineSends) -> (Harness, String) {
    let mut h = Harness::with_config(names, true, &config(offline_sends));
    let alice = format!("@alice:{}", names[0]);
    h.act(
        names[0],
        alice,
        Action::CreateRoom { version: LM, public: true, name: None, topic: None },
    );
    let room = h.room_created(names[0]);
    for name in &names[1..] {
        let join = Action::Join { room: room.clone(), via: vec![names[0].into()] };
        h.act(name, format!("@bob:{name}"), join);
        h.run(2_000);
    }
    assert_eq!(h.failures(), Vec::<String>::new());
    (h, room)
}

/// A message from the server's user: alice on the hub hs1, bob elsewhere.
fn say(h: &mut Harness, server: &str, room: &str, body: &str) {
    let content = object(json!({"msgtype": "m.text", "body": body}));
    let action = Action::Send {
        room: room.into(),
        event_type: "m.room.message".into(),
        state_key: None,
        content,
    };
    let user = if server == "hs1" { "@alice:hs1".to_owned() } else { format!("@bob:{server}") };
    h.act(server, user, action);
}

fn set_level(h: &mut Harness, room: &str, target: &str, level: i64) {
    let action = Action::Power { room: room.into(), target: target.into(), level };
    h.act("hs1", "@alice:hs1".into(), action);
}

/// The observations of one server, in order.
fn seen<'h>(h: &'h Harness, server: &str) -> Vec<&'h Observation> {
    h.observations.iter().filter(|(s, _)| s == server).map(|(_, o)| o).collect()
}

/// The one forward extremity of `server`'s copy of the room: the head of its list.
fn head(h: &Harness, server: &str, room: &str) -> EventId {
    let extremities = &h.servers[server].store().room(room).unwrap().forward_extremities;
    assert_eq!(extremities.len(), 1, "{server}: a list has one head");
    extremities.iter().next().unwrap().clone()
}

#[test]
fn the_hub_completes_a_participants_lpdu_and_echoes_it() {
    let (mut h, room) = lm_room(&["hs1", "hs2", "hs3"], OfflineSends::Queue);
    let before = head(&h, "hs1", &room);
    say(&mut h, "hs2", &room, "hello through the hub");
    h.run(2_000);
    // The participant sent an LPDU, the hub appended it, and its echo came back.
    let sent: Vec<EventId> = seen(&h, "hs2")
        .iter()
        .filter_map(|o| match o {
            Observation::LpduSent { lpdu_id, hub, .. } if hub == "hs1" => Some(lpdu_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1);
    let appended: Vec<(EventId, EventId, String)> = seen(&h, "hs1")
        .iter()
        .filter_map(|o| match o {
            Observation::Linearized { lpdu_id, event_id, origin, .. } if *lpdu_id == sent[0] => {
                Some((lpdu_id.clone(), event_id.clone(), origin.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(appended.len(), 1, "appended once");
    let (_, event_id, origin) = &appended[0];
    assert_eq!(origin, "hs2");
    let echoed = seen(&h, "hs2").iter().any(|o| {
        matches!(o, Observation::LpduAccepted { lpdu_id, event_id: e, .. }
            if *lpdu_id == sent[0] && e == event_id)
    });
    assert!(echoed, "the sender saw its LPDU come back");
    // The completed event: the hub's and the sender's signatures, one prev event (the head
    // before it), no depth, and every server's list ends with it.
    let stored = h.servers["hs3"].store().pdu(event_id).unwrap().clone();
    assert_eq!(stored.hub_server(), Some("hs1"));
    assert_eq!(stored.prev_events(), std::slice::from_ref(&before));
    assert!(!stored.json().contains_key("depth"));
    let signers: BTreeSet<&String> =
        stored.json()["signatures"].as_object().unwrap().keys().collect();
    assert_eq!(signers, BTreeSet::from([&"hs1".to_owned(), &"hs2".to_owned()]));
    for server in ["hs1", "hs2", "hs3"] {
        assert_eq!(head(&h, server, &room), *event_id, "{server}");
    }
    assert_eq!(h.state("hs2", &room), h.state("hs1", &room));
    assert_eq!(h.state("hs3", &room), h.state("hs1", &room));
}

#[test]
fn the_hub_refuses_an_lpdu_its_list_forbids_and_the_sender_learns_why() {
    let (mut h, room) = lm_room(&["hs1", "hs2"], OfflineSends::Queue);
    set_level(&mut h, &room, "@bob:hs2", 50);
    h.run(2_000);
    // hs2 does not hear of bob's demotion, so its own check lets his topic through.
    h.cut.insert(("hs1".into(), "hs2".into()));
    set_level(&mut h, &room, "@bob:hs2", 0);
    h.run_for(Duration::from_secs(5));
    h.cut.clear();
    let topic = Action::Send {
        room: room.clone(),
        event_type: "m.room.topic".into(),
        state_key: Some(String::new()),
        content: object(json!({"topic": "bob's, refused"})),
    };
    h.act("hs2", "@bob:hs2".into(), topic);
    h.run_for(Duration::from_secs(5));
    let refused_at_hub = seen(&h, "hs1").iter().any(
        |o| matches!(o, Observation::LpduFailed { reason, .. } if reason.contains("not allowed")),
    );
    assert!(refused_at_hub, "{:?}", seen(&h, "hs1"));
    let told = seen(&h, "hs2").iter().any(|o| {
        matches!(o, Observation::LpduFailed { reason, .. }
            if reason.starts_with("refused by the hub") && reason.contains("not allowed"))
    });
    assert!(told, "the hub's failed_pdus reached the sender: {:?}", seen(&h, "hs2"));
}

/// A `/send` transaction from `origin` carrying `pdus`, as the harness delivers it.
fn transaction(h: &mut Harness, origin: &str, to: &str, txn: &str, pdus: Vec<Object>) {
    let transaction =
        Transaction { origin: origin.into(), origin_server_ts: 1, pdus, edus: Vec::new() };
    let request = Request::SendTransaction { txn_id: txn.into(), transaction }.to_http();
    h.input(to, Input::Request { origin: origin.into(), id: RequestId(9_999), request });
}

#[test]
fn participants_take_the_rooms_events_from_the_hub_only() {
    let (mut h, room) = lm_room(&["hs1", "hs2", "hs3"], OfflineSends::Queue);
    h.cut.insert(("hs1".into(), "hs2".into()));
    say(&mut h, "hs1", &room, "hs2 does not hear this from the hub");
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.failures(), Vec::<String>::new());
    let event = head(&h, "hs1", &room);
    let json = h.servers["hs1"].store().pdu(&event).unwrap().json().clone();
    // hs3 passes the hub's event on to hs2: a participant drops it.
    transaction(&mut h, "hs3", "hs2", "relay", vec![json]);
    assert!(!h.servers["hs2"].store().contains(&event));
    let dropped = seen(&h, "hs2").iter().any(|o| {
        matches!(o, Observation::Event { event_id: Some(id), decision: Decision::Dropped, reason: Some(r), .. }
            if *id == event && r.contains("not from the room's hub hs1"))
    });
    assert!(dropped, "{:?}", seen(&h, "hs2"));
}

#[test]
fn a_participant_records_a_hub_that_forks_its_list() {
    let (mut h, room) = lm_room(&["hs1", "hs2"], OfflineSends::Queue);
    say(&mut h, "hs1", &room, "first");
    h.run(2_000);
    let first = head(&h, "hs1", &room);
    say(&mut h, "hs1", &room, "second");
    h.run(2_000);
    assert_eq!(h.failures(), Vec::<String>::new());
    // A hub event that names the older event as its prev: a second branch of the list,
    // signed by the hub itself.
    let rules = &LINEARIZED_02;
    let mut forged = h.servers["hs1"].store().pdu(&head(&h, "hs1", &room)).unwrap().json().clone();
    forged.remove("hashes");
    forged.remove("signatures");
    forged.insert("prev_events".into(), json!([first.as_str()]));
    forged.insert("content".into(), json!({"msgtype": "m.text", "body": "a fork"}));
    let forged: Pdu = pdu::build_signed(rules, forged, "hs1", &key("hs1")).unwrap();
    transaction(&mut h, "hs1", "hs2", "fork", vec![forged.json().clone()]);
    assert!(!h.servers["hs2"].store().contains(forged.event_id()), "not appended");
    let recorded = seen(&h, "hs2").iter().any(|o| {
        matches!(o, Observation::HubMisbehaviour { event_id, fault, .. }
            if event_id == forged.event_id() && fault == "not_after_head")
    });
    assert!(recorded, "{:?}", seen(&h, "hs2"));
}

#[test]
fn sends_while_the_hub_is_away_queue_or_fail_as_configured() {
    for offline in [OfflineSends::Queue, OfflineSends::Fail] {
        let (mut h, room) = lm_room(&["hs1", "hs2"], offline);
        h.cut_both_ways("hs2", "hs1");
        say(&mut h, "hs2", &room, "while the hub is away");
        // Long enough for outbound delivery to mark the hub down (ten failed retries).
        h.run_for(Duration::from_secs(600));
        say(&mut h, "hs2", &room, "after the hub was marked down");
        h.cut.clear();
        // The hub's next event marks hs2's peer up again, and catch-up goes on.
        say(&mut h, "hs1", &room, "the hub is back");
        h.run_for(Duration::from_secs(900));
        let (mut accepted, mut failed) = (0, Vec::new());
        for o in seen(&h, "hs2") {
            match o {
                Observation::LpduAccepted { .. } => accepted += 1,
                Observation::LpduFailed { reason, .. } => failed.push(reason.clone()),
                _ => {}
            }
        }
        let refused_at_once = h.failures().iter().any(|f| f.contains("unreachable (marked down)"));
        match offline {
            // Both sends are accepted once the hub is back.
            OfflineSends::Queue => {
                assert_eq!((accepted, failed.len(), refused_at_once), (2, 0, false), "{failed:?}");
            }
            // The first is given up when the hub is marked down; the second fails at once.
            OfflineSends::Fail => {
                assert_eq!((accepted, refused_at_once), (0, true));
                assert_eq!(failed.len(), 1);
                assert!(failed[0].contains("given up: the hub hs1 was marked down"), "{failed:?}");
            }
        }
    }
}

// --- The scenario pairs of scenarios/linearized/ ---

/// Every file of `scenarios/linearized/`, parsed.
fn pair_files() -> Vec<(String, Scenario)> {
    crate::scenario::parse_dir("scenarios/linearized")
        .into_iter()
        .map(|(path, parsed)| (path.file_stem().unwrap().to_str().unwrap().to_owned(), parsed))
        .collect()
}

/// The room version each `create_room` step asks for.
fn versions(s: &Scenario) -> Vec<RoomVersion> {
    s.steps
        .iter()
        .filter_map(|step| match &step.action {
            MAction::CreateRoom { version, .. } => Some(*version),
            _ => None,
        })
        .collect()
}

#[test]
fn each_linear_scenario_has_a_dag_twin_with_the_same_workload_and_faults() {
    let files = pair_files();
    let by_name: std::collections::BTreeMap<&str, &Scenario> =
        files.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let mut pairs = 0;
    for (name, linear) in &files {
        assert_eq!(*name, linear.name, "a file is named after its scenario");
        assert!(!linear.expectations.is_empty(), "{name}: says what it demonstrates");
        let Some(stem) = name.strip_suffix("-linear") else {
            assert!(name.ends_with("-dag"), "{name}: -dag or -linear");
            assert!(versions(linear).iter().all(|v| !v.rules().lpdus), "{name}");
            assert!(!linear.check.checks(Invariant::Linearized), "{name}: no LM room");
            continue;
        };
        assert!(versions(linear).iter().all(|v| v.rules().lpdus), "{name}");
        assert!(linear.check.checks(Invariant::Linearized), "{name}: checked by default");
        // The fail-mode variant's twin is the queue-mode file's twin.
        let twin = stem.strip_suffix("-fail").unwrap_or(stem);
        let dag = by_name.get(format!("{twin}-dag").as_str()).unwrap_or_else(|| {
            panic!("{name}: no {twin}-dag.toml");
        });
        assert_eq!(linear.servers, dag.servers, "{name}");
        assert_eq!(linear.faults, dag.faults, "{name}");
        let unlined = |s: &Scenario| {
            let mut workloads = s.workloads.clone();
            workloads.iter_mut().for_each(|w| w.line = 0);
            workloads
        };
        assert_eq!(unlined(linear), unlined(dag), "{name}");
        assert_eq!(linear.network, dag.network, "{name}");
        if stem == twin {
            // Same steps at the same times, but for the room version.
            let strip = |s: &Scenario| -> Vec<String> {
                s.steps
                    .iter()
                    .map(|step| {
                        let mut step = step.clone();
                        if let MAction::CreateRoom { version, .. } = &mut step.action {
                            *version = RoomVersion::V11;
                        }
                        format!("{:?}", (step.at_ms, &step.server, &step.user, &step.action))
                    })
                    .collect()
            };
            assert_eq!(strip(linear), strip(dag), "{name}");
            pairs += 1;
        }
    }
    assert_eq!(pairs, 6, "six pairs");
}

fn seeds() -> std::ops::RangeInclusive<u64> {
    crate::curated::seeds_or("1..=10")
}

#[test]
fn every_scenario_pair_passes_its_invariants() {
    let mut failures = Vec::new();
    for (name, parsed) in pair_files() {
        for seed in seeds() {
            let plan = from_scenario::plan(&parsed, seed, "test").unwrap();
            let output = world::run(&plan).unwrap();
            let verdict = check::check(&output.trace);
            if !verdict.passed() {
                let mut text = format!("{name} seed {seed}:");
                for v in verdict.violations.iter().take(5) {
                    text.push_str(&format!("\n  {}: {}", v.invariant, v.message));
                }
                let repro = format!("mxsim run scenarios/linearized/{name}.toml --seed {seed}");
                text.push_str(&format!("\n  reproduce: {repro}"));
                failures.push(text);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// --- The `linearized` invariant catches what breaks the model ---

/// The trace of participant-partitioned-linear, seed 1, which passes.
fn passing_trace() -> Trace {
    let (_, parsed) =
        pair_files().into_iter().find(|(n, _)| n == "participant-partitioned-linear").unwrap();
    let plan = from_scenario::plan(&parsed, 1, "test").unwrap();
    let trace = world::run(&plan).unwrap().trace;
    let verdict = check::check(&trace);
    assert!(verdict.passed(), "{:?}", verdict.violations);
    assert!(verdict.checked.contains(&Invariant::Linearized));
    trace
}

/// The `linearized` violations of a trace, as messages.
fn linearized_violations(trace: &Trace) -> Vec<String> {
    check::check(trace)
        .violations
        .into_iter()
        .filter(|v| v.invariant == Invariant::Linearized)
        .map(|v| v.message)
        .collect()
}

fn position(trace: &Trace, what: impl Fn(&Body) -> bool) -> usize {
    trace.records.iter().position(|r| what(&r.body)).expect("the record exists")
}

#[test]
fn a_participant_missing_part_of_the_list_is_a_gap() {
    let mut trace = passing_trace();
    // hs2's last accepted event disappears from its record.
    let last = trace
        .records
        .iter()
        .rposition(|r| {
            matches!(&r.body, Body::Event { server, decision: TDecision::Accepted, .. } if server == "hs2")
        })
        .unwrap();
    trace.records.remove(last);
    let found = linearized_violations(&trace);
    assert!(found.iter().any(|m| m.contains("hs2 is joined at the end but lacks 1")), "{found:?}");
}

#[test]
fn appending_out_of_the_hubs_order_is_caught() {
    let mut trace = passing_trace();
    let accepted = |server: &str, trace: &Trace| -> Vec<usize> {
        (0..trace.records.len())
            .filter(|i| {
                matches!(&trace.records[*i].body, Body::Event { server: s, decision: TDecision::Accepted, .. } if s == server)
            })
            .collect()
    };
    let at = accepted("hs3", &trace);
    let (a, b) = (at[at.len() - 2], at[at.len() - 1]);
    let (first, second) = (trace.records[a].body.clone(), trace.records[b].body.clone());
    trace.records[a].body = second;
    trace.records[b].body = first;
    let found = linearized_violations(&trace);
    assert!(found.iter().any(|m| m.contains("not in the hub's order")), "{found:?}");
}

#[test]
fn a_state_the_hubs_list_never_had_is_caught() {
    let mut trace = passing_trace();
    let at = position(&trace, |b| matches!(b, Body::State { server, .. } if server == "hs4"));
    if let Body::State { state_hash, .. } = &mut trace.records[at].body {
        *state_hash = "AAAAAAAAAAAAAAAA".into();
    }
    let found = linearized_violations(&trace);
    assert!(found.iter().any(|m| m.contains("hs4 reports state AAAAAAAAAAAAAAAA")), "{found:?}");
}

#[test]
fn an_lpdu_nobody_accounts_for_is_lost() {
    let mut trace = passing_trace();
    let at = position(&trace, |b| matches!(b, Body::LpduSent { server, .. } if server == "hs4"));
    let Body::LpduSent { lpdu_id, .. } = trace.records[at].body.clone() else { unreachable!() };
    // Neither the hub's append nor the echo is recorded: the LPDU is unaccounted for.
    trace.records.retain(|r| match &r.body {
        Body::Linearized { lpdu_id: l, .. } | Body::LpduAccepted { lpdu_id: l, .. } => {
            *l != lpdu_id
        }
        _ => true,
    });
    let found = linearized_violations(&trace);
    let lost = format!("the LPDU {lpdu_id} that hs4 sent is lost");
    assert!(found.iter().any(|m| m.contains(&lost)), "{found:?}");
    // Appended twice is caught too.
    let mut twice = passing_trace();
    let at = position(&twice, |b| matches!(b, Body::Linearized { .. }));
    let copy = twice.records[at].clone();
    twice.records.insert(at + 1, copy);
    let found = linearized_violations(&twice);
    assert!(found.iter().any(|m| m.contains("was appended 2 times")), "{found:?}");
}

#[test]
fn a_recorded_hub_fault_is_a_violation() {
    let mut trace = passing_trace();
    let at = trace.records.len() - 1;
    let t = trace.records[at].t;
    let fault = Body::HubFault {
        server: "hs2".into(),
        room: "!r0n0:hs1".into(),
        event_id: "$x".into(),
        fault: "not_after_head".into(),
        reason: "prev_events [$y] is not the head of the list [$z]".into(),
    };
    trace.records.insert(at, Record { t, body: fault });
    let found = linearized_violations(&trace);
    assert!(
        found.iter().any(|m| m.contains("hs2 found the hub at fault (not_after_head)")),
        "{found:?}"
    );
}

#[test]
fn a_dag_capable_servers_copy_is_not_held_to_the_list() {
    // hs5 records an event the hub never appended and a state the list never had. As a
    // participant (the event's sender on the hub, so hs5 originates no PDU) that breaks
    // checks 2 and 3; as a DAG-capable server (it originates a PDU without hub_server) it
    // holds the DAG, not the list, and both checks skip it.
    let passing = passing_trace();
    let room = "!r0n0:hs1";
    let with_event_from = |sender: &str| -> Vec<String> {
        let mut trace = passing.clone();
        let at = trace.records.len() - 1;
        let t = trace.records[at].t;
        let json = object(json!({
            "room_id": room, "type": "m.room.message", "sender": sender,
            "origin_server_ts": 1, "content": {"body": "from the DAG"},
            "auth_events": ["$a"], "prev_events": ["$p"],
        }));
        let pdu = pdu::build_signed(&LINEARIZED_02, json, "hs5", &key("hs5")).unwrap();
        let event = Body::Event {
            server: "hs5".into(),
            room: room.into(),
            event_id: Some(pdu.event_id().as_str().into()),
            decision: TDecision::Created,
            reason: None,
            pdu: Some(std::sync::Arc::new(pdu.json().clone())),
        };
        let state =
            Body::State { server: "hs5".into(), room: room.into(), state_hash: "AAAAAAAA".into() };
        trace.records.insert(at, Record { t, body: state });
        trace.records.insert(at, Record { t, body: event });
        linearized_violations(&trace)
    };
    let found = with_event_from("@alice:hs1");
    assert!(found.iter().any(|m| m.contains("hs5 appended")), "{found:?}");
    assert!(found.iter().any(|m| m.contains("hs5 reports state AAAAAAAA")), "{found:?}");
    let found = with_event_from("@eve:hs5");
    assert!(found.iter().all(|m| !m.contains("hs5")), "{found:?}");
}

// --- `mxsim compare` ---

fn run_pair(pair: &str, seed: u64) -> (Trace, Trace) {
    let files = pair_files();
    let trace = |kind: &str| {
        let (_, parsed) = files.iter().find(|(n, _)| *n == format!("{pair}-{kind}")).unwrap();
        world::run(&from_scenario::plan(parsed, seed, "test").unwrap()).unwrap().trace
    };
    (trace("dag"), trace("linear"))
}

#[test]
fn compare_counts_what_the_traces_show() {
    let (dag, linear) = run_pair("hub-partitioned", 1);
    let (d, l) = (compare::figures(&dag), compare::figures(&linear));
    // The same workload and steps: the same sends attempted, all accepted in the end.
    assert_eq!(d.sends.attempted, l.sends.attempted);
    assert!(d.sends.attempted > 20);
    assert_eq!((d.sends.accepted, l.sends.accepted), (d.sends.attempted, l.sends.attempted));
    // A DAG room accepts at its own server at once; a linearized one only through the hub,
    // which was away for 30 s.
    assert_eq!(d.sends.prompt, d.sends.attempted);
    assert!(l.during_faults.prompt < l.during_faults.attempted, "{:?}", l.during_faults);
    assert_eq!(l.merges, 0);
    assert!(l.conflicted_merges.is_empty());
    // The longest wait, found independently: from a participant's `lpdu_sent` to the hub's
    // `linearized` of the same LPDU.
    let mut appended = std::collections::BTreeMap::new();
    for r in &linear.records {
        if let Body::Linearized { lpdu_id, .. } = &r.body {
            appended.insert(lpdu_id.clone(), r.t);
        }
    }
    let longest = linear
        .records
        .iter()
        .filter_map(|r| match &r.body {
            Body::LpduSent { lpdu_id, .. } => appended.get(lpdu_id).map(|at| at - r.t),
            _ => None,
        })
        .max()
        .unwrap();
    assert_eq!(l.delays_ms.last(), Some(&longest));
    assert!(longest >= 20_000, "a send waited for most of the partition: {longest} ms");
    // Messages are every `send` record.
    let sends = linear.records.iter().filter(|r| matches!(r.body, Body::Send { .. })).count();
    assert_eq!(l.messages, sends as u64);
    let table = compare::markdown(&[("dag", &d), ("linear", &l)]);
    assert!(table.contains("| room kind | DAG (v11) | Linearized Matrix |"), "{table}");
}

#[test]
fn mxsim_compare_reads_two_runs_and_writes_the_page() {
    let (dag, linear) = run_pair("participant-partitioned", 2);
    let dir = std::env::temp_dir().join(format!("mxsim-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("a/trace.jsonl"), dag.to_jsonl()).unwrap();
    std::fs::write(dir.join("b.jsonl"), linear.to_jsonl()).unwrap();
    let bin = env!("CARGO_BIN_EXE_mxsim");
    let out = std::process::Command::new(bin)
        .args(["compare"])
        .arg(dir.join("a"))
        .arg(dir.join("b.jsonl"))
        .arg("--out")
        .arg(dir.join("cmp"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("| room kind | DAG (v11) | Linearized Matrix |"), "{stdout}");
    assert_eq!(std::fs::read_to_string(dir.join("cmp/compare.md")).unwrap(), stdout);
    let page = std::fs::read_to_string(dir.join("cmp/compare.html")).unwrap();
    assert_eq!(page.matches("<svg").count(), 2, "both DAGs are drawn");
    // A run that is not there: exit 2, naming it.
    let missing = dir.join("nothing");
    let out = std::process::Command::new(bin)
        .args(["compare"])
        .arg(dir.join("a"))
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains(&missing.display().to_string()) && !stderr.contains("panicked"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_sends_waiting_for_a_hub_are_bounded() {
    let names = ["hs1", "hs2"];
    let config = Config { lpdus_pending_max: 3, ..config(OfflineSends::Queue) };
    let mut h = Harness::with_config(&names, true, &config);
    let create = Action::CreateRoom { version: LM, public: true, name: None, topic: None };
    h.act("hs1", "@alice:hs1".into(), create);
    let room = h.room_created("hs1");
    h.act("hs2", "@bob:hs2".into(), Action::Join { room: room.clone(), via: vec!["hs1".into()] });
    h.run(2_000);
    h.cut.insert(("hs2".into(), "hs1".into()));
    for n in 0..4 {
        say(&mut h, "hs2", &room, &format!("waiting {n}"));
    }
    let failures = h.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("3 sends already wait for their hubs"), "{failures:?}");
}

/// Restarts `server` from its committed store: everything volatile (queues) is lost.
fn crash_and_restart(h: &mut Harness, server: &str, names: &[&str]) {
    let mut keys = mxsim::matrix::crypto::KeyRing::new();
    for name in names {
        keys.entry((*name).to_owned())
            .or_default()
            .insert("ed25519:1".into(), key(name).public_key());
    }
    let store = h.servers[server].store().clone();
    let prng = mxsim::stdx::Prng::from_seed(9).fork(server);
    let restarted = mxsim::homeserver::Homeserver::recover(
        server,
        key(server),
        keys,
        config(OfflineSends::Queue),
        prng,
        h.now,
        store,
    );
    h.servers.insert(server.to_owned(), restarted);
}

fn accepted(h: &Harness, server: &str) -> usize {
    seen(h, server).iter().filter(|o| matches!(o, Observation::LpduAccepted { .. })).count()
}

#[test]
fn the_hub_stays_the_hub_when_its_last_user_leaves() {
    let (mut h, room) = lm_room(&["hs1", "hs2"], OfflineSends::Queue);
    let leave = Action::Leave { room: room.clone(), via: Vec::new() };
    h.act("hs1", "@alice:hs1".into(), leave);
    h.run(2_000);
    say(&mut h, "hs2", &room, "the hub has no user in the room");
    h.run(2_000);
    assert_eq!(accepted(&h, "hs2"), 1, "the hub still appends");
    let join = Action::Join { room: room.clone(), via: Vec::new() };
    h.act("hs1", "@alice:hs1".into(), join);
    h.run(2_000);
    assert_eq!(h.failures(), Vec::<String>::new());
    assert_eq!(h.state("hs2", &room), h.state("hs1", &room));
}

#[test]
fn a_participant_sends_again_an_lpdu_whose_echo_was_lost() {
    let names = ["hs1", "hs2"];
    let (mut h, room) = lm_room(&names, OfflineSends::Queue);
    h.cut.insert(("hs1".into(), "hs2".into()));
    say(&mut h, "hs2", &room, "appended, but the echo is lost");
    h.run_for(Duration::from_secs(5));
    assert!(seen(&h, "hs1").iter().any(|o| matches!(o, Observation::Linearized { .. })));
    // The hub crashes with the echo still in its queue; nothing else happens in the room.
    crash_and_restart(&mut h, "hs1", &names);
    h.cut.clear();
    h.run_for(Duration::from_secs(120));
    assert_eq!(accepted(&h, "hs2"), 1, "{:?}", seen(&h, "hs2"));
    assert_eq!(h.state("hs2", &room), h.state("hs1", &room));
}

#[test]
fn a_participant_that_missed_its_kick_learns_it_from_the_hubs_refusal() {
    let names = ["hs1", "hs2"];
    let (mut h, room) = lm_room(&names, OfflineSends::Queue);
    h.cut.insert(("hs1".into(), "hs2".into()));
    let kick = Action::Kick { room: room.clone(), target: "@bob:hs2".into() };
    h.act("hs1", "@alice:hs1".into(), kick);
    h.run_for(Duration::from_secs(5));
    crash_and_restart(&mut h, "hs1", &names);
    h.cut.clear();
    assert!(h.servers["hs2"].is_resident(&room), "hs2 has not heard of the kick");
    say(&mut h, "hs2", &room, "refused: bob was kicked");
    h.run_for(Duration::from_secs(30));
    assert!(seen(&h, "hs2").iter().any(|o| matches!(o, Observation::LpduFailed { .. })));
    assert!(!h.servers["hs2"].is_resident(&room), "hs2 caught up with its kick");
    assert_eq!(h.state("hs2", &room), h.state("hs1", &room));
}

#[test]
fn history_missed_while_away_is_not_a_hub_fault() {
    let (mut h, room) = lm_room(&["hs1", "hs2"], OfflineSends::Queue);
    let leave = Action::Leave { room: room.clone(), via: Vec::new() };
    h.act("hs2", "@bob:hs2".into(), leave);
    h.run(2_000);
    assert!(!h.servers["hs2"].is_resident(&room));
    say(&mut h, "hs1", &room, "while bob is away");
    h.run(2_000);
    let missed = head(&h, "hs1", &room);
    let join = Action::Join { room: room.clone(), via: vec!["hs1".into()] };
    h.act("hs2", "@bob:hs2".into(), join);
    h.run(2_000);
    assert_eq!(h.failures(), Vec::<String>::new());
    // A late copy of an event from before bob's new join (a hub's queue can deliver one).
    let json = h.servers["hs1"].store().pdu(&missed).unwrap().json().clone();
    transaction(&mut h, "hs1", "hs2", "late", vec![json]);
    h.run(2_000);
    let faults =
        seen(&h, "hs2").iter().filter(|o| matches!(o, Observation::HubMisbehaviour { .. })).count();
    assert_eq!(faults, 0, "{:?}", seen(&h, "hs2"));
    let dropped = seen(&h, "hs2").iter().any(|o| {
        matches!(o, Observation::Event { event_id: Some(id), decision: Decision::Dropped, reason: Some(r), .. }
            if *id == missed && r.contains("history from before this server's last join"))
    });
    assert!(dropped, "{:?}", seen(&h, "hs2"));
    assert_eq!(h.state("hs2", &room), h.state("hs1", &room));
}

mod mixed;
