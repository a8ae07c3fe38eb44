//! The simulated network: the fault model of DESIGN.md §6 as explicit, schedulable data,
//! and a kernel that applies it to messages. Generic over the payload; it knows nothing of
//! Matrix.
//!
//! - [`policy`]: [`LinkPolicy`] — latency ([`LatencyDistribution`]: fixed, uniform, or a
//!   long tail of spikes), loss, duplication, reordering and byte corruption per link.
//! - [`fault`]: [`Fault`] — partitions by groups, one-way cuts, holds, flapping links,
//!   per-link policy overrides, clock skew, slow nodes, and node crash/pause markers —
//!   each active on `[start, end)`; [`FaultSchedule`] validates them against the nodes.
//! - [`kernel`]: [`Network`] — in-flight messages in a priority queue keyed by (due time,
//!   lane, sequence number), decisions drawn at send time from an injected `Prng`, faults
//!   applied as time passes, and a [`NetEvent`] log of every decision for the trace.
//! - [`corrupt`]: [`Corruptible`], how a payload lets the network change one byte.
//!
//! Semantics (the contract the world and the trace rely on):
//!
//! - **Fate at send.** Loss, corruption, duplication, latency and reordering are drawn
//!   when a message is sent. A copy is put in flight with a due time.
//! - **Order.** Without reordering, copies on one link arrive in send order: a copy is
//!   never due before an earlier in-order copy on its link (its due time is raised to
//!   that one's; equal times go in send order). A reordered copy gets an extra delay and
//!   leaves that order, so it may overtake and be overtaken. A duplicate draws its own
//!   latency and arrives after the original unless one of them is reordered.
//! - **Cuts** (partition, one-way, flap down). A link is checked when a message is sent
//!   and again when it comes due: a cut at either time drops the message. Messages in
//!   flight when a cut starts are therefore lost if the cut still holds when they come
//!   due, unlike madsim's clog, which lets them through; a cut that opens and closes
//!   entirely while a message is in flight does not touch it.
//! - **Partitions.** Nodes in different groups cannot talk; nodes listed in no group form
//!   one more group together.
//! - **Holds.** A message that comes due on a held link (and is not cut) is held, not
//!   dropped. When the last active hold on the link ends, held messages are put back in
//!   flight, due at that instant, in the order they were held, ahead of anything sent
//!   later; they are then checked like any arrival, so a cut still in force drops them.
//! - **Flaps.** The link between two nodes is down, both ways, for the first `down_for`
//!   of every `period` from the fault's start; its state is a function of time.
//! - **Overrides, slowness, skew.** The policy of a send is the latest-started active
//!   override of the link, else the default; slow nodes add their extra delay to every
//!   message from or to them; `Network::node_clock` adds the active skews of a node.
//! - **Node markers.** `Crash` (crash at start, restart at end) and `Pause` are reported
//!   by `Network::advance_to`; the world executes them. The network does not drop
//!   messages to a crashed node itself: the world decides what a down node receives.
//! - **Time.** Every entry point takes `now`, which never goes back. Fault boundaries are
//!   processed before messages due at the same instant, and everything up to `now` is
//!   processed in time order, so the outcome does not depend on how the caller steps.
//! - **Bounds.** At most `in_flight_max` messages in the network (`QueueFull` beyond),
//!   `held_max` held messages (`HoldFull` beyond), `events_max` unread log events (more
//!   is a caller bug), and the schedule limits of [`fault`].
//!
//! Architecture Invariant: uses only `stdx`; no clock, no OS randomness (one injected
//! `Prng`, drawn in a documented order), no floats, no hash maps. A schedule from a file
//! is checked by [`FaultSchedule::new`] and yields a [`ScheduleError`]; a panic is an
//! mxsim bug (for example, a caller moving time backwards).

pub mod corrupt;
pub mod fault;
pub mod kernel;
pub mod policy;
mod serde_util;
#[cfg(test)]
mod tests;

pub use corrupt::{Corruptible, Corruption};
pub use fault::{
    Fault, FaultRef, FaultSchedule, NodeName, NodeNameError, Nodes, ScheduleError, ScheduleProblem,
    UncheckedSchedule,
};
pub use kernel::{
    ConfigError, Delivery, DropReason, LinkState, MessageId, NetConfig, NetEvent, Network,
    NodeEvent, NodeId, NodeMarker, SendOutcome,
};
pub use policy::{LatencyDistribution, LinkPolicy, PolicyError};
