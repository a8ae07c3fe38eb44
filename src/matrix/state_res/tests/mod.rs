//! State resolution tests: the spec's classic cases (the peer test suite's scenarios, with
//! their expected results worked out by hand from digest spec/state-resolution.md in the
//! comments), the two state resets v2.1 fixes, orderings, bad input, and order
//! independence (rejected events, bad input and random histories in `inputs`).
//!
//! Rooms are built like Synapse's state-res tests: events are listed with their
//! `prev_events`; the state before an event is the resolution of the states after its
//! prev events, its `auth_events` are what the auth-events selection picks from that
//! state, and `origin_server_ts` counts up in the order events are written. Events are
//! *not* auth-checked when created (a branch may hold events its server should not
//! have accepted), exactly so that resolution has something to decide.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::matrix::auth;
use crate::matrix::dag::IndexedStore;
use crate::matrix::room_version::{V10, V11, V12};

mod inputs;

const ALICE: &str = "@alice:example.com";
const BOB: &str = "@bob:example.com";
const CHARLIE: &str = "@charlie:example.com";
const DAVE: &str = "@dave:example.com";
const EVELYN: &str = "@evelyn:example.com";
const FRANK: &str = "@frank:example.com";
const ZARA: &str = "@zara:example.com";

const CREATE: &str = "m.room.create";
const TOPIC: &str = "m.room.topic";
const MESSAGE: &str = "m.room.message";

fn id(name: &str) -> EventId {
    EventId::parse(&format!("${name}")).unwrap()
}

fn key(event_type: &str, state_key: &str) -> StateKey {
    (event_type.to_owned(), state_key.to_owned())
}

/// v11 events resolved with state resolution v2.1: the same events as a v11 room, so a
/// difference in outcome is the algorithm's alone.
const V11_WITH_V2_1: RoomVersionRules =
    RoomVersionRules { state_res: StateResAlgorithm::V2_1, ..V11 };

struct Room {
    rules: RoomVersionRules,
    events: BTreeMap<EventId, Pdu>,
    state_after: BTreeMap<EventId, StateMap>,
    next_ts: i64,
}

impl Room {
    /// A room holding only its create event `$CREATE`, sent by Alice.
    fn new(rules: &RoomVersionRules) -> Room {
        let mut room = Room {
            rules: *rules,
            events: BTreeMap::new(),
            state_after: BTreeMap::new(),
            next_ts: 1,
        };
        let mut content = json!({ "room_version": rules.version.as_str() });
        if rules.create_requires_creator {
            content["creator"] = json!(ALICE);
        }
        room.add("CREATE", ALICE, CREATE, Some(""), content, &[]);
        room
    }

    /// The peer suite's starting room: Alice creates it and is admin (100); the join rule
    /// is public; Bob, Charlie and Zara join; Zara says something.
    ///
    /// `ts`: CREATE 1, IMA 2, IPOWER 3, IJR 4, IMB 5, IMC 6, IMZ 7, START 8.
    /// `auth_events` (v10/v11; v12 the same without CREATE): IMA [CREATE];
    /// IPOWER [CREATE, IMA]; IJR [CREATE, IPOWER, IMA]; IMB, IMC, IMZ
    /// [CREATE, IPOWER, IJR]; START [CREATE, IPOWER, IMZ].
    fn standard(rules: &RoomVersionRules) -> Room {
        let mut room = Room::new(rules);
        room.add("IMA", ALICE, MEMBER, Some(ALICE), member("join"), &["CREATE"]);
        room.add("IPOWER", ALICE, POWER_LEVELS, Some(""), room.levels(&[(ALICE, 100)]), &["IMA"]);
        room.add("IJR", ALICE, JOIN_RULES, Some(""), join_rule("public"), &["IPOWER"]);
        room.add("IMB", BOB, MEMBER, Some(BOB), member("join"), &["IJR"]);
        room.add("IMC", CHARLIE, MEMBER, Some(CHARLIE), member("join"), &["IMB"]);
        room.add("IMZ", ZARA, MEMBER, Some(ZARA), member("join"), &["IMC"]);
        room.add("START", ZARA, MESSAGE, None, json!({"body": "hi"}), &["IMZ"]);
        room
    }

    /// Power levels content with these `users`. Since v12 room creators (Alice) must not
    /// be listed (they are infinite anyway), so they are left out there.
    fn levels(&self, users: &[(&str, i64)]) -> Value {
        let users: serde_json::Map<String, Value> = users
            .iter()
            .filter(|(user, _)| !(self.rules.privileged_creators && *user == ALICE))
            .map(|(user, level)| (user.to_string(), json!(level)))
            .collect();
        json!({ "users": users })
    }

