//! State resolution, mxsim against ruma-state-res on identical inputs.
//!
//! Each input is a synthetic room (`mxsim::synth`) forked once near its start into two
//! long branches of joins, leaves, kicks, bans, power-level and join-rule changes; the two
//! branch tips' states are resolved. Room sizes are chosen so that the full conflicted set
//! is about 10, 100, 1,000 and 10,000 events (the actual size is in the benchmark name).
//! Growing the largest room takes about a minute before anything is measured.
//!
//! Both sides get what a server has at hand: mxsim an `IndexedStore` whose auth-chain index
//! was built as the events arrived; ruma the state sets' auth chains computed beforehand
//! (it takes them from its caller). `mxsim_plain` resolves from a plain map, indexing the
//! auth chains inside the call.
//!
//! Run: `cargo bench --bench resolve_vs_ruma` (`-- 10000` for one size).

use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use mxsim::matrix::RoomVersion;
use mxsim::matrix::dag::IndexedStore;
use mxsim::matrix::state_res::{self, AuthChainReading, ResolveOptions, StateMap};
use mxsim::stdx::{Prng, Ratio};
use mxsim::synth::{self, Events, SynthConfig, SynthRoom};

#[path = "../tests/common/ruma_oracle.rs"]
mod ruma_oracle;

fn no_merges(_: &'static mxsim::matrix::RoomVersionRules, _: &[StateMap], _: &Events) -> StateMap {
    unreachable!("benchmark rooms never merge")
}

fn room(version: RoomVersion, event_count: u32, seed: u64) -> SynthRoom {
    let config = SynthConfig {
        version,
        server_count: 20,
        users_per_server: 25,
        event_count,
        // Fork at the first step, never again, never merge.
        fork: Ratio::ONE,
        merge: Ratio::ZERO,
        branch_count_max: 2,
        message: Ratio::new(1, 10).expect("valid"),
    };
    synth::generate(&config, &mut Prng::from_seed(seed), &mut no_merges)
}

fn full_conflicted_len(room: &SynthRoom) -> usize {
    let options = ResolveOptions { explain: true, ..ResolveOptions::default() };
    let resolved =
        state_res::resolve(room.rules, &room.branch_states(), &room.events, options).unwrap();
    resolved.explanation.expect("asked for").full_conflicted.len()
}

/// Events grown after the fork for each target size of the full conflicted set, measured
/// once with `full_conflicted_len` on these seeds (the synthetic rooms are deterministic; the
/// exact size is printed and put in each benchmark's name).
const EVENT_COUNTS: [(usize, u32); 4] = [(10, 14), (100, 100), (1_000, 1_150), (10_000, 15_500)];

fn room_with_conflicts(version: RoomVersion, target: usize) -> (SynthRoom, usize) {
    let event_count = EVENT_COUNTS.iter().find(|(t, _)| *t == target).expect("a listed size").1;
    let r = room(version, event_count, 1);
    let size = full_conflicted_len(&r);
    (r, size)
}

fn bench(c: &mut Criterion) {
    for version in [RoomVersion::V10, RoomVersion::V11, RoomVersion::V12] {
        let mut group = c.benchmark_group(format!("resolve/v{version}"));
        group.sample_size(10);
        for target in [10usize, 100, 1_000, 10_000] {
            let (room, full_conflicted) = room_with_conflicts(version, target);
            let sets = room.branch_states();
            let store = IndexedStore::from_events(
                room.rules,
                room.events.values().map(|pdu| (Arc::clone(pdu), None)),
            );
            let oracle = ruma_oracle::Oracle::new(version, &room.events, &BTreeSet::new());
            let prepared = oracle.prepare(&sets, AuthChainReading::Inclusive);
            // Identical inputs must give identical answers before anything is timed.
            let ours =
                state_res::resolve(room.rules, &sets, &store, ResolveOptions::default()).unwrap();
            let theirs = oracle.run(&prepared.maps, prepared.chains.clone()).unwrap();
            assert_eq!(ours.state, theirs, "v{version} target {target}: mxsim and ruma disagree");
            let label = format!("{target}/fc={full_conflicted}/events={}", room.events.len());
            eprintln!("v{version} {label}");
            group.bench_with_input(BenchmarkId::new("mxsim", &label), &sets, |b, sets| {
                b.iter(|| {
                    state_res::resolve(
                        room.rules,
                        black_box(sets),
                        &store,
                        ResolveOptions::default(),
                    )
                    .unwrap()
                })
            });
            group.bench_with_input(BenchmarkId::new("mxsim_plain", &label), &sets, |b, sets| {
                b.iter(|| {
                    state_res::resolve(
                        room.rules,
                        black_box(sets),
                        &room.events,
                        ResolveOptions::default(),
                    )
                    .unwrap()
                })
            });
            group.bench_with_input(BenchmarkId::new("ruma", &label), &prepared, |b, prepared| {
                b.iter_batched(
                    || prepared.chains.clone(),
                    |chains| oracle.run(black_box(&prepared.maps), chains).unwrap(),
                    BatchSize::LargeInput,
                )
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
