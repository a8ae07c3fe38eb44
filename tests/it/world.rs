//! The simulator end to end on hand-built plans: determinism, convergence after a
//! partition, and durability across a crash.

use std::collections::BTreeMap;
use std::sync::Arc;

use mxsim::homeserver::Config;
use mxsim::matrix::RoomVersion;
use mxsim::matrix::canonical_json::Object;
use mxsim::net::{Fault, FaultSchedule, NetConfig, NodeName};
use mxsim::stdx::Instant;
use mxsim::trace::{Body, CheckSettings, Decision};
use mxsim::world::{Plan, Step, StepAction, run};
use serde_json::Value;

fn step(at_ms: u64, server: &str, user: &str, action: StepAction) -> Step {
    // A create_room step names the room it makes: every plan here has one room, `main`.
    let new_room = matches!(action, StepAction::CreateRoom { .. }).then(|| "main".to_owned());
    Step {
        at_ms,
        server: server.into(),
        user: user.into(),
        action,
        new_room,
        label: None,
        line: 0,
        expect: mxsim::scenario::StepExpect::Succeed,
        retries: 0,
    }
}

fn message(room: &str, body: &str) -> StepAction {
    let mut content = Object::new();
    content.insert("msgtype".into(), Value::from("m.text"));
    content.insert("body".into(), Value::from(body));
    StepAction::Send {
        room: room.into(),
        event_type: "m.room.message".into(),
        state_key: None,
        content,
    }
}

/// Two servers in a v12 room, talking, cut apart by `faults`, each side sending.
pub fn two_servers(seed: u64, faults: Vec<Fault>) -> Plan {
    let servers = vec!["hs1".to_owned(), "hs2".to_owned()];
    let nodes = servers.iter().map(|s| NodeName::new(s).unwrap()).collect();
    let mut steps = vec![
        step(
            0,
            "hs1",
            "@alice:hs1",
            StepAction::CreateRoom {
                version: RoomVersion::V12,
                public: true,
                name: Some("Main".into()),
                topic: None,
            },
        ),
        step(
            100,
            "hs2",
            "@bob:hs2",
            StepAction::Join { room: "main".into(), via: vec!["hs1".into()] },
        ),
    ];
    for i in 0..10u64 {
        steps.push(step(1000 + i * 500, "hs1", "@alice:hs1", message("main", &format!("a{i}"))));
        steps.push(step(1200 + i * 500, "hs2", "@bob:hs2", message("main", &format!("b{i}"))));
    }
    steps.push(step(
        3000,
        "hs1",
        "@alice:hs1",
        StepAction::Power { room: "main".into(), target: "@bob:hs2".into(), level: 50 },
    ));
    Plan {
        scenario: "two-servers".into(),
        seed,
        servers,
        steps,
        network: NetConfig::default(),
        faults: FaultSchedule::new(nodes, faults).unwrap(),
        end_ms: 120_000,
        check: CheckSettings {
            invariants: vec![],
            liveness_bound_ms: 60_000,
            expect: Default::default(),
        },
        server_config: Config::default(),
        server_configs: Default::default(),
        mxsim_version: "test".into(),
        swarm: None,
        share_resolutions: true,
        share_snapshots: true,
    }
}

fn finals(trace: &mxsim::trace::Trace) -> Vec<(String, bool, String, u64)> {
    trace
        .records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Final(view) => Some((
                view.server.to_string(),
                view.joined,
                view.state_hash.to_string(),
                view.events,
            )),
            _ => None,
        })
        .collect()
}

fn partition(start: u64, end: u64) -> Fault {
    Fault::Partition {
        start: Instant::from_ms(start),
        end: Instant::from_ms(end),
        groups: vec![vec![NodeName::new("hs1").unwrap()]],
    }
}