    fn add(
        &mut self,
        name: &str,
        sender: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: Value,
        prevs: &[&str],
    ) -> EventId {
        let prev_ids: Vec<EventId> = prevs.iter().map(|p| id(p)).collect();
        let state_before = self.state_at(&prev_ids);
        let content_object = content.as_object().expect("content is an object").clone();
        let auth_keys =
            auth::auth_types_for_event(&self.rules, event_type, sender, state_key, &content_object);
        let auth_events: Vec<&EventId> =
            auth_keys.iter().filter_map(|k| state_before.get(k)).collect();
        let ts = self.next_ts;
        self.next_ts += 1;
        let mut json = json!({
            "event_id": format!("${name}"),
            "type": event_type,
            "sender": sender,
            "origin_server_ts": ts,
            "depth": ts,
            "content": content,
            "auth_events": auth_events,
            "prev_events": prev_ids,
        });
        let is_create = event_type == CREATE;
        if !(is_create && self.rules.room_id_is_create_event_hash) {
            json["room_id"] = json!(self.room_id());
        }
        if let Some(state_key) = state_key {
            json["state_key"] = json!(state_key);
        }
        let Value::Object(object) = json else { unreachable!() };
        let pdu = Pdu::with_given_id(&self.rules, object).unwrap();
        let mut state_after = state_before;
        if let Some(state_key) = state_key {
            state_after.insert(key(event_type, state_key), pdu.event_id().clone());
        }
        let event_id = pdu.event_id().clone();
        self.state_after.insert(event_id.clone(), state_after);
        self.events.insert(event_id.clone(), pdu);
        event_id
    }

    fn room_id(&self) -> &'static str {
        if self.rules.room_id_is_create_event_hash { "!CREATE" } else { "!room:example.com" }
    }

    /// The state before an event with these prev events.
    fn state_at(&self, prevs: &[EventId]) -> StateMap {
        let sets: Vec<StateMap> = prevs.iter().map(|p| self.state_after[p].clone()).collect();
        match sets.len() {
            0 => StateMap::new(),
            1 => sets.into_iter().next().unwrap(),
            _ => self.resolve(&sets, ResolveOptions::default()).state,
        }
    }

    fn after(&self, name: &str) -> StateMap {
        self.state_after[&id(name)].clone()
    }

    fn resolve(&self, sets: &[StateMap], options: ResolveOptions) -> Resolved {
        resolve(&self.rules, sets, &self.events, options).unwrap()
    }

    /// Resolves the states after `tips` with an explanation, checking on the way that
    /// every ordering of the state sets, both store kinds and both auth-chain readings'
    /// determinism hold (the readings may differ from each other, each must be stable).
    fn resolve_tips(&self, tips: &[&str], reading: AuthChainReading) -> Resolved {
        let sets: Vec<StateMap> = tips.iter().map(|t| self.after(t)).collect();
        self.resolve_sets(&sets, reading)
    }

    fn resolve_sets(&self, sets: &[StateMap], reading: AuthChainReading) -> Resolved {
        let options = ResolveOptions { auth_chain: reading, explain: true, ..Default::default() };
        let resolved = self.resolve(sets, options);
        assert_eq!(resolved.explanation.as_ref().unwrap().state, resolved.state);
        // Index node numbers depend on the order events arrive in; results must not.
        let indexed = IndexedStore::from_events(
            &self.rules,
            self.events.values().map(|pdu| (Arc::new(pdu.clone()), None)),
        );
        let indexed_reversed = IndexedStore::from_events(
            &self.rules,
            self.events.values().rev().map(|pdu| (Arc::new(pdu.clone()), None)),
        );
        for permutation in permutations(sets.len()) {
            let permuted: Vec<StateMap> = permutation.iter().map(|&i| sets[i].clone()).collect();
            assert_eq!(self.resolve(&permuted, options), resolved, "order {permutation:?}");
            for store in [&indexed, &indexed_reversed] {
                let from_index = resolve(&self.rules, &permuted, store, options).unwrap();
                assert_eq!(from_index, resolved, "indexed store, order {permutation:?}");
            }
            let expected = Ok(resolved.state.clone());
            check_overlaid(&self.rules, &permuted, &indexed, options, &expected);
            check_overlaid(&self.rules, &permuted, &self.events, options, &expected);
        }
        resolved
    }
}

/// Resolves `sets` through [`resolve_overlaid`] over `base`, with the overlay keys every
/// key under which some set differs from `base`, and returns the state the changes make of
/// `base`.
fn resolve_over_base<S: EventStore + ?Sized>(
    rules: &RoomVersionRules,
    sets: &[StateMap],
    base: &StateMap,
    events: &S,
    options: ResolveOptions,
) -> Result<StateMap, ResolveError> {
    let mut keys: BTreeSet<&StateKey> = BTreeSet::new();
    for set in sets {
        keys.extend(set.iter().filter(|&(k, id)| base.get(k) != Some(id)).map(|(k, _)| k));
        keys.extend(base.keys().filter(|k| !set.contains_key(*k)));
    }
    let keys: Vec<&StateKey> = keys.into_iter().collect();
    let overlaid = Overlaid {
        base: base.iter().collect(),
        sets: sets.iter().map(|set| keys.iter().map(|&k| set.get(k)).collect()).collect(),
        keys,
    };
    let resolved = resolve_overlaid(rules, &overlaid, events, options)?;
    assert!(resolved.changes.windows(2).all(|w| w[0].0 < w[1].0), "changes sorted by key");
    let mut state = base.clone();
    for (key, event) in resolved.changes {
        match event {
            Some(event) => state.insert(key, event),
            None => state.remove(&key),
        };
    }
    Ok(state)
}

