//! Homeservers wired together without any network: a deterministic in-memory queue.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use mxsim::homeserver::store::StateMap;
use mxsim::homeserver::verified::VerifiedEvents;
use mxsim::homeserver::wire::{HttpRequest, HttpResponse, Request};
use mxsim::homeserver::{Action, Config, Homeserver, Input, Observation, Output, RequestId};
use mxsim::matrix::canonical_json::Object;
use mxsim::matrix::crypto::{KeyRing, SigningKey};
use mxsim::matrix::{EventId, RoomVersion};
use mxsim::stdx::{Duration, Instant, Prng};

/// One message in flight.
#[derive(Debug)]
enum Message {
    Request { from: String, to: String, id: RequestId, request: HttpRequest },
    Response { to: String, id: RequestId, response: Option<HttpResponse> },
}

/// Servers and the messages between them, delivered in order, 10 ms apart.
pub struct Harness {
    pub servers: BTreeMap<String, Homeserver>,
    /// The cache of verified events the servers share, if they share one.
    pub verified: std::sync::Arc<VerifiedEvents>,
    pub now: Instant,
    queue: VecDeque<Message>,
    timers: BTreeMap<String, Instant>,
    /// Links that drop everything: (from, to).
    pub cut: BTreeSet<(String, String)>,
    pub observations: Vec<(String, Observation)>,
    /// Events each server reported committed.
    pub committed: BTreeMap<String, BTreeSet<mxsim::matrix::EventId>>,
    /// Requests whose path contains one of `lossy_paths` are lost with chance `loss`
    /// (the requester sees no answer and times out).
    pub lossy_paths: Vec<&'static str>,
    pub loss: Option<(Prng, mxsim::stdx::Ratio)>,
    /// Bodies of the `/send` transactions delivered, by receiver.
    pub delivered_sends: Vec<(String, Vec<u8>)>,
    /// Lost requests get no answer at all (the requester times out) instead of a coin flip
    /// between that and a refusal.
    pub lost_silently: bool,
    /// Every request a server sent, lost or not: (sender, path and query).
    pub requests: Vec<(String, String)>,
}

pub fn key(name: &str) -> SigningKey {
    let mut seed = [0u8; 32];
    for (i, b) in name.bytes().enumerate() {
        seed[i % 32] ^= b;
    }
    SigningKey::from_seed(&seed, "ed25519:1").unwrap()
}

impl Harness {
    /// Drops everything between `a` and `b`, both ways, until `cut` is cleared.
    pub fn cut_both_ways(&mut self, a: &str, b: &str) {
        self.cut.insert((a.into(), b.into()));
        self.cut.insert((b.into(), a.into()));
    }

    pub fn new(names: &[&str]) -> Harness {
        Harness::with_verified(names, false)
    }

    /// Servers that share one key ring and, if `shared`, one cache of verified events (as
    /// the simulator's servers do); otherwise each has its own copy of the ring.
    pub fn with_verified(names: &[&str], shared: bool) -> Harness {
        Harness::with_config(names, shared, &Config::default())
    }

    /// [`Harness::with_verified`] with every server configured as `config`.
    pub fn with_config(names: &[&str], shared: bool, config: &Config) -> Harness {
        let mut keys = KeyRing::new();
        for name in names {
            keys.entry((*name).to_owned())
                .or_default()
                .insert("ed25519:1".into(), key(name).public_key());
        }
        let ring = std::sync::Arc::new(keys.clone());
        let verified = std::sync::Arc::new(VerifiedEvents::new(std::sync::Arc::clone(&ring)));
        let root = Prng::from_seed(1);
        let servers = names
            .iter()
            .map(|name| {
                let ring = if shared { std::sync::Arc::clone(&ring) } else { keys.clone().into() };
                let mut server = Homeserver::new(
                    name,
                    key(name),
                    ring,
                    config.clone(),
                    root.fork(name),
                    Instant::ZERO,
                );
                if shared {
                    assert!(server.share_verified(&verified));
                } else {
                    assert!(!server.share_verified(&verified), "another ring: refused");
                }
                ((*name).to_owned(), server)
            })
            .collect();
        Harness {
            servers,
            verified,
            now: Instant::ZERO,
            queue: VecDeque::new(),
            timers: BTreeMap::new(),
            cut: BTreeSet::new(),
            observations: Vec::new(),
            committed: BTreeMap::new(),
            lossy_paths: Vec::new(),
            loss: None,
            delivered_sends: Vec::new(),
            lost_silently: false,
            requests: Vec::new(),
        }
    }

    /// Whether a request on this path is lost (drawn only for lossy paths).
    fn lost(&mut self, request: &HttpRequest) -> bool {
        let lossy = self.lossy_paths.iter().any(|p| request.path_and_query.contains(p));
        match &mut self.loss {
            Some((prng, ratio)) if lossy => prng.chance(*ratio),
            _ => false,
        }
    }

    /// Whether a lost request fails at once (refused) rather than in silence (the
    /// requester times out); drawn only for lost requests.
    fn refused(&mut self) -> bool {
        if self.lost_silently {
            return false;
        }
        match &mut self.loss {
            Some((prng, _)) => prng.chance(mxsim::stdx::Ratio::percent(50).unwrap()),
            None => true,
        }
    }

    fn route(&mut self, from: &str, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Request { destination, id, request } => {
                    self.requests.push((from.to_owned(), request.path_and_query.clone()));
                    if self.lost(&request) {
                        if self.refused() {
                            let to = from.to_owned();
                            self.queue.push_back(Message::Response { to, id, response: None });
                        }
                    } else if self.cut.contains(&(from.to_owned(), destination.clone()))
                        || !self.servers.contains_key(&destination)
                    {
                        self.queue.push_back(Message::Response {
                            to: from.to_owned(),
                            id,
                            response: None,
                        });
                    } else {
                        self.queue.push_back(Message::Request {
                            from: from.to_owned(),
                            to: destination,
                            id,
                            request,
                        });
                    }
                }
                Output::Response { origin, id, response } => {
                    let response = (!self.cut.contains(&(from.to_owned(), origin.to_string())))
                        .then_some(response);
                    self.queue.push_back(Message::Response {
                        to: origin.to_string(),
                        id,
                        response,
                    });
                }
                Output::SetTimer { at } => {
                    self.timers.insert(from.to_owned(), at);
                }
                Output::Observed(observation) => {
                    self.observations.push((from.to_owned(), observation))
                }
                Output::Committed { event_ids } => {
                    // Every event reported committed is in the store.
                    for id in &event_ids {
                        let stored = self.servers[from].store().contains(id);
                        assert!(stored, "{from} reported {id} committed but lacks it");
                    }
                    self.committed.entry(from.to_owned()).or_default().extend(event_ids);
                }
            }
        }
    }

    /// `server`'s answer to `request` from `origin`, handed to it directly (outside the
    /// queue, at the harness's current time); its other outputs are dropped.
    pub fn answer(&mut self, server: &str, origin: &str, request: &Request) -> HttpResponse {
        let id = RequestId(u64::MAX);
        let input = Input::Request { origin: origin.into(), id, request: request.to_http() };
        let now = self.now;
        let outputs = self.servers.get_mut(server).unwrap().handle(now, input);
        outputs
            .into_iter()
            .find_map(|o| match o {
                Output::Response { id: answered, response, .. } if answered == id => Some(response),
                _ => None,
            })
            .expect("an answer")
    }

    pub fn input(&mut self, server: &str, input: Input) {
        let now = self.now;
        let outputs = self.servers.get_mut(server).unwrap().handle(now, input);
        self.route(server, outputs);
    }

    pub fn act(&mut self, server: &str, user: String, action: Action<String, EventId>) {
        self.input(server, Input::Action { user, action });
    }

    /// Delivers the next queued message, 10 ms after the previous one; false if none.
    fn deliver_one(&mut self) -> bool {
        let Some(message) = self.queue.pop_front() else { return false };
        self.now = self.now + Duration::from_ms(10);
        match message {
            Message::Request { from, to, id, request } => {
                if request.path_and_query.starts_with("/_matrix/federation/v1/send/") {
                    let body = request.body.as_deref().unwrap_or_default().to_vec();
                    self.delivered_sends.push((to.clone(), body));
                }
                self.input(&to, Input::Request { origin: from.into(), id, request });
            }
            Message::Response { to, id, response } => {
                self.input(&to, Input::Response { id, response })
            }
        }
        true
    }

    /// Delivers messages and fires timers until nothing is left or `limit` steps ran.
    pub fn run(&mut self, limit: u32) {
        for _ in 0..limit {
            if self.deliver_one() {
                continue;
            }
            let Some((server, at)) =
                self.timers.iter().min_by_key(|(_, at)| **at).map(|(s, a)| (s.clone(), *a))
            else {
                return;
            };
            // Timers far in the future (probes of a peer marked down) end the run.
            if at.ms > self.now.ms + 900_000 {
                return;
            }
            self.timers.remove(&server);
            self.now = self.now.max(at);
            self.input(&server, Input::Timer);
        }
        panic!("the harness did not settle in {limit} steps");
    }

    /// Delivers messages and fires timers for `span` of virtual time (for runs where
    /// retries never stop, such as during a partition).
    pub fn run_for(&mut self, span: Duration) {
        let deadline = self.now + span;
        while self.now < deadline {
            if self.deliver_one() {
                continue;
            }
            let next = self.timers.iter().min_by_key(|(_, at)| **at).map(|(s, a)| (s.clone(), *a));
            match next {
                Some((server, at)) if at <= deadline => {
                    self.timers.remove(&server);
                    self.now = self.now.max(at);
                    self.input(&server, Input::Timer);
                }
                _ => self.now = deadline,
            }
        }
    }

    pub fn state(&self, server: &str, room_id: &str) -> Option<StateMap> {
        self.servers[server].current_state(room_id)
    }

    pub fn room_created(&self, server: &str) -> String {
        self.observations
            .iter()
            .find_map(|(s, o)| match o {
                Observation::RoomJoined { room_id, .. } if s == server => Some(room_id.clone()),
                _ => None,
            })
            .expect("a room was created")
    }

    pub fn failures(&self) -> Vec<String> {
        self.observations
            .iter()
            .filter_map(|(s, o)| match o {
                Observation::ActionFailed { user, kind, reason } => {
                    Some(format!("{s}: {kind} by {user}: {reason}"))
                }
                _ => None,
            })
            .collect()
    }
}

fn message(body: &str) -> Object {
    let mut content = Object::new();
    content.insert("msgtype".into(), "m.text".into());
    content.insert("body".into(), body.into());
    content
}

#[test]
fn create_join_and_talk_across_two_servers() {
    for version in RoomVersion::ALL {
        let mut h = Harness::new(&["hs1", "hs2"]);
        h.act(
            "hs1",
            "@alice:hs1".into(),
            Action::CreateRoom { version, public: true, name: Some("Room".into()), topic: None },
        );
        let room = h.room_created("hs1");
        h.act(
            "hs2",
            "@bob:hs2".into(),
            Action::Join { room: room.clone(), via: vec!["hs1".into()] },
        );
        h.run(1_000);
        assert_eq!(h.failures(), Vec::<String>::new(), "v{version}");
        h.act(
            "hs1",
            "@alice:hs1".into(),
            Action::Send {
                room: room.clone(),
                event_type: "m.room.message".into(),
                state_key: None,
                content: message("hi bob"),
            },
        );
        h.act(
            "hs2",
            "@bob:hs2".into(),
            Action::Send {
                room: room.clone(),
                event_type: "m.room.message".into(),
                state_key: None,
                content: message("hi alice"),
            },
        );
        h.run(1_000);
        assert_eq!(h.failures(), Vec::<String>::new(), "v{version}");
        let one = h.state("hs1", &room).unwrap();
        let two = h.state("hs2", &room).unwrap();
        assert_eq!(one, two, "v{version}: current states differ");
        assert!(
            one.contains_key(&("m.room.member".to_owned(), "@bob:hs2".to_owned())),
            "v{version}"
        );
        let ids = |s: &str| -> BTreeSet<_> {
            h.servers[s].store().events().map(|(id, _)| id.clone()).collect()
        };
        assert_eq!(ids("hs1"), ids("hs2"), "v{version}: different events");
    }
}

fn send(
    h: &mut Harness,
    server: &str,
    user: &str,
    room: &str,
    event_type: &str,
    state_key: Option<&str>,
    content: serde_json::Value,
) {
    let serde_json::Value::Object(content) = content else { panic!("content must be an object") };
    h.act(
        server,
        user.into(),
        Action::Send {
            room: room.into(),
            event_type: event_type.into(),
            state_key: state_key.map(str::to_owned),
            content,
        },
    );
}

