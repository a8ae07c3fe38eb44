//! Rule 9 (v12: 10), `m.room.power_levels` events, and [`user_power_level`]
//! (spec/auth-rules.md §1 definitions, §2 rule 9, §3 rule 10).

use super::*;

const LEVEL_KEYS: [&str; 7] =
    ["users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"];

fn pl_event(sender: &str, content: Value) -> Ev {
    state("$new-pl", "m.room.power_levels", sender, "", content)
}

/// The current PL content with `change` applied.
fn changed(room: &Room, change: impl FnOnce(&mut Value)) -> Value {
    let mut content = room.pl();
    change(&mut content);
    content
}

fn remove(content: &mut Value, key: &str) {
    content.as_object_mut().unwrap().remove(key);
}

#[test]
fn rule_9_1_level_properties_must_be_integers() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        for key in LEVEL_KEYS {
            for bad in [json!("40"), json!(true), json!(null), json!([40]), json!({"v": 40})] {
                let content = changed(&room, |c| c[key] = bad);
                room.assert_rejected(pl_event(ADMIN, content), "9.1", "10.1");
            }
            room.assert_allowed(pl_event(ADMIN, changed(&room, |c| c[key] = json!(40))));
        }
    }
}

#[test]
fn rule_9_2_events_and_notifications_must_be_objects_of_integers() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        for key in ["events", "notifications"] {
            for bad in [json!({"x": "50"}), json!({"x": {"y": 1}}), json!([]), json!("x"), json!(5)]
            {
                let content = changed(&room, |c| c[key] = bad);
                room.assert_rejected(pl_event(ADMIN, content), "9.2", "10.2");
            }
        }
        let good = changed(&room, |c| {
            c["events"] = json!({"m.room.name": 50});
            c["notifications"] = json!({"room": 50});
        });
        room.assert_allowed(pl_event(ADMIN, good));
    }
}

#[test]
fn rule_9_3_users_must_map_user_ids_to_integers() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        for (user, value) in
            [("bob", json!(1)), ("@bob", json!(1)), ("@:b.test", json!(1)), (BOB, json!("1"))]
        {
            let content = changed(&room, |c| c["users"][user] = value);
            room.assert_rejected(pl_event(ADMIN, content), "9.3", "10.3");
        }
        for bad in [json!([]), json!(5), json!(null)] {
            let content = changed(&room, |c| c["users"] = bad);
            room.assert_rejected(pl_event(ADMIN, content), "9.3", "10.3");
        }
        // Historical user ids are valid keys.
        room.assert_allowed(pl_event(
            ADMIN,
            changed(&room, |c| c["users"]["@Old!:b.test"] = json!(1)),
        ));
        // [impl] An absent `users` is accepted (as the first PL event here, so that no
        // existing entry counts as removed).
        let first = Room::bare(rules).membership(ALICE, "join");
        first.assert_allowed(pl_event(ALICE, json!({"ban": 50})));
    }
}

#[test]
fn rule_10_4_v12_creators_must_not_be_listed() {
    for rules in VERSIONS {
        let room = Room::with_create_content(rules, json!({"additional_creators": [MOD2]}));
        let alice_listed = pl_event(ADMIN, changed(&room, |c| c["users"][ALICE] = json!(100)));
        let mod2_listed = pl_event(ADMIN, changed(&room, |c| c["users"][MOD2] = json!(0)));
        // Before the first PL event too (10.4 comes before 10.5).
        let first = Room::bare(rules).membership(ALICE, "join");
        let first_pl = pl_event(ALICE, json!({"users": { ALICE: 100 }}));
        if rules.privileged_creators {
            room.assert_rejected(alice_listed, "-", "10.4");
            room.assert_rejected(mod2_listed, "-", "10.4");
            first.assert_rejected(first_pl, "-", "10.4");
        } else {
            room.assert_allowed(alice_listed);
            room.assert_allowed(mod2_listed);
            first.assert_allowed(first_pl);
        }
    }
}

#[test]
fn rule_9_4_first_power_levels_event_is_allowed() {
    for rules in VERSIONS {
        let room = Room::bare(rules).membership(ALICE, "join").membership(BOB, "join");
        let mut content = json!({"ban": 1_000_000, "users": { BOB: 1_000_000 }});
        if !rules.privileged_creators {
            content["users"][ALICE] = json!(100);
        }
        room.assert_allowed(pl_event(ALICE, content));
        // The shape rules still apply.
        room.assert_rejected(pl_event(ALICE, json!({"ban": "1"})), "9.1", "10.1");
        // And rule 7 comes first: BOB has 0 of the default state level 50.
        room.assert_rejected(pl_event(BOB, json!({})), "7", "8");
    }
}

