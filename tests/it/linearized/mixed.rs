//! DAG-capable servers in a Linearized Matrix room (docs/linearized.md, "DAG-capable
//! servers in a Linearized Matrix room"): the hub appends their events, merges the forks
//! they leave, and state resolution decides the state at a merge.

use std::collections::BTreeSet;

use serde_json::Value;

use super::run_pair;
use mxsim::check;
use mxsim::report::compare;
use mxsim::trace::{Body, Decision as TDecision, Trace};
use mxsim::world::{self, from_scenario};

/// The PDU a trace recorded for an event, from the first `event` record that carries it.
fn recorded_pdu<'t>(
    trace: &'t Trace,
    event_id: &str,
) -> Option<&'t serde_json::Map<String, Value>> {
    trace.records.iter().find_map(|r| match &r.body {
        Body::Event { event_id: Some(id), pdu: Some(pdu), .. } if id == event_id => Some(&**pdu),
        _ => None,
    })
}

#[test]
fn the_hub_appends_dag_events_merges_the_fork_and_resolution_decides_the_state() {
    // mixed-room-linear: hub hs1, participants hs2 and hs3, DAG-capable hs4 and hs5, the
    // DAG-capable side cut off for 30 s while dave (hs4, 15 s) and then bob (hs2, 18 s) set
    // the topic.
    let (participants, dag_servers) = (["hs2", "hs3"], ["hs4", "hs5"]);
    for seed in 1..=3 {
        let (_, trace) = run_pair("mixed-room", seed);
        let records = &trace.records;
        let mut linearized = BTreeSet::new();
        let mut merges = Vec::new();
        for r in records {
            match &r.body {
                Body::DagLinearized { server, event_id, origin, .. } => {
                    assert_eq!(server, "hs1", "seed {seed}: only the hub linearizes");
                    assert!(dag_servers.contains(&origin.as_str()), "seed {seed}: {origin}");
                    linearized.insert(event_id.to_string());
                }
                Body::HubMerge { server, event_id, prev_events, reason, .. } => {
                    assert_eq!(server, "hs1");
                    let id = event_id.clone().unwrap_or_else(|| panic!("seed {seed}: {reason:?}"));
                    assert!(prev_events.len() >= 2, "seed {seed}: a merge closes a fork");
                    merges.push((r.t, id));
                }
                Body::HubFault { reason, .. } => panic!("seed {seed}: hub fault: {reason}"),
                Body::Event {
                    server, decision: TDecision::Dropped, reason: Some(reason), ..
                } if reason.contains("not from the room's hub") => {
                    panic!("seed {seed}: {server} got a PDU from a DAG-capable server: {reason}")
                }
                _ => {}
            }
        }
        assert!(!merges.is_empty(), "seed {seed}: the partition forked the list");
        // Every event a DAG-capable server created reached the list, unless the hub
        // soft-failed or rejected it; and only those reached it.
        let hub_decision = |id: &str| {
            records.iter().find_map(|r| match &r.body {
                Body::Event { server, event_id: Some(e), decision, .. }
                    if server == "hs1" && e == id =>
                {
                    Some(*decision)
                }
                _ => None,
            })
        };
        let mut created_by_dag = BTreeSet::new();
        for r in records {
            let Body::Event { server, event_id: Some(id), decision: TDecision::Created, .. } =
                &r.body
            else {
                continue;
            };
            if dag_servers.contains(&server.as_str()) {
                created_by_dag.insert(id.to_string());
                let appended = linearized.contains(id.as_str());
                let refused = matches!(
                    hub_decision(id),
                    Some(TDecision::SoftFailed | TDecision::RejectedAuthEvents)
                        | Some(TDecision::RejectedStateBefore)
                );
                assert!(appended || refused, "seed {seed}: {server}'s {id} never reached the list");
            }
        }
        assert!(linearized.is_subset(&created_by_dag), "seed {seed}");
        assert!(linearized.len() > 5, "seed {seed}: {} DAG events appended", linearized.len());
        // The comparison counts them, and the ones made during the partition reached the
        // list only after the heal (40 s).
        let figures = compare::figures(&trace);
        assert_eq!(figures.dag_linearized as usize, linearized.len(), "seed {seed}");
        assert_eq!(figures.hub_merges as usize, merges.len(), "seed {seed}");
        assert!(merges.iter().any(|(t, _)| *t > 40_000), "seed {seed}: a merge after the heal");
        // A delay for each appended event its server recorded creating before the hub
        // appended it (a DAG-capable server's join is recorded after the hub's answer).
        let mut created_first = 0;
        let mut created = BTreeSet::new();
        for r in records {
            match &r.body {
                Body::Event { event_id: Some(id), decision: TDecision::Created, .. } => {
                    created.insert(id.to_string());
                }
                Body::DagLinearized { event_id, .. } if created.contains(event_id.as_str()) => {
                    created_first += 1;
                }
                _ => {}
            }
        }
        assert_eq!(figures.dag_list_delays_ms.len(), created_first, "seed {seed}");
        assert!(figures.dag_list_delays_ms.last().is_some_and(|d| *d >= 20_000), "seed {seed}");
        // Every participant appended every merge made after it joined.
        for participant in participants {
            let joined = records
                .iter()
                .filter(|r| matches!(&r.body, Body::Joined { server, .. } if server == participant))
                .map(|r| r.t)
                .max()
                .expect("joined");
            for (_, merge) in merges.iter().filter(|(t, _)| *t > joined) {
                let appended = records.iter().any(|r| {
                    matches!(&r.body, Body::Event { server, event_id: Some(e), decision: TDecision::Accepted, .. }
                        if server == participant && e == merge)
                });
                assert!(appended, "seed {seed}: {participant} lacks the merge {merge}");
            }
        }
        // The hub's list in order of appending: its last topic is dave's (appended after
        // the heal), yet every server ends with bob's, which state resolution picks (the
        // later origin_server_ts, both at the same power-levels mainline position): the
        // list's order alone would give the wrong state.
        let mut last_topic = None;
        for r in records {
            let Body::Event { server, event_id: Some(id), decision, .. } = &r.body else {
                continue;
            };
            if server != "hs1" || !matches!(decision, TDecision::Created | TDecision::Accepted) {
                continue;
            }
            let pdu = recorded_pdu(&trace, id).expect("the trace carries every PDU");
            if pdu.get("type").and_then(Value::as_str) == Some("m.room.topic") {
                last_topic = pdu["content"]["topic"].as_str().map(str::to_owned);
            }
        }
        assert_eq!(last_topic.as_deref(), Some("dave's, on the DAG side"), "seed {seed}");
        let finals: Vec<(&str, &str)> = records
            .iter()
            .filter_map(|r| match &r.body {
                Body::Final(view) if view.joined => {
                    let topic = view.state.get("m.room.topic").and_then(|m| m.get(""))?;
                    Some((view.server.as_str(), topic.as_str()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(finals.len(), 5, "seed {seed}: {finals:?}");
        for (server, topic) in finals {
            let pdu = recorded_pdu(&trace, topic).expect("the topic's PDU");
            let text = pdu["content"]["topic"].as_str();
            assert_eq!(text, Some("bob's, on the hub's side"), "seed {seed}: {server}");
        }
    }
}

/// A hub whose only user left cannot merge the fork a DAG-capable server's event makes:
/// it records why, refuses LPDUs meanwhile with the reason, and takes them again once the
/// DAG-capable server's next event, naming both branches, closes the fork.
#[test]
fn a_hub_without_users_cannot_merge_and_refuses_lpdus_until_the_fork_closes() {
    let text = r#"
name = "no-merge"
[[server]]
name = "hs1"
users = ["alice"]
[[server]]
name = "hs2"
users = ["bob"]
[[server]]
name = "hs3"
users = ["dave"]
config = { dag_capable = true }
[[room]]
label = "main"
creator = "@alice:hs1"
public = true
version = "org.matrix.i-d.ralston-mimi-linearized-matrix.02"
members = ["@bob:hs2", "@dave:hs3"]
[[step]]
at_ms = 5_000
user = "@alice:hs1"
action = "leave"
room = "main"
[[fault]]
type = "partition"
start_ms = 10_000
end_ms = 20_000
groups = [["hs1", "hs2"], ["hs3"]]
[[step]]
at_ms = 12_000
user = "@dave:hs3"
action = "message"
room = "main"
body = "hi"
[[step]]
at_ms = 14_000
user = "@bob:hs2"
action = "message"
room = "main"
body = "hi"
[[step]]
at_ms = 30_000
user = "@bob:hs2"
action = "message"
room = "main"
body = "hi"
[[step]]
at_ms = 40_000
user = "@dave:hs3"
action = "message"
room = "main"
body = "hi"
[[step]]
at_ms = 50_000
user = "@bob:hs2"
action = "message"
room = "main"
body = "hi"
[[step]]
at_ms = 70_000
user = "@dave:hs3"
action = "message"
room = "main"
body = "hi"
[[step]]
at_ms = 90_000
user = "@bob:hs2"
action = "message"
room = "main"
body = "hi"
"#;
    let parsed = mxsim::scenario::parse("no-merge.toml", text).unwrap();
    let trace = world::run(&from_scenario::plan(&parsed, 1, "test").unwrap()).unwrap().trace;
    let at = |what: &dyn Fn(&Body) -> bool| -> Vec<u64> {
        trace.records.iter().filter(|r| what(&r.body)).map(|r| r.t).collect()
    };
    // The fork after the heal, and the hub's account of why it stays open.
    let failed_merges = at(&|b| {
        matches!(b, Body::HubMerge { event_id: None, reason: Some(r), .. }
            if r == "the hub has no joined user to send a merge")
    });
    assert!(!failed_merges.is_empty());
    assert!(at(&|b| matches!(b, Body::HubMerge { event_id: Some(_), .. })).is_empty());
    // While the fork is open bob's sends are refused with the reason; dave's next event,
    // built once his server has the hub's side too, names both branches and closes it, and
    // bob's last send (90 s) is appended.
    let refused = at(&|b| {
        matches!(b, Body::LpduFailed { server, reason, .. }
            if server == "hs2" && reason.contains("the hub's list has 2 heads"))
    });
    assert!(!refused.is_empty());
    assert!(refused.iter().all(|t| *t > failed_merges[0]), "{refused:?} {failed_merges:?}");
    let accepted = at(&|b| matches!(b, Body::LpduAccepted { server, .. } if server == "hs2"));
    assert!(accepted.iter().any(|t| *t >= 90_000), "{accepted:?}");
    // Every invariant holds, the `linearized` model's included.
    let verdict = check::check(&trace);
    assert!(verdict.passed(), "{:?}", verdict.violations);
}
