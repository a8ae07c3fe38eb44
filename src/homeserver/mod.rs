//! One Matrix homeserver as a sans-IO state machine: `Homeserver::handle(now, Input) ->
//! Vec<Output>` will take inbound federation requests and responses, fired timers and local
//! user actions, and return outbound requests, timers and storage commits. It does not know
//! it is simulated. The state machine itself is still to come; this module holds the pieces
//! it is built from:
//!
//! - [`wire`]: the federation requests and responses in the spec's shapes, their exact
//!   encoding as HTTP-like bytes, and the error responses for malformed input.
//! - [`outbound`]: per-destination delivery of PDUs and EDUs in transactions, with one
//!   transaction in flight, retries with back-off, bounded queues and catch-up.
//!
//! Architecture Invariant: uses only `stdx` and `matrix`; no clock (time is the `now`
//! argument), no OS randomness (an injected `stdx::Prng`), no I/O, no hash maps. Untrusted
//! input from peers yields error values, never a panic; a panic means an mxsim bug.

pub mod outbound;
pub mod wire;
