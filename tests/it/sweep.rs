//! Sweeps, shards, merge, swarm replay and shrinking: a bounded slice for every run of the
//! suite, plus the real-Slurm check behind `MXSIM_SLURM=1`.
//!
//! The planted bug (`homeserver::server::PlantedBug`, reachable only through this library
//! API) proves that the pipeline finds bugs: a sweep must find a seed where it breaks an
//! invariant, the same seeds must pass without it, and shrinking must reduce the scenario
//! to a smaller one that still fails on its own, and passes without the bug.

use std::path::{Path, PathBuf};
use std::process::Command;

use mxsim::homeserver::server::PlantedBug;
use mxsim::stdx::Invariant;
use mxsim::sweep::results::{self, End, Meta, ResultsFile, SeedResult};
use mxsim::sweep::{Hooks, Job, SeedRange, Shard, shrink, swarm};
use mxsim::world::Plan;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn scenario(name: &str) -> (String, String) {
    let file = format!("scenarios/{name}.toml");
    let text = std::fs::read_to_string(Path::new(ROOT).join(&file)).unwrap();
    (file, text)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sweep").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn mxsim(dir: &Path, args: &[&str]) -> Run {
    let output =
        Command::new(env!("CARGO_BIN_EXE_mxsim")).args(args).current_dir(dir).output().unwrap();
    let run = Run {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    assert!(!run.stderr.contains("panicked"), "mxsim panicked: {}", run.stderr);
    run
}

fn seed_lines(path: &Path) -> Vec<SeedResult> {
    let text = std::fs::read_to_string(path).unwrap();
    let file = results::parse(&path.display().to_string(), &text).unwrap();
    let mut lines: Vec<SeedResult> =
        file.results.iter().map(SeedResult::deterministic_part).collect();
    lines.sort_by_key(|r| r.seed);
    lines
}

/// `mxsim sweep` over 4 seeds, then the same seeds as 2 shards merged: the same result
/// for every seed (wall time aside), and `mxsim run` of a seed gives the trace hash the
/// sweep recorded. Also the JUnit file: one test case per seed.
#[test]
fn shards_merged_equal_the_whole_sweep() {
    let dir = scratch("shards");
    let scenario = format!("{ROOT}/scenarios/partition-heal.toml");
    let whole = mxsim(
        &dir,
        &[
            "sweep",
            &scenario,
            "--seeds",
            "1..=4",
            "--jobs",
            "2",
            "--out",
            "whole.jsonl",
            "--junit",
            "whole.xml",
        ],
    );
    assert_eq!(whole.code, 0, "{}{}", whole.stdout, whole.stderr);
    assert!(whole.stdout.contains("4 run, 4 passed, 0 failed"), "{}", whole.stdout);
    for k in ["0", "1"] {
        let shard = mxsim(
            &dir,
            &[
                "sweep",
                &scenario,
                "--seeds",
                "1..=4",
                "--jobs",
                "1",
                "--shard",
                &format!("{k}/2"),
                "--out",
                &format!("shard-{k}.jsonl"),
            ],
        );
        assert_eq!(shard.code, 0, "{}{}", shard.stdout, shard.stderr);
        assert!(shard.stdout.contains("2 run"), "{}", shard.stdout);
    }
    let merged = mxsim(&dir, &["merge", "shard-1.jsonl", "shard-0.jsonl", "--out", "merged.jsonl"]);
    assert_eq!(merged.code, 0, "{}{}", merged.stdout, merged.stderr);
    let whole_lines = seed_lines(&dir.join("whole.jsonl"));
    assert_eq!(whole_lines.iter().map(|r| r.seed).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(seed_lines(&dir.join("merged.jsonl")), whole_lines);
    // The summary of a merge is the summary of one sweep (same counts, shard 0/1).
    assert_eq!(merged.stdout, whole.stdout);

    // A seed's trace hash is what `mxsim run` gives.
    let run = mxsim(&dir, &["run", &scenario, "--seed", "3", "--out", "run-3"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run-3/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["trace_hash"], whole_lines[2].trace_hash.as_str());
    // Passing seeds keep no files.
    assert!(!dir.join("reports").exists());

    let junit = std::fs::read_to_string(dir.join("whole.xml")).unwrap();
    let xml = roxmltree::Document::parse(&junit).unwrap();
    let cases: Vec<_> = xml.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 4);
    assert_eq!(cases[0].attribute("name"), Some("seed 1"));
    assert!(xml.descendants().all(|n| !n.has_tag_name("failure")));

    // A missing shard and a shard given twice are refused.
    let missing = mxsim(&dir, &["merge", "shard-0.jsonl"]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("missing slices: no file for shard 1/2"), "{}", missing.stderr);
    let twice = mxsim(&dir, &["merge", "shard-0.jsonl", "shard-0.jsonl", "shard-1.jsonl"]);
    assert_eq!(twice.code, 2);
    assert!(twice.stderr.contains("overlapping slices"), "{}", twice.stderr);
}

/// A sweep spools each seed's records to a file in the temporary directory, as `mxsim run`
/// does, instead of holding its whole trace: the files it keeps for a seed are the files
/// `mxsim run` writes for it, byte for byte, and no spool is left behind: with and
/// without `[[expect]]` blocks, the spool becoming the trace file, moved from the
/// temporary directory. (The spool read back under another header, and copied from
/// another file system: `cli::run::spool`'s tests.)
#[test]
fn kept_seeds_are_written_as_run_writes_them_and_no_spool_is_left() {
    let dir = scratch("spooled");
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let labelled = format!("{ROOT}/scenarios/partition-heal.toml");
    let text = std::fs::read_to_string(&labelled).unwrap();
    let plain_text = text[..text.find("[[expect]]").unwrap()].replacen(
        "name = \"partition-heal\"",
        "name = \"partition-heal-plain\"",
        1,
    );
    let plain = dir.join("plain.toml").to_str().unwrap().to_owned();
    std::fs::write(&plain, plain_text).unwrap();
    for (scenario, name) in [(&labelled, "partition-heal"), (&plain, "partition-heal-plain")] {
        let output = Command::new(env!("CARGO_BIN_EXE_mxsim"))
            .args(["sweep", scenario, "--seeds", "1..=2", "--jobs", "2", "--keep-passing"])
            .args(["--reports", "kept"])
            .env("TMPDIR", &tmp)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "a spool file was left");
        for seed in ["1", "2"] {
            let out = format!("run-{name}-{seed}");
            let run = mxsim(&dir, &["run", scenario, "--seed", seed, "--out", &out]);
            assert_eq!(run.code, 0, "{}", run.stderr);
            let kept = dir.join(format!("kept/{name}/seed-{seed}"));
            let mut names: Vec<_> = std::fs::read_dir(dir.join(&out))
                .unwrap()
                .map(|entry| entry.unwrap().file_name())
                .collect();
            names.sort();
            assert!(names.iter().any(|n| n == "trace.jsonl") && names.len() > 5, "{names:?}");
            assert!(!names.iter().any(|n| n.to_string_lossy().ends_with(".part")), "{names:?}");
            for file in names {
                let ran = std::fs::read(dir.join(&out).join(&file)).unwrap();
                let swept = std::fs::read(kept.join(&file)).unwrap();
                assert!(ran == swept, "{name} seed {seed}: {file:?} differs between run and sweep");
            }
        }
    }
}

fn meta(shard: &str, build: &str) -> Meta {
    Meta {
        kind: "sweep".into(),
        format: results::FORMAT.into(),
        scenario: "s".into(),
        scenario_file: "s.toml".into(),
        scenario_sha256: "00".into(),
        seeds: "1..5".into(),
        shard: shard.into(),
        swarm: false,
        mxsim_version: "0.1.0".into(),
        build: build.into(),
    }
}

fn result(seed: u64) -> SeedResult {
    SeedResult {
        kind: "seed".into(),
        seed,
        verdict: "pass".into(),
        violations: vec![],
        trace_hash: format!("{seed:064}"),
        metrics: Default::default(),
        swarm: None,
        reproduce: format!("mxsim run s.toml --seed {seed}"),
        wall_ms: 1,
    }
}

fn file(shard: &str, build: &str, seeds: &[u64], complete: bool) -> (String, ResultsFile) {
    let end = complete.then(|| End {
        kind: "end".into(),
        seeds_run: seeds.len() as u64,
        seeds_planned: 2,
        stopped: None,
    });
    let results = seeds.iter().map(|&s| result(s)).collect();
    (format!("{shard}.jsonl"), ResultsFile { meta: meta(shard, build), results, end })
}

/// Merge refusals, on hand-made files: shard 0/2 of 1..5 holds seeds 1 and 3, shard 1/2
/// seeds 2 and 4.
#[test]
fn merge_refuses_overlaps_gaps_and_mixed_builds() {
    let good = [file("0/2", "b", &[3, 1], true), file("1/2", "b", &[2, 4], true)];
    let (meta, merged) = results::merge(&good).unwrap();
    assert_eq!(meta.shard, "0/1");
    assert_eq!(merged.iter().map(|r| r.seed).collect::<Vec<_>>(), [1, 2, 3, 4]);
    // Round trip through the text form.
    let mut text = results::line(&good[0].1.meta);
    for r in &good[0].1.results {
        text.push_str(&results::line(r));
    }
    text.push_str(&results::line(good[0].1.end.as_ref().unwrap()));
    assert_eq!(results::parse("x", &text).unwrap(), good[0].1);

    let refused = |files: &[(String, ResultsFile)], why: &str| {
        let error = results::merge(files).unwrap_err().to_string();
        assert!(error.contains(why), "expected {why:?} in {error:?}");
    };
    refused(&[file("0/2", "b", &[1, 3], true), file("1/2", "c", &[2, 4], true)], "mixed builds");
    refused(&[file("0/2", "b", &[1, 3], true)], "missing slices: no file for shard 1/2");
    refused(
        &[file("0/2", "b", &[1], false), file("1/2", "b", &[2, 4], true)],
        "has 1 of its 2 seeds (the file has no end line)",
    );
    refused(
        &[file("0/2", "b", &[1, 3], true), file("0/2", "b", &[1, 3], true)],
        "overlapping slices",
    );
    refused(
        &[file("0/2", "b", &[1, 2], true), file("1/2", "b", &[2, 4], true)],
        "seed 2 is not in shard 0/2",
    );
    refused(
        &[file("0/2", "b", &[1, 3], true), file("0/1", "b", &[1, 2, 3, 4], true)],
        "one of 2 shards",
    );
    assert_eq!(Shard::new(1, 2).unwrap().seed_count(SeedRange { start: 1, end: 5 }), 2);
}

/// The same seed with `--swarm` gives the same configuration in the sweep's result line,
/// in the trace header of `mxsim run --seed N --swarm`, and the same trace hash.
#[test]
fn swarm_runs_replay_from_the_seed() {
    let dir = scratch("swarm");
    let scenario = format!("{ROOT}/scenarios/partition-heal.toml");
    let sweep = mxsim(
        &dir,
        &["sweep", &scenario, "--seeds", "5..7", "--jobs", "2", "--swarm", "--out", "swarm.jsonl"],
    );
    assert!(sweep.code == 0 || sweep.code == 1, "{}{}", sweep.stdout, sweep.stderr);
    let lines = seed_lines(&dir.join("swarm.jsonl"));
    assert_eq!(lines.len(), 2);
    assert_ne!(lines[0].swarm, lines[1].swarm, "two seeds, two configurations");
    for line in &lines {
        let config = line.swarm.as_ref().expect("swarm lines record the configuration");
        assert!(config["fault_types"].get("partition").is_some(), "{config}");
        let out = format!("run-{}", line.seed);
        let run = mxsim(
            &dir,
            &["run", &scenario, "--seed", &line.seed.to_string(), "--swarm", "--out", &out],
        );
        assert_eq!(run.code == 0, line.passed(), "{}", run.stdout);
        let trace = std::fs::read_to_string(dir.join(&out).join("trace.jsonl")).unwrap();
        let header: Value = serde_json::from_str(trace.lines().next().unwrap()).unwrap();
        assert_eq!(&header["swarm"], config);
        assert_eq!(mxsim::trace::hash_jsonl(trace.as_bytes()), line.trace_hash);
        assert!(line.reproduce.ends_with("--swarm"));
    }
}

/// The planted bug: the last server takes the last state at every merge instead of
/// resolving (a state reset).
fn plant(plan: &mut Plan) {
    let server = plan.servers.last().unwrap().clone();
    plan.server_config.planted_bug = Some(PlantedBug::SkipMergeResolution { server });
}

fn planted_job(file: &str, text: &str) -> Job {
    let mut job = Job::new(file, text, false, "test").unwrap();
    job.hooks = Hooks { plan: Some(plant) };
    job
}

#[test]
fn a_bounded_sweep_finds_the_planted_bug_and_shrink_reduces_it() {
    // flapping-link: a link that goes up and down, so merges with differing prev states
    // happen on the last server on some seeds (partition-heal's merges come out the same
    // whichever state is taken, so the bug hides there).
    let (file, text) = scenario("flapping-link");
    let clean = Job::new(&file, &text, false, "test").unwrap();
    let planted = planted_job(&file, &text);
    // A bounded sweep: the first failing seed of 1..=8.
    let mut found = None;
    for seed in 1..=8 {
        let result = planted.run_seed(seed).unwrap();
        if !result.passed() {
            found = Some((seed, result));
            break;
        }
        assert!(clean.run_seed(seed).unwrap().passed());
    }
    let (seed, result) = found.expect("the sweep finds the planted bug within 8 seeds");
    // The bug, not the scenario, makes the seed fail.
    assert!(clean.run_seed(seed).unwrap().passed(), "seed {seed} passes without the bug");
    assert!(result.violations.contains(&"convergence".to_owned()), "{:?}", result.violations);

    let shrunk = shrink::shrink(
        &planted,
        seed,
        &shrink::Options {
            invariant: Some(Invariant::Convergence),
            // Keep what the bug needs: a candidate must also pass without the bug.
            control: Some(Hooks::default()),
            ..shrink::Options::default()
        },
    )
    .unwrap();
    eprintln!(
        "planted bug, seed {seed}: before {}; after {}; {} runs",
        shrunk.before, shrunk.after, shrunk.runs
    );
    assert!(shrunk.after.steps < shrunk.before.steps, "{} vs {}", shrunk.after, shrunk.before);
    assert!(shrunk.after.bytes < shrunk.before.bytes);
    assert!(shrunk.after.end_ms <= shrunk.before.end_ms);
    // The minimal scenario is a normal scenario file that fails on its own with the bug,
    // and passes without it.
    let minimal = planted_job("min.toml", &shrunk.text).run_seed(shrunk.seed).unwrap();
    assert!(minimal.violations.contains(&"convergence".to_owned()), "{}", shrunk.text);
    let minimal_clean = Job::new("min.toml", &shrunk.text, false, "test").unwrap();
    assert!(minimal_clean.run_seed(shrunk.seed).unwrap().passed(), "{}", shrunk.text);
}

/// The Slurm path on a real one-node Slurm (scripts/slurm-sweep.sh): installs slurm-wlm
/// and munge, runs a 4-shard job array, merges and compares with a local sweep. Needs
/// root and Debian; runs only with `MXSIM_SLURM=1`.
#[test]
fn slurm_job_array_matches_a_local_sweep() {
    if std::env::var_os("MXSIM_SLURM").is_none() {
        return;
    }
    let status = Command::new("bash")
        .arg(Path::new(ROOT).join("scripts/slurm-sweep.sh"))
        .env("MXSIM", env!("CARGO_BIN_EXE_mxsim"))
        .status()
        .unwrap();
    assert!(status.success(), "scripts/slurm-sweep.sh failed");
}

#[test]
fn seed_ranges_read_both_forms() {
    assert_eq!(SeedRange::parse("1..5").unwrap(), SeedRange { start: 1, end: 5 });
    assert_eq!(SeedRange::parse("1..=5").unwrap(), SeedRange { start: 1, end: 6 });
    assert!(SeedRange::parse("5..5").is_err());
    assert!(SeedRange::parse("5..=4").is_err());
    assert!(SeedRange::parse("a..4").is_err());
    assert!(SeedRange::parse("4").is_err());
    assert!(SeedRange::parse("0..=18446744073709551615").is_err());
}

#[test]
fn shards_partition_the_range() {
    let range = SeedRange { start: 10, end: 33 };
    for count in 1..=30 {
        let mut all: Vec<u64> = Vec::new();
        for index in 0..count {
            let shard = Shard::new(index, count).unwrap();
            let seeds: Vec<u64> = shard.seeds(range).collect();
            assert_eq!(seeds.len() as u64, shard.seed_count(range), "{shard}");
            assert!(seeds.iter().all(|&s| shard.contains(range, s)));
            all.extend(seeds);
        }
        all.sort_unstable();
        assert_eq!(all, (10..33).collect::<Vec<u64>>(), "count {count}");
    }
    let seeds: Vec<u64> = Shard::parse("1/4").unwrap().seeds(range).take(3).collect();
    assert_eq!(seeds, [11, 15, 19]);
    assert!(Shard::parse("4/4").is_err());
    assert!(Shard::parse("0/0").is_err());
    assert!(Shard::parse("1").is_err());
}

const SWARM_TEXT: &str = r#"
name = "swarm-test"
[[server]]
name = "hs1"
users = ["alice"]
[[server]]
name = "hs2"
users = ["bob"]
[[server]]
name = "hs3"
users = ["carol"]
[[room]]
label = "main"
creator = "@alice:hs1"
members = ["*"]
[[workload]]
room = "main"
start_ms = 5_000
end_ms = 20_000
users = ["@alice:hs1", "@bob:hs2"]
interval_ms = 1_000
mix = { message = 3, topic = 1, power = 1 }
[[fault]]
type = "partition"
start_ms = 6_000
end_ms = 9_000
groups = [["hs1"], ["hs2"]]
[[fault]]
type = "slow"
start_ms = 6_000
end_ms = 9_000
node = "hs3"
extra_delay_ms = 100
"#;

#[test]
fn swarm_draws_repeat_and_differ_by_seed() {
    let scenario = mxsim::scenario::parse("s.toml", SWARM_TEXT).unwrap();
    let a = swarm::draw("s.toml", SWARM_TEXT, &scenario, 7).unwrap();
    let b = swarm::draw("s.toml", SWARM_TEXT, &scenario, 7).unwrap();
    assert_eq!(a.config, b.config);
    assert_eq!(a.scenario, b.scenario);
    let configs: std::collections::BTreeSet<String> = (0..32)
        .map(|seed| swarm::draw("s.toml", SWARM_TEXT, &scenario, seed).unwrap().config.to_string())
        .collect();
    assert!(configs.len() > 16, "32 seeds gave only {} configurations", configs.len());
}

#[test]
fn swarm_configurations_are_what_the_scenario_holds() {
    let scenario = mxsim::scenario::parse("s.toml", SWARM_TEXT).unwrap();
    let mut saw_dropped_type = false;
    let mut saw_added = false;
    for seed in 0..32 {
        let drawn = swarm::draw("s.toml", SWARM_TEXT, &scenario, seed).unwrap();
        let types = &drawn.config["fault_types"];
        let added = drawn.config["added_faults"].as_array().unwrap().len();
        let kept = ["partition", "slow"].iter().filter(|k| types[**k] == true).count();
        // Each kept type contributes its one written fault.
        assert_eq!(drawn.scenario.faults.faults().len(), kept + added, "seed {seed}");
        saw_dropped_type |= kept < 2;
        saw_added |= added > 0;
        let mix = &drawn.config["workload_mix"][0];
        let weight = |kind: &str| mix[kind].as_u64().unwrap();
        assert_eq!(drawn.scenario.workloads[0].mix.message, weight("message"));
        assert_eq!(drawn.scenario.workloads[0].mix.topic, weight("topic"));
        assert_eq!(drawn.scenario.workloads[0].mix.power, weight("power"));
        assert!(weight("message") + weight("topic") + weight("power") > 0, "one kind stays");
        assert_eq!(weight("kick"), 0, "kinds the file did not use stay off");
    }
    assert!(saw_dropped_type && saw_added);
}

#[test]
fn removing_a_server_takes_its_mentions_along() {
    let text = r#"
name = "x"
[[server]]
name = "hs1"
users = ["alice"]
[[server]]
name = "hs2"
users = ["bob"]
[[room]]
label = "main"
creator = "@alice:hs1"
members = ["@bob:hs2"]
power = { "@bob:hs2" = 50 }
[[step]]
at_ms = 1
user = "@bob:hs2"
action = "message"
room = "main"
body = "hi"
[[fault]]
type = "partition"
start_ms = 1
end_ms = 2
groups = [["hs1"], ["hs2"]]
"#;
    let document: toml::Table = text.parse().unwrap();
    assert_eq!(shrink::entries(&document).len(), 5);
    let shrunk = shrink::without(&document, &[("server".into(), 1)]);
    let text = toml::to_string(&shrunk).unwrap();
    assert!(!text.contains("hs2"), "{text}");
    assert!(shrunk.get("step").is_none());
    let scenario = mxsim::scenario::parse("x.toml", &text).unwrap();
    assert_eq!(scenario.servers.len(), 1);
}
