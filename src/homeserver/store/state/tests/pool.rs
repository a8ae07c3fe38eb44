//! Tests of the pool of snapshots and deltas that stores share ([`SharedSnapshots`]):
//! snapshots, large and small deltas, and rebases.

use super::*;

/// A store (sharing `pool`, if given) that stores a state of 200 members whole, then
/// sets one of 40 members at a time to an event named from `prefix`: chains of
/// [`SNAPSHOT_EVERY`] groups rebased on the snapshot as large deltas. Its groups in order.
fn members_changing(
    pool: Option<&Arc<SharedSnapshots>>,
    prefix: &str,
) -> (Store, Vec<StateGroupId>) {
    members_changing_over(pool, prefix, 40)
}

/// [`members_changing`] with the changes going round `cycle` members: with more than 50
/// (a quarter of the state), the rebased chain outgrows the snapshot and a new snapshot
/// is taken.
fn members_changing_over(
    pool: Option<&Arc<SharedSnapshots>>,
    prefix: &str,
    cycle: usize,
) -> (Store, Vec<StateGroupId>) {
    let mut store = Store::new();
    if let Some(pool) = pool {
        store.share_snapshots(pool);
    }
    let mut state = StateMap::new();
    state.insert(key("m.room.create", ""), id("$c"));
    for i in 0..200 {
        state.insert(key("m.room.member", &format!("@u{i}:hs")), id(&format!("$b{i}")));
    }
    let mut group = store.store_state(&state, None);
    let mut groups = vec![group];
    for i in 0..100 {
        let member = format!("@u{}:hs", i % cycle);
        let event = id(&format!("${prefix}{i}"));
        group = store.store_state_with(group, key("m.room.member", &member), event);
        groups.push(group);
    }
    (store, groups)
}

/// The entries of `store`'s groups that `which` selects, each the pool's (it panics on a
/// group that holds its own, which a store given the pool never does).
fn pooled(store: &Store, which: impl Fn(&StateGroup) -> bool) -> Vec<Arc<Delta>> {
    let groups = store.groups.iter().filter(|g| which(g));
    groups
        .map(|g| {
            Arc::clone(g.delta.shared().expect("a store given the pool holds its entries there"))
        })
        .collect()
}

#[test]
fn stores_sharing_snapshots_hold_one_copy_of_each_state_and_large_delta() {
    let pool = Arc::new(SharedSnapshots::new());
    // The same states stored in the same way by two stores, and others by a third.
    let (a, a_groups) = members_changing(Some(&pool), "m");
    let (b, b_groups) = members_changing(Some(&pool), "m");
    let (other, _) = members_changing(Some(&pool), "x");
    let held = |store: &Store| pooled(store, |g| g.parent.is_none() || g.delta.is_large());
    let (a_held, b_held) = (held(&a), held(&b));
    let large = a.groups.iter().filter(|g| g.parent.is_some() && g.delta.is_large()).count();
    assert!(large >= 2, "the chains are rebased as large deltas: {large}");
    assert_eq!(a_held.len(), b_held.len());
    assert!(a_held.iter().zip(&b_held).all(|(x, y)| Arc::ptr_eq(x, y)));
    // b took each of a's: its first snapshot found by its entries, its rebases as a's,
    // made from the same inputs. The third store took only its first, the whole state it
    // starts from, which is a's too: the states it rebases differ.
    assert_eq!(pool.taken(), 2);
    assert_eq!(pool.rebases_taken(), b_held.len() as u64 - 1);
    assert_eq!(pool.len(), a_held.len() + held(&other).len() - 1);
    // And the stores read as if each held its own.
    let (alone, alone_groups) = members_changing(None, "m");
    assert!(alone.groups.iter().all(|g| matches!(g.delta, HeldDelta::Own(_))));
    assert_read_alike(&[(&a, &a_groups), (&b, &b_groups)], (&alone, &alone_groups));
}

/// Each of `stores`' groups reads as the state of `alone`'s group at the same place.
fn assert_read_alike(stores: &[(&Store, &[StateGroupId])], alone: (&Store, &[StateGroupId])) {
    for (store, groups) in stores {
        for (x, z) in groups.iter().zip(alone.1) {
            assert_eq!(store.state(*x), alone.0.state(*z));
        }
    }
}

/// A create event and one `x` entry, `event`.
fn two_entries(event: &str) -> Vec<(StateKey, Option<EventId>)> {
    vec![(key("m.room.create", ""), Some(id("$c"))), (key("x", ""), Some(id(event)))]
}

