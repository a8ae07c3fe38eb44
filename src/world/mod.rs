//! The simulator: a seeded madsim runtime per run, one madsim node per virtual homeserver
//! driving [`Homeserver::handle`], the fault-injecting [`Network`] applied to federation
//! traffic, scripted steps, and the trace.
//!
//! Shape of a run ([`run`]):
//! - **Supervisor** (the `block_on` future): owns the clock's schedule. It sleeps on madsim
//!   timers until the next network event (a delivery or a fault boundary), the next step
//!   or the end, and wakes early when a node has sent something. It then brings the
//!   network to now, executes node faults (crash → `kill`, restart → `restart`, pause /
//!   resume), hands arrived messages and due steps to the nodes' mailboxes, and records
//!   the network's decisions.
//! - **Nodes** (one madsim node per server, its init task = [`node_main`]): wait for their
//!   mailbox or their own timer, then call `handle` once per input and route the outputs:
//!   requests and responses go onto the network as bytes ([`frame`]), timers are kept,
//!   observations and commits are recorded. madsim picks among runnable nodes with its
//!   seeded scheduler, so interleavings vary by seed and repeat exactly for a seed.
//! - **Messages do not use madsim's `Endpoint`**: its 1 ms per call would serialize fan-out
//!   to hundreds of servers, and its partitions let in-flight messages through. Delivery is
//!   the in-memory `net::Network` on madsim timers instead.
//! - **Crash**: the in-memory server is dropped and the madsim node killed; its committed
//!   store (everything `handle` committed; a crash falls between inputs) is kept as its
//!   disk. **Restart**: madsim re-runs the node's init task, which recovers the server
//!   from that store with a fresh volatile state. Responses addressed to an earlier
//!   incarnation are dropped, like a reply on a connection that died with the process.
//!   Messages that reach a crashed server are lost; a request that does so is refused at
//!   once (connection refused: the sender sees a failed request).
//! - Virtual time is whole milliseconds since the start; `origin_server_ts` is
//!   [`crate::stdx::EPOCH_MS`] plus it, plus any clock-skew fault.
//!
//! Files: `plan` (the [`Plan`] and its steps), `runtime` (the supervisor and node tasks),
//! this file (the shared state, booting, routing of inputs and outputs, node faults),
//! `steps` (scripted steps: labels to actions, ownership of handshakes, retries), `record`
//! (observations as trace records, final views, the header), `frame` (message bytes) and
//! `from_scenario`.
//!
//! Architecture Invariant: everything that decides or is recorded is a function of the
//! plan and the seed: one root `Prng` forked per subsystem and server incarnation (the
//! streams are named in [`crate::stdx::streams`]), keys
//! derived from the seed and server name, BTreeMaps only, no wall clock. All state lives in
//! one `Shared` behind a mutex that is never held across an `.await`.

pub mod frame;
pub mod from_scenario;
mod plan;
mod record;
mod runtime;
mod spool;
mod steps;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::homeserver::resolutions::{Counts as ResolutionCounts, SharedResolutions};
use crate::homeserver::store::SharedSnapshots;
use crate::homeserver::verified::VerifiedEvents;
use crate::homeserver::wire::HttpRequest;
use crate::homeserver::{
    Action, ActionKind, Config, Homeserver, Input, Observation, Output, RequestId, store::Store,
};
use crate::matrix::EventId;
use crate::matrix::canonical_json;
use crate::matrix::crypto::{self, KeyRing, SigningKey};
use crate::matrix::ids::LookupMap;
use crate::matrix::pdu::Pdu;
use crate::net::{FaultSchedule, NetConfig, NetEvent, Network, NodeId, NodeMarker};
pub use crate::scenario::{Step, StepAction};
use crate::stdx::{Instant, Prng, streams};
use crate::trace::{self, Body, CheckSettings, Header, NodeChange, Record, Records, Trace};
use frame::{Kind, Message};
pub use plan::{Plan, retry_delay_ms};
pub use runtime::{run, run_spooled, run_with_progress};
use spool::{HeaderNames, Spool};
pub use spool::{RecordSink, SPOOL_CHUNK, SPOOL_HOLD_MAX, SpoolSink};
use steps::membership_kind;

