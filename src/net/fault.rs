//! The fault schedule: faults as explicit data with start and end times, so that a
//! schedule can be written by hand, generated from a seed, recorded in a trace and shrunk.
//!
//! Every fault is active on the half-open interval `[start, end)` of virtual time. A
//! [`FaultSchedule`] is validated against the run's node list and kept sorted by start
//! (stably, so faults with equal starts keep their written order); fault indices in
//! events and drop reasons refer to that sorted order.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::net::policy::{DELAY_MAX, LinkPolicy, PolicyError};
use crate::stdx::{Duration, Instant};

mod nodes;

pub use nodes::Nodes;

/// Most nodes in a run.
pub const NODES_MAX: usize = 10_000;
/// Most faults in a schedule.
pub const FAULTS_MAX: usize = 10_000;
/// Longest node name, in bytes.
pub const NODE_NAME_BYTES_MAX: usize = 255;
/// Latest fault time: about 100 years of virtual milliseconds. A fault meant to last the
/// whole run can end here.
pub const TIME_MAX: Instant = Instant { ms: 3_155_760_000_000 };
/// Largest clock skew either way: about 10 years of milliseconds.
pub const SKEW_MS_MAX: i64 = 315_576_000_000;

/// A node's name: 1 to 255 bytes, no whitespace or control characters. The network does
/// not know what a node is; the world uses server names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeName(String);

/// Why a string is not a node name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad node name {name:?}: {reason}")]
pub struct NodeNameError {
    pub name: String,
    pub reason: &'static str,
}

