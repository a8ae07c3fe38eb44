//! Unit tests of the network kernel: every fault kind, determinism, bounds, validation and
//! the data formats. Nodes are `a`, `b`, `c`, `d` (ids 0 to 3); times are milliseconds.

use crate::net::*;
use crate::stdx::{Duration, Instant, Prng, Ratio};

const A: NodeId = NodeId(0);
const B: NodeId = NodeId(1);
const C: NodeId = NodeId(2);
const D: NodeId = NodeId(3);

fn name(text: &str) -> NodeName {
    NodeName::new(text).unwrap()
}

fn nodes() -> Vec<NodeName> {
    ["a", "b", "c", "d"].into_iter().map(name).collect()
}

fn t(ms: u64) -> Instant {
    Instant::from_ms(ms)
}

fn ms(ms: u64) -> Duration {
    Duration::from_ms(ms)
}

fn ratio(numerator: u64, denominator: u64) -> Ratio {
    Ratio::new(numerator, denominator).unwrap()
}

fn fixed(delay_ms: u64) -> LinkPolicy {
    LinkPolicy::ideal(LatencyDistribution::fixed_ms(delay_ms))
}

fn network_seeded(policy: LinkPolicy, faults: Vec<Fault>, seed: u64) -> Network<Vec<u8>> {
    let config = NetConfig { default_policy: policy, ..NetConfig::default() };
    let schedule = FaultSchedule::new(nodes(), faults).unwrap();
    Network::new(config, schedule, Prng::from_seed(seed).fork("net")).unwrap()
}

fn network(policy: LinkPolicy, faults: Vec<Fault>) -> Network<Vec<u8>> {
    network_seeded(policy, faults, 1)
}

fn payload(number: u64) -> Vec<u8> {
    number.to_le_bytes().to_vec()
}

fn number(payload: &[u8]) -> u64 {
    u64::from_le_bytes(payload.try_into().unwrap())
}

/// Steps the network through every remaining event, as the world will, and returns what
/// arrived.
fn drain(net: &mut Network<Vec<u8>>) -> Vec<Delivery<Vec<u8>>> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let Some(at) = net.next_event_time() else { return out };
        net.advance_to(at);
        out.extend(net.deliver_due(at));
    }
    panic!("the network did not go quiet");
}

fn dropped(outcome: SendOutcome) -> Option<DropReason> {
    match outcome {
        SendOutcome::Dropped { reason, .. } => Some(reason),
        SendOutcome::Scheduled { .. } => None,
    }
}

fn links(deliveries: &[Delivery<Vec<u8>>]) -> Vec<(NodeId, NodeId)> {
    deliveries.iter().map(|d| (d.from, d.to)).collect()
}

#[test]
fn zero_latency_arrives_at_the_same_instant_and_names_map_to_ids() {
    let mut net = network(fixed(0), Vec::new());
    assert_eq!(net.node_id("c"), Some(C));
    assert_eq!(net.node_id("e"), None);
    assert_eq!(net.node_name(D), &name("d"));
    net.send(t(5), A, B, payload(0), 8);
    assert_eq!(net.next_delivery_time(), Some(t(5)));
    let delivered = net.deliver_due(t(5));
    assert_eq!((delivered.len(), delivered[0].at, delivered[0].sent_at), (1, t(5), t(5)));
    assert_eq!(net.next_event_time(), None);
}

