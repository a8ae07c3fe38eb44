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
    resolve_variant_with(name, &[], change)
}

/// [`resolve_variant`] with more arguments after the input file.
fn resolve_variant_with(name: &str, args: &[&str], change: impl FnOnce(&mut Value)) -> Run {
    let mut input: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("demotion-beats-topic.json")).unwrap(),
    )
    .unwrap();
    change(&mut input);
    let dir = std::env::temp_dir().join(format!("mxsim-resolve-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("input.json");
    std::fs::write(&path, serde_json::to_vec(&input).unwrap()).unwrap();
    let mut all = vec!["resolve", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = mxsim(&all, b"");
    std::fs::remove_dir_all(&dir).unwrap();
    run
}

/// A synthetic room (one event in four a message, forked, never merged) as a `mxsim
/// resolve` input of its branch tips' states, and the state the library resolves over every
/// event of the room, in the nested form `mxsim resolve` prints.
fn synth_resolve_input(version: &str, seed: u64, event_count: u32) -> (Value, Value) {
    use mxsim::matrix::RoomVersion;
    use mxsim::matrix::state_res::{self, ResolveOptions};
    use mxsim::stdx::{Prng, Ratio};
    use mxsim::synth::{self, SynthConfig};
    let config = SynthConfig {
        version: RoomVersion::parse(version).unwrap(),
        server_count: 4,
        users_per_server: 5,
        event_count,
        fork: Ratio::ONE,
        merge: Ratio::ZERO,
        branch_count_max: 3,
        message: Ratio::new(1, 4).unwrap(),
    };
    let room = synth::generate(&config, &mut Prng::from_seed(seed), &mut |_, _, _| {
        unreachable!("no merges")
    });
    let sets = room.branch_states();
    let options = ResolveOptions::default();
    let whole = state_res::resolve(room.rules, &sets, &room.events, options).unwrap().state;
    let nested = |set: &state_res::StateMap| {
        let mut out = serde_json::Map::new();
        for ((event_type, state_key), id) in set {
            let by_key = out.entry(event_type.clone()).or_insert_with(|| json!({}));
            by_key[state_key] = Value::String(id.as_str().to_owned());
        }
        Value::Object(out)
    };
    let events: Vec<Value> = room
        .order
        .iter()
        .map(|id| {
            let mut event = Value::Object(room.events[id].json().clone());
            event["event_id"] = Value::String(id.as_str().to_owned());
            event
        })
        .collect();
    // Messages, which no state set reaches, are in the file.
    let messages = events.iter().filter(|event| event.get("state_key").is_none()).count();
    assert!(messages * 10 > events.len(), "{version}/{seed}: {messages} messages");
    let input = json!({
        "room_version": version,
        "events": events,
        "state_sets": sets.iter().map(nested).collect::<Vec<_>>(),
    });
    (input, nested(&whole))
}

#[test]
fn resolve_leaves_out_what_no_state_set_reaches_and_resolves_as_with_every_event() {
    // `mxsim resolve` hands resolution only the events the state sets reach over auth
    // edges; resolving over the whole synthetic room (every event, the library's own store)
    // must give the same state.
    for (version, seed) in [("11", 1), ("11", 2), ("12", 1), ("12", 2)] {
        let (input, expected) = synth_resolve_input(version, seed, 300);
        let run = resolve_variant(&format!("synth-{version}-{seed}"), |file| *file = input);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.json(), expected, "room version {version}, seed {seed}");
    }
}

#[test]
fn resolve_reads_a_large_file_in_windows_as_it_reads_a_pipe_whole() {
    // A regular file is read a window of 256 KiB at a time, twice; a pipe is read whole.
    // Over a file of several windows, written with a line per member so that windows end
    // everywhere, both resolve as the library does, and a syntax error in the last event is
    // placed by line and column in the whole file either way.
    let (input, expected) = synth_resolve_input("12", 3, 1500);
    let text = serde_json::to_string_pretty(&input).unwrap();
    assert!(text.len() > 4 * 256 * 1024, "{} bytes: not several windows", text.len());
    let dir = std::env::temp_dir().join(format!("mxsim-resolve-{}-windows", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("input.json");
    let path = path.to_str().unwrap();
    std::fs::write(path, &text).unwrap();
    let from_file = mxsim(&["resolve", path], b"");
    assert_eq!(from_file.code, 0, "{}", from_file.stderr);
    assert_eq!(from_file.json(), expected);
    let from_pipe = mxsim(&["resolve", "/dev/stdin"], text.as_bytes());
    assert_eq!(from_pipe.code, 0, "{}", from_pipe.stderr);
    assert_eq!(from_pipe.stdout, from_file.stdout);

    // The last `origin_server_ts` in the file belongs to its last event; a fraction there is
    // refused where the number starts (every character here is ASCII: columns are bytes).
    let key = "\"origin_server_ts\": ";
    let at = text.rfind(key).unwrap() + key.len();
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    let bad = format!("{}1.5{}", &text[..at], &text[at + digits..]);
    let line = bad[..at].matches('\n').count() + 1;
    let column = at - bad[..at].rfind('\n').map_or(0, |newline| newline + 1) + 1;
    assert!(line > 1000, "the error lies deep in the file");
    std::fs::write(path, &bad).unwrap();
    let from_file = mxsim(&["resolve", path], b"");
    let place = format!("line {line}, column {column}:");
    assert_eq!(from_file.code, 2, "{}", from_file.stderr);
    assert!(from_file.stderr.contains(&format!("{path}: {place}")), "{}", from_file.stderr);
    let from_pipe = mxsim(&["resolve", "/dev/stdin"], bad.as_bytes());
    assert_eq!(from_pipe.code, 2);
    assert!(from_pipe.stderr.contains(&format!("/dev/stdin: {place}")), "{}", from_pipe.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
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
            "bad-sender",
            Box::new(|v| v["events"][2]["sender"] = json!("alice")),
            "$.events[2].sender: ",
        ),
        (
            "no-origin-server-ts",
            Box::new(|v| {
                v["events"][2].as_object_mut().unwrap().remove("origin_server_ts");
            }),
            "$.events[2].origin_server_ts: missing required field",
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
fn resolve_ignores_unknown_top_level_fields_and_names_them_once() {
    let run = resolve_variant("unknown-fields", |v| {
        v["exported_by"] = json!("some tool");
        v["comment"] = json!({"any": ["shape"]});
    });
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["m.room.power_levels"][""], "$pl2");
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "mxsim: {}: ignoring unknown top-level fields: \"comment\", \"exported_by\"",
            std::env::temp_dir()
                .join(format!("mxsim-resolve-{}-unknown-fields/input.json", std::process::id()))
                .display()
        )
    );
}

#[test]
fn resolve_strict_checks_every_event_as_a_pdu() {
    // A malformed depth is no concern of state resolution, but is of a PDU.
    let run = resolve_variant_with("strict-depth", &["--strict"], |v| {
        v["events"][2]["depth"] = json!("3");
    });
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("$.events[2].depth: must be an integer"), "{}", run.stderr);
    let run = resolve_variant("lenient-depth", |v| v["events"][2]["depth"] = json!("3"));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["m.room.power_levels"][""], "$pl2");
    // The fixture-shaped files below have no depth at all.
    let run = mxsim(&["resolve", &fixture("fixture-shape-v12-demotion.json"), "--strict"], b"");
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("$.events[0].depth: missing required field"), "{}", run.stderr);
}