#[test]
fn a_pooled_snapshot_is_taken_only_when_its_entries_are_equal() {
    let pool = SharedSnapshots::new();
    let delta = |event: &str| Delta::new(two_entries(event).into());
    // One digest for all three, as a collision would give: the entries decide.
    let digest = StateDigest::EMPTY;
    let first = pool.share(digest, delta("$a"));
    let other = pool.share(digest, delta("$b"));
    assert!(!Arc::ptr_eq(&first, &other), "different entries are not shared");
    let again = pool.share(digest, delta("$a"));
    assert!(Arc::ptr_eq(&first, &again), "equal entries are");
    assert_eq!((pool.taken(), pool.len()), (1, 2));
}

#[test]
fn a_store_takes_pooled_snapshots_and_large_deltas_before_copying_their_entries() {
    let pool = Arc::new(SharedSnapshots::new());
    // 100 changes over 80 members: rebases onto the first snapshot until the chain's
    // changes pass 50, then a new snapshot, then rebases onto that one.
    let (a, a_groups) = members_changing_over(Some(&pool), "m", 80);
    let snapshots = |store: &Store| store.groups.iter().filter(|g| g.parent.is_none()).count();
    let large = |store: &Store| {
        store.groups.iter().filter(|g| g.parent.is_some() && g.delta.is_large()).count()
    };
    assert_eq!(snapshots(&a), 2, "the stored state and one taken when a rebase outgrew it");
    assert!(large(&a) >= 2, "rebases on both snapshots: {}", large(&a));
    let held_before = pool.len();
    let (b, b_groups) = members_changing_over(Some(&pool), "m", 80);
    // b made every snapshot and large delta a made, and took each from the pool without
    // copying an entry: the first snapshot found by its entries, each rebase (a large
    // delta or a new snapshot) as a's, made from the same chain and changes. The pool
    // holds no more than before.
    assert_eq!(pool.len(), held_before);
    assert_eq!(pool.taken(), 1);
    assert_eq!(pool.rebases_taken(), (snapshots(&b) - 1 + large(&b)) as u64);
    for (x, y) in a.groups.iter().zip(&b.groups) {
        match (&x.delta, &y.delta) {
            (HeldDelta::Shared(x), HeldDelta::Shared(y)) => assert!(Arc::ptr_eq(x, y)),
            (HeldDelta::Own(x), HeldDelta::Own(y)) => assert!(x.same_entries(y)),
            _ => panic!("the same groups are shared in both stores or in neither"),
        }
    }
    // Their states are those of a store that holds its own copies.
    let (alone, alone_groups) = members_changing_over(None, "m", 80);
    assert_read_alike(&[(&a, &a_groups), (&b, &b_groups)], (&alone, &alone_groups));
}

#[test]
fn a_pooled_delta_is_found_only_for_equal_entries() {
    let pool = SharedSnapshots::new();
    let entries = two_entries;
    let digest = StateDigest::EMPTY;
    let held = pool.share(digest, Delta::new(entries("$a").into()));
    let wanted = entries("$a");
    let borrowed = || wanted.iter().map(|(k, e)| (k, e.as_ref()));
    let found = pool.find(digest, |d| d.holds(borrowed())).expect("equal entries are found");
    assert!(Arc::ptr_eq(&held, &found));
    // Other entries, fewer entries, or another digest: not found, and nothing counted.
    let other = entries("$b");
    assert!(pool.find(digest, |d| d.holds(other.iter().map(|(k, e)| (k, e.as_ref())))).is_none());
    assert!(pool.find(digest, |d| d.holds(borrowed().take(1))).is_none());
    let elsewhere = StateDigest::EMPTY.add("x", "", "$a");
    assert!(pool.find(elsewhere, |d| d.holds(borrowed())).is_none());
    assert_eq!((pool.taken(), pool.len()), (1, 1));
}

