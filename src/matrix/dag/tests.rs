//! Tests of the DAG algorithms: the chain-cover index against plain walks on random DAGs,
//! the walk's error reporting, and each ordering on small hand-made graphs.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::matrix::room_version::{V10, V12};

fn id(name: &str) -> EventId {
    EventId::parse(&format!("${name}")).unwrap()
}

/// A random DAG given as, per event in insertion order, its state key (index into a small
/// set, `None` for a message) and its auth events (earlier events).
#[derive(Clone, Debug)]
struct Dag {
    keys: Vec<Option<u8>>,
    auth: Vec<Vec<usize>>,
}

impl Dag {
    fn ids(&self) -> Vec<EventId> {
        (0..self.keys.len()).map(|i| id(&format!("e{i}"))).collect()
    }

    fn lookup(&self) -> impl Fn(&EventId) -> Option<Vec<EventId>> + '_ {
        move |event_id: &EventId| {
            let i: usize = event_id.as_str().strip_prefix("$e")?.parse().ok()?;
            let ids = self.auth.get(i)?;
            Some(ids.iter().map(|&a| id(&format!("e{a}"))).collect())
        }
    }

    fn index(&self) -> AuthChainIndex {
        let mut index = AuthChainIndex::new(&V10);
        let ids = self.ids();
        for (i, key) in self.keys.iter().enumerate() {
            let key_name = key.map(|k| format!("k{k}"));
            let state_key = key_name.as_deref().map(|k| ("m.test", k));
            let auth: Vec<EventId> = self.auth[i].iter().map(|&a| ids[a].clone()).collect();
            let node = index.add(&ids[i], state_key, &auth).unwrap();
            assert_eq!(node.index(), i);
        }
        index
    }
}

/// Random DAGs shaped a little like rooms: most events cite the latest event with their own
/// state key (so chains grow) plus a few random earlier events.
fn arb_dag() -> impl Strategy<Value = Dag> {
    (1usize..48)
        .prop_flat_map(|count| {
            proptest::collection::vec(
                (
                    prop_oneof![17 => (0u8..5).prop_map(Some), 3 => Just(None)],
                    any::<bool>(),
                    proptest::collection::vec(any::<u16>(), 0..4),
                ),
                count,
            )
        })
        .prop_map(|specs| {
            let mut keys = Vec::new();
            let mut auth = Vec::new();
            let mut latest: BTreeMap<u8, usize> = BTreeMap::new();
            for (i, (key, cite_own, picks)) in specs.into_iter().enumerate() {
                let mut edges: Vec<usize> = Vec::new();
                if i > 0 {
                    edges.extend(picks.iter().map(|&p| p as usize % i));
                }
                if let (Some(k), true) = (key, cite_own) {
                    edges.extend(latest.get(&k).copied());
                }
                edges.sort_unstable();
                edges.dedup();
                // Messages are never auth events; drop edges to them.
                edges.retain(|&e| keys.get(e).copied().flatten().is_some());
                if let Some(k) = key {
                    latest.insert(k, i);
                }
                keys.push(key);
                auth.push(edges);
            }
            Dag { keys, auth }
        })
}

fn picks_to_ids(dag: &Dag, picks: &[u16]) -> Vec<EventId> {
    let ids = dag.ids();
    let mut out: Vec<EventId> =
        picks.iter().map(|&p| ids[p as usize % ids.len()].clone()).collect();
    out.sort();
    out.dedup();
    out
}

fn to_ids(index: &AuthChainIndex, nodes: &[NodeId]) -> BTreeSet<EventId> {
    nodes.iter().map(|&n| index.event_id(n).clone()).collect()
}

fn to_nodes(index: &AuthChainIndex, ids: &[EventId]) -> Vec<NodeId> {
    ids.iter().map(|i| index.node(i).unwrap()).collect()
}

