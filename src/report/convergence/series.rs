//! The series `convergence.svg` draws, from one walk over the trace: distinct current
//! states among joined servers, events missing per server (or their most and median past
//! [`LEGEND_SERVERS_MAX`] servers), the moment of convergence and delivery latencies.
//!
//! [`LEGEND_SERVERS_MAX`]: super::LEGEND_SERVERS_MAX

use std::collections::{BTreeMap, BTreeSet};

use crate::matrix::ids::LookupMap;
use crate::report::model::RoomModel;
use crate::trace::{Body, Decision, Trace};

use super::{HIGHLIGHT_MAX, LEGEND_SERVERS_MAX};

/// A step function: (t, value) at each change.
pub(super) type Steps = Vec<(u64, u32)>;

/// Step series over virtual time.
pub(super) struct Series {
    /// (t, number of distinct current-state hashes among joined servers).
    pub(super) distinct: Vec<(u64, u32)>,
    /// Per server of `room.servers` that ever joined: (t, events missing).
    pub(super) missing: Vec<(usize, Vec<(u64, u32)>)>,
    /// Since when (to the end) every joined server holds one state and misses nothing.
    pub(super) converged_ms: Option<u64>,
    /// Delivery latencies in ms: creation at the origin → first storage at each other
    /// server.
    pub(super) latencies_ms: Vec<u64>,
    pub(super) end_ms: u64,
    /// Past [`LEGEND_SERVERS_MAX`] servers: the most and the median events missing over
    /// the joined servers, sampled once per [`BUCKETS`]th of the run.
    pub(super) aggregate: Option<(Steps, Steps)>,
    /// Servers that matter beyond [`HIGHLIGHT_MAX`], not drawn (named in the legend).
    pub(super) highlight_left: Vec<String>,
    /// At the end: distinct states and the total of missing events.
    pub(super) end_distinct: u32,
    pub(super) end_missing: u32,
}

/// Time buckets of the aggregate lines and of the distinct-states envelope.
pub(super) const BUCKETS: u64 = 1000;

pub(super) fn series(trace: &Trace, room: &RoomModel, highlight: &[String]) -> Series {
    let aggregate = room.servers.len() > LEGEND_SERVERS_MAX;
    let mut walk = Walk::new(room, aggregate);
    // Network records change nothing here; leaving them out keeps the sample instants the
    // same whether the trace is whole in memory or kept without them (`Trace::kept`).
    let mut records =
        trace.records.iter().filter(|r| !crate::trace::NetFold::takes(&r.body)).peekable();
    while let Some(first) = records.next() {
        let t = first.t;
        // Apply every record of this millisecond, then sample once.
        walk.apply(&first.body);
        while let Some(record) = records.next_if(|r| r.t == t) {
            walk.apply(&record.body);
        }
        walk.sample(t, records.peek().is_none());
    }
    walk.finish(highlight)
}

/// A set of small numbers, one bit each.
#[derive(Clone, Debug, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn contains(&self, n: usize) -> bool {
        self.0.get(n / 64).is_some_and(|word| word >> (n % 64) & 1 == 1)
    }

    /// Adds `n`; whether it was absent.
    fn insert(&mut self, n: usize) -> bool {
        let at = n / 64;
        if self.0.len() <= at {
            self.0.resize(at + 1, 0);
        }
        let bit = 1 << (n % 64);
        let absent = self.0[at] & bit == 0;
        self.0[at] |= bit;
        absent
    }

    /// Keeps only the numbers `other` holds.
    fn retain_in(&mut self, other: &Bits) {
        for (at, word) in self.0.iter_mut().enumerate() {
            *word &= other.0.get(at).copied().unwrap_or(0);
        }
    }

    /// How many numbers of this set `other` lacks.
    fn count_not_in(&self, other: &Bits) -> u32 {
        let words = self.0.iter().enumerate();
        words.map(|(at, word)| (word & !other.0.get(at).copied().unwrap_or(0)).count_ones()).sum()
    }
}

