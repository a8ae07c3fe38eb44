//! The recorded history of one run: a header, then timestamped records, one JSON object
//! per line (JSONL), and the trace hash.
//!
//! The trace is the contract between the simulator and everything after it: `check`
//! folds over it to a verdict, `report` draws it, and `mxsim check` / `mxsim report`
//! re-read it from a file. It therefore carries everything they need on its own — the
//! servers and their public keys, the fault schedule, the invariant settings, every PDU
//! as it was created (and any stored copy that differs), every network decision, every
//! receipt decision, commit, crash and recovery, and each server's final state.
//!
//! Format (docs/trace.md is the reference): line 1 is a [`Header`] with `"type":
//! "header"`; every later line is a [`Record`]: `{"t": MS, "type": KIND, ...}` where `t`
//! is virtual milliseconds since the start of the run, never decreasing. Records are
//! written in the order they happened; within one millisecond that order is the
//! simulator's (seeded) order.
//!
//! The last line is the end record, `{"type": "end", "records": N, "hash": H}`: N is the
//! number of records between the header and it, and H the SHA-256 of every byte before
//! it but the header's build identifier (below). A trace without a valid end record is
//! incomplete (cut short, or changed after it was written) and [`Trace::parse_jsonl`]
//! refuses it.
//!
//! The trace hash is the SHA-256 of the exact JSONL bytes (header and end record
//! included) but the header's `"mxsim_build":"…",` member, in lowercase hex
//! ([`hash_jsonl`]). The build identifier names the source tree that wrote the trace and
//! changes with every source edit; leaving it out of both hashes keeps the trace hash a
//! name for what the run did: same scenario, seed and behaviour ⇒ same hash, across
//! builds that behave alike (and a changed hash means changed behaviour).
//!
//! Architecture Invariant: pure data and codecs — no clock, no files (callers hand in
//! text and take bytes), no hash maps; fields are integers and strings, never floats.
//! Parsing a trace file never panics: a bad line is a [`TraceError`] naming the line
//! number and the problem.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `net` types the trace carries, re-exported so that readers of a trace (`check`,
/// `report`) name them without depending on the network kernel.
pub use crate::net::{DropReason, Fault, NodeName};

/// How a server decided about an event: the homeserver's own type, from the protocol core.
pub use crate::matrix::Decision;

use crate::matrix::{crypto, words};
use crate::stdx::Invariant;

mod line;
mod metrics;
pub mod net;
mod read;
mod records;
mod stream;
mod text;
pub use line::LineWriter;
pub use metrics::metrics;
pub use net::{NetFold, NetSummary};
pub use read::LINE_BYTES_MAX;
pub use records::Records;
pub use stream::StreamedHash;
pub use text::Text;

/// The format tag of the header; bumped when a record changes shape.
pub const FORMAT: &str = "mxsim-trace/1";

/// This build's identifier: the package version, `+`, and 16 hex digits of a SHA-256 over
/// the source tree, computed by `build.rs` (docs/trace.md).
pub const BUILD: &str = env!("MXSIM_BUILD");

/// `server name → key id → unpadded-base64 public key`.
pub type Keys = BTreeMap<String, BTreeMap<String, String>>;

/// A nested state map: `type → state_key → event_id`.
pub type NestedState = BTreeMap<String, BTreeMap<String, String>>;

/// The first line of a trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    pub scenario: String,
    pub seed: u64,
    pub mxsim_version: String,
    /// The build that wrote the trace ([`BUILD`]); left out of the trace hash. Absent in
    /// traces written before it existed, and when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mxsim_build: String,
    /// The servers, in the scenario's order.
    pub servers: Vec<String>,
    pub keys: Keys,
    /// `origin_server_ts` of virtual time zero.
    pub epoch_ms: u64,
    /// When the run stopped (virtual ms).
    pub end_ms: u64,
    /// When the last fault ended (0 without faults).
    pub healed_ms: u64,
    /// The fault schedule, sorted by start as `net::FaultSchedule` keeps it, indexed by the
    /// `fault` numbers of later records. Written in the `net::Fault` serde form with each
    /// object's keys in sorted order (see [`sorted_keys`]).
    #[serde(serialize_with = "sorted_keys")]
    pub faults: Vec<Fault>,
    pub check: CheckSettings,
    /// The swarm configuration drawn from the seed (`mxsim sweep --swarm`, docs/sweeps.md);
    /// absent when the scenario ran as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<Value>,
}