const READINGS: [AuthChainReading; 2] = [AuthChainReading::Inclusive, AuthChainReading::Exclusive];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn index_equals_plain_walks(
        dag in arb_dag(),
        set_picks in proptest::collection::vec(proptest::collection::vec(any::<u16>(), 0..8), 0..4),
        conflicted_picks in proptest::collection::vec(any::<u16>(), 1..6),
    ) {
        let index = dag.index();
        let lookup = dag.lookup();
        let ids = dag.ids();
        // Auth chain of every single event, and "is in the auth chain of" for every pair.
        for (i, event_id) in ids.iter().enumerate() {
            let node = NodeId(i as u32);
            for reading in READINGS {
                let expected = auth_chain_bfs(&lookup, std::slice::from_ref(event_id), reading).unwrap();
                prop_assert_eq!(to_ids(&index, &index.auth_chain(&[node], reading)), expected.clone());
                let exclusive = reading == AuthChainReading::Exclusive;
                for (j, other) in ids.iter().enumerate() {
                    if exclusive {
                        prop_assert_eq!(index.in_auth_chain(node, NodeId(j as u32)), expected.contains(other));
                    }
                }
            }
        }
        // Auth chain of a set and auth difference of several sets.
        let sets: Vec<Vec<EventId>> = set_picks.iter().map(|p| picks_to_ids(&dag, p)).collect();
        let node_sets: Vec<Vec<NodeId>> = sets.iter().map(|s| to_nodes(&index, s)).collect();
        for reading in READINGS {
            for (set, nodes) in sets.iter().zip(&node_sets) {
                let expected = auth_chain_bfs(&lookup, set, reading).unwrap();
                let chain_set = index.chain_set(nodes, reading);
                prop_assert_eq!(&index.chain_set_sorted(nodes, reading), &chain_set);
                prop_assert_eq!(&index.chain_set_dense(nodes, reading), &chain_set);
                prop_assert_eq!(to_ids(&index, &index.expand(&chain_set)), expected.clone());
                for (j, other) in ids.iter().enumerate() {
                    prop_assert_eq!(index.chain_set_contains(&chain_set, NodeId(j as u32)), expected.contains(other));
                }
            }
            let expected = auth_difference_bfs(&lookup, &sets, reading).unwrap();
            prop_assert_eq!(to_ids(&index, &index.auth_difference(&node_sets, reading)), expected);
            // The same sets with a common part: the events of the first pick given once
            // as common and added to every set.
            if let Some(common) = sets.first() {
                let with_common: Vec<Vec<EventId>> = sets
                    .iter()
                    .map(|set| set.iter().chain(common).cloned().collect())
                    .collect();
                let expected = auth_difference_bfs(&lookup, &with_common, reading).unwrap();
                let common_nodes = to_nodes(&index, common);
                let difference = index.auth_difference_with_common(&common_nodes, &node_sets, reading);
                prop_assert_eq!(to_ids(&index, &difference), expected);
            }
        }
        // The conflicted state subgraph.
        let conflicted = picks_to_ids(&dag, &conflicted_picks);
        let expected = conflicted_subgraph_bfs(&lookup, &conflicted).unwrap();
        let subgraph = index.conflicted_subgraph(&to_nodes(&index, &conflicted));
        prop_assert_eq!(to_ids(&index, &subgraph), expected);
    }
}

/// The random DAG as v10 PDUs (`m.test` state events with state key `k{n}`, messages for
/// `None`), so the store-walking builder can index it.
fn dag_store(dag: &Dag) -> BTreeMap<EventId, Pdu> {
    let ids = dag.ids();
    let mut events = BTreeMap::new();
    for (i, key) in dag.keys.iter().enumerate() {
        let auth: Vec<&str> = dag.auth[i].iter().map(|&a| &ids[a].as_str()[1..]).collect();
        let key_name = key.map(|k| format!("k{k}"));
        let (event_type, state_key) = match &key_name {
            Some(k) => ("m.test", Some(k.as_str())),
            None => ("m.room.message", None),
        };
        let event = pdu(&ids[i].as_str()[1..], event_type, state_key, &auth, i as i64);
        events.insert(ids[i].clone(), event);
    }
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The builder that walks a store (nodes created on first visit, in any root order)
    /// gives the same auth chains as the plain walk.
    #[test]
    fn built_index_equals_plain_walks(dag in arb_dag(), roots in proptest::collection::vec(any::<u16>(), 1..6)) {
        let events = dag_store(&dag);
        let roots = picks_to_ids(&dag, &roots);
        let (index, by_node) = AuthChainIndex::build_with_events(&events, &V10, &roots).unwrap();
        let lookup = dag.lookup();
        let reachable = auth_chain_bfs(&lookup, &roots, AuthChainReading::Inclusive).unwrap();
        prop_assert_eq!(index.len(), reachable.len());
        for (n, pdu) in by_node.iter().enumerate() {
            let node = NodeId(n as u32);
            prop_assert_eq!(index.event_id(node), pdu.event_id());
            for reading in READINGS {
                let expected = auth_chain_bfs(&lookup, std::slice::from_ref(pdu.event_id()), reading).unwrap();
                prop_assert_eq!(to_ids(&index, &index.auth_chain(&[node], reading)), expected);
            }
        }
        let sets = vec![roots.clone(), roots[..1].to_vec()];
        let node_sets: Vec<Vec<NodeId>> = sets.iter().map(|s| to_nodes(&index, s)).collect();
        let expected = auth_difference_bfs(&lookup, &sets, AuthChainReading::Inclusive).unwrap();
        let difference = index.auth_difference(&node_sets, AuthChainReading::Inclusive);
        prop_assert_eq!(to_ids(&index, &difference), expected);
    }
}