#[test]
fn stores_sharing_a_pool_hold_one_copy_of_each_small_delta() {
    let pool = Arc::new(SharedSnapshots::new());
    let (a, a_groups) = members_changing(Some(&pool), "m");
    let (b, b_groups) = members_changing(Some(&pool), "m");
    let (other, other_groups) = members_changing(Some(&pool), "x");
    let small = |store: &Store| pooled(store, |g| g.parent.is_some() && !g.delta.is_large());
    let (a_small, b_small, other_small) = (small(&a), small(&b), small(&other));
    assert!(a_small.len() >= 90, "one small delta per member event: {}", a_small.len());
    assert_eq!(a_small.len(), b_small.len());
    assert!(a_small.iter().zip(&b_small).all(|(x, y)| Arc::ptr_eq(x, y)));
    // The third store's events differ, so none of its small deltas is a's.
    assert!(other_small.iter().all(|x| !a_small.iter().any(|y| Arc::ptr_eq(x, y))));
    assert_eq!(pool.small_len(), a_small.len() + other_small.len());
    assert_eq!(pool.small_taken(), b_small.len() as u64);
    // A group's entries take two words (a pointer and the variant), shared or not.
    assert!(std::mem::size_of::<StateGroup>() <= 80, "{}", std::mem::size_of::<StateGroup>());
    let (alone, alone_groups) = members_changing(None, "m");
    assert!(alone.groups.iter().all(|g| matches!(g.delta, HeldDelta::Own(_))));
    assert_read_alike(&[(&a, &a_groups), (&b, &b_groups)], (&alone, &alone_groups));
    let (other_alone, other_alone_groups) = members_changing(None, "x");
    assert_read_alike(&[(&other, &other_groups)], (&other_alone, &other_alone_groups));
}

#[test]
fn a_resolutions_changes_are_shared_only_when_their_entries_are_equal() {
    let pool = Arc::new(SharedSnapshots::new());
    let mut base = StateMap::new();
    base.insert(key("m.room.create", ""), id("$c"));
    base.insert(key("m.room.member", "@a:hs"), id("$a"));
    let changes = |member: Option<&str>, topic: &str| {
        vec![
            (key("m.room.member", "@a:hs"), member.map(id)),
            (key("m.room.topic", ""), Some(id(topic))),
            // Unchanged: left out of the delta, whatever the store was given.
            (key("m.room.create", ""), Some(id("$c"))),
        ]
    };
    let mut stores: Vec<(Store, StateGroupId)> = (0..4)
        .map(|_| {
            let mut store = Store::new();
            store.share_snapshots(&pool);
            let root = store.store_state(&base, None);
            (store, root)
        })
        .collect();
    // Two stores resolve to the same changes; the others to another removal or topic.
    let given =
        [changes(None, "$t"), changes(None, "$t"), changes(Some("$a2"), "$t"), changes(None, "$u")];
    let groups: Vec<StateGroupId> = stores
        .iter_mut()
        .zip(&given)
        .map(|((store, root), changes)| store.store_changes(*root, changes))
        .collect();
    let delta = |at: usize| {
        Arc::clone(stores[at].0.group(groups[at]).delta.shared().expect("held in the pool"))
    };
    assert_eq!(delta(0).len(), 2, "only the keys that change");
    assert!(Arc::ptr_eq(&delta(0), &delta(1)), "equal changes are one copy");
    assert!(!Arc::ptr_eq(&delta(0), &delta(2)), "a key set rather than removed is not");
    assert!(!Arc::ptr_eq(&delta(0), &delta(3)), "another event for a key is not");
    assert_eq!((pool.small_len(), pool.small_taken()), (3, 1));
    for (at, changes) in given.iter().enumerate() {
        let mut expected = base.clone();
        for (key, event) in changes {
            match event {
                Some(event) => expected.insert(key.clone(), event.clone()),
                None => expected.remove(key),
            };
        }
        assert_eq!(stores[at].0.state(groups[at]), expected);
    }
}

#[test]
fn a_pooled_small_delta_is_found_only_for_equal_entries() {
    let pool = SharedSnapshots::new();
    // One hash for all, as a collision would give: the entries decide.
    let hash = 7;
    let held = pool.hold_small(hash, Delta::new(two_entries("$a").into()));
    let find = |event: &str, take: usize| {
        let wanted = two_entries(event);
        pool.find_small(hash, |d| d.holds(wanted.iter().take(take).map(|(k, e)| (k, e.as_ref()))))
    };
    assert!(Arc::ptr_eq(&held, &find("$a", 2).expect("equal entries are found")));
    assert!(find("$b", 2).is_none() && find("$a", 1).is_none());
    assert!(pool.find_small(hash + 1, |_| true).is_none(), "another hash");
    // Shared by the entries' own hash.
    let first = pool.share_small(Delta::new(two_entries("$a").into()));
    let again = pool.share_small(Delta::new(two_entries("$a").into()));
    let other = pool.share_small(Delta::new(two_entries("$b").into()));
    assert!(Arc::ptr_eq(&first, &again) && !Arc::ptr_eq(&first, &other));
    assert_eq!((pool.small_len(), pool.small_taken(), pool.len()), (3, 2, 0));
}