#[test]
fn partition_cuts_both_ways_and_unlisted_nodes_form_one_group() {
    let faults = vec![Fault::Partition {
        start: t(100),
        end: t(200),
        groups: vec![vec![name("a")], vec![name("b")]],
    }];
    let mut net = network(fixed(10), faults);
    let cut = Some(DropReason::Partition { fault: 0 });
    for (from, to, expected) in [
        (A, B, cut),
        (B, A, cut),
        (A, C, cut),
        (C, A, cut),
        (B, D, cut),
        (C, D, None),
        (D, C, None),
    ] {
        assert_eq!(
            dropped(net.send(t(150), from, to, payload(0), 8)),
            expected,
            "{from:?}->{to:?}"
        );
    }
    assert_eq!(links(&drain(&mut net)), vec![(C, D), (D, C)]);
    // Before and after the partition every link works.
    assert_eq!(net.link_state(A, B, t(99)), LinkState::Up);
    assert_eq!(net.link_state(A, B, t(100)), LinkState::Cut(DropReason::Partition { fault: 0 }));
    assert_eq!(net.link_state(A, B, t(200)), LinkState::Up);
    assert_eq!(dropped(net.send(t(200), A, B, payload(1), 8)), None);
    assert_eq!(links(&drain(&mut net)), vec![(A, B)]);
}

#[test]
fn messages_in_flight_are_dropped_if_the_cut_holds_when_they_come_due() {
    let faults = vec![
        Fault::Partition { start: t(10), end: t(20), groups: vec![vec![name("a")]] },
        Fault::Partition { start: t(100), end: t(200), groups: vec![vec![name("a")]] },
    ];
    let mut net = network(fixed(50), faults);
    // In flight over the whole short cut: untouched.
    net.send(t(0), A, B, payload(0), 8);
    // In flight when the long cut starts, due inside it: lost at arrival.
    net.send(t(80), A, B, payload(1), 8);
    // Sent during the long cut: lost at once.
    assert_eq!(
        dropped(net.send(t(199), B, A, payload(2), 8)),
        Some(DropReason::Partition { fault: 1 })
    );
    let delivered = drain(&mut net);
    assert_eq!(delivered.iter().map(|d| number(&d.payload)).collect::<Vec<_>>(), vec![0]);
    let drop_at_arrival = NetEvent::Dropped {
        at: t(130),
        id: MessageId(1),
        copy: 0,
        reason: DropReason::Partition { fault: 1 },
    };
    assert!(net.events().contains(&drop_at_arrival), "{:#?}", net.events());
}

#[test]
fn one_way_cuts_only_one_direction() {
    let faults = vec![Fault::OneWay { start: t(0), end: t(1_000), from: name("a"), to: name("b") }];
    let mut net = network(fixed(10), faults);
    assert_eq!(dropped(net.send(t(5), A, B, payload(0), 8)), Some(DropReason::OneWay { fault: 0 }));
    assert_eq!(dropped(net.send(t(5), B, A, payload(1), 8)), None);
    assert_eq!(dropped(net.send(t(5), A, C, payload(2), 8)), None);
    assert_eq!(links(&drain(&mut net)), vec![(B, A), (A, C)]);
    assert_eq!(net.link_state(A, B, t(999)), LinkState::Cut(DropReason::OneWay { fault: 0 }));
    assert_eq!(net.link_state(B, A, t(999)), LinkState::Up);
}

#[test]
fn hold_keeps_messages_and_releases_them_in_order_at_the_end() {
    let faults = vec![Fault::Hold { start: t(0), end: t(1_000), from: name("a"), to: name("b") }];
    let mut net = network(LinkPolicy::ideal(LatencyDistribution::uniform_ms(1, 30)), faults);
    net.send(t(0), B, A, payload(100), 8);
    for i in 0..20 {
        net.send(t(i * 10), A, B, payload(i), 8);
    }
    // Sent late in the hold, due after it: after everything held.
    net.send(t(995), A, B, payload(20), 8);
    let delivered = drain(&mut net);
    let (held, free): (Vec<_>, Vec<_>) = delivered.iter().partition(|d| d.from == A);
    assert_eq!(free.len(), 1);
    assert!(free[0].at < t(100), "the other direction is not held");
    assert_eq!(
        held.iter().map(|d| number(&d.payload)).collect::<Vec<_>>(),
        (0..=20).collect::<Vec<_>>()
    );
    assert!(held[..20].iter().all(|d| d.at == t(1_000)), "released at the end of the hold");
    assert!(held[20].at >= t(1_000));
    let events = net.events();
    let count = |f: fn(&NetEvent) -> bool| events.iter().filter(|e| f(e)).count();
    assert_eq!(count(|e| matches!(e, NetEvent::Held { fault: 0, .. })), 20);
    assert_eq!(
        count(|e| matches!(e, NetEvent::Released { at, .. } if *at == Instant::from_ms(1_000))),
        20
    );
    assert_eq!(net.held_count(), 0);
}

