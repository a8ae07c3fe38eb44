//! The invariant ids of DESIGN.md §5: the one vocabulary that scenario files (`[check]
//! invariants`), trace headers (`check.invariants`), verdicts (`summary.json`) and sweep
//! results share.
//!
//! An id is parsed once, where it enters (a scenario file, a trace file, a command-line
//! flag), into an [`Invariant`]; an unknown id is an error that lists the known ones.
//! [`Invariant::ALL`] is the one list of known ids, in the order of DESIGN.md §5, which
//! is also the order of `Ord`, of the checker's passes and of a verdict's `checked` list.
//!
//! It lives in `stdx` because every layer that names an invariant (scenario, trace, check,
//! report, sweep, cli) may use `stdx`, and no other module is below all of them.
//!
//! Architecture Invariant: pure data; depends on nothing in the crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One invariant of DESIGN.md §5, written as its id (`"integrity"`, …) wherever it is
/// serialized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Invariant {
    Integrity,
    Auth,
    Dag,
    Convergence,
    Liveness,
    Durability,
    Determinism,
    Expectations,
    /// Linearized Matrix rooms keep the draft's model (docs/linearized.md). Not in
    /// DESIGN.md §5, which predates them; checked by default only in scenarios that have
    /// such a room.
    Linearized,
}

impl Invariant {
    pub const ALL: [Invariant; 9] = [
        Invariant::Integrity,
        Invariant::Auth,
        Invariant::Dag,
        Invariant::Convergence,
        Invariant::Liveness,
        Invariant::Durability,
        Invariant::Determinism,
        Invariant::Expectations,
        Invariant::Linearized,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Invariant::Integrity => "integrity",
            Invariant::Auth => "auth",
            Invariant::Dag => "dag",
            Invariant::Convergence => "convergence",
            Invariant::Liveness => "liveness",
            Invariant::Durability => "durability",
            Invariant::Determinism => "determinism",
            Invariant::Expectations => "expectations",
            Invariant::Linearized => "linearized",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not an invariant id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown invariant {id:?}, expected one of {}", known())]
pub struct UnknownInvariant {
    pub id: String,
}

fn known() -> String {
    Invariant::ALL.map(Invariant::as_str).join(", ")
}

impl FromStr for Invariant {
    type Err = UnknownInvariant;

    fn from_str(id: &str) -> Result<Invariant, UnknownInvariant> {
        Invariant::ALL
            .into_iter()
            .find(|invariant| invariant.as_str() == id)
            .ok_or_else(|| UnknownInvariant { id: id.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_every_form() {
        for invariant in Invariant::ALL {
            let id = invariant.as_str();
            assert_eq!(id.parse::<Invariant>(), Ok(invariant));
            assert_eq!(invariant.to_string(), id);
            // serde's snake_case spelling is the same id.
            assert_eq!(serde_json::to_string(&invariant).unwrap(), format!("\"{id}\""));
            assert_eq!(serde_json::from_str::<Invariant>(&format!("\"{id}\"")).unwrap(), invariant);
        }
        // The list is sorted by `Ord` and holds each id once.
        let mut sorted = Invariant::ALL;
        sorted.sort();
        assert_eq!(sorted, Invariant::ALL);
    }

    #[test]
    fn an_unknown_id_names_the_known_ones() {
        let error = "vibes".parse::<Invariant>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown invariant \"vibes\", expected one of integrity, auth, dag, convergence, \
             liveness, durability, determinism, expectations, linearized"
        );
        assert!("Auth".parse::<Invariant>().is_err());
        assert!(serde_json::from_str::<Invariant>("\"vibes\"").is_err());
    }
}