/// Sends a message from `user` of `server` and returns its id (the event `server` created
/// last).
fn say(h: &mut Harness, server: &str, user: &str, room: &str, body: &str) -> EventId {
    send(h, server, user, room, "m.room.message", None, serde_json::json!({ "body": body }));
    created_by(h, server).last().cloned().unwrap()
}

/// A public room on hs1 that every other server has joined.
fn room_with(names: &[&str], version: RoomVersion) -> (Harness, String) {
    room_in(Harness::new(names), names, version)
}

/// [`room_with`] on servers made by the caller.
fn room_in(mut h: Harness, names: &[&str], version: RoomVersion) -> (Harness, String) {
    h.act(
        names[0],
        format!("@alice:{}", names[0]),
        Action::CreateRoom { version, public: true, name: None, topic: None },
    );
    let room = h.room_created(names[0]);
    for name in &names[1..] {
        h.act(
            name,
            format!("@bob:{name}"),
            Action::Join { room: room.clone(), via: vec![names[0].into()] },
        );
        h.run(2_000);
    }
    assert_eq!(h.failures(), Vec::<String>::new());
    (h, room)
}

fn assert_converged(h: &Harness, room: &str, names: &[&str], context: &str) {
    let first = h.state(names[0], room).unwrap();
    for name in &names[1..] {
        assert_eq!(
            h.state(name, room).as_ref(),
            Some(&first),
            "{context}: {name} differs from {}",
            names[0]
        );
    }
}

#[test]
fn remote_invite_then_join_across_three_servers() {
    for version in RoomVersion::ALL {
        let mut h = Harness::new(&["hs1", "hs2", "hs3"]);
        h.act(
            "hs1",
            "@alice:hs1".into(),
            Action::CreateRoom { version, public: false, name: None, topic: None },
        );
        let room = h.room_created("hs1");
        h.act(
            "hs1",
            "@alice:hs1".into(),
            Action::Invite { room: room.clone(), target: "@carol:hs3".into() },
        );
        h.run(1_000);
        assert!(
            h.observations
                .iter()
                .any(|(s, o)| s == "hs3" && matches!(o, Observation::Invited { .. })),
            "v{version}"
        );
        // No `via`: the invite names the server to join through.
        h.act("hs3", "@carol:hs3".into(), Action::Join { room: room.clone(), via: vec![] });
        h.run(1_000);
        h.act(
            "hs1",
            "@alice:hs1".into(),
            Action::Invite { room: room.clone(), target: "@dan:hs2".into() },
        );
        h.run(1_000);
        h.act("hs2", "@dan:hs2".into(), Action::Join { room: room.clone(), via: vec![] });
        h.run(1_000);
        send(
            &mut h,
            "hs3",
            "@carol:hs3",
            &room,
            "m.room.message",
            None,
            serde_json::json!({"body": "hello"}),
        );
        h.run(1_000);
        assert_eq!(h.failures(), Vec::<String>::new(), "v{version}");
        assert_converged(&h, &room, &["hs1", "hs2", "hs3"], &format!("v{version}"));
        let state = h.state("hs2", &room).unwrap();
        for user in ["@alice:hs1", "@carol:hs3", "@dan:hs2"] {
            let id = &state[&("m.room.member".to_owned(), user.to_owned())];
            let membership =
                h.servers["hs2"].store().pdu(id).unwrap().content()["membership"].clone();
            assert_eq!(membership, "join", "v{version} {user}");
        }
    }
}

#[test]
fn concurrent_state_changes_across_a_partition_converge_after_healing() {
    for version in RoomVersion::ALL {
        let names = ["hs1", "hs2"];
        let (mut h, room) = room_with(&names, version);
        // Give Bob enough power to set state.
        let mut levels = serde_json::json!({"users": {"@bob:hs2": 50}, "state_default": 50, "events_default": 0,
            "users_default": 0, "events": {"m.room.power_levels": 100}});
        if !version.rules().privileged_creators {
            levels["users"]["@alice:hs1"] = 100.into();
        }
        send(&mut h, "hs1", "@alice:hs1", &room, "m.room.power_levels", Some(""), levels);
        h.run(1_000);
        h.cut_both_ways("hs1", "hs2");
        send(
            &mut h,
            "hs1",
            "@alice:hs1",
            &room,
            "m.room.topic",
            Some(""),
            serde_json::json!({"topic": "from alice"}),
        );
        send(
            &mut h,
            "hs2",
            "@bob:hs2",
            &room,
            "m.room.name",
            Some(""),
            serde_json::json!({"name": "from bob"}),
        );
        h.run_for(Duration::from_secs(600));
        assert_ne!(
            h.state("hs1", &room),
            h.state("hs2", &room),
            "v{version}: the partition kept them apart"
        );
        h.cut.clear();
        // New traffic after healing carries the extremities; gaps are filled.
        send(
            &mut h,
            "hs1",
            "@alice:hs1",
            &room,
            "m.room.message",
            None,
            serde_json::json!({"body": "back"}),
        );
        send(
            &mut h,
            "hs2",
            "@bob:hs2",
            &room,
            "m.room.message",
            None,
            serde_json::json!({"body": "back too"}),
        );
        h.run(5_000);
        assert_eq!(h.failures(), Vec::<String>::new(), "v{version}");
        assert_converged(&h, &room, &names, &format!("v{version}"));
        let state = h.state("hs1", &room).unwrap();
        assert!(
            state.contains_key(&("m.room.topic".to_owned(), String::new())),
            "v{version}: topic lost"
        );
        assert!(
            state.contains_key(&("m.room.name".to_owned(), String::new())),
            "v{version}: name lost"
        );
    }
}

#[test]
fn an_offline_server_catches_up() {
    let names = ["hs1", "hs2"];
    let (mut h, room) = room_with(&names, RoomVersion::V12);
    h.cut_both_ways("hs1", "hs2");
    for i in 0..30 {
        send(
            &mut h,
            "hs1",
            "@alice:hs1",
            &room,
            "m.room.message",
            None,
            serde_json::json!({"body": format!("m{i}")}),
        );
        h.run_for(Duration::from_secs(20));
    }
    send(
        &mut h,
        "hs1",
        "@alice:hs1",
        &room,
        "m.room.topic",
        Some(""),
        serde_json::json!({"topic": "while you were away"}),
    );
    h.cut.clear();
    h.run(20_000);
    let events = |s: &str| -> BTreeSet<_> {
        h.servers[s].store().events().map(|(id, _)| id.clone()).collect()
    };
    assert_eq!(events("hs1").len(), events("hs2").len());
    assert_converged(&h, &room, &names, "after catch-up");
}

fn decisions(
    h: &Harness,
    server: &str,
) -> Vec<(Option<mxsim::matrix::EventId>, mxsim::homeserver::Decision)> {
    h.observations
        .iter()
        .filter_map(|(s, o)| match o {
            Observation::Event { event_id, decision, .. } if s == server => {
                Some((event_id.clone(), *decision))
            }
            _ => None,
        })
        .collect()
}

/// The events `server` reported with `decision`, with the reasons it gave.
fn reasons(
    h: &Harness,
    server: &str,
    decision: mxsim::homeserver::Decision,
) -> Vec<(Option<mxsim::matrix::EventId>, Option<String>)> {
    h.observations
        .iter()
        .filter_map(|(s, o)| match o {
            Observation::Event { event_id, decision: d, reason, .. }
                if s == server && *d == decision =>
            {
                Some((event_id.clone(), reason.clone()))
            }
            _ => None,
        })
        .collect()
}

fn created_by(h: &Harness, server: &str) -> Vec<mxsim::matrix::EventId> {
    decisions(h, server)
        .into_iter()
        .filter_map(|(id, d)| (d == mxsim::homeserver::Decision::Created).then_some(id).flatten())
        .collect()
}

#[test]
fn events_from_before_a_ban_are_soft_failed() {
    for version in RoomVersion::ALL {
        let names = ["hs1", "hs2"];
        let (mut h, room) = room_with(&names, version);
        h.cut_both_ways("hs1", "hs2");
        h.act(
            "hs1",
            "@alice:hs1".into(),
            Action::Ban { room: room.clone(), target: "@bob:hs2".into() },
        );
        let bobs = say(&mut h, "hs2", "@bob:hs2", &room, "am I still here?");
        h.run_for(Duration::from_secs(60));
        h.cut.clear();
        send(
            &mut h,
            "hs1",
            "@alice:hs1",
            &room,
            "m.room.message",
            None,
            serde_json::json!({"body": "bye bob"}),
        );
        h.run_for(Duration::from_secs(900));
        let on_hs1 = decisions(&h, "hs1");
        let bobs_decision =
            on_hs1.iter().rev().find(|(id, _)| id.as_ref() == Some(&bobs)).map(|(_, d)| *d);
        assert!(
            bobs_decision == Some(mxsim::homeserver::Decision::SoftFailed),
            "v{version}: Bob's message after the ban was {bobs_decision:?}"
        );
        let extremities = &h.servers["hs1"].store().room(&room).unwrap().forward_extremities;
        assert!(
            !extremities.contains(&bobs),
            "v{version}: a soft-failed event became a forward extremity"
        );
        // Bob's server learns of the ban and agrees on the state.
        assert_converged(&h, &room, &names, &format!("v{version}"));
    }
}

#[test]
fn forged_signatures_are_dropped() {
    use mxsim::homeserver::wire::Transaction;
    let names = ["hs1", "hs2"];
    let (mut h, room) = room_with(&names, RoomVersion::V12);
    let state = h.state("hs1", &room).unwrap();
    let join = state[&("m.room.member".to_owned(), "@bob:hs2".to_owned())].clone();
    let rules = RoomVersion::V12.rules();
    let mut event = serde_json::json!({
        "type": "m.room.message", "sender": "@bob:hs2", "room_id": room, "content": {"body": "forged"},
        "origin_server_ts": 1_700_000_000_000_i64, "depth": 100,
        "prev_events": [join.as_str()], "auth_events": [join.as_str()],
    });
    let serde_json::Value::Object(object) = event.take() else { unreachable!() };
    // Signed by a key that is not hs2's.
    let mallory = SigningKey::from_seed(&[9; 32], "ed25519:1").unwrap();
    let forged = mxsim::matrix::pdu::build_signed(rules, object, "hs2", &mallory).unwrap();
    let request = Request::SendTransaction {
        txn_id: "forged-1".into(),
        transaction: Transaction {
            origin: "hs2".into(),
            origin_server_ts: 0,
            pdus: vec![forged.json().clone()],
            edus: vec![],
        },
    };
    h.input(
        "hs1",
        Input::Request { origin: "hs2".into(), id: RequestId(999), request: request.to_http() },
    );
    h.run(100);
    assert!(!h.servers["hs1"].store().contains(forged.event_id()), "a forged event was stored");
    assert!(
        reasons(&h, "hs1", mxsim::homeserver::Decision::Dropped)
            .iter()
            .any(|(_, r)| r.as_deref().is_some_and(|r| r.contains("signature")))
    );
}

#[test]
fn acl_denied_servers_are_refused() {
    let names = ["hs1", "hs2", "hs3"];
    let (mut h, room) = room_with(&names, RoomVersion::V11);
    send(
        &mut h,
        "hs1",
        "@alice:hs1",
        &room,
        "m.room.server_acl",
        Some(""),
        serde_json::json!({"allow": ["*"], "deny": ["hs2"], "allow_ip_literals": false}),
    );
    h.run(2_000);
    let bobs = say(&mut h, "hs2", "@bob:hs2", &room, "let me in");
    h.run(2_000);
    assert!(
        !h.servers["hs1"].store().contains(&bobs),
        "hs1 accepted a PDU from an ACL-denied server"
    );
    assert!(
        !h.servers["hs3"].store().contains(&bobs),
        "hs3 accepted a PDU from an ACL-denied server"
    );
    // hs3 is not denied: its messages still flow.
    let carols = say(&mut h, "hs3", "@bob:hs3", &room, "fine");
    h.run(2_000);
    assert!(h.servers["hs1"].store().contains(&carols));
    // The ACL lifted, hs2 is heard again: each server reads the ACL of its state now, not
    // the one it read for earlier PDUs.
    send(
        &mut h,
        "hs1",
        "@alice:hs1",
        &room,
        "m.room.server_acl",
        Some(""),
        serde_json::json!({"allow": ["*"], "deny": [], "allow_ip_literals": false}),
    );
    h.run(2_000);
    let again = say(&mut h, "hs2", "@bob:hs2", &room, "back again");
    h.run(2_000);
    for server in ["hs1", "hs3"] {
        assert!(h.servers[server].store().contains(&again), "{server} still denies hs2");
    }
}