#[test]
fn extend_adds_nothing_on_error() {
    let mut events = store(vec![
        pdu("create", "m.room.create", Some(""), &[], 0),
        pdu("pl", "m.room.power_levels", Some(""), &["create"], 1),
        pdu("a", "m.room.topic", Some(""), &["create", "pl"], 2),
        pdu("b", "m.room.name", Some(""), &["pl", "gone"], 3),
    ]);
    let mut index = AuthChainIndex::build(&events, &V10, &[id("pl")]).unwrap();
    assert_eq!(index.len(), 2);
    let chains = index.chains.len();
    // `a` could be indexed, but `b` misses an event: the whole call is undone.
    let error = index.extend(&events, &V10, &[id("a"), id("b")]).unwrap_err();
    assert_eq!(error, DagError::MissingEvents(vec![id("gone")]));
    assert_eq!((index.len(), index.chains.len()), (2, chains));
    assert!(!index.contains(&id("a")) && !index.contains(&id("b")));
    // A cycle is undone as well.
    events.insert(id("c"), pdu("c", "m.room.name", Some(""), &["pl", "d"], 4));
    events.insert(id("d"), pdu("d", "m.room.name", Some("x"), &["c"], 5));
    let error = index.extend(&events, &V10, &[id("a"), id("c")]).unwrap_err();
    assert_eq!(error, DagError::Cycle(vec![id("c"), id("d")]));
    assert_eq!((index.len(), index.chains.len()), (2, chains));
    // Then it extends normally, continuing the existing chains.
    index.extend(&events, &V10, &[id("a")]).unwrap();
    assert_eq!(index.len(), 3);
    let a = index.node(&id("a")).unwrap();
    assert_eq!(
        index.auth_nodes(a),
        [index.node(&id("create")).unwrap(), index.node(&id("pl")).unwrap()]
    );
}

#[test]
fn chains_follow_state_keys() {
    // create ← pl1 ← pl2, and a join citing pl1: pl2 continues pl1's chain; the join starts
    // its own; a second event citing pl1 with pl1 no longer the head starts a chain too.
    let mut index = AuthChainIndex::new(&V10);
    let create = index.add(&id("create"), Some(("m.room.create", "")), &[]).unwrap();
    let pl1 = index.add(&id("pl1"), Some(("m.room.power_levels", "")), &[id("create")]).unwrap();
    let pl2 = index.add(&id("pl2"), Some(("m.room.power_levels", "")), &[id("create"), id("pl1")]);
    let pl2 = pl2.unwrap();
    let fork = index.add(&id("pl2b"), Some(("m.room.power_levels", "")), &[id("pl1")]).unwrap();
    assert_eq!(index.chains.len(), 3);
    assert_eq!(index.chains[index.nodes[pl1.index()].chain as usize], vec![pl1, pl2]);
    assert_eq!(index.nodes[fork.index()].seq, 1);
    assert!(index.in_auth_chain(pl2, create) && index.in_auth_chain(fork, pl1));
    assert!(!index.in_auth_chain(fork, pl2) && !index.in_auth_chain(pl1, pl1));
    // Adding again is a no-op; an unknown auth event is an error and adds nothing.
    assert_eq!(index.add(&id("pl1"), None, &[]).unwrap(), pl1);
    let error = index.add(&id("x"), None, &[id("nope")]).unwrap_err();
    assert_eq!(
        error,
        IndexError::UnknownAuthEvent { event_id: id("x"), auth_event_id: id("nope") }
    );
    let error = index.add(&id("self"), None, &[id("self")]).unwrap_err();
    assert!(matches!(error, IndexError::UnknownAuthEvent { .. }));
    assert_eq!(index.len(), 4);
}

