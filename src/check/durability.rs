//! `durability`: everything a server committed (its `commit` records) before a `node` crash
//! is in the `event_ids` of its next `recovered` record. Commits accumulate over the whole
//! run: an event committed before an earlier crash must survive every later one too. A
//! server that restarts after a crash must produce a `recovered` record before its next
//! crash or the end of the trace.
//!
//! Witness: the server, the missing event ids, the line of the `recovered` record (or of
//! the restart that was never followed by one).

use std::collections::{BTreeMap, BTreeSet};

use crate::stdx::Invariant;
use crate::trace::{Body, NodeChange};

use super::index::Index;
use super::{Violation, Witness, violation};

const ID: Invariant = Invariant::Durability;

/// Most event ids named in one message (the witness lists them all).
const IDS_SHOWN_MAX: usize = 10;

#[derive(Default)]
struct ServerState<'t> {
    committed: BTreeSet<&'t str>,
    /// What must come back, frozen at the last crash (`None`: no crash pending).
    owed: Option<BTreeSet<&'t str>>,
    /// The line of a restart still waiting for its `recovered` record.
    restart_line: Option<u64>,
}

pub(super) fn check(index: &Index<'_>) -> Vec<Violation> {
    let mut servers: BTreeMap<&str, ServerState<'_>> = BTreeMap::new();
    let mut found = Vec::new();
    let no_recovered = |server: &str, line: u64| {
        violation(
            ID,
            format!("{server} restarted without a recovered record of its store"),
            Witness { servers: vec![server.to_owned()], events: vec![], line: Some(line) },
        )
    };
    // Commits matter only for servers that crash: the others' are skipped.
    let crashing: BTreeSet<&str> = index
        .trace
        .records
        .iter()
        .filter_map(|r| match &r.body {
            Body::Node { server, change: NodeChange::Crash } => Some(server.as_str()),
            _ => None,
        })
        .collect();
    // A kept trace holds the commits of the servers its fault schedule crashes; a crash of
    // another server (a trace whose records disagree with its header) leaves its commits
    // unknown, and durability cannot be judged for it.
    if let Some(kept) = &index.trace.kept {
        for (server, line) in &kept.unkept_crashes {
            found.push(violation(
                ID,
                format!(
                    "{server} crashed, but the header's fault schedule has no crash of it, so \
                     its commits were not kept and what it owed is unknown"
                ),
                Witness { servers: vec![server.clone()], events: vec![], line: Some(*line) },
            ));
        }
    }
    for (i, record) in index.trace.records.iter().enumerate() {
        let line = index.trace.line_of(i);
        match &record.body {
            Body::Commit { server, .. } if !crashing.contains(server.as_str()) => {}
            Body::Commit { server, event_ids } => {
                let state = servers.entry(server).or_default();
                state.committed.extend(event_ids.iter().map(crate::trace::Text::as_str));
            }
            Body::Node { server, change: NodeChange::Crash } => {
                let state = servers.entry(server).or_default();
                if let Some(restart) = state.restart_line.take() {
                    found.push(no_recovered(server, restart));
                }
                state.owed = Some(state.committed.clone());
            }
            Body::Node { server, change: NodeChange::Restart } => {
                let state = servers.entry(server).or_default();
                if state.owed.is_some() {
                    state.restart_line = Some(line);
                }
            }
            Body::Recovered { server, event_ids } => {
                let state = servers.entry(server).or_default();
                state.restart_line = None;
                let Some(owed) = state.owed.take() else { continue };
                let back: BTreeSet<&str> = event_ids.iter().map(String::as_str).collect();
                let missing: Vec<&str> = owed.difference(&back).copied().collect();
                if missing.is_empty() {
                    continue;
                }
                let shown: Vec<&str> = missing.iter().copied().take(IDS_SHOWN_MAX).collect();
                let more = missing.len().saturating_sub(IDS_SHOWN_MAX);
                let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
                let message = format!(
                    "{server} lost {} committed event(s) in a crash: {}{tail}",
                    missing.len(),
                    shown.join(", ")
                );
                let witness = Witness {
                    servers: vec![(*server).to_owned()],
                    events: missing.iter().map(|id| (*id).to_owned()).collect(),
                    line: Some(line),
                };
                found.push(violation(ID, message, witness));
            }
            _ => {}
        }
    }
    for (server, state) in &servers {
        if let Some(restart) = state.restart_line {
            found.push(no_recovered(server, restart));
        }
    }
    found.sort_by_key(|v| v.witness.line.unwrap_or(u64::MAX));
    found
}