#[test]
fn released_messages_meet_the_cuts_in_force_and_overlapping_holds_release_once() {
    let faults = vec![
        Fault::Hold { start: t(0), end: t(100), from: name("a"), to: name("b") },
        Fault::Hold { start: t(50), end: t(300), from: name("a"), to: name("b") },
        Fault::Hold { start: t(0), end: t(100), from: name("c"), to: name("d") },
        Fault::OneWay { start: t(90), end: t(200), from: name("c"), to: name("d") },
    ];
    let mut net = network(fixed(10), faults);
    net.send(t(0), A, B, payload(0), 8);
    net.send(t(0), C, D, payload(1), 8);
    let delivered = drain(&mut net);
    // a→b is kept by the second hold until 300; c→d is released at 100 into a cut.
    assert_eq!(delivered.len(), 1);
    assert_eq!((delivered[0].at, number(&delivered[0].payload)), (t(300), 0));
    let lost = NetEvent::Dropped {
        at: t(100),
        id: MessageId(1),
        copy: 0,
        reason: DropReason::OneWay { fault: 3 },
    };
    assert!(net.events().contains(&lost), "{:#?}", net.events());
}

#[test]
fn a_hold_and_a_partition_ending_together_release_into_a_healed_link() {
    let faults = vec![
        Fault::Hold { start: t(0), end: t(100), from: name("a"), to: name("b") },
        Fault::Partition { start: t(50), end: t(100), groups: vec![vec![name("a")]] },
    ];
    let mut net = network(fixed(10), faults);
    net.send(t(0), A, B, payload(0), 8);
    let delivered = drain(&mut net);
    assert_eq!(delivered.iter().map(|d| d.at).collect::<Vec<_>>(), vec![t(100)]);
}

#[test]
fn flap_is_down_for_the_first_part_of_every_period_both_ways() {
    let faults = vec![Fault::Flap {
        start: t(100),
        end: t(1_100),
        a: name("a"),
        b: name("b"),
        period: ms(100),
        down_for: ms(30),
    }];
    let net = network(fixed(10), faults);
    let down = LinkState::Cut(DropReason::Flap { fault: 0 });
    for (at, expected) in [
        (99, LinkState::Up),
        (100, down),
        (129, down),
        (130, LinkState::Up),
        (199, LinkState::Up),
        (200, down),
        (1_029, down),
        (1_030, LinkState::Up),
        (1_100, LinkState::Up),
    ] {
        assert_eq!(net.link_state(A, B, t(at)), expected, "a→b at {at}");
        assert_eq!(net.link_state(B, A, t(at)), expected, "b→a at {at}");
        assert_eq!(net.link_state(A, C, t(at)), LinkState::Up);
    }
    // A send in an up phase whose arrival falls in the next down phase is lost.
    let mut net = network(fixed(10), net.schedule().faults().to_vec());
    assert_eq!(dropped(net.send(t(150), A, B, payload(0), 8)), None);
    assert_eq!(dropped(net.send(t(195), A, B, payload(1), 8)), None);
    assert_eq!(dropped(net.send(t(210), A, B, payload(2), 8)), Some(DropReason::Flap { fault: 0 }));
    let delivered = drain(&mut net);
    assert_eq!(delivered.iter().map(|d| number(&d.payload)).collect::<Vec<_>>(), vec![0]);
}

#[test]
fn loss_drops_about_the_ratio_asked() {
    let mut policy = fixed(10);
    policy.loss = ratio(3, 10);
    let mut net = network(policy, Vec::new());
    let lost = (0..1_000)
        .filter(|&i| dropped(net.send(t(i), A, B, payload(i), 8)) == Some(DropReason::Loss))
        .count();
    assert!((250..=350).contains(&lost), "{lost} of 1000 lost at 3/10");
    assert_eq!(drain(&mut net).len(), 1_000 - lost);
}

