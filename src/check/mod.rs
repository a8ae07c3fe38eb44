//! The invariant checker: a pure fold over a trace to a verdict with witnesses
//! (DESIGN.md §5). It reads only the trace — never the world or a homeserver — so a trace
//! file can be re-checked offline with `mxsim check`.
//!
//! [`check`] runs the invariants the trace header lists (`header.check.invariants`);
//! `determinism` compares two runs and so has its own entry points,
//! [`check_determinism`] (two trace hashes) and [`check_determinism_traces`] (two traces,
//! naming the first line that differs), and is listed as checked only by the caller that
//! ran them.
//!
//! The fold first builds an [`index::Index`] (every PDU copy parsed once, every receipt
//! decision, each server's held events with crashes applied), then each invariant reads it:
//! `integrity`, `auth`, `dag`, `convergence`, `liveness`, `durability` and `expectations`
//! (what the scenario says it demonstrates) live in their own files and document exactly
//! what they check.
//!
//! Architecture Invariant: a trace comes from a file, so nothing here may panic on it. A
//! malformed PDU, an unknown room version, a bad key or a missing record becomes a
//! violation (or, where another invariant owns the problem, is skipped and left to it);
//! never an assertion. No hash maps, no floats, no clock.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::stdx::Invariant;
use crate::trace::Trace;

mod auth;
mod convergence;
mod dag;
mod durability;
mod expectations;
mod index;
mod integrity;
mod linearized;
mod liveness;

/// The invariants of DESIGN.md §5, in the order the checker runs and lists them.
pub const INVARIANTS: &[Invariant] = &Invariant::ALL;

/// Most violations listed per invariant; the rest are only counted, in
/// [`Verdict::violations_not_listed`] (a run that breaks an invariant often breaks it for thousands of events, and a report
/// of thousands of lines explains less than the first hundred).
pub const VIOLATIONS_PER_INVARIANT_MAX: usize = 100;

/// What a violation points at: the servers and events involved and the first trace record
/// where the violation became true.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    pub servers: Vec<String>,
    pub events: Vec<String>,
    /// 1-based line number in `trace.jsonl` (the header is line 1, so record `i` of
    /// `Trace::records` is line `i + 2`); `None` when the violation is about the end state
    /// as a whole.
    pub line: Option<u64>,
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: Invariant,
    pub message: String,
    pub witness: Witness,
}

