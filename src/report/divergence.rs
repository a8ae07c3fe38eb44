//! Divergences between servers: for each pair of servers that ever held different
//! current states of a room while both were joined, their longest split (a first split
//! is often just a join propagating): when it began and the event whose receipt began
//! it, when (and through which event or resolution) they agreed again, how often and how
//! long they were split in all, and the state difference at the split's last moment as a
//! table of keys (for a pair still split at the end, the final difference: the witness of
//! a failed convergence).
//!
//! A server's current state over time comes from the trace's `state` records (a hash per
//! change); the event behind a change is the receipt or creation recorded with it (see
//! `changes`). The full state behind a hash is found by hashing candidate states the
//! same way the homeserver does (the name of its `matrix::state_digest::StateDigest`,
//! docs/trace.md): the state after the triggering
//! event as the DAG implies it, or any server's final state. When neither matches, the
//! page says the keys could not be reconstructed instead of guessing.
//!
//! Up to [`ALL_PAIRS_MAX`] servers every pair is compared; beyond that each server is
//! compared with one reference server (the first server of the scenario that is joined
//! at the end), which keeps the work linear in the number of servers.

use std::collections::{BTreeMap, BTreeSet};

use crate::matrix::EventId;
use crate::matrix::ids::LookupMap;
use crate::matrix::state_digest::{EntryValues, StateDigest};
use crate::matrix::state_res::StateMap;
use crate::report::model::{Membership, RoomModel};
use crate::report::resolution::StatesAfter;
use crate::trace::{Body, NestedState, Text, Trace};

/// Up to this many servers, every pair is compared.
pub const ALL_PAIRS_MAX: usize = 12;
/// Rows listed; the others are counted.
pub const ROWS_MAX: usize = 40;
/// Keys listed per difference table.
pub const KEYS_MAX: usize = 30;

/// One split: start, (end, changes at the end) unless still split, changes at the start.
type Split = (u64, Option<(u64, Changes)>, Changes);

/// (server, the event behind its state change) for the servers that changed at a moment.
pub type Changes = Vec<(String, Option<String>)>;

/// One change of a server's current state.
///
/// The hash and event id are the kept records' shared texts: a thousand servers' run has
/// half a million state changes, and copying both into strings was an allocation each.
#[derive(Clone, Debug)]
struct Change {
    t: u64,
    hash: Text,
    /// The last event the server decided on before the change.
    event: Option<Text>,
}

/// One pair's longest split, and how often it split.
#[derive(Clone, Debug)]
pub struct Divergence {
    pub a: String,
    pub b: String,
    /// When the longest split began.
    pub split_ms: u64,
    /// (server that changed at the split, the event behind its change).
    pub split_by: Vec<(String, Option<String>)>,
    /// When they agreed again and which changes made them agree; `None`: never.
    pub rejoin: Option<(u64, Changes)>,
    /// How often the pair split over the run.
    pub splits: u32,
    /// When the pair first split.
    pub first_split_ms: u64,
    /// Milliseconds the pair spent split over the run.
    pub split_total_ms: u64,
    /// The keys whose event differs at the last moment of the split (just before they
    /// agreed again, or at the end); `None` if either state could not be reconstructed.
    pub keys: Option<Vec<KeyDiff>>,
    /// The number of differing keys (the table may show fewer).
    pub key_count: usize,
}

/// One state key on which two servers differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDiff {
    pub event_type: String,
    pub state_key: String,
    pub a: Option<String>,
    pub b: Option<String>,
}

/// Every divergence of a room, worst first.
#[derive(Clone, Debug, Default)]
pub struct Divergences {
    /// Rows in order: pairs still split at the end first, then the longest splits.
    pub rows: Vec<Divergence>,
    /// Pairs that ever split (the rows may be fewer).
    pub pair_count: usize,
    /// Pairs compared.
    pub compared: usize,
    /// Set when servers were compared with one reference server only.
    pub reference: Option<String>,
}

/// The homeserver's state hash of a state map (see the module doc): the name of its
/// [`StateDigest`].
pub fn state_hash(state: &StateMap) -> String {
    StateDigest::of(state.iter().map(|((t, k), id)| (t.as_str(), k.as_str(), id.as_str()))).name()
}

