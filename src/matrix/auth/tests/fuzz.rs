//! Property: no content, however malformed, makes the auth rules panic — neither in the
//! event being checked nor in the state it is checked against. Runs a fixed number of
//! cases from a fixed seed, so the test is deterministic.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::*;

/// Keys the rules read, plus a few others, so random objects hit the interesting paths.
const KEYS: &[&str] = &[
    "membership",
    "join_authorised_via_users_server",
    "third_party_invite",
    "signed",
    "mxid",
    "token",
    "signatures",
    "public_key",
    "public_keys",
    "users",
    "users_default",
    "events",
    "events_default",
    "state_default",
    "notifications",
    "ban",
    "kick",
    "invite",
    "redact",
    "join_rule",
    "creator",
    "additional_creators",
    "m.federate",
    "room_version",
    "id.test",
    "ed25519:0",
    "room",
    ALICE,
    BOB,
    CAROL,
];

/// Strings the rules compare against.
const STRINGS: &[&str] = &[
    "join",
    "invite",
    "leave",
    "ban",
    "knock",
    "public",
    "restricted",
    "knock_restricted",
    "tok",
    "12",
    "",
    "@",
    "!!",
    ALICE,
    BOB,
    CAROL,
    ADMIN,
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-z@:.]{0,6}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let int_max = crate::matrix::canonical_json::INT_MAX;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(0i64),
            Just(50),
            Just(100),
            Just(-1),
            Just(int_max),
            Just(-int_max),
            -200i64..200
        ]
        .prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(|s| Value::String(s.to_owned())),
        "[a-zA-Z0-9+/_@:.-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn content() -> impl Strategy<Value = Object> {
    prop::collection::btree_map(key(), json_value(), 0..6).prop_map(|map| map.into_iter().collect())
}

/// Event types to check; membership events, which have the most rules, come up most often.
const EVENT_TYPES: &[&str] = &[
    "m.room.member",
    "m.room.member",
    "m.room.member",
    "m.room.power_levels",
    "m.room.join_rules",
    "m.room.third_party_invite",
    "m.room.create",
    "m.room.message",
];

/// One random case: the event's type, sender, state key and content, and random content for
/// the room's create, power-levels, join-rules and third-party-invite events.
#[derive(Clone, Debug)]
struct Case {
    event_type: &'static str,
    sender: &'static str,
    state_key: Option<&'static str>,
    content: Object,
    create_content: Object,
    power_levels_content: Object,
    join_rules_content: Object,
    invite_content: Object,
    /// Overrides `content.membership` of an `m.room.member` event (mostly a real value, so
    /// that the membership rules are reached).
    membership: Option<Value>,
    /// Overrides `content.join_rule` of the room's join rules.
    join_rule: Option<Value>,
    /// Adds a plausible `content.third_party_invite` with these `signed.signatures`.
    third_party_signatures: Option<Value>,
}

fn membership() -> impl Strategy<Value = Value> {
    const KNOWN: &[&str] = &["join", "invite", "leave", "ban", "knock"];
    prop_oneof![
        4 => prop::sample::select(KNOWN).prop_map(|m| Value::String(m.to_owned())),
        1 => json_value(),
    ]
}

fn join_rule() -> impl Strategy<Value = Value> {
    const KNOWN: &[&str] =
        &["public", "invite", "knock", "restricted", "knock_restricted", "private"];
    prop_oneof![
        4 => prop::sample::select(KNOWN).prop_map(|m| Value::String(m.to_owned())),
        1 => json_value(),
    ]
}

/// `Some` from `strategy` in `tenths` of ten cases, else `None` (integer weights: no floats
/// anywhere, tests included).
fn sometimes<T: Clone + std::fmt::Debug + 'static>(
    tenths: u32,
    strategy: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    assert!((1..10).contains(&tenths));
    prop_oneof![tenths => strategy.prop_map(Some), 10 - tenths => Just(None)].boxed()
}

