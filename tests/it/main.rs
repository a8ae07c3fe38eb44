//! Integration tests, one binary: spec vectors, PDU properties, the CLI, and the tidy
//! checks that keep the layering and determinism rules.

mod cli;
mod pdu;
mod state_res_diff;
mod tidy;
mod vectors;
