//! Swarm testing: per seed, switch fault types and workload features on or off and draw
//! the parameters of added faults from the seed. A failure usually needs only some
//! features, and runs without the others find it more often (Groce et al., "Swarm
//! Testing", ISSTA 2012; FoundationDB and TigerBeetle randomise their knobs the same way).
//!
//! Everything is drawn from `Prng::from_seed(seed).fork("swarm")`, in this fixed order:
//! 1. each fault `type` the file uses, in name order: kept with chance 1/2 (every
//!    `[[fault]]` of a dropped type is removed);
//! 2. the added faults, in this order, each with chance 1/2: a `partition` of a random
//!    non-empty proper subset of servers, a `crash` of one server, a lossy `link_override`
//!    (loss 1/10 to 5/10) on one directed link, a `slow` server (50 to 2,000 ms extra);
//!    each starts uniformly between 0 and the end of the scenario's busy time (its last
//!    step, workload end or fault end) and lasts 1 to 30 s; servers are drawn from the
//!    scenario's server list; partitions, links and slow servers need two servers;
//! 3. each `[[workload]]`, in order: each action kind with a non-zero weight is kept with
//!    chance 1/2 (at least one stays: the first kept, or else the first non-zero).
//!
//! The result is applied to the scenario's TOML document and validated again; if an added
//! fault makes it invalid (say, a crash overlapping one the file already has on that
//! server), added faults are dropped from the last until it validates. The configuration
//! actually applied is recorded in each result line and in the trace header (`swarm`),
//! and `mxsim run --seed N --swarm` draws exactly the same one again.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::scenario::{self, Scenario};
use crate::stdx::{Prng, Ratio, streams};
use crate::sweep::SweepError;

/// A scenario with its seed's swarm configuration applied.
#[derive(Clone, Debug)]
pub struct Drawn {
    pub scenario: Scenario,
    /// The document that validated to `scenario`.
    pub document: toml::Table,
    /// What was drawn (docs/sweeps.md, "Swarm").
    pub config: Value,
}

/// The action kinds of a workload `mix`, in the scenario format's order.
const MIX_KINDS: [&str; 8] =
    ["message", "topic", "name", "power", "join_leave", "ban", "kick", "redact"];

fn half() -> Ratio {
    Ratio::new(1, 2).expect("1/2 is a ratio")
}

/// Draws the swarm configuration of `seed` for the scenario `text` (already validated as
/// `scenario`) and applies it.
pub fn draw(file: &str, text: &str, scenario: &Scenario, seed: u64) -> Result<Drawn, SweepError> {
    let document: toml::Table =
        text.parse().map_err(|e: toml::de::Error| SweepError::Scenario(format!("{file}: {e}")))?;
    let mut prng = Prng::from_seed(seed).fork(streams::SWARM);
    let fault_types = draw_fault_types(&document, &mut prng);
    let added = draw_added_faults(scenario, &mut prng);
    let mixes = draw_workload_mixes(&document, &mut prng);
    apply_valid(file, &document, seed, fault_types, added, mixes)
}

/// Step 1: each fault type the file uses, in name order, kept with chance 1/2.
fn draw_fault_types(document: &toml::Table, prng: &mut Prng) -> serde_json::Map<String, Value> {
    let faults = tables(document, "fault");
    let types: BTreeSet<String> = faults
        .iter()
        .filter_map(|f| f.get("type").and_then(toml::Value::as_str).map(str::to_owned))
        .collect();
    let mut fault_types = serde_json::Map::new();
    for kind in &types {
        fault_types.insert(kind.clone(), Value::Bool(prng.chance(half())));
    }
    fault_types
}

/// Step 2: the added faults, each with chance 1/2, in the order of the module doc.
fn draw_added_faults(scenario: &Scenario, prng: &mut Prng) -> Vec<Value> {
    let servers: Vec<&str> = scenario.servers.iter().map(|s| s.name.as_str()).collect();
    let busy_ms = scenario.end_ms() - scenario.quiet_ms;
    let mut added: Vec<Value> = Vec::new();
    let window = |prng: &mut Prng| {
        let start = prng.range_inclusive(0, busy_ms.max(1_000));
        (start, start + prng.range_inclusive(1_000, 30_000))
    };
    if prng.chance(half()) && servers.len() >= 2 {
        let (start, end) = window(prng);
        let groups = draw_partition_groups(&servers, prng);
        added.push(json!({"type": "partition", "start_ms": start, "end_ms": end,
            "groups": groups}));
    }
    if prng.chance(half()) && !servers.is_empty() {
        let (start, end) = window(prng);
        let node = servers[prng.index(servers.len())];
        added.push(json!({"type": "crash", "start_ms": start, "end_ms": end, "node": node}));
    }
    if prng.chance(half()) && servers.len() >= 2 {
        let (start, end) = window(prng);
        let from = prng.index(servers.len());
        let to = (from + 1 + prng.index(servers.len() - 1)) % servers.len();
        let loss = format!("{}/10", prng.range_inclusive(1, 5));
        added.push(json!({"type": "link_override", "start_ms": start, "end_ms": end,
            "from": servers[from], "to": servers[to], "policy": {"loss": loss}}));
    }
    if prng.chance(half()) && servers.len() >= 2 {
        let (start, end) = window(prng);
        let node = servers[prng.index(servers.len())];
        let extra = prng.range_inclusive(50, 2_000);
        added.push(json!({"type": "slow", "start_ms": start, "end_ms": end, "node": node,
            "extra_delay_ms": extra}));
    }
    added
}