/// [`resolve_overlaid`] gives [`resolve`]'s answer over three bases: the first set (few
/// overlay keys), the empty state (every key an overlay key) and the first set with an
/// unrelated key added (a base entry no set holds, so an overlay key all sets lack).
fn check_overlaid<S: EventStore + ?Sized>(
    rules: &RoomVersionRules,
    sets: &[StateMap],
    events: &S,
    options: ResolveOptions,
    expected: &Result<StateMap, ResolveError>,
) {
    let first = sets.first().cloned().unwrap_or_default();
    let mut extra = first.clone();
    extra.insert(key("org.example.unrelated", ""), id("UNRELATED"));
    for base in [first, StateMap::new(), extra] {
        let overlaid = resolve_over_base(rules, sets, &base, events, options);
        match (&overlaid, expected) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "overlaid over {base:?}"),
            (Err(a), Err(b)) => assert_eq!(a, b, "overlaid over {base:?}"),
            _ => panic!("overlaid {overlaid:?} vs full {expected:?}"),
        }
    }
}

fn permutations(count: usize) -> Vec<Vec<usize>> {
    if count == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for rest in permutations(count - 1) {
        for at in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(at, count - 1);
            out.push(p);
        }
    }
    out
}

fn member(membership: &str) -> Value {
    json!({ "membership": membership })
}

fn join_rule(rule: &str) -> Value {
    json!({ "join_rule": rule })
}

/// `base` with some keys changed (`Some`) or removed (`None`).
fn expected(base: &StateMap, changes: &[(&str, &str, Option<&str>)]) -> StateMap {
    let mut state = base.clone();
    for &(event_type, state_key, event) in changes {
        match event {
            Some(name) => state.insert(key(event_type, state_key), id(name)),
            None => state.remove(&key(event_type, state_key)),
        };
    }
    state
}

fn ids(names: &[&str]) -> Vec<EventId> {
    names.iter().map(|n| id(n)).collect()
}

fn decision<'a>(resolved: &'a Resolved, name: &str) -> &'a AuthOutcome {
    let explanation = resolved.explanation.as_ref().unwrap();
    let found = explanation.decisions.iter().find(|d| d.event_id == id(name));
    &found.unwrap_or_else(|| panic!("no decision for {name}")).outcome
}

fn rejected_under(resolved: &Resolved, name: &str) -> &'static str {
    match decision(resolved, name) {
        AuthOutcome::Rejected(rejection) => rejection.rule,
        other => panic!("{name} was not rejected: {other:?}"),
    }
}

const READINGS: [AuthChainReading; 2] = [AuthChainReading::Inclusive, AuthChainReading::Exclusive];

/// Ban vs power levels: Bob changes the power levels while Alice bans him; the ban wins.
///
/// Events (ts): PA 9 Alice PL {Alice 100, Bob 50} auth [CREATE, IPOWER, IMA];
/// MA 10 Alice joins again, auth [CREATE, PA, IMA, IJR]; MB 11 Alice bans Bob,
/// auth [CREATE, PA, MA, IMB]; PB 12 Bob PL (same content) on PA's branch,
/// auth [CREATE, PA, IMB].
///
/// Sets: after MB = S0 + {PL: PA, Alice: MA, Bob: MB}; after PB = S0 + {PL: PB}.
/// Conflicted {PA, PB, MA, IMA, MB, IMB}; the auth difference adds nothing new (inclusive
/// {MA, MB, PB}; exclusive {MA}), so that is the full conflicted set.
/// Power events PA, PB, MB (a ban); their auth chains add IMA, MA, IMB: X = everything.
/// Sender levels from their own auth events: IMA 100 (creator, no PL), PA 100, MA 100,
/// MB 100, PB 50 (Bob in PA), IMB 0 (Bob not in IPOWER).
/// Kahn over edges PA→IMA, MA→{PA, IMA}, MB→{PA, MA, IMB}, PB→{PA, IMB}, smallest
/// (−level, ts, id) first: IMA, PA, MA, IMB (the only ready one), MB (100 before 50), PB.
/// Checks from the unconflicted map: IMA ok (first join after create), PA ok, MA ok,
/// IMB ok (public), MB ok (100 ≥ ban 50, Bob 50 < 100), PB fails rule 5 (Bob is banned).
/// Nothing remains for the mainline pass. Result: S0 + {PL: PA, Alice: MA, Bob: MB}.
#[test]
fn ban_vs_power_levels() {
    for rules in [V10, V11] {
        let mut room = Room::standard(&rules);
        room.add(
            "PA",
            ALICE,
            POWER_LEVELS,
            Some(""),
            room.levels(&[(ALICE, 100), (BOB, 50)]),
            &["START"],
        );
        room.add("MA", ALICE, MEMBER, Some(ALICE), member("join"), &["PA"]);
        room.add("MB", ALICE, MEMBER, Some(BOB), member("ban"), &["MA"]);
        room.add(
            "PB",
            BOB,
            POWER_LEVELS,
            Some(""),
            room.levels(&[(ALICE, 100), (BOB, 50)]),
            &["PA"],
        );
        for reading in READINGS {
            let resolved = room.resolve_tips(&["MB", "PB"], reading);
            let want = expected(
                &room.after("START"),
                &[
                    (POWER_LEVELS, "", Some("PA")),
                    (MEMBER, ALICE, Some("MA")),
                    (MEMBER, BOB, Some("MB")),
                ],
            );
            assert_eq!(resolved.state, want);
            let explanation = resolved.explanation.as_ref().unwrap();
            assert_eq!(explanation.conflicted, ids(&["IMA", "IMB", "MA", "MB", "PA", "PB"]));
            assert_eq!(explanation.full_conflicted, explanation.conflicted);
            let sorted: Vec<(EventId, PowerLevel)> =
                [("IMA", 100), ("PA", 100), ("MA", 100), ("IMB", 0), ("MB", 100), ("PB", 50)]
                    .iter()
                    .map(|&(n, l)| (id(n), PowerLevel::Int(l)))
                    .collect();
            assert_eq!(explanation.power_events_sorted, sorted);
            assert_eq!(rejected_under(&resolved, "PB"), "5");
            assert!(explanation.mainline_sorted.is_empty());
        }
    }
}

