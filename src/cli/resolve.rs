//! `mxsim resolve INPUT.json`: state resolution for researchers.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::cli::resolve_input::{self, ResolveInput, Strictness};
use crate::cli::timed;
use crate::cli::{CliError, Outcome};
use crate::matrix::canonical_json;
use crate::matrix::dag::IndexedStore;
use crate::matrix::state_res::{
    self, AuthChainReading, AuthOutcome, Explanation, RejectedEvents, ResolveOptions, Resolved,
};

#[derive(Args, Debug)]
pub struct ResolveArgs {
    /// Input: {"room_version", "events": [PDUs with "event_id"], "state_sets": [{type: {state_key: event_id}}]}.
    input: PathBuf,
    /// Also print every step on stderr: conflicted sets, orderings, each auth decision.
    #[arg(long)]
    explain: bool,
    /// Resolve N times (parsing once); every result must be identical.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Print {"runs", "total_ms": {"median", "min", "max"}} on stderr, timing resolution only.
    #[arg(long)]
    time: bool,
    /// Reading of "full auth chain" (spec/state-resolution.md §7).
    #[arg(long = "auth-chain", value_enum, default_value_t = ChainArg::Inclusive)]
    auth_chain: ChainArg,
    /// How events marked rejected take part: as the spec says, or never re-admitted
    /// (Synapse).
    #[arg(long, value_enum, default_value_t = RejectedArg::Spec)]
    rejected: RejectedArg,
    /// Check every event as a PDU of the room version (depth, size limits, ...), not only
    /// the fields state resolution reads.
    #[arg(long)]
    strict: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ChainArg {
    Inclusive,
    Exclusive,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RejectedArg {
    Spec,
    NeverReadmit,
}

pub fn run(args: &ResolveArgs) -> Result<Outcome, CliError> {
    let file = args.input.display().to_string();
    let strictness = if args.strict { Strictness::Pdu } else { Strictness::Resolution };
    let ResolveInput { room_version, events, state_sets, ignored_fields } =
        resolve_input::parse_file(&args.input, strictness)?;
    if !ignored_fields.is_empty() {
        let names: Vec<String> = ignored_fields.iter().map(|name| format!("{name:?}")).collect();
        super::write_stderr(&format!(
            "mxsim: {file}: ignoring unknown top-level fields: {}\n",
            names.join(", ")
        ));
    }
    let rules = room_version.rules();
    // `"rejected": true` marks an event rejected against its own auth events, the
    // strongest kind: it never enters state and is never used for auth. `"rejected":
    // "state_before"` marks one rejected only against the state before it, which the
    // spec lets state resolution treat as a normal event.
    let store = IndexedStore::from_events(rules, events);
    let options = ResolveOptions {
        auth_chain: match args.auth_chain {
            ChainArg::Inclusive => AuthChainReading::Inclusive,
            ChainArg::Exclusive => AuthChainReading::Exclusive,
        },
        rejected: match args.rejected {
            RejectedArg::Spec => RejectedEvents::Spec,
            RejectedArg::NeverReadmit => RejectedEvents::NeverReadmit,
        },
        explain: args.explain,
    };
    let mut first: Option<Resolved> = None;
    let mut durations_us: Vec<u64> = Vec::with_capacity(args.repeat as usize);
    for run in 0..args.repeat {
        let (result, elapsed_us) =
            timed(|| state_res::resolve(rules, &state_sets, &store, options));
        let resolved = result.map_err(|e| CliError::input(format!("{file}: {e}")))?;
        durations_us.push(elapsed_us);
        match &first {
            None => first = Some(resolved),
            Some(expected) => {
                // A difference between runs is a determinism bug in mxsim.
                assert!(expected == &resolved, "run {run} resolved differently from run 0");
            }
        }
    }
    let resolved = first.expect("at least one run");
    if let Some(explanation) = &resolved.explanation {
        super::write_stderr(&explain(explanation));
    }
    if args.time {
        super::write_stderr(&format!("{}\n", timing_line(&mut durations_us)));
    }
    let mut stdout = canonical_json::encode(&resolve_input::nested(&resolved.state))
        .expect("state maps hold only strings");
    stdout.push(b'\n');
    // The process ends right after printing: freeing hundreds of thousands of events one
    // allocation at a time would cost a fifth of a large run, and the operating system
    // takes the memory back at once.
    std::mem::forget(store);
    std::mem::forget(state_sets);
    std::mem::forget(resolved);
    Ok(Outcome { stdout, code: 0 })
}

fn ms(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

fn timing_line(durations_us: &mut [u64]) -> String {
    durations_us.sort_unstable();
    let n = durations_us.len();
    let median = if n % 2 == 1 {
        durations_us[n / 2]
    } else {
        (durations_us[n / 2 - 1] + durations_us[n / 2]) / 2
    };
    format!(
        "{{\"runs\":{n},\"total_ms\":{{\"median\":{},\"min\":{},\"max\":{}}}}}",
        ms(median),
        ms(durations_us[0]),
        ms(durations_us[n - 1])
    )
}

fn ids(ids: &[crate::matrix::EventId]) -> String {
    if ids.is_empty() {
        return "(none)".to_owned();
    }
    ids.iter().map(|id| id.as_str()).collect::<Vec<_>>().join(" ")
}

/// The human-readable explanation printed by `--explain`.
fn explain(e: &Explanation) -> String {
    let mut out = String::new();
    let algorithm = match e.algorithm {
        crate::matrix::room_version::StateResAlgorithm::V2 => "v2",
        crate::matrix::room_version::StateResAlgorithm::V2_1 => "v2.1",
    };
    let _ = writeln!(
        out,
        "state resolution {algorithm} (auth chain reading: {}, rejected events: {})",
        e.auth_chain.as_str(),
        e.rejected.as_str()
    );
    let _ = writeln!(out, "unconflicted state: {} keys", e.unconflicted.len());
    let _ = writeln!(out, "conflicted state set ({}): {}", e.conflicted.len(), ids(&e.conflicted));
    let _ =
        writeln!(out, "auth difference ({}): {}", e.auth_difference.len(), ids(&e.auth_difference));
    if algorithm == "v2.1" {
        let _ = writeln!(
            out,
            "conflicted state subgraph ({}): {}",
            e.conflicted_subgraph.len(),
            ids(&e.conflicted_subgraph)
        );
    }
    let _ = writeln!(
        out,
        "full conflicted set ({}): {}",
        e.full_conflicted.len(),
        ids(&e.full_conflicted)
    );
    let _ = writeln!(out, "step 1, reverse topological power ordering:");
    for (index, (id, level)) in e.power_events_sorted.iter().enumerate() {
        let _ = writeln!(out, "  {:>3}. {id} (sender power {level})", index + 1);
    }
    let _ = writeln!(out, "steps 2 and 4, iterative auth checks:");
    for decision in &e.decisions {
        let pass = match decision.pass {
            state_res::AuthPass::PowerEvents => "power",
            state_res::AuthPass::Others => "other",
        };
        let outcome = match &decision.outcome {
            AuthOutcome::Allowed => "allowed".to_owned(),
            AuthOutcome::Rejected(rejection) => format!("rejected, {rejection}"),
            AuthOutcome::PreviouslyRejected(kind) => {
                format!("skipped, rejected on receipt ({kind:?})")
            }
        };
        let _ = writeln!(out, "  [{pass}] {}: {outcome}", decision.event_id);
    }
    let _ = writeln!(out, "step 3, mainline (newest first): {}", ids(&e.mainline));
    let _ = writeln!(out, "step 3, mainline ordering: {}", ids(&e.mainline_sorted));
    let _ = writeln!(out, "step 5, resolved state: {} keys", e.state.len());
    out
}