/// The checker's result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Empty when every checked invariant holds.
    pub violations: Vec<Violation>,
    /// The invariants that were checked (the trace header's list, without
    /// `determinism` unless a second run was compared).
    pub checked: Vec<Invariant>,
    /// Invariant id → how many of its violations were found beyond the
    /// [`VIOLATIONS_PER_INVARIANT_MAX`] listed in `violations`; invariants with none left
    /// out.
    #[serde(default)]
    pub violations_not_listed: BTreeMap<Invariant, u64>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Checks every invariant the trace header lists, except `determinism` (which needs a
/// second run: see [`check_determinism`]): `determinism` is left out of
/// [`Verdict::checked`] whatever the header says, and a caller that compared two runs adds
/// it, with its violation if any. (A header naming an unknown invariant does not parse.)
///
/// Never panics, whatever the trace holds.
pub fn check(trace: &Trace) -> Verdict {
    let wanted = |id: Invariant| trace.header.check.invariants.contains(&id);
    let mut checked: Vec<Invariant> = Vec::new();
    for &id in INVARIANTS {
        if wanted(id) && id != Invariant::Determinism {
            checked.push(id);
        }
    }
    let mut verdict =
        Verdict { violations: Vec::new(), checked, violations_not_listed: BTreeMap::new() };
    if verdict.checked.is_empty() {
        return verdict;
    }
    let index = index::Index::build(trace);
    type Pass = fn(&index::Index<'_>) -> Vec<Violation>;
    let passes: [(Invariant, Pass); 8] = [
        (Invariant::Integrity, integrity::check),
        (Invariant::Auth, auth::check),
        (Invariant::Dag, dag::check),
        (Invariant::Convergence, convergence::check),
        (Invariant::Liveness, liveness::check),
        (Invariant::Durability, durability::check),
        (Invariant::Expectations, expectations::check),
        (Invariant::Linearized, linearized::check),
    ];
    for (id, pass) in passes {
        if wanted(id) {
            let found = pass(&index);
            assert!(found.iter().all(|v| v.invariant == id));
            let (listed, not_listed) = cap(found);
            verdict.violations.extend(listed);
            if not_listed > 0 {
                verdict.violations_not_listed.insert(id, not_listed);
            }
        }
    }
    verdict
}

/// The `determinism` invariant from two trace hashes of the same scenario and seed: a
/// violation when they differ. Without the traces no line can be named; prefer
/// [`check_determinism_traces`] when both traces are at hand.
pub fn check_determinism(first_hash: &str, second_hash: &str) -> Option<Violation> {
    (first_hash != second_hash).then(|| Violation {
        invariant: Invariant::Determinism,
        message: format!(
            "two runs of the same scenario and seed gave different trace hashes: {first_hash} \
             and {second_hash}"
        ),
        witness: Witness::default(),
    })
}

/// The `determinism` invariant from two traces of the same scenario and seed: a violation
/// naming the first line where their JSONL differs (and the servers that line names).
pub fn check_determinism_traces(first: &Trace, second: &Trace) -> Option<Violation> {
    let (first_hash, second_hash) = (first.hash(), second.hash());
    let mut violation = check_determinism(&first_hash, &second_hash)?;
    let (a, b) = (first.to_jsonl(), second.to_jsonl());
    let (a, b) = (String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
    let mut a_lines = a.lines();
    let mut b_lines = b.lines();
    let mut number: u64 = 0;
    loop {
        number = number.saturating_add(1);
        let (x, y) = (a_lines.next(), b_lines.next());
        if x == y && x.is_some() {
            continue;
        }
        let show = |line: Option<&str>| match line {
            Some(line) => shorten(line),
            None => "(end of trace)".to_owned(),
        };
        violation.message = format!(
            "{}; first difference on line {number}: {} vs {}",
            violation.message,
            show(x),
            show(y)
        );
        violation.witness.line = Some(number);
        if number >= 2 {
            for trace in [first, second] {
                if let Some(record) = trace.record_at_line(number) {
                    for server in index::record_servers(&record.body) {
                        if !violation.witness.servers.iter().any(|s| s == server) {
                            violation.witness.servers.push(server.to_owned());
                        }
                    }
                }
            }
        }
        return Some(violation);
    }
}

/// Longest rendering of a trace line in a message, in characters.
const LINE_SHOWN_MAX: usize = 160;

fn shorten(text: &str) -> String {
    if text.chars().count() <= LINE_SHOWN_MAX {
        text.to_owned()
    } else {
        let short: String = text.chars().take(LINE_SHOWN_MAX).collect();
        format!("{short}…")
    }
}

/// The first [`VIOLATIONS_PER_INVARIANT_MAX`] violations, and how many more there were.
fn cap(mut found: Vec<Violation>) -> (Vec<Violation>, u64) {
    let rest = found.len().saturating_sub(VIOLATIONS_PER_INVARIANT_MAX);
    found.truncate(VIOLATIONS_PER_INVARIANT_MAX);
    (found, u64::try_from(rest).unwrap_or(u64::MAX))
}

/// A violation of `invariant`.
fn violation(invariant: Invariant, message: String, witness: Witness) -> Violation {
    assert!(INVARIANTS.contains(&invariant));
    Violation { invariant, message, witness }
}

/// Most servers a message names or details; the witness lists them all.
const SERVERS_SHOWN_MAX: usize = 8;

/// The first `max` of `items` joined by `separator`, and how many more there are: a
/// message stays readable when a thousand servers share one violation (the witness
/// lists them all). The command line lists witnesses with it too.
pub fn first_of<S: AsRef<str>>(items: &[S], max: usize, separator: &str) -> String {
    let shown: Vec<&str> = items.iter().take(max).map(AsRef::as_ref).collect();
    let mut text = shown.join(separator);
    if items.len() > max {
        text.push_str(&format!(" and {} more", items.len() - max));
    }
    text
}

/// The items without repeats, each where it first appears.
fn first_seen<T: Ord + Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = BTreeSet::new();
    items.into_iter().filter(|item| seen.insert(item.clone())).collect()
}

/// Adds `item` to `list` unless it is there (keeps first-seen order). Linear in the list:
/// for short lists, such as a witness's.
fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(count: usize) -> Vec<Violation> {
        (0..count)
            .map(|i| violation(Invariant::Auth, format!("number {i}"), Witness::default()))
            .collect()
    }

    #[test]
    fn long_lists_in_messages_name_the_first_and_count_the_rest() {
        let items: Vec<String> = (1..=4).map(|n| format!("hs{n}")).collect();
        assert_eq!(first_of(&items, 4, ", "), "hs1, hs2, hs3, hs4");
        assert_eq!(first_of(&items, 2, "; "), "hs1; hs2 and 2 more");
        assert_eq!(first_of::<&str>(&[], 2, ", "), "");
    }

    #[test]
    fn violations_beyond_the_cap_are_counted_not_listed() {
        let (listed, rest) = cap(violations(VIOLATIONS_PER_INVARIANT_MAX + 7));
        assert_eq!(rest, 7);
        assert_eq!(listed.len(), VIOLATIONS_PER_INVARIANT_MAX);
        // Every listed violation is a real one: the last is the 100th found.
        assert_eq!(listed.last().unwrap().message, "number 99");
        assert!(listed.iter().all(|v| !v.message.contains("more violations")));
        let (listed, rest) = cap(violations(3));
        assert_eq!((listed.len(), rest), (3, 0));
    }
}