fn case() -> impl Strategy<Value = Case> {
    let event = (
        prop::sample::select(EVENT_TYPES),
        prop::sample::select(&[ALICE, ADMIN, MOD, BOB, CAROL][..]),
        sometimes(9, prop::sample::select(&["", "tok", ALICE, BOB, CAROL, "@x"][..])),
        content(),
    );
    let room = (content(), content(), content(), content());
    let overrides =
        (sometimes(9, membership()), sometimes(8, join_rule()), sometimes(3, json_value()));
    (event, room, overrides).prop_map(|(event, room, overrides)| Case {
        event_type: event.0,
        sender: event.1,
        state_key: event.2,
        content: event.3,
        create_content: room.0,
        power_levels_content: room.1,
        join_rules_content: room.2,
        invite_content: room.3,
        membership: overrides.0,
        join_rule: overrides.1,
        third_party_signatures: overrides.2,
    })
}

/// Runs every entry point on the case in every version, Linearized Matrix included; panics
/// are the failure.
fn run(case: &Case) {
    let linearized: &RoomVersionRules = &crate::matrix::room_version::LINEARIZED_02;
    for rules in VERSIONS.into_iter().chain([linearized]) {
        let mut create = create_ev(rules);
        for (key, value) in &case.create_content {
            create = create.with(key, value.clone());
        }
        let mut join_rules = case.join_rules_content.clone();
        if let Some(join_rule) = &case.join_rule {
            join_rules.insert("join_rule".to_owned(), join_rule.clone());
        }
        let room = Room::standard(rules, create)
            .with(state(
                "$garbage-pl",
                "m.room.power_levels",
                ALICE,
                "",
                Value::Object(case.power_levels_content.clone()),
            ))
            .with(state("$garbage-jr", "m.room.join_rules", ALICE, "", Value::Object(join_rules)))
            .with(state(
                "$garbage-tpi",
                "m.room.third_party_invite",
                BOB,
                "tok",
                Value::Object(case.invite_content.clone()),
            ));
        let mut content = case.content.clone();
        if case.event_type == "m.room.member" {
            if let Some(membership) = &case.membership {
                content.insert("membership".to_owned(), membership.clone());
            }
            if let Some(signatures) = &case.third_party_signatures {
                let signed =
                    json!({"mxid": case.state_key, "token": "tok", "signatures": signatures});
                content.insert("third_party_invite".to_owned(), json!({ "signed": signed }));
            }
        }
        let mut event =
            ev("$e", case.event_type, case.sender).content(Value::Object(content.clone()));
        if case.event_type == "m.room.create" {
            event = event.prev(&[]);
        }
        if let Some(state_key) = case.state_key {
            event = event.state_key(state_key);
        }
        let Ok(pdu) = Pdu::with_given_id(rules, room.json(event.clone())) else { continue };
        let auth: Vec<(&Pdu, bool)> =
            room.state.values().take(4).enumerate().map(|(i, p)| (p, i == 3)).collect();
        let auth_ids: Vec<&str> = auth.iter().map(|(p, _)| p.event_id().as_str()).collect();
        let listed = Pdu::with_given_id(rules, room.json(event.auth(&auth_ids))).unwrap();
        for signatures in [SignatureCheck::Keys(&room.keys), SignatureCheck::AlreadyVerified] {
            let _ = check_state_rules(rules, &pdu, &room.state, signatures);
            let _ = check_auth_events(rules, &listed, &auth);
            let _ = check_event(rules, &listed, &auth, &room.state, signatures);
        }
        let _ = auth_types_for_event(
            rules,
            case.event_type,
            case.sender,
            case.state_key,
            &case.content,
        );
        let _ = select_auth_events(
            rules,
            case.event_type,
            case.sender,
            case.state_key,
            &case.content,
            &room.state,
        );
        for user in [ALICE, BOB, CAROL] {
            let _ = user_power_level(rules, &room.state, user);
        }
    }
}

#[test]
fn garbage_content_never_panics() {
    let config = Config { cases: 500, failure_persistence: None, ..Config::default() };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    runner
        .run(&case(), |case| {
            run(&case);
            Ok(())
        })
        .unwrap();
}
