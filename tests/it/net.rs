//! Properties of the network kernel: with no faults every message arrives exactly once and
//! in per-link send order; under random policies and random (possibly invalid) schedules
//! it never panics, keeps its bounds, accounts for every copy it put in flight, agrees
//! with its own `link_state` about every cut and delivery, and decides the same way twice.

use std::collections::BTreeMap;

use mxsim::net::{
    Delivery, DropReason, Fault, FaultSchedule, LatencyDistribution, LinkPolicy, LinkState,
    MessageId, NetConfig, NetEvent, Network, NodeId, NodeName, Nodes, SendOutcome,
};
use mxsim::stdx::{Duration, Instant, Prng, Ratio};
use proptest::prelude::*;

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];

#[derive(Clone, Debug)]
enum Op {
    /// Time passes by `gap_ms`, then `from` sends `len` bytes to `to` (indices modulo the
    /// node count; skipped if they meet).
    Send { from: usize, to: usize, gap_ms: u64, len: usize },
    /// Time passes by `gap_ms`, then the world takes what is due.
    Step { gap_ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..5usize, 0..5usize, 0..40u64, 0..6usize)
            .prop_map(|(from, to, gap_ms, len)| Op::Send { from, to, gap_ms, len }),
        1 => (0..80u64).prop_map(|gap_ms| Op::Step { gap_ms }),
    ]
}

fn latency() -> impl Strategy<Value = LatencyDistribution> {
    prop_oneof![
        (0..60u64).prop_map(LatencyDistribution::fixed_ms),
        (0..60u64, 0..60u64).prop_map(|(x, y)| LatencyDistribution::uniform_ms(x.min(y), x.max(y))),
        (0..30u64, 0..30u64, 0..=4u64, 0..200u64, 0..200u64).prop_map(|(x, y, chance, s, u)| {
            LatencyDistribution::Spike {
                delay_min: Duration::from_ms(x.min(y)),
                delay_max: Duration::from_ms(x.max(y)),
                spike_chance: Ratio::new(chance, 4).unwrap(),
                spike_min: Duration::from_ms(s.min(u)),
                spike_max: Duration::from_ms(s.max(u)),
            }
        }),
    ]
}

/// A chance in eighths, often zero.
fn chance() -> impl Strategy<Value = Ratio> {
    prop_oneof![Just(Ratio::ZERO), (0..=8u64).prop_map(|n| Ratio::new(n, 8).unwrap())]
}

fn policy() -> impl Strategy<Value = LinkPolicy> {
    (latency(), chance(), chance(), chance(), 1..100u64, chance()).prop_map(
        |(latency, loss, duplicate, reorder, reorder_ms, corrupt)| LinkPolicy {
            latency,
            loss,
            duplicate,
            reorder,
            reorder_delay_max: Duration::from_ms(reorder_ms),
            corrupt,
        },
    )
}

fn name(i: usize) -> NodeName {
    NodeName::new(NAMES[i]).unwrap()
}

/// Faults over `node_count` nodes, now and then naming an unknown node or going backwards
/// in time: the schedule keeps only those that validate.
fn fault(node_count: usize) -> impl Strategy<Value = Fault> {
    // Mostly times in tenths of a second, so that faults often start and end together.
    let span = prop_oneof![
        3 => (0..20u64, 0..10u64).prop_map(|(start, length)| (start * 100, (start + length) * 100)),
        1 => (0..2_000u64, 0..1_000u64).prop_map(|(start, length)| (start, start + length)),
    ]
    .prop_map(|(start, end)| (Instant::from_ms(start), Instant::from_ms(end)));
    let node = prop_oneof![19 => 0..node_count, 1 => Just(NAMES.len())].boxed();
    let name_of = |i: usize| NodeName::new(NAMES.get(i).copied().unwrap_or("zz")).unwrap();
    // A link override's ends: one node, a list (`Some`), or every node (`None`).
    let ends = |node: BoxedStrategy<usize>| {
        prop_oneof![
            3 => node.clone().prop_map(|i| Some(vec![i])),
            1 => prop::collection::vec(node, 1..4).prop_map(Some),
            1 => Just(None),
        ]
    };
    let nodes_of = move |ends: Option<Vec<usize>>| match ends {
        None => Nodes::All,
        Some(list) if list.len() == 1 => Nodes::One(name_of(list[0])),
        Some(list) => Nodes::List(list.into_iter().map(name_of).collect()),
    };
    prop_oneof![
        (span.clone(), prop::collection::vec(prop::collection::vec(node.clone(), 1..3), 1..3))
            .prop_map(move |((start, end), groups)| Fault::Partition {
                start,
                end,
                groups: groups.into_iter().map(|g| g.into_iter().map(name_of).collect()).collect(),
            }),
        (span.clone(), node.clone(), node.clone()).prop_map(move |((start, end), f, t)| {
            Fault::OneWay { start, end, from: name_of(f), to: name_of(t) }
        }),
        (span.clone(), node.clone(), node.clone()).prop_map(move |((start, end), f, t)| {
            Fault::Hold { start, end, from: name_of(f), to: name_of(t) }
        }),
        (span.clone(), node.clone(), node.clone(), 0..100u64, 0..100u64).prop_map(
            move |((start, end), a, b, period, down_for)| Fault::Flap {
                start,
                end,
                a: name_of(a),
                b: name_of(b),
                period: Duration::from_ms(period),
                down_for: Duration::from_ms(down_for),
            }
        ),
        (span.clone(), ends(node.clone()), ends(node.clone()), policy()).prop_map(
            move |((start, end), from, to, policy)| Fault::LinkOverride {
                start,
                end,
                from: nodes_of(from),
                to: nodes_of(to),
                policy,
            }
        ),
        (span.clone(), node.clone(), -1_000..1_000i64).prop_map(
            move |((start, end), n, offset_ms)| {
                Fault::ClockSkew { start, end, node: name_of(n), offset_ms }
            }
        ),
        (span.clone(), node.clone(), 0..200u64).prop_map(move |((start, end), n, extra)| {
            Fault::Slow { start, end, node: name_of(n), extra_delay: Duration::from_ms(extra) }
        }),
        (span.clone(), node.clone(), any::<bool>()).prop_map(move |((start, end), n, crash)| {
            if crash {
                Fault::Crash { start, end, node: name_of(n) }
            } else {
                Fault::Pause { start, end, node: name_of(n) }
            }
        }),
        // Backwards in time: always invalid.
        (span, node.clone(), node).prop_map(move |((start, end), f, t)| Fault::OneWay {
            start: end + Duration::from_ms(1),
            end: start,
            from: name_of(f),
            to: name_of(t),
        }),
    ]
}