#[test]
fn rule_9_5_level_property_changes() {
    for rules in VERSIONS {
        for key in LEVEL_KEYS {
            // ADMIN (100) may send PL events whatever `state_default` is.
            let base =
                Room::new(rules).change_pl(|c| c["events"] = json!({"m.room.power_levels": 100}));
            // 9.5.1: the current value is above the sender's level (changed or removed).
            let room = base.change_pl(|c| c[key] = json!(150));
            room.assert_rejected(
                pl_event(ADMIN, changed(&room, |c| c[key] = json!(0))),
                "9.5.1",
                "10.6.1",
            );
            room.assert_rejected(
                pl_event(ADMIN, changed(&room, |c| remove(c, key))),
                "9.5.1",
                "10.6.1",
            );
            // Unchanged values are not compared.
            let other = if key == "ban" { "kick" } else { "ban" };
            room.assert_allowed(pl_event(ADMIN, changed(&room, |c| c[other] = json!(40))));
            // 9.5.2: the new value is above the sender's level (added or changed).
            let room =
                Room::new(rules).change_pl(|c| c["events"] = json!({"m.room.power_levels": 100}));
            room.assert_rejected(
                pl_event(ADMIN, changed(&room, |c| c[key] = json!(150))),
                "9.5.2",
                "10.6.2",
            );
            room.assert_allowed(pl_event(ADMIN, changed(&room, |c| c[key] = json!(100))));
        }
    }
}

#[test]
fn rule_9_5_compares_only_the_present_side() {
    for rules in VERSIONS {
        // [impl] BOB (10) may send PL events; `ban` is absent, so its default 50 is not
        // compared when BOB adds it or when BOB removes it again.
        let room = Room::new(rules).change_pl(|c| {
            c["users"][BOB] = json!(10);
            c["events"] = json!({"m.room.power_levels": 0});
        });
        room.assert_allowed(pl_event(BOB, changed(&room, |c| c["ban"] = json!(5))));
        let room = room.change_pl(|c| c["ban"] = json!(5));
        room.assert_allowed(pl_event(BOB, changed(&room, |c| remove(c, "ban"))));
        room.assert_rejected(
            pl_event(BOB, changed(&room, |c| c["ban"] = json!(20))),
            "9.5.2",
            "10.6.2",
        );
        let room = room.change_pl(|c| c["ban"] = json!(30));
        room.assert_rejected(
            pl_event(BOB, changed(&room, |c| remove(c, "ban"))),
            "9.5.1",
            "10.6.1",
        );
    }
}

#[test]
fn rules_9_6_and_9_7_events_and_notifications() {
    for rules in VERSIONS {
        let room = Room::new(rules).change_pl(|c| {
            c["events"] = json!({"m.room.name": 100, "x.ten": 10});
            c["notifications"] = json!({"room": 100});
        });
        // 9.6: changing or removing an entry above MOD (50).
        room.assert_rejected(
            pl_event(MOD, changed(&room, |c| c["events"]["m.room.name"] = json!(0))),
            "9.6",
            "10.7",
        );
        let removed = changed(&room, |c| remove(&mut c["events"], "m.room.name"));
        room.assert_rejected(pl_event(MOD, removed), "9.6", "10.7");
        room.assert_rejected(
            pl_event(MOD, changed(&room, |c| c["notifications"]["room"] = json!(0))),
            "9.6",
            "10.7",
        );
        room.assert_allowed(pl_event(
            ADMIN,
            changed(&room, |c| c["events"]["m.room.name"] = json!(0)),
        ));
        // 9.7: adding or raising an entry above MOD.
        room.assert_rejected(
            pl_event(MOD, changed(&room, |c| c["events"]["m.room.topic"] = json!(60))),
            "9.7",
            "10.8",
        );
        room.assert_rejected(
            pl_event(MOD, changed(&room, |c| c["events"]["x.ten"] = json!(60))),
            "9.7",
            "10.8",
        );
        room.assert_rejected(
            pl_event(MOD, changed(&room, |c| c["notifications"]["x"] = json!(60))),
            "9.7",
            "10.8",
        );
        room.assert_allowed(pl_event(
            MOD,
            changed(&room, |c| c["events"]["m.room.topic"] = json!(50)),
        ));
        room.assert_allowed(pl_event(MOD, changed(&room, |c| c["events"]["x.ten"] = json!(0))));
        // Every 9.6 check comes before every 9.7 check.
        let both = changed(&room, |c| {
            c["events"]["a.first"] = json!(60);
            c["events"]["m.room.name"] = json!(0);
        });
        room.assert_rejected(pl_event(MOD, both), "9.6", "10.7");
    }
}

