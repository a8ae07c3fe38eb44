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
//!   [`crate::homeserver::server::EPOCH_MS`] plus it, plus any clock-skew fault.
//!
//! Architecture Invariant: everything that decides or is recorded is a function of the
//! plan and the seed: one root `Prng` forked per subsystem and server incarnation, keys
//! derived from the seed and server name, BTreeMaps only, no wall clock. All state lives in
//! one `Shared` behind a mutex that is never held across an `.await`.

pub mod frame;
pub mod from_scenario;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use serde_json::Value;

use crate::homeserver::wire::HttpRequest;
use crate::homeserver::{
    Action, Config, Homeserver, Input, Observation, Output, RequestId, store::Store,
};
use crate::matrix::canonical_json::{self, Object};
use crate::matrix::crypto::{self, KeyRing, SigningKey};
use crate::matrix::{EventId, RoomVersion};
use crate::net::{FaultSchedule, NetConfig, NetEvent, Network, NodeId, NodeMarker};
use crate::stdx::{Instant, Prng};
use crate::trace::{self, Body, CheckSettings, Header, NodeChange, Record, Trace};
use frame::{Kind, Message};

/// The key id every simulated server signs with.
pub const KEY_ID: &str = "ed25519:1";

/// Everything a run needs, already validated (the scenario module builds it).
#[derive(Clone, Debug)]
pub struct Plan {
    pub scenario: String,
    pub seed: u64,
    /// Server names; the fault schedule's nodes must be exactly these, in this order.
    pub servers: Vec<String>,
    /// Steps sorted by time (ties keep their order).
    pub steps: Vec<PlanStep>,
    pub network: NetConfig,
    pub faults: FaultSchedule,
    /// The run stops at this virtual time.
    pub end_ms: u64,
    pub check: CheckSettings,
    pub server_config: Config,
    /// Servers with settings of their own (`config` in a `[[server]]` table).
    pub server_configs: BTreeMap<String, Config>,
    pub mxsim_version: String,
    /// The swarm configuration the scenario was drawn with, recorded in the trace header.
    pub swarm: Option<serde_json::Value>,
}

impl Plan {
    /// The homeserver settings of `server`.
    pub fn config_of(&self, server: &str) -> &Config {
        self.server_configs.get(server).unwrap_or(&self.server_config)
    }
}

/// One thing a user does at a given time.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanStep {
    pub at_ms: u64,
    pub server: String,
    pub user: String,
    pub action: PlanAction,
    /// Names the event this step creates, for later `Redact` steps.
    pub label: Option<String>,
    /// The step's line in the scenario file (0 for plans built by hand).
    pub line: u64,
    /// Whether the scenario says the step must succeed or fail (the `expectations`
    /// invariant judges it from the trace).
    pub expect: crate::scenario::StepExpect,
    /// How often the step is tried again after it failed (membership steps only).
    pub retries: u32,
}

/// The wait before retry `n` (from 1) of a failed step: 5 s, doubling, at most 60 s
/// (docs/scenarios.md).
pub fn retry_delay_ms(n: u32) -> u64 {
    let doublings = n.saturating_sub(1).min(4);
    (5_000u64 << doublings).min(60_000)
}

/// The kind of membership handshake a federation request belongs to, from its path:
/// these are the requests a step's `join`, `leave`, `knock` or `invite` makes.
fn membership_kind(path: &str) -> Option<&'static str> {
    let path = path_only(path);
    [
        ("/make_join/", "join"),
        ("/send_join/", "join"),
        ("/make_leave/", "leave"),
        ("/send_leave/", "leave"),
        ("/make_knock/", "knock"),
        ("/send_knock/", "knock"),
        ("/invite/", "invite"),
    ]
    .into_iter()
    .find(|(part, _)| path.contains(part))
    .map(|(_, kind)| kind)
}

/// The action kind of a plan action, as failures name it (the first word).
fn action_kind(action: &PlanAction) -> &'static str {
    match action {
        PlanAction::CreateRoom { .. } => "create_room",
        PlanAction::Send { .. } | PlanAction::Power { .. } => "send",
        PlanAction::Invite { .. } => "invite",
        PlanAction::Join { .. } => "join",
        PlanAction::Leave { .. } => "leave",
        PlanAction::Kick { .. } => "kick",
        PlanAction::Ban { .. } => "ban",
        PlanAction::Unban { .. } => "unban",
        PlanAction::Knock { .. } => "knock",
        PlanAction::Redact { .. } => "redact",
        PlanAction::Upgrade { .. } => "upgrade",
    }
}

