//! Bytes eight at a time: the word tests that the JSON scanner and the id checks share.
//!
//! A `u64` read from eight bytes (either byte order) is tested for bytes of a value with
//! the classic "has a zero byte" trick: `(w - 0x01…01) & !w & 0x80…80` sets the high bit
//! of the lowest zero byte and of no byte below it (bits above the first zero byte may be
//! set wrongly, so only "is there one" and "where is the lowest" are read from it).
//!
//! Also equality of short texts in words ([`same_text`]): `a == b` on two strings of the
//! same length is a call to `memcmp`, whose entry costs more than comparing the few bytes
//! of a state key or an event type; the auth rules and the state lookups ask such
//! questions for every event a server receives, and `memcmp` was a seventh of a
//! 100-server run's samples.

/// `0x01` in every byte.
pub(crate) const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
/// `0x80` in every byte.
pub(crate) const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// The first eight bytes of `bytes` as a little-endian word: the form every word test here
/// reads (the lowest flag is then the first byte). Panics on fewer than eight bytes,
/// which every caller has ruled out.
#[inline(always)]
pub(crate) fn le_word(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(*bytes.first_chunk::<8>().expect("eight bytes"))
}

/// Flags the bytes of `word` that are zero (see the module doc for which flags hold).
#[inline(always)]
pub(crate) fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// Flags the bytes of `word` equal to `byte`, as [`zero_bytes`] does.
#[inline(always)]
pub(crate) fn bytes_equal(word: u64, byte: u8) -> u64 {
    zero_bytes(word ^ (ONES * u64::from(byte)))
}

/// Flags every byte of `word` equal to `byte`, and no other: unlike [`bytes_equal`], exact
/// above the first match too (no carry crosses from one byte into the next), so that the
/// flags can be taken one by one.
#[inline(always)]
pub(crate) fn exact_bytes_equal(word: u64, byte: u8) -> u64 {
    const LOW7: u64 = !HIGHS;
    let x = word ^ (ONES * u64::from(byte));
    // A byte's high bit ends set exactly when all eight of its bits are clear: adding 0x7f
    // to its low seven bits carries into the high bit unless they are zero.
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// Flags the bytes of `word` below `bound` (at most 0x80), as [`zero_bytes`] does.
#[inline(always)]
pub(crate) fn bytes_below(word: u64, bound: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(bound)) & !word & HIGHS
}

/// Whether `bytes` holds a zero byte.
pub(crate) fn has_zero_byte(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    words.any(|word| zero_bytes(le_word(word)) != 0) || words.remainder().contains(&0)
}

/// Whether `a` and `b` are the same text. Lengths first; up to 16 bytes in at most two
/// overlapping eight-byte words per side; longer texts by their first word, then whole.
#[inline]
pub(crate) fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().expect("8"));
    if word(a, 0) != word(b, 0) {
        return false;
    }
    if n <= 16 {
        return word(a, n - 8) == word(b, n - 8);
    }
    a[8..] == b[8..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_byte_is_found_at_every_position() {
        for len in 0..40 {
            let clean = vec![b'a'; len];
            assert!(!has_zero_byte(&clean), "{len}");
            for at in 0..len {
                let mut bytes = clean.clone();
                bytes[at] = 0;
                assert!(has_zero_byte(&bytes), "{len} {at}");
                // Bytes next to zero in value, and high bytes, are not zero.
                for other in [1u8, 0x80, 0xff] {
                    bytes[at] = other;
                    assert!(!has_zero_byte(&bytes), "{len} {at} {other}");
                }
            }
        }
    }

    #[test]
    fn the_lowest_flag_is_the_first_match_in_little_endian_order() {
        let samples: [&[u8; 8]; 4] = [
            b"abcdefgh",
            b"a\"c\\e\x1fg\"",
            b"\x00\x00\x00\x00\x00\x00\x00\x00",
            b"\x7f\x80\x1f\x20\x21\xff\x01\x22",
        ];
        for sample in samples {
            let word = u64::from_le_bytes(*sample);
            for byte in [0u8, b'"', b'\\', 0x1f, 0x20, 0x80, 0xff] {
                let first = sample.iter().position(|&b| b == byte);
                let flags = bytes_equal(word, byte);
                assert_eq!(first, (flags != 0).then(|| flags.trailing_zeros() as usize / 8));
            }
            let first_below = sample.iter().position(|&b| b < 0x20);
            let flags = bytes_below(word, 0x20);
            assert_eq!(first_below, (flags != 0).then(|| flags.trailing_zeros() as usize / 8));
        }
    }

    #[test]
    fn exact_flags_are_every_equal_byte_and_no_other() {
        // Every byte value against every sought value, at each place, among neighbours
        // that make the first-match test misfire (a match, then the byte one above it).
        for sought in [0u8, b'"', b'\\', b'{', 0x7f, 0x80, 0xff] {
            for byte in 0..=255u8 {
                for at in 0..8 {
                    let mut bytes = [sought, sought.wrapping_add(1), 0, 0xff, 1, b'a', 0x80, 0];
                    bytes[at] = byte;
                    let flags = exact_bytes_equal(u64::from_le_bytes(bytes), sought);
                    for (i, &b) in bytes.iter().enumerate() {
                        let flagged = flags >> (i * 8) & 0xff;
                        assert_eq!(
                            flagged,
                            if b == sought { 0x80 } else { 0 },
                            "{bytes:?} {sought}"
                        );
                    }
                }
            }
        }
    }

    /// Agrees with `==` for every length up to past two words, with texts that differ in
    /// one byte at any position (the small alphabet makes equal texts common too).
    #[test]
    fn same_text_is_equality() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        runner
            .run(&("[ab\u{e9}]{0,20}", "[ab\u{e9}]{0,20}"), |(a, b)| {
                prop_assert_eq!(same_text(&a, &b), a == b);
                prop_assert!(same_text(&a, &a.clone()));
                Ok(())
            })
            .unwrap();
        for n in 0..40 {
            let a: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same_text(&a, &a.clone()));
            for at in 0..n {
                let mut b = a.clone().into_bytes();
                b[at] = b'Z';
                let b = String::from_utf8(b).unwrap();
                assert!(!same_text(&a, &b), "{a} {b}");
            }
            assert!(!same_text(&a, &format!("{a}a")));
        }
    }
}
