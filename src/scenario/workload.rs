//! Random workloads → steps. The expansion is a pure function of the scenario and the
//! generator it is given: each workload draws from its own stream, forked by its index
//! (`workload/0`, `workload/1`, …), so removing or changing one workload does not change
//! the others' steps.
//!
//! Draw order per action (part of the determinism contract): the gap to the action, the
//! kind (by weight), the actor, then what the kind needs (a target, a level, a message to
//! redact).

use serde_json::{Map, Value};

use crate::scenario::{Mix, Scenario, Step, StepAction, StepExpect, Workload};
use crate::stdx::{Prng, streams};

/// Power levels a `power` action picks from: demote, moderator, admin.
const POWER_LEVELS: [i64; 3] = [0, 50, 100];

impl Scenario {
    /// Every workload's actions as steps, sorted by time (stably: on equal times, in
    /// workload order). The world merges them with [`Scenario::steps`], scripted steps
    /// first on equal times.
    ///
    /// The actions are guesses, not promises: the expansion tracks who it made join, leave
    /// or get banned, but not what the run actually did, so some actions fail at run time
    /// (for example, a user without the power to ban). Such failures are part of the run.
    pub fn expand_workloads(&self, prng: &Prng) -> Vec<Step> {
        let mut steps = Vec::new();
        for (index, workload) in self.workloads.iter().enumerate() {
            let mut stream = prng.fork(&streams::workload(index));
            let before = steps.len();
            expand(self, index, workload, &mut stream, &mut steps);
            assert!(steps[before..].windows(2).all(|w| w[0].at_ms < w[1].at_ms));
        }
        steps.sort_by_key(|step| step.at_ms);
        steps
    }
}

/// What the expansion believes about a participant.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Presence {
    Joined,
    Left,
    Banned,
}

fn expand(
    scenario: &Scenario,
    index: usize,
    workload: &Workload,
    prng: &mut Prng,
    out: &mut Vec<Step>,
) {
    assert!(workload.interval_ms >= 1 && workload.start_ms < workload.end_ms);
    assert!(!workload.users.is_empty());
    let room = workload.room.clone();
    let users = &workload.users;
    let mut presence = vec![Presence::Joined; users.len()];
    let mut messages: Vec<String> = Vec::new();
    let gap_max = 2 * workload.interval_ms - 1;
    let mut at_ms = workload.start_ms;
    for number in 0.. {
        at_ms += prng.range_inclusive(1, gap_max);
        if at_ms >= workload.end_ms {
            break;
        }
        let kind = pick_kind(&workload.mix, prng);
        let actor = prng.index(users.len());
        let other = prng.index(users.len());
        let target = users[other].clone();
        let via = workload.via.clone();
        let (action, label) = match kind {
            "message" => {
                let label = format!("workload{index}/{number}");
                let body = format!("workload {index} message {number}");
                messages.push(label.clone());
                (StepAction::Message { room: room.clone(), body }, Some(label))
            }
            "topic" => {
                (state(&room, "m.room.topic", "topic", format!("topic {index}.{number}")), None)
            }
            "name" => (state(&room, "m.room.name", "name", format!("name {index}.{number}")), None),
            "power" => {
                let level = POWER_LEVELS[prng.index(POWER_LEVELS.len())];
                (StepAction::Power { room: room.clone(), target, level }, None)
            }
            "join_leave" => match presence[actor] {
                Presence::Joined => {
                    presence[actor] = Presence::Left;
                    (StepAction::Leave { room: room.clone(), via: Vec::new() }, None)
                }
                Presence::Left | Presence::Banned => {
                    presence[actor] = Presence::Joined;
                    (
                        StepAction::Join {
                            room: room.clone(),
                            via: join_via(scenario, &users[actor], via),
                        },
                        None,
                    )
                }
            },
            "ban" => match presence[other] {
                Presence::Banned => {
                    presence[other] = Presence::Left;
                    (StepAction::Unban { room: room.clone(), target }, None)
                }
                Presence::Joined | Presence::Left => {
                    presence[other] = Presence::Banned;
                    (StepAction::Ban { room: room.clone(), target }, None)
                }
            },
            "kick" => {
                if presence[other] == Presence::Joined {
                    presence[other] = Presence::Left;
                }
                (StepAction::Kick { room: room.clone(), target }, None)
            }
            "redact" => {
                if messages.is_empty() {
                    let body = format!("workload {index} message {number}");
                    (StepAction::Message { room: room.clone(), body }, None)
                } else {
                    let event = messages[prng.index(messages.len())].clone();
                    (StepAction::Redact { room: room.clone(), event }, None)
                }
            }
            _ => unreachable!("kind {kind} is one of Mix::weights"),
        };
        let user = users[actor].clone();
        let server = scenario.server_of(&user).expect("workload users are declared").to_owned();
        out.push(Step {
            at_ms,
            server,
            user,
            action,
            new_room: None,
            label,
            line: workload.line,
            expect: StepExpect::Any,
            retries: 0,
        });
    }
}

/// A kind of action, with chance weight / total.
fn pick_kind(mix: &Mix, prng: &mut Prng) -> &'static str {
    let weights = mix.weights();
    let total: u64 = weights.iter().map(|(_, weight)| weight).sum();
    assert!(total > 0, "validation refuses an all-zero mix");
    let mut draw = prng.range_inclusive(0, total - 1);
    for (kind, weight) in weights {
        if draw < weight {
            return kind;
        }
        draw -= weight;
    }
    unreachable!("the draw is below the total")
}

/// A user joins directly when its server created the room (it is likely still there),
/// through the workload's `via` servers otherwise.
fn join_via(scenario: &Scenario, user: &str, via: Vec<String>) -> Vec<String> {
    let server = scenario.server_of(user);
    via.into_iter().filter(|v| Some(v.as_str()) != server).collect()
}

fn state(room: &str, event_type: &str, key: &str, text: String) -> StepAction {
    let mut content = Map::new();
    content.insert(key.to_owned(), Value::String(text));
    StepAction::Send {
        room: room.to_owned(),
        event_type: event_type.to_owned(),
        state_key: Some(String::new()),
        content,
    }
}