/// The hash of each event's replayed state ([`state_hash`]) once computed, by event id
/// (`None`: no replayed state), for [`changes`] and [`state_differences`] alike: a state of
/// a hundred servers' members costs as many SHA-256 computations to hash.
///
/// The states share most of their entries, so each entry's value is computed once too
/// ([`EntryValues`]).
#[derive(Default)]
struct StateHashes<'a> {
    hashes: BTreeMap<String, Option<String>>,
    values: EntryValues<'a>,
}

impl<'a> StateHashes<'a> {
    /// The hash of the replayed state after event `id`, if it has one ([`state_hash`]).
    fn of(&mut self, id: &str, after: &'a StatesAfter) -> Option<&str> {
        if !self.hashes.contains_key(id) {
            let hash = after.get(id).map(|state| {
                let entries =
                    state.iter().map(|((t, k), id)| (t.as_str(), k.as_str(), id.as_str()));
                self.values.digest(entries).name()
            });
            debug_assert_eq!(hash, after.get(id).map(|state| state_hash(state)));
            self.hashes.insert(id.to_owned(), hash);
        }
        self.hashes[id].as_deref()
    }
}

/// Every server's state changes in the room, in trace order, each with the event behind
/// it: of the server's event records in the room, the first one at the same millisecond
/// after the `state` record (a homeserver reports the state change of one receipt just
/// before the receipt's decision) or the last one before it, whichever has a replayed
/// state with the recorded hash; failing that, the one after, else the one before.
fn changes<'a>(
    trace: &Trace,
    room: &RoomModel,
    after: &'a StatesAfter,
    hashes: &mut StateHashes<'a>,
) -> BTreeMap<String, Vec<Change>> {
    // (server → changes with (event before, event after at the same t)).
    type Pending = (Change, Option<Text>, Option<Text>);
    // Looked up by server for each of the room's event records (a million at a thousand
    // servers), so by hash; walked in key order below.
    let mut found: LookupMap<&str, Vec<Pending>> = LookupMap::new();
    let mut last_event: LookupMap<&str, &Text> = LookupMap::new();
    for record in &trace.records {
        match &record.body {
            Body::Event { server, room: r, event_id: Some(id), .. } if *r == room.room_id => {
                last_event.insert(server, id);
                if let Some(last) = found.get_mut(server.as_str()).and_then(|list| list.last_mut())
                {
                    if last.0.t == record.t && last.2.is_none() {
                        last.2 = Some(id.clone());
                    }
                }
            }
            Body::State { server, room: r, state_hash } if *r == room.room_id => {
                let before = last_event.get(server.as_str()).map(|&id| id.clone());
                let change = Change { t: record.t, hash: state_hash.clone(), event: None };
                found.get_or_insert_with(server, Vec::new).push((change, before, None));
            }
            _ => {}
        }
    }
    // Each event's replayed state is hashed once, however many changes name it; the id is
    // copied once per event, not once per change.
    let mut matches = |id: &Option<Text>, hash: &str| -> bool {
        id.as_ref().is_some_and(|id| hashes.of(id.as_str(), after) == Some(hash))
    };
    let mut out = BTreeMap::new();
    for (server, list) in found.into_sorted() {
        let mut changes = Vec::with_capacity(list.len());
        for (mut change, before, next) in list {
            change.event = if matches(&next, &change.hash) {
                next
            } else if matches(&before, &change.hash) {
                before
            } else {
                next.or(before)
            };
            changes.push(change);
        }
        out.insert(server.to_owned(), changes);
    }
    out
}

/// A server's state hash just after `t` (all changes at `t` applied), with its change.
fn at(changes: &[Change], t: u64) -> Option<&Change> {
    let after = changes.partition_point(|c| c.t <= t);
    after.checked_sub(1).map(|i| &changes[i])
}

fn joined(spans: Option<&Vec<Membership>>, t: u64) -> bool {
    spans.is_some_and(|spans| spans.iter().any(|span| span.covers(t)))
}

