//! Tests of the authorization rules: at least one accepting and one rejecting case per rule,
//! per room version where the rule differs, each checking the exact rule number.
//!
//! Expected outcomes are read off spec/auth-rules.md (cited per test), not off the code.
//! Events are built as readable PDU JSON with given ids (`$join-bob`) through
//! [`Pdu::with_given_id`]; only the signature tests hash and sign.
//!
//! The cast: `ALICE` creates the room (a.test); `ADMIN` (a.test, 100), `MOD` (b.test, 50) and
//! `BOB` (b.test, default 0) are joined; `CAROL` (c.test) and `DAVE` (d.test) are not in the
//! room. In v12 `ALICE` is not listed in `users` (creators have infinite power); in v10/v11
//! she has 100.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::matrix::canonical_json::Object;
use crate::matrix::crypto::{self, KeyRing, SigningKey};
use crate::matrix::pdu;
use crate::matrix::room_version::{V10, V11, V12};

mod fuzz;
mod linearized;
mod power_levels;
mod selection;

const ALICE: &str = "@alice:a.test";
const ADMIN: &str = "@admin:a.test";
const MOD: &str = "@mod:b.test";
const MOD2: &str = "@mod2:b.test";
const BOB: &str = "@bob:b.test";
const CAROL: &str = "@carol:c.test";
const DAVE: &str = "@dave:d.test";

const VERSIONS: [&RoomVersionRules; 3] = [&V10, &V11, &V12];

fn signing_key(byte: u8, key_id: &str) -> SigningKey {
    SigningKey::from_seed(&[byte; 32], key_id).unwrap()
}

/// The signing key of server a.test, whose public key every [`Room`] knows.
fn a_test_key() -> SigningKey {
    signing_key(1, "ed25519:a")
}

/// A key with the same key id as a.test's that nobody trusts.
fn forged_a_test_key() -> SigningKey {
    signing_key(2, "ed25519:a")
}

/// An identity server's key for third-party invites.
fn identity_key() -> SigningKey {
    signing_key(3, "ed25519:0")
}

/// Where an event's `room_id` comes from.
#[derive(Clone, Debug)]
enum RoomIdChoice {
    /// The room's id.
    OfRoom,
    Given(String),
    Absent,
}

/// A PDU under construction, as JSON.
#[derive(Clone, Debug)]
struct Ev {
    json: Object,
    room_id: RoomIdChoice,
}

fn ev(id: &str, event_type: &str, sender: &str) -> Ev {
    let json = json!({
        "event_id": id,
        "type": event_type,
        "sender": sender,
        "content": {},
        "origin_server_ts": 0,
        "depth": 2,
        "prev_events": ["$prev"],
        "auth_events": [],
    });
    let Value::Object(json) = json else { unreachable!() };
    Ev { json, room_id: RoomIdChoice::OfRoom }
}

/// A message event.
fn msg(id: &str, sender: &str) -> Ev {
    ev(id, "m.room.message", sender).content(json!({"msgtype": "m.text", "body": "hi"}))
}

/// A state event.
fn state(id: &str, event_type: &str, sender: &str, state_key: &str, content: Value) -> Ev {
    ev(id, event_type, sender).state_key(state_key).content(content)
}

/// An `m.room.member` event with the given membership.
fn member(id: &str, sender: &str, target: &str, membership: &str) -> Ev {
    state(id, "m.room.member", sender, target, json!({ "membership": membership }))
}

impl Ev {
    fn state_key(self, state_key: &str) -> Ev {
        self.set("state_key", json!(state_key))
    }

    fn content(self, content: Value) -> Ev {
        self.set("content", content)
    }

    /// Sets one key of `content`.
    fn with(mut self, key: &str, value: Value) -> Ev {
        let Some(Value::Object(content)) = self.json.get_mut("content") else { unreachable!() };
        content.insert(key.to_owned(), value);
        self
    }

    fn prev(self, ids: &[&str]) -> Ev {
        self.set("prev_events", json!(ids))
    }

    fn auth(self, ids: &[&str]) -> Ev {
        self.set("auth_events", json!(ids))
    }

    fn room_id(mut self, room_id: &str) -> Ev {
        self.room_id = RoomIdChoice::Given(room_id.to_owned());
        self
    }

    fn no_room_id(mut self) -> Ev {
        self.room_id = RoomIdChoice::Absent;
        self
    }

    /// Sets a top-level key.
    fn set(mut self, key: &str, value: Value) -> Ev {
        self.json.insert(key.to_owned(), value);
        self
    }

    fn remove(mut self, key: &str) -> Ev {
        self.json.remove(key);
        self
    }
}

/// The create event of a test room: sender `ALICE`, id `$create`, `content.creator` in v10
/// (flag `create_requires_creator`), and the v12 shape without `room_id`.
fn create_ev(rules: &RoomVersionRules) -> Ev {
    let mut create = ev("$create", "m.room.create", ALICE)
        .state_key("")
        .prev(&[])
        .with("room_version", json!(rules.version.as_str()));
    if rules.create_requires_creator {
        create = create.with("creator", json!(ALICE));
    }
    if rules.room_id_is_create_event_hash { create.no_room_id() } else { create }
}

/// How a [`Room`] checks rule 4.2.1 signatures.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Keys,
    AlreadyVerified,
}

/// A room state to check events against.
struct Room {
    rules: &'static RoomVersionRules,
    room_id: String,
    state: BTreeMap<(String, String), Pdu>,
    keys: KeyRing,
    mode: Mode,
}

impl Room {
    /// Only the create event.
    fn bare(rules: &'static RoomVersionRules) -> Room {
        Room::bare_with_create(rules, create_ev(rules))
    }

    /// Only the given create event (which must keep the id `$create`).
    fn bare_with_create(rules: &'static RoomVersionRules, create: Ev) -> Room {
        let room_id = if rules.room_id_is_create_event_hash {
            "!create".to_owned()
        } else {
            "!room:a.test".to_owned()
        };
        let mut keys = KeyRing::new();
        let key = a_test_key();
        keys.entry("a.test".to_owned())
            .or_default()
            .insert(key.key_id().to_owned(), key.public_key());
        let room = Room { rules, room_id, state: BTreeMap::new(), keys, mode: Mode::Keys };
        room.with(create)
    }

    /// The standard room: create, ALICE joined, power levels, public join rule, ADMIN, MOD
    /// and BOB joined.
    fn new(rules: &'static RoomVersionRules) -> Room {
        Room::standard(rules, create_ev(rules))
    }

    /// The standard room with extra `content` keys on the create event.
    fn with_create_content(rules: &'static RoomVersionRules, extra: Value) -> Room {
        let mut create = create_ev(rules);
        for (key, value) in extra.as_object().unwrap() {
            create = create.with(key, value.clone());
        }
        Room::standard(rules, create)
    }