/// Join-rule evasion: Evelyn joins while Alice makes the room private; the join fails.
///
/// Events: JR 9 Alice join rules private, auth [CREATE, IPOWER, IMA]; ME 10 Evelyn joins
/// on a parallel branch, auth [CREATE, IPOWER, IJR].
/// Sets: S0 + {JR: JR} and S0 + {Evelyn: ME}. Conflicted {JR, IJR, ME} (Evelyn's key is
/// missing from one set). Auth difference: inclusive {JR, ME}, exclusive {} — same full
/// conflicted set. X = {IJR, JR} (join rules; their auth chains hold nothing conflicted),
/// both Alice at 100, so by ts: IJR, JR; both pass from the unconflicted map.
/// Mainline of IPOWER (the partial state's PL, from the unconflicted map) = [IPOWER]; ME
/// hangs off it. ME is checked with join rule JR = private: rejected (rule 4.3.7).
/// Result: S0 + {JR: JR}, no Evelyn.
#[test]
fn join_rule_evasion() {
    for rules in [V10, V11] {
        let mut room = Room::standard(&rules);
        room.add("JR", ALICE, JOIN_RULES, Some(""), join_rule("private"), &["START"]);
        room.add("ME", EVELYN, MEMBER, Some(EVELYN), member("join"), &["START"]);
        for reading in READINGS {
            let resolved = room.resolve_tips(&["JR", "ME"], reading);
            assert_eq!(
                resolved.state,
                expected(&room.after("START"), &[(JOIN_RULES, "", Some("JR"))])
            );
            let explanation = resolved.explanation.as_ref().unwrap();
            let sorted: Vec<&EventId> =
                explanation.power_events_sorted.iter().map(|(e, _)| e).collect();
            assert_eq!(sorted, [&id("IJR"), &id("JR")]);
            assert_eq!(explanation.mainline, ids(&["IPOWER"]));
            assert_eq!(explanation.mainline_sorted, ids(&["ME"]));
            assert_eq!(rejected_under(&resolved, "ME"), "4.3.7");
        }
    }
}

/// Off-topic power levels: Bob (50) gives Charlie 50, Charlie lowers himself to 0, all on
/// a branch the other side does not know. Every change is allowed, so PC stands.
///
/// Events: PA 9 Alice {Alice 100, Bob 50} auth [CREATE, IPOWER, IMA]; PB 10 Bob
/// {…, Charlie 50} auth [CREATE, PA, IMB]; PC 11 Charlie {…, Charlie 0}
/// auth [CREATE, PB, IMC]. Sets: after PC (PL: PC) and after PA (PL: PA).
/// Inclusive: auth difference {PB, PC}, full set {PA, PB, PC}; order PA, PB, PC (forced by
/// auth edges). PA passes; PB: Bob 50 ≥ state_default 50, adds Charlie at 50 (not > 50);
/// PC: Charlie 50 ≥ 50, changes only his own entry, new value 0 ≤ 50. Result PL: PC.
/// Exclusive: PA is only in its set, not in an auth chain there, and IMB, IMC are in PB's
/// and PC's auth chains but in no auth chain on the other side, so the auth difference is
/// {PA, PB, IMB, IMC} and the full set {PA, PB, PC, IMB, IMC} (digest §7's difference).
/// X = all five; order PA (100), IMB (0, ts 5), PB (50), IMC (0), PC; IMB and IMC pass
/// (public room); the result is the same.
#[test]
fn offtopic_power_levels() {
    for rules in [V10, V11] {
        let mut room = Room::standard(&rules);
        room.add(
            "PA",
            ALICE,
            POWER_LEVELS,
            Some(""),
            room.levels(&[(ALICE, 100), (BOB, 50)]),
            &["START"],
        );
        let pb = room.levels(&[(ALICE, 100), (BOB, 50), (CHARLIE, 50)]);
        room.add("PB", BOB, POWER_LEVELS, Some(""), pb, &["PA"]);
        let pc = room.levels(&[(ALICE, 100), (BOB, 50), (CHARLIE, 0)]);
        room.add("PC", CHARLIE, POWER_LEVELS, Some(""), pc, &["PB"]);
        let want = expected(&room.after("START"), &[(POWER_LEVELS, "", Some("PC"))]);

        let inclusive = room.resolve_tips(&["PC", "PA"], AuthChainReading::Inclusive);
        assert_eq!(inclusive.state, want);
        let explanation = inclusive.explanation.as_ref().unwrap();
        assert_eq!(explanation.full_conflicted, ids(&["PA", "PB", "PC"]));

        let exclusive = room.resolve_tips(&["PC", "PA"], AuthChainReading::Exclusive);
        assert_eq!(exclusive.state, want);
        let explanation = exclusive.explanation.as_ref().unwrap();
        assert_eq!(explanation.auth_difference, ids(&["IMB", "IMC", "PA", "PB"]));
        assert_eq!(explanation.full_conflicted, ids(&["IMB", "IMC", "PA", "PB", "PC"]));
        let sorted: Vec<&EventId> =
            explanation.power_events_sorted.iter().map(|(e, _)| e).collect();
        assert_eq!(sorted, ids(&["PA", "IMB", "PB", "IMC", "PC"]).iter().collect::<Vec<_>>());
    }
}

