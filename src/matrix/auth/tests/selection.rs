//! Auth-events selection (spec/events.md §8).

use super::*;

fn types(rules: &RoomVersionRules, ev: Ev) -> Vec<(String, String)> {
    let json = ev.json;
    let event_type = json["type"].as_str().unwrap();
    let sender = json["sender"].as_str().unwrap();
    let state_key = json.get("state_key").and_then(Value::as_str);
    auth_types_for_event(rules, event_type, sender, state_key, json["content"].as_object().unwrap())
}

fn pairs(rules: &RoomVersionRules, expected: &[(&str, &str)]) -> Vec<(String, String)> {
    // v10/v11 select the create event first; v12 never does.
    let create = rules.create_event_in_auth_events.then_some(("m.room.create", ""));
    create.iter().chain(expected).map(|(t, k)| (t.to_string(), k.to_string())).collect()
}

#[test]
fn create_selects_nothing() {
    for rules in VERSIONS {
        assert_eq!(types(rules, create_ev(rules)), vec![]);
    }
}

#[test]
fn non_member_events_select_power_levels_and_sender() {
    for rules in VERSIONS {
        let expected = pairs(rules, &[("m.room.power_levels", ""), ("m.room.member", BOB)]);
        assert_eq!(types(rules, msg("$m", BOB)), expected);
        let topic = state("$t", "m.room.topic", BOB, "", json!({"topic": "t"}));
        assert_eq!(types(rules, topic), expected);
        // Even for a join rules or third-party invite event, nothing else is selected.
        let tpi = state("$t", "m.room.third_party_invite", BOB, "tok", json!({}));
        assert_eq!(types(rules, tpi), expected);
    }
}

#[test]
fn member_events_select_target_join_rules_invite_and_authoriser() {
    for rules in VERSIONS {
        let pl = ("m.room.power_levels", "");
        let join_rules = ("m.room.join_rules", "");
        // A join: sender = target, so the member pair appears once.
        let join = member("$j", CAROL, CAROL, "join");
        assert_eq!(
            types(rules, join.clone()),
            pairs(rules, &[pl, ("m.room.member", CAROL), join_rules])
        );
        let via = join.with("join_authorised_via_users_server", json!(BOB));
        let expected =
            pairs(rules, &[pl, ("m.room.member", CAROL), join_rules, ("m.room.member", BOB)]);
        assert_eq!(types(rules, via), expected);
        // An invite with a third-party invite selects the invite event by token.
        let invite = third_party_invite(BOB, CAROL, json!({"mxid": CAROL, "token": "tok"}));
        let expected = pairs(
            rules,
            &[
                pl,
                ("m.room.member", BOB),
                ("m.room.member", CAROL),
                join_rules,
                ("m.room.third_party_invite", "tok"),
            ],
        );
        assert_eq!(types(rules, invite), expected);
        // Knocks select the join rules; leaves and bans do not.
        let knock = member("$k", CAROL, CAROL, "knock");
        assert_eq!(types(rules, knock), pairs(rules, &[pl, ("m.room.member", CAROL), join_rules]));
        for membership in ["leave", "ban"] {
            let kick = member("$l", MOD, BOB, membership);
            assert_eq!(
                types(rules, kick),
                pairs(rules, &[pl, ("m.room.member", MOD), ("m.room.member", BOB)])
            );
        }
        // The authorising user counts only on joins, the token only on invites.
        let leave = member("$l", BOB, BOB, "leave")
            .with("join_authorised_via_users_server", json!(ADMIN))
            .with("third_party_invite", json!({"signed": {"token": "tok"}}));
        assert_eq!(types(rules, leave), pairs(rules, &[pl, ("m.room.member", BOB)]));
    }
}

#[test]
fn malformed_member_content_selects_what_it_can() {
    for rules in VERSIONS {
        let pl = ("m.room.power_levels", "");
        let base = pairs(rules, &[pl, ("m.room.member", BOB)]);
        // No state key, no or odd membership: only the sender's own pairs.
        assert_eq!(types(rules, member("$x", BOB, BOB, "join").remove("state_key")), {
            let mut expected = base.clone();
            expected.push(("m.room.join_rules".into(), String::new()));
            expected
        });
        assert_eq!(types(rules, member("$x", BOB, BOB, "join").content(json!({}))), base);
        assert_eq!(types(rules, member("$x", BOB, BOB, "join").with("membership", json!(1))), base);
        // A non-string token or authorising user selects nothing.
        let invite = member("$i", BOB, BOB, "invite")
            .with("third_party_invite", json!({"signed": {"token": 5}}));
        assert_eq!(
            types(rules, invite),
            pairs(rules, &[pl, ("m.room.member", BOB), ("m.room.join_rules", "")])
        );
        let join =
            member("$j", BOB, BOB, "join").with("join_authorised_via_users_server", json!([BOB]));
        assert_eq!(
            types(rules, join),
            pairs(rules, &[pl, ("m.room.member", BOB), ("m.room.join_rules", "")])
        );
    }
}

#[test]
fn select_auth_events_picks_ids_from_the_state() {
    for rules in VERSIONS {
        let room = Room::new(rules).join_rule("restricted").membership(CAROL, "invite");
        let content = json!({"membership": "join", "join_authorised_via_users_server": ADMIN});
        let selected = select_auth_events(
            rules,
            "m.room.member",
            CAROL,
            Some(CAROL),
            content.as_object().unwrap(),
            &room.state,
        );
        let ids: Vec<&str> = selected.iter().map(|id| id.as_str()).collect();
        let mut expected = vec!["$power-levels", "$invite-carol", "$join-rules", "$join-admin"];
        if rules.create_event_in_auth_events {
            expected.insert(0, "$create");
        }
        assert_eq!(ids, expected);
        // A message from someone with no membership: no member event to pick.
        let selected =
            select_auth_events(rules, "m.room.message", DAVE, None, &Object::new(), &room.state);
        let ids: Vec<&str> = selected.iter().map(|id| id.as_str()).collect();
        let expected: &[&str] = if rules.create_event_in_auth_events {
            &["$create", "$power-levels"]
        } else {
            &["$power-levels"]
        };
        assert_eq!(ids, expected);
        // The selection passes the receiver's auth_events rules.
        let event = room.pdu(msg("$m", BOB).auth(&bob_message_auth(rules)));
        let selected =
            select_auth_events(rules, "m.room.message", BOB, None, event.content(), &room.state);
        let auth: Vec<(&Pdu, bool)> = selected
            .iter()
            .map(|id| (room.state.values().find(|p| p.event_id() == id).unwrap(), false))
            .collect();
        assert_eq!(check_auth_events(rules, &event, &auth), Ok(()));
    }
    // v12: the creator's first join selects nothing.
    let room = Room::bare(&V12);
    let content = json!({"membership": "join"});
    let selected = select_auth_events(
        &V12,
        "m.room.member",
        ALICE,
        Some(ALICE),
        content.as_object().unwrap(),
        &room.state,
    );
    assert!(selected.is_empty());
}