    fn standard(rules: &'static RoomVersionRules, create: Ev) -> Room {
        let mut users = json!({ ADMIN: 100, MOD: 50 });
        if !rules.privileged_creators {
            users[ALICE] = json!(100);
        }
        Room::bare_with_create(rules, create)
            .membership(ALICE, "join")
            .power_levels(json!({ "users": users }))
            .join_rule("public")
            .membership(ADMIN, "join")
            .membership(MOD, "join")
            .membership(BOB, "join")
    }

    fn signatures_already_verified(mut self) -> Room {
        self.mode = Mode::AlreadyVerified;
        self
    }

    /// The PDU for `ev` in this room.
    fn pdu(&self, ev: Ev) -> Pdu {
        Pdu::with_given_id(self.rules, self.json(ev)).expect("test events are well-formed")
    }

    /// The JSON object for `ev` in this room, with its `event_id`.
    fn json(&self, ev: Ev) -> Object {
        let mut json = ev.json;
        match ev.room_id {
            RoomIdChoice::OfRoom => {
                json.insert("room_id".to_owned(), json!(self.room_id));
            }
            RoomIdChoice::Given(room_id) => {
                json.insert("room_id".to_owned(), json!(room_id));
            }
            RoomIdChoice::Absent => {}
        }
        json
    }

    /// The PDU for `ev`, hashed and signed by `server` with `key` as a real server would.
    fn signed_pdu(&self, ev: Ev, server: &str, key: &SigningKey) -> Pdu {
        let mut json = self.json(ev);
        let event_id = json.remove("event_id").unwrap();
        pdu::hash_and_sign(self.rules, &mut json, server, key);
        json.insert("event_id".to_owned(), event_id);
        Pdu::with_given_id(self.rules, json).unwrap()
    }

    /// Puts `ev` into the state (not checked).
    fn with(mut self, ev: Ev) -> Room {
        let pdu = self.pdu(ev);
        self.insert(pdu);
        self
    }

    fn insert(&mut self, pdu: Pdu) {
        let key = (pdu.event_type().to_owned(), pdu.state_key().unwrap().to_owned());
        self.state.insert(key, pdu);
    }

    fn without(mut self, event_type: &str, state_key: &str) -> Room {
        self.state.remove(&(event_type.to_owned(), state_key.to_owned()));
        self
    }

    /// Sets `user`'s membership (the member event is sent by the user itself).
    fn membership(self, user: &str, membership: &str) -> Room {
        let id = format!("${membership}-{}", &user[1..user.find(':').unwrap()]);
        self.with(member(&id, user, user, membership))
    }

    fn join_rule(self, join_rule: &str) -> Room {
        self.join_rules_content(json!({ "join_rule": join_rule }))
    }

    fn join_rules_content(self, content: Value) -> Room {
        self.with(state("$join-rules", "m.room.join_rules", ALICE, "", content))
    }

    fn power_levels(self, content: Value) -> Room {
        self.with(state("$power-levels", "m.room.power_levels", ALICE, "", content))
    }

    /// The current power-levels content.
    fn pl(&self) -> Value {
        let key = ("m.room.power_levels".to_owned(), String::new());
        Value::Object(self.state[&key].content().clone())
    }

    /// Changes the current power levels with `change` applied to their content.
    fn change_pl(self, change: impl FnOnce(&mut Value)) -> Room {
        let mut content = self.pl();
        change(&mut content);
        self.power_levels(content)
    }

    fn state_event(&self, event_type: &str, state_key: &str) -> &Pdu {
        &self.state[&(event_type.to_owned(), state_key.to_owned())]
    }

    /// The number a rejection carries in this room's version: `v10_v11` for room versions
    /// 10 and 11, `v12` for 12.
    fn rule(&self, v10_v11: &'static str, v12: &'static str) -> &'static str {
        if self.rules.auth_rule_numbering == room_version::AuthRuleNumbering::V12 {
            v12
        } else {
            v10_v11
        }
    }

    fn check_pdu(&self, pdu: &Pdu) -> Result<(), Rejection> {
        let signatures = match self.mode {
            Mode::Keys => SignatureCheck::Keys(&self.keys),
            Mode::AlreadyVerified => SignatureCheck::AlreadyVerified,
        };
        check_state_rules(self.rules, pdu, &self.state, signatures)
    }

    #[track_caller]
    fn assert_allowed(&self, ev: Ev) {
        self.assert_pdu_allowed(&self.pdu(ev));
    }

    #[track_caller]
    fn assert_pdu_allowed(&self, pdu: &Pdu) {
        let result = self.check_pdu(pdu);
        assert!(
            result.is_ok(),
            "v{}: {} should be allowed: {result:?}",
            self.rules.version,
            pdu.event_id()
        );
    }

    /// Asserts a rejection under rule `v10_v11` (room versions 10, 11) or `v12`.
    #[track_caller]
    fn assert_rejected(&self, ev: Ev, v10_v11: &'static str, v12: &'static str) {
        self.assert_pdu_rejected(&self.pdu(ev), v10_v11, v12);
    }

    #[track_caller]
    fn assert_pdu_rejected(&self, pdu: &Pdu, v10_v11: &'static str, v12: &'static str) {
        let expected = self.rule(v10_v11, v12);
        match self.check_pdu(pdu) {
            Err(rejection) => assert_eq!(
                rejection.rule,
                expected,
                "v{}: {} rejected for the wrong rule: {rejection}",
                self.rules.version,
                pdu.event_id()
            ),
            Ok(()) => panic!(
                "v{}: {} should be rejected by rule {expected}",
                self.rules.version,
                pdu.event_id()
            ),
        }
    }
}

#[test]
fn rule_numbers_are_distinct_and_complete() {
    for numbering in [
        room_version::AuthRuleNumbering::V10,
        room_version::AuthRuleNumbering::V12,
        room_version::AuthRuleNumbering::LinearizedI1,
    ] {
        let numbers: Vec<&str> = Rule::ALL.iter().filter_map(|r| r.number_in(numbering)).collect();
        let distinct: std::collections::BTreeSet<&&str> = numbers.iter().collect();
        assert_eq!(distinct.len(), numbers.len(), "{numbering:?} numbers a rule twice");
        for number in numbers {
            assert!(number.split('.').all(|part| part.parse::<u8>().is_ok()), "{number}");
        }
    }
    for rule in Rule::ALL {
        let numbers = (rule.numbers(), rule.linearized_number());
        assert!(numbers != ((None, None), None), "{rule:?} has no number");
    }
    // Spot checks against spec/auth-rules.md §2 and §3.
    assert_eq!(Rule::AuthEventsRoomId.number(&V11), "2.5");
    assert_eq!(Rule::AuthEventsRoomId.number(&V12), "3.4");
    assert_eq!(Rule::PowerLevelsUsersNewValue.number(&V10), "9.9");
    assert_eq!(Rule::PowerLevelsUsersNewValue.number(&V12), "10.10");
    assert_eq!(Rule::InviteThirdPartySignature.number(&V12), "5.4.1.8");
}