/// The valid faults of `faults`, each added only if the schedule still validates.
fn valid_schedule(node_count: usize, faults: Vec<Fault>) -> FaultSchedule {
    let nodes: Vec<NodeName> = (0..node_count).map(name).collect();
    let mut kept = Vec::new();
    for fault in faults {
        kept.push(fault);
        if FaultSchedule::new(nodes.clone(), kept.clone()).is_err() {
            kept.pop();
        }
    }
    FaultSchedule::new(nodes, kept).unwrap()
}

struct Run {
    events: Vec<NetEvent>,
    deliveries: Vec<Delivery<Vec<u8>>>,
    /// (id, from, to, payload as sent) of every send.
    sends: Vec<(MessageId, NodeId, NodeId, Vec<u8>)>,
    outcomes: Vec<SendOutcome>,
}

/// Plays `ops` against a network, checking the bounds and the agreement of decisions
/// with `link_state` as it goes, then steps through to quiet.
fn play(config: NetConfig, schedule: FaultSchedule, seed: u64, ops: &[Op]) -> Run {
    let node_count = schedule.nodes().len();
    let healed_at = schedule.healed_at();
    let mut net: Network<Vec<u8>> =
        Network::new(config.clone(), schedule, Prng::from_seed(seed).fork("net")).unwrap();
    let mut run =
        Run { events: Vec::new(), deliveries: Vec::new(), sends: Vec::new(), outcomes: Vec::new() };
    let mut now = Instant::ZERO;
    let mut links = BTreeMap::new();
    let mut take = |net: &mut Network<Vec<u8>>, now: Instant, run: &mut Run| {
        net.advance_to(now);
        run.deliveries.extend(net.deliver_due(now));
        let events = net.take_events();
        check_decisions(net, &mut links, &events);
        run.events.extend(events);
        assert!(net.in_flight_count() as u64 <= config.in_flight_max);
        assert!(net.held_count() as u64 <= config.held_max);
    };
    for op in ops {
        match *op {
            Op::Send { from, to, gap_ms, len } => {
                now = now + Duration::from_ms(gap_ms);
                let (from, to) = (from % node_count, to % node_count);
                if from == to {
                    continue;
                }
                let (from, to) = (NodeId(from as u32), NodeId(to as u32));
                let payload: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
                let outcome = net.send(now, from, to, payload.clone(), len as u64);
                let id = match outcome {
                    SendOutcome::Dropped { id, .. } | SendOutcome::Scheduled { id, .. } => id,
                };
                run.sends.push((id, from, to, payload));
                run.outcomes.push(outcome);
                assert!(net.in_flight_count() as u64 <= config.in_flight_max);
            }
            Op::Step { gap_ms } => {
                now = now + Duration::from_ms(gap_ms);
                take(&mut net, now, &mut run);
            }
        }
    }
    for _ in 0..100_000 {
        match net.next_event_time() {
            Some(at) => {
                assert!(at >= net.now());
                take(&mut net, at, &mut run);
            }
            None => {
                let last = now.max(net.now());
                take(&mut net, last, &mut run);
                assert_eq!(net.in_flight_count(), 0, "quiet means empty");
                assert!(net.now() >= healed_at || net.next_fault_time().is_none());
                return run;
            }
        }
    }
    panic!("the network never went quiet");
}

