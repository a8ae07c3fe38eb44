//! A power-levels event's `users` map kept compactly ([`LevelUsers`]), for the events of an
//! `mxsim resolve` input ([`super::Pdu::compact_level_users`]): one copy of each run of
//! entries that several power-levels events share ([`LevelUsersSharer`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::matrix::canonical_json::Object;
use crate::matrix::ids::{self, TextInterner, WordHash};

/// One entry: a user id (a shared copy) and its level.
type Entry = (Arc<str>, i64);

/// One entry of a map being compacted: the user id, its level, and the user id's hash.
type Listed<'a> = (&'a str, i64, u64);

/// A `users` map whose every key is a valid user id and every value an integer, as runs
/// ("chunks") of its entries in key order; equal chunks of different events are one
/// allocation. A room's power-levels events mostly list the same users, one or two
/// entries changed from the last: held as JSON trees, the 1,537 power-levels events of a
/// large input (about 310 users each) were a third of `mxsim resolve`'s peak memory.
///
/// A chunk ends after an entry whose user id hashes to a multiple of
/// [`LevelUsersSharer::BOUNDARY`], or at [`LevelUsersSharer::CHUNK_MAX`] entries, so that
/// where chunks end depends on the users around, not on positions: an entry added or
/// removed changes its own chunk only, and the others stay shared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelUsers {
    /// Non-empty chunks, in key order.
    chunks: Box<[Arc<[Entry]>]>,
}

impl LevelUsers {
    /// The level of `user`, if listed.
    pub fn get(&self, user: &str) -> Option<i64> {
        // The last chunk whose first user is at or before `user`.
        let after = self.chunks.partition_point(|chunk| &*chunk[0].0 <= user);
        let chunk = &self.chunks[after.checked_sub(1)?];
        let at = chunk.binary_search_by(|(listed, _)| (**listed).cmp(user)).ok()?;
        Some(chunk[at].1)
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.chunks.iter().flat_map(|chunk| chunk.iter().map(|(user, level)| (&**user, *level)))
    }

    /// The chunks, for the tests of sharing.
    #[cfg(test)]
    fn chunks(&self) -> &[Arc<[Entry]>] {
        &self.chunks
    }
}

/// Makes [`LevelUsers`] that share user ids (through a [`TextInterner`]) and chunks equal
/// to ones made before. Sharing is an optimisation only: a chunk is compared with at most
/// [`LevelUsersSharer::BUCKET_MAX`] earlier chunks of the same hash, and kept unshared
/// past that, so that input crafted to collide costs a bounded amount of work.
#[derive(Debug, Default)]
pub struct LevelUsersSharer {
    /// Chunks made so far, by the hash of their entries. Only looked up, never iterated
    /// in an order that decides anything.
    chunks: BTreeMap<u64, Vec<Arc<[Entry]>>>,
}

impl LevelUsersSharer {
    /// A chunk ends after a user id whose hash is a multiple of this (16 entries on
    /// average).
    const BOUNDARY: u64 = 16;
    /// Most entries in a chunk.
    const CHUNK_MAX: usize = 64;
    /// Earlier chunks of one hash compared with a new one.
    const BUCKET_MAX: usize = 8;

    pub fn new() -> LevelUsersSharer {
        LevelUsersSharer::default()
    }

