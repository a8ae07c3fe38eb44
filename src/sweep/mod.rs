//! Seed sweeps, swarm testing, shard merging and shrinking: the deterministic part of
//! `mxsim sweep`, `mxsim merge` and `mxsim shrink` (docs/sweeps.md).
//!
//! - [`SeedRange`] and [`Shard`]: which seeds a sweep (or one shard of it) runs. A shard
//!   `K/N` takes every N-th seed of the range starting at the K-th, so that every shard
//!   gets a like share of slow and fast seeds, and the N shards together are the range,
//!   each seed exactly once.
//! - [`Job::run_seed`]: one simulation of one seed, checked, as a [`SeedResult`] line.
//! - [`swarm`]: per seed, switch fault types and workload features on or off and draw
//!   their parameters from the seed.
//! - [`results`]: the JSONL results format, the summary text, and [`results::merge`].
//! - [`shrink`]: delta debugging over a scenario's TOML document.
//!
//! Architecture Invariant: no threads, files, environment or wall clock here (the
//! command line owns them: it runs seeds planned by [`Job::plan`] on worker threads, with
//! their records spooled to a file as `mxsim run` does, and measures wall time);
//! everything this module decides is a function of its inputs and the seed.
//! The `toml` crate is used here (besides `scenario`) to edit scenario documents: swarm
//! and shrink change the written form and let [`crate::scenario::parse`] validate it, so
//! that fields added to scenario files later keep working without changes here.

pub mod results;
pub mod shrink;
pub mod swarm;

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::check::{self, Verdict};
use crate::scenario::{self, Scenario};
use crate::trace::{self, Trace};
use crate::world::{self, Plan, RunOutput};

pub use results::{Meta, SeedResult};

/// Most shards a sweep is split into.
pub const SHARDS_MAX: u64 = 1_000_000;

/// An error of a sweep, a merge or a shrink: bad input, named with its source.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The scenario (or a document derived from it) does not validate.
    #[error("{0}")]
    Scenario(String),
    /// A bad argument (seed range, shard).
    #[error("{0}")]
    Usage(String),
    /// A results file that cannot be read or merged.
    #[error("{0}")]
    Results(String),
}

/// A half-open range of seeds `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

impl SeedRange {
    /// Reads `A..B` (B excluded) or `A..=B` (B included).
    pub fn parse(text: &str) -> Result<SeedRange, SweepError> {
        let bad = |why: &str| {
            SweepError::Usage(format!("seed range {text:?}: {why} (write A..B or A..=B)"))
        };
        let (start, end, inclusive) = if let Some((a, b)) = text.split_once("..=") {
            (a, b, true)
        } else if let Some((a, b)) = text.split_once("..") {
            (a, b, false)
        } else {
            return Err(bad("no `..`"));
        };
        let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad("not a number"));
        let start = number(start)?;
        let mut end = number(end)?;
        if inclusive {
            end = end.checked_add(1).ok_or_else(|| bad("too large"))?;
        }
        if end <= start {
            return Err(bad("empty"));
        }
        Ok(SeedRange { start, end })
    }

    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