/// A user action with rooms and events named by labels (their ids exist only at run time).
#[derive(Clone, Debug, PartialEq)]
pub enum PlanAction {
    CreateRoom {
        room: String,
        version: RoomVersion,
        public: bool,
        name: Option<String>,
        topic: Option<String>,
    },
    Send {
        room: String,
        event_type: String,
        state_key: Option<String>,
        content: Object,
    },
    Invite {
        room: String,
        target: String,
    },
    Join {
        room: String,
        via: Vec<String>,
    },
    Leave {
        room: String,
        via: Vec<String>,
    },
    Kick {
        room: String,
        target: String,
    },
    Ban {
        room: String,
        target: String,
    },
    Unban {
        room: String,
        target: String,
    },
    Knock {
        room: String,
        via: Vec<String>,
    },
    Redact {
        room: String,
        target_label: String,
    },
    Upgrade {
        room: String,
        version: RoomVersion,
        new_room: String,
    },
    /// Set `target`'s power level in the current `m.room.power_levels` as this server sees
    /// it at the time of the step.
    Power {
        room: String,
        target: String,
        level: i64,
    },
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct RunOutput {
    pub trace: Trace,
    /// Every PDU created, in creation order, as canonical JSON exactly as sent.
    pub events: Vec<Vec<u8>>,
    /// Room labels to room ids (rooms that were created).
    pub rooms: BTreeMap<String, String>,
}

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

/// Runs a plan to its end and returns the trace. Deterministic: the same plan and seed give
/// the same trace bytes.
pub fn run(plan: &Plan) -> Result<RunOutput, WorldError> {
    let schedule: Vec<String> = plan.faults.nodes().iter().map(|n| n.as_str().to_owned()).collect();
    if schedule != plan.servers {
        return Err(WorldError::NodesMismatch { schedule, servers: plan.servers.clone() });
    }
    let root = Prng::from_seed(plan.seed);
    let network = Network::new(plan.network.clone(), plan.faults.clone(), root.fork("net"))?;
    let shared = Arc::new(Mutex::new(Shared::new(plan, network, &root)));

    let runtime =
        madsim::runtime::Runtime::with_seed_and_config(plan.seed, madsim::Config::default());
    let mut handles = Vec::new();
    for (index, name) in plan.servers.iter().enumerate() {
        let shared = Arc::clone(&shared);
        let handle = runtime
            .create_node()
            .name(name.clone())
            .init(move || node_main(Arc::clone(&shared), index))
            .build();
        handles.push(handle.id());
    }
    let supervisor_shared = Arc::clone(&shared);
    runtime.block_on(supervise(supervisor_shared, handles));
    drop(runtime);
    // madsim keeps the nodes' init closures (and their clones of `shared`) past the
    // runtime's end, so take the results out and free the servers rather than unwrap.
    let mut world = shared.lock().expect("no task panicked holding the world lock");
    let output = world.finish();
    world.slots.clear();
    Ok(output)
}

/// Virtual milliseconds since the run started.
fn now_ms() -> u64 {
    let elapsed = madsim::time::TimeHandle::current().elapsed();
    u64::try_from(elapsed.as_millis()).expect("virtual time fits u64")
}

/// Sleeps until virtual millisecond `at` (at least until the next millisecond).
fn sleep_until_ms(at: u64) -> madsim::time::Sleep {
    let now = madsim::time::TimeHandle::current().elapsed();
    let target = std::time::Duration::from_millis(at);
    madsim::time::sleep(target.saturating_sub(now))
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
    name: String,
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
    /// Requests delivered to this server and not answered yet: (origin, id) → (network
    /// message that carried it, origin's incarnation).
    inbound: BTreeMap<(String, u64), (u64, u32)>,
}

struct Shared {
    plan: Plan,
    keys: KeyRing,
    root: Prng,
    net: Network<Message>,
    slots: Vec<Slot>,
    index: BTreeMap<String, usize>,
    /// Room labels → room ids, event labels → event ids.
    rooms: BTreeMap<String, String>,
    labels: BTreeMap<String, EventId>,
    records: Vec<Record>,
    last_t: u64,
    /// Every PDU created, as canonical JSON.
    created: Vec<Vec<u8>>,
    created_ids: BTreeSet<EventId>,
    /// Event ids whose stored PDU the trace already holds in a differing copy.
    copies: BTreeSet<(String, EventId)>,
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
}

impl Shared {
    fn new(plan: &Plan, net: Network<Message>, root: &Prng) -> Shared {
        let mut keys = KeyRing::new();
        let mut slots = Vec::new();
        for name in &plan.servers {
            let key = server_key(plan.seed, name);
            keys.entry(name.clone()).or_default().insert(KEY_ID.into(), key.public_key());
            slots.push(Slot {
                name: name.clone(),
                key,
                server: None,
                disk: None,
                incarnation: 0,
                up: true,
                mailbox: VecDeque::new(),
                waker: None,
                timer_at: None,
                skew_ms: 0,
                inbound: BTreeMap::new(),
            });
        }
        let index = plan.servers.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
        Shared {
            plan: plan.clone(),
            keys,
            root: root.clone(),
            net,
            slots,
            index,
            rooms: BTreeMap::new(),
            labels: BTreeMap::new(),
            records: Vec::new(),
            last_t: 0,
            created: Vec::new(),
            created_ids: BTreeSet::new(),
            copies: BTreeSet::new(),
            net_dirty: false,
            supervisor_waker: None,
            next_step: 0,
            step_requests: BTreeMap::new(),
            failures: BTreeMap::new(),
            retries: BTreeSet::new(),
        }
    }

