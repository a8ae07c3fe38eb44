//! The results of a sweep as JSONL (docs/sweeps.md): a [`Meta`] line, one [`SeedResult`]
//! line per finished seed (in the order they finished), and an [`End`] line; the summary
//! text; JUnit XML; and [`merge`], which joins the files of the shards of one sweep.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::check::Verdict;
use crate::sweep::{SeedRange, Shard, SweepError};
use crate::trace::Trace;

/// The format tag of the first line.
pub const FORMAT: &str = "mxsim-sweep/1";

/// The first line of a results file: what was swept, by which build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Always `"sweep"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always [`FORMAT`].
    pub format: String,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file as given on the command line (for reproduction commands).
    pub scenario_file: String,
    /// SHA-256 of the scenario file's bytes: shards of one sweep ran the same scenario.
    pub scenario_sha256: String,
    /// The whole sweep's seed range, `A..B` (B excluded).
    pub seeds: String,
    /// This file's shard, `K/N`; `0/1` for a whole sweep.
    pub shard: String,
    pub swarm: bool,
    pub mxsim_version: String,
    /// Identifies the executable (SHA-256 of its bytes, shortened): results of different
    /// builds are never merged.
    pub build: String,
}

impl Meta {
    pub fn range(&self) -> Result<SeedRange, SweepError> {
        SeedRange::parse(&self.seeds)
    }

    pub fn shard(&self) -> Result<Shard, SweepError> {
        Shard::parse(&self.shard)
    }
}

/// One seed's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedResult {
    /// Always `"seed"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub seed: u64,
    /// `"pass"` or `"fail"`.
    pub verdict: String,
    /// The violated invariants, sorted, without repeats.
    pub violations: Vec<String>,
    /// SHA-256 of the trace (the same as `mxsim run` prints for this seed).
    pub trace_hash: String,
    /// The trace's metrics (docs/trace.md).
    pub metrics: BTreeMap<String, u64>,
    /// The swarm configuration drawn from the seed (only with `--swarm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<Value>,
    /// The command that repeats this run.
    pub reproduce: String,
    /// Wall-clock milliseconds of the run: the only field that differs between machines.
    pub wall_ms: u64,
}

impl SeedResult {
    pub fn new(
        seed: u64,
        trace: &Trace,
        verdict: &Verdict,
        trace_hash: &str,
        swarm: Option<Value>,
    ) -> SeedResult {
        SeedResult {
            kind: "seed".into(),
            seed,
            verdict: if verdict.passed() { "pass" } else { "fail" }.into(),
            violations: super::violated(verdict),
            trace_hash: trace_hash.to_owned(),
            metrics: super::metrics(trace),
            swarm,
            reproduce: String::new(),
            wall_ms: 0,
        }
    }

    pub fn with_reproduce(mut self, reproduce: String) -> SeedResult {
        self.reproduce = reproduce;
        self
    }

    pub fn with_wall_ms(mut self, wall_ms: u64) -> SeedResult {
        self.wall_ms = wall_ms;
        self
    }

    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }

    /// The line without its wall time: equal for the same seed on any machine.
    pub fn deterministic_part(&self) -> SeedResult {
        SeedResult { wall_ms: 0, ..self.clone() }
    }
}

/// The last line of a results file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct End {
    /// Always `"end"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Seeds with a result line.
    pub seeds_run: u64,
    /// Seeds the shard holds.
    pub seeds_planned: u64,
    /// Why the sweep stopped early: `"time_budget"` or `"interrupted"`; absent when it ran
    /// every seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// A results file read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultsFile {
    pub meta: Meta,
    pub results: Vec<SeedResult>,
    /// Absent when the writer was killed before it finished.
    pub end: Option<End>,
}

/// One JSON line (with its newline) of a serializable value.
pub fn line<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string(value).expect("results serialize");
    text.push('\n');
    text
}