/// A v10 PDU with a readable id (room `!room:hs`).
fn pdu(name: &str, event_type: &str, state_key: Option<&str>, auth: &[&str], ts: i64) -> Pdu {
    let mut json = json!({
        "event_id": format!("${name}"),
        "type": event_type,
        "sender": "@alice:hs",
        "room_id": "!room:hs",
        "origin_server_ts": ts,
        "depth": 1,
        "content": {},
        "auth_events": auth.iter().map(|a| format!("${a}")).collect::<Vec<_>>(),
        "prev_events": [],
    });
    if let Some(key) = state_key {
        json["state_key"] = json!(key);
    }
    let serde_json::Value::Object(object) = json else { unreachable!() };
    Pdu::with_given_id(&V10, object).unwrap()
}

fn store(pdus: Vec<Pdu>) -> BTreeMap<EventId, Pdu> {
    pdus.into_iter().map(|p| (p.event_id().clone(), p)).collect()
}

#[test]
fn walk_reports_missing_events_and_cycles() {
    let events = store(vec![
        pdu("create", "m.room.create", Some(""), &[], 0),
        pdu("a", "m.room.power_levels", Some(""), &["create", "gone2", "gone1"], 1),
        pdu("b", "m.room.topic", Some(""), &["a", "gone1"], 2),
    ]);
    let error = walk_auth_dag(&events, &V10, &[id("b")], |_| false).err().unwrap();
    assert_eq!(error, DagError::MissingEvents(vec![id("gone1"), id("gone2")]));
    assert_eq!(error.to_string(), "missing events: $gone1, $gone2");
    let error = walk_auth_dag(&events, &V10, &[id("nothing")], |_| false).err().unwrap();
    assert_eq!(error, DagError::MissingEvents(vec![id("nothing")]));

    let events = store(vec![
        pdu("create", "m.room.create", Some(""), &[], 0),
        pdu("x", "m.room.power_levels", Some(""), &["create", "z"], 1),
        pdu("y", "m.room.join_rules", Some(""), &["x"], 2),
        pdu("z", "m.room.member", Some("@alice:hs"), &["y"], 3),
        pdu("top", "m.room.topic", Some(""), &["z"], 4),
    ]);
    let error = walk_auth_dag(&events, &V10, &[id("top")], |_| false).err().unwrap();
    assert_eq!(error, DagError::Cycle(vec![id("z"), id("y"), id("x")]));
    let error = AuthChainIndex::build(&events, &V10, &[id("top")]).err().unwrap();
    assert!(matches!(error, DagError::Cycle(_)));
}

#[test]
fn walk_orders_auth_events_first_and_skips() {
    let events = store(vec![
        pdu("create", "m.room.create", Some(""), &[], 0),
        pdu("pl", "m.room.power_levels", Some(""), &["create"], 1),
        pdu("jr", "m.room.join_rules", Some(""), &["create", "pl"], 2),
        pdu("m", "m.room.message", None, &["create", "pl"], 3),
    ]);
    let order = walk_auth_dag(&events, &V10, &[id("m"), id("jr")], |_| false).unwrap();
    let names: Vec<&str> = order.iter().map(|e| e.pdu.event_id().as_str()).collect();
    assert_eq!(names, ["$create", "$pl", "$m", "$jr"]);
    let order = walk_auth_dag(&events, &V10, &[id("jr")], |i| i == &id("pl")).unwrap();
    let names: Vec<&str> = order.iter().map(|e| e.pdu.event_id().as_str()).collect();
    assert_eq!(names, ["$create", "$jr"]);
}