/// Writes values through their `serde_json::Value` form, whose objects keep their keys in
/// sorted order, as every JSON object of the trace does; a `Fault` written directly would
/// put `type` first and then its fields in declaration order.
fn sorted_keys<T: Serialize, S: serde::Serializer>(
    values: &[T],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let values: Result<Vec<Value>, _> = values.iter().map(serde_json::to_value).collect();
    values.map_err(serde::ser::Error::custom)?.serialize(serializer)
}

/// Which invariants to check and their bounds (from the scenario).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSettings {
    /// The invariants to check, by their ids; an unknown id makes the header bad.
    pub invariants: Vec<Invariant>,
    /// An event accepted at its origin must reach every joined server within this long
    /// after the later of its creation and the heal.
    pub liveness_bound_ms: u64,
    /// What the scenario says it demonstrates, for the `expectations` invariant (left out
    /// when it says nothing).
    #[serde(default, skip_serializing_if = "Expect::is_empty")]
    pub expect: Expect,
}

/// The scenario's expectations, and the run-time names they need: which steps must
/// succeed or fail, the `[[expect]]` tables, and the room and event ids of the labels
/// they use (known only at the end of the run).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Judged steps (scripted steps; workload and settling steps are not judged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepExpectation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<Expectation>,
    /// Room label → room id, for every room created in the run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rooms: BTreeMap<String, String>,
    /// Step label → event id, for the labels `rejected` blocks name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Expect {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.blocks.is_empty()
    }
}

/// One step that must succeed (`"succeed"`) or fail (`"fail"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepExpectation {
    /// The step's position in the run's time-ordered steps (as `action` records name it).
    pub step: u64,
    /// Its line in the scenario file.
    pub line: u64,
    pub expect: String,
}

/// One `[[expect]]` table of the scenario (docs/scenarios.md); `room` is a room label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Expectation {
    State {
        line: u64,
        room: String,
        event_type: String,
        state_key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Map<String, Value>>,
    },
    Conflicted {
        line: u64,
        room: String,
        event_type: String,
        state_key: String,
        events_min: u64,
    },
    Rejected {
        line: u64,
        room: String,
        label: String,
    },
    ConvergedBy {
        line: u64,
        room: String,
        at_ms: u64,
    },
}

/// One line after the header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Virtual milliseconds since the start of the run.
    pub t: u64,
    #[serde(flatten)]
    pub body: Body,
}

/// A node-level happening.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeChange {
    /// The server lost everything it had not committed.
    Crash,
    /// The server came back from its committed store.
    Restart,
    Pause,
    Resume,
}