/// The key id every simulated server signs with.
pub const KEY_ID: &str = "ed25519:1";

/// What a run produced.
#[derive(Clone, Debug)]
pub struct RunOutput {
    pub trace: Trace,
    /// Every PDU created, in creation order, as canonical JSON exactly as sent.
    pub events: Vec<Vec<u8>>,
    /// Room labels to room ids (rooms that were created).
    pub rooms: BTreeMap<String, String>,
    /// How the servers used the state resolutions they share (work saved, not a result:
    /// the trace is the same without them).
    pub resolutions: ResolutionCounts,
    /// How many snapshots and large deltas of the state the servers took from the ones
    /// they share instead of keeping their own (memory saved, not a result).
    pub snapshots_shared: u64,
}

/// Where a run has got to, handed to a progress display ([`run_with_progress`]). Nothing
/// in the run depends on who reads it or when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Virtual time reached, and the time the run stops at.
    pub now_ms: u64,
    pub end_ms: u64,
    /// Events created so far.
    pub events: u64,
    /// Network messages delivered so far.
    pub deliveries: u64,
    /// Trace records so far.
    pub records: u64,
}

/// A progress display: called at every supervisor step (many times a virtual second).
pub type ProgressSink = Box<dyn FnMut(&Progress) + Send>;

/// Why a plan cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    #[error("the fault schedule's nodes {schedule:?} are not the servers {servers:?}")]
    NodesMismatch { schedule: Vec<String>, servers: Vec<String> },
    #[error("network configuration: {0}")]
    Network(#[from] crate::net::ConfigError),
}

/// The signing key of `server` in runs with `seed`: SHA-256 of a fixed tag, the seed and
/// the name, as an ed25519 seed.
pub fn server_key(seed: u64, server: &str) -> SigningKey {
    let mut input = b"mxsim/server-key/".to_vec();
    input.extend_from_slice(&seed.to_be_bytes());
    input.extend_from_slice(server.as_bytes());
    SigningKey::from_seed(&crypto::sha256(&input), KEY_ID).expect("the key id is valid")
}

/// An input waiting in a node's mailbox.
#[derive(Debug)]
enum Inbox {
    Input(Input),
    /// Step number `k` of the plan, resolved against labels when the node takes it.
    Step(usize),
}

/// One server as the world sees it.
struct Slot {
    /// Shared by every record of this server that the run keeps most of.
    name: trace::Text,
    key: SigningKey,
    /// `None` while crashed.
    server: Option<Homeserver>,
    /// The committed store kept across a crash.
    disk: Option<Store>,
    incarnation: u32,
    up: bool,
    mailbox: VecDeque<Inbox>,
    waker: Option<Waker>,
    timer_at: Option<Instant>,
    skew_ms: i64,
    /// Requests delivered to this server and not answered yet: (origin's node, id) →
    /// (network message that carried it, origin's incarnation). Entered and taken out
    /// once per request, never walked.
    inbound: LookupMap<(usize, u64), (u64, u32)>,
}

