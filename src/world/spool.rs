//! Where a spooled run ([`super::run_spooled`]) sends its records as it makes them: the
//! trace header it expects to end with, then the records' lines in chunks
//! ([`RecordSink`]), while a keeper sorts each record into the kept trace.

use std::collections::BTreeSet;

use super::{Plan, Shared};
use crate::trace::{self, Header};

/// Where a spooled run ([`super::run_spooled`]) writes its records: first the header it
/// expects to end with, then the records' lines.
pub trait RecordSink: Send {
    /// Called once, before any line: the trace header the run expects to end with. The
    /// run calls it once it has named what the header names ([`HeaderNames`]), holding
    /// its lines back until then (or at its end, or once it holds [`SPOOL_HOLD_MAX`]
    /// bytes of them). The sink may write the trace file after it as the lines come
    /// ([`crate::trace::StreamedHash`]), and must make it again if the run's header
    /// ([`super::RunOutput::trace`]) turns out to be another.
    fn expect_header(&mut self, header: &Header);

    /// The records' lines (UTF-8, each followed by its newline) in trace order: in chunks
    /// of whole lines, each handed over once it holds [`SPOOL_CHUNK`] bytes or more, and
    /// the rest at the end of the run. A line at a time, the sink's call and its lock were
    /// 3% of a 100-server run.
    fn lines(&mut self, lines: &[u8]);
}

/// A spooled run's sink ([`RecordSink`]).
pub type SpoolSink = Box<dyn RecordSink>;

/// How many bytes of record lines a spooled run gathers before handing them to its sink.
pub const SPOOL_CHUNK: usize = 1 << 16;

/// How many bytes of record lines a spooled run holds back, at most, while its header
/// still waits for names the run gives ([`HeaderNames`]): past this it hands over the
/// header as it stands, and its sink makes the trace file again at the end.
pub const SPOOL_HOLD_MAX: usize = 1 << 24;

/// What a trace header names that only the run decides: the id of every room a step
/// creates (by the room's label), and of every event a `rejected` expectation labels. A
/// spooled run hands its sink the header once these are all named (they never change
/// after), or at its end; the sink can then write the trace file as the lines come
/// ([`crate::trace::StreamedHash`]) instead of after the run. Without expectations the
/// header names none of them.
pub(super) struct HeaderNames {
    /// Distinct labels of the rooms the steps create.
    rooms: usize,
    /// The labels of `rejected` expectations.
    labels: Vec<String>,
}

impl HeaderNames {
    pub(super) fn of(plan: &Plan) -> HeaderNames {
        if plan.check.expect.is_empty() {
            return HeaderNames { rooms: 0, labels: Vec::new() };
        }
        let rooms: BTreeSet<&str> =
            plan.steps.iter().filter_map(|step| step.new_room.as_deref()).collect();
        let labels = plan
            .check
            .expect
            .blocks
            .iter()
            .filter_map(|block| match block {
                trace::Expectation::Rejected { label, .. } => Some(label.clone()),
                _ => None,
            })
            .collect();
        HeaderNames { rooms: rooms.len(), labels }
    }
}

/// A spooled run's recording: every record goes to the sink, and the keeper sorts it
/// into the kept trace.
pub(super) struct Spool {
    pub(super) sink: SpoolSink,
    pub(super) keeper: trace::Keeper,
    /// The lines written since the sink was last called, each with its newline.
    pub(super) lines: Vec<u8>,
    /// Writes the lines, each PDU body serialized once.
    pub(super) writer: trace::LineWriter,
    /// Whether the sink has the header ([`RecordSink::expect_header`]).
    pub(super) header_sent: bool,
    /// What the header waits for.
    pub(super) names: HeaderNames,
}

impl Shared {
    /// Hands the spool's gathered lines to its sink, after the header if the sink does
    /// not have it yet: held back while the run has not named what the header names, up
    /// to [`SPOOL_HOLD_MAX`] bytes.
    pub(super) fn hand_over_lines(&mut self) {
        let Some(spool) = self.spool.as_ref() else { return };
        if !spool.header_sent {
            let names = &spool.names;
            let named = self.rooms.len() >= names.rooms
                && names.labels.iter().all(|label| self.labels.contains_key(label));
            if !named && spool.lines.len() < SPOOL_HOLD_MAX {
                return;
            }
            let header = self.header();
            let spool = self.spool.as_mut().expect("looked at above");
            spool.sink.expect_header(&header);
            spool.header_sent = true;
        }
        let spool = self.spool.as_mut().expect("looked at above");
        spool.sink.lines(&spool.lines);
        spool.lines.clear();
        // Lines held back while the header waited may have grown the buffer far past a
        // chunk, which it would keep for the rest of the run.
        if spool.lines.capacity() > 4 * SPOOL_CHUNK {
            spool.lines.shrink_to(SPOOL_CHUNK + (1 << 12));
        }
    }
}
