//! Byte corruption of payloads. The network knows nothing of what it carries, so the
//! payload type says how to damage itself: [`Corruptible::corrupt`] changes exactly one
//! byte, chosen with the network's generator, and reports which.

use serde::{Deserialize, Serialize};

use crate::stdx::Prng;

/// One changed byte: where, and what it was and became. `before != after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corruption {
    pub offset: u64,
    pub before: u8,
    pub after: u8,
}

/// A payload the network can damage.
pub trait Corruptible {
    /// Changes exactly one byte of the payload's bytes, chosen with `prng`, and says which;
    /// `None` (and no change) if the payload has no bytes to damage.
    fn corrupt(&mut self, prng: &mut Prng) -> Option<Corruption>;
}

/// Draws one corruption of a byte buffer in place. Draw order (part of the determinism
/// contract): the offset, then a non-zero XOR mask.
pub fn corrupt_bytes(bytes: &mut [u8], prng: &mut Prng) -> Option<Corruption> {
    corrupt_split(bytes, &mut [], prng)
}

/// [`corrupt_bytes`] of the bytes of `first` followed by those of `second`, for a payload
/// kept in two pieces: the same draws, the same offset into the whole, the same byte
/// changed, without joining the pieces.
pub fn corrupt_split(first: &mut [u8], second: &mut [u8], prng: &mut Prng) -> Option<Corruption> {
    let len = first.len() + second.len();
    if len == 0 {
        return None;
    }
    let offset = prng.index(len);
    let mask = u8::try_from(prng.range_inclusive(1, 255)).expect("mask fits a byte");
    let byte = match offset.checked_sub(first.len()) {
        None => &mut first[offset],
        Some(in_second) => &mut second[in_second],
    };
    let before = *byte;
    let after = before ^ mask;
    assert_ne!(before, after, "a non-zero mask changes the byte");
    *byte = after;
    Some(Corruption { offset: u64::try_from(offset).expect("offset fits u64"), before, after })
}

impl Corruptible for Vec<u8> {
    fn corrupt(&mut self, prng: &mut Prng) -> Option<Corruption> {
        corrupt_bytes(self, prng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruption_changes_exactly_one_byte() {
        let mut prng = Prng::from_seed(11);
        for length in 1..50usize {
            let original: Vec<u8> = (0..length).map(|i| (i * 7) as u8).collect();
            let mut damaged = original.clone();
            let corruption = damaged.corrupt(&mut prng).unwrap();
            let changed: Vec<usize> = (0..length).filter(|&i| original[i] != damaged[i]).collect();
            let offset = usize::try_from(corruption.offset).unwrap();
            assert_eq!(changed, vec![offset]);
            assert_eq!(original[offset], corruption.before);
            assert_eq!(damaged[offset], corruption.after);
        }
        assert_eq!(Vec::<u8>::new().corrupt(&mut prng), None);
    }

    #[test]
    fn a_payload_in_two_pieces_is_damaged_as_the_whole_would_be() {
        for length in 0..40usize {
            let whole: Vec<u8> = (0..length).map(|i| (i * 13 + 1) as u8).collect();
            for split in 0..=length {
                for seed in 0..8 {
                    let mut joined = whole.clone();
                    let expected = corrupt_bytes(&mut joined, &mut Prng::from_seed(seed));
                    let (mut first, mut second) =
                        (whole[..split].to_vec(), whole[split..].to_vec());
                    let mut prng = Prng::from_seed(seed);
                    let got = corrupt_split(&mut first, &mut second, &mut prng);
                    assert_eq!(got, expected, "length {length}, split {split}, seed {seed}");
                    first.extend_from_slice(&second);
                    assert_eq!(first, joined, "length {length}, split {split}, seed {seed}");
                    // The same draws: both generators are at the same place afterwards.
                    let mut after_whole = Prng::from_seed(seed);
                    corrupt_bytes(&mut whole.clone(), &mut after_whole);
                    assert_eq!(prng.index(1 << 20), after_whole.index(1 << 20));
                }
            }
        }
    }
}
