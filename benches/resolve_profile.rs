//! One state resolution of a benchmark room, for instruction counting with callgrind.
//!
//! Builds the same forked synthetic room as `resolve_vs_ruma` (v11 or v12, N events grown
//! after the fork, seed 1) and resolves its two branch states REPEAT times with mxsim or
//! ruma-state-res. Wall-clock timings on a shared VM vary too much to compare small
//! changes; instruction counts do not. Only the `measured_*` functions should be counted:
//!
//! ```text
//! cargo bench --bench resolve_profile --no-run
//! valgrind --tool=callgrind --toggle-collect='resolve_profile::measured_*' \
//!     target/release/deps/resolve_profile-HASH v11 1150 mxsim 1
//! ```
//!
//! Arguments: `v11|v12 EVENT_COUNT mxsim|ruma [REPEAT]`.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::Arc;

use mxsim::matrix::dag::IndexedStore;
use mxsim::matrix::state_res::{self, AuthChainReading, ResolveOptions, StateMap};
use mxsim::matrix::{RoomVersion, RoomVersionRules};
use mxsim::stdx::{Prng, Ratio};
use mxsim::synth::{self, Events, SynthConfig};

#[path = "../tests/common/ruma_oracle.rs"]
mod ruma_oracle;

fn no_merges(_: &'static RoomVersionRules, _: &[StateMap], _: &Events) -> StateMap {
    unreachable!("benchmark rooms never merge")
}

#[inline(never)]
fn measured_mxsim(rules: &RoomVersionRules, sets: &[StateMap], store: &IndexedStore) -> StateMap {
    state_res::resolve(rules, black_box(sets), store, ResolveOptions::default()).unwrap().state
}

#[inline(never)]
fn measured_ruma(
    oracle: &ruma_oracle::Oracle,
    prepared: &ruma_oracle::Prepared,
    chains: Vec<ruma::state_res::utils::event_id_set::EventIdSet<ruma::OwnedEventId>>,
) -> StateMap {
    oracle.run(black_box(&prepared.maps), chains).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: resolve_profile v11|v12 EVENT_COUNT mxsim|ruma [REPEAT]";
    assert!(args.len() >= 3, "{usage}");
    let version = match args[0].as_str() {
        "v11" => RoomVersion::V11,
        "v12" => RoomVersion::V12,
        _ => panic!("{usage}"),
    };
    let event_count: u32 = args[1].parse().expect(usage);
    let repeat: u32 = args.get(3).map_or(1, |r| r.parse().expect(usage));
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
    let ours = match args[2].as_str() {
        "mxsim" => {
            let store = IndexedStore::from_events(
                room.rules,
                room.events.values().map(|pdu| (Arc::clone(pdu), None)),
            );
            let mut state = StateMap::new();
            for _ in 0..repeat {
                state = measured_mxsim(room.rules, &sets, &store);
            }
            state
        }
        "ruma" => {
            let oracle = ruma_oracle::Oracle::new(version, &room.events, &BTreeSet::new());
            let prepared = oracle.prepare(&sets, AuthChainReading::Inclusive);
            let mut state = StateMap::new();
            for _ in 0..repeat {
                state = measured_ruma(&oracle, &prepared, prepared.chains.clone());
            }
            state
        }
        _ => panic!("{usage}"),
    };
    eprintln!("{} events, resolved {} keys", room.events.len(), ours.len());
}