/// Every delivery happened on a link that was up then; every cut or hold on a link that
/// `link_state` says was cut or held then, for the same reason. `links` remembers the
/// link of every message sent so far.
fn check_decisions(
    net: &Network<Vec<u8>>,
    links: &mut BTreeMap<MessageId, (NodeId, NodeId)>,
    events: &[NetEvent],
) {
    for event in events {
        let (at, id, expected) = match *event {
            NetEvent::Sent { id, from, to, .. } => {
                links.insert(id, (from, to));
                continue;
            }
            NetEvent::Delivered { at, id, .. } => (at, id, LinkState::Up),
            NetEvent::Held { at, id, fault, .. } => (at, id, LinkState::Held { fault }),
            NetEvent::Dropped { at, id, reason, .. } => match reason {
                DropReason::Partition { .. }
                | DropReason::OneWay { .. }
                | DropReason::Flap { .. } => (at, id, LinkState::Cut(reason)),
                DropReason::Loss | DropReason::QueueFull | DropReason::HoldFull => continue,
            },
            _ => continue,
        };
        let (from, to) = links[&id];
        assert_eq!(net.link_state(from, to, at), expected, "{event:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn without_faults_every_message_arrives_once_in_link_order(
        node_count in 2..=5usize,
        latency in latency(),
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 0..200),
    ) {
        let config = NetConfig { default_policy: LinkPolicy::ideal(latency), ..NetConfig::default() };
        let schedule = FaultSchedule::quiet((0..node_count).map(name).collect()).unwrap();
        let run = play(config, schedule, seed, &ops);
        prop_assert_eq!(run.deliveries.len(), run.sends.len());
        let mut arrived = BTreeMap::new();
        for delivery in &run.deliveries {
            prop_assert_eq!(delivery.copy, 0);
            prop_assert!(arrived.insert(delivery.id, delivery).is_none(), "delivered twice");
        }
        for ((id, from, to, payload), outcome) in run.sends.iter().zip(&run.outcomes) {
            let delivery = arrived[id];
            prop_assert_eq!((delivery.from, delivery.to), (*from, *to));
            prop_assert_eq!(&delivery.payload, payload);
            let SendOutcome::Scheduled { due, reordered: false, corrupted: None, duplicate_due: None, .. } = *outcome else {
                panic!("unexpected outcome {outcome:?}");
            };
            prop_assert_eq!(delivery.at, due);
            prop_assert!(delivery.at >= delivery.sent_at);
        }
        // Per link, arrival order is send order (ids grow with sends).
        let mut last: BTreeMap<(NodeId, NodeId), MessageId> = BTreeMap::new();
        for delivery in &run.deliveries {
            if let Some(previous) = last.insert((delivery.from, delivery.to), delivery.id) {
                prop_assert!(previous < delivery.id, "{previous:?} arrived after {:?}", delivery.id);
            }
        }
    }

    #[test]
    fn random_faults_never_break_the_kernel(
        (node_count, faults) in (2..=5usize).prop_flat_map(|n| {
            (Just(n), prop::collection::vec(fault(n), 0..12))
        }),
        policy in policy(),
        limits in (1..40u64, 1..10u64),
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 0..200),
    ) {
        let schedule = valid_schedule(node_count, faults);
        let config = NetConfig {
            default_policy: policy,
            in_flight_max: limits.0,
            held_max: limits.1,
            ..NetConfig::default()
        };
        let run = play(config.clone(), schedule.clone(), seed, &ops);
        // Every copy put in flight ends exactly once, delivered or dropped.
        let mut open: BTreeMap<(MessageId, u32), u32> = BTreeMap::new();
        let mut ended: BTreeMap<(MessageId, u32), u32> = BTreeMap::new();
        for event in &run.events {
            match *event {
                NetEvent::Scheduled { id, copy, .. } => *open.entry((id, copy)).or_default() += 1,
                NetEvent::Delivered { id, copy, .. } | NetEvent::Dropped { id, copy, .. } => {
                    *ended.entry((id, copy)).or_default() += 1
                }
                _ => {}
            }
        }
        prop_assert!(open.values().all(|&n| n == 1));
        for (key, count) in &ended {
            prop_assert_eq!(*count, 1, "{:?} ended {} times", key, count);
        }
        let dropped_at_send = ended.keys().filter(|key| !open.contains_key(key)).count();
        prop_assert_eq!(open.len() + dropped_at_send, ended.len());
        prop_assert!(open.keys().all(|key| ended.contains_key(key)), "a copy never ended");
        let delivered = run.events.iter().filter(|e| matches!(e, NetEvent::Delivered { .. })).count();
        prop_assert_eq!(delivered, run.deliveries.len());
        // Same inputs, same decisions.
        let again = play(config, schedule, seed, &ops);
        prop_assert_eq!(again.events, run.events);
    }
}