#[test]
fn an_upgrade_is_followed_by_both_servers() {
    let names = ["hs1", "hs2"];
    let (mut h, room) = room_with(&names, RoomVersion::V10);
    h.act(
        "hs1",
        "@alice:hs1".into(),
        Action::Upgrade { room: room.clone(), version: RoomVersion::V12 },
    );
    h.run(2_000);
    assert_eq!(h.failures(), Vec::<String>::new());
    let old = h.state("hs2", &room).unwrap();
    let tombstone = &old[&("m.room.tombstone".to_owned(), String::new())];
    let replacement =
        h.servers["hs2"].store().pdu(tombstone).unwrap().content()["replacement_room"]
            .as_str()
            .unwrap()
            .to_owned();
    // Bob follows the tombstone.
    h.act(
        "hs2",
        "@bob:hs2".into(),
        Action::Join { room: replacement.clone(), via: vec!["hs1".into()] },
    );
    h.run(2_000);
    assert_eq!(h.failures(), Vec::<String>::new());
    assert_converged(&h, &replacement, &names, "new room");
    let new = h.state("hs2", &replacement).unwrap();
    let create =
        h.servers["hs2"].store().pdu(&new[&("m.room.create".to_owned(), String::new())]).unwrap();
    assert_eq!(create.content()["predecessor"]["room_id"], room.as_str());
    assert_eq!(create.content()["room_version"], "12");
    assert_eq!(
        create.event_id().to_room_id(),
        replacement,
        "a v12 room id is its create event's id"
    );
}

#[test]
fn a_restarted_server_keeps_what_it_committed() {
    let names = ["hs1", "hs2"];
    let (mut h, room) = room_with(&names, RoomVersion::V12);
    send(
        &mut h,
        "hs2",
        "@bob:hs2",
        &room,
        "m.room.message",
        None,
        serde_json::json!({"body": "before the crash"}),
    );
    h.run(1_000);
    let before: BTreeSet<_> = h.servers["hs2"].store().events().map(|(id, _)| id.clone()).collect();
    // Crash hs2: keep only its store.
    let store = h.servers["hs2"].store().clone();
    let keys = {
        let mut keys = KeyRing::new();
        for name in names {
            keys.entry(name.to_owned())
                .or_default()
                .insert("ed25519:1".into(), key(name).public_key());
        }
        keys
    };
    let restarted = Homeserver::recover(
        "hs2",
        key("hs2"),
        keys,
        Config::default(),
        Prng::from_seed(2).fork("hs2"),
        h.now,
        store,
    );
    h.servers.insert("hs2".into(), restarted);
    let after: BTreeSet<_> = h.servers["hs2"].store().events().map(|(id, _)| id.clone()).collect();
    assert_eq!(before, after);
    // Everything hs2 reported committed survived the restart.
    assert!(h.committed["hs2"].is_subset(&after));
    // The room's 5 initial state events (from send_join), Bob's join and his message.
    assert_eq!(h.committed["hs2"].len(), 7, "{:?}", h.committed["hs2"]);
    send(
        &mut h,
        "hs1",
        "@alice:hs1",
        &room,
        "m.room.message",
        None,
        serde_json::json!({"body": "after"}),
    );
    send(
        &mut h,
        "hs2",
        "@bob:hs2",
        &room,
        "m.room.message",
        None,
        serde_json::json!({"body": "after too"}),
    );
    h.run(2_000);
    assert_converged(&h, &room, &names, "after restart");
}

fn membership(h: &Harness, server: &str, room: &str, user: &str) -> Option<String> {
    let state = h.state(server, room)?;
    let id = state.get(&("m.room.member".to_owned(), user.to_owned()))?;
    h.servers[server].store().pdu(id)?.content()["membership"].as_str().map(str::to_owned)
}

#[test]
fn knock_invite_reject_kick_and_redact() {
    for version in RoomVersion::ALL {
        let mut h = Harness::new(&["hs1", "hs2", "hs3"]);
        h.act(
            "hs1",
            "@alice:hs1".into(),
            Action::CreateRoom { version, public: false, name: None, topic: None },
        );
        let room = h.room_created("hs1");
        send(
            &mut h,
            "hs1",
            "@alice:hs1",
            &room,
            "m.room.join_rules",
            Some(""),
            serde_json::json!({"join_rule": "knock"}),
        );
        h.act(
            "hs2",
            "@bob:hs2".into(),
            Action::Knock { room: room.clone(), via: vec!["hs1".into()] },
        );
        h.run(1_000);
        assert_eq!(
            membership(&h, "hs1", &room, "@bob:hs2").as_deref(),
            Some("knock"),
            "v{version}"
        );
        // The knock is approved by an invite, and Bob joins.
        h.act(
            "hs1",
            "@alice:hs1".into(),
            Action::Invite { room: room.clone(), target: "@bob:hs2".into() },
        );
        h.run(1_000);
        h.act(
            "hs2",
            "@bob:hs2".into(),
            Action::Join { room: room.clone(), via: vec!["hs1".into()] },
        );
        h.run(1_000);
        assert_eq!(membership(&h, "hs1", &room, "@bob:hs2").as_deref(), Some("join"), "v{version}");
        // Carol is invited and declines through make_leave/send_leave.
        h.act(
            "hs1",
            "@alice:hs1".into(),
            Action::Invite { room: room.clone(), target: "@carol:hs3".into() },
        );
        h.run(1_000);
        h.act("hs3", "@carol:hs3".into(), Action::Leave { room: room.clone(), via: vec![] });
        h.run(1_000);
        assert_eq!(
            membership(&h, "hs1", &room, "@carol:hs3").as_deref(),
            Some("leave"),
            "v{version}"
        );
        // A message is redacted by its sender's server.
        let oops = say(&mut h, "hs2", "@bob:hs2", &room, "oops");
        h.run(1_000);
        h.act("hs2", "@bob:hs2".into(), Action::Redact { room: room.clone(), event: oops.clone() });
        h.run(1_000);
        for server in ["hs1", "hs2"] {
            let stored = h.servers[server].store().event(&oops).unwrap();
            assert!(stored.redacted, "v{version}: {server} did not apply the redaction");
            assert!(stored.pdu.content().is_empty(), "v{version}: {server}");
        }
        // Alice kicks Bob; both servers agree.
        h.act(
            "hs1",
            "@alice:hs1".into(),
            Action::Kick { room: room.clone(), target: "@bob:hs2".into() },
        );
        h.run(1_000);
        assert_eq!(h.failures(), Vec::<String>::new(), "v{version}");
        assert_eq!(
            membership(&h, "hs2", &room, "@bob:hs2").as_deref(),
            Some("leave"),
            "v{version}"
        );
        assert_converged(&h, &room, &["hs1", "hs2"], &format!("v{version}"));
    }
}

#[test]
fn history_visibility_limits_what_backfill_returns() {
    use mxsim::homeserver::wire::Response;
    let mut h = Harness::new(&["hs1", "hs2"]);
    h.act(
        "hs1",
        "@alice:hs1".into(),
        Action::CreateRoom { version: RoomVersion::V11, public: true, name: None, topic: None },
    );
    let room = h.room_created("hs1");
    send(
        &mut h,
        "hs1",
        "@alice:hs1",
        &room,
        "m.room.history_visibility",
        Some(""),
        serde_json::json!({"history_visibility": "joined"}),
    );
    let secret = say(&mut h, "hs1", "@alice:hs1", &room, "secret before bob");
    h.act("hs2", "@bob:hs2".into(), Action::Join { room: room.clone(), via: vec!["hs1".into()] });
    h.run(1_000);
    let hello = say(&mut h, "hs1", "@alice:hs1", &room, "hello bob");
    h.run(1_000);
    let request = Request::Backfill { room_id: room.clone(), v: vec![hello.clone()], limit: 50 };
    let http = h.answer("hs1", "hs2", &request);
    let Response::Backfill(txn) =
        Response::from_http(mxsim::homeserver::wire::Endpoint::Backfill, &http).unwrap()
    else {
        panic!("not a backfill answer")
    };
    let find = |id: &mxsim::matrix::EventId| {
        txn.pdus
            .iter()
            .find(|p| mxsim::matrix::pdu::event_id(RoomVersion::V11.rules(), p) == *id)
            .cloned()
    };
    let secret_copy = find(&secret).expect("history is still returned, redacted");
    assert_eq!(
        secret_copy["content"],
        serde_json::json!({}),
        "hs2 may not read history from before its join"
    );
    let hello_copy = find(&hello).expect("the later message is returned");
    assert_eq!(hello_copy["content"]["body"], "hello bob");
}

#[test]
fn a_hostile_peer_cannot_grow_the_waiting_set_without_bound() {
    use mxsim::homeserver::wire::Transaction;
    let mut keys = KeyRing::new();
    for name in ["hs1", "hs2"] {
        keys.entry(name.to_owned()).or_default().insert("ed25519:1".into(), key(name).public_key());
    }
    let config = Config { waiting_pdus_max: 10, requests_in_flight_max: 10, ..Config::default() };
    let mut hs1 =
        Homeserver::new("hs1", key("hs1"), keys, config, Prng::from_seed(5), Instant::ZERO);
    let outputs = hs1.handle(
        Instant::ZERO,
        Input::Action {
            user: "@alice:hs1".into(),
            action: Action::CreateRoom {
                version: RoomVersion::V12,
                public: true,
                name: None,
                topic: None,
            },
        },
    );
    let room = outputs
        .iter()
        .find_map(|o| match o {
            Output::Observed(Observation::RoomJoined { room_id, .. }) => Some(room_id.clone()),
            _ => None,
        })
        .unwrap();
    let mut requests = 0;
    for batch in 0..10 {
        let pdus = (0..50)
            .map(|i| {
                let serde_json::Value::Object(event) = serde_json::json!({
                    "type": "m.room.message", "sender": "@bob:hs2", "room_id": room, "content": {"body": "flood"},
                    "origin_server_ts": 1_700_000_000_000_i64 + i, "depth": 10,
                    "prev_events": [format!("$unknown-{batch}-{i}")], "auth_events": [],
                }) else { unreachable!() };
                mxsim::matrix::pdu::build_signed(RoomVersion::V12.rules(), event, "hs2", &key("hs2")).unwrap().json().clone()
            })
            .collect();
        let request = Request::SendTransaction {
            txn_id: format!("flood-{batch}"),
            transaction: Transaction {
                origin: "hs2".into(),
                origin_server_ts: 0,
                pdus,
                edus: vec![],
            },
        };
        let outputs = hs1.handle(
            Instant::from_ms(batch),
            Input::Request {
                origin: "hs2".into(),
                id: RequestId(batch),
                request: request.to_http(),
            },
        );
        requests += outputs.iter().filter(|o| matches!(o, Output::Request { .. })).count();
        assert!(hs1.waiting_count() <= 10, "{} events wait", hs1.waiting_count());
    }
    assert!(requests <= 10, "{requests} fetches for 500 flood events");
}

fn restart(h: &mut Harness, server: &str, names: &[&str]) {
    let store = h.servers[server].store().clone();
    let mut keys = KeyRing::new();
    for name in names {
        keys.entry((*name).to_owned())
            .or_default()
            .insert("ed25519:1".into(), key(name).public_key());
    }
    let restarted = Homeserver::recover(
        server,
        key(server),
        keys,
        Config::default(),
        Prng::from_seed(3).fork(server),
        h.now,
        store,
    );
    h.servers.insert(server.to_owned(), restarted);
}

#[test]
fn a_missed_transaction_is_filled_in_with_get_missing_events() {
    let names = ["hs1", "hs2"];
    let (mut h, room) = room_with(&names, RoomVersion::V11);
    h.cut.insert(("hs1".into(), "hs2".into()));
    let lost = say(&mut h, "hs1", "@alice:hs1", &room, "lost");
    h.run_for(Duration::from_secs(1));
    // hs1 restarts: its outbound queue, with the transaction still owed, is gone.
    restart(&mut h, "hs1", &names);
    h.cut.clear();
    send(
        &mut h,
        "hs1",
        "@alice:hs1",
        &room,
        "m.room.message",
        None,
        serde_json::json!({"body": "found"}),
    );
    h.run(2_000);
    assert!(h.servers["hs2"].store().contains(&lost), "the missed event was not fetched");
    let asked = h.observations.iter().any(|(s, o)| {
        s == "hs2" && matches!(o, Observation::Event { event_id: Some(id), decision: mxsim::homeserver::Decision::Accepted, .. } if *id == lost)
    });
    assert!(asked, "the missed event was not accepted on hs2");
    assert_converged(&h, &room, &names, "after the gap");
}

