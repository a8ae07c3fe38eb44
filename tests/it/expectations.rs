//! The `expectations` invariant on small scenarios run by the simulator: steps that must
//! succeed or fail, `[[expect]]` tables that hold and that do not, membership steps with
//! `retries`, and failed actions traced to their step and scenario line.

use mxsim::check::{self, Verdict};
use mxsim::stdx::Invariant;
use mxsim::trace::{Body, Trace};
use mxsim::world::{self, from_scenario};

/// Two servers, a public room made by alice; bob (hs2) joins in the setup. Line numbers in
/// the assertions count from the first line of this text.
const BASE: &str = r#"name = "t"
[[server]]
name = "hs1"
users = ["alice"]
[[server]]
name = "hs2"
users = ["bob"]
[server_config]
request_timeout_ms = 5_000
[[room]]
label = "main"
creator = "@alice:hs1"
public = true
"#;

fn run(extra: &str, seed: u64) -> (Trace, Verdict) {
    let text = format!("{BASE}{extra}");
    let scenario = mxsim::scenario::parse("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let plan = from_scenario::plan(&scenario, seed, "test").unwrap();
    let output = world::run(&plan).unwrap();
    let verdict = check::check(&output.trace);
    assert!(verdict.checked.contains(&Invariant::Expectations));
    (output.trace, verdict)
}

fn expectation_messages(verdict: &Verdict) -> Vec<String> {
    verdict
        .violations
        .iter()
        .filter(|v| v.invariant == Invariant::Expectations)
        .map(|v| v.message.clone())
        .collect()
}

/// bob joins, then (with power `bob_power`) changes the topic while a partition cuts him
/// off from alice, who changes it too; the scenario expects the topics to conflict and
/// both servers to end with the same one.
fn topic_race(bob_power: i64) -> String {
    format!(
        r#"members = ["@bob:hs2"]
power = {{ "@bob:hs2" = {bob_power} }}
[[fault]]
type = "partition"
start_ms = 10_000
end_ms = 30_000
groups = [["hs1"], ["hs2"]]
[[step]]
at_ms = 15_000
user = "@alice:hs1"
action = "send"
room = "main"
event_type = "m.room.topic"
state_key = ""
content = {{ topic = "alice" }}
[[step]]
at_ms = 15_000
user = "@bob:hs2"
action = "send"
room = "main"
event_type = "m.room.topic"
state_key = ""
content = {{ topic = "bob" }}
[[settle]]
room = "main"
[[expect]]
room = "main"
conflicted = "m.room.topic"
[[expect]]
room = "main"
state = "m.room.topic"
"#
    )
}

#[test]
fn a_run_that_does_not_show_its_point_fails() {
    // Bob has power 0: his topic change (the [[step]] at line 29) is refused, so the
    // topics never conflict. Both are violations; the other invariants all hold.
    let (trace, verdict) = run(&topic_race(0), 1);
    let messages = expectation_messages(&verdict);
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages[0].starts_with("the step at scenario line 29 (send m.room.topic/\"\" in main on hs2) failed unexpectedly: not allowed: rule 8"),
        "{}",
        messages[0]
    );
    assert_eq!(
        messages[1],
        "[[expect]] at scenario line 39: m.room.topic/\"\" was conflicted between concurrent events in no state resolution of the room"
    );
    assert!(verdict.violations.iter().all(|v| v.invariant == Invariant::Expectations));
    // The failure names its step and line in the trace.
    let failed: Vec<(Option<u64>, Option<u64>)> = trace
        .records
        .iter()
        .filter_map(|r| match &r.body {
            Body::ActionFailed(failure) => Some((failure.step, failure.line)),
            _ => None,
        })
        .filter(|(_, line)| *line == Some(29))
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].0.is_some());

    // With power 50 both topics are made, meet in a resolution, and both servers agree.
    for seed in 1..=3 {
        let (_, verdict) = run(&topic_race(50), seed);
        assert!(verdict.passed(), "seed {seed}: {:#?}", verdict.violations);
    }
}

#[test]
fn a_step_meant_to_fail_must_fail() {
    let steps = r#"members = ["@bob:hs2"]
[[step]]
at_ms = 10_000
user = "@bob:hs2"
action = "ban"
room = "main"
target = "@alice:hs1"
expect = "fail"
[[step]]
at_ms = 11_000
user = "@alice:hs1"
action = "message"
room = "main"
body = "this works"
expect = "fail"
"#;
    let (_, verdict) = run(steps, 1);
    let messages = expectation_messages(&verdict);
    assert_eq!(
        messages,
        [
            "the step at scenario line 22 (message in main on hs1) is marked expect = \"fail\" but succeeded"
        ]
    );
}

#[test]
fn state_rejected_and_converged_by_tables() {
    // Alice demotes bob on her side of a partition; bob changes the topic on his. After
    // the heal hs1 soft-fails bob's topic (bob has power 0 in hs1's current state).
    let extra = r#"members = ["@bob:hs2"]
power = { "@bob:hs2" = 50 }
[[fault]]
type = "partition"
start_ms = 10_000
end_ms = 30_000
groups = [["hs1"], ["hs2"]]
[[step]]
at_ms = 12_000
user = "@alice:hs1"
action = "power"
room = "main"
target = "@bob:hs2"
level = 0
[[step]]
at_ms = 14_000
user = "@bob:hs2"
action = "send"
room = "main"
event_type = "m.room.topic"
state_key = ""
content = { topic = "bob's" }
label = "bobs-topic"
[[settle]]
room = "main"
[[expect]]
room = "main"
rejected = "bobs-topic"
[[expect]]
room = "main"
state = "m.room.power_levels"
[[expect]]
room = "main"
state = "m.room.join_rules"
content = { join_rule = "public" }
[[expect]]
room = "main"
converged_by_ms = 150_000
"#;
    let (_, verdict) = run(extra, 1);
    assert!(verdict.passed(), "{:#?}", verdict.violations);
    // The same run, judged against what it did not do.
    let wrong = extra
        .replace("join_rule = \"public\"", "join_rule = \"invite\"")
        .replace("converged_by_ms = 150_000", "converged_by_ms = 1_500");
    let (_, verdict) = run(&wrong, 1);
    let messages = expectation_messages(&verdict);
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages[0].contains("m.room.join_rules/\"\", whose content differs in join_rule"),
        "{}",
        messages[0]
    );
    assert!(messages[1].contains("the room had not converged by 1500 ms"), "{}", messages[1]);
    assert!(messages[1].contains("hs2 not in the room yet"), "{}", messages[1]);
}

