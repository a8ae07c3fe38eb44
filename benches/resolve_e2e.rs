//! `mxsim resolve` end to end against ruma-state-res end to end, on the same input file.
//!
//! Three modes:
//!
//! * `write v10|v11|v12 EVENT_COUNT FILE` grows the forked synthetic room of `resolve_vs_ruma`
//!   (seed 1, `EVENT_COUNT` events after the fork) and writes it as an `mxsim resolve`
//!   input: every event as its signed PDU with an `event_id`, in creation order, and the two
//!   branch tips' states. It prints the number of events and the size of the full
//!   conflicted set.
//! * `ruma FILE` is what a program built on ruma-state-res does with such a file: it
//!   deserializes the events into ruma types (serde, `content` kept raw), keeps them in a
//!   hash map by id, computes each state set's full auth chain and the v2.1 conflicted
//!   state subgraph by plain walks (ruma takes both from its caller), resolves, and prints
//!   the resolved state map in `mxsim resolve`'s output form, so the two outputs can be
//!   compared byte for byte.
//! * `count mxsim|ruma FILE REPEAT` loads the file (mxsim: into an `IndexedStore`, as a
//!   server holds its events; ruma: as `ruma` does, plus the state sets' auth chains, which
//!   ruma takes from its caller) and resolves `REPEAT` times inside `measured_mxsim` or
//!   `measured_ruma`: resolution only, for instruction counts under callgrind with
//!   `--toggle-collect='resolve_e2e::measured_*'`.
//!
//! `docs/performance.md` has the commands and the measured tables.

// Hash maps and sets are what a program built on ruma uses (ruma's own `EventIdSet` is
// one); nothing here is recorded or decides anything but the printed result, which is
// sorted.
#![allow(clippy::disallowed_types)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hint::black_box;
use std::io::Write as _;
use std::sync::Arc;

use mxsim::matrix::dag::IndexedStore;
use mxsim::matrix::pdu::Stage;
use mxsim::matrix::state_res::{self, ResolveOptions, StateMap};
use mxsim::matrix::{EventId, Pdu, RoomVersion, RoomVersionRules};
use mxsim::stdx::{Prng, Ratio};
use mxsim::synth::{self, Events, SynthConfig};
use ruma::events::StateEventType;
use ruma::room_version_rules::RoomVersionRules as RumaRules;
use ruma::state_res::{self as ruma_res, utils::event_id_set::EventIdSet};
use ruma::{OwnedEventId, RoomVersionId};
use serde::Deserialize;

#[path = "../tests/common/ruma_oracle.rs"]
mod ruma_oracle;
use ruma_oracle::RumaPdu;

fn no_merges(_: &'static mxsim::matrix::RoomVersionRules, _: &[StateMap], _: &Events) -> StateMap {
    unreachable!("benchmark rooms never merge")
}

/// Writes the benchmark room as an `mxsim resolve` input file.
fn write(version: RoomVersion, event_count: u32, path: &str) {
    let config = SynthConfig {
        version,
        server_count: 20,
        users_per_server: 25,
        event_count,
        fork: Ratio::ONE,
        merge: Ratio::ZERO,
        branch_count_max: 2,
        message: Ratio::new(1, 10).expect("valid"),
    };
    let room = synth::generate(&config, &mut Prng::from_seed(1), &mut no_merges);
    let sets = room.branch_states();
    let options = ResolveOptions { explain: true, ..ResolveOptions::default() };
    let resolved = state_res::resolve(room.rules, &sets, &room.events, options).unwrap();
    let full_conflicted = resolved.explanation.expect("asked for").full_conflicted.len();
    let events: Vec<serde_json::Value> = room
        .order
        .iter()
        .map(|id| {
            let mut json = room.events[id].json().clone();
            json.insert("event_id".to_owned(), serde_json::Value::String(id.as_str().to_owned()));
            serde_json::Value::Object(json)
        })
        .collect();
    let state_sets: Vec<serde_json::Value> = sets
        .iter()
        .map(|set| {
            let mut nested: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
            for ((event_type, state_key), id) in set {
                nested.entry(event_type).or_default().insert(state_key, id.as_str());
            }
            serde_json::to_value(nested).unwrap()
        })
        .collect();
    let input = serde_json::json!({
        "room_version": version.as_str(),
        "events": events,
        "state_sets": state_sets,
    });
    std::fs::write(path, serde_json::to_vec(&input).unwrap()).unwrap();
    println!(
        "{path}: room version {version}, {} events, full conflicted set {full_conflicted}",
        room.events.len()
    );
}