    /// `users` as [`LevelUsers`], or `None` when some key is not a valid user id or some
    /// value is not an integer: the auth rules reject such a map (rule 9.3, v12 10.3) and
    /// read it as JSON, so it stays as it is.
    pub fn compact(&mut self, users: &Object, texts: &mut TextInterner) -> Option<LevelUsers> {
        // Each entry with the hash of its user id, which places the chunk boundaries and
        // is what a chunk's hash is made of.
        let mut entries: Vec<Listed<'_>> = Vec::with_capacity(users.len());
        for (user, value) in users {
            let hash = WordHash::new().write(user.as_bytes()).finish();
            entries.push((user.as_str(), as_integer(value)?, hash));
        }
        // The map iterates in key order; sorted here too in case it ever does not.
        if !entries.is_sorted_by(|a, b| a.0 < b.0) {
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        let mut chunks = Vec::new();
        let mut start = 0;
        for (at, (_, _, hash)) in entries.iter().enumerate() {
            let ends = hash % Self::BOUNDARY == 0
                || at + 1 - start == Self::CHUNK_MAX
                || at + 1 == entries.len();
            if ends {
                chunks.push(self.share(&entries[start..=at], texts)?);
                start = at + 1;
            }
        }
        Some(LevelUsers { chunks: chunks.into_boxed_slice() })
    }

    /// The shared chunk of `entries`, or `None` when it is a new one and some user id in
    /// it is not valid.
    fn share(&mut self, entries: &[Listed<'_>], texts: &mut TextInterner) -> Option<Arc<[Entry]>> {
        let hash = entries
            .iter()
            .fold(WordHash::new(), |hash, (_, level, user_hash)| {
                hash.write(&user_hash.to_le_bytes()).write(&level.to_le_bytes())
            })
            .finish();
        let same = |chunk: &&Arc<[Entry]>| {
            chunk.len() == entries.len()
                && chunk.iter().zip(entries).all(|((a, x), (b, y, _))| **a == **b && x == y)
        };
        if let Some(shared) = self.chunks.get(&hash).and_then(|bucket| bucket.iter().find(same)) {
            return Some(Arc::clone(shared));
        }
        // A chunk equal to one made before holds user ids checked then; a new one's are
        // checked here (most of a large input's entries are in shared chunks).
        if entries.iter().any(|(user, _, _)| ids::parse_user_id(user).is_err()) {
            return None;
        }
        let chunk: Arc<[Entry]> =
            entries.iter().map(|(user, level, _)| (texts.share(user), *level)).collect();
        let bucket = self.chunks.entry(hash).or_default();
        if bucket.len() < Self::BUCKET_MAX {
            bucket.push(Arc::clone(&chunk));
        }
        Some(chunk)
    }
}

/// `value` as an integer level. Canonical JSON (which every input is read as) makes every
/// number an integer in [-(2^53)+1, 2^53-1], so `as_i64` is exact here. This and
/// `ids::parse_user_id` must accept exactly what the auth rules' rule 9.3 (v12 10.3)
/// accepts (`as_level` and `check_users_map` in `matrix::auth::power_levels`): a kept map
/// skips that rule. The auth tests decide every case both ways (`Room::check_pdu`).
fn as_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Object {
        match value {
            Value::Object(object) => object,
            _ => panic!("an object"),
        }
    }

    /// `n` users of one server, with levels.
    fn users(n: usize, level: impl Fn(usize) -> i64) -> Object {
        (0..n).map(|i| (format!("@user{i:04}:s.test"), Value::from(level(i)))).collect()
    }

    #[test]
    fn reads_as_the_map_it_was_made_from() {
        let mut sharer = LevelUsersSharer::new();
        let mut texts = TextInterner::new();
        let map = users(300, |i| (i as i64 * 7) % 101 - 50);
        let compact = sharer.compact(&map, &mut texts).expect("every entry is valid");
        let listed: Vec<(&str, i64)> = compact.iter().collect();
        let expected: Vec<(&str, i64)> =
            map.iter().map(|(user, level)| (user.as_str(), level.as_i64().unwrap())).collect();
        assert_eq!(listed, expected);
        for (user, level) in &map {
            assert_eq!(compact.get(user), level.as_i64(), "{user}");
        }
        // Around, between and after the listed users.
        for absent in ["@a:s.test", "@user0000:s.tesu", "@user0150", "@zz:s.test", ""] {
            assert_eq!(compact.get(absent), None, "{absent}");
        }
        assert!(compact.chunks().len() > 5, "several chunks: {}", compact.chunks().len());
        assert!(compact.chunks().iter().all(|c| !c.is_empty() && c.len() <= 64));
    }

    #[test]
    fn a_run_without_a_boundary_is_cut_at_the_most_entries_a_chunk_holds() {
        // User ids none of which ends a chunk by its hash.
        let no_boundary = (0..)
            .map(|i| format!("@u{i:05}:s.test"))
            .filter(|user| {
                WordHash::new().write(user.as_bytes()).finish() % LevelUsersSharer::BOUNDARY != 0
            })
            .take(200);
        let map: Object = no_boundary.map(|user| (user, Value::from(1))).collect();
        let compact = LevelUsersSharer::new().compact(&map, &mut TextInterner::new()).unwrap();
        let sizes: Vec<usize> = compact.chunks().iter().map(|chunk| chunk.len()).collect();
        assert_eq!(sizes, [64, 64, 64, 8]);
        assert!(map.keys().all(|user| compact.get(user) == Some(1)));
    }

    #[test]
    fn an_empty_map_has_no_entries() {
        let compact = LevelUsersSharer::new().compact(&Object::new(), &mut TextInterner::new());
        let compact = compact.expect("an empty map is valid");
        assert_eq!(compact.iter().count(), 0);
        assert_eq!(compact.get("@a:s.test"), None);
    }

    #[test]
    fn maps_the_rules_reject_stay_as_they_are() {
        let mut sharer = LevelUsersSharer::new();
        let mut texts = TextInterner::new();
        for bad in [
            json!({"@a:s.test": 1, "bob": 1}),
            json!({"@a:s.test": "1"}),
            json!({"@a:s.test": 1.5}),
            json!({"@a:s.test": null}),
            json!({"@a:s.test": [1]}),
        ] {
            assert_eq!(sharer.compact(&object(bad.clone()), &mut texts), None, "{bad}");
        }
        // An invalid id among entries whose other chunks are shared with a valid map.
        assert!(sharer.compact(&users(300, |_| 0), &mut texts).is_some());
        for bad in ["@user0100", "user0200:s.test", "@user0299:s.test:x:"] {
            let mut map = users(300, |_| 0);
            map.insert(bad.to_owned(), Value::from(1));
            assert_eq!(sharer.compact(&map, &mut texts), None, "{bad}");
        }
    }

    #[test]
    fn a_changed_entry_leaves_the_other_chunks_shared() {
        let mut sharer = LevelUsersSharer::new();
        let mut texts = TextInterner::new();
        let first = sharer.compact(&users(400, |_| 0), &mut texts).unwrap();
        // One user's level changed, one user added near the start: each touches the chunk
        // it falls in (and an addition may end a chunk early), no other.
        let mut changed = users(400, |_| 0);
        changed.insert("@user0300:s.test".to_owned(), Value::from(50));
        changed.insert("@user0000a:s.test".to_owned(), Value::from(10));
        let second = sharer.compact(&changed, &mut texts).unwrap();
        let shared = |chunk: &Arc<[Entry]>| first.chunks().iter().any(|c| Arc::ptr_eq(c, chunk));
        let unshared = second.chunks().iter().filter(|c| !shared(c)).count();
        assert!(unshared <= 4, "{unshared} of {} chunks unshared", second.chunks().len());
        assert!(second.chunks().len() > 10);
        assert_eq!(second.get("@user0300:s.test"), Some(50));
        assert_eq!(second.get("@user0000a:s.test"), Some(10));
        assert_eq!(first.get("@user0300:s.test"), Some(0));
        // And the user ids are shared copies.
        let (a, b) = (&first.chunks()[0][0].0, &second.chunks()[0][0].0);
        assert!(Arc::ptr_eq(a, b));
    }

    #[test]
    fn a_full_bucket_stops_sharing_but_not_reading() {
        let mut sharer = LevelUsersSharer::new();
        let mut texts = TextInterner::new();
        // Chunks of one hash, as colliding input would make them: placed by hand.
        let one: Arc<[Entry]> = Arc::from(vec![(Arc::from("@x:s.test"), 1)]);
        let user_hash = WordHash::new().write(b"@x:s.test").finish();
        let hash = WordHash::new().write(&user_hash.to_le_bytes()).write(&1i64.to_le_bytes());
        let decoys: Vec<Arc<[Entry]>> = (0..LevelUsersSharer::BUCKET_MAX)
            .map(|i| Arc::from(vec![(Arc::from(format!("@d{i}:s.test")), 0)]))
            .collect();
        sharer.chunks.insert(hash.finish(), decoys);
        let made = sharer.compact(&object(json!({"@x:s.test": 1})), &mut texts).unwrap();
        assert_eq!(made.get("@x:s.test"), Some(1));
        assert_eq!(made.chunks()[0], one);
        assert_eq!(sharer.chunks[&hash.finish()].len(), LevelUsersSharer::BUCKET_MAX);
        let again = sharer.compact(&object(json!({"@x:s.test": 1})), &mut texts).unwrap();
        assert!(!Arc::ptr_eq(&made.chunks()[0], &again.chunks()[0]), "not shared past the bound");
    }

    proptest! {
        #[test]
        fn any_valid_map_reads_alike(
            entries in proptest::collection::btree_map("@[a-e]{1,3}:[xy]\\.test", -3i64..3, 0..120),
            probes in proptest::collection::vec("@[a-e]{1,3}:[xy]\\.test", 0..20),
        ) {
            let map: Object = entries.iter().map(|(u, l)| (u.clone(), Value::from(*l))).collect();
            let mut sharer = LevelUsersSharer::new();
            let compact = sharer.compact(&map, &mut TextInterner::new()).unwrap();
            let listed: Vec<(String, i64)> =
                compact.iter().map(|(u, l)| (u.to_owned(), l)).collect();
            let expected: Vec<(String, i64)> = entries.clone().into_iter().collect();
            prop_assert_eq!(listed, expected);
            for probe in probes {
                prop_assert_eq!(compact.get(&probe), entries.get(&probe).copied());
            }
        }
    }
}