#[test]
fn three_servers_split_then_heal_to_the_resolved_state() {
    for version in RoomVersion::ALL {
        let names = ["hs1", "hs2", "hs3"];
        let (mut h, room) = room_with(&names, version);
        let mut levels = serde_json::json!({"users": {"@bob:hs2": 50, "@bob:hs3": 50}, "state_default": 50,
            "events_default": 0, "users_default": 0, "events": {"m.room.power_levels": 100}});
        if !version.rules().privileged_creators {
            levels["users"]["@alice:hs1"] = 100.into();
        }
        send(&mut h, "hs1", "@alice:hs1", &room, "m.room.power_levels", Some(""), levels);
        h.run(2_000);
        for other in ["hs2", "hs3"] {
            h.cut_both_ways("hs1", other);
        }
        // hs1 alone: Alice demotes hs2's Bob; hs2 and hs3 together: both Bobs set the topic.
        let mut demoted = serde_json::json!({"users": {"@bob:hs2": 0, "@bob:hs3": 50}, "state_default": 50,
            "events_default": 0, "users_default": 0, "events": {"m.room.power_levels": 100}});
        if !version.rules().privileged_creators {
            demoted["users"]["@alice:hs1"] = 100.into();
        }
        send(&mut h, "hs1", "@alice:hs1", &room, "m.room.power_levels", Some(""), demoted);
        send(
            &mut h,
            "hs2",
            "@bob:hs2",
            &room,
            "m.room.topic",
            Some(""),
            serde_json::json!({"topic": "by hs2"}),
        );
        h.run_for(Duration::from_secs(30));
        send(
            &mut h,
            "hs3",
            "@bob:hs3",
            &room,
            "m.room.name",
            Some(""),
            serde_json::json!({"name": "by hs3"}),
        );
        h.run_for(Duration::from_secs(300));
        let sides = [h.state("hs1", &room).unwrap(), h.state("hs2", &room).unwrap()];
        h.cut.clear();
        send(
            &mut h,
            "hs1",
            "@alice:hs1",
            &room,
            "m.room.message",
            None,
            serde_json::json!({"body": "healed"}),
        );
        send(
            &mut h,
            "hs3",
            "@bob:hs3",
            &room,
            "m.room.message",
            None,
            serde_json::json!({"body": "healed"}),
        );
        h.run_for(Duration::from_secs(1_800));
        assert_converged(&h, &room, &names, &format!("v{version}"));
        // The converged state is what state resolution gives for the two sides.
        let events: BTreeMap<_, _> =
            h.servers["hs1"].store().events().map(|(id, e)| (id.clone(), e.pdu.clone())).collect();
        let expected =
            mxsim::matrix::state_res::resolve(version.rules(), &sides, &events, Default::default())
                .unwrap()
                .state;
        assert_eq!(h.state("hs1", &room).unwrap(), expected, "v{version}");
        // Bob of hs2 was demoted before his topic could count.
        assert!(
            !expected.contains_key(&("m.room.topic".to_owned(), String::new())),
            "v{version}: the demoted topic survived"
        );
        assert!(
            expected.contains_key(&("m.room.name".to_owned(), String::new())),
            "v{version}: hs3's name was lost"
        );
    }
}

/// A local user's redaction of the create event is refused with Synapse's words, and
/// nothing is sent; other redactions still work.
#[test]
fn redacting_the_create_event_is_refused() {
    for version in [RoomVersion::V10, RoomVersion::V12] {
        let (mut h, room) = room_with(&["hs1", "hs2"], version);
        let create = created_by(&h, "hs1").first().cloned().unwrap();
        assert_eq!(h.servers["hs1"].store().pdu(&create).unwrap().event_type(), "m.room.create");
        let before = created_by(&h, "hs1").len();
        h.act(
            "hs1",
            "@alice:hs1".into(),
            Action::Redact { room: room.clone(), event: create.clone() },
        );
        h.run(1_000);
        let failures = h.failures();
        assert_eq!(failures.len(), 1, "v{version}: {failures:?}");
        assert!(failures[0].contains("Redacting create events is not permitted"), "{failures:?}");
        assert_eq!(created_by(&h, "hs1").len(), before, "v{version}: no redaction event");
        for server in ["hs1", "hs2"] {
            let stored = h.servers[server].store().event(&create).unwrap();
            assert!(!stored.redacted, "v{version}: {server}");
        }
    }
}

/// A redaction of the create event that arrives over federation is accepted as an event
/// but never applied (Synapse `_maybe_redact_event_row`); the same server's redaction of
/// an ordinary event of its own is applied, so the mechanism is live.
#[test]
fn a_received_redaction_of_the_create_event_is_never_applied() {
    for version in [RoomVersion::V10, RoomVersion::V12] {
        let (mut h, room) = room_with(&["hs1", "hs2"], version);
        let create = created_by(&h, "hs1").first().cloned().unwrap();
        send(
            &mut h,
            "hs1",
            "@alice:hs1",
            &room,
            "m.room.message",
            None,
            serde_json::json!({"body": "x"}),
        );
        h.run(1_000);
        let message = created_by(&h, "hs1").last().cloned().unwrap();
        let rules = version.rules();
        // Redactions built by hand as hs1 would, on hs2's current state: alice is the
        // creator and the redaction's server is the target's server (allowed either way).
        let redaction = |target: &mxsim::matrix::EventId, h: &Harness, depth: i64| {
            let state = h.state("hs2", &room).unwrap();
            let auth: Vec<String> = [
                ("m.room.create", ""),
                ("m.room.power_levels", ""),
                ("m.room.member", "@alice:hs1"),
            ]
            .iter()
            .filter(|(t, _)| !(rules.room_id_is_create_event_hash && *t == "m.room.create"))
            .map(|(t, k)| state[&((*t).to_owned(), (*k).to_owned())].as_str().to_owned())
            .collect();
            let prev: Vec<String> = h.servers["hs2"]
                .room_views()
                .into_iter()
                .find(|v| v.room_id == room)
                .unwrap()
                .forward_extremities
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect();
            let mut event = serde_json::json!({
                "type": "m.room.redaction", "sender": "@alice:hs1", "room_id": room,
                "content": {"redacts": target.as_str()}, "redacts": target.as_str(),
                "origin_server_ts": 1_700_000_100_000_i64, "depth": depth,
                "prev_events": prev, "auth_events": auth,
            });
            if rules.redacts_in_content {
                event.as_object_mut().unwrap().remove("redacts");
            }
            let serde_json::Value::Object(object) = event else { unreachable!() };
            mxsim::matrix::pdu::build_signed(rules, object, "hs1", &key("hs1")).unwrap()
        };
        let of_create = redaction(&create, &h, 1_000);
        push_transaction(&mut h, "hs1", "hs2", "redact-create", vec![of_create.json().clone()]);
        h.run(1_000);
        let stored = h.servers["hs2"].store().event(of_create.event_id()).map(|e| e.decision);
        assert_eq!(stored, Some(mxsim::homeserver::Decision::Accepted), "v{version}");
        assert!(!h.servers["hs2"].store().event(&create).unwrap().redacted, "v{version}");
        let of_message = redaction(&message, &h, 1_001);
        push_transaction(&mut h, "hs1", "hs2", "redact-message", vec![of_message.json().clone()]);
        h.run(1_000);
        assert!(h.servers["hs2"].store().event(&message).unwrap().redacted, "v{version}");
        let redacted: Vec<&mxsim::matrix::EventId> = h
            .observations
            .iter()
            .filter_map(|(s, o)| match o {
                Observation::Redacted { event_id, .. } if s == "hs2" => Some(event_id),
                _ => None,
            })
            .collect();
        assert_eq!(redacted, vec![&message], "v{version}: only the message was redacted");
    }
}

/// The JSON of an event as `server` stores it.
fn stored_json(h: &Harness, server: &str, id: &mxsim::matrix::EventId) -> Object {
    h.servers[server].store().pdu(id).unwrap().json().clone()
}

/// Hands `pdus` to `to` in one `/send` transaction from `from`, as if it had crossed the
/// network.
fn push_transaction(h: &mut Harness, from: &str, to: &str, txn_id: &str, pdus: Vec<Object>) {
    use mxsim::homeserver::wire::Transaction;
    let request = Request::SendTransaction {
        txn_id: txn_id.into(),
        transaction: Transaction { origin: from.into(), origin_server_ts: 0, pdus, edus: vec![] },
    };
    let http = request.to_http();
    h.delivered_sends.push((to.to_owned(), http.body.as_deref().unwrap_or_default().to_vec()));
    h.input(to, Input::Request { origin: from.into(), id: RequestId(9_000_000), request: http });
}

/// The decisions `server` reported for `id`.
fn decisions_of(
    h: &Harness,
    server: &str,
    id: &mxsim::matrix::EventId,
) -> Vec<mxsim::homeserver::Decision> {
    h.observations
        .iter()
        .filter_map(|(s, o)| match o {
            Observation::Event { event_id: Some(e), decision, .. } if s == server && e == id => {
                Some(*decision)
            }
            _ => None,
        })
        .collect()
}

/// hs1 sends a power-levels change and a message that hs2 never gets (hs1 restarts with the
/// transaction still owed); returns the message, whose auth and prev events hs2 lacks.
fn event_with_unknown_auth_events(
    h: &mut Harness,
    room: &str,
    tag: &str,
) -> mxsim::matrix::EventId {
    h.cut.insert(("hs1".into(), "hs2".into()));
    let levels = serde_json::json!({"users": {"@alice:hs1": 100, "@bob:hs2": 10}, "users_default": 0,
        "events_default": 0, "state_default": 50, "events": {"m.room.power_levels": 100}});
    send(h, "hs1", "@alice:hs1", room, "m.room.power_levels", Some(""), levels);
    send(h, "hs1", "@alice:hs1", room, "m.room.message", None, serde_json::json!({"body": tag}));
    let message = created_by(h, "hs1").last().cloned().unwrap();
    h.run_for(Duration::from_secs(1));
    restart(h, "hs1", &["hs1", "hs2"]);
    h.cut.clear();
    message
}

#[test]
fn an_event_whose_auth_events_cannot_be_fetched_is_decided_and_a_later_copy_is_processed() {
    let (mut h, room) = room_with(&["hs1", "hs2"], RoomVersion::V11);
    let message = event_with_unknown_auth_events(&mut h, &room, "auth unknown");
    // Every `/event_auth` request fails.
    h.lossy_paths = vec!["/event_auth/"];
    h.loss = Some((Prng::from_seed(7), mxsim::stdx::Ratio::percent(100).unwrap()));
    let json = stored_json(&h, "hs1", &message);
    push_transaction(&mut h, "hs1", "hs2", "first", vec![json.clone()]);
    h.run_for(Duration::from_secs(600));
    assert_eq!(h.servers["hs2"].waiting_count(), 0, "the event still waits");
    let first = decisions_of(&h, "hs2", &message);
    assert_eq!(first, [mxsim::homeserver::Decision::Dropped]);
    let dropped = reasons(&h, "hs2", mxsim::homeserver::Decision::Dropped);
    let why: Vec<&Option<String>> =
        dropped.iter().filter(|(id, _)| id.as_ref() == Some(&message)).map(|(_, r)| r).collect();
    assert!(matches!(why.as_slice(), [Some(reason)] if reason.contains("/event_auth")), "{why:?}");
    assert!(!h.servers["hs2"].store().contains(&message));
    // The fetch works again: a later copy is processed afresh and accepted.
    h.loss = None;
    push_transaction(&mut h, "hs1", "hs2", "second", vec![json]);
    h.run(2_000);
    let stored = h.servers["hs2"].store().event(&message).map(|e| e.decision);
    assert_eq!(stored, Some(mxsim::homeserver::Decision::Accepted));
    assert_converged(&h, &room, &["hs1", "hs2"], "after the later copy");
}