#[derive(Deserialize)]
struct Input {
    room_version: RoomVersionId,
    events: Vec<RumaPdu>,
    state_sets: Vec<BTreeMap<StateEventType, BTreeMap<String, OwnedEventId>>>,
}

/// A parsed input, ready to resolve.
struct Parsed {
    rules: RumaRules,
    events: HashMap<OwnedEventId, RumaPdu>,
    maps: Vec<ruma_res::StateMap<OwnedEventId>>,
}

fn parse(path: &str) -> Parsed {
    let bytes = std::fs::read(path).unwrap();
    let input: Input = serde_json::from_slice(&bytes).unwrap();
    let rules = input.room_version.rules().expect("a known room version");
    let events: HashMap<OwnedEventId, RumaPdu> =
        input.events.into_iter().map(|pdu| (pdu.event_id.clone(), pdu)).collect();
    let maps = input
        .state_sets
        .into_iter()
        .map(|set| {
            let mut map = ruma_res::StateMap::new();
            for (event_type, by_key) in set {
                for (state_key, id) in by_key {
                    map.insert((event_type.clone(), state_key), id);
                }
            }
            map
        })
        .collect();
    Parsed { rules, events, maps }
}

fn auth_chain(
    events: &HashMap<OwnedEventId, RumaPdu>,
    id: &OwnedEventId,
    out: &mut HashSet<OwnedEventId>,
) {
    let mut stack: Vec<&OwnedEventId> = events[id].auth_events.iter().collect();
    while let Some(next) = stack.pop() {
        if out.insert(next.clone()) {
            stack.extend(events[next].auth_events.iter());
        }
    }
}

/// Each state set's full auth chain (inclusive reading, as Synapse and ruma's own tests).
fn full_auth_chains(parsed: &Parsed) -> Vec<EventIdSet<OwnedEventId>> {
    parsed
        .maps
        .iter()
        .map(|map| {
            let mut chain = HashSet::new();
            for id in map.values() {
                auth_chain(&parsed.events, id, &mut chain);
                chain.insert(id.clone());
            }
            chain.into_iter().collect()
        })
        .collect()
}

/// The v2.1 conflicted state subgraph by plain walks: events reachable from a conflicted
/// event (≥ 0 auth edges) from which a conflicted event is reachable.
fn conflicted_subgraph(
    events: &HashMap<OwnedEventId, RumaPdu>,
    conflicted: &HashSet<OwnedEventId>,
) -> EventIdSet<OwnedEventId> {
    let mut below: HashSet<OwnedEventId> = conflicted.clone();
    for id in conflicted {
        auth_chain(events, id, &mut below);
    }
    // Memoised "reaches a conflicted event", iteratively (post-order).
    let mut reaches: HashMap<&OwnedEventId, bool> = HashMap::new();
    for start in &below {
        let mut stack: Vec<(&OwnedEventId, bool)> = vec![(start, false)];
        while let Some((id, expanded)) = stack.pop() {
            if reaches.contains_key(id) {
                continue;
            }
            let auth = &events[id].auth_events;
            if expanded {
                let result = conflicted.contains(id) || auth.iter().any(|a| reaches[a]);
                reaches.insert(id, result);
            } else {
                stack.push((id, true));
                stack.extend(auth.iter().filter(|a| !reaches.contains_key(a)).map(|a| (a, false)));
            }
        }
    }
    below.iter().filter(|id| reaches[id]).cloned().collect()
}

fn resolve_ruma(
    parsed: &Parsed,
    chains: Vec<EventIdSet<OwnedEventId>>,
) -> ruma_res::StateMap<OwnedEventId> {
    ruma_res::resolve(
        &parsed.rules.authorization,
        parsed.rules.state_res.v2_rules().expect("v2 rules for rooms 10-12"),
        &parsed.maps,
        chains,
        |id| parsed.events.get(id),
        |conflicted| {
            let ids: HashSet<OwnedEventId> = conflicted.values().flatten().cloned().collect();
            Some(conflicted_subgraph(&parsed.events, &ids))
        },
    )
    .unwrap()
}