#[test]
fn rules_9_8_and_9_9_users() {
    for rules in VERSIONS {
        let room = Room::new(rules).change_pl(|c| {
            c["users"][MOD2] = json!(50);
            c["users"][BOB] = json!(10);
        });
        let by_mod = |change: &dyn Fn(&mut Value)| {
            let mut content = room.pl();
            change(&mut content);
            pl_event(MOD, content)
        };
        // 9.8: changing or removing another user at or above MOD (50).
        room.assert_rejected(by_mod(&|c| c["users"][ADMIN] = json!(0)), "9.8", "10.9");
        room.assert_rejected(by_mod(&|c| remove(&mut c["users"], ADMIN)), "9.8", "10.9");
        room.assert_rejected(by_mod(&|c| c["users"][MOD2] = json!(0)), "9.8", "10.9");
        room.assert_allowed(by_mod(&|c| c["users"][BOB] = json!(20)));
        room.assert_allowed(by_mod(&|c| remove(&mut c["users"], BOB)));
        // The sender's own entry is exempt from 9.8.
        room.assert_allowed(by_mod(&|c| c["users"][MOD] = json!(0)));
        room.assert_allowed(by_mod(&|c| remove(&mut c["users"], MOD)));
        // 9.9: adding or raising above MOD, own entry included.
        room.assert_rejected(by_mod(&|c| c["users"][CAROL] = json!(60)), "9.9", "10.10");
        room.assert_rejected(by_mod(&|c| c["users"][BOB] = json!(51)), "9.9", "10.10");
        room.assert_rejected(by_mod(&|c| c["users"][MOD] = json!(60)), "9.9", "10.10");
        room.assert_allowed(by_mod(&|c| c["users"][CAROL] = json!(50)));
    }
}

#[test]
fn v12_creators_may_set_any_level() {
    for rules in VERSIONS {
        let room = Room::new(rules);
        let content = changed(&room, |c| {
            c["ban"] = json!(1_000_000);
            c["users"][ADMIN] = json!(0);
            c["users"][BOB] = json!(crate::matrix::canonical_json::INT_MAX);
        });
        if rules.privileged_creators {
            room.assert_allowed(pl_event(ALICE, content));
        } else {
            // ALICE has 100: `ban` (9.5) is checked before `users` (9.8).
            room.assert_rejected(pl_event(ALICE, content), "9.5.2", "-");
        }
    }
}

#[test]
fn user_power_level_with_power_levels_event() {
    for rules in VERSIONS {
        let room = Room::with_create_content(rules, json!({"additional_creators": [MOD2]}));
        let level = |user: &str| user_power_level(rules, &room.state, user);
        assert_eq!(level(ADMIN), PowerLevel::Int(100));
        assert_eq!(level(MOD), PowerLevel::Int(50));
        assert_eq!(level(BOB), PowerLevel::Int(0));
        if rules.privileged_creators {
            // Creators are infinite even with a PL event that does not list them.
            assert_eq!(level(ALICE), PowerLevel::Infinite);
            assert_eq!(level(MOD2), PowerLevel::Infinite);
        } else {
            assert_eq!(level(ALICE), PowerLevel::Int(100));
            assert_eq!(level(MOD2), PowerLevel::Int(0));
        }
        let room = room.change_pl(|c| c["users_default"] = json!(7));
        assert_eq!(user_power_level(rules, &room.state, CAROL), PowerLevel::Int(7));
        assert_eq!(user_power_level(rules, &room.state, BOB), PowerLevel::Int(7));
        assert_eq!(user_power_level(rules, &room.state, MOD), PowerLevel::Int(50));
    }
}

#[test]
fn user_power_level_without_power_levels_event() {
    for rules in VERSIONS {
        // ALICE sends the create event; v10 names BOB as `content.creator`.
        let create = create_ev(rules).with("creator", json!(BOB));
        let room = Room::bare_with_create(rules, create);
        let level = |user: &str| user_power_level(rules, &room.state, user);
        assert_eq!(level(CAROL), PowerLevel::Int(0));
        match (rules.privileged_creators, rules.creator_source) {
            (true, _) => {
                assert_eq!(level(ALICE), PowerLevel::Infinite);
                assert_eq!(level(BOB), PowerLevel::Int(0));
            }
            (false, room_version::CreatorSource::ContentCreator) => {
                assert_eq!(level(BOB), PowerLevel::Int(100));
                assert_eq!(level(ALICE), PowerLevel::Int(0));
            }
            (false, room_version::CreatorSource::Sender) => {
                assert_eq!(level(ALICE), PowerLevel::Int(100));
                assert_eq!(level(BOB), PowerLevel::Int(0));
            }
        }
        // No create event either: everyone has 0.
        let empty: BTreeMap<(String, String), Pdu> = BTreeMap::new();
        assert_eq!(user_power_level(rules, &empty, ALICE), PowerLevel::Int(0));
    }
}

#[test]
fn user_power_level_ignores_malformed_values() {
    for rules in VERSIONS {
        // Rule 9 keeps such content out of accepted state; reading it must still not fail.
        let room = Room::new(rules).power_levels(json!({"users": 5, "users_default": "9"}));
        assert_eq!(user_power_level(rules, &room.state, BOB), PowerLevel::Int(0));
        let room =
            Room::new(rules).power_levels(json!({"users": { BOB: "9" }, "users_default": 3}));
        assert_eq!(user_power_level(rules, &room.state, BOB), PowerLevel::Int(3));
    }
}