/// Events in the shape of other implementations' test fixtures (no `depth`, `hashes` or
/// `signatures`, readable ids, extra fields) resolve as they are.
#[test]
fn resolve_takes_fixture_shaped_events() {
    // Room version 12, worked by hand from spec/state-resolution.md. Conflicted: the power
    // levels ($02 vs Alice's demotion of Bob, $10), Charlie's membership (join $05 vs
    // Bob's ban $12) and Bob's topic $11. The v2.1 conflicted state subgraph adds $03 and
    // $04 (they lie between $05/$12 and $02). Power events and their auth chains in the
    // full set, in reverse topological power order: $02, $03, $10 (Alice, a creator, is
    // infinitely powerful; lowest timestamp first), then $04 (Bob, 50), $05 (Charlie, 0),
    // $12. Replayed from an empty state, $10 demotes Bob to 0 before his ban $12 is
    // checked, so the ban fails (ban level 50); then his topic fails (state_default 50).
    let run = mxsim(&["resolve", &fixture("fixture-shape-v12-demotion.json")], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.json(),
        json!({
            "m.room.create": {"": "$00-create"},
            "m.room.join_rules": {"": "$03-jr"},
            "m.room.member": {
                "@alice:example.com": "$01-join-alice",
                "@bob:example.com": "$04-join-bob",
                "@charlie:example.com": "$05-join-charlie",
            },
            "m.room.power_levels": {"": "$10-pl-demote-bob"},
        })
    );
    assert!(run.stderr.contains("\"comment\", \"exported_by\""), "{}", run.stderr);

    // Room version 11 in the older shape: ids with a domain, `auth_events`/`prev_events`
    // as [id, {hashes}] pairs, a create event without `prev_events`. The join-rule change
    // to invite and Zara's join under the public rule conflict; step 2 replays the two
    // join rules in timestamp order (same sender power), so invite holds and Zara's join
    // fails against it in step 4.
    let run = mxsim(&["resolve", &fixture("fixture-shape-v11-join-rules.json")], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.json(),
        json!({
            "m.room.create": {"": "$CREATE:example.com"},
            "m.room.join_rules": {"": "$JR-INVITE:example.com"},
            "m.room.member": {
                "@alice:example.com": "$IMA:example.com",
                "@bob:example.com": "$IMB:example.com",
            },
            "m.room.power_levels": {"": "$IPOWER:example.com"},
        })
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
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

/// `mxsim run` writes its trace file as the run goes, after the header the run expects to
/// end with, which names the room its scripted steps create (the run holds its records
/// back until it has created the room): with and without `[[expect]]` blocks. Either way
/// the file is the whole trace's, as the library's in-memory run makes it, its hash is the
/// summary's, and no spool is left; with `--check-determinism` the second run is only
/// hashed. (The trace made again under another header: `cli::run::spool`'s tests.)
#[test]
fn a_runs_trace_file_is_the_whole_traces_with_or_without_names_in_its_header() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-streamed");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let labelled = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/partition-heal.toml");
    let text = std::fs::read_to_string(labelled).unwrap();
    let plain = dir.join("plain.toml");
    std::fs::write(&plain, &text[..text.find("[[expect]]").unwrap()]).unwrap();
    for (scenario, plain) in [(plain.to_str().unwrap(), true), (labelled, false)] {
        let text = std::fs::read_to_string(scenario).unwrap();
        let parsed = mxsim::scenario::parse(scenario, &text).unwrap();
        let plan =
            mxsim::world::from_scenario::plan(&parsed, 2, env!("CARGO_PKG_VERSION")).unwrap();
        let whole = mxsim::world::run(&plan).unwrap().trace;
        assert!(!whole.header.check.expect.rooms.is_empty(), "{scenario}");
        assert_eq!(whole.header.check.expect.blocks.is_empty(), plain, "{scenario}");
        for twice in [false, true] {
            let out = dir.join(format!("out-{plain}-{twice}"));
            let mut args = vec!["run", scenario, "--seed", "2", "--out", out.to_str().unwrap()];
            if twice {
                args.push("--check-determinism");
            }
            let run = mxsim(&args, b"");
            assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
            let file = std::fs::read(out.join("trace.jsonl")).unwrap();
            let summary: Value =
                serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
            assert_eq!(summary["trace_hash"], whole.hash(), "{scenario}");
            assert_eq!(mxsim::trace::hash_jsonl(&file), whole.hash(), "{scenario}");
            // Line for line the in-memory run's file, but for the build that wrote it.
            let mut read =
                mxsim::trace::Trace::parse_jsonl(std::str::from_utf8(&file).unwrap()).unwrap();
            read.header.mxsim_build = whole.header.mxsim_build.clone();
            assert!(read.to_jsonl() == whole.to_jsonl(), "{scenario}: the trace file differs");
            let left: Vec<_> = std::fs::read_dir(&out)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".part"))
                .collect();
            assert!(left.is_empty(), "{scenario}: spools left: {left:?}");
        }
    }
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
    assert_eq!(
        checked,
        ["integrity", "auth", "dag", "convergence", "liveness", "durability", "expectations"]
    );
    assert_eq!(summary["violations_not_listed"], json!({}));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(!html.contains("determinism"), "index.html lists only what was checked");
    let trace = std::fs::read(out.join("trace.jsonl")).unwrap();
    assert_eq!(summary["trace_hash"], mxsim::trace::hash_jsonl(&trace));
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

