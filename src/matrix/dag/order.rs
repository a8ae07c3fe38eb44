//! The two orderings state resolution sorts by (spec §2): the reverse topological power
//! ordering, and the mainline ordering with the mainline it is based on.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use crate::matrix::dag::{DagError, EventStore, POWER_LEVELS};
use crate::matrix::ids::EventId;
use crate::matrix::pdu::Pdu;

/// Reverse topological power ordering (spec §2) of `keys.len()` events: Kahn's algorithm
/// over the auth edges within the set (`auth_edges[i]` = positions of i's auth events that
/// are in the set), always taking the ready event with the smallest key (a min-heap).
/// Returns positions earliest first, or on a cycle the positions that could not be
/// ordered. O(n log n + edges).
///
/// State resolution's key is `(Reverse(sender power level), origin_server_ts, event_id)`;
/// keys must be distinct for the order to be unique (the event id makes them so).
pub fn reverse_topological_power_order<K: Ord>(
    keys: &[K],
    auth_edges: &[Vec<usize>],
) -> Result<Vec<usize>, Vec<usize>> {
    assert_eq!(keys.len(), auth_edges.len());
    let count = keys.len();
    // pending[i] = auth events of i in the set not yet output; dependents = reverse edges.
    let mut pending = vec![0usize; count];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (event, edges) in auth_edges.iter().enumerate() {
        let mut distinct = edges.clone();
        distinct.sort_unstable();
        distinct.dedup();
        for auth in distinct {
            assert!(auth < count, "auth edge out of range");
            pending[event] += 1;
            dependents[auth].push(event);
        }
    }
    let mut ready: BinaryHeap<Reverse<(&K, usize)>> =
        (0..count).filter(|&i| pending[i] == 0).map(|i| Reverse((&keys[i], i))).collect();
    let mut order = Vec::with_capacity(count);
    while let Some(Reverse((_, event))) = ready.pop() {
        order.push(event);
        for &dependent in &dependents[event] {
            pending[dependent] -= 1;
            if pending[dependent] == 0 {
                ready.push(Reverse((&keys[dependent], dependent)));
            }
        }
    }
    if order.len() < count {
        return Err((0..count).filter(|&i| pending[i] > 0).collect());
    }
    assert_eq!(order.len(), count);
    Ok(order)
}

/// The `m.room.power_levels` event (state key "") among `pdu`'s `auth_events` that the
/// store has, the first listed if several.
pub fn power_levels_auth_event<'s, S: EventStore + ?Sized>(
    store: &'s S,
    pdu: &Pdu,
) -> Option<&'s Pdu> {
    pdu.auth_events()
        .iter()
        .filter_map(|id| store.get(id))
        .find(|auth| auth.event_type() == POWER_LEVELS && auth.state_key() == Some(""))
}

/// The mainline of a power-levels event P (spec §2): [P₀ = P, P₁, …, Pₙ], each the
/// power-levels event in the previous one's `auth_events`, newest first.
pub fn mainline<'s, S: EventStore + ?Sized>(
    store: &'s S,
    power_levels: &'s Pdu,
) -> Result<Vec<&'s Pdu>, DagError> {
    let mut line = vec![power_levels];
    let mut seen = BTreeSet::from([power_levels.event_id()]);
    while let Some(next) = power_levels_auth_event(store, line[line.len() - 1]) {
        if !seen.insert(next.event_id()) {
            let cycle = line.iter().map(|pdu| pdu.event_id().clone()).collect();
            return Err(DagError::Cycle(cycle));
        }
        line.push(next);
    }
    assert_eq!(line.len(), seen.len());
    Ok(line)
}

/// The mainline numbers of `events` ([impl] form of "mainline position", spec §2): with
/// the mainline [P₀, …, Pₙ], Pᵢ has number n + 1 − i (oldest = 1), and an event gets the
/// number of the first mainline event on the chain of power-levels events from its
/// `auth_events` (itself excluded), or 0 if that chain never meets the mainline. Sorting
/// ascending by number puts events hanging off older power levels first, exactly as
/// "greater mainline position first". Each power-levels event is walked once (memoised).
pub fn mainline_numbers<S: EventStore + ?Sized>(
    store: &S,
    mainline: &[&Pdu],
    events: &[&Pdu],
) -> Result<Vec<u64>, DagError> {
    let power_levels: Vec<Option<&Pdu>> =
        events.iter().map(|event| power_levels_auth_event(store, event)).collect();
    mainline_numbers_from(store, mainline, &power_levels)
}

/// [`mainline_numbers`] given, for each event, the power-levels event among its auth
/// events (callers that hold the auth events already save the lookups).
pub fn mainline_numbers_from<S: EventStore + ?Sized>(
    store: &S,
    mainline: &[&Pdu],
    power_levels: &[Option<&Pdu>],
) -> Result<Vec<u64>, DagError> {
    let mut memo: BTreeMap<EventId, u64> = BTreeMap::new();
    for (position, pdu) in mainline.iter().enumerate() {
        memo.insert(pdu.event_id().clone(), (mainline.len() - position) as u64);
    }
    assert_eq!(memo.len(), mainline.len(), "a mainline has no repeated event");
    let mut numbers = Vec::with_capacity(power_levels.len());
    for &first in power_levels {
        let mut path: Vec<&Pdu> = Vec::new();
        let mut on_path: BTreeSet<&EventId> = BTreeSet::new();
        let mut current = first;
        let number = loop {
            let Some(pdu) = current else { break 0 };
            if let Some(&number) = memo.get(pdu.event_id()) {
                break number;
            }
            if !on_path.insert(pdu.event_id()) {
                return Err(DagError::Cycle(path.iter().map(|p| p.event_id().clone()).collect()));
            }
            path.push(pdu);
            current = power_levels_auth_event(store, pdu);
        };
        for pdu in path {
            memo.insert(pdu.event_id().clone(), number);
        }
        numbers.push(number);
    }
    Ok(numbers)
}

/// Mainline ordering (spec §2) of `events` based on `mainline`: positions into `events`,
/// sorted by (mainline number, `origin_server_ts`, `event_id`). O(n log n) plus one walk of
/// each power-levels event.
pub fn mainline_order<S: EventStore + ?Sized>(
    store: &S,
    mainline: &[&Pdu],
    events: &[&Pdu],
) -> Result<Vec<usize>, DagError> {
    let numbers = mainline_numbers(store, mainline, events)?;
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| (numbers[i], events[i].origin_server_ts(), events[i].event_id());
        key(a).cmp(&key(b))
    });
    Ok(order)
}