#[test]
fn power_level_order_puts_infinite_above_every_integer() {
    assert!(PowerLevel::Infinite > PowerLevel::Int(crate::matrix::canonical_json::INT_MAX));
    assert!(PowerLevel::Infinite > PowerLevel::Int(i64::MAX));
    assert!(PowerLevel::Int(-1) < PowerLevel::Int(0));
    // [digest] ∞ is not below ∞: no creator outranks another.
    assert_eq!(PowerLevel::Infinite.cmp(&PowerLevel::Infinite), std::cmp::Ordering::Equal);
}

// ---- Rule 1: m.room.create (spec/auth-rules.md §2 rule 1, §3 rule 1) ----

#[test]
fn create_rule_1_allows_a_well_formed_create() {
    for rules in VERSIONS {
        let room = Room::bare(rules);
        room.assert_allowed(create_ev(rules));
        // 1.3: an absent room_version is allowed (it defaults to "1").
        room.assert_allowed(create_ev(rules).remove_content("room_version"));
    }
}

#[test]
fn create_rule_1_1_rejects_prev_events() {
    for rules in VERSIONS {
        Room::bare(rules).assert_rejected(create_ev(rules).prev(&["$x"]), "1.1", "1.1");
    }
}

#[test]
fn create_rule_1_2_room_id() {
    for rules in [&V10, &V11] {
        let room = Room::bare(rules);
        // v10/v11 1.2: the room id's domain must be the sender's.
        room.assert_rejected(create_ev(rules).room_id("!room:b.test"), "1.2", "-");
        room.assert_allowed(create_ev(rules).room_id("!other:a.test"));
    }
    // v12 1.2: any room_id rejects; without one, the sender's server does not matter.
    let room = Room::bare(&V12);
    room.assert_rejected(create_ev(&V12).room_id("!create"), "-", "1.2");
    room.assert_allowed(create_ev(&V12).set("sender", json!(BOB)));
}

#[test]
fn create_rule_1_3_room_version() {
    for rules in VERSIONS {
        let room = Room::bare(rules);
        room.assert_rejected(create_ev(rules).with("room_version", json!("999")), "1.3", "1.3");
        room.assert_rejected(create_ev(rules).with("room_version", json!(12)), "1.3", "1.3");
        room.assert_rejected(
            create_ev(rules).with("room_version", json!("org.example.x")),
            "1.3",
            "1.3",
        );
        // Any recognised version is allowed, not only the room's own.
        room.assert_allowed(create_ev(rules).with("room_version", json!("1")));
    }
}

#[test]
fn create_rule_1_4_creator_only_in_v10() {
    let without_creator = |rules| create_ev(rules).remove_content("creator");
    Room::bare(&V10).assert_rejected(without_creator(&V10), "1.4", "-");
    // [digest] The rule asks for the property, not its type.
    Room::bare(&V10).assert_allowed(create_ev(&V10).with("creator", json!(5)));
    Room::bare(&V11).assert_allowed(without_creator(&V11));
    Room::bare(&V12).assert_allowed(without_creator(&V12));
}

#[test]
fn create_rule_1_4_additional_creators_only_in_v12() {
    let room = Room::bare(&V12);
    let with = |value: Value| create_ev(&V12).with("additional_creators", value);
    room.assert_allowed(with(json!([BOB, CAROL])));
    room.assert_allowed(with(json!([])));
    for bad in [json!(BOB), json!(["bob"]), json!([BOB, 5]), json!({ BOB: true }), json!(null)] {
        room.assert_rejected(with(bad), "-", "1.4");
    }
    // v10/v11 ignore the key.
    for rules in [&V10, &V11] {
        Room::bare(rules).assert_allowed(create_ev(rules).with("additional_creators", json!(5)));
    }
}

impl Ev {
    /// Removes one key of `content`.
    fn remove_content(mut self, key: &str) -> Ev {
        let Some(Value::Object(content)) = self.json.get_mut("content") else { unreachable!() };
        content.remove(key);
        self
    }
}

// ---- v12 rule 2 and the create event in the state ----

#[test]
fn v12_rule_2_room_id_must_be_the_create_event_id() {
    let room = Room::new(&V12);
    room.assert_allowed(msg("$m", BOB));
    room.assert_rejected(msg("$m", BOB).room_id("!other"), "-", "2");
    // Without an (accepted) create event in the state, no room id qualifies.
    Room::new(&V12).without("m.room.create", "").assert_rejected(msg("$m", BOB), "-", "2");
}

#[test]
fn v10_v11_without_create_in_state_reject_under_2_4() {
    for rules in [&V10, &V11] {
        // [impl] Synapse's state-dependent checks fail without a create event.
        Room::new(rules).without("m.room.create", "").assert_rejected(msg("$m", BOB), "2.4", "-");
        // The room id of an event is compared with its auth events (2.5), not here.
        Room::new(rules).assert_allowed(msg("$m", BOB).room_id("!other:a.test"));
    }
}

// ---- Rule 2 (v12: 3): the auth_events list ----

/// Checks the `auth_events` rules for `ev` with the state events named by `ids` (looked up
/// by event id in the room's state, or in `extra`), each with its rejected flag.
fn check_auth_list(
    room: &Room,
    ev: Ev,
    ids: &[&str],
    rejected: &[&str],
    extra: &[Pdu],
) -> Result<(), &'static str> {
    let event = room.pdu(ev.auth(ids));
    let pool: Vec<&Pdu> = room.state.values().chain(extra.iter()).collect();
    let auth_events: Vec<(&Pdu, bool)> = ids
        .iter()
        .map(|id| {
            let pdu = *pool.iter().find(|p| p.event_id().as_str() == *id).expect("known id");
            (pdu, rejected.contains(id))
        })
        .collect();
    check_auth_events(room.rules, &event, &auth_events).map_err(|r| r.rule)
}

/// The auth events a message from BOB selects in the standard room.
fn bob_message_auth(rules: &RoomVersionRules) -> Vec<&'static str> {
    if rules.create_event_in_auth_events {
        vec!["$create", "$power-levels", "$join-bob"]
    } else {
        vec!["$power-levels", "$join-bob"]
    }
}

#[test]
fn auth_events_rules_allow_the_selected_events() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        let ids = bob_message_auth(rules);
        assert_eq!(check_auth_list(&room, msg("$m", BOB), &ids, &[], &[]), Ok(()));
        // Missing optional entries are fine.
        let fewer: Vec<&str> = ids.iter().copied().filter(|id| *id != "$power-levels").collect();
        assert_eq!(check_auth_list(&room, msg("$m", BOB), &fewer, &[], &[]), Ok(()));
        // A create event is decided by rule 1 alone.
        let create = create_ev(rules).auth(&["$power-levels", "$power-levels"]);
        assert_eq!(
            check_auth_list(
                &room,
                create,
                &["$power-levels", "$power-levels"],
                &["$power-levels"],
                &[]
            ),
            Ok(())
        );
    }
    // v12: the creator's first join lists nothing.
    let room = Room::bare(&V12);
    let join = member("$join-alice", ALICE, ALICE, "join").prev(&["$create"]);
    assert_eq!(check_auth_list(&room, join, &[], &[], &[]), Ok(()));
}

