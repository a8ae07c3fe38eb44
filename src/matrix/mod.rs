//! The pure Matrix protocol core: identifiers, canonical JSON, cryptography, room-version
//! rules, PDUs and redaction, and the Linearized Matrix draft's LPDUs and hub list.
//!
//! Architecture Invariant: no I/O, no clock, no randomness, and no knowledge of servers or
//! simulation. Time, keys and event lookups are arguments. Untrusted input yields a
//! rejection value with a reason, never a panic.
//!
//! Every rule here follows the spec digest in `../shared/spec/`; comments marked [impl]
//! follow a reference implementation where the spec is silent, and [digest] the digest's
//! own reading.

pub mod action;
pub mod auth;
pub mod canonical_json;
pub mod crypto;
pub mod dag;
pub mod decision;
pub mod ids;
pub mod linearized;
pub mod pdu;
pub mod redaction;
pub mod room_version;
pub mod state_digest;
pub mod state_res;
pub(crate) mod words;

pub use decision::Decision;
pub use ids::EventId;
pub use pdu::Pdu;
pub use room_version::{RoomVersion, RoomVersionRules};