#[test]
fn duplicates_arrive_twice_and_about_as_often_as_asked() {
    let mut policy = LinkPolicy::ideal(LatencyDistribution::uniform_ms(5, 50));
    policy.duplicate = Ratio::ONE;
    let mut net = network(policy, Vec::new());
    for i in 0..10 {
        net.send(t(i), A, B, payload(i), 8);
    }
    let delivered = drain(&mut net);
    assert_eq!(delivered.len(), 20);
    for i in 0..10 {
        let copies: Vec<_> = delivered.iter().filter(|d| d.id == MessageId(i)).collect();
        assert_eq!(copies.iter().map(|d| d.copy).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(copies[0].payload, copies[1].payload);
        assert!(copies[0].at <= copies[1].at);
    }
    policy.duplicate = ratio(1, 5);
    let mut net = network(policy, Vec::new());
    for i in 0..1_000 {
        net.send(t(i), A, B, payload(i), 8);
    }
    let copies = drain(&mut net).iter().filter(|d| d.copy == 1).count();
    assert!((150..=250).contains(&copies), "{copies} duplicates of 1000 at 1/5");
}

#[test]
fn reordering_happens_only_when_enabled() {
    let in_order = |deliveries: &[Delivery<Vec<u8>>]| {
        deliveries.windows(2).all(|w| number(&w[0].payload) < number(&w[1].payload))
    };
    let mut policy = LinkPolicy::ideal(LatencyDistribution::uniform_ms(1, 100));
    let mut net = network(policy, Vec::new());
    for i in 0..500 {
        net.send(t(i), A, B, payload(i), 8);
    }
    let delivered = drain(&mut net);
    assert_eq!(delivered.len(), 500);
    assert!(in_order(&delivered), "random latency alone never reorders a link");

    policy.reorder = ratio(1, 4);
    policy.reorder_delay_max = ms(200);
    let mut net = network(policy, Vec::new());
    let reordered = (0..500)
        .filter(|&i| {
            matches!(
                net.send(t(i), A, B, payload(i), 8),
                SendOutcome::Scheduled { reordered: true, .. }
            )
        })
        .count();
    assert!((75..=175).contains(&reordered), "{reordered} of 500 reordered at 1/4");
    let delivered = drain(&mut net);
    assert_eq!(delivered.len(), 500);
    assert!(!in_order(&delivered));
}

#[test]
fn corruption_changes_exactly_one_byte_and_is_logged() {
    let mut policy = fixed(10);
    policy.corrupt = Ratio::ONE;
    let mut net = network(policy, Vec::new());
    let sent: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 1 + usize::from(i)]).collect();
    for (i, bytes) in sent.iter().enumerate() {
        net.send(t(0), A, B, bytes.clone(), bytes.len() as u64);
        assert!(matches!(
            net.events().last(),
            Some(NetEvent::Scheduled { id, .. }) if *id == MessageId(i as u64)
        ));
    }
    let corrupted: Vec<(u64, u8, u8)> = net
        .events()
        .iter()
        .filter_map(|e| match *e {
            NetEvent::Corrupted { offset, before, after, .. } => Some((offset, before, after)),
            _ => None,
        })
        .collect();
    let delivered = drain(&mut net);
    assert_eq!(delivered.len(), 50);
    for (delivery, (offset, before, after)) in delivered.iter().zip(corrupted) {
        let original = &sent[delivery.id.0 as usize];
        let changed: Vec<usize> =
            (0..original.len()).filter(|&i| original[i] != delivery.payload[i]).collect();
        assert_eq!(changed, vec![offset as usize]);
        assert_eq!((original[offset as usize], delivery.payload[offset as usize]), (before, after));
    }
    // An empty payload cannot be damaged.
    let mut net = network(LinkPolicy { corrupt: Ratio::ONE, ..fixed(1) }, Vec::new());
    let outcome = net.send(t(0), A, B, Vec::new(), 0);
    assert!(matches!(outcome, SendOutcome::Scheduled { corrupted: None, .. }));
}

