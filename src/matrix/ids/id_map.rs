//! [`LookupMap`] (and [`EventIdMap`], keyed by event id): maps that are looked up, never
//! walked in hash order.
//!
//! Sorted maps keyed by event id follow a dozen pointers into ids' texts per lookup; at a
//! thousand servers, finding stored events and auth-chain nodes by id that way was 6% of a
//! run (docs/performance-history.md, "Stored events found by hash"). A hash map finds an
//! id with one hash and one or two comparisons. Its iteration order would be the hash's:
//! fixed from run to run, but meaningless, and the determinism contract keeps it out of
//! anything that decides or is recorded. So the hash map lives only in this file (the tidy
//! test allows it here and nowhere else), and [`LookupMap`] hands out its entries sorted
//! by key or to an order-independent question ([`LookupMap::any`]).

#![allow(clippy::disallowed_types)]

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hash};

use super::EventId;
use crate::matrix::words::le_word;

/// A map from event ids for lookups; see the module documentation.
pub type EventIdMap<V> = LookupMap<EventId, V>;

/// A map for lookups, whose entries come out only sorted by key; see the module
/// documentation. Keys are hashed with [`IdHasher`], made for texts.
#[derive(Clone)]
pub struct LookupMap<K, V> {
    map: HashMap<K, V, IdHashing>,
}

impl<K: Hash + Eq + Ord, V> LookupMap<K, V> {
    pub fn new() -> LookupMap<K, V> {
        LookupMap { map: HashMap::with_hasher(IdHashing) }
    }

    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.map.get(key)
    }

    pub fn get_mut<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.map.get_mut(key)
    }

    pub fn contains_key<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.map.contains_key(key)
    }

    /// Sets the value of `key`, returning the one it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.map.insert(key, value)
    }

    /// The value of `key`, made by `make` if there is none.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        self.map.entry(key).or_insert_with(make)
    }

    pub fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.map.remove(key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Removes every entry, keeping the table's room.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Makes room for `more` entries without growing again.
    pub fn reserve(&mut self, more: usize) {
        self.map.reserve(more);
    }

    /// Every entry, in key order.
    pub fn sorted(&self) -> Vec<(&K, &V)> {
        let mut entries: Vec<_> = self.map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries
    }

    /// Every entry, taken out, in key order.
    pub fn into_sorted(self) -> Vec<(K, V)> {
        let mut entries: Vec<_> = self.map.into_iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        entries
    }

    /// Changes every value with `f`, given the entries in no particular order: `f` must
    /// change only the value it is given, from that entry alone, and record nothing.
    pub fn update_each(&mut self, mut f: impl FnMut(&K, &mut V)) {
        for (key, value) in self.map.iter_mut() {
            f(key, value);
        }
    }

    /// Keeps the entries `f` keeps. `f` is asked in no particular order: it must decide
    /// from the entry alone, and record nothing.
    pub fn retain(&mut self, f: impl FnMut(&K, &mut V) -> bool) {
        self.map.retain(f);
    }

    /// Adds to `set` the keys of the entries that satisfy `f`. A sorted set is the same
    /// whatever order its keys arrive in, so the entries are asked in no particular order
    /// (and not sorted first): `f` must not record or change anything.
    pub fn insert_keys_where(&self, set: &mut BTreeSet<K>, mut f: impl FnMut(&K, &V) -> bool)
    where
        K: Copy,
    {
        set.extend(self.map.iter().filter(|(k, v)| f(k, v)).map(|(k, _)| *k));
    }

    /// Adds to `set`, a hashed set (a map to nothing), the keys of the entries that satisfy
    /// `f`: for keys that repeat across many maps, each found by its hash rather than by a
    /// walk of string comparisons down a sorted set, and sorted once at the end
    /// ([`LookupMap::into_sorted`]). As with [`LookupMap::insert_keys_where`], the entries
    /// are asked in no particular order: `f` must not record or change anything.
    pub fn insert_keys_where_hashed(
        &self,
        set: &mut LookupMap<K, ()>,
        mut f: impl FnMut(&K, &V) -> bool,
    ) where
        K: Copy,
    {
        for (key, value) in &self.map {
            if f(key, value) {
                set.map.insert(*key, ());
            }
        }
    }

    /// Whether some entry satisfies `f`. The entries are asked in no particular order, so
    /// `f` must not record or change anything: the answer is all it gives.
    pub fn any(&self, mut f: impl FnMut(&K, &V) -> bool) -> bool {
        self.map.iter().any(|(id, value)| f(id, value))
    }
}