#[test]
fn auth_events_rule_2_1_duplicates() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        let other_bob = room.pdu(member("$join-bob-2", BOB, BOB, "join"));
        let mut ids = bob_message_auth(rules);
        ids.push("$join-bob-2");
        let expected = room.rule("2.1", "3.1");
        assert_eq!(check_auth_list(&room, msg("$m", BOB), &ids, &[], &[other_bob]), Err(expected));
        // The same id listed twice is a duplicate pair too.
        let mut twice = bob_message_auth(rules);
        twice.push("$power-levels");
        assert_eq!(check_auth_list(&room, msg("$m", BOB), &twice, &[], &[]), Err(expected));
    }
}

#[test]
fn auth_events_rule_2_2_unexpected_entries() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        let expected = room.rule("2.2", "3.2");
        // Join rules are selected only for join/invite/knock memberships.
        let mut ids = bob_message_auth(rules);
        ids.push("$join-rules");
        assert_eq!(check_auth_list(&room, msg("$m", BOB), &ids, &[], &[]), Err(expected));
        // Another user's membership is not selected for a message.
        let ids = ["$power-levels", "$join-admin"];
        assert_eq!(check_auth_list(&room, msg("$m", BOB), &ids, &[], &[]), Err(expected));
        // A non-state event matches no selected pair.
        let message = room.pdu(msg("$earlier", BOB));
        let ids = ["$power-levels", "$earlier"];
        assert_eq!(check_auth_list(&room, msg("$m", BOB), &ids, &[], &[message]), Err(expected));
    }
    // v12 3.2: the create event must not be listed.
    let room = Room::new(&V12);
    let ids = ["$create", "$power-levels", "$join-bob"];
    assert_eq!(check_auth_list(&room, msg("$m", BOB), &ids, &[], &[]), Err("3.2"));
}

#[test]
fn auth_events_rule_2_3_rejected_entries() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        let ids = bob_message_auth(rules);
        let result = check_auth_list(&room, msg("$m", BOB), &ids, &["$power-levels"], &[]);
        assert_eq!(result, Err(room.rule("2.3", "3.3")));
    }
}

#[test]
fn auth_events_rule_2_4_create_required_only_before_v12() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        let ids = ["$power-levels", "$join-bob"];
        let expected = if rules.create_event_in_auth_events { Err("2.4") } else { Ok(()) };
        assert_eq!(check_auth_list(&room, msg("$m", BOB), &ids, &[], &[]), expected);
    }
}

#[test]
fn auth_events_rule_2_5_other_room() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        let other_room =
            if rules.room_id_is_create_event_hash { "!other" } else { "!other:a.test" };
        let foreign_pl = room.pdu(
            state("$foreign-pl", "m.room.power_levels", ALICE, "", json!({})).room_id(other_room),
        );
        let mut ids = bob_message_auth(rules);
        ids.retain(|id| *id != "$power-levels");
        ids.push("$foreign-pl");
        let result = check_auth_list(&room, msg("$m", BOB), &ids, &[], &[foreign_pl]);
        assert_eq!(result, Err(room.rule("2.5", "3.4")));
    }
}

#[test]
fn check_event_applies_the_rules_in_spec_order() {
    // v12: rule 2 (room id) comes before rule 3.2 (create listed).
    let room = Room::new(&V12);
    let event = room.pdu(msg("$m", BOB).room_id("!other").auth(&["$create"]));
    let create = room.state_event("m.room.create", "");
    let signatures = SignatureCheck::AlreadyVerified;
    let result = check_event(&V12, &event, &[(create, false)], &room.state, signatures);
    assert_eq!(result.map_err(|r| r.rule), Err("2"));
    assert_eq!(check_auth_events(&V12, &event, &[(create, false)]).map_err(|r| r.rule), Err("3.2"));
    // v10: 2.2 (join rules listed) comes before 2.4 (no create).
    let room = Room::new(&V10);
    let event = room.pdu(msg("$m", BOB).auth(&["$join-rules"]));
    let join_rules = room.state_event("m.room.join_rules", "");
    let result = check_event(&V10, &event, &[(join_rules, false)], &room.state, signatures);
    assert_eq!(result.map_err(|r| r.rule), Err("2.2"));
    // Then the state rules: BOB may not send a name (7).
    let event =
        room.pdu(state("$n", "m.room.name", BOB, "", json!({"name": "x"})).auth(&["$create"]));
    let create = room.state_event("m.room.create", "");
    let result = check_event(&V10, &event, &[(create, false)], &room.state, signatures);
    assert_eq!(result.map_err(|r| r.rule), Err("7"));
    let event = room.pdu(msg("$m", BOB).auth(&["$create"]));
    assert_eq!(check_event(&V10, &event, &[(create, false)], &room.state, signatures), Ok(()));
}

// ---- Rule 3 (v12: 4): m.federate ----

#[test]
fn rule_3_m_federate_false_keeps_other_servers_out() {
    for rules in VERSIONS {
        let room = Room::with_create_content(rules, json!({"m.federate": false}));
        room.assert_rejected(msg("$m", BOB), "3", "4");
        room.assert_rejected(member("$leave-bob", BOB, BOB, "leave"), "3", "4");
        room.assert_allowed(msg("$m", ADMIN));
        // Only the boolean false counts.
        for value in [json!(true), json!("false"), json!(0), json!(null)] {
            let room = Room::with_create_content(rules, json!({ "m.federate": value }));
            room.assert_allowed(msg("$m", BOB));
        }
    }
}

// ---- Rule 4.1 (v12: 5.1) ----

#[test]
fn member_rule_4_1_needs_state_key_and_membership() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        room.assert_rejected(member("$j", BOB, BOB, "join").remove("state_key"), "4.1", "5.1");
        room.assert_rejected(
            member("$j", BOB, BOB, "join").content(json!({"displayname": "Bob"})),
            "4.1",
            "5.1",
        );
        room.assert_allowed(member("$j", BOB, BOB, "join"));
    }
}

// ---- Rule 4.2.1 (v12: 5.2.1): join_authorised_via_users_server signature ----

#[test]
fn member_rule_4_2_1_authorising_server_signature() {
    for rules in VERSIONS {
        let room = Room::new(rules).join_rule("restricted");
        let join = || {
            member("$join-carol", CAROL, CAROL, "join")
                .with("join_authorised_via_users_server", json!(ADMIN))
        };
        // Signed by a.test, the authorising user's server: allowed (4.3.5.3).
        room.assert_pdu_allowed(&room.signed_pdu(join(), "a.test", &a_test_key()));
        // Signed only by a forged key under the same key id.
        let forged = room.signed_pdu(join(), "a.test", &forged_a_test_key());
        room.assert_pdu_rejected(&forged, "4.2.1", "5.2.1");
        // Signed only by the joining server.
        let carol_signed = room.signed_pdu(join(), "c.test", &signing_key(4, "ed25519:c"));
        room.assert_pdu_rejected(&carol_signed, "4.2.1", "5.2.1");
        room.assert_rejected(join(), "4.2.1", "5.2.1");
        // Signatures verified on receipt are not checked again (state resolution replays).
        let room = room.signatures_already_verified();
        room.assert_pdu_allowed(&forged);
        room.assert_allowed(join());
    }
}