#[test]
fn clock_skew_adds_the_active_offsets() {
    let faults = vec![
        Fault::ClockSkew { start: t(100), end: t(200), node: name("a"), offset_ms: 500 },
        Fault::ClockSkew { start: t(150), end: t(300), node: name("a"), offset_ms: -300 },
    ];
    let net = network(fixed(10), faults);
    for (at, clock) in [(50, 50), (120, 620), (160, 360), (250, -50), (300, 300)] {
        assert_eq!(net.node_clock(A, t(at)), clock, "a at {at}");
        assert_eq!(net.node_clock(B, t(at)), at as i64, "b at {at}");
    }
}

#[test]
fn slow_nodes_delay_what_they_send_and_receive() {
    let faults = vec![
        Fault::Slow { start: t(0), end: t(1_000), node: name("a"), extra_delay: ms(100) },
        Fault::Slow { start: t(0), end: t(1_000), node: name("b"), extra_delay: ms(40) },
    ];
    let mut net = network(fixed(10), faults);
    let due = |outcome| match outcome {
        SendOutcome::Scheduled { due, .. } => due,
        SendOutcome::Dropped { .. } => panic!("dropped"),
    };
    assert_eq!(due(net.send(t(0), A, C, payload(0), 8)), t(110));
    assert_eq!(due(net.send(t(0), C, A, payload(1), 8)), t(110));
    assert_eq!(due(net.send(t(0), A, B, payload(2), 8)), t(150));
    assert_eq!(due(net.send(t(0), C, D, payload(3), 8)), t(10));
    assert_eq!(due(net.send(t(1_000), A, C, payload(4), 8)), t(1_010));
}

#[test]
fn link_overrides_apply_to_one_direction_and_the_latest_start_wins() {
    let lossy = LinkPolicy { loss: Ratio::ONE, ..fixed(10) };
    let faults = vec![
        Fault::LinkOverride {
            start: t(100),
            end: t(300),
            from: name("a").into(),
            to: name("b").into(),
            policy: lossy,
        },
        Fault::LinkOverride {
            start: t(200),
            end: t(250),
            from: name("a").into(),
            to: name("b").into(),
            policy: fixed(77),
        },
    ];
    let mut net = network(fixed(10), faults);
    assert_eq!(net.policy_at(A, B, t(99)), &fixed(10));
    assert_eq!(dropped(net.send(t(100), A, B, payload(0), 8)), Some(DropReason::Loss));
    assert_eq!(dropped(net.send(t(100), B, A, payload(1), 8)), None);
    assert_eq!(net.policy_at(A, B, t(220)), &fixed(77));
    assert!(
        matches!(net.send(t(220), A, B, payload(2), 8), SendOutcome::Scheduled { due, .. } if due == Instant::from_ms(297))
    );
    assert_eq!(dropped(net.send(t(260), A, B, payload(3), 8)), Some(DropReason::Loss));
    assert_eq!(net.policy_at(A, B, t(300)), &fixed(10));
}