#[test]
fn v12_events_have_the_create_event_as_implicit_auth_event() {
    let create = {
        let json = json!({
            "event_id": "$create", "type": "m.room.create", "state_key": "", "sender": "@a:hs",
            "origin_server_ts": 0, "depth": 1, "content": {}, "auth_events": [], "prev_events": [],
        });
        let serde_json::Value::Object(object) = json else { unreachable!() };
        Pdu::with_given_id(&V12, object).unwrap()
    };
    let join = {
        let json = json!({
            "event_id": "$join", "type": "m.room.member", "state_key": "@a:hs", "sender": "@a:hs",
            "room_id": "!create", "origin_server_ts": 1, "depth": 2,
            "content": {"membership": "join"}, "auth_events": [], "prev_events": ["$create"],
        });
        let serde_json::Value::Object(object) = json else { unreachable!() };
        Pdu::with_given_id(&V12, object).unwrap()
    };
    assert_eq!(auth_event_ids(&V12, &join), vec![id("create")]);
    assert_eq!(auth_event_ids(&V12, &create), Vec::<EventId>::new());
    assert_eq!(implicit_create_event(&V10, &join), None);
    let events = store(vec![create, join]);
    let index = AuthChainIndex::build(&events, &V12, &[id("join")]).unwrap();
    let join = index.node(&id("join")).unwrap();
    let chain = index.auth_chain(&[join], AuthChainReading::Exclusive);
    assert_eq!(to_ids(&index, &chain), BTreeSet::from([id("create")]));
    assert!(index.matches_rules(&V12) && !index.matches_rules(&V10));
}

#[test]
fn indexed_store_indexes_what_it_can_in_any_order() {
    let pdus = vec![
        pdu("top", "m.room.topic", Some(""), &["create", "pl"], 3),
        pdu("pl", "m.room.power_levels", Some(""), &["create"], 1),
        pdu("orphan", "m.room.name", Some(""), &["create", "missing"], 4),
        pdu("after-orphan", "m.room.name", Some(""), &["orphan"], 5),
        pdu("create", "m.room.create", Some(""), &[], 0),
    ];
    let store = IndexedStore::from_events(&V10, pdus.into_iter().map(|p| (Arc::new(p), None)));
    assert_eq!(store.len(), 5);
    assert_eq!(store.index().len(), 3);
    assert!(store.index().contains(&id("top")) && !store.index().contains(&id("after-orphan")));
    assert!(EventStore::get(&store, &id("orphan")).is_some());
    let mut incremental = IndexedStore::new(&V10);
    let error = incremental
        .insert(Arc::new(pdu("pl", "m.room.power_levels", Some(""), &["create"], 1)), None);
    assert!(error.is_err() && incremental.is_empty());
    let create = Arc::new(pdu("create", "m.room.create", Some(""), &[], 0));
    incremental.insert(create, Some(RejectionKind::StateBefore)).unwrap();
    assert_eq!(incremental.rejection(&id("create")), Some(RejectionKind::StateBefore));
}

#[test]
fn lookup_fn_is_a_store() {
    let events = store(vec![pdu("create", "m.room.create", Some(""), &[], 0)]);
    let lookup = LookupFn::new(|event_id: &EventId| events.get(event_id));
    assert!(lookup.get(&id("create")).is_some() && lookup.get(&id("x")).is_none());
    assert_eq!(lookup.rejection(&id("create")), None);
}