#[test]
fn member_rule_4_2_1_applies_to_every_membership() {
    for rules in VERSIONS {
        // The spec says "whatever the membership"; [impl] Synapse checks joins only.
        let room = Room::new(rules);
        let leave = || {
            member("$leave-bob", BOB, BOB, "leave")
                .with("join_authorised_via_users_server", json!(ADMIN))
        };
        room.assert_rejected(leave(), "4.2.1", "5.2.1");
        room.assert_pdu_allowed(&room.signed_pdu(leave(), "a.test", &a_test_key()));
    }
}

#[test]
fn member_rule_4_2_1_value_must_name_a_server() {
    for rules in VERSIONS {
        let room = Room::new(rules).join_rule("restricted").signatures_already_verified();
        for value in [json!(5), json!(null), json!("admin"), json!({"user": ADMIN})] {
            let join = member("$join-carol", CAROL, CAROL, "join")
                .with("join_authorised_via_users_server", value);
            room.assert_rejected(join, "4.2.1", "5.2.1");
        }
    }
}

// ---- Rule 4.3 (v12: 5.3): join ----

#[test]
fn join_rule_4_3_1_creator_first_join() {
    for rules in VERSIONS {
        let room = Room::bare(rules);
        room.assert_allowed(member("$join-alice", ALICE, ALICE, "join").prev(&["$create"]));
        // [digest] The rule reads only the state key, not the sender.
        room.assert_allowed(member("$join-alice", BOB, ALICE, "join").prev(&["$create"]));
        // Not the only previous event: the room has no join rules, so `invite` applies.
        let two_prevs = member("$join-alice", ALICE, ALICE, "join").prev(&["$create", "$x"]);
        room.assert_rejected(two_prevs, "4.3.4", "5.3.4");
        room.assert_rejected(
            member("$join-alice", ALICE, ALICE, "join").prev(&["$x"]),
            "4.3.4",
            "5.3.4",
        );
        // Someone else right after the create event.
        room.assert_rejected(
            member("$join-bob", BOB, BOB, "join").prev(&["$create"]),
            "4.3.4",
            "5.3.4",
        );
    }
}

#[test]
fn join_rule_4_3_1_creator_is_content_creator_in_v10_and_sender_later() {
    for rules in VERSIONS {
        // ALICE sends the create event naming BOB as `content.creator`.
        let room = Room::bare_with_create(rules, create_ev(rules).with("creator", json!(BOB)));
        let bob_join = member("$join-bob", BOB, BOB, "join").prev(&["$create"]);
        let alice_join = member("$join-alice", ALICE, ALICE, "join").prev(&["$create"]);
        if rules.creator_source == room_version::CreatorSource::ContentCreator {
            room.assert_allowed(bob_join);
            room.assert_rejected(alice_join, "4.3.4", "-");
        } else {
            room.assert_rejected(bob_join, "4.3.4", "5.3.4");
            room.assert_allowed(alice_join);
        }
    }
    // v12: additional creators do not get the shortcut.
    let room =
        Room::bare_with_create(&V12, create_ev(&V12).with("additional_creators", json!([BOB])));
    room.assert_rejected(member("$join-bob", BOB, BOB, "join").prev(&["$create"]), "-", "5.3.4");
}

#[test]
fn join_rule_4_3_2_sender_must_be_target() {
    for rules in VERSIONS {
        Room::new(rules).assert_rejected(member("$j", BOB, CAROL, "join"), "4.3.2", "5.3.2");
    }
}

#[test]
fn join_rule_4_3_3_banned_sender() {
    for rules in VERSIONS {
        let room = Room::new(rules).membership(CAROL, "ban");
        room.assert_rejected(member("$j", CAROL, CAROL, "join"), "4.3.3", "5.3.3");
        Room::new(rules).assert_allowed(member("$j", CAROL, CAROL, "join"));
    }
}

#[test]
fn join_rule_4_3_4_invite_and_knock_rooms() {
    for rules in VERSIONS {
        for join_rule in ["invite", "knock"] {
            let room = Room::new(rules).join_rule(join_rule);
            room.assert_rejected(member("$j", CAROL, CAROL, "join"), "4.3.4", "5.3.4");
            room.assert_allowed(member("$j", BOB, BOB, "join"));
            let room = room.membership(CAROL, "invite");
            room.assert_allowed(member("$j", CAROL, CAROL, "join"));
            for membership in ["leave", "knock"] {
                let room = Room::new(rules).join_rule(join_rule).membership(CAROL, membership);
                room.assert_rejected(member("$j", CAROL, CAROL, "join"), "4.3.4", "5.3.4");
            }
        }
    }
}

#[test]
fn join_rule_defaults_to_invite() {
    for rules in VERSIONS {
        // [impl] No join-rules event, or one without `join_rule`: Synapse's `invite`.
        let no_event = Room::new(rules).without("m.room.join_rules", "");
        let no_key = Room::new(rules).join_rules_content(json!({"allow": []}));
        for room in [no_event, no_key] {
            room.assert_rejected(member("$j", CAROL, CAROL, "join"), "4.3.4", "5.3.4");
            room.membership(CAROL, "invite").assert_allowed(member("$j", CAROL, CAROL, "join"));
        }
    }
}

#[test]
fn join_rule_4_3_5_restricted_rooms() {
    for rules in VERSIONS {
        for join_rule in ["restricted", "knock_restricted"] {
            let room = Room::new(rules).join_rule(join_rule).signatures_already_verified();
            let via = |user: &str| {
                member("$j", CAROL, CAROL, "join")
                    .with("join_authorised_via_users_server", json!(user))
            };
            // 4.3.5.1: invited (or joined) users join without an authoriser.
            room.assert_allowed(member("$j", BOB, BOB, "join"));
            // 4.3.5.2: [impl] no authoriser fails.
            room.assert_rejected(member("$j", CAROL, CAROL, "join"), "4.3.5.2", "5.3.5.2");
            // 4.3.5.2: the authoriser is not joined.
            room.assert_rejected(via(DAVE), "4.3.5.2", "5.3.5.2");
            // 4.3.5.3: a joined authoriser at the invite level (0).
            room.assert_allowed(via(BOB));
            let room = room.membership(CAROL, "invite");
            room.assert_allowed(member("$j", CAROL, CAROL, "join"));

            let room = Room::new(rules).join_rule(join_rule).signatures_already_verified();
            let room = room.change_pl(|pl| pl["invite"] = json!(50));
            // 4.3.5.2: the authoriser is below the invite level.
            room.assert_rejected(via(BOB), "4.3.5.2", "5.3.5.2");
            room.assert_allowed(via(MOD));
            // A left authoriser fails even with the level.
            let room = room.membership(MOD, "leave");
            room.assert_rejected(via(MOD), "4.3.5.2", "5.3.5.2");
        }
    }
}