/// A map of the entries, a later entry of a key replacing an earlier one.
impl<K: Hash + Eq + Ord, V> FromIterator<(K, V)> for LookupMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> LookupMap<K, V> {
        let mut map = LookupMap::new();
        for (key, value) in entries {
            map.insert(key, value);
        }
        map
    }
}

impl<K: Hash + Eq + Ord, V> Default for LookupMap<K, V> {
    fn default() -> LookupMap<K, V> {
        LookupMap::new()
    }
}

/// The entries in key order.
impl<K: Hash + Eq + Ord + std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for LookupMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.sorted()).finish()
    }
}

/// A hash of byte strings written in pieces, eight bytes at a time: each piece's
/// [`bytes_hash`] (the lookup maps' own, which starts from the piece's length) mixed into
/// the running value, so `("ab", "c")` and `("a", "bc")` hash apart. For the hash filters
/// whose every hit is confirmed by comparing the keys (a PDU's 192-byte tail, state keys),
/// where FNV-1a's one multiply per byte showed in profiles. Not a published function: its
/// values are only ever compared with each other within one run, and decide nothing but
/// where a key is kept.
#[derive(Clone, Copy, Debug)]
pub struct WordHash(u64);

impl Default for WordHash {
    fn default() -> WordHash {
        WordHash::new()
    }
}

impl WordHash {
    pub const fn new() -> WordHash {
        // Not zero, which the mix keeps at zero when an empty piece is written first.
        WordHash(0x243f_6a88_85a3_08d3)
    }

