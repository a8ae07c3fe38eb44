//! State sets given as one base state and overlays ([`Overlaid`]): the form a store that
//! keeps states as deltas has at hand. [`resolve_overlaid`] runs [`resolve`]'s algorithm on
//! them, as [`admitted_overlaid`] (steps 0 to 4) and [`overlaid_changes`] (step 5), so
//! that a resolution costs nothing per key the sets share and a caller may keep the
//! admitted events of a resolution apart from the changes made of them.

use std::borrow::Borrow;

use super::*;

impl<'a> Separated<'a> {
    /// Step 0 for state sets given as a base and overlays ([`Overlaid`]): outside the
    /// overlay's keys every set holds the base's entry, so those entries are unconflicted
    /// without being compared; under each overlay key the sets' entries are compared as in
    /// [`Separated::of`].
    fn of_overlaid(overlaid: &Overlaid<'a>) -> Separated<'a> {
        let Overlaid { base, keys, sets } = overlaid;
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "overlay keys are sorted and distinct");
        assert!(sets.iter().all(|set| set.len() == keys.len()), "one entry per overlay key");
        let mut separated = Separated {
            unconflicted: Vec::with_capacity(base.len()),
            conflicted: Vec::new(),
            conflicted_per_set: vec![Vec::new(); sets.len()],
        };
        let mut agreed: Vec<(&'a StateKey, &'a EventId)> = Vec::new();
        for (at, &key) in keys.iter().enumerate() {
            let first = sets.first().and_then(|set| set[at]);
            if let Some(id) = first.filter(|id| sets.iter().all(|set| set[at] == Some(*id))) {
                agreed.push((key, id));
                continue;
            }
            let mut ids: Vec<&EventId> = sets.iter().filter_map(|set| set[at]).collect();
            if ids.is_empty() {
                continue;
            }
            ids.sort_unstable();
            ids.dedup();
            separated.conflicted.push((key, ids));
            for (set, entries) in sets.iter().enumerate() {
                if let Some(id) = entries[at] {
                    separated.conflicted_per_set[set].push((key, id));
                }
            }
        }
        // The base's entries outside the overlay's keys, merged in key order with the
        // agreed overlay entries.
        let mut agreed = agreed.into_iter().peekable();
        let mut overlay_keys = keys.iter().peekable();
        for &(key, id) in base {
            while let Some(entry) = agreed.next_if(|&(k, _)| k < key) {
                separated.unconflicted.push(entry);
            }
            while overlay_keys.next_if(|&&k| k < key).is_some() {}
            if overlay_keys.peek() == Some(&&key) {
                continue;
            }
            separated.unconflicted.push((key, id));
        }
        separated.unconflicted.extend(agreed);
        debug_assert!(separated.unconflicted.windows(2).all(|w| w[0].0 < w[1].0));
        separated
    }
}

/// State sets as one base state and, per set, its entries under the keys where it may
/// differ from the base: the form a store that keeps states as deltas has at hand, so that
/// a resolution costs nothing per key the sets share ([`resolve_overlaid`]).
#[derive(Clone, Debug)]
pub struct Overlaid<'a> {
    /// The base state's entries, sorted by key.
    pub base: Vec<(&'a StateKey, &'a EventId)>,
    /// Sorted and distinct: every key under which some set may differ from the base (a
    /// superset is fine).
    pub keys: Vec<&'a StateKey>,
    /// Per state set, its entry under each of `keys` (in the same order); `None` when the
    /// set has no entry under the key. Outside `keys` each set holds the base's entries.
    pub sets: Vec<Vec<Option<&'a EventId>>>,
}

/// The result of [`resolve_overlaid`]: the resolved state is the base overwritten by
/// `changes` (`None` removes the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedChanges {
    /// Sorted by key: every overlay key, and each key the resolution admitted an event
    /// under that the base lacks.
    pub changes: Vec<(StateKey, Option<EventId>)>,
}

/// [`resolve`] for state sets given as a base and overlays: the same algorithm and the
/// same answer (tests compare the two on every input they resolve), with the shared
/// entries read once instead of once per set and the result given as changes to the base.
/// `options.explain` is not honoured here (no [`Explanation`] is made); use [`resolve`]
/// for one.
///
/// It is [`admitted_overlaid`] (steps 0 to 4) followed by [`overlaid_changes`] (step 5).
pub fn resolve_overlaid<S: EventStore + ?Sized>(
    rules: &RoomVersionRules,
    overlaid: &Overlaid<'_>,
    events: &S,
    options: ResolveOptions,
) -> Result<ResolvedChanges, ResolveError> {
    let admitted = admitted_overlaid(rules, overlaid, events, options)?;
    Ok(overlaid_changes(overlaid, &admitted))
}

