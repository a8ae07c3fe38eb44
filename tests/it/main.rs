//! Integration tests, one binary: spec vectors, summary snapshots, PDU properties, the invariant checker, federation wire-format and
//! outbound-delivery properties, network-kernel properties, the CLI, and the tidy checks
//! that keep the layering and determinism rules.

mod check;
mod cli;
mod curated;
mod expectations;
mod homeserver;
mod kept;
mod linearized;
mod net;
mod outbound;
mod pdu;
mod regressions;
mod report;
mod report_runs;
mod resolve_program;
mod scenario;
mod snapshots;
mod state_res_diff;
mod sweep;
mod tidy;
mod vectors;
mod wire;
mod world;
