//! State resolution tests, continued: rejected events (digest §4), trivial and bad input,
//! and random histories and state maps resolved in any order.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::json;

use super::*;

/// Rejected events (digest §4). Evelyn's join ME was rejected on receipt: against the state
/// before it (the spec lets it back in) or against its auth events (never).
#[test]
fn rejected_events() {
    let mut room = Room::standard(&V11);
    room.add("ME", EVELYN, MEMBER, Some(EVELYN), member("join"), &["START"]);
    room.add("MD", DAVE, MEMBER, Some(DAVE), member("join"), &["START"]);
    let sets = [room.after("ME"), room.after("MD")];
    let with_everyone =
        expected(&room.after("START"), &[(MEMBER, EVELYN, Some("ME")), (MEMBER, DAVE, Some("MD"))]);
    let without_evelyn = expected(&room.after("START"), &[(MEMBER, DAVE, Some("MD"))]);
    let explain = ResolveOptions { explain: true, ..Default::default() };
    let never = ResolveOptions { rejected: RejectedEvents::NeverReadmit, ..explain };
    for (kind, options, want) in [
        (RejectionKind::StateBefore, explain, &with_everyone),
        (RejectionKind::StateBefore, never, &without_evelyn),
        (RejectionKind::AuthEvents, explain, &without_evelyn),
        (RejectionKind::AuthEvents, never, &without_evelyn),
    ] {
        let store = IndexedStore::from_events(
            &V11,
            room.events.values().map(|pdu| {
                let rejection = (pdu.event_id() == &id("ME")).then_some(kind);
                (Arc::new(pdu.clone()), rejection)
            }),
        );
        let resolved = resolve(&V11, &sets, &store, options).unwrap();
        assert_eq!(&resolved.state, want, "{kind:?} {:?}", options.rejected);
        if want == &without_evelyn {
            assert_eq!(decision(&resolved, "ME"), &AuthOutcome::PreviouslyRejected(kind));
        }
    }

    // A rejected auth event is never a fallback. A room without join rules: Alice sends a
    // public join rule JRX, Frank joins citing it (auth [CREATE, IPOWER, JRX]). The sets
    // are the state without JRX, with and without Frank: conflicted {MF}, auth difference
    // {MF, JRX}, X = {JRX}. Accepted: JRX passes and MF passes under it (public); JR: JRX
    // enters state although no input set has it. JRX rejected against its auth events:
    // it is skipped, MF's auth state gets no join rule (JRX is not a fallback), so the
    // default "invite" applies and MF fails rule 4.3.4 (v12: 5.3.4).
    for rules in [V11, V12] {
        let mut room = Room::new(&rules);
        room.add("IMA", ALICE, MEMBER, Some(ALICE), member("join"), &["CREATE"]);
        room.add("IPOWER", ALICE, POWER_LEVELS, Some(""), room.levels(&[(ALICE, 100)]), &["IMA"]);
        room.add("JRX", ALICE, JOIN_RULES, Some(""), join_rule("public"), &["IPOWER"]);
        room.add("MF", FRANK, MEMBER, Some(FRANK), member("join"), &["JRX"]);
        let without = room.after("IPOWER");
        let with_frank = expected(&without, &[(MEMBER, FRANK, Some("MF"))]);
        let sets = [without.clone(), with_frank.clone()];
        for (rejection, options) in [
            (None, explain),
            (Some(RejectionKind::StateBefore), explain),
            (Some(RejectionKind::StateBefore), never),
            (Some(RejectionKind::AuthEvents), explain),
        ] {
            let store = IndexedStore::from_events(
                &rules,
                room.events.values().map(|pdu| {
                    let flag = if pdu.event_id() == &id("JRX") { rejection } else { None };
                    (Arc::new(pdu.clone()), flag)
                }),
            );
            let resolved = resolve(&rules, &sets, &store, options).unwrap();
            let readmitted = match rejection {
                None => true,
                Some(kind) => {
                    kind == RejectionKind::StateBefore && options.rejected == RejectedEvents::Spec
                }
            };
            if readmitted {
                assert_eq!(resolved.state, expected(&with_frank, &[(JOIN_RULES, "", Some("JRX"))]));
            } else {
                assert_eq!(resolved.state, without, "{rejection:?} {:?}", options.rejected);
                let rule = if rules.privileged_creators { "5.3.4" } else { "4.3.4" };
                assert_eq!(rejected_under(&resolved, "MF"), rule);
            }
        }
    }
}

#[test]
fn no_conflict_and_trivial_inputs() {
    let room = Room::standard(&V10);
    let state = room.after("START");
    let options = ResolveOptions::default();
    assert_eq!(room.resolve(&[], options).state, StateMap::new());
    assert_eq!(room.resolve(std::slice::from_ref(&state), options).state, state);
    assert_eq!(room.resolve(&[state.clone(), state.clone()], options).state, state);
    // Without conflicts the store is not consulted at all.
    let empty: BTreeMap<EventId, Pdu> = BTreeMap::new();
    assert_eq!(
        resolve(&V10, &[state.clone(), state.clone()], &empty, options).unwrap().state,
        state
    );
}

