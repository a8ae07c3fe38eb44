//! The Linearized Matrix draft's auth rules (digest: spec/linearized-matrix.md §6, "Auth rules"
//! 1–10, and §8, the differences from v11): each difference from room version 11 is checked
//! on both versions, with the draft's rule number.
//!
//! Events are the readable fixtures of the parent module; the room is the standard room of
//! room version `org.matrix.i-d.ralston-mimi-linearized-matrix.02`, checked with signatures
//! already verified except in the tests of rules 1 and 2.

use super::*;
use crate::matrix::ids::EventId;
use crate::matrix::linearized;
use crate::matrix::room_version::LINEARIZED_02;

const LM: &RoomVersionRules = &LINEARIZED_02;

fn lm_room() -> Room {
    Room::new(LM).signatures_already_verified()
}

#[track_caller]
fn assert_lm_rejected(room: &Room, ev: Ev, rule: &str) {
    let pdu = room.pdu(ev);
    match room.check_pdu(&pdu) {
        Err(rejection) => assert_eq!(rejection.rule, rule, "{}: {rejection}", pdu.event_id()),
        Ok(()) => panic!("{} should be rejected by rule {rule}", pdu.event_id()),
    }
}

#[test]
fn create_rules_3_1_to_3_4() {
    let room = lm_room();
    // 3.4: a well-formed create is allowed.
    room.assert_allowed(create_ev(LM));
    // 3.1
    assert_lm_rejected(&room, create_ev(LM).prev(&["$x"]), "3.1");
    // 3.2
    assert_lm_rejected(&room, create_ev(LM).room_id("!room:elsewhere.test"), "3.2");
    // 3.3: "content.room_version is not I.1", here the unstable identifier. A known Matrix
    // version, the draft's own `I.1`, and (reading) an absent value are all rejected.
    for version in [json!("11"), json!("I.1"), json!(2)] {
        assert_lm_rejected(&room, create_ev(LM).with("room_version", version), "3.3");
    }
    let absent = create_ev(LM).content(json!({}));
    assert_lm_rejected(&room, absent, "3.3");
    // Room version 11 accepts any recognised version and an absent one.
    let v11 = Room::new(&V11);
    v11.assert_allowed(create_ev(&V11).with("room_version", json!("10")));
    v11.assert_allowed(create_ev(&V11).content(json!({})));
}

/// The keys of the two servers of the signature tests: a.test is the hub (the room's
/// creator's server), b.test the participant BOB sends from.
fn b_test_key() -> SigningKey {
    signing_key(4, "ed25519:b")
}

/// BOB's message as an LPDU through a.test, completed with the standard room's selection.
fn bob_lpdu_message(room: &Room, participant_key: &SigningKey, hub_key: &SigningKey) -> Pdu {
    let mut partial = msg("$unused", BOB).remove("event_id").remove("depth");
    partial =
        partial.remove("prev_events").remove("auth_events").set("hub_server", json!("a.test"));
    let lpdu = linearized::build_lpdu(LM, room.json(partial), "b.test", participant_key).unwrap();
    let auth = ["$create", "$power-levels", "$join-bob"].map(|id| EventId::parse(id).unwrap());
    let prev = EventId::parse("$prev").unwrap();
    linearized::complete_lpdu_with(LM, &lpdu, auth.to_vec(), prev, "a.test", hub_key).unwrap()
}

#[test]
fn signature_rules_1_and_2() {
    let mut room = Room::new(LM);
    let key = b_test_key();
    room.keys
        .entry("b.test".to_owned())
        .or_default()
        .insert(key.key_id().to_owned(), key.public_key());
    // Both signatures valid: allowed.
    let good = bob_lpdu_message(&room, &key, &a_test_key());
    room.assert_pdu_allowed(&good);
    // Rule 1: the sender's server did not sign the LPDU (a stranger's key under b.test's id).
    let forged_lpdu = bob_lpdu_message(&room, &signing_key(5, "ed25519:b"), &a_test_key());
    assert_eq!(room.check_pdu(&forged_lpdu).unwrap_err().rule, "1");
    // Rule 2: the hub did not sign the PDU.
    let forged_hub = bob_lpdu_message(&room, &key, &forged_a_test_key());
    assert_eq!(room.check_pdu(&forged_hub).unwrap_err().rule, "2");
    // Rule 1 for an event without hub_server: the sender's server signs the whole PDU.
    let hub_local = room.signed_pdu(msg("$m", ADMIN), "a.test", &a_test_key());
    room.assert_pdu_allowed(&hub_local);
    let forged = room.signed_pdu(msg("$m", ADMIN), "a.test", &forged_a_test_key());
    assert_eq!(room.check_pdu(&forged).unwrap_err().rule, "1");
    // Replays (signatures already verified) do not re-check.
    room.signatures_already_verified().assert_pdu_allowed(&forged);
}