/// Property: whatever the fetch endpoints lose (refused or unanswered), every event a
/// server receives over `/send` gets a decision within the waiting bound, and nothing
/// waits afterwards.
#[test]
fn every_received_event_is_decided_under_random_loss_on_the_fetch_endpoints() {
    use mxsim::homeserver::Decision;
    let bound = Config::default().waiting_time_max;
    for seed in 1..=12u64 {
        let mut prng = Prng::from_seed(seed);
        let (mut h, room) = room_with(&["hs1", "hs2"], RoomVersion::V11);
        let message = event_with_unknown_auth_events(&mut h, &room, &format!("seed {seed}"));
        let percent = prng.range_inclusive(10, 100);
        h.lossy_paths =
            vec!["/event_auth/", "/get_missing_events/", "/state/", "/state_ids/", "/event/"];
        h.loss = Some((prng.fork("loss"), mxsim::stdx::Ratio::percent(percent).unwrap()));
        let json = stored_json(&h, "hs1", &message);
        push_transaction(&mut h, "hs1", "hs2", "gap", vec![json]);
        for i in 0..prng.range_inclusive(0, 5) {
            send(
                &mut h,
                "hs1",
                "@alice:hs1",
                &room,
                "m.room.message",
                None,
                serde_json::json!({"body": i}),
            );
            let span = prng.range_inclusive(0, 40_000);
            h.run_for(Duration::from_ms(span));
        }
        h.run_for(bound + bound);
        let context = format!("seed {seed}, {percent}% loss");
        assert_eq!(h.servers["hs2"].waiting_count(), 0, "{context}: events still wait");
        let rules = RoomVersion::V11.rules();
        let mut received = BTreeSet::new();
        for (to, body) in &h.delivered_sends {
            let body: serde_json::Value = serde_json::from_slice(body).unwrap();
            for pdu in body["pdus"].as_array().unwrap() {
                let serde_json::Value::Object(pdu) = pdu else { panic!("a PDU is an object") };
                received.insert((to.clone(), mxsim::matrix::pdu::event_id(rules, pdu)));
            }
        }
        assert!(received.contains(&("hs2".to_owned(), message.clone())), "{context}");
        for (to, id) in &received {
            let decided = decisions_of(&h, to, id);
            let stored = h.servers[to].store().event(id).is_some_and(|e| e.state_after.is_some());
            let decision = decided.iter().any(|d| !matches!(d, Decision::Outlier));
            assert!(stored || decision, "{context}: {to} never decided {id}: {decided:?}");
        }
    }
}

fn public_room(names: &[&str]) -> (Harness, String) {
    let (h, room) = room_with(names, RoomVersion::V11);
    (h, room)
}

/// Whether `server`'s current state has a joined member of its own.
fn resident(h: &Harness, server: &str, room: &str) -> bool {
    let Some(state) = h.state(server, room) else { return false };
    state.iter().any(|((t, k), id)| {
        t == "m.room.member"
            && k.ends_with(&format!(":{server}"))
            && h.servers[server].store().pdu(id).unwrap().content()["membership"] == "join"
    })
}

fn joined_observed(h: &Harness, server: &str) -> usize {
    h.observations
        .iter()
        .filter(|(s, o)| s == server && matches!(o, Observation::RoomJoined { .. }))
        .count()
}

/// Residency: an invited server does not take in the room's PDUs over `/send` (not even
/// when they are pushed to it), and its user's join goes through `make_join`/`send_join`
/// (a `RoomJoined` on hs2).
#[test]
fn an_invited_server_is_not_in_the_room_until_its_join_went_through_a_resident() {
    for version in RoomVersion::ALL {
        let mut h = Harness::new(&["hs1", "hs2"]);
        h.act(
            "hs1",
            "@alice:hs1".into(),
            Action::CreateRoom { version, public: false, name: None, topic: None },
        );
        let room = h.room_created("hs1");
        h.act(
            "hs1",
            "@alice:hs1".into(),
            Action::Invite { room: room.clone(), target: "@bob:hs2".into() },
        );
        h.run(1_000);
        send(
            &mut h,
            "hs1",
            "@alice:hs1",
            &room,
            "m.room.message",
            None,
            serde_json::json!({"body": "x"}),
        );
        h.run(1_000);
        // hs1 sends only to servers with a joined member, so push the room to hs2 as a
        // sender that did not would: hs2 must ignore it (Synapse `on_receive_pdu`).
        let pushed: Vec<Object> =
            created_by(&h, "hs1").iter().map(|id| stored_json(&h, "hs1", id)).collect();
        assert!(pushed.len() >= 4, "v{version}: the room's events");
        push_transaction(&mut h, "hs1", "hs2", "stale", pushed);
        h.run(1_000);
        assert!(!resident(&h, "hs2", &room), "v{version}");
        assert_eq!(h.state("hs2", &room), None, "v{version}: hs2 took in the room's state");
        let accepted = decisions(&h, "hs2")
            .into_iter()
            .filter(|(_, d)| *d != mxsim::homeserver::Decision::Dropped)
            .count();
        assert_eq!(accepted, 0, "v{version}: hs2 decided on PDUs of a room it is not in");
        h.act("hs2", "@bob:hs2".into(), Action::Join { room: room.clone(), via: vec![] });
        h.run(1_000);
        assert_eq!(h.failures(), Vec::<String>::new(), "v{version}");
        assert_eq!(joined_observed(&h, "hs2"), 1, "v{version}: the join did not use send_join");
        assert!(resident(&h, "hs2", &room), "v{version}");
        assert_converged(&h, &room, &["hs1", "hs2"], &format!("v{version}"));
    }
}

/// Residency follows every user of a server: a second user of hs2 joins after the first,
/// the first leaves, and hs2 is still in the room (it takes hs1's next message); once the
/// second leaves too, it is not. The users a residency check reads are kept between
/// checks, and must include the one that joined after they were first read.
#[test]
fn a_server_stays_resident_while_any_of_its_users_is_joined() {
    let names = ["hs1", "hs2"];
    let (mut h, room) = public_room(&names);
    assert!(h.servers["hs2"].is_resident(&room), "bob is joined");
    let join = Action::Join { room: room.clone(), via: vec!["hs1".into()] };
    h.act("hs2", "@carol:hs2".into(), join);
    h.run(2_000);
    assert!(h.servers["hs2"].is_resident(&room), "bob and carol are joined");
    h.act("hs2", "@bob:hs2".into(), Action::Leave { room: room.clone(), via: vec![] });
    h.run(2_000);
    assert!(resident(&h, "hs2", &room), "carol is still joined in hs2's state");
    assert!(h.servers["hs2"].is_resident(&room), "hs2 knows it is still in the room");
    let body = serde_json::json!({"body": "still there?"});
    send(&mut h, "hs1", "@alice:hs1", &room, "m.room.message", None, body);
    h.run(2_000);
    let message = created_by(&h, "hs1").pop().unwrap();
    let taken = decisions_of(&h, "hs2", &message);
    assert!(taken.contains(&mxsim::homeserver::Decision::Accepted), "{taken:?}");
    h.act("hs2", "@carol:hs2".into(), Action::Leave { room: room.clone(), via: vec![] });
    h.run(2_000);
    assert!(!resident(&h, "hs2", &room) && !h.servers["hs2"].is_resident(&room));
    assert_eq!(h.failures(), Vec::<String>::new());
}

/// Residency: a server whose last user left does not rejoin on its stale state. During a
/// split it cannot reach a resident, so the join fails; after the split the residents
/// refuse it, because the user was banned meanwhile.
#[test]
fn a_server_whose_user_left_rejoins_through_a_resident_that_knows_of_the_ban() {
    let names = ["hs1", "hs2", "hs3"];
    let (mut h, room) = public_room(&names);
    h.act("hs2", "@bob:hs2".into(), Action::Leave { room: room.clone(), via: vec![] });
    h.run(2_000);
    assert!(!resident(&h, "hs2", &room));
    for other in ["hs1", "hs3"] {
        h.cut_both_ways("hs2", other);
    }
    h.act(
        "hs1",
        "@alice:hs1".into(),
        Action::Ban { room: room.clone(), target: "@bob:hs2".into() },
    );
    h.run_for(Duration::from_secs(5));
    let join = Action::Join { room: room.clone(), via: vec!["hs1".into()] };
    h.act("hs2", "@bob:hs2".into(), join.clone());
    h.run_for(Duration::from_secs(5));
    assert!(!resident(&h, "hs2", &room), "joined on a stale copy during the split");
    assert_eq!(
        h.failures(),
        vec![
            "hs2: join by @bob:hs2: make_join via hs1: unreachable; make_join via hs3: unreachable"
                .to_owned()
        ]
    );
    h.cut.clear();
    h.run_for(Duration::from_secs(600));
    h.act("hs2", "@bob:hs2".into(), join);
    h.run_for(Duration::from_secs(60));
    assert!(!resident(&h, "hs2", &room), "joined although banned");
    let last = h.failures().last().cloned().unwrap();
    assert!(
        last.starts_with("hs2: join by @bob:hs2: make_join via hs1: 403 M_FORBIDDEN"),
        "{last}"
    );
    assert!(last.contains("; make_join via hs3: 403 M_FORBIDDEN"), "{last}");
    for server in ["hs1", "hs3"] {
        assert_eq!(membership(&h, server, &room, "@bob:hs2").as_deref(), Some("ban"), "{server}");
    }
}

/// Knocks and leaves try every candidate, are recorded as created, and fail with one
/// sentence per server.
#[test]
fn knocks_and_leaves_try_every_via_server_and_are_recorded() {
    use mxsim::homeserver::Decision;
    let mut h = Harness::new(&["hs1", "hs2", "hs3", "hs4"]);
    h.act(
        "hs1",
        "@alice:hs1".into(),
        Action::CreateRoom { version: RoomVersion::V11, public: false, name: None, topic: None },
    );
    let room = h.room_created("hs1");
    send(
        &mut h,
        "hs1",
        "@alice:hs1",
        &room,
        "m.room.join_rules",
        Some(""),
        serde_json::json!({"join_rule": "knock"}),
    );
    // hs3 is not in the room: its 404 is recorded as a sentence, and hs1 is tried next.
    h.act(
        "hs2",
        "@bob:hs2".into(),
        Action::Knock { room: room.clone(), via: vec!["hs3".into(), "hs1".into()] },
    );
    h.run(1_000);
    assert_eq!(h.failures(), Vec::<String>::new());
    assert_eq!(membership(&h, "hs1", &room, "@bob:hs2").as_deref(), Some("knock"));
    let knock = h.state("hs1", &room).unwrap()
        [&("m.room.member".to_owned(), "@bob:hs2".to_owned())]
        .clone();
    assert_eq!(decisions_of(&h, "hs2", &knock), vec![Decision::Created]);
    // Bob is let in and joins; then Carol, invited by Alice, declines while hs1 is cut off
    // from hs3: the inviter's server fails and Bob's server takes the leave.
    h.act(
        "hs1",
        "@alice:hs1".into(),
        Action::Invite { room: room.clone(), target: "@bob:hs2".into() },
    );
    h.run(1_000);
    h.act("hs2", "@bob:hs2".into(), Action::Join { room: room.clone(), via: vec![] });
    h.run(1_000);
    h.act(
        "hs1",
        "@alice:hs1".into(),
        Action::Invite { room: room.clone(), target: "@carol:hs3".into() },
    );
    h.run(1_000);
    h.cut.insert(("hs3".into(), "hs1".into()));
    h.act(
        "hs3",
        "@carol:hs3".into(),
        Action::Leave { room: room.clone(), via: vec!["hs2".into()] },
    );
    h.run_for(Duration::from_secs(5));
    assert_eq!(h.failures(), Vec::<String>::new());
    h.cut.clear();
    h.run_for(Duration::from_secs(5));
    assert_eq!(membership(&h, "hs2", &room, "@carol:hs3").as_deref(), Some("leave"));
    assert_eq!(membership(&h, "hs1", &room, "@carol:hs3").as_deref(), Some("leave"));
    let leave = h.state("hs2", &room).unwrap()
        [&("m.room.member".to_owned(), "@carol:hs3".to_owned())]
        .clone();
    assert_eq!(decisions_of(&h, "hs3", &leave), vec![Decision::Created]);
    // Readable reasons: a 404 from a server not in the room, and a time-out.
    h.act("hs4", "@dan:hs4".into(), Action::Knock { room: room.clone(), via: vec!["hs3".into()] });
    h.run(1_000);
    h.lossy_paths = vec!["/make_knock/"];
    h.loss = Some((Prng::from_seed(1), mxsim::stdx::Ratio::percent(100).unwrap()));
    h.lost_silently = true;
    h.act("hs4", "@dan:hs4".into(), Action::Knock { room: room.clone(), via: vec!["hs1".into()] });
    h.run_for(Duration::from_secs(60));
    assert_eq!(
        h.failures(),
        vec![
            "hs4: knock by @dan:hs4: make_knock via hs3: 404 M_NOT_FOUND this server is not in the room".to_owned(),
            "hs4: knock by @dan:hs4: make_knock via hs1: no answer within 30 s".to_owned(),
        ]
    );
}

