//! The signatures this thread made since it last forgot them, by the exact bytes signed,
//! so that a verification of one of them needs no curve arithmetic.
//!
//! Ed25519 signing is deterministic (RFC 8032 §5.1.6): a key signs given bytes with one
//! signature only, and ed25519-dalek's strict verification accepts every signature an
//! honest signer makes: `s` is always reduced, `R` always decompresses, the public key of
//! a seed's key is never of small order, and `R` is with a chance below 2^-252. So when the
//! key, the bytes and the signature asked about are, byte for byte, a key of this thread,
//! bytes it signed and the signature it made of them, the answer of a verification is
//! known: it verifies. Anything else (other bytes, another key, a signature changed in one
//! bit, a key of which only the public half is known here) is verified in full. A run's
//! checks verify every event its servers created, which those servers signed moments
//! before on the same thread: that verification was 3.6% of a 100-server run's CPU and
//! 29% of a `partition-heal` seed's in `mxsim sweep`.
//!
//! The simulator forgets its thread's signatures as each run begins ([`forget`]), so a
//! thread keeps at most one run's, and no more than [`GENERATION_BYTES`] twice: when the
//! newer of two generations is full, the older is dropped. A verification whose signature
//! has been dropped is verified in full. Nothing decided or recorded depends on what is
//! kept: the answers are those of the computation, only sooner.

use std::cell::RefCell;
use std::collections::BTreeMap;

/// What one generation may hold: its messages' bytes, and [`ENTRY_BYTES`] for each entry.
pub(super) const GENERATION_BYTES: usize = 1 << 20;
/// What an entry holds besides its message: key, signature and its share of the map's
/// nodes.
const ENTRY_BYTES: usize = 160;

pub(super) type Public = [u8; 32];
pub(super) type Signature = [u8; 64];

thread_local! {
    static MADE: RefCell<Generations> = RefCell::new(Generations::default());
}

/// Notes that the key of `public` signed `message` with `signature`.
pub(super) fn note(public: &Public, message: &[u8], signature: &Signature) {
    // A thread that is ending keeps nothing; its signatures are made all the same.
    let _ = MADE.try_with(|made| made.borrow_mut().keep(message, (*public, *signature)));
}

/// Whether the key of `public` signed `message` with `signature` on this thread since it
/// last forgot (and the signature is still kept).
pub(super) fn was_made(public: &Public, message: &[u8], signature: &Signature) -> bool {
    let entry = (*public, *signature);
    MADE.try_with(|made| made.borrow().holds(message, &entry)).unwrap_or(false)
}

/// Forgets every signature this thread made.
pub(super) fn forget() {
    let _ = MADE.try_with(|made| *made.borrow_mut() = Generations::default());
}

/// The bytes kept, as the bound counts them.
pub(super) fn held_bytes() -> usize {
    MADE.try_with(|made| {
        let made = made.borrow();
        made.newer.bytes + made.older.bytes
    })
    .unwrap_or(0)
}

#[derive(Default)]
struct Generations {
    newer: Generation,
    older: Generation,
}

/// By message, each (public key, signature) that signed it.
#[derive(Default)]
struct Generation {
    by_message: BTreeMap<Box<[u8]>, Vec<(Public, Signature)>>,
    bytes: usize,
}

impl Generation {
    fn holds(&self, message: &[u8], entry: &(Public, Signature)) -> bool {
        self.by_message.get(message).is_some_and(|made| made.contains(entry))
    }
}

impl Generations {
    fn holds(&self, message: &[u8], entry: &(Public, Signature)) -> bool {
        self.newer.holds(message, entry) || self.older.holds(message, entry)
    }

    /// Keeps `entry` for `message` in the newer generation, which first becomes the older
    /// if it has no room left. A message too large for a generation is not kept.
    fn keep(&mut self, message: &[u8], entry: (Public, Signature)) {
        let cost = message.len() + ENTRY_BYTES;
        if cost > GENERATION_BYTES || self.newer.holds(message, &entry) {
            return;
        }
        if self.newer.bytes + cost > GENERATION_BYTES {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.bytes += cost;
        match self.newer.by_message.get_mut(message) {
            Some(made) => made.push(entry),
            None => {
                self.newer.by_message.insert(Box::from(message), vec![entry]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::crypto::{SigningKey, base64_decode, base64_encode};

    #[test]
    fn a_signature_made_here_is_known_to_verify_and_nothing_else_is() {
        forget();
        let key = SigningKey::from_seed(&[7; 32], "ed25519:1").unwrap();
        let other = SigningKey::from_seed(&[8; 32], "ed25519:1").unwrap();
        let (public, other_public) = (key.public_key(), other.public_key());
        let bytes = br#"{"content":{"body":"hi"},"type":"m.room.message"}"#;
        let signature = key.sign_bytes(bytes);
        let raw: Signature = base64_decode(&signature).unwrap().try_into().unwrap();
        assert!(was_made(public.0.as_bytes(), bytes, &raw), "noted as made");
        assert!(public.verify_bytes(bytes, &signature));
        // Other bytes, another key, a signature changed in one bit: not made here, so
        // verified in full, and refused.
        let changed = br#"{"content":{"body":"ho"},"type":"m.room.message"}"#;
        assert!(!was_made(public.0.as_bytes(), changed, &raw));
        assert!(!public.verify_bytes(changed, &signature));
        assert!(!was_made(other_public.0.as_bytes(), bytes, &raw));
        assert!(!other_public.verify_bytes(bytes, &signature));
        let mut flipped = raw;
        flipped[40] ^= 1;
        assert!(!was_made(public.0.as_bytes(), bytes, &flipped));
        assert!(!public.verify_bytes(bytes, &base64_encode(&flipped)));
        // The same bytes signed by two keys: each signature is known for its own key only.
        let theirs = other.sign_bytes(bytes);
        assert!(other_public.verify_bytes(bytes, &theirs));
        assert!(!public.verify_bytes(bytes, &theirs));
        assert!(public.verify_bytes(bytes, &signature));
        // Forgotten, a signature is verified in full again, with the same answer.
        forget();
        assert!(!was_made(public.0.as_bytes(), bytes, &raw));
        assert!(public.verify_bytes(bytes, &signature));
        assert_eq!(held_bytes(), 0);
    }

    #[test]
    fn what_is_kept_stays_within_its_bound() {
        forget();
        let public = [1u8; 32];
        let message = |n: usize| format!("{n:>1000}").into_bytes();
        let signature = |n: usize| {
            let mut s = [0u8; 64];
            s[..8].copy_from_slice(&n.to_le_bytes());
            s
        };
        let many = 3 * GENERATION_BYTES / 1000;
        for n in 0..many {
            note(&public, &message(n), &signature(n));
            assert!(held_bytes() <= 2 * GENERATION_BYTES, "{} bytes held", held_bytes());
        }
        let last = many - 1;
        assert!(was_made(&public, &message(last), &signature(last)), "the last kept");
        assert!(!was_made(&public, &message(0), &signature(0)), "the first dropped");
        // The same signature noted again takes no more room.
        let held = held_bytes();
        note(&public, &message(last), &signature(last));
        assert_eq!(held_bytes(), held);
        // A message larger than a generation is not kept.
        let huge = vec![b'x'; GENERATION_BYTES];
        note(&public, &huge, &signature(0));
        assert!(!was_made(&public, &huge, &signature(0)));
        forget();
    }
}