struct Shared {
    plan: Plan,
    /// Every server's public keys, one ring shared by all (not a copy per server).
    keys: Arc<KeyRing>,
    /// The verified events all servers share: each unique event is parsed, hashed and
    /// verified once, and every store refers to that one body.
    verified: Arc<VerifiedEvents>,
    /// The state resolutions all servers share: each distinct resolution of the same
    /// states, read the same way, is computed once.
    resolutions: Arc<SharedResolutions>,
    /// The snapshots of the state all servers' stores share: one copy of each state.
    snapshots: Arc<SharedSnapshots>,
    root: Prng,
    net: Network<Message>,
    slots: Vec<Slot>,
    /// Node of each server name (only looked up).
    index: LookupMap<String, usize>,
    /// Room labels → room ids, event labels → event ids.
    rooms: BTreeMap<String, String>,
    labels: BTreeMap<String, EventId>,
    records: Records,
    /// Set for a spooled run: where the records go (`records` then holds the kept ones).
    spool: Option<Spool>,
    last_t: u64,
    /// Every PDU created, as canonical JSON.
    created: Vec<Vec<u8>>,
    created_ids: BTreeSet<EventId>,
    /// (node, event id) pairs whose stored PDU the trace already holds in a differing copy.
    copies: BTreeSet<(usize, EventId)>,
    /// The JSON last recorded for each event id, with the body it was taken from: the
    /// records of the same shared body hold one value ([`record::recorded_json`]).
    recorded_json: LookupMap<EventId, (Arc<Pdu>, Arc<canonical_json::Object>)>,
    /// One shared copy of each room id and each state hash that records name
    /// ([`record::shared_text`]).
    room_texts: LookupMap<trace::Text, trace::Text>,
    state_hash_texts: LookupMap<trace::Text, trace::Text>,
    /// The `what` of `send` records: one shared text per response status, and a buffer
    /// a request's line is written into.
    response_lines: BTreeMap<u16, trace::Text>,
    what_line: String,
    /// The network's events taken at each drain, kept between drains for its room
    /// ([`Network::swap_events`](crate::net::Network::swap_events)).
    net_events: Vec<NetEvent>,
    /// A node sent something: the supervisor must look at the network again.
    net_dirty: bool,
    supervisor_waker: Option<Waker>,
    next_step: usize,
    /// Membership requests in flight that a step started, so that a failure that comes
    /// later is traced to its step: (node, request id) → (time it times out, step).
    step_requests: BTreeMap<(usize, u64), (u64, usize)>,
    /// Failed attempts per step.
    failures: BTreeMap<usize, u32>,
    /// Steps waiting to be tried again: (time, step).
    retries: BTreeSet<(u64, usize)>,
    /// Network messages delivered so far (for [`Progress`]).
    delivered: u64,
    progress: Option<ProgressSink>,
}

impl Shared {
    fn new(plan: &Plan, net: Network<Message>, root: &Prng) -> Shared {
        let mut keys = KeyRing::new();
        let mut slots = Vec::new();
        for name in &plan.servers {
            let key = server_key(plan.seed, name);
            keys.entry(name.clone()).or_default().insert(KEY_ID.into(), key.public_key());
            slots.push(Slot {
                name: trace::Text::from(name.as_str()),
                key,
                server: None,
                disk: None,
                incarnation: 0,
                up: true,
                mailbox: VecDeque::new(),
                waker: None,
                timer_at: None,
                skew_ms: 0,
                inbound: LookupMap::new(),
            });
        }
        let index = plan.servers.iter().enumerate().map(|(i, name)| (name.clone(), i)).collect();
        let keys = Arc::new(keys);
        Shared {
            plan: plan.clone(),
            verified: Arc::new(VerifiedEvents::new(Arc::clone(&keys))),
            resolutions: Arc::new(SharedResolutions::new()),
            snapshots: Arc::new(SharedSnapshots::new()),
            keys,
            root: root.clone(),
            net,
            slots,
            index,
            rooms: BTreeMap::new(),
            labels: BTreeMap::new(),
            records: Records::new(),
            spool: None,
            last_t: 0,
            created: Vec::new(),
            created_ids: BTreeSet::new(),
            copies: BTreeSet::new(),
            recorded_json: LookupMap::new(),
            net_events: Vec::new(),
            net_dirty: false,
            supervisor_waker: None,
            next_step: 0,
            step_requests: BTreeMap::new(),
            failures: BTreeMap::new(),
            retries: BTreeSet::new(),
            delivered: 0,
            progress: None,
            room_texts: LookupMap::new(),
            state_hash_texts: LookupMap::new(),
            response_lines: BTreeMap::new(),
            what_line: String::new(),
        }
    }