/// The Linearized Matrix vector of `tests/fixtures/linearized/vectors.py` (an independent
/// Python implementation of the draft): the draft's example invite, completed by the hub
/// first.example.org (seed 32 × 0x01) from second.example.org's LPDU (seed 32 × 0x02).
const LM: &str = "org.matrix.i-d.ralston-mimi-linearized-matrix.02";
const LM_INVITE_ID: &str = "$1a8KdtUbsJwx24vNaeHe92b915O7g6DsiByFy2FYhKU";

#[test]
fn linearized_matrix_events() {
    let invite = example("invite-linearized.json");
    let keys = format!("{EXAMPLES}/keys-linearized.json");
    let run = mxsim(&["event", "id", "--room-version", LM], &invite);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json(), json!({ "event_id": LM_INVITE_ID }));
    let run = mxsim(&["event", "hash", "--room-version", LM], &invite);
    assert_eq!(run.json(), json!({"sha256": "PqRoDUl7ytPvmL4jtovMpzfKncxslhPxFRBSuti2e2o"}));
    let verify = ["event", "verify", "--room-version", LM, "--keys", keys.as_str()];
    let run = mxsim(&verify, &invite);
    assert_eq!((run.code, run.json()["verdict"].as_str()), (0, Some("valid")), "{}", run.stderr);

    // The hub signs again: the same event, byte for byte, with hashes.lpdu kept.
    let mut unsigned: Value = serde_json::from_slice(&invite).unwrap();
    unsigned["signatures"].as_object_mut().unwrap().remove("first.example.org");
    unsigned["hashes"].as_object_mut().unwrap().remove("sha256");
    let hub_seed = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE";
    let sign = [
        "event",
        "sign",
        "--room-version",
        LM,
        "--server",
        "first.example.org",
        "--key-seed",
        hub_seed,
    ];
    let run = mxsim(&sign, unsigned.to_string().as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json(), serde_json::from_slice::<Value>(&invite).unwrap());

    // Without the hub's signature the event is invalid (receipt step 2).
    let run = mxsim(&verify, unsigned.to_string().as_bytes());
    assert_eq!(run.code, 2, "a PDU without hashes.sha256 is malformed: {}", run.stdout);
    let mut no_hub_signature: Value = serde_json::from_slice(&invite).unwrap();
    no_hub_signature["signatures"].as_object_mut().unwrap().remove("first.example.org");
    let run = mxsim(&verify, no_hub_signature.to_string().as_bytes());
    assert_eq!(run.code, 1);
    assert_eq!(run.json()["verdict"], "invalid");
    assert!(run.json()["reason"].as_str().unwrap().contains("hub signature"));

    // Redaction keeps hub_server; room version 11 would not know the event at all (no depth).
    let run = mxsim(&["event", "redact", "--room-version", LM], &invite);
    assert_eq!(run.json()["hub_server"], "first.example.org");
    let run = mxsim(&["event", "id", "--room-version", "11"], &invite);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("$.depth"), "{}", run.stderr);
}