/// Reads a results file; `file` names it in errors, with the line number.
pub fn parse(file: &str, text: &str) -> Result<ResultsFile, SweepError> {
    let bad = |number: usize, problem: String| {
        SweepError::Results(format!("{file}: line {}: {problem}", number + 1))
    };
    let mut meta = None;
    let mut results = Vec::new();
    let mut end = None;
    for (number, text) in text.lines().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| bad(number, format!("not JSON: {e}")))?;
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("").to_owned();
        if end.is_some() {
            return Err(bad(number, "a line after the end line".into()));
        }
        match (kind.as_str(), &meta) {
            ("sweep", None) => {
                let read: Meta =
                    serde_json::from_value(value).map_err(|e| bad(number, e.to_string()))?;
                if read.format != FORMAT {
                    return Err(bad(
                        number,
                        format!("format {:?}, expected {FORMAT:?}", read.format),
                    ));
                }
                read.range().map_err(|e| bad(number, e.to_string()))?;
                read.shard().map_err(|e| bad(number, e.to_string()))?;
                meta = Some(read);
            }
            (_, None) => return Err(bad(number, "the first line must be the sweep line".into())),
            ("seed", Some(_)) => {
                results.push(serde_json::from_value(value).map_err(|e| bad(number, e.to_string()))?)
            }
            ("end", Some(_)) => {
                end = Some(serde_json::from_value(value).map_err(|e| bad(number, e.to_string()))?)
            }
            (other, Some(_)) => return Err(bad(number, format!("unknown line type {other:?}"))),
        }
    }
    let meta = meta.ok_or_else(|| SweepError::Results(format!("{file}: empty")))?;
    Ok(ResultsFile { meta, results, end })
}

/// Joins the results files of the shards of one sweep into the whole sweep's results,
/// sorted by seed. Refused: files of different scenarios, seed ranges, swarm settings or
/// builds; two files of one shard or one seed twice (overlapping slices); a shard
/// missing, or a shard whose file lacks seeds (missing slices); a seed outside its shard.
pub fn merge(files: &[(String, ResultsFile)]) -> Result<(Meta, Vec<SeedResult>), SweepError> {
    let refuse = |why: String| Err(SweepError::Results(format!("cannot merge: {why}")));
    let Some((first_name, first)) = files.first() else {
        return refuse("no files".into());
    };
    let range = first.meta.range()?;
    let count = first.meta.shard()?.count;
    let mut by_shard: BTreeMap<u64, &str> = BTreeMap::new();
    let mut seeds: BTreeMap<u64, (&str, &SeedResult)> = BTreeMap::new();
    for (name, file) in files {
        let meta = &file.meta;
        if meta.build != first.meta.build || meta.mxsim_version != first.meta.mxsim_version {
            return refuse(format!(
                "mixed builds: {first_name} is mxsim {} build {}, {name} is mxsim {} build {}",
                first.meta.mxsim_version, first.meta.build, meta.mxsim_version, meta.build
            ));
        }
        for (what, a, b) in [
            ("scenario", &first.meta.scenario_sha256, &meta.scenario_sha256),
            ("seed range", &first.meta.seeds, &meta.seeds),
        ] {
            if a != b {
                return refuse(format!("{first_name} and {name} have different {what}s"));
            }
        }
        if meta.swarm != first.meta.swarm {
            return refuse(format!("{first_name} and {name} differ in --swarm"));
        }
        let shard = meta.shard()?;
        if shard.count != count {
            return refuse(format!(
                "{first_name} is one of {count} shards, {name} one of {}",
                shard.count
            ));
        }
        if let Some(other) = by_shard.insert(shard.index, name) {
            return refuse(format!(
                "overlapping slices: {other} and {name} are both shard {shard}"
            ));
        }
        for result in &file.results {
            if !shard.contains(range, result.seed) {
                return refuse(format!("{name}: seed {} is not in shard {shard}", result.seed));
            }
            if let Some((other, _)) = seeds.insert(result.seed, (name, result)) {
                return refuse(format!(
                    "overlapping slices: seed {} is in {other} and in {name}",
                    result.seed
                ));
            }
        }
        let planned = shard.seed_count(range);
        let run = file.results.len() as u64;
        if run != planned {
            let why = match file.end.as_ref().and_then(|e| e.stopped.as_deref()) {
                Some(reason) => format!("stopped early: {reason}"),
                None if file.end.is_none() => "the file has no end line".into(),
                None => "seeds are missing".into(),
            };
            return refuse(format!(
                "missing slices: {name} (shard {shard}) has {run} of its {planned} seeds ({why})"
            ));
        }
    }
    let missing: Vec<String> =
        (0..count).filter(|k| !by_shard.contains_key(k)).map(|k| format!("{k}/{count}")).collect();
    if !missing.is_empty() {
        return refuse(format!("missing slices: no file for shard {}", missing.join(", ")));
    }
    assert_eq!(seeds.len() as u64, range.len(), "complete shards cover the range");
    let meta = Meta { shard: Shard::WHOLE.to_string(), ..first.meta.clone() };
    Ok((meta, seeds.into_values().map(|(_, r)| r.clone()).collect()))
}