    /// Hands the progress display where the run has got to.
    fn report_progress(&mut self, now_ms: u64) {
        let Some(sink) = self.progress.as_mut() else { return };
        sink(&Progress {
            now_ms,
            end_ms: self.plan.end_ms,
            events: self.created.len() as u64,
            deliveries: self.delivered,
            records: self.spool.as_ref().map_or(self.records.len() as u64, |s| s.keeper.total()),
        });
    }

    fn record(&mut self, t: u64, body: Body) {
        // Network decisions carry their own time, which is never after now.
        let t = t.max(self.last_t);
        self.last_t = t;
        let record = Record { t, body };
        match self.spool.as_mut() {
            None => self.records.push(record),
            Some(spool) => {
                spool.writer.write_line(&record, &mut spool.lines);
                spool.lines.push(b'\n');
                let full = spool.lines.len() >= SPOOL_CHUNK;
                spool.keeper.push(record);
                if full {
                    self.hand_over_lines();
                }
            }
        }
    }

    /// The shared `what` of a response's `send` record.
    fn response_line(&mut self, status: u16) -> trace::Text {
        let line = || trace::Text::from(format!("response {status}"));
        self.response_lines.entry(status).or_insert_with(line).clone()
    }

    /// Records the network's decisions since the last call (except `Sent`, which
    /// [`Shared::send`] records with what the message is, and `Scheduled`).
    fn drain_net(&mut self) {
        let mut events = std::mem::take(&mut self.net_events);
        self.net.swap_events(&mut events);
        for event in events.drain(..) {
            let (at, body) = match event {
                NetEvent::Sent { .. } | NetEvent::Scheduled { .. } => continue,
                NetEvent::Dropped { at, id, copy, reason } => {
                    (at, Body::Drop { msg: id.0, copy, reason })
                }
                NetEvent::Corrupted { at, id, offset, before, after } => {
                    (at, Body::Corrupt { msg: id.0, offset, before, after })
                }
                NetEvent::Duplicated { at, id } => (at, Body::Duplicate { msg: id.0 }),
                NetEvent::Held { at, id, copy, fault } => {
                    (at, Body::Hold { msg: id.0, copy, fault })
                }
                NetEvent::Released { at, id, copy } => (at, Body::Release { msg: id.0, copy }),
                NetEvent::Delivered { at, id, copy } => (at, Body::Deliver { msg: id.0, copy }),
                NetEvent::FaultStarted { at, fault } => (at, Body::FaultStart { fault }),
                NetEvent::FaultEnded { at, fault } => (at, Body::FaultEnd { fault }),
            };
            self.record(at.ms, body);
        }
        self.net_events = events;
    }

    /// Puts a message on the network and records it.
    fn send(&mut self, now: u64, from: usize, to: usize, message: Message, what: trace::Text) {
        let bytes = u64::try_from(message.byte_count()).expect("sizes fit u64");
        let request = match message.kind {
            Kind::Response { request_msg, .. } => Some(request_msg),
            Kind::Request { .. } => None,
        };
        let outcome = self.net.send(
            Instant::from_ms(now),
            NodeId(u32::try_from(from).expect("NODES_MAX fits u32")),
            NodeId(u32::try_from(to).expect("NODES_MAX fits u32")),
            message,
            bytes,
        );
        let msg = match outcome {
            crate::net::SendOutcome::Dropped { id, .. }
            | crate::net::SendOutcome::Scheduled { id, .. } => id.0,
        };
        let (from, to) = (self.slots[from].name.clone(), self.slots[to].name.clone());
        self.record(now, Body::Send { msg, from, to, bytes, what, request });
        self.drain_net();
        self.net_dirty = true;
        if let Some(waker) = self.supervisor_waker.take() {
            waker.wake();
        }
    }

    fn push(&mut self, node: usize, inbox: Inbox) {
        let slot = &mut self.slots[node];
        slot.mailbox.push_back(inbox);
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
    }