    fn record(&mut self, t: u64, body: Body) {
        // Network decisions carry their own time, which is never after now.
        let t = t.max(self.last_t);
        self.last_t = t;
        self.records.push(Record { t, body });
    }

    fn name(&self, node: NodeId) -> String {
        self.slots[usize::try_from(node.0).expect("node ids fit usize")].name.clone()
    }

    /// Records the network's decisions since the last call (except `Sent`, which
    /// [`Shared::send`] records with what the message is, and `Scheduled`).
    fn drain_net(&mut self) {
        for event in self.net.take_events() {
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
    }

    /// Puts a message on the network and records it.
    fn send(&mut self, now: u64, from: usize, to: usize, message: Message, what: String) {
        let bytes = u64::try_from(message.bytes.len()).expect("sizes fit u64");
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
        let keys = self.keys.clone();
        let slot = &mut self.slots[node];
        let prng = self.root.fork(&format!("server/{}/{}", slot.name, slot.incarnation));
        let at = Instant::from_ms(now);
        let server = match slot.disk.take() {
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
        let recovered = (slot.incarnation > 0)
            .then(|| server.store().events().map(|(id, _)| id.as_str().to_owned()).collect());
        slot.server = Some(server);
        slot.up = true;
        slot.skew_ms = 0;
        let name = slot.name.clone();
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
                match self.resolve(node, &step) {
                    Ok(action) => {
                        let body = Body::Action {
                            server: step.server.clone(),
                            user: step.user.clone(),
                            action: describe(&step.action),
                            step: Some(k as u64),
                            line: Some(step.line),
                        };
                        self.record(now, body);
                        owners.push(k);
                        (Input::Action(action), Some(step))
                    }
                    Err(reason) => {
                        self.step_failed(k, describe(&step.action), reason, now);
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

    /// Records that step `k` failed, and when it is tried again if it has retries left
    /// (before the end of the run).
    fn step_failed(&mut self, k: usize, action: String, reason: String, now: u64) {
        self.step_requests.retain(|_, (_, owner)| *owner != k);
        let step = &self.plan.steps[k];
        let failures = self.failures.entry(k).or_insert(0);
        *failures += 1;
        let retry_at_ms = (*failures <= step.retries)
            .then(|| now + retry_delay_ms(*failures))
            .filter(|at| *at < self.plan.end_ms);
        if let Some(at) = retry_at_ms {
            self.retries.insert((at, k));
        }
        let body = Body::ActionFailed {
            server: step.server.clone(),
            action,
            reason,
            step: Some(k as u64),
            line: Some(step.line),
            retry_at_ms,
        };
        self.record(now, body);
    }

    /// The step a membership request or failure of `kind` on `node` belongs to: one of
    /// this call's `owners` of that kind, else the earliest step of that kind on `node`
    /// with a request in flight.
    fn owner_of(&self, node: usize, kind: &str, owners: &[usize]) -> Option<usize> {
        let same_kind = |k: &usize| action_kind(&self.plan.steps[*k].action) == kind;
        owners.iter().copied().find(same_kind).or_else(|| {
            self.step_requests
                .range((node, 0)..=(node, u64::MAX))
                .map(|(_, (_, k))| *k)
                .filter(same_kind)
                .min()
        })
    }

    /// Turns a step's labels into ids and the action the homeserver takes.
    fn resolve(&self, node: usize, step: &PlanStep) -> Result<Action, String> {
        let user = step.user.clone();
        let room = |label: &str| -> Result<String, String> {
            self.rooms.get(label).cloned().ok_or_else(|| format!("room {label:?} does not exist"))
        };
        Ok(match &step.action {
            PlanAction::CreateRoom { version, public, name, topic, .. } => Action::CreateRoom {
                user,
                version: *version,
                public: *public,
                name: name.clone(),
                topic: topic.clone(),
            },
            PlanAction::Send { room: r, event_type, state_key, content } => Action::Send {
                user,
                room_id: room(r)?,
                event_type: event_type.clone(),
                state_key: state_key.clone(),
                content: content.clone(),
            },
            PlanAction::Invite { room: r, target } => {
                Action::Invite { user, room_id: room(r)?, target: target.clone() }
            }
            PlanAction::Join { room: r, via } => {
                Action::Join { user, room_id: room(r)?, via: via.clone() }
            }
            PlanAction::Leave { room: r, via } => {
                Action::Leave { user, room_id: room(r)?, via: via.clone() }
            }
            PlanAction::Kick { room: r, target } => {
                Action::Kick { user, room_id: room(r)?, target: target.clone() }
            }
            PlanAction::Ban { room: r, target } => {
                Action::Ban { user, room_id: room(r)?, target: target.clone() }
            }
            PlanAction::Unban { room: r, target } => {
                Action::Unban { user, room_id: room(r)?, target: target.clone() }
            }
            PlanAction::Knock { room: r, via } => {
                Action::Knock { user, room_id: room(r)?, via: via.clone() }
            }
            PlanAction::Redact { room: r, target_label } => {
                let event_id = self
                    .labels
                    .get(target_label)
                    .cloned()
                    .ok_or_else(|| format!("no event labelled {target_label:?} was created"))?;
                Action::Redact { user, room_id: room(r)?, event_id }
            }
            PlanAction::Upgrade { room: r, version, .. } => {
                Action::Upgrade { user, room_id: room(r)?, version: *version }
            }
            PlanAction::Power { room: r, target, level } => {
                let room_id = room(r)?;
                let content = self.power_levels(node, &room_id, target, *level)?;
                Action::Send {
                    user,
                    room_id,
                    event_type: "m.room.power_levels".into(),
                    state_key: Some(String::new()),
                    content,
                }
            }
        })
    }

    /// The current power levels of the room at `node` with `target` set to `level`.
    fn power_levels(
        &self,
        node: usize,
        room_id: &str,
        target: &str,
        level: i64,
    ) -> Result<Object, String> {
        let server = self.slots[node].server.as_ref().ok_or("server is down")?;
        let state = server.current_state(room_id).ok_or("server is not in the room")?;
        let key = ("m.room.power_levels".to_owned(), String::new());
        let id = state.get(&key).ok_or("the room has no power levels")?;
        let pdu = server.store().pdu(id).ok_or("power levels event not stored")?;
        let mut content = pdu.content().clone();
        let users = content.entry("users").or_insert_with(|| Value::Object(Object::new()));
        if let Value::Object(users) = users {
            users.insert(target.to_owned(), Value::from(level));
        } else {
            return Err("power levels `users` is not an object".into());
        }
        Ok(content)
    }

    fn route(
        &mut self,
        node: usize,
        outputs: Vec<Output>,
        step: Option<&PlanStep>,
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
                    self.send_request(node, &destination, id, &request, now);
                }
                Output::Observed(Observation::ActionFailed { action, reason }) => {
                    let kind = action.split_whitespace().next().unwrap_or("");
                    match self.owner_of(node, kind, owners) {
                        Some(k) => self.step_failed(k, action, reason, now),
                        None => {
                            let server = self.slots[node].name.clone();
                            let body = Body::ActionFailed {
                                server,
                                action,
                                reason,
                                step: None,
                                line: None,
                                retry_at_ms: None,
                            };
                            self.record(now, body);
                        }
                    }
                }
                Output::Response { origin, id, response } => {
                    let slot = &mut self.slots[node];
                    let Some((request_msg, incarnation)) =
                        slot.inbound.remove(&(origin.clone(), id.0))
                    else {
                        continue;
                    };
                    let Some(&to) = self.index.get(&origin) else { continue };
                    let message = Message {
                        kind: Kind::Response { id: id.0, incarnation, request_msg },
                        bytes: frame::encode_response(&response),
                    };
                    self.send(now, node, to, message, format!("response {}", response.status));
                }
                Output::SetTimer { at } => self.slots[node].timer_at = Some(at),
                Output::Committed { event_ids } => {
                    let server = self.slots[node].name.clone();
                    let event_ids = event_ids.iter().map(|e| e.as_str().to_owned()).collect();
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
        request: &HttpRequest,
        now: u64,
    ) {
        let Some(&to) = self.index.get(destination) else {
            // No such server: the name does not resolve.
            self.push(node, Inbox::Input(Input::Response { id, response: None }));
            return;
        };
        let incarnation = self.slots[node].incarnation;
        let message = Message {
            kind: Kind::Request { id: id.0, incarnation },
            bytes: frame::encode_request(request),
        };
        let what = format!("{} {}", request.method, path_only(&request.path_and_query));
        self.send(now, node, to, message, what);
    }

    fn observe(
        &mut self,
        node: usize,
        observation: Observation,
        step: Option<&PlanStep>,
        labelled: &mut bool,
        now: u64,
    ) {
        let server = self.slots[node].name.clone();
        let body = match observation {
            Observation::Event { room_id, event_id, decision, reason } => {
                let mut pdu = None;
                if let Some(id) = &event_id {
                    let stored = self.slots[node].server.as_ref().and_then(|s| s.store().event(id));
                    if decision == trace::Decision::Created {
                        if let Some(stored) = stored {
                            let json = stored.pdu.json().clone();
                            if self.created_ids.insert(id.clone()) {
                                self.created.push(
                                    canonical_json::encode_object(&json)
                                        .expect("a stored PDU encodes"),
                                );
                            }
                            pdu = Some(json);
                        }
                        if let Some(label) = step.and_then(|s| s.label.clone()) {
                            if !*labelled {
                                *labelled = true;
                                self.labels.insert(label, id.clone());
                            }
                        }
                    } else if let Some(stored) = stored {
                        // A copy that differs from the created one (redacted on receipt,
                        // or never created by an honest server here) goes in the trace.
                        let differs = stored.redacted || !self.created_ids.contains(id);
                        if differs && self.copies.insert((server.clone(), id.clone())) {
                            pdu = Some(stored.pdu.json().clone());
                        }
                    }
                }
                Body::Event {
                    server,
                    room: room_id,
                    event_id: event_id.map(|e| e.as_str().to_owned()),
                    decision,
                    reason,
                    pdu,
                }
            }
            Observation::StateChanged { room_id, state_hash } => {
                Body::State { server, room: room_id, state_hash }
            }
            Observation::ActionFailed { action, reason } => Body::ActionFailed {
                server,
                action,
                reason,
                step: None,
                line: None,
                retry_at_ms: None,
            },
            Observation::RoomJoined { room_id, version } => {
                if let Some(PlanStep { action: PlanAction::CreateRoom { room, .. }, .. }) = step {
                    self.rooms.entry(room.clone()).or_insert_with(|| room_id.clone());
                }
                Body::Joined { server, room: room_id, version: version.as_str().to_owned() }
            }
            Observation::RoomLeft { room_id } => Body::Left { server, room: room_id },
            Observation::Redacted { room_id, event_id, redaction } => Body::Redacted {
                server,
                room: room_id,
                event_id: event_id.as_str().to_owned(),
                redaction: redaction.as_str().to_owned(),
            },
            Observation::Invited { room_id, user, event_id } => Body::Invited {
                server,
                room: room_id,
                user,
                event_id: event_id.as_str().to_owned(),
            },
            Observation::Upgraded { room_id, replacement } => {
                if let Some(PlanStep { action: PlanAction::Upgrade { new_room, .. }, .. }) = step {
                    self.rooms.entry(new_room.clone()).or_insert_with(|| replacement.clone());
                }
                Body::Upgraded { server, room: room_id, replacement }
            }
        };
        self.record(now, body);
    }

    /// Hands a message that arrived to its destination.
    fn deliver(&mut self, delivery: crate::net::Delivery<Message>, now: u64) {
        let to = usize::try_from(delivery.to.0).expect("node ids fit usize");
        let from = usize::try_from(delivery.from.0).expect("node ids fit usize");
        let msg = delivery.id.0;
        let origin = self.name(delivery.from);
        match delivery.payload.kind {
            Kind::Request { id, incarnation } => {
                if !self.slots[to].up {
                    let server = self.slots[to].name.clone();
                    self.record(now, Body::DropDown { msg, copy: delivery.copy, server });
                    // Connection refused: the requester learns at once.
                    if self.slots[from].up && self.slots[from].incarnation == incarnation {
                        let response = Input::Response { id: RequestId(id), response: None };
                        self.push(from, Inbox::Input(response));
                    }
                    return;
                }
                match frame::decode_request(&delivery.payload.bytes) {
                    Some(request) => {
                        self.slots[to].inbound.insert((origin.clone(), id), (msg, incarnation));
                        let input = Input::Request { origin, id: RequestId(id), request };
                        self.push(to, Inbox::Input(input));
                    }
                    None => {
                        // The receiver's HTTP layer cannot read the request line.
                        let response = frame::unreadable_request();
                        let message = Message {
                            kind: Kind::Response { id, incarnation, request_msg: msg },
                            bytes: frame::encode_response(&response),
                        };
                        self.send(now, to, from, message, "response 400".into());
                    }
                }
            }
            Kind::Response { id, incarnation, .. } => {
                let slot = &self.slots[to];
                if !slot.up || slot.incarnation != incarnation {
                    let server = slot.name.clone();
                    self.record(now, Body::DropDown { msg, copy: delivery.copy, server });
                    return;
                }
                let response = frame::decode_response(&delivery.payload.bytes);
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
        let server = self.slots[node].name.clone();
        let mut lost_actions: Vec<(String, String)> = Vec::new();
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
                // ("join by @bob:hs2", "make_join via hs1: …"), else the step's.
                let step = &self.plan.steps[k];
                let own = format!("{} by {}", action_kind(&step.action), step.user);
                let (action, reason) = match lost_actions.iter().position(|(a, _)| *a == own) {
                    Some(i) => lost_actions.swap_remove(i),
                    None => (
                        describe(&step.action),
                        "the server crashed before the action finished".to_owned(),
                    ),
                };
                self.step_failed(k, action, reason, now);
            }
        }
    }

    /// One supervisor step at `now`: faults, deliveries, due steps. Returns when to look
    /// again (`None` when the run is over).
    fn supervise_step(&mut self, now: u64, nodes: &[madsim::task::NodeId]) -> Option<u64> {
        let at = Instant::from_ms(now);
        let markers = self.net.advance_to(at);
        self.drain_net();
        for marker in markers {
            let node = usize::try_from(marker.node.0).expect("node ids fit usize");
            self.node_fault(node, marker.marker, now, nodes[node]);
        }
        for node in 0..self.slots.len() {
            self.apply_skew(node, now);
        }
        for delivery in self.net.deliver_due(at) {
            self.drain_net();
            self.deliver(delivery, now);
        }
        self.drain_net();
        let mut due = Vec::new();
        while self.next_step < self.plan.steps.len() && self.plan.steps[self.next_step].at_ms <= now
        {
            due.push(self.next_step);
            self.next_step += 1;
        }
        while let Some(&(at, k)) = self.retries.first() {
            if at > now {
                break;
            }
            self.retries.pop_first();
            due.push(k);
        }
        for k in due {
            let node = self.index[&self.plan.steps[k].server];
            if self.slots[node].up {
                self.push(node, Inbox::Step(k));
            } else {
                let action = describe(&self.plan.steps[k].action);
                self.step_failed(k, action, "server is down".into(), now);
            }
        }
        self.net_dirty = false;
        if now >= self.plan.end_ms {
            return None;
        }
        let mut next = self.plan.end_ms;
        if let Some(t) = self.net.next_event_time() {
            next = next.min(t.ms);
        }
        if let Some(step) = self.plan.steps.get(self.next_step) {
            next = next.min(step.at_ms);
        }
        if let Some(&(at, _)) = self.retries.first() {
            next = next.min(at);
        }
        Some(next.max(now))
    }

    /// The trace and outputs, with one `final` record per server and room.
    fn finish(&mut self) -> RunOutput {
        let end = self.plan.end_ms;
        // Handshakes still waiting for an answer never finished.
        let mut waiting: Vec<usize> = self.step_requests.values().map(|(_, k)| *k).collect();
        waiting.sort_unstable();
        waiting.dedup();
        for k in waiting {
            let action = describe(&self.plan.steps[k].action);
            self.step_failed(k, action, "no answer by the end of the run".into(), end);
        }
        for node in 0..self.slots.len() {
            let slot = &self.slots[node];
            let server = match (&slot.server, &slot.disk) {
                (Some(server), _) => server,
                (None, disk) => {
                    // Crashed at the end: what it would recover with.
                    let store = disk.clone().unwrap_or_default();
                    let prng = self.root.fork("final");
                    let keys = self.keys.clone();
                    let config = self.plan.config_of(&slot.name).clone();
                    let at = Instant::from_ms(end);
                    let recovered = Homeserver::recover(
                        &slot.name,
                        slot.key.clone(),
                        keys,
                        config,
                        prng,
                        at,
                        store,
                    );
                    self.slots[node].server = Some(recovered);
                    self.slots[node].server.as_ref().expect("just set")
                }
            };
            let name = server.name().to_owned();
            let mut finals = Vec::new();
            for (room_id, record) in server.store().rooms() {
                let Some(group) = record.current_state else { continue };
                let state = server.store().state(group);
                let mut nested = trace::NestedState::new();
                let mut joined = false;
                for ((event_type, state_key), id) in &state {
                    nested
                        .entry(event_type.clone())
                        .or_default()
                        .insert(state_key.clone(), id.as_str().to_owned());
                    if event_type == "m.room.member"
                        && state_key.rsplit_once(':').is_some_and(|(_, host)| host == name)
                        && server
                            .store()
                            .pdu(id)
                            .is_some_and(|pdu| pdu.membership() == Some("join"))
                    {
                        joined = true;
                    }
                }
                finals.push(Body::Final {
                    server: name.clone(),
                    room: room_id.clone(),
                    joined,
                    forward_extremities: record
                        .forward_extremities
                        .iter()
                        .map(|e| e.as_str().to_owned())
                        .collect(),
                    state: nested,
                    state_hash: server.state_hash(group),
                    events: record.event_count,
                });
            }
            for body in finals {
                self.record(end, body);
            }
        }
        let header = Header {
            format: trace::FORMAT.into(),
            scenario: self.plan.scenario.clone(),
            seed: self.plan.seed,
            mxsim_version: self.plan.mxsim_version.clone(),
            mxsim_build: trace::BUILD.to_owned(),
            servers: self.plan.servers.clone(),
            keys: self
                .keys
                .iter()
                .map(|(server, keys)| {
                    let keys = keys.iter().map(|(id, key)| (id.clone(), key.to_base64())).collect();
                    (server.clone(), keys)
                })
                .collect(),
            epoch_ms: u64::try_from(crate::homeserver::server::EPOCH_MS)
                .expect("the epoch is positive"),
            end_ms: end,
            healed_ms: self.plan.faults.healed_at().ms,
            faults: self.plan.faults.faults().to_vec(),
            check: self.check_settings(),
            swarm: self.plan.swarm.clone(),
        };
        RunOutput {
            trace: Trace { header, records: std::mem::take(&mut self.records) },
            events: std::mem::take(&mut self.created),
            rooms: std::mem::take(&mut self.rooms),
        }
    }
}

impl Shared {
    /// The plan's check settings with the run-time names its expectations use: every
    /// room label's id, and the event ids of labels that `rejected` blocks name.
    fn check_settings(&self) -> CheckSettings {
        let mut check = self.plan.check.clone();
        if check.expect.is_empty() {
            return check;
        }
        check.expect.rooms = self.rooms.clone();
        for block in &check.expect.blocks {
            if let trace::Expectation::Rejected { label, .. } = block {
                if let Some(id) = self.labels.get(label) {
                    check.expect.labels.insert(label.clone(), id.as_str().to_owned());
                }
            }
        }
        check
    }
}

/// The path of a request target without its query.
fn path_only(target: &str) -> &str {
    target.split_once('?').map_or(target, |(path, _)| path)
}

/// A one-line description of a step's action, for the trace.
pub fn describe(action: &PlanAction) -> String {
    match action {
        PlanAction::CreateRoom { room, version, .. } => {
            format!("create_room {room} (v{})", version.as_str())
        }
        PlanAction::Send { room, event_type, state_key: None, .. } => {
            format!("send {event_type} in {room}")
        }
        PlanAction::Send { room, event_type, state_key: Some(key), .. } => {
            format!("send {event_type}/{key:?} in {room}")
        }
        PlanAction::Invite { room, target } => format!("invite {target} to {room}"),
        PlanAction::Join { room, .. } => format!("join {room}"),
        PlanAction::Leave { room, .. } => format!("leave {room}"),
        PlanAction::Kick { room, target } => format!("kick {target} from {room}"),
        PlanAction::Ban { room, target } => format!("ban {target} from {room}"),
        PlanAction::Unban { room, target } => format!("unban {target} in {room}"),
        PlanAction::Knock { room, .. } => format!("knock on {room}"),
        PlanAction::Redact { room, target_label } => format!("redact {target_label} in {room}"),
        PlanAction::Upgrade { room, version, new_room } => {
            format!("upgrade {room} to v{} as {new_room}", version.as_str())
        }
        PlanAction::Power { room, target, level } => {
            format!("set power of {target} to {level} in {room}")
        }
    }
}

/// The init task of a server's madsim node: boot, then handle inputs as they come.
async fn node_main(shared: Arc<Mutex<Shared>>, node: usize) {
    {
        let mut world = shared.lock().expect("world lock");
        let now = now_ms();
        world.boot(node, now);
    }
    loop {
        let timer = {
            let mut world = shared.lock().expect("world lock");
            let now = now_ms();
            if let Some(inbox) = world.take_work(node, now) {
                world.process(node, inbox, now);
                continue;
            }
            world.slots[node].timer_at
        };
        let sleep = timer.map(|at| Box::pin(sleep_until_ms(at.ms)));
        NodeWait { shared: Arc::clone(&shared), node, sleep }.await;
    }
}

/// Resolves when the node's mailbox has something or its timer fires.
struct NodeWait {
    shared: Arc<Mutex<Shared>>,
    node: usize,
    sleep: Option<Pin<Box<madsim::time::Sleep>>>,
}

impl Future for NodeWait {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(sleep) = self.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        let mut world = self.shared.lock().expect("world lock");
        let slot = &mut world.slots[self.node];
        if !slot.mailbox.is_empty() {
            return Poll::Ready(());
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The supervisor: steps the network and the plan until the end.
async fn supervise(shared: Arc<Mutex<Shared>>, nodes: Vec<madsim::task::NodeId>) {
    loop {
        let next = {
            let mut world = shared.lock().expect("world lock");
            let now = now_ms();
            match world.supervise_step(now, &nodes) {
                None => return,
                Some(next) => next,
            }
        };
        let now = now_ms();
        let sleep = (next > now).then(|| Box::pin(sleep_until_ms(next)));
        SupervisorWait { shared: Arc::clone(&shared), sleep }.await;
    }
}

/// Resolves at the supervisor's next time, or earlier when a node has sent something.
struct SupervisorWait {
    shared: Arc<Mutex<Shared>>,
    sleep: Option<Pin<Box<madsim::time::Sleep>>>,
}

impl Future for SupervisorWait {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(sleep) = self.sleep.as_mut() else {
            // Due now: let the nodes run first, then look again.
            let world = self.shared.lock().expect("world lock");
            if world.net_dirty {
                return Poll::Ready(());
            }
            drop(world);
            self.sleep = Some(Box::pin(sleep_until_ms(now_ms() + 1)));
            return self.poll(cx);
        };
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        let mut world = self.shared.lock().expect("world lock");
        if world.net_dirty {
            return Poll::Ready(());
        }
        world.supervisor_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
