//! Unit tests of the scenario module: what a small file turns into, and one error per
//! class of problem with its exact `FILE:LINE:COLUMN`.

use crate::net::{Fault, Nodes};
use crate::scenario::{Invariant, Mix, StepAction, parse};
use crate::stdx::Prng;

/// Two servers and a room: the base every error case appends to.
const BASE: &str = r#"name = "t"
description = "two servers, one room"
[[server]]
name = "hs1"
users = ["alice", "@bob:hs1"]
[[server]]
name = "hs2"
users = ["carol"]
[[room]]
label = "main"
creator = "@alice:hs1"
members = ["@carol:hs2"]
"#;

/// The error message of `BASE` followed by `extra` (BASE is 12 lines long).
fn error_of(extra: &str) -> String {
    match parse("t.toml", &format!("{BASE}{extra}")) {
        Ok(_) => panic!("accepted:\n{extra}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_small_file_expands_rooms_and_sorts_steps() {
    let text = format!(
        "{BASE}{}",
        r#"power = { "@carol:hs2" = 50 }
[[step]]
at_ms = 5000
user = "@carol:hs2"
action = "message"
room = "main"
body = "hi"
label = "m1"
[[step]]
at_ms = 6000
user = "@bob:hs1"
action = "redact"
room = "main"
redacts = "m1"
[[step]]
at_ms = 0
user = "@carol:hs2"
action = "send"
room = "main"
event_type = "m.room.topic"
state_key = ""
content = { topic = "x", nested = { list = [1, true, "s"] } }
"#
    );
    let scenario = parse("t.toml", &text).unwrap();
    assert_eq!(scenario.servers[0].users, ["@alice:hs1", "@bob:hs1"]);
    assert_eq!(scenario.rooms.len(), 1);
    assert_eq!(scenario.rooms[0].server, "hs1");
    assert_eq!(scenario.rooms[0].version, crate::matrix::room_version::RoomVersion::V12);
    let summary: Vec<(u64, &str, &str)> = scenario
        .steps
        .iter()
        .map(|s| (s.at_ms, s.user.as_str(), s.action.kind().as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (0, "@alice:hs1", "create_room"),
            // The [[room]] setup comes first on equal times, then [[step]]s as written.
            (0, "@carol:hs2", "send"),
            (1000, "@alice:hs1", "invite"),
            (2000, "@carol:hs2", "join"),
            (3000, "@alice:hs1", "power"),
            (5000, "@carol:hs2", "message"),
            (6000, "@bob:hs1", "redact"),
        ]
    );
    assert_eq!(
        scenario.steps[3].action,
        StepAction::Join { room: "main".into(), via: vec!["hs1".into()] }
    );
    let StepAction::Send { content, .. } = &scenario.steps[1].action else { panic!() };
    assert_eq!(
        serde_json::Value::Object(content.clone()),
        serde_json::json!({"topic": "x", "nested": {"list": [1, true, "s"]}})
    );
    // Every invariant but `linearized`, which needs a Linearized Matrix room.
    assert_eq!(scenario.check.invariants, Invariant::ALL[..8]);
    assert_eq!(scenario.end_ms(), 6000 + 180_000);
    assert!(scenario.faults.faults().is_empty());
}

#[test]
fn unknown_fields_are_refused_where_they_are_written() {
    assert_eq!(
        error_of("colour = 1\n"),
        "t.toml:13:1: unknown field `colour`, expected one of `label`, `creator`, `version`, `public`, `name`, `topic`, `at_ms`, `members`, `invited`, `power`, `setup_spacing_ms`, `member_stagger_ms`"
    );
    assert_eq!(
        error_of(
            "[[step]]\nat_ms = 1\nuser = \"@alice:hs1\"\naction = \"message\"\nroom = \"main\"\nbody = \"x\"\nbodyy = 2\n"
        ),
        "t.toml:19:1: unknown field `bodyy`, expected one of `at_ms`, `user`, `server`, `action`, `label`, `room`, `version`, `public`, `name`, `topic`, `event_type`, `state_key`, `content`, `body`, `target`, `via`, `redacts`, `new_room`, `level`, `expect`, `retries`"
    );
    assert_eq!(
        error_of(
            "[[fault]]\ntype = \"crash\"\nstart_ms = 1\nend_ms = 2\nnode = \"hs1\"\nwhy = 3\n"
        ),
        "t.toml:18:1: fault: unknown field `why`, expected one of `start_ms`, `end_ms`, `node`"
    );
    assert_eq!(
        error_of("[network]\ndefault_policy = { los = \"1/2\" }\n"),
        "t.toml:14:20: unknown field `los`, expected one of `latency`, `loss`, `duplicate`, `reorder`, `reorder_delay_ms_max`, `corrupt`"
    );
    assert_eq!(
        error_of("[check]\ninvariants = [\"liveness\", \"vibes\"]\n"),
        "t.toml:14:27: unknown variant `vibes`, expected one of `integrity`, `auth`, `dag`, `convergence`, `liveness`, `durability`, `determinism`, `expectations`, `linearized`"
    );
}

#[test]
fn bad_values_point_at_the_value() {
    // A step that is fine but for one line, appended to BASE (step lines 13 to 18).
    let step = |last: &str| {
        error_of(&format!(
            "[[step]]\nat_ms = 1\nuser = \"@alice:hs1\"\naction = \"message\"\nroom = \"main\"\n{last}\n"
        ))
    };
    assert_eq!(step("body = 3"), "t.toml:18:8: invalid type: integer `3`, expected a string");
    assert_eq!(
        step("body = \"x\"\nlevel = 3"),
        "t.toml:19:9: `level` does not apply to action \"message\" (it takes room, body)"
    );
    assert_eq!(step("label = \"a b\""), "t.toml:16:10: action \"message\" needs `body`");
    assert_eq!(
        error_of("[[step]]\nat_ms = -1\n"),
        "t.toml:14:9: invalid value: integer `-1`, expected u64"
    );
    assert_eq!(
        error_of(
            "[[step]]\nat_ms = 1\nuser = \"@alice:hs1\"\naction = \"dance\"\nroom = \"main\"\n"
        ),
        "t.toml:16:10: unknown action \"dance\", expected one of create_room, send, message, invite, join, leave, kick, ban, unban, knock, redact, upgrade, power"
    );
    assert_eq!(
        error_of(
            "[[step]]\nat_ms = 1\nuser = \"@alice:hs1\"\naction = \"send\"\nroom = \"main\"\nevent_type = \"m.x\"\ncontent = { a = 1, b = 0.5 }\n"
        ),
        "t.toml:19:24: content.b: a number with a fraction or exponent; canonical JSON has integers only"
    );
    assert_eq!(
        error_of(
            "[[step]]\nat_ms = 1\nuser = \"@alice:hs1\"\naction = \"upgrade\"\nroom = \"main\"\nversion = \"9\"\nnew_room = \"n\"\n"
        ),
        "t.toml:18:11: unknown room version \"9\": mxsim supports 10, 11, 12, org.matrix.i-d.ralston-mimi-linearized-matrix.02"
    );
    assert_eq!(
        step("body = \"x\"\nlabel = \"a b\""),
        "t.toml:19:9: bad label \"a b\": use 1 to 64 characters of A-Z a-z 0-9 . _ -"
    );
}

#[test]
fn impossible_steps_point_at_what_makes_them_impossible() {
    let step = |body: &str| error_of(&format!("[[step]]\nat_ms = 5000\n{body}\n"));
    // Unknown user, and a user acting on a server it does not belong to.
    assert_eq!(
        step("user = \"@zed:hs1\"\naction = \"message\"\nroom = \"main\"\nbody = \"x\""),
        "t.toml:15:8: unknown user \"@zed:hs1\": users are full ids declared under [[server]] or [[server_group]], such as \"@alice:hs1\""
    );
    assert_eq!(
        step(
            "user = \"@alice:hs1\"\nserver = \"hs2\"\naction = \"message\"\nroom = \"main\"\nbody = \"x\""
        ),
        "t.toml:16:10: user @alice:hs1 does not belong to server hs2 (it is on hs1)"
    );
    // Unknown room label, and a room used before the step that creates it.
    assert_eq!(
        step("user = \"@alice:hs1\"\naction = \"message\"\nroom = \"side\"\nbody = \"x\""),
        "t.toml:17:8: unknown room label \"side\": rooms are created by [[room]], a create_room step or an upgrade's new_room"
    );
    assert_eq!(
        step(
            "user = \"@alice:hs1\"\naction = \"message\"\nroom = \"side\"\nbody = \"x\"\n[[step]]\nat_ms = 9000\nuser = \"@alice:hs1\"\naction = \"create_room\"\nroom = \"side\""
        ),
        "t.toml:17:8: room \"side\" is used at 5000 ms, before the step that creates it (line 19, at 9000 ms)"
    );
    // Redactions: of an unknown label, of a later event.
    assert_eq!(
        step("user = \"@alice:hs1\"\naction = \"redact\"\nroom = \"main\"\nredacts = \"m9\""),
        "t.toml:18:11: redacts unknown label \"m9\""
    );
    assert_eq!(
        step(
            "user = \"@alice:hs1\"\naction = \"redact\"\nroom = \"main\"\nredacts = \"m1\"\n[[step]]\nat_ms = 5000\nuser = \"@alice:hs1\"\naction = \"message\"\nroom = \"main\"\nbody = \"x\"\nlabel = \"m1\""
        ),
        "t.toml:18:11: redacts \"m1\", which a later step makes (line 25, at 5000 ms)"
    );
    // Via servers that do not exist; targets that are not users.
    assert_eq!(
        step("user = \"@carol:hs2\"\naction = \"join\"\nroom = \"main\"\nvia = [\"hs1\", \"hs9\"]"),
        "t.toml:18:15: unknown server \"hs9\""
    );
    assert_eq!(
        step("user = \"@alice:hs1\"\naction = \"ban\"\nroom = \"main\"\ntarget = \"carol\""),
        "t.toml:18:10: unknown user \"carol\": users are full ids declared under [[server]] or [[server_group]], such as \"@alice:hs1\""
    );
}

#[test]
fn duplicate_names_are_refused_at_the_second() {
    assert_eq!(
        error_of("[[server]]\nname = \"hs1\"\n"),
        "t.toml:14:8: server hs1 is declared twice"
    );
    assert_eq!(
        error_of("[[room]]\nlabel = \"main\"\ncreator = \"@carol:hs2\"\n"),
        "t.toml:14:9: room label \"main\" is already created by the step at line 9"
    );
    assert_eq!(
        error_of(
            "[[step]]\nat_ms = 1\nuser = \"@alice:hs1\"\naction = \"message\"\nroom = \"main\"\nbody = \"x\"\nlabel = \"a\"\n[[step]]\nat_ms = 2\nuser = \"@alice:hs1\"\naction = \"message\"\nroom = \"main\"\nbody = \"x\"\nlabel = \"a\"\n"
        ),
        "t.toml:26:9: label \"a\" is already used at line 19"
    );
    let error =
        parse("t.toml", "name = \"t\"\n[[server]]\nname = \"hs1\"\nusers = [\"a\", \"a\"]\n");
    assert_eq!(error.unwrap_err().to_string(), "t.toml:4:15: user @a:hs1 is declared twice");
    let error = parse("t.toml", "name = \"t\"\n[[server]]\nname = \"hs 1\"\n");
    assert_eq!(
        error.unwrap_err().to_string(),
        "t.toml:3:8: bad server name \"hs 1\": hostname may only contain A-Z a-z 0-9 . -"
    );
    let error = parse("t.toml", "name = \"t\"\n[[server]]\nname = \"hs1\"\nusers = [\"@a:hs2\"]\n");
    assert_eq!(
        error.unwrap_err().to_string(),
        "t.toml:4:10: user @a:hs2 does not belong to server hs1"
    );
}

/// Server names and user ids follow `matrix::ids`: the spec's grammar, 255 bytes at most,
/// and the strict localpart characters for ids a scenario creates.
#[test]
fn user_ids_follow_the_matrix_grammar() {
    let users = |list: &str| {
        let text = format!("name = \"t\"\n[[server]]\nname = \"hs1\"\nusers = [{list}]\n");
        parse("t.toml", &text).unwrap_err().to_string()
    };
    let long = "a".repeat(260);
    assert_eq!(
        users(&format!("\"{long}\"")),
        format!("t.toml:4:10: bad user id \"{long}\": longer than 255 bytes")
    );
    assert_eq!(
        users("\"@a\""),
        "t.toml:4:10: bad user id \"@a\": must contain ':' before the server name"
    );
    assert_eq!(
        users("\"@a:hs 1\""),
        "t.toml:4:10: bad user id \"@a:hs 1\": hostname may only contain A-Z a-z 0-9 . -"
    );
    assert_eq!(
        users("\"Alice\""),
        "t.toml:4:10: bad user \"Alice\": a localpart uses only a-z 0-9 . _ = - / +"
    );
    // 255 bytes is still an id: `@` + 250 + `:hs1`.
    let longest = "a".repeat(250);
    assert!(
        parse(
            "t.toml",
            &format!("name = \"t\"\n[[server]]\nname = \"hs1\"\nusers = [\"{longest}\"]\n")
        )
        .is_ok()
    );
}

#[test]
fn fault_problems_point_into_the_fault() {
    let fault = |body: &str| error_of(&format!("[[fault]]\n{body}\n"));
    assert_eq!(
        fault("type = \"one_way\"\nstart_ms = 10\nend_ms = 5\nfrom = \"hs1\"\nto = \"hs2\""),
        "t.toml:16:10: one_way fault: end_ms (5) is before start_ms (10)"
    );
    assert_eq!(
        fault("type = \"partition\"\nstart_ms = 0\nend_ms = 5\ngroups = [[\"hs1\"], [\"hs3\"]]"),
        "t.toml:17:10: partition fault: node hs3 is not one of the run's nodes"
    );
    assert_eq!(
        fault(
            "type = \"flap\"\nstart_ms = 0\nend_ms = 5\na = \"hs1\"\nb = \"hs2\"\nperiod_ms = 10\ndown_for_ms = 10"
        ),
        "t.toml:20:15: flap fault: down_for_ms (10) must be at least 1 and less than period_ms (10), which is at most one day"
    );
    assert_eq!(
        fault(
            "type = \"crash\"\nstart_ms = 0\nend_ms = 50\nnode = \"hs2\"\n[[fault]]\ntype = \"pause\"\nstart_ms = 40\nend_ms = 60\nnode = \"hs2\""
        ),
        "t.toml:20:12: pause fault: node hs2 is already crashed or paused then, by the fault at line 13"
    );
    assert_eq!(
        fault("type = \"meteor\"\nstart_ms = 0"),
        "t.toml:13:1: fault: unknown variant `meteor`, expected one of `partition`, `one_way`, `hold`, `flap`, `link_override`, `clock_skew`, `slow`, `crash`, `pause`"
    );
    assert_eq!(
        fault("type = \"crash\"\nstart_ms = 0\nend_ms = 700_000_000\nnode = \"hs2\""),
        "t.toml:16:10: end_ms (700000000) is after the latest allowed time (604800000, one week): a scenario's faults must heal"
    );
    let scenario = parse(
        "t.toml",
        &format!("{BASE}[[fault]]\ntype = \"link_override\"\nstart_ms = 5\nend_ms = 9\nfrom = \"hs1\"\nto = \"hs2\"\npolicy = {{ loss = \"3/10\" }}\n"),
    )
    .unwrap();
    assert!(matches!(scenario.faults.faults()[0], Fault::LinkOverride { .. }));
    assert_eq!(scenario.end_ms(), 2000 + 180_000);
}

#[test]
fn checks_and_server_config_are_bounded() {
    assert_eq!(
        error_of("[check]\nliveness_bound_ms = 200000\n"),
        "t.toml:14:21: liveness_bound_ms (200000) is longer than quiet_ms (180000): the run would stop before the bound could be judged"
    );
    let scenario = parse(
        "t.toml",
        &format!(
            "quiet_ms = 300000\n{BASE}[check]\ninvariants = [\"dag\", \"auth\", \"dag\"]\nliveness_bound_ms = 200000\n[server_config]\nrequest_timeout_ms = 10000\n"
        ),
    );
    // `quiet_ms` before `name` is still a top-level key.
    let scenario = scenario.unwrap();
    assert_eq!(scenario.check.invariants, [Invariant::Auth, Invariant::Dag]);
    assert_eq!(scenario.server_config.request_timeout_ms, Some(10_000));
    assert_eq!(
        error_of("[server_config]\nbackoff_ms_min = 5000\nbackoff_ms_max = 100\n"),
        "t.toml:14:18: backoff_ms_min (5000) is above backoff_ms_max (100)"
    );
}

#[test]
fn workloads_expand_deterministically_and_differ_between_seeds() {
    let text = format!(
        "{BASE}{}",
        r#"[[workload]]
room = "main"
start_ms = 10000
end_ms = 70000
interval_ms = 500
mix = { message = 4, topic = 1, name = 1, power = 1, join_leave = 1, ban = 1, kick = 1, redact = 1 }
"#
    );
    let scenario = parse("t.toml", &text).unwrap();
    let workload = &scenario.workloads[0];
    assert_eq!(workload.users, ["@alice:hs1", "@carol:hs2"], "the room's members by default");
    assert_eq!(workload.via, ["hs1"]);
    let steps = scenario.expand_workloads(&Prng::from_seed(1));
    assert_eq!(steps, scenario.expand_workloads(&Prng::from_seed(1)));
    assert_ne!(steps, scenario.expand_workloads(&Prng::from_seed(2)));
    // About one action per 500 ms over 60 s.
    assert!((80..=160).contains(&steps.len()), "{}", steps.len());
    let mut kinds = std::collections::BTreeSet::new();
    for (index, step) in steps.iter().enumerate() {
        kinds.insert(step.action.kind().as_str());
        assert!(10_000 < step.at_ms && step.at_ms < 70_000);
        if let StepAction::Redact { event: target_label, .. } = &step.action {
            let earlier = steps[..index].iter().any(|s| s.label.as_ref() == Some(target_label));
            assert!(earlier, "redacts a label made later: {target_label}");
        }
        if let StepAction::Join { via, .. } = &step.action {
            assert_eq!(via.is_empty(), step.server == "hs1", "{step:?}");
        }
    }
    for kind in ["message", "send", "power", "join", "leave", "ban", "kick", "redact"] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
    assert_eq!(Mix::default().weights().iter().map(|w| w.1).sum::<u64>(), 1);
    assert_eq!(scenario.end_ms(), 70_000 + 180_000);

    assert_eq!(
        error_of(
            "[[workload]]\nroom = \"main\"\nstart_ms = 10\nend_ms = 10000000\ninterval_ms = 1\n"
        ),
        "t.toml:17:15: about 9999990 actions, more than the limit of 100000: raise interval_ms or shorten the workload"
    );
    assert_eq!(
        error_of(
            "[[workload]]\nroom = \"main\"\nstart_ms = 10\nend_ms = 100\ninterval_ms = 1\nmix = { message = 0 }\n"
        ),
        "t.toml:18:7: every weight of the mix is 0"
    );
}

#[test]
fn syntax_errors_have_positions_too() {
    let error = parse("x.toml", "name = \"t\"\n[[server]\n").unwrap_err();
    assert_eq!((error.file.as_str(), error.line), ("x.toml", 2));
    let error = parse("x.toml", "").unwrap_err();
    assert_eq!(error.to_string(), "x.toml:1:1: missing field `name`");
}

#[test]
fn settle_rounds_come_after_everything_else() {
    let text = format!(
        "{BASE}{}",
        r#"[[step]]
at_ms = 5000
user = "@carol:hs2"
action = "message"
room = "main"
body = "hi"
[[fault]]
type = "partition"
start_ms = 1000
end_ms = 8000
groups = [["hs1"]]
[[settle]]
room = "main"
users = ["@alice:hs1", "@carol:hs2"]
rounds = 2
"#
    );
    let scenario = parse("t.toml", &text).unwrap();
    let settle: Vec<(u64, &str)> = scenario
        .steps
        .iter()
        .filter(
            |s| matches!(&s.action, StepAction::Message { body, .. } if body.starts_with("settle")),
        )
        .map(|s| (s.at_ms, s.user.as_str()))
        .collect();
    // The heal at 8 s is the latest thing; rounds start 5 s later, 10 s apart, and the two
    // users share each round's 10 s evenly.
    assert_eq!(
        settle,
        [
            (13_000, "@alice:hs1"),
            (18_000, "@carol:hs2"),
            (23_000, "@alice:hs1"),
            (28_000, "@carol:hs2")
        ]
    );
    assert!(scenario.steps.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    assert_eq!(scenario.end_ms(), 28_000 + scenario.quiet_ms);
}

#[test]
fn settle_errors_point_at_the_field() {
    assert_eq!(
        error_of("[[settle]]\nroom = \"nope\"\n"),
        "t.toml:14:8: unknown room label \"nope\""
    );
    assert_eq!(
        error_of("[[settle]]\nroom = \"main\"\nrounds = 0\n"),
        "t.toml:15:10: rounds must be 1 to 10"
    );
    assert!(error_of("[[settle]]\nroom = \"main\"\ncolour = 1\n").starts_with("t.toml:15:"));
}

#[test]
fn a_scenario_name_is_one_safe_path_component() {
    // The name becomes reports/NAME/: "." and ".." would write outside reports/.
    for name in [".", ".."] {
        let text = BASE.replacen("name = \"t\"", &format!("name = {name:?}"), 1);
        let error = parse("t.toml", &text).unwrap_err().to_string();
        assert!(error.starts_with("t.toml:1:8: bad scenario name"), "{error}");
    }
    for name in ["a/b", "../x", ""] {
        let text = BASE.replacen("name = \"t\"", &format!("name = {name:?}"), 1);
        assert!(parse("t.toml", &text).is_err(), "{name:?} is refused");
    }
    for name in ["...", ".hidden", "a..b"] {
        let text = BASE.replacen("name = \"t\"", &format!("name = {name:?}"), 1);
        assert_eq!(parse("t.toml", &text).unwrap().name, name);
    }
}

#[test]
fn a_link_override_may_name_groups_of_servers() {
    let three =
        BASE.replace("users = [\"carol\"]\n", "users = [\"carol\"]\n[[server]]\nname = \"hs3\"\n");
    let fault = |from: &str, to: &str| {
        format!(
            "{three}[[fault]]\ntype = \"link_override\"\nstart_ms = 0\nend_ms = 10\nfrom = {from}\nto = {to}\npolicy = {{ loss = \"1/2\" }}\n"
        )
    };
    // One fault as written, whatever it covers.
    let ends = |from: &str, to: &str| -> (String, String) {
        let scenario = parse("t.toml", &fault(from, to)).unwrap_or_else(|e| panic!("{e}"));
        match scenario.faults.faults() {
            [Fault::LinkOverride { from, to, .. }] => (from.to_string(), to.to_string()),
            other => panic!("{other:?}"),
        }
    };
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(ends("\"*\"", "\"*\""), pair("*", "*"));
    assert_eq!(ends("[\"hs1\"]", "\"*\""), pair("[hs1]", "*"));
    assert_eq!(ends("[\"hs1\", \"hs2\"]", "\"hs3\""), pair("[hs1 hs2]", "hs3"));
    assert_eq!(ends("\"hs2\"", "\"hs1\""), pair("hs2", "hs1"));
    // Errors point into the written table: line 19 is `from`, 20 is `to`.
    let error = parse("t.toml", &fault("[]", "\"*\"")).unwrap_err().to_string();
    assert!(error.starts_with("t.toml:19:8: link_override fault: `from` is a server"), "{error}");
    let error = parse("t.toml", &fault("\"*\"", "[\"hs9\"]")).unwrap_err().to_string();
    assert!(error.starts_with("t.toml:20:6: link_override fault:"), "{error}");
    assert!(error.contains("hs9"), "{error}");
    // "*" stands alone: inside a list it is refused at the field.
    let error = parse("t.toml", &fault("[\"hs1\", \"*\"]", "\"*\"")).unwrap_err().to_string();
    assert!(error.starts_with("t.toml:19:8: link_override fault: `from`:"), "{error}");
    assert!(error.contains("stands alone"), "{error}");
    let error = parse("t.toml", &fault("[\"hs1\"]", "[\"hs1\"]")).unwrap_err().to_string();
    assert!(error.contains("no link between `from` and `to`"), "{error}");
}

/// Every link of 200 servers is 39,800 links, more than a schedule's 10,000 faults: as one
/// fault, an override of them all is taken.
#[test]
fn an_override_of_every_link_of_many_servers_is_one_fault() {
    let text = format!(
        "{BASE}[[server_group]]\nprefix = \"many\"\ncount = 198\n[[fault]]\ntype = \"link_override\"\nstart_ms = 0\nend_ms = 10\nfrom = \"*\"\nto = \"*\"\npolicy = {{ loss = \"1/2\" }}\n"
    );
    let scenario = parse("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scenario.servers.len(), 200);
    assert!(matches!(
        scenario.faults.faults(),
        [Fault::LinkOverride { from: Nodes::All, to: Nodes::All, .. }]
    ));
}

#[test]
fn a_server_may_have_settings_of_its_own() {
    let text = format!(
        "{}{BASE_REST}",
        "name = \"t\"\n[server_config]\nrequest_timeout_ms = 5_000\nbackoff_ms_min = 100\n[[server]]\nname = \"hs1\"\nusers = [\"alice\"]\n[[server]]\nname = \"hs2\"\nusers = [\"carol\"]\nconfig = { request_timeout_ms = 1_000, retries_max = 3 }\n"
    );
    let scenario = parse("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scenario.servers[0].config, None);
    let own = scenario.servers[1].config.unwrap();
    assert_eq!(own.request_timeout_ms, Some(1_000));
    assert_eq!(own.retries_max, Some(3));
    // Fields the server does not set come from [server_config].
    assert_eq!(own.backoff_ms_min, Some(100));
    assert_eq!(scenario.server_config.request_timeout_ms, Some(5_000));
    let bad = text.replace("request_timeout_ms = 1_000", "request_timeout_ms = 0");
    let error = parse("t.toml", &bad).unwrap_err().to_string();
    assert!(error.contains("request_timeout_ms must be at least 1"), "{error}");
}

const BASE_REST: &str =
    "[[room]]\nlabel = \"main\"\ncreator = \"@alice:hs1\"\nmembers = [\"@carol:hs2\"]\n";

#[test]
fn steps_say_what_they_expect_and_expect_tables_are_checked() {
    let text = format!(
        "{BASE}{}",
        r#"[[step]]
at_ms = 5000
user = "@carol:hs2"
action = "ban"
room = "main"
target = "@alice:hs1"
expect = "fail"
[[step]]
at_ms = 6000
user = "@carol:hs2"
action = "join"
room = "main"
retries = 2
label = "j"
[[expect]]
room = "main"
conflicted = "m.room.name"
events_min = 3
[[expect]]
room = "main"
rejected = "j"
"#
    );
    let scenario = parse("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let ban = scenario.steps.iter().find(|s| s.line == 13).unwrap();
    assert_eq!(ban.expect, crate::scenario::StepExpect::Fail);
    let join = scenario.steps.iter().find(|s| s.line == 20).unwrap();
    assert_eq!((join.retries, join.expect), (2, crate::scenario::StepExpect::Succeed));
    // [[room]] setup steps carry the [[room]] line and must succeed.
    assert!(
        scenario
            .steps
            .iter()
            .filter(|s| s.line == 9)
            .all(|s| s.expect == crate::scenario::StepExpect::Succeed)
    );
    assert_eq!(scenario.expectations.len(), 2);
    assert_eq!(scenario.expectations[0].line, 27);
    assert!(matches!(
        &scenario.expectations[0].what,
        crate::scenario::ExpectWhat::Conflicted { events_min: 3, .. }
    ));

    for (extra, message) in [
        (
            "[[step]]\nat_ms = 1\nuser = \"@alice:hs1\"\naction = \"message\"\nroom = \"main\"\nbody = \"x\"\nexpect = \"maybe\"\n",
            "t.toml:19:10: expect must be \"succeed\" or \"fail\", not \"maybe\"",
        ),
        (
            "[[step]]\nat_ms = 1\nuser = \"@alice:hs1\"\naction = \"message\"\nroom = \"main\"\nbody = \"x\"\nretries = 1\n",
            "t.toml:19:11: `retries` applies to join, leave, knock and invite, not to action \"message\"",
        ),
        (
            "[[expect]]\nroom = \"main\"\n",
            "t.toml:13:1: an [[expect]] table needs exactly one of state, conflicted, rejected, converged_by_ms",
        ),
        (
            "[[expect]]\nroom = \"main\"\nstate = \"m.room.topic\"\nconverged_by_ms = 5\n",
            "t.toml:16:19: an [[expect]] table needs exactly one of state, conflicted, rejected, converged_by_ms",
        ),
        (
            "[[expect]]\nroom = \"nope\"\nstate = \"m.room.topic\"\n",
            "t.toml:14:8: unknown room label \"nope\"",
        ),
        (
            "[[expect]]\nroom = \"main\"\nrejected = \"nope\"\n",
            "t.toml:15:12: unknown label \"nope\"",
        ),
        (
            "[[expect]]\nroom = \"main\"\nconverged_by_ms = 5\nstate_key = \"\"\n",
            "t.toml:16:13: `state_key` applies to state and conflicted expectations only",
        ),
    ] {
        // The table-wide refusal points at the table, wherever the TOML parser puts it.
        let error = error_of(extra);
        if let Some(rest) = message.strip_prefix("t.toml:13:1:") {
            assert!(error.ends_with(rest), "{error}");
        } else {
            assert_eq!(error, message);
        }
    }
}

#[test]
fn offline_sends_is_queue_or_fail() {
    let text = "name = \"t\"\n[server_config]\noffline_sends = \"fail\"\n[[server]]\nname = \"hs1\"\nusers = [\"alice\"]\n";
    let scenario = parse("t.toml", text).unwrap();
    assert_eq!(scenario.server_config.offline_sends, Some(crate::scenario::OfflineSends::Fail));
    let error = parse("t.toml", &text.replace("\"fail\"", "\"drop\"")).unwrap_err().to_string();
    assert!(
        error.contains("t.toml:3:17: offline_sends is \"queue\" or \"fail\", not \"drop\""),
        "{error}"
    );
}

#[test]
fn linearized_is_checked_by_default_only_with_a_linearized_room() {
    let base = "name = \"t\"\n[[server]]\nname = \"hs1\"\nusers = [\"alice\"]\n[[room]]\nlabel = \"r\"\ncreator = \"@alice:hs1\"\n";
    let dag = parse("t.toml", base).unwrap();
    assert!(!dag.check.checks(Invariant::Linearized));
    let lm = format!("{base}version = \"org.matrix.i-d.ralston-mimi-linearized-matrix.02\"\n");
    let lm = parse("t.toml", &lm).unwrap();
    assert!(lm.check.checks(Invariant::Linearized));
    // A listed set is taken as written.
    let listed = format!(
        "{base}version = \"org.matrix.i-d.ralston-mimi-linearized-matrix.02\"\n[check]\ninvariants = [\"auth\"]\n"
    );
    assert_eq!(parse("t.toml", &listed).unwrap().check.invariants, [Invariant::Auth]);
}

#[test]
fn dag_capable_is_a_boolean_per_server() {
    let text = "name = \"t\"\n[[server]]\nname = \"hs1\"\nusers = [\"alice\"]\nconfig = { dag_capable = true }\n[[server]]\nname = \"hs2\"\n";
    let scenario = parse("t.toml", text).unwrap();
    assert_eq!(scenario.servers[0].config.and_then(|c| c.dag_capable), Some(true));
    assert_eq!(scenario.servers[1].config.and_then(|c| c.dag_capable), None);
    let error = parse("t.toml", &text.replace("true", "\"yes\"")).unwrap_err().to_string();
    assert!(error.contains("t.toml:5:"), "{error}");
}