/// Outbound delivery's down and up, as observations: a peer that fails every retry is
/// reported down once (however long it stays down), and up again as soon as it talks to
/// the server.
#[test]
fn a_peer_marked_down_is_reported_and_reported_up_when_it_talks_again() {
    let (mut h, room) = room_with(&["hs1", "hs2"], RoomVersion::V11);
    let peer_changes = |h: &Harness| -> Vec<(String, String)> {
        h.observations
            .iter()
            .filter_map(|(s, o)| match o {
                Observation::PeerDown { peer } => Some((s.clone(), format!("down {peer}"))),
                Observation::PeerUp { peer } => Some((s.clone(), format!("up {peer}"))),
                _ => None,
            })
            .collect()
    };
    h.cut_both_ways("hs1", "hs2");
    let body = serde_json::json!({"body": "into the void"});
    send(&mut h, "hs1", "@alice:hs1", &room, "m.room.message", None, body);
    // Eleven failures with back-off up to 60 s take a few minutes; then probes every 5 min.
    h.run_for(Duration::from_secs(1_800));
    assert_eq!(peer_changes(&h), vec![("hs1".to_owned(), "down hs2".to_owned())]);
    h.cut.clear();
    let body = serde_json::json!({"body": "back"});
    send(&mut h, "hs2", "@bob:hs2", &room, "m.room.message", None, body);
    h.run_for(Duration::from_secs(60));
    assert_eq!(
        peer_changes(&h),
        vec![("hs1".to_owned(), "down hs2".to_owned()), ("hs1".to_owned(), "up hs2".to_owned())]
    );
    assert_converged(&h, &room, &["hs1", "hs2"], "after the peer came back");
}

/// State resolution reads events as they are, not redacted (Synapse's
/// `StateResolutionStore.get_events` with `redact_behaviour=as_is`), while auth checks read
/// the redacted copies. In a version 10 room alice raises the invite level to 50 and then
/// redacts that power-levels event, whose redacted copy drops `invite` (default 0). During
/// a split bob (level 0) invites dave: allowed against the redacted copy, so every server
/// accepts the event. When the split heals, resolution replays the invite against the
/// original power levels (invite 50) and leaves it out: dave is not invited anywhere.
#[test]
fn state_resolution_reads_the_original_of_a_redacted_event() {
    let (mut h, room) = room_with(&["hs1", "hs2"], RoomVersion::V10);
    let levels = serde_json::json!({"users": {"@alice:hs1": 100}, "users_default": 0,
        "events_default": 0, "state_default": 50, "invite": 50, "kick": 50, "ban": 50,
        "redact": 50, "events": {"m.room.power_levels": 100}});
    send(&mut h, "hs1", "@alice:hs1", &room, "m.room.power_levels", Some(""), levels);
    h.run(2_000);
    let key = ("m.room.power_levels".to_owned(), String::new());
    let raised = h.state("hs1", &room).unwrap()[&key].clone();
    h.act("hs1", "@alice:hs1".into(), Action::Redact { room: room.clone(), event: raised.clone() });
    h.run(2_000);
    for server in ["hs1", "hs2"] {
        assert!(h.servers[server].store().event(&raised).unwrap().redacted, "{server}");
    }
    h.cut_both_ways("hs1", "hs2");
    h.act(
        "hs2",
        "@bob:hs2".into(),
        Action::Invite { room: room.clone(), target: "@dave:hs2".into() },
    );
    let topic = serde_json::json!({"topic": "during the split"});
    send(&mut h, "hs1", "@alice:hs1", &room, "m.room.topic", Some(""), topic);
    h.run_for(Duration::from_secs(5));
    assert_eq!(h.failures(), Vec::<String>::new(), "the invite is allowed on the redacted copy");
    let dave = ("m.room.member".to_owned(), "@dave:hs2".to_owned());
    assert!(h.state("hs2", &room).unwrap().contains_key(&dave), "hs2 holds its invite");
    let invite = h.state("hs2", &room).unwrap()[&dave].clone();
    h.cut.clear();
    for round in 0..2 {
        let body = serde_json::json!({"body": format!("after the split {round}")});
        send(&mut h, "hs1", "@alice:hs1", &room, "m.room.message", None, body.clone());
        send(&mut h, "hs2", "@bob:hs2", &room, "m.room.message", None, body);
        h.run_for(Duration::from_secs(60));
    }
    // hs1 accepted the invite (it passes the receipt checks on the redacted copy), and
    // resolution still left it out.
    assert_eq!(decisions_of(&h, "hs1", &invite), [mxsim::homeserver::Decision::Accepted]);
    assert_converged(&h, &room, &["hs1", "hs2"], "after the split");
    assert!(!h.state("hs1", &room).unwrap().contains_key(&dave), "dave was invited");
    let topic_key = ("m.room.topic".to_owned(), String::new());
    assert!(h.state("hs2", &room).unwrap().contains_key(&topic_key), "the merge happened");
}

/// A `/send` answer that repeats, byte for byte, the last one that accepted every PDU is
/// taken as that answer without being decoded again (debug builds, which run this, decode
/// it all the same and compare): with two peers answering each message alike, every
/// transaction is delivered once, none is retried, and the room converges.
#[test]
fn answers_repeating_an_accepting_answer_deliver_their_transactions() {
    let names = ["hs1", "hs2", "hs3"];
    let (mut h, room) = room_with(&names, RoomVersion::V11);
    h.run_for(Duration::from_secs(60));
    let before = requests_to(&h, "hs1", "send");
    for n in 0..3 {
        let body = serde_json::json!({"body": format!("message {n}")});
        send(&mut h, "hs1", "@alice:hs1", &room, "m.room.message", None, body);
        h.run(2_000);
    }
    h.run_for(Duration::from_secs(600));
    assert_eq!(requests_to(&h, "hs1", "send") - before, 6, "one transaction per message and peer");
    assert_eq!(h.failures(), Vec::<String>::new());
    assert_converged(&h, &room, &names, "after three messages");
}

/// How many requests `server` sent whose path starts with `/_matrix/federation/v1/{endpoint}/`.
fn requests_to(h: &Harness, server: &str, endpoint: &str) -> usize {
    let prefix = format!("/_matrix/federation/v1/{endpoint}/");
    h.requests.iter().filter(|(from, path)| from == server && path.starts_with(&prefix)).count()
}

/// hs1 sends `missed` messages that hs2 never gets (hs1 restarts with the transaction
/// still owed), then one more that reaches it; returns the missed events and the last.
fn missed_messages(
    h: &mut Harness,
    room: &str,
    names: &[&str],
    missed: usize,
) -> (Vec<EventId>, EventId) {
    h.cut.insert(("hs1".into(), "hs2".into()));
    let before = created_by(h, "hs1").len();
    for i in 0..missed {
        let body = serde_json::json!({"body": format!("missed {i}")});
        send(h, "hs1", "@alice:hs1", room, "m.room.message", None, body);
    }
    let lost: Vec<EventId> = created_by(h, "hs1")[before..].to_vec();
    assert_eq!(lost.len(), missed);
    h.run_for(Duration::from_secs(1));
    restart(h, "hs1", names);
    h.cut.clear();
    send(h, "hs1", "@alice:hs1", room, "m.room.message", None, serde_json::json!({"body": "n"}));
    let last = created_by(h, "hs1").last().cloned().unwrap();
    (lost, last)
}

/// A gap of 25 events behind a pushed one is closed by `get_missing_events` alone: the
/// first answer brings the 10 newest, and the server asks again from the oldest it got
/// (the bundle's frontier), each time of the server that answered, until the gap is
/// closed: 3 requests of limit 10, no state fetched. (Before, each pulled event sent its
/// own `get_missing_events` and, once any fetch of the room was answered, its own
/// `/state` and `/event`.)
#[test]
fn a_gap_longer_than_the_limit_is_filled_by_follow_up_get_missing_events() {
    let names = ["hs1", "hs2"];
    let (mut h, room) = room_with(&names, RoomVersion::V11);
    let requests_before = h.requests.len();
    let (lost, last) = missed_messages(&mut h, &room, &names, 25);
    h.run(5_000);
    let accepted = decisions(&h, "hs2")
        .into_iter()
        .filter(|(_, d)| *d == mxsim::homeserver::Decision::Accepted)
        .filter_map(|(id, _)| id)
        .collect::<BTreeSet<_>>();
    for id in lost.iter().chain([&last]) {
        assert!(accepted.contains(id), "hs2 did not accept {id}");
    }
    assert_eq!(
        requests_to(&h, "hs2", "get_missing_events"),
        3,
        "{:#?}",
        &h.requests[requests_before..]
    );
    for endpoint in ["state", "state_ids", "event"] {
        assert_eq!(requests_to(&h, "hs2", endpoint), 0, "{endpoint}");
    }
    assert!(reasons(&h, "hs2", mxsim::homeserver::Decision::Dropped).is_empty());
    assert_converged(&h, &room, &names, "after the gap");
}

/// With every `get_missing_events` lost, hs1 sends a topic and a message that hs2 never
/// gets (hs1 restarts with the transaction still owed), then one more message that reaches
/// it, and the servers run until quiet. Returns the topic, the missed message and the last.
fn topic_and_message_missed(
    h: &mut Harness,
    room: &str,
    names: &[&str],
) -> (EventId, EventId, EventId) {
    h.lossy_paths = vec!["/get_missing_events/"];
    h.loss = Some((Prng::from_seed(1), mxsim::stdx::Ratio::percent(100).unwrap()));
    h.cut.insert(("hs1".into(), "hs2".into()));
    let content = serde_json::json!({"topic": "missed"});
    send(h, "hs1", "@alice:hs1", room, "m.room.topic", Some(""), content);
    let topic = created_by(h, "hs1").last().cloned().unwrap();
    send(h, "hs1", "@alice:hs1", room, "m.room.message", None, serde_json::json!({"body": "m"}));
    let message = created_by(h, "hs1").last().cloned().unwrap();
    h.run_for(Duration::from_secs(1));
    restart(h, "hs1", names);
    h.cut.clear();
    send(h, "hs1", "@alice:hs1", room, "m.room.message", None, serde_json::json!({"body": "n"}));
    let last = created_by(h, "hs1").last().cloned().unwrap();
    h.run(5_000);
    (topic, message, last)
}

/// When `get_missing_events` fails, the state at the missing prev event is fetched as
/// Synapse `_get_state_ids_after_missing_prev_event` does: `/state_ids`, then `/event`
/// for only the events the server lacks (here the prev event and a state event of 30),
/// not the whole `/state`. When it lacks at least a tenth of them, it asks `/state`.
#[test]
fn the_state_at_a_missing_prev_event_fetches_only_the_unknown_events() {
    for big in [true, false] {
        let names = ["hs1", "hs2"];
        let (mut h, room) = room_with(&names, RoomVersion::V11);
        if big {
            for i in 0..30 {
                let key = format!("k{i}");
                let content = serde_json::json!({"i": i});
                send(&mut h, "hs1", "@alice:hs1", &room, "org.example.s", Some(&key), content);
            }
            h.run(2_000);
        }
        let (_, missed_prev, last) = topic_and_message_missed(&mut h, &room, &names);
        let context = if big { "30 more state events" } else { "a small state" };
        assert_eq!(requests_to(&h, "hs2", "get_missing_events"), 1, "{context}");
        assert_eq!(requests_to(&h, "hs2", "state_ids"), 1, "{context}");
        let (state, events) = if big { (0, 2) } else { (1, 1) };
        assert_eq!(requests_to(&h, "hs2", "state"), state, "{context}");
        assert_eq!(requests_to(&h, "hs2", "event"), events, "{context}");
        assert!(
            decisions_of(&h, "hs2", &last).contains(&mxsim::homeserver::Decision::Accepted),
            "{context}"
        );
        // The prev event is stored with the state hs1 had before it.
        let store = h.servers["hs2"].store();
        let before = store.event(&missed_prev).and_then(|e| e.state_before).expect("a state");
        let hs1 = h.servers["hs1"].store();
        let hs1_before = hs1.event(&missed_prev).and_then(|e| e.state_before).unwrap();
        assert_eq!(store.state(before), hs1.state(hs1_before), "{context}");
        assert_converged(&h, &room, &names, context);
    }
}

