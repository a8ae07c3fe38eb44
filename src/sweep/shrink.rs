//! Shrinking a failing seed to a minimal scenario (`mxsim shrink`): delta debugging over
//! the scenario's TOML document, keeping only what is needed for the same invariant to
//! fail.
//!
//! The search works on the written form, not on the validated [`Scenario`]: every
//! candidate is the document with some entries removed or some numbers lowered, and
//! [`crate::scenario::parse`] decides whether it is still a scenario. So the search needs
//! no knowledge of what each field means, keeps working when fields are added, and its
//! result is a normal scenario file.
//!
//! 1. Entries: every entry of every array of tables (`[[fault]]`, `[[step]]`, `[[server]]`,
//!    `[[room]]`, `[[workload]]`, `[[settle]]`, and any added later) is one unit; units are
//!    removed in chunks, halving the chunk size down to one (ddmin's complement steps,
//!    Zeller and Hildebrandt 2002). Removing a `[[server]]` also removes every string
//!    naming it or one of its users from arrays and every table that names them, so that
//!    a server goes with its steps.
//! 2. Numbers: the run length (`quiet_ms`), each workload's length (`end_ms` towards
//!    `start_ms`), each fault's length, `[[server_group]]` sizes and `[[settle]]` rounds
//!    are lowered by bisection, each with at most [`PROBES_MAX`] runs.
//! 3. Both again while anything changed, at most [`PASSES_MAX`] times.
//!
//! A candidate "still fails" when a run of it with the seed violates the target invariant
//! (the original run's first violation, unless one is named). Removing something can shift
//! the random streams (a workload drawn from the seed, say); with `reseed` > 0 a candidate
//! that passes is also tried with the next `reseed` seeds, and the result names the seed
//! it fails with. Every run counts against `runs_max`.

use std::fmt;

use crate::scenario::{self, Scenario};
use crate::stdx::Invariant;
use crate::stdx::{Prng, streams};
use crate::sweep::{Hooks, Job, SweepError, swarm};

/// Most passes over entries and numbers.
pub const PASSES_MAX: u64 = 3;
/// Most runs per number bisected.
pub const PROBES_MAX: u64 = 6;

/// Knobs of [`shrink`].
#[derive(Clone, Debug)]
pub struct Options {
    /// The invariant that must keep failing (default: the original run's first violation).
    pub invariant: Option<Invariant>,
    /// Extra seeds tried for a candidate that passes with the current seed.
    pub reseed: u64,
    /// Most simulation runs in all.
    pub runs_max: u64,
    /// A differential shrink: a candidate counts as failing only if the same candidate and
    /// seed run with these hooks does not violate the invariant, so that what is kept is
    /// what makes the difference between the two (for a planted bug: the bug, not a
    /// scenario that fails anyway, such as a quiet room whose concurrent joins never
    /// reach each other). The command line never sets it.
    pub control: Option<Hooks>,
}

impl Default for Options {
    fn default() -> Options {
        Options { invariant: None, reseed: 0, runs_max: 400, control: None }
    }
}

/// How big a scenario is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub servers: u64,
    /// Scripted steps after `[[room]]` expansion.
    pub steps: u64,
    /// Steps the workloads generate with the seed.
    pub workload_steps: u64,
    pub faults: u64,
    /// When the run stops (virtual ms).
    pub end_ms: u64,
    /// Bytes of the TOML text.
    pub bytes: u64,
}

impl Size {
    pub fn of(scenario: &Scenario, seed: u64, text: &str) -> Size {
        let workload = Prng::from_seed(seed).fork(streams::WORKLOAD);
        Size {
            servers: scenario.servers.len() as u64,
            steps: scenario.steps.len() as u64,
            workload_steps: scenario.expand_workloads(&workload).len() as u64,
            faults: scenario.faults.faults().len() as u64,
            end_ms: scenario.end_ms(),
            bytes: text.len() as u64,
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} servers, {} steps, {} workload steps, {} faults, {} s run, {} bytes",
            self.servers,
            self.steps,
            self.workload_steps,
            self.faults,
            self.end_ms / 1000,
            self.bytes
        )
    }
}

/// The result of [`shrink`].
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The minimal scenario as TOML.
    pub text: String,
    /// The seed it fails with.
    pub seed: u64,
    pub invariant: Invariant,
    pub before: Size,
    pub after: Size,
    /// Simulation runs spent.
    pub runs: u64,
}

struct Search<'j> {
    job: &'j Job,
    invariant: Invariant,
    options: Options,
    runs: u64,
    seed: u64,
}

