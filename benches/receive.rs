//! The receive path per event: one homeserver handling the `/send` transactions that carry
//! a peer's messages, in a room of 10, 100 or 1,000 joined members (a larger state to read
//! and extend per event). Each event is parsed, verified (hash and signatures, with the
//! server's own cache of verified events, so no sharing helps), decided against its auth
//! events and the state before it, committed, and observed; the answer is encoded.
//!
//! The transactions are recorded once from a live pair of servers (hs1 sends, hs2
//! receives), then replayed by criterion against fresh copies of hs2 restored from its
//! store as it was before them, so every iteration does the same work.
//!
//! Each room size runs twice: `verify`, where hs2 checks every event itself, and
//! `verified`, where the checks come from a cache that already holds them, as they do for
//! every receiver but the first in a simulation (`homeserver::verified`).
//!
//! Run: `cargo bench --bench receive` (add `-- --quick` for a short run).

use std::collections::VecDeque;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mxsim::homeserver::store::Store;
use mxsim::homeserver::verified::VerifiedEvents;
use mxsim::homeserver::wire::HttpRequest;
use mxsim::homeserver::{Action, Config, Homeserver, Input, Output, RequestId};
use mxsim::matrix::crypto::{KeyRing, SigningKey};
use mxsim::matrix::{EventId, RoomVersion};
use mxsim::stdx::{Duration, Instant, Prng};

/// Messages replayed per iteration.
const MESSAGES: usize = 100;

fn key(name: &str) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..name.len()].copy_from_slice(name.as_bytes());
    SigningKey::from_seed(&seed, "ed25519:1").unwrap()
}

fn ring() -> Arc<KeyRing> {
    let mut keys = KeyRing::new();
    for name in ["hs1", "hs2"] {
        keys.entry(name.to_owned()).or_default().insert("ed25519:1".into(), key(name).public_key());
    }
    Arc::new(keys)
}

fn server(name: &str, ring: &Arc<KeyRing>, store: Store) -> Homeserver {
    let prng = Prng::from_seed(1).fork(name);
    Homeserver::recover(
        name,
        key(name),
        Arc::clone(ring),
        Config::default(),
        prng,
        Instant::ZERO,
        store,
    )
}

/// Two servers wired by an in-order queue, 1 ms per message.
struct Pair {
    servers: [Homeserver; 2],
    now: Instant,
    queue: VecDeque<(usize, Input)>,
    /// While set, the `/send` requests hs2 receives, with the time they arrive.
    recording: Option<Vec<(Instant, HttpRequest)>>,
}

impl Pair {
    fn input(&mut self, at: usize, input: Input) {
        if let (Some(log), Input::Request { request, .. }) = (&mut self.recording, &input) {
            if at == 1 && request.path_and_query.starts_with("/_matrix/federation/v1/send/") {
                log.push((self.now, request.clone()));
            }
        }
        let outputs = self.servers[at].handle(self.now, input);
        let origin: std::sync::Arc<str> = ["hs1", "hs2"][at].into();
        for output in outputs {
            match output {
                Output::Request { id, request, .. } => {
                    let input = Input::Request { origin: origin.clone(), id, request };
                    self.queue.push_back((1 - at, input));
                }
                Output::Response { id, response, .. } => {
                    self.queue
                        .push_back((1 - at, Input::Response { id, response: Some(response) }));
                }
                _ => {}
            }
        }
    }

    fn settle(&mut self) {
        while let Some((at, input)) = self.queue.pop_front() {
            self.now = self.now + Duration::from_ms(1);
            self.input(at, input);
        }
    }

    fn act(&mut self, at: usize, user: &str, action: Action<String, EventId>) {
        self.input(at, Input::Action { user: user.into(), action });
        self.settle();
    }
}

/// What the replay needs: the key ring, hs2's store before the messages, the transactions
/// that carry them, and a cache of verified events that holds them (as the simulator's
/// shared cache does once the first receiver has checked an event).
struct Recorded {
    ring: Arc<KeyRing>,
    before: Store,
    log: Vec<(Instant, HttpRequest)>,
    verified: Arc<VerifiedEvents>,
}

fn recorded(members: usize) -> Recorded {
    let ring = ring();
    let verified = Arc::new(VerifiedEvents::new(Arc::clone(&ring)));
    let mut hs2 = server("hs2", &ring, Store::new());
    assert!(hs2.share_verified(&verified));
    let servers = [server("hs1", &ring, Store::new()), hs2];
    let mut pair = Pair { servers, now: Instant::ZERO, queue: VecDeque::new(), recording: None };
    let create =
        Action::CreateRoom { version: RoomVersion::V12, public: true, name: None, topic: None };
    pair.act(0, "@u0:hs1", create);
    let room = pair.servers[0].store().rooms().next().unwrap().0.clone();
    pair.act(1, "@bob:hs2", Action::Join { room: room.clone(), via: vec!["hs1".into()] });
    for i in 1..members.saturating_sub(1) {
        pair.act(0, &format!("@u{i}:hs1"), Action::Join { room: room.clone(), via: Vec::new() });
    }
    let before = pair.servers[1].store().clone();
    pair.recording = Some(Vec::new());
    for n in 0..MESSAGES {
        let body = format!("message {n} with a little text in it");
        let send = Action::Message { room: room.clone(), body };
        pair.act(0, "@u0:hs1", send);
    }
    let log = pair.recording.take().unwrap();
    assert_eq!(pair.servers[1].store().event_count(), before.event_count() + MESSAGES);
    Recorded { ring, before, log, verified }
}

fn receive(c: &mut Criterion) {
    let mut group = c.benchmark_group("receive");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.sample_size(20);
    for members in [10, 100, 1_000] {
        let r = recorded(members);
        // `verify`: hs2 checks each event itself; `verified`: the checks come from the
        // shared cache, as for every receiver but the first in a simulation.
        for shared in [false, true] {
            let name = format!("{members}_members_{}", if shared { "verified" } else { "verify" });
            let fresh = || {
                let mut hs2 = server("hs2", &r.ring, r.before.clone());
                if shared {
                    assert!(hs2.share_verified(&r.verified));
                }
                hs2
            };
            group.bench_function(name, |b| {
                b.iter_batched(
                    fresh,
                    |mut hs2| {
                        for (i, (at, request)) in r.log.iter().enumerate() {
                            let input = Input::Request {
                                origin: "hs1".into(),
                                id: RequestId(i as u64),
                                request: request.clone(),
                            };
                            std::hint::black_box(hs2.handle(*at, input));
                        }
                        hs2
                    },
                    BatchSize::LargeInput,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(benches, receive);
criterion_main!(benches);
