//! The homeserver state machine: [`Homeserver::handle`].
//!
//! One call handles one input and returns what the server asks of the world. The durable
//! [`Store`] is only changed inside a call, so a crash between calls loses exactly the
//! volatile parts (outbound queues, requests in flight, events waiting for missing
//! ancestors); [`Homeserver::recover`] rebuilds a server from its store.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use crate::homeserver::outbound::{self, Outbound, OutboundAction, ResponseOutcome};
use crate::homeserver::resolutions::{Read, Recorded, SharedResolutions};
use crate::homeserver::store::{
    Outcome, SharedSnapshots, StateGroupId, StateKey, StateMap, Store, StoredEvent,
};
use crate::homeserver::types::{
    Action, ActionKind, Decision, Input, Observation, Output, RequestId, membership_content,
};
use crate::homeserver::verified::{CheckedCopy, VerifiedEvents};
use crate::homeserver::wire::{self, ErrorResponse, HttpResponse, OutgoingPdu, Request, Response};
use crate::matrix::auth::{self, AuthState, SignatureCheck};
use crate::matrix::canonical_json::{INT_MAX, Object};
use crate::matrix::crypto::{KeyRing, SigningKey};
use crate::matrix::dag::{AuthChainIndex, EventStore, NodeId, RejectionKind};
use crate::matrix::ids::{LookupMap, WordHash};
use crate::matrix::pdu::{self, Pdu, Verified};
use crate::matrix::state_res::{self, ResolveOptions};
use crate::matrix::{EventId, RoomVersion, RoomVersionRules, ids};
use crate::stdx::{Duration, EPOCH_MS, Instant, Prng};

use incoming::Incoming;
pub use linear::OfflineSends;
use linear::PendingLpdu;
use resolve::LastResolution;

mod decide;
mod fetch;
mod handshake;
mod incoming;
mod linear;
mod local;
mod receive;
mod resolve;
mod send;
mod serve;

/// Limits and timings of one homeserver.
#[derive(Clone, Debug)]
pub struct Config {
    pub outbound: outbound::Config,
    /// A request with no answer after this long has failed.
    pub request_timeout: Duration,
    /// Most `prev_events` of a new event ([impl] Synapse uses 10; the spec allows 20).
    pub prev_events_max: usize,
    /// `limit` of the `get_missing_events` requests this server sends.
    pub missing_events_limit: u64,
    /// Most received events waiting for missing ancestors, per server.
    pub waiting_pdus_max: usize,
    /// Longest time a received event waits for missing ancestors: then it is dropped with
    /// the reason recorded, and a later copy is processed afresh. Every fetch step
    /// (`/event_auth`, `get_missing_events`, `/state` with `/event`) ends within
    /// `request_timeout`, so an event normally gives up earlier, after its last step failed.
    pub waiting_time_max: Duration,
    /// Most requests in flight (new fetches beyond it are not sent).
    pub requests_in_flight_max: usize,
    /// Transactions whose answers are remembered for de-duplication.
    pub transaction_cache_max: usize,
    /// Whether the server takes part in Linearized Matrix rooms (room version
    /// `org.matrix.i-d.ralston-mimi-linearized-matrix.02`): it names that version in the
    /// `ver` of its `make_join` and `make_knock` requests and accepts invites to it. Off by
    /// default, so that DAG-only runs send exactly what they sent before.
    pub linearized: bool,
    /// What a participant of a Linearized Matrix room does with its users' sends while the
    /// room's hub is unreachable (docs/linearized.md).
    pub offline_sends: OfflineSends,
    /// Whether the server takes part in Linearized Matrix rooms it does not host as a
    /// DAG-capable server (it keeps the room as a DAG, sends PDUs to the hub and to the
    /// other DAG-capable servers, and resolves state) rather than as a participant
    /// (docs/linearized.md). Off by default: a participant.
    pub dag_capable: bool,
    /// Most LPDUs a participant keeps waiting for their hub; a send beyond it fails at once.
    pub lpdus_pending_max: usize,
    /// A participant sends an LPDU again when the hub's list has not brought it back this
    /// long after it was last sent (the hub then sends the event it made of it again).
    pub lpdu_resend_after: Duration,
    /// A known bug planted on purpose, so that tests can prove that sweeps find bugs and
    /// shrinking reduces them. Test-only: no scenario field and no command sets it.
    #[doc(hidden)]
    pub planted_bug: Option<PlantedBug>,
}

