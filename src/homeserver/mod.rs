//! One Matrix homeserver as a sans-IO state machine: [`Homeserver::handle`]`(now, Input)
//! -> Vec<Output>` takes inbound federation requests and responses, fired timers and local
//! user actions, and returns outbound requests, responses, timers and observations. It does
//! not know it is simulated.
//!
//! - [`server`]: the state machine: building local events, the receipt checks of the spec
//!   (format, signatures, hashes, auth against auth events, against the state before,
//!   soft-fail against current state), gap filling, the membership handshakes, serving.
//! - [`store`]: the durable part: events with their outcome, state groups, extremities.
//! - [`types`]: inputs, outputs, actions, observations.
//! - [`wire`]: the federation requests and responses in the spec's shapes, their exact
//!   encoding as HTTP-like bytes, and the error responses for malformed input.
//! - [`verified`]: the results of the format, hash and signature checks, shared by the
//!   servers of one process so that each unique event is verified once.
//! - [`resolutions`]: state resolutions shared by the servers of one process, so that
//!   each distinct resolution of the same states is computed once.
//! - [`outbound`]: per-destination delivery of PDUs and EDUs in transactions, with one
//!   transaction in flight, retries with back-off, bounded queues and catch-up.
//!
//! Architecture Invariant: uses only `stdx` and `matrix`; no clock (time is the `now`
//! argument), no OS randomness (an injected `stdx::Prng`), no I/O, no hash maps. Untrusted
//! input from peers yields error values, never a panic; a panic means an mxsim bug.

pub mod outbound;
pub mod resolutions;
pub mod server;
pub mod store;
#[cfg(test)]
mod test_events;
pub mod types;
pub mod verified;
pub mod wire;

pub use server::{Config, Homeserver, RoomView};
pub use types::{Action, ActionKind, Decision, Input, Observation, Output, RequestId};