    /// Starts (or restarts) a node's server: new, or recovered from its disk.
    fn boot(&mut self, node: usize, now: u64) {
        let plan_config = self.plan.config_of(&self.slots[node].name).clone();
        let keys = Arc::clone(&self.keys);
        let slot = &mut self.slots[node];
        // A node boots once per incarnation: at the start, or after a crash took its server.
        assert!(slot.server.is_none(), "{} booted while running", slot.name);
        let prng = self.root.fork(&streams::server(&slot.name, slot.incarnation));
        let at = Instant::from_ms(now);
        let mut server = match slot.disk.take() {
            None => Homeserver::new(&slot.name, slot.key.clone(), keys, plan_config, prng, at),
            Some(store) => Homeserver::recover(
                &slot.name,
                slot.key.clone(),
                keys,
                plan_config,
                prng,
                at,
                store,
            ),
        };
        let shared = server.share_verified(&self.verified);
        assert!(shared, "the servers and the cache use the world's one key ring");
        if self.plan.share_resolutions {
            server.share_resolutions(&self.resolutions);
        }
        if self.plan.share_snapshots {
            server.share_snapshots(&self.snapshots);
        }
        let recovered = (slot.incarnation > 0)
            .then(|| server.store().events().map(|(id, _)| id.as_str().to_owned()).collect());
        slot.server = Some(server);
        slot.up = true;
        slot.skew_ms = 0;
        let name = slot.name.as_str().to_owned();
        if let Some(event_ids) = recovered {
            self.record(now, Body::Recovered { server: name, event_ids });
        }
        // A skew fault active at restart applies to the new process too.
        self.apply_skew(node, now);
    }

    fn apply_skew(&mut self, node: usize, now: u64) {
        let id = NodeId(u32::try_from(node).expect("NODES_MAX fits u32"));
        let clock = self.net.node_clock(id, Instant::from_ms(now));
        let offset = clock - i64::try_from(now).expect("virtual time fits i64");
        let slot = &mut self.slots[node];
        if slot.up && offset != slot.skew_ms {
            slot.skew_ms = offset;
            self.push(node, Inbox::Input(Input::ClockSkew { offset_ms: offset }));
        }
    }

    /// The next thing node `node` should handle, if any is due.
    fn take_work(&mut self, node: usize, now: u64) -> Option<Inbox> {
        let slot = &mut self.slots[node];
        if let Some(inbox) = slot.mailbox.pop_front() {
            return Some(inbox);
        }
        match slot.timer_at {
            Some(at) if at.ms <= now => {
                slot.timer_at = None;
                Some(Inbox::Input(Input::Timer))
            }
            _ => None,
        }
    }

    /// Handles one input on node `node` and routes what comes out.
    fn process(&mut self, node: usize, inbox: Inbox, now: u64) {
        // The steps this call works for: the step itself, or the steps whose membership
        // requests this response or time-out settles.
        let mut owners: Vec<usize> = Vec::new();
        let (input, step) = match inbox {
            Inbox::Input(input) => (input, None),
            Inbox::Step(k) => {
                let step = self.plan.steps[k].clone();
                match self.resolve(&step) {
                    Ok(action) => {
                        let body = Body::Action {
                            server: step.server.as_str().into(),
                            user: step.user.as_str().into(),
                            action: step.to_string().into(),
                            step: Some(k as u64),
                            line: Some(step.line),
                        };
                        self.record(now, body);
                        owners.push(k);
                        (Input::Action { user: step.user.clone(), action }, Some(step))
                    }
                    Err(reason) => {
                        self.step_failed(k, reason, now);
                        return;
                    }
                }
            }
        };
        match &input {
            Input::Response { id, .. } => {
                if let Some((_, k)) = self.step_requests.remove(&(node, id.0)) {
                    owners.push(k);
                }
            }
            Input::Timer => {
                // The homeserver fails every request whose time-out has passed.
                let expired: Vec<(usize, u64)> = self
                    .step_requests
                    .range((node, 0)..=(node, u64::MAX))
                    .filter(|(_, (deadline, _))| *deadline <= now)
                    .map(|(key, _)| *key)
                    .collect();
                for key in expired {
                    let (_, k) = self.step_requests.remove(&key).expect("just listed");
                    if !owners.contains(&k) {
                        owners.push(k);
                    }
                }
            }
            _ => {}
        }
        let Some(server) = self.slots[node].server.as_mut() else { return };
        let outputs = server.handle(Instant::from_ms(now), input);
        self.route(node, outputs, step.as_ref(), &owners, now);
    }