impl NodeName {
    pub fn new(name: &str) -> Result<NodeName, NodeNameError> {
        let bad = |reason| Err(NodeNameError { name: name.to_owned(), reason });
        if name.is_empty() {
            return bad("empty");
        }
        if name.len() > NODE_NAME_BYTES_MAX {
            return bad("longer than 255 bytes");
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("contains whitespace or a control character");
        }
        if name == "*" {
            return bad("`*` (every node) stands alone, and only as a link_override's from or to");
        }
        Ok(NodeName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeName {
    type Error = NodeNameError;
    fn try_from(name: String) -> Result<NodeName, NodeNameError> {
        NodeName::new(&name)
    }
}

impl From<NodeName> for String {
    fn from(name: NodeName) -> String {
        name.0
    }
}

/// Lets maps keyed by `NodeName` be searched with a `&str` (the derived order is the
/// string's).
impl Borrow<str> for NodeName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One fault, active on `[start, end)`. In scenario files:
/// `{ type = "one_way", start_ms = 1000, end_ms = 5000, from = "hs1", to = "hs2" }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Nodes in different groups cannot talk, either way. Nodes listed in no group form
    /// one more group together: `groups = [["hs1"]]` cuts hs1 off from everyone else,
    /// who still talk among themselves.
    Partition {
        #[serde(rename = "start_ms", with = "crate::net::serde_util::ms")]
        start: Instant,
        #[serde(rename = "end_ms", with = "crate::net::serde_util::ms")]
        end: Instant,
        groups: Vec<Vec<NodeName>>,
    },
    /// Messages from `from` to `to` are lost; the other direction works.
    OneWay {
        #[serde(rename = "start_ms", with = "crate::net::serde_util::ms")]
        start: Instant,
        #[serde(rename = "end_ms", with = "crate::net::serde_util::ms")]
        end: Instant,
        from: NodeName,
        to: NodeName,
    },
    /// Messages from `from` to `to` that come due are held, not dropped, and released in
    /// order when no hold on the link is active any more.
    Hold {
        #[serde(rename = "start_ms", with = "crate::net::serde_util::ms")]
        start: Instant,
        #[serde(rename = "end_ms", with = "crate::net::serde_util::ms")]
        end: Instant,
        from: NodeName,
        to: NodeName,
    },
    /// The link between `a` and `b` (both ways) is down for the first `down_for` of every
    /// `period`, counted from `start`.
    Flap {
        #[serde(rename = "start_ms", with = "crate::net::serde_util::ms")]
        start: Instant,
        #[serde(rename = "end_ms", with = "crate::net::serde_util::ms")]
        end: Instant,
        a: NodeName,
        b: NodeName,
        #[serde(rename = "period_ms", with = "crate::net::serde_util::ms")]
        period: Duration,
        #[serde(rename = "down_for_ms", with = "crate::net::serde_util::ms")]
        down_for: Duration,
    },
    /// Messages sent from a node of `from` to another node of `to` use `policy` instead
    /// of the default: one fault that acts on every directed link between the two ends
    /// (a node's link to itself left out) as a one-link override in its place would. If several overrides of one link are active, the one
    /// that started last wins (on equal starts, the later one in the schedule).
    LinkOverride {
        #[serde(rename = "start_ms", with = "crate::net::serde_util::ms")]
        start: Instant,
        #[serde(rename = "end_ms", with = "crate::net::serde_util::ms")]
        end: Instant,
        from: Nodes,
        to: Nodes,
        policy: LinkPolicy,
    },
    /// The node's clock (`Network::node_clock`) is off by `offset_ms`. Overlapping skews
    /// of one node add up. The network reports its start and end (`NodeMarker::ClockChange`)
    /// for the world to hand the node its new offset.
    ClockSkew {
        #[serde(rename = "start_ms", with = "crate::net::serde_util::ms")]
        start: Instant,
        #[serde(rename = "end_ms", with = "crate::net::serde_util::ms")]
        end: Instant,
        node: NodeName,
        offset_ms: i64,
    },
    /// Every message sent from or to the node takes `extra_delay` longer (twice if both
    /// ends are slow). Overlapping slow faults of one node add up.
    Slow {
        #[serde(rename = "start_ms", with = "crate::net::serde_util::ms")]
        start: Instant,
        #[serde(rename = "end_ms", with = "crate::net::serde_util::ms")]
        end: Instant,
        node: NodeName,
        #[serde(rename = "extra_delay_ms", with = "crate::net::serde_util::ms")]
        extra_delay: Duration,
    },
    /// The node crashes at `start` and restarts at `end`. The network only reports this
    /// (`NodeMarker::Crash`, `NodeMarker::Restart`); the world executes it.
    Crash {
        #[serde(rename = "start_ms", with = "crate::net::serde_util::ms")]
        start: Instant,
        #[serde(rename = "end_ms", with = "crate::net::serde_util::ms")]
        end: Instant,
        node: NodeName,
    },
    /// The node is paused from `start` to `end`. Reported, not executed, like `Crash`.
    Pause {
        #[serde(rename = "start_ms", with = "crate::net::serde_util::ms")]
        start: Instant,
        #[serde(rename = "end_ms", with = "crate::net::serde_util::ms")]
        end: Instant,
        node: NodeName,
    },
}

impl Fault {
    pub fn start(&self) -> Instant {
        self.interval().0
    }

    pub fn end(&self) -> Instant {
        self.interval().1
    }

    /// Whether the fault is active at `at`: `start <= at < end`.
    pub fn is_active(&self, at: Instant) -> bool {
        let (start, end) = self.interval();
        start <= at && at < end
    }

    /// The name used in scenario files (`type = "…"`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::OneWay { .. } => "one_way",
            Fault::Hold { .. } => "hold",
            Fault::Flap { .. } => "flap",
            Fault::LinkOverride { .. } => "link_override",
            Fault::ClockSkew { .. } => "clock_skew",
            Fault::Slow { .. } => "slow",
            Fault::Crash { .. } => "crash",
            Fault::Pause { .. } => "pause",
        }
    }