    pub fn write(self, bytes: &[u8]) -> WordHash {
        WordHash(mix(self.0, bytes_hash(bytes)))
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

/// The hash of one piece, with its length as the start: what [`IdHasher`] (so every
/// [`LookupMap`], and the interner through [`lookup_hash`]) and [`WordHash`] mix in per
/// piece.
///
/// A piece of up to 16 bytes is read as at most two words (overlapping where it is
/// shorter than 16, so every byte is read and, with the length, the words tell the piece
/// apart); one of eight bytes, as one. A longer piece is read in two lanes of eight
/// bytes, a [`mix`] per word, that run side by side, its last 16 bytes read once more as
/// the lanes' last words; the lanes are mixed at the end. A 44-byte event id so takes
/// four multiplies in a row instead of six, and no loop over its last bytes.
pub(super) fn bytes_hash(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let start = len as u64;
    if len < 8 {
        return mix(start, short_word(bytes));
    }
    if len <= 16 {
        // Eight bytes (a number's key, `write_u64`, among them) are one word.
        let first = mix(start, le_word(bytes));
        return if len == 8 { first } else { mix(first, le_word(&bytes[len - 8..])) };
    }
    let mut left = start;
    let mut right = start ^ LANE;
    let mut pairs = bytes.chunks_exact(16);
    for pair in &mut pairs {
        left = mix(left, le_word(pair));
        right = mix(right, le_word(&pair[8..]));
    }
    if !pairs.remainder().is_empty() {
        let tail = &bytes[len - 16..];
        left = mix(left, le_word(tail));
        right = mix(right, le_word(&tail[8..]));
    }
    mix(left, right)
}

/// The start of [`bytes_hash`]'s second lane (the first is the length alone), so that the
/// lanes differ from the first word on.
const LANE: u64 = 0x6a09_e667_f3bc_c908;

/// A piece of up to seven bytes as one word: two overlapping four-byte halves from four
/// bytes on, else its first, middle and last bytes (which, with the length, are all its
/// bytes).
fn short_word(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    if len >= 4 {
        let half =
            |at: usize| u64::from(u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four")));
        return half(0) | half(len - 4) << 32;
    }
    match bytes {
        [] => 0,
        _ => u64::from(bytes[0]) | u64::from(bytes[len / 2]) << 8 | u64::from(bytes[len - 1]) << 16,
    }
}

/// One word into the running value: a folded multiply (the low and high halves of the
/// 128-bit product xored together, one instruction's product on 64-bit targets), so that
/// every bit of the word reaches both the low bits a table's bucket is taken from and the
/// top bits of its tag. A multiply carries nothing down, and folding in its own top bits
/// carried down only the word's lower 41 bits: with that mix, the short forms above put
/// `$e0` to `$e4095` in 215 of 4,096 buckets.
fn mix(hash: u64, word: u64) -> u64 {
    let product = u128::from(hash ^ word) * 0x9e37_79b9_7f4a_7c15;
    product as u64 ^ (product >> 64) as u64
}

/// Builds the [`IdHasher`] of every [`LookupMap`]: the same in every map and every run,
/// so that nothing depends on process randomness.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHashing;

impl std::hash::BuildHasher for IdHashing {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// The word-at-a-time hash (`bytes_hash`) as a [`std::hash::Hasher`]: every
/// [`LookupMap`]'s, and [`super::IdInterner`]'s through `lookup_hash`. It is not
/// keyed: ids crafted to collide would slow the lookups of those ids, never change an
/// answer (and an id of room versions 4 and later is a SHA-256 reference hash, so crafting
/// one costs a hash per try).
#[derive(Clone, Copy, Debug)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = self.0.rotate_left(23) ^ bytes_hash(bytes);
    }

    /// A hash handed over whole ([`hand_over_hash`]): mixed in as `write` mixes in a
    /// piece's hash, so that a fresh hasher ends on it. No key of the project's maps is an
    /// `i128`; one would be hashed by its low 64 bits, still consistently with `==`.
    fn write_i128(&mut self, hash: i128) {
        self.0 = self.0.rotate_left(23) ^ hash as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The hash a [`LookupMap`] finds `text` by: what [`IdHasher`] ends on after hashing the
/// `str` as the standard library does (its bytes, then a marker byte), from the start.
/// An [`EventId`] keeps it, taken when the id is made, and hands it over instead of its
/// text ([`hand_over_hash`]).
pub(super) fn lookup_hash(text: &str) -> u64 {
    IdHashing.hash_one(text)
}

/// Hands `hash`, a [`lookup_hash`], to `state`. [`IdHasher`] takes it whole (its
/// `write_i128`), so a key hashed this way from the start hashes as the text it was taken
/// of, and a map keyed by event ids is found by `&str` too (`Borrow<str>`).
pub(super) fn hand_over_hash<H: std::hash::Hasher + ?Sized>(state: &mut H, hash: u64) {
    state.write_i128(i128::from(hash));
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn id(text: &str) -> EventId {
        EventId::parse(text).unwrap()
    }

    /// Ids with shared prefixes, short and long, reference-hash shaped and readable.
    fn ids() -> Vec<EventId> {
        let mut all = Vec::new();
        for n in 0..300u32 {
            all.push(id(&format!("$e{n}")));
            all.push(id(&format!("$join-{}", n * 7919 % 1000)));
            let hash = format!("{:043}", u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            all.push(id(&format!("${hash}")));
        }
        all
    }

    #[test]
    fn the_map_answers_as_a_sorted_map_does() {
        let mut map: EventIdMap<usize> = EventIdMap::new();
        let mut sorted = BTreeMap::new();
        for (n, id) in ids().into_iter().enumerate() {
            assert_eq!(map.insert(id.clone(), n), sorted.insert(id, n));
        }
        assert_eq!(map.len(), sorted.len());
        for (n, id) in ids().into_iter().enumerate().step_by(3) {
            assert_eq!(map.remove(&id), sorted.remove(&id), "{id}");
            if n % 2 == 0 {
                assert_eq!(map.insert(id.clone(), 7), sorted.insert(id, 7));
            }
        }
        for id in ids().iter().chain([&EventId::parse("$absent").unwrap()]) {
            assert_eq!(map.get(id), sorted.get(id), "{id}");
            assert_eq!(map.contains_key(id), sorted.contains_key(id), "{id}");
        }
        let kept = sorted.keys().nth(10).unwrap().clone();
        *map.get_mut(&kept).unwrap() = 5555;
        *sorted.get_mut(&kept).unwrap() = 5555;
        let in_order: Vec<_> = sorted.iter().collect();
        assert_eq!(map.sorted(), in_order);
        assert!(map.any(|id, &value| *id == kept && value == 5555));
        assert!(!map.any(|id, _| id.as_str() == "$absent"));
        assert_eq!(format!("{map:?}"), format!("{sorted:?}"));
        map.update_each(|id, value| *value += id.as_str().len());
        sorted.iter_mut().for_each(|(id, value)| *value += id.as_str().len());
        assert_eq!(map.sorted(), sorted.iter().collect::<Vec<_>>());
        let collected: LookupMap<EventId, usize> = sorted.clone().into_iter().collect();
        assert_eq!(collected.sorted(), sorted.iter().collect::<Vec<_>>());
        let (map_copy, sorted_copy) = (map.clone(), sorted.clone());
        assert_eq!(map_copy.into_sorted(), sorted_copy.into_iter().collect::<Vec<_>>());
        let odd = |value: usize| value % 2 == 1;
        let keys: BTreeSet<&EventId> =
            sorted.iter().filter(|(_, v)| odd(**v)).map(|(k, _)| k).collect();
        assert!(!keys.is_empty() && keys.len() < sorted.len());
        let borrowed: LookupMap<&EventId, usize> = sorted.iter().map(|(k, v)| (k, *v)).collect();
        let before = EventId::parse("$held-before").unwrap();
        let mut found = BTreeSet::from([&before]);
        borrowed.insert_keys_where(&mut found, |_, value| odd(*value));
        let mut expected = keys.clone();
        expected.insert(&before);
        assert_eq!(found, expected, "added to what the set held");
        let mut hashed: LookupMap<&EventId, ()> = LookupMap::new();
        hashed.insert(&before, ());
        borrowed.insert_keys_where_hashed(&mut hashed, |_, value| odd(*value));
        borrowed.insert_keys_where_hashed(&mut hashed, |_, value| odd(*value));
        let hashed: Vec<&EventId> = hashed.into_sorted().into_iter().map(|(k, ())| k).collect();
        assert_eq!(hashed, expected.iter().copied().collect::<Vec<_>>(), "the hashed set too");
        let mut kept_odd = map.clone();
        kept_odd.retain(|_, value| odd(*value));
        sorted.retain(|_, value| odd(*value));
        assert_eq!(kept_odd.sorted(), sorted.iter().collect::<Vec<_>>());
        map.clear();
        assert!(map.is_empty() && map.get(&kept).is_none());
        assert_eq!(map.insert(kept.clone(), 1), None);
        assert_eq!(map.sorted(), vec![(&kept, &1)]);
    }

    #[test]
    fn text_keys_are_found_by_borrowed_text() {
        let mut map: LookupMap<String, LookupMap<String, u32>> = LookupMap::new();
        map.get_or_insert_with("m.room.member".to_owned(), LookupMap::new)
            .insert("@a:hs".to_owned(), 1);
        *map.get_or_insert_with("m.room.member".to_owned(), LookupMap::new)
            .get_or_insert_with("@b:hs".to_owned(), || 2) += 10;
        let members = map.get("m.room.member").unwrap();
        assert_eq!((members.get("@a:hs"), members.get("@b:hs")), (Some(&1), Some(&12)));
        assert_eq!(members.get("@c:hs"), None);
        assert!(map.get("m.room.topic").is_none());
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn event_ids_hash_as_their_text_and_are_found_by_it() {
        let mut map: EventIdMap<usize> = EventIdMap::new();
        for (n, id) in ids().into_iter().enumerate() {
            // The kept hash, handed over, is the text's own under the maps' hasher.
            assert_eq!(IdHashing.hash_one(&id), IdHashing.hash_one(id.as_str()), "{id}");
            map.insert(id, n);
        }
        for (n, id) in ids().into_iter().enumerate() {
            // By text, and by a copy of the id that is not the key's allocation.
            assert_eq!(map.get(id.as_str()), Some(&n), "{id}");
            assert_eq!(map.get(&EventId::parse(id.as_str()).unwrap()), Some(&n), "{id}");
        }
        assert_eq!(map.get("$absent"), None);
        // In a key of several parts the kept hash is one piece, consistent with `==`.
        let pairs: LookupMap<(EventId, u32), ()> =
            ids().into_iter().map(|id| ((id, 1), ())).collect();
        assert_eq!(pairs.len(), ids().len());
        assert!(ids().into_iter().all(|id| pairs.contains_key(&(id, 1))));
        assert!(!pairs.contains_key(&(id("$e1"), 2)));
    }

    #[test]
    fn the_hash_is_the_same_in_every_map() {
        let a = IdHashing.hash_one(id("$abc"));
        assert_eq!(a, IdHashing.hash_one(id("$abc")));
        assert_ne!(a, IdHashing.hash_one(id("$abd")));
    }

    #[test]
    fn word_hash_tells_apart_pieces_lengths_and_every_byte() {
        let hash =
            |pieces: &[&[u8]]| pieces.iter().fold(WordHash::new(), |h, p| h.write(p)).finish();
        // Split points, empty pieces and trailing zero bytes all count.
        let splits: [&[&[u8]]; 7] = [
            &[b"ab", b"c"],
            &[b"a", b"bc"],
            &[b"abc"],
            &[b"abc", b""],
            &[b"", b"abc"],
            &[b"abc\0"],
            &[b"abc\0\0\0\0\0"],
        ];
        let mut seen: Vec<u64> = splits.iter().map(|p| hash(p)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), splits.len());
        // Changing any one bit of a 200-byte text, in a whole word or in the remainder,
        // changes the hash.
        let text: Vec<u8> = (0..200u32).map(|i| (i * 7 % 251) as u8).collect();
        let base = hash(&[&text]);
        for at in 0..text.len() {
            for bit in 0..8 {
                let mut changed = text.clone();
                changed[at] ^= 1 << bit;
                assert_ne!(hash(&[&changed]), base, "byte {at} bit {bit}");
            }
        }
    }

    #[test]
    fn bytes_hash_reads_every_byte_at_every_length() {
        // The short forms (first, middle and last bytes; overlapping halves; two overlapping
        // words) and the lanes with and without a tail: each length from 0 to 80 bytes.
        let mut by_length = Vec::new();
        for len in 0..=80usize {
            let text: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let base = bytes_hash(&text);
            by_length.push(base);
            for at in 0..len {
                for bit in 0..8 {
                    let mut changed = text.clone();
                    changed[at] ^= 1 << bit;
                    assert_ne!(bytes_hash(&changed), base, "length {len} byte {at} bit {bit}");
                }
            }
        }
        // A piece and its extensions by zero bytes hash apart.
        let zeros: Vec<u64> = (0..=40).map(|len| bytes_hash(&vec![0u8; len])).collect();
        for hashes in [by_length, zeros] {
            let mut distinct = hashes.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), hashes.len());
        }
    }

    #[test]
    fn bytes_hash_spreads_texts_that_differ_in_a_few_places() {
        // Keys that share all but a few bytes (user ids, server names, numbered event ids)
        // fill a table's buckets at least as well as random values would: 4,096 keys over
        // 4,096 buckets use about 2,589 (all but 4,096/e), by both the low bits (the bucket)
        // and the top seven bits with the low five (the tag a probe compares first). The
        // bound is five standard deviations below.
        let families: [fn(u32) -> String; 4] = [
            |n| format!("@user{n}:server.example.org"),
            |n| format!("s{n}.test"),
            |n| format!("$e{n}"),
            |n| format!("${:043}", n),
        ];
        for family in families {
            let hashes: Vec<u64> = (0..4096).map(|n| bytes_hash(family(n).as_bytes())).collect();
            let low: BTreeSet<u64> = hashes.iter().map(|h| h & 0xfff).collect();
            let tag: BTreeSet<u64> = hashes.iter().map(|h| (h >> 57) << 5 | (h & 0x1f)).collect();
            for used in [low.len(), tag.len()] {
                assert!(used >= 2_450, "{}: {used} of 4096 buckets", family(7));
            }
        }
    }
}