    fn route(
        &mut self,
        node: usize,
        outputs: Vec<Output>,
        step: Option<&Step>,
        owners: &[usize],
        now: u64,
    ) {
        let mut labelled = false;
        for output in outputs {
            match output {
                Output::Request { destination, id, request } => {
                    if let Some(kind) = membership_kind(&request.path_and_query) {
                        if let Some(k) = self.owner_of(node, kind, owners) {
                            let name = &self.slots[node].name;
                            let timeout = self.plan.config_of(name).request_timeout.ms;
                            let deadline = now + timeout;
                            self.step_requests.insert((node, id.0), (deadline, k));
                        }
                    }
                    self.send_request(node, &destination, id, request, now);
                }
                Output::Observed(Observation::ActionFailed { user, kind, reason }) => {
                    match self.owner_of(node, kind, owners) {
                        Some(k) => self.step_failed(k, reason, now),
                        None => {
                            let failed = Observation::ActionFailed { user, kind, reason };
                            self.observe(node, failed, step, &mut labelled, now);
                        }
                    }
                }
                Output::Response { origin, id, response } => {
                    // Only a request from a known server is ever held in `inbound`.
                    let Some(&to) = self.index.get(&*origin) else { continue };
                    let slot = &mut self.slots[node];
                    let Some((request_msg, incarnation)) = slot.inbound.remove(&(to, id.0)) else {
                        continue;
                    };
                    let what = self.response_line(response.status);
                    let kind = Kind::Response { id: id.0, incarnation, request_msg };
                    self.send(now, node, to, Message::response(kind, response), what);
                }
                Output::SetTimer { at } => self.slots[node].timer_at = Some(at),
                Output::Committed { event_ids } => {
                    let server = self.slots[node].name.clone();
                    let event_ids = event_ids.iter().map(|e| e.shared_text().into()).collect();
                    self.record(now, Body::Commit { server, event_ids });
                }
                Output::Observed(observation) => {
                    self.observe(node, observation, step, &mut labelled, now)
                }
            }
        }
    }

    fn send_request(
        &mut self,
        node: usize,
        destination: &str,
        id: RequestId,
        request: HttpRequest,
        now: u64,
    ) {
        let Some(&to) = self.index.get(destination) else {
            // No such server: the name does not resolve.
            self.push(node, Inbox::Input(Input::Response { id, response: None }));
            return;
        };
        let incarnation = self.slots[node].incarnation;
        // Written into a buffer the world keeps, so that the one allocation per request
        // sent is the shared text's.
        let line = &mut self.what_line;
        line.clear();
        line.push_str(request.method.as_str());
        line.push(' ');
        line.push_str(path_only(&request.path_and_query));
        let what = trace::Text::from(line.as_str());
        let message = Message::request(Kind::Request { id: id.0, incarnation }, request);
        self.send(now, node, to, message, what);
    }