#[test]
fn separate_marks_missing_keys_conflicted() {
    let a: StateMap = [(key(TOPIC, ""), id("A")), (key(CREATE, ""), id("C"))].into();
    let b: StateMap = [(key(CREATE, ""), id("C"))].into();
    let c: StateMap = [(key(TOPIC, ""), id("A")), (key(CREATE, ""), id("C"))].into();
    let (unconflicted, conflicted) = separate(&[a, b, c]);
    assert_eq!(unconflicted, [(key(CREATE, ""), id("C"))].into());
    assert_eq!(conflicted, [(key(TOPIC, ""), [id("A")].into())].into());
}

#[test]
fn power_events() {
    let room = Room::standard(&V11);
    let mut room = room;
    room.add("KICK", ALICE, MEMBER, Some(BOB), member("leave"), &["START"]);
    room.add("LEAVE", BOB, MEMBER, Some(BOB), member("leave"), &["START"]);
    room.add("BAN", ALICE, MEMBER, Some(BOB), member("ban"), &["START"]);
    room.add("INVITE", ALICE, MEMBER, Some(DAVE), member("invite"), &["START"]);
    room.add("ODD", ALICE, POWER_LEVELS, Some("x"), json!({}), &["START"]);
    let power = |name: &str| is_power_event(&room.events[&id(name)]);
    assert!(power("IPOWER") && power("IJR") && power("KICK") && power("BAN"));
    assert!(!power("LEAVE") && !power("INVITE") && !power("IMA") && !power("ODD"));
    assert!(!power("CREATE") && !power("START"));
}

/// Bad input yields an error naming the problem, never a panic.
#[test]
fn bad_input() {
    let mut room = Room::standard(&V11);
    room.add("T1", ALICE, TOPIC, Some(""), json!({"topic": "a"}), &["START"]);
    room.add("T2", ALICE, TOPIC, Some(""), json!({"topic": "b"}), &["START"]);
    let options = ResolveOptions::default();
    let good = [room.after("T1"), room.after("T2")];

    // A state event the store lacks; an auth event the store lacks.
    let mut sets = good.clone();
    sets[0].insert(key(TOPIC, "x"), id("NOWHERE"));
    let error = resolve(&V11, &sets, &room.events, options).unwrap_err();
    assert_eq!(error, ResolveError::MissingEvents(ids(&["NOWHERE"])));
    let mut events = room.events.clone();
    events.remove(&id("IJR"));
    let error = resolve(&V11, &good, &events, options).unwrap_err();
    assert_eq!(error, ResolveError::MissingEvents(ids(&["IJR"])));

    // A key that does not match its event.
    let mut sets = good.clone();
    sets[0].insert(key("m.room.name", ""), id("T1"));
    let error = resolve(&V11, &sets, &room.events, options).unwrap_err();
    assert!(matches!(error, ResolveError::KeyMismatch { state_set: 0, .. }), "{error}");

    // An auth_events cycle: T1 and T2 rewritten to cite each other.
    let mut events = room.events.clone();
    for (name, other) in [("T1", "T2"), ("T2", "T1")] {
        let mut json = events[&id(name)].json().clone();
        json.insert("auth_events".to_owned(), json!([format!("${other}")]));
        json.insert("event_id".to_owned(), json!(format!("${name}")));
        events.insert(id(name), Pdu::with_given_id(&V11, json).unwrap());
    }
    let error = resolve(&V11, &good, &events, options).unwrap_err();
    assert!(matches!(error, ResolveError::Cycle(_)), "{error}");

    // Garbage content resolves; the auth rules judge it. Three sets: S0 + PX (power levels
    // with a string `ban`), S0 + MX (Bob's membership 7), S0 + JX (join rule an array).
    // Conflicted: PL {PX, IPOWER}, Bob {MX, IMB}, join rules {JX, IJR}. X = {IPOWER, IJR,
    // PX, JX} (all Alice at 100, ts order after IPOWER): PX fails rule 9.1, JX passes (the
    // rules do not look at a join rule's content). The others, IMB then MX by ts (both
    // hang off IPOWER): IMB now meets join rule JX, which names no rule: rejected (4.3.7);
    // MX fails 4.8. So Bob has no membership at all, and the join rule is JX.
    let mut room = Room::standard(&V11);
    room.add(
        "PX",
        ALICE,
        POWER_LEVELS,
        Some(""),
        json!({"users": "everyone", "ban": "x"}),
        &["START"],
    );
    room.add("MX", BOB, MEMBER, Some(BOB), json!({"membership": 7}), &["START"]);
    room.add("JX", ALICE, JOIN_RULES, Some(""), json!({"join_rule": ["public"]}), &["START"]);
    let sets = [room.after("PX"), room.after("MX"), room.after("JX")];
    let resolved = room.resolve_sets(&sets, AuthChainReading::Inclusive);
    let want = expected(
        &room.after("START"),
        &[(POWER_LEVELS, "", Some("IPOWER")), (JOIN_RULES, "", Some("JX")), (MEMBER, BOB, None)],
    );
    assert_eq!(resolved.state, want);
    assert_eq!(rejected_under(&resolved, "PX"), "9.1");
    assert_eq!(rejected_under(&resolved, "IMB"), "4.3.7");
    assert_eq!(rejected_under(&resolved, "MX"), "4.8");
}