/// Inputs are read with a limit that fits their format: more is refused with exit 2,
/// naming the limit, without reading on (so `/dev/zero` ends promptly).
#[test]
fn oversize_inputs_are_refused_naming_the_limit() {
    // stdin of `mxsim event`: a PDU is at most 65,536 bytes. 200,000 bytes that are not
    // JSON: refused for their size before any parsing.
    let run = mxsim(&["event", "id", "--room-version", "12"], &vec![b' '; 200_000]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("stdin: more than 65536 bytes, the limit for a PDU"),
        "{}",
        run.stderr
    );
    let zero = std::path::Path::new("/dev/zero");
    if zero.exists() {
        let run = mxsim(&["run", "/dev/zero"], b"");
        assert_eq!(run.code, 2);
        assert!(
            run.stderr
                .contains("/dev/zero: more than 16777216 bytes, the limit for a scenario file"),
            "{}",
            run.stderr
        );
        let child = Command::new(env!("CARGO_BIN_EXE_mxsim"))
            .args(["event", "id", "--room-version", "12"])
            .stdin(std::fs::File::open(zero).unwrap())
            .output()
            .unwrap();
        assert_eq!(child.status.code(), Some(2));
        let stderr = String::from_utf8(child.stderr).unwrap();
        assert!(stderr.contains("stdin: more than 65536 bytes"), "{stderr}");
    }
    // A regular file is refused from its size, before it is read.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-limits");
    let _ = std::fs::create_dir_all(&dir);
    let big = dir.join("big.toml");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len((16 << 20) + 1).unwrap();
    let run = mxsim(&["run", big.to_str().unwrap()], b"");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("more than 16777216 bytes, the limit for a scenario file"),
        "{}",
        run.stderr
    );
    // Exactly at the limit is read (and then refused as TOML, not for its size).
    std::fs::File::create(&big).unwrap().set_len(16 << 20).unwrap();
    let run = mxsim(&["run", big.to_str().unwrap()], b"");
    assert_eq!(run.code, 2);
    assert!(!run.stderr.contains("the limit"), "{}", run.stderr);
    // Every other file input, one byte over its limit (sparse files: nothing is written).
    let over = |name: &str, limit: u64| {
        let path = dir.join(name);
        std::fs::File::create(&path).unwrap().set_len(limit + 1).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let trace = over("big-trace.jsonl", 64 << 30);
    let input = over("big-resolve.json", 1 << 30);
    let keys = over("big-keys.json", 16 << 20);
    let results = over("big-results.jsonl", 1 << 30);
    let report_dir = dir.join("report").to_str().unwrap().to_owned();
    let event = example("message-v12.json");
    let cases: Vec<(Vec<&str>, &[u8], String)> = vec![
        (
            vec!["check", &trace],
            &b""[..],
            "more than 68719476736 bytes, the limit for a trace".into(),
        ),
        (
            vec!["report", &trace, "--out", &report_dir],
            &b""[..],
            "more than 68719476736 bytes, the limit for a trace".into(),
        ),
        (
            vec!["resolve", &input],
            &b""[..],
            "more than 1073741824 bytes, the limit for a resolve input".into(),
        ),
        (
            vec!["event", "verify", "--room-version", "12", "--keys", &keys],
            &event[..],
            "more than 16777216 bytes, the limit for a keys file".into(),
        ),
        (
            vec!["merge", &results],
            &b""[..],
            "more than 1073741824 bytes, the limit for a sweep results file".into(),
        ),
    ];
    for (args, stdin, message) in cases {
        let run = mxsim(&args, stdin);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(&message), "{args:?}: {}", run.stderr);
    }
}

