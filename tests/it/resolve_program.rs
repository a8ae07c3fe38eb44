//! `mxsim resolve` handed to the `mxsim-resolve` program beside it, and handed back by a
//! program of other sources (`cli::resolve_program`): through the real binaries, with
//! stand-in programs (shell scripts) where a test needs to see who ran the command.
#![cfg(unix)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/resolve");
const MXSIM: &str = env!("CARGO_BIN_EXE_mxsim");
const PROGRAM: &str = env!("CARGO_BIN_EXE_mxsim-resolve");

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

/// A fresh directory of this test's own under cargo's scratch directory, as the programs
/// started in it see their own path (symbolic links resolved).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("resolve-program").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::canonicalize(dir).unwrap()
}

/// Writes `text` to `path` with `mode` from a shell of its own. A file written and then
/// run from this process can fail to start ("text file busy") while another test thread
/// starts a process, which holds a copy of the open file until it runs its own program;
/// a shell's open file is not this process's to share.
fn write_from_shell(path: &Path, text: &str, mode: &str) {
    let status = Command::new("/bin/sh")
        .args(["-c", "printf '%s' \"$2\" > \"$1\" && chmod \"$3\" \"$1\"", "sh"])
        .arg(path)
        .args([text, mode])
        .status()
        .unwrap();
    assert!(status.success(), "writing {}", path.display());
}

/// A shell script at `path` that prints who ran it, with what and which handover
/// variables it was given.
fn stand_in(path: &Path, name: &str) {
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"{name} $*\" \"build=$MXSIM_RESOLVE_CALLER_BUILD\" \
         \"caller=$MXSIM_RESOLVE_CALLER\" \"in_process=$MXSIM_RESOLVE_IN_PROCESS\"\n"
    );
    write_from_shell(path, &script, "755");
}

/// `mxsim` at `dir/mxsim`: a link to the built binary, keeping the path `mxsim` finds
/// itself at, or a copy made by `cp` where a link cannot be made.
fn mxsim_in(dir: &Path) -> PathBuf {
    let mxsim = dir.join("mxsim");
    if std::fs::hard_link(MXSIM, &mxsim).is_err() {
        let status = Command::new("cp").arg(MXSIM).arg(&mxsim).status().unwrap();
        assert!(status.success());
    }
    mxsim
}

/// Runs `program ARGS` with its stdout a pipe whose reader has gone, through a shell that
/// starts the program a moment after the reader ends; returns the program's exit status as
/// the shell saw it (141 if SIGPIPE killed it) and its stderr.
fn into_a_closed_pipe(program: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> (String, String) {
    let dir = scratch(&format!("closed-pipe-{}", program.file_name().unwrap().to_string_lossy()));
    let status_file = dir.join("status");
    let mut command = command("/bin/sh");
    command
        .args(["-c", "{ sleep 1; \"$@\" 2> \"$S.err\"; echo $? > \"$S\"; } | exit 0", "sh"])
        .arg(program)
        .args(args)
        .env("S", &status_file);
    for (name, value) in env {
        command.env(name, value);
    }
    let shell = run(&mut command);
    assert_eq!(shell.status.code(), Some(0));
    let status = std::fs::read_to_string(&status_file).unwrap();
    let stderr = std::fs::read_to_string(dir.join("status.err")).unwrap();
    (status.trim().to_owned(), stderr)
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
    let mxsim = mxsim_in(&dir);
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

#[test]
fn a_program_that_cannot_be_started_leaves_the_command_to_a_new_process() {
    // `mxsim-resolve` beside `mxsim` but not executable: said on stderr, and the command
    // runs in a new `mxsim` process. With its stdout a pipe nobody reads, that process ends
    // quietly with its own exit code, where a process left with SIGPIPE at its default by
    // the failed `exec` would be killed by the signal (exit status 141).
    let dir = scratch("not-executable");
    let mxsim = mxsim_in(&dir);
    write_from_shell(&dir.join("mxsim-resolve"), "not a program", "644");
    let file = fixture("demotion-beats-topic.json");

    let resolved = run(command(&mxsim).args(["resolve", &file]));
    assert_eq!(resolved.status.code(), Some(0), "{}", text(&resolved.stderr));
    assert!(text(&resolved.stdout).starts_with("{\"m.room.create\""), "{}", text(&resolved.stdout));
    assert!(text(&resolved.stderr).contains("cannot start"), "{}", text(&resolved.stderr));

    let (status, stderr) = into_a_closed_pipe(&mxsim, &["resolve", &file], &[]);
    assert_eq!(status, "0", "{stderr}");
    assert!(stderr.contains("cannot start") && !stderr.contains("cannot write"), "{stderr}");

    // The same for `mxsim-resolve` whose caller cannot take the command back.
    let missing = dir.join("missing");
    let env = [
        ("MXSIM_RESOLVE_CALLER_BUILD", OsStr::new("0.0.0+other")),
        ("MXSIM_RESOLVE_CALLER", missing.as_os_str()),
    ];
    let (status, stderr) = into_a_closed_pipe(Path::new(PROGRAM), &[&file], &env);
    assert_eq!(status, "0", "{stderr}");
    assert!(stderr.contains("could not take the command back"), "{stderr}");
}
