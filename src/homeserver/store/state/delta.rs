//! A state group's own entries ([`Delta`]): sorted by key, with the filters that let a
//! lookup walking a delta chain skip most groups without comparing a string.

use std::collections::BTreeMap;

use crate::homeserver::store::StateKey;
use crate::matrix::EventId;
use crate::matrix::ids::WordHash;
use crate::matrix::words::same_text;

/// A group's entries (`None` removes a key), sorted by key: a boxed slice rather than a
/// map, since most deltas hold one entry and a map's first node alone costs some 700 bytes,
/// which a thousand servers pay for each of their groups.
///
/// `mask` has the bit ([`key_bit`]) of every key set: a lookup walking a delta chain skips
/// the groups whose mask lacks its key's bit without comparing a string. Most deltas hold
/// one or two keys, so a lookup through a chain of thirty groups compared some thirty
/// string pairs, a tenth of a 300-server run. A large delta (a snapshot: every key of the
/// room) also has a hash table of its positions (`slots`), so that a lookup reads one or
/// two slots and then one key. A binary search of sorted hashes, as before, read some ten
/// positions of a thousand-key snapshot, each a cache miss when the server's data is cold,
/// as it is at a thousand servers.
#[derive(Clone, Debug, Default)]
pub(super) struct Delta {
    entries: Box<[(StateKey, Option<EventId>)]>,
    mask: u64,
    slots: Box<[Slot]>,
}

/// One place of a large [`Delta`]'s hash table (open addressing, linear probing): the low
/// half of a key's hash as a tag, and the key's position plus one (0: empty).
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    tag: u32,
    at: u32,
}

/// Where a hash's probe starts in a table of `slots.len()` (a power of two) places: from
/// its high bits, mixed, which the tag (its low half) does not hold.
fn first_slot(hash: u64, len: usize) -> usize {
    (hash.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as usize & (len - 1)
}

/// Deltas of more entries than this keep `slots`.
const HASHED_FROM: usize = 8;

/// A key's hash ([`WordHash`]), for the filters of [`Delta`]. Only a filter: whatever it
/// selects is confirmed by comparing the key, so a collision costs a comparison and never
/// changes an answer.
pub(super) fn key_hash(event_type: &str, state_key: &str) -> u64 {
    // Each piece's length is mixed in, so ("ab", "c") and ("a", "bc") differ.
    WordHash::new().write(event_type.as_bytes()).write(state_key.as_bytes()).finish()
}

/// A hash of a delta's entries, given in key order as (type, state key, event id; `None`
/// removes): equal entry lists hash alike, so that a pool of small deltas
/// ([`super::SharedSnapshots`]) finds a list's candidates by it. Only a filter, as
/// [`key_hash`] is: candidates are compared in full.
pub(super) fn content_hash<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a EventId>)>,
) -> u64 {
    entries.into_iter().fold(0x243f_6a88_85a3_08d3, |hash, (event_type, state_key, event)| {
        let entry = key_hash(event_type, state_key) ^ event.map_or(0, EventId::text_hash);
        (hash ^ entry).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
    })
}

/// A key's bit in a [`Delta`]'s mask: one of 64, from the top bits of its mixed hash.
fn key_bit(hash: u64) -> u64 {
    1 << (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58)
}

/// A filter of the keys of several deltas (256 bits, one per key, from its hash): a key
/// whose bit is clear is in none of them. Only a filter: a set bit is confirmed by the
/// deltas' own lookups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(in crate::homeserver::store) struct ChainFilter([u64; 4]);

impl ChainFilter {
    /// The filter that rules out no key.
    pub(in crate::homeserver::store) const ALL: ChainFilter = ChainFilter([u64::MAX; 4]);

    /// Word and bit of a key's hash: the top eight bits of its mixed hash (other bits
    /// than the [`Delta`] mask's six, so that the two filters miss independently).
    fn position(hash: u64) -> (usize, u64) {
        let mixed = hash.wrapping_mul(0xd6e8_feb8_6659_fd93);
        ((mixed >> 62) as usize, 1 << ((mixed >> 56) & 63))
    }