/// A protocol bug a test can plant in one server ([`Config::planted_bug`]).
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// On the named server, a merge of several states takes the last one instead of
    /// resolving them (a "state reset" bug).
    SkipMergeResolution { server: String },
}

impl Default for Config {
    fn default() -> Config {
        Config {
            outbound: outbound::Config::default(),
            request_timeout: Duration::from_secs(30),
            prev_events_max: 10,
            missing_events_limit: 10,
            waiting_pdus_max: 1_000,
            waiting_time_max: Duration::from_secs(120),
            requests_in_flight_max: 1_000,
            transaction_cache_max: 256,
            linearized: false,
            offline_sends: OfflineSends::Queue,
            dag_capable: false,
            lpdus_pending_max: 1_000,
            lpdu_resend_after: Duration::from_secs(60),
            planted_bug: None,
        }
    }
}

/// A received event that waits for missing ancestors.
#[derive(Clone, Debug)]
struct Waiting {
    pdu: Arc<Pdu>,
    /// The server it came from: the sender of the transaction, or the server whose
    /// `get_missing_events` answer held it. Its ancestors are asked from there.
    origin: String,
    /// Whether it came in a `get_missing_events` answer: such an event sends no
    /// `get_missing_events` of its own ([impl] Synapse `_process_pulled_event`).
    pulled: bool,
    /// Whether its missing auth events were already asked for with `/event_auth`.
    asked_auth: bool,
    /// Where its `get_missing_events` stands. Only that request's answer (or failure)
    /// moves it on to the state step.
    missing: Ask,
    /// The missing prev events whose state it asked for (or joined a fetch of), each once.
    asked_state: BTreeSet<EventId>,
    /// When it is given up if still undecided (`Config::waiting_time_max` after receipt).
    deadline: Instant,
    /// Arrival order: a participant of a Linearized Matrix room decides the hub's events
    /// that are ready in the order they came, which is the list's order.
    seq: u64,
}

/// Where one request of a waiting event stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ask {
    Not,
    InFlight,
    Answered,
}

/// A fetch of the state at a missing prev event (volatile), after Synapse
/// `_get_state_ids_after_missing_prev_event`: `/state_ids`, then `/event` for each event
/// this server lacks, or the whole `/state` when it lacks at least a tenth of them.
#[derive(Clone, Debug)]
struct StateFetch {
    destination: String,
    /// The state's event ids, from `/state_ids`.
    state_ids: Vec<EventId>,
    /// Events asked for with `/event` and not answered yet.
    outstanding: BTreeSet<EventId>,
    /// Their answers, stored as outliers once all are here.
    fetched: Vec<Object>,
    /// Whether one of them failed or was not the event asked for.
    failed: bool,
    /// The whole state was asked for instead (`/state`, and `/event` for the prev event).
    full: bool,
    /// On that path: the state from `/state` (its events, as
    /// [`Homeserver::state_events_of`] gives them), and the prev event from `/event`.
    full_state: Option<Vec<Arc<Pdu>>>,
    prev_pdu: Option<Arc<Pdu>>,
}

/// Whether this server has a joined member in a room ([`Homeserver::is_resident`]), as
/// found for the state group `at`, with its users' member entries there.
#[derive(Debug)]
struct Residency {
    at: StateGroupId,
    joined: bool,
    entries: Vec<Option<EventId>>,
}