#[test]
fn two_servers_converge_after_a_partition_and_repeat_exactly() {
    let plan = two_servers(1, vec![partition(1500, 6000)]);
    let first = run(&plan).unwrap();
    let finals = finals(&first.trace);
    assert_eq!(finals.len(), 2, "{finals:?}");
    assert!(finals.iter().all(|f| f.1), "both joined: {finals:?}");
    assert_eq!(finals[0].2, finals[1].2, "same state: {finals:?}");
    assert_eq!(finals[0].3, finals[1].3, "same event count: {finals:?}");
    // 21 messages and power levels beyond the room's setup were created and accepted.
    let created = first
        .trace
        .records
        .iter()
        .filter(|r| matches!(&r.body, Body::Event { decision: Decision::Created, .. }))
        .count();
    assert_eq!(created, first.events.len());
    assert!(created >= 21 + 6, "{created}");
    // Messages were lost to the partition.
    assert!(first.trace.records.iter().any(|r| matches!(r.body, Body::Drop { .. })));

    let again = run(&plan).unwrap();
    assert_eq!(first.trace.hash(), again.trace.hash(), "same seed, same trace");
    let other = run(&two_servers(2, vec![partition(1500, 6000)])).unwrap();
    assert_ne!(first.trace.hash(), other.trace.hash(), "another seed, another trace");
}

#[test]
fn a_crashed_server_keeps_what_it_committed() {
    let crash = Fault::Crash {
        start: Instant::from_ms(2600),
        end: Instant::from_ms(9000),
        node: NodeName::new("hs2").unwrap(),
    };
    let output = run(&two_servers(3, vec![crash])).unwrap();
    let records = &output.trace.records;
    let crash_at = records
        .iter()
        .position(|r| matches!(&r.body, Body::Node { change: mxsim::trace::NodeChange::Crash, .. }))
        .expect("the crash is recorded");
    let committed: std::collections::BTreeSet<String> = records
        .iter()
        .take(crash_at)
        .filter_map(|r| match &r.body {
            Body::Commit { server, event_ids } if server == "hs2" => Some(event_ids),
            _ => None,
        })
        .flatten()
        .map(|id| id.as_str().to_owned())
        .collect();
    assert!(!committed.is_empty());
    let recovered: std::collections::BTreeSet<String> = records
        .iter()
        .find_map(|r| match &r.body {
            Body::Recovered { server, event_ids } if server == "hs2" => {
                Some(event_ids.iter().cloned().collect())
            }
            _ => None,
        })
        .expect("the restart is recorded");
    assert!(committed.is_subset(&recovered));
    let finals = finals(&output.trace);
    assert_eq!(finals[0].2, finals[1].2, "same state after the restart: {finals:?}");
    assert_eq!(finals[0].3, finals[1].3, "{finals:?}");
}

/// A server whose only user leaves and later joins again: the trace records `joined`,
/// `left` and `joined` again for it, and the events created while it was out are not
/// owed to it (no liveness or convergence violation for them).
#[test]
fn a_server_that_leaves_and_rejoins_is_recorded_and_owed_only_what_came_while_joined() {
    let mut plan = two_servers(1, vec![]);
    // Bob leaves at 6 s, alice talks alone, bob joins again at 9 s and both talk on.
    plan.steps.push(step(
        6000,
        "hs2",
        "@bob:hs2",
        StepAction::Leave { room: "main".into(), via: vec![] },
    ));
    for i in 0..4u64 {
        plan.steps.push(step(
            6500 + i * 500,
            "hs1",
            "@alice:hs1",
            message("main", &format!("alone{i}")),
        ));
    }
    plan.steps.push(step(
        9000,
        "hs2",
        "@bob:hs2",
        StepAction::Join { room: "main".into(), via: vec!["hs1".into()] },
    ));
    for i in 0..3u64 {
        plan.steps.push(step(
            10_000 + i * 500,
            "hs1",
            "@alice:hs1",
            message("main", &format!("back{i}")),
        ));
        plan.steps.push(step(
            10_200 + i * 500,
            "hs2",
            "@bob:hs2",
            message("main", &format!("bob{i}")),
        ));
    }
    plan.steps.sort_by_key(|s| s.at_ms);
    plan.check.invariants = ["integrity", "auth", "dag", "convergence", "liveness"]
        .map(|id| id.parse().unwrap())
        .to_vec();
    let output = run(&plan).unwrap();
    let hs2: Vec<(u64, &str)> = output
        .trace
        .records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Joined { server, .. } if server == "hs2" => Some((r.t, "joined")),
            Body::Left { server, .. } if server == "hs2" => Some((r.t, "left")),
            _ => None,
        })
        .collect();
    let kinds: Vec<&str> = hs2.iter().map(|(_, k)| *k).collect();
    assert_eq!(kinds, ["joined", "left", "joined"], "{hs2:?}");
    assert!(hs2[1].0 >= 6000 && hs2[1].0 < 6500, "left when bob left: {hs2:?}");
    assert!(hs2[2].0 >= 9000, "joined again after bob's join: {hs2:?}");
    // hs1 never gained or lost its first member again.
    let hs1_changes = output
        .trace
        .records
        .iter()
        .filter(|r| matches!(&r.body, Body::Joined { server, .. } | Body::Left { server, .. } if server == "hs1"))
        .count();
    assert_eq!(hs1_changes, 1);
    let finals = finals(&output.trace);
    assert!(finals.iter().all(|f| f.1), "both joined at the end: {finals:?}");
    let verdict = mxsim::check::check(&output.trace);
    assert_eq!(verdict.violations, vec![], "checked {:?}", verdict.checked);
}

