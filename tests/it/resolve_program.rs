//! `mxsim resolve` handed to the `mxsim-resolve` program beside it, and handed back by a
//! program of other sources (`cli::resolve_program`): through the real binaries, with
//! stand-in programs (shell scripts) where a test needs to see who ran the command.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/resolve");
const MXSIM: &str = env!("CARGO_BIN_EXE_mxsim");
const PROGRAM: &str = env!("CARGO_BIN_EXE_mxsim-resolve");

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

/// A fresh directory of this test's own under cargo's scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("resolve-program").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A shell script at `path` that prints who ran it, with what and which handover
/// variables it was given.
fn stand_in(path: &Path, name: &str) {
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"{name} $*\" \"build=$MXSIM_RESOLVE_CALLER_BUILD\" \
         \"caller=$MXSIM_RESOLVE_CALLER\" \"in_process=$MXSIM_RESOLVE_IN_PROCESS\"\n"
    );
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A command for `program` without the handover variables of the environment the tests
/// run in.
fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for name in ["MXSIM_RESOLVE_IN_PROCESS", "MXSIM_RESOLVE_CALLER_BUILD", "MXSIM_RESOLVE_CALLER"] {
        command.env_remove(name);
    }
    command
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(!text(&output.stderr).contains("panicked"), "{}", text(&output.stderr));
    output
}

#[test]
fn mxsim_resolve_hands_over_to_the_program_beside_it_and_nothing_else_does() {
    let dir = scratch("hand-over");
    let mxsim = dir.join("mxsim");
    // A link keeps the path `mxsim` finds itself at (a copy would do as well, only slower).
    if std::fs::hard_link(MXSIM, &mxsim).is_err() {
        std::fs::copy(MXSIM, &mxsim).unwrap();
    }
    stand_in(&dir.join("mxsim-resolve"), "stand-in");

    let handed = run(command(&mxsim).args(["resolve", "in put.json", "--explain"]));
    assert_eq!(handed.status.code(), Some(0), "{}", text(&handed.stderr));
    let lines = text(&handed.stdout);
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines[0], "stand-in in put.json --explain");
    assert_eq!(lines[1], format!("build={}", mxsim::trace::BUILD));
    assert_eq!(lines[2], format!("caller={}", mxsim.display()));
    assert_eq!(lines[3], "in_process=");

    // Asked to stay in its process, `mxsim` resolves the fixture itself.
    let file = fixture("demotion-beats-topic.json");
    let own = run(command(&mxsim).args(["resolve", &file]).env("MXSIM_RESOLVE_IN_PROCESS", "1"));
    assert_eq!(own.status.code(), Some(0), "{}", text(&own.stderr));
    assert!(text(&own.stdout).starts_with("{\"m.room.create\""), "{}", text(&own.stdout));

    // Other commands, and `resolve` in another place, are never handed over.
    for args in [&["--version"][..], &["help", "resolve"], &["check", "resolve"]] {
        let other = run(command(&mxsim).args(args));
        assert!(!text(&other.stdout).contains("stand-in"), "{args:?} was handed over");
    }
}

#[test]
fn a_program_of_other_sources_hands_the_command_back_and_one_of_the_same_keeps_it() {
    let dir = scratch("hand-back");
    let caller = dir.join("mxsim");
    stand_in(&caller, "caller");
    let file = fixture("demotion-beats-topic.json");

    let back = run(command(PROGRAM)
        .args([&file, "--explain"])
        .env("MXSIM_RESOLVE_CALLER_BUILD", "0.0.0+other")
        .env("MXSIM_RESOLVE_CALLER", &caller));
    let lines = text(&back.stdout);
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(
        lines,
        [&format!("caller resolve {file} --explain")[..], "build=", "caller=", "in_process=1"]
    );

    let kept = run(command(PROGRAM)
        .arg(&file)
        .env("MXSIM_RESOLVE_CALLER_BUILD", mxsim::trace::BUILD)
        .env("MXSIM_RESOLVE_CALLER", &caller));
    assert_eq!(kept.status.code(), Some(0), "{}", text(&kept.stderr));
    assert!(text(&kept.stdout).starts_with("{\"m.room.create\""), "{}", text(&kept.stdout));

    // A caller that cannot be started: the program says so and resolves all the same.
    let lost = run(command(PROGRAM)
        .arg(&file)
        .env("MXSIM_RESOLVE_CALLER_BUILD", "0.0.0+other")
        .env("MXSIM_RESOLVE_CALLER", dir.join("missing")));
    assert_eq!(lost.status.code(), Some(0), "{}", text(&lost.stderr));
    assert_eq!(lost.stdout, kept.stdout);
    assert!(
        text(&lost.stderr).contains("could not take the command back"),
        "{}",
        text(&lost.stderr)
    );
}

#[test]
fn the_program_answers_as_mxsim_resolve_does_in_its_own_process() {
    let good = [
        vec![fixture("demotion-beats-topic.json"), "--explain".into()],
        vec![
            fixture("fixture-shape-v11-join-rules.json"),
            "--auth-chain".into(),
            "exclusive".into(),
        ],
        vec![
            fixture("fixture-shape-v12-demotion.json"),
            "--rejected".into(),
            "never-readmit".into(),
        ],
    ];
    let bad = [
        vec![],
        vec!["--help".into()],
        vec!["--repeat".into(), "0".into(), "x.json".into()],
        vec![format!("{FIXTURES}/missing.json")],
        // The fixture shape has no hashes or signatures, which `--strict` asks for.
        vec![fixture("fixture-shape-v12-demotion.json"), "--strict".into()],
        vec![concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").to_owned()],
    ];
    for args in good.iter().chain(&bad) {
        let program = run(command(PROGRAM).args(args));
        let own =
            run(command(MXSIM).arg("resolve").args(args).env("MXSIM_RESOLVE_IN_PROCESS", "1"));
        assert_eq!(program.status.code(), own.status.code(), "{args:?}");
        assert_eq!(text(&program.stdout), text(&own.stdout), "{args:?}");
        assert_eq!(text(&program.stderr), text(&own.stderr), "{args:?}");
    }
    // The good ones resolved and the bad ones did not: the comparison compared something.
    for args in &good {
        assert_eq!(run(command(PROGRAM).args(args)).status.code(), Some(0), "{args:?}");
    }
    for args in &bad[2..] {
        assert_eq!(run(command(PROGRAM).args(args)).status.code(), Some(2), "{args:?}");
    }
}
