//! Scenario files: every curated file in `scenarios/` parses and stays small enough for
//! CI (20 seeds each), and workload expansion is a pure function of the seed.

use std::path::Path;

use mxsim::scenario::{self, Scenario};
use mxsim::stdx::Prng;

fn curated() -> Vec<(String, Scenario)> {
    parse_dir("scenarios")
        .into_iter()
        .map(|(path, parsed)| (path.file_name().unwrap().to_str().unwrap().to_owned(), parsed))
        .collect()
}

/// Every `.toml` file directly in `dir` (relative to the crate root), parsed, by path in
/// order; a file that does not parse fails the test with its error.
pub(crate) fn parse_dir(dir: &str) -> Vec<(std::path::PathBuf, Scenario)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            match scenario::parse(&name, &text) {
                Ok(parsed) => (path, parsed),
                Err(error) => panic!("{error}"),
            }
        })
        .collect()
}

#[test]
fn every_curated_scenario_parses_and_stays_small() {
    let all = curated();
    assert_eq!(all.len(), 12, "the curated set is twelve files");
    for (file, parsed) in &all {
        // The file is named after the scenario, so reports land in a matching directory.
        assert_eq!(format!("{}.toml", parsed.name), *file);
        assert!(!parsed.description.is_empty(), "{file}: no description");
        // It says what it demonstrates, and the run checks it (`expectations`).
        assert!(!parsed.expectations.is_empty(), "{file}: no [[expect]]");
        assert!(parsed.check.checks(scenario::Invariant::Expectations), "{file}");
        let workload_steps = parsed.expand_workloads(&Prng::from_seed(1)).len();
        let actions = parsed.steps.len() + workload_steps;
        assert!(actions <= 250, "{file}: {actions} actions, too many for a CI scenario");
        // Long enough after the heal for retries (back-off up to 60 s) to deliver.
        let healed = parsed.faults.healed_at().ms;
        assert!(parsed.end_ms() >= healed + parsed.check.liveness_bound_ms, "{file}");
        assert!(parsed.quiet_ms >= 120_000, "{file}: quiet period shorter than 2 min");
    }
}

#[test]
fn workload_expansion_is_deterministic_per_seed() {
    for (file, parsed) in curated() {
        if parsed.workloads.is_empty() {
            continue;
        }
        let once = parsed.expand_workloads(&Prng::from_seed(7));
        let again = parsed.expand_workloads(&Prng::from_seed(7));
        assert_eq!(once, again, "{file}");
        let other = parsed.expand_workloads(&Prng::from_seed(8));
        assert_ne!(once, other, "{file}: seeds 7 and 8 gave the same workload");
        assert!(once.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "{file}: unsorted");
        for step in &once {
            let workload = parsed.workloads.iter().find(|w| w.room == step.room());
            let workload = workload.unwrap();
            assert!(workload.start_ms < step.at_ms && step.at_ms < workload.end_ms, "{file}");
            assert_eq!(parsed.server_of(&step.user), Some(step.server.as_str()), "{file}");
        }
    }
}

#[test]
fn the_documented_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scenarios.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let (_, example) =
        doc.split_once("## A full example").expect("docs/scenarios.md has a full example");
    let (_, rest) = example.split_once("```toml\n").unwrap();
    let (text, _) = rest.split_once("```").unwrap();
    let parsed = scenario::parse("docs/scenarios.md", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.name, "example");
    assert_eq!(parsed.servers.len(), 3);
    assert_eq!(parsed.faults.faults().len(), 2);
    assert!(!parsed.expand_workloads(&Prng::from_seed(1)).is_empty());
}

/// The docs' full example does what it says when run: every invariant and expectation
/// holds on seeds 1 to 3, and the only failed action is the step it marks
/// `expect = "fail"`, named by its line.
#[test]
fn the_documented_example_runs_as_it_says() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scenarios.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let (_, example) = doc.split_once("## A full example").unwrap();
    let (_, rest) = example.split_once("```toml\n").unwrap();
    let (text, _) = rest.split_once("```").unwrap();
    // The line of the `[[step]]` table that holds `expect = "fail"`.
    let lines: Vec<&str> = text.lines().collect();
    let marked = lines.iter().position(|l| l.trim() == "expect = \"fail\"").unwrap();
    let step_line = lines[..marked].iter().rposition(|l| l.trim() == "[[step]]").unwrap() + 1;
    let parsed = scenario::parse("docs/scenarios.md", text).unwrap_or_else(|e| panic!("{e}"));
    for seed in 1..=3 {
        let plan = mxsim::world::from_scenario::plan(&parsed, seed, "test").unwrap();
        let output = mxsim::world::run(&plan).unwrap();
        let verdict = mxsim::check::check(&output.trace);
        assert!(verdict.checked.contains(&mxsim::stdx::Invariant::Expectations));
        assert!(verdict.violations.is_empty(), "seed {seed}: {:#?}", verdict.violations);
        let failed: Vec<Option<u64>> = output
            .trace
            .records
            .iter()
            .filter_map(|r| match &r.body {
                mxsim::trace::Body::ActionFailed(failure) => Some(failure.line),
                _ => None,
            })
            .collect();
        assert_eq!(failed, vec![Some(step_line as u64)], "seed {seed}");
    }
}