/// What a record says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Body {
    /// A fault of the header's schedule became active.
    FaultStart { fault: u32 },
    /// A fault ended.
    FaultEnd { fault: u32 },
    /// A server crashed, restarted, paused or resumed.
    Node { server: String, change: NodeChange },
    /// After a restart: every event id in the recovered store.
    Recovered { server: String, event_ids: Vec<String> },
    /// A scripted or workload step was given to a server. `step` is its position in the
    /// run's time-ordered steps, `line` its line in the scenario file.
    Action {
        server: Text,
        user: Text,
        action: Text,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<u64>,
    },
    /// The action failed ([`ActionFailure`], behind a pointer as rare kinds are).
    ActionFailed(Box<ActionFailure>),
    /// A message was handed to the network. `what` is the request line or `response
    /// STATUS`; `request` links a response to the message that carried its request.
    Send {
        msg: u64,
        from: Text,
        to: Text,
        bytes: u64,
        what: Text,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<u64>,
    },
    /// A copy of a message was lost.
    Drop { msg: u64, copy: u32, reason: DropReason },
    /// A message could not be delivered because its destination was down.
    DropDown { msg: u64, copy: u32, server: String },
    /// A message's bytes were damaged in flight.
    Corrupt { msg: u64, offset: u64, before: u8, after: u8 },
    /// A second copy was made.
    Duplicate { msg: u64 },
    /// A copy was held by a hold fault.
    Hold { msg: u64, copy: u32, fault: u32 },
    /// A held copy was put back in flight.
    Release { msg: u64, copy: u32 },
    /// A copy arrived at its destination.
    Deliver { msg: u64, copy: u32 },
    /// A server created, received or dropped an event. `pdu` is present when the event is
    /// created, and on receipt when the stored copy differs from the first copy recorded
    /// for this id (for example a redacted copy). In a run's own trace, records of the
    /// same stored body usually share one value (a trace read from a file shares none).
    Event {
        server: Text,
        room: Text,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<Text>,
        decision: Decision,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pdu: Option<Arc<Map<String, Value>>>,
    },
    /// The server's current state of the room changed.
    State { server: Text, room: Text, state_hash: Text },
    /// The server gained its first joined member of a room (created it, joined it, or
    /// joined again after it had left).
    Joined { server: String, room: String, version: String },
    /// The server lost its last joined member of a room.
    Left { server: String, room: String },
    /// The server replaced its stored `event_id` by the redacted form, because it stored
    /// the allowed redaction `redaction`; its later auth checks read the redacted copy.
    Redacted { server: Text, room: Text, event_id: Text, redaction: Text },
    /// A local user was invited over federation.
    Invited { server: Text, room: Text, user: Text, event_id: Text },
    /// The room was upgraded to `replacement` here.
    Upgraded { server: String, room: String, replacement: String },
    /// The server's outbound delivery marked `peer` down (too many failed retries of a
    /// transaction): it only probes it now and then.
    PeerDown { server: String, peer: String },
    /// A peer the server had marked down is up again (a transaction arrived, or the peer
    /// sent a request).
    PeerUp { server: String, peer: String },
    /// The server committed its store with these events newly durable. Shared texts, as
    /// the `send` records' are: one record per event received per server.
    Commit { server: Text, event_ids: Vec<Text> },
    /// Linearized Matrix, at a participant: a user's event left for the hub as the LPDU
    /// `lpdu_id` (docs/linearized.md).
    LpduSent { server: Text, room: Text, lpdu_id: Text, hub: Text },
    /// Linearized Matrix, at the hub: the LPDU `lpdu_id` from `origin` became `event_id`, the
    /// next event of the hub's list.
    Linearized { server: Text, room: Text, lpdu_id: Text, event_id: Text, origin: Text },
    /// Linearized Matrix: an LPDU will not be appended. At the hub: it refused it. At the
    /// participant: the hub's refusal arrived, or it gave the LPDU up (the hub was marked
    /// down under `offline_sends = "fail"`).
    LpduFailed { server: Text, room: Text, lpdu_id: Text, reason: Text },
    /// Linearized Matrix, at a participant: its LPDU came back in the hub's list as
    /// `event_id`.
    LpduAccepted { server: Text, room: Text, lpdu_id: Text, event_id: Text },
    /// Linearized Matrix, at a participant: the hub sent `event_id`, which the draft's rules
    /// forbid at that point of the list (`fault`: `wrong_hub`, `not_after_head`,
    /// `auth_events_not_selected` or `rejected`); it was not appended.
    HubFault { server: Text, room: Text, event_id: Text, fault: Text, reason: Text },
    /// Linearized Matrix, at the hub: the event `event_id` of a DAG-capable server
    /// (`origin`, its sender's server) was accepted and appended to the hub's list as it
    /// stands (docs/linearized.md).
    DagLinearized { server: Text, room: Text, event_id: Text, origin: Text },
    /// Linearized Matrix, at the hub: its list had several forward extremities (a
    /// DAG-capable server's event did not name the head), and the hub closed the fork with
    /// the merge event `event_id` naming `prev_events`; without `event_id`, no user of the
    /// hub could send one, for `reason`.
    HubMerge {
        server: Text,
        room: Text,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<Text>,
        prev_events: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Text>,
    },
    /// At the end of the run: one server's view of one room ([`FinalView`], behind a
    /// pointer as rare kinds are).
    Final(Box<FinalView>),
}