    /// Hands a message that arrived to its destination.
    fn deliver(&mut self, delivery: crate::net::Delivery<Message>, now: u64) {
        self.delivered += 1;
        let to = usize::try_from(delivery.to.0).expect("node ids fit usize");
        let from = usize::try_from(delivery.from.0).expect("node ids fit usize");
        let msg = delivery.id.0;
        match delivery.payload.kind {
            Kind::Request { id, incarnation } => {
                if !self.slots[to].up {
                    let server = self.slots[to].name.as_str().to_owned();
                    self.record(now, Body::DropDown { msg, copy: delivery.copy, server });
                    // Connection refused: the requester learns at once.
                    if self.slots[from].up && self.slots[from].incarnation == incarnation {
                        let response = Input::Response { id: RequestId(id), response: None };
                        self.push(from, Inbox::Input(response));
                    }
                    return;
                }
                match delivery.payload.into_request() {
                    Some(request) => {
                        self.slots[to].inbound.insert((from, id), (msg, incarnation));
                        let origin = self.slots[from].name.shared();
                        let input = Input::Request { origin, id: RequestId(id), request };
                        self.push(to, Inbox::Input(input));
                    }
                    None => {
                        // The receiver's HTTP layer cannot read the request line.
                        let response = frame::unreadable_request();
                        let kind = Kind::Response { id, incarnation, request_msg: msg };
                        let what = self.response_line(400);
                        self.send(now, to, from, Message::response(kind, response), what);
                    }
                }
            }
            Kind::Response { id, incarnation, .. } => {
                let slot = &self.slots[to];
                if !slot.up || slot.incarnation != incarnation {
                    let server = slot.name.as_str().to_owned();
                    self.record(now, Body::DropDown { msg, copy: delivery.copy, server });
                    return;
                }
                let response = delivery.payload.into_response();
                self.push(to, Inbox::Input(Input::Response { id: RequestId(id), response }));
            }
        }
    }

    /// Executes a node fault.
    fn node_fault(
        &mut self,
        node: usize,
        marker: NodeMarker,
        now: u64,
        madsim_id: madsim::task::NodeId,
    ) {
        let handle = madsim::runtime::Handle::current();
        let server = self.slots[node].name.as_str().to_owned();
        let mut lost_actions: Vec<(String, ActionKind, String)> = Vec::new();
        let change = match marker {
            NodeMarker::Crash => {
                let slot = &mut self.slots[node];
                if !slot.up {
                    return;
                }
                // The homeserver names the handshakes it loses (which request to which
                // server); the steps they belong to are found below.
                lost_actions =
                    slot.server.as_ref().map(|s| s.actions_in_flight()).unwrap_or_default();
                slot.disk = slot.server.take().map(|s| s.store().clone());
                slot.up = false;
                slot.mailbox.clear();
                slot.waker = None;
                slot.timer_at = None;
                slot.inbound.clear();
                handle.kill(madsim_id);
                NodeChange::Crash
            }
            NodeMarker::Restart => {
                let slot = &mut self.slots[node];
                if slot.up {
                    return;
                }
                slot.incarnation += 1;
                // The init task boots the server from its disk when it first runs.
                handle.restart(madsim_id);
                NodeChange::Restart
            }
            NodeMarker::Pause => {
                handle.pause(madsim_id);
                NodeChange::Pause
            }
            NodeMarker::Resume => {
                handle.resume(madsim_id);
                NodeChange::Resume
            }
            NodeMarker::ClockChange => {
                // Only the node's clock offset changes; a node that is down gets it at
                // restart.
                self.apply_skew(node, now);
                return;
            }
        };
        self.record(now, Body::Node { server, change });
        if change == NodeChange::Crash {
            // Handshakes under way die with the process: their steps failed.
            let mut dead: Vec<usize> = self
                .step_requests
                .range((node, 0)..=(node, u64::MAX))
                .map(|(_, (_, k))| *k)
                .collect();
            dead.sort_unstable();
            dead.dedup();
            for k in dead {
                // The homeserver's own words for the lost handshake when it has them
                // ("make_join via hs1: …"), else a general one.
                let step = &self.plan.steps[k];
                let own = |(user, kind, _): &(String, ActionKind, String)| {
                    *user == step.user && *kind == step.action.kind()
                };
                let reason = match lost_actions.iter().position(own) {
                    Some(i) => lost_actions.swap_remove(i).2,
                    None => "the server crashed before the action finished".to_owned(),
                };
                self.step_failed(k, reason, now);
            }
        }
    }
}

/// The path of a request target without its query.
fn path_only(target: &str) -> &str {
    target.split_once('?').map_or(target, |(path, _)| path)
}