/// The walk over the trace behind [`series`]: what each server of the room holds so far,
/// and the step series sampled up to now.
///
/// A sample costs what changed since the last one, not the number of servers: the
/// distinct states among joined servers are counted as they change (`hash_counts`), and
/// only the servers whose missing count changed or that joined since (`dirty`) are
/// sampled again, since the step series of the others would not change. At a thousand
/// servers, sampling every joined server at every millisecond of the trace was most of
/// the report.
struct Walk<'a> {
    room: &'a RoomModel,
    aggregate: bool,
    end_ms: u64,
    most: Vec<(u64, u32)>,
    median: Vec<(u64, u32)>,
    last_bucket: u64,
    /// The room's servers by name → their position in `room.servers` (looked up only, by
    /// hash: every event record asks).
    positions: LookupMap<&'a str, usize>,
    joined: BTreeSet<usize>,
    hashes: BTreeMap<usize, &'a str>,
    /// The current-state hashes of the joined servers that have one, with how many hold
    /// each.
    hash_counts: LookupMap<&'a str, u32>,
    /// The room's event ids by number, in order of first sight: the sets below hold
    /// numbers, one bit each, so that an event created while a thousand servers are joined
    /// costs a thousand bits rather than a thousand inserts of its id.
    /// Looked up only, by hash: searching a sorted map compared event ids byte by byte.
    numbers: LookupMap<&'a str, usize>,
    /// Events whose creation was seen.
    created: Bits,
    /// Per server: the events it stores.
    stored: Vec<Bits>,
    /// Per server: the events created while it was joined (owed to it), and how many of
    /// them it does not store.
    owed: Vec<Bits>,
    owed_missing: Vec<u32>,
    /// How many joined servers miss an event owed to them.
    joined_missing: usize,
    /// Servers to sample again: their missing count changed, or they joined.
    dirty: BTreeSet<usize>,
    distinct: Vec<(u64, u32)>,
    missing: Vec<Vec<(u64, u32)>>,
    converged_ms: Option<u64>,
}

impl<'a> Walk<'a> {
    fn new(room: &'a RoomModel, aggregate: bool) -> Self {
        let server_count = room.servers.len();
        let mut positions = LookupMap::new();
        for (i, name) in room.servers.iter().enumerate() {
            // A name's first position, as a search from the front finds it.
            positions.get_or_insert_with(name.as_str(), || i);
        }
        Walk {
            room,
            aggregate,
            end_ms: room.end_ms.max(1),
            most: Vec::new(),
            median: Vec::new(),
            last_bucket: u64::MAX,
            positions,
            joined: BTreeSet::new(),
            hashes: BTreeMap::new(),
            hash_counts: LookupMap::new(),
            numbers: LookupMap::new(),
            created: Bits::default(),
            stored: vec![Bits::default(); server_count],
            owed: vec![Bits::default(); server_count],
            owed_missing: vec![0; server_count],
            joined_missing: 0,
            dirty: BTreeSet::new(),
            distinct: Vec::new(),
            missing: vec![Vec::new(); server_count],
            converged_ms: None,
        }
    }

    fn server_at(&self, name: &str) -> Option<usize> {
        self.positions.get(name).copied()
    }

    /// One more (`up`) or one fewer joined server holding `hash`.
    fn count_hash(&mut self, hash: &'a str, up: bool) {
        if up {
            *self.hash_counts.get_or_insert_with(hash, || 0) += 1;
        } else if let Some(count) = self.hash_counts.get_mut(hash) {
            *count -= 1;
            if *count == 0 {
                self.hash_counts.remove(hash);
            }
        }
    }