/// A grouped override is one fault that acts, on every link it covers, as the one-link
/// overrides it stands for would, in its place in the schedule: the same policy on every
/// link at every time, next to one-link overrides that start before, at the same time
/// and after it.
#[test]
fn a_grouped_override_acts_as_one_override_per_link_it_covers() {
    let list = |names: &[&str]| Nodes::List(names.iter().map(|n| name(n)).collect());
    let one = |from: &str, to: &str, start: u64, end: u64, delay: u64| Fault::LinkOverride {
        start: t(start),
        end: t(end),
        from: name(from).into(),
        to: name(to).into(),
        policy: fixed(delay),
    };
    let cases = [
        (Nodes::All, Nodes::All),
        (list(&["a", "b"]), Nodes::All),
        (Nodes::One(name("c")), list(&["a", "c", "d"])),
        (list(&["b", "b"]), Nodes::One(name("a"))),
        // Listed out of id order.
        (list(&["d", "b", "a"]), Nodes::All),
    ];
    for (from, to) in cases {
        let grouped = Fault::LinkOverride {
            start: t(200),
            end: t(400),
            from: from.clone(),
            to: to.clone(),
            policy: fixed(55),
        };
        let mut expanded = Vec::new();
        for a in nodes().iter().filter(|n| from.contains(n)) {
            for b in nodes().iter().filter(|n| to.contains(n) && *n != a) {
                expanded.push(one(a.as_str(), b.as_str(), 200, 400, 55));
            }
        }
        let around = |middle: Vec<Fault>| -> Vec<Fault> {
            let mut faults = vec![one("a", "b", 100, 500, 11), one("b", "a", 150, 300, 22)];
            faults.extend(middle);
            faults.extend([one("c", "a", 200, 300, 33), one("a", "d", 250, 350, 44)]);
            faults
        };
        let grouped_net = network(fixed(10), around(vec![grouped]));
        let expanded_net = network(fixed(10), around(expanded.clone()));
        let ids = [A, B, C, D];
        for (x, &from_id) in ids.iter().enumerate() {
            for (y, &to_id) in ids.iter().enumerate().filter(|&(y, _)| y != x) {
                for at in (0..=600).step_by(25).map(t) {
                    assert_eq!(
                        grouped_net.policy_at(from_id, to_id, at),
                        expanded_net.policy_at(from_id, to_id, at),
                        "{from}→{to}: link {x}→{y} at {at:?}"
                    );
                }
            }
        }
        // The group does act: every link it stands for has its policy while no later
        // override of that link is active.
        let covered = |a: &str, b: &str| from.contains(&name(a)) && to.contains(&name(b));
        assert_eq!(covered("b", "c"), grouped_net.policy_at(B, C, t(210)) == &fixed(55));
        // Against one-link overrides: it wins over those that started before it (a→b,
        // b→a), and loses to one that starts with it but is later in the schedule (c→a)
        // and to one that starts after it (a→d).
        let expect = |a: &str, b: &str, covered_by: u64, otherwise: u64| {
            if covered(a, b) { covered_by } else { otherwise }
        };
        let policy = |from_id, to_id, at| grouped_net.policy_at(from_id, to_id, t(at));
        assert_eq!(policy(A, B, 250), &fixed(expect("a", "b", 55, 11)));
        assert_eq!(policy(B, A, 210), &fixed(expect("b", "a", 55, 22)));
        assert_eq!(policy(C, A, 250), &fixed(33));
        assert_eq!(policy(A, D, 300), &fixed(44));
        assert_eq!(policy(A, D, 375), &fixed(expect("a", "d", 55, 10)));
        assert_eq!(grouped_net.policy_at(D, D, t(210)), &fixed(10));
    }
}

#[test]
fn node_markers_are_reported_in_time_order_however_the_caller_steps() {
    let faults = vec![
        Fault::Crash { start: t(100), end: t(200), node: name("a") },
        Fault::Pause { start: t(150), end: t(160), node: name("b") },
        Fault::Crash { start: t(200), end: t(300), node: name("a") },
        Fault::ClockSkew { start: t(120), end: t(250), node: name("b"), offset_ms: 40 },
    ];
    let expected = vec![
        (100, A, NodeMarker::Crash),
        (120, B, NodeMarker::ClockChange),
        (150, B, NodeMarker::Pause),
        (160, B, NodeMarker::Resume),
        (200, A, NodeMarker::Restart),
        (200, A, NodeMarker::Crash),
        (250, B, NodeMarker::ClockChange),
        (300, A, NodeMarker::Restart),
    ];
    let simple = |events: Vec<NodeEvent>| -> Vec<(u64, NodeId, NodeMarker)> {
        events.into_iter().map(|e| (e.at.ms, e.node, e.marker)).collect()
    };
    let mut coarse = network(fixed(10), faults.clone());
    assert_eq!(simple(coarse.advance_to(t(1_000))), expected);
    assert!(coarse.advance_to(t(2_000)).is_empty());
    let mut fine = network(fixed(10), faults);
    let mut seen = Vec::new();
    while let Some(at) = fine.next_event_time() {
        seen.extend(simple(fine.advance_to(at)));
    }
    assert_eq!(seen, expected);
    assert_eq!(fine.events(), coarse.events());
}