/// What a `final` record says ([`Body::Final`]): one server's view of one room at the end
/// of the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalView {
    pub server: Text,
    pub room: Text,
    pub joined: bool,
    pub forward_extremities: Vec<String>,
    /// Shared: in a run's own trace, the servers that end in the same state hold one copy
    /// of it (a trace read from a file shares none).
    pub state: Arc<NestedState>,
    pub state_hash: Text,
    /// Events stored for the room (any outcome).
    pub events: u64,
    /// Events the server received for the room and had not decided at the end (still
    /// waiting for their auth or prev events), oldest deadline first; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<WaitingEvent>,
}

/// What an `action_failed` record says ([`Body::ActionFailed`]). `step` and `line` name
/// the step when the failure can be traced to one; `retry_at_ms` says when the step is
/// tried again (absent: not again).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionFailure {
    pub server: String,
    pub action: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at_ms: Option<u64>,
}

/// A received event that was still undecided at the end of the run (`final.waiting`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitingEvent {
    pub event_id: String,
    /// Virtual time at which the server gives the event up if it is still undecided: the
    /// homeserver's waiting bound after the event was received.
    pub deadline_ms: u64,
}

/// A trace in memory: whole, or kept as the checks and reports read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub header: Header,
    /// Every record, or with [`Trace::kept`] the records [`Keeper`] keeps.
    pub records: Records,
    /// Set when the records were written to the trace file as the run went (`mxsim run`)
    /// or read from one a line at a time (`mxsim check`, `report`, `compare`): the records
    /// above are then those [`Keeper`] keeps, each at the line [`Kept::lines`] gives,
    /// and the network records are summed. `None`: `records` is the whole trace.
    pub kept: Option<Box<Kept>>,
}

/// What a kept trace holds besides its kept records ([`Keeper`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    /// The 1-based trace line of each record of [`Trace::records`], increasing.
    pub lines: Vec<u64>,
    /// Records in the whole trace (between the header and the end record).
    pub total: u64,
    /// The network records, summed.
    pub net: NetSummary,
    /// `(server, line)` of each crash record of a server the fault schedule does not
    /// crash, whose commits were therefore not kept (never, in a trace `mxsim run` wrote).
    pub unkept_crashes: Vec<(String, u64)>,
}

/// Which records a kept trace holds in memory ([`Trace::kept`]): every record but the
/// network ones, which are summed instead, and but the `commit` records of servers the
/// fault schedule never crashes: only the durability check reads commits, and only those
/// before a crash of the same server (at 1,000 servers the commits are a tenth of the
/// trace's records).
///
/// [`Keeper`] applies it: the one mechanism behind a spooled run (`world::run_spooled`)
/// and a trace read a line at a time ([`Trace::read_kept`]).
pub struct Keeper {
    /// Servers some `crash` fault of the schedule takes down.
    crashing: std::collections::BTreeSet<String>,
    net: NetFold,
    records: Records,
    lines: Vec<u64>,
    unkept_crashes: Vec<(String, u64)>,
    /// Records taken so far.
    total: u64,
}