/// Random room histories: a few users doing random things on random forks, merged at
/// random. Every merge is resolved while building; at the end the states of all tips are
/// resolved in every order and through both store kinds (checked by `resolve_sets`).
#[derive(Clone, Debug)]
struct Action {
    sender: u8,
    kind: u8,
    target: u8,
    level: u8,
    prev: u16,
    merge: Option<u16>,
}

fn arb_actions() -> impl Strategy<Value = (u8, Vec<Action>)> {
    let action = (0u8..4, 0u8..7, 0u8..4, 0u8..3, any::<u16>(), proptest::option::of(any::<u16>()))
        .prop_map(|(sender, kind, target, level, prev, merge)| Action {
            sender,
            kind,
            target,
            level,
            prev,
            merge,
        });
    (0u8..3, proptest::collection::vec(action, 1..14))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_histories_resolve_in_any_order((version, actions) in arb_actions()) {
        let rules = [V10, V11, V12][version as usize];
        let users = [ALICE, BOB, CHARLIE, DAVE];
        let mut room = Room::standard(&rules);
        let mut names: Vec<String> = vec!["START".to_owned()];
        let mut tips: BTreeSet<String> = BTreeSet::from(["START".to_owned()]);
        for (i, action) in actions.iter().enumerate() {
            let name = format!("E{i}");
            let prev = names[action.prev as usize % names.len()].clone();
            let mut prevs = vec![prev.clone()];
            if let Some(merge) = action.merge {
                let other = names[merge as usize % names.len()].clone();
                if other != prev {
                    prevs.push(other);
                }
            }
            let sender = users[action.sender as usize];
            let target = users[action.target as usize];
            let level = [0, 50, 100][action.level as usize];
            let (event_type, state_key, content) = match action.kind {
                0 => (TOPIC, Some(""), json!({"topic": name})),
                1 => (POWER_LEVELS, Some(""), room.levels(&[(ALICE, 100), (target, level)])),
                2 => (JOIN_RULES, Some(""), join_rule(["public", "invite", "knock"][action.level as usize])),
                3 => (MEMBER, Some(target), member("ban")),
                4 => (MEMBER, Some(target), member("leave")),
                5 => (MEMBER, Some(sender), member("join")),
                _ => (MESSAGE, None, json!({"body": name})),
            };
            let prev_refs: Vec<&str> = prevs.iter().map(String::as_str).collect();
            room.add(&name, sender, event_type, state_key, content, &prev_refs);
            for p in &prevs {
                tips.remove(p);
            }
            tips.insert(name.clone());
            names.push(name);
        }
        let tips: Vec<&str> = tips.iter().map(String::as_str).take(4).collect();
        for reading in READINGS {
            room.resolve_tips(&tips, reading);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary state maps over a room's events — keys that do not match their events,
    /// message events as state, ids the store lacks — give a result or an error, never a
    /// panic, and the same answer in any order.
    #[test]
    fn arbitrary_state_maps_never_panic(
        version in 0usize..3,
        sets in proptest::collection::vec(
            proptest::collection::vec((0usize..12, 0usize..20), 0..10), 0..4),
    ) {
        let rules = [V10, V11, V12][version];
        let mut room = Room::standard(&rules);
        room.add("T", BOB, TOPIC, Some(""), json!({"topic": 1}), &["START"]);
        room.add("P", BOB, POWER_LEVELS, Some(""), json!({"users": {BOB: "high"}}), &["START"]);
        room.add("K", ALICE, MEMBER, Some(BOB), json!({"membership": "leave"}), &["T"]);
        let names: Vec<String> = room.events.keys().map(|id| id.as_str()[1..].to_owned())
            .chain(["MISSING".to_owned()]).collect();
        let keys: Vec<StateKey> = room.events.values().filter_map(|pdu| {
            Some((pdu.event_type().to_owned(), pdu.state_key()?.to_owned()))
        }).chain([key("m.room.name", ""), key(MESSAGE, "")]).collect();
        let sets: Vec<StateMap> = sets.iter().map(|entries| {
            entries.iter().map(|&(k, e)| (keys[k % keys.len()].clone(), id(&names[e % names.len()]))).collect()
        }).collect();
        let options = ResolveOptions { explain: true, ..Default::default() };
        let first = resolve(&rules, &sets, &room.events, options);
        let mut reversed = sets.clone();
        reversed.reverse();
        let second = resolve(&rules, &reversed, &room.events, options);
        let state = first.as_ref().map(|r| r.state.clone()).map_err(Clone::clone);
        super::check_overlaid(&rules, &sets, &room.events, options, &state);
        match (&first, &second) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            // Errors may name a different state set; the kind must agree.
            (Err(a), Err(b)) => prop_assert_eq!(std::mem::discriminant(a), std::mem::discriminant(b)),
            _ => prop_assert!(false, "{first:?} vs {second:?}"),
        }
    }
}