#[test]
fn join_rule_4_3_5_creator_authoriser_has_infinite_level_in_v12() {
    for rules in VERSIONS {
        let room = Room::new(rules).join_rule("restricted").signatures_already_verified();
        let room = room.change_pl(|pl| pl["invite"] = json!(101));
        let via_alice = member("$j", CAROL, CAROL, "join")
            .with("join_authorised_via_users_server", json!(ALICE));
        if rules.privileged_creators {
            room.assert_allowed(via_alice);
        } else {
            room.assert_rejected(via_alice, "4.3.5.2", "-");
        }
    }
}

#[test]
fn join_rule_4_3_6_public_and_4_3_7_others() {
    for rules in VERSIONS {
        Room::new(rules).assert_allowed(member("$j", CAROL, CAROL, "join"));
        for join_rule in [json!("private"), json!("open"), json!(42), json!(null)] {
            let room = Room::new(rules).join_rules_content(json!({ "join_rule": join_rule }));
            room.assert_rejected(member("$j", CAROL, CAROL, "join"), "4.3.7", "5.3.7");
            // Even the joined and the invited cannot (re)join under these.
            room.assert_rejected(member("$j", BOB, BOB, "join"), "4.3.7", "5.3.7");
        }
    }
}

// ---- Rule 4.4 (v12: 5.4): invite ----

#[test]
fn invite_rules_4_4_2_to_4_4_5() {
    for rules in VERSIONS {
        let room = Room::new(rules).membership(DAVE, "ban");
        room.assert_allowed(member("$i", BOB, CAROL, "invite"));
        // 4.4.2: the sender must be joined.
        room.assert_rejected(member("$i", CAROL, CAROL, "invite"), "4.4.2", "5.4.2");
        let invited = Room::new(rules).membership(CAROL, "invite");
        invited.assert_rejected(member("$i", CAROL, DAVE, "invite"), "4.4.2", "5.4.2");
        // 4.4.3: the target must not be joined or banned.
        room.assert_rejected(member("$i", BOB, MOD, "invite"), "4.4.3", "5.4.3");
        room.assert_rejected(member("$i", MOD, DAVE, "invite"), "4.4.3", "5.4.3");
        // Re-inviting the invited is fine.
        invited.assert_allowed(member("$i", BOB, CAROL, "invite"));
        // 4.4.4 / 4.4.5: the invite level.
        let room = room.change_pl(|pl| pl["invite"] = json!(50));
        room.assert_rejected(member("$i", BOB, CAROL, "invite"), "4.4.5", "5.4.5");
        room.assert_allowed(member("$i", MOD, CAROL, "invite"));
    }
}

#[test]
fn invite_rule_4_4_4_v12_creator_outranks_any_invite_level() {
    for rules in VERSIONS {
        let room = Room::new(rules).change_pl(|pl| pl["invite"] = json!(1000));
        let invite = member("$i", ALICE, CAROL, "invite");
        if rules.privileged_creators {
            room.assert_allowed(invite);
        } else {
            room.assert_rejected(invite, "4.4.5", "-");
        }
    }
}

// ---- Rule 4.4.1 (v12: 5.4.1): third-party invites ----

/// The `m.room.third_party_invite` event BOB sent with token "tok".
fn third_party_invite_event(content: Value) -> Ev {
    state("$tpi", "m.room.third_party_invite", BOB, "tok", content)
}

/// `signed` for CAROL and token "tok", signed by the identity server.
fn signed_for(mxid: &str, token: &str) -> Value {
    let mut signed = json!({ "mxid": mxid, "token": token });
    let Value::Object(object) = &mut signed else { unreachable!() };
    crypto::sign_json(object, "id.test", &identity_key()).unwrap();
    signed
}

fn third_party_invite(sender: &str, target: &str, signed: Value) -> Ev {
    member("$i", sender, target, "invite").with(
        "third_party_invite",
        json!({ "display_name": "carol@example.org", "signed": signed }),
    )
}

fn room_with_third_party_invite(rules: &'static RoomVersionRules) -> Room {
    let key = identity_key().public_key_base64();
    Room::new(rules).with(third_party_invite_event(json!({
        "display_name": "carol@example.org",
        "key_validity_url": "https://id.test/isvalid",
        "public_key": key,
    })))
}

#[test]
fn third_party_invite_rule_4_4_1_7_valid_signature() {
    for rules in VERSIONS {
        let room = room_with_third_party_invite(rules);
        room.assert_allowed(third_party_invite(BOB, CAROL, signed_for(CAROL, "tok")));
        // The key may be given in `public_keys`, in the URL-safe alphabet; an unusable
        // `public_key` does not matter then.
        let key = crypto::base64_url_encode(
            &crypto::base64_decode(&identity_key().public_key_base64()).unwrap(),
        );
        let room = Room::new(rules).with(third_party_invite_event(json!({
            "public_key": "!!not base64!!",
            "public_keys": [{"public_key": 5}, {"public_key": key, "key_validity_url": "x"}],
        })));
        room.assert_allowed(third_party_invite(BOB, CAROL, signed_for(CAROL, "tok")));
    }
}

#[test]
fn third_party_invite_rule_4_4_1_8_bad_signatures() {
    for rules in VERSIONS {
        let room = room_with_third_party_invite(rules);
        // Signed by another key.
        let mut forged = json!({ "mxid": CAROL, "token": "tok" });
        let Value::Object(object) = &mut forged else { unreachable!() };
        crypto::sign_json(object, "id.test", &signing_key(9, "ed25519:0")).unwrap();
        room.assert_rejected(third_party_invite(BOB, CAROL, forged), "4.4.1.8", "5.4.1.8");
        // Signed, then changed.
        let mut tampered = signed_for(CAROL, "tok");
        tampered["extra"] = json!(1);
        room.assert_rejected(third_party_invite(BOB, CAROL, tampered), "4.4.1.8", "5.4.1.8");
        // No signatures at all.
        let unsigned = json!({ "mxid": CAROL, "token": "tok" });
        room.assert_rejected(third_party_invite(BOB, CAROL, unsigned), "4.4.1.8", "5.4.1.8");
        // [impl] A valid signature under a key id that is not ed25519 is not tried.
        let mut other_algorithm = signed_for(CAROL, "tok");
        let signature = other_algorithm["signatures"]["id.test"]["ed25519:0"].take();
        other_algorithm["signatures"]["id.test"] = json!({ "curve25519:0": signature });
        room.assert_rejected(third_party_invite(BOB, CAROL, other_algorithm), "4.4.1.8", "5.4.1.8");
        // The invite event carries no usable key.
        let room = Room::new(rules).with(third_party_invite_event(json!({"public_key": 7})));
        room.assert_rejected(
            third_party_invite(BOB, CAROL, signed_for(CAROL, "tok")),
            "4.4.1.8",
            "5.4.1.8",
        );
    }
}