#[test]
fn reverse_topological_power_order_takes_smallest_ready_key() {
    // Keys (lower = earlier when ready). Edges: 2 → 0 (2 cites 0), 3 → 2, 1 free.
    // Ready at start: 0 (key 5), 1 (key 3) → 1 first, then 0, then 2, then 3, although
    // 3's key is the smallest of all.
    let keys = [5, 3, 4, 0];
    let edges = vec![vec![], vec![], vec![0], vec![2, 2]];
    assert_eq!(reverse_topological_power_order(&keys, &edges).unwrap(), vec![1, 0, 2, 3]);
    // Power level dominates timestamp dominates id, as in state resolution's key.
    type Key = (Reverse<i64>, i64, &'static str);
    let keys: [Key; 3] =
        [(Reverse(50), 10, "$b"), (Reverse(100), 20, "$c"), (Reverse(50), 10, "$a")];
    let order = reverse_topological_power_order(&keys, &[vec![], vec![], vec![]]).unwrap();
    assert_eq!(order, vec![1, 2, 0]);
    // A cycle leaves its events unordered.
    let error = reverse_topological_power_order(&[0, 1, 2], &[vec![], vec![2], vec![1]]);
    assert_eq!(error, Err(vec![1, 2]));
}

#[test]
fn mainline_and_mainline_order() {
    // create ← pl1 ← pl2 ← pl3 (each PL cites the previous); topics hang off pl1, pl2, pl3
    // and an old-branch pl2x (cites pl1, not on the mainline of pl3), and one with no PL.
    let events = store(vec![
        pdu("create", "m.room.create", Some(""), &[], 0),
        pdu("pl1", "m.room.power_levels", Some(""), &["create"], 1),
        pdu("pl2", "m.room.power_levels", Some(""), &["create", "pl1"], 2),
        pdu("pl3", "m.room.power_levels", Some(""), &["create", "pl2"], 3),
        pdu("pl2x", "m.room.power_levels", Some(""), &["create", "pl1"], 4),
        pdu("t3", "m.room.topic", Some(""), &["create", "pl3"], 10),
        pdu("t2", "m.room.topic", Some(""), &["create", "pl2"], 11),
        pdu("t1", "m.room.topic", Some(""), &["pl1", "create"], 12),
        pdu("t2x", "m.room.topic", Some(""), &["create", "pl2x"], 9),
        pdu("t0", "m.room.topic", Some(""), &["create"], 50),
        pdu("t1b", "m.room.topic", Some(""), &["create", "pl1"], 12),
    ]);
    let get = |name: &str| events.get(&id(name)).unwrap();
    let line = mainline(&events, get("pl3")).unwrap();
    let names: Vec<&str> = line.iter().map(|p| p.event_id().as_str()).collect();
    assert_eq!(names, ["$pl3", "$pl2", "$pl1"]);
    // Numbers: pl1 = 1, pl2 = 2, pl3 = 3; t2x reaches pl1 through pl2x; t0 reaches nothing.
    let topics: Vec<&Pdu> = ["t3", "t2", "t1", "t2x", "t0", "t1b"].map(get).to_vec();
    assert_eq!(mainline_numbers(&events, &line, &topics).unwrap(), vec![3, 2, 1, 1, 0, 1]);
    // Sorted: t0 (0), then number 1 by ts: t2x (9), t1 (12, "$t1" < "$t1b"), t1b; t2; t3.
    let order = mainline_order(&events, &line, &topics).unwrap();
    let names: Vec<&str> = order.iter().map(|&i| topics[i].event_id().as_str()).collect();
    assert_eq!(names, ["$t0", "$t2x", "$t1", "$t1b", "$t2", "$t3"]);
}

/// A room's shape at scale: 200 members on their own membership chains, frequent power
/// levels changes by many senders, so that a power levels event reaches most chains and
/// every member event extends it. The index stores reach as differences along a Fenwick
/// numbering (`AuthChainIndex::reach_of_new`); every auth chain, chain set and conflicted
/// subgraph is checked against ancestor sets computed here as bitsets.
#[test]
fn reach_stored_as_differences_answers_as_plain_ancestor_sets() {
    const CREATE: u8 = 0;
    const POWER: u8 = 1;
    const JOIN_RULES: u8 = 2;
    const USERS: usize = 200;
    let mut lcg: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |bound: usize| {
        lcg = lcg.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (lcg >> 33) as usize % bound
    };
    let mut keys: Vec<Option<u8>> = vec![Some(CREATE), Some(3), Some(POWER), Some(JOIN_RULES)];
    let mut auth: Vec<Vec<usize>> = vec![vec![], vec![0], vec![0, 1], vec![0, 2, 1]];
    let (mut power, mut join_rules) = (2, 3);
    let mut membership: Vec<Option<usize>> = vec![None; USERS];
    membership[0] = Some(1);
    let mut joined = vec![0usize];
    for _ in 0..1_500 {
        let at = keys.len();
        let sender = joined[next(joined.len())];
        let sender_membership = membership[sender].expect("joined");
        match next(10) {
            0..=2 => {
                keys.push(Some(POWER));
                auth.push(vec![0, power, sender_membership]);
                power = at;
            }
            3 => {
                keys.push(Some(JOIN_RULES));
                auth.push(vec![0, power, sender_membership, join_rules]);
                join_rules = at;
            }
            4..=7 => {
                let user = next(USERS);
                keys.push(Some(3 + user as u8));
                let mut edges = vec![0, power, join_rules];
                edges.extend(membership[user]);
                auth.push(edges);
                if membership[user].is_none() {
                    joined.push(user);
                }
                membership[user] = Some(at);
            }
            _ => {
                keys.push(None);
                auth.push(vec![0, power, sender_membership]);
            }
        }
    }
    let dag = Dag { keys, auth };
    let index = dag.index();
    let count = dag.keys.len();
    // Ancestors (exclusive) of each event as a bitset, in insertion order.
    let words = count.div_ceil(64);
    let mut ancestors: Vec<Vec<u64>> = Vec::with_capacity(count);
    for edges in &dag.auth {
        let mut set = vec![0u64; words];
        for &a in edges {
            set[a / 64] |= 1 << (a % 64);
            for (word, from) in set.iter_mut().zip(&ancestors[a]) {
                *word |= from;
            }
        }
        ancestors.push(set);
    }
    let has = |set: &[u64], i: usize| set[i / 64] >> (i % 64) & 1 == 1;
    let members = |set: &[u64]| -> Vec<NodeId> {
        (0..count).filter(|&i| has(set, i)).map(|i| NodeId(i as u32)).collect()
    };
    let with_self = |i: usize| {
        let mut set = ancestors[i].clone();
        set[i / 64] |= 1 << (i % 64);
        set
    };
    for (i, exclusive) in ancestors.iter().enumerate() {
        let node = NodeId(i as u32);
        assert_eq!(index.auth_chain(&[node], AuthChainReading::Exclusive), members(exclusive));
        assert_eq!(index.auth_chain(&[node], AuthChainReading::Inclusive), members(&with_self(i)));
        let j = next(count);
        assert_eq!(index.in_auth_chain(node, NodeId(j as u32)), has(exclusive, j));
    }
    for _ in 0..40 {
        let picks: Vec<usize> = (0..1 + next(30)).map(|_| next(count)).collect();
        let mut nodes: Vec<NodeId> = picks.iter().map(|&i| NodeId(i as u32)).collect();
        nodes.sort_unstable();
        nodes.dedup();
        for reading in READINGS {
            let mut union = vec![0u64; words];
            for &i in &picks {
                let set = if reading == AuthChainReading::Inclusive {
                    with_self(i)
                } else {
                    ancestors[i].clone()
                };
                union.iter_mut().zip(&set).for_each(|(word, from)| *word |= from);
            }
            let dense = index.chain_set_dense(&nodes, reading);
            assert_eq!(index.chain_set_sorted(&nodes, reading), dense);
            assert_eq!(index.expand(&dense), members(&union));
        }
        // Conflicted subgraph: events in the conflicted events' inclusive auth chains
        // that have some conflicted event in their own inclusive auth chain.
        let expected: Vec<NodeId> = (0..count)
            .filter(|&v| picks.iter().any(|&c| has(&with_self(c), v)))
            .filter(|&v| picks.iter().any(|&c| has(&with_self(v), c)))
            .map(|v| NodeId(v as u32))
            .collect();
        assert_eq!(index.conflicted_subgraph(&nodes), expected);
    }
    // What the differences save, and what they cost a query: at most popcount(level) + 1
    // lists per node, and a small fraction of the entries the whole lists held.
    let stored: usize = index.nodes.iter().map(|node| node.reach.len()).sum();
    let whole: usize = index.nodes.iter().map(|node| node.reach_len as usize).sum();
    assert!(stored * 5 < whole, "stored {stored} of {whole} entries");
    for (i, node) in index.nodes.iter().enumerate() {
        let lists = index.reach_lists(NodeId(i as u32)).count();
        assert_eq!(lists as u32, node.level.count_ones() + 1);
    }
    assert!(index.nodes.iter().any(|node| node.level >= 64), "differences chain far");
    assert!(
        index.nodes.iter().skip(1).any(|node| node.base == index::NO_BASE && node.reach_len > 50)
    );
}