/// The closing summary of a sweep (or a merge): counts, then each failing seed with its
/// violated invariants and reproduction command.
pub fn summary(meta: &Meta, results: &[SeedResult], planned: u64, stopped: Option<&str>) -> String {
    let mut failing: Vec<&SeedResult> = results.iter().filter(|r| !r.passed()).collect();
    failing.sort_by_key(|r| r.seed);
    let mut out = String::new();
    let _ = write!(
        out,
        "sweep {} seeds {} shard {}{}: {} run, {} passed, {} failed",
        meta.scenario,
        meta.seeds,
        meta.shard,
        if meta.swarm { " swarm" } else { "" },
        results.len(),
        results.len() - failing.len(),
        failing.len(),
    );
    if let Some(reason) = stopped {
        let _ =
            write!(out, "; stopped early ({reason}) after {} of {planned} seeds", results.len());
    }
    out.push('\n');
    for result in failing {
        let _ = writeln!(out, "FAIL seed {}: {}", result.seed, result.violations.join(", "));
        let _ = writeln!(out, "  reproduce: {}", result.reproduce);
    }
    out
}

/// Escapes text for XML attribute values and character data.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newlines are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Milliseconds as JUnit's decimal seconds.
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// JUnit XML: one test suite for the sweep, one test case per seed (sorted by seed), a
/// `<failure>` naming the violated invariants and the reproduction command.
pub fn junit(meta: &Meta, results: &[SeedResult]) -> String {
    let mut sorted: Vec<&SeedResult> = results.iter().collect();
    sorted.sort_by_key(|r| r.seed);
    let failures = sorted.iter().filter(|r| !r.passed()).count();
    let total_ms: u64 = sorted.iter().map(|r| r.wall_ms).sum();
    let name = xml_escape(&meta.scenario);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"mxsim sweep\" tests=\"{}\" failures=\"{failures}\" time=\"{}\">",
        sorted.len(),
        seconds(total_ms)
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{}\">",
        sorted.len(),
        seconds(total_ms)
    );
    for result in sorted {
        let _ = write!(
            out,
            "    <testcase classname=\"mxsim.{name}\" name=\"seed {}\" time=\"{}\"",
            result.seed,
            seconds(result.wall_ms)
        );
        if result.passed() {
            out.push_str("/>\n");
            continue;
        }
        let invariants = xml_escape(&result.violations.join(", "));
        let _ = writeln!(
            out,
            ">\n      <failure message=\"violated: {invariants}\" type=\"{}\">reproduce: {}</failure>\n    </testcase>",
            xml_escape(result.violations.first().map_or("", String::as_str)),
            xml_escape(&result.reproduce)
        );
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
