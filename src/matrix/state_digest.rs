//! A name for a room state that is kept up to date as the state changes, instead of
//! hashing the whole state again after every event: the trace's `state_hash`
//! (docs/trace.md).
//!
//! The digest of a state is the sum, modulo 2^128, of one value per entry: the first 16
//! bytes, read little-endian, of the SHA-256 of the entry's `type`, `state_key` and event
//! id, each followed by a zero byte (an additive multiset hash, AdHash). Setting, replacing
//! or removing an entry adds or subtracts its value, so a new state's digest comes from
//! its parent's and the keys that changed. Its name is the first 12 bytes of the SHA-256 of
//! the digest's 16 little-endian bytes, in unpadded standard base64 (16 characters).
//!
//! The name tells states apart in traces and reports; it is not meant to resist someone
//! choosing event ids to collide (nothing in a run decides on it).

use crate::matrix::crypto;
use crate::matrix::ids::LookupMap;

/// The digest of a state: the sum of its entries' values modulo 2^128.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct StateDigest(u128);

impl StateDigest {
    /// The digest of the empty state.
    pub const EMPTY: StateDigest = StateDigest(0);

    /// The value of one entry.
    fn value(event_type: &str, state_key: &str, event_id: &str) -> u128 {
        // The three parts, each followed by a zero byte, hashed as they are given: a server
        // that stores a state fetched whole adds every entry of it, and gathering the bytes
        // into a vector first was an allocation per entry.
        let mut stream = crypto::Sha256Stream::new();
        for part in [event_type, state_key, event_id] {
            stream.update(part.as_bytes());
            stream.update(&[0]);
        }
        let hash = stream.finish();
        let mut first = [0u8; 16];
        first.copy_from_slice(&hash[..16]);
        u128::from_le_bytes(first)
    }

    /// The digest with one entry added.
    pub fn add(self, event_type: &str, state_key: &str, event_id: &str) -> StateDigest {
        StateDigest(self.0.wrapping_add(StateDigest::value(event_type, state_key, event_id)))
    }

    /// The digest with one entry (present in the state) taken away.
    pub fn remove(self, event_type: &str, state_key: &str, event_id: &str) -> StateDigest {
        StateDigest(self.0.wrapping_sub(StateDigest::value(event_type, state_key, event_id)))
    }

    /// The digest of a whole state, given as (`type`, `state_key`, event id) entries.
    pub fn of<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) -> StateDigest {
        entries.into_iter().fold(StateDigest::EMPTY, |d, (t, k, id)| d.add(t, k, id))
    }

    /// The state's name in traces: 16 characters of unpadded base64.
    pub fn name(self) -> String {
        crypto::base64_encode(&crypto::sha256(&self.0.to_le_bytes())[..12])
    }
}

/// Entry values once computed, by (`type`, `state_key`, event id): for a reader that
/// digests many states sharing most of their entries (a report hashing the replayed state
/// after each event, a hundred states of a hundred members at a hundred servers), each
/// distinct entry costs one SHA-256 and every other a lookup.
#[derive(Default)]
pub struct EntryValues<'a>(LookupMap<(&'a str, &'a str, &'a str), u128>);

impl<'a> EntryValues<'a> {
    /// [`StateDigest::of`] of `entries`, each entry's value taken from here when known.
    pub fn digest(
        &mut self,
        entries: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> StateDigest {
        entries.into_iter().fold(StateDigest::EMPTY, |digest, entry @ (t, k, id)| {
            let value = *self.0.get_or_insert_with(entry, || StateDigest::value(t, k, id));
            StateDigest(digest.0.wrapping_add(value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_an_independent_computation() {
        // Expected values from Python's hashlib and base64, following the module doc.
        let two = [("m.room.create", "", "$a"), ("m.room.member", "@u:hs1", "$b")];
        assert_eq!(StateDigest::of(two).name(), "KhuO8VRbYOnbEErv");
        assert_eq!(StateDigest::EMPTY.name(), "N0cI//dxndWXnsh1");
        assert_eq!(StateDigest::of([("m.room.create", "", "$a")]).name(), "te17jDzWCCVDhY7Z");
    }

    #[test]
    fn remembered_entry_values_give_the_same_digests() {
        let two = [("m.room.create", "", "$a"), ("m.room.member", "@u:hs1", "$b")];
        let other = [("m.room.create", "", "$a"), ("m.room.member", "@u:hs1", "$c")];
        // Entries that differ only in where one part ends and the next begins.
        let moved = [("m.room.create", "", "$a"), ("m.room.member", "@u:hs", "1$b")];
        let mut values = EntryValues::default();
        for _ in 0..2 {
            assert_eq!(values.digest(two).name(), "KhuO8VRbYOnbEErv");
            assert_eq!(values.digest(two), StateDigest::of(two));
            assert_eq!(values.digest(other), StateDigest::of(other));
            assert_eq!(values.digest(moved), StateDigest::of(moved));
            assert_eq!(values.digest([]), StateDigest::EMPTY);
        }
        assert_ne!(values.digest(two), values.digest(other));
        assert_ne!(values.digest(two), values.digest(moved));
    }

    #[test]
    fn changes_move_the_digest_as_a_fresh_computation_would() {
        let base = StateDigest::of([("m.room.create", "", "$a"), ("m.room.name", "", "$n1")]);
        // Replace the name, add a member, in any order: the same as computing afresh.
        let moved = base.add("m.room.member", "@u:hs1", "$m").remove("m.room.name", "", "$n1").add(
            "m.room.name",
            "",
            "$n2",
        );
        let fresh = StateDigest::of([
            ("m.room.member", "@u:hs1", "$m"),
            ("m.room.create", "", "$a"),
            ("m.room.name", "", "$n2"),
        ]);
        assert_eq!(moved, fresh);
        assert_ne!(moved, base);
        assert_eq!(
            moved.remove("m.room.member", "@u:hs1", "$m").remove("m.room.name", "", "$n2").add(
                "m.room.name",
                "",
                "$n1"
            ),
            base
        );
    }
}