    /// Sets a server's missing count, keeping `joined_missing` and `dirty` up to date.
    fn set_missing(&mut self, s: usize, value: u32) {
        let before = self.owed_missing[s];
        if before == value {
            return;
        }
        if self.joined.contains(&s) {
            match (before, value) {
                (0, _) => self.joined_missing += 1,
                (_, 0) => self.joined_missing -= 1,
                _ => {}
            }
        }
        self.owed_missing[s] = value;
        self.dirty.insert(s);
    }

    fn join(&mut self, s: usize) {
        if self.joined.insert(s) {
            if let Some(&hash) = self.hashes.get(&s) {
                self.count_hash(hash, true);
            }
            self.joined_missing += usize::from(self.owed_missing[s] > 0);
            self.dirty.insert(s);
        }
    }

    fn leave(&mut self, s: usize) {
        if self.joined.remove(&s) {
            if let Some(&hash) = self.hashes.get(&s) {
                self.count_hash(hash, false);
            }
            self.joined_missing -= usize::from(self.owed_missing[s] > 0);
        }
    }

    /// Applies one record of the trace to what the servers hold.
    fn apply(&mut self, body: &'a Body) {
        let room = self.room;
        match body {
            Body::Joined { server, room: r, .. } if *r == room.room_id => {
                if let Some(s) = self.server_at(server) {
                    self.join(s);
                }
            }
            Body::Left { server, room: r } if *r == room.room_id => {
                if let Some(s) = self.server_at(server) {
                    self.leave(s);
                }
            }
            Body::State { server, room: r, state_hash } if *r == room.room_id => {
                if let Some(s) = self.server_at(server) {
                    let old = self.hashes.insert(s, state_hash.as_str());
                    if self.joined.contains(&s) {
                        if let Some(old) = old {
                            self.count_hash(old, false);
                        }
                        self.count_hash(state_hash.as_str(), true);
                    }
                }
            }
            Body::Event { server, room: r, event_id: Some(id), decision, .. }
                if *r == room.room_id =>
            {
                self.apply_event(server, id.as_str(), *decision);
            }
            Body::Recovered { server, event_ids } => {
                if let Some(s) = self.server_at(server) {
                    // Ids never seen are stored by no server: only numbered ones matter.
                    let mut kept = Bits::default();
                    for id in event_ids {
                        if let Some(&n) = self.numbers.get(id.as_str()) {
                            kept.insert(n);
                        }
                    }
                    self.stored[s].retain_in(&kept);
                    let missing = self.owed[s].count_not_in(&self.stored[s]);
                    self.set_missing(s, missing);
                }
            }
            _ => {}
        }
    }

    /// An event record of the room: a creation is owed to every joined server, a storage
    /// pays what was owed.
    fn apply_event(&mut self, server: &str, id: &'a str, decision: Decision) {
        let next = self.numbers.len();
        let n = *self.numbers.get_or_insert_with(id, || next);
        if decision == Decision::Created && self.created.insert(n) {
            // Owed to every server joined when it was created.
            let joined: Vec<usize> = self.joined.iter().copied().collect();
            for s in joined {
                if self.owed[s].insert(n) && !self.stored[s].contains(n) {
                    self.set_missing(s, self.owed_missing[s] + 1);
                }
            }
        }
        if let Some(s) = self.server_at(server) {
            if decision.is_stored() && self.stored[s].insert(n) && self.owed[s].contains(n) {
                self.set_missing(s, self.owed_missing[s] - 1);
            }
        }
    }

