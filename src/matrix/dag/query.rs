//! Questions an [`AuthChainIndex`] answers without walking an auth chain: membership in an
//! auth chain, the auth chain and auth difference of state sets, and the conflicted state
//! subgraph (spec §2, digest state-resolution.md §2).

use crate::matrix::dag::AuthChainReading;
use crate::matrix::dag::index::{AuthChainIndex, ChainSet, NO_BASE, NodeId};

impl AuthChainIndex {
    /// Whether `ancestor` is in the auth chain of `node` (a node is not in its own auth
    /// chain). O(log r) per list on the node's base path.
    pub fn in_auth_chain(&self, node: NodeId, ancestor: NodeId) -> bool {
        if node == ancestor {
            return false;
        }
        let target = &self.nodes[ancestor.index()];
        // A list holding the chain holds the node's highest number there: a stored
        // difference only lists chains on which it exceeds its base.
        for reach in self.reach_lists(node) {
            if let Ok(at) = reach.binary_search_by_key(&target.chain, |entry| entry.0) {
                return reach[at].1 >= target.seq;
            }
        }
        false
    }

    /// The union of the auth chains of `nodes` (with `nodes` themselves under the
    /// inclusive reading), compressed. O(R log R) or O(R + C), R = total reach size of
    /// `nodes`, C = chains in the index.
    pub fn chain_set(&self, nodes: &[NodeId], reading: AuthChainReading) -> ChainSet {
        let reach: usize =
            nodes.iter().map(|node| self.nodes[node.index()].reach_len as usize).sum();
        // Many entries over few chains (a resolution's power events each reach most of a
        // large room's chains: 8 million entries, 64 MB, for the 2,000 power events of a
        // 46,000-event room) take a maximum per chain; few are collected and sorted. Both
        // give the same set (property test `index_equals_plain_walks`).
        if reach >= self.chains.len() / 4 {
            self.chain_set_dense(nodes, reading)
        } else {
            self.chain_set_sorted(nodes, reading)
        }
    }