/// Topic reset: Bob sets a topic, then Alice bans him; a server that only saw the first
/// topic must not end up with Bob's.
///
/// Events: T1 9 Alice topic, auth [CREATE, IPOWER, IMA]; PA 10 Alice {Alice 100, Bob 50};
/// T2 11 Bob topic, auth [CREATE, PA, IMB]; MB 12 Alice bans Bob,
/// auth [CREATE, PA, IMA, IMB]. Sets: after MB (topic T2, PL PA, Bob MB) and after T1
/// (topic T1). Conflicted {T1, T2, PA, IPOWER, MB, IMB}.
/// v2: X = {IPOWER, PA, MB} + IMB (MB's auth chain); levels IPOWER 100 (creator, no PL),
/// PA 100, MB 100, IMB 0; order IPOWER, PA, IMB, MB, all pass from the unconflicted map.
/// Mainline of PA = [PA, IPOWER]: T1 hangs off IPOWER (number 1), T2 off PA (2), so T1 then
/// T2. T1 passes; T2 fails rule 5 (Bob is banned). Result: S0 + {topic T1, PL PA, Bob MB}.
/// v2.1 (v12, Alice infinite): IJR lies on the path IMB → IJR → IPOWER between conflicted
/// events, so the conflicted subgraph adds it and X = {IPOWER, IJR, PA, IMB, MB}; order
/// IPOWER, IJR (∞, ts 4), PA (∞, ts 10), IMB (0), MB; all pass from the empty map, each
/// falling back to its own auth events where the partial state has nothing. The mainline
/// pass is as in v2, with the same result.
#[test]
fn topic_reset() {
    for rules in [V10, V11, V12] {
        let mut room = Room::standard(&rules);
        room.add("T1", ALICE, TOPIC, Some(""), json!({"topic": "one"}), &["START"]);
        room.add(
            "PA",
            ALICE,
            POWER_LEVELS,
            Some(""),
            room.levels(&[(ALICE, 100), (BOB, 50)]),
            &["T1"],
        );
        room.add("T2", BOB, TOPIC, Some(""), json!({"topic": "two"}), &["PA"]);
        room.add("MB", ALICE, MEMBER, Some(BOB), member("ban"), &["T2"]);
        for reading in READINGS {
            let resolved = room.resolve_tips(&["MB", "T1"], reading);
            let want = expected(
                &room.after("START"),
                &[
                    (TOPIC, "", Some("T1")),
                    (POWER_LEVELS, "", Some("PA")),
                    (MEMBER, BOB, Some("MB")),
                ],
            );
            assert_eq!(resolved.state, want, "{:?}", rules.version);
            let explanation = resolved.explanation.as_ref().unwrap();
            assert_eq!(explanation.mainline, ids(&["PA", "IPOWER"]));
            assert_eq!(explanation.mainline_sorted, ids(&["T1", "T2"]));
            assert_eq!(decision(&resolved, "T1"), &AuthOutcome::Allowed);
            let sorted: Vec<&EventId> =
                explanation.power_events_sorted.iter().map(|(e, _)| e).collect();
            if rules.state_res == StateResAlgorithm::V2 {
                assert_eq!(sorted, ids(&["IPOWER", "PA", "IMB", "MB"]).iter().collect::<Vec<_>>());
                assert_eq!(rejected_under(&resolved, "T2"), "5");
            } else {
                assert_eq!(
                    explanation.conflicted_subgraph,
                    ids(&["IJR", "IMB", "IPOWER", "MB", "PA", "T1", "T2"])
                );
                assert_eq!(
                    sorted,
                    ids(&["IPOWER", "IJR", "PA", "IMB", "MB"]).iter().collect::<Vec<_>>()
                );
                assert_eq!(explanation.power_events_sorted[0].1, PowerLevel::Infinite);
                assert_eq!(rejected_under(&resolved, "T2"), "6");
            }
        }
    }
}