/// The resolved state as one line of canonical JSON (`mxsim resolve`'s output form: keys
/// sorted, no spaces).
fn print(state: &ruma_res::StateMap<OwnedEventId>) {
    let mut nested: BTreeMap<String, BTreeMap<&str, &str>> = BTreeMap::new();
    for ((event_type, state_key), id) in state {
        nested.entry(event_type.to_string()).or_default().insert(state_key, id.as_str());
    }
    let mut out = serde_json::to_vec(&nested).unwrap();
    out.push(b'\n');
    std::io::stdout().lock().write_all(&out).unwrap();
}

#[inline(never)]
fn measured_ruma(
    parsed: &Parsed,
    chains: Vec<EventIdSet<OwnedEventId>>,
) -> ruma_res::StateMap<OwnedEventId> {
    resolve_ruma(black_box(parsed), chains)
}

#[inline(never)]
fn measured_mxsim(rules: &RoomVersionRules, sets: &[StateMap], store: &IndexedStore) -> StateMap {
    state_res::resolve(rules, black_box(sets), store, ResolveOptions::default()).unwrap().state
}

/// Loads an input file as the library sees it: events checked for resolution, stored and
/// indexed; the state sets as maps.
fn load_mxsim(path: &str) -> (&'static RoomVersionRules, IndexedStore, Vec<StateMap>) {
    let bytes = std::fs::read(path).unwrap();
    let serde_json::Value::Object(mut root) = serde_json::from_slice(&bytes).unwrap() else {
        panic!("an input object")
    };
    let version = RoomVersion::parse(root["room_version"].as_str().unwrap()).unwrap();
    let rules = version.rules();
    let serde_json::Value::Array(events) = root.remove("events").unwrap() else { panic!() };
    let events = events.into_iter().map(|event| {
        let serde_json::Value::Object(event) = event else { panic!("an event object") };
        (Arc::new(Pdu::with_given_id_at(rules, event, Stage::Resolution).unwrap()), None)
    });
    let store = IndexedStore::from_events(rules, events);
    let sets = root["state_sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|set| {
            let mut map = StateMap::new();
            for (event_type, by_key) in set.as_object().unwrap() {
                for (state_key, id) in by_key.as_object().unwrap() {
                    let id = EventId::parse(id.as_str().unwrap()).unwrap();
                    map.insert((event_type.clone(), state_key.clone()), id);
                }
            }
            map
        })
        .collect();
    (rules, store, sets)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: resolve_e2e write v10|v11|v12 EVENT_COUNT FILE | ruma FILE | ruma-time FILE REPEAT";
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["write", version, count, path] => {
            let version = match *version {
                "v10" => RoomVersion::V10,
                "v11" => RoomVersion::V11,
                "v12" => RoomVersion::V12,
                _ => panic!("{usage}"),
            };
            write(version, count.parse().expect(usage), path);
        }
        ["ruma", path] => {
            let parsed = parse(path);
            let chains = full_auth_chains(&parsed);
            print(&resolve_ruma(&parsed, chains));
        }
        ["count", "ruma", path, repeat] => {
            let parsed = parse(path);
            let chains = full_auth_chains(&parsed);
            let mut state = None;
            for _ in 0..repeat.parse::<u32>().expect(usage) {
                state = Some(measured_ruma(&parsed, chains.clone()));
            }
            print(&state.expect("at least one run"));
        }
        ["count", "mxsim", path, repeat] => {
            let (rules, store, sets) = load_mxsim(path);
            let mut state = None;
            for _ in 0..repeat.parse::<u32>().expect(usage) {
                state = Some(measured_mxsim(rules, &sets, &store));
            }
            let state = state.expect("at least one run");
            let mut nested: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
            for ((event_type, state_key), id) in &state {
                nested.entry(event_type).or_default().insert(state_key, id.as_str());
            }
            println!("{}", serde_json::to_string(&nested).unwrap());
        }
        _ => panic!("{usage}"),
    }
}