/// The first divergence of every pair that ever split; see the module doc.
pub fn divergences(
    trace: &Trace,
    room: &RoomModel,
    memberships: &BTreeMap<(String, String), Vec<Membership>>,
    after: &StatesAfter,
) -> Divergences {
    let mut hashes = StateHashes::default();
    let changes = changes(trace, room, after, &mut hashes);
    let servers: Vec<&String> = room.servers.iter().filter(|s| changes.contains_key(*s)).collect();
    let spans = |server: &str| memberships.get(&(room.room_id.clone(), server.to_owned()));
    let end_ms = room.end_ms;
    let (pairs, reference) = pairs_compared(&servers, spans, end_ms);
    let finals = final_states(trace, room);
    let mut out = Divergences { compared: pairs.len(), reference, ..Divergences::default() };
    for (a, b) in pairs {
        let splits = splits(a, b, &changes[a], &changes[b], spans(a), spans(b));
        out.rows.extend(longest_split(a, b, &splits, end_ms));
    }
    out.pair_count = out.rows.len();
    // Pairs still split at the end first, then the longest first split.
    let length =
        |d: &Divergence| d.rejoin.as_ref().map_or(u64::MAX, |(t, _)| t.saturating_sub(d.split_ms));
    out.rows.sort_by(|x, y| {
        (u64::MAX - length(x), x.split_ms, &x.a, &x.b).cmp(&(
            u64::MAX - length(y),
            y.split_ms,
            &y.a,
            &y.b,
        ))
    });
    out.rows.truncate(ROWS_MAX);
    state_differences(&mut out.rows, &changes, after, &finals, end_ms, &mut hashes);
    out
}

/// The pairs to compare: every pair up to [`ALL_PAIRS_MAX`] servers, else each server
/// with the reference server (returned too).
fn pairs_compared<'s, 'm>(
    servers: &[&'s String],
    spans: impl Fn(&str) -> Option<&'m Vec<Membership>>,
    end_ms: u64,
) -> (Vec<(&'s String, &'s String)>, Option<String>) {
    let mut pairs: Vec<(&String, &String)> = Vec::new();
    let mut reference = None;
    if servers.len() <= ALL_PAIRS_MAX {
        for (i, a) in servers.iter().enumerate() {
            for b in &servers[i + 1..] {
                pairs.push((a, b));
            }
        }
    } else if let Some(first) =
        servers.iter().find(|s| joined(spans(s), end_ms)).or(servers.first())
    {
        reference = Some((*first).clone());
        for b in servers.iter().filter(|s| *s != first) {
            pairs.push((first, b));
        }
    }
    (pairs, reference)
}

/// Every split of a pair in time order: (start, end and the changes at the end unless
/// still split, changes at the start); a pair is split at a moment when both are joined
/// and their state hashes differ.
fn splits(
    a: &String,
    b: &String,
    ca: &[Change],
    cb: &[Change],
    sa: Option<&Vec<Membership>>,
    sb: Option<&Vec<Membership>>,
) -> Vec<Split> {
    // In trace order, so by time: `at` finds a moment's last change by halving.
    debug_assert!(ca.is_sorted_by_key(|c| c.t) && cb.is_sorted_by_key(|c| c.t));
    let times: BTreeSet<u64> = ca.iter().chain(cb.iter()).map(|c| c.t).collect();
    let mut splits: Vec<Split> = Vec::new();
    let mut open: Option<Split> = None;
    for &t in &times {
        let both = joined(sa, t) && joined(sb, t);
        let differ = match (at(ca, t), at(cb, t)) {
            (Some(x), Some(y)) if both => x.hash != y.hash,
            _ => false,
        };
        let changed_at = |t: u64| {
            let mut by = Vec::new();
            for (server, list) in [(a, ca), (b, cb)] {
                if let Some(change) = at(list, t).filter(|c| c.t == t) {
                    by.push((server.clone(), change.event.as_ref().map(|e| e.as_str().to_owned())));
                }
            }
            by
        };
        match (open.take(), differ) {
            (None, true) => open = Some((t, None, changed_at(t))),
            (Some((start, _, by)), false) => {
                splits.push((start, Some((t, changed_at(t))), by));
            }
            (still, _) => open = still,
        }
    }
    splits.extend(open);
    splits
}

/// The pair's row: its longest split (the earliest of equals: a pair's first split is
/// often the few milliseconds a join takes to propagate), or none if it never split.
fn longest_split(a: &str, b: &str, splits: &[Split], end_ms: u64) -> Option<Divergence> {
    let first_ms = splits.first().map(|s| s.0)?;
    let length = |s: &Split| s.1.as_ref().map_or(end_ms, |(t, _)| *t).saturating_sub(s.0);
    let split_total_ms = splits.iter().map(length).sum();
    let mut longest = &splits[0];
    for split in splits {
        if length(split) > length(longest) {
            longest = split;
        }
    }
    Some(Divergence {
        a: a.to_owned(),
        b: b.to_owned(),
        split_ms: longest.0,
        split_by: longest.2.clone(),
        rejoin: longest.1.clone(),
        splits: splits.len() as u32,
        first_split_ms: first_ms,
        split_total_ms,
        keys: None,
        key_count: 0,
    })
}

/// Fills in each row's keys: the difference of the pair's states at the split's last
/// moment, when both states can be reconstructed.
fn state_differences<'a>(
    rows: &mut [Divergence],
    changes: &BTreeMap<String, Vec<Change>>,
    after: &'a StatesAfter,
    finals: &BTreeMap<String, StateMap>,
    end_ms: u64,
    hashes: &mut StateHashes<'a>,
) {
    // Every replayed state by hash, built only if a row needs it.
    let mut by_hash: Option<BTreeMap<String, &StateMap>> = None;
    for row in rows {
        let last_ms = row.rejoin.as_ref().map_or(end_ms, |(t, _)| t.saturating_sub(1));
        let mut state = |server: &str| {
            let change = at(&changes[server], last_ms)?;
            reconstruct(change, after, finals, hashes).or_else(|| {
                let index = by_hash.get_or_insert_with(|| {
                    let mut index = BTreeMap::new();
                    for (id, state) in after {
                        let hash = hashes.of(id, after).expect("a replayed state").to_owned();
                        index.insert(hash, &**state);
                    }
                    index
                });
                index.get(change.hash.as_str()).map(|state| (*state).clone())
            })
        };
        let (x, y) = (state(&row.a), state(&row.b));
        if let (Some(x), Some(y)) = (x, y) {
            let diff = diff(&x, &y);
            row.key_count = diff.len();
            row.keys = Some(diff.into_iter().take(KEYS_MAX).collect());
        }
    }
}