/// Mainline sort: T3 wins over the later T4 because T4 hangs off an older power level.
///
/// Events: T1 9 Alice topic; PA1 10 Alice {Alice 100, Bob 50}; T2 11 Alice topic
/// (auth PA1); PA2 12 Alice {Alice 100, Bob 50, events {PL: 100}} (auth PA1); PB 13 Bob
/// PL (same as PA1) on PA1's branch (auth [CREATE, PA1, IMB]); T3 14 Bob topic after PA2
/// (auth PA2); T4 15 Alice topic after PB (auth PB).
/// Sets: after T3 (topic T3, PL PA2) and after T4 (topic T4, PL PB). Conflicted and
/// full conflicted set {T3, T4, PA2, PB}. X = {PA2, PB}: PA2 (100) before PB (50). PA2
/// passes (adds events.PL = 100 ≤ 100); PB fails rule 7 (Bob 50 < 100 for PL events).
/// Mainline of PA2 = [PA2, PA1, IPOWER] (numbers 3, 2, 1). T3 → PA2 (3); T4 → PB →
/// PA1 (2). Order T4 (older power levels first, although later ts), T3; both pass (state
/// default 50 ≤ Bob's 50). Result: S0 + {topic T3, PL PA2}.
#[test]
fn mainline_sort() {
    for rules in [V10, V11] {
        let mut room = Room::standard(&rules);
        room.add("T1", ALICE, TOPIC, Some(""), json!({"topic": "1"}), &["START"]);
        room.add(
            "PA1",
            ALICE,
            POWER_LEVELS,
            Some(""),
            room.levels(&[(ALICE, 100), (BOB, 50)]),
            &["T1"],
        );
        room.add("T2", ALICE, TOPIC, Some(""), json!({"topic": "2"}), &["PA1"]);
        let mut pa2 = room.levels(&[(ALICE, 100), (BOB, 50)]);
        pa2["events"] = json!({ POWER_LEVELS: 100 });
        room.add("PA2", ALICE, POWER_LEVELS, Some(""), pa2, &["T2"]);
        room.add(
            "PB",
            BOB,
            POWER_LEVELS,
            Some(""),
            room.levels(&[(ALICE, 100), (BOB, 50)]),
            &["PA1"],
        );
        room.add("T3", BOB, TOPIC, Some(""), json!({"topic": "3"}), &["PA2"]);
        room.add("T4", ALICE, TOPIC, Some(""), json!({"topic": "4"}), &["PB"]);
        for reading in READINGS {
            let resolved = room.resolve_tips(&["T3", "T4"], reading);
            let want = expected(
                &room.after("START"),
                &[(TOPIC, "", Some("T3")), (POWER_LEVELS, "", Some("PA2"))],
            );
            assert_eq!(resolved.state, want);
            let explanation = resolved.explanation.as_ref().unwrap();
            assert_eq!(explanation.full_conflicted, ids(&["PA2", "PB", "T3", "T4"]));
            assert_eq!(explanation.mainline, ids(&["PA2", "PA1", "IPOWER"]));
            assert_eq!(explanation.mainline_sorted, ids(&["T4", "T3"]));
            assert_eq!(rejected_under(&resolved, "PB"), "7");
        }
    }
}

/// The digest's §6 example: from A, B bans Zara while C is Zara's topic; a server that
/// saw B first soft-fails C, and a later D citing both is resolved normally.
///
/// Events: B 9 Alice bans Zara, auth [CREATE, IPOWER, IMA, IMZ]; C 10 Zara's topic,
/// auth [CREATE, IPOWER, IMZ]; both on START. Sets: S0 + {Zara: B}, S0 + {topic: C}.
/// Conflicted {B, IMZ, C}; the auth difference (inclusive {B, C}, exclusive {}) adds
/// nothing. X = {B} + IMZ from its auth chain; IMZ must come first (B cites it); both
/// pass. C is then checked with Zara banned: rejected (v10/v11 rule 5, v12 rule 6).
/// Result: S0 + {Zara: B}, no topic — v2 and v2.1 alike prioritise the ban.
#[test]
fn ban_beats_concurrent_topic() {
    for rules in [V10, V11, V12] {
        let mut room = Room::standard(&rules);
        room.add("B", ALICE, MEMBER, Some(ZARA), member("ban"), &["START"]);
        room.add("C", ZARA, TOPIC, Some(""), json!({"topic": "zara's"}), &["START"]);
        for reading in READINGS {
            let resolved = room.resolve_tips(&["B", "C"], reading);
            assert_eq!(
                resolved.state,
                expected(&room.after("START"), &[(MEMBER, ZARA, Some("B"))])
            );
            let explanation = resolved.explanation.as_ref().unwrap();
            assert_eq!(explanation.full_conflicted, ids(&["B", "C", "IMZ"]));
            let sorted: Vec<&EventId> =
                explanation.power_events_sorted.iter().map(|(e, _)| e).collect();
            assert_eq!(sorted, ids(&["IMZ", "B"]).iter().collect::<Vec<_>>());
            let rule = if rules.privileged_creators { "6" } else { "5" };
            assert_eq!(rejected_under(&resolved, "C"), rule);
        }
    }
}