/// The two sides of an added partition (at least two servers): a non-empty proper subset,
/// the first server always on one side, one other server always on the other, the rest
/// drawn.
fn draw_partition_groups<'s>(servers: &[&'s str], prng: &mut Prng) -> [Vec<&'s str>; 2] {
    let mut inside: Vec<&str> = Vec::new();
    let mut outside: Vec<&str> = Vec::new();
    let other = 1 + prng.index(servers.len() - 1);
    for (i, server) in servers.iter().enumerate() {
        let side = if i == 0 {
            true
        } else if i == other {
            false
        } else {
            prng.chance(half())
        };
        if side { inside.push(server) } else { outside.push(server) }
    }
    [inside, outside]
}

/// Step 3: per `[[workload]]`, in order, each action kind with a non-zero weight kept with
/// chance 1/2 (at least one stays).
fn draw_workload_mixes(document: &toml::Table, prng: &mut Prng) -> Vec<Value> {
    let mut mixes: Vec<Value> = Vec::new();
    for workload in tables(document, "workload") {
        let written = workload.get("mix").and_then(toml::Value::as_table);
        let weight = |kind: &str| -> i64 {
            match written {
                Some(mix) => mix.get(kind).and_then(toml::Value::as_integer).unwrap_or(0),
                None => i64::from(kind == "message"),
            }
        };
        let present: Vec<&str> = MIX_KINDS.iter().copied().filter(|k| weight(k) > 0).collect();
        let mut kept: Vec<&str> = present.iter().copied().filter(|_| prng.chance(half())).collect();
        if kept.is_empty() {
            kept.extend(present.first());
        }
        let mix: serde_json::Map<String, Value> = MIX_KINDS
            .iter()
            .map(|&k| (k.to_owned(), json!(if kept.contains(&k) { weight(k) } else { 0 })))
            .collect();
        mixes.push(Value::Object(mix));
    }
    mixes
}

/// Applies the drawn configuration, dropping added faults from the last until the
/// document validates.
fn apply_valid(
    file: &str,
    document: &toml::Table,
    seed: u64,
    fault_types: serde_json::Map<String, Value>,
    mut added: Vec<Value>,
    mixes: Vec<Value>,
) -> Result<Drawn, SweepError> {
    loop {
        let config = json!({"fault_types": fault_types, "added_faults": added,
            "workload_mix": mixes});
        let applied = apply(document, &config)?;
        let text = toml::to_string(&applied)
            .map_err(|e| SweepError::Scenario(format!("{file}: swarm: {e}")))?;
        match scenario::parse(file, &text) {
            Ok(scenario) => return Ok(Drawn { scenario, document: applied, config }),
            Err(error) if added.is_empty() => {
                return Err(SweepError::Scenario(format!(
                    "swarm configuration of seed {seed}: {error}"
                )));
            }
            Err(_) => {
                added.pop();
            }
        }
    }
}

/// The array of tables `key` of a document (empty if absent).
pub(crate) fn tables<'d>(document: &'d toml::Table, key: &str) -> Vec<&'d toml::Table> {
    document
        .get(key)
        .and_then(toml::Value::as_array)
        .map(|a| a.iter().filter_map(toml::Value::as_table).collect())
        .unwrap_or_default()
}

/// `document` with a drawn configuration applied.
fn apply(document: &toml::Table, config: &Value) -> Result<toml::Table, SweepError> {
    let convert = |value: &Value| {
        toml::Value::try_from(value)
            .map_err(|e| SweepError::Scenario(format!("swarm configuration: {e}")))
    };
    let mut out = document.clone();
    let enabled =
        |kind: &str| config["fault_types"].get(kind).and_then(Value::as_bool).unwrap_or(true);
    let mut faults: Vec<toml::Value> = tables(document, "fault")
        .into_iter()
        .filter(|f| f.get("type").and_then(toml::Value::as_str).is_none_or(enabled))
        .map(|f| toml::Value::Table(f.clone()))
        .collect();
    for fault in config["added_faults"].as_array().into_iter().flatten() {
        faults.push(convert(fault)?);
    }
    if faults.is_empty() {
        out.remove("fault");
    } else {
        out.insert("fault".into(), toml::Value::Array(faults));
    }
    if let Some(toml::Value::Array(workloads)) = out.get_mut("workload") {
        for (workload, mix) in
            workloads.iter_mut().zip(config["workload_mix"].as_array().into_iter().flatten())
        {
            if let toml::Value::Table(workload) = workload {
                workload.insert("mix".into(), convert(mix)?);
            }
        }
    }
    Ok(out)
}
