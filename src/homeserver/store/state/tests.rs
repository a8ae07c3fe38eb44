//! Tests of state groups: deltas, rebases, snapshots, lookups and overlays.

use std::collections::BTreeSet;

use super::delta::key_hash;
use super::*;

pub(super) fn id(text: &str) -> EventId {
    EventId::parse(text).unwrap()
}

pub(super) fn key(t: &str, k: &str) -> StateKey {
    (t.to_owned(), k.to_owned())
}

#[test]
fn group_ids_are_positions_in_four_bytes_with_or_without_an_option() {
    assert_eq!(std::mem::size_of::<StateGroupId>(), 4);
    assert_eq!(std::mem::size_of::<Option<StateGroupId>>(), 4);
    for position in [0, 1, 31, 1 << 20, u32::MAX as usize - 2] {
        let id = StateGroupId::at(position);
        assert_eq!(id.position(), position);
        assert!(id < StateGroup::NO_SKIP, "no group takes the id that marks no skip");
    }
    assert!(StateGroupId::at(3) < StateGroupId::at(4), "ids order as positions");
    assert_eq!(format!("{:?}", StateGroupId::at(7)), "StateGroupId(7)");
    let past_the_last = std::panic::catch_unwind(|| StateGroupId::at(u32::MAX as usize - 1));
    assert!(past_the_last.is_err(), "the id that marks no skip is never handed out");
}

#[test]
fn deltas_materialise_to_the_stored_state_and_snapshot_periodically() {
    let mut store = Store::new();
    let mut state = StateMap::new();
    state.insert(key("m.room.create", ""), id("$c"));
    let mut group = store.store_state(&state, None);
    for i in 0..100 {
        let member = format!("@u{i}:hs");
        state.insert(key("m.room.member", &member), id(&format!("$m{i}")));
        if i % 7 == 0 {
            state.remove(&key("m.room.member", &format!("@u{}:hs", i / 2)));
            group = store.store_state(&state, Some(group));
        } else {
            group =
                store.store_state_with(group, key("m.room.member", &member), id(&format!("$m{i}")));
        }
        assert_eq!(store.state(group), state, "after step {i}");
        let ids: Vec<EventId> = state.values().cloned().collect();
        assert_eq!(store.state_ids(group), ids, "after step {i}");
        let entries: Vec<(&StateKey, &EventId)> = state.iter().collect();
        assert_eq!(store.state_entries(group), entries, "after step {i}");
        assert!(store.group(group).chain_len < SNAPSHOT_EVERY);
        // Every key by borrowed parts, present, removed or never set.
        for j in 0..=i + 1 {
            let member = format!("@u{j}:hs");
            let by_parts = store.state_get_parts(group, "m.room.member", &member);
            assert_eq!(by_parts, state.get(&key("m.room.member", &member)), "{i} {member}");
        }
    }
    assert_eq!(store.state_get(group, &key("m.room.create", "")), Some(id("$c")));
    assert_eq!(store.state_get(group, &key("m.room.member", "@u0:hs")), None);
    assert_eq!(store.state_get(group, &key("m.room.member", "@u99:hs")), Some(id("$m99")));
}

