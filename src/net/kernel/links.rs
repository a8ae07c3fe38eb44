//! The fault schedule indexed for lookups by link and node ([`Index`]), and what a link does
//! at a given time: cut, held or up, with the policy and the extra delay of slow nodes.

use std::collections::BTreeMap;

use crate::net::corrupt::Corruptible;
use crate::net::fault::{Fault, FaultSchedule, NodeName, Nodes};
use crate::net::kernel::{DropReason, LinkState, Network, NodeId};
use crate::stdx::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Phase {
    Start,
    End,
}

/// The schedule, indexed for lookups by link and node.
pub(super) struct Index {
    /// For each partition fault: the group of every listed node; unlisted nodes are in
    /// group `groups.len()`.
    pub(super) partitions: BTreeMap<u32, (BTreeMap<NodeId, u32>, u32)>,
    /// Faults touching one directed link (`OneWay`, `Hold`, a `LinkOverride` from one node
    /// to one node, and `Flap` in both directions), in index order.
    pub(super) links: BTreeMap<(NodeId, NodeId), Vec<u32>>,
    /// The `LinkOverride`s of more than one link, in index order.
    pub(super) grouped: Vec<GroupedOverride>,
    /// Faults of one node (`ClockSkew`, `Slow`, `Crash`, `Pause`), in index order.
    pub(super) nodes: Vec<Vec<u32>>,
    /// Every fault's start and end, sorted by (time, fault, phase): at one instant the
    /// faults that started earlier end before later ones start, and an empty fault starts
    /// before it ends.
    pub(super) transitions: Vec<(Instant, u32, Phase)>,
}

/// A `LinkOverride` whose ends are not both one node: the links it covers, by node id.
pub(super) struct GroupedOverride {
    pub(super) number: u32,
    /// The ends' nodes, sorted; `None` for every node.
    from: Option<Vec<NodeId>>,
    to: Option<Vec<NodeId>>,
}

impl GroupedOverride {
    /// Whether the override covers the link: both ends in theirs, and not the same node.
    pub(super) fn covers(&self, from: NodeId, to: NodeId) -> bool {
        let has = |ends: &Option<Vec<NodeId>>, node| {
            ends.as_ref().is_none_or(|ids| ids.binary_search(&node).is_ok())
        };
        from != to && has(&self.from, from) && has(&self.to, to)
    }
}

pub(super) fn fault_number(index: usize) -> u32 {
    u32::try_from(index).expect("fault count is bounded by FAULTS_MAX")
}

impl Index {
    pub(super) fn new(schedule: &FaultSchedule, ids: &BTreeMap<NodeName, NodeId>) -> Index {
        let id = |name: &NodeName| ids[name];
        let mut index = Index {
            partitions: BTreeMap::new(),
            links: BTreeMap::new(),
            grouped: Vec::new(),
            nodes: vec![Vec::new(); schedule.nodes().len()],
            transitions: Vec::new(),
        };
        for (number, fault) in schedule.faults().iter().enumerate() {
            let number = fault_number(number);
            index.transitions.push((fault.start(), number, Phase::Start));
            index.transitions.push((fault.end(), number, Phase::End));
            match fault {
                Fault::Partition { groups, .. } => {
                    let mut group_of = BTreeMap::new();
                    for (group, names) in groups.iter().enumerate() {
                        for name in names {
                            group_of.insert(id(name), fault_number(group));
                        }
                    }
                    index.partitions.insert(number, (group_of, fault_number(groups.len())));
                }
                Fault::OneWay { from, to, .. } | Fault::Hold { from, to, .. } => {
                    index.links.entry((id(from), id(to))).or_default().push(number);
                }
                Fault::LinkOverride { from: Nodes::One(from), to: Nodes::One(to), .. } => {
                    index.links.entry((id(from), id(to))).or_default().push(number);
                }
                Fault::LinkOverride { from, to, .. } => {
                    let ids = |ends: &Nodes| match ends {
                        Nodes::All => None,
                        _ => {
                            let mut ids: Vec<NodeId> = ends.listed().iter().map(id).collect();
                            ids.sort();
                            ids.dedup();
                            Some(ids)
                        }
                    };
                    index.grouped.push(GroupedOverride { number, from: ids(from), to: ids(to) });
                }
                Fault::Flap { a, b, .. } => {
                    index.links.entry((id(a), id(b))).or_default().push(number);
                    index.links.entry((id(b), id(a))).or_default().push(number);
                }
                Fault::ClockSkew { node, .. }
                | Fault::Slow { node, .. }
                | Fault::Crash { node, .. }
                | Fault::Pause { node, .. } => {
                    let slot = usize::try_from(id(node).0).expect("node ids fit usize");
                    index.nodes[slot].push(number);
                }
            }
        }
        index.transitions.sort();
        index
    }
}