    /// This filter with every key of `delta` added.
    pub(in crate::homeserver::store) fn with(mut self, delta: &Delta) -> ChainFilter {
        for ((event_type, state_key), _) in &delta.entries {
            let (word, bit) = ChainFilter::position(key_hash(event_type, state_key));
            self.0[word] |= bit;
        }
        self
    }

    /// Whether a key of this hash may be in the deltas (false: it is in none).
    pub(in crate::homeserver::store) fn may_hold(&self, hash: u64) -> bool {
        let (word, bit) = ChainFilter::position(hash);
        self.0[word] & bit != 0
    }
}

impl Delta {
    pub(super) fn new(entries: Box<[(StateKey, Option<EventId>)]>) -> Delta {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "sorted, no duplicates");
        let hashes = entries.iter().map(|((t, k), _)| key_hash(t, k));
        let mask = hashes.clone().fold(0, |mask, hash| mask | key_bit(hash));
        let slots = if entries.len() > HASHED_FROM { table(hashes) } else { Box::default() };
        Delta { entries, mask, slots }
    }

    /// The entry of a key (`Some(None)`: removed here), found by borrowed parts.
    pub(super) fn get(&self, event_type: &str, state_key: &str) -> Option<&Option<EventId>> {
        self.get_hashed(key_hash(event_type, state_key), event_type, state_key)
    }

    /// [`Delta::get`] with the key's [`key_hash`] computed by the caller, once per chain.
    pub(super) fn get_hashed(
        &self,
        hash: u64,
        event_type: &str,
        state_key: &str,
    ) -> Option<&Option<EventId>> {
        if self.mask & key_bit(hash) == 0 {
            return None;
        }
        // Keys are unique, so the first entry with the key is the entry. A small delta is
        // scanned: comparing texts for equality (`same_text`, inline) costs less than the
        // ordered comparisons of a binary search, each a `memcmp` call.
        let wanted = |((t, k), _): &&(StateKey, Option<EventId>)| {
            same_text(k, state_key) && same_text(t, event_type)
        };
        if self.slots.is_empty() {
            return self.entries.iter().find(wanted).map(|(_, event)| event);
        }
        let last = self.slots.len() - 1;
        let mut place = first_slot(hash, self.slots.len());
        loop {
            let slot = self.slots[place];
            if slot.at == 0 {
                return None;
            }
            if slot.tag == hash as u32 {
                let entry = &self.entries[slot.at as usize - 1];
                if wanted(&entry) {
                    return Some(&entry.1);
                }
            }
            place = (place + 1) & last;
        }
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &StateKey> {
        self.entries.iter().map(|(key, _)| key)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&StateKey, &Option<EventId>)> {
        self.entries.iter().map(|(key, event)| (key, event))
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The [`content_hash`] of this delta's entries.
    pub(super) fn content_hash(&self) -> u64 {
        content_hash(self.iter().map(|((t, k), event)| (t.as_str(), k.as_str(), event.as_ref())))
    }

    /// Whether two deltas hold the same entries (their filters and tables follow from
    /// them).
    pub(super) fn same_entries(&self, other: &Delta) -> bool {
        self.entries == other.entries
    }

    /// Whether this delta holds exactly `entries` (in key order, borrowed): whether
    /// [`Delta::new`] of their copies would give a delta of the [`same
    /// entries`](Delta::same_entries), asked before copying them.
    pub(super) fn holds<'a>(
        &self,
        entries: impl ExactSizeIterator<Item = (&'a StateKey, Option<&'a EventId>)>,
    ) -> bool {
        self.holds_parts(entries.map(|((t, k), event)| (t.as_str(), k.as_str(), event)))
    }

    /// [`Delta::holds`] for entries given as (type, state key, event id), as
    /// [`content_hash`] takes them.
    pub(super) fn holds_parts<'a>(
        &self,
        entries: impl ExactSizeIterator<Item = (&'a str, &'a str, Option<&'a EventId>)>,
    ) -> bool {
        entries.len() == self.entries.len()
            && self.entries.iter().zip(entries).all(
                |(((t, k), event), (other_t, other_k, other))| {
                    t == other_t && k == other_k && event.as_ref() == other
                },
            )
    }

    /// Whether this delta has its own hash table, rather than a place in the chain filters
    /// of the groups above it.
    pub(super) fn is_large(&self) -> bool {
        !self.slots.is_empty()
    }

    /// Whether a delta of `len` entries is large ([`Delta::is_large`]).
    pub(super) fn large_at(len: usize) -> bool {
        len > HASHED_FROM
    }
}