#[test]
fn auth_events_rules_4_1_to_4_3() {
    let room = lm_room();
    let ids = bob_message_auth(LM);
    assert_eq!(ids, ["$create", "$power-levels", "$join-bob"]);
    assert_eq!(check_auth_list(&room, msg("$m", BOB), &ids, &[], &[]), Ok(()));
    // 4.1
    let mut twice = ids.clone();
    twice.push("$power-levels");
    assert_eq!(check_auth_list(&room, msg("$m", BOB), &twice, &[], &[]), Err("4.1"));
    // 4.2
    let mut extra = ids.clone();
    extra.push("$join-rules");
    assert_eq!(check_auth_list(&room, msg("$m", BOB), &extra, &[], &[]), Err("4.2"));
    // 4.3
    let ids_without_create = ["$power-levels", "$join-bob"];
    assert_eq!(check_auth_list(&room, msg("$m", BOB), &ids_without_create, &[], &[]), Err("4.3"));
}

#[test]
fn rejected_and_foreign_auth_events_are_not_rules_in_linearized_matrix() {
    // The draft removed v11's 2.3 (rejected auth events) on purpose and has no 2.5.
    let ids = ["$create", "$power-levels", "$join-bob"];
    for (rules, rejected, foreign) in [(LM, Ok(()), Ok(())), (&V11, Err("2.3"), Err("2.5"))] {
        let room = Room::new(rules);
        let result = check_auth_list(&room, msg("$m", BOB), &ids, &["$power-levels"], &[]);
        assert_eq!(result, rejected);
        let foreign_pl = room.pdu(
            state("$foreign-pl", "m.room.power_levels", ALICE, "", json!({}))
                .room_id("!other:a.test"),
        );
        let ids = ["$create", "$foreign-pl", "$join-bob"];
        let result = check_auth_list(&room, msg("$m", BOB), &ids, &[], &[foreign_pl]);
        assert_eq!(result, foreign);
    }
}

#[test]
fn selection_leaves_join_rules_out_of_knocks() {
    // Draft "Auth Events Selection" 4.2: join rules only for `join` and `invite`.
    let content = json!({"membership": "knock"});
    let content = content.as_object().unwrap();
    let lm = auth_types_for_event(LM, "m.room.member", CAROL, Some(CAROL), content);
    let v11 = auth_types_for_event(&V11, "m.room.member", CAROL, Some(CAROL), content);
    let pair = |t: &str, k: &str| (t.to_owned(), k.to_owned());
    assert_eq!(
        lm,
        [pair("m.room.create", ""), pair("m.room.power_levels", ""), pair("m.room.member", CAROL)]
    );
    assert_eq!(v11.last(), Some(&pair("m.room.join_rules", "")));
    // No third-party invite token and no authorising user are selected.
    let invite = json!({"membership": "invite",
        "third_party_invite": {"signed": {"token": "t", "mxid": CAROL}}});
    let lm =
        auth_types_for_event(LM, "m.room.member", BOB, Some(CAROL), invite.as_object().unwrap());
    assert!(lm.iter().all(|(t, _)| t != "m.room.third_party_invite"));
    let join = json!({"membership": "join", "join_authorised_via_users_server": ADMIN});
    let lm =
        auth_types_for_event(LM, "m.room.member", CAROL, Some(CAROL), join.as_object().unwrap());
    assert!(!lm.contains(&pair("m.room.member", ADMIN)));
    // A knock listing the join rules is rejected under 4.2 in Linearized Matrix only.
    let room = lm_room().join_rule("knock");
    let ids = ["$create", "$power-levels", "$join-rules"];
    let knock = member("$k", CAROL, CAROL, "knock");
    assert_eq!(check_auth_list(&room, knock.clone(), &ids, &[], &[]), Err("4.2"));
    let v11 = Room::new(&V11).join_rule("knock");
    assert_eq!(check_auth_list(&v11, knock, &ids, &[], &[]), Ok(()));
}

#[test]
fn m_federate_is_not_a_rule() {
    let room =
        Room::with_create_content(LM, json!({"m.federate": false})).signatures_already_verified();
    room.assert_allowed(msg("$m", BOB));
    let v11 = Room::with_create_content(&V11, json!({"m.federate": false}));
    v11.assert_rejected(msg("$m", BOB), "3", "4");
}

