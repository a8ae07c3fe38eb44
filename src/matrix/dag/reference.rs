//! Reference walks: auth chains, auth differences and the conflicted state subgraph by
//! plain breadth-first search, which the [`AuthChainIndex`] is tested against.

use std::collections::{BTreeSet, VecDeque};

#[cfg(doc)]
use crate::matrix::dag::AuthChainIndex;
use crate::matrix::dag::{AuthChainReading, DagError};
use crate::matrix::ids::EventId;

/// Reference walk: the union of the auth chains of `starts` (plus `starts` under the
/// inclusive reading), by breadth-first search over `auth_events_of`. Fails naming every
/// missing event. Used to test [`AuthChainIndex`]; costs the whole auth chain per call.
pub fn auth_chain_bfs(
    auth_events_of: &dyn Fn(&EventId) -> Option<Vec<EventId>>,
    starts: &[EventId],
    reading: AuthChainReading,
) -> Result<BTreeSet<EventId>, DagError> {
    let mut seen: BTreeSet<EventId> = BTreeSet::new();
    let mut missing: BTreeSet<EventId> = BTreeSet::new();
    let mut queue: VecDeque<EventId> = VecDeque::new();
    for start in starts {
        match auth_events_of(start) {
            None => {
                missing.insert(start.clone());
            }
            Some(auth_ids) => queue.extend(auth_ids),
        }
    }
    while let Some(id) = queue.pop_front() {
        if seen.contains(&id) || missing.contains(&id) {
            continue;
        }
        match auth_events_of(&id) {
            None => {
                missing.insert(id);
            }
            Some(auth_ids) => {
                seen.insert(id);
                queue.extend(auth_ids);
            }
        }
    }
    if !missing.is_empty() {
        return Err(DagError::MissingEvents(missing.into_iter().collect()));
    }
    if reading == AuthChainReading::Inclusive {
        seen.extend(starts.iter().cloned());
    }
    Ok(seen)
}

/// Reference: the auth difference of `sets` (spec §2) from one walk per set.
pub fn auth_difference_bfs(
    auth_events_of: &dyn Fn(&EventId) -> Option<Vec<EventId>>,
    sets: &[Vec<EventId>],
    reading: AuthChainReading,
) -> Result<BTreeSet<EventId>, DagError> {
    let mut chains = Vec::with_capacity(sets.len());
    for set in sets {
        chains.push(auth_chain_bfs(auth_events_of, set, reading)?);
    }
    let union: BTreeSet<EventId> = chains.iter().flatten().cloned().collect();
    Ok(union.into_iter().filter(|id| !chains.iter().all(|chain| chain.contains(id))).collect())
}

/// Reference: the conflicted state subgraph (spec §2) as B ∩ F by plain walks.
pub fn conflicted_subgraph_bfs(
    auth_events_of: &dyn Fn(&EventId) -> Option<Vec<EventId>>,
    conflicted: &[EventId],
) -> Result<BTreeSet<EventId>, DagError> {
    let conflicted_set: BTreeSet<&EventId> = conflicted.iter().collect();
    let backward = auth_chain_bfs(auth_events_of, conflicted, AuthChainReading::Inclusive)?;
    let mut subgraph = BTreeSet::new();
    for id in &backward {
        let reach =
            auth_chain_bfs(auth_events_of, std::slice::from_ref(id), AuthChainReading::Inclusive)?;
        if reach.iter().any(|reached| conflicted_set.contains(reached)) {
            subgraph.insert(id.clone());
        }
    }
    Ok(subgraph)
}
