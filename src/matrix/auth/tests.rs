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
//!
//! This file holds the cast and the fixtures (`Ev`, `Room`); the cases live in one submodule
//! per group of rules.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::matrix::canonical_json::Object;
use crate::matrix::crypto::{self, KeyRing, SigningKey};
use crate::matrix::pdu;
use crate::matrix::room_version::{V10, V11, V12};

mod create_and_auth_events;
mod fuzz;
mod linearized;
mod membership;
mod power_levels;
mod selection;
mod sender_and_levels;

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

    /// The rules' decision on `pdu`, which is also asserted to be the decision with every
    /// power-levels event's `users` kept apart, as `mxsim resolve` keeps them
    /// ([`Pdu::compact_level_users`]): so every case here checks both readings.
    fn check_pdu(&self, pdu: &Pdu) -> Result<(), Rejection> {
        let signatures = match self.mode {
            Mode::Keys => SignatureCheck::Keys(&self.keys),
            Mode::AlreadyVerified => SignatureCheck::AlreadyVerified,
        };
        let decided = check_state_rules(self.rules, pdu, &self.state, signatures);
        let mut sharer = pdu::LevelUsersSharer::new();
        let mut texts = crate::matrix::ids::TextInterner::new();
        let mut compact = |pdu: &Pdu| {
            let mut pdu = pdu.clone();
            pdu.compact_level_users(&mut sharer, &mut texts);
            pdu
        };
        let state: BTreeMap<(String, String), Pdu> =
            self.state.iter().map(|(key, pdu)| (key.clone(), compact(pdu))).collect();
        let compact_decided = check_state_rules(self.rules, &compact(pdu), &state, signatures);
        assert_eq!(
            compact_decided,
            decided,
            "{}: decided alike with `users` kept apart",
            pdu.event_id()
        );
        decided
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

fn third_party_invite(sender: &str, target: &str, signed: Value) -> Ev {
    member("$i", sender, target, "invite").with(
        "third_party_invite",
        json!({ "display_name": "carol@example.org", "signed": signed }),
    )
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
fn the_standard_rooms_power_levels_are_kept_apart_by_the_second_reading() {
    // `Room::check_pdu` decides every case a second time with power levels' `users` kept
    // apart: that reading must actually happen for the rooms the cases use.
    for rules in VERSIONS {
        let room = Room::new(rules);
        let mut pl = room.state_event("m.room.power_levels", "").clone();
        let mut sharer = pdu::LevelUsersSharer::new();
        let kept =
            pl.compact_level_users(&mut sharer, &mut crate::matrix::ids::TextInterner::new());
        assert!(kept && pl.level_users().is_some() && !pl.content().contains_key("users"));
    }
}

#[test]
fn power_level_order_puts_infinite_above_every_integer() {
    assert!(PowerLevel::Infinite > PowerLevel::Int(crate::matrix::canonical_json::INT_MAX));
    assert!(PowerLevel::Infinite > PowerLevel::Int(i64::MAX));
    assert!(PowerLevel::Int(-1) < PowerLevel::Int(0));
    // [digest] ∞ is not below ∞: no creator outranks another.
    assert_eq!(PowerLevel::Infinite.cmp(&PowerLevel::Infinite), std::cmp::Ordering::Equal);
}