#[test]
fn long_chains_rebase_on_their_snapshot_until_it_is_a_quarter_out_of_date() {
    let mut store = Store::new();
    let mut state = StateMap::new();
    for i in 0..400 {
        state.insert(key("m.room.member", &format!("@u{i}:hs")), id(&format!("$m{i}")));
    }
    let first = store.store_state(&state, None);
    let mut groups = vec![(first, state.clone())];
    // 300 topic changes: one key away from the snapshot, so never a second snapshot.
    for i in 0..300 {
        let (parent, _) = *groups.last().unwrap();
        state.insert(key("m.room.topic", ""), id(&format!("$t{i}")));
        let group = store.store_state_with(parent, key("m.room.topic", ""), id(&format!("$t{i}")));
        groups.push((group, state.clone()));
    }
    let snapshots = |store: &Store| store.groups.iter().filter(|g| g.parent.is_none()).count();
    assert_eq!(snapshots(&store), 1, "a one-key difference never needs a full copy");
    // 300 joins: the difference grows by one each time, so a new snapshot is taken once
    // it passes a quarter of the snapshot's size (100 keys, then 125, ...).
    for i in 400..700 {
        let (parent, _) = *groups.last().unwrap();
        let member = key("m.room.member", &format!("@u{i}:hs"));
        state.insert(member.clone(), id(&format!("$m{i}")));
        let group = if i % 5 == 0 {
            store.store_state(&state, Some(parent))
        } else {
            store.store_state_with(parent, member, id(&format!("$m{i}")))
        };
        groups.push((group, state.clone()));
    }
    let taken = snapshots(&store);
    assert!((2..=4).contains(&taken), "{taken} snapshots for 300 joins over 400 members");
    for (group, expected) in &groups {
        assert_eq!(&store.state(*group), expected);
        assert!(store.group(*group).chain_len < SNAPSHOT_EVERY);
        assert_eq!(store.state_digest(*group), StateGroup::digest_of(expected));
    }
}

#[test]
fn rebases_and_snapshots_keep_removals_changes_and_new_keys() {
    // A long chain of random changes to 480 keys, 400 of them in the first snapshot (set
    // anew between and after its keys, changed, removed): chains reach their limit again
    // and again, and are rebased or snapshotted. Every group holds the model's state.
    let mut store = Store::new();
    let mut rng = crate::stdx::Prng::from_seed(11);
    let member = |n: usize| key("m.room.member", &format!("@u{n:03}:hs"));
    let mut state = StateMap::new();
    for n in (0..480).filter(|n| n % 6 != 0) {
        state.insert(member(n), id(&format!("$m{n}")));
    }
    let mut group = store.store_state(&state, None);
    let mut groups = vec![(group, state.clone())];
    for step in 0..900u64 {
        let mut changes = Vec::new();
        for _ in 0..=rng.index(2) {
            let key = member(rng.index(480));
            if changes.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let event = (rng.index(3) > 0).then(|| id(&format!("$e{step}-{}", key.1)));
            match &event {
                Some(event) => state.insert(key.clone(), event.clone()),
                None => state.remove(&key),
            };
            changes.push((key, event));
        }
        group = store.store_changes(group, &changes);
        groups.push((group, state.clone()));
    }
    let snapshots = store.groups.iter().filter(|g| g.parent.is_none()).count();
    // A rebased group is one step above a snapshot and holds a chain's worth of changes
    // (a step changes at most two keys).
    let rebased = store.groups.iter().filter(|g| g.chain_len == 1 && g.delta.len() > 2).count();
    assert!(snapshots > 3 && rebased > 3, "{snapshots} snapshots, {rebased} rebased");
    for (group, expected) in &groups {
        assert_eq!(&store.state(*group), expected, "{group:?}");
        assert_eq!(store.state_digest(*group), StateGroup::digest_of(expected));
    }
    // Every part of a chain from its top, sorted by merging around its largest group (a
    // snapshot, a rebased group, a two-key delta among one-key ones), holds what a sorted
    // map gathers from it; so does the part below its top group with that group's entries
    // given as the entries set over it.
    let mut largest_inside = 0;
    let none = BTreeMap::new();
    for index in (0..store.groups.len()).step_by(3) {
        let chain = store.chain_of(StateGroupId::at(index));
        for end in 0..=chain.len() {
            let ids = &chain[..end];
            let expected: Vec<_> = store.entries_of(ids).into_iter().collect();
            assert_eq!(store.sorted_entries_over(&none, ids), expected, "{ids:?}");
            if let Some((first, below)) = ids.split_first() {
                let top: BTreeMap<StateKey, Option<EventId>> =
                    store.group(*first).delta.iter().map(|(k, e)| (k.clone(), e.clone())).collect();
                assert_eq!(store.sorted_entries_over(&top, below), expected, "over {ids:?}");
            }
            let len = |id: &StateGroupId| store.group(*id).delta.len();
            let largest = ids.iter().map(len).max().unwrap_or(0);
            largest_inside +=
                usize::from(end > 1 && ids[..end - 1].iter().any(|id| len(id) == largest));
        }
    }
    assert!(largest_inside > 100, "the largest group is often above the chain's end");
}

