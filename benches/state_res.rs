//! State resolution throughput on a generated forked room: a base of `member_count`
//! joined users, then two forks that each change many members (display names, kicks),
//! the join rule and the power levels, so that both state sets differ on more than a
//! thousand keys. Measures `resolve` from a plain map store (auth chains indexed on every
//! call) and from an `IndexedStore` (index built once, as a homeserver keeps it).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

use mxsim::matrix::auth;
use mxsim::matrix::dag::IndexedStore;
use mxsim::matrix::room_version::{RoomVersionRules, V11, V12};
use mxsim::matrix::state_res::{self, ResolveOptions, StateMap};
use mxsim::matrix::{EventId, Pdu};

struct Builder {
    rules: RoomVersionRules,
    events: BTreeMap<EventId, Pdu>,
    ts: i64,
}

impl Builder {
    fn user(i: usize) -> String {
        format!("@u{i}:example.com")
    }

    fn room_id(&self) -> &'static str {
        if self.rules.room_id_is_create_event_hash { "!create" } else { "!room:example.com" }
    }

    /// Adds an event on top of `state` (its auth events are selected from it) and
    /// applies it.
    fn add(
        &mut self,
        state: &mut StateMap,
        name: String,
        sender: &str,
        event_type: &str,
        state_key: &str,
        content: Value,
    ) {
        let object = content.as_object().unwrap().clone();
        let keys =
            auth::auth_types_for_event(&self.rules, event_type, sender, Some(state_key), &object);
        let auth_events: Vec<&EventId> = keys.iter().filter_map(|k| state.get(k)).collect();
        self.ts += 1;
        let mut json = json!({
            "event_id": format!("${name}"), "type": event_type, "state_key": state_key,
            "sender": sender, "origin_server_ts": self.ts, "depth": self.ts, "content": content,
            "auth_events": auth_events, "prev_events": [],
        });
        if event_type != "m.room.create" || !self.rules.room_id_is_create_event_hash {
            json["room_id"] = json!(self.room_id());
        }
        let Value::Object(object) = json else { unreachable!() };
        let pdu = Pdu::with_given_id(&self.rules, object).unwrap();
        state.insert((event_type.to_owned(), state_key.to_owned()), pdu.event_id().clone());
        self.events.insert(pdu.event_id().clone(), pdu);
    }

    fn levels(&self, admins: &[usize]) -> Value {
        let mut users = serde_json::Map::new();
        for &admin in admins {
            if !(self.rules.privileged_creators && admin == 0) {
                users.insert(Self::user(admin), json!(100));
            }
        }
        json!({ "users": users })
    }
}

/// A room with `member_count` members and two forks changing `changes_per_fork` members
/// each (overlapping by half), with power-level and join-rule changes mixed in.
fn forked_room(
    rules: &RoomVersionRules,
    member_count: usize,
    changes_per_fork: usize,
) -> (BTreeMap<EventId, Pdu>, Vec<StateMap>) {
    let mut b = Builder { rules: *rules, events: BTreeMap::new(), ts: 0 };
    let mut state = StateMap::new();
    let alice = Builder::user(0);
    let mut create = json!({ "room_version": rules.version.as_str() });
    if rules.create_requires_creator {
        create["creator"] = json!(alice);
    }
    b.add(&mut state, "create".into(), &alice, "m.room.create", "", create);
    b.add(
        &mut state,
        "join-0".into(),
        &alice,
        "m.room.member",
        &alice,
        json!({"membership": "join"}),
    );
    let levels = b.levels(&[0, 1, 2]);
    b.add(&mut state, "pl-0".into(), &alice, "m.room.power_levels", "", levels);
    let public = json!({"join_rule": "public"});
    b.add(&mut state, "jr-0".into(), &alice, "m.room.join_rules", "", public);
    for i in 1..member_count {
        let user = Builder::user(i);
        let join = json!({"membership": "join"});
        b.add(&mut state, format!("join-{i}"), &user, "m.room.member", &user, join);
    }
    let mut sets = Vec::new();
    for fork in 0..2 {
        let mut fork_state = state.clone();
        let offset = fork * changes_per_fork / 2;
        for change in 0..changes_per_fork {
            let target = 3 + (offset + change) % (member_count - 3);
            let user = Builder::user(target);
            let name = format!("f{fork}-{change}");
            let admin = Builder::user(fork + 1);
            if change % 100 == 0 {
                let levels = b.levels(&[0, 1, 2, target]);
                b.add(&mut fork_state, name, &admin, "m.room.power_levels", "", levels);
            } else if change % 97 == 0 {
                let join_rule = ["invite", "public"][change % 2];
                let rule = json!({ "join_rule": join_rule });
                b.add(&mut fork_state, name, &admin, "m.room.join_rules", "", rule);
            } else if change % 13 == 0 {
                let kick = json!({"membership": "leave"});
                b.add(&mut fork_state, name, &admin, "m.room.member", &user, kick);
            } else {
                let join = json!({"membership": "join", "displayname": format!("{fork}-{change}")});
                b.add(&mut fork_state, name, &user, "m.room.member", &user, join);
            }
        }
        sets.push(fork_state);
    }
    (b.events, sets)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("resolve");
    group.sample_size(20);
    for rules in [V11, V12] {
        for changes in [500usize, 2000] {
            let (events, sets) = forked_room(&rules, 3000, changes);
            let options = ResolveOptions::default();
            let conflicted =
                state_res::separate(&sets).1.values().map(|ids| ids.len()).sum::<usize>();
            let label = format!("v{}-conflicted-{conflicted}", rules.version);
            group.bench_with_input(BenchmarkId::new("map-store", &label), &(), |bench, _| {
                bench.iter(|| {
                    state_res::resolve(&rules, black_box(&sets), &events, options).unwrap()
                })
            });
            let indexed = IndexedStore::from_events(
                &rules,
                events.values().map(|pdu| (Arc::new(pdu.clone()), None)),
            );
            group.bench_with_input(BenchmarkId::new("indexed-store", &label), &(), |bench, _| {
                bench.iter(|| {
                    state_res::resolve(&rules, black_box(&sets), &indexed, options).unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
