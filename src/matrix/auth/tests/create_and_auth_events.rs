//! Rules 1–3 (v12: 1–4): the create event, the `auth_events` list and `m.federate`
//! (spec/auth-rules.md §2 rules 1–3, §3 rules 1–4).

use super::*;

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