/// What a request in flight is for.
#[derive(Clone, Debug)]
enum Pending {
    /// A transaction of the outbound side, named by its shared copies.
    Transaction {
        destination: Arc<str>,
        txn_id: Arc<str>,
    },
    /// `get_missing_events` for the waiting events `for_events`, sent to `destination`.
    MissingEvents {
        room_id: String,
        for_events: Vec<EventId>,
        destination: String,
    },
    /// The parts of a [`StateFetch`] at `prev`: `/state_ids`, `/event` of one state event,
    /// `/state`, and `/event` of the prev event itself.
    StateIdsAt {
        room_id: String,
        prev: EventId,
    },
    StateEvent {
        room_id: String,
        prev: EventId,
        event_id: EventId,
    },
    StateAt {
        room_id: String,
        prev: EventId,
    },
    EventFor {
        room_id: String,
        prev: EventId,
    },
    EventAuth {
        room_id: String,
    },
    Invite {
        user: String,
        room_id: String,
        event_id: EventId,
        destination: String,
    },
    Make(Handshake),
    Send {
        handshake: Handshake,
        version: RoomVersion,
        own: Arc<Pdu>,
    },
}

/// A membership handshake of a local user through a resident server.
#[derive(Clone, Debug)]
struct Handshake {
    user: String,
    room_id: String,
    /// `join`, `knock` or `leave`.
    membership: &'static str,
    /// Servers still to try, the one asked now first.
    candidates: Vec<String>,
    /// One sentence per failed attempt, for the action's failure reason.
    failures: Vec<String>,
}

/// The answers of the last transactions handled, so that a retry (same origin, same txn
/// id) gets the same answer: at most `transaction_cache_max`, the oldest forgotten first.
/// Found by key in a map: a search of the list compared up to 256 (origin, txn id) pairs
/// per transaction received, a tenth of a 1,000-server run. The map is keyed by the key's
/// hash, with the keys that share a hash listed under it (in practice one), so that a
/// search compares integers held in the map's nodes: comparing the strings themselves read
/// two cold heap blocks per step, and still cost 6% of a 1,000-server run.
#[derive(Debug, Default)]
struct TransactionAnswers {
    /// (hash, sequence number) of each held answer, oldest first: the key is held once,
    /// in its bucket, not copied here too.
    order: VecDeque<(u64, u64)>,
    answers: LookupMap<u64, Vec<HeldAnswer>>,
    /// The sequence number of the next answer held.
    next_seq: u64,
}

/// A transaction's answer, with its key (origin, txn id) and its place in the order.
#[derive(Debug)]
struct HeldAnswer {
    origin: String,
    txn_id: String,
    seq: u64,
    answer: HttpResponse,
}

impl HeldAnswer {
    fn is(&self, origin: &str, txn_id: &str) -> bool {
        self.origin == origin && self.txn_id == txn_id
    }
}

impl TransactionAnswers {
    /// [`WordHash`] of origin and txn id (each piece's length is mixed in).
    fn hash(origin: &str, txn_id: &str) -> u64 {
        WordHash::new().write(origin.as_bytes()).write(txn_id.as_bytes()).finish()
    }

    fn get(&self, origin: &str, txn_id: &str) -> Option<&HttpResponse> {
        self.get_hashed(Self::hash(origin, txn_id), origin, txn_id)
    }

    fn get_hashed(&self, hash: u64, origin: &str, txn_id: &str) -> Option<&HttpResponse> {
        let bucket = self.answers.get(&hash)?;
        bucket.iter().find(|held| held.is(origin, txn_id)).map(|held| &held.answer)
    }

    /// Keeps `answer` for (`origin`, `txn_id`), then forgets the oldest beyond `max`.
    fn insert(&mut self, origin: &str, txn_id: String, answer: HttpResponse, max: usize) {
        self.insert_hashed(Self::hash(origin, &txn_id), origin, txn_id, answer, max);
    }

