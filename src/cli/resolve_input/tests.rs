//! Tests of reading an `mxsim resolve` input: top-level fields in any order, syntax errors
//! placed as the whole-file parser places them, what each event keeps (shared ids, texts,
//! contents and power levels' `users`), and the events no state set reaches.

use super::*;

/// Written by hand with `room_version` first, unlike canonical key order.
const DEMOTION: &str = include_str!("../../../tests/fixtures/resolve/demotion-beats-topic.json");

fn read(text: &str) -> Result<ResolveInput, CliError> {
    parse("input.json", text.as_bytes(), Strictness::Resolution)
}

type Summary = (RoomVersion, Vec<(Pdu, Option<RejectionKind>)>, Vec<StateMap>, Vec<String>);

/// The content as given: a power-levels event's `users` are kept apart
/// ([`Pdu::level_users`]) and put back here.
fn given_content(pdu: &Pdu) -> Value {
    let mut content = pdu.content().clone();
    if let Some(users) = pdu.level_users() {
        let users = users.iter().map(|(user, level)| (user.to_owned(), Value::from(level)));
        content.insert("users".to_owned(), Value::Object(users.collect()));
    }
    Value::Object(content)
}

fn summary(input: ResolveInput) -> Summary {
    let events = input.events.into_iter().map(|(pdu, kind)| ((*pdu).clone(), kind)).collect();
    (input.room_version, events, input.state_sets, input.ignored_fields)
}

#[test]
fn top_level_fields_are_read_in_any_order() {
    let as_written = summary(read(DEMOTION).unwrap());
    assert_eq!(as_written.1.len(), 7, "the fixture's events");
    let value: Value = serde_json::from_str(DEMOTION).unwrap();
    // serde_json writes keys sorted: `events` before `room_version`.
    let canonical = serde_json::to_string(&value).unwrap();
    assert!(canonical.find("\"events\"") < canonical.find("\"room_version\""));
    assert_eq!(summary(read(&canonical).unwrap()), as_written);
    let scrambled = format!(
        r#"{{"state_sets":{},"aaa":[1,{{"x":[]}}],"events":{},"room_version":"11","zzz":{{}}}}"#,
        value["state_sets"], value["events"]
    );
    let (version, events, sets, ignored) = summary(read(&scrambled).unwrap());
    assert_eq!((version, &events, &sets), (as_written.0, &as_written.1, &as_written.2));
    assert_eq!(ignored, ["aaa", "zzz"]);
}