/// Every server's final state of the room, by hash.
fn final_states(trace: &Trace, room: &RoomModel) -> BTreeMap<String, StateMap> {
    let states = trace.records.iter().filter_map(|record| match &record.body {
        Body::Final(view) if view.room == room.room_id => {
            Some((&*view.state, view.state_hash.as_str()))
        }
        _ => None,
    });
    states_by_hash(states)
}

/// Final states (as traced: type → state key → event id, with the hash the server
/// recorded) by [`state_hash`], entries whose event id does not parse left out. Servers
/// that agree hold the same final state, so a map is built only for a hash not seen yet (a
/// thousand servers' equal states were each built and dropped), and a state equal to one
/// hashed before is not hashed again (a thousand servers' thousand entries were a million
/// SHA-256 computations). The recorded hash only narrows which states are compared: a
/// state is taken as seen only when it is equal, entry for entry, to one hashed before.
fn states_by_hash<'a>(
    states: impl Iterator<Item = (&'a NestedState, &'a str)>,
) -> BTreeMap<String, StateMap> {
    let mut out = BTreeMap::new();
    let mut hashed: LookupMap<&str, Vec<&NestedState>> = LookupMap::new();
    for (state, recorded) in states {
        if hashed.get(recorded).is_some_and(|seen| seen.contains(&state)) {
            continue;
        }
        hashed.get_or_insert_with(recorded, Vec::new).push(state);
        // The entries of the map built below, in its order.
        let entries = state.iter().flat_map(|(event_type, keys)| {
            keys.iter()
                .filter(|(_, id)| EventId::is_valid(id))
                .map(move |(key, id)| (event_type.as_str(), key.as_str(), id.as_str()))
        });
        let hash = StateDigest::of(entries.clone()).name();
        if out.contains_key(&hash) {
            continue;
        }
        let map: StateMap = entries
            .filter_map(|(t, k, id)| Some(((t.to_owned(), k.to_owned()), EventId::parse(id).ok()?)))
            .collect();
        debug_assert_eq!(state_hash(&map), hash);
        out.insert(hash, map);
    }
    out
}