    fn interval(&self) -> (Instant, Instant) {
        match *self {
            Fault::Partition { start, end, .. }
            | Fault::OneWay { start, end, .. }
            | Fault::Hold { start, end, .. }
            | Fault::Flap { start, end, .. }
            | Fault::LinkOverride { start, end, .. }
            | Fault::ClockSkew { start, end, .. }
            | Fault::Slow { start, end, .. }
            | Fault::Crash { start, end, .. }
            | Fault::Pause { start, end, .. } => (start, end),
        }
    }

    /// The checks of one fault that need no other fault.
    fn check(&self, known: &BTreeSet<&NodeName>) -> Result<(), ScheduleProblem> {
        let (start, end) = self.interval();
        if end < start {
            return Err(ScheduleProblem::EndBeforeStart { start: start.ms, end: end.ms });
        }
        if end > TIME_MAX {
            return Err(ScheduleProblem::TimeTooLarge { ms: end.ms, max: TIME_MAX.ms });
        }
        let node = |name: &NodeName| {
            if known.contains(name) {
                Ok(())
            } else {
                Err(ScheduleProblem::UnknownNode { name: name.clone() })
            }
        };
        let link = |from: &NodeName, to: &NodeName| {
            node(from)?;
            node(to)?;
            if from == to {
                return Err(ScheduleProblem::SelfLink { node: from.clone() });
            }
            Ok(())
        };
        match self {
            Fault::Partition { groups, .. } => {
                if groups.is_empty() {
                    return Err(ScheduleProblem::NoGroups);
                }
                let mut seen = BTreeSet::new();
                for (number, group) in groups.iter().enumerate() {
                    if group.is_empty() {
                        return Err(ScheduleProblem::EmptyGroup { group: number });
                    }
                    for name in group {
                        node(name)?;
                        if !seen.insert(name) {
                            return Err(ScheduleProblem::NodeInTwoGroups { name: name.clone() });
                        }
                    }
                }
                Ok(())
            }
            Fault::OneWay { from, to, .. } | Fault::Hold { from, to, .. } => link(from, to),
            Fault::Flap { a, b, period, down_for, .. } => {
                link(a, b)?;
                if down_for.ms == 0 || down_for >= period || *period > DELAY_MAX {
                    return Err(ScheduleProblem::FlapShape {
                        period: period.ms,
                        down_for: down_for.ms,
                    });
                }
                Ok(())
            }
            Fault::LinkOverride { from, to, policy, .. } => {
                if let (Nodes::One(from), Nodes::One(to)) = (from, to) {
                    link(from, to)?;
                } else {
                    from.listed().iter().chain(to.listed()).try_for_each(node)?;
                    // The ends as sets: no link between them if both are one same node.
                    fn set<'a>(
                        ends: &'a Nodes,
                        known: &BTreeSet<&'a NodeName>,
                    ) -> BTreeSet<&'a NodeName> {
                        match ends {
                            Nodes::All => known.clone(),
                            _ => ends.listed().iter().collect(),
                        }
                    }
                    let (from, to) = (set(from, known), set(to, known));
                    if from.is_empty() || to.is_empty() || (from.len() == 1 && from == to) {
                        return Err(ScheduleProblem::NoLink);
                    }
                }
                policy.check().map_err(ScheduleProblem::Policy)
            }
            Fault::ClockSkew { node: name, offset_ms, .. } => {
                node(name)?;
                if offset_ms.unsigned_abs() > SKEW_MS_MAX.unsigned_abs() {
                    return Err(ScheduleProblem::SkewTooLarge {
                        offset_ms: *offset_ms,
                        max: SKEW_MS_MAX,
                    });
                }
                Ok(())
            }
            Fault::Slow { node: name, extra_delay, .. } => {
                node(name)?;
                if *extra_delay > DELAY_MAX {
                    return Err(ScheduleProblem::Policy(PolicyError::DelayTooLarge {
                        field: "extra_delay_ms",
                        ms: extra_delay.ms,
                        max: DELAY_MAX.ms,
                    }));
                }
                Ok(())
            }
            Fault::Crash { node: name, .. } | Fault::Pause { node: name, .. } => {
                node(name)?;
                if end == start {
                    return Err(ScheduleProblem::EmptyNodeFault);
                }
                Ok(())
            }
        }
    }
}