#[test]
fn changed_keys_cover_every_difference_between_groups_that_meet() {
    // A tree of groups: deltas, one-key deltas and snapshots, branching from earlier
    // groups; for every pair whose chains meet, a key outside the changed keys has the
    // same entry in both.
    let mut store = Store::new();
    let mut rng = crate::stdx::Prng::from_seed(7);
    let mut state = StateMap::new();
    state.insert(key("m.room.create", ""), id("$c"));
    let mut groups = vec![(store.store_state(&state, None), state.clone())];
    for i in 0..120u64 {
        let (parent, base) = groups[rng.index(groups.len())].clone();
        let member = key("m.room.member", &format!("@u{}:hs", rng.index(12)));
        let event = id(&format!("$e{i}"));
        let (group, state) = match rng.index(3) {
            0 => {
                let mut state = base.clone();
                state.insert(member.clone(), event.clone());
                (store.store_state_with(parent, member, event), state)
            }
            1 => {
                let mut state = base.clone();
                state.remove(&member);
                state.insert(key("m.room.topic", ""), event);
                (store.store_state(&state, Some(parent)), state)
            }
            _ => {
                let mut state = base.clone();
                state.insert(member, event);
                (store.store_state(&state, None), state)
            }
        };
        groups.push((group, state));
    }
    let mut met = 0;
    for (a, state_a) in &groups {
        for (b, state_b) in &groups {
            assert_eq!(store.same_state(*a, *b), state_a == state_b, "{a:?} {b:?}");
            let Some(keys) = store.changed_keys(*a, *b) else { continue };
            met += 1;
            let all: BTreeSet<&StateKey> = state_a.keys().chain(state_b.keys()).collect();
            for k in all.into_iter().filter(|k| !keys.contains(k)) {
                assert_eq!(state_a.get(k), state_b.get(k), "{a:?} {b:?} {k:?}");
            }
        }
    }
    assert!(met > groups.len() * 4, "too few pairs meet ({met}) to test anything");
    // The keys set since an ancestor: every other key has the ancestor's entry; asked of
    // a group that is not an ancestor (found by walking the parents), nothing.
    let mut above = 0;
    for (a, state_a) in &groups {
        for (b, state_b) in &groups {
            let mut ancestors = std::iter::successors(Some(*b), |&g| store.group(g).parent);
            let is_ancestor = ancestors.any(|g| g == *a);
            assert_eq!(store.keys_set_since(*a, *b).is_some(), is_ancestor, "{a:?} below {b:?}");
            // Keys picked by nothing are kept exactly from an ancestor.
            assert_eq!(store.keys_kept_since(*a, *b, |_| false), is_ancestor, "{a:?} {b:?}");
            let Some(keys) = store.keys_set_since(*a, *b) else { continue };
            let keys: BTreeSet<&StateKey> = keys.collect();
            // A key is kept unless it was set on the way.
            for key in state_a.keys().chain(state_b.keys()) {
                let kept = store.keys_kept_since(*a, *b, |k| k == key);
                assert_eq!(kept, !keys.contains(key), "{a:?} below {b:?}: {key:?}");
            }
            above += usize::from(a != b);
            let all: BTreeSet<&StateKey> = state_a.keys().chain(state_b.keys()).collect();
            for k in all.into_iter().filter(|k| !keys.contains(k)) {
                assert_eq!(state_a.get(k), state_b.get(k), "{a:?} below {b:?}: {k:?}");
            }
            if a == b {
                assert!(keys.is_empty(), "no key is set since a group itself");
            }
        }
    }
    assert!(above > groups.len(), "too few groups above others ({above}) to test anything");
}