impl Search<'_> {
    /// Whether `document` is a scenario that still fails; on success with another seed,
    /// that seed becomes the current one.
    fn fails(&mut self, document: &toml::Table) -> bool {
        let Ok(text) = toml::to_string(document) else { return false };
        let Ok(mut job) = Job::new(&self.job.file, &text, false, &self.job.mxsim_version) else {
            return false;
        };
        job.hooks = self.job.hooks;
        for seed in self.seed..=self.seed.saturating_add(self.options.reseed) {
            if self.runs >= self.options.runs_max {
                return false;
            }
            self.runs += 1;
            let Ok(run) = job.run(seed) else { return false };
            if !run.verdict.violations.iter().any(|v| v.invariant == self.invariant) {
                continue;
            }
            if let Some(control) = self.options.control {
                let mut control_job = job.clone();
                control_job.hooks = control;
                self.runs += 1;
                let Ok(control_run) = control_job.run(seed) else { return false };
                if control_run.verdict.violations.iter().any(|v| v.invariant == self.invariant) {
                    continue;
                }
            }
            self.seed = seed;
            return true;
        }
        false
    }

    /// Removes units (chunks halving down to one) while the document keeps failing.
    fn remove_entries(&mut self, document: &mut toml::Table) -> bool {
        let mut changed = false;
        let mut chunk = entries(document).len().div_ceil(2).max(1);
        loop {
            let mut start = 0;
            loop {
                let units = entries(document);
                if start >= units.len() {
                    break;
                }
                let end = (start + chunk).min(units.len());
                let candidate = without(document, &units[start..end]);
                if self.fails(&candidate) {
                    *document = candidate;
                    changed = true;
                } else {
                    start = end;
                }
                if self.runs >= self.options.runs_max {
                    return changed;
                }
            }
            if chunk == 1 {
                return changed;
            }
            chunk = chunk.div_ceil(2);
        }
    }

    /// Lowers numbers by bisection while the document keeps failing.
    fn lower_numbers(&mut self, document: &mut toml::Table) -> bool {
        let mut changed = false;
        for knob in knobs(document) {
            let Some(current) = knob.get(document) else { continue };
            let (mut low, mut high) = (knob.min, current);
            let mut probes = 0;
            while low < high && probes < PROBES_MAX && self.runs < self.options.runs_max {
                probes += 1;
                let mid = low + (high - low) / 2;
                let mut candidate = document.clone();
                knob.set(&mut candidate, mid);
                if self.fails(&candidate) {
                    high = mid;
                    *document = candidate;
                    changed = true;
                } else {
                    low = mid + 1;
                }
            }
        }
        changed
    }
}

/// A number in the document that can be lowered: `key` at the top level, or `field` of
/// entry `index` of the array of tables `key`.
#[derive(Clone, Debug)]
struct Knob {
    key: String,
    entry: Option<(usize, String)>,
    min: i64,
}

impl Knob {
    fn get(&self, document: &toml::Table) -> Option<i64> {
        match &self.entry {
            // An absent run length is the default quiet period, which can be lowered too.
            None if self.key == "quiet_ms" && !document.contains_key("quiet_ms") => {
                i64::try_from(scenario::QUIET_MS_DEFAULT).ok()
            }
            None => document.get(&self.key)?.as_integer(),
            Some((index, field)) => {
                document.get(&self.key)?.as_array()?.get(*index)?.get(field)?.as_integer()
            }
        }
    }

    fn set(&self, document: &mut toml::Table, value: i64) {
        let value = toml::Value::Integer(value);
        match &self.entry {
            None => {
                document.insert(self.key.clone(), value);
            }
            Some((index, field)) => {
                if let Some(toml::Value::Table(table)) = document
                    .get_mut(&self.key)
                    .and_then(toml::Value::as_array_mut)
                    .and_then(|a| a.get_mut(*index))
                {
                    table.insert(field.clone(), value);
                }
            }
        }
    }
}

fn knobs(document: &toml::Table) -> Vec<Knob> {
    let mut knobs = vec![Knob { key: "quiet_ms".into(), entry: None, min: 0 }];
    let int = |table: &toml::Table, field: &str| table.get(field).and_then(toml::Value::as_integer);
    for (key, field, floor) in [
        ("workload", "end_ms", "start_ms"),
        ("fault", "end_ms", "start_ms"),
        ("server_group", "count", ""),
        ("settle", "rounds", ""),
    ] {
        for (index, table) in swarm::tables(document, key).into_iter().enumerate() {
            if int(table, field).is_none() {
                continue;
            }
            // Faults of one millisecond still exist; a crash needs at least that.
            let min = if floor.is_empty() { 1 } else { int(table, floor).unwrap_or(0) + 1 };
            knobs.push(Knob { key: key.into(), entry: Some((index, field.into())), min });
        }
    }
    knobs
}