/// What is wrong with a schedule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleProblem {
    #[error("{count} nodes, more than the limit of {max}")]
    TooManyNodes { count: usize, max: usize },
    #[error("node {name} is listed twice")]
    DuplicateNode { name: NodeName },
    #[error("{count} faults, more than the limit of {max}")]
    TooManyFaults { count: usize, max: usize },
    #[error("end_ms ({end}) is before start_ms ({start})")]
    EndBeforeStart { start: u64, end: u64 },
    #[error("end_ms ({ms}) is after the latest allowed time ({max})")]
    TimeTooLarge { ms: u64, max: u64 },
    #[error("node {name} is not one of the run's nodes")]
    UnknownNode { name: NodeName },
    #[error("the link goes from {node} to itself")]
    SelfLink { node: NodeName },
    #[error("no link between `from` and `to`: both are the same one node, or no node")]
    NoLink,
    #[error("a partition needs at least one group")]
    NoGroups,
    #[error("group {group} is empty")]
    EmptyGroup { group: usize },
    #[error("node {name} is in two groups")]
    NodeInTwoGroups { name: NodeName },
    #[error(
        "down_for_ms ({down_for}) must be at least 1 and less than period_ms ({period}), which is at most one day"
    )]
    FlapShape { period: u64, down_for: u64 },
    #[error("offset_ms ({offset_ms}) is beyond ±{max}")]
    SkewTooLarge { offset_ms: i64, max: i64 },
    #[error("a crash or pause must last at least 1 ms (end_ms > start_ms)")]
    EmptyNodeFault,
    #[error("node {node} is already crashed or paused then, by fault {other} (as written)")]
    NodeFaultsOverlap { node: NodeName, other: usize },
    #[error(transparent)]
    Policy(PolicyError),
}

/// A schedule that failed validation: which fault (its index as written, before sorting)
/// and why. `fault` is `None` for problems with the node list or the schedule's size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ScheduleError {
    pub fault: Option<FaultRef>,
    pub problem: ScheduleProblem,
}

/// Names a fault in an error: its index as written, its type and start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRef {
    pub index: usize,
    pub kind: &'static str,
    pub start: Instant,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fault {
            Some(at) => write!(
                f,
                "fault {} ({} from {} ms): {}",
                at.index, at.kind, at.start.ms, self.problem
            ),
            None => write!(f, "fault schedule: {}", self.problem),
        }
    }
}

/// A validated fault schedule: the run's nodes and its faults sorted by start.
///
/// Deserializing one validates it (`{ "nodes": [...], "faults": [...] }`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedSchedule")]
pub struct FaultSchedule {
    nodes: Vec<NodeName>,
    faults: Vec<Fault>,
}

/// The written form of a schedule, before validation.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UncheckedSchedule {
    pub nodes: Vec<NodeName>,
    #[serde(default)]
    pub faults: Vec<Fault>,
}

impl TryFrom<UncheckedSchedule> for FaultSchedule {
    type Error = ScheduleError;
    fn try_from(unchecked: UncheckedSchedule) -> Result<FaultSchedule, ScheduleError> {
        FaultSchedule::new(unchecked.nodes, unchecked.faults)
    }
}

