//! Integration tests, one binary: spec vectors, PDU properties, federation wire-format
//! properties, the CLI, and the tidy checks that keep the layering and determinism rules.

mod cli;
mod pdu;
mod tidy;
mod vectors;
mod wire;
