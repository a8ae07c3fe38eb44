//! Fixed hashes: 64-bit FNV-1a, well known, for naming PRNG streams; and [`WordHash`], a
//! word-at-a-time mix eight times cheaper per byte, for filters whose every hit is
//! confirmed. Neither is for anything an adversary chooses to collide with.

/// FNV-1a over bytes written in pieces: `Fnv1a::new().write(a).write(b).finish()` is the
/// hash of `a` followed by `b`.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(u64);

impl Fnv1a {
    pub const fn new() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    pub fn write(mut self, bytes: &[u8]) -> Fnv1a {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a::new()
    }
}

/// The FNV-1a hash of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    Fnv1a::new().write(bytes).finish()
}

/// A hash of byte strings written in pieces, eight bytes at a time: for hash filters whose
/// every hit is confirmed by comparing the keys, where FNV-1a's one multiply per byte
/// showed in profiles (a PDU's 192-byte tail, state keys). Each piece's length is mixed in
/// first, so `("ab", "c")` and `("a", "bc")` hash apart. Not a published function: its
/// values are only ever compared with each other within one run.
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
        let mix = |hash: u64, word: u64| {
            let hash = (hash ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            hash ^ (hash >> 29)
        };
        let mut hash = mix(self.0, bytes.len() as u64);
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            hash = mix(hash, u64::from_le_bytes(word.try_into().expect("eight bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            hash = mix(hash, u64::from_le_bytes(word));
        }
        WordHash(hash)
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_test_vectors_hash_as_published() {
        // From the FNV reference test suite (64-bit FNV-1a).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(Fnv1a::new().write(b"foo").write(b"bar").finish(), fnv1a64(b"foobar"));
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
        // Writing in pieces is deterministic and differs from FNV-1a's value.
        assert_eq!(hash(&[b"foo", b"bar"]), hash(&[b"foo", b"bar"]));
        assert_ne!(hash(&[b"foobar"]), fnv1a64(b"foobar"));
    }
}