/// The removable entries of a document: every entry of every array of tables, as (key,
/// index).
pub fn entries(document: &toml::Table) -> Vec<(String, usize)> {
    let mut units = Vec::new();
    for (key, value) in document {
        if let Some(array) = value.as_array() {
            if array.iter().all(toml::Value::is_table) {
                units.extend((0..array.len()).map(|i| (key.clone(), i)));
            }
        }
    }
    units
}

/// `document` without the given entries; removed servers take along every mention of
/// them and their users.
pub fn without(document: &toml::Table, units: &[(String, usize)]) -> toml::Table {
    let mut out = document.clone();
    let mut servers: Vec<String> = Vec::new();
    for key in units.iter().map(|(k, _)| k).collect::<std::collections::BTreeSet<_>>() {
        let Some(toml::Value::Array(array)) = out.get_mut(key) else { continue };
        let drop: Vec<usize> = units.iter().filter(|(k, _)| k == key).map(|(_, i)| *i).collect();
        let mut index = 0;
        array.retain(|entry| {
            let keep = !drop.contains(&index);
            index += 1;
            if !keep && key == "server" {
                servers.extend(entry.get("name").and_then(toml::Value::as_str).map(str::to_owned));
            }
            keep
        });
        if array.is_empty() {
            out.remove(key);
        }
    }
    if !servers.is_empty() {
        let names = |s: &str| servers.iter().any(|n| s == n || s.ends_with(&format!(":{n}")));
        for (_, value) in out.iter_mut() {
            scrub(value, &names);
        }
        // An array of tables the scrub emptied goes too (`step = []` says nothing).
        out.retain(|_, value| value.as_array().is_none_or(|a| !a.is_empty()));
    }
    out
}

/// Removes strings that `names` matches from arrays, table keys it matches, and tables
/// with a string field it matches from arrays.
fn scrub(value: &mut toml::Value, names: &dyn Fn(&str) -> bool) {
    match value {
        toml::Value::Array(items) => {
            items.retain(|item| match item {
                toml::Value::String(s) => !names(s),
                toml::Value::Table(t) => !t.values().any(|v| v.as_str().is_some_and(names)),
                _ => true,
            });
            for item in items.iter_mut() {
                scrub(item, names);
            }
            items.retain(|item| item.as_array().is_none_or(|a| !a.is_empty()));
        }
        toml::Value::Table(table) => {
            table.retain(|key, _| !names(key));
            for (_, item) in table.iter_mut() {
                scrub(item, names);
            }
        }
        _ => {}
    }
}

/// Shrinks the scenario of `job` failing with `seed` (with the seed's swarm configuration
/// written into the document when `job.swarm` is set).
pub fn shrink(job: &Job, seed: u64, options: &Options) -> Result<Shrunk, SweepError> {
    let (document, scenario) = if job.swarm {
        let drawn = swarm::draw(&job.file, &job.text, &job.scenario, seed)?;
        (drawn.document, drawn.scenario)
    } else {
        let document: toml::Table = job
            .text
            .parse()
            .map_err(|e: toml::de::Error| SweepError::Scenario(format!("{}: {e}", job.file)))?;
        (document, job.scenario.clone())
    };
    let run = job.run(seed)?;
    let invariant = match &options.invariant {
        Some(invariant) => *invariant,
        None => match run.verdict.violations.first() {
            Some(violation) => violation.invariant,
            None => {
                return Err(SweepError::Usage(format!(
                    "{} passes with seed {seed}: nothing to shrink",
                    job.file
                )));
            }
        },
    };
    if !run.verdict.violations.iter().any(|v| v.invariant == invariant) {
        return Err(SweepError::Usage(format!(
            "{} seed {seed} does not violate {invariant}: nothing to shrink",
            job.file
        )));
    }
    let before = Size::of(&scenario, seed, &job.text);
    let mut search = Search { job, invariant, options: options.clone(), runs: 1, seed };
    let mut document = document;
    for _ in 0..PASSES_MAX {
        let removed = search.remove_entries(&mut document);
        let lowered = search.lower_numbers(&mut document);
        if !(removed || lowered) || search.runs >= search.options.runs_max {
            break;
        }
    }
    let text = toml::to_string(&document)
        .map_err(|e| SweepError::Scenario(format!("{}: {e}", job.file)))?;
    let minimal = scenario::parse(&job.file, &text)
        .map_err(|e| SweepError::Scenario(format!("shrunk scenario: {e}")))?;
    let after = Size::of(&minimal, search.seed, &text);
    Ok(Shrunk {
        text,
        seed: search.seed,
        invariant: search.invariant,
        before,
        after,
        runs: search.runs,
    })
}