#[test]
fn overlaid_groups_read_as_their_states_and_changes_store_as_deltas() {
    // A tree of groups as above, with removals; sets of up to three groups, on one
    // snapshot or several, are given as base and overlays: each group's state must be
    // the base overwritten by its overlay entries. Then storing a state as changes
    // on a group gives exactly that state.
    let mut store = Store::new();
    let mut rng = crate::stdx::Prng::from_seed(11);
    let mut state = StateMap::new();
    state.insert(key("m.room.create", ""), id("$c"));
    let mut groups = vec![(store.store_state(&state, None), state.clone())];
    for i in 0..80u64 {
        let (parent, base) = groups[rng.index(groups.len())].clone();
        let member = key("m.room.member", &format!("@u{}:hs", rng.index(10)));
        let mut state = base.clone();
        let group = match rng.index(4) {
            0 => {
                state.remove(&member);
                store.store_state(&state, Some(parent))
            }
            1 if i % 6 == 0 => {
                state.insert(member, id(&format!("$e{i}")));
                store.store_state(&state, None)
            }
            _ => {
                state.insert(member.clone(), id(&format!("$e{i}")));
                store.store_state_with(parent, member, id(&format!("$e{i}")))
            }
        };
        groups.push((group, state));
    }
    let (mut one_snapshot, mut several) = (0, 0);
    for _ in 0..300 {
        let picked: Vec<&(StateGroupId, StateMap)> =
            (0..1 + rng.index(3)).map(|_| &groups[rng.index(groups.len())]).collect();
        let ids: Vec<StateGroupId> = picked.iter().map(|(g, _)| *g).collect();
        let overlaid = store.overlaid(&ids);
        let mut roots: Vec<StateGroupId> =
            ids.iter().map(|&g| *store.chain_of(g).last().unwrap()).collect();
        roots.sort();
        roots.dedup();
        if roots.len() == 1 {
            one_snapshot += 1
        } else {
            several += 1
        }
        assert!(overlaid.keys.windows(2).all(|w| w[0] < w[1]));
        for (at, (_, expected)) in picked.iter().enumerate() {
            let mut state: StateMap =
                overlaid.base.iter().map(|&(k, v)| (k.clone(), v.clone())).collect();
            for (k, v) in overlaid.keys.iter().zip(&overlaid.sets[at]) {
                match v {
                    Some(v) => state.insert((*k).clone(), (*v).clone()),
                    None => state.remove(*k),
                };
            }
            assert_eq!(&state, expected, "group {at} of {ids:?}");
        }
    }
    assert!(one_snapshot > 50 && several > 50, "{one_snapshot} on one snapshot, {several} not");
    for i in 0..60u64 {
        let (parent, base) = groups[rng.index(groups.len())].clone();
        let mut changes = vec![(key("m.room.member", &format!("@u{}:hs", rng.index(10))), None)];
        if i % 3 > 0 {
            changes.push((key("m.room.topic", ""), Some(id(&format!("$t{}", i % 2)))));
        }
        changes.sort();
        let mut expected = base.clone();
        for (k, v) in &changes {
            match v {
                Some(v) => expected.insert(k.clone(), v.clone()),
                None => expected.remove(k),
            };
        }
        let group = store.store_changes(parent, &changes);
        assert_eq!(store.state(group), expected);
        assert_eq!(group == parent, expected == base, "a new group only for a change");
        assert_eq!(store.state_digest(group), StateGroup::digest_of(&expected));
        groups.push((group, expected));
    }
}

#[test]
fn same_state_compares_contents_whatever_the_groups() {
    let mut store = Store::new();
    let mut state = StateMap::new();
    state.insert(key("m.room.create", ""), id("$c"));
    state.insert(key("m.room.topic", ""), id("$t1"));
    let base = store.store_state(&state, None);
    // A delta that sets a key to the value it has: the same state.
    let same = store.store_state_with(base, key("m.room.topic", ""), id("$t1"));
    assert!(store.same_state(base, same) && store.same_state(same, base));
    // A delta that changes it, or adds a key: another state.
    let changed = store.store_state_with(base, key("m.room.topic", ""), id("$t2"));
    assert!(!store.same_state(base, changed) && !store.same_state(changed, base));
    let added = store.store_state_with(base, key("m.room.name", ""), id("$n"));
    assert!(!store.same_state(added, base));
    // Unrelated groups: compared by content.
    let copy = store.store_state(&state, None);
    assert!(store.same_state(copy, base));
    assert!(!store.same_state(copy, changed));
    // Siblings that set the same key to the same new value.
    let twin = store.store_state_with(base, key("m.room.topic", ""), id("$t2"));
    assert!(store.same_state(twin, changed));
}