impl FaultSchedule {
    /// Validates `faults` against `nodes` and sorts them by start (stably). Errors name
    /// faults by their index in `faults` as given.
    pub fn new(nodes: Vec<NodeName>, faults: Vec<Fault>) -> Result<FaultSchedule, ScheduleError> {
        let whole = |problem| ScheduleError { fault: None, problem };
        if nodes.len() > NODES_MAX {
            return Err(whole(ScheduleProblem::TooManyNodes {
                count: nodes.len(),
                max: NODES_MAX,
            }));
        }
        let mut known = BTreeSet::new();
        for name in &nodes {
            if !known.insert(name) {
                return Err(whole(ScheduleProblem::DuplicateNode { name: name.clone() }));
            }
        }
        if faults.len() > FAULTS_MAX {
            return Err(whole(ScheduleProblem::TooManyFaults {
                count: faults.len(),
                max: FAULTS_MAX,
            }));
        }
        let at = |index: usize| FaultRef {
            index,
            kind: faults[index].kind_name(),
            start: faults[index].start(),
        };
        for (index, fault) in faults.iter().enumerate() {
            fault
                .check(&known)
                .map_err(|problem| ScheduleError { fault: Some(at(index)), problem })?;
        }
        // A node is crashed or paused by at most one fault at a time, so that the world
        // never sees a restart of a running node or a crash of a crashed one.
        let mut down: BTreeMap<&NodeName, Vec<(Instant, usize)>> = BTreeMap::new();
        for (index, fault) in faults.iter().enumerate() {
            if let Fault::Crash { node, start, .. } | Fault::Pause { node, start, .. } = fault {
                down.entry(node).or_default().push((*start, index));
            }
        }
        for (node, mut spans) in down {
            spans.sort();
            for pair in spans.windows(2) {
                let (earlier, later) = (pair[0].1, pair[1].1);
                if faults[earlier].end() > faults[later].start() {
                    let index = earlier.max(later);
                    return Err(ScheduleError {
                        fault: Some(at(index)),
                        problem: ScheduleProblem::NodeFaultsOverlap {
                            node: node.clone(),
                            other: earlier.min(later),
                        },
                    });
                }
            }
        }
        let mut faults = faults;
        faults.sort_by_key(Fault::start);
        assert!(faults.windows(2).all(|w| w[0].start() <= w[1].start()));
        Ok(FaultSchedule { nodes, faults })
    }

    /// No faults at all.
    pub fn quiet(nodes: Vec<NodeName>) -> Result<FaultSchedule, ScheduleError> {
        FaultSchedule::new(nodes, Vec::new())
    }

    pub fn nodes(&self) -> &[NodeName] {
        &self.nodes
    }

