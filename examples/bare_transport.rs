//! The bare-transport baseline of the simulation benchmark (docs/performance.md,
//! "Simulation"): the same number of messages between the same number of madsim nodes as
//! a run of `benches/sim_scale.sh`, with no protocol work at all.
//!
//!     cargo run --release --example bare_transport -- NODES MESSAGES [SEED [REPEAT]]
//!
//! Each node binds a madsim `Endpoint`; the messages go out in fan-outs, as a homeserver
//! sends an event: node `k mod NODES` sends a 64-byte message to every other node, until
//! MESSAGES messages are sent. Every node counts what it receives; the run ends when all
//! have arrived. Prints the nodes, the messages delivered and the virtual time taken;
//! the CPU time comes from outside (`/usr/bin/time`), as for `mxsim run`. REPEAT runs the
//! whole exchange that many times (each in a fresh runtime), so that a small exchange
//! takes measurable CPU time; the count printed is over all of them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use madsim::net::Endpoint;
use madsim::runtime::{Handle, Runtime};

const PORT: u16 = 1;
const TAG: u64 = 7;

fn address(node: usize) -> SocketAddr {
    let node = u32::try_from(node + 1).expect("fewer than 2^32 nodes");
    let ip = Ipv4Addr::from(0x0A00_0000 | node);
    SocketAddr::new(IpAddr::V4(ip), PORT)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bare_transport NODES MESSAGES [SEED [REPEAT]]";
    let number = |i: usize| -> u64 {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
            eprintln!("{usage}");
            std::process::exit(2)
        })
    };
    let nodes = usize::try_from(number(0)).expect("fits");
    let messages = number(1);
    let seed = if args.len() > 2 { number(2) } else { 1 };
    let repeat = if args.len() > 3 { number(3) } else { 1 };
    if nodes < 2 {
        eprintln!("{usage}: at least 2 nodes");
        std::process::exit(2);
    }

    let mut delivered = 0;
    let mut virtual_ms = 0;
    for _ in 0..repeat {
        let (count, ms) = exchange(nodes, messages, seed);
        delivered += count;
        virtual_ms += ms;
    }
    println!("nodes={nodes} messages_delivered={delivered} virtual_ms={virtual_ms}");
}

/// One exchange in a fresh runtime: (messages received, virtual milliseconds taken).
fn exchange(nodes: usize, messages: u64, seed: u64) -> (u64, u128) {
    let runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    let virtual_ms = runtime.block_on(async move {
        let handle = Handle::current();
        let mut node_handles = Vec::new();
        for node in 0..nodes {
            let counter = Arc::clone(&counter);
            let node_handle =
                handle.create_node().name(format!("n{node}")).ip(address(node).ip()).build();
            // Each node receives for ever; the run ends when the count is complete.
            node_handle.spawn(async move {
                let endpoint = Endpoint::bind(address(node)).await.expect("bind");
                let mut buf = [0u8; 64];
                loop {
                    endpoint.recv_from(TAG, &mut buf).await.expect("receive");
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
            node_handles.push(node_handle);
        }
        // Let the receivers bind.
        madsim::time::sleep(Duration::from_millis(1)).await;
        // Virtual time (madsim's clock), as the simulator reads it.
        let clock = madsim::time::TimeHandle::current();
        let start = clock.elapsed();
        // Senders: one task per node, each sending its share of fan-outs.
        let fan_outs = messages.div_ceil(nodes as u64 - 1);
        let mut senders = Vec::new();
        let width = nodes as u64 - 1;
        for (node, node_handle) in node_handles.iter().enumerate() {
            // Fan-out k goes from node k mod NODES; the last one is cut to the total.
            let mine: Vec<u64> =
                (0..fan_outs).filter(|k| *k % nodes as u64 == node as u64).collect();
            senders.push(node_handle.spawn(async move {
                let endpoint =
                    Endpoint::bind(SocketAddr::new(address(node).ip(), 0)).await.expect("bind");
                let payload = [0u8; 64];
                for k in mine {
                    let count = width.min(messages - k * width);
                    let peers = (0..nodes).filter(|p| *p != node).take(count as usize);
                    for peer in peers {
                        endpoint.send_to(address(peer), TAG, &payload).await.expect("send");
                    }
                }
            }));
        }
        for sender in senders {
            sender.await.expect("sender");
        }
        while counter.load(Ordering::Relaxed) < messages {
            madsim::time::sleep(Duration::from_millis(10)).await;
        }
        (clock.elapsed() - start).as_millis()
    });
    (received.load(Ordering::Relaxed), virtual_ms)
}