/// The events the iterative auth checks admitted, one per key and sorted by key, when
/// resolving `overlaid` (steps 0 to 4 of [`resolve`]). Together with the unconflicted
/// state they make the resolved state ([`overlaid_changes`]). They depend only on the
/// states resolved (not on how they are split into a base and overlays) and on the
/// events read, so a caller that knows two inputs hold the same states may reuse them.
pub fn admitted_overlaid<'s, S: EventStore + ?Sized>(
    rules: &RoomVersionRules,
    overlaid: &Overlaid<'_>,
    events: &'s S,
    options: ResolveOptions,
) -> Result<Vec<&'s Pdu>, ResolveError> {
    let options = ResolveOptions { explain: false, ..options };
    if overlaid.sets.is_empty() {
        return Ok(Vec::new());
    }
    let separated = Separated::of_overlaid(overlaid);
    let mut explanation = Explanation::empty(rules.state_res, options.auth_chain, options.rejected);
    let admitted = resolve_separated(rules, &separated, events, options, &mut explanation)?;
    Ok(admitted.into_iter().map(|(_, pdu)| pdu).collect())
}

/// Step 5 of [`resolve`] as changes to `overlaid`'s base, from the events
/// [`admitted_overlaid`] gave for the same states: under an overlay key, the entry every
/// set agrees on, else the admitted one (or none); outside them the base's entry stands
/// (unconflicted), or the admitted one where the base has none.
///
/// Panics if an admitted event is not a state event (none of [`admitted_overlaid`]'s is).
pub fn overlaid_changes<P: Borrow<Pdu>>(
    overlaid: &Overlaid<'_>,
    admitted: &[P],
) -> ResolvedChanges {
    // Only state events are admitted: each has a key.
    fn key_of<P: Borrow<Pdu>>(pdu: &P) -> (&str, &str) {
        let pdu = pdu.borrow();
        (pdu.event_type(), pdu.state_key().expect("only state events are admitted"))
    }
    debug_assert!(admitted.windows(2).all(|w| key_of(&w[0]) < key_of(&w[1])), "sorted by key");
    if overlaid.sets.is_empty() {
        // No state sets resolve to the empty state, whatever the base.
        let changes = overlaid.base.iter().map(|&(key, _)| (key.clone(), None)).collect();
        return ResolvedChanges { changes };
    }
    // One merge walk of the overlay keys and the admitted events (both sorted by key),
    // rather than a search by `(String, String)` key per overlay key: with hundreds of
    // each (a join storm), the searches were a tenth of a run.
    let mut changes: Vec<(StateKey, Option<EventId>)> = Vec::with_capacity(overlaid.keys.len());
    // Admitted events under keys outside the overlay that the base lacks.
    let mut outside: Vec<(StateKey, Option<EventId>)> = Vec::new();
    let mut note_outside = |pdu: &P| {
        let key = key_of(pdu);
        if overlaid.base.binary_search_by(|&(k, _)| (k.0.as_str(), k.1.as_str()).cmp(&key)).is_err()
        {
            let key = (key.0.to_owned(), key.1.to_owned());
            outside.push((key, Some(pdu.borrow().event_id().clone())));
        }
    };
    let mut rest = admitted.iter().peekable();
    for (at, &key) in overlaid.keys.iter().enumerate() {
        let key_strs = (key.0.as_str(), key.1.as_str());
        while let Some(pdu) = rest.next_if(|pdu| key_of(*pdu) < key_strs) {
            note_outside(pdu);
        }
        let here = rest.next_if(|pdu| key_of(*pdu) == key_strs).map(|pdu| pdu.borrow().event_id());
        let first = overlaid.sets[0][at];
        let agreed = first.filter(|id| overlaid.sets.iter().all(|set| set[at] == Some(*id)));
        changes.push((key.clone(), agreed.or(here).cloned()));
    }
    for pdu in rest {
        note_outside(pdu);
    }
    if !outside.is_empty() {
        changes.extend(outside);
        // Both runs are sorted and their keys distinct: a stable sort merges them.
        changes.sort_by(|a, b| a.0.cmp(&b.0));
    }
    ResolvedChanges { changes }
}