#[test]
fn progress_follows_the_run_without_changing_it() {
    use std::sync::{Arc, Mutex};
    let plan = two_servers(1, vec![partition(1500, 6000)]);
    let seen: Arc<Mutex<Vec<mxsim::world::Progress>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let observed = mxsim::world::run_with_progress(
        &plan,
        Box::new(move |p: &mxsim::world::Progress| sink.lock().unwrap().push(*p)),
    )
    .unwrap();
    assert_eq!(observed.trace.hash(), run(&plan).unwrap().trace.hash(), "progress changed the run");
    let seen = seen.lock().unwrap();
    assert!(seen.len() > 10, "reported {} times", seen.len());
    for pair in seen.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(a.now_ms <= b.now_ms && a.events <= b.events && a.deliveries <= b.deliveries);
        assert!(a.records <= b.records, "{a:?} {b:?}");
    }
    let last = *seen.last().unwrap();
    assert_eq!(last.end_ms, plan.end_ms);
    assert!(last.now_ms <= plan.end_ms && last.now_ms * 10 >= plan.end_ms * 9, "{last:?}");
    assert_eq!(last.events, observed.events.len() as u64);
    let delivered =
        observed.trace.records.iter().filter(|r| matches!(r.body, Body::Deliver { .. })).count()
            as u64;
    assert!(last.deliveries > 0 && last.deliveries <= delivered, "{last:?} of {delivered}");
}

/// The plan of curated scenario `name` on `seed`, as `mxsim run` makes it.
fn planned(name: &str, seed: u64) -> Plan {
    mxsim::world::from_scenario::plan(&crate::curated::scenario(name), seed, "test").unwrap()
}

/// Servers that share state resolutions take many of them from one another, and a run
/// gives the same trace as one where each server resolves everything itself. (In debug
/// builds every resolution taken is also checked against the server's own.)
#[test]
fn shared_resolutions_change_the_work_not_the_run() {
    for name in ["concurrent-joins-partition", "three-way-split"] {
        for seed in 1..=2 {
            let mut plan = planned(name, seed);
            assert!(plan.share_resolutions, "on in planned runs");
            let shared = run(&plan).unwrap();
            plan.share_resolutions = false;
            let alone = run(&plan).unwrap();
            let counts = shared.resolutions;
            assert!(counts.found > 0 && counts.recorded > 0, "{name} seed {seed}: {counts:?}");
            assert_eq!(alone.resolutions.asked, 0, "{name} seed {seed}: nothing shared");
            assert_eq!(shared.trace.hash(), alone.trace.hash(), "{name} seed {seed}");
        }
    }
}

/// The `event` records of one stored body hold one JSON value: servers store the shared
/// verified body, and a join's copies received before its creation was recorded were, at
/// a thousand servers, a tenth of the run's memory as values of their own. (The test
/// relies on the servers of a planned run sharing their verified bodies: two equal bodies
/// apart would record two values.)
#[test]
fn records_of_one_body_share_its_json() {
    let output = run(&planned("concurrent-joins-partition", 1)).unwrap();
    let mut by_id: BTreeMap<&str, Vec<&Arc<Object>>> = BTreeMap::new();
    for record in &output.trace.records {
        if let Body::Event { event_id: Some(id), pdu: Some(pdu), .. } = &record.body {
            by_id.entry(id.as_str()).or_default().push(pdu);
        }
    }
    let mut shared = 0;
    for (id, copies) in &by_id {
        for pair in copies.windows(2) {
            if pair[0] == pair[1] {
                assert!(Arc::ptr_eq(pair[0], pair[1]), "{id}: equal copies apart");
                shared += 1;
            }
        }
    }
    // The point is made only where some event has several records with its JSON.
    assert!(shared > 0, "no event has two records carrying the same JSON");
}