    /// Samples every series at `t`, after the last record of that millisecond; `last`:
    /// the trace ends here.
    fn sample(&mut self, t: u64, last: bool) {
        debug_assert_eq!(
            self.hash_counts.len(),
            self.joined.iter().filter_map(|s| self.hashes.get(s)).collect::<BTreeSet<_>>().len()
        );
        debug_assert_eq!(
            self.joined_missing,
            self.joined.iter().filter(|&&s| self.owed_missing[s] > 0).count()
        );
        let count = self.hash_counts.len() as u32;
        push_step(&mut self.distinct, t, count);
        // A step series changes only when its value does, and a server not joined is not
        // sampled (one that joins is marked dirty then).
        for s in std::mem::take(&mut self.dirty) {
            if self.joined.contains(&s) {
                push_step(&mut self.missing[s], t, self.owed_missing[s]);
            }
        }
        let all_present = self.joined_missing == 0;
        let bucket = t * BUCKETS / self.end_ms;
        if self.aggregate && (bucket != self.last_bucket || last) && !self.joined.is_empty() {
            self.last_bucket = bucket;
            let mut values: Vec<u32> = self.joined.iter().map(|&s| self.owed_missing[s]).collect();
            values.sort_unstable();
            push_step(&mut self.most, t, values[values.len() - 1]);
            push_step(&mut self.median, t, values[values.len() / 2]);
        }
        let ok = !self.joined.is_empty() && count <= 1 && all_present;
        match (ok, self.converged_ms) {
            (true, None) => self.converged_ms = Some(t),
            (false, Some(_)) => self.converged_ms = None,
            _ => {}
        }
    }

    /// The series of the whole run.
    fn finish(self, highlight: &[String]) -> Series {
        let (room, aggregate) = (self.room, self.aggregate);
        let servers = &room.servers;
        let end_distinct = self.distinct.last().map_or(0, |p| p.1);
        let end_missing = self.missing.iter().filter_map(|m| m.last()).map(|p| p.1).sum();
        Series {
            distinct: self.distinct,
            missing: self
                .missing
                .into_iter()
                .enumerate()
                .filter(|(s, m)| !m.is_empty() && (!aggregate || highlight.contains(&servers[*s])))
                .take(if aggregate { HIGHLIGHT_MAX } else { usize::MAX })
                .collect(),
            aggregate: aggregate.then_some((self.most, self.median)),
            highlight_left: if aggregate {
                highlight.iter().skip(HIGHLIGHT_MAX).cloned().collect()
            } else {
                Vec::new()
            },
            converged_ms: self.converged_ms,
            latencies_ms: latencies(room),
            end_ms: room.end_ms.max(1),
            end_distinct,
            end_missing,
        }
    }
}

/// Appends a step to a step function, skipping samples that change nothing.
fn push_step(points: &mut Vec<(u64, u32)>, t: u64, value: u32) {
    match points.last() {
        Some(&(_, last)) if last == value => {}
        Some(&(_, last)) => {
            points.push((t, last));
            points.push((t, value));
        }
        None => points.push((t, value)),
    }
}

fn latencies(room: &RoomModel) -> Vec<u64> {
    let mut out = Vec::new();
    // The servers that stored the event so far: asked once per decision (a million at a
    // thousand servers), so by hash; only asked, never walked.
    let mut seen: LookupMap<&str, ()> = LookupMap::new();
    for event in &room.events {
        let Some((origin, created_ms)) = &event.created else { continue };
        seen.clear();
        for (server, t, decision, _) in &event.decisions {
            if server != origin && decision.is_stored() && seen.insert(server, ()).is_none() {
                out.push(t.saturating_sub(*created_ms));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_hold_numbers_across_words_and_compare_with_sets_of_other_lengths() {
        let mut a = Bits::default();
        assert!(a.insert(3) && a.insert(64) && a.insert(200));
        assert!(!a.insert(64), "already held");
        assert!(a.contains(3) && a.contains(64) && a.contains(200));
        assert!(!a.contains(4) && !a.contains(65) && !a.contains(10_000));
        let mut b = Bits::default();
        b.insert(64);
        // `b` is one word shorter than `a`: what lies past its end is not in it.
        assert_eq!(a.count_not_in(&b), 2);
        assert_eq!(b.count_not_in(&a), 0);
        a.retain_in(&b);
        assert!(a.contains(64) && !a.contains(3) && !a.contains(200));
        assert_eq!(a.count_not_in(&Bits::default()), 1);
    }
}
