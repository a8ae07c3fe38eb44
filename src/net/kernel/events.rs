//! The network kernel's public vocabulary: node and message ids, the limits
//! ([`NetConfig`]), why a message was dropped, what a link does, node markers, the
//! [`NetEvent`] log of every decision, and what `send` and `deliver_due` return.

use serde::{Deserialize, Serialize};

use crate::net::corrupt::Corruption;
use crate::net::policy::{LinkPolicy, PolicyError};
use crate::stdx::Instant;

/// A node, by its position in the schedule's node list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u32);

/// A message, numbered from 0 in send order; both copies of a duplicated message share it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub u64);

/// The network's limits and its default link policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// The policy of every link without an active `LinkOverride`.
    pub default_policy: LinkPolicy,
    /// Most messages in the network at once: queued, held, or due but not yet taken by
    /// `deliver_due`. A send beyond it is dropped with `DropReason::QueueFull`. Default
    /// 100 000.
    pub in_flight_max: u64,
    /// Most held messages at once (all links together). A message that comes due on a
    /// held link beyond it is dropped with `DropReason::HoldFull`. Default 10 000.
    pub held_max: u64,
    /// Most events in the log between two drains (`take_events`, `swap_events`); more is a
    /// bug of the caller and stops the run. Default 1 000 000.
    pub events_max: u64,
}

impl Default for NetConfig {
    fn default() -> NetConfig {
        NetConfig {
            default_policy: LinkPolicy::default(),
            in_flight_max: 100_000,
            held_max: 10_000,
            events_max: 1_000_000,
        }
    }
}

/// Why a network configuration is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("default_policy: {0}")]
    Policy(PolicyError),
    #[error("{field} must be at least 1")]
    Zero { field: &'static str },
}

impl NetConfig {
    /// Why the configuration is unusable, if it is.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.default_policy.check().map_err(ConfigError::Policy)?;
        for (field, value) in [
            ("in_flight_max", self.in_flight_max),
            ("held_max", self.held_max),
            ("events_max", self.events_max),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        Ok(())
    }
}

/// Why a message (or one copy of it) was lost. `fault` is an index into the schedule's
/// sorted faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DropReason {
    /// The link's `loss` chance.
    Loss,
    /// `in_flight_max` messages were already in the network.
    QueueFull,
    /// The message came due on a held link with `held_max` messages already held.
    HoldFull,
    Partition {
        fault: u32,
    },
    OneWay {
        fault: u32,
    },
    Flap {
        fault: u32,
    },
}

/// What a link does to a message at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Up,
    /// Messages are dropped, for this reason (the cutting fault with the lowest index).
    Cut(DropReason),
    /// Messages that come due are held by this fault (the one with the lowest index).
    Held {
        fault: u32,
    },
}

/// A node-level fault boundary, reported for the world to execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeMarker {
    Crash,
    Restart,
    Pause,
    Resume,
    /// A `ClockSkew` fault of the node started or ended: its clock
    /// ([`super::Network::node_clock`]) may read differently from now on.
    ClockChange,
}

/// A node marker that came due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEvent {
    #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
    pub at: Instant,
    pub node: NodeId,
    pub marker: NodeMarker,
    pub fault: u32,
}

/// Every decision the network makes, in the order it makes them. `copy` is 0 for a
/// message as sent and 1 for its duplicate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum NetEvent {
    /// A send was asked for; what happened to it follows.
    Sent {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
        from: NodeId,
        to: NodeId,
        bytes: u64,
    },
    Dropped {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
        copy: u32,
        reason: DropReason,
    },
    /// The payload was damaged (both copies carry the damage).
    Corrupted {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
        offset: u64,
        before: u8,
        after: u8,
    },
    /// A second copy was made; its `Scheduled` follows.
    Duplicated {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
    },
    /// A copy was put in flight, due at `due`.
    Scheduled {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
        copy: u32,
        #[serde(rename = "due_ms", with = "crate::net::serde_util::ms")]
        due: Instant,
        reordered: bool,
    },
    Held {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
        copy: u32,
        fault: u32,
    },
    /// A held copy was put back in flight, due at once.
    Released {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
        copy: u32,
    },
    /// A copy arrived; `deliver_due` hands it over.
    Delivered {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        id: MessageId,
        copy: u32,
    },
    FaultStarted {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        fault: u32,
    },
    FaultEnded {
        #[serde(rename = "at_ms", with = "crate::net::serde_util::ms")]
        at: Instant,
        fault: u32,
    },
}

/// What `send` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    Dropped {
        id: MessageId,
        reason: DropReason,
    },
    Scheduled {
        id: MessageId,
        due: Instant,
        reordered: bool,
        corrupted: Option<Corruption>,
        /// When the duplicate is due, if one was made.
        duplicate_due: Option<Instant>,
    },
}

/// A message handed to its destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery<P> {
    pub id: MessageId,
    pub copy: u32,
    pub from: NodeId,
    pub to: NodeId,
    pub sent_at: Instant,
    /// When it arrived (its due time, or the end of the hold that kept it).
    pub at: Instant,
    pub bytes: u64,
    pub payload: P,
}
