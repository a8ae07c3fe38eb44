//! Every scenario in `scenarios/regressions/` passes the checker, its `expectations`
//! included (which steps must succeed or fail, and its `[[expect]]` tables), on seeds
//! 1..=20. Each one failed before the fix it pins (its description says how).

use mxsim::check;
use mxsim::stdx::Invariant;
use mxsim::trace::Body;
use mxsim::world::{self, from_scenario};

fn regression_scenarios() -> Vec<(String, mxsim::scenario::Scenario)> {
    let mut paths: Vec<String> = std::fs::read_dir("scenarios/regressions")
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let scenario = mxsim::scenario::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
            (path, scenario)
        })
        .collect()
}

#[test]
fn regression_scenarios_pass_on_twenty_seeds() {
    let scenarios = regression_scenarios();
    assert!(scenarios.len() >= 2, "the regression scenarios are there");
    let mut failures = Vec::new();
    let mut lost_event_auth_seeds = 0;
    let mut kick_not_given_up = Vec::new();
    for (path, scenario) in &scenarios {
        for seed in 1..=20u64 {
            let plan = from_scenario::plan(scenario, seed, "test").unwrap();
            let output = world::run(&plan).unwrap();
            if path.ends_with("lost-event-auth.toml") && lost_event_auth(&output.trace) {
                lost_event_auth_seeds += 1;
            }
            if path.ends_with("unfetchable-kick-auth.toml") && !kick_given_up(&output.trace) {
                kick_not_given_up.push(seed);
            }
            let verdict = check::check(&output.trace);
            let problems: Vec<String> = verdict
                .violations
                .iter()
                .take(3)
                .map(|v| format!("{}: {}", v.invariant, v.message))
                .collect();
            assert!(
                verdict.checked.contains(&Invariant::Expectations),
                "{path}: the expectations invariant is checked"
            );
            if !problems.is_empty() {
                failures.push(format!(
                    "{path} seed {seed}:\n  {}\n  reproduce: mxsim run {path} --seed {seed}",
                    problems.join("\n  ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The scenario proves its point only on seeds that lost an /event_auth exchange.
    assert!(
        lost_event_auth_seeds >= 3,
        "lost-event-auth.toml lost an /event_auth request or answer on only \
         {lost_event_auth_seeds} of 20 seeds"
    );
    // And unfetchable-kick-auth only where hs3 gave the kick up for want of its auth events.
    assert!(
        kick_not_given_up.is_empty(),
        "unfetchable-kick-auth.toml: hs3 did not give the kick up on seeds {kick_not_given_up:?}"
    );
}

/// Whether hs3 dropped bob's kick because `/event_auth` did not bring its auth events.
fn kick_given_up(trace: &mxsim::trace::Trace) -> bool {
    let kicks: Vec<&str> = trace
        .records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Event { server, event_id: Some(id), decision, pdu: Some(pdu), .. }
                if server == "hs2"
                    && *decision == mxsim::trace::Decision::Created
                    && pdu.get("type").and_then(|t| t.as_str()) == Some("m.room.member")
                    && pdu.get("state_key").and_then(|k| k.as_str()) == Some("@carol:hs3") =>
            {
                Some(id.as_str())
            }
            _ => None,
        })
        .collect();
    kicks.len() == 1
        && trace.records.iter().any(|r| {
            matches!(&r.body, Body::Event { server, event_id: Some(id), decision, reason: Some(reason), .. }
                if server == "hs3" && id == kicks[0]
                    && *decision == mxsim::trace::Decision::Dropped
                    && reason.contains("/event_auth"))
        })
}

/// Whether the network lost an `/event_auth` request or the answer to one.
fn lost_event_auth(trace: &mxsim::trace::Trace) -> bool {
    let mut asks = std::collections::BTreeSet::new();
    let mut answers = std::collections::BTreeSet::new();
    for record in &trace.records {
        match &record.body {
            Body::Send { msg, what, .. } if what.contains("/federation/v1/event_auth/") => {
                asks.insert(*msg);
            }
            Body::Send { msg, request: Some(request), .. } if asks.contains(request) => {
                answers.insert(*msg);
            }
            Body::Drop { msg, .. } | Body::DropDown { msg, .. }
                if asks.contains(msg) || answers.contains(msg) =>
            {
                return true;
            }
            _ => {}
        }
    }
    false
}

/// A join whose server crashes in the middle of the handshake is recorded as failed.
#[test]
fn a_join_cut_short_by_a_crash_is_recorded_as_failed() {
    let text = r#"
name = "crash-mid-join"

[[server]]
name = "hs1"
users = ["alice"]

[[server]]
name = "hs2"
users = ["bob"]

[[step]]
at_ms = 0
user = "@alice:hs1"
action = "create_room"
room = "main"
public = true

[[step]]
at_ms = 5_000
user = "@bob:hs2"
action = "join"
room = "main"
via = ["hs1"]

[[fault]]
type = "crash"
node = "hs2"
start_ms = 5_005
end_ms = 20_000
"#;
    let failed: Vec<(String, String)> = failed_actions("crash-mid-join.toml", text)
        .into_iter()
        .filter(|f| f.server == "hs2")
        .map(|f| (f.action, f.reason))
        .collect();
    assert_eq!(
        failed,
        vec![(
            "join main".to_owned(),
            "make_join via hs1: the server crashed before the answer".to_owned()
        )]
    );
}

/// A server's own `config` takes effect in a run: hs2's requests time out after 2 s, hs3's
/// after the default 30 s, both joining through hs1 across a partition.
#[test]
fn a_servers_own_settings_take_effect() {
    let text = r#"
name = "own-settings"

[[server]]
name = "hs1"
users = ["alice"]

[[server]]
name = "hs2"
users = ["bob"]
config = { request_timeout_ms = 2_000 }

[[server]]
name = "hs3"
users = ["carol"]

[[step]]
at_ms = 0
user = "@alice:hs1"
action = "create_room"
room = "main"
public = true

[[fault]]
type = "partition"
start_ms = 1_000
end_ms = 60_000
groups = [["hs1"], ["hs2", "hs3"]]

[[step]]
at_ms = 5_000
user = "@bob:hs2"
action = "join"
room = "main"
expect = "fail"

[[step]]
at_ms = 5_000
user = "@carol:hs3"
action = "join"
room = "main"
expect = "fail"
"#;
    let failed = failed_actions("own-settings.toml", text);
    let shown: Vec<(&str, &str)> =
        failed.iter().map(|f| (f.server.as_str(), f.reason.as_str())).collect();
    assert_eq!(
        shown,
        vec![
            ("hs2", "make_join via hs1: no answer within 2 s"),
            ("hs3", "make_join via hs1: no answer within 30 s"),
        ]
    );
    // Each failed when its own time-out ran out after the request went out at 5 s.
    assert!((7_000..7_100).contains(&failed[0].t), "{failed:?}");
    assert!((35_000..35_100).contains(&failed[1].t), "{failed:?}");
}

/// An `action_failed` record of a run.
#[derive(Debug)]
struct Failed {
    t: u64,
    server: String,
    action: String,
    reason: String,
}

/// Runs the scenario `text` (seed 1) and returns its failed actions in trace order.
fn failed_actions(name: &str, text: &str) -> Vec<Failed> {
    let scenario = mxsim::scenario::parse(name, text).unwrap_or_else(|e| panic!("{e}"));
    let plan = from_scenario::plan(&scenario, 1, "test").unwrap();
    let output = world::run(&plan).unwrap();
    output
        .trace
        .records
        .iter()
        .filter_map(|r| match &r.body {
            Body::ActionFailed(failure) => Some(Failed {
                t: r.t,
                server: failure.server.clone(),
                action: failure.action.clone(),
                reason: failure.reason.clone(),
            }),
            _ => None,
        })
        .collect()
}
