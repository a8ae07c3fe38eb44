//! Every named stream forked from a run's root generator, in one table, so that two
//! subsystems never share a stream by accident and a reader sees what draws from where.
//! A name, once used, never changes: renaming a stream changes every trace.
//!
//! | stream | forked by | draws |
//! | --- | --- | --- |
//! | `net` | `world::run` | the network kernel's fates (loss, latency, duplication, reordering, corruption) |
//! | `server/<name>/<incarnation>` | the world, at each boot | that server's back-off jitter and other homeserver choices |
//! | `final` | the world, at the end | recovering servers that are down at the end, to record their final views |
//! | `workload` | `world::from_scenario`, `sweep::shrink` | the root of the workload expansion |
//! | `workload/<index>` | `scenario::workload`, from `workload` | workload `index`'s gaps, kinds, actors and targets |
//! | `swarm` | `sweep::swarm` (from the seed's root) | the swarm configuration of a seed |

/// The network kernel's stream.
pub const NET: &str = "net";
/// The stream used to recover servers that are down when a run ends.
pub const FINAL: &str = "final";
/// The root of the workload expansion.
pub const WORKLOAD: &str = "workload";
/// The swarm configuration of a seed.
pub const SWARM: &str = "swarm";

/// A server's stream for one incarnation (0 at the first boot, +1 per restart).
pub fn server(name: &str, incarnation: u32) -> String {
    format!("server/{name}/{incarnation}")
}

/// Workload `index`'s stream, forked from [`WORKLOAD`].
pub fn workload(index: usize) -> String {
    format!("workload/{index}")
}