/// Concurrent joins, one per server, three state sets: each user's key is missing from
/// two sets, so all three joins are conflicted. No power events; v2 sorts them by the
/// mainline of IPOWER (all number 1) and ts; v2.1 has no power levels in the (empty)
/// partial state, so all have position ∞ and sort by ts. All pass (public room).
/// Result: S0 + Dave, Evelyn and Frank joined.
#[test]
fn concurrent_joins() {
    for rules in [V10, V11, V12] {
        let mut room = Room::standard(&rules);
        room.add("MD", DAVE, MEMBER, Some(DAVE), member("join"), &["START"]);
        room.add("ME", EVELYN, MEMBER, Some(EVELYN), member("join"), &["START"]);
        room.add("MF", FRANK, MEMBER, Some(FRANK), member("join"), &["START"]);
        for reading in READINGS {
            let resolved = room.resolve_tips(&["MF", "MD", "ME"], reading);
            let want = expected(
                &room.after("START"),
                &[
                    (MEMBER, DAVE, Some("MD")),
                    (MEMBER, EVELYN, Some("ME")),
                    (MEMBER, FRANK, Some("MF")),
                ],
            );
            assert_eq!(resolved.state, want);
            let explanation = resolved.explanation.as_ref().unwrap();
            assert_eq!(explanation.full_conflicted, ids(&["MD", "ME", "MF"]));
            assert!(explanation.power_events_sorted.is_empty());
            assert_eq!(explanation.mainline_sorted, ids(&["MD", "ME", "MF"]));
            let mainline =
                if rules.state_res == StateResAlgorithm::V2 { ids(&["IPOWER"]) } else { vec![] };
            assert_eq!(explanation.mainline, mainline);
        }
    }
}

/// Problem A of MSC4297 (digest §5): a stale join-rules event against the unconflicted
/// state. Bob (100) sets the join rule twice and then leaves; one server's state still has
/// the first join rule. Both sets agree on Bob's leave.
///
/// Events (linear): CREATE 1, IMA 2, IPOWER 3 {Alice 100, Bob 100}, IJR 4 public, IMB 5,
/// JR1 6 Bob invite, JR2 7 Bob knock, LB 8 Bob leaves; JR1, JR2 and LB have auth events
/// [CREATE, IPOWER, IMB] (join rules are not in a join-rules event's auth events).
/// Sets: {…, JR: JR2, Bob: LB} and {…, JR: JR1, Bob: LB}. Conflicted {JR1, JR2}; auth
/// difference inclusive {JR1, JR2}, exclusive {}; subgraph {JR1, JR2}. X = {JR1, JR2},
/// both Bob at 100, by ts JR1, JR2.
/// v2: replayed on the unconflicted map, where Bob has left: both fail rule 5, and the
/// join-rules key is conflicted, so step 5 does not restore it: the room has no join rule.
/// v2.1: replayed from the empty map, both fall back to their own auth events (Bob joined,
/// PL 100 ≥ 50) and pass; JR2 comes last. Result: JR2, with Bob's leave re-applied.
#[test]
fn state_reset_problem_a() {
    for rules in [V11, V11_WITH_V2_1, V12] {
        let mut room = Room::new(&rules);
        room.add("IMA", ALICE, MEMBER, Some(ALICE), member("join"), &["CREATE"]);
        room.add(
            "IPOWER",
            ALICE,
            POWER_LEVELS,
            Some(""),
            room.levels(&[(ALICE, 100), (BOB, 100)]),
            &["IMA"],
        );
        room.add("IJR", ALICE, JOIN_RULES, Some(""), join_rule("public"), &["IPOWER"]);
        room.add("IMB", BOB, MEMBER, Some(BOB), member("join"), &["IJR"]);
        room.add("JR1", BOB, JOIN_RULES, Some(""), join_rule("invite"), &["IMB"]);
        room.add("JR2", BOB, JOIN_RULES, Some(""), join_rule("knock"), &["JR1"]);
        room.add("LB", BOB, MEMBER, Some(BOB), member("leave"), &["JR2"]);
        for name in ["JR1", "JR2", "LB"] {
            let mut auth = room.events[&id(name)].auth_events().to_vec();
            auth.sort();
            let want = if rules.create_event_in_auth_events {
                ids(&["CREATE", "IMB", "IPOWER"])
            } else {
                ids(&["IMB", "IPOWER"])
            };
            assert_eq!(auth, want, "{name}");
        }
        let current = room.after("LB");
        let stale = expected(&current, &[(JOIN_RULES, "", Some("JR1"))]);
        for reading in READINGS {
            let resolved = room.resolve_sets(&[current.clone(), stale.clone()], reading);
            let explanation = resolved.explanation.as_ref().unwrap();
            assert_eq!(explanation.full_conflicted, ids(&["JR1", "JR2"]));
            if rules.state_res == StateResAlgorithm::V2 {
                assert_eq!(resolved.state, expected(&current, &[(JOIN_RULES, "", None)]));
                assert_eq!(rejected_under(&resolved, "JR1"), "5");
                assert_eq!(rejected_under(&resolved, "JR2"), "5");
            } else {
                assert_eq!(resolved.state, current, "{:?}", rules.version);
                assert_eq!(decision(&resolved, "JR1"), &AuthOutcome::Allowed);
                assert_eq!(decision(&resolved, "JR2"), &AuthOutcome::Allowed);
            }
        }
    }
}