    /// The entries of `node`'s own stored list as they count under `reading`.
    fn own_entries(
        &self,
        node: NodeId,
        reading: AuthChainReading,
    ) -> impl Iterator<Item = (u32, u32)> + '_ {
        let node = &self.nodes[node.index()];
        node.reach.iter().filter_map(move |&(chain, seq)| {
            if chain != node.chain || reading == AuthChainReading::Inclusive {
                Some((chain, seq))
            } else if node.seq > 1 {
                // Exclusive: the event's predecessor on its chain (a direct auth event) is
                // the highest event of its own chain in its auth chain. (Its base's lists
                // hold nothing at or above the event's own number there.)
                Some((chain, node.seq - 1))
            } else {
                None
            }
        })
    }

    /// Entries whose per-chain maximum is the union of the auth chains of `nodes` under
    /// `reading`: each node's own list, then its base path's lists, which are events of its
    /// auth chain and count whatever the reading.
    fn chain_set_entries<'a>(
        &'a self,
        nodes: &'a [NodeId],
        reading: AuthChainReading,
    ) -> impl Iterator<Item = (u32, u32)> + 'a {
        nodes.iter().flat_map(move |&node| {
            let below = self.reach_lists(node).skip(1).flatten().copied();
            self.own_entries(node, reading).chain(below)
        })
    }

    /// [`AuthChainIndex::chain_set`] by collecting the entries and sorting them.
    pub(super) fn chain_set_sorted(&self, nodes: &[NodeId], reading: AuthChainReading) -> ChainSet {
        ChainSet::from_unsorted(self.chain_set_entries(nodes, reading).collect())
    }

    /// [`AuthChainIndex::chain_set`] by the highest sequence number per chain, in an array
    /// as long as the index has chains. Many nodes share bases (a room's member events
    /// extend its power levels' reach), so each base's lists are read once.
    pub(super) fn chain_set_dense(&self, nodes: &[NodeId], reading: AuthChainReading) -> ChainSet {
        let mut highest = vec![0u32; self.chains.len()];
        let mut keep = |(chain, seq): (u32, u32)| {
            let at = &mut highest[chain as usize];
            *at = (*at).max(seq);
        };
        let mut read = vec![false; self.nodes.len()];
        for &node in nodes {
            self.own_entries(node, reading).for_each(&mut keep);
            // Every list below a base read before has been read with it.
            let mut base = self.nodes[node.index()].base;
            while base != NO_BASE && !read[base as usize] {
                read[base as usize] = true;
                let below = &self.nodes[base as usize];
                below.reach.iter().copied().for_each(&mut keep);
                base = below.base;
            }
        }
        let entries = highest
            .into_iter()
            .enumerate()
            .filter(|&(_, seq)| seq > 0)
            .map(|(chain, seq)| (u32::try_from(chain).expect("chains are u32"), seq))
            .collect();
        ChainSet { entries }
    }

    /// Whether `node` belongs to `set`. O(log).
    pub fn chain_set_contains(&self, set: &ChainSet, node: NodeId) -> bool {
        let node = &self.nodes[node.index()];
        set.highest(node.chain) >= node.seq
    }

    /// The events of `set`, sorted by node. O(size of the output).
    pub fn expand(&self, set: &ChainSet) -> Vec<NodeId> {
        let mut nodes = Vec::new();
        for &(chain, seq) in &set.entries {
            nodes.extend_from_slice(&self.chains[chain as usize][..seq as usize]);
        }
        nodes.sort_unstable();
        nodes
    }

    /// The union of the auth chains of `nodes` (spec §2 "auth chain"; inclusive reading
    /// adds `nodes` themselves), sorted by node.
    pub fn auth_chain(&self, nodes: &[NodeId], reading: AuthChainReading) -> Vec<NodeId> {
        self.expand(&self.chain_set(nodes, reading))
    }

    /// The auth difference of state sets given as their events' nodes (spec §2): the
    /// events in some but not every set's full auth chain. Sorted by node.
    /// O(k·R log(k·R) + output) for k sets of total reach size R.
    pub fn auth_difference(&self, sets: &[Vec<NodeId>], reading: AuthChainReading) -> Vec<NodeId> {
        self.auth_difference_with_common(&[], sets, reading)
    }

    /// [`AuthChainIndex::auth_difference`] of the sets `common ∪ sets[i]`: events every
    /// set holds (the unconflicted state) are given once instead of once per set.
    ///
    /// Per chain c, with C_c the common events' prefix and s_c each set's own, set i's full
    /// auth chain holds the prefix max(s_c, C_c); so the union is max(max_i s_c, C_c), the
    /// intersection max(min_i s_c, C_c) (a set without the chain counting 0), and the
    /// difference is the events between the two. Only chains some set reaches can differ,
    /// so the common prefix is read for those chains alone.
    pub fn auth_difference_with_common(
        &self,
        common: &[NodeId],
        sets: &[Vec<NodeId>],
        reading: AuthChainReading,
    ) -> Vec<NodeId> {
        let common = self.chain_set(common, reading);
        let mut tagged: Vec<(u32, u32)> = Vec::new();
        for set in sets {
            tagged.extend(self.chain_set(set, reading).entries);
        }
        tagged.sort_unstable();
        let mut nodes = Vec::new();
        let mut at = 0;
        while at < tagged.len() {
            let chain = tagged[at].0;
            let run = tagged[at..].iter().take_while(|entry| entry.0 == chain).count();
            assert!(run <= sets.len());
            let (lowest, highest) = (tagged[at].1, tagged[at + run - 1].1);
            let own_intersection = if run == sets.len() { lowest } else { 0 };
            let shared = common.highest(chain);
            let (from, to) = (own_intersection.max(shared), highest.max(shared));
            nodes.extend_from_slice(&self.chains[chain as usize][from as usize..to as usize]);
            at += run;
        }
        nodes.sort_unstable();
        nodes
    }

    /// The conflicted state subgraph of v2.1 (spec §2): every event V such that V is
    /// reachable from a conflicted event over ≥ 0 auth edges and some conflicted event is
    /// reachable from V over ≥ 0 auth edges. Sorted by node.
    ///
    /// B ∩ chain c is a prefix (up to b_c); F ∩ chain c is a suffix, because a later event
    /// on a chain reaches everything an earlier one does. So per chain the subgraph is the
    /// interval [f_c, b_c], and f_c is found by binary search. O(C · log L · r log K) for
    /// C chains in B, chains of length ≤ L, reach size r, K conflicted chains.
    pub fn conflicted_subgraph(&self, conflicted: &[NodeId]) -> Vec<NodeId> {
        let backward = self.chain_set(conflicted, AuthChainReading::Inclusive);
        // Per chain, the lowest conflicted event on it: V reaches some conflicted event
        // iff V reaches (c, lowest_c) for some chain c.
        let mut lowest: Vec<(u32, u32)> = conflicted
            .iter()
            .map(|node| (self.nodes[node.index()].chain, self.nodes[node.index()].seq))
            .collect();
        lowest.sort_unstable();
        lowest.dedup_by_key(|entry| entry.0);
        let reaches_conflicted = |node: NodeId| {
            self.reach_lists(node).flatten().any(|&(chain, seq)| {
                match lowest.binary_search_by_key(&chain, |entry| entry.0) {
                    Ok(at) => seq >= lowest[at].1,
                    Err(_) => false,
                }
            })
        };
        let mut nodes = Vec::new();
        for &(chain, highest) in &backward.entries {
            let prefix = &self.chains[chain as usize][..highest as usize];
            let first = prefix.partition_point(|&node| !reaches_conflicted(node));
            nodes.extend_from_slice(&prefix[first..]);
        }
        nodes.sort_unstable();
        for node in conflicted {
            assert!(nodes.binary_search(node).is_ok(), "conflicted events are in the subgraph");
        }
        nodes
    }
}
