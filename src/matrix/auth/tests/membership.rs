//! Rule 4 (v12: 5), `m.room.member` events: joins, invites (third-party ones too), leaves,
//! bans and knocks (spec/auth-rules.md §2 rule 4, §3 rule 5).

use super::*;

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
