//! [`TextInterner`]: one shared copy of each distinct short text (a sender, an event type,
//! a state key, a room id) among the events of one `mxsim resolve` input.

use std::sync::Arc;

use super::id_map::lookup_hash;

/// Hands out one shared copy of each distinct text: the events of a large input repeat a
/// few hundred senders and state keys, a dozen event types and one room id, and each
/// event's own copy of its four texts was a heap block of its own (room version 12 at
/// 30,000 conflicted events: 46,380 events, some 185,000 blocks).
///
/// [`super::IdInterner`] keeps event ids' texts in one. Open addressing with linear probing
/// over the text's lookup hash (the maps' hash of a `str`, which an event id keeps); only
/// looked up, never iterated, so its order decides nothing.
/// Sharing is an optimisation only (a shared copy reads as any other): a text whose probe
/// runs longer than [`TextInterner::PROBES_MAX`] slots is returned as a copy of its own, so
/// that texts crafted to collide cost a bounded amount of work each.
#[derive(Debug, Default)]
pub struct TextInterner {
    /// Empty, or a power of two long, at most half full: each text with its hash.
    slots: Vec<Option<(u64, Arc<str>)>>,
    len: usize,
}

impl TextInterner {
    /// Probes before giving up on sharing a text.
    pub const PROBES_MAX: usize = 32;

    pub fn new() -> TextInterner {
        TextInterner::default()
    }

    /// An interner that holds `texts` distinct texts before it grows.
    #[cfg(test)]
    pub(super) fn with_capacity(texts: usize) -> TextInterner {
        TextInterner { slots: vec![None; (2 * texts).next_power_of_two()], len: 0 }
    }

    /// Distinct texts held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Places in the table.
    #[cfg(test)]
    pub(super) fn slots_len(&self) -> usize {
        self.slots.len()
    }

    /// The shared copy of `text`: the first copy handed out for it.
    pub fn share(&mut self, text: &str) -> Arc<str> {
        self.share_hashed(text, lookup_hash(text))
    }

    /// The shared copy of `text`, whose [`lookup_hash`] is `hash`, if it has one.
    pub(super) fn shared(&self, text: &str, hash: u64) -> Option<Arc<str>> {
        match self.probe(text, hash) {
            Probe::Found(shared) => Some(shared),
            Probe::Free(_) | Probe::Exhausted => None,
        }
    }

    /// [`TextInterner::share`] for a text whose [`lookup_hash`] is `hash`.
    pub(super) fn share_hashed(&mut self, text: &str, hash: u64) -> Arc<str> {
        if 2 * (self.len + 1) > self.slots.len() {
            self.grow();
        }
        match self.probe(text, hash) {
            Probe::Found(shared) => shared,
            Probe::Free(slot) => {
                let shared: Arc<str> = Arc::from(text);
                self.slots[slot] = Some((hash, Arc::clone(&shared)));
                self.len += 1;
                shared
            }
            Probe::Exhausted => Arc::from(text),
        }
    }

    /// Walks the slots from `hash`'s for at most [`TextInterner::PROBES_MAX`] of them: the
    /// one place the probe's bound is kept. A slot that keeps another hash is passed
    /// without reading its text.
    fn probe(&self, text: &str, hash: u64) -> Probe {
        if self.slots.is_empty() {
            return Probe::Exhausted;
        }
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        for _ in 0..Self::PROBES_MAX {
            match &self.slots[slot] {
                None => return Probe::Free(slot),
                Some((kept, shared)) if *kept == hash && **shared == *text => {
                    return Probe::Found(Arc::clone(shared));
                }
                Some(_) => slot = (slot + 1) & mask,
            }
        }
        Probe::Exhausted
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(64);
        let old = std::mem::replace(&mut self.slots, vec![None; size]);
        let mask = size - 1;
        for (hash, text) in old.into_iter().flatten() {
            let mut slot = hash as usize & mask;
            // The table is at most half full, so every probe ends.
            while self.slots[slot].is_some() {
                slot = (slot + 1) & mask;
            }
            self.slots[slot] = Some((hash, text));
        }
    }
}

/// Where a probe ended.
enum Probe {
    /// At the text's shared copy.
    Found(Arc<str>),
    /// At an empty slot, where the text would go.
    Free(usize),
    /// Past the bound, or in an empty table, without finding either.
    Exhausted,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_one_copy_and_others_keep_their_own() {
        let mut texts = TextInterner::new();
        let first = texts.share("@alice:a.test");
        let again = texts.share(&String::from("@alice:a.test"));
        assert!(Arc::ptr_eq(&first, &again));
        let other = texts.share("@bob:a.test");
        assert_eq!(&*other, "@bob:a.test");
        assert!(!Arc::ptr_eq(&first, &other));
        // Past the table's first growths, every text still finds its first copy.
        let made: Vec<Arc<str>> = (0..1000).map(|i| texts.share(&format!("key{i}"))).collect();
        for (i, shared) in made.iter().enumerate() {
            let found = texts.share(&format!("key{i}"));
            assert!(Arc::ptr_eq(shared, &found), "key{i}");
            assert_eq!(&*found, format!("key{i}"));
        }
        assert!(Arc::ptr_eq(&first, &texts.share("@alice:a.test")));
        assert_eq!(texts.len, 1002);
    }

    #[test]
    fn texts_past_the_probe_limit_are_copies_of_their_own() {
        // Hashes chosen to start in one slot of every table up to 1,024 slots (the texts are
        // real; the hashes are passed as given, which is how the table sees them).
        let mut texts = TextInterner::new();
        let hash = 5u64;
        let shared: Vec<Arc<str>> = (0..TextInterner::PROBES_MAX)
            .map(|i| texts.share_hashed(&format!("t{i}"), hash + 1024 * i as u64))
            .collect();
        assert_eq!(texts.len, TextInterner::PROBES_MAX);
        for (i, copy) in shared.iter().enumerate() {
            let found = texts.share_hashed(&format!("t{i}"), hash + 1024 * i as u64);
            assert!(Arc::ptr_eq(copy, &found), "t{i} is shared");
        }
        // One more in the same run of slots: probing stops at the limit and hands out a
        // copy of its own, keeping nothing.
        let late = texts.share_hashed("late", hash);
        assert_eq!(&*late, "late");
        assert_eq!(texts.len, TextInterner::PROBES_MAX);
        assert!(!Arc::ptr_eq(&late, &texts.share_hashed("late", hash)));
    }
}