/// Servers that end in the same state share one copy of it in their `final` records, and
/// servers that do not hold their own: the records read as before.
#[test]
fn final_records_of_one_state_share_it() {
    let output = run(&planned("concurrent-joins-partition", 1)).unwrap();
    let mut by_state: BTreeMap<(&str, &str), Vec<&Arc<mxsim::trace::NestedState>>> =
        BTreeMap::new();
    for record in &output.trace.records {
        if let Body::Final(view) = &record.body {
            let key = (view.room.as_str(), view.state_hash.as_str());
            by_state.entry(key).or_default().push(&view.state);
        }
    }
    let mut shared = 0;
    for (key, states) in &by_state {
        for pair in states.windows(2) {
            assert!(Arc::ptr_eq(pair[0], pair[1]), "{key:?}: one state held twice");
            shared += 1;
        }
    }
    assert!(shared > 0, "no two servers ended in the same state");
    let states: Vec<_> = by_state.values().map(|states| states[0]).collect();
    for (i, a) in states.iter().enumerate() {
        for b in &states[i + 1..] {
            assert!(!Arc::ptr_eq(a, b) && a != b, "different hashes, different states");
        }
    }
    // A trace read back holds a copy per record, equal to the shared ones.
    let text = output.trace.to_jsonl();
    let read = mxsim::trace::Trace::parse_jsonl(std::str::from_utf8(&text).unwrap()).unwrap();
    assert_eq!(read.records, output.trace.records);
}

/// Servers whose stores share their snapshots of the state hold one copy of each, and a
/// run gives the same trace as one where each store keeps its own.
#[test]
fn shared_snapshots_change_the_memory_not_the_run() {
    for seed in 1..=2 {
        let mut plan = planned("concurrent-joins-partition", seed);
        assert!(plan.share_snapshots, "on in planned runs");
        let shared = run(&plan).unwrap();
        plan.share_snapshots = false;
        let alone = run(&plan).unwrap();
        assert!(shared.snapshots_shared > 0, "seed {seed}: no snapshot was shared");
        assert_eq!(alone.snapshots_shared, 0, "seed {seed}: nothing shared");
        assert_eq!(shared.trace.hash(), alone.trace.hash(), "seed {seed}");
    }
}

/// Work due at the run's last instant is done and recorded: with `quiet_ms = 0`, the last
/// step falls on `end_ms` (as `mxsim shrink` makes it when it lowers `quiet_ms`), and the
/// server still takes it and creates its event before the run ends.
#[test]
fn a_step_at_the_runs_last_instant_runs() {
    let text = r#"
name = "last-instant"
description = "A message sent at the run's very end."
quiet_ms = 0

[[server]]
name = "hs1"
users = ["alice"]

[[room]]
label = "main"
creator = "@alice:hs1"

[[step]]
at_ms = 10_000
user = "@alice:hs1"
action = "message"
room = "main"
body = "the last word"

[check]
liveness_bound_ms = 0
"#;
    let job = mxsim::sweep::Job::new("last-instant.toml", text, false, "test").unwrap();
    let (_, plan) = job.plan(1).unwrap();
    let output = run(&plan).unwrap();
    assert_eq!(output.trace.header.end_ms, 10_000);
    let at_end = |record: &&mxsim::trace::Record| record.t == 10_000;
    let last = output.trace.records.iter().filter(at_end);
    let (mut acted, mut created) = (false, false);
    for record in last {
        match &record.body {
            Body::Action { step: Some(_), .. } => acted = true,
            Body::Event { decision: Decision::Created, .. } => created = true,
            _ => {}
        }
    }
    assert!(acted && created, "the step at end_ms ran ({acted}) and created its event ({created})");
    let verdict = mxsim::check::check(&output.trace);
    assert!(verdict.passed(), "{:?}", verdict.violations);
}