impl Keeper {
    /// A keeper for a run that ends at `end_ms` under the fault schedule `faults`.
    pub fn new(end_ms: u64, faults: &[Fault]) -> Keeper {
        let crashing = faults
            .iter()
            .filter_map(|f| match f {
                Fault::Crash { node, .. } => Some(node.as_str().to_owned()),
                _ => None,
            })
            .collect();
        Keeper {
            crashing,
            net: NetFold::new(end_ms),
            records: Records::new(),
            lines: Vec::new(),
            unkept_crashes: Vec::new(),
            total: 0,
        }
    }

    /// Takes the next record of the trace (its line is the count so far plus the header).
    pub fn push(&mut self, record: Record) {
        self.total += 1;
        let line = self.total + 1;
        match &record.body {
            body if NetFold::takes(body) => return self.net.push(&record),
            Body::Commit { server, .. } if !self.crashing.contains(server.as_str()) => return,
            Body::Node { server, change: NodeChange::Crash } if !self.crashing.contains(server) => {
                self.unkept_crashes.push((server.clone(), line));
            }
            _ => {}
        }
        self.lines.push(line);
        self.records.push(record);
    }

    /// Records taken so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The kept trace of everything taken, under `header`.
    pub fn finish(self, header: Header) -> Trace {
        Trace {
            header,
            records: self.records,
            kept: Some(Box::new(Kept {
                lines: self.lines,
                total: self.total,
                net: self.net.finish(),
                unkept_crashes: self.unkept_crashes,
            })),
        }
    }
}

/// Why a trace file cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct TraceError {
    /// 1-based line number.
    pub line: u64,
    pub problem: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename = "header")]
struct TaggedHeader {
    #[serde(flatten)]
    header: Header,
}

impl Header {
    /// The header line, without the newline.
    pub fn to_line(&self) -> String {
        let tagged = TaggedHeader { header: self.clone() };
        serde_json::to_string(&tagged).expect("a header always serializes")
    }
}

impl Record {
    /// The record's line, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a record always serializes")
    }

    /// Appends the record's line, without the newline, to `out`: [`Record::to_line`] into
    /// a buffer the caller reuses, so a run does not allocate a string per record.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, self).expect("a record always serializes")
    }
}

/// The last line of a trace: how many records precede it (after the header) and the
/// SHA-256 of every byte before it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct End {
    /// Always `"end"` (a field rather than a serde tag: the two do not combine with
    /// `deny_unknown_fields`).
    #[serde(rename = "type")]
    kind: String,
    records: u64,
    hash: String,
}

/// The problem of every trace without a valid end record.
const INCOMPLETE: &str = "trace is incomplete";

impl Trace {
    /// A whole trace.
    pub fn new(header: Header, records: impl Into<Records>) -> Trace {
        Trace { header, records: records.into(), kept: None }
    }

    /// The 1-based trace line of `records[index]` (the header is line 1).
    pub fn line_of(&self, index: usize) -> u64 {
        match &self.kept {
            Some(kept) => kept.lines.get(index).copied().unwrap_or(u64::MAX),
            None => u64::try_from(index).unwrap_or(u64::MAX).saturating_add(2),
        }
    }

    /// The record at 1-based trace line `line`, if it is in memory.
    pub fn record_at_line(&self, line: u64) -> Option<&Record> {
        match &self.kept {
            Some(kept) => kept.lines.binary_search(&line).ok().map(|i| &self.records[i]),
            None => line.checked_sub(2).and_then(|i| self.records.get(usize::try_from(i).ok()?)),
        }
    }

    /// Records in the whole trace, whether or not all are in memory.
    pub fn record_count(&self) -> u64 {
        match &self.kept {
            Some(kept) => kept.total,
            None => u64::try_from(self.records.len()).unwrap_or(u64::MAX),
        }
    }