impl<P: Clone + Corruptible> Network<P> {
    pub(super) fn slow_extra(&self, node: NodeId, at: Instant) -> Duration {
        let mut extra = Duration::ZERO;
        for &number in &self.index.nodes[self.slot(node)] {
            let fault = self.fault(number);
            match fault {
                Fault::Slow { extra_delay, .. } if fault.is_active(at) => {
                    extra = extra + *extra_delay;
                }
                _ => {}
            }
        }
        extra
    }

    /// The link's state at `at`. The kernel passes `active_only` when it has processed
    /// every fault transition up to and including `at` and none after, so that its set of
    /// active partitions is exact; queries scan every partition.
    pub(super) fn state_with(
        &self,
        from: NodeId,
        to: NodeId,
        at: Instant,
        active_only: bool,
    ) -> LinkState {
        let mut cut: Option<(u32, DropReason)> = None;
        let mut first_cut = |number: u32, reason: DropReason| {
            if cut.is_none_or(|(lowest, _)| number < lowest) {
                cut = Some((number, reason));
            }
        };
        let mut partition = |number: u32| {
            let fault = self.fault(number);
            if !fault.is_active(at) {
                assert!(!active_only, "partition {number} marked active at {at} but is not");
                return;
            }
            let (group_of, unlisted) = &self.index.partitions[&number];
            let group = |node| group_of.get(&node).copied().unwrap_or(*unlisted);
            if group(from) != group(to) {
                first_cut(number, DropReason::Partition { fault: number });
            }
        };
        // Two loops rather than one over a boxed iterator: this runs for every message
        // sent, and the box was an allocation each time.
        if active_only {
            self.active_partitions.iter().for_each(|&number| partition(number));
        } else {
            self.index.partitions.keys().for_each(|&number| partition(number));
        }
        for &number in self.index.links.get(&(from, to)).into_iter().flatten() {
            let fault = self.fault(number);
            if !fault.is_active(at) {
                continue;
            }
            match *fault {
                Fault::OneWay { .. } => first_cut(number, DropReason::OneWay { fault: number }),
                Fault::Flap { start, period, down_for, .. } => {
                    if (at - start).ms % period.ms < down_for.ms {
                        first_cut(number, DropReason::Flap { fault: number });
                    }
                }
                Fault::Hold { .. } | Fault::LinkOverride { .. } => {}
                _ => unreachable!("only link faults are indexed by link"),
            }
        }
        match (cut, self.hold_at(from, to, at)) {
            (Some((_, reason)), _) => LinkState::Cut(reason),
            (None, Some(fault)) => LinkState::Held { fault },
            (None, None) => LinkState::Up,
        }
    }

    /// The active hold of the link with the lowest index, if any.
    pub(super) fn hold_at(&self, from: NodeId, to: NodeId, at: Instant) -> Option<u32> {
        let links = self.index.links.get(&(from, to)).into_iter().flatten();
        links.copied().find(|&number| {
            let fault = self.fault(number);
            matches!(fault, Fault::Hold { .. }) && fault.is_active(at)
        })
    }
}
