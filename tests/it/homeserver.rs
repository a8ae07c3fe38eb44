//! Homeservers wired together without any network: a deterministic in-memory queue.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use mxsim::homeserver::store::StateMap;
use mxsim::homeserver::wire::{HttpRequest, HttpResponse};
use mxsim::homeserver::{Action, Config, Homeserver, Input, Observation, Output, RequestId};
use mxsim::matrix::RoomVersion;
use mxsim::matrix::canonical_json::Object;
use mxsim::matrix::crypto::{KeyRing, SigningKey};
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
    pub now: Instant,
    queue: VecDeque<Message>,
    timers: BTreeMap<String, Instant>,
    /// Links that drop everything: (from, to).
    pub cut: BTreeSet<(String, String)>,
    pub observations: Vec<(String, Observation)>,
}

fn key(name: &str) -> SigningKey {
    let mut seed = [0u8; 32];
    for (i, b) in name.bytes().enumerate() {
        seed[i % 32] ^= b;
    }
    SigningKey::from_seed(&seed, "ed25519:1").unwrap()
}

impl Harness {
    pub fn new(names: &[&str]) -> Harness {
        let mut keys = KeyRing::new();
        for name in names {
            keys.entry((*name).to_owned())
                .or_default()
                .insert("ed25519:1".into(), key(name).public_key());
        }
        let root = Prng::from_seed(1);
        let servers = names
            .iter()
            .map(|name| {
                let server = Homeserver::new(
                    name,
                    key(name),
                    keys.clone(),
                    Config::default(),
                    root.fork(name),
                    Instant::ZERO,
                );
                ((*name).to_owned(), server)
            })
            .collect();
        Harness {
            servers,
            now: Instant::ZERO,
            queue: VecDeque::new(),
            timers: BTreeMap::new(),
            cut: BTreeSet::new(),
            observations: Vec::new(),
        }
    }

    fn route(&mut self, from: &str, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Request { destination, id, request } => {
                    if self.cut.contains(&(from.to_owned(), destination.clone()))
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
                    let response = (!self.cut.contains(&(from.to_owned(), origin.clone())))
                        .then_some(response);
                    self.queue.push_back(Message::Response { to: origin, id, response });
                }
                Output::SetTimer { at } => {
                    self.timers.insert(from.to_owned(), at);
                }
                Output::Observed(observation) => {
                    self.observations.push((from.to_owned(), observation))
                }
            }
        }
    }

    pub fn input(&mut self, server: &str, input: Input) {
        let now = self.now;
        let outputs = self.servers.get_mut(server).unwrap().handle(now, input);
        self.route(server, outputs);
    }

    pub fn act(&mut self, server: &str, action: Action) {
        self.input(server, Input::Action(action));
    }

    /// Delivers messages and fires timers until nothing is left or `limit` steps ran.
    pub fn run(&mut self, limit: u32) {
        for _ in 0..limit {
            if let Some(message) = self.queue.pop_front() {
                self.now = self.now + Duration::from_ms(10);
                match message {
                    Message::Request { from, to, id, request } => {
                        self.input(&to, Input::Request { origin: from, id, request });
                    }
                    Message::Response { to, id, response } => {
                        self.input(&to, Input::Response { id, response })
                    }
                }
                continue;
            }
            let Some((server, at)) =
                self.timers.iter().min_by_key(|(_, at)| **at).map(|(s, a)| (s.clone(), *a))
            else {
                return;
            };
            // Timers far in the future (idle retries) end the run.
            if at.ms > self.now.ms + 600_000 {
                return;
            }
            self.timers.remove(&server);
            self.now = self.now.max(at);
            self.input(&server, Input::Timer);
        }
        panic!("the harness did not settle in {limit} steps");
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
                Observation::ActionFailed { action, reason } => {
                    Some(format!("{s}: {action}: {reason}"))
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
            Action::CreateRoom {
                user: "@alice:hs1".into(),
                version,
                public: true,
                name: Some("Room".into()),
                topic: None,
            },
        );
        let room = h.room_created("hs1");
        h.act(
            "hs2",
            Action::Join {
                user: "@bob:hs2".into(),
                room_id: room.clone(),
                via: vec!["hs1".into()],
            },
        );
        h.run(1_000);
        assert_eq!(h.failures(), Vec::<String>::new(), "v{version}");
        h.act(
            "hs1",
            Action::Send {
                user: "@alice:hs1".into(),
                room_id: room.clone(),
                event_type: "m.room.message".into(),
                state_key: None,
                content: message("hi bob"),
            },
        );
        h.act(
            "hs2",
            Action::Send {
                user: "@bob:hs2".into(),
                room_id: room.clone(),
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