/// The full state behind a change, if a known state has its hash.
fn reconstruct<'a>(
    change: &Change,
    after: &'a StatesAfter,
    finals: &BTreeMap<String, StateMap>,
    hashes: &mut StateHashes<'a>,
) -> Option<StateMap> {
    if let Some(id) = &change.event {
        if hashes.of(id.as_str(), after) == Some(change.hash.as_str()) {
            return after.get(id.as_str()).map(|state| StateMap::clone(state));
        }
    }
    finals.get(change.hash.as_str()).cloned()
}

/// The keys on which two states differ, in key order.
pub fn diff(a: &StateMap, b: &StateMap) -> Vec<KeyDiff> {
    let keys: BTreeSet<&(String, String)> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|key| a.get(*key) != b.get(*key))
        .map(|key| KeyDiff {
            event_type: key.0.clone(),
            state_key: key.1.clone(),
            a: a.get(key).map(|id| id.as_str().to_owned()),
            b: b.get(key).map(|id| id.as_str().to_owned()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::EventId;

    fn state(entries: &[(&str, &str, &str)]) -> StateMap {
        entries
            .iter()
            .map(|(t, k, id)| (((*t).to_owned(), (*k).to_owned()), EventId::parse(id).unwrap()))
            .collect()
    }

    #[test]
    fn the_state_hash_is_the_homeservers() {
        // Expected value from an independent computation (Python's hashlib and base64) of
        // the digest in `matrix::state_digest`'s doc.
        let s = state(&[("m.room.create", "", "$a"), ("m.room.member", "@u:hs1", "$b")]);
        assert_eq!(state_hash(&s), "KhuO8VRbYOnbEErv");
        assert_ne!(state_hash(&s), state_hash(&StateMap::new()));
    }

    #[test]
    fn final_states_are_kept_once_per_hash_without_unparsable_ids() {
        let nested = |entries: &[(&str, &str, &str)]| {
            let mut out = NestedState::new();
            for (t, k, id) in entries {
                out.entry((*t).to_owned()).or_default().insert((*k).to_owned(), (*id).to_owned());
            }
            out
        };
        let a = nested(&[("m.room.create", "", "$a"), ("m.room.member", "@u:hs1", "$b")]);
        // The same entries, and one whose id is not an event id (left out).
        let a_again = nested(&[
            ("m.room.create", "", "$a"),
            ("m.room.member", "@u:hs1", "$b"),
            ("m.room.topic", "", "no-sigil"),
        ]);
        let b = nested(&[("m.room.create", "", "$a")]);
        // Recorded hashes narrow the comparisons only: a wrong or shared one changes nothing.
        let out = states_by_hash([(&a, "x"), (&a_again, "x"), (&b, "x"), (&a, "x")].into_iter());
        let expected_a = state(&[("m.room.create", "", "$a"), ("m.room.member", "@u:hs1", "$b")]);
        let expected_b = state(&[("m.room.create", "", "$a")]);
        // The first hash is the independently computed one of the test above.
        assert_eq!(out.len(), 2);
        assert_eq!(out.get("KhuO8VRbYOnbEErv"), Some(&expected_a));
        assert_eq!(out.get(&state_hash(&expected_b)), Some(&expected_b));
    }

    #[test]
    fn diff_lists_keys_that_differ_on_either_side() {
        let a = state(&[("m.room.name", "", "$n1"), ("m.room.topic", "", "$t"), ("x", "", "$x")]);
        let b = state(&[("m.room.name", "", "$n2"), ("m.room.topic", "", "$t"), ("y", "", "$y")]);
        let keys: Vec<(String, Option<String>, Option<String>)> =
            diff(&a, &b).into_iter().map(|d| (d.event_type, d.a, d.b)).collect();
        assert_eq!(
            keys,
            [
                ("m.room.name".into(), Some("$n1".into()), Some("$n2".into())),
                ("x".into(), Some("$x".into()), None),
                ("y".into(), None, Some("$y".into())),
            ]
        );
    }
}