#[test]
fn third_party_invite_rules_4_4_1_1_to_4_4_1_6() {
    for rules in VERSIONS {
        let room = room_with_third_party_invite(rules);
        let valid = || signed_for(CAROL, "tok");
        // 4.4.1.1
        let banned = room_with_third_party_invite(rules).membership(CAROL, "ban");
        banned.assert_rejected(third_party_invite(BOB, CAROL, valid()), "4.4.1.1", "5.4.1.1");
        // 4.4.1.2
        let no_signed = member("$i", BOB, CAROL, "invite")
            .with("third_party_invite", json!({"display_name": "c"}));
        room.assert_rejected(no_signed, "4.4.1.2", "5.4.1.2");
        let not_object = member("$i", BOB, CAROL, "invite").with("third_party_invite", json!("x"));
        room.assert_rejected(not_object, "4.4.1.2", "5.4.1.2");
        // 4.4.1.3
        let mut no_token = valid();
        no_token.as_object_mut().unwrap().remove("token");
        room.assert_rejected(third_party_invite(BOB, CAROL, no_token), "4.4.1.3", "5.4.1.3");
        let mut no_mxid = valid();
        no_mxid.as_object_mut().unwrap().remove("mxid");
        room.assert_rejected(third_party_invite(BOB, CAROL, no_mxid), "4.4.1.3", "5.4.1.3");
        room.assert_rejected(third_party_invite(BOB, CAROL, json!("signed")), "4.4.1.3", "5.4.1.3");
        // 4.4.1.4
        room.assert_rejected(
            third_party_invite(BOB, CAROL, signed_for(DAVE, "tok")),
            "4.4.1.4",
            "5.4.1.4",
        );
        // 4.4.1.5
        room.assert_rejected(
            third_party_invite(BOB, CAROL, signed_for(CAROL, "other")),
            "4.4.1.5",
            "5.4.1.5",
        );
        let mut number_token = valid();
        number_token["token"] = json!(5);
        room.assert_rejected(third_party_invite(BOB, CAROL, number_token), "4.4.1.5", "5.4.1.5");
        // 4.4.1.6
        room.assert_rejected(third_party_invite(ADMIN, CAROL, valid()), "4.4.1.6", "5.4.1.6");
    }
}

#[test]
fn third_party_invite_is_decided_by_rule_4_4_1_alone() {
    for rules in VERSIONS {
        // 4.4.2 and 4.4.3 are not reached: the sender need not be joined any more, and the
        // target may be joined.
        let room = room_with_third_party_invite(rules).membership(BOB, "leave");
        room.assert_allowed(third_party_invite(BOB, CAROL, signed_for(CAROL, "tok")));
        let room = room_with_third_party_invite(rules).membership(CAROL, "join");
        room.assert_allowed(third_party_invite(BOB, CAROL, signed_for(CAROL, "tok")));
    }
}

// ---- Rule 4.5 (v12: 5.5): leave ----

#[test]
fn leave_rule_4_5_1_leaving_yourself() {
    for rules in VERSIONS {
        Room::new(rules).assert_allowed(member("$l", BOB, BOB, "leave"));
        for membership in ["invite", "knock"] {
            let room = Room::new(rules).membership(CAROL, membership);
            room.assert_allowed(member("$l", CAROL, CAROL, "leave"));
        }
        Room::new(rules).assert_rejected(member("$l", CAROL, CAROL, "leave"), "4.5.1", "5.5.1");
        for membership in ["ban", "leave"] {
            let room = Room::new(rules).membership(CAROL, membership);
            room.assert_rejected(member("$l", CAROL, CAROL, "leave"), "4.5.1", "5.5.1");
        }
    }
}

#[test]
fn leave_rules_4_5_2_to_4_5_5_kicks_and_unbans() {
    for rules in VERSIONS {
        let room = Room::new(rules).membership(DAVE, "ban").membership(MOD2, "join");
        let room = room.change_pl(|pl| pl["users"][MOD2] = json!(50));
        // 4.5.2
        room.assert_rejected(member("$l", CAROL, BOB, "leave"), "4.5.2", "5.5.2");
        let room_invited = Room::new(rules).membership(CAROL, "invite");
        room_invited.assert_rejected(member("$l", CAROL, BOB, "leave"), "4.5.2", "5.5.2");
        // 4.5.4: kick level (50) and above the target.
        room.assert_allowed(member("$l", MOD, BOB, "leave"));
        room.assert_allowed(member("$l", MOD, CAROL, "leave"));
        // 4.5.5: below the kick level, or not above the target.
        room.assert_rejected(member("$l", BOB, CAROL, "leave"), "4.5.5", "5.5.5");
        room.assert_rejected(member("$l", MOD, MOD2, "leave"), "4.5.5", "5.5.5");
        room.assert_rejected(member("$l", MOD, ADMIN, "leave"), "4.5.5", "5.5.5");
        // Unbanning DAVE with ban 50 and kick 50.
        room.assert_allowed(member("$l", MOD, DAVE, "leave"));
        // 4.5.3: ban level 60 is above MOD.
        let room = room.change_pl(|pl| pl["ban"] = json!(60));
        room.assert_rejected(member("$l", MOD, DAVE, "leave"), "4.5.3", "5.5.3");
        room.assert_allowed(member("$l", ADMIN, DAVE, "leave"));
        // Unbanning needs the kick level too.
        let room = room.change_pl(|pl| {
            pl["ban"] = json!(0);
            pl["kick"] = json!(60);
        });
        room.assert_rejected(member("$l", MOD, DAVE, "leave"), "4.5.5", "5.5.5");
    }
}

#[test]
fn leave_rule_4_5_4_creators_in_v12() {
    for rules in VERSIONS {
        let room = Room::with_create_content(rules, json!({"additional_creators": [MOD2]}))
            .membership(MOD2, "join");
        let alice_kicks_admin = member("$l", ALICE, ADMIN, "leave");
        if rules.privileged_creators {
            room.assert_allowed(alice_kicks_admin);
            // ∞ is not above ∞: creators cannot kick each other.
            room.assert_rejected(member("$l", MOD2, ALICE, "leave"), "-", "5.5.5");
            room.assert_rejected(member("$l", ALICE, MOD2, "leave"), "-", "5.5.5");
        } else {
            // 100 is not above 100.
            room.assert_rejected(alice_kicks_admin, "4.5.5", "-");
            // additional_creators means nothing before v12: MOD2 has the default 0.
            room.assert_allowed(member("$l", ALICE, MOD2, "leave"));
        }
        room.assert_rejected(member("$l", ADMIN, ALICE, "leave"), "4.5.5", "5.5.5");
    }
}

// ---- Rule 4.6 (v12: 5.6): ban ----