/// An event committed after a stored event that names it as a prev event is not a forward
/// extremity (Synapse `_calculate_new_extremities`, `_get_events_which_are_prevs`). Here
/// hs2 misses a topic and a message after it, and gets the next message: it fetches the
/// state at the missed message (which holds the topic, stored as an outlier), stores the
/// missed message with it, and commits the last one. The topic itself, pushed afterwards,
/// is then accepted, but the missed message already follows it. Before, it became a second
/// forward extremity that no event would cite, and every later commit resolved its old
/// state with the room's.
#[test]
fn an_event_already_followed_by_a_stored_event_is_not_a_forward_extremity() {
    let names = ["hs1", "hs2"];
    let (mut h, room) = room_with(&names, RoomVersion::V11);
    let (missed, _, last) = topic_and_message_missed(&mut h, &room, &names);
    assert_eq!(requests_to(&h, "hs2", "state_ids"), 1, "the state at the missed message");
    assert!(decisions_of(&h, "hs2", &last).contains(&mxsim::homeserver::Decision::Accepted));
    assert_eq!(decisions_of(&h, "hs2", &missed), vec![mxsim::homeserver::Decision::Outlier]);
    // The topic itself arrives late, pushed again, and is accepted: after its child.
    let pdu = stored_json(&h, "hs1", &missed);
    push_transaction(&mut h, "hs1", "hs2", "late-topic", vec![pdu]);
    h.run(5_000);
    assert!(
        decisions_of(&h, "hs2", &missed).contains(&mxsim::homeserver::Decision::Accepted),
        "the late topic is accepted: {:?}",
        decisions_of(&h, "hs2", &missed)
    );
    let extremities = &h.servers["hs2"].store().room(&room).unwrap().forward_extremities;
    assert_eq!(extremities.iter().collect::<Vec<_>>(), vec![&last]);
    assert_converged(&h, &room, &names, "after the late topic");
}

/// An accepted event whose prev event was soft-failed here also follows that event's own
/// prev events: none of them stays a forward extremity (Synapse `_calculate_new_extremities`
/// with `_get_prevs_before_rejected`). hs1 bans Bob while cut off from hs2, where Carol
/// sends a message, Bob one after hers and Carol one after his. After the heal hs1 accepts
/// Carol's first message, soft-fails Bob's and accepts Carol's second: before, her first
/// stayed a forward extremity beside her second, which descends from it.
#[test]
fn an_event_behind_a_soft_failed_prev_event_is_not_a_forward_extremity() {
    let names = ["hs1", "hs2"];
    let (mut h, room) = room_with(&names, RoomVersion::V11);
    let join = Action::Join { room: room.clone(), via: vec!["hs1".into()] };
    h.act("hs2", "@carol:hs2".into(), join);
    h.run(2_000);
    assert_eq!(membership(&h, "hs1", &room, "@carol:hs2").as_deref(), Some("join"));
    h.cut_both_ways("hs1", "hs2");
    let ban = Action::Ban { room: room.clone(), target: "@bob:hs2".into() };
    h.act("hs1", "@alice:hs1".into(), ban);
    let mut sent = Vec::new();
    for (user, body) in [("@carol:hs2", "first"), ("@bob:hs2", "mine"), ("@carol:hs2", "second")] {
        let body = serde_json::json!({ "body": body });
        send(&mut h, "hs2", user, &room, "m.room.message", None, body);
        sent.push(created_by(&h, "hs2").last().cloned().unwrap());
    }
    let [first, bobs, second] = <[EventId; 3]>::try_from(sent).unwrap();
    h.run_for(Duration::from_secs(60));
    h.cut.clear();
    h.run_for(Duration::from_secs(900));
    use mxsim::homeserver::Decision::{Accepted, SoftFailed};
    assert_eq!(decisions_of(&h, "hs1", &first), vec![Accepted]);
    assert_eq!(decisions_of(&h, "hs1", &bobs), vec![SoftFailed]);
    assert_eq!(decisions_of(&h, "hs1", &second), vec![Accepted]);
    let extremities = &h.servers["hs1"].store().room(&room).unwrap().forward_extremities;
    assert!(extremities.contains(&second), "{extremities:?}");
    assert!(!extremities.contains(&first), "Carol's first message is behind her second");
    assert_converged(&h, &room, &names, "after the heal");
}

/// A joiner's minimum depth is its join's: the room state it got with `send_join` is
/// stored as outliers, which do not count (Synapse `_update_min_depth_for_room_txn`).
/// Before, it was the create event's depth, so the joiner's `get_missing_events` walks
/// had no floor.
#[test]
fn a_joiners_minimum_depth_is_that_of_its_join() {
    let (h, room) = room_with(&["hs1", "hs2"], RoomVersion::V12);
    let store = h.servers["hs2"].store();
    let join = created_by(&h, "hs2")[0].clone();
    let depth = store.pdu(&join).unwrap().depth();
    assert!(depth > 1);
    assert_eq!(store.room(&room).unwrap().depth_min, Some(depth));
    assert_eq!(h.servers["hs1"].store().room(&room).unwrap().depth_min, Some(1));
}

/// Each server's store keeps its rooms' auth chains indexed (outliers from `send_join` and
/// gap filling included), as events are stored or when a resolution needs them, so that
/// state resolution finds every state event there instead of indexing the room again.
#[test]
fn every_stored_event_of_a_room_is_indexed_or_waits_for_the_index() {
    let mut waited = 0;
    for version in RoomVersion::ALL {
        let names = ["hs1", "hs2", "hs3"];
        let (mut h, room) = room_with(&names, version);
        // A fork: hs3 is cut off while hs1 and hs3 change the topic.
        h.cut_both_ways("hs1", "hs3");
        h.cut_both_ways("hs2", "hs3");
        let topic = |t: &str| serde_json::json!({"topic": t});
        send(&mut h, "hs1", "@alice:hs1", &room, "m.room.topic", Some(""), topic("a"));
        send(&mut h, "hs3", "@bob:hs3", &room, "m.room.message", None, topic("b"));
        h.run_for(Duration::from_secs(5));
        h.cut.clear();
        send(&mut h, "hs1", "@alice:hs1", &room, "m.room.message", None, topic("c"));
        send(&mut h, "hs3", "@bob:hs3", &room, "m.room.message", None, topic("d"));
        h.run(5_000);
        assert_converged(&h, &room, &names, &format!("v{version}"));
        for name in names {
            // Each stored event is indexed, or waits for the next resolution made here.
            let store = h.servers[name].store();
            let index = store.auth_chain_index(&room).expect("the room has an index");
            let stored: Vec<&EventId> = store
                .events()
                .filter(|(_, event)| event.pdu.room_id_or_derived() == room)
                .map(|(id, _)| id)
                .collect();
            let in_index = stored.iter().filter(|id| index.contains(id)).count();
            let waiting = store.waiting_for_index(&room);
            assert_eq!(in_index + waiting, stored.len(), "v{version}: {name}");
            assert_eq!(index.len(), in_index, "v{version}: {name} indexed other events");
            waited += waiting;
            // And once the waiting ones are added, every one is.
            let mut store = store.clone();
            store.index_waiting(&room);
            let index = store.auth_chain_index(&room).unwrap();
            for id in &stored {
                assert!(index.contains(id), "v{version}: {name} did not index {id}");
            }
            assert_eq!(index.len(), stored.len(), "v{version}: {name} indexed other events");
        }
    }
    assert!(waited > 0, "some event waited for the index");
}

/// Every decision each server reported, in order.
fn all_decisions(h: &Harness) -> Vec<(String, Option<EventId>, mxsim::homeserver::Decision)> {
    h.observations
        .iter()
        .filter_map(|(s, o)| match o {
            Observation::Event { event_id, decision, .. } => {
                Some((s.clone(), event_id.clone(), *decision))
            }
            _ => None,
        })
        .collect()
}

/// A message from each of `names` in turn (hs1's user is alice, the others' bob).
fn each_says_hi(h: &mut Harness, room: &str, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        let user = if i == 0 { "@alice:hs1".to_owned() } else { format!("@bob:{name}") };
        send(h, name, &user, room, "m.room.message", None, serde_json::json!({"body": "hi"}));
        h.run(2_000);
    }
}