/// What arrived: (message, copy, arrival ms, payload).
type Arrivals = Vec<(MessageId, u32, u64, Vec<u8>)>;

/// A busy run with every policy knob and fault kind, for determinism tests.
fn busy_run(seed: u64, step_finely: bool) -> (Vec<NetEvent>, Arrivals) {
    let policy = LinkPolicy {
        latency: LatencyDistribution::Spike {
            delay_min: ms(5),
            delay_max: ms(60),
            spike_chance: ratio(1, 20),
            spike_min: ms(100),
            spike_max: ms(400),
        },
        loss: ratio(1, 10),
        duplicate: ratio(1, 10),
        reorder: ratio(1, 10),
        reorder_delay_max: ms(80),
        corrupt: ratio(1, 10),
    };
    let faults = vec![
        Fault::Partition { start: t(200), end: t(400), groups: vec![vec![name("a"), name("b")]] },
        Fault::Hold { start: t(300), end: t(700), from: name("c"), to: name("d") },
        Fault::Flap {
            start: t(0),
            end: t(900),
            a: name("a"),
            b: name("c"),
            period: ms(90),
            down_for: ms(20),
        },
        Fault::Slow { start: t(500), end: t(600), node: name("d"), extra_delay: ms(50) },
    ];
    let mut net = network_seeded(policy, faults, seed);
    let all = [A, B, C, D];
    let mut deliveries = Vec::new();
    let mut record = |batch: Vec<Delivery<Vec<u8>>>| {
        deliveries.extend(batch.into_iter().map(|d| (d.id, d.copy, d.at.ms, d.payload)));
    };
    for i in 0..400u64 {
        let now = t(i * 3);
        if step_finely {
            net.advance_to(now);
            record(net.deliver_due(now));
        }
        let from = all[(i % 4) as usize];
        let to = all[((i / 4 + i + 1) % 4) as usize];
        if from != to {
            net.send(now, from, to, payload(i), 8);
        }
    }
    record(net.deliver_due(t(5_000)));
    (net.take_events(), deliveries)
}

#[test]
fn same_seed_same_decisions_whatever_the_stepping() {
    let (events, deliveries) = busy_run(9, true);
    assert_eq!(busy_run(9, true), (events.clone(), deliveries.clone()));
    assert_ne!(busy_run(10, true).0, events, "another seed decides otherwise");
    // Delivering late does not change any decision or arrival time.
    let (coarse_events, coarse_deliveries) = busy_run(9, false);
    let sorted = |mut list: Arrivals| {
        list.sort();
        list
    };
    assert_eq!(sorted(coarse_deliveries), sorted(deliveries));
    let sent =
        |events: &[NetEvent]| events.iter().filter(|e| matches!(e, NetEvent::Sent { .. })).count();
    assert_eq!(sent(&coarse_events), sent(&events));
    for kind in ["dropped", "duplicated", "corrupted", "held", "released", "delivered"] {
        let count = |events: &[NetEvent]| {
            events.iter().filter(|e| serde_json::to_value(e).unwrap()["event"] == kind).count()
        };
        assert!(count(&events) > 0, "the busy run exercises {kind}");
        assert_eq!(count(&coarse_events), count(&events), "{kind}");
    }
}