#[test]
fn ban_rules_4_6() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        // 4.6.1
        room.assert_rejected(member("$b", CAROL, BOB, "ban"), "4.6.1", "5.6.1");
        room.assert_rejected(member("$b", CAROL, CAROL, "ban"), "4.6.1", "5.6.1");
        // 4.6.2
        room.assert_allowed(member("$b", MOD, BOB, "ban"));
        room.assert_allowed(member("$b", MOD, CAROL, "ban"));
        // 4.6.3
        room.assert_rejected(member("$b", BOB, CAROL, "ban"), "4.6.3", "5.6.3");
        room.assert_rejected(member("$b", MOD, ADMIN, "ban"), "4.6.3", "5.6.3");
        room.assert_rejected(member("$b", MOD, MOD, "ban"), "4.6.3", "5.6.3");
        // Creators: infinite in v12, 100 before.
        room.assert_rejected(member("$b", ADMIN, ALICE, "ban"), "4.6.3", "5.6.3");
        let alice_bans_admin = member("$b", ALICE, ADMIN, "ban");
        if rules.privileged_creators {
            room.assert_allowed(alice_bans_admin);
        } else {
            room.assert_rejected(alice_bans_admin, "4.6.3", "-");
        }
    }
}

// ---- Rule 4.7 (v12: 5.7): knock ----

#[test]
fn knock_rules_4_7() {
    for rules in VERSIONS {
        for join_rule in ["knock", "knock_restricted"] {
            let room = Room::new(rules).join_rule(join_rule);
            room.assert_allowed(member("$k", CAROL, CAROL, "knock"));
            room.membership(CAROL, "leave").assert_allowed(member("$k", CAROL, CAROL, "knock"));
            // 4.7.2
            let room = Room::new(rules).join_rule(join_rule);
            room.assert_rejected(member("$k", BOB, CAROL, "knock"), "4.7.2", "5.7.2");
            // 4.7.4
            room.assert_rejected(member("$k", BOB, BOB, "knock"), "4.7.4", "5.7.4");
            for membership in ["ban", "invite"] {
                let room = Room::new(rules).join_rule(join_rule).membership(CAROL, membership);
                room.assert_rejected(member("$k", CAROL, CAROL, "knock"), "4.7.4", "5.7.4");
            }
        }
        // 4.7.1
        for join_rule in ["public", "invite", "restricted", "private"] {
            let room = Room::new(rules).join_rule(join_rule);
            room.assert_rejected(member("$k", CAROL, CAROL, "knock"), "4.7.1", "5.7.1");
        }
        let no_join_rules = Room::new(rules).without("m.room.join_rules", "");
        no_join_rules.assert_rejected(member("$k", CAROL, CAROL, "knock"), "4.7.1", "5.7.1");
    }
}

// ---- Rule 4.8 (v12: 5.8) ----

#[test]
fn member_rule_4_8_unknown_membership() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        for membership in [json!("foo"), json!("JOIN"), json!(5), json!(null), json!(["join"])] {
            let event = member("$x", BOB, BOB, "join").with("membership", membership);
            room.assert_rejected(event, "4.8", "5.8");
        }
    }
}

// ---- Rules 5–8 (v12: 6–9) ----

#[test]
fn rule_5_sender_must_be_joined() {
    for rules in VERSIONS {
        let room = Room::new(rules).membership(CAROL, "invite");
        room.assert_allowed(msg("$m", BOB));
        room.assert_rejected(msg("$m", CAROL), "5", "6");
        room.assert_rejected(msg("$m", DAVE), "5", "6");
        // Creators, too, must be joined.
        let room = Room::new(rules).membership(ALICE, "leave");
        room.assert_rejected(msg("$m", ALICE), "5", "6");
        room.assert_rejected(state("$n", "m.room.name", ALICE, "", json!({"name": "x"})), "5", "6");
    }
}

#[test]
fn rule_6_third_party_invite_needs_invite_level() {
    for rules in VERSIONS {
        let tpi = |sender: &str, state_key: &str| {
            state("$t", "m.room.third_party_invite", sender, state_key, json!({}))
        };
        let room = Room::new(rules);
        room.assert_allowed(tpi(BOB, "tok"));
        // Rule 8 is not reached: an `@` state key is fine here.
        room.assert_allowed(tpi(BOB, "@carol:c.test"));
        room.assert_rejected(tpi(CAROL, "tok"), "5", "6");
        // The invite level, not state_default or `events`.
        let room = room.change_pl(|pl| {
            pl["invite"] = json!(50);
            pl["events"] = json!({"m.room.third_party_invite": 0});
        });
        room.assert_rejected(tpi(BOB, "tok"), "6", "7");
        room.assert_allowed(tpi(MOD, "tok"));
    }
}

#[test]
fn rule_7_required_power_level() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        let name = |sender: &str| state("$n", "m.room.name", sender, "", json!({"name": "x"}));
        // state_default 50, events_default 0.
        room.assert_allowed(msg("$m", BOB));
        room.assert_rejected(name(BOB), "7", "8");
        room.assert_allowed(name(MOD));
        // `events` overrides both defaults.
        let room = Room::new(rules)
            .change_pl(|pl| pl["events"] = json!({"m.room.message": 10, "m.room.name": 0}));
        room.assert_rejected(msg("$m", BOB), "7", "8");
        room.assert_allowed(name(BOB));
        let room = Room::new(rules).change_pl(|pl| {
            pl["events_default"] = json!(100);
            pl["state_default"] = json!(0);
        });
        room.assert_rejected(msg("$m", MOD), "7", "8");
        room.assert_allowed(name(BOB));
        // Without a PL event: 50 for state, 0 otherwise; v10/v11 creator 100.
        let room = Room::new(rules).without("m.room.power_levels", "");
        room.assert_rejected(name(ADMIN), "7", "8");
        room.assert_allowed(name(ALICE));
        room.assert_allowed(msg("$m", BOB));
    }
}

#[test]
fn rule_7_v12_creators_pass_any_level() {
    for rules in VERSIONS {
        let room = Room::new(rules).change_pl(|pl| pl["events"] = json!({"m.room.tombstone": 150}));
        let tombstone =
            |sender: &str| state("$t", "m.room.tombstone", sender, "", json!({"body": "x"}));
        room.assert_rejected(tombstone(ADMIN), "7", "8");
        if rules.privileged_creators {
            room.assert_allowed(tombstone(ALICE));
        } else {
            room.assert_rejected(tombstone(ALICE), "7", "-");
        }
    }
}

#[test]
fn rule_8_state_keys_starting_with_at() {
    for rules in VERSIONS {
        let room = Room::new(rules).change_pl(|pl| pl["events"] = json!({"x.state": 0}));
        let x = |state_key: &str| state("$x", "x.state", BOB, state_key, json!({}));
        room.assert_allowed(x(BOB));
        room.assert_allowed(x("bob"));
        room.assert_allowed(x(""));
        room.assert_rejected(x(CAROL), "8", "9");
        room.assert_rejected(x("@bob:b.test.x"), "8", "9");
        room.assert_rejected(x("@"), "8", "9");
    }
}

#[test]
fn rule_10_otherwise_allow() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        room.assert_allowed(msg("$m", BOB));
        room.assert_allowed(ev("$r", "m.room.redaction", BOB).with("redacts", json!("$m")));
        room.assert_allowed(state("$t", "m.room.topic", MOD, "", json!({"topic": "t"})));
    }
}