#[test]
fn membership_rules_5_with_the_drafts_numbers() {
    let room = lm_room();
    // 5.1
    assert_lm_rejected(&room, member("$x", BOB, BOB, "join").remove("state_key"), "5.1");
    // 5.2.1: the creator's first join right after the create event.
    let bare = Room::bare(LM).signatures_already_verified();
    bare.assert_allowed(member("$j", ALICE, ALICE, "join").prev(&["$create"]));
    // 5.2.2, 5.2.3, 5.2.4, 5.2.6
    assert_lm_rejected(&room, member("$j", BOB, CAROL, "join"), "5.2.2");
    assert_lm_rejected(
        &lm_room().membership(CAROL, "ban"),
        member("$j", CAROL, CAROL, "join"),
        "5.2.3",
    );
    assert_lm_rejected(&lm_room().join_rule("invite"), member("$j", CAROL, CAROL, "join"), "5.2.4");
    lm_room()
        .join_rule("invite")
        .membership(CAROL, "invite")
        .assert_allowed(member("$j", CAROL, CAROL, "join"));
    // 5.2.5
    room.assert_allowed(member("$j", CAROL, CAROL, "join"));
    assert_lm_rejected(
        &lm_room().join_rule("private"),
        member("$j", CAROL, CAROL, "join"),
        "5.2.6",
    );
    // 5.3.1, 5.3.2, 5.3.4
    assert_lm_rejected(&room, member("$i", CAROL, DAVE, "invite"), "5.3.1");
    assert_lm_rejected(&room, member("$i", BOB, MOD, "invite"), "5.3.2");
    let high_invite = lm_room().change_pl(|pl| pl["invite"] = json!(60));
    assert_lm_rejected(&high_invite, member("$i", MOD, CAROL, "invite"), "5.3.4");
    // 5.4.1, 5.4.2, 5.4.3, 5.4.5
    assert_lm_rejected(&room, member("$l", CAROL, CAROL, "leave"), "5.4.1");
    assert_lm_rejected(
        &lm_room().membership(CAROL, "invite"),
        member("$l", CAROL, BOB, "leave"),
        "5.4.2",
    );
    let banned = lm_room().membership(CAROL, "ban").change_pl(|pl| pl["kick"] = json!(0));
    assert_lm_rejected(&banned, member("$l", BOB, CAROL, "leave"), "5.4.3");
    assert_lm_rejected(&room, member("$l", BOB, MOD, "leave"), "5.4.5");
    // 5.5.1, 5.5.3
    assert_lm_rejected(&room, member("$b", CAROL, BOB, "ban"), "5.5.1");
    assert_lm_rejected(&room, member("$b", BOB, MOD, "ban"), "5.5.3");
    room.assert_allowed(member("$b", MOD, BOB, "ban"));
    // 5.7
    assert_lm_rejected(
        &room,
        member("$x", BOB, BOB, "join").with("membership", json!("foo")),
        "5.7",
    );
    // 6, 7, 8
    assert_lm_rejected(&room, msg("$m", CAROL), "6");
    assert_lm_rejected(&room, state("$n", "m.room.name", BOB, "", json!({"name": "x"})), "7");
    assert_lm_rejected(&room, state("$s", "m.custom", MOD, "@admin:a.test", json!({})), "8");
}

#[test]
fn restricted_joins_are_not_in_linearized_matrix() {
    // The restricted rules were removed: such rooms fall to "otherwise, reject" (5.2.6),
    // even with an authorising user, whose signature is not a rule either.
    for join_rule in ["restricted", "knock_restricted"] {
        let room = lm_room().join_rule(join_rule);
        let join = member("$j", CAROL, CAROL, "join")
            .with("join_authorised_via_users_server", json!(ADMIN));
        assert_lm_rejected(&room, join.clone(), "5.2.6");
        Room::new(&V11).join_rule(join_rule).signatures_already_verified().assert_allowed(join);
    }
    // A malformed authorising user rejects under v11 4.2.1, and means nothing here.
    let leave = member("$l", BOB, BOB, "leave").with("join_authorised_via_users_server", json!(5));
    lm_room().assert_allowed(leave.clone());
    Room::new(&V11).assert_rejected(leave, "4.2.1", "5.2.1");
}