    fn insert_hashed(
        &mut self,
        hash: u64,
        origin: &str,
        txn_id: String,
        answer: HttpResponse,
        max: usize,
    ) {
        // A bucket nearly always holds one answer: made for one, it does not take the
        // four places a first push would reserve (16 MB of a 300-server run).
        let bucket = self.answers.get_or_insert_with(hash, || Vec::with_capacity(1));
        match bucket.iter_mut().find(|held| held.is(origin, &txn_id)) {
            Some(held) => held.answer = answer,
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                bucket.push(HeldAnswer { origin: origin.to_owned(), txn_id, seq, answer });
                self.order.push_back((hash, seq));
            }
        }
        while self.order.len() > max {
            let Some((hash, oldest)) = self.order.pop_front() else { break };
            // Every entry of `order` is held once under its hash, so a bucket of one holds
            // exactly the oldest: it goes without reading the bucket's entries.
            let bucket = self.answers.get_mut(&hash).expect("every ordered key is held");
            if bucket.len() == 1 {
                debug_assert_eq!(bucket[0].seq, oldest);
                self.answers.remove(&hash);
            } else {
                bucket.retain(|held| held.seq != oldest);
            }
        }
    }
}

/// One Matrix homeserver.
#[derive(Debug)]
pub struct Homeserver {
    name: String,
    key: SigningKey,
    /// Every peer's public keys: one ring shared by all the servers of a simulation.
    keys: Arc<KeyRing>,
    config: Config,
    store: Store,
    outbound: Outbound,
    next_request: u64,
    requests: send::InFlight,
    waiting: BTreeMap<EventId, Waiting>,
    /// The arrival number of the next waiting event ([`Waiting::seq`]).
    waiting_seq: u64,
    /// Which waiting events to retry ([`Homeserver::retry_waiting`]). Volatile.
    retries: receive::Retries,
    /// Fetches of the state at missing prev events, by prev event.
    state_fetches: BTreeMap<EventId, StateFetch>,
    /// PDUs received over `/send` for rooms this server is joining, processed once the
    /// join is done: room id → (origin, PDU).
    join_queues: BTreeMap<String, Vec<(String, Object)>>,
    /// Answers of transactions already handled: (origin, txn id) → response.
    transactions: TransactionAnswers,
    timer_at: Option<Instant>,
    outbound_timer: Option<Instant>,
    /// The last `/send` body written, shared by the next transaction of the same PDUs
    /// (to another destination, in the same instant).
    last_transaction_body: wire::LastTransactionBody,
    /// The body of the last answer to a transaction of this server's that accepted every
    /// PDU ([`Homeserver::accepted_again`]), if any. Volatile.
    last_accepting_answer: Option<Vec<u8>>,
    /// Events stored during the current input, reported in one `Output::Committed`.
    committed: Vec<EventId>,
    skew_ms: i64,
    /// Room → (the current state group last looked at, whether it has a joined member of
    /// this server): what [`Homeserver::observe_membership`] compares with.
    membership_seen: BTreeMap<String, (Option<StateGroupId>, bool)>,
    /// The last resolutions ([`Homeserver::resolve_groups`]), oldest first. Volatile.
    last_resolutions: VecDeque<LastResolution>,
    /// Per room, the current state group last asked about and its joined members per
    /// server ([`Homeserver::joined_servers`]). Volatile.
    joined: RefCell<BTreeMap<String, JoinedCounts>>,
    /// Per room, the current state group last asked about and whether this server has a
    /// joined member in it ([`Homeserver::is_resident`]): every PDU received asks, and the
    /// answer only changes with the state. Volatile.
    resident: RefCell<BTreeMap<String, Residency>>,
    /// Per room, the current state group last asked about and its server ACL entry
    /// ([`Homeserver::acl_allows`]): every PDU received asks, and the entry only changes
    /// with the state. Volatile.
    acl_entries: RefCell<BTreeMap<String, (StateGroupId, Option<EventId>)>>,
    /// This server's users among [`Store::member_users`] when the store had noted the
    /// first number of users: they change only when a user of this server is noted after
    /// those ([`Store::member_users_noted_since`]). Every residency check reads them, and
    /// at a thousand servers finding them among every server's users was 1.5% of a run.
    /// Volatile.
    own_users: RefCell<(usize, Vec<Box<str>>)>,
    /// The last states served by `/state_ids` and `/state` ([`serve::StateAnswer`]), newest
    /// last. Volatile.
    state_answers: RefCell<VecDeque<Arc<serve::StateAnswer>>>,
    /// Verified events, shared with the other servers of the process when handed one
    /// ([`Homeserver::share_verified`]); otherwise this server's own.
    verified: Arc<VerifiedEvents>,
    /// Whether `verified` is shared ([`Homeserver::own_copy`] records this server's own
    /// events in it only then).
    verified_shared: bool,
    /// State resolutions shared with the other servers of the process, when handed some
    /// ([`Homeserver::share_resolutions`]).
    resolutions: Option<Arc<SharedResolutions>>,
    /// Linearized Matrix, as a participant: the LPDUs of its users sent to a hub and not
    /// yet seen back in the hub's list, refused or given up, by LPDU id. Volatile: a crash
    /// loses them, as it loses the outbound queues.
    lpdus_pending: BTreeMap<EventId, PendingLpdu>,
    /// Linearized Matrix, at the hub: rooms whose list a DAG-capable server's event forked
    /// during this input; the hub merges them before the input ends. Volatile: a hub that
    /// crashes with a fork merges it before it next completes an LPDU.
    lists_to_merge: BTreeSet<String>,
}