    /// The network records, summed: kept from the run, or folded from the records.
    pub fn net(&self) -> std::borrow::Cow<'_, NetSummary> {
        match &self.kept {
            Some(kept) => std::borrow::Cow::Borrowed(&kept.net),
            None => {
                let mut fold = NetFold::new(self.header.end_ms);
                for record in &self.records {
                    fold.push(record);
                }
                std::borrow::Cow::Owned(fold.finish())
            }
        }
    }

    /// The JSONL bytes: the header line, one line per record, then the end record, each
    /// ending in `\n`.
    pub fn to_jsonl(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_jsonl(&mut out).expect("writing to memory does not fail");
        out
    }

    /// Writes [`Trace::to_jsonl`]'s bytes to `out` a line at a time and returns the trace
    /// hash ([`hash_jsonl`] of those bytes), without holding the whole text: a large run's
    /// trace is as big as its records again.
    /// A kept trace ([`Trace::kept`]) has no whole text in memory: its file was written
    /// as the run went, and this returns an error.
    pub fn write_jsonl(&self, out: &mut impl std::io::Write) -> std::io::Result<String> {
        if self.kept.is_some() {
            return Err(std::io::Error::other(
                "the trace's network records were written to its file as the run went; \
                 it is not whole in memory",
            ));
        }
        let mut writer = JsonlWriter::start(&self.header, out)?;
        for record in &self.records {
            writer.line(record.to_line().as_bytes())?;
        }
        writer.finish()
    }

    /// The trace hash: [`hash_jsonl`] of [`Trace::to_jsonl`], computed without holding it.
    /// Panics on a kept trace ([`Trace::kept`]), which has no whole text to hash: its
    /// hash was taken when its file was written ([`StreamedHash`], [`write_spooled`]).
    pub fn hash(&self) -> String {
        self.write_jsonl(&mut std::io::sink()).expect("writing to nowhere does not fail")
    }
}

/// Writes a trace file a line at a time: the header, record lines, then the end record,
/// hashing as it goes.
struct JsonlWriter<'o, W: std::io::Write> {
    out: &'o mut W,
    hasher: crypto::Sha256Stream,
    records: u64,
}

impl<'o, W: std::io::Write> JsonlWriter<'o, W> {
    fn start(header: &Header, out: &'o mut W) -> std::io::Result<Self> {
        let header = header.to_line();
        out.write_all(header.as_bytes())?;
        out.write_all(b"\n")?;
        Ok(JsonlWriter { out, hasher: header_hashed(&header), records: 0 })
    }

    /// One record's line, without its newline.
    fn line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")?;
        self.hasher.update(line);
        self.hasher.update(b"\n");
        self.records += 1;
        Ok(())
    }

    /// Whole record lines, each with its newline, as one piece (a piece may end inside a
    /// line that the next piece completes). The caller counts their records
    /// ([`write_spooled`]).
    fn lines(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.out.write_all(lines)?;
        self.hasher.update(lines);
        Ok(())
    }

    /// Writes the end record and returns the trace hash.
    fn finish(self) -> std::io::Result<String> {
        let (line, hash) = end_line(self.hasher, self.records);
        self.out.write_all(line.as_bytes())?;
        Ok(hash)
    }
}

/// A trace hash's stream after `header_line` (a header's [`Header::to_line`]): its bytes
/// without the build member ([`hash_jsonl`]), and the newline.
fn header_hashed(header_line: &str) -> crypto::Sha256Stream {
    let mut hasher = crypto::Sha256Stream::new();
    match build_member(header_line.as_bytes()) {
        Some((start, end)) => {
            hasher.update(&header_line.as_bytes()[..start]);
            hasher.update(&header_line.as_bytes()[end..]);
        }
        None => hasher.update(header_line.as_bytes()),
    }
    hasher.update(b"\n");
    hasher
}

/// The end record's line (with its newline) after `records` record lines hashed into
/// `hasher`, and the trace hash, which covers that line too.
fn end_line(mut hasher: crypto::Sha256Stream, records: u64) -> (String, String) {
    let end = End { kind: "end".into(), records, hash: hasher.clone().finish_hex() };
    let mut line = serde_json::to_string(&end).expect("an end record serializes");
    line.push('\n');
    hasher.update(line.as_bytes());
    (line, hasher.finish_hex())
}