    /// The faults, sorted by start.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// When the last fault ends (time zero if there are none): from then on the network
    /// applies only its default policy.
    pub fn healed_at(&self) -> Instant {
        self.faults.iter().map(Fault::end).max().unwrap_or(Instant::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::policy::LatencyDistribution;

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

    /// Validates `faults` over nodes a to d and returns the error message.
    fn schedule_error(faults: Vec<Fault>) -> String {
        FaultSchedule::new(nodes(), faults).unwrap_err().to_string()
    }

    fn one_way(start: u64, end: u64, from: &str, to: &str) -> Fault {
        Fault::OneWay { start: t(start), end: t(end), from: name(from), to: name(to) }
    }

    fn link_override(from: Nodes, to: Nodes) -> Fault {
        let policy = LinkPolicy::ideal(LatencyDistribution::fixed_ms(1));
        Fault::LinkOverride { start: t(0), end: t(1), from, to, policy }
    }

    /// Each schedule over nodes a to d is rejected with the expected message.
    fn check_rejections(cases: Vec<(Vec<Fault>, &str)>) {
        for (faults, expected) in cases {
            assert_eq!(schedule_error(faults), expected);
        }
    }

    #[test]
    fn invalid_one_way_faults_say_which_fault_and_why() {
        check_rejections(vec![
            (
                vec![one_way(0, 10, "a", "b"), one_way(50, 40, "a", "b")],
                "fault 1 (one_way from 50 ms): end_ms (40) is before start_ms (50)",
            ),
            (
                vec![one_way(0, 10, "a", "x")],
                "fault 0 (one_way from 0 ms): node x is not one of the run's nodes",
            ),
            (
                vec![one_way(0, 10, "a", "a")],
                "fault 0 (one_way from 0 ms): the link goes from a to itself",
            ),
            (
                vec![one_way(0, TIME_MAX.ms + 1, "a", "b")],
                "fault 0 (one_way from 0 ms): end_ms (3155760000001) is after the latest allowed time (3155760000000)",
            ),
        ]);
    }

    #[test]
    fn invalid_partitions_say_which_fault_and_why() {
        check_rejections(vec![
            (
                vec![Fault::Partition { start: t(0), end: t(1), groups: vec![] }],
                "fault 0 (partition from 0 ms): a partition needs at least one group",
            ),
            (
                vec![Fault::Partition {
                    start: t(0),
                    end: t(1),
                    groups: vec![vec![name("a")], vec![]],
                }],
                "fault 0 (partition from 0 ms): group 1 is empty",
            ),
            (
                vec![Fault::Partition {
                    start: t(0),
                    end: t(1),
                    groups: vec![vec![name("a")], vec![name("b"), name("a")]],
                }],
                "fault 0 (partition from 0 ms): node a is in two groups",
            ),
        ]);
    }

    #[test]
    fn invalid_flaps_and_link_overrides_say_which_fault_and_why() {
        check_rejections(vec![
            (
                vec![Fault::Flap {
                    start: t(0),
                    end: t(1),
                    a: name("a"),
                    b: name("b"),
                    period: ms(10),
                    down_for: ms(10),
                }],
                "fault 0 (flap from 0 ms): down_for_ms (10) must be at least 1 and less than period_ms (10), which is at most one day",
            ),
            (
                vec![Fault::LinkOverride {
                    start: t(0),
                    end: t(1),
                    from: name("a").into(),
                    to: name("b").into(),
                    policy: LinkPolicy::ideal(LatencyDistribution::uniform_ms(9, 3)),
                }],
                "fault 0 (link_override from 0 ms): latency delay_ms_min (9) is above delay_ms_max (3)",
            ),
            (
                vec![link_override(Nodes::List(vec![name("a"), name("x")]), Nodes::All)],
                "fault 0 (link_override from 0 ms): node x is not one of the run's nodes",
            ),
            (
                vec![link_override(Nodes::List(vec![name("b"), name("b")]), name("b").into())],
                "fault 0 (link_override from 0 ms): no link between `from` and `to`: both are the same one node, or no node",
            ),
            (
                vec![link_override(name("c").into(), name("c").into())],
                "fault 0 (link_override from 0 ms): the link goes from c to itself",
            ),
        ]);
    }

    #[test]
    fn invalid_node_faults_say_which_fault_and_why() {
        check_rejections(vec![
            (
                vec![Fault::ClockSkew {
                    start: t(0),
                    end: t(1),
                    node: name("a"),
                    offset_ms: -400_000_000_000,
                }],
                "fault 0 (clock_skew from 0 ms): offset_ms (-400000000000) is beyond ±315576000000",
            ),
            (
                vec![Fault::Slow {
                    start: t(0),
                    end: t(1),
                    node: name("a"),
                    extra_delay: ms(90_000_000),
                }],
                "fault 0 (slow from 0 ms): extra_delay_ms is 90000000 ms, above the limit of 86400000 ms (one day)",
            ),
            (
                vec![Fault::Crash { start: t(5), end: t(5), node: name("a") }],
                "fault 0 (crash from 5 ms): a crash or pause must last at least 1 ms (end_ms > start_ms)",
            ),
            (
                vec![
                    Fault::Pause { start: t(50), end: t(60), node: name("a") },
                    Fault::Crash { start: t(0), end: t(51), node: name("a") },
                ],
                "fault 1 (crash from 0 ms): node a is already crashed or paused then, by fault 0 (as written)",
            ),
        ]);
    }

    #[test]
    fn invalid_node_lists_and_fault_counts_say_why() {
        let twice = FaultSchedule::new(vec![name("a"), name("a")], Vec::new()).unwrap_err();
        assert_eq!(twice.to_string(), "fault schedule: node a is listed twice");
        let many = vec![one_way(0, 1, "a", "b"); FAULTS_MAX + 1];
        assert_eq!(
            schedule_error(many),
            "fault schedule: 10001 faults, more than the limit of 10000"
        );
        assert!(NodeName::new("").is_err());
        assert!(NodeName::new("hs 1").is_err());
        assert!(NodeName::new("*").is_err(), "`*` stands for every node in a link override");
        assert!(NodeName::new(&"x".repeat(256)).is_err());
        assert!(NodeName::new("[::1]:8448").is_ok());
    }

    #[test]
    fn touching_node_faults_and_empty_link_faults_are_valid_and_come_out_sorted() {
        let schedule = FaultSchedule::new(
            nodes(),
            vec![
                Fault::Crash { start: t(10), end: t(20), node: name("a") },
                Fault::Crash { start: t(0), end: t(10), node: name("a") },
                one_way(5, 5, "a", "b"),
            ],
        )
        .unwrap();
        let starts: Vec<u64> = schedule.faults().iter().map(|f| f.start().ms).collect();
        assert_eq!(starts, vec![0, 5, 10]);
        assert_eq!(schedule.healed_at(), t(20));
    }

    #[test]
    fn schedules_are_data_and_deserializing_validates() {
        let text = r#"{
            "nodes": ["a", "b", "c", "d"],
            "faults": [
                {"type": "hold", "start_ms": 10, "end_ms": 20, "from": "a", "to": "b"},
                {"type": "partition", "start_ms": 0, "end_ms": 5, "groups": [["a"], ["b", "c"]]},
                {"type": "link_override", "start_ms": 0, "end_ms": 5, "from": "c", "to": "d",
                 "policy": {"latency": {"kind": "fixed", "delay_ms": 3}, "duplicate": "1/2"}},
                {"type": "clock_skew", "start_ms": 0, "end_ms": 5, "node": "d", "offset_ms": -7}
            ]
        }"#;
        let schedule: FaultSchedule = serde_json::from_str(text).unwrap();
        assert_eq!(schedule.faults()[0].kind_name(), "partition");
        assert_eq!(
            schedule.faults()[3],
            Fault::Hold { start: t(10), end: t(20), from: name("a"), to: name("b") }
        );
        let json = serde_json::to_value(&schedule).unwrap();
        assert_eq!(serde_json::from_value::<FaultSchedule>(json.clone()).unwrap(), schedule);
        assert_eq!(json["faults"][1]["policy"]["duplicate"], "1/2");

        for (bad, says) in [
            (
                r#"{"nodes": ["a"], "faults": [{"type": "crash", "start_ms": 0, "end_ms": 5, "node": "a", "why": 1}]}"#,
                "unknown field `why`",
            ),
            (
                r#"{"nodes": ["a"], "faults": [{"type": "meteor", "start_ms": 0, "end_ms": 5}]}"#,
                "unknown variant `meteor`",
            ),
            (
                r#"{"nodes": ["a"], "faults": [{"type": "crash", "start_ms": 9, "end_ms": 5, "node": "a"}]}"#,
                "end_ms (5) is before start_ms (9)",
            ),
            (
                r#"{"nodes": ["a"], "faults": [{"type": "crash", "start_ms": 0, "end_ms": 5, "node": "zz"}]}"#,
                "node zz is not one of",
            ),
            (r#"{"nodes": ["a"], "extra": 1}"#, "unknown field `extra`"),
            (r#"{"nodes": ["a b"]}"#, "bad node name"),
        ] {
            let error = serde_json::from_str::<FaultSchedule>(bad).unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