impl From<BTreeMap<StateKey, Option<EventId>>> for Delta {
    fn from(map: BTreeMap<StateKey, Option<EventId>>) -> Delta {
        Delta::new(map.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Delta {
    type Item = (&'a StateKey, &'a Option<EventId>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (StateKey, Option<EventId>)>,
        fn(&'a (StateKey, Option<EventId>)) -> (&'a StateKey, &'a Option<EventId>),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(key, event)| (key, event))
    }
}

/// The hash table of a large [`Delta`] whose keys hash to `hashes`, in order: a power of
/// two of at least one and a half times as many places as keys, so that the table is at
/// most two-thirds full and a probe ends within a few places.
fn table(hashes: impl ExactSizeIterator<Item = u64>) -> Box<[Slot]> {
    let len = (hashes.len() + hashes.len() / 2).next_power_of_two();
    let mut slots = vec![Slot::default(); len].into_boxed_slice();
    for (at, hash) in (1..).zip(hashes) {
        let mut place = first_slot(hash, len);
        while slots[place].at != 0 {
            place = (place + 1) & (len - 1);
        }
        slots[place] = Slot { tag: hash as u32, at };
    }
    slots
}

/// The keys whose entries differ between two snapshots' maps, in one merge walk.
pub(super) fn snapshot_difference<'a>(a: &'a Delta, b: &'a Delta) -> Vec<&'a StateKey> {
    let mut keys = Vec::new();
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(&(key, _)), None) => {
                keys.push(key);
                a.next();
            }
            (None, Some(&(key, _))) => {
                keys.push(key);
                b.next();
            }
            (Some(&(key_a, event_a)), Some(&(key_b, event_b))) => match key_a.cmp(key_b) {
                std::cmp::Ordering::Less => {
                    keys.push(key_a);
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    keys.push(key_b);
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if event_a != event_b {
                        keys.push(key_a);
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::homeserver::store::state::tests::{id, key};

    #[test]
    fn a_delta_mask_never_hides_a_key_it_holds_and_skips_most_others() {
        let keys: Vec<StateKey> =
            (0..1000).map(|i| key("m.room.member", &format!("@u{i}:hs{}", i % 7))).collect();
        let mut skipped = 0;
        for (i, held) in keys.iter().enumerate().step_by(50) {
            let delta = Delta::from(BTreeMap::from([(held.clone(), Some(id("$x")))]));
            assert_eq!(delta.get(&held.0, &held.1), Some(&Some(id("$x"))));
            for (j, other) in keys.iter().enumerate() {
                if i != j {
                    assert_eq!(delta.get(&other.0, &other.1), None);
                    skipped += usize::from(delta.mask & key_bit(key_hash(&other.0, &other.1)) == 0);
                }
            }
        }
        // A large delta finds its keys through the hashes: every one held, removals
        // included, and none of the others.
        let map: BTreeMap<StateKey, Option<EventId>> = keys
            .iter()
            .step_by(2)
            .enumerate()
            .map(|(i, k)| (k.clone(), (i % 3 != 0).then(|| id(&format!("$e{i}")))))
            .collect();
        let large = Delta::from(map.clone());
        let used = large.slots.iter().filter(|slot| slot.at != 0).count();
        assert_eq!(used, map.len());
        assert!(large.slots.len() >= map.len() * 3 / 2, "at most two-thirds full");
        for k in &keys {
            assert_eq!(large.get(&k.0, &k.1), map.get(k), "{k:?}");
        }
        // One bit of 64 set: about 63 lookups in 64 skip the search.
        assert!(skipped > 20 * 999 * 9 / 10, "only {skipped} of {} lookups skipped", 20 * 999);
        // The separator keeps keys whose parts split the same bytes apart.
        assert_ne!(key_hash("ab", "c"), key_hash("a", "bc"));
    }
}
