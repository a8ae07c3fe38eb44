//! From a validated scenario and a seed to the [`Plan`] the world runs: random workloads
//! expanded with the seed's workload stream and merged with the scripted steps by time. The
//! steps themselves pass through as the scenario has them.

use crate::homeserver::Config;
use crate::homeserver::server::OfflineSends;
use crate::matrix::action::Action;
use crate::scenario::{self, ExpectWhat, Scenario, ServerConfig, Step, StepExpect};
use crate::stdx::{Duration, Prng, streams};
use crate::trace::{CheckSettings, Expect, Expectation, StepExpectation};
use crate::world::Plan;

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
    let steps: Vec<Step> = steps.into_iter().map(|(_, _, _, step)| step.clone()).collect();

    // Servers take part in Linearized Matrix rooms only when the scenario has one, so
    // that a DAG-only run sends exactly what it sent before they existed.
    let linearized = steps.iter().any(
        |step| matches!(&step.action, Action::CreateRoom { version, .. } if version.rules().lpdus),
    );
    let config = |overrides: &ServerConfig| Config { linearized, ..config(overrides) };
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
        share_resolutions: true,
        share_snapshots: true,
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
    if let Some(dag_capable) = overrides.dag_capable {
        server_config.dag_capable = dag_capable;
    }
    if let Some(offline) = overrides.offline_sends {
        server_config.offline_sends = match offline {
            scenario::OfflineSends::Queue => OfflineSends::Queue,
            scenario::OfflineSends::Fail => OfflineSends::Fail,
        };
    }
    server_config
}

/// The expectations the checker needs: every judged step by its position in the plan,
/// and the `[[expect]]` tables.
fn expect(scenario: &Scenario, steps: &[Step]) -> Expect {
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