#[test]
fn chain_filters_hold_every_key_above_what_they_skip_to_and_skip_to_large_groups() {
    let mut store = Store::new();
    let mut state = StateMap::new();
    state.insert(key("m.room.create", ""), id("$c"));
    let snapshot = store.store_state(&state, None);
    let member = |i: usize| key("m.room.member", &format!("@u{i}:hs"));
    let mut group = snapshot;
    for i in 0..20 {
        group = store.store_state_with(group, member(i), id("$m"));
        let stored = store.group(group);
        assert_eq!(stored.skip_to, snapshot, "a delta on the first snapshot");
        for j in 0..=i {
            let hash = key_hash("m.room.member", &format!("@u{j}:hs"));
            assert!(stored.above.may_hold(hash), "step {i}: key {j} set above the snapshot");
        }
    }
    // Twenty keys set 20 of 256 bits at most: most keys never set are filtered out, and
    // their lookups go to the snapshot at once and still find what it holds.
    let above = store.group(group).above;
    let filtered =
        (0..200).filter(|j| !above.may_hold(key_hash("m.room.member", &format!("@v{j}:hs"))));
    assert!(filtered.count() > 150);
    assert!(!above.may_hold(key_hash("m.room.create", "")));
    assert_eq!(store.state_get_parts(group, "m.room.create", ""), Some(&id("$c")));
    assert_eq!(store.state_get_parts(group, "m.room.server_acl", ""), None);

    // A large delta (forty keys, one of them removing a member set under it) is in no
    // filter above it: those groups skip to it, and lookups through it find its keys, the
    // keys under it, and the snapshot's.
    let changes: Vec<(StateKey, Option<EventId>)> =
        (10..50).map(|i| (member(i), (i != 10).then(|| id(&format!("$n{i}"))))).collect();
    let large = store.store_changes(group, &changes);
    assert!(store.group(large).delta.is_large());
    assert_eq!(store.group(large).above, ChainFilter::ALL, "its own table is searched");
    let top = store.store_state_with(large, key("m.room.topic", ""), id("$t"));
    let top = store.store_state_with(top, key("m.room.name", ""), id("$n"));
    let stored = store.group(top);
    assert_eq!(stored.skip_to, large);
    // Above `large`: the topic and the name (two bits), not the large delta's forty keys.
    assert!(stored.above.may_hold(key_hash("m.room.topic", "")));
    let admitted = (10..50)
        .filter(|i| stored.above.may_hold(key_hash("m.room.member", &format!("@u{i}:hs"))))
        .count();
    assert!(admitted <= 5, "{admitted} of the large delta's keys pass a two-key filter");
    let held = (0..60).filter(|&i| store.state_get(top, &member(i)).is_some()).count();
    assert_eq!(held, 49, "members 0 to 49, less the one removed");
    assert_eq!(store.state_get(top, &member(10)), None);
    assert_eq!(store.state_get(top, &member(5)), Some(id("$m")));
    assert_eq!(store.state_get(top, &member(30)), Some(id("$n30")));
    assert_eq!(store.state_get_parts(top, "m.room.create", ""), Some(&id("$c")));
    assert_eq!(store.state_get_parts(top, "m.room.topic", ""), Some(&id("$t")));
    for (k, v) in &store.state(top) {
        assert_eq!(store.state_get(top, k).as_ref(), Some(v), "{k:?}");
    }
}

/// A state map's entries as [`Store::store_state_near`] takes them.
fn entries(state: &StateMap) -> Vec<(&str, &str, &EventId)> {
    state.iter().map(|((t, k), id)| (t.as_str(), k.as_str(), id)).collect()
}

