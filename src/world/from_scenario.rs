//! From a validated scenario and a seed to the [`Plan`] the world runs: conveniences (`message`) turned into events, random workloads expanded with the
//! seed's workload stream and merged with the scripted steps by time.

use serde_json::Value;

use crate::homeserver::Config;
use crate::matrix::canonical_json::Object;
use crate::scenario::{ExpectWhat, Scenario, ServerConfig, Step, StepAction, StepExpect};
use crate::stdx::{Duration, Prng, streams};
use crate::trace::{CheckSettings, Expect, Expectation, StepExpectation};
use crate::world::{Plan, PlanAction, PlanStep};

/// The plan for `scenario` with `seed`. Workload steps come from `Prng::from_seed(seed)`
/// forked as `"workload"`; on equal times scripted steps go first.
pub fn plan(scenario: &Scenario, seed: u64, mxsim_version: &str) -> Result<Plan, String> {
    let workload = Prng::from_seed(seed).fork(streams::WORKLOAD);
    let mut steps: Vec<(u64, u8, usize, &Step)> = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        steps.push((step.at_ms, 0, i, step));
    }
    let expanded = scenario.expand_workloads(&workload);
    for (i, step) in expanded.iter().enumerate() {
        steps.push((step.at_ms, 1, i, step));
    }
    steps.sort_by_key(|(at, kind, i, _)| (*at, *kind, *i));
    let steps = steps
        .into_iter()
        .map(|(_, _, _, step)| plan_step(step))
        .collect::<Result<Vec<_>, String>>()?;

    let server_config = config(&scenario.server_config);
    let server_configs = scenario
        .servers
        .iter()
        .filter_map(|s| s.config.map(|own| (s.name.clone(), config(&own))))
        .collect();
    let expect = expect(scenario, &steps);
    Ok(Plan {
        scenario: scenario.name.clone(),
        seed,
        servers: scenario.servers.iter().map(|s| s.name.clone()).collect(),
        steps,
        network: scenario.network.clone(),
        faults: scenario.faults.clone(),
        end_ms: scenario.end_ms(),
        check: CheckSettings {
            invariants: scenario.check.invariants.clone(),
            liveness_bound_ms: scenario.check.liveness_bound_ms,
            expect,
        },
        server_config,
        server_configs,
        mxsim_version: mxsim_version.to_owned(),
        swarm: None,
    })
}

/// The homeserver configuration with a scenario's overrides.
fn config(overrides: &ServerConfig) -> Config {
    let mut server_config = Config::default();
    if let Some(ms) = overrides.request_timeout_ms {
        server_config.request_timeout = Duration::from_ms(ms);
    }
    if let Some(ms) = overrides.backoff_ms_min {
        server_config.outbound.backoff_min = Duration::from_ms(ms);
    }
    if let Some(ms) = overrides.backoff_ms_max {
        server_config.outbound.backoff_max = Duration::from_ms(ms);
    }
    if let Some(n) = overrides.retries_max {
        server_config.outbound.retries_max = n;
    }
    if let Some(limit) = overrides.missing_events_limit {
        server_config.missing_events_limit = limit;
    }
    if let Some(ms) = overrides.down_probe_interval_ms {
        server_config.outbound.down_probe_interval = Duration::from_ms(ms);
    }
    server_config
}

/// The expectations the checker needs: every judged step by its position in the plan,
/// and the `[[expect]]` tables.
fn expect(scenario: &Scenario, steps: &[PlanStep]) -> Expect {
    let steps = (0u64..)
        .zip(steps)
        .filter_map(|(step, s)| {
            let expect = match s.expect {
                StepExpect::Succeed => "succeed",
                StepExpect::Fail => "fail",
                StepExpect::Any => return None,
            };
            Some(StepExpectation { step, line: s.line, expect: expect.to_owned() })
        })
        .collect();
    let blocks = scenario
        .expectations
        .iter()
        .map(|e| {
            let (line, room) = (e.line, e.room.clone());
            match &e.what {
                ExpectWhat::State { event_type, state_key, content } => Expectation::State {
                    line,
                    room,
                    event_type: event_type.clone(),
                    state_key: state_key.clone(),
                    content: content.clone(),
                },
                ExpectWhat::Conflicted { event_type, state_key, events_min } => {
                    Expectation::Conflicted {
                        line,
                        room,
                        event_type: event_type.clone(),
                        state_key: state_key.clone(),
                        events_min: *events_min,
                    }
                }
                ExpectWhat::Rejected { label } => {
                    Expectation::Rejected { line, room, label: label.clone() }
                }
                ExpectWhat::ConvergedBy { at_ms } => {
                    Expectation::ConvergedBy { line, room, at_ms: *at_ms }
                }
            }
        })
        .collect();
    Expect { steps, blocks, ..Expect::default() }
}

fn plan_step(step: &Step) -> Result<PlanStep, String> {
    let action = match &step.action {
        StepAction::CreateRoom { room, version, public, name, topic } => PlanAction::CreateRoom {
            room: room.clone(),
            version: *version,
            public: *public,
            name: name.clone(),
            topic: topic.clone(),
        },
        StepAction::Send { room, event_type, state_key, content } => PlanAction::Send {
            room: room.clone(),
            event_type: event_type.clone(),
            state_key: state_key.clone(),
            content: content.clone(),
        },
        StepAction::Message { room, body } => {
            let mut content = Object::new();
            content.insert("msgtype".into(), Value::from("m.text"));
            content.insert("body".into(), Value::from(body.as_str()));
            PlanAction::Send {
                room: room.clone(),
                event_type: "m.room.message".into(),
                state_key: None,
                content,
            }
        }
        StepAction::Invite { room, target } => {
            PlanAction::Invite { room: room.clone(), target: target.clone() }
        }
        StepAction::Join { room, via } => PlanAction::Join { room: room.clone(), via: via.clone() },
        StepAction::Leave { room, via } => {
            PlanAction::Leave { room: room.clone(), via: via.clone() }
        }
        StepAction::Kick { room, target } => {
            PlanAction::Kick { room: room.clone(), target: target.clone() }
        }
        StepAction::Ban { room, target } => {
            PlanAction::Ban { room: room.clone(), target: target.clone() }
        }
        StepAction::Unban { room, target } => {
            PlanAction::Unban { room: room.clone(), target: target.clone() }
        }
        StepAction::Knock { room, via } => {
            PlanAction::Knock { room: room.clone(), via: via.clone() }
        }
        StepAction::Redact { room, target_label } => {
            PlanAction::Redact { room: room.clone(), target_label: target_label.clone() }
        }
        StepAction::Upgrade { room, version, new_room } => PlanAction::Upgrade {
            room: room.clone(),
            version: *version,
            new_room: new_room.clone(),
        },
        StepAction::Power { room, target, level } => {
            PlanAction::Power { room: room.clone(), target: target.clone(), level: *level }
        }
    };
    Ok(PlanStep {
        at_ms: step.at_ms,
        server: step.server.clone(),
        user: step.user.clone(),
        action,
        label: step.label.clone(),
        line: step.line,
        expect: step.expect,
        retries: step.retries,
    })
}
