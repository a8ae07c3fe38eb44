//! The metrics of a run: counts and timings folded from its records, as ordered
//! `(name, value)` pairs that `summary.json` and the reports show (docs/trace.md lists
//! them). Integers only.

use super::{Body, Decision, NodeChange, Trace};
use crate::matrix::ids::LookupMap;

/// Counts and timings of a run, as ordered `(name, value)` pairs for `summary.json` and
/// the reports (docs/trace.md lists them). Integers only.
pub fn metrics(trace: &Trace) -> Vec<(&'static str, u64)> {
    // Only looked up: the events' creation times by id. The counts are plain fields, not
    // a map keyed by name: both are asked once per record.
    let mut created_at: LookupMap<&str, u64> = LookupMap::new();
    let mut latencies = Vec::new();
    let mut c = Counts::default();
    let mut last_state = 0;
    for record in &trace.records {
        match &record.body {
            Body::Event { event_id, decision, .. } => match decision {
                Decision::Created => {
                    c.events_created += 1;
                    if let Some(id) = event_id {
                        created_at.get_or_insert_with(id, || record.t);
                    }
                }
                Decision::Dropped => c.events_dropped += 1,
                other => {
                    c.events_received += 1;
                    if other.is_rejected() {
                        c.events_rejected += 1;
                    }
                    if *other == Decision::SoftFailed {
                        c.events_soft_failed += 1;
                    }
                    let created = event_id.as_deref().and_then(|id| created_at.get(id));
                    if let (Some(&created), false) = (created, *other == Decision::Outlier) {
                        latencies.push(record.t.saturating_sub(created));
                    }
                }
            },
            Body::Node { change: NodeChange::Crash, .. } => c.crashes += 1,
            Body::ActionFailed { .. } => c.actions_failed += 1,
            Body::Action { .. } => c.actions += 1,
            Body::State { .. } => last_state = record.t,
            _ => {}
        }
    }
    let net = trace.net();
    latencies.sort_unstable();
    let percentile = |p: usize| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        latencies[(latencies.len() - 1) * p / 100]
    };
    vec![
        ("sim_ms", trace.header.end_ms),
        ("servers", u64::try_from(trace.header.servers.len()).unwrap_or(u64::MAX)),
        ("trace_records", trace.record_count()),
        ("actions", c.actions),
        ("actions_failed", c.actions_failed),
        ("events_created", c.events_created),
        ("events_received", c.events_received),
        ("events_rejected", c.events_rejected),
        ("events_soft_failed", c.events_soft_failed),
        ("events_dropped", c.events_dropped),
        ("messages_sent", net.sent),
        ("messages_delivered", net.delivered),
        ("messages_lost", net.lost),
        ("messages_duplicated", net.duplicated),
        ("messages_corrupted", net.corrupted),
        ("bytes_sent", net.bytes),
        ("crashes", c.crashes),
        ("last_state_change_ms", last_state),
        ("event_latency_ms_p50", percentile(50)),
        ("event_latency_ms_p99", percentile(99)),
        ("event_latency_ms_max", latencies.last().copied().unwrap_or(0)),
    ]
}

/// The record counts of [`metrics`].
#[derive(Default)]
struct Counts {
    actions: u64,
    actions_failed: u64,
    events_created: u64,
    events_received: u64,
    events_rejected: u64,
    events_soft_failed: u64,
    events_dropped: u64,
    crashes: u64,
}