#[test]
fn a_rebase_is_taken_only_from_the_same_chain_and_changes() {
    let pool = Arc::new(SharedSnapshots::new());
    // Stores that share a history of 31 one-key groups over one snapshot, then set the
    // key that makes the 32nd group (a rebase) to `last`, after a middle group `middle`.
    let store = |middle: &str, last: &str| {
        let mut store = Store::new();
        store.share_snapshots(&pool);
        let mut state = StateMap::new();
        state.insert(key("m.room.create", ""), id("$c"));
        for i in 0..40 {
            state.insert(key("m.room.member", &format!("@u{i}:hs")), id(&format!("$b{i}")));
        }
        let mut group = store.store_state(&state, None);
        for i in 0..32 {
            let event = match i {
                15 => id(middle),
                31 => id(last),
                _ => id(&format!("$m{i}")),
            };
            let member = format!("@u{}:hs", i % 3);
            state.insert(key("m.room.member", &member), event.clone());
            group = store.store_state_with(group, key("m.room.member", &member), event);
        }
        assert_eq!(store.group(group).chain_len, 1, "the last group is a rebase");
        assert_eq!(store.state(group), state);
        (store, group)
    };
    let (a, a_group) = store("$x", "$p");
    assert_eq!(pool.rebases_taken(), 0);
    let (b, b_group) = store("$x", "$p");
    assert_eq!(pool.rebases_taken(), 1, "the same chain and changes: a's rebase");
    let held = |store: &Store, group| Arc::clone(store.group(group).delta.shared().unwrap());
    assert!(Arc::ptr_eq(&held(&a, a_group), &held(&b, b_group)));
    // Another change set over the same chain: made anew, and its own (each store's state
    // is checked in `store`).
    let (c, c_group) = store("$x", "$q");
    assert_eq!(pool.rebases_taken(), 1);
    assert!(!Arc::ptr_eq(&held(&a, a_group), &held(&c, c_group)));
    // The same change over another chain (a middle group differs, and a later one sets its
    // key again): not a's rebase, made anew; its state is a's, so the delta it makes is
    // found in the pool by its entries.
    let small_taken = pool.small_taken();
    let (d, d_group) = store("$y", "$p");
    assert_eq!(pool.rebases_taken(), 1);
    // Its one-key groups but the middle one (30), and the rebased delta (three keys).
    assert_eq!(pool.small_taken(), small_taken + 31);
    assert!(Arc::ptr_eq(&held(&a, a_group), &held(&d, d_group)));
}

#[test]
fn a_decoy_under_the_same_hash_is_never_taken_for_a_small_delta() {
    use super::delta::content_hash;
    let pool = Arc::new(SharedSnapshots::new());
    let mut store = Store::new();
    store.share_snapshots(&pool);
    let mut state = StateMap::new();
    state.insert(key("m.room.create", ""), id("$c"));
    let root = store.store_state(&state, None);
    let decoy = || Delta::new(vec![(key("m.room.member", "@z:hs"), Some(id("$decoy")))].into());
    // A state event's group: a decoy planted under the hash its one entry has.
    let hash = content_hash([("m.room.member", "@a:hs", Some(&id("$e")))]);
    let planted = pool.hold_small(hash, decoy());
    let after = store.store_state_with(root, key("m.room.member", "@a:hs"), id("$e"));
    state.insert(key("m.room.member", "@a:hs"), id("$e"));
    assert_eq!(store.state(after), state);
    assert!(!Arc::ptr_eq(store.group(after).delta.shared().unwrap(), &planted));
    // A resolution's changes: a decoy under the hash of the entries that change.
    let changes =
        vec![(key("m.room.member", "@a:hs"), None), (key("m.room.topic", ""), Some(id("$t")))];
    let (topic, member) = (id("$t"), None);
    let hash = content_hash([
        ("m.room.member", "@a:hs", member.as_ref()),
        ("m.room.topic", "", Some(&topic)),
    ]);
    let planted = pool.hold_small(hash, decoy());
    let changed = store.store_changes(after, &changes);
    state.remove(&key("m.room.member", "@a:hs"));
    state.insert(key("m.room.topic", ""), topic);
    assert_eq!(store.state(changed), state);
    assert!(!Arc::ptr_eq(store.group(changed).delta.shared().unwrap(), &planted));
    assert_eq!(pool.small_taken(), 0, "nothing taken: only decoys were there");
}
