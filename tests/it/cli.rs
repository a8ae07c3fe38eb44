//! `mxsim event …` on good and bad input, through the real binary.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

const SEED: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout not JSON ({e}): {}", self.stdout))
    }
}

fn mxsim(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mxsim"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command may exit before reading stdin (usage errors); ignore a broken pipe.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let output = child.wait_with_output().unwrap();
    let run = Run {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    assert!(!run.stderr.contains("panicked"), "mxsim panicked: {}", run.stderr);
    run
}

fn example(name: &str) -> Vec<u8> {
    std::fs::read(format!("{EXAMPLES}/{name}")).unwrap()
}

const V12_CREATE_ID: &str = "$P5-6WTYQ_woy6f4nmleE0XqxjtZcyKGza5_gDN-KAdM";

#[test]
fn sign_then_id_reproduces_the_v12_create_vector() {
    let signed = mxsim(
        &["event", "sign", "--room-version", "12", "--server", "domain", "--key-seed", SEED],
        &example("create-v12.json"),
    );
    assert_eq!(signed.code, 0, "{}", signed.stderr);
    let pdu = signed.json();
    assert_eq!(pdu["hashes"]["sha256"], "ccqBumrNf46eCfIkdZSYW9RNafS0xFYYDm5rnZBSVJU");
    assert_eq!(
        pdu["signatures"]["domain"]["ed25519:1"],
        "0iTJ32BZFymf41Y7UBttP2wZ0JTo6UjsLDQuf+79LB+WeKVfoLyR2I8RF23ZdFgCuxtjVBl5MKXIOWP+ocELDw"
    );
    let id = mxsim(&["event", "id", "--room-version", "12"], signed.stdout.as_bytes());
    assert_eq!(id.code, 0, "{}", id.stderr);
    assert_eq!(
        id.json(),
        json!({"event_id": V12_CREATE_ID, "room_id": format!("!{}", &V12_CREATE_ID[1..])})
    );
}

#[test]
fn hash_matches_the_vector_and_ignores_existing_hashes() {
    let mut create: Value = serde_json::from_slice(&example("create-v12.json")).unwrap();
    create["hashes"] = json!({"sha256": "stale"});
    create["unsigned"] = json!({"age": 5});
    let run = mxsim(&["event", "hash", "--room-version", "12"], create.to_string().as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json(), json!({"sha256": "ccqBumrNf46eCfIkdZSYW9RNafS0xFYYDm5rnZBSVJU"}));
}

#[test]
fn verify_valid_redacted_and_invalid() {
    let keys = format!("{EXAMPLES}/keys.json");
    let verify = ["event", "verify", "--room-version", "12", "--keys", keys.as_str()];
    let message = example("message-v12.json");
    let run = mxsim(&verify, &message);
    assert_eq!((run.code, run.json()["verdict"].as_str()), (0, Some("valid")), "{}", run.stderr);

    // A change to content that redaction strips: signatures still verify, the content hash
    // does not, so the event must be replaced by its redacted form.
    let text = String::from_utf8(message.clone()).unwrap();
    let run = mxsim(&verify, text.replace("Hello", "Goodbye").as_bytes());
    assert_eq!(run.code, 1);
    assert_eq!(run.json()["verdict"], "redacted");
    assert_eq!(run.json()["redacted"]["content"], json!({}));

    // A change to a field redaction keeps: the signature breaks.
    let run = mxsim(&verify, text.replace("\"depth\": 2", "\"depth\": 3").as_bytes());
    assert_eq!(run.code, 1);
    assert_eq!(run.json()["verdict"], "invalid");

    // No key for the origin server.
    let dir = std::env::temp_dir().join(format!("mxsim-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let other = dir.join("other-keys.json");
    std::fs::write(
        &other,
        r#"{"elsewhere": {"ed25519:1": "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI"}}"#,
    )
    .unwrap();
    let run = mxsim(
        &["event", "verify", "--room-version", "12", "--keys", other.to_str().unwrap()],
        &message,
    );
    assert_eq!(run.code, 1);
    assert_eq!(run.json()["verdict"], "invalid");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn redact_per_version() {
    let event = json!({
        "type": "m.room.power_levels", "state_key": "", "sender": "@a:hs", "room_id": "!r:hs",
        "origin_server_ts": 1, "depth": 2, "auth_events": [], "prev_events": [], "origin": "hs",
        "content": {"invite": 50, "ban": 50, "notifications": {"room": 20}},
    });
    let v10 = mxsim(&["event", "redact", "--room-version", "10"], event.to_string().as_bytes());
    assert_eq!(v10.code, 0, "{}", v10.stderr);
    assert_eq!(v10.json()["content"], json!({"ban": 50}));
    assert_eq!(v10.json()["origin"], "hs");
    let v11 = mxsim(&["event", "redact", "--room-version", "11"], event.to_string().as_bytes());
    assert_eq!(v11.json()["content"], json!({"ban": 50, "invite": 50}));
    assert!(v11.json().get("origin").is_none());
}

#[test]
fn bad_input_exits_2_naming_the_problem() {
    let id = ["event", "id", "--room-version", "12"];
    let cases: &[(&[&str], &[u8], &str)] = &[
        (&id, b"{\"a\":\n", "stdin: line 2, column 1"),
        (&id, b"[1]", "must be a JSON object"),
        (&id, b"{\"a\": 1.5}", "line 1, column 7"),
        (&id, b"{\"type\": 5}", "$.type: must be a string"),
        (&id, b"{\"type\": \"m.room.message\"}", "$.sender: missing required field"),
        (&["event", "id", "--room-version", "9"], b"{}", "unsupported room version"),
        (&["event", "id"], b"{}", "--room-version"),
        (
            &["event", "sign", "--room-version", "12", "--server", "domain", "--key-seed", "short"],
            b"{}",
            "--key-seed",
        ),
        (
            &["event", "verify", "--room-version", "12", "--keys", "/nonexistent/keys.json"],
            b"{}",
            "",
        ),
    ];
    for (args, stdin, expected) in cases {
        let run = mxsim(args, stdin);
        assert_eq!(run.code, 2, "{args:?}: stdout {} stderr {}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(expected),
            "{args:?}: {:?} does not mention {expected:?}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}: wrote to stdout on failure: {}", run.stdout);
    }
}

#[test]
fn missing_keys_file_is_named() {
    let message = example("message-v12.json");
    let run = mxsim(
        &["event", "verify", "--room-version", "12", "--keys", "/nonexistent/keys.json"],
        &message,
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("/nonexistent/keys.json"), "{}", run.stderr);
}

#[test]
fn malformed_keys_file_names_file_and_path() {
    let dir = std::env::temp_dir().join(format!("mxsim-cli-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys.json");
    std::fs::write(&keys, r#"{"domain": {"ed25519:1": "not base64!"}}"#).unwrap();
    let run = mxsim(
        &["event", "verify", "--room-version", "12", "--keys", keys.to_str().unwrap()],
        &example("message-v12.json"),
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("keys.json: $.domain[\"ed25519:1\"]"), "{}", run.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn oversize_pdu_is_refused() {
    let mut event: Value = serde_json::from_slice(&example("message-v12.json")).unwrap();
    event["content"]["body"] = Value::String("x".repeat(70_000));
    let run = mxsim(&["event", "hash", "--room-version", "12"], event.to_string().as_bytes());
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("more than 65536"), "{}", run.stderr);
}

#[test]
fn field_longer_than_255_bytes_is_refused() {
    let mut event: Value = serde_json::from_slice(&example("message-v12.json")).unwrap();
    event["type"] = Value::String("t".repeat(256));
    let run = mxsim(&["event", "id", "--room-version", "12"], event.to_string().as_bytes());
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("$.type: longer than 255 bytes"), "{}", run.stderr);
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/resolve/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn resolve_demotion_beats_topic() {
    // Worked by hand from spec/state-resolution.md §3: the conflicted set is {$pl, $pl2,
    // $topic}; step 2 replays $pl then $pl2 (Bob demoted to 0); step 4 rejects Bob's topic
    // (state_default 50 > 0). So the power levels are $pl2 and there is no topic.
    let run = mxsim(&["resolve", &fixture("demotion-beats-topic.json")], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.json(),
        json!({
            "m.room.create": {"": "$create"},
            "m.room.join_rules": {"": "$jr"},
            "m.room.member": {"@alice:a.example": "$join-alice", "@bob:b.example": "$join-bob"},
            "m.room.power_levels": {"": "$pl2"},
        })
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn resolve_explain_and_time() {
    let run = mxsim(
        &["resolve", &fixture("demotion-beats-topic.json"), "--explain", "--repeat", "4", "--time"],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("conflicted state set (3): $pl $pl2 $topic"), "{}", run.stderr);
    assert!(run.stderr.contains("[other] $topic: rejected, rule 7"), "{}", run.stderr);
    assert!(run.stderr.contains("step 3, mainline (newest first): $pl2 $pl"), "{}", run.stderr);
    let timing: Value = serde_json::from_str(run.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(timing["runs"], 4);
    for key in ["median", "min", "max"] {
        assert!(timing["total_ms"][key].is_number(), "{timing}");
    }
}

/// Writes a variant of the fixture and runs `mxsim resolve` on it.
fn resolve_variant(name: &str, change: impl FnOnce(&mut Value)) -> Run {
    let mut input: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("demotion-beats-topic.json")).unwrap(),
    )
    .unwrap();
    change(&mut input);
    let dir = std::env::temp_dir().join(format!("mxsim-resolve-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("input.json");
    std::fs::write(&path, serde_json::to_vec(&input).unwrap()).unwrap();
    let run = mxsim(&["resolve", path.to_str().unwrap()], b"");
    std::fs::remove_dir_all(&dir).unwrap();
    run
}

#[test]
fn resolve_bad_input_exits_2_naming_the_problem() {
    type Change = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "version",
            Box::new(|v| v["room_version"] = json!("9")),
            "$.room_version: unsupported room version",
        ),
        ("unknown-field", Box::new(|v| v["extra"] = json!(1)), "$.extra: unknown field"),
        (
            "missing-state-event",
            Box::new(|v| v["state_sets"][0]["m.room.topic"] = json!({"": "$nowhere"})),
            "$.state_sets[0][\"m.room.topic\"][\"\"]: event $nowhere is not in $.events",
        ),
        (
            "key-mismatch",
            Box::new(|v| v["state_sets"][0]["m.room.topic"] = json!({"": "$pl"})),
            "event $pl has type \"m.room.power_levels\"",
        ),
        (
            "missing-auth-event",
            Box::new(|v| v["events"][6]["auth_events"][0] = json!("$ghost")),
            "$.events[6].auth_events[0]: event $topic cites auth event $ghost",
        ),
        (
            "duplicate",
            Box::new(|v| v["events"][6]["event_id"] = json!("$pl2")),
            "$.events[6].event_id: duplicate event id $pl2",
        ),
        (
            "bad-pdu",
            Box::new(|v| v["events"][2]["depth"] = json!("3")),
            "$.events[2].depth: must be an integer",
        ),
        (
            "rejected",
            Box::new(|v| v["events"][2]["rejected"] = json!(1)),
            "$.events[2].rejected: must be true",
        ),
        (
            "cycle",
            Box::new(|v| {
                v["events"][1]["auth_events"] = json!(["$create", "$pl"]);
            }),
            "cycle",
        ),
    ];
    for (name, change, expected) in cases {
        let run = resolve_variant(name, change);
        assert_eq!(run.code, 2, "{name}: stdout {} stderr {}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(expected),
            "{name}: {:?} does not mention {expected:?}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{name}: {}", run.stdout);
    }
    let run = mxsim(&["resolve", "/nonexistent/input.json"], b"");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("/nonexistent/input.json"), "{}", run.stderr);
    let run = mxsim(&["resolve", &fixture("demotion-beats-topic.json"), "--repeat", "0"], b"");
    assert_eq!(run.code, 2);
}

#[test]
fn resolve_rejected_events_per_mode() {
    // Bob's topic marked as rejected against its auth events never enters state in either
    // mode; with the demotion also rejected, the topic is allowed against $pl.
    let run = resolve_variant("rejected-pl2", |v| {
        v["events"][5]["rejected"] = json!("state_before");
    });
    assert_eq!(run.code, 0, "{}", run.stderr);
    // $pl2 was rejected only against the state before it: the spec treats it as a normal
    // event, so the demotion still wins.
    assert_eq!(run.json()["m.room.power_levels"][""], "$pl2");
    let run = resolve_variant("rejected-pl2-auth", |v| {
        v["events"][5]["rejected"] = json!(true);
    });
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Rejected against its own auth events, $pl2 never enters state: Bob keeps level 50 and
    // his topic passes.
    assert_eq!(run.json()["m.room.power_levels"][""], "$pl");
    assert_eq!(run.json()["m.room.topic"][""], "$topic");
}

/// `mxsim run` writes every file of DESIGN.md §4; `mxsim check` agrees with it on the
/// trace, and fails a doctored one; a broken scenario names its position.
#[test]
fn run_writes_the_run_files_and_check_rereads_the_trace() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-run");
    let _ = std::fs::remove_dir_all(&dir);
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/partition-heal.toml");
    let out = dir.join("out");
    let out_arg = out.to_str().unwrap();
    let run = mxsim(&["run", scenario, "--seed", "3", "--out", out_arg], b"");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("PASS partition-heal seed 3:"), "{}", run.stdout);
    for file in [
        "summary.json",
        "trace.jsonl",
        "events.jsonl",
        "keys.json",
        "dag.svg",
        "dag.dot",
        "convergence.svg",
        "convergence.png",
        "index.html",
    ] {
        assert!(out.join(file).is_file(), "{file} written");
    }
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["verdict"], "pass");
    assert_eq!(summary["seed"], 3);
    // One run cannot show determinism: it is not listed as checked, and no count of
    // unlisted violations is invented.
    let checked: Vec<&str> =
        summary["checked"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(checked, ["integrity", "auth", "dag", "convergence", "liveness", "durability"]);
    assert_eq!(summary["violations_not_listed"], json!({}));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(!html.contains("determinism"), "index.html lists only what was checked");
    let trace = std::fs::read(out.join("trace.jsonl")).unwrap();
    assert_eq!(summary["trace_hash"], mxsim::trace::hash_bytes(&trace));
    // Both servers joined, with the same state, as the summary's `servers` shows.
    let rooms: Vec<&Value> = ["hs1", "hs2"]
        .iter()
        .map(|s| summary["servers"][s]["rooms"].as_object().unwrap().values().next().unwrap())
        .collect();
    assert_eq!(rooms[0]["state"], rooms[1]["state"]);
    assert_eq!(rooms[0]["joined"], true);
    // Every line of events.jsonl is a PDU that verifies with keys.json.
    let keys = out.join("keys.json");
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(events.lines().count() >= 10);
    for line in events.lines().take(3) {
        let verify = mxsim(
            &["event", "verify", "--room-version", "12", "--keys", keys.to_str().unwrap()],
            line.as_bytes(),
        );
        assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    }

    let trace_path = out.join("trace.jsonl");
    let check = mxsim(&["check", trace_path.to_str().unwrap()], b"");
    assert_eq!(check.code, 0, "{}", check.stdout);
    assert!(check.stdout.starts_with("PASS partition-heal seed 3: checked"), "{}", check.stdout);
    assert!(!check.stdout.contains("determinism"), "{}", check.stdout);

    // With --check-determinism, and only then, determinism is listed.
    let twice = dir.join("twice");
    let run = mxsim(
        &["run", scenario, "--seed", "3", "--check-determinism", "--out", twice.to_str().unwrap()],
        b"",
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let summary: Value =
        serde_json::from_slice(&std::fs::read(twice.join("summary.json")).unwrap()).unwrap();
    assert!(summary["checked"].as_array().unwrap().contains(&json!("determinism")));
    let html = std::fs::read_to_string(twice.join("index.html")).unwrap();
    assert!(html.contains("determinism"), "index.html lists determinism after two runs");

    // Doctored: the last `final` record claims another state hash.
    let text = String::from_utf8(trace).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let last_final = lines.iter().rposition(|l| l.contains("\"type\":\"final\"")).unwrap();
    let doctored: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == last_final {
                let mut value: Value = serde_json::from_str(l).unwrap();
                value["state_hash"] = json!("forged");
                value.to_string()
            } else {
                l.to_owned()
            }
        })
        .collect();
    // The doctored trace carries a fresh end record, so that the checker, not the end
    // record, is what refuses it.
    let bad = dir.join("doctored.jsonl");
    std::fs::write(&bad, resealed(&doctored[..doctored.len() - 1])).unwrap();
    let check = mxsim(&["check", bad.to_str().unwrap()], b"");
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert!(check.stdout.contains("convergence:"), "{}", check.stdout);

    // A scenario error: exit 2 with file, line and column.
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "name = \"x\"\ncolour = 1\n").unwrap();
    let run = mxsim(&["run", broken.to_str().unwrap()], b"");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("broken.toml:2:1:"), "{}", run.stderr);
}

/// `lines` (without their newlines) followed by an end record computed by hand as
/// docs/trace.md describes it.
fn resealed(lines: &[String]) -> String {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let records = lines.len() - 1;
    let hash = mxsim::trace::hash_bytes(text.as_bytes());
    text.push_str(&format!("{{\"type\":\"end\",\"records\":{records},\"hash\":\"{hash}\"}}\n"));
    text
}

/// A trace ends with an end record: one cut at a line boundary, one with only its
/// header, one whose end record names another count or hash, are refused by `check`
/// and `report` with exit 2; the whole trace is accepted.
#[test]
fn check_and_report_refuse_an_incomplete_trace() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-incomplete");
    let _ = std::fs::remove_dir_all(&dir);
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/partition-heal.toml");
    let out = dir.join("out");
    let run = mxsim(&["run", scenario, "--seed", "2", "--out", out.to_str().unwrap()], b"");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let text = std::fs::read_to_string(out.join("trace.jsonl")).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // The last line is the end record, and it seals what precedes it.
    let end: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["records"], json!(lines.len() - 2));
    assert_eq!(resealed(&lines[..lines.len() - 1]), text);

    let cut = |keep: usize| {
        let mut cut = String::new();
        for line in &lines[..keep] {
            cut.push_str(line);
            cut.push('\n');
        }
        cut
    };
    let wrong_count = resealed(&lines[..lines.len() - 1])
        .replace(&format!("\"records\":{}", lines.len() - 2), "\"records\":1");
    let wrong_hash = {
        let end = lines.last().unwrap();
        let hash = end["{\"type\":\"end\",\"records\":".len()..].split('"').nth(2).unwrap();
        text.replace(hash, &"0".repeat(64))
    };
    for (name, bytes, needle) in [
        ("cut.jsonl", cut(lines.len() / 2), "no end record"),
        ("header-only.jsonl", cut(1), "no end record"),
        ("wrong-count.jsonl", wrong_count, "records"),
        ("wrong-hash.jsonl", wrong_hash, "hash"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let check = mxsim(&["check", path.to_str().unwrap()], b"");
        assert_eq!(check.code, 2, "{name}: {}{}", check.stdout, check.stderr);
        assert!(check.stderr.contains("trace is incomplete: "), "{name}: {}", check.stderr);
        assert!(check.stderr.contains(needle), "{name}: {}", check.stderr);
        let report_dir = dir.join(format!("report-{name}"));
        let report =
            mxsim(&["report", path.to_str().unwrap(), "--out", report_dir.to_str().unwrap()], b"");
        assert_eq!(report.code, 2, "{name}: {}{}", report.stdout, report.stderr);
        assert!(report.stderr.contains("trace is incomplete: "), "{name}: {}", report.stderr);
        assert!(!report_dir.join("index.html").exists(), "{name}: no report drawn");
    }
    let whole = mxsim(&["check", out.join("trace.jsonl").to_str().unwrap()], b"");
    assert_eq!(whole.code, 0, "{}{}", whole.stdout, whole.stderr);
}
