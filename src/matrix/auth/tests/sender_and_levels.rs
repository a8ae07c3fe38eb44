//! Rules 5–8 and 10 (v12: 6–9 and 11): the sender is joined, has the level the event
//! needs and sends no other user's state; otherwise allow (spec/auth-rules.md §2, §3).

use super::*;

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