#[test]
fn third_party_invites_are_ordinary_content() {
    // An invite carrying `third_party_invite` is judged by the ordinary invite rules.
    let invite = member("$i", BOB, CAROL, "invite")
        .with("third_party_invite", json!({"signed": {"mxid": CAROL, "token": "nope"}}));
    lm_room().assert_allowed(invite.clone());
    Room::new(&V11).assert_rejected(invite, "4.4.1.5", "5.4.1.5");
    // `m.room.third_party_invite` is an ordinary state event: state_default (50), not the
    // invite level (0).
    let event = state("$t", "m.room.third_party_invite", BOB, "tok", json!({}));
    assert_lm_rejected(&lm_room(), event.clone(), "7");
    Room::new(&V11).assert_allowed(event);
}

#[test]
fn knock_rules_5_6() {
    let room = lm_room().join_rule("knock");
    room.assert_allowed(member("$k", CAROL, CAROL, "knock"));
    // 5.6.1: "anything other than knock", knock_restricted included.
    assert_lm_rejected(
        &lm_room().join_rule("knock_restricted"),
        member("$k", CAROL, CAROL, "knock"),
        "5.6.1",
    );
    assert_lm_rejected(&lm_room(), member("$k", CAROL, CAROL, "knock"), "5.6.1");
    // 5.6.2
    assert_lm_rejected(&room, member("$k", BOB, CAROL, "knock"), "5.6.2");
    // 5.6.3: knocking while invited is allowed (Matrix forbids it).
    let invited = lm_room().join_rule("knock").membership(CAROL, "invite");
    invited.assert_allowed(member("$k", CAROL, CAROL, "knock"));
    let v11 = Room::new(&V11).join_rule("knock").membership(CAROL, "invite");
    v11.assert_rejected(member("$k", CAROL, CAROL, "knock"), "4.7.4", "5.7.4");
    // 5.6.4
    assert_lm_rejected(&room, member("$k", BOB, BOB, "knock"), "5.6.4");
    assert_lm_rejected(
        &lm_room().join_rule("knock").membership(CAROL, "ban"),
        member("$k", CAROL, CAROL, "knock"),
        "5.6.4",
    );
}

fn pl_event(sender: &str, content: Value) -> Ev {
    state("$new-pl", "m.room.power_levels", sender, "", content)
}

#[test]
fn power_levels_rule_9_differences() {
    // `notifications` is not checked: neither its shape (v11 9.2) nor its changes (9.6/9.7).
    let room = lm_room();
    let bad = room.pl();
    let mut bad = bad;
    bad["notifications"] = json!({"room": "fifty"});
    room.assert_allowed(pl_event(ADMIN, bad.clone()));
    Room::new(&V11).assert_rejected(pl_event(ADMIN, bad), "9.2", "10.2");
    let mut high = room.pl();
    high["notifications"] = json!({"room": 1000});
    room.assert_allowed(pl_event(MOD, high.clone()));
    Room::new(&V11).assert_rejected(pl_event(MOD, high), "9.7", "10.8");
    // 9.8.1: a users entry equal to the sender's level may be changed (the draft's >);
    // Matrix rejects it (≥). MOD2 and MOD both have 50.
    let with_mod2 = |room: Room| room.change_pl(|pl| pl["users"][MOD2] = json!(50));
    let lm = with_mod2(lm_room());
    let mut demote = lm.pl();
    demote["users"][MOD2] = json!(0);
    lm.assert_allowed(pl_event(MOD, demote.clone()));
    with_mod2(Room::new(&V11)).assert_rejected(pl_event(MOD, demote), "9.8", "10.9");
    // Above the sender's level: rejected in both, under the draft's 9.8.1.
    let mut demote_admin = lm.pl();
    demote_admin["users"][ADMIN] = json!(0);
    assert_lm_rejected(&lm, pl_event(MOD, demote_admin), "9.8.1");
    // The draft's numbers for the other power-level rules.
    let mut not_int = lm.pl();
    not_int["ban"] = json!("50");
    assert_lm_rejected(&lm, pl_event(ADMIN, not_int), "9.1");
    let mut events = lm.pl();
    events["events"] = json!({"m.room.name": "x"});
    assert_lm_rejected(&lm, pl_event(ADMIN, events), "9.2");
    let mut users = lm.pl();
    users["users"] = json!({"not-a-user": 5});
    assert_lm_rejected(&lm, pl_event(ADMIN, users), "9.3");
    let mut ban = lm.pl();
    ban["ban"] = json!(60);
    assert_lm_rejected(&lm, pl_event(MOD, ban), "9.5.2");
    let mut event_level = lm.pl();
    event_level["events"] = json!({"m.room.name": 60});
    assert_lm_rejected(&lm, pl_event(MOD, event_level), "9.7.1");
    let mut promote = lm.pl();
    promote["users"][BOB] = json!(60);
    assert_lm_rejected(&lm, pl_event(MOD, promote), "9.9.1");
}