/// How many newlines `bytes` holds, counted eight bytes at a time (every flag of
/// [`words::exact_bytes_equal`] is a match, so its flags are counted whole).
fn newlines(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    let mut count = 0;
    for chunk in &mut chunks {
        count += u64::from(words::exact_bytes_equal(words::le_word(chunk), b'\n').count_ones());
    }
    count + chunks.remainder().iter().filter(|&&b| b == b'\n').count() as u64
}

/// Writes a trace file from its header and `spool`, the record lines a run wrote as it
/// went (each [`Record::to_line`] and a newline), and returns the trace hash: the same
/// bytes and hash as [`Trace::write_jsonl`] of the whole trace. For a run whose header
/// turned out other than the one its spool was written after ([`StreamedHash`]): the
/// spool is read from after that header. `records` is how many
/// record lines the spool holds, as the run counted them ([`Keeper::total`]), for the
/// end record: counting a big run's spool again, a gigabyte at a thousand servers, would
/// read every byte once more. Debug builds, which every test runs, count them all the
/// same and refuse a spool that holds another number.
pub fn write_spooled(
    header: &Header,
    records: u64,
    spool: &mut impl std::io::BufRead,
    out: &mut impl std::io::Write,
) -> std::io::Result<String> {
    let mut writer = JsonlWriter::start(header, out)?;
    // Copied and hashed as the reader hands it over, a buffer at a time rather than a line
    // at a time: a record's line holds no newline (JSON escapes it), so the records are
    // the newlines.
    let mut last = b'\n';
    let mut counted = 0;
    loop {
        let chunk = match spool.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let Some(&end) = chunk.last() else { break };
        writer.lines(chunk)?;
        if cfg!(debug_assertions) {
            counted += newlines(chunk);
        }
        last = end;
        let taken = chunk.len();
        spool.consume(taken);
    }
    if last != b'\n' {
        return Err(std::io::Error::other("the spool's last line has no newline"));
    }
    if cfg!(debug_assertions) && counted != records {
        let problem = format!("the spool holds {counted} records, not the run's {records}");
        return Err(std::io::Error::other(problem));
    }
    writer.records = records;
    writer.finish()
}

/// SHA-256 of `bytes` in lowercase hex.
pub fn hash_bytes(bytes: &[u8]) -> String {
    crypto::sha256_hex(bytes)
}

/// The start of the header member the hashes leave out.
const BUILD_MEMBER: &[u8] = b"\"mxsim_build\":\"";

/// The hash of trace bytes (a whole trace, or the part before its end record): SHA-256, in
/// lowercase hex, of `jsonl` without the first line's `"mxsim_build":"…",` member. The
/// member is cut as written: from its key to the first `"` after the key, and the comma
/// after that quote (the writer's identifiers hold no quote or backslash). Bytes without
/// the member are hashed whole.
pub fn hash_jsonl(jsonl: &[u8]) -> String {
    let first_line = jsonl.split(|&b| b == b'\n').next().unwrap_or_default();
    match build_member(first_line) {
        Some((start, end)) => {
            let mut kept = Vec::with_capacity(jsonl.len() - (end - start));
            kept.extend_from_slice(&jsonl[..start]);
            kept.extend_from_slice(&jsonl[end..]);
            assert_eq!(kept.len() + (end - start), jsonl.len());
            hash_bytes(&kept)
        }
        None => hash_bytes(jsonl),
    }
}

/// Where the `"mxsim_build":"…",` member lies in a header line: (start, end) bytes.
fn build_member(first_line: &[u8]) -> Option<(usize, usize)> {
    let start = first_line.windows(BUILD_MEMBER.len()).position(|w| w == BUILD_MEMBER)?;
    let value = start + BUILD_MEMBER.len();
    let quote = value + first_line[value..].iter().position(|&b| b == b'"')?;
    (first_line.get(quote + 1) == Some(&b',')).then_some((start, quote + 2))
}

#[cfg(test)]
mod tests;