#[test]
fn servers_sharing_verified_events_decide_as_before_and_hold_one_body_per_event() {
    let names = ["hs1", "hs2", "hs3"];
    let talk = |h: &mut Harness, room: &str| each_says_hi(h, room, &names);
    let (mut alone, room) =
        room_in(Harness::with_verified(&names, false), &names, RoomVersion::V11);
    talk(&mut alone, &room);
    let (mut shared, room_shared) =
        room_in(Harness::with_verified(&names, true), &names, RoomVersion::V11);
    talk(&mut shared, &room_shared);
    assert_eq!(room, room_shared);
    assert_eq!(all_decisions(&alone), all_decisions(&shared), "sharing changed a decision");
    assert_eq!(alone.failures(), Vec::<String>::new());
    // Each server's events as every server stores them, the builder included: one body
    // when shared, a copy per server otherwise.
    let mut checked = 0;
    for builder in names {
        for id in created_by(&shared, builder) {
            let pdu = |h: &Harness, s: &str| {
                std::sync::Arc::clone(h.servers[s].store().pdu(&id).unwrap())
            };
            for other in names.iter().filter(|&&name| name != builder) {
                let (built, received) = (pdu(&shared, builder), pdu(&shared, other));
                assert!(std::sync::Arc::ptr_eq(&built, &received), "{id} at {other}");
                let (built, received) = (pdu(&alone, builder), pdu(&alone, other));
                assert!(!std::sync::Arc::ptr_eq(&built, &received), "{id} at {other}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 6, "hs1 created the room's first events, each server a message");
    // hs3's join brought it the room's state and auth chain as hs2's did: it took hs2's
    // auth checks of those outliers, and each message's check against its auth events was
    // taken by the second server to decide it (each decision the same, as compared above).
    let taken = shared.verified.auth_events_checks_taken();
    assert!(taken >= 4 + 3, "the room's first state events (6 here) and the messages: {taken}");
    // Each message reached two servers whose states agree where the rules look: the second
    // took the first one's checks against the state before it (each decision the same).
    let taken = shared.verified.state_checks_taken();
    assert!(taken >= 3, "one per message at least: {taken}");
    assert_eq!(alone.verified.state_checks_taken(), 0, "nothing shared when not sharing");
}

/// Of the events `event` cites (auth and prev events) that `server` stores: how many it
/// names by the very copy of the id the server's stored event holds, and how many by
/// another copy of the text.
fn cited_copies(h: &Harness, server: &str, event: &mxsim::matrix::EventId) -> (usize, usize) {
    let store = h.servers[server].store();
    let pdu = store.pdu(event).unwrap();
    let (mut shared, mut apart) = (0, 0);
    for cited in pdu.auth_events().iter().chain(pdu.prev_events()) {
        let Some(stored) = store.pdu(cited) else { continue };
        if std::sync::Arc::ptr_eq(&cited.shared_text(), &stored.event_id().shared_text()) {
            shared += 1;
        } else {
            apart += 1;
        }
    }
    (shared, apart)
}

/// With shared verified events, each event names the events it cites by the copy of their
/// ids that the cited events hold, so that a server looks them up by pointer; without,
/// the copy parsed or built at each server names them apart.
#[test]
fn events_cite_the_shared_copies_of_the_ids_they_name() {
    let names = ["hs1", "hs2", "hs3"];
    let talk = |h: &mut Harness, room: &str| each_says_hi(h, room, &names);
    let tally = |h: &Harness| {
        let (mut shared, mut apart) = (0, 0);
        for builder in names {
            for id in created_by(h, builder) {
                for server in names {
                    let (s, a) = cited_copies(h, server, &id);
                    shared += s;
                    apart += a;
                }
            }
        }
        (shared, apart)
    };
    let (mut shared, room) =
        room_in(Harness::with_verified(&names, true), &names, RoomVersion::V11);
    talk(&mut shared, &room);
    let (cited, apart) = tally(&shared);
    assert_eq!(apart, 0, "every cited id shared ({cited} were)");
    assert!(cited >= 3 * 20, "each server's copy of the room's events and messages: {cited}");
    let (mut alone, room) =
        room_in(Harness::with_verified(&names, false), &names, RoomVersion::V11);
    talk(&mut alone, &room);
    let (_, apart) = tally(&alone);
    assert!(apart > 0, "the servers' own copies name cited events apart");
}

/// Three servers sharing verified events; hs1's message reaches hs2 and not hs3 (cut
/// off from hs1); then hs2 pushes hs3 its copy with member `key` set to `value`, in
/// transaction `txn_id`. Returns the harness and the message's id.
fn copy_pushed_to_hs3(txn_id: &str, key: &str, value: serde_json::Value) -> (Harness, EventId) {
    let names = ["hs1", "hs2", "hs3"];
    let (mut h, room) = room_in(Harness::with_verified(&names, true), &names, RoomVersion::V11);
    // hs3 does not hear from hs1; hs2 receives the message and verifies it.
    h.cut.insert(("hs1".into(), "hs3".into()));
    let hi = serde_json::json!({"body": "hi"});
    send(&mut h, "hs1", "@alice:hs1", &room, "m.room.message", None, hi);
    h.run_for(Duration::from_secs(5));
    let message = created_by(&h, "hs1").pop().unwrap();
    assert!(h.servers["hs2"].store().contains(&message));
    assert!(!h.servers["hs3"].store().contains(&message));
    let mut copy = stored_json(&h, "hs2", &message);
    copy.insert(key.into(), value);
    push_transaction(&mut h, "hs2", "hs3", txn_id, vec![copy]);
    h.run_for(Duration::from_secs(5));
    (h, message)
}

#[test]
fn a_copy_that_differs_from_the_verified_one_is_checked_by_itself() {
    // A copy with other content: the same event id (redaction drops a message's content),
    // but its content hash no longer matches, so hs3 must keep the redacted form.
    let (h, message) =
        copy_pushed_to_hs3("tampered-1", "content", serde_json::json!({"body": "tampered"}));
    let kept = stored_json(&h, "hs3", &message);
    assert_eq!(kept["content"], serde_json::json!({}), "hs3 took the other copy's result");
    // Parsed from the copy that came, the redacted form still names the events it cites
    // by the copies hs3 stores.
    let (cited, apart) = cited_copies(&h, "hs3", &message);
    assert!(
        cited >= 4 && apart == 0,
        "auth and prev events by their stored copies: {cited}, {apart}"
    );
    assert_eq!(stored_json(&h, "hs2", &message)["content"]["body"], "hi");
}

/// A copy that differs from the one in the shared verified events only outside what is
/// hashed and signed (here `unsigned`) is parsed and checked by its receiver, and still
/// names the events it cites by the copies the receiver stores.
#[test]
fn a_copy_checked_by_its_receiver_cites_the_stored_copies() {
    let (h, message) = copy_pushed_to_hs3("unsigned-1", "unsigned", serde_json::json!({"age": 5}));
    let kept = stored_json(&h, "hs3", &message);
    assert_eq!(kept["unsigned"], serde_json::json!({"age": 5}), "hs3 kept the copy it checked");
    assert_eq!(kept["content"]["body"], "hi", "intact");
    let (cited, apart) = cited_copies(&h, "hs3", &message);
    assert!(
        cited >= 4 && apart == 0,
        "auth and prev events by their stored copies: {cited}, {apart}"
    );
}

/// A server records the events it builds as verified in the shared cache without checking
/// them only when the shared key ring holds its own key: one that signs with another key
/// (a ring that says otherwise) has its events checked, fail, and recorded by no one.
#[test]
fn events_built_here_are_taken_as_verified_only_under_the_rings_own_key() {
    let created = |signing: &str| {
        let mut keys = KeyRing::new();
        keys.entry("hs1".to_owned())
            .or_default()
            .insert("ed25519:1".into(), key("hs1").public_key());
        let ring = std::sync::Arc::new(keys);
        let verified = std::sync::Arc::new(VerifiedEvents::new(std::sync::Arc::clone(&ring)));
        let mut server = Homeserver::new(
            "hs1",
            key(signing),
            std::sync::Arc::clone(&ring),
            Config::default(),
            Prng::from_seed(1).fork("hs1"),
            Instant::ZERO,
        );
        assert!(server.share_verified(&verified));
        let action = Action::CreateRoom {
            version: RoomVersion::V11,
            public: false,
            name: None,
            topic: None,
        };
        server.handle(Instant::ZERO, Input::Action { user: "@alice:hs1".into(), action });
        let taken: Vec<bool> = server
            .store()
            .events()
            .map(|(_, event)| verified.get(RoomVersion::V11, &event.pdu).is_some())
            .collect();
        assert!(taken.len() >= 4, "the room's first events were stored: {}", taken.len());
        taken
    };
    assert!(created("hs1").iter().all(|&taken| taken), "signed with the ring's key");
    assert!(created("impostor").iter().all(|&taken| !taken), "signed with another key");
}

/// Three servers split 1 | 2+3, change state on both sides, heal and talk; every server
/// shares `resolutions`. Returns each server's final state of the room.
fn split_and_heal_sharing(
    resolutions: &std::sync::Arc<mxsim::homeserver::resolutions::SharedResolutions>,
) -> Vec<StateMap> {
    let names = ["hs1", "hs2", "hs3"];
    let mut h = Harness::with_verified(&names, true);
    for server in h.servers.values_mut() {
        server.share_resolutions(resolutions);
    }
    let (mut h, room) = room_in(h, &names, RoomVersion::V11);
    for other in ["hs2", "hs3"] {
        h.cut_both_ways("hs1", other);
    }
    let topic = |text: &str| serde_json::json!({ "topic": text });
    send(&mut h, "hs1", "@alice:hs1", &room, "m.room.topic", Some(""), topic("by hs1"));
    send(&mut h, "hs2", "@bob:hs2", &room, "m.room.topic", Some(""), topic("by hs2"));
    let name = serde_json::json!({"name": "n"});
    send(&mut h, "hs3", "@bob:hs3", &room, "m.room.name", Some(""), name);
    h.run_for(Duration::from_secs(60));
    h.cut.clear();
    for name in names {
        let user = if name == "hs1" { "@alice:hs1".to_owned() } else { format!("@bob:{name}") };
        send(&mut h, name, &user, &room, "m.room.message", None, serde_json::json!({"body": "x"}));
    }
    h.run_for(Duration::from_secs(600));
    assert_converged(&h, &room, &names, "shared resolutions");
    names.iter().map(|name| h.state(name, &room).unwrap()).collect()
}

/// A server takes a shared resolution only when its own store reads every event the
/// recording server read the same way: resolutions recorded with one read altered (a
/// rejection that is not there) and no changes are all refused, and the run ends
/// in the same state as one that shared honest resolutions.
#[test]
fn a_shared_resolution_is_taken_only_when_its_reads_match() {
    use mxsim::homeserver::resolutions::{Read, Recorded, SharedResolutions};
    use mxsim::matrix::dag::RejectionKind;
    use std::sync::Arc;
    let honest = Arc::new(SharedResolutions::new());
    let expected = split_and_heal_sharing(&honest);
    assert!(honest.counts().found > 0, "servers took one another's: {:?}", honest.counts());
    let altered = Arc::new(SharedResolutions::new());
    let mut poisoned = 0;
    for (key, recorded) in honest.entries() {
        let mut reads = recorded.reads.clone();
        let found = reads.iter_mut().find_map(|(_, read)| match read {
            Read::Found { rejection, .. } => Some(rejection),
            Read::Missing => None,
        });
        let Some(rejection) = found else {
            let changes = Arc::clone(&recorded.changes);
            let differences = recorded.differences.clone();
            altered.record(key, Recorded { reads, changes, differences });
            continue;
        };
        *rejection = match rejection {
            None => Some(RejectionKind::StateBefore),
            Some(_) => None,
        };
        poisoned += 1;
        let differences = recorded.differences.iter().map(|(d, _)| (*d, Vec::new())).collect();
        altered.record(key, Recorded { reads, changes: Arc::default(), differences });
    }
    assert!(poisoned > 0);
    assert_eq!(split_and_heal_sharing(&altered), expected);
    let counts = altered.counts();
    assert!(counts.refused > 0, "{counts:?}");
}

/// `/state_ids` asked again about the same event gets the same answer, also after more
/// events were stored (servers keep recent answers; debug builds compute each kept answer
/// again and compare): the state before the event, and the auth chain of its events.
#[test]
fn state_ids_asked_again_answer_the_state_before_the_event() {
    use mxsim::homeserver::wire::{Endpoint, Response};
    let (mut h, room) = room_with(&["hs1", "hs2"], RoomVersion::V11);
    let topic = serde_json::json!({"topic": "kept"});
    send(&mut h, "hs1", "@alice:hs1", &room, "m.room.topic", Some(""), topic);
    h.run(1_000);
    let topic = created_by(&h, "hs1").last().cloned().unwrap();
    let ask_about = |h: &mut Harness, event_id: &EventId| {
        let request = Request::GetStateIds { room_id: room.clone(), event_id: event_id.clone() };
        let http = h.answer("hs1", "hs2", &request);
        match Response::from_http(Endpoint::GetStateIds, &http).unwrap() {
            Response::GetStateIds { pdu_ids, auth_chain_ids } => (pdu_ids, auth_chain_ids),
            other => panic!("not a /state_ids answer: {other:?}"),
        }
    };
    let ask = |h: &mut Harness| ask_about(h, &topic);
    let first = ask(&mut h);
    let store = h.servers["hs1"].store();
    let before = store.event(&topic).unwrap().state_before.unwrap();
    let state: BTreeSet<EventId> = store.state(before).into_values().collect();
    assert_eq!(first.0.iter().cloned().collect::<BTreeSet<_>>(), state);
    assert!(!state.contains(&topic), "the state before the topic");
    // The auth chain, walked here from the state events' auth events.
    let mut chain = BTreeSet::new();
    let mut stack: Vec<EventId> =
        state.iter().flat_map(|id| store.pdu(id).unwrap().auth_events().to_vec()).collect();
    while let Some(id) = stack.pop() {
        if chain.insert(id.clone()) {
            stack.extend(store.pdu(&id).unwrap().auth_events().iter().cloned());
        }
    }
    assert_eq!(first.1.iter().cloned().collect::<BTreeSet<_>>(), chain);
    assert_eq!(ask(&mut h), first, "asked again");
    send(&mut h, "hs2", "@bob:hs2", &room, "m.room.message", None, message("more").into());
    h.run(1_000);
    assert_eq!(ask(&mut h), first, "asked again after another event");
    // Another event, another state: the topic is in the state before the message.
    let more = created_by(&h, "hs2").last().cloned().unwrap();
    let (after, _) = ask_about(&mut h, &more);
    assert!(after.contains(&topic), "the state before the message holds the topic");
    assert_eq!(ask(&mut h), first, "the topic's answer again");
}

/// A resident answers `make_join` with an unsigned template, which the joining server
/// hashes and signs: the template is built without a signature of the resident's (made
/// only to be dropped from the answer, before), and still completes a join.
#[test]
fn a_make_join_template_is_unsigned_and_completes_the_join() {
    use mxsim::homeserver::wire::{Endpoint, Response};
    for version in [RoomVersion::V11, RoomVersion::V12] {
        let mut h = Harness::with_verified(&["hs1", "hs2"], true);
        h.act(
            "hs1",
            "@alice:hs1".into(),
            Action::CreateRoom { version, public: true, name: None, topic: None },
        );
        let room = h.room_created("hs1");
        let request = Request::MakeJoin {
            room_id: room.clone(),
            user_id: "@bob:hs2".into(),
            ver: vec![version.as_str().into()],
        };
        let http = h.answer("hs1", "hs2", &request);
        let Response::MakeJoin(make) = Response::from_http(Endpoint::MakeJoin, &http).unwrap()
        else {
            panic!("not a make_join answer: {http:?}")
        };
        let template = make.event;
        assert!(!template.contains_key("hashes") && !template.contains_key("signatures"));
        assert_eq!(template["state_key"], "@bob:hs2");
        assert_eq!(template["content"]["membership"], "join");
        assert_eq!(template["sender"], "@bob:hs2");
        assert_eq!(template["room_id"], room.as_str());
        assert!(template.contains_key("auth_events") && template.contains_key("prev_events"));
        // The joiner signs its own event from such a template, and the join goes through.
        h.act(
            "hs2",
            "@bob:hs2".into(),
            Action::Join { room: room.clone(), via: vec!["hs1".into()] },
        );
        h.run(2_000);
        assert_eq!(h.failures(), Vec::<String>::new());
        assert!(resident(&h, "hs2", &room), "{version:?}: hs2 joined");
    }
}