/// A reader that stops reading (`| head`) ends the command quietly: no panic, no
/// message, the command's own exit code.
#[test]
fn a_closed_stdout_or_stderr_ends_quietly() {
    let event = example("message-v12.json");
    // Closed stderr, and an error to report there: the error cannot be shown, the exit
    // code still says it. Stdin is written only after the read end of stderr is closed,
    // and mxsim writes nothing before it has read all of stdin.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mxsim"))
        .args(["event", "id", "--room-version", "12"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    child.stdin.take().unwrap().write_all(b"not json").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(2), "an error, not a panic (101)");
    // Closed stdout, and a result to print there: exit 0 and nothing on stderr.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mxsim"))
        .args(["event", "id", "--room-version", "12"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.stdin.take().unwrap().write_all(&event).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
    // `resolve --explain` with stderr closed (the `2>&1 >/dev/null | head` of a user).
    let demotion = fixture("demotion-beats-topic.json");
    let output = with_stderr_closed(&["resolve", &demotion, "--explain", "--time"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8(output.stdout).unwrap().contains("$pl2"));
    // `sweep` with stderr closed: its progress lines (stderr is no terminal) are dropped.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-closed-stderr");
    std::fs::create_dir_all(&dir).unwrap();
    let results = dir.join("results.jsonl");
    let sweep = ["sweep", "scenarios/partition-heal.toml", "--seeds", "1..=2", "--jobs", "1"];
    let output = with_stderr_closed(&[&sweep[..], &["--out", results.to_str().unwrap()]].concat());
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
    assert!(String::from_utf8(output.stdout).unwrap().contains("2 run, 2 passed, 0 failed"));
}

/// Runs mxsim with `args`, the read end of its stderr dropped at once (mxsim writes to
/// stderr only after its work), and returns its exit status and stdout.
fn with_stderr_closed(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mxsim"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    child.wait_with_output().unwrap()
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
    let hash = mxsim::trace::hash_jsonl(text.as_bytes());
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

#[test]
fn shrink_refuses_an_unknown_invariant_before_running() {
    let out = std::env::temp_dir().join("mxsim-cli-shrink-unknown-invariant.toml");
    let run = mxsim(
        &[
            "shrink",
            "scenarios/ban-vs-power.toml",
            "--seed",
            "1",
            "--out",
            out.to_str().unwrap(),
            "--invariant",
            "vibes",
        ],
        b"",
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("unknown invariant \"vibes\""), "{}", run.stderr);
    assert!(run.stderr.contains("expected one of integrity, auth,"), "{}", run.stderr);
    assert!(!out.exists(), "nothing was written");
}

/// A failed action is listed with its scenario line by `mxsim run` and in `index.html`,
/// even when it was meant to fail and every invariant holds.
#[test]
fn failed_actions_are_listed_with_their_scenario_line() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-failed-actions");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("topic-refused.toml");
    // Line 17 is the `[[step]]` of bob's topic change: he has power 0 and the room's
    // state_default is 50 (rule 8), so it fails, as the step says it should.
    let text = r#"name = "topic-refused"

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
public = true

[[step]]
at_ms = 10_000
user = "@bob:hs2"
action = "send"
room = "main"
event_type = "m.room.topic"
state_key = ""
content = { topic = "bob's" }
expect = "fail"
"#;
    assert_eq!(text.lines().nth(16), Some("[[step]]"), "line 17 is the step");
    std::fs::write(&scenario, text).unwrap();
    let out = dir.join("out");
    let run = mxsim(
        &["run", scenario.to_str().unwrap(), "--seed", "1", "--out", out.to_str().unwrap()],
        b"",
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("failed actions (1):"), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "  scenario line 17, 10000 ms, hs2: send m.room.topic/\"\" in main: not allowed: rule 8"
        ),
        "{}",
        run.stdout
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("Failed actions (1)"), "index.html has the table");
    assert!(html.contains("scenario line 17"), "index.html names the line");
}
