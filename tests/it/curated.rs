//! Every curated scenario in `scenarios/` passes its invariants on a range of seeds, and
//! runs repeat exactly.
//!
//! Seeds: `MXSIM_SEEDS` (`A..=B` or one number; default `1..=20`, the range CI runs). A
//! failure names the scenario, the seed, the violations and the command that repeats it.

use mxsim::check;
use mxsim::world::{self, from_scenario};

fn seeds() -> std::ops::RangeInclusive<u64> {
    seeds_or("1..=20")
}

/// The seeds of `MXSIM_SEEDS` (`A..=B` or one number), else `default`.
pub(crate) fn seeds_or(default: &str) -> std::ops::RangeInclusive<u64> {
    let text = std::env::var("MXSIM_SEEDS").unwrap_or_else(|_| default.into());
    match text.split_once("..=") {
        Some((a, b)) => a.trim().parse().unwrap()..=b.trim().parse().unwrap(),
        None => {
            let seed = text.trim().parse().expect("MXSIM_SEEDS is A..=B or a number");
            seed..=seed
        }
    }
}

/// The curated scenario `scenarios/{name}.toml`, parsed.
pub(crate) fn scenario(name: &str) -> mxsim::scenario::Scenario {
    let path = format!("scenarios/{name}.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    mxsim::scenario::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `name` on every seed; the first seed twice (same trace hash).
fn passes(name: &str) {
    let scenario = scenario(name);
    let mut failures = Vec::new();
    let mut hashes = std::collections::BTreeSet::new();
    for seed in seeds() {
        let plan = from_scenario::plan(&scenario, seed, "test").unwrap();
        let output = world::run(&plan).unwrap();
        let verdict = check::check(&output.trace);
        assert!(!verdict.checked.is_empty(), "{name} checks something");
        if !verdict.passed() {
            let mut text = format!("{name} seed {seed}:");
            for v in verdict.violations.iter().take(5) {
                text.push_str(&format!("\n  {}: {}", v.invariant, v.message));
            }
            text.push_str(&format!("\n  reproduce: mxsim run scenarios/{name}.toml --seed {seed}"));
            failures.push(text);
        }
        let hash = output.trace.hash();
        if seed == *seeds().start() {
            let again = world::run(&plan).unwrap().trace.hash();
            assert_eq!(hash, again, "{name} seed {seed}: same seed, different trace");
        }
        hashes.insert(hash);
    }
    let count = seeds().count();
    assert_eq!(hashes.len(), count, "{name}: different seeds give different traces");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

macro_rules! curated {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                passes($file);
            }
        )*

        #[test]
        fn every_scenario_file_has_a_test() {
            let mut files: Vec<String> = std::fs::read_dir("scenarios")
                .unwrap()
                .filter_map(|e| {
                    let name = e.unwrap().file_name().into_string().unwrap();
                    name.strip_suffix(".toml").map(str::to_owned)
                })
                .collect();
            files.sort();
            let mut tested = vec![$($file.to_owned()),*];
            tested.sort();
            assert_eq!(files, tested);
        }
    };
}

curated! {
    ban_vs_power => "ban-vs-power",
    clock_skew => "clock-skew",
    concurrent_joins_partition => "concurrent-joins-partition",
    crash_restart => "crash-restart",
    flapping_link => "flapping-link",
    large_room => "large-room",
    long_offline => "long-offline",
    lossy_network => "lossy-network",
    partition_heal => "partition-heal",
    power_fight_partition => "power-fight-partition",
    three_way_split => "three-way-split",
    upgrade_partition => "upgrade-partition",
}

/// The scenario file at `path`, read and planned for seed 1.
fn planned(path: &str) -> (mxsim::scenario::Scenario, world::Plan) {
    let text = std::fs::read_to_string(path).unwrap();
    let scenario = mxsim::scenario::parse(path, &text).unwrap_or_else(|e| panic!("{e}"));
    let plan = from_scenario::plan(&scenario, 1, "test").unwrap();
    (scenario, plan)
}

/// The scale scenarios of `scenarios/slow/` (not run by default): each file plans, with
/// the server count its name gives and about 10,000 events' worth of actions (the
/// sequential joins: a thousand joins and a few messages).
#[test]
fn the_slow_scenarios_plan() {
    for servers in [100usize, 300, 1_000] {
        let path = format!("scenarios/slow/one-room-{servers}.toml");
        let (_, plan) = planned(&path);
        assert_eq!(plan.servers.len(), servers, "{path}");
        let steps = plan.steps.len();
        assert!((9_000..=11_000).contains(&steps), "{path}: {steps} steps");
    }
    // The thousand sequential joins: a join per server and 20 messages.
    let path = "scenarios/slow/joins-1000.toml";
    let (_, plan) = planned(path);
    assert_eq!(plan.servers.len(), 1_000, "{path}");
    let steps = plan.steps.len();
    assert!((1_000..=1_100).contains(&steps), "{path}: {steps} steps");
    // The lossy window over every link of a thousand servers is one fault.
    let path = "scenarios/slow/lossy-1000.toml";
    let (scenario, plan) = planned(path);
    assert!(matches!(
        scenario.faults.faults(),
        [mxsim::net::Fault::LinkOverride {
            from: mxsim::net::Nodes::All,
            to: mxsim::net::Nodes::All,
            ..
        }]
    ));
    assert_eq!(plan.servers.len(), 1_000, "{path}");
}

/// `scenarios/slow/one-room-100.toml` passes on seed 1, with its expectations checked.
/// Minutes of CPU and gigabytes of memory: `MXSIM_SLOW=1` (run it with `--release`).
#[test]
fn the_100_server_slow_scenario_passes() {
    if std::env::var("MXSIM_SLOW").ok().as_deref() != Some("1") {
        return;
    }
    let path = "scenarios/slow/one-room-100.toml";
    let (_, plan) = planned(path);
    let output = world::run(&plan).unwrap();
    let verdict = check::check(&output.trace);
    let names: Vec<String> = verdict.checked.iter().map(|i| i.to_string()).collect();
    assert!(names.iter().any(|n| n == "expectations"), "{names:?}");
    assert!(output.events.len() >= 9_000, "{} events", output.events.len());
    assert!(
        verdict.passed(),
        "{:?}\n  reproduce: mxsim run {path} --seed 1",
        verdict.violations.iter().take(5).map(|v| &v.message).collect::<Vec<_>>()
    );
}

/// `scenarios/slow/lossy-1000.toml` passes on seed 1: its one lossy fault over every link
/// of a thousand servers loses messages, and the room converges after it heals. Tens of
/// CPU seconds and about a gigabyte: `MXSIM_SLOW=1` (run it with `--release`).
#[test]
fn the_lossy_thousand_server_scenario_passes() {
    if std::env::var("MXSIM_SLOW").ok().as_deref() != Some("1") {
        return;
    }
    let path = "scenarios/slow/lossy-1000.toml";
    let (_, plan) = planned(path);
    let output = world::run(&plan).unwrap();
    let lost = mxsim::trace::metrics(&output.trace)
        .into_iter()
        .find_map(|(name, value)| (name == "messages_lost").then_some(value));
    assert!(lost.is_some_and(|lost| lost > 0), "the window lost nothing: {lost:?}");
    let verdict = check::check(&output.trace);
    assert!(
        verdict.passed(),
        "{:?}\n  reproduce: mxsim run {path} --seed 1",
        verdict.violations.iter().take(5).map(|v| &v.message).collect::<Vec<_>>()
    );
}