#[test]
fn contents_held_as_text_come_back_for_the_events_resolution_reads() {
    // `$topic` is in a state set: its content, held as text while the events were read,
    // is its own again. A message with a content of several members that nothing
    // reaches is not handed on.
    let mut value: Value = serde_json::from_str(DEMOTION).unwrap();
    let mut message = value["events"][6].clone();
    message["event_id"] = Value::from("$message");
    message["type"] = Value::from("m.room.message");
    message.as_object_mut().unwrap().remove("state_key");
    message["content"] = serde_json::json!({"body": "hi", "msgtype": "m.text", "n": [1]});
    value["events"].as_array_mut().unwrap().push(message);
    let input = read(&value.to_string()).unwrap();
    let ids: Vec<&str> = input.events.iter().map(|(pdu, _)| pdu.event_id().as_str()).collect();
    assert!(ids.contains(&"$topic") && !ids.contains(&"$message"), "{ids:?}");
    for (pdu, _) in &input.events {
        let given = value["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|event| event["event_id"] == pdu.event_id().as_str())
            .unwrap();
        assert_eq!(given_content(pdu), given["content"], "{}", pdu.event_id());
    }
}

/// `text` with the first `find` replaced by `replace` is not valid JSON, and is refused
/// with the whole-text parser's error.
fn refused_as_parse_refuses(text: &str, find: &str, replace: &str) {
    let damaged = text.replacen(find, replace, 1);
    assert_ne!(damaged, text, "{find}");
    let whole =
        canonical_json::parse(damaged.as_bytes(), Numbers::IntegerLiterals).expect_err("damaged");
    let err = read(&damaged).err().expect("damaged");
    assert_eq!(err.message, format!("input.json: {whole}"), "{find} → {replace}");
}

#[test]
fn syntax_errors_are_placed_as_the_whole_file_parser_places_them() {
    // (text to find in the fixture, what to put in its place)
    let damage = [
        (r#""depth": 3,"#, r#""depth": 3,,"#),
        (r#""depth": 2,"#, r#""depth": 2, "depth": 2,"#),
        (r#""$join-alice""#, r#""$join-alice"#),
        (r#""origin_server_ts": 1,"#, r#""origin_server_ts": 1.5,"#),
        (r#""room_version": "11","#, r#""room_version": "11" "#),
        (r#""state_sets": ["#, r#""state_sets": [}"#),
        (r#""events": ["#, r#""events": [ "\x" "#),
    ];
    for (find, replace) in damage {
        refused_as_parse_refuses(DEMOTION, find, replace);
    }
    let err = read("[1]").err().unwrap();
    assert!(err.message.contains("$: must be an object"), "{}", err.message);
    let err = read(r#"{"events":{},"room_version":"11","state_sets":[]}"#).err().unwrap();
    assert!(err.message.contains("$.events: missing, or not an array"), "{}", err.message);
}

/// The fixture with the members of signed PDUs and exported events that state
/// resolution never reads, which the resolution stage checks as JSON only; one event
/// carries them in shapes a signed PDU could not have.
fn signed_demotion() -> String {
    let mut value: Value = serde_json::from_str(DEMOTION).unwrap();
    for (index, event) in value["events"].as_array_mut().unwrap().iter_mut().enumerate() {
        let event = event.as_object_mut().unwrap();
        event.insert("hashes".into(), serde_json::json!({"sha256": format!("h{index}")}));
        event.insert(
            "signatures".into(),
            serde_json::json!({"hs1": {"ed25519:a": "s\u{e9}", "ed25519:b": "t"}}),
        );
        let unsigned = serde_json::json!({"age": 5, "prev_content": {"x": [1, null, {}]}});
        event.insert("unsigned".into(), unsigned);
    }
    let odd = value["events"][2].as_object_mut().unwrap();
    odd.insert("signatures".into(), Value::from(7));
    odd.insert("unsigned".into(), Value::from("not an object"));
    odd.insert("hashes".into(), Value::Null);
    value.to_string()
}

#[test]
fn members_resolution_never_reads_are_checked_and_not_kept() {
    let signed = signed_demotion();
    assert_eq!(summary(read(&signed).unwrap()), summary(read(DEMOTION).unwrap()));
    // Full PDU checks read them.
    let strict = parse("input.json", signed.as_bytes(), Strictness::Pdu).err().unwrap();
    assert!(strict.message.contains("$.events[2].hashes: must be an object"), "{}", strict);
    // Read as JSON all the same: a repeated key, a bad escape and a fraction inside
    // them are refused as the whole-text parser refuses them.
    for (find, replace) in [
        (r#""age":5"#, r#""age":5,"age":6"#),
        (r#""t"}"#, r#""\q"}"#),
        (r#""age":5"#, r#""age":5.5"#),
        (r#""hashes":{"#, r#""hashes":{"x":1,"x":2,"#),
    ] {
        refused_as_parse_refuses(&signed, find, replace);
    }
}

/// Damages `text` by `edits` (position, byte, insert/remove/replace) and checks that
/// the damage never panics and that invalid JSON is refused with the whole-text
/// parser's error.
fn refused_as_the_whole_text_is(
    text: &str,
    edits: Vec<(usize, u8, u8)>,
) -> Result<(), proptest::test_runner::TestCaseError> {
    let text = canonical_json::damaged(text.as_bytes(), &edits);
    let ours = parse("input.json", &text, Strictness::Resolution);
    if let Err(whole) = canonical_json::parse(&text, Numbers::IntegerLiterals) {
        let message = ours.err().expect("invalid JSON is refused").message;
        proptest::prop_assert_eq!(message, format!("input.json: {whole}"));
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Damaged inputs never panic, and one that is not valid JSON is refused with the
    /// whole-text parser's error, whatever the damage hit (a skipped event, a bracket,
    /// a key, an escape).
    #[test]
    fn damaged_inputs_are_refused_with_the_whole_text_parsers_error(
        edits in canonical_json::damage_edits(4000, b"{}[]\",:\\ a0-\n", 1..4)
    ) {
        refused_as_the_whole_text_is(DEMOTION, edits)?;
    }

    /// The same where the damage may hit the members only checked as JSON.
    #[test]
    fn damaged_signed_inputs_are_refused_with_the_whole_text_parsers_error(
        edits in canonical_json::damage_edits(6000, b"{}[]\",:\\ a0-.\n", 1..4)
    ) {
        refused_as_the_whole_text_is(&signed_demotion(), edits)?;
    }
}

#[test]
fn events_keep_their_fields_and_one_copy_of_each_distinct_content() {
    let input = read(DEMOTION).unwrap();
    let value: Value = serde_json::from_str(DEMOTION).unwrap();
    let joins: Vec<&Pdu> = input
        .events
        .iter()
        .map(|(pdu, _)| &**pdu)
        .filter(|pdu| pdu.membership().is_some())
        .collect();
    assert_eq!(joins.len(), 2);
    assert!(Arc::ptr_eq(joins[0].shared_content(), joins[1].shared_content()));
    let given_events = value["events"].as_array().unwrap();
    assert_eq!(input.events.len(), given_events.len());
    let ids: Vec<&str> = input.events.iter().map(|(pdu, _)| pdu.event_id().as_str()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "in id order: {ids:?}");
    for (pdu, _) in &input.events {
        let id = pdu.event_id().as_str();
        let given = given_events.iter().find(|event| event["event_id"] == id).unwrap();
        assert_eq!(given_content(pdu), given["content"]);
        // Power levels with a (valid) `users` keep it apart, and nothing else does.
        let listing_users =
            pdu.event_type() == "m.room.power_levels" && given["content"]["users"].is_object();
        assert_eq!(pdu.level_users().is_some(), listing_users, "{id}");
        assert!(!pdu.content().contains_key("users") || !listing_users, "{id}");
        assert_eq!(pdu.event_type(), given["type"]);
        assert!(pdu.json().is_empty(), "no JSON is kept");
    }
}

fn kept_ids(input: &ResolveInput) -> Vec<&str> {
    input.events.iter().map(|(pdu, _)| pdu.event_id().as_str()).collect()
}

#[test]
fn events_no_state_set_reaches_are_checked_and_not_handed_on() {
    let mut value: Value = serde_json::from_str(DEMOTION).unwrap();
    let given: Vec<String> = value["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["event_id"].as_str().unwrap().to_owned())
        .collect();
    let mut message = value["events"][1].clone();
    message["event_id"] = "$message".into();
    message["type"] = "m.room.message".into();
    message.as_object_mut().unwrap().remove("state_key");
    message["content"] = serde_json::json!({"body": "hello", "msgtype": "m.text"});
    value["events"].as_array_mut().unwrap().push(message.clone());
    let input = read(&value.to_string()).unwrap();
    let mut expected: Vec<&str> = given.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(kept_ids(&input), expected, "every fixture event is reached; the message not");

    // Not handed on, but checked like every event.
    message["auth_events"] = serde_json::json!(["$nowhere"]);
    *value["events"].as_array_mut().unwrap().last_mut().unwrap() = message;
    let problem = read(&value.to_string()).err().expect("a missing auth event").to_string();
    assert!(problem.contains("cites auth event $nowhere"), "{problem}");
}

#[test]
fn a_room_version_12_create_event_is_reached_through_the_room_id() {
    let text = include_str!("../../../tests/fixtures/resolve/fixture-shape-v12-demotion.json");
    let mut value: Value = serde_json::from_str(text).unwrap();
    for set in value["state_sets"].as_array_mut().unwrap() {
        set.as_object_mut().unwrap().remove("m.room.create");
    }
    let input = read(&value.to_string()).unwrap();
    let kept = kept_ids(&input);
    assert!(kept.contains(&"$00-create"), "cited by no auth_events, named by the room id");
    // `$11-topic` is in the second state set; nothing else is left out either.
    assert_eq!(kept.len(), value["events"].as_array().unwrap().len());
}

#[test]
fn each_event_id_is_kept_once_however_often_it_is_cited() {
    let input = read(DEMOTION).unwrap();
    let own: Vec<&EventId> = input.events.iter().map(|(pdu, _)| pdu.event_id()).collect();
    let mut citations = 0;
    for (pdu, _) in &input.events {
        for cited in pdu.auth_events().iter().chain(pdu.prev_events()) {
            let event = own.iter().find(|id| **id == cited).expect("the fixture cites its own");
            assert!(cited.same_allocation(event), "{cited} copied in {}", pdu.event_id());
            citations += 1;
        }
    }
    assert!(citations > input.events.len(), "the fixture cites events: {citations}");
    for set in &input.state_sets {
        for id in set.values() {
            assert!(own.iter().any(|event| id.same_allocation(event)), "{id} copied");
        }
    }
}

#[test]
fn each_sender_type_state_key_and_room_id_is_kept_once() {
    let input = read(DEMOTION).unwrap();
    let mut first: Vec<&str> = Vec::new();
    let mut repeats = 0;
    for (pdu, _) in &input.events {
        let texts = [Some(pdu.sender()), Some(pdu.event_type()), pdu.state_key(), pdu.room_id()];
        for text in texts.into_iter().flatten() {
            match first.iter().find(|kept| **kept == text) {
                Some(kept) => {
                    assert!(std::ptr::eq(*kept, text), "{text:?} copied in {}", pdu.event_id());
                    repeats += 1;
                }
                None => first.push(text),
            }
        }
    }
    // The fixture's seven events share one room id, a few senders and types.
    assert!(repeats > input.events.len(), "the fixture repeats texts: {repeats}");
}
