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
    /// How many bytes of lines it holds back at most while it waits ([`SPOOL_HOLD_MAX`]).
    pub(super) hold_max: usize,
}

impl Shared {
    /// Hands the spool's gathered lines to its sink, after the header if the sink does
    /// not have it yet: held back while the run has not named what the header names, up
    /// to the spool's `hold_max` bytes ([`SPOOL_HOLD_MAX`] but in tests).
    pub(super) fn hand_over_lines(&mut self) {
        let Some(spool) = self.spool.as_ref() else { return };
        if !spool.header_sent {
            let names = &spool.names;
            let named = self.rooms.len() >= names.rooms
                && names.labels.iter().all(|label| self.labels.contains_key(label));
            if !named && spool.lines.len() < spool.hold_max {
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What a run handed its sink: the headers, and the chunks of lines after them.
    #[derive(Default)]
    struct Sunk {
        headers: Vec<Header>,
        chunks: Vec<Vec<u8>>,
    }

    struct Sink(Arc<Mutex<Sunk>>);

    impl RecordSink for Sink {
        fn expect_header(&mut self, header: &Header) {
            let mut sunk = self.0.lock().unwrap();
            assert!(sunk.chunks.is_empty(), "the header comes before the lines");
            sunk.headers.push(header.clone());
        }

        fn lines(&mut self, lines: &[u8]) {
            self.0.lock().unwrap().chunks.push(lines.to_vec());
        }
    }

    /// A run whose header waits for a room created late (`partition-heal` with traffic,
    /// and a room its last step creates after more than two chunks of lines) holds its
    /// lines back until then and hands its sink the header it ends with. Past `hold_max`
    /// bytes of lines it hands the header over as it stands: without the late room, so
    /// that its sink must make the trace file again (`cli::run`). The lines are the whole
    /// trace's either way, in chunks of whole lines, each but the last at least
    /// [`SPOOL_CHUNK`] bytes.
    #[test]
    fn a_run_hands_over_its_header_once_named_or_past_its_hold_as_it_stands() {
        let path = "scenarios/partition-heal.toml";
        let text =
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/partition-heal.toml"))
                .to_owned()
                + r#"
[[workload]]
room = "main"
start_ms = 1_000
end_ms = 40_000
interval_ms = 300
mix = { message = 4, topic = 1 }

[[step]]
at_ms = 42_000
user = "@alice:hs1"
action = "create_room"
room = "late"
"#;
        let scenario = crate::scenario::parse(path, &text).unwrap();
        for seed in [1, 2] {
            let plan = crate::world::from_scenario::plan(&scenario, seed, "test").unwrap();
            let whole = crate::world::run(&plan).unwrap().trace;
            let late_room = &whole.header.check.expect.rooms["late"];
            let mut lines = Vec::new();
            for record in &whole.records {
                let line = record.to_line();
                if line.contains(late_room.as_str()) && lines.len() <= 2 * SPOOL_CHUNK {
                    panic!("seed {seed}: {} bytes before the late room", lines.len());
                }
                lines.extend_from_slice(line.as_bytes());
                lines.push(b'\n');
            }
            for (hold_max, early) in [(SPOOL_CHUNK, true), (SPOOL_HOLD_MAX, false)] {
                let at = format!("seed {seed}, hold {hold_max}");
                let sunk: Arc<Mutex<Sunk>> = Arc::default();
                let sink = Box::new(Sink(Arc::clone(&sunk)));
                let run = super::super::runtime::run_spooled_holding(&plan, sink, hold_max);
                let last = run.unwrap().trace.header;
                let sunk = std::mem::take(&mut *sunk.lock().unwrap());
                let [handed] = &sunk.headers[..] else { panic!("{} headers", sunk.headers.len()) };
                assert!(last.check.expect.rooms.contains_key("late"), "{at}");
                assert_eq!(handed.check.expect.rooms.contains_key("late"), !early, "{at}");
                assert_eq!(*handed == last, !early, "{at}");
                for (i, chunk) in sunk.chunks.iter().enumerate() {
                    assert!(chunk.ends_with(b"\n"), "{at}: chunk {i} ends inside a line");
                    let last_chunk = i + 1 == sunk.chunks.len();
                    assert!(last_chunk || chunk.len() >= SPOOL_CHUNK, "{at}: chunk {i} is short");
                }
                assert!(sunk.chunks.concat() == lines, "{at}: the lines differ from the trace's");
            }
        }
    }
}