/// A current state group and the joined members per server in it (servers with none
/// left out).
type JoinedCounts = (StateGroupId, BTreeMap<String, u32>);

/// One room as a server holds it, read-only ([`Homeserver::room_views`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomView<'a> {
    pub room_id: String,
    /// Whether the current state has a joined member of this server.
    pub resident: bool,
    /// The current state's entries in key order, borrowed from the store
    /// ([`Store::state_entries`]): at the end of a run every server's view is read, and a
    /// reader that meets the same state again (most servers end in one) copies nothing.
    pub state: Vec<(&'a StateKey, &'a EventId)>,
    /// [`Homeserver::state_hash`] of the current state.
    pub state_hash: String,
    pub forward_extremities: Vec<EventId>,
    /// Events stored for the room.
    pub event_count: u64,
    /// Received events of the room not decided yet (waiting for their auth or prev events),
    /// with the time each is given up at if still undecided; by event id.
    pub waiting: Vec<(EventId, Instant)>,
}

/// The `AuthState` view of a stored state group.
#[derive(Clone, Copy)]
struct GroupView<'a> {
    store: &'a Store,
    group: StateGroupId,
}

impl<'a> GroupView<'a> {
    /// The body of the state event (`event_type`, `state_key`), the one the store holds
    /// (shared between servers when verified events are).
    fn body(&self, event_type: &str, state_key: &str) -> Option<&'a Arc<Pdu>> {
        let id = self.store.state_get_parts(self.group, event_type, state_key)?;
        self.store.pdu(id)
    }
}

impl AuthState for GroupView<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Pdu> {
        self.body(event_type, state_key).map(|pdu| &**pdu)
    }
}

/// Event ids for a sentence: `$a, $b`.
fn list(ids: &[EventId]) -> String {
    ids.iter().map(EventId::as_str).collect::<Vec<_>>().join(", ")
}

fn forbidden(text: impl Into<String>) -> Response {
    Response::Error(ErrorResponse::forbidden(text))
}

fn not_found(text: impl Into<String>) -> Response {
    Response::Error(ErrorResponse::not_found(text))
}

fn invalid(text: impl Into<String>) -> Response {
    Response::Error(ErrorResponse::invalid_param(text))
}