impl fmt::Display for SeedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// Shard `index` of `count` (0-based): the seeds `start + index`, `start + index +
/// count`, … of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// The whole range.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// A shard with `index < count <= SHARDS_MAX`.
    pub fn new(index: u64, count: u64) -> Result<Shard, SweepError> {
        if count == 0 || count > SHARDS_MAX {
            return Err(SweepError::Usage(format!(
                "shard count {count}: must be 1 to {SHARDS_MAX}"
            )));
        }
        if index >= count {
            return Err(SweepError::Usage(format!(
                "shard {index}/{count}: the index counts from 0 and must be below {count}"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Reads `K/N`.
    pub fn parse(text: &str) -> Result<Shard, SweepError> {
        let (k, n) = text.split_once('/').ok_or_else(|| {
            SweepError::Usage(format!("shard {text:?}: write K/N (K from 0), or auto"))
        })?;
        let number = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| SweepError::Usage(format!("shard {text:?}: {s:?} is not a number")))
        };
        Shard::new(number(k)?, number(n)?)
    }

    /// The seeds of `range` in this shard, in increasing order.
    pub fn seeds(self, range: SeedRange) -> impl Iterator<Item = u64> {
        let first = range.start.checked_add(self.index).filter(|&s| s < range.end);
        let step = usize::try_from(self.count).unwrap_or(usize::MAX);
        first.into_iter().flat_map(move |first| (first..range.end).step_by(step))
    }

    /// Whether `seed` of `range` belongs to this shard.
    pub fn contains(self, range: SeedRange, seed: u64) -> bool {
        seed >= range.start && seed < range.end && (seed - range.start) % self.count == self.index
    }

    /// How many seeds of `range` are in this shard.
    pub fn seed_count(self, range: SeedRange) -> u64 {
        let len = range.len();
        if self.index >= len { 0 } else { (len - self.index).div_ceil(self.count) }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Test-only changes to a run's plan (a planted bug); the command line never sets any.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hooks {
    pub plan: Option<fn(&mut Plan)>,
}

/// One scenario swept over seeds.
#[derive(Clone, Debug)]
pub struct Job {
    /// The scenario file's name, for messages and reproduction commands.
    pub file: String,
    /// The scenario file's text.
    pub text: String,
    /// The scenario as written (validated once).
    pub scenario: Scenario,
    /// Draw a swarm configuration per seed ([`swarm`]).
    pub swarm: bool,
    pub mxsim_version: String,
    pub hooks: Hooks,
}

/// One seed's run: the output, the verdict and the trace hash (the trace's bytes are
/// written only for a run whose files are kept).
#[derive(Debug)]
pub struct SeedRun {
    pub scenario: Scenario,
    pub output: RunOutput,
    pub verdict: Verdict,
    pub trace_hash: String,
    /// The swarm configuration, when swarm mode drew one.
    pub swarm: Option<Value>,
}

impl Job {
    /// Validates the scenario text.
    pub fn new(
        file: &str,
        text: &str,
        swarm: bool,
        mxsim_version: &str,
    ) -> Result<Job, SweepError> {
        let scenario =
            scenario::parse(file, text).map_err(|e| SweepError::Scenario(e.to_string()))?;
        Ok(Job {
            file: file.to_owned(),
            text: text.to_owned(),
            scenario,
            swarm,
            mxsim_version: mxsim_version.to_owned(),
            hooks: Hooks::default(),
        })
    }

    /// The scenario and plan for `seed`: as written, or with the seed's swarm
    /// configuration applied.
    pub fn plan(&self, seed: u64) -> Result<(Scenario, Plan), SweepError> {
        let (scenario, swarm) = if self.swarm {
            let drawn = swarm::draw(&self.file, &self.text, &self.scenario, seed)?;
            (drawn.scenario, Some(drawn.config))
        } else {
            (self.scenario.clone(), None)
        };
        let mut plan = world::from_scenario::plan(&scenario, seed, &self.mxsim_version)
            .map_err(|e| SweepError::Scenario(format!("{}: {e}", self.file)))?;
        plan.swarm = swarm;
        if let Some(hook) = self.hooks.plan {
            hook(&mut plan);
        }
        Ok((scenario, plan))
    }

    /// Runs and checks one seed.
    pub fn run(&self, seed: u64) -> Result<SeedRun, SweepError> {
        let (scenario, plan) = self.plan(seed)?;
        let output =
            world::run(&plan).map_err(|e| SweepError::Scenario(format!("{}: {e}", self.file)))?;
        let verdict = check::check(&output.trace);
        let trace_hash = output.trace.hash();
        Ok(SeedRun { scenario, output, verdict, trace_hash, swarm: plan.swarm })
    }

    /// The result line of a run (wall time measured by the caller).
    pub fn result(&self, seed: u64, run: &SeedRun, wall_ms: u64) -> SeedResult {
        SeedResult::new(seed, &run.output.trace, &run.verdict, &run.trace_hash, run.swarm.clone())
            .with_reproduce(reproduction(&self.file, seed, self.swarm))
            .with_wall_ms(wall_ms)
    }

    /// Runs one seed and returns its result line only (wall time 0).
    pub fn run_seed(&self, seed: u64) -> Result<SeedResult, SweepError> {
        let run = self.run(seed)?;
        Ok(self.result(seed, &run, 0))
    }
}

/// The command that repeats one seed's run.
pub fn reproduction(file: &str, seed: u64, swarm: bool) -> String {
    format!("mxsim run {file} --seed {seed}{}", if swarm { " --swarm" } else { "" })
}

/// The violated invariants of a verdict, sorted, without repeats.
pub fn violated(verdict: &Verdict) -> Vec<String> {
    let mut ids: Vec<String> =
        verdict.violations.iter().map(|v| v.invariant.as_str().to_owned()).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// A trace's metrics as a sorted map.
pub fn metrics(trace: &Trace) -> BTreeMap<String, u64> {
    trace::metrics(trace).into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