/// bob joins through hs1 while a partition cuts them apart: the join times out (5 s).
fn join_in_partition(retries: u32) -> String {
    format!(
        r#"[[fault]]
type = "partition"
start_ms = 10_000
end_ms = 20_000
groups = [["hs1"], ["hs2"]]
[[step]]
at_ms = 12_000
user = "@bob:hs2"
action = "join"
room = "main"
retries = {retries}
[[expect]]
room = "main"
state = "m.room.member"
state_key = "@bob:hs2"
content = {{ membership = "join" }}
"#
    )
}

#[test]
fn membership_steps_retry_after_failure() {
    let (trace, verdict) = run(&join_in_partition(0), 1);
    let messages = expectation_messages(&verdict);
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages[0].starts_with(
            "the step at scenario line 19 (join main on hs2) failed unexpectedly: make_join"
        ),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].contains("hs1 ends with no event at m.room.member/\"@bob:hs2\""),
        "{}",
        messages[1]
    );
    let failures: Vec<(u64, Option<u64>)> = trace
        .records
        .iter()
        .filter_map(|r| match &r.body {
            Body::ActionFailed(failure) if failure.line == Some(19) => {
                Some((r.t, failure.retry_at_ms))
            }
            _ => None,
        })
        .collect();
    // The make_join sent at 12 s times out 5 s later; no retry.
    assert_eq!(failures, [(17_000, None)]);

    // With retries the first try fails the same way and the second, 5 s later and after
    // the heal, succeeds.
    let (trace, verdict) = run(&join_in_partition(3), 1);
    assert!(verdict.passed(), "{:#?}", verdict.violations);
    let failures: Vec<(u64, Option<u64>)> = trace
        .records
        .iter()
        .filter_map(|r| match &r.body {
            Body::ActionFailed(failure) if failure.line == Some(19) => {
                Some((r.t, failure.retry_at_ms))
            }
            _ => None,
        })
        .collect();
    assert_eq!(failures, [(17_000, Some(22_000))]);
    let tries = trace
        .records
        .iter()
        .filter(|r| matches!(&r.body, Body::Action { line: Some(19), .. }))
        .map(|r| r.t)
        .collect::<Vec<_>>();
    assert_eq!(tries, [12_000, 22_000]);
}

#[test]
fn retry_waits_double_up_to_a_minute() {
    let waits: Vec<u64> = (1..=7).map(world::retry_delay_ms).collect();
    assert_eq!(waits, [5_000, 10_000, 20_000, 40_000, 60_000, 60_000, 60_000]);
}

/// `[[settle]]` with `rejoin = true` brings back a user who left and one who was kicked,
/// and a join by a user who is still joined makes no event; without `rejoin` both stay
/// out and the expectations about them fail.
#[test]
fn settle_rejoin_brings_back_users_who_left_or_were_kicked() {
    let extra = |rejoin: bool| {
        format!(
            r#"
[[server]]
name = "hs3"
users = ["carol"]
[[step]]
at_ms = 5_000
user = "@bob:hs2"
action = "join"
room = "main"
[[step]]
at_ms = 6_000
user = "@carol:hs3"
action = "join"
room = "main"
[[step]]
at_ms = 10_000
user = "@bob:hs2"
action = "leave"
room = "main"
[[step]]
at_ms = 12_000
user = "@alice:hs1"
action = "kick"
room = "main"
target = "@carol:hs3"
[[settle]]
room = "main"
rejoin = {rejoin}
[[expect]]
room = "main"
state = "m.room.member"
state_key = "@bob:hs2"
content = {{ membership = "join" }}
[[expect]]
room = "main"
state = "m.room.member"
state_key = "@carol:hs3"
content = {{ membership = "join" }}
"#
        )
    };
    for seed in 1..=3 {
        let (trace, verdict) = run(&extra(true), seed);
        assert!(verdict.violations.is_empty(), "seed {seed}: {:?}", verdict.violations);
        // alice never left: her settle join made no member event of hers after the setup.
        let alice_members = trace
            .records
            .iter()
            .filter(|r| match &r.body {
                Body::Event {
                    decision: mxsim::trace::Decision::Created, pdu: Some(pdu), ..
                } => {
                    pdu.get("type").and_then(|t| t.as_str()) == Some("m.room.member")
                        && pdu.get("state_key").and_then(|k| k.as_str()) == Some("@alice:hs1")
                }
                _ => false,
            })
            .count();
        assert_eq!(alice_members, 1, "seed {seed}: only the creator's own join");
        let (_, verdict) = run(&extra(false), seed);
        let messages = expectation_messages(&verdict);
        assert_eq!(messages.len(), 2, "seed {seed}: {messages:?}");
    }
}