#[test]
fn a_state_stored_near_a_group_is_a_small_delta_on_its_snapshot_or_a_snapshot() {
    let mut store = Store::new();
    let member = |i: usize| key("m.room.member", &format!("@u{i}:hs"));
    let mut state = StateMap::new();
    state.insert(key("m.room.create", ""), id("$c"));
    for i in 0..40 {
        state.insert(member(i), id(&format!("$m{i}")));
    }
    let snapshot = store.store_state(&state, None);
    let current = store.store_state_with(snapshot, member(40), id("$m40"));
    // A fetched state a few keys away from the current one: one member changed, one
    // gone, one new, one key before every other in order.
    let mut near = state.clone();
    near.insert(member(3), id("$m3b"));
    near.remove(&member(7));
    near.insert(member(99), id("$m99"));
    near.insert(key("a.first", ""), id("$a"));
    let group = store.store_state_near(&entries(&near), current);
    assert_eq!(store.state(group), near);
    assert_eq!(store.state_digest(group), StateGroup::digest_of(&near));
    let stored = store.group(group);
    assert_eq!((stored.parent, stored.chain_len), (Some(snapshot), 1), "a delta on the snapshot");
    assert_eq!(stored.delta.len(), 4, "only the keys that differ from the snapshot");
    assert_eq!(store.state_get(group, &member(7)), None);
    assert_eq!(store.state_get(group, &member(5)), Some(id("$m5")));
    // The snapshot's own state: the snapshot, no new group.
    let groups = store.groups.len();
    assert_eq!(store.store_state_near(&entries(&state), current), snapshot);
    assert_eq!(store.groups.len(), groups);
    // A state that differs in more than a quarter of the snapshot's 41 entries: a snapshot.
    let mut far = state.clone();
    for i in 0..11 {
        far.insert(member(i), id(&format!("$x{i}")));
    }
    let group = store.store_state_near(&entries(&far), current);
    assert_eq!(store.state(group), far);
    assert_eq!(store.group(group).parent, None, "a snapshot of its own");
    assert_eq!(store.state_digest(group), StateGroup::digest_of(&far));
    let mut just = state.clone();
    for i in 0..10 {
        just.insert(member(i), id(&format!("$x{i}")));
    }
    let group = store.store_state_near(&entries(&just), current);
    assert_eq!(store.state(group), just);
    assert_eq!(store.group(group).parent, Some(snapshot), "ten of 41: still a delta");
}

#[test]
fn a_rebase_through_a_large_group_keeps_the_highest_entry_of_each_key() {
    let mut store = Store::new();
    let member = |i: usize| key("m.room.member", &format!("@u{i}:hs"));
    let mut state = StateMap::new();
    for i in 0..100 {
        state.insert(member(i), id(&format!("$s{i}")));
    }
    let mut group = store.store_state(&state, None);
    // Small groups, then a large one (twelve keys, one removed), then small groups that
    // set some of its keys again, until the chain is rebased.
    for i in 0..5 {
        group = store.store_state_with(group, member(i), id(&format!("$a{i}")));
        state.insert(member(i), id(&format!("$a{i}")));
    }
    let changes: Vec<(StateKey, Option<EventId>)> =
        (3..15).map(|i| (member(i), (i != 14).then(|| id(&format!("$b{i}"))))).collect();
    group = store.store_changes(group, &changes);
    assert!(store.group(group).delta.is_large());
    for (k, v) in &changes {
        match v {
            Some(v) => state.insert(k.clone(), v.clone()),
            None => state.remove(k),
        };
    }
    let mut i = 0;
    while store.group(group).chain_len > 1 || i == 0 {
        let at = 10 + i % 4;
        group = store.store_state_with(group, member(at), id(&format!("$c{i}")));
        state.insert(member(at), id(&format!("$c{i}")));
        assert_eq!(store.state(group), state, "step {i}");
        i += 1;
    }
    assert_eq!(store.group(group).chain_len, 1, "rebased on the snapshot");
    assert_eq!(store.state_get(group, &member(3)), Some(id("$b3")), "the large group's");
    assert_eq!(store.state_get(group, &member(14)), None, "removed by the large group");
    assert_eq!(store.state_get(group, &member(1)), Some(id("$a1")), "a small group's below");
    assert_eq!(store.state_get(group, &member(50)), Some(id("$s50")), "the snapshot's");
    assert_eq!(store.state(group), state);
}

mod pool;