/// Problem B of MSC4297 (digest §5): the auth difference misses an intermediate event.
/// Alice promotes Bob (P1), Bob promotes Charlie (P2), Charlie sets a topic (T). One
/// server's state names the old power levels IPOWER although its topic's auth chain
/// already holds P1 and P2.
///
/// Events (linear): CREATE 1, IMA 2, IPOWER 3 {Alice 100}, IJR 4, IMB 5, IMC 6,
/// P1 7 Alice {Alice 100, Bob 50} auth [CREATE, IPOWER, IMA], P2 8 Bob {…, Charlie 50}
/// auth [CREATE, P1, IMB], T 9 Charlie topic auth [CREATE, P2, IMC].
/// Sets: {…, PL: P2, topic: T} and {…, PL: IPOWER, topic: T}. Conflicted {IPOWER, P2}.
/// Both full auth chains contain P1 and P2 (through T), so the auth difference is empty
/// under either reading.
/// v2: full set {IPOWER, P2}; IPOWER (Alice 100: creator, no PL in its auth events) before
/// P2 (Bob 50 in P1). IPOWER passes (first power levels); P2 is checked with PL = IPOWER,
/// where Bob has 0 < state_default 50: rejected (rule 7). Result: PL reset to IPOWER.
/// v2.1: the conflicted state subgraph holds every event on an auth path from P2 down to
/// IPOWER: P2 → P1 → IPOWER, and P2 → IMB → IPOWER, P2 → IMB → IJR → IPOWER (Bob's join
/// cites the power levels and join rules), so it is {IPOWER, P1, P2, IMB, IJR}.
/// X = the power events IPOWER, P1, P2, IJR plus IMB (in P2's auth chain). Levels: Alice's
/// events 100 (v11, creator/IPOWER) or ∞ (v12), IMB 0, P2 50. Kahn: IPOWER; then IJR
/// (ts 4) before P1 (ts 7); then P1 (higher level) before IMB; then IMB; then P2. From the
/// empty map all pass (IMB under IJR public; P1 by Alice; P2 by Bob at 50 in P1).
/// Result: PL stays P2.
#[test]
fn state_reset_problem_b() {
    for rules in [V11, V11_WITH_V2_1, V12] {
        let mut room = Room::new(&rules);
        room.add("IMA", ALICE, MEMBER, Some(ALICE), member("join"), &["CREATE"]);
        room.add("IPOWER", ALICE, POWER_LEVELS, Some(""), room.levels(&[(ALICE, 100)]), &["IMA"]);
        room.add("IJR", ALICE, JOIN_RULES, Some(""), join_rule("public"), &["IPOWER"]);
        room.add("IMB", BOB, MEMBER, Some(BOB), member("join"), &["IJR"]);
        room.add("IMC", CHARLIE, MEMBER, Some(CHARLIE), member("join"), &["IMB"]);
        room.add(
            "P1",
            ALICE,
            POWER_LEVELS,
            Some(""),
            room.levels(&[(ALICE, 100), (BOB, 50)]),
            &["IMC"],
        );
        let p2 = room.levels(&[(ALICE, 100), (BOB, 50), (CHARLIE, 50)]);
        room.add("P2", BOB, POWER_LEVELS, Some(""), p2, &["P1"]);
        room.add("T", CHARLIE, TOPIC, Some(""), json!({"topic": "charlie's"}), &["P2"]);
        let current = room.after("T");
        let stale = expected(&current, &[(POWER_LEVELS, "", Some("IPOWER"))]);
        for reading in READINGS {
            let resolved = room.resolve_sets(&[stale.clone(), current.clone()], reading);
            let explanation = resolved.explanation.as_ref().unwrap();
            assert!(explanation.auth_difference.is_empty());
            if rules.state_res == StateResAlgorithm::V2 {
                assert_eq!(explanation.full_conflicted, ids(&["IPOWER", "P2"]));
                assert_eq!(resolved.state, stale);
                assert_eq!(rejected_under(&resolved, "P2"), "7");
            } else {
                let subgraph = ids(&["IJR", "IMB", "IPOWER", "P1", "P2"]);
                assert_eq!(explanation.conflicted_subgraph, subgraph);
                assert_eq!(explanation.full_conflicted, subgraph);
                let sorted: Vec<&EventId> =
                    explanation.power_events_sorted.iter().map(|(e, _)| e).collect();
                assert_eq!(
                    sorted,
                    ids(&["IPOWER", "IJR", "P1", "IMB", "P2"]).iter().collect::<Vec<_>>()
                );
                assert!(explanation.decisions.iter().all(|d| d.outcome == AuthOutcome::Allowed));
                assert_eq!(resolved.state, current, "{:?}", rules.version);
            }
        }
    }
}
