//! What a server decided about an event: the one vocabulary of the homeserver's store,
//! its observations and the trace (federation-api.md §3, the receipt checks).
//!
//! [`Decision`] is pure data, written in traces as its snake_case name. Of its variants,
//! the two rejections are the ones state resolution must tell apart: they correspond
//! one to one to [`RejectionKind`] ([`Decision::rejection`], `From<RejectionKind>`), the
//! view of a decision that `dag::EventStore` hands to state resolution.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::matrix::dag::RejectionKind;

/// How a server decided about an event it created, received or dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Created by this server (and stored as accepted).
    Created,
    /// Passed every receipt check.
    Accepted,
    /// Failed auth against its own auth events (receipt check 4). Never enters state.
    RejectedAuthEvents,
    /// Failed auth against the state before it (check 5). Such events may still enter
    /// state through resolution (state-resolution.md §4).
    RejectedStateBefore,
    /// Passed checks 4 and 5 but not 6 (the current state): kept, not a forward
    /// extremity.
    SoftFailed,
    /// Stored as an outlier: fetched to fill a gap or received with a join, checked
    /// against its auth events only.
    Outlier,
    /// Not stored (bad format, hash or signature, or given up on).
    Dropped,
}

impl Decision {
    /// Whether the event is in the server's store afterwards.
    pub fn is_stored(self) -> bool {
        self != Decision::Dropped
    }

    /// Whether the event counts as rejected (never enters state through auth).
    pub fn is_rejected(self) -> bool {
        self.rejection().is_some()
    }

    /// Which rejection this is, as state resolution reads it; `None` for every decision
    /// that is not a rejection (soft-failed events count as accepted there).
    pub fn rejection(self) -> Option<RejectionKind> {
        match self {
            Decision::RejectedAuthEvents => Some(RejectionKind::AuthEvents),
            Decision::RejectedStateBefore => Some(RejectionKind::StateBefore),
            Decision::Created
            | Decision::Accepted
            | Decision::SoftFailed
            | Decision::Outlier
            | Decision::Dropped => None,
        }
    }

    /// The name traces use (`"rejected_auth_events"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Created => "created",
            Decision::Accepted => "accepted",
            Decision::RejectedAuthEvents => "rejected_auth_events",
            Decision::RejectedStateBefore => "rejected_state_before",
            Decision::SoftFailed => "soft_failed",
            Decision::Outlier => "outlier",
            Decision::Dropped => "dropped",
        }
    }
}

impl From<RejectionKind> for Decision {
    fn from(kind: RejectionKind) -> Decision {
        match kind {
            RejectionKind::AuthEvents => Decision::RejectedAuthEvents,
            RejectionKind::StateBefore => Decision::RejectedStateBefore,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Decision; 7] = [
        Decision::Created,
        Decision::Accepted,
        Decision::RejectedAuthEvents,
        Decision::RejectedStateBefore,
        Decision::SoftFailed,
        Decision::Outlier,
        Decision::Dropped,
    ];

    #[test]
    fn the_trace_spelling_is_the_documented_one() {
        // docs/trace.md, the `event` record's `decision`.
        let documented = [
            "created",
            "accepted",
            "rejected_auth_events",
            "rejected_state_before",
            "soft_failed",
            "outlier",
            "dropped",
        ];
        for (decision, name) in ALL.into_iter().zip(documented) {
            assert_eq!(serde_json::to_string(&decision).unwrap(), format!("\"{name}\""));
            assert_eq!(decision.as_str(), name);
            assert_eq!(serde_json::from_str::<Decision>(&format!("\"{name}\"")).unwrap(), decision);
        }
        assert!(serde_json::from_str::<Decision>("\"rejected\"").is_err());
    }

    #[test]
    fn rejections_are_the_two_rejection_kinds() {
        for kind in [RejectionKind::AuthEvents, RejectionKind::StateBefore] {
            assert_eq!(Decision::from(kind).rejection(), Some(kind));
        }
        let rejected: Vec<Decision> = ALL.into_iter().filter(|d| d.is_rejected()).collect();
        assert_eq!(rejected, [Decision::RejectedAuthEvents, Decision::RejectedStateBefore]);
        let not_stored: Vec<Decision> = ALL.into_iter().filter(|d| !d.is_stored()).collect();
        assert_eq!(not_stored, [Decision::Dropped]);
    }
}