/// Whether a server name matches a server-ACL glob (`*` any run, `?` one character).
fn glob_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matching with backtracking to the last `*`, linear in practice.
    let (mut i, mut j, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

/// Whether `m.room.server_acl` content allows `server` (spec: "Server Access Control
/// Lists"). Deny wins over allow; a missing `allow` allows nobody; IP literals are denied
/// unless `allow_ip_literals` is true (default true).
pub fn acl_allows(content: &Object, server: &str) -> bool {
    let host = match server.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => server.rsplit_once(':').map_or(server, |(host, _)| host),
    };
    let is_ip = server.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok();
    let allow_ip = content.get("allow_ip_literals").and_then(Value::as_bool).unwrap_or(true);
    if is_ip && !allow_ip {
        return false;
    }
    let globs = |key: &str| -> Vec<String> {
        content
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    if globs("deny").iter().any(|g| glob_matches(g, host)) {
        return false;
    }
    globs("allow").iter().any(|g| glob_matches(g, host))
}

impl Homeserver {
    /// A new server with an empty store. `keys` holds every peer's public keys (key
    /// distribution is not simulated); pass an `Arc` to share one ring among servers.
    pub fn new(
        name: &str,
        key: SigningKey,
        keys: impl Into<Arc<KeyRing>>,
        config: Config,
        prng: Prng,
        now: Instant,
    ) -> Homeserver {
        Homeserver::recover(name, key, keys, config, prng, now, Store::new())
    }

    /// A server restarted from its durable store: everything volatile starts empty.
    pub fn recover(
        name: &str,
        key: SigningKey,
        keys: impl Into<Arc<KeyRing>>,
        config: Config,
        prng: Prng,
        now: Instant,
        store: Store,
    ) -> Homeserver {
        ids::check_server_name(name).expect("server names are checked by the scenario");
        let outbound = Outbound::new(config.outbound, prng, now);
        let keys: Arc<KeyRing> = keys.into();
        let mut server = Homeserver {
            name: name.to_owned(),
            key,
            keys: Arc::clone(&keys),
            config,
            store,
            outbound,
            next_request: 0,
            requests: send::InFlight::default(),
            waiting: BTreeMap::new(),
            waiting_seq: 0,
            retries: receive::Retries::default(),
            state_fetches: BTreeMap::new(),
            join_queues: BTreeMap::new(),
            transactions: TransactionAnswers::default(),
            timer_at: None,
            outbound_timer: None,
            last_transaction_body: wire::LastTransactionBody::default(),
            last_accepting_answer: None,
            committed: Vec::new(),
            skew_ms: 0,
            membership_seen: BTreeMap::new(),
            last_resolutions: VecDeque::new(),
            joined: RefCell::new(BTreeMap::new()),
            resident: RefCell::new(BTreeMap::new()),
            acl_entries: RefCell::new(BTreeMap::new()),
            own_users: RefCell::new((usize::MAX, Vec::new())),
            state_answers: RefCell::new(VecDeque::new()),
            verified: Arc::new(VerifiedEvents::new(keys)),
            verified_shared: false,
            resolutions: None,
            lpdus_pending: BTreeMap::new(),
            lists_to_merge: BTreeSet::new(),
        };
        // What the store says now is the starting point, not a change: a restart records
        // no join or leave (one lost with uncommitted state is not recorded either).
        server.observe_membership(&mut Vec::new());
        server
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Shares `verified` with this server: the results of the format, hash and signature
    /// checks it holds are taken instead of checking again, and this server's results go
    /// into it. Refused (returns false, nothing changes) unless the cache was made for
    /// this server's key ring.
    pub fn share_verified(&mut self, verified: &Arc<VerifiedEvents>) -> bool {
        if !verified.serves(&self.keys) {
            return false;
        }
        self.verified = Arc::clone(verified);
        self.verified_shared = true;
        true
    }

    /// Shares `resolutions` with this server: a resolution of states it finds there,
    /// recorded by a server whose store read the same, is taken instead of resolving
    /// again, and this server's resolutions go into it ([`SharedResolutions`]).
    pub fn share_resolutions(&mut self, resolutions: &Arc<SharedResolutions>) {
        self.resolutions = Some(Arc::clone(resolutions));
    }

    /// Shares `snapshots` with this server's store: a full state, or delta, it stores is
    /// held once for every server that stores the same one ([`SharedSnapshots`]).
    pub fn share_snapshots(&mut self, snapshots: &Arc<SharedSnapshots>) {
        self.store.share_snapshots(snapshots);
    }

    /// The committed store (what survives a crash).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Events waiting for missing ancestors.
    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// The room's current state, if the server is in the room.
    pub fn current_state(&self, room_id: &str) -> Option<StateMap> {
        let group = self.store.room(room_id)?.current_state?;
        Some(self.store.state(group))
    }

    /// A read-only view of every room with a current state here, in room id order: what
    /// the simulator records at the end of a run, without reading the store itself.
    pub fn room_views(&self) -> Vec<RoomView<'_>> {
        let mut views = Vec::new();
        for (room_id, record) in self.store.rooms() {
            let Some(group) = record.current_state else { continue };
            let state = self.store.state_entries(group);
            views.push(RoomView {
                room_id: room_id.clone(),
                resident: self.has_joined_member(room_id, &self.name),
                state,
                state_hash: self.state_hash(group),
                forward_extremities: record.forward_extremities.iter().cloned().collect(),
                event_count: record.event_count,
                waiting: self
                    .waiting
                    .iter()
                    .filter(|(_, w)| w.pdu.is_in_room(room_id))
                    .map(|(id, w)| (id.clone(), w.deadline))
                    .collect(),
            });
        }
        views
    }

    /// Handles one input.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Request { origin, id, request } => {
                // A peer that talks to us is up: resume delivery to it at once ([impl]
                // Synapse does the same when a transaction arrives).
                let was_down = self.outbound.is_down(&origin);
                self.outbound.mark_up(&origin, now);
                if was_down {
                    let peer = origin.to_string();
                    out.push(Output::Observed(Observation::PeerUp { peer }));
                }
                let response = self.serve(now, &origin, &request, &mut out);
                out.push(Output::Response { origin, id, response });
            }
            Input::Response { id, response } => {
                self.on_response(now, id, response, false, &mut out)
            }
            Input::Timer => self.on_timer(now, &mut out),
            Input::Action { user, action } => {
                let kind = action.kind();
                if let Err(reason) = self.act(now, &user, action, &mut out) {
                    out.push(Output::Observed(Observation::ActionFailed { user, kind, reason }));
                }
            }
            Input::ClockSkew { offset_ms } => self.skew_ms = offset_ms,
        }
        for room_id in std::mem::take(&mut self.lists_to_merge) {
            self.merge_list(now, &room_id, &mut out);
        }
        self.pump(now, &mut out);
        self.observe_membership(&mut out);
        if !self.committed.is_empty() {
            let mut event_ids = std::mem::take(&mut self.committed);
            event_ids.sort();
            event_ids.dedup();
            out.push(Output::Committed { event_ids });
        }
        out
    }

    /// Observes every change of this server's membership of a room since the last input:
    /// `RoomJoined` when its current state gains a first joined member of this server,
    /// `RoomLeft` when it loses the last one. Only rooms whose current state changed are
    /// looked at. A join whose `RoomJoined` was already observed (room creation,
    /// `send_join`) is not observed twice.
    fn observe_membership(&mut self, out: &mut Vec<Output>) {
        // Called after every input: only the rooms whose current state moved since are
        // copied out (most inputs move none), not every room's id each time.
        // Each moved room with whether it had a joined member when last seen.
        let rooms: Vec<(String, Option<StateGroupId>, RoomVersion, bool)> = self
            .store
            .rooms()
            .filter_map(|(id, room)| {
                let seen = self.membership_seen.get(id.as_str()).copied();
                let moved = seen.map(|(group, _)| group) != Some(room.current_state);
                let was_joined = seen.is_some_and(|(_, joined)| joined);
                moved.then(|| (id.clone(), room.current_state, room.version, was_joined))
            })
            .collect();
        for (room_id, group, version, was_joined) in rooms {
            let joined = self.has_joined_member_here(&room_id);
            self.membership_seen.insert(room_id.clone(), (group, joined));
            let observed_already = out.iter().any(|o| {
                matches!(o, Output::Observed(Observation::RoomJoined { room_id: r, .. }) if *r == room_id)
            });
            match (was_joined, joined) {
                (false, true) if !observed_already => {
                    out.push(Output::Observed(Observation::RoomJoined { room_id, version }));
                }
                (true, false) => out.push(Output::Observed(Observation::RoomLeft { room_id })),
                _ => {}
            }
        }
    }

    fn clock_ms(&self, now: Instant) -> i64 {
        EPOCH_MS + i64::try_from(now.ms).expect("virtual time fits i64") + self.skew_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_answers_keep_the_last_ones_by_origin_and_txn_id() {
        let answer = |n: u8| HttpResponse { status: 200, body: vec![n] };
        let mut answers = TransactionAnswers::default();
        answers.insert("hs1", "1".into(), answer(1), 2);
        answers.insert("hs2", "1".into(), answer(2), 2);
        // The same txn id from another origin is another transaction.
        assert_eq!(answers.get("hs1", "1").map(|a| a.body.clone()), Some(vec![1]));
        assert_eq!(answers.get("hs2", "1").map(|a| a.body.clone()), Some(vec![2]));
        assert!(answers.get("hs1", "2").is_none());
        // A third forgets the oldest.
        answers.insert("hs1", "2".into(), answer(3), 2);
        assert!(answers.get("hs1", "1").is_none());
        assert_eq!(answers.get("hs1", "2").map(|a| a.body.clone()), Some(vec![3]));
        assert_eq!((answers.order.len(), answers.answers.len()), (2, 2));
        // Answering a held key again replaces its answer and keeps one entry.
        answers.insert("hs2", "1".into(), answer(4), 2);
        assert_eq!(answers.get("hs2", "1").map(|a| a.body.clone()), Some(vec![4]));
        assert_eq!((answers.order.len(), answers.answers.len()), (2, 2));
    }

    #[test]
    fn transaction_answers_tell_apart_keys_whose_hashes_collide() {
        let answer = |n: u8| HttpResponse { status: 200, body: vec![n] };
        let mut answers = TransactionAnswers::default();
        // Two keys forced under one hash share a bucket and keep their own answers.
        answers.insert_hashed(7, "hs1", "a".into(), answer(1), 3);
        answers.insert_hashed(7, "hs2", "b".into(), answer(2), 3);
        assert_eq!(answers.get_hashed(7, "hs1", "a").map(|a| a.body.clone()), Some(vec![1]));
        assert_eq!(answers.get_hashed(7, "hs2", "b").map(|a| a.body.clone()), Some(vec![2]));
        assert!(answers.get_hashed(7, "hs3", "c").is_none());
        assert_eq!(answers.answers.len(), 1);
        // Forgetting the older leaves the other in the bucket; forgetting both drops it.
        answers.insert_hashed(8, "hs3", "c".into(), answer(3), 2);
        assert!(answers.get_hashed(7, "hs1", "a").is_none());
        assert_eq!(answers.get_hashed(7, "hs2", "b").map(|a| a.body.clone()), Some(vec![2]));
        answers.insert_hashed(9, "hs4", "d".into(), answer(4), 2);
        assert!(!answers.answers.contains_key(&7));
        assert_eq!((answers.order.len(), answers.answers.len()), (2, 2));
    }
}
