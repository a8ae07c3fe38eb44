//! Snapshot tests: the `summary.json` that `mxsim run` writes for three curated scenarios
//! (seed 1) is compared byte for byte with `tests/snapshots/`, so that any change of
//! behaviour (a verdict, a metric, a final state, the trace hash) shows as a diff in review.
//!
//! After a deliberate change, refresh with `UPDATE_EXPECT=1 cargo test --test it snapshots`
//! and review the diff of `tests/snapshots/` by hand before committing it; the commit says
//! why the numbers moved.

use std::process::Command;

const SCENARIOS: &[&str] = &["partition-heal", "three-way-split", "crash-restart"];

fn summary_of(scenario: &str, seed: u64) -> String {
    let out = std::env::temp_dir()
        .join(format!("mxsim-snapshot-{}-{scenario}-{seed}", std::process::id()));
    let path = format!("{}/scenarios/{scenario}.toml", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(env!("CARGO_BIN_EXE_mxsim"))
        .args(["run", &path, "--seed", &seed.to_string(), "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    summary
}

/// The first lines where two texts differ, for the failure message.
fn first_differences(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut shown = Vec::new();
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i).copied().unwrap_or(""), a.get(i).copied().unwrap_or(""));
        if x != y {
            shown.push(format!("line {}:\n  - {x}\n  + {y}", i + 1));
            if shown.len() == 8 {
                break;
            }
        }
    }
    shown.join("\n")
}

#[test]
fn summaries_of_curated_scenarios_match_their_snapshots() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for scenario in SCENARIOS {
        let actual = summary_of(scenario, 1);
        let file =
            format!("{}/tests/snapshots/{scenario}.seed1.summary.json", env!("CARGO_MANIFEST_DIR"));
        if update {
            std::fs::write(&file, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{file}: {e} (UPDATE_EXPECT=1 writes it)"));
        if expected != actual {
            failures.push(format!(
                "{scenario} seed 1: summary.json differs from {file}\n{}\n\
                 reproduce: mxsim run scenarios/{scenario}.toml --seed 1 \
                 (UPDATE_EXPECT=1 refreshes the snapshot after a deliberate change)",
                first_differences(&expected, &actual)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