#[test]
fn bounds_drop_with_a_reason() {
    let config = NetConfig {
        default_policy: fixed(10),
        in_flight_max: 3,
        held_max: 2,
        ..NetConfig::default()
    };
    let faults = vec![Fault::Hold { start: t(0), end: t(100), from: name("a"), to: name("b") }];
    let schedule = FaultSchedule::new(nodes(), faults).unwrap();
    let mut net: Network<Vec<u8>> = Network::new(config, schedule, Prng::from_seed(1)).unwrap();
    for i in 0..3 {
        assert_eq!(dropped(net.send(t(0), A, B, payload(i), 8)), None);
    }
    assert_eq!(dropped(net.send(t(0), C, D, payload(3), 8)), Some(DropReason::QueueFull));
    assert_eq!(net.in_flight_count(), 3);
    net.advance_to(t(10));
    assert_eq!(net.held_count(), 2);
    assert_eq!(net.in_flight_count(), 2);
    let hold_full =
        NetEvent::Dropped { at: t(10), id: MessageId(2), copy: 0, reason: DropReason::HoldFull };
    assert!(net.events().contains(&hold_full), "{:#?}", net.events());
    // A duplicate that does not fit is dropped alone.
    let mut policy = fixed(10);
    policy.duplicate = Ratio::ONE;
    let config = NetConfig { default_policy: policy, in_flight_max: 1, ..NetConfig::default() };
    let mut net: Network<Vec<u8>> =
        Network::new(config, FaultSchedule::quiet(nodes()).unwrap(), Prng::from_seed(1)).unwrap();
    let outcome = net.send(t(0), A, B, payload(0), 8);
    assert!(matches!(outcome, SendOutcome::Scheduled { duplicate_due: None, .. }));
    let copy_lost =
        NetEvent::Dropped { at: t(0), id: MessageId(0), copy: 1, reason: DropReason::QueueFull };
    assert_eq!(net.events().last(), Some(&copy_lost));
    assert_eq!(net.take_events().len(), 3);
    assert!(net.events().is_empty());
}

#[test]
fn events_swapped_out_leave_the_spare_room_to_the_log() {
    let mut net = network(fixed(10), vec![]);
    net.send(t(0), A, B, payload(0), 8);
    net.send(t(1), A, B, payload(1), 8);
    let logged = net.events().to_vec();
    assert!(logged.len() >= 2, "{logged:?}");
    let mut spare = Vec::with_capacity(64);
    let room = spare.as_ptr();
    net.swap_events(&mut spare);
    assert_eq!(spare, logged, "every event, in order");
    assert!(net.events().is_empty());
    // The next events go into the spare's room.
    net.send(t(2), A, B, payload(2), 8);
    assert!(!net.events().is_empty());
    assert_eq!(net.events().as_ptr(), room);
}

#[test]
#[should_panic(expected = "holds events")]
fn events_are_not_swapped_into_a_spare_that_holds_some() {
    let mut net = network(fixed(10), vec![]);
    net.send(t(0), A, B, payload(0), 8);
    let mut spare = net.events().to_vec();
    net.swap_events(&mut spare);
}

#[test]
fn bad_configurations_are_named() {
    let config = NetConfig { held_max: 0, ..NetConfig::default() };
    let error =
        Network::<Vec<u8>>::new(config, FaultSchedule::quiet(nodes()).unwrap(), Prng::from_seed(1))
            .err()
            .unwrap();
    assert_eq!(error.to_string(), "held_max must be at least 1");
}

#[test]
fn events_are_data() {
    let mut net = network(
        LinkPolicy { corrupt: Ratio::ONE, loss: ratio(1, 2), ..fixed(5) },
        vec![Fault::Hold { start: t(0), end: t(50), from: name("a"), to: name("b") }],
    );
    for i in 0..6 {
        net.send(t(i), A, B, payload(i), 8);
    }
    drain(&mut net);
    let events = net.take_events();
    let lines: Vec<String> = events.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    let back: Vec<NetEvent> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(back, events);
    assert_eq!(lines[0], r#"{"event":"fault_started","at_ms":0,"fault":0}"#);
    assert!(lines.iter().any(|l| l.contains(r#""reason":{"kind":"loss"}"#)), "{lines:#?}");
    let unknown = r#"{"event":"delivered","at_ms":0,"id":0,"copy":0,"extra":1}"#;
    assert!(serde_json::from_str::<NetEvent>(unknown).is_err());
}
